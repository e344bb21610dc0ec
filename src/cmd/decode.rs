//! `decode FILE`: read a capture and say who asked what, what answered, how slowly, and which
//! requests failed. Modes: the summary (default), `--transactions`, `--writes`, `--pdus`; the
//! work is in `crate::decode`.
//!
//! `--from`/`--to` decode only the packets in that window (frames keep their numbers in the
//! file); `-w OUT.pcapng` writes them, atomically, as `capture::excerpt` cuts them (without a
//! window: the whole capture as pcapng).
//!
//! Exit codes: 0 decoded; 1 the capture is truncated or packets of decoded flows were cut by
//! the snaplen (decoded as far as they go); 3 not a capture or unreadable, bad `--from`/`--to`,
//! `--to` not after `--from`, or no packet in the window (nothing written).

use std::io::{self, BufWriter, Write};

use super::{Ctx, Outcome};
use crate::{
    capture::{
        excerpt::{self, Cut, Window},
        Config, DeviceFilter,
    },
    cli::{CaptureArgs, DecodeArgs},
    decode::{
        pipeline::{decode_window, Mode},
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
    let cut = cut_window(ctx, file)?;
    let window = cut.as_ref().and_then(|c| c.window);
    let pb = ctx.progress_bar(0, "decoding");
    let result = decode_window(
        &file.file, window, cfg, filter, mode, ctx.format, &mut out, &pb,
    );
    let done = match result {
        Ok(d) => d,
        Err(e) if is_broken_pipe(&e) => return Ok(Outcome::Ok),
        Err(e) => return Err(e),
    };
    if mode == Mode::Summary {
        let mut doc = summary_doc(&file.file, &done);
        if let (Some(c), Some(w)) = (&cut, window) {
            doc["window"] = serde_json::json!({
                "from": w.from.map(excerpt::time_text),
                "to": w.to.map(excerpt::time_text),
                "packets": c.kept,
                "excerpt": file.write.as_ref().map(|p| p.display().to_string()),
            });
        }
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

/// Cut the window of `--from`/`--to` and write it to `-w` (atomically); None when neither a
/// window nor `-w` is given. A note on stderr says what was written.
fn cut_window(ctx: &Ctx, file: &CaptureArgs) -> anyhow::Result<Option<Cut>> {
    if file.from.is_none() && file.to.is_none() && file.write.is_none() {
        return Ok(None);
    }
    let from_text = file.from.as_deref().unwrap_or("");
    let to_text = file.to.as_deref().unwrap_or("");
    let window = Window {
        from: file
            .from
            .as_deref()
            .map(|t| excerpt::parse_time("--from", t))
            .transpose()
            .map_err(anyhow::Error::msg)?,
        to: file
            .to
            .as_deref()
            .map(|t| excerpt::parse_time("--to", t))
            .transpose()
            .map_err(anyhow::Error::msg)?,
    };
    window
        .check_order(from_text, to_text)
        .map_err(anyhow::Error::msg)?;
    let texts = (from_text, to_text);
    let cut = match &file.write {
        Some(out) => {
            crate::fsutil::check_output_dir(out)?;
            if same_file(&file.file, out) {
                anyhow::bail!(
                    "-w {} is the capture being read; write the excerpt to another file",
                    out.display()
                );
            }
            crate::fsutil::write_atomic_with(out, |f| {
                let mut w = std::io::BufWriter::with_capacity(1 << 16, f);
                let cut = excerpt::cut(&file.file, &window, texts, &mut w)?;
                w.flush()?;
                Ok(cut)
            })?
        }
        None => excerpt::cut(&file.file, &window, texts, &mut io::sink())?,
    };
    if let (Some(out), false) = (&file.write, ctx.quiet) {
        super::warn(format!(
            "{}: {} of {} packets written to {} ({} interface{})",
            file.file.display(),
            cut.kept,
            cut.stats.packets,
            out.display(),
            cut.interfaces,
            if cut.interfaces == 1 { "" } else { "s" }
        ));
    }
    Ok(Some(cut))
}

fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
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
    for spec in &args.ports {
        let bad = || {
            anyhow::anyhow!(
                "--port `{spec}`: write PROTO=PORT with PROTO one of s7comm, enip, cip-io, dnp3, bacnet and PORT 1-65535, e.g. --port dnp3=20001"
            )
        };
        let (proto, port) = spec.split_once('=').ok_or_else(bad)?;
        let port: u16 = port
            .trim()
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(bad)?;
        let list = match proto.trim() {
            "s7comm" => &mut cfg.s7_ports,
            "enip" => &mut cfg.enip_ports,
            "cip-io" => &mut cfg.cip_io_ports,
            "dnp3" => &mut cfg.dnp3_ports,
            "bacnet" => &mut cfg.bacnet_ports,
            _ => return Err(bad()),
        };
        list.push(port);
    }
    Ok((cfg, filter, mode))
}

pub(super) fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
}
