//! Every sample event in `events/` parses to the kind it stands for, and the handler treats it
//! as SPEC §2 says. The events need no IoT call except the audits, which get a mocked client.

mod common;

use std::collections::BTreeMap;

use aws_sdk_iot::operation::list_audit_findings::ListAuditFindingsOutput;
use aws_sdk_iot::operation::list_audit_suppressions::ListAuditSuppressionsOutput;
use aws_sdk_iot::Client;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use common::{app, load_event, test_config};
use iot_audit_remediator::domain::{
    classify_event, classify_sqs_body, event_kind, parse_rollback, EventKind, Job, Message,
    RejectReason, SqsBody, TaskStatus,
};
use iot_audit_remediator::engine::Cutoff;
use iot_audit_remediator::entry::sns::handle_event;
use serde_json::Value;

/// What each record of an event file is.
#[derive(Debug, PartialEq)]
enum Kind {
    Audit(String),
    AuditNotCompleted,
    Detect,
    FindingMessage,
    NotJson,
    /// A fan-out job for this policy (an SQS record).
    Job(String),
    /// A rollback of this audit task.
    Rollback(String),
}

fn expected() -> BTreeMap<&'static str, Vec<Kind>> {
    BTreeMap::from([
        (
            "audit-non-compliant.json",
            vec![Kind::Audit("7aa53579303b594f9bcb76082688a5de".into())],
        ),
        (
            "audit-compliant.json",
            vec![Kind::Audit("c0a1b2c3d4e5f60718293a4b5c6d7e8f".into())],
        ),
        ("audit-task-failed.json", vec![Kind::AuditNotCompleted]),
        (
            "two-records.json",
            vec![
                Kind::Audit("7aa53579303b594f9bcb76082688a5de".into()),
                Kind::Audit("b1c2d3e4f5a60718293a4b5c6d7e8f90".into()),
            ],
        ),
        ("detect-violation.json", vec![Kind::Detect]),
        ("finding-notification.json", vec![Kind::FindingMessage]),
        ("not-json.json", vec![Kind::NotJson]),
        (
            "rollback.json",
            vec![Kind::Rollback("7aa53579303b594f9bcb76082688a5de".into())],
        ),
        (
            "sqs-sns-audit.json",
            vec![Kind::Audit("7aa53579303b594f9bcb76082688a5de".into())],
        ),
        (
            "sqs-jobs.json",
            vec![
                Kind::Job("WS_AUDIT_PermissivePolicy".into()),
                Kind::Job("DeviceFleetPolicy".into()),
            ],
        ),
    ])
}

fn kind(message: &Result<Message, RejectReason>) -> Kind {
    match message {
        Ok(Message::Audit(a)) if a.task_status == TaskStatus::Completed => {
            Kind::Audit(a.task_id.clone())
        }
        Ok(Message::Audit(_)) => Kind::AuditNotCompleted,
        Ok(Message::DetectViolation(_)) => Kind::Detect,
        Ok(Message::FindingNotification(_)) => Kind::FindingMessage,
        Err(RejectReason::NotJson(_)) => Kind::NotJson,
        Err(other) => panic!("unexpected rejection: {other}"),
    }
}

#[test]
fn every_event_file_parses_to_its_kind() {
    let dir = format!("{}/events", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    let expected = expected();
    assert_eq!(
        files,
        expected.keys().map(|k| k.to_string()).collect::<Vec<_>>(),
        "every file in events/ needs an expectation here"
    );
    for (name, kinds) in expected {
        let event = load_event(name);
        if event_kind(&event) == EventKind::Rollback {
            let request = parse_rollback(&event).unwrap();
            assert_eq!(vec![Kind::Rollback(request.task_id)], kinds, "{name}");
            continue;
        }
        if event_kind(&event) == EventKind::SqsJobs {
            let got: Vec<Kind> = event["Records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    let body = r["body"].as_str();
                    match classify_sqs_body(body) {
                        SqsBody::Message { message, .. } => kind(&message),
                        SqsBody::Job => Kind::Job(Job::parse(body).unwrap().policy.policy_name),
                    }
                })
                .collect();
            assert_eq!(got, kinds, "{name}");
            continue;
        }
        let records = classify_event(&event);
        let got: Vec<Kind> = records.iter().map(|r| kind(&r.message)).collect();
        assert_eq!(got, kinds, "{name}");
        assert!(
            records.iter().all(|r| r.message_id.is_some()),
            "{name}: MessageId kept"
        );
    }
}

/// A client whose only rules are an empty findings page and no suppressions: any other call
/// fails the test's assertions on the report, and the rules' counts show what was called.
fn empty_audit_client() -> (Client, Rule, Rule) {
    let list = mock!(Client::list_audit_findings).then_output(|| {
        ListAuditFindingsOutput::builder()
            .set_findings(Some(vec![]))
            .build()
    });
    let none_suppressed = mock!(Client::list_audit_suppressions)
        .then_output(|| ListAuditSuppressionsOutput::builder().build());
    let client = mock_client!(aws_sdk_iot, RuleMode::MatchAny, [&list, &none_suppressed]);
    (client, list, none_suppressed)
}

/// The SNS event `name` on [`empty_audit_client`]: its report and the listing's call count.
async fn handle(name: &str) -> (Value, usize) {
    let (client, list, _) = empty_audit_client();
    let report = handle_event(&app(client, test_config()), &load_event(name), Cutoff::NONE)
        .await
        .unwrap();
    (serde_json::to_value(report).unwrap(), list.num_calls())
}

#[tokio::test]
async fn messages_that_are_not_audits_are_skipped_without_an_iot_call() {
    for (name, reason) in [
        ("detect-violation.json", "detect_violation"),
        ("finding-notification.json", "finding_notification"),
        ("audit-task-failed.json", "task_not_completed"),
    ] {
        let (report, calls) = handle(name).await;
        assert_eq!(calls, 0, "{name}");
        assert_eq!(report["records"][0]["outcome"], "skipped", "{name}");
        assert_eq!(report["records"][0]["reason"], reason, "{name}");
        if name == "audit-task-failed.json" {
            assert_eq!(
                report["records"][0]["taskId"],
                "f00dfeedf00dfeedf00dfeedf00dfeed"
            );
        }
    }
}

#[tokio::test]
async fn not_json_is_rejected_and_does_not_fail_the_invocation() {
    let (report, calls) = handle("not-json.json").await;
    assert_eq!(calls, 0);
    let record = &report["records"][0];
    assert_eq!(record["outcome"], "rejected");
    assert_eq!(record["messageId"], "0f1e2d3c-4b5a-4697-8877-665544332211");
    assert!(record["reason"].as_str().unwrap().contains("not JSON"));
    assert_eq!(report["recordTotals"]["rejected"], 1);
}

/// The sample job batch through the handler with a client that answers nothing but the
/// suppressions: the in-scope job is named for another delivery (it could not read its
/// finding); the out-of-scope one is done without a call.
#[tokio::test]
async fn the_sample_job_batch_gets_a_partial_batch_response() {
    // No suppressions; any other call fails.
    let none_suppressed = mock!(Client::list_audit_suppressions)
        .then_output(|| ListAuditSuppressionsOutput::builder().build());
    let client = mock_client!(aws_sdk_iot, RuleMode::MatchAny, [&none_suppressed]);
    let response = iot_audit_remediator::entry::handle(
        &app(client, test_config()),
        &load_event("sqs-jobs.json"),
        Cutoff::NONE,
    )
    .await
    .unwrap();
    let v = serde_json::to_value(response).unwrap();
    assert_eq!(
        v["batchItemFailures"],
        serde_json::json!([{"itemIdentifier": "059f36b4-87a3-44ab-83d2-661975830a7d"}])
    );
    assert_eq!(v["totals"]["failed"], 1);
    assert_eq!(v["totals"]["skippedByReason"]["out_of_scope"], 1);
}

/// An audit message that came through an SQS buffer queue in its SNS envelope is the audit:
/// listed once, and the record is done (not in `batchItemFailures`).
#[tokio::test]
async fn the_buffered_audit_message_is_handled_as_from_sns() {
    let (client, list, none_suppressed) = empty_audit_client();
    let response = iot_audit_remediator::entry::handle(
        &app(client, test_config()),
        &load_event("sqs-sns-audit.json"),
        Cutoff::NONE,
    )
    .await
    .unwrap();
    let v = serde_json::to_value(response).unwrap();
    assert_eq!(v["batchItemFailures"], serde_json::json!([]));
    assert_eq!(list.num_calls(), 1);
    assert_eq!(none_suppressed.num_calls(), 1, "the audit's, none for jobs");
    let record = &v["messages"]["records"][0];
    assert_eq!(record["messageId"], "5f1bd3a6-52a8-4c2b-9a51-3c8a8e0c7d21");
    assert_eq!(record["outcome"], "processed");
    assert_eq!(record["taskId"], "7aa53579303b594f9bcb76082688a5de");
    assert_eq!(v["jobs"], 0);
}

#[tokio::test]
async fn compliant_check_lists_no_findings() {
    let (report, calls) = handle("audit-compliant.json").await;
    assert_eq!(calls, 0);
    assert_eq!(report["records"][0]["outcome"], "processed");
    assert_eq!(report["records"][0]["checks"][0]["handling"], "compliant");
}

#[tokio::test]
async fn both_records_of_an_event_are_handled_and_other_checks_reported() {
    let (report, calls) = handle("two-records.json").await;
    assert_eq!(calls, 2, "one listing per record");
    assert_eq!(report["recordTotals"]["processed"], 2);
    let checks = &report["records"][0]["checks"];
    assert_eq!(checks[0]["handling"], "findings_handled");
    assert_eq!(checks[1]["checkName"], "LOGGING_DISABLED_CHECK");
    assert_eq!(checks[1]["handling"], "not_handled");
    assert_eq!(checks[1]["nonCompliantResourcesCount"], 1);
}
