//! A Modbus RTU wire: request/answer transactions over a serial port (tokio-serial) or a TCP
//! stream to an RTU-over-TCP gateway.
//!
//! tokio-serial opens and configures the port; the framing is plcprobe's own
//! (`proto::modbus::rtu`), because tokio-modbus's RTU client has no timeout, no t3.5 silence, no
//! echo handling and resynchronises poorly after garbage (its issues #60, #183, #324). One
//! transaction here:
//!
//! 1. the line must have been quiet for t3.5 since the last byte seen; after a failure it must
//!    stay quiet for half the timeout (at least t3.5), and whatever arrives meanwhile is drained
//!    and counted as late bytes, so a late reply is never taken for the next answer;
//! 2. RTS raised if `--rts` (adapters without automatic direction control), the frame written,
//!    RTS lowered once the UART has sent the last bit;
//! 3. with `--echo` (adapters that hear what they send), the echo is read and compared first;
//! 4. the answer is read until its header says it is complete, under one timeout, and checked:
//!    CRC, unit ID (an answer from another unit is named), function code.
//!
//! Failures say what a technician checks: nothing received (wiring, A/B swapped, unit ID,
//! baud), bytes with a bad CRC (baud or parity mismatch, noise, termination), another unit
//! answering (two devices with one address).

use std::{
    fmt, io,
    path::Path,
    time::{Duration, Instant},
};

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio_serial::SerialPort as _;

use crate::{
    proto::modbus::{
        pdu::rtu_crc_ok,
        rtu::{adu, answer_len, bits_per_char, Timing},
    },
    target::Parity,
};

/// The last stretch of a wait that is yielded through rather than left to a timer: tokio's
/// timers tick in whole milliseconds, and the OS wait under them rounds up by one more.
const SPIN: Duration = Duration::from_millis(2);

/// How a serial adapter must be driven.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SerialOptions {
    /// The adapter echoes what it sends (RS-485 local echo): read and check it before the answer.
    pub echo: bool,
    /// Raise RTS while sending (adapters without automatic direction control).
    pub rts: bool,
}

/// A byte stream an RTU wire runs over: a serial port, a TCP socket, or (in tests) any duplex.
pub trait Port: AsyncRead + AsyncWrite + Unpin + Send {
    /// Set RTS (serial ports only).
    fn set_rts(&mut self, _on: bool) -> io::Result<()> {
        Err(io::Error::other("this link has no RTS line"))
    }
    /// Bytes still queued for the UART to send (serial ports only; 0 otherwise).
    fn unsent(&self) -> usize {
        0
    }
}

impl Port for tokio_serial::SerialStream {
    fn set_rts(&mut self, on: bool) -> io::Result<()> {
        self.write_request_to_send(on).map_err(io::Error::from)
    }
    fn unsent(&self) -> usize {
        self.bytes_to_write().map_or(0, |n| n as usize)
    }
}

impl Port for tokio::net::TcpStream {}
impl Port for tokio::io::DuplexStream {}

/// Why an RTU transaction failed.
#[derive(Debug)]
pub enum RtuError {
    /// Nothing at all arrived within the timeout.
    Silence(Duration),
    /// Bytes arrived but no CRC-valid answer: how many, and the first of them.
    BadCrc {
        /// Bytes received.
        got: Vec<u8>,
    },
    /// A CRC-valid answer from another unit ID.
    WrongUnit {
        /// The unit ID in the answer.
        got: u8,
    },
    /// A CRC-valid answer with another function code.
    WrongFunction {
        /// The function code in the answer.
        got: u8,
    },
    /// The echo the adapter should return did not match the request.
    Echo {
        /// What came back instead.
        got: Vec<u8>,
    },
    /// RTS could not be set.
    Rts(io::Error),
    /// The port or socket failed.
    Io(io::Error),
}

fn hex(b: &[u8]) -> String {
    let mut s: String = b
        .iter()
        .take(16)
        .map(|x| format!("{x:02X} "))
        .collect::<String>();
    s.pop();
    if b.len() > 16 {
        s.push_str(" …");
    }
    s
}

impl fmt::Display for RtuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RtuError::Silence(d) => write!(
                f,
                "nothing received within {}: check the wiring (A/B swapped?), the unit ID, the baud rate and framing, or raise --timeout",
                humantime::format_duration(*d)
            ),
            RtuError::BadCrc { got } => write!(
                f,
                "{} byte(s) received but no answer with a valid CRC ({}): a baud rate or parity mismatch, noise, or missing termination",
                got.len(),
                hex(got)
            ),
            RtuError::WrongUnit { got } => write!(
                f,
                "unit {got} answered instead: two devices with one address, or a late answer from another unit"
            ),
            RtuError::WrongFunction { got } => {
                write!(f, "the answer has function code {got}, not the request's")
            }
            RtuError::Echo { got } => write!(
                f,
                "the adapter's echo did not match the request (got {}): a collision on the bus, or an adapter that does not echo (drop --echo)",
                hex(got)
            ),
            RtuError::Rts(e) => write!(
                f,
                "cannot set RTS ({e}); this port has no RTS control (pseudo-terminals have none): drop --rts"
            ),
            RtuError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// Counters of what the wire saw besides answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WireCounts {
    /// Bytes drained before a request (late replies, noise).
    pub late_bytes: u64,
}

/// An RTU transaction runner over one port.
pub struct RtuWire {
    port: Box<dyn Port>,
    timing: Timing,
    opts: SerialOptions,
    /// When the line was last busy (a byte sent or received).
    last_busy: Instant,
    /// After a failure: how long the line must stay quiet before the next request.
    settle: Option<Duration>,
    buf: Vec<u8>,
    /// See [`WireCounts`].
    pub counts: WireCounts,
    /// The last transaction's time from the request sent to its answer (the silence before
    /// it excluded).
    pub last_rtt: Duration,
    /// When the current transaction's request went out.
    sent_at: Option<Instant>,
}

impl RtuWire {
    /// A wire over `port` with the line's timing.
    pub fn new(port: Box<dyn Port>, timing: Timing, opts: SerialOptions) -> Self {
        Self {
            port,
            timing,
            opts,
            last_busy: Instant::now(),
            settle: None,
            buf: Vec::with_capacity(260),
            counts: WireCounts::default(),
            last_rtt: Duration::ZERO,
            sent_at: None,
        }
    }

    /// One read of what arrives by `until`: `Ok(None)` when nothing did. Bytes read go to
    /// `self.buf` (`keep`) or are counted as late and dropped; either way the line was busy.
    async fn read_by(
        &mut self,
        until: tokio::time::Instant,
        keep: bool,
    ) -> Result<Option<usize>, RtuError> {
        let mut chunk = [0u8; 256];
        match tokio::time::timeout_at(until, self.port.read(&mut chunk)).await {
            Err(_) => Ok(None),
            Ok(Ok(0)) => Err(RtuError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the connection was closed",
            ))),
            Ok(Ok(n)) => {
                if keep {
                    self.buf.extend_from_slice(&chunk[..n]);
                } else {
                    self.counts.late_bytes += n as u64;
                }
                self.last_busy = Instant::now();
                Ok(Some(n))
            }
            Ok(Err(e)) => Err(RtuError::Io(e)),
        }
    }

    /// Wait until the line has been quiet long enough, discarding what arrives.
    async fn quiet(&mut self) -> Result<(), RtuError> {
        let need = self
            .settle
            .take()
            .unwrap_or(Duration::ZERO)
            .max(self.timing.t35);
        loop {
            // Whatever already arrived is drained without waiting.
            while self
                .read_by(tokio::time::Instant::now(), false)
                .await?
                .is_some()
            {}
            let quiet_until = self.last_busy + need;
            let now = Instant::now();
            if now >= quiet_until {
                return Ok(());
            }
            // tokio's timers tick in whole milliseconds and the OS wait rounds up to one more,
            // which would stretch a 1.75 ms t3.5 to 3 ms: wait on the timer for all but the
            // last 2 ms, then yield to other tasks until due.
            let left = quiet_until - now;
            if left <= SPIN {
                tokio::task::yield_now().await;
                continue;
            }
            let until = tokio::time::Instant::now() + left.saturating_sub(SPIN);
            self.read_by(until, false).await?;
        }
    }

    async fn send(&mut self, frame: &[u8]) -> Result<(), RtuError> {
        if self.opts.rts {
            self.port.set_rts(true).map_err(RtuError::Rts)?;
        }
        self.port.write_all(frame).await.map_err(RtuError::Io)?;
        self.port.flush().await.map_err(RtuError::Io)?;
        if self.opts.rts {
            // Keep driving the line until the UART has shifted out the last stop bit.
            let started = Instant::now();
            let limit = self.timing.wire(frame.len()) * 2 + Duration::from_millis(5);
            while self.port.unsent() > 0 && started.elapsed() < limit {
                tokio::time::sleep(self.timing.char_time).await;
            }
            tokio::time::sleep(self.timing.char_time).await;
            self.port.set_rts(false).map_err(RtuError::Rts)?;
        }
        self.last_busy = Instant::now();
        Ok(())
    }

    /// One transaction: send `pdu` to `unit`, return the answer's PDU (exceptions included)
    /// within `timeout`. After any failure the next transaction first waits for a quiet line.
    pub async fn transact(
        &mut self,
        unit: u8,
        pdu: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, RtuError> {
        self.sent_at = None;
        let r = match self.transact_inner(unit, pdu, timeout).await {
            Err(RtuError::Silence(_)) => Err(RtuError::Silence(timeout)),
            r => r,
        };
        self.last_rtt = self.sent_at.map_or(Duration::ZERO, |t| t.elapsed());
        if r.is_err() {
            // Quiet for half the timeout from now, not from the last byte: after a silent
            // timeout that byte was our request, a whole timeout ago, and a reply a little late
            // would be read as the next request's answer.
            self.settle = Some((timeout / 2).max(self.timing.t35));
            self.last_busy = Instant::now();
        }
        r
    }

    async fn transact_inner(
        &mut self,
        unit: u8,
        pdu: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, RtuError> {
        self.quiet().await?;
        let frame = adu(unit, pdu);
        self.sent_at = Some(Instant::now());
        self.send(&frame).await?;
        let deadline = tokio::time::Instant::now() + timeout;
        self.buf.clear();
        if self.opts.echo {
            match self.read_until(frame.len(), deadline).await {
                // Bytes came, but not a whole echo: an answer without the echo before it.
                Err(RtuError::Silence(_)) if !self.buf.is_empty() => {
                    return Err(RtuError::Echo {
                        got: std::mem::take(&mut self.buf),
                    });
                }
                r => r?,
            }
            if self.buf[..frame.len().min(self.buf.len())] != frame[..] {
                return Err(RtuError::Echo {
                    got: std::mem::take(&mut self.buf),
                });
            }
            self.buf.drain(..frame.len());
        }
        if unit == 0 {
            return Ok(Vec::new()); // broadcast: nobody answers
        }
        // Read until the header tells the length and that many bytes are in.
        let mut want = 2;
        loop {
            if let Err(e) = self.read_until(want, deadline).await {
                return Err(match e {
                    RtuError::Silence(_) if !self.buf.is_empty() => RtuError::BadCrc {
                        got: std::mem::take(&mut self.buf),
                    },
                    e => e,
                });
            }
            match answer_len(&self.buf) {
                None => want = self.buf.len() + 1,
                Some(0) => {
                    // No length in the header: take what arrives until the line goes quiet.
                    self.read_quiet(deadline).await?;
                    break;
                }
                Some(n) if self.buf.len() >= n => {
                    if rtu_crc_ok(&self.buf[..n]) {
                        self.buf.truncate(n);
                        break;
                    }
                    // Bad CRC at the expected length: misaligned behind noise, or corrupt.
                    // Wait for the line to go quiet, then look for a valid frame inside.
                    self.read_quiet(deadline).await?;
                    if let Some(f) = crate::proto::modbus::rtu::find_frames(&self.buf)
                        .into_iter()
                        .find(|f| f.dir == crate::proto::modbus::pdu::Direction::Response)
                    {
                        self.counts.late_bytes += f.start as u64;
                        self.buf.drain(..f.start);
                        self.buf.truncate(f.len);
                        break;
                    }
                    return Err(RtuError::BadCrc {
                        got: std::mem::take(&mut self.buf),
                    });
                }
                Some(n) => want = n,
            }
        }
        if !rtu_crc_ok(&self.buf) {
            return Err(RtuError::BadCrc {
                got: std::mem::take(&mut self.buf),
            });
        }
        if self.buf[0] != unit {
            return Err(RtuError::WrongUnit { got: self.buf[0] });
        }
        if self.buf[1] & 0x7F != pdu[0] {
            return Err(RtuError::WrongFunction { got: self.buf[1] });
        }
        let n = self.buf.len();
        Ok(self.buf[1..n - 2].to_vec())
    }

    /// Read until `buf` holds `want` bytes or the deadline passes.
    async fn read_until(
        &mut self,
        want: usize,
        deadline: tokio::time::Instant,
    ) -> Result<(), RtuError> {
        while self.buf.len() < want {
            if self.read_by(deadline, true).await?.is_none() {
                return Err(RtuError::Silence(Duration::ZERO));
            }
        }
        Ok(())
    }

    /// Read until the line has been quiet for t3.5 (a frame's end) or the deadline passes.
    async fn read_quiet(&mut self, deadline: tokio::time::Instant) -> Result<(), RtuError> {
        // USB adapters deliver in bursts; give them a little more than t3.5.
        let gap = self.timing.t35.max(Duration::from_millis(3));
        while self.buf.len() <= 512 {
            let until = (tokio::time::Instant::now() + gap).min(deadline);
            if self.read_by(until, true).await?.is_none() {
                break;
            }
        }
        Ok(())
    }
}

/// A serial line's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineSettings {
    /// Baud rate.
    pub baud: u32,
    /// Data bits (7 or 8).
    pub data_bits: u8,
    /// Parity.
    pub parity: Parity,
    /// Stop bits (1 or 2).
    pub stop_bits: u8,
}

impl LineSettings {
    /// A serial target's port path and line settings; `None` for the other targets.
    pub fn of(target: &crate::target::Target) -> Option<(&str, LineSettings)> {
        match target {
            crate::target::Target::Rtu {
                path,
                baud,
                data_bits,
                parity,
                stop_bits,
                ..
            } => Some((
                path.as_str(),
                LineSettings {
                    baud: *baud,
                    data_bits: *data_bits,
                    parity: *parity,
                    stop_bits: *stop_bits,
                },
            )),
            _ => None,
        }
    }

    /// The line's timing.
    pub fn timing(&self) -> Timing {
        Timing::new(
            self.baud,
            bits_per_char(self.data_bits, self.parity != Parity::None, self.stop_bits),
        )
    }

    /// `19200-8E1`.
    pub fn text(&self) -> String {
        let p = match self.parity {
            Parity::None => 'N',
            Parity::Even => 'E',
            Parity::Odd => 'O',
        };
        format!("{}-{}{p}{}", self.baud, self.data_bits, self.stop_bits)
    }
}

/// Open a serial port for RTU, configured, with errors a technician can act on.
pub fn open_serial(path: &str, line: LineSettings) -> Result<tokio_serial::SerialStream, String> {
    use tokio_serial::{DataBits, StopBits};
    let data_bits = match line.data_bits {
        5 => DataBits::Five,
        6 => DataBits::Six,
        7 => DataBits::Seven,
        _ => DataBits::Eight,
    };
    let parity = match line.parity {
        Parity::None => tokio_serial::Parity::None,
        Parity::Even => tokio_serial::Parity::Even,
        Parity::Odd => tokio_serial::Parity::Odd,
    };
    let stop = if line.stop_bits == 2 {
        StopBits::Two
    } else {
        StopBits::One
    };
    if !Path::new(path).exists() {
        return Err(no_such_port_text(path));
    }
    let builder = tokio_serial::new(path, line.baud)
        .data_bits(data_bits)
        .parity(parity)
        .stop_bits(stop)
        .flow_control(tokio_serial::FlowControl::None);
    let port =
        tokio_serial::SerialStream::open(&builder).map_err(|e| describe_open(path, line, &e))?;
    Ok(port)
}

fn is_pty(path: &str) -> bool {
    std::fs::canonicalize(path)
        .ok()
        .and_then(|p| p.to_str().map(|s| s.starts_with("/dev/pts/")))
        .unwrap_or(false)
}

fn describe_open(path: &str, line: LineSettings, e: &tokio_serial::Error) -> String {
    use tokio_serial::ErrorKind as K;
    match e.kind {
        K::Io(io::ErrorKind::PermissionDenied) => permission_text(path),
        K::Io(io::ErrorKind::NotFound) => no_such_port_text(path),
        K::NoDevice => busy_text(path),
        _ if line.parity != Parity::None && is_pty(path) => format!(
            "{path}: this port refuses parity {} ({}). Linux pseudo-terminals accept no parity only: use frame=8N1 (or 8N2) on a pty",
            line.text(),
            e.description
        ),
        _ => format!(
            "{path}: cannot open or configure the port at {} ({}); check that the adapter supports this setting",
            line.text(),
            e.description
        ),
    }
}

/// A port that does not exist, in words.
pub fn no_such_port_text(path: &str) -> String {
    format!(
        "{path}: no such serial port. Is the adapter plugged in? `ls /dev/serial/by-id/` lists the ports this machine has"
    )
}

/// A port this user may not open, in words.
pub fn permission_text(path: &str) -> String {
    format!(
        "{path}: permission denied. Serial ports belong to the `dialout` group: `sudo usermod -aG dialout $USER`, then log in again (or run with sudo once to confirm)"
    )
}

/// A port another program holds, in words, naming it where the OS says.
pub fn busy_text(path: &str) -> String {
    let holders = holders_of(path);
    if holders.is_empty() {
        format!("{path}: the port is busy (another program has it open); close it and try again")
    } else {
        format!(
            "{path}: the port is busy, held by {}; stop it (or use the same program for both jobs) and try again",
            holders.join(", ")
        )
    }
}

/// Processes that hold `path` open, as `/proc/*/fd` shows them (`name (pid N)`); empty where
/// the OS does not tell (other users' processes without root).
pub fn holders_of(path: &str) -> Vec<String> {
    let Ok(target) = std::fs::canonicalize(path) else {
        return Vec::new();
    };
    let me = std::process::id().to_string();
    let mut out = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for p in procs.flatten() {
        let pid = p.file_name().to_string_lossy().to_string();
        if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        if fds
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l == target))
        {
            let name = std::fs::read_to_string(p.path().join("comm"))
                .map(|s| s.trim().to_string())
                .unwrap_or_default();
            out.push(format!("{name} (pid {pid})"));
        }
    }
    out
}

/// The latency timer of the USB serial adapter behind `path`, in ms, and the sysfs file that
/// holds it; `None` when the port has none (not a USB adapter, or the kernel does not say).
pub fn latency_timer(path: &str) -> Option<(u32, String)> {
    let real = std::fs::canonicalize(path).ok()?;
    let name = real.file_name()?.to_str()?.to_string();
    let file = format!("/sys/bus/usb-serial/devices/{name}/latency_timer");
    let ms: u32 = std::fs::read_to_string(&file).ok()?.trim().parse().ok()?;
    Some((ms, file))
}

/// An FTDI USB adapter's latency timer, which merges frames and delays every answer by up to
/// its value: the advice to give when it is above 1 ms, after lowering it where permitted
/// (writing 1 is what the kernel's `ASYNC_LOW_LATENCY` flag does for FTDI chips).
pub fn latency_advice(path: &str) -> Option<String> {
    let (ms, file) = latency_timer(path)?;
    if ms <= 1 {
        return None;
    }
    if std::fs::write(&file, "1").is_ok() {
        return Some(format!(
            "{path}: lowered the USB adapter's latency timer from {ms} ms to 1 ms ({file})"
        ));
    }
    Some(format!(
        "{path}: the USB adapter's latency timer is {ms} ms, which merges frames and adds up to {ms} ms to every answer; lower it: `echo 1 | sudo tee {file}`"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::modbus::rtu::{encode_request, encode_response};
    use tokio_modbus::{Request, Response};

    fn fast() -> Timing {
        Timing::new(115_200, 10)
    }

    async fn answer(dev: &mut tokio::io::DuplexStream, reply: &[u8]) -> Vec<u8> {
        let mut req = [0u8; 8];
        dev.read_exact(&mut req).await.unwrap();
        dev.write_all(reply).await.unwrap();
        req.to_vec()
    }

    #[tokio::test]
    async fn reads_an_answer_and_names_another_unit() {
        let (a, mut dev) = tokio::io::duplex(1024);
        let mut w = RtuWire::new(Box::new(a), fast(), SerialOptions::default());
        let pdu = encode_request(&Request::ReadHoldingRegisters(0, 2));
        let ok = adu(
            3,
            &encode_response(&Response::ReadHoldingRegisters(vec![1, 2])),
        );
        let (got, req) = tokio::join!(
            w.transact(3, &pdu, Duration::from_secs(1)),
            answer(&mut dev, &ok)
        );
        assert_eq!(req, adu(3, &pdu));
        assert_eq!(got.unwrap(), ok[1..ok.len() - 2]);
        let other = adu(
            4,
            &encode_response(&Response::ReadHoldingRegisters(vec![1, 2])),
        );
        let (got, _) = tokio::join!(
            w.transact(3, &pdu, Duration::from_secs(1)),
            answer(&mut dev, &other)
        );
        assert!(
            matches!(got, Err(RtuError::WrongUnit { got: 4 })),
            "{got:?}"
        );
    }

    #[tokio::test]
    async fn a_late_reply_is_drained_not_taken() {
        let (a, mut dev) = tokio::io::duplex(1024);
        let mut w = RtuWire::new(Box::new(a), fast(), SerialOptions::default());
        let pdu = encode_request(&Request::ReadHoldingRegisters(0, 1));
        let late = adu(
            1,
            &encode_response(&Response::ReadHoldingRegisters(vec![111])),
        );
        let good = adu(
            1,
            &encode_response(&Response::ReadHoldingRegisters(vec![222])),
        );
        // First request: the device answers after the timeout.
        let t = Duration::from_millis(60);
        let (first, ()) = tokio::join!(w.transact(1, &pdu, t), async {
            let mut req = [0u8; 8];
            dev.read_exact(&mut req).await.unwrap();
            tokio::time::sleep(Duration::from_millis(80)).await;
            dev.write_all(&late).await.unwrap();
        });
        assert!(matches!(first, Err(RtuError::Silence(_))), "{first:?}");
        let (second, _) = tokio::join!(w.transact(1, &pdu, t), answer(&mut dev, &good));
        assert_eq!(
            second.unwrap(),
            good[1..good.len() - 2],
            "the late 111 was drained"
        );
        assert_eq!(w.counts.late_bytes, late.len() as u64);
    }

    #[tokio::test]
    async fn bad_crc_and_echo_are_named() {
        let (a, mut dev) = tokio::io::duplex(1024);
        let mut w = RtuWire::new(Box::new(a), fast(), SerialOptions::default());
        let pdu = encode_request(&Request::ReadHoldingRegisters(0, 1));
        let mut bad = adu(
            1,
            &encode_response(&Response::ReadHoldingRegisters(vec![5])),
        );
        let n = bad.len();
        bad[n - 1] ^= 0xFF;
        let (got, _) = tokio::join!(
            w.transact(1, &pdu, Duration::from_millis(200)),
            answer(&mut dev, &bad)
        );
        assert!(matches!(got, Err(RtuError::BadCrc { .. })), "{got:?}");

        let (a, mut dev) = tokio::io::duplex(1024);
        let opts = SerialOptions {
            echo: true,
            rts: false,
        };
        let mut w = RtuWire::new(Box::new(a), fast(), opts);
        let good = adu(
            1,
            &encode_response(&Response::ReadHoldingRegisters(vec![9])),
        );
        let (got, ()) = tokio::join!(w.transact(1, &pdu, Duration::from_millis(500)), async {
            let mut req = [0u8; 8];
            dev.read_exact(&mut req).await.unwrap();
            dev.write_all(&req).await.unwrap(); // the echo
            dev.write_all(&good).await.unwrap();
        });
        assert_eq!(got.unwrap(), good[1..good.len() - 2]);
    }
}
