//! Two accounts in one SNS event (SPEC §11): the function's own account and a member account,
//! N in-scope findings each, against the local endpoint with every operation capped at `cap`
//! calls per second in each account and region (the emulator's buckets are per account,
//! region and operation, as IoT's quotas are). The audits run side by side, each at its own
//! quota, so the wall time should be one account's limit, not the sum of both. A benchmark, not
//! a test: it prints figures, and checks only what must hold at any speed (every policy
//! remediated exactly once, in its own account; nothing failed or throttled away).
//!
//! `cargo bench --bench accounts` runs the case (2 × 500 findings at 10 calls/s);
//! `cargo bench --bench accounts -- N CAP [LATENCY_MS]` runs one case.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_iot::Client;
use common::*;
use futures::StreamExt;
use iot_audit_remediator::config::{Config, MemberConfig};
use iot_audit_remediator::engine::Cutoff;
use iot_audit_remediator::entry::sns::handle_event;
use serde_json::{json, Value};

const MEMBER: &str = "111111111111";
const REGION: &str = "us-east-1";
const LATENCY_MS: u64 = 25;

/// The two audits: account, task, the prefix of its policies (distinct, so that a call in the
/// wrong account finds no policy and shows in the log).
const AUDITS: [(&str, &str, &str); 2] = [
    (DEFAULT_ACCOUNT, "t-own", "WS_AUDIT_O"),
    (MEMBER, "t-member", "WS_AUDIT_M"),
];

struct Case {
    n: usize,
    cap: u32,
    latency_ms: u64,
}

fn policy_names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:05}")).collect()
}

/// Fresh state; in each account, `n` permissive policies and a finding of its audit for each.
/// Returns a client of each account, in the order of [`AUDITS`].
async fn seed(emu: &Emulator, n: usize) -> Vec<Client> {
    emu.control("POST", "/_emulator/reset", None);
    let mut clients = Vec::new();
    for (account, _, _) in AUDITS {
        clients.push(emu.member_client(account, REGION).await);
    }
    let creating = AUDITS.iter().zip(&clients).map(|((_, _, prefix), iot)| {
        futures::stream::iter(policy_names(prefix, n))
            .for_each_concurrent(16, move |name| async move {
                create_policy(iot, &name, PERMISSIVE).await
            })
    });
    futures::future::join_all(creating).await;
    for (account, task, prefix) in AUDITS {
        emu.generate_findings_in(account, REGION, task, prefix, n);
    }
    emu.clear_requests();
    clients
}

/// The configuration of the deployment: defaults, paced at `cap`, with a member role.
fn config(cap: u32) -> Config {
    Config {
        api_calls_per_second: cap,
        member: Some(MemberConfig {
            role_name: "Remediator".into(),
            external_id: None,
        }),
        ..Config::default()
    }
}

/// What the request log says about one account.
#[derive(Default)]
struct Account {
    calls: BTreeMap<String, u64>,
    /// Successful `CreatePolicyVersion`s per policy.
    creates: BTreeMap<String, usize>,
    throttled: u64,
    /// First request's start and last request's end, in the emulator's clock.
    span: Option<(f64, f64)>,
}

fn per_account(log: &Value) -> BTreeMap<String, Account> {
    let mut accounts: BTreeMap<String, Account> = BTreeMap::new();
    for r in log["requests"].as_array().unwrap() {
        let a = accounts
            .entry(r["account"].as_str().unwrap().to_owned())
            .or_default();
        *a.calls
            .entry(r["operation"].as_str().unwrap().to_owned())
            .or_default() += 1;
        if matches!(r["fault"].as_str(), Some("throttle" | "rate_limited")) {
            a.throttled += 1;
        }
        if r["operation"] == "CreatePolicyVersion" && r["status"] == 200 {
            *a.creates
                .entry(r["policyName"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
        let (start, end) = (r["start"].as_f64().unwrap(), r["end"].as_f64().unwrap());
        a.span = Some(
            a.span
                .map_or((start, end), |(s, e)| (s.min(start), e.max(end))),
        );
    }
    accounts
}

/// Every policy of each account got exactly one restrictive version, in that account, and
/// ends as SPEC §5 says (restrictive default, the permissive one kept); no policy name was
/// called in the other account.
async fn assert_each_in_its_own_account(
    log: &Value,
    accounts: &BTreeMap<String, Account>,
    clients: &[Client],
    n: usize,
) {
    for ((account, _, prefix), iot) in AUDITS.iter().zip(clients) {
        let creates = &accounts[*account].creates;
        let names = policy_names(prefix, n);
        let wrong: Vec<_> = names
            .iter()
            .filter(|p| creates.get(*p) != Some(&1))
            .collect();
        assert!(
            wrong.is_empty(),
            "{account}: not created exactly once: {wrong:?}"
        );
        assert_eq!(creates.len(), n, "{account}: created something else too");
        futures::stream::iter(&names)
            .for_each_concurrent(16, |name| assert_remediated(iot, name, true))
            .await;
    }
    for r in log["requests"].as_array().unwrap() {
        let Some(policy) = r["policyName"].as_str() else {
            continue;
        };
        let owner = AUDITS.iter().find(|a| policy.starts_with(a.2)).unwrap().0;
        assert_eq!(r["account"], owner, "a call in the wrong account: {r}");
    }
}

async fn run(emu: &Emulator, case: &Case) {
    let clients = seed(emu, case.n).await;
    let app = emu.org_app(config(case.cap), HOME_FUNCTION).await;
    let records: Vec<Value> = AUDITS
        .iter()
        .map(|(account, task, _)| audit_record(account, REGION, task, case.n))
        .collect();
    let event = json!({ "Records": records });
    emu.faults(json!({"default": {"latency_ms": case.latency_ms, "rate_per_sec": case.cap}}));
    let started = Instant::now();
    let result = handle_event(&app, &event, Cutoff::NONE).await;
    let wall = started.elapsed();
    let log = emu.control("GET", "/_emulator/requests", None);
    emu.faults(json!({}));

    // What must hold whatever the speed.
    let report = result.unwrap_or_else(|e| panic!("the invocation failed: {e:?}"));
    assert_eq!(report.totals.remediated, 2 * case.n, "{:?}", report.totals);
    let accounts = per_account(&log);
    assert_each_in_its_own_account(&log, &accounts, &clients, case.n).await;
    print(case, wall, &accounts);
}

fn print(case: &Case, wall: Duration, accounts: &BTreeMap<String, Account>) {
    // One account's limit: its busiest operation's calls at the cap.
    let busiest = accounts
        .values()
        .flat_map(|a| a.calls.values())
        .max()
        .copied()
        .unwrap_or(0);
    let limit = busiest as f64 / f64::from(case.cap);
    let origin = accounts
        .values()
        .filter_map(|a| a.span)
        .map(|(s, _)| s)
        .fold(f64::INFINITY, f64::min);
    let throttled: u64 = accounts.values().map(|a| a.throttled).sum();
    println!(
        "2 accounts x N={} cap={}/s per operation and account latency={}ms | wall {:.1}s  limit {:.1}s  wall/limit {:.3} | throttled {}",
        case.n,
        case.cap,
        case.latency_ms,
        wall.as_secs_f64(),
        limit,
        wall.as_secs_f64() / limit,
        throttled,
    );
    for (account, a) in accounts {
        let (start, end) = a.span.unwrap_or_default();
        let calls: Vec<String> = a.calls.iter().map(|(op, n)| format!("{op}={n}")).collect();
        println!(
            "  account {account}: calls from {:.1}s to {:.1}s | throttled {} | {}",
            start - origin,
            end - origin,
            a.throttled,
            calls.join(" "),
        );
    }
}

#[tokio::main]
async fn main() {
    let args = bench_args();
    let case = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [n, cap, rest @ ..] => Case {
            n: n.parse().unwrap(),
            cap: cap.parse().unwrap(),
            latency_ms: rest.first().map_or(LATENCY_MS, |l| l.parse().unwrap()),
        },
        // The case: 500 findings in each account, at the default quota.
        [] => Case {
            n: 500,
            cap: 10,
            latency_ms: LATENCY_MS,
        },
        other => panic!("usage: [N CAP [LATENCY_MS]], not {other:?}"),
    };
    let emu = Emulator::start();
    run(&emu, &case).await;
}
