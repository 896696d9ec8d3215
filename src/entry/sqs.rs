//! The SQS door: a batch from the fan-out queue, as the event source mapping delivers it, in
//! small steps: read each record, verify and run the jobs (one job per policy at a time) through
//! the engine, handle the Device Defender messages a buffer queue carries (SNS → SQS → Lambda)
//! as the SNS door does, and settle `batchItemFailures`.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsMessage;
use serde::Deserialize;
use serde_json::Value;

use crate::aws::{self, Iot};
use crate::config::Config;
use crate::domain::{
    classify_sqs_body, Job, Message, RejectReason, Scope, Screen, Screener, SqsBody, Suppressions,
    Target, OVERLY_PERMISSIVE_CHECK,
};
use crate::engine::{now_ms, remediate_job, App, Cutoff, Pool};
use crate::report::{
    Entry, FindingReport, JobsReport, NotificationInput, NotificationKind, Outcome, RecordOutcome,
    RecordReport, Report, ScopeTotals, Totals,
};
use tracing::Instrument;

use super::notices::Notices;
use super::sns::outcomes;

/// A message of the batch and what the log needs of it.
struct Delivery {
    message_id: String,
    task_id: Option<String>,
    receive_count: String,
    /// The account and region a job is worked in, once placed; `None`: the function's own,
    /// unknown (no function ARN).
    scope: Option<Scope>,
}

/// A job's task (empty for none) and report, kept for the batch's notification.
type Filed = (String, FindingReport);

/// A job's policy, with the application of the job's account and region.
type Runnable<P> = (Delivery, Target, Arc<App<P>>);

/// The batch as it is worked on. Every named message starts out as a failure and is struck off
/// once done, so that no path can lose one.
struct Batch {
    report: JobsReport,
    not_done: Vec<String>,
    done: BTreeSet<String>,
    /// Every job's task and report by account and region, for the batch's notifications;
    /// `None` when no topic is configured (nothing is kept for nobody).
    filed: Option<BTreeMap<Option<Scope>, Vec<Filed>>>,
    /// The jobs' totals by account and region.
    by_scope: BTreeMap<Option<Scope>, Totals>,
    /// The Device Defender messages of the batch, as the SNS door reports them.
    messages: Report,
}

/// The named records of a batch, by what they carry.
#[derive(Default)]
struct Read {
    jobs: Vec<(Delivery, Job)>,
    /// With the topic an SNS envelope names.
    messages: Vec<(Delivery, Option<String>, Result<Message, RejectReason>)>,
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
        filed: app.notifier.as_ref().map(|_| BTreeMap::new()),
        by_scope: BTreeMap::new(),
        messages: Report::new(app.config.dry_run),
    };
    let mut notices = Notices::new(app.notifier.as_ref(), &app.config);
    let read = read(records, &mut batch);
    batch.report.jobs = records.len() - read.messages.len();
    if !read.jobs.is_empty() {
        let jobs = place(app, read.jobs, &mut batch).await;
        let mut runnable = Vec::new();
        for (scope_app, jobs) in jobs.into_values() {
            runnable.extend(screen_jobs(&scope_app, jobs, &mut batch).await);
        }
        run(
            app.config.max_concurrency.get(),
            runnable,
            cutoff,
            &mut batch,
        )
        .await;
        batch.notify(&mut notices, &app.config);
    }
    for (delivery, outcome) in outcomes(app, read.messages, cutoff).await {
        notices.record(&outcome);
        batch.file_message(delivery, outcome);
    }
    let mut report = batch.settle();
    report.notification_errors = notices.finish().await;
    report
}

/// The jobs by the application of their account and region (SPEC §11). A job that names an
/// account this deployment does not serve is rejected: a retry would not change that.
async fn place<P: Iot>(
    app: &Arc<App<P>>,
    jobs: Vec<(Delivery, Job)>,
    batch: &mut Batch,
) -> BTreeMap<Option<Scope>, (Arc<App<P>>, Vec<(Delivery, Job)>)> {
    let mut placed: BTreeMap<Option<Scope>, (Arc<App<P>>, Vec<_>)> = BTreeMap::new();
    for (mut delivery, job) in jobs {
        let task_id = job.task_id.as_deref().unwrap_or("job");
        let account = job.account_id.as_deref();
        match app.for_audit(account, job.region.as_deref(), task_id).await {
            Ok(job_app) => {
                delivery.scope = job_app.scope().cloned();
                let key = delivery.scope.clone();
                let entry = placed.entry(key).or_insert_with(|| (job_app, Vec::new()));
                entry.1.push((delivery, job));
            }
            Err(e) => batch.refuse(&delivery, &e.to_string()),
        }
    }
    placed
}

/// Screens the jobs of one account and region. The check's current suppressions are read once
/// per batch and account (SPEC §10): a job for a policy version suppressed since its audit (by
/// a person, or by a rollback) is done with no write.
async fn screen_jobs<P: Iot>(
    app: &Arc<App<P>>,
    jobs: Vec<(Delivery, Job)>,
    batch: &mut Batch,
) -> Vec<Runnable<P>> {
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
        Ok(_) => jobs
            .into_iter()
            .map(|(delivery, target)| (delivery, target, Arc::clone(app)))
            .collect(),
        // Without them a suppressed policy could be remediated: every in-scope job comes back.
        Err(e) => {
            let error = format!("could not read the current suppressions: {e}");
            for (delivery, target) in jobs {
                let outcome = Outcome::Failed {
                    error: error.clone(),
                };
                batch.file(&delivery, &FindingReport::for_target(&target, outcome));
            }
            Vec::new()
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
        scope: None,
    };
    match classify_sqs_body(body) {
        SqsBody::Message { topic_arn, message } => {
            read.messages.push((delivery(None), topic_arn, message))
        }
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

/// Runs the jobs in the pool, each with the application of its account and region, in waves:
/// two jobs for one policy (two audits, or a job redelivered next to a newer one) do not race;
/// the second starts once the first has finished, and decides from what it left.
async fn run<P: Iot>(
    max_concurrency: usize,
    mut jobs: Vec<Runnable<P>>,
    cutoff: Cutoff,
    batch: &mut Batch,
) {
    let mut pool: Pool<Delivery> = Pool::new(max_concurrency);
    while !jobs.is_empty() {
        let mut started: HashSet<(Option<Scope>, String)> = HashSet::new();
        let mut later = Vec::new();
        for (delivery, target, job_app) in jobs {
            let policy = (delivery.scope.clone(), target.policy.policy_name.clone());
            if !started.insert(policy) {
                later.push((delivery, target, job_app));
                continue;
            }
            let span = delivery.span();
            let work = move |target| remediate_job_in(job_app, target).instrument(span);
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

async fn remediate_job_in<P: Iot>(app: Arc<App<P>>, target: Target) -> FindingReport {
    remediate_job(&app, target).await
}

impl Delivery {
    /// The span a job's log lines are written in: they name its account and region.
    fn span(&self) -> tracing::Span {
        let scope = self.scope.as_ref();
        tracing::info_span!(
            "job",
            account = scope.map(|s| s.account.as_str()),
            region = scope.map(|s| s.region.as_str())
        )
    }
}

impl Batch {
    /// Logs and counts one job's outcome; a job that needs no retry is done.
    fn file(&mut self, delivery: &Delivery, finding: &FindingReport) {
        let task_id = delivery.task_id.as_deref().unwrap_or("-");
        delivery
            .span()
            .in_scope(|| self.report.totals.file(task_id, finding));
        let scope = delivery.scope.clone();
        self.by_scope
            .entry(scope.clone())
            .or_default()
            .count(&finding.outcome);
        if let Some(filed) = &mut self.filed {
            // A job without a task id files none (not the log's "-"): no notification names one.
            let task = delivery.task_id.clone().unwrap_or_default();
            filed
                .entry(scope)
                .or_default()
                .push((task, finding.clone()));
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

    /// A job that names an account and region it cannot be worked in: counted as rejected and
    /// left in `batchItemFailures`, so that it reaches the dead-letter queue.
    fn refuse(&mut self, delivery: &Delivery, reason: &str) {
        self.report.rejected += 1;
        tracing::error!(message_id = %delivery.message_id, receive_count = %delivery.receive_count,
            reason, "a job this deployment cannot work on; it goes to the dead-letter queue after the queue's receive limit");
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

    /// The batch's notifications (`kind` `batch`), one per account and region: the task when
    /// every job of it names the same one.
    fn notify(&self, notices: &mut Notices<'_>, config: &Config) {
        let Some(filed) = &self.filed else {
            return;
        };
        for (scope, filed) in filed {
            let entries: Vec<Entry> = filed
                .iter()
                .map(|(task_id, finding)| Entry { task_id, finding })
                .collect();
            let first = entries.first().map(|e| e.task_id);
            let task_id =
                first.filter(|t| entries.iter().all(|e| e.task_id == *t) && !t.is_empty());
            notices.send(&NotificationInput {
                kind: NotificationKind::Batch,
                account: scope.as_ref().map(|s| s.account.as_str()),
                region: scope
                    .as_ref()
                    .map(|s| s.region.as_str())
                    .or(config.region.as_deref()),
                task_id,
                entries: &entries,
                totals: &self.by_scope[scope],
                log_group: config.log_group.as_deref(),
                metrics_namespace: Some(&config.metrics_namespace),
                reason: None,
            });
        }
    }

    /// Names in `batchItemFailures` every message not struck off, and logs the batch's line.
    fn settle(self) -> JobsReport {
        let mut report = self.report;
        report.scopes = self
            .by_scope
            .into_iter()
            .filter_map(|(scope, totals)| {
                scope.map(|s| ScopeTotals {
                    account_id: s.account,
                    region: s.region,
                    totals,
                })
            })
            .collect();
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
