//! Node references as users write them, on the command line or in a profile: a `NodeId` in any
//! standard string form (`i=`, `s=`, `g=`, `b=`, with `ns=` or `nsu=`) or a browse path
//! (`/Objects/2:Line1/Speed`).
//!
//! Pure: parsing and printing only, no I/O. Parsing never panics; what does not parse is an
//! `Err` naming the accepted forms. `Display` prints the form `FromStr` reads back. Resolving a
//! namespace URI or a browse path needs a session (`transport::opcua`).

use std::str::FromStr;

use opcua::types::Identifier;

/// A node given on the command line or in a profile: a `NodeId` in any standard form, or a browse
/// path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeRef {
    /// `i=`, `s=`, `g=`, `b=`, with `ns=` (index) or `nsu=` (namespace URI).
    Id {
        /// Namespace.
        ns: Ns,
        /// The identifier.
        id: Identifier,
    },
    /// `/Objects/2:Line1/Speed`: browse names from the Root folder; `N:` pins a namespace index,
    /// a bare name matches in any namespace.
    Path(Vec<(Option<u16>, String)>),
}

/// A namespace given by index or URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ns {
    /// `ns=N` (0 when absent).
    Index(u16),
    /// `nsu=URI`.
    Uri(String),
}

impl std::fmt::Display for NodeRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeRef::Id {
                ns: Ns::Index(0),
                id,
            } => write!(f, "{id}"),
            NodeRef::Id {
                ns: Ns::Index(n),
                id,
            } => write!(f, "ns={n};{id}"),
            NodeRef::Id { ns: Ns::Uri(u), id } => write!(f, "nsu={u};{id}"),
            NodeRef::Path(p) => {
                for (ns, name) in p {
                    match ns {
                        Some(n) => write!(f, "/{n}:{name}")?,
                        None => write!(f, "/{name}")?,
                    }
                }
                Ok(())
            }
        }
    }
}

impl FromStr for NodeRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        const HELP: &str = "NodeIds look like i=2258, ns=2;s=Line1.Speed, ns=3;g=09087e75-8e5e-499b-954f-f2a9603db28a, ns=1;b=M/RbKBsRVkePCePcx24oRA==, nsu=urn:plant;s=Speed; browse paths like /Objects/Server/ServerStatus or /Objects/2:Line1/2:Speed";
        let t = s.trim();
        if let Some(path) = t.strip_prefix('/') {
            let mut segs = Vec::new();
            for seg in path.split('/') {
                if seg.is_empty() {
                    return Err(format!("`{s}`: empty browse-path segment; {HELP}"));
                }
                let (ns, name) = match seg.split_once(':') {
                    Some((n, name)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                        (
                            Some(n.parse::<u16>().map_err(|_| {
                                format!("`{s}`: namespace index `{n}` is above 65535")
                            })?),
                            name,
                        )
                    }
                    _ => (None, seg),
                };
                segs.push((ns, name.to_string()));
            }
            return Ok(NodeRef::Path(segs));
        }
        let (ns, rest) = if let Some(r) = t.strip_prefix("nsu=") {
            let (u, rest) = r
                .split_once(';')
                .ok_or_else(|| format!("`{s}`: nsu= needs `;` and an identifier; {HELP}"))?;
            if u.is_empty() {
                return Err(format!("`{s}`: empty namespace URI; {HELP}"));
            }
            (Ns::Uri(u.replace("%3b", ";").replace("%25", "%")), rest)
        } else if let Some(r) = t.strip_prefix("ns=") {
            let (n, rest) = r
                .split_once(';')
                .ok_or_else(|| format!("`{s}`: ns= needs `;` and an identifier; {HELP}"))?;
            let n = n.parse::<u16>().map_err(|_| {
                format!("`{s}`: namespace index `{n}` is not a number from 0 to 65535; {HELP}")
            })?;
            (Ns::Index(n), rest)
        } else {
            (Ns::Index(0), t)
        };
        let ok_kind = rest.len() > 2 && matches!(rest.get(..2), Some("i=" | "s=" | "g=" | "b="));
        let id = if ok_kind {
            Identifier::from_str(rest).ok()
        } else {
            None
        };
        match id {
            Some(id) => Ok(NodeRef::Id { ns, id }),
            None => Err(format!("`{s}` is not a NodeId or browse path; {HELP}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn node_ref_forms() {
        let id = |s: &str| s.parse::<NodeRef>().unwrap();
        assert_eq!(
            id("i=2258"),
            NodeRef::Id {
                ns: Ns::Index(0),
                id: Identifier::Numeric(2258)
            }
        );
        assert_eq!(
            id("ns=2;s=Line1.Speed"),
            NodeRef::Id {
                ns: Ns::Index(2),
                id: Identifier::String("Line1.Speed".into())
            }
        );
        assert_eq!(
            id("nsu=urn:plant;s=a;b"),
            NodeRef::Id {
                ns: Ns::Uri("urn:plant".into()),
                id: Identifier::String("a;b".into())
            }
        );
        assert!(matches!(
            id("ns=3;g=09087e75-8e5e-499b-954f-f2a9603db28a"),
            NodeRef::Id {
                id: Identifier::Guid(_),
                ..
            }
        ));
        assert!(matches!(
            id("ns=1;b=M/RbKBsRVkePCePcx24oRA=="),
            NodeRef::Id {
                id: Identifier::ByteString(_),
                ..
            }
        ));
        assert_eq!(
            id("/Objects/2:Line1/Speed"),
            NodeRef::Path(vec![
                (None, "Objects".into()),
                (Some(2), "Line1".into()),
                (None, "Speed".into())
            ])
        );
        for bad in [
            "",
            "x=1",
            "ns=;i=1",
            "ns=70000;i=1",
            "ns=2",
            "nsu=;i=1",
            "i=abc",
            "g=nope",
            "//a",
            "/a//b",
            "s=",
        ] {
            assert!(bad.parse::<NodeRef>().is_err(), "{bad}");
        }
        assert_eq!(id("ns=2;s=Line1.Speed").to_string(), "ns=2;s=Line1.Speed");
        assert_eq!(id("/Objects/2:Line1").to_string(), "/Objects/2:Line1");
    }

    proptest! {
        #[test]
        fn node_refs_round_trip(ns in 0u16..5, n in any::<u32>(), s in "[A-Za-z0-9_.]{1,20}") {
            for text in [format!("ns={ns};i={n}"), format!("ns={ns};s={s}")] {
                let r: NodeRef = text.parse().unwrap();
                let back = if ns == 0 { text.trim_start_matches("ns=0;").to_string() } else { text.clone() };
                prop_assert_eq!(r.to_string(), back);
            }
        }

        #[test]
        fn node_ref_parser_never_panics(s in "\\PC{0,40}") {
            let _ = s.parse::<NodeRef>();
        }
    }
}
