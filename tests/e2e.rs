//! End to end against the local IoT endpoint: moto's real policy-version rules behind the
//! project's audit layer, the real SDK client, the handler fed with `events/` files.

mod common;

use common::*;
use iot_audit_remediator::config::Config;
use iot_audit_remediator::engine::Cutoff;
use iot_audit_remediator::entry::handle;
use iot_audit_remediator::entry::sns::handle_event;
use serde_json::{json, Value};

fn dry_run() -> Config {
    Config {
        dry_run: true,
        ..deleting_config()
    }
}

async fn run(emu: &Emulator, config: Config, event: &str) -> Value {
    let report = handle_event(&emu.app(config), &load_event(event), Cutoff::NONE)
        .await
        .unwrap_or_else(|e| panic!("invocation failed: {e}\n{:#?}", e.report));
    serde_json::to_value(report).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remediates_in_scope_and_leaves_the_rest_untouched() {
    let emu = Emulator::start();
    let iot = emu.client();
    create_policy(&iot, "WS_AUDIT_PermissivePolicy", PERMISSIVE).await;
    create_policy(&iot, "DeviceFleetPolicy", PERMISSIVE).await;
    emu.seed_findings(vec![
        finding(TASK, "WS_AUDIT_PermissivePolicy", "1"),
        finding(TASK, "DeviceFleetPolicy", "1"),
    ]);
    emu.clear_requests();
    let report = run(&emu, deleting_config(), "audit-non-compliant.json").await;
    let counts = emu.counts();
    let writes = emu.writes();

    assert_eq!(
        default_document(&iot, "WS_AUDIT_PermissivePolicy").await,
        restrictive()
    );
    assert_remediated(&iot, "WS_AUDIT_PermissivePolicy", false).await;
    let fleet = versions(&iot, "DeviceFleetPolicy").await;
    assert_eq!(fleet.len(), 1);
    assert_eq!(fleet[0].2, permissive());
    assert_eq!(
        writes,
        [
            "CreatePolicyVersion WS_AUDIT_PermissivePolicy",
            "DeletePolicyVersion WS_AUDIT_PermissivePolicy"
        ]
    );
    // The minimal calls of SPEC §5: one listing, then GetPolicy, Create, Delete.
    assert_eq!(counts["ListAuditFindings"], 1);
    assert_eq!(
        counts["GetPolicy"], 1,
        "the out-of-scope policy is not even read"
    );
    assert_eq!(counts["CreatePolicyVersion"], 1);
    assert_eq!(counts["DeletePolicyVersion"], 1);
    let findings = report["records"][0]["findings"].as_array().unwrap();
    let ws = findings
        .iter()
        .find(|f| f["policyName"] == "WS_AUDIT_PermissivePolicy")
        .unwrap();
    assert_eq!(ws["outcome"], "remediated");
    assert_eq!(ws["newVersionId"], "2");
    assert_eq!(ws["deletedVersionIds"], json!(["1"]));
    assert_eq!(
        serde_json::from_str::<Value>(ws["replacedDocument"].as_str().unwrap()).unwrap(),
        permissive()
    );
    let fleet = findings
        .iter()
        .find(|f| f["policyName"] == "DeviceFleetPolicy")
        .unwrap();
    assert_eq!(fleet["reason"], "out_of_scope");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_versions_with_the_permissive_one_default_and_oldest() {
    let emu = Emulator::start();
    let iot = emu.client();
    let name = "WS_AUDIT_Full";
    create_policy(&iot, name, PERMISSIVE).await;
    for i in 0..4 {
        let doc = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect",
            "Resource": format!("arn:aws:iot:*:*:client/old-{i}")}]});
        iot.create_policy_version()
            .policy_name(name)
            .policy_document(doc.to_string())
            .set_as_default(false)
            .send()
            .await
            .unwrap();
    }
    assert_eq!(versions(&iot, name).await.len(), 5);
    emu.seed_findings(vec![finding(TASK, name, "1")]);
    emu.clear_requests();
    let report = run(&emu, deleting_config(), "audit-non-compliant.json").await;
    assert_eq!(emu.count("ListPolicyVersions"), 1);
    assert_eq!(
        emu.count("CreatePolicyVersion"),
        2,
        "the limit error, then the create after freeing a slot"
    );

    let after = versions(&iot, name).await;
    let ids: Vec<&str> = after.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(
        ids,
        ["3", "4", "5", "6"],
        "oldest non-default (2) and the replaced default (1) deleted"
    );
    assert_remediated(&iot, name, false).await;
    let f = &report["records"][0]["findings"][0];
    assert_eq!(f["deletedVersionIds"], json!(["2", "1"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_hundred_findings_over_three_pages() {
    let emu = Emulator::start();
    let iot = emu.client();
    for i in 0..600 {
        create_policy(&iot, &format!("WS_AUDIT_P{i:05}"), PERMISSIVE).await;
    }
    emu.generate_findings(TASK, "WS_AUDIT_P", 600);
    emu.clear_requests();
    let config = Config {
        max_concurrency: 8.try_into().unwrap(),
        ..deleting_config()
    };
    let report = run(&emu, config, "audit-non-compliant.json").await;
    assert_eq!(report["totals"]["remediated"], 600);
    assert_eq!(emu.count("ListAuditFindings"), 3);
    assert_eq!(emu.count("CreatePolicyVersion"), 600);
    assert_eq!(emu.count("DeletePolicyVersion"), 600);
    for i in [0, 249, 250, 599] {
        assert_remediated(&iot, &format!("WS_AUDIT_P{i:05}"), false).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suppressed_and_stale_findings_are_left_alone() {
    let emu = Emulator::start();
    let iot = emu.client();
    create_policy(&iot, "WS_AUDIT_Suppressed", PERMISSIVE).await;
    create_policy(&iot, "WS_AUDIT_Stale", PERMISSIVE).await;
    // After the audit someone installed version 2 (still not the restrictive one).
    let newer = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect",
        "Resource": "arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"}]});
    iot.create_policy_version()
        .policy_name("WS_AUDIT_Stale")
        .policy_document(newer.to_string())
        .set_as_default(true)
        .send()
        .await
        .unwrap();
    let mut suppressed = finding(TASK, "WS_AUDIT_Suppressed", "1");
    suppressed["isSuppressed"] = json!(true);
    emu.seed_findings(vec![suppressed, finding(TASK, "WS_AUDIT_Stale", "1")]);
    emu.clear_requests();
    let report = run(&emu, deleting_config(), "audit-non-compliant.json").await;

    assert!(emu.writes().is_empty(), "{:?}", emu.writes());
    assert_eq!(
        default_document(&iot, "WS_AUDIT_Suppressed").await,
        permissive()
    );
    assert_eq!(default_document(&iot, "WS_AUDIT_Stale").await, newer);
    let findings = report["records"][0]["findings"].as_array().unwrap();
    assert_eq!(
        findings.len(),
        1,
        "the suppressed finding is not even listed"
    );
    assert_eq!(findings[0]["reason"], "stale_finding");
    assert_eq!(findings[0]["defaultVersionId"], "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_event_twice_makes_no_new_version() {
    let emu = Emulator::start();
    let iot = emu.client();
    create_policy(&iot, "WS_AUDIT_Twice", PERMISSIVE).await;
    emu.seed_findings(vec![finding(TASK, "WS_AUDIT_Twice", "1")]);
    run(&emu, deleting_config(), "audit-non-compliant.json").await;
    let after_first = versions(&iot, "WS_AUDIT_Twice").await;
    emu.clear_requests();
    let second = run(&emu, deleting_config(), "audit-non-compliant.json").await;
    // The second run reads the policy and its versions, and writes nothing.
    assert!(emu.writes().is_empty(), "{:?}", emu.writes());
    assert_eq!(emu.count("GetPolicy"), 1);
    assert_eq!(emu.count("ListPolicyVersions"), 1);

    assert_eq!(versions(&iot, "WS_AUDIT_Twice").await, after_first);
    assert_eq!(
        second["records"][0]["findings"][0]["reason"],
        "already_remediated"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_that_need_no_work_make_no_iot_call() {
    let emu = Emulator::start();
    let iot = emu.client();
    create_policy(&iot, "WS_AUDIT_PermissivePolicy", PERMISSIVE).await;
    emu.seed_findings(vec![finding(TASK, "WS_AUDIT_PermissivePolicy", "1")]);
    emu.clear_requests();
    for (event, outcome) in [
        ("detect-violation.json", "skipped"),
        ("finding-notification.json", "skipped"),
        ("not-json.json", "rejected"),
        ("audit-task-failed.json", "skipped"),
        ("audit-compliant.json", "processed"),
    ] {
        let report = run(&emu, deleting_config(), event).await;
        assert_eq!(report["records"][0]["outcome"], outcome, "{event}");
    }
    assert_eq!(emu.requests(), Vec::<Value>::new(), "not one IoT call");
    assert_eq!(
        default_document(&iot, "WS_AUDIT_PermissivePolicy").await,
        permissive()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_server_errors_still_remediate_everything() {
    let emu = Emulator::start();
    let iot = emu.client();
    for i in 0..60 {
        create_policy(&iot, &format!("WS_AUDIT_F{i:05}"), PERMISSIVE).await;
    }
    emu.generate_findings(TASK, "WS_AUDIT_F", 60);
    emu.faults(json!({"seed": 7, "default": {"throttle_rate": 0.2, "error_rate": 0.05}}));
    let report = run(&emu, deleting_config(), "audit-non-compliant.json").await;
    emu.faults(json!({}));

    let faults = emu.control("GET", "/_emulator/requests", None)["faults"].clone();
    assert!(
        faults["throttle"].as_u64().unwrap() > 10,
        "faults were injected: {faults}"
    );
    assert!(
        faults["error"].as_u64().unwrap() > 0,
        "faults were injected: {faults}"
    );
    assert_eq!(report["totals"]["remediated"], 60);
    for i in 0..60 {
        assert_remediated(&iot, &format!("WS_AUDIT_F{i:05}"), false).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_makes_zero_writes() {
    let emu = Emulator::start();
    let iot = emu.client();
    create_policy(&iot, "WS_AUDIT_PermissivePolicy", PERMISSIVE).await;
    emu.seed_findings(vec![finding(TASK, "WS_AUDIT_PermissivePolicy", "1")]);
    emu.clear_requests();
    let report = run(&emu, dry_run(), "audit-non-compliant.json").await;
    assert!(emu.writes().is_empty());
    assert_eq!(emu.count("GetPolicy"), 1, "every read still happens");
    assert_eq!(
        report["records"][0]["findings"][0]["outcome"],
        "would_remediate"
    );
    assert_eq!(
        default_document(&iot, "WS_AUDIT_PermissivePolicy").await,
        permissive()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_records_are_both_handled() {
    let emu = Emulator::start();
    let iot = emu.client();
    create_policy(&iot, "WS_AUDIT_First", PERMISSIVE).await;
    create_policy(&iot, "WS_AUDIT_Second", PERMISSIVE).await;
    emu.seed_findings(vec![
        finding(TASK, "WS_AUDIT_First", "1"),
        finding("b1c2d3e4f5a60718293a4b5c6d7e8f90", "WS_AUDIT_Second", "1"),
    ]);
    let report = run(&emu, deleting_config(), "two-records.json").await;
    assert_eq!(report["recordTotals"]["processed"], 2);
    assert_eq!(report["totals"]["remediated"], 2);
    assert_remediated(&iot, "WS_AUDIT_First", false).await;
    assert_remediated(&iot, "WS_AUDIT_Second", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_replaced_version_leaves_a_rollback_target() {
    let emu = Emulator::start();
    let iot = emu.client();
    create_policy(&iot, "WS_AUDIT_Keep", PERMISSIVE).await;
    emu.seed_findings(vec![finding(TASK, "WS_AUDIT_Keep", "1")]);
    let config = Config {
        keep_replaced_version: true,
        ..deleting_config()
    };
    let report = run(&emu, config.clone(), "audit-non-compliant.json").await;
    assert_remediated(&iot, "WS_AUDIT_Keep", true).await;
    assert_eq!(report["records"][0]["findings"][0]["keptVersionId"], "1");
    // A second delivery changes nothing.
    emu.clear_requests();
    run(&emu, config, "audit-non-compliant.json").await;
    assert!(emu.writes().is_empty());
    assert_remediated(&iot, "WS_AUDIT_Keep", true).await;
}

/// Two deliveries of one event at the same moment (SNS and Lambda deliver at least once).
async fn concurrent_deliveries(keep: bool) {
    let emu = Emulator::start();
    let iot = emu.client();
    for i in 0..40 {
        create_policy(&iot, &format!("WS_AUDIT_C{i:05}"), PERMISSIVE).await;
    }
    emu.generate_findings(TASK, "WS_AUDIT_C", 40);
    // Latency widens the window in which both runs work on the same policy.
    emu.faults(json!({"default": {"latency_ms": 5}}));
    let config = Config {
        keep_replaced_version: keep,
        ..deleting_config()
    };
    let event = load_event("audit-non-compliant.json");
    let (a, b) = (emu.app(config.clone()), emu.app(config));
    let (ra, rb) = tokio::join!(
        handle_event(&a, &event, Cutoff::NONE),
        handle_event(&b, &event, Cutoff::NONE)
    );
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.totals.failed + rb.totals.failed, 0);
    assert!(ra.totals.remediated + rb.totals.remediated >= 40);
    for i in 0..40 {
        assert_remediated(&iot, &format!("WS_AUDIT_C{i:05}"), keep).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_deliveries_converge_to_one_restrictive_version() {
    concurrent_deliveries(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_deliveries_converge_when_keeping_the_replaced_version() {
    concurrent_deliveries(true).await;
}

/// SPEC §10: SNS → SQS → Lambda. An SQS record whose body is the SNS envelope, or (raw message
/// delivery) the audit message itself, is that audit: remediated as from SNS, and the record
/// done. A record whose audit is incomplete comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_message_through_an_sqs_buffer_is_remediated_as_from_sns() {
    let emu = Emulator::start();
    let iot = emu.client();
    create_policy(&iot, "WS_AUDIT_Buffered", PERMISSIVE).await;
    create_policy(&iot, "WS_AUDIT_Raw", PERMISSIVE).await;
    emu.seed_findings(vec![finding(TASK, "WS_AUDIT_Buffered", "1")]);
    let app = emu.app(deleting_config());
    let enveloped = load_event("sqs-sns-audit.json");
    let v = serde_json::to_value(handle(&app, &enveloped, Cutoff::NONE).await.unwrap()).unwrap();
    assert_eq!(v["batchItemFailures"], json!([]), "{v:#}");
    assert_eq!(v["totals"]["remediated"], 1);
    assert_eq!(v["messages"]["records"][0]["outcome"], "processed");
    assert_remediated(&iot, "WS_AUDIT_Buffered", false).await;

    // Raw message delivery: the body is the audit message.
    let raw_task = "b1c2d3e4f5a60718293a4b5c6d7e8f90";
    emu.seed_findings(vec![finding(raw_task, "WS_AUDIT_Raw", "1")]);
    let sns_body: Value =
        serde_json::from_str(enveloped["Records"][0]["body"].as_str().unwrap()).unwrap();
    let message = sns_body["Message"]
        .as_str()
        .unwrap()
        .replace(TASK, raw_task);
    let mut raw = enveloped.clone();
    raw["Records"][0]["body"] = json!(message);
    let v = serde_json::to_value(handle(&app, &raw, Cutoff::NONE).await.unwrap()).unwrap();
    assert_eq!(v["batchItemFailures"], json!([]), "{v:#}");
    assert_eq!(v["messages"]["records"][0]["taskId"], raw_task);
    assert_remediated(&iot, "WS_AUDIT_Raw", false).await;

    // The listing fails: the audit is incomplete and its record is named for another delivery.
    emu.faults(json!({"operations": {"ListAuditFindings": {"error_rate": 1.0}}}));
    let v = serde_json::to_value(handle(&app, &raw, Cutoff::NONE).await.unwrap()).unwrap();
    let id = raw["Records"][0]["messageId"].clone();
    assert_eq!(
        v["batchItemFailures"],
        json!([{"itemIdentifier": id}]),
        "{v:#}"
    );
    assert_eq!(v["totals"]["listingErrors"], 1);
}
