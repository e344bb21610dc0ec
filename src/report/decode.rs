//! The `decode` section of a report: what a capture showed (devices, failed requests, the
//! slowest transactions, writes, polling regularity, decoder notes), in HTML and Markdown.

use std::fmt::Write as _;

use serde_json::Value as Json;

use super::render::{arr, badge, esc, md, s, val};

/// Device rows, problems first, then the busiest.
fn devices(doc: &Json) -> Vec<&Json> {
    let mut v: Vec<&Json> = arr(doc, "devices").iter().collect();
    let bad = |d: &Json| -> u64 {
        arr(d, "exceptions")
            .iter()
            .chain(arr(d, "bad_status"))
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
    parts.extend(arr(d, "bad_status").iter().map(|e| {
        format!(
            "{} × {}",
            val(&e["count"]),
            e["name"].as_str().unwrap_or_else(|| s(e, "code"))
        )
    }));
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
    x.get("exception")
        .or(x.get("status_code"))
        .map(val)
        .or_else(|| x.get("values").map(ToString::to_string))
        .unwrap_or_default()
}

fn tx_html(o: &mut String, title: &str, list: &[Json], total: Option<u64>) {
    if list.is_empty() {
        return;
    }
    let _ = write!(o, "<h3>{}</h3><table><tr><th>time</th><th>master</th><th>device</th><th>function</th><th>address</th><th>count</th><th>status</th><th>rt ms</th><th>frames</th><th>detail</th></tr>", esc(title));
    for x in list.iter().take(25) {
        let detail = tx_detail(x);
        let _ = write!(
            o,
            "<tr><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td>{} {}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}{}</td><td>{}</td></tr>",
            esc(s(x, "time")),
            esc(s(x, "master")),
            esc(s(x, "device")),
            val(&x["function"]),
            esc(s(x, "function_name")),
            val(x.get("address").unwrap_or(&Json::Null)),
            val(x.get("count").unwrap_or(&Json::Null)),
            esc(s(x, "status")),
            val(x.get("rt_ms").unwrap_or(&Json::Null)),
            val(&x["request_frame"]),
            x.get("response_frame").map_or(String::new(), |f| format!("→{}", val(f))),
            esc(&detail)
        );
    }
    o.push_str("</table>");
    let total = total.unwrap_or(list.len() as u64);
    if total > 25 {
        let _ = write!(o, "<p class=\"meta\">{total} in all; `plcprobe decode FILE --transactions` or `--writes` lists every one.</p>");
    }
}

/// HTML section for one decode document.
pub fn html(o: &mut String, doc: &Json) {
    let c = &doc["capture"];
    let t = &doc["totals"];
    let _ = write!(
        o,
        "<h2>Capture {} <span class=\"mono\">{}</span></h2><p class=\"meta\">{} · {} packets · {} → {} · <code>{}</code></p>",
        badge(s(doc, "verdict")),
        esc(s(doc, "file")),
        esc(s(c, "format")),
        val(&c["packets"]),
        esc(s(c, "first")),
        esc(s(c, "last")),
        esc(s(doc, "command"))
    );
    if let Some(tr) = c["truncated"].as_str() {
        let _ = write!(o, "<p><strong>Truncated:</strong> {}</p>", esc(tr));
    }
    let _ = write!(o, "<p>{}</p>", esc(s(doc, "summary")));
    let devs = devices(doc);
    if !devs.is_empty() {
        o.push_str("<table><tr><th>device</th><th>protocol</th><th>requests</th><th>answered</th><th>failures</th><th>unanswered</th><th>malformed</th><th>writes</th><th>rt min / p50 / p95 / max ms</th><th>masters</th></tr>");
        for d in devs.iter().take(40) {
            let rt = &d["rt_ms"];
            let _ = write!(
                o,
                "<tr><td class=\"mono\">{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{} / {} / {} / {}</td><td class=\"mono\">{}</td></tr>",
                esc(s(d, "device")),
                esc(s(d, "proto")),
                val(&d["requests"]),
                val(&d["answered"]),
                esc(&failures_text(d)),
                val(&d["unanswered"]),
                val(&d["malformed"]),
                val(&d["writes"]),
                val(&rt["min"]),
                val(&rt["p50"]),
                val(&rt["p95"]),
                val(&rt["max"]),
                esc(&arr(d, "masters").iter().filter_map(Json::as_str).collect::<Vec<_>>().join(" "))
            );
        }
        o.push_str("</table>");
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
        o.push_str("<h3>Polling regularity</h3><table><tr><th>master</th><th>device</th><th>fc</th><th>address</th><th>count</th><th>requests</th><th>interval s</th><th>jitter</th><th>min s</th><th>max s</th></tr>");
        for p in polls.iter().take(20) {
            let _ = write!(
                o,
                "<tr><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                esc(s(p, "master")),
                esc(s(p, "device")),
                val(&p["function"]),
                val(&p["address"]),
                val(&p["count"]),
                val(&p["requests"]),
                round3(&p["interval_s"]),
                round3(&p["jitter"]),
                round3(&p["min_interval_s"]),
                round3(&p["max_interval_s"])
            );
        }
        o.push_str("</table>");
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

fn round3(v: &Json) -> String {
    v.as_f64().map_or(String::new(), |x| format!("{x:.3}"))
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

fn tx_md(o: &mut String, title: &str, list: &[Json]) {
    if list.is_empty() {
        return;
    }
    let _ = writeln!(o, "\n### {title}\n\n| time | master | device | function | address | count | status | rt ms | detail |\n|---|---|---|---|---:|---:|---|---:|---|");
    for x in list.iter().take(25) {
        let detail = tx_detail(x);
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} {} | {} | {} | {} | {} | {} |",
            md(s(x, "time")),
            md(s(x, "master")),
            md(s(x, "device")),
            val(&x["function"]),
            md(s(x, "function_name")),
            val(x.get("address").unwrap_or(&Json::Null)),
            val(x.get("count").unwrap_or(&Json::Null)),
            md(s(x, "status")),
            val(x.get("rt_ms").unwrap_or(&Json::Null)),
            md(&detail)
        );
    }
}

/// Markdown section for one decode document.
pub fn markdown(o: &mut String, doc: &Json) {
    let c = &doc["capture"];
    let _ = writeln!(
        o,
        "\n## Capture `{}` — **{}**\n\n{}, {} packets, {} → {}. Command: `{}`\n\n{}",
        md(s(doc, "file")),
        s(doc, "verdict"),
        md(s(c, "format")),
        val(&c["packets"]),
        md(s(c, "first")),
        md(s(c, "last")),
        s(doc, "command").replace('`', "'"),
        md(s(doc, "summary"))
    );
    if let Some(tr) = c["truncated"].as_str() {
        let _ = writeln!(o, "\n**Truncated:** {}", md(tr));
    }
    let devs = devices(doc);
    if !devs.is_empty() {
        o.push_str("\n| device | protocol | requests | answered | failures | unanswered | malformed | writes | rt p50 / p95 ms |\n|---|---|---:|---:|---|---:|---:|---:|---:|\n");
        for d in devs.iter().take(40) {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} / {} |",
                md(s(d, "device")),
                md(s(d, "proto")),
                val(&d["requests"]),
                val(&d["answered"]),
                md(&failures_text(d)),
                val(&d["unanswered"]),
                val(&d["malformed"]),
                val(&d["writes"]),
                val(&d["rt_ms"]["p50"]),
                val(&d["rt_ms"]["p95"])
            );
        }
    }
    tx_md(o, "Failed requests", arr(doc, "failures"));
    tx_md(o, "Slowest transactions", arr(doc, "slowest"));
    tx_md(o, "Writes", arr(doc, "writes"));
    let notes = notes(doc);
    if !notes.is_empty() {
        let _ = writeln!(o, "\nDecoder notes: {}.", md(&notes.join("; ")));
    }
}
