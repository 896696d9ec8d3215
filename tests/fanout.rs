//! Fan-out end to end: the SNS path enqueues through the real SQS SDK client into moto's SQS
//! (same local endpoint as IoT), then the SQS path is driven with received batches, the way
//! Lambda's event source mapping does it, by several workers at once.

mod common;

use std::collections::BTreeSet;

use common::*;
use iot_audit_remediator::domain::Job;
use iot_audit_remediator::engine::Cutoff;
use iot_audit_remediator::entry::{handle, InvocationError, Response};
use serde_json::{json, Value};

/// `n` permissive in-scope policies with one finding each, plus findings the SNS path must
/// screen out: out of scope, suppressed, a second finding for one policy.
async fn seed_audit(emu: &Emulator, n: usize) {
    let iot = emu.client();
    for i in 0..n {
        create_policy(&iot, &format!("WS_AUDIT_F{i:05}"), PERMISSIVE).await;
    }
    create_policy(&iot, "DeviceFleetPolicy", PERMISSIVE).await;
    create_policy(&iot, "WS_AUDIT_Suppressed", PERMISSIVE).await;
    emu.generate_findings(TASK, "WS_AUDIT_F", n);
    let mut suppressed = finding(TASK, "WS_AUDIT_Suppressed", "1");
    suppressed["isSuppressed"] = json!(true);
    let mut again = finding(TASK, "WS_AUDIT_F00000", "1");
    again["findingId"] = json!("a-second-finding");
    emu.seed_findings(vec![
        finding(TASK, "DeviceFleetPolicy", "1"),
        suppressed,
        again,
    ]);
}

async fn enqueue(emu: &Emulator, url: &str) -> Value {
    let app = emu.fanout_app(fanout_config(url, 3));
    let response = handle(&app, &load_event("audit-non-compliant.json"), Cutoff::NONE)
        .await
        .unwrap_or_else(|e| panic!("the SNS invocation failed: {e}"));
    serde_json::to_value(response).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_is_fanned_out_and_every_policy_remediated_once() {
    let emu = Emulator::start();
    let iot = emu.client();
    let sqs = emu.sqs();
    let n = 45;
    seed_audit(&emu, n).await;
    // Nothing here is meant to come back: a visibility timeout far above a batch's time, so
    // that a slow machine does not redeliver a job still being worked on.
    let queues = create_queues(&sqs, "jobs", 3, 60).await;
    emu.clear_requests();

    let report = enqueue(&emu, &queues.url).await;
    assert_eq!(report["totals"]["enqueued"], n);
    assert_eq!(report["totals"]["remediated"], 0);
    let reasons = &report["totals"]["skippedByReason"];
    assert_eq!(reasons["out_of_scope"], 1);
    assert!(
        reasons["suppressed"].is_null(),
        "suppressed findings are not even listed"
    );
    assert_eq!(reasons["duplicate_finding"], 1);
    assert_eq!(
        report["records"][0]["checks"][0]["handling"],
        "findings_enqueued"
    );
    assert!(
        emu.writes().is_empty(),
        "the SNS path writes nothing to IoT"
    );
    assert_eq!(emu.count("GetPolicy"), 0, "nor reads a policy");
    assert_eq!(queue_depth(&sqs, &queues.url).await, (n as u64, 0));

    let workers = (0..3)
        .map(|_| emu.fanout_app(fanout_config(&queues.url, 3)))
        .collect();
    let drive = drive_queue(&sqs, &queues, workers, 10).await;
    assert_eq!(drive.messages, n, "each job delivered once: {drive:?}");
    assert_eq!(drive.returned, 0);

    let writes = emu.writes();
    for i in 0..n {
        let name = format!("WS_AUDIT_F{i:05}");
        assert_remediated(&iot, &name, false).await;
        let creates = writes
            .iter()
            .filter(|w| **w == format!("CreatePolicyVersion {name}"))
            .count();
        assert_eq!(creates, 1, "{name} remediated exactly once");
    }
    for untouched in ["DeviceFleetPolicy", "WS_AUDIT_Suppressed"] {
        assert_eq!(versions(&iot, untouched).await.len(), 1);
        assert_eq!(default_document(&iot, untouched).await, permissive());
    }
    assert_eq!(queue_depth(&sqs, &queues.url).await, (0, 0));
    assert!(drain_bodies(&sqs, &queues.dlq_url).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_jobs_come_back_and_poison_jobs_reach_the_dead_letter_queue() {
    let emu = Emulator::start();
    let iot = emu.client();
    let sqs = emu.sqs();
    let n = 20;
    seed_audit(&emu, n).await;
    // Long enough for a batch (each job reads its finding, then its policy through the SDK's
    // retries) to finish before its messages are due again; a returned job waits this long.
    let queues = create_queues(&sqs, "jobs", 3, 5).await;
    enqueue(&emu, &queues.url).await;
    let poison = ["not json", r#"{"taskId": "t", "policyVersionId": "1"}"#];
    for body in poison {
        sqs.send_message()
            .queue_url(&queues.url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    // Most calls fail with a 500 even after the SDK's retries: those jobs must come back.
    emu.faults(json!({"operations": {"GetPolicy": {"error_rate": 0.9}}}));
    let workers = (0..2)
        .map(|_| emu.fanout_app(fanout_config(&queues.url, 2)))
        .collect();
    let drive = drive_queue(&sqs, &queues, workers, 5).await;
    assert!(
        drive.returned > 0,
        "the faults made some jobs fail: {drive:?}"
    );
    emu.faults(json!({}));

    // Nothing is lost: what is not done is in the dead-letter queue, poison included. As an
    // operator would, send the real jobs back once the faults are gone.
    let (jobs, poisoned): (Vec<String>, Vec<String>) = drain_bodies(&sqs, &queues.dlq_url)
        .await
        .into_iter()
        .partition(|body| Job::parse(Some(body)).is_ok());
    assert_eq!(
        poisoned.iter().map(String::as_str).collect::<BTreeSet<_>>(),
        BTreeSet::from(poison)
    );
    for body in jobs {
        sqs.send_message()
            .queue_url(&queues.url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    let workers = vec![emu.fanout_app(fanout_config(&queues.url, 2))];
    let redrive = drive_queue(&sqs, &queues, workers, 10).await;
    assert_eq!(redrive.returned, 0);
    for i in 0..n {
        assert_remediated(&iot, &format!("WS_AUDIT_F{i:05}"), false).await;
    }
    assert_eq!(queue_depth(&sqs, &queues.url).await, (0, 0));
}

fn record(id: &str, body: &str) -> Value {
    json!({"messageId": id, "receiptHandle": format!("rh-{id}"), "body": body,
        "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
        "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:jobs",
        "awsRegion": "us-east-1"})
}

fn job_for(finding: &Value) -> String {
    let version = &finding["nonCompliantResource"]["resourceIdentifier"]["policyVersionIdentifier"];
    json!({"taskId": finding["taskId"], "findingId": finding["findingId"],
        "policyName": version["policyName"], "policyVersionId": version["policyVersionId"]})
    .to_string()
}

/// A job as the SNS door writes it, with its finding seeded: a genuine job.
fn job(emu: &Emulator, policy: &str, version: &str) -> String {
    let finding = finding(TASK, policy, version);
    emu.seed_findings(vec![finding.clone()]);
    job_for(&finding)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_names_exactly_the_jobs_to_deliver_again() {
    let emu = Emulator::start();
    let iot = emu.client();
    create_policy(&iot, "WS_AUDIT_Good", PERMISSIVE).await;
    create_policy(&iot, "WS_AUDIT_Done", PERMISSIVE).await;
    create_policy(&iot, "WS_AUDIT_Broken", PERMISSIVE).await;
    create_policy(&iot, "DeviceFleetPolicy", PERMISSIVE).await;
    let app = emu.app(deleting_config());
    let event = json!({"Records": [record("m0", &job(&emu, "WS_AUDIT_Done", "1"))]});
    handle(&app, &event, Cutoff::NONE).await.unwrap();
    assert_remediated(&iot, "WS_AUDIT_Done", false).await;
    emu.clear_requests();

    let event = json!({"Records": [
        record("m1", &job(&emu, "WS_AUDIT_Good", "1")),
        record("m2", &job(&emu, "WS_AUDIT_Done", "1")),
        record("m3", &job(&emu, "DeviceFleetPolicy", "1")),
        record("m4", "{\"policyName\": 1}"),
        record("m5", &job(&emu, "WS_AUDIT_Gone", "1")),
        record("m6", &job(&emu, "WS_AUDIT_Good", "1")),
        record("m7", &job(&emu, "WS_AUDIT_Broken", "9")),
    ]});
    let response = handle(&app, &event, Cutoff::NONE).await.unwrap();
    let Response::Jobs(report) = &response else {
        panic!("{response:?}")
    };
    let v = serde_json::to_value(&response).unwrap();
    assert_eq!(
        v["batchItemFailures"],
        json!([{"itemIdentifier": "m4"}]),
        "only the body that is not a job: done, skipped, stale and duplicate jobs are all done"
    );
    assert_eq!((report.jobs, report.rejected), (7, 1));
    let t = &report.totals;
    assert_eq!(t.remediated, 1);
    assert_eq!(t.skipped, 5, "{t:?}");
    assert_remediated(&iot, "WS_AUDIT_Good", false).await;
    assert_eq!(
        emu.writes(),
        [
            "CreatePolicyVersion WS_AUDIT_Good",
            "DeletePolicyVersion WS_AUDIT_Good"
        ],
        "the out-of-scope job reads nothing and writes nothing"
    );
    assert_eq!(
        default_document(&iot, "DeviceFleetPolicy").await,
        permissive()
    );

    // A job whose IoT calls fail is named; the others in the batch are done.
    emu.faults(json!({"operations": {"CreatePolicyVersion": {"error_rate": 1.0}}}));
    let event = json!({"Records": [
        record("m8", &job(&emu, "WS_AUDIT_Broken", "1")),
        record("m9", &job(&emu, "WS_AUDIT_Done", "1")),
    ]});
    let v = serde_json::to_value(handle(&app, &event, Cutoff::NONE).await.unwrap()).unwrap();
    assert_eq!(v["batchItemFailures"], json!([{"itemIdentifier": "m8"}]));
    assert_eq!(v["totals"]["failed"], 1);
    assert_eq!(versions(&iot, "WS_AUDIT_Broken").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_jobs_for_one_policy_run_one_after_the_other() {
    let emu = Emulator::start();
    let iot = emu.client();
    // Version 1 flagged by an older audit, version 2 (also permissive) the default now.
    create_policy(&iot, "WS_AUDIT_Twice", PERMISSIVE).await;
    iot.create_policy_version()
        .policy_name("WS_AUDIT_Twice")
        .policy_document(PERMISSIVE)
        .set_as_default(true)
        .send()
        .await
        .unwrap();
    let app = emu.app(deleting_config());
    let event = json!({"Records": [
        record("old", &job(&emu, "WS_AUDIT_Twice", "1")),
        record("new", &job(&emu, "WS_AUDIT_Twice", "2")),
        record("new", &job(&emu, "WS_AUDIT_Twice", "2")),
    ]});
    let v = serde_json::to_value(handle(&app, &event, Cutoff::NONE).await.unwrap()).unwrap();
    assert_eq!(v["batchItemFailures"], json!([]));
    assert_eq!(v["totals"]["remediated"], 1, "{v}");
    assert_eq!(v["totals"]["skippedByReason"]["stale_finding"], 1);
    assert_eq!(
        v["totals"]["findings"], 2,
        "the repeated message is one job"
    );
    assert_eq!(
        default_document(&iot, "WS_AUDIT_Twice").await,
        restrictive()
    );

    // A message twice in a batch whose job fails is named, whatever the copy.
    create_policy(&iot, "WS_AUDIT_Fails", PERMISSIVE).await;
    emu.faults(json!({"operations": {"CreatePolicyVersion": {"error_rate": 1.0}}}));
    let event = json!({"Records": [
        record("m1", &job(&emu, "WS_AUDIT_Fails", "1")),
        record("m1", &job(&emu, "WS_AUDIT_Fails", "1")),
    ]});
    let v = serde_json::to_value(handle(&app, &event, Cutoff::NONE).await.unwrap()).unwrap();
    assert_eq!(v["batchItemFailures"], json!([{"itemIdentifier": "m1"}]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_for_a_version_suppressed_since_is_done_with_no_write() {
    let emu = Emulator::start();
    let iot = emu.client();
    create_policy(&iot, "WS_AUDIT_Kept", PERMISSIVE).await;
    create_policy(&iot, "WS_AUDIT_Fixed", PERMISSIVE).await;
    // Suppressed after the audit ran (by a person, or a rollback): its queued job must not
    // undo that.
    let version = aws_sdk_iot::types::PolicyVersionIdentifier::builder()
        .policy_name("WS_AUDIT_Kept")
        .policy_version_id("1")
        .build();
    iot.create_audit_suppression()
        .check_name(CHECK)
        .resource_identifier(
            aws_sdk_iot::types::ResourceIdentifier::builder()
                .policy_version_identifier(version)
                .build(),
        )
        .suppress_indefinitely(true)
        .send()
        .await
        .unwrap();
    emu.clear_requests();
    let event = json!({"Records": [
        record("kept", &job(&emu, "WS_AUDIT_Kept", "1")),
        record("fixed", &job(&emu, "WS_AUDIT_Fixed", "1")),
    ]});
    let app = emu.app(deleting_config());
    let v = serde_json::to_value(handle(&app, &event, Cutoff::NONE).await.unwrap()).unwrap();
    assert_eq!(v["batchItemFailures"], json!([]), "both done");
    assert_eq!(v["totals"]["skippedByReason"]["suppressed"], 1, "{v}");
    assert_eq!(v["totals"]["remediated"], 1);
    assert_eq!(emu.count("ListAuditSuppressions"), 1, "read once per batch");
    assert!(
        emu.writes().iter().all(|w| !w.ends_with("WS_AUDIT_Kept")),
        "{:?}",
        emu.writes()
    );
    assert_eq!(default_document(&iot, "WS_AUDIT_Kept").await, permissive());
}

/// SPEC §10: a job is a claim. Only a job its finding backs is acted on; the others are done
/// (not retried: a retry would read the same finding) with no write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_their_findings_do_not_back_are_done_with_no_write() {
    let emu = Emulator::start();
    let iot = emu.client();
    let names = [
        "Genuine",
        "Forged",
        "Suppressed",
        "OtherVersion",
        "OtherCheck",
        "NoFinding",
    ];
    for name in names {
        create_policy(&iot, &format!("WS_AUDIT_{name}"), PERMISSIVE).await;
    }
    let genuine = job(&emu, "WS_AUDIT_Genuine", "1");
    let mut suppressed = finding(TASK, "WS_AUDIT_Suppressed", "1");
    suppressed["isSuppressed"] = json!(true);
    let mut other_check = finding(TASK, "WS_AUDIT_OtherCheck", "1");
    other_check["checkName"] = json!("IOT_ROLE_ALIAS_OVERLY_PERMISSIVE_CHECK");
    let other_version = finding(TASK, "WS_AUDIT_OtherVersion", "2");
    emu.seed_findings(vec![
        suppressed.clone(),
        other_check.clone(),
        other_version.clone(),
    ]);
    // The finding names version 2; the job claims version 1, the policy's default.
    let claims_v1 =
        job_for(&other_version).replace("\"policyVersionId\":\"2\"", "\"policyVersionId\":\"1\"");
    assert!(
        claims_v1.contains("\"policyVersionId\":\"1\""),
        "{claims_v1}"
    );
    let forged = json!({"taskId": TASK, "findingId": "made-up", "policyName": "WS_AUDIT_Forged",
        "policyVersionId": "1"});
    let anonymous =
        json!({"taskId": TASK, "policyName": "WS_AUDIT_NoFinding", "policyVersionId": "1"});
    emu.clear_requests();
    let event = json!({"Records": [
        record("genuine", &genuine),
        record("forged", &forged.to_string()),
        record("suppressed", &job_for(&suppressed)),
        record("other-version", &claims_v1),
        record("other-check", &job_for(&other_check)),
        record("no-finding-id", &anonymous.to_string()),
    ]});
    let app = emu.app(deleting_config());
    let v = serde_json::to_value(handle(&app, &event, Cutoff::NONE).await.unwrap()).unwrap();
    assert_eq!(
        v["batchItemFailures"],
        json!([]),
        "all done, none retried: {v}"
    );
    assert_eq!(v["totals"]["remediated"], 1);
    assert_eq!(v["totals"]["skippedByReason"]["unverified_job"], 5, "{v}");
    assert_eq!(
        emu.writes(),
        [
            "CreatePolicyVersion WS_AUDIT_Genuine",
            "DeletePolicyVersion WS_AUDIT_Genuine"
        ]
    );
    assert_eq!(
        emu.count("DescribeAuditFinding"),
        5,
        "the job without findingId costs no call"
    );
    assert_eq!(
        emu.count("GetPolicy"),
        1,
        "an unverified job reads no policy"
    );
    for name in &names[1..] {
        let policy = format!("WS_AUDIT_{name}");
        assert_eq!(
            default_document(&iot, &policy).await,
            permissive(),
            "{policy}"
        );
    }

    // A finding that cannot be read is no verdict: the job comes back.
    emu.faults(json!({"operations": {"DescribeAuditFinding": {"error_rate": 1.0}}}));
    let event = json!({"Records": [record("again", &job(&emu, "WS_AUDIT_Forged", "1"))]});
    let v = serde_json::to_value(handle(&app, &event, Cutoff::NONE).await.unwrap()).unwrap();
    assert_eq!(v["batchItemFailures"], json!([{"itemIdentifier": "again"}]));
    assert_eq!(v["totals"]["failed"], 1);
    assert_eq!(
        default_document(&iot, "WS_AUDIT_Forged").await,
        permissive()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_without_a_message_id_fails_the_whole_batch() {
    let emu = Emulator::start();
    let app = emu.app(deleting_config());
    let mut unnamed = record("x", &job(&emu, "WS_AUDIT_Gone", "1"));
    unnamed.as_object_mut().unwrap().remove("messageId");
    let event = json!({"Records": [record("m1", &job(&emu, "WS_AUDIT_Gone", "1")), unnamed]});
    let err = handle(&app, &event, Cutoff::NONE).await.unwrap_err();
    assert!(matches!(err, InvocationError::UnnamedRecords(1)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_audit_stays_inline_below_the_threshold() {
    let emu = Emulator::start();
    let iot = emu.client();
    let sqs = emu.sqs();
    let queues = create_queues(&sqs, "jobs", 3, 2).await;
    create_policy(&iot, "WS_AUDIT_PermissivePolicy", PERMISSIVE).await;
    emu.seed_findings(vec![finding(TASK, "WS_AUDIT_PermissivePolicy", "1")]);
    // The sample event says the check has 2 non-compliant resources.
    let mut config = fanout_config(&queues.url, 2);
    config.fanout.as_mut().unwrap().inline_max_findings = 2;
    let app = emu.fanout_app(config);
    let v = serde_json::to_value(
        handle(&app, &load_event("audit-non-compliant.json"), Cutoff::NONE)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(v["totals"]["remediated"], 1);
    assert_eq!(v["totals"]["enqueued"], 0);
    assert_eq!(v["records"][0]["checks"][0]["handling"], "findings_handled");
    assert_eq!(queue_depth(&sqs, &queues.url).await, (0, 0));
    assert_remediated(&iot, "WS_AUDIT_PermissivePolicy", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_that_cannot_be_reached_fails_the_audit_invocation() {
    let emu = Emulator::start();
    let iot = emu.client();
    create_policy(&iot, "WS_AUDIT_PermissivePolicy", PERMISSIVE).await;
    emu.seed_findings(vec![finding(TASK, "WS_AUDIT_PermissivePolicy", "1")]);
    let missing = format!("{}/123456789012/no-such-queue", emu.url);
    let app = emu.fanout_app(fanout_config(&missing, 2));
    let err = handle(&app, &load_event("audit-non-compliant.json"), Cutoff::NONE)
        .await
        .unwrap_err();
    let InvocationError::Incomplete(incomplete) = err else {
        panic!("{err}")
    };
    assert_eq!(incomplete.failed, 1);
    let v = serde_json::to_value(&incomplete.report).unwrap();
    let error = v["records"][0]["findings"][0]["error"].as_str().unwrap();
    assert!(error.contains("SendMessageBatch"), "{error}");
    assert!(emu.writes().is_empty());
}
