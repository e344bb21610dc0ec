//! Test helpers: the real binary, a simulator subprocess behind a drop guard, the independent
//! peers (pymodbus, mbpoll) and a silent TCP listener. Everything binds to loopback.

use std::{
    io::{BufRead, BufReader, Read},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
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
    _guard: Guard,
    pub addrs: Vec<SocketAddr>,
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
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut addrs = Vec::new();
        let header = lines.next().expect("sim prints a header").expect("utf8");
        assert!(
            header.starts_with("plcprobe sim:"),
            "unexpected sim header: {header}"
        );
        for line in lines.by_ref() {
            let line = line.expect("utf8");
            let a = line
                .strip_prefix("listening on modbus://")
                .unwrap_or_else(|| panic!("unexpected sim line: {line}"));
            addrs.push(a.parse().expect("socket address"));
            if addrs.len() == listen_count(listen) {
                break;
            }
        }
        // Keep draining stdout so the sim never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Sim {
            _guard: Guard(child),
            addrs,
        }
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

/// A peer the tests need is missing: fail in CI (its script installs every peer), skip loudly
/// elsewhere.
pub fn missing_peer(what: &str) {
    let msg = format!("{what} is not installed; run scripts/test (it installs the test peers)");
    assert!(std::env::var_os("CI").is_none(), "{msg}");
    eprintln!("SKIPPED: {msg}");
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

impl Peer {
    /// Start it with `py` (the venv's Python), its PKI under `dir`, and certificate kind `cert`
    /// (`valid`, `expired`, `wronghost`).
    pub fn start(py: &Path, dir: &Path, cert: &str) -> Peer {
        let port = free_port();
        let pki = dir.join("peer-pki");
        let child = Command::new(py)
            .arg(root().join("tests/peers/asyncua_server.py"))
            .arg(port.to_string())
            .arg(&pki)
            .args(["--cert", cert])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start asyncua server");
        let guard = Guard(child);
        assert!(
            wait_port(port, Duration::from_secs(30)),
            "asyncua server did not come up on {port}"
        );
        Peer {
            _guard: guard,
            url: format!("opc.tcp://127.0.0.1:{port}/peer/"),
            cert: pki.join("server.der"),
        }
    }
}
