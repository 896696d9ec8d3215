//! Hostile input never panics: property tests over "SNS event → classified records",
//! "SQS job batch → partial batch response" and "findings → decisions". Seeds come from
//! `events/` (SNS messages and job bodies); the rest is generated: arbitrary bytes,
//! mutations of the seeds, deep nesting, huge strings, wrong types, unicode policy names.
//!
//! CI runs the default number of cases (`PROPTEST_CASES`, see `.ci/run`); for a long run:
//! `PROPTEST_CASES=25000 cargo test --test hostile_input` (200,000 cases, about 2 minutes).

mod common;

use common::{app, test_config};
use iot_audit_remediator::aws::SdkIot;
use iot_audit_remediator::config::Config;
use iot_audit_remediator::domain::{
    classify_event, classify_message, classify_sqs_body, decide, duplicate_candidates,
    oldest_non_default, others_created_since, parse_rollback, Finding, Job, PolicyState,
    PolicyVersionRef, RejectReason, Screen, Screener, SqsBody, VersionInfo,
};
use iot_audit_remediator::engine::{App, Cutoff};
use iot_audit_remediator::entry::{handle, InvocationError, Response};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Arc;

/// One record of a job batch: its message id (if any) and what its body is.
#[derive(Clone, Debug)]
enum Body {
    /// A job for `WS_AUDIT_<n>`: needs IoT calls, which all fail here.
    InScope(u8),
    /// A job for a policy outside the prefix: done without a call.
    OutOfScope(u8),
    /// Not a job.
    Garbage(String),
}

fn job_record() -> impl Strategy<Value = (Option<u8>, Body)> {
    (
        prop::option::weighted(0.95, any::<u8>()),
        prop_oneof![
            (0..5u8).prop_map(Body::InScope),
            (0..5u8).prop_map(Body::OutOfScope),
            "\\PC{0,40}".prop_map(Body::Garbage),
        ],
    )
}

fn body_text(body: &Body) -> String {
    let job = |name: String| {
        json!({"taskId": "t", "policyName": name, "policyVersionId": "1"}).to_string()
    };
    match body {
        Body::InScope(n) => job(format!("WS_AUDIT_{n}")),
        Body::OutOfScope(n) => job(format!("Fleet{n}")),
        Body::Garbage(text) => text.clone(),
    }
}

/// An application whose client answers `rule` alone: every other call finds no answer in the
/// mock (which panics inside a policy's task, and the pool turns that into its failure).
fn app_answering(rule: &aws_smithy_mocks::Rule) -> Arc<App<SdkIot>> {
    let client =
        aws_smithy_mocks::mock_client!(aws_sdk_iot, aws_smithy_mocks::RuleMode::MatchAny, [rule]);
    app(client, test_config())
}

fn refused() -> aws_sdk_iot::types::error::InvalidRequestException {
    aws_sdk_iot::types::error::InvalidRequestException::builder()
        .message("refused")
        .build()
}

/// An application whose every IoT call fails: the suppressions cannot be read (a modeled
/// error, not retried), and nothing else is answered.
fn failing_app() -> Arc<App<SdkIot>> {
    use aws_sdk_iot::operation::list_audit_suppressions::ListAuditSuppressionsError;
    let rule = aws_smithy_mocks::mock!(aws_sdk_iot::Client::list_audit_suppressions)
        .then_error(|| ListAuditSuppressionsError::InvalidRequestException(refused()));
    app_answering(&rule)
}

/// An application whose `ListAuditFindings` is refused (`InvalidRequestException`, not retried).
fn refusing_listing_app() -> Arc<App<SdkIot>> {
    use aws_sdk_iot::operation::list_audit_findings::ListAuditFindingsError;
    let rule = aws_smithy_mocks::mock!(aws_sdk_iot::Client::list_audit_findings)
        .then_error(|| ListAuditFindingsError::InvalidRequestException(refused()));
    app_answering(&rule)
}

fn seeds() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/events");
    let mut messages = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let event: Value = serde_json::from_str(&text).unwrap();
        // A rollback event carries no message to mutate; it has a property of its own.
        let Some(records) = event["Records"].as_array() else {
            continue;
        };
        for record in records {
            let text = record["Sns"]["Message"]
                .as_str()
                .or(record["body"].as_str());
            messages.push(text.unwrap().to_owned());
        }
    }
    messages.sort();
    messages
}

/// A seed message with a few random byte edits (what a mutational fuzzer does).
fn mutated_seed() -> impl Strategy<Value = String> {
    let seeds = seeds();
    (
        0..seeds.len(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..8),
    )
        .prop_map(move |(i, edits)| {
            let mut bytes = seeds[i].clone().into_bytes();
            for (at, byte, kind) in edits {
                let pos = at.index(bytes.len() + 1);
                match kind {
                    0 => bytes.insert(pos, byte),
                    1 if pos < bytes.len() => bytes[pos] = byte,
                    _ if pos < bytes.len() => {
                        bytes.remove(pos);
                    }
                    _ => {}
                }
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
}

/// Arbitrary JSON with the keys the classifier looks at, so generated values reach every branch.
fn json_value() -> impl Strategy<Value = Value> {
    let keys = prop::sample::select(vec![
        "taskId",
        "taskStatus",
        "taskType",
        "auditDetails",
        "checkName",
        "checkRunStatus",
        "nonCompliantResourcesCount",
        "suppressedNonCompliantResourceCount",
        "violationId",
        "violationEventType",
        "findingId",
        "nonCompliantResource",
        "thingName",
        "Records",
        "Sns",
        "Message",
        "MessageId",
        "other",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::from),
        prop::sample::select(vec![
            "COMPLETED",
            "COMPLETED_NON_COMPLIANT",
            "IOT_POLICY_OVERLY_PERMISSIVE_CHECK",
            "FAILED"
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(6, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(keys.clone(), inner, 0..8).prop_map(|m| Value::Object(
                m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
            )),
        ]
    })
}

fn sns_event(messages: Vec<Value>) -> Value {
    let records: Vec<Value> = messages
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let message = match m {
                Value::String(s) => s,
                other => other.to_string(),
            };
            json!({"EventSource": "aws:sns", "EventVersion": "1.0", "EventSubscriptionArn": "arn",
                   "Sns": {"MessageId": format!("m{i}"), "Message": message, "Type": "Notification",
                           "TopicArn": "arn", "Timestamp": "2019-10-25T14:19:33.294Z",
                           "SignatureVersion": "1", "Signature": "x", "SigningCertUrl": "u",
                           "UnsubscribeUrl": "u", "MessageAttributes": {}}})
        })
        .collect();
    json!({ "Records": records })
}

fn finding() -> impl Strategy<Value = Finding> {
    (
        prop::option::of(".{0,20}"),
        prop::option::of(prop::sample::select(vec![
            "IOT_POLICY",
            "DEVICE_CERTIFICATE",
            "",
            "iot_policy",
        ])),
        prop::option::of(("\\PC{0,40}", "[0-9a-z]{0,4}")),
        any::<bool>(),
        prop::bool::ANY,
    )
        .prop_map(|(id, kind, policy, suppressed, prefixed)| Finding {
            finding_id: id,
            resource_type: kind.map(str::to_owned),
            policy: policy.map(|(name, version)| PolicyVersionRef {
                policy_name: if prefixed {
                    format!("WS_AUDIT_{name}")
                } else {
                    name
                },
                version_id: version,
            }),
            is_suppressed: suppressed,
        })
}

fn versions() -> impl Strategy<Value = Vec<VersionInfo>> {
    prop::collection::vec(
        (
            "[0-9]{0,3}|[a-z]{1,2}",
            any::<bool>(),
            prop::option::of(any::<i64>()),
        )
            .prop_map(|(id, d, c)| VersionInfo {
                version_id: id,
                is_default: d,
                created_ms: c,
            }),
        0..7,
    )
}

proptest! {
    #[test]
    fn arbitrary_text_as_a_message_never_panics(text in "\\PC{0,200}") {
        let _ = classify_message(&text);
    }

    #[test]
    fn arbitrary_bytes_as_a_message_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = classify_message(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn mutated_sample_messages_never_panic(text in mutated_seed()) {
        let _ = classify_message(&text);
    }

    #[test]
    fn mutated_job_bodies_never_panic(text in mutated_seed()) {
        if let Ok(job) = Job::parse(Some(&text)) {
            prop_assert!(!job.policy.policy_name.is_empty() && !job.policy.version_id.is_empty());
        }
    }

    /// The model: a batch names exactly the bodies that are not jobs and every in-scope job
    /// (their calls fail here; a second job for a policy runs after the first and fails too);
    /// a record without an id fails the whole batch.
    #[test]
    fn a_job_batch_names_exactly_what_is_not_done(records in prop::collection::vec(job_record(), 0..12)) {
        let records: Vec<(Option<String>, Body)> = records
            .into_iter()
            .enumerate()
            .map(|(i, (id, body))| (id.map(|_| format!("m{i}")), body))
            .collect();
        let event = json!({"Records": records.iter().map(|(id, body)| {
            let mut r = json!({"body": body_text(body), "eventSource": "aws:sqs", "attributes": {}});
            if let Some(id) = id {
                r["messageId"] = json!(id);
            }
            r
        }).collect::<Vec<_>>()});
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let result = runtime.block_on(handle(&failing_app(), &event, Cutoff::NONE));
        if records.is_empty() {
            // Not recognisable as SQS: handled as an SNS event with no records, never a panic.
            prop_assert!(result.is_ok());
            return Ok(());
        }
        if records.iter().any(|(id, _)| id.is_none()) {
            prop_assert!(matches!(result, Err(InvocationError::UnnamedRecords(_))));
            return Ok(());
        }
        let expected: BTreeSet<String> = records
            .iter()
            .filter(|(_, body)| match body {
                Body::InScope(_) => true,
                Body::OutOfScope(_) => false,
                // Random text is neither a job nor a Device Defender message (or, rarely, a
                // message that does not parse): rejected either way.
                Body::Garbage(text) => match classify_sqs_body(Some(text)) {
                    SqsBody::Job => Job::parse(Some(text)).is_err(),
                    SqsBody::Message { message, .. } => message.is_err(),
                },
            })
            .map(|(id, _)| id.clone().unwrap())
            .collect();
        let response = serde_json::to_value(result.unwrap()).unwrap();
        let named: BTreeSet<String> = response["batchItemFailures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["itemIdentifier"].as_str().unwrap().to_owned())
            .collect();
        prop_assert_eq!(named, expected);
    }

    #[test]
    fn arbitrary_json_messages_are_classified_or_rejected(messages in prop::collection::vec(json_value(), 0..4)) {
        let n = messages.len();
        let records = classify_event(&sns_event(messages));
        // One result per record; an empty event is one rejection.
        prop_assert_eq!(records.len(), n.max(1));
    }

    #[test]
    fn arbitrary_json_events_never_panic(event in json_value()) {
        let records = classify_event(&event);
        prop_assert!(!records.is_empty());
    }

    #[test]
    fn arbitrary_rollback_events_are_read_or_refused_with_no_call(request in json_value()) {
        let event = json!({ "rollback": request });
        let parsed = parse_rollback(&event);
        if let Ok(r) = &parsed {
            prop_assert!(!r.task_id.trim().is_empty());
        }
        // The listing is refused: a refused event never gets as far as it, and an accepted one
        // fails its listing without a panic.
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let answer = runtime.block_on(handle(&refusing_listing_app(), &event, Cutoff::NONE));
        match (parsed, answer) {
            (Err(_), Ok(Response::Audit(report))) => {
                prop_assert_eq!(report.record_totals.rejected, 1);
            }
            (Ok(_), Err(InvocationError::Incomplete(e))) => {
                prop_assert_eq!(e.report.totals.listing_errors, 1);
            }
            (parsed, answer) => prop_assert!(false, "{:?} answered {:?}", parsed, answer),
        }
    }

    #[test]
    fn screening_is_total_and_handles_each_policy_once(findings in prop::collection::vec(finding(), 0..30)) {
        let mut screener = Screener::new("WS_AUDIT_");
        let mut in_scope = std::collections::HashSet::new();
        for f in &findings {
            if let Screen::InScope(p) = screener.screen(f) {
                prop_assert!(p.policy_name.starts_with("WS_AUDIT_"));
                prop_assert!(!f.is_suppressed);
                prop_assert!(in_scope.insert(p.policy_name.clone()), "policy handled twice");
            }
        }
    }

    #[test]
    fn decisions_are_total(
        version in "[0-9]{0,3}|\\PC{0,5}",
        default in "[0-9]{0,3}|\\PC{0,5}",
        restrictive in any::<bool>(),
        exists in any::<bool>(),
        keep in any::<bool>(),
    ) {
        let flagged = PolicyVersionRef { policy_name: "WS_AUDIT_x".into(), version_id: version };
        let state = PolicyState { default_version_id: default, default_is_restrictive: restrictive };
        let config = Config { keep_replaced_version: keep, ..Config::default() };
        let _ = decide(&flagged, exists.then_some(&state), config.after_create());
    }

    #[test]
    fn version_choices_never_pick_the_default(versions in versions(), created in "[0-9]{0,3}|x") {
        if let Some(v) = oldest_non_default(&versions) {
            prop_assert!(!v.is_default);
        }
        prop_assert!(duplicate_candidates(&versions, &created).all(|v| !v.is_default));
        let _ = others_created_since(&created, versions.iter().map(|v| v.version_id.as_str()));
    }
}

#[test]
fn deep_nesting_is_rejected_not_a_stack_overflow() {
    for open in ["[", "{\"a\":"] {
        let text = open.repeat(100_000);
        assert!(matches!(
            classify_message(&text),
            Err(RejectReason::NotJson(_))
        ));
    }
    let event = sns_event(vec![Value::String("[".repeat(1_000_000))]);
    assert!(classify_event(&event)[0].message.is_err());
}

#[test]
fn huge_strings_are_handled() {
    let name = "WS_AUDIT_".to_owned() + &"é".repeat(500_000);
    let message =
        json!({"taskId": name, "taskStatus": "COMPLETED", "auditDetails": []}).to_string();
    assert!(classify_message(&message).is_ok());
    let f = Finding {
        finding_id: None,
        resource_type: Some("IOT_POLICY".into()),
        policy: Some(PolicyVersionRef {
            policy_name: name,
            version_id: "1".repeat(10_000),
        }),
        is_suppressed: false,
    };
    assert!(matches!(
        Screener::new("WS_AUDIT_").screen(&f),
        Screen::InScope(_)
    ));
}
