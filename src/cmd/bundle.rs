//! `bundle -o FILE.zip INPUT…`: one evidence archive for a ticket; `bundle --verify FILE.zip`:
//! check one against its manifest. The work is in `crate::bundle`.
//!
//! Exit codes: making: 0 written, 3 an input unreadable, of no known kind, changed while it was
//! copied, or a snapshot its results name missing (nothing written). Verifying: 0 every member
//! matches, 2 a member missing, extra or modified (each named on stdout), 3 not a zip archive
//! or no manifest.

use std::io::Write as _;

use serde_json::json;

use super::{Ctx, Outcome};
use crate::{bundle, cli::BundleArgs, report::Format};

/// Run `bundle`.
pub fn run(ctx: &Ctx, args: &BundleArgs) -> anyhow::Result<Outcome> {
    let mut out = std::io::stdout().lock();
    if let Some(path) = &args.verify {
        let v = bundle::verify(path)?;
        let outcome = if v.problems.is_empty() {
            Outcome::Ok
        } else {
            Outcome::Critical
        };
        if ctx.format == Format::Json {
            let doc = json!({
                "file": path.display().to_string(),
                "verdict": crate::report::verdict_name(outcome),
                "matching": v.matching,
                "problems": v.problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "manifest": v.manifest,
            });
            serde_json::to_writer_pretty(&mut out, &doc)?;
            writeln!(out)?;
        } else {
            for p in &v.problems {
                writeln!(out, "{p}")?;
            }
            if !ctx.quiet || !v.problems.is_empty() {
                let m = &v.manifest;
                writeln!(
                    out,
                    "{}: {}: {} member(s) match {}, {} problem(s) (made {} by plcprobe {} on {})",
                    crate::report::verdict_name(outcome),
                    path.display(),
                    v.matching,
                    bundle::MANIFEST,
                    v.problems.len(),
                    m["created_at"].as_str().unwrap_or("?"),
                    m["tool_version"].as_str().unwrap_or("?"),
                    m["host"].as_str().unwrap_or("?"),
                )?;
            }
        }
        return Ok(outcome);
    }
    let Some(output) = &args.output else {
        anyhow::bail!("give the archive to write with -o FILE.zip, or --verify FILE.zip");
    };
    let made = bundle::make(
        output,
        &args.inputs,
        &crate::report::command_line(),
        args.allow_missing,
    )?;
    for (path, by) in &made.omitted {
        super::warn(format!(
            "{path} (named by {by}) was not found and is not in the bundle (--allow-missing)"
        ));
    }
    if !ctx.quiet {
        let bytes: u64 = made.members.iter().map(|m| m.size).sum();
        writeln!(
            out,
            "{} member(s), {bytes} bytes, and {} written to {}{}",
            made.members.len(),
            bundle::MANIFEST,
            output.display(),
            made.verdict
                .map_or_else(String::new, |v| format!(" (results: {v})"))
        )?;
    }
    Ok(Outcome::Ok)
}
