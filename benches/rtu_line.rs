//! Modbus RTU over a modelled serial line with real line timing: plcprobe's client and its
//! simulator on the two ends of tests/uart.rs's `line_pair` with pacing (each burst readable only
//! after its wire time at the sender's baud and framing). The request rate is compared with
//! what the line allows: one request (8 bytes) and its answer (5 + 2 × registers bytes) on the
//! wire, plus the t3.5 silence the client keeps before each request. Harness-free
//! (`cargo bench --bench rtu_line`); figures go to docs/PERFORMANCE.md.

#[path = "../tests/uart.rs"]
#[allow(unused_imports)] // its own unit tests import what only they use
mod uart;

use std::time::{Duration, Instant};

use plcprobe::{
    profile::Profile,
    proto::modbus::{AddressRange, Table},
    sim::{self, Faults, SimConfig},
    target::Target,
    transport::{
        modbus::ModbusLink,
        rtu::{LineSettings, Port, SerialOptions},
    },
};

impl Port for uart::LineEnd {}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!("setting       regs  requests  measured req/s  line allows req/s  ratio");
    for (baud, frame, regs, n) in [
        (9600, "8E1", 10u16, 60usize),
        (19200, "8E1", 10, 120),
        (19200, "8N1", 60, 60),
        (115_200, "8N1", 10, 400),
    ] {
        let (measured, allowed) = rt.block_on(run(baud, frame, regs, n));
        println!(
            "{baud:>6} {frame}   {regs:>4}  {n:>8}  {measured:>14.1}  {allowed:>17.1}  {:.3}",
            measured / allowed
        );
    }
}

async fn run(baud: u32, frame: &str, regs: u16, n: usize) -> (f64, f64) {
    let s = uart::Setting::parse(baud, frame);
    let (data_bits, parity, stop_bits) = plcprobe::target::parse_frame_text(frame).expect("frame");
    let line = LineSettings {
        baud,
        data_bits,
        parity,
        stop_bits,
    };
    // 125 contiguous u16 registers, as scripts/bench/modbus-rate.sh serves.
    let mut text = String::from("[device]\nname = \"bench\"\n");
    for i in 0..125 {
        text.push_str(&format!(
            "[[point]]\nname = \"r{i}\"\naddress = \"hr:{i}\"\nsim = {{ value = {i} }}\n"
        ));
    }
    let profile = Profile::parse("bench", &text).expect("bench profile");
    let mut handle = sim::start(SimConfig {
        profile,
        listen: vec![],
        rtu: vec![],
        rtu_tcp: vec![],
        units: vec![1],
        faults: Faults::default(),
        seed: 1,
        record: None,
    })
    .await
    .expect("sim");
    let (client, device) = uart::line_pair(s, s, true);
    handle.serve_rtu(device);
    let target: Target = format!("rtu:///dev/modelled?baud={baud}&frame={frame}&unit=1")
        .parse()
        .expect("target");
    let timing = line.timing();
    let mut link = ModbusLink::over_port(
        &target,
        Duration::from_secs(2),
        Box::new(client),
        timing,
        SerialOptions::default(),
    )
    .expect("link");
    let range = AddressRange::new(Table::HoldingRegister, 0, regs);
    link.read_chunk(range).await.expect("first read").ok();
    let t0 = Instant::now();
    for _ in 0..n {
        link.read_chunk(range)
            .await
            .expect("read")
            .expect("no exception");
    }
    let measured = n as f64 / t0.elapsed().as_secs_f64();
    let wire = timing.wire(8 + 5 + 2 * usize::from(regs)) + timing.t35;
    (measured, 1.0 / wire.as_secs_f64())
}
