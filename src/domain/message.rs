//! The SNS record and the three kinds of message Device Defender publishes on the topic (SPEC §2).

use aws_lambda_events::event::sns::SnsRecord;
use serde::Deserialize;
use serde_json::Value;
use thiserror::Error;

/// The check this function remediates.
pub const OVERLY_PERMISSIVE_CHECK: &str = "IOT_POLICY_OVERLY_PERMISSIVE_CHECK";

/// `eventSource` of the records of an SQS event.
pub const SQS_EVENT_SOURCE: &str = "aws:sqs";

/// The kinds of Lambda event the function serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// An SNS event (or anything that is not another kind: its records are then rejected one by
    /// one with a reason).
    Sns,
    /// A batch of fan-out jobs from the SQS event source mapping.
    SqsJobs,
    /// `{"rollback": {...}}`, sent by a person or a tool (SPEC §9).
    Rollback,
}

/// Which door an event goes through: a `rollback` member makes it a rollback; SQS records say
/// `eventSource: aws:sqs` (SNS records say `EventSource: aws:sns`).
pub fn event_kind(event: &Value) -> EventKind {
    if event.get("rollback").is_some() {
        return EventKind::Rollback;
    }
    let source = event
        .get("Records")
        .and_then(Value::as_array)
        .and_then(|records| records.first())
        .and_then(|record| record.get("eventSource"))
        .and_then(Value::as_str);
    match source {
        Some(SQS_EVENT_SOURCE) => EventKind::SqsJobs,
        _ => EventKind::Sns,
    }
}

/// What one SNS record carried.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// The summary published when an audit task finishes.
    Audit(AuditMessage),
    /// A Device Defender Detect violation: recognised and skipped.
    DetectViolation(DetectViolation),
    /// A per-finding message of the `PUBLISH_FINDING_TO_SNS` mitigation action: recognised and skipped.
    FindingNotification(FindingNotification),
}

/// Why a record was rejected as bad input.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum RejectReason {
    #[error("the event has no SNS records")]
    NoRecords,
    #[error("the event is not an SNS event: {0}")]
    NotAnSnsEvent(String),
    #[error("the record is not an SNS record: {0}")]
    NotAnSnsRecord(String),
    #[error("Sns.Message is not JSON: {0}")]
    NotJson(String),
    #[error("Sns.Message is JSON but not a known Device Defender message (keys: {0})")]
    UnknownShape(String),
    #[error("Sns.Message looks like an audit message but does not parse: {0}")]
    BadAuditMessage(String),
}

/// One SNS record, classified. The message id is kept whenever it can be read, so a rejected
/// record can still be traced back to its delivery.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassifiedRecord {
    pub message_id: Option<String>,
    /// The topic it was published to: its region is the audit's (SPEC §11).
    pub topic_arn: Option<String>,
    pub message: Result<Message, RejectReason>,
}

/// Splits a raw Lambda event into classified records. A malformed record never hides the others.
pub fn classify_event(event: &Value) -> Vec<ClassifiedRecord> {
    let records = match event.get("Records") {
        Some(Value::Array(records)) => records,
        Some(_) => {
            return vec![rejected(
                None,
                RejectReason::NotAnSnsEvent("Records is not an array".into()),
            )]
        }
        None => {
            return vec![rejected(
                None,
                RejectReason::NotAnSnsEvent("no Records field".into()),
            )]
        }
    };
    if records.is_empty() {
        return vec![rejected(None, RejectReason::NoRecords)];
    }
    records.iter().map(classify_record).collect()
}

fn rejected(message_id: Option<String>, reason: RejectReason) -> ClassifiedRecord {
    ClassifiedRecord {
        message_id,
        topic_arn: None,
        message: Err(reason),
    }
}

/// Classifies one element of `Records`.
pub fn classify_record(raw: &Value) -> ClassifiedRecord {
    match SnsRecord::deserialize(raw) {
        Ok(record) => ClassifiedRecord {
            message_id: Some(record.sns.message_id),
            topic_arn: Some(record.sns.topic_arn).filter(|t| !t.is_empty()),
            message: classify_message(&record.sns.message),
        },
        Err(e) => {
            let message_id = raw
                .pointer("/Sns/MessageId")
                .and_then(Value::as_str)
                .map(str::to_owned);
            rejected(message_id, RejectReason::NotAnSnsRecord(e.to_string()))
        }
    }
}

/// Classifies the text of `Sns.Message`.
pub fn classify_message(text: &str) -> Result<Message, RejectReason> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| RejectReason::NotJson(e.to_string()))?;
    let Value::Object(fields) = &value else {
        return Err(RejectReason::UnknownShape(format!(
            "not an object but {}",
            json_kind(&value)
        )));
    };
    match shape(fields) {
        Some(Shape::DetectViolation) => return Ok(Message::DetectViolation(lenient(value))),
        Some(Shape::FindingNotification) => {
            return Ok(Message::FindingNotification(lenient(value)))
        }
        Some(Shape::Audit) => {
            return AuditMessage::deserialize(&value)
                .map(Message::Audit)
                .map_err(|e| RejectReason::BadAuditMessage(e.to_string()))
        }
        None => {}
    }
    let mut keys: Vec<&str> = fields.keys().map(String::as_str).take(8).collect();
    if fields.len() > keys.len() {
        keys.push("...");
    }
    Err(RejectReason::UnknownShape(keys.join(", ")))
}

/// The kinds of Device Defender message, told apart by their keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    DetectViolation,
    FindingNotification,
    Audit,
}

fn shape(fields: &serde_json::Map<String, Value>) -> Option<Shape> {
    let has = |key: &str| fields.contains_key(key);
    if has("violationId") || has("violationEventType") {
        Some(Shape::DetectViolation)
    } else if has("findingId") && has("nonCompliantResource") {
        Some(Shape::FindingNotification)
    } else if has("taskId") && (has("auditDetails") || has("taskType") || has("taskStatus")) {
        Some(Shape::Audit)
    } else {
        None
    }
}

/// What the body of an SQS record carries.
#[derive(Clone, Debug, PartialEq)]
pub enum SqsBody {
    /// A Device Defender message that reached the function through a queue subscribed to the
    /// audit topic (SNS → SQS → Lambda): in its SNS envelope, which names the topic (and so
    /// the audit's region), or raw (raw message delivery), which does not.
    Message {
        topic_arn: Option<String>,
        message: Result<Message, RejectReason>,
    },
    /// Anything else: read as a fan-out job (and rejected there when it is not one).
    Job,
}

/// Tells a buffered Device Defender message from a fan-out job. A job never has the keys of a
/// message (see [`shape`]), nor an SNS envelope.
pub fn classify_sqs_body(body: Option<&str>) -> SqsBody {
    let Some(Ok(Value::Object(fields))) = body.map(serde_json::from_str::<Value>) else {
        return SqsBody::Job;
    };
    let envelope = fields.get("Type").and_then(Value::as_str) == Some("Notification");
    match fields.get("Message") {
        Some(Value::String(message)) if envelope => SqsBody::Message {
            topic_arn: fields
                .get("TopicArn")
                .and_then(Value::as_str)
                .map(str::to_owned),
            message: classify_message(message),
        },
        _ if shape(&fields).is_some() => SqsBody::Message {
            topic_arn: None,
            message: classify_message(body.unwrap_or_default()),
        },
        _ => SqsBody::Job,
    }
}

/// For messages that are only logged: a field of an unexpected type must not turn a recognised
/// message into a rejected one, so each field is read on its own.
fn lenient<T: Default + for<'de> Deserialize<'de>>(value: Value) -> T {
    T::deserialize(value).unwrap_or_default()
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The audit summary message (`reference/audit-message.json`). Unknown fields are ignored.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuditMessage {
    #[serde(default)]
    pub account_id: Option<String>,
    pub task_id: String,
    pub task_status: TaskStatus,
    #[serde(default)]
    pub task_type: Option<String>,
    #[serde(default)]
    pub scheduled_audit_name: Option<String>,
    #[serde(default)]
    pub audit_details: Vec<AuditDetail>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuditDetail {
    /// An open set (checks get renamed), so a plain string.
    pub check_name: String,
    pub check_run_status: CheckRunStatus,
    #[serde(default)]
    pub non_compliant_resources_count: Option<u64>,
    #[serde(default)]
    pub total_resources_count: Option<u64>,
    /// Delivered notifications spell it `...ResourceCount`, the API `...ResourcesCount`.
    #[serde(default, alias = "suppressedNonCompliantResourcesCount")]
    pub suppressed_non_compliant_resource_count: Option<u64>,
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

impl AuditDetail {
    /// The one kind of check run this function lists findings for.
    pub fn is_remediable(&self) -> bool {
        self.check_name == OVERLY_PERMISSIVE_CHECK
            && self.check_run_status == CheckRunStatus::CompletedNonCompliant
    }
}

/// Defines a string enum that keeps unknown values instead of failing on them.
macro_rules! open_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
        #[serde(from = "String", into = "String")]
        pub enum $name {
            $($variant,)*
            Other(String),
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                match s.as_str() {
                    $($text => Self::$variant,)*
                    _ => Self::Other(s),
                }
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.as_str().to_owned()
            }
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $text,)*
                    Self::Other(s) => s,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

open_enum!(
    /// `taskStatus` of an audit message; only `COMPLETED` is acted on.
    TaskStatus {
        Completed = "COMPLETED",
        Failed = "FAILED",
        Canceled = "CANCELED",
        InProgress = "IN_PROGRESS",
    }
);

open_enum!(
    /// `checkRunStatus` of one check in an audit message.
    CheckRunStatus {
        CompletedCompliant = "COMPLETED_COMPLIANT",
        CompletedNonCompliant = "COMPLETED_NON_COMPLIANT",
        Failed = "FAILED",
        Canceled = "CANCELED",
        InProgress = "IN_PROGRESS",
        WaitingForDataCollection = "WAITING_FOR_DATA_COLLECTION",
    }
);

/// A Detect violation message; only what the log line needs.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct DetectViolation {
    #[serde(deserialize_with = "string_or_none")]
    pub violation_id: Option<String>,
    #[serde(deserialize_with = "string_or_none")]
    pub thing_name: Option<String>,
    #[serde(deserialize_with = "string_or_none")]
    pub security_profile_name: Option<String>,
    #[serde(deserialize_with = "string_or_none")]
    pub violation_event_type: Option<String>,
}

/// A per-finding message of the `PUBLISH_FINDING_TO_SNS` mitigation action.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct FindingNotification {
    #[serde(deserialize_with = "string_or_none")]
    pub finding_id: Option<String>,
    #[serde(deserialize_with = "string_or_none")]
    pub task_id: Option<String>,
    #[serde(deserialize_with = "string_or_none")]
    pub check_name: Option<String>,
}

fn string_or_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const AUDIT: &str = include_str!("../../events/audit-non-compliant.json");

    fn only_message(event: &str) -> ClassifiedRecord {
        let event: Value = serde_json::from_str(event).unwrap();
        let mut records = classify_event(&event);
        assert_eq!(records.len(), 1);
        records.remove(0)
    }

    #[test]
    fn audit_message_parses_both_spellings_of_the_suppressed_count() {
        for key in [
            "suppressedNonCompliantResourceCount",
            "suppressedNonCompliantResourcesCount",
        ] {
            let text = json!({
                "taskId": "t", "taskStatus": "COMPLETED", "taskType": "SCHEDULED_AUDIT_TASK",
                "scheduledAuditName": "daily", "someNewField": [1, 2],
                "auditDetails": [{"checkName": OVERLY_PERMISSIVE_CHECK,
                    "checkRunStatus": "COMPLETED_NON_COMPLIANT", key: 4}]
            })
            .to_string();
            let Ok(Message::Audit(audit)) = classify_message(&text) else {
                panic!("{key}: not an audit");
            };
            assert_eq!(
                audit.audit_details[0].suppressed_non_compliant_resource_count,
                Some(4)
            );
            assert!(audit.audit_details[0].is_remediable());
            assert_eq!(audit.scheduled_audit_name.as_deref(), Some("daily"));
        }
    }

    #[test]
    fn unknown_statuses_are_kept_not_rejected() {
        let text = json!({"taskId": "t", "taskStatus": "SOMETHING_NEW",
            "auditDetails": [{"checkName": "X", "checkRunStatus": "ALSO_NEW"}]})
        .to_string();
        let Ok(Message::Audit(audit)) = classify_message(&text) else {
            panic!("not an audit")
        };
        assert_eq!(audit.task_status, TaskStatus::Other("SOMETHING_NEW".into()));
        assert_eq!(audit.audit_details[0].check_run_status.as_str(), "ALSO_NEW");
        assert!(!audit.audit_details[0].is_remediable());
    }

    #[test]
    fn audit_without_details_is_fine() {
        let text = r#"{"taskId":"t","taskStatus":"FAILED","taskType":"ON_DEMAND_AUDIT_TASK"}"#;
        let Ok(Message::Audit(audit)) = classify_message(text) else {
            panic!("not an audit")
        };
        assert_eq!(audit.task_status, TaskStatus::Failed);
        assert!(audit.audit_details.is_empty());
    }

    #[test]
    fn bad_inputs_are_rejected_with_a_reason() {
        assert!(matches!(
            classify_message("not json"),
            Err(RejectReason::NotJson(_))
        ));
        assert!(matches!(
            classify_message("[1,2]"),
            Err(RejectReason::UnknownShape(_))
        ));
        assert!(matches!(
            classify_message(r#"{"hello":"world"}"#),
            Err(RejectReason::UnknownShape(k)) if k == "hello"
        ));
        assert!(matches!(
            classify_message(r#"{"taskId":"t","taskStatus":7}"#),
            Err(RejectReason::BadAuditMessage(_))
        ));
        assert!(matches!(
            classify_message(r#"{"taskId":"t","auditDetails":"x","taskStatus":"COMPLETED"}"#),
            Err(RejectReason::BadAuditMessage(_))
        ));
    }

    #[test]
    fn detect_and_finding_messages_tolerate_odd_field_types() {
        let text = r#"{"violationId": 5, "thingName": "t1", "violationEventType": "in-alarm"}"#;
        let Ok(Message::DetectViolation(v)) = classify_message(text) else {
            panic!("not a violation")
        };
        assert_eq!(v.violation_id, None);
        assert_eq!(v.thing_name.as_deref(), Some("t1"));
        let text = r#"{"findingId": "f", "nonCompliantResource": {}, "taskId": ["x"]}"#;
        let Ok(Message::FindingNotification(f)) = classify_message(text) else {
            panic!("not a finding notification")
        };
        assert_eq!(f.finding_id.as_deref(), Some("f"));
        assert_eq!(f.task_id, None);
    }

    #[test]
    fn event_level_problems_are_one_rejected_record() {
        for (event, expected) in [
            (json!({"Records": []}), RejectReason::NoRecords),
            (
                json!({}),
                RejectReason::NotAnSnsEvent("no Records field".into()),
            ),
            (
                json!({"Records": {}}),
                RejectReason::NotAnSnsEvent("Records is not an array".into()),
            ),
        ] {
            let records = classify_event(&event);
            assert_eq!(records.len(), 1);
            assert_eq!(records[0].message, Err(expected));
        }
    }

    #[test]
    fn a_broken_record_does_not_hide_the_good_one() {
        let good: Value = serde_json::from_str(AUDIT).unwrap();
        let event = json!({"Records": [
            {"Sns": {"MessageId": "broken-1"}},
            good["Records"][0].clone(),
            42,
        ]});
        let records = classify_event(&event);
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].message_id.as_deref(), Some("broken-1"));
        assert!(matches!(
            records[0].message,
            Err(RejectReason::NotAnSnsRecord(_))
        ));
        assert!(matches!(records[1].message, Ok(Message::Audit(_))));
        assert_eq!(records[2].message_id, None);
        assert!(records[2].message.is_err());
    }

    #[test]
    fn sample_audit_event_parses() {
        let record = only_message(AUDIT);
        assert_eq!(
            record.message_id.as_deref(),
            Some("e98d6ec4-a3b9-5e3e-a0c5-38e9a50cc829")
        );
        let Ok(Message::Audit(audit)) = record.message else {
            panic!("not an audit")
        };
        assert_eq!(audit.task_id, "7aa53579303b594f9bcb76082688a5de");
        assert_eq!(audit.task_status, TaskStatus::Completed);
        assert!(audit.audit_details[0].is_remediable());
    }

    #[test]
    fn an_sqs_body_carrying_a_device_defender_message_is_that_message() {
        let message = json!({"taskId": "t1", "taskStatus": "COMPLETED", "auditDetails": []});
        let envelope = json!({"Type": "Notification", "MessageId": "m",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:DDA", "Message": message.to_string()});
        let audit = |body: &SqsBody| match body {
            SqsBody::Message {
                topic_arn,
                message: Ok(Message::Audit(a)),
            } => (a.task_id.clone(), topic_arn.clone()),
            other => panic!("{other:?}"),
        };
        let topic = Some("arn:aws:sns:us-east-1:123456789012:DDA".to_owned());
        let wrapped = classify_sqs_body(Some(&envelope.to_string()));
        assert_eq!(audit(&wrapped), ("t1".to_owned(), topic));
        let raw = classify_sqs_body(Some(&message.to_string()));
        assert_eq!(audit(&raw), ("t1".to_owned(), None));
        let detect = json!({"violationId": "v", "thingName": "t"}).to_string();
        assert!(matches!(
            classify_sqs_body(Some(&detect)),
            SqsBody::Message {
                message: Ok(Message::DetectViolation(_)),
                ..
            }
        ));
        // An envelope around something that is not a message is rejected as that message.
        let bad = json!({"Type": "Notification", "Message": "not json"}).to_string();
        assert!(matches!(
            classify_sqs_body(Some(&bad)),
            SqsBody::Message {
                message: Err(RejectReason::NotJson(_)),
                ..
            }
        ));
        let broken = json!({"taskId": "t1", "taskStatus": 7}).to_string();
        assert!(matches!(
            classify_sqs_body(Some(&broken)),
            SqsBody::Message {
                message: Err(RejectReason::BadAuditMessage(_)),
                ..
            }
        ));
    }

    #[test]
    fn jobs_and_other_bodies_are_read_as_jobs() {
        for body in [
            json!({"taskId": "t1", "findingId": "f1", "policyName": "WS_AUDIT_a", "policyVersionId": "1"})
                .to_string(),
            json!({"findingId": "f1", "policyVersionIdentifier": {"policyName": "a", "policyVersionId": "1"}})
                .to_string(),
            json!({"Type": "SubscriptionConfirmation", "Message": "{}"}).to_string(),
            json!({"Type": "Notification", "Message": {"taskId": "t"}}).to_string(),
            "[1]".into(),
            "{".into(),
        ] {
            assert_eq!(classify_sqs_body(Some(&body)), SqsBody::Job, "{body}");
        }
        assert_eq!(classify_sqs_body(None), SqsBody::Job);
    }
}
