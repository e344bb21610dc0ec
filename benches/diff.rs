//! Diff of two 100,000-point snapshots: the comparison itself (in memory), and loading the two
//! files it reads. Harness-free (`cargo bench --bench diff`); prints medians of 11 runs.
//! Figures are recorded in docs/PERFORMANCE.md.

use std::time::{Duration, Instant};

use plcprobe::{
    profile::{Profile, DEMO_PROFILE},
    snapshot::{diff::diff, Snapshot, FORMAT},
};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let profile = Profile::parse("demo", DEMO_PROFILE).expect("demo profile");
    let specs = Snapshot::specs_from_profile(&profile);
    let mut points = Vec::with_capacity(n);
    for i in 0..n {
        let mut p = specs[i % specs.len()].clone();
        p.name = format!("{}.{i}", p.name).into();
        p.value = serde_json::json!(i as f64 * 0.5);
        p.raw = vec![1, 2];
        p.status = "ok".into();
        points.push(p);
    }
    let base = Snapshot {
        format: FORMAT.into(),
        taken_at: "2026-11-23T00:00:00Z".into(),
        tool_version: "bench".into(),
        target: "modbus://127.0.0.1:502/1".into(),
        identity: None,
        identity_status: "not available".into(),
        profile: plcprobe::snapshot::ProfileRef {
            name: "demo".into(),
            sha256: "0".repeat(64),
            path: String::new(),
        },
        points,
    };
    let mut cur = base.clone();
    for (i, p) in cur.points.iter_mut().enumerate() {
        if i % 100 == 0 {
            p.value = serde_json::json!(1e6 + i as f64); // 1% moved beyond any tolerance
        }
    }
    let runs: Vec<Duration> = (0..11)
        .map(|_| {
            let t = Instant::now();
            let d = diff(&base, &cur);
            let e = t.elapsed();
            assert!(d.counts.get("changed").copied().unwrap_or(0) >= n / 100 / 2);
            e
        })
        .collect();
    println!(
        "diff of two {n}-point snapshots in memory: median {:.1} ms",
        median(runs).as_secs_f64() * 1e3
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let (bp, cp) = (dir.path().join("base.json"), dir.path().join("cur.json"));
    base.save(&bp).expect("save");
    cur.save(&cp).expect("save");
    let size = std::fs::metadata(&bp).expect("size").len();
    let runs: Vec<Duration> = (0..11)
        .map(|_| {
            let t = Instant::now();
            let (a, b) = std::thread::scope(|s| {
                let b = s.spawn(|| Snapshot::load(&cp).expect("load"));
                (Snapshot::load(&bp).expect("load"), b.join().expect("join"))
            });
            let e = t.elapsed();
            assert_eq!(a.points.len(), b.points.len());
            e
        })
        .collect();
    println!(
        "load of the two files ({:.1} MB each, two threads): median {:.1} ms",
        size as f64 / 1e6,
        median(runs).as_secs_f64() * 1e3
    );
}
