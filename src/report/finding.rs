//! One finding's outcome and report, its log line, and the counts of outcomes.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::domain::{PolicyVersionRef, SkipReason, Target};

/// What happened to one finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Remediated,
    WouldRemediate,
    Skipped {
        reason: SkipReason,
    },
    Failed {
        error: String,
    },
    /// Not started: the invocation's deadline was near. Lambda's retry picks it up.
    Deferred,
    /// Sent to the fan-out queue as a job: a worker invocation remediates it.
    Enqueued,
    /// Rollback: the flagged version is the default again, the restrictive one deleted.
    RolledBack,
    /// Rollback, dry run: it would be rolled back.
    WouldRollBack,
}

impl Outcome {
    /// Work that a retry could still complete: a fan-out job with this outcome goes back to
    /// the queue.
    pub fn is_incomplete(&self) -> bool {
        matches!(self, Outcome::Failed { .. } | Outcome::Deferred)
    }
}

/// One finding and what was done about it. Version ids say exactly which versions were
/// created and deleted, and the replaced document is kept so nothing is lost.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FindingReport {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finding_id: Option<String>,
    pub policy_name: Option<String>,
    pub flagged_version_id: Option<String>,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// The default version when the policy was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_version_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_version_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deleted_version_ids: Vec<String>,
    /// Dry run: versions a real run would delete.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub would_delete_version_ids: Vec<String>,
    /// The replaced version, kept for rollback (`KEEP_REPLACED_VERSION`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept_version_id: Option<String>,
    /// The permissive document that was (or would be) replaced, exactly as IoT returned it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaced_document: Option<String>,
    /// How many targets (certificates, thing groups, identities) the policy is attached to, as
    /// far as one `ListTargetsForPolicy` page shows: the blast radius of the change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_count: Option<usize>,
    /// More targets than that one page holds.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub more_targets: bool,
    /// Rollback: the suppression that keeps the next audit from undoing it, when one was made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppressed_until: Option<String>,
}

impl FindingReport {
    pub fn new(
        finding_id: Option<String>,
        policy: Option<&PolicyVersionRef>,
        outcome: Outcome,
    ) -> Self {
        Self {
            finding_id,
            policy_name: policy.map(|p| p.policy_name.clone()),
            flagged_version_id: policy.map(|p| p.version_id.clone()),
            outcome,
            default_version_id: None,
            new_version_id: None,
            deleted_version_ids: Vec::new(),
            would_delete_version_ids: Vec::new(),
            kept_version_id: None,
            replaced_document: None,
            target_count: None,
            more_targets: false,
            suppressed_until: None,
        }
    }

    /// An in-scope finding with nothing done yet.
    pub fn for_target(target: &Target, outcome: Outcome) -> Self {
        Self::new(target.finding_id.clone(), Some(&target.policy), outcome)
    }

    /// The one log line for this decision.
    pub fn log(&self, task_id: &str) {
        let policy = self.policy_name.as_deref().unwrap_or("-");
        let flagged = self.flagged_version_id.as_deref().unwrap_or("-");
        let finding = self.finding_id.as_deref().unwrap_or("-");
        match &self.outcome {
            Outcome::Remediated | Outcome::WouldRemediate | Outcome::Failed { .. } => {
                self.log_change(task_id)
            }
            Outcome::RolledBack | Outcome::WouldRollBack => self.log_rollback(task_id),
            Outcome::Skipped {
                reason: SkipReason::RestrictiveDocumentFlagged,
            } => tracing::error!(
                task_id,
                finding,
                policy,
                flagged_version = flagged,
                outcome = "skipped",
                reason = "restrictive_document_flagged",
                "the audit flagged the restrictive document itself; not changing it again"
            ),
            Outcome::Skipped {
                reason: SkipReason::UnverifiedJob,
            } => tracing::error!(
                task_id,
                finding,
                policy,
                flagged_version = flagged,
                outcome = "skipped",
                reason = "unverified_job",
                "a fan-out job its audit finding does not back; done with no write"
            ),
            Outcome::Skipped { reason } => tracing::info!(
                task_id, finding, policy, flagged_version = flagged,
                default_version = self.default_version_id.as_deref().unwrap_or("-"),
                deleted_versions = %self.deleted_version_ids.join(","), outcome = "skipped",
                reason = ?reason, "finding skipped"
            ),
            Outcome::Deferred => tracing::warn!(
                task_id,
                finding,
                policy,
                flagged_version = flagged,
                outcome = "deferred",
                "deadline near: policy not started; a retry will handle it"
            ),
            Outcome::Enqueued => tracing::info!(
                task_id,
                finding,
                policy,
                flagged_version = flagged,
                outcome = "enqueued",
                "job sent to the fan-out queue"
            ),
        }
    }

    /// A remediation done, previewed or failed: the versions involved, the blast radius and
    /// the replaced document, so that the log alone is enough to undo it.
    fn log_change(&self, task_id: &str) {
        let policy = self.policy_name.as_deref().unwrap_or("-");
        let flagged = self.flagged_version_id.as_deref().unwrap_or("-");
        let finding = self.finding_id.as_deref().unwrap_or("-");
        let deleted = self.deleted_version_ids.join(",");
        let new = self.new_version_id.as_deref().unwrap_or("-");
        let kept = self.kept_version_id.as_deref().unwrap_or("-");
        let replaced = self.replaced_document.as_deref().unwrap_or("-");
        let targets = self.target_count.map_or(-1, |n| n as i64);
        let more_targets = self.more_targets;
        match &self.outcome {
            Outcome::WouldRemediate => tracing::info!(
                task_id, finding, policy, flagged_version = flagged,
                would_delete_versions = %self.would_delete_version_ids.join(","),
                kept_version = kept, targets, more_targets, replaced_document = replaced,
                outcome = "would_remediate", "dry run: policy would be remediated"
            ),
            Outcome::Failed { error } => tracing::error!(
                task_id, finding, policy, flagged_version = flagged, new_version = new,
                deleted_versions = %deleted, replaced_document = replaced,
                outcome = "failed", error = %error, "policy could not be remediated"
            ),
            _ => tracing::info!(
                task_id, finding, policy, flagged_version = flagged, new_version = new,
                deleted_versions = %deleted, kept_version = kept, targets, more_targets,
                replaced_document = replaced, outcome = "remediated", "policy remediated"
            ),
        }
    }

    fn log_rollback(&self, task_id: &str) {
        let policy = self.policy_name.as_deref().unwrap_or("-");
        let restored = self.flagged_version_id.as_deref().unwrap_or("-");
        let finding = self.finding_id.as_deref().unwrap_or("-");
        let until = self.suppressed_until.as_deref().unwrap_or("-");
        if self.outcome == Outcome::WouldRollBack {
            tracing::info!(
                task_id, finding, policy, restored_version = restored,
                would_delete_versions = %self.would_delete_version_ids.join(","),
                outcome = "would_roll_back", "dry run: policy would be rolled back"
            );
        } else {
            tracing::info!(
                task_id, finding, policy, restored_version = restored,
                deleted_versions = %self.deleted_version_ids.join(","), suppressed_until = until,
                outcome = "rolled_back", "policy rolled back"
            );
        }
    }
}

/// Counts of finding outcomes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    pub findings: usize,
    pub remediated: usize,
    pub would_remediate: usize,
    pub skipped: usize,
    pub failed: usize,
    pub deferred: usize,
    pub enqueued: usize,
    pub rolled_back: usize,
    pub would_roll_back: usize,
    pub skipped_by_reason: BTreeMap<SkipReason, usize>,
    /// Finding lists that could not be read to the end, by error or deadline (the invocation
    /// fails for them).
    pub listing_errors: usize,
}

impl Totals {
    pub fn count(&mut self, outcome: &Outcome) {
        self.findings += 1;
        match outcome {
            Outcome::Remediated => self.remediated += 1,
            Outcome::WouldRemediate => self.would_remediate += 1,
            Outcome::Skipped { reason } => {
                self.skipped += 1;
                *self.skipped_by_reason.entry(*reason).or_default() += 1;
            }
            Outcome::Failed { .. } => self.failed += 1,
            Outcome::Deferred => self.deferred += 1,
            Outcome::Enqueued => self.enqueued += 1,
            Outcome::RolledBack => self.rolled_back += 1,
            Outcome::WouldRollBack => self.would_roll_back += 1,
        }
    }

    pub fn add(&mut self, other: &Totals) {
        self.findings += other.findings;
        self.remediated += other.remediated;
        self.would_remediate += other.would_remediate;
        self.skipped += other.skipped;
        self.failed += other.failed;
        self.deferred += other.deferred;
        self.enqueued += other.enqueued;
        self.rolled_back += other.rolled_back;
        self.would_roll_back += other.would_roll_back;
        self.listing_errors += other.listing_errors;
        for (reason, n) in &other.skipped_by_reason {
            *self.skipped_by_reason.entry(*reason).or_default() += n;
        }
    }

    /// Logs and counts one finished finding: the one place where both doors file a result.
    pub fn file(&mut self, task_id: &str, finding: &FindingReport) {
        finding.log(task_id);
        self.count(&finding.outcome);
    }

    /// Work that a retry of the event could still complete.
    pub fn incomplete(&self) -> usize {
        self.failed + self.deferred + self.listing_errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finding_report_serialises_flat_with_the_outcome_tag() {
        let policy = PolicyVersionRef {
            policy_name: "WS_AUDIT_a".into(),
            version_id: "1".into(),
        };
        let mut r = FindingReport::new(
            Some("f1".into()),
            Some(&policy),
            Outcome::Skipped {
                reason: SkipReason::StaleFinding,
            },
        );
        r.default_version_id = Some("2".into());
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"findingId": "f1", "policyName": "WS_AUDIT_a", "flaggedVersionId": "1",
                   "outcome": "skipped", "reason": "stale_finding", "defaultVersionId": "2"})
        );
        r.outcome = Outcome::Failed {
            error: "boom".into(),
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["outcome"], "failed");
        assert_eq!(v["error"], "boom");
    }
}
