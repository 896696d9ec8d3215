//! The SQS door: a batch from the fan-out queue, as the event source mapping delivers it, in
//! small steps: read each record, verify and run the jobs (one job per policy at a time) through
//! the engine, handle the Device Defender messages a buffer queue carries (SNS → SQS → Lambda)
//! as the SNS door does, and settle `batchItemFailures`.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsMessage;
use serde::Deserialize;
use serde_json::Value;

use crate::aws::{self, Iot};
use crate::config::Config;
use crate::domain::{
    classify_sqs_body, Job, Message, RejectReason, Screen, Screener, SqsBody, Suppressions, Target,
    OVERLY_PERMISSIVE_CHECK,
};
use crate::engine::{now_ms, remediate_job, App, Cutoff, Pool};
use crate::report::{
    Entry, FindingReport, JobsReport, NotificationInput, NotificationKind, Outcome, RecordOutcome,
    RecordReport, Report,
};

use super::notices::Notices;
use super::sns::record_outcome;

/// A message of the batch and what the log needs of it.
struct Delivery {
    message_id: String,
    task_id: Option<String>,
    receive_count: String,
}

/// The batch as it is worked on. Every named message starts out as a failure and is struck off
/// once done, so that no path can lose one.
struct Batch {
    report: JobsReport,
    not_done: Vec<String>,
    done: BTreeSet<String>,
    /// Every job's task and report, for the batch's notification; `None` when no topic is
    /// configured (nothing is kept for nobody).
    filed: Option<Vec<(String, FindingReport)>>,
    /// The Device Defender messages of the batch, as the SNS door reports them.
    messages: Report,
}

/// The named records of a batch, by what they carry.
#[derive(Default)]
struct Read {
    jobs: Vec<(Delivery, Job)>,
    messages: Vec<(Delivery, Result<Message, RejectReason>)>,
}

/// Works on every record of the batch: jobs at most `MAX_CONCURRENCY` at once and one job per
/// policy at a time, then the buffered Device Defender messages. A message counts as done only
/// once it has an outcome that needs no retry; everything else, including anything that could
/// not even be read, is listed in `batchItemFailures`.
pub async fn handle_jobs<P: Iot>(
    app: &Arc<App<P>>,
    records: &[Value],
    cutoff: Cutoff,
) -> JobsReport {
    let mut batch = Batch {
        report: JobsReport::default(),
        not_done: Vec::new(),
        done: BTreeSet::new(),
        filed: app.notifier.as_ref().map(|_| Vec::new()),
        messages: Report::new(app.config.dry_run),
    };
    let mut notices = Notices::new(app.notifier.as_ref(), &app.config);
    let read = read(records, &mut batch);
    batch.report.jobs = records.len() - read.messages.len();
    if !read.jobs.is_empty() {
        work_on_jobs(app, read.jobs, cutoff, &mut batch).await;
        batch.notify(&mut notices, &app.config);
    }
    for (delivery, message) in read.messages {
        let outcome = match message {
            Err(reason) => RecordOutcome::Rejected {
                reason: reason.to_string(),
            },
            // A raw message names no topic; an envelope's is not read yet: the home region.
            Ok(message) => record_outcome(app, message, None, cutoff, &mut notices).await,
        };
        batch.file_message(delivery, outcome);
    }
    let mut report = batch.settle();
    report.notification_errors = notices.finish().await;
    report
}

/// Screens and runs the jobs. The check's current suppressions are read once per batch
/// (SPEC §10): a job for a policy version suppressed since its audit (by a person, or by a
/// rollback) is done with no write.
async fn work_on_jobs<P: Iot>(
    app: &Arc<App<P>>,
    jobs: Vec<(Delivery, Job)>,
    cutoff: Cutoff,
    batch: &mut Batch,
) {
    let suppressions = aws::suppressions(&app.iot, OVERLY_PERMISSIVE_CHECK).await;
    let screener = Screener::new(app.config.target_policy_prefix.clone()).with_suppressions(
        suppressions.as_ref().map_or_else(
            |_| Suppressions::default(),
            |listed| Suppressions::current(listed.iter().cloned(), now_ms()),
        ),
    );
    let jobs: Vec<(Delivery, Target)> = jobs
        .into_iter()
        .filter_map(|(delivery, job)| screen(&screener, delivery, job, batch))
        .collect();
    match suppressions {
        Ok(_) => run(app, jobs, cutoff, batch).await,
        // Without them a suppressed policy could be remediated: every in-scope job comes back.
        Err(e) => {
            let error = format!("could not read the current suppressions: {e}");
            for (delivery, target) in jobs {
                let outcome = Outcome::Failed {
                    error: error.clone(),
                };
                batch.file(&delivery, &FindingReport::for_target(&target, outcome));
            }
        }
    }
}

/// Reads each record; what is neither a job nor a Device Defender message is rejected. SQS
/// delivers at least once, and a batch is gathered from several receives: the same message
/// twice is handled once.
fn read(records: &[Value], batch: &mut Batch) -> Read {
    let mut seen_ids: HashSet<&str> = HashSet::new();
    let mut read = Read::default();
    for raw in records {
        let id = raw
            .get("messageId")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty());
        if let Some(id) = id {
            if !seen_ids.insert(id) {
                tracing::warn!(
                    message_id = id,
                    "the same message twice in one batch; handled once"
                );
                continue;
            }
        }
        read_one(raw, id, batch, &mut read);
    }
    read
}

/// Reads one record as a job or a Device Defender message; a record that cannot be named in
/// `batchItemFailures` is rejected whatever it carries.
fn read_one(raw: &Value, id: Option<&str>, batch: &mut Batch, read: &mut Read) {
    let message = match SqsMessage::deserialize(raw) {
        Ok(message) => message,
        Err(e) => return batch.reject(id, "-", &format!("not an SQS message: {e}")),
    };
    let receive_count = message
        .attributes
        .get("ApproximateReceiveCount")
        .cloned()
        .unwrap_or_else(|| "-".into());
    let Some(id) = id else {
        return batch.reject(None, &receive_count, "the record has no messageId");
    };
    let body = message.body.as_deref();
    let delivery = |task_id| Delivery {
        message_id: id.to_owned(),
        task_id,
        receive_count: receive_count.clone(),
    };
    match classify_sqs_body(body) {
        SqsBody::Message(message) => read.messages.push((delivery(None), message)),
        SqsBody::Job => match Job::parse(body) {
            Ok(job) => read.jobs.push((delivery(job.task_id.clone()), job)),
            Err(e) => return batch.reject(Some(id), &receive_count, &e.to_string()),
        },
    }
    batch.not_done.push(id.to_owned());
}

/// The queue is an input like any other: the prefix is checked again here. An out-of-scope job
/// is done with no call; an in-scope one goes on as a target.
fn screen(
    screener: &Screener,
    delivery: Delivery,
    job: Job,
    batch: &mut Batch,
) -> Option<(Delivery, Target)> {
    match screener.check_policy(&job.policy) {
        Screen::Skip(reason) => {
            let skipped = FindingReport::new(
                job.finding_id,
                Some(&job.policy),
                Outcome::Skipped { reason },
            );
            batch.file(&delivery, &skipped);
            None
        }
        Screen::InScope(policy) => {
            let target = Target {
                finding_id: job.finding_id,
                policy,
            };
            Some((delivery, target))
        }
    }
}

/// Runs the jobs in the pool in waves: two jobs for one policy (two audits, or a job
/// redelivered next to a newer one) do not race; the second starts once the first has
/// finished, and decides from what it left.
async fn run<P: Iot>(
    app: &Arc<App<P>>,
    mut jobs: Vec<(Delivery, Target)>,
    cutoff: Cutoff,
    batch: &mut Batch,
) {
    let mut pool: Pool<Delivery> = Pool::new(app.config.max_concurrency.get());
    while !jobs.is_empty() {
        let mut started: HashSet<String> = HashSet::new();
        let mut later = Vec::new();
        for (delivery, target) in jobs {
            if !started.insert(target.policy.policy_name.clone()) {
                later.push((delivery, target));
                continue;
            }
            let job_app = Arc::clone(app);
            let work = move |target| async move { remediate_job(&job_app, target).await };
            let started = pool.start_with(delivery, target, cutoff, work).await;
            if let Some((delivery, deferred)) = started {
                batch.file(&delivery, &deferred);
            }
            pool.finished(|delivery, finding| batch.file(&delivery, &finding));
        }
        pool.rest(|delivery, finding| batch.file(&delivery, &finding))
            .await;
        jobs = later;
    }
}

impl Batch {
    /// Logs and counts one job's outcome; a job that needs no retry is done.
    fn file(&mut self, delivery: &Delivery, finding: &FindingReport) {
        let task_id = delivery.task_id.as_deref().unwrap_or("-");
        self.report.totals.file(task_id, finding);
        if let Some(filed) = &mut self.filed {
            // A job without a task id files none (not the log's "-"): no notification names one.
            let task = delivery.task_id.clone().unwrap_or_default();
            filed.push((task, finding.clone()));
        }
        if finding.outcome.is_incomplete() {
            tracing::warn!(message_id = %delivery.message_id, receive_count = %delivery.receive_count,
                policy = finding.policy_name.as_deref().unwrap_or("-"),
                "job returned to the queue: it is delivered again after the visibility timeout");
        } else {
            self.done.insert(delivery.message_id.clone());
        }
    }

    /// Reports a Device Defender message the batch carried; done unless part of its work is
    /// left for a retry (or it is bad input, which reaches the dead-letter queue).
    fn file_message(&mut self, delivery: Delivery, outcome: RecordOutcome) {
        let done = match &outcome {
            RecordOutcome::Processed(audit) => audit.totals.incomplete() == 0,
            RecordOutcome::Skipped { .. } => true,
            RecordOutcome::Rejected { .. } => false,
        };
        if done {
            self.done.insert(delivery.message_id.clone());
        } else {
            tracing::warn!(message_id = %delivery.message_id, receive_count = %delivery.receive_count,
                "message returned to the queue: it is delivered again after the visibility timeout");
        }
        self.messages.push(RecordReport {
            message_id: Some(delivery.message_id),
            outcome,
        });
    }

    /// A record that is not a job: listed as a failure when it can be named, so that the
    /// queue's receive limit moves it to the dead-letter queue, where it can be read.
    fn reject(&mut self, id: Option<&str>, receive_count: &str, reason: &str) {
        self.report.rejected += 1;
        match id {
            Some(id) => {
                tracing::error!(message_id = id, receive_count, reason,
                    "not a remediation job; it goes to the dead-letter queue after the queue's receive limit");
                self.not_done.push(id.to_owned());
            }
            None => {
                self.report.unnamed += 1;
                tracing::error!(
                    reason,
                    "an SQS record without a messageId; the whole batch fails so that it is not lost"
                );
            }
        }
    }

    /// The batch's notification (`kind` `batch`): the task when every job names the same one.
    fn notify(&self, notices: &mut Notices<'_>, config: &Config) {
        let Some(filed) = &self.filed else {
            return;
        };
        let entries: Vec<Entry> = filed
            .iter()
            .map(|(task_id, finding)| Entry { task_id, finding })
            .collect();
        let first = entries.first().map(|e| e.task_id);
        let task_id = first.filter(|t| entries.iter().all(|e| e.task_id == *t) && !t.is_empty());
        notices.send(&NotificationInput {
            kind: NotificationKind::Batch,
            account: None,
            region: config.region.as_deref(),
            task_id,
            entries: &entries,
            totals: &self.report.totals,
            log_group: config.log_group.as_deref(),
            metrics_namespace: Some(&config.metrics_namespace),
            reason: None,
        });
    }

    /// Names in `batchItemFailures` every message not struck off, and logs the batch's line.
    fn settle(self) -> JobsReport {
        let mut report = self.report;
        for id in self.not_done {
            if !self.done.contains(&id) {
                report.response.add_failure(id);
            }
        }
        if !self.messages.records.is_empty() {
            report.rejected += self.messages.record_totals.rejected;
            report.totals.add(&self.messages.totals);
            report.messages = Some(self.messages);
        }
        tracing::info!(
            jobs = report.jobs,
            failures = report.response.batch_item_failures.len(),
            rejected = report.rejected,
            remediated = report.totals.remediated,
            skipped = report.totals.skipped,
            failed = report.totals.failed,
            deferred = report.totals.deferred,
            "job batch done"
        );
        report
    }
}
