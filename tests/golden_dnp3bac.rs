//! `decode --pdus` and `--transactions` of DNP3 and BACnet (BACnet/IP and MS/TP) against
//! tshark 4.0, through the real binary, on every public capture in
//! `../shared/captures/{dnp3,bacnet}`. The golden files in `fixtures/golden/{dnp3,bacnet}/`
//! (`scripts/golden/{dnp3,bacnet}.py`) hold one record per DNP3 link frame, BACnet/IP message
//! or MS/TP frame, keyed by (frame, index within the frame).
//!
//! - **Messages**: every golden record must be a `--pdus` row with the same key, every field it
//!   holds equal in the row's `fields`; no row may carry a golden-file field the record lacks;
//!   `function`, `key` and `status_code` must say what the record's fields say; and every
//!   DNP3/BACnet row must be in the golden file. The exceptions are [`DEVIATIONS`], each with
//!   its reason in `fixtures/README.md`, and each must still be seen (a stale entry fails).
//! - **Pairing**: tshark 4.0.17 pairs neither DNP3 nor BACnet (no `response_in`/`request_in`
//!   field in `tshark -G fields` for `dnp3`, `bacapp`, `bacnet`, `bvlc`, `mstp`). So the pairs
//!   are rebuilt from the golden records alone, in frame order: a request is answered by the
//!   first later response on the same conversation (IP addresses and ports swapped, or MS/TP
//!   MACs swapped; DNP3: the same outstation address) with the same application sequence
//!   number / invoke id. `--transactions` must give exactly those (request, response) frames.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use serde_json::Value;

use crate::util::{jsonl, root, run, skip};

/// Keys of a golden record that say where a message is, not what it says.
const META: [&str; 7] = ["frame", "ts", "src", "dst", "sport", "dport", "index"];

/// How plcprobe knowingly differs from a golden record.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Diff {
    /// tshark lists the message, plcprobe does not.
    Missing,
    /// plcprobe lists a message tshark does not.
    Extra,
    /// plcprobe decodes the field where tshark 4.0 gives none.
    Beyond(&'static str),
    /// plcprobe's value of the field is a proper prefix of tshark's, or absent: it stops
    /// earlier.
    Stops(&'static str),
}

/// A known difference: capture (file stem), the frames it covers (empty: any frame), what.
struct Deviation {
    capture: &'static str,
    frames: &'static [u64],
    diff: Diff,
}

/// Every place plcprobe and tshark 4.0 disagree; `fixtures/README.md` says why, point by point.
const DEVIATIONS: &[Deviation] = &[
    // TCP fast retransmissions: tshark dissects the copies again, plcprobe decodes the data once.
    Deviation {
        capture: "ndpi_dnp3",
        frames: &[
            11, 12, 35, 36, 50, 51, 89, 90, 104, 105, 131, 132, 140, 141, 194, 195, 239, 240, 362,
            363, 440, 441, 455, 456, 482, 483, 515, 516,
        ],
        diff: Diff::Missing,
    },
    // A reserved qualifier (range code 0xD): plcprobe stops there, malformed.
    Deviation {
        capture: "ndpi_dnp3",
        frames: &[460, 466],
        diff: Diff::Stops("al_objects"),
    },
    // Stop Application (18): tshark 4.0 decodes no object headers for this function.
    Deviation {
        capture: "ndpi_dnp3",
        frames: &[487, 496, 520, 526],
        diff: Diff::Beyond("al_objects"),
    },
    // After damage tshark lists phantom or 32-bit-count headers; plcprobe stops (malformed), and
    // stops after Device Attributes (g0), whose objects it does not size.
    Deviation {
        capture: "openics_dnp3_malformed",
        frames: &[],
        diff: Diff::Stops("al_objects"),
    },
    // Secure Authentication (32, 33, 131): tshark 4.0 stops after the function code.
    Deviation {
        capture: "sav5_auth_change_session_keys",
        frames: &[],
        diff: Diff::Beyond("al_objects"),
    },
    Deviation {
        capture: "sav5_auth_change_session_keys",
        frames: &[],
        diff: Diff::Beyond("al_iin"),
    },
    // BACnet over 802.2 LLC (no IP): plcprobe reads BACnet/IP and MS/TP only.
    Deviation {
        capture: "bacnet_ip",
        frames: &[2],
        diff: Diff::Missing,
    },
];

fn deviation(capture: &str, frame: u64, diff: Diff, used: &mut BTreeSet<usize>) -> bool {
    let found = DEVIATIONS.iter().position(|d| {
        d.capture == capture && d.diff == diff && (d.frames.is_empty() || d.frames.contains(&frame))
    });
    if let Some(i) = found {
        used.insert(i);
    }
    found.is_some()
}

fn captures(proto: &str) -> Option<Vec<std::path::PathBuf>> {
    let dir = root().join("../shared/captures").join(proto);
    if !dir.is_dir() {
        skip(&format!(
            "{} is absent, so decode of {proto} was not compared with tshark",
            dir.display()
        ));
        return None;
    }
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            let ext = p.extension()?.to_str()?.to_ascii_lowercase();
            (ext == "pcap" || ext == "pcapng").then_some(p)
        })
        .collect();
    v.sort();
    Some(v)
}

fn stem(p: &Path) -> String {
    p.file_stem().unwrap().to_string_lossy().into_owned()
}

fn golden(proto: &str, capture: &str) -> Vec<Value> {
    let g = root()
        .join("fixtures/golden")
        .join(proto)
        .join(format!("{capture}.tshark.jsonl"));
    let text = std::fs::read_to_string(&g).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (python3 scripts/golden/{proto}.py makes it)",
            g.display()
        )
    });
    jsonl(&text)
}

fn key_of(v: &Value) -> (u64, u64) {
    (v["frame"].as_u64().unwrap(), v["index"].as_u64().unwrap())
}

fn u(v: &Value, k: &str) -> Option<u64> {
    v.get(k).and_then(Value::as_u64)
}

/// What the row's `function`, `key` and `status_code` must be, from the golden record.
fn expected_header(proto: &str, g: &Value) -> (Option<u64>, Option<u64>, Option<u64>) {
    if proto == "dnp3" {
        let Some(func) = u(g, "al_func") else {
            return (None, None, None);
        };
        let status = if func == 129 {
            let ctrl = g
                .get("al_ctrlstatus")
                .and_then(Value::as_str)
                .and_then(|s| {
                    s.split(',')
                        .map(|x| x.parse::<u64>().unwrap())
                        .find(|&x| x != 0)
                });
            let iin = u(g, "al_iin").unwrap_or(0) & 0x0007;
            ctrl.or_else(|| (iin != 0).then(|| 0x1_0000 | (iin & iin.wrapping_neg())))
        } else {
            None
        };
        return (Some(func), u(g, "al_seq"), status);
    }
    let Some(apdu) = u(g, "apdu_type") else {
        return (None, None, None);
    };
    let function = match apdu {
        1 => u(g, "unconfirmed_service").map(|s| 0x100 + s),
        4 | 6 | 7 => Some(0x200 + apdu),
        _ => u(g, "confirmed_service"),
    };
    let status = match apdu {
        5 => Some((u(g, "error_class").unwrap() << 16) | u(g, "error_code").unwrap()),
        6 => u(g, "reject_reason").map(|r| 0x0100_0000 + r),
        7 => u(g, "abort_reason").map(|r| 0x0200_0000 + r),
        _ => None,
    };
    (function, u(g, "invoke_id").or(Some(0)), status)
}

#[derive(Debug, Default)]
struct Tally {
    golden: usize,
    rows: usize,
    agreed: usize,
    deviating: usize,
    transactions: usize,
}

/// Compares one capture's `--pdus` rows with its golden file; returns the problems.
fn compare_messages(
    proto: &str,
    capture: &str,
    path: &str,
    vocabulary: &BTreeSet<String>,
    used: &mut BTreeSet<usize>,
    t: &mut Tally,
) -> Vec<String> {
    let gold = golden(proto, capture);
    let r = run(&["decode", path, "--pdus", "--format", "jsonl"]);
    assert!(r.code == 0 || r.code == 1, "decode {path}: {}", r.stderr);
    let rows: BTreeMap<(u64, u64), Value> = r
        .jsonl()
        .into_iter()
        .filter(|v| v["proto"] == proto)
        .map(|v| (key_of(&v), v))
        .collect();
    t.golden = gold.len();
    t.rows = rows.len();
    let mut bad = Vec::new();
    let mut seen = BTreeSet::new();
    for g in &gold {
        let k = key_of(g);
        seen.insert(k);
        let Some(row) = rows.get(&k) else {
            if deviation(capture, k.0, Diff::Missing, used) {
                t.deviating += 1;
            } else {
                bad.push(format!("{capture} frame {} #{}: no row", k.0, k.1));
            }
            continue;
        };
        let empty = serde_json::Map::new();
        let f = row["fields"].as_object().unwrap_or(&empty);
        let mut diffs = Vec::new();
        let mut deviates = false;
        for (name, want) in g.as_object().unwrap() {
            if META.contains(&name.as_str()) {
                continue;
            }
            let got = f.get(name);
            if got == Some(want) {
                continue;
            }
            // Absent: plcprobe stops at the first header (a reserved qualifier, say).
            let stops = |n: &'static str| {
                let ours = got.map_or(Some(""), Value::as_str);
                name == n && ours.is_some_and(|s| want.as_str().is_some_and(|w| w.starts_with(s)))
            };
            let known = ["al_objects"]
                .iter()
                .any(|&n| stops(n) && deviation(capture, k.0, Diff::Stops(n), used));
            if known {
                deviates = true;
            } else {
                diffs.push(format!("{name}: tshark {want}, plcprobe {got:?}"));
            }
        }
        for (name, got) in f {
            if vocabulary.contains(name) && !g.as_object().unwrap().contains_key(name) {
                let known = ["al_objects", "al_iin"]
                    .iter()
                    .any(|&n| name == n && deviation(capture, k.0, Diff::Beyond(n), used));
                if known {
                    deviates = true;
                } else {
                    diffs.push(format!("{name}: tshark none, plcprobe {got}"));
                }
            }
        }
        let (function, key, status) = expected_header(proto, g);
        if let Some(func) = function {
            if u(row, "function") != Some(func) {
                diffs.push(format!("function: want {func}, row {}", row["function"]));
            }
        }
        if let Some(key) = key {
            if u(row, "key") != Some(key) {
                diffs.push(format!("key: want {key}, row {}", row["key"]));
            }
        }
        if function.is_some() {
            let got = row.get("status_code").and_then(Value::as_str);
            let ok = match status {
                Some(s) => got.is_some_and(|g| g.starts_with(&format!("0x{s:X} "))),
                None => got.is_none(),
            };
            if !ok {
                diffs.push(format!("status_code: want {status:?}, row {got:?}"));
            }
        }
        if !diffs.is_empty() {
            bad.push(format!(
                "{capture} frame {} #{}: {}",
                k.0,
                k.1,
                diffs.join("; ")
            ));
        } else if deviates {
            t.deviating += 1;
        } else {
            t.agreed += 1;
        }
    }
    for k in rows.keys().filter(|k| !seen.contains(k)) {
        if deviation(capture, k.0, Diff::Extra, used) {
            t.deviating += 1;
        } else {
            bad.push(format!(
                "{capture} frame {} #{}: row not in the golden file",
                k.0, k.1
            ));
        }
    }
    bad
}

/// The (request frame, response frame) pairs the golden records imply (see the module header).
fn golden_pairs(proto: &str, gold: &[Value]) -> BTreeSet<(u64, u64)> {
    // Conversation: the server end, the client end (IP:port or MS/TP MAC), the unit, the key.
    type Conv = (String, String, u64, u64);
    let end = |g: &Value, side: &str| -> Option<String> {
        if let Some(a) = g.get(side).and_then(Value::as_str) {
            let port = if side == "src" { "sport" } else { "dport" };
            return Some(format!("{a}:{}", g[port]));
        }
        let mac = if side == "src" {
            "mstp_src"
        } else {
            "mstp_dst"
        };
        u(g, mac).map(|m| format!("mac {m}"))
    };
    let mut pending: HashMap<Conv, u64> = HashMap::new();
    let mut pairs = BTreeSet::new();
    for g in gold {
        let (role, key, unit) = if proto == "dnp3" {
            let Some(f) = u(g, "al_func") else { continue };
            let role = match f {
                0 | 130 => continue,
                129 | 131 => "response",
                _ => "request",
            };
            let unit = if role == "request" {
                u(g, "link_dst")
            } else {
                u(g, "link_src")
            };
            (role, u(g, "al_seq").unwrap(), unit.unwrap())
        } else {
            let role = match u(g, "apdu_type") {
                Some(0) => "request",
                Some(2 | 3 | 5 | 6 | 7) => "response",
                _ => continue,
            };
            (role, u(g, "invoke_id").unwrap(), 0)
        };
        let (Some(src), Some(dst)) = (end(g, "src"), end(g, "dst")) else {
            continue;
        };
        let frame = g["frame"].as_u64().unwrap();
        if role == "request" {
            pending.insert((dst, src, unit, key), frame);
        } else if let Some(req) = pending.remove(&(src, dst, unit, key)) {
            pairs.insert((req, frame));
        }
    }
    pairs
}

/// Compares `--transactions` with the golden pairs; returns the problems.
fn compare_pairs(proto: &str, capture: &str, path: &str, t: &mut Tally) -> Vec<String> {
    let gold = golden(proto, capture);
    let want = golden_pairs(proto, &gold);
    let r = run(&["decode", path, "--transactions", "--format", "jsonl"]);
    assert!(r.code == 0 || r.code == 1, "decode {path}: {}", r.stderr);
    let got: BTreeSet<(u64, u64)> = r
        .jsonl()
        .iter()
        .filter(|x| x["proto"] == proto)
        .filter_map(|x| Some((u(x, "request_frame")?, u(x, "response_frame")?)))
        .collect();
    t.transactions = got.len();
    let mut bad = Vec::new();
    for p in want.difference(&got) {
        bad.push(format!(
            "{capture}: tshark's records pair {p:?}, plcprobe does not"
        ));
    }
    for p in got.difference(&want) {
        bad.push(format!(
            "{capture}: plcprobe pairs {p:?}, tshark's records do not"
        ));
    }
    bad
}

fn check(proto: &str) {
    let Some(caps) = captures(proto) else {
        return;
    };
    let mut vocabulary = BTreeSet::new();
    for c in &caps {
        for g in golden(proto, &stem(c)) {
            vocabulary.extend(g.as_object().unwrap().keys().cloned());
        }
    }
    let mut used = BTreeSet::new();
    let mut bad = Vec::new();
    for c in &caps {
        let capture = stem(c);
        let path = c.display().to_string();
        let mut t = Tally::default();
        bad.extend(compare_messages(
            proto,
            &capture,
            &path,
            &vocabulary,
            &mut used,
            &mut t,
        ));
        bad.extend(compare_pairs(proto, &capture, &path, &mut t));
        eprintln!("{proto} {capture}: {t:?}");
        if capture != "bacnet_arcnet" {
            assert!(t.rows > 0, "{capture}: no row: {t:?}");
        }
    }
    for (i, d) in DEVIATIONS.iter().enumerate() {
        let ours = caps.iter().any(|c| stem(c) == d.capture);
        if ours && !used.contains(&i) {
            bad.push(format!(
                "deviation {i} ({} {:?} {:?}) was not seen: remove it",
                d.capture, d.frames, d.diff
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "{} disagreements with tshark:\n{}",
        bad.len(),
        bad.iter().take(40).cloned().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn dnp3_decode_agrees_with_tshark_message_by_message_and_pairs_as_its_records() {
    check("dnp3");
}

#[test]
fn bacnet_decode_agrees_with_tshark_message_by_message_and_pairs_as_its_records() {
    check("bacnet");
}
