//! `decode FILE`: read a capture and say who asked what, what answered, how slowly, and which
//! requests failed. Modes: the summary (default), `--transactions`, `--writes`, `--pdus`.
//!
//! Rows stream out as they complete (bounded memory whatever the capture size); jsonl rows
//! are formatted by hand because at millions of rows serde's per-row maps dominate the time.
//!
//! Exit codes: 0 decoded; 1 the capture is truncated or packets of decoded flows were cut by
//! the snaplen (decoded as far as they go); 3 not a capture or unreadable.

use std::{
    io::{self, BufWriter, Write},
    path::Path,
};

use serde_json::{json, Map, Value as Json};

use super::{Ctx, Outcome};
use crate::{
    capture::{
        analysis::{Analysis, Emit, Transaction, TxStatus, Written},
        link::Addr,
        reader::{self, ReadStats},
        Config, Decoder, DeviceFilter, Health, PduEvent, Proto,
    },
    cli::CaptureArgs,
    proto::{
        modbus::{exception::exception_name, pdu::function_name},
        opcua,
    },
    report::{envelope, write_rows, Format, Rows},
};

/// What rows to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The summary at the end (no rows).
    Summary,
    /// One row per transaction.
    Transactions,
    /// One row per write.
    Writes,
    /// One row per PDU / message.
    Pdus,
}

/// Run `decode`.
pub fn run(ctx: &Ctx, args: &CaptureArgs) -> anyhow::Result<Outcome> {
    let mode = if args.transactions {
        Mode::Transactions
    } else if args.writes {
        Mode::Writes
    } else if args.pdus {
        Mode::Pdus
    } else {
        Mode::Summary
    };
    let filter = args
        .device
        .as_deref()
        .map(DeviceFilter::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--device {e}"))?;
    let mut cfg = Config {
        opcua_nodes: true,
        detect: !args.no_detect,
        ..Config::default()
    };
    cfg.modbus_ports.extend(&args.modbus_port);
    cfg.rtu_ports.extend(&args.rtu_port);
    cfg.opcua_ports.extend(&args.opcua_port);
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let result = decode_file(ctx, &args.file, cfg, filter, mode, &mut out);
    let done = match result {
        Ok(d) => d,
        Err(e) if is_broken_pipe(&e) => return Ok(Outcome::Ok),
        Err(e) => return Err(e),
    };
    if mode == Mode::Summary {
        let doc = summary_doc(&args.file, &done);
        match ctx.format {
            Format::Json => {
                serde_json::to_writer_pretty(&mut out, &doc)?;
                writeln!(out)?;
            }
            Format::Jsonl | Format::Csv => {
                write_rows(&mut out, ctx.format, &device_rows(&doc), false)?;
            }
            _ if ctx.quiet => {
                // -q: one line, and only when the capture shows a problem.
                if doc["verdict"] != "OK" {
                    writeln!(
                        out,
                        "{}: {}",
                        args.file.display(),
                        doc["summary"].as_str().unwrap_or("")
                    )?;
                }
            }
            _ => write_summary_table(&mut out, &doc, ctx)?,
        }
        if let Some(path) = &args.results {
            crate::fsutil::write_atomic(path, serde_json::to_string_pretty(&doc)?.as_bytes())?;
        }
    }
    match out.flush() {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(Outcome::Ok),
        r => r?,
    }
    let outcome = if done.stats.truncated.is_some() || done.health.cut_segments > 0 {
        if let Some(t) = &done.stats.truncated {
            super::warn(format!(
                "{}: capture truncated: {t}; decoded up to there",
                args.file.display()
            ));
        }
        if done.health.cut_segments > 0 {
            super::warn(format!(
                "{}: {} packets of decoded flows were cut short (the capture's snaplen, or an IP length larger than the packet); their PDUs are incomplete or missing",
                args.file.display(),
                done.health.cut_segments
            ));
        }
        Outcome::Warning
    } else {
        Outcome::Ok
    };
    Ok(outcome)
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

/// Everything a decode run found.
pub struct Decoded {
    /// Reader statistics.
    pub stats: ReadStats,
    /// Decoder counters.
    pub health: Health,
    /// Summary material.
    pub summary: SummaryData,
}

/// The parts of the analysis a summary shows (owned, after the run).
pub struct SummaryData {
    devices: Vec<crate::capture::analysis::DeviceStats>,
    polls: Vec<(
        crate::capture::analysis::PollKey,
        crate::capture::analysis::PollStats,
    )>,
    polls_dropped: u64,
    slowest: Vec<Transaction>,
    writes: Vec<Transaction>,
    writes_total: u64,
    failures: Vec<Transaction>,
    failures_total: u64,
    malformed: Vec<crate::capture::analysis::MalformedPdu>,
    modbus_pdus: u64,
    opcua_msgs: u64,
    opcua: crate::capture::analysis::OpcUaTotals,
    span_ns: Option<(i64, i64)>,
}

/// Decode `path`, streaming rows of `mode` to `out`.
///
/// # Errors
/// The file is not a capture, or writing fails.
pub fn decode_file(
    ctx: &Ctx,
    path: &Path,
    cfg: Config,
    filter: Option<DeviceFilter>,
    mode: Mode,
    out: &mut dyn Write,
) -> anyhow::Result<Decoded> {
    let size = std::fs::metadata(path).map_or(0, |m| m.len());
    let pb = ctx.progress_bar(size, "decoding");
    let mut rows = RowWriter::new(out, ctx.format, mode);
    let mut decoder = Decoder::new(cfg);
    let mut an = Analysis::new(filter, &mut rows);
    an.want_pdus = mode == Mode::Pdus;
    an.want_tx = mode == Mode::Transactions;
    let mut seen = 0u64;
    let stats = reader::for_each_packet_threaded(path, |p| {
        decoder.packet(p, &mut an);
        seen += p.data.len() as u64 + 16;
        if p.frame.trailing_zeros() >= 16 {
            pb.set_position(seen.min(size));
        }
    })?;
    decoder.finish(&mut an);
    an.finish();
    pb.finish_and_clear();
    let summary = SummaryData {
        devices: std::mem::take(&mut an.devices),
        polls: {
            // The busiest series first; the summary keeps the first KEEP.
            let mut v: Vec<_> = an.polls().to_vec();
            let keep = crate::capture::analysis::KEEP.min(v.len());
            if keep > 0 && keep < v.len() {
                v.select_nth_unstable_by(keep - 1, |a, b| b.1.n.cmp(&a.1.n));
                v.truncate(keep);
            }
            v.sort_by(|a, b| b.1.n.cmp(&a.1.n).then(a.0.cmp(&b.0)));
            v
        },
        polls_dropped: an.polls_dropped,
        slowest: an.slowest(),
        writes: std::mem::take(&mut an.writes),
        writes_total: an.writes_total,
        failures: std::mem::take(&mut an.failures),
        failures_total: an.failures_total,
        malformed: std::mem::take(&mut an.malformed),
        modbus_pdus: an.modbus_pdus,
        opcua_msgs: an.opcua_msgs,
        opcua: std::mem::take(&mut an.opcua),
        span_ns: an.span_ns,
    };
    drop(an);
    rows.end()?;
    Ok(Decoded {
        stats,
        health: decoder.health,
        summary,
    })
}

/// Row writer: transactions, writes or PDUs as they come, in the chosen format.
struct RowWriter<'w> {
    w: &'w mut dyn Write,
    format: Format,
    mode: Mode,
    line: Vec<u8>,
    rows: u64,
    err: Option<io::Error>,
    clock: Clock,
}

const TX_COLUMNS: [&str; 16] = [
    "time",
    "proto",
    "master",
    "device",
    "id",
    "function",
    "function_name",
    "address",
    "count",
    "status",
    "exception_code",
    "exception",
    "rt_ms",
    "request_frame",
    "response_frame",
    "values",
];

impl<'w> RowWriter<'w> {
    fn new(w: &'w mut dyn Write, format: Format, mode: Mode) -> Self {
        RowWriter {
            w,
            format,
            mode,
            line: Vec::with_capacity(512),
            rows: 0,
            err: None,
            clock: Clock::default(),
        }
    }

    fn put(&mut self) {
        if self.err.is_none() {
            if let Err(e) = self.w.write_all(&self.line) {
                self.err = Some(e);
            }
        }
        self.line.clear();
        self.rows += 1;
    }

    fn begin_row(&mut self) {
        if self.rows == 0 {
            match (self.format, self.mode) {
                (Format::Json, _) => self.line.extend_from_slice(b"[\n"),
                (Format::Csv, Mode::Pdus) => self
                    .line
                    .extend_from_slice(PDU_COLUMNS.join(",").as_bytes()),
                (Format::Csv, _) => self.line.extend_from_slice(TX_COLUMNS.join(",").as_bytes()),
                (Format::Table | Format::Nagios, Mode::Pdus) => {
                    let _ = write!(
                        self.line,
                        "{:>7}  {:<26}  {:<22} {:<22} {:<5} {:<8} content",
                        "frame", "time", "from", "to", "proto", "dir"
                    );
                }
                (Format::Table | Format::Nagios, _) => {
                    let _ = write!(
                        self.line,
                        "{:<26}  {:<22} {:<22} {:>5}  {:<30} {:>6} {:>5}  {:<10} {:>9}  detail",
                        "time",
                        "master",
                        "device",
                        "id",
                        "function",
                        "addr",
                        "count",
                        "status",
                        "rt_ms"
                    );
                }
                _ => {}
            }
            if matches!(self.format, Format::Csv | Format::Table | Format::Nagios) {
                self.line.push(b'\n');
            }
        } else if self.format == Format::Json {
            self.line.extend_from_slice(b",\n");
        }
    }

    fn end(mut self) -> io::Result<()> {
        if self.format == Format::Json && self.mode != Mode::Summary {
            if self.rows == 0 {
                self.line.extend_from_slice(b"[\n");
            }
            self.line.extend_from_slice(b"\n]\n");
            self.put();
        }
        match self.err.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn tx_row(&mut self, t: &Transaction) {
        self.begin_row();
        let exc = match t.status {
            TxStatus::Exception(x) => Some(x),
            _ => None,
        };
        let rt_ms = t.rt_ns().map(|n| n as f64 / 1e6);
        let values = t.written.as_ref().map(written_text);
        match self.format {
            Format::Jsonl | Format::Json => {
                let l = &mut self.line;
                l.extend_from_slice(b"{\"time\":\"");
                self.clock.rfc3339(t.req_ts_ns, l);
                l.extend_from_slice(b"\",\"proto\":\"");
                l.extend_from_slice(proto_word(t.proto).as_bytes());
                l.extend_from_slice(b"\",\"master\":\"");
                let _ = write!(l, "{}", Endpoint(t.master, t.master_port));
                l.extend_from_slice(b"\",\"device\":\"");
                let _ = write!(l, "{}", t.device);
                l.extend_from_slice(b"\",\"id\":");
                num(l, u64::from(t.id));
                l.extend_from_slice(b",\"function\":");
                num(l, u64::from(t.function));
                l.extend_from_slice(b",\"function_name\":\"");
                l.extend_from_slice(t.function_name().as_bytes());
                l.push(b'"');
                if let Some(a) = t.address {
                    l.extend_from_slice(b",\"address\":");
                    num(l, u64::from(a));
                }
                if let Some(c) = t.count {
                    l.extend_from_slice(b",\"count\":");
                    num(l, u64::from(c));
                }
                if let Some((a, c)) = t.write {
                    l.extend_from_slice(b",\"write_address\":");
                    num(l, u64::from(a));
                    l.extend_from_slice(b",\"write_count\":");
                    num(l, u64::from(c));
                }
                l.extend_from_slice(b",\"status\":\"");
                l.extend_from_slice(t.status.word().as_bytes());
                l.push(b'"');
                if let Some(x) = exc {
                    l.extend_from_slice(b",\"exception_code\":");
                    num(l, u64::from(x));
                    l.extend_from_slice(b",\"exception\":\"");
                    l.extend_from_slice(exception_name(x).as_bytes());
                    l.push(b'"');
                }
                if let TxStatus::BadStatus(s) = t.status {
                    l.extend_from_slice(b",\"status_code\":");
                    json_str(l, &opcua::status_text(s));
                }
                if let TxStatus::Mismatch(f) = t.status {
                    l.extend_from_slice(b",\"response_function\":");
                    num(l, u64::from(f));
                }
                if let Some(ns) = t.rt_ns() {
                    l.extend_from_slice(b",\"rt_ms\":");
                    let _ = write!(l, "{:.3}", ns as f64 / 1e6);
                }
                l.extend_from_slice(b",\"request_frame\":");
                num(l, t.req_frame);
                if let Some(f) = t.resp_frame {
                    l.extend_from_slice(b",\"response_frame\":");
                    num(l, f);
                }
                if let Some(v) = &t.written {
                    l.extend_from_slice(b",\"values\":");
                    written_json(l, v);
                }
                l.push(b'}');
                if self.format == Format::Jsonl {
                    l.push(b'\n');
                }
            }
            Format::Csv => {
                let mut c = csv::WriterBuilder::new()
                    .has_headers(false)
                    .from_writer(Vec::new());
                let mut time = Vec::new();
                self.clock.rfc3339(t.req_ts_ns, &mut time);
                let rec: [String; 16] = [
                    String::from_utf8_lossy(&time).into_owned(),
                    proto_word(t.proto).into(),
                    Endpoint(t.master, t.master_port).to_string(),
                    t.device.to_string(),
                    t.id.to_string(),
                    t.function.to_string(),
                    t.function_name().into(),
                    opt(t.address),
                    opt(t.count),
                    t.status.word().into(),
                    opt(exc),
                    exc.map(exception_name).unwrap_or_default().into(),
                    rt_ms.map(|v| format!("{v:.3}")).unwrap_or_default(),
                    t.req_frame.to_string(),
                    opt(t.resp_frame),
                    values.clone().unwrap_or_default(),
                ];
                let _ = c.write_record(&rec);
                if let Ok(b) = c.into_inner() {
                    self.line.extend_from_slice(&b);
                }
            }
            _ => {
                let mut time = Vec::new();
                self.clock.rfc3339(t.req_ts_ns, &mut time);
                let detail = match (t.status, &values) {
                    (TxStatus::Exception(x), _) => format!("0x{x:02X} {}", exception_name(x)),
                    (TxStatus::Mismatch(f), _) => format!("answered with function {f}"),
                    (TxStatus::BadStatus(s), _) => opcua::status_text(s),
                    (_, Some(v)) => match t.write {
                        Some((a, n)) => format!("wrote {v} to {a} (+{n})"),
                        None => format!("wrote {v}"),
                    },
                    _ => String::new(),
                };
                let _ = writeln!(
                    self.line,
                    "{:<26}  {:<22} {:<22} {:>5}  {:<30} {:>6} {:>5}  {:<10} {:>9}  {}",
                    String::from_utf8_lossy(&time),
                    Endpoint(t.master, t.master_port).to_string(),
                    t.device.to_string(),
                    t.id,
                    format!("{} {}", t.function, t.function_name()),
                    opt(t.address),
                    opt(t.count),
                    t.status.word(),
                    rt_ms.map(|v| format!("{v:.3}")).unwrap_or_default(),
                    sanitize(&detail)
                );
            }
        }
        self.put();
    }

    fn pdu_row(&mut self, e: &PduEvent<'_>) {
        self.begin_row();
        let m = pdu_object(e, &mut self.clock);
        match self.format {
            Format::Jsonl | Format::Json => {
                let _ = serde_json::to_writer(&mut self.line, &Json::Object(m));
                if self.format == Format::Jsonl {
                    self.line.push(b'\n');
                }
            }
            Format::Csv => {
                let mut c = csv::WriterBuilder::new()
                    .has_headers(false)
                    .from_writer(Vec::new());
                let rec: Vec<String> = PDU_COLUMNS
                    .iter()
                    .map(|k| m.get(*k).map(crate::report::cell_text).unwrap_or_default())
                    .collect();
                let _ = c.write_record(&rec);
                if let Ok(b) = c.into_inner() {
                    self.line.extend_from_slice(&b);
                }
            }
            _ => {
                let content = pdu_text(e);
                let _ = writeln!(
                    self.line,
                    "{:>7}  {:<26}  {:<22} {:<22} {:<5} {:<8} {}",
                    e.frame,
                    m.get("time").and_then(Json::as_str).unwrap_or(""),
                    Endpoint(e.src, e.sport).to_string(),
                    Endpoint(e.dst, e.dport).to_string(),
                    match e.proto {
                        Proto::ModbusTcp => "mbtcp",
                        Proto::RtuOverTcp => "rtu",
                        Proto::OpcUa => "opcua",
                    },
                    match e.dir {
                        crate::proto::modbus::pdu::Direction::Query => "query",
                        crate::proto::modbus::pdu::Direction::Response => "response",
                    },
                    sanitize(&content)
                );
            }
        }
        self.put();
    }
}

impl Emit for RowWriter<'_> {
    fn transaction(&mut self, t: &Transaction) {
        match self.mode {
            Mode::Transactions => self.tx_row(t),
            Mode::Writes if t.written.is_some() => self.tx_row(t),
            _ => {}
        }
    }

    fn pdu(&mut self, e: &PduEvent<'_>) {
        if self.mode == Mode::Pdus {
            self.pdu_row(e);
        }
    }
}

/// Columns of `--pdus` (csv; json/jsonl carry the keys that have a value).
const PDU_COLUMNS: [&str; 36] = [
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
];

fn pdu_object(e: &PduEvent<'_>, clock: &mut Clock) -> Map<String, Json> {
    let mut m = Map::new();
    let mut time = Vec::new();
    clock.rfc3339(e.ts_ns, &mut time);
    m.insert("frame".into(), json!(e.frame));
    m.insert("time".into(), json!(String::from_utf8_lossy(&time)));
    m.insert("index".into(), json!(e.index));
    m.insert("src".into(), json!(e.src.to_string()));
    m.insert("sport".into(), json!(e.sport));
    m.insert("dst".into(), json!(e.dst.to_string()));
    m.insert("dport".into(), json!(e.dport));
    m.insert("proto".into(), json!(proto_word(e.proto)));
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
    if let Some(f) = &e.modbus {
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
    if let Some(o) = e.opcua {
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
    m
}

fn pdu_text(e: &PduEvent<'_>) -> String {
    if let Some(f) = &e.modbus {
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
    if let Some(o) = e.opcua {
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

/// Escape control characters of device-supplied text before it reaches a terminal.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

fn proto_word(p: Proto) -> &'static str {
    match p {
        Proto::ModbusTcp => "modbus-tcp",
        Proto::RtuOverTcp => "modbus-rtu-over-tcp",
        Proto::OpcUa => "opcua",
    }
}

fn num(l: &mut Vec<u8>, v: u64) {
    let mut b = itoa::Buffer::new();
    l.extend_from_slice(b.format(v).as_bytes());
}

fn json_str(l: &mut Vec<u8>, s: &str) {
    let _ = serde_json::to_writer(&mut *l, s);
}

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
        Written::Raw(h) => h.clone(),
    }
}

fn written_json(l: &mut Vec<u8>, w: &Written) {
    match w {
        Written::Modbus(v) => {
            l.push(b'[');
            for (i, x) in v.iter().enumerate() {
                if i > 0 {
                    l.push(b',');
                }
                num(l, u64::from(*x));
            }
            l.push(b']');
        }
        Written::Mask { and, or } => {
            let _ = write!(l, "{{\"and_mask\":{and},\"or_mask\":{or}}}");
        }
        Written::OpcUa(v) => {
            let arr: Vec<Json> = v
                .iter()
                .map(|(n, x)| json!({"node": n, "value": x}))
                .collect();
            let _ = serde_json::to_writer(&mut *l, &arr);
        }
        Written::Raw(h) => json_str(l, h),
    }
}

/// `addr:port`, IPv6 in brackets.
struct Endpoint(Addr, u16);
impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.ip() {
            std::net::IpAddr::V4(a) => write!(f, "{a}:{}", self.1),
            std::net::IpAddr::V6(a) => write!(f, "[{a}]:{}", self.1),
        }
    }
}

/// RFC 3339 UTC with microseconds, caching the date and time of the last second.
#[derive(Default)]
struct Clock {
    sec: i64,
    text: Vec<u8>,
}

impl Clock {
    fn rfc3339(&mut self, ts_ns: i64, out: &mut Vec<u8>) {
        let sec = ts_ns.div_euclid(1_000_000_000);
        let us = ts_ns.rem_euclid(1_000_000_000) / 1000;
        if self.text.is_empty() || sec != self.sec {
            self.sec = sec;
            self.text.clear();
            let days = sec.div_euclid(86_400);
            let rem = sec.rem_euclid(86_400);
            let (y, mo, d) = civil_from_days(days);
            let _ = write!(
                self.text,
                "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}",
                rem / 3600,
                rem / 60 % 60,
                rem % 60
            );
        }
        out.extend_from_slice(&self.text);
        let _ = write!(out, ".{us:06}Z");
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn ms(ns: Option<u64>) -> Json {
    ns.map_or(Json::Null, |n| json!((n as f64 / 1e3).round() / 1e3))
}

fn time_text(ns: i64) -> String {
    let mut c = Clock::default();
    let mut v = Vec::new();
    c.rfc3339(ns, &mut v);
    String::from_utf8_lossy(&v).into_owned()
}

fn tx_json(t: &Transaction) -> Json {
    let mut m = Map::new();
    m.insert("time".into(), json!(time_text(t.req_ts_ns)));
    m.insert("proto".into(), json!(proto_word(t.proto)));
    m.insert(
        "master".into(),
        json!(Endpoint(t.master, t.master_port).to_string()),
    );
    m.insert("device".into(), json!(t.device.to_string()));
    m.insert("id".into(), json!(t.id));
    m.insert("function".into(), json!(t.function));
    m.insert("function_name".into(), json!(t.function_name()));
    if let Some(a) = t.address {
        m.insert("address".into(), json!(a));
    }
    if let Some(c) = t.count {
        m.insert("count".into(), json!(c));
    }
    if let Some((a, c)) = t.write {
        m.insert("write_address".into(), json!(a));
        m.insert("write_count".into(), json!(c));
    }
    m.insert("status".into(), json!(t.status.word()));
    match t.status {
        TxStatus::Mismatch(f) => {
            m.insert("response_function".into(), json!(f));
        }
        TxStatus::Exception(x) => {
            m.insert("exception_code".into(), json!(x));
            m.insert("exception".into(), json!(exception_name(x)));
        }
        TxStatus::BadStatus(s) => {
            m.insert("status_code".into(), json!(opcua::status_text(s)));
        }
        _ => {}
    }
    if let Some(rt) = t.rt_ns() {
        m.insert("rt_ms".into(), json!((rt as f64 / 1e3).round() / 1e3));
    }
    m.insert("request_frame".into(), json!(t.req_frame));
    if let Some(f) = t.resp_frame {
        m.insert("response_frame".into(), json!(f));
    }
    if let Some(w) = &t.written {
        let mut l = Vec::new();
        written_json(&mut l, w);
        m.insert(
            "values".into(),
            serde_json::from_slice(&l).unwrap_or(Json::Null),
        );
    }
    Json::Object(m)
}

/// The summary as a `plcprobe.results/1` document of kind `decode` (input for `report`).
#[must_use]
pub fn summary_doc(file: &Path, d: &Decoded) -> Json {
    let s = &d.summary;
    let mut doc = envelope("decode");
    doc.insert("file".into(), json!(file.display().to_string()));
    doc.insert(
        "capture".into(),
        json!({
            "format": d.stats.format,
            "packets": d.stats.packets,
            "bytes": d.stats.bytes,
            "snapped_packets": d.stats.snapped,
            "truncated": d.stats.truncated,
            "first": s.span_ns.map(|x| time_text(x.0)),
            "last": s.span_ns.map(|x| time_text(x.1)),
            "seconds": s.span_ns.map(|x| (x.1 - x.0) as f64 / 1e9),
        }),
    );
    let mut totals = json!({
        "modbus_pdus": s.modbus_pdus,
        "opcua_messages": s.opcua_msgs,
        "transactions": s.devices.iter().map(|x| x.answered).sum::<u64>(),
        "exceptions": s.devices.iter().map(|x| x.exceptions.iter().map(|e| e.1).sum::<u64>()).sum::<u64>(),
        "bad_status": s.devices.iter().map(|x| x.bad_status.iter().map(|e| e.1).sum::<u64>()).sum::<u64>(),
        "unanswered": s.devices.iter().map(|x| x.unanswered).sum::<u64>(),
        "malformed": s.devices.iter().map(|x| x.malformed).sum::<u64>(),
        "writes": s.writes_total,
        "failed": s.failures_total,
        "devices": s.devices.len(),
    });
    let verdict = if totals["exceptions"].as_u64().unwrap_or(0)
        + totals["unanswered"].as_u64().unwrap_or(0)
        + totals["bad_status"].as_u64().unwrap_or(0)
        > 0
    {
        "problems seen"
    } else if s.modbus_pdus + s.opcua_msgs == 0 {
        "no Modbus or OPC UA traffic"
    } else {
        "clean"
    };
    totals["verdict"] = json!(verdict);
    // For a report: a capture that shows failed requests, or is damaged, is a WARNING.
    let failed = totals["failed"].as_u64().unwrap_or(0);
    let damaged = d.stats.truncated.is_some() || d.health.cut_segments > 0;
    doc.insert(
        "verdict".into(),
        json!(
            if failed > 0 || damaged || totals["malformed"].as_u64().unwrap_or(0) > 0 {
                "WARNING"
            } else {
                "OK"
            }
        ),
    );
    doc.insert(
        "summary".into(),
        json!(format!(
            "{} devices; {} transactions, {} failed ({} exceptions, {} bad status, {} unanswered), {} malformed, {} writes{}",
            totals["devices"], totals["transactions"], failed, totals["exceptions"], totals["bad_status"],
            totals["unanswered"], totals["malformed"], totals["writes"],
            if damaged { "; capture damaged or cut" } else { "" }
        )),
    );
    doc.insert("totals".into(), totals);
    let devices: Vec<Json> = s
        .devices
        .iter()
        .map(|x| {
            json!({
                "device": x.id.to_string(),
                "proto": proto_word(x.proto),
                "requests": x.requests,
                "responses": x.responses,
                "answered": x.answered,
                "exceptions": x.exceptions.iter().map(|(c, n)| json!({"code": c, "name": exception_name(*c), "count": n})).collect::<Vec<_>>(),
                "bad_status": x.bad_status.iter().map(|(c, n)| json!({"code": format!("0x{c:08X}"), "name": opcua::status_name(*c), "count": n})).collect::<Vec<_>>(),
                "unanswered": x.unanswered,
                "publish_requests_parked_at_end": x.parked_publish,
                "responses_without_request": x.unmatched_responses,
                "malformed": x.malformed,
                "duplicate_ids": x.duplicate_ids,
                "writes": x.writes,
                "functions": x.functions.iter().map(|(f, n)| json!({
                    "function": f,
                    "name": if x.proto == Proto::OpcUa { opcua::service_name(*f).unwrap_or("unknown") } else { function_name(u8::try_from(*f).unwrap_or(0)) },
                    "requests": n})).collect::<Vec<_>>(),
                "rt_ms": {
                    "min": ms(x.rt.min()), "p50": ms(x.rt.quantile(0.5)),
                    "p95": ms(x.rt.quantile(0.95)), "max": ms(x.rt.max()),
                },
                "masters": x.masters.iter().map(ToString::to_string).collect::<Vec<_>>(),
            })
        })
        .collect();
    doc.insert("devices".into(), Json::Array(devices));
    let polling: Vec<Json> = s
        .polls
        .iter()
        .filter(|(_, p)| p.n > 1)
        .take(crate::capture::analysis::KEEP)
        .map(|(k, p)| {
            json!({
                "master": k.master.to_string(),
                "device": s.devices.get(k.device as usize).map(|d| d.id.to_string()),
                "function": k.fc,
                "address": k.address,
                "count": k.count,
                "requests": p.n,
                "interval_s": p.mean_s(),
                "jitter": p.jitter(),
                "min_interval_s": (p.n > 1).then(|| p.min_ns as f64 / 1e9),
                "max_interval_s": (p.n > 1).then(|| p.max_ns as f64 / 1e9),
            })
        })
        .collect();
    doc.insert("polling".into(), Json::Array(polling));
    doc.insert("polling_series_not_followed".into(), json!(s.polls_dropped));
    doc.insert(
        "slowest".into(),
        Json::Array(s.slowest.iter().map(tx_json).collect()),
    );
    doc.insert(
        "failures".into(),
        Json::Array(s.failures.iter().map(tx_json).collect()),
    );
    doc.insert(
        "writes".into(),
        Json::Array(s.writes.iter().map(tx_json).collect()),
    );
    doc.insert(
        "malformed".into(),
        Json::Array(
            s.malformed
                .iter()
                .map(|m| json!({"frame": m.frame, "device": m.device.to_string(), "proto": proto_word(m.proto), "what": m.what}))
                .collect(),
        ),
    );
    let o = &s.opcua;
    doc.insert("opcua".into(), json!({
        "message_types": o.types.iter().map(|(t, n)| json!({"type": t, "count": n})).collect::<Vec<_>>(),
        "services": o.services.iter().map(|(id, n)| json!({"service": opcua::service_name(*id), "id": id, "count": n})).collect::<Vec<_>>(),
        "security_policies": o.policies.iter().map(|(p, n)| json!({"policy": p, "count": n})).collect::<Vec<_>>(),
        "endpoints": o.endpoints.iter().map(|(p, _)| json!(p)).collect::<Vec<_>>(),
        "encrypted_messages": o.opaque,
        "errors": o.errors.iter().map(|(c, r)| json!({"code": opcua::status_text(*c), "reason": r})).collect::<Vec<_>>(),
    }));
    doc.insert(
        "decoder".into(),
        serde_json::to_value(&d.health).unwrap_or(Json::Null),
    );
    Json::Object(doc)
}

fn device_rows(doc: &Json) -> Rows {
    let cols = [
        "device",
        "proto",
        "requests",
        "answered",
        "exceptions",
        "unanswered",
        "malformed",
        "writes",
        "rt_min_ms",
        "rt_p50_ms",
        "rt_p95_ms",
        "rt_max_ms",
    ];
    let mut rows = Rows::new(&cols);
    for d in doc["devices"].as_array().into_iter().flatten() {
        let exc: u64 = d["exceptions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["count"].as_u64())
            .sum::<u64>()
            + d["bad_status"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["count"].as_u64())
                .sum::<u64>();
        rows.push(vec![
            d["device"].clone(),
            d["proto"].clone(),
            d["requests"].clone(),
            d["answered"].clone(),
            json!(exc),
            d["unanswered"].clone(),
            d["malformed"].clone(),
            d["writes"].clone(),
            d["rt_ms"]["min"].clone(),
            d["rt_ms"]["p50"].clone(),
            d["rt_ms"]["p95"].clone(),
            d["rt_ms"]["max"].clone(),
        ]);
    }
    rows
}

fn write_summary_table(w: &mut dyn Write, doc: &Json, ctx: &Ctx) -> anyhow::Result<()> {
    let c = &doc["capture"];
    let t = &doc["totals"];
    writeln!(
        w,
        "{}: {}, {} packets, {} bytes{}",
        doc["file"].as_str().unwrap_or(""),
        c["format"].as_str().unwrap_or("?"),
        c["packets"],
        c["bytes"],
        match (c["first"].as_str(), c["last"].as_str()) {
            (Some(a), Some(b)) => format!(
                ", {a} → {b} ({:.1} s)",
                c["seconds"].as_f64().unwrap_or(0.0)
            ),
            _ => String::new(),
        }
    )?;
    if let Some(tr) = c["truncated"].as_str() {
        writeln!(w, "TRUNCATED: {tr}")?;
    }
    if let Some(n) = c["snapped_packets"].as_u64().filter(|n| *n > 0) {
        writeln!(
            w,
            "{n} packets were captured shorter than they were on the wire (snaplen); {} of them cut decoded data",
            doc["decoder"]["cut_segments"]
        )?;
    }
    writeln!(
        w,
        "{}: {} Modbus PDUs, {} OPC UA messages; {} transactions, {} exceptions, {} bad status, {} unanswered, {} malformed, {} writes",
        t["verdict"].as_str().unwrap_or(""),
        t["modbus_pdus"], t["opcua_messages"], t["transactions"], t["exceptions"], t["bad_status"],
        t["unanswered"], t["malformed"], t["writes"]
    )?;
    if doc["devices"].as_array().is_some_and(|a| !a.is_empty()) {
        // Devices with problems first, then the busiest; all of them with -v or in json.
        let mut rows = device_rows(doc);
        let bad = |r: &Vec<Json>| -> u64 { [4, 5, 6].iter().filter_map(|&i| r[i].as_u64()).sum() };
        rows.rows
            .sort_by(|a, b| bad(b).cmp(&bad(a)).then(b[2].as_u64().cmp(&a[2].as_u64())));
        let total = rows.rows.len();
        let show = if ctx.verbose > 0 { total } else { 40 };
        rows.rows.truncate(show);
        writeln!(w, "\nDevices")?;
        write_rows(w, Format::Table, &rows, ctx.color)?;
        if total > show {
            writeln!(
                w,
                "({} more devices: -v shows all, --format json has them)",
                total - show
            )?;
        }
    }
    let polling = doc["polling"].as_array().cloned().unwrap_or_default();
    if !polling.is_empty() {
        writeln!(
            w,
            "\nPolling (per master and request; jitter = std. deviation / mean interval)"
        )?;
        let mut rows = Rows::new(&[
            "master",
            "device",
            "fc",
            "address",
            "count",
            "requests",
            "interval_s",
            "jitter",
            "min_s",
            "max_s",
        ]);
        for p in polling
            .iter()
            .take(if ctx.verbose > 0 { usize::MAX } else { 20 })
        {
            let r3 = |v: &Json| {
                v.as_f64()
                    .map_or(Json::Null, |x| json!((x * 1000.0).round() / 1000.0))
            };
            rows.push(vec![
                p["master"].clone(),
                p["device"].clone(),
                p["function"].clone(),
                p["address"].clone(),
                p["count"].clone(),
                p["requests"].clone(),
                r3(&p["interval_s"]),
                r3(&p["jitter"]),
                r3(&p["min_interval_s"]),
                r3(&p["max_interval_s"]),
            ]);
        }
        write_rows(w, Format::Table, &rows, ctx.color)?;
        if polling.len() > 20 && ctx.verbose == 0 {
            writeln!(
                w,
                "({} more series: -v shows all, --format json has them)",
                polling.len() - 20
            )?;
        }
    }
    let tx_table =
        |w: &mut dyn Write, title: &str, list: &Json, total: Option<u64>| -> anyhow::Result<()> {
            let Some(a) = list.as_array().filter(|a| !a.is_empty()) else {
                return Ok(());
            };
            writeln!(w, "\n{title}")?;
            let mut rows = Rows::new(&[
                "time", "master", "device", "function", "address", "count", "status", "rt_ms",
                "frames", "detail",
            ]);
            for x in a.iter().take(20) {
                let detail = json!(sanitize(&crate::report::decode::tx_detail(x)));
                rows.push(vec![
                    x["time"].clone(),
                    x["master"].clone(),
                    x["device"].clone(),
                    json!(format!(
                        "{} {}",
                        x["function"],
                        x["function_name"].as_str().unwrap_or("")
                    )),
                    x.get("address").cloned().unwrap_or(Json::Null),
                    x.get("count").cloned().unwrap_or(Json::Null),
                    x["status"].clone(),
                    x.get("rt_ms").cloned().unwrap_or(Json::Null),
                    json!(match x.get("response_frame") {
                        Some(r) => format!("{}→{r}", x["request_frame"]),
                        None => x["request_frame"].to_string(),
                    }),
                    detail,
                ]);
            }
            write_rows(w, Format::Table, &rows, ctx.color)?;
            let total = total.unwrap_or(a.len() as u64);
            if total > 20 {
                writeln!(w, "({total} in all: see --transactions / --writes)")?;
            }
            Ok(())
        };
    tx_table(w, "Failed requests", &doc["failures"], t["failed"].as_u64())?;
    tx_table(w, "Slowest transactions", &doc["slowest"], None)?;
    tx_table(w, "Writes", &doc["writes"], t["writes"].as_u64())?;
    let o = &doc["opcua"];
    if t["opcua_messages"].as_u64().unwrap_or(0) > 0 {
        writeln!(w, "\nOPC UA")?;
        let list = |k: &str, name: &str| -> String {
            o[k].as_array()
                .into_iter()
                .flatten()
                .map(|x| {
                    format!(
                        "{} {}",
                        x[name]
                            .as_str()
                            .map_or_else(|| x[name].to_string(), ToString::to_string),
                        x["count"]
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(w, "  messages: {}", list("message_types", "type"))?;
        writeln!(w, "  services: {}", list("services", "service"))?;
        writeln!(
            w,
            "  security policies: {}",
            list("security_policies", "policy")
        )?;
        if o["encrypted_messages"].as_u64().unwrap_or(0) > 0 {
            writeln!(
                w,
                "  encrypted (body not visible): {}",
                o["encrypted_messages"]
            )?;
        }
        for e in o["errors"].as_array().into_iter().flatten().take(10) {
            writeln!(
                w,
                "  ERR {}: {}",
                e["code"].as_str().unwrap_or(""),
                sanitize(e["reason"].as_str().unwrap_or(""))
            )?;
        }
    }
    let m = doc["malformed"].as_array().cloned().unwrap_or_default();
    if !m.is_empty() {
        writeln!(w, "\nMalformed PDUs (first {})", m.len().min(10))?;
        for x in m.iter().take(10) {
            writeln!(
                w,
                "  frame {}  {}  {}",
                x["frame"],
                x["device"].as_str().unwrap_or(""),
                x["what"].as_str().unwrap_or("")
            )?;
        }
    }
    let notes = crate::report::decode::notes(doc);
    if !notes.is_empty() {
        writeln!(w, "\nDecoder notes: {}", notes.join("; "))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(time_text(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            time_text(1_352_718_180_264_365_000),
            "2012-11-12T11:03:00.264365Z"
        );
        assert_eq!(
            time_text(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000000Z"
        );
    }
}
