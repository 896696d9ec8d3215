//! The applications of other accounts and regions (SPEC §11): one per account and region for
//! the life of the process, each with its own IoT port (and so its own pacer: quotas are per
//! account and region) and the restrictive document of its partition; the queue, the topic,
//! the configuration and the throttle count are the function's own, shared.

use std::sync::Arc;

use thiserror::Error;

use crate::domain::{
    place, session_name, DocumentError, Foreign, Home, Partition, Placement, RestrictivePolicy,
    Scope,
};

use super::context::{App, Scopes};

/// Why an audit has no application to be worked with.
#[derive(Debug, Error)]
pub enum ScopeError {
    /// Bad input, or a deployment that does not serve that account: not retried.
    #[error(transparent)]
    Foreign(#[from] Foreign),
    #[error("the restrictive document does not render for {0:?}: {1}")]
    Document(Partition, DocumentError),
}

impl<P> App<P> {
    /// The account and region this application's calls land in, when known.
    pub fn scope(&self) -> Option<&Scope> {
        self.scope
            .as_ref()
            .or_else(|| self.home.get().map(|home| &home.scope))
    }
}

impl<P: Send + Sync + 'static> App<P> {
    /// The application an audit of `account_id` in `region` is worked with: this one for the
    /// function's own account and region (and whenever the function's home is not known, as
    /// in tests that build no scopes), another one otherwise. An audit of another account
    /// without `MEMBER_ROLE_NAME` is refused, before any call.
    pub async fn for_audit(
        self: &Arc<Self>,
        account_id: Option<&str>,
        region: Option<&str>,
        task_id: &str,
    ) -> Result<Arc<App<P>>, ScopeError> {
        let Some(home) = self.home.get() else {
            return Ok(Arc::clone(self));
        };
        let role = self.config.member.as_ref().map(|m| m.role_name.as_str());
        let placement = place(home, account_id, region, role)?;
        let Some(scopes) = self
            .scopes
            .as_ref()
            .filter(|_| placement.scope != home.scope)
        else {
            return Ok(Arc::clone(self));
        };
        let mut apps = scopes.apps.lock().await;
        if let Some(app) = apps.get(&placement.scope) {
            return Ok(Arc::clone(app));
        }
        let app = Arc::new(self.scoped(home, &placement, task_id, scopes).await?);
        apps.insert(placement.scope.clone(), Arc::clone(&app));
        Ok(app)
    }

    async fn scoped(
        &self,
        home: &Home,
        placement: &Placement,
        task_id: &str,
        scopes: &Scopes<P>,
    ) -> Result<App<P>, ScopeError> {
        let session = session_name(&home.function_name, task_id);
        let iot = (scopes.connect)(placement.clone(), session).await;
        let partition = Partition::of_region(&placement.scope.region);
        let restrictive = RestrictivePolicy::for_partition(partition)
            .map_err(|e| ScopeError::Document(partition, e))?;
        Ok(App {
            scope: Some(placement.scope.clone()),
            queue: self.queue.clone(),
            notifier: self.notifier.clone(),
            throttles: self.throttles.clone(),
            ..App::new(iot, self.config.clone(), restrictive)
        })
    }
}
