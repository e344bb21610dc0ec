//! The RTU peers proven against each other, without plcprobe: pymodbus's RTU client reads
//! pymodbus's RTU server over a pty pair (serial, 19200 8N1), over RTU over TCP, and over TCP
//! through a socat serial gateway in front of the serial server; a unit nobody serves stays
//! silent. If these fail, the plcprobe RTU tests built on the same peers cannot be trusted.

use serde_json::{json, Value};

use crate::util::{python, rtu_client, PtyPair, PyRtu, SocatBridge};

/// hr:0..10 of unit 1 in the pymodbus map: hr[0] = the unit ID (1), hr[i] = 3i + 1.
fn unit1_hr0_10() -> Value {
    json!((0..10).map(|i| 3 * i + 1).collect::<Vec<u16>>())
}

/// 20 reads of hr:0+10 from unit 1 at `at` (`--serial PTY` or `--rtu-tcp HOST:PORT`): all good,
/// the right registers; prints the time they took.
fn twenty_reads(py: &std::path::Path, at: &[&str], label: &str) {
    let mut args = at.to_vec();
    args.extend(["--unit", "1", "--count", "20", "--read", "hr:0+10"]);
    let (code, v, run) = rtu_client(py, &args);
    assert_eq!(code, 0, "{label}: {v}");
    assert_eq!(v["ok"], 20, "{label}: {v}");
    assert_eq!(v["errors"], 0, "{label}: {v}");
    assert_eq!(v["first"], unit1_hr0_10(), "{label}: {v}");
    let secs = v["seconds"].as_f64().expect("seconds");
    eprintln!(
        "pymodbus rtu client, {label}: 20 reads of hr:0+10 in {:.1} ms ({:.2} ms/read; \
         whole run with Python's start {:.2} s)",
        secs * 1e3,
        secs * 1e3 / 20.0,
        run.as_secs_f64()
    );
}

#[test]
fn pymodbus_rtu_over_a_pty_pair() {
    let Some(py) = python() else { return };
    let Some(pair) = PtyPair::new() else { return };
    assert!(pair.a.starts_with("/dev/pts/") && pair.b.starts_with("/dev/pts/"));
    assert_ne!(pair.a, pair.b);
    let _server = PyRtu::serial(&py, &pair.a);
    twenty_reads(&py, &["--serial", &pair.b], "serial pty 19200 8N1");
    assert_eq!(
        PyRtu::serial_target(&pair.b, 1),
        format!("rtu://{}?baud=19200&frame=8N1&unit=1", pair.b)
    );
    assert!(PyRtu::serial_target(&pair.b, 1).starts_with("rtu:///dev/pts/"));
}

#[test]
fn pymodbus_rtu_over_tcp() {
    let Some(py) = python() else { return };
    let server = PyRtu::tcp(&py);
    let port = server.port.expect("tcp port");
    let at = format!("127.0.0.1:{port}");
    twenty_reads(&py, &["--rtu-tcp", &at], "RTU over TCP");
    assert_eq!(server.target(2), format!("rtu+tcp://127.0.0.1:{port}/2"));
    // Unit 2 has the same map but hr[0] = 2.
    let (code, v, _) = rtu_client(&py, &["--rtu-tcp", &at, "--unit", "2", "--read", "hr:0+3"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["first"], json!([2, 4, 7]), "{v}");
}

#[test]
fn pymodbus_rtu_through_a_socat_serial_gateway() {
    let Some(py) = python() else { return };
    let Some(pair) = PtyPair::new() else { return };
    let _server = PyRtu::serial(&py, &pair.a);
    let Some(bridge) = SocatBridge::new(&pair.b) else {
        return;
    };
    let at = format!("127.0.0.1:{}", bridge.port);
    twenty_reads(
        &py,
        &["--rtu-tcp", &at],
        "TCP -> socat -> pty (serial gateway)",
    );
    // The bridge serves one client after another (a serial line has one master at a time).
    twenty_reads(&py, &["--rtu-tcp", &at], "serial gateway, second client");
    assert_eq!(
        bridge.target(1),
        format!("rtu+tcp://127.0.0.1:{}/1", bridge.port)
    );
}

#[test]
fn a_unit_nobody_serves_stays_silent_on_the_serial_line() {
    let Some(py) = python() else { return };
    let Some(pair) = PtyPair::new() else { return };
    let _server = PyRtu::serial(&py, &pair.a);
    let (code, v, run) = rtu_client(
        &py,
        &[
            "--serial",
            &pair.b,
            "--unit",
            "5",
            "--count",
            "2",
            "--read",
            "hr:0+10",
            "--timeout",
            "0.3",
        ],
    );
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["ok"], 0, "{v}");
    assert_eq!(v["timeouts"], 2, "no answer at all, not an exception: {v}");
    assert_eq!(v["exceptions"], json!([]), "{v}");
    assert!(
        v["seconds"].as_f64().unwrap() >= 0.55,
        "two reads must each wait out the 0.3 s timeout: {v}"
    );
    eprintln!(
        "unit 5 (not served) over serial: 2 reads timed out in {:.2} s (run {:.2} s)",
        v["seconds"].as_f64().unwrap(),
        run.as_secs_f64()
    );
    // The line is still usable afterwards: unit 1 answers.
    twenty_reads(&py, &["--serial", &pair.b], "serial, after the silent unit");
}

#[test]
fn pymodbus_itself_answers_unknown_units_with_exception_4() {
    // What --answer-unknown keeps: pymodbus 3.16.1 answers any unit (0x04 Server Device Failure);
    // its ignore_missing_devices option does not silence it (see the server's docstring).
    let Some(py) = python() else { return };
    let server = PyRtu::tcp_with(&py, &["--answer-unknown"]);
    let at = format!("127.0.0.1:{}", server.port.unwrap());
    let (code, v, _) = rtu_client(&py, &["--rtu-tcp", &at, "--unit", "5", "--timeout", "2"]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["exceptions"], json!([4]), "{v}");
    // Without it, the same request over RTU over TCP is not answered either.
    let silent = PyRtu::tcp(&py);
    let at = format!("127.0.0.1:{}", silent.port.unwrap());
    let (_, v, _) = rtu_client(&py, &["--rtu-tcp", &at, "--unit", "5", "--timeout", "0.3"]);
    assert_eq!(
        (v["timeouts"].clone(), v["ok"].clone()),
        (json!(1), json!(0)),
        "{v}"
    );
}
