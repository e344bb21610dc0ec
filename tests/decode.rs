//! `decode`: the real binary on real captures. Agreement with tshark's own decoding of the
//! public ICS captures in ../shared (PDU by PDU), the simulator's recorded traffic read back by
//! tshark, every link type and file variant, TCP reassembly cases, damaged input.

use std::{
    collections::BTreeMap,
    io::Write,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use plcprobe::{
    capture::writer::{tcp_frame, tcpflags, PcapngWriter},
    proto::modbus::pdu::crc16,
};
use serde_json::Value;

use crate::util::{bin, root, run, skip, tool, wait_recorded, Sim};

/// Frames where we knowingly differ from tshark 4.0 (fixtures/README.md says why).
const DEVIATIONS: &[(&str, u64)] = &[("opcua/opcua_with_gap.pcap", 30)];

/// PDUs and messages in tshark's golden files of the public captures (README: "8,215 PDUs").
const GOLDEN_PDUS: usize = 8215;

fn shared() -> Option<PathBuf> {
    let p = root().join("../shared/captures");
    if p.is_dir() {
        Some(p)
    } else {
        skip(&format!(
            "{} is absent, so the comparison with tshark's decoding of the public captures did not run",
            p.display()
        ));
        None
    }
}

fn fixture() -> String {
    root()
        .join("fixtures/pcap/modbus/sim-poll-exceptions-write.pcapng")
        .display()
        .to_string()
}

/// The fields compared with tshark, from one of its golden records.
fn golden_key(g: &Value, modbus: bool) -> Vec<Value> {
    let f = |k: &str| g.get(k).cloned().unwrap_or(Value::Null);
    let first = |ks: &[&str]| {
        ks.iter()
            .find_map(|k| g.get(*k).cloned())
            .unwrap_or(Value::Null)
    };
    if modbus {
        vec![
            f("trans_id"),
            f("unit_id"),
            f("func_code"),
            f("exception_code"),
            first(&["reference_num", "read_reference_num"]),
            first(&["word_cnt", "bit_cnt", "read_word_cnt"]),
            f("write_reference_num"),
            f("write_word_cnt"),
        ]
    } else {
        vec![f("msg_type"), f("service_id"), f("request_handle")]
    }
}

/// The same fields from one of our `--pdus` records.
fn our_key(r: &Value, modbus: bool) -> Vec<Value> {
    let f = |k: &str| r.get(k).cloned().unwrap_or(Value::Null);
    if modbus {
        vec![
            f("trans_id"),
            f("unit_id"),
            f("func_code"),
            f("exception_code"),
            f("address"),
            f("count"),
            f("write_address"),
            f("write_count"),
        ]
    } else {
        vec![f("msg_type"), f("service_id"), f("request_handle")]
    }
}

fn pdus(file: &str, extra: &[&str]) -> (i32, BTreeMap<(u64, u64), Value>) {
    let mut args = vec!["decode", file, "--pdus", "--format", "jsonl"];
    args.extend_from_slice(extra);
    let r = run(&args);
    assert!(r.code == 0 || r.code == 1, "decode {file}: {}", r.stderr);
    let map = r
        .jsonl()
        .into_iter()
        .map(|v| {
            (
                (v["frame"].as_u64().unwrap(), v["index"].as_u64().unwrap()),
                v,
            )
        })
        .collect();
    (r.code, map)
}

#[test]
fn every_pdu_of_the_public_captures_agrees_with_tshark() {
    let Some(dir) = shared() else { return };
    let mut files = 0;
    let mut compared = 0;
    let mut golden_pdus = 0;
    let mut ours_only = 0;
    let mut found_deviations = Vec::new();
    let mut problems = Vec::new();
    for proto in ["modbus-tcp", "opcua"] {
        let mut goldens: Vec<PathBuf> = std::fs::read_dir(dir.join(proto))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(".tshark.jsonl"))
            .collect();
        goldens.sort();
        for g in goldens {
            let stem = g
                .to_string_lossy()
                .trim_end_matches(".tshark.jsonl")
                .to_string();
            let cap = ["pcap", "pcapng"]
                .iter()
                .map(|e| PathBuf::from(format!("{stem}.{e}")))
                .find(|p| p.exists())
                .expect("capture beside its golden file");
            let name = format!("{proto}/{}", cap.file_name().unwrap().to_string_lossy());
            let modbus = proto == "modbus-tcp";
            let extra: &[&str] = if name.contains("port12001") {
                &["--opcua-port", "12001"]
            } else {
                &[]
            };
            let golden: BTreeMap<(u64, u64), Value> = std::fs::read_to_string(&g)
                .unwrap()
                .lines()
                .map(|l| {
                    let v: Value = serde_json::from_str(l).unwrap();
                    let idx = v
                        .get("pdu")
                        .or(v.get("msg"))
                        .and_then(Value::as_u64)
                        .unwrap();
                    ((v["frame"].as_u64().unwrap(), idx), v)
                })
                .collect();
            // The golden files stop at frame 3000 (MANIFEST.md).
            let (_, ours) = pdus(cap.to_str().unwrap(), extra);
            // Only this golden file's protocol (plant1_mixed also carries S7comm and EtherNet/IP,
            // compared in `decode_ics`).
            let ours: BTreeMap<_, _> = ours
                .into_iter()
                .filter(|(k, v)| k.0 <= 3000 && v["proto"] == proto)
                .collect();
            files += 1;
            golden_pdus += golden.len();
            ours_only += ours.keys().filter(|k| !golden.contains_key(k)).count();
            for k in golden
                .keys()
                .chain(ours.keys().filter(|k| !golden.contains_key(k)))
            {
                compared += 1;
                let a = golden.get(k).map(|g| golden_key(g, modbus));
                let b = ours.get(k).map(|r| our_key(r, modbus));
                if a != b {
                    if DEVIATIONS.contains(&(name.as_str(), k.0)) {
                        found_deviations.push((name.clone(), k.0));
                    } else {
                        problems.push(format!(
                            "{name} frame {} pdu {}: tshark {a:?}, plcprobe {b:?}",
                            k.0, k.1
                        ));
                    }
                }
            }
        }
    }
    eprintln!("compared {compared} PDUs of {files} captures with tshark; documented deviations: {found_deviations:?}");
    assert_eq!(files, 23, "the 23 golden files of MANIFEST.md");
    // README: "8,215 PDUs" agree: every golden PDU compared (plus ours that tshark lacks, each
    // a documented deviation or a problem above).
    assert_eq!(
        golden_pdus, GOLDEN_PDUS,
        "PDUs in tshark's golden files; README and fixtures/README.md state this figure"
    );
    assert_eq!(
        compared,
        golden_pdus + ours_only,
        "every golden PDU compared"
    );
    assert!(
        ours_only <= DEVIATIONS.len(),
        "PDUs only plcprobe found beyond the documented deviations: {ours_only}"
    );
    assert!(
        problems.is_empty(),
        "{} disagreements:\n{}",
        problems.len(),
        problems.join("\n")
    );
    let expected: Vec<(String, u64)> = DEVIATIONS
        .iter()
        .map(|(n, f)| ((*n).to_string(), *f))
        .collect();
    assert_eq!(
        found_deviations, expected,
        "a documented deviation no longer happens: update fixtures/README.md"
    );
}

/// Run tshark on a file; `None` (skipped loudly) when tshark is missing.
fn tshark(args: &[&str]) -> Option<String> {
    let t = tool("tshark")?;
    let out = std::process::Command::new(t)
        .args(args)
        .env(
            "WIRESHARK_CONFIG_DIR",
            std::env::temp_dir().join("plcprobe-tshark-cfg"),
        )
        .output()
        .expect("run tshark");
    assert!(
        out.status.success(),
        "tshark {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn sim_record_writes_pcapng_that_tshark_reads_without_warnings_and_decodes_alike() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sim.pcapng");
    let f = file.to_str().unwrap();
    let sim = Sim::start(
        "demo-line.toml",
        &[
            "--fault",
            "exception=0x06@0.25",
            "--seed",
            "5",
            "--record",
            f,
        ],
    );
    let port = sim.addrs[0].port().to_string();
    let poll = run(&[
        "poll",
        &sim.target(1),
        "hr:100+2",
        "--count",
        "30",
        "--interval",
        "5ms",
    ]);
    let w = run(&["write", &sim.target(1), "hr:300", "77", "--allow-write"]);
    assert_eq!(w.code, 0, "{}", w.stderr);
    // 30 polls of one request each; the write reads the register, writes it, reads it back.
    wait_recorded(f, 33, Duration::from_secs(30));
    drop(sim);

    // Our view.
    let s = run(&["decode", f, "--format", "json"]);
    assert_eq!(s.code, 0, "{}", s.stderr);
    let doc = s.json();
    assert_eq!(doc["kind"], "decode");
    let dev = &doc["devices"][0];
    assert_eq!(dev["device"], format!("127.0.0.1:{port}/1"));
    assert_eq!(dev["unanswered"], 0);
    assert_eq!(dev["malformed"], 0);
    // poll's own count of exceptions equals what the capture shows for its connection.
    let poll_exc: u64 = poll
        .stdout
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("errors: exception 0x06 Server Device Busy ")
        })
        .map_or(0, |n| n.trim().parse().unwrap());
    let busy: u64 = dev["exceptions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["code"] == 6)
        .map(|e| e["count"].as_u64().unwrap())
        .sum();
    assert!(poll_exc > 0, "the fault should have fired: {}", poll.stdout);
    // The write answered ok, so every busy exception in the capture is one poll saw.
    assert_eq!(
        busy, poll_exc,
        "capture shows {busy} busy exceptions, poll saw {poll_exc}"
    );
    let writes = run(&["decode", f, "--writes", "--format", "jsonl"]).jsonl();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0]["function"], 6);
    assert_eq!(writes[0]["address"], 300);
    assert_eq!(writes[0]["values"], serde_json::json!([77]));
    assert_eq!(writes[0]["status"], "ok");

    // tshark's view: no warnings or errors, the same ADUs.
    let Some(expert) = tshark(&[
        "-r",
        f,
        "-o",
        &format!("mbtcp.tcp.port:{port}"),
        "-q",
        "-z",
        "expert",
    ]) else {
        return;
    };
    assert!(
        !expert.contains("Warnings (") && !expert.contains("Errors ("),
        "tshark expert info:\n{expert}"
    );
    let fields = tshark(&[
        "-r",
        f,
        "-o",
        &format!("mbtcp.tcp.port:{port}"),
        "-Y",
        "mbtcp",
        "-T",
        "fields",
        "-e",
        "frame.number",
        "-e",
        "mbtcp.trans_id",
        "-e",
        "mbtcp.unit_id",
        "-e",
        "modbus.func_code",
        "-e",
        "modbus.exception_code",
    ])
    .unwrap();
    let theirs: Vec<String> = fields.lines().map(str::to_string).collect();
    let (_, ours) = pdus(f, &[]);
    let ours: Vec<String> = ours
        .values()
        .map(|r| {
            format!(
                "{}\t{}\t{}\t{}\t{}",
                r["frame"],
                r["trans_id"],
                r["unit_id"],
                r["func_code"],
                r.get("exception_code")
                    .map(ToString::to_string)
                    .unwrap_or_default()
            )
        })
        .collect();
    assert!(!ours.is_empty());
    assert_eq!(ours, theirs);
}

#[test]
fn project_fixture_summary_transactions_and_device_filter() {
    let f = fixture();
    let tx = run(&["decode", &f, "--transactions", "--format", "jsonl"]);
    assert_eq!(tx.code, 0, "{}", tx.stderr);
    let tx = tx.jsonl();
    let doc = run(&["decode", &f, "--format", "json"]).json();
    assert_eq!(
        tx.len() as u64,
        doc["totals"]["transactions"].as_u64().unwrap()
    );
    let failed = tx.iter().filter(|t| t["status"] != "ok").count() as u64;
    assert_eq!(failed, doc["totals"]["failed"].as_u64().unwrap());
    assert!(tx.iter().all(|t| t["rt_ms"].as_f64().unwrap() >= 0.0));
    assert!(tx
        .iter()
        .all(|t| t["response_frame"].as_u64() > t["request_frame"].as_u64()));
    // Every transaction's device is one of the summary's devices; --device keeps only one.
    let devices: Vec<String> = doc["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(devices.len(), 2);
    let one = devices[1].clone();
    let only = run(&[
        "decode",
        &f,
        "--transactions",
        "--format",
        "jsonl",
        "--device",
        &one,
    ])
    .jsonl();
    assert!(!only.is_empty());
    assert!(only.iter().all(|t| t["device"] == one.as_str()));
    assert_eq!(
        only.len(),
        tx.iter().filter(|t| t["device"] == one.as_str()).count()
    );
    // csv has a header and one line per transaction; the table prints the verdict.
    let csv = run(&["decode", &f, "--transactions", "--format", "csv"]);
    assert_eq!(csv.stdout.lines().count(), tx.len() + 1);
    assert!(csv.stdout.starts_with("time,proto,master,device,"));
    let table = run(&["decode", &f]);
    assert!(table.stdout.contains("problems seen"), "{}", table.stdout);
    assert!(table.stdout.contains("Server Device Busy"));
    let bad = run(&["decode", &f, "--device", "plc7"]);
    assert_eq!(bad.code, 3);
    assert!(bad.stderr.contains("10.0.0.5/1"), "{}", bad.stderr);
    // The failed transactions are exactly the exception responses tshark finds.
    assert!(failed > 0, "the fixture was recorded with exceptions");
    let port = devices[0]
        .rsplit_once('/')
        .unwrap()
        .0
        .rsplit_once(':')
        .unwrap()
        .1;
    let Some(exceptions) = tshark(&[
        "-r",
        &f,
        "-o",
        &format!("mbtcp.tcp.port:{port}"),
        "-Y",
        "modbus.exception_code",
        "-T",
        "fields",
        "-e",
        "frame.number",
    ]) else {
        return;
    };
    assert_eq!(exceptions.lines().count() as u64, failed);
}

#[test]
fn not_a_capture_exits_3_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let txt = dir.path().join("notes.pcap");
    std::fs::write(&txt, "this is not a capture\n").unwrap();
    let r = run(&["decode", txt.to_str().unwrap()]);
    assert_eq!(r.code, 3);
    assert!(
        r.stderr.contains("is not a pcap or pcapng capture"),
        "{}",
        r.stderr
    );
    let empty = dir.path().join("empty.pcap");
    std::fs::write(&empty, "").unwrap();
    let r = run(&["decode", empty.to_str().unwrap()]);
    assert_eq!(r.code, 3);
    assert!(r.stderr.contains("empty"), "{}", r.stderr);
    let r = run(&["decode", dir.path().join("missing.pcap").to_str().unwrap()]);
    assert_eq!(r.code, 3);
    assert!(r.stderr.contains("cannot read"), "{}", r.stderr);
}

#[test]
fn a_truncated_capture_decodes_up_to_the_cut_and_exits_1() {
    let full = std::fs::read(fixture()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.pcapng");
    // Cut in the middle of a packet record, two thirds in.
    std::fs::write(&cut, &full[..full.len() * 2 / 3 + 3]).unwrap();
    let (_, all) = pdus(&fixture(), &[]);
    let r = run(&[
        "decode",
        cut.to_str().unwrap(),
        "--pdus",
        "--format",
        "jsonl",
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("truncated"), "{}", r.stderr);
    let part = r.jsonl();
    assert!(
        part.len() > 10 && part.len() < all.len(),
        "{} of {}",
        part.len(),
        all.len()
    );
    for p in &part {
        let k = (p["frame"].as_u64().unwrap(), p["index"].as_u64().unwrap());
        assert_eq!(&all[&k], p, "frame {k:?} decodes the same before the cut");
    }
    let s = run(&["decode", cut.to_str().unwrap()]);
    assert_eq!(s.code, 1);
    assert!(s.stdout.contains("TRUNCATED"), "{}", s.stdout);
}

thread_local! {
    static SNAP: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// A frame rewrapper (Ethernet frame in, another link layer out).
type Wrap<'a> = &'a dyn Fn(&[u8]) -> Vec<u8>;

/// Re-write the fixture's packets as legacy pcap with another link layer.
fn write_variant(
    out: &Path,
    big_endian: bool,
    nanos: bool,
    linktype: u32,
    wrap: &dyn Fn(&[u8]) -> Vec<u8>,
) {
    let mut packets = Vec::new();
    plcprobe::capture::reader::for_each_packet(Path::new(&fixture()), |p| {
        packets.push((p.ts_ns, p.data.to_vec()));
    })
    .unwrap();
    let mut f = Vec::new();
    let u32b = |v: u32| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let u16b = |v: u16| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    f.extend_from_slice(&u32b(if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 }));
    f.extend_from_slice(&u16b(2));
    f.extend_from_slice(&u16b(4));
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&u32b(65535));
    f.extend_from_slice(&u32b(linktype));
    for (ts, data) in packets {
        let frame = wrap(&data);
        let ts = u64::try_from(ts).unwrap();
        let sec = u32::try_from(ts / 1_000_000_000).unwrap();
        let frac = u32::try_from(if nanos {
            ts % 1_000_000_000
        } else {
            ts % 1_000_000_000 / 1000
        })
        .unwrap();
        let orig = u32::try_from(frame.len()).unwrap();
        // A snaplen (env-free knob for the snaplen test): records keep at most SNAP bytes.
        let keep = SNAP
            .with(std::cell::Cell::get)
            .unwrap_or(frame.len())
            .min(frame.len());
        let len = u32::try_from(keep).unwrap();
        for v in [sec, frac, len, orig] {
            f.extend_from_slice(&u32b(v));
        }
        f.extend_from_slice(&frame[..keep]);
    }
    std::fs::write(out, f).unwrap();
}

#[test]
fn link_types_byte_orders_resolutions_and_gzip_decode_alike() {
    let dir = tempfile::tempdir().unwrap();
    let (_, reference) = pdus(&fixture(), &[]);
    let strip = |v: &Value| {
        let mut v = v.clone();
        // Timestamps lose nothing at µs; compare them as the reference prints them.
        v.as_object_mut().unwrap().remove("time");
        v
    };
    let eth = |d: &[u8]| d.to_vec();
    let ip = |d: &[u8]| d[14..].to_vec();
    let vlan2 = |d: &[u8]| {
        let mut v = d[..12].to_vec();
        v.extend_from_slice(&[0x88, 0xa8, 0x00, 0x64, 0x81, 0x00, 0x00, 0x05]);
        v.extend_from_slice(&d[12..]);
        v
    };
    let sll = |d: &[u8]| {
        let mut v = vec![0, 0, 0, 1, 0, 6];
        v.extend_from_slice(&d[6..12]);
        v.extend_from_slice(&[0, 0]);
        v.extend_from_slice(&d[12..14]);
        v.extend_from_slice(&d[14..]);
        v
    };
    let sll2 = |d: &[u8]| {
        let mut v = d[12..14].to_vec();
        v.extend_from_slice(&[0, 0, 0, 0, 0, 1, 1, 0, 0, 6]);
        v.extend_from_slice(&d[6..12]);
        v.extend_from_slice(&[0, 0]);
        v.extend_from_slice(&d[14..]);
        v
    };
    let null = |d: &[u8]| {
        let mut v = 2u32.to_le_bytes().to_vec();
        v.extend_from_slice(&d[14..]);
        v
    };
    let variants: Vec<(&str, bool, bool, u32, Wrap)> = vec![
        ("eth-le-us", false, false, 1, &eth),
        ("eth-be-ns", true, true, 1, &eth),
        ("qinq", false, false, 1, &vlan2),
        ("sll", false, false, 113, &sll),
        ("sll2", true, false, 276, &sll2),
        ("raw", false, true, 101, &ip),
        ("ipv4", false, false, 228, &ip),
        ("null", false, false, 0, &null),
    ];
    for (name, be, ns, lt, wrap) in variants {
        let p = dir.path().join(format!("{name}.pcap"));
        write_variant(&p, be, ns, lt, wrap);
        let (code, got) = pdus(p.to_str().unwrap(), &[]);
        assert_eq!(code, 0, "{name}");
        assert_eq!(got.len(), reference.len(), "{name}");
        for (k, v) in &reference {
            assert_eq!(strip(&got[k]), strip(v), "{name}: frame {k:?}");
        }
    }
    // gzip, detected by content whatever the name.
    let gz = dir.path().join("fixture.pcapng.gz");
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(&std::fs::read(fixture()).unwrap()).unwrap();
    std::fs::write(&gz, e.finish().unwrap()).unwrap();
    let (code, got) = pdus(gz.to_str().unwrap(), &[]);
    assert_eq!(code, 0);
    assert_eq!(got, reference);
    let s = run(&["decode", gz.to_str().unwrap(), "--format", "json"]).json();
    assert_eq!(s["capture"]["format"], "pcapng+gzip");
}

/// Build a capture from scripted segments: (from client?, seq offset, payload).
fn scripted(path: &Path, client: SocketAddr, server: SocketAddr, segs: &[(bool, u32, Vec<u8>)]) {
    let mut w = PcapngWriter::new(std::fs::File::create(path).unwrap()).unwrap();
    let (cisn, sisn) = (1000u32, 5000u32);
    for (i, (from_client, off, data)) in segs.iter().enumerate() {
        let (src, dst, seq, ack) = if *from_client {
            (client, server, cisn + off, sisn)
        } else {
            (server, client, sisn + off, cisn)
        };
        let ts = 1_700_000_000_000_000_000u64 + i as u64 * 1_000_000;
        w.packet(
            ts,
            &tcp_frame(src, dst, seq, ack, tcpflags::ACK | tcpflags::PSH, data),
        )
        .unwrap();
    }
}

fn adu(trans: u16, unit: u8, pdu: &[u8]) -> Vec<u8> {
    let mut v = trans.to_be_bytes().to_vec();
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(&u16::try_from(pdu.len() + 1).unwrap().to_be_bytes());
    v.push(unit);
    v.extend_from_slice(pdu);
    v
}

#[test]
fn reassembly_split_pipelined_retransmitted_out_of_order_and_midstream() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("tcp.pcapng");
    let c: SocketAddr = "10.0.0.9:40000".parse().unwrap();
    let s: SocketAddr = "10.0.0.5:502".parse().unwrap();
    let q1 = adu(1, 1, &[3, 0, 10, 0, 2]);
    let r1 = adu(1, 1, &[3, 4, 0, 1, 0, 2]);
    let q2 = adu(2, 1, &[4, 0, 0, 0, 1]);
    let q3 = adu(3, 1, &[1, 0, 0, 0, 8]);
    let r2 = adu(2, 1, &[4, 2, 0, 9]);
    let r3 = adu(3, 1, &[0x81, 2]);
    let q4 = adu(4, 1, &[6, 0, 7, 0x12, 0x34]);
    let r4 = adu(4, 1, &q4[7..]);
    let mut pipelined = q2.clone();
    pipelined.extend_from_slice(&q3);
    let mut resp23 = r2.clone();
    resp23.extend_from_slice(&r3);
    let n = |v: &Vec<u8>| u32::try_from(v.len()).unwrap();
    let (c1, s1) = (n(&q1), n(&r1));
    let segs = vec![
        // Frames 1-3: a query split over three segments; 4: its response.
        (true, 0, q1[..3].to_vec()),
        (true, 3, q1[3..9].to_vec()),
        (true, 9, q1[9..].to_vec()),
        (false, 0, r1.clone()),
        // 5: two queries in one segment; 6: their responses, the second an exception.
        (true, c1, pipelined.clone()),
        (false, s1, resp23.clone()),
        // 7: a retransmission of frame 6 (decoded once).
        (false, s1, resp23.clone()),
        // 8, 9: a write query arrives after the segment that follows it (out of order).
        (
            true,
            c1 + n(&pipelined) + n(&q4),
            adu(5, 1, &[3, 0, 0, 0, 1]),
        ),
        (true, c1 + n(&pipelined), q4.clone()),
        (false, s1 + n(&resp23), r4.clone()),
    ];
    scripted(&p, c, s, &segs);
    let f = p.to_str().unwrap();
    let (code, got) = pdus(f, &[]);
    assert_eq!(code, 0);
    let seen: Vec<(u64, u64, u64)> = got
        .values()
        .map(|r| {
            (
                r["frame"].as_u64().unwrap(),
                r["trans_id"].as_u64().unwrap(),
                r["func_code"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (3, 1, 3),
            (4, 1, 3),
            (5, 2, 4),
            (5, 3, 1),
            (6, 2, 4),
            (6, 3, 1),
            (8, 5, 3),
            (9, 4, 6),
            (10, 4, 6)
        ],
        "ADUs once each, in the frame that completes them"
    );
    let doc = run(&["decode", f, "--format", "json"]).json();
    let h = &doc["decoder"];
    assert_eq!(h["retransmissions"], 1);
    assert_eq!(h["out_of_order"], 1);
    assert_eq!(doc["totals"]["transactions"], 4);
    assert_eq!(doc["totals"]["exceptions"], 1);
    // Trans 5 has no response, and the capture ends on it (the last request of its connection,
    // in stream order): pending, not a failure.
    assert_eq!(doc["totals"]["unanswered"], 0);
    assert_eq!(doc["totals"]["pending"], 1, "trans 5 is pending");
    assert_eq!(doc["totals"]["failed"], 1, "the exception only");
    let w = run(&["decode", f, "--writes", "--format", "jsonl"]).jsonl();
    assert_eq!(w.len(), 1);
    assert_eq!(w[0]["values"], serde_json::json!([0x1234]));
    assert_eq!(w[0]["master"], "10.0.0.9:40000");
    assert_eq!(w[0]["device"], "10.0.0.5/1");

    // A capture that starts mid-ADU resyncs on the next segment that starts one.
    let p2 = dir.path().join("mid.pcapng");
    scripted(
        &p2,
        c,
        s,
        &[(true, 0, q1[5..].to_vec()), (true, n(&q1) - 5, q2.clone())],
    );
    let (_, got) = pdus(p2.to_str().unwrap(), &[]);
    assert_eq!(got.len(), 1);
    assert_eq!(got.values().next().unwrap()["trans_id"], 2);
    let doc = run(&["decode", p2.to_str().unwrap(), "--format", "json"]).json();
    assert_eq!(doc["decoder"]["skipped_segments"], 1);
}

#[test]
fn rtu_over_tcp_checks_the_crc_and_pairs_by_order() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("rtu.pcapng");
    let c: SocketAddr = "10.0.0.9:40001".parse().unwrap();
    let s: SocketAddr = "10.0.0.7:4001".parse().unwrap();
    let rtu = |b: &[u8]| {
        let mut v = b.to_vec();
        v.extend_from_slice(&crc16(b).to_le_bytes());
        v
    };
    let q = rtu(&[17, 3, 0, 107, 0, 3]);
    let r = rtu(&[17, 3, 6, 0, 1, 0, 2, 0, 3]);
    let mut bad = rtu(&[17, 3, 0, 107, 0, 3]);
    bad[7] ^= 0xff;
    let n = |v: &Vec<u8>| u32::try_from(v.len()).unwrap();
    scripted(
        &p,
        c,
        s,
        &[
            (true, 0, q.clone()),
            (false, 0, r.clone()),
            (true, n(&q), bad.clone()),
        ],
    );
    let f = p.to_str().unwrap();
    let (_, got) = pdus(f, &["--rtu-port", "4001"]);
    let v: Vec<&Value> = got.values().collect();
    assert_eq!(v.len(), 3);
    assert_eq!(v[0]["proto"], "modbus-rtu-over-tcp");
    assert_eq!(
        (
            v[0]["unit_id"].as_u64(),
            v[0]["address"].as_u64(),
            v[0]["count"].as_u64()
        ),
        (Some(17), Some(107), Some(3))
    );
    assert_eq!(v[1]["registers"], serde_json::json!([1, 2, 3]));
    assert_eq!(v[2]["crc_ok"], false);
    let doc = run(&["decode", f, "--rtu-port", "4001", "--format", "json"]).json();
    assert_eq!(doc["decoder"]["crc_errors"], 1);
    assert_eq!(doc["devices"][0]["device"], "10.0.0.7:4001/17");
    assert_eq!(doc["devices"][0]["answered"], 1);
    assert_eq!(doc["devices"][0]["malformed"], 1);
    // Without --rtu-port the flow is not Modbus/TCP: nothing is decoded as such.
    let (_, none) = pdus(f, &["--no-detect"]);
    assert!(none.is_empty());
}

#[test]
fn opcua_sessions_services_writes_and_bad_status_from_a_real_capture() {
    let Some(dir) = shared() else { return };
    let f = dir.join("opcua/open62541_mainloop.pcapng");
    let f = f.to_str().unwrap();
    let doc = run(&["decode", f, "--format", "json"]).json();
    let services: BTreeMap<String, u64> = doc["opcua"]["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["service"].as_str().unwrap().to_string(),
                s["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(services["ReadRequest"], services["ReadResponse"]);
    assert_eq!(services["PublishRequest"], 11);
    let w = run(&["decode", f, "--writes", "--format", "jsonl"]).jsonl();
    assert_eq!(w.len(), 2);
    assert_eq!(w[0]["values"][0]["node"], "ns=1;s=the.answer");
    assert_eq!(w[0]["status"], "ok");
    // 10 responses carry BadNoSubscription (MANIFEST.md), named.
    let dev = &doc["devices"][0];
    let bad = dev["bad_status"].as_array().unwrap();
    assert!(
        bad.iter()
            .any(|b| b["name"] == "BadNoSubscription" && b["count"] == 10),
        "{bad:?}"
    );
    // Encrypted bodies are counted, not misread.
    let enc = run(&[
        "decode",
        dir.join("opcua/open62541_encrypted_basic128rsa15.pcapng")
            .to_str()
            .unwrap(),
        "--format",
        "json",
    ])
    .json();
    assert!(enc["opcua"]["encrypted_messages"].as_u64().unwrap() > 0);
    let pol: Vec<&str> = enc["opcua"]["security_policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["policy"].as_str().unwrap())
        .collect();
    assert!(pol.contains(&"Basic128Rsa15"), "{pol:?}");
}

#[test]
fn broken_pipe_is_not_an_error() {
    let mut child = bin()
        .args(["decode", &fixture(), "--pdus"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.code() == Some(0),
        "{:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn decode_results_become_a_report_that_renders_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let res = dir.path().join("dec.json");
    let r = run(&[
        "decode",
        &fixture(),
        "--results",
        res.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let html = dir.path().join("incident.html");
    let md = dir.path().join("incident.md");
    for out in [&html, &md] {
        let r = run(&["report", res.to_str().unwrap(), "-o", out.to_str().unwrap()]);
        assert_eq!(
            r.code, 1,
            "a capture with failed requests is a WARNING: {}",
            r.stderr
        );
    }
    let text = std::fs::read_to_string(&html).unwrap();
    for banned in ["<script", "http://", "https://", " src=", "<link", "url("] {
        assert!(!text.contains(banned), "self-contained: found {banned}");
    }
    for needle in [
        "<h2>Capture",
        "Failed requests",
        "Server Device Busy",
        "Writes",
        "<svg",
        "Polling regularity",
    ] {
        assert!(text.contains(needle), "{needle}");
    }
    let m = std::fs::read_to_string(&md).unwrap();
    assert!(
        m.contains("## Capture") && m.contains("| device | protocol |"),
        "{m}"
    );
    let Some(chromium) = tool("chromium") else {
        return;
    };
    let dom = crate::util::chromium_dom(&chromium, &html, &dir.path().join("profile"));
    assert!(
        dom.contains("WARNING") && dom.contains("Illegal Data Address"),
        "{}",
        &dom[..dom.len().min(400)]
    );
}

/// An OPC UA `WriteRequest` (security None) writing `value` (a `Variant`) to `ns=2;s=X`.
fn ua_write_request(value: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&[1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0]); // channel, token, seq, req id
    b.extend_from_slice(&[1, 0, 0xa1, 0x02]); // 673 WriteRequest
    b.extend_from_slice(&[0, 0]); // authentication token
    b.extend_from_slice(&[0; 8]); // timestamp
    b.extend_from_slice(&7u32.to_le_bytes()); // request handle
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&(-1i32).to_le_bytes());
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&[0, 0, 0]); // additional header
    b.extend_from_slice(&1i32.to_le_bytes());
    b.extend_from_slice(&[3, 2, 0, 1, 0, 0, 0, b'X']); // ns=2;s=X
    b.extend_from_slice(&13u32.to_le_bytes());
    b.extend_from_slice(&(-1i32).to_le_bytes());
    b.push(1); // DataValue with a value
    b.extend_from_slice(value);
    let mut m = b"MSGF".to_vec();
    m.extend_from_slice(&u32::try_from(b.len() + 8).unwrap().to_le_bytes());
    m.extend_from_slice(&b);
    m
}

#[test]
fn fuzz_regression_opcua_datetime_beyond_year_9999() {
    // The capture_file fuzz target found a panic (crash-2a2d025f, from a mutated public OPC UA
    // capture that is not copied here): a Write of a DateTime whose ticks are past year 9999
    // made the time formatter fail. Rebuilt from scratch: it must decode, not panic.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("ua.pcapng");
    let c: SocketAddr = "10.0.0.9:50000".parse().unwrap();
    let s: SocketAddr = "10.0.0.7:4840".parse().unwrap();
    let mut dt = vec![13];
    dt.extend_from_slice(&i64::MAX.to_le_bytes());
    scripted(&p, c, s, &[(true, 0, ua_write_request(&dt))]);
    let r = run(&["decode", p.to_str().unwrap(), "--pdus", "--format", "jsonl"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = r.jsonl();
    assert_eq!(v[0]["service"], "WriteRequest");
    assert_eq!(v[0]["nodes"][0]["node"], "ns=2;s=X");
    assert_eq!(v[0]["nodes"][0]["value"], format!("ticks:{}", i64::MAX));
}

#[test]
fn pcapng_with_two_interfaces_of_different_link_types_and_resolutions() {
    let mut packets = Vec::new();
    plcprobe::capture::reader::for_each_packet(Path::new(&fixture()), |p| {
        packets.push((p.ts_ns, p.data.to_vec()));
    })
    .unwrap();
    let block = |t: u32, body: &[u8]| {
        let pad = (4 - body.len() % 4) % 4;
        let len = u32::try_from(12 + body.len() + pad).unwrap();
        let mut b = t.to_le_bytes().to_vec();
        b.extend_from_slice(&len.to_le_bytes());
        b.extend_from_slice(body);
        b.extend(std::iter::repeat_n(0u8, pad));
        b.extend_from_slice(&len.to_le_bytes());
        b
    };
    let mut f = block(
        0x0A0D_0D0A,
        &[
            0x4D, 0x3C, 0x2B, 0x1A, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ],
    );
    // Interface 0: Ethernet, default microseconds. Interface 1: raw IP, nanoseconds.
    f.extend(block(1, &[1, 0, 0, 0, 0, 0, 0, 0]));
    f.extend(block(
        1,
        &[101, 0, 0, 0, 0, 0, 0, 0, 9, 0, 1, 0, 9, 0, 0, 0, 0, 0, 0, 0],
    ));
    for (i, (ts, data)) in packets.iter().enumerate() {
        let ts = u64::try_from(*ts).unwrap();
        let (iface, units, frame) = if i % 2 == 0 {
            (0u32, ts / 1000, data.clone())
        } else {
            (1, ts, data[14..].to_vec())
        };
        let mut body = iface.to_le_bytes().to_vec();
        body.extend_from_slice(&u32::try_from(units >> 32).unwrap().to_le_bytes());
        body.extend_from_slice(&u32::try_from(units & 0xffff_ffff).unwrap().to_le_bytes());
        let n = u32::try_from(frame.len()).unwrap();
        body.extend_from_slice(&n.to_le_bytes());
        body.extend_from_slice(&n.to_le_bytes());
        body.extend_from_slice(&frame);
        let pad = (4 - frame.len() % 4) % 4;
        body.extend(std::iter::repeat_n(0u8, pad));
        f.extend(block(6, &body));
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("two-ifaces.pcapng");
    std::fs::write(&p, f).unwrap();
    let (code, got) = pdus(p.to_str().unwrap(), &[]);
    let (_, reference) = pdus(&fixture(), &[]);
    assert_eq!(code, 0);
    assert_eq!(got.len(), reference.len());
    for (k, v) in &reference {
        // Interface 0 keeps microseconds: the reference prints microseconds too.
        assert_eq!(&got[k], v, "frame {k:?}");
    }
}

#[test]
fn fuzz_regression_opcua_size_below_header_does_not_hang() {
    // tcp_reassembly fuzz crash-da856ace: a HEL whose size field (0x11) is fine followed, in
    // the same segment, by a header claiming 0 bytes: the cutter looped on it for ever.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("ua0.pcapng");
    let c: SocketAddr = "10.0.0.9:50001".parse().unwrap();
    let s: SocketAddr = "10.0.0.7:4840".parse().unwrap();
    let mut b = b"HELF".to_vec();
    b.extend_from_slice(&8u32.to_le_bytes());
    b.extend_from_slice(b"ACKF\0\0\0\0ERRF");
    scripted(&p, c, s, &[(true, 0, b)]);
    let r = run(&["decode", p.to_str().unwrap(), "--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["decoder"]["bad_lengths"], 1);
}

#[test]
fn packets_cut_by_the_snaplen_decode_as_far_as_they_go_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("snap60.pcap");
    // 60 bytes: Ethernet + IPv4 + TCP headers + 6 bytes of every ADU (short of its header).
    SNAP.with(|s| s.set(Some(60)));
    write_variant(&p, false, false, 1, &|d: &[u8]| d.to_vec());
    SNAP.with(|s| s.set(None));
    // The simulator's port is not 502, and cut ADUs cannot be recognised by content: say it.
    let reference = run(&["decode", &fixture(), "--format", "json"]).json();
    let dev = reference["devices"][0]["device"]
        .as_str()
        .unwrap()
        .to_string();
    let port = dev
        .split(':')
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let r = run(&[
        "decode",
        p.to_str().unwrap(),
        "--format",
        "json",
        "--modbus-port",
        &port,
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("cut short"), "{}", r.stderr);
    let doc = r.json();
    assert!(doc["decoder"]["cut_segments"].as_u64().unwrap() > 0);
    assert_eq!(
        doc["capture"]["snapped_packets"].as_u64(),
        doc["decoder"]["cut_segments"].as_u64()
    );
    assert_eq!(doc["verdict"], "WARNING");
    assert!(doc["summary"].as_str().unwrap().contains("cut"));
}

#[test]
fn opcua_message_in_several_chunks_is_decoded_whole() {
    // A WriteRequest split into an intermediate chunk ('C') and a final one ('F'), each in its
    // own segment: the node and value are in the second chunk's body.
    let whole = ua_write_request(&[6, 42, 0, 0, 0]); // Int32 42
    let cut = 60;
    let mut c1 = whole[..cut].to_vec();
    c1[3] = b'C';
    c1[4..8].copy_from_slice(&u32::try_from(cut).unwrap().to_le_bytes());
    let mut c2 = whole[..24].to_vec();
    c2.extend_from_slice(&whole[cut..]);
    let n2 = u32::try_from(c2.len()).unwrap();
    c2[4..8].copy_from_slice(&n2.to_le_bytes());
    c2[16..20].copy_from_slice(&3u32.to_le_bytes()); // next sequence number
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("chunks.pcapng");
    let c: SocketAddr = "10.0.0.9:50002".parse().unwrap();
    let s: SocketAddr = "10.0.0.7:4840".parse().unwrap();
    let n1 = u32::try_from(c1.len()).unwrap();
    scripted(&p, c, s, &[(true, 0, c1), (true, n1, c2)]);
    let v = run(&["decode", p.to_str().unwrap(), "--pdus", "--format", "jsonl"]).jsonl();
    assert_eq!(v.len(), 2, "{v:?}");
    assert_eq!(
        (v[0]["chunk"].as_str(), v[0].get("service")),
        (Some("C"), None)
    );
    assert_eq!(v[1]["chunk"], "F");
    assert_eq!(v[1]["service"], "WriteRequest");
    assert_eq!(v[1]["seq"], 3);
    assert_eq!(v[1]["nodes"][0]["node"], "ns=2;s=X");
    assert_eq!(v[1]["nodes"][0]["value"], "42");
    assert!(v
        .iter()
        .all(|m| m.get("encrypted").is_none() && m.get("malformed").is_none()));
}

#[test]
fn a_response_with_the_wrong_function_code_is_a_failed_transaction() {
    // The simulator's garbage fault answers 0x43 to a 0x03 request: poll calls it a protocol
    // error; the capture must show the same requests as failed ("mismatch").
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("garbage.pcapng");
    let f = file.to_str().unwrap();
    let sim = Sim::start(
        "demo-line.toml",
        &["--fault", "garbage=0.3", "--seed", "3", "--record", f],
    );
    let poll = run(&[
        "poll",
        &sim.target(1),
        "hr:100+2",
        "--count",
        "40",
        "--interval",
        "0",
        "--format",
        "json",
    ]);
    wait_recorded(f, 40, Duration::from_secs(30));
    drop(sim);
    let tx = run(&["decode", f, "--transactions", "--format", "jsonl"]).jsonl();
    assert_eq!(tx.len(), 40, "every poll's request is a transaction");
    let mismatched: Vec<&Value> = tx.iter().filter(|t| t["status"] == "mismatch").collect();
    assert!(!mismatched.is_empty(), "{}", poll.stdout);
    assert!(mismatched
        .iter()
        .all(|t| t["response_function"] == 0x43 && t["function"] == 3));
    let answered_ok = tx.iter().filter(|t| t["status"] == "ok").count();
    assert_eq!(
        answered_ok + mismatched.len(),
        tx.len(),
        "every request of this poll was answered"
    );
}

#[test]
fn writes_of_every_write_function_from_a_real_capture_match_tshark() {
    let Some(dir) = shared() else { return };
    let cap = dir.join("modbus-tcp/icsnpp_modbus_example.pcap");
    let golden: Vec<Value> =
        std::fs::read_to_string(dir.join("modbus-tcp/icsnpp_modbus_example.tshark.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    let writes = run(&[
        "decode",
        cap.to_str().unwrap(),
        "--writes",
        "--format",
        "jsonl",
    ])
    .jsonl();
    // Every write query tshark decoded (FC 5, 6, 15, 16, 21, 22, 23) is one of our writes, at the
    // frame, address and (FC 23) write address tshark shows.
    let queries: Vec<&Value> = golden
        .iter()
        .filter(|g| {
            g["dir"] == "query"
                && [5, 6, 15, 16, 21, 22, 23].contains(&g["func_code"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(writes.len(), queries.len());
    for (w, g) in writes.iter().zip(&queries) {
        assert_eq!(w["request_frame"], g["frame"]);
        assert_eq!(w["function"], g["func_code"]);
        assert_eq!(
            w.get("address"),
            g.get("reference_num").or(g.get("read_reference_num"))
        );
        assert_eq!(w.get("write_address"), g.get("write_reference_num"));
        assert_eq!(w.get("write_count"), g.get("write_word_cnt"));
    }
}

/// asyncua's client subscribed to a node of `sim --opcua` (publishing every 100 ms); prints
/// `SUBSCRIBED` once notifications flow, then either dies at once (`abort`: the kernel closes its
/// connection while the server holds its Publish requests) or stays connected (`stay`).
const UA_SUBSCRIBER: &str = r#"
import asyncio, os, sys
from asyncua import Client
class Handler:
    def datachange_notification(self, node, val, data):
        pass
async def main(url, node, mode):
    c = Client(url=url, timeout=5)
    await c.connect()
    # The client that stays publishes every 10 s, longer than the test: the server holds its
    # Publish for the whole capture, so one is outstanding whenever the capture stops. (At
    # 100 ms, slowed by a loaded machine, it was once between a response and its next Publish
    # when the capture stopped: no pending.) The other cycles its Publish every 100 ms and
    # exits from the event loop, never between a response and the next request.
    sub = await c.create_subscription(100 if mode == "abort" else 10000, Handler())
    await sub.subscribe_data_change(c.get_node(node))
    await asyncio.sleep(1.5)
    print("SUBSCRIBED", flush=True)
    if mode == "abort":
        os._exit(0)
    await asyncio.sleep(3600)
asyncio.run(main(*sys.argv[1:]))
"#;

#[test]
fn every_opcua_request_is_accounted_for_publish_held_at_close_and_pending_at_the_end() {
    use std::io::{BufRead, BufReader};
    let (Some(py), Some(dumpcap)) = (crate::util::python(), tool("dumpcap")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("ua.pcapng");
    let sim = crate::util::UaSim::start("127.0.0.1:0", &[]);
    let port = sim.url.rsplit(':').next().unwrap().to_string();
    // dumpcap on loopback (needs CAP_NET_RAW: root in CI), only the simulator's port.
    let mut dc = std::process::Command::new(dumpcap)
        .args(["-q", "-i", "lo", "-f", &format!("tcp port {port}"), "-w"])
        .arg(&cap)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dumpcap");
    let mut err = BufReader::new(dc.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    if !line.contains("Capturing on") {
        let _ = dc.kill();
        let _ = dc.wait();
        skip(&format!("dumpcap cannot capture on lo here: {line}"));
        return;
    }
    let dc = crate::util::Guard(dc);
    let node = "ns=2;s=Line1.press.pressure";
    let subscriber = |mode: &str| {
        let mut c = std::process::Command::new(&py)
            .args(["-c", UA_SUBSCRIBER, &sim.url, node, mode])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn asyncua");
        let mut out = BufReader::new(c.stdout.take().unwrap());
        let mut l = String::new();
        out.read_line(&mut l).unwrap();
        assert_eq!(l.trim(), "SUBSCRIBED", "asyncua subscriber ({mode})");
        crate::util::Guard(c)
    };
    // One client dies while its Publish requests are held; another is still subscribed when the
    // capture stops.
    let mut aborted = subscriber("abort");
    aborted.0.wait().unwrap();
    let stay = subscriber("stay");
    std::thread::sleep(Duration::from_millis(500));
    let pid = dc.0.id().to_string();
    let stopped = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(stopped.success());
    let mut dc = dc;
    dc.0.wait().unwrap();
    drop(stay);
    let f = cap.to_str().unwrap();

    let doc = run(&["decode", f, "--opcua-port", &port, "--format", "json"]).json();
    let devices = doc["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 1, "{devices:?}");
    let d = &devices[0];
    let n = |k: &str| d[k].as_u64().unwrap_or_else(|| panic!("{k} in {d}"));
    assert_eq!(
        n("requests"),
        n("answered") + n("unanswered") + n("pending") + n("held"),
        "{d}"
    );
    assert_eq!(
        n("responses"),
        n("answered") + n("responses_without_request")
    );
    assert!(n("held") >= 1, "the aborted client's Publish: {d}");
    assert!(n("pending") >= 1, "the subscribed client's Publish: {d}");
    assert_eq!(n("unanswered"), 0, "{d}");
    assert_eq!(doc["verdict"], "OK", "held and pending are not failures");
    // tshark counts the same requests, service by service (CloseSecureChannel is not one).
    let Some(ids) = tshark(&[
        "-r",
        f,
        "-d",
        &format!("tcp.port=={port},opcua"),
        "-Y",
        "opcua",
        "-T",
        "fields",
        "-e",
        "opcua.servicenodeid.numeric",
    ]) else {
        return;
    };
    let mut theirs: BTreeMap<u64, u64> = BTreeMap::new();
    for id in ids.split(|c: char| c == ',' || c.is_whitespace()) {
        if let Ok(id) = id.parse::<u64>() {
            *theirs.entry(id).or_default() += 1;
        }
    }
    for fun in d["functions"].as_array().unwrap() {
        let id = fun["function"].as_u64().unwrap();
        assert_eq!(theirs.get(&id), fun["requests"].as_u64().as_ref(), "{fun}");
    }
    let publish = d["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "PublishRequest")
        .expect("Publish requests");
    assert!(publish["requests"].as_u64().unwrap() >= 4);

    // Every request is one transaction row; the statuses are the device's figures.
    let rows = run(&[
        "decode",
        f,
        "--opcua-port",
        &port,
        "--transactions",
        "--format",
        "jsonl",
    ])
    .jsonl();
    assert_eq!(rows.len() as u64, n("requests"));
    let count = |s: &str| rows.iter().filter(|r| r["status"] == s).count() as u64;
    assert_eq!(count("held"), n("held"));
    assert_eq!(count("pending"), n("pending"));
    assert_eq!(count("ok"), n("answered"));
    for r in rows
        .iter()
        .filter(|r| r["status"] == "held" || r["status"] == "pending")
    {
        assert_eq!(r["function_name"], "PublishRequest", "{r}");
        assert!(r.get("response_frame").is_none() && r.get("rt_ms").is_none());
    }
    let frames: std::collections::BTreeSet<u64> = rows
        .iter()
        .map(|r| r["request_frame"].as_u64().unwrap() * 1000 + r["id"].as_u64().unwrap())
        .collect();
    assert_eq!(frames.len(), rows.len(), "no request twice");
    // The terminal summary says so, and `report` shows them.
    let text = run(&["decode", f, "--opcua-port", &port]).stdout;
    assert!(text.contains("requests pending"), "{text}");
    let res = dir.path().join("res.json");
    let r = run(&[
        "decode",
        f,
        "--opcua-port",
        &port,
        "--results",
        res.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out = dir.path().join("report.md");
    let r = run(&["report", res.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let md = std::fs::read_to_string(&out).unwrap();
    assert!(
        md.contains(&format!("{} pending at the end", n("pending"))),
        "{md}"
    );
    assert!(md.contains("| pending |"), "{md}");
}
