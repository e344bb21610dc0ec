//! `trend` over a history store: a long history made by `history import` of generated `check
//! --results` documents (30 days of 5-minute runs of three devices, 8,640 files, with planted
//! trends), and a short one recorded by real `check --history` runs against the simulator.
//!
//! The generator writes documents of the shape `check --results` writes (the same keys as a real
//! run's, pinned by tests/fields.rs for check), with times shifted so that the last run was a
//! minute ago. Planted, with the time each crossing must be projected at:
//! - `press`: `press.pressure` creeps 1.5 bar/day from 200 toward its range's 250 (reached
//!   3.3 days after the last run); its median latency rises 1 ms/day from 10 ms toward
//!   `latency_warn` 50 ms (reached 10 days after the last run); `press.temperature` is noise
//!   (±1 °C) with no trend.
//! - `conveyor`: its error rate rises from 0.5 % by 0.125 %/day toward `error_rate_warn` 5 %
//!   (reached 6 days after the last run); `conveyor.speed` drifts 0.04 m/s a day from its
//!   baseline 50 inside its tolerance ±2 (the edge 20 days after the last run: beyond the
//!   horizon, so "drifting, inside tolerance" and OK); its firmware changes from 3.0.1 to 3.1.0
//!   on day 18.
//! - `tank`: added to the plan 40 minutes before the last run: too few runs.

use std::{
    path::{Path, PathBuf},
    sync::OnceLock,
};

use serde_json::{json, Value};

use crate::util::{run, Sim};

const FIVE_MIN_MS: i64 = 300_000;
const DAY_MS: i64 = 86_400_000;
const RUNS: usize = 8640;

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn rfc3339(ms: i64) -> String {
    humantime::format_rfc3339_millis(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms as u64),
    )
    .to_string()
}

/// Deterministic noise in −1 … 1 (`SplitMix64` of `i`).
fn noise(i: u64) -> f64 {
    let mut z = i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    ((z >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
}

/// A point as `check` writes it: last value, status, range, every round's value.
fn point(name: &str, address: &str, unit: &str, range: [f64; 2], rounds: &[f64]) -> Value {
    let last = *rounds.last().unwrap();
    json!({
        "name": name,
        "address": address,
        "unit": unit,
        "value": last,
        "status": "ok",
        "range": range,
        "in_range": last >= range[0] && last <= range[1],
        "trend": rounds,
    })
}

/// One device of one run, as `check` writes it.
#[allow(clippy::too_many_arguments)]
fn device(
    name: &str,
    port: u16,
    revision: &str,
    sent: u64,
    failed: u64,
    p50: f64,
    thresholds: &Value,
    points: &[Value],
    baseline: Option<&str>,
) -> Value {
    let problems: Vec<String> = vec![];
    // With a baseline, `check` writes each point's baseline value and tolerance.
    let points: Vec<Value> = points
        .iter()
        .map(|p| {
            let mut p = p.clone();
            if baseline.is_some() {
                let (base, tol) = if p["name"] == "conveyor.speed" {
                    (50.0, 2.0)
                } else {
                    (12.0, 3.0)
                };
                p["baseline"] = json!(base);
                p["tolerance"] = json!(tol);
            }
            p
        })
        .collect();
    json!({
        "name": name,
        "target": format!("modbus://127.0.0.1:{port}/1"),
        "profile": "profiles/line.toml",
        "status": "OK",
        "problems": problems,
        "reachable": true,
        "identity": {
            "product_code": "SIM-LINE",
            "product_name": "Simulated packaging line",
            "revision": revision,
            "vendor": "plcprobe",
        },
        "identity_status": "ok",
        "sent": sent,
        "received": sent - failed,
        "errors": if failed > 0 { json!({"timeout": failed}) } else { json!({}) },
        "error_rate": failed as f64 / sent as f64,
        "latency_ms": {"min": p50 * 0.8, "p50": p50, "p95": p50 * 1.6, "max": p50 * 2.0},
        "thresholds": thresholds,
        "samples": [
            {"t_ms": 0.5, "rtt_ms": p50, "error": null},
            {"t_ms": 51.0, "rtt_ms": p50 * 1.1, "error": null},
        ],
        "points": points,
        "baseline": baseline,
        "diff": if baseline.is_some() {
            json!({
                "baseline_target": format!("modbus://127.0.0.1:{port}/1"),
                "baseline_taken_at": "2026-10-01T00:00:00.000Z",
                "current_taken_at": "2026-10-01T00:00:00.000Z",
                "identity_changes": {},
                "profile_mismatch": false,
                "rows": [],
                "counts": {"unchanged": 2},
            })
        } else {
            Value::Null
        },
        "duration_ms": 300.0,
    })
}

fn thresholds(warn_rate: f64) -> Value {
    json!({
        "timeout_ms": 1000.0,
        "latency_warn_ms": 50.0,
        "latency_crit_ms": 200.0,
        "poll": 3,
        "rate": 20.0,
        "error_rate_warn": warn_rate,
        "error_rate_crit": 0.2,
    })
}

/// The planted history: its files, and when its first and last runs were.
struct Generated {
    files: Vec<PathBuf>,
    first_ms: i64,
    last_ms: i64,
}

/// Days since the first run of run `i`.
fn day(i: usize) -> f64 {
    i as f64 * FIVE_MIN_MS as f64 / DAY_MS as f64
}

/// Write `runs` results files into `dir` (named by run number), the last run a minute ago.
fn generate(dir: &Path, runs: usize) -> Generated {
    let last_ms = now_ms() - 60_000;
    let first_ms = last_ms - (runs as i64 - 1) * FIVE_MIN_MS;
    // The conveyor's baseline: a real snapshot file beside the results, as `check` names it.
    let base = dir.join("conveyor-base.json");
    std::fs::write(
        &base,
        serde_json::to_vec_pretty(&json!({
            "format": "plcprobe.snapshot/1",
            "taken_at": rfc3339(first_ms - DAY_MS),
            "tool_version": "0.1.0",
            "target": "modbus://127.0.0.1:21002/1",
            "identity": {"vendor": "plcprobe", "product_code": "SIM-LINE", "revision": "3.0.1"},
            "identity_status": "ok",
            "profile": {"name": "line", "sha256": "0".repeat(64), "path": "profiles/line.toml"},
            "points": [
                {"name": "conveyor.speed", "address": "hr:200", "type": "f32", "raw": [0, 0],
                 "value": 50.0, "unit": "m/s", "status": "ok", "tolerance": 2.0, "range": [0.0, 100.0]},
                {"name": "conveyor.current", "address": "hr:202", "type": "u16", "scale": 0.1,
                 "raw": [120], "value": 12.0, "unit": "A", "status": "ok", "tolerance": 3.0,
                 "range": [0.0, 40.0]}
            ]
        }))
        .unwrap(),
    )
    .unwrap();
    let mut files = Vec::with_capacity(runs);
    for i in 0..runs {
        let t = first_ms + i as i64 * FIVE_MIN_MS;
        let d = day(i);
        let k = i as u64 * 16;
        // press: pressure 200 + 1.5/day (f32, ±0.5 noise), temperature noise in 0.1 steps.
        let pressure = |r: u64| 200.0 + 1.5 * d + 0.5 * noise(k + r);
        let temperature = |r: u64| ((42.3 + 1.0 * noise(k + 4 + r)) * 10.0_f64).round() / 10.0;
        let press = device(
            "press",
            21001,
            "1.4.2",
            27,
            0,
            10.0 + 1.0 * d + 0.8 * noise(k + 8),
            &thresholds(0.0),
            &[
                point(
                    "press.pressure",
                    "hr:100",
                    "bar",
                    [0.0, 250.0],
                    &[pressure(0), pressure(1), pressure(2)],
                ),
                point(
                    "press.temperature",
                    "hr:102",
                    "°C",
                    [-20.0, 90.0],
                    &[temperature(0), temperature(1), temperature(2)],
                ),
            ],
            None,
        );
        // conveyor: failures out of 60 requests at a rate rising 0.5 % + 0.125 %/day.
        let rate = 0.005 + 0.001_25 * d;
        let failed = (0..60)
            .filter(|r| noise(k + 9 + r * 1000) * 0.5 + 0.5 < rate)
            .count() as u64;
        let speed = |r: u64| 50.0 + 0.04 * d + 0.2 * noise(k + 12 + r);
        let current = |r: u64| ((12.0 + 0.5 * noise(k + 14 + r)) * 10.0_f64).round() / 10.0;
        let conveyor = device(
            "conveyor",
            21002,
            if d < 18.0 { "3.0.1" } else { "3.1.0" },
            60,
            failed,
            3.0 + 0.2 * noise(k + 10),
            &thresholds(0.05),
            &[
                point(
                    "conveyor.speed",
                    "hr:200",
                    "m/s",
                    [0.0, 100.0],
                    &[speed(0), speed(1), speed(2)],
                ),
                point(
                    "conveyor.current",
                    "hr:202",
                    "A",
                    [0.0, 40.0],
                    &[current(0), current(1), current(2)],
                ),
            ],
            Some(p(&base)),
        );
        let mut devices = vec![press, conveyor];
        if i + 8 >= runs {
            let level = 1000.0 + 5.0 * noise(k + 15);
            devices.push(device(
                "tank",
                21003,
                "1.0",
                9,
                0,
                2.0,
                &thresholds(0.0),
                &[point("tank.level", "hr:300", "l", [0.0, 2000.0], &[level])],
                None,
            ));
        }
        let doc = json!({
            "format": "plcprobe.results/1",
            "kind": "check",
            "tool_version": "0.1.0",
            "command": "plcprobe check plans/line.toml -q --results results.json",
            "generated_at": rfc3339(t + 400),
            "plan": "plans/line.toml",
            "started_at": rfc3339(t),
            "duration_ms": 400.0,
            "verdict": "OK",
            "summary": format!("{} devices: {} ok", devices.len(), devices.len()),
            "devices": devices,
        });
        let f = dir.join(format!("run-{i:05}.json"));
        std::fs::write(&f, serde_json::to_vec(&doc).unwrap()).unwrap();
        files.push(f);
    }
    Generated {
        files,
        first_ms,
        last_ms,
    }
}

/// `history import STORE FILES…`, in batches (the command line of one would be long).
fn import(store: &Path, files: &[PathBuf]) {
    for batch in files.chunks(2000) {
        let mut args = vec!["history", "import", p(store)];
        args.extend(batch.iter().map(|f| p(f)));
        let r = run(&args);
        assert_eq!(r.code, 0, "history import: {}{}", r.stdout, r.stderr);
    }
}

/// The planted history, imported once for every test of this file.
fn planted() -> &'static (tempfile::TempDir, PathBuf, i64, i64) {
    static STORE: OnceLock<(tempfile::TempDir, PathBuf, i64, i64)> = OnceLock::new();
    STORE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let results = dir.path().join("results");
        std::fs::create_dir(&results).unwrap();
        let g = generate(&results, RUNS);
        assert_eq!(g.files.len(), 8640);
        let store = dir.path().join("line.db");
        import(&store, &g.files);
        (dir, store, g.first_ms, g.last_ms)
    })
}

fn series<'a>(doc: &'a Value, device: &str, name: &str) -> &'a Value {
    let d = doc["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == device)
        .unwrap_or_else(|| panic!("device {device} in {doc:#}"));
    d["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["series"] == name)
        .unwrap_or_else(|| panic!("series {device}/{name} in {d:#}"))
}

fn ms_of(v: &Value) -> i64 {
    humantime::parse_rfc3339(v.as_str().unwrap_or_else(|| panic!("a time: {v}")))
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The projected crossing of `s` is within `error_h` hours of the planted one, on `day` after
/// the first run, and the planted time lies within its interval.
fn assert_projected(s: &Value, limit: &str, first_ms: i64, day: f64, error_h: f64) {
    let next = &s["next"];
    assert_eq!(next["limit"], limit, "{s:#}");
    let planted = first_ms + (day * DAY_MS as f64) as i64;
    let at = ms_of(&next["at"]);
    let off_h = (at - planted) as f64 / 3_600_000.0;
    assert!(
        off_h.abs() <= error_h,
        "{} projected {off_h:.1} h from the planted crossing (allowed {error_h} h): {s:#}",
        s["series"]
    );
    assert!(ms_of(&next["earliest"]) <= planted, "{s:#}");
    if !next["latest"].is_null() {
        assert!(ms_of(&next["latest"]) >= planted, "{s:#}");
    }
}

#[test]
fn trend_finds_each_planted_trend_and_projects_its_crossing() {
    let (_dir, store, first, last) = planted();
    let r = run(&["trend", p(store), "--since", "31d", "--format", "json"]);
    assert_eq!(
        r.code, 1,
        "a crossing within 14 days is a WARNING: {}",
        r.stderr
    );
    let doc = r.json();
    assert_eq!(doc["format"], "plcprobe.results/1");
    assert_eq!(doc["kind"], "trend");
    assert_eq!(doc["verdict"], "WARNING");
    assert_eq!(doc["runs"], 8640);

    let pressure = series(&doc, "press", "press.pressure");
    assert_eq!(pressure["trend"], "rising");
    assert_eq!(pressure["status"], "WARNING");
    let slope = pressure["fit"]["slope_per_d"].as_f64().unwrap();
    assert!((slope - 1.5).abs() < 0.02, "{pressure:#}");
    // 200 + 1.5·d = 250 on day 33.3: 3.3 days after the last run.
    assert_projected(pressure, "range high", *first, 100.0 / 3.0, 6.0);

    let latency = series(&doc, "press", "latency_p50_ms");
    assert_eq!(latency["trend"], "rising");
    // 10 + d = 50 ms on day 40.
    assert_projected(latency, "latency_warn", *first, 40.0, 24.0);

    let errors = series(&doc, "conveyor", "error_rate");
    assert_eq!(errors["trend"], "rising");
    assert_eq!(errors["runs"], 8640);
    // 0.5 % + 0.125 %·d = 5 % on day 36.
    assert_projected(errors, "error_rate_warn", *first, 36.0, 72.0);

    let noisy = series(&doc, "press", "press.temperature");
    assert_eq!(noisy["trend"], "no trend", "{noisy:#}");
    assert_eq!(noisy["status"], "OK");
    assert!(noisy["next"].is_null() && noisy["beyond"].is_null());

    let tank = series(&doc, "tank", "tank.level");
    assert_eq!(tank["trend"], "too few runs");
    assert!(
        tank["note"]
            .as_str()
            .unwrap()
            .starts_with("too few runs: 8 over 35 min"),
        "{tank:#}"
    );
    assert!(tank["next"].is_null() && tank["fit"].is_null());

    let conveyor = doc["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "conveyor")
        .unwrap();
    let changes = conveyor["identity_changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{conveyor:#}");
    assert_eq!(
        changes[0]["changes"]["revision"],
        json!({"from": "3.0.1", "to": "3.1.0"})
    );
    assert_eq!(*last - *first, (RUNS as i64 - 1) * FIVE_MIN_MS);
    let at_day = (ms_of(&changes[0]["at"]) - first) as f64 / DAY_MS as f64;
    assert!((at_day - 18.0).abs() < 0.01, "{at_day}");
}

#[test]
fn a_drift_inside_tolerance_is_called_out() {
    let (_dir, store, first, _last) = planted();
    let r = run(&[
        "trend",
        p(store),
        "--since",
        "31d",
        "--device",
        "conveyor",
        "--format",
        "json",
    ]);
    let doc = r.json();
    let speed = series(&doc, "conveyor", "conveyor.speed");
    if speed["next"].is_null()
        && speed["fit"].is_object()
        && !speed["drifting_inside_tolerance"].as_bool().unwrap()
    {
        // The store gave no baseline for the point: nothing to drift from.
        panic!("conveyor.speed has no tolerance band from its baseline: {speed:#}");
    }
    assert_eq!(speed["trend"], "rising", "{speed:#}");
    assert_eq!(speed["drifting_inside_tolerance"], true, "{speed:#}");
    assert!(
        speed["note"]
            .as_str()
            .unwrap()
            .starts_with("drifting, inside tolerance"),
        "{speed:#}"
    );
    assert_eq!(
        speed["status"], "OK",
        "20 days away is beyond the 14-day horizon"
    );
    // 50 + 0.04·d = 52 on day 50: 20 days after the last run.
    assert_projected(speed, "tolerance high", *first, 50.0, 48.0);
    // Only conveyor's series; conveyor alone warns for its error rate.
    assert_eq!(doc["devices"].as_array().unwrap().len(), 1);
    assert_eq!(r.code, 1);
}

#[test]
fn every_format_says_the_same_and_nagios_has_perfdata() {
    let (_dir, store, _first, _last) = planted();
    let table = run(&["trend", p(store), "--since", "31d", "--color", "never"]);
    assert_eq!(table.code, 1);
    assert!(table.stdout.contains("press.pressure"), "{}", table.stdout);
    let last_line = table.stdout.lines().last().unwrap();
    assert!(
        last_line.starts_with("PLCPROBE WARNING: 3 devices, ")
            && last_line.contains("crossing a limit within 14.0 d")
            && last_line.contains("1 identity changes"),
        "{last_line}"
    );
    let rows = run(&["trend", p(store), "--since", "31d", "--format", "jsonl"]);
    assert_eq!(rows.code, 1);
    let rows = rows.jsonl();
    let pressure = rows
        .iter()
        .find(|r| r["device"] == "press" && r["series"] == "press.pressure")
        .unwrap();
    assert_eq!(pressure["status"], "WARNING");
    assert_eq!(pressure["next_limit"], "range high");
    let eta = pressure["eta_d"].as_f64().unwrap();
    assert!((eta - 3.33).abs() < 0.3, "{pressure}");
    let identity = rows.iter().find(|r| r["series"] == "identity").unwrap();
    assert!(
        identity["note"]
            .as_str()
            .unwrap()
            .contains("revision 3.0.1 → 3.1.0"),
        "{identity}"
    );
    let csv = run(&["trend", p(store), "--since", "31d", "--format", "csv"]);
    let header = csv.stdout.lines().next().unwrap();
    assert!(
        header.starts_with("status,device,series,unit,runs,"),
        "{header}"
    );
    assert_eq!(csv.stdout.lines().count(), rows.len() + 1);

    let n = run(&[
        "trend",
        p(store),
        "--since",
        "31d",
        "--horizon",
        "14d",
        "--format",
        "nagios",
    ]);
    assert_eq!(n.code, 1);
    let first = n.stdout.lines().next().unwrap();
    assert!(
        first.starts_with("PLCPROBE WARNING - trend of 3 devices"),
        "{first}"
    );
    assert!(
        first.contains("'press_press.pressure_days_to_limit'=3."),
        "{first}"
    );
    assert!(
        n.stdout
            .contains("\nWARNING press/latency_p50_ms: reaches latency_warn (50)"),
        "{}",
        n.stdout
    );

    // A horizon of 2 days: no crossing is that close, but conveyor's error rate... is not past
    // its warning rate yet either: OK.
    let q = run(&["trend", p(store), "--since", "31d", "--horizon", "2d", "-q"]);
    assert_eq!(q.code, 0, "{}{}", q.stdout, q.stderr);
    assert_eq!(q.stdout, "", "-q says nothing when all is well");
}

#[test]
fn runs_too_few_to_judge_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let g = generate(dir.path(), 6);
    let store = dir.path().join("short.db");
    import(&store, &g.files);
    let r = run(&["trend", p(&store), "--format", "json"]);
    assert_eq!(
        r.code, 3,
        "nothing to judge is UNKNOWN: {}{}",
        r.stdout, r.stderr
    );
    let doc = r.json();
    assert_eq!(doc["verdict"], "UNKNOWN");
    for d in doc["devices"].as_array().unwrap() {
        for s in d["series"].as_array().unwrap() {
            assert_eq!(s["trend"], "too few runs", "{s:#}");
            assert!(s["next"].is_null() && s["fit"].is_null());
        }
    }
    let t = run(&["trend", p(&store), "--color", "never"]);
    assert_eq!(t.code, 3);
    assert!(
        t.stdout
            .contains("too few runs: 6 over 25 min (needs 12 over 1 h)"),
        "{}",
        t.stdout
    );
    let n = run(&["trend", p(&store), "--format", "nagios"]);
    assert!(
        n.stdout.starts_with("PLCPROBE UNKNOWN - trend of "),
        "{}",
        n.stdout
    );
}

#[test]
fn trend_reads_what_real_checks_recorded() {
    let sim = Sim::start("demo-line.toml", &[]);
    let dir = tempfile::tempdir().unwrap();
    let plan = crate::health::plan(dir.path(), "poll = 2", &[("press", &sim.target(1), None)]);
    let store = dir.path().join("line.db");
    for _ in 0..3 {
        let r = run(&["check", p(&plan), "-q", "--history", p(&store)]);
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    }
    let r = run(&["trend", p(&store), "--format", "json"]);
    assert_eq!(
        r.code, 3,
        "three runs are too few: {}{}",
        r.stdout, r.stderr
    );
    let doc = r.json();
    assert_eq!(doc["runs"], 3);
    let dev = &doc["devices"][0];
    assert_eq!(dev["name"], "press");
    assert_eq!(dev["target"], sim.target(1));
    let names: Vec<&str> = dev["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["series"].as_str().unwrap())
        .collect();
    for want in [
        "latency_p50_ms",
        "latency_p95_ms",
        "error_rate",
        "press.pressure",
        "tank.level",
    ] {
        assert!(names.contains(&want), "{want} in {names:?}");
    }
    let pressure = series(&doc, "press", "press.pressure");
    assert_eq!(pressure["runs"], 3);
    let last = pressure["last"].as_f64().unwrap();
    assert!(
        (last - 180.0).abs() < 5.0,
        "the simulator's pressure: {pressure:#}"
    );
    assert!(pressure["note"]
        .as_str()
        .unwrap()
        .starts_with("too few runs: 3 over "));
    // A device the store does not know.
    let r = run(&["trend", p(&store), "--device", "nosuch"]);
    assert_eq!(r.code, 3);
    assert!(
        r.stderr.contains("no run of device `nosuch`"),
        "{}",
        r.stderr
    );
}

/// `report STORE`: the week's (here the month's) health with trend charts — the moving series
/// drawn with their limits and projection, the noisy point not drawn, the firmware change on
/// the timeline — in one self-contained HTML file that Chromium renders, and in Markdown.
#[test]
fn a_report_over_the_store_draws_each_moving_series_with_its_projection() {
    let (_dir, store, ..) = planted();
    let out = tempfile::tempdir().unwrap();
    let html = out.path().join("month.html");
    let r = run(&["report", p(store), "--since", "31d", "-o", p(&html)]);
    assert_eq!(r.code, 1, "the trends' verdict: {}{}", r.stdout, r.stderr);
    let text = std::fs::read_to_string(&html).unwrap();
    for banned in ["<script", "http://", "https://", " src=", "<link", "url("] {
        assert!(!text.contains(banned), "self-contained: found {banned}");
    }
    // One chart per drawn series, named in its aria-label: latency and error rate of every
    // device with runs enough, and the points that move.
    for drawn in [
        "press.pressure · rising",
        "latency_p50_ms · rising",
        "error_rate · rising",
        "conveyor.speed · rising",
    ] {
        assert!(
            text.contains(&format!("aria-label=\"{drawn}\"")),
            "{drawn} drawn"
        );
    }
    assert!(
        !text.contains("aria-label=\"press.temperature"),
        "the noisy point has no trend, so no chart"
    );
    assert!(
        text.contains("class=\"band\""),
        "conveyor.speed's tolerance band"
    );
    assert!(text.contains("class=\"proj\"") && text.contains("class=\"cross\""));
    assert!(
        text.contains("range high (250) in 3."),
        "pressure's crossing in the table"
    );
    assert!(
        text.contains("revision 3.0.1 → 3.1.0"),
        "the firmware change"
    );
    assert!(text.contains("drifting inside tolerance"));

    let md = out.path().join("month.md");
    let r = run(&[
        "report",
        p(store),
        "--since",
        "31d",
        "-o",
        p(&md),
        "--device",
        "press",
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let text = std::fs::read_to_string(&md).unwrap();
    assert!(
        text.contains("## Trends:") && text.contains("| press.pressure | rising |"),
        "{text}"
    );
    assert!(!text.contains("conveyor"), "--device press only: {text}");

    let Some(chromium) = crate::util::tool("chromium") else {
        return;
    };
    let dom = crate::util::chromium_dom(&chromium, &html, &out.path().join("profile"));
    assert!(
        dom.matches("<svg").count() >= 8 && dom.contains("Trends"),
        "rendered DOM: {}",
        &dom[..dom.len().min(500)]
    );
}
