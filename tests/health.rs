//! snapshot, diff, check and report against `plcprobe sim` on loopback.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{json, Value};

use crate::util::{bin, profile, run, Sim};

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A copy of the demo profile with edits (for an unmapped point, another firmware revision).
fn demo_variant(dir: &Path, name: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let text = std::fs::read_to_string(profile("demo-line.toml")).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, edit(text)).unwrap();
    path
}

fn snapshot(target: &str, profile: &str, out: &Path) -> crate::util::Run {
    run(&["snapshot", target, "--profile", profile, "-o", p(out)])
}

#[test]
fn snapshot_writes_every_point_and_identity() {
    let sim = Sim::start("demo-line.toml", &[]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("base.json");
    let r = snapshot(&sim.target(1), &profile("demo-line.toml"), &out);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let s: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(s["format"], "plcprobe.snapshot/1");
    assert!(s["taken_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(s["identity"]["revision"], "1.4.2");
    assert_eq!(s["identity"]["vendor"], "plcprobe");
    assert_eq!(s["profile"]["name"], "Demo line 1");
    assert_eq!(s["profile"]["sha256"].as_str().unwrap().len(), 64);
    let points = s["points"].as_array().unwrap();
    assert_eq!(points.len(), 12);
    let batch = points.iter().find(|p| p["name"] == "tank.batch").unwrap();
    assert_eq!(batch["value"], "GL-4711");
    assert_eq!(batch["raw"], json!([0x474C, 0x2D34, 0x3731, 0x3100]));
    assert!(points.iter().all(|p| p["status"] == "ok"));
}

#[test]
fn unreadable_point_is_recorded_not_dropped() {
    let sim = Sim::start("demo-line.toml", &[]);
    let dir = tempfile::tempdir().unwrap();
    let prof = demo_variant(dir.path(), "plus.toml", |t| {
        t + "\n[[point]]\nname = \"spare.setpoint\"\naddress = \"hr:900\"\ntype = \"u16\"\n"
    });
    let out = dir.path().join("base.json");
    let r = snapshot(&sim.target(1), p(&prof), &out);
    assert_eq!(
        r.code, 1,
        "partial read is WARNING: {}{}",
        r.stdout, r.stderr
    );
    assert!(
        r.stdout
            .contains("unreadable: spare.setpoint (hr:900): 0x02 Illegal Data Address"),
        "{}",
        r.stdout
    );
    let s: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let sp = s["points"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "spare.setpoint")
        .unwrap()
        .clone();
    assert_eq!(sp["status"], "0x02 Illegal Data Address");
    assert_eq!(sp["value"], Value::Null);
    // The other points of that batch were still read.
    assert_eq!(
        s["points"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["status"] == "ok")
            .count(),
        12
    );
}

#[test]
fn unreachable_snapshot_leaves_the_baseline_alone() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("base.json");
    std::fs::write(&out, b"previous good baseline").unwrap();
    let dead = format!("modbus://127.0.0.1:{}/1", crate::util::free_port());
    let r = snapshot(&dead, &profile("demo-line.toml"), &out);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("nothing was written"), "{}", r.stderr);
    assert_eq!(std::fs::read(&out).unwrap(), b"previous good baseline");
}

#[test]
fn diff_live_volatile_ignored_and_drift_detected() {
    let sim = Sim::start("demo-line.toml", &[]);
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.json");
    assert_eq!(
        snapshot(&sim.target(1), &profile("demo-line.toml"), &base).code,
        0
    );
    std::thread::sleep(Duration::from_millis(1200)); // counters ramp on
    let r = run(&["diff", p(&base), "--format", "json", "--all"]);
    assert_eq!(
        r.code, 0,
        "noise within tolerance, counters volatile: {}",
        r.stdout
    );
    let d = r.json();
    assert_eq!(d["kind"], "diff");
    assert_eq!(d["verdict"], "OK");
    let rows = d["diff"]["rows"].as_array().unwrap();
    let verdict = |n: &str| rows.iter().find(|r| r["name"] == n).unwrap()["verdict"].clone();
    assert_eq!(verdict("press.strokes"), "ignored");
    assert_eq!(verdict("line.energy"), "ignored");
    assert_eq!(verdict("tank.batch"), "unchanged");
    // Drift one point beyond its tolerance: critical, and the table says which.
    let w = run(&[
        "write",
        &sim.target(1),
        "hr:102",
        "600",
        "--type",
        "i16",
        "--allow-write",
    ]);
    assert_eq!(w.code, 0, "{}", w.stderr);
    let r = run(&["diff", p(&base)]);
    assert_eq!(r.code, 2);
    assert!(
        r.stdout.contains("changed")
            && r.stdout.contains("press.temperature")
            && r.stdout.contains("CRITICAL"),
        "{}",
        r.stdout
    );
    // Against another target: the same points read from a fresh device.
    let other = Sim::start("demo-line.toml", &[]);
    assert_eq!(run(&["diff", p(&base), &other.target(1)]).code, 0);
}

#[test]
fn identity_change_is_reported_first() {
    let dir = tempfile::tempdir().unwrap();
    let newer = demo_variant(dir.path(), "newer.toml", |t| {
        t.replace("revision = \"1.4.2\"", "revision = \"1.5.0\"")
    });
    let old_fw = Sim::start("demo-line.toml", &[]);
    let base = dir.path().join("base.json");
    assert_eq!(
        snapshot(&old_fw.target(1), &profile("demo-line.toml"), &base).code,
        0
    );
    // The same device after a firmware update.
    // (`profile` joins an absolute path as that path.)
    let new_fw = Sim::start(p(&newer), &[]);
    let r = run(&["diff", p(&base), &new_fw.target(1)]);
    assert_eq!(r.code, 2);
    assert!(
        r.stdout
            .starts_with("IDENTITY CHANGED: revision: 1.4.2 → 1.5.0"),
        "{}",
        r.stdout
    );
}

fn edit_snapshot(src: &Path, dst: &Path, f: impl Fn(&mut Value)) {
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(src).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(dst, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

fn set_point(v: &mut Value, name: &str, key: &str, value: Value) {
    let pt = v["points"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|p| p["name"] == name)
        .unwrap();
    pt[key] = value;
}

#[test]
fn diff_files_tolerance_edges_severity_and_profile_mismatch() {
    let sim = Sim::start("demo-line.toml", &[]);
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("snap.json");
    assert_eq!(
        snapshot(&sim.target(1), &profile("demo-line.toml"), &snap).code,
        0
    );
    let (base, cur) = (dir.path().join("base.json"), dir.path().join("cur.json"));
    // Temperature tolerance is 1.5: 40.0 → 41.5 is unchanged, 41.6 is changed.
    edit_snapshot(&snap, &base, |v| {
        set_point(v, "press.temperature", "value", json!(40.0));
    });
    edit_snapshot(&snap, &cur, |v| {
        set_point(v, "press.temperature", "value", json!(41.5));
    });
    assert_eq!(
        run(&["diff", p(&base), p(&cur)]).code,
        0,
        "equal to the tolerance is unchanged"
    );
    edit_snapshot(&snap, &cur, |v| {
        set_point(v, "press.temperature", "value", json!(41.6));
    });
    let r = run(&["diff", p(&base), p(&cur), "--format", "csv"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stdout.lines().any(
            |l| l.starts_with("changed,press.temperature,hr:102,40.0,41.6,1.6,1.5,°C,critical")
        ),
        "{}",
        r.stdout
    );
    // The same drift on a severity = "warning" point is a WARNING.
    let soften = |v: &mut Value| set_point(v, "press.temperature", "severity", json!("warning"));
    edit_snapshot(&base.clone(), &base, soften);
    edit_snapshot(&cur.clone(), &cur, soften);
    assert_eq!(run(&["diff", p(&base), p(&cur)]).code, 1);
    // An unreadable point (exception) is critical; a missing one a warning.
    edit_snapshot(&snap, &cur, |v| {
        set_point(
            v,
            "tank.level",
            "status",
            json!("0x04 Server Device Failure"),
        );
        set_point(v, "tank.level", "value", Value::Null);
    });
    assert_eq!(run(&["diff", p(&snap), p(&cur)]).code, 2);
    edit_snapshot(&snap, &cur, |v| {
        v["points"]
            .as_array_mut()
            .unwrap()
            .retain(|p| p["name"] != "tank.batch");
    });
    let r = run(&["diff", p(&snap), p(&cur), "--format", "json"]);
    assert_eq!(r.code, 1);
    assert_eq!(r.json()["diff"]["counts"]["missing"], 1);
    // Another profile: refused unless --force.
    edit_snapshot(&snap, &cur, |v| {
        v["profile"]["sha256"] = json!("0".repeat(64));
    });
    let r = run(&["diff", p(&snap), p(&cur)]);
    assert_eq!(r.code, 3);
    assert!(r.stderr.contains("--force"), "{}", r.stderr);
    assert_eq!(run(&["diff", p(&snap), p(&cur), "--force"]).code, 0);
    // Not a snapshot at all.
    std::fs::write(&cur, "{\"hello\": 1}").unwrap();
    let r = run(&["diff", p(&snap), p(&cur)]);
    assert_eq!(r.code, 3);
    assert!(
        r.stderr.contains("is not a plcprobe snapshot"),
        "{}",
        r.stderr
    );
    let r = run(&["diff", p(&dir.path().join("none.json"))]);
    assert_eq!(r.code, 3);
    assert!(
        r.stderr.contains("plcprobe snapshot"),
        "a missing baseline says how to create one: {}",
        r.stderr
    );
}

/// A plan in `dir` for devices (name, target, baseline), with extra [defaults] lines.
pub fn plan(dir: &Path, defaults: &str, devices: &[(&str, &str, Option<&str>)]) -> PathBuf {
    let mut t = format!("[defaults]\n{defaults}\n");
    for (name, target, base) in devices {
        let name = name.replace('\\', "\\\\").replace('"', "\\\"");
        t += &format!(
            "\n[[device]]\nname = \"{name}\"\ntarget = \"{target}\"\nprofile = \"{}\"\n",
            profile("demo-line.toml")
        );
        if let Some(b) = base {
            t += &format!("baseline = \"{b}\"\n");
        }
    }
    let path = dir.join("plan.toml");
    std::fs::write(&path, t).unwrap();
    path
}

#[test]
fn check_exit_codes_for_every_verdict() {
    let ok = Sim::start("demo-line.toml", &[]);
    let flaky = Sim::start(
        "demo-line.toml",
        &["--fault", "exception=0x06@0.05", "--seed", "5"],
    );
    let dir = tempfile::tempdir().unwrap();
    let fast = "rate = 1000.0\ntimeout = \"300ms\"";
    let pl = plan(dir.path(), fast, &[("press", &ok.target(1), None)]);
    let r = run(&["check", p(&pl)]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("PLCPROBE OK"), "{}", r.stdout);
    let r = run(&["check", p(&pl), "-q"]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, ""),
        "-q prints nothing when all is well"
    );
    // A few exceptions, below the critical error rate: WARNING.
    let pl = plan(
        dir.path(),
        &format!("{fast}\npoll = 10\nerror_rate_crit = 0.5"),
        &[("conveyor", &flaky.target(1), None)],
    );
    let r = run(&["check", p(&pl), "--format", "json"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.json()["devices"][0]["problems"][0]
        .as_str()
        .unwrap()
        .contains("0x06 Server Device Busy"));
    // Unreachable: CRITICAL, and -q prints just that device.
    let dead = format!("modbus://127.0.0.1:{}/1", crate::util::free_port());
    let pl = plan(
        dir.path(),
        fast,
        &[("press", &ok.target(1), None), ("tank", &dead, None)],
    );
    let r = run(&["check", p(&pl), "-q"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stdout.contains("tank")
            && r.stdout.contains("unreachable")
            && !r.stdout.contains("press "),
        "{}",
        r.stdout
    );
    // Out of range: CRITICAL (conveyor.speed has range 0..60; write the f32 75.0 in its cdab order).
    let w = run(&[
        "write",
        &ok.target(1),
        "hr:200",
        "75.0",
        "--type",
        "f32",
        "--order",
        "cdab",
        "--allow-write",
    ]);
    assert_eq!(w.code, 0);
    let pl = plan(dir.path(), fast, &[("press", &ok.target(1), None)]);
    let r = run(&["check", p(&pl), "--format", "json"]);
    assert_eq!(r.code, 2);
    assert!(
        r.json()["devices"][0]["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p
                .as_str()
                .unwrap()
                .contains("conveyor.speed = 75.0 m/min outside its range [0, 60]")),
        "{}",
        r.stdout
    );
    // A bad plan: UNKNOWN with file, line and key.
    std::fs::write(&pl, "[defaults]\nlatency = \"1s\"\n").unwrap();
    let r = run(&["check", p(&pl)]);
    assert_eq!(r.code, 3);
    assert!(
        r.stderr.contains("plan.toml:2:") && r.stderr.contains("latency"),
        "{}",
        r.stderr
    );
}

#[test]
fn check_drift_identity_and_baseline_from_another_profile() {
    let sim = Sim::start("demo-line.toml", &[]);
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("press.json");
    assert_eq!(
        snapshot(&sim.target(1), &profile("demo-line.toml"), &base).code,
        0
    );
    let pl = plan(
        dir.path(),
        "rate = 1000.0",
        &[("press", &sim.target(1), Some(p(&base)))],
    );
    assert_eq!(run(&["check", p(&pl)]).code, 0);
    assert_eq!(
        run(&[
            "write",
            &sim.target(1),
            "hr:102",
            "600",
            "--type",
            "i16",
            "--allow-write"
        ])
        .code,
        0
    );
    let r = run(&["check", p(&pl), "--format", "json"]);
    assert_eq!(r.code, 2);
    let dev = &r.json()["devices"][0];
    assert!(
        dev["problems"][0]
            .as_str()
            .unwrap()
            .starts_with("drift: press.temperature"),
        "{dev}"
    );
    assert_eq!(dev["diff"]["counts"]["changed"], 1);
    // A baseline from another profile: UNKNOWN, unless --force.
    let other = dir.path().join("other.json");
    edit_snapshot(&base, &other, |v| {
        v["profile"]["sha256"] = json!("f".repeat(64));
    });
    let pl = plan(
        dir.path(),
        "rate = 1000.0",
        &[("press", &sim.target(1), Some(p(&other)))],
    );
    let r = run(&["check", p(&pl)]);
    assert_eq!(r.code, 3, "{}", r.stdout);
    assert!(r.stdout.contains("another profile"), "{}", r.stdout);
    assert_eq!(
        run(&["check", p(&pl), "--force"]).code,
        2,
        "compared anyway: the drift shows"
    );
}

#[test]
fn overlapping_runs_are_blocked_by_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("lock.pcapng");
    let slow = Sim::start(
        "demo-line.toml",
        &["--fault", "delay=40ms", "--record", p(&rec)],
    );
    let pl = plan(
        dir.path(),
        "rate = 1000.0\npoll = 5",
        &[("press", &slow.target(1), None)],
    );
    // The lock file lives in the temp folder: a private one, so the test can see who holds it.
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let check = || {
        let mut c = bin();
        c.env("TMPDIR", &tmp);
        c
    };
    let mut first = crate::util::Guard(
        check()
            .args(["check", p(&pl), "-q"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Wait until the first run holds the lock (it writes its pid into the lock file).
    let holder = format!("pid {},", first.0.id());
    let t0 = Instant::now();
    while !std::fs::read_dir(&tmp)
        .unwrap()
        .any(|e| std::fs::read_to_string(e.unwrap().path()).is_ok_and(|t| t.starts_with(&holder)))
    {
        assert!(
            first.0.try_wait().unwrap().is_none(),
            "the first check ended before it was seen holding the lock"
        );
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the first check never took the lock"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Five rounds of 40 ms replies: the first run holds the lock for a good while yet.
    let r = crate::util::run_cmd(check(), &["check", p(&pl)]);
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("still running") && r.stderr.contains(&holder[..holder.len() - 1]),
        "{}",
        r.stderr
    );
    // --wait queues behind it and then runs.
    let second = check()
        .args(["check", p(&pl), "--wait", "-q"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let first_code = first.0.wait().unwrap().code();
    let first_end = Instant::now();
    let second = second.wait_with_output().unwrap();
    let second_end = Instant::now();
    assert!(matches!(first_code, Some(0 | 1)), "first: {first_code:?}");
    assert!(
        matches!(second.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(second_end > first_end);
    // The device's view: two connections (the refused run made none), the second one's first
    // request only after the first one's last answer. Without the lock they would interleave:
    // the first run takes seconds, the second was started while it ran.
    let tx = run(&["decode", p(&rec), "--transactions", "--format", "jsonl"]).jsonl();
    let at = |t: &Value| {
        chrono::DateTime::parse_from_rfc3339(t["time"].as_str().unwrap())
            .unwrap()
            .timestamp_micros() as f64
            / 1e6
    };
    let mut runs: BTreeMap<String, (f64, f64, usize)> = BTreeMap::new();
    for t in &tx {
        let start = at(t);
        let end = start + t["rt_ms"].as_f64().unwrap_or(0.0) / 1e3;
        let e = runs
            .entry(t["master"].as_str().unwrap().to_string())
            .or_insert((start, end, 0));
        e.0 = e.0.min(start);
        e.1 = e.1.max(end);
        e.2 += 1;
    }
    let mut spans: Vec<(f64, f64, usize)> = runs.into_values().collect();
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert_eq!(spans.len(), 2, "one connection per run: {spans:?}");
    assert!(
        spans.iter().all(|s| s.2 >= 5),
        "both runs polled: {spans:?}"
    );
    assert!(
        spans[1].0 > spans[0].1,
        "the waiting run polled only after the first one's last answer: {spans:?}"
    );
}

fn nagios_ok(text: &str, code: i32) {
    let first = text.lines().next().unwrap();
    let (status, perf) = first.split_once(" | ").expect("perfdata after ' | '");
    let word = ["OK", "WARNING", "CRITICAL", "UNKNOWN"][code as usize];
    assert!(
        status.starts_with(&format!("PLCPROBE {word} - ")),
        "status word matches exit code {code}: {status}"
    );
    assert!(!status.contains('|'));
    // Monitoring-plugins perfdata: 'label'=value[UOM];[warn];[crit];[min];[max], space separated;
    // a quoted label may hold spaces, and a quote inside it is doubled.
    let mut items = Vec::new();
    let mut rest = perf;
    while !rest.is_empty() {
        assert!(rest.starts_with('\''), "label must be quoted: {rest}");
        let mut end = 1;
        let b = rest.as_bytes();
        loop {
            let q = end + rest[end..].find('\'').expect("closing quote");
            if b.get(q + 1) == Some(&b'\'') {
                end = q + 2;
            } else {
                end = q + 1;
                break;
            }
        }
        let stop = rest[end..].find(' ').map_or(rest.len(), |s| end + s);
        items.push(&rest[..stop]);
        rest = rest[stop..].trim_start();
    }
    assert!(!items.is_empty());
    for item in items {
        let (label, rest) = item
            .rsplit_once('=')
            .unwrap_or_else(|| panic!("no '=' in {item}"));
        assert!(
            label.starts_with('\'') && label.ends_with('\'') && label.len() > 2,
            "quoted label: {item}"
        );
        assert!(
            !label[1..label.len() - 1].replace("''", "").contains('\''),
            "inner quotes doubled: {item}"
        );
        let fields: Vec<&str> = rest.split(';').collect();
        assert!(fields.len() <= 5, "{item}");
        let value = fields[0].trim_end_matches(['s', '%', 'B', 'c']);
        value
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("numeric value: {item}"));
        let uom = &fields[0][value.len()..];
        assert!(["", "s", "%", "B", "c"].contains(&uom), "{item}");
        for f in &fields[1..] {
            assert!(
                f.is_empty() || f.parse::<f64>().is_ok(),
                "threshold/min/max numeric: {item}"
            );
        }
    }
}

/// `promtool check metrics` on a textfile (Debian's prometheus package, installed by
/// scripts/test: required under CI, skipped loudly elsewhere).
fn promtool_check(path: &Path) {
    let Some(promtool) = crate::util::tool("promtool") else {
        return;
    };
    let out = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(path).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn prometheus_ok(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    promtool_check(path);
    // Strict parser: HELP and TYPE before a family's samples, names and labels well formed,
    // values numeric, no duplicate series.
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !n.starts_with(|c: char| c.is_ascii_digit())
    };
    let mut typed = std::collections::HashSet::new();
    let mut series = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            assert!(name_ok(rest.split(' ').next().unwrap()), "{line}");
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (n, t) = rest.split_once(' ').unwrap();
            assert!(name_ok(n) && t == "gauge", "{line}");
            assert!(typed.insert(n.to_string()), "one TYPE per family: {line}");
        } else {
            let (series_id, value) = line.rsplit_once(' ').unwrap();
            value
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("value: {line}"));
            let name = series_id.split('{').next().unwrap();
            assert!(
                name_ok(name) && typed.contains(name),
                "sample after its TYPE: {line}"
            );
            if let Some(labels) = series_id
                .strip_prefix(name)
                .and_then(|l| l.strip_prefix('{'))
                .and_then(|l| l.strip_suffix('}'))
            {
                for kv in labels.split("\",").map(|kv| kv.trim_end_matches('"')) {
                    let (k, v) = kv
                        .split_once("=\"")
                        .unwrap_or_else(|| panic!("label: {line}"));
                    assert!(name_ok(k) && !v.contains('\n'), "{line}");
                }
            }
            assert!(
                series.insert(series_id.to_string()),
                "duplicate series: {line}"
            );
        }
    }
    assert!(
        typed.contains("plcprobe_check_status")
            && typed.contains("plcprobe_check_latency_p50_seconds")
    );
}

#[test]
fn check_outputs_nagios_prometheus_results_and_reports() {
    let ok = Sim::start("demo-line.toml", &[]);
    let dir = tempfile::tempdir().unwrap();
    let dead = format!("modbus://127.0.0.1:{}/1", crate::util::free_port());
    let pl = plan(
        dir.path(),
        "rate = 1000.0",
        &[
            ("press", &ok.target(1), None),
            ("o'brien \"line\"", &dead, None),
        ],
    );
    let prom = dir.path().join("plcprobe.prom");
    let results = dir.path().join("r.json");
    let html = dir.path().join("r.html");
    let r = run(&[
        "check",
        p(&pl),
        "--format",
        "nagios",
        "--prometheus",
        p(&prom),
        "--results",
        p(&results),
        "--report",
        p(&html),
    ]);
    assert_eq!(r.code, 2);
    nagios_ok(&r.stdout, r.code);
    assert!(r.stdout.contains("'press_rtt'="), "{}", r.stdout);
    assert!(
        r.stdout.contains("'o''brien \"line\"_errors'"),
        "quote doubled in perfdata labels: {}",
        r.stdout
    );
    prometheus_ok(&prom);
    assert!(std::fs::read_to_string(&prom)
        .unwrap()
        .contains("device=\"o'brien \\\"line\\\"\""));
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&results).unwrap()).unwrap();
    assert_eq!(
        (doc["kind"].as_str(), doc["verdict"].as_str()),
        (Some("check"), Some("CRITICAL"))
    );
    assert!(doc["command"].as_str().unwrap().contains("check"));
    // report: the same results in all three formats.
    for ext in ["md", "html", "json"] {
        let outp = dir.path().join(format!("incident.{ext}"));
        let r = run(&["report", p(&results), "-o", p(&outp)]);
        assert_eq!(r.code, 2, "report exits with the verdict: {}", r.stderr);
        let text = std::fs::read_to_string(&outp).unwrap();
        assert!(text.contains("CRITICAL") && text.contains("press"), "{ext}");
    }
    let md = std::fs::read_to_string(dir.path().join("incident.md")).unwrap();
    assert!(
        md.contains("| **CRITICAL** |") && md.contains("plcprobe SIM-LINE rev 1.4.2"),
        "{md}"
    );
    let r = run(&["report", p(&pl), "-o", p(&dir.path().join("x.html"))]);
    assert_eq!(r.code, 3, "a plan is not a results file: {}", r.stderr);
}

#[test]
fn html_report_is_self_contained_and_renders_in_chromium() {
    let good = Sim::start("demo-line.toml", &[]);
    let ok = Sim::start("demo-line.toml", &["--fault", "exception=0x06@0.1"]);
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("b.json");
    assert_eq!(
        snapshot(&good.target(1), &profile("demo-line.toml"), &base).code,
        0
    );
    assert_eq!(
        run(&[
            "write",
            &ok.target(1),
            "hr:102",
            "600",
            "--type",
            "i16",
            "--allow-write"
        ])
        .code,
        0
    );
    let pl = plan(
        dir.path(),
        "rate = 1000.0",
        &[("press <b>", &ok.target(1), Some(p(&base)))],
    );
    let html = dir.path().join("r.html");
    let r = run(&["check", p(&pl), "--report", p(&html), "-q"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let text = std::fs::read_to_string(&html).unwrap();
    for banned in [
        "<script", "http://", "https://", " src=", "<link", "@import", "url(",
    ] {
        assert!(!text.contains(banned), "self-contained: found {banned}");
    }
    assert!(
        text.contains("press &lt;b&gt;") && !text.contains("press <b>"),
        "device text escaped"
    );
    assert!(
        text.contains("<svg") && text.contains("polyline"),
        "inline SVG charts"
    );
    assert!(text.contains("drift: press.temperature"));
    let Some(chromium) = crate::util::tool("chromium") else {
        return;
    };
    let shot = dir.path().join("shot.png");
    let profile_dir = dir.path().join("chromium-profile");
    let url = format!("file://{}", html.display());
    let out = Command::new(&chromium)
        .args(crate::util::CHROMIUM_FLAGS)
        .args(["--enable-logging=stderr", "--v=0"])
        .arg(format!("--user-data-dir={}", profile_dir.display()))
        .args([
            "--window-size=1100,1600",
            &format!("--screenshot={}", shot.display()),
            &url,
        ])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        shot.exists() && std::fs::metadata(&shot).unwrap().len() > 20_000,
        "a real screenshot: {log}"
    );
    for failed in ["net::ERR_", "Failed to load resource", "ERR_FILE_NOT_FOUND"] {
        assert!(!log.contains(failed), "no failed loads: {log}");
    }
    let dom = crate::util::chromium_dom(&chromium, &html, &profile_dir);
    assert!(
        dom.contains("plcprobe diagnostic report")
            && dom.contains("CRITICAL")
            && dom.contains("drift: press.temperature"),
        "rendered DOM: {}",
        &dom[..dom.len().min(500)]
    );
}

#[test]
fn demo_tells_the_whole_story() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(&["demo", "--out", p(dir.path())]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("Verdict: PLCPROBE CRITICAL"),
        "{}",
        r.stdout
    );
    for needle in [
        "drift: press.temperature",
        "0x06 Server Device Busy",
        "tank.level",
        "demo-report.html",
    ] {
        assert!(r.stdout.contains(needle), "{needle}: {}", r.stdout);
    }
    let html = std::fs::read_to_string(dir.path().join("demo-report.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("CRITICAL"));
    assert!(
        html.contains("<h2>Capture"),
        "the report has the decode section"
    );
    let md = std::fs::read_to_string(dir.path().join("demo-report.md")).unwrap();
    assert!(md.contains("## Capture"), "{md}");
    // The recorded capture decodes by itself to the same conveyor exceptions.
    assert!(r.stdout.contains("5. What the wire showed"), "{}", r.stdout);
    let cap = dir.path().join("demo-capture.pcapng");
    let d = run(&["decode", p(&cap), "--format", "json"]);
    assert_eq!(d.code, 0, "{}", d.stderr);
    let doc = d.json();
    assert_eq!(doc["devices"].as_array().unwrap().len(), 3);
    let conveyor_line = r
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("conveyor") && l.contains("answered, response"))
        .unwrap();
    let busy: u64 = doc["devices"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|x| x["exceptions"].as_array().unwrap().clone())
        .filter(|e| e["code"] == 6)
        .map(|e| e["count"].as_u64().unwrap())
        .sum();
    assert!(
        busy > 0 && conveyor_line.contains(&format!("{busy} × 0x06")),
        "{conveyor_line} / {busy}"
    );
}

#[test]
fn poll_results_prometheus_and_report() {
    let sim = Sim::start(
        "demo-line.toml",
        &["--fault", "exception=0x06@0.2", "--seed", "9"],
    );
    let dir = tempfile::tempdir().unwrap();
    let (res, prom) = (dir.path().join("poll.json"), dir.path().join("poll.prom"));
    let r = run(&[
        "poll",
        "--profile",
        &profile("demo-line.toml"),
        &sim.target(1),
        "--interval",
        "0",
        "--count",
        "40",
        "-q",
        "--results",
        p(&res),
        "--prometheus",
        p(&prom),
    ]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&res).unwrap()).unwrap();
    assert_eq!(
        (doc["kind"].as_str(), doc["verdict"].as_str()),
        (Some("poll"), Some("WARNING"))
    );
    assert_eq!(doc["samples"].as_array().unwrap().len(), 40);
    assert!(doc["samples"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["error"] == "0x06 Server Device Busy"));
    let energy = doc["points"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "line.energy")
        .unwrap()
        .clone();
    assert_eq!(energy["trend"].as_array().unwrap().len(), 40);
    let text = std::fs::read_to_string(&prom).unwrap();
    assert!(
        text.contains("plcprobe_poll_errors{target=") && text.contains("kind=\"exception_0x06\""),
        "{text}"
    );
    promtool_check(&prom);
    let html = dir.path().join("poll.html");
    let r = run(&["report", p(&res), "-o", p(&html)]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("round trip in ms per poll") && page.contains("line.energy"),
        "poll chart and trends"
    );
    let md = dir.path().join("poll.md");
    assert_eq!(run(&["report", p(&res), "-o", p(&md)]).code, 1);
    assert!(std::fs::read_to_string(&md).unwrap().contains("## Poll of"));
}

#[test]
fn file_diff_reads_only_differing_lines_and_agrees_with_a_full_parse() {
    // Two snapshots as plcprobe writes them (one point per line) go through the line-level
    // fast path; the same current snapshot re-indented by another tool goes through the full
    // parse. Both must give the same diff, with volatile, unreadable and drifted points.
    let sim = Sim::start("demo-line.toml", &[]);
    let dir = tempfile::tempdir().unwrap();
    let prof = demo_variant(dir.path(), "plus.toml", |t| {
        t + "\n[[point]]\nname = \"spare.setpoint\"\naddress = \"hr:900\"\ntype = \"u16\"\n"
    });
    let (base, cur) = (dir.path().join("base.json"), dir.path().join("cur.json"));
    assert_eq!(snapshot(&sim.target(1), p(&prof), &base).code, 1);
    let w = run(&[
        "write",
        &sim.target(1),
        "hr:102",
        "600",
        "--type",
        "i16",
        "--allow-write",
    ]);
    assert_eq!(w.code, 0, "{}", w.stderr);
    assert_eq!(snapshot(&sim.target(1), p(&prof), &cur).code, 1);
    let pretty = dir.path().join("cur-pretty.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&cur).unwrap()).unwrap();
    std::fs::write(&pretty, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    let fast = run(&["diff", p(&base), p(&cur), "--format", "json"]);
    let full = run(&["diff", p(&base), p(&pretty), "--format", "json"]);
    assert_eq!(fast.code, full.code);
    assert_eq!(fast.json()["diff"], full.json()["diff"]);
    let counts = &fast.json()["diff"]["counts"];
    assert_eq!(counts["unreadable"], 1, "{counts}");
    assert!(counts["changed"].as_u64().unwrap() >= 1, "{counts}");
    assert!(counts["unchanged"].as_u64().unwrap() >= 1, "{counts}");
}
