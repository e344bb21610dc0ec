//! Link statistics of the requests sent to one device: sent, answered, exceptions by code, link
//! errors by kind, round trips (min/p50/p95/max), in ping's words for people and as JSON for
//! machines. `poll` prints them; `check` judges latency and error rate on them.

use std::{collections::BTreeMap, time::Instant};

use serde_json::{json, Value as Json};

use super::RequestOutcome;
use crate::{
    outcome::Outcome, proto::modbus::exception::describe_exception, target::Target,
    transport::modbus::ErrorKind,
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

/// Counters of a run of requests to one device (a poll, a check's short poll).
pub struct LinkStats {
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

impl Default for LinkStats {
    fn default() -> Self {
        Self::new()
    }
}

impl LinkStats {
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

    /// Outcome per docs/DESIGN.md §6: all answered 0, some failed 1, none answered 2.
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
