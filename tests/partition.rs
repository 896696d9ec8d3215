//! The restrictive document in the function's partition (SPEC §10), end to end against the
//! local endpoint: a function in `cn-north-1` installs and recognises the `aws-cn` document,
//! and one in `aws` does not take that document for its own.

mod common;

use common::*;
use iot_audit_remediator::config::Config;
use iot_audit_remediator::domain::{Partition, RestrictivePolicy};
use iot_audit_remediator::engine::Cutoff;
use iot_audit_remediator::entry::sns::handle_event;
use serde_json::Value;

const CHINA: &str = "cn-north-1";
const NAME: &str = "WS_AUDIT_Partition";

/// The configuration of a function running in `region`.
fn in_region(region: &str) -> Config {
    Config {
        region: Some(region.to_owned()),
        ..test_config()
    }
}

/// The built-in document rendered for `partition`, as text and as JSON.
fn document(partition: Partition) -> (String, Value) {
    let text = RestrictivePolicy::for_partition(partition)
        .unwrap()
        .document()
        .to_owned();
    let value = serde_json::from_str(&text).unwrap();
    (text, value)
}

/// Every `Resource` ARN of a policy document.
fn resource_arns(document: &Value) -> Vec<String> {
    let mut arns = Vec::new();
    for statement in document["Statement"].as_array().unwrap() {
        match &statement["Resource"] {
            Value::String(arn) => arns.push(arn.clone()),
            Value::Array(list) => arns.extend(list.iter().map(|a| a.as_str().unwrap().to_owned())),
            other => panic!("no resource: {other}"),
        }
    }
    arns
}

/// The SNS event of `events/` for the audit [`TASK`], handled by `config`'s function on `iot`:
/// the one finding of `NAME`.
async fn run(iot: aws_sdk_iot::Client, config: Config) -> Value {
    let report = handle_event(
        &app(iot, config),
        &load_event("audit-non-compliant.json"),
        Cutoff::NONE,
    )
    .await
    .unwrap_or_else(|e| panic!("invocation failed: {e}\n{:#?}", e.report));
    serde_json::to_value(report).unwrap()["records"][0]["findings"][0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_in_china_installs_the_aws_cn_document() {
    let emu = Emulator::start();
    let iot = emu.client_in(CHINA);
    create_policy(&iot, NAME, PERMISSIVE).await;
    emu.seed_findings_in(DEFAULT_ACCOUNT, CHINA, vec![finding(TASK, NAME, "1")]);

    let finding = run(iot.clone(), in_region(CHINA)).await;
    assert_eq!(finding["outcome"], "remediated", "{finding}");
    let installed = default_document(&iot, NAME).await;
    let arns = resource_arns(&installed);
    assert!(!arns.is_empty());
    for arn in &arns {
        assert!(arn.starts_with("arn:aws-cn:iot:"), "{arn}");
    }
    assert_eq!(installed, document(Partition::AwsCn).1);
    // The calls went to cn-north-1: the policy is not in us-east-1.
    assert!(emu
        .client()
        .get_policy()
        .policy_name(NAME)
        .send()
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_in_china_takes_the_aws_cn_document_for_remediated() {
    let emu = Emulator::start();
    let iot = emu.client_in(CHINA);
    create_policy(&iot, NAME, PERMISSIVE).await;
    iot.create_policy_version()
        .policy_name(NAME)
        .policy_document(document(Partition::AwsCn).0)
        .set_as_default(true)
        .send()
        .await
        .unwrap();
    emu.seed_findings_in(DEFAULT_ACCOUNT, CHINA, vec![finding(TASK, NAME, "1")]);
    emu.clear_requests();

    let finding = run(iot.clone(), in_region(CHINA)).await;
    assert_eq!(finding["outcome"], "skipped", "{finding}");
    assert_eq!(finding["reason"], "already_remediated", "{finding}");
    assert_eq!(emu.writes(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_in_aws_does_not_take_the_aws_cn_document_for_its_own() {
    let emu = Emulator::start();
    let iot = emu.client();
    // The aws-cn document is the flagged default: in `aws` its ARNs match nothing.
    create_policy(&iot, NAME, &document(Partition::AwsCn).0).await;
    emu.seed_findings(vec![finding(TASK, NAME, "1")]);

    let finding = run(iot.clone(), in_region("us-east-1")).await;
    assert_eq!(finding["outcome"], "remediated", "{finding}");
    let installed = default_document(&iot, NAME).await;
    assert_eq!(installed, document(Partition::Aws).1);
    assert_eq!(installed, restrictive(), "the shipped document");
    assert!(resource_arns(&installed)
        .iter()
        .all(|arn| arn.starts_with("arn:aws:iot:")));
}
