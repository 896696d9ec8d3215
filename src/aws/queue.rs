//! Sending remediation jobs to the fan-out queue, ten per `SendMessageBatch`.
//!
//! A batch call can succeed while some of its entries fail: those are sent again (with
//! backoff) unless SQS says the entry itself is wrong (`SenderFault`), so that a job is never
//! dropped quietly. What still fails is reported per job, and the audit's invocation fails so
//! that Lambda's retry enqueues it again (a repeated job costs two reads, nothing else).

use std::time::Duration;

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

use crate::domain::{sort_answer, EntryResult, FailedEntry, Job};

/// SQS's limit of entries per `SendMessageBatch`.
pub const BATCH_SIZE: usize = 10;
/// Rounds of sending for the entries of one batch, the first included. Each round is one
/// `SendMessageBatch`, itself retried by the SDK on throttling and 5xx.
pub const SEND_ROUNDS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// The fan-out queue.
#[derive(Clone, Debug)]
pub struct Enqueuer {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl Enqueuer {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// Sends up to [`BATCH_SIZE`] jobs; one result per job, in order: `Ok` once SQS has
    /// stored it, otherwise why not.
    pub async fn send(&self, jobs: &[Job]) -> Vec<Result<(), String>> {
        let mut results: Vec<Option<Result<(), String>>> = vec![None; jobs.len()];
        let mut pending: Vec<usize> = (0..jobs.len()).collect();
        let mut backoff = FIRST_BACKOFF;
        for round in 1..=SEND_ROUNDS {
            let ids: Vec<String> = pending.iter().map(usize::to_string).collect();
            let answer = self.send_round(jobs, &pending, &ids).await;
            let mut retry = Vec::new();
            for (&i, result) in pending.iter().zip(answer) {
                match result {
                    EntryResult::Sent => results[i] = Some(Ok(())),
                    EntryResult::Refused(why) => {
                        results[i] = Some(Err(format!("SQS refused the job: {why}")))
                    }
                    EntryResult::Retry(why) if round == SEND_ROUNDS => {
                        results[i] = Some(Err(format!(
                            "not enqueued after {SEND_ROUNDS} rounds of SendMessageBatch: {why}"
                        )))
                    }
                    EntryResult::Retry(why) => {
                        tracing::warn!(policy = %jobs[i].policy.policy_name, round, reason = %why,
                            "job not enqueued; sending it again");
                        retry.push(i);
                    }
                }
            }
            if retry.is_empty() {
                break;
            }
            pending = retry;
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err("internal error: the job was never sent".into())))
            .collect()
    }

    async fn send_round(
        &self,
        jobs: &[Job],
        pending: &[usize],
        ids: &[String],
    ) -> Vec<EntryResult> {
        let mut request = self.client.send_message_batch().queue_url(&self.queue_url);
        for (&i, id) in pending.iter().zip(ids) {
            let entry = SendMessageBatchRequestEntry::builder()
                .id(id)
                .message_body(jobs[i].to_body())
                .build();
            match entry {
                Ok(entry) => request = request.entries(entry),
                // Only a missing id or body fails the build, and both are set above.
                Err(e) => return vec![EntryResult::Refused(e.to_string()); ids.len()],
            }
        }
        match request.send().await {
            Ok(out) => {
                let successful: Vec<String> =
                    out.successful().iter().map(|s| s.id().to_owned()).collect();
                let failed: Vec<FailedEntry> = out
                    .failed()
                    .iter()
                    .map(|f| FailedEntry {
                        id: f.id().to_owned(),
                        sender_fault: f.sender_fault(),
                        code: f.code().to_owned(),
                        message: f.message().map(str::to_owned),
                    })
                    .collect();
                sort_answer(ids, &successful, &failed)
            }
            Err(e) => {
                let why = format!("SendMessageBatch failed: {}", DisplayErrorContext(&e));
                vec![EntryResult::Retry(why); ids.len()]
            }
        }
    }
}
