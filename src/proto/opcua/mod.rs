//! OPC UA Binary (UA TCP, OPC 10000-6 §7) decoding for captures: the transport messages
//! HEL/ACK/ERR/RHE, secure-channel OPN/CLO/MSG chunks with their security and sequence
//! headers, and for unencrypted bodies the service (by its binary encoding id), the request
//! handle, the service result, and the node ids and values of Read and Write.
//!
//! Encrypted bodies are recognised by not starting with a known service encoding id; what is
//! visible of them (policy, sizes, sequence numbers) is still reported.

pub mod node;
pub mod security;
pub mod variant;

use std::fmt::Write as _;

/// Message types that start a UA TCP message.
pub const MESSAGE_TYPES: [&[u8; 3]; 7] = [b"HEL", b"ACK", b"ERR", b"RHE", b"OPN", b"MSG", b"CLO"];

/// Bytes before the body of a MSG/CLO chunk: message header (8), secure channel id (4), token
/// id (4), sequence number (4), request id (4). A message of several chunks is the first chunk
/// followed by the bodies of the others.
pub const SYMMETRIC_HEADER: usize = 24;

/// Largest chunk size accepted as real (the length field is garbage beyond).
pub const MAX_MESSAGE: usize = 1 << 26;

/// Does `b` start like a UA TCP message (type, chunk flag, sane size)?
#[must_use]
pub fn starts_message(b: &[u8]) -> bool {
    b.len() >= 8
        && MESSAGE_TYPES.iter().any(|t| &b[..3] == *t)
        && matches!(b[3], b'F' | b'C' | b'A')
        && (8..=MAX_MESSAGE).contains(&(u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as usize))
}

/// One UA TCP message (one chunk), decoded as far as it is readable.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Message {
    /// HEL, ACK, ERR, RHE, OPN, MSG, CLO.
    pub msg_type: &'static str,
    /// F (final), C (intermediate), A (abort).
    pub chunk: char,
    /// Size field.
    pub size: u32,
    /// Secure channel id (OPN, MSG, CLO).
    pub channel_id: Option<u32>,
    /// HEL endpoint URL.
    pub endpoint: Option<String>,
    /// ERR code.
    pub error: Option<u32>,
    /// ERR reason.
    pub reason: Option<String>,
    /// OPN security policy URI.
    pub policy_uri: Option<String>,
    /// Symmetric security token id (MSG, CLO).
    pub token_id: Option<u32>,
    /// Sequence number.
    pub seq: Option<u32>,
    /// Request id of the sequence header.
    pub request_id: Option<u32>,
    /// Binary encoding id of the service (e.g. 631 `ReadRequest`), when the body is readable.
    pub service_id: Option<u32>,
    /// Request handle from the request or response header.
    pub request_handle: Option<u32>,
    /// Service result of a response.
    pub service_result: Option<u32>,
    /// `OpenSecureChannelRequest` security mode (1 None, 2 Sign, 3 `SignAndEncrypt`).
    pub security_mode: Option<u32>,
    /// Body not readable: encrypted (or a continuation chunk).
    pub opaque: bool,
    /// Read/Write operations: node id and (Write request, Read response) value.
    pub nodes: Vec<NodeValue>,
    /// Bytes ran out before the structure did.
    pub malformed: bool,
}

/// A node and its value in a Read or Write.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeValue {
    /// Node id in the standard string form (`ns=2;s=Line1.Speed`); empty for a Read response,
    /// whose values match the request's nodes by position.
    pub node: String,
    /// Attribute id (13 = Value).
    pub attribute: Option<u32>,
    /// Value as text.
    pub value: Option<String>,
    /// Status code of the value or of the write.
    pub status: Option<u32>,
}

impl Message {
    /// Service name from the encoding id.
    #[must_use]
    pub fn service(&self) -> Option<&'static str> {
        self.service_id.and_then(service_name)
    }

    /// Is this a request (by its service name)?
    #[must_use]
    pub fn is_request(&self) -> bool {
        self.service().is_some_and(|s| s.ends_with("Request"))
    }
}

struct R<'a> {
    b: &'a [u8],
    at: usize,
}

type Res<T> = Result<T, ()>;

impl<'a> R<'a> {
    fn bytes(&mut self, n: usize) -> Res<&'a [u8]> {
        if n > self.b.len().saturating_sub(self.at) {
            return Err(());
        }
        let r = &self.b[self.at..self.at + n];
        self.at += n;
        Ok(r)
    }
    fn u8(&mut self) -> Res<u8> {
        Ok(self.bytes(1)?[0])
    }
    fn u16(&mut self) -> Res<u16> {
        let b = self.bytes(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Res<u32> {
        let b = self.bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i32(&mut self) -> Res<i32> {
        Ok(self.u32()?.cast_signed())
    }
    fn u64(&mut self) -> Res<u64> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    /// `String` / `ByteString`: i32 length, -1 = null.
    fn bstr(&mut self) -> Res<Option<&'a [u8]>> {
        let n = self.i32()?;
        if n < 0 {
            return Ok(None);
        }
        self.bytes(usize::try_from(n).map_err(|_| ())?).map(Some)
    }
    fn string(&mut self) -> Res<Option<String>> {
        Ok(self
            .bstr()?
            .map(|b| String::from_utf8_lossy(b).into_owned()))
    }
    fn array_len(&mut self) -> Res<usize> {
        let n = self.i32()?;
        let n = usize::try_from(n.max(0)).map_err(|_| ())?;
        // Each element takes at least one byte: a bigger count is garbage.
        if n > self.b.len() - self.at {
            return Err(());
        }
        Ok(n)
    }

    fn node_id(&mut self) -> Res<NodeId> {
        let enc = self.u8()?;
        self.node_id_body(enc & 0x3f)
    }

    fn node_id_body(&mut self, enc: u8) -> Res<NodeId> {
        Ok(match enc {
            0 => NodeId::Numeric(0, u32::from(self.u8()?)),
            1 => {
                let ns = u16::from(self.u8()?);
                NodeId::Numeric(ns, u32::from(self.u16()?))
            }
            2 => {
                let ns = self.u16()?;
                NodeId::Numeric(ns, self.u32()?)
            }
            3 => {
                let ns = self.u16()?;
                NodeId::String(ns, self.string()?.unwrap_or_default())
            }
            4 => {
                let ns = self.u16()?;
                let g = self.bytes(16)?;
                NodeId::Guid(ns, guid(g))
            }
            5 => {
                let ns = self.u16()?;
                NodeId::Opaque(ns, self.bstr()?.map(base64).unwrap_or_default())
            }
            _ => return Err(()),
        })
    }

    fn expanded_node_id(&mut self) -> Res<NodeId> {
        let enc = self.u8()?;
        let id = self.node_id_body(enc & 0x3f)?;
        if enc & 0x80 != 0 {
            self.bstr()?;
        }
        if enc & 0x40 != 0 {
            self.u32()?;
        }
        Ok(id)
    }

    fn extension_object(&mut self) -> Res<()> {
        self.node_id()?;
        let enc = self.u8()?;
        if enc & 0x03 != 0 {
            self.bstr()?;
        }
        Ok(())
    }

    fn diagnostic_info(&mut self, depth: u8) -> Res<()> {
        if depth > 8 {
            return Err(());
        }
        let mask = self.u8()?;
        for bit in [0x01, 0x02, 0x04, 0x08] {
            if mask & bit != 0 {
                self.i32()?;
            }
        }
        if mask & 0x10 != 0 {
            self.bstr()?;
        }
        if mask & 0x20 != 0 {
            self.u32()?;
        }
        if mask & 0x40 != 0 {
            self.diagnostic_info(depth + 1)?;
        }
        Ok(())
    }

    fn qualified_name(&mut self) -> Res<()> {
        self.u16()?;
        self.bstr()?;
        Ok(())
    }

    fn localized_text(&mut self) -> Res<String> {
        let mask = self.u8()?;
        if mask & 1 != 0 {
            self.bstr()?;
        }
        let mut t = String::new();
        if mask & 2 != 0 {
            t = self.string()?.unwrap_or_default();
        }
        Ok(t)
    }

    /// `DataValue` → (value text, status); its timestamps are skipped.
    fn data_value(&mut self, depth: u8) -> Res<(Option<String>, Option<u32>)> {
        let mask = self.u8()?;
        let v = (mask & 0x01 != 0)
            .then(|| self.variant(depth))
            .transpose()?;
        let st = (mask & 0x02 != 0).then(|| self.u32()).transpose()?;
        // Source timestamp and picoseconds, server timestamp and picoseconds, in this order.
        for (bit, len) in [(0x04, 8), (0x10, 2), (0x08, 8), (0x20, 2)] {
            if mask & bit != 0 {
                self.bytes(len)?;
            }
        }
        Ok((v, st))
    }

    /// The `NodeId`, `AttributeId` and `IndexRange` a `ReadValueId` and a `WriteValue` start
    /// with: the node as text and the attribute.
    fn node_attribute(&mut self) -> Res<(String, Option<u32>)> {
        let node = self.node_id()?.to_string();
        let attribute = Some(self.u32()?);
        self.bstr()?;
        Ok((node, attribute))
    }

    /// An array: its length, then `item` that many times, each result added to `out`.
    fn array<T>(&mut self, out: &mut Vec<T>, mut item: impl FnMut(&mut Self) -> Res<T>) -> Res<()> {
        for _ in 0..self.array_len()? {
            out.push(item(self)?);
        }
        Ok(())
    }

    fn variant(&mut self, depth: u8) -> Res<String> {
        if depth > 8 {
            return Err(());
        }
        let enc = self.u8()?;
        let ty = enc & 0x3f;
        if enc & 0x80 != 0 {
            let n = self.i32()?;
            let mut out = String::from("[");
            let count = usize::try_from(n.max(0)).map_err(|_| ())?;
            if count > self.b.len() - self.at {
                return Err(());
            }
            for i in 0..count {
                let s = self.scalar(ty, depth)?;
                if i < 8 {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(&s);
                }
            }
            if count > 8 {
                let _ = write!(out, ", … {count} values");
            }
            out.push(']');
            if enc & 0x40 != 0 {
                let dims = self.array_len()?;
                for _ in 0..dims {
                    self.i32()?;
                }
            }
            return Ok(out);
        }
        self.scalar(ty, depth)
    }

    fn scalar(&mut self, ty: u8, depth: u8) -> Res<String> {
        Ok(match ty {
            0 => "null".into(),
            1 => (self.u8()? != 0).to_string(),
            2 => self.u8()?.cast_signed().to_string(),
            3 => self.u8()?.to_string(),
            4 => self.u16()?.cast_signed().to_string(),
            5 => self.u16()?.to_string(),
            6 => self.i32()?.to_string(),
            7 => self.u32()?.to_string(),
            8 => self.u64()?.cast_signed().to_string(),
            9 => self.u64()?.to_string(),
            10 => f32::from_bits(self.u32()?).to_string(),
            11 => f64::from_bits(self.u64()?).to_string(),
            12 | 16 => format!("{:?}", self.string()?.unwrap_or_default()),
            13 => datetime(self.u64()?.cast_signed()),
            14 => guid(self.bytes(16)?),
            15 => self.bstr()?.map_or_else(|| "null".into(), hex),
            17 => self.node_id()?.to_string(),
            18 => self.expanded_node_id()?.to_string(),
            19 => status_text(self.u32()?),
            20 => {
                self.qualified_name()?;
                "QualifiedName".into()
            }
            21 => format!("{:?}", self.localized_text()?),
            22 => {
                self.extension_object()?;
                "ExtensionObject".into()
            }
            23 => self.data_value(depth + 1)?.0.unwrap_or_default(),
            24 => self.variant(depth + 1)?,
            25 => {
                self.diagnostic_info(0)?;
                "DiagnosticInfo".into()
            }
            _ => return Err(()),
        })
    }
}

/// A node id, printed in the standard string form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeId {
    /// `i=`.
    Numeric(u16, u32),
    /// `s=`.
    String(u16, String),
    /// `g=`.
    Guid(u16, String),
    /// `b=` (base64).
    Opaque(u16, String),
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (ns, kind, v): (u16, char, &dyn std::fmt::Display) = match self {
            NodeId::Numeric(ns, i) => (*ns, 'i', i),
            NodeId::String(ns, s) => (*ns, 's', s),
            NodeId::Guid(ns, g) => (*ns, 'g', g),
            NodeId::Opaque(ns, b) => (*ns, 'b', b),
        };
        if ns == 0 {
            write!(f, "{kind}={v}")
        } else {
            write!(f, "ns={ns};{kind}={v}")
        }
    }
}

fn guid(g: &[u8]) -> String {
    format!(
        "{:08x}-{:04x}-{:04x}-{}-{}",
        u32::from_le_bytes([g[0], g[1], g[2], g[3]]),
        u16::from_le_bytes([g[4], g[5]]),
        u16::from_le_bytes([g[6], g[7]]),
        hex(&g[8..10]),
        hex(&g[10..16])
    )
}

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b.iter().take(64) {
        let _ = write!(s, "{x:02x}");
    }
    if b.len() > 64 {
        s.push('…');
    }
    s
}

fn base64(b: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                s.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// OPC UA `DateTime` (100 ns ticks since 1601) as RFC 3339.
fn datetime(ticks: i64) -> String {
    const EPOCH_DIFF: i64 = 11_644_473_600;
    // humantime formats years 1970..=9999 only (beyond, its Display fails and to_string
    // panics: found by the capture_file fuzz target).
    const LAST_SECOND_OF_9999: i64 = 253_402_300_799;
    if ticks <= 0 {
        return "null".into();
    }
    let secs = ticks / 10_000_000 - EPOCH_DIFF;
    let nanos = u32::try_from((ticks % 10_000_000) * 100).unwrap_or(0);
    match u64::try_from(secs) {
        Ok(s) if secs <= LAST_SECOND_OF_9999 => humantime::format_rfc3339_nanos(
            std::time::UNIX_EPOCH + std::time::Duration::new(s, nanos),
        )
        .to_string(),
        _ => format!("ticks:{ticks}"),
    }
}

/// Decode one complete UA TCP message (`b.len()` = its size field). Never fails: what cannot
/// be read is left `None`, with `malformed` or `opaque` set.
#[must_use]
pub fn decode_message(b: &[u8], with_nodes: bool) -> Message {
    let mut m = Message {
        msg_type: "???",
        chunk: '?',
        ..Message::default()
    };
    if b.len() < 8 {
        m.malformed = true;
        return m;
    }
    m.msg_type = match &b[..3] {
        b"HEL" => "HEL",
        b"ACK" => "ACK",
        b"ERR" => "ERR",
        b"RHE" => "RHE",
        b"OPN" => "OPN",
        b"MSG" => "MSG",
        b"CLO" => "CLO",
        _ => "???",
    };
    m.chunk = b[3] as char;
    m.size = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    let mut r = R { b, at: 8 };
    if body(&mut m, &mut r, with_nodes).is_err() {
        m.malformed = true;
    }
    m
}

fn body(m: &mut Message, r: &mut R<'_>, with_nodes: bool) -> Res<()> {
    match m.msg_type {
        "HEL" => {
            for _ in 0..5 {
                r.u32()?;
            }
            m.endpoint = r.string()?;
        }
        "ACK" => {
            for _ in 0..5 {
                r.u32()?;
            }
        }
        "ERR" => {
            m.error = Some(r.u32()?);
            m.reason = r.string()?;
        }
        "RHE" => {
            r.string()?;
            m.endpoint = r.string()?;
        }
        "OPN" => {
            m.channel_id = Some(r.u32()?);
            let uri = r.string()?.unwrap_or_default();
            r.bstr()?;
            r.bstr()?;
            let encrypted = !uri.is_empty() && !uri.ends_with("#None");
            m.policy_uri = Some(uri);
            if encrypted {
                m.opaque = true;
                return Ok(());
            }
            m.seq = Some(r.u32()?);
            m.request_id = Some(r.u32()?);
            service(m, r, with_nodes)?;
        }
        _ => {
            m.channel_id = Some(r.u32()?);
            m.token_id = Some(r.u32()?);
            m.seq = Some(r.u32()?);
            m.request_id = Some(r.u32()?);
            if m.chunk != 'F' {
                // An intermediate or abort chunk: the message is decoded when its final chunk
                // completes it (see [`SYMMETRIC_HEADER`]).
                return Ok(());
            }
            if !readable(r) {
                // Encrypted (SignAndEncrypt), or a continuation chunk: no service header.
                m.opaque = true;
                return Ok(());
            }
            service(m, r, with_nodes)?;
        }
    }
    Ok(())
}

/// Does the body start with the encoding id of a known service?
fn readable(r: &R<'_>) -> bool {
    let b = &r.b[r.at.min(r.b.len())..];
    match b {
        [0x01, 0x00, lo, hi, ..] => {
            service_name(u32::from(u16::from_le_bytes([*lo, *hi]))).is_some()
        }
        [0x00, id, ..] => service_name(u32::from(*id)).is_some(),
        [0x02, 0x00, 0x00, a, b2, c, d, ..] => {
            service_name(u32::from_le_bytes([*a, *b2, *c, *d])).is_some()
        }
        _ => false,
    }
}

fn service(m: &mut Message, r: &mut R<'_>, with_nodes: bool) -> Res<()> {
    let NodeId::Numeric(0, id) = r.node_id()? else {
        m.opaque = true;
        return Ok(());
    };
    let Some(name) = service_name(id) else {
        m.opaque = true;
        return Ok(());
    };
    m.service_id = Some(id);
    if name.ends_with("Request") {
        // RequestHeader
        r.node_id()?;
        r.u64()?;
        m.request_handle = Some(r.u32()?);
        r.u32()?;
        r.bstr()?;
        r.u32()?;
        r.extension_object()?;
        match id {
            446 => {
                r.u32()?;
                r.u32()?;
                m.security_mode = Some(r.u32()?);
            }
            // ReadRequest: maxAge, timestampsToReturn, then the ReadValueIds.
            631 if with_nodes => {
                r.u64()?;
                r.u32()?;
                r.array(&mut m.nodes, |r| {
                    let (node, attribute) = r.node_attribute()?;
                    r.qualified_name()?;
                    Ok(NodeValue {
                        node,
                        attribute,
                        ..NodeValue::default()
                    })
                })?;
            }
            // WriteRequest: the WriteValues.
            673 if with_nodes => r.array(&mut m.nodes, |r| {
                let (node, attribute) = r.node_attribute()?;
                let (value, status) = r.data_value(0)?;
                Ok(NodeValue {
                    node,
                    attribute,
                    value,
                    status,
                })
            })?,
            _ => {}
        }
    } else {
        // ResponseHeader (also ServiceFault)
        r.u64()?;
        m.request_handle = Some(r.u32()?);
        m.service_result = Some(r.u32()?);
        r.diagnostic_info(0)?;
        let n = r.array_len()?;
        for _ in 0..n {
            r.bstr()?;
        }
        r.extension_object()?;
        match id {
            // ReadResponse: the DataValues.
            634 if with_nodes => r.array(&mut m.nodes, |r| {
                let (value, status) = r.data_value(0)?;
                Ok(NodeValue {
                    value,
                    status,
                    ..NodeValue::default()
                })
            })?,
            // WriteResponse: a status code per WriteValue.
            676 if with_nodes => r.array(&mut m.nodes, |r| {
                let status = Some(r.u32()?);
                Ok(NodeValue {
                    status,
                    ..NodeValue::default()
                })
            })?,
            _ => {}
        }
    }
    Ok(())
}

/// Service name of a binary encoding id (namespace 0), as in the OPC UA NodeIds.csv.
#[must_use]
pub fn service_name(id: u32) -> Option<&'static str> {
    Some(match id {
        397 => "ServiceFault",
        422 => "FindServersRequest",
        425 => "FindServersResponse",
        428 => "GetEndpointsRequest",
        431 => "GetEndpointsResponse",
        437 => "RegisterServerRequest",
        440 => "RegisterServerResponse",
        446 => "OpenSecureChannelRequest",
        449 => "OpenSecureChannelResponse",
        452 => "CloseSecureChannelRequest",
        455 => "CloseSecureChannelResponse",
        461 => "CreateSessionRequest",
        464 => "CreateSessionResponse",
        467 => "ActivateSessionRequest",
        470 => "ActivateSessionResponse",
        473 => "CloseSessionRequest",
        476 => "CloseSessionResponse",
        479 => "CancelRequest",
        482 => "CancelResponse",
        488 => "AddNodesRequest",
        491 => "AddNodesResponse",
        494 => "AddReferencesRequest",
        497 => "AddReferencesResponse",
        500 => "DeleteNodesRequest",
        503 => "DeleteNodesResponse",
        506 => "DeleteReferencesRequest",
        509 => "DeleteReferencesResponse",
        527 => "BrowseRequest",
        530 => "BrowseResponse",
        533 => "BrowseNextRequest",
        536 => "BrowseNextResponse",
        554 => "TranslateBrowsePathsToNodeIdsRequest",
        557 => "TranslateBrowsePathsToNodeIdsResponse",
        560 => "RegisterNodesRequest",
        563 => "RegisterNodesResponse",
        566 => "UnregisterNodesRequest",
        569 => "UnregisterNodesResponse",
        615 => "QueryFirstRequest",
        618 => "QueryFirstResponse",
        621 => "QueryNextRequest",
        624 => "QueryNextResponse",
        631 => "ReadRequest",
        634 => "ReadResponse",
        664 => "HistoryReadRequest",
        667 => "HistoryReadResponse",
        673 => "WriteRequest",
        676 => "WriteResponse",
        700 => "HistoryUpdateRequest",
        703 => "HistoryUpdateResponse",
        712 => "CallRequest",
        715 => "CallResponse",
        751 => "CreateMonitoredItemsRequest",
        754 => "CreateMonitoredItemsResponse",
        763 => "ModifyMonitoredItemsRequest",
        766 => "ModifyMonitoredItemsResponse",
        769 => "SetMonitoringModeRequest",
        772 => "SetMonitoringModeResponse",
        775 => "SetTriggeringRequest",
        778 => "SetTriggeringResponse",
        781 => "DeleteMonitoredItemsRequest",
        784 => "DeleteMonitoredItemsResponse",
        787 => "CreateSubscriptionRequest",
        790 => "CreateSubscriptionResponse",
        793 => "ModifySubscriptionRequest",
        796 => "ModifySubscriptionResponse",
        799 => "SetPublishingModeRequest",
        802 => "SetPublishingModeResponse",
        826 => "PublishRequest",
        829 => "PublishResponse",
        832 => "RepublishRequest",
        835 => "RepublishResponse",
        841 => "TransferSubscriptionsRequest",
        844 => "TransferSubscriptionsResponse",
        847 => "DeleteSubscriptionsRequest",
        850 => "DeleteSubscriptionsResponse",
        12208 => "FindServersOnNetworkRequest",
        12209 => "FindServersOnNetworkResponse",
        12211 => "RegisterServer2Request",
        12212 => "RegisterServer2Response",
        _ => return None,
    })
}

/// Name of a status code (the common ones; others as hex).
#[must_use]
pub fn status_name(code: u32) -> Option<&'static str> {
    Some(match code & 0xffff_0000 {
        0x0000_0000 => "Good",
        0x8001_0000 => "BadUnexpectedError",
        0x8002_0000 => "BadInternalError",
        0x8003_0000 => "BadOutOfMemory",
        0x8004_0000 => "BadResourceUnavailable",
        0x8005_0000 => "BadCommunicationError",
        0x8006_0000 => "BadEncodingError",
        0x8007_0000 => "BadDecodingError",
        0x8008_0000 => "BadEncodingLimitsExceeded",
        0x800A_0000 => "BadTimeout",
        0x800B_0000 => "BadServiceUnsupported",
        0x800C_0000 => "BadShutdown",
        0x800D_0000 => "BadServerNotConnected",
        0x800E_0000 => "BadServerHalted",
        0x800F_0000 => "BadNothingToDo",
        0x8010_0000 => "BadTooManyOperations",
        0x8011_0000 => "BadDataTypeIdUnknown",
        0x8012_0000 => "BadCertificateInvalid",
        0x8013_0000 => "BadSecurityChecksFailed",
        0x8014_0000 => "BadCertificateTimeInvalid",
        0x8017_0000 => "BadCertificateUriInvalid",
        0x801A_0000 => "BadCertificateUntrusted",
        0x801F_0000 => "BadUserAccessDenied",
        0x8020_0000 => "BadIdentityTokenInvalid",
        0x8021_0000 => "BadIdentityTokenRejected",
        0x8022_0000 => "BadSecureChannelIdInvalid",
        0x8023_0000 => "BadInvalidTimestamp",
        0x8024_0000 => "BadNonceInvalid",
        0x8025_0000 => "BadSessionIdInvalid",
        0x8026_0000 => "BadSessionClosed",
        0x8027_0000 => "BadSessionNotActivated",
        0x8028_0000 => "BadSubscriptionIdInvalid",
        0x802A_0000 => "BadRequestHeaderInvalid",
        0x802B_0000 => "BadTimestampsToReturnInvalid",
        0x802C_0000 => "BadRequestCancelledByClient",
        0x8033_0000 => "BadNodeIdInvalid",
        0x8034_0000 => "BadNodeIdUnknown",
        0x8035_0000 => "BadAttributeIdInvalid",
        0x8036_0000 => "BadIndexRangeInvalid",
        0x8037_0000 => "BadIndexRangeNoData",
        0x8038_0000 => "BadDataEncodingInvalid",
        0x803A_0000 => "BadNotReadable",
        0x803B_0000 => "BadNotWritable",
        0x803C_0000 => "BadOutOfRange",
        0x803D_0000 => "BadNotSupported",
        0x803E_0000 => "BadNotFound",
        0x8040_0000 => "BadMonitoringModeInvalid",
        0x8041_0000 => "BadMonitoredItemIdInvalid",
        0x8056_0000 => "BadTooManySessions",
        0x806B_0000 => "BadNoContinuationPoints",
        0x8074_0000 => "BadTypeMismatch",
        0x8075_0000 => "BadMethodInvalid",
        0x8076_0000 => "BadArgumentsMissing",
        0x8077_0000 => "BadTooManySubscriptions",
        0x8078_0000 => "BadTooManyPublishRequests",
        0x8079_0000 => "BadNoSubscription",
        0x807A_0000 => "BadSequenceNumberUnknown",
        0x807D_0000 => "BadTcpServerTooBusy",
        0x807E_0000 => "BadTcpMessageTypeInvalid",
        0x807F_0000 => "BadTcpSecureChannelUnknown",
        0x8080_0000 => "BadTcpMessageTooLarge",
        0x8081_0000 => "BadTcpNotEnoughResources",
        0x8082_0000 => "BadTcpInternalError",
        0x8083_0000 => "BadTcpEndpointUrlInvalid",
        0x8084_0000 => "BadRequestInterrupted",
        0x8085_0000 => "BadRequestTimeout",
        0x8086_0000 => "BadSecureChannelClosed",
        0x8087_0000 => "BadSecureChannelTokenUnknown",
        0x8088_0000 => "BadSequenceNumberInvalid",
        0x80AB_0000 => "BadInvalidArgument",
        0x80AC_0000 => "BadConnectionRejected",
        0x80AD_0000 => "BadDisconnect",
        0x80AE_0000 => "BadConnectionClosed",
        0x80AF_0000 => "BadInvalidState",
        0x80B0_0000 => "BadEndOfStream",
        0x80B8_0000 => "BadMaxConnectionsReached",
        0x4000_0000 => "Uncertain",
        0x8000_0000 => "Bad",
        _ => return None,
    })
}

/// Status code as `Name (0x…)`.
#[must_use]
pub fn status_text(code: u32) -> String {
    match status_name(code) {
        Some(n) => format!("{n} (0x{code:08X})"),
        None => format!("0x{code:08X}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[allow(clippy::trivially_copy_pass_by_ref)]
    fn msg(kind: &[u8; 3], body: &[u8]) -> Vec<u8> {
        let mut v = kind.to_vec();
        v.push(b'F');
        v.extend_from_slice(&u32::try_from(body.len() + 8).unwrap().to_le_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn hello_and_read_request() {
        let mut hel = vec![0u8; 20];
        hel.extend_from_slice(&9i32.to_le_bytes());
        hel.extend_from_slice(b"opc.tcp:/");
        let m = decode_message(&msg(b"HEL", &hel), false);
        assert_eq!(
            (m.msg_type, m.endpoint.as_deref(), m.malformed),
            ("HEL", Some("opc.tcp:/"), false)
        );

        let mut b = Vec::new();
        b.extend_from_slice(&7u32.to_le_bytes()); // channel
        b.extend_from_slice(&1u32.to_le_bytes()); // token
        b.extend_from_slice(&5u32.to_le_bytes()); // seq
        b.extend_from_slice(&3u32.to_le_bytes()); // request id
        b.extend_from_slice(&[1, 0, 0x77, 0x02]); // 631 ReadRequest
        b.extend_from_slice(&[0, 0]); // auth token i=0
        b.extend_from_slice(&0u64.to_le_bytes());
        b.extend_from_slice(&42u32.to_le_bytes()); // handle
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&(-1i32).to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&[0, 0, 0]); // additional header
        b.extend_from_slice(&0u64.to_le_bytes()); // max age
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&1i32.to_le_bytes());
        b.extend_from_slice(&[3, 2, 0]);
        b.extend_from_slice(&5i32.to_le_bytes());
        b.extend_from_slice(b"Speed");
        b.extend_from_slice(&13u32.to_le_bytes());
        b.extend_from_slice(&(-1i32).to_le_bytes());
        b.extend_from_slice(&[0, 0, 0xff, 0xff, 0xff, 0xff]);
        let m = decode_message(&msg(b"MSG", &b), true);
        assert_eq!(m.service(), Some("ReadRequest"));
        assert_eq!(m.request_handle, Some(42));
        assert_eq!(m.nodes[0].node, "ns=2;s=Speed");
        assert!(!m.malformed);
    }

    #[test]
    fn encrypted_body_is_opaque() {
        let mut b = vec![7, 0, 0, 0, 1, 0, 0, 0];
        b.extend_from_slice(&[0x9e; 40]);
        let m = decode_message(&msg(b"MSG", &b), true);
        assert!(m.opaque);
        assert_eq!(m.service_id, None);
    }

    #[test]
    fn datetimes_beyond_year_9999_do_not_panic() {
        // Regression: fuzz crash-2a2d025f (a Write value of type DateTime with huge ticks).
        assert_eq!(datetime(i64::MAX), format!("ticks:{}", i64::MAX));
        assert_eq!(datetime(1), "ticks:1");
        assert_eq!(
            datetime(132_223_104_000_000_000),
            "2020-01-01T00:00:00.000000000Z"
        );
        let mut r = R {
            b: &[13, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
            at: 0,
        };
        assert!(r.variant(0).unwrap().starts_with("ticks:"));
    }

    #[test]
    fn names() {
        assert_eq!(status_text(0x8079_0000), "BadNoSubscription (0x80790000)");
        assert_eq!(NodeId::Numeric(0, 2258).to_string(), "i=2258");
        assert_eq!(base64(b"ab"), "YWI=");
    }

    proptest! {
        #[test]
        fn decode_never_panics(b in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = decode_message(&b, true);
            let _ = starts_message(&b);
        }

        #[test]
        fn structured_garbage_never_panics(kind in 0usize..7, body in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_message(&msg(MESSAGE_TYPES[kind], &body), true);
        }
    }
}
