//! A bit-level model of a serial line and a UART, for what a Linux pseudo-terminal cannot show:
//! a pty accepts baud, parity and stop-bit settings and ignores them, so a baud-rate/framing sweep
//! or a passive "listen" analysis needs a model of a UART receiving at the wrong settings.
//!
//! # Contract
//!
//! - [`Setting`] is one side's port configuration (baud, data bits, parity, stop bits);
//!   [`Setting::parse`]`(9600, "8E1")` builds one, [`Setting::char_time`] is one character's
//!   time on the wire, `(1 + data + parity + stop) / baud` seconds.
//! - [`transmit`] serialises bursts of bytes at the true setting `tx` into a line waveform (idle
//!   high; start bit low; data bits LSB first; parity bit if any; stop bits high; the bytes of a
//!   burst back to back) kept as a list of level transitions, and receives it with a UART set to
//!   `rx`, as a 16x-oversampling UART (a 16550 or an FTDI/CH340/CP210x chip) does:
//!   - the receive clock ticks 16 times per `rx` bit from t = 0; a start bit is detected on the
//!     first tick at or after a falling (mark → space) edge; bits are sampled once, at tick 8 of
//!     each bit (the start bit's centre, then every 16 ticks);
//!   - a start bit that is high again at its centre is a false start (a glitch): ignored;
//!   - `rx.data_bits` data bits are read LSB first (a 7-bit receiver delivers bytes < 0x80), then
//!     the parity bit when `rx` has parity (`parity_error` when it does not match), then the
//!     first stop bit only (`framing_error` when it is low; like a 16550, a receiver set to 2
//!     stop bits checks only the first);
//!   - after the stop bit's sample the receiver hunts for the next falling edge: a line held low
//!     (a break, or a slower sender's long low bits) produces one character and nothing more
//!     until it has gone high and fallen again;
//!   - a break (start, data, parity and stop samples all low) is reported as
//!     `RxByte { byte: 0, framing_error: true, parity_error: false }`: the 16550's BI clears
//!     FE/PE and delivers a 0x00 character, which is what `read()` sees on every setting here.
//!   - A transmitter with fewer than 8 data bits sends the low bits of each byte only.
//!     (TI's TL16C550 datasheet describes a different resynchronisation after a framing error:
//!     it takes the low stop bit as the next start bit. The falling-edge rule above is the
//!     common one, and the one this model uses.)
//! - [`delivered`] is what Linux's tty layer hands to `read()` for those characters on a port
//!   configured the way tokio-serial (serialport-rs) configures it (see below).
//! - [`line_pair`] is an in-memory serial line for async tests: two [`LineEnd`]s, each
//!   `AsyncRead + AsyncWrite + Unpin + Send + 'static`; one `write()` call is one burst, which
//!   the other end reads as `delivered(transmit([(0.0, bytes)], writer, reader), reader)` under
//!   the two ends' settings at the time of the write. A receiver starts each burst idle (the
//!   line is assumed to have been idle at least a character between writes). With `pace`, a
//!   burst becomes readable only once it has been on the wire: the line is busy for `bytes ×
//!   char_time` of the writer's setting after the previous burst ended (a burst arrives whole,
//!   as through a USB adapter's latency timer). `write()` never blocks; writing to an end whose
//!   peer is gone succeeds (bytes on a wire nobody listens to); `shutdown()` gives the peer EOF.
//!
//! # What Linux delivers (read in the sources)
//!
//! serialport-rs 4.10.1 (the version tokio-serial 5.5.0 → mio-serial 5.0.7 resolves to here,
//! in `~/.cargo/registry`; upstream HEAD 72692c7c, 4.9.1-alpha0 on its main branch, is the same):
//! `src/posix/tty.rs` `TTYPort::open` sets `c_cflag |= CREAD | CLOCAL`, calls `cfmakeraw`
//! (clears `IGNBRK`, `BRKINT`, `PARMRK`, `ISTRIP`, `INLCR`, `IGNCR`, `ICRNL`, `IXON`,
//! `ICANON`, `ISIG`, `ECHO`), then `src/posix/termios.rs` `set_parity`:
//! - `Parity::None`: `c_cflag &= !(PARENB | PARODD)`, `c_iflag &= !INPCK`, `c_iflag |= IGNPAR`;
//! - `Parity::Odd` / `Even`: `PARENB` (and `PARODD`), `c_iflag |= INPCK`, `c_iflag &= !IGNPAR`.
//!
//! Linux `drivers/tty/n_tty.c`, `n_tty_receive_parity_error` (for characters flagged
//! `TTY_PARITY` or `TTY_FRAME`): `if INPCK { if IGNPAR drop; else if PARMRK put \377 \0 c;
//! else put \0 } else put c`; `n_tty_receive_break`: without `IGNBRK`, `BRKINT` and `PARMRK`
//! it puts `\0`. `n_tty_set_termios` takes the "real raw" path (flags ignored, bytes copied)
//! when `(IGNBRK || (!BRKINT && !PARMRK)) && (IGNPAR || !INPCK)` and the driver is
//! `TTY_DRIVER_REAL_RAW`. `drivers/tty/serial/8250/8250_port.c`: `read_status_mask` gets
//! `FE | PE` only with `INPCK`, `BI` only with `IGNBRK | BRKINT | PARMRK`; `ignore_status_mask`
//! gets `PE | FE` with `IGNPAR`; `serial8250_read_char` masks the status with
//! `read_status_mask` before `uart_insert_char` tests it against `ignore_status_mask`, so with
//! `INPCK` off a character with FE or PE is inserted as a normal one (`IGNPAR` drops nothing);
//! on `BI` it clears `FE | PE`, and the character is 0x00. `ftdi_sio` (`ftdi_process_packet`)
//! passes `TTY_PARITY`, `TTY_FRAME` and `TTY_BREAK` up to `n_tty` unmasked, but per USB packet
//! (up to 62 characters, one status byte): with parity on, one bad character can zero its
//! packet's neighbours too. This model is per character, as an 8250-class UART is.
//!
//! So, on a port opened by tokio-serial:
//! - parity Even or Odd (`INPCK`, no `IGNPAR`, no `PARMRK`): a character with a parity or
//!   framing error, or a break, reads as 0x00; the others as received;
//! - parity None (no `INPCK`, `IGNPAR`): every character reads as sampled, framing errors
//!   included (a break is 0x00); nothing is dropped. Hence an 8E1 device read at 8N1 seems to
//!   work: the parity bit is taken as the stop bit, a low one is a framing error nobody sees.
//!
//! Overruns are not modelled (the model's receiver never falls behind).

#![allow(dead_code)] // a test helper: not every item is used by every test

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};

/// A character's parity bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parity {
    /// No parity bit.
    None,
    /// The parity bit makes the count of ones (data + parity) even.
    Even,
    /// The parity bit makes the count of ones (data + parity) odd.
    Odd,
}

/// One end's serial port configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setting {
    /// Bits per second.
    pub baud: u32,
    /// Data bits per character, 5 to 8.
    pub data_bits: u8,
    /// The parity bit, if any.
    pub parity: Parity,
    /// Stop bits, 1 or 2.
    pub stop_bits: u8,
}

impl Setting {
    /// `Setting::parse(9600, "8E1")`: data bits (5-8), parity (N/E/O, either case), stop bits
    /// (1-2). Panics on anything else (a test helper).
    pub fn parse(baud: u32, frame: &str) -> Setting {
        let b = frame.as_bytes();
        assert!(
            b.len() == 3 && baud > 0,
            "bad serial setting {baud} {frame:?}: want a baud > 0 and e.g. \"8E1\""
        );
        let data_bits = match b[0] {
            c @ b'5'..=b'8' => c - b'0',
            _ => panic!("bad data bits in {frame:?}"),
        };
        let parity = match b[1].to_ascii_uppercase() {
            b'N' => Parity::None,
            b'E' => Parity::Even,
            b'O' => Parity::Odd,
            _ => panic!("bad parity in {frame:?}"),
        };
        let stop_bits = match b[2] {
            c @ b'1'..=b'2' => c - b'0',
            _ => panic!("bad stop bits in {frame:?}"),
        };
        Setting {
            baud,
            data_bits,
            parity,
            stop_bits,
        }
    }

    /// Bits per character: start + data + parity + stop.
    pub fn frame_bits(self) -> u32 {
        1 + u32::from(self.data_bits)
            + u32::from(self.parity != Parity::None)
            + u32::from(self.stop_bits)
    }

    /// One bit's time in seconds.
    pub fn bit_time(self) -> f64 {
        1.0 / f64::from(self.baud)
    }

    /// One character's time on the wire in seconds.
    pub fn char_time(self) -> f64 {
        f64::from(self.frame_bits()) / f64::from(self.baud)
    }
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = match self.parity {
            Parity::None => 'N',
            Parity::Even => 'E',
            Parity::Odd => 'O',
        };
        write!(f, "{} {}{}{}", self.baud, self.data_bits, p, self.stop_bits)
    }
}

/// One character as a UART receives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxByte {
    /// The data bits sampled (a break: 0).
    pub byte: u8,
    /// The first stop bit was low (a break too).
    pub framing_error: bool,
    /// The parity bit did not match (never with parity None, never on a break).
    pub parity_error: bool,
}

/// The parity bit (`true` = high) that `parity` gives the low `bits` bits of `byte`.
fn parity_bit(parity: Parity, byte: u8, bits: u8) -> bool {
    let odd_ones = (u32::from(byte) & ((1u32 << bits) - 1)).count_ones() % 2 == 1;
    match parity {
        Parity::None => true,
        Parity::Even => odd_ones,
        Parity::Odd => !odd_ones,
    }
}

/// A line's waveform: its level changes, in time order, each a flip of the level before it;
/// the line is high (idle) before the first and after the last. Read forward only, through a
/// cursor: the receiver's questions come in time order, so a whole reception is linear.
struct Wave {
    /// (time in seconds, level from then on: `true` high/mark, `false` low/space).
    edges: Vec<(f64, bool)>,
    /// The first edge later than every time asked about so far.
    next: usize,
}

impl Wave {
    fn build(bursts: &[(f64, Vec<u8>)], tx: Setting) -> Wave {
        let bit = tx.bit_time();
        let n = tx.frame_bits();
        let d = u32::from(tx.data_bits);
        // The frame's bits, LSB (the start bit, 0) first: start, data, parity, stop (1s).
        let stop = ((1u32 << tx.stop_bits) - 1) << (n - u32::from(tx.stop_bits));
        let mut edges: Vec<(f64, bool)> = Vec::new();
        let mut level = true;
        let mut t = 0.0;
        for (idle, bytes) in bursts {
            assert!(*idle >= 0.0, "negative idle time {idle}");
            let start = t + idle;
            for (j, &byte) in bytes.iter().enumerate() {
                let mut frame = ((u32::from(byte) & ((1 << d) - 1)) << 1) | stop;
                if tx.parity != Parity::None {
                    frame |= u32::from(parity_bit(tx.parity, byte, tx.data_bits)) << (1 + d);
                }
                let t0 = start + f64::from(j as u32 * n) * bit;
                for k in 0..n {
                    let b = (frame >> k) & 1 == 1;
                    if b != level {
                        edges.push((t0 + f64::from(k) * bit, b));
                        level = b;
                    }
                }
            }
            t = start + f64::from(bytes.len() as u32 * n) * bit;
        }
        Wave { edges, next: 0 }
    }

    /// Move the cursor past every edge at or before `t`.
    fn advance(&mut self, t: f64) {
        while self.next < self.edges.len() && self.edges[self.next].0 <= t {
            self.next += 1;
        }
    }

    /// The level at `t`, no earlier than any time asked before (a change at `t` has happened).
    fn level(&mut self, t: f64) -> bool {
        self.advance(t);
        match self.next {
            0 => true,
            i => self.edges[i - 1].1,
        }
    }

    /// The first falling edge strictly after `t`, no earlier than any time asked before.
    fn fall_after(&mut self, t: f64) -> Option<f64> {
        self.advance(t);
        // Levels alternate: the next edge, or the one after it, falls.
        self.edges[self.next..]
            .iter()
            .take(2)
            .find(|e| !e.1)
            .map(|e| e.0)
    }
}

/// Serialise `bursts` (idle time before each in seconds, then its bytes back to back) at the
/// true setting `tx` and receive them with a UART set to `rx` (see the module header).
pub fn transmit(bursts: &[(f64, Vec<u8>)], tx: Setting, rx: Setting) -> Vec<RxByte> {
    let mut wave = Wave::build(bursts, tx);
    let tick = rx.bit_time() / 16.0;
    let has_parity = rx.parity != Parity::None;
    let mut out = Vec::with_capacity(bursts.iter().map(|b| b.1.len()).sum());
    let mut hunt_from = f64::NEG_INFINITY;
    while let Some(edge) = wave.fall_after(hunt_from) {
        // The first tick of the receive clock that sees the line low.
        let detect = (edge / tick).ceil() * tick;
        let sample = |k: u32| detect + f64::from(8 + 16 * k) * tick;
        if wave.level(sample(0)) {
            // False start: high again at the start bit's centre.
            hunt_from = sample(0);
            continue;
        }
        let mut byte = 0u8;
        let mut any_high = false;
        for i in 0..rx.data_bits {
            if wave.level(sample(1 + u32::from(i))) {
                byte |= 1 << i;
                any_high = true;
            }
        }
        let mut k = 1 + u32::from(rx.data_bits);
        let mut parity_error = false;
        if has_parity {
            let p = wave.level(sample(k));
            any_high |= p;
            parity_error = p != parity_bit(rx.parity, byte, rx.data_bits);
            k += 1;
        }
        let stop = wave.level(sample(k));
        hunt_from = sample(k);
        out.push(if !stop && !any_high {
            RxByte {
                byte: 0,
                framing_error: true,
                parity_error: false,
            }
        } else {
            RxByte {
                byte,
                framing_error: !stop,
                parity_error,
            }
        });
    }
    out
}

/// What `read()` returns on Linux for the characters `rx` received by a port set to
/// `rx_setting` as tokio-serial sets it: with parity, an erroneous character (parity, framing,
/// break) reads as 0x00; without, every character reads as sampled (see the module header).
pub fn delivered(rx: &[RxByte], rx_setting: Setting) -> Vec<u8> {
    let check = rx_setting.parity != Parity::None; // INPCK
    rx.iter()
        .map(|r| {
            if check && (r.parity_error || r.framing_error) {
                0
            } else {
                r.byte
            }
        })
        .collect()
}

/// A burst in flight: readable from `at` (`None`: at once).
struct Burst {
    at: Option<Instant>,
    bytes: Vec<u8>,
}

/// A burst not yet readable: its bytes, a timer that ends 2 ms before it is due (none when
/// it is due sooner), and when it is due.
type Waiting = (Vec<u8>, Option<Pin<Box<Sleep>>>, Instant);

/// One end of an in-memory serial line ([`line_pair`]).
pub struct LineEnd {
    me: Arc<Mutex<Setting>>,
    peer: Arc<Mutex<Setting>>,
    pace: bool,
    /// When the line from this end to the peer is free again (paced lines only).
    busy_until: Option<Instant>,
    tx: Option<mpsc::UnboundedSender<Burst>>,
    rx: mpsc::UnboundedReceiver<Burst>,
    /// Received bytes not yet read, from `pos`.
    buf: Vec<u8>,
    pos: usize,
    /// A burst that is not yet readable, and the timer for it.
    waiting: Option<Waiting>,
}

/// Two ends of a serial line set to `a` and `b`; see the module header. With `pace`, a burst
/// is readable only after its wire time (bytes × the writer's `char_time`).
pub fn line_pair(a: Setting, b: Setting, pace: bool) -> (LineEnd, LineEnd) {
    let (a_tx, b_rx) = mpsc::unbounded_channel();
    let (b_tx, a_rx) = mpsc::unbounded_channel();
    let sa = Arc::new(Mutex::new(a));
    let sb = Arc::new(Mutex::new(b));
    let end = |me: &Arc<Mutex<Setting>>, peer: &Arc<Mutex<Setting>>, tx, rx| LineEnd {
        me: Arc::clone(me),
        peer: Arc::clone(peer),
        pace,
        busy_until: None,
        tx: Some(tx),
        rx,
        buf: Vec::new(),
        pos: 0,
        waiting: None,
    };
    (end(&sa, &sb, a_tx, a_rx), end(&sb, &sa, b_tx, b_rx))
}

impl LineEnd {
    /// This end's port setting.
    pub fn setting(&self) -> Setting {
        *self.me.lock().unwrap()
    }

    /// Reconfigure this end's port (as a sweep does between attempts); bursts written after
    /// this are sent and received with the new setting.
    pub fn set_setting(&self, setting: Setting) {
        *self.me.lock().unwrap() = setting;
    }
}

impl AsyncWrite for LineEnd {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let me = *this.me.lock().unwrap();
        let peer = *this.peer.lock().unwrap();
        let bytes = delivered(&transmit(&[(0.0, data.to_vec())], me, peer), peer);
        let at = this.pace.then(|| {
            let now = Instant::now();
            let start = this.busy_until.map_or(now, |b| b.max(now));
            let end =
                start + std::time::Duration::from_secs_f64(data.len() as f64 * me.char_time());
            this.busy_until = Some(end);
            end
        });
        if let Some(tx) = &this.tx {
            // A peer that is gone: the bytes go nowhere, as on a real wire.
            let _ = tx.send(Burst { at, bytes });
        }
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().tx = None;
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for LineEnd {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.pos < this.buf.len() {
                let n = out.remaining().min(this.buf.len() - this.pos);
                out.put_slice(&this.buf[this.pos..this.pos + n]);
                this.pos += n;
                return Poll::Ready(Ok(()));
            }
            if let Some((_, sleep, at)) = &mut this.waiting {
                // tokio's timer ticks in whole milliseconds: the timer is set 2 ms early, and the
                // last stretch is polled again at once, so a burst arrives at its wire time.
                if let Some(sleep) = sleep {
                    if sleep.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
                if *at > Instant::now() {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                let (bytes, _, _) = this.waiting.take().unwrap();
                this.buf = bytes;
                this.pos = 0;
                continue;
            }
            match this.rx.poll_recv(cx) {
                // EOF: the peer shut down or is gone.
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Burst { at, bytes })) => match at {
                    Some(at) if at > Instant::now() => {
                        // Within 2 ms of due, no timer at all (it would fire at the next tick,
                        // and the OS wait rounds up once more): poll again at once until due.
                        let sleep = at
                            .checked_sub(std::time::Duration::from_millis(2))
                            .filter(|e| *e > Instant::now())
                            .map(|e| Box::pin(tokio::time::sleep_until(e)));
                        this.waiting = Some((bytes, sleep, at));
                    }
                    _ => {
                        this.buf = bytes;
                        this.pos = 0;
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn all_bytes() -> Vec<u8> {
        (0..=255).collect()
    }

    fn clean(rx: &[RxByte]) -> bool {
        rx.iter().all(|r| !r.framing_error && !r.parity_error)
    }

    #[test]
    fn same_setting_round_trips_every_byte() {
        for frame in ["8N1", "8E1", "8O1", "8N2", "7E1", "7O2", "8O2"] {
            for baud in [1200, 9600, 19200, 115_200] {
                let s = Setting::parse(baud, frame);
                let mask = if s.data_bits == 8 { 0xff } else { 0x7f };
                let want: Vec<u8> = all_bytes().iter().map(|b| b & mask).collect();
                // Back to back, and with idle gaps of various lengths between bytes.
                let back_to_back = vec![(0.0, all_bytes())];
                let gapped: Vec<(f64, Vec<u8>)> = all_bytes()
                    .into_iter()
                    .map(|b| (f64::from(b % 7) * 0.37 * s.char_time(), vec![b]))
                    .collect();
                for bursts in [back_to_back, gapped] {
                    let rx = transmit(&bursts, s, s);
                    assert!(clean(&rx), "{s}: errors in {rx:?}");
                    let got: Vec<u8> = rx.iter().map(|r| r.byte).collect();
                    assert_eq!(got, want, "{s}");
                    assert_eq!(delivered(&rx, s), want, "{s}");
                }
            }
        }
    }

    #[test]
    fn tolerates_small_baud_error() {
        let rx = Setting::parse(9600, "8E1");
        let tx = Setting { baud: 9888, ..rx }; // 3% fast
        let got = transmit(&[(0.0, all_bytes())], tx, rx);
        assert!(clean(&got));
        assert_eq!(got.iter().map(|r| r.byte).collect::<Vec<_>>(), all_bytes());
        // 6% fast: the last samples fall in the next bit.
        let tx = Setting { baud: 10176, ..rx };
        assert!(!clean(&transmit(&[(0.0, all_bytes())], tx, rx)));
    }

    #[test]
    fn double_baud_gives_garbage() {
        let data: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
        for frame in ["8N1", "8E1"] {
            let rx_s = Setting::parse(9600, frame);
            let rx = transmit(&[(0.0, data.clone())], Setting::parse(19200, frame), rx_s);
            let errors = rx
                .iter()
                .filter(|r| r.framing_error || r.parity_error)
                .count();
            assert!(errors > 0, "{frame}: no errors in {rx:?}");
            let got: Vec<u8> = rx.iter().map(|r| r.byte).collect();
            assert_ne!(got, data, "{frame}");
            assert_ne!(delivered(&rx, rx_s), data, "{frame}");
        }
        // And the other way round: half speed.
        let s = Setting::parse(19200, "8N1");
        let rx = transmit(&[(0.0, data.clone())], Setting::parse(9600, "8N1"), s);
        assert!(rx.iter().any(|r| r.framing_error));
        assert_ne!(rx.iter().map(|r| r.byte).collect::<Vec<_>>(), data);
    }

    #[test]
    fn no_parity_read_as_even_fails_half() {
        let tx = Setting::parse(9600, "8N1");
        let rx_s = Setting::parse(9600, "8E1");
        // Apart: the receiver's parity bit is the sender's stop bit (high), its stop bit idle.
        let apart: Vec<(f64, Vec<u8>)> = all_bytes()
            .into_iter()
            .map(|b| (2.0 * tx.char_time(), vec![b]))
            .collect();
        let rx = transmit(&apart, tx, rx_s);
        assert_eq!(rx.len(), 256);
        assert!(rx.iter().all(|r| !r.framing_error));
        let bad = rx.iter().filter(|r| r.parity_error).count();
        assert_eq!(bad, 128, "the bytes with an even count of ones");
        for (r, b) in rx.iter().zip(all_bytes()) {
            assert_eq!(r.byte, b);
            assert_eq!(r.parity_error, b.count_ones() % 2 == 0, "{b:#04x}");
        }
        let d = delivered(&rx, rx_s);
        assert_eq!(d.iter().map(|&b| usize::from(b == 0)).sum::<usize>(), 128);
        // Back to back, the receiver's stop bit is the next start bit: framing errors.
        let rx = transmit(&[(0.0, all_bytes())], tx, rx_s);
        assert!(rx.iter().any(|r| r.framing_error));
        let bad = rx.iter().filter(|r| r.parity_error).count();
        assert!(bad > 0 && bad < rx.len(), "{bad} of {}", rx.len());
        // Even-parity frames read by an 8N1 receiver: its stop bit is the parity bit, so the
        // bytes whose parity bit is low have framing errors; the data is intact, and without
        // INPCK Linux delivers it all: 8E1 read as 8N1 seems to work.
        let rx = transmit(&[(0.0, all_bytes())], rx_s, tx);
        assert_eq!(rx.len(), 256);
        for (r, b) in rx.iter().zip(all_bytes()) {
            assert_eq!(r.byte, b);
            assert_eq!(r.framing_error, b.count_ones() % 2 == 0, "{b:#04x}");
            assert!(!r.parity_error);
        }
        assert_eq!(delivered(&rx, tx), all_bytes());
    }

    #[test]
    fn idle_gaps_resynchronise() {
        let data: Vec<u8> = (0..32u8).map(|i| i.wrapping_mul(91) ^ 0xa5).collect();
        for (tx, rx) in [
            (Setting::parse(9600, "8N1"), Setting::parse(9600, "8E1")),
            (Setting::parse(19200, "8E1"), Setting::parse(9600, "8E1")),
            (Setting::parse(4800, "8N1"), Setting::parse(9600, "8N1")),
            (Setting::parse(1200, "8N1"), Setting::parse(115_200, "8N1")),
        ] {
            // A gap of two of the slower side's characters lets the receiver return to idle:
            // each burst is received as if alone.
            let gap = 2.0 * tx.char_time().max(rx.char_time());
            let bursts: Vec<(f64, Vec<u8>)> = data.chunks(5).map(|c| (gap, c.to_vec())).collect();
            let together = transmit(&bursts, tx, rx);
            // Each burst alone at the same time on the line (the receive clock's phase
            // against the edges matters when the bauds differ), as `transmit` times it.
            let mut t = 0.0;
            let mut alone = Vec::new();
            for (idle, bytes) in &bursts {
                let start = t + idle;
                alone.extend(transmit(&[(start, bytes.clone())], tx, rx));
                t = start + (bytes.len() * tx.frame_bits() as usize) as f64 * tx.bit_time();
            }
            assert_eq!(together, alone, "{tx} read as {rx}");
        }
        // After garbage (8N1 back to back read as 8E1), the first byte after a gap is right.
        let (tx, rx) = (Setting::parse(9600, "8N1"), Setting::parse(9600, "8E1"));
        let got = transmit(&[(0.0, vec![0x55; 4]), (0.01, vec![0x42])], tx, rx);
        assert!(got[..got.len() - 1].iter().any(|r| r.framing_error));
        let last = got.last().unwrap();
        assert_eq!((last.byte, last.framing_error), (0x42, false));
    }

    #[test]
    fn long_low_is_one_break() {
        // A 1200-baud 0x00 is 7.5 ms low: 86 characters' time at 115200, one break.
        let rx_s = Setting::parse(115_200, "8N1");
        let rx = transmit(&[(0.001, vec![0x00])], Setting::parse(1200, "8N1"), rx_s);
        assert_eq!(
            rx,
            vec![RxByte {
                byte: 0,
                framing_error: true,
                parity_error: false
            }]
        );
        assert_eq!(delivered(&rx, rx_s), vec![0]);
        let rx_e = Setting::parse(115_200, "8E1");
        let rx = transmit(&[(0.0, vec![0x00])], Setting::parse(1200, "8N1"), rx_e);
        assert_eq!(rx.len(), 1);
        assert!(rx[0].framing_error && !rx[0].parity_error);
        // Nothing sent, nothing received; idle alone is nothing.
        assert!(transmit(&[(1.0, vec![])], rx_s, rx_s).is_empty());
        assert!(transmit(&[], rx_s, rx_s).is_empty());
    }

    #[test]
    fn delivered_follows_linux() {
        let bad = [
            RxByte {
                byte: 0x41,
                framing_error: false,
                parity_error: true,
            },
            RxByte {
                byte: 0x42,
                framing_error: true,
                parity_error: false,
            },
            RxByte {
                byte: 0x43,
                framing_error: false,
                parity_error: false,
            },
        ];
        assert_eq!(delivered(&bad, Setting::parse(9600, "8E1")), [0, 0, 0x43]);
        assert_eq!(delivered(&bad, Setting::parse(9600, "8O1")), [0, 0, 0x43]);
        assert_eq!(
            delivered(&bad, Setting::parse(9600, "8N1")),
            [0x41, 0x42, 0x43]
        );
    }

    #[test]
    fn sweep_is_fast() {
        let bauds = [1200, 2400, 4800, 9600, 19200, 38400, 57600, 115_200];
        let data: Vec<u8> = (0..4096u32).map(|i| (i * 7 + i / 3) as u8).collect();
        let start = std::time::Instant::now();
        for tx in bauds {
            for rx in bauds {
                let rx_s = Setting::parse(rx, "8E1");
                let got = transmit(&[(0.0, data.clone())], Setting::parse(tx, "8N1"), rx_s);
                assert!(!got.is_empty());
            }
        }
        // 64 pairs × 4 KiB; generous for an unoptimised test build on a busy machine.
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn parse_and_char_time() {
        let s = Setting::parse(9600, "8e1");
        assert_eq!(
            s,
            Setting {
                baud: 9600,
                data_bits: 8,
                parity: Parity::Even,
                stop_bits: 1
            }
        );
        assert!((s.char_time() - 11.0 / 9600.0).abs() < 1e-12);
        assert!((Setting::parse(19200, "8N1").char_time() - 10.0 / 19200.0).abs() < 1e-12);
        assert!((Setting::parse(1200, "7O2").char_time() - 11.0 / 1200.0).abs() < 1e-12);
        assert_eq!(s.to_string(), "9600 8E1");
    }

    #[tokio::test]
    async fn line_pair_delivers_both_ways() {
        let s = Setting::parse(9600, "8E1");
        let (mut a, mut b) = line_pair(s, s, false);
        a.write_all(b"\x01\x03\x00\x00\x00\x0a\xc5\xcd")
            .await
            .unwrap();
        let mut buf = [0u8; 8];
        b.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"\x01\x03\x00\x00\x00\x0a\xc5\xcd");
        b.write_all(b"answer").await.unwrap();
        let mut buf = [0u8; 6];
        a.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"answer");

        // Mismatched: the reader gets what Linux would give it.
        let tx = Setting::parse(19200, "8N1");
        let (mut a, mut b) = line_pair(tx, s, false);
        let data = b"hello, wrong baud".to_vec();
        a.write_all(&data).await.unwrap();
        a.shutdown().await.unwrap();
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, delivered(&transmit(&[(0.0, data.clone())], tx, s), s));
        assert_ne!(got, data);

        // Reconfiguring the reader to the sender's setting fixes it.
        let (mut a, mut b) = line_pair(tx, s, false);
        b.set_setting(tx);
        assert_eq!(b.setting(), tx);
        a.write_all(&data).await.unwrap();
        drop(a);
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, data);
    }

    #[tokio::test]
    async fn pacing_takes_the_wire_time() {
        let s = Setting::parse(9600, "8N1");
        let (mut a, mut b) = line_pair(s, s, true);
        let data = vec![0x5a; 48];
        let wire = Duration::from_secs_f64(48.0 * s.char_time()); // 50 ms
        let start = Instant::now();
        // Two bursts: the second waits for the first to leave the line.
        a.write_all(&data[..24]).await.unwrap();
        a.write_all(&data[24..]).await.unwrap();
        let mut buf = vec![0u8; 48];
        b.read_exact(&mut buf).await.unwrap();
        assert!(start.elapsed() >= wire, "{:?} < {wire:?}", start.elapsed());
        assert_eq!(buf, data);
    }
}
