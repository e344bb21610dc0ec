//! `check PLAN.toml`: the cron health check. For each device of the plan, concurrently (bounded)
//! and gently (at most `rate` requests per second to any one device): reachable, identity
//! unchanged, a short poll (`poll` rounds of every point) for latency and error rate, points
//! within their `range`, no drift from the baseline. One line per device and a verdict; Nagios
//! output with perfdata; a Prometheus textfile; a JSON results file and a report.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    io::Write as _,
    path::Path,
    time::{Duration, Instant},
};

use futures_util::StreamExt as _;
use serde::Serialize;
use serde_json::{json, Value as Json};

use super::{Ctx, Outcome};
use crate::{
    check::{Plan, PlanDevice},
    cli::CheckArgs,
    device::{
        opcua::UaSettings,
        stats::{Latency, LinkStats},
        Device, ItemError, Settings,
    },
    profile::Profile,
    proto::modbus::exception::describe_exception,
    report::{self, verdict_name, write_rows, Format, Rows},
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
    outcome: Outcome,
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

fn ms(d: Duration) -> f64 {
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
    ua: &UaSettings,
) -> DeviceCheck {
    let t0 = Instant::now();
    let mut dc = DeviceCheck::new(dev);
    check_into(dev, profile, force, ua, &mut dc, t0).await;
    dc.duration_ms = ms(t0.elapsed());
    dc
}

async fn check_into(
    dev: &PlanDevice,
    profile: &LoadedProfile,
    force: bool,
    ua: &UaSettings,
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
        ua: ua.clone(),
    };
    let mut device = match Device::new(&dev.target, &settings)
        .and_then(|mut d| d.select_profile(profile, "check").map(|()| d))
    {
        Ok(d) => d,
        Err(e) => return dc.flag(Outcome::Unknown, format!("{e:#}")),
    };
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
    dc.reachable = true;
    dc.identity.clone_from(&identity.0);
    dc.identity_status.clone_from(&identity.1);
    let points = device.points();
    let mut stats = LinkStats::new();
    let mut trends: Vec<Vec<Json>> = vec![Vec::with_capacity(th.poll as usize); points.len()];
    let mut last = Vec::new();
    // The short poll, paced so the device sees at most `rate` requests per second.
    let gap = Duration::from_secs_f64(device.requests_per_round() as f64 / th.rate);
    let mut next = Instant::now();
    for round in 0..th.poll {
        if round > 0 {
            next += gap;
            tokio::time::sleep_until(next.into()).await;
        }
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
        });
    }

    if let Some(b) = &baseline {
        let profile_ref = ProfileRef::of(profile, sha.to_string());
        let current = device.snapshot(&last, identity, profile_ref, super::now_rfc3339());
        let d = diff(b, &current);
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
    ua: &UaSettings,
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
                let r = check_device(d, &profiles[d.profile.as_path()], force, ua).await;
                progress.inc(1);
                (i, r)
            })
            .buffer_unordered(plan.concurrency)
            .collect()
            .await;
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, d)| d).collect()
}

/// The results document of a check run (also the input of `report`).
pub fn results_doc(
    plan: &Plan,
    devices: &[DeviceCheck],
    outcome: Outcome,
    started: &str,
    elapsed: Duration,
) -> anyhow::Result<Json> {
    let mut doc = report::envelope("check");
    doc.insert("plan".into(), json!(plan.path.display().to_string()));
    doc.insert("started_at".into(), json!(started));
    doc.insert("duration_ms".into(), json!(ms(elapsed)));
    doc.insert("verdict".into(), json!(verdict_name(outcome)));
    doc.insert("summary".into(), json!(summary(devices)));
    doc.insert("devices".into(), serde_json::to_value(devices)?);
    Ok(Json::Object(doc))
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

fn perf_label(s: &str) -> String {
    // Monitoring-plugins perfdata: labels in single quotes, a quote doubled, no '=' inside.
    format!("'{}'", s.replace('\'', "''").replace('=', "_"))
}

/// Nagios/Icinga plugin output: status line, long text, perfdata.
pub fn nagios(devices: &[DeviceCheck], outcome: Outcome) -> String {
    let bad: Vec<String> = devices
        .iter()
        .filter(|d| d.outcome != Outcome::Ok)
        .map(|d| {
            format!(
                "{}: {}",
                d.name,
                d.problems.first().map_or("", String::as_str)
            )
        })
        .collect();
    let head = if bad.is_empty() {
        summary(devices)
    } else {
        format!("{} - {}", summary(devices), bad.join("; "))
    };
    let mut perf = Vec::new();
    for d in devices {
        let t = &d.thresholds;
        let s = |k: &str| t[k].as_f64().unwrap_or(0.0);
        if let Some(l) = &d.latency_ms {
            perf.push(format!(
                "{}={:.6}s;{:.6};{:.6};0;",
                perf_label(&format!("{}_rtt", d.name)),
                l.p50 / 1e3,
                s("latency_warn_ms") / 1e3,
                s("latency_crit_ms") / 1e3
            ));
        }
        perf.push(format!(
            "{}={:.1}%;{:.1};{:.1};0;100",
            perf_label(&format!("{}_errors", d.name)),
            d.error_rate * 100.0,
            s("error_rate_warn") * 100.0,
            s("error_rate_crit") * 100.0
        ));
        let oor = d
            .points
            .iter()
            .filter(|p| p.in_range == Some(false))
            .count();
        perf.push(format!(
            "{}={oor};;;0;{}",
            perf_label(&format!("{}_out_of_range", d.name)),
            d.points.len()
        ));
        if let Some(df) = &d.diff {
            perf.push(format!(
                "{}={};;;0;{}",
                perf_label(&format!("{}_drift", d.name)),
                df.counts.get("changed").copied().unwrap_or(0),
                df.rows.len()
            ));
        }
    }
    let mut out = format!(
        "PLCPROBE {} - {head} | {}\n",
        verdict_name(outcome),
        perf.join(" ")
    );
    for d in devices {
        let _ = writeln!(out, "{} {}: {}", d.status, d.name, d.problem_text());
    }
    out
}

fn prom_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Prometheus textfile-collector exposition, one metric family per check.
pub fn prometheus(devices: &[DeviceCheck]) -> String {
    let mut out = String::new();
    let lbl = |d: &DeviceCheck| {
        format!(
            "device=\"{}\",target=\"{}\"",
            prom_escape(&d.name),
            prom_escape(&d.target)
        )
    };
    let mut family = |name: &str, help: &str, rows: Vec<(String, f64)>| {
        if rows.is_empty() {
            return;
        }
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (l, v) in rows {
            let _ = writeln!(out, "{name}{{{l}}} {}", (v * 1e9).round() / 1e9);
        }
    };
    family(
        "plcprobe_check_status",
        "Verdict per device: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
        devices
            .iter()
            .map(|d| (lbl(d), f64::from(d.outcome.code())))
            .collect(),
    );
    family(
        "plcprobe_check_up",
        "1 when the device answered at all.",
        devices
            .iter()
            .map(|d| (lbl(d), f64::from(u8::from(d.reachable))))
            .collect(),
    );
    family(
        "plcprobe_check_latency_p50_seconds",
        "Median round trip of the short poll.",
        devices
            .iter()
            .filter_map(|d| Some((lbl(d), d.latency_ms.as_ref()?.p50 / 1e3)))
            .collect(),
    );
    family(
        "plcprobe_check_latency_max_seconds",
        "Slowest round trip of the short poll.",
        devices
            .iter()
            .filter_map(|d| Some((lbl(d), d.latency_ms.as_ref()?.max / 1e3)))
            .collect(),
    );
    family(
        "plcprobe_check_error_ratio",
        "Share of failed requests in the short poll.",
        devices.iter().map(|d| (lbl(d), d.error_rate)).collect(),
    );
    family(
        "plcprobe_check_points_out_of_range",
        "Points outside their profile range.",
        devices
            .iter()
            .map(|d| {
                (
                    lbl(d),
                    d.points
                        .iter()
                        .filter(|p| p.in_range == Some(false))
                        .count() as f64,
                )
            })
            .collect(),
    );
    family(
        "plcprobe_check_points_drifted",
        "Points beyond tolerance of the baseline.",
        devices
            .iter()
            .filter_map(|d| {
                Some((
                    lbl(d),
                    d.diff.as_ref()?.counts.get("changed").copied().unwrap_or(0) as f64,
                ))
            })
            .collect(),
    );
    family(
        "plcprobe_check_identity_changed",
        "1 when the FC43 identity differs from the baseline.",
        devices
            .iter()
            .filter_map(|d| {
                Some((
                    lbl(d),
                    f64::from(u8::from(!d.diff.as_ref()?.identity_changes.is_empty())),
                ))
            })
            .collect(),
    );
    family(
        "plcprobe_check_duration_seconds",
        "Time the device's check took.",
        devices
            .iter()
            .map(|d| (lbl(d), d.duration_ms / 1e3))
            .collect(),
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let _ = writeln!(out, "# HELP plcprobe_check_last_run_timestamp_seconds When this file was written.\n# TYPE plcprobe_check_last_run_timestamp_seconds gauge\nplcprobe_check_last_run_timestamp_seconds {now:.3}");
    out
}

fn device_rows(devices: &[DeviceCheck], only_problems: bool) -> Rows {
    let mut rows = Rows::new(&[
        "status",
        "device",
        "target",
        "rtt_p50_ms",
        "errors",
        "problems",
    ]);
    for d in devices
        .iter()
        .filter(|d| !only_problems || d.outcome != Outcome::Ok)
    {
        rows.push(vec![
            json!(d.status),
            json!(d.name),
            json!(d.target),
            d.latency_ms.as_ref().map_or(Json::Null, |l| json!(l.p50)),
            json!(format!("{}/{}", d.sent - d.received, d.sent)),
            json!(d.problems.join("; ")),
        ]);
    }
    rows
}

/// Write a report file whose format follows the extension (.html, .md, .json).
pub fn write_report(path: &Path, docs: &[Json]) -> anyhow::Result<()> {
    let bytes = crate::report::render::render_for_path(path, docs)?;
    crate::fsutil::write_atomic(path, &bytes)
}

/// Run `check`.
pub async fn run(ctx: &Ctx, args: &CheckArgs) -> anyhow::Result<Outcome> {
    let plan = Plan::load(&args.plan)?;
    for p in [&args.results, &args.report, &args.prometheus]
        .into_iter()
        .flatten()
    {
        crate::fsutil::check_output_dir(p)?;
    }
    if let Some(p) = &args.report {
        crate::report::render::render_for_path(p, &[])?; // the extension says the format: check it now
    }
    let _lock = crate::lock::lock_plan(&args.plan, args.wait)?;
    let started = super::now_rfc3339();
    let t0 = Instant::now();
    let pb = ctx.progress_bar(plan.devices.len() as u64, "checking");
    let devices = run_plan(&plan, args.force, &ctx.device.ua, &pb).await;
    pb.finish_and_clear();
    let outcome = devices.iter().fold(Outcome::Ok, |o, d| o.worst(d.outcome));
    let doc = results_doc(&plan, &devices, outcome, &started, t0.elapsed())?;
    if let Some(p) = &args.results {
        let mut bytes = serde_json::to_vec_pretty(&doc)?;
        bytes.push(b'\n');
        crate::fsutil::write_atomic(p, &bytes)?;
    }
    if let Some(p) = &args.prometheus {
        crate::fsutil::write_atomic(p, prometheus(&devices).as_bytes())?;
    }
    if let Some(p) = &args.report {
        write_report(p, std::slice::from_ref(&doc))?;
    }
    let mut out = std::io::stdout().lock();
    match ctx.format {
        Format::Nagios => write!(out, "{}", nagios(&devices, outcome))?,
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &doc)?;
            writeln!(out)?;
        }
        Format::Table => {
            let rows = device_rows(&devices, ctx.quiet);
            super::write_table_verdict(&mut out, ctx, &rows, outcome, || {
                format!(
                    "PLCPROBE {}: {} in {:.1}s",
                    verdict_name(outcome),
                    summary(&devices),
                    t0.elapsed().as_secs_f64()
                )
            })?;
            if let Some(p) = &args.report {
                if !ctx.quiet {
                    writeln!(out, "report: {}", p.display())?;
                }
            }
        }
        f => write_rows(&mut out, f, &device_rows(&devices, ctx.quiet), false)?,
    }
    out.flush()?;
    Ok(outcome)
}
