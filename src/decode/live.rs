//! The live pipeline behind `capture`: packets from a [`LiveSource`] (an interface, a serial
//! line) through the same decoder, analysis and row writer as `decode` of a file, written to
//! pcapng as they come ([`CaptureFiles`]), until a signal, `--duration` or `--count`. A
//! [`LiveView`] is handed to the caller about once a second (the terminal's summary refreshed
//! in place), and at the end the same [`Decoded`] as a file's, for the same summary document.
//!
//! What is written: every packet of a flow the decoder decodes (Modbus/TCP, RTU over TCP,
//! OPC UA, on their ports or recognised by content) unless `keep_all`. Packets of a flow sent
//! before its content gave it away (its handshake, on a port that is not a fieldbus port) are
//! not written; flows on the fieldbus ports are written whole from their first packet.

use std::{
    io::Write,
    path::PathBuf,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use super::{
    pipeline::{Decoded, Mode, RowSink, SummaryData},
    ring::CaptureFiles,
};
use crate::{
    capture::{
        analysis::Analysis,
        reader::ReadStats,
        source::{LiveSource, SourceStats},
        Config, Decoder, DeviceFilter,
    },
    report::Format,
};

/// How a live capture runs.
#[derive(Debug, Clone)]
pub struct LiveSettings {
    /// What to decode.
    pub cfg: Config,
    /// `--device`.
    pub filter: Option<DeviceFilter>,
    /// Rows streamed while capturing.
    pub mode: Mode,
    /// Their format.
    pub format: Format,
    /// Write every packet, not only those of decoded flows.
    pub keep_all: bool,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Stop after this many packets.
    pub count: Option<u64>,
}

/// Why the capture stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Ctrl-C or SIGTERM.
    Signal,
    /// `--duration` reached.
    Duration,
    /// `--count` reached.
    Count,
    /// The rows' reader went away (a closed pipe).
    OutputClosed,
    /// The source failed (interface down, port unplugged): its words.
    SourceFailed(String),
}

/// What a live capture found and wrote.
pub struct Captured {
    /// The decode, as for a file.
    pub decoded: Decoded,
    /// The source's counters (kernel drops, UART errors).
    pub source: SourceStats,
    /// Files written and still on disk.
    pub files: Vec<PathBuf>,
    /// Packets written to them.
    pub written: u64,
    /// Files the ring removed.
    pub removed: u64,
    /// Why it stopped.
    pub end: End,
    /// Wall-clock time captured.
    pub elapsed: Duration,
}

/// What the caller gets about once a second while capturing.
pub struct LiveView<'a, 'e> {
    /// The analysis so far (devices and their counters).
    pub analysis: &'a Analysis<'e>,
    /// Packets captured so far.
    pub packets: u64,
    /// Packets written so far.
    pub written: u64,
    /// Counters of the source.
    pub source: SourceStats,
    /// Time since the start.
    pub elapsed: Duration,
}

/// How often the view is refreshed.
const VIEW_EVERY: Duration = Duration::from_secs(1);
/// How long one wait for packets lasts, at most: the stop flag is looked at this often.
const POLL: Duration = Duration::from_millis(100);

/// Capture from `source` until `stop` is set, the duration or count is reached, the output
/// closes or the source fails.
///
/// # Errors
/// Writing the capture files failed (disk full, …): what was written so far stays valid.
pub fn capture(
    source: &mut dyn LiveSource,
    set: &LiveSettings,
    mut files: Option<CaptureFiles>,
    out: &mut dyn Write,
    stop: &AtomicBool,
    view: &mut dyn FnMut(&LiveView<'_, '_>),
) -> anyhow::Result<Captured> {
    let start = Instant::now();
    let linktype = source.interface().linktype;
    let mut rows = RowSink::live(out, set.format, set.mode);
    let mut decoder = Decoder::new(set.cfg.clone());
    let mut an = Analysis::new(set.filter, &mut rows);
    an.want_pdus = set.mode == Mode::Pdus;
    an.want_tx = set.mode == Mode::Transactions;
    let mut stats = ReadStats {
        format: format!("live capture ({})", linktype_name(linktype)),
        ..ReadStats::default()
    };
    let mut last_view = Instant::now();
    let mut write_err: Option<anyhow::Error> = None;
    let end = loop {
        if stop.load(Ordering::Relaxed) {
            break End::Signal;
        }
        let wait = match set.duration {
            Some(d) => {
                let left = d.saturating_sub(start.elapsed());
                if left.is_zero() {
                    break End::Duration;
                }
                left.min(POLL)
            }
            None => POLL,
        };
        let mut counted_out = false;
        let polled = source.poll(wait, &mut |p| {
            if counted_out {
                return;
            }
            take(
                p,
                &mut stats,
                &mut decoder,
                &mut an,
                files.as_mut(),
                &mut write_err,
                set.keep_all,
            );
            if set.count.is_some_and(|c| stats.packets >= c) {
                counted_out = true;
            }
        });
        flush_files(&mut files, &mut write_err, true)?;
        if let Err(e) = polled {
            break End::SourceFailed(e.to_string());
        }
        if counted_out {
            break End::Count;
        }
        if an.output_closed() {
            break End::OutputClosed;
        }
        if last_view.elapsed() >= VIEW_EVERY {
            last_view = Instant::now();
            let source_stats = source.stats();
            view(&LiveView {
                analysis: &an,
                packets: stats.packets,
                written: files.as_ref().map_or(0, |f| f.packets),
                source: source_stats,
                elapsed: start.elapsed(),
            });
        }
    };
    // What the source still holds (a serial line's last frame) is part of the capture.
    if end != End::Count {
        source.finish(&mut |p| {
            take(
                p,
                &mut stats,
                &mut decoder,
                &mut an,
                files.as_mut(),
                &mut write_err,
                set.keep_all,
            );
        });
        flush_files(&mut files, &mut write_err, false)?;
    }
    let source_stats = source.stats();
    decoder.finish(&mut an);
    an.finish();
    let summary = SummaryData::take(&mut an);
    drop(an);
    let (files_left, written, removed) = match files {
        Some(f) => {
            let (w, r) = (f.packets, f.removed);
            (f.finish()?, w, r)
        }
        None => (Vec::new(), 0, 0),
    };
    let end = match rows.finish() {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => End::OutputClosed,
        Err(e) => return Err(e.into()),
        Ok(()) => end,
    };
    Ok(Captured {
        decoded: Decoded {
            stats,
            health: decoder.health,
            summary,
        },
        source: source_stats,
        files: files_left,
        written,
        removed,
        end,
        elapsed: start.elapsed(),
    })
}

/// Write what the files hold (and start the next of a `--rotate` series when `tick`); after a
/// write error, close them as they are (valid up to their last whole packet) and return it.
fn flush_files(
    files: &mut Option<CaptureFiles>,
    write_err: &mut Option<anyhow::Error>,
    tick: bool,
) -> anyhow::Result<()> {
    if let (Some(f), None) = (files.as_mut(), &*write_err) {
        let r =
            f.flush()
                .map_err(anyhow::Error::from)
                .and_then(|()| if tick { f.tick() } else { Ok(()) });
        if let Err(e) = r {
            *write_err = Some(e);
        }
    }
    match write_err.take() {
        Some(e) => {
            drop(files.take().map(CaptureFiles::finish));
            Err(e.context(
                "writing the capture file failed; what was written before is a valid capture",
            ))
        }
        None => Ok(()),
    }
}

/// One packet: counted, decoded, and written when it belongs to a decoded flow (or all are
/// kept); a write error is kept for the caller, and nothing more is written after it.
#[allow(clippy::too_many_arguments)]
fn take(
    p: &crate::capture::reader::Packet<'_>,
    stats: &mut ReadStats,
    decoder: &mut Decoder,
    an: &mut Analysis<'_>,
    files: Option<&mut CaptureFiles>,
    write_err: &mut Option<anyhow::Error>,
    keep_all: bool,
) {
    stats.packets += 1;
    stats.bytes += p.data.len() as u64;
    if p.data.len() < p.orig_len as usize {
        stats.snapped += 1;
    }
    decoder.packet(p, an);
    if let (Some(f), None) = (files, &*write_err) {
        if keep_all || decoder.last_packet_decoded() {
            if let Err(e) = f.packet(p) {
                *write_err = Some(e);
            }
        }
    }
}

/// A link type in words, for the summary's first line.
fn linktype_name(linktype: u16) -> String {
    match linktype {
        1 => "Ethernet".into(),
        113 => "Linux cooked".into(),
        276 => "Linux cooked v2".into(),
        147 => "USER0: raw Modbus RTU frames".into(),
        250 => "RTAC serial".into(),
        252 => "exported PDUs: Modbus RTU frames".into(),
        n => format!("link type {n}"),
    }
}
