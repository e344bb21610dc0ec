//! The serial sweep and the passive listen (`scan --baud/--frame`, `scan --listen`) through the
//! bit-level UART model of `uart.rs`: what a pty cannot show, because a pty ignores baud, parity
//! and stop bits. The device is plcprobe's own simulator serving RTU on one end of a modelled
//! line; the scan is the library's `sweep_with` / `listen_with`, given the other end.
//!
//! What the model says, and these tests assert (`verdict` for the sweep, `listen_scores`):
//!
//! - Sweep against a 9600 8E1 device: only 9600 8E1 answers. A 9600 8N1 request is 10-bit
//!   characters back to back: the device takes our stop bit for its parity bit and samples its
//!   stop bit in the centre of our next start bit (low): a framing error on every character
//!   but the last, 0x00 under INPCK, and the receiver is out of step besides. A 9600 8N2
//!   request has the right length (11 bits), but our first stop bit (always high) lands where
//!   the device expects parity: every character with an even count of ones (0x00, 0x03, ...)
//!   is a parity error, 0x00. 8O1 inverts every parity bit. 19200 is garbage both ways.
//! - Sweep against a 9600 8N2 device: 9600 8N1 answers too, and comes first in the sweep. The
//!   device checks only its first stop bit, so our 10-bit characters read cleanly; its 11-bit
//!   answer is our 10-bit character and a longer idle. 9600 8E1 and 8O1 do not, but not for
//!   want of a device: it (no INPCK) reads our requests, our parity bit taken as its stop bit,
//!   and answers; its answer's first stop bit (high) is our parity bit, wrong for the
//!   characters with an even (8E1) or odd (8O1) count of ones, so the probe ends in a CRC
//!   failure, not a timeout: the sign of a device at another framing.
//! - Listen: at the true baud, a receiver with no parity reads a parity framing cleanly (its
//!   stop bit is the parity bit; a framing error without INPCK is invisible), and 8N2 reads 8N1
//!   (it checks one stop bit); the opposite parity reads nothing but 0x00s, and parity on a
//!   no-parity line gives framing errors. `best_setting` prefers parity among clean settings.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    time::{Duration, Instant},
};

use indicatif::ProgressBar;
use plcprobe::{
    device::modbus_scan::{
        best_setting, listen_with, score_bytes, sweep_with, LineScore, UnitFinding,
    },
    profile::Profile,
    proto::modbus::rtu::{adu, encode_exception, encode_request, encode_response, next_request},
    sim::{self, Faults, SimConfig, SimHandle},
    target::{Parity as LineParity, Target},
    transport::rtu::{LineSettings, Port, SerialOptions},
};
use tokio::io::AsyncWriteExt as _;
use tokio_modbus::{Request, Response};

use crate::{
    uart::{delivered, line_pair, transmit, LineEnd, Parity, Setting},
    util,
};

// A modelled line is a serial port as far as the RTU wire is concerned (no RTS, nothing
// queued: one write is one burst on the wire).
impl Port for LineEnd {}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// `line(9600, "8E1")`: plcprobe's settings.
fn line(baud: u32, frame: &str) -> LineSettings {
    setting_line(Setting::parse(baud, frame))
}

fn setting_line(s: Setting) -> LineSettings {
    LineSettings {
        baud: s.baud,
        data_bits: s.data_bits,
        parity: match s.parity {
            Parity::None => LineParity::None,
            Parity::Even => LineParity::Even,
            Parity::Odd => LineParity::Odd,
        },
        stop_bits: s.stop_bits,
    }
}

/// The model's setting for plcprobe's.
fn model(l: LineSettings) -> Setting {
    Setting {
        baud: l.baud,
        data_bits: l.data_bits,
        parity: match l.parity {
            LineParity::None => Parity::None,
            LineParity::Even => Parity::Even,
            LineParity::Odd => Parity::Odd,
        },
        stop_bits: l.stop_bits,
    }
}

// --- Sweep -----------------------------------------------------------------------------------

/// The units the simulator serves, and the units the sweep asks for (1 is absent: silent).
const SERVED: [u8; 2] = [3, 7];
const ASKED: [u8; 3] = [1, 3, 7];

/// The sweep's settings, in order. Wrong bauds first, then the 9600 framings.
fn sweep_settings() -> Vec<LineSettings> {
    vec![
        line(19200, "8N1"),
        line(19200, "8E1"),
        line(9600, "8N1"),
        line(9600, "8O1"),
        line(9600, "8E1"),
        line(9600, "8N2"),
    ]
}

async fn simulator() -> SimHandle {
    let profile = Profile::load(Path::new(&util::profile("demo-line.toml"))).expect("profile");
    sim::start(SimConfig {
        profile,
        listen: Vec::new(),
        rtu: Vec::new(),
        rtu_tcp: Vec::new(),
        units: SERVED.to_vec(),
        faults: Faults::default(),
        seed: 1,
        record: None,
    })
    .await
    .expect("simulator")
}

fn rtu_target(l: LineSettings) -> Target {
    Target::Rtu {
        path: "/dev/ttyMODEL0".to_string(),
        baud: l.baud,
        data_bits: l.data_bits,
        parity: l.parity,
        stop_bits: l.stop_bits,
        unit: 1,
    }
}

/// What happens to `unit`'s presence probe (FC03, hr:0, one register) sent at `client` to a
/// device at `device`, by the model alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// The device does not find the request: the probe times out.
    Deaf,
    /// The device answers, but the answer reaches the client garbled: a CRC failure.
    Garbled,
    /// The client reads the answer: the unit is present.
    Answers,
}

/// The device finds the request if a CRC-valid request is anywhere in what it read (as the
/// simulator looks for one); the answer (demo-line maps no hr:0: exception 0x02) must reach
/// the client intact. Unit 1 is not served: always `Deaf`.
fn verdict(client: Setting, device: Setting, unit: u8) -> Verdict {
    let req = adu(unit, &encode_request(&Request::ReadHoldingRegisters(0, 1)));
    let at_device = delivered(&transmit(&[(0.0, req.clone())], client, device), device);
    let heard = next_request(&at_device).is_some_and(|(i, n)| at_device[i..i + n] == req[..]);
    if !heard || !SERVED.contains(&unit) {
        return Verdict::Deaf;
    }
    let ans = adu(unit, &encode_exception(0x03, 0x02));
    let at_client = delivered(&transmit(&[(0.0, ans.clone())], device, client), client);
    if at_client.windows(ans.len()).any(|w| w == ans.as_slice()) {
        Verdict::Answers
    } else {
        Verdict::Garbled
    }
}

/// The settings of `settings` at which the model says every served unit of a device at
/// `truth` gives `v`.
fn verdicts(settings: &[LineSettings], truth: Setting, v: Verdict) -> Vec<LineSettings> {
    settings
        .iter()
        .copied()
        .filter(|&l| SERVED.iter().all(|&u| verdict(model(l), truth, u) == v))
        .collect()
}

/// Run a sweep of `settings` for `units` against the simulator on a line whose device end is
/// set to `truth` (unpaced): each setting tried opens a fresh modelled line, client end at
/// that setting, device end served by the simulator.
async fn sweep(
    truth: Setting,
    settings: &[LineSettings],
    units: &[u8],
    all: bool,
) -> (Vec<(LineSettings, UnitFinding)>, Option<LineSettings>) {
    let mut sim = simulator().await;
    let target = rtu_target(setting_line(truth));
    let (found, stopped) = sweep_with(
        &target,
        settings,
        units,
        Duration::from_millis(150),
        SerialOptions::default(),
        all,
        &ProgressBar::hidden(),
        |l| {
            let (client, device) = line_pair(model(l), truth, false);
            sim.serve_rtu(device);
            Ok(Box::new(client) as Box<dyn Port>)
        },
    )
    .await
    .expect("sweep");
    let found = found
        .into_iter()
        .map(|(l, f)| (l.expect("a sweep names every finding's setting"), f))
        .collect();
    (found, stopped)
}

fn texts(settings: &[LineSettings]) -> Vec<String> {
    settings.iter().map(LineSettings::text).collect()
}

/// The model's verdicts for the two devices the sweep tests use: the figures in the module
/// header, and a check of the model against the reasoning there.
#[test]
fn sweep_verdicts_follow_the_uart() {
    let settings = sweep_settings();
    let e1 = Setting::parse(9600, "8E1");
    assert_eq!(
        texts(&verdicts(&settings, e1, Verdict::Answers)),
        ["9600-8E1"]
    );
    assert!(verdicts(&settings, e1, Verdict::Garbled).is_empty());
    let n2 = Setting::parse(9600, "8N2");
    assert_eq!(
        texts(&verdicts(&settings, n2, Verdict::Answers)),
        ["9600-8N1", "9600-8N2"]
    );
    // Parity on our side: the 8N2 device reads the request (no INPCK), we cannot read it.
    assert_eq!(
        texts(&verdicts(&settings, n2, Verdict::Garbled)),
        ["9600-8O1", "9600-8E1"]
    );

    // The reasons, byte by byte, for the 9600 8E1 device and unit 3's probe.
    let req = adu(3, &encode_request(&Request::ReadHoldingRegisters(0, 1)));
    assert_eq!(req, [0x03, 0x03, 0x00, 0x00, 0x00, 0x01, 0x85, 0xE8]);
    // 8N1: framing errors (our next start bit under its stop sample) on all but the last.
    let rx = transmit(&[(0.0, req.clone())], Setting::parse(9600, "8N1"), e1);
    assert!(rx[..rx.len() - 1].iter().all(|r| r.framing_error), "{rx:?}");
    // 8N2: intact framing; parity errors exactly on the bytes with an even count of ones.
    let rx = transmit(&[(0.0, req.clone())], n2, e1);
    assert_eq!(rx.len(), req.len());
    for (r, b) in rx.iter().zip(&req) {
        assert_eq!((r.byte, r.framing_error), (*b, false));
        assert_eq!(r.parity_error, b.count_ones() % 2 == 0, "{b:#04x}");
    }
    // 8O1: every parity bit inverted.
    let rx = transmit(&[(0.0, req.clone())], Setting::parse(9600, "8O1"), e1);
    assert!(rx.iter().all(|r| r.parity_error && !r.framing_error));
    assert_eq!(delivered(&rx, e1), vec![0; req.len()]);
}

/// Assert what a sweep of `sweep_settings()` for `ASKED` found against the model's verdicts:
/// where it stopped, which settings it tried, and per setting and unit, present or not and
/// why not (a timeout where the device is deaf, a CRC failure where its answer is garbled).
fn check_sweep(
    truth: Setting,
    all: bool,
    found: &[(LineSettings, UnitFinding)],
    stopped: Option<LineSettings>,
) {
    let settings = sweep_settings();
    let answer = verdicts(&settings, truth, Verdict::Answers);
    let tried: &[LineSettings] = if all {
        assert_eq!(stopped, None, "{truth}: --all never stops");
        &settings
    } else {
        // Stopped at the first setting the model says answers: one the device really answers.
        let first = answer[0];
        assert_eq!(stopped, Some(first), "{truth}: {found:?}");
        &settings[..=settings.iter().position(|&l| l == first).unwrap()]
    };
    let want: Vec<(LineSettings, u8)> = tried.iter().flat_map(|&l| ASKED.map(|u| (l, u))).collect();
    let got: Vec<(LineSettings, u8)> = found.iter().map(|(l, f)| (*l, f.unit)).collect();
    assert_eq!(got, want, "{truth}: a finding per setting tried and unit");
    for (l, f) in found {
        let at = format!("{truth}: unit {} at {}: {f:?}", f.unit, l.text());
        match verdict(model(*l), truth, f.unit) {
            Verdict::Answers => {
                // demo-line maps no hr:0; identity and server ID come over the line too.
                assert!(f.present, "{at}");
                assert_eq!(f.answer, "0x02 Illegal Data Address", "{at}");
                assert!(f.identity.contains("SIM-LINE"), "{at}");
                assert!(f.server_id.contains("SIM-LINE"), "{at}");
            }
            Verdict::Garbled => assert_eq!((f.present, f.answer.as_str()), (false, "crc"), "{at}"),
            Verdict::Deaf => assert_eq!((f.present, f.answer.as_str()), (false, "timeout"), "{at}"),
        }
        // Never a unit the simulator does not serve, at any setting.
        assert!(!f.present || SERVED.contains(&f.unit), "{at}");
    }
}

#[test]
fn sweep_stops_where_an_8e1_device_answers() {
    let truth = Setting::parse(9600, "8E1");
    let (found, stopped) = block_on(sweep(truth, &sweep_settings(), &ASKED, false));
    check_sweep(truth, false, &found, stopped);
    assert_eq!(stopped, Some(line(9600, "8E1")));
}

#[test]
fn sweep_all_finds_only_8e1_on_an_8e1_device() {
    let truth = Setting::parse(9600, "8E1");
    let (found, stopped) = block_on(sweep(truth, &sweep_settings(), &ASKED, true));
    check_sweep(truth, true, &found, stopped);
}

#[test]
fn sweep_stops_at_8n1_on_an_8n2_device() {
    let truth = Setting::parse(9600, "8N2");
    let (found, stopped) = block_on(sweep(truth, &sweep_settings(), &ASKED, false));
    check_sweep(truth, false, &found, stopped);
    assert_eq!(
        stopped,
        Some(line(9600, "8N1")),
        "8N1 comes first and works"
    );
}

#[test]
fn sweep_all_finds_8n1_and_8n2_on_an_8n2_device() {
    let truth = Setting::parse(9600, "8N2");
    let (found, stopped) = block_on(sweep(truth, &sweep_settings(), &ASKED, true));
    check_sweep(truth, true, &found, stopped);
}

/// A present unit's `ms` is its presence probe's round trip. At 1200 8E1, t3.5 is 32 ms and
/// the simulator answers on an unpaced line within a few milliseconds, so no unit's `ms` should
/// come near t3.5. (It once did: the clock started before the t3.5 wait; the RTU wire now times
/// from the request sent to its answer.)
#[test]
fn sweep_ms_is_the_round_trip_without_the_silence_before() {
    let truth = Setting::parse(1200, "8E1");
    let t35 = setting_line(truth).timing().t35;
    assert!(t35 > Duration::from_millis(30), "{t35:?}");
    let (found, _) = block_on(sweep(truth, &[setting_line(truth)], &SERVED, false));
    let ms: Vec<f64> = found
        .iter()
        .filter_map(|(_, f)| f.rtt.map(|d| d.as_secs_f64() * 1000.0))
        .collect();
    assert_eq!(ms.len(), SERVED.len(), "{found:?}");
    for m in ms {
        assert!(m < t35.as_secs_f64() * 1000.0 / 2.0, "{m} ms: {found:?}");
    }
}

// --- Listen ----------------------------------------------------------------------------------

/// The units a master polls, and with which function codes.
const POLLED: [u8; 2] = [2, 5];
const FCS: [u8; 2] = [3, 4];

/// A master's polling session on a line at `truth`, `cycles` times over: for units 2 and 5,
/// FC03 then FC04, each request followed by the device's answer. Idle time before each
/// request is twice the line's t3.5, before each answer t3.5 and a millisecond of turnaround.
fn session(truth: Setting, cycles: u16) -> Vec<(f64, Vec<u8>)> {
    let t35 = setting_line(truth).timing().t35.as_secs_f64();
    let mut bursts = Vec::new();
    for c in 0..cycles {
        for unit in POLLED {
            let u = u16::from(unit);
            let regs = vec![u * 1000 + c, 0xBEEF ^ c, 0x00FF, 0x8001 + c];
            for fc in FCS {
                let (req, rsp) = if fc == 3 {
                    (
                        Request::ReadHoldingRegisters(100, 4),
                        Response::ReadHoldingRegisters(regs.clone()),
                    )
                } else {
                    (
                        Request::ReadInputRegisters(10, 3),
                        Response::ReadInputRegisters(regs[1..].to_vec()),
                    )
                };
                bursts.push((2.0 * t35, adu(unit, &encode_request(&req))));
                bursts.push((t35 + 0.001, adu(unit, &encode_response(&rsp))));
            }
        }
    }
    bursts
}

fn listen_candidates() -> Vec<LineSettings> {
    let mut out = Vec::new();
    for baud in [9600, 19200, 38400, 57600, 115_200] {
        for frame in ["8E1", "8O1", "8N1", "8N2"] {
            out.push(line(baud, frame));
        }
    }
    out
}

/// What a master polls, as `LineScore::polled` says it.
fn polled_map() -> BTreeMap<u8, BTreeSet<u8>> {
    POLLED
        .into_iter()
        .map(|u| (u, FCS.into_iter().collect()))
        .collect()
}

fn table(scores: &[(LineSettings, LineScore)]) -> String {
    scores
        .iter()
        .map(|(l, s)| {
            format!(
                "{:>12} bytes {:4} frames {:3} share {:.2} polled {:?}\n",
                l.text(),
                s.bytes,
                s.frames,
                s.share(),
                s.polled
            )
        })
        .collect()
}

/// Scores of every candidate for a session sent at `truth`, as `listen` would compute them.
fn listen_scores(truth: Setting, cycles: u16) -> Vec<(LineSettings, LineScore)> {
    let bursts = session(truth, cycles);
    listen_candidates()
        .into_iter()
        .map(|l| {
            let rx = model(l);
            (
                l,
                score_bytes(&delivered(&transmit(&bursts, truth, rx), rx)),
            )
        })
        .collect()
}

#[test]
fn listen_picks_the_true_setting() {
    let cycles = 3;
    let frames = usize::from(cycles) * POLLED.len() * FCS.len() * 2;
    for (baud, frame) in [
        (9600, "8E1"),
        (19200, "8N1"),
        (38400, "8O1"),
        (115_200, "8E1"),
    ] {
        let truth = Setting::parse(baud, frame);
        let scores = listen_scores(truth, cycles);
        let t = table(&scores);
        let best = best_setting(&scores).unwrap_or_else(|| panic!("{truth}: no verdict\n{t}"));
        let (l, s) = &scores[best];
        assert_eq!(l.baud, baud, "{truth}: picked {}\n{t}", l.text());
        assert_eq!(model(*l).parity, truth.parity, "{truth}: {}\n{t}", l.text());
        if truth.parity != Parity::None {
            assert_eq!(l.stop_bits, 1, "{truth}: {}", l.text());
        }
        assert_eq!((s.frames, s.share()), (frames, 1.0), "{truth}\n{t}");
        assert_eq!(s.polled, polled_map(), "{truth}");
        assert_eq!(
            s.answers,
            POLLED
                .into_iter()
                .map(|u| (u, usize::from(cycles) * FCS.len()))
                .collect(),
            "{truth}"
        );
        // The settings that read every frame: the truth, and at its baud the no-parity
        // receivers (8N1, 8N2), which read a parity framing cleanly.
        let clean: BTreeSet<String> = scores
            .iter()
            .filter(|(_, s)| s.frames == frames && (s.share() - 1.0).abs() < f64::EPSILON)
            .map(|(l, _)| l.text())
            .collect();
        let want: BTreeSet<String> = ["8N1", "8N2", frame]
            .into_iter()
            .map(|f| line(baud, f).text())
            .collect();
        assert_eq!(clean, want, "{truth}\n{t}");
        // Nothing else comes near the 90% a verdict needs.
        for (l, s) in &scores {
            if !want.contains(&l.text()) {
                assert!(
                    s.frames < 3 || s.share() < 0.9,
                    "{truth}: {}\n{t}",
                    l.text()
                );
            }
        }
    }
}

/// `listen_with` over modelled lines: a master task polls (paced: each burst arrives after
/// its wire time) at 19200 8E1 while the listen opens each candidate in turn.
#[test]
fn listen_with_hears_a_paced_master() {
    let truth = Setting::parse(19200, "8E1");
    let candidates = vec![
        line(9600, "8E1"),
        line(19200, "8N1"),
        line(19200, "8O1"),
        line(19200, "8E1"),
        line(38400, "8E1"),
    ];
    let bursts = session(truth, 1);
    let t0 = Instant::now();
    let scores = block_on(async {
        let mut master: Option<tokio::task::JoinHandle<()>> = None;
        let scores = listen_with(
            &candidates,
            Duration::from_secs(1),
            |l| {
                if let Some(m) = master.take() {
                    m.abort();
                }
                let (mut bus, listener) = line_pair(truth, model(l), true);
                let bursts = bursts.clone();
                master = Some(tokio::spawn(async move {
                    loop {
                        for (idle, bytes) in &bursts {
                            tokio::time::sleep(Duration::from_secs_f64(*idle)).await;
                            bus.write_all(bytes).await.expect("write");
                            // A write returns at once; the burst is on the wire this long.
                            let wire = bytes.len() as f64 * truth.char_time();
                            tokio::time::sleep(Duration::from_secs_f64(wire)).await;
                        }
                    }
                }));
                Ok(Box::new(listener) as Box<dyn Port>)
            },
            &ProgressBar::hidden(),
        )
        .await
        .expect("listen");
        if let Some(m) = master.take() {
            m.abort();
        }
        scores
    });
    let t = table(&scores);
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    let best = best_setting(&scores).unwrap_or_else(|| panic!("no verdict\n{t}"));
    assert_eq!(scores[best].0, line(19200, "8E1"), "\n{t}");
    let s = &scores[best].1;
    assert!(s.frames >= 8, "a session at least\n{t}");
    assert_eq!(s.polled, polled_map());
    // 8N1 hears it all too (and loses to parity); 8O1 hears only 0x00s, the wrong bauds no frame.
    let at = |text: &str| &scores.iter().find(|(l, _)| l.text() == text).unwrap().1;
    assert!(
        (at("19200-8N1").share() - 1.0).abs() < f64::EPSILON,
        "\n{t}"
    );
    assert_eq!(at("19200-8O1").frames, 0, "\n{t}");
    assert!(at("19200-8O1").bytes > 0, "\n{t}");
    for wrong in ["9600-8E1", "38400-8E1"] {
        assert!(
            at(wrong).frames < 3 || at(wrong).share() < 0.9,
            "{wrong}\n{t}"
        );
    }
}
