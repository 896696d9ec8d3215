//! The invocation's CloudWatch Embedded Metric Format object (SPEC §8): one raw JSON object on
//! its own stdout line, from which CloudWatch Logs extracts the metrics. No `PutMetricData`
//! call, so no extra permission, no latency and no failure mode of its own.
//!
//! Written with `serde_json` rather than an EMF crate: the object is fixed (one namespace, one
//! dimension, twelve counts known at the end of the invocation, from the report's totals). The
//! crates record metrics as the code runs: `metrique` through a unit-of-work sink, 42 more
//! crates; `metrics_cloudwatch_embedded` through the process-wide `metrics` recorder, 3 more
//! crates but one object per label set ever seen by the execution environment, and zero counts
//! dropped unless told otherwise. Pure: the caller supplies the clock and prints the line.

use serde_json::{json, Map, Value};

use super::Totals;

/// The invocation's dimension, so that audit, job and rollback invocations chart and alarm apart.
pub const DIMENSION: &str = "Mode";

/// The dimension of the per-account objects (SPEC §11): a dimension, not a metric name per
/// account, so that the same metric names, dashboards and alarms serve every account, and
/// adding an account adds no metric to the template.
pub const ACCOUNT_DIMENSION: &str = "Account";

/// The metrics that belong to the invocation, not to one account: they are left out of the
/// per-account objects, which carry the finding outcomes.
pub const INVOCATION_ONLY: [&str; 3] = ["RejectedRecords", "NotificationErrors", "Throttled"];

/// Every metric's unit: each one counts things.
pub const UNIT: &str = "Count";

/// The metric names, in the order they are declared in the object.
pub const METRIC_NAMES: [&str; 12] = [
    "Findings",
    "Remediated",
    "WouldRemediate",
    "Skipped",
    "Failed",
    "Deferred",
    "Enqueued",
    "RolledBack",
    "RejectedRecords",
    "ListingErrors",
    "NotificationErrors",
    "Throttled",
];

/// What kind of invocation the counts are from: the value of the `Mode` dimension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// An SNS invocation with audit records (remediating in place, or fanning out).
    Audit,
    /// An SQS invocation with a batch of fan-out jobs.
    Jobs,
    /// A rollback event (SPEC §9).
    Rollback,
}

impl Mode {
    /// The dimension value, as SPEC §8 spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Audit => "audit",
            Mode::Jobs => "jobs",
            Mode::Rollback => "rollback",
        }
    }
}

/// One invocation's counts, one field per metric. Every one is emitted even when 0, so that a
/// quiet invocation is a data point of 0 rather than a gap that alarms read as missing data.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub findings: u64,
    pub remediated: u64,
    pub would_remediate: u64,
    pub skipped: u64,
    pub failed: u64,
    pub deferred: u64,
    pub enqueued: u64,
    pub rolled_back: u64,
    /// Audit records or job bodies rejected as bad input (SPEC §6).
    pub rejected_records: u64,
    pub listing_errors: u64,
    /// Notifications that could not be published (SPEC §8).
    pub notification_errors: u64,
    /// IoT call attempts answered with throttling (`aws::Throttles`).
    pub throttled: u64,
}

impl Counts {
    /// The finding counts; rejected records, notification errors and throttles are not
    /// finding outcomes, so the caller sets them.
    ///
    /// A dry-run rollback (`would_roll_back`) is in `Findings` only: SPEC §8 has no metric for
    /// it, and `RolledBack` must count only policies that were changed, so that a dry run never
    /// looks like a rollback on a dashboard; the report and the log name each one.
    pub fn from_totals(totals: &Totals) -> Self {
        Self {
            findings: count(totals.findings),
            remediated: count(totals.remediated),
            would_remediate: count(totals.would_remediate),
            skipped: count(totals.skipped),
            failed: count(totals.failed),
            deferred: count(totals.deferred),
            enqueued: count(totals.enqueued),
            rolled_back: count(totals.rolled_back),
            listing_errors: count(totals.listing_errors),
            ..Self::default()
        }
    }

    /// Each metric's name and value, in [`METRIC_NAMES`] order.
    pub fn values(&self) -> [(&'static str, u64); 12] {
        let values = [
            self.findings,
            self.remediated,
            self.would_remediate,
            self.skipped,
            self.failed,
            self.deferred,
            self.enqueued,
            self.rolled_back,
            self.rejected_records,
            self.listing_errors,
            self.notification_errors,
            self.throttled,
        ];
        std::array::from_fn(|i| (METRIC_NAMES[i], values[i]))
    }
}

/// `usize` counts fit in `u64` on every target Lambda runs; saturate rather than wrap anyway.
fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// The invocation's EMF object: `_aws` declares the namespace, the one dimension set
/// `[["Mode"]]` and every metric with unit `Count`; the dimension and each metric are
/// top-level members beside it.
pub fn emf(namespace: &str, mode: Mode, counts: &Counts, timestamp_ms: u64) -> Value {
    let dimensions = [(DIMENSION, mode.as_str())];
    object(namespace, &dimensions, &counts.values(), timestamp_ms)
}

/// The EMF object of one account's findings in the invocation: dimension set
/// `[["Mode", "Account"]]` and the metrics that are not [`INVOCATION_ONLY`]. A separate object rather
/// than a second dimension set on the invocation's: the invocation can span several
/// accounts, and each account's counts are its own.
pub fn account_emf(
    namespace: &str,
    mode: Mode,
    account: &str,
    counts: &Counts,
    timestamp_ms: u64,
) -> Value {
    let dimensions = [(DIMENSION, mode.as_str()), (ACCOUNT_DIMENSION, account)];
    let values: Vec<(&str, u64)> = counts
        .values()
        .into_iter()
        .filter(|(name, _)| !INVOCATION_ONLY.contains(name))
        .collect();
    object(namespace, &dimensions, &values, timestamp_ms)
}

fn object(
    namespace: &str,
    dimensions: &[(&str, &str)],
    values: &[(&str, u64)],
    timestamp_ms: u64,
) -> Value {
    let declared: Vec<Value> = values
        .iter()
        .map(|(name, _)| json!({"Name": name, "Unit": UNIT}))
        .collect();
    let names: Vec<&str> = dimensions.iter().map(|(name, _)| *name).collect();
    let mut object = Map::new();
    object.insert(
        "_aws".to_owned(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [names],
                "Metrics": declared,
            }],
        }),
    );
    for (name, value) in dimensions {
        object.insert((*name).to_owned(), Value::from(*value));
    }
    for (name, value) in values {
        object.insert((*name).to_owned(), Value::from(*value));
    }
    Value::Object(object)
}

/// An EMF object as the line to print: compact JSON, so no newline inside (one log event for
/// CloudWatch Logs, which reads EMF only from a whole event); the caller adds the newline.
pub fn emf_line(namespace: &str, mode: Mode, counts: &Counts, timestamp_ms: u64) -> String {
    emf(namespace, mode, counts, timestamp_ms).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SkipReason;
    use crate::report::Outcome;

    const NS: &str = "IotAuditRemediator";
    const TS: u64 = 1_764_000_000_123;

    fn sample() -> Counts {
        Counts {
            findings: 12,
            remediated: 1,
            would_remediate: 2,
            skipped: 3,
            failed: 4,
            deferred: 5,
            enqueued: 6,
            rolled_back: 7,
            rejected_records: 8,
            listing_errors: 9,
            notification_errors: 10,
            throttled: 11,
        }
    }

    fn directive(v: &Value) -> &Map<String, Value> {
        let list = v["_aws"]["CloudWatchMetrics"].as_array().unwrap();
        assert_eq!(list.len(), 1, "one metric directive");
        list[0].as_object().unwrap()
    }

    fn declared_names(v: &Value) -> Vec<&str> {
        directive(v)["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn the_aws_member_has_an_integer_millisecond_timestamp_and_one_directive() {
        let v = emf(NS, Mode::Audit, &sample(), TS);
        let aws = v["_aws"].as_object().unwrap();
        assert_eq!(aws.len(), 2, "{aws:?}");
        assert!(
            aws["Timestamp"].is_u64(),
            "an integer, not a float or string"
        );
        assert_eq!(aws["Timestamp"].as_u64(), Some(TS));
        assert_eq!(directive(&v)["Namespace"], NS);
    }

    #[test]
    fn all_twelve_metrics_are_declared_with_unit_count_and_present_as_numbers() {
        let v = emf(NS, Mode::Jobs, &sample(), TS);
        let declared = declared_names(&v);
        assert_eq!(declared, METRIC_NAMES);
        for m in directive(&v)["Metrics"].as_array().unwrap() {
            assert_eq!(m["Unit"], "Count", "{m}");
            assert_eq!(m.as_object().unwrap().len(), 2, "Name and Unit only: {m}");
        }
        for name in &declared {
            assert!(v[*name].is_u64(), "{name} is a top-level number: {v}");
        }
        let top: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(
            top.len(),
            1 + 1 + 12,
            "_aws, Mode and the metrics only: {top:?}"
        );
    }

    #[test]
    fn zero_counts_are_still_emitted() {
        let v = emf(NS, Mode::Audit, &Counts::default(), TS);
        assert_eq!(declared_names(&v), METRIC_NAMES);
        for name in METRIC_NAMES {
            assert_eq!(v[name].as_u64(), Some(0), "{name}");
        }
    }

    #[test]
    fn one_dimension_set_naming_mode_whose_value_is_a_top_level_string() {
        for (mode, value) in [
            (Mode::Audit, "audit"),
            (Mode::Jobs, "jobs"),
            (Mode::Rollback, "rollback"),
        ] {
            let v = emf(NS, mode, &sample(), TS);
            let sets = directive(&v)["Dimensions"].as_array().unwrap();
            assert_eq!(sets.len(), 1, "one dimension set");
            assert_eq!(sets[0], json!(["Mode"]));
            for name in sets[0].as_array().unwrap() {
                let name = name.as_str().unwrap();
                assert_eq!(v[name].as_str(), Some(value), "{name}");
                assert!(!METRIC_NAMES.contains(&name), "a dimension is not a metric");
            }
        }
    }

    #[test]
    fn an_account_object_has_the_finding_metrics_under_mode_and_account() {
        let v = account_emf(NS, Mode::Jobs, "111111111111", &sample(), TS);
        let finding_metrics = [
            "Findings",
            "Remediated",
            "WouldRemediate",
            "Skipped",
            "Failed",
            "Deferred",
            "Enqueued",
            "RolledBack",
            "ListingErrors",
        ];
        assert_eq!(declared_names(&v), finding_metrics);
        assert_eq!(directive(&v)["Dimensions"], json!([["Mode", "Account"]]));
        assert_eq!(
            (v["Mode"].as_str(), v["Account"].as_str()),
            (Some("jobs"), Some("111111111111"))
        );
        let expected = [12, 1, 2, 3, 4, 5, 6, 7, 9];
        for (name, n) in finding_metrics.iter().zip(expected) {
            assert_eq!(v[*name].as_u64(), Some(n), "{name}");
        }
        for invocation_only in ["RejectedRecords", "NotificationErrors", "Throttled"] {
            assert!(v.get(invocation_only).is_none(), "{invocation_only}: {v}");
        }
        assert_eq!(v.as_object().unwrap().len(), 1 + 2 + 9, "{v}");
    }

    #[test]
    fn values_are_the_counts_given_each_under_its_own_name() {
        let v = emf(NS, Mode::Rollback, &sample(), TS);
        let expected = [12, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
        for (name, n) in METRIC_NAMES.iter().zip(expected) {
            assert_eq!(v[*name].as_u64(), Some(n), "{name}");
        }
    }

    #[test]
    fn the_line_is_one_line_of_the_same_object_even_with_a_newline_in_the_namespace() {
        let line = emf_line("a\nb", Mode::Audit, &sample(), TS);
        assert!(!line.contains('\n') && !line.contains('\r'), "{line}");
        let parsed: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed, emf("a\nb", Mode::Audit, &sample(), TS));
        assert_eq!(directive(&parsed)["Namespace"], "a\nb");
    }

    #[test]
    fn counts_come_from_the_totals_they_were_made_of() {
        let mut totals = Totals::default();
        let outcomes = [
            Outcome::Remediated,
            Outcome::Remediated,
            Outcome::WouldRemediate,
            Outcome::Skipped {
                reason: SkipReason::StaleFinding,
            },
            Outcome::Failed { error: "x".into() },
            Outcome::Deferred,
            Outcome::Enqueued,
            Outcome::Enqueued,
            Outcome::Enqueued,
            Outcome::RolledBack,
            Outcome::WouldRollBack,
        ];
        for outcome in &outcomes {
            totals.count(outcome);
        }
        totals.listing_errors = 2;
        let counts = Counts::from_totals(&totals);
        assert_eq!(
            counts,
            Counts {
                findings: 11,
                remediated: 2,
                would_remediate: 1,
                skipped: 1,
                failed: 1,
                deferred: 1,
                enqueued: 3,
                rolled_back: 1,
                listing_errors: 2,
                ..Counts::default()
            },
            "a dry-run rollback is a finding, not a rollback"
        );
        let v = emf(NS, Mode::Audit, &counts, TS);
        assert_eq!(v["Findings"], totals.findings as u64);
        assert_eq!(v["Remediated"], totals.remediated as u64);
        assert_eq!(v["Enqueued"], totals.enqueued as u64);
        assert_eq!(v["RolledBack"], totals.rolled_back as u64);
        assert_eq!(v["ListingErrors"], totals.listing_errors as u64);
        assert_eq!(v["Throttled"], 0);
    }
}
