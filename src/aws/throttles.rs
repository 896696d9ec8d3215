//! The `Throttled` metric (SPEC §8): how many IoT call attempts were answered with throttling.
//! The SDK retries those out of sight, so only an interceptor on the client sees them; a rising
//! count says the function runs at the account's IoT API quota (lower
//! `API_CALLS_PER_SECOND` or the concurrency) before throttling turns into failed policies.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aws_sdk_iot::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime::client::retries::classifiers::run_classifiers_on_ctx;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef;
use aws_smithy_runtime_api::client::retries::classifiers::{RetryAction, RetryReason};
use aws_smithy_runtime_api::client::retries::ErrorKind;

/// A count of throttled IoT attempts, shared by the client's interceptor and whoever reports
/// it; clones count into the same total. Lambda runs one invocation at a time in an execution
/// environment, so [`Throttles::take`] at the end of an invocation reads that invocation's.
#[derive(Clone, Debug, Default)]
pub struct Throttles(Arc<AtomicU64>);

impl Throttles {
    /// The count so far, reset to 0: one invocation's throttles, not the environment's total
    /// since its cold start.
    pub fn take(&self) -> u64 {
        self.0.swap(0, Ordering::Relaxed)
    }

    /// The count so far, left as it is.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    fn add_one(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// Makes every attempt of the built client's calls answered with throttling count in
/// `throttles`.
pub fn with_throttle_count(
    builder: aws_sdk_iot::config::Builder,
    throttles: &Throttles,
) -> aws_sdk_iot::config::Builder {
    builder.interceptor(CountThrottles(throttles.clone()))
}

/// Counts an attempt as throttled exactly when the client's own retry classifiers (the SDK's,
/// which know `ThrottlingException` and the other throttling codes, and `TooManyRequests` for a
/// bare HTTP 429) classify it as throttling, run the way the retry strategy runs them: the
/// metric and the retries cannot disagree on what throttling is. The last attempt of a call
/// counts too when it is throttled, though no retry follows it.
#[derive(Debug)]
struct CountThrottles(Throttles);

impl Intercept for CountThrottles {
    fn name(&self) -> &'static str {
        "count throttled IoT attempts"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let action =
            run_classifiers_on_ctx(runtime_components.retry_classifiers(), context.inner());
        if is_throttling(&action) {
            self.0.add_one();
        }
        Ok(())
    }
}

fn is_throttling(action: &RetryAction) -> bool {
    matches!(
        action,
        RetryAction::RetryIndicated(RetryReason::RetryableError {
            kind: ErrorKind::ThrottlingError,
            ..
        })
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn take_reads_and_resets_and_clones_share_the_count() {
        let throttles = Throttles::default();
        let clone = throttles.clone();
        clone.add_one();
        clone.add_one();
        assert_eq!(throttles.get(), 2);
        assert_eq!(throttles.take(), 2);
        assert_eq!(clone.take(), 0);
    }

    #[test]
    fn only_a_throttling_retry_counts() {
        assert!(is_throttling(&RetryAction::throttling_error()));
        assert!(is_throttling(
            &RetryAction::retryable_error_with_explicit_delay(
                ErrorKind::ThrottlingError,
                Duration::from_secs(1)
            )
        ));
        assert!(!is_throttling(&RetryAction::server_error()));
        assert!(!is_throttling(&RetryAction::transient_error()));
        assert!(!is_throttling(&RetryAction::NoActionIndicated));
        assert!(!is_throttling(&RetryAction::RetryForbidden));
    }
}
