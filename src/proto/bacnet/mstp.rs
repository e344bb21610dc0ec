//! BACnet MS/TP frames (ASHRAE 135 §9.3): preamble `55 FF`, frame type, destination, source,
//! data length (big-endian), header CRC-8; then, when the length is not zero, the data (an NPDU
//! in the data frame types) and its CRC-16, low octet first. Both CRCs are checked as Annex G
//! specifies (header: x⁸+x⁷+1 with remainder 0x55; data: CRC-CCITT reflected, remainder 0xF0B8).
//! This is what a pcap of link type 165 (BACnet MS/TP) holds per packet.
//!
//! [`MstpMessage`] is the [`Exchange`] view of one frame: a data frame whose CRCs check is its
//! NPDU's message (role, key, target, … of [`super::Message`]) with the frame's fields in front;
//! any other frame (Token, Poll For Master, a frame whose CRC failed) is [`Role::Other`] with
//! function [`MSTP_FRAME`] + frame type, counted and listed, never paired.

use super::Message;
use crate::proto::exchange::{Exchange, Field, Role};

/// Function numbers of MS/TP frames without a decoded NPDU (+ frame type); see
/// [`super::function_name`].
pub const MSTP_FRAME: u32 = 0x500;

/// The preamble.
pub const PREAMBLE: [u8; 2] = [0x55, 0xFF];

/// tshark's name of an MS/TP frame type (`mstp.frame_type`).
#[must_use]
pub fn frame_type_name(t: u8) -> &'static str {
    match t {
        0 => "Token",
        1 => "Poll For Master",
        2 => "Reply To Poll For Master",
        3 => "Test_Request",
        4 => "Test_Response",
        5 => "BACnet Data Expecting Reply",
        6 => "BACnet Data Not Expecting Reply",
        7 => "Reply Postponed",
        32 => "BACnet Extended Data Expecting Reply",
        33 => "BACnet Extended Data Not Expecting Reply",
        _ => "Unknown",
    }
}

fn header_crc_step(data: u8, crc: u8) -> u8 {
    let mut c = u16::from(crc ^ data);
    c = c ^ (c << 1) ^ (c << 2) ^ (c << 3) ^ (c << 4) ^ (c << 5) ^ (c << 6) ^ (c << 7);
    ((c & 0xfe) ^ ((c >> 8) & 1)) as u8
}

/// The header CRC to send for the five octets type..length.
#[must_use]
pub fn header_crc(h: &[u8]) -> u8 {
    !h.iter().fold(0xFF, |c, &b| header_crc_step(b, c))
}

fn data_crc_step(data: u8, crc: u16) -> u16 {
    let low = (crc & 0xff) ^ u16::from(data);
    (crc >> 8)
        ^ (low << 8)
        ^ (low << 3)
        ^ (low << 12)
        ^ (low >> 4)
        ^ (low & 0x0f)
        ^ ((low & 0x0f) << 7)
}

/// The data CRC to send (low octet first) for `d`.
#[must_use]
pub fn data_crc(d: &[u8]) -> u16 {
    !d.iter().fold(0xFFFF, |c, &b| data_crc_step(b, c))
}

/// An MS/TP frame.
#[derive(Debug, Clone, Copy)]
pub struct MstpFrame<'a> {
    /// Frame type.
    pub frame_type: u8,
    /// Destination MAC.
    pub dst: u8,
    /// Source MAC.
    pub src: u8,
    /// The length field.
    pub length: u16,
    /// Header CRC checked.
    pub header_crc_ok: bool,
    /// Data CRC checked (true when there is no data).
    pub data_crc_ok: bool,
    /// The data (the NPDU of a data frame), as far as captured.
    pub data: &'a [u8],
    /// The frame ends before its length says.
    pub cut: bool,
}

impl MstpFrame<'_> {
    /// The frame's fields under the golden files' names (`mstp_frame_type`, `mstp_dst`,
    /// `mstp_src`); the NPDU's come from [`super::parse_npdu_message`].
    pub fn fields(&self, out: &mut Vec<(&'static str, Field)>) {
        out.push(("mstp_frame_type", Field::U(u64::from(self.frame_type))));
        out.push(("mstp_dst", Field::U(u64::from(self.dst))));
        out.push(("mstp_src", Field::U(u64::from(self.src))));
    }

    /// Both CRCs check and the frame is whole.
    #[must_use]
    pub fn intact(&self) -> bool {
        self.header_crc_ok && self.data_crc_ok && !self.cut
    }

    /// Whether the data is an NPDU (data frame types 5, 6).
    #[must_use]
    pub fn carries_npdu(&self) -> bool {
        matches!(self.frame_type, 5 | 6) && !self.data.is_empty()
    }
}

/// Parses the frame at the start of `b`; `None` without the preamble or a whole header.
#[must_use]
pub fn parse_frame(b: &[u8]) -> Option<MstpFrame<'_>> {
    if b.len() < 8 || b[..2] != PREAMBLE {
        return None;
    }
    let length = u16::from_be_bytes([b[5], b[6]]);
    let header_crc_ok = header_crc(&b[2..7]) == b[7];
    let rest = &b[8..];
    let n = usize::from(length);
    let (data, cut, data_crc_ok) = if n == 0 {
        (&rest[..0], false, true)
    } else if rest.len() >= n + 2 {
        let ok = data_crc(&rest[..n]).to_le_bytes() == [rest[n], rest[n + 1]];
        (&rest[..n], false, ok)
    } else {
        (&rest[..rest.len().min(n)], true, false)
    };
    Some(MstpFrame {
        frame_type: b[2],
        dst: b[3],
        src: b[4],
        length,
        header_crc_ok,
        data_crc_ok,
        data,
        cut,
    })
}

/// One MS/TP frame as a message (see the module header).
#[derive(Debug, Clone)]
pub struct MstpMessage<'a> {
    /// The frame.
    pub frame: MstpFrame<'a>,
    /// Its NPDU's message: a data frame whose CRCs check.
    pub npdu: Option<Message<'a>>,
}

impl<'a> MstpMessage<'a> {
    /// The message of `frame`.
    #[must_use]
    pub fn of(frame: MstpFrame<'a>) -> MstpMessage<'a> {
        let npdu =
            (frame.intact() && frame.carries_npdu()).then(|| super::parse_npdu_message(frame.data));
        MstpMessage { frame, npdu }
    }
}

impl Exchange for MstpMessage<'_> {
    fn role(&self) -> Role {
        self.npdu.as_ref().map_or(Role::Other, Exchange::role)
    }
    fn key(&self) -> u32 {
        self.npdu.as_ref().map_or(0, Exchange::key)
    }
    fn function(&self) -> u32 {
        self.npdu.as_ref().map_or(
            MSTP_FRAME + u32::from(self.frame.frame_type),
            Exchange::function,
        )
    }
    fn failure(&self) -> Option<u32> {
        self.npdu.as_ref().and_then(Exchange::failure)
    }
    fn is_write(&self) -> bool {
        self.npdu.as_ref().is_some_and(Exchange::is_write)
    }
    fn target(&self, out: &mut String) {
        if let Some(m) = &self.npdu {
            m.target(out);
        }
    }
    fn written(&self, out: &mut String) {
        if let Some(m) = &self.npdu {
            m.written(out);
        }
    }
    fn malformed(&self) -> Option<&'static str> {
        let f = &self.frame;
        if f.cut {
            Some("MS/TP frame cut short")
        } else if !f.header_crc_ok {
            Some("MS/TP header CRC error")
        } else if !f.data_crc_ok {
            Some("MS/TP data CRC error (NPDU not decoded)")
        } else {
            self.npdu.as_ref().and_then(Exchange::malformed)
        }
    }
    fn fields(&self, out: &mut Vec<(&'static str, Field)>) {
        self.frame.fields(out);
        if let Some(m) = &self.npdu {
            m.fields(out);
        }
    }
}

/// Builds a frame with correct CRCs.
#[must_use]
pub fn build_frame(frame_type: u8, dst: u8, src: u8, data: &[u8]) -> Vec<u8> {
    let n = data.len().min(usize::from(u16::MAX));
    let mut f = vec![0x55, 0xFF, frame_type, dst, src];
    f.extend_from_slice(&(n as u16).to_be_bytes());
    f.push(header_crc(&f[2..7]));
    if n > 0 {
        f.extend_from_slice(&data[..n]);
        f.extend_from_slice(&data_crc(&data[..n]).to_le_bytes());
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crcs_check_on_captured_frames() {
        // bacnet_mstp_serial.pcap frames 1 and 2 (Poll For Master, Token).
        let f = parse_frame(&[0x55, 0xff, 0x01, 0x69, 0x1b, 0x00, 0x00, 0x78]).unwrap();
        assert!(f.header_crc_ok && f.data_crc_ok);
        assert_eq!(
            (frame_type_name(f.frame_type), f.dst, f.src),
            ("Poll For Master", 0x69, 0x1b)
        );
        let f = parse_frame(&[0x55, 0xff, 0x00, 0x00, 0x1b, 0x00, 0x00, 0x06]).unwrap();
        assert!(f.header_crc_ok);
        assert_eq!(frame_type_name(f.frame_type), "Token");
        // CRC-16/X-25 check value (the MS/TP data CRC is that CRC).
        assert_eq!(data_crc(b"123456789"), 0x906E);
    }

    #[test]
    fn built_frames_check_and_damage_is_seen() {
        let mut f = build_frame(5, 12, 0, &[1, 4, 2, 3]);
        let p = parse_frame(&f).unwrap();
        assert!(p.header_crc_ok && p.data_crc_ok && p.carries_npdu() && !p.cut);
        f[9] ^= 0x10;
        assert!(!parse_frame(&f).unwrap().data_crc_ok);
        f[3] ^= 1;
        assert!(!parse_frame(&f).unwrap().header_crc_ok);
        assert!(parse_frame(&f[..f.len() - 1]).unwrap().cut);
        assert!(parse_frame(&f[..7]).is_none());
        assert_eq!(frame_type_name(6), "BACnet Data Not Expecting Reply");
    }

    #[test]
    fn a_frame_is_its_npdus_message_or_counted_only() {
        // ReadProperty device,2 object-list, invoke id 241 (bacnet_mstp_serial.pcap frame 3).
        let npdu = [1, 4, 2, 0x75, 241, 12, 0x0c, 0x02, 0, 0, 2, 0x19, 76];
        let data = build_frame(5, 12, 0, &npdu);
        let m = MstpMessage::of(parse_frame(&data).unwrap());
        assert_eq!((m.role(), m.key(), m.function()), (Role::Request, 241, 12));
        assert_eq!(m.malformed(), None);
        let mut f = Vec::new();
        m.fields(&mut f);
        assert_eq!(f[0], ("mstp_frame_type", Field::U(5)));
        assert!(f.contains(&("invoke_id", Field::U(241))));
        let t = build_frame(0, 12, 11, &[]);
        let token = MstpMessage::of(parse_frame(&t).unwrap());
        assert_eq!(token.role(), Role::Other);
        assert_eq!(super::super::function_name(token.function()), "Token");
        let mut bad = build_frame(5, 12, 0, &npdu);
        bad[9] ^= 1;
        let m = MstpMessage::of(parse_frame(&bad).unwrap());
        assert!(m.npdu.is_none() && m.malformed().is_some());
        assert_eq!(m.role(), Role::Other);
    }
}
