//! Capture excerpts (`decode FILE --from T --to T -w OUT.pcapng`, docs/DESIGN.md §8): the
//! packets of a pcap or pcapng file whose time is in the window `[from, to)`, written as one
//! pcapng section with their interfaces and timestamps exactly as the file has them.
//!
//! - Times ([`parse_time`]): RFC 3339 (`2026-11-27T02:10:00Z`, `…+01:00`: its offset applies),
//!   or a clock time `HH:MM[:SS[.frac]]` in UTC on the day (UTC) of the capture's first packet.
//!   A clock time earlier in the day than that first packet means the next day: the capture
//!   crossed midnight (`night.pcapng` starting 22:00, `--from 02:10` is 02:10 the morning
//!   after). A capture longer than a day needs RFC 3339 for its later days.
//! - Interfaces: every interface description of the file is written, in order (one section:
//!   the interfaces of later sections are numbered after those of earlier ones), with its link
//!   type, snaplen, `if_name`, `if_description`, `if_tsresol`, `if_tsoffset`, `if_os`,
//!   `if_hardware`, `if_filter` and `if_fcslen`. A pcap file becomes one interface with its link
//!   type, snaplen and resolution (µs, or ns for a nanosecond pcap).
//! - Packets: each kept packet keeps its interface, its raw timestamp in that interface's units
//!   (so nothing is rounded), captured bytes, original length, `epb_flags` and comments. Simple
//!   packet blocks (no timestamp) and packets naming an undescribed interface are left out;
//!   statistics, name resolution and other blocks are not copied.
//!
//! Pure but for reading the input: the caller gives where the excerpt goes (`decode` a file
//! written atomically).

use std::{io::Write, path::Path};

use pcap_parser::{pcapng::Block, PcapBlockOwned};

use super::{
    reader::{self, OpenError, ReadStats},
    writer::{interface_block, packet_block, section_header, Interface},
};

const NS: i64 = 1_000_000_000;
const DAY_NS: i64 = 86_400 * NS;

/// One end of a window as typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSpec {
    /// An instant: nanoseconds since the Unix epoch.
    At(i64),
    /// A clock time (UTC): nanoseconds since midnight, on the capture's first day (or the day
    /// after, when earlier than its first packet's time of day).
    Clock(i64),
}

/// Parse `--from`/`--to` text: RFC 3339, or `HH:MM[:SS[.frac]]`. The error names `flag`.
///
/// # Errors
/// A sentence with both forms as examples.
pub fn parse_time(flag: &str, text: &str) -> Result<TimeSpec, String> {
    let t = text.trim();
    if let Ok(d) = chrono::DateTime::parse_from_rfc3339(t) {
        return d
            .timestamp_nanos_opt()
            .map(TimeSpec::At)
            .ok_or_else(|| format!("{flag} `{text}`: outside the years 1678–2262"));
    }
    let clock = chrono::NaiveTime::parse_from_str(t, "%H:%M:%S%.f")
        .or_else(|_| chrono::NaiveTime::parse_from_str(t, "%H:%M"));
    match clock {
        Ok(c) if t.len() >= 5 && t.as_bytes()[2] == b':' => {
            use chrono::Timelike as _;
            Ok(TimeSpec::Clock(
                i64::from(c.num_seconds_from_midnight()) * NS + i64::from(c.nanosecond()),
            ))
        }
        _ => Err(format!(
            "{flag} `{text}` is not a time: give RFC 3339 (2026-11-27T02:10:00Z, or with an offset: 2026-11-27T03:10:00+01:00) or a clock time HH:MM[:SS[.frac]] (UTC, on the day of the capture's first packet)"
        )),
    }
}

/// `--from` and `--to` as typed (either may be absent: from the start, to the end).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    /// First instant kept.
    pub from: Option<TimeSpec>,
    /// First instant no longer kept.
    pub to: Option<TimeSpec>,
}

/// A window with both ends as instants (ns since the epoch); `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved {
    /// First instant kept (None: from the start).
    pub from: Option<i64>,
    /// First instant no longer kept (None: to the end).
    pub to: Option<i64>,
}

impl Resolved {
    /// Whether a packet at `ts_ns` is kept.
    #[must_use]
    pub fn contains(&self, ts_ns: i64) -> bool {
        self.from.is_none_or(|f| ts_ns >= f) && self.to.is_none_or(|t| ts_ns < t)
    }
}

impl Window {
    /// The instants of the window for a capture whose first packet is at `first_ns`.
    #[must_use]
    pub fn resolve(&self, first_ns: i64) -> Resolved {
        let day = first_ns.div_euclid(DAY_NS) * DAY_NS;
        let first_tod = first_ns.rem_euclid(DAY_NS);
        let at = |t: TimeSpec| match t {
            TimeSpec::At(ns) => ns,
            TimeSpec::Clock(tod) if tod < first_tod => day + DAY_NS + tod,
            TimeSpec::Clock(tod) => day + tod,
        };
        Resolved {
            from: self.from.map(at),
            to: self.to.map(at),
        }
    }

    /// Both ends given as instants and `to` not after `from`: refused before any reading.
    ///
    /// # Errors
    /// The sentence naming both.
    pub fn check_order(&self, from_text: &str, to_text: &str) -> Result<(), String> {
        if let (Some(TimeSpec::At(f)), Some(TimeSpec::At(t))) = (self.from, self.to) {
            if t <= f {
                return Err(order_error(from_text, to_text, f, t));
            }
        }
        Ok(())
    }
}

fn order_error(from_text: &str, to_text: &str, f: i64, t: i64) -> String {
    format!(
        "--to `{to_text}` ({}) is not after --from `{from_text}` ({}): the window [from, to) would be empty; give a --to later than --from",
        time_text(t),
        time_text(f)
    )
}

/// `ts_ns` as RFC 3339 UTC, with as many fraction digits as it needs.
#[must_use]
pub fn time_text(ts_ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ts_ns)
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// What cutting a capture did.
#[derive(Debug, Clone, Default)]
pub struct Cut {
    /// Reader statistics of the input (format, packets, truncation).
    pub stats: ReadStats,
    /// The window as instants (None when the capture has no timestamped packet).
    pub window: Option<Resolved>,
    /// Packets written.
    pub kept: u64,
    /// Interfaces described in the excerpt.
    pub interfaces: u32,
    /// Earliest and latest packet time of the input.
    pub span: Option<(i64, i64)>,
    /// Packets left out because they have no time (simple packet blocks) or no interface.
    pub untimed: u64,
}

/// Why an excerpt could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ExcerptError {
    /// The input is not a capture or cannot be read.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// Writing the excerpt failed.
    #[error("cannot write the excerpt: {0}")]
    Write(#[from] std::io::Error),
    /// No packet in the window.
    #[error("{0}")]
    Empty(String),
    /// `to` not after `from` once clock times are placed on the capture's day.
    #[error("{0}")]
    Order(String),
}

/// A link type as pcapng's 16 bits: a pcap header's 32-bit field keeps the type in its low 16
/// (the high bits say FCS length).
fn link16(linktype: i32) -> u16 {
    u16::try_from(linktype & 0xffff).unwrap_or(0)
}

/// Per interface of the input: its index in the excerpt and its time units.
#[derive(Clone, Copy)]
struct OutIface {
    id: u32,
    resolution: u64,
    offset_s: i64,
}

/// Copy the packets of `path` in `window` to `out` as pcapng (see the module header);
/// `texts` are the `--from`/`--to` texts for messages.
///
/// # Errors
/// [`ExcerptError`]: the input is not a capture, the excerpt could not be written, no packet
/// is in the window (the message gives the capture's first and last times), or `--to` is not
/// after `--from`.
pub fn cut(
    path: &Path,
    window: &Window,
    texts: (&str, &str),
    out: &mut dyn Write,
) -> Result<Cut, ExcerptError> {
    let input = reader::open_input(path)?;
    cut_stream(
        input.stream,
        &path.display().to_string(),
        input.gz,
        &input.magic,
        window,
        texts,
        out,
    )
}

/// [`cut`] of a capture read from any stream (`shown` names it in messages, `magic` are its
/// first bytes; the fuzz target gives bytes in memory).
///
/// # Errors
/// As [`cut`].
pub fn cut_stream(
    stream: Box<dyn std::io::Read + Send>,
    shown: &str,
    gz: bool,
    magic: &[u8],
    window: &Window,
    texts: (&str, &str),
    out: &mut dyn Write,
) -> Result<Cut, ExcerptError> {
    let mut cut = Cut::default();
    let mut io_error: Option<std::io::Error> = None;
    let mut order: Option<String> = None;
    let mut started = false;
    let mut section: Vec<OutIface> = Vec::new();
    let mut legacy: Option<OutIface> = None;
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 16);
    let mut stats = ReadStats::default();
    {
        let mut start = |buf: &mut Vec<u8>| -> Result<(), std::io::Error> {
            if !started {
                started = true;
                buf.extend(section_header()?);
            }
            Ok(())
        };
        let packet = |cut: &mut Cut, ts_ns: i64| -> Result<bool, String> {
            cut.span = Some(
                cut.span
                    .map_or((ts_ns, ts_ns), |(a, b)| (a.min(ts_ns), b.max(ts_ns))),
            );
            let w = *cut.window.get_or_insert_with(|| window.resolve(ts_ns));
            if let (Some(f), Some(t)) = (w.from, w.to) {
                if t <= f {
                    return Err(order_error(texts.0, texts.1, f, t));
                }
            }
            Ok(w.contains(ts_ns))
        };
        let r = reader::walk_blocks(stream, shown, gz, &mut stats, magic, |block, stats| {
            let step = (|| -> Result<(), std::io::Error> {
                match block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        start(&mut buf)?;
                        stats.format = "pcap".into();
                        let (tsresol, resolution) = if h.is_nanosecond_precision() {
                            (9, NS.unsigned_abs())
                        } else {
                            (6, 1_000_000)
                        };
                        let iface = Interface {
                            linktype: link16(h.network.0),
                            snaplen: h.snaplen,
                            name: None,
                            description: None,
                        };
                        buf.extend(interface_block(&iface, Some(tsresol), &[])?);
                        legacy = Some(OutIface {
                            id: cut.interfaces,
                            resolution,
                            offset_s: 0,
                        });
                        cut.interfaces += 1;
                    }
                    PcapBlockOwned::Legacy(b) => {
                        stats.packets += 1;
                        let Some(i) = legacy else { return Ok(()) };
                        let ts_ns = i64::from(b.ts_sec) * NS
                            + if i.resolution == 1_000_000 {
                                i64::from(b.ts_usec) * 1000
                            } else {
                                i64::from(b.ts_usec)
                            };
                        match packet(&mut cut, ts_ns) {
                            Err(e) => order = Some(e),
                            Ok(false) => {}
                            Ok(true) => {
                                let raw = u64::from(b.ts_sec) * i.resolution + u64::from(b.ts_usec);
                                let data = &b.data[..(b.caplen as usize).min(b.data.len())];
                                packet_block(&mut buf, i.id, raw, data, b.origlen, &[])?;
                                cut.kept += 1;
                            }
                        }
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => {
                        start(&mut buf)?;
                        stats.format = "pcapng".into();
                        section.clear();
                    }
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        start(&mut buf)?;
                        // Name and description go as the file has them (bytes), below.
                        let iface = Interface {
                            linktype: link16(idb.linktype.0),
                            snaplen: idb.snaplen,
                            name: None,
                            description: None,
                        };
                        // The options kept, in the file's order, as the file has them
                        // (declared lengths, no padding); `if_tsoffset` (parsed in the file's
                        // byte order) written in ours; no `if_tsresol` stays none (µs).
                        let offset = idb.if_tsoffset.to_le_bytes();
                        let mut more: Vec<(u16, &[u8])> = Vec::new();
                        for o in &idb.options {
                            match (o.code.0, o.as_bytes()) {
                                // Strings and single bytes: the same in either byte order.
                                (2 | 3 | 9 | 10 | 11 | 12 | 15, Ok(v)) => more.push((o.code.0, v)),
                                (14, Ok(_)) => more.push((14, &offset)),
                                _ => {}
                            }
                        }
                        buf.extend(interface_block(&iface, None, &more)?);
                        section.push(OutIface {
                            id: cut.interfaces,
                            resolution: idb.ts_resolution().unwrap_or(1_000_000).max(1),
                            offset_s: idb.ts_offset(),
                        });
                        cut.interfaces += 1;
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        stats.packets += 1;
                        let Some(i) = section.get(epb.if_id as usize).copied() else {
                            cut.untimed += 1;
                            return Ok(());
                        };
                        let raw = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                        let ts_ns = reader::ts_to_ns(raw, i.resolution, i.offset_s);
                        match packet(&mut cut, ts_ns) {
                            Err(e) => order = Some(e),
                            Ok(false) => {}
                            Ok(true) => {
                                let flags = epb
                                    .options
                                    .iter()
                                    .find(|o| o.code.0 == 2)
                                    .and_then(|o| o.as_bytes().ok()?.get(..4))
                                    .map(|v| {
                                        let mut f = [v[0], v[1], v[2], v[3]];
                                        if epb.block_type != 6 {
                                            f.reverse(); // a big-endian section
                                        }
                                        f
                                    });
                                let mut opts: Vec<(u16, &[u8])> = epb
                                    .options
                                    .iter()
                                    .filter(|o| o.code.0 == 1)
                                    .filter_map(|o| Some((1, o.as_bytes().ok()?)))
                                    .collect();
                                if let Some(f) = &flags {
                                    opts.push((2, f));
                                }
                                let data = &epb.data[..(epb.caplen as usize).min(epb.data.len())];
                                packet_block(&mut buf, i.id, raw, data, epb.origlen, &opts)?;
                                cut.kept += 1;
                            }
                        }
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(_)) => {
                        stats.packets += 1;
                        cut.untimed += 1;
                    }
                    PcapBlockOwned::NG(_) => {}
                }
                Ok(())
            })();
            let step = step.and_then(|()| {
                if buf.len() >= 1 << 16 {
                    out.write_all(&buf)?;
                    buf.clear();
                }
                Ok(())
            });
            if let Err(e) = step {
                io_error = Some(e);
                return false;
            }
            order.is_none()
        });
        r?;
    }
    if io_error.is_none() && order.is_none() {
        if let Err(e) = out.write_all(&buf) {
            io_error = Some(e);
        }
    }
    if let Some(e) = io_error {
        return Err(ExcerptError::Write(e));
    }
    if let Some(e) = order {
        return Err(ExcerptError::Order(e));
    }
    cut.stats = stats;
    if cut.kept == 0 {
        let file = shown;
        return Err(ExcerptError::Empty(match (cut.span, cut.window) {
            (Some((first, last)), Some(w)) => format!(
                "no packet of {file} is in the window [{}, {}): the capture runs from {} to {} ({} packets); give times inside it",
                w.from.map_or_else(|| "start".into(), time_text),
                w.to.map_or_else(|| "end".into(), time_text),
                time_text(first),
                time_text(last),
                cut.stats.packets
            ),
            _ => format!("{file} holds no packet with a time: nothing to cut"),
        }));
    }
    Ok(cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_in_both_forms_and_bad_text_names_the_flag() {
        assert_eq!(
            parse_time("--from", "1970-01-01T00:00:01.5Z").unwrap(),
            TimeSpec::At(1_500_000_000)
        );
        assert_eq!(
            parse_time("--from", "1970-01-01T01:00:01+01:00").unwrap(),
            TimeSpec::At(NS)
        );
        assert_eq!(
            parse_time("--to", "02:10").unwrap(),
            TimeSpec::Clock((2 * 3600 + 600) * NS)
        );
        assert_eq!(
            parse_time("--to", "02:10:05.000000007").unwrap(),
            TimeSpec::Clock((2 * 3600 + 605) * NS + 7)
        );
        for bad in [
            "",
            "2:1",
            "25:00",
            "02:10:61x",
            "yesterday",
            "2026-11-27 02:10",
        ] {
            let e = parse_time("--from", bad).unwrap_err();
            assert!(e.starts_with("--from `"), "{bad}: {e}");
        }
    }

    #[test]
    fn clock_times_fall_on_the_first_packets_day_or_the_next() {
        // First packet 1970-01-02T22:00:00Z.
        let first = DAY_NS + 22 * 3600 * NS;
        let w = Window {
            from: Some(TimeSpec::Clock(23 * 3600 * NS)),
            to: Some(TimeSpec::Clock(2 * 3600 * NS)),
        };
        let r = w.resolve(first);
        assert_eq!(r.from, Some(DAY_NS + 23 * 3600 * NS));
        assert_eq!(
            r.to,
            Some(2 * DAY_NS + 2 * 3600 * NS),
            "after midnight: the next day"
        );
        assert!(r.contains(r.from.unwrap()) && !r.contains(r.to.unwrap()));
        let open = Window::default().resolve(first);
        assert!(open.contains(i64::MIN) && open.contains(i64::MAX));
        let bad = Window {
            from: Some(TimeSpec::At(5)),
            to: Some(TimeSpec::At(5)),
        };
        assert!(bad.check_order("a", "b").unwrap_err().contains("not after"));
    }

    #[test]
    fn names_resolutions_flags_and_raw_timestamps_are_kept() {
        let named = Interface {
            linktype: 147,
            snaplen: 256,
            name: Some("/dev/ttyUSB1".into()),
            description: Some("19200 8E1".into()),
        };
        let mut file = section_header().unwrap();
        file.extend(interface_block(&Interface::ethernet(), Some(6), &[]).unwrap());
        file.extend(interface_block(&named, Some(9), &[]).unwrap());
        // µs on interface 0, ns on interface 1 with a direction: 10 s + 1..=4 units.
        for k in 1..=4u64 {
            packet_block(&mut file, 0, 10_000_000 + k, &[k as u8; 60], 60, &[]).unwrap();
            let out = 2u32.to_le_bytes();
            packet_block(
                &mut file,
                1,
                10 * NS.unsigned_abs() + k,
                &[1, 3, 0, 0],
                4,
                &[(2, &out)],
            )
            .unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.pcapng");
        std::fs::write(&input, &file).unwrap();
        let w = Window {
            from: Some(TimeSpec::At(10 * NS + 2)),
            to: Some(TimeSpec::At(10 * NS + 3001)),
        };
        let mut out = Vec::new();
        let cut = cut(&input, &w, ("", ""), &mut out).unwrap();
        // Kept in file order: µs 1, 2, 3 (1000, 2000, 3000 ns) on interface 0, ns 2, 3, 4 on
        // interface 1 (ns 1 is before --from, µs 4 at 4000 ns after --to).
        assert_eq!((cut.kept, cut.interfaces), (6, 2));
        let excerpt = dir.path().join("out.pcapng");
        std::fs::write(&excerpt, &out).unwrap();
        let mut seen = Vec::new();
        reader::for_each_packet(&excerpt, |p| {
            seen.push((
                p.ts_ns - 10 * NS,
                p.if_name.map(str::to_string),
                p.direction.flags(),
            ));
        })
        .unwrap();
        assert_eq!(
            seen,
            [
                (1000, None, 0),
                (2000, None, 0),
                (2, Some("/dev/ttyUSB1".into()), 2),
                (3000, None, 0),
                (3, Some("/dev/ttyUSB1".into()), 2),
                (4, Some("/dev/ttyUSB1".into()), 2),
            ]
        );
        // The whole excerpt is the input minus the packets outside: the same bytes per block.
        let mut all = Vec::new();
        cut_all(&input, &mut all);
        assert_eq!(all, file, "an open window copies the file byte for byte");
    }

    fn cut_all(input: &Path, out: &mut Vec<u8>) {
        cut(input, &Window::default(), ("", ""), out).unwrap();
    }
}
