//! Sending remediation jobs to the fan-out queue, ten per `SendMessageBatch`.
//!
//! A batch call can succeed while some of its entries fail: those are sent again (with
//! backoff) unless SQS says the entry itself is wrong (`SenderFault`), so that a job is never
//! dropped quietly. What still fails is reported per job, and the audit's invocation fails so
//! that Lambda's retry enqueues it again (a repeated job costs two reads, nothing else).

use std::time::Duration;

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

use crate::job::Job;

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

/// What SQS said of one entry of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryResult {
    Sent,
    /// Worth sending again: SQS's side, or the whole call failed.
    Retry(String),
    /// SQS refused the entry itself (`SenderFault`): sending it again cannot help.
    Refused(String),
}

/// One entry of a batch answer, as plain data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedEntry {
    pub id: String,
    pub sender_fault: bool,
    pub code: String,
    pub message: Option<String>,
}

/// Sorts a `SendMessageBatch` answer onto the entries sent, by entry id. An entry the answer
/// does not mention is sent again: an answer missing an entry is no proof it was stored.
pub fn sort_answer(
    sent_ids: &[String],
    successful: &[String],
    failed: &[FailedEntry],
) -> Vec<EntryResult> {
    sent_ids
        .iter()
        .map(|id| {
            if let Some(f) = failed.iter().find(|f| &f.id == id) {
                let why = format!(
                    "{}: {}",
                    f.code,
                    f.message.as_deref().unwrap_or("no message")
                );
                if f.sender_fault {
                    EntryResult::Refused(why)
                } else {
                    EntryResult::Retry(why)
                }
            } else if successful.contains(id) {
                EntryResult::Sent
            } else {
                EntryResult::Retry("SendMessageBatch did not answer for this entry".into())
            }
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(id: &str, sender_fault: bool) -> FailedEntry {
        FailedEntry {
            id: id.into(),
            sender_fault,
            code: "Code".into(),
            message: Some("msg".into()),
        }
    }

    #[test]
    fn an_answer_is_sorted_onto_the_entries() {
        let ids: Vec<String> = ["0", "1", "2", "3"].map(String::from).to_vec();
        let results = sort_answer(
            &ids,
            &["0".into()],
            &[failed("1", false), failed("2", true)],
        );
        assert_eq!(results[0], EntryResult::Sent);
        assert_eq!(results[1], EntryResult::Retry("Code: msg".into()));
        assert_eq!(results[2], EntryResult::Refused("Code: msg".into()));
        // Not in the answer at all: sent again, never taken as sent.
        assert!(matches!(results[3], EntryResult::Retry(_)));
    }

    #[test]
    fn a_failure_wins_over_a_success_for_the_same_id() {
        let ids = vec!["0".to_owned()];
        let results = sort_answer(&ids, &["0".into()], &[failed("0", false)]);
        assert!(matches!(results[0], EntryResult::Retry(_)));
    }
}
