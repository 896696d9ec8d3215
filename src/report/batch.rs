//! The answer to a batch of fan-out jobs: the partial batch response, with counts.

use std::collections::BTreeMap;

use aws_lambda_events::event::sqs::SqsBatchResponse;
use serde::Serialize;

use super::audit::Report;
use super::finding::Totals;

/// What a batch came to. `batchItemFailures` is what the event source mapping reads: those
/// messages are delivered again after the queue's visibility timeout, the others are deleted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobsReport {
    #[serde(flatten)]
    pub response: SqsBatchResponse,
    /// Records that are not Device Defender messages: jobs, and bodies that should be.
    pub jobs: usize,
    /// Bodies that are neither jobs nor Device Defender messages (they reach the dead-letter queue after the receive limit).
    pub rejected: usize,
    /// Records without a `messageId`: they cannot be named in `batchItemFailures`.
    #[serde(skip_serializing_if = "is_zero")]
    pub unnamed: usize,
    /// Every job's outcome, and those of the findings of the buffered audit messages.
    pub totals: Totals,
    /// The jobs' outcomes by the account and region they were worked in (SPEC §11).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<ScopeTotals>,
    /// The Device Defender messages the batch carried (SNS → SQS → Lambda), reported as the SNS
    /// door reports them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages: Option<Report>,
    /// Notifications that could not be sent (each logged at error level).
    #[serde(skip_serializing_if = "is_zero")]
    pub notification_errors: u64,
}

impl JobsReport {
    /// The totals of the jobs and of the buffered audits by account.
    pub fn totals_by_account(&self) -> BTreeMap<String, Totals> {
        let mut by_account = self
            .messages
            .as_ref()
            .map(Report::totals_by_account)
            .unwrap_or_default();
        for scope in &self.scopes {
            by_account
                .entry(scope.account_id.clone())
                .or_default()
                .add(&scope.totals);
        }
        by_account
    }
}

/// The outcomes of the jobs of one account and region.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScopeTotals {
    pub account_id: String,
    pub region: String,
    pub totals: Totals,
}

fn is_zero<N: Default + PartialEq>(n: &N) -> bool {
    *n == N::default()
}
