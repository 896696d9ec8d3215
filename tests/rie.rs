//! The built binary under AWS's own Lambda Runtime Interface Emulator (`aws-lambda-rie`, which
//! `sam local` and the Lambda base images run; shipped in the SAM CLI package of
//! `.venv-sam`), both its addresses on loopback, against the local endpoint: the sample events,
//! bad bodies, and one function process from the first invocation to the last.
//!
//! The bootstrap is the binary cargo builds for this test anyway (`CARGO_BIN_EXE_…`, the
//! host's architecture, run by the RIE of the same architecture): `cargo lambda build` compiles
//! the same code a second time for an explicit target through zig (minutes on 2 cores, and for
//! arm64 a Rust target fetched by rustup first), which would only add ways to fail.

mod common;

use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_iot::types::{PolicyVersionIdentifier, ResourceIdentifier};
use common::*;
use serde_json::{json, Value};

/// The RIE's invoke route (the Lambda `Invoke` API's path).
const INVOKE: &str = "/2015-03-31/functions/function/invocations";
const IN_SCOPE: &str = DEMO_POLICIES[0];
const OUT_OF_SCOPE: &str = DEMO_POLICIES[1];

/// The RIE for this machine's architecture, inside the SAM CLI package.
fn rie_binary() -> PathBuf {
    let arch = match std::env::consts::ARCH {
        "aarch64" => "arm64",
        other => other,
    };
    let lib = project_dir().join(".venv-sam/lib");
    let name = format!("site-packages/samcli/local/rapid/aws-lambda-rie-{arch}");
    std::fs::read_dir(&lib)
        .into_iter()
        .flatten()
        .flatten()
        .map(|python| python.path().join(&name))
        .find(|rie| rie.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the Lambda Runtime Interface Emulator {}/python3*/{name} is missing: \
                 run scripts/setup.sh (make test does), which installs the SAM CLI into .venv-sam",
                lib.display()
            )
        })
}

/// Two free loopback ports, distinct: both are held until both are known.
fn free_ports() -> [u16; 2] {
    let listeners = [(); 2].map(|_| TcpListener::bind("127.0.0.1:0").unwrap());
    listeners.map(|l| l.local_addr().unwrap().port())
}

/// The processes whose parent is `parent` (Linux `/proc`).
fn children(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // `pid (name) state ppid ...`; the name may hold spaces and parentheses.
            let ppid: u32 = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            (ppid == parent).then_some(pid)
        })
        .collect()
}

/// The RIE running the function, and its output (the RIE's lines and the function's).
struct Rie {
    child: Child,
    address: String,
    log: PathBuf,
}

impl Rie {
    /// Starts the RIE with the built binary as the function, under `env` alone. A port taken
    /// between choosing and binding it costs a new attempt, not the test.
    fn start(binary: &Path, env: &[(&'static str, String)]) -> Self {
        let mut failures = Vec::new();
        for _ in 0..3 {
            match Self::try_start(binary, env) {
                Ok(rie) => return rie,
                Err(failure) => failures.push(failure),
            }
        }
        panic!("the RIE did not start: {failures:#?}");
    }

    fn try_start(binary: &Path, env: &[(&'static str, String)]) -> Result<Self, String> {
        let [invoke, runtime_api] = free_ports();
        let log = std::env::temp_dir().join(format!(
            "iot-audit-remediator-rie-{}-{invoke}.log",
            std::process::id()
        ));
        let out = File::create(&log).unwrap();
        let child = Command::new(binary)
            .arg("--runtime-interface-emulator-address")
            .arg(format!("127.0.0.1:{invoke}"))
            .arg("--runtime-api-address")
            .arg(format!("127.0.0.1:{runtime_api}"))
            .arg(env!("CARGO_BIN_EXE_iot-audit-remediator"))
            .env_clear()
            .envs(env.iter().cloned())
            .env("AWS_LAMBDA_FUNCTION_NAME", "iot-audit-remediator")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start the RIE");
        // From here on, Drop ends it whatever happens.
        let mut rie = Self {
            child,
            address: format!("127.0.0.1:{invoke}"),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(&rie.address).is_err() {
            if let Some(status) = rie.child.try_wait().unwrap() {
                return Err(format!("exited ({status}): {}", rie.output()));
            }
            if Instant::now() > deadline {
                return Err(format!("not listening after 10 s: {}", rie.output()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(rie)
    }

    /// The RIE's and the function's output so far.
    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// One invocation with `body` as the event, as `aws lambda invoke` sends it: the answer
    /// (the function's result, or its error object).
    fn invoke(&self, body: &[u8]) -> Value {
        let (head, answer) = http(&self.address, "POST", INVOKE, body);
        assert!(
            head.starts_with("HTTP/1.1 200"),
            "{head}\n{answer}\n{}",
            self.output()
        );
        serde_json::from_str(&answer)
            .unwrap_or_else(|e| panic!("answer not JSON ({e}): {answer}\n{}", self.output()))
    }

    /// An invocation with a file of `events/`, as it is on disk.
    fn invoke_file(&self, name: &str) -> Value {
        self.invoke(&event_bytes(name))
    }

    /// The function's process: the RIE's one child.
    fn function_pid(&self) -> u32 {
        let pids = children(self.child.id());
        assert_eq!(pids.len(), 1, "one function process: {}", self.output());
        pids[0]
    }
}

impl Drop for Rie {
    fn drop(&mut self) {
        // The RIE gives the function a process group of its own, so killing the RIE alone
        // would leave the function to notice by itself; end the function first (the RIE
        // reaps it), then the RIE. The shell's `kill`: std signals only its own children.
        let function = children(self.child.id());
        if !function.is_empty() {
            let _ = Command::new("sh")
                .args(["-c", "kill -KILL \"$@\"", "sh"])
                .args(function.iter().map(u32::to_string))
                .stderr(Stdio::null())
                .status();
            // Until the RIE has reaped it: a child left to init could stay a zombie.
            let deadline = Instant::now() + Duration::from_secs(2);
            while !children(self.child.id()).is_empty() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "the RIE's and the function's output: {}",
                self.log.display()
            );
        } else {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// The account the RIE names in every invocation's function ARN, whatever the environment says.
const RIE_ACCOUNT: &str = "012345678912";

/// A file of `events/`, its audits made the RIE's own account's (SPEC §11: the function's own
/// account comes from its ARN); the emulator still answers them in its default account, as the
/// function's own keys land there.
fn event_bytes(name: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(project_dir().join("events").join(name)).unwrap();
    text.replace(DEFAULT_ACCOUNT, RIE_ACCOUNT).into_bytes()
}

/// The RIE running the function against the local endpoint, which holds the demo's policies
/// and findings; the function has the default configuration (unpaced).
struct Setup {
    // Declared first, dropped first: the function goes before its endpoint.
    rie: Rie,
    emu: Emulator,
    rt: tokio::runtime::Runtime,
}

impl Setup {
    fn start() -> Self {
        let rie_binary = rie_binary(); // before the emulator: a missing RIE fails at once
        let emu = Emulator::start();
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(emu.seed_demo());
        let rie = Rie::start(&rie_binary, &emu.function_env());
        Self { rie, emu, rt }
    }

    /// The in-scope policy is remediated (the replaced version kept), the other untouched.
    fn assert_remediated(&self) {
        self.rt
            .block_on(assert_remediated(&self.emu.client(), IN_SCOPE, true));
        self.assert_untouched(OUT_OF_SCOPE);
    }

    /// The policy is as the demo seeded it: one version, the permissive default.
    fn assert_untouched(&self, policy: &str) {
        let versions = self.rt.block_on(versions(&self.emu.client(), policy));
        assert_eq!(
            versions,
            vec![("1".to_owned(), true, permissive())],
            "{policy}"
        );
    }
}

/// The answer lambda_runtime gives a body it cannot read as JSON: an error object, the
/// handler not called.
fn assert_unreadable_body_answer(answer: &Value) {
    let message = answer["errorMessage"].as_str().unwrap_or_default();
    assert!(
        answer["errorType"].is_string() && message.contains("deserialize"),
        "{answer:#}"
    );
}

#[test]
fn one_process_under_the_rie_answers_every_sample_event_and_survives_bad_bodies() {
    let setup = Setup::start();
    let rie = &setup.rie;
    // The very first invocation is a body that is not JSON.
    assert_unreadable_body_answer(&rie.invoke(b"Audit finished (this is not JSON)"));
    let function = rie.function_pid();

    messages_that_need_no_call(&setup);

    let audit = rie.invoke_file("audit-non-compliant.json");
    assert_eq!(audit["totals"]["remediated"], 1, "{audit:#}");
    assert_eq!(audit["totals"]["failed"], 0);
    assert_eq!(
        audit["totals"]["skippedByReason"],
        json!({"out_of_scope": 1})
    );
    setup.assert_remediated();

    // Half an event: not JSON either.
    let half = event_bytes("two-records.json");
    assert_unreadable_body_answer(&rie.invoke(&half[..half.len() / 2]));

    // The audit again (next to another one): nothing left to do, no write.
    setup.emu.clear_requests();
    let again = rie.invoke_file("two-records.json");
    assert_eq!(again["recordTotals"]["processed"], 2, "{again:#}");
    assert_eq!(
        again["totals"]["skippedByReason"],
        json!({"already_remediated": 1, "out_of_scope": 1}),
        "{again:#}"
    );
    assert_eq!(again["records"][1]["findings"], json!([]), "{again:#}");
    assert_eq!(setup.emu.writes(), Vec::<String>::new());

    let rollback = rie.invoke_file("rollback.json");
    assert_eq!(rollback["totals"]["rolledBack"], 1, "{rollback:#}");
    setup.assert_untouched(IN_SCOPE);
    lift_rollback_suppression(&setup);

    // The sample jobs name the seeded findings: the in-scope one is remediated again.
    let jobs = rie.invoke_file("sqs-jobs.json");
    assert_eq!(jobs["batchItemFailures"], json!([]), "{jobs:#}");
    assert_eq!(jobs["totals"]["remediated"], 1, "{jobs:#}");
    assert_eq!(jobs["totals"]["skippedByReason"]["out_of_scope"], 1);
    setup.assert_remediated();

    let output = rie.output();
    assert_eq!(rie.function_pid(), function, "one process: {output}");
}

/// The events whose messages need no IoT call are answered as such, with none.
fn messages_that_need_no_call(setup: &Setup) {
    let compliant = setup.rie.invoke_file("audit-compliant.json");
    let record = &compliant["records"][0];
    assert_eq!(record["outcome"], "processed", "{compliant:#}");
    assert_eq!(
        record["checks"][0]["handling"], "compliant",
        "{compliant:#}"
    );
    for (name, reason) in [
        ("audit-task-failed.json", "task_not_completed"),
        ("detect-violation.json", "detect_violation"),
        ("finding-notification.json", "finding_notification"),
    ] {
        let answer = setup.rie.invoke_file(name);
        let record = &answer["records"][0];
        assert_eq!(record["outcome"], "skipped", "{name}: {answer:#}");
        assert_eq!(record["reason"], reason, "{name}: {answer:#}");
    }
    let not_json = setup.rie.invoke_file("not-json.json");
    assert_eq!(
        not_json["records"][0]["outcome"], "rejected",
        "{not_json:#}"
    );
    assert_eq!(not_json["recordTotals"]["rejected"], 1);
    assert_eq!(setup.emu.count("ListAuditFindings"), 0);
    assert_eq!(setup.emu.writes(), Vec::<String>::new());
}

/// The rollback's suppression of the restored version is there (SPEC §9); an operator lifts
/// it, so that the version's finding counts again.
fn lift_rollback_suppression(setup: &Setup) {
    let iot = setup.emu.client();
    setup.rt.block_on(async {
        let listed = iot
            .list_audit_suppressions()
            .check_name(CHECK)
            .send()
            .await
            .unwrap();
        let suppressed: Vec<_> = listed
            .suppressions()
            .iter()
            .filter_map(|s| s.resource_identifier()?.policy_version_identifier())
            .map(|v| (v.policy_name(), v.policy_version_id()))
            .collect();
        assert_eq!(suppressed, vec![(Some(IN_SCOPE), Some("1"))]);
        let version = PolicyVersionIdentifier::builder()
            .policy_name(IN_SCOPE)
            .policy_version_id("1")
            .build();
        iot.delete_audit_suppression()
            .check_name(CHECK)
            .resource_identifier(
                ResourceIdentifier::builder()
                    .policy_version_identifier(version)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    });
}

/// SNS → SQS → Lambda (SPEC §10): the audit message in its SNS envelope, in an SQS record, is
/// handled as the audit, and answered as a batch with nothing to deliver again.
#[test]
fn under_the_rie_an_audit_through_an_sqs_buffer_is_remediated_after_a_bad_body() {
    let setup = Setup::start();
    let rie = &setup.rie;
    let event = event_bytes("sqs-sns-audit.json");
    assert_unreadable_body_answer(&rie.invoke(&event[..event.len() / 2]));
    let function = rie.function_pid();

    let answer = rie.invoke(&event);
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer:#}");
    let remediated = answer["totals"]["remediated"].as_u64();
    assert!(remediated >= Some(1), "{answer:#}");
    setup.assert_remediated();
    let output = rie.output();
    assert_eq!(rie.function_pid(), function, "one process: {output}");
}
