//! Reliability against the local IoT endpoint: the Lambda deadline, stalled calls, faults at
//! scale with Lambda's retries. Nothing lost, no policy without a default, nothing outside the
//! prefix written, no restrictive version created twice.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use iot_audit_remediator::config::Config;
use iot_audit_remediator::engine::Cutoff;
use iot_audit_remediator::entry::sns::handle_event;
use serde_json::json;

/// Every policy is either fully remediated or untouched: never half done, never without default.
async fn assert_remediated_or_untouched(emu: &Emulator, names: &[String]) -> (usize, usize) {
    let iot = emu.client();
    let (mut done, mut untouched) = (0, 0);
    for name in names {
        let versions = versions(&iot, name).await;
        if versions.len() == 1 && versions[0].2 == permissive() {
            untouched += 1;
        } else {
            assert_remediated(&iot, name, false).await;
            done += 1;
        }
    }
    (done, untouched)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_the_deadline_the_rest_is_deferred_and_a_retry_finishes() {
    let emu = Emulator::start();
    let names = seed_in_scope(&emu, "WS_AUDIT_D", 30).await;
    emu.faults(json!({"default": {"latency_ms": 60}}));
    let config = Config {
        max_concurrency: 2.try_into().unwrap(),
        ..deleting_config()
    };
    let event = load_event("audit-non-compliant.json");
    let cutoff = Cutoff::at(Instant::now() + Duration::from_millis(700));
    let err = handle_event(&emu.app(config.clone()), &event, cutoff)
        .await
        .expect_err("work was left: the invocation must fail so Lambda retries");
    assert!(err.deferred > 0, "{err}");
    assert!(err.remediated > 0, "{err}");
    assert_eq!(err.failed, 0);
    assert_eq!(err.deferred + err.remediated, 30, "{err}");
    let findings = &serde_json::to_value(&err.report).unwrap()["records"][0]["findings"];
    let deferred = findings
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["outcome"] == "deferred")
        .count();
    assert_eq!(deferred, err.deferred);

    emu.faults(json!({}));
    let (done, untouched) = assert_remediated_or_untouched(&emu, &names).await;
    assert_eq!((done, untouched), (err.remediated, err.deferred));

    // Lambda's retry of the same event, with time enough.
    let report = handle_event(&emu.app(config), &event, Cutoff::NONE)
        .await
        .unwrap();
    assert_eq!(report.totals.remediated, err.deferred);
    assert_eq!(assert_remediated_or_untouched(&emu, &names).await, (30, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_call_fails_its_policy_instead_of_hanging_the_invocation() {
    let emu = Emulator::start();
    let names = seed_in_scope(&emu, "WS_AUDIT_S", 3).await;
    emu.faults(json!({"operations": {"CreatePolicyVersion":
        {"stall_rate": 1.0, "stall_ms": 5000, "stall_action": "drop"}}}));
    let client = emu.client_with_timeouts(Duration::from_millis(200), Duration::from_secs(1));
    let event = load_event("audit-non-compliant.json");
    let started = Instant::now();
    let err = handle_event(&app(client, deleting_config()), &event, Cutoff::NONE)
        .await
        .expect_err("stalled policies are failures");
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(4),
        "took {elapsed:?}: the stall was not cut short"
    );
    assert_eq!(err.failed, 3);
    let findings = &serde_json::to_value(&err.report).unwrap()["records"][0]["findings"];
    for f in findings.as_array().unwrap() {
        assert!(
            f["error"]
                .as_str()
                .unwrap()
                .starts_with("CreatePolicyVersion"),
            "{f}"
        );
    }
    assert_eq!(assert_remediated_or_untouched(&emu, &names).await, (0, 3));

    emu.faults(json!({}));
    let report = handle_event(&emu.app(deleting_config()), &event, Cutoff::NONE)
        .await
        .unwrap();
    assert_eq!(report.totals.remediated, 3);
    assert_eq!(assert_remediated_or_untouched(&emu, &names).await, (3, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_at_scale_lose_nothing_within_three_invocations() {
    const IN_SCOPE: usize = 2000;
    let emu = Emulator::start();
    let names = seed_in_scope(&emu, "WS_AUDIT_Z", IN_SCOPE).await;
    let outsiders = seed_in_scope(&emu, "Fleet_Z", 20).await;
    emu.clear_requests();
    emu.faults(json!({"seed": 2026, "default": {
        "throttle_rate": 0.2, "error_rate": 0.05,
        "stall_rate": 0.01, "stall_ms": 1500, "stall_action": "drop"}}));
    // The attempt timeout is well under the stalls (1.5 s) but far above a loaded machine's
    // answer time: at 300 ms, a create that moto answered late on a busy machine was retried
    // and applied twice. The function tidies such a duplicate, but this test counts creates to
    // show that the faults it injects add none.
    let client = emu.client_with_timeouts(Duration::from_millis(1000), Duration::from_secs(8));
    let app = app(client, deleting_config());
    let event = load_event("audit-non-compliant.json");
    let mut invocations = 0;
    loop {
        invocations += 1;
        match handle_event(&app, &event, Cutoff::NONE).await {
            Ok(_) => break,
            Err(e) if invocations < 3 => {
                eprintln!("invocation {invocations}: {e}");
                for f in serde_json::to_value(&e.report).unwrap()["records"][0]["findings"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|f| f["outcome"] == "failed")
                {
                    eprintln!("  {f}");
                }
            }
            Err(e) => panic!("still incomplete after 3 invocations: {e}"),
        }
    }
    let log = emu.control("GET", "/_emulator/requests", None);
    emu.faults(json!({}));
    let faults = &log["faults"];
    eprintln!("{invocations} invocations, faults injected: {faults}");
    assert!(faults["throttle"].as_u64().unwrap() > 500, "{faults}");
    assert!(faults["error"].as_u64().unwrap() > 100, "{faults}");
    assert!(faults["stall"].as_u64().unwrap() > 10, "{faults}");

    let requests = log["requests"].as_array().unwrap();
    let mut created: HashMap<&str, usize> = HashMap::new();
    for r in requests {
        let policy = r["policyName"].as_str().unwrap_or("");
        let write = matches!(
            r["operation"].as_str(),
            Some("CreatePolicyVersion" | "DeletePolicyVersion" | "SetDefaultPolicyVersion")
        );
        assert!(
            !(write && policy.starts_with("Fleet_")),
            "out-of-scope write: {r}"
        );
        if r["operation"] == "CreatePolicyVersion" && r["status"] == 200 {
            *created.entry(policy).or_default() += 1;
        }
    }
    assert_eq!(created.len(), IN_SCOPE);
    assert!(
        created.values().all(|n| *n == 1),
        "a restrictive version created twice"
    );

    // The end state, read back from IoT: one version each, the restrictive default.
    let iot = emu.client();
    for name in &names {
        assert_eq!(default_document(&iot, name).await, restrictive(), "{name}");
        let versions = iot
            .list_policy_versions()
            .policy_name(name)
            .send()
            .await
            .unwrap();
        assert_eq!(versions.policy_versions().len(), 1, "{name}");
    }
    for name in &outsiders {
        assert_eq!(default_document(&iot, name).await, permissive(), "{name}");
    }
}
