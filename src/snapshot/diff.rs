//! The diff of a snapshot against a known-good baseline (pure: no I/O).
//!
//! Per point: `unchanged` (|current − baseline| ≤ tolerance; equal to the tolerance is
//! unchanged), `changed`, `missing` (in the baseline only), `new` (in the current only),
//! `unreadable` (the current read failed), `type-changed`, and `ignored` for volatile points
//! (counters, timers). A changed device identity (e.g. firmware revision) comes first.
//!
//! Verdicts map to exit codes (docs/DESIGN.md §6): drift on a `severity = "warning"` point is a
//! WARNING; drift on any other point, a type change, an identity change or an exception on a
//! point is CRITICAL; a point that could not be read for a link reason, or a missing or new
//! point, is a WARNING.

use std::collections::{BTreeMap, HashMap};

use compact_str::CompactString;
use serde::Serialize;
use serde_json::Value as Json;

use super::{SnapPoint, Snapshot};
use crate::{outcome::Outcome, profile::Severity};

/// What happened to one point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Beyond tolerance.
    Changed,
    /// Type differs between the two.
    TypeChanged,
    /// Could not be read now.
    Unreadable,
    /// In the baseline, not in the current.
    Missing,
    /// In the current, not in the baseline.
    New,
    /// Within tolerance.
    Unchanged,
    /// Volatile: left out.
    Ignored,
}

impl Verdict {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Changed => "changed",
            Verdict::TypeChanged => "type-changed",
            Verdict::Unreadable => "unreadable",
            Verdict::Missing => "missing",
            Verdict::New => "new",
            Verdict::Unchanged => "unchanged",
            Verdict::Ignored => "ignored",
        }
    }
}

/// One row of a diff.
#[derive(Debug, Clone, Serialize)]
pub struct DiffRow {
    /// Verdict.
    pub verdict: Verdict,
    /// Point name.
    pub name: CompactString,
    /// Address.
    pub address: CompactString,
    /// Baseline value.
    pub baseline: Json,
    /// Current value.
    pub current: Json,
    /// current − baseline, for numbers.
    pub delta: Option<f64>,
    /// |delta| / |baseline|, for numbers.
    pub relative: Option<f64>,
    /// Allowed drift.
    pub tolerance: Option<f64>,
    /// Unit.
    pub unit: CompactString,
    /// Severity.
    pub severity: Severity,
    /// Status or explanation.
    pub note: CompactString,
}

/// A whole diff.
#[derive(Debug, Clone, Serialize)]
pub struct DiffReport {
    /// Baseline target and time.
    pub baseline_target: String,
    /// When the baseline was taken.
    pub baseline_taken_at: String,
    /// When the current values were taken.
    pub current_taken_at: String,
    /// Identity fields that differ: name → (baseline, current).
    pub identity_changes: BTreeMap<String, (Option<String>, Option<String>)>,
    /// The two were taken with different profiles.
    pub profile_mismatch: bool,
    /// Rows needing a look (all points with `diff_with(…, true)`), grouped by verdict, biggest
    /// relative change first.
    pub rows: Vec<DiffRow>,
    /// Count per verdict.
    pub counts: BTreeMap<&'static str, usize>,
}

fn approx_within(delta: f64, tol: f64, a: f64, b: f64) -> bool {
    // Equal to the tolerance is unchanged; allow for the last bits of float arithmetic.
    delta.abs() <= tol + 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// The verdict on one point, with the delta for numbers and a note; no allocation for the
/// common case (unchanged), so a 100,000-point device diffs quickly.
fn judge(b: &SnapPoint, c: &SnapPoint) -> (Verdict, Option<f64>, Option<f64>, Option<String>) {
    if b.volatile {
        return (Verdict::Ignored, None, None, None);
    }
    if b.ty != c.ty {
        return (
            Verdict::TypeChanged,
            None,
            None,
            Some(format!("{} → {}", b.ty, c.ty)),
        );
    }
    if !c.ok() {
        return (Verdict::Unreadable, None, None, Some(c.status.to_string()));
    }
    if !b.ok() {
        // Unreadable in the baseline, readable now: worth a look, not drift.
        return (
            Verdict::Changed,
            None,
            None,
            Some(format!("baseline was {}", b.status)),
        );
    }
    match (b.number(), c.number()) {
        (Some(x), Some(y)) if !b.value.is_boolean() => {
            let d = y - x;
            let rel = if x == 0.0 {
                if d == 0.0 {
                    0.0
                } else {
                    f64::INFINITY
                }
            } else {
                (d / x).abs()
            };
            let verdict = if approx_within(d, b.tolerance.unwrap_or(0.0), x, y) {
                Verdict::Unchanged
            } else {
                Verdict::Changed
            };
            (verdict, Some(d), Some(rel), None)
        }
        _ => (
            if b.value == c.value {
                Verdict::Unchanged
            } else {
                Verdict::Changed
            },
            None,
            None,
            None,
        ),
    }
}

fn row(
    p: &SnapPoint,
    verdict: Verdict,
    baseline: Json,
    current: Json,
    delta: Option<f64>,
    relative: Option<f64>,
    note: Option<String>,
) -> DiffRow {
    DiffRow {
        verdict,
        name: p.name.clone(),
        address: p.address.clone(),
        baseline,
        current,
        delta,
        relative,
        tolerance: p.tolerance,
        unit: p.unit.clone(),
        severity: p.severity,
        note: note.map(Into::into).unwrap_or_default(),
    }
}

/// Diff `current` against `baseline`: the rows are the points that need a look (changed,
/// type-changed, unreadable, missing, new); unchanged and ignored points are only counted.
pub fn diff(baseline: &Snapshot, current: &Snapshot) -> DiffReport {
    diff_with(baseline, current, false)
}

/// Like [`diff`], with a row for every point when `all` is set.
pub fn diff_with(baseline: &Snapshot, current: &Snapshot, all: bool) -> DiffReport {
    let mut identity_changes = BTreeMap::new();
    if let (Some(bi), Some(ci)) = (&baseline.identity, &current.identity) {
        for k in bi.keys().chain(ci.keys()) {
            let (x, y) = (bi.get(k), ci.get(k));
            if x != y {
                identity_changes.insert(k.clone(), (x.cloned(), y.cloned()));
            }
        }
    } else if baseline.identity.is_some() != current.identity.is_some() {
        identity_changes.insert(
            "identity".into(),
            (
                Some(baseline.identity_status.clone()),
                Some(current.identity_status.clone()),
            ),
        );
    }
    // Snapshots of one profile list the same points in the same order: pair them by position
    // and skip the name index; fall back to it when the two differ.
    let same_order = baseline.points.len() == current.points.len()
        && baseline
            .points
            .iter()
            .zip(&current.points)
            .all(|(b, c)| b.name == c.name);
    let cur: HashMap<&str, &SnapPoint> = if same_order {
        HashMap::new()
    } else {
        current
            .points
            .iter()
            .map(|p| (p.name.as_str(), p))
            .collect()
    };
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut rows: Vec<DiffRow> = Vec::new();
    let mut keep = |verdict: Verdict, make: &mut dyn FnMut() -> DiffRow| {
        *counts.entry(verdict.name()).or_insert(0) += 1;
        if all || !matches!(verdict, Verdict::Unchanged | Verdict::Ignored) {
            rows.push(make());
        }
    };
    for (i, b) in baseline.points.iter().enumerate() {
        let found = if same_order {
            Some(&current.points[i])
        } else {
            cur.get(b.name.as_str()).copied()
        };
        if let Some(c) = found {
            let (verdict, delta, rel, note) = judge(b, c);
            let mut note = note;
            keep(verdict, &mut || {
                row(
                    b,
                    verdict,
                    b.value.clone(),
                    c.value.clone(),
                    delta,
                    rel,
                    note.take(),
                )
            });
        } else {
            let verdict = if b.volatile {
                Verdict::Ignored
            } else {
                Verdict::Missing
            };
            keep(verdict, &mut || {
                row(
                    b,
                    verdict,
                    b.value.clone(),
                    Json::Null,
                    None,
                    None,
                    Some("not in the current snapshot".into()),
                )
            });
        }
    }
    let base: std::collections::HashSet<&str> = if same_order {
        std::collections::HashSet::new()
    } else {
        baseline.points.iter().map(|p| p.name.as_str()).collect()
    };
    for c in current
        .points
        .iter()
        .filter(|c| !same_order && !base.contains(c.name.as_str()))
    {
        keep(Verdict::New, &mut || {
            row(
                c,
                Verdict::New,
                Json::Null,
                c.value.clone(),
                None,
                None,
                Some("not in the baseline".into()),
            )
        });
    }
    // Group by verdict (a stable bucket pass keeps baseline order inside a group); only the
    // changed points are sorted, biggest relative change first, then by name.
    let mut buckets: [Vec<DiffRow>; 7] = Default::default();
    for r in rows {
        buckets[r.verdict as usize].push(r);
    }
    buckets[Verdict::Changed as usize].sort_by(|a, b| {
        b.relative
            .unwrap_or(0.0)
            .total_cmp(&a.relative.unwrap_or(0.0))
            .then(a.name.cmp(&b.name))
    });
    let rows: Vec<DiffRow> = buckets.into_iter().flatten().collect();
    DiffReport {
        baseline_target: baseline.target.clone(),
        baseline_taken_at: baseline.taken_at.clone(),
        current_taken_at: current.taken_at.clone(),
        identity_changes,
        profile_mismatch: baseline.profile.sha256 != current.profile.sha256,
        rows,
        counts,
    }
}

impl DiffReport {
    /// The verdict as an exit outcome (module documentation).
    pub fn outcome(&self) -> Outcome {
        let mut o = if self.identity_changes.is_empty() {
            Outcome::Ok
        } else {
            Outcome::Critical
        };
        for r in &self.rows {
            let this = match r.verdict {
                Verdict::Changed => r.severity.outcome(),
                Verdict::TypeChanged => Outcome::Critical,
                Verdict::Unreadable if r.note.starts_with("0x") => Outcome::Critical,
                Verdict::Unreadable | Verdict::Missing | Verdict::New => Outcome::Warning,
                Verdict::Unchanged | Verdict::Ignored => Outcome::Ok,
            };
            o = o.worst(this);
        }
        o
    }

    /// Rows that are not unchanged/ignored.
    pub fn problems(&self) -> impl Iterator<Item = &DiffRow> {
        self.rows
            .iter()
            .filter(|r| !matches!(r.verdict, Verdict::Unchanged | Verdict::Ignored))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{ProfileRef, FORMAT};
    use serde_json::json;

    fn point(name: &str, value: Json, tol: Option<f64>) -> SnapPoint {
        SnapPoint {
            name: name.into(),
            address: "hr:0".into(),
            modicon: "40001".into(),
            ty: "f32".into(),
            order: "abcd".into(),
            scale: 1.0,
            offset: 0.0,
            raw: vec![0, 0],
            value,
            unit: CompactString::default(),
            status: "ok".into(),
            tolerance: tol,
            range: None,
            volatile: false,
            severity: Severity::Critical,
        }
    }

    fn snap(points: Vec<SnapPoint>) -> Snapshot {
        Snapshot {
            format: FORMAT.into(),
            taken_at: "2026-01-01T00:00:00Z".into(),
            tool_version: "0".into(),
            target: "modbus://127.0.0.1:502/1".into(),
            identity: Some([("revision".to_string(), "1.0".to_string())].into()),
            identity_status: "ok".into(),
            profile: ProfileRef {
                name: "p".into(),
                sha256: "aa".into(),
                path: String::new(),
            },
            points,
        }
    }

    /// Each listed point's verdict, by name.
    fn verdicts(d: &DiffReport) -> HashMap<&str, Verdict> {
        d.rows
            .iter()
            .map(|r| (r.name.as_str(), r.verdict))
            .collect()
    }

    #[test]
    fn tolerance_edges() {
        let b = snap(vec![
            point("eq", json!(10.0), Some(0.5)),
            point("over", json!(10.0), Some(0.5)),
            point("zero", json!(3), None),
        ]);
        let c = snap(vec![
            point("eq", json!(10.5), Some(0.5)),
            point("over", json!(10.51), Some(0.5)),
            point("zero", json!(3), None),
        ]);
        let d = diff_with(&b, &c, true);
        let v = verdicts(&d);
        assert_eq!(
            v["eq"],
            Verdict::Unchanged,
            "equal to tolerance is unchanged"
        );
        assert_eq!(v["over"], Verdict::Changed);
        assert_eq!(v["zero"], Verdict::Unchanged);
        assert_eq!(d.outcome(), Outcome::Critical);
        // 0.1 + 0.2 style float noise at the edge stays unchanged.
        let b = snap(vec![point("f", json!(0.1), Some(0.2))]);
        let c = snap(vec![point("f", json!(0.1 + 0.2), Some(0.2))]);
        assert_eq!(diff_with(&b, &c, true).rows[0].verdict, Verdict::Unchanged);
        assert!(
            diff(&b, &c).rows.is_empty(),
            "unchanged points are counted, not listed"
        );
        assert_eq!(diff(&b, &c).counts["unchanged"], 1);
    }

    #[test]
    fn every_verdict_and_its_outcome() {
        let mut vol = point("counter", json!(1), None);
        vol.volatile = true;
        let mut warn = point("soft", json!(1.0), Some(0.1));
        warn.severity = Severity::Warning;
        let b = snap(vec![
            vol.clone(),
            warn.clone(),
            point("gone", json!(1), None),
            point("t", json!(1), None),
            point("r", json!(1), None),
        ]);
        let mut vol2 = vol;
        vol2.value = json!(999);
        let mut warn2 = warn;
        warn2.value = json!(2.0);
        let mut t2 = point("t", json!(1), None);
        t2.ty = "u16".into();
        let mut r2 = point("r", Json::Null, None);
        r2.status = "timeout".into();
        let c = snap(vec![vol2, warn2, t2, r2, point("fresh", json!(5), None)]);
        let d = diff_with(&b, &c, true);
        let v = verdicts(&d);
        assert_eq!(v["counter"], Verdict::Ignored);
        assert_eq!(v["soft"], Verdict::Changed);
        assert_eq!(v["gone"], Verdict::Missing);
        assert_eq!(v["t"], Verdict::TypeChanged);
        assert_eq!(v["r"], Verdict::Unreadable);
        assert_eq!(v["fresh"], Verdict::New);
        assert_eq!(d.outcome(), Outcome::Critical, "type change is critical");
        // Only the warning-severity drift: WARNING.
        let b = snap(vec![point("a", json!(1.0), Some(0.1))]);
        let mut c = b.clone();
        c.points[0].severity = Severity::Warning;
        let mut b2 = b.clone();
        b2.points[0].severity = Severity::Warning;
        c.points[0].value = json!(5.0);
        assert_eq!(diff(&b2, &c).outcome(), Outcome::Warning);
    }

    #[test]
    fn identity_change_first_and_critical() {
        let b = snap(vec![point("a", json!(1.0), None)]);
        let mut c = b.clone();
        c.identity = Some([("revision".to_string(), "2.0".to_string())].into());
        let d = diff_with(&b, &c, true);
        assert_eq!(
            d.identity_changes["revision"],
            (Some("1.0".into()), Some("2.0".into()))
        );
        assert_eq!(d.outcome(), Outcome::Critical);
        assert!(!d.profile_mismatch);
    }

    #[test]
    fn biggest_relative_change_first() {
        let b = snap(vec![
            point("small", json!(100.0), None),
            point("big", json!(1.0), None),
            point("mid", json!(10.0), None),
        ]);
        let c = snap(vec![
            point("small", json!(101.0), None),
            point("big", json!(3.0), None),
            point("mid", json!(12.0), None),
        ]);
        let names: Vec<_> = diff(&b, &c).rows.iter().map(|r| r.name.clone()).collect();
        assert_eq!(names, vec!["big", "mid", "small"]);
    }
}
