//! The report of an SNS invocation (SPEC §6): records, audits, checks, with a summary log line
//! per record.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::domain::{AuditDetail, AuditMessage, CheckRunStatus};

use super::finding::{FindingReport, Totals};

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
    /// A rollback listed the check's findings again (suppressed ones included) and undid them.
    FindingsRolledBack,
    /// The same check named again in the message: its findings were listed once, above.
    Repeated,
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

impl CheckReport {
    /// The check a rollback lists again.
    pub fn rollback(check_name: &str) -> Self {
        Self {
            check_name: check_name.to_owned(),
            check_run_status: CheckRunStatus::CompletedNonCompliant,
            non_compliant_resources_count: None,
            handling: CheckHandling::FindingsRolledBack,
            error_code: None,
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
    /// The account and region the audit was worked in (SPEC §11), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub checks: Vec<CheckReport>,
    pub findings: Vec<FindingReport>,
    pub totals: Totals,
}

impl AuditReport {
    pub fn new(audit: &AuditMessage) -> Self {
        Self {
            task_type: audit.task_type.clone(),
            ..Self::for_task(&audit.task_id)
        }
    }

    /// A task named without its audit message (a rollback).
    pub fn for_task(task_id: &str) -> Self {
        Self {
            task_id: task_id.to_owned(),
            task_type: None,
            account_id: None,
            region: None,
            checks: Vec::new(),
            findings: Vec::new(),
            totals: Totals::default(),
        }
    }

    /// Names the account and region the audit was worked in.
    pub fn place(&mut self, account_id: Option<&str>, region: Option<&str>) {
        self.account_id = account_id.map(str::to_owned);
        self.region = region.map(str::to_owned);
    }

    /// Logs and counts one finding's result.
    pub fn push(&mut self, finding: FindingReport) {
        self.totals.file(&self.task_id, &finding);
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
    /// Notifications that could not be sent (each logged at error level).
    #[serde(skip_serializing_if = "is_zero")]
    pub notification_errors: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Report {
    pub fn new(dry_run: bool) -> Self {
        Self {
            dry_run,
            ..Self::default()
        }
    }

    /// The findings' totals by the account they were worked in (those of audits whose account
    /// is not known are left out).
    pub fn totals_by_account(&self) -> BTreeMap<String, Totals> {
        let mut by_account: BTreeMap<String, Totals> = BTreeMap::new();
        for record in &self.records {
            if let RecordOutcome::Processed(audit) = &record.outcome {
                if let Some(account) = &audit.account_id {
                    by_account
                        .entry(account.clone())
                        .or_default()
                        .add(&audit.totals);
                }
            }
        }
        by_account
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
                    message_id = id, task_id = %audit.task_id,
                    account = audit.account_id.as_deref().unwrap_or("-"),
                    region = audit.region.as_deref().unwrap_or("-"), findings = t.findings,
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
    use crate::domain::SkipReason;
    use crate::report::Outcome;

    #[test]
    fn totals_count_and_add() {
        let mut audit = AuditReport::for_task("t");
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
