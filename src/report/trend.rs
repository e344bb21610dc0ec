//! The section of a `trend` results document (from `trend --format json`, or made by `report`
//! over a history store): the window, a device table, and per device its identity (firmware)
//! changes, the series that move or are beyond a limit with their projected crossings, and —
//! where the document carries them (`chart`, see `history::chart`) — the charts: latency p50
//! and p95 and the error rate over the window with their thresholds, and each point that moved
//! with its tolerance band around the baseline, its range limits, the fitted line and its
//! projection to the crossing (inline SVG, as every chart of a report).

use std::fmt::Write as _;

use serde_json::Value as Json;

use super::markup::{
    arr, badge, esc, fmt_tick, html_heading, md, md_heading, s, sparkline, val, Column, Entry,
    Table,
};

const DAY_MS: f64 = 86_400_000.0;

/// Milliseconds since the epoch of an RFC 3339 time of the document.
fn ms(t: &Json) -> Option<f64> {
    let t = t.as_str()?;
    chrono::DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|d| d.timestamp_millis() as f64)
}

/// "2026-11-27 14:05" of a document time (UTC, as written).
fn short_time(t: &Json) -> String {
    let t = t.as_str().unwrap_or("");
    t.get(..16).unwrap_or(t).replace('T', " ")
}

/// Whether a series is worth a line of its own: it moves, or it is beyond a limit, or it has
/// a crossing ahead.
fn notable(se: &Json) -> bool {
    matches!(s(se, "trend"), "rising" | "falling")
        || !se["beyond"].is_null()
        || !se["next"].is_null()
        || s(se, "status") != "OK"
}

/// When the series crosses next, in words.
fn crossing_text(se: &Json) -> String {
    if let Some(b) = se.get("beyond").filter(|b| !b.is_null()) {
        return format!("beyond {} ({})", s(b, "limit"), val(&b["value"]));
    }
    let Some(n) = se.get("next").filter(|n| !n.is_null()) else {
        return String::new();
    };
    let eta = |k: &str| n[k].as_f64().map(|d| format!("{d:.1}"));
    match (eta("eta_d"), eta("eta_low_d"), eta("eta_high_d")) {
        (Some(d), Some(lo), Some(hi)) => format!(
            "{} ({}) in {d} d ({lo}–{hi} d), {}",
            s(n, "limit"),
            val(&n["value"]),
            short_time(&n["at"])
        ),
        (Some(d), ..) => format!(
            "{} ({}) in {d} d, {}",
            s(n, "limit"),
            val(&n["value"]),
            short_time(&n["at"])
        ),
        _ => format!("{} ({})", s(n, "limit"), val(&n["value"])),
    }
}

/// How sure the line is, in words: runs, Kendall's tau and the p-value.
fn fit_text(se: &Json) -> String {
    let f = &se["fit"];
    if f.is_null() {
        return format!("{} runs", val(&se["runs"]));
    }
    format!(
        "{} runs, τ {}, p {}",
        val(&se["runs"]),
        f["tau"]
            .as_f64()
            .map_or(String::new(), |t| format!("{t:.2}")),
        f["p_value"]
            .as_f64()
            .map_or(String::new(), |p| if p < 1e-4 {
                "< 0.0001".into()
            } else {
                format!("{p:.4}")
            })
    )
}

fn slope_text(se: &Json) -> String {
    se["fit"]["slope_per_d"]
        .as_f64()
        .map_or(String::new(), |v| {
            format!("{} {}/d", fmt_tick(v, v.abs() / 100.0), s(se, "unit"))
                .trim()
                .to_string()
        })
}

fn device_table(doc: &Json) -> Table {
    Table::of(
        arr(doc, "devices"),
        &[
            (Column::text("status"), |d| {
                Entry::Verdict(s(d, "status").into())
            }),
            (Column::text("device"), |d| Entry::text(s(d, "name"))),
            (Column::num("runs"), |d| Entry::raw(&d["runs"])),
            (Column::text("moving"), |d| {
                Entry::text(
                    arr(d, "series")
                        .iter()
                        .filter(|se| matches!(s(se, "trend"), "rising" | "falling"))
                        .map(|se| format!("{} {}", s(se, "series"), s(se, "trend")))
                        .collect::<Vec<_>>()
                        .join(", "),
                )
            }),
            (Column::text("firmware / identity changes"), |d| {
                Entry::Raw(arr(d, "identity_changes").len().to_string())
            }),
        ],
    )
}

fn series_table(d: &Json) -> Table {
    Table::of(
        arr(d, "series").iter().filter(|se| notable(se)),
        &[
            (Column::text("status"), |se| {
                Entry::Verdict(s(se, "status").into())
            }),
            (Column::text("series"), |se| Entry::text(s(se, "series"))),
            (Column::text("trend"), |se| {
                let drift = se["drifting_inside_tolerance"] == Json::Bool(true);
                Entry::text(if drift {
                    format!("{}, drifting inside tolerance", s(se, "trend"))
                } else {
                    s(se, "trend").to_string()
                })
            }),
            (Column::num("level"), |se| {
                Entry::Quantity(val(&se["level"]), s(se, "unit").to_string())
            }),
            (Column::num("slope"), |se| Entry::text(slope_text(se))),
            (Column::text("limit crossed / projected"), |se| {
                Entry::text(crossing_text(se))
            }),
            (Column::text("fit"), |se| Entry::text(fit_text(se))),
            (Column::text("note").html_only(), |se| {
                Entry::text(s(se, "note"))
            }),
        ],
    )
}

/// Identity changes, one line each.
fn identity_lines(d: &Json) -> Vec<String> {
    arr(d, "identity_changes")
        .iter()
        .map(|c| {
            let what = c["changes"].as_object().map_or(String::new(), |m| {
                m.iter()
                    .map(|(k, v)| {
                        let side = |x: &Json| x.as_str().unwrap_or("—").to_string();
                        format!("{k} {} → {}", side(&v["from"]), side(&v["to"]))
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            });
            format!("{}: {what}", short_time(&c["at"]))
        })
        .collect()
}

/// The HTML section.
pub(crate) fn html(o: &mut String, doc: &Json) {
    let meta = format!(
        "{} · {} runs from {} to {} · crossings within {} d warn",
        esc(s(doc, "summary")),
        val(&doc["runs"]),
        esc(&short_time(&doc["first_run_at"])),
        esc(&short_time(&doc["last_run_at"])),
        val(&doc["horizon_d"])
    );
    html_heading(o, doc, "Trends", &esc(s(doc, "store")), &meta);
    device_table(doc).html(o);
    for d in arr(doc, "devices") {
        let _ = write!(
            o,
            "<section class=\"device\"><h3>{} {} <span class=\"meta mono\">{}</span></h3>",
            badge(s(d, "status")),
            esc(s(d, "name")),
            esc(s(d, "target"))
        );
        let ids = identity_lines(d);
        if !ids.is_empty() {
            o.push_str("<ul class=\"problems\">");
            for l in ids {
                let _ = write!(o, "<li>identity changed {}</li>", esc(&l));
            }
            o.push_str("</ul>");
        }
        let table = series_table(d);
        if table.is_empty() {
            o.push_str(
                "<p class=\"meta\">nothing moves: every series is flat or too short to judge</p>",
            );
        } else {
            table.html(o);
        }
        let charts: Vec<&Json> = arr(d, "series")
            .iter()
            .filter(|se| se.get("chart").is_some_and(|c| !c.is_null()))
            .collect();
        if !charts.is_empty() {
            o.push_str("<div class=\"trends\">");
            for se in charts {
                o.push_str(&trend_svg(se, doc["horizon_d"].as_f64().unwrap_or(14.0)));
            }
            o.push_str("</div>");
        }
        o.push_str("</section>");
    }
}

/// The Markdown section: the tables, and a sparkline per charted series.
pub(crate) fn markdown(o: &mut String, doc: &Json) {
    let title = format!("Trends: {}", md(s(doc, "store")));
    let meta = format!(
        "{} runs from {} to {}; a crossing projected within {} days is a warning",
        val(&doc["runs"]),
        short_time(&doc["first_run_at"]),
        short_time(&doc["last_run_at"]),
        val(&doc["horizon_d"])
    );
    md_heading(o, doc, &title, &meta);
    o.push('\n');
    device_table(doc).markdown(o);
    for d in arr(doc, "devices") {
        let _ = writeln!(o, "\n### {} — **{}**\n", md(s(d, "name")), s(d, "status"));
        for l in identity_lines(d) {
            let _ = writeln!(o, "- identity changed {}", md(&l));
        }
        let table = series_table(d);
        if table.is_empty() {
            let _ = writeln!(
                o,
                "Nothing moves: every series is flat or too short to judge."
            );
        } else {
            o.push('\n');
            table.markdown(o);
        }
        for se in arr(d, "series") {
            if let Some(v) = se["chart"]["v"].as_array() {
                let vals: Vec<f64> = v.iter().filter_map(Json::as_f64).collect();
                let _ = writeln!(o, "\n{}: `{}`", md(s(se, "series")), sparkline(&vals));
            }
        }
    }
}

/// One series' chart: its (thinned) values over time, the tolerance band, the limits near the
/// values, and the fitted line carried on to its projected crossing (within the horizon).
fn trend_svg(se: &Json, horizon_d: f64) -> String {
    let c = &se["chart"];
    let t: Vec<f64> = arr(c, "t").iter().filter_map(Json::as_f64).collect();
    let v: Vec<f64> = arr(c, "v").iter().filter_map(Json::as_f64).collect();
    let n = t.len().min(v.len());
    let (w, h) = (320.0, 170.0);
    let (l, r, top, b) = (58.0, 10.0, 22.0, 28.0);
    let mut o = String::new();
    let title = format!("{} · {}", s(se, "series"), s(se, "trend"));
    if n == 0 {
        return o;
    }
    let last_t = ms(&se["last_at"]).unwrap_or(t[n - 1]);
    // The line: level at the last run, slope per day.
    let line = se["fit"]["slope_per_d"]
        .as_f64()
        .zip(se["level"].as_f64())
        .filter(|_| matches!(s(se, "trend"), "rising" | "falling"));
    let at = |x: f64| line.map(|(k, lv)| lv + k * (x - last_t) / DAY_MS);
    let crossing = se["next"]["at"]
        .as_str()
        .and_then(|_| ms(&se["next"]["at"]));
    let x0 = t[0];
    let mut x1 = t[n - 1].max(last_t);
    if line.is_some() {
        let ahead = crossing.map_or(x1 + 0.15 * (x1 - x0), |c| {
            c.min(last_t + horizon_d * DAY_MS)
        });
        x1 = x1.max(ahead);
    }
    let band = c["band"]
        .as_array()
        .and_then(|b| Some((b.first()?.as_f64()?, b.get(1)?.as_f64()?)));
    let limits: Vec<(f64, String)> = arr(c, "limits")
        .iter()
        .filter_map(|x| Some((x["value"].as_f64()?, s(x, "name").to_string())))
        .collect();
    let (mut y0, mut y1) = v[..n]
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, z), &y| {
            (a.min(y), z.max(y))
        });
    if let Some(e) = at(x1) {
        y0 = y0.min(e);
        y1 = y1.max(e);
    }
    let near = 0.35 * (y1 - y0).max(y1.abs().max(y0.abs()) * 0.05);
    let shown: Vec<&(f64, String)> = limits
        .iter()
        .filter(|(y, _)| *y >= y0 - near && *y <= y1 + near)
        .collect();
    for (y, _) in &shown {
        y0 = y0.min(*y);
        y1 = y1.max(*y);
    }
    if let Some((lo, hi)) = band {
        if lo >= y0 - near && hi <= y1 + near {
            y0 = y0.min(lo);
            y1 = y1.max(hi);
        }
    }
    if (y1 - y0).abs() < 1e-12 {
        y0 -= 1.0_f64.max(y0.abs() * 0.05);
        y1 += 1.0_f64.max(y1.abs() * 0.05);
    }
    let pad = (y1 - y0) * 0.08;
    let (y0, y1) = (y0 - pad, y1 + pad);
    let span = (x1 - x0).max(1.0);
    let px = |x: f64| l + (x - x0) / span * (w - l - r);
    let py = |y: f64| top + (1.0 - (y.clamp(y0, y1) - y0) / (y1 - y0)) * (h - top - b);
    let _ = write!(o, "<svg class=\"chart\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{}\">", esc(&title));
    let unit = s(se, "unit");
    let heading = if unit.is_empty() {
        title.clone()
    } else {
        format!("{title} ({unit})")
    };
    let _ = write!(
        o,
        "<text x=\"{l}\" y=\"14\" class=\"ct\">{}</text>",
        esc(&heading)
    );
    if let Some((lo, hi)) = band {
        let _ = write!(
            o,
            "<rect x=\"{l}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" class=\"band\"><title>tolerance {} … {}</title></rect>",
            py(hi),
            w - l - r,
            (py(lo) - py(hi)).max(0.5),
            esc(&fmt_tick(lo, y1 - y0)),
            esc(&fmt_tick(hi, y1 - y0))
        );
    }
    let _ = write!(o, "<line x1=\"{l}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" class=\"ax\"/><line x1=\"{l}\" y1=\"{top}\" x2=\"{l}\" y2=\"{}\" class=\"ax\"/>", h - b, w - r, h - b, h - b);
    for frac in [0.0, 0.5, 1.0] {
        let y = y0 + (y1 - y0) * frac;
        let _ = write!(
            o,
            "<text x=\"{}\" y=\"{:.1}\" class=\"tk\" text-anchor=\"end\">{}</text>",
            l - 4.0,
            py(y) + 3.0,
            esc(&fmt_tick(y, y1 - y0))
        );
    }
    for (y, name) in shown {
        let _ = write!(o, "<line x1=\"{l}\" y1=\"{:.1}\" x2=\"{}\" y2=\"{:.1}\" class=\"th\"/><text x=\"{}\" y=\"{:.1}\" class=\"tk\" text-anchor=\"end\">{}</text>", py(*y), w - r, py(*y), w - r, py(*y) - 3.0, esc(name));
    }
    let pts: Vec<String> = (0..n)
        .map(|i| format!("{:.1},{:.1}", px(t[i]), py(v[i])))
        .collect();
    if pts.len() == 1 {
        let _ = write!(
            o,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" class=\"pt\"/>",
            px(t[0]),
            py(v[0])
        );
    } else {
        let _ = write!(o, "<polyline points=\"{}\" class=\"ln\"/>", pts.join(" "));
    }
    if let (Some(a), Some(z)) = (at(x0), at(x1)) {
        let _ = write!(
            o,
            "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" class=\"proj\"/>",
            px(x0),
            py(a),
            px(x1),
            py(z)
        );
    }
    if let Some(cx) = crossing.filter(|c| *c <= x1) {
        if let Some(cy) = at(cx) {
            let _ = write!(o, "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" class=\"cross\"><title>{}</title></circle>", px(cx), py(cy), esc(&crossing_text(se)));
        }
    }
    let day = |x: f64| {
        chrono::DateTime::from_timestamp_millis(x as i64)
            .map_or(String::new(), |d| d.format("%m-%d").to_string())
    };
    let _ = write!(o, "<text x=\"{l}\" y=\"{}\" class=\"tk\">{}</text><text x=\"{}\" y=\"{}\" class=\"tk\" text-anchor=\"end\">{}</text>", h - 8.0, day(x0), w - r, h - 8.0, day(x1));
    o.push_str("</svg>");
    o
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    fn doc() -> serde_json::Value {
        let (pressure, temperature) = series();
        json!({
            "format": "plcprobe.results/1", "kind": "trend", "verdict": "WARNING",
            "command": "plcprobe trend line1.db", "summary": "1 device", "store": "line1.db",
            "runs": 50, "first_run_at": "2026-09-21T09:46:40.000Z",
            "last_run_at": "2026-09-23T10:46:40.000Z", "horizon_d": 14.0,
            "devices": [{"name": "press <1>", "target": "modbus://127.0.0.1:5020/1",
                "status": "WARNING", "runs": 50,
                "identity_changes": [{"at": "2026-09-22T00:00:00.000Z",
                    "changes": {"MajorMinorRevision": {"from": "1.2", "to": "1.3"}}}],
                "series": [pressure, temperature]}]
        })
    }

    fn series() -> (serde_json::Value, serde_json::Value) {
        let t: Vec<i64> = (0..50).map(|i| 1_790_000_000_000 + i * 3_600_000).collect();
        let v: Vec<f64> = (0..50).map(|i| 100.0 + f64::from(i)).collect();
        let pressure = json!(
                    {"series": "pressure", "metric": "point", "unit": "bar", "status": "WARNING",
                     "runs": 50, "trend": "rising", "level": 149.0, "last_at": "2026-09-23T10:46:40.000Z",
                     "fit": {"slope_per_d": 24.0, "tau": 1.0, "p_value": 0.0},
                     "beyond": null, "drifting_inside_tolerance": false, "note": "",
                     "next": {"limit": "range high", "value": 200.0, "at": "2026-09-25T13:46:40.000Z",
                              "eta_d": 2.1, "eta_low_d": 1.9, "eta_high_d": 2.3},
                     "chart": {"t": t, "v": v, "band": [95.0, 105.0],
                               "limits": [{"name": "range high", "value": 200.0}]}});
        let temperature = json!(
                    {"series": "temperature", "metric": "point", "unit": "C", "status": "OK",
                     "runs": 50, "trend": "no trend", "level": 20.0, "fit": null,
                     "beyond": null, "next": null, "note": ""});
        (pressure, temperature)
    }

    #[test]
    fn a_moving_point_is_listed_and_drawn_with_its_band_limit_and_projection() {
        let mut o = String::new();
        super::html(&mut o, &doc());
        assert!(o.contains("press &lt;1&gt;"), "device text is escaped");
        assert!(o.contains("range high (200) in 2.1 d (1.9–2.3 d)"), "{o}");
        assert!(o.contains("class=\"band\"") && o.contains("class=\"proj\""));
        assert!(
            o.contains("class=\"cross\""),
            "the crossing is within the horizon"
        );
        assert!(o.contains("MajorMinorRevision 1.2 → 1.3"));
        assert!(
            !o.contains("temperature"),
            "a flat point has no line and no chart"
        );
        let mut m = String::new();
        super::markdown(&mut m, &doc());
        assert!(m.contains("| **WARNING** | pressure | rising |"), "{m}");
        assert!(m.contains("pressure: `"));
    }
}
