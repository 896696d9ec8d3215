//! The local endpoint (`emulator/iot_emulator.py`: moto's server plus the Device Defender audit
//! route and fault injection) as a child process, one per test; its control API; and the real
//! SDK clients pointed at it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use aws_sdk_iot::config::retry::RetryConfig;
use aws_sdk_iot::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_iot::Client;
use iot_audit_remediator::aws::{with_call_policy, MAX_ATTEMPTS};
use serde_json::{json, Value};

use super::fixtures::{project_dir, CHECK};

/// The account moto puts every request in whose access key it did not issue itself (the
/// tests' `testing` keys): the function's own account in the tests.
pub const DEFAULT_ACCOUNT: &str = "123456789012";

pub struct Emulator {
    pub url: String,
    child: Child,
    /// Held open: the emulator exits when it reaches EOF, so a crashed test leaks nothing.
    _stdin: ChildStdin,
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

    // --- SDK clients ----------------------------------------------------------------------

    /// The real SDK client pointed at the emulator, with the function's retry policy; the
    /// backoff is shortened so fault tests do not sleep for seconds.
    pub fn client(&self) -> Client {
        self.client_in("us-east-1")
    }

    /// As [`Emulator::client`], in `region` (moto keeps each region's policies apart).
    pub fn client_in(&self, region: &str) -> Client {
        Client::from_conf(self.client_config(region).build())
    }

    /// The process's own configuration as `aws_config` loads it in Lambda, pointed at the
    /// emulator with the tests' keys (account 123456789012), in us-east-1.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(&self.url)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
            .load()
            .await
    }

    /// The real SDK client of `account` in `region`, signing with credentials from moto's STS
    /// (`AssumeRole` of `arn:aws:iam::<account>:role/member`, asked with the tests' keys by
    /// aws-config's own provider): its calls land in that account, as a member account's do.
    pub async fn member_client(&self, account: &str, region: &str) -> Client {
        let base = self.sdk_config().await;
        let role = format!("arn:aws:iam::{account}:role/member");
        let provider = aws_config::sts::AssumeRoleProvider::builder(role)
            .session_name("tests")
            .configure(&base)
            .build()
            .await;
        Client::from_conf(
            self.client_config(region)
                .credentials_provider(provider)
                .build(),
        )
    }

    /// As [`Emulator::client`], with short timeouts so stall tests run in seconds.
    pub fn client_with_timeouts(&self, attempt: Duration, operation: Duration) -> Client {
        let timeouts = aws_sdk_iot::config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(1))
            .operation_attempt_timeout(attempt)
            .operation_timeout(operation)
            .build();
        Client::from_conf(
            self.client_config("us-east-1")
                .timeout_config(timeouts)
                .build(),
        )
    }

    fn client_config(&self, region: &str) -> aws_sdk_iot::config::Builder {
        let config = aws_sdk_iot::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .endpoint_url(&self.url)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"));
        with_call_policy(config).retry_config(
            RetryConfig::standard()
                .with_max_attempts(MAX_ATTEMPTS)
                .with_initial_backoff(Duration::from_millis(20))
                .with_max_backoff(Duration::from_millis(200)),
        )
    }

    /// The real SNS client pointed at the emulator (moto serves SNS on the same port, and
    /// delivers to SQS subscriptions: how tests read notifications).
    pub fn sns(&self) -> aws_sdk_sns::Client {
        let config = aws_sdk_sns::config::Builder::new()
            .behavior_version(aws_sdk_sns::config::BehaviorVersion::latest())
            .region(aws_sdk_sns::config::Region::new("us-east-1"))
            .endpoint_url(&self.url)
            .credentials_provider(aws_sdk_sns::config::Credentials::new(
                "testing", "testing", None, None, "tests",
            ))
            .build();
        aws_sdk_sns::Client::from_conf(config)
    }

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

    /// The environment under which the built binary reaches this emulator, as Lambda would
    /// set it (region, credentials) plus the endpoint; unpaced, as [`super::test_config`].
    pub fn function_env(&self) -> [(&'static str, String); 5] {
        [
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ENDPOINT_URL", self.url.clone()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("API_CALLS_PER_SECOND", "0".into()),
        ]
    }

    // --- The control API (`/_emulator/...`) ------------------------------------------------

    /// One request to the control API, over a fresh connection.
    pub fn control(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let (head, body) = http(
            self.url.trim_start_matches("http://"),
            method,
            path,
            body.as_bytes(),
        );
        assert!(
            head.starts_with("HTTP/1.1 2") || head.starts_with("HTTP/1.0 2"),
            "{method} {path}: {head}\n{body}"
        );
        serde_json::from_str(&body).unwrap_or(Value::Null)
    }

    /// Findings of the audit of [`DEFAULT_ACCOUNT`] in `us-east-1`.
    pub fn seed_findings(&self, findings: Vec<Value>) {
        self.seed_findings_in(DEFAULT_ACCOUNT, "us-east-1", findings);
    }

    /// Findings of the audit of `account` in `region`: the emulator keeps findings per account
    /// and region, as AWS does, and shows them only to requests landing there.
    pub fn seed_findings_in(&self, account: &str, region: &str, findings: Vec<Value>) {
        self.control(
            "POST",
            "/_emulator/findings",
            Some(json!({ "account": account, "region": region, "findings": findings })),
        );
    }

    /// `count` findings for policies `<prefix>00000`, `<prefix>00001`, ... of
    /// [`DEFAULT_ACCOUNT`] in `us-east-1`.
    pub fn generate_findings(&self, task: &str, prefix: &str, count: usize) {
        self.generate_findings_in(DEFAULT_ACCOUNT, "us-east-1", task, prefix, count);
    }

    /// As [`Emulator::generate_findings`], for the audit of `account` in `region`.
    pub fn generate_findings_in(
        &self,
        account: &str,
        region: &str,
        task: &str,
        prefix: &str,
        count: usize,
    ) {
        self.control(
            "POST",
            "/_emulator/findings",
            Some(json!({"account": account, "region": region,
                "generate": {"taskId": task, "checkName": CHECK, "policyNamePrefix": prefix,
                    "count": count, "versionId": "1", "start": 0}})),
        );
    }

    pub fn faults(&self, faults: Value) {
        self.control("POST", "/_emulator/faults", Some(faults));
    }

    // --- The request log --------------------------------------------------------------------

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

    /// Write calls in the request log (policy versions and audit suppressions), as
    /// `Operation policy`.
    pub fn writes(&self) -> Vec<String> {
        self.requests()
            .iter()
            .filter(|r| {
                matches!(
                    r["operation"].as_str(),
                    Some(
                        "CreatePolicyVersion"
                            | "DeletePolicyVersion"
                            | "SetDefaultPolicyVersion"
                            | "CreateAuditSuppression"
                            | "UpdateAuditSuppression"
                    )
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

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request to `addr` (`host:port`) over a fresh connection, closed after the
/// answer: (status line and headers, body). A peer that hangs fails the test after two minutes
/// instead of hanging it.
pub fn http(addr: &str, method: &str, path: &str, body: &[u8]) -> (String, String) {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(body).unwrap();
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .unwrap_or_else(|e| panic!("{method} {path} on {addr}: {e}"));
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{method} {path} on {addr}: no HTTP answer: {response:?}"));
    (head.to_owned(), body.to_owned())
}

/// From the request log (`GET /_emulator/requests`): requests per operation, and how many were
/// throttled (injected or by the rate cap).
pub fn calls_and_throttles(log: &Value) -> (BTreeMap<String, u64>, u64) {
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
