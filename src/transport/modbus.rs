//! A Modbus client link to one device: Modbus TCP over tokio-modbus, or Modbus RTU (a serial
//! port, or RTU frames over TCP to a gateway) over plcprobe's own [`RtuWire`]. The same
//! `Request`/`Response` values travel either way; [`ModbusLink::new`] is the one place that
//! chooses the wire from the target.
//!
//! tokio-modbus has no request timeout (upstream issue #113) and, after a timeout, a late reply
//! could be taken as the answer to the next request. So every call here runs under
//! `tokio::time::timeout`, and after a timeout, a transport error or a protocol error the context is
//! dropped: the next call reconnects on a fresh socket, and a late reply can never be mistaken for
//! the next answer. On a serial line there is nothing to reconnect: the wire drains late bytes
//! and waits for a quiet line instead (`transport::rtu`). A Modbus exception is a value
//! (`Ok(Err(code))`), not a link error.

use std::{fmt, io, net::SocketAddr, time::Duration};

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio_modbus::{
    client::{Client, Context},
    slave::Slave,
    Request, Response,
};

use super::rtu::{open_serial, LineSettings, RtuError, RtuWire, SerialOptions};
use crate::{
    proto::modbus::{
        rtu::{encode_request, Timing},
        AddressRange, Table, MAX_READ_BITS, MAX_READ_REGISTERS, MAX_WRITE_BITS,
        MAX_WRITE_REGISTERS,
    },
    target::Target,
};

/// What went wrong on the link (as opposed to a Modbus exception, which is an answer).
#[derive(Debug)]
pub enum LinkError {
    /// No answer within the timeout.
    Timeout(Duration),
    /// RTU: nothing at all received within the timeout (what to check on a bus).
    Silence(String),
    /// Could not connect (refused, unreachable, name not resolved, connect timed out).
    Connect(String),
    /// The connection broke during a request.
    Connection(String),
    /// An answer arrived but was not a valid answer to the request.
    Protocol(String),
    /// RTU: bytes arrived, but no answer with a valid CRC.
    Crc(String),
    /// RTU: a valid answer from another unit ID.
    WrongUnit(String),
}

/// The kinds `poll` statistics count errors by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// See [`LinkError::Timeout`].
    Timeout,
    /// Connect or connection errors.
    Connection,
    /// See [`LinkError::Protocol`].
    Protocol,
    /// See [`LinkError::Crc`].
    Crc,
    /// See [`LinkError::WrongUnit`].
    WrongUnit,
}

impl ErrorKind {
    /// Lower-case name used in outputs.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connection => "connection",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Crc => "crc",
            ErrorKind::WrongUnit => "wrong-unit",
        }
    }
}

impl LinkError {
    /// Statistics bucket.
    pub fn kind(&self) -> ErrorKind {
        match self {
            LinkError::Timeout(_) | LinkError::Silence(_) => ErrorKind::Timeout,
            LinkError::Connect(_) | LinkError::Connection(_) => ErrorKind::Connection,
            LinkError::Protocol(_) => ErrorKind::Protocol,
            LinkError::Crc(_) => ErrorKind::Crc,
            LinkError::WrongUnit(_) => ErrorKind::WrongUnit,
        }
    }
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::Timeout(d) => write!(
                f,
                "no answer within {}; check the unit ID and that nothing else polls this device, or raise --timeout",
                humantime::format_duration(*d)
            ),
            LinkError::Connect(e) => write!(f, "cannot connect: {e}"),
            LinkError::Connection(e) => write!(f, "connection lost: {e}"),
            LinkError::Protocol(e) => write!(f, "malformed or mismatched reply: {e}"),
            LinkError::Crc(e) | LinkError::WrongUnit(e) | LinkError::Silence(e) => {
                write!(f, "{e}")
            }
        }
    }
}

/// Data read from one of the four tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    /// Register words.
    Words(Vec<u16>),
    /// Bits.
    Bits(Vec<bool>),
}

impl Data {
    fn extend(&mut self, other: Data) {
        match (self, other) {
            (Data::Words(a), Data::Words(b)) => a.extend(b),
            (Data::Bits(a), Data::Bits(b)) => a.extend(b),
            _ => unreachable!("one range is one table"),
        }
    }
}

/// The answer to a request: data or a Modbus exception code.
pub type Answer<T> = Result<T, u8>;

/// What a link talks over once open.
enum Wire {
    /// Modbus TCP (MBAP), tokio-modbus's client.
    Tcp(Context),
    /// RTU frames on a serial line or a TCP stream.
    Rtu(RtuWire),
}

/// One device's link. Connects lazily, reconnects after any failure (TCP) or resettles the line
/// (serial).
pub struct ModbusLink {
    target: Target,
    unit: u8,
    timeout: Duration,
    serial: SerialOptions,
    wire: Option<Wire>,
    /// How many connections were opened (TCP) or times the port was opened (serial).
    pub connects: u64,
    /// Advice found when the port was opened (an FTDI latency timer), said once.
    pub advice: Option<String>,
    /// At most one request per gap (`check`'s `rate`).
    pacer: super::pace::Pacer,
}

impl ModbusLink {
    /// A link to a Modbus target: `modbus://` (TCP), `rtu://` (serial) or `rtu+tcp://`.
    pub fn new(target: &Target, timeout: Duration, serial: SerialOptions) -> anyhow::Result<Self> {
        let unit = match target {
            Target::ModbusTcp { unit, .. }
            | Target::Rtu { unit, .. }
            | Target::RtuOverTcp { unit, .. } => *unit,
            Target::OpcUa { .. } => anyhow::bail!(
                "{target}: an OPC UA server, not a Modbus device; the device layer opens it over OPC UA"
            ),
        };
        if unit > 247 && !matches!(target, Target::ModbusTcp { .. }) {
            anyhow::bail!(
                "{target}: unit {unit} is reserved on a serial line (Modbus over Serial Line §2.2); use 1 to 247"
            );
        }
        Ok(Self {
            target: target.clone(),
            unit,
            timeout,
            serial,
            wire: None,
            connects: 0,
            advice: None,
            pacer: super::pace::Pacer::default(),
        })
    }

    /// A link over an already open RTU port (a sweep opens the port at each setting; tests
    /// give a modelled serial line). `target` names the device; its path is not opened.
    pub fn over_port(
        target: &Target,
        timeout: Duration,
        port: Box<dyn super::rtu::Port>,
        timing: Timing,
        serial: SerialOptions,
    ) -> anyhow::Result<Self> {
        let mut link = Self::new(target, timeout, serial)?;
        link.wire = Some(Wire::Rtu(RtuWire::new(port, timing, serial)));
        link.connects = 1;
        Ok(link)
    }

    /// Send at most one request per `gap` (zero: as fast as answers come).
    pub fn set_pace(&mut self, gap: Duration) {
        self.pacer.set_gap(gap);
    }

    /// Wait until the next request may go. Requests wait by themselves; a caller that times a
    /// request waits first, so that the pause is not counted in its round trip.
    pub async fn wait_turn(&self) {
        self.pacer.wait().await;
    }

    /// The device this link talks to.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The link's timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Change the timeout (scans adapt it to the measured answer time).
    pub fn set_timeout(&mut self, t: Duration) {
        self.timeout = t;
    }

    /// Talk to another unit ID on the same wire (scans walk them without reopening the port).
    pub fn set_unit(&mut self, unit: u8) {
        self.unit = unit;
        self.target = self.target.with_unit(unit);
        if let Some(Wire::Tcp(ctx)) = &mut self.wire {
            use tokio_modbus::slave::SlaveContext as _;
            ctx.set_slave(Slave(unit));
        }
    }

    /// Over RTU, the last answer's round trip without the t3.5 silence kept before the
    /// request; `None` over Modbus TCP (time the call instead).
    pub fn last_rtu_rtt(&self) -> Option<Duration> {
        match &self.wire {
            Some(Wire::Rtu(w)) => Some(w.last_rtt),
            _ => None,
        }
    }

    /// Open the connection or port if there is none.
    pub async fn connect(&mut self) -> Result<(), LinkError> {
        if self.wire.is_some() {
            return Ok(());
        }
        let wire = match &self.target {
            Target::Rtu { .. } => {
                let (path, line) = LineSettings::of(&self.target).expect("a serial target");
                let mut port = open_serial(path, line).map_err(LinkError::Connect)?;
                if self.serial.rts {
                    // A port without RTS control is a setting problem: said once, at open.
                    super::rtu::Port::set_rts(&mut port, false)
                        .map_err(|e| LinkError::Connect(RtuError::Rts(e).to_string()))?;
                }
                if self.connects == 0 {
                    self.advice = super::rtu::latency_advice(path);
                }
                Wire::Rtu(RtuWire::new(Box::new(port), line.timing(), self.serial))
            }
            Target::RtuOverTcp { .. } => {
                let stream = self.tcp_connect().await?;
                // The gateway keeps the serial line's timing; on the socket there is none.
                let timing = Timing {
                    char_time: Duration::ZERO,
                    t35: Duration::ZERO,
                };
                Wire::Rtu(RtuWire::new(
                    Box::new(stream),
                    timing,
                    SerialOptions::default(),
                ))
            }
            _ => {
                let stream = self.tcp_connect().await?;
                Wire::Tcp(tokio_modbus::client::tcp::attach_slave(
                    stream,
                    Slave(self.unit),
                ))
            }
        };
        self.wire = Some(wire);
        self.connects += 1;
        Ok(())
    }

    async fn tcp_connect(&self) -> Result<TcpStream, LinkError> {
        let deadline = self.timeout;
        let host_port = self.target.socket_text().expect("a TCP target");
        let hp = host_port.clone();
        let connect = async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host(&hp)
                .await
                .map_err(|e| format!("cannot resolve {hp}: {e}"))?
                .collect();
            let mut last = format!("{hp} resolves to no address");
            for addr in addrs {
                match TcpStream::connect(addr).await {
                    Ok(s) => return Ok(s),
                    Err(e) => last = describe_io(&e, addr),
                }
            }
            Err(last)
        };
        let stream = match tokio::time::timeout(deadline, connect).await {
            Err(_) => {
                return Err(LinkError::Connect(format!(
                    "no TCP answer from {host_port} within {} (host down, wrong address, or a firewall dropping packets)",
                    humantime::format_duration(deadline)
                )))
            }
            Ok(Err(e)) => return Err(LinkError::Connect(e)),
            Ok(Ok(s)) => s,
        };
        // Small requests and replies: do not let Nagle hold them back.
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    /// One RTU transaction: the answer's PDU, or its exception code. A gateway's socket is
    /// reopened after any failure, as for Modbus TCP; a serial port only when the port itself
    /// failed.
    async fn rtu_transact(&mut self, pdu: &[u8]) -> Result<Answer<Vec<u8>>, LinkError> {
        self.pacer.take_turn().await;
        let over_tcp = matches!(self.target, Target::RtuOverTcp { .. });
        let Some(Wire::Rtu(w)) = self.wire.as_mut() else {
            unreachable!("called on an RTU wire")
        };
        match w.transact(self.unit, pdu, self.timeout).await {
            Ok(rsp) if rsp.first().is_some_and(|fc| fc & 0x80 != 0) => {
                Ok(Err(rsp.get(1).copied().unwrap_or(0)))
            }
            Ok(rsp) => Ok(Ok(rsp)),
            Err(e) => {
                if over_tcp || matches!(e, RtuError::Io(_)) {
                    self.wire = None;
                }
                Err(rtu_error(e))
            }
        }
    }

    /// Send one request and wait for its answer, at most `timeout`.
    pub async fn call(&mut self, req: Request<'_>) -> Result<Answer<Response>, LinkError> {
        self.connect().await?;
        let ctx = match self.wire.as_mut().expect("connected above") {
            Wire::Tcp(ctx) => ctx,
            Wire::Rtu(_) => {
                return match self.rtu_transact(&encode_request(&req)).await? {
                    Err(code) => Ok(Err(code)),
                    Ok(rsp) => Response::try_from(Bytes::from(rsp))
                        .map(Ok)
                        .map_err(|e| LinkError::Protocol(e.to_string())),
                };
            }
        };
        self.pacer.take_turn().await;
        match tokio::time::timeout(self.timeout, ctx.call(req)).await {
            Err(_) => {
                self.wire = None;
                Err(LinkError::Timeout(self.timeout))
            }
            Ok(Err(tokio_modbus::Error::Transport(e))) => {
                self.wire = None;
                if e.kind() == io::ErrorKind::InvalidData {
                    Err(LinkError::Protocol(e.to_string()))
                } else {
                    Err(LinkError::Connection(connection_text(&e)))
                }
            }
            Ok(Err(tokio_modbus::Error::Protocol(p))) => {
                self.wire = None;
                Err(LinkError::Protocol(p.to_string()))
            }
            Ok(Ok(Err(exc))) => Ok(Err(u8::from(exc))),
            Ok(Ok(Ok(rsp))) => Ok(Ok(rsp)),
        }
    }

    /// FC17 Report Server ID: the answer's bytes after its byte count (server ID, run
    /// indicator, device-specific data; devices vary, pymodbus sends text only). Over RTU the
    /// bytes come as sent; over Modbus TCP through tokio-modbus, which insists on the spec's
    /// layout (a device that differs is a protocol error there).
    pub async fn report_server_id(&mut self) -> Result<Answer<Vec<u8>>, LinkError> {
        self.connect().await?;
        if let Some(Wire::Rtu(_)) = self.wire {
            // The answer's byte count first, then the bytes.
            return Ok(self
                .rtu_transact(&[17])
                .await?
                .map(|rsp| rsp.get(2..).map(<[u8]>::to_vec).unwrap_or_default()));
        }
        Ok(match self.call(Request::ReportServerId).await? {
            Err(code) => Err(code),
            Ok(Response::ReportServerId(id, run, data)) => {
                let mut b = vec![id, if run { 0xFF } else { 0 }];
                b.extend(data);
                Ok(b)
            }
            Ok(other) => {
                self.wire = None;
                return Err(LinkError::Protocol(format!("FC17 answered {other:?}")));
            }
        })
    }

    /// Read one chunk that fits in a single request (see [`AddressRange::chunks`]).
    pub async fn read_chunk(&mut self, r: AddressRange) -> Result<Answer<Data>, LinkError> {
        let req = match r.table {
            Table::Coil => Request::ReadCoils(r.start, r.count),
            Table::DiscreteInput => Request::ReadDiscreteInputs(r.start, r.count),
            Table::InputRegister => Request::ReadInputRegisters(r.start, r.count),
            Table::HoldingRegister => Request::ReadHoldingRegisters(r.start, r.count),
        };
        let ans = self.call(req).await?;
        let rsp = match ans {
            Err(code) => return Ok(Err(code)),
            Ok(rsp) => rsp,
        };
        let data = match rsp {
            Response::ReadCoils(mut b) | Response::ReadDiscreteInputs(mut b) => {
                // Bits come padded to whole bytes; keep exactly what was asked for.
                if b.len() < usize::from(r.count) {
                    self.wire = None;
                    return Err(LinkError::Protocol(format!(
                        "asked for {} bits, got {}",
                        r.count,
                        b.len()
                    )));
                }
                b.truncate(usize::from(r.count));
                Data::Bits(b)
            }
            Response::ReadInputRegisters(w) | Response::ReadHoldingRegisters(w) => {
                if w.len() != usize::from(r.count) {
                    self.wire = None;
                    return Err(LinkError::Protocol(format!(
                        "asked for {} registers, got {}",
                        r.count,
                        w.len()
                    )));
                }
                Data::Words(w)
            }
            other => {
                self.wire = None;
                return Err(LinkError::Protocol(format!("unexpected reply {other:?}")));
            }
        };
        Ok(Ok(data))
    }

    /// Read a whole range, split at the spec limits (or lower per-device limits).
    pub async fn read(
        &mut self,
        r: AddressRange,
        max_registers: u16,
        max_bits: u16,
    ) -> Result<Answer<Data>, LinkError> {
        let max = if r.table.is_bits() {
            max_bits.min(MAX_READ_BITS)
        } else {
            max_registers.min(MAX_READ_REGISTERS)
        };
        let mut out: Option<Data> = None;
        for chunk in r.chunks(max) {
            match self.read_chunk(chunk).await? {
                Err(code) => return Ok(Err(code)),
                Ok(d) => match &mut out {
                    None => out = Some(d),
                    Some(o) => o.extend(d),
                },
            }
        }
        Ok(Ok(out.expect("a range has at least one chunk")))
    }

    /// Read the device identification (FC43 / MEI 0x0E, Modbus Application Protocol §6.21):
    /// the basic and regular objects, following "more follows" for devices that split them.
    /// Object values are device text and come back escaped (no control characters).
    pub async fn read_identity(&mut self) -> Result<Answer<Vec<(u8, String)>>, LinkError> {
        use tokio_modbus::prelude::ReadCode;
        let mut objects: Vec<(u8, String)> = Vec::new();
        let mut next: u8 = 0;
        // At most a handful of rounds: a device that keeps saying "more follows" is not trusted.
        for _ in 0..8 {
            let rsp = match self
                .call(Request::ReadDeviceIdentification(ReadCode::Regular, next))
                .await?
            {
                Err(code) if objects.is_empty() => {
                    // Some devices only answer the basic category.
                    match self
                        .call(Request::ReadDeviceIdentification(ReadCode::Basic, 0))
                        .await?
                    {
                        Err(code2) => return Ok(Err(if code2 == 0x01 { code } else { code2 })),
                        Ok(r) => r,
                    }
                }
                Err(_) => break,
                Ok(r) => r,
            };
            let Response::ReadDeviceIdentification(id) = rsp else {
                self.wire = None;
                return Err(LinkError::Protocol(
                    "FC43 answered with another function".into(),
                ));
            };
            for o in &id.device_id_objects {
                if !objects.iter().any(|(i, _)| *i == o.id) {
                    let text: String = o
                        .value
                        .iter()
                        .flat_map(|b| std::ascii::escape_default(*b))
                        .map(char::from)
                        .collect();
                    objects.push((o.id, text));
                }
            }
            if !id.more_follows || id.next_object_id <= next {
                break;
            }
            next = id.next_object_id;
        }
        objects.sort_by_key(|(i, _)| *i);
        Ok(Ok(objects))
    }

    /// Write holding registers (`u16` words) or coils (`bool` bits) at `start`: the
    /// single-item function (FC06, FC05) for one value unless `force_multiple`, else consecutive
    /// multiple-item requests (FC16 split at 123 registers, FC15 at 1968 coils); stops at the
    /// first exception.
    pub async fn write<T: WriteItem>(
        &mut self,
        start: u16,
        items: &[T],
        force_multiple: bool,
    ) -> Result<Answer<()>, LinkError> {
        if let ([one], false) = (items, force_multiple) {
            return Ok(self.call((T::SINGLE)(start, *one)).await?.map(|_| ()));
        }
        let max = usize::from(T::MAX_PER_REQUEST);
        for (i, chunk) in items.chunks(max).enumerate() {
            let first = start + (i * max) as u16;
            if let Err(code) = self.call((T::MULTIPLE)(first, chunk)).await? {
                return Ok(Err(code));
            }
        }
        Ok(Ok(()))
    }
}

/// What [`ModbusLink::write`] writes: a register (`u16`) or a coil (`bool`), and the requests
/// that carry it.
pub trait WriteItem: Copy + 'static {
    /// Most items one multiple-item request carries.
    const MAX_PER_REQUEST: u16;
    /// The single-item request (FC06, FC05): address, value.
    const SINGLE: fn(u16, Self) -> Request<'static>;
    /// The multiple-item request (FC16, FC15): first address, values.
    const MULTIPLE: for<'a> fn(u16, &'a [Self]) -> Request<'a>;
}

impl WriteItem for u16 {
    const MAX_PER_REQUEST: u16 = MAX_WRITE_REGISTERS;
    const SINGLE: fn(u16, u16) -> Request<'static> = Request::WriteSingleRegister;
    const MULTIPLE: for<'a> fn(u16, &'a [u16]) -> Request<'a> =
        |a, words| Request::WriteMultipleRegisters(a, words.into());
}

impl WriteItem for bool {
    const MAX_PER_REQUEST: u16 = MAX_WRITE_BITS;
    const SINGLE: fn(u16, bool) -> Request<'static> = Request::WriteSingleCoil;
    const MULTIPLE: for<'a> fn(u16, &'a [bool]) -> Request<'a> =
        |a, bits| Request::WriteMultipleCoils(a, bits.into());
}

/// An RTU wire's failure as the link reports it.
fn rtu_error(e: RtuError) -> LinkError {
    match e {
        RtuError::Silence(_) => LinkError::Silence(e.to_string()),
        RtuError::BadCrc { .. } => LinkError::Crc(e.to_string()),
        RtuError::WrongUnit { .. } => LinkError::WrongUnit(e.to_string()),
        RtuError::WrongFunction { .. } | RtuError::Echo { .. } => {
            LinkError::Protocol(e.to_string())
        }
        RtuError::Rts(_) => LinkError::Connect(e.to_string()),
        RtuError::Io(io) => LinkError::Connection(connection_text(&io)),
    }
}

fn describe_io(e: &io::Error, addr: SocketAddr) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => format!(
            "{addr} refused the connection (nothing listens on port {}; check the port, or whether the device's Modbus server is enabled)",
            addr.port()
        ),
        _ => format!("{addr}: {e}"),
    }
}

fn connection_text(e: &io::Error) -> String {
    // tokio-modbus reports a peer that closed the socket as `io::Error::last_os_error()`, whose
    // errno is whatever an earlier call left behind ("Success", "Operation now in progress").
    // Real network failures arrive with their own kind; anything else is that close.
    use io::ErrorKind as K;
    match e.kind() {
        K::ConnectionReset
        | K::ConnectionAborted
        | K::BrokenPipe
        | K::TimedOut
        | K::NotConnected
        | K::HostUnreachable
        | K::NetworkUnreachable => e.to_string(),
        _ => "the device closed the connection".to_string(),
    }
}
