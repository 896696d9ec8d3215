//! The engine: what happens to one in-scope finding ([`remediate`]: the calls, the choice
//! among the domain's decisions, and the finding's report, in one file), and to a fan-out job
//! ([`remediate_job`]: its audit finding first). What both doors share to run many of them: the
//! bounded [`Pool`] with its panic guard, the deadline [`Cutoff`], and the context [`App`].

mod context;
mod cutoff;
mod pool;
mod remediate;
mod rollback;
mod scopes;
mod verify;

pub use context::{App, SdkClients};
pub use cutoff::{now_ms, Cutoff};
pub use pool::Pool;
pub use remediate::remediate;
pub use rollback::{roll_back, RollbackContext};
pub use scopes::{Placed, ScopeError};
pub use verify::remediate_job;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;
