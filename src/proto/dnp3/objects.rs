//! DNP3 object headers (IEEE 1815-2012 §4.2.2.7, §4.3): group, variation, qualifier (index
//! prefix code and range specifier code), range; then, where the function carries data, the
//! objects themselves. To walk past a header's data the size of its objects must be known:
//! [`object_size`] knows the common groups; where it does not (and the qualifier gives no
//! per-object size prefix) the walk stops and says so ([`Walk::stopped`]) — that is not a
//! malformed message, only an object plcprobe does not size.
//!
//! Pure and panic-free; headers borrow their data from the fragment.

/// How big an object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// This many octets per object.
    Octets(usize),
    /// Packed: this many bits per object, the whole header rounded up to octets.
    Bits(usize),
}

/// The size of one object of `group`/`variation` as it travels after a header, for the groups
/// IEEE 1815 fixes (None: variable, free-format or not known here).
#[must_use]
pub fn object_size(group: u8, variation: u8) -> Option<Size> {
    use Size::{Bits, Octets};
    let o = |n: &[usize]| {
        n.get(usize::from(variation).wrapping_sub(1))
            .map(|&n| Octets(n))
    };
    match (group, variation) {
        (1 | 10 | 80, 1) | (12, 3) => Some(Bits(1)),
        (3, 1) => Some(Bits(2)),
        (1 | 3 | 10, 2) => Some(Octets(1)),
        (2 | 4, _) => o(&[1, 7, 3]),
        (11 | 13, _) => o(&[1, 7]),
        (12, 1 | 2) => Some(Octets(11)),
        (20, _) => o(&[5, 3, 5, 3, 4, 2, 4, 2]),
        (21, _) => o(&[5, 3, 5, 3, 11, 9, 11, 9, 4, 2, 4, 2]),
        (22 | 23, _) => o(&[5, 3, 5, 3, 11, 9, 11, 9]),
        (30, _) => o(&[5, 3, 4, 2, 5, 9]),
        (31, _) => o(&[5, 3, 11, 9, 4, 2, 5, 9]),
        (32 | 33 | 42, _) => o(&[5, 3, 11, 9, 5, 9, 11, 15]),
        (34, _) => o(&[2, 4, 4]),
        (40 | 41, _) => o(&[5, 3, 5, 9]),
        (43, _) => o(&[6, 4, 12, 10, 6, 10, 12, 16]),
        (50, _) => o(&[6, 10, 6, 11]),
        (51, _) => o(&[6, 6]),
        (52, _) => o(&[2, 2]),
        (60, _) => Some(Octets(0)),
        // Octet strings: the variation is the length.
        (110..=113, v) => Some(Octets(usize::from(v))),
        _ => None,
    }
}

/// The range field of a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// Start and stop indexes (range codes 0–2).
    StartStop(u32, u32),
    /// A count of objects (7–9, and 0xB free format).
    Count(u32),
    /// An absolute address (3–5): one object.
    Address(u32),
    /// No range: all objects (6).
    All,
}

impl Range {
    /// Objects the range covers (`All` covers none that travel).
    #[must_use]
    pub fn count(&self) -> u64 {
        match *self {
            Range::StartStop(a, b) => u64::from(b).saturating_sub(u64::from(a)) + u64::from(b >= a),
            Range::Count(n) => u64::from(n),
            Range::Address(_) => 1,
            Range::All => 0,
        }
    }
}

/// One object header and the data that follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectHeader<'a> {
    /// Object group.
    pub group: u8,
    /// Object variation.
    pub variation: u8,
    /// The qualifier octet: index prefix code in bits 4–6, range specifier code in bits 0–3.
    pub qualifier: u8,
    /// The range.
    pub range: Range,
    /// The objects with their prefixes (empty for headers without data).
    pub data: &'a [u8],
}

impl ObjectHeader<'_> {
    /// Index prefix code (`dnp3.al.objq.prefix`).
    #[must_use]
    pub fn prefix_code(&self) -> u8 {
        (self.qualifier >> 4) & 7
    }
    /// Range specifier code (`dnp3.al.objq.range`).
    #[must_use]
    pub fn range_code(&self) -> u8 {
        self.qualifier & 0x0F
    }

    /// The points of the header: (index, object octets), for unpacked objects of known size.
    pub fn points(&self) -> impl Iterator<Item = (u32, &[u8])> + '_ {
        let size = match object_size(self.group, self.variation) {
            Some(Size::Octets(n)) => Some(n),
            _ => None,
        };
        let prefix = match self.prefix_code() {
            1 => 1,
            2 => 2,
            3 => 4,
            _ => 0,
        };
        let start = match self.range {
            Range::StartStop(a, _) | Range::Address(a) => a,
            _ => 0,
        };
        let step = size.map_or(0, |n| n + prefix);
        let n = if step == 0 || self.prefix_code() >= 4 {
            0
        } else {
            self.data.len() / step
        };
        (0..n).map(move |i| {
            let o = &self.data[i * step..(i + 1) * step];
            let index = if prefix == 0 {
                start.wrapping_add(i as u32)
            } else {
                le(&o[..prefix])
            };
            (index, &o[prefix..])
        })
    }
}

fn le(b: &[u8]) -> u32 {
    b.iter()
        .rev()
        .fold(0u32, |acc, &x| (acc << 8) | u32::from(x))
}

/// The object headers of a fragment's object part, walked in order.
#[derive(Debug, Clone, Default)]
pub struct Walk<'a> {
    /// The headers read.
    pub headers: Vec<ObjectHeader<'a>>,
    /// Where the walk stopped before the end without the message being malformed (an object
    /// whose size plcprobe does not know), naming the group/variation.
    pub stopped: Option<(u8, u8)>,
    /// Why the object part is malformed (cut short, reserved qualifier, a stop before start).
    pub malformed: Option<&'static str>,
}

/// Walks the object headers in `b`. `with_data`: whether objects follow the headers (writes,
/// controls and responses) or not (reads, freezes, class assignments).
#[must_use]
pub fn walk(mut b: &[u8], with_data: bool) -> Walk<'_> {
    let mut w = Walk::default();
    while !b.is_empty() {
        if w.headers.len() >= 4096 {
            w.malformed = Some("more than 4096 DNP3 object headers");
            break;
        }
        if b.len() < 3 {
            w.malformed = Some("DNP3 object header cut short");
            break;
        }
        let (group, variation, qualifier) = (b[0], b[1], b[2]);
        let rest = &b[3..];
        let (range, rest) = match read_range(qualifier & 0x0F, rest) {
            Ok(x) => x,
            Err(why) => {
                w.malformed = Some(why);
                break;
            }
        };
        let prefix_code = (qualifier >> 4) & 7;
        if prefix_code == 7 {
            w.malformed = Some("DNP3 object qualifier has reserved prefix code 7");
            break;
        }
        if let Range::StartStop(a, z) = range {
            if z < a {
                w.malformed = Some("DNP3 object range stop before start");
                break;
            }
        }
        let data_len = if with_data && group != 60 {
            match data_len(group, variation, prefix_code, range, rest) {
                Ok(Some(n)) => n,
                Ok(None) => {
                    w.headers.push(ObjectHeader {
                        group,
                        variation,
                        qualifier,
                        range,
                        data: rest,
                    });
                    w.stopped = Some((group, variation));
                    break;
                }
                Err(why) => {
                    w.headers.push(ObjectHeader {
                        group,
                        variation,
                        qualifier,
                        range,
                        data: rest,
                    });
                    w.malformed = Some(why);
                    break;
                }
            }
        } else {
            0
        };
        if data_len > rest.len() {
            w.headers.push(ObjectHeader {
                group,
                variation,
                qualifier,
                range,
                data: rest,
            });
            w.malformed = Some("DNP3 objects cut short");
            break;
        }
        w.headers.push(ObjectHeader {
            group,
            variation,
            qualifier,
            range,
            data: &rest[..data_len],
        });
        b = &rest[data_len..];
    }
    w
}

fn read_range(code: u8, b: &[u8]) -> Result<(Range, &[u8]), &'static str> {
    const CUT: &str = "DNP3 object range cut short";
    let n = match code {
        0 | 3 | 7 | 0x0B => 1,
        1 | 4 | 8 => 2,
        2 | 5 | 9 => 4,
        6 => 0,
        _ => return Err("DNP3 object qualifier has a reserved range code"),
    };
    let width = if code <= 2 { 2 * n } else { n };
    if b.len() < width {
        return Err(CUT);
    }
    let r = match code {
        0..=2 => Range::StartStop(le(&b[..n]), le(&b[n..2 * n])),
        3..=5 => Range::Address(le(&b[..n])),
        6 => Range::All,
        _ => Range::Count(le(&b[..n])),
    };
    Ok((r, &b[width..]))
}

/// Octets of data after a header, `Ok(None)` when the size is unknown.
fn data_len(
    group: u8,
    variation: u8,
    prefix_code: u8,
    range: Range,
    rest: &[u8],
) -> Result<Option<usize>, &'static str> {
    let count = range.count();
    if count > 65_536 {
        return Err("DNP3 object count beyond 65536");
    }
    let count = count as usize;
    if prefix_code >= 4 {
        // Every object carries its own size: walkable without knowing the object.
        let w = match prefix_code {
            4 => 1,
            5 => 2,
            _ => 4,
        };
        let mut off = 0usize;
        for _ in 0..count {
            let Some(p) = rest.get(off..off + w) else {
                return Err("DNP3 object size prefix cut short");
            };
            off = off.saturating_add(w).saturating_add(le(p) as usize);
            if off > rest.len() {
                return Err("DNP3 objects cut short");
            }
        }
        return Ok(Some(off));
    }
    let index = match prefix_code {
        1 => 1,
        2 => 2,
        3 => 4,
        _ => 0,
    };
    Ok(match object_size(group, variation) {
        Some(Size::Octets(n)) => Some(count * (n + index)),
        Some(Size::Bits(bits)) if index == 0 => Some((count * bits).div_ceil(8)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_of_the_common_groups() {
        assert_eq!(object_size(1, 1), Some(Size::Bits(1)));
        assert_eq!(object_size(1, 2), Some(Size::Octets(1)));
        assert_eq!(object_size(2, 2), Some(Size::Octets(7)));
        assert_eq!(object_size(10, 2), Some(Size::Octets(1)));
        assert_eq!(object_size(12, 1), Some(Size::Octets(11)));
        assert_eq!(object_size(20, 1), Some(Size::Octets(5)));
        assert_eq!(object_size(22, 5), Some(Size::Octets(11)));
        assert_eq!(object_size(30, 5), Some(Size::Octets(5)));
        assert_eq!(object_size(32, 7), Some(Size::Octets(11)));
        assert_eq!(object_size(40, 2), Some(Size::Octets(3)));
        assert_eq!(object_size(41, 1), Some(Size::Octets(5)));
        assert_eq!(object_size(41, 2), Some(Size::Octets(3)));
        assert_eq!(object_size(41, 3), Some(Size::Octets(5)));
        assert_eq!(object_size(50, 1), Some(Size::Octets(6)));
        assert_eq!(object_size(52, 2), Some(Size::Octets(2)));
        assert_eq!(object_size(60, 2), Some(Size::Octets(0)));
        assert_eq!(object_size(80, 1), Some(Size::Bits(1)));
        assert_eq!(object_size(110, 7), Some(Size::Octets(7)));
        assert_eq!(object_size(20, 9), None);
        assert_eq!(object_size(70, 1), None);
        assert_eq!(object_size(0, 240), None);
    }

    #[test]
    fn walks_headers_after_their_data() {
        // g1v2 q00 0-1 (2 octets), g12v1 q28 n1 index 5 (2+11), g30v2 q01 0-0 (3).
        let mut b = vec![1, 2, 0x00, 0, 1, 0x01, 0x81];
        b.extend_from_slice(&[12, 1, 0x28, 1, 0, 5, 0, 3, 1, 100, 0, 0, 0, 100, 0, 0, 0, 0]);
        b.extend_from_slice(&[30, 2, 0x01, 0, 0, 0, 0, 1, 0x21, 0x43]);
        let w = walk(&b, true);
        assert_eq!(w.malformed, None);
        assert_eq!(w.stopped, None);
        assert_eq!(w.headers.len(), 3);
        assert_eq!(w.headers[0].range, Range::StartStop(0, 1));
        assert_eq!(w.headers[1].range, Range::Count(1));
        assert_eq!(
            (w.headers[1].prefix_code(), w.headers[1].range_code()),
            (2, 8)
        );
        let pts: Vec<_> = w.headers[1].points().collect();
        assert_eq!(pts.len(), 1);
        assert_eq!(pts[0].0, 5);
        assert_eq!(pts[0].1[0], 3);
        assert_eq!(w.headers[2].data, &[1, 0x21, 0x43]);
    }

    #[test]
    fn packed_bits_round_up() {
        // g1v1 q00 0-9: 10 bits → 2 octets; then g80v1 q00 7-7: 1 octet.
        let b = [1, 1, 0, 0, 9, 0xff, 0x03, 80, 1, 0, 7, 7, 0];
        let w = walk(&b, true);
        assert_eq!(w.malformed, None);
        assert_eq!(w.headers.len(), 2);
    }

    #[test]
    fn reads_carry_no_data_and_unknown_sizes_stop_the_walk() {
        let b = [60, 2, 6, 60, 3, 6, 60, 4, 6, 60, 1, 6];
        let w = walk(&b, false);
        assert_eq!(w.headers.len(), 4);
        assert_eq!(w.headers[0].range, Range::All);
        let b = [70, 3, 0x5b, 1, 2, 0, 0xaa, 0xbb, 1, 2, 0x06];
        let w = walk(&b, true);
        assert_eq!(w.malformed, None, "size-prefixed objects are walkable");
        assert_eq!(w.headers.len(), 2);
        let b = [0, 240, 0x00, 0, 0, 1, 2, 3];
        let w = walk(&b, true);
        assert_eq!(w.stopped, Some((0, 240)));
        assert_eq!(w.malformed, None);
    }

    #[test]
    fn damage_is_named() {
        assert!(walk(&[1, 2], true).malformed.is_some());
        assert!(walk(&[1, 2, 0x0c, 0], true).malformed.is_some());
        assert!(walk(&[1, 2, 0x00, 5, 1], true).malformed.is_some());
        assert!(walk(&[1, 2, 0x00, 0, 9, 1], true).malformed.is_some());
        assert!(walk(&[1, 2, 0x70, 0, 0], true).malformed.is_some());
    }
}
