//! Crash consistency of every file plcprobe writes atomically (`src/fsutil.rs`): snapshots and
//! baselines, `check`/`poll`/`decode` results, Prometheus files, reports, the profile `scan
//! --emit-profile` writes, the demo's capture, a capture excerpt, a bundle and a trusted
//! certificate.
//!
//! The kill lands deterministically, inside the write: strace's fault injection delivers SIGKILL
//! to plcprobe as it enters the `rename` of the file under test (the temporary file is whole and
//! flushed, the destination not yet replaced), or as it enters the `fsync` of the folder right
//! after that rename. A first, traced run without injection tells which of the process's renames
//! is the file's, so a command that writes several files is killed at the right one.
//!
//! For each file: killed before its rename, the previous file is byte-identical and the
//! temporary file left behind holds the whole new file; killed after the rename, the new file is
//! whole; the next run writes the file again and removes the dead run's temporary file.

use std::{
    os::unix::process::ExitStatusExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use serde_json::Value;

use crate::util::{bin, profile, run_cmd, tool, Sim, UaSim};

/// The syscalls glibc uses for `rename(2)`.
const RENAMES: &str = "rename,renameat,renameat2";

/// What the whole file looks like, to tell a whole temporary file from a partial one.
#[derive(Clone, Copy)]
enum Whole {
    Json,
    Toml,
    /// UTF-8 text whose last line ends with this (and a newline).
    Text(&'static str),
    Pcapng,
    /// An X.509 certificate (DER: a SEQUENCE with a two-byte length).
    Der,
    /// A zip archive: a local file header first, the end of central directory record last (no
    /// archive comment).
    Zip,
}

impl Whole {
    fn holds(self, bytes: &[u8]) -> bool {
        match self {
            Whole::Json => serde_json::from_slice::<Value>(bytes).is_ok(),
            Whole::Toml => std::str::from_utf8(bytes)
                .is_ok_and(|t| !t.is_empty() && t.parse::<toml::Table>().is_ok()),
            Whole::Text(end) => std::str::from_utf8(bytes)
                .is_ok_and(|t| t.ends_with('\n') && t.trim_end().ends_with(end)),
            Whole::Der => {
                bytes.len() > 4
                    && bytes[..2] == [0x30, 0x82]
                    && usize::from(u16::from_be_bytes([bytes[2], bytes[3]])) + 4 == bytes.len()
            }
            Whole::Pcapng => bytes.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]) && bytes.len() > 100,
            Whole::Zip => {
                bytes.starts_with(b"PK\x03\x04")
                    && bytes.len() > 22
                    && bytes[bytes.len() - 22..].starts_with(b"PK\x05\x06")
            }
        }
    }
}

/// Environment variables for plcprobe beyond the tests' own (e.g. `PLCPROBE_PKI`).
type Env<'a> = &'a [(&'a str, &'a Path)];

/// The binary under test with `env`.
fn plcprobe(env: Env) -> Command {
    let mut b = bin();
    for (k, v) in env {
        b.env(k, v);
    }
    b
}

/// plcprobe under strace with `extra` strace arguments.
fn traced(strace: &Path, extra: &[&str], args: &[String], env: Env) -> Command {
    let mut c = Command::new(strace);
    c.args(["-f", "-qq"]).args(extra).arg("--");
    let b = plcprobe(env);
    c.arg(b.get_program());
    for (k, v) in b.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

/// Temporary files of `out` left in its folder (`.NAME.PID.XXXXXX.tmp`).
fn temporaries(out: &Path) -> Vec<PathBuf> {
    let name = out.file_name().unwrap().to_str().unwrap();
    let prefix = format!(".{name}.");
    let mut v: Vec<PathBuf> = std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let f = p.file_name().unwrap().to_str().unwrap();
            f.starts_with(&prefix) && p.extension().is_some_and(|e| e == "tmp")
        })
        .collect();
    v.sort();
    v
}

/// Where a run puts `out` in place, counted as strace counts for `when=`: among the renames of
/// the writing thread, and among its fsyncs, the first one after that rename (the folder's).
struct WritePoint {
    rename: usize,
    fsync_after: usize,
}

/// Run `args` once under strace (no injection) to find where `out` is written. Also leaves the
/// "previous" `out` of a good run.
fn write_point(strace: &Path, args: &[String], out: &Path, ok: &[i32], env: Env) -> WritePoint {
    let log = out.with_file_name("strace.log");
    let r = traced(
        strace,
        &[
            "-o",
            log.to_str().unwrap(),
            "-e",
            &format!("trace={RENAMES},fsync"),
        ],
        args,
        env,
    )
    .output()
    .unwrap();
    let code = r.status.code().unwrap_or(-1);
    assert!(
        ok.contains(&code),
        "{args:?} exited {code}: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    let text = std::fs::read_to_string(&log).unwrap();
    std::fs::remove_file(&log).unwrap();
    let calls: Vec<(&str, &str)> = text
        .lines()
        .filter(|l| l.contains("rename") || l.contains("fsync("))
        .map(|l| l.split_once(' ').unwrap())
        .collect();
    let dest = format!("\"{}\")", out.display());
    let (tid, _) = *calls
        .iter()
        .find(|(_, c)| c.contains("rename") && c.contains(&dest))
        .unwrap_or_else(|| panic!("no rename to {dest} in:\n{text}"));
    // strace counts `when=` per thread and per syscall: count on the writing thread only.
    let mine: Vec<&str> = calls.iter().filter(|c| c.0 == tid).map(|c| c.1).collect();
    let at = mine
        .iter()
        .position(|c| c.contains("rename") && c.contains(&dest))
        .unwrap();
    let rename = 1 + mine[..at].iter().filter(|c| c.contains("rename")).count();
    let fsync_after = 1 + mine[..at].iter().filter(|c| c.contains("fsync(")).count();
    assert!(
        mine[at + 1..].iter().any(|c| c.contains("fsync(")),
        "the folder is flushed after the rename:\n{text}"
    );
    // Other threads must not rename (their renames would be counted apart, and a kill could land
    // on the wrong one only if `when` were global; keep the model simple and checked).
    assert!(
        calls.iter().all(|c| c.0 == tid || !c.1.contains("rename")),
        "all renames by one thread:\n{text}"
    );
    WritePoint {
        rename,
        fsync_after,
    }
}

/// Every crash case for the file `out` that `args` writes (exit codes `ok` for a good run).
fn killed_inside_the_write_of(args: &[&str], out: &Path, ok: &[i32], whole: Whole) {
    killed_inside_the_write_with(&[], args, out, ok, whole);
}

/// [`killed_inside_the_write_of`] with environment variables for plcprobe.
fn killed_inside_the_write_with(env: Env, args: &[&str], out: &Path, ok: &[i32], whole: Whole) {
    let Some(strace) = tool("strace") else { return };
    let args: Vec<String> = args.iter().map(ToString::to_string).collect();
    let at = write_point(&strace, &args, out, ok, env);
    let before = std::fs::read(out).unwrap();
    assert!(
        whole.holds(&before),
        "{} whole after a good run",
        out.display()
    );
    assert!(
        temporaries(out).is_empty(),
        "a good run leaves no temporary file"
    );

    // Killed as it enters the rename: the previous file stays, the new one waits whole beside it.
    let r = traced(
        &strace,
        &[
            "-o",
            "/dev/null",
            "-e",
            &format!("trace={RENAMES}"),
            "-e",
            &format!("inject={RENAMES}:signal=KILL:when={}", at.rename),
        ],
        &args,
        env,
    )
    .output()
    .unwrap();
    assert_eq!(
        r.status.signal().or(r.status.code().map(|c| c - 128)),
        Some(9),
        "{}: killed by SIGKILL at its rename; {}",
        out.display(),
        String::from_utf8_lossy(&r.stderr)
    );
    assert_eq!(
        std::fs::read(out).unwrap(),
        before,
        "{}: the previous file byte-identical",
        out.display()
    );
    let left = temporaries(out);
    assert_eq!(left.len(), 1, "one temporary file left: {left:?}");
    let tmp = std::fs::read(&left[0]).unwrap();
    assert!(
        whole.holds(&tmp),
        "{}: the kill landed after the new file was written whole ({} bytes)",
        left[0].display(),
        tmp.len()
    );

    // Killed after the rename, as it flushes the folder: the new file is in place and whole.
    let r = traced(
        &strace,
        &[
            "-o",
            "/dev/null",
            "-e",
            "trace=fsync",
            "-e",
            &format!("inject=fsync:signal=KILL:when={}", at.fsync_after),
        ],
        &args,
        env,
    )
    .output()
    .unwrap();
    assert_eq!(
        r.status.signal().or(r.status.code().map(|c| c - 128)),
        Some(9),
        "{}: killed by SIGKILL after its rename",
        out.display()
    );
    let after = std::fs::read(out).unwrap();
    assert!(whole.holds(&after), "{}: the new file whole", out.display());

    // The next run writes the file and removes the dead run's temporary file.
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = run_cmd(plcprobe(env), &args);
    assert!(ok.contains(&r.code), "{args:?}: {}", r.stderr);
    assert!(whole.holds(&std::fs::read(out).unwrap()));
    assert_eq!(
        temporaries(out),
        Vec::<PathBuf>::new(),
        "the stale temporary file removed by the next write"
    );
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn snapshot_killed_reading_or_writing_keeps_the_previous_baseline() {
    let sim = Sim::start("demo-line.toml", &[]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("base.json");
    let prof = profile("demo-line.toml");
    let target = sim.target(1);
    let args = ["snapshot", &target, "--profile", &prof, "-o", s(&out)];
    killed_inside_the_write_of(&args, &out, &[0], Whole::Json);

    // Killed while reading the device (at its connect): nothing written at all.
    let Some(strace) = tool("strace") else { return };
    let before = std::fs::read(&out).unwrap();
    let args: Vec<String> = args.iter().map(ToString::to_string).collect();
    let r = traced(
        &strace,
        &[
            "-o",
            "/dev/null",
            "-e",
            "trace=connect",
            "-e",
            "inject=connect:signal=KILL",
        ],
        &args,
        &[],
    )
    .output()
    .unwrap();
    assert_eq!(
        r.status.signal().or(r.status.code().map(|c| c - 128)),
        Some(9)
    );
    assert_eq!(std::fs::read(&out).unwrap(), before);
    assert!(temporaries(&out).is_empty());
}

#[test]
fn check_results_and_prometheus_file() {
    let sim = Sim::start("demo-line.toml", &[]);
    let dir = tempfile::tempdir().unwrap();
    let plan = crate::health::plan(
        dir.path(),
        "rate = 1000.0",
        &[("press", &sim.target(1), None)],
    );
    let (res, prom) = (dir.path().join("r.json"), dir.path().join("p.prom"));
    let args = [
        "check",
        s(&plan),
        "-q",
        "--results",
        s(&res),
        "--prometheus",
        s(&prom),
    ];
    killed_inside_the_write_of(&args, &res, &[0], Whole::Json);
    killed_inside_the_write_of(&args, &prom, &[0], Whole::Text(""));
}

#[test]
fn poll_results_and_prometheus_file() {
    let sim = Sim::start("demo-line.toml", &[]);
    let dir = tempfile::tempdir().unwrap();
    let (res, prom) = (dir.path().join("poll.json"), dir.path().join("poll.prom"));
    let prof = profile("demo-line.toml");
    let target = sim.target(1);
    let args = [
        "poll",
        "--profile",
        &prof,
        &target,
        "--interval",
        "0",
        "--count",
        "3",
        "-q",
        "--results",
        s(&res),
        "--prometheus",
        s(&prom),
    ];
    killed_inside_the_write_of(&args, &res, &[0], Whole::Json);
    killed_inside_the_write_of(&args, &prom, &[0], Whole::Text(""));
}

#[test]
fn decode_results_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let cap = crate::util::root().join("fixtures/pcap/modbus/sim-poll-exceptions-write.pcapng");
    let res = dir.path().join("d.json");
    killed_inside_the_write_of(
        &["decode", s(&cap), "--results", s(&res)],
        &res,
        &[0, 1],
        Whole::Json,
    );
    let html = dir.path().join("d.html");
    killed_inside_the_write_of(
        &["report", s(&res), "-o", s(&html)],
        &html,
        &[0, 1],
        Whole::Text("</html>"),
    );
    let md = dir.path().join("d.md");
    killed_inside_the_write_of(
        &["report", s(&res), "-o", s(&md)],
        &md,
        &[0, 1],
        Whole::Text(""),
    );
    // A capture excerpt (`decode -w`) and an evidence bundle.
    let excerpt = dir.path().join("x.pcapng");
    killed_inside_the_write_of(
        &[
            "decode",
            s(&cap),
            "--from",
            "00:51:40",
            "-w",
            s(&excerpt),
            "-q",
        ],
        &excerpt,
        &[0],
        Whole::Pcapng,
    );
    let zip = dir.path().join("b.zip");
    killed_inside_the_write_of(
        &["bundle", "-o", s(&zip), s(&res), s(&excerpt)],
        &zip,
        &[0],
        Whole::Zip,
    );
}

#[test]
fn scan_emitted_profile() {
    let sim = Sim::start("demo-line.toml", &[]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("found.toml");
    let target = sim.target(1);
    let args = [
        "scan",
        &target,
        "--registers",
        "--rate",
        "1000",
        "--emit-profile",
        s(&out),
        "-q",
    ];
    killed_inside_the_write_of(&args, &out, &[0], Whole::Toml);
}

#[test]
fn demo_capture_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["demo", "--out", s(dir.path())];
    killed_inside_the_write_of(
        &args,
        &dir.path().join("demo-capture.pcapng"),
        &[0],
        Whole::Pcapng,
    );
    killed_inside_the_write_of(
        &args,
        &dir.path().join("demo-report.html"),
        &[0],
        Whole::Text("</html>"),
    );
}

#[test]
fn trusted_certificate() {
    // `trust URL` fetches the simulator's certificate and writes it to PKI/trusted/ (again on
    // each run: the same bytes, so only the temporary file and its removal tell runs apart).
    let sim = UaSim::start("127.0.0.1:0", &[]);
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let env: Env = &[("PLCPROBE_PKI", &pki)];
    let args = ["trust", &sim.url];
    let r = run_cmd(plcprobe(env), &args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let trusted: Vec<PathBuf> = std::fs::read_dir(pki.join("trusted"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(trusted.len(), 1, "{trusted:?}");
    killed_inside_the_write_with(env, &args, &trusted[0], &[0], Whole::Der);
}
