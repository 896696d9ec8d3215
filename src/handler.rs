//! One invocation: every SNS record, every in-scope finding, one report (SPEC §2–§6).

use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::sync::Arc;

use futures::{FutureExt, StreamExt};
use serde_json::Value;
use thiserror::Error;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::apply::Remediator;
use crate::findings;
use crate::message::{classify_event, AuditMessage, Message, TaskStatus};
use crate::plan::{Screen, Screener};
use crate::report::{
    AuditReport, CheckReport, FindingReport, Outcome, RecordOutcome, RecordReport,
    RecordSkipReason, Report,
};

/// The invocation fails after everything else is done when part of the work could not be
/// completed, so that Lambda's asynchronous retry (and then the on-failure destination) takes
/// over. Retrying is safe: a second run skips what is already remediated.
#[derive(Debug, Error)]
#[error(
    "{failed} in-scope policies could not be remediated and {listing_errors} finding lists could not be read to the end; \
     {remediated} remediated in this run. Each failure is logged with its policy name and error"
)]
pub struct Incomplete {
    pub failed: usize,
    pub listing_errors: usize,
    pub remediated: usize,
    /// Everything that was done, failures included (also logged line by line).
    pub report: Report,
}

/// Handles one Lambda event. Bad records are reported as rejected and never fail the invocation.
pub async fn handle_event(
    remediator: &Arc<Remediator>,
    event: &Value,
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
                RecordOutcome::Processed(handle_audit(remediator, &audit).await)
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
            listing_errors: t.listing_errors,
            remediated: t.remediated,
            report,
        });
    }
    Ok(report)
}

/// Handles one completed audit: lists the findings of the non-compliant overly permissive
/// check and works on them; other checks are only reported.
pub async fn handle_audit(remediator: &Arc<Remediator>, audit: &AuditMessage) -> AuditReport {
    let mut report = AuditReport::new(audit);
    for detail in &audit.audit_details {
        let mut check = CheckReport::new(detail);
        if detail.is_remediable() {
            if let Err(e) =
                handle_check(remediator, &audit.task_id, &detail.check_name, &mut report).await
            {
                tracing::error!(task_id = %audit.task_id, check = %detail.check_name, error = %e,
                    "could not list every finding; the invocation will fail so Lambda retries");
                check.listing_error = Some(e.to_string());
            }
        }
        report.push_check(check);
    }
    report
}

/// Streams the findings of one check into a pool of at most `MAX_CONCURRENCY` policies at once.
/// A page is fetched only when a worker slot is free, so memory stays flat on large audits.
/// Returns the listing error, if paging stopped early; the findings seen before it are handled.
async fn handle_check(
    remediator: &Arc<Remediator>,
    task_id: &str,
    check_name: &str,
    report: &mut AuditReport,
) -> Result<(), crate::iot_error::IotError> {
    let slots = Arc::new(Semaphore::new(remediator.config().max_concurrency.get()));
    let mut workers = JoinSet::new();
    let mut screener = Screener::new(remediator.config().target_policy_prefix.clone());
    let mut pages = pin!(findings::pages(remediator.client(), task_id, check_name));
    let mut listing = Ok(());
    while let Some(page) = pages.next().await {
        let page = match page {
            Ok(page) => page,
            Err(e) => {
                listing = Err(e);
                break;
            }
        };
        for finding in page {
            let target = match screener.screen(&finding) {
                Screen::Skip(reason) => {
                    report.push(FindingReport::new(
                        finding.finding_id,
                        finding.policy.as_ref(),
                        Outcome::Skipped { reason },
                    ));
                    continue;
                }
                Screen::InScope(target) => target,
            };
            // The semaphore is never closed, so acquiring only waits for a free slot.
            let Ok(slot) = slots.clone().acquire_owned().await else {
                break;
            };
            let remediator = Arc::clone(remediator);
            workers.spawn(async move {
                let report = remediate_guarded(&remediator, finding.finding_id, &target).await;
                drop(slot);
                report
            });
            while let Some(done) = workers.try_join_next() {
                push_joined(report, done);
            }
        }
    }
    while let Some(done) = workers.join_next().await {
        push_joined(report, done);
    }
    listing
}

/// A bug must cost one policy, not the invocation: a panic becomes that policy's failure.
async fn remediate_guarded(
    remediator: &Remediator,
    finding_id: Option<String>,
    target: &crate::findings::PolicyVersionRef,
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

fn push_joined(report: &mut AuditReport, joined: Result<FindingReport, tokio::task::JoinError>) {
    match joined {
        Ok(finding) => report.push(finding),
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

impl From<Incomplete> for lambda_runtime::Diagnostic {
    fn from(e: Incomplete) -> Self {
        Self {
            error_type: "RemediationIncomplete".into(),
            error_message: e.to_string(),
        }
    }
}
