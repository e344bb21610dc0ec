//! `poll`: repeated reads with live link statistics, ending (also on Ctrl-C) with ping-style
//! statistics: sent, received, errors by kind, loss, round-trip min/p50/p95/max.
//!
//! A poll never stops on a failure: after a timeout or a broken connection the link reconnects on
//! the next request (with backoff while the device refuses connections), so one bad minute shows
//! in the statistics instead of ending the run.

use std::{
    io::Write,
    time::{Duration, Instant},
};

use serde_json::{json, Value as Json};

use super::{Ctx, Outcome};
use crate::{
    cli::PollArgs,
    device::{stats::LinkStats, Device, ItemError, PointLabel},
    report::{Format, RowWriter},
    target::Target,
};

/// A poll to run: a device, opened, and how long and where its rows go.
pub struct PollJob<'a> {
    /// Device.
    pub target: &'a Target,
    /// The device, opened, with its points selected.
    pub device: Device,
    /// Time between polls.
    pub interval: Duration,
    /// Stop after this many polls.
    pub count: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Where rows go (None: no rows).
    pub rows: Option<RowWriter<'a>>,
    /// Progress bar for quiet runs.
    pub progress: indicatif::ProgressBar,
    /// Keep per-poll samples and values for a results file.
    pub record: Option<PollTrace>,
}

/// Per-poll samples and value trends for a results file, decimated to at most [`PollTrace::CAP`]
/// polls (every other one is dropped and the stride doubles), so a week-long poll stays a
/// reasonable file while still covering the whole run evenly.
#[derive(Debug, Default)]
pub struct PollTrace {
    stride: u64,
    /// (seq, ms since start, round trip ms, error)
    pub samples: Vec<(u64, f64, f64, Option<String>)>,
    /// Values per kept poll, one Vec per item.
    pub values: Vec<Vec<Json>>,
}

impl PollTrace {
    /// Most polls kept.
    pub const CAP: usize = 10_000;

    /// A recorder for `items` values per poll.
    pub fn new(items: usize) -> Self {
        Self {
            stride: 1,
            samples: Vec::new(),
            values: vec![Vec::new(); items],
        }
    }

    fn wants(&self, seq: u64) -> bool {
        (seq - 1).is_multiple_of(self.stride)
    }

    fn push(
        &mut self,
        seq: u64,
        t_ms: f64,
        rtt_ms: f64,
        error: Option<String>,
        values: impl Iterator<Item = Json>,
    ) {
        self.samples.push((seq, t_ms, rtt_ms, error));
        for (v, col) in values.zip(self.values.iter_mut()) {
            col.push(v);
        }
        if self.samples.len() >= Self::CAP {
            let keep = |i: usize| i.is_multiple_of(2);
            let mut i = 0;
            self.samples.retain(|_| {
                i += 1;
                keep(i - 1)
            });
            for col in &mut self.values {
                let mut j = 0;
                col.retain(|_| {
                    j += 1;
                    keep(j - 1)
                });
            }
            self.stride *= 2;
        }
    }
}

/// Columns of a poll row.
pub fn poll_columns(points: &[PointLabel]) -> Vec<String> {
    let mut c: Vec<String> = ["time", "seq", "rtt_ms", "status"]
        .iter()
        .map(ToString::to_string)
        .collect();
    c.extend(points.iter().map(|p| p.label.clone()));
    c
}

/// Run a poll to its end (count, duration or Ctrl-C). Returns the statistics and connects.
pub async fn run_poll(
    ctx: &Ctx,
    job: PollJob<'_>,
) -> anyhow::Result<(LinkStats, u64, Option<PollTrace>)> {
    let PollJob {
        target,
        device: mut source,
        interval,
        count,
        duration,
        mut rows,
        progress,
        mut record,
    } = job;
    let t_start = Instant::now();
    let mut stats = LinkStats::new();
    let deadline = duration.map(|d| Instant::now() + d);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut backoff = Duration::ZERO;
    let mut next = Instant::now();
    let mut seq: u64 = 0;
    loop {
        if count.is_some_and(|c| seq >= c) || deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        seq += 1;
        let t0 = Instant::now();
        tokio::select! {
            () = source.round() => {},
            _ = &mut ctrl_c => break,
        };
        // The round's time on the wire: its requests' round trips (over RTU without the
        // silence kept before each request), else the round's wall time.
        let rtt = match source.outcomes() {
            [] => t0.elapsed(),
            os => os.iter().map(|o| o.rtt).sum(),
        };
        let mut refused = false;
        for o in source.outcomes() {
            stats.add(o);
            refused |= o.connect_failed;
        }
        progress.inc(1);
        if ctx.verbose > 0 {
            // -v: the full message of every failure, not just its kind.
            for msg in source.failures() {
                progress.suspend(|| super::warn(format!("{target}: poll {seq}: {msg}")));
            }
        }
        // The values, decoded once, only when this round is recorded or printed.
        let recorded = record.as_ref().is_some_and(|r| r.wants(seq));
        let results = (recorded || rows.is_some()).then(|| source.results());
        if let (Some(rec), Some(results)) = (record.as_mut().filter(|_| recorded), &results) {
            let error = source.first_error();
            let values = results.iter().map(|r| {
                r.value
                    .as_ref()
                    .map_or(Json::Null, |v| serde_json::to_value(v).unwrap_or_default())
            });
            rec.push(
                seq,
                t_start.elapsed().as_secs_f64() * 1e3,
                rtt.as_secs_f64() * 1e3,
                error,
                values,
            );
        }
        if let (Some(stream), Some(results)) = (rows.as_mut(), &results) {
            let status = results
                .iter()
                .find_map(|r| r.value.as_ref().err())
                .map_or_else(|| "ok".to_string(), ItemError::status);
            let mut row = Vec::with_capacity(4 + results.len());
            row.push(json!(super::now_rfc3339()));
            row.push(json!(seq));
            row.push(json!((rtt.as_secs_f64() * 1e6).round() / 1e3));
            row.push(json!(status));
            row.extend(results.iter().map(|r| {
                r.value
                    .as_ref()
                    .map_or(Json::Null, |v| serde_json::to_value(v).unwrap_or_default())
            }));
            stream.json_row(&row)?;
        }
        // Back off while the device refuses connections; reset once it answers.
        backoff = if refused {
            (backoff * 2).clamp(Duration::from_millis(100), Duration::from_secs(5))
        } else {
            Duration::ZERO
        };
        next += interval;
        let now = Instant::now();
        if next < now {
            next = now; // a slow device: no burst to catch up
        }
        let mut wake = next.max(now + backoff);
        if let Some(d) = deadline {
            wake = wake.min(d);
        }
        if wake > now {
            tokio::select! {
                () = tokio::time::sleep_until(wake.into()) => {}
                _ = &mut ctrl_c => break,
            }
        }
    }
    progress.finish_and_clear();
    if let Some(r) = rows {
        r.finish()?;
    }
    let connects = source.connects();
    source.close().await;
    Ok((stats, connects, record))
}

/// Write the statistics: text on stdout for tables; JSON for machines (on stderr when stdout
/// carries the rows, so the row stream stays one schema).
pub fn print_stats(
    ctx: &Ctx,
    stats: &LinkStats,
    target: &Target,
    connects: u64,
    rows_on_stdout: bool,
) -> anyhow::Result<()> {
    if ctx.format == Format::Table {
        let mut out = std::io::stdout().lock();
        if rows_on_stdout {
            writeln!(out)?;
        }
        write!(out, "{}", stats.to_text(target, connects))?;
        out.flush()?;
    } else {
        let j = stats.to_json(target, connects);
        if rows_on_stdout {
            eprintln!("{j}");
        } else {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{j}")?;
        }
    }
    Ok(())
}

/// Run `poll`.
pub async fn run(ctx: &Ctx, args: &PollArgs) -> anyhow::Result<Outcome> {
    for p in [&args.results, &args.prometheus].into_iter().flatten() {
        crate::fsutil::check_output_dir(p)?;
    }
    let mut devices = super::points_devices(ctx, &args.points)?;
    if devices.len() != 1 {
        anyhow::bail!("poll watches one device; give one target (for many devices see `check`, or run one poll per device)");
    }
    let mut device = devices.remove(0);
    let target = device.target().clone();
    let target = &target;
    if let Err(u) = device.open(true).await? {
        super::warn(format!("{target}: {}", u.0));
        return Ok(Outcome::Critical);
    }
    let points = device.points();
    let rows = (!ctx.quiet).then(|| {
        let cols = poll_columns(&points);
        let widths: Vec<usize> = [24, 5, 7, 6]
            .into_iter()
            .chain(points.iter().map(|_| 8))
            .collect();
        RowWriter::streaming(Box::new(std::io::stdout()), ctx.format, &cols, &widths)
    });
    let progress = if ctx.quiet {
        ctx.progress_bar(args.count.unwrap_or(0), "polling")
    } else {
        indicatif::ProgressBar::hidden()
    };
    let job = PollJob {
        target,
        device,
        interval: args.interval,
        count: args.count,
        duration: args.duration,
        rows,
        progress,
        record: args.results.as_ref().map(|_| PollTrace::new(points.len())),
    };
    let (stats, connects, record) = run_poll(ctx, job).await?;
    print_stats(ctx, &stats, target, connects, !ctx.quiet)?;
    if let (Some(path), Some(rec)) = (&args.results, record) {
        let doc = results_doc(&points, target, &stats, connects, &rec);
        let mut bytes = serde_json::to_vec_pretty(&doc)?;
        bytes.push(b'\n');
        crate::fsutil::write_atomic(path, &bytes)?;
    }
    if let Some(path) = &args.prometheus {
        crate::fsutil::write_atomic(path, prometheus(&stats, target).as_bytes())?;
    }
    Ok(stats.outcome())
}

/// The results document of a poll (input of `report`).
pub fn results_doc(
    points: &[PointLabel],
    target: &Target,
    stats: &LinkStats,
    connects: u64,
    rec: &PollTrace,
) -> Json {
    let mut doc = crate::report::envelope("poll");
    doc.insert("target".into(), json!(target.url()));
    doc.insert(
        "verdict".into(),
        json!(crate::report::verdict_name(stats.outcome())),
    );
    doc.insert(
        "summary".into(),
        json!(format!(
            "{} requests sent, {} received, {} errors, {:.1}% loss",
            stats.sent,
            stats.received,
            stats.error_count(),
            stats.loss_pct()
        )),
    );
    doc.insert("statistics".into(), stats.to_json(target, connects));
    doc.insert(
        "samples".into(),
        Json::Array(rec.samples.iter().map(|(seq, t, rtt, err)| json!({"seq": seq, "t_ms": (t * 1e3).round() / 1e3, "rtt_ms": (rtt * 1e3).round() / 1e3, "error": err})).collect()),
    );
    doc.insert(
        "points".into(),
        Json::Array(points.iter().zip(&rec.values).map(|(p, trend)| json!({"name": p.label, "address": p.address, "unit": p.unit, "trend": trend})).collect()),
    );
    Json::Object(doc)
}

/// Prometheus textfile-collector exposition of a poll's statistics.
pub fn prometheus(stats: &LinkStats, target: &Target) -> String {
    let t = target.url().replace('\\', "\\\\").replace('"', "\\\"");
    let mut out = String::new();
    let mut put = |name: &str, help: &str, rows: Vec<(String, f64)>| {
        out += &format!("# HELP {name} {help}\n# TYPE {name} gauge\n");
        for (labels, v) in rows {
            out += &format!(
                "{name}{{target=\"{t}\"{labels}}} {}\n",
                (v * 1e9).round() / 1e9
            );
        }
    };
    put(
        "plcprobe_poll_requests",
        "Requests sent by the poll.",
        vec![(String::new(), stats.sent as f64)],
    );
    put(
        "plcprobe_poll_received",
        "Requests answered with data.",
        vec![(String::new(), stats.received as f64)],
    );
    let mut errs: Vec<(String, f64)> = stats
        .errors
        .iter()
        .map(|(k, n)| (format!(",kind=\"{}\"", k.name()), *n as f64))
        .collect();
    errs.extend(
        stats
            .exceptions
            .iter()
            .map(|(c, n)| (format!(",kind=\"exception_0x{c:02x}\""), *n as f64)),
    );
    if !errs.is_empty() {
        put("plcprobe_poll_errors", "Failed requests by kind.", errs);
    }
    if let Some(l) = stats.latency() {
        put(
            "plcprobe_poll_rtt_p50_seconds",
            "Median round trip of answered requests.",
            vec![(String::new(), l.p50 / 1e3)],
        );
        put(
            "plcprobe_poll_rtt_p95_seconds",
            "95th percentile round trip of answered requests.",
            vec![(String::new(), l.p95 / 1e3)],
        );
        put(
            "plcprobe_poll_rtt_max_seconds",
            "Slowest round trip of answered requests.",
            vec![(String::new(), l.max / 1e3)],
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorder_decimates_evenly_and_stays_bounded() {
        let mut r = PollTrace::new(1);
        for seq in 1..=100_000u64 {
            if r.wants(seq) {
                r.push(seq, seq as f64, 1.0, None, std::iter::once(json!(seq)));
            }
        }
        assert!(
            r.samples.len() < PollTrace::CAP && r.samples.len() >= PollTrace::CAP / 2,
            "{}",
            r.samples.len()
        );
        assert_eq!(r.samples.len(), r.values[0].len());
        assert_eq!(r.samples[0].0, 1, "the first poll is kept");
        let seqs: Vec<u64> = r.samples.iter().map(|s| s.0).collect();
        let step = seqs[1] - seqs[0];
        assert!(seqs.windows(2).all(|w| w[1] - w[0] == step), "even spacing");
        assert!(
            *seqs.last().unwrap() > 100_000 - step,
            "covers the whole run"
        );
    }
}
