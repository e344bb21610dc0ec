//! The diff of a snapshot against a known-good baseline (pure: no I/O).
//!
//! Per point: `unchanged` (|current − baseline| ≤ tolerance; equal to the tolerance is
//! unchanged), `changed`, `missing` (in the baseline only), `new` (in the current only),
//! `unreadable` (the current read failed), `type-changed`, and `ignored` for volatile points
//! (counters, timers). A changed device identity (e.g. firmware revision) comes first.
//!
//! Verdicts map to exit codes (DESIGN.md §6): drift on a `severity = "warning"` point is a
//! WARNING; drift on any other point, a type change, an identity change or an exception on a
//! point is CRITICAL; a point that could not be read for a link reason, or a missing or new
//! point, is a WARNING.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::Value as Json;

use super::{SnapPoint, Snapshot};
use crate::{cmd::Outcome, profile::Severity};

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
    pub name: String,
    /// Address.
    pub address: String,
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
    pub unit: String,
    /// Severity.
    pub severity: Severity,
    /// Status or explanation.
    pub note: String,
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
    /// Rows, grouped by verdict, biggest relative change first.
    pub rows: Vec<DiffRow>,
    /// Count per verdict.
    pub counts: BTreeMap<&'static str, usize>,
}

fn approx_within(delta: f64, tol: f64, a: f64, b: f64) -> bool {
    // Equal to the tolerance is unchanged; allow for the last bits of float arithmetic.
    delta.abs() <= tol + 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn compare(b: &SnapPoint, c: &SnapPoint) -> DiffRow {
    let mut row = DiffRow {
        verdict: Verdict::Unchanged,
        name: b.name.clone(),
        address: b.address.clone(),
        baseline: b.value.clone(),
        current: c.value.clone(),
        delta: None,
        relative: None,
        tolerance: b.tolerance,
        unit: b.unit.clone(),
        severity: b.severity,
        note: String::new(),
    };
    if b.volatile {
        row.verdict = Verdict::Ignored;
        row.note = "volatile".into();
        return row;
    }
    if b.ty != c.ty {
        row.verdict = Verdict::TypeChanged;
        row.note = format!("{} → {}", b.ty, c.ty);
        return row;
    }
    if !c.ok() {
        row.verdict = Verdict::Unreadable;
        row.note.clone_from(&c.status);
        return row;
    }
    if !b.ok() {
        // Unreadable in the baseline, readable now: worth a look, not drift.
        row.verdict = Verdict::Changed;
        row.note = format!("baseline was {}", b.status);
        return row;
    }
    match (b.number(), c.number()) {
        (Some(x), Some(y)) if !b.value.is_boolean() => {
            let d = y - x;
            row.delta = Some(d);
            row.relative = Some(if x == 0.0 {
                if d == 0.0 {
                    0.0
                } else {
                    f64::INFINITY
                }
            } else {
                (d / x).abs()
            });
            let tol = b.tolerance.unwrap_or(0.0);
            if !approx_within(d, tol, x, y) {
                row.verdict = Verdict::Changed;
            }
        }
        _ => {
            if b.value != c.value {
                row.verdict = Verdict::Changed;
            }
        }
    }
    row
}

/// Diff `current` against `baseline`.
pub fn diff(baseline: &Snapshot, current: &Snapshot) -> DiffReport {
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
    let cur: HashMap<&str, &SnapPoint> = current
        .points
        .iter()
        .map(|p| (p.name.as_str(), p))
        .collect();
    let mut rows: Vec<DiffRow> = Vec::with_capacity(baseline.points.len());
    for b in &baseline.points {
        match cur.get(b.name.as_str()) {
            Some(c) => rows.push(compare(b, c)),
            None => rows.push(DiffRow {
                verdict: if b.volatile {
                    Verdict::Ignored
                } else {
                    Verdict::Missing
                },
                name: b.name.clone(),
                address: b.address.clone(),
                baseline: b.value.clone(),
                current: Json::Null,
                delta: None,
                relative: None,
                tolerance: b.tolerance,
                unit: b.unit.clone(),
                severity: b.severity,
                note: "not in the current snapshot".into(),
            }),
        }
    }
    let base: std::collections::HashSet<&str> =
        baseline.points.iter().map(|p| p.name.as_str()).collect();
    for c in current
        .points
        .iter()
        .filter(|c| !base.contains(c.name.as_str()))
    {
        rows.push(DiffRow {
            verdict: Verdict::New,
            name: c.name.clone(),
            address: c.address.clone(),
            baseline: Json::Null,
            current: c.value.clone(),
            delta: None,
            relative: None,
            tolerance: c.tolerance,
            unit: c.unit.clone(),
            severity: c.severity,
            note: "not in the baseline".into(),
        });
    }
    // Group by verdict; biggest relative change first inside a group; then by name.
    rows.sort_by(|a, b| {
        a.verdict
            .cmp(&b.verdict)
            .then(
                b.relative
                    .unwrap_or(0.0)
                    .total_cmp(&a.relative.unwrap_or(0.0)),
            )
            .then(a.name.cmp(&b.name))
    });
    let mut counts = BTreeMap::new();
    for r in &rows {
        *counts.entry(r.verdict.name()).or_insert(0) += 1;
    }
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
                Verdict::Changed => match r.severity {
                    Severity::Warning => Outcome::Warning,
                    Severity::Critical => Outcome::Critical,
                },
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
            unit: String::new(),
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
        let d = diff(&b, &c);
        let v: HashMap<_, _> = d
            .rows
            .iter()
            .map(|r| (r.name.as_str(), r.verdict))
            .collect();
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
        assert_eq!(diff(&b, &c).rows[0].verdict, Verdict::Unchanged);
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
        let d = diff(&b, &c);
        let v: HashMap<_, _> = d
            .rows
            .iter()
            .map(|r| (r.name.as_str(), r.verdict))
            .collect();
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
        let d = diff(&b, &c);
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
