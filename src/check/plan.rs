//! Check plans (`check PLAN.toml`, docs/DESIGN.md §4b): devices, their profiles and baselines, and
//! the thresholds of the health check. Paths are relative to the plan file; a device's own
//! thresholds override `[defaults]`. Unknown keys and bad values name file, line and key.

use std::{
    ops::Range,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;
use toml::Spanned;

use crate::{profile::toml_text::TomlText, target::Target};

/// Thresholds and pacing of a check (plan defaults, or a device's overrides).
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// Per-request timeout.
    pub timeout: Duration,
    /// Median round trip above this: WARNING.
    pub latency_warn: Duration,
    /// Median round trip above this: CRITICAL.
    pub latency_crit: Duration,
    /// Rounds of reads per device (latency, error rate, trends).
    pub poll: u32,
    /// At most this many requests per second to one device, so a check never loads a PLC.
    pub rate: f64,
    /// Share of failed requests above which the device is WARNING (default 0: any failure).
    pub error_rate_warn: f64,
    /// Share of failed requests above which the device is CRITICAL.
    pub error_rate_crit: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(1),
            latency_warn: Duration::from_millis(50),
            latency_crit: Duration::from_millis(200),
            poll: 5,
            rate: 20.0,
            error_rate_warn: 0.0,
            error_rate_crit: 0.2,
        }
    }
}

/// One device of a plan.
#[derive(Debug, Clone)]
pub struct PlanDevice {
    /// Name (unique in the plan).
    pub name: String,
    /// Target.
    pub target: Target,
    /// Profile path (resolved against the plan's folder).
    pub profile: PathBuf,
    /// Baseline path, if drift is checked.
    pub baseline: Option<PathBuf>,
    /// Thresholds in force for this device.
    pub thresholds: Thresholds,
    /// Line of the device in the plan.
    pub line: usize,
}

/// A loaded plan.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The plan file.
    pub path: PathBuf,
    /// Devices checked at once.
    pub concurrency: usize,
    /// The history store every run is recorded into (`[defaults] history`): a `postgres://`
    /// URL as written, or a path made relative to the plan's folder.
    pub history: Option<String>,
    /// Devices, in plan order.
    pub devices: Vec<PlanDevice>,
}

/// Threshold keys allowed both in `[defaults]` and in a `[[device]]`. Declared in each table
/// rather than flattened: serde's flatten drops the spans that name a bad key's line.
macro_rules! raw_table {
    ($(#[$m:meta])* struct $name:ident { $($extra:tt)* }) => {
        $(#[$m])*
        struct $name {
            timeout: Option<Spanned<String>>,
            latency_warn: Option<Spanned<String>>,
            latency_crit: Option<Spanned<String>>,
            poll: Option<Spanned<i64>>,
            rate: Option<Spanned<f64>>,
            error_rate_warn: Option<Spanned<f64>>,
            error_rate_crit: Option<Spanned<f64>>,
            $($extra)*
        }
        impl $name {
            fn thresholds(&self) -> RawThresholds<'_> {
                RawThresholds {
                    timeout: &self.timeout,
                    latency_warn: &self.latency_warn,
                    latency_crit: &self.latency_crit,
                    poll: &self.poll,
                    rate: &self.rate,
                    error_rate_warn: &self.error_rate_warn,
                    error_rate_crit: &self.error_rate_crit,
                }
            }
        }
    };
}

struct RawThresholds<'a> {
    timeout: &'a Option<Spanned<String>>,
    latency_warn: &'a Option<Spanned<String>>,
    latency_crit: &'a Option<Spanned<String>>,
    poll: &'a Option<Spanned<i64>>,
    rate: &'a Option<Spanned<f64>>,
    error_rate_warn: &'a Option<Spanned<f64>>,
    error_rate_crit: &'a Option<Spanned<f64>>,
}

raw_table! {
    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct RawDefaults {
        concurrency: Option<Spanned<i64>>,
        history: Option<Spanned<String>>,
    }
}

raw_table! {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RawDevice {
        name: Spanned<String>,
        target: Option<Spanned<String>>,
        profile: Spanned<String>,
        baseline: Option<Spanned<String>>,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlan {
    #[serde(default)]
    defaults: RawDefaults,
    #[serde(default)]
    device: Vec<Spanned<RawDevice>>,
}

/// `base` with the thresholds a table of the plan `cx` sets (`[defaults]`, or a device's
/// overrides; `prefix` is the table's, for messages).
fn apply(
    cx: &TomlText<'_>,
    base: &Thresholds,
    r: &RawThresholds<'_>,
    prefix: &str,
) -> anyhow::Result<Thresholds> {
    let mut t = base.clone();
    let dur = |v: &Option<Spanned<String>>, key: &str, into: &mut Duration| -> anyhow::Result<()> {
        if let Some(s) = v {
            *into = crate::clock::parse_duration(s.get_ref())
                .map_err(|e| cx.err(s.span(), &format!("{prefix}{key}"), e))?;
        }
        Ok(())
    };
    dur(r.timeout, "timeout", &mut t.timeout)?;
    dur(r.latency_warn, "latency_warn", &mut t.latency_warn)?;
    dur(r.latency_crit, "latency_crit", &mut t.latency_crit)?;
    if let Some(p) = r.poll {
        t.poll = u32::try_from(*p.get_ref())
            .ok()
            .filter(|n| (1..=10_000).contains(n))
            .ok_or_else(|| {
                cx.err(
                    p.span(),
                    &format!("{prefix}poll"),
                    "must be a whole number of rounds from 1 to 10000",
                )
            })?;
    }
    if let Some(p) = r.rate {
        if !(*p.get_ref() > 0.0 && p.get_ref().is_finite()) {
            return Err(cx.err(
                p.span(),
                &format!("{prefix}rate"),
                "must be a number of requests per second above 0",
            ));
        }
        t.rate = *p.get_ref();
    }
    for (v, key, into) in [
        (r.error_rate_warn, "error_rate_warn", &mut t.error_rate_warn),
        (r.error_rate_crit, "error_rate_crit", &mut t.error_rate_crit),
    ] {
        if let Some(p) = v {
            if !(0.0..=1.0).contains(p.get_ref()) {
                return Err(cx.err(
                    p.span(),
                    &format!("{prefix}{key}"),
                    "must be a share from 0 to 1",
                ));
            }
            *into = *p.get_ref();
        }
    }
    if t.latency_warn > t.latency_crit {
        anyhow::bail!("{}: {prefix}latency_warn ({:?}) is above latency_crit ({:?}); warn must not exceed crit", cx.source, t.latency_warn, t.latency_crit);
    }
    Ok(t)
}

impl Plan {
    /// Load and validate a plan file.
    pub fn load(path: &Path) -> anyhow::Result<Plan> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read plan {}: {e}", path.display()))?;
        let source = path.display().to_string();
        let cx = TomlText {
            source: &source,
            text: &text,
        };
        let raw: RawPlan = cx.parse()?;
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let defaults = apply(
            &cx,
            &Thresholds::default(),
            &raw.defaults.thresholds(),
            "defaults.",
        )?;
        let concurrency = match &raw.defaults.concurrency {
            None => 128,
            Some(c) => usize::try_from(*c.get_ref())
                .ok()
                .filter(|n| (1..=4096).contains(n))
                .ok_or_else(|| {
                    cx.err(c.span(), "defaults.concurrency", "must be from 1 to 4096")
                })?,
        };
        let history = match &raw.defaults.history {
            None => None,
            Some(h) if h.get_ref().trim().is_empty() => {
                return Err(cx.err(
                    h.span(),
                    "defaults.history",
                    "is empty: give a file path (SQLite) or a postgres:// URL",
                ))
            }
            Some(h) if crate::history::store::is_postgres(h.get_ref()) => Some(h.get_ref().clone()),
            Some(h) => Some(dir.join(h.get_ref()).display().to_string()),
        };
        if raw.device.is_empty() {
            anyhow::bail!(
                "{}: the plan has no [[device]]; add one with name, target and profile",
                path.display()
            );
        }
        let mut devices: Vec<PlanDevice> = Vec::with_capacity(raw.device.len());
        for sd in raw.device {
            let line = cx.line(sd.span().start);
            let d = sd.into_inner();
            let earlier = devices.iter().map(|p| (p.name.as_str(), p.line));
            let name = cx.unique_name(&d.name, "device.name", earlier, "the device")?;
            let profile = dir.join(d.profile.get_ref());
            if !profile.is_file() {
                return Err(cx.err(
                    d.profile.span(),
                    "device.profile",
                    format!(
                        "{} does not exist (paths are relative to the plan's folder)",
                        profile.display()
                    ),
                ));
            }
            let target = match &d.target {
                Some(t) => t
                    .get_ref()
                    .parse::<Target>()
                    .map_err(|e| cx.err(t.span(), "device.target", e))?,
                None => crate::profile::Profile::load(&profile)?
                    .device
                    .target
                    .ok_or_else(|| {
                        cx.err(
                            sd_span_start(&d),
                            "device.target",
                            format!("device `{name}` has no target and its profile has none"),
                        )
                    })?,
            };
            let thresholds = apply(&cx, &defaults, &d.thresholds(), "device.")?;
            devices.push(PlanDevice {
                name,
                target,
                profile,
                baseline: d.baseline.as_ref().map(|b| dir.join(b.get_ref())),
                thresholds,
                line,
            });
        }
        Ok(Plan {
            path: path.to_path_buf(),
            concurrency,
            history,
            devices,
        })
    }
}

fn sd_span_start(d: &RawDevice) -> Range<usize> {
    d.name.span()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, plan: &str) -> PathBuf {
        std::fs::create_dir_all(dir.join("profiles")).unwrap();
        std::fs::write(
            dir.join("profiles/p.toml"),
            "[device]\nname = \"p\"\n[[point]]\nname = \"a\"\naddress = \"hr:0\"\n",
        )
        .unwrap();
        let p = dir.join("plan.toml");
        std::fs::write(&p, plan).unwrap();
        p
    }

    #[test]
    fn defaults_and_overrides() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "[defaults]\npoll = 3\nlatency_warn = \"20ms\"\n\n[[device]]\nname = \"a\"\ntarget = \"modbus://127.0.0.1:1/1\"\nprofile = \"profiles/p.toml\"\nlatency_crit = \"1s\"\n");
        let plan = Plan::load(&p).unwrap();
        let t = &plan.devices[0].thresholds;
        assert_eq!(
            (t.poll, t.latency_warn, t.latency_crit),
            (3, Duration::from_millis(20), Duration::from_secs(1))
        );
        assert_eq!(plan.devices[0].profile, d.path().join("profiles/p.toml"));
        assert_eq!(plan.devices[0].line, 5);
    }

    #[test]
    fn errors_name_file_line_and_key() {
        // One good device; each case adds to it or breaks it.
        const DEVICE: &str =
            "[[device]]\nname = \"a\"\ntarget = \"modbus://h\"\nprofile = \"profiles/p.toml\"\n";
        let d = tempfile::tempdir().unwrap();
        for (body, at, needle) in [
            (
                format!("[defaults]\npol = 3\n{DEVICE}"),
                "plan.toml:2:",
                "pol",
            ),
            (
                DEVICE.replace("p.toml", "nope.toml"),
                "plan.toml:4:",
                "does not exist",
            ),
            (
                DEVICE.replace("modbus://h", "modbus//h"),
                "plan.toml:3:",
                "device.target",
            ),
            (
                format!("[defaults]\ntimeout = \"soon\"\n{DEVICE}"),
                "plan.toml:2:",
                "defaults.timeout",
            ),
            (format!("{DEVICE}poll = 0\n"), "plan.toml:5:", "device.poll"),
            (DEVICE.repeat(2), "plan.toml:6:", "already"),
            (
                DEVICE.replace("target = \"modbus://h\"\n", ""),
                "plan.toml:2:",
                "no target",
            ),
        ] {
            let p = write(d.path(), &body);
            let e = format!("{:#}", Plan::load(&p).unwrap_err());
            assert!(e.contains(at) && e.contains(needle), "{body}\n→ {e}");
        }
    }
}
