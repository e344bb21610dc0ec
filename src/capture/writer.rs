//! Writing pcapng (pcapng spec, draft-ietf-opsawg-pcapng): a section header, interfaces
//! ([`Interface`]: link type, snaplen, name; [`interface_block`] with any `if_tsresol`), and
//! enhanced packet blocks ([`packet_block`], the one place one is made). [`Recorder`] turns the
//! byte streams of TCP connections (as the simulator sees them) into frames with synthesized
//! Ethernet/IP/TCP headers — handshake, in-order sequence and acknowledgement numbers, correct
//! checksums, FIN at the end — so Wireshark/tshark open the file without warnings.
//!
//! Every packet is flushed as it is written: a recorder that is killed leaves a valid file up
//! to its last packet.

use std::{
    fs::File,
    io::{self, BufWriter, Write},
    net::{IpAddr, SocketAddr},
    path::Path,
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

/// Largest TCP payload per synthesized segment.
const MSS: usize = 1460;

/// A pcapng stream with one interface.
pub struct PcapngWriter<W: Write> {
    w: W,
}

fn pad4(n: usize) -> usize {
    (4 - n % 4) % 4
}

/// One pcapng block: its type, its total length, the body (`parts` in order) padded to 32 bits,
/// and the total length again.
fn block(block_type: u32, parts: &[&[u8]]) -> io::Result<Vec<u8>> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let pad = pad4(len);
    let total = u32::try_from(12 + len + pad).map_err(|_| io::Error::other("frame too large"))?;
    let mut b = Vec::with_capacity(total as usize);
    b.extend_from_slice(&block_type.to_le_bytes());
    b.extend_from_slice(&total.to_le_bytes());
    for p in parts {
        b.extend_from_slice(p);
    }
    b.extend(std::iter::repeat_n(0u8, pad));
    b.extend_from_slice(&total.to_le_bytes());
    Ok(b)
}

/// What a pcapng interface description says: link type, capture length, name and description
/// (its timestamp resolution is given where the block is written: [`interface_block`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// pcap link type (1 Ethernet, 252 exported PDU, 147 USER0, …).
    pub linktype: u16,
    /// Longest packet kept (0: no limit).
    pub snaplen: u32,
    /// `if_name`: the interface or serial port, when known.
    pub name: Option<String>,
    /// `if_description`: free text (e.g. a serial line's settings).
    pub description: Option<String>,
}

impl Interface {
    /// An unnamed Ethernet interface without a snaplen.
    #[must_use]
    pub fn ethernet() -> Interface {
        Interface {
            linktype: 1,
            snaplen: 0,
            name: None,
            description: None,
        }
    }
}

/// One pcapng option: code, length, value padded to 32 bits.
fn option(out: &mut Vec<u8>, code: u16, value: &[u8]) {
    let len = u16::try_from(value.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&code.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&value[..usize::from(len)]);
    out.extend(std::iter::repeat_n(0u8, pad4(usize::from(len))));
}

/// The Section Header Block that starts a file: byte-order magic, version 1.0, section length
/// not given, no options.
///
/// # Errors
/// Never in practice (a block too large for its length field).
pub fn section_header() -> io::Result<Vec<u8>> {
    let magic = 0x1A2B_3C4Du32.to_le_bytes();
    let version = [1u16.to_le_bytes(), 0u16.to_le_bytes()].concat();
    block(0x0A0D_0D0A, &[&magic, &version, &(-1i64).to_le_bytes()])
}

/// `if_tsresol` of an interface whose timestamps count nanoseconds.
pub const TSRESOL_NS: u8 = 9;

/// An Interface Description Block: link type, reserved 0, snaplen, and the options `if_name`
/// (2) and `if_description` (3) from `iface`, `if_tsresol` (9) = `tsresol` when given (the
/// option's byte as the pcapng spec gives it: 6 µs, 9 ns, 0x80 | n for 2^-n s; none means
/// µs), then `more` options (code, value) in order, then `opt_endofopt`.
///
/// # Errors
/// Never in practice (a block too large for its length field).
pub fn interface_block(
    iface: &Interface,
    tsresol: Option<u8>,
    more: &[(u16, &[u8])],
) -> io::Result<Vec<u8>> {
    let link = [iface.linktype.to_le_bytes(), 0u16.to_le_bytes()].concat();
    let mut opts = Vec::new();
    if let Some(n) = &iface.name {
        option(&mut opts, 2, n.as_bytes());
    }
    if let Some(d) = &iface.description {
        option(&mut opts, 3, d.as_bytes());
    }
    if let Some(r) = tsresol {
        option(&mut opts, 9, &[r]);
    }
    for (code, value) in more {
        option(&mut opts, *code, value);
    }
    opts.extend_from_slice(&0u32.to_le_bytes());
    block(1, &[&link, &iface.snaplen.to_le_bytes(), &opts])
}

/// The section header and the description of one interface with nanosecond timestamps: the
/// start of every file plcprobe writes from live traffic.
///
/// # Errors
/// Never in practice (a block too large for its length field).
pub fn file_header(iface: &Interface) -> io::Result<Vec<u8>> {
    let mut out = section_header()?;
    out.extend(interface_block(iface, Some(TSRESOL_NS), &[])?);
    Ok(out)
}

/// An Enhanced Packet Block for interface 0: `data` captured at `ts_ns` (ns since the epoch),
/// `orig_len` bytes on the wire, appended to `out`.
///
/// # Errors
/// A packet too large for the block's length field.
pub fn enhanced_packet(
    out: &mut Vec<u8>,
    ts_ns: i64,
    data: &[u8],
    orig_len: u32,
) -> io::Result<()> {
    enhanced_packet_with_flags(out, ts_ns, data, orig_len, 0)
}

/// [`enhanced_packet`] with `epb_flags` (a serial frame's direction: `Packet::direction`; bits
/// 0–1: 1 inbound, 2 outbound; 0 writes no option).
///
/// # Errors
/// A packet too large for the block's length field.
pub fn enhanced_packet_with_flags(
    out: &mut Vec<u8>,
    ts_ns: i64,
    data: &[u8],
    orig_len: u32,
    flags: u32,
) -> io::Result<()> {
    let ts = u64::try_from(ts_ns).unwrap_or(0);
    let flags = flags.to_le_bytes();
    let opts: &[(u16, &[u8])] = if u32::from_le_bytes(flags) == 0 {
        &[]
    } else {
        &[(2, &flags)]
    };
    packet_block(out, 0, ts, data, orig_len, opts)
}

/// The one way plcprobe writes an Enhanced Packet Block: interface `if_id`, the timestamp `ts`
/// in that interface's units (its `if_tsresol`), the captured `data`, `orig_len` bytes on the
/// wire (at least the captured length), and `options` (code, value: `epb_flags` 2, a comment
/// 1, …), appended to `out`.
///
/// # Errors
/// A packet too large for the block's length field.
pub fn packet_block(
    out: &mut Vec<u8>,
    if_id: u32,
    ts: u64,
    data: &[u8],
    orig_len: u32,
    options: &[(u16, &[u8])],
) -> io::Result<()> {
    let mut opts = Vec::new();
    if !options.is_empty() {
        opts.extend(std::iter::repeat_n(0u8, pad4(data.len())));
        for (code, value) in options {
            option(&mut opts, *code, value);
        }
        opts.extend_from_slice(&0u32.to_le_bytes());
    }
    let caplen = u32::try_from(data.len()).map_err(|_| io::Error::other("frame too large"))?;
    let high = u32::try_from(ts >> 32).unwrap_or(0).to_le_bytes();
    let low = u32::try_from(ts & 0xffff_ffff).unwrap_or(0).to_le_bytes();
    out.extend(block(
        6,
        &[
            &if_id.to_le_bytes(),
            &high,
            &low,
            &caplen.to_le_bytes(),
            &orig_len.max(caplen).to_le_bytes(),
            data,
            &opts,
        ],
    )?);
    Ok(())
}

impl<W: Write> PcapngWriter<W> {
    /// Write the section header and the interface description of an unnamed Ethernet
    /// interface.
    ///
    /// # Errors
    /// I/O errors of `w`.
    pub fn new(w: W) -> io::Result<Self> {
        Self::with_interface(w, &Interface::ethernet())
    }

    /// Write the section header and the description of `iface`.
    ///
    /// # Errors
    /// I/O errors of `w`.
    pub fn with_interface(mut w: W, iface: &Interface) -> io::Result<Self> {
        w.write_all(&file_header(iface)?)?;
        w.flush()?;
        Ok(PcapngWriter { w })
    }

    /// Write one frame captured at `ts_ns` (ns since the epoch).
    ///
    /// # Errors
    /// I/O errors of the underlying writer.
    pub fn packet(&mut self, ts_ns: u64, frame: &[u8]) -> io::Result<()> {
        self.packet_with_flags(ts_ns, frame, 0)
    }

    /// Write one frame with its `epb_flags` (bits 0–1: 1 inbound, 2 outbound; 0 writes no
    /// option). Serial captures mark a master's requests outbound and devices' answers inbound
    /// (`reader::PacketDirection`).
    ///
    /// # Errors
    /// I/O errors of the underlying writer.
    pub fn packet_with_flags(&mut self, ts_ns: u64, frame: &[u8], flags: u32) -> io::Result<()> {
        let len = u32::try_from(frame.len()).map_err(|_| io::Error::other("frame too large"))?;
        let mut b = Vec::with_capacity(frame.len() + 48);
        let flags = flags.to_le_bytes();
        let opts: &[(u16, &[u8])] = if u32::from_le_bytes(flags) == 0 {
            &[]
        } else {
            &[(2, &flags)]
        };
        packet_block(&mut b, 0, ts_ns, frame, len, opts)?;
        self.w.write_all(&b)?;
        self.w.flush()
    }

    /// The underlying writer.
    pub fn into_inner(self) -> W {
        self.w
    }
}

fn checksum(chunks: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    let mut odd: Option<u8> = None;
    for c in chunks {
        for &b in *c {
            match odd.take() {
                Some(hi) => sum += u32::from(u16::from_be_bytes([hi, b])),
                None => odd = Some(b),
            }
        }
    }
    if let Some(hi) = odd {
        sum += u32::from(u16::from_be_bytes([hi, 0]));
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(u16::try_from(sum).unwrap_or(0xffff))
}

/// TCP flags used when synthesizing.
pub mod tcpflags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
}

/// An Ethernet frame carrying one TCP segment from `src` to `dst` (IPv4 or IPv6, as the
/// addresses are), with valid IP and TCP checksums.
#[must_use]
pub fn tcp_frame(
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut tcp = Vec::with_capacity(20 + payload.len());
    tcp.extend_from_slice(&src.port().to_be_bytes());
    tcp.extend_from_slice(&dst.port().to_be_bytes());
    tcp.extend_from_slice(&seq.to_be_bytes());
    tcp.extend_from_slice(&(if flags & tcpflags::ACK != 0 { ack } else { 0 }).to_be_bytes());
    tcp.push(5 << 4);
    tcp.push(flags);
    tcp.extend_from_slice(&65535u16.to_be_bytes());
    tcp.extend_from_slice(&[0, 0, 0, 0]);
    tcp.extend_from_slice(payload);
    let tcp_len = u16::try_from(tcp.len()).unwrap_or(u16::MAX);
    let mut f = Vec::with_capacity(14 + 40 + tcp.len());
    // Locally administered MACs derived from the last address byte: stable per host.
    let mac = |ip: IpAddr| -> [u8; 6] {
        let last = match ip {
            IpAddr::V4(a) => a.octets()[3],
            IpAddr::V6(a) => a.octets()[15],
        };
        [0x02, 0x00, 0x00, 0x00, 0x00, last]
    };
    let (sm, dm) = (mac(src.ip()), mac(dst.ip()));
    // Loopback on both ends has one MAC; make the two ends differ so tools can tell them apart.
    let dm = if sm == dm {
        [0x02, 0, 0, 0, 1, dm[5]]
    } else {
        dm
    };
    f.extend_from_slice(&dm);
    f.extend_from_slice(&sm);
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            f.extend_from_slice(&0x0800u16.to_be_bytes());
            let mut ip = [0u8; 20];
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&(20 + tcp_len).to_be_bytes());
            ip[6] = 0x40; // don't fragment
            ip[8] = 64;
            ip[9] = 6;
            ip[12..16].copy_from_slice(&s.octets());
            ip[16..20].copy_from_slice(&d.octets());
            let c = checksum(&[&ip]);
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            let pseudo = [
                &s.octets()[..],
                &d.octets()[..],
                &[0, 6],
                &tcp_len.to_be_bytes()[..],
            ]
            .concat();
            let c = checksum(&[&pseudo, &tcp]);
            tcp[16..18].copy_from_slice(&c.to_be_bytes());
            f.extend_from_slice(&ip);
        }
        (s, d) => {
            let v6 = |a: IpAddr| match a {
                IpAddr::V4(x) => x.to_ipv6_mapped(),
                IpAddr::V6(x) => x,
            };
            let (s, d) = (v6(s), v6(d));
            f.extend_from_slice(&0x86ddu16.to_be_bytes());
            let mut ip = [0u8; 40];
            ip[0] = 0x60;
            ip[4..6].copy_from_slice(&tcp_len.to_be_bytes());
            ip[6] = 6;
            ip[7] = 64;
            ip[8..24].copy_from_slice(&s.octets());
            ip[24..40].copy_from_slice(&d.octets());
            let pseudo = [
                &s.octets()[..],
                &d.octets()[..],
                &u32::from(tcp_len).to_be_bytes()[..],
                &[0, 0, 0, 6],
            ]
            .concat();
            let c = checksum(&[&pseudo, &tcp]);
            tcp[16..18].copy_from_slice(&c.to_be_bytes());
            f.extend_from_slice(&ip);
        }
    }
    f.extend_from_slice(&tcp);
    f
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// A pcapng file being written by several connections at once.
pub struct Recorder {
    out: Mutex<RecState>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Recorder")
    }
}

struct RecState {
    w: PcapngWriter<BufWriter<File>>,
    error: Option<String>,
    packets: u64,
}

impl Recorder {
    /// Create (truncate) `path` and write the file header.
    ///
    /// # Errors
    /// The file cannot be created.
    pub fn create(path: &Path) -> io::Result<Arc<Recorder>> {
        let f = File::create(path)?;
        let w = PcapngWriter::new(BufWriter::new(f))?;
        Ok(Arc::new(Recorder {
            out: Mutex::new(RecState {
                w,
                error: None,
                packets: 0,
            }),
        }))
    }

    fn write(&self, frame: &[u8]) {
        let mut st = self
            .out
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if st.error.is_some() {
            return;
        }
        let ts = now_ns();
        match st.w.packet(ts, frame) {
            Ok(()) => st.packets += 1,
            Err(e) => st.error = Some(e.to_string()),
        }
    }

    /// Packets written so far, and the first write error.
    pub fn status(&self) -> (u64, Option<String>) {
        let st = self
            .out
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (st.packets, st.error.clone())
    }

    /// A new connection from `client` to `server`: writes its three-way handshake.
    pub fn connection(self: &Arc<Self>, client: SocketAddr, server: SocketAddr) -> Conn {
        // Initial sequence numbers from the ports: stable, different per connection.
        let cseq = u32::from(client.port()).wrapping_mul(0x0001_0003);
        let sseq = u32::from(server.port()).wrapping_mul(0x0002_0005) ^ u32::from(client.port());
        let c = Conn {
            rec: Arc::clone(self),
            client,
            server,
            seq: Mutex::new((cseq.wrapping_add(1), sseq.wrapping_add(1))),
        };
        self.write(&tcp_frame(client, server, cseq, 0, tcpflags::SYN, &[]));
        self.write(&tcp_frame(
            server,
            client,
            sseq,
            cseq.wrapping_add(1),
            tcpflags::SYN | tcpflags::ACK,
            &[],
        ));
        self.write(&tcp_frame(
            client,
            server,
            cseq.wrapping_add(1),
            sseq.wrapping_add(1),
            tcpflags::ACK,
            &[],
        ));
        c
    }
}

/// One recorded TCP connection.
pub struct Conn {
    rec: Arc<Recorder>,
    client: SocketAddr,
    server: SocketAddr,
    /// Next sequence number of (client, server).
    seq: Mutex<(u32, u32)>,
}

impl Conn {
    /// Bytes the client sent.
    pub fn client_data(&self, data: &[u8]) {
        self.data(true, data);
    }

    /// Bytes the server sent.
    pub fn server_data(&self, data: &[u8]) {
        self.data(false, data);
    }

    fn data(&self, from_client: bool, data: &[u8]) {
        let mut s = self
            .seq
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for chunk in data.chunks(MSS) {
            let n = u32::try_from(chunk.len()).unwrap_or(0);
            let (src, dst, seq, ack) = if from_client {
                (self.client, self.server, s.0, s.1)
            } else {
                (self.server, self.client, s.1, s.0)
            };
            self.rec.write(&tcp_frame(
                src,
                dst,
                seq,
                ack,
                tcpflags::PSH | tcpflags::ACK,
                chunk,
            ));
            if from_client {
                s.0 = s.0.wrapping_add(n);
            } else {
                s.1 = s.1.wrapping_add(n);
            }
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let s = *self
            .seq
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let fa = tcpflags::FIN | tcpflags::ACK;
        self.rec
            .write(&tcp_frame(self.server, self.client, s.1, s.0, fa, &[]));
        self.rec.write(&tcp_frame(
            self.client,
            self.server,
            s.0,
            s.1.wrapping_add(1),
            fa,
            &[],
        ));
        self.rec.write(&tcp_frame(
            self.server,
            self.client,
            s.1.wrapping_add(1),
            s.0.wrapping_add(1),
            tcpflags::ACK,
            &[],
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::link;

    #[test]
    fn frames_parse_back_with_good_checksums() {
        let a: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:502".parse().unwrap();
        let f = tcp_frame(a, b, 7, 9, tcpflags::ACK | tcpflags::PSH, b"hello");
        let s = link::segment(pcap_parser::Linktype::ETHERNET, &f).unwrap();
        assert_eq!(
            (s.sport, s.dport, s.seq, s.payload),
            (40000, 502, 7, &b"hello"[..])
        );
        assert_eq!(checksum(&[&f[14..34]]), 0, "IPv4 header checksum");
        let a6: SocketAddr = "[::1]:40000".parse().unwrap();
        let b6: SocketAddr = "[::1]:502".parse().unwrap();
        let f = tcp_frame(a6, b6, 1, 2, tcpflags::ACK, b"x");
        assert_eq!(
            link::segment(pcap_parser::Linktype::ETHERNET, &f)
                .unwrap()
                .payload,
            b"x"
        );
    }

    #[test]
    fn pcapng_blocks_are_padded() {
        let mut w = PcapngWriter::new(Vec::new()).unwrap();
        w.packet(1, &[1, 2, 3]).unwrap();
        let v = w.into_inner();
        assert_eq!(v.len(), 28 + 32 + 36);
        assert_eq!(v.len() % 4, 0);
    }
}
