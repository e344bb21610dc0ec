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
use crate::proto::exchange::Exchange;

/// What a flow of one of these protocols remembers between messages, per direction. Boxed in
/// the flow (a Modbus flow carries none of it).
#[derive(Default)]
pub struct FlowState {}

/// The framer that cuts a TCP stream of `proto` into messages.
#[must_use]
pub fn framer(proto: Proto) -> &'static dyn Framer {
    let _ = proto;
    &NoFramer
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
    let _ = (proto, bytes, state, d, each);
}

/// The protocol a TCP payload on a port of no configured protocol plainly starts with.
#[must_use]
pub fn detect_stream(b: &[u8]) -> Option<Proto> {
    let _ = b;
    None
}

/// The protocol a UDP datagram on a port of no configured protocol plainly is.
#[must_use]
pub fn detect_datagram(b: &[u8]) -> Option<Proto> {
    let _ = b;
    None
}

/// The name of function or service `f` of `proto`.
#[must_use]
pub fn function_name(proto: Proto, f: u32) -> &'static str {
    let _ = (proto, f);
    "unknown"
}

/// The name of failure code `code` of `proto` (an S7 error or item return code, a CIP general
/// status, a DNP3 control status or IIN error, a BACnet error, reject or abort).
#[must_use]
pub fn status_name(proto: Proto, code: u32) -> &'static str {
    let _ = (proto, code);
    "unknown"
}
