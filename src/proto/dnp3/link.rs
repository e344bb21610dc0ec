//! The DNP3 data link layer (IEEE 1815-2012 §9): a frame is `05 64`, a length octet, a control
//! octet, destination and source addresses (little-endian), a header CRC, then the user data in
//! blocks of at most 16 octets, each followed by its own CRC. The CRC is DNP3's CRC-16
//! (polynomial 0x3D65, bit-reflected, initial 0, complemented), stored low octet first.
//!
//! Contract: [`link_frame_len`] gives the on-wire length (every block CRC included) from the
//! first three octets, so a TCP stream can be cut into frames; [`parse_link_frame`] checks the
//! header CRC and every block CRC, and counts bad blocks rather than accepting them silently.
//! Nothing here allocates except [`LinkFrame::user_data_into`], which joins the blocks.

/// The two start octets of every link frame.
pub const START: [u8; 2] = [0x05, 0x64];
/// Octets of the header (start, length, control, destination, source, CRC).
pub const HEADER_LEN: usize = 10;
/// Largest user data of one frame (length octet 255 − 5).
pub const MAX_USER_DATA: usize = 250;
/// Largest on-wire frame: 10 + 250 + 16 block CRCs × 2.
pub const MAX_FRAME_LEN: usize = 292;

/// The reflected form of DNP3's polynomial 0x3D65.
const POLY_REFLECTED: u16 = 0xA6BC;

const fn crc_table() -> [u16; 256] {
    let mut t = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u16;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ POLY_REFLECTED
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static CRC_TABLE: [u16; 256] = crc_table();

/// DNP3's CRC-16 of `data` (as stored: low octet first on the wire).
#[must_use]
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc = (crc >> 8) ^ CRC_TABLE[usize::from((crc ^ u16::from(b)) as u8)];
    }
    !crc
}

/// Whether the two octets after `data` in `buf` are `data`'s CRC.
fn crc_ok(data: &[u8], crc: &[u8]) -> bool {
    crc.len() == 2 && crc16(data).to_le_bytes() == [crc[0], crc[1]]
}

/// Whether `buf` could be the start of a link frame: the start octets, and (when present) a
/// length octet of at least 5. Used to find frames in a TCP stream (port 20000 or content).
#[must_use]
pub fn starts_link_frame(buf: &[u8]) -> bool {
    buf.len() >= 2 && buf[..2] == START && buf.get(2).is_none_or(|&l| l >= 5)
}

/// The on-wire length of the frame at the start of `buf` (header, user data and every block
/// CRC), from its first three octets; `None` when `buf` does not start a frame or is shorter
/// than three octets.
#[must_use]
pub fn link_frame_len(buf: &[u8]) -> Option<usize> {
    if buf.len() < 3 || !starts_link_frame(buf) {
        return None;
    }
    let n = usize::from(buf[2]) - 5;
    Some(HEADER_LEN + n + 2 * n.div_ceil(16))
}

/// The link header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkHeader {
    /// The length octet: 5 + user data octets.
    pub len: u8,
    /// The control octet (DIR, PRM, FCB/FCV or DFC, function).
    pub control: u8,
    /// Destination address.
    pub dst: u16,
    /// Source address.
    pub src: u16,
}

impl LinkHeader {
    /// DIR: set when the master sent the frame.
    #[must_use]
    pub fn dir(&self) -> bool {
        self.control & 0x80 != 0
    }
    /// PRM: set on a primary (initiating) frame.
    #[must_use]
    pub fn prm(&self) -> bool {
        self.control & 0x40 != 0
    }
    /// FCB (primary) or the reserved bit (secondary).
    #[must_use]
    pub fn fcb(&self) -> bool {
        self.control & 0x20 != 0
    }
    /// FCV (primary) or DFC (secondary).
    #[must_use]
    pub fn fcv(&self) -> bool {
        self.control & 0x10 != 0
    }
    /// The link function code (named by [`link_function_name`] with [`Self::prm`]).
    #[must_use]
    pub fn function(&self) -> u8 {
        self.control & 0x0F
    }
    /// Octets of user data the frame carries.
    #[must_use]
    pub fn user_data_len(&self) -> usize {
        usize::from(self.len.saturating_sub(5))
    }
}

/// tshark's name of a link function (`dnp3.ctl.prifunc` / `dnp3.ctl.secfunc`).
#[must_use]
pub fn link_function_name(prm: bool, func: u8) -> &'static str {
    match (prm, func) {
        (true, 0) => "Reset of Remote Link",
        (true, 1) => "Reset of User Process",
        (true, 2) => "Test Function For Link",
        (true, 3) => "User Data",
        (true, 4) => "Unconfirmed User Data",
        (true, 9) => "Request Link Status",
        (false, 0) => "ACK",
        (false, 1) => "NACK",
        (false, 11) => "Status of Link",
        (false, 14) => "Link Service Not Functioning",
        (false, 15) => "Link Service Not Used or Implemented",
        _ => "Unknown",
    }
}

/// A parsed link frame, borrowing its blocks from the buffer.
#[derive(Debug, Clone, Copy)]
pub struct LinkFrame<'a> {
    /// The header.
    pub header: LinkHeader,
    /// Whether the header CRC checked.
    pub header_crc_ok: bool,
    /// How many data blocks failed their CRC.
    pub bad_blocks: u16,
    /// Data blocks in the frame.
    pub blocks: u16,
    /// The octets after the header: data blocks with their CRCs.
    body: &'a [u8],
    /// The on-wire length consumed.
    pub wire_len: usize,
}

/// Why a buffer holds no whole link frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkError {
    /// No `05 64` start, or a length octet below 5.
    NotAFrame,
    /// The buffer ends before the frame does (a cut capture).
    Truncated,
}

impl LinkError {
    /// Why, in words (for [`crate::proto::exchange::Exchange::malformed`]).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            LinkError::NotAFrame => "not a DNP3 link frame (no 05 64 start or length below 5)",
            LinkError::Truncated => "DNP3 link frame cut short",
        }
    }
}

/// Parses the frame at the start of `buf`, checking every CRC.
///
/// # Errors
/// [`LinkError`] when `buf` does not start a whole frame.
pub fn parse_link_frame(buf: &[u8]) -> Result<LinkFrame<'_>, LinkError> {
    let Some(wire_len) = link_frame_len(buf) else {
        return Err(if starts_link_frame(buf) {
            LinkError::Truncated
        } else {
            LinkError::NotAFrame
        });
    };
    if buf.len() < wire_len {
        return Err(LinkError::Truncated);
    }
    let header = LinkHeader {
        len: buf[2],
        control: buf[3],
        dst: u16::from_le_bytes([buf[4], buf[5]]),
        src: u16::from_le_bytes([buf[6], buf[7]]),
    };
    let header_crc_ok = crc_ok(&buf[..8], &buf[8..10]);
    let body = &buf[HEADER_LEN..wire_len];
    let mut bad_blocks = 0u16;
    let mut blocks = 0u16;
    for chunk in body.chunks(18) {
        blocks += 1;
        let (data, crc) = chunk.split_at(chunk.len() - 2);
        if !crc_ok(data, crc) {
            bad_blocks += 1;
        }
    }
    Ok(LinkFrame {
        header,
        header_crc_ok,
        bad_blocks,
        blocks,
        body,
        wire_len,
    })
}

impl<'a> LinkFrame<'a> {
    /// The data blocks without their CRCs, in order.
    pub fn data_blocks(&self) -> impl Iterator<Item = &'a [u8]> {
        self.body.chunks(18).map(|c| &c[..c.len() - 2])
    }

    /// Appends the user data (the blocks joined, CRCs removed) to `out`.
    pub fn user_data_into(&self, out: &mut Vec<u8>) {
        for b in self.data_blocks() {
            out.extend_from_slice(b);
        }
    }

    /// Whether every CRC checked.
    #[must_use]
    pub fn crc_ok(&self) -> bool {
        self.header_crc_ok && self.bad_blocks == 0
    }
}

/// Builds a frame with correct CRCs (tests, seeds, and a simulator if one is ever written).
/// `user_data` longer than [`MAX_USER_DATA`] is cut to it.
#[must_use]
pub fn build_link_frame(control: u8, dst: u16, src: u16, user_data: &[u8]) -> Vec<u8> {
    let data = &user_data[..user_data.len().min(MAX_USER_DATA)];
    let mut f = Vec::with_capacity(MAX_FRAME_LEN);
    f.extend_from_slice(&START);
    f.push((data.len() + 5) as u8);
    f.push(control);
    f.extend_from_slice(&dst.to_le_bytes());
    f.extend_from_slice(&src.to_le_bytes());
    let crc = crc16(&f);
    f.extend_from_slice(&crc.to_le_bytes());
    for block in data.chunks(16) {
        f.extend_from_slice(block);
        f.extend_from_slice(&crc16(block).to_le_bytes());
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn crc_matches_the_published_check_value() {
        // CRC-16/DNP: check value over "123456789" is 0xEA82 (Greg Cook's CRC catalogue).
        assert_eq!(crc16(b"123456789"), 0xEA82);
    }

    #[test]
    fn crc_of_a_captured_header_checks() {
        // select_operate_and_responses.pcap frame 1: 05 64 1a c4 0a 00 01 00, CRC 0x1c8a as
        // tshark shows it (`dnp3.hdr.CRC`), on the wire 8a 1c.
        let h = [0x05, 0x64, 0x1a, 0xc4, 0x0a, 0x00, 0x01, 0x00];
        assert_eq!(crc16(&h), 0x1c8a);
    }

    #[test]
    fn lengths_count_every_block_crc() {
        assert_eq!(link_frame_len(&[0x05, 0x64, 5]), Some(10));
        assert_eq!(link_frame_len(&[0x05, 0x64, 6]), Some(13));
        assert_eq!(link_frame_len(&[0x05, 0x64, 21]), Some(28));
        assert_eq!(link_frame_len(&[0x05, 0x64, 22]), Some(31));
        assert_eq!(link_frame_len(&[0x05, 0x64, 255]), Some(MAX_FRAME_LEN));
        assert_eq!(link_frame_len(&[0x05, 0x64, 4]), None);
        assert_eq!(link_frame_len(&[0x05, 0x64]), None);
        assert_eq!(link_frame_len(&[0x05, 0x65, 5]), None);
        assert!(starts_link_frame(&[0x05, 0x64]));
        assert!(!starts_link_frame(&[0x05, 0x64, 4]));
    }

    #[test]
    fn header_fields_and_names() {
        let f = build_link_frame(0xc4, 10, 1, &[0xc0, 0xc0, 0x01]);
        let p = parse_link_frame(&f).unwrap();
        assert!(p.crc_ok());
        assert!(p.header.dir() && p.header.prm() && !p.header.fcb() && !p.header.fcv());
        assert_eq!(
            (p.header.dst, p.header.src, p.header.function()),
            (10, 1, 4)
        );
        assert_eq!(link_function_name(true, 4), "Unconfirmed User Data");
        assert_eq!(link_function_name(true, 9), "Request Link Status");
        assert_eq!(link_function_name(false, 11), "Status of Link");
        assert_eq!(link_function_name(false, 0), "ACK");
        assert_eq!(link_function_name(false, 5), "Unknown");
        let mut d = Vec::new();
        p.user_data_into(&mut d);
        assert_eq!(d, [0xc0, 0xc0, 0x01]);
    }

    #[test]
    fn truncated_and_foreign_buffers_are_errors() {
        let f = build_link_frame(0x44, 1, 10, &[0u8; 40]);
        assert_eq!(
            parse_link_frame(&f[..f.len() - 1]).unwrap_err(),
            LinkError::Truncated
        );
        assert_eq!(
            parse_link_frame(&[0x05, 0x64]).unwrap_err(),
            LinkError::Truncated
        );
        assert_eq!(
            parse_link_frame(b"GET /").unwrap_err(),
            LinkError::NotAFrame
        );
    }

    proptest! {
        #[test]
        fn never_panics(buf in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse_link_frame(&buf);
            let _ = link_frame_len(&buf);
        }

        #[test]
        fn frame_len_is_what_the_parser_consumes(
            data in proptest::collection::vec(any::<u8>(), 0..=MAX_USER_DATA),
            ctl in any::<u8>(), dst in any::<u16>(), src in any::<u16>(),
            tail in proptest::collection::vec(any::<u8>(), 0..20),
        ) {
            let mut f = build_link_frame(ctl, dst, src, &data);
            let n = f.len();
            prop_assert_eq!(link_frame_len(&f), Some(n));
            f.extend_from_slice(&tail);
            let p = parse_link_frame(&f).unwrap();
            prop_assert_eq!(p.wire_len, n);
            prop_assert!(p.crc_ok());
            let mut d = Vec::new();
            p.user_data_into(&mut d);
            prop_assert_eq!(d, data);
        }

        #[test]
        fn one_flipped_bit_fails_its_block(
            data in proptest::collection::vec(any::<u8>(), 1..=MAX_USER_DATA),
            bit in any::<usize>(),
        ) {
            let mut f = build_link_frame(0x44, 1, 2, &data);
            // Flip a bit after the length octet (flipping the length changes the framing).
            let pos = 3 + (bit / 8) % (f.len() - 3);
            f[pos] ^= 1 << (bit % 8);
            let p = parse_link_frame(&f).unwrap();
            if pos < HEADER_LEN {
                prop_assert!(!p.header_crc_ok);
                prop_assert_eq!(p.bad_blocks, 0);
            } else {
                prop_assert!(p.header_crc_ok);
                prop_assert_eq!(p.bad_blocks, 1);
            }
        }
    }
}
