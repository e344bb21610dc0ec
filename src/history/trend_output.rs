//! What `trend` says (docs/DESIGN.md §4d and §7): one row per series (and per identity change)
//! for the one row writer, the results document (`kind: "trend"`, the input of `report`), the
//! Nagios plugin output with perfdata, and the verdict line of the table.

use std::fmt::Write as _;

use serde_json::{json, Map, Value as Json};

use super::trend::{
    round_sig, span_text, Crossing, DeviceTrend, IdentityChange, SeriesTrend, Trend, ALPHA,
    ERROR_RATE_BINS, MAX_AHEAD_SPANS, MIN_RUNS, MIN_SPAN_MS,
};
use crate::{
    outcome::Outcome,
    report::{self, verdict_name, Rows},
};

const DAY_MS: f64 = 86_400_000.0;

/// Every row's columns (json, jsonl, csv).
pub const COLUMNS: &[&str] = &[
    "status",
    "device",
    "series",
    "unit",
    "runs",
    "span_d",
    "last",
    "level",
    "slope_per_d",
    "slope_low",
    "slope_high",
    "tau",
    "p_value",
    "spread",
    "trend",
    "beyond",
    "next_limit",
    "limit_value",
    "at",
    "eta_d",
    "eta_low_d",
    "eta_high_d",
    "note",
];

/// The columns a table shows.
pub const TABLE_COLUMNS: &[&str] = &[
    "status",
    "device",
    "series",
    "runs",
    "level",
    "slope_per_d",
    "trend",
    "eta_d",
    "note",
];

/// RFC 3339 UTC with milliseconds.
pub fn rfc3339_ms(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0).unsigned_abs());
    humantime::format_rfc3339_millis(t).to_string()
}

fn num(v: f64, digits: i32) -> Json {
    if v.is_finite() {
        json!(round_sig(v, digits))
    } else {
        Json::Null
    }
}

fn days(ms: i64) -> f64 {
    (ms as f64 / DAY_MS * 100.0).round() / 100.0
}

fn opt_days(ms: Option<i64>) -> Json {
    ms.map_or(Json::Null, |v| json!(days(v)))
}

/// The limit a row names: the one it is beyond, else the next one ahead.
fn shown_crossing(s: &SeriesTrend) -> Option<Crossing> {
    s.next.or(s.beyond)
}

/// One row per series of each device (only those whose verdict is not OK with `only_problems`),
/// then one per identity change.
pub fn trend_rows(t: &Trend, only_problems: bool) -> Rows {
    let mut rows = Rows::new(COLUMNS);
    for d in &t.devices {
        for s in &d.series {
            if only_problems && s.outcome == Outcome::Ok {
                continue;
            }
            rows.push(series_row(d, s));
        }
        if !only_problems {
            for c in &d.identity_changes {
                rows.push(identity_row(d, c));
            }
        }
    }
    rows
}

fn series_row(d: &DeviceTrend, s: &SeriesTrend) -> Vec<Json> {
    let fit = s.fit;
    let f = |g: fn(&super::theil_sen::SenFit) -> f64, digits| {
        fit.as_ref().map_or(Json::Null, |x| num(g(x), digits))
    };
    let next = s.next;
    let shown = shown_crossing(s);
    let eta = |t: Option<i64>| opt_days(t.map(|t| t - s.last_ms));
    let at = next
        .and_then(|n| n.at_ms)
        .or(s.beyond.and_then(|b| b.at_ms));
    vec![
        json!(verdict_name(s.outcome)),
        json!(d.name),
        json!(s.series),
        json!(s.unit),
        json!(s.runs),
        if s.runs > 0 {
            json!(days(s.last_ms - s.first_ms))
        } else {
            Json::Null
        },
        num(s.last_value, 6),
        num(s.level, 6),
        f(|x| x.slope, 4),
        f(|x| x.slope_low, 4),
        f(|x| x.slope_high, 4),
        f(|x| x.tau, 3),
        f(|x| x.p_value, 3),
        f(|x| x.spread, 4),
        json!(s.state.word()),
        s.beyond.map_or(Json::Null, |b| json!(b.limit.name())),
        next.map_or(Json::Null, |n| json!(n.limit.name())),
        shown.map_or(Json::Null, |c| num(c.value, 6)),
        at.map_or(Json::Null, |t| json!(rfc3339_ms(t))),
        eta(at),
        eta(next.and_then(|n| n.earliest_ms)),
        eta(next.and_then(|n| n.latest_ms)),
        json!(s.note),
    ]
}

fn change_text(c: &IdentityChange) -> String {
    c.changes
        .iter()
        .map(|(k, (b, a))| {
            format!(
                "{k} {} → {}",
                b.as_deref().unwrap_or("(none)"),
                a.as_deref().unwrap_or("(none)")
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn identity_row(d: &DeviceTrend, c: &IdentityChange) -> Vec<Json> {
    let mut row = vec![Json::Null; COLUMNS.len()];
    let set = |row: &mut Vec<Json>, col: &str, v: Json| {
        let i = COLUMNS.iter().position(|c| *c == col).expect("a column");
        row[i] = v;
    };
    set(&mut row, "status", json!("OK"));
    set(&mut row, "device", json!(d.name));
    set(&mut row, "series", json!("identity"));
    set(&mut row, "unit", json!(""));
    set(&mut row, "trend", json!("changed"));
    set(&mut row, "at", json!(rfc3339_ms(c.at_ms)));
    set(
        &mut row,
        "note",
        json!(format!(
            "identity changed at {}: {}",
            rfc3339_ms(c.at_ms),
            change_text(c)
        )),
    );
    row
}

/// The one-line summary: devices, series, window, and what was found.
pub fn summary(t: &Trend) -> String {
    let c = t.counts();
    let mut s = format!(
        "{} devices, {} series over {} ({} runs)",
        t.devices.len(),
        c.series,
        span_text(t.last_ms - t.first_ms),
        t.runs
    );
    let mut found = Vec::new();
    if c.beyond > 0 {
        found.push(format!("{} beyond a limit", c.beyond));
    }
    if c.within_horizon > 0 {
        found.push(format!(
            "{} crossing a limit within {}",
            c.within_horizon,
            span_text(t.horizon_ms)
        ));
    }
    if c.drifting > 0 {
        found.push(format!("{} drifting inside tolerance", c.drifting));
    }
    found.push(format!("{} trends", c.trends));
    found.push(format!("{} without trend", c.no_trend));
    if c.too_few > 0 {
        found.push(format!("{} with too few runs", c.too_few));
    }
    if c.identity_changes > 0 {
        found.push(format!("{} identity changes", c.identity_changes));
    }
    let _ = write!(s, ": {}", found.join(", "));
    s
}

/// The table's verdict line.
pub fn verdict_line(t: &Trend) -> String {
    format!("PLCPROBE {}: {}", verdict_name(t.outcome), summary(t))
}

fn crossing_json(c: &Crossing, last_ms: i64) -> Json {
    let t = |v: Option<i64>| v.map_or(Json::Null, |v| json!(rfc3339_ms(v)));
    let eta = |v: Option<i64>| opt_days(v.map(|v| v - last_ms));
    json!({
        "limit": c.limit.name(),
        "value": num(c.value, 12),
        "at": t(c.at_ms),
        "earliest": t(c.earliest_ms),
        "latest": t(c.latest_ms),
        "eta_d": eta(c.at_ms),
        "eta_low_d": eta(c.earliest_ms),
        "eta_high_d": eta(c.latest_ms),
    })
}

fn series_json(s: &SeriesTrend) -> Json {
    let fit = s.fit.map_or(Json::Null, |f| {
        json!({
            "slope_per_d": num(f.slope, 12),
            "slope_low": num(f.slope_low, 12),
            "slope_high": num(f.slope_high, 12),
            "intercept": num(f.intercept, 12),
            "tau": num(f.tau, 6),
            "s": f.s,
            "p_value": num(f.p_value, 6),
            "spread": num(f.spread, 12),
            "n": f.n,
            "exact": f.exact,
        })
    });
    json!({
        "series": s.series,
        "metric": s.metric.name(),
        "unit": s.unit,
        "status": verdict_name(s.outcome),
        "runs": s.runs,
        "first_at": (s.runs > 0).then(|| rfc3339_ms(s.first_ms)),
        "last_at": (s.runs > 0).then(|| rfc3339_ms(s.last_ms)),
        "last": num(s.last_value, 12),
        "trend": s.state.word(),
        "level": num(s.level, 12),
        "fit": fit,
        "beyond": s.beyond.map(|b| crossing_json(&b, s.last_ms)),
        "next": s.next.map(|n| crossing_json(&n, s.last_ms)),
        "drifting_inside_tolerance": s.drifting_inside_tolerance,
        "note": s.note,
    })
}

/// The results document of a trend (kind `trend`; the input of `report`). `store` names the
/// store as given.
pub fn results_doc(t: &Trend, store: &str, device: Option<&str>) -> Json {
    let mut doc = report::envelope("trend");
    doc.insert("verdict".into(), json!(verdict_name(t.outcome)));
    doc.insert("summary".into(), json!(summary(t)));
    doc.insert("store".into(), json!(store));
    doc.insert("device".into(), json!(device));
    doc.insert("since".into(), json!(rfc3339_ms(t.since_ms)));
    doc.insert("horizon_d".into(), json!(days(t.horizon_ms)));
    doc.insert("runs".into(), json!(t.runs));
    doc.insert(
        "first_run_at".into(),
        json!((t.runs > 0).then(|| rfc3339_ms(t.first_ms))),
    );
    doc.insert(
        "last_run_at".into(),
        json!((t.runs > 0).then(|| rfc3339_ms(t.last_ms))),
    );
    doc.insert(
        "method".into(),
        json!({
            "slope": "Theil-Sen, per day",
            "interval": "Sen, 95 %",
            "test": "Mann-Kendall, two-sided",
            "alpha": ALPHA,
            "min_runs": MIN_RUNS,
            "min_span_h": MIN_SPAN_MS / 3_600_000,
            "error_rate_bins": ERROR_RATE_BINS,
            "max_ahead_spans": MAX_AHEAD_SPANS,
        }),
    );
    let devices: Vec<Json> = t
        .devices
        .iter()
        .map(|d| {
            let changes: Vec<Json> = d
                .identity_changes
                .iter()
                .map(|c| {
                    let mut m = Map::new();
                    for (k, (b, a)) in &c.changes {
                        m.insert(k.clone(), json!({"from": b, "to": a}));
                    }
                    json!({"at": rfc3339_ms(c.at_ms), "changes": m})
                })
                .collect();
            json!({
                "name": d.name,
                "target": d.target,
                "status": verdict_name(d.outcome),
                "runs": d.runs,
                "identity_changes": changes,
                "series": d.series.iter().map(series_json).collect::<Vec<_>>(),
            })
        })
        .collect();
    doc.insert("devices".into(), Json::Array(devices));
    Json::Object(doc)
}

fn perf_label(s: &str) -> String {
    // Monitoring-plugins perfdata: labels in single quotes, a quote doubled, no '=' inside.
    format!("'{}'", s.replace('\'', "''").replace('=', "_"))
}

/// Nagios/Icinga plugin output: status line with the first problems, perfdata (per device the
/// latency p50 slope in ms/day; per series with a projection the days to its next limit, warning
/// below the horizon, critical below 0), then one line per series that is not OK.
pub fn nagios(t: &Trend) -> String {
    let bad: Vec<&SeriesTrend> = t
        .devices
        .iter()
        .flat_map(|d| &d.series)
        .filter(|s| s.outcome != Outcome::Ok)
        .collect();
    let named = |d: &DeviceTrend, s: &SeriesTrend| format!("{}/{}", d.name, s.series);
    let mut firsts = Vec::new();
    for d in &t.devices {
        for s in d.series.iter().filter(|s| s.outcome != Outcome::Ok) {
            if firsts.len() < 3 {
                firsts.push(format!("{}: {}", named(d, s), s.note));
            }
        }
    }
    let mut head = format!("trend of {}", summary(t));
    if !firsts.is_empty() {
        let more = bad.len() - firsts.len();
        let _ = write!(head, " - {}", firsts.join("; "));
        if more > 0 {
            let _ = write!(head, "; {more} more");
        }
    }
    let mut perf = Vec::new();
    let horizon_d = days(t.horizon_ms);
    for d in &t.devices {
        for s in &d.series {
            if s.metric == super::trend::Metric::LatencyP50 {
                if let Some(f) = s.fit {
                    perf.push(format!(
                        "{}={};;;;",
                        perf_label(&format!("{}_rtt_p50_slope", d.name)),
                        round_sig(f.slope, 4)
                    ));
                }
            }
            let eta = s
                .next
                .and_then(|n| n.at_ms)
                .or(s.beyond.and_then(|b| b.at_ms));
            if let Some(at) = eta {
                perf.push(format!(
                    "{}={};{horizon_d}:;0:;;",
                    perf_label(&format!("{}_{}_days_to_limit", d.name, s.series)),
                    days(at - s.last_ms)
                ));
            }
        }
    }
    let mut out = format!(
        "PLCPROBE {} - {head} | {}\n",
        verdict_name(t.outcome),
        perf.join(" ")
    );
    for d in &t.devices {
        for s in d.series.iter().filter(|s| s.outcome != Outcome::Ok) {
            let _ = writeln!(
                out,
                "{} {}: {}",
                verdict_name(s.outcome),
                named(d, s),
                s.note
            );
        }
        for c in &d.identity_changes {
            let _ = writeln!(
                out,
                "OK {}/identity: changed at {}: {}",
                d.name,
                rfc3339_ms(c.at_ms),
                change_text(c)
            );
        }
    }
    if t.outcome == Outcome::Unknown && bad.is_empty() {
        let _ = writeln!(
            out,
            "UNKNOWN: nothing to judge (every series has too few runs: {MIN_RUNS} over {} h needed)",
            MIN_SPAN_MS / 3_600_000
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::trend::{LimitKind, Metric, TrendState};

    fn sample() -> Trend {
        let s = SeriesTrend {
            series: "press.pressure".into(),
            metric: Metric::Point,
            unit: "bar".into(),
            runs: 100,
            first_ms: 0,
            last_ms: 10 * 86_400_000,
            last_value: 240.0,
            fit: None,
            level: 240.0,
            state: TrendState::Rising,
            beyond: None,
            next: Some(Crossing {
                limit: LimitKind::RangeHigh,
                value: 250.0,
                at_ms: Some(15 * 86_400_000),
                earliest_ms: Some(13 * 86_400_000),
                latest_ms: None,
            }),
            too_far: false,
            drifting_inside_tolerance: false,
            outcome: Outcome::Warning,
            note: "reaches range high (250) in 5.0 d [3.0 d–never]".into(),
        };
        Trend {
            since_ms: 0,
            horizon_ms: 14 * 86_400_000,
            runs: 100,
            first_ms: 0,
            last_ms: 10 * 86_400_000,
            devices: vec![DeviceTrend {
                name: "press".into(),
                target: "modbus://127.0.0.1/1".into(),
                runs: 100,
                series: vec![s],
                identity_changes: vec![IdentityChange {
                    at_ms: 5 * 86_400_000,
                    changes: [(
                        "revision".to_string(),
                        (Some("2.1".into()), Some("2.2".into())),
                    )]
                    .into(),
                }],
                outcome: Outcome::Warning,
            }],
            outcome: Outcome::Warning,
        }
    }

    #[test]
    fn rows_carry_the_projection_and_the_identity_change() {
        let r = trend_rows(&sample(), false);
        assert_eq!(r.rows.len(), 2);
        let col = |name: &str| COLUMNS.iter().position(|c| *c == name).unwrap();
        assert_eq!(r.rows[0][col("eta_d")], json!(5.0));
        assert_eq!(r.rows[0][col("eta_low_d")], json!(3.0));
        assert_eq!(r.rows[0][col("eta_high_d")], Json::Null);
        assert_eq!(r.rows[0][col("at")], json!("1970-01-16T00:00:00.000Z"));
        assert_eq!(r.rows[1][col("series")], json!("identity"));
        assert_eq!(
            r.rows[1][col("note")],
            json!("identity changed at 1970-01-06T00:00:00.000Z: revision 2.1 → 2.2")
        );
        assert_eq!(trend_rows(&sample(), true).rows.len(), 1);
    }

    #[test]
    fn nagios_names_the_problem_and_gives_days_to_the_limit() {
        let n = nagios(&sample());
        let first = n.lines().next().unwrap();
        assert!(first.starts_with("PLCPROBE WARNING - trend of 1 devices, 1 series over 10.0 d (100 runs): 1 crossing a limit within 14.0 d"), "{n}");
        assert!(
            first.contains("press/press.pressure: reaches range high (250) in 5.0 d"),
            "{n}"
        );
        assert!(
            first.ends_with("| 'press_press.pressure_days_to_limit'=5;14:;0:;;"),
            "{n}"
        );
        assert!(n.contains("\nWARNING press/press.pressure: reaches"), "{n}");
        assert!(
            n.contains(
                "\nOK press/identity: changed at 1970-01-06T00:00:00.000Z: revision 2.1 → 2.2\n"
            ),
            "{n}"
        );
    }

    #[test]
    fn the_document_has_the_common_head() {
        let d = results_doc(&sample(), "line1.db", None);
        assert_eq!(d["format"], json!("plcprobe.results/1"));
        assert_eq!(d["kind"], json!("trend"));
        assert_eq!(d["verdict"], json!("WARNING"));
        assert_eq!(d["devices"][0]["series"][0]["next"]["eta_d"], json!(5.0));
        assert_eq!(
            d["devices"][0]["identity_changes"][0]["changes"]["revision"],
            json!({"from": "2.1", "to": "2.2"})
        );
    }
}
