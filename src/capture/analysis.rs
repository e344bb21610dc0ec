//! What a capture says about a line: requests paired with responses (Modbus: flow +
//! transaction id + unit; a serial line is one flow with transaction id 0, and a new request on
//! it gives up the one before; OPC UA: flow + request handle), per-device counts, exceptions by
//! code, unanswered requests, response times (min/p50/p95/max), malformed PDUs, duplicate
//! transaction ids, writes (who wrote what, where, when) and how regularly each master polls.
//!
//! Memory is bounded: outstanding requests, poll series, and the lists kept for the summary
//! are capped; transactions and writes stream out through [`Emit`] as they complete.

use std::collections::BinaryHeap;

use rustc_hash::FxHashMap;

use super::{link::Addr, DeviceFilter, DeviceId, PduEvent, PduSink, Proto};
use crate::proto::{
    modbus::pdu::{Data, Direction},
    opcua,
};

/// Outstanding requests kept before the oldest are given up as unanswered.
pub const MAX_OUTSTANDING: usize = 1 << 16;
/// Poll series (master, device, function, address, count) followed.
pub const MAX_POLL_SERIES: usize = 1 << 15;
/// Items kept in each summary list (writes, failures, malformed).
pub const KEEP: usize = 1000;
/// Devices followed one by one; traffic of further devices is counted together under
/// [`OTHER_DEVICES`].
pub const MAX_DEVICES: usize = 4096;
/// The device that stands for every device beyond [`MAX_DEVICES`].
pub const OTHER_DEVICES: DeviceId = DeviceId {
    addr: Addr([0; 16]),
    port: 0,
    unit: None,
};

/// How a transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxStatus {
    /// Answered normally.
    Ok,
    /// Modbus exception response.
    Exception(u8),
    /// OPC UA response with a bad service result.
    BadStatus(u32),
    /// No response in the capture.
    Unanswered,
    /// The response's function code is not the request's (a confused or corrupting device).
    Mismatch(u8),
}

impl TxStatus {
    /// Short word for tables and files.
    #[must_use]
    pub fn word(self) -> &'static str {
        match self {
            TxStatus::Ok => "ok",
            TxStatus::Exception(_) => "exception",
            TxStatus::BadStatus(_) => "bad-status",
            TxStatus::Unanswered => "unanswered",
            TxStatus::Mismatch(_) => "mismatch",
        }
    }

    /// Failed?
    #[must_use]
    pub fn failed(self) -> bool {
        self != TxStatus::Ok
    }
}

/// A request and what became of it.
#[derive(Debug, Clone)]
pub struct Transaction {
    /// Protocol.
    pub proto: Proto,
    /// Client (master) address.
    pub master: Addr,
    /// Client port.
    pub master_port: u16,
    /// Device.
    pub device: DeviceId,
    /// Request frame.
    pub req_frame: u64,
    /// Request time, ns.
    pub req_ts_ns: i64,
    /// Response frame.
    pub resp_frame: Option<u64>,
    /// Response time, ns.
    pub resp_ts_ns: Option<i64>,
    /// Modbus transaction id or OPC UA request handle.
    pub id: u32,
    /// Modbus function code or OPC UA service encoding id.
    pub function: u32,
    /// Start address (Modbus).
    pub address: Option<u16>,
    /// Quantity (Modbus).
    pub count: Option<u16>,
    /// FC 23: the address and quantity written (`address`/`count` are the read part).
    pub write: Option<(u16, u16)>,
    /// Outcome.
    pub status: TxStatus,
    /// Values written (writes only): registers, or coils as 0/1; OPC UA: rendered values.
    pub written: Option<Written>,
}

impl Transaction {
    /// Response time.
    #[must_use]
    pub fn rt_ns(&self) -> Option<i64> {
        self.resp_ts_ns.map(|r| r - self.req_ts_ns)
    }

    /// Function or service name.
    #[must_use]
    pub fn function_name(&self) -> &'static str {
        match self.proto {
            Proto::OpcUa => opcua::service_name(self.function).unwrap_or("unknown service"),
            _ => crate::proto::modbus::pdu::function_name(u8::try_from(self.function).unwrap_or(0)),
        }
    }
}

/// Values of a write.
#[derive(Debug, Clone, PartialEq)]
pub enum Written {
    /// Modbus registers (FC 6, 16, 23) or coils as 0/1 (FC 5, 15).
    Modbus(Vec<u16>),
    /// FC 22 masks.
    Mask {
        /// AND mask.
        and: u16,
        /// OR mask.
        or: u16,
    },
    /// OPC UA nodes and values.
    OpcUa(Vec<(String, String)>),
    /// File record or other raw payload, hex.
    Raw(String),
}

/// Receives transactions (and writes among them) as they complete.
pub trait Emit {
    /// A completed (or given-up) transaction.
    fn transaction(&mut self, _t: &Transaction) {}
    /// A PDU, for `--pdus`.
    fn pdu(&mut self, _e: &PduEvent<'_>) {}
    /// The receiver cannot take more (its reader went away): a live capture stops.
    fn closed(&self) -> bool {
        false
    }
}

/// Log-linear histogram of durations in ns: 8 sub-buckets per power of two from 1 µs to 73
/// minutes (a quantile is the middle of its bucket: within 6 %), 1 KiB, allocated on first
/// use. Min and max are exact.
#[derive(Debug, Default, Clone)]
pub struct LogHist {
    counts: Vec<u32>,
    n: u64,
    min: u64,
    max: u64,
}

impl LogHist {
    const SUB: usize = 8;
    const LOW: usize = 10; // 2^10 ns ≈ 1 µs: everything below is one bucket
    const BUCKETS: usize = 1 + (42 - Self::LOW) * Self::SUB;

    fn index(v: u64) -> usize {
        if v < 1 << Self::LOW {
            return 0;
        }
        let e = 63 - v.leading_zeros() as usize;
        let i = 1 + (e - Self::LOW) * Self::SUB + ((v >> (e - 3)) & 7) as usize;
        i.min(Self::BUCKETS - 1)
    }

    fn lower(i: usize) -> u64 {
        if i == 0 {
            return 0;
        }
        let e = (i - 1) / Self::SUB + Self::LOW;
        let sub = ((i - 1) % Self::SUB) as u64;
        (8 + sub) << (e - 3)
    }

    /// Record one value.
    pub fn record(&mut self, v: u64) {
        if self.counts.is_empty() {
            self.counts = vec![0; Self::BUCKETS];
            self.min = u64::MAX;
        }
        let i = Self::index(v).min(self.counts.len() - 1);
        self.counts[i] = self.counts[i].saturating_add(1);
        self.n += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    /// Number of values.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.n
    }

    /// No values.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Smallest value.
    #[must_use]
    pub fn min(&self) -> Option<u64> {
        (self.n > 0).then_some(self.min)
    }

    /// Largest value.
    #[must_use]
    pub fn max(&self) -> Option<u64> {
        (self.n > 0).then_some(self.max)
    }

    /// Quantile `q` (0..=1), the middle of its bucket, clamped to [min, max].
    #[must_use]
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.n == 0 {
            return None;
        }
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let rank = ((q * self.n as f64).ceil() as u64).clamp(1, self.n);
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += u64::from(c);
            if seen >= rank {
                let lo = Self::lower(i);
                let hi = Self::lower(i + 1);
                return Some((lo + (hi - lo) / 2).clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }
}

/// Per-device figures.
#[derive(Debug, Clone)]
pub struct DeviceStats {
    /// Device.
    pub id: DeviceId,
    /// Protocol.
    pub proto: Proto,
    /// Requests seen.
    pub requests: u64,
    /// Responses seen.
    pub responses: u64,
    /// Requests answered (paired).
    pub answered: u64,
    /// Exception responses by code.
    pub exceptions: Vec<(u8, u64)>,
    /// OPC UA bad service results by code.
    pub bad_status: Vec<(u32, u64)>,
    /// Requests never answered.
    pub unanswered: u64,
    /// OPC UA Publish requests still parked at the server when the capture or connection ended.
    pub parked_publish: u64,
    /// Responses with no request in the capture.
    pub unmatched_responses: u64,
    /// Malformed PDUs.
    pub malformed: u64,
    /// A request reused an outstanding transaction id.
    pub duplicate_ids: u64,
    /// Write requests.
    pub writes: u64,
    /// Requests per function code / service.
    pub functions: Vec<(u32, u64)>,
    /// Response times.
    pub rt: LogHist,
    /// Masters that talked to it.
    pub masters: Vec<Addr>,
}

fn bump<K: PartialEq + Copy>(v: &mut Vec<(K, u64)>, k: K) {
    match v.iter_mut().find(|(x, _)| *x == k) {
        Some((_, n)) => *n += 1,
        None => v.push((k, 1)),
    }
}

#[derive(Debug, Clone)]
struct Pending {
    frame: u64,
    ts_ns: i64,
    function: u32,
    address: Option<u16>,
    count: Option<u16>,
    write: Option<(u16, u16)>,
    master: Addr,
    master_port: u16,
    device: u32,
    id: u32,
    written: Option<Box<Written>>,
}

impl Pending {
    /// The transaction this request became: answered in `resp` (frame, time), or not.
    fn into_tx(
        self,
        proto: Proto,
        device: DeviceId,
        resp: Option<(u64, i64)>,
        status: TxStatus,
    ) -> Transaction {
        Transaction {
            proto,
            master: self.master,
            master_port: self.master_port,
            device,
            req_frame: self.frame,
            req_ts_ns: self.ts_ns,
            resp_frame: resp.map(|r| r.0),
            resp_ts_ns: resp.map(|r| r.1),
            id: self.id,
            function: self.function,
            address: self.address,
            count: self.count,
            write: self.write,
            status,
            written: self.written.map(|b| *b),
        }
    }
}

/// Poll series key: one master reading one thing from one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PollKey {
    /// Master.
    pub master: Addr,
    /// Device index.
    pub device: u32,
    /// Function code.
    pub fc: u8,
    /// Address.
    pub address: u16,
    /// Quantity.
    pub count: u16,
}

/// Intervals between successive requests of one poll series (Welford mean and variance).
#[derive(Debug, Clone, Copy, Default)]
pub struct PollStats {
    /// Requests.
    pub n: u64,
    last_ns: i64,
    mean: f64,
    m2: f64,
    /// Shortest interval, ns.
    pub min_ns: i64,
    /// Longest interval, ns.
    pub max_ns: i64,
}

impl PollStats {
    fn add(&mut self, ts: i64) {
        if self.n > 0 {
            let dt = ts - self.last_ns;
            let k = self.n; // intervals so far + 1
            #[allow(clippy::cast_precision_loss)]
            let x = dt as f64;
            #[allow(clippy::cast_precision_loss)]
            let kf = k as f64;
            let d = x - self.mean;
            self.mean += d / kf;
            self.m2 += d * (x - self.mean);
            if k == 1 {
                self.min_ns = dt;
                self.max_ns = dt;
            } else {
                self.min_ns = self.min_ns.min(dt);
                self.max_ns = self.max_ns.max(dt);
            }
        }
        self.n += 1;
        self.last_ns = ts;
    }

    /// Mean interval, seconds.
    #[must_use]
    pub fn mean_s(&self) -> Option<f64> {
        (self.n > 1).then(|| self.mean / 1e9)
    }

    /// Standard deviation of the interval relative to its mean (0 = perfectly regular).
    #[must_use]
    pub fn jitter(&self) -> Option<f64> {
        #[allow(clippy::cast_precision_loss)]
        (self.n > 2 && self.mean > 0.0).then(|| (self.m2 / (self.n - 2) as f64).sqrt() / self.mean)
    }
}

/// A slow transaction kept for the summary (min-heap by response time).
#[derive(Debug, Clone)]
struct Slow(i64, Transaction);
impl PartialEq for Slow {
    fn eq(&self, o: &Self) -> bool {
        self.0 == o.0
    }
}
impl Eq for Slow {}
impl PartialOrd for Slow {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Slow {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        o.0.cmp(&self.0)
    }
}

/// A malformed PDU kept for the summary.
#[derive(Debug, Clone)]
pub struct MalformedPdu {
    /// Frame.
    pub frame: u64,
    /// Device.
    pub device: DeviceId,
    /// Protocol.
    pub proto: Proto,
    /// What is wrong.
    pub what: String,
}

/// OPC UA totals.
#[derive(Debug, Default, Clone)]
pub struct OpcUaTotals {
    /// Messages by type.
    pub types: Vec<(&'static str, u64)>,
    /// Messages by service.
    pub services: Vec<(u32, u64)>,
    /// Security policies seen in OPN.
    pub policies: Vec<(String, u64)>,
    /// Endpoint URLs seen in HEL.
    pub endpoints: Vec<(String, u64)>,
    /// Messages whose body was not readable (encrypted).
    pub opaque: u64,
    /// ERR messages: code and reason.
    pub errors: Vec<(u32, String)>,
}

/// Direct-mapped cache of a flow's device and master indexes (most PDUs hit it, sparing two
/// hash lookups each).
#[derive(Clone, Copy)]
struct Slot {
    flow: u32,
    unit: u16,
    device: u32,
    master: u32,
}

const SLOTS: usize = 1 << 12;

/// Everything the analysis found.
pub struct Analysis<'e> {
    slots: Vec<Slot>,
    masters: Vec<Addr>,
    master_index: FxHashMap<Addr, u32>,
    poll_index: FxHashMap<u128, u32>,
    poll_stats: Vec<(PollKey, PollStats)>,
    filter: Option<DeviceFilter>,
    emit: &'e mut dyn Emit,
    /// Devices, in order of first appearance.
    pub devices: Vec<DeviceStats>,
    index: FxHashMap<DeviceId, u32>,
    pending: FxHashMap<u64, Pending>,
    /// Serial lines: the key of the one request outstanding on each line (flow), if any.
    line_pending: FxHashMap<u32, u64>,

    /// Poll series not followed because of the cap.
    pub polls_dropped: u64,
    slow: BinaryHeap<Slow>,
    /// First writes (up to [`KEEP`]).
    pub writes: Vec<Transaction>,
    /// All writes.
    pub writes_total: u64,
    /// First failed transactions (up to [`KEEP`]).
    pub failures: Vec<Transaction>,
    /// All failed transactions.
    pub failures_total: u64,
    /// First malformed PDUs.
    pub malformed: Vec<MalformedPdu>,
    /// Modbus PDUs.
    pub modbus_pdus: u64,
    /// OPC UA messages.
    pub opcua_msgs: u64,
    /// OPC UA totals.
    pub opcua: OpcUaTotals,
    /// First and last PDU time.
    pub span_ns: Option<(i64, i64)>,
    /// Whether PDUs go to `emit.pdu`.
    pub want_pdus: bool,
    /// Whether every transaction goes to `emit.transaction` (else only those the summary keeps
    /// are built: writes, failures, the slowest).
    pub want_tx: bool,
}

impl<'e> Analysis<'e> {
    /// An empty analysis sending completed transactions to `emit`.
    pub fn new(filter: Option<DeviceFilter>, emit: &'e mut dyn Emit) -> Analysis<'e> {
        Analysis {
            filter,
            emit,
            devices: Vec::new(),
            index: FxHashMap::default(),
            pending: FxHashMap::default(),
            line_pending: FxHashMap::default(),
            slots: vec![
                Slot {
                    flow: u32::MAX,
                    unit: 0,
                    device: 0,
                    master: 0,
                };
                SLOTS
            ],
            masters: Vec::new(),
            master_index: FxHashMap::default(),
            poll_index: FxHashMap::default(),
            poll_stats: Vec::new(),
            polls_dropped: 0,
            slow: BinaryHeap::new(),
            writes: Vec::new(),
            writes_total: 0,
            failures: Vec::new(),
            failures_total: 0,
            malformed: Vec::new(),
            modbus_pdus: 0,
            opcua_msgs: 0,
            opcua: OpcUaTotals::default(),
            span_ns: None,
            want_pdus: false,
            want_tx: false,
        }
    }

    /// Has the receiver of transactions gone away (e.g. a closed pipe)?
    #[must_use]
    pub fn output_closed(&self) -> bool {
        self.emit.closed()
    }

    /// The slowest transactions, slowest first.
    #[must_use]
    pub fn slowest(&self) -> Vec<Transaction> {
        let mut v: Vec<Slow> = self.slow.clone().into_vec();
        v.sort_by_key(|s| std::cmp::Reverse(s.0));
        v.into_iter().map(|s| s.1).collect()
    }

    /// Poll series, in order of first request.
    #[must_use]
    pub fn polls(&self) -> &[(PollKey, PollStats)] {
        &self.poll_stats
    }

    /// Device and master indexes of an event, through the flow cache.
    #[inline]
    fn ids(&mut self, e: &PduEvent<'_>) -> (u32, u32) {
        let unit = e.device.unit.map_or(0x100, u16::from);
        let slot = self.slots[e.flow as usize & (SLOTS - 1)];
        if slot.flow == e.flow && slot.unit == unit {
            return (slot.device, slot.master);
        }
        let device = self.device(e.device, e.proto);
        let master_addr = match e.dir {
            Direction::Query => e.src,
            Direction::Response => e.dst,
        };
        let next = u32::try_from(self.masters.len()).unwrap_or(u32::MAX);
        let master = *self.master_index.entry(master_addr).or_insert(next);
        if master == next {
            self.masters.push(master_addr);
        }
        self.slots[e.flow as usize & (SLOTS - 1)] = Slot {
            flow: e.flow,
            unit,
            device,
            master,
        };
        (device, master)
    }

    fn device(&mut self, id: DeviceId, proto: Proto) -> u32 {
        if let Some(&i) = self.index.get(&id) {
            return i;
        }
        if self.devices.len() >= MAX_DEVICES && id != OTHER_DEVICES {
            return self.device(OTHER_DEVICES, proto);
        }
        let i = u32::try_from(self.devices.len()).unwrap_or(u32::MAX);
        self.devices.push(DeviceStats {
            id,
            proto,
            requests: 0,
            responses: 0,
            answered: 0,
            exceptions: Vec::new(),
            bad_status: Vec::new(),
            unanswered: 0,
            parked_publish: 0,
            unmatched_responses: 0,
            malformed: 0,
            duplicate_ids: 0,
            writes: 0,
            functions: Vec::new(),
            rt: LogHist::default(),
            masters: Vec::new(),
        });
        self.index.insert(id, i);
        i
    }

    /// Does a completed transaction need building (someone wants it)?
    fn keeps(&self, written: bool, status: TxStatus, rt: i64) -> bool {
        self.want_tx
            || written
            || status.failed()
            || self.slow.len() < 10
            || self.slow.peek().is_some_and(|s| s.0 < rt)
    }

    #[allow(clippy::needless_pass_by_value)]
    fn finish_tx(&mut self, t: Transaction) {
        if t.written.is_some() {
            self.writes_total += 1;
            if self.writes.len() < KEEP {
                self.writes.push(t.clone());
            }
        }
        if t.status.failed() {
            self.failures_total += 1;
            if self.failures.len() < KEEP {
                self.failures.push(t.clone());
            }
        }
        if let Some(rt) = t.rt_ns() {
            if self.slow.len() < 10 {
                self.slow.push(Slow(rt, t.clone()));
            } else if self.slow.peek().is_some_and(|s| s.0 < rt) {
                self.slow.pop();
                self.slow.push(Slow(rt, t.clone()));
            }
        }
        self.emit.transaction(&t);
    }

    fn unanswered(&mut self, p: Pending) {
        let d = &mut self.devices[p.device as usize];
        // A server parks Publish requests until it has notifications: one still open when the
        // capture or the connection ends was not refused, just not needed yet.
        if d.proto == Proto::OpcUa && p.function == 826 {
            d.parked_publish += 1;
            return;
        }
        d.unanswered += 1;
        let (proto, id) = (d.proto, d.id);
        self.finish_tx(p.into_tx(proto, id, None, TxStatus::Unanswered));
    }

    /// A request answered by the response `e`: response time, and the transaction when kept.
    fn answered(&mut self, req: Pending, e: &PduEvent<'_>, status: TxStatus) {
        let rt = e.ts_ns - req.ts_ns;
        let d = &mut self.devices[req.device as usize];
        d.answered += 1;
        d.rt.record(u64::try_from(rt).unwrap_or(0));
        if self.keeps(req.written.is_some(), status, rt) {
            let t = req.into_tx(e.proto, e.device, Some((e.frame, e.ts_ns)), status);
            self.finish_tx(t);
        }
    }

    fn make_room(&mut self) {
        if self.pending.len() < MAX_OUTSTANDING {
            return;
        }
        let mut ts: Vec<i64> = self.pending.values().map(|p| p.ts_ns).collect();
        let mid = ts.len() / 2;
        let cut = *ts.select_nth_unstable(mid).1;
        let old: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.ts_ns <= cut)
            .map(|(k, _)| *k)
            .collect();
        for k in old {
            if let Some(p) = self.pending.remove(&k) {
                self.unanswered(p);
            }
        }
    }

    fn modbus(&mut self, e: &PduEvent<'_>) {
        let Some(mf) = e.modbus else { return };
        self.modbus_pdus += 1;
        let (di, mi) = self.ids(e);
        let p = &mf.pdu;
        let trans = mf.mbap.map_or(0, |m| m.trans_id);
        let key = (u64::from(e.flow) << 32) | (u64::from(trans) << 8) | u64::from(mf.unit);
        if p.malformed {
            self.devices[di as usize].malformed += 1;
            if self.malformed.len() < KEEP {
                let what = match mf.crc_ok {
                    Some(false) => "CRC error".to_string(),
                    _ => format!("function {} PDU too short or inconsistent", p.fc_raw),
                };
                self.malformed.push(MalformedPdu {
                    frame: e.frame,
                    device: e.device,
                    proto: e.proto,
                    what,
                });
            }
        }
        let serial = e.proto == Proto::ModbusRtu;
        if serial && mf.crc_ok == Some(false) {
            // A device ignores a request with a bad CRC, a master discards such an answer: the
            // frame is counted (malformed, CRC error), never paired.
            return;
        }
        if serial && e.dir == Direction::Query {
            // One master, one request at a time: a new request gives up the one before it
            // (its unit did not answer, and the master moved on or asked again).
            if let Some(k) = self.line_pending.remove(&e.flow) {
                if let Some(old) = self.pending.remove(&k) {
                    self.unanswered(old);
                }
            }
            self.line_pending.insert(e.flow, key);
        }
        match e.dir {
            Direction::Query => {
                let d = &mut self.devices[di as usize];
                d.requests += 1;
                bump(&mut d.functions, u32::from(p.fc()));
                if !d.masters.contains(&e.src) && d.masters.len() < 16 {
                    d.masters.push(e.src);
                }
                let written = written_of(p).map(Box::new);
                if written.is_some() {
                    d.writes += 1;
                }
                if matches!(p.fc(), 1..=4 | 23) {
                    self.poll(mi, di, p.fc(), p.address, p.count, e.ts_ns);
                }
                let pending = Pending {
                    frame: e.frame,
                    ts_ns: e.ts_ns,
                    function: u32::from(p.fc()),
                    address: p.address,
                    count: p.count,
                    write: p.write_address.zip(p.write_count),
                    master: e.src,
                    master_port: e.sport,
                    device: di,
                    id: u32::from(trans),
                    written,
                };
                self.make_room();
                if let Some(old) = self.pending.insert(key, pending) {
                    self.devices[di as usize].duplicate_ids += 1;
                    self.unanswered(old);
                }
            }
            Direction::Response => {
                let d = &mut self.devices[di as usize];
                d.responses += 1;
                if let Some(x) = p.exception {
                    bump(&mut d.exceptions, x);
                }
                if serial && self.line_pending.get(&e.flow) == Some(&key) {
                    self.line_pending.remove(&e.flow);
                }
                match self.pending.remove(&key) {
                    Some(req) => {
                        let status = match p.exception {
                            Some(x) => TxStatus::Exception(x),
                            None if u32::from(p.fc()) != req.function => TxStatus::Mismatch(p.fc()),
                            None => TxStatus::Ok,
                        };
                        self.answered(req, e, status);
                    }
                    None => self.devices[di as usize].unmatched_responses += 1,
                }
            }
        }
    }

    fn poll(&mut self, master: u32, device: u32, fc: u8, a: Option<u16>, n: Option<u16>, ts: i64) {
        let (a, n) = (a.unwrap_or(0), n.unwrap_or(0));
        let key = (u128::from(master) << 64)
            | (u128::from(device) << 32)
            | (u128::from(fc) << 24)
            | (u128::from(a) << 8)
            | u128::from(n >> 8)
            | (u128::from(n & 0xff) << 96);
        if let Some(&i) = self.poll_index.get(&key) {
            self.poll_stats[i as usize].1.add(ts);
        } else if self.poll_stats.len() < MAX_POLL_SERIES {
            let mut s = PollStats::default();
            s.add(ts);
            let k = PollKey {
                master: self.masters[master as usize],
                device,
                fc,
                address: a,
                count: n,
            };
            self.poll_index.insert(
                key,
                u32::try_from(self.poll_stats.len()).unwrap_or(u32::MAX),
            );
            self.poll_stats.push((k, s));
        } else {
            self.polls_dropped += 1;
        }
    }

    fn opcua_msg(&mut self, e: &PduEvent<'_>) {
        let Some(m) = e.opcua else { return };
        self.opcua_msgs += 1;
        let (di, _) = self.ids(e);
        let o = &mut self.opcua;
        bump(&mut o.types, m.msg_type);
        if let Some(u) = &m.policy_uri {
            let short = u.rsplit('#').next().unwrap_or(u).to_string();
            match o.policies.iter_mut().find(|(p, _)| *p == short) {
                Some((_, n)) => *n += 1,
                None => o.policies.push((short, 1)),
            }
        }
        if let Some(u) = &m.endpoint {
            if let Some((_, n)) = o.endpoints.iter_mut().find(|(p, _)| p == u) {
                *n += 1;
            } else if o.endpoints.len() < 64 {
                o.endpoints.push((u.clone(), 1));
            }
        }
        if let (Some(c), true) = (m.error, m.msg_type == "ERR") {
            if o.errors.len() < KEEP {
                o.errors.push((c, m.reason.clone().unwrap_or_default()));
            }
        }
        if m.opaque {
            o.opaque += 1;
        }
        if m.malformed {
            self.devices[di as usize].malformed += 1;
            if self.malformed.len() < KEEP {
                self.malformed.push(MalformedPdu {
                    frame: e.frame,
                    device: e.device,
                    proto: e.proto,
                    what: format!("{} message shorter than its structure", m.msg_type),
                });
            }
        }
        let Some(sid) = m.service_id else { return };
        bump(&mut self.opcua.services, sid);
        let handle = m.request_handle.unwrap_or(0);
        let key = (u64::from(e.flow) << 32) | u64::from(handle);
        // CloseSecureChannel has no response (OPC 10000-4 §5.5.3): nothing to pair.
        if sid == 452 {
            return;
        }
        if m.is_request() {
            let d = &mut self.devices[di as usize];
            d.requests += 1;
            bump(&mut d.functions, sid);
            if !d.masters.contains(&e.src) && d.masters.len() < 16 {
                d.masters.push(e.src);
            }
            let written = (sid == 673).then(|| {
                d.writes += 1;
                Box::new(Written::OpcUa(
                    m.nodes
                        .iter()
                        .map(|n| (n.node.clone(), n.value.clone().unwrap_or_default()))
                        .collect(),
                ))
            });
            let pending = Pending {
                frame: e.frame,
                ts_ns: e.ts_ns,
                function: sid,
                address: None,
                count: None,
                write: None,
                master: e.src,
                master_port: e.sport,
                device: di,
                id: handle,
                written,
            };
            self.make_room();
            if let Some(old) = self.pending.insert(key, pending) {
                // Publish requests legitimately share handle 0 on some stacks; count, don't warn.
                self.devices[di as usize].duplicate_ids += 1;
                self.unanswered(old);
            }
        } else {
            let d = &mut self.devices[di as usize];
            d.responses += 1;
            let sr = m.service_result.unwrap_or(0);
            if sr & 0x8000_0000 != 0 {
                bump(&mut d.bad_status, sr);
            }
            match self.pending.remove(&key) {
                Some(req) => {
                    let status = if sr & 0x8000_0000 != 0 {
                        TxStatus::BadStatus(sr)
                    } else {
                        TxStatus::Ok
                    };
                    self.answered(req, e, status);
                }
                None => self.devices[di as usize].unmatched_responses += 1,
            }
        }
    }

    /// End of capture: every request still outstanding is unanswered.
    pub fn finish(&mut self) {
        self.line_pending.clear();
        let mut left: Vec<(u64, Pending)> = self.pending.drain().collect();
        left.sort_by_key(|(_, p)| p.frame);
        for (_, p) in left {
            self.unanswered(p);
        }
    }
}

fn written_of(p: &crate::proto::modbus::pdu::Pdu<'_>) -> Option<Written> {
    if !p.is_write() {
        return None;
    }
    Some(match p.fc() {
        5 => Written::Modbus(vec![u16::from(p.value == Some(0xff00))]),
        6 => Written::Modbus(p.value.into_iter().collect()),
        15 => {
            let n = usize::from(p.count.unwrap_or(0));
            let bits = match p.data {
                Data::Bits(b) => b,
                _ => &[],
            };
            Written::Modbus(
                (0..n.min(bits.len() * 8))
                    .map(|i| u16::from(bits[i / 8] >> (i % 8) & 1))
                    .collect(),
            )
        }
        22 => Written::Mask {
            and: p.and_mask.unwrap_or(0),
            or: p.or_mask.unwrap_or(0),
        },
        16 | 23 => Written::Modbus(p.registers().collect()),
        _ => Written::Raw(match p.data {
            Data::Raw(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
            _ => String::new(),
        }),
    })
}

impl PduSink for Analysis<'_> {
    fn pdu(&mut self, e: &PduEvent<'_>) {
        if let Some(f) = &self.filter {
            if !f.matches(&e.device) {
                return;
            }
        }
        self.span_ns = Some(match self.span_ns {
            Some((a, b)) => (a.min(e.ts_ns), b.max(e.ts_ns)),
            None => (e.ts_ns, e.ts_ns),
        });
        if self.want_pdus {
            self.emit.pdu(e);
        }
        match e.proto {
            Proto::OpcUa => self.opcua_msg(e),
            _ => self.modbus(e),
        }
    }

    fn flow_closed(&mut self, flow: u32) {
        self.line_pending.remove(&flow);
        if self.pending.is_empty() {
            return;
        }
        let keys: Vec<u64> = self
            .pending
            .keys()
            .filter(|k| (*k >> 32) as u32 == flow)
            .copied()
            .collect();
        let mut left: Vec<(u64, Pending)> = keys
            .into_iter()
            .filter_map(|k| self.pending.remove(&k).map(|p| (k, p)))
            .collect();
        left.sort_by_key(|(_, p)| p.frame);
        for (_, p) in left {
            self.unanswered(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_are_close() {
        let mut h = LogHist::default();
        for v in 1..=10_000u64 {
            h.record(v * 1000);
        }
        let p50 = h.quantile(0.5).unwrap() as f64;
        let p95 = h.quantile(0.95).unwrap() as f64;
        assert!((p50 / 5_000_000.0 - 1.0).abs() < 0.07, "{p50}");
        assert!((p95 / 9_500_000.0 - 1.0).abs() < 0.07, "{p95}");
        assert_eq!(h.min(), Some(1000));
        assert_eq!(h.max(), Some(10_000_000));
        h.record(1 << 50);
        assert_eq!(h.max(), Some(1 << 50));
        for i in 1..LogHist::BUCKETS - 1 {
            assert!(LogHist::lower(i) < LogHist::lower(i + 1));
            assert_eq!(LogHist::index(LogHist::lower(i)), i);
        }
    }

    #[test]
    fn poll_regularity() {
        let mut s = PollStats::default();
        for i in 0..10 {
            s.add(i * 1_000_000_000);
        }
        assert!((s.mean_s().unwrap() - 1.0).abs() < 1e-9);
        assert!(s.jitter().unwrap() < 1e-9);
    }
}
