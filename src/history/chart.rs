//! What a report over a history store draws: each device's latency and error-rate series and
//! every point that moved, thinned to at most [`MAX_POINTS`] per chart, with the limits the
//! trend judged against (tolerance band around the baseline, `range`, latency and error-rate
//! thresholds). They are added to a `trend` results document (`chart` beside each series that
//! is drawn), so that the report stays a rendering of documents: `report` over a store and
//! `report` of a saved `trend --format json` draw the same charts when the document has them.
//!
//! Thinning: the window is cut into [`MAX_POINTS`] equal spans of time; each span with values
//! gives one point at the middle of its runs' times, the median of its values (the error rate:
//! failed ÷ sent over the span). A median keeps a drift's shape and drops lone spikes, as the
//! trend itself does.

use serde_json::{json, Value as Json};

use super::model::{DeviceSeries, History};

/// At most this many points per chart.
pub const MAX_POINTS: usize = 300;

/// Add a `chart` to each series of `doc` (a `trend` results document made from `history`)
/// that a report draws: latency p50 and p95 and the error rate of every device, and each
/// point whose trend rises or falls or that is beyond a limit.
pub fn add_charts(doc: &mut Json, history: &History) {
    let times: Vec<i64> = history.runs.iter().map(|r| r.started_ms).collect();
    let Some(devices) = doc.get_mut("devices").and_then(Json::as_array_mut) else {
        return;
    };
    for d in devices {
        let Some(dev) = d
            .get("name")
            .and_then(Json::as_str)
            .and_then(|n| history.devices.iter().find(|x| x.name == n))
        else {
            continue;
        };
        let Some(series) = d.get_mut("series").and_then(Json::as_array_mut) else {
            continue;
        };
        for s in series {
            if let Some(chart) = chart_of(s, dev, &times) {
                s["chart"] = chart;
            }
        }
    }
}

/// The chart of one series of `dev`, if a report draws it.
fn chart_of(s: &Json, dev: &DeviceSeries, times: &[i64]) -> Option<Json> {
    let name = s.get("series").and_then(Json::as_str)?;
    let metric = s.get("metric").and_then(Json::as_str).unwrap_or("point");
    let t: Vec<i64> = dev.runs.iter().map(|&i| times[i as usize]).collect();
    let lim = dev.limits;
    let (xy, band, limits) = match metric {
        "latency_p50_ms" | "latency_p95_ms" => {
            let v = if metric == "latency_p50_ms" {
                &dev.latency_p50_ms
            } else {
                &dev.latency_p95_ms
            };
            (
                thin(&t, v, median),
                None,
                vec![
                    ("latency_warn", lim.latency_warn_ms),
                    ("latency_crit", lim.latency_crit_ms),
                ],
            )
        }
        "error_rate" => (
            // A span's rate is its failures over its requests, not a median of rates.
            thin_rate(&t, &dev.failed, &dev.sent),
            None,
            vec![
                ("error_rate_warn", lim.error_rate_warn),
                ("error_rate_crit", lim.error_rate_crit),
            ],
        ),
        _ => {
            let moved = matches!(
                s.get("trend").and_then(Json::as_str),
                Some("rising" | "falling")
            ) || s.get("beyond").is_some_and(|b| !b.is_null());
            if !moved {
                return None;
            }
            let p = dev.points.iter().find(|p| p.name == name)?;
            let band = p
                .baseline
                .zip(p.tolerance)
                .map(|(b, tol)| [b - tol, b + tol]);
            let mut limits = Vec::new();
            if let Some([lo, hi]) = p.range {
                limits.push(("range low", lo));
                limits.push(("range high", hi));
            }
            (thin(&t, &p.values, median), band, limits)
        }
    };
    if xy.is_empty() {
        return None;
    }
    Some(json!({
        "t": xy.iter().map(|p| p.0).collect::<Vec<_>>(),
        "v": xy.iter().map(|p| p.1).collect::<Vec<_>>(),
        "band": band,
        "limits": limits
            .iter()
            .filter(|(_, v)| v.is_finite())
            .map(|(n, v)| json!({"name": n, "value": v}))
            .collect::<Vec<_>>(),
    }))
}

/// The span (of [`MAX_POINTS`] over the series' first to last time) each time falls in.
fn spans(t: &[i64]) -> impl Fn(i64) -> usize {
    let (first, last) = (
        t.first().copied().unwrap_or(0),
        t.last().copied().unwrap_or(0),
    );
    let width = ((last - first) as f64 / MAX_POINTS as f64).max(1.0);
    move |x| (((x - first) as f64 / width) as usize).min(MAX_POINTS - 1)
}

/// (time, value) per span that has numbers: the middle of its times, `pick` of its values.
fn thin(t: &[i64], v: &[f64], pick: impl Fn(&mut [f64]) -> f64) -> Vec<(i64, f64)> {
    let span_of = spans(t);
    let mut out = Vec::new();
    let mut vals: Vec<f64> = Vec::new();
    let mut span_times: Vec<i64> = Vec::new();
    let mut current = usize::MAX;
    let flush = |vals: &mut Vec<f64>, span_times: &mut Vec<i64>, out: &mut Vec<(i64, f64)>| {
        if !vals.is_empty() {
            let mid = span_times[span_times.len() / 2];
            out.push((mid, pick(vals)));
        }
        vals.clear();
        span_times.clear();
    };
    for (&x, &y) in t.iter().zip(v) {
        let k = span_of(x);
        if k != current {
            flush(&mut vals, &mut span_times, &mut out);
            current = k;
        }
        if y.is_finite() {
            vals.push(y);
            span_times.push(x);
        }
    }
    flush(&mut vals, &mut span_times, &mut out);
    out
}

/// Error rate per span: failures over requests (`failed` and `sent` parallel to `t`).
fn thin_rate(t: &[i64], failed: &[u32], sent: &[u32]) -> Vec<(i64, f64)> {
    let span_of = spans(t);
    let mut out = Vec::new();
    let (mut f, mut n, mut times) = (0u64, 0u64, Vec::new());
    let mut current = usize::MAX;
    for ((&x, &f_i), &n_i) in t.iter().zip(failed).zip(sent) {
        let k = span_of(x);
        if k != current {
            if n > 0 {
                out.push((times[times.len() / 2], f as f64 / n as f64));
            }
            (f, n) = (0, 0);
            times.clear();
            current = k;
        }
        if n_i > 0 {
            f += u64::from(f_i);
            n += u64::from(n_i);
            times.push(x);
        }
    }
    if n > 0 {
        out.push((times[times.len() / 2], f as f64 / n as f64));
    }
    out
}

/// Median of finite values (sorts them).
fn median(v: &mut [f64]) -> f64 {
    v.sort_unstable_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        f64::midpoint(v[n / 2 - 1], v[n / 2])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::model::{DeviceLimits, PointSeries, Run};

    fn history(n: usize) -> History {
        let runs: Vec<Run> = (0..n)
            .map(|i| Run {
                id: i as i64,
                started_ms: i as i64 * 300_000,
                plan: "plan.toml".into(),
                tool_version: "0".into(),
                verdict: "OK".into(),
                host: "h".into(),
            })
            .collect();
        let dev = DeviceSeries {
            name: "press".into(),
            runs: (0..n as u32).collect(),
            sent: vec![10; n],
            failed: (0..n).map(|i| u32::from(i % 10 == 0)).collect(),
            latency_p50_ms: (0..n).map(|i| 5.0 + i as f64 * 0.01).collect(),
            latency_p95_ms: vec![9.0; n],
            limits: DeviceLimits {
                latency_warn_ms: 50.0,
                latency_crit_ms: 200.0,
                error_rate_warn: 0.0,
                error_rate_crit: 0.2,
            },
            points: vec![PointSeries {
                name: "pressure".into(),
                values: (0..n).map(|i| 100.0 + i as f64).collect(),
                range: Some([0.0, 10_000.0]),
                baseline: Some(100.0),
                tolerance: Some(5.0),
                ..PointSeries::default()
            }],
            ..DeviceSeries::default()
        };
        History {
            runs,
            devices: vec![dev],
        }
    }

    fn doc(trend: &str) -> Json {
        json!({"devices": [{"name": "press", "series": [
            {"series": "latency_p50_ms", "metric": "latency_p50_ms", "trend": "rising"},
            {"series": "error_rate", "metric": "error_rate", "trend": "no trend"},
            {"series": "pressure", "metric": "point", "trend": trend, "beyond": null},
        ]}]})
    }

    #[test]
    fn long_series_are_thinned_to_the_limit_and_keep_their_ends() {
        let h = history(8640);
        let mut d = doc("rising");
        add_charts(&mut d, &h);
        let s = &d["devices"][0]["series"];
        for i in 0..3 {
            let t = s[i]["chart"]["t"].as_array().unwrap();
            assert!(
                t.len() <= MAX_POINTS && t.len() >= MAX_POINTS - 2,
                "{}",
                t.len()
            );
        }
        // The rate of a span is failures over requests: one run in ten fails one of ten.
        let rates: Vec<f64> = s[1]["chart"]["v"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let mean = rates.iter().sum::<f64>() / rates.len() as f64;
        assert!((mean - 0.01).abs() < 0.002, "{mean}");
        // A rising line stays rising, first to last.
        let v = s[2]["chart"]["v"].as_array().unwrap();
        assert!(v[0].as_f64().unwrap() < 200.0 && v[v.len() - 1].as_f64().unwrap() > 8500.0);
        assert_eq!(s[2]["chart"]["band"], json!([95.0, 105.0]));
        assert_eq!(s[0]["chart"]["limits"][0]["value"], json!(50.0));
    }

    #[test]
    fn a_point_that_did_not_move_gets_no_chart() {
        let h = history(50);
        let mut d = doc("no trend");
        add_charts(&mut d, &h);
        assert!(d["devices"][0]["series"][2].get("chart").is_none());
        assert!(d["devices"][0]["series"][0].get("chart").is_some());
    }
}
