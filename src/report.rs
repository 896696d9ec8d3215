//! The report the handler returns (SPEC §6), and the log line for every decision in it.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::findings::PolicyVersionRef;
use crate::message::{AuditDetail, AuditMessage, CheckRunStatus};
use crate::plan::SkipReason;

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
        }
    }

    /// The one log line for this decision.
    pub fn log(&self, task_id: &str) {
        let policy = self.policy_name.as_deref().unwrap_or("-");
        let flagged = self.flagged_version_id.as_deref().unwrap_or("-");
        let finding = self.finding_id.as_deref().unwrap_or("-");
        let deleted = self.deleted_version_ids.join(",");
        let new = self.new_version_id.as_deref().unwrap_or("-");
        let kept = self.kept_version_id.as_deref().unwrap_or("-");
        let replaced = self.replaced_document.as_deref().unwrap_or("-");
        match &self.outcome {
            Outcome::Remediated => tracing::info!(
                task_id, finding, policy, flagged_version = flagged, new_version = new,
                deleted_versions = %deleted, kept_version = kept, replaced_document = replaced,
                outcome = "remediated", "policy remediated"
            ),
            Outcome::WouldRemediate => tracing::info!(
                task_id, finding, policy, flagged_version = flagged,
                would_delete_versions = %self.would_delete_version_ids.join(","),
                kept_version = kept, replaced_document = replaced,
                outcome = "would_remediate", "dry run: policy would be remediated"
            ),
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
            Outcome::Skipped { reason } => tracing::info!(
                task_id, finding, policy, flagged_version = flagged,
                default_version = self.default_version_id.as_deref().unwrap_or("-"),
                deleted_versions = %deleted, outcome = "skipped", reason = ?reason,
                "finding skipped"
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
            Outcome::Failed { error } => tracing::error!(
                task_id, finding, policy, flagged_version = flagged, new_version = new,
                deleted_versions = %deleted, replaced_document = replaced,
                outcome = "failed", error = %error, "policy could not be remediated"
            ),
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
        }
    }

    fn add(&mut self, other: &Totals) {
        self.findings += other.findings;
        self.remediated += other.remediated;
        self.would_remediate += other.would_remediate;
        self.skipped += other.skipped;
        self.failed += other.failed;
        self.deferred += other.deferred;
        self.enqueued += other.enqueued;
        self.listing_errors += other.listing_errors;
        for (reason, n) in &other.skipped_by_reason {
            *self.skipped_by_reason.entry(*reason).or_default() += n;
        }
    }

    /// Work that a retry of the event could still complete.
    pub fn incomplete(&self) -> usize {
        self.failed + self.deferred + self.listing_errors
    }
}

/// What was done about one check of an audit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckHandling {
    /// The overly permissive check, non-compliant: its findings were listed and handled.
    FindingsHandled,
    /// As `FindingsHandled`, with the in-scope ones sent to the fan-out queue as jobs.
    FindingsEnqueued,
    /// Compliant: nothing to do.
    Compliant,
    /// The check did not complete (failed, canceled, in progress...): no findings to list.
    NotCompleted,
    /// Another check with non-compliant resources: reported, not touched.
    NotHandled,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckReport {
    pub check_name: String,
    pub check_run_status: CheckRunStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub non_compliant_resources_count: Option<u64>,
    pub handling: CheckHandling,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// Set when `ListAuditFindings` failed part way: findings after that point were not seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listing_error: Option<String>,
    /// Set when listing stopped at the deadline: findings after that point were not seen.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub listing_deferred: bool,
}

impl CheckReport {
    pub fn new(detail: &AuditDetail) -> Self {
        let handling = if detail.is_remediable() {
            CheckHandling::FindingsHandled
        } else {
            match detail.check_run_status {
                CheckRunStatus::CompletedCompliant => CheckHandling::Compliant,
                CheckRunStatus::CompletedNonCompliant => CheckHandling::NotHandled,
                _ => CheckHandling::NotCompleted,
            }
        };
        Self {
            check_name: detail.check_name.clone(),
            check_run_status: detail.check_run_status.clone(),
            non_compliant_resources_count: detail.non_compliant_resources_count,
            handling,
            error_code: detail.error_code.clone(),
            listing_error: None,
            listing_deferred: false,
        }
    }
}

/// One audit message that was acted on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditReport {
    pub task_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_type: Option<String>,
    pub checks: Vec<CheckReport>,
    pub findings: Vec<FindingReport>,
    pub totals: Totals,
}

impl AuditReport {
    pub fn new(audit: &AuditMessage) -> Self {
        Self {
            task_id: audit.task_id.clone(),
            task_type: audit.task_type.clone(),
            checks: Vec::new(),
            findings: Vec::new(),
            totals: Totals::default(),
        }
    }

    /// Logs and counts one finding's result.
    pub fn push(&mut self, finding: FindingReport) {
        finding.log(&self.task_id);
        self.totals.count(&finding.outcome);
        self.findings.push(finding);
    }

    pub fn push_check(&mut self, check: CheckReport) {
        if check.listing_error.is_some() || check.listing_deferred {
            self.totals.listing_errors += 1;
        }
        self.checks.push(check);
    }
}

/// Why a whole record was skipped (successfully, with no IoT call).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordSkipReason {
    /// An audit whose `taskStatus` is not `COMPLETED`.
    TaskNotCompleted,
    /// A Device Defender Detect violation.
    DetectViolation,
    /// A per-finding message of the `PUBLISH_FINDING_TO_SNS` mitigation action.
    FindingNotification,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RecordOutcome {
    Processed(AuditReport),
    Skipped {
        reason: RecordSkipReason,
        /// The audit task or the finding's task, when the message names one.
        #[serde(rename = "taskId", skip_serializing_if = "Option::is_none")]
        task_id: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    Rejected {
        reason: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordReport {
    /// The SNS `MessageId`, when the record had one.
    pub message_id: Option<String>,
    #[serde(flatten)]
    pub outcome: RecordOutcome,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordTotals {
    pub records: usize,
    pub processed: usize,
    pub skipped: usize,
    pub rejected: usize,
}

/// Everything one invocation did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub dry_run: bool,
    pub records: Vec<RecordReport>,
    pub record_totals: RecordTotals,
    pub totals: Totals,
}

impl Report {
    pub fn new(dry_run: bool) -> Self {
        Self {
            dry_run,
            ..Self::default()
        }
    }

    /// Adds a record's result, with its summary log line.
    pub fn push(&mut self, record: RecordReport) {
        let id = record.message_id.as_deref().unwrap_or("-");
        self.record_totals.records += 1;
        match &record.outcome {
            RecordOutcome::Processed(audit) => {
                self.record_totals.processed += 1;
                self.totals.add(&audit.totals);
                let t = &audit.totals;
                tracing::info!(
                    message_id = id, task_id = %audit.task_id, findings = t.findings,
                    remediated = t.remediated, would_remediate = t.would_remediate,
                    skipped = t.skipped, failed = t.failed, deferred = t.deferred, enqueued = t.enqueued,
                    listing_errors = t.listing_errors,
                    "audit record done"
                );
            }
            RecordOutcome::Skipped { reason, detail, .. } => {
                self.record_totals.skipped += 1;
                tracing::info!(message_id = id, reason = ?reason, detail = detail.as_deref().unwrap_or("-"), "record skipped");
            }
            RecordOutcome::Rejected { reason } => {
                self.record_totals.rejected += 1;
                tracing::error!(message_id = id, reason = %reason, "record rejected: bad input");
            }
        }
        self.records.push(record);
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

    #[test]
    fn totals_count_and_add() {
        let mut audit = AuditReport {
            task_id: "t".into(),
            task_type: None,
            checks: vec![],
            findings: vec![],
            totals: Totals::default(),
        };
        for outcome in [
            Outcome::Remediated,
            Outcome::Skipped {
                reason: SkipReason::OutOfScope,
            },
            Outcome::Skipped {
                reason: SkipReason::OutOfScope,
            },
            Outcome::Failed { error: "x".into() },
        ] {
            audit.push(FindingReport::new(None, None, outcome));
        }
        let mut report = Report::new(false);
        report.push(RecordReport {
            message_id: Some("m".into()),
            outcome: RecordOutcome::Processed(audit),
        });
        report.push(RecordReport {
            message_id: None,
            outcome: RecordOutcome::Rejected {
                reason: "bad".into(),
            },
        });
        assert_eq!(report.totals.findings, 4);
        assert_eq!(report.totals.remediated, 1);
        assert_eq!(report.totals.failed, 1);
        assert_eq!(report.totals.incomplete(), 1);
        assert_eq!(report.totals.skipped_by_reason[&SkipReason::OutOfScope], 2);
        assert_eq!(
            report.record_totals,
            RecordTotals {
                records: 2,
                processed: 1,
                skipped: 0,
                rejected: 1
            }
        );
        let v = serde_json::to_value(&report).unwrap();
        assert_eq!(v["totals"]["skippedByReason"]["out_of_scope"], 2);
        assert_eq!(v["records"][1]["outcome"], "rejected");
        assert_eq!(v["records"][0]["outcome"], "processed");
        assert_eq!(v["records"][0]["taskId"], "t");
    }
}
