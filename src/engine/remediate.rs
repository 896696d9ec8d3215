//! What happens to one in-scope finding (SPEC §3.4, §5): read the policy, decide, carry the
//! decision out, and build the finding's report from what was done. The decisions themselves
//! are in [`crate::domain`]; the calls go through the [`Iot`] port.

use crate::aws::{Iot, IotError, IotErrorKind, Operation, PolicyDefault, Targets};
use crate::domain::{
    conflict_end, decide, duplicate_candidates, leftover_to_delete, others_created_since,
    replaced_deleted, slot_freed, slot_to_free, AfterCreate, Conflict, ConflictEnd, Decision,
    Deleted, PolicyState, PolicyVersionRef, ReplacedDelete, SkipReason, Target, VersionInfo,
};
use crate::report::{FindingReport, Outcome};

use super::context::App;

/// What this run did to the policy so far: kept as it goes, so that a failure part way still
/// reports every version it created or deleted.
#[derive(Debug, Default)]
struct Done {
    default_version_id: Option<String>,
    targets: Option<Targets>,
    new_version_id: Option<String>,
    deleted: Vec<String>,
    would_delete: Vec<String>,
    kept: Option<String>,
    replaced_document: Option<String>,
}

/// Why the install stopped part way.
#[derive(Debug)]
enum Interrupted {
    /// An error from IoT: the policy is `failed`.
    Iot(IotError),
    /// An answer that showed another writer at work: the policy's error, unless the policy,
    /// read again, turns out remediated by that writer.
    Conflict(IotError),
}

impl From<IotError> for Interrupted {
    fn from(e: IotError) -> Self {
        Self::Iot(e)
    }
}

/// Reads the policy, decides, and carries the decision out. Never fails: an error becomes the
/// `failed` outcome, with whatever was already done in the report.
pub async fn remediate<P: Iot>(app: &App<P>, target: Target) -> FindingReport {
    let mut done = Done::default();
    let outcome = match carry_out(app, &target.policy, &mut done).await {
        Ok(outcome) => outcome,
        Err(e) => Outcome::Failed {
            error: e.to_string(),
        },
    };
    FindingReport {
        default_version_id: done.default_version_id,
        new_version_id: done.new_version_id,
        deleted_version_ids: done.deleted,
        would_delete_version_ids: done.would_delete,
        kept_version_id: done.kept,
        replaced_document: done.replaced_document,
        target_count: done.targets.map(|t| t.count),
        more_targets: done.targets.is_some_and(|t| t.more),
        ..FindingReport::for_target(&target, outcome)
    }
}

async fn carry_out<P: Iot>(
    app: &App<P>,
    flagged: &PolicyVersionRef,
    done: &mut Done,
) -> Result<Outcome, IotError> {
    let name = flagged.policy_name.as_str();
    let current = app.iot.get_policy(name).await?;
    let state = current.as_ref().map(|p| policy_state(app, p));
    done.default_version_id = state.as_ref().map(|s| s.default_version_id.clone());
    let skipped = |reason| Outcome::Skipped { reason };
    match decide(flagged, state.as_ref(), app.config.after_create()) {
        Decision::Skip(reason) => Ok(skipped(reason)),
        Decision::RestrictiveFlagged => Ok(skipped(SkipReason::RestrictiveDocumentFlagged)),
        Decision::AlreadyRemediated { leftover } => {
            finish_earlier_run(app, flagged, leftover, done).await?;
            Ok(skipped(SkipReason::AlreadyRemediated))
        }
        Decision::Remediate { replaced, after } => {
            done.replaced_document = current.map(|p| p.document);
            if app.config.dry_run {
                match after {
                    AfterCreate::DeleteReplaced => done.would_delete.push(replaced),
                    AfterCreate::KeepReplaced => done.kept = Some(replaced),
                }
                // The impact preview: how many devices the change would reach.
                done.targets = blast_radius(app, name).await;
                return Ok(Outcome::WouldRemediate);
            }
            match install(app, name, &replaced, after, done).await {
                Ok(()) => Ok(Outcome::Remediated),
                Err(Interrupted::Iot(e)) => Err(e),
                Err(Interrupted::Conflict(c)) => settle(app, flagged, after, c, done).await,
            }
        }
    }
}

fn policy_state<P: Iot>(app: &App<P>, policy: &PolicyDefault) -> PolicyState {
    PolicyState {
        default_version_id: policy.default_version_id.clone(),
        default_is_restrictive: app.restrictive.matches(&policy.document),
    }
}

/// A conflict met while installing: one more `GetPolicy` tells a lost race (another delivery
/// of the event put the restrictive document in force) from a real conflict (SPEC §5). The
/// loser finishes as the already-remediated path does, duplicates tidied; a real conflict
/// fails the policy.
async fn settle<P: Iot>(
    app: &App<P>,
    flagged: &PolicyVersionRef,
    after: AfterCreate,
    conflict: IotError,
    done: &mut Done,
) -> Result<Outcome, IotError> {
    let name = flagged.policy_name.as_str();
    let current = app.iot.get_policy(name).await?;
    let state = current.as_ref().map(|p| policy_state(app, p));
    match conflict_end(flagged, state.as_ref(), after) {
        ConflictEnd::LostRace { leftover } => {
            tracing::info!(policy = name, %conflict, "another run remediated the policy first");
            finish_earlier_run(app, flagged, leftover, done).await?;
            Ok(Outcome::Skipped {
                reason: SkipReason::AlreadyRemediated,
            })
        }
        ConflictEnd::Stands => Err(conflict),
    }
}

/// Already remediated: one look at the versions finishes what an interrupted or concurrent run
/// left, the flagged version and restrictive duplicates next to the default.
async fn finish_earlier_run<P: Iot>(
    app: &App<P>,
    flagged: &PolicyVersionRef,
    leftover: Option<String>,
    done: &mut Done,
) -> Result<(), IotError> {
    let name = flagged.policy_name.as_str();
    let versions = app.iot.list_policy_versions(name).await?;
    let leftover = leftover_to_delete(leftover, &versions);
    if app.config.dry_run {
        done.would_delete.extend(leftover);
        return Ok(());
    }
    if let Some(id) = leftover {
        if app.iot.delete_policy_version(name, &id).await? == Deleted::Yes {
            done.deleted.push(id);
        }
    }
    tidy_duplicates(app, name, &versions, &flagged.version_id, done).await
}

/// Creates the restrictive default in place of `replaced`, then deletes or keeps `replaced`,
/// and tidies duplicates when another writer was here meanwhile.
async fn install<P: Iot>(
    app: &App<P>,
    name: &str,
    replaced: &str,
    after: AfterCreate,
    done: &mut Done,
) -> Result<(), Interrupted> {
    let (new_version, mut others_created) = create_default(app, name, replaced, done).await?;
    done.new_version_id = Some(new_version);
    done.targets = blast_radius(app, name).await;
    match after {
        AfterCreate::DeleteReplaced => {
            let deleted = app.iot.delete_policy_version(name, replaced).await?;
            match replaced_deleted(deleted, replaced).map_err(conflict)? {
                ReplacedDelete::Deleted => done.deleted.push(replaced.to_owned()),
                ReplacedDelete::OtherRunWasHere => others_created = true,
            }
        }
        AfterCreate::KeepReplaced => done.kept = Some(replaced.to_owned()),
    }
    if others_created {
        let versions = app.iot.list_policy_versions(name).await?;
        tidy_duplicates(app, name, &versions, replaced, done).await?;
    }
    Ok(())
}

/// Creates the restrictive document as the new default. At the 5-version limit, frees the slot
/// the domain names and tries once more; a second limit error is a conflict (another writer took
/// the slot). Returns the new version id and whether some other version was created since the
/// versions this run knew of (a concurrent run, or a timed-out attempt that IoT applied after
/// all): then duplicates may exist.
async fn create_default<P: Iot>(
    app: &App<P>,
    name: &str,
    replaced: &str,
    done: &mut Done,
) -> Result<(String, bool), Interrupted> {
    let document = app.restrictive.document();
    match app.iot.create_default_version(name, document).await {
        Ok(created) => {
            let others = others_created_since(&created, [replaced]);
            Ok((created, others))
        }
        Err(e) if e.kind == IotErrorKind::VersionsLimit => {
            let versions = app.iot.list_policy_versions(name).await?;
            let oldest = slot_to_free(&versions, replaced).map_err(conflict)?;
            let deleted = app.iot.delete_policy_version(name, oldest).await?;
            if slot_freed(deleted, oldest).map_err(conflict)? {
                done.deleted.push(oldest.to_owned());
            }
            let created = match app.iot.create_default_version(name, document).await {
                Err(e) if e.kind == IotErrorKind::VersionsLimit => {
                    return Err(Interrupted::Conflict(e))
                }
                other => other?,
            };
            let known = versions.iter().map(|v| v.version_id.as_str());
            let others = others_created_since(&created, known);
            Ok((created, others))
        }
        Err(e) => Err(e.into()),
    }
}

/// Deletes restrictive versions that a concurrent run (or a retried create) left next to the
/// default, so the policy ends with exactly one restrictive version: the default. Only
/// non-default versions newer than `after` are read, and only those whose document is the
/// restrictive one are deleted; IoT itself refuses to delete the default.
async fn tidy_duplicates<P: Iot>(
    app: &App<P>,
    name: &str,
    versions: &[VersionInfo],
    after: &str,
    done: &mut Done,
) -> Result<(), IotError> {
    for candidate in duplicate_candidates(versions, after) {
        let id = candidate.version_id.as_str();
        let Some(document) = app.iot.get_policy_version(name, id).await? else {
            continue;
        };
        if app.restrictive.matches(&document)
            && app.iot.delete_policy_version(name, id).await? == Deleted::Yes
        {
            tracing::info!(
                policy = name,
                version = id,
                "deleted a duplicate restrictive version"
            );
            done.deleted.push(id.to_owned());
        }
    }
    Ok(())
}

/// One `ListTargetsForPolicy` page. The change is made (or previewed) either way: a failure
/// here costs the report its count, not the policy its remediation.
async fn blast_radius<P: Iot>(app: &App<P>, name: &str) -> Option<Targets> {
    match app.iot.list_targets(name).await {
        Ok(targets) => Some(targets),
        Err(e) => {
            tracing::warn!(policy = name, error = %e, "could not count the policy's targets");
            None
        }
    }
}

/// A conflict, as the error it fails the policy with unless settled: named after the call whose
/// answer showed it.
fn conflict(c: Conflict) -> Interrupted {
    let operation = match c {
        Conflict::ReplacedNoLongerDefault(_) | Conflict::NoSlotToFree => {
            Operation::ListPolicyVersions
        }
        Conflict::SlotBecameDefault(_) | Conflict::ReplacedIsDefaultAgain(_) => {
            Operation::DeletePolicyVersion
        }
    };
    Interrupted::Conflict(IotError::unexpected(operation, c.to_string()))
}
