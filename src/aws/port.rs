//! The narrow port the engine and the doors are generic over: one method per IoT call, plain
//! data in and out. [`super::SdkIot`] implements it on the SDK client; tests implement it in
//! memory. No decisions here: a method only reports what IoT answered.

use std::future::Future;

use crate::domain::{Deleted, Finding, VersionInfo};

use super::error::IotError;

/// A policy's default version as `GetPolicy` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyDefault {
    pub default_version_id: String,
    /// The document exactly as IoT returned it.
    pub document: String,
}

/// One page of `ListAuditFindings`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FindingsPage {
    pub findings: Vec<Finding>,
    /// As IoT sent it (absent or empty on the last page).
    pub next_token: Option<String>,
}

/// The IoT calls, each its own method. Futures are `Send` so that policies run on tasks.
pub trait Iot: Send + Sync + 'static {
    /// `ListAuditFindings` for one task and check, unsuppressed only, the largest page.
    fn list_findings(
        &self,
        task_id: &str,
        check_name: &str,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<FindingsPage, IotError>> + Send;

    /// `GetPolicy`; `None` when the policy does not exist.
    fn get_policy(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<PolicyDefault>, IotError>> + Send;

    /// `GetPolicyVersion`: the version's document (empty when IoT sent none); `None` when the
    /// version does not exist.
    fn get_policy_version(
        &self,
        name: &str,
        version_id: &str,
    ) -> impl Future<Output = Result<Option<String>, IotError>> + Send;

    /// `ListPolicyVersions`.
    fn list_policy_versions(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Vec<VersionInfo>, IotError>> + Send;

    /// `CreatePolicyVersion` with `setAsDefault=true`; the new version's id.
    fn create_default_version(
        &self,
        name: &str,
        document: &str,
    ) -> impl Future<Output = Result<String, IotError>> + Send;

    /// `DeletePolicyVersion`; gone already and refused (default or in use) are answers, not
    /// errors.
    fn delete_policy_version(
        &self,
        name: &str,
        version_id: &str,
    ) -> impl Future<Output = Result<Deleted, IotError>> + Send;
}
