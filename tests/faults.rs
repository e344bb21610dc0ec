//! The simulator's fault injection against poll: every request is accounted for, by kind.

use serde_json::Value;

use std::time::Duration;

use crate::util::{run, wait_recorded, Sim};

fn stats(stderr: &str) -> Value {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.contains("\"statistics\""))
        .unwrap_or_else(|| panic!("no statistics in: {stderr}"));
    serde_json::from_str(line).unwrap()
}

fn errors(s: &Value, key: &str) -> u64 {
    s["errors"][key].as_u64().unwrap_or(0)
}

fn accounted(s: &Value) {
    let errs: u64 = s["errors"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(
        s["sent"].as_u64().unwrap(),
        s["received"].as_u64().unwrap() + errs,
        "sent = received + errors: {s}"
    );
}

#[test]
fn drop_is_counted_as_timeouts_and_the_poll_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("drop.pcapng");
    let f = rec.to_str().unwrap();
    let sim = Sim::start(
        "demo-line.toml",
        &["--fault", "drop=0.1", "--seed", "42", "--record", f],
    );
    // 250 ms: far above a loopback answer even on a loaded machine, so every timeout is a drop.
    let r = run(&[
        "poll",
        &sim.target(1),
        "hr:106",
        "--interval",
        "0",
        "--count",
        "200",
        "--timeout",
        "250ms",
        "-q",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 1, "partial failure is WARNING: {}", r.stderr);
    let s: Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(s["sent"], 200);
    accounted(&s);
    let t = errors(&s, "timeout");
    assert!((5..=45).contains(&t), "about 10% of 200 dropped: {t}");
    assert_eq!(s["received"].as_u64().unwrap(), 200 - t);
    // Every timeout drops the connection so a late reply can't be taken for the next answer.
    assert_eq!(s["connects"].as_u64().unwrap(), t + 1, "{s}");
    // The simulator's own record: exactly the requests it never answered timed out.
    let doc = wait_recorded(f, 200, Duration::from_secs(30));
    assert_eq!(doc["totals"]["unanswered"].as_u64(), Some(t), "{doc}");
}

#[test]
fn exceptions_are_counted_by_code() {
    let sim = Sim::start("demo-line.toml", &["--fault", "exception=0x06@0.3"]);
    let r = run(&[
        "poll",
        &sim.target(1),
        "hr:106",
        "--interval",
        "0",
        "--count",
        "100",
        "--format",
        "jsonl",
    ]);
    assert_eq!(r.code, 1);
    let s = stats(&r.stderr);
    accounted(&s);
    let busy = errors(&s, "exception_0x06");
    assert!((10..=50).contains(&busy), "{s}");
    let rows = r.jsonl();
    assert_eq!(
        rows.iter()
            .filter(|r| r["status"] == "0x06 Server Device Busy")
            .count() as u64,
        busy
    );
    assert_eq!(s["connects"], 1, "an exception is an answer: no reconnect");
}

#[test]
fn disconnects_reconnect_and_keep_polling() {
    let sim = Sim::start("demo-line.toml", &["--fault", "disconnect-every=10"]);
    let r = run(&[
        "poll",
        &sim.target(1),
        "hr:106",
        "--interval",
        "0",
        "--count",
        "50",
        "-q",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let s: Value = serde_json::from_str(r.stdout.trim()).unwrap();
    accounted(&s);
    // Each connection answers 9 requests and is cut at the 10th: 50 requests, 5 connections.
    assert_eq!(
        errors(&s, "connection"),
        5,
        "every 10th request is cut: {s}"
    );
    assert_eq!(s["received"], 45, "{s}");
    assert_eq!(s["connects"], 5, "{s}");
}

#[test]
fn garbage_is_a_protocol_error() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("garbage.pcapng");
    let f = rec.to_str().unwrap();
    let sim = Sim::start(
        "demo-line.toml",
        &["--fault", "garbage=0.2", "--seed", "3", "--record", f],
    );
    let r = run(&[
        "poll",
        &sim.target(1),
        "hr:106",
        "--interval",
        "0",
        "--count",
        "100",
        "-q",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 1);
    let s: Value = serde_json::from_str(r.stdout.trim()).unwrap();
    accounted(&s);
    // Exactly the answers the simulator garbled, as its own recording shows them.
    wait_recorded(f, 100, Duration::from_secs(30));
    let garbled = run(&["decode", f, "--transactions", "--format", "jsonl"])
        .jsonl()
        .iter()
        .filter(|t| t["status"] == "mismatch")
        .count() as u64;
    assert!(garbled > 0, "the fault fired");
    assert_eq!(errors(&s, "protocol"), garbled, "{s}");
}

#[test]
fn delay_beyond_timeout_is_critical() {
    let sim = Sim::start("demo-line.toml", &["--fault", "delay=300ms"]);
    let r = run(&[
        "poll",
        &sim.target(1),
        "hr:106",
        "--interval",
        "0",
        "--count",
        "3",
        "--timeout",
        "100ms",
        "-q",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 2, "nothing answered in time: CRITICAL");
    let s: Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(errors(&s, "timeout"), 3);
    // Within the timeout the delay shows in the round-trip time.
    let r = run(&[
        "poll",
        &sim.target(1),
        "hr:106",
        "--interval",
        "0",
        "--count",
        "2",
        "--timeout",
        "1s",
        "-q",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0);
    let s: Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert!(s["rtt_ms"]["min"].as_f64().unwrap() >= 290.0, "{s}");
}

#[test]
fn refused_connections_back_off_and_count() {
    let port = crate::util::free_port();
    let r = run(&[
        "poll",
        &format!("modbus://127.0.0.1:{port}/1"),
        "hr:0",
        "--interval",
        "0",
        "--duration",
        "1s",
        "-q",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 2);
    let s: Value = serde_json::from_str(r.stdout.trim()).unwrap();
    let n = errors(&s, "connection");
    // With backoff 100 ms, 200 ms, 400 ms … a second holds a handful of attempts, not thousands.
    assert!((2..=8).contains(&n), "{s}");
    accounted(&s);
}
