//! The SNS door (SPEC §2–§6): every record of the event, every in-scope finding of a completed
//! audit worked on inline or sent to the fan-out queue, one report.

use std::collections::{BTreeMap, HashSet};
use std::pin::pin;
use std::sync::Arc;

use futures::StreamExt;
use serde_json::Value;
use thiserror::Error;
use tracing::Instrument;

use crate::aws::{self, Enqueuer, Iot, IotError, Listed, BATCH_SIZE};
use crate::domain::{
    audit_account, classify_event, route, topic_region, AuditDetail, AuditMessage, Finding, Job,
    Message, RejectReason, Route, Screen, Screener, Suppressions, Target, TaskStatus,
};
use crate::engine::{now_ms, App, Cutoff, Pool, ScopeError};
use crate::report::{
    AuditReport, CheckHandling, CheckReport, FindingReport, Outcome, RecordOutcome, RecordReport,
    RecordSkipReason, Report,
};

use super::notices::Notices;

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

impl Incomplete {
    /// The report, or the error carrying it when part of the work is left for a retry.
    // The report is the error's payload by design; it is moved once per invocation.
    #[allow(clippy::result_large_err)]
    pub fn check(report: Report) -> Result<Report, Incomplete> {
        let t = &report.totals;
        if t.incomplete() == 0 {
            return Ok(report);
        }
        Err(Incomplete {
            failed: t.failed,
            deferred: t.deferred,
            listing_errors: t.listing_errors,
            remediated: t.remediated + t.rolled_back,
            report,
        })
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

/// Handles one SNS event. Bad records are reported as rejected and never fail the invocation.
pub async fn handle_event<P: Iot>(
    app: &Arc<App<P>>,
    event: &Value,
    cutoff: Cutoff,
) -> Result<Report, Incomplete> {
    let mut report = Report::new(app.config.dry_run);
    let mut notices = Notices::new(app.notifier.as_ref(), &app.config);
    let records = classify_event(event)
        .into_iter()
        .map(|r| (r.message_id, r.topic_arn, r.message));
    for (message_id, outcome) in outcomes(app, records, cutoff).await {
        notices.record(&outcome);
        report.push(RecordReport {
            message_id,
            outcome,
        });
    }
    report.notification_errors = notices.finish().await;
    Incomplete::check(report)
}

/// A message to work on: its tag, the topic it came from, what it carries.
pub(super) type Delivered<T> = (T, Option<String>, Result<Message, RejectReason>);

/// The outcome of each message, tagged with `T`, in order. The messages of one account and
/// region go one after another (they share its pacer, and side by side they would multiply
/// `MAX_CONCURRENCY`); those of different ones side by side, each at its own quota (SPEC §11).
pub(super) async fn outcomes<P: Iot, T>(
    app: &Arc<App<P>>,
    messages: impl IntoIterator<Item = Delivered<T>>,
    cutoff: Cutoff,
) -> Vec<(T, RecordOutcome)> {
    let mut by_quota: BTreeMap<QuotaKey, Vec<(usize, Delivered<T>)>> = BTreeMap::new();
    for (i, delivered) in messages.into_iter().enumerate() {
        let key = quota_key(delivered.1.as_deref(), &delivered.2);
        by_quota.entry(key).or_default().push((i, delivered));
    }
    let each = by_quota.into_values().map(|group| async move {
        let mut done = Vec::new();
        for (i, (tag, topic_arn, message)) in group {
            let outcome = match message {
                Err(reason) => RecordOutcome::Rejected {
                    reason: reason.to_string(),
                },
                Ok(message) => record_outcome(app, message, topic_arn.as_deref(), cutoff).await,
            };
            done.push((i, tag, outcome));
        }
        done
    });
    let mut all: Vec<_> = futures::future::join_all(each)
        .await
        .into_iter()
        .flatten()
        .collect();
    all.sort_by_key(|(i, _, _)| *i);
    all.into_iter()
        .map(|(_, tag, outcome)| (tag, outcome))
        .collect()
}

/// The account and region whose quota a message's calls would use, as far as it says.
type QuotaKey = (Option<String>, Option<String>);

fn quota_key(topic_arn: Option<&str>, message: &Result<Message, RejectReason>) -> QuotaKey {
    let account = match message {
        Ok(Message::Audit(audit)) => audit_account(audit.account_id.as_deref(), topic_arn)
            .ok()
            .flatten(),
        _ => None,
    };
    let region = topic_arn.and_then(topic_region);
    (account.map(str::to_owned), region.map(str::to_owned))
}

/// What one recognised message comes to: only a completed audit is acted on.
async fn record_outcome<P: Iot>(
    app: &Arc<App<P>>,
    message: Message,
    topic_arn: Option<&str>,
    cutoff: Cutoff,
) -> RecordOutcome {
    let skipped = |reason, task_id, detail| RecordOutcome::Skipped {
        reason,
        task_id,
        detail: Some(detail),
    };
    match message {
        Message::DetectViolation(v) => skipped(
            RecordSkipReason::DetectViolation,
            None,
            format!(
                "violation {} of thing {} ({})",
                v.violation_id.as_deref().unwrap_or("?"),
                v.thing_name.as_deref().unwrap_or("?"),
                v.violation_event_type.as_deref().unwrap_or("?"),
            ),
        ),
        Message::FindingNotification(f) => skipped(
            RecordSkipReason::FindingNotification,
            f.task_id,
            format!("finding {}", f.finding_id.as_deref().unwrap_or("?")),
        ),
        Message::Audit(audit) if audit.task_status != TaskStatus::Completed => skipped(
            RecordSkipReason::TaskNotCompleted,
            Some(audit.task_id),
            format!("taskStatus is {}", audit.task_status),
        ),
        Message::Audit(audit) => audit_outcome(app, &audit, topic_arn, cutoff).await,
    }
}

/// A completed audit, worked on in its account and region (SPEC §11). Its log lines name both.
async fn audit_outcome<P: Iot>(
    app: &Arc<App<P>>,
    audit: &AuditMessage,
    topic_arn: Option<&str>,
    cutoff: Cutoff,
) -> RecordOutcome {
    let (app, account) = match audit_app(app, audit, topic_arn).await {
        Ok(placed) => placed,
        Err(e) => {
            return RecordOutcome::Rejected {
                reason: e.to_string(),
            }
        }
    };
    let placed = app.reported(account.as_deref());
    let mut report = handle_audit(&app, audit, cutoff)
        .instrument(placed.span())
        .await;
    report.place(placed.account, placed.region);
    RecordOutcome::Processed(report)
}

/// The application of the audit's account and region, and the account the audit belongs to.
async fn audit_app<P: Iot>(
    app: &Arc<App<P>>,
    audit: &AuditMessage,
    topic_arn: Option<&str>,
) -> Result<(Arc<App<P>>, Option<String>), ScopeError> {
    let account = audit_account(audit.account_id.as_deref(), topic_arn)?;
    let region = topic_arn.and_then(topic_region);
    let app = app.for_audit(account, region, &audit.task_id).await?;
    Ok((app, account.map(str::to_owned)))
}

/// Handles one completed audit: lists the findings of the non-compliant overly permissive
/// check and works on them (or sends them to the fan-out queue); other checks are only reported.
pub async fn handle_audit<P: Iot>(
    app: &Arc<App<P>>,
    audit: &AuditMessage,
    cutoff: Cutoff,
) -> AuditReport {
    let mut report = AuditReport::new(audit);
    // The same check named twice is listed once (SPEC §10): a message cannot make the function
    // page the same findings again and burn the account's quota.
    let mut listed = HashSet::new();
    for detail in &audit.audit_details {
        let mut check = CheckReport::new(detail);
        if detail.is_remediable() && !listed.insert(detail.check_name.as_str()) {
            check.handling = CheckHandling::Repeated;
        } else if detail.is_remediable() {
            let sink = sink_for(app, detail, &mut check);
            let ctx = CheckContext {
                app,
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

/// Inline, or one job per policy on the fan-out queue when one is configured and the audit is
/// large enough (`FANOUT_INLINE_MAX_FINDINGS`).
fn sink_for<'a, P>(app: &'a App<P>, detail: &AuditDetail, check: &mut CheckReport) -> Sink<'a> {
    let queue = app.queue.as_ref();
    let inline_max = queue
        .and(app.config.fanout.as_ref())
        .map(|f| f.inline_max_findings);
    match (
        route(detail.non_compliant_resources_count, inline_max),
        queue,
    ) {
        (Route::FanOut, Some(enqueuer)) => {
            check.handling = CheckHandling::FindingsEnqueued;
            Sink::Queue {
                enqueuer,
                buffer: Vec::new(),
            }
        }
        _ => Sink::Inline(Pool::new(app.config.max_concurrency.get())),
    }
}

/// How the listing of a check's findings ended.
enum ListingEnd {
    Complete,
    /// Stopped at the cutoff: findings after that point were not seen.
    Deferred,
    /// `ListAuditFindings` failed after the SDK's retries.
    Failed(IotError),
}

struct CheckContext<'a, P> {
    app: &'a Arc<App<P>>,
    task_id: &'a str,
    check_name: &'a str,
    cutoff: Cutoff,
}

/// Where in-scope findings go.
enum Sink<'a> {
    /// Remediated in this invocation.
    Inline(Pool<()>),
    /// Sent to the fan-out queue, [`BATCH_SIZE`] jobs per call.
    Queue {
        enqueuer: &'a Enqueuer,
        buffer: Vec<Job>,
    },
}

impl Sink<'_> {
    /// Takes one in-scope finding; files the reports of whatever finished meanwhile.
    async fn take<P: Iot>(
        &mut self,
        ctx: &CheckContext<'_, P>,
        target: Target,
        report: &mut AuditReport,
    ) {
        match self {
            Sink::Inline(pool) => {
                if let Some(((), deferred)) = pool.start(ctx.app, (), target, ctx.cutoff).await {
                    report.push(deferred);
                }
                pool.finished(|(), finding| report.push(finding));
            }
            Sink::Queue { enqueuer, buffer } => {
                // The worker works the job in the audit's account and region.
                let scope = ctx.app.scope();
                buffer.push(Job {
                    task_id: Some(ctx.task_id.to_owned()),
                    finding_id: target.finding_id,
                    policy: target.policy,
                    account_id: scope.map(|s| s.account.clone()),
                    region: scope.map(|s| s.region.clone()),
                });
                if buffer.len() == BATCH_SIZE {
                    send_jobs(enqueuer, std::mem::take(buffer), report).await;
                }
            }
        }
    }

    /// Waits for what is in flight, or sends what is buffered.
    async fn finish(self, report: &mut AuditReport) {
        match self {
            Sink::Inline(mut pool) => pool.rest(|(), finding| report.push(finding)).await,
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
async fn handle_check<P: Iot>(
    ctx: &CheckContext<'_, P>,
    mut sink: Sink<'_>,
    report: &mut AuditReport,
) -> ListingEnd {
    // Read before any finding is acted on: without them a suppression made since the audit
    // ran would be missed, so a failure here fails the listing.
    let suppressions = match aws::suppressions(&ctx.app.iot, ctx.check_name).await {
        Ok(listed) => Suppressions::current(listed, now_ms()),
        Err(e) => {
            sink.finish(report).await;
            return ListingEnd::Failed(e);
        }
    };
    let mut screener =
        Screener::new(ctx.app.config.target_policy_prefix.clone()).with_suppressions(suppressions);
    let mut pages = pin!(aws::pages(
        &ctx.app.iot,
        ctx.task_id,
        ctx.check_name,
        Listed::Unsuppressed
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
            if let Some(target) = admit(&mut screener, finding, report) {
                sink.take(ctx, target, report).await;
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

/// Screens one listed finding: in scope, it goes on as a target; otherwise its skip is filed
/// in `report`. Shared by the audit and the rollback listings.
pub(super) fn admit(
    screener: &mut Screener,
    finding: Finding,
    report: &mut AuditReport,
) -> Option<Target> {
    match screener.screen(&finding) {
        Screen::Skip(reason) => {
            let skipped = Outcome::Skipped { reason };
            report.push(FindingReport::new(
                finding.finding_id,
                finding.policy.as_ref(),
                skipped,
            ));
            None
        }
        Screen::InScope(policy) => Some(Target {
            finding_id: finding.finding_id,
            policy,
        }),
    }
}
