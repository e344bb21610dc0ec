//! Reports from results documents (`plcprobe.results/1`, kinds `check`, `diff`, `poll` and
//! `decode`): Markdown to
//! paste into a ticket, one self-contained HTML file (inline CSS and SVG, no JavaScript, no
//! fetches: plant laptops are offline) that prints well to PDF, and JSON for machines.
//!
//! Every report names the tool version, the exact command lines, the time, and each device's
//! identity. Device-supplied text is escaped for HTML and Markdown.

use std::{fmt::Write as _, path::Path};

use serde_json::{json, Value as Json};

pub(crate) fn s<'a>(v: &'a Json, k: &str) -> &'a str {
    v.get(k).and_then(Json::as_str).unwrap_or("")
}

pub(crate) fn arr<'a>(v: &'a Json, k: &str) -> &'a [Json] {
    v.get(k).and_then(Json::as_array).map_or(&[], Vec::as_slice)
}

/// Escape text for HTML.
pub fn esc(t: &str) -> String {
    let mut o = String::with_capacity(t.len());
    for c in t.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if c.is_control() && c != '\n' => {
                let _ = write!(o, "\\u{{{:x}}}", c as u32);
            }
            c => o.push(c),
        }
    }
    o
}

/// Escape text for a Markdown table cell.
pub fn md(t: &str) -> String {
    t.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('\n', " ")
        .replace('<', "&lt;")
        .replace('`', "\\`")
}

pub(crate) fn val(v: &Json) -> String {
    match v {
        Json::Null => String::new(),
        Json::String(t) => t.clone(),
        Json::Number(n) => n.as_f64().map_or_else(
            || n.to_string(),
            |f| {
                if f.fract() == 0.0 && f.abs() < 1e15 {
                    format!("{f:.0}")
                } else {
                    format!("{}", (f * 1e6).round() / 1e6)
                }
            },
        ),
        other => other.to_string(),
    }
}

const RANK: [&str; 4] = ["OK", "WARNING", "CRITICAL", "UNKNOWN"];

fn rank(v: &str) -> usize {
    RANK.iter().position(|r| *r == v).unwrap_or(3)
}

/// The worst verdict of the documents.
pub fn overall(docs: &[Json]) -> &'static str {
    RANK[docs
        .iter()
        .map(|d| rank(s(d, "verdict")))
        .max()
        .unwrap_or(0)]
}

/// Check that a document is a results document of a kind the report knows.
pub fn validate(name: &str, doc: &Json) -> anyhow::Result<()> {
    match (s(doc, "format"), s(doc, "kind")) {
        ("plcprobe.results/1", "check" | "diff" | "poll" | "decode") => Ok(()),
        ("plcprobe.results/1", k) => anyhow::bail!("{name}: results of kind `{k}` cannot be reported yet; use results of check, diff, poll or decode"),
        _ => anyhow::bail!("{name} is not a plcprobe results file; make one with `plcprobe check PLAN --results FILE`, `plcprobe poll … --results FILE`, `plcprobe decode CAPTURE --results FILE` or `plcprobe diff … --format json > FILE`"),
    }
}

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

/// Which points moved during the poll (numeric, not constant), for trend charts.
fn moved_points(d: &Json) -> Vec<&Json> {
    arr(d, "points")
        .iter()
        .filter(|p| {
            let t: Vec<f64> = arr(p, "trend").iter().filter_map(Json::as_f64).collect();
            t.len() >= 2 && t.iter().any(|x| (x - t[0]).abs() > 1e-12)
        })
        .collect()
}

fn drift_rows(d: &Json) -> Vec<&Json> {
    d.get("diff").map_or_else(Vec::new, |df| {
        arr(df, "rows")
            .iter()
            .filter(|r| !matches!(s(r, "verdict"), "unchanged" | "ignored"))
            .collect()
    })
}

// ---------------------------------------------------------------------------------------- SVG

/// Size and x-axis labels of a chart.
pub struct ChartFrame<'a> {
    /// Width and height in px.
    pub size: (f64, f64),
    /// Labels under the first and last x.
    pub x_labels: (&'a str, &'a str),
}

/// A line chart of (x, y) with gaps where y is missing, failures marked on the x axis.
pub fn svg_chart(
    points: &[(f64, Option<f64>)],
    title: &str,
    unit: &str,
    thresholds: &[(f64, &str)],
    frame: &ChartFrame<'_>,
) -> String {
    let (w, h) = frame.size;
    let (l, r, t, b) = (66.0, 12.0, 22.0, 28.0);
    let xs: Vec<f64> = points.iter().map(|p| p.0).collect();
    let ys: Vec<f64> = points.iter().filter_map(|p| p.1).collect();
    let (x0, x1) = (
        xs.iter().copied().fold(f64::INFINITY, f64::min),
        xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
    let (mut y0, mut y1) = (
        ys.iter().copied().fold(f64::INFINITY, f64::min),
        ys.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
    // Draw a threshold only where it means something for these values: crossed, or near them
    // (a far-away limit would flatten the line into the axis).
    let near = 0.25 * (y1 - y0).max(y1.abs().max(y0.abs()) * 0.05);
    let thresholds: Vec<&(f64, &str)> = thresholds
        .iter()
        .filter(|(th, _)| th.is_finite() && y0.is_finite() && *th >= y0 - near && *th <= y1 + near)
        .collect();
    for (th, _) in &thresholds {
        y0 = y0.min(*th);
        y1 = y1.max(*th);
    }
    if !y0.is_finite() {
        (y0, y1) = (0.0, 1.0);
    }
    if (y1 - y0).abs() < 1e-12 {
        y0 -= 1.0_f64.max(y0.abs() * 0.05);
        y1 += 1.0_f64.max(y1.abs() * 0.05);
    }
    let pad = (y1 - y0) * 0.08;
    let (y0, y1) = (y0 - pad, y1 + pad);
    let span_x = if (x1 - x0).abs() < 1e-12 {
        1.0
    } else {
        x1 - x0
    };
    let px = |x: f64| l + (x - x0) / span_x * (w - l - r);
    let py = |y: f64| t + (1.0 - (y - y0) / (y1 - y0)) * (h - t - b);
    let mut o = String::new();
    let _ = write!(o, "<svg class=\"chart\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{}\">", esc(title));
    let heading = if unit.is_empty() {
        title.to_string()
    } else {
        format!("{title} ({unit})")
    };
    let _ = write!(
        o,
        "<text x=\"{l}\" y=\"14\" class=\"ct\">{}</text>",
        esc(&heading)
    );
    let _ = write!(o, "<line x1=\"{l}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" class=\"ax\"/><line x1=\"{l}\" y1=\"{t}\" x2=\"{l}\" y2=\"{}\" class=\"ax\"/>", h - b, w - r, h - b, h - b);
    for frac in [0.0, 0.5, 1.0] {
        let y = y0 + (y1 - y0) * frac;
        let _ = write!(o, "<text x=\"{}\" y=\"{:.1}\" class=\"tk\" text-anchor=\"end\">{}</text><line x1=\"{l}\" y1=\"{:.1}\" x2=\"{}\" y2=\"{:.1}\" class=\"gr\"/>", l - 4.0, py(y) + 3.0, esc(&fmt_tick(y, y1 - y0)), py(y), w - r, py(y));
    }
    for (th, name) in thresholds {
        if *th >= y0 && *th <= y1 {
            let _ = write!(o, "<line x1=\"{l}\" y1=\"{:.1}\" x2=\"{}\" y2=\"{:.1}\" class=\"th\"/><text x=\"{}\" y=\"{:.1}\" class=\"tk\" text-anchor=\"end\">{}</text>", py(*th), w - r, py(*th), w - r, py(*th) - 3.0, esc(name));
        }
    }
    let _ = write!(o, "<text x=\"{l}\" y=\"{}\" class=\"tk\">{}</text><text x=\"{}\" y=\"{}\" class=\"tk\" text-anchor=\"end\">{}</text>", h - 8.0, esc(frame.x_labels.0), w - r, h - 8.0, esc(frame.x_labels.1));
    let mut seg: Vec<String> = Vec::new();
    let flush = |seg: &mut Vec<String>, o: &mut String| {
        if seg.len() == 1 {
            let _ = write!(
                o,
                "<circle cx=\"{}\" r=\"2.5\" class=\"pt\"/>",
                seg[0].replace(',', "\" cy=\"")
            );
        } else if seg.len() > 1 {
            let _ = write!(o, "<polyline points=\"{}\" class=\"ln\"/>", seg.join(" "));
        }
        seg.clear();
    };
    for (x, y) in points {
        if let Some(y) = y {
            seg.push(format!("{:.1},{:.1}", px(*x), py(*y)));
        } else {
            flush(&mut seg, &mut o);
            let _ = write!(
                o,
                "<text x=\"{:.1}\" y=\"{:.1}\" class=\"fail\" text-anchor=\"middle\">×</text>",
                px(*x),
                h - b - 2.0
            );
        }
    }
    flush(&mut seg, &mut o);
    o.push_str("</svg>");
    o
}

fn fmt_tick(y: f64, span: f64) -> String {
    // Enough decimals that the three ticks differ, and big values in k/M.
    let (v, suffix) = if y.abs() >= 1e6 {
        (y / 1e6, "M")
    } else if y.abs() >= 1e4 {
        (y / 1e3, "k")
    } else {
        (y, "")
    };
    let scaled_span = span / (y / v.max(f64::MIN_POSITIVE)).abs().max(1.0);
    let decimals = if scaled_span > 0.0 {
        (-(scaled_span / 2.0).log10()).ceil().clamp(0.0, 6.0) as usize
    } else {
        1
    };
    format!("{v:.decimals$}{suffix}")
}

fn sparkline(vals: &[f64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    const WIDTH: usize = 120;
    // Long runs: the worst (largest) value of each bucket, so a spike never disappears.
    let vals: Vec<f64> = if vals.len() > WIDTH {
        vals.chunks(vals.len().div_ceil(WIDTH))
            .map(|c| c.iter().copied().fold(f64::NEG_INFINITY, f64::max))
            .collect()
    } else {
        vals.to_vec()
    };
    let (lo, hi) = vals
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(*v), b.max(*v))
        });
    vals.iter()
        .map(|v| {
            if hi > lo {
                BARS[(((v - lo) / (hi - lo)) * 7.0).round() as usize]
            } else {
                BARS[3]
            }
        })
        .collect()
}

// --------------------------------------------------------------------------------------- HTML

const CSS: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1b1f24;margin:24px auto;max-width:1000px;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:2px solid #d0d7de;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
table{border-collapse:collapse;width:100%;margin:6px 0 12px}th,td{border:1px solid #d0d7de;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f3f5f7}td.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:2px 10px;border-radius:4px;font-weight:700;color:#fff}
.OK{background:#1a7f37}.WARNING{background:#9a6700}.CRITICAL{background:#cf222e}.UNKNOWN{background:#6e7781}
.verdict{font-size:20px;padding:6px 16px;margin:8px 0}.meta{color:#57606a;font-size:12.5px}
.device{border:1px solid #d0d7de;border-radius:6px;padding:4px 14px 10px;margin:14px 0;break-inside:avoid}
ul.problems{margin:4px 0 8px;padding-left:20px}ul.problems li{margin:2px 0}
.chart{max-width:100%;height:auto;display:block;margin:6px 0}.chart .ct{font-size:12px;font-weight:600;fill:#1b1f24}
.chart .tk{font-size:10px;fill:#57606a}.chart .ax{stroke:#57606a;stroke-width:1}.chart .gr{stroke:#eaeef2;stroke-width:1}
.chart .th{stroke:#cf222e;stroke-width:1;stroke-dasharray:4 3}.chart .ln{fill:none;stroke:#0969da;stroke-width:1.6}
.chart .pt{fill:#0969da}.chart .fail{font-size:12px;fill:#cf222e;font-weight:700}
.trends{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:4px 16px}
.trends .chart .ct{font-size:11px}.trends .chart .tk{font-size:9px}
footer{margin-top:32px;color:#57606a;font-size:12px;border-top:1px solid #d0d7de;padding-top:8px}
@media print{body{margin:0;max-width:none;font-size:11px}.device,table,svg{break-inside:avoid}h2{break-after:avoid}
*{-webkit-print-color-adjust:exact;print-color-adjust:exact}}
";

pub(crate) fn badge(v: &str) -> String {
    let v = if RANK.contains(&v) { v } else { "UNKNOWN" };
    format!("<span class=\"badge {v}\">{v}</span>")
}

fn html_check(o: &mut String, doc: &Json) {
    let _ = write!(
        o,
        "<h2>Health check {} {}</h2>",
        badge(s(doc, "verdict")),
        esc(s(doc, "plan"))
    );
    let _ = write!(
        o,
        "<p class=\"meta\">{} · started {} · {:.1} s · <code>{}</code></p>",
        esc(s(doc, "summary")),
        esc(s(doc, "started_at")),
        doc["duration_ms"].as_f64().unwrap_or(0.0) / 1e3,
        esc(s(doc, "command"))
    );
    o.push_str("<table><tr><th>status</th><th>device</th><th>target</th><th>identity</th><th>rtt p50</th><th>errors</th><th>problems</th></tr>");
    for d in arr(doc, "devices") {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td class=\"mono\">{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}/{}</td><td>{}</td></tr>",
            badge(s(d, "status")),
            esc(s(d, "name")),
            esc(s(d, "target")),
            esc(&identity_text(d)),
            d.pointer("/latency_ms/p50").and_then(Json::as_f64).map_or(String::new(), |v| format!("{v:.2} ms")),
            d["sent"].as_u64().unwrap_or(0) - d["received"].as_u64().unwrap_or(0),
            d["sent"].as_u64().unwrap_or(0),
            esc(&arr(d, "problems").iter().filter_map(Json::as_str).collect::<Vec<_>>().join("; "))
        );
    }
    o.push_str("</table>");
    for d in arr(doc, "devices") {
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
            o.push_str("<table><tr><th>identity (FC43)</th><th>value</th></tr>");
            for (k, v) in id {
                let _ = write!(
                    o,
                    "<tr><td>{}</td><td>{}</td></tr>",
                    esc(k),
                    esc(v.as_str().unwrap_or(""))
                );
            }
            o.push_str("</table>");
        } else {
            let _ = write!(
                o,
                "<p class=\"meta\">identity: {}</p>",
                esc(s(d, "identity_status"))
            );
        }
        let samples = arr(d, "samples");
        if !samples.is_empty() {
            // x is the request number: the requests of one round go out back to back.
            let pts: Vec<(f64, Option<f64>)> = samples
                .iter()
                .enumerate()
                .map(|(i, x)| {
                    (
                        i as f64,
                        if x["error"].is_null() {
                            x["rtt_ms"].as_f64()
                        } else {
                            None
                        },
                    )
                })
                .collect();
            let th = &d["thresholds"];
            let lines = [
                (th["latency_warn_ms"].as_f64().unwrap_or(f64::NAN), "warn"),
                (th["latency_crit_ms"].as_f64().unwrap_or(f64::NAN), "crit"),
            ];
            let last = format!("request {}", samples.len());
            let frame = ChartFrame {
                size: (640.0, 200.0),
                x_labels: ("request 1", &last),
            };
            o.push_str(&svg_chart(
                &pts,
                &format!(
                    "response time in ms over the poll ({} requests, × = failed)",
                    samples.len()
                ),
                "",
                &lines,
                &frame,
            ));
        }
        let moved = moved_points(d);
        if !moved.is_empty() {
            o.push_str("<div class=\"trends\">");
            for p in moved {
                let pts: Vec<(f64, Option<f64>)> = arr(p, "trend")
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (i as f64, v.as_f64()))
                    .collect();
                let range: Vec<(f64, &str)> =
                    p.get("range")
                        .and_then(Json::as_array)
                        .map_or_else(Vec::new, |r| {
                            vec![
                                (r[0].as_f64().unwrap_or(f64::NAN), "low"),
                                (r[1].as_f64().unwrap_or(f64::NAN), "high"),
                            ]
                        });
                let last = format!("round {}", pts.len());
                let frame = ChartFrame {
                    size: (320.0, 150.0),
                    x_labels: ("round 1", &last),
                };
                o.push_str(&svg_chart(&pts, s(p, "name"), s(p, "unit"), &range, &frame));
            }
            o.push_str("</div>");
        }
        let drift = drift_rows(d);
        if !drift.is_empty() {
            html_diff_table(o, &drift);
        }
        o.push_str("<table><tr><th>point</th><th>address</th><th>value</th><th>range</th><th>status</th></tr>");
        for p in arr(d, "points") {
            let range = p
                .get("range")
                .and_then(Json::as_array)
                .map_or(String::new(), |r| {
                    format!("{} … {}", val(&r[0]), val(&r[1]))
                });
            let bad = p["in_range"] == json!(false) || s(p, "status") != "ok";
            let _ = write!(
                o,
                "<tr><td>{}</td><td class=\"mono\">{}</td><td class=\"num\">{}{} {}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                esc(s(p, "name")),
                esc(s(p, "address")),
                if bad { "⚠ " } else { "" },
                esc(&val(&p["value"])),
                esc(s(p, "unit")),
                esc(&range),
                esc(s(p, "status"))
            );
        }
        o.push_str("</table></section>");
    }
}

fn html_diff_table(o: &mut String, rows: &[&Json]) {
    o.push_str("<table><tr><th>verdict</th><th>point</th><th>address</th><th>baseline</th><th>current</th><th>delta</th><th>tolerance</th><th>note</th></tr>");
    for r in rows {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td class=\"mono\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            esc(s(r, "verdict")),
            esc(s(r, "name")),
            esc(s(r, "address")),
            esc(format!("{} {}", val(&r["baseline"]), s(r, "unit")).trim()),
            esc(format!("{} {}", val(&r["current"]), s(r, "unit")).trim()),
            esc(&val(&r["delta"])),
            esc(&val(&r["tolerance"])),
            esc(s(r, "note"))
        );
    }
    o.push_str("</table>");
}

fn html_diff(o: &mut String, doc: &Json) {
    let df = &doc["diff"];
    let _ = write!(
        o,
        "<h2>Drift {} {}</h2>",
        badge(s(doc, "verdict")),
        esc(s(df, "baseline_target"))
    );
    let _ = write!(
        o,
        "<p class=\"meta\">baseline of {} vs {} · {} · <code>{}</code></p>",
        esc(s(df, "baseline_taken_at")),
        esc(s(df, "current_taken_at")),
        esc(s(doc, "summary")),
        esc(s(doc, "command"))
    );
    if let Some(Json::Object(ch)) = df.get("identity_changes") {
        for (k, v) in ch {
            let _ = write!(
                o,
                "<p><strong>Identity changed:</strong> {}: {} → {}</p>",
                esc(k),
                esc(&val(&v[0])),
                esc(&val(&v[1]))
            );
        }
    }
    let rows: Vec<&Json> = arr(df, "rows")
        .iter()
        .filter(|r| !matches!(s(r, "verdict"), "unchanged" | "ignored"))
        .collect();
    if rows.is_empty() {
        o.push_str("<p>No drift: every point is within its tolerance.</p>");
    } else {
        html_diff_table(o, &rows);
    }
}

fn html_poll(o: &mut String, doc: &Json) {
    let st = &doc["statistics"];
    let _ = write!(
        o,
        "<h2>Poll {} <span class=\"mono\">{}</span></h2>",
        badge(s(doc, "verdict")),
        esc(s(doc, "target"))
    );
    let _ = write!(
        o,
        "<p class=\"meta\">{} · {:.1} s · <code>{}</code></p>",
        esc(s(doc, "summary")),
        st["elapsed_s"].as_f64().unwrap_or(0.0),
        esc(s(doc, "command"))
    );
    o.push_str("<table><tr><th>sent</th><th>received</th><th>errors</th><th>loss</th><th>rtt min / p50 / p95 / max</th><th>connections</th></tr>");
    let errs = st["errors"].as_object().map_or(String::new(), |m| {
        m.iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    });
    let rtt = &st["rtt_ms"];
    let _ = write!(
        o,
        "<tr><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}%</td><td class=\"num\">{} / {} / {} / {} ms</td><td class=\"num\">{}</td></tr></table>",
        val(&st["sent"]),
        val(&st["received"]),
        esc(&errs),
        val(&st["loss_pct"]),
        val(&rtt["min"]),
        val(&rtt["p50"]),
        val(&rtt["p95"]),
        val(&rtt["max"]),
        val(&st["connects"])
    );
    let samples = arr(doc, "samples");
    if !samples.is_empty() {
        let pts: Vec<(f64, Option<f64>)> = samples
            .iter()
            .map(|x| {
                (
                    x["seq"].as_f64().unwrap_or(0.0),
                    if x["error"].is_null() {
                        x["rtt_ms"].as_f64()
                    } else {
                        None
                    },
                )
            })
            .collect();
        let last = format!("poll {}", val(&samples[samples.len() - 1]["seq"]));
        let frame = ChartFrame {
            size: (640.0, 200.0),
            x_labels: ("poll 1", &last),
        };
        o.push_str(&svg_chart(
            &pts,
            &format!(
                "round trip in ms per poll ({} shown, × = failed)",
                samples.len()
            ),
            "",
            &[],
            &frame,
        ));
    }
    let moved = moved_points(doc);
    if !moved.is_empty() {
        o.push_str("<div class=\"trends\">");
        for p in moved {
            let pts: Vec<(f64, Option<f64>)> = arr(p, "trend")
                .iter()
                .enumerate()
                .map(|(i, v)| (i as f64, v.as_f64()))
                .collect();
            let frame = ChartFrame {
                size: (320.0, 150.0),
                x_labels: ("first", "last"),
            };
            o.push_str(&svg_chart(&pts, s(p, "name"), s(p, "unit"), &[], &frame));
        }
        o.push_str("</div>");
    }
}

/// The self-contained HTML report.
pub fn render_html(docs: &[Json]) -> String {
    let verdict = overall(docs);
    let mut o = String::new();
    let _ = write!(o, "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>plcprobe report: {verdict}</title><style>{CSS}</style></head><body>");
    let _ = write!(
        o,
        "<h1>plcprobe diagnostic report</h1><div class=\"badge verdict {verdict}\">{verdict}</div>"
    );
    let _ = write!(
        o,
        "<p class=\"meta\">generated {} by plcprobe {} from {} result file(s)</p>",
        esc(&crate::clock::now_rfc3339()),
        env!("CARGO_PKG_VERSION"),
        docs.len()
    );
    o.push_str("<ul>");
    for d in docs {
        let _ = write!(
            o,
            "<li>{} {}: {}</li>",
            badge(s(d, "verdict")),
            esc(s(d, "kind")),
            esc(s(d, "summary"))
        );
    }
    o.push_str("</ul>");
    for d in docs {
        match s(d, "kind") {
            "check" => html_check(&mut o, d),
            "diff" => html_diff(&mut o, d),
            "poll" => html_poll(&mut o, d),
            "decode" => super::decode::html(&mut o, d),
            _ => {}
        }
    }
    o.push_str("<footer>Commands:<ul>");
    for d in docs {
        let _ = write!(
            o,
            "<li><code>{}</code> at {} (plcprobe {})</li>",
            esc(s(d, "command")),
            esc(s(d, "generated_at")),
            esc(s(d, "tool_version"))
        );
    }
    o.push_str("</ul></footer></body></html>\n");
    o
}

// ----------------------------------------------------------------------------------- Markdown

fn md_diff_table(o: &mut String, rows: &[&Json]) {
    o.push_str("\n| verdict | point | address | baseline | current | delta | tolerance | note |\n|---|---|---|---:|---:|---:|---:|---|\n");
    for r in rows {
        let _ = writeln!(
            o,
            "| {} | {} | `{}` | {} {} | {} {} | {} | {} | {} |",
            md(s(r, "verdict")),
            md(s(r, "name")),
            md(s(r, "address")),
            md(&val(&r["baseline"])),
            md(s(r, "unit")),
            md(&val(&r["current"])),
            md(s(r, "unit")),
            md(&val(&r["delta"])),
            md(&val(&r["tolerance"])),
            md(s(r, "note"))
        );
    }
}

/// The Markdown report.
pub fn render_markdown(docs: &[Json]) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# plcprobe diagnostic report: **{}**\n", overall(docs));
    let _ = writeln!(
        o,
        "Generated {} by plcprobe {}.\n",
        crate::clock::now_rfc3339(),
        env!("CARGO_PKG_VERSION")
    );
    for d in docs {
        let _ = writeln!(
            o,
            "- **{}** {}: {}",
            s(d, "verdict"),
            s(d, "kind"),
            md(s(d, "summary"))
        );
    }
    for doc in docs {
        if s(doc, "kind") == "decode" {
            super::decode::markdown(&mut o, doc);
            continue;
        }
        match s(doc, "kind") {
            "check" => {
                let _ = writeln!(
                    o,
                    "\n## Health check: {} — **{}**\n",
                    md(s(doc, "plan")),
                    s(doc, "verdict")
                );
                let _ = writeln!(
                    o,
                    "Started {}, took {:.1} s. Command: `{}`\n",
                    s(doc, "started_at"),
                    doc["duration_ms"].as_f64().unwrap_or(0.0) / 1e3,
                    s(doc, "command").replace('`', "'")
                );
                o.push_str("| status | device | target | identity | rtt p50 | errors | problems |\n|---|---|---|---|---:|---:|---|\n");
                for d in arr(doc, "devices") {
                    let _ = writeln!(
                        o,
                        "| **{}** | {} | `{}` | {} | {} | {}/{} | {} |",
                        s(d, "status"),
                        md(s(d, "name")),
                        md(s(d, "target")),
                        md(&identity_text(d)),
                        d.pointer("/latency_ms/p50")
                            .and_then(Json::as_f64)
                            .map_or(String::new(), |v| format!("{v:.2} ms")),
                        d["sent"].as_u64().unwrap_or(0) - d["received"].as_u64().unwrap_or(0),
                        d["sent"].as_u64().unwrap_or(0),
                        md(&arr(d, "problems")
                            .iter()
                            .filter_map(Json::as_str)
                            .collect::<Vec<_>>()
                            .join("; "))
                    );
                }
                for d in arr(doc, "devices") {
                    let _ = writeln!(o, "\n### {} — **{}**\n", md(s(d, "name")), s(d, "status"));
                    for p in arr(d, "problems") {
                        let _ = writeln!(o, "- {}", md(p.as_str().unwrap_or("")));
                    }
                    let _ = writeln!(o, "\nIdentity: {}", md(&identity_text(d)));
                    if let Some(l) = d.get("latency_ms").filter(|l| !l.is_null()) {
                        let rtts: Vec<f64> = arr(d, "samples")
                            .iter()
                            .filter(|x| x["error"].is_null())
                            .filter_map(|x| x["rtt_ms"].as_f64())
                            .collect();
                        let _ = writeln!(
                            o,
                            "\nResponse time min/p50/p95/max {}/{}/{}/{} ms `{}`",
                            val(&l["min"]),
                            val(&l["p50"]),
                            val(&l["p95"]),
                            val(&l["max"]),
                            sparkline(&rtts)
                        );
                    }
                    for p in moved_points(d) {
                        let t: Vec<f64> = arr(p, "trend").iter().filter_map(Json::as_f64).collect();
                        let _ = writeln!(
                            o,
                            "- trend {}: {} → {} {} `{}`",
                            md(s(p, "name")),
                            val(&json!(t[0])),
                            val(&json!(t[t.len() - 1])),
                            md(s(p, "unit")),
                            sparkline(&t)
                        );
                    }
                    let drift = drift_rows(d);
                    if !drift.is_empty() {
                        md_diff_table(&mut o, &drift);
                    }
                }
            }
            "poll" => {
                let st = &doc["statistics"];
                let _ = writeln!(
                    o,
                    "\n## Poll of `{}` — **{}**\n",
                    md(s(doc, "target")),
                    s(doc, "verdict")
                );
                let _ = writeln!(
                    o,
                    "{}. Command: `{}`\n",
                    md(s(doc, "summary")),
                    s(doc, "command").replace('`', "'")
                );
                let rtts: Vec<f64> = arr(doc, "samples")
                    .iter()
                    .filter(|x| x["error"].is_null())
                    .filter_map(|x| x["rtt_ms"].as_f64())
                    .collect();
                let rtt = &st["rtt_ms"];
                let _ = writeln!(
                    o,
                    "Round trip min/p50/p95/max {}/{}/{}/{} ms `{}`",
                    val(&rtt["min"]),
                    val(&rtt["p50"]),
                    val(&rtt["p95"]),
                    val(&rtt["max"]),
                    sparkline(&rtts)
                );
                if let Some(m) = st["errors"].as_object().filter(|m| !m.is_empty()) {
                    let _ = writeln!(
                        o,
                        "\nErrors: {}",
                        md(&m
                            .iter()
                            .map(|(k, v)| format!("{k} {v}"))
                            .collect::<Vec<_>>()
                            .join(", "))
                    );
                }
                for p in moved_points(doc) {
                    let t: Vec<f64> = arr(p, "trend").iter().filter_map(Json::as_f64).collect();
                    let _ = writeln!(
                        o,
                        "- trend {}: {} → {} {} `{}`",
                        md(s(p, "name")),
                        val(&json!(t[0])),
                        val(&json!(t[t.len() - 1])),
                        md(s(p, "unit")),
                        sparkline(&t)
                    );
                }
            }
            "diff" => {
                let df = &doc["diff"];
                let _ = writeln!(
                    o,
                    "\n## Drift of {} — **{}**\n",
                    md(s(df, "baseline_target")),
                    s(doc, "verdict")
                );
                let _ = writeln!(
                    o,
                    "Baseline of {} vs {}: {}. Command: `{}`",
                    s(df, "baseline_taken_at"),
                    s(df, "current_taken_at"),
                    md(s(doc, "summary")),
                    s(doc, "command").replace('`', "'")
                );
                if let Some(Json::Object(ch)) = df.get("identity_changes") {
                    for (k, v) in ch {
                        let _ = writeln!(
                            o,
                            "\n**Identity changed:** {}: {} → {}",
                            md(k),
                            md(&val(&v[0])),
                            md(&val(&v[1]))
                        );
                    }
                }
                let rows: Vec<&Json> = arr(df, "rows")
                    .iter()
                    .filter(|r| !matches!(s(r, "verdict"), "unchanged" | "ignored"))
                    .collect();
                md_diff_table(&mut o, &rows);
            }
            _ => {}
        }
    }
    o.push_str("\n---\nCommands:\n");
    for d in docs {
        let _ = writeln!(
            o,
            "- `{}` at {} (plcprobe {})",
            s(d, "command").replace('`', "'"),
            s(d, "generated_at"),
            s(d, "tool_version")
        );
    }
    o
}

/// Render for an output path by its extension.
pub fn render_for_path(path: &Path, docs: &[Json]) -> anyhow::Result<Vec<u8>> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("html" | "htm") => Ok(render_html(docs).into_bytes()),
        Some("md" | "markdown") => Ok(render_markdown(docs).into_bytes()),
        Some("json") => {
            let mut v = serde_json::to_vec_pretty(
                &json!({"format": "plcprobe.report/1", "verdict": overall(docs), "tool_version": env!("CARGO_PKG_VERSION"), "inputs": docs}),
            )?;
            v.push(b'\n');
            Ok(v)
        }
        _ => anyhow::bail!(
            "{}: the report format follows the extension; use .html, .md or .json",
            path.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_device_text() {
        assert_eq!(esc("<script>&\"'"), "&lt;script&gt;&amp;&quot;&#39;");
        assert_eq!(esc("a\u{1b}[31m"), "a\\u{1b}[31m");
        assert_eq!(md("a|b`c"), "a\\|b\\`c");
    }

    #[test]
    fn chart_has_gaps_and_marks_failures() {
        let frame = ChartFrame {
            size: (640.0, 200.0),
            x_labels: ("1", "5"),
        };
        let svg = svg_chart(
            &[
                (0.0, Some(1.0)),
                (1.0, Some(2.0)),
                (2.0, None),
                (3.0, Some(1.5)),
                (4.0, Some(1.0)),
            ],
            "t",
            "ms",
            &[(50.0, "warn")],
            &frame,
        );
        assert_eq!(
            svg.matches("<polyline").count(),
            2,
            "a failure breaks the line"
        );
        assert!(svg.contains('×'));
        assert!(!svg.contains("NaN"), "{svg}");
        let flat = svg_chart(
            &[(0.0, Some(5.0)), (1.0, Some(5.0))],
            "flat",
            "",
            &[],
            &frame,
        );
        assert!(!flat.contains("NaN") && !flat.contains("inf"), "{flat}");
    }

    #[test]
    fn sparkline_spans_the_bars() {
        assert_eq!(sparkline(&[0.0, 7.0]), "▁█");
        assert_eq!(sparkline(&[3.0, 3.0]), "▄▄");
        let long: Vec<f64> = (0..10_000)
            .map(|i| if i == 5_000 { 9.0 } else { 1.0 })
            .collect();
        let s = sparkline(&long);
        assert!(
            s.chars().count() <= 120 && s.contains('█'),
            "bounded, spike kept: {s}"
        );
    }
}
