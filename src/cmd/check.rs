//! `check PLAN.toml`: the cron health check of a plan's devices (the run is in `crate::check`):
//! one line per device and a verdict; Nagios output with perfdata; a Prometheus textfile; a JSON
//! results file and a report.

use std::{io::Write as _, time::Instant};

use super::{Ctx, Outcome};
use crate::{
    check::{
        output::{device_rows, nagios, prometheus, results_doc, write_report},
        plan::Plan,
        run::{run_plan, summary},
    },
    cli::CheckArgs,
    history::store::{Store, Unreachable},
    outcome::Fail,
    report::{verdict_name, write_rows, Format},
};

/// Run `check`.
pub async fn run(ctx: &Ctx, args: &CheckArgs) -> anyhow::Result<Outcome> {
    let plan = Plan::load(&args.plan)?;
    for p in [&args.results, &args.report, &args.prometheus]
        .into_iter()
        .flatten()
    {
        crate::fsutil::check_output_dir(p)?;
    }
    if let Some(p) = &args.report {
        crate::report::render::render_for_path(p, &[])?; // the extension says the format: check it now
    }
    let _lock = crate::lock::lock_plan(&args.plan, args.wait)?;
    // The history store is opened before any device is checked: one that is not a store, is
    // newer, or has a password in its URL stops here (exit 3). One that cannot be reached does
    // not stop the check; it fails the run (exit 2) after the output.
    let mut history: Option<Result<Store, anyhow::Error>> =
        match args.history.as_deref().or(plan.history.as_deref()) {
            None => None,
            Some(target) => match Store::open(target).await {
                Ok(s) => Some(Ok(s)),
                Err(e) if is_unreachable(&e) => Some(Err(e)),
                Err(e) => return Err(e),
            },
        };
    let started = super::now_rfc3339();
    let t0 = Instant::now();
    let pb = ctx.progress_bar(plan.devices.len() as u64, "checking");
    let devices = run_plan(&plan, args.force, &ctx.device, &pb).await;
    pb.finish_and_clear();
    let outcome = devices
        .iter()
        .fold(Outcome::Ok, |o, d| o.worst(d.outcome()));
    let doc = results_doc(&plan, &devices, outcome, &started, t0.elapsed())?;
    if let Some(p) = &args.results {
        let mut bytes = serde_json::to_vec_pretty(&doc)?;
        bytes.push(b'\n');
        crate::fsutil::write_atomic(p, &bytes)?;
    }
    if let Some(p) = &args.prometheus {
        crate::fsutil::write_atomic(p, prometheus(&devices).as_bytes())?;
    }
    if let Some(p) = &args.report {
        write_report(p, std::slice::from_ref(&doc))?;
    }
    let history_failed = match history.take() {
        None => None,
        Some(Err(e)) => Some(e),
        Some(Ok(mut store)) => store.record(&doc).await.err(),
    };
    let mut out = std::io::stdout().lock();
    match ctx.format {
        Format::Nagios => write!(out, "{}", nagios(&devices, outcome))?,
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &doc)?;
            writeln!(out)?;
        }
        Format::Table => {
            let rows = device_rows(&devices, ctx.quiet);
            super::write_table_verdict(&mut out, ctx, &rows, outcome, || {
                format!(
                    "PLCPROBE {}: {} in {:.1}s",
                    verdict_name(outcome),
                    summary(&devices),
                    t0.elapsed().as_secs_f64()
                )
            })?;
            if let Some(p) = &args.report {
                if !ctx.quiet {
                    writeln!(out, "report: {}", p.display())?;
                }
            }
        }
        f => write_rows(&mut out, f, &device_rows(&devices, ctx.quiet), false)?,
    }
    out.flush()?;
    if let Some(e) = history_failed {
        let msg = match e.downcast::<Fail>() {
            Ok(f) => f.msg,
            Err(e) => format!("{e:#}"),
        };
        // Unreachable or failed while recording: the check ran, its record is missing.
        return Err(Fail {
            outcome: outcome.worst(Outcome::Critical),
            msg: format!("{msg} (the run above was not recorded)"),
        }
        .into());
    }
    Ok(outcome)
}

/// A history database that could not be reached, as against one that is wrong.
fn is_unreachable(e: &anyhow::Error) -> bool {
    e.downcast_ref::<Unreachable>().is_some()
}
