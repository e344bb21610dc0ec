//! OPC UA: the real binary against `plcprobe sim --opcua` (a separate process) and against an
//! independent peer, the asyncua (Python) server of tests/peers; and the asyncua client reading
//! the simulator. Everything on loopback, each test with its own PKI folder.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use crate::util::{self, bin, free_port, python, Peer, UaSim};

/// Run plcprobe with a PKI folder and optional password. Unless a test sets its own, the
/// timeout is 5 s: the Python peer's RSA work for a secured session can take over the default
/// 1 s on a loaded 2-core machine running the tests in parallel.
fn ua(pki: &Path, password: Option<&str>, args: &[&str]) -> util::Run {
    let mut c = bin();
    c.env("PLCPROBE_PKI", pki).env_remove("PLCPROBE_PASSWORD");
    if let Some(p) = password {
        c.env("PLCPROBE_PASSWORD", p);
    }
    if !args.contains(&"--timeout") {
        c.args(["--timeout", "5s"]);
    }
    util::run_cmd(c, args)
}

/// Start plcprobe with a PKI folder, its output piped (for commands that run while a test acts).
fn spawn_ua(pki: &Path, args: &[&str]) -> std::process::Child {
    bin()
        .env("PLCPROBE_PKI", pki)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .unwrap()
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn reads_browses_writes_and_snapshots_the_simulator() {
    let d = tmp();
    let pki = d.path().join("pki");
    let sim = UaSim::start("127.0.0.1:0", &[]);
    // Every NodeId form and a browse path, as JSON.
    let r = ua(
        &pki,
        None,
        &[
            "read",
            &sim.url,
            "ns=2;s=Line1.press.pressure",
            "i=2258",
            "nsu=urn:plcprobe:sim:line;s=Line1.tank.batch",
            "/Objects/2:Demo line 1/2:press.strokes",
            "--format",
            "json",
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let rows = r.json();
    let p = rows[0]["value"].as_f64().unwrap();
    assert!((175.0..185.0).contains(&p), "{p}");
    assert_eq!(rows[0]["type"], "Float");
    assert_eq!(rows[0]["status"], "Good");
    assert!(rows[0]["source_time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(rows[1]["type"], "DateTime");
    assert_eq!(rows[2]["value"], "GL-4711");
    assert!(rows[3]["value"].as_u64().unwrap() >= 1_200_345);
    // The pki folder now holds plcprobe's own certificate.
    assert!(pki.join("own/cert.der").exists());

    // An unknown node is a Bad status, CRITICAL.
    let r = ua(&pki, None, &["read", &sim.url, "ns=2;s=Nope"]);
    assert_eq!(r.code, 2);
    assert!(r.stdout.contains("BadNodeIdUnknown"), "{}", r.stdout);
    // -q lists only the nodes that are not Good, whatever their order.
    let r = ua(
        &pki,
        None,
        &[
            "read",
            &sim.url,
            "ns=2;s=Nope",
            "i=2258",
            "-q",
            "--format",
            "json",
        ],
    );
    assert_eq!(r.code, 2);
    let rows = r.json();
    assert_eq!(rows.as_array().unwrap().len(), 1, "{}", r.stdout);
    assert_eq!(rows[0]["status"], "BadNodeIdUnknown");
    // A malformed NodeId is bad usage.
    let r = ua(&pki, None, &["read", &sim.url, "ns=x;s=Nope"]);
    assert_eq!(r.code, 3);
    assert!(r.stderr.contains("not a number"), "{}", r.stderr);

    // browse: the device folder and its variables with type and value.
    let r = ua(
        &pki,
        None,
        &[
            "browse", &sim.url, "--depth", "2", "--filter", "press.", "--format", "json",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rows = r.json();
    let pressure = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["node"] == "ns=2;s=Line1.press.pressure")
        .unwrap();
    assert_eq!(pressure["data_type"], "Float");
    assert_eq!(pressure["class"], "Variable");
    assert!(rows
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["browse_name"] == "2:Demo line 1"));

    // write: refused without --allow-write, then written and read back.
    let r = ua(
        &pki,
        None,
        &["write", &sim.url, "ns=2;s=Line1.conveyor.speed", "31.5"],
    );
    assert_eq!(r.code, 3);
    assert!(r.stderr.contains("--allow-write"));
    let r = ua(
        &pki,
        None,
        &[
            "write",
            &sim.url,
            "ns=2;s=Line1.conveyor.speed",
            "31.5",
            "--allow-write",
            "--format",
            "json",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()[0]["after"], 31.5);
    let r = ua(
        &pki,
        None,
        &[
            "write",
            &sim.url,
            "ns=2;s=Line1.conveyor.speed",
            "fast",
            "--allow-write",
        ],
    );
    assert_eq!(r.code, 3);
    assert!(r.stderr.contains("not a valid Float"), "{}", r.stderr);

    // snapshot and diff of the profile's node points, exactly as for Modbus.
    let base = d.path().join("base.json");
    let r = ua(
        &pki,
        None,
        &[
            "snapshot",
            &sim.url,
            "--profile",
            &util::profile("demo-line.toml"),
            "-o",
            base.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let snap: serde_json::Value = serde_json::from_slice(&std::fs::read(&base).unwrap()).unwrap();
    assert_eq!(snap["identity"]["vendor"], "plcprobe");
    assert_eq!(snap["identity"]["revision"], "1.4.2");
    let speed = snap["points"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "conveyor.speed")
        .unwrap();
    assert_eq!(speed["address"], "ns=2;s=Line1.conveyor.speed");
    assert_eq!(speed["value"], 31.5);
    let r = ua(&pki, None, &["diff", base.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let r = ua(
        &pki,
        None,
        &[
            "write",
            &sim.url,
            "ns=2;s=Line1.conveyor.speed",
            "12",
            "--allow-write",
        ],
    );
    assert_eq!(r.code, 0);
    let r = ua(
        &pki,
        None,
        &["diff", base.to_str().unwrap(), "--format", "json"],
    );
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("conveyor.speed"), "{}", r.stdout);
}

#[test]
fn secured_sessions_need_a_trusted_certificate_and_the_right_password() {
    let d = tmp();
    let pki = d.path().join("pki");
    let sim = UaSim::start("127.0.0.1:0", &[]);
    let node = "ns=2;s=Line1.tank.level";
    // Unknown server certificate: refused before any secured session, with what to check.
    let r = ua(
        &pki,
        None,
        &[
            "read",
            &sim.url,
            node,
            "--security",
            "Basic256Sha256,SignAndEncrypt",
        ],
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    for needle in [
        "not trusted",
        "subject:",
        "thumbprint:",
        "valid:",
        "plcprobe trust",
    ] {
        assert!(r.stderr.contains(needle), "{needle}: {}", r.stderr);
    }
    // scan shows the endpoints and that the certificate is not trusted.
    let r = ua(&pki, None, &["scan", &sim.url, "--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let eps = r.json();
    let eps = eps.as_array().unwrap();
    for (p, m) in [
        ("None", "None"),
        ("Basic256Sha256", "SignAndEncrypt"),
        ("Aes128-Sha256-RsaOaep", "Sign"),
        ("Aes256-Sha256-RsaPss", "SignAndEncrypt"),
    ] {
        assert!(
            eps.iter()
                .any(|e| e["security_policy"] == p && e["mode"] == m),
            "{p} {m}: {eps:?}"
        );
    }
    assert!(eps.iter().any(|e| e["cert"] == "not trusted"));
    // trust, then every policy and mode works.
    let r = ua(&pki, None, &["trust", &sim.url]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("thumbprint"));
    for sec in [
        "Basic256Sha256,Sign",
        "Basic256Sha256,SignAndEncrypt",
        "Aes128_Sha256_RsaOaep,SignAndEncrypt",
        "Aes256_Sha256_RsaPss,SignAndEncrypt",
        "Aes256_Sha256_RsaPss,Sign",
    ] {
        let r = ua(&pki, None, &["read", &sim.url, node, "--security", sec]);
        assert_eq!(r.code, 0, "{sec}: {}", r.stderr);
    }
    // User identity: password from the environment; a wrong one is a specific error.
    let r = ua(
        &pki,
        Some("plcprobe"),
        &[
            "read",
            &sim.url,
            node,
            "--security",
            "Basic256Sha256,SignAndEncrypt",
            "--user",
            "operator",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = ua(
        &pki,
        Some("wrong"),
        &[
            "read",
            &sim.url,
            node,
            "--security",
            "Basic256Sha256,SignAndEncrypt",
            "--user",
            "operator",
        ],
    );
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("wrong user name or password"),
        "{}",
        r.stderr
    );
    // No password and no terminal: refused before connecting, never read from argv.
    let r = ua(&pki, None, &["read", &sim.url, node, "--user", "operator"]);
    assert_eq!(r.code, 3);
    assert!(r.stderr.contains("PLCPROBE_PASSWORD"), "{}", r.stderr);
    // A policy the server does not offer names those it does.
    let r = ua(
        &pki,
        None,
        &["read", &sim.url, node, "--security", "Basic128Rsa15,Sign"],
    );
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("it offers") && r.stderr.contains("Basic256Sha256,SignAndEncrypt, None."),
        "{}",
        r.stderr
    );
}

#[test]
fn dead_hosts_fail_within_the_timeout() {
    let d = tmp();
    let silent = util::silent_listener();
    let url = format!("opc.tcp://{silent}");
    let r = ua(
        &d.path().join("pki"),
        None,
        &["read", &url, "i=2258", "--timeout", "500ms"],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("no answer within 500ms"), "{}", r.stderr);
    assert!(r.elapsed < Duration::from_secs(5), "{:?}", r.elapsed);
    let url = format!("opc.tcp://127.0.0.1:{}", free_port());
    let r = ua(&d.path().join("pki"), None, &["read", &url, "i=2258"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("cannot connect"), "{}", r.stderr);
    // snapshot writes nothing, and names the server once.
    let out = d.path().join("snap.json");
    let r = ua(
        &d.path().join("pki"),
        None,
        &[
            "snapshot",
            &url,
            "--profile",
            &util::profile("demo-line.toml"),
            "-o",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 2);
    assert!(!out.exists());
    assert_eq!(r.stderr.matches(url.as_str()).count(), 1, "{}", r.stderr);
    assert!(r.stderr.contains("nothing was written"), "{}", r.stderr);
}

#[test]
fn sim_faults_give_bad_status_and_delays() {
    let d = tmp();
    let pki = d.path().join("pki");
    let sim = UaSim::start("127.0.0.1:0", &["--fault", "bad-status=BadSensorFailure"]);
    let r = ua(&pki, None, &["read", &sim.url, "ns=2;s=Line1.tank.level"]);
    assert_eq!(r.code, 2);
    assert!(r.stdout.contains("BadSensorFailure"), "{}", r.stdout);
    let slow = UaSim::start("127.0.0.1:0", &["--fault", "delay=1500ms"]);
    let r = ua(
        &pki,
        None,
        &[
            "read",
            &slow.url,
            "ns=2;s=Line1.tank.level",
            "--timeout",
            "500ms",
        ],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("no answer within"), "{}", r.stderr);
    let r = ua(
        &pki,
        None,
        &[
            "read",
            &slow.url,
            "ns=2;s=Line1.tank.level",
            "--timeout",
            "3s",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn watch_survives_a_server_restart_and_shows_the_gap() {
    let d = tmp();
    let pki = d.path().join("pki");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let sim = UaSim::start(&listen, &[]);
    let watch = spawn_ua(
        &pki,
        &[
            "watch",
            &sim.url,
            "ns=2;s=Line1.press.pressure",
            "--interval",
            "200ms",
            "--duration",
            "12s",
            "--format",
            "jsonl",
        ],
    );
    std::thread::sleep(Duration::from_secs(3));
    drop(sim); // the server goes away
    std::thread::sleep(Duration::from_secs(2));
    let _sim2 = UaSim::start(&listen, &[]);
    let w = watch_recovered(watch, "reconnected");
    let ev = w.rows[w.back]["event"].as_str().unwrap();
    assert!(ev.contains("new session"), "{ev}\n{}", w.text);
    // The server was away for 2 s: the gap, on the server's clock, is at least that.
    assert!((1.5..6.0).contains(&w.gap), "gap {} s\n{}", w.gap, w.text);
}

/// A watch's output across a loss of its server: the rows, the reconnection (the first event
/// containing `back_says`) and the gap reported after it. Asserts the loss before the
/// reconnection, data before and after, a gap, and exit 1 (a gap is a WARNING).
struct Recovered {
    text: String,
    rows: Vec<serde_json::Value>,
    back: usize,
    gap: f64,
}

fn watch_recovered(watch: std::process::Child, back_says: &str) -> Recovered {
    let out = watch.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let rows = util::jsonl(&text);
    let event = |needle: &str| {
        rows.iter()
            .position(|r| r["event"].as_str().unwrap_or("").contains(needle))
            .unwrap_or_else(|| panic!("no `{needle}` in {text}"))
    };
    let lost = event("connection lost");
    let back = event(back_says);
    assert!(lost < back, "{text}");
    let gap = gap_s(&rows[back..]).unwrap_or_else(|| panic!("no gap in {text}"));
    assert!(rows[..lost].iter().any(|r| r["value"].is_number()));
    assert!(
        rows[back..].iter().any(|r| r["value"].is_number()),
        "no data after the reconnection: {text}"
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Recovered {
        text,
        rows,
        back,
        gap,
    }
}

/// The gap in seconds of the first "data again: gap N s" event among `rows`.
fn gap_s(rows: &[serde_json::Value]) -> Option<f64> {
    rows.iter().find_map(|r| {
        let ev = r["event"].as_str()?;
        let rest = ev.strip_prefix("data again: gap ")?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Stop a process (SIGSTOP) for `d`, then let it go on: a laptop asleep, a debugger, a
/// swapped-out machine.
fn freeze(pid: u32, d: Duration) {
    let sig = |s: &str| {
        let ok = Command::new("kill")
            .args([s, &pid.to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill {s} {pid}");
    };
    sig("-STOP");
    std::thread::sleep(d);
    sig("-CONT");
}

#[test]
fn an_expired_session_is_replaced_by_watch_and_poll() {
    // The simulator grants sessions of at most 2 s; the client is stopped for 4 s, so its
    // session expires on the server. On waking, watch and poll must see it, open a new session
    // (watch re-creates its subscription) and go on, and say so: WARNING (exit 1).
    let d = tmp();
    let pki = d.path().join("pki");
    let sim = UaSim::start("127.0.0.1:0", &["--fault", "session-timeout=2s"]);
    let node = "ns=2;s=Line1.press.pressure";
    let watch = spawn_ua(
        &pki,
        &[
            "watch",
            &sim.url,
            node,
            "--interval",
            "200ms",
            "--duration",
            "10s",
            "--format",
            "jsonl",
        ],
    );
    std::thread::sleep(Duration::from_millis(2500));
    freeze(watch.id(), Duration::from_secs(4));
    let w = watch_recovered(watch, "no longer had the old session");
    assert!(w.rows[w.back]["event"]
        .as_str()
        .unwrap()
        .contains("subscription re-created"));
    // Watch only saw the loss on waking; the gap still counts from the server's last message.
    assert!((3.0..8.0).contains(&w.gap), "gap {} s\n{}", w.gap, w.text);

    // poll: the failed read names the status (-v), the session is opened again, reads go on.
    let poll = spawn_ua(
        &pki,
        &[
            "poll",
            &sim.url,
            node,
            "--interval",
            "200ms",
            "--duration",
            "9s",
            "-v",
            "--format",
            "jsonl",
        ],
    );
    std::thread::sleep(Duration::from_millis(2500));
    freeze(poll.id(), Duration::from_secs(4));
    let out = poll.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("BadSessionIdInvalid"), "{stderr}");
    // Rows on stdout, the statistics as the last line of stderr (after the -v messages).
    let stats: serde_json::Value =
        serde_json::from_str(stderr.lines().last().unwrap_or("")).unwrap();
    assert_eq!(stats["connects"], 2, "{stats}");
    let rows = util::jsonl(&String::from_utf8_lossy(&out.stdout));
    let failed = rows.iter().position(|r| r["status"] != "ok").unwrap();
    assert!(rows[failed..].iter().any(|r| r[node].is_number()));
    // The first read after waking fails and closes the dead channel at once (async-opcua alone
    // would wait for failed keep-alives, seconds of failed reads); one more may fail while the
    // new session opens.
    let errors = stats["errors"]["connection"].as_u64().unwrap_or(0);
    assert!((1..=3).contains(&errors), "{stats}");
    assert!(stderr.contains("opening a new one"), "{stderr}");
    // 5 s of polling at 200 ms, all but those answered.
    assert!(stats["received"].as_u64().unwrap() >= 20, "{stats}");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
}

#[test]
fn against_the_asyncua_server() {
    let Some(py) = python() else { return };
    let d = tmp();
    let pki = d.path().join("pki");
    let peer = Peer::start(&py, d.path(), "valid");
    let n = "ns=2;s=Line1.Speed";
    let r = ua(
        &pki,
        None,
        &[
            "read",
            &peer.url,
            n,
            "/Objects/2:Plant/2:Line1/2:Count",
            "--format",
            "json",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()[0]["type"], "Double");
    assert_eq!(r.json()[1]["type"], "Int32");
    // Untrusted, then trusted from the certificate file the peer wrote.
    let sec = ["--security", "Basic256Sha256,SignAndEncrypt"];
    let r = ua(&pki, None, &[&["read", &peer.url, n][..], &sec].concat());
    assert_eq!(r.code, 3);
    assert!(r.stderr.contains("not trusted"), "{}", r.stderr);
    let r = ua(&pki, None, &["trust", peer.cert.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = ua(&pki, None, &[&["read", &peer.url, n][..], &sec].concat());
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = ua(
        &pki,
        Some("secret42"),
        &[&["read", &peer.url, n, "--user", "tech"][..], &sec].concat(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = ua(
        &pki,
        Some("secret43"),
        &[&["read", &peer.url, n, "--user", "tech"][..], &sec].concat(),
    );
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("refused the user identity"),
        "{}",
        r.stderr
    );
    // Certificate identities: a user certificate the peer accepts, and one it refuses.
    for (cn, code) in [("plcprobe-user-ok", 0), ("plcprobe-user-bad", 2)] {
        let dir = d.path().join(cn);
        let made = Command::new(&py)
            .arg(util::root().join("tests/peers/asyncua_server.py"))
            .args(["--make-user-cert", dir.to_str().unwrap(), cn])
            .status()
            .unwrap();
        assert!(made.success());
        let (cert, key) = (dir.join("user.der"), dir.join("user-key.pem"));
        let r = ua(
            &pki,
            None,
            &[
                &["read", &peer.url, n, "--cert", cert.to_str().unwrap()][..],
                &["--key", key.to_str().unwrap()],
                &sec,
            ]
            .concat(),
        );
        assert_eq!(r.code, code, "{cn}: {}", r.stderr);
        if code != 0 {
            assert!(r.stderr.contains("--cert/--key"), "{}", r.stderr);
        }
    }
    // write with read-back, browse, watch.
    let r = ua(
        &pki,
        None,
        &[
            "write",
            &peer.url,
            "ns=2;s=Line1.Setpoint",
            "42.5",
            "--allow-write",
            "--format",
            "json",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()[0]["after"], 42.5);
    let r = ua(
        &pki,
        None,
        &[
            "browse",
            &peer.url,
            "/Objects/2:Plant",
            "--flat",
            "--format",
            "json",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("/2:Line1/2:Setpoint"), "{}", r.stdout);
    let r = ua(
        &pki,
        None,
        &[
            "watch",
            &peer.url,
            "ns=2;s=Line1.Count",
            "--interval",
            "100ms",
            "--count",
            "5",
            "--format",
            "jsonl",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let counts: Vec<i64> = r
        .jsonl()
        .iter()
        .filter_map(|x| x["value"].as_i64())
        .collect();
    assert_eq!(counts.len(), 5);
    assert!(counts.windows(2).all(|w| w[0] < w[1]), "{counts:?}");
}

#[test]
fn an_expired_server_certificate_is_named() {
    refused_server_certificate("expired", "outside its validity period");
}

#[test]
fn a_server_certificate_for_another_host_is_named() {
    refused_server_certificate("wronghost", "does not name this host");
}

/// The asyncua peer with a bad certificate of kind `cert`: a secured read, even with
/// `--trust-server`, is refused (CRITICAL) with its own message.
fn refused_server_certificate(cert: &str, says: &str) {
    let Some(py) = python() else { return };
    let d = tmp();
    let peer = Peer::start(&py, d.path(), cert);
    let r = ua(
        &d.path().join("pki"),
        None,
        &[
            "read",
            &peer.url,
            "i=2258",
            "--security",
            "Basic256Sha256,SignAndEncrypt",
            "--trust-server",
        ],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains(says), "{}", r.stderr);
}

#[test]
fn the_asyncua_client_reads_the_simulator() {
    let Some(py) = python() else { return };
    let sim = UaSim::start("127.0.0.1:0", &[]);
    let out = Command::new(&py)
        .arg(util::root().join("tests/peers/asyncua_client.py"))
        .args([
            &sim.url,
            "ns=2;s=Line1.press.pressure",
            "ns=2;s=Line1.tank.batch",
            "ns=2;s=Line1.conveyor.running",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = util::jsonl(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(rows[0]["type"], "Float");
    assert!((175.0..185.0).contains(&rows[0]["value"].as_f64().unwrap()));
    assert_eq!(rows[1]["value"], "GL-4711");
    assert_eq!(rows[2]["value"], true);
}

#[test]
fn poll_reads_nodes_and_a_profile_with_statistics() {
    let d = tmp();
    let pki = d.path().join("pki");
    let sim = UaSim::start(
        "127.0.0.1:0",
        &["--fault", "bad-status=BadSensorFailure@0.5"],
    );
    let r = ua(
        &pki,
        None,
        &[
            "poll",
            &sim.url,
            "ns=2;s=Line1.press.strokes",
            "--interval",
            "50ms",
            "--count",
            "20",
            "--format",
            "jsonl",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rows = r.jsonl();
    assert_eq!(rows.len(), 20);
    // Values move, and the Bad status of a node shows in the row's status.
    let ok: Vec<u64> = rows
        .iter()
        .filter_map(|x| x["ns=2;s=Line1.press.strokes"].as_u64())
        .collect();
    assert!(ok.len() >= 2 && ok.len() < 20, "{ok:?}");
    assert!(rows.iter().any(|x| x["status"] == "BadSensorFailure"));
    // The statistics (stderr when the rows are on stdout): 20 requests, one session.
    let stats: serde_json::Value = serde_json::from_str(r.stderr.trim()).unwrap();
    assert_eq!(stats["sent"], 20);
    assert_eq!(stats["received"], 20);
    assert_eq!(stats["connects"], 1);
    // A profile's node points, named.
    let clean = UaSim::start("127.0.0.1:0", &[]);
    let r = ua(
        &pki,
        None,
        &[
            "poll",
            &clean.url,
            "--profile",
            &util::profile("demo-line.toml"),
            "--count",
            "2",
            "--interval",
            "0",
            "--format",
            "jsonl",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.jsonl()[1]["tank.batch"], "GL-4711");
    // The simulator drops the connection (and the session with it) on 20% of requests: the
    // poll counts the failures, reconnects and goes on (WARNING).
    let flaky = UaSim::start("127.0.0.1:0", &["--fault", "drop=0.2", "--seed", "3"]);
    let r = ua(
        &pki,
        None,
        &[
            "poll",
            &flaky.url,
            "i=2258",
            "--count",
            "40",
            "--interval",
            "20ms",
            "-q",
            "--format",
            "json",
        ],
    );
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let stats: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(stats["sent"], 40);
    let received = stats["received"].as_u64().unwrap();
    assert!((10..40).contains(&received), "{stats}");
    assert!(stats["connects"].as_u64().unwrap() >= 2, "{stats}");
    // Nobody there: CRITICAL, with the reason.
    let url = format!("opc.tcp://127.0.0.1:{}", free_port());
    let r = ua(&pki, None, &["poll", &url, "i=2258", "--count", "1"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("cannot connect"), "{}", r.stderr);
}

#[test]
fn check_and_report_an_opcua_device_as_a_modbus_one() {
    let d = tmp();
    let pki = d.path().join("pki");
    let sim = UaSim::start("127.0.0.1:0", &[]);
    let base = d.path().join("base.json");
    let base_s = base.to_str().unwrap();
    let r = ua(
        &pki,
        None,
        &[
            "snapshot",
            &sim.url,
            "--profile",
            &util::profile("demo-line.toml"),
            "-o",
            base_s,
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let plan = crate::health::plan(
        d.path(),
        "poll = 3",
        &[("line 1 (OPC UA)", &sim.url, Some(base_s))],
    );
    let plan = plan.to_str().unwrap();
    let results = d.path().join("results.json");
    let r = ua(
        &pki,
        None,
        &[
            "check",
            plan,
            "--format",
            "nagios",
            "--results",
            results.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.starts_with("PLCPROBE OK"), "{}", r.stdout);
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&results).unwrap()).unwrap();
    let dev = &doc["devices"][0];
    assert_eq!(dev["identity"]["revision"], "1.4.2");
    assert_eq!(dev["sent"], 3);
    // Drift beyond tolerance on one point: CRITICAL, named.
    let r = ua(
        &pki,
        None,
        &[
            "write",
            &sim.url,
            "ns=2;s=Line1.press.pressure",
            "120",
            "--allow-write",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = ua(
        &pki,
        None,
        &[
            "check",
            plan,
            "--format",
            "nagios",
            "--results",
            results.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("press.pressure"), "{}", r.stdout);
    // And the results render as a report.
    let md = d.path().join("r.md");
    let r = ua(
        &pki,
        None,
        &[
            "report",
            results.to_str().unwrap(),
            "-o",
            md.to_str().unwrap(),
        ],
    );
    // report exits with the verdict of what it renders: the drift is CRITICAL.
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(std::fs::read_to_string(&md)
        .unwrap()
        .contains("ns=2;s=Line1.press.pressure"));
}
