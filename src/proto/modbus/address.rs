//! Modbus data addresses (Modbus Application Protocol V1.1b3 §4.3, "MODBUS Data model").
//!
//! Grammar (docs/DESIGN.md §3):
//! - explicit table prefix and 0-based PDU address: `hr:100`, `ir:0`, `co:7`, `di:12`;
//! - ranges: `hr:100..110` (end exclusive) or `hr:100+10` (start and count);
//! - Modicon references, 1-based: five digits `40101` (= `hr:100`) for offsets up to 9999,
//!   six digits `400101` for the full 65536; the first digit picks the table
//!   (0 coil, 1 discrete input, 3 input register, 4 holding register). Ranges work the same:
//!   `40101..40111`, `40101+10`.
//!
//! Output always shows both forms: `hr:100 (40101)`.

use std::fmt;

use serde::Serialize;
use thiserror::Error;

/// One of the four primary tables of the Modbus data model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Table {
    /// Coils: single bits, read-write (FC01, FC05, FC15).
    Coil,
    /// Discrete inputs: single bits, read-only (FC02).
    DiscreteInput,
    /// Input registers: 16-bit words, read-only (FC04).
    InputRegister,
    /// Holding registers: 16-bit words, read-write (FC03, FC06, FC16).
    HoldingRegister,
}

impl Table {
    /// The short prefix used in the address grammar.
    pub fn prefix(self) -> &'static str {
        match self {
            Table::Coil => "co",
            Table::DiscreteInput => "di",
            Table::InputRegister => "ir",
            Table::HoldingRegister => "hr",
        }
    }

    /// Leading digit of the Modicon reference.
    pub fn modicon_digit(self) -> u8 {
        match self {
            Table::Coil => 0,
            Table::DiscreteInput => 1,
            Table::InputRegister => 3,
            Table::HoldingRegister => 4,
        }
    }

    /// True for the two bit tables (coils, discrete inputs).
    pub fn is_bits(self) -> bool {
        matches!(self, Table::Coil | Table::DiscreteInput)
    }

    /// True for the tables a master may write (coils, holding registers).
    pub fn is_writable(self) -> bool {
        matches!(self, Table::Coil | Table::HoldingRegister)
    }

    /// Human name, e.g. "holding register".
    pub fn name(self) -> &'static str {
        match self {
            Table::Coil => "coil",
            Table::DiscreteInput => "discrete input",
            Table::InputRegister => "input register",
            Table::HoldingRegister => "holding register",
        }
    }

    fn from_prefix(p: &str) -> Option<Self> {
        match p.to_ascii_lowercase().as_str() {
            "hr" | "holding" => Some(Table::HoldingRegister),
            "ir" | "input" => Some(Table::InputRegister),
            "co" | "coil" => Some(Table::Coil),
            "di" | "discrete" => Some(Table::DiscreteInput),
            _ => None,
        }
    }

    fn from_modicon_digit(d: u8) -> Option<Self> {
        match d {
            0 => Some(Table::Coil),
            1 => Some(Table::DiscreteInput),
            3 => Some(Table::InputRegister),
            4 => Some(Table::HoldingRegister),
            _ => None,
        }
    }
}

/// A run of `count` consecutive items of one table starting at the 0-based PDU address `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct AddressRange {
    /// Table the range lives in.
    pub table: Table,
    /// 0-based PDU address of the first item.
    pub start: u16,
    /// Number of items (registers or bits), at least 1.
    pub count: u16,
    /// True when the text gave a length (`..`, `+`); false for a single address, whose length the
    /// data type then decides (an `f32` at `hr:100` covers two registers).
    #[serde(skip)]
    pub explicit_count: bool,
}

/// Why an address text was refused. Every message says what the grammar expects.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AddressError {
    /// Empty text.
    #[error("empty address; expected e.g. hr:100, ir:0..10, co:7+8 or 40101")]
    Empty,
    /// Unknown table prefix.
    #[error("unknown table `{0}` in address; use hr (holding register), ir (input register), co (coil) or di (discrete input), e.g. hr:100")]
    UnknownTable(String),
    /// A number that does not parse or does not fit.
    #[error("`{0}` is not an address number from 0 to 65535")]
    BadNumber(String),
    /// A Modicon reference of the wrong shape.
    #[error("`{0}` is not a Modicon reference; use 5 digits (40001..49999) or 6 digits (400001..465536) starting with 0, 1, 3 or 4, or a prefixed PDU address like hr:100")]
    BadModicon(String),
    /// Modicon references are 1-based; offset 0 does not exist.
    #[error("`{0}`: Modicon references are 1-based, so offset 0 does not exist; the first one is {1} (= PDU address 0)")]
    ModiconZero(String, String),
    /// Empty or backwards range.
    #[error("range `{0}` is empty; the end is exclusive, so hr:100..110 reads 10 registers")]
    EmptyRange(String),
    /// Range past 65535.
    #[error("range `{0}` runs past the last address 65535")]
    PastEnd(String),
}

impl AddressRange {
    /// Single item, count 1, count not explicit.
    #[must_use]
    pub fn single(table: Table, start: u16) -> Self {
        Self {
            table,
            start,
            count: 1,
            explicit_count: false,
        }
    }

    /// Explicit range.
    #[must_use]
    pub fn new(table: Table, start: u16, count: u16) -> Self {
        Self {
            table,
            start,
            count,
            explicit_count: true,
        }
    }

    /// One past the last address, as u32 (may be 65536).
    pub fn end(&self) -> u32 {
        u32::from(self.start) + u32::from(self.count)
    }

    /// The item `offset` places after the start, as its own single-item range.
    #[must_use]
    pub fn at(&self, offset: u16) -> AddressRange {
        AddressRange::single(self.table, self.start + offset)
    }

    /// Modicon reference of the first item, e.g. `40101`; six digits when needed.
    pub fn modicon(&self) -> String {
        modicon_of(self.table, self.start)
    }

    /// Split into consecutive chunks of at most `max` items (spec request limits).
    pub fn chunks(&self, max: u16) -> impl Iterator<Item = AddressRange> + '_ {
        let max = max.max(1);
        let mut next = u32::from(self.start);
        let end = self.end();
        std::iter::from_fn(move || {
            if next >= end {
                return None;
            }
            let count = (end - next).min(u32::from(max)) as u16;
            let r = AddressRange::new(self.table, next as u16, count);
            next += u32::from(count);
            Some(r)
        })
    }

    /// True when the two ranges share a table and at least one address.
    pub fn overlaps(&self, other: &AddressRange) -> bool {
        self.table == other.table
            && u32::from(self.start) < other.end()
            && u32::from(other.start) < self.end()
    }
}

/// The Modicon reference of one PDU address: five digits when the 1-based offset fits in four.
pub fn modicon_of(table: Table, pdu: u16) -> String {
    let one_based = u32::from(pdu) + 1;
    let d = table.modicon_digit();
    if one_based <= 9999 {
        format!("{d}{one_based:04}")
    } else {
        format!("{d}{one_based:05}")
    }
}

impl fmt::Display for AddressRange {
    /// `hr:100` for one item, `hr:100..110` for a range.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.count == 1 {
            write!(f, "{}:{}", self.table.prefix(), self.start)
        } else {
            write!(f, "{}:{}..{}", self.table.prefix(), self.start, self.end())
        }
    }
}

fn parse_u16(s: &str) -> Result<u16, AddressError> {
    let t = s.trim();
    let v = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u32::from_str_radix(h, 16)
    } else {
        t.parse::<u32>()
    };
    match v {
        Ok(v) if v <= 65535 => Ok(v as u16),
        _ => Err(AddressError::BadNumber(s.to_string())),
    }
}

/// Parse a Modicon reference to (table, 0-based PDU address).
fn parse_modicon(s: &str) -> Result<(Table, u16), AddressError> {
    let t = s.trim();
    if !(t.len() == 5 || t.len() == 6) || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AddressError::BadModicon(s.to_string()));
    }
    let table = Table::from_modicon_digit(t.as_bytes()[0] - b'0')
        .ok_or_else(|| AddressError::BadModicon(s.to_string()))?;
    let offset: u32 = t[1..]
        .parse()
        .map_err(|_| AddressError::BadModicon(s.to_string()))?;
    if offset == 0 {
        return Err(AddressError::ModiconZero(
            s.to_string(),
            modicon_of(table, 0),
        ));
    }
    if offset > 65536 {
        return Err(AddressError::BadModicon(s.to_string()));
    }
    Ok((table, (offset - 1) as u16))
}

/// Parse one address or range (see the module documentation for the grammar).
pub fn parse_address(text: &str) -> Result<AddressRange, AddressError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(AddressError::Empty);
    }
    // Split off a range suffix first: `..end` or `+count`.
    let (head, range) = if let Some((h, e)) = s.split_once("..") {
        (h, Some((false, e)))
    } else if let Some((h, c)) = s.split_once('+') {
        (h, Some((true, c)))
    } else {
        (s, None)
    };
    let modicon = !head.contains(':');
    let (table, start) = if let Some((prefix, num)) = head.split_once(':') {
        let table = Table::from_prefix(prefix.trim())
            .ok_or_else(|| AddressError::UnknownTable(prefix.trim().to_string()))?;
        (table, parse_u16(num)?)
    } else {
        parse_modicon(head)?
    };
    let Some((is_count, tail)) = range else {
        return Ok(AddressRange::single(table, start));
    };
    let count: u32 = if is_count {
        u32::from(parse_u16(tail)?)
    } else {
        // The end of a Modicon range is a Modicon reference of the same table.
        let end = if modicon {
            let (t2, e) = parse_modicon(tail)?;
            if t2 != table {
                return Err(AddressError::BadModicon(tail.to_string()));
            }
            u32::from(e)
        } else {
            let t = tail.trim();
            if t == "65536" {
                65536
            } else {
                u32::from(parse_u16(tail)?)
            }
        };
        end.saturating_sub(u32::from(start))
    };
    if count == 0 {
        return Err(AddressError::EmptyRange(text.to_string()));
    }
    if u32::from(start) + count > 65536 {
        return Err(AddressError::PastEnd(text.to_string()));
    }
    Ok(AddressRange::new(table, start, count as u16))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn prefixed_forms() {
        use Table::{Coil, DiscreteInput, HoldingRegister, InputRegister};
        for (text, want) in [
            ("hr:100", AddressRange::single(HoldingRegister, 100)),
            ("ir:0..10", AddressRange::new(InputRegister, 0, 10)),
            ("co:7+8", AddressRange::new(Coil, 7, 8)),
            ("DI:0x10", AddressRange::single(DiscreteInput, 16)),
        ] {
            assert_eq!(parse_address(text).unwrap(), want, "{text}");
        }
        assert_eq!(
            parse_address("hr:65535").unwrap().start,
            65535,
            "last address"
        );
        assert_eq!(parse_address("hr:65000..65536").unwrap().count, 536);
    }

    #[test]
    fn modicon_forms() {
        use Table::{Coil, DiscreteInput, HoldingRegister, InputRegister};
        for (text, want) in [
            ("40101", AddressRange::single(HoldingRegister, 100)),
            ("400101", AddressRange::single(HoldingRegister, 100)),
            ("30001", AddressRange::single(InputRegister, 0)),
            ("10001", AddressRange::single(DiscreteInput, 0)),
            ("00001", AddressRange::single(Coil, 0)),
            ("465536", AddressRange::single(HoldingRegister, 65535)),
            ("40101..40111", AddressRange::new(HoldingRegister, 100, 10)),
            ("40101+10", AddressRange::new(HoldingRegister, 100, 10)),
        ] {
            assert_eq!(parse_address(text).unwrap(), want, "{text}");
        }
    }

    #[test]
    fn errors_say_what_is_expected() {
        use AddressError::{
            BadModicon, BadNumber, Empty, EmptyRange, ModiconZero, PastEnd, UnknownTable,
        };
        let kind = std::mem::discriminant::<AddressError>;
        let s = String::new;
        for (text, want) in [
            ("", Empty),
            ("xx:1", UnknownTable(s())),
            ("hr:70000", BadNumber(s())),
            ("hr:-1", BadNumber(s())),
            ("50001", BadModicon(s())),
            ("4001", BadModicon(s())),
            ("40000", ModiconZero(s(), s())),
            ("465537", BadModicon(s())),
            ("hr:10..10", EmptyRange(s())),
            ("hr:10..5", EmptyRange(s())),
            ("hr:65530+10", PastEnd(s())),
            ("40101..30111", BadModicon(s())),
        ] {
            let got = parse_address(text).unwrap_err();
            assert_eq!(kind(&got), kind(&want), "{text}: {got:?}");
        }
        let msg = parse_address("40000").unwrap_err().to_string();
        assert!(msg.contains("40001"), "{msg}");
    }

    #[test]
    fn display_and_modicon() {
        let r = parse_address("hr:100..110").unwrap();
        assert_eq!(r.to_string(), "hr:100..110");
        assert_eq!(r.modicon(), "40101");
        assert_eq!(modicon_of(Table::HoldingRegister, 9998), "49999");
        assert_eq!(modicon_of(Table::HoldingRegister, 9999), "410000");
        assert_eq!(modicon_of(Table::Coil, 0), "00001");
    }

    #[test]
    fn chunks_respect_limits() {
        let r = AddressRange::new(Table::HoldingRegister, 0, 300);
        let c: Vec<_> = r.chunks(125).collect();
        assert_eq!(
            c.iter().map(|c| (c.start, c.count)).collect::<Vec<_>>(),
            vec![(0, 125), (125, 125), (250, 50)]
        );
        let r = AddressRange::new(Table::Coil, 65000, 536);
        let total: u32 = r.chunks(2000).map(|c| u32::from(c.count)).sum();
        assert_eq!(total, 536);
    }

    proptest! {
        #[test]
        fn modicon_round_trip(pdu in 0u16..=65535, t in 0usize..4) {
            let table = [Table::Coil, Table::DiscreteInput, Table::InputRegister, Table::HoldingRegister][t];
            let m = modicon_of(table, pdu);
            prop_assert_eq!(parse_address(&m).unwrap(), AddressRange::single(table, pdu));
        }

        #[test]
        fn display_round_trip(start in 0u16..65000, count in 1u16..500) {
            let r = AddressRange::new(Table::HoldingRegister, start, count);
            let back = parse_address(&r.to_string()).unwrap();
            prop_assert_eq!((back.table, back.start, back.count), (r.table, r.start, r.count));
        }

        #[test]
        fn chunks_cover_exactly(start in 0u16..60000, count in 1u16..5000, max in 1u16..2001) {
            let r = AddressRange::new(Table::Coil, start, count);
            let mut next = u32::from(start);
            for c in r.chunks(max) {
                prop_assert_eq!(u32::from(c.start), next);
                prop_assert!(c.count <= max && c.count > 0);
                next += u32::from(c.count);
            }
            prop_assert_eq!(next, r.end());
        }

        #[test]
        fn never_panics(s in "\\PC{0,20}") {
            let _ = parse_address(&s);
        }
    }
}
