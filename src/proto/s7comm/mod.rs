//! S7comm (Siemens S7-300/400 "ISO on TCP", TCP port 102): TPKT (RFC 1006) framing, COTP
//! (ISO 8073) TPDUs and the reassembly of DT fragments, and the S7 PDU with its functions,
//! items and codes, named with tshark 4.0's own words (`tshark -G values`, fields
//! `s7comm.*`), so that `decode --pdus` agrees with the reference decoder.
//!
//! Layering on the wire: `TPKT(3, 0, len16) | COTP(li, type, …) | S7 PDU`. A TCP stream is cut
//! into TPKT packets with [`tpkt_len`]; each packet's COTP header is read by [`parse_cotp`]; the
//! payloads of DT TPDUs are joined until the EOT bit by [`CotpReassembler`]; the joined bytes
//! are one S7 PDU, read by [`parse_pdu`] into a borrowed [`S7Pdu`] (no allocation: items are
//! iterated in place; only [`Exchange::target`], [`Exchange::written`] and
//! [`Exchange::fields`] allocate).
//!
//! The [`Exchange`] view:
//! - role: Job → Request, Ack/`Ack_Data` → Response; Userdata by its type nibble (Request 4 →
//!   Request, Response 8 → Response, Push 0 → Unsolicited); S7comm-plus (protocol id 0x72,
//!   recognised, not decoded) and anything else → Other;
//! - key: the PDU reference of the S7 header (a Job's `Ack_Data` repeats it; so does a userdata
//!   response);
//! - function: the parameter's function code (0x04 Read Var …) for Job/`Ack_Data`;
//!   `USERDATA | group << 8 | subfunction` for Userdata; [`S7COMM_PLUS`] for S7comm-plus; named
//!   by [`function_name`];
//! - failure: the header's error class/code first (`class << 8 | code`, ≥ 0x8100, named by
//!   tshark's `s7comm.param.errcod` table), because a header error means the whole job was
//!   refused; else, in a userdata response, the parameter's error code; else the first data
//!   item whose return code is not 0xff Success (a value ≤ 0xff, named by tshark's
//!   `s7comm.data.returncode` table) — the first, because a technician reads the first failed
//!   item and the others are in `fields()`. [`status_name`] names both ranges;
//! - writes (on the request only; the `Ack_Data` carries the same function): Write Var, PI
//!   service (PLC control 0x28: start, compress, `_INSE`/`_DELE` …), PLC Stop (0x29), the three
//!   download functions (0x1a–0x1c), and the userdata Set clock, Modify variable, Force and
//!   Memory reset. Uploads (0x1d–0x1f) are named but are reads.

pub mod names;

use super::exchange::{hex_into, push_dec, push_hex, Exchange, Field, Role};
use std::fmt::Write as _;

/// TPKT version (RFC 1006 §6).
pub const TPKT_VERSION: u8 = 3;
/// The largest TPKT packet (its length is 16 bits and counts its own 4-byte header).
pub const TPKT_MAX_LEN: usize = 65535;
/// The smallest TPKT packet that carries anything: the header plus a COTP length indicator and
/// TPDU code.
pub const TPKT_MIN_LEN: usize = 7;
/// Upper bound on one reassembled S7 PDU (an S7-400 negotiates at most 960 bytes; this keeps a
/// stream that never sends EOT from growing the buffer without end).
pub const MAX_REASSEMBLED: usize = 65535;
/// The S7 header's protocol id.
pub const PROTOCOL_ID: u8 = 0x32;
/// S7comm-plus's protocol id (S7-1200/1500).
pub const PROTOCOL_ID_PLUS: u8 = 0x72;
/// [`Exchange::function`] of an S7comm-plus message.
pub const S7COMM_PLUS: u32 = 0x72_0000;
/// [`Exchange::function`] of a userdata PDU is `USERDATA | group << 8 | subfunction`.
pub const USERDATA: u32 = 0x1_0000;

/// ROSCTR values (`s7comm.header.rosctr`).
pub const JOB: u8 = 1;
/// ROSCTR Ack.
pub const ACK: u8 = 2;
/// ROSCTR `Ack_Data`.
pub const ACK_DATA: u8 = 3;
/// ROSCTR Userdata.
pub const USER_DATA: u8 = 7;

/// Function codes (`s7comm.param.func`).
pub const FUNC_READ_VAR: u8 = 0x04;
/// Write Var.
pub const FUNC_WRITE_VAR: u8 = 0x05;
/// PI-Service (PLC control).
pub const FUNC_PI_SERVICE: u8 = 0x28;
/// PLC Stop.
pub const FUNC_PLC_STOP: u8 = 0x29;
/// Setup communication.
pub const FUNC_SETUP: u8 = 0xf0;

/// Whether `buf` starts like a TPKT packet: version 3, reserved 0, a length of at least
/// [`TPKT_MIN_LEN`].
pub fn starts_tpkt(buf: &[u8]) -> bool {
    buf.len() >= 4
        && buf[0] == TPKT_VERSION
        && buf[1] == 0
        && usize::from(u16::from_be_bytes([buf[2], buf[3]])) >= TPKT_MIN_LEN
}

/// The length of the TPKT packet at the start of `buf` (header included), if `buf` starts with
/// one ([`starts_tpkt`]); the packet may not be complete yet.
pub fn tpkt_len(buf: &[u8]) -> Option<usize> {
    starts_tpkt(buf).then(|| usize::from(u16::from_be_bytes([buf[2], buf[3]])))
}

/// Cheap, strict content detection for a TCP payload on a port other than 102: a whole TPKT
/// packet (or the start of one), a COTP TPDU whose length indicator fits, and for DT data either
/// an S7 (0x32) / S7comm-plus (0x72) header or a connection TPDU.
pub fn looks_like_s7(buf: &[u8]) -> bool {
    let Some(len) = tpkt_len(buf) else {
        return false;
    };
    let end = len.min(buf.len());
    let Some(cotp) = parse_cotp(&buf[4..end]) else {
        return false;
    };
    match cotp.kind {
        CotpKind::Data => matches!(
            cotp.payload.first(),
            Some(&(PROTOCOL_ID | PROTOCOL_ID_PLUS))
        ),
        CotpKind::ConnectRequest | CotpKind::ConnectConfirm => cotp.payload.is_empty(),
        _ => false,
    }
}

/// A COTP TPDU type (ISO 8073 §13, the upper nibble of the TPDU code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CotpKind {
    /// CR 0xE0.
    ConnectRequest,
    /// CC 0xD0.
    ConnectConfirm,
    /// DR 0x80.
    DisconnectRequest,
    /// DC 0xC0.
    DisconnectConfirm,
    /// DT 0xF0.
    Data,
    /// ED 0x10.
    ExpeditedData,
    /// AK 0x60, EA 0x20, RJ 0x50, ER 0x70 and anything else: the code.
    Other(u8),
}

impl CotpKind {
    fn of(code: u8) -> Self {
        match code & 0xf0 {
            0xe0 => Self::ConnectRequest,
            0xd0 => Self::ConnectConfirm,
            0x80 => Self::DisconnectRequest,
            0xc0 => Self::DisconnectConfirm,
            0xf0 => Self::Data,
            0x10 => Self::ExpeditedData,
            c => Self::Other(c),
        }
    }

    /// tshark's abbreviation (`cotp.type`).
    pub fn name(self) -> &'static str {
        match self {
            Self::ConnectRequest => "CR Connect Request",
            Self::ConnectConfirm => "CC Connect Confirm",
            Self::DisconnectRequest => "DR Disconnect Request",
            Self::DisconnectConfirm => "DC Disconnect Confirm",
            Self::Data => "DT Data",
            Self::ExpeditedData => "ED Expedited Data",
            Self::Other(0x60) => "AK Data Acknowledgement",
            Self::Other(0x20) => "EA Expedited Data Acknowledgement",
            Self::Other(0x50) => "RJ Reject",
            Self::Other(0x70) => "ER TPDU Error",
            Self::Other(_) => "Unknown",
        }
    }
}

/// One COTP TPDU inside a TPKT packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cotp<'a> {
    /// The TPDU type.
    pub kind: CotpKind,
    /// DT only: the last-data-unit bit (EOT); true for other types.
    pub eot: bool,
    /// DT only: the TPDU number (7 bits).
    pub tpdu_nr: u8,
    /// CR/CC/DR: destination reference; 0 otherwise.
    pub dst_ref: u16,
    /// CR/CC/DR: source reference; 0 otherwise.
    pub src_ref: u16,
    /// The bytes after the COTP header (the S7 PDU or a fragment of it, for DT).
    pub payload: &'a [u8],
}

/// Reads the COTP TPDU that fills `tpkt_payload` (the TPKT packet without its 4-byte header);
/// `None` if its length indicator does not fit.
pub fn parse_cotp(tpkt_payload: &[u8]) -> Option<Cotp<'_>> {
    let li = usize::from(*tpkt_payload.first()?);
    if li == 0 || li + 1 > tpkt_payload.len() {
        return None;
    }
    let code = tpkt_payload[1];
    let kind = CotpKind::of(code);
    let hdr = &tpkt_payload[1..=li];
    let (mut eot, mut tpdu_nr, mut dst_ref, mut src_ref) = (true, 0, 0, 0);
    match kind {
        CotpKind::Data => {
            let b = *hdr.get(1)?;
            eot = b & 0x80 != 0;
            tpdu_nr = b & 0x7f;
        }
        CotpKind::ConnectRequest | CotpKind::ConnectConfirm | CotpKind::DisconnectRequest => {
            if hdr.len() < 5 {
                return None;
            }
            dst_ref = u16::from_be_bytes([hdr[1], hdr[2]]);
            src_ref = u16::from_be_bytes([hdr[3], hdr[4]]);
        }
        _ => {}
    }
    Some(Cotp {
        kind,
        eot,
        tpdu_nr,
        dst_ref,
        src_ref,
        payload: &tpkt_payload[li + 1..],
    })
}

/// The COTP TPDU of a whole TPKT packet (`packet` is exactly [`tpkt_len`] bytes).
pub fn cotp_of_tpkt(packet: &[u8]) -> Option<Cotp<'_>> {
    let len = tpkt_len(packet)?;
    if len != packet.len() {
        return None;
    }
    parse_cotp(&packet[4..])
}

/// What [`CotpReassembler::push`] made of a DT payload.
#[derive(Debug, PartialEq, Eq)]
pub enum Reassembled<'a> {
    /// A fragment without EOT was kept; the PDU is not complete.
    Pending,
    /// A whole S7 PDU: the DT payload itself (no fragments before it) …
    Whole(&'a [u8]),
    /// … or the joined fragments.
    Joined(Vec<u8>),
    /// The fragments would exceed [`MAX_REASSEMBLED`]; they were dropped.
    Overflow,
}

/// Joins the payloads of COTP DT TPDUs of one direction of one connection until the one with
/// the EOT bit; bounded by [`MAX_REASSEMBLED`].
#[derive(Debug, Default)]
pub struct CotpReassembler {
    buf: Vec<u8>,
}

impl CotpReassembler {
    /// An empty reassembler.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether fragments are waiting for their EOT.
    pub fn pending(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Adds one DT payload (`eot` = the TPDU's EOT bit).
    pub fn push<'a>(&mut self, payload: &'a [u8], eot: bool) -> Reassembled<'a> {
        if self.buf.len() + payload.len() > MAX_REASSEMBLED {
            self.buf = Vec::new();
            return Reassembled::Overflow;
        }
        if eot && self.buf.is_empty() {
            return Reassembled::Whole(payload);
        }
        self.buf.extend_from_slice(payload);
        if eot {
            Reassembled::Joined(std::mem::take(&mut self.buf))
        } else {
            Reassembled::Pending
        }
    }
}

/// The userdata parameter head (`s7comm.param.userdata.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Userdata {
    /// Type nibble: 0 Push, 4 Request, 8 Response (3/7/11 the NC variants).
    pub kind: u8,
    /// Function group (4 CPU functions, 3 Block functions …).
    pub group: u8,
    /// Subfunction within the group.
    pub subfunc: u8,
    /// Sequence number.
    pub seq: u8,
    /// Response head only: the error code (0 = none).
    pub error: u16,
    /// The data part's return code (0xff Success), if there is a data part.
    pub return_code: Option<u8>,
    /// CPU functions / Read SZL: the SZL id and index, when the data carries them (not in a
    /// response split into several data units: tshark joins those and names the SZL on the
    /// last; this stateless codec names none).
    pub szl: Option<(u16, u16)>,
}

/// One S7 PDU, borrowed from its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct S7Pdu<'a> {
    /// 0x32 S7comm or 0x72 S7comm-plus.
    pub protocol_id: u8,
    /// ROSCTR (S7comm only; 0 for S7comm-plus).
    pub rosctr: u8,
    /// PDU reference (S7comm only).
    pub pdu_ref: u16,
    /// Ack/`Ack_Data`: error class and code; 0 otherwise.
    pub error_class: u8,
    /// See `error_class`.
    pub error_code: u8,
    /// The parameter part (as far as it is present).
    pub param: &'a [u8],
    /// The data part (as far as it is present).
    pub data: &'a [u8],
    /// Userdata head, for ROSCTR 7.
    pub userdata: Option<Userdata>,
    /// Why the PDU could not be read whole.
    pub malformed: Option<&'static str>,
}

/// Reads one S7 PDU (the DT payload or the reassembled one). `None` only if the bytes do not
/// start with 0x32 or 0x72; a truncated PDU is returned with [`S7Pdu::malformed`] set.
pub fn parse_pdu(b: &[u8]) -> Option<S7Pdu<'_>> {
    let protocol_id = *b.first()?;
    let mut pdu = S7Pdu {
        protocol_id,
        rosctr: 0,
        pdu_ref: 0,
        error_class: 0,
        error_code: 0,
        param: &[],
        data: &[],
        userdata: None,
        malformed: None,
    };
    if protocol_id == PROTOCOL_ID_PLUS {
        return Some(pdu);
    }
    if protocol_id != PROTOCOL_ID {
        return None;
    }
    if b.len() < 10 {
        pdu.malformed = Some("S7 header shorter than 10 bytes");
        return Some(pdu);
    }
    pdu.rosctr = b[1];
    pdu.pdu_ref = u16::from_be_bytes([b[4], b[5]]);
    let parlg = usize::from(u16::from_be_bytes([b[6], b[7]]));
    let datlg = usize::from(u16::from_be_bytes([b[8], b[9]]));
    let mut off = 10;
    if matches!(pdu.rosctr, ACK | ACK_DATA) {
        if b.len() < 12 {
            pdu.malformed = Some("S7 Ack header shorter than 12 bytes");
            return Some(pdu);
        }
        pdu.error_class = b[10];
        pdu.error_code = b[11];
        off = 12;
    }
    let rest = &b[off..];
    pdu.param = &rest[..parlg.min(rest.len())];
    let rest = &rest[pdu.param.len()..];
    pdu.data = &rest[..datlg.min(rest.len())];
    if pdu.param.len() < parlg || pdu.data.len() < datlg {
        pdu.malformed = Some("S7 parameter or data part shorter than the header says");
    }
    if pdu.rosctr == USER_DATA {
        pdu.userdata = parse_userdata(pdu.param, pdu.data);
        if pdu.userdata.is_none() && pdu.malformed.is_none() {
            pdu.malformed = Some("S7 userdata parameter head too short");
        }
    }
    Some(pdu)
}

fn parse_userdata(p: &[u8], d: &[u8]) -> Option<Userdata> {
    // 00 01 12 | len | reqres1 | type<<4|group | subfunc | seq [| dataunitref lastunit err16]
    if p.len() < 8 {
        return None;
    }
    let mut u = Userdata {
        kind: p[5] >> 4,
        group: p[5] & 0x0f,
        subfunc: p[6],
        seq: p[7],
        ..Userdata::default()
    };
    if p[3] >= 8 && p.len() >= 12 {
        u.error = u16::from_be_bytes([p[10], p[11]]);
    }
    // a response in several data units (last-data-unit 0x01 on all but the last, a data unit
    // reference on all) carries the SZL header only in its joined data: not read here
    let fragment = p[3] >= 8 && p.len() >= 12 && (p[8] != 0 || p[9] != 0);
    if let Some(&rc) = d.first() {
        u.return_code = Some(rc);
        if u.group == 4 && u.subfunc == 1 && rc == 0xff && d.len() >= 8 && !fragment {
            u.szl = Some((
                u16::from_be_bytes([d[4], d[5]]),
                u16::from_be_bytes([d[6], d[7]]),
            ));
        }
    }
    Some(u)
}

/// One request item's address (`s7comm.param.item.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item {
    /// Syntax id (0x10 S7ANY; others are counted, not decoded).
    pub syntax_id: u8,
    /// S7ANY: transport size (`s7comm.param.item.transp_size`).
    pub transport_size: u8,
    /// S7ANY: number of elements.
    pub length: u16,
    /// S7ANY: DB number (0 outside DB/DI).
    pub db: u16,
    /// S7ANY: memory area (`s7comm.param.item.area`).
    pub area: u8,
    /// S7ANY: the 24-bit address: byte << 3 | bit (timers/counters: the number).
    pub address: u32,
}

impl Item {
    /// The byte part of the address.
    pub fn byte(&self) -> u32 {
        self.address >> 3
    }

    /// The bit part of the address.
    pub fn bit(&self) -> u32 {
        self.address & 7
    }

    /// The item in STEP 7 notation: `DB1.DBX10.0 BYTE[4]`, `M20.0 BIT[1]`, `T5 TIMER[1]`.
    pub fn render(&self, out: &mut String) {
        if self.syntax_id != 0x10 {
            let _ = write!(out, "syntax 0x{:02x}", self.syntax_id);
            return;
        }
        let (b, bit) = (u64::from(self.byte()), u64::from(self.bit()));
        let byte_bit = |out: &mut String| {
            push_dec(out, b);
            out.push('.');
            push_dec(out, bit);
        };
        match self.area {
            0x84 | 0x85 => {
                let (db, x) = if self.area == 0x84 {
                    ("DB", ".DBX")
                } else {
                    ("DI", ".DIX")
                };
                out.push_str(db);
                push_dec(out, u64::from(self.db));
                out.push_str(x);
                byte_bit(out);
            }
            0x81 | 0x82 | 0x83 | 0x80 | 0x86 | 0x87 => {
                out.push_str(match self.area {
                    0x81 => "I",
                    0x82 => "Q",
                    0x83 => "M",
                    0x80 => "P",
                    0x86 => "L",
                    _ => "V",
                });
                byte_bit(out);
            }
            0x1c | 0x1d => {
                out.push(if self.area == 0x1c { 'C' } else { 'T' });
                push_dec(out, u64::from(self.address));
            }
            a => {
                out.push_str("area 0x");
                push_hex(out, u64::from(a), 2);
                out.push(' ');
                byte_bit(out);
            }
        }
        out.push(' ');
        out.push_str(transport_size_name(self.transport_size));
        out.push('[');
        push_dec(out, u64::from(self.length));
        out.push(']');
    }
}

/// How many items a Read/Write Var request's target names before it only counts them.
pub const TARGET_ITEMS: usize = 4;

/// The request items of a Read Var / Write Var parameter (item count at `param[1]`).
pub fn request_items(param: &[u8]) -> impl Iterator<Item = Item> + '_ {
    let mut off = 2usize;
    let count = param.get(1).copied().unwrap_or(0);
    (0..count).map_while(move |_| {
        // 0x12 | spec length | syntax id | …
        let spec_len = usize::from(*param.get(off + 1)?);
        let spec = param.get(off + 2..off + 2 + spec_len)?;
        off += 2 + spec_len;
        let syntax_id = *spec.first()?;
        if syntax_id == 0x10 && spec.len() >= 10 {
            Some(Item {
                syntax_id,
                transport_size: spec[1],
                length: u16::from_be_bytes([spec[2], spec[3]]),
                db: u16::from_be_bytes([spec[4], spec[5]]),
                area: spec[6],
                address: u32::from_be_bytes([0, spec[7], spec[8], spec[9]]),
            })
        } else {
            Some(Item {
                syntax_id,
                transport_size: 0,
                length: 0,
                db: 0,
                area: 0,
                address: 0,
            })
        }
    })
}

/// One data item (`s7comm.data.item`): a Read Var answer's or a Write Var request's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataItem<'a> {
    /// Return code (0xff Success; 0x00 in a request).
    pub return_code: u8,
    /// Data transport size (`s7comm.data.transportsize`).
    pub transport_size: u8,
    /// The value's bytes.
    pub data: &'a [u8],
}

/// The data items of a Read Var answer or a Write Var request; `count` is the parameter's item
/// count. A Write Var answer's data is one return code per item: see [`write_return_codes`].
pub fn data_items(data: &[u8], count: u8) -> impl Iterator<Item = DataItem<'_>> + '_ {
    let mut off = 0usize;
    (0..count).map_while(move |i| {
        let h = data.get(off..off + 4)?;
        let (rc, ts) = (h[0], h[1]);
        let raw = usize::from(u16::from_be_bytes([h[2], h[3]]));
        // lengths in bits for BYTE/WORD/DWORD (0x04) and INTEGER (0x05), bytes otherwise
        let len = match ts {
            0x04 | 0x05 => raw.div_ceil(8),
            _ => raw,
        };
        let start = off + 4;
        let value = data.get(start..(start + len).min(data.len()))?;
        off = start + len;
        if len % 2 == 1 && i + 1 < count {
            off += 1;
        }
        Some(DataItem {
            return_code: rc,
            transport_size: ts,
            data: value,
        })
    })
}

/// A Write Var answer's return codes, one per item.
pub fn write_return_codes(data: &[u8], count: u8) -> &[u8] {
    &data[..usize::from(count).min(data.len())]
}

impl<'a> S7Pdu<'a> {
    /// The function code of a Job/`Ack_Data` parameter.
    pub fn func(&self) -> Option<u8> {
        if matches!(self.rosctr, JOB | ACK_DATA) {
            self.param.first().copied()
        } else {
            None
        }
    }

    /// The item count of a Read Var / Write Var parameter.
    pub fn item_count(&self) -> Option<u8> {
        match self.func() {
            Some(FUNC_READ_VAR | FUNC_WRITE_VAR) => self.param.get(1).copied(),
            _ => None,
        }
    }

    /// The per-item return codes of an `Ack_Data` to Read Var / Write Var.
    pub fn return_codes(&self) -> impl Iterator<Item = u8> + 'a {
        let count = if self.rosctr == ACK_DATA {
            self.item_count().unwrap_or(0)
        } else {
            0
        };
        let (data, func) = (self.data, self.func());
        let write = if func == Some(FUNC_WRITE_VAR) {
            write_return_codes(data, count)
        } else {
            &[]
        };
        let read_count = if func == Some(FUNC_READ_VAR) {
            count
        } else {
            0
        };
        write
            .iter()
            .copied()
            .chain(data_items(data, read_count).map(|d| d.return_code))
    }

    /// PI service (0x28) request: the service name (`_INSE`, `P_PROGRAM` …); PLC Stop (0x29):
    /// its name.
    pub fn pi_service(&self) -> Option<&'a [u8]> {
        if self.rosctr != JOB {
            return None;
        }
        let p = self.param;
        match self.func()? {
            FUNC_PI_SERVICE => {
                // func | 7 unknown | param block len16 | block | name len | name
                let blen = usize::from(u16::from_be_bytes([*p.get(8)?, *p.get(9)?]));
                let at = 10 + blen;
                let n = usize::from(*p.get(at)?);
                p.get(at + 1..at + 1 + n)
            }
            FUNC_PLC_STOP => {
                // func | 5 unknown | name len | name
                let n = usize::from(*p.get(6)?);
                p.get(7..7 + n)
            }
            _ => None,
        }
    }

    /// Download/upload jobs (0x1a, 0x1b, 0x1d): the block file name (`_0A00001P`).
    pub fn block_file(&self) -> Option<&'a [u8]> {
        if self.rosctr != JOB || !matches!(self.func()?, 0x1a | 0x1b | 0x1d) {
            return None;
        }
        // func | status | 2 unknown | 4 (upload id) | name len | name
        let n = usize::from(*self.param.get(8)?);
        self.param.get(9..9 + n)
    }

    /// Setup communication: (max `AmQ` calling, max `AmQ` called, PDU length).
    pub fn setup(&self) -> Option<(u16, u16, u16)> {
        if self.func()? != FUNC_SETUP || self.param.len() < 8 {
            return None;
        }
        let p = self.param;
        Some((
            u16::from_be_bytes([p[2], p[3]]),
            u16::from_be_bytes([p[4], p[5]]),
            u16::from_be_bytes([p[6], p[7]]),
        ))
    }
}

fn lookup<K: PartialOrd + Copy>(table: &[(K, &'static str)], k: K) -> Option<&'static str> {
    table.iter().find(|(c, _)| *c == k).map(|(_, n)| *n)
}

/// The name of an S7 function (see the module header for the userdata and S7comm-plus values).
pub fn function_name(f: u32) -> &'static str {
    if f == S7COMM_PLUS {
        return "S7comm-plus";
    }
    if f & USERDATA != 0 {
        let group = ((f >> 8) & 0x0f) as u8;
        let sub = (f & 0xff) as u8;
        return userdata_subfunc_name(group, sub).unwrap_or(userdata_group_name(group));
    }
    match f {
        0x00 => "CPU services",
        0xf0 => "Setup communication",
        0x04 => "Read Var",
        0x05 => "Write Var",
        0x1a => "Request download",
        0x1b => "Download block",
        0x1c => "Download ended",
        0x1d => "Start upload",
        0x1e => "Upload",
        0x1f => "End upload",
        0x28 => "PI-Service",
        0x29 => "PLC Stop",
        _ => "Unknown",
    }
}

/// The name of a failure code (see the module header): ≤ 0xff a data item return code
/// (`s7comm.data.returncode`), above it a header or parameter error `class << 8 | code`
/// (`s7comm.param.errcod`, else the class by `s7comm.header.errcls`).
pub fn status_name(code: u32) -> &'static str {
    if code <= 0xff {
        return return_code_name(code as u8);
    }
    let Ok(c) = u16::try_from(code) else {
        return "Unknown";
    };
    lookup(names::PARAM_ERRCOD, c).unwrap_or_else(|| error_class_name((c >> 8) as u8))
}

/// `s7comm.data.returncode`.
pub fn return_code_name(rc: u8) -> &'static str {
    match rc {
        0x00 => "Reserved",
        0x01 => "Hardware error",
        0x03 => "Accessing the object not allowed",
        0x05 => "Invalid address",
        0x06 => "Data type not supported",
        0x07 => "Data type inconsistent",
        0x0a => "Object does not exist",
        0xff => "Success",
        _ => "Unknown",
    }
}

/// `s7comm.header.errcls`.
pub fn error_class_name(c: u8) -> &'static str {
    match c {
        0x00 => "No error",
        0x81 => "Application relationship",
        0x82 => "Object definition",
        0x83 => "No resources available",
        0x84 => "Error on service processing",
        0x85 => "Error on supplies",
        0x87 => "Access error",
        _ => "Unknown",
    }
}

/// `s7comm.header.rosctr`.
pub fn rosctr_name(r: u8) -> &'static str {
    match r {
        JOB => "Job",
        ACK => "Ack",
        ACK_DATA => "Ack_Data",
        USER_DATA => "Userdata",
        _ => "Unknown",
    }
}

/// `s7comm.param.item.area`.
pub fn area_name(a: u8) -> &'static str {
    match a {
        0x01 => "Data record",
        0x03 => "System info of 200 family",
        0x05 => "System flags of 200 family",
        0x06 => "Analog inputs of 200 family",
        0x07 => "Analog outputs of 200 family",
        0x80 => "Direct peripheral access (P)",
        0x81 => "Inputs (I)",
        0x82 => "Outputs (Q)",
        0x83 => "Flags (M)",
        0x84 => "Data blocks (DB)",
        0x85 => "Instance data blocks (DI)",
        0x86 => "Local data (L)",
        0x87 => "Unknown yet (V)",
        0x1c => "S7 counters (C)",
        0x1d => "S7 timers (T)",
        0x1e => "IEC counters (200 family)",
        0x1f => "IEC timers (200 family)",
        _ => "Unknown",
    }
}

/// `s7comm.param.item.transp_size`.
pub fn transport_size_name(t: u8) -> &'static str {
    match t {
        1 => "BIT",
        2 => "BYTE",
        3 => "CHAR",
        4 => "WORD",
        5 => "INT",
        6 => "DWORD",
        7 => "DINT",
        8 => "REAL",
        10 => "TOD",
        11 => "TIME",
        12 => "S5TIME",
        15 => "DATE_AND_TIME",
        28 => "COUNTER",
        29 => "TIMER",
        30 => "IEC TIMER",
        31 => "IEC COUNTER",
        32 => "HS COUNTER",
        _ => "Unknown",
    }
}

/// `s7comm.param.userdata.funcgroup`.
pub fn userdata_group_name(g: u8) -> &'static str {
    match g {
        0 => "Mode-transition",
        1 => "Programmer commands",
        2 => "Cyclic services",
        3 => "Block functions",
        4 => "CPU functions",
        5 => "Security",
        6 => "PBC BSEND/BRECV",
        7 => "Time functions",
        15 => "NC programming",
        _ => "Unknown",
    }
}

/// `s7comm.param.userdata.subfunc`, per group (tshark keeps one table per group).
pub fn userdata_subfunc_name(group: u8, sub: u8) -> Option<&'static str> {
    Some(match (group, sub) {
        (1, 1) => "Block status",
        (1, 2) => "Variable status",
        (1, 3) => "Output ISTACK",
        (1, 4) => "Output BSTACK",
        (1, 5) => "Output LSTACK",
        (1, 6) => "Time measurement from to",
        (1, 7) => "Force selection",
        (1, 8) => "Modify variable",
        (1, 9) => "Force",
        (1, 10) => "Breakpoint",
        (1, 11) => "Exit HOLD",
        (1, 12) => "Memory reset",
        (1, 13) => "Disable job",
        (1, 14) => "Enable job",
        (1, 15) => "Delete job",
        (1, 16) => "Read job list",
        (1, 17) => "Read job",
        (1, 18) => "Replace job",
        (1, 19) => "Block status v2",
        (1, 22) => "Flash LED",
        (2, 1) => "Cyclic transfer",
        (2, 4) => "Unsubscribe",
        (2, 5) => "Change driven transfer",
        (2, 7) => "Change driven transfer modify",
        (2, 8) => "RDREC",
        (3, 1) => "List blocks",
        (3, 2) => "List blocks of type",
        (3, 3) => "Get block info",
        (4, 1) => "Read SZL",
        (4, 2) => "Message service",
        (4, 3) => "Diagnostic message",
        (4, 5) => "ALARM_8 indication",
        (4, 6) => "NOTIFY indication",
        (4, 7) => "ALARM_8 lock",
        (4, 8) => "ALARM_8 unlock",
        (4, 9) => "SCAN indication",
        (4, 11) => "ALARM ack",
        (4, 12) => "ALARM ack indication",
        (4, 13) => "ALARM lock indication",
        (4, 14) => "ALARM unlock indication",
        (4, 17) => "ALARM_SQ indication",
        (4, 18) => "ALARM_S indication",
        (4, 19) => "ALARM query",
        (4, 22) => "NOTIFY_8 indication",
        (5, 1) => "PLC password",
        (7, 1) => "Read clock",
        (7, 2 | 4) => "Set clock",
        (7, 3) => "Read clock (following)",
        (15, 1) => "Request download",
        (15, 2) => "Download block",
        (15, 3) => "Continue download",
        (15, 4) => "Download ended",
        (15, 6) => "Start upload",
        (15, 7) => "Upload",
        (15, 8) => "Continue upload",
        _ => return None,
    })
}

/// The SZL id's name (`s7comm.szl.0000.0000.szl_id`'s table), for a Read SZL.
pub fn szl_name(id: u16) -> &'static str {
    lookup(names::SZL_ID, id).unwrap_or("Unknown")
}

fn ascii(out: &mut String, b: &[u8]) {
    out.push_str(&super::sanitize(&String::from_utf8_lossy(b)));
}

impl Exchange for S7Pdu<'_> {
    fn role(&self) -> Role {
        if self.protocol_id != PROTOCOL_ID {
            return Role::Other;
        }
        match self.rosctr {
            JOB => Role::Request,
            ACK | ACK_DATA => Role::Response,
            USER_DATA => match self.userdata.map(|u| u.kind) {
                Some(4 | 7) => Role::Request,
                Some(8 | 11) => Role::Response,
                Some(0 | 3) => Role::Unsolicited,
                _ => Role::Other,
            },
            _ => Role::Other,
        }
    }

    fn key(&self) -> u32 {
        u32::from(self.pdu_ref)
    }

    fn function(&self) -> u32 {
        if self.protocol_id != PROTOCOL_ID {
            return S7COMM_PLUS;
        }
        if let Some(u) = self.userdata {
            return USERDATA | u32::from(u.group) << 8 | u32::from(u.subfunc);
        }
        self.func().map_or(0, u32::from)
    }

    fn failure(&self) -> Option<u32> {
        if self.error_class != 0 || self.error_code != 0 {
            return Some(u32::from(self.error_class) << 8 | u32::from(self.error_code));
        }
        if let Some(u) = self.userdata {
            if u.error != 0 {
                return Some(u32::from(u.error));
            }
            return None;
        }
        self.return_codes().find(|&rc| rc != 0xff).map(u32::from)
    }

    fn is_write(&self) -> bool {
        if self.role() != Role::Request {
            return false;
        }
        if let Some(u) = self.userdata {
            return matches!((u.group, u.subfunc), (7, 2 | 4) | (1, 8 | 9 | 12));
        }
        matches!(
            self.func(),
            Some(FUNC_WRITE_VAR | FUNC_PI_SERVICE | FUNC_PLC_STOP | 0x1a | 0x1b | 0x1c)
        )
    }

    /// A Job's parameter part: its target (items, PI service, block name) and write flag are
    /// read from nothing else (userdata requests name none: their SZL is in the data part).
    fn request_bytes(&self) -> &[u8] {
        if self.protocol_id == PROTOCOL_ID && self.rosctr == JOB && self.userdata.is_none() {
            self.param
        } else {
            &[]
        }
    }

    fn target(&self, out: &mut String) {
        if let Some(u) = self.userdata {
            if let Some((id, index)) = u.szl {
                out.push_str("SZL 0x");
                push_hex(out, u64::from(id), 4);
                out.push_str(" index 0x");
                push_hex(out, u64::from(index), 4);
            }
            return;
        }
        if self.rosctr == JOB && self.item_count().is_some() {
            let mut n = 0u64;
            for (i, it) in request_items(self.param).enumerate() {
                n += 1;
                if i >= TARGET_ITEMS {
                    continue;
                }
                if i > 0 {
                    out.push_str(", ");
                }
                it.render(out);
            }
            if n > TARGET_ITEMS as u64 {
                out.push_str(", … (");
                push_dec(out, n);
                out.push_str(" items)");
            }
        } else if let Some(name) = self.pi_service() {
            ascii(out, name);
        } else if let Some(name) = self.block_file() {
            ascii(out, name);
        }
    }

    fn written(&self, out: &mut String) {
        if self.rosctr != JOB || self.func() != Some(FUNC_WRITE_VAR) {
            return;
        }
        let count = self.item_count().unwrap_or(0);
        for (i, d) in data_items(self.data, count).enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            hex_into(out, d.data);
        }
    }

    fn malformed(&self) -> Option<&'static str> {
        self.malformed
    }

    fn fields(&self, out: &mut Vec<(&'static str, Field)>) {
        if self.protocol_id != PROTOCOL_ID {
            out.push(("protocol_id", Field::U(u64::from(self.protocol_id))));
            return;
        }
        out.push(("rosctr", Field::U(u64::from(self.rosctr))));
        out.push(("pdu_ref", Field::U(u64::from(self.pdu_ref))));
        if matches!(self.rosctr, ACK | ACK_DATA) {
            out.push(("error_class", Field::U(u64::from(self.error_class))));
            out.push(("error_code", Field::U(u64::from(self.error_code))));
        }
        if let Some(u) = self.userdata {
            out.push(("ud_type", Field::U(u64::from(u.kind))));
            out.push(("ud_group", Field::U(u64::from(u.group))));
            out.push(("ud_subfunc", Field::U(u64::from(u.subfunc))));
            // the error code is in a response's 12-byte parameter head only
            if self.param.get(3).is_some_and(|&l| l >= 8) && self.param.len() >= 12 {
                out.push(("ud_error", Field::U(u64::from(u.error))));
            }
            if let Some(rc) = u.return_code {
                out.push(("ud_return_code", Field::U(u64::from(rc))));
            }
            if let Some((id, index)) = u.szl {
                out.push(("szl_id", Field::U(u64::from(id))));
                out.push(("szl_index", Field::U(u64::from(index))));
            }
            return;
        }
        let Some(func) = self.func() else {
            return;
        };
        out.push(("function", Field::U(u64::from(func))));
        if let Some(count) = self.item_count() {
            out.push(("item_count", Field::U(u64::from(count))));
        }
        if self.rosctr == JOB && self.item_count().is_some() {
            for it in request_items(self.param) {
                out.push(("item.syntax_id", Field::U(u64::from(it.syntax_id))));
                if it.syntax_id == 0x10 {
                    out.push((
                        "item.transport_size",
                        Field::U(u64::from(it.transport_size)),
                    ));
                    out.push(("item.length", Field::U(u64::from(it.length))));
                    out.push(("item.db", Field::U(u64::from(it.db))));
                    out.push(("item.area", Field::U(u64::from(it.area))));
                    if matches!(it.area, 0x1c | 0x1d) {
                        out.push(("item.number", Field::U(u64::from(it.address))));
                    } else {
                        out.push(("item.byte", Field::U(u64::from(it.byte()))));
                        out.push(("item.bit", Field::U(u64::from(it.bit()))));
                    }
                }
            }
        }
        for rc in self.return_codes() {
            out.push(("return_code", Field::U(u64::from(rc))));
        }
        if let Some((calling, called, pdu)) = self.setup() {
            out.push(("max_amq_calling", Field::U(u64::from(calling))));
            out.push(("max_amq_called", Field::U(u64::from(called))));
            out.push(("pdu_length", Field::U(u64::from(pdu))));
        }
        if let Some(name) = self.pi_service() {
            let mut s = String::new();
            ascii(&mut s, name);
            out.push(("pi_service", Field::S(s)));
        }
    }
}

#[cfg(test)]
mod tests;
