//! The history store (docs/DESIGN.md §4c): runs recorded by real `check --history` runs against
//! the simulator and by `history import` of results files, read back with `history show`
//! (rows, and `--dump`, the whole History that `trend` and `report` load); bad stores and URLs
//! refused with nothing written; a `check` killed inside its commit leaves a store that opens
//! with every finished run; two `check` processes recording at once; and a real PostgreSQL
//! server (a throwaway cluster, stopped at the end) holding the same history as the SQLite file
//! built from the same runs.

use std::{
    os::unix::{fs::PermissionsExt as _, process::ExitStatusExt as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::{json, Value};

use crate::{
    health::plan,
    util::{bin, free_port, run, run_cmd, skip, tool, Sim},
};

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

const FAST: &str = "rate = 1000.0\ntimeout = \"300ms\"\npoll = 2";

/// `history show STORE --dump`, parsed.
fn dump(store: &str, extra: &[&str]) -> Value {
    let mut args = vec!["history", "show", store, "--dump"];
    args.extend_from_slice(extra);
    let r = run(&args);
    assert_eq!(r.code, 0, "history show --dump {store}: {}", r.stderr);
    r.json()
}

/// A dump with what differs between two stores of the same runs taken out: store ids and the
/// host (a run recorded live names its host, an imported results file does not).
fn comparable(mut d: Value) -> Value {
    for r in d["runs"].as_array_mut().unwrap() {
        let o = r.as_object_mut().unwrap();
        o.remove("id");
        o.remove("host");
    }
    d
}

/// Rows of `history show`.
fn rows(store: &str, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["history", "show", store, "--format", "json"];
    args.extend_from_slice(extra);
    let r = run(&args);
    assert_eq!(r.code, 0, "history show {store}: {}", r.stderr);
    r.json().as_array().unwrap().clone()
}

#[test]
fn history_of_real_check_runs_with_plan_key_flag_and_import() {
    let sim = Sim::start("demo-line.toml", &["--units", "1-2"]);
    let dir = tempfile::tempdir().unwrap();
    // A baseline, so drift is checked and the store keeps baseline and tolerance per point.
    let base = dir.path().join("press.json");
    let r = run(&[
        "snapshot",
        &sim.target(1),
        "--profile",
        &crate::util::profile("demo-line.toml"),
        "-o",
        p(&base),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // `history` under [defaults], relative to the plan's folder.
    let pl = plan(
        dir.path(),
        &format!("{FAST}\nhistory = \"line1.db\""),
        &[
            ("press", &sim.target(1), Some(p(&base))),
            ("conveyor", &sim.target(2), None),
        ],
    );
    let store = dir.path().join("line1.db");
    let mut results = Vec::new();
    for i in 0..3 {
        let res = dir.path().join(format!("r{i}.json"));
        // Run from another folder: the store is found beside the plan, not in the cwd.
        let mut c = bin();
        c.current_dir(std::env::temp_dir());
        let r = run_cmd(c, &["check", p(&pl), "--results", p(&res)]);
        assert!(r.code <= 1, "check: {}{}", r.stdout, r.stderr);
        results.push(res);
    }
    assert!(
        store.is_file(),
        "the plan's history key made line1.db beside the plan"
    );
    let d = dump(p(&store), &[]);
    assert_eq!(d["runs"].as_array().unwrap().len(), 3, "{d}");
    let devices = d["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 2);
    // The whole store is read by two readers, one per half of the devices; a device read alone
    // (one reader) has the same series.
    for dev in devices {
        let one = dump(p(&store), &["--device", dev["name"].as_str().unwrap()]);
        assert_eq!(one["devices"], json!([dev]), "{}", dev["name"]);
        assert_eq!(one["runs"], d["runs"]);
    }
    let press = devices.iter().find(|x| x["name"] == "press").unwrap();
    assert_eq!(press["runs"], json!([0, 1, 2]));
    assert_eq!(press["reachable"], json!([true, true, true]));
    let pressure = press["points"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "press.pressure")
        .unwrap();
    let vals: Vec<f64> = pressure["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().expect("a number each run"))
        .collect();
    assert_eq!(vals.len(), 3);
    // The simulator's pressure moves around 180 (profiles/demo-line.toml).
    assert!(vals.iter().all(|v| (100.0..300.0).contains(v)), "{vals:?}");
    assert_eq!(pressure["status"], json!(["ok", "ok", "ok"]));
    assert!(
        pressure["range"].is_array(),
        "range from the profile: {pressure}"
    );
    assert!(
        pressure["baseline"].as_f64().is_some() && pressure["tolerance"].as_f64().is_some(),
        "baseline and tolerance from the drift check: {pressure}"
    );
    // Identity: recorded once (unchanged afterwards).
    assert_eq!(press["identities"].as_array().unwrap().len(), 1, "{press}");
    assert_eq!(press["identities"][0][1]["product_code"], "SIM-LINE");
    // Each run's results document says the same as the store: latency p50 of each run.
    for (k, f) in results.iter().enumerate() {
        let doc: Value = serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
        let dev = doc["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == "press")
            .unwrap();
        assert_eq!(press["latency_p50_ms"][k], dev["latency_ms"]["p50"]);
        assert_eq!(press["sent"][k], dev["sent"]);
    }
    // Rows: one per run and device; --device keeps one device.
    assert_eq!(rows(p(&store), &[]).len(), 6);
    let only = rows(p(&store), &["--device", "conveyor"]);
    assert_eq!(only.len(), 3);
    assert!(only.iter().all(|r| r["device"] == "conveyor"));
    assert!(only[0]["values"]
        .as_str()
        .unwrap()
        .contains("conveyor.speed="));

    // --history on the command line overrides the plan's key.
    let other = dir.path().join("other.db");
    let r = run(&["check", p(&pl), "-q", "--history", p(&other)]);
    assert!(r.code <= 1, "{}", r.stderr);
    assert_eq!(dump(p(&other), &[])["runs"].as_array().unwrap().len(), 1);
    assert_eq!(dump(p(&store), &[])["runs"].as_array().unwrap().len(), 3);

    // The same runs imported from their results files make the same history.
    let imported = dir.path().join("imported.db");
    let mut args = vec!["history".to_string(), "import".into(), p(&imported).into()];
    args.extend(results.iter().map(|f| p(f).to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = run(&args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("imported 3 run(s) (6 device results)"),
        "{}",
        r.stdout
    );
    assert_eq!(
        comparable(dump(p(&imported), &[])),
        comparable(dump(p(&store), &[]))
    );
    // Importing them again adds nothing and says so.
    let r = run(&args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("imported 0 run(s)") && r.stdout.contains("3 already there"));
    assert!(
        r.stderr.contains("already in the store; skipped"),
        "{}",
        r.stderr
    );
}

/// A results file of `check` with its start moved by `shift_ms` and every numeric point value
/// moved by `bump`.
fn shifted(doc: &Value, k: i64, bump: f64) -> Value {
    let mut d = doc.clone();
    let t0 = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000);
    let t = t0 + Duration::from_secs(300 * k as u64);
    d["started_at"] = json!(humantime::format_rfc3339_millis(t).to_string());
    for dev in d["devices"].as_array_mut().unwrap() {
        for pt in dev["points"].as_array_mut().unwrap() {
            if let Some(v) = pt["value"].as_f64() {
                pt["value"] = json!(v + bump);
            }
        }
    }
    d
}

#[test]
fn import_backfills_many_results_files_and_refuses_bad_ones() {
    let sim = Sim::start("demo-line.toml", &[]);
    let dir = tempfile::tempdir().unwrap();
    let pl = plan(dir.path(), FAST, &[("press", &sim.target(1), None)]);
    let r = run(&["check", p(&pl), "--format", "json"]);
    assert!(r.code <= 1, "{}", r.stderr);
    let doc = r.json();
    // 300 runs, 5 minutes apart, a point creeping up by 0.5 a run.
    let files: Vec<PathBuf> = (0..300)
        .map(|k| {
            let f = dir.path().join(format!("res-{k:04}.json"));
            std::fs::write(
                &f,
                serde_json::to_vec(&shifted(&doc, k, 0.5 * k as f64)).unwrap(),
            )
            .unwrap();
            f
        })
        .collect();
    let store = dir.path().join("h.db");
    let mut args = vec!["history", "import", p(&store)];
    args.extend(files.iter().map(|f| p(f)));
    let r = run(&args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("imported 300 run(s)"), "{}", r.stdout);
    let d = dump(p(&store), &[]);
    assert_eq!(d["runs"].as_array().unwrap().len(), 300);
    let energy = d["devices"][0]["points"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "line.energy")
        .unwrap()
        .clone();
    let v: Vec<f64> = energy["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    for k in 1..300 {
        assert!(
            (v[k] - v[k - 1] - 0.5).abs() < 1e-6,
            "run {k}: the planted creep reads back in time order"
        );
    }
    // Files given in another order, some already there: only the new ones are added.
    let more: Vec<PathBuf> = (300..310)
        .rev()
        .map(|k| {
            let f = dir.path().join(format!("res-{k:04}.json"));
            std::fs::write(
                &f,
                serde_json::to_vec(&shifted(&doc, k, 0.5 * k as f64)).unwrap(),
            )
            .unwrap();
            f
        })
        .collect();
    let mut args = vec!["history", "import", p(&store), p(&files[0])];
    args.extend(more.iter().map(|f| p(f)));
    let r = run(&args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("imported 10 run(s)") && r.stdout.contains("1 already there"));
    let d = dump(p(&store), &[]);
    let starts: Vec<&str> = d["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["started_at"].as_str().unwrap())
        .collect();
    assert_eq!(starts.len(), 310);
    assert!(starts.windows(2).all(|w| w[0] < w[1]), "runs in time order");

    // Bad files: a diff results document, a plan, broken JSON. Each named; nothing written.
    let before = std::fs::read(&store).unwrap();
    let diff = dir.path().join("diff.json");
    let mut dd = doc.clone();
    dd["kind"] = json!("diff");
    std::fs::write(&diff, serde_json::to_vec(&dd).unwrap()).unwrap();
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, "{\"format\": ").unwrap();
    let late = dir.path().join("late.json");
    std::fs::write(&late, serde_json::to_vec(&shifted(&doc, 999, 0.0)).unwrap()).unwrap();
    for (bad, says) in [
        (&diff, "not of `check`"),
        (&pl, "not valid JSON"),
        (&broken, "not valid JSON"),
    ] {
        let r = run(&["history", "import", p(&store), p(&late), p(bad)]);
        assert_eq!(r.code, 3, "{}: {}", bad.display(), r.stderr);
        assert!(
            r.stderr.contains(p(bad)) && r.stderr.contains(says),
            "names the file and what is wrong: {}",
            r.stderr
        );
    }
    let mut missing = doc.clone();
    missing["devices"][0]
        .as_object_mut()
        .unwrap()
        .remove("points");
    let mf = dir.path().join("missing.json");
    std::fs::write(&mf, serde_json::to_vec(&missing).unwrap()).unwrap();
    let r = run(&["history", "import", p(&store), p(&mf)]);
    assert_eq!(r.code, 3);
    assert!(
        r.stderr.contains("devices[0] (press).points"),
        "names the field: {}",
        r.stderr
    );
    assert_eq!(dump(p(&store), &[])["runs"].as_array().unwrap().len(), 310);
    let _ = before;
}

/// Bytes of a file, to show a refused store was not written.
fn bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[test]
fn bad_stores_and_urls_are_refused_before_any_device_is_checked() {
    let sim = Sim::start("demo-line.toml", &[]);
    let dir = tempfile::tempdir().unwrap();
    let pl = plan(dir.path(), FAST, &[("press", &sim.target(1), None)]);
    let res = dir.path().join("res.json");

    // Not a store: a text file, an SQLite database of another application, a folder.
    let text = dir.path().join("notes.db");
    std::fs::write(
        &text,
        "this is not a database, it is a long enough text file\n".repeat(20),
    )
    .unwrap();
    let other = dir.path().join("other.db");
    {
        let c = rusqlite::Connection::open(&other).unwrap();
        c.execute_batch("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL);")
            .unwrap();
    }
    for (store, says) in [
        (&text, "not an SQLite database"),
        (&other, "other tables: invoices"),
        (&dir.path().to_path_buf(), "it is a folder"),
    ] {
        let before = if store.is_file() {
            bytes(store)
        } else {
            vec![]
        };
        let r = run(&["check", p(&pl), "--history", p(store), "--results", p(&res)]);
        assert_eq!(r.code, 3, "{}: {}{}", store.display(), r.stdout, r.stderr);
        assert!(
            r.stderr.contains("is not a plcprobe history store") && r.stderr.contains(says),
            "{}",
            r.stderr
        );
        assert!(
            r.stdout.is_empty() && !res.exists(),
            "no device was checked"
        );
        if store.is_file() {
            assert_eq!(
                bytes(store),
                before,
                "nothing written to {}",
                store.display()
            );
        }
        let r = run(&["history", "show", p(store)]);
        assert_eq!(r.code, 3, "{}", r.stderr);
    }

    // A newer schema version.
    let store = dir.path().join("h.db");
    let r = run(&["check", p(&pl), "-q", "--history", p(&store)]);
    assert!(r.code <= 1, "{}", r.stderr);
    {
        let c = rusqlite::Connection::open(&store).unwrap();
        c.execute("UPDATE plcprobe_schema SET version = 99", [])
            .unwrap();
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
    }
    let before = bytes(&store);
    let r = run(&[
        "check",
        p(&pl),
        "--history",
        p(&store),
        "--results",
        p(&res),
    ]);
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("schema version 99") && r.stderr.contains("newer plcprobe"),
        "{}",
        r.stderr
    );
    assert!(
        r.stdout.is_empty() && !res.exists(),
        "no device was checked"
    );
    let r = run(&["history", "import", p(&store), p(&pl)]);
    assert_eq!(r.code, 3);
    assert_eq!(bytes(&store), before, "nothing written");

    // A store that does not exist is not made by a reader.
    let none = dir.path().join("none.db");
    let r = run(&["history", "show", p(&none)]);
    assert_eq!(r.code, 3);
    assert!(r.stderr.contains("no history store at"), "{}", r.stderr);
    assert!(!none.exists());

    // A password in the URL: refused before connecting, whatever the server.
    let port = free_port();
    let url = format!("postgres://scada:s3cret@127.0.0.1:{port}/plant");
    let r = run(&["check", p(&pl), "--history", &url, "--results", p(&res)]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("password in it") && r.stderr.contains("PGPASSWORD"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("s3cret"), "the password is not repeated");
    assert!(
        r.stdout.is_empty() && !res.exists(),
        "no device was checked"
    );
    // A password in the query string too.
    let r = run(&[
        "history",
        "show",
        &format!("postgres://scada@127.0.0.1:{port}/plant?password=s3cret"),
    ]);
    assert_eq!(r.code, 3);
    assert!(r.stderr.contains("password in it"), "{}", r.stderr);

    // An unreachable PostgreSQL server: check runs, prints, then exits 2; import exits 3.
    let url = format!("postgres://scada@127.0.0.1:{port}/plant");
    let r = run(&["check", p(&pl), "--history", &url, "--results", p(&res)]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("PLCPROBE OK"),
        "the check's output: {}",
        r.stdout
    );
    assert!(res.exists(), "the check's results are written");
    assert!(
        r.stderr.contains("cannot reach the history store")
            && r.stderr.contains(&format!("127.0.0.1:{port}"))
            && r.stderr.contains("not recorded"),
        "{}",
        r.stderr
    );
    let r = run(&["history", "import", &url, p(&res)]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("cannot reach the history store"),
        "{}",
        r.stderr
    );
}

/// The writes a `check --history` run makes: SQLite's writes to the WAL (and the lock file's
/// pid). strace counts each syscall's invocations on its own, so `when=K` kills at the K-th of
/// either.
const WRITES: &str = "write,pwrite64";

#[test]
fn sigkill_inside_the_commit_leaves_every_finished_run() {
    let Some(strace) = tool("strace") else {
        return crate::util::missing_peer("strace");
    };
    let sim = Sim::start("demo-line.toml", &["--units", "1-2"]);
    let dir = tempfile::tempdir().unwrap();
    let pl = plan(
        dir.path(),
        FAST,
        &[
            ("press", &sim.target(1), None),
            ("conveyor", &sim.target(2), None),
        ],
    );
    let store = dir.path().join("h.db");
    for _ in 0..2 {
        let r = run(&["check", p(&pl), "-q", "--history", p(&store)]);
        assert!(r.code <= 1, "{}", r.stderr);
    }
    // A traced run without a kill: how many writes a recording makes.
    let log = dir.path().join("trace.txt");
    let st = Command::new(&strace)
        .args([
            "-f",
            "-qq",
            "-e",
            &format!("trace={WRITES}"),
            "-o",
            p(&log),
            "--",
        ])
        .arg(bin().get_program())
        .args(["check", p(&pl), "-q", "--history", p(&store)])
        .env("PLCPROBE_TEST", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.code().is_some_and(|c| c <= 1));
    let writes = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter(|l| l.contains("write"))
        .count();
    assert!(writes >= 2, "a recording writes the WAL: {writes}");
    let mut finished = 3usize;
    let mut kills = 0;
    for k in 1..=writes {
        let st = Command::new(&strace)
            .args([
                "-f",
                "-qq",
                "-o",
                "/dev/null",
                "-e",
                &format!("inject={WRITES}:signal=SIGKILL:when={k}"),
                "--",
            ])
            .arg(bin().get_program())
            .args(["check", p(&pl), "-q", "--history", p(&store)])
            .env("PLCPROBE_TEST", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        // The store opens, and holds every run that finished, each whole (both devices, every
        // point); the killed run is there whole or not at all.
        let d = dump(p(&store), &[]);
        let n = d["runs"].as_array().unwrap().len();
        if st.signal() == Some(9) {
            kills += 1;
            assert!(
                n == finished || n == finished + 1,
                "{n} runs after the kill at write {k}"
            );
        } else {
            assert!(st.code().is_some_and(|c| c <= 1), "write {k}: {st:?}");
            assert_eq!(n, finished + 1, "a run that was not killed is recorded");
        }
        for dev in d["devices"].as_array().unwrap() {
            assert_eq!(dev["runs"].as_array().unwrap().len(), n, "{}", dev["name"]);
            for pt in dev["points"].as_array().unwrap() {
                assert_eq!(pt["values"].as_array().unwrap().len(), n);
            }
        }
        finished = n;
    }
    assert!(kills >= 2, "{kills} runs killed of {writes}");
    // And the next run records as usual.
    let r = run(&["check", p(&pl), "-q", "--history", p(&store)]);
    assert!(r.code <= 1, "{}", r.stderr);
    assert_eq!(
        dump(p(&store), &[])["runs"].as_array().unwrap().len(),
        finished + 1
    );
}

/// Run `check PLAN --history STORE` `n` times on a thread; each run's exit code.
fn checks_on_a_thread(
    plan: PathBuf,
    store: String,
    n: usize,
    results: Option<PathBuf>,
) -> std::thread::JoinHandle<Vec<(i32, String)>> {
    std::thread::spawn(move || {
        (0..n)
            .map(|i| {
                let mut args = vec!["check".to_string(), p(&plan).into(), "-q".into()];
                args.extend(["--history".into(), store.clone()]);
                if let Some(dir) = &results {
                    args.extend([
                        "--results".into(),
                        p(&dir.join(format!("r{i}.json"))).into(),
                    ]);
                }
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let r = run(&args);
                (r.code, r.stderr)
            })
            .collect()
    })
}

/// Two plans in two folders (so the plan lock does not serialise them), one simulator.
fn two_plans(dir: &Path, sim: &Sim) -> (PathBuf, PathBuf) {
    let a = dir.join("a");
    let b = dir.join("b");
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    (
        plan(&a, FAST, &[("press", &sim.target(1), None)]),
        plan(
            &b,
            FAST,
            &[
                ("conveyor", &sim.target(2), None),
                ("tank", &sim.target(3), None),
            ],
        ),
    )
}

#[test]
fn two_checks_record_into_one_sqlite_store_at_once() {
    let sim = Sim::start("demo-line.toml", &["--units", "1-3"]);
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_plans(dir.path(), &sim);
    let store = p(&dir.path().join("shared.db")).to_string();
    let ta = checks_on_a_thread(a, store.clone(), 6, None);
    let tb = checks_on_a_thread(b, store.clone(), 6, None);
    for (code, err) in ta.join().unwrap().into_iter().chain(tb.join().unwrap()) {
        assert!(code <= 1, "{err}");
    }
    let d = dump(&store, &[]);
    assert_eq!(d["runs"].as_array().unwrap().len(), 12);
    let names: Vec<&str> = d["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["conveyor", "press", "tank"]);
    for dev in d["devices"].as_array().unwrap() {
        assert_eq!(dev["runs"].as_array().unwrap().len(), 6, "{}", dev["name"]);
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

/// A throwaway PostgreSQL cluster on a loopback port, run by an unprivileged user; stopped and
/// removed when dropped.
struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    user: Option<String>,
}

impl PgCluster {
    /// Start one, or say why not (PostgreSQL not installed, no user to run it as). A cluster
    /// that is there but does not come up fails the test.
    fn start() -> Result<PgCluster, String> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .map_err(|_| "PostgreSQL is not installed (/usr/lib/postgresql); scripts/test installs Debian's postgresql".to_string())?
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin"))
            .filter(|b| b.join("initdb").is_file() && b.join("pg_ctl").is_file())
            .max()
            .ok_or("no initdb/pg_ctl under /usr/lib/postgresql/*/bin")?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        // PostgreSQL refuses to run as root: as root, run it as the `postgres` user.
        let user = if nix_is_root() {
            let ok = Command::new("id")
                .arg("postgres")
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                return Err(
                    "running as root and there is no `postgres` user to run the server".into(),
                );
            }
            let st = Command::new("chown")
                .args(["-R", "postgres:", p(dir.path())])
                .status()
                .map_err(|e| e.to_string())?;
            if !st.success() {
                return Err("cannot chown the cluster folder to postgres".into());
            }
            Some("postgres".to_string())
        } else {
            None
        };
        let port = free_port();
        let c = PgCluster {
            dir,
            bin,
            port,
            user,
        };
        c.init()
            .unwrap_or_else(|e| panic!("the PostgreSQL cluster did not start: {e}"));
        Ok(c)
    }

    fn init(&self) -> Result<(), String> {
        let c = self;
        let data = c.dir.path().join("data");
        c.tool(
            "initdb",
            &[
                "-D",
                p(&data),
                "-U",
                "plcprobe",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )?;
        // One user that must give a password (scram); everyone else is trusted on loopback.
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\n\
             host all secure 127.0.0.1/32 scram-sha-256\n\
             host all all 127.0.0.1/32 trust\n",
        )
        .map_err(|e| e.to_string())?;
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            c.port,
            p(c.dir.path())
        );
        c.tool(
            "pg_ctl",
            &[
                "-D",
                p(&data),
                "-o",
                &opts,
                "-l",
                p(&c.dir.path().join("log")),
                "-w",
                "-t",
                "60",
                "start",
            ],
        )?;
        for sql in [
            "CREATE DATABASE plant",
            "CREATE DATABASE other",
            "CREATE ROLE secure LOGIN PASSWORD 'pw-in-pgpass'",
            "GRANT ALL ON DATABASE plant TO secure",
        ] {
            c.psql("postgres", sql)?;
        }
        c.psql("plant", "GRANT ALL ON SCHEMA public TO secure")?;
        Ok(())
    }

    fn tool(&self, name: &str, args: &[&str]) -> Result<String, String> {
        let exe = self.bin.join(name);
        let mut cmd = match &self.user {
            Some(u) => {
                let mut c = Command::new("setpriv");
                c.args(["--reuid", u, "--regid", u, "--init-groups", "--"])
                    .arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        let out = cmd
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{name}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{name} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn psql(&self, db: &str, sql: &str) -> Result<String, String> {
        self.tool(
            "psql",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "plcprobe",
                "-d",
                db,
                "-v",
                "ON_ERROR_STOP=1",
                "-qAt",
                "-c",
                sql,
            ],
        )
    }

    fn url(&self, user: &str, db: &str) -> String {
        format!("postgres://{user}@127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = self.tool("pg_ctl", &["-D", p(&data), "-m", "immediate", "-w", "stop"]);
    }
}

fn nix_is_root() -> bool {
    // SAFETY-free: read our uid from /proc.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

fn cluster() -> Option<PgCluster> {
    match PgCluster::start() {
        Ok(c) => Some(c),
        Err(why) => {
            skip(&format!("cannot start a PostgreSQL server: {why}"));
            None
        }
    }
}

#[test]
fn postgres_two_checkers_at_once_and_the_same_history_as_sqlite() {
    let Some(pg) = cluster() else { return };
    let sim = Sim::start("demo-line.toml", &["--units", "1-3"]);
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_plans(dir.path(), &sim);
    let url = pg.url("plcprobe", "plant");
    let (ra, rb) = (dir.path().join("res-a"), dir.path().join("res-b"));
    std::fs::create_dir_all(&ra).unwrap();
    std::fs::create_dir_all(&rb).unwrap();
    // Two checkers start on an empty database at once: both create-or-find the schema.
    let ta = checks_on_a_thread(a, url.clone(), 5, Some(ra.clone()));
    let tb = checks_on_a_thread(b, url.clone(), 5, Some(rb.clone()));
    for (code, err) in ta.join().unwrap().into_iter().chain(tb.join().unwrap()) {
        assert!(code <= 1, "{err}");
    }
    let from_pg = dump(&url, &[]);
    assert_eq!(from_pg["runs"].as_array().unwrap().len(), 10);
    // The same runs, imported from their results files into a SQLite store.
    let sqlite = dir.path().join("same.db");
    let mut files: Vec<String> = Vec::new();
    for d in [&ra, &rb] {
        for e in std::fs::read_dir(d).unwrap() {
            files.push(p(&e.unwrap().path()).to_string());
        }
    }
    let mut args = vec!["history", "import", p(&sqlite)];
    args.extend(files.iter().map(String::as_str));
    let r = run(&args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        comparable(dump(p(&sqlite), &[])),
        comparable(from_pg.clone())
    );
    // Filters agree too.
    assert_eq!(
        comparable(dump(p(&sqlite), &["--device", "tank"])),
        comparable(dump(&url, &["--device", "tank"]))
    );
    // A run recorded live names its host.
    assert!(from_pg["runs"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| !r["host"].as_str().unwrap().is_empty()));
    // Importing the files into PostgreSQL again adds nothing.
    let mut args = vec!["history", "import", url.as_str()];
    args.extend(files.iter().map(String::as_str));
    let r = run(&args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("imported 0 run(s)") && r.stdout.contains("10 already there"));
    // The documented view gives one row per point sample.
    let n = pg
        .psql("plant", "SELECT count(*) FROM point_samples")
        .unwrap();
    let expected: usize = from_pg["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["points"].as_array().unwrap().len() * d["runs"].as_array().unwrap().len())
        .sum();
    assert_eq!(n.trim(), expected.to_string());
    let v = pg
        .psql(
            "plant",
            "SELECT round(value::numeric, 3) FROM point_samples WHERE device = 'press' \
             AND point = 'press.pressure' ORDER BY started_at LIMIT 1",
        )
        .unwrap();
    let first = from_pg["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "press")
        .unwrap()["points"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "press.pressure")
        .unwrap()["values"][0]
        .as_f64()
        .unwrap();
    assert_eq!(v.trim(), format!("{first:.3}"));
}

#[test]
fn postgres_password_rules_and_bad_databases() {
    let Some(pg) = cluster() else { return };
    let sim = Sim::start("demo-line.toml", &[]);
    let dir = tempfile::tempdir().unwrap();
    let pl = plan(dir.path(), FAST, &[("press", &sim.target(1), None)]);
    let url = pg.url("secure", "plant");
    // No password anywhere and no terminal: a clear error, exit 3.
    let mut c = bin();
    c.env_remove("PGPASSWORD")
        .env("PGPASSFILE", dir.path().join("none"));
    let r = run_cmd(c, &["history", "show", &url]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("asks for a password") && r.stderr.contains("PGPASSWORD"),
        "{}",
        r.stderr
    );
    // PGPASSWORD.
    let mut c = bin();
    c.env("PGPASSWORD", "pw-in-pgpass");
    let r = run_cmd(c, &["check", p(&pl), "-q", "--history", &url]);
    assert!(r.code <= 1, "{}", r.stderr);
    // A password file, as libpq reads it; ignored when others may read it.
    let pass = dir.path().join("pgpass");
    std::fs::write(
        &pass,
        format!("# test\n127.0.0.1:{}:plant:secure:pw-in-pgpass\n", pg.port),
    )
    .unwrap();
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut c = bin();
    c.env_remove("PGPASSWORD").env("PGPASSFILE", &pass);
    let r = run_cmd(c, &["check", p(&pl), "-q", "--history", &url]);
    assert!(r.code <= 1, "{}", r.stderr);
    assert_eq!(dump_env(&url, &pass)["runs"].as_array().unwrap().len(), 2);
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut c = bin();
    c.env_remove("PGPASSWORD").env("PGPASSFILE", &pass);
    let r = run_cmd(c, &["history", "show", &url]);
    assert_eq!(r.code, 3);
    assert!(r.stderr.contains("group or world access"), "{}", r.stderr);
    // A wrong password: refused by the server, exit 3.
    let mut c = bin();
    c.env("PGPASSWORD", "wrong");
    let r = run_cmd(c, &["history", "show", &url]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("refused the connection"), "{}", r.stderr);

    // A database that does not exist; one with someone else's `runs` table; a newer schema.
    let r = run(&["check", p(&pl), "--history", &pg.url("plcprobe", "nosuch")]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("does not exist"), "{}", r.stderr);
    pg.psql("other", "CREATE TABLE runs (id int)").unwrap();
    let r = run(&["check", p(&pl), "--history", &pg.url("plcprobe", "other")]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("not a plcprobe history store") && r.stderr.contains("runs"));
    assert_eq!(
        pg.psql(
            "other",
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        )
        .unwrap()
        .trim(),
        "1",
        "nothing written"
    );
    pg.psql("plant", "UPDATE plcprobe_schema SET version = 7")
        .unwrap();
    let r = run(&["check", p(&pl), "--history", &pg.url("plcprobe", "plant")]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("schema version 7"), "{}", r.stderr);
    assert!(r.stdout.is_empty(), "no device checked");
    assert_eq!(
        pg.psql("plant", "SELECT count(*) FROM runs")
            .unwrap()
            .trim(),
        "2",
        "nothing written"
    );
}

fn dump_env(url: &str, pass: &Path) -> Value {
    let mut c = bin();
    c.env_remove("PGPASSWORD").env("PGPASSFILE", pass);
    let r = run_cmd(c, &["history", "show", url, "--dump"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.json()
}
