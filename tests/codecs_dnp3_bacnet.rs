//! The DNP3 and BACnet codecs (`proto::dnp3`, `proto::bacnet`) against tshark 4.0, message by
//! message, on every public capture in `../shared/captures/{dnp3,bacnet}`: the golden files in
//! `fixtures/golden/{dnp3,bacnet}/` (made by `scripts/golden/{dnp3,bacnet}.py`) are compared
//! field by field with what the codecs' `Exchange::fields` say. The capture is read by the
//! crate's own reader; TCP segments come from `capture::link::segment`, UDP datagrams
//! (IPv4 over Ethernet) are unwrapped here (the capture layer has no UDP yet), MS/TP frames
//! (link type 165) are the packets themselves. DNP3 link frames are cut from each TCP segment
//! with `link_frame_len` (these captures carry whole frames per segment) and decoded by one
//! `Dnp3Stream` per direction. Not the pipeline: the lead's `decode --pdus` test uses the same
//! golden files.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::Path,
};

use plcprobe::{
    capture::{
        link::{segment, Addr},
        reader::{for_each_packet, Linktype},
    },
    proto::{
        bacnet::{self, mstp},
        dnp3::{self, link_frame_len},
        exchange::{Exchange, Field},
    },
};
use serde_json::Value;

use crate::util::{jsonl, root, skip};

/// Keys that are where a message is, not what it says.
const META: [&str; 7] = ["frame", "ts", "src", "dst", "sport", "dport", "index"];

fn json_of(f: &Field) -> Value {
    match f {
        Field::U(u) => Value::from(*u),
        Field::I(i) => Value::from(*i),
        Field::B(b) => Value::from(*b),
        Field::S(s) => Value::from(s.clone()),
        Field::Hex(h) => {
            let mut s = String::new();
            plcprobe::proto::exchange::hex_into(&mut s, h);
            Value::from(s)
        }
    }
}

/// A decoded message: its fields and whether the codec called it malformed.
struct Decoded {
    fields: BTreeMap<&'static str, Value>,
    malformed: bool,
}

fn decoded(m: &dyn Exchange, extra: &[(&'static str, Field)]) -> Decoded {
    let mut f = extra.to_vec();
    m.fields(&mut f);
    Decoded {
        fields: f.iter().map(|(k, v)| (*k, json_of(v))).collect(),
        malformed: m.malformed().is_some(),
    }
}

/// The UDP payload of an Ethernet/IPv4 frame.
fn udp_payload(lt: Linktype, d: &[u8]) -> Option<&[u8]> {
    if lt != Linktype::ETHERNET || d.len() < 14 {
        return None;
    }
    let mut et = u16::from_be_bytes([d[12], d[13]]);
    let mut l3 = &d[14..];
    while et == 0x8100 && l3.len() >= 4 {
        et = u16::from_be_bytes([l3[2], l3[3]]);
        l3 = &l3[4..];
    }
    if et != 0x0800 || l3.len() < 20 || l3[9] != 17 {
        return None;
    }
    let ihl = usize::from(l3[0] & 0x0F) * 4;
    let total = usize::from(u16::from_be_bytes([l3[2], l3[3]])).min(l3.len());
    let udp = l3.get(ihl..total)?;
    udp.get(8..)
}

/// Every message the codecs find in a capture, by (frame, index within the frame).
fn decode_capture(path: &Path, dnp3_mode: bool) -> BTreeMap<(u64, u64), Decoded> {
    let mut out = BTreeMap::new();
    let mut streams: HashMap<(Addr, u16, Addr, u16), dnp3::Dnp3Stream> = HashMap::new();
    for_each_packet(path, |p| {
        if dnp3_mode {
            let Ok(seg) = segment(p.linktype, p.data) else {
                return;
            };
            if seg.payload.is_empty() || (seg.sport != dnp3::PORT && seg.dport != dnp3::PORT) {
                return;
            }
            let s = streams
                .entry((seg.src, seg.sport, seg.dst, seg.dport))
                .or_default();
            let mut rest = seg.payload;
            let mut index = 0;
            while !rest.is_empty() {
                let n = link_frame_len(rest).map_or(rest.len(), |n| n.min(rest.len()));
                let m = s.decode(&rest[..n]);
                out.insert((p.frame, index), decoded(&m, &[]));
                index += 1;
                rest = &rest[n..];
            }
        } else if p.linktype == Linktype(165) {
            if let Some(f) = mstp::parse_frame(p.data) {
                let mut extra = Vec::new();
                f.fields(&mut extra);
                extra.retain(|(k, _)| !k.ends_with("crc_ok"));
                let mut d = if f.carries_npdu() {
                    decoded(&bacnet::parse_npdu_message(f.data), &extra)
                } else {
                    let mut f = extra.clone();
                    f.truncate(3);
                    Decoded {
                        fields: f.iter().map(|(k, v)| (*k, json_of(v))).collect(),
                        malformed: false,
                    }
                };
                d.malformed |= !f.header_crc_ok || !f.data_crc_ok || f.cut;
                out.insert((p.frame, 0), d);
            }
        } else if let Some(u) = udp_payload(p.linktype, p.data) {
            if bacnet::udp_message_looks_like_bacnet(u) || u.first() == Some(&0x81) {
                out.insert((p.frame, 0), decoded(&bacnet::parse_bvlc_message(u), &[]));
            }
        }
    })
    .unwrap();
    out
}

#[derive(Default, Debug)]
struct Tally {
    compared: usize,
    agreed: usize,
    skipped: usize,
    extra: usize,
    malformed: usize,
}

/// Compares one protocol's captures with their golden files; returns the tally per capture and
/// the first disagreements.
fn compare(proto: &str, dnp3_mode: bool) -> Option<Vec<(String, Tally, Vec<String>)>> {
    let caps = root().join("../shared/captures").join(proto);
    if !caps.is_dir() {
        skip(&format!(
            "{} is absent, so the DNP3/BACnet codecs were not compared with tshark",
            caps.display()
        ));
        return None;
    }
    let golden_dir = root().join("fixtures/golden").join(proto);
    let mut names: Vec<_> = std::fs::read_dir(&caps)
        .unwrap()
        .filter_map(|e| {
            let n = e.ok()?.file_name().into_string().ok()?;
            let ext = Path::new(&n).extension()?.to_str()?.to_ascii_lowercase();
            (ext == "pcap" || ext == "pcapng").then_some(n)
        })
        .collect();
    names.sort();
    let mut goldens = BTreeMap::new();
    let mut vocabulary = BTreeSet::new();
    for n in &names {
        let base = n.rsplit_once('.').unwrap().0;
        let g = std::fs::read_to_string(golden_dir.join(format!("{base}.tshark.jsonl")))
            .unwrap_or_else(|e| panic!("golden file of {n}: {e} (scripts/golden/{proto}.py)"));
        let rows = jsonl(&g);
        for r in &rows {
            vocabulary.extend(r.as_object().unwrap().keys().cloned());
        }
        goldens.insert(n.clone(), rows);
    }
    let mut result = Vec::new();
    for n in &names {
        let ours = decode_capture(&caps.join(n), dnp3_mode);
        let mut t = Tally {
            malformed: ours.values().filter(|d| d.malformed).count(),
            ..Tally::default()
        };
        let mut why = Vec::new();
        let mut seen = BTreeSet::new();
        for row in &goldens[n] {
            let o = row.as_object().unwrap();
            let key = (o["frame"].as_u64().unwrap(), o["index"].as_u64().unwrap());
            seen.insert(key);
            let Some(d) = ours.get(&key) else {
                t.skipped += 1;
                continue;
            };
            t.compared += 1;
            let mut diffs = Vec::new();
            // tshark 4.0 stops after the function code of Secure Authentication messages
            // (32 Authentication Request, 33 Authentication Error, 131 Authentication
            // Response): no IIN, no objects (fixtures/README.md).
            let auth = matches!(
                o.get("al_func").and_then(Value::as_u64),
                Some(32 | 33 | 131)
            );
            let beyond_tshark = |k: &str| auth && (k == "al_iin" || k == "al_objects");
            for (k, v) in o {
                if META.contains(&k.as_str()) {
                    continue;
                }
                if d.fields.get(k.as_str()) != Some(v) {
                    diffs.push(format!(
                        "{k}: tshark {v}, plcprobe {:?}",
                        d.fields.get(k.as_str())
                    ));
                }
            }
            for (k, v) in &d.fields {
                if vocabulary.contains(*k) && !o.contains_key(*k) && !beyond_tshark(k) {
                    diffs.push(format!("{k}: tshark none, plcprobe {v}"));
                }
            }
            if diffs.is_empty() {
                t.agreed += 1;
            } else if why.len() < 5 {
                why.push(format!(
                    "{n} frame {} #{}: {}",
                    key.0,
                    key.1,
                    diffs.join("; ")
                ));
            }
        }
        t.extra = ours.keys().filter(|k| !seen.contains(k)).count();
        eprintln!("{proto} {n}: {t:?}");
        result.push((n.clone(), t, why));
    }
    Some(result)
}

/// Captures where a disagreement is expected (fixtures/README.md says why).
const KNOWN: &[&str] = &["openics_dnp3_malformed.pcap", "ndpi_dnp3.pcapng"];

#[test]
fn dnp3_agrees_with_tshark_message_by_message() {
    let Some(r) = compare("dnp3", true) else {
        return;
    };
    for (n, t, why) in &r {
        assert!(t.compared > 0, "{n}: nothing compared");
        if KNOWN.contains(&n.as_str()) {
            // Decoded as far as it goes: most messages agree, the damage is counted.
            eprintln!("{n}: {}", why.join("\n"));
            assert!(t.agreed * 2 > t.compared, "{n}: {t:?}");
            if n.contains("malformed") {
                assert!(t.malformed > 0, "{n}: no malformed message counted");
            }
        } else {
            assert_eq!(t.agreed, t.compared, "{n}: {t:?}\n{}", why.join("\n"));
            assert_eq!(t.malformed, 0, "{n}: {t:?}");
        }
    }
}

#[test]
fn bacnet_agrees_with_tshark_message_by_message() {
    let Some(r) = compare("bacnet", false) else {
        return;
    };
    for (n, t, why) in &r {
        if n == "bacnet_arcnet.pcap" {
            // tshark follows the file's wrong link type and decodes no BACnet (MANIFEST).
            assert_eq!(t.compared, 0);
            continue;
        }
        assert!(t.compared > 0, "{n}: nothing compared");
        assert_eq!(t.agreed, t.compared, "{n}: {t:?}\n{}", why.join("\n"));
    }
}
