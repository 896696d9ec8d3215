//! What the function returns, logs and notifies: finding outcomes and their counts, the audit
//! report of an SNS invocation, the partial batch response of a job batch, the change
//! notification and the invocation's metrics object (both pure: the publish call and the
//! stdout line are the doors'). [`Totals::file`] logs and counts a finished finding for both
//! doors.

mod audit;
mod batch;
mod finding;
mod metrics;
mod notification;

pub use audit::{
    AuditReport, CheckHandling, CheckReport, RecordOutcome, RecordReport, RecordSkipReason,
    RecordTotals, Report,
};
pub use batch::{JobsReport, ScopeTotals};
pub use finding::{FindingReport, Outcome, Totals};
pub use metrics::{
    account_emf, emf, emf_line, Counts, Mode, ACCOUNT_DIMENSION, DIMENSION, INVOCATION_ONLY,
    METRIC_NAMES, UNIT,
};
pub use notification::{
    notification, reinstall_command, rollback_event, shell_quote, Entry, Notification,
    NotificationInput, NotificationKind, NotificationOutcome, LOG_FIELD_PREFIX, SAFETY_MARGIN,
    SNS_MESSAGE_LIMIT, SUBJECT_LIMIT, UNDO_REASON,
};
