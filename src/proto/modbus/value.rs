//! Typed values over 16-bit Modbus registers.
//!
//! Modbus transmits each register big-endian (Modbus Application Protocol V1.1b3 §4.2,
//! "MODBUS uses a 'big-Endian' representation"), but says nothing about values that span several
//! registers, so devices use all four arrangements. With the bytes of a 32-bit value named A B C D
//! from most to least significant:
//! - `abcd`: registers `AB CD` (big-endian, the default),
//! - `badc`: registers `BA DC` (bytes swapped in each register),
//! - `cdab`: registers `CD AB` (word swap, "little-endian word order"),
//! - `dcba`: registers `DC BA` (fully little-endian).
//!
//! 64-bit values generalise the same way (word order reversed for cdab/dcba; bytes swapped in each
//! word for badc/dcba). `ascii:N` holds N characters, two per register, first character in the high
//! byte (`badc`/`dcba` swap the two).

use std::{fmt, str::FromStr};

use serde::{Serialize, Serializer};
use thiserror::Error;

/// How a value is laid out over registers (or bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    /// Unsigned 16-bit, one register.
    U16,
    /// Signed 16-bit, one register.
    I16,
    /// Unsigned 32-bit, two registers.
    U32,
    /// Signed 32-bit, two registers.
    I32,
    /// Unsigned 64-bit, four registers.
    U64,
    /// Signed 64-bit, four registers.
    I64,
    /// IEEE 754 single, two registers.
    F32,
    /// IEEE 754 double, four registers.
    F64,
    /// One bit: a coil / discrete input, or a register that is non-zero.
    Bool,
    /// The 16 bits of one register, bit 15 first.
    Bits,
    /// N ASCII characters, two per register.
    Ascii(u16),
    /// One register shown in hexadecimal.
    Hex,
    /// One register as four binary-coded decimal digits.
    Bcd,
}

/// Byte/word order of multi-register values; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum WordOrder {
    /// Big-endian words, big-endian bytes (Modbus default).
    #[default]
    Abcd,
    /// Big-endian words, bytes swapped in each register.
    Badc,
    /// Words reversed, big-endian bytes.
    Cdab,
    /// Fully little-endian.
    Dcba,
}

/// A decoded value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Unsigned integer.
    U(u64),
    /// Signed integer.
    I(i64),
    /// Floating point (also every scaled value).
    F(f64),
    /// A bit.
    Bool(bool),
    /// Text: ascii, hex, bits.
    Text(String),
}

/// Why a type or order name, or a value to write, was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ValueError {
    /// Unknown type name.
    #[error(
        "unknown type `{0}`; use one of u16 i16 u32 i32 u64 i64 f32 f64 bool bits ascii:N hex bcd"
    )]
    UnknownType(String),
    /// Unknown order name.
    #[error("unknown word/byte order `{0}`; use abcd (Modbus big-endian, the default), badc, cdab or dcba")]
    UnknownOrder(String),
    /// Value text that does not parse or fit.
    #[error("`{text}` does not fit type {ty}: {why}")]
    DoesNotFit {
        /// What the user gave.
        text: String,
        /// The type.
        ty: String,
        /// Why, with the allowed range.
        why: String,
    },
    /// Wrong number of registers for the type.
    #[error("{ty} needs {need} register(s), got {got}")]
    WrongLength {
        /// The type.
        ty: String,
        /// Registers needed.
        need: usize,
        /// Registers given.
        got: usize,
    },
    /// BCD nibble above 9.
    #[error("0x{0:04X} is not valid BCD (a digit above 9)")]
    BadBcd(u16),
}

impl DataType {
    /// Every type `--guess` tries on the registers it has (at most four).
    pub fn guess_types(registers: usize) -> Vec<DataType> {
        let mut v = vec![DataType::U16, DataType::I16, DataType::Hex, DataType::Bcd];
        if registers >= 2 {
            v.extend([DataType::U32, DataType::I32, DataType::F32]);
        }
        if registers >= 4 {
            v.extend([DataType::U64, DataType::I64, DataType::F64]);
        }
        v.push(DataType::Ascii((registers.min(4) * 2) as u16));
        v
    }

    /// Registers one value of this type occupies (bits: 1 item).
    pub fn registers(self) -> u16 {
        match self {
            DataType::U16
            | DataType::I16
            | DataType::Bool
            | DataType::Bits
            | DataType::Hex
            | DataType::Bcd => 1,
            DataType::U32 | DataType::I32 | DataType::F32 => 2,
            DataType::U64 | DataType::I64 | DataType::F64 => 4,
            DataType::Ascii(n) => n.div_ceil(2).max(1),
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataType::U16 => f.write_str("u16"),
            DataType::I16 => f.write_str("i16"),
            DataType::U32 => f.write_str("u32"),
            DataType::I32 => f.write_str("i32"),
            DataType::U64 => f.write_str("u64"),
            DataType::I64 => f.write_str("i64"),
            DataType::F32 => f.write_str("f32"),
            DataType::F64 => f.write_str("f64"),
            DataType::Bool => f.write_str("bool"),
            DataType::Bits => f.write_str("bits"),
            DataType::Ascii(n) => write!(f, "ascii:{n}"),
            DataType::Hex => f.write_str("hex"),
            DataType::Bcd => f.write_str("bcd"),
        }
    }
}

impl FromStr for DataType {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let l = s.trim().to_ascii_lowercase();
        Ok(match l.as_str() {
            "u16" | "uint16" => DataType::U16,
            "i16" | "int16" => DataType::I16,
            "u32" | "uint32" => DataType::U32,
            "i32" | "int32" => DataType::I32,
            "u64" | "uint64" => DataType::U64,
            "i64" | "int64" => DataType::I64,
            "f32" | "float" | "float32" => DataType::F32,
            "f64" | "double" | "float64" => DataType::F64,
            "bool" => DataType::Bool,
            "bits" => DataType::Bits,
            "hex" => DataType::Hex,
            "bcd" => DataType::Bcd,
            other => {
                let n = other
                    .strip_prefix("ascii:")
                    .and_then(|n| n.parse::<u16>().ok())
                    .filter(|n| (1..=250).contains(n))
                    .ok_or_else(|| ValueError::UnknownType(s.to_string()))?;
                DataType::Ascii(n)
            }
        })
    }
}

impl Serialize for DataType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl WordOrder {
    /// All four orders, for `--guess`.
    pub const ALL: [WordOrder; 4] = [
        WordOrder::Abcd,
        WordOrder::Badc,
        WordOrder::Cdab,
        WordOrder::Dcba,
    ];

    fn swaps_bytes(self) -> bool {
        matches!(self, WordOrder::Badc | WordOrder::Dcba)
    }

    fn swaps_words(self) -> bool {
        matches!(self, WordOrder::Cdab | WordOrder::Dcba)
    }
}

impl fmt::Display for WordOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WordOrder::Abcd => "abcd",
            WordOrder::Badc => "badc",
            WordOrder::Cdab => "cdab",
            WordOrder::Dcba => "dcba",
        })
    }
}

impl FromStr for WordOrder {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "abcd" | "big" => Ok(WordOrder::Abcd),
            "badc" => Ok(WordOrder::Badc),
            "cdab" | "wordswap" => Ok(WordOrder::Cdab),
            "dcba" | "little" => Ok(WordOrder::Dcba),
            _ => Err(ValueError::UnknownOrder(s.to_string())),
        }
    }
}

impl Serialize for WordOrder {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::U(v) => write!(f, "{v}"),
            Value::I(v) => write!(f, "{v}"),
            Value::F(v) => {
                if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
                    write!(f, "{v:.1}")
                } else {
                    write!(f, "{v}")
                }
            }
            Value::Bool(b) => write!(f, "{b}"),
            Value::Text(t) => f.write_str(t),
        }
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::U(v) => s.serialize_u64(*v),
            Value::I(v) => s.serialize_i64(*v),
            // JSON has no NaN/inf: those become strings so nothing is silently lost.
            Value::F(v) if v.is_finite() => s.serialize_f64(*v),
            Value::F(v) => s.collect_str(v),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Text(t) => s.serialize_str(t),
        }
    }
}

impl Value {
    /// Numeric view (for scaling, limits, statistics).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::U(v) => Some(*v as f64),
            Value::I(v) => Some(*v as f64),
            Value::F(v) => Some(*v),
            Value::Bool(b) => Some(f64::from(u8::from(*b))),
            Value::Text(_) => None,
        }
    }
}

/// Registers → bytes in A B C D … order (most significant first) for the given order.
fn to_bytes(regs: &[u16], order: WordOrder) -> Vec<u8> {
    let mut out = Vec::with_capacity(regs.len() * 2);
    let mut push = |w: u16| {
        let [hi, lo] = w.to_be_bytes();
        if order.swaps_bytes() {
            out.extend([lo, hi]);
        } else {
            out.extend([hi, lo]);
        }
    };
    if order.swaps_words() {
        regs.iter().rev().copied().for_each(&mut push);
    } else {
        regs.iter().copied().for_each(&mut push);
    }
    out
}

/// Bytes in A B C D … order → registers for the given order (inverse of `to_bytes`).
fn from_bytes(bytes: &[u8], order: WordOrder) -> Vec<u16> {
    let mut regs: Vec<u16> = bytes
        .chunks(2)
        .map(|c| {
            let (hi, lo) = (c[0], *c.get(1).unwrap_or(&0));
            if order.swaps_bytes() {
                u16::from_be_bytes([lo, hi])
            } else {
                u16::from_be_bytes([hi, lo])
            }
        })
        .collect();
    if order.swaps_words() {
        regs.reverse();
    }
    regs
}

fn escape_ascii(bytes: &[u8]) -> String {
    // Trailing NULs and spaces are padding; everything else that is not printable is escaped so
    // a device cannot put terminal control sequences on the technician's screen.
    let end = bytes
        .iter()
        .rposition(|&b| b != 0 && b != b' ')
        .map_or(0, |p| p + 1);
    bytes[..end]
        .iter()
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect()
}

/// Decode registers as one value of `ty` in `order`. `regs.len()` must equal `ty.registers()`.
pub fn decode(regs: &[u16], ty: DataType, order: WordOrder) -> Result<Value, ValueError> {
    let need = ty.registers() as usize;
    if regs.len() != need {
        return Err(ValueError::WrongLength {
            ty: ty.to_string(),
            need,
            got: regs.len(),
        });
    }
    if let DataType::Ascii(n) = ty {
        // Strings keep register order; only the byte swap inside a register applies.
        let bytes: Vec<u8> = regs
            .iter()
            .flat_map(|w| {
                let [hi, lo] = w.to_be_bytes();
                if order.swaps_bytes() {
                    [lo, hi]
                } else {
                    [hi, lo]
                }
            })
            .take(n as usize)
            .collect();
        return Ok(Value::Text(escape_ascii(&bytes)));
    }
    let b = to_bytes(regs, order);
    Ok(match ty {
        DataType::U16 => Value::U(u64::from(u16::from_be_bytes([b[0], b[1]]))),
        DataType::I16 => Value::I(i64::from(i16::from_be_bytes([b[0], b[1]]))),
        DataType::U32 => Value::U(u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))),
        DataType::I32 => Value::I(i64::from(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))),
        DataType::F32 => Value::F(f32_to_f64_shortest(f32::from_be_bytes([
            b[0], b[1], b[2], b[3],
        ]))),
        DataType::U64 => Value::U(u64::from_be_bytes(b[..8].try_into().expect("8 bytes"))),
        DataType::I64 => Value::I(i64::from_be_bytes(b[..8].try_into().expect("8 bytes"))),
        DataType::F64 => Value::F(f64::from_be_bytes(b[..8].try_into().expect("8 bytes"))),
        DataType::Bool => Value::Bool(regs[0] != 0),
        DataType::Bits => {
            let w = u16::from_be_bytes([b[0], b[1]]);
            Value::Text(format!(
                "{:04b} {:04b} {:04b} {:04b}",
                w >> 12,
                (w >> 8) & 0xF,
                (w >> 4) & 0xF,
                w & 0xF
            ))
        }
        DataType::Hex => Value::Text(format!("0x{:04X}", u16::from_be_bytes([b[0], b[1]]))),
        DataType::Bcd => {
            let w = u16::from_be_bytes([b[0], b[1]]);
            let mut v = 0u64;
            for shift in [12, 8, 4, 0] {
                let d = (w >> shift) & 0xF;
                if d > 9 {
                    return Err(ValueError::BadBcd(w));
                }
                v = v * 10 + u64::from(d);
            }
            Value::U(v)
        }
        DataType::Ascii(_) => unreachable!("handled above"),
    })
}

/// An f32 widened to f64 through its shortest decimal form, so 179.94377f32 prints as 179.94377
/// and not 179.9437713623047 (digits the device never had).
fn f32_to_f64_shortest(x: f32) -> f64 {
    if x.is_finite() {
        x.to_string().parse().unwrap_or(f64::from(x))
    } else {
        f64::from(x)
    }
}

fn fit_err(text: &str, ty: DataType, why: impl Into<String>) -> ValueError {
    ValueError::DoesNotFit {
        text: text.to_string(),
        ty: ty.to_string(),
        why: why.into(),
    }
}

fn parse_int<T>(text: &str, ty: DataType) -> Result<T, ValueError>
where
    T: TryFrom<i128> + fmt::Display + Copy,
    T: num_bounds::Bounds,
{
    let t = text.trim();
    let parsed = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        i128::from_str_radix(h, 16)
    } else {
        t.parse::<i128>()
    };
    let v = parsed.map_err(|_| fit_err(text, ty, "not a whole number"))?;
    T::try_from(v).map_err(|_| {
        fit_err(
            text,
            ty,
            format!("allowed range is {} to {}", T::MIN_V, T::MAX_V),
        )
    })
}

mod num_bounds {
    pub trait Bounds {
        const MIN_V: Self;
        const MAX_V: Self;
    }
    macro_rules! b {
        ($($t:ty),*) => {$(impl Bounds for $t { const MIN_V: Self = <$t>::MIN; const MAX_V: Self = <$t>::MAX; })*};
    }
    b!(u16, i16, u32, i32, u64, i64);
}

/// Encode a value given as text into registers (for `write` and the simulator).
pub fn encode_text(text: &str, ty: DataType, order: WordOrder) -> Result<Vec<u16>, ValueError> {
    let bytes: Vec<u8> = match ty {
        DataType::U16 => parse_int::<u16>(text, ty)?.to_be_bytes().to_vec(),
        DataType::I16 => parse_int::<i16>(text, ty)?.to_be_bytes().to_vec(),
        DataType::U32 => parse_int::<u32>(text, ty)?.to_be_bytes().to_vec(),
        DataType::I32 => parse_int::<i32>(text, ty)?.to_be_bytes().to_vec(),
        DataType::U64 => parse_int::<u64>(text, ty)?.to_be_bytes().to_vec(),
        DataType::I64 => parse_int::<i64>(text, ty)?.to_be_bytes().to_vec(),
        DataType::Hex => parse_int::<u16>(
            &if text.trim().starts_with("0x") {
                text.trim().to_string()
            } else {
                format!("0x{}", text.trim())
            },
            ty,
        )?
        .to_be_bytes()
        .to_vec(),
        DataType::F32 => {
            let v: f64 = text
                .trim()
                .parse()
                .map_err(|_| fit_err(text, ty, "not a number"))?;
            if v.is_finite() && v.abs() > f64::from(f32::MAX) {
                return Err(fit_err(text, ty, "beyond ±3.4e38"));
            }
            (v as f32).to_be_bytes().to_vec()
        }
        DataType::F64 => {
            let v: f64 = text
                .trim()
                .parse()
                .map_err(|_| fit_err(text, ty, "not a number"))?;
            v.to_be_bytes().to_vec()
        }
        DataType::Bool => u16::from(
            parse_bool(text).ok_or_else(|| fit_err(text, ty, "use true/false, 1/0 or on/off"))?,
        )
        .to_be_bytes()
        .to_vec(),
        DataType::Bits => {
            let digits: String = text
                .chars()
                .filter(|c| !c.is_whitespace() && *c != '_')
                .collect();
            if digits.is_empty()
                || digits.len() > 16
                || !digits.chars().all(|c| c == '0' || c == '1')
            {
                return Err(fit_err(
                    text,
                    ty,
                    "give up to 16 binary digits, bit 15 first",
                ));
            }
            u16::from_str_radix(&digits, 2)
                .expect("checked binary")
                .to_be_bytes()
                .to_vec()
        }
        DataType::Bcd => {
            let v = parse_int::<u16>(text, ty)?;
            if v > 9999 {
                return Err(fit_err(text, ty, "BCD in one register holds 0 to 9999"));
            }
            let mut w = 0u16;
            for (i, d) in format!("{v:04}").bytes().enumerate() {
                w |= u16::from(d - b'0') << (12 - 4 * i);
            }
            w.to_be_bytes().to_vec()
        }
        DataType::Ascii(n) => {
            if !text.is_ascii() || text.len() > n as usize {
                return Err(fit_err(text, ty, format!("at most {n} ASCII characters")));
            }
            let mut b = text.as_bytes().to_vec();
            b.resize(ty.registers() as usize * 2, 0);
            // Strings keep register order; only bytes within a register swap.
            return Ok(b
                .chunks(2)
                .map(|c| {
                    if order.swaps_bytes() {
                        u16::from_be_bytes([c[1], c[0]])
                    } else {
                        u16::from_be_bytes([c[0], c[1]])
                    }
                })
                .collect());
        }
    };
    Ok(from_bytes(&bytes, order))
}

/// Encode a number (already unscaled to the raw domain) into registers, saturating into the type's
/// range. Used by the simulator, whose values move and must never wrap around.
pub fn encode_number(v: f64, ty: DataType, order: WordOrder) -> Vec<u16> {
    #[allow(clippy::cast_possible_truncation)]
    let bytes: Vec<u8> = match ty {
        DataType::U16 | DataType::Hex | DataType::Bits => (v.round().clamp(0.0, 65535.0) as u16)
            .to_be_bytes()
            .to_vec(),
        DataType::I16 => (v.round().clamp(-32768.0, 32767.0) as i16)
            .to_be_bytes()
            .to_vec(),
        DataType::U32 => (v.round().clamp(0.0, f64::from(u32::MAX)) as u32)
            .to_be_bytes()
            .to_vec(),
        DataType::I32 => (v.round().clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32)
            .to_be_bytes()
            .to_vec(),
        DataType::U64 => (v.round().max(0.0) as u64).to_be_bytes().to_vec(),
        DataType::I64 => (v.round() as i64).to_be_bytes().to_vec(),
        DataType::F32 => (v as f32).to_be_bytes().to_vec(),
        DataType::F64 => v.to_be_bytes().to_vec(),
        DataType::Bool => u16::from(v != 0.0).to_be_bytes().to_vec(),
        DataType::Bcd => {
            return encode_text(
                &format!("{}", v.round().clamp(0.0, 9999.0) as u16),
                ty,
                order,
            )
            .expect("0..=9999 is valid BCD");
        }
        DataType::Ascii(_) => return vec![0; ty.registers() as usize],
    };
    from_bytes(&bytes, order)
}

/// Parse a bit value: true/false, 1/0, on/off.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "on" => Some(true),
        "0" | "false" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn orders_of_a_known_float() {
        // 123.456f32 = 0x42F6E979: A=42 B=F6 C=E9 D=79
        let cases = [
            (WordOrder::Abcd, [0x42F6, 0xE979]),
            (WordOrder::Badc, [0xF642, 0x79E9]),
            (WordOrder::Cdab, [0xE979, 0x42F6]),
            (WordOrder::Dcba, [0x79E9, 0xF642]),
        ];
        for (order, regs) in cases {
            let v = decode(&regs, DataType::F32, order).unwrap();
            assert_eq!(v, Value::F(123.456), "{order}");
            assert_eq!(
                encode_text("123.456", DataType::F32, order).unwrap(),
                regs.to_vec()
            );
        }
    }

    #[test]
    fn integers_and_signs() {
        assert_eq!(
            decode(&[0xFFFF], DataType::I16, WordOrder::Abcd).unwrap(),
            Value::I(-1)
        );
        assert_eq!(
            decode(&[0xFFFF], DataType::U16, WordOrder::Abcd).unwrap(),
            Value::U(65535)
        );
        assert_eq!(
            decode(&[0x0001, 0x0000], DataType::U32, WordOrder::Abcd).unwrap(),
            Value::U(65536)
        );
        assert_eq!(
            decode(&[0x0000, 0x0001], DataType::U32, WordOrder::Cdab).unwrap(),
            Value::U(65536)
        );
        assert_eq!(
            decode(&[0, 0, 0, 1], DataType::U64, WordOrder::Abcd).unwrap(),
            Value::U(1)
        );
        assert_eq!(
            decode(&[1, 0, 0, 0], DataType::U64, WordOrder::Cdab).unwrap(),
            Value::U(1)
        );
    }

    #[test]
    fn text_types() {
        let regs = encode_text("PLC-7", DataType::Ascii(8), WordOrder::Abcd).unwrap();
        assert_eq!(regs, vec![0x504C, 0x432D, 0x3700, 0x0000]);
        assert_eq!(
            decode(&regs, DataType::Ascii(8), WordOrder::Abcd).unwrap(),
            Value::Text("PLC-7".into())
        );
        let swapped = encode_text("PLC-7", DataType::Ascii(8), WordOrder::Badc).unwrap();
        assert_eq!(swapped[0], 0x4C50);
        // Control characters from a device are escaped.
        assert_eq!(
            decode(&[0x1B5B], DataType::Ascii(2), WordOrder::Abcd).unwrap(),
            Value::Text("\\x1b[".into())
        );
        assert_eq!(
            decode(&[0x00A5], DataType::Hex, WordOrder::Abcd).unwrap(),
            Value::Text("0x00A5".into())
        );
        assert_eq!(
            decode(&[0x8001], DataType::Bits, WordOrder::Abcd).unwrap(),
            Value::Text("1000 0000 0000 0001".into())
        );
        assert_eq!(
            decode(&[0x1234], DataType::Bcd, WordOrder::Abcd).unwrap(),
            Value::U(1234)
        );
        assert_eq!(
            decode(&[0x12A4], DataType::Bcd, WordOrder::Abcd),
            Err(ValueError::BadBcd(0x12A4))
        );
        assert_eq!(
            encode_text("1234", DataType::Bcd, WordOrder::Abcd).unwrap(),
            vec![0x1234]
        );
    }

    #[test]
    fn values_that_do_not_fit() {
        for (text, ty) in [
            ("70000", DataType::U16),
            ("-1", DataType::U16),
            ("40000", DataType::I16),
            ("1.5", DataType::U32),
            ("abc", DataType::F32),
            ("1e39", DataType::F32),
            ("maybe", DataType::Bool),
            ("10000", DataType::Bcd),
            ("too long text", DataType::Ascii(4)),
            ("12", DataType::Bits),
        ] {
            let e = encode_text(text, ty, WordOrder::Abcd).unwrap_err();
            assert!(
                matches!(e, ValueError::DoesNotFit { .. }),
                "{text} as {ty}: {e}"
            );
        }
        let msg = encode_text("70000", DataType::U16, WordOrder::Abcd)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("0 to 65535"), "{msg}");
    }

    #[test]
    fn names_parse_and_print() {
        for name in [
            "u16", "i16", "u32", "i32", "u64", "i64", "f32", "f64", "bool", "bits", "ascii:12",
            "hex", "bcd",
        ] {
            assert_eq!(name.parse::<DataType>().unwrap().to_string(), name);
        }
        for name in ["abcd", "badc", "cdab", "dcba"] {
            assert_eq!(name.parse::<WordOrder>().unwrap().to_string(), name);
        }
        assert!("f16".parse::<DataType>().is_err());
        assert!("ascii:0".parse::<DataType>().is_err());
        assert!("acbd".parse::<WordOrder>().is_err());
        assert_eq!(
            decode(&[1], DataType::F32, WordOrder::Abcd),
            Err(ValueError::WrongLength {
                ty: "f32".into(),
                need: 2,
                got: 1
            })
        );
    }

    fn any_order() -> impl Strategy<Value = WordOrder> {
        prop::sample::select(WordOrder::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn u32_round_trip(v: u32, order in any_order()) {
            let regs = encode_text(&v.to_string(), DataType::U32, order).unwrap();
            prop_assert_eq!(decode(&regs, DataType::U32, order).unwrap(), Value::U(u64::from(v)));
        }

        #[test]
        fn i32_round_trip(v: i32, order in any_order()) {
            let regs = encode_text(&v.to_string(), DataType::I32, order).unwrap();
            prop_assert_eq!(decode(&regs, DataType::I32, order).unwrap(), Value::I(i64::from(v)));
        }

        #[test]
        fn u64_i64_round_trip(u: u64, i: i64, order in any_order()) {
            let regs = encode_text(&u.to_string(), DataType::U64, order).unwrap();
            prop_assert_eq!(decode(&regs, DataType::U64, order).unwrap(), Value::U(u));
            let regs = encode_text(&i.to_string(), DataType::I64, order).unwrap();
            prop_assert_eq!(decode(&regs, DataType::I64, order).unwrap(), Value::I(i));
        }

        #[test]
        fn f32_f64_round_trip(f in any::<f32>().prop_filter("finite", |f| f.is_finite()), d in any::<f64>().prop_filter("finite", |d| d.is_finite()), order in any_order()) {
            let regs = encode_number(f64::from(f), DataType::F32, order);
            let Value::F(back) = decode(&regs, DataType::F32, order).unwrap() else { panic!("f32 decodes to F") };
            prop_assert_eq!(back as f32, f, "shortest form maps back to the same f32");
            let regs = encode_number(d, DataType::F64, order);
            prop_assert_eq!(decode(&regs, DataType::F64, order).unwrap(), Value::F(d));
        }

        #[test]
        fn i16_u16_round_trip(u: u16, i: i16) {
            let regs = encode_text(&u.to_string(), DataType::U16, WordOrder::Abcd).unwrap();
            prop_assert_eq!(regs.clone(), vec![u]);
            prop_assert_eq!(decode(&regs, DataType::U16, WordOrder::Abcd).unwrap(), Value::U(u64::from(u)));
            let regs = encode_text(&i.to_string(), DataType::I16, WordOrder::Abcd).unwrap();
            prop_assert_eq!(decode(&regs, DataType::I16, WordOrder::Abcd).unwrap(), Value::I(i64::from(i)));
        }

        #[test]
        fn bcd_round_trip(v in 0u16..=9999) {
            let regs = encode_text(&v.to_string(), DataType::Bcd, WordOrder::Abcd).unwrap();
            prop_assert_eq!(decode(&regs, DataType::Bcd, WordOrder::Abcd).unwrap(), Value::U(u64::from(v)));
        }

        #[test]
        fn ascii_round_trip(s in "[ -~]{0,10}", order in any_order()) {
            let s = s.trim_end().to_string();
            let regs = encode_text(&s, DataType::Ascii(10), order).unwrap();
            let back = decode(&regs, DataType::Ascii(10), order).unwrap();
            let expected: String = s.bytes().flat_map(std::ascii::escape_default).map(char::from).collect();
            prop_assert_eq!(back, Value::Text(expected));
        }

        #[test]
        fn decode_never_panics(regs in prop::collection::vec(any::<u16>(), 0..6), t in 0usize..13, order in any_order()) {
            let ty = [DataType::U16, DataType::I16, DataType::U32, DataType::I32, DataType::U64, DataType::I64,
                DataType::F32, DataType::F64, DataType::Bool, DataType::Bits, DataType::Ascii(5), DataType::Hex, DataType::Bcd][t];
            let _ = decode(&regs, ty, order);
        }
    }
}
