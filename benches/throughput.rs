//! Throughput of the real handler against the local IoT endpoint, with added latency and a
//! per-operation rate cap standing in for the account's API quota. A benchmark, not a test: it
//! prints figures and asserts nothing about time.
//!
//! `cargo bench --bench throughput` runs the standard set (see README, Performance);
//! `cargo bench --bench throughput -- N CAP CONCURRENCY [LATENCY_MS]` runs one case;
//! `cargo bench --bench throughput -- memory N` prints the peak RSS of one invocation at N.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use iot_audit_remediator::config::Config;
use iot_audit_remediator::engine::Cutoff;
use iot_audit_remediator::entry::sns::handle_event;
use serde_json::json;

const LATENCY_MS: u64 = 25;

struct Case {
    n: usize,
    cap: u32,
    concurrency: usize,
    latency_ms: u64,
}

struct Figures {
    wall: Duration,
    calls: BTreeMap<String, u64>,
    throttled: u64,
    limit: Duration,
    remediated: usize,
}

/// Fresh state, `n` permissive in-scope policies with one finding each.
async fn seed(emu: &Emulator, n: usize) {
    emu.control("POST", "/_emulator/reset", None);
    let iot = emu.client();
    futures::stream::iter(0..n)
        .for_each_concurrent(16, |i| {
            let iot = &iot;
            async move { create_policy(iot, &format!("WS_AUDIT_B{i:05}"), PERMISSIVE).await }
        })
        .await;
    emu.generate_findings(TASK, "WS_AUDIT_B", n);
    emu.clear_requests();
}

async fn run(emu: &Emulator, case: &Case) -> Figures {
    seed(emu, case.n).await;
    // Every operation capped at `cap` calls per second, like an account's quota; latency on
    // every call, like a real round trip.
    emu.faults(json!({"default": {"latency_ms": case.latency_ms, "rate_per_sec": case.cap}}));
    let config = Config {
        max_concurrency: case.concurrency.try_into().unwrap(),
        api_calls_per_second: case.cap,
        ..Config::default()
    };
    let app = emu.app(config);
    let event = load_event("audit-non-compliant.json");
    let started = Instant::now();
    let report = handle_event(&app, &event, Cutoff::NONE).await;
    let wall = started.elapsed();
    let log = emu.control("GET", "/_emulator/requests", None);
    emu.faults(json!({}));
    let remediated = match &report {
        Ok(r) => r.totals.remediated,
        Err(e) => e.remediated,
    };
    let (calls, throttled) = calls_and_throttles(&log);
    // The physical limit: listing pages one after another, then the busiest operation at its cap.
    let pages = calls.get("ListAuditFindings").copied().unwrap_or(0);
    let busiest = calls
        .iter()
        .filter(|(op, _)| op.as_str() != "ListAuditFindings")
        .map(|(_, n)| *n)
        .max()
        .unwrap_or(0);
    let limit = Duration::from_millis(pages * case.latency_ms)
        + Duration::from_secs_f64(busiest as f64 / case.cap as f64);
    Figures {
        wall,
        calls,
        throttled,
        limit,
        remediated,
    }
}

fn print(case: &Case, f: &Figures) {
    let total: u64 = f.calls.values().sum();
    let calls: Vec<String> = f.calls.iter().map(|(op, n)| format!("{op}={n}")).collect();
    println!(
        "N={:<5} cap={:>3}/s concurrency={:<2} latency={}ms | wall {:>7.2}s  limit {:>7.2}s  wall/limit {:>5.2} | remediated {} | throttled {} of {} calls ({:.1} %) | {}",
        case.n,
        case.cap,
        case.concurrency,
        case.latency_ms,
        f.wall.as_secs_f64(),
        f.limit.as_secs_f64(),
        f.wall.as_secs_f64() / f.limit.as_secs_f64(),
        f.remediated,
        f.throttled,
        total,
        100.0 * f.throttled as f64 / total.max(1) as f64,
        calls.join(" "),
    );
}

/// Peak resident set size of this process, from the kernel.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn memory(emu: &Emulator, n: usize) {
    seed(emu, n).await;
    let before = peak_rss_kib();
    let config = Config {
        max_concurrency: 16.try_into().unwrap(),
        ..test_config()
    };
    let report = handle_event(
        &emu.app(config),
        &load_event("audit-non-compliant.json"),
        Cutoff::NONE,
    )
    .await
    .unwrap();
    let report_bytes = serde_json::to_vec(&report).unwrap().len();
    println!(
        "N={n}: remediated {} | peak RSS before the invocation {} KiB, after {} KiB | report {} KiB as JSON",
        report.totals.remediated,
        before,
        peak_rss_kib(),
        report_bytes / 1024
    );
}

#[tokio::main]
async fn main() {
    let args = bench_args();
    let emu = Emulator::start();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["memory", n] => memory(&emu, n.parse().unwrap()).await,
        [n, cap, concurrency, rest @ ..] => {
            let case = Case {
                n: n.parse().unwrap(),
                cap: cap.parse().unwrap(),
                concurrency: concurrency.parse().unwrap(),
                latency_ms: rest.first().map_or(LATENCY_MS, |l| l.parse().unwrap()),
            };
            let f = run(&emu, &case).await;
            print(&case, &f);
        }
        [] => {
            // At a cap of 100/s: the pool against one call at a time, as the workshop did.
            for n in [100, 1000, 5000] {
                let pooled = Case {
                    n,
                    cap: 100,
                    concurrency: 16,
                    latency_ms: LATENCY_MS,
                };
                let f = run(&emu, &pooled).await;
                print(&pooled, &f);
                if n <= 1000 {
                    let one = Case {
                        concurrency: 1,
                        ..pooled
                    };
                    let g = run(&emu, &one).await;
                    print(&one, &g);
                    println!(
                        "  speed-up over one call at a time: {:.1}x",
                        g.wall.as_secs_f64() / f.wall.as_secs_f64()
                    );
                }
            }
            // At the real default quota of 10/s, with the default concurrency.
            let quota = Case {
                n: 100,
                cap: 10,
                concurrency: Config::default().max_concurrency.get(),
                latency_ms: LATENCY_MS,
            };
            let f = run(&emu, &quota).await;
            print(&quota, &f);
        }
        other => panic!("usage: [N CAP CONCURRENCY [LATENCY_MS]] | [memory N], not {other:?}"),
    }
}
