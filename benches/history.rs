//! The history store at the scale: 30 days of 5-minute runs (8,640) of 100 devices × 20
//! points = 17,280,000 point samples. Builds the store in a temporary folder through
//! `Store::record_runs` (the code `check --history` and `history import` use), then prints the
//! bytes on disk per point sample and the median of 3 loads of the whole window.
//!
//! `cargo bench --bench history --profile fast [-- RUNS DEVICES POINTS]`. With
//! `HISTORY_BENCH_NORMALIZED=1` it also builds the layout that was measured against the chosen
//! one — one row per point sample (`WITHOUT ROWID`, key (point, run)) — and prints its size and
//! the time to read it back. Figures are recorded in docs/PERFORMANCE.md ("History store").

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use plcprobe::history::{
    model::DeviceLimits,
    record::{DeviceRecord, PointRecord, RunRecord},
    store::Store,
};

fn arg(i: usize, default: usize) -> usize {
    std::env::args()
        .nth(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

/// A small deterministic generator (xorshift), so every run builds the same store.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn run_at(k: usize, devices: usize, points: usize, rng: &mut Rng) -> RunRecord {
    let start = 1_790_000_000_000i64 + k as i64 * 300_000;
    RunRecord {
        started_ms: start,
        started_at: format!("run {k}"),
        plan: "plans/bench.toml".into(),
        tool_version: "bench".into(),
        verdict: "OK".into(),
        host: "bench".into(),
        command: "plcprobe check plans/bench.toml --history bench.db".into(),
        duration_ms: 1234.5,
        devices: (0..devices)
            .map(|d| DeviceRecord {
                name: format!("device-{d:03}"),
                target: format!("modbus://10.0.{}.{}/1", d / 250, d % 250),
                status: "OK".into(),
                reachable: true,
                identity: Some(BTreeMap::from([
                    ("vendor".to_string(), "ACME".to_string()),
                    ("revision".to_string(), "1.4.2".to_string()),
                ])),
                sent: 120,
                received: 120,
                errors: BTreeMap::new(),
                error_rate: 0.0,
                latency_p50_ms: 3.0 + rng.next(),
                latency_p95_ms: 5.0 + rng.next(),
                latency_max_ms: 9.0 + rng.next(),
                limits: DeviceLimits {
                    latency_warn_ms: 50.0,
                    latency_crit_ms: 200.0,
                    error_rate_warn: 0.0,
                    error_rate_crit: 0.2,
                },
                points: (0..points)
                    .map(|p| PointRecord {
                        name: format!("point.{p:02}"),
                        address: format!("hr:{}", p * 2),
                        unit: "bar".into(),
                        value: 100.0 + 10.0 * rng.next() + k as f64 * 0.001,
                        status: "ok".into(),
                        range: Some([0.0, 200.0]),
                        baseline: Some(100.0),
                        tolerance: Some(5.0),
                    })
                    .collect(),
            })
            .collect(),
    }
}

fn dir_size(path: &std::path::Path) -> u64 {
    ["", "-wal", "-shm"]
        .iter()
        .filter_map(|s| std::fs::metadata(format!("{}{s}", path.display())).ok())
        .map(|m| m.len())
        .sum()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let runs = arg(1, 8640);
    let devices = arg(2, 100);
    let points = arg(3, 20);
    let samples = runs * devices * points;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let dir = tempfile::tempdir()?;
    // HISTORY_BENCH_DIR=FOLDER keeps the store there and reuses it when it exists.
    let keep = std::env::var_os("HISTORY_BENCH_DIR").map(std::path::PathBuf::from);
    let path = keep
        .as_deref()
        .unwrap_or(dir.path())
        .join(format!("bench-{runs}x{devices}x{points}.db"));
    let reuse = keep.is_some() && path.exists();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let t = Instant::now();
    if !reuse {
        rt.block_on(async {
            let mut store = Store::open(&path.display().to_string()).await?;
            let mut batch = Vec::new();
            for k in 0..runs {
                batch.push(run_at(k, devices, points, &mut rng));
                if batch.len() == 100 || k + 1 == runs {
                    store.record_runs(&batch).await?;
                    batch.clear();
                }
            }
            anyhow::Ok(())
        })?;
    }
    let build = t.elapsed();
    // Fold the WAL into the file, as the last writer does when it closes.
    let c = rusqlite::Connection::open(&path)?;
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    drop(c);
    let bytes = dir_size(&path);
    println!(
        "store: {runs} runs x {devices} devices x {points} points = {samples} point samples, \
         built in {:.1} s",
        build.as_secs_f64()
    );
    println!(
        "store: {bytes} bytes on disk = {:.1} bytes per point sample",
        bytes as f64 / samples as f64
    );
    let mut times = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let h = rt.block_on(async {
            let store = Store::open_existing(&path.display().to_string()).await?;
            store.load(None, None).await
        })?;
        times.push(t.elapsed());
        let n: usize = h
            .devices
            .iter()
            .map(|d| d.points.iter().map(|p| p.values.len()).sum::<usize>())
            .sum();
        assert_eq!(n, samples, "every sample loaded");
    }
    println!(
        "load: whole window, median of 3: {:.3} s",
        median(times).as_secs_f64()
    );
    let t = Instant::now();
    let h = rt.block_on(async {
        let store = Store::open_existing(&path.display().to_string()).await?;
        store.load(None, Some("device-042")).await
    })?;
    println!(
        "load: one device ({} runs): {:.3} s",
        h.devices.first().map_or(0, |d| d.runs.len()),
        t.elapsed().as_secs_f64()
    );

    if std::env::var_os("HISTORY_BENCH_NORMALIZED").is_some() {
        normalized(dir.path(), runs, devices, points)?;
    }
    Ok(())
}

/// The alternative layout: one row per point sample.
fn normalized(
    dir: &std::path::Path,
    runs: usize,
    devices: usize,
    points: usize,
) -> anyhow::Result<()> {
    let path = dir.join("normalized.db");
    let mut c = rusqlite::Connection::open(&path)?;
    c.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
         CREATE TABLE samples (point_id INTEGER NOT NULL, run_id INTEGER NOT NULL,
                               value REAL, status TEXT,
                               PRIMARY KEY (point_id, run_id)) WITHOUT ROWID;",
    )?;
    let mut rng = Rng(1);
    let t = Instant::now();
    for k in 0..runs {
        let tx = c.transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO samples (point_id, run_id, value, status) VALUES (?1, ?2, ?3, NULL)",
            )?;
            for p in 0..devices * points {
                st.execute(rusqlite::params![
                    p as i64,
                    k as i64,
                    100.0 + 10.0 * rng.next()
                ])?;
            }
        }
        tx.commit()?;
    }
    let build = t.elapsed();
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    let samples = runs * devices * points;
    let bytes = dir_size(&path);
    println!(
        "normalized: built in {:.1} s, {bytes} bytes = {:.1} bytes per point sample",
        build.as_secs_f64(),
        bytes as f64 / samples as f64
    );
    let t = Instant::now();
    let mut per_point: Vec<Vec<f64>> = vec![Vec::with_capacity(runs); devices * points];
    let mut st = c.prepare("SELECT point_id, value, status FROM samples")?;
    let mut rows = st.query([])?;
    let mut statuses = 0usize;
    while let Some(r) = rows.next()? {
        let p: i64 = r.get(0)?;
        let v: Option<f64> = r.get(1)?;
        let s: Option<String> = r.get(2)?;
        statuses += usize::from(s.is_some());
        per_point[p as usize].push(v.unwrap_or(f64::NAN));
    }
    println!(
        "normalized: read every sample into per-point arrays: {:.3} s ({statuses} statuses)",
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
