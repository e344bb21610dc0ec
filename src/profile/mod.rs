//! Device profiles (`profiles/*.toml`, docs/DESIGN.md §4): a device's register or node map, shared by
//! read, poll, snapshot, diff, check and the simulator.
//!
//! Loading is strict: unknown keys, bad types, bad addresses and overlapping points are errors that
//! name the file, the line and the key, so a technician can fix the map rather than guess.

use std::{fmt::Write as _, path::Path};

use serde::Deserialize;
use toml::Spanned;

use crate::{
    proto::modbus::{parse_address, AddressRange, DataType, WordOrder},
    target::Target,
};

pub(crate) mod toml_text;

use toml_text::TomlText;

/// A loaded, validated profile.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Where it came from (for messages).
    pub source: String,
    /// `[device]`.
    pub device: Device,
    /// `[[point]]`s in file order.
    pub points: Vec<Point>,
    /// SHA-256-free content fingerprint is left to the snapshot issue; the raw text is kept.
    pub text: String,
}

/// The `[device]` table.
#[derive(Debug, Clone)]
pub struct Device {
    /// Human name.
    pub name: String,
    /// Default target (the command line may override it).
    pub target: Option<Target>,
    /// Default word order for multi-register values.
    pub order: WordOrder,
    /// Largest register read this device accepts (≤ 125).
    pub max_registers: u16,
    /// Largest bit read this device accepts (≤ 2000).
    pub max_bits: u16,
    /// Identity the simulator serves over FC43 (vendor, product code, revision, …).
    pub identity: Vec<(String, String)>,
}

/// How bad a point's drift or limit violation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Exit 1.
    Warning,
    /// Exit 2.
    Critical,
}

impl Severity {
    /// The exit outcome of a violation of this severity (docs/DESIGN.md §6).
    pub fn outcome(self) -> crate::outcome::Outcome {
        match self {
            Severity::Warning => crate::outcome::Outcome::Warning,
            Severity::Critical => crate::outcome::Outcome::Critical,
        }
    }
}

/// What the simulator serves for a point.
#[derive(Debug, Clone, Default)]
pub struct SimSpec {
    /// Starting value (engineering units), or the text of an ascii point.
    pub value: SimValue,
    /// Uniform noise amplitude (± engineering units).
    pub noise: f64,
    /// Change per second (counters, tank levels).
    pub ramp: f64,
}

/// A simulated starting value.
#[derive(Debug, Clone)]
pub enum SimValue {
    /// Number (engineering units).
    Number(f64),
    /// Text for ascii points.
    Text(String),
}

impl Default for SimValue {
    fn default() -> Self {
        SimValue::Number(0.0)
    }
}

/// One `[[point]]`.
#[derive(Debug, Clone)]
pub struct Point {
    /// Unique name, e.g. `press.pressure`.
    pub name: String,
    /// Modbus location (registers or bits covered by the whole value).
    pub address: Option<AddressRange>,
    /// OPC UA node (later issue); kept verbatim.
    pub node: Option<String>,
    /// Data type.
    pub ty: DataType,
    /// Word order (point's own or the device default).
    pub order: WordOrder,
    /// value = raw * scale + offset.
    pub scale: f64,
    /// See `scale`.
    pub offset: f64,
    /// Engineering unit.
    pub unit: String,
    /// Plausible range.
    pub range: Option<(f64, f64)>,
    /// Allowed |current − baseline|.
    pub tolerance: Option<f64>,
    /// Counters/timers: left out of diff.
    pub volatile: bool,
    /// Severity of a violation.
    pub severity: Severity,
    /// Free text.
    pub description: String,
    /// Simulator behaviour.
    pub sim: SimSpec,
    /// 1-based line of the point in the file.
    pub line: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    device: Spanned<RawDevice>,
    #[serde(default)]
    point: Vec<Spanned<RawPoint>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDevice {
    name: String,
    target: Option<Spanned<String>>,
    order: Option<Spanned<String>>,
    max_registers: Option<Spanned<u16>>,
    max_bits: Option<Spanned<u16>>,
    #[serde(default)]
    identity: toml::Table,
    #[serde(default)]
    description: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPoint {
    name: Spanned<String>,
    address: Option<Spanned<String>>,
    node: Option<Spanned<String>>,
    #[serde(rename = "type")]
    ty: Option<Spanned<String>>,
    order: Option<Spanned<String>>,
    scale: Option<f64>,
    offset: Option<f64>,
    #[serde(default)]
    unit: String,
    range: Option<Spanned<[f64; 2]>>,
    tolerance: Option<Spanned<f64>>,
    #[serde(default)]
    volatile: bool,
    severity: Option<Severity>,
    #[serde(default)]
    description: String,
    sim: Option<Spanned<RawSim>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSim {
    value: Option<toml::Value>,
    #[serde(default)]
    noise: f64,
    #[serde(default)]
    ramp: f64,
}

impl Profile {
    /// Load and validate a profile file.
    pub fn load(path: &Path) -> anyhow::Result<Profile> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!(
                "cannot read profile {}: {e}; give the path of a profile TOML file (see profiles/ for examples)",
                path.display()
            )
        })?;
        Profile::parse(&path.display().to_string(), &text)
    }

    /// Parse and validate profile text; `source` names it in messages.
    pub fn parse(source: &str, text: &str) -> anyhow::Result<Profile> {
        let cx = TomlText { source, text };
        let raw: RawProfile = cx.parse()?;
        let dev_span = raw.device.span();
        let rd = raw.device.into_inner();
        let target = match rd.target {
            None => None,
            Some(t) => Some(
                t.get_ref()
                    .parse::<Target>()
                    .map_err(|e| cx.err(t.span(), "device.target", e))?,
            ),
        };
        let order = match &rd.order {
            None => WordOrder::Abcd,
            Some(o) => o
                .get_ref()
                .parse()
                .map_err(|e| cx.err(o.span(), "device.order", e))?,
        };
        let limit = |v: &Option<Spanned<u16>>, key: &str, max: u16| -> anyhow::Result<u16> {
            match v {
                None => Ok(max),
                Some(s) if (1..=max).contains(s.get_ref()) => Ok(*s.get_ref()),
                Some(s) => Err(cx.err(
                    s.span(),
                    key,
                    format!("must be from 1 to {max} (the spec limit)"),
                )),
            }
        };
        let max_registers = limit(&rd.max_registers, "device.max_registers", 125)?;
        let max_bits = limit(&rd.max_bits, "device.max_bits", 2000)?;
        let mut identity = Vec::new();
        for (k, v) in &rd.identity {
            let v = match v {
                toml::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            identity.push((k.clone(), v));
        }
        let _ = (rd.description, dev_span);

        let mut points: Vec<Point> = Vec::with_capacity(raw.point.len());
        for sp in raw.point {
            let span = sp.span();
            let line = cx.line(span.start);
            let rp = sp.into_inner();
            let earlier = points.iter().map(|p| (p.name.as_str(), p.line));
            let name = cx.unique_name(&rp.name, "point.name", earlier, "used by the point")?;
            let key = |k: &str| format!("point.{k} (point `{name}`)");
            let addr = match &rp.address {
                None => None,
                Some(a) => Some((
                    parse_address(a.get_ref()).map_err(|e| cx.err(a.span(), &key("address"), e))?,
                    a.span(),
                )),
            };
            if addr.is_none() && rp.node.is_none() {
                return Err(cx.err(
                    span,
                    &key("address"),
                    "every point needs an `address` (Modbus, e.g. \"hr:100\") or a `node` (OPC UA)",
                ));
            }
            // A point may carry both: many PLCs serve the same variable over Modbus and OPC
            // UA, and the target's scheme picks which one is read.
            if let Some(n) = &rp.node {
                n.get_ref()
                    .parse::<crate::proto::opcua::node::NodeRef>()
                    .map_err(|e| cx.err(n.span(), &key("node"), e))?;
            }
            let ty = match &rp.ty {
                Some(t) => t
                    .get_ref()
                    .parse::<DataType>()
                    .map_err(|e| cx.err(t.span(), &key("type"), e))?,
                None => match addr {
                    Some((a, _)) if a.table.is_bits() => DataType::Bool,
                    _ => DataType::U16,
                },
            };
            let order = match &rp.order {
                None => order,
                Some(o) => o
                    .get_ref()
                    .parse()
                    .map_err(|e| cx.err(o.span(), &key("order"), e))?,
            };
            let address = match addr {
                None => None,
                Some((a, aspan)) => {
                    if a.table.is_bits() && ty != DataType::Bool {
                        return Err(cx.err(
                            aspan,
                            &key("type"),
                            format!(
                                "{} are single bits; use type \"bool\" (or leave type out)",
                                a.table.name()
                            ),
                        ));
                    }
                    let width = ty.registers();
                    if a.explicit_count && a.count != width {
                        return Err(cx.err(aspan, &key("address"), format!("covers {} item(s) but type {ty} needs {width}; give the first address only", a.count)));
                    }
                    if u32::from(a.start) + u32::from(width) > 65536 {
                        return Err(cx.err(
                            aspan,
                            &key("address"),
                            "the value runs past address 65535",
                        ));
                    }
                    Some(AddressRange::new(a.table, a.start, width))
                }
            };
            let range = match &rp.range {
                None => None,
                Some(r) => {
                    let [lo, hi] = *r.get_ref();
                    if lo > hi || !lo.is_finite() || !hi.is_finite() {
                        return Err(cx.err(
                            r.span(),
                            &key("range"),
                            "must be [low, high] with low ≤ high",
                        ));
                    }
                    Some((lo, hi))
                }
            };
            let tolerance = match &rp.tolerance {
                None => None,
                Some(t) if *t.get_ref() >= 0.0 => Some(*t.get_ref()),
                Some(t) => return Err(cx.err(t.span(), &key("tolerance"), "must not be negative")),
            };
            let scale = rp.scale.unwrap_or(1.0);
            if scale == 0.0 || !scale.is_finite() {
                return Err(cx.err(span, &key("scale"), "must be a finite number other than 0"));
            }
            let sim = match rp.sim {
                None => SimSpec {
                    value: SimValue::Number(range.map_or(0.0, |(lo, hi)| f64::midpoint(lo, hi))),
                    ..SimSpec::default()
                },
                Some(s) => {
                    let sspan = s.span();
                    let s = s.into_inner();
                    let value = match s.value {
                        None => {
                            SimValue::Number(range.map_or(0.0, |(lo, hi)| f64::midpoint(lo, hi)))
                        }
                        Some(toml::Value::Integer(i)) => SimValue::Number(i as f64),
                        Some(toml::Value::Float(f)) => SimValue::Number(f),
                        Some(toml::Value::Boolean(b)) => SimValue::Number(f64::from(u8::from(b))),
                        Some(toml::Value::String(t)) if matches!(ty, DataType::Ascii(_)) => {
                            SimValue::Text(t)
                        }
                        Some(_) => {
                            return Err(cx.err(
                                sspan,
                                &key("sim.value"),
                                "must be a number or boolean (a string only for ascii points)",
                            ));
                        }
                    };
                    SimSpec {
                        value,
                        noise: s.noise.abs(),
                        ramp: s.ramp,
                    }
                }
            };
            points.push(Point {
                name,
                address,
                node: rp.node.map(Spanned::into_inner),
                ty,
                order,
                scale,
                offset: rp.offset.unwrap_or(0.0),
                unit: rp.unit,
                range,
                tolerance,
                volatile: rp.volatile,
                severity: rp.severity.unwrap_or(Severity::Critical),
                description: rp.description,
                sim,
                line,
            });
        }
        // Overlaps: sort by location, compare neighbours.
        let mut located: Vec<(&AddressRange, &Point)> = points
            .iter()
            .filter_map(|p| p.address.as_ref().map(|a| (a, p)))
            .collect();
        located.sort_by_key(|(a, _)| (a.table, a.start));
        for w in located.windows(2) {
            let ((a, pa), (b, pb)) = (w[0], w[1]);
            if a.overlaps(b) {
                let mut m = String::new();
                let _ = write!(
                    m,
                    "{source}:{}: point `{}` ({} as {}) overlaps point `{}` on line {} ({} as {}); each register may belong to one point only",
                    pb.line, pb.name, b, pb.ty, pa.name, pa.line, a, pa.ty
                );
                anyhow::bail!(m);
            }
        }
        Ok(Profile {
            source: source.to_string(),
            device: Device {
                name: rd.name,
                target,
                order,
                max_registers,
                max_bits,
                identity,
            },
            points,
            text: text.to_string(),
        })
    }
}

/// The demo profile, embedded so `plcprobe demo` works from anywhere.
pub const DEMO_PROFILE: &str = include_str!("../../profiles/demo-line.toml");

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "[device]\nname = \"t\"\n";

    fn parse(body: &str) -> anyhow::Result<Profile> {
        Profile::parse("t.toml", &format!("{HEAD}{body}"))
    }

    #[test]
    fn demo_profile_loads() {
        let p = Profile::parse("demo-line.toml", DEMO_PROFILE).unwrap();
        assert!(p.points.len() >= 8);
    }

    #[test]
    fn minimal_point_defaults() {
        let p = parse("[[point]]\nname = \"a\"\naddress = \"40101\"\n").unwrap();
        let pt = &p.points[0];
        assert_eq!(pt.ty, DataType::U16);
        assert_eq!(pt.address.unwrap().start, 100);
        assert_eq!(pt.line, 3);
        let p = parse("[[point]]\nname = \"a\"\naddress = \"co:3\"\n").unwrap();
        assert_eq!(p.points[0].ty, DataType::Bool);
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let cases = [
            ("[[point]]\nname = \"a\"\naddress = \"hr:1\"\nadress = 3\n", "t.toml:6:", "adress"),
            ("[[point]]\nname = \"a\"\naddress = \"zz:1\"\n", "t.toml:5:", "point.address"),
            ("[[point]]\nname = \"a\"\naddress = \"hr:1\"\ntype = \"f16\"\n", "t.toml:6:", "point.type"),
            ("[[point]]\nname = \"a\"\naddress = \"hr:1\"\ntype = 5\n", "t.toml:6:", "invalid type"),
            ("[[point]]\nname = \"a\"\naddress = \"hr:1\"\n[[point]]\nname = \"a\"\naddress = \"hr:2\"\n", "t.toml:7:", "already used"),
            ("[[point]]\nname = \"a\"\naddress = \"hr:0\"\ntype = \"f32\"\n[[point]]\nname = \"b\"\naddress = \"hr:1\"\n", "t.toml:7:", "overlaps point `a`"),
            ("[[point]]\nname = \"a\"\naddress = \"co:0\"\ntype = \"u16\"\n", "t.toml:5:", "single bits"),
            ("[[point]]\nname = \"a\"\n", "t.toml:3:", "needs an `address`"),
            ("[[point]]\nname = \"a\"\naddress = \"hr:1\"\nrange = [5.0, 1.0]\n", "t.toml:6:", "low ≤ high"),
            ("[[point]]\nname = \"a\"\naddress = \"hr:1..3\"\ntype = \"u16\"\n", "t.toml:5:", "needs 1"),
        ];
        for (body, at, needle) in cases {
            let e = format!("{:#}", parse(body).unwrap_err());
            assert!(e.starts_with(at), "expected {at}: {e}");
            assert!(e.contains(needle), "expected {needle}: {e}");
        }
        let e = Profile::parse("p.toml", "[device]\nname = \"x\"\ntarget = \"modbus//x\"\n")
            .unwrap_err();
        assert!(format!("{e:#}").starts_with("p.toml:3:"), "{e:#}");
        let e = Profile::parse("p.toml", "[device\n").unwrap_err();
        assert!(format!("{e:#}").starts_with("p.toml:1:"), "{e:#}");
    }
}
