//! What the two store backends share ([`super::sqlite`], [`super::postgres`]): the schema
//! version, the id cache of a writer, how a record's columns are encoded (JSON objects for
//! identity, errors and non-ok point statuses; the layout signature; packed values), and how the
//! rows read back become a [`History`] ([`RawHistory`]).

use std::collections::{BTreeMap, HashMap};

use super::{
    model::{DeviceLimits, DeviceSeries, History, PointSeries, Run, STATUS_ABSENT, STATUS_OK},
    record::PointRecord,
};

/// The schema version this plcprobe writes (docs/DESIGN.md §4c). Stores with a lower version
/// are migrated on open; a higher one is refused.
pub const SCHEMA_VERSION: i64 = 1;

/// The `application` value in `plcprobe_schema` that marks a plcprobe history store.
pub const APPLICATION: &str = "plcprobe history";

/// A history database that could not be reached (connection refused, timed out, lost while
/// recording; a SQLite file still locked after the busy timeout). `main` exits 3 for it like
/// any error; `check`, which must record, turns it into CRITICAL (exit 2) after its output.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unreachable(pub String);

/// Ids already looked up or inserted (names → ids never change once committed), so an import
/// of thousands of runs does not look each device and point up again. Cleared when a
/// transaction fails, as its ids were rolled back.
#[derive(Default)]
pub struct IdCache {
    /// Device name → id.
    pub devices: HashMap<String, i64>,
    /// (device id, name) → (point id, address, unit).
    pub points: HashMap<(i64, String), (i64, String, String)>,
    /// (device id, signature) → layout id.
    pub layouts: HashMap<(i64, String), i64>,
    /// (device id, objects JSON) → identity id.
    pub identities: HashMap<(i64, String), i64>,
}

/// Whether a run was added or was already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Written.
    Added,
    /// A run of the same plan started at the same time is already in the store: skipped.
    AlreadyThere,
}

/// The identity objects as stored (a JSON object, keys sorted).
pub fn identity_json(id: &BTreeMap<String, String>) -> String {
    serde_json::to_string(id).unwrap_or_default()
}

/// The errors-by-kind column: a JSON object, or None when there were no errors.
pub fn errors_json(e: &BTreeMap<String, u32>) -> Option<String> {
    (!e.is_empty()).then(|| serde_json::to_string(e).unwrap_or_default())
}

/// The point-status column: a JSON object of the points whose status is not "ok", by name;
/// None when every point is ok.
pub fn point_status_json(points: &[PointRecord]) -> Option<String> {
    let bad: BTreeMap<&str, &str> = points
        .iter()
        .filter(|p| p.status != "ok")
        .map(|p| (p.name.as_str(), p.status.as_str()))
        .collect();
    (!bad.is_empty()).then(|| serde_json::to_string(&bad).unwrap_or_default())
}

/// A layout's signature: its point ids and limits in order, so an unchanged plan reuses the
/// same layout run after run.
pub fn layout_signature(point_ids: &[i64], points: &[PointRecord]) -> String {
    let mut s = String::new();
    let f = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:?}"));
    for (id, p) in point_ids.iter().zip(points) {
        let (lo, hi) = p.range.map_or((None, None), |[a, b]| (Some(a), Some(b)));
        s.push_str(&format!(
            "{id}:{}:{}:{}:{};",
            f(lo),
            f(hi),
            f(p.baseline),
            f(p.tolerance)
        ));
    }
    s
}

/// f64 little endian, one after the other: the SQLite `point_values` blob.
pub fn pack_values(points: &[PointRecord]) -> Vec<u8> {
    let mut b = Vec::with_capacity(points.len() * 8);
    for p in points {
        b.extend_from_slice(&p.value.to_le_bytes());
    }
    b
}

/// Finite or NaN → Some / None for a nullable REAL column (SQLite stores NaN as NULL anyway).
pub fn opt(v: f64) -> Option<f64> {
    (!v.is_nan()).then_some(v)
}

/// One device's fields of one run, as a backend hands them to [`RawHistory`].
pub struct RawDeviceRun {
    /// Device id.
    pub device_id: i64,
    /// Run id.
    pub run_id: i64,
    /// Target URL.
    pub target: String,
    /// The device's verdict.
    pub status: String,
    /// Whether it answered.
    pub reachable: bool,
    /// Identity read, if any.
    pub identity_id: Option<i64>,
    /// Requests sent.
    pub sent: u32,
    /// Requests failed.
    pub failed: u32,
    /// Errors by kind (JSON object), if any.
    pub errors: Option<String>,
    /// Median round trip, ms.
    pub p50: Option<f64>,
    /// 95th percentile round trip, ms.
    pub p95: Option<f64>,
    /// Slowest round trip, ms.
    pub max: Option<f64>,
    /// Thresholds in force.
    pub limits: DeviceLimits,
    /// Layout of `point_values`.
    pub layout_id: i64,
    /// Non-ok point statuses by name (JSON object), if any.
    pub point_status: Option<String>,
}

/// One position of a layout.
#[derive(Clone)]
pub struct LayoutPoint {
    /// Point id.
    pub point_id: i64,
    /// Plausible range.
    pub range: Option<[f64; 2]>,
    /// Baseline value.
    pub baseline: Option<f64>,
    /// Drift tolerance.
    pub tolerance: Option<f64>,
}

/// What a backend reads, turned into a [`History`] by [`RawHistory::into_history`].
#[derive(Default)]
pub struct RawHistory {
    /// Runs of the window, oldest first.
    pub runs: Vec<Run>,
    /// Run id → index into `runs`.
    pub run_index: HashMap<i64, u32>,
    /// Device id → name.
    pub device_names: HashMap<i64, String>,
    /// Point id → (name, address, unit).
    pub points: HashMap<i64, (String, String, String)>,
    /// Layout id → its points in position order.
    pub layouts: HashMap<i64, Vec<LayoutPoint>>,
    /// Identity id → objects.
    pub identities: HashMap<i64, BTreeMap<String, String>>,
    /// Device id → its series under construction.
    pub series: BTreeMap<i64, SeriesBuilder>,
    /// Rows of one device not added yet, their values one after the other, and where each
    /// row's values end.
    pending: Vec<RawDeviceRun>,
    pending_values: Vec<f64>,
    pending_ends: Vec<usize>,
}

/// One device's series as rows arrive (any order of runs; sorted at the end).
#[derive(Default)]
pub struct SeriesBuilder {
    s: DeviceSeries,
    identity_ids: Vec<Option<i64>>,
    /// Point id → index into `s.points`.
    point_index: HashMap<i64, usize>,
    /// Layout id → series index of each position.
    slots: HashMap<i64, Vec<usize>>,
    last_layout: Option<i64>,
    sorted: bool,
    last_run: u32,
}

impl RawHistory {
    /// Add one device's row of one run: `values` in the layout's order. A device's rows are
    /// gathered and added together, so its vectors are sized once instead of doubling (both
    /// backends hand rows over device by device; any order is still right).
    pub fn push(&mut self, row: RawDeviceRun, values: &[f64]) {
        if self
            .pending
            .first()
            .is_some_and(|r| r.device_id != row.device_id)
        {
            self.flush();
        }
        self.pending.push(row);
        self.pending_values.extend_from_slice(values);
        self.pending_ends.push(self.pending_values.len());
    }

    /// An empty history that shares this one's runs, points and layouts: a second reader fills
    /// it with other devices, and [`RawHistory::absorb`] takes its series back.
    #[must_use]
    pub fn sibling(&self) -> RawHistory {
        RawHistory {
            run_index: self.run_index.clone(),
            points: self.points.clone(),
            layouts: self.layouts.clone(),
            ..RawHistory::default()
        }
    }

    /// Take the series of a [`RawHistory::sibling`] that read other devices than this one.
    pub fn absorb(&mut self, mut other: RawHistory) {
        self.flush();
        other.flush();
        for (id, b) in other.series {
            let had = self.series.insert(id, b);
            debug_assert!(had.is_none(), "the two readers read disjoint devices");
        }
    }

    /// Add the gathered rows of one device.
    fn flush(&mut self) {
        let rows = std::mem::take(&mut self.pending);
        let mut values = std::mem::take(&mut self.pending_values);
        let mut ends = std::mem::take(&mut self.pending_ends);
        let Some(first) = rows.first() else {
            return;
        };
        let n = rows.len();
        let b = self
            .series
            .entry(first.device_id)
            .or_insert_with(|| SeriesBuilder {
                sorted: true,
                ..SeriesBuilder::default()
            });
        for r in &rows {
            ensure_slots(b, r.layout_id, &self.layouts, &self.points);
        }
        let want = b.s.runs.len() + n;
        let s = &mut b.s;
        s.runs.reserve_exact(n);
        s.status.reserve_exact(n);
        s.reachable.reserve_exact(n);
        s.sent.reserve_exact(n);
        s.failed.reserve_exact(n);
        s.errors.reserve_exact(n);
        s.latency_p50_ms.reserve_exact(n);
        s.latency_p95_ms.reserve_exact(n);
        s.latency_max_ms.reserve_exact(n);
        b.identity_ids.reserve_exact(n);
        for p in &mut s.points {
            p.values.reserve_exact(want.saturating_sub(p.values.len()));
            p.status.reserve_exact(want.saturating_sub(p.status.len()));
        }
        let mut start = 0;
        for (row, &end) in rows.into_iter().zip(&ends) {
            self.apply(row, &values[start..end]);
            start = end;
        }
        values.clear();
        ends.clear();
        self.pending_values = values;
        self.pending_ends = ends;
    }

    /// Add one row to its device's series (the slots of its layout are known).
    fn apply(&mut self, row: RawDeviceRun, values: &[f64]) {
        let Some(&run) = self.run_index.get(&row.run_id) else {
            return;
        };
        let b = self
            .series
            .entry(row.device_id)
            .or_insert_with(|| SeriesBuilder {
                sorted: true,
                ..SeriesBuilder::default()
            });
        let s = &mut b.s;
        if !s.runs.is_empty() && run <= b.last_run {
            b.sorted = false;
        }
        b.last_run = run;
        let k = s.runs.len();
        s.runs.push(run);
        s.target = row.target;
        s.status.push(row.status);
        s.reachable.push(row.reachable);
        s.sent.push(row.sent);
        s.failed.push(row.failed);
        s.errors.push(
            row.errors
                .and_then(|e| serde_json::from_str(&e).ok())
                .unwrap_or_default(),
        );
        s.latency_p50_ms.push(row.p50.unwrap_or(f64::NAN));
        s.latency_p95_ms.push(row.p95.unwrap_or(f64::NAN));
        s.latency_max_ms.push(row.max.unwrap_or(f64::NAN));
        s.limits = row.limits;
        b.identity_ids.push(row.identity_id);
        let bad: BTreeMap<String, String> = row
            .point_status
            .and_then(|j| serde_json::from_str(&j).ok())
            .unwrap_or_default();
        let Some(layout) = self.layouts.get(&row.layout_id) else {
            return;
        };
        let Some(slots) = b.slots.get(&row.layout_id) else {
            return;
        };
        let limits_changed = b.last_layout != Some(row.layout_id);
        b.last_layout = Some(row.layout_id);
        for ((lp, &i), &v) in layout.iter().zip(slots).zip(values) {
            let p = &mut s.points[i];
            if p.values.len() < k {
                p.values.resize(k, f64::NAN);
                p.status.resize(k, STATUS_ABSENT);
            }
            p.values.push(v);
            let code = match bad.get(&p.name) {
                Some(why) => p.status_code(why),
                None => STATUS_OK,
            };
            p.status.push(code);
            if limits_changed {
                if lp.range.is_some() {
                    p.range = lp.range;
                }
                if lp.baseline.is_some() {
                    p.baseline = lp.baseline;
                    p.tolerance = lp.tolerance;
                }
            }
        }
    }

    /// The finished history: series in time order, padded, identities as changes.
    pub fn into_history(mut self) -> History {
        self.flush();
        let mut devices = Vec::with_capacity(self.series.len());
        let identities = self.identities;
        for (id, mut b) in self.series {
            let n = b.s.runs.len();
            for p in &mut b.s.points {
                p.values.resize(n, f64::NAN);
                p.status.resize(n, STATUS_ABSENT);
            }
            if !b.sorted {
                sort_series(&mut b);
            }
            let s = &mut b.s;
            s.name = self.device_names.get(&id).cloned().unwrap_or_default();
            let mut last = None;
            for (k, iid) in b.identity_ids.iter().enumerate() {
                if let Some(iid) = iid {
                    if last != Some(*iid) {
                        if let Some(objs) = identities.get(iid) {
                            s.identities.push((k as u32, objs.clone()));
                        }
                        last = Some(*iid);
                    }
                }
            }
            devices.push(b.s);
        }
        devices.sort_by(|a, b| a.name.cmp(&b.name));
        History {
            runs: self.runs,
            devices,
        }
    }
}

/// The series index of each position of `layout_id`, worked out once per layout (new points
/// get a series).
fn ensure_slots(
    b: &mut SeriesBuilder,
    layout_id: i64,
    layouts: &HashMap<i64, Vec<LayoutPoint>>,
    points: &HashMap<i64, (String, String, String)>,
) {
    if b.slots.contains_key(&layout_id) {
        return;
    }
    let Some(layout) = layouts.get(&layout_id) else {
        return;
    };
    let s = &mut b.s;
    let mut slots = Vec::with_capacity(layout.len());
    for lp in layout {
        let i = if let Some(&i) = b.point_index.get(&lp.point_id) {
            i
        } else {
            let (name, address, unit) = points.get(&lp.point_id).cloned().unwrap_or_default();
            s.points.push(PointSeries {
                name,
                address,
                unit,
                ..PointSeries::default()
            });
            b.point_index.insert(lp.point_id, s.points.len() - 1);
            s.points.len() - 1
        };
        slots.push(i);
    }
    b.slots.insert(layout_id, slots);
}

/// Put a device's entries in run order (rows came in another order: a backfilled run older
/// than ones already recorded). Limits and target are then the latest run's.
fn sort_series(b: &mut SeriesBuilder) {
    fn perm<T: Clone>(v: &mut Vec<T>, order: &[usize]) {
        let old = std::mem::take(v);
        v.extend(order.iter().map(|&i| old[i].clone()));
    }
    let s = &mut b.s;
    let mut order: Vec<usize> = (0..s.runs.len()).collect();
    order.sort_by_key(|&i| s.runs[i]);
    perm(&mut s.runs, &order);
    perm(&mut s.status, &order);
    perm(&mut s.reachable, &order);
    perm(&mut s.sent, &order);
    perm(&mut s.failed, &order);
    perm(&mut s.errors, &order);
    perm(&mut s.latency_p50_ms, &order);
    perm(&mut s.latency_p95_ms, &order);
    perm(&mut s.latency_max_ms, &order);
    perm(&mut b.identity_ids, &order);
    for p in &mut s.points {
        perm(&mut p.values, &order);
        perm(&mut p.status, &order);
    }
}
