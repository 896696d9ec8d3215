//! The built binary under a Lambda Runtime API of the test's own (loopback), against the local
//! endpoint, with `AWS_LAMBDA_LOG_FORMAT=JSON`: one EMF object per invocation on its own stdout
//! line, following the format, with counts equal to the answer's totals, in each mode; and one
//! per account whose findings it worked on (SPEC §11), here the function's own.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use serde_json::Value;

const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:iot-audit-remediator";

/// One HTTP/1.1 request on a kept-alive connection: (request line, body).
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<(String, Vec<u8>)> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let (mut length, mut chunked) = (0, false);
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end().to_ascii_lowercase();
        if header.is_empty() {
            break;
        }
        if let Some(v) = header.strip_prefix("content-length:") {
            length = v.trim().parse().ok()?;
        }
        chunked |= header == "transfer-encoding: chunked";
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    while chunked {
        let mut size = String::new();
        reader.read_line(&mut size).ok()?;
        let size = usize::from_str_radix(size.trim(), 16).ok()?;
        let mut chunk = vec![0; size + 2];
        reader.read_exact(&mut chunk).ok()?;
        body.extend_from_slice(&chunk[..size]);
        chunked = size > 0;
    }
    Some((line.trim_end().to_owned(), body))
}

fn answer(stream: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) {
    let mut head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
}

/// Serves `events` one by one and sends back what the function answered for each (the body of
/// its `/response` or `/error` post). After the last one, `next` is never answered. Each
/// connection has its own thread: the runtime's client may open a new one while an idle one is
/// still open (it does so under load), and a server reading only the first would never see it.
fn runtime_api(listener: TcpListener, events: Vec<Value>, answers: mpsc::Sender<Value>) {
    let events = Arc::new(Mutex::new(events.into_iter().enumerate()));
    for stream in listener.incoming() {
        let (events, answers) = (Arc::clone(&events), answers.clone());
        let stream = stream.unwrap();
        std::thread::spawn(move || serve_connection(stream, &events, &answers));
    }
}

type Events = Mutex<std::iter::Enumerate<std::vec::IntoIter<Value>>>;

fn serve_connection(mut stream: TcpStream, events: &Events, answers: &mpsc::Sender<Value>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    while let Some((line, body)) = read_request(&mut reader) {
        if !line.contains("/runtime/invocation/next") {
            answer(&mut stream, "202 Accepted", &[], b"{}");
            // The test may have finished (and dropped the receiver) by now.
            let _ = answers.send(serde_json::from_slice(&body).unwrap());
            continue;
        }
        let Some((i, event)) = events.lock().unwrap().next() else {
            return;
        };
        let deadline =
            SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + Duration::from_secs(300);
        let headers = [
            ("Lambda-Runtime-Aws-Request-Id", format!("request-{i}")),
            (
                "Lambda-Runtime-Deadline-Ms",
                deadline.as_millis().to_string(),
            ),
            (
                "Lambda-Runtime-Invoked-Function-Arn",
                FUNCTION_ARN.to_owned(),
            ),
            ("Content-Type", "application/json".to_owned()),
        ];
        answer(
            &mut stream,
            "200 OK",
            &headers,
            event.to_string().as_bytes(),
        );
    }
}

/// The EMF objects and every other line the function printed on stdout.
fn split_stdout(lines: &[String]) -> (Vec<Value>, Vec<Value>) {
    let parsed: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    parsed.into_iter().partition(|v| v.get("_aws").is_some())
}

fn assert_emf(emf: &Value, mode: &str, totals: &Value, rejected: &Value) {
    let declared = &emf["_aws"]["CloudWatchMetrics"];
    assert_eq!(declared.as_array().unwrap().len(), 1, "{emf}");
    assert_eq!(declared[0]["Namespace"], "IotAuditRemediator");
    assert_eq!(declared[0]["Dimensions"], serde_json::json!([["Mode"]]));
    assert!(emf["_aws"]["Timestamp"].is_u64(), "{emf}");
    let metrics = declared[0]["Metrics"].as_array().unwrap();
    assert_eq!(metrics.len(), 12, "{emf}");
    for metric in metrics {
        assert_eq!(metric["Unit"], "Count");
        let name = metric["Name"].as_str().unwrap();
        assert!(emf[name].is_u64(), "{name} present: {emf}");
    }
    assert_eq!(emf["Mode"], mode);
    for (metric, total) in [
        ("Findings", "findings"),
        ("Remediated", "remediated"),
        ("WouldRemediate", "wouldRemediate"),
        ("Skipped", "skipped"),
        ("Failed", "failed"),
        ("Deferred", "deferred"),
        ("Enqueued", "enqueued"),
        ("RolledBack", "rolledBack"),
    ] {
        assert_eq!(
            emf[metric], totals[total],
            "{metric} in {mode}: {emf} vs {totals}"
        );
    }
    assert_eq!(&emf["RejectedRecords"], rejected, "{emf}");
}

#[test]
fn each_invocation_writes_one_emf_line_whose_counts_are_the_answers() {
    let emu = Emulator::start();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(emu.seed_demo());
    let events: Vec<Value> = [
        "audit-non-compliant.json",
        "rollback.json",
        "sqs-jobs.json",
        "not-json.json",
    ]
    .iter()
    .map(|name| load_event(name))
    .collect();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let (answers, answered) = mpsc::channel();
    std::thread::spawn(move || runtime_api(listener, events, answers));

    let mut function = Command::new(env!("CARGO_BIN_EXE_iot-audit-remediator"))
        .env_clear()
        .envs(emu.function_env())
        .envs([
            ("AWS_LAMBDA_RUNTIME_API", address.to_string()),
            ("AWS_LAMBDA_FUNCTION_NAME", "iot-audit-remediator".into()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".into()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
            ("AWS_LAMBDA_LOG_FORMAT", "JSON".into()),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(function.stdout.take().unwrap());
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let got: Vec<Value> = (0..4)
        .map(|_| answered.recv_timeout(Duration::from_secs(120)).unwrap())
        .collect();
    // The last metrics line is written before the last answer: give stdout a moment.
    std::thread::sleep(Duration::from_millis(500));
    function.kill().unwrap();
    function.wait().unwrap();
    let printed: Vec<String> = lines.try_iter().filter(|l| !l.trim().is_empty()).collect();
    let (objects, logs) = split_stdout(&printed);
    let (emf, accounts): (Vec<Value>, Vec<Value>) = objects
        .into_iter()
        .partition(|v| v.get("Account").is_none());
    assert_eq!(emf.len(), 4, "one object per invocation: {emf:#?}");
    assert!(
        logs.iter()
            .all(|l| l.get("level").is_some() && l.get("_aws").is_none()),
        "every other line is a JSON log line"
    );

    let [audit, rollback, jobs, bad] = &got[..] else {
        unreachable!()
    };
    assert_eq!(audit["totals"]["remediated"], 1, "{audit:#}");
    assert_emf(
        &emf[0],
        "audit",
        &audit["totals"],
        &audit["recordTotals"]["rejected"],
    );
    assert_eq!(rollback["totals"]["rolledBack"], 1, "{rollback:#}");
    assert_emf(
        &emf[1],
        "rollback",
        &rollback["totals"],
        &rollback["recordTotals"]["rejected"],
    );
    assert_emf(&emf[2], "jobs", &jobs["totals"], &jobs["rejected"]);
    assert_eq!(bad["recordTotals"]["rejected"], 1, "{bad:#}");
    assert_emf(
        &emf[3],
        "audit",
        &bad["totals"],
        &bad["recordTotals"]["rejected"],
    );
    // The rejected record worked in no account: three account objects, in invocation order.
    assert_eq!(accounts.len(), 3, "{accounts:#?}");
    for (object, (mode, totals)) in accounts.iter().zip([
        ("audit", &audit["totals"]),
        ("rollback", &rollback["totals"]),
        ("jobs", &jobs["totals"]),
    ]) {
        assert_account_emf(object, mode, totals);
    }
}

fn assert_account_emf(emf: &Value, mode: &str, totals: &Value) {
    let declared = &emf["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(
        declared["Dimensions"],
        serde_json::json!([["Mode", "Account"]])
    );
    assert_eq!(
        (emf["Mode"].as_str(), emf["Account"].as_str()),
        (Some(mode), Some("123456789012"))
    );
    assert_eq!(declared["Metrics"].as_array().unwrap().len(), 9, "{emf}");
    for (metric, total) in [
        ("Findings", "findings"),
        ("Remediated", "remediated"),
        ("RolledBack", "rolledBack"),
    ] {
        assert_eq!(emf[metric], totals[total], "{metric} in {mode}: {emf}");
    }
    assert!(emf.get("Throttled").is_none(), "{emf}");
}
