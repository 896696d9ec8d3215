//! The applications of other accounts and regions (SPEC §11): one per account and region for
//! the life of the process, each with its own IoT port (and so its own pacer: quotas are per
//! account and region) and the restrictive document of its partition; the queue, the topic,
//! the configuration and the throttle count are the function's own, shared.

use std::sync::Arc;

use thiserror::Error;

use crate::domain::{
    place, session_name, AccountMismatch, DocumentError, Foreign, Home, Partition, Placement,
    RestrictivePolicy, Scope,
};

use super::context::{App, Scopes};

/// Why an audit has no application to be worked with. Each is final (a retry would meet it
/// again); the message starts with the reason's code, as the report's `reason` shows it.
#[derive(Debug, Error)]
pub enum ScopeError {
    /// Bad input, or a deployment that does not serve that account.
    #[error("foreign_account: {0}")]
    Foreign(#[from] Foreign),
    #[error("account_mismatch: {0}")]
    Mismatch(#[from] AccountMismatch),
    /// Another account or region, and no way to make its clients (a wiring without them).
    #[error("foreign_account: this deployment works only in {0:?}, not in {1:?}")]
    NotServed(Scope, Scope),
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

    /// The account and region to report an audit under: this application's, or, when that is
    /// not known (no function ARN), the account the audit named and the configured region.
    pub fn reported<'a>(&'a self, named_account: Option<&'a str>) -> Placed<'a> {
        let scope = self.scope();
        Placed {
            account: scope.map(|s| s.account.as_str()).or(named_account),
            region: scope
                .map(|s| s.region.as_str())
                .or(self.config.region.as_deref()),
        }
    }
}

/// Where an audit was worked, as its report, log and notification name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placed<'a> {
    pub account: Option<&'a str>,
    pub region: Option<&'a str>,
}

impl Placed<'_> {
    /// The span the log lines of the audit (or of its rollback) are written in.
    pub fn span(self) -> tracing::Span {
        tracing::info_span!("audit", account = self.account, region = self.region)
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
        if placement.scope == home.scope {
            return Ok(Arc::clone(self));
        }
        let Some(scopes) = self.scopes.as_ref() else {
            return Err(ScopeError::NotServed(home.scope.clone(), placement.scope));
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
