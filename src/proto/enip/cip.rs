//! CIP (Common Industrial Protocol, ODVA Vol. 1) messages as EtherNet/IP carries them: the
//! message router request (service, EPATH, data) and response (service | 0x80, general status,
//! extended status words, data), the request path's segments (logical class/instance/member/
//! attribute/connection point, ANSI extended symbolic → tag names, port and key segments), the
//! Multiple Service Packet's embedded services, Unconnected Send's embedded request, Forward
//! Open / Large Forward Open / Forward Close parameters and Logix tag services. Everything is
//! borrowed; parsing never panics and never reads past its slice.

use std::fmt::Write as _;

/// Multiple Service Packet.
pub const SC_MULTIPLE: u8 = 0x0a;
/// Set Attributes All.
pub const SC_SET_ALL: u8 = 0x02;
/// Set Attribute List.
pub const SC_SET_LIST: u8 = 0x04;
/// Set Attribute Single.
pub const SC_SET_SINGLE: u8 = 0x10;
/// Logix Read Tag.
pub const SC_READ_TAG: u8 = 0x4c;
/// Logix Write Tag.
pub const SC_WRITE_TAG: u8 = 0x4d;
/// Connection Manager Forward Close (Logix: Read Modify Write Tag).
pub const SC_FORWARD_CLOSE: u8 = 0x4e;
/// Connection Manager Unconnected Send (Logix: Read Tag Fragmented).
pub const SC_UNCONNECTED_SEND: u8 = 0x52;
/// Logix Write Tag Fragmented.
pub const SC_WRITE_TAG_FRAG: u8 = 0x53;
/// Connection Manager Forward Open.
pub const SC_FORWARD_OPEN: u8 = 0x54;
/// Connection Manager Large Forward Open.
pub const SC_LARGE_FORWARD_OPEN: u8 = 0x5b;
/// The Connection Manager's class.
pub const CLASS_CONNECTION_MANAGER: u32 = 6;
/// [`super::function_name`]'s flag for a service addressed to a symbolic tag path (the Logix
/// services 0x4c–0x55 reuse codes of the Connection Manager's).
pub const LOGIX: u32 = 0x100;

/// The decoded request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Path<'a> {
    /// The raw EPATH (as tshark's `cip.epath`).
    pub raw: &'a [u8],
    /// The last logical class segment.
    pub class: Option<u32>,
    /// The last logical instance segment.
    pub instance: Option<u32>,
    /// The last logical attribute segment.
    pub attribute: Option<u32>,
    /// The last member (element) segment.
    pub member: Option<u32>,
    /// The connection point segment.
    pub connpoint: Option<u32>,
    /// Whether an ANSI extended symbolic segment is present (the tag name: [`Path::tag`]).
    pub symbolic: bool,
    /// A segment that could not be read (the path is known up to it).
    pub bad: bool,
}

/// One EPATH segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment<'a> {
    /// Logical segment: its type (0 class, 1 instance, 2 member, 3 connection point, 4
    /// attribute, 5 special, 6 service id) and value.
    Logical(u8, u32),
    /// ANSI extended symbolic segment's characters.
    Symbol(&'a [u8]),
    /// Port segment: port number and link address bytes.
    Port(u16, &'a [u8]),
    /// Any other segment (electronic key, network, data): its type byte.
    Other(u8),
}

/// Iterates the segments of an EPATH; stops (yielding `Err`) at the first one that does not
/// fit.
pub fn segments(p: &[u8]) -> impl Iterator<Item = Result<Segment<'_>, ()>> + '_ {
    let mut off = 0usize;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || off >= p.len() {
            return None;
        }
        if let Some((seg, len)) = segment_at(p, off) {
            off += len;
            Some(Ok(seg))
        } else {
            failed = true;
            Some(Err(()))
        }
    })
}

fn segment_at(p: &[u8], off: usize) -> Option<(Segment<'_>, usize)> {
    let t = *p.get(off)?;
    let le16 = |at: usize| Some(u16::from_le_bytes([*p.get(at)?, *p.get(at + 1)?]));
    match t >> 5 {
        // port segment: 000e pppp
        0 => {
            let mut port = u16::from(t & 0x0f);
            let mut at = off + 1;
            let ext_link = t & 0x10 != 0;
            let link_len = if ext_link {
                at += 1;
                usize::from(*p.get(off + 1)?)
            } else {
                1
            };
            if port == 0x0f {
                port = le16(at)?;
                at += 2;
            }
            let link = p.get(at..at + link_len)?;
            let mut len = at + link_len - off;
            len += len % 2;
            Some((Segment::Port(port, link), len.min(p.len() - off)))
        }
        // logical segment: 001t ttff
        1 => {
            let kind = (t >> 2) & 7;
            match t & 3 {
                0 => Some((Segment::Logical(kind, u32::from(*p.get(off + 1)?)), 2)),
                1 => Some((Segment::Logical(kind, u32::from(le16(off + 2)?)), 4)),
                2 => {
                    let v = p.get(off + 2..off + 6)?;
                    Some((
                        Segment::Logical(kind, u32::from_le_bytes([v[0], v[1], v[2], v[3]])),
                        6,
                    ))
                }
                _ => None,
            }
        }
        // network segment: 010x xxxx; 0x50 and up carry a length in words
        2 => {
            if t & 0x10 != 0 {
                let words = usize::from(*p.get(off + 1)?);
                p.get(off..off + 2 + 2 * words)?;
                Some((Segment::Other(t), 2 + 2 * words))
            } else {
                p.get(off + 1)?;
                Some((Segment::Other(t), 2))
            }
        }
        // symbolic segment 011x xxxx: size in the low bits
        3 => {
            let n = usize::from(t & 0x1f);
            p.get(off + 1..off + 1 + n)?;
            let len = 1 + n;
            Some((Segment::Other(t), len + len % 2))
        }
        // data segment 100x xxxx: 0x80 simple (words), 0x91 ANSI extended symbolic (bytes)
        4 => match t {
            0x91 => {
                let n = usize::from(*p.get(off + 1)?);
                let s = p.get(off + 2..off + 2 + n)?;
                Some((Segment::Symbol(s), 2 + n + n % 2))
            }
            0x80 => {
                let words = usize::from(*p.get(off + 1)?);
                p.get(off..off + 2 + 2 * words)?;
                Some((Segment::Other(t), 2 + 2 * words))
            }
            _ => None,
        },
        // 0x34 electronic key is a logical special segment (handled above: 001 101 00); the
        // data type segments 101x/110x are not request path segments
        _ => None,
    }
    .map(|(s, l)| {
        // the special/key segment: 0x34 format 4 carries 8 bytes
        if let Segment::Logical(5, v) = s {
            if t == 0x34 && v == 4 {
                return (Segment::Other(t), 10);
            }
        }
        (s, l)
    })
    .filter(|(_, l)| off + l <= p.len())
}

/// Decodes a request path.
pub fn parse_path(raw: &[u8]) -> Path<'_> {
    let mut path = Path {
        raw,
        ..Path::default()
    };
    for seg in segments(raw) {
        match seg {
            Ok(Segment::Logical(0, v)) => path.class = Some(v),
            Ok(Segment::Logical(1, v)) => path.instance = Some(v),
            Ok(Segment::Logical(2, v)) => path.member = Some(v),
            Ok(Segment::Logical(3, v)) => path.connpoint = Some(v),
            Ok(Segment::Logical(4, v)) => path.attribute = Some(v),
            Ok(Segment::Symbol(_)) => path.symbolic = true,
            Ok(_) => {}
            Err(()) => path.bad = true,
        }
    }
    path
}

impl Path<'_> {
    /// The tag name of a symbolic path: the symbols joined by `.`, members as `[n]`
    /// (`Program:Main.Speed`, `Recipe[3].Temp`), sanitized.
    pub fn tag(&self, out: &mut String) {
        let mut first = true;
        for seg in segments(self.raw).flatten() {
            match seg {
                Segment::Symbol(s) => {
                    if !first {
                        out.push('.');
                    }
                    first = false;
                    out.push_str(&crate::proto::sanitize(&String::from_utf8_lossy(s)));
                }
                Segment::Logical(2, v) if !first => {
                    let _ = write!(out, "[{v}]");
                }
                _ => {}
            }
        }
    }

    /// The path as a technician reads it: `Tag 'Program:Main.Speed'` or
    /// `Identity/1/7` (class name or `0x8b`, instance, attribute).
    pub fn render(&self, out: &mut String) {
        if self.symbolic {
            out.push_str("Tag '");
            self.tag(out);
            out.push('\'');
            return;
        }
        match self.class {
            Some(c) => match super::class_name(c) {
                Some(n) => out.push_str(n),
                None => {
                    let _ = write!(out, "Class 0x{c:02x}");
                }
            },
            None => out.push('?'),
        }
        if let Some(i) = self.instance {
            let _ = write!(out, "/{i}");
        }
        if let Some(a) = self.attribute {
            let _ = write!(out, "/{a}");
        }
        if let Some(c) = self.connpoint {
            let _ = write!(out, " conn.point {c}");
        }
    }
}

/// One CIP message router request or response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cip<'a> {
    /// The service code without the response bit.
    pub service: u8,
    /// Whether this is a response (bit 0x80 of the service byte).
    pub response: bool,
    /// Request: the decoded request path.
    pub path: Path<'a>,
    /// Response: the general status (0 success).
    pub general_status: u8,
    /// Response: the extended status words (little-endian, as on the wire).
    pub ext_status: &'a [u8],
    /// The service's data after the path / status.
    pub data: &'a [u8],
    /// Why the message could not be read whole.
    pub malformed: Option<&'static str>,
}

/// Reads one CIP message; `None` if it has not even a service byte and one more.
pub fn parse_cip(b: &[u8]) -> Option<Cip<'_>> {
    if b.len() < 2 {
        return None;
    }
    let mut c = Cip {
        service: b[0] & 0x7f,
        response: b[0] & 0x80 != 0,
        path: Path::default(),
        general_status: 0,
        ext_status: &[],
        data: &[],
        malformed: None,
    };
    if c.response {
        if b.len() < 4 {
            c.malformed = Some("CIP response shorter than 4 bytes");
            c.general_status = b.get(2).copied().unwrap_or(0);
            return Some(c);
        }
        c.general_status = b[2];
        let ext = 2 * usize::from(b[3]);
        if let Some(e) = b.get(4..4 + ext) {
            c.ext_status = e;
            c.data = &b[4 + ext..];
        } else {
            c.ext_status = &b[4..];
            c.malformed = Some("CIP extended status longer than the message");
        }
    } else {
        let plen = 2 * usize::from(b[1]);
        if let Some(p) = b.get(2..2 + plen) {
            c.path = parse_path(p);
            c.data = &b[2 + plen..];
            if c.path.bad {
                c.malformed = Some("CIP request path segment not understood");
            }
        } else {
            c.path = parse_path(&b[2..]);
            c.malformed = Some("CIP request path longer than the message");
        }
    }
    Some(c)
}

/// Forward Open / Large Forward Open request parameters (or, with `response`, the reply's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ForwardOpen {
    /// O→T network connection id.
    pub ot_connid: u32,
    /// T→O network connection id.
    pub to_connid: u32,
    /// Connection serial number.
    pub conn_serial: u16,
    /// Originator vendor id.
    pub vendor: u16,
    /// Originator serial number.
    pub orig_serial: u32,
    /// O→T RPI (request) or API (reply), µs.
    pub ot_rpi: u32,
    /// T→O RPI (request) or API (reply), µs.
    pub to_rpi: u32,
    /// O→T network parameters (request).
    pub ot_params: u32,
    /// T→O network parameters (request).
    pub to_params: u32,
    /// Transport class and trigger byte (request).
    pub transport: u8,
}

impl ForwardOpen {
    /// O→T connection size in bytes (the low 9 bits of the 16-bit parameters, 16 of 32-bit).
    pub fn ot_size(&self, large: bool) -> u32 {
        if large {
            self.ot_params & 0xffff
        } else {
            self.ot_params & 0x1ff
        }
    }

    /// T→O connection size in bytes.
    pub fn to_size(&self, large: bool) -> u32 {
        if large {
            self.to_params & 0xffff
        } else {
            self.to_params & 0x1ff
        }
    }
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    let v = b.get(at..at + 4)?;
    Some(u32::from_le_bytes([v[0], v[1], v[2], v[3]]))
}

fn le16(b: &[u8], at: usize) -> Option<u16> {
    let v = b.get(at..at + 2)?;
    Some(u16::from_le_bytes([v[0], v[1]]))
}

impl<'a> Cip<'a> {
    /// Whether the request addresses the Connection Manager (class 6).
    pub fn to_connection_manager(&self) -> bool {
        self.path.class == Some(CLASS_CONNECTION_MANAGER)
    }

    /// [`super::function_name`]'s value: the service, with [`LOGIX`] for a symbolic path.
    pub fn function(&self) -> u32 {
        let f = u32::from(self.service);
        if !self.response && self.path.symbolic && (0x4b..=0x5f).contains(&self.service) {
            f | LOGIX
        } else {
            f
        }
    }

    /// A write: Set Attributes All / List / Single, Logix Write Tag (fragmented) and Read
    /// Modify Write Tag (requests only).
    pub fn is_write(&self) -> bool {
        !self.response
            && (matches!(self.service, SC_SET_ALL | SC_SET_LIST | SC_SET_SINGLE)
                || (self.path.symbolic
                    && matches!(
                        self.service,
                        SC_WRITE_TAG | SC_WRITE_TAG_FRAG | SC_FORWARD_CLOSE
                    )))
    }

    /// The values a write carries: Set Attribute(s)' data; Write Tag's data after the type and
    /// count (and offset, fragmented).
    pub fn written_bytes(&self) -> &'a [u8] {
        if !self.is_write() {
            return &[];
        }
        let skip = match self.service {
            SC_WRITE_TAG | SC_WRITE_TAG_FRAG => {
                // type (2, or 4 for a structure 0xa0 0x02 handle) + count (2) [+ offset (4)]
                let ty = if self.data.first() == Some(&0xa0) {
                    4
                } else {
                    2
                };
                ty + 2
                    + if self.service == SC_WRITE_TAG_FRAG {
                        4
                    } else {
                        0
                    }
            }
            _ => 0,
        };
        self.data.get(skip..).unwrap_or(&[])
    }

    /// The services of a Multiple Service Packet (request or response), in order; a service
    /// whose offset does not fit ends the list.
    pub fn multiple(&self) -> impl Iterator<Item = Cip<'a>> + 'a {
        let d = if self.service == SC_MULTIPLE {
            self.data
        } else {
            &[]
        };
        let n = le16(d, 0).unwrap_or(0);
        (0..n).map_while(move |i| {
            let i = usize::from(i);
            let start = usize::from(le16(d, 2 + 2 * i)?);
            let end = if i + 1 < usize::from(n) {
                usize::from(le16(d, 4 + 2 * i)?)
            } else {
                d.len()
            };
            if start > end {
                return None;
            }
            parse_cip(d.get(start..end)?)
        })
    }

    /// Unconnected Send (request to the Connection Manager): the embedded request.
    pub fn embedded(&self) -> Option<Cip<'a>> {
        if self.response || self.service != SC_UNCONNECTED_SEND || !self.to_connection_manager() {
            return None;
        }
        let n = usize::from(le16(self.data, 2)?);
        parse_cip(self.data.get(4..4 + n)?)
    }

    /// Forward Open / Large Forward Open (request to the Connection Manager, or any reply of
    /// that service): its parameters.
    pub fn forward_open(&self) -> Option<ForwardOpen> {
        if !matches!(self.service, SC_FORWARD_OPEN | SC_LARGE_FORWARD_OPEN) {
            return None;
        }
        let d = self.data;
        if self.response {
            if self.general_status != 0 {
                return None;
            }
            return Some(ForwardOpen {
                ot_connid: le32(d, 0)?,
                to_connid: le32(d, 4)?,
                conn_serial: le16(d, 8)?,
                vendor: le16(d, 10)?,
                orig_serial: le32(d, 12)?,
                ot_rpi: le32(d, 16)?,
                to_rpi: le32(d, 20)?,
                ..ForwardOpen::default()
            });
        }
        if !self.to_connection_manager() {
            return None;
        }
        let large = self.service == SC_LARGE_FORWARD_OPEN;
        let w = if large { 4 } else { 2 };
        let net = |at: usize| -> Option<u32> {
            if large {
                le32(d, at)
            } else {
                le16(d, at).map(u32::from)
            }
        };
        let ot_rpi_at = 2 + 4 + 4 + 2 + 2 + 4 + 1 + 3;
        Some(ForwardOpen {
            ot_connid: le32(d, 2)?,
            to_connid: le32(d, 6)?,
            conn_serial: le16(d, 10)?,
            vendor: le16(d, 12)?,
            orig_serial: le32(d, 14)?,
            ot_rpi: le32(d, ot_rpi_at)?,
            ot_params: net(ot_rpi_at + 4)?,
            to_rpi: le32(d, ot_rpi_at + 4 + w)?,
            to_params: net(ot_rpi_at + 8 + w)?,
            transport: *d.get(ot_rpi_at + 8 + 2 * w)?,
        })
    }

    /// Forward Close (request or reply): connection serial, originator vendor and serial.
    pub fn forward_close(&self) -> Option<(u16, u16, u32)> {
        if self.service != SC_FORWARD_CLOSE || (!self.response && !self.to_connection_manager()) {
            return None;
        }
        let at = if self.response { 0 } else { 2 };
        Some((
            le16(self.data, at)?,
            le16(self.data, at + 2)?,
            le32(self.data, at + 4)?,
        ))
    }

    /// The first extended status word.
    pub fn ext_status_word(&self) -> Option<u16> {
        le16(self.ext_status, 0)
    }
}
