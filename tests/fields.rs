//! The machine outputs' field names, pinned: each command's jsonl rows carry exactly these keys
//! in this order (docs/DESIGN.md §7), and `--format json` is one array of the same objects.
//! A change here is a change of the outside contract: say it in DESIGN.md and the README.

use serde_json::Value;

use crate::util::{self, run, Sim};

/// The keys of a jsonl row, in order.
fn keys(row: &Value) -> Vec<&str> {
    row.as_object()
        .unwrap_or_else(|| panic!("a row is an object: {row}"))
        .keys()
        .map(String::as_str)
        .collect()
}

/// Run `args` as jsonl and as json: every jsonl row has `want` as its keys, and json is the
/// array of the same rows. Returns the rows.
fn pinned(args: &[&str], want: &[&str]) -> Vec<Value> {
    let mut a: Vec<&str> = args.to_vec();
    a.extend(["--format", "jsonl"]);
    let r = run(&a);
    let rows = r.jsonl();
    assert!(!rows.is_empty(), "{args:?} printed no row: {}", r.stderr);
    for row in &rows {
        assert_eq!(keys(row), want, "{args:?}");
    }
    let mut a: Vec<&str> = args.to_vec();
    a.extend(["--format", "json"]);
    let j = run(&a).json();
    let arr = j
        .as_array()
        .unwrap_or_else(|| panic!("{args:?} json is an array: {j}"));
    assert_eq!(arr.len(), rows.len(), "{args:?}");
    for (x, y) in arr.iter().zip(&rows) {
        assert_eq!(keys(x), keys(y), "{args:?}");
    }
    rows
}

#[test]
fn read_write_poll_and_scan_rows_keep_their_fields() {
    let sim = Sim::start("demo-line.toml", &["--units", "1-2"]);
    let t1 = sim.target(1);
    let t2 = sim.target(2);
    let profile = util::profile("demo-line.toml");
    let rows = pinned(
        &["read", &t1, "hr:104..106"],
        &["address", "modicon", "type", "raw", "value", "status"],
    );
    assert_eq!(rows.len(), 2);
    pinned(
        &["read", &t1, &t2, "hr:104"],
        &[
            "device", "address", "modicon", "type", "raw", "value", "status",
        ],
    );
    let named = pinned(
        &["read", &t1, "--profile", &profile],
        &[
            "name", "address", "modicon", "type", "raw", "value", "unit", "status",
        ],
    );
    assert!(named.len() > 5);
    pinned(
        &["read", &t1, "hr:100+2", "--guess"],
        &["address", "modicon", "registers", "type", "order", "value"],
    );
    pinned(
        &["write", &t1, "hr:110", "7", "--allow-write"],
        &[
            "address", "modicon", "type", "function", "before", "written", "after", "status",
        ],
    );
    let polls = pinned(
        &[
            "poll",
            &t1,
            "hr:104",
            "hr:105",
            "--count",
            "3",
            "--interval",
            "0",
        ],
        &["time", "seq", "rtt_ms", "status", "hr:104", "hr:105"],
    );
    assert_eq!(polls.len(), 3, "one row per poll");
    pinned(
        &[
            "scan",
            &format!("modbus://{}", sim.addrs[0]),
            "--units",
            "1-3",
        ],
        &["unit", "present", "answer", "identity", "server_id", "ms"],
    );
}

#[test]
fn decode_rows_keep_their_fields() {
    let f = util::root()
        .join("fixtures/pcap/modbus/sim-poll-exceptions-write.pcapng")
        .display()
        .to_string();
    // Transactions: the keys that apply, in the order of the full column list.
    let all = [
        "time",
        "proto",
        "master",
        "device",
        "id",
        "function",
        "function_name",
        "address",
        "count",
        "write_address",
        "write_count",
        "target",
        "status",
        "exception_code",
        "exception",
        "status_code",
        "response_function",
        "rt_ms",
        "request_frame",
        "response_frame",
        "values",
        "info",
    ];
    let r = run(&["decode", &f, "--transactions", "--format", "jsonl"]);
    let tx = r.jsonl();
    assert!(tx.len() > 10, "{}", r.stderr);
    for t in &tx {
        let k = keys(t);
        let mut at = all.iter();
        for key in &k {
            assert!(
                at.any(|a| a == key),
                "{key} out of order or unknown in {k:?}"
            );
        }
        for must in [
            "time", "proto", "master", "device", "id", "function", "status",
        ] {
            assert!(k.contains(&must), "{must} missing in {k:?}");
        }
    }
    let ok = tx
        .iter()
        .find(|t| t["status"] == "ok")
        .expect("an answered read");
    assert_eq!(
        keys(ok),
        [
            "time",
            "proto",
            "master",
            "device",
            "id",
            "function",
            "function_name",
            "address",
            "count",
            "status",
            "rt_ms",
            "request_frame",
            "response_frame"
        ]
    );
    let exc = tx
        .iter()
        .find(|t| t["status"] == "exception")
        .expect("an exception");
    assert!(keys(exc).contains(&"exception_code") && keys(exc).contains(&"info"));
    // csv: every column, in the same order, whatever applies.
    let csv = run(&["decode", &f, "--transactions", "--format", "csv"]);
    assert_eq!(csv.stdout.lines().next(), Some(all.join(",").as_str()));
    assert_eq!(csv.stdout.lines().count(), tx.len() + 1);
    // json: one array of the same objects.
    let j = run(&["decode", &f, "--transactions", "--format", "json"]).json();
    assert_eq!(j.as_array().map(Vec::len), Some(tx.len()));
    // The summary's device rows.
    let dev = run(&["decode", &f, "--format", "jsonl"]).jsonl();
    assert_eq!(
        keys(&dev[0]),
        [
            "device",
            "proto",
            "requests",
            "answered",
            "exceptions",
            "unanswered",
            "pending",
            "held",
            "malformed",
            "writes",
            "unsolicited",
            "rt_min_ms",
            "rt_p50_ms",
            "rt_p95_ms",
            "rt_max_ms"
        ]
    );
}

#[test]
fn diff_check_and_opcua_rows_keep_their_fields() {
    let sim = Sim::start("demo-line.toml", &[]);
    let t = sim.target(1);
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.json");
    let profile = util::profile("demo-line.toml");
    let r = run(&[
        "snapshot",
        &t,
        "--profile",
        &profile,
        "-o",
        base.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // diff: rows in jsonl and csv; json is the results document.
    let rows = run(&[
        "diff",
        base.to_str().unwrap(),
        &t,
        "--all",
        "--format",
        "jsonl",
    ])
    .jsonl();
    assert_eq!(rows.len(), 12, "one row per point with --all");
    for row in &rows {
        assert_eq!(
            keys(row),
            [
                "verdict",
                "name",
                "address",
                "baseline",
                "current",
                "delta",
                "tolerance",
                "unit",
                "severity",
                "note"
            ]
        );
    }
    let doc = run(&["diff", base.to_str().unwrap(), &t, "--format", "json"]).json();
    assert_eq!(doc["format"], "plcprobe.results/1");
    assert_eq!(doc["kind"], "diff");
    // check: one row per device.
    let plan = crate::health::plan(dir.path(), "rate = 1000", &[("press", &t, None)]);
    let rows = run(&["check", plan.to_str().unwrap(), "--format", "jsonl"]).jsonl();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        keys(&rows[0]),
        [
            "status",
            "device",
            "target",
            "rtt_p50_ms",
            "errors",
            "problems"
        ]
    );
    let doc = run(&["check", plan.to_str().unwrap(), "--format", "json"]).json();
    assert_eq!(doc["kind"], "check");
    // OPC UA read and browse of the simulator.
    let sim_ua = util::UaSim::start("127.0.0.1:0", &[]);
    let url = sim_ua.url.clone();
    let ua = |args: &[&str]| {
        let mut c = util::bin();
        c.env("PLCPROBE_PKI", dir.path().join("pki"));
        util::run_cmd(c, args)
    };
    let rows = ua(&[
        "read",
        &url,
        "ns=2;s=Line1.press.pressure",
        "--timeout",
        "5s",
        "--format",
        "jsonl",
    ])
    .jsonl();
    assert_eq!(
        keys(&rows[0]),
        [
            "node",
            "value",
            "type",
            "status",
            "source_time",
            "server_time"
        ]
    );
    let rows = ua(&["browse", &url, "--timeout", "5s", "--format", "jsonl"]).jsonl();
    assert!(!rows.is_empty());
    for row in &rows {
        assert_eq!(
            keys(row),
            [
                "browse_name",
                "node",
                "class",
                "data_type",
                "value",
                "depth"
            ]
        );
    }
}
