//! `diff`: compare a snapshot file or a live read with a known-good baseline.

use std::io::Write as _;

use serde_json::json;

use super::{Ctx, Outcome};
use crate::{
    cli::DiffArgs,
    device::Device,
    report::{self, write_rows, Format, Rows},
    snapshot::{
        self,
        diff::{diff_with, DiffReport, Verdict},
        Snapshot,
    },
    target::Target,
};

fn cell(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Null => json!(""),
        other => other.clone(),
    }
}

/// Rows of a diff for table/csv/jsonl.
pub fn diff_rows(d: &DiffReport, all: bool) -> Rows {
    let mut rows = Rows::new(&[
        "verdict",
        "name",
        "address",
        "baseline",
        "current",
        "delta",
        "tolerance",
        "unit",
        "severity",
        "note",
    ]);
    for r in d
        .rows
        .iter()
        .filter(|r| all || !matches!(r.verdict, Verdict::Unchanged | Verdict::Ignored))
    {
        rows.push(vec![
            json!(r.verdict.name()),
            json!(r.name),
            json!(r.address),
            cell(&r.baseline),
            cell(&r.current),
            r.delta
                .map_or(json!(""), |d| json!((d * 1e6).round() / 1e6)),
            r.tolerance.map_or(json!(""), |t| json!(t)),
            json!(r.unit),
            json!(match r.severity {
                crate::profile::Severity::Warning => "warning",
                crate::profile::Severity::Critical => "critical",
            }),
            json!(r.note),
        ]);
    }
    rows
}

/// One-line summary: "2 changed, 9 unchanged, 2 ignored".
pub fn summary(d: &DiffReport) -> String {
    let order = [
        Verdict::Changed,
        Verdict::TypeChanged,
        Verdict::Unreadable,
        Verdict::Missing,
        Verdict::New,
        Verdict::Unchanged,
        Verdict::Ignored,
    ];
    order
        .iter()
        .filter_map(|v| d.counts.get(v.name()).map(|n| format!("{n} {}", v.name())))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Run `diff`.
pub async fn run(ctx: &Ctx, args: &DiffArgs) -> anyhow::Result<Outcome> {
    let all = args.all || ctx.verbose > 0;
    // Two files, listing only what moved: parse only the points whose lines differ (a 100,000
    // point device parses 1,000 lines instead of 200,000); any other case loads both fully.
    let fast = match args.current.as_deref() {
        Some(c) if !c.contains("://") && !all => {
            Snapshot::load_pair_differing(&args.baseline, std::path::Path::new(c))
        }
        _ => None,
    };
    let mut counted = std::collections::BTreeMap::new();
    // Two files: parse them side by side (large devices make for tens of MB of JSON).
    let (baseline, file) = match (fast, args.current.as_deref()) {
        (Some((b, c, counts)), _) => {
            counted = counts;
            (Ok(b), Some(Ok(c)))
        }
        (None, current) => match current {
            Some(c) if !c.contains("://") => std::thread::scope(|sc| {
                let cur = sc.spawn(|| Snapshot::load(std::path::Path::new(c)));
                let base = Snapshot::load(&args.baseline);
                (
                    base,
                    Some(
                        cur.join()
                            .unwrap_or_else(|_| Err(anyhow::anyhow!("reading {c} failed"))),
                    ),
                )
            }),
            _ => (Snapshot::load(&args.baseline), None),
        },
    };
    let baseline = baseline?;
    let current = match (args.current.as_deref(), file) {
        (Some(c), Some(cur)) => {
            let cur = cur?;
            if cur.profile.sha256 != baseline.profile.sha256 && !args.force {
                anyhow::bail!(
                    "{} was taken with profile \"{}\" ({}…) and {c} with \"{}\" ({}…); the points may not mean the same. Take both with one profile, or add --force to compare anyway",
                    args.baseline.display(), baseline.profile.name, &baseline.profile.sha256[..12.min(baseline.profile.sha256.len())], cur.profile.name, &cur.profile.sha256[..12.min(cur.profile.sha256.len())]
                );
            }
            cur
        }
        (other, _) => {
            let target: Target = match other {
                Some(t) => t.parse()?,
                None => snapshot::snapshot_target(&baseline)?,
            };
            // A live read of the baseline's own points.
            let mut dev = Device::new(&target, &ctx.device)?;
            dev.select_baseline(&baseline, &args.baseline)?;
            match dev.take_snapshot(baseline.profile.clone()).await? {
                Ok(s) => s,
                Err(why) => {
                    super::warn(format!("{target}: {}", why.0));
                    return Ok(Outcome::Critical);
                }
            }
        }
    };
    let mut d = diff_with(&baseline, &current, all);
    for (k, n) in counted {
        *d.counts.entry(k).or_insert(0) += n;
    }
    let outcome = d.outcome();
    let mut out = std::io::stdout().lock();
    match ctx.format {
        Format::Json => {
            let mut doc = report::envelope("diff");
            doc.insert("verdict".into(), json!(report::verdict_name(outcome)));
            doc.insert("summary".into(), json!(summary(&d)));
            doc.insert("diff".into(), serde_json::to_value(&d)?);
            // The snapshot files compared, as given (a bundle takes them along).
            doc.insert(
                "baseline_file".into(),
                json!(args.baseline.display().to_string()),
            );
            doc.insert(
                "current_file".into(),
                json!(args.current.as_deref().filter(|c| !c.contains("://"))),
            );
            // The rows carry both values; the identities are what the rows do not hold.
            doc.insert(
                "baseline_identity".into(),
                serde_json::to_value(&baseline.identity)?,
            );
            doc.insert(
                "current_identity".into(),
                serde_json::to_value(&current.identity)?,
            );
            serde_json::to_writer_pretty(&mut out, &doc)?;
            writeln!(out)?;
        }
        Format::Table => {
            if d.profile_mismatch {
                writeln!(
                    out,
                    "WARNING: the two snapshots were taken with different profiles (--force)"
                )?;
            }
            for (k, (b, c)) in &d.identity_changes {
                writeln!(
                    out,
                    "IDENTITY CHANGED: {k}: {} → {}",
                    b.as_deref().unwrap_or("(none)"),
                    c.as_deref().unwrap_or("(none)")
                )?;
            }
            let rows = diff_rows(&d, args.all || ctx.verbose > 0);
            super::write_table_verdict(&mut out, ctx, &rows, outcome, || {
                format!(
                    "{} vs baseline of {}: {} → {}",
                    d.baseline_target,
                    d.baseline_taken_at,
                    summary(&d),
                    report::verdict_name(outcome)
                )
            })?;
        }
        f => write_rows(&mut out, f, &diff_rows(&d, args.all), false)?,
    }
    out.flush()?;
    Ok(outcome)
}
