//! Undoing one remediation (SPEC §9): restore the flagged version as the default, delete the
//! restrictive version that replaced it, and suppress the restored version's finding so that
//! the next audit does not remediate it again. The decisions are in [`crate::domain`].

use std::time::{SystemTime, UNIX_EPOCH};

use crate::aws::{Iot, IotError, Operation, SuppressionRequest};
use crate::domain::{
    civil_date, decide_rollback, restorable, suppression_description, Deleted, PolicyState,
    PolicyVersionRef, RollbackDecision, SkipReason, Target, OVERLY_PERMISSIVE_CHECK,
};
use crate::report::{FindingReport, Outcome};

use super::context::App;

/// What the rollback event says about every policy it undoes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RollbackContext {
    pub task_id: String,
    pub reason: Option<String>,
}

/// What this rollback did to the policy so far, for the report (also on failure).
#[derive(Debug, Default)]
struct Done {
    default_version_id: Option<String>,
    deleted: Vec<String>,
    would_delete: Vec<String>,
    suppressed_until: Option<String>,
}

/// Rolls one policy back. Never fails: an error becomes the `failed` outcome, with whatever was
/// already done in the report.
pub async fn roll_back<P: Iot>(
    app: &App<P>,
    rollback: &RollbackContext,
    target: Target,
) -> FindingReport {
    let mut done = Done::default();
    let outcome = match carry_out(app, rollback, &target.policy, &mut done).await {
        Ok(outcome) => outcome,
        Err(e) => Outcome::Failed {
            error: e.to_string(),
        },
    };
    FindingReport {
        default_version_id: done.default_version_id,
        deleted_version_ids: done.deleted,
        would_delete_version_ids: done.would_delete,
        suppressed_until: done.suppressed_until,
        ..FindingReport::for_target(&target, outcome)
    }
}

async fn carry_out<P: Iot>(
    app: &App<P>,
    rollback: &RollbackContext,
    flagged: &PolicyVersionRef,
    done: &mut Done,
) -> Result<Outcome, IotError> {
    let name = flagged.policy_name.as_str();
    let state = app.iot.get_policy(name).await?.map(|p| PolicyState {
        default_is_restrictive: app.restrictive.matches(&p.document),
        default_version_id: p.default_version_id,
    });
    done.default_version_id = state.as_ref().map(|s| s.default_version_id.clone());
    let skipped = |reason| Ok(Outcome::Skipped { reason });
    let restrictive = match decide_rollback(flagged, state.as_ref()) {
        RollbackDecision::Skip(reason) => return skipped(reason),
        RollbackDecision::Restore { restrictive } => restrictive,
    };
    let versions = app.iot.list_policy_versions(name).await?;
    if let Err(reason) = restorable(flagged, &restrictive, &versions) {
        return skipped(reason);
    }
    if app.config.dry_run {
        done.would_delete.push(restrictive);
        return Ok(Outcome::WouldRollBack);
    }
    // The suppression first: if it cannot be made, nothing is restored and a retry starts
    // over; once the flagged version is the default, no later audit remediates it again.
    suppress(app, rollback, flagged, done).await?;
    let restored = app.iot.set_default_version(name, &flagged.version_id);
    if !restored.await? {
        return skipped(SkipReason::RollbackUnavailable);
    }
    match app.iot.delete_policy_version(name, &restrictive).await? {
        Deleted::Yes => done.deleted.push(restrictive),
        Deleted::AlreadyGone => {}
        Deleted::InUse => {
            return Err(IotError::unexpected(
                Operation::DeletePolicyVersion,
                format!("the restrictive version {restrictive} is the default again: another writer changed the policy"),
            ))
        }
    }
    Ok(Outcome::RolledBack)
}

/// Suppresses the restored version's finding for `ROLLBACK_SUPPRESSION_DAYS` (none when 0), so
/// that the next audit does not undo the rollback; one that exists runs from now.
async fn suppress<P: Iot>(
    app: &App<P>,
    rollback: &RollbackContext,
    restored: &PolicyVersionRef,
    done: &mut Done,
) -> Result<(), IotError> {
    let days = app.config.rollback_suppression_days;
    if days == 0 {
        return Ok(());
    }
    let check = OVERLY_PERMISSIVE_CHECK;
    let exists = app.iot.suppression_exists(check, restored).await?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let expires = now + i64::from(days) * 86_400;
    let description = suppression_description(
        &civil_date(now),
        &rollback.task_id,
        rollback.reason.as_deref(),
    );
    let request = SuppressionRequest {
        check_name: check,
        policy: restored,
        expires_epoch_secs: expires,
        description: &description,
    };
    // One made between the look and the create is updated instead.
    if exists || !app.iot.create_suppression(&request).await? {
        app.iot.update_suppression(&request).await?;
    }
    done.suppressed_until = Some(civil_date(expires));
    Ok(())
}
