//! Live Ethernet capture on Linux through an `AF_PACKET` socket, with no system library: the
//! [`LiveSource`] behind `capture -i IFACE`.
//!
//! What it guarantees (issue "capture", docs/DESIGN.md §8):
//! - every frame of the interface, both directions, with the kernel's receive timestamp
//!   (nanoseconds, from the ring's packet headers), promiscuous on request (`PACKET_ADD_MEMBERSHIP`, undone when the socket
//!   closes);
//! - 802.1Q tags the kernel stripped (it hands them over in the ring's packet headers) put back into the
//!   frame, as libpcap does, so a VLAN-tagged frame is written and decoded with its tag;
//! - on the loopback interface each packet once (the kernel shows it twice, as sent and as
//!   received; libpcap drops the sent copy, so do we);
//! - a classic-BPF filter (`capture::bpf`) run in the kernel, installed before the socket is
//!   bound to the interface (it receives nothing until then), so no frame that fails the filter
//!   is ever read;
//! - the kernel's drop counter (`PACKET_STATISTICS`) read on every [`LiveSource::stats`] and
//!   summed: a capture never loses packets silently.
//!
//! Why `unsafe` here, and only here (the crate denies it everywhere else): no well-kept crate
//! covers this. `socket2` opens the socket and attaches a filter but cannot bind a
//! `sockaddr_ll`, set up a `PACKET_RX_RING`, read `PACKET_STATISTICS`, or join promiscuous mode;
//! `nix` lacks the `SOL_PACKET` options; `pnet_datalink` gives no kernel timestamps, VLAN tags
//! or drop counts (FIELD-NOTES "Live capture on Linux"). So this module makes the few libc
//! calls itself; each `unsafe` block says why it is sound.
//!
//! Packets arrive through a `TPACKET_V3` ring shared with the kernel (as dumpcap's): the kernel
//! fills blocks of packets, plcprobe reads a whole block in place and hands it back, with no
//! system call per packet. A `recvmsg` per packet, tried first, dropped 15 to 40 times more
//! packets than dumpcap on a loopback flood (docs/PERFORMANCE.md, "Live capture").
#![allow(unsafe_code)]

use std::{
    io,
    mem::{size_of, zeroed},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    time::Duration,
};

use crate::capture::{
    bpf::Insn,
    reader::{Linktype, Packet, PacketDirection},
    source::{LiveSource, SourceStats},
    writer::Interface,
};

/// Bytes kept of each frame: the loopback MTU (64 KiB) plus a link header and a VLAN tag.
const SNAPLEN: usize = 65_536 + 64;
/// The ring: blocks of 1 MiB (a loopback frame of 64 KiB fits), 32 of them.
const BLOCK_SIZE: usize = 1 << 20;
/// Blocks in the ring.
const BLOCKS: usize = 32;
/// A block the kernel has started is handed over after this long even if not full (ms): the
/// live view and streamed rows lag at most this much.
const BLOCK_TIMEOUT_MS: u32 = 50;
/// Packets handed out per `poll` call before it returns (at a block's end), so that the caller
/// looks at its clock and signals.
const BURST: usize = 4096;

/// Why an interface could not be opened for capture.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// No `CAP_NET_RAW`.
    #[error("capturing on {iface} needs the CAP_NET_RAW capability, which this process does not have. Three ways: run it with sudo (`sudo plcprobe capture -i {iface} …`); or give this binary the capability once (`sudo setcap cap_net_raw,cap_net_admin=eip {exe}`; cap_net_admin is for --promiscuous), after which any user can capture; or limit that to a capture group as Wireshark does: with the setcap, make the binary group-owned and closed to others (`sudo chgrp pcap {exe} && sudo chmod 750 {exe}`) and add the technicians to the group `pcap`")]
    Permission {
        /// Interface.
        iface: String,
        /// This executable, for the setcap line.
        exe: String,
    },
    /// No such interface.
    #[error("no network interface `{name}` on this machine; the interfaces here are: {}", .available.join(", "))]
    NoSuchInterface {
        /// What was asked.
        name: String,
        /// What exists.
        available: Vec<String>,
    },
    /// Anything else, with the step that failed.
    #[error("cannot capture on {iface}: {step}: {err}")]
    Io {
        /// Interface.
        iface: String,
        /// What was being done.
        step: &'static str,
        /// The system's word.
        err: io::Error,
    },
}

/// The network interfaces of this machine, by name, sorted.
#[must_use]
pub fn interfaces() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// What to open.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Put the interface in promiscuous mode while capturing.
    pub promiscuous: bool,
    /// Kernel filter (empty: every frame), as `capture::bpf::compile` makes it.
    pub filter: Vec<Insn>,
}

/// An open `AF_PACKET` socket on one interface, with its receive ring.
pub struct PacketSocket {
    ring: Ring,
    fd: OwnedFd,
    iface: Interface,
    loopback: bool,
    /// A frame with its VLAN tag put back.
    tagged: Vec<u8>,
    frame: u64,
    stats: SourceStats,
}

/// The `TPACKET_V3` ring mapped into this process: `BLOCKS` blocks of `BLOCK_SIZE` bytes.
struct Ring {
    map: *mut u8,
    len: usize,
    /// The next block to read.
    next: usize,
}

// SAFETY: the mapping belongs to this ring alone (its socket is owned by the same
// PacketSocket and never shared); moving it to another thread moves its only user.
unsafe impl Send for Ring {}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: `map` and `len` are what mmap returned; nothing borrows the mapping past
        // `PacketSocket::poll`.
        unsafe {
            libc::munmap(self.map.cast(), self.len);
        }
    }
}

impl Ring {
    /// The block descriptor of block `i`.
    fn block(&self, i: usize) -> *mut libc::tpacket_block_desc {
        // SAFETY: i < BLOCKS, so the offset stays inside the mapping.
        unsafe { self.map.add(i * BLOCK_SIZE).cast() }
    }

    /// The status word of block `i`, shared with the kernel.
    fn status(&self, i: usize) -> &std::sync::atomic::AtomicU32 {
        // SAFETY: block_status is the first, 4-byte aligned u32 of the block header (the
        // mapping is page aligned); the kernel and this process hand the block over through
        // it, which is what an atomic is for.
        unsafe {
            let bd = self.block(i);
            std::sync::atomic::AtomicU32::from_ptr(std::ptr::addr_of_mut!(
                (*bd).hdr.bh1.block_status
            ))
        }
    }
}

impl std::fmt::Debug for PacketSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketSocket")
            .field("iface", &self.iface.name)
            .finish_non_exhaustive()
    }
}

fn last_os_error(iface: &str, step: &'static str) -> OpenError {
    let err = io::Error::last_os_error();
    if err.kind() == io::ErrorKind::PermissionDenied {
        return OpenError::Permission {
            iface: iface.to_string(),
            exe: std::env::current_exe()
                .map_or_else(|_| "plcprobe".into(), |p| p.display().to_string()),
        };
    }
    OpenError::Io {
        iface: iface.to_string(),
        step,
        err,
    }
}

/// `setsockopt` of a plain value.
fn set_opt<T>(fd: &OwnedFd, level: i32, name: i32, value: &T) -> io::Result<()> {
    let len = libc::socklen_t::try_from(size_of::<T>()).unwrap_or(0);
    // SAFETY: `value` points to a live `T` of `len` bytes for the duration of the call; the
    // kernel only reads it.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            std::ptr::from_ref(value).cast(),
            len,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl PacketSocket {
    /// Open interface `name` for capture.
    ///
    /// # Errors
    /// [`OpenError`]: no capability (its message names the three ways), no such interface
    /// (listing those that exist), or another system error with its step.
    pub fn open(name: &str, opts: &Options) -> Result<PacketSocket, OpenError> {
        let cname = std::ffi::CString::new(name).map_err(|_| OpenError::NoSuchInterface {
            name: name.to_string(),
            available: interfaces(),
        })?;
        // SAFETY: `cname` is a valid NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if ifindex == 0 {
            return Err(OpenError::NoSuchInterface {
                name: name.to_string(),
                available: interfaces(),
            });
        }
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // Protocol 0: the socket receives nothing until `bind` names the protocol and the
        // interface, after the filter is in place (no frame of another interface, or one that
        // fails the filter, is ever queued).
        // SAFETY: plain system call; the descriptor it returns is owned below.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(last_os_error(name, "opening a packet socket"));
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let step = |step: &'static str| {
            move |e: io::Error| OpenError::Io {
                iface: name.to_string(),
                step,
                err: e,
            }
        };
        // The filter first: from now on nothing that fails it is queued.
        if !opts.filter.is_empty() {
            attach_filter(&fd, &opts.filter).map_err(step("installing the capture filter"))?;
        }
        let version = libc::tpacket_versions::TPACKET_V3 as i32;
        set_opt(&fd, libc::SOL_PACKET, libc::PACKET_VERSION, &version)
            .map_err(step("asking for a TPACKET_V3 ring (Linux 3.2 or later)"))?;
        let block = u32::try_from(BLOCK_SIZE).unwrap_or(0);
        let req = libc::tpacket_req3 {
            tp_block_size: block,
            tp_block_nr: u32::try_from(BLOCKS).unwrap_or(0),
            tp_frame_size: 2048,
            tp_frame_nr: u32::try_from(BLOCK_SIZE * BLOCKS / 2048).unwrap_or(0),
            tp_retire_blk_tov: BLOCK_TIMEOUT_MS,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        set_opt(&fd, libc::SOL_PACKET, libc::PACKET_RX_RING, &req)
            .map_err(step("setting up the receive ring"))?;
        let len = BLOCK_SIZE * BLOCKS;
        // SAFETY: a fresh shared mapping of the ring the kernel just allocated for `fd`; its
        // length is the ring's.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(last_os_error(name, "mapping the receive ring"));
        }
        let ring = Ring {
            map: map.cast(),
            len,
            next: 0,
        };
        // SAFETY: all-zero is a valid sockaddr_ll.
        let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = i32::try_from(ifindex).unwrap_or(0);
        // SAFETY: `sll` is a valid sockaddr_ll and the length is its size.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                std::ptr::from_ref(&sll).cast(),
                libc::socklen_t::try_from(size_of::<libc::sockaddr_ll>()).unwrap_or(0),
            )
        };
        if r != 0 {
            return Err(last_os_error(name, "binding to the interface"));
        }
        if opts.promiscuous {
            // SAFETY: all-zero is a valid packet_mreq.
            let mut mr: libc::packet_mreq = unsafe { zeroed() };
            mr.mr_ifindex = i32::try_from(ifindex).unwrap_or(0);
            mr.mr_type = libc::PACKET_MR_PROMISC as u16;
            set_opt(&fd, libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &mr)
                .map_err(|_| last_os_error(name, "entering promiscuous mode"))?;
        }
        let mut s = PacketSocket {
            ring,
            fd,
            iface: Interface {
                linktype: 1,
                snaplen: u32::try_from(SNAPLEN).unwrap_or(0),
                name: Some(name.to_string()),
                description: None,
            },
            loopback: std::fs::read_to_string(format!("/sys/class/net/{name}/type"))
                .is_ok_and(|t| t.trim() == "772"),
            tagged: Vec::with_capacity(SNAPLEN),
            frame: 0,
            stats: SourceStats::default(),
        };
        // Start the drop counter at zero.
        let _ = s.kernel_stats();
        Ok(s)
    }

    /// Wait up to `timeout` for the kernel to hand over a block.
    fn wait(&self, timeout: Duration) -> io::Result<()> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN | libc::POLLERR,
            revents: 0,
        };
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&raw mut pfd, 1, ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(e)
            };
        }
        if pfd.revents & (libc::POLLNVAL | libc::POLLHUP) != 0
            || (pfd.revents & libc::POLLERR != 0 && pfd.revents & libc::POLLIN == 0)
        {
            let why = std::fs::read_to_string(format!(
                "/sys/class/net/{}/operstate",
                self.iface.name.as_deref().unwrap_or("")
            ))
            .map_or_else(
                |_| "the interface went away (removed or renamed)".to_string(),
                |s| format!("the interface is {}", s.trim()),
            );
            return Err(io::Error::other(why));
        }
        Ok(())
    }

    /// Hand every packet of block `i` (owned by this process now) to `f`.
    fn read_block(&mut self, i: usize, f: &mut dyn FnMut(&Packet<'_>)) -> usize {
        let bd = self.ring.block(i);
        // SAFETY: the block belongs to this process (TP_STATUS_USER, read with Acquire) until
        // it is handed back after this function; the kernel wrote `num_pkts` packets in it,
        // each a tpacket3_hdr at `offset_to_first_pkt`, then `tp_next_offset` apart, followed
        // by a sockaddr_ll, with `tp_snaplen` bytes at `tp_mac`; every offset is checked
        // against the block's length before it is used.
        let (count, mut off) = unsafe {
            let h = &(*bd).hdr.bh1;
            (h.num_pkts as usize, h.offset_to_first_pkt as usize)
        };
        let base = bd.cast::<u8>();
        // TPACKET_ALIGN: the sockaddr_ll follows the header at a 16-byte boundary.
        let sll_at = size_of::<libc::tpacket3_hdr>().next_multiple_of(libc::TPACKET_ALIGNMENT);
        let mut n = 0;
        for _ in 0..count {
            if off + sll_at + size_of::<libc::sockaddr_ll>() > BLOCK_SIZE {
                break;
            }
            // SAFETY: inside the block (checked above); read unaligned as the layout allows.
            let (h, sll): (libc::tpacket3_hdr, libc::sockaddr_ll) = unsafe {
                (
                    std::ptr::read_unaligned(base.add(off).cast()),
                    std::ptr::read_unaligned(base.add(off + sll_at).cast()),
                )
            };
            let start = off + usize::from(h.tp_mac);
            let len = h.tp_snaplen as usize;
            let next = h.tp_next_offset as usize;
            if start + len <= BLOCK_SIZE
                && !(self.loopback && sll.sll_pkttype == libc::PACKET_OUTGOING)
            {
                // SAFETY: `start + len` is inside the block (checked just above).
                let data = unsafe { std::slice::from_raw_parts(base.add(start), len) };
                self.frame += 1;
                n += 1;
                let ts_ns = i64::from(h.tp_sec) * 1_000_000_000 + i64::from(h.tp_nsec);
                let vlan = (h.tp_status & libc::TP_STATUS_VLAN_VALID != 0).then(|| {
                    let tpid = if h.tp_status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                        h.hv1.tp_vlan_tpid
                    } else {
                        0x8100
                    };
                    (tpid, u16::try_from(h.hv1.tp_vlan_tci & 0xffff).unwrap_or(0))
                });
                let (data, orig): (&[u8], u32) = match vlan {
                    Some((tpid, tci)) if len >= 12 => {
                        // Put the tag back after the two MAC addresses, as libpcap does.
                        self.tagged.clear();
                        self.tagged.extend_from_slice(&data[..12]);
                        self.tagged.extend_from_slice(&tpid.to_be_bytes());
                        self.tagged.extend_from_slice(&tci.to_be_bytes());
                        self.tagged.extend_from_slice(&data[12..]);
                        (&self.tagged, h.tp_len + 4)
                    }
                    _ => (data, h.tp_len),
                };
                f(&Packet {
                    frame: self.frame,
                    ts_ns,
                    linktype: Linktype(1),
                    data,
                    orig_len: orig,
                    direction: PacketDirection::Unknown,
                    if_name: None,
                });
            }
            if next == 0 {
                break;
            }
            off += next;
        }
        n
    }

    /// The kernel's counters since the last call (it resets them on every read).
    fn kernel_stats(&mut self) -> io::Result<(u64, u64)> {
        // SAFETY: all-zero is a valid tpacket_stats_v3.
        let mut st: libc::tpacket_stats_v3 = unsafe { zeroed() };
        let mut len = libc::socklen_t::try_from(size_of::<libc::tpacket_stats_v3>()).unwrap_or(0);
        // SAFETY: `st` is writable for `len` bytes; the kernel writes at most `len`.
        let r = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                std::ptr::from_mut(&mut st).cast(),
                &raw mut len,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((u64::from(st.tp_packets), u64::from(st.tp_drops)))
    }
}

/// Install a classic-BPF program on the socket.
fn attach_filter(fd: &OwnedFd, prog: &[Insn]) -> io::Result<()> {
    let mut code: Vec<libc::sock_filter> = prog
        .iter()
        .map(|i| libc::sock_filter {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        })
        .collect();
    let fprog = libc::sock_fprog {
        len: u16::try_from(code.len()).map_err(|_| io::Error::other("filter too long"))?,
        filter: code.as_mut_ptr(),
    };
    set_opt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)
}

impl LiveSource for PacketSocket {
    fn interface(&self) -> &Interface {
        &self.iface
    }

    fn poll(&mut self, timeout: Duration, f: &mut dyn FnMut(&Packet<'_>)) -> io::Result<usize> {
        use std::sync::atomic::Ordering;
        let mut n = 0;
        let mut waited = false;
        loop {
            let i = self.ring.next;
            if self.ring.status(i).load(Ordering::Acquire) & libc::TP_STATUS_USER == 0 {
                if n > 0 || waited {
                    break;
                }
                self.wait(timeout)?;
                waited = true;
                continue;
            }
            n += self.read_block(i, f);
            // Hand the block back to the kernel.
            self.ring
                .status(i)
                .store(libc::TP_STATUS_KERNEL, Ordering::Release);
            self.ring.next = (i + 1) % BLOCKS;
            if n >= BURST {
                break;
            }
        }
        self.stats.packets += n as u64;
        Ok(n)
    }

    fn stats(&mut self) -> SourceStats {
        if let Ok((_, drops)) = self.kernel_stats() {
            self.stats.kernel_drops += drops;
        }
        self.stats
    }
}
