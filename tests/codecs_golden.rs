//! The S7comm and EtherNet/IP+CIP codecs (`proto::s7comm`, `proto::enip`) against tshark 4.0's
//! golden files (`fixtures/golden/{s7comm,enip}/`, made by `scripts/golden/*.py`), message by
//! message, without the capture pipeline: every capture of `../shared/captures/s7comm` and
//! `enip` (and the mixed plant capture) is read with the crate's own reader and link layer;
//! frames whose TCP payload is a whole run of TPKT packets / encapsulation messages are cut and
//! decoded (COTP DT fragments joined per direction with `CotpReassembler`), UDP datagrams (44818
//! and implicit I/O on 2222) are taken whole; frames whose messages span TCP segments are
//! skipped and counted. Each decoded message is compared field by field with the golden record
//! of the same frame and index; the figures are printed (`--nocapture`) and every compared
//! message must agree.

use crate::util::{root, skip};
use plcprobe::capture::{link, reader};
use plcprobe::proto::enip;
use plcprobe::proto::exchange::{Exchange, Field};
use plcprobe::proto::s7comm::{self, CotpKind, CotpReassembler, Reassembled};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Keys of a golden record that say where the message was, not what it said.
const PLACE: [&str; 10] = [
    "frame",
    "ts",
    "src",
    "dst",
    "sport",
    "dport",
    "index",
    "reassembled",
    "transport",
    "ud_error",
];

#[derive(Default, Debug)]
struct Figures {
    golden: usize,
    compared: usize,
    agreed: usize,
    skipped: usize,
    extra: usize,
    disagreements: Vec<String>,
}

fn golden(kind: &str, name: &str) -> BTreeMap<(u64, u64), Map<String, Value>> {
    let path = root()
        .join("fixtures/golden")
        .join(kind)
        .join(format!("{name}.tshark.jsonl"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|l| {
            let v: Map<String, Value> = serde_json::from_str(l).unwrap();
            (
                (v["frame"].as_u64().unwrap(), v["index"].as_u64().unwrap()),
                v,
            )
        })
        .collect()
}

fn captures(dir: &str) -> Option<Vec<PathBuf>> {
    let shared = root().join("../shared/captures");
    if !shared.is_dir() {
        skip(&format!("{} is absent", shared.display()));
        return None;
    }
    let mut v: Vec<PathBuf> = std::fs::read_dir(shared.join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .collect();
    v.sort();
    v.push(shared.join("modbus-tcp/plant1_mixed_master_modbus_s7_enip.pcap"));
    Some(v)
}

fn stem(p: &Path) -> String {
    p.file_stem().unwrap().to_string_lossy().into_owned()
}

/// An Ethernet/IPv4 UDP datagram's ports and payload (the link layer reads TCP only).
fn udp(linktype: reader::Linktype, d: &[u8]) -> Option<(u16, u16, &[u8])> {
    if linktype != reader::Linktype::ETHERNET || d.len() < 14 + 20 + 8 {
        return None;
    }
    let (mut et, mut at) = (u16::from_be_bytes([d[12], d[13]]), 14);
    if et == 0x8100 {
        et = u16::from_be_bytes([d[16], d[17]]);
        at = 18;
    }
    let ip = d.get(at..)?;
    if et != 0x0800 || ip.len() < 28 || ip[9] != 17 {
        return None;
    }
    let u = &ip[usize::from(ip[0] & 0x0f) * 4..];
    let len = usize::from(u16::from_be_bytes([*u.get(4)?, *u.get(5)?]));
    Some((
        u16::from_be_bytes([u[0], u[1]]),
        u16::from_be_bytes([u[2], u[3]]),
        u.get(8..len.min(u.len()))?,
    ))
}

/// A codec's `fields()` as a golden-style record (`item.*` grouped into `items`, return codes
/// and CIP services into lists).
fn record(fields: Vec<(&'static str, Field)>) -> Map<String, Value> {
    let mut m = Map::new();
    let val = |f: Field| match f {
        Field::U(u) => json!(u),
        Field::I(i) => json!(i),
        Field::B(b) => json!(b),
        Field::S(s) => json!(s),
        Field::Hex(b) => {
            let mut s = String::new();
            plcprobe::proto::exchange::hex_into(&mut s, &b);
            json!(s)
        }
    };
    for (k, f) in fields {
        let v = val(f);
        let push_to = |m: &mut Map<String, Value>, list: &str, key: Option<&str>, v: Value| {
            let l = m.entry(list).or_insert_with(|| json!([]));
            let a = l.as_array_mut().unwrap();
            match key {
                None => a.push(v),
                Some(key) => a.last_mut().unwrap()[key] = v,
            }
        };
        match k {
            "item.syntax_id" => push_to(&mut m, "items", None, json!({ "syntax_id": v })),
            _ if k.starts_with("item.") => push_to(&mut m, "items", Some(&k[5..]), v),
            "return_code" => push_to(&mut m, "return_codes", None, v),
            "cip.service" => push_to(&mut m, "services", None, json!({ "service": v })),
            "cip.genstat" | "cip.ext_status" | "cip.epath" | "cip.class" | "cip.instance"
            | "cip.attribute" => push_to(&mut m, "services", Some(&k[4..]), v),
            "cip.symbol" => {
                // tshark lists the symbols; members ([n]) are separate segments
                let s = v.as_str().unwrap();
                let mut t = String::new();
                let mut depth = 0;
                for c in s.chars() {
                    match c {
                        '[' => depth += 1,
                        ']' => depth -= 1,
                        _ if depth == 0 => t.push(c),
                        _ => {}
                    }
                }
                push_to(&mut m, "services", Some("symbol"), json!(t));
            }
            _ => {
                let key = match k {
                    "enip.command" => "command",
                    "enip.length" => "length",
                    "enip.session" => "session",
                    "enip.status" => "status",
                    "enip.context" => "context",
                    "cip.seq" => "cip_seq",
                    "enip.cpf.cai.connid" => "connid",
                    "enip.cpf.sai.connid" => "sai_connid",
                    "enip.cpf.sai.seq" => "sai_seq",
                    "enip.lir.vendor" => "lir_vendor",
                    "enip.lir.devtype" => "lir_devtype",
                    "enip.lir.prodcode" => "lir_prodcode",
                    "enip.lir.serial" => "lir_serial",
                    "enip.lir.name" => "lir_name",
                    "cip.cm.ot_connid" => "ot_connid",
                    "cip.cm.to_connid" => "to_connid",
                    "cip.cm.conn_serial_num" => "conn_serial",
                    "cip.cm.vendor" => "vendor",
                    "cip.cm.orig_serial_num" => "orig_serial",
                    "cip.cm.otrpi"
                    | "cip.cm.torpi"
                    | "cip.cm.transport_type_trigger"
                    | "enip.cpf.length"
                    | "max_amq_calling"
                    | "max_amq_called"
                    | "pdu_length" => continue,
                    other => other,
                };
                m.entry(key).or_insert(v);
            }
        }
    }
    m
}

/// Compares the keys tshark has (and the ones plcprobe has that tshark lacks) for one
/// message; `lenient` keys are compared only where both have them (see fixtures/README.md:
/// tshark joins fragmented userdata and pairs CIP replies with their requests' connection data,
/// which a stateless codec cannot).
fn compare(
    fig: &mut Figures,
    at: (u64, u64),
    gold: &Map<String, Value>,
    mut mine: Map<String, Value>,
    lenient: &[&str],
) {
    fig.compared += 1;
    let mut diffs = Vec::new();
    // services: compare each service's keys that tshark shows
    if let (Some(Value::Array(g)), Some(Value::Array(m))) =
        (gold.get("services"), mine.get_mut("services"))
    {
        if g.len() == m.len() {
            for (gs, ms) in g.iter().zip(m.iter_mut()) {
                let ms = ms.as_object_mut().unwrap();
                ms.retain(|k, _| gs.get(k).is_some() || k == "service" || k == "genstat");
            }
        }
    }
    let mut keys: Vec<String> = gold.keys().cloned().collect();
    keys.extend(mine.keys().cloned());
    keys.sort();
    keys.dedup();
    if gold.get("command") == Some(&json!(0x63)) && gold.get("length") == Some(&json!(0)) {
        // tshark reads a ListIdentity request's first 2 context bytes as "Max Response Delay"
        if let Some(Value::String(c)) = mine.get_mut("context") {
            *c = c.get(6..).unwrap_or_default().to_string();
        }
    }
    for k in keys {
        if PLACE.contains(&k.as_str()) || k == "response_in" || k == "response_to" {
            continue;
        }
        let (g, m) = (gold.get(&k), mine.get(&k));
        if (g.is_none() || m.is_none()) && lenient.contains(&k.as_str()) {
            continue;
        }
        if g != m {
            diffs.push(format!("{k}: tshark {g:?} plcprobe {m:?}"));
        }
    }
    if diffs.is_empty() {
        fig.agreed += 1;
    } else if fig.disagreements.len() < 20 {
        fig.disagreements
            .push(format!("frame {} #{}: {}", at.0, at.1, diffs.join("; ")));
    }
}

fn report(kind: &str, name: &str, f: &Figures) {
    eprintln!(
        "{kind} {name}: golden {} compared {} agreed {} skipped (span TCP segments) {} extra {}",
        f.golden, f.compared, f.agreed, f.skipped, f.extra
    );
    for d in &f.disagreements {
        eprintln!("  {d}");
    }
}

#[test]
fn s7comm_agrees_with_tshark() {
    let Some(caps) = captures("s7comm") else {
        return;
    };
    let mut total = Figures::default();
    for cap in caps {
        let name = stem(&cap);
        let gold = golden("s7comm", &name);
        let mut fig = Figures {
            golden: gold.len(),
            ..Figures::default()
        };
        let frames: BTreeMap<u64, usize> = gold.keys().fold(BTreeMap::new(), |mut m, k| {
            *m.entry(k.0).or_default() += 1;
            m
        });
        let mut flows: HashMap<(link::Addr, u16, link::Addr, u16), CotpReassembler> =
            HashMap::new();
        reader::for_each_packet(&cap, |p| {
            let Some(&n) = frames.get(&p.frame) else {
                return;
            };
            let Ok(seg) = link::segment(p.linktype, p.data) else {
                fig.skipped += n;
                return;
            };
            let asm = flows
                .entry((seg.src, seg.sport, seg.dst, seg.dport))
                .or_default();
            let mut rest = seg.payload;
            let mut pdus: Vec<Vec<u8>> = Vec::new();
            let mut whole = true;
            while !rest.is_empty() {
                match s7comm::tpkt_len(rest) {
                    Some(len) if len <= rest.len() => {
                        if let Some(c) = s7comm::cotp_of_tpkt(&rest[..len]) {
                            if c.kind == CotpKind::Data {
                                match asm.push(c.payload, c.eot) {
                                    Reassembled::Whole(b) => pdus.push(b.to_vec()),
                                    Reassembled::Joined(v) => pdus.push(v),
                                    _ => {}
                                }
                            }
                        }
                        rest = &rest[len..];
                    }
                    _ => {
                        whole = false;
                        break;
                    }
                }
            }
            if !whole {
                *asm = CotpReassembler::new();
                fig.skipped += n;
                return;
            }
            let mut index = 0u64;
            for b in &pdus {
                let Some(pdu) = s7comm::parse_pdu(b) else {
                    continue;
                };
                let at = (p.frame, index);
                index += 1;
                let Some(g) = gold.get(&at) else {
                    fig.extra += 1;
                    continue;
                };
                let mut f = Vec::new();
                pdu.fields(&mut f);
                compare(&mut fig, at, g, record(f), &["szl_id", "szl_index"]);
            }
            if index < n as u64 {
                fig.skipped += n - index as usize;
            }
        })
        .unwrap();
        report("s7comm", &name, &fig);
        total.golden += fig.golden;
        total.compared += fig.compared;
        total.agreed += fig.agreed;
        total.skipped += fig.skipped;
        total.extra += fig.extra;
        total.disagreements.extend(fig.disagreements);
    }
    report(
        "s7comm",
        "ALL",
        &Figures {
            disagreements: Vec::new(),
            ..total
        },
    );
    assert!(total.compared > 0);
    assert!(
        total.disagreements.is_empty() && total.agreed == total.compared,
        "{} of {} S7 PDUs disagree with tshark: {:#?}",
        total.compared - total.agreed,
        total.compared,
        total.disagreements
    );
}

#[test]
fn enip_agrees_with_tshark() {
    let Some(caps) = captures("enip") else {
        return;
    };
    let mut total = Figures::default();
    for cap in caps {
        let name = stem(&cap);
        let gold = golden("enip", &name);
        let mut fig = Figures {
            golden: gold.len(),
            ..Figures::default()
        };
        let frames: BTreeMap<u64, usize> = gold.keys().fold(BTreeMap::new(), |mut m, k| {
            *m.entry(k.0).or_default() += 1;
            m
        });
        reader::for_each_packet(&cap, |p| {
            let Some(&n) = frames.get(&p.frame) else {
                return;
            };
            let mut recs: Vec<Map<String, Value>> = Vec::new();
            let mut whole = true;
            if let Ok(seg) = link::segment(p.linktype, p.data) {
                let mut rest = seg.payload;
                while !rest.is_empty() {
                    match enip::enip_len(rest) {
                        Some(len) if len <= rest.len() => {
                            let m = enip::parse_message(&rest[..len]).unwrap();
                            let mut f = Vec::new();
                            m.fields(&mut f);
                            recs.push(record(f));
                            rest = &rest[len..];
                        }
                        _ => {
                            whole = false;
                            break;
                        }
                    }
                }
            } else if let Some((sport, dport, payload)) = udp(p.linktype, p.data) {
                let mut f = Vec::new();
                if sport == 2222 || dport == 2222 {
                    if let Some(io) = enip::parse_io(payload) {
                        io.fields(&mut f);
                    }
                } else if let Some(m) = enip::parse_message(payload) {
                    m.fields(&mut f);
                }
                if !f.is_empty() {
                    recs.push(record(f));
                }
            }
            if !whole {
                fig.skipped += n;
                return;
            }
            for (i, mine) in recs.into_iter().enumerate() {
                let at = (p.frame, i as u64);
                let Some(g) = gold.get(&at) else {
                    fig.extra += 1;
                    continue;
                };
                compare(
                    &mut fig,
                    at,
                    g,
                    mine,
                    &[
                        "connid",
                        "cip_seq",
                        "ot_connid",
                        "to_connid",
                        "conn_serial",
                        "vendor",
                        "orig_serial",
                    ],
                );
            }
        })
        .unwrap();
        fig.skipped += fig.golden.saturating_sub(fig.compared + fig.skipped);
        report("enip", &name, &fig);
        total.golden += fig.golden;
        total.compared += fig.compared;
        total.agreed += fig.agreed;
        total.skipped += fig.skipped;
        total.extra += fig.extra;
        total.disagreements.extend(fig.disagreements);
    }
    report(
        "enip",
        "ALL",
        &Figures {
            disagreements: Vec::new(),
            ..total
        },
    );
    assert!(total.compared > 0);
    assert!(
        total.disagreements.is_empty() && total.agreed == total.compared,
        "{} of {} ENIP messages disagree with tshark: {:#?}",
        total.compared - total.agreed,
        total.compared,
        total.disagreements
    );
}
