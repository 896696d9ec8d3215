//! End to end against the local endpoint: the blast radius, the current suppressions of an
//! audit, and the rollback event (SPEC §3.3, §3.4, §9).

mod common;

use aws_sdk_iot::types::{PolicyVersionIdentifier, ResourceIdentifier};
use aws_sdk_iot::Client;
use common::*;
use iot_audit_remediator::config::Config;
use iot_audit_remediator::engine::Cutoff;
use iot_audit_remediator::entry::{handle, Response};
use serde_json::{json, Value};

const NAME: &str = "WS_AUDIT_Rollback";
const OTHER: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}]}"#;

async fn invoke(emu: &Emulator, config: Config, event: &Value) -> Value {
    match handle(&emu.app(config), event, Cutoff::NONE).await {
        Ok(Response::Audit(report)) => serde_json::to_value(report).unwrap(),
        other => panic!("expected a report: {other:?}"),
    }
}

fn rollback(names: Option<&[&str]>) -> Value {
    let mut request = json!({"taskId": TASK, "reason": "devices went offline"});
    if let Some(names) = names {
        request["policyNames"] = json!(names);
    }
    json!({ "rollback": request })
}

/// The one finding of the first record.
fn only_finding(report: &Value) -> &Value {
    let findings = report["records"][0]["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{report:#}");
    &findings[0]
}

async fn attach_groups(iot: &Client, policy: &str, n: usize) {
    for i in 0..n {
        let group = iot
            .create_thing_group()
            .thing_group_name(format!("{policy}-g{i}"))
            .send()
            .await
            .unwrap();
        iot.attach_policy()
            .policy_name(policy)
            .target(group.thing_group_arn().unwrap())
            .send()
            .await
            .unwrap();
    }
}

/// A permissive policy with a finding of the audit of `events/audit-non-compliant.json`.
async fn seed(emu: &Emulator, iot: &Client, name: &str) {
    create_policy(iot, name, PERMISSIVE).await;
    emu.seed_findings(vec![finding(TASK, name, "1")]);
}

async fn remediate(emu: &Emulator, config: Config) -> Value {
    let report = invoke(emu, config, &load_event("audit-non-compliant.json")).await;
    assert_eq!(only_finding(&report)["outcome"], "remediated", "{report:#}");
    report
}

fn resource(name: &str, version: &str) -> ResourceIdentifier {
    let version = PolicyVersionIdentifier::builder()
        .policy_name(name)
        .policy_version_id(version)
        .build();
    ResourceIdentifier::builder()
        .policy_version_identifier(version)
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_remediation_is_rolled_back_suppressed_and_stays_rolled_back() {
    let emu = Emulator::start();
    let iot = emu.client();
    seed(&emu, &iot, NAME).await;
    attach_groups(&iot, NAME, 3).await;
    let report = remediate(&emu, test_config()).await;
    let remediated = only_finding(&report);
    assert_eq!(remediated["targetCount"], 3);
    assert_eq!(remediated["keptVersionId"], "1", "kept by default");

    emu.clear_requests();
    let report = invoke(&emu, test_config(), &rollback(None)).await;
    let undone = only_finding(&report);
    assert_eq!(undone["outcome"], "rolled_back", "{report:#}");
    assert_eq!(undone["deletedVersionIds"], json!(["2"]));
    let now = versions(&iot, NAME).await;
    assert_eq!(now.len(), 1, "the restrictive version is gone: {now:?}");
    assert_eq!((now[0].0.as_str(), now[0].1), ("1", true));
    assert_eq!(now[0].2, permissive());
    let suppression = iot
        .describe_audit_suppression()
        .check_name(CHECK)
        .resource_identifier(resource(NAME, "1"))
        .send()
        .await
        .unwrap();
    let expires = suppression.expiration_date().unwrap().secs();
    let in_30_days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + 30 * 86_400;
    assert!(
        (expires - in_30_days).abs() < 120,
        "{expires} vs {in_30_days}"
    );
    assert!(suppression
        .description()
        .unwrap()
        .contains("devices went offline"));
    assert_eq!(
        emu.writes(),
        [
            // The suppression first: a rollback that could not make it restores nothing.
            "CreateAuditSuppression -".to_owned(),
            format!("SetDefaultPolicyVersion {NAME}"),
            format!("DeletePolicyVersion {NAME}"),
        ]
    );

    // The old audit's finding still says isSuppressed: false, but the audit is delivered again
    // (a Lambda retry, a redrive): the current suppression keeps the rollback in place.
    emu.clear_requests();
    let again = invoke(&emu, test_config(), &load_event("audit-non-compliant.json")).await;
    let skipped = only_finding(&again);
    assert_eq!(
        (&skipped["outcome"], &skipped["reason"]),
        (&json!("skipped"), &json!("suppressed"))
    );
    assert!(emu.writes().is_empty());
    assert_eq!(emu.count("GetPolicy"), 0);

    // A second identical rollback changes nothing.
    let second = invoke(&emu, test_config(), &rollback(None)).await;
    assert_eq!(only_finding(&second)["reason"], "not_remediated");
    assert!(emu.writes().is_empty(), "{:?}", emu.writes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_audit_shows_the_suppression_on_its_findings() {
    let emu = Emulator::start();
    let iot = emu.client();
    seed(&emu, &iot, NAME).await;
    remediate(&emu, test_config()).await;
    invoke(&emu, test_config(), &rollback(None)).await;
    // An audit that runs after the rollback reports the finding suppressed itself.
    emu.seed_findings(vec![json!({
        "findingId": "later-1", "taskId": "LATER", "checkName": CHECK,
        "taskStartTime": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64(),
        "nonCompliantResource": {"resourceType": "IOT_POLICY", "resourceIdentifier":
            {"policyVersionIdentifier": {"policyName": NAME, "policyVersionId": "1"}}},
        "isSuppressed": false
    })]);
    let suppressed = iot
        .list_audit_findings()
        .task_id("LATER")
        .list_suppressed_findings(true)
        .send()
        .await
        .unwrap();
    assert_eq!(suppressed.findings().len(), 1);
    assert_eq!(suppressed.findings()[0].finding_id(), Some("later-1"));
    assert_eq!(suppressed.findings()[0].is_suppressed(), Some(true));
    // ... while the audit before it does not.
    let before = iot
        .list_audit_findings()
        .task_id(TASK)
        .list_suppressed_findings(false)
        .send()
        .await
        .unwrap();
    assert_eq!(before.findings().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_cannot_or_must_not_be_rolled_back_is_left_alone() {
    let emu = Emulator::start();
    let iot = emu.client();
    // Deleted: nothing to restore.
    seed(&emu, &iot, "WS_AUDIT_Deleted").await;
    // Changed by hand since the remediation.
    seed(&emu, &iot, "WS_AUDIT_Changed").await;
    // Outside the prefix, whatever the event names.
    seed(&emu, &iot, "DeviceFleetPolicy").await;
    remediate_all(&emu).await;
    iot.create_policy_version()
        .policy_name("WS_AUDIT_Changed")
        .policy_document(OTHER)
        .set_as_default(true)
        .send()
        .await
        .unwrap();

    emu.clear_requests();
    let names = ["WS_AUDIT_Deleted", "WS_AUDIT_Changed", "DeviceFleetPolicy"];
    let report = invoke(&emu, deleting_config(), &rollback(Some(&names))).await;
    let reasons: Vec<(String, String)> = report["records"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let name = f["policyName"].as_str().unwrap().to_owned();
            (name, f["reason"].as_str().unwrap_or("-").to_owned())
        })
        .collect();
    assert!(reasons.contains(&("WS_AUDIT_Deleted".into(), "rollback_unavailable".into())));
    assert!(reasons.contains(&("WS_AUDIT_Changed".into(), "not_remediated".into())));
    assert!(reasons.contains(&("DeviceFleetPolicy".into(), "out_of_scope".into())));
    assert!(emu.writes().is_empty(), "{:?}", emu.writes());
    let read: Vec<String> = emu
        .requests()
        .iter()
        .filter(|r| r["operation"] == "GetPolicy")
        .map(|r| r["policyName"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        !read.contains(&"DeviceFleetPolicy".to_owned()),
        "no call: {read:?}"
    );
}

/// The Deleted policy in delete mode, the Changed one kept (so that only the hand edit stops
/// its rollback).
async fn remediate_all(emu: &Emulator) {
    let config = deleting_config();
    let report = invoke(emu, config, &load_event("audit-non-compliant.json")).await;
    let remediated = report["totals"]["remediated"].as_u64().unwrap();
    assert_eq!(remediated, 2, "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_rollback_writes_nothing_and_a_wide_policy_reports_its_reach() {
    let emu = Emulator::start();
    let iot = emu.client();
    seed(&emu, &iot, NAME).await;
    attach_groups(&iot, NAME, 300).await;
    let report = remediate(&emu, test_config()).await;
    let remediated = only_finding(&report);
    assert_eq!(
        (&remediated["targetCount"], &remediated["moreTargets"]),
        (&json!(250), &json!(true))
    );

    emu.clear_requests();
    let dry = Config {
        dry_run: true,
        ..test_config()
    };
    let report = invoke(&emu, dry, &rollback(Some(&[NAME]))).await;
    let preview = only_finding(&report);
    assert_eq!(preview["outcome"], "would_roll_back");
    assert_eq!(preview["wouldDeleteVersionIds"], json!(["2"]));
    assert!(emu.writes().is_empty());
    assert_eq!(default_document(&iot, NAME).await, restrictive());
}
