//! OPC UA: the real binary against `plcprobe sim --opcua` (a separate process) and against an
//! independent peer, the asyncua (Python) server of tests/peers; and the asyncua client reading
//! the simulator. Everything on loopback, each test with its own PKI folder.
//!
//! Timing holds on a loaded machine. A test that acts while a command runs (a server killed and
//! started again, a client stopped as a laptop sleeps) waits for what the command prints, each
//! wait with a deadline that fails saying what it waited for and showing the output. The only
//! sleeps are stimuli (a server kept away, a client kept stopped), and what is asserted about
//! them is derived from the times the test measured around them. Counts the test controls are
//! exact; counts that depend on the machine's speed are checked against the rows themselves.
//! Ports come from the OS.

use std::{
    io::{BufRead, BufReader, Read},
    net::{TcpListener, TcpStream},
    path::Path,
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant, SystemTime},
};

use serde_json::{json, Value as Json};

use crate::util::{self, bin, python, Guard, UaSim};

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

/// Start plcprobe with a PKI folder and, as [`ua`], a 5 s timeout, as a [`Live`] process: for
/// commands that run while the test acts.
fn live_ua(pki: &Path, args: &[&str]) -> Live {
    let mut c = bin();
    c.env("PLCPROBE_PKI", pki)
        .env_remove("PLCPROBE_PASSWORD")
        .args(["--timeout", "5s"])
        .args(args);
    Live::spawn(&format!("plcprobe {}", args[0]), c)
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// How long a wait for output may take before the test fails: far beyond what any step takes
/// on a loaded machine, so only a command that is broken reaches it.
const PATIENCE: Duration = Duration::from_secs(60);

/// Which pipe of a [`Live`] process a line came from.
#[derive(Clone, Copy)]
enum Pipe {
    Out,
    Err,
}

/// A process the test acts on while it runs. Its stdout and stderr are read line by line on
/// threads (it never blocks on a full pipe) and kept; the test waits for the output it needs,
/// each wait with a deadline that fails naming what it waited for and showing all output so
/// far. Killed when dropped (also when stopped).
struct Live {
    name: String,
    guard: Guard,
    rx: mpsc::Receiver<(Pipe, String)>,
    out: Vec<String>,
    err: Vec<String>,
    /// Both pipes reached their end: the process exited.
    closed: bool,
}

impl Live {
    fn spawn(name: &str, mut cmd: Command) -> Live {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let (tx, rx) = mpsc::channel();
        let pipes: [(Pipe, Box<dyn Read + Send>); 2] = [
            (Pipe::Out, Box::new(child.stdout.take().expect("stdout"))),
            (Pipe::Err, Box::new(child.stderr.take().expect("stderr"))),
        ];
        for (pipe, r) in pipes {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(r).lines() {
                    let Ok(line) = line else { break };
                    if tx.send((pipe, line)).is_err() {
                        break;
                    }
                }
            });
        }
        Live {
            name: name.to_string(),
            guard: Guard(child),
            rx,
            out: Vec::new(),
            err: Vec::new(),
            closed: false,
        }
    }

    fn pid(&self) -> u32 {
        self.guard.0.id()
    }

    fn keep(&mut self, (pipe, line): (Pipe, String)) {
        match pipe {
            Pipe::Out => self.out.push(line),
            Pipe::Err => self.err.push(line),
        }
    }

    /// All it printed so far, for failure messages.
    fn log(&self) -> String {
        format!(
            "--- {} stdout:\n{}\n--- {} stderr:\n{}",
            self.name,
            self.out.join("\n"),
            self.name,
            self.err.join("\n")
        )
    }

    /// Its stdout so far as JSON rows (`--format jsonl`).
    fn rows(&self) -> Vec<Json> {
        util::jsonl(&self.out.join("\n"))
    }

    /// Wait until `found` finds something in the output so far; Err (saying what it waited
    /// for, with the output) when the process exits first or `limit` passes.
    fn try_wait_for<T>(
        &mut self,
        what: &str,
        limit: Duration,
        mut found: impl FnMut(&Live) -> Option<T>,
    ) -> Result<T, String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(t) = found(self) {
                return Ok(t);
            }
            if self.closed {
                return Err(format!("{} ended before {what}\n{}", self.name, self.log()));
            }
            match self
                .rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => {
                    self.keep(line);
                    while let Ok(line) = self.rx.try_recv() {
                        self.keep(line);
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => self.closed = true,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "{} did not show {what} within {limit:?}\n{}",
                        self.name,
                        self.log()
                    ))
                }
            }
        }
    }

    /// [`Live::try_wait_for`] within [`PATIENCE`], failing the test when it does not come.
    fn wait_for<T>(&mut self, what: &str, found: impl FnMut(&Live) -> Option<T>) -> T {
        self.try_wait_for(what, PATIENCE, found)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Ctrl-C (SIGINT): watch and poll end as at the end of their duration, with their verdict.
    fn interrupt(&self) {
        signal("-INT", self.pid());
    }

    /// Wait for it to exit and for the rest of its output; its exit code.
    fn finish(&mut self) -> i32 {
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(s) = self.guard.0.try_wait().expect("wait") {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {PATIENCE:?}\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        // The reader threads end at the pipes' end, closing the channel.
        let _ = self.try_wait_for("the end of its output", PATIENCE, |_| None::<()>);
        assert!(
            self.closed,
            "{}: its pipes stayed open\n{}",
            self.name,
            self.log()
        );
        status.code().unwrap_or(-1)
    }
}

/// Send `sig` (`-STOP`, `-CONT`, `-INT`) to `pid`.
fn signal(sig: &str, pid: u32) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill {sig} {pid}");
}

/// `plcprobe sim` serving OPC UA, as [`UaSim`] starts it, but with its output kept, and a
/// simulator that exits instead of listening (its port taken) is an `Err` with what it said
/// rather than a failed test: a restart on a given port can try again.
struct Sim {
    /// The process, killed when dropped.
    _live: Live,
    url: String,
    port: u16,
}

fn try_sim(listen: &str, extra: &[&str]) -> Result<Sim, String> {
    let mut c = bin();
    c.args([
        "sim",
        &util::profile("demo-line.toml"),
        "--no-modbus",
        "--opcua",
        listen,
    ])
    .args(extra);
    let mut live = Live::spawn("plcprobe sim", c);
    let url = live.try_wait_for("its OPC UA address", PATIENCE, |l| {
        l.out.iter().find_map(|line| {
            let rest = line.strip_prefix("listening on opc.tcp://")?;
            Some(format!("opc.tcp://{}", rest.split_whitespace().next()?))
        })
    })?;
    let port = url
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {url}"));
    Ok(Sim {
        _live: live,
        url,
        port,
    })
}

fn sim(extra: &[&str]) -> Sim {
    try_sim("127.0.0.1:0", extra).unwrap_or_else(|e| panic!("{e}"))
}

/// A loopback port where nothing listens and nothing can start listening while the returned
/// sockets live: the local end of a connection the test holds open. A connection to it is
/// refused at once, as by a host whose server is down (a port from `free_port` is free only
/// until another test takes it).
fn closed_port() -> (u16, [TcpStream; 2]) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    (c.local_addr().unwrap().port(), [c, s])
}

/// A row's time (`time`, `source_time`: RFC 3339 in UTC, to the millisecond).
fn at(v: &Json) -> SystemTime {
    let s = v.as_str().unwrap_or_else(|| panic!("not a time: {v}"));
    humantime::parse_rfc3339_weak(s).unwrap_or_else(|e| panic!("not a time ({e}): {s}"))
}

/// `a - b` in seconds (negative when `a` is earlier).
fn secs(a: SystemTime, b: SystemTime) -> f64 {
    match a.duration_since(b) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
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
    let pki = d.path().join("pki");
    // Nobody listening: refused at once. First, so that making plcprobe's own certificate in
    // the new PKI folder is not part of the timed run below.
    let (port, _held) = closed_port();
    let url = format!("opc.tcp://127.0.0.1:{port}");
    let r = ua(&pki, None, &["read", &url, "i=2258"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("cannot connect"), "{}", r.stderr);
    // A host that accepts and never answers: CRITICAL after the timeout, and not much later
    // (the margin is for starting a process on a loaded machine; a missing bound would hang).
    let silent = util::silent_listener();
    let r = ua(
        &pki,
        None,
        &[
            "read",
            &format!("opc.tcp://{silent}"),
            "i=2258",
            "--timeout",
            "500ms",
        ],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("no answer within 500ms"), "{}", r.stderr);
    assert!(
        (Duration::from_millis(500)..Duration::from_secs(5)).contains(&r.elapsed),
        "{:?}",
        r.elapsed
    );
    // snapshot writes nothing, and names the server once.
    let out = d.path().join("snap.json");
    let r = ua(
        &pki,
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
    // Every service request waits 1.5 s at the simulator: a timeout below that always runs out;
    // one of 4 × that leaves each request room for a loaded machine.
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
            "6s",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
}

/// The node the watch and poll tests follow: its value changes at every sample.
const PRESSURE: &str = "ns=2;s=Line1.press.pressure";

/// A watch of [`PRESSURE`] every 200 ms until interrupted (the duration only bounds a watch
/// whose test died without killing it).
fn watch_pressure(pki: &Path, url: &str) -> Live {
    live_ua(
        pki,
        &[
            "watch",
            url,
            PRESSURE,
            "--interval",
            "200ms",
            "--duration",
            "300s",
            "--format",
            "jsonl",
        ],
    )
}

/// A watch row's event text ("" for a data row).
fn event(row: &Json) -> &str {
    row["event"].as_str().unwrap_or("")
}

/// The index of the first row from `from` on that carries a value.
fn value_from(rows: &[Json], from: usize) -> Option<usize> {
    (from..rows.len()).find(|&i| rows[i]["value"].is_number())
}

/// The index of the first row whose event contains `needle`.
fn event_row(rows: &[Json], needle: &str) -> Option<usize> {
    rows.iter().position(|r| event(r).contains(needle))
}

/// Wait until the watch shows a value after its "data again" event, then stop it (Ctrl-C).
fn watch_until_data_again(watch: &mut Live) {
    watch.wait_for("a value after the gap", |w| {
        let rows = w.rows();
        value_from(&rows, event_row(&rows, "data again")?)
    });
    watch.interrupt();
}

/// The rounding of a reported gap (0.1 s) and of the rows' times (1 ms).
const ROUNDING: f64 = 0.05 + 0.002;

/// A watch across one loss of its server, ended: exactly one loss, then exactly one
/// reconnection (a new session, the subscription made again), then exactly one gap measured on
/// the server's clock; values before the loss and after the gap; exit 1 (a gap is a WARNING).
/// Returns the gap, checked against the most it can be: from the source time of the last value
/// before the loss (the server's last message was no earlier) to the time watch printed the gap
/// (the server's first message after was no later).
fn recovered(watch: &mut Live) -> f64 {
    let code = watch.finish();
    let rows = watch.rows();
    let text = watch.log();
    let only = |needle: &str| {
        let at: Vec<usize> = (0..rows.len())
            .filter(|&i| event(&rows[i]).contains(needle))
            .collect();
        assert_eq!(at.len(), 1, "one `{needle}` event: {at:?}\n{text}");
        at[0]
    };
    let (lost, back, again) = (
        only("connection lost"),
        only("reconnected"),
        only("data again"),
    );
    assert!(lost < back && back < again, "{text}");
    for says in ["no longer had the old session", "subscription re-created"] {
        assert!(event(&rows[back]).contains(says), "{says}\n{text}");
    }
    let ev = event(&rows[again]);
    assert!(ev.contains("(server time,"), "{text}");
    let gap: f64 = ev
        .strip_prefix("data again: gap ")
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no gap in `{ev}`\n{text}"));
    let last = rows[..lost]
        .iter()
        .rev()
        .find(|r| r["value"].is_number())
        .unwrap_or_else(|| panic!("no value before the loss\n{text}"));
    assert!(value_from(&rows, again).is_some(), "{text}");
    let most = secs(at(&rows[again]["time"]), at(&last["source_time"])) + ROUNDING;
    assert!(gap <= most, "gap {gap} s, at most {most:.3} s\n{text}");
    assert_eq!(code, 1, "{text}");
    gap
}

/// How long the server stays away in the restart test: a stimulus (a server rebooting). The gap
/// asserted is the time measured around it, not this figure.
const AWAY: Duration = Duration::from_secs(2);

#[test]
fn watch_survives_a_server_restart_and_shows_the_gap() {
    // The watch reconnects to the same address, so the server must come back on the port it
    // had. Another program may take that port while it is free (it is an ephemeral one): then
    // the whole scenario runs again on a new port, so what is tested is still a restart.
    for attempt in 1..=3 {
        match restart_once() {
            Ok(()) => return,
            Err(why) => eprintln!("attempt {attempt}: {why}; again on another port"),
        }
    }
    panic!("the simulator's port was taken while it was away, 3 times");
}

/// One run of the restart scenario; Err when the simulator's port could not be had again.
fn restart_once() -> Result<(), String> {
    let d = tmp();
    let pki = d.path().join("pki");
    let sim = sim(&[]);
    let port = sim.port;
    let mut watch = watch_pressure(&pki, &sim.url);
    watch.wait_for("a first value", |w| value_from(&w.rows(), 0));
    drop(sim); // the server goes away (killed, as by a crash or a power cut)
    let gone = SystemTime::now();
    watch.wait_for("the loss of the server", |w| {
        event_row(&w.rows(), "connection lost")
    });
    std::thread::sleep(AWAY.saturating_sub(gone.elapsed().unwrap_or_default()));
    // Back on its port. A program that took the port meanwhile may let it go soon: a few tries.
    let mut tries = 0;
    let (_sim2, started) = loop {
        let started = SystemTime::now();
        match try_sim(&format!("127.0.0.1:{port}"), &[]) {
            Ok(s) => break (s, started),
            Err(e) if e.contains("cannot listen") && tries < 10 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) if e.contains("cannot listen") => return Err(format!("port {port} taken")),
            Err(e) => panic!("{e}"),
        }
    };
    watch_until_data_again(&mut watch);
    let gap = recovered(&mut watch);
    // The old server's last message came before it was killed, the new one's first after it
    // was started: the gap is at least the time in between.
    let least = secs(started, gone) - ROUNDING;
    assert!(
        gap >= least,
        "gap {gap} s, at least {least:.3} s\n{}",
        watch.log()
    );
    Ok(())
}

/// Stop a process (SIGSTOP) for `d`, then let it go on: a laptop asleep, a debugger, a
/// swapped-out machine. Returns when it was stopped and when it was let go, as seen here.
fn freeze(pid: u32, d: Duration) -> (SystemTime, SystemTime) {
    signal("-STOP", pid);
    let stopped = SystemTime::now();
    std::thread::sleep(d);
    let woke = SystemTime::now();
    signal("-CONT", pid);
    (stopped, woke)
}

/// The longest session the simulator grants in the expiry test.
const SESSION: Duration = Duration::from_secs(2);
/// How long the client is stopped there (the stimulus): the server finds a session expired
/// when more than [`SESSION`] passed between two of its requests, so the last request before
/// the stop may reach it up to this much minus [`SESSION`] late (a loaded machine) and the
/// session still expires.
const ASLEEP: Duration = Duration::from_secs(5);
/// How late, at most, the server handles the client's last request before the stop, or
/// notices that the session expired (the rest of the 3 s that [`ASLEEP`] leaves is margin).
const SERVER_LAG: f64 = 1.0;

#[test]
fn an_expired_session_is_replaced_by_watch_and_poll() {
    // The simulator grants sessions of at most 2 s; the client is stopped for 5 s, so its
    // session expires on the server. On waking, watch and poll must see it, open a new session
    // (watch re-creates its subscription) and go on, and say so: WARNING (exit 1).
    let d = tmp();
    let pki = d.path().join("pki");
    let timeout = format!("session-timeout={}s", SESSION.as_secs());
    let sim = sim(&["--fault", &timeout]);
    let mut watch = watch_pressure(&pki, &sim.url);
    watch.wait_for("a first value", |w| value_from(&w.rows(), 0));
    let (stopped, woke) = freeze(watch.pid(), ASLEEP);
    watch_until_data_again(&mut watch);
    let gap = recovered(&mut watch);
    // Watch only saw the loss on waking; the gap still counts from the server's last message,
    // sent at the latest when the session expired, SESSION after the client's last request.
    let least = secs(woke, stopped) - SESSION.as_secs_f64() - SERVER_LAG;
    assert!(
        gap >= least,
        "gap {gap} s, at least {least:.3} s\n{}",
        watch.log()
    );

    // poll: the failed read names the status (-v), the session is opened again, reads go on.
    let mut poll = live_ua(
        &pki,
        &[
            "poll",
            &sim.url,
            PRESSURE,
            "--interval",
            "200ms",
            "--duration",
            "300s",
            "-v",
            "--format",
            "jsonl",
        ],
    );
    let ok = |r: &Json| r["status"] == "ok";
    poll.wait_for("a first answer", |p| p.rows().iter().position(ok));
    let (stopped, woke) = freeze(poll.pid(), ASLEEP);
    poll.wait_for("three answers after a failure", |p| {
        let rows = p.rows();
        let failed = rows.iter().position(|r| !ok(r))?;
        (rows[failed..].iter().filter(|r| ok(r)).count() >= 3).then_some(())
    });
    poll.interrupt();
    let code = poll.finish();
    let rows = poll.rows();
    let text = poll.log();
    // Answers until the stop, failures from the first read after waking, then answers only.
    let failed = rows.iter().position(|r| !ok(r)).unwrap();
    let back = failed + rows[failed..].iter().position(ok).unwrap();
    assert!(failed > 0, "{text}");
    assert!(rows[back..].iter().all(ok), "{text}");
    assert!(at(&rows[failed - 1]["time"]) <= stopped, "{text}");
    let ms = Duration::from_millis(1); // the rows' rounding
    assert!(at(&rows[failed]["time"]) + ms >= woke, "{text}");
    // Each failed read is named on stderr (-v); the first names the expired session and closes
    // the dead channel at once, so no later read runs into it (async-opcua alone would wait
    // for failed keep-alives: seconds of reads failing that way). Reads while the new session
    // opens may fail too, as not connected.
    let said: Vec<&String> = poll.err.iter().filter(|l| l.contains(": poll ")).collect();
    assert_eq!(said.len(), back - failed, "{text}");
    for (line, row) in said.iter().zip(&rows[failed..back]) {
        assert!(line.contains(&format!(": poll {}: ", row["seq"])), "{text}");
    }
    assert!(
        said[0].contains("BadSessionIdInvalid") && said[0].contains("opening a new one"),
        "{text}"
    );
    assert_eq!(
        poll.err
            .iter()
            .filter(|l| l.contains("BadSessionIdInvalid"))
            .count(),
        1,
        "{text}"
    );
    // The statistics, the last line of stderr (after the -v messages), count what the rows show.
    let stats: Json = serde_json::from_str(poll.err.last().map_or("", String::as_str))
        .unwrap_or_else(|e| panic!("no statistics ({e})\n{text}"));
    assert_eq!(stats["connects"], 2, "{text}");
    assert_eq!(stats["sent"], rows.len(), "{text}");
    assert_eq!(
        stats["received"],
        rows.iter().filter(|r| ok(r)).count(),
        "{text}"
    );
    assert_eq!(
        stats["errors"],
        json!({"connection": back - failed}),
        "{text}"
    );
    assert!(rows[back][PRESSURE].is_number(), "{text}");
    assert_eq!(code, 1, "{text}");
}

#[test]
fn against_the_asyncua_server() {
    let Some(py) = python() else { return };
    let d = tmp();
    let pki = d.path().join("pki");
    let peer = util::Peer::start(&py, d.path(), "valid");
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
    let peer = util::Peer::start(&py, d.path(), cert);
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
    let strokes = "ns=2;s=Line1.press.strokes";
    let r = ua(
        &pki,
        None,
        &[
            "poll",
            &sim.url,
            strokes,
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
    // Values come (a counter: never backwards), and the Bad status of a node shows in the
    // row's status, without a value.
    let ok: Vec<u64> = rows.iter().filter_map(|x| x[strokes].as_u64()).collect();
    assert!(ok.len() >= 2 && ok.len() < 20, "{ok:?}");
    assert!(ok.windows(2).all(|w| w[0] <= w[1]), "{ok:?}");
    for row in &rows {
        let good = row["status"] == "ok" && row[strokes].is_u64();
        let bad = row["status"] == "BadSensorFailure" && row[strokes].is_null();
        assert!(good || bad, "{row}");
    }
    // The statistics (stderr when the rows are on stdout): 20 requests, one session.
    let stats: Json = serde_json::from_str(r.stderr.trim()).unwrap();
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
    // The simulator drops the connection on 20% of requests: the poll counts the failures,
    // reconnects and goes on (WARNING). How many reads fail while a reconnection runs depends
    // on the machine's speed: the statistics (-q: on stdout) must count what the results file
    // records poll by poll.
    let flaky = UaSim::start("127.0.0.1:0", &["--fault", "drop=0.2", "--seed", "3"]);
    let results = d.path().join("flaky.json");
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
            "50ms",
            "-q",
            "--format",
            "json",
            "--results",
            results.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let stats = r.json();
    let doc: Json = serde_json::from_slice(&std::fs::read(&results).unwrap()).unwrap();
    let failed: Vec<bool> = doc["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| !s["error"].is_null())
        .collect();
    assert_eq!(failed.len(), 40, "{doc}");
    let errors = failed.iter().filter(|f| **f).count();
    assert_eq!(stats["sent"], 40);
    assert_eq!(stats["received"], 40 - errors, "{stats}");
    assert_eq!(stats["errors"], json!({ "connection": errors }), "{stats}");
    // Each run of failures that ended with an answer needed a new connection.
    let recovered = failed.windows(2).filter(|w| w[0] && !w[1]).count();
    assert!(recovered >= 1, "{failed:?}");
    let connects = stats["connects"].as_u64().unwrap();
    assert!(connects > recovered as u64, "{failed:?} {stats}");
    // Nobody there: CRITICAL, with the reason.
    let (port, _held) = closed_port();
    let url = format!("opc.tcp://127.0.0.1:{port}");
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
