//! OPC UA values and codes as text and JSON: a `Variant`'s type name, its JSON form and its
//! parse from text (write), `StatusCode` and `NodeClass` names, qualified names, and the
//! sanitising of device-supplied text.
//!
//! Pure: async-opcua's types only, no I/O. Device-supplied text comes out printable (control
//! characters replaced); an f32 prints as its shortest decimal text; non-finite numbers are JSON
//! strings. For status codes as raw `u32`s (captures), see [`super::status_text`].

use crate::proto::sanitize;
use opcua::types::{NodeClass, QualifiedName, StatusCode, Variant};

/// A status code as `BadNodeIdUnknown (0x80340000)`.
pub fn status_code_text(s: StatusCode) -> String {
    format!("{} (0x{:08X})", status_code_name(s), s.bits())
}

/// A status code's name only (`Good`, `BadNodeIdUnknown`).
pub fn status_code_name(s: StatusCode) -> String {
    s.sub_code().name().to_string()
}

/// The data type name of a value (`Double`, `Int32`, `String`…), `Null` when empty.
pub fn variant_type(v: Option<&Variant>) -> String {
    match v {
        None | Some(Variant::Empty) => "Null".into(),
        Some(v) if v.is_array() => match v {
            Variant::Array(a) => format!("{:?}[]", a.value_type),
            _ => "Array".into(),
        },
        Some(v) => v
            .scalar_type_id()
            .map_or_else(|| "Variant".to_string(), |t| format!("{t:?}")),
    }
}

/// A value as JSON: numbers as numbers, text as text, arrays as arrays.
pub fn variant_json(v: &Variant) -> serde_json::Value {
    use serde_json::json;
    match v {
        Variant::Empty => serde_json::Value::Null,
        Variant::Boolean(b) => json!(b),
        Variant::SByte(x) => json!(x),
        Variant::Byte(x) => json!(x),
        Variant::Int16(x) => json!(x),
        Variant::UInt16(x) => json!(x),
        Variant::Int32(x) => json!(x),
        Variant::UInt32(x) => json!(x),
        Variant::Int64(x) => json!(x),
        Variant::UInt64(x) => json!(x),
        Variant::Float(x) => finite(f32_value(*x)),
        Variant::Double(x) => finite(*x),
        Variant::String(s) => json!(sanitize(s.as_ref())),
        Variant::LocalizedText(t) => json!(sanitize(t.text.as_ref())),
        Variant::QualifiedName(q) => json!(sanitize(q.name.as_ref())),
        Variant::DateTime(d) => json!(d.to_string()),
        Variant::NodeId(n) => json!(n.to_string()),
        Variant::StatusCode(s) => json!(status_code_name(*s)),
        Variant::Array(a) => serde_json::Value::Array(a.values.iter().map(variant_json).collect()),
        Variant::ExtensionObject(_) => json!(format!("({})", variant_type(Some(v)))),
        other => {
            let t = sanitize(&format!("{other}"));
            json!(if t.chars().count() > 200 {
                format!("{}…", t.chars().take(200).collect::<String>())
            } else {
                t
            })
        }
    }
}

/// An f32 as the f64 of its shortest text (180.4584, not 180.45838928222656), so values print
/// and diff as the device meant them.
pub fn f32_value(x: f32) -> f64 {
    // Rust's own shortest digits, written on the stack (a poll converts every value it reads).
    // Not ryu: on exact ties (1928087.25) it picks the other digit, and a baseline taken with
    // one would then differ from a snapshot taken with the other.
    use std::io::Write as _;
    let mut buf = [0u8; 64];
    let mut w = &mut buf[..];
    if write!(w, "{x}").is_err() {
        return f64::from(x);
    }
    let n = 64 - w.len();
    std::str::from_utf8(&buf[..n])
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(f64::from(x))
}

fn finite(x: f64) -> serde_json::Value {
    serde_json::Number::from_f64(x).map_or_else(
        || serde_json::json!(x.to_string()),
        serde_json::Value::Number,
    )
}

/// Parse text into a Variant of the node's current type (write).
pub fn variant_from_text(text: &str, like: &Variant) -> Result<Variant, String> {
    let t = text.trim();
    let bad = |ty: &str| format!("`{text}` is not a valid {ty}");
    Ok(match like {
        Variant::Boolean(_) => Variant::Boolean(match t.to_ascii_lowercase().as_str() {
            "1" | "true" | "on" => true,
            "0" | "false" | "off" => false,
            _ => return Err(bad("Boolean (true/false, 1/0, on/off)")),
        }),
        Variant::SByte(_) => Variant::SByte(t.parse().map_err(|_| bad("SByte"))?),
        Variant::Byte(_) => Variant::Byte(t.parse().map_err(|_| bad("Byte"))?),
        Variant::Int16(_) => Variant::Int16(t.parse().map_err(|_| bad("Int16"))?),
        Variant::UInt16(_) => Variant::UInt16(t.parse().map_err(|_| bad("UInt16"))?),
        Variant::Int32(_) => Variant::Int32(t.parse().map_err(|_| bad("Int32"))?),
        Variant::UInt32(_) => Variant::UInt32(t.parse().map_err(|_| bad("UInt32"))?),
        Variant::Int64(_) => Variant::Int64(t.parse().map_err(|_| bad("Int64"))?),
        Variant::UInt64(_) => Variant::UInt64(t.parse().map_err(|_| bad("UInt64"))?),
        Variant::Float(_) => {
            let x: f32 = t.parse().map_err(|_| bad("Float"))?;
            if !x.is_finite() {
                return Err(bad("finite Float"));
            }
            Variant::Float(x)
        }
        Variant::Double(_) => {
            let x: f64 = t.parse().map_err(|_| bad("Double"))?;
            if !x.is_finite() {
                return Err(bad("finite Double"));
            }
            Variant::Double(x)
        }
        Variant::String(_) => Variant::String(text.into()),
        other => {
            return Err(format!(
                "writing {} values is not supported; plcprobe writes numbers, booleans and strings",
                variant_type(Some(other))
            ))
        }
    })
}

/// Node class name.
pub fn class_name(c: NodeClass) -> &'static str {
    match c {
        NodeClass::Object => "Object",
        NodeClass::Variable => "Variable",
        NodeClass::Method => "Method",
        NodeClass::ObjectType => "ObjectType",
        NodeClass::VariableType => "VariableType",
        NodeClass::ReferenceType => "ReferenceType",
        NodeClass::DataType => "DataType",
        NodeClass::View => "View",
        NodeClass::Unspecified => "Unspecified",
    }
}

/// A qualified name as `ns:Name` (just `Name` in namespace 0).
pub fn qname(q: &QualifiedName) -> String {
    if q.namespace_index == 0 {
        sanitize(q.name.as_ref())
    } else {
        format!("{}:{}", q.namespace_index, sanitize(q.name.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn write_text_follows_the_node_type() {
        assert_eq!(
            variant_from_text("42.5", &Variant::Double(0.0)),
            Ok(Variant::Double(42.5))
        );
        assert_eq!(
            variant_from_text("on", &Variant::Boolean(false)),
            Ok(Variant::Boolean(true))
        );
        assert!(variant_from_text("300", &Variant::Byte(0)).is_err());
        assert!(variant_from_text("NaN", &Variant::Double(0.0)).is_err());
        assert!(variant_from_text("1", &Variant::Empty).is_err());
    }

    proptest! {
        /// The same value as through `to_string`, for any f32 bits (ryu failed this on ties).
        #[test]
        fn f32_values_are_the_shortest_text(bits in any::<u32>()) {
            let x = f32::from_bits(bits);
            let by_std: f64 = x.to_string().parse().unwrap();
            let v = f32_value(x);
            prop_assert!(v == by_std || (v.is_nan() && by_std.is_nan()), "{x}: {v} vs {by_std}");
        }
    }

    #[test]
    fn f32_values_print_as_the_device_meant() {
        assert_eq!(f32_value(180.4584), 180.4584);
        assert_eq!(f32_value(0.1), 0.1);
        // 1928087.25 exactly, a tie between …087.2 and …087.3: the digits Rust prints.
        assert_eq!(f32_value(f32::from_bits(1_240_161_466)), 1_928_087.3);
        assert_eq!(f32_value(1e-40), 1e-40); // subnormal
        assert_eq!(f32_value(f32::MAX), 3.402_823_5e38);
        assert_eq!(f32_value(f32::INFINITY), f64::INFINITY);
        assert_eq!(f32_value(f32::NEG_INFINITY), f64::NEG_INFINITY);
        assert!(f32_value(f32::NAN).is_nan());
        assert_eq!(f32_value(-0.0).to_bits(), (-0.0f64).to_bits());
    }
}
