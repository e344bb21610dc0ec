//! What a history store gives back over a window: every run in time order, and per device its
//! series (one entry per run the device took part in), column by column so that a trend over 30
//! days of 5-minute runs of 100 devices × 20 points (17 million samples) stays a few arrays.
//!
//! Missing numbers are `f64::NAN` (an unreadable point, a device that never answered, a
//! non-numeric value), never 0.

use std::collections::BTreeMap;

/// One recorded `check` run.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// Store's id of the run.
    pub id: i64,
    /// When the run started, milliseconds since the Unix epoch (UTC).
    pub started_ms: i64,
    /// The plan file as the run named it.
    pub plan: String,
    /// plcprobe's version that made the run.
    pub tool_version: String,
    /// The run's verdict: OK, WARNING, CRITICAL or UNKNOWN.
    pub verdict: String,
    /// Host that ran the check.
    pub host: String,
}

/// Limits in force for a device (the latest run's; they come from the plan).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DeviceLimits {
    /// Median round trip above this: WARNING (milliseconds).
    pub latency_warn_ms: f64,
    /// Median round trip above this: CRITICAL (milliseconds).
    pub latency_crit_ms: f64,
    /// Failed share above this: WARNING.
    pub error_rate_warn: f64,
    /// Failed share above this: CRITICAL.
    pub error_rate_crit: f64,
}

/// One device over the window. Every `Vec` but `points` and `identities` is parallel to `runs`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeviceSeries {
    /// Device name from the plan.
    pub name: String,
    /// Target URL (the latest run's).
    pub target: String,
    /// Index into [`History::runs`] of each of this device's entries, ascending.
    pub runs: Vec<u32>,
    /// The device's verdict in each run (OK, WARNING, CRITICAL, UNKNOWN).
    pub status: Vec<String>,
    /// Whether it answered at all.
    pub reachable: Vec<bool>,
    /// Requests sent.
    pub sent: Vec<u32>,
    /// Requests that failed (exceptions and link errors): error rate = failed / sent.
    pub failed: Vec<u32>,
    /// Failures by kind (`timeout`, `connection`, `exception_0x02`, …) of each run.
    pub errors: Vec<BTreeMap<String, u32>>,
    /// Median round trip, milliseconds (NaN when nothing answered).
    pub latency_p50_ms: Vec<f64>,
    /// 95th percentile round trip, milliseconds (NaN when nothing answered).
    pub latency_p95_ms: Vec<f64>,
    /// Slowest round trip, milliseconds (NaN when nothing answered).
    pub latency_max_ms: Vec<f64>,
    /// The identity (FC43 objects, OPC UA `BuildInfo`) at the first run where it was read and at
    /// every run where it differs from the one before: (index into `runs`, objects).
    pub identities: Vec<(u32, BTreeMap<String, String>)>,
    /// Limits of the latest run.
    pub limits: DeviceLimits,
    /// Every point the device had in any run of the window, in first-seen order.
    pub points: Vec<PointSeries>,
}

/// A point's status code in [`PointSeries::status`]: the point was not in that run ("").
pub const STATUS_ABSENT: u32 = 0;
/// A point's status code: "ok".
pub const STATUS_OK: u32 = 1;

/// One point of a device over the window.
#[derive(Debug, Clone, Default)]
pub struct PointSeries {
    /// Point name from the profile.
    pub name: String,
    /// Address as the profile spells it.
    pub address: String,
    /// Engineering unit.
    pub unit: String,
    /// Last value read in each of the device's runs (parallel to [`DeviceSeries::runs`]); NaN
    /// when unreadable, not numeric, or the point was not in that run.
    pub values: Vec<f64>,
    /// "ok" or why not, per run, as a code (parallel to [`DeviceSeries::runs`]):
    /// [`STATUS_ABSENT`] (the point was not in that run), [`STATUS_OK`], or `2 + i` for
    /// `status_texts[i]`. Read it with [`PointSeries::status_text`]. A code and not a string:
    /// 17 million samples are 69 MB of codes instead of 415 MB of strings (docs/PERFORMANCE.md).
    pub status: Vec<u32>,
    /// The texts of the codes from 2 on, each once, in first-seen order.
    pub status_texts: Vec<String>,
    /// The plausible range of the latest run that had one.
    pub range: Option<[f64; 2]>,
    /// The baseline value of the latest run that checked drift.
    pub baseline: Option<f64>,
    /// The drift tolerance around `baseline` (absolute, in the point's unit).
    pub tolerance: Option<f64>,
}

impl PointSeries {
    /// The text of a status code: "" when absent, "ok", or why not ("" for a code with no text).
    pub fn text_of(&self, code: u32) -> &str {
        match code {
            STATUS_ABSENT => "",
            STATUS_OK => "ok",
            c => self
                .status_texts
                .get(c as usize - 2)
                .map_or("", String::as_str),
        }
    }

    /// The status of entry `k` ("" when absent or out of range).
    pub fn status_text(&self, k: usize) -> &str {
        self.status.get(k).map_or("", |&c| self.text_of(c))
    }

    /// Every entry's status text, in order.
    pub fn statuses(&self) -> impl Iterator<Item = &str> + '_ {
        self.status.iter().map(|&c| self.text_of(c))
    }

    /// The code of a status text, adding it to the table when new. A point has a handful of
    /// distinct statuses ("timeout", "exception 0x02", …), so the table is searched in order.
    pub fn status_code(&mut self, text: &str) -> u32 {
        match text {
            "" => STATUS_ABSENT,
            "ok" => STATUS_OK,
            t => {
                let i = if let Some(i) = self.status_texts.iter().position(|s| s == t) {
                    i
                } else {
                    self.status_texts.push(t.to_string());
                    self.status_texts.len() - 1
                };
                u32::try_from(i + 2).unwrap_or(u32::MAX)
            }
        }
    }
}

/// Equal when every field is and every entry has the same status text (the codes may differ:
/// they follow the order texts were first seen in).
impl PartialEq for PointSeries {
    fn eq(&self, o: &Self) -> bool {
        self.name == o.name
            && self.address == o.address
            && self.unit == o.unit
            && self.values == o.values
            && self.status.len() == o.status.len()
            && self.statuses().eq(o.statuses())
            && self.range == o.range
            && self.baseline == o.baseline
            && self.tolerance == o.tolerance
    }
}

/// A store's content over a window, as `trend` and `report` read it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct History {
    /// Every run in the window, oldest first.
    pub runs: Vec<Run>,
    /// Every device seen in the window, by name.
    pub devices: Vec<DeviceSeries>,
}
