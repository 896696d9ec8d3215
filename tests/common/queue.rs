//! The fan-out queue (moto's SQS behind the emulator's endpoint): job queues with their
//! dead-letter queue, their depth and contents, and Lambda's SQS event source mapping simulated
//! against the real handler.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName as A;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use iot_audit_remediator::aws::SdkIot;
use iot_audit_remediator::engine::{App, Cutoff};
use iot_audit_remediator::entry::{handle, Response};
use serde_json::{json, Value};

use super::emulator::Emulator;

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
pub fn sqs_event(messages: &[Message], queue_arn: &str) -> Value {
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
/// application (each a Lambda process with its own pacer) working at once: gather up to
/// `batch_size` messages, invoke the handler, delete what it did not name in
/// `batchItemFailures`. Named messages come back after the visibility timeout. Ends when the
/// queue has nothing visible and nothing in flight.
pub async fn drive_queue(
    sqs: &aws_sdk_sqs::Client,
    queues: &Queues,
    workers: Vec<Arc<App<SdkIot>>>,
    batch_size: usize,
) -> Drive {
    let filling = AtomicBool::new(false);
    drive_queue_with(sqs, queues, workers, batch_size, Duration::ZERO, &filling).await
}

/// As [`drive_queue`], gathering a batch for up to `window` (the mapping's batching window;
/// SQS hands out at most 10 messages per receive), and not ending while `filling` is set.
/// Like the mapping, each poller gathers its next batch while the function works on the
/// current one, and deletes done messages without holding up the next invocation.
pub async fn drive_queue_with(
    sqs: &aws_sdk_sqs::Client,
    queues: &Queues,
    workers: Vec<Arc<App<SdkIot>>>,
    batch_size: usize,
    window: Duration,
    filling: &AtomicBool,
) -> Drive {
    let pollers = workers.into_iter().map(|app| async move {
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
                let messages: Vec<Message> = messages;
                drive.invocations += 1;
                drive.messages += messages.len();
                let event = sqs_event(&messages, &queues.arn);
                let failures: Vec<String> = match handle(&app, &event, Cutoff::NONE).await {
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
    filling: &AtomicBool,
) -> Option<Vec<Message>> {
    loop {
        let mut messages = Vec::new();
        let opened = Instant::now();
        loop {
            let want = (batch_size - messages.len()).min(10) as i32;
            let out = sqs
                .receive_message()
                .queue_url(&queues.url)
                .max_number_of_messages(want)
                .message_system_attribute_names(MessageSystemAttributeName::All)
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
        if !filling.load(Ordering::SeqCst) && queue_depth(sqs, &queues.url).await == (0, 0) {
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
                DeleteMessageBatchRequestEntry::builder()
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

/// A topic with a queue subscribed to it; returns (topic ARN, queue URL).
pub async fn topic_with_inbox(emu: &Emulator) -> (String, String) {
    let sns = emu.sns();
    let sqs = emu.sqs();
    let topic = sns.create_topic().name("changes").send().await.unwrap();
    let topic = topic.topic_arn().unwrap().to_owned();
    let queues = create_queues(&sqs, "inbox", 5, 30).await;
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(&queues.arn)
        .send()
        .await
        .unwrap();
    (topic, queues.url)
}

/// The SNS envelopes that reached the inbox.
pub async fn received(emu: &Emulator, inbox: &str) -> Vec<Value> {
    drain_bodies(&emu.sqs(), inbox)
        .await
        .iter()
        .map(|body| serde_json::from_str(body).unwrap())
        .collect()
}
