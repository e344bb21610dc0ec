//! Captures: reading pcap/pcapng ([`reader`]), link layers and IP ([`link`]), TCP reassembly
//! ([`tcp`]), and the [`Decoder`] that hands reassembled payloads to the protocol codecs in
//! `proto/` and the results to [`analysis`]. Writing pcapng is in [`writer`].

pub mod analysis;
pub mod bpf;
pub mod excerpt;
pub mod ics;
pub mod link;
pub mod reader;
pub mod serial;
pub mod source;
pub mod tcp;
pub mod writer;

use std::fmt;

use link::{flags, Addr, Segment, Skip};
use tcp::{FlowKey, FlowTable, Framer, Piece, SegVerdict};

use crate::proto::{
    exchange::{Exchange, Role},
    modbus::pdu::{self, Direction, Mbap, Pdu},
    opcua::{self, Message},
};

/// Application protocol of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Proto {
    /// Modbus/TCP (MBAP).
    #[serde(rename = "modbus-tcp")]
    ModbusTcp,
    /// Modbus RTU frames (with CRC) carried over TCP.
    #[serde(rename = "modbus-rtu-over-tcp")]
    RtuOverTcp,
    /// OPC UA Binary.
    #[serde(rename = "opcua")]
    OpcUa,
    /// Modbus RTU on a serial line (link types 252, 147, 250; `capture --serial`).
    #[serde(rename = "modbus-rtu")]
    ModbusRtu,
    /// S7comm over ISO-on-TCP (TPKT, COTP; TCP 102), and S7comm-plus counted.
    #[serde(rename = "s7comm")]
    S7comm,
    /// EtherNet/IP encapsulation with CIP explicit messages (TCP and UDP 44818).
    #[serde(rename = "enip")]
    Enip,
    /// CIP implicit I/O (UDP 2222): counted per connection, with its rate and jitter.
    #[serde(rename = "cip-io")]
    CipIo,
    /// DNP3 (TCP or UDP 20000).
    #[serde(rename = "dnp3")]
    Dnp3,
    /// BACnet/IP (UDP 47808).
    #[serde(rename = "bacnet")]
    Bacnet,
}

impl Proto {
    /// The protocols decoded through `proto::exchange` (see [`ics`]).
    #[must_use]
    pub fn is_ics(self) -> bool {
        matches!(
            self,
            Proto::S7comm | Proto::Enip | Proto::CipIo | Proto::Dnp3 | Proto::Bacnet
        )
    }

    /// The word rows and documents use.
    #[must_use]
    pub fn word(self) -> &'static str {
        match self {
            Proto::ModbusTcp => "modbus-tcp",
            Proto::RtuOverTcp => "modbus-rtu-over-tcp",
            Proto::OpcUa => "opcua",
            Proto::ModbusRtu => "modbus-rtu",
            Proto::S7comm => "s7comm",
            Proto::Enip => "enip",
            Proto::CipIo => "cip-io",
            Proto::Dnp3 => "dnp3",
            Proto::Bacnet => "bacnet",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// What to decode where.
#[derive(Debug, Clone)]
pub struct Config {
    /// TCP ports carrying Modbus/TCP.
    pub modbus_ports: Vec<u16>,
    /// TCP ports carrying Modbus RTU over TCP.
    pub rtu_ports: Vec<u16>,
    /// TCP ports carrying OPC UA Binary.
    pub opcua_ports: Vec<u16>,
    /// TCP ports carrying S7comm (ISO-on-TCP).
    pub s7_ports: Vec<u16>,
    /// TCP and UDP ports carrying EtherNet/IP encapsulation.
    pub enip_ports: Vec<u16>,
    /// UDP ports carrying CIP implicit I/O.
    pub cip_io_ports: Vec<u16>,
    /// TCP and UDP ports carrying DNP3.
    pub dnp3_ports: Vec<u16>,
    /// UDP ports carrying BACnet/IP.
    pub bacnet_ports: Vec<u16>,
    /// Recognise the protocols on other ports by content.
    pub detect: bool,
    /// Decode node ids and values of OPC UA Read/Write.
    pub opcua_nodes: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            modbus_ports: vec![502],
            rtu_ports: Vec::new(),
            opcua_ports: vec![4840],
            s7_ports: vec![102],
            enip_ports: vec![44818],
            cip_io_ports: vec![2222],
            dnp3_ports: vec![20000],
            bacnet_ports: vec![47808],
            detect: true,
            opcua_nodes: false,
        }
    }
}

/// A device: the server end of a flow, plus the unit id for Modbus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId {
    /// Server address.
    pub addr: Addr,
    /// Server port.
    pub port: u16,
    /// Modbus unit id, or the DNP3 outstation address.
    pub unit: Option<u16>,
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == analysis::OTHER_DEVICES {
            return f.write_str("(other devices)");
        }
        if self.addr.serial().is_some() {
            // A serial line's device: `ttyUSB1/3`.
            write!(f, "{}", self.addr)?;
            if let Some(u) = self.unit {
                write!(f, "/{u}")?;
            }
            return Ok(());
        }
        let ip = self.addr.ip();
        match (ip, self.port, self.unit) {
            (std::net::IpAddr::V4(a), 502, Some(_)) => write!(f, "{a}")?,
            (std::net::IpAddr::V4(a), p, _) => write!(f, "{a}:{p}")?,
            (std::net::IpAddr::V6(a), 502, Some(_)) => write!(f, "{a}")?,
            (std::net::IpAddr::V6(a), p, _) => write!(f, "[{a}]:{p}")?,
        }
        if let Some(u) = self.unit {
            write!(f, "/{u}")?;
        }
        Ok(())
    }
}

/// `--device ADDR[:PORT][/UNIT]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceFilter {
    /// Address.
    pub addr: Addr,
    /// Port, if given.
    pub port: Option<u16>,
    /// Unit (Modbus) or outstation address (DNP3), if given.
    pub unit: Option<u16>,
}

impl DeviceFilter {
    /// Parse `10.0.0.5`, `10.0.0.5/1`, `10.0.0.5:5020/1`, `[::1]:502/3`, and a serial line's
    /// devices: `ttyUSB1/3`, `/dev/ttyUSB1/3`, `serial/3` (a capture that names no port),
    /// `COM3/3`, or `line:NAME/3` for a line of any other name.
    ///
    /// # Errors
    /// A message with examples.
    pub fn parse(s: &str) -> Result<DeviceFilter, String> {
        let bad = || {
            format!("`{s}` is not a device; write ADDR[/UNIT] or ADDR:PORT[/UNIT], e.g. 10.0.0.5/1, 10.0.0.5:5020/1, [::1]:4840, or a serial line's LINE[/UNIT], e.g. ttyUSB1/3, serial/3, line:NAME/3")
        };
        let (host, unit) = match s.rsplit_once('/') {
            Some((h, u)) if !h.is_empty() && u.bytes().all(|b| b.is_ascii_digit()) => {
                (h, Some(u.parse::<u16>().map_err(|_| bad())?))
            }
            _ => (s, None),
        };
        if let Some(line) = serial_line_name(host) {
            if line.is_empty() {
                return Err(bad());
            }
            return Ok(DeviceFilter {
                addr: Addr::serial_end(link::line_index(line), link::SerialEnd::Line),
                port: None,
                unit,
            });
        }
        let (ip, port): (std::net::IpAddr, Option<u16>) = if let Ok(ip) = host.parse() {
            (ip, None)
        } else if let Ok(sa) = host.parse::<std::net::SocketAddr>() {
            (sa.ip(), Some(sa.port()))
        } else if let Some(h) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            (h.parse().map_err(|_| bad())?, None)
        } else {
            return Err(bad());
        };
        let addr = match ip {
            std::net::IpAddr::V4(a) => Addr::v4(a.octets()),
            std::net::IpAddr::V6(a) => Addr(a.octets()),
        };
        Ok(DeviceFilter { addr, port, unit })
    }

    /// Does the filter select `d`?
    #[must_use]
    pub fn matches(&self, d: &DeviceId) -> bool {
        self.addr == d.addr
            && self.port.is_none_or(|p| p == d.port)
            && (self.unit.is_none() || self.unit == d.unit)
    }
}

/// The serial line a `--device` text names, if it names one: `line:NAME`, or a name that
/// looks like a serial port (`/dev/…`, `tty…`, `pts/…`, `COM…`, `serial…`, `rs485…`).
fn serial_line_name(host: &str) -> Option<&str> {
    if let Some(n) = host.strip_prefix("line:") {
        return Some(n);
    }
    let n = host.strip_prefix("/dev/").unwrap_or(host);
    let looks = host.starts_with("/dev/")
        || n.starts_with("tty")
        || n.starts_with("COM")
        || n.starts_with("serial")
        || n.starts_with("pts/")
        || n.starts_with("rs485");
    looks.then_some(n)
}

/// Modbus framing of a PDU event.
#[derive(Debug, Clone, Copy)]
pub struct ModbusFrame<'a> {
    /// MBAP header (Modbus/TCP); `None` for RTU.
    pub mbap: Option<Mbap>,
    /// Unit id (RTU: the address byte).
    pub unit: u8,
    /// The decoded PDU.
    pub pdu: Pdu<'a>,
    /// RTU CRC good (`None` for Modbus/TCP).
    pub crc_ok: Option<bool>,
}

/// One decoded protocol data unit, in the frame that completed it.
#[derive(Debug, Clone, Copy)]
pub struct PduEvent<'a> {
    /// Frame number (1-based).
    pub frame: u64,
    /// Capture time, ns since the epoch.
    pub ts_ns: i64,
    /// Index of this PDU within its frame.
    pub index: u16,
    /// Flow id.
    pub flow: u32,
    /// Source address.
    pub src: Addr,
    /// Destination address.
    pub dst: Addr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Protocol.
    pub proto: Proto,
    /// Query or response (by which end is the server).
    pub dir: Direction,
    /// The device (server end, unit).
    pub device: DeviceId,
    /// What the PDU carries, decoded.
    pub content: Content<'a>,
}

/// What a PDU carries, decoded: one of the protocol families (`PduEvent::proto` says which
/// protocol within it). One field rather than one per family keeps the event small: every
/// Modbus PDU of a capture is built, copied and read through it.
#[derive(Debug, Clone, Copy)]
pub enum Content<'a> {
    /// Modbus/TCP, RTU over TCP or RTU on a serial line.
    Modbus(ModbusFrame<'a>),
    /// OPC UA Binary.
    OpcUa(&'a Message),
    /// S7comm, EtherNet/IP-CIP, CIP I/O, DNP3 or BACnet, as the one view the analysis uses.
    Ics(&'a dyn Exchange),
}

impl<'a> PduEvent<'a> {
    /// The Modbus framing and PDU, if this is Modbus.
    #[must_use]
    pub fn modbus(&self) -> Option<&ModbusFrame<'a>> {
        match &self.content {
            Content::Modbus(f) => Some(f),
            _ => None,
        }
    }

    /// The OPC UA message, if this is OPC UA.
    #[must_use]
    pub fn opcua(&self) -> Option<&'a Message> {
        match self.content {
            Content::OpcUa(m) => Some(m),
            _ => None,
        }
    }

    /// The S7comm, EtherNet/IP-CIP, DNP3 or BACnet message, if it is one of those.
    #[must_use]
    pub fn ics(&self) -> Option<&'a dyn Exchange> {
        match self.content {
            Content::Ics(m) => Some(m),
            _ => None,
        }
    }
}

/// Counters of what the decoder skipped or could not use.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Health {
    /// TCP segments with payload on decoded flows.
    pub segments: u64,
    /// UDP datagrams on decoded flows.
    pub datagrams: u64,
    /// Retransmitted segments (data already seen), not decoded twice.
    pub retransmissions: u64,
    /// Segments that arrived after a gap and were held until it was filled.
    pub out_of_order: u64,
    /// Gaps given up because too much was held behind them.
    pub held_gaps: u64,
    /// Gaps the peer acknowledged but the capture never showed (lost by the capture).
    pub lost_in_capture: u64,
    /// Segments whose start did not look like a PDU (midstream start or foreign data).
    pub skipped_segments: u64,
    /// Bytes in those segments.
    pub skipped_bytes: u64,
    /// Unfinished PDUs abandoned (gap in the sequence, flow ended).
    pub abandoned_pdus: u64,
    /// PDUs with an impossible length field.
    pub bad_lengths: u64,
    /// PDUs too large to buffer, skipped by length.
    pub oversized: u64,
    /// Data carried on SYN segments (not decoded, as Wireshark).
    pub syn_data: u64,
    /// Frames that are not usable: damaged headers.
    pub malformed_frames: u64,
    /// IP fragments (not reassembled).
    pub ip_fragments: u64,
    /// Frames of a link type we do not read.
    pub unknown_link: u64,
    /// Segments of decoded flows cut short by the capture's snaplen.
    pub cut_segments: u64,
    /// RTU frames with a bad CRC.
    pub crc_errors: u64,
    /// Flows seen with a decoded protocol.
    pub flows: u64,
    /// Flows dropped while open to bound memory.
    pub evicted_flows: u64,
    /// Serial frames (link types 252, 147, 250, 165).
    pub serial_frames: u64,
    /// BACnet MS/TP frames (link type 165), of any frame type.
    pub mstp_frames: u64,
    /// Exported PDUs (link type 252) for a dissector other than Modbus RTU, skipped.
    pub other_dissectors: u64,
    /// UART errors a capture recorded (RTAC serial events: framing, parity, overflow).
    pub uart_errors: u64,
}

/// Receives decoded PDUs.
pub trait PduSink {
    /// One PDU.
    fn pdu(&mut self, e: &PduEvent<'_>);
    /// A flow ended before the capture did: RST, both FINs, or dropped from the flow table to
    /// bound memory. Flows still open when the capture ends are not closed one by one: what is
    /// outstanding on them is the sink's own end of capture (`Analysis::finish`).
    fn flow_closed(&mut self, _flow: u32) {}
    /// Several flows ended at once (the flow table dropped them to bound memory).
    fn flows_closed(&mut self, flows: &[u32]) {
        for &f in flows {
            self.flow_closed(f);
        }
    }
}

struct FlowApp {
    proto: Option<Proto>,
    /// Direction index (0/1) that carries queries (client → server).
    query_dir: u8,
    /// Payload segments looked at for content detection.
    tries: u8,
    /// Not a protocol we decode.
    ignored: bool,
    /// OPC UA: per direction, the chunks so far of a message of several chunks (request id,
    /// first chunk followed by the bodies of the next ones).
    ua_partial: [Option<(u32, Vec<u8>)>; 2],
    /// S7comm, EtherNet/IP, DNP3, BACnet: what the flow remembers between messages.
    ics: Option<Box<ics::FlowState>>,
}

struct ModbusFramer;
impl Framer for ModbusFramer {
    #[inline]
    fn starts_pdu(&self, b: &[u8]) -> bool {
        if b.len() >= 8 {
            return b[2] == 0 && b[3] == 0 && u16::from_be_bytes([b[4], b[5]]) >= 2;
        }
        // A segment shorter than the header: keep it if what is there can start one (tshark
        // drops it, and with it an ADU whose first segment is that short).
        (b.len() < 3 || b[2] == 0)
            && (b.len() < 4 || b[3] == 0)
            && (b.len() < 6 || u16::from_be_bytes([b[4], b[5]]) >= 2)
    }
    #[inline]
    fn pdu_len(&self, b: &[u8]) -> Option<usize> {
        (b.len() >= 6).then(|| usize::from(u16::from_be_bytes([b[4], b[5]])) + 6)
    }
    fn max_len(&self) -> usize {
        usize::from(pdu::MAX_MBAP_LEN) + 6
    }
}

struct OpcUaFramer;
impl Framer for OpcUaFramer {
    fn starts_pdu(&self, b: &[u8]) -> bool {
        if b.len() >= 8 {
            opcua::starts_message(b)
        } else {
            opcua::MESSAGE_TYPES
                .iter()
                .any(|t| t.starts_with(&b[..b.len().min(3)]))
        }
    }
    fn pdu_len(&self, b: &[u8]) -> Option<usize> {
        (b.len() >= 8).then(|| u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as usize)
    }
    fn max_len(&self) -> usize {
        opcua::MAX_MESSAGE
    }
    fn min_len(&self) -> usize {
        8
    }
}

struct RtuFramer(Direction);
impl Framer for RtuFramer {
    fn starts_pdu(&self, b: &[u8]) -> bool {
        b.len() >= 2 && b[0] <= 247 && (b[1] & 0x7f) != 0
    }
    fn pdu_len(&self, b: &[u8]) -> Option<usize> {
        match pdu::rtu_frame_len(b, self.0) {
            Some(n) => Some(n),
            None if b.len() >= 4 => Some(b.len()),
            None => None,
        }
    }
    fn max_len(&self) -> usize {
        256
    }
}

/// A serial line seen in a capture (one per pcapng interface name).
struct SerialLine {
    /// The interface's name as the file gives it.
    name: Option<String>,
    /// Its index for [`Addr::serial_end`].
    index: u16,
    /// Its flow id: one flow per line, so that the analysis pairs per line and unit.
    flow: u32,
    bus: serial::BusState,
}

/// The capture decoder: feed it packets, it calls the sink with every PDU.
pub struct Decoder {
    cfg: Config,
    flows: FlowTable<FlowApp>,
    lines: Vec<SerialLine>,
    /// Counters.
    pub health: Health,
    /// PDUs found in the current frame.
    frame_pdus: u16,
    /// The last packet belonged to a flow of a decoded protocol.
    decoded_flow: bool,
}

impl Decoder {
    /// A decoder for `cfg`.
    #[must_use]
    pub fn new(cfg: Config) -> Decoder {
        Decoder {
            cfg,
            flows: FlowTable::default(),
            lines: Vec::new(),
            health: Health::default(),
            frame_pdus: 0,
            decoded_flow: false,
        }
    }

    /// Decode one captured packet.
    #[inline]
    pub fn packet(&mut self, p: &reader::Packet<'_>, sink: &mut dyn PduSink) {
        self.packet_located(p, link::locate_segment(p.linktype, p.data), sink);
    }

    /// Decode one captured packet whose link layer was read already (`located` is
    /// [`link::locate_segment`] of it, found on a capture file's reading thread).
    #[inline]
    pub fn packet_located(
        &mut self,
        p: &reader::Packet<'_>,
        located: Result<link::SegmentAt, Skip>,
        sink: &mut dyn PduSink,
    ) {
        self.frame_pdus = 0;
        self.decoded_flow = false;
        let seg = match located {
            Ok(s) => s.segment(p.data),
            Err(Skip::NotTcpOrUdp) => return,
            Err(Skip::Malformed) => {
                self.health.malformed_frames += 1;
                return;
            }
            Err(Skip::Fragment) => {
                self.health.ip_fragments += 1;
                return;
            }
            Err(Skip::UnknownLink) => {
                if !self.serial_packet(p, sink) {
                    self.health.unknown_link += 1;
                }
                return;
            }
        };
        self.segment(p, &seg, sink);
    }

    /// A packet of a serial link type (252 exported PDU with the `mbrtu` dissector, 147 USER0
    /// raw frames, 250 RTAC serial): one RTU frame, or several that tile it exactly (a sniffer
    /// that wrote a burst). Returns false for other link types.
    fn serial_packet(&mut self, p: &reader::Packet<'_>, sink: &mut dyn PduSink) -> bool {
        use serial::{linktype, SerialPacket};
        let payload = match p.linktype.0 {
            x if x == i32::from(linktype::EXPORTED_PDU) => serial::exported_pdu(p.data),
            x if x == i32::from(linktype::USER0) => SerialPacket::Rtu(p.data),
            x if x == i32::from(linktype::RTAC_SERIAL) => serial::rtac_serial(p.data),
            x if x == i32::from(linktype::BACNET_MS_TP) => {
                self.mstp_packet(p, sink);
                return true;
            }
            _ => return false,
        };
        let b = match payload {
            SerialPacket::Rtu(b) if !b.is_empty() => {
                self.decoded_flow = true;
                b
            }
            SerialPacket::Rtu(_) => return true,
            SerialPacket::OtherDissector(_) => {
                self.health.other_dissectors += 1;
                return true;
            }
            SerialPacket::UartEvent(_) => {
                self.health.uart_errors += 1;
                return true;
            }
            SerialPacket::Malformed => {
                self.health.malformed_frames += 1;
                return true;
            }
        };
        let li = self.line_of(p);
        self.frame_pdus = 0;
        let whole = pdu::rtu_crc_ok(b);
        let found = if whole {
            Vec::new()
        } else {
            crate::proto::modbus::rtu::find_frames(b)
        };
        let tiles = found.len() >= 2
            && found[0].start == 0
            && found
                .windows(2)
                .all(|w| w[0].start + w[0].len == w[1].start)
            && found.last().is_some_and(|f| f.start + f.len == b.len());
        if tiles {
            for f in &found {
                self.serial_frame(p, li, &b[f.start..f.start + f.len], true, sink);
            }
        } else {
            self.serial_frame(p, li, b, whole, sink);
        }
        true
    }

    /// The serial line a packet was captured on (its pcapng interface name), added on first use.
    fn line_of(&mut self, p: &reader::Packet<'_>) -> usize {
        if let Some(i) = self
            .lines
            .iter()
            .position(|l| l.name.as_deref() == p.if_name)
        {
            return i;
        }
        let index = link::line_index(p.if_name.unwrap_or("serial"));
        let n = u32::try_from(self.lines.len()).unwrap_or(u32::MAX);
        self.lines.push(SerialLine {
            name: p.if_name.map(str::to_string),
            index,
            // Apart from TCP flow ids, which count up from 0, and from u32::MAX, which the
            // analysis's flow cache takes for an empty slot.
            flow: u32::MAX - 1 - n.min(u32::MAX / 2),
            bus: serial::BusState::default(),
        });
        self.lines.len() - 1
    }

    /// A BACnet MS/TP frame (link type 165): counted with its CRCs checked and listed as
    /// `proto::bacnet::mstp::MstpMessage` (the frame's fields, and the NPDU's message of a data
    /// frame whose CRCs check). A data frame's device is `LINE/MAC` of its server end (the
    /// destination of a request, the source of an answer); any other frame's (Token, Poll For
    /// Master, a damaged frame) is its sender's, so a polled MAC that never answers is no device.
    #[inline(never)]
    fn mstp_packet(&mut self, p: &reader::Packet<'_>, sink: &mut dyn PduSink) {
        use crate::proto::bacnet::mstp;
        self.frame_pdus = 0;
        let Some(f) = mstp::parse_frame(p.data) else {
            self.health.malformed_frames += 1;
            return;
        };
        self.decoded_flow = true;
        self.health.serial_frames += 1;
        self.health.mstp_frames += 1;
        if !(f.header_crc_ok && f.data_crc_ok) {
            self.health.crc_errors += 1;
        }
        let li = self.line_of(p);
        let line = &self.lines[li];
        let m = mstp::MstpMessage::of(f);
        let src = Addr::serial_end(line.index, link::SerialEnd::Unit(f.src));
        let dst = Addr::serial_end(line.index, link::SerialEnd::Unit(f.dst));
        let (dir, mac) = match m.role() {
            _ if m.npdu.is_none() => (Direction::Response, f.src),
            Role::Request | Role::Other => (Direction::Query, f.dst),
            Role::Response | Role::Unsolicited => (Direction::Response, f.src),
        };
        sink.pdu(&PduEvent {
            frame: p.frame,
            ts_ns: p.ts_ns,
            index: 0,
            flow: line.flow,
            src,
            dst,
            sport: 0,
            dport: 0,
            proto: Proto::Bacnet,
            dir,
            device: DeviceId {
                addr: Addr::serial_end(line.index, link::SerialEnd::Line),
                port: 0,
                unit: Some(u16::from(mac)),
            },
            content: Content::Ics(&m),
        });
    }

    fn serial_frame(
        &mut self,
        p: &reader::Packet<'_>,
        li: usize,
        b: &[u8],
        ok: bool,
        sink: &mut dyn PduSink,
    ) {
        let line = &mut self.lines[li];
        let dir = match p.direction {
            reader::PacketDirection::Outbound => Direction::Query,
            reader::PacketDirection::Inbound => Direction::Response,
            reader::PacketDirection::Unknown => line.bus.classify(b),
        };
        if p.direction != reader::PacketDirection::Unknown {
            line.bus.saw(b, dir);
        }
        self.health.serial_frames += 1;
        if !ok {
            self.health.crc_errors += 1;
        }
        let unit = b[0];
        let body = &b[1..b.len().saturating_sub(2).max(1)];
        let mut pdu = pdu::decode_pdu(body, dir);
        pdu.malformed |= !ok;
        let master = Addr::serial_end(line.index, link::SerialEnd::Master);
        let device_end = Addr::serial_end(line.index, link::SerialEnd::Unit(unit));
        let (src, dst) = match dir {
            Direction::Query => (master, device_end),
            Direction::Response => (device_end, master),
        };
        let index = self.frame_pdus;
        self.frame_pdus = self.frame_pdus.saturating_add(1);
        sink.pdu(&PduEvent {
            frame: p.frame,
            ts_ns: p.ts_ns,
            index,
            flow: line.flow,
            src,
            dst,
            sport: 0,
            dport: 0,
            proto: Proto::ModbusRtu,
            dir,
            device: DeviceId {
                addr: Addr::serial_end(line.index, link::SerialEnd::Line),
                port: 0,
                unit: Some(u16::from(unit)),
            },
            content: Content::Modbus(ModbusFrame {
                mbap: None,
                unit,
                pdu,
                crc_ok: Some(ok),
            }),
        });
    }

    fn classify(cfg: &Config, seg: &Segment<'_>, d: usize) -> (Option<Proto>, u8) {
        let to_server = |port: u16, ports: &[u16]| ports.contains(&port);
        let dir_to_dst = u8::try_from(d).unwrap_or(0);
        let dir_to_src = 1 - dir_to_dst;
        let tcp: [(&[u16], Proto); 6] = [
            (&cfg.modbus_ports, Proto::ModbusTcp),
            (&cfg.rtu_ports, Proto::RtuOverTcp),
            (&cfg.opcua_ports, Proto::OpcUa),
            (&cfg.s7_ports, Proto::S7comm),
            (&cfg.enip_ports, Proto::Enip),
            (&cfg.dnp3_ports, Proto::Dnp3),
        ];
        let udp: [(&[u16], Proto); 4] = [
            (&cfg.enip_ports, Proto::Enip),
            (&cfg.cip_io_ports, Proto::CipIo),
            (&cfg.dnp3_ports, Proto::Dnp3),
            (&cfg.bacnet_ports, Proto::Bacnet),
        ];
        let table: &[(&[u16], Proto)] = if seg.udp { &udp } else { &tcp };
        for &(ports, proto) in table {
            if to_server(seg.dport, ports) {
                return (Some(proto), dir_to_dst);
            }
            if to_server(seg.sport, ports) {
                return (Some(proto), dir_to_src);
            }
        }
        // Unknown: the SYN sender is the client; else the lower port is the server.
        let q = if seg.flags & flags::SYN != 0 && seg.flags & flags::ACK == 0 {
            dir_to_dst
        } else if seg.flags & flags::SYN != 0 {
            dir_to_src
        } else if seg.dport <= seg.sport {
            dir_to_dst
        } else {
            dir_to_src
        };
        (None, q)
    }

    /// A UDP datagram: one message (or several frames) of a protocol known by its port or, on
    /// another port, by its content. No flow is kept for a datagram of no protocol we decode.
    #[inline(never)]
    fn datagram(&mut self, p: &reader::Packet<'_>, seg: &Segment<'_>, sink: &mut dyn PduSink) {
        let (key, d) = FlowKey::of(seg);
        let Decoder {
            cfg,
            flows,
            health,
            frame_pdus,
            decoded_flow,
            ..
        } = self;
        let known = flows.contains(&key);
        let mut proto = None;
        let mut query_dir = 0;
        if !known {
            let (by_port, q) = Self::classify(cfg, seg, d);
            proto = by_port.or_else(|| {
                if cfg.detect {
                    ics::detect_datagram(seg.payload)
                } else {
                    None
                }
            });
            if proto.is_none() {
                return;
            }
            query_dir = q;
        }
        let mut evicted = Vec::new();
        let flow = flows.get_or_insert(
            key,
            p.ts_ns,
            || FlowApp {
                proto,
                query_dir,
                tries: 1,
                ignored: false,
                ua_partial: [None, None],
                ics: None,
            },
            &mut |f| {
                health.evicted_flows += 1;
                evicted.push(f.id);
            },
        );
        if !known {
            health.flows += 1;
        }
        if !evicted.is_empty() {
            sink.flows_closed(&evicted);
        }
        let Some(proto) = flow.app.proto else { return };
        if !proto.is_ics() {
            return;
        }
        *decoded_flow = true;
        health.datagrams += 1;
        if seg.cut {
            health.cut_segments += 1;
        }
        if seg.payload.is_empty() {
            // A port probe: no message of any of these protocols is empty (tshark agrees).
            return;
        }
        let mut st = Step {
            with_nodes: cfg.opcua_nodes,
            health,
            sink,
            proto,
            ends: key.ends(),
            flow_id: flow.id,
            query_dir: usize::from(flow.app.query_dir),
        };
        let state = flow.app.ics.get_or_insert_with(Box::default);
        st.ics_message(state, d, p.frame, p.ts_ns, seg.payload, frame_pdus);
    }

    #[allow(clippy::too_many_lines)]
    fn segment(&mut self, p: &reader::Packet<'_>, seg: &Segment<'_>, sink: &mut dyn PduSink) {
        if seg.udp {
            self.datagram(p, seg, sink);
            return;
        }
        let (key, d) = FlowKey::of(seg);
        let Decoder {
            cfg,
            flows,
            lines: _,
            health,
            frame_pdus,
            decoded_flow,
        } = self;
        // A new flow is classified by its ports; on other ports, only with content detection.
        let mut unknown_port = false;
        let mut evicted = Vec::new();
        let flow = flows.get_or_insert(
            key,
            p.ts_ns,
            || {
                let (proto, query_dir) = Self::classify(cfg, seg, d);
                unknown_port = proto.is_none();
                FlowApp {
                    proto,
                    query_dir,
                    tries: 0,
                    ignored: unknown_port && !cfg.detect,
                    ua_partial: [None, None],
                    ics: None,
                }
            },
            &mut |f| {
                health.evicted_flows += 1;
                evicted.push(f.id);
            },
        );
        if !evicted.is_empty() {
            sink.flows_closed(&evicted);
        }
        if flow.app.ignored {
            return;
        }
        let wire_len = u32::try_from(seg.payload.len()).unwrap_or(u32::MAX);
        let mut abandoned = 0usize;
        let verdict = flow.dirs[d].analyze(seg, wire_len, p.frame, p.ts_ns, &mut abandoned);
        if abandoned > 0 {
            health.abandoned_pdus += 1;
        }
        let closing = seg.flags & flags::RST != 0 || {
            if seg.flags & flags::FIN != 0 {
                flow.fin[d] = true;
            }
            flow.fin[0] && flow.fin[1]
        };
        if verdict == SegVerdict::Decoded {
            if flow.app.proto.is_none() {
                if let Some((proto, sender_is_client)) = detect(seg.payload) {
                    flow.app.proto = Some(proto);
                    if let Some(c) = sender_is_client {
                        let d8 = u8::from(d == 1);
                        flow.app.query_dir = if c { d8 } else { 1 - d8 };
                    }
                    health.flows += 1;
                } else {
                    flow.app.tries += 1;
                    if flow.app.tries >= 4 {
                        flow.app.ignored = true;
                        flow.dirs[0].reset();
                        flow.dirs[1].reset();
                    }
                }
            } else if flow.app.tries == 0 {
                flow.app.tries = 1;
                health.flows += 1;
            }
        }
        let Some(proto) = flow.app.proto else {
            if closing {
                flows.remove(&key);
            }
            return;
        };
        *decoded_flow = true;
        // Most packets without payload (ACKs) need nothing more.
        let od = 1 - d;
        let ack_past_gap = seg.flags & flags::ACK != 0 && flow.dirs[od].acked_past_gap(seg.ack);
        if verdict == SegVerdict::Empty && !ack_past_gap && !closing {
            return;
        }
        let ends = key.ends();
        let mut st = Step {
            with_nodes: cfg.opcua_nodes,
            health,
            sink,
            proto,
            ends,
            flow_id: flow.id,
            query_dir: usize::from(flow.app.query_dir),
        };
        if seg.cut
            && matches!(
                verdict,
                SegVerdict::Decoded | SegVerdict::Held | SegVerdict::HeldFull
            )
        {
            st.health.cut_segments += 1;
        }
        // The peer acknowledged bytes the capture never showed: they were lost by the capture,
        // not the network, so stop waiting for them. What is held there was sent before this
        // segment (the peer had it), so it is decoded first: a request held after a lost
        // segment comes before the response that acknowledges it.
        if ack_past_gap {
            st.health.lost_in_capture += 1;
            if flow.dirs[od].give_up_gap() > 0 {
                st.health.abandoned_pdus += 1;
            }
            st.drain(&mut flow.dirs[od], &mut flow.app, od);
        }
        match verdict {
            SegVerdict::Decoded => {
                st.feed(
                    &mut flow.dirs[d],
                    &mut flow.app,
                    d,
                    p.frame,
                    p.ts_ns,
                    seg.payload,
                    frame_pdus,
                );
                st.drain(&mut flow.dirs[d], &mut flow.app, d);
            }
            SegVerdict::HeldFull => {
                st.health.held_gaps += 1;
                if flow.dirs[d].give_up_gap() > 0 {
                    st.health.abandoned_pdus += 1;
                }
                st.drain(&mut flow.dirs[d], &mut flow.app, d);
            }
            SegVerdict::Held => st.health.out_of_order += 1,
            SegVerdict::Retransmission => st.health.retransmissions += 1,
            SegVerdict::SynData => st.health.syn_data += 1,
            SegVerdict::Empty => {}
        }
        if closing {
            st.close(flow);
            st.sink.flow_closed(flow.id);
            flows.remove(&key);
        }
    }

    /// Did the last packet belong to a flow of a protocol this decoder decodes (by its port,
    /// or recognised by its content)? What a live capture writes by default.
    #[must_use]
    pub fn last_packet_decoded(&self) -> bool {
        self.decoded_flow
    }

    /// End of capture: decode what is held after gaps in every flow still open. The flows
    /// (and serial lines) are not reported closed: the capture ended, not they.
    pub fn finish(&mut self, sink: &mut dyn PduSink) {
        let flows: Vec<_> = self.flows.drain().collect();
        for mut f in flows {
            if let (Some(proto), false) = (f.app.proto, f.app.ignored) {
                let mut st = Step {
                    with_nodes: self.cfg.opcua_nodes,
                    health: &mut self.health,
                    sink,
                    proto,
                    ends: f.ends,
                    flow_id: f.id,
                    query_dir: usize::from(f.app.query_dir),
                };
                st.close(&mut f);
            }
        }
    }
}

/// Decoding of one flow's bytes into PDU events.
struct Step<'a> {
    with_nodes: bool,
    health: &'a mut Health,
    sink: &'a mut dyn PduSink,
    proto: Proto,
    /// Source (address, port) of direction 0 and 1.
    ends: [(Addr, u16); 2],
    flow_id: u32,
    query_dir: usize,
}

impl Step<'_> {
    /// Decode the held segments that are now in sequence.
    fn drain(&mut self, dir: &mut tcp::DirState, app: &mut FlowApp, d: usize) {
        while let Some(h) = dir.take_ready() {
            let mut idx = 0u16;
            self.feed(dir, app, d, h.frame, h.ts_ns, &h.data, &mut idx);
        }
    }

    /// End of a flow or of the capture: give up any gap, decode what is held, note an
    /// unfinished PDU.
    fn close(&mut self, flow: &mut tcp::Flow<FlowApp>) {
        for d in 0..2 {
            // Each round decodes at least the first held segment, so this ends.
            while flow.dirs[d].has_held() {
                if flow.dirs[d].give_up_gap() > 0 {
                    self.health.abandoned_pdus += 1;
                }
                self.drain(&mut flow.dirs[d], &mut flow.app, d);
            }
            if flow.dirs[d].pending() > 0 {
                self.health.abandoned_pdus += 1;
            }
        }
    }

    /// [`Step::feed`] for S7comm, EtherNet/IP and DNP3 streams: cut by their framer, each
    /// message through [`Step::ics_message`]. Kept out of line so that the Modbus path of
    /// `feed` stays as it was.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn feed_ics(
        &mut self,
        dir_state: &mut tcp::DirState,
        app: &mut FlowApp,
        d: usize,
        frame: u64,
        ts_ns: i64,
        data: &[u8],
        frame_pdus: &mut u16,
    ) {
        let state = app.ics.get_or_insert_with(Box::default);
        let framer = ics::framer(self.proto);
        dir_state.feed(framer, data, &mut |piece: Piece<'_>| match piece {
            Piece::Pdu(b) => self.ics_message(state, d, frame, ts_ns, b, frame_pdus),
            other => count_piece(self.health, &other),
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn feed(
        &mut self,
        dir_state: &mut tcp::DirState,
        app: &mut FlowApp,
        d: usize,
        frame: u64,
        ts_ns: i64,
        data: &[u8],
        frame_pdus: &mut u16,
    ) {
        self.health.segments += 1;
        if self.proto.is_ics() {
            self.feed_ics(dir_state, app, d, frame, ts_ns, data, frame_pdus);
            return;
        }
        let partial = &mut app.ua_partial[d];
        let (src, dst) = (self.ends[d], self.ends[1 - d]);
        let dir = if self.query_dir == d {
            Direction::Query
        } else {
            Direction::Response
        };
        let origin = Origin {
            frame,
            ts_ns,
            flow: self.flow_id,
            src,
            dst,
            proto: self.proto,
            dir,
        };
        let proto = self.proto;
        let with_nodes = self.with_nodes;
        let health = &mut *self.health;
        let sink = &mut *self.sink;
        let mut on_piece = |piece: Piece<'_>| match piece {
            Piece::Pdu(b) => {
                let index = *frame_pdus;
                *frame_pdus = frame_pdus.saturating_add(1);
                match proto {
                    Proto::ModbusTcp => {
                        let Some((mbap, body)) = pdu::split_adu(b) else {
                            return;
                        };
                        sink.pdu(&origin.event(
                            index,
                            Some(u16::from(mbap.unit)),
                            Content::Modbus(ModbusFrame {
                                mbap: Some(mbap),
                                unit: mbap.unit,
                                pdu: pdu::decode_pdu(body, dir),
                                crc_ok: None,
                            }),
                        ));
                    }
                    Proto::RtuOverTcp | Proto::ModbusRtu => {
                        let ok = pdu::rtu_crc_ok(b);
                        if !ok {
                            health.crc_errors += 1;
                        }
                        let unit = b[0];
                        let body = &b[1..b.len().saturating_sub(2).max(1)];
                        let mut pdu = pdu::decode_pdu(body, dir);
                        pdu.malformed |= !ok;
                        sink.pdu(&origin.event(
                            index,
                            Some(u16::from(unit)),
                            Content::Modbus(ModbusFrame {
                                mbap: None,
                                unit,
                                pdu,
                                crc_ok: Some(ok),
                            }),
                        ));
                    }
                    Proto::OpcUa => {
                        let mut m = opcua::decode_message(b, with_nodes);
                        if let Some(whole) = ua_chunks(partial, &m, b, health) {
                            // The final chunk of a message of several: decode the message as
                            // one, reported with this chunk's own header fields.
                            let mut all = opcua::decode_message(&whole, with_nodes);
                            all.size = m.size;
                            all.seq = m.seq;
                            m = all;
                        }
                        sink.pdu(&origin.event(index, None, Content::OpcUa(&m)));
                    }
                    // Cut by `ics::framer` and decoded in `Step::ics_message` (above).
                    Proto::S7comm | Proto::Enip | Proto::CipIo | Proto::Dnp3 | Proto::Bacnet => {}
                }
            }
            other => count_piece(health, &other),
        };
        match proto {
            Proto::ModbusTcp => dir_state.feed(&ModbusFramer, data, &mut on_piece),
            Proto::OpcUa => dir_state.feed(&OpcUaFramer, data, &mut on_piece),
            Proto::RtuOverTcp | Proto::ModbusRtu => {
                dir_state.feed(&RtuFramer(dir), data, &mut on_piece);
            }
            Proto::S7comm | Proto::Enip | Proto::CipIo | Proto::Dnp3 | Proto::Bacnet => {}
        }
    }
}

/// Where the PDUs cut from one stream segment come from: all of a [`PduEvent`] but its index
/// within the frame, its unit and its content.
#[derive(Clone, Copy)]
struct Origin {
    frame: u64,
    ts_ns: i64,
    flow: u32,
    /// Sender and receiver (address, port).
    src: (Addr, u16),
    dst: (Addr, u16),
    proto: Proto,
    dir: Direction,
}

impl Origin {
    /// The event of one PDU; its device is the server end (the receiver of a query).
    #[inline]
    fn event<'a>(&self, index: u16, unit: Option<u16>, content: Content<'a>) -> PduEvent<'a> {
        let device_end = if self.dir == Direction::Query {
            self.dst
        } else {
            self.src
        };
        PduEvent {
            frame: self.frame,
            ts_ns: self.ts_ns,
            index,
            flow: self.flow,
            src: self.src.0,
            dst: self.dst.0,
            sport: self.src.1,
            dport: self.dst.1,
            proto: self.proto,
            dir: self.dir,
            device: DeviceId {
                addr: device_end.0,
                port: device_end.1,
                unit,
            },
            content,
        }
    }
}

/// What a piece of a stream that is not a PDU adds to the counters.
fn count_piece(health: &mut Health, piece: &Piece<'_>) {
    match piece {
        Piece::Pdu(_) => {}
        Piece::Junk(n) => {
            health.skipped_segments += 1;
            health.skipped_bytes += *n as u64;
        }
        Piece::BadLength(..) => health.bad_lengths += 1,
        Piece::Abandoned(_) => health.abandoned_pdus += 1,
        Piece::Oversized(_) => health.oversized += 1,
    }
}

impl Step<'_> {
    /// One message of S7comm, EtherNet/IP, DNP3 or BACnet (a TCP message or a UDP datagram)
    /// sent in direction `d`: every message it completes goes to the sink as its
    /// [`Exchange`] view. Its role says which end is the device: a request goes to it; a
    /// response and an unsolicited message come from it; anything else follows the flow's
    /// query direction.
    fn ics_message(
        &mut self,
        state: &mut ics::FlowState,
        d: usize,
        frame: u64,
        ts_ns: i64,
        bytes: &[u8],
        frame_pdus: &mut u16,
    ) {
        let (src, dst) = (self.ends[d], self.ends[1 - d]);
        let (proto, flow, query_dir) = (self.proto, self.flow_id, self.query_dir);
        let sink = &mut *self.sink;
        ics::messages(proto, bytes, state, d, &mut |m: &dyn Exchange| {
            let dir = match m.role() {
                Role::Request => Direction::Query,
                Role::Other if query_dir == d => Direction::Query,
                Role::Response | Role::Unsolicited | Role::Other => Direction::Response,
            };
            let index = *frame_pdus;
            *frame_pdus = frame_pdus.saturating_add(1);
            let origin = Origin {
                frame,
                ts_ns,
                flow,
                src,
                dst,
                proto,
                dir,
            };
            sink.pdu(&origin.event(index, m.unit(), Content::Ics(m)));
        });
    }
}

/// Collect the chunks of an OPC UA message sent in several (MSG/CLO, 'C' then 'F'); returns
/// the whole message when its final chunk arrives. Bounded by [`tcp::MAX_PENDING`].
fn ua_chunks(
    partial: &mut Option<(u32, Vec<u8>)>,
    m: &Message,
    chunk: &[u8],
    health: &mut Health,
) -> Option<Vec<u8>> {
    if !matches!(m.msg_type, "MSG" | "CLO") || chunk.len() < opcua::SYMMETRIC_HEADER {
        return None;
    }
    let rid = m.request_id?;
    let body = &chunk[opcua::SYMMETRIC_HEADER..];
    match (m.chunk, partial.as_mut()) {
        ('C', Some((r, buf))) if *r == rid => {
            if buf.len() + body.len() > tcp::MAX_PENDING {
                health.oversized += 1;
                *partial = None;
            } else {
                buf.extend_from_slice(body);
            }
            None
        }
        ('C', _) => {
            *partial = Some((rid, chunk.to_vec()));
            None
        }
        ('F', Some((r, _))) if *r == rid => {
            let (_, mut buf) = partial.take()?;
            buf.extend_from_slice(body);
            // The first chunk's header says 'C': the whole message is final.
            buf[3] = b'F';
            Some(buf)
        }
        ('A', _) => {
            *partial = None;
            None
        }
        _ => None,
    }
}

/// Content detection on a flow's first payload: OPC UA by its message header, Modbus/TCP by
/// ADUs that fill the segment exactly. Returns the protocol and whether the sender is the
/// client, when the content says.
fn detect(b: &[u8]) -> Option<(Proto, Option<bool>)> {
    if opcua::starts_message(b) && u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as usize <= b.len()
    {
        let client = match &b[..3] {
            b"HEL" | b"OPN" => Some(true),
            b"ACK" | b"ERR" => Some(false),
            _ => None,
        };
        return Some((Proto::OpcUa, client));
    }
    if whole_modbus_adus(b) {
        return Some((Proto::ModbusTcp, None));
    }
    ics::detect_stream(b).map(|p| (p, None))
}

/// Modbus/TCP: one or more whole ADUs, protocol 0, sane lengths, plausible function codes.
fn whole_modbus_adus(b: &[u8]) -> bool {
    let mut off = 0;
    let mut n = 0;
    while off < b.len() {
        let r = &b[off..];
        if r.len() < 8 || r[2] != 0 || r[3] != 0 {
            return false;
        }
        let len = usize::from(u16::from_be_bytes([r[4], r[5]]));
        let fc = r[7] & 0x7f;
        if !(2..=usize::from(pdu::MAX_MBAP_LEN)).contains(&len)
            || r.len() < len + 6
            || fc == 0
            || !(fc <= 24 || fc == 43 || (65..=72).contains(&fc) || (100..=110).contains(&fc))
        {
            return false;
        }
        off += len + 6;
        n += 1;
    }
    n > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_filter_forms() {
        let f = DeviceFilter::parse("10.0.0.5/1").unwrap();
        let d = DeviceId {
            addr: Addr::v4([10, 0, 0, 5]),
            port: 502,
            unit: Some(1),
        };
        assert!(f.matches(&d));
        assert_eq!(d.to_string(), "10.0.0.5/1");
        assert!(!DeviceFilter::parse("10.0.0.5:5020/1").unwrap().matches(&d));
        assert!(DeviceFilter::parse("[::1]:4840").is_ok());
        assert!(DeviceFilter::parse("plc7")
            .unwrap_err()
            .contains("10.0.0.5/1"));
    }

    struct Txs(Vec<(String, &'static str, Option<i64>)>);
    impl analysis::Emit for Txs {
        fn transaction(&mut self, t: &analysis::Transaction) {
            self.0
                .push((t.device.to_string(), t.status.word(), t.rt_ns()));
        }
    }

    fn rtu_packets(
        frames: &[(Vec<u8>, reader::PacketDirection)],
        lt: u16,
    ) -> Vec<(Vec<u8>, reader::PacketDirection)> {
        frames
            .iter()
            .map(|(f, d)| {
                let mut data = match lt {
                    252 => serial::MBRTU_HEADER.to_vec(),
                    250 => vec![0, 0, 0, 1, 0, 0, 0, 2, 2, 0, 0, 0],
                    _ => Vec::new(),
                };
                data.extend(f);
                (data, *d)
            })
            .collect()
    }

    type Decoded = (
        Vec<(String, &'static str, Option<i64>)>,
        Health,
        Vec<analysis::DeviceStats>,
    );

    fn decode_serial(
        lt: u16,
        pk: &[(Vec<u8>, reader::PacketDirection)],
        name: Option<&str>,
    ) -> Decoded {
        let mut tx = Txs(Vec::new());
        let mut an = analysis::Analysis::new(None, &mut tx);
        an.want_tx = true;
        let mut dec = Decoder::new(Config::default());
        for (i, (data, d)) in pk.iter().enumerate() {
            dec.packet(
                &reader::Packet {
                    frame: i as u64 + 1,
                    ts_ns: (i as i64 + 1) * 10_000_000,
                    linktype: reader::Linktype(i32::from(lt)),
                    data,
                    orig_len: data.len() as u32,
                    direction: *d,
                    if_name: name,
                },
                &mut an,
            );
        }
        dec.finish(&mut an);
        an.finish();
        let devices = an.devices.clone();
        (tx.0, dec.health, devices)
    }

    #[test]
    fn a_serial_line_pairs_per_unit_and_gives_up_on_the_next_request() {
        use crate::proto::modbus::rtu::adu;
        use reader::PacketDirection::Unknown;
        let q = |u: u8| (adu(u, &[3, 0, 0, 0, 1]), Unknown);
        let r = |u: u8| (adu(u, &[3, 2, 0, 7]), Unknown);
        let mut bad = adu(2, &[3, 2, 0, 7]);
        bad[3] ^= 1;
        // unit 1 silent, master moves to 2; 2 answers; 1 re-polled twice, the second answered;
        // 2 answers with a bad CRC (not paired, counted as a CRC error), and the capture ends:
        // the last request on the line is pending (nothing after it says more).
        let frames = [q(1), q(2), r(2), q(1), q(1), r(1), q(2), (bad, Unknown)];
        for lt in [147u16, 252, 250] {
            let (tx, health, devices) =
                decode_serial(lt, &rtu_packets(&frames, lt), Some("/dev/ttyUSB7"));
            let words: Vec<_> = tx.iter().map(|t| (t.0.as_str(), t.1)).collect();
            assert_eq!(
                words,
                [
                    ("ttyUSB7/1", "unanswered"),
                    ("ttyUSB7/2", "ok"),
                    ("ttyUSB7/1", "unanswered"),
                    ("ttyUSB7/1", "ok"),
                    ("ttyUSB7/2", "pending"),
                ],
                "link type {lt}"
            );
            assert_eq!(
                tx[1].2,
                Some(10_000_000),
                "response time from the frames' times"
            );
            assert_eq!((health.serial_frames, health.crc_errors), (8, 1));
            let d1 = devices.iter().find(|d| d.id.unit == Some(1)).unwrap();
            assert_eq!(
                (d1.requests, d1.answered, d1.unanswered, d1.duplicate_ids),
                (3, 1, 2, 0)
            );
            assert_eq!(d1.masters[0].to_string(), "ttyUSB7/master");
            assert_eq!(d1.proto, Proto::ModbusRtu);
        }
    }

    #[test]
    fn serial_directions_come_from_packet_flags_when_given() {
        use crate::proto::modbus::rtu::adu;
        use reader::PacketDirection::{Inbound, Outbound};
        // A write's answer echoes its request: only the flags tell a re-sent request apart.
        let w = adu(4, &[6, 0, 1, 0, 9]);
        let frames = [(w.clone(), Outbound), (w.clone(), Outbound), (w, Inbound)];
        let (tx, _, _) = decode_serial(147, &rtu_packets(&frames, 147), None);
        let words: Vec<_> = tx.iter().map(|t| (t.0.as_str(), t.1)).collect();
        assert_eq!(words, [("serial/4", "unanswered"), ("serial/4", "ok")]);
    }

    #[test]
    fn a_burst_in_one_packet_is_split_and_other_dissectors_are_skipped() {
        use crate::proto::modbus::rtu::adu;
        let mut burst = adu(1, &[3, 0, 0, 0, 1]);
        burst.extend(adu(1, &[3, 2, 0, 7]));
        let frames = [(burst, reader::PacketDirection::Unknown)];
        let (tx, health, _) = decode_serial(147, &frames, Some("line3"));
        assert_eq!(tx.len(), 1);
        assert_eq!((tx[0].0.as_str(), tx[0].1), ("line3/1", "ok"));
        assert_eq!(health.serial_frames, 2);
        let other = vec![0, 12, 0, 4, b'e', b't', b'h', 0, 0, 0, 0, 0, 1, 2, 3];
        let (tx, health, _) =
            decode_serial(252, &[(other, reader::PacketDirection::Unknown)], None);
        assert!(tx.is_empty());
        assert_eq!((health.other_dissectors, health.serial_frames), (1, 0));
        let mut ev = vec![0u8; 12];
        ev[8] = 7;
        let (_, health, _) = decode_serial(250, &[(ev, reader::PacketDirection::Unknown)], None);
        assert_eq!(health.uart_errors, 1);
    }

    #[test]
    fn a_written_serial_capture_reads_back_with_directions_and_line_name() {
        use crate::proto::modbus::rtu::adu;
        use reader::PacketDirection::{Inbound, Outbound};
        let iface = writer::Interface {
            linktype: serial::linktype::EXPORTED_PDU,
            snaplen: 0,
            name: Some("/dev/ttyUSB4".into()),
            description: Some("test".into()),
        };
        let mut w = writer::PcapngWriter::with_interface(Vec::new(), &iface).unwrap();
        // An FC 6 write and its echo: only the flags tell them apart.
        let wr = adu(2, &[6, 0, 1, 0, 9]);
        for (i, (f, d)) in [(&wr, Outbound), (&wr, Outbound), (&wr, Inbound)]
            .into_iter()
            .enumerate()
        {
            let p = serial::mbrtu_packet(f);
            w.packet_with_flags(1_000 + i as u64, &p, d.flags())
                .unwrap();
        }
        let bytes = w.into_inner();
        let mut stats = reader::ReadStats::default();
        let mut got = Vec::new();
        let mut tx = Txs(Vec::new());
        let mut an = analysis::Analysis::new(None, &mut tx);
        an.want_tx = true;
        let mut dec = Decoder::new(Config::default());
        reader::read_stream(
            Box::new(std::io::Cursor::new(bytes.clone())),
            "mem",
            false,
            &mut stats,
            &mut |p| {
                got.push((p.direction, p.if_name.map(str::to_string), p.ts_ns));
                dec.packet(p, &mut an);
            },
            &bytes[..4],
        )
        .unwrap();
        dec.finish(&mut an);
        an.finish();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], (Outbound, Some("/dev/ttyUSB4".into()), 1_000));
        assert_eq!(got[2].0, Inbound);
        let words: Vec<_> = tx.0.iter().map(|t| (t.0.as_str(), t.1)).collect();
        assert_eq!(words, [("ttyUSB4/2", "unanswered"), ("ttyUSB4/2", "ok")]);
    }

    #[test]
    fn device_filter_names_serial_lines() {
        let d = DeviceId {
            addr: Addr::serial_end(link::line_index("/dev/ttyUSB1"), link::SerialEnd::Line),
            port: 0,
            unit: Some(3),
        };
        assert_eq!(d.to_string(), "ttyUSB1/3");
        for t in ["ttyUSB1/3", "/dev/ttyUSB1/3", "ttyUSB1", "line:ttyUSB1/3"] {
            assert!(DeviceFilter::parse(t).unwrap().matches(&d), "{t}");
        }
        assert!(!DeviceFilter::parse("ttyUSB1/4").unwrap().matches(&d));
        assert!(!DeviceFilter::parse("serial/3").unwrap().matches(&d));
        assert!(DeviceFilter::parse("line:/3").is_err());
    }

    #[test]
    fn detection() {
        assert_eq!(
            detect(&[0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 2]).map(|d| d.0),
            Some(Proto::ModbusTcp)
        );
        assert_eq!(detect(&[0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0]), None);
        assert_eq!(detect(b"HELF\x08\0\0\0").map(|d| d.0), Some(Proto::OpcUa));
        assert_eq!(detect(&[3, 0, 0, 22, 17, 0xe0, 0, 0]), None);
    }
}
