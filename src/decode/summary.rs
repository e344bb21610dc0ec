//! The summary of a decode as a `plcprobe.results/1` document of kind `decode` (what `decode
//! --format json` prints, `--results` writes and `report` renders), and its device rows.

use std::path::Path;

use serde_json::{json, Value as Json};

use super::{pipeline::Decoded, rows::TxCells};
use crate::{
    capture::{ics, Proto},
    clock::rfc3339_micros,
    proto::{
        modbus::{exception::exception_name, pdu::function_name},
        opcua,
    },
    report::{envelope, Rows},
};

/// The summary as a `plcprobe.results/1` document of kind `decode` (input for `report`).
#[must_use]
pub fn summary_doc(file: &Path, d: &Decoded) -> Json {
    let s = &d.summary;
    let mut doc = envelope("decode");
    doc.insert("file".into(), json!(file.display().to_string()));
    doc.insert(
        "capture".into(),
        json!({
            "format": d.stats.format,
            "packets": d.stats.packets,
            "bytes": d.stats.bytes,
            "snapped_packets": d.stats.snapped,
            "truncated": d.stats.truncated,
            "first": s.span_ns.map(|x| rfc3339_micros(x.0)),
            "last": s.span_ns.map(|x| rfc3339_micros(x.1)),
            "seconds": s.span_ns.map(|x| (x.1 - x.0) as f64 / 1e9),
        }),
    );
    let mut totals = json!({
        "modbus_pdus": s.modbus_pdus,
        "opcua_messages": s.opcua_msgs,
        "transactions": s.devices.iter().map(|x| x.answered).sum::<u64>(),
        "exceptions": s.devices.iter().map(|x| x.exceptions.iter().map(|e| e.1).sum::<u64>()).sum::<u64>(),
        "bad_status": s.devices.iter().map(|x| x.bad_status.iter().map(|e| e.1).sum::<u64>()).sum::<u64>(),
        "errors": s.devices.iter().map(|x| x.errors.iter().map(|e| e.1).sum::<u64>()).sum::<u64>(),
        "messages": s.ics_msgs.iter().map(|(p, n)| (p.word().to_string(), json!(n))).collect::<serde_json::Map<String, Json>>(),
        "unsolicited": s.devices.iter().map(|x| x.unsolicited).sum::<u64>(),
        "unanswered": s.devices.iter().map(|x| x.unanswered).sum::<u64>(),
        "pending": s.devices.iter().map(|x| x.pending).sum::<u64>(),
        "held": s.devices.iter().map(|x| x.held).sum::<u64>(),
        "malformed": s.devices.iter().map(|x| x.malformed).sum::<u64>(),
        "writes": s.writes_total,
        "failed": s.failures_total,
        "devices": s.devices.len(),
    });
    let verdict = if totals["exceptions"].as_u64().unwrap_or(0)
        + totals["unanswered"].as_u64().unwrap_or(0)
        + totals["bad_status"].as_u64().unwrap_or(0)
        + totals["errors"].as_u64().unwrap_or(0)
        > 0
    {
        "problems seen"
    } else if s.modbus_pdus + s.opcua_msgs + s.ics_msgs.iter().map(|x| x.1).sum::<u64>() == 0 {
        "no industrial protocol traffic"
    } else {
        "clean"
    };
    totals["verdict"] = json!(verdict);
    // For a report: a capture that shows failed requests, or is damaged, is a WARNING.
    let failed = totals["failed"].as_u64().unwrap_or(0);
    let damaged = d.stats.truncated.is_some() || d.health.cut_segments > 0;
    doc.insert(
        "verdict".into(),
        json!(
            if failed > 0 || damaged || totals["malformed"].as_u64().unwrap_or(0) > 0 {
                "WARNING"
            } else {
                "OK"
            }
        ),
    );
    doc.insert(
        "summary".into(),
        json!(format!(
            "{} devices; {} transactions, {} failed ({} exceptions, {} bad status, {} errors, {} unanswered), {} pending at the end, {} Publish held at close, {} malformed, {} writes{}",
            totals["devices"], totals["transactions"], failed, totals["exceptions"], totals["bad_status"], totals["errors"],
            totals["unanswered"], totals["pending"], totals["held"], totals["malformed"], totals["writes"],
            if damaged { "; capture damaged or cut" } else { "" }
        )),
    );
    doc.insert("totals".into(), totals);
    let devices: Vec<Json> = s
        .devices
        .iter()
        .map(|x| {
            json!({
                "device": x.id.to_string(),
                "proto": x.proto.word(),
                "requests": x.requests,
                "responses": x.responses,
                "answered": x.answered,
                "exceptions": x.exceptions.iter().map(|(c, n)| json!({"code": c, "name": exception_name(*c), "count": n})).collect::<Vec<_>>(),
                "bad_status": x.bad_status.iter().map(|(c, n)| json!({"code": format!("0x{c:08X}"), "name": opcua::status_name(*c), "count": n})).collect::<Vec<_>>(),
                "errors": x.errors.iter().map(|(c, n)| json!({"code": format!("0x{c:X}"), "name": ics::status_name(x.proto, *c), "count": n})).collect::<Vec<_>>(),
                "unsolicited": x.unsolicited,
                "unanswered": x.unanswered,
                "pending": x.pending,
                "held": x.held,
                "responses_without_request": x.unmatched_responses,
                "malformed": x.malformed,
                "duplicate_ids": x.duplicate_ids,
                "writes": x.writes,
                "functions": x.functions.iter().map(|(f, n)| json!({
                    "function": f,
                    "name": match x.proto {
                        Proto::OpcUa => opcua::service_name(*f).unwrap_or("unknown"),
                        p if p.is_ics() => ics::function_name(p, *f),
                        _ => function_name(u8::try_from(*f).unwrap_or(0)),
                    },
                    "requests": n})).collect::<Vec<_>>(),
                "rt_ms": {
                    "min": ms(x.rt.min()), "p50": ms(x.rt.quantile(0.5)),
                    "p95": ms(x.rt.quantile(0.95)), "max": ms(x.rt.max()),
                },
                "masters": x.masters.iter().map(ToString::to_string).collect::<Vec<_>>(),
            })
        })
        .collect();
    doc.insert("devices".into(), Json::Array(devices));
    let polling: Vec<Json> = s
        .polls
        .iter()
        .filter(|(_, p)| p.n > 1)
        .take(crate::capture::analysis::KEEP)
        .map(|(k, p)| {
            json!({
                "master": k.master.to_string(),
                "device": s.devices.get(k.device as usize).map(|d| d.id.to_string()),
                "function": k.fc,
                "address": k.address,
                "count": k.count,
                "requests": p.n,
                "interval_s": p.mean_s(),
                "jitter": p.jitter(),
                "min_interval_s": (p.n > 1).then(|| p.min_ns as f64 / 1e9),
                "max_interval_s": (p.n > 1).then(|| p.max_ns as f64 / 1e9),
            })
        })
        .collect();
    doc.insert("polling".into(), Json::Array(polling));
    doc.insert("polling_series_not_followed".into(), json!(s.polls_dropped));
    let io: Vec<Json> =
        s.io.iter()
            .take(crate::capture::analysis::KEEP)
            .map(|(k, p)| {
                json!({
                    "proto": k.proto.word(),
                    "producer": k.src.to_string(),
                    "consumer": k.dst.to_string(),
                    "connection": format!("0x{:08X}", k.connection),
                    "packets": p.n,
                    "interval_s": p.mean_s(),
                    "rate_per_s": p.mean_s().filter(|m| *m > 0.0).map(|m| 1.0 / m),
                    "jitter": p.jitter(),
                    "min_interval_s": (p.n > 1).then(|| p.min_ns as f64 / 1e9),
                    "max_interval_s": (p.n > 1).then(|| p.max_ns as f64 / 1e9),
                })
            })
            .collect();
    doc.insert("io_connections".into(), Json::Array(io));
    // One set of cells for the three lists: each master, device and time text is made once.
    let mut cells = TxCells::default();
    doc.insert(
        "slowest".into(),
        Json::Array(s.slowest.iter().map(|t| cells.object(t)).collect()),
    );
    doc.insert(
        "failures".into(),
        Json::Array(s.failures.iter().map(|t| cells.object(t)).collect()),
    );
    doc.insert(
        "writes".into(),
        Json::Array(s.writes.iter().map(|t| cells.object(t)).collect()),
    );
    doc.insert(
        "malformed".into(),
        Json::Array(
            s.malformed
                .iter()
                .map(|m| json!({"frame": m.frame, "device": m.device.to_string(), "proto": m.proto.word(), "what": m.what}))
                .collect(),
        ),
    );
    let o = &s.opcua;
    doc.insert("opcua".into(), json!({
        "message_types": o.types.iter().map(|(t, n)| json!({"type": t, "count": n})).collect::<Vec<_>>(),
        "services": o.services.iter().map(|(id, n)| json!({"service": opcua::service_name(*id), "id": id, "count": n})).collect::<Vec<_>>(),
        "security_policies": o.policies.iter().map(|(p, n)| json!({"policy": p, "count": n})).collect::<Vec<_>>(),
        "endpoints": o.endpoints.iter().map(|(p, _)| json!(p)).collect::<Vec<_>>(),
        "encrypted_messages": o.opaque,
        "errors": o.errors.iter().map(|(c, r)| json!({"code": opcua::status_text(*c), "reason": r})).collect::<Vec<_>>(),
    }));
    doc.insert(
        "decoder".into(),
        serde_json::to_value(&d.health).unwrap_or(Json::Null),
    );
    Json::Object(doc)
}

/// One row per device of a summary document (its `devices`), for table, jsonl and csv.
pub fn device_rows(doc: &Json) -> Rows {
    let cols = [
        "device",
        "proto",
        "requests",
        "answered",
        "exceptions",
        "unanswered",
        "pending",
        "held",
        "malformed",
        "writes",
        "unsolicited",
        "rt_min_ms",
        "rt_p50_ms",
        "rt_p95_ms",
        "rt_max_ms",
    ];
    let mut rows = Rows::new(&cols);
    for d in doc["devices"].as_array().into_iter().flatten() {
        let exc: u64 = d["exceptions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["count"].as_u64())
            .sum::<u64>()
            + ["bad_status", "errors"]
                .iter()
                .flat_map(|k| d[*k].as_array().into_iter().flatten())
                .filter_map(|e| e["count"].as_u64())
                .sum::<u64>();
        rows.push(vec![
            d["device"].clone(),
            d["proto"].clone(),
            d["requests"].clone(),
            d["answered"].clone(),
            json!(exc),
            d["unanswered"].clone(),
            d["pending"].clone(),
            d["held"].clone(),
            d["malformed"].clone(),
            d["writes"].clone(),
            d["unsolicited"].clone(),
            d["rt_ms"]["min"].clone(),
            d["rt_ms"]["p50"].clone(),
            d["rt_ms"]["p95"].clone(),
            d["rt_ms"]["max"].clone(),
        ]);
    }
    rows
}

/// Nanoseconds as milliseconds with three decimals, or null.
fn ms(ns: Option<u64>) -> Json {
    ns.map_or(Json::Null, |n| json!((n as f64 / 1e3).round() / 1e3))
}
