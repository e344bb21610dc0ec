//! The trend math alone, in memory: 30 days of 5-minute runs (8,640) of 100 devices × 20 points
//! (17 million point samples; 2,300 series with each device's latency p50, p95 and error rate),
//! with rising, falling, drifting and flat series in noise. Harness-free (`cargo bench --bench
//! trend [DEVICES]`); prints the median of 5 runs. Loading the store is measured apart
//! (scripts/bench/trend.sh); figures are in docs/PERFORMANCE.md.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use plcprobe::history::{
    model::{DeviceLimits, DeviceSeries, History, PointSeries, Run, STATUS_OK},
    trend::{analyse, TrendConfig},
};

const RUNS: usize = 8640;
const FIVE_MIN: i64 = 300_000;

/// Deterministic noise in −1 … 1.
fn noise(i: u64) -> f64 {
    let x = (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let x = (x ^ (x >> 31)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    ((x >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
}

fn history(devices: usize, points: usize) -> History {
    let t0 = 1_790_000_000_000;
    let runs = (0..RUNS)
        .map(|i| Run {
            id: i as i64 + 1,
            started_ms: t0 + i as i64 * FIVE_MIN,
            plan: "bench.toml".into(),
            tool_version: "bench".into(),
            verdict: "OK".into(),
            host: "bench".into(),
        })
        .collect();
    let day = |i: usize| i as f64 * FIVE_MIN as f64 / 86_400_000.0;
    let devices = (0..devices)
        .map(|d| {
            let seed = (d as u64) << 40;
            DeviceSeries {
                name: format!("dev{d:03}"),
                target: format!("modbus://127.0.0.1:{}/1", 20000 + d),
                runs: (0..RUNS as u32).collect(),
                status: vec!["OK".into(); RUNS],
                reachable: vec![true; RUNS],
                sent: vec![120; RUNS],
                failed: (0..RUNS)
                    .map(|i| u32::from(noise(seed + 7 * i as u64).abs() < 0.01 + 0.001 * day(i)))
                    .collect(),
                errors: vec![BTreeMap::new(); RUNS],
                latency_p50_ms: (0..RUNS)
                    .map(|i| 2.0 + 0.05 * day(i) * (d % 3) as f64 + 0.3 * noise(seed + i as u64))
                    .collect(),
                latency_p95_ms: (0..RUNS)
                    .map(|i| 4.0 + 0.5 * noise(seed + 3 * i as u64))
                    .collect(),
                latency_max_ms: vec![f64::NAN; RUNS],
                identities: vec![],
                limits: DeviceLimits {
                    latency_warn_ms: 50.0,
                    latency_crit_ms: 200.0,
                    error_rate_warn: 0.0,
                    error_rate_crit: 0.2,
                },
                points: (0..points)
                    .map(|p| {
                        let slope = [0.0, 0.5, -0.2, 0.01][p % 4];
                        let ps = seed + ((p as u64 + 1) << 20);
                        PointSeries {
                            name: format!("p{p:02}"),
                            address: format!("hr:{p}"),
                            unit: "bar".into(),
                            values: (0..RUNS)
                                .map(|i| {
                                    // u16 registers scaled by 0.1: many ties, as on a real line.
                                    let v = 100.0 + slope * day(i) + 2.0 * noise(ps + i as u64);
                                    (v * 10.0).round() / 10.0
                                })
                                .collect(),
                            status: vec![STATUS_OK; RUNS],
                            status_texts: Vec::new(),
                            range: Some([0.0, 250.0]),
                            baseline: Some(100.0),
                            tolerance: Some(5.0),
                        }
                    })
                    .collect(),
            }
        })
        .collect();
    History { runs, devices }
}

fn main() {
    let devices: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100);
    let h = history(devices, 20);
    let samples: usize = h
        .devices
        .iter()
        .map(|d| d.points.len() * d.runs.len())
        .sum();
    let cfg = TrendConfig {
        since_ms: h.runs[0].started_ms,
        horizon_ms: 14 * 86_400_000,
    };
    let mut times: Vec<Duration> = (0..5)
        .map(|_| {
            let t = Instant::now();
            let r = analyse(&h, &cfg);
            let e = t.elapsed();
            assert_eq!(r.devices.len(), devices);
            e
        })
        .collect();
    times.sort();
    let r = analyse(&h, &cfg);
    let c = r.counts();
    println!(
        "trend math: {devices} devices x 20 points x {RUNS} runs ({samples} point samples, {} series): median {:.3} s of 5 (min {:.3} s); {} threads; {} trends, {} without",
        c.series,
        times[2].as_secs_f64(),
        times[0].as_secs_f64(),
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        c.trends,
        c.no_trend
    );
}
