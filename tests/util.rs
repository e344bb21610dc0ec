//! Test helpers: the real binary, a simulator subprocess behind a drop guard, the independent
//! peers (pymodbus, mbpoll) and a silent TCP listener. Everything binds to loopback.

use std::{
    io::{BufRead, BufReader, Read},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{mpsc, Arc, Mutex},
    time::{Duration, Instant},
};

/// The plcprobe binary under test.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_plcprobe"));
    c.env_remove("NO_COLOR").env("PLCPROBE_TEST", "1");
    c
}

/// Project root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A profile shipped in `profiles/`.
pub fn profile(name: &str) -> String {
    root().join("profiles").join(name).display().to_string()
}

/// Result of running the binary.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }

    pub fn jsonl(&self) -> Vec<serde_json::Value> {
        jsonl(&self.stdout)
    }
}

/// JSON lines, each parsed (a line that is not JSON fails the test, naming it).
pub fn jsonl(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("line is not JSON ({e}): {l}")))
        .collect()
}

/// Run plcprobe with these arguments to the end.
pub fn run(args: &[&str]) -> Run {
    run_cmd(bin(), args)
}

/// Run a prepared plcprobe command (extra environment) with these arguments to the end.
pub fn run_cmd(mut cmd: Command, args: &[&str]) -> Run {
    let t0 = Instant::now();
    let out = cmd
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run plcprobe");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: t0.elapsed(),
    }
}

/// A child process killed when dropped.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `plcprobe sim` on an ephemeral loopback port.
pub struct Sim {
    guard: Guard,
    pub addrs: Vec<SocketAddr>,
    stderr: mpsc::Receiver<String>,
    log: Arc<Mutex<String>>,
}

impl Sim {
    /// Start the simulator serving `profile_name` with extra args (faults, units).
    pub fn start(profile_name: &str, extra: &[&str]) -> Sim {
        Self::start_on(profile_name, &["127.0.0.1:0"], extra)
    }

    /// Start on given listen specs.
    pub fn start_on(profile_name: &str, listen: &[&str], extra: &[&str]) -> Sim {
        let mut cmd = bin();
        cmd.arg("sim").arg(profile(profile_name));
        for l in listen {
            cmd.args(["--modbus", l]);
        }
        cmd.args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        let mut child = cmd.spawn().expect("spawn sim");
        // Lines read on threads, so a sim that dies or hangs fails the test with its stderr
        // instead of blocking it for ever.
        let (rx, _) = watch_lines(child.stdout.take().expect("stdout"), |_| true);
        let (stderr, log) = watch_lines(child.stderr.take().expect("stderr"), |_| true);
        let mut guard = Guard(child);
        let want = listen_count(listen);
        let lines = recv_lines(&rx, 1 + want, Duration::from_secs(60)).unwrap_or_else(|| {
            let status = guard.0.try_wait().ok().flatten();
            panic!(
                "sim did not print its {want} address(es) within 60 s (exit: {status:?}); its stderr:\n{}",
                log.lock().unwrap()
            )
        });
        assert!(
            lines[0].starts_with("plcprobe sim:"),
            "unexpected sim header: {}",
            lines[0]
        );
        let addrs = lines[1..]
            .iter()
            .map(|line| {
                line.strip_prefix("listening on modbus://")
                    .unwrap_or_else(|| panic!("unexpected sim line: {line}"))
                    .parse()
                    .expect("socket address")
            })
            .collect();
        // The reader threads keep draining both pipes.
        Sim {
            guard,
            addrs,
            stderr,
            log,
        }
    }

    /// Stop it as Ctrl-C does and return what it wrote to stderr (the last line says how many
    /// requests it served).
    pub fn stop(mut self) -> String {
        interrupt(&mut self.guard, &self.stderr, &self.log)
    }

    /// Target URL for the first listener.
    pub fn target(&self, unit: u8) -> String {
        format!("modbus://{}/{unit}", self.addrs[0])
    }
}

fn listen_count(listen: &[&str]) -> usize {
    listen
        .iter()
        .map(|l| {
            let ports = l.rsplit_once(':').unwrap().1;
            match ports.split_once('-') {
                Some((a, b)) => (b.parse::<usize>().unwrap() - a.parse::<usize>().unwrap()) + 1,
                None => 1,
            }
        })
        .sum()
}

/// A free loopback port (bound then released; the peer binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Wait until something accepts TCP connections on the port.
pub fn wait_port(port: u16, limit: Duration) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Wait until the capture `file` (written as it goes by `sim --record`) holds `n` requests,
/// answered or not: the simulator records an answer just after sending it, so a client can finish
/// before its last answer is on file. Fails after `limit` with what was there.
pub fn wait_recorded(file: &str, n: u64, limit: Duration) -> serde_json::Value {
    let t0 = Instant::now();
    loop {
        let r = run(&["decode", file, "--format", "json"]);
        let doc: Option<serde_json::Value> = serde_json::from_str(&r.stdout).ok();
        // Requests answered or not (a dropped request stays unanswered).
        let got = doc.as_ref().and_then(|d| {
            Some(d["totals"]["transactions"].as_u64()? + d["totals"]["unanswered"].as_u64()?)
        });
        match (got, doc) {
            (Some(g), Some(doc)) if g >= n => {
                assert_eq!(g, n, "{file}: more requests recorded than expected");
                return doc;
            }
            (got, _) => assert!(
                t0.elapsed() < limit,
                "{file}: {got:?} of {n} requests recorded after {limit:?}: {}{}",
                r.stdout,
                r.stderr
            ),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A test cannot run here (a peer, a tool or an input is missing). Under `CI` that fails the
/// test: CI installs every peer and has `../shared`, so a skip there would be a test passing
/// without testing. Elsewhere the test returns early and the skip is recorded, with the test's
/// name and `why`, in `target/skipped-tests.txt` (or `$PLCPROBE_SKIP_LOG`): `scripts/test`
/// prints that list after `cargo test`, where a green "ok" cannot hide it.
pub fn skip(why: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "under CI nothing may be skipped: {why}"
    );
    let test = std::thread::current()
        .name()
        .unwrap_or("(unnamed test)")
        .to_string();
    eprintln!("SKIPPED: {test}: {why}");
    let log = std::env::var_os("PLCPROBE_SKIP_LOG")
        .map_or_else(|| root().join("target/skipped-tests.txt"), PathBuf::from);
    // One `write` per line with O_APPEND: parallel tests do not interleave within a line.
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
    {
        use std::io::Write as _;
        let _ = f.write_all(format!("{test}: {why}\n").as_bytes());
    }
}

/// A peer the tests need is missing: [`skip`], saying how to get it.
pub fn missing_peer(what: &str) {
    skip(&format!(
        "{what} is not installed; run scripts/test (it installs the test peers)"
    ));
}

/// The Python of the test venv (made by scripts/test), if present.
pub fn python() -> Option<PathBuf> {
    let p = std::env::var_os("PLCPROBE_TEST_PYTHON")
        .map_or_else(|| root().join(".venv/bin/python"), PathBuf::from);
    if p.exists() {
        Some(p)
    } else {
        missing_peer(&format!("the test venv ({})", p.display()));
        None
    }
}

/// A system tool on PATH.
pub fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| p.exists())
    });
    if found.is_none() {
        missing_peer(name);
    }
    found
}

/// Run `body` as pymodbus's TCP client `c`, connected to `127.0.0.1:port`; its stdout (the
/// script must succeed: its stderr is in the failure).
pub fn pymodbus_client(py: &Path, port: u16, body: &str) -> String {
    let script = format!(
        "from pymodbus.client import ModbusTcpClient\nc = ModbusTcpClient('127.0.0.1', port={port})\nc.connect()\n{body}"
    );
    let out = Command::new(py).args(["-c", &script]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "pymodbus client: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// The pymodbus server of tests/peers on a free port.
pub struct PyModbus {
    _guard: Guard,
    pub port: u16,
}

impl PyModbus {
    pub fn start(python: &Path) -> PyModbus {
        for _ in 0..3 {
            let port = free_port();
            let child = Command::new(python)
                .arg(root().join("tests/peers/pymodbus_server.py"))
                .arg(port.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start pymodbus server");
            let mut guard = Guard(child);
            if wait_port(port, Duration::from_secs(20)) {
                return PyModbus {
                    _guard: guard,
                    port,
                };
            }
            let mut err = String::new();
            let _ = guard.0.kill();
            if let Some(e) = guard.0.stderr.as_mut() {
                let _ = e.read_to_string(&mut err);
            }
            eprintln!("pymodbus server did not come up on {port}, retrying: {err}");
        }
        panic!("pymodbus server did not start");
    }

    pub fn target(&self, unit: u8) -> String {
        format!("modbus://127.0.0.1:{}/{unit}", self.port)
    }
}

/// A TCP server on loopback that accepts connections and never answers: a device whose Modbus
/// task hangs. Lives as long as the returned listener thread's socket.
pub fn silent_listener() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().flatten() {
            held.push(s); // keep it open, read nothing, answer nothing
        }
    });
    addr
}

/// `plcprobe sim PROFILE --no-modbus --opcua ADDR` behind a drop guard.
pub struct UaSim {
    _guard: Guard,
    /// `opc.tcp://…` as the simulator printed it.
    pub url: String,
}

impl UaSim {
    /// Start it on `listen` (`127.0.0.1:0` for any free port) with extra args (faults).
    pub fn start(listen: &str, extra: &[&str]) -> UaSim {
        let mut child = bin()
            .args([
                "sim",
                &profile("demo-line.toml"),
                "--no-modbus",
                "--opcua",
                listen,
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn sim");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let url = loop {
            let line = lines.next().expect("sim prints its address").expect("utf8");
            if let Some(rest) = line.strip_prefix("listening on opc.tcp://") {
                break format!(
                    "opc.tcp://{}",
                    rest.split_whitespace().next().expect("addr")
                );
            }
        };
        std::thread::spawn(move || for _ in lines {});
        UaSim {
            _guard: Guard(child),
            url,
        }
    }
}

/// The asyncua server of tests/peers on a free port.
pub struct Peer {
    _guard: Guard,
    /// Its endpoint URL.
    pub url: String,
    /// The server certificate it wrote (DER), to trust.
    pub cert: PathBuf,
}

/// How long the asyncua peer may take to start: a few seconds of Python imports and key
/// generation, ten times that when the tests run niced beside busy processes.
pub const PEER_START: Duration = Duration::from_secs(120);

impl Peer {
    /// Start it with `py` (the venv's Python), its PKI under `dir`, and certificate kind `cert`
    /// (`valid`, `expired`, `wronghost`); `extra` arguments for the peer script. Ready when it
    /// prints `READY` (once it accepts connections, so a port another test took meanwhile is
    /// not mistaken for it), within [`PEER_START`]; one that exits first (its port taken) is
    /// started again on another port.
    pub fn start(py: &Path, dir: &Path, cert: &str) -> Peer {
        Self::start_with(py, dir, cert, &[])
    }

    /// [`Peer::start`] with extra arguments for the peer script.
    pub fn start_with(py: &Path, dir: &Path, cert: &str, extra: &[&str]) -> Peer {
        let pki = dir.join("peer-pki");
        for _ in 0..3 {
            let port = free_port();
            let mut child = Command::new(py)
                .arg(root().join("tests/peers/asyncua_server.py"))
                .arg(port.to_string())
                .arg(&pki)
                .args(["--cert", cert])
                .args(extra)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start asyncua server");
            let (ready, _) = watch_lines(child.stdout.take().expect("stdout"), |l| l == "READY");
            let (_, log) = watch_lines(child.stderr.take().expect("stderr"), |_| false);
            let mut guard = Guard(child);
            if recv_lines(&ready, 1, PEER_START).is_some() {
                return Peer {
                    _guard: guard,
                    url: format!("opc.tcp://127.0.0.1:{port}/peer/"),
                    cert: pki.join("server.der"),
                };
            }
            let exited = guard.0.try_wait().ok().flatten();
            assert!(
                exited.is_some(),
                "asyncua server on {port} not ready within {PEER_START:?}:\n{}",
                log.lock().unwrap()
            );
            eprintln!(
                "asyncua server on {port} exited ({exited:?}), again on another port:\n{}",
                log.lock().unwrap()
            );
        }
        panic!("the asyncua server did not start, 3 times");
    }
}

/// Reads `r` line by line on a thread to its end (so the child never blocks on a full pipe):
/// lines for which `keep` is true are sent over the channel, the last few KB of all text is kept
/// in the returned log for error messages.
fn watch_lines<R: Read + Send + 'static>(
    r: R,
    keep: fn(&str) -> bool,
) -> (mpsc::Receiver<String>, Arc<Mutex<String>>) {
    let (tx, rx) = mpsc::channel();
    let log = Arc::new(Mutex::new(String::new()));
    let log2 = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            {
                let mut l = log2.lock().unwrap();
                if l.len() > 8192 {
                    let cut = l.len() - 4096;
                    let cut = (cut..l.len()).find(|&i| l.is_char_boundary(i)).unwrap_or(0);
                    l.drain(..cut);
                }
                l.push_str(&line);
                l.push('\n');
            }
            if keep(&line) {
                let _ = tx.send(line);
            }
        }
    });
    (rx, log)
}

/// Every line of `r`, read on a thread to its end and sent over the returned channel (closed at
/// end of file), so a child never blocks on a full pipe and a test can wait with a deadline.
pub fn lines_of<R: Read + Send + 'static>(r: R) -> mpsc::Receiver<String> {
    watch_lines(r, |_| true).0
}

/// The next `n` kept lines from `rx` within `limit`; None when the writer ended or time ran out.
fn recv_lines(rx: &mpsc::Receiver<String>, n: usize, limit: Duration) -> Option<Vec<String>> {
    let deadline = Instant::now() + limit;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        out.push(rx.recv_timeout(left).ok()?);
    }
    Some(out)
}

/// A connected pair of pseudo-terminals made by socat
/// (`socat -d -d pty,raw,echo=0 pty,raw,echo=0`): what is written to `a` is read from `b` and
/// back, like the two ends of a null-modem cable. Ptys accept and ignore baud and parity, and
/// Linux ptys refuse even parity through pyserial (use 8N1). Bytes written while nobody has the
/// other end open wait in the pty's buffer for the next opener. socat keeps the pair alive when
/// either end is closed and reopened.
pub struct PtyPair {
    /// One end (`/dev/pts/N`), e.g. for the server.
    pub a: String,
    /// The other end, e.g. for the client.
    pub b: String,
    _guard: Guard,
}

impl PtyPair {
    /// None (after `missing_peer`) when socat is not installed.
    pub fn new() -> Option<PtyPair> {
        let socat = tool("socat")?;
        let mut child = Command::new(socat)
            .args(["-d", "-d", "pty,raw,echo=0", "pty,raw,echo=0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start socat");
        // "2026/11/27 12:35:34 socat[3351] N PTY is /dev/pts/0"
        let (rx, log) = watch_lines(child.stderr.take().expect("stderr"), |l| {
            l.contains(" PTY is /dev/")
        });
        let guard = Guard(child);
        let lines = recv_lines(&rx, 2, Duration::from_secs(10)).unwrap_or_else(|| {
            panic!(
                "socat did not print two ptys:\n{}",
                log.lock().unwrap().as_str()
            )
        });
        let path = |l: &str| l.rsplit_once(" PTY is ").expect("pty line").1.to_string();
        let (a, b) = (path(&lines[0]), path(&lines[1]));
        let t0 = Instant::now();
        while !(Path::new(&a).exists() && Path::new(&b).exists()) {
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "{a} or {b} never appeared"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Some(PtyPair {
            a,
            b,
            _guard: guard,
        })
    }
}

/// `tests/peers/pymodbus_rtu_server.py`: the pymodbus register map (units 1 and 2) served as Modbus
/// RTU on a serial port (19200 8N1) or as RTU over TCP on loopback. Units it does not serve get
/// no answer (as on a real bus), unless started with `--answer-unknown`.
pub struct PyRtu {
    _guard: Guard,
    /// The TCP port when serving RTU over TCP; None on a serial port.
    pub port: Option<u16>,
}

impl PyRtu {
    /// Serve on the serial port `pty` (one end of a [`PtyPair`]; clients use the other end).
    pub fn serial(py: &Path, pty: &str) -> PyRtu {
        Self::serial_with(py, pty, &[])
    }

    /// [`PyRtu::serial`] with extra arguments (`--answer-unknown`).
    pub fn serial_with(py: &Path, pty: &str, extra: &[&str]) -> PyRtu {
        match Self::start(py, &["--serial", pty], extra) {
            Ok(guard) => PyRtu {
                _guard: guard,
                port: None,
            },
            Err(e) => panic!("pymodbus rtu server did not start on {pty}: {e}"),
        }
    }

    /// Serve RTU over TCP on a free loopback port.
    pub fn tcp(py: &Path) -> PyRtu {
        Self::tcp_with(py, &[])
    }

    /// [`PyRtu::tcp`] with extra arguments (`--answer-unknown`).
    pub fn tcp_with(py: &Path, extra: &[&str]) -> PyRtu {
        for _ in 0..3 {
            let port = free_port();
            match Self::start(py, &["--rtu-tcp", &port.to_string()], extra) {
                Ok(guard) => {
                    return PyRtu {
                        _guard: guard,
                        port: Some(port),
                    };
                }
                Err(e) => eprintln!("pymodbus rtu server did not come up on {port}, retrying: {e}"),
            }
        }
        panic!("pymodbus rtu server did not start");
    }

    /// Start the server and wait for its ready line (printed once the port is open or the
    /// listener bound, so a port taken in the meantime is a failure here, not a wrong peer).
    fn start(py: &Path, at: &[&str], extra: &[&str]) -> Result<Guard, String> {
        let mut child = Command::new(py)
            .arg(root().join("tests/peers/pymodbus_rtu_server.py"))
            .args(at)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start pymodbus rtu server");
        let (ready, _) = watch_lines(child.stdout.take().expect("stdout"), |l| {
            l.starts_with("pymodbus rtu server on ")
        });
        let (_, err) = watch_lines(child.stderr.take().expect("stderr"), |_| false);
        let guard = Guard(child);
        if recv_lines(&ready, 1, Duration::from_secs(20)).is_some() {
            Ok(guard)
        } else {
            drop(guard);
            Err(err.lock().unwrap().clone())
        }
    }

    /// plcprobe's target for unit `unit` of this server over RTU over TCP. (On a serial port the
    /// target names the client's end of the pty pair: [`PyRtu::serial_target`].)
    pub fn target(&self, unit: u8) -> String {
        let port = self
            .port
            .expect("a serial PyRtu: use PyRtu::serial_target(other end, unit)");
        format!("rtu+tcp://127.0.0.1:{port}/{unit}")
    }

    /// plcprobe's target for unit `unit` on the serial port `pty` at the server's settings
    /// (19200 8N1). `rtu://` + an absolute path: three slashes.
    pub fn serial_target(pty: &str, unit: u8) -> String {
        format!("rtu://{pty}?baud=19200&frame=8N1&unit={unit}")
    }
}

/// A serial device server (a TCP↔RS-485 gateway in transparent mode) in miniature: socat
/// listening on loopback and passing bytes to and from a serial port (a pty), unchanged, so
/// clients speak RTU over TCP to whatever serves the serial line (e.g. a serial [`PyRtu`]):
///
/// `socat -t 0 TCP-LISTEN:PORT,bind=127.0.0.1,reuseaddr,fork,max-children=1,nodelay
///  FILE:/dev/pts/N,raw,echo=0`
///
/// One client at a time, as a serial line demands: without `fork` socat serves one connection
/// and exits (one plcprobe run per bridge, and no `wait_port` probe); with plain `fork` two
/// clients would open the line at once and read each other's answers. `max-children=1` serves
/// connections one after the other: a second client's connection completes (kernel backlog)
/// but waits, unanswered, until the first has closed. `-t 0`: by default socat's child lives
/// on 0.5 s after its client closed, and with `max-children=1` the next client (the first one
/// too, after the readiness probe) would wait that long for its first answer. A late answer
/// to a client that already left stays in the pty for the next one, as on a real gateway that
/// does not flush.
pub struct SocatBridge {
    _guard: Guard,
    /// The loopback TCP port.
    pub port: u16,
}

impl SocatBridge {
    /// Bridge a free loopback port to `pty`. None (after `missing_peer`) when socat is missing.
    pub fn new(pty: &str) -> Option<SocatBridge> {
        let socat = tool("socat")?;
        for _ in 0..3 {
            let port = free_port();
            let mut child = Command::new(&socat)
                .args(["-t", "0"])
                .arg(format!(
                    "TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,max-children=1,nodelay"
                ))
                .arg(format!("FILE:{pty},raw,echo=0"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start socat");
            let (_, err) = watch_lines(child.stderr.take().expect("stderr"), |_| false);
            let mut guard = Guard(child);
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = guard.0.try_wait() {
                    break; // e.g. the port was taken in the meantime
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Some(SocatBridge {
                        _guard: guard,
                        port,
                    });
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = guard.0.kill();
            let _ = guard.0.wait();
            eprintln!(
                "socat bridge did not come up on {port}, retrying: {}",
                err.lock().unwrap().as_str()
            );
        }
        panic!("socat bridge did not start");
    }

    /// plcprobe's target for unit `unit` behind the bridge.
    pub fn target(&self, unit: u8) -> String {
        format!("rtu+tcp://127.0.0.1:{}/{unit}", self.port)
    }
}

/// Run `tests/peers/pymodbus_rtu_client.py` with these arguments to the end: its exit code, its
/// JSON line (`ok`, `errors`, `seconds`, `first`, `timeouts`, `exceptions`, `error`) and how long
/// the whole run took (Python's start included).
pub fn rtu_client(py: &Path, args: &[&str]) -> (i32, serde_json::Value, Duration) {
    let t0 = Instant::now();
    let out = Command::new(py)
        .arg(root().join("tests/peers/pymodbus_rtu_client.py"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run pymodbus rtu client");
    let elapsed = t0.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_else(|| {
        panic!(
            "pymodbus rtu client printed nothing; stderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let v = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    (out.status.code().unwrap_or(-1), v, elapsed)
}

/// `plcprobe sim PROFILE` serving Modbus RTU behind a drop guard: on one end of a [`PtyPair`]
/// (`--rtu rtu://PTY?frame=8N1`, 19200 8N1), as an RTU-over-TCP gateway on a free loopback port
/// (`--rtu-tcp 127.0.0.1:0`), or on any mix of listeners ([`RtuSim::start`]). Its stdout is
/// drained; its stderr is kept ([`RtuSim::stop`] returns it).
pub struct RtuSim {
    guard: Guard,
    /// What it printed after `listening on `, one per listener in the order the simulator
    /// prints them: `modbus://127.0.0.1:P`, `rtu:///dev/pts/N?baud=19200&frame=8N1&unit=1`,
    /// `rtu+tcp://127.0.0.1:P`.
    pub listening: Vec<String>,
    stderr: mpsc::Receiver<String>,
    log: Arc<Mutex<String>>,
}

impl RtuSim {
    /// Serve RTU on the serial port `pty` at 19200 8N1 (clients use the pair's other end).
    pub fn serial(profile_name: &str, pty: &str, extra: &[&str]) -> RtuSim {
        let spec = format!("rtu://{pty}?frame=8N1");
        Self::start(profile_name, &["--rtu", &spec], extra)
    }

    /// Serve RTU over TCP on a free loopback port.
    pub fn tcp(profile_name: &str, extra: &[&str]) -> RtuSim {
        Self::start(profile_name, &["--rtu-tcp", "127.0.0.1:0"], extra)
    }

    /// Start it with the listener flags `listen` (each `--modbus`, `--rtu` or `--rtu-tcp` with
    /// one address, port 0 for any) and `extra` arguments; returns once every listener is up.
    /// A simulator that exits instead (a busy port) fails the test with its stderr.
    pub fn start(profile_name: &str, listen: &[&str], extra: &[&str]) -> RtuSim {
        Self::try_start(profile_name, listen, extra)
            .unwrap_or_else(|log| panic!("sim {listen:?} {extra:?} did not start; stderr:\n{log}"))
    }

    /// [`RtuSim::start`], or what the simulator wrote to stderr when it exited (or printed
    /// nothing) instead of listening.
    pub fn try_start(
        profile_name: &str,
        listen: &[&str],
        extra: &[&str],
    ) -> Result<RtuSim, String> {
        let listeners = listen.iter().filter(|a| a.starts_with("--")).count();
        let mut child = bin()
            .arg("sim")
            .arg(profile(profile_name))
            .args(listen)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sim");
        let (ready, _) = watch_lines(child.stdout.take().expect("stdout"), |l| {
            l.starts_with("listening on ")
        });
        let (stderr, log) = watch_lines(child.stderr.take().expect("stderr"), |_| true);
        let mut guard = Guard(child);
        let Some(lines) = recv_lines(&ready, listeners, Duration::from_secs(20)) else {
            let _ = guard.0.kill();
            let _ = guard.0.wait();
            // The reader thread ends at the pipe's end of file, closing the channel.
            let mut text = String::new();
            while let Ok(line) = stderr.recv_timeout(Duration::from_secs(5)) {
                text.push_str(&line);
                text.push('\n');
            }
            return Err(text);
        };
        Ok(RtuSim {
            guard,
            listening: lines
                .iter()
                .map(|l| l["listening on ".len()..].trim().to_string())
                .collect(),
            stderr,
            log,
        })
    }

    /// The simulator's process ID (named when it holds a port another program wants).
    pub fn pid(&self) -> u32 {
        self.guard.0.id()
    }

    /// The URL it printed for the listener whose URL starts with `scheme` (`rtu+tcp://` …).
    pub fn url(&self, scheme: &str) -> &str {
        self.listening
            .iter()
            .find(|u| u.starts_with(scheme))
            .unwrap_or_else(|| panic!("no {scheme} listener in {:?}", self.listening))
    }

    /// The RTU-over-TCP port.
    pub fn tcp_port(&self) -> u16 {
        let url = self.url("rtu+tcp://");
        url.rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {url}"))
    }

    /// plcprobe's target for unit `unit` over RTU over TCP.
    pub fn tcp_target(&self, unit: u8) -> String {
        format!("rtu+tcp://127.0.0.1:{}/{unit}", self.tcp_port())
    }

    /// plcprobe's target for unit `unit` of the Modbus TCP listener (`--modbus 127.0.0.1:0`).
    pub fn modbus_target(&self, unit: u8) -> String {
        format!("{}/{unit}", self.url("modbus://"))
    }

    /// What it wrote to stderr so far (for failure messages).
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Stop it as Ctrl-C does (SIGINT: it finishes its capture file and says so) and return all
    /// it wrote to stderr.
    pub fn stop(mut self) -> String {
        interrupt(&mut self.guard, &self.stderr, &self.log)
    }
}

/// Stop a simulator as Ctrl-C does (SIGINT: it finishes its capture file and says how many
/// requests it served) and return what it wrote to stderr (`stderr` carries every line).
fn interrupt(guard: &mut Guard, stderr: &mpsc::Receiver<String>, log: &Mutex<String>) -> String {
    let pid = guard.0.id().to_string();
    let sent = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .is_ok_and(|s| s.success());
    assert!(sent, "kill -INT {pid}");
    let t0 = Instant::now();
    while guard.0.try_wait().expect("wait for sim").is_none() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "sim did not stop on SIGINT:\n{}",
            log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The reader thread ends at the pipe's end of file, closing the channel.
    let mut text = String::new();
    while let Ok(line) = stderr.recv_timeout(Duration::from_secs(5)) {
        text.push_str(&line);
        text.push('\n');
    }
    text
}

/// `tshark -r FILE ARGS…`'s stdout, after asserting that it read the file with no warning or
/// error on stderr (its note about running as root aside) and exited 0.
pub fn tshark(file: &Path, args: &[&str]) -> String {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(file)
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let complaints: Vec<&str> = err
        .lines()
        .filter(|l| !l.starts_with("Running as user") && !l.trim().is_empty())
        .collect();
    assert!(
        out.status.success() && complaints.is_empty(),
        "tshark -r {}: {err}",
        file.display()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Headless Chromium with no network of its own (the machine's closed network refuses its
/// background connections): the flags every report test starts it with.
pub const CHROMIUM_FLAGS: [&str; 8] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// The DOM Chromium renders from `html` (a fresh profile in `profile`).
pub fn chromium_dom(chromium: &Path, html: &Path, profile: &Path) -> String {
    let out = Command::new(chromium)
        .args(CHROMIUM_FLAGS)
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--dump-dom", &format!("file://{}", html.display())])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}
