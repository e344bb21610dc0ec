//! The `check` section of a report: a health check of a plan's devices, in HTML and Markdown.
//!
//! Input: a results document of kind `check` (the plan, and per device: status, target,
//! identity, request counts, latency quantiles and `samples`, `problems`, `points` with their
//! trend over the poll rounds, and the baseline `diff` if the device has one). Shows one table
//! of all devices, then per device its problems, identity, response times, trends, drift and
//! point values.

use std::fmt::Write as _;

use serde_json::{json, Value as Json};

use super::{
    diff::{changed_rows, drift_table},
    markup::{
        arr, badge, esc, html_heading, md, md_heading, md_rtt_line, md_trends, rtt_chart, s,
        trend_charts, val, Column, Entry, Table, TrendAxis,
    },
};

/// How long the check took, in seconds.
fn seconds(doc: &Json) -> f64 {
    doc["duration_ms"].as_f64().unwrap_or(0.0) / 1e3
}

/// A device's identity in one line (`vendor product rev x`), or why there is none.
fn identity_text(d: &Json) -> String {
    match d.get("identity") {
        Some(Json::Object(m)) => {
            let g = |k: &str| m.get(k).and_then(Json::as_str).unwrap_or("");
            let t = format!(
                "{} {} {}",
                g("vendor"),
                g("product_code"),
                if g("revision").is_empty() {
                    String::new()
                } else {
                    format!("rev {}", g("revision"))
                }
            );
            t.split_whitespace().collect::<Vec<_>>().join(" ")
        }
        _ => s(d, "identity_status").to_string(),
    }
}

/// The drifted rows of a device's baseline diff (none without a baseline).
fn drift_rows(d: &Json) -> Vec<&Json> {
    d.get("diff").map_or_else(Vec::new, changed_rows)
}

/// One line per device: status, name, target, identity, latency, errors, problems.
fn device_table(doc: &Json) -> Table {
    Table::of(
        arr(doc, "devices"),
        &[
            (Column::text("status"), |d| {
                Entry::Verdict(s(d, "status").into())
            }),
            (Column::text("device"), |d| Entry::text(s(d, "name"))),
            (Column::mono("target"), |d| {
                Entry::Code(s(d, "target").into())
            }),
            (Column::text("identity"), |d| Entry::Text(identity_text(d))),
            (Column::num("rtt p50"), |d| {
                Entry::Raw(
                    d.pointer("/latency_ms/p50")
                        .and_then(Json::as_f64)
                        .map_or(String::new(), |v| format!("{v:.2} ms")),
                )
            }),
            (Column::num("errors"), |d| {
                let sent = d["sent"].as_u64().unwrap_or(0);
                Entry::Raw(format!(
                    "{}/{sent}",
                    sent - d["received"].as_u64().unwrap_or(0)
                ))
            }),
            (Column::text("problems"), |d| {
                Entry::Text(
                    arr(d, "problems")
                        .iter()
                        .filter_map(Json::as_str)
                        .collect::<Vec<_>>()
                        .join("; "),
                )
            }),
        ],
    )
}

/// HTML section for one check document.
pub(crate) fn html(o: &mut String, doc: &Json) {
    let meta = format!(
        "{} · started {} · {:.1} s",
        esc(s(doc, "summary")),
        esc(s(doc, "started_at")),
        seconds(doc)
    );
    html_heading(o, doc, "Health check", &esc(s(doc, "plan")), &meta);
    device_table(doc).html(o);
    for d in arr(doc, "devices") {
        html_device(o, d);
    }
}

/// A device's own section (HTML).
fn html_device(o: &mut String, d: &Json) {
    let _ = write!(
        o,
        "<section class=\"device\"><h3>{} {} <span class=\"meta mono\">{}</span></h3>",
        badge(s(d, "status")),
        esc(s(d, "name")),
        esc(s(d, "target"))
    );
    let problems = arr(d, "problems");
    if !problems.is_empty() {
        o.push_str("<ul class=\"problems\">");
        for p in problems {
            let _ = write!(o, "<li>{}</li>", esc(p.as_str().unwrap_or("")));
        }
        o.push_str("</ul>");
    }
    if let Some(Json::Object(id)) = d.get("identity") {
        Table::of(
            id,
            &[
                (Column::text("identity (FC43)"), |(k, _)| Entry::text(*k)),
                (Column::text("value"), |(_, v)| {
                    Entry::text(v.as_str().unwrap_or(""))
                }),
            ],
        )
        .html(o);
    } else {
        let _ = write!(
            o,
            "<p class=\"meta\">identity: {}</p>",
            esc(s(d, "identity_status"))
        );
    }
    let samples = arr(d, "samples");
    if !samples.is_empty() {
        let th = &d["thresholds"];
        let lines = [
            (th["latency_warn_ms"].as_f64().unwrap_or(f64::NAN), "warn"),
            (th["latency_crit_ms"].as_f64().unwrap_or(f64::NAN), "crit"),
        ];
        // x is the request number: the requests of one round go out back to back.
        o.push_str(&rtt_chart(
            samples,
            |i, _| i as f64,
            &format!(
                "response time in ms over the poll ({} requests, × = failed)",
                samples.len()
            ),
            &lines,
            ("request 1", &format!("request {}", samples.len())),
        ));
    }
    trend_charts(o, d, TrendAxis::Rounds);
    let drift = drift_rows(d);
    if !drift.is_empty() {
        drift_table(&drift).html(o);
    }
    Table::of(
        arr(d, "points"),
        &[
            (Column::text("point"), |p| Entry::text(s(p, "name"))),
            (Column::mono("address"), |p| Entry::text(s(p, "address"))),
            (Column::num("value"), |p| {
                let bad = p["in_range"] == json!(false) || s(p, "status") != "ok";
                let warn = if bad { "⚠ " } else { "" };
                Entry::Text(format!("{warn}{} {}", val(&p["value"]), s(p, "unit")))
            }),
            (Column::num("range"), |p| {
                Entry::Text(
                    p.get("range")
                        .and_then(Json::as_array)
                        .map_or(String::new(), |r| {
                            format!("{} … {}", val(&r[0]), val(&r[1]))
                        }),
                )
            }),
            (Column::text("status"), |p| Entry::text(s(p, "status"))),
        ],
    )
    .html(o);
    o.push_str("</section>");
}

/// Markdown section for one check document.
pub(crate) fn markdown(o: &mut String, doc: &Json) {
    let title = format!("Health check: {}", md(s(doc, "plan")));
    let meta = format!(
        "Started {}, took {:.1} s",
        s(doc, "started_at"),
        seconds(doc)
    );
    md_heading(o, doc, &title, &meta);
    o.push('\n');
    device_table(doc).markdown(o);
    for d in arr(doc, "devices") {
        let _ = writeln!(o, "\n### {} — **{}**\n", md(s(d, "name")), s(d, "status"));
        for p in arr(d, "problems") {
            let _ = writeln!(o, "- {}", md(p.as_str().unwrap_or("")));
        }
        let _ = writeln!(o, "\nIdentity: {}", md(&identity_text(d)));
        if let Some(l) = d.get("latency_ms").filter(|l| !l.is_null()) {
            let _ = writeln!(
                o,
                "\n{}",
                md_rtt_line("Response time", l, arr(d, "samples"))
            );
        }
        md_trends(o, d);
        let drift = drift_rows(d);
        if !drift.is_empty() {
            o.push('\n');
            drift_table(&drift).markdown(o);
        }
    }
}
