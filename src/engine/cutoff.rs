//! The deadline cutoff: when a Lambda invocation stops starting new policies.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The moment after which no new policy is started, so that the ones in flight can finish
/// before Lambda's deadline; what is left is reported `deferred` and the invocation fails, so
/// Lambda's retry completes the job (safe by idempotence).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cutoff(Option<Instant>);

impl Cutoff {
    /// No deadline (tests, tools).
    pub const NONE: Cutoff = Cutoff(None);

    pub fn at(instant: Instant) -> Self {
        Self(Some(instant))
    }

    /// `margin` before the invocation's deadline (epoch milliseconds, as Lambda gives it), but
    /// never more than half the time the invocation has: a function configured with a short
    /// timeout still gets to work. A deadline already past when the invocation starts cannot
    /// come from Lambda (`cargo lambda watch` sends its timeout, 600000, instead of a time): it
    /// is ignored, and Lambda's own timeout stays the limit.
    pub fn before_deadline(deadline_epoch_ms: u64, margin: Duration) -> Self {
        let deadline = UNIX_EPOCH + Duration::from_millis(deadline_epoch_ms);
        match deadline.duration_since(SystemTime::now()) {
            Ok(left) => Self(Some(Instant::now() + left - margin.min(left / 2))),
            Err(_) => {
                tracing::warn!(
                    deadline_ms = deadline_epoch_ms,
                    "the invocation's deadline is in the past; ignoring it"
                );
                Self::NONE
            }
        }
    }

    pub fn passed(&self) -> bool {
        self.0.is_some_and(|t| Instant::now() >= t)
    }
}

/// Now in epoch milliseconds, for comparing with suppressions' expiry.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_ms(from_now: Duration) -> u64 {
        (SystemTime::now() + from_now)
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    }

    fn remaining(cutoff: Cutoff) -> Duration {
        cutoff.0.unwrap().saturating_duration_since(Instant::now())
    }

    #[test]
    fn the_margin_is_taken_off_the_deadline() {
        let cutoff =
            Cutoff::before_deadline(in_ms(Duration::from_secs(900)), Duration::from_secs(30));
        let left = remaining(cutoff);
        assert!(
            left > Duration::from_secs(869) && left <= Duration::from_secs(870),
            "{left:?}"
        );
        assert!(!cutoff.passed());
    }

    #[test]
    fn a_short_invocation_keeps_half_its_time() {
        let cutoff =
            Cutoff::before_deadline(in_ms(Duration::from_secs(20)), Duration::from_secs(30));
        let left = remaining(cutoff);
        assert!(
            left > Duration::from_secs(9) && left <= Duration::from_secs(10),
            "{left:?}"
        );
    }

    #[test]
    fn a_deadline_that_cannot_be_one_is_ignored() {
        assert_eq!(
            Cutoff::before_deadline(600_000, Duration::from_secs(30)),
            Cutoff::NONE
        );
        assert!(!Cutoff::NONE.passed());
    }
}
