//! What a check run says: the results document (the input of `report`), the Nagios plugin
//! output with perfdata, the Prometheus textfile, the device rows, and a report file.

use std::{fmt::Write as _, path::Path, time::Duration};

use serde_json::{json, Value as Json};

use super::{
    plan::Plan,
    run::{ms, summary, DeviceCheck},
};
use crate::{
    outcome::Outcome,
    report::{self, verdict_name, Rows},
};

/// The results document of a check run (also the input of `report`).
pub fn results_doc(
    plan: &Plan,
    devices: &[DeviceCheck],
    outcome: Outcome,
    started: &str,
    elapsed: Duration,
) -> anyhow::Result<Json> {
    let mut doc = report::envelope("check");
    doc.insert("plan".into(), json!(plan.path.display().to_string()));
    doc.insert("started_at".into(), json!(started));
    doc.insert("duration_ms".into(), json!(ms(elapsed)));
    doc.insert("verdict".into(), json!(verdict_name(outcome)));
    doc.insert("summary".into(), json!(summary(devices)));
    doc.insert("devices".into(), serde_json::to_value(devices)?);
    Ok(Json::Object(doc))
}

fn perf_label(s: &str) -> String {
    // Monitoring-plugins perfdata: labels in single quotes, a quote doubled, no '=' inside.
    format!("'{}'", s.replace('\'', "''").replace('=', "_"))
}

/// Nagios/Icinga plugin output: status line, long text, perfdata.
pub fn nagios(devices: &[DeviceCheck], outcome: Outcome) -> String {
    let bad: Vec<String> = devices
        .iter()
        .filter(|d| d.outcome != Outcome::Ok)
        .map(|d| {
            format!(
                "{}: {}",
                d.name,
                d.problems.first().map_or("", String::as_str)
            )
        })
        .collect();
    let head = if bad.is_empty() {
        summary(devices)
    } else {
        format!("{} - {}", summary(devices), bad.join("; "))
    };
    let mut perf = Vec::new();
    for d in devices {
        let t = &d.thresholds;
        let s = |k: &str| t[k].as_f64().unwrap_or(0.0);
        if let Some(l) = &d.latency_ms {
            perf.push(format!(
                "{}={:.6}s;{:.6};{:.6};0;",
                perf_label(&format!("{}_rtt", d.name)),
                l.p50 / 1e3,
                s("latency_warn_ms") / 1e3,
                s("latency_crit_ms") / 1e3
            ));
        }
        perf.push(format!(
            "{}={:.1}%;{:.1};{:.1};0;100",
            perf_label(&format!("{}_errors", d.name)),
            d.error_rate * 100.0,
            s("error_rate_warn") * 100.0,
            s("error_rate_crit") * 100.0
        ));
        let oor = d
            .points
            .iter()
            .filter(|p| p.in_range == Some(false))
            .count();
        perf.push(format!(
            "{}={oor};;;0;{}",
            perf_label(&format!("{}_out_of_range", d.name)),
            d.points.len()
        ));
        if let Some(df) = &d.diff {
            perf.push(format!(
                "{}={};;;0;{}",
                perf_label(&format!("{}_drift", d.name)),
                df.counts.get("changed").copied().unwrap_or(0),
                df.rows.len()
            ));
        }
    }
    let mut out = format!(
        "PLCPROBE {} - {head} | {}\n",
        verdict_name(outcome),
        perf.join(" ")
    );
    for d in devices {
        let _ = writeln!(out, "{} {}: {}", d.status, d.name, d.problem_text());
    }
    out
}

fn prom_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Prometheus textfile-collector exposition, one metric family per check.
pub fn prometheus(devices: &[DeviceCheck]) -> String {
    let mut out = String::new();
    let lbl = |d: &DeviceCheck| {
        format!(
            "device=\"{}\",target=\"{}\"",
            prom_escape(&d.name),
            prom_escape(&d.target)
        )
    };
    let mut family = |name: &str, help: &str, rows: Vec<(String, f64)>| {
        if rows.is_empty() {
            return;
        }
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (l, v) in rows {
            let _ = writeln!(out, "{name}{{{l}}} {}", (v * 1e9).round() / 1e9);
        }
    };
    family(
        "plcprobe_check_status",
        "Verdict per device: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
        devices
            .iter()
            .map(|d| (lbl(d), f64::from(d.outcome.code())))
            .collect(),
    );
    family(
        "plcprobe_check_up",
        "1 when the device answered at all.",
        devices
            .iter()
            .map(|d| (lbl(d), f64::from(u8::from(d.reachable))))
            .collect(),
    );
    family(
        "plcprobe_check_latency_p50_seconds",
        "Median round trip of the short poll.",
        devices
            .iter()
            .filter_map(|d| Some((lbl(d), d.latency_ms.as_ref()?.p50 / 1e3)))
            .collect(),
    );
    family(
        "plcprobe_check_latency_max_seconds",
        "Slowest round trip of the short poll.",
        devices
            .iter()
            .filter_map(|d| Some((lbl(d), d.latency_ms.as_ref()?.max / 1e3)))
            .collect(),
    );
    family(
        "plcprobe_check_error_ratio",
        "Share of failed requests in the short poll.",
        devices.iter().map(|d| (lbl(d), d.error_rate)).collect(),
    );
    family(
        "plcprobe_check_points_out_of_range",
        "Points outside their profile range.",
        devices
            .iter()
            .map(|d| {
                (
                    lbl(d),
                    d.points
                        .iter()
                        .filter(|p| p.in_range == Some(false))
                        .count() as f64,
                )
            })
            .collect(),
    );
    family(
        "plcprobe_check_points_drifted",
        "Points beyond tolerance of the baseline.",
        devices
            .iter()
            .filter_map(|d| {
                Some((
                    lbl(d),
                    d.diff.as_ref()?.counts.get("changed").copied().unwrap_or(0) as f64,
                ))
            })
            .collect(),
    );
    family(
        "plcprobe_check_identity_changed",
        "1 when the FC43 identity differs from the baseline.",
        devices
            .iter()
            .filter_map(|d| {
                Some((
                    lbl(d),
                    f64::from(u8::from(!d.diff.as_ref()?.identity_changes.is_empty())),
                ))
            })
            .collect(),
    );
    family(
        "plcprobe_check_duration_seconds",
        "Time the device's check took.",
        devices
            .iter()
            .map(|d| (lbl(d), d.duration_ms / 1e3))
            .collect(),
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let _ = writeln!(out, "# HELP plcprobe_check_last_run_timestamp_seconds When this file was written.\n# TYPE plcprobe_check_last_run_timestamp_seconds gauge\nplcprobe_check_last_run_timestamp_seconds {now:.3}");
    out
}

/// One row per device (only those with a problem when `only_problems`).
pub fn device_rows(devices: &[DeviceCheck], only_problems: bool) -> Rows {
    let mut rows = Rows::new(&[
        "status",
        "device",
        "target",
        "rtt_p50_ms",
        "errors",
        "problems",
    ]);
    for d in devices
        .iter()
        .filter(|d| !only_problems || d.outcome != Outcome::Ok)
    {
        rows.push(vec![
            json!(d.status),
            json!(d.name),
            json!(d.target),
            d.latency_ms.as_ref().map_or(Json::Null, |l| json!(l.p50)),
            json!(format!("{}/{}", d.sent - d.received, d.sent)),
            json!(d.problems.join("; ")),
        ]);
    }
    rows
}

/// Write a report file whose format follows the extension (.html, .md, .json).
pub fn write_report(path: &Path, docs: &[Json]) -> anyhow::Result<()> {
    let bytes = crate::report::render::render_for_path(path, docs)?;
    crate::fsutil::write_atomic(path, &bytes)
}
