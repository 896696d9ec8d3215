//! The bounded pool both doors run policies in, and the panic guard: each policy in its own task,
//! at most `MAX_CONCURRENCY` at once, so that a bug costs one policy, not the invocation.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::{Id, JoinError, JoinSet};
use tracing::Instrument;

use crate::aws::Iot;
use crate::domain::Target;
use crate::report::{FindingReport, Outcome};

use super::context::App;
use super::cutoff::Cutoff;
use super::remediate::remediate;

/// `T` tags each result with what the caller files it under (nothing for an audit, the SQS
/// message for a job). Tags stay here, outside the task, so that even a task that panicked
/// hands back its tag and its policy.
pub struct Pool<T> {
    slots: Arc<Semaphore>,
    workers: JoinSet<FindingReport>,
    running: HashMap<Id, (T, Target)>,
}

impl<T> Pool<T> {
    pub fn new(max_concurrency: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max_concurrency)),
            workers: JoinSet::new(),
            running: HashMap::new(),
        }
    }

    /// Waits for a free slot and starts remediating `target`. Past the cutoff it starts
    /// nothing and hands the finding back as deferred instead.
    pub async fn start<P: Iot>(
        &mut self,
        app: &Arc<App<P>>,
        tag: T,
        target: Target,
        cutoff: Cutoff,
    ) -> Option<(T, FindingReport)> {
        let app = Arc::clone(app);
        let work = move |target| async move { remediate(&app, target).await };
        self.start_with(tag, target, cutoff, work).await
    }

    /// As [`Pool::start`], with other work for the policy (a rollback).
    pub async fn start_with<F, Fut>(
        &mut self,
        tag: T,
        target: Target,
        cutoff: Cutoff,
        work: F,
    ) -> Option<(T, FindingReport)>
    where
        F: FnOnce(Target) -> Fut,
        Fut: Future<Output = FindingReport> + Send + 'static,
    {
        // The semaphore is never closed, so acquiring only waits for a free slot.
        let slot = self.slots.clone().acquire_owned().await.ok();
        // Checked after the wait for a slot, which can be long.
        if cutoff.passed() || slot.is_none() {
            return Some((tag, FindingReport::for_target(&target, Outcome::Deferred)));
        }
        let task = work(target.clone());
        // In the caller's span, so that the policy's log lines name its request, account and
        // region.
        let handle = self.workers.spawn(
            async move {
                let report = task.await;
                drop(slot);
                report
            }
            .in_current_span(),
        );
        self.running.insert(handle.id(), (tag, target));
        None
    }

    /// Hands over the results that are ready, without waiting.
    pub fn finished(&mut self, mut each: impl FnMut(T, FindingReport)) {
        while let Some(joined) = self.workers.try_join_next_with_id() {
            self.settle(joined, &mut each);
        }
    }

    /// Waits for every started policy and hands over its result.
    pub async fn rest(&mut self, mut each: impl FnMut(T, FindingReport)) {
        while let Some(joined) = self.workers.join_next_with_id().await {
            self.settle(joined, &mut each);
        }
    }

    fn settle(
        &mut self,
        joined: Result<(Id, FindingReport), JoinError>,
        each: &mut impl FnMut(T, FindingReport),
    ) {
        let (id, report) = match joined {
            Ok((id, report)) => (id, Ok(report)),
            Err(e) => (e.id(), Err(e)),
        };
        // Every task is registered under its id when it is spawned, before it can be joined.
        let Some((tag, target)) = self.running.remove(&id) else {
            tracing::error!(task = %id, "internal error: a policy task finished unregistered");
            return;
        };
        let report = report.unwrap_or_else(|e| FindingReport::for_target(&target, guard(&e)));
        each(tag, report);
    }
}

/// A task that did not return: a panic is that policy's failure. Nothing cancels a task, but
/// if something did, the policy is a failure too (and a retry handles it).
fn guard(e: &JoinError) -> Outcome {
    let error = if e.is_panic() {
        "internal error: the remediation panicked".to_owned()
    } else {
        format!("internal error: worker ended early: {e}")
    };
    Outcome::Failed { error }
}
