//! Test harness, shared by the test binaries and the benchmarks (which include it with
//! `#[path]`), by concern:
//! - [`emulator`]: the local IoT (and SQS) endpoint as a child process, its control API and
//!   request log, and the real SDK clients pointed at it;
//! - [`fixtures`]: sample files, findings, policies, the one test configuration, the one way to
//!   build the application, and the end state SPEC §5 promises;
//! - [`queue`]: the fan-out queue and Lambda's SQS event source mapping, simulated.
// Each test binary uses a different part of the harness (and so of these re-exports).
#![allow(dead_code, unused_imports)]

mod emulator;
mod fixtures;
mod queue;

pub use emulator::*;
pub use fixtures::*;
pub use queue::*;
