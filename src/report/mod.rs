//! What the function returns and logs: finding outcomes and their counts, the audit report of an
//! SNS invocation, the partial batch response of a job batch, the invocation's metrics object.
//! [`Totals::file`] logs and counts a finished finding for both doors.

mod audit;
mod batch;
mod finding;
mod metrics;

pub use audit::{
    AuditReport, CheckHandling, CheckReport, RecordOutcome, RecordReport, RecordSkipReason,
    RecordTotals, Report,
};
pub use batch::JobsReport;
pub use finding::{FindingReport, Outcome, Totals};
pub use metrics::{emf, emf_line, Counts, Mode, DIMENSION, METRIC_NAMES, UNIT};
