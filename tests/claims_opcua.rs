//! README claims about OPC UA that no other test checks, each against a real server:
//!
//! - "a server that does not trust plcprobe's certificate [gets] its own message": the asyncua
//!   peer (`tests/peers/asyncua_server.py`) started with `--trusted-clients` refuses client
//!   certificates missing from its `trusted/` folder (asyncua's `CertificateValidator` over a
//!   `TrustStore`) and keeps them in `rejected/`. plcprobe, trusting the server, must say the
//!   server does not trust *its* certificate and where that certificate is, exit 2, distinct from
//!   the other direction (an untrusted server certificate: exit 3) and from a wrong password;
//!   once the peer trusts plcprobe's certificate (copied from `$PLCPROBE_PKI/own/`) the same
//!   secured read succeeds.
//! - `watch` "exit … 2 if no data came back before watch ended" (DESIGN.md §6: "server lost and
//!   not back when watch ended"): `plcprobe sim --opcua` is killed after the first data change
//!   and stays away until `--duration` ends.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use crate::util::{self, bin, lines_of, python, Guard, UaSim};

const SECURE: [&str; 2] = ["--security", "Basic256Sha256,SignAndEncrypt"];
const NODE: &str = "ns=2;s=Line1.Speed";

/// Run plcprobe with its PKI folder `pki`, an optional password and a 5 s timeout (the Python
/// peer's RSA work for a secured session can take over the default 1 s on a loaded machine).
fn ua(pki: &Path, password: Option<&str>, args: &[&str]) -> util::Run {
    let mut c = bin();
    c.env("PLCPROBE_PKI", pki).env_remove("PLCPROBE_PASSWORD");
    if let Some(p) = password {
        c.env("PLCPROBE_PASSWORD", p);
    }
    c.args(["--timeout", "5s"]);
    util::run_cmd(c, args)
}

/// Lines from `rx` until one satisfies `want` (returned), the writer ends or `limit` passes
/// (None). Every line seen is appended to `seen`.
fn wait_line(
    rx: &mpsc::Receiver<String>,
    limit: Duration,
    seen: &mut Vec<String>,
    want: impl Fn(&str) -> bool,
) -> Option<String> {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).ok()?;
        seen.push(line.clone());
        if want(&line) {
            return Some(line);
        }
    }
}

/// The asyncua peer with `--trusted-clients`: it accepts only the client certificates in
/// `pki/trusted/` and writes those it refuses to `pki/rejected/`.
struct TrustingPeer {
    _peer: util::Peer,
    url: String,
    /// The peer's PKI folder (`server.der`, `trusted/`, `rejected/`).
    pki: PathBuf,
}

impl TrustingPeer {
    fn start(py: &Path, dir: &Path) -> TrustingPeer {
        let peer = util::Peer::start_with(py, dir, "valid", &["--trusted-clients"]);
        TrustingPeer {
            url: peer.url.clone(),
            pki: dir.join("peer-pki"),
            _peer: peer,
        }
    }

    /// The certificates it refused so far (DER files in `rejected/`).
    fn rejected(&self) -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = std::fs::read_dir(self.pki.join("rejected"))
            .expect("the peer made rejected/")
            .map(|e| std::fs::read(e.unwrap().path()).unwrap())
            .collect();
        v.sort();
        v
    }
}

#[test]
fn a_server_that_does_not_trust_plcprobe_gets_its_own_message() {
    let Some(py) = python() else { return };
    let d = tempfile::tempdir().unwrap();
    let pki = d.path().join("pki");
    let peer = TrustingPeer::start(&py, d.path());
    // plcprobe trusts the server ahead of time, so the only problem left is the other way round.
    let r = ua(
        &pki,
        None,
        &["trust", peer.pki.join("server.der").to_str().unwrap()],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let secure_read = |pki: &Path, password: Option<&str>, extra: &[&str]| {
        ua(
            pki,
            password,
            &[
                &["read", &peer.url, NODE, "--format", "json"][..],
                &SECURE,
                extra,
            ]
            .concat(),
        )
    };

    // The peer refuses plcprobe's certificate: CRITICAL, and the message says so and names
    // plcprobe's certificate file (what the server's administrator has to trust).
    let r = secure_read(&pki, None, &[]);
    let own = pki.join("own").join("cert.der");
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    for needle in [
        "does not trust plcprobe's certificate",
        "BadCertificateUntrusted",
        own.to_str().unwrap(),
    ] {
        assert!(r.stderr.contains(needle), "{needle}: {}", r.stderr);
    }
    // … not the messages of other failures.
    for other in [
        "plcprobe trust",
        "wrong user name or password",
        "cannot connect",
        "no answer within",
    ] {
        assert!(!r.stderr.contains(other), "{other}: {}", r.stderr);
    }
    assert_eq!(r.stdout, "", "no rows when no session opened");
    // It really was plcprobe's own certificate that the server refused.
    let own_der = std::fs::read(&own).expect("plcprobe made its certificate");
    assert_eq!(peer.rejected(), vec![own_der.clone()]);

    // The other direction, for contrast: plcprobe not trusting the server is exit 3 with the
    // command to trust it (a fresh PKI folder, before any session).
    let fresh = d.path().join("fresh-pki");
    let r = secure_read(&fresh, None, &[]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("plcprobe trust"), "{}", r.stderr);
    assert!(
        !r.stderr.contains("does not trust plcprobe's certificate"),
        "{}",
        r.stderr
    );

    // The server's administrator trusts plcprobe's certificate: the same read succeeds.
    std::fs::copy(&own, peer.pki.join("trusted").join("plcprobe.der")).unwrap();
    let r = secure_read(&pki, None, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rows = r.json();
    assert_eq!(rows[0]["status"], "Good", "{}", r.stdout);
    assert!(rows[0]["value"].is_f64(), "{}", r.stdout);

    // Now trusted, a wrong password is a different failure with a different message.
    let r = secure_read(&pki, Some("secret43"), &["--user", "tech"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("refused the user identity"),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("does not trust plcprobe's certificate"),
        "{}",
        r.stderr
    );
    // Nothing more was refused on the way.
    assert_eq!(peer.rejected(), vec![own_der]);
}

#[test]
fn watch_exits_2_when_no_data_came_back() {
    let d = tempfile::tempdir().unwrap();
    let sim = UaSim::start("127.0.0.1:0", &[]);
    let mut watch = bin()
        .env("PLCPROBE_PKI", d.path().join("pki"))
        .args([
            "watch",
            &sim.url,
            "ns=2;s=Line1.press.pressure",
            "--interval",
            "200ms",
            "--duration",
            "120s",
            "--format",
            "jsonl",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn watch");
    let out = lines_of(watch.stdout.take().expect("stdout"));
    let err = lines_of(watch.stderr.take().expect("stderr"));
    let mut watch = Guard(watch);
    let mut seen = Vec::new();
    let row = |l: &str| -> serde_json::Value {
        serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))
    };
    // Data first (the subscription works), then the server goes away for good.
    wait_line(&out, Duration::from_secs(60), &mut seen, |l| {
        row(l)["value"].is_number()
    })
    .unwrap_or_else(|| panic!("no data change from the simulator: {seen:?}"));
    drop(sim);
    wait_line(&out, Duration::from_secs(60), &mut seen, |l| {
        row(l)["event"]
            .as_str()
            .unwrap_or("")
            .contains("connection lost")
    })
    .unwrap_or_else(|| panic!("watch did not report the loss: {seen:?}"));
    // Ended as a technician ends it (Ctrl-C; --duration ends it the same way) with the server
    // still gone.
    let sent = Command::new("kill")
        .args(["-INT", &watch.0.id().to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(sent, "kill -INT watch");
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = watch.0.try_wait().expect("wait for watch") {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "watch did not end on SIGINT: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    seen.extend(out.iter());
    let stderr: Vec<String> = err.iter().collect();
    assert!(
        !seen.iter().any(|l| l.contains("data again")),
        "no data can have come back: {seen:?}"
    );
    assert_eq!(status.code(), Some(2), "{seen:?}\n{stderr:?}");
    assert!(
        stderr
            .iter()
            .any(|l| l.contains("the server was lost and no data had come back")),
        "{stderr:?}"
    );
}
