//! What one `check` run adds to a history store, read from its results document (the JSON of
//! `check --results` / `--format json`, docs/DESIGN.md §7): the run's head (time, plan, tool
//! version, verdict, host, command) and per device its verdict, reachability, identity, request
//! counts, errors by kind, latency figures, thresholds and every point's last value and status,
//! with the point's range and the baseline value and tolerance of the drift check.
//!
//! Pure: `check --history` and `history import` both go through [`RunRecord::from_doc`], so a
//! run recorded live and the same run imported from its results file are the same rows. A
//! document that is not a `check` results document, or lacks a field the store needs, is refused
//! with an error naming the source and the field; optional figures (latency of a device that
//! never answered, a point's range) are simply absent.

use std::collections::BTreeMap;

use serde_json::Value as Json;

/// One run, ready to be recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    /// When the run started, milliseconds since the Unix epoch.
    pub started_ms: i64,
    /// The same instant as the document spelled it (RFC 3339).
    pub started_at: String,
    /// The plan file as the run named it.
    pub plan: String,
    /// plcprobe's version that made the run.
    pub tool_version: String,
    /// OK, WARNING, CRITICAL or UNKNOWN.
    pub verdict: String,
    /// Host that ran the check ("" when the document does not say and the caller does not know).
    pub host: String,
    /// The command line of the run.
    pub command: String,
    /// How long the run took, milliseconds.
    pub duration_ms: f64,
    /// Every device of the run, in the document's order.
    pub devices: Vec<DeviceRecord>,
}

/// One device of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceRecord {
    /// Device name from the plan.
    pub name: String,
    /// Target URL.
    pub target: String,
    /// OK, WARNING, CRITICAL or UNKNOWN.
    pub status: String,
    /// Whether it answered at all.
    pub reachable: bool,
    /// Identity objects, when read.
    pub identity: Option<BTreeMap<String, String>>,
    /// Requests sent.
    pub sent: u32,
    /// Requests answered with data.
    pub received: u32,
    /// Failures by kind.
    pub errors: BTreeMap<String, u32>,
    /// Failed share of requests.
    pub error_rate: f64,
    /// Median round trip, milliseconds (NaN when nothing answered).
    pub latency_p50_ms: f64,
    /// 95th percentile round trip, milliseconds (NaN when nothing answered).
    pub latency_p95_ms: f64,
    /// Slowest round trip, milliseconds (NaN when nothing answered).
    pub latency_max_ms: f64,
    /// Thresholds in force.
    pub limits: super::model::DeviceLimits,
    /// Every point, in the document's order.
    pub points: Vec<PointRecord>,
}

impl DeviceRecord {
    /// Requests that failed (exceptions and link errors): the sum of `errors`.
    pub fn failed(&self) -> u32 {
        self.errors
            .values()
            .copied()
            .fold(0u32, u32::saturating_add)
    }
}

/// One point of a device in a run.
#[derive(Debug, Clone, PartialEq)]
pub struct PointRecord {
    /// Name from the profile.
    pub name: String,
    /// Address as the profile spells it.
    pub address: String,
    /// Engineering unit.
    pub unit: String,
    /// Last value read; NaN when unreadable or not a number (a boolean is 0 or 1).
    pub value: f64,
    /// "ok" or why not.
    pub status: String,
    /// Plausible range.
    pub range: Option<[f64; 2]>,
    /// Baseline value of the drift check (numeric baselines only).
    pub baseline: Option<f64>,
    /// Allowed drift around the baseline.
    pub tolerance: Option<f64>,
}

/// Why a document cannot be recorded.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}: {what}")]
pub struct RecordError {
    /// The file (or "this run") the document came from.
    pub source_name: String,
    /// What is wrong, naming the field.
    pub what: String,
}

/// A JSON number, or a boolean as 0/1; anything else is NaN.
pub fn numeric(v: &Json) -> f64 {
    match v {
        Json::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        Json::Bool(b) => f64::from(u8::from(*b)),
        _ => f64::NAN,
    }
}

/// RFC 3339 (any offset, optional fraction) → milliseconds since the Unix epoch.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if t.bytes().all(|c| c.is_ascii_digit()) {
            t.parse().ok()
        } else {
            None
        }
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut ms = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 3 {
                ms = ms * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start)..3 {
            ms *= 10;
        }
    }
    let offset_min = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        c @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let m = num(i + 1..i + 3)? * 60 + num(i + 4..i + 6)?;
            if *c == b'-' {
                -m
            } else {
                m
            }
        }
        _ => return None,
    };
    // Days from civil (H. Hinnant).
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + h * 3600 + mi * 60 + sec) - offset_min * 60) * 1000 + ms)
}

fn u32_of(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl RunRecord {
    /// Read a `check` results document. `source_name` names it in errors (a file path, or
    /// "this run"); `host` is used when the document does not name its host.
    pub fn from_doc(doc: &Json, source_name: &str, host: &str) -> Result<RunRecord, RecordError> {
        let err = |what: String| RecordError {
            source_name: source_name.to_string(),
            what,
        };
        let obj = doc.as_object().ok_or_else(|| {
            err("not a plcprobe results document (a JSON object with \"kind\": \"check\" is expected)".into())
        })?;
        match obj.get("format").and_then(Json::as_str) {
            Some(f) if f.starts_with("plcprobe.results/") => {}
            _ => {
                return Err(err(
                    "not a plcprobe results document (no \"format\": \"plcprobe.results/1\"); give the file written by `check --results`".into(),
                ))
            }
        }
        match obj.get("kind").and_then(Json::as_str) {
            Some("check") => {}
            Some(k) => {
                return Err(err(format!(
                    "results of `{k}`, not of `check`: only check results go into a history store"
                )))
            }
            None => return Err(err("field `kind` is missing".into())),
        }
        let text = |o: &serde_json::Map<String, Json>,
                    k: &str,
                    ctx: &str|
         -> Result<String, RecordError> {
            o.get(k)
                .and_then(Json::as_str)
                .map(str::to_string)
                .ok_or_else(|| err(format!("field `{ctx}{k}` is missing or not a string")))
        };
        let started_at = text(obj, "started_at", "")?;
        let started_ms = parse_rfc3339_ms(&started_at).ok_or_else(|| {
            err(format!(
                "field `started_at` is `{started_at}`, not an RFC 3339 time"
            ))
        })?;
        let plan = text(obj, "plan", "")?;
        let verdict = text(obj, "verdict", "")?;
        let tool_version = obj
            .get("tool_version")
            .and_then(Json::as_str)
            .unwrap_or("")
            .to_string();
        let command = obj
            .get("command")
            .and_then(Json::as_str)
            .unwrap_or("")
            .to_string();
        let host = obj
            .get("host")
            .and_then(Json::as_str)
            .unwrap_or(host)
            .to_string();
        let duration_ms = obj
            .get("duration_ms")
            .and_then(Json::as_f64)
            .unwrap_or(f64::NAN);
        let devs = obj
            .get("devices")
            .and_then(Json::as_array)
            .ok_or_else(|| err("field `devices` is missing or not an array".into()))?;
        let mut devices = Vec::with_capacity(devs.len());
        for (i, d) in devs.iter().enumerate() {
            let o = d
                .as_object()
                .ok_or_else(|| err(format!("`devices[{i}]` is not an object")))?;
            let ctx = format!("devices[{i}].");
            let name = text(o, "name", &ctx)?;
            let ctx = format!("devices[{i}] ({name}).");
            let target = o
                .get("target")
                .and_then(Json::as_str)
                .unwrap_or("")
                .to_string();
            let status = text(o, "status", &ctx)?;
            let reachable = o.get("reachable").and_then(Json::as_bool).ok_or_else(|| {
                err(format!(
                    "field `{ctx}reachable` is missing or not a boolean"
                ))
            })?;
            let identity = match o.get("identity") {
                None | Some(Json::Null) => None,
                Some(Json::Object(m)) => Some(
                    m.iter()
                        .map(|(k, v)| {
                            let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                            (k.clone(), v)
                        })
                        .collect(),
                ),
                Some(_) => return Err(err(format!("field `{ctx}identity` is not an object"))),
            };
            let count = |k: &str| -> Result<u32, RecordError> {
                o.get(k)
                    .and_then(Json::as_u64)
                    .map(u32_of)
                    .ok_or_else(|| err(format!("field `{ctx}{k}` is missing or not a count")))
            };
            let sent = count("sent")?;
            let received = count("received")?;
            let mut errors = BTreeMap::new();
            if let Some(m) = o.get("errors").and_then(Json::as_object) {
                for (k, v) in m {
                    let n = v
                        .as_u64()
                        .ok_or_else(|| err(format!("field `{ctx}errors.{k}` is not a count")))?;
                    errors.insert(k.clone(), u32_of(n));
                }
            }
            let error_rate = o
                .get("error_rate")
                .and_then(Json::as_f64)
                .unwrap_or(f64::NAN);
            let lat = o.get("latency_ms").and_then(Json::as_object);
            let lat_of = |k: &str| {
                lat.and_then(|l| l.get(k))
                    .and_then(Json::as_f64)
                    .unwrap_or(f64::NAN)
            };
            let th = o.get("thresholds").and_then(Json::as_object);
            let th_of = |k: &str| {
                th.and_then(|l| l.get(k))
                    .and_then(Json::as_f64)
                    .unwrap_or(f64::NAN)
            };
            let limits = super::model::DeviceLimits {
                latency_warn_ms: th_of("latency_warn_ms"),
                latency_crit_ms: th_of("latency_crit_ms"),
                error_rate_warn: th_of("error_rate_warn"),
                error_rate_crit: th_of("error_rate_crit"),
            };
            // Baseline value and tolerance of each point, from the drift check's rows.
            let mut drift: BTreeMap<&str, (Option<f64>, Option<f64>)> = BTreeMap::new();
            if let Some(rows) = o
                .get("diff")
                .and_then(|df| df.get("rows"))
                .and_then(Json::as_array)
            {
                for r in rows {
                    if let Some(n) = r.get("name").and_then(Json::as_str) {
                        let b = r.get("baseline").map(numeric).filter(|v| !v.is_nan());
                        let t = r.get("tolerance").and_then(Json::as_f64);
                        drift.insert(n, (b, t));
                    }
                }
            }
            let pts = o
                .get("points")
                .and_then(Json::as_array)
                .ok_or_else(|| err(format!("field `{ctx}points` is missing or not an array")))?;
            let mut points = Vec::with_capacity(pts.len());
            for (j, p) in pts.iter().enumerate() {
                let po = p
                    .as_object()
                    .ok_or_else(|| err(format!("`{ctx}points[{j}]` is not an object")))?;
                let pctx = format!("{ctx}points[{j}].");
                let pname = text(po, "name", &pctx)?;
                let range = match po.get("range") {
                    Some(Json::Array(a)) if a.len() == 2 => match (a[0].as_f64(), a[1].as_f64()) {
                        (Some(lo), Some(hi)) => Some([lo, hi]),
                        _ => return Err(err(format!("field `{pctx}range` is not two numbers"))),
                    },
                    None | Some(Json::Null) => None,
                    Some(_) => return Err(err(format!("field `{pctx}range` is not two numbers"))),
                };
                // The point's own baseline and tolerance (check writes them since the history
                // store); older results files have them only in the drift check's rows, and
                // only for the points that needed a look.
                let (baseline, tolerance) = match (po.get("baseline"), po.get("tolerance")) {
                    (Some(b), t) if !b.is_null() => (
                        Some(numeric(b)).filter(|v| !v.is_nan()),
                        t.and_then(Json::as_f64),
                    ),
                    _ => drift.get(pname.as_str()).copied().unwrap_or_default(),
                };
                points.push(PointRecord {
                    address: po
                        .get("address")
                        .and_then(Json::as_str)
                        .unwrap_or("")
                        .to_string(),
                    unit: po
                        .get("unit")
                        .and_then(Json::as_str)
                        .unwrap_or("")
                        .to_string(),
                    value: po.get("value").map_or(f64::NAN, numeric),
                    status: text(po, "status", &pctx)?,
                    range,
                    baseline,
                    tolerance,
                    name: pname,
                });
            }
            devices.push(DeviceRecord {
                name,
                target,
                status,
                reachable,
                identity,
                sent,
                received,
                errors,
                error_rate,
                latency_p50_ms: lat_of("p50"),
                latency_p95_ms: lat_of("p95"),
                latency_max_ms: lat_of("max"),
                limits,
                points,
            });
        }
        Ok(RunRecord {
            started_ms,
            started_at,
            plan,
            tool_version,
            verdict,
            host,
            command,
            duration_ms,
            devices,
        })
    }
}

/// This machine's host name ("" when it cannot be read).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rfc3339_times() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(
            parse_rfc3339_ms("2026-11-27T21:24:32.123Z"),
            Some(1_795_814_672_123)
        );
        assert_eq!(
            parse_rfc3339_ms("2026-11-27T22:24:32.123+01:00"),
            Some(1_795_814_672_123)
        );
        assert_eq!(parse_rfc3339_ms("2026-11-27 21:24"), None);
        assert_eq!(parse_rfc3339_ms("2026-13-27T21:24:32Z"), None);
    }

    fn doc() -> Json {
        json!({
            "format": "plcprobe.results/1", "kind": "check", "tool_version": "0.1.0",
            "command": "plcprobe check p.toml", "plan": "p.toml",
            "started_at": "2026-11-27T21:00:00.000Z", "duration_ms": 12.5, "verdict": "WARNING",
            "devices": [{
                "name": "press", "target": "modbus://127.0.0.1:5020/1", "status": "WARNING",
                "reachable": true, "identity": {"VendorName": "ACME"}, "sent": 10, "received": 9,
                "errors": {"timeout": 1}, "error_rate": 0.1,
                "latency_ms": {"min": 1.0, "p50": 2.0, "p95": 3.0, "max": 4.0},
                "thresholds": {"latency_warn_ms": 50.0, "latency_crit_ms": 200.0,
                               "error_rate_warn": 0.0, "error_rate_crit": 0.2},
                "points": [
                    {"name": "p", "address": "40001", "unit": "bar", "value": 4.5, "status": "ok",
                     "range": [0.0, 10.0]},
                    {"name": "run", "address": "1", "unit": "", "value": true, "status": "ok"},
                    {"name": "bad", "address": "40009", "unit": "", "value": null,
                     "status": "exception 0x02"}
                ],
                "diff": {"rows": [{"name": "p", "baseline": 4.0, "tolerance": 0.5}]}
            }]
        })
    }

    #[test]
    fn reads_a_check_document() {
        let r = RunRecord::from_doc(&doc(), "r.json", "h1").unwrap();
        assert_eq!(r.started_ms, 1_795_813_200_000);
        assert_eq!(r.host, "h1");
        let d = &r.devices[0];
        assert_eq!(d.failed(), 1);
        assert_eq!(d.latency_p95_ms, 3.0);
        assert_eq!(d.points[0].range, Some([0.0, 10.0]));
        assert_eq!(d.points[0].baseline, Some(4.0));
        assert_eq!(d.points[0].tolerance, Some(0.5));
        assert_eq!(d.points[1].value, 1.0);
        assert!(d.points[2].value.is_nan());
        assert_eq!(d.identity.as_ref().unwrap()["VendorName"], "ACME");
    }

    #[test]
    fn a_points_own_baseline_wins_over_the_drift_rows() {
        let mut d = doc();
        d["devices"][0]["points"][0]["baseline"] = json!(3.5);
        d["devices"][0]["points"][0]["tolerance"] = json!(0.25);
        d["devices"][0]["points"][1]["baseline"] = json!(true);
        d["devices"][0]["points"][1]["tolerance"] = Json::Null;
        let r = RunRecord::from_doc(&d, "r.json", "").unwrap();
        let p = &r.devices[0].points;
        assert_eq!((p[0].baseline, p[0].tolerance), (Some(3.5), Some(0.25)));
        assert_eq!((p[1].baseline, p[1].tolerance), (Some(1.0), None));
        assert_eq!((p[2].baseline, p[2].tolerance), (None, None));
    }

    #[test]
    fn refuses_other_documents_naming_file_and_field() {
        let mut d = doc();
        d["kind"] = json!("diff");
        let e = RunRecord::from_doc(&d, "x.json", "")
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.json") && e.contains("diff"), "{e}");
        let mut d = doc();
        d["devices"][0].as_object_mut().unwrap().remove("reachable");
        let e = RunRecord::from_doc(&d, "y.json", "")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("y.json") && e.contains("devices[0] (press).reachable"),
            "{e}"
        );
        let e = RunRecord::from_doc(&json!([1]), "z.json", "")
            .unwrap_err()
            .to_string();
        assert!(e.contains("z.json"), "{e}");
    }
}
