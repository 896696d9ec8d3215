//! iot-audit-remediator: closes AWS IoT Device Defender `IOT_POLICY_OVERLY_PERMISSIVE_CHECK`
//! findings by installing a restrictive default policy version (see `../shared/SPEC.md`).
//!
//! Laid out by what each part owns. Dependencies point one way: entry → engine → domain,
//! report, config and the [`aws::Iot`] port (the doors also use the findings pager and the
//! queue sender of [`aws`]); aws → domain; config → domain and [`aws::Operation`]; domain →
//! nothing. No module imports one that imports it back.
//! - [`entry`]: the Lambda doors, one dispatch on the event's kind: SNS, SQS and rollback;
//!   each record's or batch's notification, and the invocation's metrics line;
//! - [`engine`]: what happens to one in-scope finding, and the pool, cutoff and context both
//!   doors share;
//! - [`domain`]: pure code: messages, screening, every decision, version ids, the job codec,
//!   the restrictive document;
//! - [`report`]: outcomes, the finding, audit and batch reports, the notification message and
//!   the EMF metrics object;
//! - [`aws`]: the thin AWS edge: clients, the throttle counter, the port and its SDK
//!   implementation, the pacer, the queue sender, the SNS publisher;
//! - [`config`]: the environment.

// A panic in a Lambda loses the invocation's work: library code handles every case instead.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod aws;
pub mod config;
pub mod domain;
pub mod engine;
pub mod entry;
pub mod report;
