//! Test harness: the local IoT endpoint (`emulator/iot_emulator.py`: moto's server plus the
//! Device Defender audit route and fault injection) as a child process, one per test.
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_iot::config::retry::RetryConfig;
use aws_sdk_iot::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_iot::Client;
use iot_audit_remediator::apply::Remediator;
use iot_audit_remediator::config::Config;
use iot_audit_remediator::restrictive::RestrictivePolicy;
use serde_json::{json, Value};

pub const PERMISSIVE: &str = include_str!("../../policies/permissive-sample.json");
pub const CHECK: &str = "IOT_POLICY_OVERLY_PERMISSIVE_CHECK";
/// The task id of `events/audit-non-compliant.json`.
pub const TASK: &str = "7aa53579303b594f9bcb76082688a5de";

pub struct Emulator {
    pub url: String,
    child: Child,
    /// Held open: the emulator exits when it reaches EOF, so a crashed test leaks nothing.
    _stdin: ChildStdin,
}

fn project_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("IOT_EMULATOR_PYTHON") {
        return p.into();
    }
    let venv = project_dir().join(".venv/bin/python");
    assert!(
        venv.exists(),
        "the IoT emulator needs {}: run scripts/setup.sh (make test does) or set IOT_EMULATOR_PYTHON",
        venv.display()
    );
    venv
}

impl Emulator {
    pub fn start() -> Self {
        let mut child = Command::new(python())
            .arg(project_dir().join("emulator/iot_emulator.py"))
            .args(["--port", "0", "--exit-on-stdin-eof"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the IoT emulator");
        let stdin = child.stdin.take().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("read the emulator's READY line");
        let url = line
            .trim()
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("emulator did not start: {line:?}"))
            .to_owned();
        Self {
            url,
            child,
            _stdin: stdin,
        }
    }

    /// The real SDK client pointed at the emulator, with the function's retry policy; the
    /// backoff is shortened so fault tests do not sleep for seconds.
    pub fn client(&self) -> Client {
        Client::from_conf(self.client_config().build())
    }

    /// As [`Emulator::client`], with short timeouts so stall tests run in seconds.
    pub fn client_with_timeouts(&self, attempt: Duration, operation: Duration) -> Client {
        let timeouts = aws_sdk_iot::config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(1))
            .operation_attempt_timeout(attempt)
            .operation_timeout(operation)
            .build();
        Client::from_conf(self.client_config().timeout_config(timeouts).build())
    }

    fn client_config(&self) -> aws_sdk_iot::config::Builder {
        let config = aws_sdk_iot::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&self.url)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"));
        iot_audit_remediator::with_call_policy(config).retry_config(
            RetryConfig::standard()
                .with_max_attempts(iot_audit_remediator::MAX_ATTEMPTS)
                .with_initial_backoff(Duration::from_millis(20))
                .with_max_backoff(Duration::from_millis(200)),
        )
    }

    pub fn remediator(&self, config: Config) -> Arc<Remediator> {
        remediator_with(self.client(), config)
    }

    /// One request to the control API (`/_emulator/...`), over a fresh connection.
    pub fn control(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let addr = self.url.trim_start_matches("http://");
        let mut stream = TcpStream::connect(addr).unwrap();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.1 2") || head.starts_with("HTTP/1.0 2"),
            "{method} {path}: {head}\n{body}"
        );
        serde_json::from_str(body).unwrap_or(Value::Null)
    }

    pub fn seed_findings(&self, findings: Vec<Value>) {
        self.control(
            "POST",
            "/_emulator/findings",
            Some(json!({ "findings": findings })),
        );
    }

    /// `count` findings for policies `<prefix>00000`, `<prefix>00001`, ...
    pub fn generate_findings(&self, task: &str, prefix: &str, count: usize) {
        self.control(
            "POST",
            "/_emulator/findings",
            Some(json!({"generate": {"taskId": task, "checkName": CHECK,
                "policyNamePrefix": prefix, "count": count, "versionId": "1", "start": 0}})),
        );
    }

    pub fn faults(&self, faults: Value) {
        self.control("POST", "/_emulator/faults", Some(faults));
    }

    /// Requests per operation since the start (or the last clear).
    pub fn counts(&self) -> Value {
        self.control("GET", "/_emulator/requests", None)["counts"].clone()
    }

    pub fn count(&self, operation: &str) -> u64 {
        self.counts()[operation].as_u64().unwrap_or(0)
    }

    pub fn requests(&self) -> Vec<Value> {
        self.control("GET", "/_emulator/requests", None)["requests"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub fn clear_requests(&self) {
        self.control("DELETE", "/_emulator/requests", None);
    }

    /// Write calls in the request log, as `Operation policy`.
    pub fn writes(&self) -> Vec<String> {
        self.requests()
            .iter()
            .filter(|r| {
                matches!(
                    r["operation"].as_str(),
                    Some("CreatePolicyVersion" | "DeletePolicyVersion" | "SetDefaultPolicyVersion")
                )
            })
            .map(|r| {
                format!(
                    "{} {}",
                    r["operation"].as_str().unwrap(),
                    r["policyName"].as_str().unwrap_or("-")
                )
            })
            .collect()
    }
}

/// From the request log (`GET /_emulator/requests`): requests per operation, and how many were
/// throttled (injected or by the rate cap).
pub fn calls_and_throttles(log: &Value) -> (std::collections::BTreeMap<String, u64>, u64) {
    let calls = log["counts"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect();
    let faults = &log["faults"];
    let throttled = faults["throttle"].as_u64().unwrap() + faults["rate_limited"].as_u64().unwrap();
    (calls, throttled)
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn remediator_with(client: Client, config: Config) -> Arc<Remediator> {
    Arc::new(Remediator::new(
        client,
        config,
        RestrictivePolicy::builtin().unwrap(),
    ))
}

/// A finding in the API's JSON shape, as `ListAuditFindings` returns it.
pub fn finding(task: &str, policy: &str, version: &str) -> Value {
    json!({
        "findingId": format!("{task}-{policy}-{version}"),
        "taskId": task,
        "checkName": CHECK,
        "taskStartTime": 1572013171.897,
        "findingTime": 1572013190.104,
        "severity": "CRITICAL",
        "nonCompliantResource": {
            "resourceType": "IOT_POLICY",
            "resourceIdentifier": {"policyVersionIdentifier": {"policyName": policy, "policyVersionId": version}}
        },
        "relatedResources": [],
        "reasonForNonCompliance": "Policy allows broad access to IoT data plane actions: [iot:Connect].",
        "reasonForNonComplianceCode": "ALLOWS_BROAD_ACCESS_TO_IOT_DATA_PLANE_ACTIONS",
        "isSuppressed": false
    })
}

pub fn load_event(name: &str) -> Value {
    let path = project_dir().join("events").join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A policy's versions as (id, is default, document as JSON), sorted by numeric id.
pub async fn versions(client: &Client, policy: &str) -> Vec<(String, bool, Value)> {
    let list = client
        .list_policy_versions()
        .policy_name(policy)
        .send()
        .await
        .unwrap();
    let mut out = Vec::new();
    for v in list.policy_versions() {
        let id = v.version_id().unwrap().to_owned();
        let doc = client
            .get_policy_version()
            .policy_name(policy)
            .policy_version_id(&id)
            .send()
            .await
            .unwrap();
        out.push((
            id,
            v.is_default_version(),
            serde_json::from_str(doc.policy_document().unwrap()).unwrap(),
        ));
    }
    out.sort_by_key(|(id, _, _)| id.parse::<u64>().unwrap());
    out
}

pub async fn default_document(client: &Client, policy: &str) -> Value {
    let out = client
        .get_policy()
        .policy_name(policy)
        .send()
        .await
        .unwrap();
    serde_json::from_str(out.policy_document().unwrap()).unwrap()
}

pub fn restrictive() -> Value {
    serde_json::from_str(iot_audit_remediator::restrictive::RESTRICTIVE_DOCUMENT).unwrap()
}

pub fn permissive() -> Value {
    serde_json::from_str(PERMISSIVE).unwrap()
}

pub async fn create_policy(client: &Client, name: &str, document: &str) {
    client
        .create_policy()
        .policy_name(name)
        .policy_document(document)
        .send()
        .await
        .unwrap();
}

/// Asserts the end state SPEC §5 promises: exactly one restrictive version, and it is the
/// default; the permissive version gone unless kept.
pub async fn assert_remediated(client: &Client, policy: &str, kept: bool) {
    let versions = versions(client, policy).await;
    let restrictive: Vec<_> = versions
        .iter()
        .filter(|(_, _, d)| *d == self::restrictive())
        .collect();
    assert_eq!(
        restrictive.len(),
        1,
        "{policy}: exactly one restrictive version: {versions:?}"
    );
    assert!(
        restrictive[0].1,
        "{policy}: the restrictive version is the default"
    );
    let permissive_left = versions.iter().any(|(_, _, d)| *d == permissive());
    assert_eq!(
        permissive_left, kept,
        "{policy}: permissive version kept={kept}: {versions:?}"
    );
}

/// The default configuration, unpaced: these tests are about behaviour, not the API quota
/// (the benchmark paces).
pub fn test_config() -> Config {
    Config {
        api_calls_per_second: 0,
        ..Config::default()
    }
}

// --- The fan-out queue: moto's SQS behind the same endpoint --------------------------------

impl Emulator {
    /// The real SQS client pointed at the emulator (moto serves SQS on the same port).
    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        let config = aws_sdk_sqs::config::Builder::new()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .region(aws_sdk_sqs::config::Region::new("us-east-1"))
            .endpoint_url(&self.url)
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "testing", "testing", None, None, "tests",
            ))
            .build();
        aws_sdk_sqs::Client::from_conf(config)
    }

    /// A remediator that fans out to `queue_url` (one per simulated Lambda process).
    pub fn fanout_remediator(&self, config: Config) -> Arc<Remediator> {
        Arc::new(
            Remediator::new(self.client(), config, RestrictivePolicy::builtin().unwrap())
                .with_queue(self.sqs()),
        )
    }
}

/// A job queue with a dead-letter queue, as `template.yaml` makes them: after `max_receives`
/// deliveries a message moves to the dead-letter queue.
pub struct Queues {
    pub url: String,
    pub arn: String,
    pub dlq_url: String,
}

pub async fn create_queues(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    max_receives: u32,
    visibility_secs: u32,
) -> Queues {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let arn_of = |url: String| async move {
        let out = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(A::QueueArn)
            .send()
            .await
            .unwrap();
        (url, out.attributes().unwrap()[&A::QueueArn].clone())
    };
    let dlq = sqs
        .create_queue()
        .queue_name(format!("{name}-dlq"))
        .send()
        .await
        .unwrap();
    let (dlq_url, dlq_arn) = arn_of(dlq.queue_url().unwrap().to_owned()).await;
    let queue = sqs
        .create_queue()
        .queue_name(name)
        .attributes(A::VisibilityTimeout, visibility_secs.to_string())
        .attributes(
            A::RedrivePolicy,
            json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives}).to_string(),
        )
        .send()
        .await
        .unwrap();
    let (url, arn) = arn_of(queue.queue_url().unwrap().to_owned()).await;
    Queues { url, arn, dlq_url }
}

/// Messages in a queue: (visible, in flight).
pub async fn queue_depth(sqs: &aws_sdk_sqs::Client, url: &str) -> (u64, u64) {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap();
    let attrs = out.attributes().unwrap();
    let n = |a: A| attrs.get(&a).map_or(0, |v| v.parse().unwrap());
    (
        n(A::ApproximateNumberOfMessages),
        n(A::ApproximateNumberOfMessagesNotVisible),
    )
}

/// Every body in a queue, received until it is empty (and deleted).
pub async fn drain_bodies(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    loop {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        if out.messages().is_empty() {
            return bodies;
        }
        for m in out.messages() {
            bodies.push(m.body().unwrap_or_default().to_owned());
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

/// An SQS event as Lambda's event source mapping builds it from received messages.
pub fn sqs_event(messages: &[aws_sdk_sqs::types::Message], queue_arn: &str) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let attributes: serde_json::Map<String, Value> = m
                .attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.as_str().to_owned(), Value::String(v.clone())))
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": m.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    json!({ "Records": records })
}

/// What a drive of the queue saw.
#[derive(Debug, Default)]
pub struct Drive {
    pub invocations: usize,
    pub messages: usize,
    /// Messages the handler named in `batchItemFailures`.
    pub returned: usize,
}

/// Drains the job queue the way Lambda's event source mapping does, with one poller per
/// remediator (each a Lambda process with its own pacer) working at once: gather up to
/// `batch_size` messages, invoke the handler, delete what it did not name in
/// `batchItemFailures`. Named messages come back after the visibility timeout. Ends when the
/// queue has nothing visible and nothing in flight.
pub async fn drive_queue(
    sqs: &aws_sdk_sqs::Client,
    queues: &Queues,
    workers: Vec<Arc<Remediator>>,
    batch_size: usize,
) -> Drive {
    let filling = std::sync::atomic::AtomicBool::new(false);
    drive_queue_with(sqs, queues, workers, batch_size, Duration::ZERO, &filling).await
}

/// As [`drive_queue`], gathering a batch for up to `window` (the mapping's batching window;
/// SQS hands out at most 10 messages per receive), and not ending while `filling` is set.
/// Like the mapping, each poller gathers its next batch while the function works on the
/// current one, and deletes done messages without holding up the next invocation.
pub async fn drive_queue_with(
    sqs: &aws_sdk_sqs::Client,
    queues: &Queues,
    workers: Vec<Arc<Remediator>>,
    batch_size: usize,
    window: Duration,
    filling: &std::sync::atomic::AtomicBool,
) -> Drive {
    use iot_audit_remediator::handler::{handle, Cutoff, Response};
    let pollers = workers.into_iter().map(|remediator| async move {
        let (batches, mut next) = tokio::sync::mpsc::channel(1);
        let gather = async move {
            while let Some(batch) = gather_batch(sqs, queues, batch_size, window, filling).await {
                if batches.send(batch).await.is_err() {
                    break;
                }
            }
        };
        let invoke = async {
            let mut drive = Drive::default();
            let mut deletions = tokio::task::JoinSet::new();
            while let Some(messages) = next.recv().await {
                let messages: Vec<aws_sdk_sqs::types::Message> = messages;
                drive.invocations += 1;
                drive.messages += messages.len();
                let event = sqs_event(&messages, &queues.arn);
                let failures: Vec<String> = match handle(&remediator, &event, Cutoff::NONE).await {
                    Ok(Response::Jobs(report)) => report
                        .response
                        .batch_item_failures
                        .iter()
                        .map(|f| f.item_identifier.clone())
                        .collect(),
                    other => panic!("an SQS batch must get a partial batch response: {other:?}"),
                };
                drive.returned += failures.len();
                let handles: Vec<String> = messages
                    .iter()
                    .filter(|m| !failures.iter().any(|f| Some(f.as_str()) == m.message_id()))
                    .map(|m| m.receipt_handle().unwrap().to_owned())
                    .collect();
                deletions.spawn(delete_messages(sqs.clone(), queues.url.clone(), handles));
            }
            while let Some(done) = deletions.join_next().await {
                done.unwrap();
            }
            drive
        };
        tokio::join!(gather, invoke).1
    });
    let drives = futures::future::join_all(pollers).await;
    drives.into_iter().fold(Drive::default(), |mut all, d| {
        all.invocations += d.invocations;
        all.messages += d.messages;
        all.returned += d.returned;
        all
    })
}

/// One batch as the mapping gathers it; `None` once the queue has nothing visible and nothing
/// in flight (deleted or not yet) and nobody is filling it.
async fn gather_batch(
    sqs: &aws_sdk_sqs::Client,
    queues: &Queues,
    batch_size: usize,
    window: Duration,
    filling: &std::sync::atomic::AtomicBool,
) -> Option<Vec<aws_sdk_sqs::types::Message>> {
    loop {
        let mut messages = Vec::new();
        let opened = std::time::Instant::now();
        loop {
            let want = (batch_size - messages.len()).min(10) as i32;
            let out = sqs
                .receive_message()
                .queue_url(&queues.url)
                .max_number_of_messages(want)
                .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
                .send()
                .await
                .unwrap();
            let got = out.messages().len();
            messages.extend(out.messages().iter().cloned());
            if got == 0 || messages.len() >= batch_size || opened.elapsed() >= window {
                break;
            }
        }
        if !messages.is_empty() {
            return Some(messages);
        }
        if !filling.load(std::sync::atomic::Ordering::SeqCst)
            && queue_depth(sqs, &queues.url).await == (0, 0)
        {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn delete_messages(sqs: aws_sdk_sqs::Client, url: String, handles: Vec<String>) {
    for chunk in handles.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, handle)| {
                aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(handle)
                    .build()
                    .unwrap()
            })
            .collect();
        let out = sqs
            .delete_message_batch()
            .queue_url(&url)
            .set_entries(Some(entries))
            .send()
            .await
            .unwrap();
        assert!(out.failed().is_empty(), "{:?}", out.failed());
    }
}

/// The configuration of a fanning-out function whose queue is `url`.
pub fn fanout_config(url: &str, workers: u32) -> Config {
    Config {
        fanout: Some(iot_audit_remediator::config::FanoutConfig {
            queue_url: url.to_owned(),
            inline_max_findings: 0,
            workers,
        }),
        ..test_config()
    }
}
