//! The whole pipeline (`plcprobe decode CAPTURE --pdus` / `--transactions`, the real binary)
//! against tshark 4.0's golden files for S7comm and EtherNet/IP+CIP
//! (`fixtures/golden/{s7comm,enip}/*.tshark.jsonl`, made by `scripts/golden/*.py`; see
//! fixtures/README.md), message by message, keyed by (frame, index of the message within the
//! frame):
//! - every field a golden record holds is compared with the row's `fields` (the golden file's
//!   nested `items` / `services` / `return_codes` flattened into the codec's repeated keys, so a
//!   field is compared as the list of its values in order), and the row's `key` with the PDU
//!   reference / CIP sequence count, `function` with the S7 function;
//! - every golden message must be found, and every S7/ENIP row (up to the frame the golden file
//!   stops at) must be in the golden file;
//! - pairing: ENIP/CIP transactions (`request_frame` → `response_frame`) must be tshark's
//!   (`enip.response_to`); S7 Jobs, which tshark 4.0 does not pair, must be paired with the
//!   first `Ack_Data` of the same PDU reference on the same connection.
//!
//! The figures are printed (`--nocapture`). Knowing differences are listed in [`DEVIATIONS`]
//! with the reason in fixtures/README.md.

use crate::util::{root, run, skip};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// Keys of a golden record that say where the message was, or how tshark reached it.
const PLACE: [&str; 11] = [
    "frame",
    "ts",
    "src",
    "dst",
    "sport",
    "dport",
    "index",
    "reassembled",
    "transport",
    "response_in",
    "response_to",
];

/// Where plcprobe and tshark knowingly differ: (capture, frame, index, field). The reason is in
/// fixtures/README.md; each must still differ (the test fails when one stops). tshark joins the
/// userdata fragments of a Read SZL response and names the SZL on the last fragment from the
/// joined data; plcprobe's codec is stateless and names no SZL on a fragment.
const DEVIATIONS: [(&str, u64, u64, &str); 6] = [
    ("s7comm_reading_plc_status", 20, 0, "szl_id"),
    ("s7comm_reading_plc_status", 20, 0, "szl_index"),
    ("s7comm_reading_plc_status", 72, 0, "szl_id"),
    ("s7comm_reading_plc_status", 72, 0, "szl_index"),
    ("snap7_s300_everything", 8, 0, "szl_id"),
    ("snap7_s300_everything", 8, 0, "szl_index"),
];

/// Fields plcprobe shows that tshark's golden files do not record.
const NOT_IN_GOLDEN: [&str; 7] = [
    "max_amq_calling",
    "max_amq_called",
    "pdu_length",
    "enip.cpf.length",
    "cip.cm.otrpi",
    "cip.cm.torpi",
    "cip.cm.transport_type_trigger",
];

/// Golden top-level key → plcprobe's field name.
fn field_name(golden: &str) -> &str {
    match golden {
        "command" => "enip.command",
        "length" => "enip.length",
        "session" => "enip.session",
        "status" => "enip.status",
        "context" => "enip.context",
        "cip_seq" => "cip.seq",
        "connid" => "enip.cpf.cai.connid",
        "sai_connid" => "enip.cpf.sai.connid",
        "sai_seq" => "enip.cpf.sai.seq",
        "lir_vendor" => "enip.lir.vendor",
        "lir_devtype" => "enip.lir.devtype",
        "lir_prodcode" => "enip.lir.prodcode",
        "lir_serial" => "enip.lir.serial",
        "lir_name" => "enip.lir.name",
        "ot_connid" => "cip.cm.ot_connid",
        "to_connid" => "cip.cm.to_connid",
        "conn_serial" => "cip.cm.conn_serial_num",
        "vendor" => "cip.cm.vendor",
        "orig_serial" => "cip.cm.orig_serial_num",
        other => other,
    }
}

/// A golden record as plcprobe's `fields`: nested lists flattened to repeated keys (always a
/// list here), top-level keys renamed.
fn flatten(g: &Map<String, Value>) -> BTreeMap<String, Value> {
    let mut m: BTreeMap<String, Value> = BTreeMap::new();
    let push = |m: &mut BTreeMap<String, Value>, k: String, v: &Value| {
        m.entry(k)
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .unwrap()
            .push(v.clone());
    };
    for (k, v) in g {
        match (k.as_str(), v) {
            (k, _) if PLACE.contains(&k) => {}
            ("items", Value::Array(items)) => {
                for it in items {
                    for (ik, iv) in it.as_object().unwrap() {
                        push(&mut m, format!("item.{ik}"), iv);
                    }
                }
            }
            ("return_codes", Value::Array(rc)) => rc
                .iter()
                .for_each(|v| push(&mut m, "return_code".into(), v)),
            ("services", Value::Array(svc)) => {
                for s in svc {
                    for (sk, sv) in s.as_object().unwrap() {
                        push(&mut m, format!("cip.{sk}"), sv);
                    }
                }
            }
            _ => {
                m.insert(field_name(k).to_string(), v.clone());
            }
        }
    }
    m
}

/// tshark lists a symbolic path's names without member ([n]) segments; plcprobe keeps them.
fn without_members(s: &str) -> String {
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
    t
}

/// A row's `fields` with repeated-key fields always as lists (where the golden side has a
/// list) and symbols without members.
fn normalise(
    fields: &Map<String, Value>,
    gold: &BTreeMap<String, Value>,
) -> BTreeMap<String, Value> {
    let mut m = BTreeMap::new();
    for (k, v) in fields {
        if NOT_IN_GOLDEN.contains(&k.as_str()) {
            continue;
        }
        let listy = k.starts_with("item.")
            || k == "return_code"
            || (k.starts_with("cip.") && gold.get(k).is_some_and(Value::is_array))
            || matches!(
                k.as_str(),
                "cip.service"
                    | "cip.epath"
                    | "cip.class"
                    | "cip.instance"
                    | "cip.attribute"
                    | "cip.genstat"
                    | "cip.ext_status"
                    | "cip.symbol"
            );
        let mut v = v.clone();
        if listy && !v.is_array() {
            v = json!([v]);
        }
        if k == "cip.symbol" {
            for s in v.as_array_mut().unwrap() {
                *s = json!(without_members(s.as_str().unwrap_or_default()));
            }
        }
        m.insert(k.clone(), v);
    }
    m
}

#[derive(Default)]
struct Figures {
    golden: usize,
    found: usize,
    agreed: usize,
    deviations: usize,
    extra: Vec<String>,
    missing: Vec<String>,
    disagree: Vec<String>,
    pairs_expected: usize,
    pairs_agreed: usize,
    pairs_wrong: Vec<String>,
}

fn capture_of(kind: &str, name: &str) -> Option<PathBuf> {
    let shared = root().join("../shared/captures");
    [kind, "modbus-tcp"]
        .iter()
        .flat_map(|d| ["pcap", "pcapng"].map(|e| shared.join(d).join(format!("{name}.{e}"))))
        .find(|p| p.is_file())
}

fn check(kind: &str) -> Option<Figures> {
    if !root().join("../shared/captures").is_dir() {
        skip("../shared/captures is absent");
        return None;
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("fixtures/golden").join(kind))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".tshark.jsonl"))
        .collect();
    files.sort();
    let mut all = Figures::default();
    for file in files {
        let name = file
            .file_name()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches(".tshark.jsonl")
            .to_string();
        let cap = capture_of(kind, &name)
            .unwrap_or_else(|| panic!("no capture for golden file {}", file.display()));
        let gold: BTreeMap<(u64, u64), Map<String, Value>> = std::fs::read_to_string(&file)
            .unwrap()
            .lines()
            .map(|l| {
                let v: Map<String, Value> = serde_json::from_str(l).unwrap();
                (
                    (v["frame"].as_u64().unwrap(), v["index"].as_u64().unwrap()),
                    v,
                )
            })
            .collect();
        // the golden files stop at frame 3000 (regen-golden.sh)
        let last = gold.keys().map(|k| k.0).max().unwrap_or(0).max(3000);
        let c = cap.to_string_lossy();
        let out = run(&["decode", &c, "--pdus", "--format", "jsonl"]);
        assert_eq!(out.code, 0, "{name}: {}", out.stderr);
        let mut fig = Figures {
            golden: gold.len(),
            ..Figures::default()
        };
        let mut seen = BTreeSet::new();
        for row in out.jsonl() {
            // implicit I/O rows are `cip-io`
            if row["proto"] != kind && !(kind == "enip" && row["proto"] == "cip-io") {
                continue;
            }
            let at = (
                row["frame"].as_u64().unwrap(),
                row["index"].as_u64().unwrap(),
            );
            if at.0 > last {
                continue;
            }
            let Some(g) = gold.get(&at) else {
                fig.extra
                    .push(format!("{name} frame {} #{}: {row}", at.0, at.1));
                continue;
            };
            seen.insert(at);
            fig.found += 1;
            let want = flatten(g);
            let empty = Map::new();
            let mut have = normalise(row["fields"].as_object().unwrap_or(&empty), &want);
            if want.get("enip.command") == Some(&json!(0x63))
                && want.get("enip.length") == Some(&json!(0))
            {
                // a ListIdentity request's first 2 context bytes are tshark's "Max Response Delay"
                if let Some(Value::String(c)) = have.get_mut("enip.context") {
                    *c = c.get(6..).unwrap_or_default().to_string();
                }
            }
            let mut diffs = Vec::new();
            let keys: BTreeSet<&String> = want.keys().chain(have.keys()).collect();
            for k in keys {
                let (w, h) = (want.get(k), have.get(k));
                if w != h && DEVIATIONS.contains(&(name.as_str(), at.0, at.1, k.as_str())) {
                    fig.deviations += 1;
                    continue;
                }
                if w != h {
                    diffs.push(format!("{k}: tshark {w:?} plcprobe {h:?}"));
                }
            }
            // the row's own columns where they mean the same as a golden field
            let key_of = if kind == "s7comm" {
                "pdu_ref"
            } else {
                "cip_seq"
            };
            if let Some(k) = g.get(key_of) {
                if (row["role"] != "response" || kind == "s7comm") && &row["key"] != k {
                    diffs.push(format!("key: tshark {key_of} {k} plcprobe {}", row["key"]));
                }
            }
            if kind == "s7comm" && matches!(g["rosctr"].as_u64(), Some(1 | 3)) {
                if let Some(f) = g.get("function") {
                    if &row["function"] != f {
                        diffs.push(format!("function: tshark {f} plcprobe {}", row["function"]));
                    }
                }
            }
            if diffs.is_empty() {
                fig.agreed += 1;
            } else {
                fig.disagree.push(format!(
                    "{name} frame {} #{}: {}",
                    at.0,
                    at.1,
                    diffs.join("; ")
                ));
            }
        }
        for at in gold.keys().filter(|k| !seen.contains(k)) {
            fig.missing.push(format!("{name} frame {} #{}", at.0, at.1));
        }
        // pairing
        let tx = run(&["decode", &c, "--transactions", "--format", "jsonl"]);
        assert_eq!(tx.code, 0, "{name}: {}", tx.stderr);
        let pairs: BTreeSet<(u64, u64)> = tx
            .jsonl()
            .iter()
            .filter(|t| t["proto"] == kind)
            .filter_map(|t| Some((t["request_frame"].as_u64()?, t["response_frame"].as_u64()?)))
            .collect();
        let expected: BTreeSet<(u64, u64)> = if kind == "enip" {
            gold.values()
                .filter_map(|g| Some((g.get("response_to")?.as_u64()?, g["frame"].as_u64()?)))
                .collect()
        } else {
            let recs: Vec<&Map<String, Value>> = gold.values().collect();
            let mut v = BTreeSet::new();
            for (i, j) in recs.iter().enumerate() {
                if j["rosctr"] != 1 {
                    continue;
                }
                let ack = recs[i + 1..].iter().find(|a| {
                    a["rosctr"] == 3
                        && a["pdu_ref"] == j["pdu_ref"]
                        && a["src"] == j["dst"]
                        && a["sport"] == j["dport"]
                        && a["dst"] == j["src"]
                        && a["dport"] == j["sport"]
                });
                if let Some(a) = ack {
                    v.insert((j["frame"].as_u64().unwrap(), a["frame"].as_u64().unwrap()));
                }
            }
            v
        };
        for p in &expected {
            fig.pairs_expected += 1;
            if pairs.contains(p) {
                fig.pairs_agreed += 1;
            } else {
                fig.pairs_wrong.push(format!(
                    "{name}: request frame {} response frame {} not paired",
                    p.0, p.1
                ));
            }
        }
        eprintln!(
            "{kind} {name}: golden {} found {} agreed {} missing {} extra {} | pairs (tshark) {} agreed {}",
            fig.golden,
            fig.found,
            fig.agreed,
            fig.missing.len(),
            fig.extra.len(),
            fig.pairs_expected,
            fig.pairs_agreed
        );
        all.golden += fig.golden;
        all.found += fig.found;
        all.agreed += fig.agreed;
        all.deviations += fig.deviations;
        all.pairs_expected += fig.pairs_expected;
        all.pairs_agreed += fig.pairs_agreed;
        all.extra.extend(fig.extra);
        all.missing.extend(fig.missing);
        all.disagree.extend(fig.disagree);
        all.pairs_wrong.extend(fig.pairs_wrong);
    }
    eprintln!(
        "{kind} ALL: golden {} found {} agreed {} (with {} listed deviations) missing {} extra {} \
         | pairs {} agreed {}",
        all.golden,
        all.found,
        all.agreed,
        all.deviations,
        all.missing.len(),
        all.extra.len(),
        all.pairs_expected,
        all.pairs_agreed
    );
    for (what, v) in [
        ("disagree", &all.disagree),
        ("missing", &all.missing),
        ("extra", &all.extra),
        ("pairs", &all.pairs_wrong),
    ] {
        for d in v.iter().take(15) {
            eprintln!("  {what}: {d}");
        }
    }
    Some(all)
}

fn assert_all(kind: &str, f: &Figures) {
    assert!(
        f.golden > 0 && f.pairs_expected > 0,
        "{kind}: nothing compared"
    );
    let listed = DEVIATIONS
        .iter()
        .filter(|d| {
            std::fs::metadata(
                root()
                    .join("fixtures/golden")
                    .join(kind)
                    .join(format!("{}.tshark.jsonl", d.0)),
            )
            .is_ok()
        })
        .count();
    assert_eq!(
        f.deviations, listed,
        "{kind}: a listed deviation no longer differs (update DEVIATIONS and fixtures/README.md)"
    );
    assert!(
        f.disagree.is_empty() && f.missing.is_empty() && f.extra.is_empty(),
        "{kind}: {} disagree, {} golden messages missing, {} rows not in the golden files \
         (first: {:?} {:?} {:?})",
        f.disagree.len(),
        f.missing.len(),
        f.extra.len(),
        f.disagree.first(),
        f.missing.first(),
        f.extra.first()
    );
    assert!(
        f.pairs_wrong.is_empty(),
        "{kind}: {} of {} pairs differ from tshark's (first: {:?})",
        f.pairs_wrong.len(),
        f.pairs_expected,
        f.pairs_wrong.first()
    );
}

#[test]
fn s7comm_pipeline_agrees_with_tshark() {
    if let Some(f) = check("s7comm") {
        assert_all("s7comm", &f);
    }
}

#[test]
fn enip_pipeline_agrees_with_tshark() {
    if let Some(f) = check("enip") {
        assert_all("enip", &f);
    }
}
