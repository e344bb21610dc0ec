//! `capture -i`: the real binary capturing on the loopback interface (as root: CI runs as
//! root) while plcprobe's simulator talks to pymodbus's client and asyncua's client talks to
//! `sim --opcua`; tshark reads back what was written and counts what plcprobe counted. Ctrl-C
//! mid-capture, rings of files, a VLAN-tagged frame through a veth pair in a network namespace
//! the test makes, and the errors a technician meets (no capability, no such interface).
//!
//! Other tests run at the same time on loopback: each capture here decodes only its own ports
//! (`--no-detect`, `--modbus-port P`), and tshark is asked about those ports only.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use plcprobe::capture::writer::{tcp_frame, tcpflags};
use serde_json::Value;

use crate::util::{self, bin, pymodbus_client, python, skip, tool, tshark, Sim, UaSim};

/// Live capture needs `CAP_NET_RAW`: root here and in CI.
fn can_capture() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        skip("live capture needs root (CAP_NET_RAW); CI runs as root");
    }
    root
}

/// A running `plcprobe capture`.
struct Live {
    child: Child,
}

impl Live {
    /// Start capturing on `iface` with `args`, writing `file`; returns once the capture is
    /// live (the file appears after the socket is open).
    fn start(iface: &str, file: &Path, args: &[&str]) -> Live {
        let child = bin()
            .args(["capture", "-i", iface, "-w"])
            .arg(file)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn capture");
        let mut live = Live { child };
        // With --ring or --rotate the files are numbered: any file of the series.
        let dir = file.parent().unwrap().to_path_buf();
        let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
        live.wait_for(
            || {
                std::fs::read_dir(&dir).is_ok_and(|d| {
                    d.flatten()
                        .any(|e| e.file_name().to_string_lossy().starts_with(&stem))
                })
            },
            "its file",
        );
        live
    }

    fn wait_for(&mut self, cond: impl Fn() -> bool, what: &str) {
        let t0 = Instant::now();
        while !cond() {
            if let Some(st) = self.child.try_wait().unwrap() {
                let out = self.child_output();
                panic!("capture exited ({st}) before {what}:\n{out}");
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "capture: no {what} after 30 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn child_output(&mut self) -> String {
        use std::io::Read as _;
        let mut s = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut s);
        }
        s
    }

    /// Ctrl-C; the exit code, stdout and stderr.
    fn interrupt(self) -> (i32, String, String) {
        // Let the kernel hand over the last packets before the stop.
        std::thread::sleep(Duration::from_millis(300));
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success());
        self.finish()
    }

    fn finish(self) -> (i32, String, String) {
        let out = self.child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// The common start of these tests: a simulator, and a capture on `iface` of its port only
/// (`--no-detect --modbus-port P`, then `extra`, in which `{port}` stands for P) into `name` in
/// a new folder.
fn capture_of_sim(
    iface: &str,
    name: &str,
    extra: &[&str],
) -> (Sim, u16, tempfile::TempDir, PathBuf, Live) {
    let sim = Sim::start("demo-line.toml", &[]);
    let port = sim.addrs[0].port();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(name);
    let p = port.to_string();
    let mut args = vec!["--no-detect".to_string(), "--modbus-port".into(), p.clone()];
    args.extend(extra.iter().map(|a| a.replace("{port}", &p)));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let live = Live::start(iface, &file, &args);
    (sim, port, dir, file, live)
}

/// Occurrences of `field` over all frames (several per frame are comma-separated).
fn count_field(file: &Path, decode_as: &[String], filter: &str, field: &str) -> usize {
    let mut args: Vec<&str> = vec!["-Y", filter, "-T", "fields", "-e", field];
    for d in decode_as {
        args.push("-d");
        args.push(d);
    }
    tshark(file, &args)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').count())
        .sum()
}

#[test]
fn loopback_capture_of_modbus_and_opcua_agrees_with_tshark() {
    if !can_capture() {
        return;
    }
    let (Some(py), Some(_)) = (python(), tool("tshark")) else {
        return;
    };
    let sim = Sim::start("demo-line.toml", &[]);
    let mb_port = sim.addrs[0].port();
    let ua = UaSim::start("127.0.0.1:0", &[]);
    let ua_port: u16 = ua
        .url
        .rsplit(':')
        .next()
        .and_then(|p| p.split('/').next())
        .and_then(|p| p.parse().ok())
        .expect("opc.tcp port");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("line.pcapng");
    let results = dir.path().join("results.json");
    let live = Live::start(
        "lo",
        &file,
        &[
            "--no-detect",
            "--modbus-port",
            &mb_port.to_string(),
            "--opcua-port",
            &ua_port.to_string(),
            "--format",
            "json",
            "--results",
            results.to_str().unwrap(),
        ],
    );
    // An independent Modbus master (pymodbus) reading and writing the simulator: 40 requests.
    pymodbus_client(
        &py,
        mb_port,
        "for i in range(30):\n    assert not c.read_holding_registers(100, count=2, device_id=1).isError()\nfor i in range(10):\n    c.write_register(200, i, device_id=1)\nc.close()",
    );
    // An independent OPC UA client (asyncua) reading three nodes.
    let out = Command::new(&py)
        .arg(util::root().join("tests/peers/asyncua_client.py"))
        .args([
            &ua.url,
            "ns=2;s=Line1.press.pressure",
            "ns=2;s=Line1.tank.batch",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, stdout, stderr) = live.interrupt();
    assert_eq!(code, 0, "capture exit code; stderr:\n{stderr}");
    let doc: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(
        doc,
        serde_json::from_slice::<Value>(&std::fs::read(&results).unwrap()).unwrap()
    );
    assert_eq!(doc["kind"], "decode");
    assert_eq!(doc["capture"]["interface"], "lo");
    assert_eq!(doc["capture"]["kernel_drops"], 0);
    assert_eq!(doc["capture"]["ended"], "signal");
    let decode_as = vec![
        format!("tcp.port=={mb_port},mbtcp"),
        format!("tcp.port=={ua_port},opcua"),
    ];
    let t_modbus = count_field(&file, &decode_as, "mbtcp", "mbtcp.trans_id");
    let t_opcua = count_field(&file, &decode_as, "opcua", "opcua.transport.type");
    assert_eq!(t_modbus, 80, "40 requests and their 40 answers in the file");
    assert!(t_opcua >= 8, "HEL/ACK/OPN/MSG… in the file: {t_opcua}");
    assert_eq!(doc["totals"]["modbus_pdus"], t_modbus, "{doc:#}");
    assert_eq!(doc["totals"]["opcua_messages"], t_opcua, "{doc:#}");
    assert_eq!(doc["totals"]["writes"], 10);
    // What was written is exactly the two flows' packets: every frame is on one of the ports.
    let frames = tshark(&file, &["-T", "fields", "-e", "tcp.port"]);
    assert!(frames.lines().count() > 100);
    for l in frames.lines() {
        assert!(
            l.split(',')
                .any(|p| p == mb_port.to_string() || p == ua_port.to_string()),
            "a frame of another flow was written: {l}"
        );
    }
    assert_eq!(
        doc["capture"]["written_packets"],
        frames.lines().count(),
        "written_packets counts the file's frames"
    );
    // The file names its interface, link type and resolution (tshark's capinfos view).
    let info = Command::new("capinfos").arg(&file).output();
    if let Ok(info) = info {
        let text = String::from_utf8_lossy(&info.stdout);
        assert!(text.contains("Ethernet"), "{text}");
    }
}

#[test]
fn transactions_stream_as_they_complete() {
    if !can_capture() {
        return;
    }
    let (sim, _, _dir, _, mut live) =
        capture_of_sim("lo", "tx.pcapng", &["--transactions", "--format", "jsonl"]);
    let lines = util::lines_of(live.child.stdout.take().unwrap());
    let r = util::run(&["read", &sim.target(1), "hr:100"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // The row arrives while the capture still runs: flushed per row.
    let row = lines
        .recv_timeout(Duration::from_secs(10))
        .expect("a transaction row while capturing");
    let v: Value = serde_json::from_str(&row).unwrap();
    assert_eq!(v["function"], 3, "{v}");
    assert_eq!(v["function_name"], "Read Holding Registers", "{v}");
    assert_eq!(v["status"], "ok");
    assert!(live.child.try_wait().unwrap().is_none(), "still capturing");
    let (code, _, stderr) = live.interrupt();
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn count_and_duration_stop_it_with_a_valid_file() {
    if !can_capture() {
        return;
    }
    let Some(_) = tool("tshark") else { return };
    let (sim, _, dir, file, live) = capture_of_sim(
        "lo",
        "count.pcapng",
        &[
            "--all-packets",
            "--filter",
            "tcp port {port}",
            "--count",
            "7",
            "--format",
            "json",
        ],
    );
    let _poll = util::run(&["poll", &sim.target(1), "40001", "-i", "20ms", "-c", "20"]);
    let (code, stdout, stderr) = live.finish();
    assert_eq!(code, 0, "{stderr}");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["capture"]["ended"], "count");
    assert_eq!(doc["capture"]["packets"], 7);
    assert_eq!(tshark(&file, &[]).lines().count(), 7);

    let file2 = dir.path().join("duration.pcapng");
    let t0 = Instant::now();
    let live = Live::start(
        "lo",
        &file2,
        &[
            "--no-detect",
            "--modbus-port",
            "1",
            "--duration",
            "1500ms",
            "-q",
        ],
    );
    let (code, stdout, stderr) = live.finish();
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.is_empty(), "-q and nothing to say: {stdout}");
    assert!(t0.elapsed() >= Duration::from_millis(1500));
    assert!(t0.elapsed() < Duration::from_secs(10));
    tshark(&file2, &[]);
}

#[test]
fn a_ring_keeps_exactly_n_files_each_valid() {
    if !can_capture() {
        return;
    }
    let (Some(py), Some(_)) = (python(), tool("tshark")) else {
        return;
    };
    let (_sim, port, dir, _, live) = capture_of_sim("lo", "night.pcapng", &["--ring", "3x64KiB"]);
    // About 2,000 requests and answers of ~70 bytes each: over 250 KB, four files or more.
    pymodbus_client(
        &py,
        port,
        "for i in range(2000):\n    c.read_holding_registers(100, count=8, device_id=1)\nc.close()",
    );
    let (code, stdout, stderr) = live.interrupt();
    assert_eq!(code, 0, "{stderr}");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 3, "{files:?}\n{stdout}");
    let mut frames = 0;
    for f in &files {
        let name = f.file_name().unwrap().to_str().unwrap();
        // dumpcap's naming: night_NNNNN_YYYYMMDDHHMMSS.pcapng
        let parts: Vec<&str> = name.trim_end_matches(".pcapng").split('_').collect();
        assert!(
            parts.len() == 3 && parts[0] == "night" && parts[1].len() == 5 && parts[2].len() == 14,
            "{name}"
        );
        assert!(
            std::fs::metadata(f).unwrap().len() <= 64 << 10,
            "{name} over its size"
        );
        frames += tshark(f, &[]).lines().count();
    }
    let first: u32 = files[0]
        .to_str()
        .unwrap()
        .split('_')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(first >= 2, "the oldest files were removed: {files:?}");
    assert!(frames > 1000);
}

#[test]
fn a_vlan_tag_the_kernel_strips_is_put_back() {
    if !can_capture() {
        return;
    }
    let (Some(py), Some(_)) = (python(), tool("tshark")) else {
        return;
    };
    // A Modbus request and its answer in 802.1Q frames of VLAN 7, sent on the loopback
    // interface through a packet socket (Python's, an independent sender). On receive the
    // kernel takes the tag out of the frame into the packet's metadata, as a NIC with VLAN
    // offload does: what a capture reads has no tag unless it puts it back.
    let port = 20_000 + u16::try_from(std::process::id() % 20_000).unwrap();
    let client: std::net::SocketAddr = "127.0.0.7:40123".parse().unwrap();
    let server: std::net::SocketAddr = format!("127.0.0.8:{port}").parse().unwrap();
    let req = [0, 9, 0, 0, 0, 6, 1, 3, 0, 100, 0, 1];
    let resp = [0, 9, 0, 0, 0, 5, 1, 3, 2, 0x12, 0x34];
    let tag = |f: Vec<u8>| -> String {
        let mut t = f[..12].to_vec();
        t.extend_from_slice(&[0x81, 0x00, 0x00, 0x07]);
        t.extend_from_slice(&f[12..]);
        t.iter().map(|b| format!("{b:02x}")).collect()
    };
    let frames = [
        tag(tcp_frame(
            client,
            server,
            1000,
            5000,
            tcpflags::PSH | tcpflags::ACK,
            &req,
        )),
        tag(tcp_frame(
            server,
            client,
            5000,
            1012,
            tcpflags::PSH | tcpflags::ACK,
            &resp,
        )),
    ];
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vlan.pcapng");
    let live = Live::start(
        "lo",
        &file,
        &[
            "--no-detect",
            "--modbus-port",
            &port.to_string(),
            "--format",
            "json",
        ],
    );
    let script = format!(
        "import socket, time\ns = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\ns.bind(('lo', 0))\nfor f in {frames:?}:\n    s.send(bytes.fromhex(f))\n    time.sleep(0.05)\n"
    );
    let out = Command::new(&py).args(["-c", &script]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, stdout, stderr) = live.interrupt();
    assert_eq!(code, 0, "{stderr}");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["totals"]["transactions"], 1, "{doc:#}");
    assert_eq!(doc["capture"]["written_packets"], 2, "{doc:#}");
    let ids = tshark(
        &file,
        &[
            "-d",
            &format!("tcp.port=={port},mbtcp"),
            "-T",
            "fields",
            "-e",
            "vlan.id",
            "-e",
            "mbtcp.trans_id",
        ],
    );
    assert_eq!(
        ids, "7\t9\n7\t9\n",
        "both frames keep VLAN 7 and decode as Modbus"
    );
}

#[test]
fn without_the_capability_it_says_the_three_ways_and_exits_3() {
    if !can_capture() {
        return;
    }
    let Some(setpriv) = tool("setpriv") else {
        return;
    };
    // The same binary as an unprivileged user: no CAP_NET_RAW.
    let out = Command::new(setpriv)
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(env!("CARGO_BIN_EXE_plcprobe"))
        .args(["capture", "-i", "lo", "--duration", "1s"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    for way in [
        "CAP_NET_RAW",
        "sudo",
        "setcap cap_net_raw,cap_net_admin=eip",
        "group",
    ] {
        assert!(err.contains(way), "names `{way}`: {err}");
    }
    assert_eq!(err.trim().lines().count(), 1, "one paragraph: {err}");
}

#[test]
fn an_unknown_interface_lists_those_that_exist() {
    let r = util::run(&["capture", "-i", "nosuch0", "--duration", "1s"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("no network interface `nosuch0`"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("lo"), "lists lo: {}", r.stderr);
}

#[test]
fn bad_options_are_refused_before_capturing() {
    for (args, says) in [
        (
            vec!["capture", "-i", "lo", "-w", "x.pcapng", "--ring", "1x1MB"],
            "at least 2 files",
        ),
        (
            vec!["capture", "-i", "lo", "-w", "x.pcapng", "--ring", "5"],
            "needs --rotate",
        ),
        (
            vec!["capture", "-i", "lo", "-w", "/no/such/dir/x.pcapng"],
            "does not exist",
        ),
        (
            vec!["capture", "-i", "lo", "--filter", "port 70000"],
            "70000",
        ),
        // Serial settings with an interface are a mistake to say, not to ignore.
        (
            vec!["capture", "-i", "lo", "--baud", "9600"],
            "cannot be used with",
        ),
    ] {
        let r = util::run(&args);
        assert_eq!(r.code, 3, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(says), "{args:?}: {}", r.stderr);
    }
    let r = util::run(&["capture"]);
    assert_eq!(r.code, 3, "no source: usage error, {}", r.stderr);
}

#[test]
fn rotation_by_time_keeps_the_last_n_and_sigterm_closes_them_valid() {
    if !can_capture() {
        return;
    }
    let Some(_) = tool("tshark") else { return };
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("hourly.pcapng");
    let live = Live::start(
        "lo",
        &base,
        &[
            "--no-detect",
            "--modbus-port",
            "1",
            "--rotate",
            "700ms",
            "--ring",
            "2",
            "-q",
        ],
    );
    std::thread::sleep(Duration::from_millis(2600));
    let pid = live.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let (code, _, stderr) = live.finish();
    assert_eq!(code, 0, "SIGTERM ends it like Ctrl-C: {stderr}");
    let mut files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files.len(), 2, "{files:?}");
    // Rotated every 700 ms over 2.6 s: the 4th file or a later one is the last.
    let last: u32 = files[1].split('_').nth(1).unwrap().parse().unwrap();
    assert!(last >= 4, "{files:?}");
    for f in &files {
        tshark(&dir.path().join(f), &[]);
    }
}

/// With the `pcap` feature (libpcap): `-i any`, whose link type is Linux cooked capture.
#[cfg(feature = "pcap")]
#[test]
fn libpcap_captures_any_interface() {
    if !can_capture() {
        return;
    }
    let Some(_) = tool("tshark") else { return };
    let (sim, port, _dir, file, live) = capture_of_sim("any", "any.pcapng", &["--format", "json"]);
    let r = util::run(&["poll", &sim.target(1), "hr:100", "-i", "20ms", "-c", "10"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let (code, stdout, stderr) = live.interrupt();
    assert_eq!(code, 0, "{stderr}");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    let n = count_field(
        &file,
        &[format!("tcp.port=={port},mbtcp")],
        "mbtcp",
        "mbtcp.trans_id",
    );
    assert_eq!(n, 20, "10 requests and answers");
    assert_eq!(doc["totals"]["modbus_pdus"], n);
    let format = doc["capture"]["format"].as_str().unwrap();
    assert!(format.contains("Linux cooked"), "{format}");
}

/// Deletes the link it names when dropped.
struct DelLink(String);

impl Drop for DelLink {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).output();
    }
}

#[test]
fn promiscuous_mode_lasts_as_long_as_the_capture() {
    if !can_capture() {
        return;
    }
    let Some(_) = tool("ip") else { return };
    // A veth pair of this test's own (no traffic leaves it): its promiscuity counter is 1
    // while `-p` captures and 0 after, also when the capture is interrupted.
    let veth = format!("pp{}", std::process::id() % 1_000_000);
    let made = Command::new("ip")
        .args([
            "link",
            "add",
            &veth,
            "type",
            "veth",
            "peer",
            "name",
            &format!("{veth}x"),
        ])
        .output()
        .unwrap();
    if !made.status.success() {
        skip(&format!(
            "cannot create a veth pair here: {}",
            String::from_utf8_lossy(&made.stderr)
        ));
        return;
    }
    let _del = DelLink(veth.clone());
    assert!(Command::new("ip")
        .args(["link", "set", &veth, "up"])
        .status()
        .unwrap()
        .success());
    let promiscuity = || {
        let out = Command::new("ip")
            .args(["-d", "link", "show", &veth])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.split("promiscuity ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or_else(|| panic!("no promiscuity in {text}"))
    };
    assert_eq!(promiscuity(), 0);
    let dir = tempfile::tempdir().unwrap();
    let live = Live::start(&veth, &dir.path().join("p.pcapng"), &["-p", "-q"]);
    assert_eq!(promiscuity(), 1, "promiscuous while capturing");
    let (code, _, stderr) = live.interrupt();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(promiscuity(), 0, "and no longer after");
}
