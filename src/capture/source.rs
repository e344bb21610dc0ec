//! Live packet sources: what `capture` reads from, an Ethernet interface
//! (`transport::packet_socket`) or a serial line being sniffed (`transport::serial_sniff`).
//! A source hands out [`Packet`]s of its interface's link type, exactly as a capture file's
//! reader does, so that the decoder and the pcapng writer cannot tell a live capture from a
//! file. It also counts what it lost: a capture never loses packets silently.

use std::{io, time::Duration};

use super::{reader::Packet, writer::Interface};

/// What a source lost or could not read, since it was opened.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SourceStats {
    /// Packets (frames) delivered.
    pub packets: u64,
    /// Packets the kernel dropped for want of buffer space (`PACKET_STATISTICS`).
    pub kernel_drops: u64,
    /// Serial: characters the UART received with a framing error.
    pub framing_errors: u64,
    /// Serial: characters the UART received with a parity error.
    pub parity_errors: u64,
    /// Serial: receive buffer overruns reported by the driver.
    pub overruns: u64,
}

/// A live source of packets.
pub trait LiveSource: Send {
    /// The interface the packets come from (link type, name), for the pcapng file.
    fn interface(&self) -> &Interface;
    /// Wait up to `timeout` for packets and hand each to `f`; returns how many. A timeout
    /// without packets is `Ok(0)`, so that the caller can look at its clock and its signals.
    ///
    /// # Errors
    /// The interface went away or the port failed.
    fn poll(&mut self, timeout: Duration, f: &mut dyn FnMut(&Packet<'_>)) -> io::Result<usize>;
    /// Counters so far (the kernel's drop counter is read here).
    fn stats(&mut self) -> SourceStats;
    /// The capture ends: hand out what the source still holds (a serial line's last frame,
    /// still waiting for the silence that ends it); returns how many.
    fn finish(&mut self, _f: &mut dyn FnMut(&Packet<'_>)) -> usize {
        0
    }
}
