//! Undoing a remediation (SPEC §9): the rollback event, and the decisions for one policy.

use serde_json::Value;
use thiserror::Error;

use super::decide::PolicyState;
use super::finding::PolicyVersionRef;
use super::screen::SkipReason;
use super::versions::{same_version, VersionInfo};

/// `{"rollback": {"taskId": "...", "policyNames": ["WS_AUDIT_x"], "reason": "..."}}`, sent by a
/// person or a tool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RollbackRequest {
    pub task_id: String,
    /// Only these policies (still within the prefix); `None`: every policy of the task.
    pub policy_names: Option<Vec<String>>,
    pub reason: Option<String>,
    /// The account and region of the audit (SPEC §11); the function's own when absent.
    pub account_id: Option<String>,
    pub region: Option<String>,
}

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum RollbackError {
    #[error("rollback must be a JSON object")]
    NotAnObject,
    #[error("rollback.taskId is required (a non-empty string)")]
    NoTaskId,
    #[error(
        "rollback.taskId {0:?} is not an audit task id (letters, digits, - and _, at most 40)"
    )]
    BadTaskId(String),
    #[error("rollback.policyNames must be a non-empty list of policy names (leave it out for every policy of the task)")]
    BadPolicyNames,
    #[error("rollback.reason must be a string")]
    BadReason,
    #[error("rollback.{0} must be a non-empty string (leave it out for the function's own)")]
    BadPlace(&'static str),
}

/// Reads the `rollback` member of an event. Unknown members are ignored.
pub fn parse_rollback(event: &Value) -> Result<RollbackRequest, RollbackError> {
    let Some(Value::Object(fields)) = event.get("rollback") else {
        return Err(RollbackError::NotAnObject);
    };
    let task_id = match fields.get("taskId") {
        Some(Value::String(id)) if !id.trim().is_empty() => id.trim().to_owned(),
        _ => return Err(RollbackError::NoTaskId),
    };
    // As ListAuditFindings takes it: anything else would fail the listing on every retry.
    let task_id_chars = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if task_id.len() > 40 || !task_id.chars().all(task_id_chars) {
        return Err(RollbackError::BadTaskId(task_id));
    }
    let policy_names = match fields.get("policyNames") {
        None | Some(Value::Null) => None,
        Some(Value::Array(names)) if !names.is_empty() => Some(
            names
                .iter()
                .map(|n| n.as_str().map(str::trim).filter(|n| !n.is_empty()))
                .map(|n| n.map(str::to_owned))
                .collect::<Option<Vec<String>>>()
                .ok_or(RollbackError::BadPolicyNames)?,
        ),
        Some(_) => return Err(RollbackError::BadPolicyNames),
    };
    let reason = match fields.get("reason") {
        None | Some(Value::Null) => None,
        Some(Value::String(r)) => Some(r.clone()),
        Some(_) => return Err(RollbackError::BadReason),
    };
    let place = |key| match fields.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(v)) if !v.trim().is_empty() => Ok(Some(v.trim().to_owned())),
        Some(_) => Err(RollbackError::BadPlace(key)),
    };
    Ok(RollbackRequest {
        task_id,
        policy_names,
        reason,
        account_id: place("accountId")?,
        region: place("region")?,
    })
}

/// The first decision for one policy, from `GetPolicy` alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RollbackDecision {
    Skip(SkipReason),
    /// The restrictive document is in force: look whether the flagged version is still there.
    Restore {
        /// The restrictive default, deleted once the flagged version is the default again.
        restrictive: String,
    },
}

pub fn decide_rollback(
    flagged: &PolicyVersionRef,
    state: Option<&PolicyState>,
) -> RollbackDecision {
    let Some(state) = state else {
        return RollbackDecision::Skip(SkipReason::PolicyNotFound);
    };
    let flagged_is_default = same_version(&flagged.version_id, &state.default_version_id);
    match (state.default_is_restrictive, flagged_is_default) {
        // Restored already (an earlier rollback, or a person), never remediated, changed since,
        // or the restrictive document itself was flagged: nothing to undo, nothing is written.
        (false, _) | (true, true) => RollbackDecision::Skip(SkipReason::NotRemediated),
        (true, false) => RollbackDecision::Restore {
            restrictive: state.default_version_id.clone(),
        },
    }
}

/// Whether the flagged version can be restored: the restrictive version `GetPolicy` showed must
/// still be the default (else someone changed the policy since: nothing is done), and the
/// flagged version must still exist. The function never installs a document an event hands it.
pub fn restorable(
    flagged: &PolicyVersionRef,
    restrictive: &str,
    versions: &[VersionInfo],
) -> Result<(), SkipReason> {
    let default_unchanged = versions
        .iter()
        .any(|v| v.is_default && same_version(&v.version_id, restrictive));
    if !default_unchanged {
        return Err(SkipReason::NotRemediated);
    }
    if versions
        .iter()
        .any(|v| same_version(&v.version_id, &flagged.version_id))
    {
        Ok(())
    } else {
        Err(SkipReason::RollbackUnavailable)
    }
}

/// The description of the suppression a rollback makes. IoT allows 1000 characters of
/// printable ASCII and spaces (`[\p{Graph}\x20]*`): anything else becomes `?`, so that a
/// reason with a newline or an accent cannot make the suppression, and so the rollback, fail.
pub fn suppression_description(date: &str, task_id: &str, reason: Option<&str>) -> String {
    let text = format!(
        "Rolled back by iot-audit-remediator on {date} (audit task {task_id}): {}",
        reason.unwrap_or("no reason given")
    );
    text.chars()
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .take(1000)
        .collect()
}

/// `YYYY-MM-DD` of a moment given in epoch seconds (UTC, proleptic Gregorian calendar).
pub fn civil_date(epoch_secs: i64) -> String {
    // Howard Hinnant's days-to-civil algorithm.
    let z = epoch_secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::decide::tests::{flagged, state};
    use serde_json::json;

    #[test]
    fn the_event_is_read_strictly() {
        let event = json!({"rollback": {"taskId": " t1 ", "policyNames": ["WS_AUDIT_a"], "reason": "devices offline"}});
        assert_eq!(
            parse_rollback(&event),
            Ok(RollbackRequest {
                task_id: "t1".into(),
                policy_names: Some(vec!["WS_AUDIT_a".into()]),
                reason: Some("devices offline".into()),
                account_id: None,
                region: None,
            })
        );
        let bare = parse_rollback(&json!({"rollback": {"taskId": "t1"}})).unwrap();
        assert_eq!((bare.policy_names, bare.reason), (None, None));
        assert_eq!((bare.account_id, bare.region), (None, None));
        let placed = json!({"rollback": {"taskId": "t1", "accountId": "111111111111", "region": "eu-west-1"}});
        let placed = parse_rollback(&placed).unwrap();
        assert_eq!(
            (placed.account_id.as_deref(), placed.region.as_deref()),
            (Some("111111111111"), Some("eu-west-1"))
        );
        for (bad, why) in [
            (json!({"rollback": "t1"}), RollbackError::NotAnObject),
            (json!({"rollback": {}}), RollbackError::NoTaskId),
            (json!({"rollback": {"taskId": ""}}), RollbackError::NoTaskId),
            (json!({"rollback": {"taskId": 7}}), RollbackError::NoTaskId),
            (
                json!({"rollback": {"taskId": "a b"}}),
                RollbackError::BadTaskId("a b".into()),
            ),
            (
                json!({"rollback": {"taskId": "t", "policyNames": []}}),
                RollbackError::BadPolicyNames,
            ),
            (
                json!({"rollback": {"taskId": "t", "policyNames": "WS_AUDIT_a"}}),
                RollbackError::BadPolicyNames,
            ),
            (
                json!({"rollback": {"taskId": "t", "policyNames": [1]}}),
                RollbackError::BadPolicyNames,
            ),
            (
                json!({"rollback": {"taskId": "t", "policyNames": [""]}}),
                RollbackError::BadPolicyNames,
            ),
            (
                json!({"rollback": {"taskId": "t", "reason": 1}}),
                RollbackError::BadReason,
            ),
            (
                json!({"rollback": {"taskId": "t", "accountId": 111111111111u64}}),
                RollbackError::BadPlace("accountId"),
            ),
            (
                json!({"rollback": {"taskId": "t", "region": " "}}),
                RollbackError::BadPlace("region"),
            ),
        ] {
            assert_eq!(parse_rollback(&bad), Err(why), "{bad}");
        }
    }

    #[test]
    fn only_a_restrictive_default_is_rolled_back() {
        assert_eq!(
            decide_rollback(&flagged("1"), None),
            RollbackDecision::Skip(SkipReason::PolicyNotFound)
        );
        assert_eq!(
            decide_rollback(&flagged("1"), Some(&state("2", true))),
            RollbackDecision::Restore {
                restrictive: "2".into()
            }
        );
        assert_eq!(
            decide_rollback(&flagged("1"), Some(&state("3", false))),
            RollbackDecision::Skip(SkipReason::NotRemediated),
            "changed by hand since"
        );
        assert_eq!(
            decide_rollback(&flagged("2"), Some(&state("2", true))),
            RollbackDecision::Skip(SkipReason::NotRemediated),
            "the restrictive document itself was flagged"
        );
        assert_eq!(
            decide_rollback(&flagged("1"), Some(&state("1", false))),
            RollbackDecision::Skip(SkipReason::NotRemediated),
            "restored already, or never remediated: nothing to undo"
        );
    }

    #[test]
    fn a_deleted_version_cannot_be_restored() {
        let versions = [
            VersionInfo {
                version_id: "1".into(),
                is_default: false,
                created_ms: Some(1),
            },
            VersionInfo {
                version_id: "2".into(),
                is_default: true,
                created_ms: Some(2),
            },
        ];
        assert_eq!(restorable(&flagged("1"), "2", &versions), Ok(()));
        assert_eq!(
            restorable(&flagged("3"), "2", &versions),
            Err(SkipReason::RollbackUnavailable)
        );
        // The default changed between GetPolicy and the listing: nothing is done.
        assert_eq!(
            restorable(&flagged("2"), "1", &versions),
            Err(SkipReason::NotRemediated)
        );
    }

    #[test]
    fn dates_and_descriptions() {
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(951_782_400), "2000-02-29");
        assert_eq!(civil_date(1_796_083_200), "2026-12-01");
        assert_eq!(civil_date(-86_400), "1969-12-31");
        let d = suppression_description("2026-12-01", "t1", Some("devices offline"));
        assert_eq!(
            d,
            "Rolled back by iot-audit-remediator on 2026-12-01 (audit task t1): devices offline"
        );
        let long = suppression_description("2026-12-01", "t1", Some(&"é".repeat(2000)));
        assert_eq!(long.chars().count(), 1000);
        assert!(long.ends_with("???"), "printable ASCII only: {long}");
        let odd = suppression_description("2026-12-01", "t1", Some("line\none\ttab"));
        assert!(odd.ends_with("line?one?tab"), "{odd}");
    }
}
