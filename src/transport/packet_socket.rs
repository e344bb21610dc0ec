//! Live Ethernet capture on Linux through an `AF_PACKET` socket, with no system library: the
//! [`LiveSource`] behind `capture -i IFACE`.
//!
//! What it guarantees (issue "capture", docs/DESIGN.md §8):
//! - every frame of the interface, both directions, with the kernel's receive timestamp
//!   (`SO_TIMESTAMPNS`), promiscuous on request (`PACKET_ADD_MEMBERSHIP`, undone when the socket
//!   closes);
//! - 802.1Q tags the kernel stripped (it hands them over in `PACKET_AUXDATA`) put back into the
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
//! `sockaddr_ll`, read `PACKET_AUXDATA` or `PACKET_STATISTICS`, or join promiscuous mode;
//! `nix` lacks the `SOL_PACKET` options; `pnet_datalink` gives no kernel timestamps, VLAN tags
//! or drop counts (FIELD-NOTES "Live capture on Linux"). So this module makes the few libc
//! calls itself; each `unsafe` block says why it is sound. It is a plain `recvmsg` loop, not a
//! `TPACKET_V3` ring: docs/PERFORMANCE.md ("Live capture") has the measurement against dumpcap
//! (which uses the ring) that decided it.
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
/// Receive buffer asked of the kernel (`SO_RCVBUFFORCE` as root, else capped by
/// `net.core.rmem_max`).
const RCVBUF: usize = 32 << 20;
/// Frames read per `poll` call at most, so that the caller looks at its clock and signals.
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

/// An open `AF_PACKET` socket on one interface.
pub struct PacketSocket {
    fd: OwnedFd,
    iface: Interface,
    loopback: bool,
    buf: Vec<u8>,
    frame: u64,
    stats: SourceStats,
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
        set_opt(&fd, libc::SOL_PACKET, libc::PACKET_AUXDATA, &1i32)
            .map_err(step("asking for VLAN tags (PACKET_AUXDATA)"))?;
        set_opt(&fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, &1i32)
            .map_err(step("asking for kernel timestamps (SO_TIMESTAMPNS)"))?;
        let rcvbuf = i32::try_from(RCVBUF).unwrap_or(i32::MAX);
        if set_opt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &rcvbuf).is_err() {
            // Without CAP_NET_ADMIN: as much as net.core.rmem_max allows.
            let _ = set_opt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &rcvbuf);
        }
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
            fd,
            iface: Interface {
                linktype: 1,
                snaplen: u32::try_from(SNAPLEN).unwrap_or(0),
                name: Some(name.to_string()),
                description: None,
            },
            loopback: std::fs::read_to_string(format!("/sys/class/net/{name}/type"))
                .is_ok_and(|t| t.trim() == "772"),
            buf: vec![0; SNAPLEN],
            frame: 0,
            stats: SourceStats::default(),
        };
        // Start the drop counter at zero.
        let _ = s.kernel_stats();
        Ok(s)
    }

    /// The kernel's counters since the last call (it resets them on every read).
    fn kernel_stats(&mut self) -> io::Result<(u64, u64)> {
        // SAFETY: all-zero is a valid tpacket_stats.
        let mut st: libc::tpacket_stats = unsafe { zeroed() };
        let mut len = libc::socklen_t::try_from(size_of::<libc::tpacket_stats>()).unwrap_or(0);
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

    /// Read one frame without waiting: `None` when the queue is empty, `Some(Ok(None))` for a
    /// frame skipped (loopback's sent copy), `Some(Ok(Some(meta)))` for one in `self.buf`.
    #[allow(clippy::option_option)]
    fn recv_one(&mut self) -> Option<io::Result<Option<Received>>> {
        // SAFETY: all-zero is a valid sockaddr_ll, iovec and msghdr.
        let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
        // cmsg space: a timespec and a tpacket_auxdata, with headers and alignment.
        let mut control = [0u64; 16];
        let mut iov = libc::iovec {
            iov_base: self.buf.as_mut_ptr().cast(),
            iov_len: self.buf.len(),
        };
        // SAFETY: as above.
        let mut msg: libc::msghdr = unsafe { zeroed() };
        msg.msg_name = std::ptr::from_mut(&mut sll).cast();
        msg.msg_namelen = libc::socklen_t::try_from(size_of::<libc::sockaddr_ll>()).unwrap_or(0);
        msg.msg_iov = &raw mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = size_of::<[u64; 16]>();
        // SAFETY: every pointer in `msg` points to a live buffer of the length given with it.
        let n = unsafe {
            libc::recvmsg(
                self.fd.as_raw_fd(),
                &raw mut msg,
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock => None,
                io::ErrorKind::Interrupted => Some(Ok(None)),
                _ => Some(Err(e)),
            };
        }
        if self.loopback && sll.sll_pkttype == libc::PACKET_OUTGOING {
            return Some(Ok(None));
        }
        let wire = usize::try_from(n).unwrap_or(0);
        let mut got = Received {
            len: wire.min(self.buf.len()),
            wire,
            ts_ns: None,
            vlan: None,
        };
        // SAFETY: the CMSG_* macros walk the control buffer the kernel filled, within
        // `msg_controllen`; each payload is read unaligned with its own type's size, checked
        // against the header's length.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&raw const msg);
            while !c.is_null() {
                let h = &*c;
                let data = libc::CMSG_DATA(c);
                let have = h.cmsg_len.saturating_sub(libc::CMSG_LEN(0) as usize);
                if h.cmsg_level == libc::SOL_SOCKET
                    && h.cmsg_type == libc::SCM_TIMESTAMPNS
                    && have >= size_of::<libc::timespec>()
                {
                    let t: libc::timespec = std::ptr::read_unaligned(data.cast());
                    got.ts_ns = Some(t.tv_sec * 1_000_000_000 + t.tv_nsec);
                } else if h.cmsg_level == libc::SOL_PACKET
                    && h.cmsg_type == libc::PACKET_AUXDATA
                    && have >= size_of::<libc::tpacket_auxdata>()
                {
                    let a: libc::tpacket_auxdata = std::ptr::read_unaligned(data.cast());
                    if a.tp_status & libc::TP_STATUS_VLAN_VALID != 0 {
                        let tpid = if a.tp_status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                            a.tp_vlan_tpid
                        } else {
                            0x8100
                        };
                        got.vlan = Some((tpid, a.tp_vlan_tci));
                    }
                    got.wire = usize::try_from(a.tp_len).unwrap_or(got.wire);
                }
                c = libc::CMSG_NXTHDR(&raw const msg, c);
            }
        }
        Some(Ok(Some(got)))
    }
}

/// What `recvmsg` said about the frame in the buffer.
struct Received {
    /// Bytes in the buffer.
    len: usize,
    /// Bytes on the wire (without a stripped tag).
    wire: usize,
    ts_ns: Option<i64>,
    /// A tag the kernel stripped: TPID and TCI.
    vlan: Option<(u16, u16)>,
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

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

impl LiveSource for PacketSocket {
    fn interface(&self) -> &Interface {
        &self.iface
    }

    fn poll(&mut self, timeout: Duration, f: &mut dyn FnMut(&Packet<'_>)) -> io::Result<usize> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&raw mut pfd, 1, ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(0)
            } else {
                Err(e)
            };
        }
        if pfd.revents & (libc::POLLERR | libc::POLLNVAL | libc::POLLHUP) != 0
            && pfd.revents & libc::POLLIN == 0
        {
            return Err(io::Error::other(
                "the interface went away (down, removed or renamed)",
            ));
        }
        let mut n = 0;
        let mut tagged = Vec::new();
        while n < BURST {
            let got = match self.recv_one() {
                None => break,
                Some(Ok(None)) => continue,
                Some(Ok(Some(g))) => g,
                Some(Err(e)) if e.raw_os_error() == Some(libc::ENETDOWN) => {
                    return Err(io::Error::other("the interface is down"));
                }
                Some(Err(e)) => return Err(e),
            };
            self.frame += 1;
            n += 1;
            let ts_ns = got.ts_ns.unwrap_or_else(now_ns);
            let (data, orig): (&[u8], usize) = match got.vlan {
                Some((tpid, tci)) if got.len >= 12 => {
                    // Put the tag back after the two MAC addresses, as libpcap does.
                    tagged.clear();
                    tagged.extend_from_slice(&self.buf[..12]);
                    tagged.extend_from_slice(&tpid.to_be_bytes());
                    tagged.extend_from_slice(&tci.to_be_bytes());
                    tagged.extend_from_slice(&self.buf[12..got.len]);
                    (&tagged, got.wire + 4)
                }
                _ => (&self.buf[..got.len], got.wire),
            };
            f(&Packet {
                frame: self.frame,
                ts_ns,
                linktype: Linktype(1),
                data,
                orig_len: u32::try_from(orig).unwrap_or(u32::MAX),
                direction: PacketDirection::Unknown,
                if_name: None,
            });
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
