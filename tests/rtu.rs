//! Modbus RTU end to end: the real binary against real peers on pty pairs and loopback.
//! plcprobe reads pymodbus's RTU server on a serial line, over RTU over TCP and through a socat
//! serial gateway; pymodbus's RTU client and mbpoll read plcprobe's simulator; poll names every
//! serial fault the simulator injects; scan finds exactly the units that answer and writes
//! nothing; bad serial targets are refused in one paragraph.
//!
//! Both pymodbus's map and the simulator's profile are known: pymodbus serves units 1 and 2
//! with hr[0] = the unit ID and hr[i] = 3i + 1, f32 123.456 at hr:100 (see
//! `tests/peers/pymodbus_server.py`); the simulator serves `profiles/demo-line.toml`.

use std::{collections::BTreeMap, path::Path, process::Command, time::Duration};

use serde_json::{json, Value};

use crate::util::{
    free_port, python, rtu_client, run, tool, PtyPair, PyRtu, RtuSim, Run, SocatBridge,
};

const DEMO: &str = "demo-line.toml";

/// `tank.batch` of the demo profile, "GL-4711" as `ascii:8` at hr:300..304 (no noise).
const BATCH_WORDS: [u64; 4] = [0x474C, 0x2D34, 0x3731, 0x3100];

/// plcprobe's target for unit `unit` on the pty `pty` at 19200 8N1, the settings both
/// pymodbus's server and the simulator use here.
fn serial(pty: &str, unit: u8) -> String {
    PyRtu::serial_target(pty, unit)
}

/// The `value` of every row of a `read --format json` document.
fn values(rows: &Value) -> Vec<Value> {
    rows.as_array()
        .expect("rows")
        .iter()
        .map(|r| r["value"].clone())
        .collect()
}

/// A JSON number as u64 (fails the test, naming it, otherwise).
fn int(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

/// The 16-bit words of a `read --format json` of u16 registers.
fn words(r: &Run) -> Vec<u64> {
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    values(&r.json()).iter().map(int).collect()
}

/// Two registers, high word first (abcd), as f32.
fn f32_abcd(hi: u64, lo: u64) -> f32 {
    f32::from_bits(u32::try_from((hi << 16) | lo).expect("two 16-bit words"))
}

/// Modbus CRC-16 (polynomial 0xA001 reflected, start 0xFFFF), low byte first on the wire.
fn crc16(bytes: &[u8]) -> [u8; 2] {
    let mut crc: u16 = 0xFFFF;
    for &b in bytes {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
    }
    crc.to_le_bytes()
}

/// Bytes as plcprobe prints them in messages: `01 03 02 00 05`.
fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// stderr must be one paragraph: plcprobe's error prefix, text, no blank line.
fn one_paragraph(r: &Run, what: &str) {
    let text = r.stderr.trim();
    assert!(
        text.starts_with("plcprobe: error: ") && !text.contains("\n\n"),
        "{what}: stderr is not one paragraph:\n{}",
        r.stderr
    );
}

// --- 1 and 2: plcprobe reads pymodbus's RTU server ----------------------------------------------

/// The reads every transport to pymodbus's map must give, `target(unit)` naming the transport.
fn reads_the_pymodbus_map(target: &dyn Fn(u8) -> String, label: &str) {
    let t1 = target(1);
    let r = run(&["read", &t1, "hr:0+10", "--format", "json"]);
    assert_eq!(r.code, 0, "{label}: {}", r.stderr);
    let rows = r.json();
    assert_eq!(
        values(&rows),
        (0..10u64).map(|i| json!(3 * i + 1)).collect::<Vec<_>>(),
        "{label}: hr[0] = unit 1, hr[i] = 3i + 1"
    );
    for (i, row) in rows.as_array().unwrap().iter().enumerate() {
        assert_eq!(
            (&row["address"], &row["modicon"], &row["type"]),
            (
                &json!(format!("hr:{i}")),
                &json!(format!("{}", 40001 + i)),
                &json!("u16")
            ),
            "{label}: {row}"
        );
        assert_eq!(row["raw"], format!("0x{:04X}", 3 * i + 1), "{label}: {row}");
        assert_eq!(row["status"], "ok", "{label}: {row}");
    }
    let r = run(&["read", &t1, "hr:0+3", "--format", "csv"]);
    assert_eq!(
        r.stdout.trim_end(),
        "address,modicon,type,raw,value,status\n\
         hr:0,40001,u16,0x0001,1,ok\n\
         hr:1,40002,u16,0x0004,4,ok\n\
         hr:2,40003,u16,0x0007,7,ok",
        "{label}"
    );
    let r = run(&["read", &t1, "hr:100", "--type", "f32", "--format", "json"]);
    assert_eq!(r.code, 0, "{label}: {}", r.stderr);
    let row = &r.json()[0];
    assert_eq!(row["address"], "hr:100..102", "{label}");
    assert_eq!(row["raw"], "0x42F6 0xE979", "{label}");
    assert_eq!(row["value"], 123.456, "{label}");
    // The table, for people: the last register of the block.
    let r = run(&["read", &t1, "hr:0+10"]);
    assert_eq!(r.code, 0, "{label}: {}", r.stderr);
    assert!(
        r.stdout.lines().any(|l| {
            let cells: Vec<&str> = l
                .split(['│', '┆'])
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect();
            cells == ["hr:9", "40010", "u16", "0x001C", "28", "ok"]
        }),
        "{label}:\n{}",
        r.stdout
    );
    // Unit 2 is another device on the same line.
    let r = run(&["read", &target(2), "hr:0", "--format", "json"]);
    assert_eq!(words(&r), [2], "{label}");
    // Unit 5: nobody answers.
    let r = run(&[
        "read",
        &target(5),
        "hr:0",
        "--timeout",
        "300ms",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 2, "{label}: {}{}", r.stdout, r.stderr);
    let row = &r.json()[0];
    assert_eq!(
        (&row["status"], &row["value"], &row["raw"]),
        (&json!("timeout"), &Value::Null, &Value::Null),
        "{label}: {row}"
    );
    assert!(
        r.stderr.contains("unit 5: nothing received within 300ms"),
        "{label}: {}",
        r.stderr
    );
    assert!(r.elapsed >= Duration::from_millis(300), "{label}");
}

#[test]
fn read_pymodbus_on_a_pty() {
    let Some(py) = python() else { return };
    let Some(pair) = PtyPair::new() else { return };
    let _server = PyRtu::serial(&py, &pair.a);
    reads_the_pymodbus_map(&|u| serial(&pair.b, u), "serial pty 19200 8N1");
    // A write over the line, read back by pymodbus's own client.
    let r = run(&[
        "write",
        &serial(&pair.b, 1),
        "hr:150",
        "4242",
        "--allow-write",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let row = &r.json()[0];
    assert_eq!(
        (&row["before"], &row["after"], &row["status"]),
        (&json!(0), &json!(4242), &json!("ok")),
        "{row}"
    );
    for (unit, want) in [("1", 4242), ("2", 0)] {
        let (code, v, _) = rtu_client(
            &py,
            &["--serial", &pair.b, "--unit", unit, "--read", "hr:150+1"],
        );
        assert_eq!(code, 0, "{v}");
        assert_eq!(v["first"], json!([want]), "unit {unit}: {v}");
    }
}

#[test]
fn read_pymodbus_over_rtu_over_tcp() {
    let Some(py) = python() else { return };
    let server = PyRtu::tcp(&py);
    reads_the_pymodbus_map(&|u| server.target(u), "RTU over TCP");
}

#[test]
fn read_pymodbus_through_a_serial_gateway() {
    let Some(py) = python() else { return };
    let Some(pair) = PtyPair::new() else { return };
    let _server = PyRtu::serial(&py, &pair.a);
    let Some(bridge) = SocatBridge::new(&pair.b) else {
        return;
    };
    reads_the_pymodbus_map(&|u| bridge.target(u), "TCP -> socat -> pty");
}

// --- 3: pymodbus's RTU client reads the simulator -----------------------------------------------

/// 20 reads of `block` from unit 1 with pymodbus's RTU client at `at`: all good; the registers of
/// the first.
fn client_reads(py: &Path, at: &[&str], block: &str, label: &str) -> Vec<u64> {
    let mut args = at.to_vec();
    args.extend(["--unit", "1", "--count", "20", "--read", block]);
    let (code, v, _) = rtu_client(py, &args);
    assert_eq!(code, 0, "{label} {block}: {v}");
    assert_eq!((int(&v["ok"]), int(&v["errors"])), (20, 0), "{label}: {v}");
    eprintln!(
        "pymodbus rtu client -> plcprobe sim, {label}: 20 reads of {block} in {:.1} ms",
        v["seconds"].as_f64().unwrap() * 1e3
    );
    v["first"]
        .as_array()
        .expect("first")
        .iter()
        .map(int)
        .collect()
}

#[test]
fn pymodbus_client_reads_the_simulator_on_a_pty_and_over_tcp() {
    let Some(py) = python() else { return };
    let Some(pair) = PtyPair::new() else { return };
    let spec = format!("rtu://{}?frame=8N1", pair.a);
    // One simulator, one state, three ways in: Modbus TCP (plcprobe's reference read), RTU on
    // the pty, RTU over TCP.
    let sim = RtuSim::start(
        DEMO,
        &[
            "--modbus",
            "127.0.0.1:0",
            "--rtu",
            &spec,
            "--rtu-tcp",
            "127.0.0.1:0",
        ],
        &[],
    );
    assert_eq!(
        sim.url("rtu://"),
        format!("rtu://{}?baud=19200&frame=8N1&unit=1", pair.a)
    );
    let reference = |addr: &str| {
        words(&run(&[
            "read",
            &sim.modbus_target(1),
            addr,
            "--format",
            "json",
        ]))
    };
    let batch = reference("hr:300+4");
    assert_eq!(batch, BATCH_WORDS, "the TCP read of tank.batch");
    let status = reference("hr:106");
    assert_eq!(status, [5], "press.status_word");
    let conveyor = reference("ir:0+2");
    let press = reference("hr:100+3");

    let tcp_at = format!("127.0.0.1:{}", sim.tcp_port());
    for (label, at) in [
        ("serial pty", ["--serial", pair.b.as_str()]),
        ("RTU over TCP", ["--rtu-tcp", tcp_at.as_str()]),
    ] {
        // Points without noise: the profile's values, as plcprobe read them over TCP.
        assert_eq!(client_reads(&py, &at, "hr:300+4", label), batch, "{label}");
        assert_eq!(client_reads(&py, &at, "hr:106+1", label), status, "{label}");
        // conveyor.motor_current 7.25 A ± 0.15 (u16, 0.01 A) and fault_code 0.
        let ir = client_reads(&py, &at, "ir:0+2", label);
        assert_eq!(ir[1], 0, "{label}: conveyor.fault_code");
        assert!(
            (710..=740).contains(&ir[0]),
            "{label}: motor current {ir:?}"
        );
        assert!(
            ir[0].abs_diff(conveyor[0]) <= 30,
            "{label}: {ir:?} vs TCP {conveyor:?}"
        );
        // press.pressure 180 bar ± 0.5 (f32 abcd), press.temperature 42.3 °C ± 0.2 (i16, 0.1).
        let hr = client_reads(&py, &at, "hr:100+3", label);
        let (p, p_tcp) = (f32_abcd(hr[0], hr[1]), f32_abcd(press[0], press[1]));
        assert!((179.5..=180.5).contains(&p), "{label}: pressure {p}");
        assert!(
            (p - p_tcp).abs() <= 1.0,
            "{label}: pressure {p} vs TCP {p_tcp}"
        );
        assert!((421..=425).contains(&hr[2]), "{label}: temperature {hr:?}");
        assert!(
            hr[2].abs_diff(press[2]) <= 4,
            "{label}: {hr:?} vs TCP {press:?}"
        );
    }
    // A unit the simulator does not serve stays silent on the line.
    let (code, v, _) = rtu_client(
        &py,
        &[
            "--serial",
            &pair.b,
            "--unit",
            "2",
            "--read",
            "hr:300+4",
            "--timeout",
            "0.3",
        ],
    );
    assert_eq!(code, 1, "{v}");
    assert_eq!(
        (int(&v["timeouts"]), &v["exceptions"]),
        (1, &json!([])),
        "{v}"
    );
}

// --- 4: mbpoll reads and writes the simulator on a pty ------------------------------------------

/// Run mbpoll in RTU mode at 19200 8N1 on `pty` with `args` (then, after the port, `-- values`
/// to write): exit code, stdout and stderr.
fn mbpoll(mbpoll: &Path, pty: &str, args: &[&str], write: &[&str]) -> (i32, String) {
    let mut cmd = Command::new(mbpoll);
    cmd.args(["-m", "rtu", "-b", "19200", "-P", "none"])
        .args(args)
        .arg(pty);
    if !write.is_empty() {
        cmd.arg("--").args(write);
    }
    let out = cmd.output().expect("run mbpoll");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// mbpoll's `[101]: \t17204` lines: reference and value text.
fn mbpoll_values(text: &str) -> Vec<(u32, String)> {
    text.lines()
        .filter_map(|l| {
            let (r, v) = l.trim().strip_prefix('[')?.split_once("]:")?;
            Some((r.parse().ok()?, v.trim().to_string()))
        })
        .collect()
}

#[test]
fn mbpoll_reads_and_writes_the_simulator_on_a_pty() {
    let Some(mb) = tool("mbpoll") else { return };
    let Some(pair) = PtyPair::new() else { return };
    let _sim = RtuSim::serial(DEMO, &pair.a, &[]);
    let b = pair.b.as_str();
    // References are 1-based: -r 101 is hr:100, press.pressure (f32 abcd, 180 bar ± 0.5).
    let (code, out) = mbpoll(&mb, b, &["-a", "1", "-r", "101", "-c", "2", "-1"], &[]);
    assert_eq!(code, 0, "{out}");
    let v = mbpoll_values(&out);
    assert_eq!(
        v.iter().map(|(r, _)| *r).collect::<Vec<_>>(),
        [101, 102],
        "{out}"
    );
    let w: Vec<u64> = v.iter().map(|(_, x)| x.parse().expect("u16")).collect();
    let p = f32_abcd(w[0], w[1]);
    assert!((179.5..=180.5).contains(&p), "{p} from {out}");
    let (code, out) = mbpoll(
        &mb,
        b,
        &["-a", "1", "-t", "4:float", "-B", "-r", "101", "-1"],
        &[],
    );
    assert_eq!(code, 0, "{out}");
    let v = mbpoll_values(&out);
    assert_eq!(v.len(), 1, "{out}");
    let p: f32 = v[0].1.parse().expect("float");
    assert!((179.5..=180.5).contains(&p), "{out}");
    // press.status_word and tank.batch: exact.
    let (code, out) = mbpoll(&mb, b, &["-a", "1", "-r", "107", "-1"], &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(mbpoll_values(&out), [(107, "5".to_string())], "{out}");
    let (code, out) = mbpoll(&mb, b, &["-a", "1", "-r", "301", "-c", "4", "-1"], &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        mbpoll_values(&out),
        (301..)
            .zip(BATCH_WORDS)
            .map(|(r, w)| (r, w.to_string()))
            .collect::<Vec<_>>(),
        "{out}"
    );
    // FC17 Report Server ID (mbpoll -u, RTU only): server ID, run indicator, product code.
    let (code, out) = mbpoll(&mb, b, &["-a", "1", "-u", "-1"], &[]);
    assert_eq!(code, 0, "{out}");
    let lines: Vec<String> = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    for want in ["Id : 0x01", "Status: On", "Data : SIM-LINE"] {
        assert!(lines.iter().any(|l| l == want), "{want}: {out}");
    }
    // mbpoll writes hr:300 (FC06); plcprobe reads it back over the same line.
    let (code, out) = mbpoll(&mb, b, &["-a", "1", "-r", "301"], &["16706"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Written 1 references."), "{out}");
    let r = run(&["read", &serial(b, 1), "hr:300", "--format", "json"]);
    assert_eq!(words(&r), [16706]);
    // An unmapped register: the simulator's exception reaches mbpoll.
    let (code, out) = mbpoll(&mb, b, &["-a", "1", "-r", "1", "-1"], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("Illegal data address"), "{out}");
    // Unit 2 is not served: silence, mbpoll times out.
    let (code, out) = mbpoll(&mb, b, &["-a", "2", "-r", "107", "-o", "0.3", "-1"], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("Connection timed out"), "{out}");
}

// --- 5: poll against the simulator's serial faults ----------------------------------------------

/// `poll TARGET ADDR --count N --interval 0 --timeout T --format json -v`: the run, its rows
/// (stdout) and its statistics (stderr's JSON line).
fn poll(target: &str, addr: &str, count: u32, timeout: &str) -> (Run, Vec<Value>, Value) {
    let n = count.to_string();
    let r = run(&[
        "poll",
        target,
        addr,
        "--count",
        &n,
        "--interval",
        "0",
        "--timeout",
        timeout,
        "--format",
        "json",
        "-v",
    ]);
    let rows = r
        .json()
        .as_array()
        .unwrap_or_else(|| panic!("rows: {}", r.stdout))
        .clone();
    assert_eq!(rows.len(), count as usize, "{}", r.stdout);
    let line = r
        .stderr
        .lines()
        .rev()
        .find(|l| l.contains("\"statistics\""))
        .unwrap_or_else(|| panic!("no statistics in: {}", r.stderr));
    let stats = serde_json::from_str(line).unwrap();
    (r, rows, stats)
}

/// stderr lines (`-v`) naming poll `seq`'s failure.
fn poll_messages(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("plcprobe: ") && l.contains(": poll "))
        .collect()
}

/// Every row failed with `status` and carries no value for `key`.
fn all_failed(rows: &[Value], status: &str, key: &str) {
    for row in rows {
        assert_eq!(
            (&row["status"], &row[key]),
            (&json!(status), &Value::Null),
            "{row}"
        );
    }
}

#[test]
fn serial_fault_crc_every_answer_is_a_crc_error() {
    let Some(pair) = PtyPair::new() else { return };
    let _sim = RtuSim::serial(DEMO, &pair.a, &["--fault", "crc=1"]);
    let t = serial(&pair.b, 1);
    let (r, rows, s) = poll(&t, "hr:106", 5, "300ms");
    assert_eq!(r.code, 2, "nothing good came back: {}", r.stderr);
    all_failed(&rows, "crc", "hr:106");
    assert_eq!((int(&s["sent"]), int(&s["received"])), (5, 0), "{s}");
    assert_eq!(s["errors"], json!({"crc": 5}), "{s}");
    assert_eq!(s["connects"], 1, "a serial port stays open: {s}");
    // The answer 01 03 02 00 05 with the last CRC byte XORed with 0x5A, as received.
    let body = [1u8, 3, 2, 0, 5];
    let crc = crc16(&body);
    let got = format!("{} {:02X} {:02X}", hex(&body), crc[0], crc[1] ^ 0x5A);
    let msgs = poll_messages(&r.stderr);
    assert_eq!(msgs.len(), 5, "{}", r.stderr);
    for (i, m) in msgs.iter().enumerate() {
        assert!(
            m.ends_with(&format!(
                "unit 1: poll {}: 7 byte(s) received but no answer with a valid CRC ({got}): a baud \
                 rate or parity mismatch, noise, or missing termination",
                i + 1
            )),
            "{m}"
        );
    }
    let r = run(&[
        "read",
        &t,
        "hr:106",
        "--timeout",
        "300ms",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 2);
    assert_eq!(r.json()[0]["status"], "crc");
    assert!(
        r.stderr
            .contains(&format!("no answer with a valid CRC ({got})")),
        "{}",
        r.stderr
    );
}

#[test]
fn serial_fault_wrong_unit_names_the_unit_that_answered() {
    let Some(pair) = PtyPair::new() else { return };
    let _sim = RtuSim::serial(DEMO, &pair.a, &["--fault", "wrong-unit=1"]);
    let t = serial(&pair.b, 1);
    let (r, rows, s) = poll(&t, "hr:106", 5, "300ms");
    assert_eq!(r.code, 2, "{}", r.stderr);
    all_failed(&rows, "wrong-unit", "hr:106");
    assert_eq!((int(&s["sent"]), int(&s["received"])), (5, 0), "{s}");
    assert_eq!(s["errors"], json!({"wrong-unit": 5}), "{s}");
    let msgs = poll_messages(&r.stderr);
    assert_eq!(msgs.len(), 5, "{}", r.stderr);
    for (i, m) in msgs.iter().enumerate() {
        assert!(
            m.ends_with(&format!(
                "unit 1: poll {}: unit 2 answered instead: two devices with one address, or a \
                 late answer from another unit",
                i + 1
            )),
            "{m}"
        );
    }
    let r = run(&["read", &t, "hr:106", "--timeout", "300ms"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("unit 1: unit 2 answered instead"),
        "{}",
        r.stderr
    );
}

#[test]
fn serial_fault_silence_is_a_timeout() {
    let Some(pair) = PtyPair::new() else { return };
    let _sim = RtuSim::serial(DEMO, &pair.a, &["--fault", "silence=1"]);
    let (r, rows, s) = poll(&serial(&pair.b, 1), "hr:106", 3, "300ms");
    assert_eq!(r.code, 2, "{}", r.stderr);
    all_failed(&rows, "timeout", "hr:106");
    for row in &rows {
        assert!(row["rtt_ms"].as_f64().unwrap() >= 300.0, "{row}");
    }
    assert_eq!((int(&s["sent"]), int(&s["received"])), (3, 0), "{s}");
    assert_eq!(s["errors"], json!({"timeout": 3}), "{s}");
    let msgs = poll_messages(&r.stderr);
    assert_eq!(msgs.len(), 3, "{}", r.stderr);
    assert!(
        msgs.iter()
            .all(|m| m.contains(": nothing received within 300ms: check the wiring")),
        "{}",
        r.stderr
    );
}

#[test]
fn serial_fault_some_bad_crcs_never_pass_for_answers() {
    let Some(pair) = PtyPair::new() else { return };
    let _sim = RtuSim::serial(DEMO, &pair.a, &["--fault", "crc=0.3", "--seed", "7"]);
    let (r, rows, s) = poll(&serial(&pair.b, 1), "hr:300+4", 50, "300ms");
    assert_eq!(r.code, 1, "some failed, some answered: {}", r.stderr);
    let crc = int(&s["errors"]["crc"]);
    let ok = int(&s["received"]);
    eprintln!("crc=0.3 on a pty, 50 polls: {ok} answered, {crc} crc errors: {s}");
    assert_eq!(s["sent"], 50, "{s}");
    assert_eq!(
        ok + crc,
        50,
        "every request is an answer or a CRC error: {s}"
    );
    assert_eq!(s["errors"], json!({"crc": crc}), "no other kind: {s}");
    assert!((5..=30).contains(&crc), "about 30% of 50: {s}");
    let keys = ["hr:300", "hr:301", "hr:302", "hr:303"];
    let good: Vec<&Value> = rows.iter().filter(|r| r["status"] == "ok").collect();
    assert_eq!(good.len() as u64, ok);
    for row in good {
        let v: Vec<u64> = keys.iter().map(|k| int(&row[k])).collect();
        assert_eq!(v, BATCH_WORDS, "{row}");
    }
    let bad: Vec<&Value> = rows.iter().filter(|r| r["status"] != "ok").collect();
    assert_eq!(bad.len() as u64, crc);
    for row in bad {
        assert_eq!(row["status"], "crc", "{row}");
        assert!(keys.iter().all(|k| row[k].is_null()), "{row}");
    }
}

#[test]
fn serial_fault_delay_shows_in_the_round_trip() {
    let Some(pair) = PtyPair::new() else { return };
    let _sim = RtuSim::serial(DEMO, &pair.a, &["--fault", "delay=50ms"]);
    let (r, rows, s) = poll(&serial(&pair.b, 1), "hr:106", 5, "1s");
    assert_eq!(r.code, 0, "{}", r.stderr);
    for row in &rows {
        assert_eq!((&row["status"], &row["hr:106"]), (&json!("ok"), &json!(5)));
        assert!(row["rtt_ms"].as_f64().unwrap() >= 50.0, "{row}");
    }
    assert_eq!(s["errors"], json!({}), "{s}");
    assert!(s["rtt_ms"]["min"].as_f64().unwrap() >= 50.0, "{s}");
    eprintln!("delay=50ms on a pty: rtt {}", s["rtt_ms"]);
}

#[test]
fn serial_fault_exception_is_an_answer() {
    let Some(pair) = PtyPair::new() else { return };
    let _sim = RtuSim::serial(DEMO, &pair.a, &["--fault", "exception=0x06@1"]);
    let (r, rows, s) = poll(&serial(&pair.b, 1), "hr:106", 3, "300ms");
    assert_eq!(r.code, 2, "{}", r.stderr);
    all_failed(&rows, "0x06 Server Device Busy", "hr:106");
    assert_eq!(s["errors"], json!({"exception_0x06": 3}), "{s}");
    assert_eq!(s["connects"], 1, "{s}");
}

#[test]
fn rtu_over_tcp_faults_are_named_alike() {
    for (fault, kind) in [
        ("crc=1", "crc"),
        ("wrong-unit=1", "wrong-unit"),
        ("silence=1", "timeout"),
    ] {
        let sim = RtuSim::tcp(DEMO, &["--fault", fault]);
        let (r, rows, s) = poll(&sim.tcp_target(1), "hr:106", 3, "300ms");
        assert_eq!(r.code, 2, "{fault}: {}", r.stderr);
        all_failed(&rows, kind, "hr:106");
        assert_eq!(s["errors"], json!({ kind: 3 }), "{fault}: {s}");
        assert_eq!(poll_messages(&r.stderr).len(), 3, "{fault}: {}", r.stderr);
    }
}

#[test]
fn tshark_reads_the_recorded_rtu_over_tcp_traffic() {
    // `sim --rtu-tcp --record` writes RTU frames in TCP segments; tshark decodes them as Modbus
    // RTU when told the port (`-d tcp.port==P,mbrtu`) and finds every CRC good.
    let Some(tshark) = tool("tshark") else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rtu-tcp.pcapng");
    let f = file.to_str().unwrap();
    let sim = RtuSim::tcp(DEMO, &["--record", f]);
    let port = sim.tcp_port();
    let (r, _, _) = poll(&sim.tcp_target(1), "hr:300+4", 3, "1s");
    assert_eq!(r.code, 0, "{}", r.stderr);
    sim.stop();
    let out = Command::new(tshark)
        .args(["-r", f, "-d", &format!("tcp.port=={port},mbrtu")])
        .args(["-o", "mbrtu.crc_verification:TRUE", "-T", "fields"])
        .args([
            "-e",
            "mbrtu.unit_id",
            "-e",
            "modbus.func_code",
            "-e",
            "mbrtu.crc16.status",
        ])
        .args(["-Y", "mbrtu"])
        .output()
        .expect("run tshark");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        6,
        "3 requests and 3 answers: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for l in &lines {
        let f: Vec<&str> = l.split('\t').collect();
        assert_eq!(&f[..2], ["1", "3"], "unit 1, FC03: {l}");
        assert_eq!(f[2], "1", "CRC good (tshark's status 1): {l}");
    }
}

#[test]
fn rtu_over_tcp_crc_errors_are_the_corrupted_answers_of_the_capture() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("crc.pcapng");
    let f = file.to_str().unwrap();
    let sim = RtuSim::tcp(DEMO, &["--fault", "crc=0.3", "--seed", "11", "--record", f]);
    let port = sim.tcp_port().to_string();
    let (_, rows, s) = poll(&sim.tcp_target(1), "hr:300+4", 50, "300ms");
    let log = sim.stop();
    assert!(log.contains(&format!("packets to {f}")), "{log}");
    let crc = int(&s["errors"]["crc"]);
    assert_eq!(int(&s["received"]) + crc, 50, "{s}");
    let pdus = run(&[
        "decode",
        f,
        "--rtu-port",
        &port,
        "--pdus",
        "--format",
        "json",
    ]);
    assert_eq!(pdus.code, 0, "{}", pdus.stderr);
    let pdus = pdus.json();
    let pdus = pdus.as_array().unwrap();
    let count = |dir: &str, crc_ok: bool| {
        pdus.iter()
            .filter(|p| p["dir"] == dir && p["crc_ok"] == crc_ok)
            .count() as u64
    };
    assert_eq!((count("query", true), count("query", false)), (50, 0));
    assert_eq!(
        (count("response", true), count("response", false)),
        (int(&s["received"]), crc),
        "each answer with a bad CRC on the wire is one crc error of poll, no more: {s}"
    );
    assert_eq!(
        rows.iter().filter(|r| r["status"] == "ok").count() as u64,
        int(&s["received"])
    );
}

#[test]
fn rtt_of_an_answer_after_a_failure_leaves_out_the_quiet_wait() {
    // After a failure the wire waits for half the timeout of quiet line before the next
    // request (so a late answer is drained, not taken): that wait is not the device's round
    // trip. With --timeout 1s it is 500 ms; the simulator on a pty answers in a few ms.
    let Some(pair) = PtyPair::new() else { return };
    let _sim = RtuSim::serial(DEMO, &pair.a, &["--fault", "crc=0.3", "--seed", "7"]);
    let (_, rows, s) = poll(&serial(&pair.b, 1), "hr:300+4", 30, "1s");
    let slow: Vec<&Value> = rows
        .iter()
        .filter(|r| r["status"] == "ok" && r["rtt_ms"].as_f64().unwrap() >= 250.0)
        .collect();
    assert!(
        slow.is_empty(),
        "answered polls with the 500 ms quiet wait in their rtt: {slow:?}; statistics {s}"
    );
    assert!(s["rtt_ms"]["max"].as_f64().unwrap() < 250.0, "{s}");
}

// --- 6: scan ------------------------------------------------------------------------------------

/// `scan TARGET --units U --timeout T --format json`: the units found present (rows), and the
/// time it took.
fn scan(target: &str, units: &str, timeout: &str) -> (Vec<Value>, Duration) {
    let r = run(&[
        "scan",
        target,
        "--units",
        units,
        "--timeout",
        timeout,
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "scan {target}: {}{}", r.stdout, r.stderr);
    let rows = r.json().as_array().expect("rows").clone();
    assert!(rows.iter().all(|r| r["present"] == true), "{}", r.stdout);
    (rows, r.elapsed)
}

fn units_of(rows: &[Value]) -> Vec<u64> {
    rows.iter().map(|r| int(&r["unit"])).collect()
}

#[test]
fn scan_finds_exactly_the_units_pymodbus_serves() {
    let Some(py) = python() else { return };
    let Some(pair) = PtyPair::new() else { return };
    let _serial = PyRtu::serial(&py, &pair.a);
    let tcp = PyRtu::tcp(&py);
    let on_line = format!("rtu://{}?baud=19200&frame=8N1", pair.b);
    let over_tcp = format!("rtu+tcp://127.0.0.1:{}", tcp.port.unwrap());
    for (label, target) in [("serial pty", &on_line), ("RTU over TCP", &over_tcp)] {
        let (rows, took) = scan(target, "1-10", "300ms");
        assert_eq!(units_of(&rows), [1, 2], "{label}: {rows:?}");
        for row in &rows {
            assert_eq!(row["answer"], "hr:0 read", "{label}: {row}");
            assert_eq!(
                row["identity"], "none",
                "{label}: pymodbus has no FC43 objects: {row}"
            );
            assert!(
                row["server_id"].as_str().unwrap().starts_with("Pymodbus"),
                "{label}: {row}"
            );
        }
        eprintln!(
            "scan of units 1-10 at 300 ms, pymodbus, {label}: {:.2} s",
            took.as_secs_f64()
        );
    }
}

#[test]
fn scan_247_units_over_rtu_over_tcp_finds_three_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("scan.pcapng");
    let f = file.to_str().unwrap();
    let sim = RtuSim::tcp(DEMO, &["--units", "3,100,247", "--record", f]);
    let port = sim.tcp_port().to_string();
    let (rows, took) = scan(&format!("rtu+tcp://127.0.0.1:{port}"), "1-247", "200ms");
    eprintln!(
        "scan of units 1-247 at 200 ms over RTU over TCP (sim serving 3, 100, 247): {:.2} s",
        took.as_secs_f64()
    );
    assert_eq!(units_of(&rows), [3, 100, 247], "{rows:?}");
    for row in &rows {
        assert_eq!(row["answer"], "0x02 Illegal Data Address", "{row}");
        assert_eq!(
            row["identity"], "plcprobe / SIM-LINE / 1.4.2 / Simulated packaging line",
            "{row}"
        );
    }
    let log = sim.stop();
    assert!(log.contains(&format!("packets to {f}")), "{log}");
    // The capture: no write, and only FC 3 (presence), 43 (identity) and 17 (server ID).
    let w = run(&[
        "decode",
        f,
        "--rtu-port",
        &port,
        "--writes",
        "--format",
        "json",
    ]);
    assert_eq!(w.code, 0, "{}", w.stderr);
    assert_eq!(w.json(), json!([]), "scan wrote something");
    let p = run(&[
        "decode",
        f,
        "--rtu-port",
        &port,
        "--pdus",
        "--format",
        "json",
    ]);
    assert_eq!(p.code, 0, "{}", p.stderr);
    let pdus = p.json();
    let pdus = pdus.as_array().unwrap();
    let mut by_fc: BTreeMap<(u64, String), u64> = BTreeMap::new();
    for pdu in pdus {
        assert_eq!(pdu["crc_ok"], true, "{pdu}");
        *by_fc
            .entry((
                int(&pdu["func_code"]),
                pdu["dir"].as_str().unwrap().to_string(),
            ))
            .or_default() += 1;
    }
    let want: BTreeMap<(u64, String), u64> = [
        ((3, "query"), 247),
        ((3, "response"), 3),
        ((17, "query"), 3),
        ((17, "response"), 3),
        ((43, "query"), 3),
        ((43, "response"), 3),
    ]
    .into_iter()
    .map(|((fc, d), n)| ((fc, d.to_string()), n))
    .collect();
    assert_eq!(by_fc, want);
    // Every unit ID asked exactly once for its presence.
    let mut asked: Vec<u64> = pdus
        .iter()
        .filter(|p| p["func_code"] == 3 && p["dir"] == "query")
        .map(|p| int(&p["unit_id"]))
        .collect();
    asked.sort_unstable();
    assert_eq!(asked, (1..=247).collect::<Vec<u64>>());
}

#[test]
fn scan_247_units_on_a_pty_finds_three() {
    let Some(pair) = PtyPair::new() else { return };
    let _sim = RtuSim::serial(DEMO, &pair.a, &["--units", "3,100,247"]);
    let (rows, took) = scan(
        &format!("rtu://{}?baud=19200&frame=8N1", pair.b),
        "1-247",
        "200ms",
    );
    eprintln!(
        "scan of units 1-247 at 200 ms on a pty (sim serving 3, 100, 247): {:.2} s",
        took.as_secs_f64()
    );
    assert_eq!(units_of(&rows), [3, 100, 247], "{rows:?}");
}

#[test]
fn scan_says_when_adaptive_timeouts_may_miss_a_slow_unit() {
    // Half the answers (seed 1) come 150 ms late; --timeout is 1 s. After the first fast
    // answer the scan gives units 8 x the slowest answer so far, so a slow unit may show as
    // absent; the scan then says so, and each unit scanned alone gets the full timeout.
    let sim = RtuSim::tcp(
        DEMO,
        &[
            "--units",
            "1-5",
            "--fault",
            "delay=150ms@0.5",
            "--seed",
            "1",
        ],
    );
    let target = format!("rtu+tcp://127.0.0.1:{}", sim.tcp_port());
    let r = run(&[
        "scan",
        &target,
        "--units",
        "1-5",
        "--timeout",
        "1s",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let found = units_of(r.json().as_array().expect("rows"));
    if found.len() < 5 {
        assert!(r.stderr.contains("scan it alone"), "{}", r.stderr);
    }
    for u in (1..=5u64).filter(|u| !found.contains(u)) {
        let (rows, _) = scan(&target, &u.to_string(), "1s");
        assert_eq!(units_of(&rows), [u], "unit {u} alone");
    }
}

#[test]
fn scan_shows_the_server_id_as_mbpoll_does() {
    // The simulator's FC17 answer is server ID 0x01, run indicator 0xFF, then "SIM-LINE";
    // mbpoll -u shows `Id: 0x01`, `Status: On`, `Data: SIM-LINE`.
    let Some(pair) = PtyPair::new() else { return };
    let _sim = RtuSim::serial(DEMO, &pair.a, &[]);
    let (rows, _) = scan(
        &format!("rtu://{}?baud=19200&frame=8N1", pair.b),
        "1",
        "300ms",
    );
    assert_eq!(units_of(&rows), [1]);
    let id = rows[0]["server_id"].as_str().unwrap();
    assert!(
        id.contains("SIM-LINE") && !id.contains('\u{FFFD}'),
        "server ID byte and run indicator shown as replacement characters: {id:?}"
    );
}

#[test]
fn sim_record_on_a_serial_port_records_or_refuses() {
    // --record with --rtu: the serial traffic is in the capture, or the simulator says it
    // cannot record it. An empty capture of a busy line misleads.
    let Some(pair) = PtyPair::new() else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("serial.pcapng");
    let f = file.to_str().unwrap();
    let spec = format!("rtu://{}?frame=8N1", pair.a);
    let sim = match RtuSim::try_start(DEMO, &["--rtu", &spec], &["--record", f]) {
        Ok(sim) => sim,
        Err(log) => {
            assert!(log.contains("--record"), "refused, naming --record: {log}");
            return;
        }
    };
    let (r, _, s) = poll(&serial(&pair.b, 1), "hr:106", 3, "1s");
    assert_eq!(r.code, 0, "{s}");
    let log = sim.stop();
    let p = run(&["decode", f, "--pdus", "--format", "json"]);
    assert_eq!(p.code, 0, "{}", p.stderr);
    let pdus = p.json();
    assert_eq!(
        pdus.as_array().unwrap().len(),
        6,
        "3 requests and 3 answers on the line; the sim said: {log}"
    );
}

// --- 7: bad input -------------------------------------------------------------------------------

#[test]
fn rts_on_a_pty_is_bad_input_and_a_missing_echo_is_named() {
    // A pty has no RTS line: --rts is refused when the port opens (exit 3), nothing sent.
    // --echo on a line that does not echo: the answer arrives where the echo was expected.
    let Some(pair) = PtyPair::new() else { return };
    let _sim = RtuSim::serial(DEMO, &pair.a, &[]);
    let target = serial(&pair.b, 1);
    let r = run(&["read", &target, "hr:106", "--rts"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("drop --rts"), "{}", r.stderr);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    let r = run(&["read", &target, "hr:106", "--echo", "--timeout", "300ms"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("does not echo (drop --echo)"),
        "{}",
        r.stderr
    );
    // Without --echo the same read works.
    let r = run(&["read", &target, "hr:106", "--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()[0]["value"], 5);
}

#[test]
fn bad_serial_targets_exit_3_in_one_paragraph() {
    let Some(pair) = PtyPair::new() else { return };
    let b = &pair.b;
    assert!(
        !Path::new("/dev/ttyUSB9").exists(),
        "this test needs /dev/ttyUSB9 absent"
    );
    let cases = [
        (
            format!("rtu://{b}?frame=8X1"),
            "frame `8X1` is not data bits, parity and stop bits like 8E1, 8N2 or 7O1",
        ),
        (
            format!("rtu://{b}?baud=0"),
            "baud `0` is not a positive number",
        ),
        (
            "rtu:///dev/ttyUSB9?baud=19200&frame=8N1&unit=1".to_string(),
            "/dev/ttyUSB9: no such serial port",
        ),
        (
            format!("rtu://{b}?baud=19200&frame=8N1&unit=248"),
            "unit 248: unit 248 is reserved on a serial line",
        ),
        (
            format!("rtu+tcp://127.0.0.1:{}/248", free_port()),
            "unit 248: unit 248 is reserved on a serial line",
        ),
    ];
    for (target, says) in &cases {
        for args in [
            vec!["read", target.as_str(), "hr:0"],
            vec!["poll", target.as_str(), "hr:0", "--count", "1"],
        ] {
            let r = run(&args);
            assert_eq!(r.code, 3, "{args:?}: {}{}", r.stdout, r.stderr);
            one_paragraph(&r, target);
            assert!(r.stderr.contains(says), "{args:?}: {}", r.stderr);
            assert_eq!(r.stdout, "", "{args:?}");
        }
    }
    // scan takes a line, not a unit.
    for (target, says) in &cases[..3] {
        let scan_target = target.replace("&unit=1", "");
        let r = run(&["scan", &scan_target, "--units", "1-2"]);
        assert_eq!(r.code, 3, "scan {scan_target}: {}{}", r.stdout, r.stderr);
        one_paragraph(&r, &scan_target);
        assert!(r.stderr.contains(says), "{}", r.stderr);
    }
}

#[test]
fn a_busy_port_names_the_program_holding_it() {
    let Some(pair) = PtyPair::new() else { return };
    let sim = RtuSim::serial(DEMO, &pair.a, &[]);
    let holder = format!("plcprobe (pid {})", sim.pid());
    let t = serial(&pair.a, 1);
    for args in [
        vec!["read", t.as_str(), "hr:0"],
        vec!["poll", t.as_str(), "hr:0", "--count", "1"],
    ] {
        let r = run(&args);
        assert_eq!(r.code, 3, "{args:?}: {}", r.stderr);
        one_paragraph(&r, &t);
        assert!(
            r.stderr
                .contains(&format!("{}: the port is busy, held by ", pair.a))
                && r.stderr.contains(&holder),
            "{args:?}: {}",
            r.stderr
        );
    }
    let line = format!("rtu://{}?frame=8N1", pair.a);
    let r = run(&["scan", &line, "--units", "1"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    one_paragraph(&r, "scan");
    assert!(r.stderr.contains(&holder), "{}", r.stderr);
    // A second simulator on the same end.
    let r = run(&[
        "sim",
        &crate::util::profile(DEMO),
        "--rtu",
        &line,
        "--duration",
        "3s",
    ]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    one_paragraph(&r, "sim");
    assert!(
        r.stderr.contains("--rtu ") && r.stderr.contains(&holder),
        "{}",
        r.stderr
    );
    // The simulator still serves the other end.
    let r = run(&["read", &serial(&pair.b, 1), "hr:106", "--format", "json"]);
    assert_eq!(words(&r), [5], "{}", sim.log());
}

#[test]
fn write_and_snapshot_on_a_missing_or_busy_serial_port_exit_3_as_read_does() {
    // DESIGN.md: a serial port that cannot be opened (missing, busy) is exit 3; read, poll,
    // scan and sim do so (the tests above). write and snapshot must agree.
    let Some(pair) = PtyPair::new() else { return };
    let sim = RtuSim::serial(DEMO, &pair.a, &[]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("snapshot.json");
    let out = out.to_str().unwrap();
    let demo = crate::util::profile(DEMO);
    for (target, says) in [
        (
            "rtu:///dev/ttyUSB9?baud=19200&frame=8N1&unit=1".to_string(),
            "/dev/ttyUSB9: no such serial port".to_string(),
        ),
        (
            serial(&pair.a, 1),
            // socat, which made the pty pair, holds the end too; the simulator must be named.
            format!("plcprobe (pid {})", sim.pid()),
        ),
    ] {
        for args in [
            vec!["write", target.as_str(), "hr:300", "1", "--allow-write"],
            vec!["snapshot", "-p", &demo, "-o", out, target.as_str()],
        ] {
            let r = run(&args);
            assert_eq!(r.code, 3, "{args:?}: {}", r.stderr);
            one_paragraph(&r, &target);
            assert!(r.stderr.contains(&says), "{args:?}: {}", r.stderr);
        }
    }
    assert!(!Path::new(out).exists(), "no snapshot written");
}
