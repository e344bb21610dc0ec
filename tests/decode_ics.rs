//! `decode` of the rest of a line: S7comm, EtherNet/IP with CIP (and its implicit I/O), DNP3,
//! BACnet/IP and BACnet MS/TP, through the real binary on the public captures in ../shared.
//! The same questions as for Modbus — who asked what, what answered, how slowly, what failed,
//! who wrote what — answered in the same views: the summary's devices, `--transactions`,
//! failures and `--writes`, in every format. (Message-by-message agreement with tshark is in
//! the golden tests.)

use std::path::PathBuf;

use serde_json::Value;

use plcprobe::capture::writer::{tcp_frame, tcpflags, PcapngWriter};

use crate::util::{root, run, skip};

fn capture(rel: &str) -> Option<String> {
    let p: PathBuf = root().join("../shared/captures").join(rel);
    if p.is_file() {
        Some(p.display().to_string())
    } else {
        skip(&format!(
            "{} is absent, so the decode of this public capture did not run",
            p.display()
        ));
        None
    }
}

fn summary(file: &str, extra: &[&str]) -> Value {
    let mut args = vec!["decode", file, "--format", "json"];
    args.extend_from_slice(extra);
    let r = run(&args);
    assert!(r.code == 0 || r.code == 1, "decode {file}: {}", r.stderr);
    r.json()
}

fn rows(file: &str, mode: &str) -> Vec<Value> {
    let r = run(&["decode", file, mode, "--format", "jsonl"]);
    assert!(
        r.code == 0 || r.code == 1,
        "decode {file} {mode}: {}",
        r.stderr
    );
    r.jsonl()
}

fn device<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["device"] == name)
        .unwrap_or_else(|| panic!("no device {name} in {}", doc["devices"]))
}

/// Per device, every request is accounted for, whatever the protocol.
fn accounted(doc: &Value) {
    for d in doc["devices"].as_array().unwrap() {
        let n = |k: &str| d[k].as_u64().unwrap();
        assert_eq!(
            n("requests"),
            n("answered") + n("unanswered") + n("pending") + n("held"),
            "{d}"
        );
        assert_eq!(
            n("responses"),
            n("answered") + n("responses_without_request"),
            "{d}"
        );
    }
}

#[test]
fn s7comm_jobs_pair_by_pdu_reference_with_failures_and_plc_control_named() {
    let Some(f) = capture("s7comm/snap7_s300_everything.pcap") else {
        return;
    };
    let doc = summary(&f, &[]);
    accounted(&doc);
    let d = device(&doc, "134.217.61.211:102");
    assert_eq!(d["proto"], "s7comm");
    assert_eq!(
        (d["requests"].as_u64(), d["answered"].as_u64()),
        (Some(32), Some(32))
    );
    // The failed answers are named in tshark's words.
    let fails: Vec<String> = doc["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| format!("{} {}", t["function_name"], t["status_code"]))
        .collect();
    assert!(
        fails
            .iter()
            .any(|x| x.contains("Write Var") && x.contains("Accessing the object not allowed")),
        "{fails:?}"
    );
    assert!(
        fails
            .iter()
            .any(|x| x.contains("Start upload") && x.contains("0xD20C")),
        "{fails:?}"
    );
    // Writes: Write Var and the PLC control jobs are listed as what they are.
    let writes = rows(&f, "--writes");
    let names: Vec<&str> = writes
        .iter()
        .map(|w| w["function_name"].as_str().unwrap())
        .collect();
    for must in ["Write Var", "PLC Stop", "PI-Service"] {
        assert!(names.contains(&must), "{must} missing from {names:?}");
    }
    let wv = writes
        .iter()
        .find(|w| w["function_name"] == "Write Var")
        .unwrap();
    assert!(wv["target"].as_str().is_some_and(|t| !t.is_empty()), "{wv}");
    // Every transaction row is a job with its answer (or none), by PDU reference.
    let tx = rows(&f, "--transactions");
    assert_eq!(tx.len(), 32);
    assert!(tx
        .iter()
        .all(|t| t["proto"] == "s7comm" && t["response_frame"].is_u64()));
}

#[test]
fn the_mixed_plant_capture_shows_modbus_s7comm_and_enip_devices_side_by_side() {
    let Some(f) = capture("modbus-tcp/plant1_mixed_master_modbus_s7_enip.pcap") else {
        return;
    };
    let doc = summary(&f, &[]);
    accounted(&doc);
    let protos: std::collections::BTreeSet<&str> = doc["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["proto"].as_str().unwrap())
        .collect();
    assert!(
        ["modbus-tcp", "s7comm", "enip"]
            .iter()
            .all(|p| protos.contains(p)),
        "{protos:?}"
    );
    let m = &doc["totals"]["messages"];
    // MANIFEST.md: S7comm ROSCTR Job 1305 + Ack_Data 1303; ENIP 2102 SendUnitData + 114
    // SendRRData.
    assert_eq!(m["s7comm"], 2608, "{m}");
    assert_eq!(m["enip"], 2216, "{m}");
    // The Modbus side is what it was before the other protocols were decoded.
    assert_eq!(doc["totals"]["modbus_pdus"], 3583);
    // With --no-detect and the S7 port taken away by nothing, S7comm stays on 102 by port.
    let s7 = device(&doc, "141.81.0.146:102");
    assert!(s7["rt_ms"]["p50"].as_f64().unwrap() > 0.0);
}

#[test]
fn cip_implicit_io_is_counted_per_connection_with_its_rate() {
    let Some(f) = capture("enip/cip_io_udp2222.pcap") else {
        return;
    };
    let doc = summary(&f, &[]);
    let io = doc["io_connections"].as_array().unwrap();
    assert_eq!(io.len(), 2, "{io:?}");
    for c in io {
        assert_eq!(c["proto"], "cip-io");
        assert_eq!(c["packets"], 2);
        // Two packets 10 ms apart: 100 per second.
        let rate = c["rate_per_s"].as_f64().unwrap();
        assert!((95.0..105.0).contains(&rate), "{c}");
    }
    assert_eq!(doc["totals"]["unsolicited"], 4);
    // csv and table carry the same devices.
    let r = run(&["decode", &f, "--format", "csv"]);
    assert!(
        r.stdout.lines().next().unwrap().contains("unsolicited"),
        "{}",
        r.stdout
    );
}

#[test]
fn dnp3_select_before_operate_is_listed_as_writes_with_the_point_and_outstation() {
    let Some(f) = capture("dnp3/select_operate_and_responses.pcap") else {
        return;
    };
    let doc = summary(&f, &[]);
    accounted(&doc);
    let writes = rows(&f, "--writes");
    let fns: Vec<&str> = writes
        .iter()
        .map(|w| w["function_name"].as_str().unwrap())
        .collect();
    assert_eq!(fns, ["Select", "Operate"]);
    for w in &writes {
        assert_eq!(w["proto"], "dnp3");
        assert_eq!(w["status"], "ok");
        // Devices are ADDR:20000/OUTSTATION.
        assert!(w["device"].as_str().unwrap().ends_with(":20000/10"), "{w}");
        assert!(w["target"].as_str().unwrap().contains("g12v1"), "{w}");
        assert!(w["values"].as_str().unwrap().contains("Latch On"), "{w}");
    }
    // --device takes the outstation address.
    let one = summary(&f, &["--device", "192.168.60.130:20000/10"]);
    assert_eq!(one["devices"].as_array().unwrap().len(), 1);
    let none = summary(&f, &["--device", "192.168.60.130:20000/11"]);
    assert_eq!(none["devices"].as_array().unwrap().len(), 0);
}

#[test]
fn dnp3_unsolicited_responses_are_counted_not_paired_and_malformed_frames_counted() {
    let Some(f) = capture("dnp3/unsolicited_response_and_confirm.pcap") else {
        return;
    };
    let doc = summary(&f, &[]);
    assert_eq!(doc["totals"]["unsolicited"], 1);
    assert_eq!(doc["totals"]["unanswered"], 0);
    let Some(bad) = capture("dnp3/openics_dnp3_malformed.pcap") else {
        return;
    };
    let doc = summary(&bad, &[]);
    accounted(&doc);
    assert!(
        doc["totals"]["malformed"].as_u64().unwrap() > 100,
        "{}",
        doc["totals"]
    );
    assert_eq!(doc["verdict"], "WARNING");
}

#[test]
fn bacnet_errors_are_named_and_mstp_devices_are_line_and_mac() {
    let Some(f) = capture("bacnet/bacnet_ip.pcap") else {
        return;
    };
    let doc = summary(&f, &[]);
    accounted(&doc);
    let d = device(&doc, "192.168.0.13:47808");
    let errors = d["errors"].as_array().unwrap();
    assert!(
        errors.iter().any(|e| e["name"] == "unknown-property"),
        "{errors:?}"
    );
    let failed = rows(&f, "--transactions");
    let e = failed.iter().find(|t| t["status"] == "error").unwrap();
    assert_eq!(e["function_name"], "readProperty");
    assert!(e["target"].as_str().unwrap().starts_with("device,"), "{e}");
    let Some(m) = capture("bacnet/bacnet_mstp_serial.pcap") else {
        return;
    };
    let doc = summary(&m, &[]);
    accounted(&doc);
    assert!(doc["decoder"]["mstp_frames"].as_u64().unwrap() >= 600);
    let names: Vec<&str> = doc["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device"].as_str().unwrap())
        .collect();
    assert!(names.iter().all(|n| n.starts_with("serial/")), "{names:?}");
}

/// A TPKT/COTP DT packet around `s7`.
fn tpkt(s7: &[u8]) -> Vec<u8> {
    let len = u16::try_from(4 + 3 + s7.len()).unwrap();
    let mut v = vec![3, 0];
    v.extend_from_slice(&len.to_be_bytes());
    v.extend_from_slice(&[2, 0xf0, 0x80]);
    v.extend_from_slice(s7);
    v
}

/// An S7 Read Var job (PDU reference `r`) of 2 bytes at DB1 byte 10 and its `Ack_Data` answering
/// "Object does not exist" (return code 0x0a).
fn s7_read(r: u16) -> (Vec<u8>, Vec<u8>) {
    let [a, b] = r.to_be_bytes();
    let job = tpkt(&[
        0x32, 1, 0, 0, a, b, 0, 14, 0, 0, // header: Job, ref, param 14, data 0
        4, 1, // Read Var, 1 item
        0x12, 10, 0x10, 2, 0, 2, 0, 1, 0x84, 0, 0, 80, // S7ANY: BYTE x 2 of DB1 at byte 10
    ]);
    let ack = tpkt(&[
        0x32, 3, 0, 0, a, b, 0, 2, 0, 4, 0, 0, // header: Ack_Data, param 2, data 4, no error
        4, 1, // Read Var, 1 item
        0x0a, 0, 0, 0, // return code 0x0a, transport size 0, length 0
    ]);
    (job, ack)
}

/// A capture of one S7comm connection on TCP port `port`: three jobs, each answered.
fn s7_capture(port: u16) -> tempfile::NamedTempFile {
    let f = tempfile::Builder::new()
        .suffix(".pcapng")
        .tempfile()
        .unwrap();
    let mut w = PcapngWriter::new(f.reopen().unwrap()).unwrap();
    let client: std::net::SocketAddr = "10.0.0.10:40001".parse().unwrap();
    let plc: std::net::SocketAddr = format!("10.0.0.20:{port}").parse().unwrap();
    let (mut cseq, mut sseq) = (1000u32, 5000u32);
    let mut ts = 1_700_000_000_000_000_000u64;
    for r in 1..=3u16 {
        let (job, ack) = s7_read(r);
        let fl = tcpflags::ACK | tcpflags::PSH;
        w.packet(ts, &tcp_frame(client, plc, cseq, sseq, fl, &job))
            .unwrap();
        cseq += u32::try_from(job.len()).unwrap();
        ts += 3_000_000;
        w.packet(ts, &tcp_frame(plc, client, sseq, cseq, fl, &ack))
            .unwrap();
        sseq += u32::try_from(ack.len()).unwrap();
        ts += 100_000_000;
    }
    drop(w);
    f
}

#[test]
fn s7comm_on_another_port_is_found_by_content_or_by_flag_and_read_failures_are_named() {
    let cap = s7_capture(5102);
    let f = cap.path().to_str().unwrap();
    // By content (the default).
    let doc = summary(f, &[]);
    assert_eq!(doc["totals"]["messages"]["s7comm"], 6, "{}", doc["totals"]);
    let d = device(&doc, "10.0.0.20:5102");
    assert_eq!(
        (d["requests"].as_u64(), d["answered"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(d["errors"][0]["name"], "Object does not exist", "{d}");
    assert_eq!(d["errors"][0]["count"], 3);
    let tx = rows(f, "--transactions");
    assert_eq!(tx.len(), 3);
    for (i, t) in tx.iter().enumerate() {
        assert_eq!(t["id"], i + 1, "paired by PDU reference: {t}");
        assert_eq!(t["status"], "error");
        assert_eq!(t["function_name"], "Read Var");
        assert_eq!(t["target"], "DB1.DBX10.0 BYTE[2]", "{t}");
        assert!((t["rt_ms"].as_f64().unwrap() - 3.0).abs() < 1e-6, "{t}");
    }
    // Not with --no-detect; then again with --port.
    let off = summary(f, &["--no-detect"]);
    assert_eq!(off["totals"]["transactions"], 0, "{}", off["totals"]);
    let on = summary(f, &["--no-detect", "--port", "s7comm=5102"]);
    assert_eq!(on["totals"]["messages"]["s7comm"], 6);
}

#[test]
fn other_ports_by_flag_and_by_content() {
    let Some(f) = capture("s7comm/s7comm_reading_plc_status.pcap") else {
        return;
    };
    // The bad flag is a clear error, exit 3.
    let r = run(&["decode", &f, "--port", "s7=1102"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("PROTO=PORT"), "{}", r.stderr);
    // S7comm is found on 102 by port; with --no-detect too.
    let doc = summary(&f, &["--no-detect"]);
    assert_eq!(doc["totals"]["messages"]["s7comm"], 144);
}
