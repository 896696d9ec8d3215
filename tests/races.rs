//! Races that end clean (SPEC §5): two deliveries of one event at the same moment, at IoT's
//! version limit. Its own test binary, so that its two heavy runs do not share the machine with
//! the timing-sensitive fault tests of `reliability.rs`.

mod common;

use std::collections::HashMap;
use std::time::Instant;

use common::*;
use iot_audit_remediator::config::Config;
use iot_audit_remediator::engine::Cutoff;
use iot_audit_remediator::entry::sns::handle_event;
use serde_json::json;

/// Two deliveries of one event at the same moment (SPEC §5, the race loser), on policies one
/// version short of IoT's limit of 5: the second of the two creates meets the limit, after the
/// other run put the restrictive document in force. Both invocations succeed, every finding is
/// `remediated` by one run and `remediated` or `already_remediated` by the other, and each
/// policy ends with one restrictive version, the default.
async fn concurrent_deliveries_at_the_version_limit(config: Config) {
    const POLICIES: usize = 100;
    let emu = Emulator::start();
    let iot = emu.client();
    let names = seed_in_scope(&emu, "WS_AUDIT_R", POLICIES).await;
    for name in &names {
        for i in 0..3 {
            let older = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Action": "iot:Connect", "Resource": format!("arn:aws:iot:*:*:client/old-{i}")}]});
            iot.create_policy_version()
                .policy_name(name)
                .policy_document(older.to_string())
                .set_as_default(false)
                .send()
                .await
                .unwrap();
        }
    }
    // Latency widens the window in which both runs work on the same policy.
    emu.faults(json!({"default": {"latency_ms": 5}}));
    let event = load_event("audit-non-compliant.json");
    let (a, b) = (emu.app(config.clone()), emu.app(config.clone()));
    emu.clear_requests();
    let started = Instant::now();
    let (ra, rb) = tokio::join!(
        handle_event(&a, &event, Cutoff::NONE),
        handle_event(&b, &event, Cutoff::NONE)
    );
    eprintln!(
        "two deliveries of {POLICIES} policies: {:?}",
        started.elapsed()
    );
    let outcomes: Vec<HashMap<String, String>> = [&ra, &rb]
        .into_iter()
        .map(|r| {
            let report = match r {
                Ok(report) => report,
                Err(e) => &e.report,
            };
            finding_outcomes(&serde_json::to_value(report).unwrap())
        })
        .collect();
    for (run, outcomes) in outcomes.iter().enumerate() {
        let failed = outcomes.values().filter(|o| *o == "failed").count();
        eprintln!("run {run}: {failed} of {POLICIES} failed");
    }
    let limits = emu
        .requests()
        .iter()
        .filter(|r| r["operation"] == "CreatePolicyVersion" && r["status"] == 409)
        .count();
    eprintln!("creates that met the version limit: {limits}");
    assert!(limits > 0, "the runs never raced at the limit");
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.totals.failed + rb.totals.failed, 0);
    emu.faults(json!({}));
    for name in &names {
        let pair = [&outcomes[0][name], &outcomes[1][name]];
        assert!(
            pair.iter()
                .all(|o| *o == "remediated" || *o == "already_remediated"),
            "{name}: {pair:?}"
        );
        assert!(pair.iter().any(|o| *o == "remediated"), "{name}: {pair:?}");
        assert_remediated(&iot, name, config.keep_replaced_version).await;
    }
}

/// Each finding's outcome by policy name, a skip named by its reason.
fn finding_outcomes(report: &serde_json::Value) -> HashMap<String, String> {
    report["records"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let outcome = match f["outcome"].as_str().unwrap() {
                "skipped" => f["reason"].as_str().unwrap(),
                other => other,
            };
            (
                f["policyName"].as_str().unwrap().to_owned(),
                outcome.to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_deliveries_at_the_version_limit_both_succeed_keeping_the_replaced_version() {
    concurrent_deliveries_at_the_version_limit(test_config()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_deliveries_at_the_version_limit_both_succeed_deleting_the_replaced_version() {
    concurrent_deliveries_at_the_version_limit(deleting_config()).await;
}
