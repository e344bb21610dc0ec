//! What a capture says about a line: requests paired with responses (Modbus: flow +
//! transaction id + unit; a serial line is one flow with transaction id 0, and a new request on
//! it gives up the one before; OPC UA: flow + the secure channel's request id), per-device
//! counts, exceptions by code, unanswered requests, response times (min/p50/p95/max), malformed
//! PDUs, duplicate transaction ids, writes (who wrote what, where, when) and how regularly each
//! master polls.
//!
//! Memory is bounded: outstanding requests, poll series, and the lists kept for the summary
//! are capped; transactions and writes stream out through [`Emit`] as they complete.
//!
//! # Every request accounted for
//!
//! Each request a device is sent (a Modbus query, an OPC UA service request other than
//! `CloseSecureChannel`, which has no response: OPC 10000-4 §5.5.3) ends in exactly one of four
//! ways, and becomes exactly one [`Transaction`] with that [`TxStatus`] (all of them go to
//! [`Emit::transaction`] when [`Analysis::want_tx`] is on):
//!
//! - **answered** (`ok`, `exception`, `bad-status`, `mismatch`): its response came;
//! - **unanswered** (a failure): the capture shows that no answer is coming — its connection
//!   closed (FIN or RST) or was dropped from the flow table first, the master reused its
//!   transaction id (request id) while it was outstanding, more than [`MAX_OUTSTANDING`] newer
//!   requests were outstanding, or the capture ended after the master had sent a later request
//!   on the same connection (it had moved on: a device that stopped answering is not hidden as
//!   pending);
//! - **pending** (not a failure): still outstanding when the capture ended, and nothing after it
//!   shows whether an answer was coming — the last request on its connection, or a Publish;
//! - **held** (not a failure): an OPC UA Publish the server was holding when its connection
//!   ended. A server keeps Publish requests until it has notifications or a keep-alive is due,
//!   so a client always has some outstanding; when the channel closes they are simply not
//!   needed any more. This is its own status rather than `pending` because `pending` is the
//!   figure a live capture shows for "outstanding now": a Publish whose connection is gone is
//!   no longer outstanding, and counting it there would make that figure only ever grow.
//!
//! So per device, at every moment (during a live capture too, where `pending` is what is
//! outstanding now) and after [`Analysis::finish`]:
//! `requests = answered + unanswered + pending + held`, and
//! `responses = answered + unmatched_responses` (a response pairs with at most one request).
//! Traffic of a device the [`DeviceFilter`] leaves out is not counted at all; devices beyond
//! [`MAX_DEVICES`] are counted together under [`OTHER_DEVICES`], requests and outcomes alike.
//! Malformed PDUs are counted as malformed and, being requests or responses still, paired.

use std::collections::BinaryHeap;

use rustc_hash::FxHashMap;

use super::{link::Addr, Content, DeviceFilter, DeviceId, ModbusFrame, PduEvent, PduSink, Proto};
use crate::proto::{
    modbus::pdu::{Data, Direction},
    opcua::{self, Message},
};

/// Outstanding requests kept before the oldest are given up as unanswered.
pub const MAX_OUTSTANDING: usize = 1 << 16;
/// The encoding id of an OPC UA `PublishRequest` (a Modbus function code is below 256).
const PUBLISH: u32 = 826;
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
    /// No response, and the capture shows none is coming (see the module header).
    Unanswered,
    /// The response's function code is not the request's (a confused or corrupting device).
    Mismatch(u8),
    /// Still outstanding when the capture ended, with nothing after it to show whether an
    /// answer was coming. Not a failure.
    Pending,
    /// An OPC UA Publish the server was holding when its connection ended. Not a failure.
    Held,
    /// S7comm, CIP, DNP3 or BACnet answer that says the request failed, with the protocol's
    /// code (named by `capture::ics::status_name`).
    Error(u32),
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
            TxStatus::Pending => "pending",
            TxStatus::Held => "held",
            TxStatus::Error(_) => "error",
        }
    }

    /// Failed? (`pending` and `held` are not failures: nothing shows the device failed.)
    #[must_use]
    pub fn failed(self) -> bool {
        !matches!(self, TxStatus::Ok | TxStatus::Pending | TxStatus::Held)
    }

    /// Did a response come?
    #[must_use]
    pub fn answered(self) -> bool {
        matches!(
            self,
            TxStatus::Ok
                | TxStatus::Exception(_)
                | TxStatus::BadStatus(_)
                | TxStatus::Mismatch(_)
                | TxStatus::Error(_)
        )
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
    /// Modbus transaction id or OPC UA request handle (OPC UA pairs by request id, which
    /// rows do not show).
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
    /// What the request read or wrote, in its protocol's notation (S7comm, CIP, DNP3, BACnet;
    /// Modbus has `address` and `count`). Shared: a poll asks for the same thing again and again.
    pub target: Option<std::sync::Arc<str>>,
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
            p if p.is_ics() => super::ics::function_name(p, self.function),
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
    /// S7comm, CIP, DNP3 or BACnet values as their codec renders them.
    Text(String),
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

/// Per-device figures. `requests = answered + unanswered + pending + held` and `responses =
/// answered + unmatched_responses` hold at every moment (see the module header).
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
    /// Requests answered (paired with their response).
    pub answered: u64,
    /// Exception responses by code.
    pub exceptions: Vec<(u8, u64)>,
    /// OPC UA bad service results by code.
    pub bad_status: Vec<(u32, u64)>,
    /// Requests that will not be answered ([`TxStatus::Unanswered`]).
    pub unanswered: u64,
    /// Requests outstanding: during a capture, those waiting for their answer now; after
    /// [`Analysis::finish`], those the capture ended on ([`TxStatus::Pending`]).
    pub pending: u64,
    /// OPC UA Publish requests the server was holding when their connection ended
    /// ([`TxStatus::Held`]).
    pub held: u64,
    /// Responses that paired with no request (its request was before the capture, or given
    /// up already).
    pub unmatched_responses: u64,
    /// Malformed PDUs.
    pub malformed: u64,
    /// A request reused an outstanding transaction id.
    pub duplicate_ids: u64,
    /// Write requests.
    pub writes: u64,
    /// Failed answers of S7comm, CIP, DNP3 or BACnet by the protocol's code.
    pub errors: Vec<(u32, u64)>,
    /// Messages the device sent unasked (DNP3 unsolicited responses, BACnet unconfirmed
    /// services such as I-Am, CIP implicit I/O).
    pub unsolicited: u64,
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
/// A frame number per flow: a slot per id for TCP flows (their ids count up from 0, so this is
/// one store per request rather than a hash insert), a map for the rest (serial lines count
/// down from `u32::MAX`) and for ids past [`FlowFrames::SLOTS`].
#[derive(Default)]
struct FlowFrames {
    /// By flow id; 0 is none (frames count from 1).
    low: Vec<u64>,
    high: FxHashMap<u32, u64>,
}

impl FlowFrames {
    const SLOTS: u32 = 1 << 20;

    fn set(&mut self, flow: u32, frame: u64) {
        if flow < Self::SLOTS {
            let i = flow as usize;
            if i >= self.low.len() {
                self.low.resize((i + 1).max(self.low.len() * 2), 0);
            }
            self.low[i] = frame;
        } else {
            self.high.insert(flow, frame);
        }
    }

    fn get(&self, flow: u32) -> Option<u64> {
        if flow < Self::SLOTS {
            self.low.get(flow as usize).copied().filter(|&f| f != 0)
        } else {
            self.high.get(&flow).copied()
        }
    }

    fn remove(&mut self, flow: u32) {
        if flow < Self::SLOTS {
            if let Some(f) = self.low.get_mut(flow as usize) {
                *f = 0;
            }
        } else {
            self.high.remove(&flow);
        }
    }

    fn clear(&mut self) {
        self.low.clear();
        self.high.clear();
    }
}

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
    /// It writes (its values are in its slot).
    writes: bool,
    /// Its slot in [`RequestSlots`]: the values it writes, what it reads or writes (S7comm,
    /// CIP, DNP3, BACnet); `None` when it has neither. Kept out of `Pending` itself, which every
    /// Modbus request builds and moves.
    slot: Option<u32>,
}

impl Pending {
    /// The transaction this request became: answered in `resp` (frame, time), or not; `extra`
    /// is what its slot held ([`RequestSlots::take`]).
    fn into_tx(
        self,
        proto: Proto,
        device: DeviceId,
        resp: Option<(u64, i64)>,
        status: TxStatus,
        extra: Extra,
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
            written: extra.written,
            target: extra.target,
        }
    }
}

/// What an outstanding request carries besides its numbers: the values it writes and the text
/// of what it reads or writes.
#[derive(Default, Clone)]
struct Extra {
    written: Option<Written>,
    target: Option<std::sync::Arc<str>>,
}

/// The [`Extra`]s of the requests outstanding, in slots that are reused as their transactions
/// complete: once the slots have grown, a write request costs no allocation, and only a
/// transaction that is kept copies its values out. (Half a million writes in a 300 MB capture
/// were two allocations and two frees each.)
#[derive(Default)]
struct RequestSlots {
    slots: Vec<Extra>,
    free: Vec<u32>,
}

impl RequestSlots {
    /// A free slot, to be filled.
    fn slot(&mut self) -> (u32, &mut Extra) {
        let i = self.free.pop().unwrap_or_else(|| {
            self.slots.push(Extra::default());
            (self.slots.len() - 1) as u32
        });
        (i, &mut self.slots[i as usize])
    }

    /// The values of Modbus write request `p` in a slot (its vector reused); None when `p`
    /// writes nothing.
    fn modbus(&mut self, p: &crate::proto::modbus::pdu::Pdu<'_>) -> Option<u32> {
        if !p.is_write() {
            return None;
        }
        let (i, x) = self.slot();
        x.target = None;
        let mut values = match x.written.take() {
            Some(Written::Modbus(mut v)) => {
                v.clear();
                v
            }
            _ => Vec::new(),
        };
        x.written = Some(match p.fc() {
            5 => {
                values.push(u16::from(p.value == Some(0xff00)));
                Written::Modbus(values)
            }
            6 => {
                values.extend(p.value);
                Written::Modbus(values)
            }
            15 => {
                let n = usize::from(p.count.unwrap_or(0));
                let bits = match p.data {
                    Data::Bits(b) => b,
                    _ => &[],
                };
                values.extend(
                    (0..n.min(bits.len() * 8)).map(|i| u16::from(bits[i / 8] >> (i % 8) & 1)),
                );
                Written::Modbus(values)
            }
            22 => Written::Mask {
                and: p.and_mask.unwrap_or(0),
                or: p.or_mask.unwrap_or(0),
            },
            16 | 23 => {
                values.extend(p.registers());
                Written::Modbus(values)
            }
            _ => Written::Raw(match p.data {
                Data::Raw(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
                _ => String::new(),
            }),
        });
        Some(i)
    }

    /// `extra` in a slot; `None` when it holds nothing.
    fn put(&mut self, extra: Extra) -> Option<u32> {
        if extra.written.is_none() && extra.target.is_none() {
            return None;
        }
        let (i, slot) = self.slot();
        *slot = extra;
        Some(i)
    }

    /// A copy of slot `i`'s contents, and the slot freed.
    fn take(&mut self, i: Option<u32>) -> Extra {
        let Some(i) = i else {
            return Extra::default();
        };
        self.free.push(i);
        self.slots.get(i as usize).cloned().unwrap_or_default()
    }

    /// Slot `i` freed (its transaction is not kept).
    fn release(&mut self, i: Option<u32>) {
        if let Some(i) = i {
            self.free.push(i);
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

/// The texts of what requests read or write (S7comm, CIP, DNP3, BACnet), each kept once: a
/// master polls the same items over and over, so a request's text is written into one reused
/// buffer and shared from a set rather than allocated per request. Where the codec names the
/// bytes a request's target and write flag come from ([`Exchange::request_bytes`]), both are
/// kept per distinct bytes, and a request sent again is neither rendered nor walked again (a
/// CIP Multiple Service Packet's members are parsed for each). Bounded: past [`Targets::MAX`]
/// texts or [`Targets::MAX_SEEN`] requests a table starts again (texts already handed out stay
/// valid), and requests longer than [`Targets::MAX_BYTES`] are not kept.
///
/// [`Exchange::request_bytes`]: crate::proto::exchange::Exchange::request_bytes
#[derive(Default)]
struct Targets {
    set: rustc_hash::FxHashSet<std::sync::Arc<str>>,
    seen: FxHashMap<Box<[u8]>, TargetOf>,
    buf: String,
}

/// A request's target text and whether it writes.
type TargetOf = (Option<std::sync::Arc<str>>, bool);

impl Targets {
    const MAX: usize = 1 << 14;
    const MAX_SEEN: usize = 1 << 11;
    const MAX_BYTES: usize = 1024;

    /// What request `m` reads or writes, if it says, and whether it writes.
    fn of(&mut self, m: &dyn crate::proto::exchange::Exchange) -> TargetOf {
        let bytes = m.request_bytes();
        if bytes.is_empty() || bytes.len() > Self::MAX_BYTES {
            return (self.text(m), m.is_write());
        }
        if let Some((t, w)) = self.seen.get(bytes) {
            return (t.clone(), *w);
        }
        let found = (self.text(m), m.is_write());
        if self.seen.len() >= Self::MAX_SEEN {
            self.seen.clear();
        }
        self.seen.insert(bytes.into(), found.clone());
        found
    }

    /// The text of what `m` reads or writes, if it says.
    fn text(&mut self, m: &dyn crate::proto::exchange::Exchange) -> Option<std::sync::Arc<str>> {
        self.buf.clear();
        m.target(&mut self.buf);
        if self.buf.is_empty() {
            return None;
        }
        if let Some(t) = self.set.get(self.buf.as_str()) {
            return Some(t.clone());
        }
        if self.set.len() >= Self::MAX {
            self.set.clear();
        }
        let t: std::sync::Arc<str> = self.buf.as_str().into();
        self.set.insert(t.clone());
        Some(t)
    }
}

/// A stream of unsolicited messages: CIP implicit I/O of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IoKey {
    /// Protocol.
    pub proto: Proto,
    /// Producer.
    pub src: Addr,
    /// Consumer.
    pub dst: Addr,
    /// Connection id (CIP: the O→T or T→O connection id).
    pub connection: u32,
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
    /// Per open flow, the frame of its last request other than a Publish.
    last_request: FlowFrames,
    /// What the outstanding requests carry besides their numbers (values written, targets).
    requests: RequestSlots,
    /// The texts of what requests read or write, each kept once.
    targets: Targets,
    /// [`MAX_OUTSTANDING`] and [`MAX_DEVICES`] (smaller in tests, to reach them).
    max_outstanding: usize,
    max_devices: usize,

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
    /// Messages of S7comm, EtherNet/IP, CIP I/O, DNP3 and BACnet, per protocol.
    pub ics_msgs: Vec<(Proto, u64)>,
    /// CIP implicit I/O connections (and any other unsolicited stream keyed by a connection):
    /// packets, rate and jitter per (producer, consumer, connection id).
    pub io: Vec<(IoKey, PollStats)>,
    io_index: FxHashMap<IoKey, u32>,
    /// First and last PDU time.
    pub span_ns: Option<(i64, i64)>,
    /// Whether PDUs go to `emit.pdu`.
    pub want_pdus: bool,
    /// Whether every transaction goes to `emit.transaction` (else only those the summary keeps
    /// are built and sent: the first writes and failures, the slowest, and those given up,
    /// pending or held).
    pub want_tx: bool,
    /// Whether every write goes to `emit.transaction` (`--writes`).
    pub want_writes: bool,
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
            last_request: FlowFrames::default(),
            requests: RequestSlots::default(),
            targets: Targets::default(),
            max_outstanding: MAX_OUTSTANDING,
            max_devices: MAX_DEVICES,
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
            ics_msgs: Vec::new(),
            io: Vec::new(),
            io_index: FxHashMap::default(),
            span_ns: None,
            want_pdus: false,
            want_tx: false,
            want_writes: false,
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
        if self.devices.len() >= self.max_devices && id != OTHER_DEVICES {
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
            pending: 0,
            held: 0,
            unmatched_responses: 0,
            malformed: 0,
            duplicate_ids: 0,
            writes: 0,
            errors: Vec::new(),
            unsolicited: 0,
            functions: Vec::new(),
            rt: LogHist::default(),
            masters: Vec::new(),
        });
        self.index.insert(id, i);
        i
    }

    /// Does an answered transaction need building (someone wants it)? If not, it is only
    /// counted ([`Analysis::count_unbuilt`]).
    fn keeps(&self, written: bool, status: TxStatus, rt: i64) -> bool {
        self.want_tx
            || (written && (self.want_writes || self.writes.len() < KEEP))
            || (status.failed() && self.failures.len() < KEEP)
            || self.slow.len() < 10
            || self.slow.peek().is_some_and(|s| s.0 < rt)
    }

    /// What [`Analysis::finish_tx`] counts of a transaction nobody keeps.
    fn count_unbuilt(&mut self, written: bool, status: TxStatus) {
        self.writes_total += u64::from(written);
        self.failures_total += u64::from(status.failed());
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

    /// An outstanding request ends without an answer, as `status` (unanswered, pending at the
    /// end of the capture, or held): it leaves the device's `pending` for that figure.
    fn unpaired(&mut self, p: Pending, status: TxStatus) {
        let d = &mut self.devices[p.device as usize];
        d.pending = d.pending.saturating_sub(1);
        match status {
            TxStatus::Held => d.held += 1,
            TxStatus::Pending => d.pending += 1,
            _ => d.unanswered += 1,
        }
        let (proto, id) = (d.proto, d.id);
        let extra = self.requests.take(p.slot);
        self.finish_tx(p.into_tx(proto, id, None, status, extra));
    }

    /// A request answered by the response `e`: response time, and the transaction when kept.
    fn answered(&mut self, req: Pending, e: &PduEvent<'_>, status: TxStatus) {
        let rt = e.ts_ns - req.ts_ns;
        let d = &mut self.devices[req.device as usize];
        d.pending = d.pending.saturating_sub(1);
        d.answered += 1;
        d.rt.record(u64::try_from(rt).unwrap_or(0));
        let written = req.writes;
        if self.keeps(written, status, rt) {
            let extra = self.requests.take(req.slot);
            let t = req.into_tx(e.proto, e.device, Some((e.frame, e.ts_ns)), status, extra);
            self.finish_tx(t);
        } else {
            self.requests.release(req.slot);
            self.count_unbuilt(written, status);
        }
    }

    /// A new outstanding request under `key`. Gives the oldest half up as unanswered when
    /// [`MAX_OUTSTANDING`] are outstanding, and the one it replaces (same key: the master
    /// reused an id) likewise.
    fn outstanding(&mut self, key: u64, p: Pending) {
        self.make_room();
        let di = p.device as usize;
        if p.function != PUBLISH {
            // What tells, at the end of the capture, a request the master moved on from.
            self.last_request.set((key >> 32) as u32, p.frame);
        }
        self.devices[di].pending += 1;
        if let Some(old) = self.pending.insert(key, p) {
            self.devices[di].duplicate_ids += 1;
            self.unpaired(old, TxStatus::Unanswered);
        }
    }

    fn make_room(&mut self) {
        if self.pending.len() < self.max_outstanding {
            return;
        }
        let mut ts: Vec<i64> = self.pending.values().map(|p| p.ts_ns).collect();
        let mid = ts.len() / 2;
        let cut = *ts.select_nth_unstable(mid).1;
        let mut old: Vec<(u64, i64, u64)> = self
            .pending
            .iter()
            .filter(|(_, p)| p.ts_ns <= cut)
            .map(|(k, p)| (p.frame, p.ts_ns, *k))
            .collect();
        old.sort_unstable();
        for (_, _, k) in old {
            if let Some(p) = self.pending.remove(&k) {
                self.unpaired(p, TxStatus::Unanswered);
            }
        }
    }

    fn modbus(&mut self, e: &PduEvent<'_>, mf: &ModbusFrame<'_>) {
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
                    self.unpaired(old, TxStatus::Unanswered);
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
                let slot = self.requests.modbus(p);
                if slot.is_some() {
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
                    writes: slot.is_some(),
                    slot,
                };
                self.outstanding(key, pending);
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

    fn opcua_msg(&mut self, e: &PduEvent<'_>, m: &Message) {
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
        // Paired by the secure channel's request id, which the response repeats and a client
        // does not reuse while a request is outstanding (OPC 10000-6 §6.7.2); request handles
        // may repeat (some stacks send every Publish with handle 0).
        let key = (u64::from(e.flow) << 32) | u64::from(m.request_id.unwrap_or(handle));
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
                Written::OpcUa(
                    m.nodes
                        .iter()
                        .map(|n| (n.node.clone(), n.value.clone().unwrap_or_default()))
                        .collect(),
                )
            });
            let writes = written.is_some();
            let slot = self.requests.put(Extra {
                written,
                target: None,
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
                writes,
                slot,
            };
            self.outstanding(key, pending);
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

    /// A message of S7comm, EtherNet/IP-CIP, CIP I/O, DNP3 or BACnet, through its
    /// [`Exchange`](crate::proto::exchange::Exchange) view: a request waits for the response
    /// with the same key on the same flow (and unit); a failure is the protocol's code; an
    /// unsolicited message is counted (CIP I/O per connection, with its rate and jitter).
    #[inline(never)]
    fn ics_msg(&mut self, e: &PduEvent<'_>, m: &dyn crate::proto::exchange::Exchange) {
        use crate::proto::exchange::Role;
        bump(&mut self.ics_msgs, e.proto);
        let (di, _) = self.ids(e);
        if let Some(why) = m.malformed() {
            self.devices[di as usize].malformed += 1;
            if self.malformed.len() < KEEP {
                self.malformed.push(MalformedPdu {
                    frame: e.frame,
                    device: e.device,
                    proto: e.proto,
                    what: why.to_string(),
                });
            }
        }
        let unit = m.unit().map_or(0, |u| u32::from(u) + 1);
        let key = (u64::from(e.flow) << 32) | u64::from(m.key() ^ (unit << 16));
        match m.role() {
            Role::Request => {
                let d = &mut self.devices[di as usize];
                d.requests += 1;
                bump(&mut d.functions, m.function());
                if !d.masters.contains(&e.src) && d.masters.len() < 16 {
                    d.masters.push(e.src);
                }
                let (target, writes) = self.targets.of(m);
                let written = writes.then(|| {
                    d.writes += 1;
                    let mut w = String::new();
                    m.written(&mut w);
                    Written::Text(w)
                });
                let slot = self.requests.put(Extra { written, target });
                let pending = Pending {
                    frame: e.frame,
                    ts_ns: e.ts_ns,
                    function: m.function(),
                    address: None,
                    count: None,
                    write: None,
                    master: e.src,
                    master_port: e.sport,
                    device: di,
                    id: m.key(),
                    writes,
                    slot,
                };
                self.outstanding(key, pending);
            }
            Role::Response => {
                let d = &mut self.devices[di as usize];
                d.responses += 1;
                let failure = m.failure();
                if let Some(c) = failure {
                    bump(&mut d.errors, c);
                }
                match self.pending.remove(&key) {
                    Some(req) => {
                        let status = failure.map_or(TxStatus::Ok, TxStatus::Error);
                        self.answered(req, e, status);
                    }
                    None => self.devices[di as usize].unmatched_responses += 1,
                }
            }
            Role::Unsolicited => {
                self.devices[di as usize].unsolicited += 1;
                if e.proto == Proto::CipIo {
                    let k = IoKey {
                        proto: e.proto,
                        src: e.src,
                        dst: e.dst,
                        connection: m.key(),
                    };
                    if let Some(&i) = self.io_index.get(&k) {
                        self.io[i as usize].1.add(e.ts_ns);
                    } else if self.io.len() < MAX_POLL_SERIES {
                        let mut st = PollStats::default();
                        st.add(e.ts_ns);
                        self.io_index
                            .insert(k, u32::try_from(self.io.len()).unwrap_or(u32::MAX));
                        self.io.push((k, st));
                    }
                }
            }
            Role::Other => {}
        }
    }

    /// End of capture: every request still outstanding is pending, unless the master sent a
    /// later request on the same connection (it moved on: unanswered). A Publish is never
    /// moved on from (a client keeps several outstanding). Transactions go out in request order.
    pub fn finish(&mut self) {
        self.line_pending.clear();
        let mut left: Vec<(u64, Pending)> = self.pending.drain().collect();
        left.sort_by_key(|(_, p)| p.frame);
        for (k, p) in left {
            let later = self
                .last_request
                .get((k >> 32) as u32)
                .is_some_and(|f| f > p.frame);
            let status = if later && p.function != PUBLISH {
                TxStatus::Unanswered
            } else {
                TxStatus::Pending
            };
            self.unpaired(p, status);
        }
        self.last_request.clear();
    }
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
        match &e.content {
            Content::Modbus(f) => self.modbus(e, f),
            Content::OpcUa(m) => self.opcua_msg(e, m),
            Content::Ics(m) => self.ics_msg(e, *m),
        }
    }

    /// The connection ended (FIN/RST, or dropped from the flow table): what is outstanding on
    /// it will not be answered; a Publish was being held.
    fn flow_closed(&mut self, flow: u32) {
        self.flows_closed(&[flow]);
    }

    /// Several connections ended at once: one pass over what is outstanding.
    fn flows_closed(&mut self, flows: &[u32]) {
        for f in flows {
            self.last_request.remove(*f);
            self.line_pending.remove(f);
        }
        if self.pending.is_empty() {
            return;
        }
        let set: rustc_hash::FxHashSet<u32> = if flows.len() > 1 {
            flows.iter().copied().collect()
        } else {
            rustc_hash::FxHashSet::default()
        };
        let mut left: Vec<(u64, u64)> = self
            .pending
            .iter()
            .filter(|(k, _)| {
                let f = (*k >> 32) as u32;
                if flows.len() > 1 {
                    set.contains(&f)
                } else {
                    flows.first() == Some(&f)
                }
            })
            .map(|(k, p)| (p.frame, *k))
            .collect();
        left.sort_unstable();
        for (_, k) in left {
            if let Some(p) = self.pending.remove(&k) {
                let status = if p.function == PUBLISH {
                    TxStatus::Held
                } else {
                    TxStatus::Unanswered
                };
                self.unpaired(p, status);
            }
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

    // --- Every request accounted for: the real Decoder and Analysis fed with real frames. ---

    use std::net::SocketAddr;

    use proptest::prelude::*;

    use crate::capture::{
        link::flags as tcpflags,
        reader::{Linktype, Packet},
        writer::tcp_frame,
        Config, Decoder,
    };

    /// A data segment's flags.
    const PSH_ACK: u8 = 0x08 | tcpflags::ACK;

    /// Everything the analysis emits, and the requests it was shown.
    #[derive(Default)]
    struct Seen {
        txs: Vec<Transaction>,
        /// Frames of the request PDUs that count as requests (not `CloseSecureChannel`).
        request_frames: Vec<u64>,
    }

    impl Emit for Seen {
        fn transaction(&mut self, t: &Transaction) {
            self.txs.push(t.clone());
        }
        fn pdu(&mut self, e: &PduEvent<'_>) {
            let request = match (e.modbus(), e.opcua()) {
                (Some(_), _) => e.dir == Direction::Query,
                (_, Some(m)) => m.is_request() && m.service_id != Some(452),
                _ => false,
            };
            if request {
                self.request_frames.push(e.frame);
            }
        }
    }

    /// What one step of a random conversation does.
    #[derive(Debug, Clone)]
    enum Op {
        /// The client of connection `conn` sends a request with id `id` (Modbus: to `unit`);
        /// `kind` 0 read, 1 write, 2 malformed (Modbus) / Publish (OPC UA), 3 `CloseSecureChannel`
        /// (OPC UA; Modbus: a read).
        Request {
            conn: usize,
            id: u16,
            unit: u8,
            kind: u8,
        },
        /// The server answers id `id` (whether or not it is outstanding); `bad`: an exception or
        /// a bad service result.
        Response {
            conn: usize,
            id: u16,
            unit: u8,
            publish: bool,
            bad: bool,
        },
        /// The connection closes: both FINs, or a RST. The next step on it opens a new one.
        Close { conn: usize, rst: bool },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            5 => (0..4usize, 0..4u16, 1..3u8, 0..4u8)
                .prop_map(|(conn, id, unit, kind)| Op::Request { conn, id, unit, kind }),
            4 => (0..4usize, 0..4u16, 1..3u8, any::<bool>(), prop::bool::weighted(0.2))
                .prop_map(|(conn, id, unit, publish, bad)| Op::Response { conn, id, unit, publish, bad }),
            1 => (0..4usize, any::<bool>()).prop_map(|(conn, rst)| Op::Close { conn, rst }),
        ]
    }

    fn modbus_adu(id: u16, unit: u8, pdu: &[u8]) -> Vec<u8> {
        let mut b = id.to_be_bytes().to_vec();
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(&u16::try_from(pdu.len() + 1).unwrap().to_be_bytes());
        b.push(unit);
        b.extend_from_slice(pdu);
        b
    }

    /// An OPC UA MSG (or CLO) chunk, security None, of service `service` with request id `rid`.
    fn ua_message(kind: [u8; 3], rid: u32, service: u16, handle: u32, result: u32) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&1u32.to_le_bytes()); // channel
        b.extend_from_slice(&1u32.to_le_bytes()); // token
        b.extend_from_slice(&rid.to_le_bytes()); // sequence number
        b.extend_from_slice(&rid.to_le_bytes()); // request id
        b.extend_from_slice(&[1, 0]);
        b.extend_from_slice(&service.to_le_bytes());
        if matches!(service, 631 | 826 | 452) {
            // RequestHeader (Read, Publish, CloseSecureChannel)
            b.extend_from_slice(&[0, 0]); // authentication token
            b.extend_from_slice(&[0; 8]); // timestamp
            b.extend_from_slice(&handle.to_le_bytes());
            b.extend_from_slice(&[0; 4]); // return diagnostics
            b.extend_from_slice(&(-1i32).to_le_bytes()); // audit entry id
            b.extend_from_slice(&[0; 4]); // timeout hint
            b.extend_from_slice(&[0, 0, 0]); // additional header
        } else {
            // ResponseHeader
            b.extend_from_slice(&[0; 8]);
            b.extend_from_slice(&handle.to_le_bytes());
            b.extend_from_slice(&result.to_le_bytes());
            b.push(0); // diagnostic info
            b.extend_from_slice(&(-1i32).to_le_bytes()); // string table
            b.extend_from_slice(&[0, 0, 0]); // additional header
        }
        let mut m = kind.to_vec();
        m.push(b'F');
        m.extend_from_slice(&u32::try_from(b.len() + 8).unwrap().to_le_bytes());
        m.extend_from_slice(&b);
        m
    }

    /// A TCP connection of the random conversation: its ends and sequence numbers.
    struct Conn {
        client: SocketAddr,
        server: SocketAddr,
        seq: [u32; 2],
    }

    /// Frames of a conversation, fed one by one to a Decoder and an Analysis; checks the
    /// accounting after every frame and at the end.
    struct Run {
        frames: Vec<Vec<u8>>,
    }

    impl Run {
        fn send(&mut self, c: &mut Conn, from_client: bool, flags: u8, payload: &[u8]) {
            let (s, d, i) = if from_client {
                (c.client, c.server, 0)
            } else {
                (c.server, c.client, 1)
            };
            let f = tcp_frame(s, d, c.seq[i], c.seq[1 - i], flags, payload);
            c.seq[i] = c.seq[i].wrapping_add(
                u32::try_from(payload.len()).unwrap()
                    + u32::from(flags & (tcpflags::FIN | tcpflags::SYN) != 0),
            );
            self.frames.push(f);
        }
    }

    /// The identities of the module header, device by device.
    fn check_identities(an: &Analysis<'_>) -> Result<(), TestCaseError> {
        for d in &an.devices {
            prop_assert_eq!(
                d.requests,
                d.answered + d.unanswered + d.pending + d.held,
                "requests of {}: {:?}",
                d.id,
                d
            );
            prop_assert_eq!(d.responses, d.answered + d.unmatched_responses, "{:?}", d);
        }
        Ok(())
    }

    fn conversation(
        ops: &[Op],
        opcua: [bool; 4],
        filter: Option<DeviceFilter>,
        max_outstanding: usize,
        max_devices: usize,
    ) -> Result<(), TestCaseError> {
        let server = |i: usize| -> SocketAddr {
            let port = if opcua[i] { 4840 } else { 502 };
            format!("10.0.0.{}:{port}", 1 + i % 2).parse().unwrap()
        };
        let mut next_port = 40_000u16;
        let mut conns: Vec<Option<Conn>> = (0..4).map(|_| None).collect();
        let mut run = Run { frames: Vec::new() };
        for op in ops {
            let (i, from_client, payload, close) = match *op {
                Op::Request {
                    conn,
                    id,
                    unit,
                    kind,
                } => {
                    let p = if opcua[conn] {
                        let (t, sv) = match kind {
                            2 => (b"MSG", 826),
                            3 => (b"CLO", 452),
                            _ => (b"MSG", 631),
                        };
                        ua_message(*t, u32::from(id), sv, 7, 0)
                    } else {
                        let pdu: &[u8] = match kind {
                            1 => &[6, 0, 1, 0, 5],
                            2 => &[3, 0],
                            _ => &[3, 0, 0, 0, 2],
                        };
                        modbus_adu(id, unit, pdu)
                    };
                    (conn, true, p, None)
                }
                Op::Response {
                    conn,
                    id,
                    unit,
                    publish,
                    bad,
                } => {
                    let p = if opcua[conn] {
                        let sv = if publish { 829 } else { 634 };
                        ua_message(
                            *b"MSG",
                            u32::from(id),
                            sv,
                            7,
                            if bad { 0x8078_0000 } else { 0 },
                        )
                    } else if bad {
                        modbus_adu(id, unit, &[0x83, 2])
                    } else {
                        modbus_adu(id, unit, &[3, 4, 0, 1, 0, 2])
                    };
                    (conn, false, p, None)
                }
                Op::Close { conn, rst } => (conn, true, Vec::new(), Some(rst)),
            };
            let c = conns[i].get_or_insert_with(|| {
                next_port += 1;
                Conn {
                    client: format!("10.0.1.{}:{next_port}", 1 + i).parse().unwrap(),
                    server: server(i),
                    seq: [1000, 5000],
                }
            });
            match close {
                None => run.send(c, from_client, PSH_ACK, &payload),
                Some(true) => {
                    run.send(c, true, tcpflags::RST | tcpflags::ACK, &[]);
                    conns[i] = None;
                }
                Some(false) => {
                    run.send(c, true, tcpflags::FIN | tcpflags::ACK, &[]);
                    run.send(c, false, tcpflags::FIN | tcpflags::ACK, &[]);
                    conns[i] = None;
                }
            }
        }
        let mut seen = Seen::default();
        let mut decoder = Decoder::new(Config::default());
        let mut an = Analysis::new(filter, &mut seen);
        an.want_tx = true;
        an.want_pdus = true;
        an.max_outstanding = max_outstanding;
        an.max_devices = max_devices;
        for (n, f) in run.frames.iter().enumerate() {
            let p = Packet {
                frame: n as u64 + 1,
                ts_ns: 1_000_000 * n as i64,
                linktype: Linktype::ETHERNET,
                data: f,
                orig_len: u32::try_from(f.len()).unwrap(),
                direction: crate::capture::reader::PacketDirection::Unknown,
                if_name: None,
            };
            decoder.packet(&p, &mut an);
            // A live capture reads the figures between packets: they add up there too.
            check_identities(&an)?;
        }
        decoder.finish(&mut an);
        an.finish();
        check_identities(&an)?;
        prop_assert!(an.pending.is_empty());
        let devices = an.devices.clone();
        drop(an);
        // Every request is exactly one transaction, whatever became of it.
        let requests: u64 = devices.iter().map(|d| d.requests).sum();
        prop_assert_eq!(requests, seen.txs.len() as u64);
        let mut tx_frames: Vec<u64> = seen.txs.iter().map(|t| t.req_frame).collect();
        tx_frames.sort_unstable();
        seen.request_frames.sort_unstable();
        prop_assert_eq!(&tx_frames, &seen.request_frames);
        // The transactions' statuses are the devices' figures.
        let count =
            |f: &dyn Fn(TxStatus) -> bool| seen.txs.iter().filter(|t| f(t.status)).count() as u64;
        let sum = |f: &dyn Fn(&DeviceStats) -> u64| devices.iter().map(f).sum::<u64>();
        prop_assert_eq!(count(&TxStatus::answered), sum(&|d| d.answered));
        prop_assert_eq!(
            count(&|s| s == TxStatus::Unanswered),
            sum(&|d| d.unanswered)
        );
        prop_assert_eq!(count(&|s| s == TxStatus::Pending), sum(&|d| d.pending));
        prop_assert_eq!(count(&|s| s == TxStatus::Held), sum(&|d| d.held));
        // Only a Publish is held; pending and held are not failures.
        for t in &seen.txs {
            prop_assert!(
                t.status != TxStatus::Held || t.function == PUBLISH,
                "{:?}",
                t
            );
            if matches!(t.status, TxStatus::Pending | TxStatus::Held) {
                prop_assert!(!t.status.failed());
            }
        }
        // At most one request other than a Publish is pending per connection: the last one.
        let mut pending_per_conn: FxHashMap<(Addr, u16), u32> = FxHashMap::default();
        for t in &seen.txs {
            if t.status == TxStatus::Pending && t.function != PUBLISH {
                *pending_per_conn
                    .entry((t.master, t.master_port))
                    .or_default() += 1;
            }
        }
        prop_assert!(
            pending_per_conn.values().all(|&n| n == 1),
            "{:?}",
            pending_per_conn
        );
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn every_request_is_accounted_for_once(
            ops in prop::collection::vec(op(), 0..80),
            opcua in any::<[bool; 4]>(),
            filter_one in any::<bool>(),
            max_outstanding in prop_oneof![Just(MAX_OUTSTANDING), 2..6usize],
            max_devices in prop_oneof![Just(MAX_DEVICES), 1..3usize],
        ) {
            // The filter keeps the devices of 10.0.0.1 (connections 0 and 2).
            let filter = filter_one.then(|| DeviceFilter::parse("10.0.0.1").unwrap());
            conversation(&ops, opcua, filter, max_outstanding, max_devices)?;
        }
    }

    fn statuses(ops: &[Op], opcua: [bool; 4]) -> Vec<(u16, &'static str)> {
        // The same conversation as above, its transactions in request-frame order.
        let server: SocketAddr = if opcua[0] {
            "10.0.0.1:4840"
        } else {
            "10.0.0.1:502"
        }
        .parse()
        .unwrap();
        let mut c = Conn {
            client: "10.0.1.1:40001".parse().unwrap(),
            server,
            seq: [1000, 5000],
        };
        let mut run = Run { frames: Vec::new() };
        for op in ops {
            match *op {
                Op::Request { id, kind, .. } => {
                    let p = if opcua[0] {
                        let sv = if kind == 2 { 826 } else { 631 };
                        ua_message(*b"MSG", u32::from(id), sv, 0, 0)
                    } else {
                        modbus_adu(id, 1, &[3, 0, 0, 0, 2])
                    };
                    run.send(&mut c, true, PSH_ACK, &p);
                }
                Op::Response { id, publish, .. } => {
                    let p = if opcua[0] {
                        ua_message(
                            *b"MSG",
                            u32::from(id),
                            if publish { 829 } else { 634 },
                            0,
                            0,
                        )
                    } else {
                        modbus_adu(id, 1, &[3, 4, 0, 1, 0, 2])
                    };
                    run.send(&mut c, false, PSH_ACK, &p);
                }
                Op::Close { rst, .. } => {
                    if rst {
                        run.send(&mut c, true, tcpflags::RST | tcpflags::ACK, &[]);
                    } else {
                        run.send(&mut c, true, tcpflags::FIN | tcpflags::ACK, &[]);
                        run.send(&mut c, false, tcpflags::FIN | tcpflags::ACK, &[]);
                    }
                }
            }
        }
        let mut seen = Seen::default();
        let mut decoder = Decoder::new(Config::default());
        let mut an = Analysis::new(None, &mut seen);
        an.want_tx = true;
        for (n, f) in run.frames.iter().enumerate() {
            let p = Packet {
                frame: n as u64 + 1,
                ts_ns: 1_000_000 * n as i64,
                linktype: Linktype::ETHERNET,
                data: f,
                orig_len: u32::try_from(f.len()).unwrap(),
                direction: crate::capture::reader::PacketDirection::Unknown,
                if_name: None,
            };
            decoder.packet(&p, &mut an);
        }
        decoder.finish(&mut an);
        an.finish();
        drop(an);
        seen.txs.sort_by_key(|t| t.req_frame);
        seen.txs
            .iter()
            .map(|t| (t.id as u16, t.status.word()))
            .collect()
    }

    fn req(id: u16, kind: u8) -> Op {
        Op::Request {
            conn: 0,
            id,
            unit: 1,
            kind,
        }
    }
    fn resp(id: u16, publish: bool) -> Op {
        Op::Response {
            conn: 0,
            id,
            unit: 1,
            publish,
            bad: false,
        }
    }

    #[test]
    fn at_the_end_the_last_request_is_pending_and_those_moved_on_from_unanswered() {
        // A device that stopped answering: the master moved on from 1 and 2; 3 is pending.
        let got = statuses(&[req(1, 0), req(2, 0), req(3, 0)], [false; 4]);
        assert_eq!(got, [(1, "unanswered"), (2, "unanswered"), (3, "pending")]);
        // One request lost, the next answered: the lost one is unanswered, nothing pending.
        let got = statuses(&[req(1, 0), req(2, 0), resp(2, false)], [false; 4]);
        assert_eq!(got, [(1, "unanswered"), (2, "ok")]);
        // The same on a connection that closes: every outstanding request is unanswered.
        let got = statuses(
            &[
                req(1, 0),
                req(2, 0),
                Op::Close {
                    conn: 0,
                    rst: false,
                },
            ],
            [false; 4],
        );
        assert_eq!(got, [(1, "unanswered"), (2, "unanswered")]);
        // A reused id: the first is unanswered at once.
        let got = statuses(&[req(1, 0), req(1, 0), resp(1, false)], [false; 4]);
        assert_eq!(got, [(1, "unanswered"), (1, "ok")]);
    }

    #[test]
    fn publish_held_at_close_and_pending_at_the_end() {
        let ua = [true; 4];
        // Two Publish held by the server, a Read answered; the channel stays open: pending.
        let ops = [req(1, 2), req(2, 2), req(3, 0), resp(3, false)];
        let got = statuses(&ops, ua);
        assert_eq!(got, [(0, "pending"), (0, "pending"), (0, "ok")]);
        // The connection closes (RST or FINs) while the server holds them: held, and the Read
        // still outstanding is unanswered.
        for rst in [true, false] {
            let ops = [
                req(1, 2),
                req(2, 2),
                resp(1, true),
                req(3, 0),
                Op::Close { conn: 0, rst },
            ];
            let got = statuses(&ops, ua);
            assert_eq!(
                got,
                [(0, "ok"), (0, "held"), (0, "unanswered")],
                "rst {rst}"
            );
        }
        // Publish all share handle 0 here: paired by request id, none is a duplicate.
        let ops = [req(1, 2), req(2, 2), resp(2, true), resp(1, true)];
        assert_eq!(statuses(&ops, ua), [(0, "ok"), (0, "ok")]);
    }

    #[test]
    fn flows_dropped_from_the_flow_table_account_for_their_requests() {
        // More open connections than the flow table keeps (tcp::MAX_FLOWS), each with a
        // request outstanding: the idle half is dropped, its requests given up.
        let n = super::super::tcp::MAX_FLOWS + 10;
        let mut seen = Seen::default();
        let mut decoder = Decoder::new(Config::default());
        let mut an = Analysis::new(None, &mut seen);
        an.want_tx = true;
        let server: SocketAddr = "10.0.0.1:502".parse().unwrap();
        for i in 0..n {
            let client = SocketAddr::from(([10, 1, (i >> 16) as u8, (i >> 8) as u8], i as u16));
            let f = tcp_frame(
                client,
                server,
                1,
                1,
                PSH_ACK,
                &modbus_adu(1, 1, &[3, 0, 0, 0, 2]),
            );
            let p = Packet {
                frame: i as u64 + 1,
                ts_ns: 1000 * i as i64,
                linktype: Linktype::ETHERNET,
                data: &f,
                orig_len: u32::try_from(f.len()).unwrap(),
                direction: crate::capture::reader::PacketDirection::Unknown,
                if_name: None,
            };
            decoder.packet(&p, &mut an);
        }
        assert!(decoder.health.evicted_flows > 0);
        decoder.finish(&mut an);
        an.finish();
        let d = an.devices[0].clone();
        drop(an);
        assert_eq!(d.requests, n as u64);
        assert_eq!(d.unanswered, decoder.health.evicted_flows);
        assert_eq!(d.pending, n as u64 - decoder.health.evicted_flows);
        assert_eq!(seen.txs.len(), n);
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
