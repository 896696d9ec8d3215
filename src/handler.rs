//! One invocation: every SNS record, every in-scope finding, one report (SPEC §2–§6).

use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::{FutureExt, StreamExt};
use serde::Serialize;
use serde_json::Value;
use thiserror::Error;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::apply::Remediator;
use crate::fanout::{self, Enqueuer};
use crate::findings::{self, PolicyVersionRef};
use crate::job::Job;
use crate::message::{classify_event, AuditMessage, Message, TaskStatus};
use crate::plan::{route, Route, Screen, Screener};
use crate::report::{
    AuditReport, CheckHandling, CheckReport, FindingReport, Outcome, RecordOutcome, RecordReport,
    RecordSkipReason, Report,
};
use crate::worker::{handle_jobs, is_sqs_event, JobsReport};

/// The invocation fails after everything else is done when part of the work could not be
/// completed, so that Lambda's asynchronous retry (and then the on-failure destination) takes
/// over. Retrying is safe: a second run skips what is already remediated.
#[derive(Error)]
#[error(
    "{failed} in-scope policies could not be remediated, {deferred} were deferred at the deadline and \
     {listing_errors} finding lists could not be read to the end; {remediated} remediated in this run. \
     Each is logged with its policy name and reason"
)]
pub struct Incomplete {
    pub failed: usize,
    pub deferred: usize,
    pub listing_errors: usize,
    pub remediated: usize,
    /// Everything that was done, failures included (also logged line by line).
    pub report: Report,
}

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

/// What an invocation returns: the audit report for an SNS event, the partial batch response
/// (with counts) for a batch of fan-out jobs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Response {
    Audit(Report),
    Jobs(JobsReport),
}

/// Why an invocation fails as a whole.
#[derive(Debug, Error)]
pub enum InvocationError {
    #[error(transparent)]
    Incomplete(#[from] Incomplete),
    /// Lambda delivers every message of the batch again; the jobs already done cost a read.
    #[error(
        "{0} SQS records have no messageId and cannot be named in batchItemFailures; the whole \
         batch fails so that none is lost"
    )]
    UnnamedRecords(usize),
}

/// Handles one Lambda event of either kind: SNS (the audit) or SQS (fan-out jobs).
pub async fn handle(
    remediator: &Arc<Remediator>,
    event: &Value,
    cutoff: Cutoff,
) -> Result<Response, InvocationError> {
    if !is_sqs_event(event) {
        return Ok(Response::Audit(
            handle_event(remediator, event, cutoff).await?,
        ));
    }
    let records = event
        .get("Records")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let report = handle_jobs(remediator, records, cutoff).await;
    if report.unnamed > 0 {
        return Err(InvocationError::UnnamedRecords(report.unnamed));
    }
    Ok(Response::Jobs(report))
}

/// Handles one SNS event. Bad records are reported as rejected and never fail the invocation.
pub async fn handle_event(
    remediator: &Arc<Remediator>,
    event: &Value,
    cutoff: Cutoff,
) -> Result<Report, Incomplete> {
    let mut report = Report::new(remediator.config().dry_run);
    for record in classify_event(event) {
        let outcome = match record.message {
            Err(reason) => RecordOutcome::Rejected {
                reason: reason.to_string(),
            },
            Ok(Message::DetectViolation(v)) => RecordOutcome::Skipped {
                reason: RecordSkipReason::DetectViolation,
                task_id: None,
                detail: Some(format!(
                    "violation {} of thing {} ({})",
                    v.violation_id.as_deref().unwrap_or("?"),
                    v.thing_name.as_deref().unwrap_or("?"),
                    v.violation_event_type.as_deref().unwrap_or("?"),
                )),
            },
            Ok(Message::FindingNotification(f)) => RecordOutcome::Skipped {
                reason: RecordSkipReason::FindingNotification,
                detail: Some(format!(
                    "finding {}",
                    f.finding_id.as_deref().unwrap_or("?")
                )),
                task_id: f.task_id,
            },
            Ok(Message::Audit(audit)) if audit.task_status != TaskStatus::Completed => {
                RecordOutcome::Skipped {
                    reason: RecordSkipReason::TaskNotCompleted,
                    detail: Some(format!("taskStatus is {}", audit.task_status)),
                    task_id: Some(audit.task_id),
                }
            }
            Ok(Message::Audit(audit)) => {
                RecordOutcome::Processed(handle_audit(remediator, &audit, cutoff).await)
            }
        };
        report.push(RecordReport {
            message_id: record.message_id,
            outcome,
        });
    }
    let t = &report.totals;
    if t.incomplete() > 0 {
        return Err(Incomplete {
            failed: t.failed,
            deferred: t.deferred,
            listing_errors: t.listing_errors,
            remediated: t.remediated,
            report,
        });
    }
    Ok(report)
}

/// Handles one completed audit: lists the findings of the non-compliant overly permissive
/// check and works on them (or sends them to the fan-out queue); other checks are only reported.
pub async fn handle_audit(
    remediator: &Arc<Remediator>,
    audit: &AuditMessage,
    cutoff: Cutoff,
) -> AuditReport {
    let mut report = AuditReport::new(audit);
    for detail in &audit.audit_details {
        let mut check = CheckReport::new(detail);
        if detail.is_remediable() {
            let inline_max = remediator
                .enqueuer()
                .and(remediator.config().fanout.as_ref())
                .map(|f| f.inline_max_findings);
            let sink = match (
                route(detail.non_compliant_resources_count, inline_max),
                remediator.enqueuer(),
            ) {
                (Route::FanOut, Some(enqueuer)) => {
                    check.handling = CheckHandling::FindingsEnqueued;
                    Sink::Queue {
                        enqueuer,
                        buffer: Vec::new(),
                    }
                }
                _ => Sink::Inline(Pool::new(remediator)),
            };
            let ctx = CheckContext {
                remediator,
                task_id: &audit.task_id,
                check_name: &detail.check_name,
                cutoff,
            };
            match handle_check(&ctx, sink, &mut report).await {
                ListingEnd::Complete => {}
                ListingEnd::Deferred => {
                    tracing::warn!(task_id = %audit.task_id, check = %detail.check_name,
                        "deadline near: stopped listing findings; the invocation will fail so Lambda retries");
                    check.listing_deferred = true;
                }
                ListingEnd::Failed(e) => {
                    tracing::error!(task_id = %audit.task_id, check = %detail.check_name, error = %e,
                        "could not list every finding; the invocation will fail so Lambda retries");
                    check.listing_error = Some(e.to_string());
                }
            }
        }
        report.push_check(check);
    }
    report
}

/// How the listing of a check's findings ended.
enum ListingEnd {
    Complete,
    /// Stopped at the cutoff: findings after that point were not seen.
    Deferred,
    /// `ListAuditFindings` failed after the SDK's retries.
    Failed(crate::iot_error::IotError),
}

struct CheckContext<'a> {
    remediator: &'a Arc<Remediator>,
    task_id: &'a str,
    check_name: &'a str,
    cutoff: Cutoff,
}

/// Where in-scope findings go.
enum Sink<'a> {
    /// Remediated in this invocation.
    Inline(Pool<()>),
    /// Sent to the fan-out queue, [`fanout::BATCH_SIZE`] jobs per call.
    Queue {
        enqueuer: &'a Enqueuer,
        buffer: Vec<Job>,
    },
}

impl Sink<'_> {
    /// Takes one in-scope finding; returns the reports of whatever finished meanwhile.
    async fn take(
        &mut self,
        ctx: &CheckContext<'_>,
        finding_id: Option<String>,
        target: PolicyVersionRef,
        report: &mut AuditReport,
    ) {
        match self {
            Sink::Inline(pool) => {
                if let Some(((), deferred)) = pool
                    .start(ctx.remediator, (), finding_id, target, ctx.cutoff)
                    .await
                {
                    report.push(deferred);
                }
                pool.finished(|joined| push_joined(report, joined));
            }
            Sink::Queue { enqueuer, buffer } => {
                buffer.push(Job {
                    task_id: Some(ctx.task_id.to_owned()),
                    finding_id,
                    policy: target,
                });
                if buffer.len() == fanout::BATCH_SIZE {
                    send_jobs(enqueuer, std::mem::take(buffer), report).await;
                }
            }
        }
    }

    /// Waits for what is in flight, or sends what is buffered.
    async fn finish(self, report: &mut AuditReport) {
        match self {
            Sink::Inline(mut pool) => pool.rest(|joined| push_joined(report, joined)).await,
            Sink::Queue { enqueuer, buffer } => {
                if !buffer.is_empty() {
                    send_jobs(enqueuer, buffer, report).await;
                }
            }
        }
    }
}

async fn send_jobs(enqueuer: &Enqueuer, jobs: Vec<Job>, report: &mut AuditReport) {
    let results = enqueuer.send(&jobs).await;
    for (job, result) in jobs.into_iter().zip(results) {
        let outcome = match result {
            Ok(()) => Outcome::Enqueued,
            Err(error) => Outcome::Failed { error },
        };
        report.push(FindingReport::new(
            job.finding_id,
            Some(&job.policy),
            outcome,
        ));
    }
}

/// Streams the findings of one check into `sink`. A page is fetched only when the sink has
/// taken the previous one (inline: when a worker slot is free), so memory stays flat on large
/// audits. Findings seen before a listing error or the cutoff are still handled (or deferred).
async fn handle_check(
    ctx: &CheckContext<'_>,
    mut sink: Sink<'_>,
    report: &mut AuditReport,
) -> ListingEnd {
    let remediator = ctx.remediator;
    let mut screener = Screener::new(remediator.config().target_policy_prefix.clone());
    let mut pages = pin!(findings::pages(
        remediator.client(),
        remediator.pacer(),
        ctx.task_id,
        ctx.check_name
    ));
    let mut listing = ListingEnd::Complete;
    loop {
        let page = match pages.next().await {
            None => break,
            Some(Ok(page)) => page,
            Some(Err(e)) => {
                listing = ListingEnd::Failed(e);
                break;
            }
        };
        for finding in page.findings {
            match screener.screen(&finding) {
                Screen::Skip(reason) => report.push(FindingReport::new(
                    finding.finding_id,
                    finding.policy.as_ref(),
                    Outcome::Skipped { reason },
                )),
                Screen::InScope(target) => sink.take(ctx, finding.finding_id, target, report).await,
            }
        }
        if page.more && ctx.cutoff.passed() {
            listing = ListingEnd::Deferred;
            break;
        }
    }
    sink.finish(report).await;
    listing
}

/// At most `MAX_CONCURRENCY` policies worked on at once, each in its own task so that a panic
/// costs one policy. `T` tags each result with what the caller needs to file it under.
pub(crate) struct Pool<T> {
    slots: Arc<Semaphore>,
    workers: JoinSet<(T, FindingReport)>,
}

pub(crate) type Joined<T> = Result<(T, FindingReport), tokio::task::JoinError>;

impl<T: Send + 'static> Pool<T> {
    pub(crate) fn new(remediator: &Remediator) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(remediator.config().max_concurrency.get())),
            workers: JoinSet::new(),
        }
    }

    /// Waits for a free slot and starts remediating `target`. Past the cutoff it starts
    /// nothing and hands the finding back as deferred instead.
    pub(crate) async fn start(
        &mut self,
        remediator: &Arc<Remediator>,
        tag: T,
        finding_id: Option<String>,
        target: PolicyVersionRef,
        cutoff: Cutoff,
    ) -> Option<(T, FindingReport)> {
        // The semaphore is never closed, so acquiring only waits for a free slot.
        let slot = self.slots.clone().acquire_owned().await.ok();
        // Checked after the wait for a slot, which can be long.
        if cutoff.passed() || slot.is_none() {
            let deferred = FindingReport::new(finding_id, Some(&target), Outcome::Deferred);
            return Some((tag, deferred));
        }
        let remediator = Arc::clone(remediator);
        self.workers.spawn(async move {
            let report = remediate_guarded(&remediator, finding_id, &target).await;
            drop(slot);
            (tag, report)
        });
        None
    }

    /// Hands over the results that are ready, without waiting.
    pub(crate) fn finished(&mut self, mut each: impl FnMut(Joined<T>)) {
        while let Some(done) = self.workers.try_join_next() {
            each(done);
        }
    }

    /// Waits for every started policy and hands over its result.
    pub(crate) async fn rest(&mut self, mut each: impl FnMut(Joined<T>)) {
        while let Some(done) = self.workers.join_next().await {
            each(done);
        }
    }
}

/// A bug must cost one policy, not the invocation: a panic becomes that policy's failure.
async fn remediate_guarded(
    remediator: &Remediator,
    finding_id: Option<String>,
    target: &PolicyVersionRef,
) -> FindingReport {
    match AssertUnwindSafe(remediator.remediate(finding_id.clone(), target))
        .catch_unwind()
        .await
    {
        Ok(report) => report,
        Err(_) => FindingReport::new(
            finding_id,
            Some(target),
            Outcome::Failed {
                error: "internal error: the remediation panicked".into(),
            },
        ),
    }
}

fn push_joined(report: &mut AuditReport, joined: Joined<()>) {
    match joined {
        Ok(((), finding)) => report.push(finding),
        // Only cancellation is left here (panics are caught in the task), and nothing cancels.
        Err(e) => report.push(FindingReport::new(
            None,
            None,
            Outcome::Failed {
                error: format!("internal error: worker ended early: {e}"),
            },
        )),
    }
}

/// Counts only: the runtime logs the error with `{:?}`, and the report can be megabytes (every
/// decision in it is logged on its own line already).
impl std::fmt::Debug for Incomplete {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incomplete")
            .field("failed", &self.failed)
            .field("deferred", &self.deferred)
            .field("listing_errors", &self.listing_errors)
            .field("remediated", &self.remediated)
            .finish_non_exhaustive()
    }
}

impl From<InvocationError> for lambda_runtime::Diagnostic {
    fn from(e: InvocationError) -> Self {
        let error_type = match &e {
            InvocationError::Incomplete(_) => "RemediationIncomplete",
            InvocationError::UnnamedRecords(_) => "UnnamedSqsRecords",
        };
        Self {
            error_type: error_type.into(),
            error_message: e.to_string(),
        }
    }
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
