//! Device targets, one grammar everywhere (docs/DESIGN.md §2): command lines, profiles and plans.
//!
//! - `modbus://HOST[:PORT][/UNIT]`: Modbus TCP, port 502 and unit 1 by default; IPv6 as `[::1]`.
//! - `rtu:///dev/ttyUSB0?baud=19200&frame=8E1&unit=3`: Modbus RTU on a serial line; defaults
//!   19200 baud 8E1 (Modbus over Serial Line V1.02 §2.5.1); `frame` is data bits, parity, stop bits.
//! - `rtu+tcp://HOST:PORT[/UNIT]`: RTU frames over TCP (serial-to-Ethernet gateways).
//! - `opc.tcp://HOST[:PORT][/PATH]`: OPC UA, port 4840 by default.
//!
//! Parsing does no I/O. Targets print back compactly: `rtu:/dev/ttyUSB0 19200-8E1 unit 3`.

use std::{fmt, str::FromStr};

use serde::{Serialize, Serializer};
use thiserror::Error;

/// Serial parity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parity {
    /// No parity bit.
    None,
    /// Even parity.
    Even,
    /// Odd parity.
    Odd,
}

/// A parsed target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Modbus TCP.
    ModbusTcp {
        /// Host name or IP (IPv6 without brackets).
        host: String,
        /// TCP port.
        port: u16,
        /// Unit identifier.
        unit: u8,
    },
    /// Modbus RTU on a serial line.
    Rtu {
        /// Device path.
        path: String,
        /// Baud rate.
        baud: u32,
        /// Data bits (7 or 8).
        data_bits: u8,
        /// Parity.
        parity: Parity,
        /// Stop bits (1 or 2).
        stop_bits: u8,
        /// Unit (slave) address.
        unit: u8,
    },
    /// Modbus RTU frames over TCP.
    RtuOverTcp {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// Unit.
        unit: u8,
    },
    /// OPC UA binary over TCP.
    OpcUa {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// Path after the host, without the leading slash.
        path: String,
    },
}

/// Why a target was refused.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("bad target `{text}`: {why}. Targets look like modbus://192.0.2.10:502/1, rtu:///dev/ttyUSB0?baud=19200&frame=8E1&unit=3, rtu+tcp://192.0.2.20:4001/2 or opc.tcp://192.0.2.30:4840")]
pub struct TargetError {
    text: String,
    why: String,
}

fn err(text: &str, why: impl Into<String>) -> TargetError {
    TargetError {
        text: text.to_string(),
        why: why.into(),
    }
}

/// Split `HOST[:PORT]` (IPv6 in brackets) into host and optional port.
fn split_host_port<'a>(text: &str, s: &'a str) -> Result<(&'a str, Option<u16>), TargetError> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| err(text, "an IPv6 address needs its closing `]`"))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| err(text, format!("unexpected `{p}` after the IPv6 address")))?,
            ),
        };
        (h, port)
    } else if s.matches(':').count() > 1 {
        return Err(err(
            text,
            "write an IPv6 address in brackets, e.g. [::1]:502",
        ));
    } else if let Some((h, p)) = s.split_once(':') {
        (h, Some(p))
    } else {
        (s, None)
    };
    if host.is_empty() {
        return Err(err(text, "the host is missing"));
    }
    let port = match port {
        None => None,
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| err(text, format!("port `{p}` is not a number from 1 to 65535")))?,
        ),
    };
    Ok((host, port))
}

fn parse_unit(text: &str, u: &str) -> Result<u8, TargetError> {
    u.parse::<u8>()
        .map_err(|_| err(text, format!("unit `{u}` is not a number from 0 to 255")))
}

fn parse_host_port_unit(
    text: &str,
    rest: &str,
    default_port: u16,
) -> Result<(String, u16, u8), TargetError> {
    let (hp, unit) = match rest.split_once('/') {
        Some((hp, "")) => (hp, 1),
        Some((hp, u)) => (hp, parse_unit(text, u)?),
        None => (rest, 1),
    };
    let (host, port) = split_host_port(text, hp)?;
    Ok((host.to_string(), port.unwrap_or(default_port), unit))
}

/// A serial framing as `frame=` gives it (`8E1`): data bits, parity, stop bits.
pub fn parse_frame_text(f: &str) -> Option<(u8, Parity, u8)> {
    parse_frame("", f).ok()
}

fn parse_frame(text: &str, f: &str) -> Result<(u8, Parity, u8), TargetError> {
    let b = f.as_bytes();
    let bad = || {
        err(
            text,
            format!("frame `{f}` is not data bits, parity and stop bits like 8E1, 8N2 or 7O1"),
        )
    };
    if b.len() != 3 {
        return Err(bad());
    }
    let data = match b[0] {
        b'7' => 7,
        b'8' => 8,
        _ => return Err(bad()),
    };
    let parity = match b[1].to_ascii_uppercase() {
        b'N' => Parity::None,
        b'E' => Parity::Even,
        b'O' => Parity::Odd,
        _ => return Err(bad()),
    };
    let stop = match b[2] {
        b'1' => 1,
        b'2' => 2,
        _ => return Err(bad()),
    };
    Ok((data, parity, stop))
}

impl FromStr for Target {
    type Err = TargetError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let s = text.trim();
        let Some((scheme, rest)) = s.split_once("://") else {
            return Err(err(
                text,
                "no scheme; start with modbus://, rtu://, rtu+tcp:// or opc.tcp://",
            ));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "modbus" | "modbus+tcp" | "tcp" => {
                let (host, port, unit) = parse_host_port_unit(text, rest, 502)?;
                Ok(Target::ModbusTcp { host, port, unit })
            }
            "rtu+tcp" => {
                let (host, port, unit) = parse_host_port_unit(text, rest, 502)?;
                Ok(Target::RtuOverTcp { host, port, unit })
            }
            "rtu" => {
                let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
                if path.is_empty() {
                    return Err(err(
                        text,
                        "the serial device path is missing, e.g. rtu:///dev/ttyUSB0",
                    ));
                }
                let (mut baud, mut frame, mut unit) = (19200u32, (8u8, Parity::Even, 1u8), 1u8);
                for kv in query.split('&').filter(|kv| !kv.is_empty()) {
                    let (k, v) = kv
                        .split_once('=')
                        .ok_or_else(|| err(text, format!("`{kv}` is not key=value")))?;
                    match k {
                        "baud" => {
                            baud = v.parse().ok().filter(|b| *b > 0).ok_or_else(|| {
                                err(text, format!("baud `{v}` is not a positive number"))
                            })?;
                        }
                        "frame" => frame = parse_frame(text, v)?,
                        "unit" => unit = parse_unit(text, v)?,
                        other => {
                            return Err(err(
                                text,
                                format!(
                                    "unknown option `{other}`; rtu:// takes baud, frame and unit"
                                ),
                            ));
                        }
                    }
                }
                Ok(Target::Rtu {
                    path: path.to_string(),
                    baud,
                    data_bits: frame.0,
                    parity: frame.1,
                    stop_bits: frame.2,
                    unit,
                })
            }
            "opc.tcp" => {
                let (hp, path) = rest.split_once('/').unwrap_or((rest, ""));
                let (host, port) = split_host_port(text, hp)?;
                Ok(Target::OpcUa {
                    host: host.to_string(),
                    port: port.unwrap_or(4840),
                    path: path.to_string(),
                })
            }
            other => Err(err(text, format!("unknown scheme `{other}`"))),
        }
    }
}

fn fmt_host(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

impl Target {
    /// The same bus address with another Modbus unit ID (`scan` walks them); an OPC UA target
    /// has none and is returned as it is.
    #[must_use]
    pub fn with_unit(&self, new: u8) -> Target {
        let mut t = self.clone();
        match &mut t {
            Target::ModbusTcp { unit, .. }
            | Target::Rtu { unit, .. }
            | Target::RtuOverTcp { unit, .. } => *unit = new,
            Target::OpcUa { .. } => {}
        }
        t
    }

    /// `host:port` for the TCP-based targets.
    pub fn socket_text(&self) -> Option<String> {
        match self {
            Target::ModbusTcp { host, port, .. }
            | Target::RtuOverTcp { host, port, .. }
            | Target::OpcUa { host, port, .. } => Some(format!("{}:{port}", fmt_host(host))),
            Target::Rtu { .. } => None,
        }
    }

    /// The canonical URL form (parses back to the same target).
    pub fn url(&self) -> String {
        match self {
            Target::ModbusTcp { host, port, unit } => {
                format!("modbus://{}:{port}/{unit}", fmt_host(host))
            }
            Target::RtuOverTcp { host, port, unit } => {
                format!("rtu+tcp://{}:{port}/{unit}", fmt_host(host))
            }
            Target::OpcUa { host, port, path } => {
                if path.is_empty() {
                    format!("opc.tcp://{}:{port}", fmt_host(host))
                } else {
                    format!("opc.tcp://{}:{port}/{path}", fmt_host(host))
                }
            }
            Target::Rtu {
                path, baud, unit, ..
            } => format!(
                "rtu://{path}?baud={baud}&frame={}&unit={unit}",
                self.frame()
            ),
        }
    }

    /// An RTU target's frame as `frame=` gives it: data bits, parity, stop bits (`8E1`); empty
    /// for the other targets.
    fn frame(&self) -> String {
        let Target::Rtu {
            data_bits,
            parity,
            stop_bits,
            ..
        } = self
        else {
            return String::new();
        };
        let parity = match parity {
            Parity::None => 'N',
            Parity::Even => 'E',
            Parity::Odd => 'O',
        };
        format!("{data_bits}{parity}{stop_bits}")
    }
}

impl fmt::Display for Target {
    /// Compact human form: `modbus:192.0.2.10:502 unit 1`, `rtu:/dev/ttyUSB0 19200-8E1 unit 3`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::ModbusTcp { host, port, unit } => {
                write!(f, "modbus:{}:{port} unit {unit}", fmt_host(host))
            }
            Target::RtuOverTcp { host, port, unit } => {
                write!(f, "rtu+tcp:{}:{port} unit {unit}", fmt_host(host))
            }
            Target::OpcUa { .. } => f.write_str(&self.url()),
            Target::Rtu {
                path, baud, unit, ..
            } => write!(f, "rtu:{path} {baud}-{} unit {unit}", self.frame()),
        }
    }
}

impl Serialize for Target {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.url())
    }
}

/// Parse `1`, `1-3`, `1,5,7` into unit IDs.
pub fn parse_units(text: &str) -> anyhow::Result<Vec<u8>> {
    let bad = || {
        anyhow::anyhow!(
            "--units `{text}` is not a list of unit IDs from 0 to 255 like 1, 1-3 or 1,5,7"
        )
    };
    let mut v = Vec::new();
    for part in text.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (
                    a.trim().parse::<u8>().map_err(|_| bad())?,
                    b.trim().parse::<u8>().map_err(|_| bad())?,
                );
                if b < a {
                    return Err(bad());
                }
                v.extend(a..=b);
            }
            None => v.push(part.trim().parse::<u8>().map_err(|_| bad())?),
        }
    }
    v.sort_unstable();
    v.dedup();
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(s: &str) -> Target {
        s.parse().unwrap()
    }

    #[test]
    fn modbus_tcp_forms() {
        assert_eq!(
            t("modbus://192.0.2.10"),
            Target::ModbusTcp {
                host: "192.0.2.10".into(),
                port: 502,
                unit: 1
            }
        );
        assert_eq!(
            t("modbus://127.0.0.1:5020/7"),
            Target::ModbusTcp {
                host: "127.0.0.1".into(),
                port: 5020,
                unit: 7
            }
        );
        assert_eq!(
            t("modbus://[::1]:1502/255"),
            Target::ModbusTcp {
                host: "::1".into(),
                port: 1502,
                unit: 255
            }
        );
        assert_eq!(t("modbus://[::1]").socket_text().unwrap(), "[::1]:502");
        assert_eq!(
            t("modbus://plc-3.local/"),
            Target::ModbusTcp {
                host: "plc-3.local".into(),
                port: 502,
                unit: 1
            }
        );
        assert_eq!(
            t("modbus://[::1]:1502/3").to_string(),
            "modbus:[::1]:1502 unit 3"
        );
    }

    #[test]
    fn rtu_forms() {
        let r = t("rtu:///dev/ttyUSB0?baud=9600&frame=8N2&unit=3");
        assert_eq!(
            r,
            Target::Rtu {
                path: "/dev/ttyUSB0".into(),
                baud: 9600,
                data_bits: 8,
                parity: Parity::None,
                stop_bits: 2,
                unit: 3
            }
        );
        assert_eq!(r.to_string(), "rtu:/dev/ttyUSB0 9600-8N2 unit 3");
        assert_eq!(
            t("rtu:///dev/ttyS1").to_string(),
            "rtu:/dev/ttyS1 19200-8E1 unit 1"
        );
        assert_eq!(
            t("rtu+tcp://10.1.1.1:4001/2"),
            Target::RtuOverTcp {
                host: "10.1.1.1".into(),
                port: 4001,
                unit: 2
            }
        );
    }

    #[test]
    fn opcua_forms() {
        assert_eq!(
            t("opc.tcp://plc:4841/UA/Server"),
            Target::OpcUa {
                host: "plc".into(),
                port: 4841,
                path: "UA/Server".into()
            }
        );
        assert_eq!(t("opc.tcp://[::1]").url(), "opc.tcp://[::1]:4840");
    }

    #[test]
    fn errors_name_the_problem() {
        for (text, needle) in [
            ("192.0.2.1", "no scheme"),
            ("http://x", "unknown scheme `http`"),
            ("modbus://", "host is missing"),
            ("modbus://h:0", "port `0`"),
            ("modbus://h:99999", "port `99999`"),
            ("modbus://h/300", "unit `300`"),
            ("modbus://::1", "brackets"),
            ("modbus://[::1", "closing"),
            ("rtu://?baud=9600", "device path"),
            ("rtu:///dev/x?baud=fast", "baud `fast`"),
            ("rtu:///dev/x?frame=9X1", "frame `9X1`"),
            ("rtu:///dev/x?speed=1", "unknown option `speed`"),
        ] {
            let e = text.parse::<Target>().unwrap_err().to_string();
            assert!(e.contains(needle), "{text}: {e}");
            assert!(
                e.contains("modbus://"),
                "{text}: the message shows examples: {e}"
            );
        }
    }

    proptest! {
        #[test]
        fn url_round_trip(a in 0u8..=255, b in 0u8..=255, port in 1u16.., unit in 0u8..=255, v6 in any::<bool>()) {
            let host = if v6 { format!("fd00::{a:x}{b:02x}") } else { format!("10.0.{a}.{b}") };
            let target = Target::ModbusTcp { host, port, unit };
            prop_assert_eq!(target.url().parse::<Target>().unwrap(), target.clone());
            let rtu = Target::RtuOverTcp { host: "gw".into(), port, unit };
            prop_assert_eq!(rtu.url().parse::<Target>().unwrap(), rtu.clone());
        }

        #[test]
        fn never_panics(s in "\\PC{0,40}") {
            let _ = s.parse::<Target>();
        }
    }
}
