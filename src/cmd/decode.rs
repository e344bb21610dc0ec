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
    cli::CaptureArgs,
    decode::{
        pipeline::{decode_file, Mode},
        summary::{device_rows, summary_doc},
        terminal::write_summary,
    },
    report::{write_rows, Format},
};

/// Run `decode`.
pub fn run(ctx: &Ctx, args: &CaptureArgs) -> anyhow::Result<Outcome> {
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
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let pb = ctx.progress_bar(0, "decoding");
    let result = decode_file(&args.file, cfg, filter, mode, ctx.format, &mut out, &pb);
    let done = match result {
        Ok(d) => d,
        Err(e) if is_broken_pipe(&e) => return Ok(Outcome::Ok),
        Err(e) => return Err(e),
    };
    if mode == Mode::Summary {
        let doc = summary_doc(&args.file, &done);
        match ctx.format {
            Format::Json => {
                serde_json::to_writer_pretty(&mut out, &doc)?;
                writeln!(out)?;
            }
            Format::Jsonl | Format::Csv => {
                write_rows(&mut out, ctx.format, &device_rows(&doc), false)?;
            }
            _ if ctx.quiet => {
                // -q: one line, and only when the capture shows a problem.
                if doc["verdict"] != "OK" {
                    writeln!(
                        out,
                        "{}: {}",
                        args.file.display(),
                        doc["summary"].as_str().unwrap_or("")
                    )?;
                }
            }
            _ => write_summary(&mut out, &doc, ctx.verbose > 0, ctx.color)?,
        }
        if let Some(path) = &args.results {
            crate::fsutil::write_atomic(path, serde_json::to_string_pretty(&doc)?.as_bytes())?;
        }
    }
    match out.flush() {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(Outcome::Ok),
        r => r?,
    }
    let outcome = if done.stats.truncated.is_some() || done.health.cut_segments > 0 {
        if let Some(t) = &done.stats.truncated {
            super::warn(format!(
                "{}: capture truncated: {t}; decoded up to there",
                args.file.display()
            ));
        }
        if done.health.cut_segments > 0 {
            super::warn(format!(
                "{}: {} packets of decoded flows were cut short (the capture's snaplen, or an IP length larger than the packet); their PDUs are incomplete or missing",
                args.file.display(),
                done.health.cut_segments
            ));
        }
        Outcome::Warning
    } else {
        Outcome::Ok
    };
    Ok(outcome)
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
}
