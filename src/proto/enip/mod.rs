//! EtherNet/IP (ODVA Vol. 2; TCP/UDP 44818 explicit, UDP 2222 implicit I/O): the 24-byte
//! encapsulation header, the common packet format (CPF) items, `ListIdentity`'s identity and the
//! CIP message inside `SendRRData` / `SendUnitData` ([`cip`]), named with tshark 4.0's words
//! (`enip.command`, `enip.status`, `cip.sc`, `cip.genstat`, `cip.cm.ext_status`, `cip.class`).
//! Borrowed views, no allocation except in [`Exchange::target`], [`Exchange::written`] and
//! [`Exchange::fields`].
//!
//! The [`Exchange`] view of an [`EnipMessage`]:
//! - role: a CIP message by its service's response bit; `ListIdentity`/`ListServices`/
//!   `ListInterfaces` by their length (the request carries no data); `RegisterSession` by its
//!   session handle (0 in the request); `UnRegisterSession`, NOP and unknown commands → Other.
//!   An implicit I/O packet ([`IoPacket`]) is Unsolicited;
//! - key: `SendUnitData` (connected explicit messaging) → the CIP sequence count of the connected
//!   data item (the reply repeats it; the sender context is not used on a connection); every
//!   other command → the 8-byte sender context folded into 32 bits as
//!   `le32(ctx[0..4]) ^ le32(ctx[4..8])` (the target echoes the context byte for byte, so the
//!   fold pairs whatever the originator put there; contexts that differ only by the same bits
//!   in both halves collide, which no originator seen does);
//! - function: the CIP service (without the response bit; [`cip::LOGIX`] added for a request
//!   to a symbolic tag path), or [`ENCAP`]` | command` for a message without CIP; named by
//!   [`function_name`] (a reply's bare 0x4e/0x52 are named as the Connection Manager's; its
//!   request, which the analysis pairs it with, says which it was);
//! - failure: the encapsulation status if non-zero (`ENCAP | status`, named by `enip.status`),
//!   else the CIP general status if non-zero (≤ 0xff, `cip.genstat`), else the first failed
//!   service of a Multiple Service Packet reply (its general status) — a technician first
//!   needs to know the session or the service failed; the extended status is in `fields()`
//!   and [`ext_status_name`];
//! - writes: Set Attributes All / Attribute List / Attribute Single, Logix Write Tag (0x4d),
//!   Write Tag Fragmented (0x53) and Read Modify Write Tag (0x4e on a tag path), also inside
//!   a Multiple Service Packet or an Unconnected Send (requests only).

pub mod cip;
pub mod names;

use super::exchange::{hex_into, push_dec, push_hex, Exchange, Field, Role};
use cip::Cip;
use std::fmt::Write as _;

/// The encapsulation header's length.
pub const HEADER_LEN: usize = 24;
/// The largest encapsulation message plcprobe accepts (header + 65535 bytes of data).
pub const MAX_LEN: usize = HEADER_LEN + 65535;
/// [`Exchange::function`] / [`Exchange::failure`] flag for an encapsulation command / status.
pub const ENCAP: u32 = 0x1_0000;

/// Encapsulation commands (`enip.command`).
pub const CMD_NOP: u16 = 0x0000;
/// `ListServices`.
pub const CMD_LIST_SERVICES: u16 = 0x0004;
/// `ListIdentity`.
pub const CMD_LIST_IDENTITY: u16 = 0x0063;
/// `ListInterfaces`.
pub const CMD_LIST_INTERFACES: u16 = 0x0064;
/// `RegisterSession`.
pub const CMD_REGISTER_SESSION: u16 = 0x0065;
/// `UnRegisterSession`.
pub const CMD_UNREGISTER_SESSION: u16 = 0x0066;
/// `SendRRData`.
pub const CMD_SEND_RR_DATA: u16 = 0x006f;
/// `SendUnitData`.
pub const CMD_SEND_UNIT_DATA: u16 = 0x0070;
/// `StartDTLS`.
pub const CMD_START_DTLS: u16 = 0x00c8;

/// CPF item type ids (`enip.cpf.typeid`).
pub const ITEM_NULL: u16 = 0x0000;
/// `ListIdentity` response's CIP Identity item.
pub const ITEM_IDENTITY: u16 = 0x000c;
/// Connected address item.
pub const ITEM_CONNECTED_ADDRESS: u16 = 0x00a1;
/// Connected data item.
pub const ITEM_CONNECTED_DATA: u16 = 0x00b1;
/// Unconnected data item.
pub const ITEM_UNCONNECTED_DATA: u16 = 0x00b2;
/// Sequenced address item (implicit I/O).
pub const ITEM_SEQUENCED_ADDRESS: u16 = 0x8002;

fn le16(b: &[u8], at: usize) -> Option<u16> {
    let v = b.get(at..at + 2)?;
    Some(u16::from_le_bytes([v[0], v[1]]))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    let v = b.get(at..at + 4)?;
    Some(u32::from_le_bytes([v[0], v[1], v[2], v[3]]))
}

/// The length of the encapsulation message at the start of `buf` (header + its length
/// field), for cutting a TCP 44818 stream; `None` until the 24-byte header is there or if the
/// command is not a known one (a stream that is not EtherNet/IP).
pub fn enip_len(buf: &[u8]) -> Option<usize> {
    if buf.len() < HEADER_LEN || command_name(le16(buf, 0)?).is_none() {
        return None;
    }
    Some(HEADER_LEN + usize::from(le16(buf, 2)?))
}

/// Cheap, strict content detection on other ports: a known command, a length that matches
/// the bytes there are (or more follow), options 0, and a status that is a known one.
pub fn looks_like_enip(buf: &[u8]) -> bool {
    let Some(len) = enip_len(buf) else {
        return false;
    };
    let status = le32(buf, 8).unwrap_or(u32::MAX);
    le32(buf, 20) == Some(0)
        && status_name_of(status).is_some()
        && (len == buf.len() || buf.len() > len && enip_len(&buf[len..]).is_some())
}

/// A CPF item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item<'a> {
    /// Type id.
    pub type_id: u16,
    /// Its data.
    pub data: &'a [u8],
}

/// The items of a CPF (item count, then type/length/data); stops at the first that does not
/// fit (the caller sees fewer than the count).
pub fn cpf_items(b: &[u8]) -> impl Iterator<Item = Item<'_>> + '_ {
    let n = le16(b, 0).unwrap_or(0);
    let mut off = 2usize;
    (0..n).map_while(move |_| {
        let type_id = le16(b, off)?;
        let len = usize::from(le16(b, off + 2)?);
        let data = b.get(off + 4..off + 4 + len)?;
        off += 4 + len;
        Some(Item { type_id, data })
    })
}

/// `ListIdentity` response's identity item (`enip.lir.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity<'a> {
    /// Encapsulation protocol version.
    pub version: u16,
    /// Socket address: port and IPv4 address (big-endian on the wire).
    pub port: u16,
    /// See `port`.
    pub addr: [u8; 4],
    /// Vendor id (`cip.id.vendor_id` names).
    pub vendor: u16,
    /// Device type.
    pub device_type: u16,
    /// Product code.
    pub product_code: u16,
    /// Major, minor revision.
    pub revision: (u8, u8),
    /// Status word.
    pub status: u16,
    /// Serial number.
    pub serial: u32,
    /// Product name, as sent (sanitize before printing: [`Identity::name`]).
    pub product_name: &'a [u8],
    /// State, if present.
    pub state: Option<u8>,
}

impl Identity<'_> {
    /// The product name, sanitized.
    pub fn name(&self) -> String {
        super::sanitize(&String::from_utf8_lossy(self.product_name))
    }
}

/// Reads a CIP Identity item's data.
pub fn parse_identity(d: &[u8]) -> Option<Identity<'_>> {
    let n = usize::from(*d.get(32)?);
    let product_name = d.get(33..33 + n)?;
    Some(Identity {
        version: le16(d, 0)?,
        port: u16::from_be_bytes([d[4], d[5]]),
        addr: [d[6], d[7], d[8], d[9]],
        vendor: le16(d, 18)?,
        device_type: le16(d, 20)?,
        product_code: le16(d, 22)?,
        revision: (d[24], d[25]),
        status: le16(d, 26)?,
        serial: le32(d, 28)?,
        product_name,
        state: d.get(33 + n).copied(),
    })
}

/// One encapsulation message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnipMessage<'a> {
    /// Command.
    pub command: u16,
    /// The header's length field (data bytes).
    pub length: u16,
    /// Session handle.
    pub session: u32,
    /// Status (0 success).
    pub status: u32,
    /// Sender context, echoed by the target.
    pub context: [u8; 8],
    /// Options.
    pub options: u32,
    /// The data after the header (as far as present).
    pub data: &'a [u8],
    /// `SendRRData`/`SendUnitData`: the CPF (after interface handle and timeout).
    pub cpf: &'a [u8],
    /// `SendUnitData`: the CIP sequence count of the connected data item.
    pub sequence: Option<u16>,
    /// `SendUnitData`: the connected address item's connection id.
    pub connection_id: Option<u32>,
    /// The CIP message of the (un)connected data item.
    pub cip: Option<Cip<'a>>,
    /// The bytes `cip` was read from (after a connected data item's sequence count).
    pub cip_bytes: &'a [u8],
    /// Why the message could not be read whole.
    pub malformed: Option<&'static str>,
}

/// Reads one encapsulation message (`buf` is [`enip_len`] bytes, or fewer if truncated);
/// `None` if the 24-byte header is not there.
pub fn parse_message(buf: &[u8]) -> Option<EnipMessage<'_>> {
    let h = buf.get(..HEADER_LEN)?;
    let mut context = [0u8; 8];
    context.copy_from_slice(&h[12..20]);
    let length = le16(h, 2)?;
    let rest = &buf[HEADER_LEN..];
    let data = &rest[..usize::from(length).min(rest.len())];
    let mut m = EnipMessage {
        command: le16(h, 0)?,
        length,
        session: le32(h, 4)?,
        status: le32(h, 8)?,
        context,
        options: le32(h, 20)?,
        data,
        cpf: &[],
        sequence: None,
        connection_id: None,
        cip: None,
        cip_bytes: &[],
        malformed: None,
    };
    if data.len() < usize::from(length) {
        m.malformed = Some("EtherNet/IP data shorter than the header's length");
    }
    if matches!(m.command, CMD_SEND_RR_DATA | CMD_SEND_UNIT_DATA) && !data.is_empty() {
        let Some(cpf) = data.get(6..) else {
            m.malformed = Some("EtherNet/IP SendRRData/SendUnitData shorter than 8 bytes");
            return Some(m);
        };
        m.cpf = cpf;
        let declared = le16(cpf, 0).unwrap_or(0);
        let mut seen = 0;
        for item in cpf_items(cpf) {
            seen += 1;
            match item.type_id {
                ITEM_CONNECTED_ADDRESS => m.connection_id = le32(item.data, 0),
                ITEM_CONNECTED_DATA => {
                    m.sequence = le16(item.data, 0);
                    m.cip_bytes = item.data.get(2..).unwrap_or(&[]);
                    m.cip = cip::parse_cip(m.cip_bytes);
                }
                ITEM_UNCONNECTED_DATA => {
                    m.cip_bytes = item.data;
                    m.cip = cip::parse_cip(item.data);
                }
                _ => {}
            }
        }
        if seen < declared && m.malformed.is_none() {
            m.malformed = Some("EtherNet/IP CPF item longer than the message");
        }
        if let (None, Some(c)) = (m.malformed, m.cip) {
            m.malformed = c.malformed;
        }
    }
    Some(m)
}

impl<'a> EnipMessage<'a> {
    /// `ListIdentity` response: the identity.
    pub fn identity(&self) -> Option<Identity<'a>> {
        if self.command != CMD_LIST_IDENTITY {
            return None;
        }
        cpf_items(self.data)
            .find(|i| i.type_id == ITEM_IDENTITY)
            .and_then(|i| parse_identity(i.data))
    }

    /// Every CIP service of the message: the top one, then those inside a Multiple Service
    /// Packet or an Unconnected Send (one level, depth first).
    pub fn services(&self) -> impl Iterator<Item = Cip<'a>> + 'a {
        let top = self.cip;
        let inner = top.into_iter().flat_map(|c| {
            let emb = c.embedded();
            let msp_of_emb = emb.into_iter().flat_map(|e| e.multiple());
            c.multiple().chain(emb).chain(msp_of_emb)
        });
        top.into_iter().chain(inner)
    }
}

/// How many distinct paths a request's target names before it only counts the services.
pub const TARGET_PATHS: usize = 4;

/// The sender context folded into a pairing key (see the module header).
pub fn fold_context(ctx: &[u8; 8]) -> u32 {
    u32::from_le_bytes([ctx[0], ctx[1], ctx[2], ctx[3]])
        ^ u32::from_le_bytes([ctx[4], ctx[5], ctx[6], ctx[7]])
}

impl Exchange for EnipMessage<'_> {
    fn role(&self) -> Role {
        if let Some(c) = self.cip {
            return if c.response {
                Role::Response
            } else {
                Role::Request
            };
        }
        match self.command {
            CMD_LIST_IDENTITY | CMD_LIST_SERVICES | CMD_LIST_INTERFACES | CMD_SEND_RR_DATA => {
                if self.length == 0 && self.status == 0 {
                    Role::Request
                } else {
                    Role::Response
                }
            }
            CMD_REGISTER_SESSION => {
                if self.session == 0 && self.status == 0 {
                    Role::Request
                } else {
                    Role::Response
                }
            }
            CMD_SEND_UNIT_DATA if self.status != 0 => Role::Response,
            _ => Role::Other,
        }
    }

    fn key(&self) -> u32 {
        if self.command == CMD_SEND_UNIT_DATA {
            if let Some(s) = self.sequence {
                return u32::from(s);
            }
        }
        fold_context(&self.context)
    }

    fn function(&self) -> u32 {
        match self.cip {
            Some(c) => c.function(),
            None => ENCAP | u32::from(self.command),
        }
    }

    fn failure(&self) -> Option<u32> {
        if self.status != 0 {
            return Some(ENCAP | (self.status & 0xffff));
        }
        let c = self.cip?;
        if !c.response {
            return None;
        }
        if c.general_status != 0 {
            return Some(u32::from(c.general_status));
        }
        c.multiple()
            .find(|s| s.general_status != 0)
            .map(|s| u32::from(s.general_status))
    }

    fn is_write(&self) -> bool {
        self.services().any(|c| Cip::is_write(&c))
    }

    /// The CIP message's bytes: a request's target and write flag are its services' (a
    /// `ListIdentity` identity, the other target, comes with no CIP message).
    fn request_bytes(&self) -> &[u8] {
        if self.cip.is_some() {
            self.cip_bytes
        } else {
            &[]
        }
    }

    fn target(&self, out: &mut String) {
        if let Some(id) = self.identity() {
            let _ = write!(
                out,
                "{} ({}) product {} rev {}.{} serial 0x{:08x}",
                id.name(),
                vendor_name(id.vendor),
                id.product_code,
                id.revision.0,
                id.revision.1,
                id.serial
            );
            return;
        }
        // Runs of the same path are collapsed (`Class 0x72/0 ×10`); after TARGET_PATHS
        // distinct runs the rest is only counted (`… (12 services)`).
        let (mut total, mut runs, mut run) = (0u64, 0usize, 0u64);
        let mut prev: Option<cip::Path> = None;
        let close = |out: &mut String, runs: usize, run: u64| {
            if runs <= TARGET_PATHS && run > 1 {
                out.push_str(" ×");
                push_dec(out, run);
            }
        };
        for c in self.services().filter(|c| !c.response) {
            if c.service == cip::SC_MULTIPLE
                || (c.service == cip::SC_UNCONNECTED_SEND && c.embedded().is_some())
            {
                continue;
            }
            total += 1;
            if prev == Some(c.path) {
                run += 1;
                continue;
            }
            if prev.is_some() {
                close(out, runs, run);
            }
            runs += 1;
            if runs <= TARGET_PATHS {
                if runs > 1 {
                    out.push_str(", ");
                }
                c.path.render(out);
            }
            prev = Some(c.path);
            run = 1;
        }
        if prev.is_some() {
            close(out, runs, run);
        }
        if runs > TARGET_PATHS {
            out.push_str(", … (");
            push_dec(out, total);
            out.push_str(" services)");
        }
    }

    fn written(&self, out: &mut String) {
        let mut first = true;
        for c in self.services().filter(Cip::is_write) {
            if !first {
                out.push_str(", ");
            }
            first = false;
            hex_into(out, c.written_bytes());
        }
    }

    fn malformed(&self) -> Option<&'static str> {
        self.malformed
    }

    fn fields(&self, out: &mut Vec<(&'static str, Field)>) {
        out.push(("enip.command", Field::U(u64::from(self.command))));
        out.push(("enip.length", Field::U(u64::from(self.length))));
        out.push(("enip.session", Field::U(u64::from(self.session))));
        out.push(("enip.status", Field::U(u64::from(self.status))));
        out.push(("enip.context", Field::Hex(self.context.to_vec())));
        if let Some(s) = self.sequence {
            out.push(("cip.seq", Field::U(u64::from(s))));
        }
        if let Some(c) = self.connection_id {
            out.push(("enip.cpf.cai.connid", Field::U(u64::from(c))));
        }
        if let Some(id) = self.identity() {
            out.push(("enip.lir.vendor", Field::U(u64::from(id.vendor))));
            out.push(("enip.lir.devtype", Field::U(u64::from(id.device_type))));
            out.push(("enip.lir.prodcode", Field::U(u64::from(id.product_code))));
            out.push(("enip.lir.serial", Field::U(u64::from(id.serial))));
            out.push(("enip.lir.name", Field::S(id.name())));
        }
        for c in self.services() {
            cip_fields(&c, out);
        }
    }
}

fn cip_fields(c: &Cip<'_>, out: &mut Vec<(&'static str, Field)>) {
    let sc = u64::from(c.service) | if c.response { 0x80 } else { 0 };
    out.push(("cip.service", Field::U(sc)));
    if c.response {
        out.push(("cip.genstat", Field::U(u64::from(c.general_status))));
        if let Some(e) = c.ext_status_word() {
            out.push(("cip.ext_status", Field::U(u64::from(e))));
        }
    } else {
        out.push(("cip.epath", Field::Hex(c.path.raw.to_vec())));
        if let Some(v) = c.path.class {
            out.push(("cip.class", Field::U(u64::from(v))));
        }
        if let Some(v) = c.path.instance {
            out.push(("cip.instance", Field::U(u64::from(v))));
        }
        if let Some(v) = c.path.attribute {
            out.push(("cip.attribute", Field::U(u64::from(v))));
        }
        if c.path.symbolic {
            let mut s = String::new();
            c.path.tag(&mut s);
            out.push(("cip.symbol", Field::S(s)));
        }
    }
    if let Some(f) = c.forward_open() {
        out.push(("cip.cm.ot_connid", Field::U(u64::from(f.ot_connid))));
        out.push(("cip.cm.to_connid", Field::U(u64::from(f.to_connid))));
        out.push(("cip.cm.conn_serial_num", Field::U(u64::from(f.conn_serial))));
        out.push(("cip.cm.vendor", Field::U(u64::from(f.vendor))));
        out.push(("cip.cm.orig_serial_num", Field::U(u64::from(f.orig_serial))));
        if !c.response {
            out.push(("cip.cm.otrpi", Field::U(u64::from(f.ot_rpi))));
            out.push(("cip.cm.torpi", Field::U(u64::from(f.to_rpi))));
            out.push((
                "cip.cm.transport_type_trigger",
                Field::U(u64::from(f.transport)),
            ));
        }
    }
    if let Some((serial, vendor, orig)) = c.forward_close() {
        out.push(("cip.cm.conn_serial_num", Field::U(u64::from(serial))));
        out.push(("cip.cm.vendor", Field::U(u64::from(vendor))));
        out.push(("cip.cm.orig_serial_num", Field::U(u64::from(orig))));
    }
}

/// An implicit I/O packet (UDP 2222): a CPF with a sequenced address item and a connected
/// data item. [`Role::Unsolicited`]; counted per connection id (rate, jitter, gaps by
/// `encap_seq`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoPacket<'a> {
    /// The sequenced address item's connection id.
    pub connection_id: u32,
    /// The sequenced address item's encapsulation sequence number.
    pub encap_seq: u32,
    /// The connected data item (class 1: CIP sequence count first, then the run/idle header
    /// and the data, depending on the connection).
    pub data: &'a [u8],
}

/// Reads an implicit I/O packet; `None` if it is not a CPF with a sequenced address item
/// followed by a connected data item.
pub fn parse_io(buf: &[u8]) -> Option<IoPacket<'_>> {
    let mut items = cpf_items(buf);
    let addr = items.next()?;
    let data = items.next()?;
    if addr.type_id != ITEM_SEQUENCED_ADDRESS || data.type_id != ITEM_CONNECTED_DATA {
        return None;
    }
    Some(IoPacket {
        connection_id: le32(addr.data, 0)?,
        encap_seq: le32(addr.data, 4)?,
        data: data.data,
    })
}

impl Exchange for IoPacket<'_> {
    fn role(&self) -> Role {
        Role::Unsolicited
    }
    fn key(&self) -> u32 {
        self.connection_id
    }
    fn function(&self) -> u32 {
        ENCAP | u32::from(ITEM_SEQUENCED_ADDRESS)
    }
    fn target(&self, out: &mut String) {
        out.push_str("connection 0x");
        push_hex(out, u64::from(self.connection_id), 8);
    }
    fn fields(&self, out: &mut Vec<(&'static str, Field)>) {
        out.push((
            "enip.cpf.sai.connid",
            Field::U(u64::from(self.connection_id)),
        ));
        out.push(("enip.cpf.sai.seq", Field::U(u64::from(self.encap_seq))));
        out.push(("enip.cpf.length", Field::U(self.data.len() as u64)));
    }
}

/// `enip.command`.
pub fn command_name(c: u16) -> Option<&'static str> {
    Some(match c {
        CMD_NOP => "NOP",
        CMD_LIST_SERVICES => "List Services",
        CMD_LIST_IDENTITY => "List Identity",
        CMD_LIST_INTERFACES => "List Interfaces",
        CMD_REGISTER_SESSION => "Register Session",
        CMD_UNREGISTER_SESSION => "Unregister Session",
        CMD_SEND_RR_DATA => "Send RR Data",
        CMD_SEND_UNIT_DATA => "Send Unit Data",
        CMD_START_DTLS => "StartDTLS",
        _ => return None,
    })
}

fn status_name_of(s: u32) -> Option<&'static str> {
    Some(match s {
        0x00 => "Success",
        0x01 => "Invalid Command",
        0x02 => "No Memory Resources",
        0x03 => "Incorrect Data",
        0x64 => "Invalid Session Handle",
        0x65 => "Invalid Length",
        0x69 => "Unsupported Protocol Revision",
        0x6a => "Encapsulated CIP service not allowed on this port",
        _ => return None,
    })
}

/// `cip.sc` (and `cip.cm.sc` for 0x4e/0x52/0x54/0x5b …; with [`cip::LOGIX`] the Logix tag
/// services); `ENCAP | command` → `enip.command`; `ENCAP | 0x8002` → implicit I/O.
pub fn function_name(f: u32) -> &'static str {
    if f & ENCAP != 0 {
        let c = (f & 0xffff) as u16;
        if c == ITEM_SEQUENCED_ADDRESS {
            return "Implicit I/O";
        }
        return command_name(c).unwrap_or("Unknown");
    }
    if f & cip::LOGIX != 0 {
        return match f & 0xff {
            0x4b => "Execute PCCC",
            0x4c => "Read Tag",
            0x4d => "Write Tag",
            0x4e => "Read Modify Write Tag",
            0x52 => "Read Tag Fragmented",
            0x53 => "Write Tag Fragmented",
            0x55 => "Get Instance Attribute List",
            _ => "Unknown",
        };
    }
    match f {
        0x01 => "Get Attributes All",
        0x02 => "Set Attributes All",
        0x03 => "Get Attribute List",
        0x04 => "Set Attribute List",
        0x05 => "Reset",
        0x06 => "Start",
        0x07 => "Stop",
        0x08 => "Create",
        0x09 => "Delete",
        0x0a => "Multiple Service Packet",
        0x0d => "Apply Attributes",
        0x0e => "Get Attribute Single",
        0x10 => "Set Attribute Single",
        0x11 => "Find Next Object Instance",
        0x15 => "Restore",
        0x16 => "Save",
        0x17 => "Nop",
        0x18 => "Get Member",
        0x19 => "Set Member",
        0x1a => "Insert Member",
        0x1b => "Remove Member",
        0x1c => "Group Sync",
        0x4c => "Read Tag",
        0x4d => "Write Tag",
        0x4e => "Forward Close",
        0x52 => "Unconnected Send",
        0x53 => "Write Tag Fragmented",
        0x54 => "Forward Open",
        0x56 => "Get Connection Data",
        0x57 => "Search Connection Data",
        0x5a => "Get Connection Owner",
        0x5b => "Large Forward Open",
        _ => "Unknown",
    }
}

/// A failure code (see the module header): `ENCAP | status` → `enip.status`; ≤ 0xff →
/// `cip.genstat`.
pub fn status_name(code: u32) -> &'static str {
    if code & ENCAP != 0 {
        return status_name_of(code & 0xffff).unwrap_or("Unknown");
    }
    general_status_name(code)
}

/// `cip.genstat`.
pub fn general_status_name(code: u32) -> &'static str {
    const GENSTAT: [&str; 45] = [
        "Success",
        "Connection failure",
        "Resource unavailable",
        "Invalid parameter value",
        "Path segment error",
        "Path destination unknown",
        "Partial transfer",
        "Connection lost",
        "Service not supported",
        "Invalid attribute value",
        "Attribute list error",
        "Already in requested mode/state",
        "Object state conflict",
        "Object already exists",
        "Attribute not settable",
        "Privilege violation",
        "Device state conflict",
        "Reply data too large",
        "Fragmentation of a primitive value",
        "Not enough data",
        "Attribute not supported",
        "Too much data",
        "Object does not exist",
        "Service fragmentation sequence not in progress",
        "No stored attribute data",
        "Store operation failure",
        "Routing failure, request packet too large",
        "Routing failure, response packet too large",
        "Missing attribute list entry data",
        "Invalid attribute value list",
        "Embedded service error",
        "Vendor specific error",
        "Invalid parameter",
        "Write-once value or medium already written",
        "Invalid reply received",
        "Buffer overflow",
        "Invalid message format",
        "Key failure in path",
        "Path size invalid",
        "Unexpected attribute in list",
        "Invalid Member ID",
        "Member not settable",
        "Group 2 only server general failure",
        "Unknown Modbus error",
        "Attribute not gettable",
    ];
    usize::try_from(code)
        .ok()
        .and_then(|i| GENSTAT.get(i))
        .copied()
        .unwrap_or("Unknown")
}

/// The Connection Manager's extended status (`cip.cm.ext_status`), for general status 0x01.
pub fn ext_status_name(code: u16) -> &'static str {
    names::CM_EXT_STATUS
        .binary_search_by_key(&code, |(c, _)| *c)
        .map_or("Unknown", |i| names::CM_EXT_STATUS[i].1)
}

/// `cip.class`.
pub fn class_name(c: u32) -> Option<&'static str> {
    names::CIP_CLASS
        .binary_search_by_key(&c, |(k, _)| *k)
        .ok()
        .map(|i| names::CIP_CLASS[i].1)
}

/// `cip.id.vendor_id`.
pub fn vendor_name(v: u16) -> &'static str {
    names::VENDOR
        .binary_search_by_key(&v, |(k, _)| *k)
        .map_or("Unknown", |i| names::VENDOR[i].1)
}

/// `cip.id.device_type`.
pub fn device_type_name(v: u16) -> &'static str {
    names::DEVICE_TYPE
        .binary_search_by_key(&v, |(k, _)| *k)
        .map_or("Unknown", |i| names::DEVICE_TYPE[i].1)
}

#[cfg(test)]
mod tests;
