//! The decode pipeline: a capture file read packet by packet through the capture decoder and
//! its analysis, rows streamed out as transactions complete (bounded memory whatever the
//! capture's size), and what the summary needs kept at the end.
//!
//! The summary (no rows) runs on three threads, the work of two cores: one reads the file and
//! cuts its records, one decodes packets into PDU events (the [`Decoder`]), one analyses them
//! (the [`Analysis`]). Events cross in batches, owned, in the order the decoder made them, to
//! the one analysis: the results are those of one thread, by construction. The modes with rows
//! run decoder and analysis on one thread (rows go to stdout, in order, as they complete).

use std::{
    io::{self, Write},
    path::Path,
    sync::mpsc,
};

use super::rows::{pdu_cells, TxCells, PDU_COLUMNS, PDU_TABLE, TX_COLUMNS, TX_TABLE};
use crate::{
    capture::{
        analysis::{Analysis, Emit, Transaction},
        reader::{self, ReadStats},
        Config, Decoder, DeviceFilter, Health, ModbusFrame, PduEvent, PduSink,
    },
    clock::UtcMicros,
    proto::{
        modbus::pdu::{Data, Pdu},
        opcua::Message,
    },
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
    pub(super) span_ns: Option<(i64, i64)>,
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
    let size = std::fs::metadata(path).map_or(0, |m| m.len());
    pb.set_length(size);
    let mut decoder = Decoder::new(cfg);
    let mut seen = 0u64;
    let mut progress = |p: &reader::Packet<'_>| {
        seen += p.data.len() as u64 + 16;
        if p.frame.trailing_zeros() >= 16 {
            pb.set_position(seen.min(size));
        }
    };
    if mode == Mode::Summary {
        let (stats, summary) = summary_on_two_cores(path, &mut decoder, filter, &mut progress)?;
        pb.finish_and_clear();
        return Ok(Decoded {
            stats,
            health: decoder.health,
            summary,
        });
    }
    let mut rows = RowSink::new(out, format, mode);
    let mut an = Analysis::new(filter, &mut rows);
    an.want_pdus = mode == Mode::Pdus;
    an.want_tx = mode == Mode::Transactions;
    an.want_writes = mode == Mode::Writes;
    let stats = reader::for_each_packet_threaded(path, |p| {
        decoder.packet(p, &mut an);
        progress(p);
    })?;
    decoder.finish(&mut an);
    an.finish();
    pb.finish_and_clear();
    let summary = summary_of(&mut an);
    drop(an);
    rows.finish()?;
    Ok(Decoded {
        stats,
        health: decoder.health,
        summary,
    })
}

/// What the summary keeps of a finished analysis.
fn summary_of(an: &mut Analysis<'_>) -> SummaryData {
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
        span_ns: an.span_ns,
    }
}

/// The summary with the analysis on a thread of its own: this thread decodes packets into
/// events, queued in batches to the analysis, which sees them in the same order as on one
/// thread.
fn summary_on_two_cores(
    path: &Path,
    decoder: &mut Decoder,
    filter: Option<DeviceFilter>,
    progress: &mut dyn FnMut(&reader::Packet<'_>),
) -> anyhow::Result<(ReadStats, SummaryData)> {
    let (full_tx, full_rx) = mpsc::sync_channel::<EventBatch>(2);
    let (empty_tx, empty_rx) = mpsc::channel::<EventBatch>();
    for _ in 0..3 {
        let _ = empty_tx.send(EventBatch::default());
    }
    std::thread::scope(|sc| {
        let analysis = sc.spawn(move || {
            let mut discard = NoRows;
            let mut an = Analysis::new(filter, &mut discard);
            for mut b in full_rx {
                b.replay(&mut an);
                b.clear();
                let _ = empty_tx.send(b);
            }
            an.finish();
            summary_of(&mut an)
        });
        let mut queue = EventQueue {
            batch: empty_rx.recv().unwrap_or_default(),
            full: Some(full_tx),
            empty: empty_rx,
        };
        let stats = reader::for_each_packet_threaded(path, |p| {
            decoder.packet(p, &mut queue);
            progress(p);
        });
        if stats.is_ok() {
            decoder.finish(&mut queue);
        }
        queue.send();
        // The last batch is sent: closing the queue ends the analysis.
        queue.full = None;
        let summary = analysis
            .join()
            .map_err(|_| anyhow::anyhow!("the analysis thread failed"))?;
        Ok((stats?, summary))
    })
}

/// The summary needs no rows.
struct NoRows;
impl Emit for NoRows {}

/// A queued event: a PDU (its data bytes, if any, in the batch's `bytes`) or flows that ended
/// (in the batch's `flows`).
enum Queued {
    Pdu {
        e: PduEvent<'static>,
        data: Option<(DataKind, u32, u32)>,
        opcua: Option<Box<Message>>,
    },
    Closed(u32, u32),
}

#[derive(Clone, Copy)]
enum DataKind {
    Registers,
    Bits,
    Raw,
}

/// Events in decoder order, owned: the thread that made them can go on.
#[derive(Default)]
struct EventBatch {
    items: Vec<Queued>,
    bytes: Vec<u8>,
    flows: Vec<u32>,
}

impl EventBatch {
    /// Events per batch: a few hundred KiB.
    const EVENTS: usize = 4096;

    fn clear(&mut self) {
        self.items.clear();
        self.bytes.clear();
        self.flows.clear();
    }

    /// Hand every event to `sink`, in order.
    fn replay(&self, sink: &mut dyn PduSink) {
        for it in &self.items {
            match it {
                Queued::Pdu { e, data, opcua } => {
                    let mut ev: PduEvent<'_> = *e;
                    if let (Some(mf), Some((kind, at, len))) = (ev.modbus.as_mut(), *data) {
                        let b = &self.bytes[at as usize..(at + len) as usize];
                        mf.pdu.data = match kind {
                            DataKind::Registers => Data::Registers(b),
                            DataKind::Bits => Data::Bits(b),
                            DataKind::Raw => Data::Raw(b),
                        };
                    }
                    ev.opcua = opcua.as_deref();
                    sink.pdu(&ev);
                }
                Queued::Closed(at, len) => {
                    sink.flows_closed(&self.flows[*at as usize..(*at + *len) as usize]);
                }
            }
        }
    }
}

/// The decoder's sink on the decoding thread: events into batches, full batches to the
/// analysis thread (at most a few in flight: memory stays bounded).
struct EventQueue {
    batch: EventBatch,
    full: Option<mpsc::SyncSender<EventBatch>>,
    empty: mpsc::Receiver<EventBatch>,
}

impl EventQueue {
    fn send(&mut self) {
        if self.batch.items.is_empty() {
            return;
        }
        let next = self.empty.recv().unwrap_or_default();
        let full = std::mem::replace(&mut self.batch, next);
        if let Some(tx) = &self.full {
            // The analysis thread only ends when the queue closes: a failed send means it
            // failed, which its join reports.
            let _ = tx.send(full);
        }
    }

    fn push(&mut self, q: Queued) {
        self.batch.items.push(q);
        if self.batch.items.len() >= EventBatch::EVENTS {
            self.send();
        }
    }
}

/// A PDU with its data taken out (the data are queued apart).
fn detached(p: &Pdu<'_>) -> Pdu<'static> {
    Pdu {
        fc_raw: p.fc_raw,
        exception: p.exception,
        address: p.address,
        count: p.count,
        write_address: p.write_address,
        write_count: p.write_count,
        byte_count: p.byte_count,
        value: p.value,
        and_mask: p.and_mask,
        or_mask: p.or_mask,
        sub_function: p.sub_function,
        mei: p.mei,
        data: Data::None,
        malformed: p.malformed,
    }
}

impl PduSink for EventQueue {
    fn pdu(&mut self, e: &PduEvent<'_>) {
        let mut data = None;
        let modbus = e.modbus.map(|mf| {
            let (kind, b) = match mf.pdu.data {
                Data::None => (None, &[][..]),
                Data::Registers(b) => (Some(DataKind::Registers), b),
                Data::Bits(b) => (Some(DataKind::Bits), b),
                Data::Raw(b) => (Some(DataKind::Raw), b),
            };
            if let Some(k) = kind {
                let at = u32::try_from(self.batch.bytes.len()).unwrap_or(u32::MAX);
                self.batch.bytes.extend_from_slice(b);
                data = Some((k, at, u32::try_from(b.len()).unwrap_or(u32::MAX)));
            }
            ModbusFrame {
                mbap: mf.mbap,
                unit: mf.unit,
                pdu: detached(&mf.pdu),
                crc_ok: mf.crc_ok,
            }
        });
        let q = Queued::Pdu {
            e: PduEvent {
                frame: e.frame,
                ts_ns: e.ts_ns,
                index: e.index,
                flow: e.flow,
                src: e.src,
                dst: e.dst,
                sport: e.sport,
                dport: e.dport,
                proto: e.proto,
                dir: e.dir,
                device: e.device,
                modbus,
                opcua: None,
            },
            data,
            opcua: e.opcua.map(|m| Box::new(m.clone())),
        };
        self.push(q);
    }

    fn flow_closed(&mut self, flow: u32) {
        self.flows_closed(&[flow]);
    }

    fn flows_closed(&mut self, flows: &[u32]) {
        let at = u32::try_from(self.batch.flows.len()).unwrap_or(u32::MAX);
        self.batch.flows.extend_from_slice(flows);
        let len = u32::try_from(flows.len()).unwrap_or(u32::MAX);
        self.push(Queued::Closed(at, len));
    }
}

/// The analysis's callback: each transaction (or write, or PDU) of the chosen mode becomes a
/// row of the one row writer. A write error is kept and returned at the end (the analysis
/// cannot stop), as a closed pipe must end the run quietly.
struct RowSink<'w> {
    out: Option<RowWriter<'w>>,
    mode: Mode,
    tx: TxCells,
    clock: UtcMicros,
    err: Option<io::Error>,
}

impl<'w> RowSink<'w> {
    fn new(w: &'w mut dyn Write, format: Format, mode: Mode) -> Self {
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

    fn finish(self) -> io::Result<()> {
        if let Some(e) = self.err {
            return Err(e);
        }
        self.out.map_or(Ok(()), RowWriter::finish)
    }
}

impl Emit for RowSink<'_> {
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
    fn the_summary_on_two_cores_is_the_summary_on_one() {
        // `--writes` runs decoder and analysis on one thread, and its summary is the same
        // analysis as the summary's.
        let all = captures();
        assert!(!all.is_empty());
        let mut compared = 0;
        for p in &all {
            let Some(one) = summary(p, Mode::Writes, None) else {
                continue;
            };
            let two = summary(p, Mode::Summary, None).expect("decodes on two cores too");
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
