//! read, poll and write against `plcprobe sim` (a separate process on loopback).

use serde_json::Value;

use crate::util::{profile, run, silent_listener, Sim};

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn read_types_orders_and_both_address_forms() {
    let sim = Sim::start("demo-line.toml", &[]);
    let t = sim.target(1);
    // Static points: status word 5, batch text, coil and discrete input set.
    let r = run(&["read", &t, "hr:106", "40107", "--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let j = r.json();
    for row in j.as_array().unwrap() {
        assert_eq!(row["value"], 5);
        assert_eq!(row["address"], "hr:106");
        assert_eq!(row["modicon"], "40107", "output shows both forms");
        assert_eq!(row["raw"], "0x0005");
    }
    let r = run(&[
        "read", &t, "hr:300", "--type", "ascii:8", "--format", "json",
    ]);
    assert_eq!(r.json()[0]["value"], "GL-4711");
    let r = run(&["read", &t, "co:0", "di:0", "--format", "json"]);
    assert_eq!(r.json()[0]["value"], true);
    assert_eq!(r.json()[1]["value"], true);
    // The conveyor stores floats word-swapped: cdab gives 24.5 ± noise, abcd gives nonsense.
    let r = run(&[
        "read", &t, "hr:200", "--type", "f32", "--order", "cdab", "--format", "json",
    ]);
    let v = f(&r.json()[0]["value"]);
    assert!((24.3..=24.7).contains(&v), "cdab speed {v}");
    let r = run(&["read", &t, "hr:200", "--type", "f32", "--format", "json"]);
    let v = r.json()[0]["value"].as_f64().unwrap_or(f64::NAN);
    assert!(
        !(0.0..=60.0).contains(&v),
        "abcd must not look plausible: {v}"
    );
    // Modicon reference with a type: 40101 = hr:100, f32 pressure 180 ± 0.5.
    let r = run(&["read", &t, "40101", "--type", "f32", "--format", "csv"]);
    let line = r.stdout.lines().nth(1).unwrap().to_string();
    let v: f64 = line.split(',').nth(4).unwrap().parse().unwrap();
    assert!((179.4..=180.6).contains(&v), "{line}");
    assert!(line.starts_with("hr:100..102,40101,f32,"), "{line}");
}

#[test]
fn read_profile_names_scales_and_units() {
    let sim = Sim::start("demo-line.toml", &[]);
    let r = run(&[
        "read",
        "--profile",
        &profile("demo-line.toml"),
        &sim.target(1),
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rows = r.json();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 12);
    assert!(rows.iter().all(|r| r["status"] == "ok"), "{rows:?}");
    let by = |n: &str| rows.iter().find(|r| r["name"] == n).unwrap().clone();
    let temp = by("press.temperature");
    assert_eq!(temp["unit"], "°C");
    let v = f(&temp["value"]);
    assert!((42.0..=42.6).contains(&v), "scaled 0.1: {v}");
    assert_eq!(by("tank.batch")["value"], "GL-4711");
    assert_eq!(by("conveyor.fault_code")["value"], "0x0000");
    assert_eq!(by("press.status_word")["value"], "0000 0000 0000 0101");
    let level = f(&by("tank.level")["value"]);
    assert!(
        (60.0..=63.0).contains(&level),
        "cdab f32 via profile: {level}"
    );
}

#[test]
fn every_shipped_profile_loads_and_is_served() {
    for entry in std::fs::read_dir(crate::util::root().join("profiles")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let sim = Sim::start(&name, &[]);
        let r = run(&[
            "read",
            "--profile",
            path.to_str().unwrap(),
            &sim.target(1),
            "--format",
            "json",
        ]);
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
        let rows = r.json();
        assert!(!rows.as_array().unwrap().is_empty(), "{name}");
        for row in rows.as_array().unwrap() {
            assert_eq!(row["status"], "ok", "{name}: {row}");
            assert!(
                row["value"].is_number() || row["value"].is_string() || row["value"].is_boolean(),
                "{name}: {row}"
            );
        }
    }
}

#[test]
fn exceptions_are_named_and_critical() {
    let sim = Sim::start("demo-line.toml", &["--units", "1-2"]);
    let r = run(&["read", &sim.target(1), "hr:0", "--format", "json"]);
    assert_eq!(r.code, 2);
    assert_eq!(r.json()[0]["status"], "0x02 Illegal Data Address");
    // Unit 2 is served, unit 9 is not: a gateway's 0x0B.
    assert_eq!(run(&["read", &sim.target(2), "hr:106"]).code, 0);
    let r = run(&["read", &sim.target(9), "hr:106", "--format", "json"]);
    assert_eq!(r.code, 2);
    assert_eq!(
        r.json()[0]["status"],
        "0x0B Gateway Target Device Failed to Respond"
    );
    // An f32 straddling the end of a point reads an unmapped register.
    let r = run(&["read", &sim.target(1), "hr:102+2"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stdout.contains("0x02 Illegal Data Address"),
        "{}",
        r.stdout
    );
}

#[test]
fn unreachable_devices_are_critical_and_named() {
    let port = crate::util::free_port();
    let target = format!("modbus://127.0.0.1:{port}/1");
    let r = run(&["read", &target, "hr:0"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains(&format!("modbus:127.0.0.1:{port} unit 1"))
            && r.stderr.contains("refused"),
        "{}",
        r.stderr
    );
    // A device that accepts the connection and never answers: timeout names the time waited.
    let silent = silent_listener();
    let r = run(&[
        "read",
        &format!("modbus://{silent}/1"),
        "hr:0",
        "--timeout",
        "300ms",
    ]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no answer within 300ms"), "{}", r.stderr);
    assert!(r.elapsed.as_secs_f64() < 3.0, "took {:?}", r.elapsed);
}

#[test]
fn several_devices_in_one_read() {
    let a = Sim::start("demo-line.toml", &[]);
    let b = Sim::start("demo-line.toml", &[]);
    let dead = format!("modbus://127.0.0.1:{}/1", crate::util::free_port());
    let r = run(&[
        "read",
        &a.target(1),
        &b.target(1),
        &dead,
        "hr:106",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 2, "one dead device makes the read critical");
    let rows = r.json();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["device"], a.target(1));
    assert_eq!(rows[0]["value"], 5);
    assert_eq!(rows[1]["value"], 5);
    assert_eq!(rows[2]["status"], "connection");
}

#[test]
fn ipv6_loopback() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        crate::util::skip("no IPv6 loopback on this machine (::1 cannot be bound)");
        return;
    }
    let sim = Sim::start_on("demo-line.toml", &["[::1]:0"], &[]);
    let t = format!("modbus://[::1]:{}/1", sim.addrs[0].port());
    let r = run(&["read", &t, "hr:106", "--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()[0]["value"], 5);
}

#[test]
fn guess_shows_every_type_and_order() {
    let sim = Sim::start("demo-line.toml", &[]);
    let r = run(&[
        "read",
        &sim.target(1),
        "hr:200+2",
        "--guess",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rows = r.json();
    let rows = rows.as_array().unwrap();
    let cdab = rows
        .iter()
        .find(|r| r["type"] == "f32" && r["order"] == "cdab")
        .unwrap();
    let v = f(&cdab["value"]);
    assert!((24.3..=24.7).contains(&v), "{cdab}");
    for ty in ["u16", "i16", "hex", "bcd", "u32", "i32", "f32", "ascii:4"] {
        assert!(rows.iter().any(|r| r["type"] == ty), "--guess shows {ty}");
    }
    assert_eq!(
        rows.iter().filter(|r| r["type"] == "u32").count(),
        4,
        "all four orders"
    );
}

#[test]
fn poll_jsonl_rows_and_statistics() {
    let sim = Sim::start("demo-line.toml", &[]);
    let r = run(&[
        "poll",
        &sim.target(1),
        "hr:104+2",
        "--type",
        "u32",
        "--interval",
        "50ms",
        "--count",
        "8",
        "--format",
        "jsonl",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rows = r.jsonl();
    assert_eq!(rows.len(), 8);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row["seq"], i as u64 + 1);
        assert_eq!(row["status"], "ok");
        assert!(row["time"].as_str().unwrap().ends_with('Z'), "RFC 3339 UTC");
        assert!(row["hr:104..106"].as_u64().unwrap() >= 1_200_345);
    }
    let stats: Value = serde_json::from_str(r.stderr.lines().last().unwrap()).unwrap();
    assert_eq!(stats["type"], "statistics");
    assert_eq!(stats["sent"], 8);
    assert_eq!(stats["received"], 8);
    assert!(stats["rtt_ms"]["p50"].as_f64().unwrap() > 0.0);
    // 8 polls 50 ms apart take at least 350 ms: the interval is honoured.
    assert!(r.elapsed.as_millis() >= 350, "{:?}", r.elapsed);
}

#[test]
fn poll_shows_counters_moving() {
    let sim = Sim::start("demo-line.toml", &[]);
    let r = run(&[
        "poll",
        "--profile",
        &profile("demo-line.toml"),
        &sim.target(1),
        "--interval",
        "600ms",
        "--count",
        "3",
        "--format",
        "jsonl",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rows = r.jsonl();
    let first = rows[0]["line.energy"].as_u64().unwrap();
    let last = rows[2]["line.energy"].as_u64().unwrap();
    assert!(
        last > first,
        "energy counter ramps 1500 Wh/s: {first} → {last}"
    );
}

#[test]
fn poll_table_and_csv_have_the_same_fields() {
    let sim = Sim::start("demo-line.toml", &[]);
    let r = run(&[
        "poll",
        &sim.target(1),
        "hr:106",
        "--interval",
        "0",
        "--count",
        "3",
        "--format",
        "csv",
    ]);
    assert_eq!(r.code, 0);
    let mut lines = r.stdout.lines();
    assert_eq!(lines.next().unwrap(), "time,seq,rtt_ms,status,hr:106");
    assert_eq!(
        lines.filter(|l| l.ends_with(",ok,5")).count(),
        3,
        "{}",
        r.stdout
    );
    let r = run(&[
        "poll",
        &sim.target(1),
        "hr:106",
        "--interval",
        "0",
        "--count",
        "3",
    ]);
    assert!(
        r.stdout
            .contains("3 requests sent, 3 received, 0 errors, 0.0% loss"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("rtt min/p50/p95/max"), "{}", r.stdout);
}

#[test]
fn poll_ctrl_c_prints_statistics() {
    let sim = Sim::start("demo-line.toml", &[]);
    let mut child = crate::util::Guard(
        crate::util::bin()
            .args(["poll", &sim.target(1), "hr:106", "--interval", "100ms"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // SIGINT only once the first row is out: poll listens for Ctrl-C from its first request on,
    // so the signal cannot arrive before the handler is there (default action: killed).
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.0.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
            let line = line.unwrap();
            all.push_str(&line);
            all.push('\n');
            if line.contains(" ok ") {
                let _ = tx.send(());
            }
        }
        all
    });
    rx.recv_timeout(std::time::Duration::from_secs(30))
        .expect("poll printed a first row within 30 s");
    let ok = std::process::Command::new("kill")
        .args(["-INT", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let status = child.0.wait().unwrap();
    let stdout = reader.join().unwrap();
    assert_eq!(status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("poll statistics") && stdout.contains("0 errors"),
        "{stdout}"
    );
}

#[test]
fn write_single_multiple_coils_and_read_back() {
    let sim = Sim::start("demo-line.toml", &[]);
    let t = sim.target(1);
    let r = run(&[
        "write",
        &t,
        "hr:106",
        "1234",
        "--allow-write",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let row = &r.json()[0];
    assert_eq!(row["function"], "FC06");
    assert_eq!(row["before"], 5);
    assert_eq!(row["after"], 1234);
    assert_eq!(row["status"], "ok");
    let r = run(&[
        "write",
        &t,
        "hr:106",
        "77",
        "--fc16",
        "--allow-write",
        "--format",
        "json",
    ]);
    assert_eq!(r.json()[0]["function"], "FC16");
    assert_eq!(r.json()[0]["after"], 77);
    // Several values: FC16 across a float point, read back with the device's order.
    let r = run(&[
        "write",
        &t,
        "hr:200",
        "12.5",
        "--type",
        "f32",
        "--order",
        "cdab",
        "--allow-write",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()[0]["after"], 12.5);
    let r = run(&[
        "read", &t, "hr:200", "--type", "f32", "--order", "cdab", "--format", "json",
    ]);
    assert_eq!(r.json()[0]["value"], 12.5, "the write is kept");
    let r = run(&[
        "write",
        &t,
        "hr:300",
        "AB,CD",
        "--type",
        "ascii:2",
        "--allow-write",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()[1]["after"], "CD");
    let r = run(&[
        "write",
        &t,
        "co:0",
        "off",
        "--allow-write",
        "--format",
        "json",
    ]);
    assert_eq!(
        (
            r.json()[0]["function"].clone(),
            r.json()[0]["after"].clone()
        ),
        ("FC05".into(), false.into())
    );
    // Outside the map the write is an exception, shown by name, and critical.
    let r = run(&[
        "write",
        &t,
        "hr:0",
        "1",
        "--allow-write",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 2);
    assert_eq!(r.json()[0]["status"], "0x02 Illegal Data Address");
}

#[test]
fn fc17_server_id_over_modbus_tcp_is_whole() {
    // tokio-modbus 0.17's server sized a Report Server ID answer one byte short in its MBAP
    // header; the simulator now sends the PDU itself. plcprobe's scan shows it, and pymodbus's
    // client reads the same 10 bytes (its layout: identifier, then the last byte as run status).
    let sim = Sim::start("demo-line.toml", &[]);
    let r = run(&[
        "scan",
        &format!("modbus://{}", sim.addrs[0]),
        "--units",
        "1",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()[0]["server_id"], "SIM-LINE (id 1, run on)");
    let Some(py) = crate::util::python() else {
        return;
    };
    let text = crate::util::pymodbus_client(
        &py,
        sim.addrs[0].port(),
        "r = c.report_device_id(device_id=1)\nprint(r.byte_count, r.identifier.hex())\nr = c.read_holding_registers(106, count=1, device_id=1)\nprint(r.registers)",
    );
    let mut lines = text.lines();
    // 0x01 (server ID), 0xFF (running), "SIM-LIN"; pymodbus takes the final "E" as its status.
    assert_eq!(lines.next(), Some("10 01ff53494d2d4c494e"));
    assert_eq!(
        lines.next(),
        Some("[5]"),
        "the next request on the connection still answers"
    );
}
