//! The decode pipeline: a capture file read packet by packet through the capture decoder and
//! its analysis, rows streamed out as transactions complete (bounded memory whatever the
//! capture's size), and what the summary needs kept at the end.

use std::{
    io::{self, Write},
    path::Path,
};

use super::rows::{pdu_cells, TxCells, PDU_COLUMNS, PDU_TABLE, TX_COLUMNS, TX_TABLE};
use crate::{
    capture::{
        analysis::{Analysis, Emit, Transaction},
        excerpt::Resolved,
        reader::{self, ReadStats},
        Config, Decoder, DeviceFilter, Health, PduEvent,
    },
    clock::UtcMicros,
    report::{Cell, Format, RowWriter},
};

/// What rows to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The summary at the end (no rows).
    Summary,
    /// One row per transaction.
    Transactions,
    /// One row per write.
    Writes,
    /// One row per PDU / message.
    Pdus,
}

/// Everything a decode run found.
pub struct Decoded {
    /// Reader statistics.
    pub stats: ReadStats,
    /// Decoder counters.
    pub health: Health,
    /// Summary material.
    pub summary: SummaryData,
}

/// The parts of the analysis a summary shows (owned, after the run).
pub struct SummaryData {
    pub(super) devices: Vec<crate::capture::analysis::DeviceStats>,
    pub(super) polls: Vec<(
        crate::capture::analysis::PollKey,
        crate::capture::analysis::PollStats,
    )>,
    pub(super) polls_dropped: u64,
    pub(super) slowest: Vec<Transaction>,
    pub(super) writes: Vec<Transaction>,
    pub(super) writes_total: u64,
    pub(super) failures: Vec<Transaction>,
    pub(super) failures_total: u64,
    pub(super) malformed: Vec<crate::capture::analysis::MalformedPdu>,
    pub(super) modbus_pdus: u64,
    pub(super) opcua_msgs: u64,
    pub(super) opcua: crate::capture::analysis::OpcUaTotals,
    pub(super) ics_msgs: Vec<(crate::capture::Proto, u64)>,
    pub(super) io: Vec<(
        crate::capture::analysis::IoKey,
        crate::capture::analysis::PollStats,
    )>,
    pub(super) span_ns: Option<(i64, i64)>,
}

impl SummaryData {
    /// What the summary needs, taken out of a finished analysis.
    pub(crate) fn take(an: &mut Analysis<'_>) -> SummaryData {
        SummaryData {
            devices: std::mem::take(&mut an.devices),
            polls: {
                // The busiest series first; the summary keeps the first KEEP.
                let mut v: Vec<_> = an.polls().to_vec();
                let keep = crate::capture::analysis::KEEP.min(v.len());
                if keep > 0 && keep < v.len() {
                    v.select_nth_unstable_by(keep - 1, |a, b| b.1.n.cmp(&a.1.n));
                    v.truncate(keep);
                }
                v.sort_by(|a, b| b.1.n.cmp(&a.1.n).then(a.0.cmp(&b.0)));
                v
            },
            polls_dropped: an.polls_dropped,
            slowest: an.slowest(),
            writes: std::mem::take(&mut an.writes),
            writes_total: an.writes_total,
            failures: std::mem::take(&mut an.failures),
            failures_total: an.failures_total,
            malformed: std::mem::take(&mut an.malformed),
            modbus_pdus: an.modbus_pdus,
            opcua_msgs: an.opcua_msgs,
            opcua: std::mem::take(&mut an.opcua),
            ics_msgs: std::mem::take(&mut an.ics_msgs),
            io: std::mem::take(&mut an.io),
            span_ns: an.span_ns,
        }
    }
}

/// Decode `path`, streaming rows of `mode` to `out` in `format`; `pb` shows the bytes read.
///
/// # Errors
/// The file is not a capture, or writing fails.
pub fn decode_file(
    path: &Path,
    cfg: Config,
    filter: Option<DeviceFilter>,
    mode: Mode,
    format: Format,
    out: &mut dyn Write,
    pb: &indicatif::ProgressBar,
) -> anyhow::Result<Decoded> {
    decode_window(path, None, cfg, filter, mode, format, out, pb)
}

/// [`decode_file`] of only the packets in `window` (`decode --from/--to`); frames keep their
/// numbers in the file.
///
/// # Errors
/// The file is not a capture, or writing fails.
#[allow(clippy::too_many_arguments)]
pub fn decode_window(
    path: &Path,
    window: Option<Resolved>,
    cfg: Config,
    filter: Option<DeviceFilter>,
    mode: Mode,
    format: Format,
    out: &mut dyn Write,
    pb: &indicatif::ProgressBar,
) -> anyhow::Result<Decoded> {
    let size = std::fs::metadata(path).map_or(0, |m| m.len());
    pb.set_length(size);
    let mut rows = RowSink::new(out, format, mode);
    let mut decoder = Decoder::new(cfg);
    let mut an = Analysis::new(filter, &mut rows);
    an.want_pdus = mode == Mode::Pdus;
    an.want_tx = mode == Mode::Transactions;
    an.want_writes = mode == Mode::Writes;
    let mut seen = 0u64;
    // The link layer is read on the reading thread, beside the file.
    let locate = |p: &reader::Packet<'_>| crate::capture::link::locate_segment(p.linktype, p.data);
    let stats = reader::for_each_packet_prepared(path, locate, |p, located| {
        seen += p.data.len() as u64 + 16;
        if window.is_none_or(|w| w.contains(p.ts_ns)) {
            decoder.packet_located(p, located, &mut an);
        }
        if p.frame.trailing_zeros() >= 16 {
            pb.set_position(seen.min(size));
        }
    })?;
    decoder.finish(&mut an);
    an.finish();
    pb.finish_and_clear();
    let summary = SummaryData::take(&mut an);
    drop(an);
    rows.finish()?;
    Ok(Decoded {
        stats,
        health: decoder.health,
        summary,
    })
}

/// The analysis's callback: each transaction (or write, or PDU) of the chosen mode becomes a
/// row of the one row writer. A write error is kept and returned at the end (the analysis
/// cannot stop), as a closed pipe must end the run quietly.
pub(crate) struct RowSink<'w> {
    out: Option<RowWriter<'w>>,
    mode: Mode,
    tx: TxCells,
    clock: UtcMicros,
    err: Option<io::Error>,
}

impl<'w> RowSink<'w> {
    pub(crate) fn new(w: &'w mut dyn Write, format: Format, mode: Mode) -> Self {
        let (columns, table): (&[&str], &[(&str, usize)]) = match mode {
            Mode::Summary => (&[], &[]),
            Mode::Pdus => (&PDU_COLUMNS, &PDU_TABLE),
            Mode::Transactions | Mode::Writes => (&TX_COLUMNS, &TX_TABLE),
        };
        let out = (mode != Mode::Summary).then(|| {
            let (names, widths): (Vec<&str>, Vec<usize>) = table.iter().copied().unzip();
            RowWriter::streaming(Box::new(w), format, columns, &widths)
                .table_columns(&names)
                .sparse()
                .flush_each(false)
        });
        Self::with_writer(out, mode)
    }

    /// Rows flushed one by one as they complete (a live capture: `tee` sees each at once).
    pub(crate) fn live(w: &'w mut dyn Write, format: Format, mode: Mode) -> Self {
        let mut s = Self::new(w, format, mode);
        s.out = s.out.map(|o| o.flush_each(true));
        s
    }

    fn with_writer(out: Option<RowWriter<'w>>, mode: Mode) -> Self {
        RowSink {
            out,
            mode,
            tx: TxCells::default(),
            clock: UtcMicros::default(),
            err: None,
        }
    }

    fn put(&mut self, r: io::Result<()>) {
        if let (Err(e), None) = (r, &self.err) {
            self.err = Some(e);
        }
    }

    pub(crate) fn finish(self) -> io::Result<()> {
        if let Some(e) = self.err {
            return Err(e);
        }
        self.out.map_or(Ok(()), RowWriter::finish)
    }
}

impl Emit for RowSink<'_> {
    fn closed(&self) -> bool {
        self.err.is_some()
    }

    fn transaction(&mut self, t: &Transaction) {
        let wanted = match self.mode {
            Mode::Transactions => true,
            Mode::Writes => t.written.is_some(),
            _ => false,
        };
        if let (true, Some(out), None) = (wanted, self.out.as_mut(), &self.err) {
            let r = out.row(&self.tx.cells(t));
            self.put(r);
        }
    }

    fn pdu(&mut self, e: &PduEvent<'_>) {
        if let (Mode::Pdus, Some(out), None) = (self.mode, self.out.as_mut(), &self.err) {
            let cells = pdu_cells(e, &mut self.clock);
            let r = out.row(&cells.iter().map(Cell::Json).collect::<Vec<_>>());
            self.put(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use serde_json::Value as Json;

    use crate::decode::summary::summary_doc;

    /// Every capture of the fixtures and of ../shared (when present).
    fn captures() -> Vec<PathBuf> {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let mut out = Vec::new();
        let mut dirs = vec![root.join("fixtures/pcap"), root.join("../shared/captures")];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p
                    .extension()
                    .is_some_and(|x| x == "pcap" || x == "pcapng" || x == "gz")
                {
                    out.push(p);
                }
            }
        }
        out.sort();
        out
    }

    fn summary(path: &Path, mode: Mode, filter: Option<DeviceFilter>) -> Option<Json> {
        let mut sink = Vec::new();
        let cfg = Config {
            opcua_nodes: true,
            ..Config::default()
        };
        let pb = indicatif::ProgressBar::hidden();
        let d = decode_file(path, cfg, filter, mode, Format::Jsonl, &mut sink, &pb).ok()?;
        let mut doc = summary_doc(path, &d);
        doc["generated_at"] = Json::Null;
        Some(doc)
    }

    #[test]
    fn the_summary_counts_what_it_does_not_keep_as_if_it_kept_it() {
        // `--writes` builds every write as a transaction (`want_writes`); the summary builds
        // only those it keeps and counts the rest: the same document.
        let all = captures();
        assert!(!all.is_empty());
        let mut compared = 0;
        for p in &all {
            let Some(one) = summary(p, Mode::Writes, None) else {
                continue;
            };
            let two = summary(p, Mode::Summary, None).expect("decodes in both modes");
            assert_eq!(one, two, "{}", p.display());
            compared += 1;
        }
        assert!(compared > 0);
        // With a device filter too.
        let f = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/pcap/modbus/sim-poll-exceptions-write.pcapng");
        let filter = DeviceFilter::parse("127.0.0.1").ok();
        assert_eq!(
            summary(&f, Mode::Writes, filter),
            summary(&f, Mode::Summary, filter)
        );
    }
}
