//! The summary of a decode as a person reads it on a terminal (`decode FILE` with the table
//! format), from the summary document.

use std::io::Write;

use serde_json::{json, Value as Json};

use super::summary::device_rows;
use crate::{
    proto::sanitize,
    report::{write_rows, Format, Rows},
};

/// The summary for people: the capture, the totals, then devices, polling, failures, writes,
/// malformed PDUs and decoder notes, each cut to what a screen holds unless `verbose`.
pub fn write_summary(
    w: &mut dyn Write,
    doc: &Json,
    verbose: bool,
    color: bool,
) -> anyhow::Result<()> {
    let c = &doc["capture"];
    let t = &doc["totals"];
    writeln!(
        w,
        "{}: {}, {} packets, {} bytes{}",
        doc["file"].as_str().unwrap_or(""),
        c["format"].as_str().unwrap_or("?"),
        c["packets"],
        c["bytes"],
        match (c["first"].as_str(), c["last"].as_str()) {
            (Some(a), Some(b)) => format!(
                ", {a} → {b} ({:.1} s)",
                c["seconds"].as_f64().unwrap_or(0.0)
            ),
            _ => String::new(),
        }
    )?;
    if let Some(d) = c["kernel_drops"].as_u64().filter(|&d| d > 0) {
        writeln!(
            w,
            "INCOMPLETE: the kernel dropped {d} packets that were not read in time"
        )?;
    }
    if let Some(tr) = c["truncated"].as_str() {
        writeln!(w, "TRUNCATED: {tr}")?;
    }
    if let Some(n) = c["snapped_packets"].as_u64().filter(|n| *n > 0) {
        writeln!(
            w,
            "{n} packets were captured shorter than they were on the wire (snaplen); {} of them cut decoded data",
            doc["decoder"]["cut_segments"]
        )?;
    }
    let others: String = t["messages"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(p, n)| format!(", {n} {p} messages"))
        .collect();
    writeln!(
        w,
        "{}: {} Modbus PDUs, {} OPC UA messages{others}; {} transactions, {} exceptions, {} bad status, {} errors, {} unanswered, {} malformed, {} writes",
        t["verdict"].as_str().unwrap_or(""),
        t["modbus_pdus"], t["opcua_messages"], t["transactions"], t["exceptions"], t["bad_status"],
        t["errors"], t["unanswered"], t["malformed"], t["writes"]
    )?;
    let (pending, held) = (
        t["pending"].as_u64().unwrap_or(0),
        t["held"].as_u64().unwrap_or(0),
    );
    if pending + held > 0 {
        writeln!(
            w,
            "not failures: {pending} requests pending (the capture ended before their answer could be seen), {held} OPC UA Publish held by the server when their connection ended"
        )?;
    }
    if doc["devices"].as_array().is_some_and(|a| !a.is_empty()) {
        // Devices with problems first, then the busiest; all of them with -v or in json.
        let mut rows = device_rows(doc);
        // exceptions, unanswered, malformed
        let bad = |r: &Vec<Json>| -> u64 { [4, 5, 8].iter().filter_map(|&i| r[i].as_u64()).sum() };
        rows.rows
            .sort_by(|a, b| bad(b).cmp(&bad(a)).then(b[2].as_u64().cmp(&a[2].as_u64())));
        let total = rows.rows.len();
        let show = if verbose { total } else { 40 };
        rows.rows.truncate(show);
        writeln!(w, "\nDevices")?;
        write_rows(w, Format::Table, &rows, color)?;
        if total > show {
            writeln!(
                w,
                "({} more devices: -v shows all, --format json has them)",
                total - show
            )?;
        }
    }
    let polling = doc["polling"].as_array().cloned().unwrap_or_default();
    if !polling.is_empty() {
        writeln!(
            w,
            "\nPolling (per master and request; jitter = std. deviation / mean interval)"
        )?;
        let mut rows = Rows::new(&[
            "master",
            "device",
            "fc",
            "address",
            "count",
            "requests",
            "interval_s",
            "jitter",
            "min_s",
            "max_s",
        ]);
        for p in polling.iter().take(if verbose { usize::MAX } else { 20 }) {
            let r3 = |v: &Json| {
                v.as_f64()
                    .map_or(Json::Null, |x| json!((x * 1000.0).round() / 1000.0))
            };
            rows.push(vec![
                p["master"].clone(),
                p["device"].clone(),
                p["function"].clone(),
                p["address"].clone(),
                p["count"].clone(),
                p["requests"].clone(),
                r3(&p["interval_s"]),
                r3(&p["jitter"]),
                r3(&p["min_interval_s"]),
                r3(&p["max_interval_s"]),
            ]);
        }
        write_rows(w, Format::Table, &rows, color)?;
        if polling.len() > 20 && !verbose {
            writeln!(
                w,
                "({} more series: -v shows all, --format json has them)",
                polling.len() - 20
            )?;
        }
    }
    let io = doc["io_connections"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !io.is_empty() {
        writeln!(
            w,
            "\nImplicit I/O (per connection; jitter = std. deviation / mean interval)"
        )?;
        let mut rows = Rows::new(&[
            "producer",
            "consumer",
            "connection",
            "packets",
            "rate_per_s",
            "interval_s",
            "jitter",
            "max_s",
        ]);
        for p in io.iter().take(if verbose { usize::MAX } else { 20 }) {
            let r3 = |v: &Json| {
                v.as_f64()
                    .map_or(Json::Null, |x| json!((x * 1000.0).round() / 1000.0))
            };
            rows.push(vec![
                p["producer"].clone(),
                p["consumer"].clone(),
                p["connection"].clone(),
                p["packets"].clone(),
                r3(&p["rate_per_s"]),
                r3(&p["interval_s"]),
                r3(&p["jitter"]),
                r3(&p["max_interval_s"]),
            ]);
        }
        write_rows(w, Format::Table, &rows, color)?;
    }
    let tx_table =
        |w: &mut dyn Write, title: &str, list: &Json, total: Option<u64>| -> anyhow::Result<()> {
            let Some(a) = list.as_array().filter(|a| !a.is_empty()) else {
                return Ok(());
            };
            writeln!(w, "\n{title}")?;
            let mut rows = Rows::new(&[
                "time", "master", "device", "function", "address", "count", "status", "rt_ms",
                "frames", "detail",
            ]);
            for x in a.iter().take(20) {
                let detail = json!(sanitize(&crate::report::decode::tx_detail(x)));
                rows.push(vec![
                    x["time"].clone(),
                    x["master"].clone(),
                    x["device"].clone(),
                    json!(format!(
                        "{} {}",
                        x["function"],
                        x["function_name"].as_str().unwrap_or("")
                    )),
                    x.get("address").cloned().unwrap_or(Json::Null),
                    x.get("count").cloned().unwrap_or(Json::Null),
                    x["status"].clone(),
                    x.get("rt_ms").cloned().unwrap_or(Json::Null),
                    json!(match x.get("response_frame") {
                        Some(r) => format!("{}→{r}", x["request_frame"]),
                        None => x["request_frame"].to_string(),
                    }),
                    detail,
                ]);
            }
            write_rows(w, Format::Table, &rows, color)?;
            let total = total.unwrap_or(a.len() as u64);
            if total > 20 {
                writeln!(w, "({total} in all: see --transactions / --writes)")?;
            }
            Ok(())
        };
    tx_table(w, "Failed requests", &doc["failures"], t["failed"].as_u64())?;
    tx_table(w, "Slowest transactions", &doc["slowest"], None)?;
    tx_table(w, "Writes", &doc["writes"], t["writes"].as_u64())?;
    let o = &doc["opcua"];
    if t["opcua_messages"].as_u64().unwrap_or(0) > 0 {
        writeln!(w, "\nOPC UA")?;
        let list = |k: &str, name: &str| -> String {
            o[k].as_array()
                .into_iter()
                .flatten()
                .map(|x| {
                    format!(
                        "{} {}",
                        x[name]
                            .as_str()
                            .map_or_else(|| x[name].to_string(), ToString::to_string),
                        x["count"]
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(w, "  messages: {}", list("message_types", "type"))?;
        writeln!(w, "  services: {}", list("services", "service"))?;
        writeln!(
            w,
            "  security policies: {}",
            list("security_policies", "policy")
        )?;
        if o["encrypted_messages"].as_u64().unwrap_or(0) > 0 {
            writeln!(
                w,
                "  encrypted (body not visible): {}",
                o["encrypted_messages"]
            )?;
        }
        for e in o["errors"].as_array().into_iter().flatten().take(10) {
            writeln!(
                w,
                "  ERR {}: {}",
                e["code"].as_str().unwrap_or(""),
                sanitize(e["reason"].as_str().unwrap_or(""))
            )?;
        }
    }
    let m = doc["malformed"].as_array().cloned().unwrap_or_default();
    if !m.is_empty() {
        writeln!(w, "\nMalformed PDUs (first {})", m.len().min(10))?;
        for x in m.iter().take(10) {
            writeln!(
                w,
                "  frame {}  {}  {}",
                x["frame"],
                x["device"].as_str().unwrap_or(""),
                x["what"].as_str().unwrap_or("")
            )?;
        }
    }
    let notes = crate::report::decode::notes(doc);
    if !notes.is_empty() {
        writeln!(w, "\nDecoder notes: {}", notes.join("; "))?;
    }
    Ok(())
}

/// Devices shown in the live view at most (the busiest).
const LIVE_DEVICES: usize = 12;

/// The live view of `capture` on a terminal, refreshed in place about once a second: packets,
/// drops, requests per second, and per device its requests, rate, exceptions, unanswered and
/// open requests, slowest answers and writes. `prev` carries the last refresh's request total
/// and time, for the rates.
pub fn live_text(
    label: &str,
    v: &super::live::LiveView<'_, '_>,
    prev: &mut (u64, std::time::Duration),
) -> String {
    use std::fmt::Write as _;
    let devices = &v.analysis.devices;
    let requests: u64 = devices.iter().map(|d| d.requests).sum();
    let dt = v.elapsed.saturating_sub(prev.1).as_secs_f64();
    let rate = |n: u64| if dt > 0.0 { n as f64 / dt } else { 0.0 };
    let mut s = String::new();
    let _ = write!(
        s,
        "capturing on {label}: {:.0} s, {} packets",
        v.elapsed.as_secs_f64(),
        v.packets
    );
    if v.written > 0 {
        let _ = write!(s, " ({} written)", v.written);
    }
    let _ = write!(
        s,
        ", {} dropped by the kernel, {:.0} requests/s  (Ctrl-C stops)",
        v.source.kernel_drops,
        rate(requests.saturating_sub(prev.0))
    );
    let uart = v.source.framing_errors + v.source.parity_errors + v.source.overruns;
    if uart > 0 {
        let _ = write!(
            s,
            "\nUART errors: {} framing, {} parity, {} overruns",
            v.source.framing_errors, v.source.parity_errors, v.source.overruns
        );
    }
    *prev = (requests, v.elapsed);
    if devices.is_empty() {
        s.push_str("\nno Modbus or OPC UA traffic yet");
        return s;
    }
    let _ = write!(
        s,
        "\n{:<26} {:<12} {:>9} {:>8} {:>6} {:>6} {:>5} {:>9} {:>9} {:>6}",
        "device",
        "protocol",
        "requests",
        "req/s",
        "exc",
        "unans",
        "open",
        "p95 ms",
        "max ms",
        "writes"
    );
    let mut order: Vec<usize> = (0..devices.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(devices[i].requests));
    let ms =
        |ns: Option<u64>| ns.map_or_else(|| "-".to_string(), |n| format!("{:.2}", n as f64 / 1e6));
    for &i in order.iter().take(LIVE_DEVICES) {
        let d = &devices[i];
        let exc: u64 = d.exceptions.iter().map(|e| e.1).sum::<u64>()
            + d.bad_status.iter().map(|e| e.1).sum::<u64>();
        // Outstanding now (the analysis's `pending` while a capture runs).
        let open = d.pending;
        let _ = write!(
            s,
            "\n{:<26} {:<12} {:>9} {:>8.1} {:>6} {:>6} {:>5} {:>9} {:>9} {:>6}",
            sanitize(&d.id.to_string()),
            d.proto.word(),
            d.requests,
            d.requests as f64 / v.elapsed.as_secs_f64().max(1e-3),
            exc,
            d.unanswered,
            open,
            ms(d.rt.quantile(0.95)),
            ms(d.rt.max()),
            d.writes
        );
    }
    if devices.len() > LIVE_DEVICES {
        let _ = write!(s, "\n… and {} more devices", devices.len() - LIVE_DEVICES);
    }
    s
}
