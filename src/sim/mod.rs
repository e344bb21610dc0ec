//! The built-in simulated device: serves a profile's points over Modbus TCP (tokio-modbus
//! server), on loopback by default, over Modbus RTU on a serial port and as an RTU-over-TCP
//! gateway (`rtu.rs`), for one or more unit IDs, with fault injection.
//!
//! Values are computed at request time from each point's `sim` spec (start value, noise, ramp per
//! second), so counters move and `poll` shows movement. Writes to holding registers and coils
//! inside the map are kept (per unit) and read back. Addresses outside the map answer exception
//! 0x02 Illegal Data Address, like a real PLC; unit IDs that are not served answer 0x0B Gateway
//! Target Device Failed to Respond, like a gateway with nothing behind that address.
//!
//! Faults that change the answer (delay, drop, exception) live in the service; faults that need
//! the wire (a malformed reply, a closed connection) live in [`FaultStream`], a transport wrapper
//! the service signals per connection.

mod faults;
pub mod opcua;
mod rtu;

use std::{
    collections::HashMap,
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, AtomicU8, Ordering},
        Arc, Mutex,
    },
    task::{Context, Poll},
    time::Instant,
};

use rand::{rngs::SmallRng, Rng, SeedableRng};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};
use tokio_modbus::{
    prelude::*,
    server::{tcp::Server, Service},
};

pub use faults::{parse_fault, Faults};

use crate::{
    profile::{Point, Profile, SimValue},
    proto::modbus::{
        value::{encode_number, encode_text},
        Table, MAX_READ_BITS, MAX_READ_REGISTERS,
    },
};

/// Everything a simulator run needs.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The profile whose points are served.
    pub profile: Profile,
    /// Addresses to listen on (each a separate device).
    pub listen: Vec<SocketAddr>,
    /// Serial ports to serve Modbus RTU on, with their line settings.
    pub rtu: Vec<(String, crate::transport::rtu::LineSettings)>,
    /// Addresses to listen on as an RTU-over-TCP gateway.
    pub rtu_tcp: Vec<SocketAddr>,
    /// Unit IDs served.
    pub units: Vec<u8>,
    /// Fault injection.
    pub faults: Faults,
    /// Random seed (noise and faults), for reproducible runs.
    pub seed: u64,
    /// Record every connection's traffic to a pcapng file.
    pub record: Option<Arc<crate::capture::writer::Recorder>>,
}

/// Shared state of a running simulator.
pub struct SimState {
    points: Vec<Point>,
    /// Points sorted by (table, start) for lookups.
    index: Vec<(Table, u16, u16, usize)>,
    units: Vec<u8>,
    /// Writes kept per (unit, table, address).
    written: Mutex<HashMap<(u8, Table, u16), u16>>,
    identity: Vec<(String, String)>,
    faults: std::sync::RwLock<Faults>,
    /// Start values changed at run time (point index → engineering value).
    moved: Mutex<HashMap<usize, f64>>,
    /// Values written over OPC UA (point index → value), served as written.
    ua_written: Mutex<HashMap<usize, ::opcua::types::Variant>>,
    started: Instant,
    rng: Mutex<SmallRng>,
    /// Requests answered or dropped, for the end-of-run line.
    pub requests: AtomicU64,
}

impl SimState {
    fn new(cfg: &SimConfig) -> Self {
        let points: Vec<Point> = cfg.profile.points.clone();
        let mut index: Vec<_> = points
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                let a = p.address?;
                Some((a.table, a.start, a.count, i))
            })
            .collect();
        index.sort_unstable();
        Self {
            points,
            index,
            units: cfg.units.clone(),
            written: Mutex::new(HashMap::new()),
            identity: cfg.profile.device.identity.clone(),
            faults: std::sync::RwLock::new(cfg.faults.clone()),
            moved: Mutex::new(HashMap::new()),
            ua_written: Mutex::new(HashMap::new()),
            started: Instant::now(),
            rng: Mutex::new(SmallRng::seed_from_u64(cfg.seed)),
            requests: AtomicU64::new(0),
        }
    }

    /// Move a point's value (engineering units) while the simulator runs, as a drifting
    /// process would. Returns false when no such point is served.
    pub fn set_value(&self, name: &str, value: f64) -> bool {
        let Some(i) = self.points.iter().position(|p| p.name == name) else {
            return false;
        };
        self.moved.lock().expect("moved").insert(i, value);
        true
    }

    /// Change the faults of a running simulator (the demo turns one on after its clean read).
    pub fn set_faults(&self, faults: Faults) {
        *self.faults.write().expect("faults") = faults;
    }

    fn roll(&self, p: f64) -> bool {
        p > 0.0 && self.rng.lock().expect("rng").gen_bool(p.min(1.0))
    }

    /// The point covering `addr` in `table`, with the word offset inside it.
    fn locate(&self, table: Table, addr: u16) -> Option<(usize, u16)> {
        let pos = self
            .index
            .partition_point(|(t, s, _, _)| (*t, *s) <= (table, addr));
        let (t, s, n, i) = *self.index.get(pos.checked_sub(1)?)?;
        (t == table && addr >= s && u32::from(addr) < u32::from(s) + u32::from(n))
            .then(|| (i, addr - s))
    }

    /// The points served (profile order).
    pub fn points(&self) -> &[Point] {
        &self.points
    }

    /// A point's engineering value now (`Err` = its text), moving with noise and ramp.
    pub fn point_value(&self, idx: usize) -> Result<f64, &str> {
        let p = &self.points[idx];
        let moved = self.moved.lock().expect("moved").get(&idx).copied();
        let start = match (moved, &p.sim.value) {
            (Some(v), _) | (None, &SimValue::Number(v)) => v,
            (None, SimValue::Text(t)) => return Err(t),
        };
        let t = self.started.elapsed().as_secs_f64();
        let noise = if p.sim.noise > 0.0 {
            self.rng
                .lock()
                .expect("rng")
                .gen_range(-p.sim.noise..=p.sim.noise)
        } else {
            0.0
        };
        Ok(start + p.sim.ramp * t + noise)
    }

    /// Registers of a point now.
    fn point_words(&self, idx: usize) -> Vec<u16> {
        let p = &self.points[idx];
        match self.point_value(idx) {
            Ok(eng) => encode_number((eng - p.offset) / p.scale, p.ty, p.order),
            Err(t) => {
                encode_text(t, p.ty, p.order).unwrap_or_else(|_| vec![0; p.ty.registers() as usize])
            }
        }
    }

    /// The value last written to a point over OPC UA.
    pub fn ua_written(&self, idx: usize) -> Option<::opcua::types::Variant> {
        self.ua_written.lock().expect("written").get(&idx).cloned()
    }

    /// Keep a value written over OPC UA.
    pub fn set_ua_written(&self, idx: usize, v: ::opcua::types::Variant) {
        self.ua_written.lock().expect("written").insert(idx, v);
    }

    /// The current faults.
    pub fn faults(&self) -> Faults {
        self.faults.read().expect("faults").clone()
    }

    /// True with probability `p` (seeded).
    pub fn chance(&self, p: f64) -> bool {
        self.roll(p)
    }

    /// `count` values of `table` from `start` as `unit` serves them (the value written there,
    /// else its point's), each made a `T` by `cell` (a register as it is, a bit as `!= 0`); an
    /// address no point covers is an exception, and so is a count past the spec's limit.
    fn read<T>(
        &self,
        unit: u8,
        table: Table,
        start: u16,
        count: u16,
        cell: fn(u16) -> T,
    ) -> Result<Vec<T>, ExceptionCode> {
        let max = if table.is_bits() {
            MAX_READ_BITS
        } else {
            MAX_READ_REGISTERS
        };
        if count == 0 || count > max {
            return Err(ExceptionCode::IllegalDataValue);
        }
        let written = self.written.lock().expect("written");
        let mut out = Vec::with_capacity(usize::from(count));
        let mut cache: Option<(usize, Vec<u16>)> = None;
        for i in 0..count {
            let addr = start
                .checked_add(i)
                .ok_or(ExceptionCode::IllegalDataAddress)?;
            let (pi, off) = self
                .locate(table, addr)
                .ok_or(ExceptionCode::IllegalDataAddress)?;
            if let Some(w) = written.get(&(unit, table, addr)) {
                out.push(cell(*w));
                continue;
            }
            if cache.as_ref().is_none_or(|(c, _)| *c != pi) {
                cache = Some((pi, self.point_words(pi)));
            }
            out.push(cell(cache.as_ref().expect("set").1[usize::from(off)]));
        }
        Ok(out)
    }

    fn write(
        &self,
        unit: u8,
        table: Table,
        start: u16,
        words: &[u16],
    ) -> Result<(), ExceptionCode> {
        // All or nothing: check every address first.
        for i in 0..words.len() {
            let addr = start
                .checked_add(i as u16)
                .ok_or(ExceptionCode::IllegalDataAddress)?;
            self.locate(table, addr)
                .ok_or(ExceptionCode::IllegalDataAddress)?;
        }
        let mut written = self.written.lock().expect("written");
        for (i, w) in words.iter().enumerate() {
            written.insert((unit, table, start + i as u16), *w);
        }
        Ok(())
    }

    fn identification(
        &self,
        read_code: ReadCode,
        object_id: u8,
    ) -> Result<ReadDeviceIdentificationResponse, ExceptionCode> {
        // Basic objects 0x00 VendorName, 0x01 ProductCode, 0x02 MajorMinorRevision,
        // regular 0x03 VendorUrl, 0x04 ProductName, 0x05 ModelName, 0x06 UserApplicationName.
        const KEYS: [&str; 7] = crate::proto::modbus::DEVICE_ID_OBJECTS;
        if self.identity.is_empty() {
            return Err(ExceptionCode::IllegalFunction);
        }
        let objects: Vec<DeviceIdObject> = KEYS
            .iter()
            .enumerate()
            .filter_map(|(id, key)| {
                let v = self.identity.iter().find(|(k, _)| k == key)?;
                Some(DeviceIdObject {
                    id: id as u8,
                    value: v.1.clone().into_bytes().into(),
                })
            })
            .filter(|o| match read_code {
                ReadCode::Basic => o.id <= 2,
                ReadCode::Specific => o.id == object_id,
                _ => true,
            })
            .collect();
        if objects.is_empty() {
            return Err(ExceptionCode::IllegalDataAddress);
        }
        Ok(ReadDeviceIdentificationResponse {
            read_code,
            conformity_level: ConformityLevel::RegularIdentificationStreamOnly,
            more_follows: false,
            next_object_id: 0,
            device_id_objects: objects,
        })
    }

    fn answer(&self, unit: u8, req: &Request<'_>) -> Result<Response, ExceptionCode> {
        if !(self.units.contains(&unit) || unit == 0xFF && self.units.len() == 1) {
            return Err(ExceptionCode::GatewayTargetDevice);
        }
        let unit = if unit == 0xFF { self.units[0] } else { unit };
        let words = |table, a: &u16, n: &u16| self.read(unit, table, *a, *n, |w| w);
        let bits = |table, a: &u16, n: &u16| self.read(unit, table, *a, *n, |b| b != 0);
        Ok(match req {
            Request::ReadHoldingRegisters(a, n) => {
                Response::ReadHoldingRegisters(words(Table::HoldingRegister, a, n)?)
            }
            Request::ReadInputRegisters(a, n) => {
                Response::ReadInputRegisters(words(Table::InputRegister, a, n)?)
            }
            Request::ReadCoils(a, n) => Response::ReadCoils(bits(Table::Coil, a, n)?),
            Request::ReadDiscreteInputs(a, n) => {
                Response::ReadDiscreteInputs(bits(Table::DiscreteInput, a, n)?)
            }
            Request::WriteSingleRegister(a, w) => {
                self.write(unit, Table::HoldingRegister, *a, &[*w])?;
                Response::WriteSingleRegister(*a, *w)
            }
            Request::WriteMultipleRegisters(a, ws) => {
                self.write(unit, Table::HoldingRegister, *a, ws)?;
                Response::WriteMultipleRegisters(*a, ws.len() as u16)
            }
            Request::WriteSingleCoil(a, b) => {
                self.write(unit, Table::Coil, *a, &[u16::from(*b)])?;
                Response::WriteSingleCoil(*a, *b)
            }
            Request::WriteMultipleCoils(a, bs) => {
                let ws: Vec<u16> = bs.iter().map(|b| u16::from(*b)).collect();
                self.write(unit, Table::Coil, *a, &ws)?;
                Response::WriteMultipleCoils(*a, bs.len() as u16)
            }
            Request::ReadDeviceIdentification(code, obj) => {
                Response::ReadDeviceIdentification(self.identification(*code, *obj)?)
            }
            Request::ReportServerId => {
                let name = self
                    .identity
                    .iter()
                    .find(|(k, _)| k == "product_code")
                    .map_or("plcprobe-sim", |(_, v)| v.as_str());
                // tokio-modbus 0.17's server sizes a ReportServerId answer one byte short
                // (3 + data, not 4 + data), so its MBAP length cuts the last byte off and the
                // stray byte breaks the next frame. Sent as the raw PDU instead.
                let mut pdu = vec![(2 + name.len()).min(255) as u8, unit, 0xFF];
                pdu.extend_from_slice(name.as_bytes());
                Response::Custom(17, pdu.into())
            }
            _ => return Err(ExceptionCode::IllegalFunction),
        })
    }
}

/// What the service asks the wire to do with the next reply on its connection.
const WIRE_PASS: u8 = 0;
const WIRE_GARBAGE: u8 = 1;
const WIRE_DISCONNECT: u8 = 2;

/// The per-connection tokio-modbus service.
struct SimService {
    state: Arc<SimState>,
    wire: Arc<AtomicU8>,
    served: AtomicU64,
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<Option<Response>, ExceptionCode>> + Send>>;

impl Service for SimService {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = BoxFuture;

    fn call(&self, req: Self::Request) -> Self::Future {
        let st = &self.state;
        st.requests.fetch_add(1, Ordering::Relaxed);
        let n = self.served.fetch_add(1, Ordering::Relaxed) + 1;
        let f = st.faults.read().expect("faults").clone();
        if f.disconnect_every > 0 && n.is_multiple_of(f.disconnect_every) {
            self.wire.store(WIRE_DISCONNECT, Ordering::Relaxed);
        } else if st.roll(f.garbage) {
            self.wire.store(WIRE_GARBAGE, Ordering::Relaxed);
        }
        let answer: Result<Option<Response>, ExceptionCode> = if st.roll(f.drop) {
            Ok(None)
        } else if let Some((code, p)) = f.exception {
            if st.roll(p) {
                Err(ExceptionCode::new(code))
            } else {
                st.answer(req.slave, &req.request).map(Some)
            }
        } else {
            st.answer(req.slave, &req.request).map(Some)
        };
        let delay = f
            .delay
            .filter(|(_, p)| *p >= 1.0 || st.roll(*p))
            .map(|(d, _)| d);
        match delay {
            None => Box::pin(std::future::ready(answer)),
            Some(d) => Box::pin(async move {
                tokio::time::sleep(d).await;
                answer
            }),
        }
    }
}

/// A TCP stream that can corrupt or cut the next reply when its service says so.
pub struct FaultStream {
    inner: TcpStream,
    wire: Arc<AtomicU8>,
    rec: Option<crate::capture::writer::Conn>,
}

impl AsyncRead for FaultStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let (Poll::Ready(Ok(())), Some(rec)) = (&r, &self.rec) {
            let got = &buf.filled()[before..];
            if !got.is_empty() {
                rec.client_data(got);
            }
        }
        r
    }
}

impl FaultStream {
    fn record_sent(&self, r: &Poll<io::Result<usize>>, buf: &[u8]) {
        if let (Poll::Ready(Ok(n)), Some(rec)) = (r, &self.rec) {
            rec.server_data(&buf[..*n]);
        }
    }
}

impl AsyncWrite for FaultStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.wire.load(Ordering::Relaxed) {
            WIRE_DISCONNECT => {
                self.wire.store(WIRE_PASS, Ordering::Relaxed);
                // Ending the connection instead of answering, as a PLC that reboots its stack.
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "sim fault: disconnect",
                )))
            }
            WIRE_GARBAGE if buf.len() > 7 => {
                self.wire.store(WIRE_PASS, Ordering::Relaxed);
                // Malformed reply: the function code no longer matches the request
                // (0x03 becomes 0x43, a code no request used).
                let mut bad = buf.to_vec();
                bad[7] ^= 0x40;
                let r = Pin::new(&mut self.inner).poll_write(cx, &bad);
                self.record_sent(&r, &bad);
                r
            }
            _ => {
                let r = Pin::new(&mut self.inner).poll_write(cx, buf);
                self.record_sent(&r, buf);
                r
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A running simulator: its listening addresses and tasks. Dropping it stops it.
pub struct SimHandle {
    /// Where each device listens (port 0 in the config is resolved here).
    pub addrs: Vec<SocketAddr>,
    /// Where each RTU-over-TCP gateway listens.
    pub rtu_tcp_addrs: Vec<SocketAddr>,
    /// Shared state (request counter).
    pub state: Arc<SimState>,
    tasks: Vec<JoinHandle<()>>,
}

impl SimHandle {
    /// Serve Modbus RTU over an already open byte stream (tests give a modelled serial line).
    pub fn serve_rtu<P>(&mut self, port: P)
    where
        P: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let st = Arc::clone(&self.state);
        self.tasks.push(tokio::spawn(rtu::serve(
            port,
            st,
            None,
            std::time::Duration::from_millis(5),
        )));
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Bind every listener and start serving. Must run inside a tokio runtime.
pub async fn start(cfg: SimConfig) -> anyhow::Result<SimHandle> {
    if cfg.units.is_empty() {
        anyhow::bail!("the simulator needs at least one unit ID to serve");
    }
    let state = Arc::new(SimState::new(&cfg));
    let mut addrs = Vec::with_capacity(cfg.listen.len());
    let mut tasks = Vec::with_capacity(cfg.listen.len());
    for addr in &cfg.listen {
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {addr}: {e}; pick another port (or port 0 for any free one)"
            )
        })?;
        addrs.push(listener.local_addr()?);
        let server = Server::new(listener);
        let st = Arc::clone(&state);
        let record = cfg.record.clone();
        tasks.push(tokio::spawn(async move {
            let on_connected = move |stream: TcpStream, peer: SocketAddr| {
                let st = Arc::clone(&st);
                let rec = record.as_ref().map(|r| {
                    let local = stream.local_addr().unwrap_or(peer);
                    r.connection(peer, local)
                });
                async move {
                    let _ = stream.set_nodelay(true);
                    let wire = Arc::new(AtomicU8::new(WIRE_PASS));
                    let svc = SimService {
                        state: st,
                        wire: Arc::clone(&wire),
                        served: AtomicU64::new(0),
                    };
                    Ok(Some((
                        svc,
                        FaultStream {
                            inner: stream,
                            wire,
                            rec,
                        },
                    )))
                }
            };
            // A broken client connection ends only that connection.
            let _ = server.serve(&on_connected, |_err| {}).await;
        }));
    }
    for (path, line) in &cfg.rtu {
        tasks.push(rtu::start_serial(path, *line, &state)?);
    }
    let mut rtu_tcp_addrs = Vec::with_capacity(cfg.rtu_tcp.len());
    for addr in &cfg.rtu_tcp {
        let (local, task) = rtu::start_tcp(*addr, &state, cfg.record.clone()).await?;
        rtu_tcp_addrs.push(local);
        tasks.push(task);
    }
    Ok(SimHandle {
        addrs,
        rtu_tcp_addrs,
        state,
        tasks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> SimState {
        let profile = Profile::parse("demo", crate::profile::DEMO_PROFILE).unwrap();
        SimState::new(&SimConfig {
            profile,
            listen: vec![],
            rtu: Vec::new(),
            rtu_tcp: Vec::new(),
            units: vec![1, 2],
            faults: Faults::default(),
            seed: 1,
            record: None,
        })
    }

    #[test]
    fn unmapped_addresses_answer_illegal_data_address() {
        let st = state();
        // Below every point, in a gap, past the end, and straddling a point's edge.
        for (a, n) in [
            (0u16, 1u16),
            (0, 10),
            (103, 1),
            (102, 2),
            (65535, 1),
            (401, 4),
        ] {
            assert_eq!(
                st.read(1, Table::HoldingRegister, a, n, |w| w),
                Err(ExceptionCode::IllegalDataAddress),
                "hr:{a}+{n}"
            );
        }
        assert_eq!(
            st.read(1, Table::Coil, 1, 1, |b| b != 0),
            Err(ExceptionCode::IllegalDataAddress)
        );
        assert_eq!(
            st.read(1, Table::HoldingRegister, 100, 3, |w| w)
                .map(|w| w.len()),
            Ok(3)
        );
        assert_eq!(
            st.read(1, Table::HoldingRegister, 100, 126, |w| w),
            Err(ExceptionCode::IllegalDataValue)
        );
    }

    #[test]
    fn writes_are_kept_per_unit_and_all_or_nothing() {
        let st = state();
        st.write(1, Table::HoldingRegister, 300, &[0x4142]).unwrap();
        assert_eq!(
            st.read(1, Table::HoldingRegister, 300, 1, |w| w),
            Ok(vec![0x4142])
        );
        assert_ne!(
            st.read(2, Table::HoldingRegister, 300, 1, |w| w),
            Ok(vec![0x4142])
        );
        // hr:303 is mapped, hr:304 is not: nothing of the write may land.
        assert_eq!(
            st.write(1, Table::HoldingRegister, 303, &[1, 2]),
            Err(ExceptionCode::IllegalDataAddress)
        );
        assert_eq!(
            st.read(1, Table::HoldingRegister, 303, 1, |w| w),
            Ok(vec![0x3100])
        );
    }

    #[test]
    fn unserved_units_answer_gateway_target_failed() {
        let st = state();
        let r = st.answer(9, &Request::ReadHoldingRegisters(100, 2));
        assert_eq!(r, Err(ExceptionCode::GatewayTargetDevice));
    }
}
