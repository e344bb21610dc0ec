//! `report RESULTS.json… -o FILE`: one report (Markdown, self-contained HTML, or JSON by the
//! output's extension) from the results of check and diff runs. Written atomically.

use std::io::Write as _;

use super::{Ctx, Outcome};
use crate::{cli::ReportArgs, report::render};

/// Run `report`. The exit code is the report's verdict, so a script can act on it too.
pub fn run(ctx: &Ctx, args: &ReportArgs) -> anyhow::Result<Outcome> {
    crate::fsutil::check_output_dir(&args.output)?;
    render::render_for_path(&args.output, &[])?; // the extension says the format: check it first
    let mut docs = Vec::with_capacity(args.inputs.len());
    for p in &args.inputs {
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
            "{verdict}: report of {} result file(s) written to {}",
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
