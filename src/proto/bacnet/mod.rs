//! BACnet/IP (UDP 47808; ASHRAE 135 Annex J) and the NPDU/APDU it carries, also inside BACnet
//! MS/TP frames ([`mstp`]). [`parse_bvlc_message`] takes a UDP payload (BVLC, NPDU, APDU);
//! [`parse_npdu_message`] an NPDU (an MS/TP data frame's data). Names are tshark's (`bvlc.*`,
//! `bacnet.*`, `bacapp.*`; object types, properties and error codes in [`names`], generated
//! from tshark's tables).
//!
//! The [`Exchange`] view of a [`Message`]:
//! - **role**: Confirmed-REQ → [`Role::Request`]; Simple-ACK, Complex-ACK, Error, Reject,
//!   Abort → [`Role::Response`]; Unconfirmed-REQ (Who-Is, I-Am, …) → [`Role::Unsolicited`];
//!   Segment-ACK, network-layer messages and BVLC-only messages → [`Role::Other`].
//! - **key**: the invoke id (0–255).
//! - **function**: the confirmed service choice (0–255); [`UNCONFIRMED`] + the unconfirmed
//!   service choice; [`APDU_ONLY`] + the APDU type for Segment-ACK, Reject and Abort (they
//!   carry no service); [`NETWORK`] + the network message type; [`BVLC_ONLY`] + the BVLC
//!   function; [`mstp::MSTP_FRAME`] + the frame type for an MS/TP frame without a decoded NPDU.
//!   [`function_name`] names each.
//! - **failure**: Error → class·2¹⁶ + code (class < 256: `0x0000_0000..=0x00FF_FFFF`);
//!   Reject → [`REJECT`] + reason; Abort → [`ABORT`] + reason. [`status_name`] names the error
//!   code (the class is in [`Exchange::fields`]), the reject or the abort reason.
//! - **writes**: `writeProperty`, `writePropertyMultiple`, `atomicWriteFile`,
//!   `addListElement`, `removeListElement`, `createObject`, `deleteObject`, and the controls
//!   `deviceCommunicationControl` and `reinitializeDevice` (confirmed requests), and
//!   `writeGroup` (unconfirmed). Target: the object and property (`analog-value,3
//!   present-value`); of Read/WritePropertyMultiple (and its ACK) every object and property,
//!   `; ` between objects, the first [`TARGET_PROPERTIES`] then `… (N)`. Written: the value and
//!   priority; of `WritePropertyMultiple` every value (and priority) in the target's order, `; `
//!   between properties.
//! - **parameters** also decoded (target / written): `SubscribeCOV` (object, subscriber process,
//!   confirmed, lifetime), `ReadRange` (object, property, range by position / sequence number /
//!   time and count), `DeviceCommunicationControl` (enable-disable and duration; the password is
//!   never written out), `ReinitializeDevice` (the state; likewise).
//! - **unit**: none (a BACnet device is its network address and device instance; I-Am gives
//!   the instance in [`Message::iam`]).

pub mod mstp;
pub mod names;
pub mod tags;

use crate::proto::exchange::{Exchange, Field, Role};
use std::fmt::Write as _;
use tags::{object_id, object_into, read_tag, signed, unsigned, value_into, Tag};

/// UDP port of BACnet/IP.
pub const PORT: u16 = 47808;
/// Function numbers of unconfirmed services start here (see the header).
pub const UNCONFIRMED: u32 = 0x100;
/// Function numbers of Segment-ACK, Reject and Abort (+ APDU type).
pub const APDU_ONLY: u32 = 0x200;
/// Function numbers of network-layer messages (+ message type).
pub const NETWORK: u32 = 0x300;
/// Function numbers of BVLC messages without an NPDU (+ BVLC function).
pub const BVLC_ONLY: u32 = 0x400;
/// Failure numbers of Reject (+ reason).
pub const REJECT: u32 = 0x0100_0000;
/// Failure numbers of Abort (+ reason).
pub const ABORT: u32 = 0x0200_0000;

/// Confirmed service choices used here.
pub mod service {
    /// readProperty.
    pub const READ_PROPERTY: u8 = 12;
    /// readPropertyMultiple.
    pub const READ_PROPERTY_MULTIPLE: u8 = 14;
    /// writeProperty.
    pub const WRITE_PROPERTY: u8 = 15;
    /// writePropertyMultiple.
    pub const WRITE_PROPERTY_MULTIPLE: u8 = 16;
    /// subscribeCOV.
    pub const SUBSCRIBE_COV: u8 = 5;
    /// deviceCommunicationControl.
    pub const DEVICE_COMMUNICATION_CONTROL: u8 = 17;
    /// reinitializeDevice.
    pub const REINITIALIZE_DEVICE: u8 = 20;
    /// readRange.
    pub const READ_RANGE: u8 = 26;
    /// i-Am (unconfirmed).
    pub const I_AM: u8 = 0;
    /// who-Is (unconfirmed).
    pub const WHO_IS: u8 = 8;
}

/// tshark's name of a BVLC function (`bvlc.function`).
#[must_use]
pub fn bvlc_function_name(f: u8) -> &'static str {
    match f {
        0x00 => "BVLC-Result",
        0x01 => "Write-Broadcast-Distribution-Table",
        0x02 => "Read-Broadcast-Distribution-Table",
        0x03 => "Read-Broadcast-Distribution-Table-Ack",
        0x04 => "Forwarded-NPDU",
        0x05 => "Register-Foreign-Device",
        0x06 => "Read-Foreign-Device-Table",
        0x07 => "Read-Foreign-Device-Table-Ack",
        0x08 => "Delete-Foreign-Device-Table-Entry",
        0x09 => "Distribute-Broadcast-To-Network",
        0x0a => "Original-Unicast-NPDU",
        0x0b => "Original-Broadcast-NPDU",
        0x0c => "Secured-BVLL",
        _ => "Unknown",
    }
}

/// tshark's name of a BVLC result code (`bvlc.result`, BACnet/IPv4).
#[must_use]
pub fn bvlc_result_name(r: u16) -> &'static str {
    match r {
        0x00 => "Successful completion",
        0x10 => "Write-Broadcast-Distribution-Table NAK",
        0x20 => "Read-Broadcast-Distribution-Table NAK",
        0x30 => "Register-Foreign-Device NAK",
        0x40 => "Read-Foreign-Device-Table NAK",
        0x50 => "Delete-Foreign-Device-Table-Entry NAK",
        0x60 => "Distribute-Broadcast-To-Network NAK",
        _ => "Unknown",
    }
}

/// The name of a network-layer message type (ASHRAE 135 §6.2.4; tshark `bacnet.mesgtyp`).
#[must_use]
pub fn network_message_name(t: u8) -> &'static str {
    match t {
        0x00 => "Who-Is-Router-To-Network",
        0x01 => "I-Am-Router-To-Network",
        0x02 => "I-Could-Be-Router-To-Network",
        0x03 => "Reject-Message-To-Network",
        0x04 => "Router-Busy-To-Network",
        0x05 => "Router-Available-To-Network",
        0x06 => "Initialize-Routing-Table",
        0x07 => "Initialize-Routing-Table-Ack",
        0x08 => "Establish-Connection-To-Network",
        0x09 => "Disconnect-Connection-To-Network",
        0x0a => "Challenge-Request",
        0x0b => "Security-Payload",
        0x0c => "Security-Response",
        0x0d => "Request-Key-Update",
        0x0e => "Update-Key-Set",
        0x0f => "Update-Distribution-Key",
        0x10 => "Request-Master-Key",
        0x11 => "Set-Master-Key",
        0x12 => "What-Is-Network-Number",
        0x13 => "Network-Number-Is",
        _ => "Unknown",
    }
}

/// tshark's name of an APDU type (`bacapp.type`).
#[must_use]
pub fn apdu_type_name(t: u8) -> &'static str {
    match t {
        0 => "Confirmed-REQ",
        1 => "Unconfirmed-REQ",
        2 => "Simple-ACK",
        3 => "Complex-ACK",
        4 => "Segment-ACK",
        5 => "Error",
        6 => "Reject",
        7 => "Abort",
        _ => "Unknown",
    }
}

/// tshark's name of a confirmed service (`bacapp.confirmed_service`).
#[must_use]
pub fn confirmed_service_name(s: u8) -> &'static str {
    const N: [&str; 34] = [
        "acknowledgeAlarm",
        "confirmedCOVNotification",
        "confirmedEventNotification",
        "getAlarmSummary",
        "getEnrollmentSummary",
        "subscribeCOV",
        "atomicReadFile",
        "atomicWriteFile",
        "addListElement",
        "removeListElement",
        "createObject",
        "deleteObject",
        "readProperty",
        "readPropertyConditional",
        "readPropertyMultiple",
        "writeProperty",
        "writePropertyMultiple",
        "deviceCommunicationControl",
        "confirmedPrivateTransfer",
        "confirmedTextMessage",
        "reinitializeDevice",
        "vtOpen",
        "vtClose",
        "vtData",
        "authenticate",
        "requestKey",
        "readRange",
        "lifeSafetyOperation",
        "subscribeCOVProperty",
        "getEventInformation",
        "subscribeCovPropertyMultiple",
        "confirmedCovNotificationMultiple",
        "confirmedAuditNotification",
        "auditLogQuery",
    ];
    N.get(usize::from(s)).copied().unwrap_or("Unknown")
}

/// tshark's name of an unconfirmed service (`bacapp.unconfirmed_service`).
#[must_use]
pub fn unconfirmed_service_name(s: u8) -> &'static str {
    const N: [&str; 15] = [
        "i-Am",
        "i-Have",
        "unconfirmedCOVNotification",
        "unconfirmedEventNotification",
        "unconfirmedPrivateTransfer",
        "unconfirmedTextMessage",
        "timeSynchronization",
        "who-Has",
        "who-Is",
        "utcTimeSynchronization",
        "writeGroup",
        "unconfirmedCovNotificationMultiple",
        "unconfirmedAuditNotification",
        "who-am-I",
        "you-are",
    ];
    N.get(usize::from(s)).copied().unwrap_or("Unknown")
}

/// tshark's name of an error class (`bacapp.error_class`).
#[must_use]
pub fn error_class_name(c: u32) -> &'static str {
    const N: [&str; 8] = [
        "device",
        "object",
        "property",
        "resources",
        "security",
        "services",
        "vt",
        "communication",
    ];
    usize::try_from(c)
        .ok()
        .and_then(|c| N.get(c).copied())
        .unwrap_or("Unknown")
}

/// tshark's name of a reject reason (`bacapp.reject_reason`).
#[must_use]
pub fn reject_reason_name(r: u8) -> &'static str {
    const N: [&str; 10] = [
        "other",
        "buffer-overflow",
        "inconsistent-parameters",
        "invalid-parameter-data-type",
        "invalid-tag",
        "missing-required-parameter",
        "parameter-out-of-range",
        "too-many-arguments",
        "undefined-enumeration",
        "unrecognized-service",
    ];
    N.get(usize::from(r)).copied().unwrap_or("Unknown")
}

/// tshark's name of an abort reason (`bacapp.abort_reason`).
#[must_use]
pub fn abort_reason_name(r: u8) -> &'static str {
    const N: [&str; 12] = [
        "other",
        "buffer-overflow",
        "invalid-apdu-in-this-state",
        "preempted-by-higher-priority-task",
        "segmentation-not-supported",
        "security-error",
        "insufficient-security",
        "window-size-out-of-range",
        "application-exceeded-reply-time",
        "out-of-resources",
        "tsm-timeout",
        "apdu-too-long",
    ];
    N.get(usize::from(r)).copied().unwrap_or("Unknown")
}

/// tshark's name of a property identifier (`bacapp.property_identifier`).
#[must_use]
pub fn property_name(p: u32) -> Option<&'static str> {
    names::lookup(names::PROPERTIES, p)
}

/// The name of a function as [`Exchange::function`] gives it (see the header).
#[must_use]
pub fn function_name(f: u32) -> &'static str {
    match f {
        0..=255 => confirmed_service_name(f as u8),
        0x100..=0x1FF => unconfirmed_service_name(f as u8),
        0x200..=0x2FF => apdu_type_name(f as u8),
        0x300..=0x3FF => network_message_name(f as u8),
        0x400..=0x4FF => bvlc_function_name(f as u8),
        0x500..=0x5FF => mstp::frame_type_name(f as u8),
        _ => "Unknown",
    }
}

/// The name of a failure as [`Exchange::failure`] gives it (see the header).
#[must_use]
pub fn status_name(s: u32) -> &'static str {
    match s {
        0..=0x00FF_FFFF => names::lookup(names::ERROR_CODES, s & 0xFFFF).unwrap_or("Unknown"),
        0x0100_0000..=0x0100_00FF => reject_reason_name(s as u8),
        0x0200_0000..=0x0200_00FF => abort_reason_name(s as u8),
        _ => "Unknown",
    }
}

/// Whether a UDP payload looks like BACnet/IP: BVLC type 0x81, a known function, a length field
/// equal to the payload's length, and (for functions that carry one) NPDU version 1.
#[must_use]
pub fn udp_message_looks_like_bacnet(b: &[u8]) -> bool {
    if b.len() < 4 || b[0] != 0x81 || b[1] > 0x0c {
        return false;
    }
    if usize::from(u16::from_be_bytes([b[2], b[3]])) != b.len() {
        return false;
    }
    match b[1] {
        0x04 => b.get(10) == Some(&1),
        0x09..=0x0b => b.get(4) == Some(&1),
        _ => true,
    }
}

/// The BVLC header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bvlc {
    /// Function.
    pub function: u8,
    /// Length field.
    pub length: u16,
    /// Result code (BVLC-Result).
    pub result: Option<u16>,
    /// The original source of a Forwarded-NPDU: IPv4 address and port.
    pub origin: Option<([u8; 4], u16)>,
}

/// The NPDU header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Npdu<'a> {
    /// Protocol version (1).
    pub version: u8,
    /// Control octet.
    pub control: u8,
    /// Destination network.
    pub dnet: Option<u16>,
    /// Destination MAC (empty: broadcast).
    pub dadr: &'a [u8],
    /// Source network.
    pub snet: Option<u16>,
    /// Source MAC.
    pub sadr: &'a [u8],
    /// Hop count (with a destination).
    pub hop_count: Option<u8>,
    /// Network-layer message type (control bit 7).
    pub message_type: Option<u8>,
}

/// The APDU header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Apdu<'a> {
    /// PDU type (high nibble of the first octet).
    pub pdu_type: u8,
    /// The first octet's flags (SEG 0x08, MOR 0x04, SA 0x02 on requests; NAK/SRV on others).
    pub flags: u8,
    /// Invoke id.
    pub invoke_id: Option<u8>,
    /// Service choice.
    pub service: Option<u8>,
    /// Reject or abort reason.
    pub reason: Option<u8>,
    /// Segment sequence number (segmented messages and Segment-ACK).
    pub sequence: Option<u8>,
    /// The service's parameters.
    pub body: &'a [u8],
}

impl Apdu<'_> {
    /// Segmented message (Confirmed-REQ, Complex-ACK).
    #[must_use]
    pub fn segmented(&self) -> bool {
        matches!(self.pdu_type, 0 | 3) && self.flags & 0x08 != 0
    }
    /// More segments follow.
    #[must_use]
    pub fn more_follows(&self) -> bool {
        matches!(self.pdu_type, 0 | 3) && self.flags & 0x04 != 0
    }
}

/// An I-Am.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IAm {
    /// Device instance.
    pub device: u32,
    /// Max APDU length accepted.
    pub max_apdu: u32,
    /// Segmentation supported (enumerated).
    pub segmentation: u32,
    /// Vendor id.
    pub vendor: u32,
}

/// What the service parameters say, for the services decoded.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Detail<'a> {
    /// The (first) object identifier.
    pub object: Option<(u16, u32)>,
    /// The (first) property.
    pub property: Option<u32>,
    /// Its array index.
    pub array_index: Option<u32>,
    /// Write priority.
    pub priority: Option<u32>,
    /// The (first) value, application-tagged, without its opening/closing tags.
    pub value: Option<&'a [u8]>,
    /// Error class and code.
    pub error: Option<(u32, u32)>,
    /// Who-Is range.
    pub who_is: Option<(u32, u32)>,
    /// I-Am.
    pub iam: Option<IAm>,
    /// `SubscribeCOV`: subscriber process id, issue confirmed notifications (absent: a
    /// cancellation), lifetime in seconds (0 or absent: indefinite).
    pub cov: Option<(u32, Option<bool>, Option<u32>)>,
    /// `ReadRange`: how the range is given (3 by position, 6 by sequence number, 7 by time), the
    /// reference index or sequence number (none by time), and the count (negative: backwards).
    pub range: Option<(u8, Option<u32>, i32)>,
    /// `DeviceCommunicationControl`: the duration in minutes (absent: indefinite) and
    /// enable-disable (0 enable, 1 disable, 2 disable-initiation).
    pub communication: Option<(Option<u32>, u32)>,
    /// `ReinitializeDevice`: the state asked for (0 coldstart, 1 warmstart, …).
    pub reinitialize: Option<u32>,
}

/// tshark's name of `DeviceCommunicationControl`'s enable-disable (`bacapp.enable_disable`).
#[must_use]
pub fn enable_disable_name(v: u32) -> &'static str {
    match v {
        0 => "enable",
        1 => "disable",
        2 => "disable-initiation",
        _ => "Unknown",
    }
}

/// tshark's name of `ReinitializeDevice`'s state (`bacapp.reinitialized_state_of_device`).
#[must_use]
pub fn reinitialized_state_name(v: u32) -> &'static str {
    const N: [&str; 8] = [
        "coldstart",
        "warmstart",
        "startbackup",
        "endbackup",
        "startrestore",
        "endrestore",
        "abortrestore",
        "activate-changes",
    ];
    usize::try_from(v)
        .ok()
        .and_then(|v| N.get(v).copied())
        .unwrap_or("Unknown")
}

/// One BACnet message, decoded as far as it goes.
#[derive(Debug, Clone, Default)]
pub struct Message<'a> {
    /// BVLC header (BACnet/IP only).
    pub bvlc: Option<Bvlc>,
    /// NPDU header.
    pub npdu: Option<Npdu<'a>>,
    /// APDU header.
    pub apdu: Option<Apdu<'a>>,
    /// Decoded service parameters.
    pub detail: Detail<'a>,
    malformed: Option<&'static str>,
}

impl Message<'_> {
    /// The I-Am this message is, if it is one.
    #[must_use]
    pub fn iam(&self) -> Option<IAm> {
        self.detail.iam
    }
}

/// Parses a BACnet/IP UDP payload.
#[must_use]
pub fn parse_bvlc_message(b: &[u8]) -> Message<'_> {
    let mut m = Message::default();
    if b.len() < 4 || b[0] != 0x81 {
        m.malformed = Some("not a BACnet/IP BVLC header (type 0x81)");
        return m;
    }
    let length = u16::from_be_bytes([b[2], b[3]]);
    let mut bv = Bvlc {
        function: b[1],
        length,
        result: None,
        origin: None,
    };
    let end = usize::from(length).min(b.len());
    if usize::from(length) > b.len() {
        m.malformed = Some("BVLC length beyond the UDP payload (cut capture)");
    }
    if length < 4 {
        m.bvlc = Some(bv);
        m.malformed = Some("BVLC length below 4");
        return m;
    }
    let body = &b[4..end];
    let npdu = match bv.function {
        0x00 => {
            bv.result = body.get(..2).map(|r| u16::from_be_bytes([r[0], r[1]]));
            None
        }
        0x04 => {
            if body.len() >= 6 {
                bv.origin = Some((
                    [body[0], body[1], body[2], body[3]],
                    u16::from_be_bytes([body[4], body[5]]),
                ));
                Some(&body[6..])
            } else {
                m.malformed = Some("Forwarded-NPDU without its origin address");
                None
            }
        }
        0x09..=0x0b => Some(body),
        _ => None,
    };
    m.bvlc = Some(bv);
    if let Some(n) = npdu {
        let inner = parse_npdu_message(n);
        m.npdu = inner.npdu;
        m.apdu = inner.apdu;
        m.detail = inner.detail;
        m.malformed = m.malformed.or(inner.malformed);
    }
    m
}

/// Parses an NPDU and the APDU it carries.
#[must_use]
pub fn parse_npdu_message(b: &[u8]) -> Message<'_> {
    let mut m = Message::default();
    match parse_npdu(b) {
        Ok((n, rest)) => {
            m.npdu = Some(n);
            if n.message_type.is_some() {
                return m;
            }
            match parse_apdu(rest) {
                Ok(a) => {
                    m.apdu = Some(a);
                    let (d, bad) = detail(&a);
                    m.detail = d;
                    m.malformed = bad;
                }
                Err(e) => m.malformed = Some(e),
            }
        }
        Err(e) => m.malformed = Some(e),
    }
    m
}

fn parse_npdu(b: &[u8]) -> Result<(Npdu<'_>, &[u8]), &'static str> {
    const CUT: &str = "BACnet NPDU cut short";
    if b.len() < 2 {
        return Err(CUT);
    }
    if b[0] != 1 {
        return Err("BACnet NPDU version is not 1");
    }
    let control = b[1];
    let mut rest = &b[2..];
    let mut n = Npdu {
        version: 1,
        control,
        dnet: None,
        dadr: &[],
        snet: None,
        sadr: &[],
        hop_count: None,
        message_type: None,
    };
    let net_addr = |rest: &mut &'_ [u8]| -> Result<(u16, usize), &'static str> {
        let h = rest.get(..3).ok_or(CUT)?;
        let net = u16::from_be_bytes([h[0], h[1]]);
        let len = usize::from(h[2]);
        if rest.len() < 3 + len {
            return Err(CUT);
        }
        *rest = &rest[3..];
        Ok((net, len))
    };
    if control & 0x20 != 0 {
        let (net, len) = net_addr(&mut rest)?;
        n.dnet = Some(net);
        n.dadr = &rest[..len];
        rest = &rest[len..];
    }
    if control & 0x08 != 0 {
        let (net, len) = net_addr(&mut rest)?;
        n.snet = Some(net);
        n.sadr = &rest[..len];
        rest = &rest[len..];
    }
    if control & 0x20 != 0 {
        let (&h, r) = rest.split_first().ok_or(CUT)?;
        n.hop_count = Some(h);
        rest = r;
    }
    if control & 0x80 != 0 {
        let (&t, r) = rest.split_first().ok_or(CUT)?;
        n.message_type = Some(t);
        rest = r;
        if t >= 0x80 {
            rest = rest.get(2..).ok_or(CUT)?;
        }
    }
    Ok((n, rest))
}

fn parse_apdu(b: &[u8]) -> Result<Apdu<'_>, &'static str> {
    const CUT: &str = "BACnet APDU cut short";
    let &first = b.first().ok_or(CUT)?;
    let mut a = Apdu {
        pdu_type: first >> 4,
        flags: first & 0x0F,
        invoke_id: None,
        service: None,
        reason: None,
        sequence: None,
        body: &[],
    };
    let need = |n: usize| if b.len() < n { Err(CUT) } else { Ok(()) };
    match a.pdu_type {
        0 => {
            need(4)?;
            a.invoke_id = Some(b[2]);
            if a.segmented() {
                need(6)?;
                a.sequence = Some(b[3]);
                a.service = Some(b[5]);
                a.body = &b[6..];
            } else {
                a.service = Some(b[3]);
                a.body = &b[4..];
            }
        }
        1 => {
            need(2)?;
            a.service = Some(b[1]);
            a.body = &b[2..];
        }
        2 => {
            need(3)?;
            a.invoke_id = Some(b[1]);
            a.service = Some(b[2]);
        }
        3 => {
            need(3)?;
            a.invoke_id = Some(b[1]);
            if a.segmented() {
                need(5)?;
                a.sequence = Some(b[2]);
                a.service = Some(b[4]);
                a.body = &b[5..];
            } else {
                a.service = Some(b[2]);
                a.body = &b[3..];
            }
        }
        4 => {
            need(4)?;
            a.invoke_id = Some(b[1]);
            a.sequence = Some(b[2]);
        }
        5 => {
            need(3)?;
            a.invoke_id = Some(b[1]);
            a.service = Some(b[2]);
            a.body = &b[3..];
        }
        6 | 7 => {
            need(3)?;
            a.invoke_id = Some(b[1]);
            a.reason = Some(b[2]);
        }
        _ => return Err("BACnet APDU type above 7"),
    }
    Ok(a)
}

/// Tags of a service body, read one by one.
struct Tags<'a>(&'a [u8]);

impl<'a> Tags<'a> {
    fn next(&mut self) -> Option<Tag<'a>> {
        let (t, rest) = read_tag(self.0)?;
        self.0 = rest;
        Some(t)
    }
    fn peek(&self) -> Option<Tag<'a>> {
        read_tag(self.0).map(|(t, _)| t)
    }
    /// The context tag `n` if it comes next.
    fn context(&mut self, n: u8) -> Option<Tag<'a>> {
        let t = self.peek()?;
        (t.context && !t.opening && !t.closing && t.number == n).then(|| {
            self.next();
            t
        })
    }
    /// The content between an opening tag `n` (next) and its closing tag, skipping nesting.
    fn constructed(&mut self, n: u8) -> Option<&'a [u8]> {
        let t = self.peek()?;
        if !(t.opening && t.number == n) {
            return None;
        }
        self.next();
        let start = self.0;
        let mut depth = 0usize;
        loop {
            let before = self.0;
            let t = self.next()?;
            if t.opening {
                depth += 1;
            } else if t.closing {
                if depth == 0 {
                    let used = start.len() - before.len();
                    return Some(&start[..used]);
                }
                depth -= 1;
            }
        }
    }
}

const BAD_PARAMS: &str = "BACnet service parameters malformed";

/// Decodes the parameters of the services named in the module header.
fn detail<'a>(a: &Apdu<'a>) -> (Detail<'a>, Option<&'static str>) {
    let mut d = Detail::default();
    let Some(s) = a.service else {
        return (d, None);
    };
    if a.segmented() && a.sequence != Some(0) {
        return (d, None);
    }
    let mut t = Tags(a.body);
    let ok = match (a.pdu_type, s) {
        (0 | 3, service::READ_PROPERTY | service::WRITE_PROPERTY) => (|| {
            d.object = object_id(t.context(0)?.content);
            d.property = unsigned(t.context(1)?.content);
            d.array_index = t.context(2).and_then(|x| unsigned(x.content));
            if a.pdu_type == 3 || s == service::WRITE_PROPERTY {
                d.value = Some(t.constructed(3)?);
            }
            if s == service::WRITE_PROPERTY {
                d.priority = t.context(4).and_then(|x| unsigned(x.content));
            }
            Some(())
        })(),
        (0 | 3, service::READ_PROPERTY_MULTIPLE | service::WRITE_PROPERTY_MULTIPLE) => (|| {
            d.object = object_id(t.context(0)?.content);
            let list = t.constructed(1)?;
            let mut l = Tags(list);
            let first = l.next()?;
            if first.context && first.number == if a.pdu_type == 3 { 2 } else { 0 } {
                d.property = unsigned(first.content);
            }
            Some(())
        })(),
        (0, service::SUBSCRIBE_COV) => (|| {
            let process = unsigned(t.context(0)?.content)?;
            d.object = object_id(t.context(1)?.content);
            let confirmed = t
                .context(2)
                .map(|x| x.content.first().is_some_and(|&b| b != 0));
            let lifetime = t.context(3).and_then(|x| unsigned(x.content));
            d.cov = Some((process, confirmed, lifetime));
            Some(())
        })(),
        (0, service::READ_RANGE) => (|| {
            d.object = object_id(t.context(0)?.content);
            d.property = unsigned(t.context(1)?.content);
            d.array_index = t.context(2).and_then(|x| unsigned(x.content));
            if t.0.is_empty() {
                return Some(());
            }
            let kind = t.peek()?.number;
            let mut r = Tags(t.constructed(kind)?);
            let reference = match kind {
                3 | 6 => Some(unsigned(r.next()?.content)?),
                7 => {
                    r.next()?;
                    r.next()?;
                    None
                }
                _ => return None,
            };
            d.range = Some((kind, reference, signed(r.next()?.content)?));
            Some(())
        })(),
        (0, service::DEVICE_COMMUNICATION_CONTROL) => (|| {
            let duration = t.context(0).and_then(|x| unsigned(x.content));
            let enable = unsigned(t.context(1)?.content)?;
            d.communication = Some((duration, enable));
            Some(())
        })(),
        (0, service::REINITIALIZE_DEVICE) => (|| {
            d.reinitialize = Some(unsigned(t.context(0)?.content)?);
            Some(())
        })(),
        (5, _) => (|| {
            let mut body = t.0;
            if let Some(inner) = t.constructed(0) {
                body = inner;
            }
            let mut e = Tags(body);
            let class = e.next()?;
            let code = e.next()?;
            if class.context || code.context || class.number != 9 || code.number != 9 {
                return None;
            }
            d.error = Some((unsigned(class.content)?, unsigned(code.content)?));
            Some(())
        })(),
        (1, service::I_AM) => (|| {
            let dev = t.next()?;
            let max = t.next()?;
            let seg = t.next()?;
            let ven = t.next()?;
            let (_, device) = object_id(dev.content)?;
            d.object = object_id(dev.content);
            d.iam = Some(IAm {
                device,
                max_apdu: unsigned(max.content)?,
                segmentation: unsigned(seg.content)?,
                vendor: unsigned(ven.content)?,
            });
            Some(())
        })(),
        (1, service::WHO_IS) => {
            if t.0.is_empty() {
                Some(())
            } else {
                (|| {
                    let lo = unsigned(t.context(0)?.content)?;
                    let hi = unsigned(t.context(1)?.content)?;
                    d.who_is = Some((lo, hi));
                    Some(())
                })()
            }
        }
        _ => Some(()),
    };
    (d, ok.is_none().then_some(BAD_PARAMS))
}

/// How many properties a Read/WritePropertyMultiple target names before it says how many there
/// are in all (`analog-input,1 present-value, status-flags; … (12)`).
pub const TARGET_PROPERTIES: usize = 4;

/// One property of a Read/WritePropertyMultiple list (request or ReadPropertyMultiple-ACK).
struct Access<'a> {
    /// The first property of its object.
    first: bool,
    object: (u16, u32),
    property: u32,
    index: Option<u32>,
    /// The value written (`WritePropertyMultiple`) or read (the ACK).
    value: Option<&'a [u8]>,
    priority: Option<u32>,
}

impl<'a> Apdu<'a> {
    /// Read/WritePropertyMultiple request or ReadPropertyMultiple-ACK (its first segment, if
    /// segmented).
    fn multiple(&self) -> bool {
        matches!(
            (self.pdu_type, self.service),
            (
                0,
                Some(service::READ_PROPERTY_MULTIPLE | service::WRITE_PROPERTY_MULTIPLE)
            ) | (3, Some(service::READ_PROPERTY_MULTIPLE))
        ) && (!self.segmented() || self.sequence == Some(0))
    }

    /// Calls `each` with every property of a [`Apdu::multiple`] list, in order, as far as the
    /// list parses (`None` where it stops).
    fn each_access(&self, each: &mut dyn FnMut(&Access<'a>)) -> Option<()> {
        let ack = self.pdu_type == 3;
        let write = self.service == Some(service::WRITE_PROPERTY_MULTIPLE);
        let (p, ix) = if ack { (2, 3) } else { (0, 1) };
        let mut t = Tags(self.body);
        while !t.0.is_empty() {
            let object = object_id(t.context(0)?.content)?;
            let mut l = Tags(t.constructed(1)?);
            let mut first = true;
            while !l.0.is_empty() {
                let property = unsigned(l.context(p)?.content)?;
                let index = l.context(ix).and_then(|x| unsigned(x.content));
                let (value, priority) = if ack {
                    let v = l.constructed(4);
                    if v.is_none() {
                        l.constructed(5)?;
                    }
                    (v, None)
                } else if write {
                    let v = l.constructed(2)?;
                    (Some(v), l.context(3).and_then(|x| unsigned(x.content)))
                } else {
                    (None, None)
                };
                each(&Access {
                    first,
                    object,
                    property,
                    index,
                    value,
                    priority,
                });
                first = false;
            }
        }
        Some(())
    }
}

/// Appends the property name (or `property-N`) and `[index]`.
fn property_into(p: u32, index: Option<u32>, out: &mut String) {
    if let Some(n) = property_name(p) {
        out.push_str(n);
    } else {
        out.push_str("property-");
        crate::proto::exchange::push_dec(out, u64::from(p));
    }
    if let Some(i) = index {
        out.push('[');
        crate::proto::exchange::push_dec(out, u64::from(i));
        out.push(']');
    }
}

/// Appends every application value in `b`, joined by ", ".
fn values_into(b: &[u8], out: &mut String) {
    let mut t = Tags(b);
    let mut first = true;
    while let Some(tag) = t.next() {
        if tag.opening || tag.closing {
            continue;
        }
        if !first {
            out.push_str(", ");
        }
        first = false;
        value_into(&tag, out);
    }
}

impl Exchange for Message<'_> {
    fn role(&self) -> Role {
        match self.apdu.map(|a| a.pdu_type) {
            Some(0) => Role::Request,
            Some(2 | 3 | 5 | 6 | 7) => Role::Response,
            Some(1) => Role::Unsolicited,
            _ => Role::Other,
        }
    }

    fn key(&self) -> u32 {
        self.apdu.and_then(|a| a.invoke_id).map_or(0, u32::from)
    }

    fn function(&self) -> u32 {
        if let Some(a) = &self.apdu {
            return match (a.pdu_type, a.service) {
                (1, Some(s)) => UNCONFIRMED + u32::from(s),
                (_, Some(s)) => u32::from(s),
                (t, None) => APDU_ONLY + u32::from(t),
            };
        }
        if let Some(t) = self.npdu.and_then(|n| n.message_type) {
            return NETWORK + u32::from(t);
        }
        BVLC_ONLY + self.bvlc.map_or(0xff, |b| u32::from(b.function))
    }

    fn failure(&self) -> Option<u32> {
        let a = self.apdu?;
        match a.pdu_type {
            5 => Some(
                self.detail
                    .error
                    .map_or(0x00FF_FFFF, |(c, e)| ((c & 0xFF) << 16) | (e & 0xFFFF)),
            ),
            6 => Some(REJECT + u32::from(a.reason?)),
            7 => Some(ABORT + u32::from(a.reason?)),
            _ => None,
        }
    }

    fn is_write(&self) -> bool {
        match self.apdu.map(|a| (a.pdu_type, a.service)) {
            Some((0, Some(s))) => matches!(s, 7..=11 | 15 | 16 | 17 | 20),
            Some((1, Some(10))) => true,
            _ => false,
        }
    }

    fn target(&self, out: &mut String) {
        if let Some(a) = self.apdu.filter(Apdu::multiple) {
            let start = out.len();
            let mut n = 0usize;
            let _ = a.each_access(&mut |x| {
                n += 1;
                if n > TARGET_PROPERTIES {
                    return;
                }
                if x.first {
                    if out.len() > start {
                        out.push_str("; ");
                    }
                    object_into(x.object.0, x.object.1, out);
                    out.push(' ');
                } else {
                    out.push_str(", ");
                }
                property_into(x.property, x.index, out);
            });
            if n > TARGET_PROPERTIES {
                out.push_str(" … (");
                crate::proto::exchange::push_dec(out, n as u64);
                out.push(')');
            }
            if n > 0 {
                return;
            }
        }
        let d = &self.detail;
        if let Some((t, i)) = d.object {
            object_into(t, i, out);
            if let Some(p) = d.property {
                out.push(' ');
                property_into(p, d.array_index, out);
            }
            if let Some((kind, reference, count)) = d.range {
                out.push_str(match kind {
                    3 => " by position ",
                    6 => " by sequence number ",
                    _ => " by time",
                });
                if let Some(r) = reference {
                    crate::proto::exchange::push_dec(out, u64::from(r));
                }
                out.push_str(" count ");
                if count < 0 {
                    out.push('-');
                }
                crate::proto::exchange::push_dec(out, u64::from(count.unsigned_abs()));
            }
            if let Some((process, confirmed, lifetime)) = d.cov {
                out.push_str(" COV process ");
                crate::proto::exchange::push_dec(out, u64::from(process));
                match (confirmed, lifetime) {
                    (None, _) => out.push_str(" cancel"),
                    (Some(c), l) => {
                        out.push_str(if c { " confirmed" } else { " unconfirmed" });
                        if let Some(l) = l.filter(|&l| l > 0) {
                            out.push_str(" lifetime ");
                            crate::proto::exchange::push_dec(out, u64::from(l));
                            out.push_str(" s");
                        }
                    }
                }
            }
        } else if let Some((lo, hi)) = d.who_is {
            let _ = write!(out, "device {lo}-{hi}");
        }
    }

    fn written(&self, out: &mut String) {
        if !self.is_write() {
            return;
        }
        let Some(a) = self.apdu else { return };
        if a.multiple() {
            let start = out.len();
            let _ = a.each_access(&mut |x| {
                if out.len() > start {
                    out.push_str("; ");
                }
                if let Some(v) = x.value {
                    values_into(v, out);
                }
                if let Some(p) = x.priority {
                    let _ = write!(out, " priority {p}");
                }
            });
            if out.len() > start {
                return;
            }
        }
        if let Some((duration, enable)) = self.detail.communication {
            // The password (context tag 2) is never written out.
            out.push_str(enable_disable_name(enable));
            match duration {
                Some(m) if m > 0 => {
                    let _ = write!(out, " for {m} min");
                }
                _ => out.push_str(" indefinitely"),
            }
            return;
        }
        if let Some(state) = self.detail.reinitialize {
            out.push_str(function_name(self.function()));
            out.push(' ');
            out.push_str(reinitialized_state_name(state));
            return;
        }
        if let Some(v) = self.detail.value {
            values_into(v, out);
            if let Some(p) = self.detail.priority {
                let _ = write!(out, " priority {p}");
            }
        } else {
            out.push_str(function_name(self.function()));
            if !a.body.is_empty() {
                out.push(' ');
                values_into(a.body, out);
            }
        }
    }

    fn malformed(&self) -> Option<&'static str> {
        self.malformed
    }

    fn fields(&self, out: &mut Vec<(&'static str, Field)>) {
        if let Some(b) = &self.bvlc {
            out.push(("bvlc_function", Field::U(u64::from(b.function))));
            if let Some(r) = b.result {
                out.push(("bvlc_result", Field::U(u64::from(r))));
            }
        }
        if let Some(n) = &self.npdu {
            out.push(("npdu_control", Field::U(u64::from(n.control))));
            if let Some(x) = n.dnet {
                out.push(("dnet", Field::U(u64::from(x))));
            }
            if let Some(x) = n.snet {
                out.push(("snet", Field::U(u64::from(x))));
            }
            if let Some(x) = n.message_type {
                out.push(("network_message", Field::U(u64::from(x))));
            }
        }
        let Some(a) = &self.apdu else { return };
        out.push(("apdu_type", Field::U(u64::from(a.pdu_type))));
        if let Some(i) = a.invoke_id {
            out.push(("invoke_id", Field::U(u64::from(i))));
        }
        if let Some(s) = a.service {
            let key = if a.pdu_type == 1 {
                "unconfirmed_service"
            } else {
                "confirmed_service"
            };
            out.push((key, Field::U(u64::from(s))));
        }
        let d = &self.detail;
        if d.iam.is_none() {
            if let Some((t, i)) = d.object {
                out.push(("object_type", Field::U(u64::from(t))));
                out.push(("instance", Field::U(u64::from(i))));
            }
        }
        if let Some(p) = d.property {
            out.push(("property", Field::U(u64::from(p))));
        }
        if let Some((c, e)) = d.error {
            out.push(("error_class", Field::U(u64::from(c))));
            out.push(("error_code", Field::U(u64::from(e))));
        }
        match (a.pdu_type, a.reason) {
            (6, Some(r)) => out.push(("reject_reason", Field::U(u64::from(r)))),
            (7, Some(r)) => out.push(("abort_reason", Field::U(u64::from(r)))),
            _ => {}
        }
        if let Some(i) = d.iam {
            out.push(("iam_device", Field::U(u64::from(i.device))));
            out.push(("iam_vendor", Field::U(u64::from(i.vendor))));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bvlc(function: u8, npdu: &[u8]) -> &'static [u8] {
        let mut v = vec![0x81, function, 0, 0];
        v.extend_from_slice(npdu);
        let n = v.len() as u16;
        v[2..4].copy_from_slice(&n.to_be_bytes());
        Box::leak(v.into_boxed_slice())
    }

    #[test]
    fn read_property_and_its_ack_pair() {
        // ReadProperty analog-input,1 present-value, invoke id 7.
        let req = bvlc(
            0x0a,
            &[
                1, 0x04, 0x00, 0x05, 0x07, 0x0c, 0x0c, 0x00, 0x00, 0x00, 0x01, 0x19, 0x55,
            ],
        );
        assert!(udp_message_looks_like_bacnet(req));
        let m = parse_bvlc_message(req);
        assert_eq!(m.malformed(), None);
        assert_eq!(m.role(), Role::Request);
        assert_eq!(m.key(), 7);
        assert_eq!(function_name(m.function()), "readProperty");
        let mut t = String::new();
        m.target(&mut t);
        assert_eq!(t, "analog-input,1 present-value");
        assert!(!m.is_write());
        let ack = bvlc(
            0x0a,
            &[
                1, 0x00, 0x30, 0x07, 0x0c, 0x0c, 0x00, 0x00, 0x00, 0x01, 0x19, 0x55, 0x3e, 0x44,
                0x42, 0x90, 0x00, 0x00, 0x3f,
            ],
        );
        let m = parse_bvlc_message(ack);
        assert_eq!(m.malformed(), None);
        assert_eq!((m.role(), m.key(), m.failure()), (Role::Response, 7, None));
        assert_eq!(m.detail.value, Some(&[0x44, 0x42, 0x90, 0x00, 0x00][..]));
    }

    #[test]
    fn write_property_is_a_write_with_value_and_priority() {
        let req = bvlc(
            0x0a,
            &[
                1, 0x04, 0x00, 0x05, 0x01, 0x0f, 0x0c, 0x00, 0x80, 0x00, 0x03, 0x19, 0x55, 0x3e,
                0x44, 0x42, 0x91, 0x00, 0x00, 0x3f, 0x49, 0x08,
            ],
        );
        let m = parse_bvlc_message(req);
        assert_eq!(m.malformed(), None);
        assert!(m.is_write());
        let (mut t, mut w) = (String::new(), String::new());
        m.target(&mut t);
        m.written(&mut w);
        assert_eq!(t, "analog-value,3 present-value");
        assert_eq!(w, "72.5 priority 8");
    }

    #[test]
    fn multiple_property_services_name_every_property_and_value() {
        // WritePropertyMultiple: analog-value,3 {present-value 72.5 priority 8, description
        // "x"}; binary-value,1 {present-value active}.
        let req = bvlc(
            0x0a,
            &[
                1, 0x04, 0x00, 0x05, 0x02, 0x10, // confirmed, invoke 2, WPM
                0x0c, 0x00, 0x80, 0x00, 0x03, 0x1e, // analog-value,3 [
                0x09, 0x55, 0x2e, 0x44, 0x42, 0x91, 0x00, 0x00, 0x2f, 0x39, 0x08, // pv
                0x09, 0x1c, 0x2e, 0x72, 0x00, b'x', 0x2f, // description
                0x1f, // ]
                0x0c, 0x01, 0x40, 0x00, 0x01, 0x1e, // binary-value,1 [
                0x09, 0x55, 0x2e, 0x91, 0x01, 0x2f, 0x1f,
            ],
        );
        let m = parse_bvlc_message(req);
        assert_eq!(m.malformed(), None);
        assert!(m.is_write());
        let (mut t, mut w) = (String::new(), String::new());
        m.target(&mut t);
        m.written(&mut w);
        assert_eq!(
            t,
            "analog-value,3 present-value, description; binary-value,1 present-value"
        );
        assert_eq!(w, "72.5 priority 8; \"x\"; enumerated 1");
        // ReadPropertyMultiple of 6 properties of one object: the first 4, then the count.
        let mut rpm = vec![1, 0x04, 0x00, 0x05, 0x03, 0x0e, 0x0c, 0x00, 0, 0, 1, 0x1e];
        for p in [85u8, 111, 103, 81, 77, 28] {
            rpm.extend_from_slice(&[0x09, p]);
        }
        rpm.push(0x1f);
        let m = parse_bvlc_message(bvlc(0x0a, &rpm));
        let mut t = String::new();
        m.target(&mut t);
        assert_eq!(
            t,
            "analog-input,1 present-value, status-flags, reliability, out-of-service … (6)"
        );
        assert!(!m.is_write());
    }

    #[test]
    fn subscriptions_ranges_and_device_controls_say_what_they_ask() {
        let text = |npdu: &[u8]| {
            let m = parse_bvlc_message(bvlc(0x0a, npdu));
            assert_eq!(m.malformed(), None, "{npdu:?}");
            let (mut t, mut w) = (String::new(), String::new());
            m.target(&mut t);
            m.written(&mut w);
            (t, w, m.is_write())
        };
        // SubscribeCOV process 18, analog-input,10, unconfirmed, lifetime 300 s.
        let (t, _, write) = text(&[
            1, 4, 0x00, 0x05, 9, 5, 0x09, 18, 0x1c, 0, 0, 0, 10, 0x29, 0, 0x3a, 0x01, 0x2c,
        ]);
        assert_eq!(
            t,
            "analog-input,10 COV process 18 unconfirmed lifetime 300 s"
        );
        assert!(!write);
        // ReadRange trend-log,1 log-buffer by position 1 count -10.
        let (t, _, _) = text(&[
            1, 4, 0x00, 0x05, 10, 26, 0x0c, 0x05, 0, 0, 1, 0x19, 131, 0x3e, 0x21, 1, 0x31, 0xf6,
            0x3f,
        ]);
        assert_eq!(t, "trend-log,1 log-buffer by position 1 count -10");
        // DeviceCommunicationControl disable for 60 minutes, password "secret": not written.
        let (_, w, write) = text(&[
            1, 4, 0x00, 0x05, 11, 17, 0x09, 60, 0x19, 1, 0x2d, 7, 0, b's', b'e', b'c', b'r', b'e',
            b't',
        ]);
        assert!(write);
        assert_eq!(w, "disable for 60 min");
        // ReinitializeDevice warmstart with a password.
        let (_, w, write) = text(&[1, 4, 0x00, 0x05, 12, 20, 0x09, 1, 0x1d, 3, 0, b'p', b'w']);
        assert!(write);
        assert_eq!(w, "reinitializeDevice warmstart");
        assert!(!w.contains("pw"));
    }

    #[test]
    fn errors_rejects_and_aborts_share_the_failure_space() {
        // Error: readProperty, class property (2), code unknown-property (32).
        let m = parse_bvlc_message(bvlc(
            0x0a,
            &[1, 0, 0x50, 0x03, 0x0c, 0x91, 0x02, 0x91, 0x20],
        ));
        assert_eq!(m.failure(), Some((2 << 16) | 32));
        assert_eq!(status_name(m.failure().unwrap()), "unknown-property");
        assert_eq!(error_class_name(2), "property");
        let m = parse_bvlc_message(bvlc(0x0a, &[1, 0, 0x60, 0x03, 0x09]));
        assert_eq!(m.failure(), Some(REJECT + 9));
        assert_eq!(status_name(REJECT + 9), "unrecognized-service");
        let m = parse_bvlc_message(bvlc(0x0a, &[1, 0, 0x71, 0x03, 0x04]));
        assert_eq!(m.failure(), Some(ABORT + 4));
        assert_eq!(status_name(ABORT + 4), "segmentation-not-supported");
        assert_eq!(m.role(), Role::Response);
    }

    #[test]
    fn who_is_and_i_am_and_routing() {
        let m = parse_bvlc_message(bvlc(0x0b, &[1, 0x20, 0xff, 0xff, 0, 0xff, 0x10, 0x08]));
        assert_eq!(m.malformed(), None);
        assert_eq!(m.role(), Role::Unsolicited);
        assert_eq!(function_name(m.function()), "who-Is");
        assert_eq!(m.npdu.unwrap().dnet, Some(0xffff));
        assert_eq!(m.npdu.unwrap().hop_count, Some(255));
        let iam = [
            1, 0x08, 0x00, 0x05, 0x01, 0x22, 0x10, 0x00, 0xc4, 0x02, 0x00, 0x00, 0x64, 0x22, 0x01,
            0xe0, 0x91, 0x00, 0x21, 0x0f,
        ];
        let m = parse_bvlc_message(bvlc(0x0b, &iam));
        assert_eq!(m.malformed(), None);
        assert_eq!(m.npdu.unwrap().snet, Some(5));
        let i = m.iam().unwrap();
        assert_eq!(
            (i.device, i.max_apdu, i.segmentation, i.vendor),
            (100, 480, 0, 15)
        );
        // Forwarded-NPDU carries its origin.
        let mut fwd = vec![192, 168, 1, 2, 0xba, 0xc0];
        fwd.extend_from_slice(&[1, 0, 0x10, 0x08]);
        let m = parse_bvlc_message(bvlc(0x04, &fwd));
        assert_eq!(m.bvlc.unwrap().origin, Some(([192, 168, 1, 2], 47808)));
        assert_eq!(function_name(m.function()), "who-Is");
        // BVLC-Result and a network message.
        let m = parse_bvlc_message(&[0x81, 0x00, 0x00, 0x06, 0x00, 0x30]);
        assert_eq!(m.bvlc.unwrap().result, Some(0x30));
        assert_eq!(bvlc_result_name(0x30), "Register-Foreign-Device NAK");
        assert_eq!(function_name(m.function()), "BVLC-Result");
        assert_eq!(m.role(), Role::Other);
        let m = parse_bvlc_message(bvlc(0x0b, &[1, 0x80, 0x00]));
        assert_eq!(function_name(m.function()), "Who-Is-Router-To-Network");
    }

    #[test]
    fn names_are_tsharks() {
        assert_eq!(confirmed_service_name(14), "readPropertyMultiple");
        assert_eq!(confirmed_service_name(17), "deviceCommunicationControl");
        assert_eq!(confirmed_service_name(20), "reinitializeDevice");
        assert_eq!(unconfirmed_service_name(0), "i-Am");
        assert_eq!(unconfirmed_service_name(8), "who-Is");
        assert_eq!(apdu_type_name(3), "Complex-ACK");
        assert_eq!(bvlc_function_name(0x0a), "Original-Unicast-NPDU");
        assert_eq!(bvlc_function_name(0x04), "Forwarded-NPDU");
        assert_eq!(reject_reason_name(4), "invalid-tag");
        assert_eq!(abort_reason_name(10), "tsm-timeout");
        assert_eq!(property_name(85), Some("present-value"));
        assert_eq!(property_name(77), Some("object-name"));
        assert_eq!(names::lookup(names::OBJECT_TYPES, 8), Some("device"));
        assert_eq!(function_name(UNCONFIRMED + 10), "writeGroup");
        assert_eq!(function_name(APDU_ONLY + 4), "Segment-ACK");
    }

    #[test]
    fn damage_is_named() {
        assert!(parse_bvlc_message(&[0x82, 0x0a, 0, 4])
            .malformed()
            .is_some());
        let cut = bvlc(0x0a, &[1, 4, 0, 5, 7, 0x0c, 0x0c, 0, 0]);
        let m = parse_bvlc_message(cut);
        assert_eq!(m.malformed(), Some(BAD_PARAMS));
        assert_eq!(m.key(), 7, "still paired");
        let mut long = bvlc(0x0a, &[1, 4, 0, 5, 7, 0x0c]).to_vec();
        long[3] += 5;
        assert!(!udp_message_looks_like_bacnet(&long));
        assert!(parse_bvlc_message(&long).malformed().is_some());
        assert!(parse_npdu_message(&[2, 0]).malformed().is_some());
    }

    proptest! {
        #[test]
        fn never_panics(b in proptest::collection::vec(any::<u8>(), 0..120)) {
            let m = parse_bvlc_message(&b);
            let (mut s, mut f) = (String::new(), Vec::new());
            m.target(&mut s);
            m.written(&mut s);
            m.fields(&mut f);
            let _ = (m.role(), m.key(), m.failure(), status_name(m.failure().unwrap_or(0)));
            let m = parse_npdu_message(&b);
            m.target(&mut s);
            m.written(&mut s);
            m.fields(&mut f);
            let _ = mstp::parse_frame(&b);
            let _ = udp_message_looks_like_bacnet(&b);
        }
    }
}
