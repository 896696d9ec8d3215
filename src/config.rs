//! Configuration from the environment (SPEC §4). Every bad value is refused with the variable's
//! name, so a misconfigured function fails its init instead of running with a silent default.

use std::num::NonZeroUsize;
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::time::Duration;

use thiserror::Error;

use crate::aws::Operation;
use crate::domain::{AfterCreate, Partition};

pub const DEFAULT_PREFIX: &str = "WS_AUDIT_";
/// Policies worked on at once. Chosen from the benchmark figures in README (Performance).
pub const DEFAULT_MAX_CONCURRENCY: usize = 4;
/// Time left before Lambda's deadline at which no new policy is started: the ones in flight
/// finish (each IoT call gives up after [`crate::aws::OPERATION_TIMEOUT`]) and the rest is deferred.
pub const DEFAULT_DEADLINE_MARGIN_SECONDS: u64 = 30;
pub const MAX_DEADLINE_MARGIN_SECONDS: u64 = 600;
/// IoT's documented default quota: calls per second, per account and operation.
pub const DEFAULT_API_CALLS_PER_SECOND: u32 = 10;
pub const MAX_API_CALLS_PER_SECOND: u32 = 10_000;
/// Far above what the account's API quota can use; a larger value is a typo, not a wish.
pub const MAX_MAX_CONCURRENCY: usize = 64;
/// The event source mapping's `MaximumConcurrency` range (Lambda allows 2 to 1000).
pub const FANOUT_WORKERS_RANGE: RangeInclusive<u32> = 2..=1000;
pub const DEFAULT_FANOUT_WORKERS: u32 = 2;
pub const DEFAULT_METRICS_NAMESPACE: &str = "IotAuditRemediator";
pub const DEFAULT_ROLLBACK_SUPPRESSION_DAYS: u32 = 30;
/// Ten years: a suppression longer than that is a typo (use a person's judgement instead).
pub const MAX_ROLLBACK_SUPPRESSION_DAYS: u32 = 3650;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Only policies whose name starts with this are changed.
    pub target_policy_prefix: String,
    /// Report what would be done; make no write call.
    pub dry_run: bool,
    /// Keep the replaced (permissive) version as a non-default version for rollback.
    pub keep_replaced_version: bool,
    /// How many policies are worked on at once (1 = strictly sequential).
    pub max_concurrency: NonZeroUsize,
    /// Stop starting policies this long before the invocation's deadline.
    pub deadline_margin: Duration,
    /// Calls per second per IoT operation that the whole function may send (the account's
    /// quota); 0 = unpaced. With fan-out, each process gets its share (see [`Config::pace`]).
    pub api_calls_per_second: u32,
    /// Fan large audits out through an SQS queue instead of remediating inline.
    pub fanout: Option<FanoutConfig>,
    /// The SNS topic change notifications go to (SPEC §8); `None`: none are sent.
    pub notification_topic_arn: Option<String>,
    /// The CloudWatch namespace of the EMF metrics.
    pub metrics_namespace: String,
    /// After a rollback, the restored version's finding is suppressed for this many days;
    /// 0 = no suppression.
    pub rollback_suppression_days: u32,
    /// The function's own region (`AWS_REGION`, set by Lambda), for notifications and the
    /// partition of the restrictive document.
    pub region: Option<String>,
    /// The function's log group (`AWS_LAMBDA_LOG_GROUP_NAME`, set by Lambda), where a
    /// notification cut at SNS's size limit points its readers.
    pub log_group: Option<String>,
    /// The role other accounts' audits are worked with (`MEMBER_*`); `None`: only the
    /// function's own account is served.
    pub member: Option<MemberConfig>,
}

/// The member role the function assumes in another account (SPEC §11).
#[derive(Clone, PartialEq, Eq)]
pub struct MemberConfig {
    /// `MEMBER_ROLE_NAME`: the same role name in every member account.
    pub role_name: String,
    /// `MEMBER_EXTERNAL_ID`, sent with every `AssumeRole` when set.
    pub external_id: Option<String>,
}

/// The external id is a shared secret: it is never printed.
impl std::fmt::Debug for MemberConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberConfig")
            .field("role_name", &self.role_name)
            .field("external_id", &self.external_id.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// Where and how audits are fanned out (`FANOUT_*` variables).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FanoutConfig {
    /// The queue remediation jobs are sent to.
    pub queue_url: String,
    /// Audits whose check reports at most this many non-compliant resources stay inline;
    /// 0 = fan out every audit.
    pub inline_max_findings: u64,
    /// The event source mapping's maximum concurrency: how many workers share the quota.
    pub workers: u32,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("TARGET_POLICY_PREFIX is empty: that would put every policy of the account in scope")]
    EmptyPrefix,
    #[error(
        "TARGET_POLICY_PREFIX={0:?} has characters that cannot appear in an IoT policy name (allowed: letters, digits, _ + = , . @ -)"
    )]
    BadPrefix(String),
    #[error("{name}={value:?} is not a boolean: use true or false")]
    NotABool { name: &'static str, value: String },
    #[error("MAX_CONCURRENCY={0:?} is not a whole number from 1 to {MAX_MAX_CONCURRENCY}")]
    BadConcurrency(String),
    #[error("DEADLINE_MARGIN_SECONDS={0:?} is not a whole number from 0 to {MAX_DEADLINE_MARGIN_SECONDS}")]
    BadDeadlineMargin(String),
    #[error("API_CALLS_PER_SECOND={0:?} is not a whole number from 0 (unpaced) to {MAX_API_CALLS_PER_SECOND}")]
    BadApiRate(String),
    #[error("FANOUT_QUEUE_URL={0:?} is not an http(s) URL of an SQS queue")]
    BadQueueUrl(String),
    #[error("FANOUT_INLINE_MAX_FINDINGS={0:?} is not a whole number (0 = fan out every audit)")]
    BadInlineMax(String),
    #[error("FANOUT_WORKERS={0:?} is not a whole number from 2 to 1000 (the event source mapping's maximum concurrency)")]
    BadWorkers(String),
    #[error("NOTIFICATION_TOPIC_ARN={0:?} is not the ARN of an SNS topic (arn:<partition>:sns:<region>:<account>:<name>)")]
    BadTopicArn(String),
    #[error("METRICS_NAMESPACE={0:?} is not a CloudWatch namespace (1 to 255 of letters, digits and . - _ / # :, not starting with a colon)")]
    BadNamespace(String),
    #[error("ROLLBACK_SUPPRESSION_DAYS={0:?} is not a whole number from 0 (no suppression) to {MAX_ROLLBACK_SUPPRESSION_DAYS}")]
    BadSuppressionDays(String),
    #[error("MEMBER_ROLE_NAME={0:?} is not an IAM role name (1 to 64 of letters, digits and + = , . @ _ -)")]
    BadMemberRole(String),
    /// The value is a secret: it is not repeated.
    #[error("MEMBER_EXTERNAL_ID is not 2 to 1224 of letters, digits and + = , . @ : / _ -")]
    BadExternalId,
    #[error("MEMBER_EXTERNAL_ID is set but MEMBER_ROLE_NAME is not: no role would use it")]
    ExternalIdWithoutRole,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            target_policy_prefix: DEFAULT_PREFIX.to_owned(),
            dry_run: false,
            keep_replaced_version: true,
            max_concurrency: NonZeroUsize::new(DEFAULT_MAX_CONCURRENCY)
                .unwrap_or(NonZeroUsize::MIN),
            deadline_margin: Duration::from_secs(DEFAULT_DEADLINE_MARGIN_SECONDS),
            api_calls_per_second: DEFAULT_API_CALLS_PER_SECOND,
            fanout: None,
            notification_topic_arn: None,
            metrics_namespace: DEFAULT_METRICS_NAMESPACE.to_owned(),
            rollback_suppression_days: DEFAULT_ROLLBACK_SUPPRESSION_DAYS,
            region: None,
            log_group: None,
            member: None,
        }
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup` (the environment in production, a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let target_policy_prefix = match lookup("TARGET_POLICY_PREFIX") {
            None => defaults.target_policy_prefix,
            Some(p) if p.is_empty() => return Err(ConfigError::EmptyPrefix),
            Some(p) if !p.chars().all(is_policy_name_char) => {
                return Err(ConfigError::BadPrefix(p))
            }
            Some(p) => p,
        };
        let dry_run = parse_bool("DRY_RUN", lookup("DRY_RUN"), defaults.dry_run)?;
        let keep_replaced_version = parse_bool(
            "KEEP_REPLACED_VERSION",
            lookup("KEEP_REPLACED_VERSION"),
            defaults.keep_replaced_version,
        )?;
        let max_concurrency = parse_in_range(
            lookup("MAX_CONCURRENCY"),
            defaults.max_concurrency.get(),
            1..=MAX_MAX_CONCURRENCY,
            ConfigError::BadConcurrency,
        )?;
        let max_concurrency = NonZeroUsize::new(max_concurrency).unwrap_or(NonZeroUsize::MIN);
        let deadline_margin = Duration::from_secs(parse_in_range(
            lookup("DEADLINE_MARGIN_SECONDS"),
            defaults.deadline_margin.as_secs(),
            0..=MAX_DEADLINE_MARGIN_SECONDS,
            ConfigError::BadDeadlineMargin,
        )?);
        let api_calls_per_second = parse_in_range(
            lookup("API_CALLS_PER_SECOND"),
            defaults.api_calls_per_second,
            0..=MAX_API_CALLS_PER_SECOND,
            ConfigError::BadApiRate,
        )?;
        Ok(Self {
            target_policy_prefix,
            dry_run,
            keep_replaced_version,
            max_concurrency,
            deadline_margin,
            api_calls_per_second,
            fanout: fanout_from_lookup(&lookup)?,
            notification_topic_arn: topic_from_lookup(&lookup)?,
            metrics_namespace: namespace_from_lookup(&lookup)?,
            rollback_suppression_days: parse_in_range(
                lookup("ROLLBACK_SUPPRESSION_DAYS"),
                DEFAULT_ROLLBACK_SUPPRESSION_DAYS,
                0..=MAX_ROLLBACK_SUPPRESSION_DAYS,
                ConfigError::BadSuppressionDays,
            )?,
            region: lookup("AWS_REGION").filter(|r| !r.is_empty()),
            log_group: lookup("AWS_LAMBDA_LOG_GROUP_NAME").filter(|g| !g.is_empty()),
            member: member_from_lookup(&lookup)?,
        })
    }

    /// The partition of the function's region, whose ARNs the restrictive document names.
    /// Without a region, `aws`, the one the document is written for and that of every
    /// commercial region: Lambda always sets `AWS_REGION`, so only a local run lacks it.
    pub fn partition(&self) -> Partition {
        self.region
            .as_deref()
            .map_or(Partition::Aws, Partition::of_region)
    }

    /// What becomes of a replaced version once the restrictive default is in place.
    pub fn after_create(&self) -> AfterCreate {
        if self.keep_replaced_version {
            AfterCreate::KeepReplaced
        } else {
            AfterCreate::DeleteReplaced
        }
    }

    /// This process's spacing of calls of `operation` (`None` = unpaced). Without fan-out, the
    /// whole quota. With fan-out, the policy operations are shared: up to `FANOUT_WORKERS`
    /// worker processes call them at once, plus one audit invocation when small audits stay
    /// inline (`FANOUT_INLINE_MAX_FINDINGS` > 0), so each gets `1 / sharers` of the quota and
    /// together they stay at it. The operations only audit and rollback invocations call
    /// (listing findings and suppressions, rollback's writes) keep the whole quota.
    pub fn pace(&self, operation: Operation) -> Option<Duration> {
        let sharers = match &self.fanout {
            Some(f) if operation.called_by_workers() => {
                f.workers + u32::from(f.inline_max_findings > 0)
            }
            _ => 1,
        };
        (self.api_calls_per_second > 0)
            .then(|| Duration::from_secs(u64::from(sharers)) / self.api_calls_per_second)
    }
}

/// Fan-out is on when `FANOUT_QUEUE_URL` is set and not empty (an empty value is how a
/// template switches it off); the other `FANOUT_*` variables are checked either way.
fn fanout_from_lookup(
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<Option<FanoutConfig>, ConfigError> {
    let inline_max_findings = parse_in_range(
        lookup("FANOUT_INLINE_MAX_FINDINGS"),
        0,
        0..=u64::MAX,
        ConfigError::BadInlineMax,
    )?;
    let workers = parse_in_range(
        lookup("FANOUT_WORKERS"),
        DEFAULT_FANOUT_WORKERS,
        FANOUT_WORKERS_RANGE,
        ConfigError::BadWorkers,
    )?;
    let queue_url = match lookup("FANOUT_QUEUE_URL") {
        None => return Ok(None),
        Some(url) if url.trim().is_empty() => return Ok(None),
        Some(url) => url.trim().to_owned(),
    };
    let has_host = queue_url
        .strip_prefix("https://")
        .or_else(|| queue_url.strip_prefix("http://"))
        .is_some_and(|rest| rest.split('/').next().is_some_and(|host| !host.is_empty()));
    if !has_host || queue_url.chars().any(char::is_whitespace) {
        return Err(ConfigError::BadQueueUrl(queue_url));
    }
    Ok(Some(FanoutConfig {
        queue_url,
        inline_max_findings,
        workers,
    }))
}

/// `NOTIFICATION_TOPIC_ARN`: unset or empty = no notifications.
fn topic_from_lookup(
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<Option<String>, ConfigError> {
    let Some(arn) = lookup("NOTIFICATION_TOPIC_ARN").map(|a| a.trim().to_owned()) else {
        return Ok(None);
    };
    if arn.is_empty() {
        return Ok(None);
    }
    let parts: Vec<&str> = arn.split(':').collect();
    let valid = parts.len() == 6
        && parts[0] == "arn"
        && parts[2] == "sns"
        && parts.iter().all(|p| !p.is_empty());
    if valid {
        Ok(Some(arn))
    } else {
        Err(ConfigError::BadTopicArn(arn))
    }
}

/// `MEMBER_ROLE_NAME` and `MEMBER_EXTERNAL_ID`: unset or empty = not set.
fn member_from_lookup(
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<Option<MemberConfig>, ConfigError> {
    let set = |value: Option<String>| value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let of = |extra: &str, c: char| c.is_ascii_alphanumeric() || extra.contains(c);
    let external_id = set(lookup("MEMBER_EXTERNAL_ID"));
    if let Some(id) = &external_id {
        if !(2..=1224).contains(&id.len()) || !id.chars().all(|c| of("+=,.@:/_-", c)) {
            return Err(ConfigError::BadExternalId);
        }
    }
    let Some(role_name) = set(lookup("MEMBER_ROLE_NAME")) else {
        return match external_id {
            Some(_) => Err(ConfigError::ExternalIdWithoutRole),
            None => Ok(None),
        };
    };
    if role_name.len() > 64 || !role_name.chars().all(|c| of("+=,.@_-", c)) {
        return Err(ConfigError::BadMemberRole(role_name));
    }
    Ok(Some(MemberConfig {
        role_name,
        external_id,
    }))
}

fn namespace_from_lookup(lookup: &impl Fn(&str) -> Option<String>) -> Result<String, ConfigError> {
    let Some(namespace) = lookup("METRICS_NAMESPACE") else {
        return Ok(DEFAULT_METRICS_NAMESPACE.to_owned());
    };
    let allowed = |c: char| c.is_ascii_alphanumeric() || ".-_/#:".contains(c);
    if (1..=255).contains(&namespace.len())
        && namespace.chars().all(allowed)
        && !namespace.starts_with(':')
    {
        Ok(namespace)
    } else {
        Err(ConfigError::BadNamespace(namespace))
    }
}

/// Policy names match `[\w+=,.@-]+`.
fn is_policy_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)
}

/// A whole number within `range`, or `default` when the variable is unset.
fn parse_in_range<T: FromStr + PartialOrd>(
    value: Option<String>,
    default: T,
    range: RangeInclusive<T>,
    error: fn(String) -> ConfigError,
) -> Result<T, ConfigError> {
    let Some(value) = value else {
        return Ok(default);
    };
    match value.trim().parse::<T>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(error(value)),
    }
}

fn parse_bool(
    name: &'static str,
    value: Option<String>,
    default: bool,
) -> Result<bool, ConfigError> {
    let Some(value) = value else {
        return Ok(default);
    };
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ConfigError::NotABool { name, value }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn the_member_role_is_read_and_checked() {
        assert_eq!(config(&[]).unwrap().member, None);
        assert_eq!(config(&[("MEMBER_ROLE_NAME", " ")]).unwrap().member, None);
        let member = config(&[
            ("MEMBER_ROLE_NAME", "Remediate+Audit"),
            ("MEMBER_EXTERNAL_ID", "s3cr=t:1/2"),
        ])
        .unwrap()
        .member
        .unwrap();
        assert_eq!(member.role_name, "Remediate+Audit");
        assert_eq!(member.external_id.as_deref(), Some("s3cr=t:1/2"));
        assert!(
            !format!("{member:?}").contains("s3cr"),
            "the external id is never printed"
        );
        for bad in ["has space", "slash/es", &"r".repeat(65)] {
            assert_eq!(
                config(&[("MEMBER_ROLE_NAME", bad)]).unwrap_err(),
                ConfigError::BadMemberRole(bad.to_owned())
            );
        }
        for bad in ["x", "has space", &"e".repeat(1225)] {
            let e = config(&[("MEMBER_ROLE_NAME", "r"), ("MEMBER_EXTERNAL_ID", bad)]).unwrap_err();
            assert_eq!(e, ConfigError::BadExternalId);
            assert!(!e.to_string().contains(bad), "{e}");
        }
        assert_eq!(
            config(&[("MEMBER_EXTERNAL_ID", "secret")]).unwrap_err(),
            ConfigError::ExternalIdWithoutRole
        );
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        let c = config(&[]).unwrap();
        assert_eq!(c.target_policy_prefix, "WS_AUDIT_");
        assert!(!c.dry_run);
        assert!(c.keep_replaced_version, "kept by default, for rollback");
        assert_eq!(c.max_concurrency.get(), DEFAULT_MAX_CONCURRENCY);
        assert_eq!(c.notification_topic_arn, None);
        assert_eq!(c.metrics_namespace, "IotAuditRemediator");
        assert_eq!(c.rollback_suppression_days, 30);
        assert_eq!(c, Config::default());
    }

    #[test]
    fn the_partition_follows_aws_region() {
        for (region, partition) in [
            ("cn-north-1", Partition::AwsCn),
            ("us-gov-west-1", Partition::AwsUsGov),
            ("eu-west-1", Partition::Aws),
        ] {
            assert_eq!(
                config(&[("AWS_REGION", region)]).unwrap().partition(),
                partition
            );
        }
        // Unset or empty: the `aws` partition.
        assert_eq!(config(&[]).unwrap().partition(), Partition::Aws);
        assert_eq!(
            config(&[("AWS_REGION", "")]).unwrap().partition(),
            Partition::Aws
        );
    }

    #[test]
    fn reads_every_variable() {
        let c = config(&[
            ("TARGET_POLICY_PREFIX", "FLEET-"),
            ("DRY_RUN", "TRUE"),
            ("KEEP_REPLACED_VERSION", " false "),
            (
                "NOTIFICATION_TOPIC_ARN",
                "arn:aws-cn:sns:cn-north-1:123456789012:changes",
            ),
            ("METRICS_NAMESPACE", "Security/Iot"),
            ("ROLLBACK_SUPPRESSION_DAYS", "0"),
            ("MAX_CONCURRENCY", "1"),
            ("DEADLINE_MARGIN_SECONDS", "0"),
            ("API_CALLS_PER_SECOND", "0"),
        ])
        .unwrap();
        assert_eq!(c.target_policy_prefix, "FLEET-");
        assert!(c.dry_run);
        assert!(!c.keep_replaced_version);
        assert_eq!(
            c.notification_topic_arn.as_deref(),
            Some("arn:aws-cn:sns:cn-north-1:123456789012:changes")
        );
        assert_eq!(c.metrics_namespace, "Security/Iot");
        assert_eq!(c.rollback_suppression_days, 0);
        assert_eq!(c.after_create(), AfterCreate::DeleteReplaced);
        assert_eq!(Config::default().after_create(), AfterCreate::KeepReplaced);
        assert_eq!(
            config(&[("NOTIFICATION_TOPIC_ARN", "")])
                .unwrap()
                .notification_topic_arn,
            None
        );
        assert_eq!(c.max_concurrency.get(), 1);
        assert_eq!(c.deadline_margin, Duration::ZERO);
        assert_eq!(c.api_calls_per_second, 0);
        assert_eq!(c.pace(Operation::GetPolicy), None);
        assert_eq!(c.fanout, None);
    }

    #[test]
    fn fan_out_is_on_only_with_a_queue_url() {
        const URL: &str = "https://sqs.eu-west-1.amazonaws.com/123456789012/jobs";
        assert_eq!(config(&[("FANOUT_QUEUE_URL", " ")]).unwrap().fanout, None);
        assert_eq!(config(&[("FANOUT_WORKERS", "5")]).unwrap().fanout, None);
        let c = config(&[("FANOUT_QUEUE_URL", URL)]).unwrap();
        assert_eq!(
            c.fanout,
            Some(FanoutConfig {
                queue_url: URL.into(),
                inline_max_findings: 0,
                workers: DEFAULT_FANOUT_WORKERS,
            })
        );
        let c = config(&[
            (
                "FANOUT_QUEUE_URL",
                "http://127.0.0.1:5000/123456789012/jobs",
            ),
            ("FANOUT_INLINE_MAX_FINDINGS", "100"),
            ("FANOUT_WORKERS", "4"),
        ])
        .unwrap();
        let fanout = c.fanout.unwrap();
        assert_eq!((fanout.inline_max_findings, fanout.workers), (100, 4));
    }

    #[test]
    fn the_quota_is_shared_among_fan_out_workers() {
        use Operation::{GetPolicy, ListAuditFindings};
        let mut c = Config::default();
        assert_eq!(c.pace(GetPolicy), Some(Duration::from_millis(100)));
        c.fanout = Some(FanoutConfig {
            queue_url: "https://q".into(),
            inline_max_findings: 0,
            workers: 4,
        });
        // 4 workers at 2.5 calls/s each: 10/s together. Listing is not shared.
        assert_eq!(c.pace(GetPolicy), Some(Duration::from_millis(400)));
        assert_eq!(c.pace(ListAuditFindings), Some(Duration::from_millis(100)));
        for op in [
            Operation::ListAuditSuppressions,
            Operation::SetDefaultPolicyVersion,
            Operation::CreateAuditSuppression,
        ] {
            assert_eq!(c.pace(op), Some(Duration::from_millis(100)), "{op}");
        }
        assert_eq!(
            c.pace(Operation::ListTargetsForPolicy),
            Some(Duration::from_millis(400))
        );
        // Small audits inline: the audit invocation is one more sharer.
        c.fanout.as_mut().unwrap().inline_max_findings = 100;
        assert_eq!(c.pace(GetPolicy), Some(Duration::from_millis(500)));
        c.api_calls_per_second = 3;
        assert_eq!(c.pace(GetPolicy), Some(Duration::from_secs(5) / 3));
        c.api_calls_per_second = 0;
        assert_eq!(c.pace(GetPolicy), None);
        assert_eq!(c.pace(ListAuditFindings), None);
    }

    #[test]
    fn refuses_bad_values_naming_the_variable() {
        assert_eq!(
            config(&[("TARGET_POLICY_PREFIX", "")]),
            Err(ConfigError::EmptyPrefix)
        );
        assert_eq!(
            config(&[("TARGET_POLICY_PREFIX", "WS_*")]),
            Err(ConfigError::BadPrefix("WS_*".into()))
        );
        let err = config(&[("DRY_RUN", "maybe")]).unwrap_err();
        assert!(err.to_string().contains("DRY_RUN"), "{err}");
        let err = config(&[("KEEP_REPLACED_VERSION", "")]).unwrap_err();
        assert!(err.to_string().contains("KEEP_REPLACED_VERSION"), "{err}");
        for bad in ["0", "-1", "abc", "", "65"] {
            let err = config(&[("MAX_CONCURRENCY", bad)]).unwrap_err();
            assert!(err.to_string().contains("MAX_CONCURRENCY"), "{bad}: {err}");
        }
        for bad in ["-1", "10001", "x"] {
            let err = config(&[("API_CALLS_PER_SECOND", bad)]).unwrap_err();
            assert!(
                err.to_string().contains("API_CALLS_PER_SECOND"),
                "{bad}: {err}"
            );
        }
        for bad in ["-1", "601", "1.5", ""] {
            let err = config(&[("DEADLINE_MARGIN_SECONDS", bad)]).unwrap_err();
            assert!(
                err.to_string().contains("DEADLINE_MARGIN_SECONDS"),
                "{bad}: {err}"
            );
        }
        for (name, bad) in [
            ("FANOUT_QUEUE_URL", "sqs/queue"),
            ("FANOUT_QUEUE_URL", "https:///x"),
            ("FANOUT_INLINE_MAX_FINDINGS", "-1"),
            ("FANOUT_WORKERS", "1"),
            ("FANOUT_WORKERS", "1001"),
            ("NOTIFICATION_TOPIC_ARN", "changes"),
            (
                "NOTIFICATION_TOPIC_ARN",
                "arn:aws:sqs:us-east-1:123456789012:q",
            ),
            ("NOTIFICATION_TOPIC_ARN", "arn:aws:sns:us-east-1::t"),
            ("METRICS_NAMESPACE", ""),
            ("METRICS_NAMESPACE", "a b"),
            ("METRICS_NAMESPACE", ":x"),
            ("ROLLBACK_SUPPRESSION_DAYS", "-1"),
            ("ROLLBACK_SUPPRESSION_DAYS", "3651"),
        ] {
            let err = config(&[(name, bad)]).unwrap_err();
            assert!(err.to_string().contains(name), "{bad}: {err}");
        }
        assert_eq!(
            config(&[("MAX_CONCURRENCY", "64")])
                .unwrap()
                .max_concurrency
                .get(),
            64
        );
    }
}
