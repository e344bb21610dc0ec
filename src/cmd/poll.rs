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
    plan::{Fetched, ItemError, ReadPlan, RequestOutcome},
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

    fn ms(us: u64) -> f64 {
        (us as f64 / 1000.0 * 1000.0).round() / 1000.0
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
        let rtt = if self.rtt.is_empty() {
            Json::Null
        } else {
            json!({
                "min": Self::ms(self.rtt.min()),
                "p50": Self::ms(self.rtt.value_at_quantile(0.5)),
                "p95": Self::ms(self.rtt.value_at_quantile(0.95)),
                "max": Self::ms(self.rtt.max()),
            })
        };
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
        if !self.rtt.is_empty() {
            s += &format!(
                "rtt min/p50/p95/max = {:.3}/{:.3}/{:.3}/{:.3} ms\n",
                Self::ms(self.rtt.min()),
                Self::ms(self.rtt.value_at_quantile(0.5)),
                Self::ms(self.rtt.value_at_quantile(0.95)),
                Self::ms(self.rtt.max())
            );
        }
        s
    }
}

/// A poll to run: what `demo` and `poll` share.
pub struct PollJob<'a> {
    /// Device.
    pub target: &'a Target,
    /// What to read.
    pub plan: &'a ReadPlan,
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
}

/// Columns of a poll row.
pub fn poll_columns(plan: &ReadPlan) -> Vec<String> {
    let mut c: Vec<String> = ["time", "seq", "rtt_ms", "status"]
        .iter()
        .map(ToString::to_string)
        .collect();
    c.extend(plan.items.iter().map(|i| i.label.clone()));
    c
}

/// Run a poll to its end (count, duration or Ctrl-C). Returns the statistics and connects.
pub async fn run_poll(ctx: &Ctx, job: PollJob<'_>) -> anyhow::Result<(PollStats, u64)> {
    let PollJob {
        target,
        plan,
        interval,
        count,
        duration,
        mut rows,
        progress,
    } = job;
    let mut link = ModbusLink::new(target, ctx.timeout)?;
    let mut stats = PollStats::new();
    let deadline = duration.map(|d| Instant::now() + d);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut backoff = Duration::ZERO;
    let mut next = Instant::now();
    let mut seq: u64 = 0;
    let mut fetched = Fetched::default();
    loop {
        if count.is_some_and(|c| seq >= c) || deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        seq += 1;
        let t0 = Instant::now();
        tokio::select! {
            () = plan.fetch(&mut link, &mut fetched) => {},
            _ = &mut ctrl_c => break,
        };
        let rtt = t0.elapsed();
        let mut refused = false;
        for o in &fetched.outcomes {
            stats.add(o);
            refused |= o.connect_failed;
        }
        progress.inc(1);
        if ctx.verbose > 0 {
            // -v: the full message of every failure, not just its kind.
            for a in &fetched.answers {
                if let Err((_, msg)) = a {
                    progress.suspend(|| super::warn(format!("{target}: poll {seq}: {msg}")));
                }
            }
        }
        if let Some(stream) = rows.as_mut() {
            let results = plan.decode(&fetched);
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
    Ok((stats, link.connects))
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
    let (targets, plan) = resolve(&args.points)?;
    let [target] = targets.as_slice() else {
        anyhow::bail!("poll watches one device; give one target (for many devices see `check`, or run one poll per device)");
    };
    let rows = (!ctx.quiet).then(|| {
        let cols = poll_columns(&plan);
        let widths: Vec<usize> = [24, 5, 7, 6]
            .into_iter()
            .chain(plan.items.iter().map(|_| 8))
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
        plan: &plan,
        interval: args.interval,
        count: args.count,
        duration: args.duration,
        rows,
        progress,
    };
    let (stats, connects) = run_poll(ctx, job).await?;
    print_stats(ctx, &stats, target, connects, !ctx.quiet)?;
    Ok(stats.outcome())
}
