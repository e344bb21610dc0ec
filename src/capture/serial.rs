//! Modbus RTU on a passively sniffed serial line (Modbus over Serial Line V1.02 §2.5): the
//! framer that turns timestamped byte chunks, as a port delivers them, into frames; and the
//! three ways a serial frame is stored in a capture file (pcap link types 252, 147, 250).
//! Pure: bytes in, frames out, no I/O; never panics on any input.
//!
//! **Framing.** Silence on the line (3.5 characters, `t3.5`) separates frames, but a USB
//! adapter delivers bytes in bursts: one burst may hold two frames, and a frame may arrive in
//! two bursts with a pause between them. So silence is a hint and the CRC decides: at the start
//! of what is held, the frame's length is read from its header (function code and direction,
//! [`rtu::frame_len`]) and taken when its CRC is good; bytes that start no CRC-valid frame are
//! cut off at the next silence or the next CRC-valid frame and handed out as one damaged frame
//! (CRC error), or counted as noise when too short to be a frame.
//!
//! **Direction.** A request to unit U is followed by U's answer or by silence (the master gave
//! up). The framer remembers the request that is waiting: a frame from that unit with that
//! function code is read with an answer's layout first, any other with a request's first.
//! Exception answers (function code with bit 7) are always answers. Requests and answers whose
//! layouts are the same (FC 5, 6, 8) are told apart by this alone.
//!
//! **UART errors.** With `PARMRK` on (and `IGNPAR` off), the kernel writes a character
//! received with a framing or parity error as `0xFF 0x00 X`, and a real `0xFF` as `0xFF 0xFF`
//! ([`Unmark`]); such characters stay in the frame (its length stays right) and the frame says
//! how many it holds.

use std::collections::VecDeque;

use crate::proto::modbus::{
    pdu::{rtu_crc_ok, Direction},
    rtu::{self, Timing},
};

/// Longest RTU frame (§2.5.1: 256 bytes).
pub const MAX_FRAME: usize = 256;

/// One frame seen on the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// When its last byte arrived, ns since the epoch.
    pub ts_ns: i64,
    /// Unit, PDU and CRC as received.
    pub bytes: &'a [u8],
    /// CRC good.
    pub crc_ok: bool,
    /// Request (master to device) or answer.
    pub dir: Direction,
    /// Characters in it that the UART received with a framing or parity error.
    pub uart_errors: u32,
}

/// What the framer counted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct FramerStats {
    /// Frames handed out.
    pub frames: u64,
    /// Of those, with a bad CRC.
    pub crc_errors: u64,
    /// Bytes that belonged to no frame (too few to be one).
    pub noise_bytes: u64,
    /// Characters marked by the UART with a framing or parity error.
    pub marked: u64,
    /// Marked characters that were 0: a break, or a framing error on a 0 byte.
    pub breaks: u64,
}

/// `PARMRK` unescaping, across chunk boundaries: `0xFF 0xFF` is a data `0xFF`; `0xFF 0x00 X` is
/// character `X` received with a framing or parity error.
#[derive(Debug, Default, Clone, Copy)]
pub struct Unmark {
    /// Bytes of a mark sequence seen so far (0, 1 after `0xFF`, 2 after `0xFF 0x00`).
    state: u8,
}

impl Unmark {
    /// Unescape `raw`, calling `f(byte, marked)` for each character.
    pub fn feed(&mut self, raw: &[u8], mut f: impl FnMut(u8, bool)) {
        for &b in raw {
            match (self.state, b) {
                (0, 0xFF) => self.state = 1,
                (0, _) => f(b, false),
                (1, 0xFF) => {
                    self.state = 0;
                    f(0xFF, false);
                }
                (1, 0x00) => self.state = 2,
                (1, _) => {
                    // Not a sequence the kernel writes: keep both bytes as they came.
                    self.state = 0;
                    f(0xFF, false);
                    f(b, false);
                }
                _ => {
                    self.state = 0;
                    f(b, true);
                }
            }
        }
    }
}

/// Who talks next on a multi-drop line: the request that waits for its answer.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BusState {
    /// (unit, function code) of the last request, until its answer or the next request.
    awaiting: Option<(u8, u8)>,
}

impl BusState {
    /// The layout to try first for the frame at the start of `b`: an answer's when it comes
    /// from the unit that was asked with the function it was asked, or is an exception.
    #[must_use]
    pub fn preferred(&self, b: &[u8]) -> Direction {
        match (b.get(1), self.awaiting) {
            (Some(fc), _) if fc & 0x80 != 0 => Direction::Response,
            (Some(fc), Some((u, f))) if b[0] == u && *fc == f => Direction::Response,
            _ => Direction::Query,
        }
    }

    /// A frame of direction `dir` went by.
    pub fn saw(&mut self, b: &[u8], dir: Direction) {
        self.awaiting = match (dir, b) {
            (Direction::Query, [unit, fc, ..]) if *unit != 0 => Some((*unit, fc & 0x7F)),
            _ => None,
        };
    }

    /// The direction of the whole frame `b` (a capture's packet): the layout whose length is
    /// the frame's, the preferred one first.
    pub fn classify(&mut self, b: &[u8]) -> Direction {
        let first = self.preferred(b);
        let other = match first {
            Direction::Query => Direction::Response,
            Direction::Response => Direction::Query,
        };
        let dir = if rtu::frame_len(b, first) == Some(b.len()) {
            first
        } else if rtu::frame_len(b, other) == Some(b.len()) {
            other
        } else {
            first
        };
        self.saw(b, dir);
        dir
    }
}

/// The framer of a sniffed RTU line. Feed it chunks with [`push`](Self::push) as they arrive,
/// call [`idle`](Self::idle) when nothing arrived for a while and [`finish`](Self::finish) at
/// the end.
#[derive(Debug)]
pub struct LineFramer {
    timing: Timing,
    /// How long to wait for the rest of a frame that silence interrupted (USB adapters pause
    /// inside frames) before taking what is held as it is.
    hold_ns: i64,
    unmark: Option<Unmark>,
    /// Bytes not yet handed out; `base` is the stream offset of `buf[0]`.
    buf: Vec<u8>,
    base: u64,
    /// Stream offsets of marked characters still in `buf`.
    marks: VecDeque<u64>,
    /// Stream offsets where a silence of t3.5 or more preceded the byte.
    gaps: VecDeque<u64>,
    /// (stream offset one past the chunk's last byte, its arrival time).
    chunks: VecDeque<(u64, i64)>,
    last_ts: Option<i64>,
    bus: BusState,
    stats: FramerStats,
    /// The frame being handed out (so that [`Frame::bytes`] can borrow).
    out: Vec<u8>,
}

impl LineFramer {
    /// A framer for a line with `timing`; `parmrk` when the bytes come with `PARMRK` marks.
    #[must_use]
    pub fn new(timing: Timing, parmrk: bool) -> LineFramer {
        let t35 = i64::try_from(timing.t35.as_nanos()).unwrap_or(i64::MAX);
        LineFramer {
            timing,
            hold_ns: t35.saturating_mul(4).max(50_000_000),
            unmark: parmrk.then(Unmark::default),
            buf: Vec::with_capacity(2 * MAX_FRAME),
            base: 0,
            marks: VecDeque::new(),
            gaps: VecDeque::new(),
            chunks: VecDeque::new(),
            last_ts: None,
            bus: BusState::default(),
            stats: FramerStats::default(),
            out: Vec::with_capacity(MAX_FRAME),
        }
    }

    /// Counters so far.
    #[must_use]
    pub fn stats(&self) -> FramerStats {
        self.stats
    }

    /// The line timing.
    #[must_use]
    pub fn timing(&self) -> Timing {
        self.timing
    }

    fn t35_ns(&self) -> i64 {
        i64::try_from(self.timing.t35.as_nanos()).unwrap_or(i64::MAX)
    }

    /// A chunk of bytes that arrived at `ts_ns` (the time its last byte was read).
    pub fn push(&mut self, ts_ns: i64, raw: &[u8], f: &mut dyn FnMut(&Frame<'_>)) {
        let start = self.base + self.buf.len() as u64;
        let mut marks = Vec::new();
        match &mut self.unmark {
            Some(u) => {
                let buf = &mut self.buf;
                let mut at = start;
                u.feed(raw, |b, marked| {
                    if marked {
                        marks.push((at, b));
                    }
                    buf.push(b);
                    at += 1;
                });
            }
            None => self.buf.extend_from_slice(raw),
        }
        for (at, b) in marks {
            self.stats.marked += 1;
            if b == 0 {
                self.stats.breaks += 1;
            }
            self.marks.push_back(at);
        }
        let end = self.base + self.buf.len() as u64;
        if end == start {
            return;
        }
        // The silence before this chunk's first byte: since the previous chunk, less the time
        // this chunk's bytes took on the wire.
        if let Some(last) = self.last_ts {
            let wire = i64::try_from(self.timing.wire((end - start) as usize).as_nanos())
                .unwrap_or(i64::MAX);
            if ts_ns.saturating_sub(last).saturating_sub(wire) >= self.t35_ns() && start > self.base
            {
                self.gaps.push_back(start);
            }
        }
        let ts_ns = self.last_ts.map_or(ts_ns, |l| ts_ns.max(l));
        self.chunks.push_back((end, ts_ns));
        self.last_ts = Some(ts_ns);
        self.run(false, false, f);
    }

    /// Nothing arrived up to `now_ns`: a silence ends what is held.
    pub fn idle(&mut self, now_ns: i64, f: &mut dyn FnMut(&Frame<'_>)) {
        let Some(last) = self.last_ts else { return };
        if self.buf.is_empty() {
            return;
        }
        let quiet = now_ns.saturating_sub(last);
        if quiet >= self.t35_ns() {
            self.run(true, quiet >= self.hold_ns, f);
        }
    }

    /// End of input: hand out everything held.
    pub fn finish(&mut self, f: &mut dyn FnMut(&Frame<'_>)) {
        self.run(true, true, f);
    }

    /// Offset in `buf` of the first silence after the start, if any.
    fn first_gap(&self) -> Option<usize> {
        self.gaps
            .iter()
            .map(|g| (g - self.base) as usize)
            .find(|&g| g > 0 && g <= self.buf.len())
    }

    /// Take frames off the start of `buf`. `quiet`: the line is silent after the last byte
    /// (the end of `buf` is a frame boundary); `last`: waited long enough, take everything.
    fn run(&mut self, quiet: bool, last: bool, f: &mut dyn FnMut(&Frame<'_>)) {
        while !self.buf.is_empty() {
            let b = &self.buf[..];
            let gap = self.first_gap();
            let end_known = gap.or(quiet.then_some(b.len()));
            let first = self.bus.preferred(b);
            let other = match first {
                Direction::Query => Direction::Response,
                Direction::Response => Direction::Query,
            };
            let wants = |dir| rtu::frame_len(b, dir);
            // 1. The preferred layout, when complete and its CRC is good.
            let mut take = rtu::frame_at(b, first).map(|n| (n, first));
            let first_waits = take.is_none()
                && match wants(first) {
                    Some(n) => n > b.len() && n <= MAX_FRAME,
                    None => header_incomplete(b, first),
                };
            // 2. The other layout, unless the preferred one is still arriving (then only when
            //    the other ends exactly at a silence).
            if take.is_none() {
                if let Some(n) = rtu::frame_at(b, other) {
                    if !first_waits || end_known == Some(n) || last {
                        take = Some((n, other));
                    }
                }
            }
            // 3. A layout we do not know, ended by silence, with a good CRC.
            if take.is_none() {
                if let Some(e) = end_known {
                    if wants(first).is_none()
                        && wants(other).is_none()
                        && (4..=MAX_FRAME).contains(&e)
                        && b[0] <= 247
                        && rtu_crc_ok(&b[..e])
                    {
                        take = Some((e, first));
                    }
                }
            }
            if let Some((n, dir)) = take {
                self.emit(n, true, dir, f);
                continue;
            }
            // Nothing valid at the start. Wait while a frame is still arriving, unless a valid
            // frame already starts at the next silence.
            let valid_after_gap = gap.is_some_and(|g| self.valid_at(g));
            if first_waits && !last && !valid_after_gap {
                return;
            }
            // Damaged: up to the next CRC-valid frame or the next silence, whichever first.
            let next_valid = (1..b.len()).find(|&j| self.valid_at(j));
            let cut = match (next_valid, gap) {
                (Some(j), Some(g)) => Some(j.min(g)),
                (Some(j), None) => Some(j),
                (None, Some(g)) => Some(g),
                (None, None) if quiet || last || b.len() > 2 * MAX_FRAME => {
                    Some(b.len().min(MAX_FRAME))
                }
                (None, None) => None,
            };
            let Some(cut) = cut else { return };
            let cut = cut.min(MAX_FRAME);
            if cut >= 4 && b[0] <= 247 && (b[1] & 0x7F) != 0 {
                let dir = first;
                self.emit(cut, false, dir, f);
            } else {
                self.stats.noise_bytes += cut as u64;
                self.consume(cut);
            }
        }
    }

    fn valid_at(&self, j: usize) -> bool {
        let r = &self.buf[j..];
        r.len() >= 4
            && r[0] <= 247
            && (r[1] & 0x7F) != 0
            && (rtu::frame_at(r, Direction::Query).is_some()
                || rtu::frame_at(r, Direction::Response).is_some())
    }

    fn emit(&mut self, n: usize, crc_ok: bool, dir: Direction, f: &mut dyn FnMut(&Frame<'_>)) {
        let end = self.base + n as u64;
        let ts_ns = self
            .chunks
            .iter()
            .find(|(e, _)| *e >= end)
            .or(self.chunks.back())
            .map_or(0, |c| c.1);
        let uart_errors = self.marks.iter().take_while(|&&m| m < end).count();
        self.out.clear();
        self.out.extend_from_slice(&self.buf[..n]);
        self.bus.saw(&self.out, dir);
        self.stats.frames += 1;
        if !crc_ok {
            self.stats.crc_errors += 1;
        }
        self.consume(n);
        f(&Frame {
            ts_ns,
            bytes: &self.out,
            crc_ok,
            dir,
            uart_errors: u32::try_from(uart_errors).unwrap_or(u32::MAX),
        });
    }

    fn consume(&mut self, n: usize) {
        self.buf.drain(..n);
        self.base += n as u64;
        let base = self.base;
        while self.marks.front().is_some_and(|&m| m < base) {
            self.marks.pop_front();
        }
        while self.gaps.front().is_some_and(|&g| g <= base) {
            self.gaps.pop_front();
        }
        while self.chunks.len() > 1 && self.chunks.front().is_some_and(|&(e, _)| e <= base) {
            self.chunks.pop_front();
        }
    }
}

/// Is the start of `b` a known layout whose length field has not arrived yet?
fn header_incomplete(b: &[u8], dir: Direction) -> bool {
    if b.len() < 2 {
        return true;
    }
    let mut pad = [0u8; 16];
    let n = b.len().min(16);
    pad[..n].copy_from_slice(&b[..n]);
    n < 16 && rtu::frame_len(&pad, dir).is_some()
}

/// pcap link types of serial lines: Modbus RTU, and BACnet MS/TP.
pub mod linktype {
    /// Wireshark's exported PDU: tags naming the dissector, then the frame.
    pub const EXPORTED_PDU: u16 = 252;
    /// `USER0`: one raw RTU frame per packet, as common RS-485 sniffers write.
    pub const USER0: u16 = 147;
    /// SEL RTAC serial: a 12-byte header with an event byte, then the bytes.
    pub const RTAC_SERIAL: u16 = 250;
    /// BACnet MS/TP frames (preamble 0x55 0xFF, header CRC, data CRC).
    pub const BACNET_MS_TP: u16 = 165;
}

/// Exported-PDU tag: the name of the dissector for what follows.
const TAG_DISSECTOR_NAME: u16 = 12;
/// The dissector name of Modbus RTU in Wireshark.
pub const MBRTU: &[u8] = b"mbrtu";

/// The exported-PDU header that makes Wireshark dissect the rest as Modbus RTU: tag 12
/// (dissector name) with `mbrtu` padded to 4 bytes, then the end-of-options tag.
pub const MBRTU_HEADER: [u8; 16] = [
    0, 12, 0, 8, b'm', b'b', b'r', b't', b'u', 0, 0, 0, 0, 0, 0, 0,
];

/// A Modbus RTU frame as the payload of a link type 252 packet: [`MBRTU_HEADER`], then the
/// frame (what [`exported_pdu`] reads back).
#[must_use]
pub fn mbrtu_packet(frame: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(MBRTU_HEADER.len() + frame.len());
    p.extend_from_slice(&MBRTU_HEADER);
    p.extend_from_slice(frame);
    p
}

/// What a serial packet in a capture carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SerialPacket<'a> {
    /// Bytes of a Modbus RTU frame.
    Rtu(&'a [u8]),
    /// An exported PDU for another dissector (named).
    OtherDissector(&'a [u8]),
    /// An RTAC UART event: framing error (7), parity error (8), overflow (0x0A).
    UartEvent(u8),
    /// A header that is cut short or damaged.
    Malformed,
}

/// The payload of a link type 252 (exported PDU) packet: only the `mbrtu` dissector is Modbus
/// RTU. Tags are big-endian (type, length), each value padded to 4 bytes as Wireshark writes.
#[must_use]
pub fn exported_pdu(data: &[u8]) -> SerialPacket<'_> {
    let mut at = 0;
    let mut name: Option<&[u8]> = None;
    loop {
        let Some(h) = data.get(at..at + 4) else {
            return SerialPacket::Malformed;
        };
        let tag = u16::from_be_bytes([h[0], h[1]]);
        let len = usize::from(u16::from_be_bytes([h[2], h[3]]));
        at += 4;
        if tag == 0 {
            break;
        }
        let Some(v) = data.get(at..at + len) else {
            return SerialPacket::Malformed;
        };
        if tag == TAG_DISSECTOR_NAME {
            let end = v.iter().position(|&c| c == 0).unwrap_or(v.len());
            name = Some(&v[..end]);
        }
        at += len;
    }
    let rest = &data[at.min(data.len())..];
    match name {
        Some(MBRTU) => SerialPacket::Rtu(rest),
        Some(n) => SerialPacket::OtherDissector(n),
        None => SerialPacket::OtherDissector(b""),
    }
}

/// The payload of a link type 250 (RTAC serial) packet: a 12-byte header (seconds and
/// microseconds, big-endian u32 each; event; control lines; 2-byte footer), then the bytes.
/// Events 1 (TX start) and 2 (RX start) carry data; 7, 8 and 0x0A are UART errors.
#[must_use]
pub fn rtac_serial(data: &[u8]) -> SerialPacket<'_> {
    if data.len() < 12 {
        return SerialPacket::Malformed;
    }
    match data[8] {
        7 | 8 | 0x0A => SerialPacket::UartEvent(data[8]),
        _ => SerialPacket::Rtu(&data[12..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::modbus::rtu::{adu, bits_per_char};
    use proptest::prelude::*;

    const MS: i64 = 1_000_000;

    fn timing() -> Timing {
        Timing::new(19_200, bits_per_char(8, true, 1))
    }

    fn collect(fr: &mut LineFramer, chunks: &[(i64, &[u8])]) -> Vec<(Vec<u8>, bool, Direction)> {
        let mut out = Vec::new();
        for (ts, c) in chunks {
            fr.push(*ts, c, &mut |f| {
                out.push((f.bytes.to_vec(), f.crc_ok, f.dir));
            });
        }
        fr.finish(&mut |f| out.push((f.bytes.to_vec(), f.crc_ok, f.dir)));
        out
    }

    fn q(unit: u8) -> Vec<u8> {
        adu(unit, &[3, 0, 0, 0, 2])
    }
    fn r(unit: u8) -> Vec<u8> {
        adu(unit, &[3, 4, 0, 1, 0, 2])
    }

    #[test]
    fn two_frames_in_one_burst_are_split_by_length_and_crc() {
        let mut s = q(1);
        s.extend(r(1));
        let mut fr = LineFramer::new(timing(), false);
        let got = collect(&mut fr, &[(10 * MS, &s)]);
        assert_eq!(
            got,
            vec![
                (q(1), true, Direction::Query),
                (r(1), true, Direction::Response)
            ]
        );
    }

    #[test]
    fn a_frame_split_across_a_pause_is_joined() {
        let q = q(2);
        let mut fr = LineFramer::new(timing(), false);
        let got = collect(&mut fr, &[(10 * MS, &q[..3]), (40 * MS, &q[3..])]);
        assert_eq!(got, vec![(q, true, Direction::Query)]);
    }

    #[test]
    fn write_echo_is_the_answer_of_the_waiting_request() {
        let w = adu(5, &[6, 0, 1, 0, 9]);
        let mut fr = LineFramer::new(timing(), false);
        let got = collect(&mut fr, &[(10 * MS, &w), (30 * MS, &w), (60 * MS, &w)]);
        let dirs: Vec<_> = got.iter().map(|g| g.2).collect();
        assert_eq!(
            dirs,
            [Direction::Query, Direction::Response, Direction::Query]
        );
    }

    #[test]
    fn a_damaged_frame_is_cut_at_the_next_good_one() {
        let mut bad = r(1);
        bad[4] ^= 0x40;
        let mut s = q(1);
        s.extend(&bad);
        s.extend(q(2));
        let mut fr = LineFramer::new(timing(), false);
        let got = collect(&mut fr, &[(10 * MS, &s)]);
        assert_eq!(
            got,
            vec![
                (q(1), true, Direction::Query),
                (bad, false, Direction::Response),
                (q(2), true, Direction::Query)
            ]
        );
        assert_eq!(fr.stats().crc_errors, 1);
    }

    #[test]
    fn noise_before_a_frame_is_counted_not_framed() {
        let mut s = vec![0xF8, 0x00];
        s.extend(q(7));
        let mut fr = LineFramer::new(timing(), false);
        let got = collect(&mut fr, &[(10 * MS, &s)]);
        assert_eq!(got, vec![(q(7), true, Direction::Query)]);
        assert_eq!(fr.stats().noise_bytes, 2);
    }

    #[test]
    fn parmrk_marks_are_unescaped_and_counted() {
        // 0xFF 0xFF is a data 0xFF; 0xFF 0x00 X is X with an error.
        let f = adu(1, &[6, 0, 1, 0xFF, 0xFF]);
        let mut raw = Vec::new();
        for (i, &b) in f.iter().enumerate() {
            if b == 0xFF {
                raw.extend([0xFF, 0xFF]);
            } else if i == 2 {
                raw.extend([0xFF, 0x00, b]);
            } else {
                raw.push(b);
            }
        }
        let mut fr = LineFramer::new(timing(), true);
        let mut got = Vec::new();
        // Split inside a mark sequence.
        fr.push(10 * MS, &raw[..4], &mut |x| got.push(x.uart_errors));
        fr.push(11 * MS, &raw[4..], &mut |x| {
            assert_eq!(x.bytes, &f[..]);
            got.push(x.uart_errors);
        });
        fr.finish(&mut |x| got.push(x.uart_errors));
        assert_eq!(got, vec![1]);
        assert_eq!(fr.stats().marked, 1);
    }

    #[test]
    fn unknown_function_codes_end_at_silence() {
        let v = adu(9, &[0x41, 1, 2, 3]);
        let mut fr = LineFramer::new(timing(), false);
        let mut got = Vec::new();
        fr.push(10 * MS, &v, &mut |f| got.push(f.bytes.to_vec()));
        assert!(got.is_empty(), "waits for silence");
        fr.idle(20 * MS, &mut |f| got.push(f.bytes.to_vec()));
        assert_eq!(got, vec![v]);
    }

    #[test]
    fn exported_pdu_and_rtac_headers() {
        let p = mbrtu_packet(&q(1));
        assert_eq!(exported_pdu(&p), SerialPacket::Rtu(&q(1)));
        let mut o = vec![0, 12, 0, 4, b'e', b't', b'h', 0, 0, 0, 0, 0];
        o.extend([1, 2]);
        assert_eq!(exported_pdu(&o), SerialPacket::OtherDissector(b"eth"));
        assert_eq!(exported_pdu(&[0, 12, 0, 9]), SerialPacket::Malformed);
        let mut h = vec![0; 12];
        h[8] = 2;
        h.extend(r(1));
        assert_eq!(rtac_serial(&h), SerialPacket::Rtu(&r(1)));
        h[8] = 8;
        assert_eq!(rtac_serial(&h), SerialPacket::UartEvent(8));
        assert_eq!(rtac_serial(&h[..5]), SerialPacket::Malformed);
    }

    /// A request and, maybe, its answer.
    fn arb_exchange() -> impl Strategy<Value = (Vec<u8>, Option<Vec<u8>>)> {
        (
            1u8..=247,
            prop_oneof![
                (1u8..=4, any::<u16>(), 1u16..=125).prop_map(|(fc, a, n)| {
                    let mut p = vec![fc];
                    p.extend(a.to_be_bytes());
                    p.extend(n.to_be_bytes());
                    let bytes = if fc <= 2 { n.div_ceil(8) } else { n * 2 } as usize;
                    let mut rsp = vec![fc, bytes.min(250) as u8];
                    rsp.extend((0..bytes.min(250)).map(|i| i as u8));
                    (p, rsp)
                }),
                (any::<u16>(), any::<u16>()).prop_map(|(a, v)| {
                    let mut p = vec![6];
                    p.extend(a.to_be_bytes());
                    p.extend(v.to_be_bytes());
                    (p.clone(), p)
                }),
                (any::<u16>(), prop::collection::vec(any::<u16>(), 1..=60)).prop_map(|(a, w)| {
                    let mut p = vec![16];
                    p.extend(a.to_be_bytes());
                    p.extend((w.len() as u16).to_be_bytes());
                    p.push((w.len() * 2) as u8);
                    for x in &w {
                        p.extend(x.to_be_bytes());
                    }
                    let mut rsp = vec![16];
                    rsp.extend(a.to_be_bytes());
                    rsp.extend((w.len() as u16).to_be_bytes());
                    (p, rsp)
                }),
                (1u8..=4, 1u8..=4).prop_map(|(fc, x)| (vec![fc, 0, 0, 0, 1], vec![fc | 0x80, x])),
            ],
            any::<bool>(),
        )
            .prop_map(|(unit, (p, rsp), answered)| {
                (adu(unit, &p), answered.then(|| adu(unit, &rsp)))
            })
    }

    proptest! {
        /// Requests and answers, cut into bursts at random places and times (a USB adapter),
        /// come out as the same frames with the right directions.
        #[test]
        fn bursts_reframe_exactly(
            ex in prop::collection::vec(arb_exchange(), 1..12),
            cuts in prop::collection::vec((1usize..40, 0i64..30), 1..60),
        ) {
            // A request nobody answered is followed by one to another unit (a re-poll of the
            // same unit with the same function is told from an answer only by timing).
            let mut frames: Vec<(Vec<u8>, Direction)> = Vec::new();
            let mut last_unanswered: Option<u8> = None;
            for (qf, a) in &ex {
                if last_unanswered == Some(qf[0]) {
                    continue;
                }
                frames.push((qf.clone(), Direction::Query));
                last_unanswered = None;
                match a {
                    Some(a) => frames.push((a.clone(), Direction::Response)),
                    None => last_unanswered = Some(qf[0]),
                }
            }
            let stream: Vec<u8> = frames.iter().flat_map(|f| f.0.clone()).collect();
            let mut fr = LineFramer::new(timing(), false);
            let mut got: Vec<(Vec<u8>, Direction, bool)> = Vec::new();
            let (mut at, mut ts, mut i) = (0usize, 1_000 * MS, 0usize);
            while at < stream.len() {
                let (n, gap) = cuts[i % cuts.len()];
                i += 1;
                let n = n.min(stream.len() - at);
                ts += gap * MS / 4 + i64::try_from(fr.timing().wire(n).as_nanos()).unwrap();
                fr.push(ts, &stream[at..at + n], &mut |f| got.push((f.bytes.to_vec(), f.dir, f.crc_ok)));
                at += n;
            }
            fr.finish(&mut |f| got.push((f.bytes.to_vec(), f.dir, f.crc_ok)));
            let want: Vec<_> = frames.into_iter().map(|(b, d)| (b, d, true)).collect();
            prop_assert_eq!(got, want);
            prop_assert_eq!(fr.stats().noise_bytes, 0);
        }

        /// Any bytes at any times: no panic, every byte handed out once (frame or noise).
        #[test]
        fn garbage_never_panics(
            chunks in prop::collection::vec((prop::collection::vec(any::<u8>(), 0..80), 0i64..10_000_000), 0..30),
            parmrk in any::<bool>(),
        ) {
            let mut fr = LineFramer::new(timing(), parmrk);
            let (mut ts, mut bytes) = (0i64, 0u64);
            for (c, gap) in &chunks {
                ts += gap;
                fr.push(ts, c, &mut |f| bytes += f.bytes.len() as u64);
                fr.idle(ts + gap, &mut |f| bytes += f.bytes.len() as u64);
            }
            fr.finish(&mut |f| bytes += f.bytes.len() as u64);
            let fed: u64 = chunks.iter().map(|c| c.0.len() as u64).sum();
            if !parmrk {
                prop_assert_eq!(bytes + fr.stats().noise_bytes, fed);
            }
            let _ = exported_pdu(&chunks.first().map(|c| c.0.clone()).unwrap_or_default());
            let _ = rtac_serial(&chunks.first().map(|c| c.0.clone()).unwrap_or_default());
        }
    }
}
