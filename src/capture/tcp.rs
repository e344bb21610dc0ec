//! TCP per-flow sequence analysis and PDU reassembly, with the same rules as Wireshark's TCP
//! analysis so that what we decode is what tshark decodes:
//!
//! - a segment that starts before the highest sequence number already seen in its direction is a
//!   retransmission (or out-of-order, or keep-alive) and is not decoded again;
//! - a segment after a gap is held (out of order) until the missing bytes arrive, then both are
//!   decoded in sequence order; if the peer acknowledges the missing bytes without the capture
//!   ever showing them (lost by the capture, not the network), or too much is held, the gap is
//!   given up: the PDU waiting for it is abandoned and decoding restarts after the gap;
//! - PDUs are cut from the byte stream with a length-prefix framer ([`Framer`]); several PDUs in
//!   one segment and one PDU over several segments both come out once, whole, in the frame that
//!   completes them;
//! - a segment that does not start like a PDU is skipped (midstream start): decoding resyncs on
//!   the next segment that does.
//!
//! Memory is bounded: a PDU larger than [`MAX_PENDING`] is skipped by its length without being
//! buffered, and the flow table is swept when it grows past [`MAX_FLOWS`].

use std::sync::atomic::{AtomicUsize, Ordering};

use rustc_hash::FxHashMap;

use super::link::{flags, Addr, Segment};

/// Largest PDU buffered while waiting for its last segment.
pub const MAX_PENDING: usize = 1 << 20;
/// Bytes held per direction after a gap before the gap is given up.
pub const MAX_HELD_BYTES: usize = 256 << 10;
/// Segments held per direction after a gap before the gap is given up.
pub const MAX_HELD_SEGMENTS: usize = 64;
/// Bytes buffered (unfinished PDUs and held segments) across every flow of the process; beyond,
/// gaps are given up and large PDUs skipped by length instead of buffered.
pub const MAX_TOTAL_BUFFERED: usize = 32 << 20;

static BUFFERED: AtomicUsize = AtomicUsize::new(0);

/// Bytes buffered now across every flow.
#[must_use]
pub fn buffered() -> usize {
    BUFFERED.load(Ordering::Relaxed)
}
/// Flows tracked at once before idle ones are dropped.
pub const MAX_FLOWS: usize = 1 << 16;

/// How a protocol cuts PDUs out of a byte stream.
pub trait Framer {
    /// Does a PDU plausibly start here? (Wireshark's heuristic check at a segment start.)
    fn starts_pdu(&self, buf: &[u8]) -> bool;
    /// The total length of the PDU at the start of `buf`, if its header is complete.
    fn pdu_len(&self, buf: &[u8]) -> Option<usize>;
    /// Largest length that is a real PDU; beyond it the length field is garbage.
    fn max_len(&self) -> usize;
    /// Smallest length that is a real PDU (at least 1, so cutting always makes progress).
    fn min_len(&self) -> usize {
        1
    }
}

/// Direction-independent flow key: the lower (addr, port) first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    lo: (Addr, u16),
    hi: (Addr, u16),
}

impl FlowKey {
    /// Source (address, port) of direction 0 and of direction 1.
    #[must_use]
    pub fn ends(&self) -> [(Addr, u16); 2] {
        [self.lo, self.hi]
    }

    /// Key of a segment, and whether the segment goes from `lo` to `hi` (direction 0) or back.
    #[inline]
    #[must_use]
    pub fn of(s: &Segment<'_>) -> (FlowKey, usize) {
        let a = (s.src, s.sport);
        let b = (s.dst, s.dport);
        if a <= b {
            (FlowKey { lo: a, hi: b }, 0)
        } else {
            (FlowKey { lo: b, hi: a }, 1)
        }
    }
}

/// Reassembly state of one direction.
#[derive(Debug, Default)]
pub struct DirState {
    /// Next expected sequence number (Wireshark's `nextseq`), once a segment was seen.
    next: Option<u32>,
    /// Bytes of an unfinished PDU.
    buf: Vec<u8>,
    /// Total length the unfinished PDU needs (0: header incomplete, one more segment).
    need: usize,
    /// Bytes still to skip of a PDU too large to buffer.
    skip: usize,
    /// The unfinished bytes began a segment (not the tail after a complete PDU).
    tentative: bool,
    /// Segments after a gap, sorted by sequence number.
    held: Vec<Held>,
    held_bytes: usize,
    /// What this direction has added to [`BUFFERED`].
    accounted: usize,
}

impl Drop for DirState {
    fn drop(&mut self) {
        BUFFERED.fetch_sub(self.accounted, Ordering::Relaxed);
    }
}

/// A segment held after a gap, with the frame it came in.
#[derive(Debug)]
pub struct Held {
    /// Sequence number of its first byte.
    pub seq: u32,
    /// Frame number.
    pub frame: u64,
    /// Capture time, ns.
    pub ts_ns: i64,
    /// Payload.
    pub data: Vec<u8>,
}

/// What became of a segment's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegVerdict {
    /// Decoded (possibly partly buffered).
    Decoded,
    /// No payload.
    Empty,
    /// Data already seen (retransmission, out-of-order, keep-alive): not decoded again.
    Retransmission,
    /// Data on a SYN: not decoded (as Wireshark).
    SynData,
    /// After a gap: held until the gap is filled or given up.
    Held,
    /// Held, and now too much is held: the caller gives the gap up.
    HeldFull,
}

/// Events from [`DirState::feed`].
pub enum Piece<'a> {
    /// A complete PDU.
    Pdu(&'a [u8]),
    /// Bytes that do not start a PDU (skipped until the next segment).
    Junk(usize),
    /// A PDU whose length field is impossible; the rest of the segment is skipped.
    BadLength(&'a [u8], usize),
    /// An unfinished PDU was abandoned (a gap in the sequence, or the flow ended).
    Abandoned(usize),
    /// A PDU too large to buffer, skipped by its length.
    Oversized(usize),
}

impl DirState {
    /// Sequence analysis of one segment; on `Decoded`, `feed` must be called with the payload.
    #[inline]
    pub fn analyze(
        &mut self,
        seg: &Segment<'_>,
        wire_len: u32,
        frame: u64,
        ts_ns: i64,
        abandoned: &mut usize,
    ) -> SegVerdict {
        let seq = seg.seq;
        let syn = seg.flags & flags::SYN != 0;
        let fin = u32::from(seg.flags & flags::FIN != 0);
        if syn {
            *abandoned += self.reset();
            self.next = Some(seq.wrapping_add(1).wrapping_add(wire_len));
            return if wire_len > 0 {
                SegVerdict::SynData
            } else {
                SegVerdict::Empty
            };
        }
        let end = seq.wrapping_add(wire_len).wrapping_add(fin);
        let Some(next) = self.next else {
            self.next = Some(end);
            return if wire_len == 0 {
                SegVerdict::Empty
            } else {
                SegVerdict::Decoded
            };
        };
        if wire_len == 0 {
            if fin == 1 && seq_gt(end, next) {
                self.next = Some(end);
            }
            return SegVerdict::Empty;
        }
        if seq_lt(seq, next) {
            if seq_gt(end, next) {
                self.next = Some(end);
            }
            return SegVerdict::Retransmission;
        }
        if seq_gt(seq, next) {
            return self.hold(seg, frame, ts_ns);
        }
        self.next = Some(end);
        SegVerdict::Decoded
    }

    /// Bring [`BUFFERED`] up to date with this direction's buffers.
    fn sync(&mut self) {
        let now = self.held_bytes + self.buf.len();
        if now != self.accounted {
            if now > self.accounted {
                BUFFERED.fetch_add(now - self.accounted, Ordering::Relaxed);
            } else {
                BUFFERED.fetch_sub(self.accounted - now, Ordering::Relaxed);
            }
            self.accounted = now;
        }
    }

    fn hold(&mut self, seg: &Segment<'_>, frame: u64, ts_ns: i64) -> SegVerdict {
        let pos = self.held.partition_point(|h| seq_lt(h.seq, seg.seq));
        if self.held.get(pos).is_some_and(|h| h.seq == seg.seq) {
            return SegVerdict::Retransmission;
        }
        self.held_bytes += seg.payload.len();
        self.held.insert(
            pos,
            Held {
                seq: seg.seq,
                frame,
                ts_ns,
                data: seg.payload.to_vec(),
            },
        );
        self.sync();
        if self.held.len() > MAX_HELD_SEGMENTS
            || self.held_bytes > MAX_HELD_BYTES
            || buffered() > MAX_TOTAL_BUFFERED
        {
            SegVerdict::HeldFull
        } else {
            SegVerdict::Held
        }
    }

    /// Segments are held after a gap.
    #[must_use]
    pub fn has_held(&self) -> bool {
        !self.held.is_empty()
    }

    /// Did the peer acknowledge bytes this direction never showed (`ack` beyond `next`)?
    #[must_use]
    pub fn acked_past_gap(&self, ack: u32) -> bool {
        self.has_held() && self.next.is_some_and(|n| seq_gt(ack, n))
    }

    /// Give the gap up: abandon the PDU waiting for it and continue at the first held segment.
    /// Returns the bytes of the abandoned PDU.
    pub fn give_up_gap(&mut self) -> usize {
        let Some(first) = self.held.first() else {
            return 0;
        };
        let seq = first.seq;
        let n = self.reset_pdu();
        self.next = Some(seq);
        n
    }

    /// The next held segment that is now in sequence (trimmed of bytes already seen).
    pub fn take_ready(&mut self) -> Option<Held> {
        loop {
            let next = self.next?;
            let first = self.held.first()?;
            if seq_gt(first.seq, next) {
                return None;
            }
            let mut h = self.held.remove(0);
            self.held_bytes -= h.data.len();
            self.sync();
            let len = u32::try_from(h.data.len()).unwrap_or(u32::MAX);
            let end = h.seq.wrapping_add(len);
            if !seq_gt(end, next) {
                continue; // entirely seen already
            }
            let skip = next.wrapping_sub(h.seq) as usize;
            h.data.drain(..skip);
            h.seq = next;
            self.next = Some(end);
            return Some(h);
        }
    }

    /// Forget any unfinished PDU and held segments; returns the unfinished PDU's length.
    pub fn reset(&mut self) -> usize {
        self.held.clear();
        self.held_bytes = 0;
        self.reset_pdu()
    }

    fn reset_pdu(&mut self) -> usize {
        let n = self.buf.len();
        self.buf.clear();
        self.need = 0;
        self.skip = 0;
        self.sync();
        n
    }

    /// Bytes buffered.
    #[must_use]
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Cut PDUs from the in-order bytes of one segment, as Wireshark's `tcp_dissect_pdus`.
    pub fn feed<F: Framer + ?Sized>(
        &mut self,
        framer: &F,
        data: &[u8],
        out: &mut dyn FnMut(Piece<'_>),
    ) {
        self.feed_inner(framer, data, out);
        self.sync();
    }

    fn feed_inner<F: Framer + ?Sized>(
        &mut self,
        framer: &F,
        mut data: &[u8],
        out: &mut dyn FnMut(Piece<'_>),
    ) {
        if self.skip > 0 {
            let n = self.skip.min(data.len());
            self.skip -= n;
            data = &data[n..];
            if data.is_empty() {
                return;
            }
        }
        if !self.buf.is_empty() {
            if self.need > 0 {
                let take = (self.need - self.buf.len()).min(data.len());
                self.buf.extend_from_slice(&data[..take]);
                data = &data[take..];
                if self.buf.len() < self.need {
                    return;
                }
                let whole = std::mem::take(&mut self.buf);
                self.need = 0;
                self.call(framer, &whole, out);
                self.recycle(whole);
            } else {
                // The header was incomplete: try it with this segment's bytes. If that does not
                // start a PDU: a short segment on its own was junk and this segment stands
                // alone; the tail after a complete PDU takes this segment with it (Wireshark).
                let mut whole = std::mem::take(&mut self.buf);
                let old = whole.len();
                whole.extend_from_slice(data);
                if framer.starts_pdu(&whole) || !self.tentative {
                    data = &[];
                    self.call(framer, &whole, out);
                } else {
                    out(Piece::Junk(old));
                }
                self.recycle(whole);
            }
        }
        if !data.is_empty() {
            self.call(framer, data, out);
        }
    }

    fn recycle(&mut self, mut v: Vec<u8>) {
        if self.buf.is_empty() && v.capacity() <= 4096 {
            v.clear();
            self.buf = v;
        }
    }

    /// One call of the protocol's dissector on a fresh buffer.
    fn call<F: Framer + ?Sized>(
        &mut self,
        framer: &F,
        bytes: &[u8],
        out: &mut dyn FnMut(Piece<'_>),
    ) {
        if !framer.starts_pdu(bytes) {
            out(Piece::Junk(bytes.len()));
            return;
        }
        let mut off = 0;
        while off < bytes.len() {
            let rem = &bytes[off..];
            match framer.pdu_len(rem) {
                None => {
                    self.keep(rem, 0);
                    self.tentative = off == 0;
                    return;
                }
                Some(n) if n > framer.max_len() || n < framer.min_len().max(1) => {
                    out(Piece::BadLength(rem, n));
                    return;
                }
                Some(n) if rem.len() < n => {
                    if n > MAX_PENDING {
                        self.skip = n - rem.len();
                        out(Piece::Oversized(n));
                    } else {
                        self.keep(rem, n);
                    }
                    return;
                }
                Some(n) => {
                    out(Piece::Pdu(&rem[..n]));
                    off += n;
                }
            }
        }
    }

    fn keep(&mut self, rem: &[u8], need: usize) {
        self.buf.clear();
        self.sync();
        if buffered() + rem.len() > MAX_TOTAL_BUFFERED {
            // Over the process-wide budget: do not buffer; skip the rest of this PDU.
            self.skip = need.saturating_sub(rem.len());
            self.need = 0;
            return;
        }
        self.buf.extend_from_slice(rem);
        self.need = need;
        self.sync();
    }
}

#[inline]
fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

#[inline]
fn seq_gt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// Per-flow state: both directions plus what the engine keeps about the flow.
#[derive(Debug)]
pub struct Flow<T> {
    /// Stable id (for pairing and output).
    pub id: u32,
    /// Last capture time seen, ns.
    pub last_ns: i64,
    /// Directions: 0 = lo → hi, 1 = hi → lo.
    pub dirs: [DirState; 2],
    /// FIN seen per direction.
    pub fin: [bool; 2],
    /// Source (address, port) of direction 0 and 1.
    pub ends: [(Addr, u16); 2],
    /// Engine data.
    pub app: T,
}

/// All flows, bounded. Flows live in a slab indexed by a hash map; the last flow looked up is
/// remembered, as consecutive packets mostly belong to one conversation (a request, its
/// response, the ACK), which spares most lookups their hashing.
#[derive(Debug)]
pub struct FlowTable<T> {
    index: FxHashMap<FlowKey, u32>,
    slab: Vec<Option<Flow<T>>>,
    free: Vec<u32>,
    last: Option<(FlowKey, u32)>,
    next_id: u32,
}

impl<T> Default for FlowTable<T> {
    fn default() -> Self {
        FlowTable {
            index: FxHashMap::default(),
            slab: Vec::new(),
            free: Vec::new(),
            last: None,
            next_id: 0,
        }
    }
}

impl<T> FlowTable<T> {
    /// The flow of `key`, created with `init` if new. Sweeps idle flows when the table is full;
    /// `on_drop` sees every flow removed by the sweep.
    #[inline]
    pub fn get_or_insert(
        &mut self,
        key: FlowKey,
        now_ns: i64,
        init: impl FnOnce() -> T,
        on_drop: &mut dyn FnMut(Flow<T>),
    ) -> &mut Flow<T> {
        let slot = match self.last {
            Some((k, i)) if k == key => i,
            _ => {
                let i = if let Some(&i) = self.index.get(&key) {
                    i
                } else {
                    if self.index.len() >= MAX_FLOWS {
                        self.sweep(now_ns, on_drop);
                    }
                    self.next_id = self.next_id.wrapping_add(1);
                    let flow = Flow {
                        id: self.next_id,
                        last_ns: now_ns,
                        dirs: [DirState::default(), DirState::default()],
                        fin: [false; 2],
                        ends: key.ends(),
                        app: init(),
                    };
                    let i = if let Some(i) = self.free.pop() {
                        self.slab[i as usize] = Some(flow);
                        i
                    } else {
                        self.slab.push(Some(flow));
                        u32::try_from(self.slab.len() - 1).unwrap_or(u32::MAX)
                    };
                    self.index.insert(key, i);
                    i
                };
                self.last = Some((key, i));
                i
            }
        };
        let f = self.slab[slot as usize]
            .as_mut()
            .expect("indexed slots hold a flow");
        f.last_ns = now_ns;
        f
    }

    /// Is `key` tracked?
    #[must_use]
    pub fn contains(&self, key: &FlowKey) -> bool {
        self.index.contains_key(key)
    }

    /// Remove a flow (closed by RST or both FINs).
    pub fn remove(&mut self, key: &FlowKey) -> Option<Flow<T>> {
        let i = self.index.remove(key)?;
        if self.last.is_some_and(|(k, _)| k == *key) {
            self.last = None;
        }
        self.free.push(i);
        self.slab[i as usize].take()
    }

    /// Every flow still open, for the end of the capture.
    pub fn drain(&mut self) -> impl Iterator<Item = Flow<T>> + '_ {
        self.index.clear();
        self.free.clear();
        self.last = None;
        self.slab.drain(..).flatten()
    }

    /// Flows tracked now.
    #[must_use]
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// No flows.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    fn sweep(&mut self, now_ns: i64, on_drop: &mut dyn FnMut(Flow<T>)) {
        // Drop the older half (by last activity): long-idle flows first.
        let mut times: Vec<i64> = self.slab.iter().flatten().map(|f| f.last_ns).collect();
        if times.is_empty() {
            return;
        }
        let mid = times.len() / 2;
        let (_, cut, _) = times.select_nth_unstable(mid);
        let cut = (*cut).min(now_ns);
        let keys: Vec<FlowKey> = self
            .index
            .iter()
            .filter(|(_, &i)| {
                self.slab[i as usize]
                    .as_ref()
                    .is_some_and(|f| f.last_ns <= cut)
            })
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            if let Some(f) = self.remove(&k) {
                on_drop(f);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Length-prefixed test framer: first byte is 0xAA, second is the total length.
    struct T;
    impl Framer for T {
        fn starts_pdu(&self, b: &[u8]) -> bool {
            b.first() == Some(&0xAA)
        }
        fn pdu_len(&self, b: &[u8]) -> Option<usize> {
            b.get(1).map(|&n| usize::from(n))
        }
        fn max_len(&self) -> usize {
            200
        }
    }

    fn run(d: &mut DirState, data: &[u8]) -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        d.feed(&T, data, &mut |p| {
            if let Piece::Pdu(b) = p {
                v.push(b.to_vec());
            }
        });
        v
    }

    #[test]
    fn several_in_one_and_one_over_several() {
        let mut d = DirState::default();
        assert_eq!(
            run(&mut d, &[0xAA, 3, 1, 0xAA, 2, 0xAA]),
            vec![vec![0xAA, 3, 1], vec![0xAA, 2]]
        );
        assert_eq!(d.pending(), 1);
        assert_eq!(run(&mut d, &[4, 9]), Vec::<Vec<u8>>::new());
        assert_eq!(
            run(&mut d, &[8, 0xAA, 2]),
            vec![vec![0xAA, 4, 9, 8], vec![0xAA, 2]]
        );
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn a_zero_length_field_cannot_stall_the_cutter() {
        // Regression: fuzz crash-da856ace (an OPC UA header whose size field is below the
        // header size looped for ever inside one segment).
        struct Zero;
        impl Framer for Zero {
            fn starts_pdu(&self, _: &[u8]) -> bool {
                true
            }
            fn pdu_len(&self, _: &[u8]) -> Option<usize> {
                Some(0)
            }
            fn max_len(&self) -> usize {
                100
            }
        }
        let mut d = DirState::default();
        let mut bad = 0;
        d.feed(&Zero, &[1, 2, 3], &mut |p| {
            if let Piece::BadLength(..) = p {
                bad += 1;
            }
        });
        assert_eq!(bad, 1);
    }

    #[test]
    fn midstream_junk_resyncs_on_next_segment() {
        let mut d = DirState::default();
        assert!(run(&mut d, &[1, 2, 3]).is_empty());
        assert_eq!(run(&mut d, &[0xAA, 2]).len(), 1);
    }

    fn seg(seq: u32, flags: u8, payload: &[u8]) -> Segment<'_> {
        Segment {
            src: Addr::default(),
            dst: Addr::default(),
            sport: 1,
            dport: 2,
            seq,
            ack: 0,
            flags,
            payload,
            cut: false,
            udp: false,
        }
    }

    #[test]
    fn retransmission_gap_and_syn() {
        let mut d = DirState::default();
        let mut ab = 0;
        let a = |d: &mut DirState, s: Segment<'_>, ab: &mut usize| {
            let n = u32::try_from(s.payload.len()).unwrap();
            d.analyze(&s, n, 1, 0, ab)
        };
        assert_eq!(
            a(&mut d, seg(100, flags::SYN, b""), &mut ab),
            SegVerdict::Empty
        );
        assert_eq!(a(&mut d, seg(101, 0, b"abc"), &mut ab), SegVerdict::Decoded);
        assert_eq!(
            a(&mut d, seg(101, 0, b"abc"), &mut ab),
            SegVerdict::Retransmission
        );
        assert_eq!(
            a(&mut d, seg(102, 0, b"bcde"), &mut ab),
            SegVerdict::Retransmission
        );
        assert_eq!(a(&mut d, seg(106, 0, b"f"), &mut ab), SegVerdict::Decoded);
        // Out of order: 110 arrives before 107..110; both come out in order.
        assert_eq!(a(&mut d, seg(110, 0, b"jk"), &mut ab), SegVerdict::Held);
        assert!(d.take_ready().is_none());
        assert_eq!(a(&mut d, seg(107, 0, b"ghi"), &mut ab), SegVerdict::Decoded);
        assert_eq!(d.take_ready().unwrap().data, b"jk");
        // A gap the capture never fills: given up, decoding goes on after it.
        d.buf.push(0xAA);
        assert_eq!(a(&mut d, seg(200, 0, b"g"), &mut ab), SegVerdict::Held);
        assert!(d.acked_past_gap(150));
        assert_eq!(d.give_up_gap(), 1);
        assert_eq!(d.take_ready().unwrap().data, b"g");
        assert_eq!(
            a(&mut d, seg(u32::MAX, flags::SYN, b"x"), &mut ab),
            SegVerdict::SynData
        );
        assert_eq!(a(&mut d, seg(1, 0, b"y"), &mut ab), SegVerdict::Decoded);
    }

    #[test]
    fn buffered_bytes_are_accounted_and_released() {
        // The process-wide total is the sum of every direction's `accounted` (added and removed
        // by `sync` and `Drop`); other tests change it in parallel, so this checks a direction's
        // own share, exactly, as it grows and shrinks.
        let mut d = DirState::default();
        let _ = run(&mut d, &[0xAA, 50, 1, 2, 3]);
        assert_eq!(d.buf.len(), 5, "an unfinished PDU of 50 bytes: 5 so far");
        assert_eq!(d.accounted, 5);
        let _ = run(&mut d, &[4; 10]);
        assert_eq!(d.accounted, 15);
        let _ = run(&mut d, &[5; 35]);
        assert!(d.buf.is_empty(), "the PDU completed");
        assert_eq!(d.accounted, 0, "released when the PDU is cut out");
    }

    #[test]
    fn oversized_is_skipped_by_length_and_bad_length_drops_segment() {
        struct Big;
        impl Framer for Big {
            fn starts_pdu(&self, b: &[u8]) -> bool {
                b.first() == Some(&0xAA)
            }
            fn pdu_len(&self, b: &[u8]) -> Option<usize> {
                (b.len() >= 5).then(|| u32::from_le_bytes([b[1], b[2], b[3], b[4]]) as usize)
            }
            fn max_len(&self) -> usize {
                1 << 30
            }
        }
        let mut d = DirState::default();
        let mut n = 0;
        let big = (MAX_PENDING as u32 + 10).to_le_bytes();
        d.feed(&Big, &[0xAA, big[0], big[1], big[2], big[3], 0], &mut |p| {
            if let Piece::Oversized(_) = p {
                n += 1;
            }
        });
        assert_eq!(n, 1);
        assert_eq!(d.pending(), 0);
        assert_eq!(d.skip, MAX_PENDING + 10 - 6);
    }
}
