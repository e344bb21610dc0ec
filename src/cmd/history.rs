//! `history import STORE RESULTS.json…` and `history show STORE`: backfill a history store from
//! `check --results` files, and list what a store holds (one row per run and device).
//!
//! Import reads and checks every file before it opens the store, so a file that is not a check
//! results document stops the import with nothing written; the runs then go in batches, each one
//! transaction, and a run already in the store (same plan, same start) is skipped with a note.

use std::{io::Write as _, path::PathBuf, time::SystemTime};

use serde_json::{json, Value as Json};

use super::{Ctx, Outcome};
use crate::{
    cli::{HistoryAction, HistoryArgs},
    history::{
        model::History,
        record::RunRecord,
        store::{Recorded, Store},
    },
    outcome::{warn, Fail},
    report::{write_rows, Rows},
};

/// Runs per transaction in an import: large enough that a 8,640-file backfill is a few
/// commits, small enough that a failure midway keeps most of the work.
const BATCH: usize = 2000;

/// Run `history`.
pub async fn run(ctx: &Ctx, args: &HistoryArgs) -> anyhow::Result<Outcome> {
    match &args.action {
        HistoryAction::Import { store, results } => import(ctx, store, results).await,
        HistoryAction::Show {
            store,
            since,
            device,
            dump,
        } => show(ctx, store, *since, device.as_deref(), *dump).await,
    }
}

/// Read a results file into what one run adds to a store.
pub fn read_results(path: &std::path::Path, host: &str) -> anyhow::Result<RunRecord> {
    let bytes = std::fs::read(path)
        .map_err(|e| Fail::unknown(format!("cannot read {}: {e}", path.display())))?;
    let doc: Json = serde_json::from_slice(&bytes).map_err(|e| {
        Fail::unknown(format!(
            "{}:{}:{}: not valid JSON ({e}); give results files written by `check --results`",
            path.display(),
            e.line(),
            e.column()
        ))
    })?;
    Ok(RunRecord::from_doc(&doc, &path.display().to_string(), host)
        .map_err(|e| Fail::unknown(format!("{e}; nothing was imported")))?)
}

async fn import(ctx: &Ctx, target: &str, files: &[PathBuf]) -> anyhow::Result<Outcome> {
    // Results files do not name their host; an imported run's host is left empty unless the
    // document names one (it is not known which machine ran it).
    let mut runs = Vec::with_capacity(files.len());
    for f in files {
        runs.push((f, read_results(f, "")?));
    }
    let mut store = Store::open(target).await?;
    let (mut added, mut skipped, mut device_runs) = (0usize, 0usize, 0usize);
    let mut notes = 0usize;
    for batch in runs.chunks(BATCH) {
        let recs: Vec<RunRecord> = batch.iter().map(|(_, r)| r.clone()).collect();
        let done = store.record_runs(&recs).await?;
        for ((f, r), d) in batch.iter().zip(done) {
            match d {
                Recorded::Added => {
                    added += 1;
                    device_runs += r.devices.len();
                }
                Recorded::AlreadyThere => {
                    skipped += 1;
                    if notes < 10 && !ctx.quiet {
                        warn(format_args!(
                            "note: {}: the run of {} started {} is already in the store; skipped",
                            f.display(),
                            r.plan,
                            r.started_at
                        ));
                    }
                    notes += 1;
                }
            }
        }
    }
    if notes > 10 && !ctx.quiet {
        warn(format_args!(
            "note: {} more runs already in the store skipped",
            notes - 10
        ));
    }
    if !ctx.quiet {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "imported {added} run(s) ({device_runs} device results) into {}{}",
            store.target(),
            if skipped > 0 {
                format!("; {skipped} already there, skipped")
            } else {
                String::new()
            }
        )?;
    }
    Ok(Outcome::Ok)
}

fn rfc3339_ms(ms: i64) -> String {
    let t = if ms >= 0 {
        SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(ms as u64)
    } else {
        SystemTime::UNIX_EPOCH - std::time::Duration::from_millis(ms.unsigned_abs())
    };
    humantime::format_rfc3339_millis(t).to_string()
}

fn num(v: f64) -> Json {
    if v.is_finite() {
        json!(v)
    } else {
        Json::Null
    }
}

async fn show(
    ctx: &Ctx,
    target: &str,
    since: Option<std::time::Duration>,
    device: Option<&str>,
    dump: bool,
) -> anyhow::Result<Outcome> {
    let store = Store::open_existing(target).await?;
    let since_ms = since.map(|d| {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        now.saturating_sub(d).as_millis() as i64
    });
    let h = store.load(since_ms, device).await?;
    if dump {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer(&mut out, &dump_json(&h))?;
        writeln!(out)?;
        return Ok(Outcome::Ok);
    }
    let mut rows = Rows::new(&[
        "started_at",
        "plan",
        "host",
        "verdict",
        "device",
        "target",
        "status",
        "reachable",
        "sent",
        "failed",
        "errors",
        "latency_p50_ms",
        "latency_p95_ms",
        "latency_max_ms",
        "identity",
        "values",
    ]);
    // Rows in run order, devices by name within a run.
    let mut entries: Vec<(u32, usize, usize)> = Vec::new();
    for (di, d) in h.devices.iter().enumerate() {
        for (k, &r) in d.runs.iter().enumerate() {
            entries.push((r, di, k));
        }
    }
    entries.sort_unstable();
    for (r, di, k) in entries {
        let run = &h.runs[r as usize];
        let d = &h.devices[di];
        let identity =
            d.identities
                .iter()
                .find(|(i, _)| *i as usize == k)
                .map_or(Json::Null, |(_, o)| {
                    let kv: Vec<String> = o.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    json!(kv.join(", "))
                });
        let values: Vec<String> = d
            .points
            .iter()
            .filter(|p| !p.status_text(k).is_empty())
            .map(|p| {
                let v = p.values[k];
                let v = if v.is_nan() {
                    "NaN".to_string()
                } else {
                    format!("{v}")
                };
                if p.status_text(k) == "ok" {
                    format!("{}={v}", p.name)
                } else {
                    format!("{}={v} ({})", p.name, p.status_text(k))
                }
            })
            .collect();
        let errors: Vec<String> = d.errors[k]
            .iter()
            .map(|(e, n)| format!("{e} {n}"))
            .collect();
        rows.rows.push(vec![
            json!(rfc3339_ms(run.started_ms)),
            json!(run.plan),
            json!(run.host),
            json!(run.verdict),
            json!(d.name),
            json!(d.target),
            json!(d.status[k]),
            json!(d.reachable[k]),
            json!(d.sent[k]),
            json!(d.failed[k]),
            json!(errors.join(", ")),
            num(d.latency_p50_ms[k]),
            num(d.latency_p95_ms[k]),
            num(d.latency_max_ms[k]),
            identity,
            json!(values.join(" ")),
        ]);
    }
    let mut out = std::io::stdout().lock();
    write_rows(&mut out, ctx.format, &rows, ctx.color)?;
    out.flush()?;
    Ok(Outcome::Ok)
}

fn nums(v: &[f64]) -> Json {
    Json::Array(v.iter().map(|&x| num(x)).collect())
}

/// The whole History as JSON (NaN as null), for `history show --dump`.
fn dump_json(h: &History) -> Json {
    json!({
        "runs": h.runs.iter().map(|r| json!({
            "id": r.id,
            "started_at": rfc3339_ms(r.started_ms),
            "plan": r.plan,
            "tool_version": r.tool_version,
            "verdict": r.verdict,
            "host": r.host,
        })).collect::<Vec<_>>(),
        "devices": h.devices.iter().map(|d| json!({
            "name": d.name,
            "target": d.target,
            "runs": d.runs,
            "status": d.status,
            "reachable": d.reachable,
            "sent": d.sent,
            "failed": d.failed,
            "errors": d.errors,
            "latency_p50_ms": nums(&d.latency_p50_ms),
            "latency_p95_ms": nums(&d.latency_p95_ms),
            "latency_max_ms": nums(&d.latency_max_ms),
            "identities": d.identities,
            "limits": {
                "latency_warn_ms": num(d.limits.latency_warn_ms),
                "latency_crit_ms": num(d.limits.latency_crit_ms),
                "error_rate_warn": num(d.limits.error_rate_warn),
                "error_rate_crit": num(d.limits.error_rate_crit),
            },
            "points": d.points.iter().map(|p| json!({
                "name": p.name,
                "address": p.address,
                "unit": p.unit,
                "values": nums(&p.values),
                "status": p.statuses().collect::<Vec<_>>(),
                "range": p.range,
                "baseline": p.baseline,
                "tolerance": p.tolerance,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}
