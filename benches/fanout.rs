//! Fan-out throughput: an audit of N in-scope findings enqueued by the SNS invocation and
//! worked off by several SQS workers at once, against the local endpoint with a per-operation
//! rate cap standing in for the account's IoT quota. A benchmark, not a test: it prints figures,
//! and checks only what must hold at any speed (every policy remediated exactly once, no job
//! lost, nothing throttled away).
//!
//! `cargo bench --bench fanout` runs the standard case (10,000 findings at 10 calls/s);
//! `cargo bench --bench fanout -- N CAP WORKERS BATCH [LATENCY_MS]` runs one case.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use iot_audit_remediator::engine::Cutoff;
use iot_audit_remediator::entry::{handle, Response};
use serde_json::{json, Value};

/// IoT operations capped like the account's quota; SQS calls (`Other` in the emulator's log)
/// are not capped: SQS's own quotas are far above this traffic.
const IOT_OPERATIONS: &[&str] = &[
    "ListAuditFindings",
    "ListAuditSuppressions",
    "DescribeAuditFinding",
    "ListTargetsForPolicy",
    "GetPolicy",
    "GetPolicyVersion",
    "ListPolicyVersions",
    "CreatePolicyVersion",
    "DeletePolicyVersion",
];
/// The mapping's batching window when the batch size is above 10 (as `template.yaml` sets it).
const WINDOW: Duration = Duration::from_secs(1);

struct Case {
    n: usize,
    cap: u32,
    workers: u32,
    batch: usize,
    latency_ms: u64,
}

fn policy_name(i: usize) -> String {
    format!("WS_AUDIT_Q{i:05}")
}

/// Every policy as SPEC §5 wants it: one version, the restrictive document, the default.
async fn assert_end_state(emu: &Emulator, n: usize) {
    let iot = emu.client();
    let restrictive = restrictive();
    futures::stream::iter(0..n)
        .for_each_concurrent(16, |i| {
            let (iot, restrictive) = (&iot, &restrictive);
            async move {
                let name = policy_name(i);
                let list = iot
                    .list_policy_versions()
                    .policy_name(&name)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(list.policy_versions().len(), 1, "{name}");
                assert_eq!(&default_document(iot, &name).await, restrictive, "{name}");
            }
        })
        .await;
}

async fn seed(emu: &Emulator, n: usize) -> Queues {
    emu.control("POST", "/_emulator/reset", None);
    let iot = emu.client();
    futures::stream::iter(0..n)
        .for_each_concurrent(16, |i| {
            let iot = &iot;
            async move { create_policy(iot, &policy_name(i), PERMISSIVE).await }
        })
        .await;
    emu.generate_findings(TASK, "WS_AUDIT_Q", n);
    // Visibility as short as a test allows; nothing should come back in this run anyway.
    let queues = create_queues(&emu.sqs(), "jobs", 5, 60).await;
    emu.clear_requests();
    queues
}

async fn run(emu: &Emulator, case: &Case) {
    let queues = seed(emu, case.n).await;
    let spec = json!({"latency_ms": case.latency_ms, "rate_per_sec": case.cap});
    let operations: serde_json::Map<String, Value> = IOT_OPERATIONS
        .iter()
        .map(|op| (op.to_string(), spec.clone()))
        .collect();
    emu.faults(json!({ "operations": operations }));
    let config = || {
        let mut c = fanout_config(&queues.url, case.workers);
        c.api_calls_per_second = case.cap;
        c.max_concurrency = iot_audit_remediator::config::Config::default().max_concurrency;
        c
    };
    let sqs = emu.sqs();
    let filling = AtomicBool::new(true);
    let started = Instant::now();
    // The SNS invocation and the workers run at once, as in Lambda: the mapping starts
    // delivering jobs as soon as the first batch is enqueued.
    let enqueue = async {
        let app = emu.fanout_app(config());
        let response = handle(&app, &load_event("audit-non-compliant.json"), Cutoff::NONE).await;
        filling.store(false, Ordering::SeqCst);
        let elapsed = started.elapsed();
        match response {
            Ok(Response::Audit(report)) => (report.totals.enqueued, elapsed),
            other => panic!("the SNS invocation failed: {other:?}"),
        }
    };
    let workers = (0..case.workers)
        .map(|_| emu.fanout_app(config()))
        .collect();
    let window = if case.batch > 10 {
        WINDOW
    } else {
        Duration::ZERO
    };
    let drain = drive_queue_with(&sqs, &queues, workers, case.batch, window, &filling);
    let ((enqueued, enqueue_time), drive) = tokio::join!(enqueue, drain);
    let wall = started.elapsed();
    emu.faults(json!({}));

    // What must hold whatever the speed.
    let log = emu.control("GET", "/_emulator/requests", None);
    let mut creates: BTreeMap<String, usize> = BTreeMap::new();
    for r in log["requests"].as_array().unwrap() {
        if r["operation"] == "CreatePolicyVersion" && r["status"] == 200 {
            *creates
                .entry(r["policyName"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    assert_eq!(enqueued, case.n, "every finding enqueued");
    let never: Vec<String> = (0..case.n)
        .map(policy_name)
        .filter(|name| !creates.contains_key(name))
        .collect();
    assert!(never.is_empty(), "policies never remediated: {never:?}");
    let twice: Vec<(&String, &usize)> = creates.iter().filter(|(_, &c)| c > 1).collect();
    assert!(
        twice.is_empty(),
        "policies with more than one restrictive version created: {twice:?}"
    );
    assert_end_state(emu, case.n).await;
    assert_eq!(queue_depth(&sqs, &queues.url).await, (0, 0));
    assert!(drain_bodies(&sqs, &queues.dlq_url).await.is_empty());
    let (calls, throttled) = calls_and_throttles(&log);
    // The quota limit: every policy needs one call of each write operation, at the cap.
    let limit = Duration::from_secs_f64(case.n as f64 / case.cap as f64);
    // SQS delivers at least once: a job delivered twice costs two reads, no write.
    let repeated = calls.get("GetPolicy").copied().unwrap_or(0) as usize - case.n;
    let calls: Vec<String> = calls.iter().map(|(op, n)| format!("{op}={n}")).collect();
    println!(
        "N={} cap={}/s workers={} batch={} latency={}ms | wall {:.1}s  limit {:.1}s  wall/limit {:.3} | enqueued in {:.1}s | {} invocations, {} jobs returned, {} delivered twice | throttled {} | {}",
        case.n,
        case.cap,
        case.workers,
        case.batch,
        case.latency_ms,
        wall.as_secs_f64(),
        limit.as_secs_f64(),
        wall.as_secs_f64() / limit.as_secs_f64(),
        enqueue_time.as_secs_f64(),
        drive.invocations,
        drive.returned,
        repeated,
        throttled,
        calls.join(" "),
    );
}

#[tokio::main]
async fn main() {
    let args = bench_args();
    let emu = Emulator::start();
    let case = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [n, cap, workers, batch, rest @ ..] => Case {
            n: n.parse().unwrap(),
            cap: cap.parse().unwrap(),
            workers: workers.parse().unwrap(),
            batch: batch.parse().unwrap(),
            latency_ms: rest.first().map_or(25, |l| l.parse().unwrap()),
        },
        // The case, with the template's defaults: 2 workers, batches of 50.
        [] => Case {
            n: 10_000,
            cap: 10,
            workers: 2,
            batch: 50,
            latency_ms: 25,
        },
        other => panic!("usage: [N CAP WORKERS BATCH [LATENCY_MS]], not {other:?}"),
    };
    run(&emu, &case).await;
}
