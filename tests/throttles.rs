//! The `Throttled` count through the real SDK client: its error parsing, its retry classifiers
//! and its retries, with responses from `aws-smithy-mocks` (and, for the production
//! constructor, a canned HTTP client) instead of the network.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_iot::config::retry::RetryConfig;
use aws_sdk_iot::error::ErrorMetadata;
use aws_sdk_iot::operation::get_policy::{GetPolicyError, GetPolicyOutput};
use aws_sdk_iot::types::error::{ResourceNotFoundException, ThrottlingException};
use aws_sdk_iot::Client;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use iot_audit_remediator::aws::{
    iot_client, with_call_policy, with_throttle_count, Throttles, MAX_ATTEMPTS,
};

/// A client with the production retry policy, backoff shortened so the tests do not sleep,
/// counting into `throttles`.
fn client(rule: &Rule, throttles: &Throttles) -> Client {
    mock_client!(aws_sdk_iot, RuleMode::MatchAny, [rule], |c| {
        let c = with_call_policy(c).retry_config(
            RetryConfig::standard()
                .with_max_attempts(MAX_ATTEMPTS)
                .with_initial_backoff(Duration::from_millis(1))
                .with_max_backoff(Duration::from_millis(5)),
        );
        with_throttle_count(c, throttles)
    })
}

fn ok() -> GetPolicyOutput {
    GetPolicyOutput::builder()
        .policy_name("WS_AUDIT_t")
        .default_version_id("1")
        .build()
}

/// IoT's throttling answer on the wire: HTTP 400, the error code in `x-amzn-ErrorType`.
fn throttled_on_the_wire() -> HttpResponse {
    let mut response = HttpResponse::new(
        StatusCode::try_from(400).unwrap(),
        SdkBody::from(r#"{"message":"Rate exceeded"}"#),
    );
    response
        .headers_mut()
        .insert("x-amzn-ErrorType", "ThrottlingException");
    response
        .headers_mut()
        .insert("Content-Type", "application/json");
    response
}

/// The same error as a modeled one, as the SDK would have parsed it.
fn throttling_exception() -> GetPolicyError {
    GetPolicyError::ThrottlingException(
        ThrottlingException::builder()
            .meta(
                ErrorMetadata::builder()
                    .code("ThrottlingException")
                    .message("Rate exceeded")
                    .build(),
            )
            .build(),
    )
}

async fn get_policy(client: &Client) -> Result<GetPolicyOutput, String> {
    client
        .get_policy()
        .policy_name("WS_AUDIT_t")
        .send()
        .await
        .map_err(|e| format!("{:?}", e.into_service_error()))
}

#[tokio::test]
async fn two_throttling_exceptions_on_the_wire_then_ok_count_two() {
    let throttles = Throttles::default();
    let rule = mock!(Client::get_policy)
        .sequence()
        .http_response(throttled_on_the_wire)
        .times(2)
        .output(ok)
        .build();
    let out = get_policy(&client(&rule, &throttles)).await.unwrap();
    assert_eq!(out.default_version_id(), Some("1"));
    assert_eq!(rule.num_calls(), 3, "retried twice");
    assert_eq!(throttles.take(), 2);
    assert_eq!(throttles.take(), 0, "take() resets");
}

#[tokio::test]
async fn modeled_throttling_errors_count_too() {
    let throttles = Throttles::default();
    let rule = mock!(Client::get_policy)
        .sequence()
        .error(throttling_exception)
        .times(2)
        .output(ok)
        .build();
    get_policy(&client(&rule, &throttles)).await.unwrap();
    assert_eq!(throttles.take(), 2);
}

#[tokio::test]
async fn a_bare_http_429_counts() {
    let throttles = Throttles::default();
    let rule = mock!(Client::get_policy)
        .sequence()
        .http_status(429, None)
        .output(ok)
        .build();
    get_policy(&client(&rule, &throttles)).await.unwrap();
    assert_eq!(rule.num_calls(), 2);
    assert_eq!(throttles.take(), 1);
}

#[tokio::test]
async fn a_500_is_retried_but_is_not_throttling() {
    let throttles = Throttles::default();
    let rule = mock!(Client::get_policy)
        .sequence()
        .http_status(500, Some(r#"{"message":"internal failure"}"#.into()))
        .times(2)
        .output(ok)
        .build();
    get_policy(&client(&rule, &throttles)).await.unwrap();
    assert_eq!(rule.num_calls(), 3, "the 500s were retried");
    assert_eq!(throttles.take(), 0);
}

#[tokio::test]
async fn other_errors_and_successes_do_not_count() {
    let throttles = Throttles::default();
    let rule = mock!(Client::get_policy).then_error(|| {
        GetPolicyError::ResourceNotFoundException(
            ResourceNotFoundException::builder()
                .meta(
                    ErrorMetadata::builder()
                        .code("ResourceNotFoundException")
                        .build(),
                )
                .build(),
        )
    });
    let client = client(&rule, &throttles);
    let err = get_policy(&client).await.unwrap_err();
    assert!(err.contains("ResourceNotFoundException"), "{err}");
    assert_eq!(rule.num_calls(), 1, "not retried");
    assert_eq!(throttles.get(), 0);
}

#[tokio::test]
async fn a_call_throttled_to_the_last_attempt_fails_and_counts_every_attempt() {
    let throttles = Throttles::default();
    let rule = mock!(Client::get_policy).then_http_response(throttled_on_the_wire);
    let err = get_policy(&client(&rule, &throttles)).await.unwrap_err();
    assert!(err.contains("ThrottlingException"), "{err}");
    assert_eq!(rule.num_calls() as u32, MAX_ATTEMPTS);
    assert_eq!(throttles.take(), u64::from(MAX_ATTEMPTS));
}

#[tokio::test]
async fn one_counter_serves_concurrent_calls_and_clones() {
    let throttles = Throttles::default();
    let rule = mock!(Client::get_policy)
        .sequence()
        .http_status(429, None)
        .times(3)
        .output(ok)
        .repeatedly()
        .build();
    let client = client(&rule, &throttles.clone());
    let calls = (0..4).map(|_| get_policy(&client));
    for result in futures::future::join_all(calls).await {
        result.unwrap();
    }
    assert_eq!(
        throttles.take(),
        3,
        "each throttled attempt once, whichever call it was"
    );
}

/// The production constructor attaches the counter: a canned HTTP client answers 429, then
/// the policy. The production backoff applies (one retry: at most 1 s with jitter).
#[tokio::test]
async fn the_production_client_counts_throttles() {
    let answered = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&answered);
    let http = aws_smithy_http_client::test_util::infallible_client_fn(move |_req| {
        let status = if seen.fetch_add(1, Ordering::SeqCst) == 0 {
            429
        } else {
            200
        };
        http::Response::builder()
            .status(status)
            .body(r#"{"policyName":"WS_AUDIT_t","defaultVersionId":"1"}"#)
            .unwrap()
    });
    let sdk_config = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_iot::config::SharedCredentialsProvider::new(
            aws_sdk_iot::config::Credentials::new("test", "test", None, None, "tests"),
        ))
        .http_client(http)
        .build();
    let throttles = Throttles::default();
    let out = get_policy(&iot_client(&sdk_config, &throttles))
        .await
        .unwrap();
    assert_eq!(out.default_version_id(), Some("1"));
    assert_eq!(answered.load(Ordering::SeqCst), 2);
    assert_eq!(throttles.take(), 1);
}
