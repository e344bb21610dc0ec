//! Modbus RTU framing (Modbus over Serial Line V1.02 §2.5): what a serial client, the serial
//! simulator and a passive listener need beyond the PDU itself. Pure: bytes in, bytes out.
//!
//! plcprobe owns this framing instead of using tokio-modbus's RTU codec, which has no timeout,
//! no t3.5 silence, no echo handling, and resynchronises after garbage by dropping one byte at
//! a time (its issues #60, #183, #324); its PDU *encoders* are private, so the request and
//! response PDUs are written here too. tokio-modbus still decodes PDUs (`Response::try_from`,
//! `Request::try_from`, public), so every transport shares its `Request`/`Response` types.
//!
//! - [`adu`]: unit ID + PDU + CRC-16 (low byte first).
//! - [`encode_request`], [`encode_response`], [`encode_exception`]: PDUs.
//! - [`Timing`]: one character's time and the t3.5 inter-frame silence at a baud and framing
//!   (fixed 1.75 ms above 19200 baud, §2.5.1.1).
//! - [`answer_len`]: how long the answer at the start of a buffer is, from its header.
//! - [`find_frames`]: CRC-valid frames in a byte stream of unknown alignment (the listener, the
//!   simulator's request reader), trying each start offset as pymodbus does; [`frame_at`] and
//!   [`frame_len`] for one offset (the sniffer's framer, `capture::serial`).

use std::time::Duration;

use tokio_modbus::{Request, Response};

use super::pdu::{crc16, rtu_crc_ok, rtu_frame_len, Direction};

/// An RTU ADU: `unit`, `pdu`, CRC-16 low byte first.
#[must_use]
pub fn adu(unit: u8, pdu: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(pdu.len() + 3);
    f.push(unit);
    f.extend_from_slice(pdu);
    let crc = crc16(&f);
    f.extend_from_slice(&crc.to_le_bytes());
    f
}

fn put_u16(b: &mut Vec<u8>, v: u16) {
    b.extend_from_slice(&v.to_be_bytes());
}

fn packed_bits(b: &mut Vec<u8>, bits: &[bool]) {
    b.push(bits.len().div_ceil(8) as u8);
    for chunk in bits.chunks(8) {
        b.push(
            chunk
                .iter()
                .enumerate()
                .fold(0u8, |acc, (i, &on)| acc | (u8::from(on) << i)),
        );
    }
}

/// The PDU of a request (function code first), as Modbus Application Protocol §6 lays it out.
#[must_use]
pub fn encode_request(req: &Request<'_>) -> Vec<u8> {
    let mut b = Vec::with_capacity(8);
    b.push(req.function_code().value());
    match req {
        Request::ReadCoils(a, n)
        | Request::ReadDiscreteInputs(a, n)
        | Request::ReadInputRegisters(a, n)
        | Request::ReadHoldingRegisters(a, n) => {
            put_u16(&mut b, *a);
            put_u16(&mut b, *n);
        }
        Request::WriteSingleCoil(a, on) => {
            put_u16(&mut b, *a);
            put_u16(&mut b, if *on { 0xFF00 } else { 0 });
        }
        Request::WriteSingleRegister(a, w) => {
            put_u16(&mut b, *a);
            put_u16(&mut b, *w);
        }
        Request::WriteMultipleCoils(a, bits) => {
            put_u16(&mut b, *a);
            put_u16(&mut b, bits.len() as u16);
            packed_bits(&mut b, bits);
        }
        Request::WriteMultipleRegisters(a, words) => {
            put_u16(&mut b, *a);
            put_u16(&mut b, words.len() as u16);
            b.push((words.len() * 2) as u8);
            for w in words.iter() {
                put_u16(&mut b, *w);
            }
        }
        Request::ReportServerId => {}
        Request::MaskWriteRegister(a, and, or) => {
            put_u16(&mut b, *a);
            put_u16(&mut b, *and);
            put_u16(&mut b, *or);
        }
        Request::ReadWriteMultipleRegisters(ra, n, wa, words) => {
            put_u16(&mut b, *ra);
            put_u16(&mut b, *n);
            put_u16(&mut b, *wa);
            put_u16(&mut b, words.len() as u16);
            b.push((words.len() * 2) as u8);
            for w in words.iter() {
                put_u16(&mut b, *w);
            }
        }
        Request::ReadDeviceIdentification(code, obj) => {
            b.extend_from_slice(&[0x0E, code.value(), *obj]);
        }
        Request::Custom(_, data) => b.extend_from_slice(data),
    }
    b
}

/// The PDU of a (non-exception) response.
#[must_use]
pub fn encode_response(rsp: &Response) -> Vec<u8> {
    let mut b = Vec::with_capacity(8);
    b.push(rsp.function_code().value());
    match rsp {
        Response::ReadCoils(bits) | Response::ReadDiscreteInputs(bits) => {
            packed_bits(&mut b, bits);
        }
        Response::ReadInputRegisters(words)
        | Response::ReadHoldingRegisters(words)
        | Response::ReadWriteMultipleRegisters(words) => {
            b.push((words.len() * 2) as u8);
            for w in words {
                put_u16(&mut b, *w);
            }
        }
        Response::WriteSingleCoil(a, on) => {
            put_u16(&mut b, *a);
            put_u16(&mut b, if *on { 0xFF00 } else { 0 });
        }
        Response::WriteMultipleCoils(a, n) | Response::WriteMultipleRegisters(a, n) => {
            put_u16(&mut b, *a);
            put_u16(&mut b, *n);
        }
        Response::WriteSingleRegister(a, w) => {
            put_u16(&mut b, *a);
            put_u16(&mut b, *w);
        }
        Response::ReportServerId(id, run, data) => {
            b.push(2 + data.len() as u8);
            b.push(*id);
            b.push(if *run { 0xFF } else { 0 });
            b.extend_from_slice(data);
        }
        Response::MaskWriteRegister(a, and, or) => {
            put_u16(&mut b, *a);
            put_u16(&mut b, *and);
            put_u16(&mut b, *or);
        }
        Response::ReadDeviceIdentification(id) => {
            b.extend_from_slice(&[
                0x0E,
                id.read_code.value(),
                id.conformity_level.value(),
                if id.more_follows { 0xFF } else { 0 },
                id.next_object_id,
                id.device_id_objects.len() as u8,
            ]);
            for o in &id.device_id_objects {
                b.push(o.id);
                b.push(o.value.len() as u8);
                b.extend_from_slice(&o.value);
            }
        }
        Response::Custom(_, data) => b.extend_from_slice(data),
    }
    b
}

/// An exception PDU: the function code with its high bit set, then the exception code.
#[must_use]
pub fn encode_exception(fc: u8, code: u8) -> Vec<u8> {
    vec![fc | 0x80, code]
}

/// Bit and frame timing on a serial line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// One character on the wire: start bit, data bits, parity bit if any, stop bits.
    pub char_time: Duration,
    /// The silence that separates frames (3.5 characters; 1.75 ms above 19200 baud).
    pub t35: Duration,
}

impl Timing {
    /// Timing at `baud` with `bits_per_char` (1 start + data + parity + stop: 11 for 8E1 and
    /// 8N2, 10 for 8N1). A baud of 0 is taken as 1 (targets refuse it before this).
    #[must_use]
    pub fn new(baud: u32, bits_per_char: u32) -> Timing {
        let baud = u64::from(baud.max(1));
        let char_time = Duration::from_nanos(u64::from(bits_per_char) * 1_000_000_000 / baud);
        let t35 = if baud > 19_200 {
            Duration::from_micros(1750)
        } else {
            char_time * 7 / 2
        };
        Timing { char_time, t35 }
    }

    /// How long `n` bytes take on the wire, back to back.
    #[must_use]
    pub fn wire(&self, n: usize) -> Duration {
        self.char_time * n as u32
    }
}

/// Bits per character for a framing: 1 start bit, data bits, a parity bit unless none, stop bits.
#[must_use]
pub fn bits_per_char(data_bits: u8, parity: bool, stop_bits: u8) -> u32 {
    1 + u32::from(data_bits) + u32::from(parity) + u32::from(stop_bits)
}

/// The length of the answer frame at the start of `b` (unit, PDU, CRC), read from its header:
/// `None` until enough bytes have arrived to tell. Function codes whose answer has no length in
/// its header (none that plcprobe sends) are `Some(0)`: unknown.
#[must_use]
pub fn answer_len(b: &[u8]) -> Option<usize> {
    let fc = *b.get(1)?;
    if fc == 43 {
        return mei_answer_len(b);
    }
    match rtu_frame_len(b, Direction::Response) {
        Some(n) => Some(n),
        // Every layout plcprobe knows is told by the first four bytes.
        None if b.len() >= 4 => Some(0),
        None => None,
    }
}

/// A frame's length by its function code and direction, FC43 / MEI 0x0E included: `None`
/// until the header is there, or when the function code has no known layout.
#[must_use]
pub fn frame_len(b: &[u8], dir: Direction) -> Option<usize> {
    match (b.get(1)?, dir) {
        (43, Direction::Query) => (*b.get(2)? == 0x0E).then_some(7),
        (43, Direction::Response) => mei_answer_len(b).filter(|n| *n > 0),
        _ => rtu_frame_len(b, dir),
    }
}

/// FC43 / MEI 0x0E answer: header of 8 bytes (unit, fc, MEI, code, conformity, more, next,
/// count), then objects as (id, length, value), then the CRC.
fn mei_answer_len(b: &[u8]) -> Option<usize> {
    if *b.get(2)? != 0x0E {
        return Some(0);
    }
    let count = usize::from(*b.get(7)?);
    let mut at = 8;
    for _ in 0..count {
        let len = usize::from(*b.get(at + 1)?);
        at += 2 + len;
        if at > 256 {
            return Some(0);
        }
    }
    Some(at + 2)
}

/// A CRC-valid frame found in a byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    /// Offset of its unit byte.
    pub start: usize,
    /// Its length, CRC included.
    pub len: usize,
    /// Whether its layout is a request's (`Query`) or an answer's.
    pub dir: Direction,
}

/// Every CRC-valid frame in `b`, left to right, trying each start offset and both directions
/// (a request and its answer share a function code but not a layout). Bytes that belong to no
/// frame are noise, or the line is read at the wrong baud or framing. Unit 0 (broadcast) and
/// 1–247 are accepted as addresses; function codes 1–127 (answers may set the high bit).
#[must_use]
pub fn find_frames(b: &[u8]) -> Vec<Found> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 4 <= b.len() {
        let rest = &b[i..];
        let unit_ok = rest[0] <= 247;
        let fc_ok = (rest[1] & 0x7F) != 0;
        let hit = (unit_ok && fc_ok)
            .then(|| {
                [Direction::Query, Direction::Response]
                    .into_iter()
                    .find_map(|dir| frame_at(rest, dir).map(|len| Found { start: i, len, dir }))
            })
            .flatten();
        match hit {
            Some(f) => {
                i += f.len;
                out.push(f);
            }
            None => i += 1,
        }
    }
    out
}

/// The length of a complete, CRC-valid frame of direction `dir`'s layout at the start of `b`.
#[must_use]
pub fn frame_at(b: &[u8], dir: Direction) -> Option<usize> {
    let len = frame_len(b, dir)?;
    (len >= 4 && len <= b.len() && rtu_crc_ok(&b[..len])).then_some(len)
}

/// The first complete, CRC-valid request frame in `b`: `Some((skip, len))` for bytes
/// `skip..skip+len` (bytes before it are noise to drop); `None` while none is complete. A server
/// reads requests with it and drops what it holds once the line has gone quiet.
#[must_use]
pub fn next_request(b: &[u8]) -> Option<(usize, usize)> {
    (0..b.len().saturating_sub(3))
        .find_map(|i| frame_at(&b[i..], Direction::Query).map(|len| (i, len)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use proptest::prelude::*;
    use tokio_modbus::prelude::*;

    #[test]
    fn read_request_matches_the_spec_example() {
        // Modbus over Serial Line, Appendix B: unit 1, read 1 register at 0 → 01 03 00 00 00 01 84 0A.
        let f = adu(1, &encode_request(&Request::ReadHoldingRegisters(0, 1)));
        assert_eq!(f, [0x01, 0x03, 0x00, 0x00, 0x00, 0x01, 0x84, 0x0A]);
        assert!(rtu_crc_ok(&f));
    }

    #[test]
    fn timing_follows_the_serial_line_spec() {
        let t = Timing::new(19_200, bits_per_char(8, true, 1));
        assert_eq!(t.char_time, Duration::from_nanos(572_916));
        assert_eq!(t.t35, Duration::from_nanos(2_005_206));
        assert_eq!(
            Timing::new(115_200, 11).t35,
            Duration::from_micros(1750),
            "fixed above 19200"
        );
        assert_eq!(
            Timing::new(9600, 10).wire(8),
            Duration::from_nanos(8_333_328)
        );
    }

    #[test]
    fn answer_lengths_from_headers() {
        assert_eq!(answer_len(&[1]), None);
        assert_eq!(answer_len(&[1, 3]), None);
        assert_eq!(answer_len(&[1, 3, 20]), Some(25));
        assert_eq!(answer_len(&[1, 0x83]), Some(5));
        assert_eq!(answer_len(&[1, 6]), Some(8));
        assert_eq!(answer_len(&[1, 17, 4]), Some(9));
        let id = Response::ReadDeviceIdentification(ReadDeviceIdentificationResponse {
            read_code: ReadCode::Basic,
            conformity_level: ConformityLevel::BasicIdentificationStreamOnly,
            more_follows: false,
            next_object_id: 0,
            device_id_objects: vec![DeviceIdObject {
                id: 0,
                value: b"ACME".to_vec().into(),
            }],
        });
        let f = adu(7, &encode_response(&id));
        assert_eq!(answer_len(&f[..9]), None);
        assert_eq!(answer_len(&f[..10]), Some(f.len()));
    }

    #[test]
    fn frames_are_found_after_noise() {
        let q = adu(3, &encode_request(&Request::ReadInputRegisters(10, 2)));
        let r = adu(
            3,
            &encode_response(&Response::ReadInputRegisters(vec![7, 8])),
        );
        let mut s = vec![0xFF, 0x00, 0x13];
        s.extend_from_slice(&q);
        s.extend_from_slice(&r);
        s.push(0x55);
        let f = find_frames(&s);
        assert_eq!(f.len(), 2);
        assert_eq!((f[0].start, f[0].len, f[0].dir), (3, 8, Direction::Query));
        assert_eq!(
            (f[1].start, f[1].len, f[1].dir),
            (11, 9, Direction::Response)
        );
        assert_eq!(next_request(&s), Some((3, 8)));
        assert_eq!(next_request(&q[..5]), None);
    }

    fn arb_request() -> impl Strategy<Value = Request<'static>> {
        prop_oneof![
            (any::<u16>(), 1u16..=125).prop_map(|(a, n)| Request::ReadHoldingRegisters(a, n)),
            (any::<u16>(), 1u16..=2000).prop_map(|(a, n)| Request::ReadCoils(a, n)),
            (any::<u16>(), any::<bool>()).prop_map(|(a, v)| Request::WriteSingleCoil(a, v)),
            (any::<u16>(), any::<u16>()).prop_map(|(a, v)| Request::WriteSingleRegister(a, v)),
            (any::<u16>(), prop::collection::vec(any::<u16>(), 1..=123))
                .prop_map(|(a, w)| Request::WriteMultipleRegisters(a, w.into())),
            (any::<u16>(), prop::collection::vec(any::<bool>(), 1..=1968))
                .prop_map(|(a, b)| Request::WriteMultipleCoils(a, b.into())),
            Just(Request::ReportServerId),
            (0u8..=6).prop_map(|o| Request::ReadDeviceIdentification(ReadCode::Regular, o)),
        ]
    }

    fn arb_response() -> impl Strategy<Value = Response> {
        prop_oneof![
            prop::collection::vec(any::<u16>(), 1..=125).prop_map(Response::ReadHoldingRegisters),
            prop::collection::vec(any::<u16>(), 1..=125).prop_map(Response::ReadInputRegisters),
            (any::<u16>(), any::<u16>()).prop_map(|(a, v)| Response::WriteSingleRegister(a, v)),
            (any::<u16>(), 1u16..=123).prop_map(|(a, n)| Response::WriteMultipleRegisters(a, n)),
            (
                any::<u8>(),
                any::<bool>(),
                prop::collection::vec(any::<u8>(), 0..40)
            )
                .prop_map(|(i, r, d)| Response::ReportServerId(i, r, d)),
        ]
    }

    proptest! {
        /// Our encoder and tokio-modbus's public decoder agree, and a framed request is found
        /// whole, at its own length, in any noise.
        #[test]
        fn requests_round_trip(req in arb_request(), unit in 1u8..=247, noise in prop::collection::vec(any::<u8>(), 0..16)) {
            let pdu = encode_request(&req);
            let back = Request::try_from(Bytes::from(pdu.clone())).unwrap();
            prop_assert_eq!(back, req);
            let f = adu(unit, &pdu);
            let mut s = noise.clone();
            s.extend_from_slice(&f);
            let (skip, len) = next_request(&s).expect("found");
            // Noise may itself hold a valid frame by chance; then ours follows it.
            prop_assert!(skip + len <= s.len());
            prop_assert!(find_frames(&s).iter().any(|x| x.start + x.len == s.len()) || skip < noise.len());
        }

        #[test]
        fn responses_round_trip(rsp in arb_response(), unit in 1u8..=247) {
            let pdu = encode_response(&rsp);
            prop_assert_eq!(Response::try_from(Bytes::from(pdu.clone())).unwrap(), rsp);
            let f = adu(unit, &pdu);
            prop_assert_eq!(answer_len(&f), Some(f.len()));
        }

        /// Framing never panics on any bytes.
        #[test]
        fn framing_takes_any_bytes(b in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = find_frames(&b);
            let _ = next_request(&b);
            let _ = answer_len(&b);
        }
    }
}
