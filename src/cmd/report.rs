//! `report INPUT… -o FILE`: one report (Markdown, self-contained HTML, or JSON by the output's
//! extension) from results documents, and from history stores: a store's window (`--since`) is
//! judged by `history::trend` into a `trend` document with its charts (`history::chart`), and
//! rendered like any other. Written atomically.

use std::{io::Write as _, path::Path};

use super::{Ctx, Outcome};
use crate::{
    cli::ReportArgs,
    history::{
        chart::add_charts,
        store::{is_postgres, Store},
        trend::{analyse, TrendConfig},
        trend_output::results_doc,
    },
    report::render,
};

/// Run `report`. The exit code is the report's verdict, so a script can act on it too.
pub async fn run(ctx: &Ctx, args: &ReportArgs) -> anyhow::Result<Outcome> {
    crate::fsutil::check_output_dir(&args.output)?;
    render::render_for_path(&args.output, &[])?; // the extension says the format: check it first
    let mut docs = Vec::with_capacity(args.inputs.len());
    for p in &args.inputs {
        if is_store(p) {
            docs.push(store_doc(&p.to_string_lossy(), args).await?);
            continue;
        }
        let text = std::fs::read_to_string(p)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))?;
        let doc: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "{}:{}:{}: not valid JSON: {e}",
                p.display(),
                e.line(),
                e.column()
            )
        })?;
        render::validate(&p.display().to_string(), &doc)?;
        docs.push(doc);
    }
    let bytes = render::render_for_path(&args.output, &docs)?;
    crate::fsutil::write_atomic(&args.output, &bytes)?;
    let verdict = render::overall(&docs);
    if !ctx.quiet {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "{verdict}: report of {} input(s) written to {}",
            docs.len(),
            args.output.display()
        )?;
    }
    Ok(match verdict {
        "OK" => Outcome::Ok,
        "WARNING" => Outcome::Warning,
        "CRITICAL" => Outcome::Critical,
        _ => Outcome::Unknown,
    })
}

/// A postgres:// URL, or a file that begins as an SQLite database does (a results file is JSON).
fn is_store(p: &Path) -> bool {
    if is_postgres(&p.to_string_lossy()) {
        return true;
    }
    let mut head = [0u8; 16];
    std::fs::File::open(p)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .is_ok_and(|()| &head == b"SQLite format 3\0")
}

/// The `trend` document of a store's window, with the charts a report draws.
async fn store_doc(target: &str, args: &ReportArgs) -> anyhow::Result<serde_json::Value> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let since_ms = now_ms.saturating_sub(args.since.as_millis() as i64);
    let history = Store::open_existing(target)
        .await?
        .load(Some(since_ms), args.device.as_deref())
        .await?;
    let trend = analyse(
        &history,
        &TrendConfig {
            since_ms,
            horizon_ms: args.horizon.as_millis() as i64,
        },
    );
    let mut doc = results_doc(&trend, target, args.device.as_deref());
    add_charts(&mut doc, &history);
    Ok(doc)
}
