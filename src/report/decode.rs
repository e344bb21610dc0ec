//! The `decode` section of a report: what a capture showed (devices, failed requests, the
//! slowest transactions, writes, polling regularity, decoder notes), in HTML and Markdown.
//!
//! Input: a results document of kind `decode` (`capture`, `totals`, `devices`, the transaction
//! lists `failures`, `slowest` and `writes`, `polling` and the `decoder` counters). Long lists
//! are cut (40 devices, 25 transactions, 20 polling series); the JSON results keep them all.
//! The device and transaction tables are built once and written in both formats; HTML shows a
//! few more columns (all response-time quantiles, masters, frame numbers).

use std::fmt::Write as _;

use serde_json::Value as Json;

use super::markup::{
    arr, esc, html_heading, md, md_heading, quantiles, s, val, Column, Entry, Table,
};

/// Device rows, problems first, then the busiest.
fn devices(doc: &Json) -> Vec<&Json> {
    let mut v: Vec<&Json> = arr(doc, "devices").iter().collect();
    let bad = |d: &Json| -> u64 {
        arr(d, "exceptions")
            .iter()
            .chain(arr(d, "bad_status"))
            .chain(arr(d, "errors"))
            .filter_map(|e| e["count"].as_u64())
            .sum::<u64>()
            + d["unanswered"].as_u64().unwrap_or(0)
            + d["malformed"].as_u64().unwrap_or(0)
    };
    v.sort_by(|a, b| {
        bad(b)
            .cmp(&bad(a))
            .then(b["requests"].as_u64().cmp(&a["requests"].as_u64()))
    });
    v
}

fn failures_text(d: &Json) -> String {
    let mut parts: Vec<String> = arr(d, "exceptions")
        .iter()
        .map(|e| {
            format!(
                "{} × 0x{:02X} {}",
                val(&e["count"]),
                e["code"].as_u64().unwrap_or(0),
                s(e, "name")
            )
        })
        .collect();
    parts.extend(
        arr(d, "bad_status")
            .iter()
            .chain(arr(d, "errors"))
            .map(|e| {
                format!(
                    "{} × {}",
                    val(&e["count"]),
                    e["name"].as_str().unwrap_or_else(|| s(e, "code"))
                )
            }),
    );
    parts.join(", ")
}

/// Horizontal bars of p50 and p95 response time per device (inline SVG).
fn rt_bars(rows: &[&Json]) -> String {
    let rows: Vec<(&str, f64, f64)> = rows
        .iter()
        .filter_map(|d| {
            Some((
                s(d, "device"),
                d.pointer("/rt_ms/p50")?.as_f64()?,
                d.pointer("/rt_ms/p95")?.as_f64()?,
            ))
        })
        .take(20)
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let max = rows.iter().map(|r| r.2).fold(0.0f64, f64::max).max(1e-6);
    let (w, label_w, row_h) = (640.0, 190.0, 18.0);
    let h = 28.0 + row_h * rows.len() as f64;
    let mut o = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"response time per device\"><text class=\"ct\" x=\"0\" y=\"12\">response time per device, ms (bar p95, mark p50)</text>"
    );
    for (i, (name, p50, p95)) in rows.iter().enumerate() {
        let y = 22.0 + row_h * i as f64;
        let scale = (w - label_w - 60.0) / max;
        let _ = write!(
            o,
            "<text class=\"tk\" x=\"0\" y=\"{:.1}\">{}</text><rect x=\"{label_w}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#9cc3f5\"/><rect x=\"{:.1}\" y=\"{y:.1}\" width=\"2\" height=\"{:.1}\" fill=\"#0969da\"/><text class=\"tk\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            y + 12.0,
            esc(name),
            (p95 * scale).max(1.0),
            row_h - 4.0,
            label_w + p50 * scale,
            row_h - 4.0,
            label_w + p95 * scale + 4.0,
            y + 12.0,
            esc(&val(&serde_json::json!(p95)))
        );
    }
    o.push_str("</svg>");
    o
}

/// What a transaction row says beyond its status: the exception, the bad status code, or the
/// values written.
pub fn tx_detail(x: &Json) -> String {
    let failure = x.get("exception").or(x.get("status_code")).map(val);
    let values = x
        .get("values")
        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string));
    match x.get("target").and_then(Json::as_str) {
        // S7comm, CIP, DNP3, BACnet: what was read or written, its values, why it failed.
        Some(target) => {
            let mut s = target.to_string();
            if let Some(v) = values {
                s.push_str(" = ");
                s.push_str(&v);
            }
            if let Some(f) = failure {
                s.push_str(": ");
                s.push_str(&f);
            }
            s
        }
        None => failure.or(values).unwrap_or_default(),
    }
}

/// At most 25 transactions: who asked which device what, and what came back.
fn tx_table(list: &[Json]) -> Table {
    Table::of(
        list.iter().take(25),
        &[
            (Column::mono("time"), |x| Entry::text(s(x, "time"))),
            (Column::mono("master"), |x| Entry::text(s(x, "master"))),
            (Column::mono("device"), |x| Entry::text(s(x, "device"))),
            (Column::text("function"), |x| {
                Entry::NumberAnd(val(&x["function"]), s(x, "function_name").into())
            }),
            (Column::num("address"), |x| Entry::raw(&x["address"])),
            (Column::num("count"), |x| Entry::raw(&x["count"])),
            (Column::text("status"), |x| Entry::text(s(x, "status"))),
            (Column::num("rt ms"), |x| Entry::raw(&x["rt_ms"])),
            (Column::num("frames").html_only(), |x| {
                let response = x.get("response_frame").map(|f| format!("→{}", val(f)));
                Entry::Raw(val(&x["request_frame"]) + &response.unwrap_or_default())
            }),
            (Column::text("detail"), |x| Entry::Text(tx_detail(x))),
        ],
    )
}

/// A transaction list (HTML) under `title`; `total` is how many there were in all.
fn tx_html(o: &mut String, title: &str, list: &[Json], total: Option<u64>) {
    if list.is_empty() {
        return;
    }
    let _ = write!(o, "<h3>{}</h3>", esc(title));
    tx_table(list).html(o);
    let total = total.unwrap_or(list.len() as u64);
    if total > 25 {
        let _ = write!(o, "<p class=\"meta\">{total} in all; `plcprobe decode FILE --transactions` or `--writes` lists every one.</p>");
    }
}

/// At most 40 devices, problems first: requests, failures, response times.
fn device_table(devs: &[&Json]) -> Table {
    Table::of(
        devs.iter().take(40),
        &[
            (Column::mono("device"), |d| Entry::text(s(d, "device"))),
            (Column::text("protocol"), |d| Entry::text(s(d, "proto"))),
            (Column::num("requests"), |d| Entry::raw(&d["requests"])),
            (Column::num("answered"), |d| Entry::raw(&d["answered"])),
            (Column::text("failures"), |d| Entry::Text(failures_text(d))),
            (Column::num("unanswered"), |d| Entry::raw(&d["unanswered"])),
            (Column::num("pending"), |d| Entry::raw(&d["pending"])),
            (Column::num("held").html_only(), |d| Entry::raw(&d["held"])),
            (Column::num("malformed"), |d| Entry::raw(&d["malformed"])),
            (Column::num("writes"), |d| Entry::raw(&d["writes"])),
            (
                Column::num("rt min / p50 / p95 / max ms").html_only(),
                |d| Entry::Raw(quantiles(&d["rt_ms"], " / ")),
            ),
            (Column::num("rt p50 / p95 ms").markdown_only(), |d| {
                let rt = &d["rt_ms"];
                Entry::Raw(format!("{} / {}", val(&rt["p50"]), val(&rt["p95"])))
            }),
            (Column::mono("masters").html_only(), |d| {
                let masters: Vec<&str> =
                    arr(d, "masters").iter().filter_map(Json::as_str).collect();
                Entry::Text(masters.join(" "))
            }),
        ],
    )
}

/// The line under a capture's heading: its format, packets and first and last time, each
/// separated by `sep`, the texts escaped with `escape` (HTML or Markdown).
fn capture_meta(capture: &Json, sep: &str, escape: fn(&str) -> String) -> String {
    let mut m = format!(
        "{}{sep}{} packets{sep}{} → {}",
        escape(s(capture, "format")),
        val(&capture["packets"]),
        escape(s(capture, "first")),
        escape(s(capture, "last"))
    );
    // A live capture says what the kernel dropped (0 included: nothing was lost).
    if let Some(d) = capture["kernel_drops"].as_u64() {
        let _ = write!(m, "{sep}{d} dropped by the kernel");
    }
    m
}

/// HTML section for one decode document.
pub(crate) fn html(o: &mut String, doc: &Json) {
    let c = &doc["capture"];
    let t = &doc["totals"];
    let subject = format!("<span class=\"mono\">{}</span>", esc(s(doc, "file")));
    let meta = capture_meta(c, " · ", esc);
    html_heading(o, doc, "Capture", &subject, &meta);
    if let Some(tr) = c["truncated"].as_str() {
        let _ = write!(o, "<p><strong>Truncated:</strong> {}</p>", esc(tr));
    }
    let _ = write!(o, "<p>{}</p>", esc(s(doc, "summary")));
    let devs = devices(doc);
    if !devs.is_empty() {
        device_table(&devs).html(o);
        if devs.len() > 40 {
            let _ = write!(
                o,
                "<p class=\"meta\">{} more devices in the JSON results.</p>",
                devs.len() - 40
            );
        }
        o.push_str(&rt_bars(&devs));
    }
    tx_html(
        o,
        "Failed requests",
        arr(doc, "failures"),
        t["failed"].as_u64(),
    );
    tx_html(o, "Slowest transactions", arr(doc, "slowest"), None);
    tx_html(
        o,
        "Writes (who wrote what, where, when)",
        arr(doc, "writes"),
        t["writes"].as_u64(),
    );
    let polls = arr(doc, "polling");
    if !polls.is_empty() {
        o.push_str("<h3>Polling regularity</h3>");
        Table::of(
            polls.iter().take(20),
            &[
                (Column::mono("master"), |p| Entry::text(s(p, "master"))),
                (Column::mono("device"), |p| Entry::text(s(p, "device"))),
                (Column::num("fc"), |p| Entry::raw(&p["function"])),
                (Column::num("address"), |p| Entry::raw(&p["address"])),
                (Column::num("count"), |p| Entry::raw(&p["count"])),
                (Column::num("requests"), |p| Entry::raw(&p["requests"])),
                (Column::num("interval s"), |p| round3(&p["interval_s"])),
                (Column::num("jitter"), |p| round3(&p["jitter"])),
                (Column::num("min s"), |p| round3(&p["min_interval_s"])),
                (Column::num("max s"), |p| round3(&p["max_interval_s"])),
            ],
        )
        .html(o);
    }
    let notes = notes(doc);
    if !notes.is_empty() {
        let _ = write!(
            o,
            "<p class=\"meta\">Decoder notes: {}</p>",
            esc(&notes.join("; "))
        );
    }
}

/// A number with three decimals (seconds, jitter); nothing if it is not a number.
fn round3(v: &Json) -> Entry {
    Entry::Raw(v.as_f64().map_or(String::new(), |x| format!("{x:.3}")))
}

/// The decoder's counters that are not zero, in words.
pub fn notes(doc: &Json) -> Vec<String> {
    let h = &doc["decoder"];
    [
        ("retransmissions", "retransmitted segments (decoded once)"),
        (
            "out_of_order",
            "out-of-order segments (held until the gap filled)",
        ),
        (
            "lost_in_capture",
            "gaps the peer acknowledged but the capture missed",
        ),
        (
            "skipped_segments",
            "segments not starting a PDU (capture began mid-stream, or foreign data)",
        ),
        (
            "abandoned_pdus",
            "PDUs left incomplete (lost segment or connection ended)",
        ),
        ("bad_lengths", "PDUs with an impossible length field"),
        ("oversized", "PDUs too large to buffer (skipped by length)"),
        ("syn_data", "data on SYN segments (not decoded)"),
        ("malformed_frames", "damaged frames"),
        ("ip_fragments", "IP fragments (not reassembled)"),
        (
            "cut_segments",
            "packets shorter than their IP length (snaplen)",
        ),
        ("crc_errors", "RTU CRC errors"),
        ("evicted_flows", "flows dropped to bound memory"),
    ]
    .iter()
    .filter_map(|(k, what)| {
        h[*k]
            .as_u64()
            .filter(|n| *n > 0)
            .map(|n| format!("{n} {what}"))
    })
    .collect()
}

/// A transaction list (Markdown) under `title`.
fn tx_md(o: &mut String, title: &str, list: &[Json]) {
    if list.is_empty() {
        return;
    }
    let _ = write!(o, "\n### {title}\n\n");
    tx_table(list).markdown(o);
}

/// Markdown section for one decode document.
pub(crate) fn markdown(o: &mut String, doc: &Json) {
    let c = &doc["capture"];
    let title = format!("Capture `{}`", md(s(doc, "file")));
    let meta = capture_meta(c, ", ", md);
    md_heading(o, doc, &title, &meta);
    let _ = writeln!(o, "\n{}", md(s(doc, "summary")));
    if let Some(tr) = c["truncated"].as_str() {
        let _ = writeln!(o, "\n**Truncated:** {}", md(tr));
    }
    let devs = devices(doc);
    if !devs.is_empty() {
        o.push('\n');
        device_table(&devs).markdown(o);
    }
    tx_md(o, "Failed requests", arr(doc, "failures"));
    tx_md(o, "Slowest transactions", arr(doc, "slowest"));
    tx_md(o, "Writes", arr(doc, "writes"));
    let notes = notes(doc);
    if !notes.is_empty() {
        let _ = writeln!(o, "\nDecoder notes: {}.", md(&notes.join("; ")));
    }
}
