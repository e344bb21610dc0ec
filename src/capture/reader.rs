//! Streaming pcap / pcapng reader on top of pcap-parser, with bounded memory whatever the file
//! size, gzip detected by content, and truncated files decoded as far as they go.
//!
//! pcap-parser's reader can spin on `Incomplete` when a block is larger than its buffer or the
//! file ends mid-block (FIELD-NOTES, pcap-parser #20/#29): every refill here must make progress,
//! the buffer grows up to [`MAX_BLOCK`], and an end of file inside a block is reported as a
//! truncation, not an error loop.

use std::{
    fs::File,
    io::{BufReader, Read},
    path::Path,
};

pub use pcap_parser::Linktype;
use pcap_parser::{
    create_reader, pcapng::Block, traits::PcapReaderIterator, PcapBlockOwned, PcapError,
};

/// Largest block (one packet record) we accept; a bigger one means a corrupt length field.
pub const MAX_BLOCK: usize = 16 << 20;
/// Initial read buffer.
const BUFFER: usize = 1 << 20;

/// One captured packet, borrowed from the reader's buffer for the duration of the callback.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// 1-based frame number, as Wireshark counts.
    pub frame: u64,
    /// Capture time, nanoseconds since the Unix epoch.
    pub ts_ns: i64,
    /// Link type of the interface the packet came from.
    pub linktype: Linktype,
    /// The captured bytes (possibly fewer than on the wire).
    pub data: &'a [u8],
    /// Length on the wire.
    pub orig_len: u32,
    /// Which way the packet went, where the file says (pcapng `epb_flags`; read on link types
    /// other than Ethernet only). plcprobe's serial captures say `Outbound` for a master's
    /// request and `Inbound` for a device's answer.
    pub direction: PacketDirection,
    /// The interface's name (pcapng `if_name`: an Ethernet interface, a serial port), where the
    /// file gives one.
    pub if_name: Option<&'a str>,
}

/// The direction bits of a pcapng packet's flags (`epb_flags` bits 0–1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PacketDirection {
    /// Not said.
    #[default]
    Unknown,
    /// Received (serial captures: a device's answer).
    Inbound,
    /// Sent (serial captures: a master's request).
    Outbound,
}

impl PacketDirection {
    /// From `epb_flags`.
    #[must_use]
    pub fn from_flags(flags: u32) -> PacketDirection {
        match flags & 3 {
            1 => PacketDirection::Inbound,
            2 => PacketDirection::Outbound,
            _ => PacketDirection::Unknown,
        }
    }

    /// As `epb_flags` bits.
    #[must_use]
    pub fn flags(self) -> u32 {
        match self {
            PacketDirection::Unknown => 0,
            PacketDirection::Inbound => 1,
            PacketDirection::Outbound => 2,
        }
    }
}

/// What the reader saw besides packets.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ReadStats {
    /// File format: "pcap", "pcapng", with "+gzip" when compressed.
    pub format: String,
    /// Packets delivered.
    pub packets: u64,
    /// Captured bytes delivered (sum of caplen).
    pub bytes: u64,
    /// Packets captured shorter than on the wire (snaplen).
    pub snapped: u64,
    /// The file ended inside a record, or a record was unreadable: where and why.
    pub truncated: Option<String>,
    /// pcapng packets naming an interface that was never described.
    pub unknown_interface: u64,
}

/// The file is not a capture at all (exit 3), as opposed to a damaged capture (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Cannot open or read.
    #[error("cannot read {path}: {err}")]
    Io {
        /// File.
        path: String,
        /// Cause.
        err: std::io::Error,
    },
    /// Unknown magic number.
    #[error("{path} is not a pcap or pcapng capture (first bytes {magic}); give a file written by tcpdump, Wireshark, dumpcap or `plcprobe sim --record`, optionally gzip-compressed")]
    NotACapture {
        /// File.
        path: String,
        /// First bytes, hex.
        magic: String,
    },
    /// Empty or shorter than a header.
    #[error("{path} is empty or shorter than a capture file header ({len} bytes)")]
    TooShort {
        /// File.
        path: String,
        /// Bytes read.
        len: usize,
    },
}

#[derive(Clone, Copy)]
struct Iface {
    linktype: Linktype,
    /// Units per second.
    resolution: u64,
    offset_s: i64,
}

/// Open `path` (gzip detected by its magic bytes) and call `f` for every packet, in file order.
/// Returns the statistics; a damaged file stops early with `truncated` set.
///
/// # Errors
/// [`OpenError`] when the file cannot be read or is not a capture.
pub fn for_each_packet(
    path: &Path,
    mut f: impl FnMut(&Packet<'_>),
) -> Result<ReadStats, OpenError> {
    let input = open_input(path)?;
    let mut stats = ReadStats::default();
    read_stream(
        input.stream,
        &input.shown,
        input.gz,
        &mut stats,
        &mut f,
        &input.magic,
    )?;
    Ok(stats)
}

/// A capture file opened for reading: its bytes (gunzipped when its magic says gzip), the
/// name errors show, and its first bytes.
pub(crate) struct Input {
    pub(crate) stream: Box<dyn Read + Send>,
    pub(crate) shown: String,
    pub(crate) gz: bool,
    pub(crate) magic: Vec<u8>,
}

/// Open `path`, gzip detected by its magic bytes.
pub(crate) fn open_input(path: &Path) -> Result<Input, OpenError> {
    let shown = path.display().to_string();
    let io = |err| OpenError::Io {
        path: shown.clone(),
        err,
    };
    let mut file = File::open(path).map_err(io)?;
    let mut magic = [0u8; 4];
    let n = read_up_to(&mut file, &mut magic).map_err(io)?;
    let gz = n >= 2 && magic[..2] == [0x1f, 0x8b];
    let file = File::open(path).map_err(io)?;
    let stream: Box<dyn Read + Send> = if gz {
        Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
            1 << 16,
            file,
        )))
    } else {
        Box::new(file)
    };
    Ok(Input {
        stream,
        shown,
        gz,
        magic: magic[..n].to_vec(),
    })
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Read a capture from any stream (also used by the fuzz tests on in-memory bytes).
///
/// # Errors
/// [`OpenError`] when the stream is not a capture.
pub fn read_stream(
    input: Box<dyn Read + Send>,
    shown: &str,
    gz: bool,
    stats: &mut ReadStats,
    f: &mut dyn FnMut(&Packet<'_>),
    magic: &[u8],
) -> Result<(), OpenError> {
    let gzs = if gz { "+gzip" } else { "" };
    let mut legacy: Option<(Linktype, u64)> = None;
    let mut ifaces: Vec<Iface> = Vec::new();
    let mut names: Vec<Option<String>> = Vec::new();
    let mut frame = 0u64;
    walk_blocks(input, shown, gz, stats, magic, |block, stats| {
        match block {
            PcapBlockOwned::LegacyHeader(h) => {
                stats.format = format!("pcap{gzs}");
                let res = if h.is_nanosecond_precision() {
                    1_000_000_000
                } else {
                    1_000_000
                };
                legacy = Some((h.network, res));
            }
            PcapBlockOwned::Legacy(b) => {
                let (linktype, res) = legacy.unwrap_or((Linktype::ETHERNET, 1_000_000));
                frame += 1;
                let frac = if res == 1_000_000 {
                    i64::from(b.ts_usec) * 1000
                } else {
                    i64::from(b.ts_usec)
                };
                let data = &b.data[..(b.caplen as usize).min(b.data.len())];
                deliver(
                    stats,
                    f,
                    &Packet {
                        frame,
                        ts_ns: i64::from(b.ts_sec) * 1_000_000_000 + frac,
                        linktype,
                        data,
                        orig_len: b.origlen,
                        direction: PacketDirection::Unknown,
                        if_name: None,
                    },
                );
            }
            PcapBlockOwned::NG(Block::SectionHeader(_)) => {
                stats.format = format!("pcapng{gzs}");
                ifaces.clear();
                names.clear();
            }
            PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                ifaces.push(Iface {
                    linktype: idb.linktype,
                    resolution: idb.ts_resolution().unwrap_or(1_000_000).max(1),
                    offset_s: idb.ts_offset(),
                });
                names.push(idb.if_name().and_then(Result::ok).map(str::to_string));
            }
            PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                frame += 1;
                let Some(iface) = ifaces.get(epb.if_id as usize).copied() else {
                    stats.unknown_interface += 1;
                    stats.packets += 1;
                    return true;
                };
                let raw = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                let ts_ns = ts_to_ns(raw, iface.resolution, iface.offset_s);
                let caplen = (epb.caplen as usize).min(epb.data.len());
                // Flags matter for serial captures only; Ethernet skips the search.
                let direction = if iface.linktype == Linktype::ETHERNET {
                    PacketDirection::Unknown
                } else {
                    epb.options
                        .iter()
                        .find(|o| o.code.0 == 2)
                        .and_then(|o| o.as_bytes().ok())
                        .and_then(|v| v.get(..4))
                        .map_or(PacketDirection::Unknown, |v| {
                            PacketDirection::from_flags(u32::from_le_bytes([
                                v[0], v[1], v[2], v[3],
                            ]))
                        })
                };
                deliver(
                    stats,
                    f,
                    &Packet {
                        frame,
                        ts_ns,
                        linktype: iface.linktype,
                        data: &epb.data[..caplen],
                        orig_len: epb.origlen,
                        direction,
                        if_name: names.get(epb.if_id as usize).and_then(Option::as_deref),
                    },
                );
            }
            PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                frame += 1;
                let linktype = ifaces.first().map_or(Linktype::ETHERNET, |i| i.linktype);
                let len = (spb.origlen as usize).min(spb.data.len());
                deliver(
                    stats,
                    f,
                    &Packet {
                        frame,
                        ts_ns: 0,
                        linktype,
                        data: &spb.data[..len],
                        orig_len: spb.origlen,
                        direction: PacketDirection::Unknown,
                        if_name: names.first().and_then(Option::as_deref),
                    },
                );
            }
            PcapBlockOwned::NG(_) => {}
        }
        true
    })
}

/// Read every block of a capture stream and hand it to `on_block` (with the statistics, for
/// the caller to count packets), in file order, until the end, a damaged record (noted in
/// `stats.truncated`), or `on_block` returning false. Every refill makes progress and the
/// buffer grows up to [`MAX_BLOCK`] (the module's header says why).
///
/// # Errors
/// [`OpenError`] when the stream is not a capture.
pub(crate) fn walk_blocks(
    input: Box<dyn Read + Send>,
    shown: &str,
    gz: bool,
    stats: &mut ReadStats,
    magic: &[u8],
    mut on_block: impl FnMut(&PcapBlockOwned<'_>, &mut ReadStats) -> bool,
) -> Result<(), OpenError> {
    let mut reader = match create_reader(BUFFER, input) {
        Ok(r) => r,
        Err(PcapError::Eof | PcapError::Incomplete(_)) => {
            return Err(OpenError::TooShort {
                path: shown.to_string(),
                len: magic.len(),
            })
        }
        Err(PcapError::ReadError) => {
            return Err(OpenError::Io {
                path: shown.to_string(),
                err: std::io::Error::other(if gz {
                    "gzip stream is damaged"
                } else {
                    "read failed"
                }),
            })
        }
        Err(_) => {
            return Err(OpenError::NotACapture {
                path: shown.to_string(),
                magic: magic
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(" "),
            })
        }
    };
    let mut capacity = BUFFER;
    loop {
        match reader.next() {
            Ok((offset, block)) => {
                let more = on_block(&block, stats);
                reader.consume(offset);
                if !more {
                    break;
                }
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => {
                let before = reader.data().len();
                if reader.refill().is_err() {
                    stats.truncated = Some(at(stats, "the file could not be read further"));
                    break;
                }
                if reader.data().len() == before && !reader.reader_exhausted() {
                    // Full buffer and still incomplete: the block is bigger than the buffer.
                    if !grow(&mut *reader, &mut capacity) {
                        stats.truncated = Some(at(
                            stats,
                            "a record is larger than 16 MiB (corrupt length field)",
                        ));
                        break;
                    }
                }
            }
            Err(PcapError::BufferTooSmall) => {
                if !grow(&mut *reader, &mut capacity) {
                    stats.truncated = Some(at(
                        stats,
                        "a record is larger than 16 MiB (corrupt length field)",
                    ));
                    break;
                }
                if reader.refill().is_err() {
                    stats.truncated = Some(at(stats, "the file could not be read further"));
                    break;
                }
            }
            Err(PcapError::UnexpectedEof) => {
                stats.truncated = Some(at(stats, "the file ends inside a packet record"));
                break;
            }
            Err(PcapError::ReadError) => {
                stats.truncated = Some(at(
                    stats,
                    if gz {
                        "the gzip stream is damaged"
                    } else {
                        "a read failed"
                    },
                ));
                break;
            }
            Err(e) => {
                stats.truncated = Some(at(stats, &format!("an unreadable record ({e:?})")));
                break;
            }
        }
    }
    Ok(())
}

fn at(stats: &ReadStats, why: &str) -> String {
    format!("{why}, after packet {}", stats.packets)
}

fn grow(reader: &mut dyn PcapReaderIterator, capacity: &mut usize) -> bool {
    if *capacity >= MAX_BLOCK {
        return false;
    }
    *capacity = (*capacity * 2).min(MAX_BLOCK);
    reader.grow(*capacity)
}

#[inline]
fn deliver(stats: &mut ReadStats, f: &mut dyn FnMut(&Packet<'_>), p: &Packet<'_>) {
    stats.packets += 1;
    stats.bytes += p.data.len() as u64;
    if (p.data.len() as u64) < u64::from(p.orig_len) {
        stats.snapped += 1;
    }
    f(p);
}

/// pcapng timestamp units to nanoseconds since the epoch.
pub(crate) fn ts_to_ns(raw: u64, resolution: u64, offset_s: i64) -> i64 {
    let secs = raw / resolution;
    let frac = raw % resolution;
    let ns = if resolution == 1_000_000_000 {
        frac
    } else {
        u64::try_from(u128::from(frac) * 1_000_000_000 / u128::from(resolution)).unwrap_or(0)
    };
    i64::try_from(secs)
        .unwrap_or(i64::MAX / 1_000_000_000)
        .saturating_add(offset_s)
        .saturating_mul(1_000_000_000)
        .saturating_add(i64::try_from(ns).unwrap_or(0))
}

/// Packets read ahead by [`for_each_packet_threaded`]: their bytes back to back, and where each
/// one is.
struct Batch<T> {
    data: Vec<u8>,
    meta: Vec<Meta<T>>,
    /// Interface names of this batch's packets (`Meta::name` indexes it).
    names: Vec<String>,
}

struct Meta<T> {
    frame: u64,
    ts_ns: i64,
    linktype: Linktype,
    start: usize,
    len: usize,
    orig_len: u32,
    direction: PacketDirection,
    /// Index in `Batch::names`; `u16::MAX` for none.
    name: u16,
    /// What the reading thread found out about the packet for the caller.
    prepared: T,
}

/// Bytes of packet data per batch handed from the reading thread to the caller.
const BATCH: usize = 1 << 20;

/// Like [`for_each_packet`], with the file read and its records parsed on a second thread, a
/// batch ahead of `f`: decoding then runs on its own core while the next batch is read.
/// Memory stays bounded (two batches of 1 MiB in flight, recycled).
///
/// # Errors
/// [`OpenError`] when the file cannot be read or is not a capture.
pub fn for_each_packet_threaded(
    path: &Path,
    mut f: impl FnMut(&Packet<'_>),
) -> Result<ReadStats, OpenError> {
    for_each_packet_prepared(path, |_| (), |p, ()| f(p))
}

/// Like [`for_each_packet_threaded`], with `prepare` run on the reading thread for each packet
/// and its result handed to `f` with the packet: work that needs only the packet's own bytes
/// (the link layer's headers, say) moves off the caller's core.
///
/// # Errors
/// [`OpenError`] when the file cannot be read or is not a capture.
pub fn for_each_packet_prepared<T: Send>(
    path: &Path,
    prepare: impl Fn(&Packet<'_>) -> T + Send,
    mut f: impl FnMut(&Packet<'_>, T),
) -> Result<ReadStats, OpenError> {
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<Batch<T>>(1);
    let (empty_tx, empty_rx) = std::sync::mpsc::channel::<Batch<T>>();
    for _ in 0..2 {
        let _ = empty_tx.send(Batch {
            data: Vec::with_capacity(BATCH + (64 << 10)),
            meta: Vec::with_capacity(BATCH / 64),
            names: Vec::new(),
        });
    }
    std::thread::scope(|sc| {
        let owned = path.to_path_buf();
        let reader = sc.spawn(move || {
            let mut batch = empty_rx.recv().ok();
            let r = for_each_packet(&owned, |p| {
                let Some(b) = batch.as_mut() else { return };
                let name = p.if_name.map_or(u16::MAX, |n| {
                    let at = match b.names.last() {
                        Some(l) if l == n => b.names.len() - 1,
                        _ => b.names.iter().position(|x| x == n).unwrap_or_else(|| {
                            b.names.push(n.to_string());
                            b.names.len() - 1
                        }),
                    };
                    u16::try_from(at).unwrap_or(u16::MAX)
                });
                b.meta.push(Meta {
                    frame: p.frame,
                    ts_ns: p.ts_ns,
                    linktype: p.linktype,
                    start: b.data.len(),
                    len: p.data.len(),
                    orig_len: p.orig_len,
                    direction: p.direction,
                    name,
                    prepared: prepare(p),
                });
                b.data.extend_from_slice(p.data);
                if b.data.len() >= BATCH {
                    if let Some(full) = batch.take() {
                        if full_tx.send(full).is_ok() {
                            batch = empty_rx.recv().ok();
                        }
                    }
                }
            });
            if let Some(b) = batch.take() {
                if !b.meta.is_empty() {
                    let _ = full_tx.send(b);
                }
            }
            r
        });
        for mut b in full_rx {
            for m in b.meta.drain(..) {
                f(
                    &Packet {
                        frame: m.frame,
                        ts_ns: m.ts_ns,
                        linktype: m.linktype,
                        data: &b.data[m.start..m.start + m.len],
                        orig_len: m.orig_len,
                        direction: m.direction,
                        if_name: b.names.get(usize::from(m.name)).map(String::as_str),
                    },
                    m.prepared,
                );
            }
            b.data.clear();
            b.names.clear();
            let _ = empty_tx.send(b);
        }
        reader.join().unwrap_or_else(|_| {
            Err(OpenError::Io {
                path: path.display().to_string(),
                err: std::io::Error::other("the reading thread failed"),
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcapng_resolutions() {
        assert_eq!(ts_to_ns(1_500_000, 1_000_000, 0), 1_500_000_000);
        assert_eq!(ts_to_ns(1_500_000_001, 1_000_000_000, 0), 1_500_000_001);
        assert_eq!(ts_to_ns(3, 2, 10), 11_500_000_000);
    }
}
