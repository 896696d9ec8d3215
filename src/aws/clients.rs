//! The SDK clients as the function uses them: IoT's retry and timeout policy and its throttle
//! count, SQS's timeouts, and the IAM actions the calls in this folder need.

use std::time::Duration;

use aws_sdk_iot::config::retry::{
    ClassifyRetry, RetryAction, RetryConfig, RetryPartition, TokenBucket,
};
use aws_sdk_iot::config::timeout::TimeoutConfig;
use aws_smithy_runtime_api::client::interceptors::context::InterceptorContext;

use super::throttles::{with_throttle_count, Throttles};

/// Every IoT API operation the function calls, as IAM action names. The SAM template's role
/// and `policies/remediator-iam-policy.json` grant exactly these; a test keeps the three in step
/// with the calls in `src/`.
pub const IOT_ACTIONS: &[&str] = &[
    "iot:ListAuditFindings",
    "iot:DescribeAuditFinding",
    "iot:ListAuditSuppressions",
    "iot:GetPolicy",
    "iot:GetPolicyVersion",
    "iot:ListPolicyVersions",
    "iot:CreatePolicyVersion",
    "iot:DeletePolicyVersion",
    "iot:ListTargetsForPolicy",
    "iot:SetDefaultPolicyVersion",
    "iot:DescribeAuditSuppression",
    "iot:CreateAuditSuppression",
    "iot:UpdateAuditSuppression",
];

/// The SQS actions the function's own calls need (fan-out only): `SendMessageBatch` is
/// authorised as `sqs:SendMessage`. The template grants them on the job queue alone, besides
/// what the event source mapping needs to deliver jobs.
pub const SQS_ACTIONS: &[&str] = &["sqs:SendMessage"];

/// The SNS action of the notifications, granted on the notification topic alone.
pub const SNS_ACTIONS: &[&str] = &["sns:Publish"];

/// Attempts per IoT call, first included. Throttling (expected when running at the account's
/// API quota) and 5xx are retried with exponential backoff and jitter, capped at
/// [`MAX_BACKOFF`]: a call gets about 25 s to get through a throttled burst. What still fails is
/// reported and left to Lambda's retry of the event.
pub const MAX_ATTEMPTS: u32 = 8;
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// One attempt of an IoT call gives up after this (a stalled connection).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// One IoT call, all its attempts and backoff included, gives up after this.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);
/// One notification, all its attempts included, gives up after this.
pub const NOTIFICATION_TIMEOUT: Duration = Duration::from_secs(10);

/// HTTP 429 without an error code (how some emulators and proxies throttle) is throttling too;
/// the SDK's own classifiers retry only codes they recognise and 500/502/503/504.
#[derive(Debug)]
struct TooManyRequests;

impl ClassifyRetry for TooManyRequests {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        match ctx.response() {
            Some(response) if response.status().as_u16() == 429 => RetryAction::throttling_error(),
            _ => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "HTTP 429 is throttling"
    }
}

/// The IoT client as the function uses it (see [`with_call_policy`]), counting its throttled
/// attempts in `throttles` for the `Throttled` metric.
pub fn iot_client(
    sdk_config: &aws_config::SdkConfig,
    throttles: &Throttles,
) -> aws_sdk_iot::Client {
    iot_client_on(sdk_config.into(), throttles)
}

/// As [`iot_client`], from a configuration builder (another region, other credentials).
pub(super) fn iot_client_on(
    builder: aws_sdk_iot::config::Builder,
    throttles: &Throttles,
) -> aws_sdk_iot::Client {
    let builder = with_throttle_count(with_call_policy(builder), throttles);
    aws_sdk_iot::Client::from_conf(builder.build())
}

/// Retries and timeouts for every IoT call: standard retries (exponential backoff with jitter,
/// throttling and 5xx retried) with more attempts than the SDK's default 3, and timeouts so a
/// stalled call fails one policy instead of hanging the invocation.
///
/// The SDK's default retry quota (a token bucket of 500, 5 per retry, 1 back per success)
/// drains when more than about one call in six is throttled, and then stops retrying at all:
/// a throttled burst would turn into failed policies. Throttling retries are paced by their
/// backoff instead, so here they cost no quota; 5xx and timeout retries still do.
pub fn with_call_policy(builder: aws_sdk_iot::config::Builder) -> aws_sdk_iot::config::Builder {
    builder
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(MAX_ATTEMPTS)
                .with_max_backoff(MAX_BACKOFF),
        )
        .retry_classifier(TooManyRequests)
        .retry_partition(
            RetryPartition::custom("iot-audit-remediator")
                .token_bucket(TokenBucket::builder().throttling_retry_cost(0).build())
                .build(),
        )
        .timeout_config(timeouts())
}

/// The SQS client for the fan-out queue: the SDK's standard retries (SQS's quotas are far
/// above what one audit sends), and the same timeouts as IoT calls.
pub fn sqs_client(sdk_config: &aws_config::SdkConfig) -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::config::Builder::from(sdk_config)
        .timeout_config(timeouts())
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

/// The SNS client for notifications: the SDK's standard retries, and at most
/// [`NOTIFICATION_TIMEOUT`] per publish, so a topic that does not answer costs a notification,
/// not the invocation (the deadline margin is 30 s by default).
pub fn sns_client(sdk_config: &aws_config::SdkConfig) -> aws_sdk_sns::Client {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(NOTIFICATION_TIMEOUT)
        .build();
    let config = aws_sdk_sns::config::Builder::from(sdk_config)
        .timeout_config(timeouts)
        .build();
    aws_sdk_sns::Client::from_conf(config)
}

fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}
