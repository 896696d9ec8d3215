//! The Lambda doors: one dispatch on the event's kind, the SNS door ([`sns`]: audit records) and
//! the SQS door ([`sqs`]: fan-out job batches), and the invocation's answer and error.

pub mod rollback;
pub mod sns;
pub mod sqs;

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use thiserror::Error;

use crate::aws::Iot;
use crate::domain::{event_kind, EventKind};
use crate::engine::{App, Cutoff};
use crate::report::{JobsReport, Report};

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

/// Handles one Lambda event of any kind: SNS (the audit), SQS (fan-out jobs) or a rollback.
pub async fn handle<P: Iot>(
    app: &Arc<App<P>>,
    event: &Value,
    cutoff: Cutoff,
) -> Result<Response, InvocationError> {
    match event_kind(event) {
        EventKind::Sns => Ok(Response::Audit(
            sns::handle_event(app, event, cutoff).await?,
        )),
        EventKind::Rollback => Ok(Response::Audit(
            rollback::handle_rollback(app, event, cutoff).await?,
        )),
        EventKind::SqsJobs => {
            let records = event
                .get("Records")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let report = sqs::handle_jobs(app, records, cutoff).await;
            if report.unnamed > 0 {
                return Err(InvocationError::UnnamedRecords(report.unnamed));
            }
            Ok(Response::Jobs(report))
        }
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
