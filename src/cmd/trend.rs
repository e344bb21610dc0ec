//! `trend STORE [--device D] [--since 30d] [--horizon 14d]`: what is getting worse in a history
//! store, and when it will cross a limit. Thin: the store loads the window
//! (`crate::history::store`), `crate::history::trend` judges it, `crate::history::trend_output`
//! says it (rows through the one row writer, the results document, Nagios output).

use std::io::Write as _;

use super::{Ctx, Fail, Outcome};
use crate::{
    cli::TrendArgs,
    history::{
        model::History,
        store::Store,
        trend::{analyse, Trend, TrendConfig},
        trend_output::{nagios, results_doc, trend_rows, verdict_line, TABLE_COLUMNS},
    },
    report::{Format, RowWriter},
};

/// Run `trend`.
pub async fn run(ctx: &Ctx, args: &TrendArgs) -> anyhow::Result<Outcome> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let since_ms = now_ms.saturating_sub(args.since.as_millis() as i64);
    let history = load(&args.store, since_ms, args.device.as_deref()).await?;
    if let Some(d) = &args.device {
        if history.devices.is_empty() {
            return Err(Fail::unknown(format!(
                "{}: no run of device `{d}` in the last {}; check the device's name in the plan, or widen --since",
                args.store,
                humantime::format_duration(args.since)
            ))
            .into());
        }
    }
    let trend = analyse(
        &history,
        &TrendConfig {
            since_ms,
            horizon_ms: args.horizon.as_millis() as i64,
        },
    );
    write(ctx, &trend, &args.store, args.device.as_deref())?;
    Ok(trend.outcome)
}

/// The store's runs since `since_ms` (of one device, when given). The store must exist: trend
/// never creates one.
async fn load(store: &str, since_ms: i64, device: Option<&str>) -> anyhow::Result<History> {
    Store::open_existing(store)
        .await?
        .load(Some(since_ms), device)
        .await
}

/// Say a trend in the context's format on stdout.
pub fn write(ctx: &Ctx, trend: &Trend, store: &str, device: Option<&str>) -> anyhow::Result<()> {
    // Buffered: stdout alone is line-buffered, and the JSON of 2,300 series is 80,000 lines,
    // one write(2) each (a quarter of a second; docs/PERFORMANCE.md).
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match ctx.format {
        Format::Nagios => write!(out, "{}", nagios(trend))?,
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &results_doc(trend, store, device))?;
            writeln!(out)?;
        }
        format => {
            let rows = trend_rows(trend, ctx.quiet);
            let table = format == Format::Table;
            if !table || !rows.rows.is_empty() {
                let mut w = RowWriter::new(Box::new(&mut out), format, &rows.columns)
                    .color(ctx.color)
                    .table_columns(TABLE_COLUMNS);
                for r in &rows.rows {
                    w.json_row(r)?;
                }
                w.finish()?;
            }
            if table && !(ctx.quiet && trend.outcome == Outcome::Ok) {
                writeln!(out, "{}", verdict_line(trend))?;
            }
        }
    }
    out.flush()?;
    Ok(())
}
