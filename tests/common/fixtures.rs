//! What the tests feed the function and hold it to: the project's sample files, findings in
//! the API's shape, the one test configuration, the one way to build the application, and the
//! end state SPEC §5 promises.

use std::path::PathBuf;
use std::sync::Arc;

use aws_sdk_iot::Client;
use iot_audit_remediator::aws::{Connector, SdkIot, Throttles};
use iot_audit_remediator::config::{Config, FanoutConfig};
use iot_audit_remediator::domain::{Home, RestrictivePolicy, RESTRICTIVE_DOCUMENT};
use iot_audit_remediator::engine::{App, SdkClients};
use serde_json::{json, Value};

use super::emulator::Emulator;

pub const PERMISSIVE: &str = include_str!("../../policies/permissive-sample.json");
pub const CHECK: &str = "IOT_POLICY_OVERLY_PERMISSIVE_CHECK";
/// The task id of `events/audit-non-compliant.json`.
pub const TASK: &str = "7aa53579303b594f9bcb76082688a5de";

pub fn project_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

// --- Configuration and the application ---------------------------------------------------

/// The default configuration, unpaced: these tests are about behaviour, not the API quota
/// (the benchmark paces).
pub fn test_config() -> Config {
    Config {
        api_calls_per_second: 0,
        ..Config::default()
    }
}

/// As [`test_config`], with the replaced version deleted (`KEEP_REPLACED_VERSION=false`): the
/// mode in which every version a run removes shows in the calls and the end state. Tests of
/// the default (kept) mode use [`test_config`].
pub fn deleting_config() -> Config {
    Config {
        keep_replaced_version: false,
        ..test_config()
    }
}

/// The configuration of a fanning-out function whose queue is `url`.
pub fn fanout_config(url: &str, workers: u32) -> Config {
    Config {
        fanout: Some(FanoutConfig {
            queue_url: url.to_owned(),
            inline_max_findings: 0,
            workers,
        }),
        ..deleting_config()
    }
}

/// The application as production wires it (paced as `config` says, the restrictive document
/// rendered for the partition of `config.region`), on these clients: the one builder every
/// test uses.
pub fn app_on(clients: SdkClients, config: Config) -> Arc<App<SdkIot>> {
    let restrictive = RestrictivePolicy::for_partition(config.partition()).unwrap();
    Arc::new(App::on_sdk(clients, config, restrictive))
}

fn clients(iot: Client) -> SdkClients {
    SdkClients {
        iot,
        sqs: None,
        sns: None,
        throttles: Throttles::default(),
        connector: None,
    }
}

/// [`app_on`] any IoT client (the emulator's, or one from `aws-smithy-mocks`), without a
/// fan-out queue or a notification topic.
pub fn app(client: Client, config: Config) -> Arc<App<SdkIot>> {
    app_on(clients(client), config)
}

/// As [`app`], with the SQS client for the fan-out queue `config.fanout` names (one per
/// simulated Lambda process).
pub fn fanout_app(client: Client, sqs: aws_sdk_sqs::Client, config: Config) -> Arc<App<SdkIot>> {
    app_on(
        SdkClients {
            sqs: Some(sqs),
            ..clients(client)
        },
        config,
    )
}

impl Emulator {
    /// [`app`] on this emulator's IoT client.
    pub fn app(&self, config: Config) -> Arc<App<SdkIot>> {
        app(self.client(), config)
    }

    /// [`fanout_app`] on this emulator's IoT and SQS clients.
    pub fn fanout_app(&self, config: Config) -> Arc<App<SdkIot>> {
        fanout_app(self.client(), self.sqs(), config)
    }

    /// [`app`] serving many accounts and regions (SPEC §11) as the function at `function_arn`:
    /// other accounts through moto's STS (their calls land in the assumed role's account).
    /// With this emulator's SQS and SNS clients, for a fan-out queue and a notification topic
    /// `config` may name.
    pub async fn org_app(&self, config: Config, function_arn: &str) -> Arc<App<SdkIot>> {
        let connector = Connector::new(self.sdk_config().await, Throttles::default(), None);
        let app = app_on(
            SdkClients {
                connector: Some(connector),
                sqs: Some(self.sqs()),
                sns: Some(self.sns()),
                ..clients(self.client())
            },
            config,
        );
        let home = Home::from_function_arn(function_arn).expect("a function ARN");
        app.home.set(home).expect("a new app has no home yet");
        app
    }

    /// [`app`] with this emulator's SNS client for the topic `config` names (and its SQS
    /// client, for a fan-out queue).
    pub fn notifying_app(&self, config: Config) -> Arc<App<SdkIot>> {
        app_on(
            SdkClients {
                sqs: Some(self.sqs()),
                sns: Some(self.sns()),
                ..clients(self.client())
            },
            config,
        )
    }
}

// --- Input -------------------------------------------------------------------------------

/// A finding in the API's JSON shape, as `ListAuditFindings` returns it.
pub fn finding(task: &str, policy: &str, version: &str) -> Value {
    json!({
        "findingId": format!("{task}-{policy}-{version}"),
        "taskId": task,
        "checkName": CHECK,
        "taskStartTime": 1572013171.897,
        "findingTime": 1572013190.104,
        "severity": "CRITICAL",
        "nonCompliantResource": {
            "resourceType": "IOT_POLICY",
            "resourceIdentifier": {"policyVersionIdentifier": {"policyName": policy, "policyVersionId": version}}
        },
        "relatedResources": [],
        "reasonForNonCompliance": "Policy allows broad access to IoT data plane actions: [iot:Connect].",
        "reasonForNonComplianceCode": "ALLOWS_BROAD_ACCESS_TO_IOT_DATA_PLANE_ACTIONS",
        "isSuppressed": false
    })
}

/// The function's ARN when its home is [`super::DEFAULT_ACCOUNT`] in `us-east-1`.
pub const HOME_FUNCTION: &str = "arn:aws:lambda:us-east-1:123456789012:function:remediator";

/// An SNS record of `account`'s audit `task`, published on a topic in `region`, whose overly
/// permissive check found `non_compliant` resources.
pub fn audit_record(account: &str, region: &str, task: &str, non_compliant: usize) -> Value {
    let message = json!({"accountId": account, "taskId": task, "taskStatus": "COMPLETED",
        "taskType": "ON_DEMAND_AUDIT_TASK", "auditDetails": [{"checkName": CHECK,
        "checkRunStatus": "COMPLETED_NON_COMPLIANT", "nonCompliantResourcesCount": non_compliant}]});
    json!({"EventSource": "aws:sns", "EventVersion": "1.0", "EventSubscriptionArn": "x",
        "Sns": {"Type": "Notification", "MessageId": format!("m-{task}"),
            "TopicArn": format!("arn:aws:sns:{region}:{account}:audits"), "Subject": null,
            "Message": message.to_string(), "Timestamp": "2026-12-01T00:00:00.000Z",
            "SignatureVersion": "1", "Signature": "x", "SigningCertUrl": "x", "UnsubscribeUrl": "x",
            "MessageAttributes": {}}})
}

/// `count` permissive policies `<prefix>00000`, ... and a finding of the task for each.
pub async fn seed_in_scope(emu: &Emulator, prefix: &str, count: usize) -> Vec<String> {
    let names = create_permissive(&emu.client(), prefix, count).await;
    emu.generate_findings(TASK, prefix, count);
    names
}

/// `count` permissive policies `<prefix>00000`, ... made through `iot` (so in its account and
/// region), named as [`Emulator::generate_findings_in`] names their findings.
pub async fn create_permissive(iot: &Client, prefix: &str, count: usize) -> Vec<String> {
    let names: Vec<String> = (0..count).map(|i| format!("{prefix}{i:05}")).collect();
    for name in &names {
        create_policy(iot, name, PERMISSIVE).await;
    }
    names
}

/// The policies of `make demo` (`scripts/demo_iot.py`), and of the findings of audit [`TASK`]
/// that the sample events name: one in scope, one not.
pub const DEMO_POLICIES: [&str; 2] = ["WS_AUDIT_PermissivePolicy", "DeviceFleetPolicy"];

/// The finding of a demo policy's version 1 in audit [`TASK`], with the id `demo-<policy>` that
/// the demo gives it and the jobs of `events/sqs-jobs.json` name.
pub fn demo_finding(policy: &str) -> Value {
    let mut finding = finding(TASK, policy, "1");
    finding["findingId"] = json!(format!("demo-{policy}"));
    finding
}

impl Emulator {
    /// What `make demo` seeds: the [`DEMO_POLICIES`] with the permissive document, and their
    /// [`demo_finding`]s.
    pub async fn seed_demo(&self) {
        let iot = self.client();
        for policy in DEMO_POLICIES {
            create_policy(&iot, policy, PERMISSIVE).await;
        }
        self.seed_findings(DEMO_POLICIES.map(demo_finding).to_vec());
    }
}

/// A sample event from `events/`.
pub fn load_event(name: &str) -> Value {
    let path = project_dir().join("events").join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

pub fn restrictive() -> Value {
    serde_json::from_str(RESTRICTIVE_DOCUMENT).unwrap()
}

pub fn permissive() -> Value {
    serde_json::from_str(PERMISSIVE).unwrap()
}

pub async fn create_policy(client: &Client, name: &str, document: &str) {
    client
        .create_policy()
        .policy_name(name)
        .policy_document(document)
        .send()
        .await
        .unwrap();
}

// --- End state ---------------------------------------------------------------------------

/// A policy's versions as (id, is default, document as JSON), sorted by numeric id.
pub async fn versions(client: &Client, policy: &str) -> Vec<(String, bool, Value)> {
    let list = client
        .list_policy_versions()
        .policy_name(policy)
        .send()
        .await
        .unwrap();
    let mut out = Vec::new();
    for v in list.policy_versions() {
        let id = v.version_id().unwrap().to_owned();
        let doc = client
            .get_policy_version()
            .policy_name(policy)
            .policy_version_id(&id)
            .send()
            .await
            .unwrap();
        out.push((
            id,
            v.is_default_version(),
            serde_json::from_str(doc.policy_document().unwrap()).unwrap(),
        ));
    }
    out.sort_by_key(|(id, _, _)| id.parse::<u64>().unwrap());
    out
}

pub async fn default_document(client: &Client, policy: &str) -> Value {
    let out = client
        .get_policy()
        .policy_name(policy)
        .send()
        .await
        .unwrap();
    serde_json::from_str(out.policy_document().unwrap()).unwrap()
}

/// Asserts the end state SPEC §5 promises: exactly one restrictive version, and it is the
/// default; the permissive version gone unless kept.
pub async fn assert_remediated(client: &Client, policy: &str, kept: bool) {
    let versions = versions(client, policy).await;
    let restrictive: Vec<_> = versions
        .iter()
        .filter(|(_, _, d)| *d == self::restrictive())
        .collect();
    assert_eq!(
        restrictive.len(),
        1,
        "{policy}: exactly one restrictive version: {versions:?}"
    );
    assert!(
        restrictive[0].1,
        "{policy}: the restrictive version is the default"
    );
    let permissive_left = versions.iter().any(|(_, _, d)| *d == permissive());
    assert_eq!(
        permissive_left, kept,
        "{policy}: permissive version kept={kept}: {versions:?}"
    );
}

/// A benchmark's own arguments: what follows `cargo bench --bench NAME --`, without the
/// `--bench` flag cargo adds.
pub fn bench_args() -> Vec<String> {
    std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect()
}
