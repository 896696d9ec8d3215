//! The SQS path: a batch of remediation jobs from the fan-out queue, as the event source
//! mapping delivers it. Each job goes through the same screening, decision and IoT calls as an
//! inline finding; the answer names exactly the jobs to deliver again (partial batch response).

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsMessage};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::apply::Remediator;
use crate::findings::{Finding, PolicyVersionRef, IOT_POLICY};
use crate::handler::{Cutoff, Joined, Pool};
use crate::job::Job;
use crate::plan::{Screen, Screener};
use crate::report::{FindingReport, Outcome, Totals};

/// `eventSource` of the records of an SQS event.
pub const SQS_EVENT_SOURCE: &str = "aws:sqs";

/// An event from an SQS event source mapping (its records say `eventSource: aws:sqs`; SNS
/// records say `EventSource: aws:sns`).
pub fn is_sqs_event(event: &Value) -> bool {
    event
        .get("Records")
        .and_then(Value::as_array)
        .and_then(|records| records.first())
        .and_then(|record| record.get("eventSource"))
        .and_then(Value::as_str)
        == Some(SQS_EVENT_SOURCE)
}

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
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// A message of the batch and what the log needs of it.
struct Delivery {
    message_id: String,
    task_id: Option<String>,
    receive_count: String,
}

/// Works on every job of the batch, at most `MAX_CONCURRENCY` at once and one job per policy
/// at a time. A message counts as done only once its job has an outcome that needs no retry;
/// everything else, including anything that could not even be read, is listed in
/// `batchItemFailures`.
pub async fn handle_jobs(
    remediator: &Arc<Remediator>,
    records: &[Value],
    cutoff: Cutoff,
) -> JobsReport {
    let mut report = JobsReport {
        jobs: records.len(),
        ..JobsReport::default()
    };
    // Every named message starts out as a failure and is struck off once done, so that no
    // path can lose one.
    let mut not_done: Vec<String> = Vec::new();
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut seen_ids: HashSet<String> = HashSet::new();
    let screener = Screener::new(remediator.config().target_policy_prefix.clone());
    let mut jobs: Vec<(Delivery, Option<String>, PolicyVersionRef)> = Vec::new();
    for raw in records {
        let id = raw
            .get("messageId")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty());
        // SQS delivers at least once, and a batch is gathered from several receives: the same
        // message twice is one job, whose outcome alone decides.
        if let Some(id) = id {
            if !seen_ids.insert(id.to_owned()) {
                tracing::warn!(
                    message_id = id,
                    "the same message twice in one batch; handled once"
                );
                continue;
            }
        }
        let message = match SqsMessage::deserialize(raw) {
            Ok(message) => message,
            Err(e) => {
                let reason = format!("not an SQS message: {e}");
                reject(&mut report, &mut not_done, id, "-", &reason);
                continue;
            }
        };
        let receive_count = message
            .attributes
            .get("ApproximateReceiveCount")
            .cloned()
            .unwrap_or_else(|| "-".into());
        let job = match Job::parse(message.body.as_deref()) {
            Ok(job) => job,
            Err(e) => {
                reject(
                    &mut report,
                    &mut not_done,
                    id,
                    &receive_count,
                    &e.to_string(),
                );
                continue;
            }
        };
        let Some(id) = id else {
            let reason = "the record has no messageId";
            reject(&mut report, &mut not_done, None, &receive_count, reason);
            continue;
        };
        not_done.push(id.to_owned());
        let delivery = Delivery {
            message_id: id.to_owned(),
            task_id: job.task_id,
            receive_count,
        };
        let finding = Finding {
            finding_id: job.finding_id,
            resource_type: Some(IOT_POLICY.to_owned()),
            policy: Some(job.policy),
            is_suppressed: false,
        };
        // The queue is an input like any other: the prefix is checked again here.
        match screener.check(&finding) {
            Screen::Skip(reason) => {
                let skipped = FindingReport::new(
                    finding.finding_id,
                    finding.policy.as_ref(),
                    Outcome::Skipped { reason },
                );
                file_outcome(&mut report, &mut done, &delivery, &skipped);
            }
            Screen::InScope(target) => jobs.push((delivery, finding.finding_id, target)),
        }
    }
    // Two jobs for one policy (two audits, or a job redelivered next to a newer one) do not
    // race: the second starts once the first has finished, and decides from what it left.
    let mut pool: Pool<Delivery> = Pool::new(remediator);
    while !jobs.is_empty() {
        let mut started: HashSet<String> = HashSet::new();
        let mut later = Vec::new();
        for (delivery, finding_id, target) in jobs {
            if !started.insert(target.policy_name.clone()) {
                later.push((delivery, finding_id, target));
                continue;
            }
            if let Some((delivery, deferred)) = pool
                .start(remediator, delivery, finding_id, target, cutoff)
                .await
            {
                file_outcome(&mut report, &mut done, &delivery, &deferred);
            }
            pool.finished(|joined| file_joined(&mut report, &mut done, joined));
        }
        pool.rest(|joined| file_joined(&mut report, &mut done, joined))
            .await;
        jobs = later;
    }
    for id in not_done {
        if !done.contains(&id) {
            report.response.add_failure(id);
        }
    }
    let failures = report.response.batch_item_failures.len();
    tracing::info!(
        jobs = report.jobs,
        failures,
        rejected = report.rejected,
        remediated = report.totals.remediated,
        skipped = report.totals.skipped,
        failed = report.totals.failed,
        deferred = report.totals.deferred,
        "job batch done"
    );
    report
}

fn file_joined(report: &mut JobsReport, done: &mut BTreeSet<String>, joined: Joined<Delivery>) {
    match joined {
        Ok((delivery, finding)) => file_outcome(report, done, &delivery, &finding),
        // Only cancellation is left (panics are caught in the task), and nothing cancels; the
        // message stays a failure.
        Err(e) => tracing::error!(error = %e, "internal error: worker ended early"),
    }
}

/// Logs and counts one job's outcome; a job that needs no retry is done.
fn file_outcome(
    report: &mut JobsReport,
    done: &mut BTreeSet<String>,
    delivery: &Delivery,
    finding: &FindingReport,
) {
    finding.log(delivery.task_id.as_deref().unwrap_or("-"));
    report.totals.count(&finding.outcome);
    if finding.outcome.is_incomplete() {
        tracing::warn!(message_id = %delivery.message_id, receive_count = %delivery.receive_count,
            policy = finding.policy_name.as_deref().unwrap_or("-"),
            "job returned to the queue: it is delivered again after the visibility timeout");
    } else {
        done.insert(delivery.message_id.clone());
    }
}

/// A message that is not a job: listed as a failure when it can be named, so that the queue's
/// receive limit moves it to the dead-letter queue, where it can be read.
fn reject(
    report: &mut JobsReport,
    not_done: &mut Vec<String>,
    id: Option<&str>,
    receive_count: &str,
    reason: &str,
) {
    report.rejected += 1;
    match id {
        Some(id) => {
            tracing::error!(message_id = id, receive_count, reason,
                "not a remediation job; it goes to the dead-letter queue after the queue's receive limit");
            not_done.push(id.to_owned());
        }
        None => {
            report.unnamed += 1;
            tracing::error!(
                reason,
                "an SQS record without a messageId; the whole batch fails so that it is not lost"
            );
        }
    }
}
