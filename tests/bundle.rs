//! `bundle -o FILE.zip INPUT…` and `bundle --verify`: a bundle made from a real `check
//! --results` and a real `diff` against `plcprobe sim`, plus a capture, opened by standard zip
//! tools (`unzip -t`, Python's `zipfile`, which also recomputes every SHA-256 of the manifest),
//! then verified, and verified again after Python rewrites it with a member changed, removed or
//! added. Missing baselines, non-bundles, and an input appended to while it is copied (held
//! deterministically: strace delays each open of that file while another process appends).

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use serde_json::Value;

use crate::{
    health::plan,
    util::{bin, profile, python, root, run, run_cmd, tool, Guard, Sim},
};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// plcprobe `args` run in `dir`.
fn run_in(dir: &Path, args: &[&str]) -> crate::util::Run {
    let mut c = bin();
    c.current_dir(dir);
    run_cmd(c, args)
}

/// Run a Python script with `args`; its stdout (it must succeed).
fn py(python: &Path, script: &str, args: &[&str]) -> String {
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Opens the archive with zipfile, tests every member's CRC, recomputes every SHA-256 and size
/// of the manifest, and prints the member names and the manifest as JSON.
const INSPECT: &str = r#"
import hashlib, json, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
assert z.testzip() is None, "a member's CRC is bad"
m = json.loads(z.read("MANIFEST.json"))
for e in m["members"]:
    data = z.read(e["path"])
    assert len(data) == e["size"], e["path"]
    assert hashlib.sha256(data).hexdigest() == e["sha256"], e["path"]
print(json.dumps({"names": z.namelist(), "manifest": m}))
"#;

/// Rewrites the archive argv[1] into argv[2]: member argv[4] changed (`change`: a byte
/// appended), left out (`drop`), or a member argv[4] added (`add`), per argv[3].
const REWRITE: &str = r#"
import sys, zipfile
src, dst, how, name = sys.argv[1:5]
with zipfile.ZipFile(src) as a, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as b:
    for i in a.infolist():
        data = a.read(i)
        if i.filename == name and how == "drop":
            continue
        if i.filename == name and how == "change":
            data = data + b" "
        b.writestr(i, data)
    if how == "add":
        b.writestr(name, b"planted")
"#;

#[test]
fn a_bundle_of_real_check_and_diff_results_opens_everywhere_and_verifies() {
    let (Some(python), Some(unzip)) = (python(), tool("unzip")) else {
        return;
    };
    let sim = Sim::start("demo-line.toml", &[]);
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    // As a technician runs them in one folder: relative paths everywhere.
    let prof = profile("demo-line.toml");
    let r = run_in(
        w,
        &[
            "snapshot",
            &sim.target(1),
            "--profile",
            &prof,
            "-o",
            "base.json",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run_in(
        w,
        &[
            "snapshot",
            &sim.target(1),
            "--profile",
            &prof,
            "-o",
            "now.json",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    plan(
        w,
        "poll = 2",
        &[("press", &sim.target(1), Some("base.json"))],
    );
    let r = run_in(w, &["check", "plan.toml", "--results", "results.json"]);
    assert!(r.code <= 2, "{}", r.stderr);
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(w.join("results.json")).unwrap()).unwrap();
    assert_eq!(
        results["devices"][0]["baseline"], "./base.json",
        "relative, as check resolved it"
    );
    let r = run_in(w, &["diff", "base.json", "now.json", "--format", "json"]);
    assert!(r.code <= 2, "{}", r.stderr);
    std::fs::write(w.join("drift.json"), &r.stdout).unwrap();
    let capture = root().join("fixtures/pcap/modbus/sim-poll-exceptions-write.pcapng");

    // Bundled from another folder: the relative baseline is found beside the results.
    let elsewhere = tempfile::tempdir().unwrap();
    let zip = elsewhere.path().join("incident-4711.zip");
    let r = run_in(
        elsewhere.path(),
        &[
            "bundle",
            "-o",
            "incident-4711.zip",
            s(&w.join("results.json")),
            s(&w.join("drift.json")),
            s(&capture),
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let t = Command::new(&unzip).arg("-t").arg(&zip).output().unwrap();
    assert!(
        t.status.success() && String::from_utf8_lossy(&t.stdout).contains("No errors detected"),
        "unzip -t: {}",
        String::from_utf8_lossy(&t.stdout)
    );
    let seen: Value = serde_json::from_str(&py(&python, INSPECT, &[s(&zip)])).unwrap();
    let mut names: Vec<&str> = seen["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "MANIFEST.json",
            "captures/sim-poll-exceptions-write.pcapng",
            "report.html",
            "report.md",
            "results/drift.json",
            "results/results.json",
            "snapshots/base.json",
            "snapshots/now.json",
        ]
    );
    let m = &seen["manifest"];
    assert_eq!(m["format"], "plcprobe.bundle/1");
    assert_eq!(m["tool_version"], env!("CARGO_PKG_VERSION"));
    assert!(m["command"]
        .as_str()
        .unwrap()
        .contains("bundle -o incident-4711.zip"));
    assert!(m["created_at"].as_str().unwrap().ends_with('Z'));
    let host = py(&python, "import socket; print(socket.gethostname())", &[]);
    assert_eq!(m["host"], host.trim());
    let member = |path: &str| {
        m["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["path"] == path)
            .unwrap()
            .clone()
    };
    assert_eq!(
        member("results/results.json")["command"],
        results["command"]
    );
    let base = member("snapshots/base.json");
    assert_eq!(base["kind"], "snapshot");
    assert_eq!(
        base["referenced_by"].as_array().unwrap().len(),
        2,
        "check and diff"
    );
    assert_eq!(
        member("captures/sim-poll-exceptions-write.pcapng")["size"],
        std::fs::metadata(&capture).unwrap().len()
    );
    // Members are the files byte for byte; the report is `report`'s.
    let read = |name: &str| {
        py(
            &python,
            "import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))",
            &[s(&zip), name],
        )
    };
    assert_eq!(
        read("results/results.json"),
        std::fs::read_to_string(w.join("results.json")).unwrap()
    );
    assert_eq!(
        read("snapshots/base.json"),
        std::fs::read_to_string(w.join("base.json")).unwrap()
    );
    let md = read("report.md");
    assert!(md.contains("press") && md.contains("base.json"), "{md}");
    assert!(read("report.html").contains("<html"));

    // Verified as made; then after a member is changed, removed, or one is added.
    let r = run(&["bundle", "--verify", s(&zip)]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.starts_with("OK:") && r.stdout.contains("7 member(s) match"),
        "{}",
        r.stdout
    );
    for (how, name, says) in [
        (
            "change",
            "results/results.json",
            "MODIFIED results/results.json",
        ),
        (
            "drop",
            "captures/sim-poll-exceptions-write.pcapng",
            "MISSING captures/sim-poll-exceptions-write.pcapng",
        ),
        ("add", "results/planted.json", "EXTRA results/planted.json"),
    ] {
        let bad = elsewhere.path().join(format!("{how}.zip"));
        py(&python, REWRITE, &[s(&zip), s(&bad), how, name]);
        let r = run(&["bundle", "--verify", s(&bad)]);
        assert_eq!(r.code, 2, "{how}: {}{}", r.stdout, r.stderr);
        assert!(r.stdout.contains(says), "{how}: {}", r.stdout);
        assert_eq!(
            r.stdout.lines().filter(|l| l.contains(name)).count(),
            1,
            "{how}: only that member"
        );
    }
    // Not a bundle: exit 3.
    let text = elsewhere.path().join("notes.zip");
    std::fs::write(&text, "not a zip").unwrap();
    let r = run(&["bundle", "--verify", s(&text)]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("is not a zip archive"), "{}", r.stderr);
    let plain = elsewhere.path().join("plain.zip");
    py(
        &python,
        REWRITE,
        &[s(&zip), s(&plain), "drop", "MANIFEST.json"],
    );
    let r = run(&["bundle", "--verify", s(&plain)]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("without MANIFEST.json"), "{}", r.stderr);

    // A baseline the results name that is gone: an error naming it, nothing written; with
    // --allow-missing, listed as omitted.
    std::fs::remove_file(w.join("base.json")).unwrap();
    let out = elsewhere.path().join("partial.zip");
    let r = run(&[
        "bundle",
        "-o",
        s(&out),
        s(&w.join("results.json")),
        s(&w.join("drift.json")),
    ]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("base.json (named by"), "{}", r.stderr);
    assert!(r.stderr.contains("--allow-missing"), "{}", r.stderr);
    assert!(!out.exists());
    let r = run(&[
        "bundle",
        "-o",
        s(&out),
        "--allow-missing",
        s(&w.join("results.json")),
        s(&w.join("drift.json")),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("base.json (named by"), "{}", r.stderr);
    let seen: Value = serde_json::from_str(&py(&python, INSPECT, &[s(&out)])).unwrap();
    let omitted = seen["manifest"]["omitted"].as_array().unwrap();
    assert_eq!(omitted.len(), 2, "named by check and by diff: {omitted:?}");
    assert!(omitted
        .iter()
        .all(|o| o["path"].as_str().unwrap().ends_with("base.json")));
    let r = run(&["bundle", "--verify", s(&out)]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    drop(sim);
}

#[test]
fn inputs_of_no_known_kind_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("notes.txt"), "shift notes").unwrap();
    std::fs::write(d.join("other.json"), "{\"format\": \"other/1\"}").unwrap();
    let out = d.join("b.zip");
    for (input, says) in [
        ("notes.txt", "neither a capture"),
        ("other.json", "neither plcprobe results"),
        (".", "not a regular file"),
        ("absent.json", "cannot read"),
    ] {
        let r = run(&["bundle", "-o", s(&out), s(&d.join(input))]);
        assert_eq!(r.code, 3, "{input}: {}", r.stderr);
        assert!(r.stderr.contains(says), "{input}: {}", r.stderr);
        assert!(!out.exists());
    }
    assert_eq!(
        std::fs::read_dir(d).unwrap().count(),
        2,
        "no temporary left"
    );
}

#[test]
fn a_file_appended_to_while_it_is_bundled_is_refused_and_nothing_is_left() {
    let Some(strace) = tool("strace") else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let growing = d.join("live.pcapng");
    std::fs::copy(
        root().join("fixtures/pcap/modbus/sim-poll-exceptions-write.pcapng"),
        &growing,
    )
    .unwrap();
    // Another process appends to it every 20 ms, as a capture still being written would.
    let appender = Guard(
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "while :; do printf x >> '{}'; sleep 0.02; done",
                growing.display()
            ))
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Each open of the file by plcprobe is held 700 ms: between the first read and the copy
    // the appender has written many times, whatever the machine's speed.
    let out = d.join("evidence.zip");
    let b = bin();
    let mut c = Command::new(&strace);
    c.args(["-f", "-qq", "-o", "/dev/null", "-P"])
        .arg(&growing)
        .args([
            "-e",
            "trace=openat",
            "-e",
            "inject=openat:delay_exit=700000",
            "--",
        ])
        .arg(b.get_program())
        .args(["bundle", "-o", s(&out), s(&growing)]);
    let r = run_cmd(c, &[]);
    drop(appender);
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "{} changed while the bundle was being made",
            growing.display()
        )),
        "{}",
        r.stderr
    );
    assert!(!out.exists());
    let left: Vec<PathBuf> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(left, [growing], "no archive and no temporary left");
}
