//! From a captured frame to a TCP segment or UDP datagram: link layers (Ethernet, stacked
//! 802.1Q/802.1ad, Linux SLL and SLL2, raw IP, BSD loopback/null), IPv4 and IPv6. No
//! allocation; everything borrows the frame.

use std::{fmt, net::IpAddr};

use pcap_parser::Linktype;

/// An IPv4 or IPv6 address, IPv4 stored as v4-mapped IPv6 so flows hash as one fixed-size key.
/// Ordered as its bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Addr(pub [u8; 16]);

impl Addr {
    /// From four IPv4 octets.
    #[inline]
    #[must_use]
    pub fn v4(o: [u8; 4]) -> Addr {
        // Made in a register, not byte by byte: a flow key is compared right after.
        Addr((0xffff_0000_0000u128 | u128::from(u32::from_be_bytes(o))).to_be_bytes())
    }

    /// As a std address (IPv4 when mapped).
    #[must_use]
    pub fn ip(self) -> IpAddr {
        let v6 = std::net::Ipv6Addr::from(self.0);
        match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        }
    }
}

// Byte order is big-endian number order: one comparison of two words, not sixteen of bytes.
impl Ord for Addr {
    #[inline]
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        u128::from_be_bytes(self.0).cmp(&u128::from_be_bytes(o.0))
    }
}

impl PartialOrd for Addr {
    #[inline]
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.serial() {
            Some((line, SerialEnd::Line)) => f.write_str(line_name(line)),
            Some((line, SerialEnd::Master)) => write!(f, "{}/master", line_name(line)),
            Some((line, SerialEnd::Unit(u))) => write!(f, "{}/{u}", line_name(line)),
            None => self.ip().fmt(f),
        }
    }
}

/// What a serial [`Addr`] stands for on its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SerialEnd {
    /// The line itself (the address of its devices; the unit is the device id's).
    Line,
    /// The master polling the line.
    Master,
    /// One unit on the line.
    Unit(u8),
}

/// First two bytes of a serial line's [`Addr`]: `ff53::/16`, IPv6 multicast, which is never
/// the end of a TCP connection, so a serial line's devices never mix with a network's.
const SERIAL_PREFIX: [u8; 2] = [0xff, 0x53];

/// Names of the serial lines seen by this process, by index (a handful: bounded).
static LINES: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
/// Serial lines named one by one; further names share the last index.
const MAX_LINES: usize = 256;

/// The index of the serial line named `name` (`/dev/` dropped: `ttyUSB1`), registered on first
/// use, so that a serial device's [`Addr`] stays a plain copyable value and prints its line's
/// name.
#[must_use]
pub fn line_index(name: &str) -> u16 {
    let name = name.strip_prefix("/dev/").unwrap_or(name);
    let mut lines = LINES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(i) = lines.iter().position(|l| *l == name) {
        return u16::try_from(i).unwrap_or(u16::MAX);
    }
    if lines.len() >= MAX_LINES {
        return u16::try_from(MAX_LINES - 1).unwrap_or(u16::MAX);
    }
    lines.push(Box::leak(name.to_string().into_boxed_str()));
    u16::try_from(lines.len() - 1).unwrap_or(u16::MAX)
}

/// The name of serial line `i` (`serial` if never registered).
#[must_use]
pub fn line_name(i: u16) -> &'static str {
    LINES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(usize::from(i))
        .copied()
        .unwrap_or("serial")
}

impl Addr {
    /// The address of an end of serial line `line`.
    #[must_use]
    pub fn serial_end(line: u16, end: SerialEnd) -> Addr {
        let mut a = [0u8; 16];
        a[..2].copy_from_slice(&SERIAL_PREFIX);
        match end {
            SerialEnd::Line => {}
            SerialEnd::Master => a[2] = 1,
            SerialEnd::Unit(u) => {
                a[2] = 2;
                a[3] = u;
            }
        }
        a[14..].copy_from_slice(&line.to_be_bytes());
        Addr(a)
    }

    /// The serial line and end this address stands for; `None` for an IP address.
    #[must_use]
    pub fn serial(self) -> Option<(u16, SerialEnd)> {
        if self.0[..2] != SERIAL_PREFIX {
            return None;
        }
        let line = u16::from_be_bytes([self.0[14], self.0[15]]);
        Some((
            line,
            match self.0[2] {
                1 => SerialEnd::Master,
                2 => SerialEnd::Unit(self.0[3]),
                _ => SerialEnd::Line,
            },
        ))
    }
}

/// TCP flag bits.
pub mod flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// ACK.
    pub const ACK: u8 = 0x10;
}

/// A TCP segment or UDP datagram, borrowed from its frame.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    /// Source address.
    pub src: Addr,
    /// Destination address.
    pub dst: Addr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number.
    pub ack: u32,
    /// Flags byte.
    pub flags: u8,
    /// Payload as captured.
    pub payload: &'a [u8],
    /// The IP header promised more payload than was captured (snaplen or a damaged length).
    pub cut: bool,
    /// A UDP datagram rather than a TCP segment (`seq`, `ack` and `flags` are 0).
    pub udp: bool,
}

/// A [`Segment`] with its payload as a place in its frame rather than a borrow: what the
/// reading thread of a capture file finds (`reader::for_each_packet_prepared`) and hands, with
/// the frame, to the decoder on the other core.
#[derive(Debug, Clone, Copy)]
pub struct SegmentAt {
    head: Segment<'static>,
    start: u32,
    len: u32,
}

impl SegmentAt {
    /// Where `seg`, found in `frame`, lies in it.
    #[must_use]
    pub fn of(seg: &Segment<'_>, frame: &[u8]) -> SegmentAt {
        let len = seg.payload.len();
        // The payload is a subslice of the frame (or empty): its offset is a pointer difference.
        let start = if len == 0 {
            0
        } else {
            (seg.payload.as_ptr() as usize).wrapping_sub(frame.as_ptr() as usize)
        };
        SegmentAt {
            head: Segment {
                payload: &[],
                ..*seg
            },
            start: start as u32,
            len: len as u32,
        }
    }

    /// The segment again, borrowing its payload from `frame` (the frame it was found in).
    #[must_use]
    pub fn segment<'a>(&self, frame: &'a [u8]) -> Segment<'a> {
        let (s, n) = (self.start as usize, self.len as usize);
        Segment {
            payload: frame.get(s..s + n).unwrap_or(&[]),
            ..self.head
        }
    }
}

/// [`segment`], with the payload as a place in the frame ([`SegmentAt`]).
///
/// # Errors
/// [`Skip`] says why the frame is not a usable TCP segment or UDP datagram.
pub fn locate_segment(linktype: Linktype, data: &[u8]) -> Result<SegmentAt, Skip> {
    segment(linktype, data).map(|s| SegmentAt::of(&s, data))
}

/// Why a frame carries no TCP segment or UDP datagram we can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Not IP, or neither TCP nor UDP (ARP, ICMP, STP, …): nothing to decode.
    NotTcpOrUdp,
    /// Link type we do not read.
    UnknownLink,
    /// An IP fragment (no IP reassembly).
    Fragment,
    /// A header is damaged or cut short.
    Malformed,
}

/// Link layer → TCP segment or UDP datagram.
///
/// # Errors
/// [`Skip`] says why the frame is not a usable TCP segment or UDP datagram.
#[inline]
pub fn segment(linktype: Linktype, data: &[u8]) -> Result<Segment<'_>, Skip> {
    let (ethertype, l3) = match linktype {
        Linktype::ETHERNET => {
            if data.len() < 14 {
                return Err(Skip::Malformed);
            }
            vlan(be16(data, 12), &data[14..])?
        }
        Linktype::LINUX_SLL => {
            if data.len() < 16 {
                return Err(Skip::Malformed);
            }
            vlan(be16(data, 14), &data[16..])?
        }
        Linktype::LINUX_SLL2 => {
            if data.len() < 20 {
                return Err(Skip::Malformed);
            }
            vlan(be16(data, 0), &data[20..])?
        }
        Linktype::NULL | Linktype::LOOP => {
            if data.len() < 4 {
                return Err(Skip::Malformed);
            }
            // DLT_NULL is host order, DLT_LOOP network order; accept either.
            let le = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
            let be = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
            let fam = if le < 256 { le } else { be };
            match fam {
                2 => (0x0800, &data[4..]),
                // AF_INET6 differs per OS: Linux 10, BSDs 24, FreeBSD 28, Darwin 30.
                10 | 24 | 28 | 30 => (0x86dd, &data[4..]),
                _ => return Err(Skip::NotTcpOrUdp),
            }
        }
        Linktype::RAW | Linktype::IPV4 | Linktype::IPV6 | Linktype(12 | 14) => {
            match data.first().map(|b| b >> 4) {
                Some(4) => (0x0800, data),
                Some(6) => (0x86dd, data),
                _ => return Err(Skip::Malformed),
            }
        }
        _ => return Err(Skip::UnknownLink),
    };
    match ethertype {
        0x0800 => ipv4(l3),
        0x86dd => ipv6(l3),
        _ => Err(Skip::NotTcpOrUdp),
    }
}

/// Peel any number of 802.1Q / 802.1ad / `QinQ` tags.
#[inline]
fn vlan(mut ethertype: u16, mut rest: &[u8]) -> Result<(u16, &[u8]), Skip> {
    while matches!(ethertype, 0x8100 | 0x88a8 | 0x9100) {
        if rest.len() < 4 {
            return Err(Skip::Malformed);
        }
        ethertype = be16(rest, 2);
        rest = &rest[4..];
    }
    Ok((ethertype, rest))
}

#[inline]
fn be16(d: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([d[at], d[at + 1]])
}

#[inline]
fn be32(d: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]])
}

#[inline]
fn ipv4(d: &[u8]) -> Result<Segment<'_>, Skip> {
    if d.len() < 20 || d[0] >> 4 != 4 {
        return Err(Skip::Malformed);
    }
    let ihl = usize::from(d[0] & 0x0f) * 4;
    let total = usize::from(be16(d, 2));
    if ihl < 20 || total < ihl || d.len() < ihl {
        return Err(Skip::Malformed);
    }
    let frag = be16(d, 6);
    if frag & 0x3fff != 0 {
        return Err(Skip::Fragment);
    }
    if d[9] != 6 && d[9] != 17 {
        return Err(Skip::NotTcpOrUdp);
    }
    let (end, cut) = if total <= d.len() {
        (total, false)
    } else {
        (d.len(), true)
    };
    let mut src = [0u8; 4];
    let mut dst = [0u8; 4];
    src.copy_from_slice(&d[12..16]);
    dst.copy_from_slice(&d[16..20]);
    transport(d[9], Addr::v4(src), Addr::v4(dst), &d[ihl..end], cut)
}

#[inline]
fn ipv6(d: &[u8]) -> Result<Segment<'_>, Skip> {
    if d.len() < 40 || d[0] >> 4 != 6 {
        return Err(Skip::Malformed);
    }
    let plen = usize::from(be16(d, 4));
    let mut next = d[6];
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src.copy_from_slice(&d[8..24]);
    dst.copy_from_slice(&d[24..40]);
    let avail = d.len() - 40;
    let (end, cut) = if plen <= avail {
        (40 + plen, false)
    } else {
        (d.len(), true)
    };
    let mut at = 40;
    // Extension headers: hop-by-hop, routing, destination options; a fragment header ends it.
    loop {
        match next {
            6 | 17 => break,
            0 | 43 | 60 => {
                if end < at + 8 {
                    return Err(Skip::Malformed);
                }
                next = d[at];
                at += (usize::from(d[at + 1]) + 1) * 8;
            }
            44 => return Err(Skip::Fragment),
            _ => return Err(Skip::NotTcpOrUdp),
        }
    }
    if at > end {
        return Err(Skip::Malformed);
    }
    transport(next, Addr(src), Addr(dst), &d[at..end], cut)
}

/// The TCP segment (IP protocol 6) or UDP datagram (17) in `t`. Always inlined: the reading
/// thread of a capture file calls it for every packet, and left to itself the compiler stopped
/// inlining `tcp` when `udp` was added (+9 % instructions on that thread).
#[allow(clippy::inline_always)]
#[inline(always)]
fn transport(proto: u8, src: Addr, dst: Addr, t: &[u8], cut: bool) -> Result<Segment<'_>, Skip> {
    if proto == 17 {
        return udp(src, dst, t, cut);
    }
    tcp(src, dst, t, cut)
}

#[inline]
fn udp(src: Addr, dst: Addr, u: &[u8], cut: bool) -> Result<Segment<'_>, Skip> {
    if u.len() < 8 {
        return Err(Skip::Malformed);
    }
    // The UDP length bounds the payload (Ethernet padding follows a short datagram); a length
    // below the header's is damaged, one beyond what was captured is a cut datagram.
    let len = usize::from(be16(u, 4));
    if len < 8 {
        return Err(Skip::Malformed);
    }
    let (end, cut) = if len <= u.len() {
        (len, cut)
    } else {
        (u.len(), true)
    };
    Ok(Segment {
        src,
        dst,
        sport: be16(u, 0),
        dport: be16(u, 2),
        seq: 0,
        ack: 0,
        flags: 0,
        payload: &u[8..end],
        cut,
        udp: true,
    })
}

#[allow(clippy::inline_always)]
#[inline(always)]
fn tcp(src: Addr, dst: Addr, t: &[u8], cut: bool) -> Result<Segment<'_>, Skip> {
    if t.len() < 20 {
        return Err(Skip::Malformed);
    }
    let off = usize::from(t[12] >> 4) * 4;
    if off < 20 || off > t.len() {
        return Err(Skip::Malformed);
    }
    Ok(Segment {
        src,
        dst,
        sport: be16(t, 0),
        dport: be16(t, 2),
        seq: be32(t, 4),
        ack: be32(t, 8),
        flags: t[13],
        payload: &t[off..],
        cut,
        udp: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eth_ipv4_tcp(vlans: usize, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        for _ in 0..vlans {
            f.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
        }
        f.extend_from_slice(&[0x08, 0x00]);
        let total = u16::try_from(40 + payload.len()).unwrap();
        f.extend_from_slice(&[
            0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ]);
        f[12 + vlans * 4 + 2 + 2..12 + vlans * 4 + 2 + 4].copy_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&[
            0x1f, 0x90, 0x01, 0xf6, 0, 0, 0, 7, 0, 0, 0, 0, 0x50, 0x18, 0, 0, 0, 0, 0, 0,
        ]);
        f.extend_from_slice(payload);
        f
    }

    proptest::proptest! {
        #[test]
        fn addresses_order_as_their_bytes(a: [u8; 16], b: [u8; 16], o: [u8; 4]) {
            proptest::prop_assert_eq!(Addr(a).cmp(&Addr(b)), a.cmp(&b));
            let mut mapped = [0u8; 16];
            mapped[10] = 0xff;
            mapped[11] = 0xff;
            mapped[12..].copy_from_slice(&o);
            proptest::prop_assert_eq!(Addr::v4(o).0, mapped);
        }
    }

    #[test]
    fn ethernet_and_stacked_vlans() {
        for vlans in 0..3 {
            let f = eth_ipv4_tcp(vlans, b"abc");
            let s = segment(Linktype::ETHERNET, &f).unwrap();
            assert_eq!(
                (s.sport, s.dport, s.seq, s.payload),
                (8080, 502, 7, &b"abc"[..])
            );
            assert_eq!(s.src.to_string(), "10.0.0.1");
            assert!(!s.cut);
        }
    }

    #[test]
    fn ethernet_padding_is_trimmed_and_cut_is_flagged() {
        let mut f = eth_ipv4_tcp(0, b"");
        f.extend_from_slice(&[0; 6]);
        assert_eq!(segment(Linktype::ETHERNET, &f).unwrap().payload, b"");
        let f = eth_ipv4_tcp(0, b"abcdef");
        let s = segment(Linktype::ETHERNET, &f[..f.len() - 2]).unwrap();
        assert!(s.cut);
        assert_eq!(s.payload, b"abcd");
    }

    #[test]
    fn udp_datagrams_are_bounded_by_their_length() {
        // Ethernet, IPv4 protocol 17, UDP 47808 -> 47808 with 3 bytes and 4 bytes of padding.
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(&[
            0x45, 0, 0, 31, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ]);
        f.extend_from_slice(&[0xba, 0xc0, 0xba, 0xc0, 0, 11, 0, 0, 0x81, 0x0a, 0x00]);
        f.extend_from_slice(&[0; 4]);
        let s = segment(Linktype::ETHERNET, &f).unwrap();
        assert!(s.udp);
        assert_eq!((s.sport, s.dport, s.flags), (47808, 47808, 0));
        assert_eq!(s.payload, &[0x81, 0x0a, 0x00]);
        assert!(!s.cut);
        // A UDP length beyond the capture: cut; below the header's: damaged.
        let mut long = f.clone();
        long[14 + 20 + 5] = 40;
        assert!(segment(Linktype::ETHERNET, &long).unwrap().cut);
        let mut short = f;
        short[14 + 20 + 5] = 7;
        assert_eq!(
            segment(Linktype::ETHERNET, &short).unwrap_err(),
            Skip::Malformed
        );
    }

    #[test]
    fn raw_and_null() {
        let f = eth_ipv4_tcp(0, b"x");
        assert!(segment(Linktype::RAW, &f[14..]).is_ok());
        let mut n = vec![2, 0, 0, 0];
        n.extend_from_slice(&f[14..]);
        assert!(segment(Linktype::NULL, &n).is_ok());
        assert_eq!(
            segment(Linktype::ETHERNET, &f[..10]).unwrap_err(),
            Skip::Malformed
        );
    }
}
