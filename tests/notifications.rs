//! End to end against the local endpoint: change notifications through moto's SNS, read back
//! from an SQS queue subscribed to the topic (SPEC §8).

mod common;

use common::*;
use iot_audit_remediator::config::Config;
use iot_audit_remediator::engine::Cutoff;
use iot_audit_remediator::entry::{handle, Response};
use serde_json::{json, Value};

fn notifying(topic: &str) -> Config {
    Config {
        notification_topic_arn: Some(topic.to_owned()),
        ..test_config()
    }
}

async fn audit(emu: &Emulator, config: Config) -> Value {
    let event = load_event("audit-non-compliant.json");
    match handle(&emu.notifying_app(config), &event, Cutoff::NONE).await {
        Ok(Response::Audit(report)) => serde_json::to_value(report).unwrap(),
        other => panic!("expected a report: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_message_per_audit_with_every_change_and_its_way_back() {
    let emu = Emulator::start();
    let iot = emu.client();
    let (topic, inbox) = topic_with_inbox(&emu).await;
    for name in ["WS_AUDIT_One", "WS_AUDIT_Two", "DeviceFleetPolicy"] {
        create_policy(&iot, name, PERMISSIVE).await;
    }
    emu.seed_findings(vec![
        finding(TASK, "WS_AUDIT_One", "1"),
        finding(TASK, "WS_AUDIT_Two", "1"),
        finding(TASK, "DeviceFleetPolicy", "1"),
    ]);
    let report = audit(&emu, notifying(&topic)).await;
    assert_eq!(report["totals"]["remediated"], 2, "{report:#}");

    let messages = received(&emu, &inbox).await;
    assert_eq!(messages.len(), 1, "{messages:#?}");
    let envelope = &messages[0];
    let subject = envelope["Subject"].as_str().unwrap();
    assert!(subject.len() <= 100 && subject.is_ascii(), "{subject}");
    assert!(
        subject.contains("2 remediated") && subject.contains("123456789012"),
        "{subject}"
    );
    let attributes = &envelope["MessageAttributes"];
    assert_eq!(attributes["kind"]["Value"], "audit");
    assert_eq!(attributes["outcome"]["Value"], "remediated");
    assert_eq!(attributes["taskId"]["Value"], TASK);
    assert_eq!(attributes["account"]["Value"], "123456789012");
    // What SQS subscribers get is the `default` member: the machine-readable summary.
    let summary: Value = serde_json::from_str(envelope["Message"].as_str().unwrap()).unwrap();
    let text = summary.to_string();
    for name in ["WS_AUDIT_One", "WS_AUDIT_Two"] {
        assert!(text.contains(name), "{name} named: {summary:#}");
    }
    assert!(
        !text.contains("DeviceFleetPolicy"),
        "skipped ones are not listed: {summary:#}"
    );
    let undo = json!({"rollback": {"taskId": TASK, "policyNames": ["WS_AUDIT_One"]}});
    assert!(
        text.contains(&undo["rollback"]["policyNames"].to_string()),
        "a rollback event per kept policy: {summary:#}"
    );
    assert!(text.contains("targetCount"), "{summary:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_sent_when_nothing_changed() {
    let emu = Emulator::start();
    let iot = emu.client();
    let (topic, inbox) = topic_with_inbox(&emu).await;
    create_policy(&iot, "WS_AUDIT_One", PERMISSIVE).await;
    emu.seed_findings(vec![finding(TASK, "WS_AUDIT_One", "1")]);
    audit(&emu, notifying(&topic)).await;
    assert_eq!(received(&emu, &inbox).await.len(), 1);
    // The same event again: already remediated, nothing changed, nothing sent.
    let again = audit(&emu, notifying(&topic)).await;
    assert_eq!(again["totals"]["skipped"], 1, "{again:#}");
    assert!(received(&emu, &inbox).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_that_does_not_exist_costs_the_notification_not_the_remediation() {
    let emu = Emulator::start();
    let iot = emu.client();
    create_policy(&iot, "WS_AUDIT_One", PERMISSIVE).await;
    emu.seed_findings(vec![finding(TASK, "WS_AUDIT_One", "1")]);
    let report = audit(&emu, notifying("arn:aws:sns:us-east-1:123456789012:absent")).await;
    assert_eq!(report["totals"]["remediated"], 1, "{report:#}");
    assert_eq!(report["notificationErrors"], 1);
    assert_eq!(default_document(&iot, "WS_AUDIT_One").await, restrictive());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_batch_sends_its_own_batch_message() {
    let emu = Emulator::start();
    let iot = emu.client();
    let (topic, inbox) = topic_with_inbox(&emu).await;
    create_policy(&iot, "WS_AUDIT_Job", PERMISSIVE).await;
    let finding = finding(TASK, "WS_AUDIT_Job", "1");
    emu.seed_findings(vec![finding.clone()]);
    let body = json!({"taskId": TASK, "findingId": finding["findingId"], "policyName": "WS_AUDIT_Job", "policyVersionId": "1"});
    let event = json!({"Records": [{
        "messageId": "m1", "receiptHandle": "r", "body": body.to_string(),
        "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
        "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:jobs",
        "awsRegion": "us-east-1"
    }]});
    match handle(&emu.notifying_app(notifying(&topic)), &event, Cutoff::NONE).await {
        Ok(Response::Jobs(report)) => assert_eq!(report.totals.remediated, 1),
        other => panic!("expected a batch answer: {other:?}"),
    }
    let messages = received(&emu, &inbox).await;
    assert_eq!(messages.len(), 1, "{messages:#?}");
    let attributes = &messages[0]["MessageAttributes"];
    assert_eq!(attributes["kind"]["Value"], "batch");
    assert_eq!(attributes["outcome"]["Value"], "remediated");
    assert_eq!(
        attributes["taskId"]["Value"], TASK,
        "the one task of the batch"
    );
}
