//! The fuzz targets' committed inputs, replayed as ordinary tests: every file of
//! `fuzz/seeds/<target>/` (a small minimised corpus per target) and `fuzz/regressions/<target>/`
//! (inputs that once crashed or hung a target) goes through the target's body, the very function
//! its libFuzzer binary calls: `fuzz/src/lib.rs` is included here as a module, not copied. So
//! every `cargo test` on stable re-runs what the fuzzer found, with no nightly and no libFuzzer.
//! A body's panic fails the test naming the input; so does an input still running after
//! libFuzzer's `-timeout=10` (docs/FUZZING.md), and a target with no seed at all (a corpus moved
//! or renamed is caught, not silently replayed as nothing).

#[path = "../fuzz/src/lib.rs"]
mod bodies;

use crate::util::root;
use std::{collections::BTreeSet, path::PathBuf, sync::mpsc, time::Duration};

/// One input may take this long, as `-timeout=10` lets it under libFuzzer.
const PER_INPUT: Duration = Duration::from_secs(10);

fn fuzz_dir() -> PathBuf {
    root().join("fuzz")
}

/// The files of `fuzz/<kind>/<target>/`, sorted; none when the directory does not exist.
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join(kind).join(target);
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

/// The names of the directories under `fuzz/<kind>/`.
fn subdirs(kind: &str) -> BTreeSet<String> {
    let dir = fuzz_dir().join(kind);
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

enum Progress {
    Start(usize),
    Done,
}

/// Runs every file through `body` on a worker thread, each under the per-input deadline, and
/// returns how many ran. A panic or an overrun fails the test naming the file.
fn run_all(target: &str, body: bodies::Body, files: &[PathBuf]) -> usize {
    let (tx, rx) = mpsc::channel();
    let list = files.to_vec();
    let worker = std::thread::Builder::new()
        .name(format!("replay-{target}"))
        .spawn(move || {
            for (i, f) in list.iter().enumerate() {
                let data = std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
                tx.send(Progress::Start(i)).unwrap();
                body(&data);
            }
            tx.send(Progress::Done).unwrap();
        })
        .unwrap();
    let mut current = None;
    let mut ran = 0;
    let name = |i: Option<usize>| {
        i.map_or("(before the first input)".into(), |i: usize| {
            files[i].display().to_string()
        })
    };
    loop {
        match rx.recv_timeout(PER_INPUT) {
            Ok(Progress::Start(i)) => {
                current = Some(i);
                ran += 1;
            }
            Ok(Progress::Done) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                "{target}: {} still running after {PER_INPUT:?} (a hang; libFuzzer's -timeout)",
                name(current)
            ),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let why = worker.join().err().map_or_else(String::new, |p| {
                    p.downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_string()))
                        .unwrap_or_default()
                });
                panic!("{target}: {} panicked: {why}", name(current));
            }
        }
    }
    worker.join().unwrap();
    ran
}

/// Replays the target's seeds and regression inputs; at least one seed must exist.
fn replay(target: &str, body: bodies::Body) {
    let seeds = inputs("seeds", target);
    let regressions = inputs("regressions", target);
    assert!(
        !seeds.is_empty(),
        "no seed input in fuzz/seeds/{target}/: the corpus was moved, renamed or not committed"
    );
    let all: Vec<PathBuf> = seeds.iter().chain(&regressions).cloned().collect();
    let ran = run_all(target, body, &all);
    assert_eq!(ran, all.len(), "{target}: inputs replayed");
    eprintln!(
        "{target}: replayed {} seeds and {} regression inputs",
        seeds.len(),
        regressions.len()
    );
}

/// One `#[test]` per target, named as the target, and the list of targets replayed.
macro_rules! replay_tests {
    ($($target:ident),* $(,)?) => {
        $(
            #[test]
            fn $target() {
                replay(stringify!($target), bodies::$target);
            }
        )*
        const REPLAYED: &[&str] = &[$(stringify!($target)),*];
    };
}

replay_tests!(
    capture_file,
    capture_excerpt,
    tcp_reassembly,
    modbus_pdu,
    opcua_message,
    rtu_framing,
    serial_framer,
    bpf_compile,
    dnp3_frame,
    bacnet_message,
    s7comm_pdu,
    enip_message
);

#[test]
fn every_target_has_a_binary_a_body_and_a_replay() {
    // The binaries cargo-fuzz builds are exactly the bodies' table, and each calls its own body.
    let names: BTreeSet<String> = bodies::TARGETS.iter().map(|(n, _)| (*n).into()).collect();
    let manifest: toml::Table = std::fs::read_to_string(fuzz_dir().join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let bins: BTreeSet<String> = manifest["bin"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap().into())
        .collect();
    assert_eq!(
        bins, names,
        "fuzz/Cargo.toml's [[bin]]s against bodies::TARGETS"
    );
    for n in &names {
        let src = std::fs::read_to_string(fuzz_dir().join("fuzz_targets").join(format!("{n}.rs")))
            .unwrap();
        assert!(
            src.contains(&format!("plcprobe_fuzz::{n}(data)")),
            "fuzz_targets/{n}.rs does not call its body plcprobe_fuzz::{n}"
        );
    }
    let replayed: BTreeSet<String> = REPLAYED.iter().map(|n| (*n).into()).collect();
    assert_eq!(replayed, names, "targets replayed by tests/fuzz_replay.rs");
    // Inputs kept under a name that is no target (a renamed target) would never be replayed.
    for kind in ["seeds", "regressions"] {
        let extra: Vec<_> = subdirs(kind).difference(&names).cloned().collect();
        assert!(
            extra.is_empty(),
            "fuzz/{kind}/ has inputs of no target: {extra:?}"
        );
    }
}

#[test]
fn a_failing_body_fails_the_replay_naming_the_input() {
    // The harness itself: a body that panics on one input must fail the replay and name it.
    let files = inputs("regressions", "tcp_reassembly");
    assert!(
        !files.is_empty(),
        "fuzz/regressions/tcp_reassembly/ is empty"
    );
    let expected = files[0].display().to_string();
    let r = std::panic::catch_unwind(|| run_all("probe", |_| panic!("boom"), &files));
    let msg = r.err().and_then(|p| p.downcast::<String>().ok()).unwrap();
    assert!(msg.contains(&expected) && msg.contains("boom"), "{msg}");
}
