//! How a transaction and a PDU become a row: the one place their cells are made, for every
//! format of `decode --transactions/--writes/--pdus` (through the one row writer,
//! [`RowWriter`](crate::report::RowWriter)) and for the transaction lists of the summary
//! document ([`tx_object`]).
//!
//! Transaction rows have the columns [`TX_COLUMNS`] in every format; json and jsonl leave out
//! the cells that do not apply (a sparse writer: an OPC UA transaction has no `address`). The
//! table shows [`TX_TABLE`], the columns a person reads first. PDU rows likewise
//! ([`PDU_COLUMNS`], [`PDU_TABLE`]).

use std::fmt::Write as _;

use rustc_hash::FxHashMap;
use serde_json::{json, Map, Value as Json};

use crate::{
    capture::{
        analysis::{Transaction, TxStatus, Written},
        link::Addr,
        DeviceId, PduEvent,
    },
    clock::UtcMicros,
    proto::{
        modbus::{exception::exception_name, pdu::function_name},
        opcua, sanitize,
    },
    report::Cell,
};

/// Columns of a transaction row, in order (also the keys of its json objects).
pub const TX_COLUMNS: [&str; 22] = [
    "time",
    "proto",
    "master",
    "device",
    "id",
    "function",
    "function_name",
    "address",
    "count",
    "write_address",
    "write_count",
    "target",
    "status",
    "exception_code",
    "exception",
    "status_code",
    "response_function",
    "rt_ms",
    "request_frame",
    "response_frame",
    "values",
    "info",
];

/// The columns a table of transactions shows, and their widths.
pub const TX_TABLE: [(&str, usize); 11] = [
    ("time", 27),
    ("master", 21),
    ("device", 21),
    ("id", 5),
    ("function", 3),
    ("function_name", 24),
    ("address", 6),
    ("count", 5),
    ("status", 10),
    ("rt_ms", 9),
    ("info", 0),
];

/// Turns transactions into cells, reusing its buffers row after row. The text of a master's
/// endpoint and of a device is made once and kept (a capture holds few of them, and formatting
/// IP addresses was the largest cost of a row): at most [`TxCells::NAMES`] of each, then the
/// cache starts again.
#[derive(Default)]
pub struct TxCells {
    clock: UtcMicros,
    time: String,
    masters: FxHashMap<(Addr, u16), String>,
    devices: FxHashMap<DeviceId, String>,
    status_code: String,
    values: Json,
    info: String,
}

impl TxCells {
    /// Most endpoint or device texts kept.
    pub const NAMES: usize = 4096;

    /// The cells of `t`, in [`TX_COLUMNS`] order.
    pub fn cells<'a>(&'a mut self, t: &'a Transaction) -> [Cell<'a>; 22] {
        self.time.clear();
        self.clock.write(t.req_ts_ns, &mut self.time);
        let key = (t.master, t.master_port);
        if !self.masters.contains_key(&key) {
            if self.masters.len() >= Self::NAMES {
                self.masters.clear();
            }
            self.masters
                .insert(key, Endpoint(t.master, t.master_port).to_string());
        }
        if !self.devices.contains_key(&t.device) {
            if self.devices.len() >= Self::NAMES {
                self.devices.clear();
            }
            self.devices.insert(t.device, t.device.to_string());
        }
        self.values = t.written.as_ref().map_or(Json::Null, written_value);
        self.status_code.clear();
        self.info.clear();
        match t.status {
            TxStatus::Exception(x) => {
                let _ = write!(self.info, "0x{x:02X} {}", exception_name(x));
            }
            TxStatus::Mismatch(f) => {
                let _ = write!(self.info, "answered with function {f}");
            }
            TxStatus::BadStatus(s) => {
                self.status_code = opcua::status_text(s);
                self.info.push_str(&self.status_code);
            }
            TxStatus::Error(c) => {
                let name = crate::capture::ics::status_name(t.proto, c);
                self.status_code = format!("0x{c:X} {name}");
                if let Some(target) = &t.target {
                    let _ = write!(self.info, "{target}: ");
                }
                self.info.push_str(name);
            }
            _ => {
                if let Some(w) = &t.written {
                    let v = written_text(w);
                    match (t.write, &t.target) {
                        (Some((a, n)), _) => {
                            let _ = write!(self.info, "wrote {v} to {a} (+{n})");
                        }
                        (None, Some(target)) => {
                            let _ = write!(self.info, "wrote {v} to {target}");
                        }
                        (None, None) => {
                            let _ = write!(self.info, "wrote {v}");
                        }
                    }
                } else if t.status == TxStatus::Pending {
                    self.info
                        .push_str("capture ended before an answer could be seen");
                } else if t.status == TxStatus::Held {
                    self.info
                        .push_str("held by the server when the connection ended");
                } else if let Some(target) = &t.target {
                    self.info.push_str(target);
                }
            }
        }
        if self.info.chars().any(char::is_control) {
            self.info = sanitize(&self.info);
        }
        let s: &'a Self = self;
        let u = |v: Option<u64>| v.map_or(Cell::Null, Cell::U);
        let exc = match t.status {
            TxStatus::Exception(x) => Some(x),
            _ => None,
        };
        [
            Cell::Word(&s.time),
            Cell::Word(t.proto.word()),
            Cell::Word(&s.masters[&key]),
            Cell::Word(&s.devices[&t.device]),
            Cell::U(u64::from(t.id)),
            Cell::U(u64::from(t.function)),
            Cell::Word(t.function_name()),
            u(t.address.map(u64::from)),
            u(t.count.map(u64::from)),
            u(t.write.map(|(a, _)| u64::from(a))),
            u(t.write.map(|(_, c)| u64::from(c))),
            t.target.as_deref().map_or(Cell::Null, Cell::Str),
            Cell::Word(t.status.word()),
            u(exc.map(u64::from)),
            exc.map_or(Cell::Null, |x| Cell::Str(exception_name(x))),
            if s.status_code.is_empty() {
                Cell::Null
            } else {
                Cell::Str(&s.status_code)
            },
            match t.status {
                TxStatus::Mismatch(f) => Cell::U(u64::from(f)),
                _ => Cell::Null,
            },
            t.rt_ns().map_or(Cell::Null, |n| Cell::Ms(n as f64 / 1e6)),
            Cell::U(t.req_frame),
            u(t.resp_frame),
            Cell::Json(&s.values),
            if s.info.is_empty() {
                Cell::Null
            } else {
                Cell::Str(&s.info)
            },
        ]
    }
}

/// A transaction as a JSON object with the keys of its row (those that apply), for the
/// summary document's lists of slowest transactions, failures and writes.
pub fn tx_object(t: &Transaction) -> Json {
    TxCells::default().object(t)
}

impl TxCells {
    /// [`tx_object`] with these cells' kept texts (a list of a thousand writes formats each
    /// master, device and clock second once, not a thousand times).
    pub fn object(&mut self, t: &Transaction) -> Json {
        let cells = self.cells(t);
        let mut m = Map::new();
        for (k, c) in TX_COLUMNS.iter().zip(cells) {
            let v = match c {
                Cell::Null | Cell::Json(Json::Null) => continue,
                Cell::Str(s) | Cell::Word(s) => json!(s),
                Cell::Show(d) => json!(d.to_string()),
                Cell::U(v) => json!(v),
                Cell::I(v) => json!(v),
                Cell::Ms(v) => json!((v * 1e3).round() / 1e3),
                Cell::Json(v) => v.clone(),
            };
            m.insert((*k).to_string(), v);
        }
        Json::Object(m)
    }
}

/// The columns a table of PDUs shows, and their widths.
pub const PDU_TABLE: [(&str, usize); 9] = [
    ("frame", 7),
    ("time", 27),
    ("src", 15),
    ("sport", 5),
    ("dst", 15),
    ("dport", 5),
    ("proto", 5),
    ("dir", 8),
    ("info", 0),
];

/// The cells of a PDU row, in [`PDU_COLUMNS`] order (null where a field does not apply).
pub fn pdu_cells(e: &PduEvent<'_>, clock: &mut UtcMicros) -> Vec<Json> {
    let mut m = pdu_object(e, clock);
    m.insert("info".into(), json!(sanitize(&pdu_text(e))));
    PDU_COLUMNS
        .iter()
        .map(|k| m.remove(*k).unwrap_or(Json::Null))
        .collect()
}

/// Columns of a PDU row, in order (json and jsonl carry those that apply to the PDU).
pub const PDU_COLUMNS: [&str; 56] = [
    "frame",
    "time",
    "index",
    "src",
    "sport",
    "dst",
    "dport",
    "proto",
    "dir",
    "device",
    "trans_id",
    "prot_id",
    "mbap_len",
    "unit_id",
    "func_code",
    "exception",
    "exception_code",
    "address",
    "count",
    "write_address",
    "write_count",
    "byte_count",
    "and_mask",
    "or_mask",
    "sub_function",
    "mei",
    "malformed",
    "msg_type",
    "chunk",
    "msg_size",
    "service_id",
    "service",
    "request_handle",
    "service_result",
    "security_policy_uri",
    "nodes",
    "value",
    "registers",
    "crc_ok",
    "channel_id",
    "endpoint",
    "error",
    "reason",
    "token_id",
    "seq",
    "request_id",
    "security_mode",
    "encrypted",
    "function",
    "function_name",
    "role",
    "key",
    "status_code",
    "target",
    "fields",
    "info",
];

/// A PDU's fields by name (those that apply to it), in [`PDU_COLUMNS`] names.
fn pdu_object(e: &PduEvent<'_>, clock: &mut UtcMicros) -> Map<String, Json> {
    let mut m = Map::new();
    let mut time = String::new();
    clock.write(e.ts_ns, &mut time);
    m.insert("frame".into(), json!(e.frame));
    m.insert("time".into(), json!(time));
    m.insert("index".into(), json!(e.index));
    m.insert("src".into(), json!(e.src.to_string()));
    m.insert("sport".into(), json!(e.sport));
    m.insert("dst".into(), json!(e.dst.to_string()));
    m.insert("dport".into(), json!(e.dport));
    m.insert("proto".into(), json!(e.proto.word()));
    m.insert(
        "dir".into(),
        json!(match e.dir {
            crate::proto::modbus::pdu::Direction::Query => "query",
            crate::proto::modbus::pdu::Direction::Response => "response",
        }),
    );
    m.insert("device".into(), json!(e.device.to_string()));
    let mut put = |k: &str, v: Option<Json>| {
        if let Some(v) = v {
            m.insert(k.into(), v);
        }
    };
    if let Some(f) = e.modbus() {
        let p = &f.pdu;
        if let Some(h) = f.mbap {
            put("trans_id", Some(json!(h.trans_id)));
            put("prot_id", Some(json!(h.prot_id)));
            put("mbap_len", Some(json!(h.len)));
        }
        put("unit_id", Some(json!(f.unit)));
        put("func_code", Some(json!(p.fc())));
        put("exception", Some(json!(p.exception.is_some())));
        put("exception_code", p.exception.map(|x| json!(x)));
        put("address", p.address.map(|x| json!(x)));
        put("count", p.count.map(|x| json!(x)));
        put("write_address", p.write_address.map(|x| json!(x)));
        put("write_count", p.write_count.map(|x| json!(x)));
        put("byte_count", p.byte_count.map(|x| json!(x)));
        put("value", p.value.map(|x| json!(x)));
        put("and_mask", p.and_mask.map(|x| json!(x)));
        put("or_mask", p.or_mask.map(|x| json!(x)));
        put("sub_function", p.sub_function.map(|x| json!(x)));
        put("mei", p.mei.map(|x| json!(x)));
        let regs: Vec<u16> = p.registers().collect();
        if !regs.is_empty() {
            put("registers", Some(json!(regs)));
        }
        if let Some(ok) = f.crc_ok {
            put("crc_ok", Some(json!(ok)));
        }
        if p.malformed {
            put("malformed", Some(json!(true)));
        }
    }
    if let Some(o) = e.opcua() {
        put("msg_type", Some(json!(o.msg_type)));
        put("chunk", Some(json!(o.chunk.to_string())));
        put("msg_size", Some(json!(o.size)));
        put("channel_id", o.channel_id.map(|x| json!(x)));
        put("endpoint", o.endpoint.as_ref().map(|x| json!(x)));
        put("error", o.error.map(|x| json!(opcua::status_text(x))));
        put("reason", o.reason.as_ref().map(|x| json!(x)));
        put(
            "security_policy_uri",
            o.policy_uri.as_ref().map(|x| json!(x)),
        );
        put("token_id", o.token_id.map(|x| json!(x)));
        put("seq", o.seq.map(|x| json!(x)));
        put("request_id", o.request_id.map(|x| json!(x)));
        put("service_id", o.service_id.map(|x| json!(x)));
        put("service", o.service().map(|x| json!(x)));
        put("request_handle", o.request_handle.map(|x| json!(x)));
        put(
            "service_result",
            o.service_result.map(|x| json!(opcua::status_text(x))),
        );
        put("security_mode", o.security_mode.map(|x| json!(x)));
        if o.opaque {
            put("encrypted", Some(json!(true)));
        }
        if !o.nodes.is_empty() {
            put(
                "nodes",
                Some(Json::Array(
                    o.nodes
                        .iter()
                        .map(|n| {
                            let mut x = Map::new();
                            if !n.node.is_empty() {
                                x.insert("node".into(), json!(n.node));
                            }
                            if let Some(v) = &n.value {
                                x.insert("value".into(), json!(v));
                            }
                            if let Some(s) = n.status {
                                x.insert("status".into(), json!(opcua::status_text(s)));
                            }
                            Json::Object(x)
                        })
                        .collect(),
                )),
            );
        }
        if o.malformed {
            put("malformed", Some(json!(true)));
        }
    }
    if let Some(x) = e.ics() {
        use crate::proto::exchange::{Field, Role};
        put("function", Some(json!(x.function())));
        put(
            "function_name",
            Some(json!(crate::capture::ics::function_name(
                e.proto,
                x.function()
            ))),
        );
        put(
            "role",
            Some(json!(match x.role() {
                Role::Request => "request",
                Role::Response => "response",
                Role::Unsolicited => "unsolicited",
                Role::Other => "other",
            })),
        );
        put("key", Some(json!(x.key())));
        put(
            "status_code",
            x.failure().map(|c| {
                json!(format!(
                    "0x{c:X} {}",
                    crate::capture::ics::status_name(e.proto, c)
                ))
            }),
        );
        let mut target = String::new();
        x.target(&mut target);
        if !target.is_empty() {
            put("target", Some(json!(sanitize(&target))));
        }
        let mut fields = Vec::new();
        x.fields(&mut fields);
        if !fields.is_empty() {
            // A field named more than once (one per item) becomes a list, in order.
            let mut named: Vec<(&str, Vec<Json>)> = Vec::new();
            for (k, v) in fields {
                let v = match v {
                    Field::U(n) => json!(n),
                    Field::I(n) => json!(n),
                    Field::B(b) => json!(b),
                    Field::S(t) => json!(sanitize(&t)),
                    Field::Hex(b) => {
                        let mut h = String::new();
                        crate::proto::exchange::hex_into(&mut h, &b);
                        json!(h)
                    }
                };
                match named.iter_mut().find(|(n, _)| *n == k) {
                    Some((_, vs)) => vs.push(v),
                    None => named.push((k, vec![v])),
                }
            }
            let f: Map<String, Json> = named
                .into_iter()
                .map(|(k, mut vs)| {
                    let v = if vs.len() == 1 {
                        vs.pop().unwrap_or(Json::Null)
                    } else {
                        Json::Array(vs)
                    };
                    (k.to_string(), v)
                })
                .collect();
            put("fields", Some(Json::Object(f)));
        }
        if x.malformed().is_some() {
            put("malformed", Some(json!(true)));
        }
    }
    m
}

/// A PDU in a few words, as tshark's Info column.
fn pdu_text(e: &PduEvent<'_>) -> String {
    if let Some(f) = e.modbus() {
        let p = &f.pdu;
        let mut s = match f.mbap {
            Some(h) => format!("trans {} unit {} ", h.trans_id, f.unit),
            None => format!("unit {} ", f.unit),
        };
        s.push_str(&format!("fc {} {}", p.fc(), function_name(p.fc())));
        if let Some(x) = p.exception {
            s.push_str(&format!(": exception 0x{x:02X} {}", exception_name(x)));
        }
        if let Some(a) = p.address {
            s.push_str(&format!(" addr {a}"));
        }
        if let Some(c) = p.count {
            s.push_str(&format!(" count {c}"));
        }
        let regs: Vec<String> = p.registers().take(8).map(|r| r.to_string()).collect();
        if !regs.is_empty() {
            s.push_str(&format!(" [{}]", regs.join(" ")));
        }
        if f.crc_ok == Some(false) {
            s.push_str(" CRC ERROR");
        } else if p.malformed {
            s.push_str(" MALFORMED");
        }
        return s;
    }
    if let Some(x) = e.ics() {
        let mut s = format!(
            "{} key {}",
            crate::capture::ics::function_name(e.proto, x.function()),
            x.key()
        );
        let mut target = String::new();
        x.target(&mut target);
        if !target.is_empty() {
            s.push(' ');
            s.push_str(&target);
        }
        if let Some(c) = x.failure() {
            s.push_str(&format!(
                ": 0x{c:X} {}",
                crate::capture::ics::status_name(e.proto, c)
            ));
        }
        if x.is_write() {
            let mut w = String::new();
            x.written(&mut w);
            if !w.is_empty() {
                s.push_str(&format!(" = {w}"));
            }
        }
        if let Some(why) = x.malformed() {
            s.push_str(&format!(" MALFORMED ({why})"));
        }
        return s;
    }
    if let Some(o) = e.opcua() {
        let mut s = format!("{}{} size {}", o.msg_type, o.chunk, o.size);
        if let Some(sv) = o.service() {
            s.push_str(&format!(" {sv}"));
        } else if o.opaque {
            s.push_str(" (encrypted)");
        }
        if let Some(h) = o.request_handle {
            s.push_str(&format!(" handle {h}"));
        }
        if let Some(r) = o.service_result {
            if r != 0 {
                s.push_str(&format!(" {}", opcua::status_text(r)));
            }
        }
        if let Some(u) = &o.policy_uri {
            s.push_str(&format!(" policy {}", u.rsplit('#').next().unwrap_or(u)));
        }
        if let Some(u) = &o.endpoint {
            s.push_str(&format!(" {u}"));
        }
        for n in o.nodes.iter().take(4) {
            s.push_str(&format!(
                " {}{}",
                n.node,
                n.value
                    .as_ref()
                    .map(|v| format!("={v}"))
                    .unwrap_or_default()
            ));
        }
        return s;
    }
    String::new()
}

/// What a write wrote, in a few words (the first 32 values).
fn written_text(w: &Written) -> String {
    match w {
        Written::Modbus(v) => {
            let s: Vec<String> = v.iter().take(32).map(ToString::to_string).collect();
            let more = if v.len() > 32 {
                format!(" … ({} values)", v.len())
            } else {
                String::new()
            };
            format!("[{}]{more}", s.join(","))
        }
        Written::Mask { and, or } => format!("and=0x{and:04X} or=0x{or:04X}"),
        Written::OpcUa(v) => v
            .iter()
            .map(|(n, x)| format!("{n}={x}"))
            .collect::<Vec<_>>()
            .join("; "),
        Written::Raw(h) | Written::Text(h) => h.clone(),
    }
}

/// What a write wrote, as JSON: register values, a mask, OPC UA node values, or raw hex.
fn written_value(w: &Written) -> Json {
    match w {
        Written::Modbus(v) => json!(v),
        Written::Mask { and, or } => json!({"and_mask": and, "or_mask": or}),
        Written::OpcUa(v) => Json::Array(
            v.iter()
                .map(|(n, x)| json!({"node": n, "value": x}))
                .collect(),
        ),
        // A control without values (an S7 PLC stop, a BACnet reinitialize) writes nothing.
        Written::Text(h) if h.is_empty() => Json::Null,
        Written::Raw(h) | Written::Text(h) => json!(h),
    }
}

/// `addr:port`, IPv6 in brackets.
pub struct Endpoint(pub Addr, pub u16);
impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.serial().is_some() {
            // A serial line's master: `ttyUSB1/master`, no port.
            return write!(f, "{}", self.0);
        }
        match self.0.ip() {
            std::net::IpAddr::V4(a) => write!(f, "{a}:{}", self.1),
            std::net::IpAddr::V6(a) => write!(f, "[{a}]:{}", self.1),
        }
    }
}
