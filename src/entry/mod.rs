//! The Lambda doors: one dispatch on the event's kind, the SNS door ([`sns`]: audit records),
//! the SQS door ([`sqs`]: fan-out job batches) and the rollback door ([`rollback`]); the
//! invocation's answer and error, its notifications, and its metrics line.

mod notices;
pub mod rollback;
pub mod sns;
pub mod sqs;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;
use thiserror::Error;

use crate::aws::Iot;
use crate::domain::{event_kind, EventKind};
use crate::engine::{App, Cutoff};
use crate::report::{account_emf, emf_line, Counts, JobsReport, Mode, Report, Totals};

pub use sns::Incomplete;

/// What an invocation returns: the audit report for an SNS event, the partial batch response
/// (with counts) for a batch of fan-out jobs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Response {
    Audit(Report),
    Jobs(JobsReport),
}

/// Why an invocation fails as a whole.
#[derive(Debug, Error)]
pub enum InvocationError {
    #[error(transparent)]
    Incomplete(#[from] Incomplete),
    /// Lambda delivers every message of the batch again; the jobs already done cost a read.
    #[error(
        "{0} SQS records have no messageId and cannot be named in batchItemFailures; the whole \
         batch fails so that none is lost"
    )]
    UnnamedRecords(usize),
}

/// Handles one Lambda event of any kind: SNS (the audit), SQS (fan-out jobs) or a rollback,
/// and writes the invocation's metrics (one EMF object on its own stdout line).
pub async fn handle<P: Iot>(
    app: &Arc<App<P>>,
    event: &Value,
    cutoff: Cutoff,
) -> Result<Response, InvocationError> {
    let kind = event_kind(event);
    let result = match kind {
        EventKind::Sns => sns::handle_event(app, event, cutoff).await,
        EventKind::Rollback => rollback::handle_rollback(app, event, cutoff).await,
        EventKind::SqsJobs => {
            let records = event
                .get("Records")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let report = sqs::handle_jobs(app, records, cutoff).await;
            let counts = Counts {
                rejected_records: report.rejected as u64,
                notification_errors: report.notification_errors,
                ..Counts::from_totals(&report.totals)
            };
            emit_metrics(app, Mode::Jobs, counts, &report.totals_by_account());
            if report.unnamed > 0 {
                return Err(InvocationError::UnnamedRecords(report.unnamed));
            }
            return Ok(Response::Jobs(report));
        }
    };
    let report = match &result {
        Ok(report) => report,
        Err(incomplete) => &incomplete.report,
    };
    let counts = Counts {
        rejected_records: report.record_totals.rejected as u64,
        notification_errors: report.notification_errors,
        ..Counts::from_totals(&report.totals)
    };
    let mode = if kind == EventKind::Rollback {
        Mode::Rollback
    } else {
        Mode::Audit
    };
    emit_metrics(app, mode, counts, &report.totals_by_account());
    Ok(Response::Audit(result?))
}

/// Prints the EMF objects, each as a raw line of its own, never through the log formatter, so
/// that CloudWatch reads them as metrics whatever `AWS_LAMBDA_LOG_FORMAT` is: the invocation's,
/// then one per account whose findings it worked on (SPEC §11).
fn emit_metrics<P>(app: &App<P>, mode: Mode, counts: Counts, accounts: &BTreeMap<String, Totals>) {
    let counts = Counts {
        throttled: app.throttles.take(),
        ..counts
    };
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let namespace = &app.config.metrics_namespace;
    // `println!`, not a raw write: the test harness captures it (property tests invoke the
    // handler thousands of times). It would panic only on a closed stdout, and in Lambda that
    // means the runtime that reads it is gone already.
    println!("{}", emf_line(namespace, mode, &counts, now_ms));
    for (account, totals) in accounts {
        let counts = Counts::from_totals(totals);
        println!("{}", account_emf(namespace, mode, account, &counts, now_ms));
    }
}

impl From<InvocationError> for lambda_runtime::Diagnostic {
    fn from(e: InvocationError) -> Self {
        let error_type = match &e {
            InvocationError::Incomplete(_) => "RemediationIncomplete",
            InvocationError::UnnamedRecords(_) => "UnnamedSqsRecords",
        };
        Self {
            error_type: error_type.into(),
            error_message: e.to_string(),
        }
    }
}
