//! Modbus PDU decoding for captures: every public function code (1–8, 11, 12, 15–17, 20–24,
//! 43/14), both directions, exceptions; unknown and vendor codes kept raw. Also the MBAP
//! header (Modbus/TCP) and RTU framing with its CRC (RTU over TCP, serial captures).
//!
//! Field names follow the Modbus Application Protocol v1.1b3 and line up with Wireshark's
//! (`reference_num`, `word_cnt`, `bit_cnt`, …) so results can be compared with tshark.
//!
//! Why not tokio-modbus's `Request`/`Response: TryFrom<Bytes>`: a capture holds what devices
//! really send, and that decoder rejects a short or vendor-specific PDU as a whole (we must
//! show every field that is there and flag the rest), needs the direction it cannot see in a
//! capture, and allocates per PDU (a `Bytes` and a `Vec` of values): at millions of ADUs per
//! second that allocation is the decoder's main cost. This one borrows the captured bytes.

/// Query (master → device) or response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Master to device.
    Query,
    /// Device to master.
    Response,
}

/// Data carried by a PDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Data<'a> {
    /// None.
    #[default]
    None,
    /// Big-endian 16-bit registers.
    Registers(&'a [u8]),
    /// Packed bits, LSB first.
    Bits(&'a [u8]),
    /// Bytes with no further structure (vendor codes, device id objects, file records, …).
    Raw(&'a [u8]),
}

/// One decoded Modbus PDU (function code and data), as far as the bytes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pdu<'a> {
    /// Function code as sent (exception responses have bit 7 set).
    pub fc_raw: u8,
    /// Exception code of an exception response.
    pub exception: Option<u8>,
    /// Starting address (`reference_num`, or the read address of FC 23).
    pub address: Option<u16>,
    /// Quantity of registers or bits (`word_cnt`/`bit_cnt`; FC 23: read count; FC 24 response:
    /// FIFO count).
    pub count: Option<u16>,
    /// FC 23 write address.
    pub write_address: Option<u16>,
    /// FC 23 write count.
    pub write_count: Option<u16>,
    /// Byte count field.
    pub byte_count: Option<u16>,
    /// FC 5/6 value, FC 7 status.
    pub value: Option<u16>,
    /// FC 22 AND mask.
    pub and_mask: Option<u16>,
    /// FC 22 OR mask.
    pub or_mask: Option<u16>,
    /// FC 8 sub-function.
    pub sub_function: Option<u16>,
    /// FC 43 MEI type.
    pub mei: Option<u8>,
    /// Registers, bits or raw bytes.
    pub data: Data<'a>,
    /// The PDU is shorter than its function code needs, or its byte count disagrees.
    pub malformed: bool,
}

impl Pdu<'_> {
    /// Function code without the exception bit.
    #[must_use]
    pub fn fc(&self) -> u8 {
        self.fc_raw & 0x7f
    }

    /// Does this PDU change a device (a write request)?
    #[must_use]
    pub fn is_write(&self) -> bool {
        matches!(self.fc(), 5 | 6 | 15 | 16 | 21 | 22 | 23) && self.exception.is_none()
    }

    /// Registers as u16 values (empty unless the data are registers).
    pub fn registers(&self) -> impl Iterator<Item = u16> + '_ {
        let b: &[u8] = match self.data {
            Data::Registers(b) => b,
            _ => &[],
        };
        b.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]]))
    }
}

struct Cur<'a> {
    b: &'a [u8],
    at: usize,
    short: bool,
}

impl<'a> Cur<'a> {
    fn u8(&mut self) -> Option<u8> {
        let v = self.b.get(self.at).copied();
        match v {
            Some(_) => self.at += 1,
            None => self.short = true,
        }
        v
    }
    fn u16(&mut self) -> Option<u16> {
        if self.at + 2 <= self.b.len() {
            let v = u16::from_be_bytes([self.b[self.at], self.b[self.at + 1]]);
            self.at += 2;
            Some(v)
        } else {
            self.at = self.b.len();
            self.short = true;
            None
        }
    }
    fn rest(&mut self) -> &'a [u8] {
        let r = &self.b[self.at.min(self.b.len())..];
        self.at = self.b.len();
        r
    }
    fn take(&mut self, n: usize) -> &'a [u8] {
        let end = (self.at + n).min(self.b.len());
        if self.at + n > self.b.len() {
            self.short = true;
        }
        let r = &self.b[self.at.min(end)..end];
        self.at = end;
        r
    }
}

/// The byte count field (into `p`), then the bytes it counts (fewer if the PDU ends first).
fn byte_counted<'a>(p: &mut Pdu<'a>, c: &mut Cur<'a>) -> &'a [u8] {
    p.byte_count = c.u8().map(u16::from);
    c.take(usize::from(p.byte_count.unwrap_or(0)))
}

/// The values of a read or write function: packed bits for coils and discrete inputs (1, 2,
/// 15), registers for the others.
fn items(fc: u8, bytes: &[u8]) -> Data<'_> {
    if matches!(fc, 1 | 2 | 15) {
        Data::Bits(bytes)
    } else {
        Data::Registers(bytes)
    }
}

/// Decode a PDU (`pdu[0]` is the function code). Never fails: what is missing is left `None`
/// and the PDU marked malformed.
#[must_use]
#[allow(clippy::match_same_arms)] // arms follow the spec's table, one per function code
pub fn decode_pdu(pdu: &[u8], dir: Direction) -> Pdu<'_> {
    let mut p = Pdu::default();
    let Some((&fc_raw, body)) = pdu.split_first() else {
        p.malformed = true;
        return p;
    };
    p.fc_raw = fc_raw;
    let mut c = Cur {
        b: body,
        at: 0,
        short: false,
    };
    if fc_raw & 0x80 != 0 {
        p.exception = c.u8();
        p.malformed = c.short || body.len() > 1;
        return p;
    }
    match (fc_raw, dir) {
        (1..=4, Direction::Query) => {
            p.address = c.u16();
            p.count = c.u16();
        }
        (1..=4 | 23, Direction::Response) => {
            p.data = items(fc_raw, byte_counted(&mut p, &mut c));
            // Registers take two bytes each.
            let registers = matches!(p.data, Data::Registers(_));
            p.malformed |= registers && p.byte_count.is_some_and(|n| n % 2 == 1);
        }
        (5 | 6, _) => {
            p.address = c.u16();
            p.value = c.u16();
            if fc_raw == 5 && !matches!(p.value, None | Some(0 | 0xff00)) {
                p.malformed = true;
            }
        }
        (7, Direction::Response) => p.value = c.u8().map(u16::from),
        (8, _) => {
            p.sub_function = c.u16();
            p.data = Data::Raw(c.rest());
        }
        (11, Direction::Response) => {
            p.value = c.u16();
            p.count = c.u16();
        }
        (12 | 17, Direction::Response) => p.data = Data::Raw(byte_counted(&mut p, &mut c)),
        (15 | 16, Direction::Query) => {
            p.address = c.u16();
            p.count = c.u16();
            p.data = items(fc_raw, byte_counted(&mut p, &mut c));
            // The byte count is what the quantity takes: 8 coils a byte, 2 bytes a register.
            let n = usize::from(p.byte_count.unwrap_or(0));
            let need = |q: u16| {
                if fc_raw == 15 {
                    usize::from(q).div_ceil(8)
                } else {
                    usize::from(q) * 2
                }
            };
            p.malformed |= p.count.is_some_and(|q| need(q) != n);
        }
        (15 | 16, Direction::Response) => {
            p.address = c.u16();
            p.count = c.u16();
        }
        (20 | 21, _) => p.data = Data::Raw(byte_counted(&mut p, &mut c)),
        (22, _) => {
            p.address = c.u16();
            p.and_mask = c.u16();
            p.or_mask = c.u16();
        }
        (23, Direction::Query) => {
            p.address = c.u16();
            p.count = c.u16();
            p.write_address = c.u16();
            p.write_count = c.u16();
            p.data = Data::Registers(byte_counted(&mut p, &mut c));
        }
        (24, Direction::Query) => p.address = c.u16(),
        (24, Direction::Response) => {
            p.byte_count = c.u16();
            p.count = c.u16();
            p.data = Data::Registers(c.rest());
        }
        (43, _) => {
            p.mei = c.u8();
            p.data = Data::Raw(c.rest());
        }
        (7 | 11 | 12 | 17, Direction::Query) => {
            let r = c.rest();
            if !r.is_empty() {
                p.data = Data::Raw(r);
            }
        }
        _ => {
            let r = c.rest();
            if !r.is_empty() {
                p.data = Data::Raw(r);
            }
        }
    }
    if c.short {
        p.malformed = true;
    }
    p
}

/// The MBAP header of a Modbus/TCP ADU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mbap {
    /// Transaction id.
    pub trans_id: u16,
    /// Protocol id (0 for Modbus).
    pub prot_id: u16,
    /// Length field: unit id + PDU.
    pub len: u16,
    /// Unit id.
    pub unit: u8,
}

/// Largest valid MBAP length field (unit id + 253-byte PDU).
pub const MAX_MBAP_LEN: u16 = 254;

/// Split a Modbus/TCP ADU into header and PDU bytes. `None` if shorter than the 7-byte header.
/// The PDU is what the length field covers, cut to the bytes present.
#[must_use]
pub fn split_adu(adu: &[u8]) -> Option<(Mbap, &[u8])> {
    if adu.len() < 7 {
        return None;
    }
    let h = Mbap {
        trans_id: u16::from_be_bytes([adu[0], adu[1]]),
        prot_id: u16::from_be_bytes([adu[2], adu[3]]),
        len: u16::from_be_bytes([adu[4], adu[5]]),
        unit: adu[6],
    };
    let end = (6 + usize::from(h.len)).min(adu.len()).max(7);
    Some((h, &adu[7..end]))
}

/// Modbus CRC-16 (poly 0xA001, init 0xFFFF), as sent: low byte first.
#[must_use]
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xffff;
    for &b in data {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xa001
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// Is `frame` (address, PDU, CRC low, CRC high) an RTU frame with a good CRC?
#[must_use]
pub fn rtu_crc_ok(frame: &[u8]) -> bool {
    frame.len() >= 4 && {
        let (body, crc) = frame.split_at(frame.len() - 2);
        crc16(body) == u16::from_le_bytes([crc[0], crc[1]])
    }
}

/// Length of the RTU frame at the start of `b` (address + PDU + CRC), from its function code
/// and direction; `None` when the bytes do not say yet (too short) or the code has no fixed
/// layout (then the frame is taken to end at the end of the segment).
#[must_use]
#[allow(clippy::match_same_arms)]
pub fn rtu_frame_len(b: &[u8], dir: Direction) -> Option<usize> {
    let fc = *b.get(1)?;
    let byte_at = |i: usize| b.get(i).map(|&n| usize::from(n));
    if fc & 0x80 != 0 {
        return Some(5);
    }
    match (fc, dir) {
        (1..=6, Direction::Query) | (5 | 6 | 15 | 16, Direction::Response) => Some(8),
        (1..=4 | 12 | 17 | 20 | 21, Direction::Response) | (20 | 21, Direction::Query) => {
            Some(5 + byte_at(2)?)
        }
        (15 | 16, Direction::Query) => Some(9 + byte_at(6)?),
        (7 | 11 | 12 | 17, Direction::Query) => Some(4),
        (7, Direction::Response) => Some(5),
        (8 | 11, _) => Some(8),
        (22, _) => Some(10),
        (23, Direction::Query) => Some(13 + byte_at(10)?),
        (23, Direction::Response) => Some(5 + byte_at(2)?),
        (24, Direction::Query) => Some(6),
        (24, Direction::Response) => {
            let n = usize::from(u16::from_be_bytes([*b.get(2)?, *b.get(3)?]));
            Some(6 + n)
        }
        _ => None,
    }
}

/// Name of a public function code.
#[must_use]
pub fn function_name(fc: u8) -> &'static str {
    match fc & 0x7f {
        1 => "Read Coils",
        2 => "Read Discrete Inputs",
        3 => "Read Holding Registers",
        4 => "Read Input Registers",
        5 => "Write Single Coil",
        6 => "Write Single Register",
        7 => "Read Exception Status",
        8 => "Diagnostics",
        11 => "Get Comm Event Counter",
        12 => "Get Comm Event Log",
        15 => "Write Multiple Coils",
        16 => "Write Multiple Registers",
        17 => "Report Server ID",
        20 => "Read File Record",
        21 => "Write File Record",
        22 => "Mask Write Register",
        23 => "Read/Write Multiple Registers",
        24 => "Read FIFO Queue",
        43 => "Encapsulated Interface Transport",
        65..=72 | 100..=110 => "user-defined",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_and_responses() {
        let q = decode_pdu(&[3, 0, 100, 0, 2], Direction::Query);
        assert_eq!(
            (q.address, q.count, q.malformed),
            (Some(100), Some(2), false)
        );
        let r = decode_pdu(&[3, 4, 0, 1, 0, 2], Direction::Response);
        assert_eq!(r.registers().collect::<Vec<_>>(), vec![1, 2]);
        let e = decode_pdu(&[0x83, 2], Direction::Response);
        assert_eq!((e.fc(), e.exception, e.malformed), (3, Some(2), false));
        let w = decode_pdu(&[16, 0, 10, 0, 2, 4, 0, 7, 0, 8], Direction::Query);
        assert!(w.is_write());
        assert_eq!(w.registers().collect::<Vec<_>>(), vec![7, 8]);
        let m = decode_pdu(&[22, 0, 4, 0xf2], Direction::Query);
        assert!(m.malformed);
        assert_eq!((m.address, m.and_mask), (Some(4), None));
        let rw = decode_pdu(&[23, 0, 1, 0, 2, 0, 3, 0, 1, 2, 0, 9], Direction::Query);
        assert_eq!((rw.write_address, rw.write_count), (Some(3), Some(1)));
        let fifo = decode_pdu(&[24, 0, 6, 0, 2, 1, 2, 3, 4], Direction::Response);
        assert_eq!((fifo.byte_count, fifo.count), (Some(6), Some(2)));
    }

    #[test]
    fn crc_matches_the_spec_example() {
        // Modbus over serial line guide: 02 07 → CRC 41 12.
        assert_eq!(crc16(&[0x02, 0x07]).to_le_bytes(), [0x41, 0x12]);
        assert!(rtu_crc_ok(&[0x02, 0x07, 0x41, 0x12]));
        assert!(!rtu_crc_ok(&[0x02, 0x07, 0x41, 0x13]));
    }

    #[test]
    fn rtu_lengths() {
        assert_eq!(
            rtu_frame_len(&[1, 3, 0, 0, 0, 2], Direction::Query),
            Some(8)
        );
        assert_eq!(rtu_frame_len(&[1, 3, 4], Direction::Response), Some(9));
        assert_eq!(rtu_frame_len(&[1, 0x83], Direction::Response), Some(5));
        assert_eq!(rtu_frame_len(&[1], Direction::Response), None);
    }

    proptest! {
        #[test]
        fn decode_never_panics(b in proptest::collection::vec(any::<u8>(), 0..300), q in any::<bool>()) {
            let dir = if q { Direction::Query } else { Direction::Response };
            let p = decode_pdu(&b, dir);
            let _ = p.registers().count();
            let _ = split_adu(&b);
            let _ = rtu_frame_len(&b, dir);
        }

        #[test]
        fn read_query_roundtrip(fc in 1u8..=4, a in any::<u16>(), n in any::<u16>()) {
            let mut b = vec![fc];
            b.extend_from_slice(&a.to_be_bytes());
            b.extend_from_slice(&n.to_be_bytes());
            let p = decode_pdu(&b, Direction::Query);
            prop_assert_eq!((p.address, p.count, p.malformed), (Some(a), Some(n), false));
        }
    }
}
