//! Snapshots (docs/DESIGN.md §5): every point of a profile read once, with the device identity, in
//! `plcprobe.snapshot/1` JSON. A snapshot carries each point's full specification (address,
//! type, order, scale, tolerance, …) so that `diff BASELINE TARGET` can re-read exactly the
//! baseline's points without the profile at hand.

pub mod diff;

use std::{collections::BTreeMap, path::Path};

use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use crate::{
    profile::{Profile, Severity},
    proto::modbus::AddressRange,
    target::Target,
};

/// The format tag every snapshot carries.
pub const FORMAT: &str = "plcprobe.snapshot/1";

/// FC43 object IDs and the names snapshots use for them (§6.21, table "Object Id").
pub use crate::proto::modbus::DEVICE_ID_OBJECTS as IDENTITY_NAMES;

/// A snapshot file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Snapshot {
    /// Always [`FORMAT`].
    pub format: String,
    /// RFC 3339 UTC.
    pub taken_at: String,
    /// plcprobe version that took it.
    pub tool_version: String,
    /// Target URL.
    pub target: String,
    /// FC43 objects by name; `None` when the device does not answer FC43.
    pub identity: Option<BTreeMap<String, String>>,
    /// "ok", or why the identity is not available.
    #[serde(default)]
    pub identity_status: String,
    /// Which profile the points came from.
    pub profile: ProfileRef,
    /// Every point, in profile order.
    pub points: Vec<SnapPoint>,
}

/// The profile a snapshot was taken with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProfileRef {
    /// `[device] name`.
    pub name: String,
    /// SHA-256 of the profile file's bytes.
    pub sha256: String,
    /// Where it was loaded from.
    #[serde(default)]
    pub path: String,
}

impl ProfileRef {
    /// The reference to `p`, whose SHA-256 the caller already has.
    pub fn of(p: &Profile, sha256: String) -> ProfileRef {
        ProfileRef {
            name: p.device.name.clone(),
            sha256,
            path: p.source.clone(),
        }
    }
}

/// One point: its specification and what was read.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SnapPoint {
    /// Point name.
    pub name: CompactString,
    /// First PDU address, e.g. `hr:100`.
    pub address: CompactString,
    /// Modicon reference of the first address.
    #[serde(default)]
    pub modicon: CompactString,
    /// Data type.
    #[serde(rename = "type")]
    pub ty: CompactString,
    /// Word order (left out of the file when `abcd`).
    #[serde(default = "default_order", skip_serializing_if = "is_default_order")]
    pub order: CompactString,
    /// Scale (left out when 1).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub scale: f64,
    /// Offset (left out when 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub offset: f64,
    /// Raw registers (bits as 0/1); empty when unreadable.
    #[serde(default)]
    pub raw: Vec<u16>,
    /// Decoded, scaled value; null when unreadable.
    pub value: Json,
    /// Engineering unit.
    #[serde(default)]
    pub unit: CompactString,
    /// "ok", an exception (`0x02 Illegal Data Address`) or a link error kind.
    pub status: CompactString,
    /// Allowed drift.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<f64>,
    /// Plausible range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<[f64; 2]>,
    /// Left out of diffs.
    #[serde(default, skip_serializing_if = "is_false")]
    pub volatile: bool,
    /// Severity of a violation (left out when critical).
    #[serde(default = "critical", skip_serializing_if = "is_critical")]
    pub severity: Severity,
}

fn default_order() -> CompactString {
    CompactString::const_new("abcd")
}
fn one() -> f64 {
    1.0
}
fn critical() -> Severity {
    Severity::Critical
}
// Defaults are left out of snapshot files: a baseline shows what is particular about a point.
fn is_default_order(o: &CompactString) -> bool {
    o == "abcd"
}
#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_one(v: &f64) -> bool {
    *v == 1.0
}
#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(v: &f64) -> bool {
    *v == 0.0
}
#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_false(v: &bool) -> bool {
    !*v
}
#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_critical(s: &Severity) -> bool {
    *s == Severity::Critical
}

/// SHA-256 of a profile's text, hex.
pub fn profile_sha256(p: &Profile) -> String {
    let d = Sha256::digest(p.text.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

impl SnapPoint {
    /// Numeric view of the value.
    pub fn number(&self) -> Option<f64> {
        self.value.as_f64()
    }

    /// True when the read succeeded.
    pub fn ok(&self) -> bool {
        self.status == "ok"
    }
}

impl Snapshot {
    /// Load and check a snapshot file; errors name the file (and line for JSON errors) and say
    /// how to make a snapshot. Parses straight into the typed model; only a file that does not
    /// fit it is parsed a second time, loosely, to say what is wrong with it.
    pub fn load(path: &Path) -> anyhow::Result<Snapshot> {
        let bytes = std::fs::read(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                anyhow::anyhow!("baseline {} does not exist; create it with `plcprobe snapshot TARGET --profile PROFILE -o {}` while the machine runs as it should", path.display(), path.display())
            } else {
                anyhow::anyhow!("cannot read {}: {e}", path.display())
            }
        })?;
        // One UTF-8 check of the whole file (SIMD-fast), then a &str parse that does not check
        // every string again: 8 % of a 100,000-point diff went to per-string checks.
        let text = std::str::from_utf8(&bytes).map_err(|e| {
            anyhow::anyhow!(
                "{}: not UTF-8 text at byte {}; a snapshot is a JSON file written by `plcprobe snapshot`",
                path.display(),
                e.valid_up_to()
            )
        })?;
        let s: Snapshot = match serde_json::from_str(text) {
            Ok(s) => s,
            Err(typed) => {
                let v: Json = serde_json::from_slice(&bytes).map_err(|e| {
                    anyhow::anyhow!(
                        "{}:{}:{}: not valid JSON: {e}",
                        path.display(),
                        e.line(),
                        e.column()
                    )
                })?;
                match v.get("format").and_then(Json::as_str) {
                    Some(FORMAT) => anyhow::bail!("{}:{}:{}: {typed}", path.display(), typed.line(), typed.column()),
                    Some(other) => anyhow::bail!("{}: format `{other}` is not {FORMAT}; this plcprobe reads {FORMAT} snapshots", path.display()),
                    None => anyhow::bail!("{} is not a plcprobe snapshot (no \"format\": \"{FORMAT}\"); create one with `plcprobe snapshot`", path.display()),
                }
            }
        };
        if s.format != FORMAT {
            anyhow::bail!(
                "{}: format `{}` is not {FORMAT}; this plcprobe reads {FORMAT} snapshots",
                path.display(),
                s.format
            );
        }
        Ok(s)
    }

    /// Load a baseline and a current snapshot for a file-against-file diff without parsing the
    /// points whose lines are byte-identical in both files (plcprobe writes one point per line,
    /// in profile order): those are unchanged (or ignored when volatile) whatever their content,
    /// so they are only counted. Returns the two snapshots holding just the points that differ,
    /// and the counts of the others by verdict name. `None` when a file is not in that layout
    /// (hand-edited, other point order) or does not parse this way: then load both fully, which
    /// also gives the precise error.
    pub fn load_pair_differing(
        base: &Path,
        cur: &Path,
    ) -> Option<(Snapshot, Snapshot, BTreeMap<&'static str, usize>)> {
        use std::io::BufRead as _;
        // Both files are streamed in step, line by line, through small buffers: only the
        // header and the lines that differ are kept.
        let open = |p: &Path| {
            std::fs::File::open(p)
                .ok()
                .map(|f| std::io::BufReader::with_capacity(1 << 20, f))
        };
        let (mut rb, mut rc) = (open(base)?, open(cur)?);
        let (mut bh, mut ch) = (point_head(&mut rb)?, point_head(&mut rc)?);
        let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
        let ok = memchr::memmem::Finder::new(b"\"status\":\"ok\"");
        let volatile = memchr::memmem::Finder::new(b"\"volatile\":true");
        let (mut lb, mut lc) = (Vec::with_capacity(512), Vec::with_capacity(512));
        let (mut nb, mut nc) = (0usize, 0usize);
        loop {
            lb.clear();
            lc.clear();
            rb.read_until(b'\n', &mut lb).ok()?;
            rc.read_until(b'\n', &mut lc).ok()?;
            let (x, y) = (point_line(&lb), point_line(&lc));
            match (x, y) {
                (Some(Line::End), Some(Line::End)) => break,
                (Some(Line::Point(x)), Some(Line::Point(y))) => {
                    if x == y && ok.find(x).is_some() {
                        let v = if volatile.find(x).is_some() {
                            "ignored"
                        } else {
                            "unchanged"
                        };
                        *counts.entry(v).or_insert(0) += 1;
                    } else {
                        for (head, n, line) in [(&mut bh, &mut nb, x), (&mut ch, &mut nc, y)] {
                            if *n > 0 {
                                head.push(b',');
                            }
                            head.extend_from_slice(line);
                            *n += 1;
                        }
                    }
                }
                _ => return None,
            }
        }
        let parse = |mut text: Vec<u8>| -> Option<Snapshot> {
            text.extend_from_slice(b"]}");
            let s: Snapshot = serde_json::from_str(std::str::from_utf8(&text).ok()?).ok()?;
            (s.format == FORMAT).then_some(s)
        };
        Some((parse(bh)?, parse(ch)?, counts))
    }

    /// Write atomically: the header pretty-printed, then one point per line, so a baseline is
    /// easy to read, diffs line by line in version control, and stays small for big devices.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        crate::fsutil::write_atomic(path, &self.to_bytes()?)
    }

    /// The file form written by [`Snapshot::save`].
    pub fn to_bytes(&self) -> anyhow::Result<Vec<u8>> {
        use std::io::Write as _;
        #[derive(Serialize)]
        struct Head<'a> {
            format: &'a str,
            taken_at: &'a str,
            tool_version: &'a str,
            target: &'a str,
            identity: &'a Option<BTreeMap<String, String>>,
            identity_status: &'a str,
            profile: &'a ProfileRef,
        }
        let head = serde_json::to_vec_pretty(&Head {
            format: &self.format,
            taken_at: &self.taken_at,
            tool_version: &self.tool_version,
            target: &self.target,
            identity: &self.identity,
            identity_status: &self.identity_status,
            profile: &self.profile,
        })?;
        let mut out = Vec::with_capacity(head.len() + 256 * self.points.len());
        out.extend_from_slice(&head[..head.len() - 2]); // drop the closing "\n}"
        out.extend_from_slice(b",\n  \"points\": [");
        for (i, p) in self.points.iter().enumerate() {
            out.extend_from_slice(if i == 0 { b"\n    " } else { b",\n    " });
            serde_json::to_writer(&mut out, p)?;
        }
        writeln!(
            out,
            "{}]\n}}",
            if self.points.is_empty() { "" } else { "\n  " }
        )?;
        Ok(out)
    }

    /// Point specifications of a profile (values empty), in profile order.
    pub fn specs_from_profile(p: &Profile) -> Vec<SnapPoint> {
        p.points
            .iter()
            .filter_map(|pt| {
                let a = pt.address?;
                Some(SnapPoint {
                    name: pt.name.as_str().into(),
                    address: AddressRange::single(a.table, a.start).to_string().into(),
                    modicon: a.modicon().into(),
                    ty: pt.ty.to_string().into(),
                    order: pt.order.to_string().into(),
                    scale: pt.scale,
                    offset: pt.offset,
                    raw: vec![],
                    value: Json::Null,
                    unit: pt.unit.as_str().into(),
                    status: CompactString::default(),
                    tolerance: pt.tolerance,
                    range: pt.range.map(|(a, b)| [a, b]),
                    volatile: pt.volatile,
                    severity: pt.severity,
                })
            })
            .collect()
    }
}

/// The target a snapshot names.
pub fn snapshot_target(s: &Snapshot) -> anyhow::Result<Target> {
    s.target.parse::<Target>().map_err(Into::into)
}

/// The header of a snapshot in [`Snapshot::to_bytes`] layout, read up to its points line and
/// returned as JSON text ending in `"points": [`.
fn point_head(r: &mut impl std::io::BufRead) -> Option<Vec<u8>> {
    let mut head = Vec::with_capacity(1024);
    loop {
        let at = head.len();
        if r.read_until(b'\n', &mut head).ok()? == 0 {
            return None;
        }
        if head[at..] == *b"  \"points\": [\n" {
            head.truncate(head.len() - 1);
            return Some(head);
        }
        if head.len() > 1 << 20 {
            return None;
        }
    }
}

/// One line of the points array.
enum Line<'a> {
    /// A point object, without its indent and comma.
    Point(&'a [u8]),
    /// The closing `  ]`.
    End,
}

fn point_line(line: &[u8]) -> Option<Line<'_>> {
    let t = line.strip_suffix(b"\n")?;
    if t == b"  ]" {
        return Some(Line::End);
    }
    let t = t.strip_prefix(b"    ")?;
    let t = t.strip_suffix(b",").unwrap_or(t);
    (t.first() == Some(&b'{') && t.last() == Some(&b'}')).then_some(Line::Point(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_lines_follow_the_written_layout() {
        let text =
            b"{\n  \"format\": \"x\",\n  \"points\": [\n    {\"a\":1},\n    {\"a\":2}\n  ]\n}\n";
        let mut r = &text[..];
        let head = point_head(&mut r).unwrap();
        assert!(head.ends_with(b"\"points\": ["));
        let mut line = Vec::new();
        std::io::BufRead::read_until(&mut r, b'\n', &mut line).unwrap();
        assert!(matches!(point_line(&line), Some(Line::Point(b"{\"a\":1}"))));
        assert!(matches!(point_line(b"  ]\n"), Some(Line::End)));
        assert!(point_line(b"{\"a\":1}").is_none());
        assert!(point_head(&mut &b"{\"points\":[{\"a\":1}]}"[..]).is_none());
    }
}
