//! `decode FILE`: read a capture and say who asked what, what answered, how slowly, and which
//! requests failed. Modes: the summary (default), `--transactions`, `--writes`, `--pdus`; the
//! work is in `crate::decode`.
//!
//! Exit codes: 0 decoded; 1 the capture is truncated or packets of decoded flows were cut by
//! the snaplen (decoded as far as they go); 3 not a capture or unreadable.

use std::io::{self, BufWriter, Write};

use super::{Ctx, Outcome};
use crate::{
    capture::{Config, DeviceFilter},
    cli::{CaptureArgs, DecodeArgs},
    decode::{
        pipeline::{decode_file, Mode},
        summary::{device_rows, summary_doc},
        terminal::write_summary,
    },
    report::{write_rows, Format},
};

/// Run `decode`.
pub fn run(ctx: &Ctx, file: &CaptureArgs) -> anyhow::Result<Outcome> {
    let args = &file.decode;
    let (cfg, filter, mode) = setup(args)?;
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let pb = ctx.progress_bar(0, "decoding");
    let result = decode_file(&file.file, cfg, filter, mode, ctx.format, &mut out, &pb);
    let done = match result {
        Ok(d) => d,
        Err(e) if is_broken_pipe(&e) => return Ok(Outcome::Ok),
        Err(e) => return Err(e),
    };
    if mode == Mode::Summary {
        let doc = summary_doc(&file.file, &done);
        write_summary_doc(ctx, &mut out, &doc, args.results.as_deref())?;
    }
    match out.flush() {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(Outcome::Ok),
        r => r?,
    }
    let outcome = if done.stats.truncated.is_some() || done.health.cut_segments > 0 {
        if let Some(t) = &done.stats.truncated {
            super::warn(format!(
                "{}: capture truncated: {t}; decoded up to there",
                file.file.display()
            ));
        }
        if done.health.cut_segments > 0 {
            super::warn(format!(
                "{}: {} packets of decoded flows were cut short (the capture's snaplen, or an IP length larger than the packet); their PDUs are incomplete or missing",
                file.file.display(),
                done.health.cut_segments
            ));
        }
        Outcome::Warning
    } else {
        Outcome::Ok
    };
    Ok(outcome)
}

/// The summary document of `decode` or `capture` in the chosen format (`-q`: one line, only
/// when the capture shows a problem), and in `--results` when asked.
pub(super) fn write_summary_doc(
    ctx: &Ctx,
    out: &mut dyn Write,
    doc: &serde_json::Value,
    results: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    match ctx.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, doc)?;
            writeln!(out)?;
        }
        Format::Jsonl | Format::Csv => {
            write_rows(out, ctx.format, &device_rows(doc), false)?;
        }
        _ if ctx.quiet => {
            if doc["verdict"] != "OK" {
                writeln!(
                    out,
                    "{}: {}",
                    doc["file"].as_str().unwrap_or(""),
                    doc["summary"].as_str().unwrap_or("")
                )?;
            }
        }
        _ => write_summary(out, doc, ctx.verbose > 0, ctx.color)?,
    }
    if let Some(path) = results {
        crate::fsutil::write_atomic(path, serde_json::to_string_pretty(doc)?.as_bytes())?;
    }
    Ok(())
}

/// What `decode` and `capture` decode and which rows they stream, from their shared options.
pub(super) fn setup(args: &DecodeArgs) -> anyhow::Result<(Config, Option<DeviceFilter>, Mode)> {
    let mode = if args.transactions {
        Mode::Transactions
    } else if args.writes {
        Mode::Writes
    } else if args.pdus {
        Mode::Pdus
    } else {
        Mode::Summary
    };
    let filter = args
        .device
        .as_deref()
        .map(DeviceFilter::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--device {e}"))?;
    let mut cfg = Config {
        opcua_nodes: true,
        detect: !args.no_detect,
        ..Config::default()
    };
    cfg.modbus_ports.extend(&args.modbus_port);
    cfg.rtu_ports.extend(&args.rtu_port);
    cfg.opcua_ports.extend(&args.opcua_port);
    Ok((cfg, filter, mode))
}

pub(super) fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
}
