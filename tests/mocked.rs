//! The remediator through the real SDK client (its serialisation, retries and error parsing),
//! with responses from `aws-smithy-mocks` instead of the network.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_iot::config::retry::RetryConfig;
use aws_sdk_iot::error::ErrorMetadata;
use aws_sdk_iot::operation::create_policy_version::{
    CreatePolicyVersionError, CreatePolicyVersionOutput,
};
use aws_sdk_iot::operation::delete_policy_version::{
    DeletePolicyVersionError, DeletePolicyVersionOutput,
};
use aws_sdk_iot::operation::get_policy::{GetPolicyError, GetPolicyOutput};
use aws_sdk_iot::operation::get_policy_version::GetPolicyVersionOutput;
use aws_sdk_iot::operation::list_audit_findings::ListAuditFindingsOutput;
use aws_sdk_iot::operation::list_audit_suppressions::ListAuditSuppressionsOutput;
use aws_sdk_iot::operation::list_policy_versions::ListPolicyVersionsOutput;
use aws_sdk_iot::operation::list_targets_for_policy::ListTargetsForPolicyOutput;
use aws_sdk_iot::primitives::DateTime;
use aws_sdk_iot::types::error::{
    ResourceNotFoundException, ThrottlingException, VersionsLimitExceededException,
};
use aws_sdk_iot::types::{
    AuditFinding, NonCompliantResource, PolicyVersion, PolicyVersionIdentifier, ResourceIdentifier,
    ResourceType,
};
use aws_sdk_iot::Client;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use common::{app, deleting_config, PERMISSIVE, TASK};
use iot_audit_remediator::aws::{with_call_policy, MAX_ATTEMPTS};
use iot_audit_remediator::config::Config;
use iot_audit_remediator::domain::RESTRICTIVE_DOCUMENT;
use iot_audit_remediator::engine::Cutoff;
use iot_audit_remediator::entry::sns::handle_event;
use iot_audit_remediator::entry::Incomplete;
use iot_audit_remediator::report::Report;
use serde_json::Value;

const EVENT: &str = include_str!("../events/audit-non-compliant.json");

fn meta(code: &str) -> ErrorMetadata {
    ErrorMetadata::builder()
        .code(code)
        .message("mocked")
        .build()
}

fn finding(policy: &str, version: &str) -> AuditFinding {
    AuditFinding::builder()
        .finding_id(format!("finding-{policy}"))
        .task_id(TASK)
        .check_name("IOT_POLICY_OVERLY_PERMISSIVE_CHECK")
        .is_suppressed(false)
        .non_compliant_resource(
            NonCompliantResource::builder()
                .resource_type(ResourceType::IotPolicy)
                .resource_identifier(
                    ResourceIdentifier::builder()
                        .policy_version_identifier(
                            PolicyVersionIdentifier::builder()
                                .policy_name(policy)
                                .policy_version_id(version)
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .build()
}

fn page(findings: Vec<AuditFinding>, next: Option<&str>) -> ListAuditFindingsOutput {
    ListAuditFindingsOutput::builder()
        .set_findings(Some(findings))
        .set_next_token(next.map(str::to_owned))
        .build()
}

/// One page holding the given findings.
fn single_page(findings: Vec<AuditFinding>) -> Rule {
    mock!(Client::list_audit_findings).then_output(move || page(findings.clone(), None))
}

/// `GetPolicy`: every policy has the permissive document as default version 1.
fn permissive_policies() -> Rule {
    mock!(Client::get_policy).then_compute_output(|req| {
        GetPolicyOutput::builder()
            .policy_name(req.policy_name().unwrap_or_default())
            .default_version_id("1")
            .policy_document(PERMISSIVE)
            .build()
    })
}

/// A `ListPolicyVersions` answer: (id, is default, createDate in seconds).
fn versions_output(versions: &[(&str, bool, Option<i64>)]) -> ListPolicyVersionsOutput {
    let versions = versions
        .iter()
        .map(|(id, default, secs)| {
            PolicyVersion::builder()
                .version_id(*id)
                .is_default_version(*default)
                .set_create_date(secs.map(DateTime::from_secs))
                .build()
        })
        .collect();
    ListPolicyVersionsOutput::builder()
        .set_policy_versions(Some(versions))
        .build()
}

/// IoT's answer to a sixth version.
fn versions_limit() -> CreatePolicyVersionError {
    CreatePolicyVersionError::VersionsLimitExceededException(
        VersionsLimitExceededException::builder()
            .meta(meta("VersionsLimitExceededException"))
            .build(),
    )
}

fn create_ok(version: &'static str) -> Rule {
    mock!(Client::create_policy_version).then_output(move || {
        CreatePolicyVersionOutput::builder()
            .policy_version_id(version)
            .is_default_version(true)
            .build()
    })
}

/// `DeletePolicyVersion` that succeeds and records `policy/version`.
fn delete_recording(log: &Arc<Mutex<Vec<String>>>) -> Rule {
    let log = Arc::clone(log);
    mock!(Client::delete_policy_version).then_compute_output(move |req| {
        log.lock().unwrap().push(format!(
            "{}/{}",
            req.policy_name().unwrap_or_default(),
            req.policy_version_id().unwrap_or_default()
        ));
        DeletePolicyVersionOutput::builder().build()
    })
}

/// A client answering by `rules`, and with no suppressions and no targets where no rule says
/// otherwise (every audit reads the check's suppressions; every remediation counts targets).
fn client(rules: &[&Rule]) -> Client {
    let none_suppressed = mock!(Client::list_audit_suppressions)
        .then_output(|| ListAuditSuppressionsOutput::builder().build());
    let no_targets = mock!(Client::list_targets_for_policy)
        .then_output(|| ListTargetsForPolicyOutput::builder().build());
    mock_client!(
        aws_sdk_iot,
        RuleMode::MatchAny,
        rules.iter().copied().chain([&none_suppressed, &no_targets]),
        |c| {
            // The production retry policy, with backoff shortened so the test does not sleep.
            with_call_policy(c).retry_config(
                RetryConfig::standard()
                    .with_max_attempts(MAX_ATTEMPTS)
                    .with_initial_backoff(Duration::from_millis(1))
                    .with_max_backoff(Duration::from_millis(5)),
            )
        }
    )
}

async fn run(client: Client, config: Config) -> Result<Report, Incomplete> {
    let event: Value = serde_json::from_str(EVENT).unwrap();
    handle_event(&app(client, config), &event, Cutoff::NONE).await
}

fn findings_json(report: &Report) -> Vec<Value> {
    let v = serde_json::to_value(report).unwrap();
    v["records"][0]["findings"].as_array().unwrap().clone()
}

fn by_policy(report: &Report) -> BTreeMap<String, Value> {
    findings_json(report)
        .into_iter()
        .map(|f| (f["policyName"].as_str().unwrap().to_owned(), f))
        .collect()
}

#[tokio::test]
async fn a_check_named_three_times_is_listed_once() {
    let mut event: Value = serde_json::from_str(EVENT).unwrap();
    let text = event["Records"][0]["Sns"]["Message"].as_str().unwrap();
    let mut message: Value = serde_json::from_str(text).unwrap();
    let detail = message["auditDetails"][0].clone();
    message["auditDetails"] = Value::Array(vec![detail.clone(), detail.clone(), detail]);
    event["Records"][0]["Sns"]["Message"] = Value::String(message.to_string());
    let list =
        mock!(Client::list_audit_findings).then_compute_output(|req| match req.next_token() {
            None => page(vec![finding("WS_AUDIT_a", "1")], Some("t1")),
            Some(_) => page(vec![finding("WS_AUDIT_b", "1")], None),
        });
    let get = permissive_policies();
    let create = create_ok("2");
    let client = client(&[&list, &get, &create]);
    let report = handle_event(&app(client, common::test_config()), &event, Cutoff::NONE)
        .await
        .unwrap();
    assert_eq!(list.num_calls(), 2, "one call per page, not per mention");
    assert_eq!(report.totals.remediated, 2);
    let checks = serde_json::to_value(&report.records[0]).unwrap()["checks"].clone();
    let handling: Vec<&str> = checks
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["handling"].as_str().unwrap())
        .collect();
    assert_eq!(handling, ["findings_handled", "repeated", "repeated"]);
}

#[tokio::test]
async fn pages_are_followed_through_an_empty_middle_page() {
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&requests);
    let list = mock!(Client::list_audit_findings).then_compute_output(move |req| {
        seen.lock().unwrap().push((
            req.task_id().map(str::to_owned),
            req.check_name().map(str::to_owned),
            req.max_results(),
            req.list_suppressed_findings(),
            req.next_token().map(str::to_owned),
        ));
        match req.next_token() {
            None => page(
                vec![finding("WS_AUDIT_a", "1"), finding("WS_AUDIT_b", "1")],
                Some("t1"),
            ),
            Some("t1") => page(vec![], Some("t2")),
            Some("t2") => page(vec![finding("WS_AUDIT_c", "1")], Some("")),
            Some(other) => panic!("unexpected token {other}"),
        }
    });
    let get = permissive_policies();
    let create = create_ok("2");
    let deleted = Arc::new(Mutex::new(Vec::new()));
    let delete = delete_recording(&deleted);
    let report = run(client(&[&list, &get, &create, &delete]), deleting_config())
        .await
        .unwrap();

    assert_eq!(
        list.num_calls(),
        3,
        "an empty page with a token is not the end; an empty token is"
    );
    let requests = requests.lock().unwrap();
    let tokens: Vec<Option<String>> = requests.iter().map(|r| r.4.clone()).collect();
    assert_eq!(tokens, [None, Some("t1".into()), Some("t2".into())]);
    for (task, check, max, suppressed, _) in requests.iter() {
        assert_eq!(task.as_deref(), Some(TASK));
        assert_eq!(check.as_deref(), Some("IOT_POLICY_OVERLY_PERMISSIVE_CHECK"));
        assert_eq!(*max, Some(250));
        assert_eq!(*suppressed, Some(false));
    }
    assert_eq!(report.totals.remediated, 3);
    assert_eq!(get.num_calls(), 3);
    assert_eq!(create.num_calls(), 3);
    let mut deleted = deleted.lock().unwrap().clone();
    deleted.sort();
    assert_eq!(deleted, ["WS_AUDIT_a/1", "WS_AUDIT_b/1", "WS_AUDIT_c/1"]);
    let a = &by_policy(&report)["WS_AUDIT_a"];
    assert_eq!(a["outcome"], "remediated");
    assert_eq!(a["newVersionId"], "2");
    assert_eq!(a["deletedVersionIds"], serde_json::json!(["1"]));
    assert_eq!(a["replacedDocument"], PERMISSIVE);
}

#[tokio::test]
async fn version_limit_frees_the_oldest_non_default_slot_never_the_default() {
    let list = single_page(vec![finding("WS_AUDIT_full", "1")]);
    let get = permissive_policies();
    // Version 1 is the default, permissive and the oldest; 2..5 are newer non-default versions.
    let versions = mock!(Client::list_policy_versions).then_output(|| {
        versions_output(&[
            ("4", false, Some(400)),
            ("1", true, Some(100)),
            ("5", false, Some(500)),
            ("3", false, Some(300)),
            ("2", false, Some(200)),
        ])
    });
    let create = mock!(Client::create_policy_version)
        .sequence()
        .error(versions_limit)
        .output(|| {
            CreatePolicyVersionOutput::builder()
                .policy_version_id("6")
                .build()
        })
        .build();
    let deleted = Arc::new(Mutex::new(Vec::new()));
    let delete = delete_recording(&deleted);
    let report = run(
        client(&[&list, &get, &versions, &create, &delete]),
        deleting_config(),
    )
    .await
    .unwrap();

    assert_eq!(
        *deleted.lock().unwrap(),
        ["WS_AUDIT_full/2", "WS_AUDIT_full/1"]
    );
    assert_eq!(create.num_calls(), 2);
    assert_eq!(versions.num_calls(), 1);
    let f = &by_policy(&report)["WS_AUDIT_full"];
    assert_eq!(f["outcome"], "remediated");
    assert_eq!(f["newVersionId"], "6");
    assert_eq!(f["deletedVersionIds"], serde_json::json!(["2", "1"]));
}

#[tokio::test]
async fn a_second_version_limit_error_is_a_reported_failure() {
    let list = single_page(vec![finding("WS_AUDIT_raced", "1")]);
    let get = permissive_policies();
    let versions = mock!(Client::list_policy_versions)
        .then_output(|| versions_output(&[("1", true, None), ("2", false, Some(1))]));
    let create = mock!(Client::create_policy_version).then_error(versions_limit);
    let deleted = Arc::new(Mutex::new(Vec::new()));
    let delete = delete_recording(&deleted);
    let err = run(
        client(&[&list, &get, &versions, &create, &delete]),
        deleting_config(),
    )
    .await
    .unwrap_err();
    assert_eq!(
        create.num_calls(),
        2,
        "one retry after freeing a slot, not a loop"
    );
    assert_eq!(
        *deleted.lock().unwrap(),
        ["WS_AUDIT_raced/2"],
        "the default is never deleted"
    );
    assert_eq!(err.failed, 1);
    let f = &by_policy(&err.report)["WS_AUDIT_raced"];
    assert_eq!(f["outcome"], "failed");
    assert!(
        f["error"]
            .as_str()
            .unwrap()
            .contains("VersionsLimitExceededException"),
        "{f}"
    );
}

#[tokio::test]
async fn one_throttling_exception_is_retried_by_the_sdk() {
    let list = single_page(vec![finding("WS_AUDIT_t", "1")]);
    let get = mock!(Client::get_policy)
        .sequence()
        .error(|| {
            GetPolicyError::ThrottlingException(
                ThrottlingException::builder()
                    .meta(meta("ThrottlingException"))
                    .build(),
            )
        })
        .output(|| {
            GetPolicyOutput::builder()
                .default_version_id("1")
                .policy_document(PERMISSIVE)
                .build()
        })
        .build();
    let create = create_ok("2");
    let deleted = Arc::new(Mutex::new(Vec::new()));
    let delete = delete_recording(&deleted);
    let report = run(client(&[&list, &get, &create, &delete]), deleting_config())
        .await
        .unwrap();
    assert_eq!(get.num_calls(), 2);
    assert_eq!(create.num_calls(), 1);
    assert_eq!(report.totals.remediated, 1);
}

#[tokio::test]
async fn one_policy_failing_does_not_stop_the_other_nineteen() {
    let names: Vec<String> = (0..20).map(|i| format!("WS_AUDIT_{i:02}")).collect();
    let list = single_page(names.iter().map(|n| finding(n, "1")).collect());
    let get = permissive_policies();
    // WS_AUDIT_07 answers 500 to every attempt; the SDK retries it, then gives up.
    let broken = mock!(Client::create_policy_version)
        .match_requests(|req| req.policy_name() == Some("WS_AUDIT_07"))
        .then_http_response(|| {
            HttpResponse::new(
                StatusCode::try_from(500).unwrap(),
                SdkBody::from(r#"{"message":"internal failure"}"#),
            )
        });
    let create = create_ok("2");
    let deleted = Arc::new(Mutex::new(Vec::new()));
    let delete = delete_recording(&deleted);
    let config = Config {
        max_concurrency: 4.try_into().unwrap(),
        ..deleting_config()
    };
    let err = run(client(&[&list, &get, &broken, &create, &delete]), config)
        .await
        .unwrap_err();

    assert_eq!(err.failed, 1);
    assert_eq!(err.remediated, 19);
    assert_eq!(broken.num_calls() as u32, MAX_ATTEMPTS);
    let policies = by_policy(&err.report);
    assert_eq!(policies.len(), 20);
    assert_eq!(policies["WS_AUDIT_07"]["outcome"], "failed");
    assert!(policies["WS_AUDIT_07"]["error"]
        .as_str()
        .unwrap()
        .starts_with("CreatePolicyVersion"));
    assert!(policies
        .iter()
        .filter(|(n, _)| *n != "WS_AUDIT_07")
        .all(|(_, f)| f["outcome"] == "remediated"));
    assert_eq!(
        deleted.lock().unwrap().len(),
        19,
        "the failed policy's permissive version is not touched"
    );
    // The error Lambda sees names the numbers.
    let message = err.to_string();
    assert!(
        message.contains("1 in-scope policies could not be remediated"),
        "{message}"
    );
    assert!(message.contains("19 remediated"), "{message}");
}

#[tokio::test]
async fn dry_run_reads_but_never_writes() {
    let list = single_page(vec![
        finding("WS_AUDIT_a", "1"),
        finding("Other_policy", "1"),
    ]);
    let get = permissive_policies();
    let create = create_ok("2");
    let deleted = Arc::new(Mutex::new(Vec::new()));
    let delete = delete_recording(&deleted);
    let set_default = mock!(Client::set_default_policy_version)
        .then_output(|| aws_sdk_iot::operation::set_default_policy_version::SetDefaultPolicyVersionOutput::builder().build());
    let config = Config {
        dry_run: true,
        ..deleting_config()
    };
    let report = run(
        client(&[&list, &get, &create, &delete, &set_default]),
        config,
    )
    .await
    .unwrap();
    assert_eq!(get.num_calls(), 1);
    assert_eq!(
        create.num_calls() + delete.num_calls() + set_default.num_calls(),
        0
    );
    assert!(report.dry_run);
    let f = &by_policy(&report)["WS_AUDIT_a"];
    assert_eq!(f["outcome"], "would_remediate");
    assert_eq!(f["wouldDeleteVersionIds"], serde_json::json!(["1"]));
    assert_eq!(f["replacedDocument"], PERMISSIVE);
    assert_eq!(report.totals.would_remediate, 1);
}

#[tokio::test]
async fn a_concurrent_runs_duplicate_restrictive_version_is_tidied() {
    // Another run got there first: the replaced version is already gone, and its restrictive
    // version 2 sits next to ours (3, the default).
    let list = single_page(vec![finding("WS_AUDIT_race", "1")]);
    let get = permissive_policies();
    let create = create_ok("3");
    let delete = mock!(Client::delete_policy_version).then_compute_response(|req| {
        use aws_smithy_mocks::MockResponse;
        match req.policy_version_id() {
            Some("1") => MockResponse::Error(DeletePolicyVersionError::ResourceNotFoundException(
                ResourceNotFoundException::builder()
                    .meta(meta("ResourceNotFoundException"))
                    .build(),
            )),
            _ => MockResponse::Output(DeletePolicyVersionOutput::builder().build()),
        }
    });
    let versions = mock!(Client::list_policy_versions)
        .then_output(|| versions_output(&[("2", false, None), ("3", true, None)]));
    let get_version = mock!(Client::get_policy_version)
        .match_requests(|req| req.policy_version_id() == Some("2"))
        .then_output(|| {
            GetPolicyVersionOutput::builder()
                .policy_version_id("2")
                .policy_document(RESTRICTIVE_DOCUMENT)
                .build()
        });
    let report = run(
        client(&[&list, &get, &create, &delete, &versions, &get_version]),
        deleting_config(),
    )
    .await
    .unwrap();
    assert_eq!(delete.num_calls(), 2);
    assert_eq!(
        get_version.num_calls(),
        1,
        "only the non-default version is read"
    );
    let f = &by_policy(&report)["WS_AUDIT_race"];
    assert_eq!(f["outcome"], "remediated");
    assert_eq!(f["newVersionId"], "3");
    assert_eq!(f["deletedVersionIds"], serde_json::json!(["2"]));
}

#[tokio::test]
async fn already_remediated_finishes_an_interrupted_run_and_policy_not_found_is_skipped() {
    let list = single_page(vec![
        finding("WS_AUDIT_done", "1"),
        finding("WS_AUDIT_gone", "1"),
        finding("WS_AUDIT_self", "4"),
    ]);
    let get = mock!(Client::get_policy).then_compute_response(|req| {
        use aws_smithy_mocks::MockResponse;
        let out = |v: &str| {
            MockResponse::Output(
                GetPolicyOutput::builder()
                    .default_version_id(v)
                    .policy_document(RESTRICTIVE_DOCUMENT)
                    .build(),
            )
        };
        match req.policy_name() {
            Some("WS_AUDIT_done") => out("2"),
            Some("WS_AUDIT_self") => out("4"),
            _ => MockResponse::Error(GetPolicyError::ResourceNotFoundException(
                ResourceNotFoundException::builder()
                    .meta(meta("ResourceNotFoundException"))
                    .build(),
            )),
        }
    });
    // The interrupted run left version 1 behind, non-default.
    let versions = mock!(Client::list_policy_versions)
        .match_requests(|req| req.policy_name() == Some("WS_AUDIT_done"))
        .then_output(|| versions_output(&[("1", false, None), ("2", true, None)]));
    let create = create_ok("9");
    let deleted = Arc::new(Mutex::new(Vec::new()));
    let delete = delete_recording(&deleted);
    let rules = [&list, &get, &versions, &create, &delete];
    let report = run(client(&rules), deleting_config()).await.unwrap();
    assert_eq!(create.num_calls(), 0);
    assert_eq!(
        versions.num_calls(),
        1,
        "only the already remediated policy is listed"
    );
    assert_eq!(
        *deleted.lock().unwrap(),
        ["WS_AUDIT_done/1"],
        "the leftover permissive version goes"
    );
    let p = by_policy(&report);
    assert_eq!(p["WS_AUDIT_done"]["reason"], "already_remediated");
    assert_eq!(
        p["WS_AUDIT_done"]["deletedVersionIds"],
        serde_json::json!(["1"])
    );
    assert_eq!(p["WS_AUDIT_gone"]["reason"], "policy_not_found");
    assert_eq!(p["WS_AUDIT_self"]["reason"], "restrictive_document_flagged");
    assert_eq!(
        report.totals.failed, 0,
        "a flagged restrictive document must not loop through retries"
    );
}

#[tokio::test]
async fn keep_replaced_version_keeps_it_with_no_extra_call() {
    let list = single_page(vec![finding("WS_AUDIT_keep", "1")]);
    let get = permissive_policies();
    let create = create_ok("2");
    let deleted = Arc::new(Mutex::new(Vec::new()));
    let delete = delete_recording(&deleted);
    let versions = mock!(Client::list_policy_versions)
        .then_output(|| versions_output(&[("1", false, None), ("2", true, None)]));
    let get_version =
        mock!(Client::get_policy_version).then_output(|| GetPolicyVersionOutput::builder().build());
    let config = Config {
        keep_replaced_version: true,
        ..deleting_config()
    };
    let report = run(
        client(&[&list, &get, &create, &delete, &versions, &get_version]),
        config,
    )
    .await
    .unwrap();
    assert_eq!(delete.num_calls(), 0);
    assert_eq!(
        versions.num_calls(),
        0,
        "version 2 follows 1: nobody else created one, nothing to check"
    );
    assert_eq!(get_version.num_calls(), 0);
    let f = &by_policy(&report)["WS_AUDIT_keep"];
    assert_eq!(f["outcome"], "remediated");
    assert_eq!(f["keptVersionId"], "1");
}

#[tokio::test]
async fn past_the_cutoff_nothing_starts_and_the_listing_stops() {
    let list =
        mock!(Client::list_audit_findings).then_compute_output(|req| match req.next_token() {
            None => page(
                vec![finding("WS_AUDIT_a", "1"), finding("Other", "1")],
                Some("t1"),
            ),
            Some(_) => page(vec![finding("WS_AUDIT_b", "1")], None),
        });
    let get = permissive_policies();
    let event: Value = serde_json::from_str(EVENT).unwrap();
    let cutoff = Cutoff::at(std::time::Instant::now());
    let err = handle_event(
        &app(client(&[&list, &get]), deleting_config()),
        &event,
        cutoff,
    )
    .await
    .unwrap_err();
    assert_eq!(
        list.num_calls(),
        1,
        "no further page is read past the cutoff"
    );
    assert_eq!(get.num_calls(), 0);
    assert_eq!(
        (err.deferred, err.listing_errors, err.remediated),
        (1, 1, 0)
    );
    let v = serde_json::to_value(&err.report).unwrap();
    assert_eq!(v["records"][0]["checks"][0]["listingDeferred"], true);
    let p = by_policy(&err.report);
    assert_eq!(p["WS_AUDIT_a"]["outcome"], "deferred");
    assert_eq!(
        p["Other"]["reason"], "out_of_scope",
        "cheap filters still report"
    );
}

#[tokio::test]
async fn a_cutoff_after_the_last_page_is_not_a_deferral() {
    let list = single_page(vec![finding("WS_AUDIT_a", "1")]);
    let get = permissive_policies();
    let create = create_ok("2");
    let deleted = Arc::new(Mutex::new(Vec::new()));
    let delete = delete_recording(&deleted);
    let event: Value = serde_json::from_str(EVENT).unwrap();
    // Passes while the only policy is in flight: it finishes, and nothing is left to defer.
    let cutoff = Cutoff::at(std::time::Instant::now() + Duration::from_millis(1));
    let app = app(client(&[&list, &get, &create, &delete]), deleting_config());
    tokio::time::sleep(Duration::from_millis(2)).await;
    let err = handle_event(&app, &event, cutoff).await.unwrap_err();
    // The cutoff passed before the first finding could start: deferred, but the listing itself
    // was complete (one page, no token).
    assert_eq!((err.deferred, err.listing_errors), (1, 0));
}

#[tokio::test]
async fn at_the_limit_a_changed_default_frees_no_slot() {
    // A timed-out create was applied after all: version 6 is the default now, and the replaced
    // version 1 is the oldest non-default one. It must not be deleted to make room.
    let list = single_page(vec![finding("WS_AUDIT_moved", "1")]);
    let get = permissive_policies();
    let versions = mock!(Client::list_policy_versions).then_output(|| {
        versions_output(&[
            ("1", false, Some(1)),
            ("3", false, Some(3)),
            ("4", false, Some(4)),
            ("5", false, Some(5)),
            ("6", true, Some(6)),
        ])
    });
    let create = mock!(Client::create_policy_version).then_error(versions_limit);
    let deleted = Arc::new(Mutex::new(Vec::new()));
    let delete = delete_recording(&deleted);
    let config = Config {
        keep_replaced_version: true,
        ..deleting_config()
    };
    let err = run(client(&[&list, &get, &versions, &create, &delete]), config)
        .await
        .unwrap_err();
    assert_eq!(delete.num_calls(), 0);
    assert_eq!(create.num_calls(), 1);
    let f = &by_policy(&err.report)["WS_AUDIT_moved"];
    assert_eq!(f["outcome"], "failed");
    assert!(
        f["error"]
            .as_str()
            .unwrap()
            .contains("no longer the default"),
        "{f}"
    );
}

#[tokio::test]
async fn a_bare_http_429_is_retried_as_throttling() {
    // Some emulators answer throttling with 429 and no error code (SPEC §5).
    let list = single_page(vec![finding("WS_AUDIT_429", "1")]);
    let get = mock!(Client::get_policy)
        .sequence()
        .http_status(429, None)
        .output(|| {
            GetPolicyOutput::builder()
                .default_version_id("1")
                .policy_document(PERMISSIVE)
                .build()
        })
        .build();
    let create = create_ok("2");
    let deleted = Arc::new(Mutex::new(Vec::new()));
    let delete = delete_recording(&deleted);
    let report = run(client(&[&list, &get, &create, &delete]), deleting_config())
        .await
        .unwrap();
    assert_eq!(get.num_calls(), 2);
    assert_eq!(report.totals.remediated, 1);
}

// --- Fan-out: SendMessageBatch through the real SQS client ----------------------------------

mod fanout {
    use super::*;
    use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchOutput;
    use aws_sdk_sqs::types::{BatchResultErrorEntry, SendMessageBatchResultEntry};
    use iot_audit_remediator::aws::{Enqueuer, SEND_ROUNDS};
    use iot_audit_remediator::domain::{Job, PolicyVersionRef};

    const QUEUE: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/jobs";

    fn sqs(rules: &[&Rule]) -> aws_sdk_sqs::Client {
        mock_client!(
            aws_sdk_sqs,
            RuleMode::Sequential,
            rules.iter().copied(),
            |c| c.retry_config(
                aws_sdk_sqs::config::retry::RetryConfig::standard()
                    .with_initial_backoff(Duration::from_millis(1))
                    .with_max_backoff(Duration::from_millis(5))
            )
        )
    }

    fn jobs(n: usize) -> Vec<Job> {
        (0..n)
            .map(|i| Job {
                task_id: Some(TASK.into()),
                finding_id: Some(format!("f{i}")),
                policy: PolicyVersionRef {
                    policy_name: format!("WS_AUDIT_{i}"),
                    version_id: "1".into(),
                },
                account_id: None,
                region: None,
            })
            .collect()
    }

    fn ok(id: &str) -> SendMessageBatchResultEntry {
        SendMessageBatchResultEntry::builder()
            .id(id)
            .message_id(format!("m-{id}"))
            .md5_of_message_body("x")
            .build()
            .unwrap()
    }

    fn failed(id: &str, sender_fault: bool, code: &str) -> BatchResultErrorEntry {
        BatchResultErrorEntry::builder()
            .id(id)
            .sender_fault(sender_fault)
            .code(code)
            .message("mocked")
            .build()
            .unwrap()
    }

    /// (entry id, body) of every entry of one request.
    fn entries(
        req: &aws_sdk_sqs::operation::send_message_batch::SendMessageBatchInput,
    ) -> Vec<(String, String)> {
        req.entries()
            .iter()
            .map(|e| (e.id().to_owned(), e.message_body().to_owned()))
            .collect()
    }

    #[tokio::test]
    async fn failed_entries_are_sent_again_and_refused_ones_reported() {
        let jobs = jobs(4);
        let sent = Arc::new(Mutex::new(Vec::new()));
        let (first_seen, second_seen) = (Arc::clone(&sent), Arc::clone(&sent));
        let first =
            mock!(aws_sdk_sqs::Client::send_message_batch).then_compute_output(move |req| {
                first_seen.lock().unwrap().push(entries(req));
                // Entry 3 is missing from the answer altogether.
                SendMessageBatchOutput::builder()
                    .successful(ok("0"))
                    .failed(failed("1", false, "InternalError"))
                    .failed(failed("2", true, "InvalidMessageContents"))
                    .build()
                    .unwrap()
            });
        let second =
            mock!(aws_sdk_sqs::Client::send_message_batch).then_compute_output(move |req| {
                second_seen.lock().unwrap().push(entries(req));
                let mut out = SendMessageBatchOutput::builder().set_failed(Some(vec![]));
                for e in req.entries() {
                    out = out.successful(ok(e.id()));
                }
                out.build().unwrap()
            });
        let enqueuer = Enqueuer::new(sqs(&[&first, &second]), QUEUE);
        let results = enqueuer.send(&jobs).await;

        assert_eq!(results[0], Ok(()));
        assert_eq!(results[1], Ok(()), "sent again in the second round");
        let refused = results[2].as_ref().unwrap_err();
        assert!(refused.contains("InvalidMessageContents"), "{refused}");
        assert_eq!(
            results[3],
            Ok(()),
            "an entry missing from the answer is sent again"
        );
        let sent = sent.lock().unwrap();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0].len(), 4);
        let again: Vec<&str> = sent[1].iter().map(|(_, body)| body.as_str()).collect();
        assert_eq!(again, [jobs[1].to_body(), jobs[3].to_body()]);
        for (id, body) in &sent[0] {
            let job = Job::parse(Some(body)).unwrap();
            assert_eq!(job, jobs[id.parse::<usize>().unwrap()]);
        }
    }

    #[tokio::test]
    async fn a_queue_that_keeps_failing_is_reported_per_job() {
        let error = mock!(aws_sdk_sqs::Client::send_message_batch)
            .sequence()
            .http_status(500, None)
            .repeatedly()
            .build();
        let enqueuer = Enqueuer::new(sqs(&[&error]), QUEUE);
        let results = enqueuer.send(&jobs(3)).await;
        for r in &results {
            let e = r.as_ref().unwrap_err();
            assert!(e.contains("SendMessageBatch"), "{e}");
        }
        // Every round is one call retried by the SDK (3 attempts by default).
        assert_eq!(error.num_calls(), SEND_ROUNDS as usize * 3);
    }
}

/// A job batch of one job (`finding-<policy>` names the finding).
fn job_event(policy: &str) -> Value {
    let body = serde_json::json!({"taskId": TASK, "findingId": format!("finding-{policy}"),
        "policyName": policy, "policyVersionId": "1"});
    serde_json::json!({"Records": [{"messageId": "m1", "receiptHandle": "r",
        "body": body.to_string(), "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {}, "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:jobs", "awsRegion": "us-east-1"}]})
}

async fn run_jobs(client: Client, policy: &str) -> Value {
    let app = app(client, deleting_config());
    let response = iot_audit_remediator::entry::handle(&app, &job_event(policy), Cutoff::NONE)
        .await
        .unwrap();
    serde_json::to_value(response).unwrap()
}

/// The job's `DescribeAuditFinding` goes through the SDK's retries like every call; an unknown
/// finding id (404) is a verdict, not a failure: the job is done with no policy call.
#[tokio::test]
async fn a_jobs_finding_is_read_through_the_sdks_retries_and_a_404_is_a_verdict() {
    use aws_sdk_iot::operation::describe_audit_finding::{
        DescribeAuditFindingError, DescribeAuditFindingOutput,
    };
    let describe = mock!(Client::describe_audit_finding)
        .sequence()
        .error(|| {
            DescribeAuditFindingError::ThrottlingException(
                ThrottlingException::builder()
                    .meta(meta("ThrottlingException"))
                    .build(),
            )
        })
        .output(|| {
            DescribeAuditFindingOutput::builder()
                .finding(finding("WS_AUDIT_j", "1"))
                .build()
        })
        .build();
    let (get, create) = (permissive_policies(), create_ok("2"));
    let deleted = Arc::new(Mutex::new(Vec::new()));
    let delete = delete_recording(&deleted);
    let v = run_jobs(client(&[&describe, &get, &create, &delete]), "WS_AUDIT_j").await;
    assert_eq!(describe.num_calls(), 2);
    assert_eq!(v["totals"]["remediated"], 1, "{v}");
    assert_eq!(v["batchItemFailures"], serde_json::json!([]));

    let unknown = mock!(Client::describe_audit_finding).then_error(|| {
        DescribeAuditFindingError::ResourceNotFoundException(
            ResourceNotFoundException::builder()
                .meta(meta("ResourceNotFoundException"))
                .build(),
        )
    });
    let get = permissive_policies();
    let v = run_jobs(client(&[&unknown, &get]), "WS_AUDIT_j").await;
    assert_eq!(unknown.num_calls(), 1, "not retried");
    assert_eq!(get.num_calls(), 0);
    assert_eq!(v["totals"]["skippedByReason"]["unverified_job"], 1, "{v}");
    assert_eq!(v["batchItemFailures"], serde_json::json!([]));
}
