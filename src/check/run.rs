//! A check run: each device of a plan, concurrently (bounded) and gently (at most `rate`
//! requests per second to any one device): reachable, identity unchanged, a short poll
//! (`poll` rounds of every point) for latency and error rate, points within their `range`, no
//! drift from the baseline. Each device comes out as a [`DeviceCheck`] with its verdict and
//! problems, the material of the outputs in [`super::output`].

use std::{
    collections::BTreeMap,
    path::Path,
    time::{Duration, Instant},
};

use futures_util::StreamExt as _;
use serde::Serialize;
use serde_json::{json, Value as Json};

use super::plan::{Plan, PlanDevice};
use crate::{
    device::{
        stats::{Latency, LinkStats},
        Device, ItemError, Settings,
    },
    outcome::Outcome,
    profile::Profile,
    proto::modbus::exception::describe_exception,
    report::verdict_name,
    snapshot::{self, diff::diff, profile_sha256, ProfileRef, Snapshot},
};

/// One request of the short poll.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Milliseconds since the device's check started.
    pub t_ms: f64,
    /// Round trip, milliseconds.
    pub rtt_ms: f64,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// One point after the poll.
#[derive(Debug, Clone, Serialize)]
pub struct PointCheck {
    /// Name.
    pub name: String,
    /// Address.
    pub address: String,
    /// Unit.
    pub unit: String,
    /// Last value read.
    pub value: Json,
    /// "ok" or why not.
    pub status: String,
    /// Plausible range.
    pub range: Option<[f64; 2]>,
    /// Whether the value lies in it.
    pub in_range: Option<bool>,
    /// Values of every round (null where unreadable), for trends.
    pub trend: Vec<Json>,
    /// The baseline's value of this point, when drift was checked (null otherwise); the history
    /// store keeps it for the tolerance band of trends.
    pub baseline: Option<Json>,
    /// The baseline's allowed drift around it.
    pub tolerance: Option<f64>,
}

/// The result for one device.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceCheck {
    /// Device name from the plan.
    pub name: String,
    /// Target URL.
    pub target: String,
    /// Profile path.
    pub profile: String,
    /// OK / WARNING / CRITICAL / UNKNOWN.
    pub status: &'static str,
    #[serde(skip)]
    pub(super) outcome: Outcome,
    /// What is wrong, one line each.
    pub problems: Vec<String>,
    /// Whether it answered at all.
    pub reachable: bool,
    /// FC43 objects.
    pub identity: Option<BTreeMap<String, String>>,
    /// "ok" or why not.
    pub identity_status: String,
    /// Requests sent.
    pub sent: u64,
    /// Requests answered with data.
    pub received: u64,
    /// Failures by kind.
    pub errors: BTreeMap<String, u64>,
    /// Failed share of requests.
    pub error_rate: f64,
    /// Round trips.
    pub latency_ms: Option<Latency>,
    /// Thresholds in force.
    pub thresholds: Json,
    /// Every request of the short poll.
    pub samples: Vec<Sample>,
    /// Every point.
    pub points: Vec<PointCheck>,
    /// Baseline file, if drift was checked.
    pub baseline: Option<String>,
    /// The drift check.
    pub diff: Option<snapshot::diff::DiffReport>,
    /// How long the device took.
    pub duration_ms: f64,
}

impl DeviceCheck {
    fn new(dev: &PlanDevice) -> Self {
        let t = &dev.thresholds;
        Self {
            name: dev.name.clone(),
            target: dev.target.url(),
            profile: dev.profile.display().to_string(),
            status: "OK",
            outcome: Outcome::Ok,
            problems: vec![],
            reachable: false,
            identity: None,
            identity_status: String::new(),
            sent: 0,
            received: 0,
            errors: BTreeMap::new(),
            error_rate: 0.0,
            latency_ms: None,
            thresholds: json!({
                "timeout_ms": t.timeout.as_secs_f64() * 1e3,
                "latency_warn_ms": t.latency_warn.as_secs_f64() * 1e3,
                "latency_crit_ms": t.latency_crit.as_secs_f64() * 1e3,
                "poll": t.poll,
                "rate": t.rate,
                "error_rate_warn": t.error_rate_warn,
                "error_rate_crit": t.error_rate_crit,
            }),
            samples: vec![],
            points: vec![],
            baseline: dev.baseline.as_ref().map(|b| b.display().to_string()),
            diff: None,
            duration_ms: 0.0,
        }
    }

    fn flag(&mut self, o: Outcome, problem: String) {
        self.outcome = self.outcome.worst(o);
        self.status = verdict_name(self.outcome);
        self.problems.push(problem);
    }

    /// The device's verdict.
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// Its problems on one line, or "ok".
    pub fn problem_text(&self) -> String {
        if self.problems.is_empty() {
            "ok".to_string()
        } else {
            self.problems.join("; ")
        }
    }
}

pub(super) fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn fmt_num(v: &Json) -> String {
    match v {
        Json::Null => "(none)".into(),
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A plan's profile, loaded once however many devices share it, with its hash; or why it
/// could not be loaded.
pub type LoadedProfile = Result<(Profile, String), String>;

/// Load a profile and hash it.
pub fn load_profile(path: &Path) -> LoadedProfile {
    Profile::load(path)
        .map(|p| {
            let sha = profile_sha256(&p);
            (p, sha)
        })
        .map_err(|e| format!("{e:#}"))
}

/// Check one device of a plan, with its profile already loaded.
pub async fn check_device(
    dev: &PlanDevice,
    profile: &LoadedProfile,
    force: bool,
    base: &Settings,
) -> DeviceCheck {
    let t0 = Instant::now();
    let mut dc = DeviceCheck::new(dev);
    check_into(dev, profile, force, base, &mut dc, t0).await;
    dc.duration_ms = ms(t0.elapsed());
    dc
}

async fn check_into(
    dev: &PlanDevice,
    profile: &LoadedProfile,
    force: bool,
    base: &Settings,
    dc: &mut DeviceCheck,
    t0: Instant,
) {
    let th = &dev.thresholds;
    let (profile, sha) = match profile {
        Ok((p, sha)) => (p, sha.as_str()),
        Err(e) => return dc.flag(Outcome::Unknown, e.clone()),
    };
    let baseline = match &dev.baseline {
        None => None,
        Some(b) => match Snapshot::load(b) {
            Ok(s) => Some(s),
            Err(e) => return dc.flag(Outcome::Unknown, format!("{e:#}")),
        },
    };
    if let Some(b) = &baseline {
        if b.profile.sha256 != sha && !force {
            return dc.flag(
                Outcome::Unknown,
                format!(
                    "baseline {} was taken with another profile (\"{}\", {}…) than {} ({}…); re-take it with `plcprobe snapshot {} --profile {} -o {}`, or add --force",
                    dev.baseline.as_ref().expect("some").display(),
                    b.profile.name,
                    &b.profile.sha256[..12.min(b.profile.sha256.len())],
                    dev.profile.display(),
                    &sha[..12],
                    dev.target.url(),
                    dev.profile.display(),
                    dev.baseline.as_ref().expect("some").display()
                ),
            );
        }
    }
    let settings = Settings {
        timeout: th.timeout,
        ..base.clone()
    };
    let mut device = match Device::new(&dev.target, &settings)
        .and_then(|mut d| d.select_profile(profile, "check").map(|()| d))
    {
        Ok(d) => d,
        Err(e) => return dc.flag(Outcome::Unknown, format!("{e:#}")),
    };
    // Every request paced, so the device sees at most `rate` requests in any second.
    device.set_pace(Duration::from_secs_f64(1.0 / th.rate));
    match device.open(false).await {
        Ok(Ok(())) => {}
        Ok(Err(u)) => return dc.flag(Outcome::Critical, format!("unreachable: {}", u.0)),
        Err(e) => return dc.flag(Outcome::Unknown, format!("{e:#}")),
    }
    let identity = match device.identity().await {
        Ok(i) => i,
        Err(u) => {
            device.close().await;
            return dc.flag(Outcome::Critical, format!("unreachable: {}", u.0));
        }
    };
    dc.identity.clone_from(&identity.0);
    dc.identity_status.clone_from(&identity.1);
    let points = device.points();
    let mut stats = LinkStats::new();
    let mut trends: Vec<Vec<Json>> = vec![Vec::with_capacity(th.poll as usize); points.len()];
    let mut last = Vec::new();
    // The short poll (paced request by request, above).
    for _ in 0..th.poll {
        device.round().await;
        for (o, error) in device.outcomes().iter().zip(device.request_errors()) {
            stats.add(o);
            dc.samples.push(Sample {
                t_ms: ms(t0.elapsed()),
                rtt_ms: ms(o.rtt),
                error,
            });
        }
        let results = device.results();
        for (t, r) in trends.iter_mut().zip(&results) {
            t.push(r.value.as_ref().map_or(Json::Null, |v| {
                serde_json::to_value(v).unwrap_or(Json::Null)
            }));
        }
        last = results;
    }
    dc.sent = stats.sent;
    dc.received = stats.received;
    // Reachable means it answered at all: a device that accepts the connection (or a serial
    // port that opens) and answers nothing is not up, whatever its socket says.
    dc.reachable = stats.received > 0 || dc.identity.is_some();
    for (k, n) in &stats.errors {
        dc.errors.insert(k.name().to_string(), *n);
    }
    for (c, n) in &stats.exceptions {
        dc.errors.insert(describe_exception(*c), *n);
    }
    let failed = stats.error_count();
    dc.error_rate = if stats.sent == 0 {
        0.0
    } else {
        failed as f64 / stats.sent as f64
    };
    dc.latency_ms = stats.latency();

    if failed > 0 {
        let kinds: Vec<String> = dc.errors.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let o = if dc.error_rate > th.error_rate_crit {
            Outcome::Critical
        } else if dc.error_rate > th.error_rate_warn {
            Outcome::Warning
        } else {
            Outcome::Ok
        };
        if o != Outcome::Ok {
            dc.flag(
                o,
                format!(
                    "{failed} of {} requests failed ({})",
                    stats.sent,
                    kinds.join(", ")
                ),
            );
        }
    }
    if let Some(l) = &dc.latency_ms {
        let p50 = Duration::from_secs_f64(l.p50 / 1e3);
        if p50 > th.latency_crit {
            dc.flag(
                Outcome::Critical,
                format!(
                    "latency p50 {:.1} ms above {:.0} ms (critical)",
                    l.p50,
                    ms(th.latency_crit)
                ),
            );
        } else if p50 > th.latency_warn {
            dc.flag(
                Outcome::Warning,
                format!(
                    "latency p50 {:.1} ms above {:.0} ms (warning)",
                    l.p50,
                    ms(th.latency_warn)
                ),
            );
        }
    }

    let specs = device.specs();
    for ((spec, r), trend) in specs.iter().zip(&last).zip(trends) {
        let value = r.value.as_ref().map_or(Json::Null, |v| {
            serde_json::to_value(v).unwrap_or(Json::Null)
        });
        let status = match &r.value {
            Ok(_) => "ok".to_string(),
            Err(e) => e.status(),
        };
        let in_range = match (spec.range, value.as_f64()) {
            (Some([lo, hi]), Some(v)) => Some((lo..=hi).contains(&v)),
            _ => None,
        };
        if in_range == Some(false) {
            let [lo, hi] = spec.range.expect("checked");
            dc.flag(
                spec.severity.outcome(),
                format!(
                    "{} = {} {} outside its range [{lo}, {hi}]",
                    spec.name,
                    fmt_num(&value),
                    spec.unit
                )
                .trim_end()
                .to_string(),
            );
        }
        // A point that answered an exception in every round is a standing fault (a wrong map,
        // a disabled module); a transient one is already in the error rate.
        if let Err(e @ (ItemError::Exception(_) | ItemError::Status(_))) = &r.value {
            if trend.iter().all(Json::is_null) {
                dc.flag(
                    Outcome::Critical,
                    format!(
                        "{} ({}): {} in every round",
                        spec.name,
                        spec.address,
                        e.status()
                    ),
                );
            }
        }
        dc.points.push(PointCheck {
            name: spec.name.to_string(),
            address: spec.address.to_string(),
            unit: spec.unit.to_string(),
            value,
            status,
            range: spec.range,
            in_range,
            trend,
            baseline: None,
            tolerance: None,
        });
    }

    if let Some(b) = &baseline {
        let profile_ref = ProfileRef::of(profile, sha.to_string());
        let current = device.snapshot(&last, identity, profile_ref, crate::clock::now_rfc3339());
        let d = diff(b, &current);
        let in_baseline: std::collections::HashMap<&str, &snapshot::SnapPoint> =
            b.points.iter().map(|p| (p.name.as_str(), p)).collect();
        for pc in &mut dc.points {
            if let Some(bp) = in_baseline.get(pc.name.as_str()) {
                pc.baseline = Some(bp.value.clone());
                pc.tolerance = bp.tolerance;
            }
        }
        for (k, (x, y)) in &d.identity_changes {
            dc.flag(
                Outcome::Critical,
                format!(
                    "identity changed: {k} {} → {}",
                    x.as_deref().unwrap_or("(none)"),
                    y.as_deref().unwrap_or("(none)")
                ),
            );
        }
        for r in d.problems() {
            let o = match r.verdict {
                snapshot::diff::Verdict::Changed => r.severity.outcome(),
                snapshot::diff::Verdict::TypeChanged => Outcome::Critical,
                // Unreadable points are already counted in the error rate above.
                _ => continue,
            };
            let tol = r
                .tolerance
                .map_or_else(|| "no tolerance".to_string(), |t| format!("tolerance {t}"));
            dc.flag(
                o,
                format!(
                    "drift: {} {} → {} {} ({tol})",
                    r.name,
                    fmt_num(&r.baseline),
                    fmt_num(&r.current),
                    r.unit
                )
                .replace("  ", " "),
            );
        }
        dc.diff = Some(d);
    }
    device.close().await;
}

/// Run every device of the plan (bounded concurrency), in plan order.
pub async fn run_plan(
    plan: &Plan,
    force: bool,
    base: &Settings,
    progress: &indicatif::ProgressBar,
) -> Vec<DeviceCheck> {
    // Fleets share a few profiles: load and hash each once, not once per device.
    let mut profiles: std::collections::HashMap<&Path, LoadedProfile> =
        std::collections::HashMap::new();
    for d in &plan.devices {
        profiles
            .entry(d.profile.as_path())
            .or_insert_with(|| load_profile(&d.profile));
    }
    let profiles = &profiles;
    let mut done: Vec<(usize, DeviceCheck)> =
        futures_util::stream::iter(plan.devices.iter().enumerate())
            .map(|(i, d)| async move {
                let r = check_device(d, &profiles[d.profile.as_path()], force, base).await;
                progress.inc(1);
                (i, r)
            })
            .buffer_unordered(plan.concurrency)
            .collect()
            .await;
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, d)| d).collect()
}

/// "3 devices: 1 critical, 1 warning, 1 ok".
pub fn summary(devices: &[DeviceCheck]) -> String {
    let mut counts: BTreeMap<Outcome, usize> = BTreeMap::new();
    for d in devices {
        *counts.entry(d.outcome).or_default() += 1;
    }
    let parts: Vec<String> = counts
        .iter()
        .rev()
        .map(|(o, n)| format!("{n} {}", verdict_name(*o).to_lowercase()))
        .collect();
    format!(
        "{} device{}: {}",
        devices.len(),
        if devices.len() == 1 { "" } else { "s" },
        parts.join(", ")
    )
}
