//! Interoperability with independent implementations: a pymodbus server read and written by
//! plcprobe, pymodbus's client reading plcprobe's simulator, and Debian's mbpoll client against
//! plcprobe's simulator.

use std::process::Command;

use crate::util::{pymodbus_client, python, run, tool, PyModbus, Sim};

#[test]
fn pymodbus_server_values_types_orders() {
    let Some(py) = python() else { return };
    let peer = PyModbus::start(&py);
    let t = peer.target(1);
    let r = run(&["read", &t, "hr:100", "--type", "f32", "--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()[0]["value"], 123.456);
    let r = run(&[
        "read", &t, "hr:102", "--type", "f32", "--order", "cdab", "--format", "json",
    ]);
    assert_eq!(r.json()[0]["value"], 123.456);
    let r = run(&["read", &t, "hr:104", "--type", "i32", "--format", "json"]);
    assert_eq!(r.json()[0]["value"], -123_456);
    let r = run(&[
        "read", &t, "hr:110", "--type", "ascii:8", "--format", "json",
    ]);
    assert_eq!(r.json()[0]["value"], "PYMODBUS");
    let r = run(&["read", &t, "ir:0+3", "co:0+4", "di:0+2", "--format", "json"]);
    let v: Vec<_> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"].clone())
        .collect();
    assert_eq!(
        v,
        serde_json::json!([1000, 1001, 1002, true, false, false, true, false, true])
            .as_array()
            .unwrap()
            .clone()
    );
    // Unit IDs reach different devices behind one listener.
    let r = run(&["read", &peer.target(2), "hr:0", "--format", "json"]);
    assert_eq!(r.json()[0]["value"], 2);
}

#[test]
fn pymodbus_long_ranges_are_split_at_the_spec_limit() {
    let Some(py) = python() else { return };
    let peer = PyModbus::start(&py);
    // hr:1..100 = 3i+1, hr:100.. floats: read 1..200 needs two requests (125 + 74).
    let r = run(&["read", &peer.target(1), "hr:1..100", "--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rows = r.json();
    assert_eq!(
        rows.as_array().unwrap().len(),
        99,
        "hr:1..100 is 99 registers"
    );
    for (i, row) in rows.as_array().unwrap().iter().enumerate() {
        assert_eq!(row["value"], 3 * (i as u64 + 1) + 1, "{row}");
    }
    let r = run(&["read", &peer.target(1), "hr:0..200", "-q"]);
    assert_eq!(
        r.code, 0,
        "200 registers in two requests: {}{}",
        r.stdout, r.stderr
    );
    let r = run(&["read", &peer.target(1), "hr:0..201", "--format", "json"]);
    assert_eq!(r.code, 2, "one past the end of pymodbus's block");
    assert!(r.stdout.contains("0x02 Illegal Data Address"));
    let r = run(&["read", &peer.target(7), "hr:0", "--format", "json"]);
    assert_eq!(r.code, 2);
    assert_eq!(
        r.json()[0]["status"],
        "0x04 Server Device Failure",
        "pymodbus answers unknown units with 0x04"
    );
}

#[test]
fn pymodbus_sees_what_plcprobe_writes() {
    let Some(py) = python() else { return };
    let peer = PyModbus::start(&py);
    let t = peer.target(1);
    let r = run(&[
        "write",
        &t,
        "hr:150",
        "4242",
        "--allow-write",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()[0]["before"], 0);
    let r = run(&["write", &t, "hr:151", "1,2,3", "--allow-write"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(&["write", &t, "co:10", "on", "--allow-write"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = pymodbus_client(
        &py,
        peer.port,
        "print(c.read_holding_registers(150, count=4, device_id=1).registers, c.read_coils(10, count=1, device_id=1).bits[0])",
    );
    assert_eq!(text.trim(), "[4242, 1, 2, 3] True");
}

#[test]
fn pymodbus_client_reads_the_simulator() {
    let Some(py) = python() else { return };
    let sim = Sim::start("demo-line.toml", &[]);
    let text = pymodbus_client(
        &py,
        sim.addrs[0].port(),
        "r = c.read_holding_registers(106, count=1, device_id=1)\nprint(r.registers)\nr = c.read_holding_registers(0, count=1, device_id=1)\nprint(r.isError(), getattr(r, 'exception_code', None))\nr = c.read_holding_registers(300, count=4, device_id=1)\nprint(bytes(b for w in r.registers for b in w.to_bytes(2, 'big')).rstrip(b'\\x00').decode())",
    );
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        vec!["[5]", "True 2", "GL-4711"]
    );
}

#[test]
fn mbpoll_reads_and_writes_the_simulator() {
    let Some(mbpoll) = tool("mbpoll") else { return };
    let sim = Sim::start("demo-line.toml", &[]);
    let port = sim.addrs[0].port().to_string();
    // mbpoll references are 1-based: -r 107 is hr:106 (status word 5); -1 polls once.
    let out = Command::new(&mbpoll)
        .args([
            "-m",
            "tcp",
            "-a",
            "1",
            "-t",
            "4",
            "-r",
            "107",
            "-c",
            "1",
            "-1",
            "-p",
            &port,
            "127.0.0.1",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.lines().any(|l| l
            .trim()
            .replace('\t', " ")
            .split_whitespace()
            .collect::<Vec<_>>()
            == ["[107]:", "5"]),
        "{text}"
    );
    // mbpoll writes hr:300 (ref 301); plcprobe reads it back.
    let out = Command::new(&mbpoll)
        .args([
            "-m",
            "tcp",
            "-a",
            "1",
            "-t",
            "4",
            "-r",
            "301",
            "-p",
            &port,
            "127.0.0.1",
            "--",
            "16706",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let r = run(&["read", &sim.target(1), "hr:300", "--format", "json"]);
    assert_eq!(r.json()[0]["value"], 16706);
    // An unmapped address: mbpoll reports the exception plcprobe's sim answered.
    let out = Command::new(&mbpoll)
        .args([
            "-m",
            "tcp",
            "-a",
            "1",
            "-t",
            "4",
            "-r",
            "1",
            "-c",
            "1",
            "-1",
            "-p",
            &port,
            "127.0.0.1",
        ])
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.to_lowercase().contains("illegal data address"), "{all}");
}
