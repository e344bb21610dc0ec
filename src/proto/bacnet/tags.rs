//! BACnet tags (ASHRAE 135 §20.2.1): a tag octet holds the tag number (bits 4–7; 15 means an
//! extended number in the next octet), the class (bit 3: context-specific) and the
//! length/value/type field (bits 0–2: a length up to 4; 5 means an extended length in 1, 3 or
//! 5 octets; on context tags 6 and 7 open and close a constructed value). Application tags are
//! typed (0 null … 12 object identifier); [`value_into`] renders them.

use crate::proto::sanitize;
use std::fmt::Write as _;

/// One tag and its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag<'a> {
    /// Tag number (application type, or context number).
    pub number: u8,
    /// Context-specific.
    pub context: bool,
    /// An opening tag (context 6).
    pub opening: bool,
    /// A closing tag (context 7).
    pub closing: bool,
    /// The length/value/type field (an application boolean's value).
    pub lvt: u32,
    /// The content (empty on opening, closing and application boolean tags).
    pub content: &'a [u8],
}

/// Reads the tag at the start of `b`: the tag and what follows it; `None` when cut short.
#[must_use]
pub fn read_tag(b: &[u8]) -> Option<(Tag<'_>, &[u8])> {
    let (&t, mut rest) = b.split_first()?;
    let mut number = t >> 4;
    if number == 15 {
        let (&n, r) = rest.split_first()?;
        number = n;
        rest = r;
    }
    let context = t & 0x08 != 0;
    let mut lvt = u32::from(t & 0x07);
    let (opening, closing) = (context && lvt == 6, context && lvt == 7);
    // An opening or closing tag, or an application boolean (its value is the LVT): no content.
    if opening || closing || (!context && number == 1) {
        let tag = Tag {
            number,
            context,
            opening,
            closing,
            lvt,
            content: &[],
        };
        return Some((tag, rest));
    }
    if lvt == 5 {
        let (&l, r) = rest.split_first()?;
        rest = r;
        lvt = match l {
            254 => {
                let x = rest.get(..2)?;
                rest = &rest[2..];
                u32::from(u16::from_be_bytes([x[0], x[1]]))
            }
            255 => {
                let x = rest.get(..4)?;
                rest = &rest[4..];
                u32::from_be_bytes([x[0], x[1], x[2], x[3]])
            }
            l => u32::from(l),
        };
    }
    let n = usize::try_from(lvt).ok()?;
    let content = rest.get(..n)?;
    let tag = Tag {
        number,
        context,
        opening,
        closing,
        lvt,
        content,
    };
    Some((tag, &rest[n..]))
}

/// An unsigned of up to 4 octets, big-endian (longer contents: `None`).
#[must_use]
pub fn unsigned(c: &[u8]) -> Option<u32> {
    if c.is_empty() || c.len() > 4 {
        return None;
    }
    Some(c.iter().fold(0u32, |a, &x| (a << 8) | u32::from(x)))
}

/// An object identifier: (object type, instance).
#[must_use]
pub fn object_id(c: &[u8]) -> Option<(u16, u32)> {
    if c.len() != 4 {
        return None;
    }
    let v = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
    Some(((v >> 22) as u16, v & 0x3F_FFFF))
}

/// Appends `type-name,instance` for an object identifier.
pub fn object_into(t: u16, instance: u32, out: &mut String) {
    if let Some(n) = super::names::lookup(super::names::OBJECT_TYPES, u32::from(t)) {
        out.push_str(n);
    } else {
        out.push_str("object-type-");
        crate::proto::exchange::push_dec(out, u64::from(t));
    }
    out.push(',');
    crate::proto::exchange::push_dec(out, u64::from(instance));
}

/// A signed integer of 1–4 octets (two's complement, big-endian).
#[must_use]
pub fn signed(c: &[u8]) -> Option<i32> {
    if c.is_empty() || c.len() > 4 {
        return None;
    }
    let v = c.iter().fold(0i64, |a, &x| (a << 8) | i64::from(x));
    let shift = 64 - 8 * c.len() as u32;
    i32::try_from((v << shift) >> shift).ok()
}

/// Appends the value of an application tag (context tags: their content in hex).
pub fn value_into(tag: &Tag<'_>, out: &mut String) {
    let c = tag.content;
    if tag.context {
        out.push('[');
        crate::proto::exchange::hex_into(out, c);
        out.push(']');
        return;
    }
    let _ = match tag.number {
        0 => write!(out, "null"),
        1 => write!(out, "{}", tag.lvt != 0),
        2 => match c.len() {
            1..=8 => write!(
                out,
                "{}",
                c.iter().fold(0u64, |a, &x| (a << 8) | u64::from(x))
            ),
            _ => write!(out, "?"),
        },
        3 => match c.len() {
            1..=8 => {
                let v = c.iter().fold(0i64, |a, &x| (a << 8) | i64::from(x));
                let shift = 64 - 8 * c.len() as u32;
                write!(out, "{}", (v << shift) >> shift)
            }
            _ => write!(out, "?"),
        },
        4 if c.len() == 4 => write!(out, "{}", f32::from_be_bytes([c[0], c[1], c[2], c[3]])),
        5 if c.len() == 8 => write!(
            out,
            "{}",
            f64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])
        ),
        7 => match c.split_first() {
            Some((0, s)) => write!(out, "\"{}\"", sanitize(&String::from_utf8_lossy(s))),
            Some((cs, s)) => {
                let _ = write!(out, "charset {cs} ");
                crate::proto::exchange::hex_into(out, s);
                Ok(())
            }
            None => write!(out, "\"\""),
        },
        8 => match c.split_first() {
            Some((&unused, bits)) => {
                let total = (bits.len() * 8).saturating_sub(usize::from(unused));
                for i in 0..total {
                    out.push(if bits[i / 8] & (0x80 >> (i % 8)) != 0 {
                        '1'
                    } else {
                        '0'
                    });
                }
                Ok(())
            }
            None => Ok(()),
        },
        9 => match unsigned(c) {
            Some(v) => write!(out, "enumerated {v}"),
            None => write!(out, "?"),
        },
        10 if c.len() == 4 => {
            let f = |v: u8, w: usize| {
                if v == 255 {
                    "*".to_string()
                } else {
                    format!("{v:0w$}")
                }
            };
            let year = if c[0] == 255 {
                "*".to_string()
            } else {
                (1900 + u32::from(c[0])).to_string()
            };
            write!(out, "{year}-{}-{}", f(c[1], 2), f(c[2], 2))
        }
        11 if c.len() == 4 => {
            let f = |v: u8| {
                if v == 255 {
                    "*".to_string()
                } else {
                    format!("{v:02}")
                }
            };
            write!(out, "{}:{}:{}.{}", f(c[0]), f(c[1]), f(c[2]), f(c[3]))
        }
        12 => match object_id(c) {
            Some((t, i)) => {
                object_into(t, i, out);
                Ok(())
            }
            None => write!(out, "?"),
        },
        _ => {
            crate::proto::exchange::hex_into(out, c);
            Ok(())
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(b: &[u8]) -> String {
        let (t, rest) = read_tag(b).unwrap();
        assert!(rest.is_empty());
        let mut s = String::new();
        value_into(&t, &mut s);
        s
    }

    #[test]
    fn application_values() {
        assert_eq!(render(&[0x00]), "null");
        assert_eq!(render(&[0x11]), "true");
        assert_eq!(render(&[0x10]), "false");
        assert_eq!(render(&[0x21, 0x48]), "72");
        assert_eq!(render(&[0x31, 0xff]), "-1");
        assert_eq!(render(&[0x44, 0x42, 0x90, 0x00, 0x00]), "72");
        assert_eq!(
            render(&[0x55, 0x08, 0x40, 0x52, 0x20, 0, 0, 0, 0, 0]),
            "72.5"
        );
        assert_eq!(render(&[0x62, 0xab, 0x01]), "ab:01");
        assert_eq!(
            render(&[0x75, 0x04, 0x00, b'a', b'\x07', b'c']),
            "\"a\u{fffd}c\""
        );
        assert_eq!(render(&[0x82, 0x04, 0xa0]), "1010");
        assert_eq!(render(&[0x91, 0x03]), "enumerated 3");
        assert_eq!(render(&[0xa4, 0x6a, 0x0b, 0x1c, 0xff]), "2006-11-28");
        assert_eq!(render(&[0xb4, 0x0d, 0x05, 0x00, 0xff]), "13:05:00.*");
        assert_eq!(render(&[0xc4, 0x00, 0x80, 0x00, 0x03]), "analog-value,3");
    }

    #[test]
    fn context_and_extended_tags() {
        let (t, _) = read_tag(&[0x3e]).unwrap();
        assert!(t.opening && t.context && t.number == 3);
        let (t, _) = read_tag(&[0x3f]).unwrap();
        assert!(t.closing);
        let (t, r) = read_tag(&[0xf9, 20, 0x07]).unwrap();
        assert_eq!((t.number, t.content, r.len()), (20, &[7u8][..], 0));
        let mut long = vec![0x65, 254, 0x01, 0x00];
        long.extend_from_slice(&[0u8; 256]);
        let (t, _) = read_tag(&long).unwrap();
        assert_eq!(t.content.len(), 256);
        assert!(read_tag(&[0x65, 254, 0x01]).is_none());
        assert!(read_tag(&[0x24, 1]).is_none());
        assert_eq!(object_id(&[0x02, 0x00, 0x00, 0x05]), Some((8, 5)));
    }
}
