//! `poll`: repeated reads with live link statistics, ending (also on Ctrl-C) with ping-style
//! statistics: sent, received, errors by kind, loss, round-trip min/p50/p95/max.
//!
//! A poll never stops on a failure: after a timeout or a broken connection the link reconnects on
//! the next request (with backoff while the device refuses connections), so one bad minute shows
//! in the statistics instead of ending the run.

use std::{
    collections::BTreeMap,
    io::Write,
    time::{Duration, Instant},
};

use serde_json::{json, Value as Json};

use super::{
    plan::{Fetched, ItemError, ItemResult, ReadPlan, RequestOutcome},
    read::resolve,
    Ctx, Outcome,
};
use crate::{
    cli::PollArgs,
    proto::modbus::exception::describe_exception,
    report::{Format, RowStream},
    target::Target,
    transport::modbus::{ErrorKind, ModbusLink},
};

/// Round-trip figures, milliseconds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Latency {
    /// Fastest.
    pub min: f64,
    /// Median (the figure `check` compares with its thresholds).
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// Slowest.
    pub max: f64,
}

/// Counters of one poll run.
pub struct PollStats {
    /// Requests sent (every attempt, including failed connects).
    pub sent: u64,
    /// Requests answered with data.
    pub received: u64,
    /// Exceptions by code.
    pub exceptions: BTreeMap<u8, u64>,
    /// Link errors by kind.
    pub errors: BTreeMap<ErrorKind, u64>,
    /// Round trips of answered requests (data or exception), in microseconds.
    pub rtt: hdrhistogram::Histogram<u64>,
    started: Instant,
}

impl Default for PollStats {
    fn default() -> Self {
        Self::new()
    }
}

impl PollStats {
    /// Empty statistics, clock started.
    pub fn new() -> Self {
        Self {
            sent: 0,
            received: 0,
            exceptions: BTreeMap::new(),
            errors: BTreeMap::new(),
            rtt: hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .expect("valid bounds"),
            started: Instant::now(),
        }
    }

    /// Count one request.
    pub fn add(&mut self, o: &RequestOutcome) {
        self.sent += 1;
        let us = (o.rtt.as_micros() as u64).max(1);
        match o.error {
            None => {
                self.received += 1;
                let _ = self.rtt.record(us);
            }
            Some(Ok(code)) => {
                *self.exceptions.entry(code).or_default() += 1;
                let _ = self.rtt.record(us);
            }
            Some(Err(kind)) => *self.errors.entry(kind).or_default() += 1,
        }
    }

    /// All errors (exceptions and link errors).
    pub fn error_count(&self) -> u64 {
        self.exceptions.values().sum::<u64>() + self.errors.values().sum::<u64>()
    }

    /// Requests that got no valid reply, as a percentage of those sent.
    pub fn loss_pct(&self) -> f64 {
        if self.sent == 0 {
            return 0.0;
        }
        self.errors.values().sum::<u64>() as f64 * 100.0 / self.sent as f64
    }

    /// Outcome per DESIGN.md §6: all answered 0, some failed 1, none answered 2.
    pub fn outcome(&self) -> Outcome {
        if self.sent == 0 || self.received == 0 {
            Outcome::Critical
        } else if self.received == self.sent {
            Outcome::Ok
        } else {
            Outcome::Warning
        }
    }

    /// Round trips of answered requests (data or exception); `None` before any answer.
    pub fn latency(&self) -> Option<Latency> {
        let ms = |us: u64| us as f64 / 1e3;
        (!self.rtt.is_empty()).then(|| Latency {
            min: ms(self.rtt.min()),
            p50: ms(self.rtt.value_at_quantile(0.5)),
            p95: ms(self.rtt.value_at_quantile(0.95)),
            max: ms(self.rtt.max()),
        })
    }

    /// Machine form.
    pub fn to_json(&self, target: &Target, connects: u64) -> Json {
        let elapsed = self.started.elapsed().as_secs_f64();
        let mut errors = serde_json::Map::new();
        for (k, n) in &self.errors {
            errors.insert(k.name().to_string(), json!(n));
        }
        for (c, n) in &self.exceptions {
            errors.insert(format!("exception_0x{c:02x}"), json!(n));
        }
        let rtt = serde_json::to_value(self.latency()).unwrap_or(Json::Null);
        json!({
            "type": "statistics",
            "target": target.url(),
            "sent": self.sent,
            "received": self.received,
            "errors": errors,
            "loss_pct": (self.loss_pct() * 100.0).round() / 100.0,
            "rtt_ms": rtt,
            "connects": connects,
            "elapsed_s": (elapsed * 1000.0).round() / 1000.0,
            "rate_per_s": if elapsed > 0.0 { (self.sent as f64 / elapsed).round() } else { 0.0 },
        })
    }

    /// People form, like ping's.
    pub fn to_text(&self, target: &Target, connects: u64) -> String {
        let elapsed = self.started.elapsed();
        let mut s = format!("--- {target} poll statistics ---\n");
        s += &format!(
            "{} requests sent, {} received, {} errors, {:.1}% loss, {} in {:.1}s ({:.0} req/s)\n",
            self.sent,
            self.received,
            self.error_count(),
            self.loss_pct(),
            if connects == 1 {
                "1 connection".to_string()
            } else {
                format!("{connects} connections")
            },
            elapsed.as_secs_f64(),
            self.sent as f64 / elapsed.as_secs_f64().max(1e-9),
        );
        if self.error_count() > 0 {
            let mut parts: Vec<String> = self
                .errors
                .iter()
                .map(|(k, n)| format!("{} {n}", k.name()))
                .collect();
            parts.extend(
                self.exceptions
                    .iter()
                    .map(|(c, n)| format!("exception {} {n}", describe_exception(*c))),
            );
            s += &format!("errors: {}\n", parts.join(", "));
        }
        if let Some(l) = self.latency() {
            s += &format!(
                "rtt min/p50/p95/max = {:.3}/{:.3}/{:.3}/{:.3} ms\n",
                l.min, l.p50, l.p95, l.max
            );
        }
        s
    }
}

/// A poll to run: what `demo` and `poll` share.
pub struct PollJob<'a> {
    /// Device.
    pub target: &'a Target,
    /// What to read, and how.
    pub source: PollSource<'a>,
    /// Time between polls.
    pub interval: Duration,
    /// Stop after this many polls.
    pub count: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Where rows go (None: no rows).
    pub rows: Option<RowStream<'a>>,
    /// Progress bar for quiet runs.
    pub progress: indicatif::ProgressBar,
    /// Keep per-poll samples and values for a results file.
    pub record: Option<Recorder>,
}

/// Per-poll samples and value trends for a results file, decimated to at most [`Recorder::CAP`]
/// polls (every other one is dropped and the stride doubles), so a week-long poll stays a
/// reasonable file while still covering the whole run evenly.
#[derive(Debug, Default)]
pub struct Recorder {
    stride: u64,
    /// (seq, ms since start, round trip ms, error)
    pub samples: Vec<(u64, f64, f64, Option<String>)>,
    /// Values per kept poll, one Vec per item.
    pub values: Vec<Vec<Json>>,
}

impl Recorder {
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

/// A value a poll reads: its column label, address (register or node) and unit.
pub struct PollPoint {
    /// Column label: point name, or the address as given.
    pub label: String,
    /// `hr:100` or `ns=2;s=Line1.Speed`.
    pub address: String,
    /// Engineering unit.
    pub unit: String,
}

impl PollPoint {
    /// The points of a Modbus plan.
    pub fn of_plan(plan: &ReadPlan) -> Vec<PollPoint> {
        plan.items
            .iter()
            .map(|i| PollPoint {
                label: i.label.clone(),
                address: i.range.to_string(),
                unit: i.unit.clone(),
            })
            .collect()
    }
}

/// Where a poll's values come from.
pub enum PollSource<'a> {
    /// Modbus: the plan's requests over one link (reconnecting after failures).
    Modbus {
        /// The link.
        link: ModbusLink,
        /// What to read.
        plan: &'a ReadPlan,
        /// The last poll's answers.
        fetched: Fetched,
    },
    /// OPC UA: one batched Read per poll over one session (reconnecting after a loss).
    OpcUa {
        /// The session and its nodes (boxed: a session is much larger than a Modbus link).
        src: Box<super::opcua::UaSource>,
        /// The last poll: values, the request's outcome and its error message.
        last: (Vec<ItemResult>, Vec<RequestOutcome>, Option<String>),
    },
}

impl PollSource<'_> {
    async fn fetch(&mut self) {
        match self {
            PollSource::Modbus {
                link,
                plan,
                fetched,
            } => plan.fetch(link, fetched).await,
            PollSource::OpcUa { src, last } => *last = src.round().await,
        }
    }

    /// Timing and error of each request of the last poll.
    fn outcomes(&self) -> &[RequestOutcome] {
        match self {
            PollSource::Modbus { fetched, .. } => &fetched.outcomes,
            PollSource::OpcUa { last, .. } => &last.1,
        }
    }

    /// Full messages of the last poll's link failures.
    fn failures(&self) -> Vec<String> {
        match self {
            PollSource::Modbus { fetched, .. } => fetched
                .answers
                .iter()
                .filter_map(|a| a.as_ref().err().map(|(_, m)| m.clone()))
                .collect(),
            PollSource::OpcUa { last, .. } => last.2.iter().cloned().collect(),
        }
    }

    /// The last poll's first failure (link error or exception), for a results file.
    fn first_error(&self) -> Option<String> {
        match self {
            PollSource::Modbus { fetched, .. } => fetched.answers.iter().find_map(|a| match a {
                Err((_, m)) => Some(m.clone()),
                Ok(Err(code)) => Some(describe_exception(*code)),
                Ok(Ok(_)) => None,
            }),
            PollSource::OpcUa { last, .. } => last.2.clone(),
        }
    }

    /// The last poll's values.
    fn results(&self) -> Vec<ItemResult> {
        match self {
            PollSource::Modbus { plan, fetched, .. } => plan.decode(fetched),
            PollSource::OpcUa { last, .. } => last.0.clone(),
        }
    }

    /// Connections made, reconnections included.
    fn connects(&mut self) -> u64 {
        match self {
            PollSource::Modbus { link, .. } => link.connects,
            PollSource::OpcUa { src, .. } => src.connects(),
        }
    }
}

/// Columns of a poll row.
pub fn poll_columns(points: &[PollPoint]) -> Vec<String> {
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
) -> anyhow::Result<(PollStats, u64, Option<Recorder>)> {
    let PollJob {
        target,
        mut source,
        interval,
        count,
        duration,
        mut rows,
        progress,
        mut record,
    } = job;
    let t_start = Instant::now();
    let mut stats = PollStats::new();
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
            () = source.fetch() => {},
            _ = &mut ctrl_c => break,
        };
        let rtt = t0.elapsed();
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
        if let Some(rec) = record.as_mut().filter(|r| r.wants(seq)) {
            let results = source.results();
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
        if let Some(stream) = rows.as_mut() {
            let results = source.results();
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
            stream.row(&row)?;
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
    Ok((stats, source.connects(), record))
}

/// Write the statistics: text on stdout for tables; JSON for machines (on stderr when stdout
/// carries the rows, so the row stream stays one schema).
pub fn print_stats(
    ctx: &Ctx,
    stats: &PollStats,
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
    // OPC UA nodes, or a Modbus plan; `plan` outlives the source that borrows it.
    let ua = super::read::opcua_points(&args.points)?;
    let modbus = match &ua {
        Some(_) => None,
        None => Some(resolve(&args.points)?),
    };
    let (target, points, source) = match (&ua, &modbus) {
        (Some(ua), _) => {
            let specs = match &ua.profile {
                Some(p) => super::opcua::specs_from_profile(p),
                None => ua
                    .nodes
                    .iter()
                    .map(|n| super::opcua::node_spec(n, n))
                    .collect(),
            };
            if specs.is_empty() {
                anyhow::bail!("nothing to poll: give nodes after the target, e.g. \"ns=2;s=Line1.Speed\", or a profile with `node` points");
            }
            let points = specs
                .iter()
                .map(|s| PollPoint {
                    label: s.name.to_string(),
                    address: s.address.to_string(),
                    unit: s.unit.to_string(),
                })
                .collect();
            let src =
                match super::opcua::UaSource::open(&ctx.ua, &ua.target, &specs, ctx.timeout, true)
                    .await?
                {
                    Ok(s) => s,
                    Err(u) => {
                        super::warn(format!("{}: {}", ua.target, u.0));
                        return Ok(Outcome::Critical);
                    }
                };
            let source = PollSource::OpcUa {
                src: Box::new(src),
                last: Default::default(),
            };
            (&ua.target, points, source)
        }
        (None, Some((targets, plan))) => {
            let [target] = targets.as_slice() else {
                anyhow::bail!("poll watches one device; give one target (for many devices see `check`, or run one poll per device)");
            };
            let source = PollSource::Modbus {
                link: ModbusLink::new(target, ctx.timeout)?,
                plan,
                fetched: Fetched::default(),
            };
            (target, PollPoint::of_plan(plan), source)
        }
        (None, None) => unreachable!("one of the two is resolved"),
    };
    let rows = (!ctx.quiet).then(|| {
        let cols = poll_columns(&points);
        let widths: Vec<usize> = [24, 5, 7, 6]
            .into_iter()
            .chain(points.iter().map(|_| 8))
            .collect();
        RowStream::new(Box::new(std::io::stdout()), ctx.format, cols, &widths)
    });
    let progress = if ctx.quiet {
        ctx.progress_bar(args.count.unwrap_or(0), "polling")
    } else {
        indicatif::ProgressBar::hidden()
    };
    let job = PollJob {
        target,
        source,
        interval: args.interval,
        count: args.count,
        duration: args.duration,
        rows,
        progress,
        record: args.results.as_ref().map(|_| Recorder::new(points.len())),
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
    points: &[PollPoint],
    target: &Target,
    stats: &PollStats,
    connects: u64,
    rec: &Recorder,
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
pub fn prometheus(stats: &PollStats, target: &Target) -> String {
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
        let mut r = Recorder::new(1);
        for seq in 1..=100_000u64 {
            if r.wants(seq) {
                r.push(seq, seq as f64, 1.0, None, std::iter::once(json!(seq)));
            }
        }
        assert!(
            r.samples.len() < Recorder::CAP && r.samples.len() >= Recorder::CAP / 2,
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
