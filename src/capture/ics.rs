//! The rest of a line's protocols in the capture pipeline: S7comm (TPKT/COTP on TCP 102),
//! EtherNet/IP with CIP (TCP/UDP 44818) and CIP implicit I/O (UDP 2222), DNP3 (TCP/UDP 20000)
//! and BACnet/IP (UDP 47808). This is the one place the pipeline looks at which of them a flow
//! speaks: how a TCP stream is cut into messages ([`framer`]), what a flow remembers between
//! messages (COTP fragments, DNP3 transport segments: [`FlowState`]), how a message is parsed
//! and handed on as its [`Exchange`] view ([`messages`]), content detection on other ports
//! ([`detect_stream`], [`detect_datagram`]), and the names of functions and failure codes
//! ([`function_name`], [`status_name`]). The codecs themselves are in `proto/` (pure); the
//! analysis pairs and counts through the view alone.

use super::{tcp::Framer, Proto};
use crate::proto::{
    bacnet,
    dnp3::{self, Dnp3Stream},
    enip,
    exchange::Exchange,
    s7comm::{self, CotpKind, CotpReassembler, Reassembled},
};

/// What a flow of one of these protocols remembers between messages, per direction. Boxed in
/// the flow (a Modbus flow carries none of it).
#[derive(Default)]
pub struct FlowState {
    /// S7comm: COTP DT fragments waiting for their EOT.
    cotp: [CotpReassembler; 2],
    /// DNP3: each direction's transport segments being reassembled.
    dnp3: [Dnp3Stream; 2],
}

/// The framer that cuts a TCP stream of `proto` into messages.
#[must_use]
pub fn framer(proto: Proto) -> &'static dyn Framer {
    match proto {
        Proto::S7comm => &TpktFramer,
        Proto::Enip => &EnipFramer,
        Proto::Dnp3 => &Dnp3Framer,
        _ => &NoFramer,
    }
}

/// TPKT (RFC 1006): version 3, reserved 0, a 16-bit length that counts the header.
struct TpktFramer;
impl Framer for TpktFramer {
    fn starts_pdu(&self, b: &[u8]) -> bool {
        s7comm::starts_tpkt(b)
    }
    fn pdu_len(&self, b: &[u8]) -> Option<usize> {
        s7comm::tpkt_len(b)
    }
    fn max_len(&self) -> usize {
        s7comm::TPKT_MAX_LEN
    }
    fn min_len(&self) -> usize {
        s7comm::TPKT_MIN_LEN
    }
}

/// EtherNet/IP encapsulation: a 24-byte header whose length field counts the data after it.
struct EnipFramer;
impl Framer for EnipFramer {
    fn starts_pdu(&self, b: &[u8]) -> bool {
        b.len() < enip::HEADER_LEN || enip::enip_len(b).is_some()
    }
    fn pdu_len(&self, b: &[u8]) -> Option<usize> {
        enip::enip_len(b)
    }
    fn max_len(&self) -> usize {
        enip::MAX_LEN
    }
    fn min_len(&self) -> usize {
        enip::HEADER_LEN
    }
}

/// DNP3 link frames: 0x05 0x64, a length that counts control, addresses and user data, and a
/// CRC after the header and after every 16 bytes of user data.
struct Dnp3Framer;
impl Framer for Dnp3Framer {
    fn starts_pdu(&self, b: &[u8]) -> bool {
        dnp3::starts_link_frame(b)
    }
    fn pdu_len(&self, b: &[u8]) -> Option<usize> {
        dnp3::link_frame_len(b)
    }
    fn max_len(&self) -> usize {
        dnp3::link::MAX_FRAME_LEN
    }
    fn min_len(&self) -> usize {
        10
    }
}

struct NoFramer;
impl Framer for NoFramer {
    fn starts_pdu(&self, _: &[u8]) -> bool {
        false
    }
    fn pdu_len(&self, _: &[u8]) -> Option<usize> {
        None
    }
    fn max_len(&self) -> usize {
        1
    }
}

/// Parses one message of `proto` (a TCP message cut by [`framer`], or a whole UDP datagram)
/// sent in direction `d` of its flow, and calls `each` with every message it completes (none
/// while fragments are still coming, several for a datagram of several frames).
pub fn messages(
    proto: Proto,
    bytes: &[u8],
    state: &mut FlowState,
    d: usize,
    each: &mut dyn FnMut(&dyn Exchange),
) {
    match proto {
        Proto::S7comm => s7_packet(bytes, &mut state.cotp[d & 1], each),
        Proto::Enip => {
            if let Some(m) = enip::parse_message(bytes) {
                each(&m);
            }
        }
        Proto::CipIo => {
            if let Some(m) = enip::parse_io(bytes) {
                each(&m);
            }
        }
        Proto::Dnp3 => {
            // A TCP message is one link frame; a UDP datagram may hold several.
            let stream = &mut state.dnp3[d & 1];
            let mut rest = bytes;
            while !rest.is_empty() {
                let n = dnp3::link_frame_len(rest).map_or(rest.len(), |n| n.min(rest.len()));
                let (frame, next) = rest.split_at(n);
                let m = stream.decode(frame);
                each(&m);
                rest = next;
            }
        }
        Proto::Bacnet => each(&bacnet::parse_bvlc_message(bytes)),
        Proto::ModbusTcp | Proto::RtuOverTcp | Proto::OpcUa | Proto::ModbusRtu => {}
    }
}

/// One TPKT packet: its COTP TPDU; a DT's payload joins the fragments before it until EOT,
/// and the whole is one S7 PDU. Connection TPDUs (CR, CC, DR) carry no S7 PDU.
fn s7_packet(packet: &[u8], cotp: &mut CotpReassembler, each: &mut dyn FnMut(&dyn Exchange)) {
    let Some(t) = s7comm::cotp_of_tpkt(packet) else {
        return;
    };
    if t.kind != CotpKind::Data {
        return;
    }
    match cotp.push(t.payload, t.eot) {
        Reassembled::Pending | Reassembled::Overflow => {}
        Reassembled::Whole(b) => {
            if let Some(p) = s7comm::parse_pdu(b) {
                each(&p);
            }
        }
        Reassembled::Joined(v) => {
            if let Some(p) = s7comm::parse_pdu(&v) {
                each(&p);
            }
        }
    }
}

/// The protocol a TCP payload on a port of no configured protocol plainly starts with.
#[must_use]
pub fn detect_stream(b: &[u8]) -> Option<Proto> {
    if s7comm::looks_like_s7(b) {
        Some(Proto::S7comm)
    } else if enip::looks_like_enip(b) {
        Some(Proto::Enip)
    } else if looks_like_dnp3(b) {
        Some(Proto::Dnp3)
    } else {
        None
    }
}

/// A whole DNP3 link frame whose header CRC checks.
fn looks_like_dnp3(b: &[u8]) -> bool {
    dnp3::link_frame_len(b)
        .and_then(|n| b.get(..n))
        .is_some_and(|f| dnp3::link::parse_link_frame(f).is_ok())
}

/// The protocol a UDP datagram on a port of no configured protocol plainly is.
#[must_use]
pub fn detect_datagram(b: &[u8]) -> Option<Proto> {
    if enip::looks_like_enip(b) {
        Some(Proto::Enip)
    } else if looks_like_dnp3(b) {
        Some(Proto::Dnp3)
    } else if bacnet::udp_message_looks_like_bacnet(b) {
        Some(Proto::Bacnet)
    } else {
        None
    }
}

/// The name of function or service `f` of `proto`.
#[must_use]
pub fn function_name(proto: Proto, f: u32) -> &'static str {
    match proto {
        Proto::S7comm => s7comm::function_name(f),
        Proto::Enip | Proto::CipIo => enip::function_name(f),
        Proto::Dnp3 => dnp3::function_name(f),
        Proto::Bacnet => bacnet::function_name(f),
        Proto::ModbusTcp | Proto::RtuOverTcp | Proto::OpcUa | Proto::ModbusRtu => "unknown",
    }
}

/// The name of failure code `code` of `proto` (an S7 error or item return code, a CIP general
/// status, a DNP3 control status or IIN error, a BACnet error, reject or abort).
#[must_use]
pub fn status_name(proto: Proto, code: u32) -> &'static str {
    match proto {
        Proto::S7comm => s7comm::status_name(code),
        Proto::Enip | Proto::CipIo => enip::status_name(code),
        Proto::Dnp3 => dnp3::status_name(code),
        Proto::Bacnet => bacnet::status_name(code),
        Proto::ModbusTcp | Proto::RtuOverTcp | Proto::OpcUa | Proto::ModbusRtu => "unknown",
    }
}
