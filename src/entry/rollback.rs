//! The rollback door (SPEC §9): `{"rollback": {"taskId", "policyNames", "reason"}}` from a
//! person or a tool. The task's findings are listed again (suppressed ones included) and every
//! in-scope policy the event names is rolled back; the answer is a report shaped like an audit's.

use std::pin::pin;
use std::sync::Arc;

use futures::StreamExt;
use serde_json::Value;
use tracing::Instrument;

use crate::aws::{self, Iot, Listed};
use crate::domain::{parse_rollback, RollbackRequest, Screener, OVERLY_PERMISSIVE_CHECK};
use crate::engine::{roll_back, App, Cutoff, Pool, RollbackContext};
use crate::report::{
    AuditReport, CheckReport, NotificationKind, RecordOutcome, RecordReport, Report,
};

use super::notices::Notices;
use super::sns::{admit, Incomplete};

/// Handles one rollback event. A malformed one is a rejected record (a retry would not help).
pub async fn handle_rollback<P: Iot>(
    app: &Arc<App<P>>,
    event: &Value,
    cutoff: Cutoff,
) -> Result<Report, Incomplete> {
    let mut report = Report::new(app.config.dry_run);
    let outcome = match parse_rollback(event) {
        Err(e) => RecordOutcome::Rejected {
            reason: e.to_string(),
        },
        Ok(request) => {
            let (outcome, errors) = rollback_outcome(app, request, cutoff).await;
            report.notification_errors = errors;
            outcome
        }
    };
    report.push(RecordReport {
        message_id: None,
        outcome,
    });
    Incomplete::check(report)
}

/// A rollback in the account and region it names (SPEC §11), then notified; the outcome and
/// the notifications that could not be sent.
async fn rollback_outcome<P: Iot>(
    app: &Arc<App<P>>,
    request: RollbackRequest,
    cutoff: Cutoff,
) -> (RecordOutcome, u64) {
    tracing::info!(task_id = %request.task_id, policies = ?request.policy_names,
        account = request.account_id.as_deref().unwrap_or("-"),
        region = request.region.as_deref().unwrap_or("-"),
        reason = request.reason.as_deref().unwrap_or("-"), "rollback requested");
    let account = request.account_id.as_deref();
    let region = request.region.as_deref();
    let app = match app.for_audit(account, region, &request.task_id).await {
        Ok(app) => app,
        Err(e) => {
            let reason = e.to_string();
            return (RecordOutcome::Rejected { reason }, 0);
        }
    };
    let placed = app.reported(account);
    let screener = Screener::new(app.config.target_policy_prefix.clone())
        .for_rollback(request.policy_names.as_deref());
    let rollback = Arc::new(RollbackContext {
        task_id: request.task_id,
        reason: request.reason,
    });
    let mut done = roll_back_task(&app, Arc::clone(&rollback), screener, cutoff)
        .instrument(placed.span())
        .await;
    done.place(placed.account, placed.region);
    let mut notices = Notices::new(app.notifier.as_ref(), &app.config);
    notices.audit(
        NotificationKind::Rollback,
        &done,
        rollback.reason.as_deref(),
    );
    (RecordOutcome::Processed(done), notices.finish().await)
}

/// Lists the task's findings and rolls back each in-scope policy, at most `MAX_CONCURRENCY` at
/// once. A listing that fails part way is reported and fails the invocation.
async fn roll_back_task<P: Iot>(
    app: &Arc<App<P>>,
    rollback: Arc<RollbackContext>,
    mut screener: Screener,
    cutoff: Cutoff,
) -> AuditReport {
    let task_id = rollback.task_id.clone();
    let mut report = AuditReport::for_task(&task_id);
    let mut check = CheckReport::rollback(OVERLY_PERMISSIVE_CHECK);
    let mut pool: Pool<()> = Pool::new(app.config.max_concurrency.get());
    let mut pages = pin!(aws::pages(
        &app.iot,
        &task_id,
        OVERLY_PERMISSIVE_CHECK,
        Listed::All
    ));
    while let Some(page) = pages.next().await {
        let more = page.as_ref().is_ok_and(|p| p.more);
        let page = match page {
            Ok(page) => page,
            Err(e) => {
                tracing::error!(task_id = %task_id, error = %e,
                    "could not list every finding of the task; the rollback is incomplete");
                check.listing_error = Some(e.to_string());
                break;
            }
        };
        for finding in page.findings {
            let Some(target) = admit(&mut screener, finding, &mut report) else {
                continue;
            };
            let (app, rollback) = (Arc::clone(app), Arc::clone(&rollback));
            let work = move |target| async move { roll_back(&app, &rollback, target).await };
            if let Some(((), deferred)) = pool.start_with((), target, cutoff, work).await {
                report.push(deferred);
            }
            pool.finished(|(), finding| report.push(finding));
        }
        if more && cutoff.passed() {
            tracing::warn!(task_id = %task_id,
                "deadline near: stopped listing findings; the rollback is incomplete and fails so Lambda retries");
            check.listing_deferred = true;
            break;
        }
    }
    pool.rest(|(), finding| report.push(finding)).await;
    report.push_check(check);
    report
}
