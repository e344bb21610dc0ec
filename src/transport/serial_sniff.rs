//! A passive tap on a serial line (`capture --serial DEV`): a [`LiveSource`] that reads a port
//! and never writes to it. The port is opened read-only (`O_RDONLY | O_NOCTTY`: no write can
//! reach the line, whatever happens later in the program), set to the line's baud and framing
//! in raw mode with `INPCK | PARMRK` and `IGNPAR` off, so that characters received with a
//! framing or parity error arrive marked (`0xFF 0x00 X`) instead of silently dropped or
//! passed as good. A thread reads the port and stamps each chunk with the time it arrived;
//! [`crate::capture::serial::LineFramer`] turns the chunks into RTU frames; each frame is handed out
//! as a packet of link type 252 (exported PDU, dissector `mbrtu`), which `tshark -r` decodes
//! as Modbus RTU with no options, marked outbound (a master's request) or inbound (an answer).
//!
//! Opening the port still raises its DTR and RTS lines, as every open of a tty on Linux does:
//! an RS-485 adapter that drives the bus while RTS is up (rather than switching by itself, as
//! most USB adapters do) must not be used to sniff.
//!
//! An FTDI adapter's latency timer (16 ms by default) merges frames into one delivery; the
//! framer re-splits them by CRC, but times become coarse. The sniffer does not change the
//! timer: [`SerialSniffer::warnings`] says what to run.

use std::{
    fs::File,
    io::{self, Read},
    os::{fd::AsFd, unix::fs::OpenOptionsExt},
    path::Path,
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc, Arc,
    },
    thread,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use nix::{
    fcntl::OFlag,
    poll::{PollFd, PollFlags, PollTimeout},
    sys::termios::{self, BaudRate, ControlFlags, InputFlags, SetArg, SpecialCharacterIndices},
};

use crate::{
    capture::{
        reader::{Linktype, Packet, PacketDirection},
        serial::{self, LineFramer},
        source::{LiveSource, SourceStats},
        writer::Interface,
    },
    proto::modbus::pdu::Direction,
    target::Parity,
    transport::rtu::{self, LineSettings},
};

/// What the reading thread sends: a chunk and the time it arrived, or why it stopped.
type Chunk = Result<(i64, Vec<u8>), io::Error>;

/// A serial port being sniffed.
pub struct SerialSniffer {
    path: String,
    settings: LineSettings,
    iface: Interface,
    framer: LineFramer,
    rx: mpsc::Receiver<Chunk>,
    stop: Arc<AtomicBool>,
    reader: Option<thread::JoinHandle<()>>,
    packets: u64,
    warnings: Vec<String>,
    /// Frames ready to hand out: (time, exported-PDU packet bytes, direction).
    ready: Vec<(i64, Vec<u8>, Direction)>,
    failed: Option<io::Error>,
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// The termios speed of a baud rate; `None` for rates Linux has no constant for.
fn baud_rate(baud: u32) -> Option<BaudRate> {
    Some(match baud {
        300 => BaudRate::B300,
        600 => BaudRate::B600,
        1200 => BaudRate::B1200,
        1800 => BaudRate::B1800,
        2400 => BaudRate::B2400,
        4800 => BaudRate::B4800,
        9600 => BaudRate::B9600,
        19_200 => BaudRate::B19200,
        38_400 => BaudRate::B38400,
        57_600 => BaudRate::B57600,
        115_200 => BaudRate::B115200,
        230_400 => BaudRate::B230400,
        460_800 => BaudRate::B460800,
        500_000 => BaudRate::B500000,
        576_000 => BaudRate::B576000,
        921_600 => BaudRate::B921600,
        1_000_000 => BaudRate::B1000000,
        _ => return None,
    })
}

/// The pcapng interface of a sniffed port: link type 252, the port as `if_name`, its settings
/// in `if_description`.
#[must_use]
pub fn interface(path: &str, settings: LineSettings) -> Interface {
    Interface {
        linktype: serial::linktype::EXPORTED_PDU,
        snaplen: 0,
        name: Some(path.to_string()),
        description: Some(format!(
            "Modbus RTU sniffed at {} by plcprobe (requests outbound, answers inbound)",
            settings.text()
        )),
    }
}

/// Open `path` read-only and start sniffing it at `settings`.
///
/// # Errors
/// A sentence a technician can act on: no such port, permission (the `dialout` group), the
/// port busy (and who holds it), a baud rate the OS cannot set, a port that refuses the
/// settings.
pub fn open(path: &str, settings: LineSettings) -> Result<SerialSniffer, String> {
    if !Path::new(path).exists() {
        return Err(rtu::no_such_port_text(path));
    }
    let Some(speed) = baud_rate(settings.baud) else {
        return Err(format!(
            "{path}: baud {} is not a rate this OS can set; use a standard rate (1200 … 115200, 230400, 460800, 921600)",
            settings.baud
        ));
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NOCTTY | OFlag::O_NONBLOCK).bits())
        .open(path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::PermissionDenied => rtu::permission_text(path),
            io::ErrorKind::NotFound => rtu::no_such_port_text(path),
            _ if e.raw_os_error() == Some(nix::libc::EBUSY) => rtu::busy_text(path),
            _ => format!("{path}: cannot open the port ({e})"),
        })?;
    configure(&file, speed, settings).map_err(|e| {
        format!(
            "{path}: cannot set the port to {} for sniffing ({e}); is it a serial port?",
            settings.text()
        )
    })?;
    let mut warnings = Vec::new();
    if let Some((ms, sysfs)) = rtu::latency_timer(path) {
        if ms > 1 {
            warnings.push(format!(
                "{path}: the USB adapter's latency timer is {ms} ms: it merges frames and blurs their times. The sniffer leaves it as it is; to lower it: `echo 1 | sudo tee {sysfs}`"
            ));
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let reader = {
        let stop = Arc::clone(&stop);
        thread::Builder::new()
            .name("serial-sniff".into())
            .spawn(move || read_port(file, &tx, &stop))
            .map_err(|e| format!("{path}: cannot start the reading thread ({e})"))?
    };
    Ok(SerialSniffer {
        path: path.to_string(),
        settings,
        iface: interface(path, settings),
        framer: LineFramer::new(settings.timing(), true),
        rx,
        stop,
        reader: Some(reader),
        packets: 0,
        warnings,
        ready: Vec::new(),
        failed: None,
    })
}

/// Raw mode at the line's settings, errors marked, nothing echoed or translated.
fn configure(file: &File, speed: BaudRate, s: LineSettings) -> nix::Result<()> {
    let fd = file.as_fd();
    let mut t = termios::tcgetattr(fd)?;
    termios::cfmakeraw(&mut t);
    t.input_flags &= !(InputFlags::IGNPAR | InputFlags::IGNBRK | InputFlags::BRKINT);
    t.input_flags &= !(InputFlags::ISTRIP | InputFlags::IXON | InputFlags::IXOFF);
    t.input_flags |= InputFlags::INPCK | InputFlags::PARMRK;
    t.control_flags &= !(ControlFlags::CSIZE
        | ControlFlags::PARENB
        | ControlFlags::PARODD
        | ControlFlags::CSTOPB
        | ControlFlags::CRTSCTS
        | ControlFlags::HUPCL);
    t.control_flags |= ControlFlags::CLOCAL | ControlFlags::CREAD;
    t.control_flags |= if s.data_bits == 7 {
        ControlFlags::CS7
    } else {
        ControlFlags::CS8
    };
    match s.parity {
        Parity::None => {}
        Parity::Even => t.control_flags |= ControlFlags::PARENB,
        Parity::Odd => t.control_flags |= ControlFlags::PARENB | ControlFlags::PARODD,
    }
    if s.stop_bits == 2 {
        t.control_flags |= ControlFlags::CSTOPB;
    }
    t.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
    t.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
    termios::cfsetspeed(&mut t, speed)?;
    termios::tcsetattr(fd, SetArg::TCSANOW, &t)
}

/// The reading thread: wait for bytes (100 ms at a time, to see `stop`), read what is there,
/// stamp it, send it.
fn read_port(mut file: File, tx: &mpsc::Sender<Chunk>, stop: &AtomicBool) {
    let mut buf = vec![0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        let ready = {
            let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLIN)];
            match nix::poll::poll(&mut fds, PollTimeout::from(100u16)) {
                Ok(n) => n > 0,
                Err(nix::errno::Errno::EINTR) => false,
                Err(e) => {
                    let _ = tx.send(Err(io::Error::from(e)));
                    return;
                }
            }
        };
        if !ready {
            continue;
        }
        match file.read(&mut buf) {
            Ok(0) => {
                let _ = tx.send(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the port was closed (adapter unplugged?)",
                )));
                return;
            }
            Ok(n) => {
                if tx.send(Ok((now_ns(), buf[..n].to_vec()))).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        }
    }
}

impl SerialSniffer {
    /// Things the technician should know before trusting the capture (an FTDI latency timer).
    #[must_use]
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The port as given.
    #[must_use]
    pub fn path(&self) -> &str {
        &self.path
    }

    fn take_chunk(&mut self, c: Chunk) {
        match c {
            Ok((ts, bytes)) => self.framer.push(ts, &bytes, &mut queue(&mut self.ready)),
            Err(e) => self.failed = Some(e),
        }
    }

    fn hand_out(&mut self, f: &mut dyn FnMut(&Packet<'_>)) -> usize {
        let n = self.ready.len();
        for (ts_ns, data, dir) in self.ready.drain(..) {
            self.packets += 1;
            f(&Packet {
                frame: self.packets,
                ts_ns,
                linktype: Linktype(i32::from(serial::linktype::EXPORTED_PDU)),
                data: &data,
                orig_len: u32::try_from(data.len()).unwrap_or(u32::MAX),
                direction: match dir {
                    Direction::Query => PacketDirection::Outbound,
                    Direction::Response => PacketDirection::Inbound,
                },
                if_name: Some(&self.path),
            });
        }
        n
    }

    /// Hand out what is still held as frames (end of capture).
    pub fn flush(&mut self, f: &mut dyn FnMut(&Packet<'_>)) -> usize {
        while let Ok(c) = self.rx.try_recv() {
            self.take_chunk(c);
        }
        self.framer.finish(&mut queue(&mut self.ready));
        self.hand_out(f)
    }
}

/// The framer's callback: each frame queued as a link type 252 packet, with its time and
/// direction, until `hand_out`.
fn queue(ready: &mut Vec<(i64, Vec<u8>, Direction)>) -> impl FnMut(&serial::Frame<'_>) + '_ {
    |f| ready.push((f.ts_ns, serial::mbrtu_packet(f.bytes), f.dir))
}

impl LiveSource for SerialSniffer {
    fn interface(&self) -> &Interface {
        &self.iface
    }

    fn finish(&mut self, f: &mut dyn FnMut(&Packet<'_>)) -> usize {
        self.flush(f)
    }

    fn poll(&mut self, timeout: Duration, f: &mut dyn FnMut(&Packet<'_>)) -> io::Result<usize> {
        if let Some(e) = self.failed.take() {
            return Err(io::Error::new(e.kind(), format!("{}: {e}", self.path)));
        }
        match self.rx.recv_timeout(timeout) {
            Ok(c) => {
                self.take_chunk(c);
                while let Ok(c) = self.rx.try_recv() {
                    self.take_chunk(c);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                self.failed
                    .get_or_insert_with(|| io::Error::other("the reading thread stopped"));
            }
        }
        // Silence since the last byte ends the frame that is held.
        self.framer.idle(now_ns(), &mut queue(&mut self.ready));
        let n = self.hand_out(f);
        if n == 0 {
            if let Some(e) = self.failed.take() {
                return Err(io::Error::new(e.kind(), format!("{}: {e}", self.path)));
            }
        }
        Ok(n)
    }

    fn stats(&mut self) -> SourceStats {
        let fs = self.framer.stats();
        let other = fs.marked - fs.breaks;
        // PARMRK marks framing and parity errors alike: a marked 0 is a break or a framing
        // error; with parity on, any other marked character is counted as a parity error.
        let (framing, parity) = if self.settings.parity == Parity::None {
            (fs.marked, 0)
        } else {
            (fs.breaks, other)
        };
        SourceStats {
            packets: self.packets,
            kernel_drops: 0,
            framing_errors: framing,
            parity_errors: parity,
            overruns: 0,
        }
    }
}

impl Drop for SerialSniffer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.reader.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::modbus::rtu::adu;
    use std::{io::Write, os::fd::AsRawFd};

    fn line() -> LineSettings {
        LineSettings {
            baud: 19_200,
            data_bits: 8,
            parity: Parity::None,
            stop_bits: 1,
        }
    }

    #[test]
    fn frames_on_a_pty_come_out_as_exported_pdus_and_nothing_is_written() {
        let pty = nix::pty::openpty(None, None).unwrap();
        let path = std::fs::read_link(format!("/proc/self/fd/{}", pty.slave.as_raw_fd()))
            .unwrap()
            .to_string_lossy()
            .to_string();
        let mut sn = open(&path, line()).unwrap();
        assert_eq!(sn.interface().linktype, 252);
        let mut master = File::from(pty.master);
        // 0xFF in the data: the kernel doubles it (PARMRK), the framer undoes that.
        let q = adu(3, &[3, 0, 0, 0, 1]);
        let r = adu(3, &[3, 2, 0xFF, 0xFF]);
        let mut both = q.clone();
        both.extend(&r);
        master.write_all(&both).unwrap();
        let mut got = Vec::new();
        for _ in 0..50 {
            sn.poll(Duration::from_millis(20), &mut |p| {
                got.push((
                    p.data[16..].to_vec(),
                    p.direction,
                    p.if_name.map(str::to_string),
                ));
            })
            .unwrap();
            if got.len() >= 2 {
                break;
            }
        }
        assert_eq!(
            got,
            vec![
                (q, PacketDirection::Outbound, Some(path.clone())),
                (r, PacketDirection::Inbound, Some(path.clone()))
            ]
        );
        assert_eq!(sn.stats().packets, 2);
        // The sniffer wrote nothing: the master end has nothing to read.
        let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLIN)];
        assert_eq!(
            nix::poll::poll(&mut fds, PollTimeout::from(100u16)).unwrap(),
            0
        );
    }

    #[test]
    fn port_errors_are_said_in_words() {
        let e = open("/dev/ttyNOSUCH9", line()).err().unwrap();
        assert!(e.contains("no such serial port"), "{e}");
        let mut odd = line();
        odd.baud = 12_345;
        let e = open("/dev/null", odd).err().unwrap();
        assert!(e.contains("not a rate"), "{e}");
        let e = open("/dev/null", line()).err().unwrap();
        assert!(e.contains("is it a serial port"), "{e}");
    }
}
