//! Pure code only: no AWS SDK, no tokio, no I/O. What the messages on the topic and the queue
//! are, which findings are in scope, every decision for one policy, version-id arithmetic, the
//! job codec, partitions and the restrictive document. Everything here is plain data in, plain
//! data out.

mod decide;
mod finding;
mod job;
mod message;
mod partition;
mod restrictive;
mod rollback;
mod scope;
mod screen;
mod send;
mod suppression;
mod verify;
mod versions;

pub use decide::{
    conflict_end, decide, leftover_to_delete, replaced_deleted, slot_freed, slot_to_free,
    AfterCreate, Conflict, ConflictEnd, Decision, Deleted, PolicyState, ReplacedDelete,
};
pub use finding::{Finding, PolicyVersionRef, Target, IOT_POLICY};
pub use job::{Job, JobError};
pub use message::*;
pub use partition::Partition;
pub use restrictive::{DocumentError, RestrictivePolicy, MAX_DOCUMENT_CHARS, RESTRICTIVE_DOCUMENT};
pub use rollback::{
    civil_date, decide_rollback, parse_rollback, restorable, suppression_description,
    RollbackDecision, RollbackError, RollbackRequest,
};
pub use scope::{
    audit_account, place, session_name, topic_region, AccountMismatch, Credentials, Foreign, Home,
    Placement, Scope,
};
pub use screen::{route, Route, Screen, Screener, SkipReason};
pub use send::{sort_answer, EntryResult, FailedEntry};
pub use suppression::{Suppression, Suppressions};
pub use verify::{verify_job, DescribedFinding, Unverified};
pub use versions::{
    compare_version_ids, duplicate_candidates, oldest_non_default, others_created_since,
    same_version, VersionInfo,
};
