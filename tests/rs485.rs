//! RS-485 sniffing end to end: a multi-drop bus of pseudo-terminals (`tests/peers/rs485_bus.py`:
//! whatever one end writes reaches all the others, paced at 19200 baud), pymodbus's RTU client
//! as the master, pymodbus's RTU server (units 1 and 2) and `plcprobe sim --rtu` (unit 5, its
//! answers' CRC corrupted at random) as two slaves, unit 9 absent, and `plcprobe capture
//! --serial` on a fourth end. Every request and answer is captured and paired by unit, the CRC
//! errors counted are the answers the master had to throw away, `decode` of the written file
//! says the same, and tshark, with no option, dissects the file as Modbus RTU with the same
//! counts. The real MS/TP capture in `../shared` is never taken for Modbus.

use std::{
    collections::BTreeMap,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::util::{bin, lines_of, python, root, run, skip, tool, Guard, PyRtu, RtuSim};

const DEMO: &str = "demo-line.toml";

/// The bus: its ends (`/dev/pts/N`), and the relay behind a drop guard.
struct Bus {
    ends: Vec<String>,
    _guard: Guard,
}

impl Bus {
    fn start(py: &Path, n: usize) -> Bus {
        let mut child = Command::new(py)
            .arg(root().join("tests/peers/rs485_bus.py"))
            .args(["--ends", &n.to_string(), "--baud", "19200"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the rs485 bus");
        let lines = lines_of(child.stdout.take().expect("stdout"));
        let guard = Guard(child);
        let mut ends = Vec::new();
        loop {
            let l = lines
                .recv_timeout(Duration::from_secs(20))
                .expect("the bus printed its ends");
            if l.starts_with("rs485 bus ready") {
                break;
            }
            ends.push(
                l.strip_prefix("rs485 bus end ")
                    .unwrap_or_else(|| panic!("bus said {l}"))
                    .to_string(),
            );
        }
        assert_eq!(ends.len(), n);
        Bus {
            ends,
            _guard: guard,
        }
    }
}

/// `capture --serial END -w FILE --format json` running until [`Capture::stop`].
struct Capture {
    guard: Guard,
}

impl Capture {
    fn start(end: &str, file: &Path, extra: &[&str]) -> Capture {
        let child = bin()
            .args(["--format", "json", "capture", "--serial", end])
            .args(["--baud", "19200", "--frame", "8N1", "-w"])
            .arg(file)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start capture");
        let mut guard = Guard(child);
        // The file's header is written once the port is open and the sniffer reads.
        let t0 = Instant::now();
        while !file.exists() {
            if let Ok(Some(st)) = guard.0.try_wait() {
                let mut err = String::new();
                std::io::Read::read_to_string(guard.0.stderr.as_mut().unwrap(), &mut err).ok();
                panic!(
                    "capture exited ({st}) before writing {}: {err}",
                    file.display()
                );
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "capture never wrote its file"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Capture { guard }
    }

    /// SIGINT, as Ctrl-C: the summary (JSON), stderr and the exit code.
    fn stop(mut self) -> (Value, String, i32) {
        let pid = self.guard.0.id().to_string();
        assert!(Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success());
        let out = std::mem::replace(
            &mut self.guard.0,
            Command::new("true").spawn().expect("true"),
        )
        .wait_with_output()
        .expect("capture output");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        let v = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("capture printed no JSON ({e}):\n{stdout}\n{stderr}"));
        (v, stderr, out.status.code().unwrap_or(-1))
    }
}

/// The pymodbus master's counts per unit.
fn master(py: &Path, end: &str, units: &str, rounds: u32) -> Value {
    let out = Command::new(py)
        .arg(root().join("tests/peers/pymodbus_rtu_master.py"))
        .args([
            "--serial",
            end,
            "--units",
            units,
            "--rounds",
            &rounds.to_string(),
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run the pymodbus master");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "master: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(text.lines().last().unwrap_or("")).expect("master JSON")
}

fn device<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .find(|d| d["device"] == name)
        .unwrap_or_else(|| panic!("no device {name} in {:#}", doc["devices"]))
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// Per unit, what tshark (no option but CRC checking) makes of the file: frames, frames it calls
/// a query, a response, and frames with a bad CRC.
fn tshark_counts(tshark: &Path, file: &Path) -> BTreeMap<u64, [u64; 4]> {
    let out = Command::new(tshark)
        .arg("-r")
        .arg(file)
        .args(["-o", "mbrtu.crc_verification:TRUE", "-T", "fields"])
        .args([
            "-e",
            "mbrtu.unit_id",
            "-e",
            "mbrtu.crc16.status",
            "-e",
            "_ws.col.Info",
        ])
        .output()
        .expect("run tshark");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tshark: {stderr}");
    assert!(
        !stderr.to_lowercase().contains("warn") && !stderr.contains("appears to"),
        "tshark warned: {stderr}"
    );
    let mut by_unit: BTreeMap<u64, [u64; 4]> = BTreeMap::new();
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = l.split('\t').collect();
        assert_eq!(f.len(), 3, "tshark line {l:?}: not dissected as Modbus RTU");
        let unit: u64 = f[0].parse().unwrap_or_else(|_| panic!("no unit in {l:?}"));
        let c = by_unit.entry(unit).or_default();
        c[0] += 1;
        if f[2].trim_start().starts_with("Query") {
            c[1] += 1;
        }
        if f[2].trim_start().starts_with("Response") {
            c[2] += 1;
        }
        if f[1] == "0" {
            c[3] += 1;
        }
    }
    by_unit
}

#[test]
fn a_bus_is_sniffed_paired_per_unit_and_tshark_agrees() {
    let Some(py) = python() else { return };
    let Some(tshark) = tool("tshark") else { return };
    let bus = Bus::start(&py, 4);
    let (m_end, py_end, sim_end, tap_end) =
        (&bus.ends[0], &bus.ends[1], &bus.ends[2], &bus.ends[3]);
    let _server = PyRtu::serial(&py, py_end);
    let sim = RtuSim::serial(
        DEMO,
        sim_end,
        &["--units", "5", "--fault", "crc=0.3", "--seed", "7"],
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bus.pcapng");
    let cap = Capture::start(tap_end, &file, &[]);
    let rounds = 12;
    let m = master(&py, m_end, "1,5,9", rounds);
    std::thread::sleep(Duration::from_millis(300));
    let (live, stderr, code) = cap.stop();
    let sim_log = sim.stop();
    eprintln!("sim: {sim_log}");
    eprintln!("master: {m}\ncapture stderr: {stderr}");
    if let Some(d) = std::env::var_os("PLCPROBE_RS485_KEEP") {
        std::fs::copy(&file, Path::new(&d).join("bus.pcapng")).unwrap();
    }
    assert!(code == 0 || code == 1, "capture exit {code}: {stderr}");

    // The line is named after its port; its devices after the line and the unit.
    let line = tap_end.strip_prefix("/dev/").unwrap();
    let (u1, u5, u9) = (
        device(&live, &format!("{line}/1")),
        device(&live, &format!("{line}/5")),
        device(&live, &format!("{line}/9")),
    );
    for d in [u1, u5, u9] {
        assert_eq!(d["proto"], "modbus-rtu");
        assert_eq!(d["masters"][0], format!("{line}/master"));
    }
    // Unit 1 (pymodbus): every read and write answered and paired.
    assert_eq!(n(&m["1"]["sent"]), u64::from(rounds) * 2);
    assert_eq!(n(&m["1"]["ok"]), n(&m["1"]["sent"]), "{m}");
    assert_eq!(n(&u1["requests"]), n(&m["1"]["sent"]), "{u1:#}");
    assert_eq!(n(&u1["answered"]), n(&m["1"]["sent"]), "{u1:#}");
    assert_eq!(n(&u1["unanswered"]), 0, "{u1:#}");
    assert_eq!(n(&u1["writes"]), u64::from(rounds));
    // Unit 5 (plcprobe sim): the answers whose CRC the simulator corrupted are the CRC errors,
    // and exactly the requests the master saw go unanswered.
    let lost5 = n(&m["5"]["no_answer"]);
    assert!(
        lost5 > 0 && lost5 < u64::from(rounds),
        "crc=0.3 over {rounds} answers: {m}"
    );
    assert_eq!(n(&u5["requests"]), n(&m["5"]["sent"]), "{u5:#}");
    // The simulator's own count of the requests it received.
    assert!(
        sim_log.contains(&format!("stopped after {} requests", n(&u5["requests"]))),
        "{sim_log}"
    );
    // The demo profile maps no hr:0+4: the simulator answers exception 0x02, an answer too.
    assert_eq!(
        n(&u5["answered"]),
        n(&m["5"]["ok"]) + n(&m["5"]["exceptions"]),
        "{u5:#}"
    );
    let exceptions: u64 = u5["exceptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| n(&x["count"]))
        .sum();
    assert_eq!(exceptions, n(&m["5"]["exceptions"]), "{u5:#}");
    assert_eq!(n(&u5["malformed"]), lost5, "{u5:#}");
    assert_eq!(n(&u5["unanswered"]), lost5, "{u5:#}");
    // Unit 9: nobody there.
    assert_eq!(n(&u9["requests"]), u64::from(rounds));
    assert_eq!(n(&u9["unanswered"]), u64::from(rounds));
    assert_eq!(n(&u9["answered"]), 0);
    assert_eq!(
        n(&live["decoder"]["crc_errors"]),
        lost5,
        "{:#}",
        live["decoder"]
    );
    let rt = u1["rt_ms"]["max"].as_f64().expect("response times");
    assert!(rt > 0.0 && rt < 1000.0, "{u1:#}");

    // decode of the written file says the same.
    let r = run(&["--format", "json", "decode", file.to_str().unwrap()]);
    let dec = r.json();
    for unit in ["1", "5", "9"] {
        let (a, b) = (
            device(&live, &format!("{line}/{unit}")),
            device(&dec, &format!("{line}/{unit}")),
        );
        for k in [
            "requests",
            "responses",
            "answered",
            "unanswered",
            "malformed",
            "writes",
        ] {
            assert_eq!(a[k], b[k], "unit {unit} {k}: live {a:#} file {b:#}");
        }
    }
    // --writes and --transactions: the same rows as for TCP, named after the line.
    let r = run(&[
        "--format",
        "jsonl",
        "decode",
        file.to_str().unwrap(),
        "--writes",
    ]);
    let writes = r.jsonl();
    assert_eq!(writes.len(), rounds as usize, "{}", r.stdout);
    for w in &writes {
        assert_eq!(w["device"], format!("{line}/1"), "{w}");
        assert_eq!(w["function"], 6, "{w}");
        assert_eq!(w["status"], "ok", "{w}");
        assert_eq!(w["master"], format!("{line}/master"), "{w}");
    }
    let r = run(&[
        "--format",
        "jsonl",
        "decode",
        file.to_str().unwrap(),
        "--transactions",
    ]);
    let txs = r.jsonl();
    let total: u64 = [u1, u5, u9].iter().map(|d| n(&d["requests"])).sum();
    assert_eq!(txs.len() as u64, total, "every request is one row");
    let unanswered = txs.iter().filter(|t| t["status"] == "unanswered").count() as u64;
    assert_eq!(unanswered, n(&u5["unanswered"]) + n(&u9["unanswered"]));
    // --device selects one unit of the line.
    let r = run(&[
        "--format",
        "json",
        "decode",
        file.to_str().unwrap(),
        "--device",
        &format!("{tap_end}/5"),
    ]);
    let only = r.json();
    let names: Vec<&str> = only["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device"].as_str().unwrap())
        .collect();
    assert_eq!(names, [format!("{line}/5")]);

    // tshark, with no decoding option: every packet is Modbus RTU, the same frames per unit,
    // the same CRC errors, and its query/response guess matches ours where it makes one (it
    // cannot tell an FC 6 echo from its request).
    let ts = tshark_counts(&tshark, &file);
    eprintln!("tshark per unit [frames, queries, responses, bad CRC]: {ts:?}");
    for (unit, d) in [(1u64, u1), (5, u5), (9, u9)] {
        let c = ts.get(&unit).copied().unwrap_or_default();
        let frames = n(&d["requests"]) + n(&d["responses"]) + n(&d["malformed"]);
        assert_eq!(c[0], frames, "unit {unit}: tshark {c:?}, plcprobe {d:#}");
        assert_eq!(
            c[3],
            n(&d["malformed"]),
            "unit {unit} bad CRC: tshark {c:?}"
        );
    }
    // Reads only (FC 3) at units 5 and 9: tshark's guess and ours agree exactly.
    assert_eq!(ts[&9][1], n(&u9["requests"]));
    assert_eq!(ts[&5][1], n(&u5["requests"]));
    assert_eq!(ts[&5][2], n(&u5["responses"]) + n(&u5["malformed"]));
}

#[test]
fn a_sniffed_port_is_never_written_and_port_errors_are_said() {
    use std::{io::Read, os::unix::fs::OpenOptionsExt};
    let Some(py) = python() else { return };
    let bus = Bus::start(&py, 2);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("quiet.pcapng");
    // Anything the sniffer wrote would reach the other end of the bus.
    let mut other = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&bus.ends[0])
        .unwrap();
    let cap = Capture::start(&bus.ends[1], &file, &[]);
    std::thread::sleep(Duration::from_millis(500));
    let (doc, _, code) = cap.stop();
    assert_eq!(code, 0);
    assert_eq!(doc["totals"]["modbus_pdus"], 0);
    std::thread::sleep(Duration::from_millis(100));
    let mut buf = [0u8; 64];
    match other.read(&mut buf) {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "{e}"),
        Ok(n) => panic!(
            "the sniffer wrote {n} bytes to the line: {:02x?}",
            &buf[..n]
        ),
    }

    let r = run(&["capture", "--serial", "/dev/ttyNOSUCH7"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("no such serial port"), "{}", r.stderr);
    let r = run(&["capture", "--serial", &bus.ends[0], "--frame", "9X1"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("8E1"), "{}", r.stderr);
    let r = run(&["capture", "--serial", &bus.ends[0], "--baud", "12345"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("not a rate"), "{}", r.stderr);
}

/// The one real serial capture at hand (`BACnet MS/TP`, link type 165) is read as BACnet, never
/// taken for Modbus: no Modbus PDU, every device a BACnet one on the line, every packet an MS/TP
/// frame and none of an unknown link type.
#[test]
fn an_mstp_capture_is_not_taken_for_modbus() {
    let file = root().join("../shared/captures/bacnet/bacnet_mstp_serial.pcap");
    if !file.exists() {
        skip(&format!("{} is not there", file.display()));
        return;
    }
    let r = run(&["--format", "json", "decode", file.to_str().unwrap()]);
    assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
    let v = r.json();
    assert_eq!(v["totals"]["modbus_pdus"], 0, "{:#}", v["totals"]);
    let devices = v["devices"].as_array().unwrap();
    assert!(!devices.is_empty());
    assert!(
        devices.iter().all(|d| d["proto"] == "bacnet"),
        "{devices:?}"
    );
    assert_eq!(n(&v["decoder"]["unknown_link"]), 0);
    assert_eq!(n(&v["decoder"]["mstp_frames"]), n(&v["capture"]["packets"]));
    assert_eq!(
        n(&v["decoder"]["serial_frames"]),
        n(&v["capture"]["packets"])
    );
}
