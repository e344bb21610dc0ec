//! Live capture through libpcap (cargo feature `pcap`, off by default): the [`LiveSource`] for
//! what the built-in `AF_PACKET` socket (`packet_socket`) does not reach: `-i any` and other
//! operating systems. The `pcap` crate wraps libpcap; libpcap compiles `--filter` itself and
//! reads the VLAN tags and drop counts, so this file only adapts its packets and counters.
//!
//! libpcap on Linux ignores its read timeout while no packet arrives (FIELD-NOTES, the `pcap`
//! crate's #202/#289): the handle is non-blocking and [`LiveSource::poll`] waits in short
//! sleeps instead, so Ctrl-C and `--duration` are seen within a few milliseconds.

use std::{
    io,
    time::{Duration, Instant},
};

use pcap::{Active, Capture, Precision};

use crate::capture::{
    reader::{Linktype, Packet, PacketDirection},
    source::{LiveSource, SourceStats},
    writer::Interface,
};

/// Packets taken per `poll` call at most.
const BURST: usize = 4096;

/// An open libpcap capture.
pub struct PcapSource {
    cap: Capture<Active>,
    iface: Interface,
    frame: u64,
    stats: SourceStats,
}

impl std::fmt::Debug for PcapSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcapSource")
            .field("iface", &self.iface.name)
            .finish_non_exhaustive()
    }
}

impl PcapSource {
    /// Open `name` (`any` for every interface) with libpcap; `filter` in pcap-filter syntax.
    ///
    /// # Errors
    /// libpcap's message, with the interfaces it knows when the name is not one of them.
    pub fn open(name: &str, promiscuous: bool, filter: Option<&str>) -> Result<PcapSource, String> {
        let known = || {
            pcap::Device::list()
                .map(|v| v.into_iter().map(|d| d.name).collect::<Vec<_>>().join(", "))
                .unwrap_or_default()
        };
        let cap = Capture::from_device(name)
            .and_then(|c| {
                c.promisc(promiscuous)
                    .immediate_mode(true)
                    .snaplen(262_144)
                    .buffer_size(32 << 20)
                    .precision(Precision::Nano)
                    .open()
            })
            .map_err(|e| {
                format!("libpcap cannot capture on `{name}`: {e} (libpcap's interfaces: {}); without the capture capability run it with sudo or `sudo setcap cap_net_raw,cap_net_admin=eip` on the binary", known())
            })?;
        let mut cap = cap
            .setnonblock()
            .map_err(|e| format!("libpcap on `{name}`: {e}"))?;
        if let Some(f) = filter {
            cap.filter(f, true)
                .map_err(|e| format!("--filter '{f}': libpcap: {e}"))?;
        }
        let linktype = u16::try_from(cap.get_datalink().0).unwrap_or(0);
        Ok(PcapSource {
            cap,
            iface: Interface {
                linktype,
                snaplen: 262_144,
                name: Some(name.to_string()),
                description: Some("captured with libpcap".into()),
            },
            frame: 0,
            stats: SourceStats::default(),
        })
    }
}

impl LiveSource for PcapSource {
    fn interface(&self) -> &Interface {
        &self.iface
    }

    fn poll(&mut self, timeout: Duration, f: &mut dyn FnMut(&Packet<'_>)) -> io::Result<usize> {
        let start = Instant::now();
        let linktype = Linktype(i32::from(self.iface.linktype));
        let mut n = 0;
        loop {
            match self.cap.next_packet() {
                Ok(p) => {
                    self.frame += 1;
                    n += 1;
                    // Precision::Nano: tv_usec holds nanoseconds.
                    let ts_ns = p.header.ts.tv_sec * 1_000_000_000 + p.header.ts.tv_usec;
                    f(&Packet {
                        frame: self.frame,
                        ts_ns,
                        linktype,
                        data: p.data,
                        orig_len: p.header.len,
                        direction: PacketDirection::Unknown,
                        if_name: None,
                    });
                    if n >= BURST {
                        break;
                    }
                }
                Err(pcap::Error::TimeoutExpired) => {
                    if n > 0 || start.elapsed() >= timeout {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => return Err(io::Error::other(e.to_string())),
            }
        }
        self.stats.packets += n as u64;
        Ok(n)
    }

    fn stats(&mut self) -> SourceStats {
        if let Ok(s) = self.cap.stats() {
            // libpcap's counters are totals since the start.
            self.stats.kernel_drops = u64::from(s.dropped) + u64::from(s.if_dropped);
        }
        self.stats
    }
}
