//! `capture -i IFACE` / `capture --serial DEV`: capture live, decode as it goes, write pcapng
//! with `-w` (one file, or a ring), stop on Ctrl-C/SIGTERM, `--duration` or `--count`, then the
//! same summary as `decode`. The work is in `decode::live` (the pipeline), `decode::ring`
//! (the files), `transport::packet_socket` and `transport::serial_sniff` (the sources).
//!
//! Exit codes: 0 captured; 1 the capture is incomplete (the kernel dropped packets, the
//! source failed midway, packets cut by the snaplen); 3 no permission, no such interface or
//! port, a bad filter, a file that cannot be written.

use std::{
    io::{self, IsTerminal as _, Write},
    path::Path,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

use serde_json::json;

use super::{
    decode::{is_broken_pipe, setup, write_summary_doc},
    Ctx, Outcome,
};
use crate::{
    capture::{bpf, source::LiveSource, Config},
    cli::LiveArgs,
    decode::{
        live::{capture, End, LiveSettings, LiveView},
        pipeline::Mode,
        ring::{CaptureFiles, Ring},
        summary::summary_doc,
        terminal::live_text,
    },
    outcome::Fail,
    transport::{
        packet_socket::{Options, PacketSocket},
        rtu::LineSettings,
        serial_sniff,
    },
};

/// Run `capture`.
pub async fn run(ctx: &Ctx, args: &LiveArgs) -> anyhow::Result<Outcome> {
    let (cfg, filter, mode) = setup(&args.decode)?;
    let ring = args
        .ring
        .as_deref()
        .map(Ring::parse)
        .transpose()
        .map_err(Fail::unknown)?;
    if ring.is_some_and(|r| r.size.is_none()) && args.rotate.is_none() {
        return Err(Fail::unknown(
            "--ring N without a SIZE needs --rotate DURATION (e.g. --ring 24 --rotate 1h), else the first file would grow forever; or give a size: --ring 10x100MB",
        )
        .into());
    }
    if let Some(p) = &args.decode.results {
        crate::fsutil::check_output_dir(p)?;
    }
    let mut source = open_source(args, &cfg)?;
    let files = match &args.write {
        Some(path) => Some(
            CaptureFiles::create(path, source.interface(), ring, args.rotate)
                .map_err(|e| Fail::unknown(format!("{e:#}")))?,
        ),
        None => None,
    };
    let label = source
        .interface()
        .name
        .clone()
        .unwrap_or_else(|| "capture".into());
    let settings = LiveSettings {
        cfg,
        filter,
        mode,
        format: ctx.format,
        keep_all: args.all_packets,
        duration: args.duration,
        count: args.count,
    };
    // The summary refreshed in place: on a terminal, unless the rows themselves go to it.
    let rows_on_terminal = mode != Mode::Summary && io::stdout().is_terminal();
    let pb = if ctx.progress && !rows_on_terminal && !ctx.quiet {
        let pb = indicatif::ProgressBar::new_spinner();
        pb.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg}").expect("valid template"),
        );
        pb.set_message(format!(
            "capturing on {label}: waiting for packets (Ctrl-C stops)"
        ));
        pb.enable_steady_tick(std::time::Duration::from_millis(250));
        pb
    } else {
        indicatif::ProgressBar::hidden()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let stop_flag = Arc::clone(&stop);
    let view_pb = pb.clone();
    let view_label = label.clone();
    let mut job = tokio::task::spawn_blocking(move || {
        let mut out = io::BufWriter::with_capacity(1 << 16, io::stdout());
        let mut prev = (0u64, std::time::Duration::ZERO);
        let mut view = |v: &LiveView<'_, '_>| {
            if !view_pb.is_hidden() {
                view_pb.set_message(live_text(&view_label, v, &mut prev));
            }
        };
        let r = capture(
            source.as_mut(),
            &settings,
            files,
            &mut out,
            &stop_flag,
            &mut view,
        );
        let flushed = out.flush();
        (r, flushed)
    });
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let joined = tokio::select! {
        r = &mut job => r,
        _ = tokio::signal::ctrl_c() => { stop.store(true, Ordering::Relaxed); job.await }
        _ = term.recv() => { stop.store(true, Ordering::Relaxed); job.await }
    };
    pb.finish_and_clear();
    let (result, flushed) =
        joined.map_err(|e| anyhow::anyhow!("the capture thread failed: {e}"))?;
    let done = match result {
        Ok(d) => d,
        Err(e) if is_broken_pipe(&e) => return Ok(Outcome::Ok),
        Err(e) => return Err(Fail::unknown(format!("{e:#}")).into()),
    };
    match flushed {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(Outcome::Ok),
        r => r?,
    }
    let name = done.files.first().map_or_else(
        || format!("live capture on {label}"),
        |p| p.display().to_string(),
    );
    let mut doc = summary_doc(Path::new(&name), &done.decoded);
    doc["capture"]["interface"] = json!(label);
    doc["capture"]["kernel_drops"] = json!(done.source.kernel_drops);
    if done.source.framing_errors + done.source.parity_errors + done.source.overruns > 0 {
        doc["capture"]["uart_errors"] = json!({
            "framing": done.source.framing_errors,
            "parity": done.source.parity_errors,
            "overruns": done.source.overruns,
        });
    }
    doc["capture"]["files"] = json!(done
        .files
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>());
    doc["capture"]["written_packets"] = json!(done.written);
    doc["capture"]["removed_files"] = json!(done.removed);
    doc["capture"]["ended"] = json!(match &done.end {
        End::Signal => "signal".to_string(),
        End::Duration => "duration".to_string(),
        End::Count => "count".to_string(),
        End::OutputClosed => "output closed".to_string(),
        End::SourceFailed(e) => format!("source failed: {e}"),
    });
    let incomplete = done.source.kernel_drops > 0
        || matches!(done.end, End::SourceFailed(_))
        || done.decoded.stats.snapped > 0;
    if incomplete && doc["verdict"] == "OK" {
        doc["verdict"] = json!("WARNING");
    }
    let mut out = io::BufWriter::new(io::stdout().lock());
    if mode == Mode::Summary {
        write_summary_doc(ctx, &mut out, &doc, args.decode.results.as_deref())?;
    } else if let Some(p) = &args.decode.results {
        crate::fsutil::write_atomic(p, serde_json::to_string_pretty(&doc)?.as_bytes())?;
    }
    match out.flush() {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(Outcome::Ok),
        r => r?,
    }
    if let End::SourceFailed(e) = &done.end {
        super::warn(format!(
            "capture on {label} stopped: {e}; what was captured before is decoded above and written whole"
        ));
    }
    if done.source.kernel_drops > 0 {
        super::warn(format!(
            "the kernel dropped {} packets on {label} that plcprobe could not read in time (the counts above miss them); capture fewer packets with --filter, or write to a faster disk",
            done.source.kernel_drops
        ));
    }
    if done.decoded.stats.snapped > 0 {
        super::warn(format!(
            "{} packets on {label} were longer than the capture keeps and were cut",
            done.decoded.stats.snapped
        ));
    }
    Ok(if incomplete {
        Outcome::Warning
    } else {
        Outcome::Ok
    })
}

/// The interface or serial port, opened; errors as `Fail`s with their exit code.
fn open_source(args: &LiveArgs, cfg: &Config) -> anyhow::Result<Box<dyn LiveSource>> {
    if let Some(iface) = &args.interface {
        if args.libpcap || iface == "any" {
            return open_libpcap(iface, args, cfg);
        }
        let expr = args.filter.clone().unwrap_or_else(|| default_filter(cfg));
        let prog = bpf::compile(&expr).map_err(|e| {
            Fail::unknown(if args.filter.is_some() {
                format!("--filter '{expr}': {e}")
            } else {
                format!("the default capture filter '{expr}' does not compile ({e}); give one with --filter")
            })
        })?;
        let opts = Options {
            promiscuous: args.promiscuous,
            filter: prog,
        };
        return match PacketSocket::open(iface, &opts) {
            Ok(s) => {
                let state = std::fs::read_to_string(format!("/sys/class/net/{iface}/operstate"))
                    .unwrap_or_default();
                if state.trim() == "down" {
                    super::warn(format!("{iface} is down (no link, or not brought up): nothing arrives until it is up; capturing anyway"));
                }
                Ok(Box::new(s))
            }
            Err(e) => Err(Fail::unknown(e.to_string()).into()),
        };
    }
    let Some(dev) = &args.serial else {
        return Err(Fail::unknown(
            "give an interface (-i eth1) or a serial port (--serial /dev/ttyUSB1)",
        )
        .into());
    };
    let frame = args.frame.as_deref().unwrap_or("8E1");
    let Some((data_bits, parity, stop_bits)) = crate::target::parse_frame_text(frame) else {
        return Err(Fail::unknown(format!(
            "--frame {frame}: not data bits, parity and stop bits like 8E1, 8N2 or 7O1"
        ))
        .into());
    };
    let settings = LineSettings {
        baud: args.baud.unwrap_or(19200),
        data_bits,
        parity,
        stop_bits,
    };
    let sniffer = serial_sniff::open(dev, settings).map_err(Fail::unknown)?;
    for w in sniffer.warnings() {
        super::warn(w.clone());
    }
    Ok(Box::new(sniffer))
}

#[cfg(feature = "pcap")]
fn open_libpcap(iface: &str, args: &LiveArgs, cfg: &Config) -> anyhow::Result<Box<dyn LiveSource>> {
    // libpcap reads the tags the kernel strips itself, and `vlan` does not apply to `any`.
    let expr = args.filter.clone().unwrap_or_else(|| default_l4(cfg));
    crate::transport::pcap_source::PcapSource::open(iface, args.promiscuous, Some(&expr))
        .map(|s| Box::new(s) as Box<dyn LiveSource>)
        .map_err(|e| Fail::unknown(e).into())
}

#[cfg(not(feature = "pcap"))]
fn open_libpcap(
    iface: &str,
    _args: &LiveArgs,
    _cfg: &Config,
) -> anyhow::Result<Box<dyn LiveSource>> {
    Err(Fail::unknown(format!(
        "capturing on `{iface}` through libpcap needs a plcprobe built with the `pcap` feature (`cargo install --features pcap`, which needs libpcap-dev); this one captures with its own packet socket: name one interface, e.g. -i eth1, without --libpcap"
    ))
    .into())
}

/// The kernel filter when none is given: TCP and UDP (tagged or not), and with `--no-detect`
/// only the fieldbus ports. Which flows are fieldbus flows is then the decoder's call.
fn default_filter(cfg: &Config) -> String {
    let l4 = default_l4(cfg);
    format!("{l4} or (vlan and {l4})")
}

/// TCP and UDP, or with `--no-detect` the fieldbus ports of each.
fn default_l4(cfg: &Config) -> String {
    if cfg.detect {
        return "(tcp or udp)".to_string();
    }
    let list = |ports: Vec<&u16>| {
        let mut v: Vec<u16> = ports.into_iter().copied().collect();
        v.sort_unstable();
        v.dedup();
        v.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" or ")
    };
    let tcp = list(
        cfg.modbus_ports
            .iter()
            .chain(&cfg.opcua_ports)
            .chain(&cfg.rtu_ports)
            .chain(&cfg.s7_ports)
            .chain(&cfg.enip_ports)
            .chain(&cfg.dnp3_ports)
            .collect(),
    );
    let udp = list(
        cfg.enip_ports
            .iter()
            .chain(&cfg.cip_io_ports)
            .chain(&cfg.dnp3_ports)
            .chain(&cfg.bacnet_ports)
            .collect(),
    );
    format!("((tcp port {tcp}) or (udp port {udp}))")
}
