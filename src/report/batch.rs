//! The answer to a batch of fan-out jobs: the partial batch response, with counts.

use aws_lambda_events::event::sqs::SqsBatchResponse;
use serde::Serialize;

use super::finding::Totals;

/// What a batch came to. `batchItemFailures` is what the event source mapping reads: those
/// messages are delivered again after the queue's visibility timeout, the others are deleted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobsReport {
    #[serde(flatten)]
    pub response: SqsBatchResponse,
    pub jobs: usize,
    /// Bodies that are not jobs (they reach the dead-letter queue after the receive limit).
    pub rejected: usize,
    /// Records without a `messageId`: they cannot be named in `batchItemFailures`.
    #[serde(skip_serializing_if = "is_zero")]
    pub unnamed: usize,
    pub totals: Totals,
    /// Notifications that could not be sent (each logged at error level).
    #[serde(skip_serializing_if = "is_zero")]
    pub notification_errors: u64,
}

fn is_zero<N: Default + PartialEq>(n: &N) -> bool {
    *n == N::default()
}
