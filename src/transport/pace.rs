//! Pacing: at most one request per `gap` to a device, so that `check` keeps its promise of at
//! most `rate` requests a second to any one PLC, whatever a round holds (a busy PLC's
//! communication processor is the weak point a health check must not lean on).
//!
//! A link calls [`Pacer::take_turn`] as it sends each request. A caller that times
//! requests waits for the turn itself first, so the pause is not counted in the round trip.

use std::time::Duration;

use tokio::time::Instant;

/// When the next request may go.
#[derive(Debug, Default, Clone)]
pub struct Pacer {
    gap: Duration,
    next: Option<Instant>,
}

impl Pacer {
    /// At most one request per `gap` (zero: no pacing).
    pub fn set_gap(&mut self, gap: Duration) {
        self.gap = gap;
    }

    /// Wait for the next request's turn.
    pub async fn wait(&self) {
        if let Some(t) = self.next {
            tokio::time::sleep_until(t).await;
        }
    }

    /// A request goes now: the next one waits a gap.
    pub fn sent(&mut self) {
        if !self.gap.is_zero() {
            self.next = Some(Instant::now() + self.gap);
        }
    }

    /// Wait for this request's turn and take it ([`Pacer::wait`], then [`Pacer::sent`]).
    pub async fn take_turn(&mut self) {
        self.wait().await;
        self.sent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_are_a_gap_apart_and_a_late_caller_does_not_wait() {
        let mut p = Pacer::default();
        p.sent();
        let t0 = Instant::now();
        p.wait().await;
        assert!(
            t0.elapsed() < Duration::from_millis(20),
            "no gap set: no waiting"
        );
        let gap = Duration::from_millis(30);
        p.set_gap(gap);
        p.sent();
        let t0 = Instant::now();
        for n in 1..=3 {
            p.take_turn().await;
            assert!(t0.elapsed() >= gap * n, "request {n} at {:?}", t0.elapsed());
        }
        tokio::time::sleep(gap * 2).await;
        let t1 = Instant::now();
        p.wait().await;
        assert!(t1.elapsed() < gap, "its turn had come: {:?}", t1.elapsed());
    }
}
