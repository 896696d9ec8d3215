//! Pacing IoT calls to the account's API quota, one schedule per operation.
//!
//! IoT's quotas are per account and per operation (10 calls per second by default for each
//! policy operation and for `ListAuditFindings`). Sending faster only buys
//! `ThrottlingException`s and retries with backoff, which finish later than calls spaced at the
//! quota from the start.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::operation::Operation;

/// Spaces the calls of each operation at least `1 / rate` apart, across all workers of the
/// invocation. A call waits for the next free slot of its operation; calls of different
/// operations do not wait for each other.
#[derive(Debug)]
pub struct Pacer {
    /// The spacing per operation; `None` = unpaced.
    interval: [Option<Duration>; Operation::COUNT],
    /// The next free slot per operation.
    next: [Mutex<Option<Instant>>; Operation::COUNT],
}

impl Pacer {
    /// At most one call of an operation every `interval` for all of them; `None` = unpaced.
    pub fn new(interval: Option<Duration>) -> Self {
        Self::per_operation(|_| interval)
    }

    /// Each operation at its own spacing ([`crate::config::Config::pace`]).
    pub fn per_operation(interval: impl Fn(Operation) -> Option<Duration>) -> Self {
        Self {
            interval: Operation::ALL.map(interval),
            next: Default::default(),
        }
    }

    /// Waits until a call of `operation` may be sent.
    pub async fn wait(&self, operation: Operation) {
        let Some(interval) = self.interval[operation.index()] else {
            return;
        };
        let slot = {
            let mut next = self.next[operation.index()]
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            let slot = next.map_or(now, |n| n.max(now));
            *next = Some(slot + interval);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn calls_of_one_operation_are_spaced_at_the_rate() {
        let pacer = Pacer::new(Some(Duration::from_millis(100)));
        let start = Instant::now();
        for _ in 0..5 {
            pacer.wait(Operation::GetPolicy).await;
        }
        // Slots at 0, 100, 200, 300, 400 ms.
        assert_eq!(start.elapsed(), Duration::from_millis(400));
        // Another operation has its own schedule.
        let before = Instant::now();
        pacer.wait(Operation::CreatePolicyVersion).await;
        assert_eq!(before.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_the_schedule() {
        let pacer = std::sync::Arc::new(Pacer::new(Some(Duration::from_millis(10))));
        let start = Instant::now();
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let pacer = pacer.clone();
                tokio::spawn(async move { pacer.wait(Operation::DeletePolicyVersion).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(start.elapsed(), Duration::from_millis(190));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_operation_does_not_bank_a_burst() {
        let pacer = Pacer::new(Some(Duration::from_millis(100)));
        pacer.wait(Operation::GetPolicy).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let start = Instant::now();
        pacer.wait(Operation::GetPolicy).await;
        pacer.wait(Operation::GetPolicy).await;
        assert_eq!(start.elapsed(), Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn operations_can_have_their_own_spacing() {
        let pacer = Pacer::per_operation(|op| match op {
            Operation::ListAuditFindings => None,
            _ => Some(Duration::from_millis(100)),
        });
        let start = Instant::now();
        for _ in 0..3 {
            pacer.wait(Operation::ListAuditFindings).await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        for _ in 0..3 {
            pacer.wait(Operation::GetPolicy).await;
        }
        assert_eq!(start.elapsed(), Duration::from_millis(200));
    }

    #[tokio::test(start_paused = true)]
    async fn none_means_unpaced() {
        let pacer = Pacer::new(None);
        let start = Instant::now();
        for _ in 0..100 {
            pacer.wait(Operation::GetPolicy).await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
