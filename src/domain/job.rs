//! A remediation job: one in-scope policy of one audit, as the fan-out queue carries it.
//!
//! The SNS path writes one job per policy ([`Job::to_body`]); the SQS path reads them back
//! ([`Job::parse`]). A job says only which policy version the audit flagged: the worker reads
//! the policy again and decides from what it finds, so a stale or repeated job is harmless.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use super::finding::PolicyVersionRef;

/// One job: the policy version a finding flagged, and where the finding came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    pub task_id: Option<String>,
    pub finding_id: Option<String>,
    pub policy: PolicyVersionRef,
    /// The audit's account and region (SPEC §11); the function's own when absent.
    pub account_id: Option<String>,
    pub region: Option<String>,
}

/// Why a message body is not a job. Such a message is returned to the queue and, after the
/// queue's receive limit, lands in its dead-letter queue.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum JobError {
    #[error("the message has no body")]
    NoBody,
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("the body is JSON but not an object")]
    NotAnObject,
    #[error("the job has no {0} (a non-empty string)")]
    Missing(&'static str),
}

/// The body as it is written: flat, camelCase, field names as the IoT API spells them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    task_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finding_id: Option<&'a str>,
    policy_name: &'a str,
    policy_version_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<&'a str>,
}

/// `policyVersionIdentifier` as `ListAuditFindings` returns it, for jobs written by hand.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Identifier {
    policy_name: Option<String>,
    policy_version_id: Option<String>,
}

impl Job {
    pub fn to_body(&self) -> String {
        let body = Body {
            task_id: self.task_id.as_deref(),
            finding_id: self.finding_id.as_deref(),
            policy_name: &self.policy.policy_name,
            policy_version_id: &self.policy.version_id,
            account_id: self.account_id.as_deref(),
            region: self.region.as_deref(),
        };
        // Serialising borrowed strings into JSON cannot fail.
        serde_json::to_string(&body).unwrap_or_default()
    }

    /// Reads a job. Besides the written form, the policy may be given as
    /// `policyVersionIdentifier: {policyName, policyVersionId}` (the finding's own shape), and
    /// the version as `versionId`: jobs are also put on the queue by hand to re-run one policy.
    pub fn parse(body: Option<&str>) -> Result<Job, JobError> {
        let body = body.ok_or(JobError::NoBody)?;
        let value: Value =
            serde_json::from_str(body).map_err(|e| JobError::NotJson(e.to_string()))?;
        let Value::Object(fields) = &value else {
            return Err(JobError::NotAnObject);
        };
        let text = |key: &str| {
            fields
                .get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let nested = fields
            .get("policyVersionIdentifier")
            .and_then(|v| Identifier::deserialize(v).ok());
        let (nested_name, nested_version) = nested
            .map(|n| (n.policy_name, n.policy_version_id))
            .unwrap_or_default();
        let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
        let policy_name = text("policyName")
            .or(non_empty(nested_name))
            .ok_or(JobError::Missing("policyName"))?;
        let version_id = text("policyVersionId")
            .or_else(|| text("versionId"))
            .or(non_empty(nested_version))
            .ok_or(JobError::Missing("policyVersionId"))?;
        Ok(Job {
            task_id: text("taskId"),
            finding_id: text("findingId"),
            policy: PolicyVersionRef {
                policy_name,
                version_id,
            },
            account_id: text("accountId"),
            region: text("region"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job() -> Job {
        Job {
            task_id: Some("t1".into()),
            finding_id: Some("f1".into()),
            policy: PolicyVersionRef {
                policy_name: "WS_AUDIT_a".into(),
                version_id: "3".into(),
            },
            account_id: None,
            region: None,
        }
    }

    #[test]
    fn a_job_survives_the_queue() {
        let body = job().to_body();
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap(),
            json!({"taskId": "t1", "findingId": "f1", "policyName": "WS_AUDIT_a", "policyVersionId": "3"})
        );
        assert_eq!(Job::parse(Some(&body)), Ok(job()));
        let bare = Job {
            task_id: None,
            finding_id: None,
            ..job()
        };
        assert_eq!(Job::parse(Some(&bare.to_body())), Ok(bare));
        let placed = Job {
            account_id: Some("111111111111".into()),
            region: Some("eu-west-1".into()),
            ..job()
        };
        let body: Value = serde_json::from_str(&placed.to_body()).unwrap();
        assert_eq!(
            (&body["accountId"], &body["region"]),
            (&json!("111111111111"), &json!("eu-west-1"))
        );
        assert_eq!(Job::parse(Some(&placed.to_body())), Ok(placed));
    }

    #[test]
    fn hand_written_shapes_are_read() {
        let nested = json!({"taskId": "t1", "findingId": "f1",
            "policyVersionIdentifier": {"policyName": "WS_AUDIT_a", "policyVersionId": "3"}});
        assert_eq!(Job::parse(Some(&nested.to_string())), Ok(job()));
        let short = json!({"taskId": "t1", "findingId": "f1", "policyName": "WS_AUDIT_a", "versionId": "3", "extra": [1]});
        assert_eq!(Job::parse(Some(&short.to_string())), Ok(job()));
    }

    #[test]
    fn bad_bodies_say_why() {
        assert_eq!(Job::parse(None), Err(JobError::NoBody));
        assert!(matches!(Job::parse(Some("{")), Err(JobError::NotJson(_))));
        assert_eq!(Job::parse(Some("[1]")), Err(JobError::NotAnObject));
        assert_eq!(
            Job::parse(Some(r#"{"policyVersionId": "1"}"#)),
            Err(JobError::Missing("policyName"))
        );
        assert_eq!(
            Job::parse(Some(
                r#"{"policyName": "WS_AUDIT_a", "policyVersionId": 1}"#
            )),
            Err(JobError::Missing("policyVersionId"))
        );
        assert_eq!(
            Job::parse(Some(r#"{"policyName": "", "policyVersionId": "1"}"#)),
            Err(JobError::Missing("policyName"))
        );
        assert_eq!(
            Job::parse(Some(
                r#"{"policyVersionIdentifier": {"policyName": 5}, "policyVersionId": "1"}"#
            )),
            Err(JobError::Missing("policyName"))
        );
    }
}
