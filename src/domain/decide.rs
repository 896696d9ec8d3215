//! Decisions for one in-scope policy (SPEC §3.4, §5): pure functions over plain data.

use super::finding::PolicyVersionRef;
use super::screen::SkipReason;
use thiserror::Error;

use super::versions::{oldest_non_default, same_version, VersionInfo};

/// A policy as `GetPolicy` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyState {
    pub default_version_id: String,
    /// Whether the default document equals the restrictive one as a JSON value.
    pub default_is_restrictive: bool,
}

/// What to do with the replaced version once the restrictive default is in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterCreate {
    DeleteReplaced,
    KeepReplaced,
}

/// The decision for one in-scope policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Skip(SkipReason),
    /// Already remediated. When an interrupted earlier run left the flagged permissive version
    /// behind as a non-default version, `leftover` names it for deletion.
    AlreadyRemediated {
        leftover: Option<String>,
    },
    /// The audit flagged the restrictive document itself.
    RestrictiveFlagged,
    /// Install the restrictive document as the new default in place of `replaced`.
    Remediate {
        replaced: String,
        after: AfterCreate,
    },
}

/// Decides what to do with the policy a finding names, given its current state (`None`: gone)
/// and what becomes of a replaced version (`KEEP_REPLACED_VERSION`). Dry run is no input: it
/// changes only whether the decision is carried out.
pub fn decide(
    flagged: &PolicyVersionRef,
    state: Option<&PolicyState>,
    after: AfterCreate,
) -> Decision {
    let Some(state) = state else {
        return Decision::Skip(SkipReason::PolicyNotFound);
    };
    let flagged_is_default = same_version(&flagged.version_id, &state.default_version_id);
    match (state.default_is_restrictive, flagged_is_default) {
        (true, true) => Decision::RestrictiveFlagged,
        (true, false) => Decision::AlreadyRemediated {
            leftover: (after == AfterCreate::DeleteReplaced).then(|| flagged.version_id.clone()),
        },
        (false, false) => Decision::Skip(SkipReason::StaleFinding),
        (false, true) => Decision::Remediate {
            replaced: state.default_version_id.clone(),
            after,
        },
    }
}

/// What a `DeletePolicyVersion` found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deleted {
    Yes,
    /// The version was already gone.
    AlreadyGone,
    /// IoT refused: the version is the default or in use.
    InUse,
}

/// The policy changed under the run in a way that no rule here may guess past. The policy is
/// read again ([`conflict_end`]): unless the restrictive document is in force by then, the
/// policy is `failed`, and Lambda's retry decides again from a fresh read.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum Conflict {
    #[error("at the version limit and version {0} is no longer the default: the policy changed during remediation")]
    ReplacedNoLongerDefault(String),
    #[error("at the version limit but no non-default version to delete")]
    NoSlotToFree,
    #[error("version {0} became the default while freeing a slot")]
    SlotBecameDefault(String),
    #[error("the replaced version {0} is the default again: another writer changed the policy")]
    ReplacedIsDefaultAgain(String),
}

/// How a [`Conflict`] ends, judged on the policy as a second `GetPolicy` shows it (SPEC §5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConflictEnd {
    /// The restrictive document is the default: a concurrent run (another delivery of the same
    /// event) got there first. The policy is already remediated; finish as that path does,
    /// `leftover` as in [`Decision::AlreadyRemediated`].
    LostRace { leftover: Option<String> },
    /// Anything else (another document in force, the policy gone): the conflict is real.
    Stands,
}

/// The same rules as [`decide`] on the fresh read: only the state it calls already remediated
/// ends the conflict; remediating again would only race the other writer once more.
pub fn conflict_end(
    flagged: &PolicyVersionRef,
    state: Option<&PolicyState>,
    after: AfterCreate,
) -> ConflictEnd {
    match decide(flagged, state, after) {
        Decision::AlreadyRemediated { leftover } => ConflictEnd::LostRace { leftover },
        Decision::Skip(_) | Decision::RestrictiveFlagged | Decision::Remediate { .. } => {
            ConflictEnd::Stands
        }
    }
}

/// The already-remediated path: the flagged version to delete, if the decision named one and it
/// is still there as a non-default version (an interrupted earlier run left it).
pub fn leftover_to_delete(leftover: Option<String>, versions: &[VersionInfo]) -> Option<String> {
    leftover.filter(|id| {
        versions
            .iter()
            .any(|v| v.version_id == *id && !v.is_default)
    })
}

/// At the 5-version limit: the version to delete to make room. The version this run replaces
/// must still be the default; if it is not, the policy changed since `GetPolicy` (a concurrent
/// run, or a timed-out create that IoT applied after all) and the oldest version may be the one
/// to keep, so no slot is freed.
pub fn slot_to_free<'a>(versions: &'a [VersionInfo], replaced: &str) -> Result<&'a str, Conflict> {
    if !versions
        .iter()
        .any(|v| v.version_id == replaced && v.is_default)
    {
        return Err(Conflict::ReplacedNoLongerDefault(replaced.to_owned()));
    }
    oldest_non_default(versions)
        .map(|v| v.version_id.as_str())
        .ok_or(Conflict::NoSlotToFree)
}

/// After the delete that freed a slot: whether this run deleted it (and reports so). Gone
/// already is fine (someone freed it); the default is not.
pub fn slot_freed(deleted: Deleted, oldest: &str) -> Result<bool, Conflict> {
    match deleted {
        Deleted::Yes => Ok(true),
        Deleted::AlreadyGone => Ok(false),
        Deleted::InUse => Err(Conflict::SlotBecameDefault(oldest.to_owned())),
    }
}

/// After the delete of the replaced version, once the restrictive default is in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplacedDelete {
    /// This run deleted it.
    Deleted,
    /// It was gone: only a concurrent run of the same event deletes it first, and that run also
    /// created a restrictive version, so one of the two must go (look for duplicates).
    OtherRunWasHere,
}

pub fn replaced_deleted(deleted: Deleted, replaced: &str) -> Result<ReplacedDelete, Conflict> {
    match deleted {
        Deleted::Yes => Ok(ReplacedDelete::Deleted),
        Deleted::AlreadyGone => Ok(ReplacedDelete::OtherRunWasHere),
        Deleted::InUse => Err(Conflict::ReplacedIsDefaultAgain(replaced.to_owned())),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::domain::versions::tests::version;

    /// The flagged version of `WS_AUDIT_p`, for the tests of this folder.
    pub(in crate::domain) fn flagged(version: &str) -> PolicyVersionRef {
        PolicyVersionRef {
            policy_name: "WS_AUDIT_p".into(),
            version_id: version.into(),
        }
    }

    /// A policy state, for the tests of this folder.
    pub(in crate::domain) fn state(default: &str, restrictive: bool) -> PolicyState {
        PolicyState {
            default_version_id: default.into(),
            default_is_restrictive: restrictive,
        }
    }

    const DELETE: AfterCreate = AfterCreate::DeleteReplaced;
    const KEEP: AfterCreate = AfterCreate::KeepReplaced;

    #[test]
    fn decide_policy_gone() {
        assert_eq!(
            decide(&flagged("1"), None, DELETE),
            Decision::Skip(SkipReason::PolicyNotFound)
        );
    }

    #[test]
    fn decide_remediate() {
        assert_eq!(
            decide(&flagged("1"), Some(&state("1", false)), DELETE),
            Decision::Remediate {
                replaced: "1".into(),
                after: AfterCreate::DeleteReplaced
            }
        );
        assert_eq!(
            decide(&flagged("1"), Some(&state("1", false)), KEEP),
            Decision::Remediate {
                replaced: "1".into(),
                after: AfterCreate::KeepReplaced
            }
        );
    }

    #[test]
    fn decide_stale_finding() {
        assert_eq!(
            decide(&flagged("1"), Some(&state("2", false)), DELETE),
            Decision::Skip(SkipReason::StaleFinding)
        );
    }

    #[test]
    fn decide_already_remediated_finishes_an_interrupted_run() {
        assert_eq!(
            decide(&flagged("1"), Some(&state("2", true)), DELETE),
            Decision::AlreadyRemediated {
                leftover: Some("1".into())
            }
        );
        assert_eq!(
            decide(&flagged("1"), Some(&state("2", true)), KEEP),
            Decision::AlreadyRemediated { leftover: None }
        );
    }

    #[test]
    fn decide_restrictive_document_itself_flagged() {
        assert_eq!(
            decide(&flagged("2"), Some(&state("2", true)), DELETE),
            Decision::RestrictiveFlagged
        );
        // Version ids compare as numbers.
        assert_eq!(
            decide(&flagged("02"), Some(&state("2", true)), DELETE),
            Decision::RestrictiveFlagged
        );
    }

    #[test]
    fn a_conflict_ends_well_only_when_the_restrictive_document_is_in_force() {
        // Another run's restrictive version 5 is the default.
        assert_eq!(
            conflict_end(&flagged("1"), Some(&state("5", true)), DELETE),
            ConflictEnd::LostRace {
                leftover: Some("1".into())
            }
        );
        assert_eq!(
            conflict_end(&flagged("1"), Some(&state("5", true)), KEEP),
            ConflictEnd::LostRace { leftover: None }
        );
        // Another document in force, the flagged one in force again, the policy gone.
        for fresh in [Some(state("5", false)), Some(state("1", false)), None] {
            assert_eq!(
                conflict_end(&flagged("1"), fresh.as_ref(), KEEP),
                ConflictEnd::Stands,
                "{fresh:?}"
            );
        }
    }

    #[test]
    fn a_leftover_is_deleted_only_while_it_is_a_non_default_version() {
        let versions = [version("1", false, Some(1)), version("2", true, Some(2))];
        assert_eq!(
            leftover_to_delete(Some("1".into()), &versions),
            Some("1".into())
        );
        assert_eq!(leftover_to_delete(Some("2".into()), &versions), None);
        assert_eq!(leftover_to_delete(Some("7".into()), &versions), None);
        assert_eq!(leftover_to_delete(None, &versions), None);
    }

    #[test]
    fn the_slot_freed_at_the_limit_is_the_oldest_while_the_replaced_version_is_default() {
        let versions = [
            version("1", true, Some(1)),
            version("3", false, Some(3)),
            version("2", false, Some(2)),
        ];
        assert_eq!(slot_to_free(&versions, "1"), Ok("2"));
        // The default changed since GetPolicy: free nothing.
        assert_eq!(
            slot_to_free(&versions, "3"),
            Err(Conflict::ReplacedNoLongerDefault("3".into()))
        );
        assert_eq!(
            slot_to_free(&versions, "9"),
            Err(Conflict::ReplacedNoLongerDefault("9".into()))
        );
        assert_eq!(
            slot_to_free(&[version("1", true, None)], "1"),
            Err(Conflict::NoSlotToFree)
        );
    }

    #[test]
    fn what_a_delete_found_decides_what_follows() {
        assert_eq!(slot_freed(Deleted::Yes, "2"), Ok(true));
        assert_eq!(slot_freed(Deleted::AlreadyGone, "2"), Ok(false));
        assert_eq!(
            slot_freed(Deleted::InUse, "2"),
            Err(Conflict::SlotBecameDefault("2".into()))
        );
        assert_eq!(
            replaced_deleted(Deleted::Yes, "1"),
            Ok(ReplacedDelete::Deleted)
        );
        assert_eq!(
            replaced_deleted(Deleted::AlreadyGone, "1"),
            Ok(ReplacedDelete::OtherRunWasHere)
        );
        let err = replaced_deleted(Deleted::InUse, "1").unwrap_err();
        assert_eq!(
            err.to_string(),
            "the replaced version 1 is the default again: another writer changed the policy"
        );
    }
}
