//! Trends over a window of history (pure, no I/O; docs/DESIGN.md §4d): for each device and each
//! of its points, its median latency, 95th percentile latency and error rate, a robust line
//! through the runs, whether it is a trend at all, and when that line crosses a limit.
//!
//! - **Line**: Theil–Sen over the runs, slope in the series' unit per day, with Sen's 95 %
//!   interval, fitted at the device's last run (`level`); see [`super::theil_sen`] for the
//!   method (exact up to 316 runs, a deterministic sample of 20,000 pairs above).
//! - **Trend or not**: the Mann–Kendall test, a trend when its two-sided p-value is below
//!   [`ALPHA`] (1 %); otherwise "no trend", and the level is the window's median. A statistical
//!   test, so a noisy point with no trend says so whatever the size of its noise.
//! - **Too few runs**: a series needs [`MIN_RUNS`] values over at least [`MIN_SPAN_MS`] (one
//!   hour) to be judged; else "too few runs" and nothing is projected.
//! - **Limits**: a point's `range` and its tolerance band around the baseline; latency p50's
//!   `latency_warn_ms`/`latency_crit_ms`; the error rate's warn/crit rates (the p95 has none).
//!   *Beyond*: the level (at the last run) is past a limit already; with a trend its crossing
//!   time is where the line meets the limit. *Next*: with a trend, the nearest limit ahead in the
//!   slope's direction, reached at `(limit − level)/slope` after the last run; the earliest and
//!   latest times are where lines with the interval's end slopes, pivoting on the fitted line at
//!   the data's middle run, reach it (latest unbounded when the interval allows a flat line).
//!   Never projected further ahead than [`MAX_AHEAD_SPANS`] times the span of the
//!   data (a day of runs says nothing about next month).
//! - **Drifting, inside tolerance**: a point with a trend whose level is still inside its
//!   tolerance band.
//! - **Error rate**: runs without a failure would hide a rising rate under a median of zeros, so
//!   the rate is fitted over up to [`ERROR_RATE_BINS`] bins of consecutive runs (Σ failed / Σ
//!   sent in each), one bin a run when there are fewer runs.
//! - **Verdict** (monitoring-plugin rules): CRITICAL when a series is beyond a critical limit
//!   (range, tolerance, `latency_crit`, `error_rate_crit`); WARNING when one is beyond a warning
//!   limit (`latency_warn`, `error_rate_warn`, as `check` judges them) or a crossing is projected
//!   within the horizon; OK otherwise; UNKNOWN when no series had enough runs to be judged. A
//!   series with too few runs does not make the verdict UNKNOWN when others were judged.
//! - **Identity changes** (firmware): every run whose identity differs from the one before.
//!
//! Devices are judged on all cores (each device is independent); the result is the same order
//! and the same numbers whatever the number of threads.

use std::collections::BTreeMap;

use super::{
    model::{DeviceSeries, History},
    theil_sen::{self, Scratch, SenFit, Z95},
};
use crate::outcome::Outcome;

/// A series needs this many values to be judged.
pub const MIN_RUNS: usize = 12;
/// … spread over at least this long (milliseconds: one hour).
pub const MIN_SPAN_MS: i64 = 3_600_000;
/// A trend when the Mann–Kendall p-value is below this.
pub const ALPHA: f64 = 0.01;
/// The error rate is fitted over at most this many bins of consecutive runs.
pub const ERROR_RATE_BINS: usize = 120;
/// No crossing is projected further ahead than this many times the data's span.
pub const MAX_AHEAD_SPANS: f64 = 4.0;

const DAY_MS: f64 = 86_400_000.0;

/// What to judge: the window and how far ahead a crossing matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrendConfig {
    /// Start of the window (ms since the Unix epoch): older runs are left out.
    pub since_ms: i64,
    /// A crossing projected within this long after a device's last run is a WARNING (ms).
    pub horizon_ms: i64,
}

/// Which series of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// A point's value.
    Point,
    /// Median round trip of each run (ms).
    LatencyP50,
    /// 95th percentile round trip of each run (ms).
    LatencyP95,
    /// Failed share of requests.
    ErrorRate,
}

impl Metric {
    /// The series name of a device metric (a point's series is named after the point).
    pub fn name(self) -> &'static str {
        match self {
            Metric::Point => "point",
            Metric::LatencyP50 => "latency_p50_ms",
            Metric::LatencyP95 => "latency_p95_ms",
            Metric::ErrorRate => "error_rate",
        }
    }
}

/// Whether a series moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrendState {
    /// Fewer than [`MIN_RUNS`] values or a span under [`MIN_SPAN_MS`]: not judged.
    TooFewRuns,
    /// The test finds no monotonic trend.
    NoTrend,
    /// A rising trend.
    Rising,
    /// A falling trend.
    Falling,
}

impl TrendState {
    /// As printed.
    pub fn word(self) -> &'static str {
        match self {
            TrendState::TooFewRuns => "too few runs",
            TrendState::NoTrend => "no trend",
            TrendState::Rising => "rising",
            TrendState::Falling => "falling",
        }
    }
}

/// A limit a series may cross (in the order a series beyond two of them names the worse).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LimitKind {
    /// Baseline + tolerance.
    ToleranceHigh,
    /// Baseline − tolerance.
    ToleranceLow,
    /// The point's `range` upper end.
    RangeHigh,
    /// The point's `range` lower end.
    RangeLow,
    /// `latency_warn_ms`.
    LatencyWarn,
    /// `latency_crit_ms`.
    LatencyCrit,
    /// `error_rate_warn`.
    ErrorRateWarn,
    /// `error_rate_crit`.
    ErrorRateCrit,
}

impl LimitKind {
    /// As printed.
    pub fn name(self) -> &'static str {
        match self {
            LimitKind::RangeHigh => "range high",
            LimitKind::RangeLow => "range low",
            LimitKind::ToleranceHigh => "tolerance high",
            LimitKind::ToleranceLow => "tolerance low",
            LimitKind::LatencyWarn => "latency_warn",
            LimitKind::LatencyCrit => "latency_crit",
            LimitKind::ErrorRateWarn => "error_rate_warn",
            LimitKind::ErrorRateCrit => "error_rate_crit",
        }
    }

    /// An upper limit (crossed going up)?
    pub fn is_high(self) -> bool {
        !matches!(self, LimitKind::RangeLow | LimitKind::ToleranceLow)
    }

    /// The verdict when a series is beyond it.
    pub fn outcome(self) -> Outcome {
        match self {
            LimitKind::LatencyWarn | LimitKind::ErrorRateWarn => Outcome::Warning,
            _ => Outcome::Critical,
        }
    }
}

/// Where a series' line meets a limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Crossing {
    /// Which limit.
    pub limit: LimitKind,
    /// Its value, in the series' unit.
    pub value: f64,
    /// When the line meets it (ms since the Unix epoch); `None` for a series beyond a limit
    /// without a trend (no line to say when).
    pub at_ms: Option<i64>,
    /// The earliest time Sen's interval allows (a projection's fast end).
    pub earliest_ms: Option<i64>,
    /// The latest time it allows; `None` when the interval allows a flat line (never).
    pub latest_ms: Option<i64>,
}

/// One series of one device, judged.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesTrend {
    /// The point's name, or the metric's ([`Metric::name`]).
    pub series: String,
    /// What the series is.
    pub metric: Metric,
    /// Unit of the values (a point's unit; `ms`; empty for a rate).
    pub unit: String,
    /// Values used (runs with a number).
    pub runs: usize,
    /// First and last run used (ms since the Unix epoch; 0 when none).
    pub first_ms: i64,
    /// Last run used.
    pub last_ms: i64,
    /// The last value.
    pub last_value: f64,
    /// The fitted line (slope per day, intercept at the last run), when judged.
    pub fit: Option<SenFit>,
    /// The level at the last run: on the line with a trend, else the window's median.
    pub level: f64,
    /// Whether it moves.
    pub state: TrendState,
    /// A limit the level is beyond already (the worst one).
    pub beyond: Option<Crossing>,
    /// With a trend: the next limit ahead and when it is projected to be reached.
    pub next: Option<Crossing>,
    /// A projection further than [`MAX_AHEAD_SPANS`] spans ahead, left unsaid.
    pub too_far: bool,
    /// A point with a trend, still inside its tolerance band.
    pub drifting_inside_tolerance: bool,
    /// This series' verdict (OK when not judged).
    pub outcome: Outcome,
    /// One line for a person.
    pub note: String,
}

/// An identity (firmware) change on the timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct IdentityChange {
    /// The first run with the new identity (ms since the Unix epoch).
    pub at_ms: i64,
    /// Keys that differ: (before, after), `None` where absent.
    pub changes: BTreeMap<String, (Option<String>, Option<String>)>,
}

/// One device, judged.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceTrend {
    /// Device name.
    pub name: String,
    /// Target URL (the latest run's).
    pub target: String,
    /// Runs of the device in the window.
    pub runs: usize,
    /// Its series: latency p50, p95, error rate, then each point.
    pub series: Vec<SeriesTrend>,
    /// Identity changes in the window, oldest first.
    pub identity_changes: Vec<IdentityChange>,
    /// Worst verdict of its judged series; UNKNOWN when none was judged.
    pub outcome: Outcome,
}

/// A whole history, judged.
#[derive(Debug, Clone, PartialEq)]
pub struct Trend {
    /// The window's start (ms), as asked.
    pub since_ms: i64,
    /// The horizon (ms).
    pub horizon_ms: i64,
    /// Runs in the window.
    pub runs: usize,
    /// First and last run in the window (ms; 0 when none).
    pub first_ms: i64,
    /// Last run in the window.
    pub last_ms: i64,
    /// Every device, in the history's order.
    pub devices: Vec<DeviceTrend>,
    /// Worst verdict of the judged devices; UNKNOWN when nothing could be judged.
    pub outcome: Outcome,
}

impl Trend {
    /// Series with each state, and how many are beyond a limit or projected within the horizon.
    pub fn counts(&self) -> TrendCounts {
        let mut c = TrendCounts::default();
        for s in self.devices.iter().flat_map(|d| &d.series) {
            c.series += 1;
            match s.state {
                TrendState::TooFewRuns => c.too_few += 1,
                TrendState::NoTrend => c.no_trend += 1,
                TrendState::Rising | TrendState::Falling => c.trends += 1,
            }
            if s.beyond.is_some() {
                c.beyond += 1;
            }
            if s.next
                .is_some_and(|n| within(n, s.last_ms, self.horizon_ms))
            {
                c.within_horizon += 1;
            }
            if s.drifting_inside_tolerance {
                c.drifting += 1;
            }
        }
        c.identity_changes = self.devices.iter().map(|d| d.identity_changes.len()).sum();
        c
    }
}

/// What [`Trend::counts`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TrendCounts {
    /// Series judged or not.
    pub series: usize,
    /// Series with too few runs.
    pub too_few: usize,
    /// Series without a trend.
    pub no_trend: usize,
    /// Series with a trend.
    pub trends: usize,
    /// Series beyond a limit.
    pub beyond: usize,
    /// Series projected to cross within the horizon.
    pub within_horizon: usize,
    /// Points drifting inside their tolerance.
    pub drifting: usize,
    /// Identity changes.
    pub identity_changes: usize,
}

fn within(c: Crossing, last_ms: i64, horizon_ms: i64) -> bool {
    c.at_ms.is_some_and(|t| t - last_ms <= horizon_ms)
}

/// Judge every device of `history` over `cfg`'s window.
pub fn analyse(history: &History, cfg: &TrendConfig) -> Trend {
    let devices = &history.devices;
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(devices.len().max(1));
    let mut judged: Vec<DeviceTrend> = Vec::with_capacity(devices.len());
    if threads <= 1 || devices.len() < 4 {
        let mut scratch = Work::default();
        judged.extend(
            devices
                .iter()
                .map(|d| analyse_device(history, d, cfg, &mut scratch)),
        );
    } else {
        let chunk = devices.len().div_ceil(threads);
        std::thread::scope(|s| {
            let handles: Vec<_> = devices
                .chunks(chunk)
                .map(|part| {
                    s.spawn(move || {
                        let mut scratch = Work::default();
                        part.iter()
                            .map(|d| analyse_device(history, d, cfg, &mut scratch))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for h in handles {
                judged.extend(h.join().expect("a trend thread does not panic"));
            }
        });
    }
    let in_window = history
        .runs
        .iter()
        .filter(|r| r.started_ms >= cfg.since_ms)
        .map(|r| r.started_ms);
    let (mut runs, mut first_ms, mut last_ms) = (0, i64::MAX, i64::MIN);
    for t in in_window {
        runs += 1;
        first_ms = first_ms.min(t);
        last_ms = last_ms.max(t);
    }
    if runs == 0 {
        (first_ms, last_ms) = (0, 0);
    }
    let outcome = judged
        .iter()
        .map(|d| d.outcome)
        .filter(|o| *o != Outcome::Unknown)
        .max()
        .unwrap_or(Outcome::Unknown);
    Trend {
        since_ms: cfg.since_ms,
        horizon_ms: cfg.horizon_ms,
        runs,
        first_ms,
        last_ms,
        devices: judged,
        outcome,
    }
}

/// Buffers one thread reuses from series to series.
#[derive(Default)]
struct Work {
    sen: Scratch,
    x: Vec<f64>,
    y: Vec<f64>,
}

/// The limits a series is held to, with their values.
type Limits = Vec<(LimitKind, f64)>;

fn analyse_device(h: &History, d: &DeviceSeries, cfg: &TrendConfig, w: &mut Work) -> DeviceTrend {
    let times: Vec<i64> = d
        .runs
        .iter()
        .map(|&r| {
            h.runs
                .get(r as usize)
                .map_or(i64::MIN, |run| run.started_ms)
        })
        .collect();
    // Runs are in time order: the window is a tail of them.
    let from = times.partition_point(|&t| t < cfg.since_ms);
    let runs = times.len() - from;
    let mut series = Vec::with_capacity(d.points.len() + 3);
    let l = &d.limits;
    let positive = |v: f64| v.is_finite() && v > 0.0;
    let mut lat: Limits = Vec::new();
    if positive(l.latency_warn_ms) {
        lat.push((LimitKind::LatencyWarn, l.latency_warn_ms));
    }
    if positive(l.latency_crit_ms) {
        lat.push((LimitKind::LatencyCrit, l.latency_crit_ms));
    }
    series.push(judge(
        Metric::LatencyP50.name().into(),
        Metric::LatencyP50,
        "ms",
        &times,
        &d.latency_p50_ms,
        from,
        &lat,
        None,
        cfg,
        w,
    ));
    series.push(judge(
        Metric::LatencyP95.name().into(),
        Metric::LatencyP95,
        "ms",
        &times,
        &d.latency_p95_ms,
        from,
        &[],
        None,
        cfg,
        w,
    ));
    // The error rate over bins of consecutive runs.
    let used: Vec<usize> = (from..times.len())
        .filter(|&k| d.sent.get(k).is_some_and(|&s| s > 0))
        .collect();
    let per_bin = used.len().div_ceil(ERROR_RATE_BINS).max(1);
    let (mut bin_t, mut bin_rate) = (Vec::new(), Vec::new());
    for bin in used.chunks(per_bin) {
        let sent: u64 = bin.iter().map(|&k| u64::from(d.sent[k])).sum();
        let failed: u64 = bin
            .iter()
            .map(|&k| u64::from(d.failed.get(k).copied().unwrap_or(0)))
            .sum();
        let mid = bin.iter().map(|&k| times[k] as f64).sum::<f64>() / bin.len() as f64;
        bin_t.push(mid.round() as i64);
        bin_rate.push(failed as f64 / sent as f64);
    }
    let mut rate: Limits = Vec::new();
    if l.error_rate_warn.is_finite() && l.error_rate_warn >= 0.0 {
        rate.push((LimitKind::ErrorRateWarn, l.error_rate_warn));
    }
    if l.error_rate_crit.is_finite() && l.error_rate_crit > 0.0 {
        rate.push((LimitKind::ErrorRateCrit, l.error_rate_crit));
    }
    let mut er = judge(
        Metric::ErrorRate.name().into(),
        Metric::ErrorRate,
        "",
        &bin_t,
        &bin_rate,
        0,
        &rate,
        None,
        cfg,
        w,
    );
    er.runs = used.len();
    if er.state == TrendState::TooFewRuns {
        er.note = too_few_note(used.len(), er.last_ms - er.first_ms);
    }
    series.push(er);
    for p in &d.points {
        let mut limits: Limits = Vec::new();
        if let Some([lo, hi]) = p.range {
            limits.push((LimitKind::RangeLow, lo));
            limits.push((LimitKind::RangeHigh, hi));
        }
        let band = match (p.baseline, p.tolerance) {
            (Some(b), Some(t)) if b.is_finite() && t.is_finite() && t >= 0.0 => {
                limits.push((LimitKind::ToleranceLow, b - t));
                limits.push((LimitKind::ToleranceHigh, b + t));
                Some((b - t, b + t))
            }
            _ => None,
        };
        series.push(judge(
            p.name.clone(),
            Metric::Point,
            &p.unit,
            &times,
            &p.values,
            from,
            &limits,
            band,
            cfg,
            w,
        ));
    }
    let mut identity_changes = Vec::new();
    for pair in d.identities.windows(2) {
        let ((_, before), (k, after)) = (&pair[0], &pair[1]);
        let mut changes = BTreeMap::new();
        for key in before.keys().chain(after.keys()) {
            let (b, a) = (before.get(key), after.get(key));
            if b != a {
                changes.insert(key.clone(), (b.cloned(), a.cloned()));
            }
        }
        let at_ms = times.get(*k as usize).copied().unwrap_or(i64::MIN);
        if !changes.is_empty() && at_ms >= cfg.since_ms {
            identity_changes.push(IdentityChange { at_ms, changes });
        }
    }
    let outcome = series
        .iter()
        .filter(|s| s.state != TrendState::TooFewRuns)
        .map(|s| s.outcome)
        .max()
        .unwrap_or(Outcome::Unknown);
    DeviceTrend {
        name: d.name.clone(),
        target: d.target.clone(),
        runs,
        series,
        identity_changes,
        outcome,
    }
}

fn too_few_note(n: usize, span_ms: i64) -> String {
    format!(
        "too few runs: {n} over {} (needs {MIN_RUNS} over {} h)",
        span_text(span_ms),
        MIN_SPAN_MS / 3_600_000
    )
}

/// A duration for a person: minutes, hours or days.
pub fn span_text(ms: i64) -> String {
    let ms = ms.max(0) as f64;
    if ms < 3_600_000.0 {
        format!("{:.0} min", ms / 60_000.0)
    } else if ms < 2.0 * DAY_MS {
        format!("{:.1} h", ms / 3_600_000.0)
    } else {
        format!("{:.1} d", ms / DAY_MS)
    }
}

/// Judge one series: `values[k]` at `times[k]` for the `k` from `from` on that are numbers.
#[allow(clippy::too_many_arguments)]
fn judge(
    series: String,
    metric: Metric,
    unit: &str,
    times: &[i64],
    values: &[f64],
    from: usize,
    limits: &[(LimitKind, f64)],
    band: Option<(f64, f64)>,
    cfg: &TrendConfig,
    w: &mut Work,
) -> SeriesTrend {
    let (mut first_ms, mut last_ms, mut last_value) = (0, 0, f64::NAN);
    let mut n = 0;
    let (times, values) = (
        times.get(from..).unwrap_or(&[]),
        values.get(from..).unwrap_or(&[]),
    );
    for (&t, &v) in times.iter().zip(values) {
        if v.is_finite() {
            if n == 0 {
                first_ms = t;
            }
            last_ms = t;
            last_value = v;
            n += 1;
        }
    }
    let mut out = SeriesTrend {
        series,
        metric,
        unit: unit.to_string(),
        runs: n,
        first_ms,
        last_ms,
        last_value,
        fit: None,
        level: f64::NAN,
        state: TrendState::TooFewRuns,
        beyond: None,
        next: None,
        too_far: false,
        drifting_inside_tolerance: false,
        outcome: Outcome::Ok,
        note: String::new(),
    };
    let span = last_ms - first_ms;
    if n < MIN_RUNS || span < MIN_SPAN_MS {
        out.note = too_few_note(n, span);
        return out;
    }
    // x: days relative to the last run, so the intercept is the level at the last run.
    w.x.clear();
    w.y.clear();
    for (&t, &v) in times.iter().zip(values) {
        if v.is_finite() {
            w.x.push((t - last_ms) as f64 / DAY_MS);
            w.y.push(v);
        }
    }
    let Some(fit) = theil_sen::fit_with(&w.x, &w.y, Z95, &mut w.sen) else {
        out.note = too_few_note(n, span);
        return out;
    };
    let trend = fit.p_value < ALPHA && fit.s != 0;
    out.state = match (trend, fit.s > 0) {
        (false, _) => TrendState::NoTrend,
        (true, true) => TrendState::Rising,
        (true, false) => TrendState::Falling,
    };
    // The data's middle (days before the last run): the interval's lines pivot there, so a
    // slope off by δ moves the level at the last run by δ times half the span too.
    let x_mid = w.x[w.x.len() / 2];
    out.level = if trend {
        fit.intercept
    } else {
        theil_sen::median(&mut w.y)
    };
    out.fit = Some(fit);
    let level = out.level;
    let slope = if trend { fit.slope } else { 0.0 };
    let at = |limit: f64, b: f64| -> Option<i64> {
        (b != 0.0 && b.is_finite()).then(|| last_ms + ((limit - level) / b * DAY_MS).round() as i64)
    };
    // The line of slope `b` through the fitted line's point at the data's middle.
    let y_mid = level + slope * x_mid;
    let at_pivot = |limit: f64, b: f64| -> Option<i64> {
        (b != 0.0 && b.is_finite())
            .then(|| last_ms + ((x_mid + (limit - y_mid) / b) * DAY_MS).round() as i64)
    };
    // Beyond: the worst limit the level is already past.
    let past = |k: LimitKind, v: f64| {
        if k.is_high() {
            level > v
        } else {
            level < v
        }
    };
    out.beyond = limits
        .iter()
        .filter(|(k, v)| past(*k, *v))
        .max_by_key(|(k, _)| (k.outcome(), *k))
        .map(|&(limit, value)| Crossing {
            limit,
            value,
            at_ms: at(value, slope).filter(|&t| t <= last_ms),
            earliest_ms: None,
            latest_ms: None,
        });
    // Next: the nearest limit ahead in the slope's direction.
    if slope != 0.0 {
        let ahead = limits
            .iter()
            .filter(|(k, v)| {
                if slope > 0.0 {
                    k.is_high() && *v >= level
                } else {
                    !k.is_high() && *v <= level
                }
            })
            .filter(|(k, v)| !past(*k, *v))
            .min_by(|a, b| (a.1 - level).abs().total_cmp(&(b.1 - level).abs()));
        if let Some(&(limit, value)) = ahead {
            let (fast, slow) = if slope > 0.0 {
                (fit.slope_high, fit.slope_low)
            } else {
                (fit.slope_low, fit.slope_high)
            };
            let at_ms = at(value, slope);
            let max_ahead = (MAX_AHEAD_SPANS * span as f64) as i64;
            if at_ms.is_some_and(|t| t - last_ms > max_ahead) {
                out.too_far = true;
            } else {
                out.next = Some(Crossing {
                    limit,
                    value,
                    at_ms,
                    earliest_ms: at_pivot(value, fast),
                    latest_ms: (slow * slope > 0.0)
                        .then(|| at_pivot(value, slow))
                        .flatten(),
                });
            }
        }
    }
    if let Some((lo, hi)) = band {
        out.drifting_inside_tolerance = trend && level >= lo && level <= hi;
    }
    // Verdict and note.
    let mut outcome = out.beyond.map_or(Outcome::Ok, |b| b.limit.outcome());
    if out.next.is_some_and(|n| within(n, last_ms, cfg.horizon_ms)) {
        outcome = outcome.worst(Outcome::Warning);
    }
    out.outcome = outcome;
    out.note = note(&out, span);
    out
}

/// A time relative to the last run, for a person: `in 6.2 d`, `5.1 h ago`.
fn eta_text(at_ms: i64, last_ms: i64) -> String {
    let d = at_ms - last_ms;
    if d >= 0 {
        format!("in {}", span_text(d))
    } else {
        format!("{} ago", span_text(-d))
    }
}

fn fmt_value(v: f64) -> String {
    let s = format!("{:.6}", round_sig(v, 4));
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

/// `v` rounded to `digits` significant digits (non-finite values as they are).
pub fn round_sig(v: f64, digits: i32) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let scale = 10f64.powi(digits - 1 - v.abs().log10().floor() as i32);
    (v * scale).round() / scale
}

fn note(s: &SeriesTrend, span: i64) -> String {
    let mut parts = Vec::new();
    if let Some(b) = s.beyond {
        let when = match b.at_ms {
            Some(t) => format!("since {}", eta_text(t, s.last_ms).replace("in ", "")),
            None => "at the last run".into(),
        };
        parts.push(format!(
            "beyond {} ({}) {when}",
            b.limit.name(),
            fmt_value(b.value)
        ));
    }
    if s.drifting_inside_tolerance {
        parts.push("drifting, inside tolerance".into());
    }
    if let Some(n) = s.next {
        let at = n.at_ms.map_or(String::new(), |t| eta_text(t, s.last_ms));
        let lo = n.earliest_ms.map(|t| span_text(t - s.last_ms));
        let hi = n
            .latest_ms
            .map_or("never".to_string(), |t| span_text(t - s.last_ms));
        parts.push(format!(
            "reaches {} ({}) {at} [{}–{hi}]",
            n.limit.name(),
            fmt_value(n.value),
            lo.unwrap_or_default()
        ));
    } else if s.too_far {
        parts.push(format!(
            "a limit lies more than {MAX_AHEAD_SPANS}× the data's span ({}) ahead: not projected",
            span_text(span)
        ));
    }
    if parts.is_empty() {
        parts.push(s.state.word().into());
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::model::{DeviceLimits, PointSeries, Run, STATUS_OK};

    const FIVE_MIN: i64 = 300_000;
    const T0: i64 = 1_790_000_000_000;

    fn history(n: usize, points: Vec<PointSeries>, lat: Vec<f64>, failed: Vec<u32>) -> History {
        let runs: Vec<Run> = (0..n)
            .map(|i| Run {
                id: i as i64 + 1,
                started_ms: T0 + i as i64 * FIVE_MIN,
                plan: "plan.toml".into(),
                tool_version: "0.1.0".into(),
                verdict: "OK".into(),
                host: "h".into(),
            })
            .collect();
        let dev = DeviceSeries {
            name: "press".into(),
            target: "modbus://127.0.0.1:5020/1".into(),
            runs: (0..n as u32).collect(),
            status: vec!["OK".into(); n],
            reachable: vec![true; n],
            sent: vec![100; n],
            failed,
            errors: vec![BTreeMap::new(); n],
            latency_p95_ms: lat.iter().map(|v| v * 1.5).collect(),
            latency_p50_ms: lat,
            latency_max_ms: vec![f64::NAN; n],
            identities: vec![],
            limits: DeviceLimits {
                latency_warn_ms: 50.0,
                latency_crit_ms: 200.0,
                error_rate_warn: 0.05,
                error_rate_crit: 0.2,
            },
            points,
        };
        History {
            runs,
            devices: vec![dev],
        }
    }

    fn noise(i: usize) -> f64 {
        // Deterministic, roughly uniform in −1 … 1.
        let x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        ((x >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }

    fn point(name: &str, values: Vec<f64>) -> PointSeries {
        PointSeries {
            name: name.into(),
            address: "hr:0".into(),
            unit: "bar".into(),
            status: vec![STATUS_OK; values.len()],
            status_texts: Vec::new(),
            values,
            range: Some([0.0, 250.0]),
            baseline: Some(100.0),
            tolerance: Some(5.0),
        }
    }

    fn cfg(h: &History) -> TrendConfig {
        TrendConfig {
            since_ms: h.runs[0].started_ms,
            horizon_ms: 14 * 86_400_000,
        }
    }

    fn day(i: usize) -> f64 {
        i as f64 * FIVE_MIN as f64 / DAY_MS
    }

    #[test]
    fn a_creeping_point_is_projected_to_its_range_limit() {
        let n = 30 * 288;
        // 200 bar rising 2 bar/day, ±1 noise; baseline 100 ± 5 is far behind (beyond): reaches
        // 250 at day 25 after the start = 5 days after the last run.
        let v: Vec<f64> = (0..n).map(|i| 190.0 + 2.0 * day(i) + noise(i)).collect();
        let h = history(n, vec![point("p", v)], vec![10.0; n], vec![0; n]);
        let t = analyse(&h, &cfg(&h));
        let s = &t.devices[0].series[3];
        assert_eq!(s.state, TrendState::Rising, "{s:?}");
        let f = s.fit.unwrap();
        assert!((f.slope - 2.0).abs() < 0.02, "{f:?}");
        let next = s.next.unwrap();
        assert_eq!(next.limit, LimitKind::RangeHigh);
        let planted = T0 + (30.0 * DAY_MS) as i64;
        assert!(
            (next.at_ms.unwrap() - planted).abs() < 86_400_000 / 4,
            "{next:?}"
        );
        assert!(next.earliest_ms.unwrap() <= next.at_ms.unwrap());
        assert!(next.latest_ms.unwrap() >= next.at_ms.unwrap());
        // Beyond its tolerance band (100 ± 5) all along: CRITICAL.
        assert_eq!(s.beyond.unwrap().limit, LimitKind::ToleranceHigh);
        assert_eq!(s.outcome, Outcome::Critical);
        assert_eq!(t.outcome, Outcome::Critical);
    }

    #[test]
    fn noise_is_no_trend_and_drift_inside_tolerance_is_called_out() {
        let n = 30 * 288;
        let noisy: Vec<f64> = (0..n).map(|i| 100.0 + 3.0 * noise(i)).collect();
        let drifting: Vec<f64> = (0..n)
            .map(|i| 99.0 + 0.1 * day(i) + 0.5 * noise(i + 77))
            .collect();
        let h = history(
            n,
            vec![point("noisy", noisy), point("drift", drifting)],
            vec![10.0; n],
            vec![0; n],
        );
        let t = analyse(&h, &cfg(&h));
        let d = &t.devices[0];
        let noisy = &d.series[3];
        assert_eq!(noisy.state, TrendState::NoTrend, "{noisy:?}");
        assert!(noisy.next.is_none() && noisy.beyond.is_none());
        assert_eq!(noisy.note, "no trend");
        assert_eq!(noisy.outcome, Outcome::Ok);
        let drift = &d.series[4];
        assert!(drift.drifting_inside_tolerance, "{drift:?}");
        // 99 + 3 = 102 at the end; 105 is reached 30 days later: beyond the horizon, OK.
        let next = drift.next.unwrap();
        assert_eq!(next.limit, LimitKind::ToleranceHigh);
        let planted = T0 + (60.0 * DAY_MS) as i64;
        assert!(
            (next.at_ms.unwrap() - planted).abs() < 4 * 86_400_000,
            "{next:?}"
        );
        assert_eq!(drift.outcome, Outcome::Ok);
        assert!(
            drift
                .note
                .starts_with("drifting, inside tolerance; reaches tolerance high (105) in "),
            "{}",
            drift.note
        );
        assert_eq!(d.outcome, Outcome::Ok);
    }

    #[test]
    fn rising_latency_and_error_rate_warn_before_their_limits() {
        let n = 30 * 288;
        let lat: Vec<f64> = (0..n).map(|i| 20.0 + 0.8 * day(i) + noise(i)).collect();
        // Failures out of 100 requests: 0 → 3 % over 30 days, rising 0.1 %/day; reaches the warn
        // rate 5 % 20 days after the last run: not within 14 days. Latency 44 ms at the end, warn
        // 50 ms reached at day 37.5: 7.5 days after the last run.
        let failed: Vec<u32> = (0..n)
            .map(|i| {
                let p = 0.001 * day(i);
                u32::from(noise(i + 5).abs() < p * 20.0) * 5 // mean ≈ 100·p
            })
            .collect();
        let h = history(n, vec![], lat, failed);
        let t = analyse(&h, &cfg(&h));
        let d = &t.devices[0];
        let p50 = &d.series[0];
        assert_eq!(p50.state, TrendState::Rising);
        let next = p50.next.unwrap();
        assert_eq!(next.limit, LimitKind::LatencyWarn);
        let planted = T0 + (37.5 * DAY_MS) as i64;
        assert!(
            (next.at_ms.unwrap() - planted).abs() < 86_400_000,
            "{next:?}"
        );
        assert_eq!(p50.outcome, Outcome::Warning);
        let er = &d.series[2];
        assert_eq!(er.state, TrendState::Rising, "{er:?}");
        assert_eq!(er.runs, n);
        assert!((er.fit.unwrap().slope - 0.001).abs() < 0.0003, "{er:?}");
        assert_eq!(d.outcome, Outcome::Warning);
    }

    #[test]
    fn too_few_runs_say_so_and_judge_nothing() {
        let h = history(
            5,
            vec![point("p", vec![1.0, 2.0, 3.0, 4.0, 5.0])],
            vec![10.0; 5],
            vec![0; 5],
        );
        let t = analyse(&h, &cfg(&h));
        for s in &t.devices[0].series {
            assert_eq!(s.state, TrendState::TooFewRuns, "{s:?}");
            assert!(
                s.note.starts_with("too few runs: 5 over 20 min"),
                "{}",
                s.note
            );
            assert!(s.fit.is_none() && s.next.is_none());
        }
        assert_eq!(t.devices[0].outcome, Outcome::Unknown);
        assert_eq!(t.outcome, Outcome::Unknown);
        // Many runs within a few minutes: still too few (span).
        let mut h = history(100, vec![], vec![10.0; 100], vec![0; 100]);
        for (i, r) in h.runs.iter_mut().enumerate() {
            r.started_ms = T0 + i as i64 * 1000;
        }
        let t = analyse(&h, &cfg(&h));
        assert_eq!(t.devices[0].series[0].state, TrendState::TooFewRuns);
    }

    #[test]
    fn a_point_past_its_range_with_no_trend_is_critical_and_old_runs_are_left_out() {
        let n = 2 * 288;
        let v: Vec<f64> = (0..n)
            .map(|i| if i < 288 { 100.0 } else { 260.0 + noise(i) })
            .collect();
        let h = history(n, vec![point("p", v)], vec![10.0; n], vec![0; n]);
        let mut c = cfg(&h);
        c.since_ms = h.runs[288].started_ms;
        let t = analyse(&h, &c);
        let s = &t.devices[0].series[3];
        assert_eq!(s.runs, 288);
        assert_eq!(s.state, TrendState::NoTrend);
        assert_eq!(s.beyond.unwrap().limit, LimitKind::RangeHigh);
        assert_eq!(s.outcome, Outcome::Critical);
        assert!(
            s.note
                .starts_with("beyond range high (250) at the last run"),
            "{}",
            s.note
        );
        assert_eq!(t.runs, 288);
    }

    #[test]
    fn identity_changes_are_on_the_timeline() {
        let n = 20;
        let mut h = history(n, vec![], vec![10.0; n], vec![0; n]);
        let id = |rev: &str| {
            BTreeMap::from([
                ("vendor".to_string(), "ACME".to_string()),
                ("revision".to_string(), rev.to_string()),
            ])
        };
        h.devices[0].identities = vec![(0, id("2.1")), (12, id("2.2"))];
        let t = analyse(&h, &cfg(&h));
        let ch = &t.devices[0].identity_changes;
        assert_eq!(ch.len(), 1);
        assert_eq!(ch[0].at_ms, T0 + 12 * FIVE_MIN);
        assert_eq!(
            ch[0].changes["revision"],
            (Some("2.1".into()), Some("2.2".into()))
        );
        assert_eq!(ch[0].changes.len(), 1);
    }

    #[test]
    fn the_result_does_not_depend_on_threads() {
        let n = 500;
        let mut h = history(n, vec![], vec![10.0; n], vec![0; n]);
        let base = h.devices[0].clone();
        h.devices = (0..9)
            .map(|k| {
                let mut d = base.clone();
                d.name = format!("d{k}");
                d.latency_p50_ms = (0..n)
                    .map(|i| 10.0 + f64::from(k) * day(i) + noise(i))
                    .collect();
                d
            })
            .collect();
        let t = analyse(&h, &cfg(&h));
        let one: Vec<DeviceTrend> = h
            .devices
            .iter()
            .map(|d| analyse_device(&h, d, &cfg(&h), &mut Work::default()))
            .collect();
        assert_eq!(t.devices, one);
    }
}
