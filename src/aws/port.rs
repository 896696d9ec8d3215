//! The narrow port the engine and the doors are generic over: one method per IoT call, plain
//! data in and out. [`super::SdkIot`] implements it on the SDK client; tests implement it in
//! memory. No decisions here: a method only reports what IoT answered.

use std::future::Future;

use crate::domain::{
    Deleted, DescribedFinding, Finding, PolicyVersionRef, Suppression, VersionInfo,
};

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

/// One page of `ListAuditSuppressions`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SuppressionsPage {
    pub suppressions: Vec<Suppression>,
    pub next_token: Option<String>,
}

/// Which findings `ListAuditFindings` returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listed {
    /// `listSuppressedFindings=false`: what the audit path works on.
    Unsuppressed,
    /// Suppressed ones included: a rollback undoes a change whatever was suppressed since.
    All,
}

/// The first page of a policy's targets: the blast radius of changing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Targets {
    pub count: usize,
    /// More than the page holds.
    pub more: bool,
}

/// A suppression to write: the check's finding for `policy`, until `expires_epoch_secs`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuppressionRequest<'a> {
    pub check_name: &'a str,
    pub policy: &'a PolicyVersionRef,
    pub expires_epoch_secs: i64,
    pub description: &'a str,
}

/// The IoT calls, each its own method. Futures are `Send` so that policies run on tasks.
pub trait Iot: Send + Sync + 'static {
    /// `ListAuditFindings` for one task and check, the largest page.
    fn list_findings(
        &self,
        task_id: &str,
        check_name: &str,
        listed: Listed,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<FindingsPage, IotError>> + Send;

    /// `DescribeAuditFinding`; `None` when no finding has that id.
    fn describe_finding(
        &self,
        finding_id: &str,
    ) -> impl Future<Output = Result<Option<DescribedFinding>, IotError>> + Send;

    /// `ListAuditSuppressions` of one check, the largest page.
    fn list_suppressions(
        &self,
        check_name: &str,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<SuppressionsPage, IotError>> + Send;

    /// `DescribeAuditSuppression` of the check's finding for `policy`: whether one exists.
    fn suppression_exists(
        &self,
        check_name: &str,
        policy: &PolicyVersionRef,
    ) -> impl Future<Output = Result<bool, IotError>> + Send;

    /// `CreateAuditSuppression`; `false` when one exists already (nothing was written).
    fn create_suppression(
        &self,
        request: &SuppressionRequest<'_>,
    ) -> impl Future<Output = Result<bool, IotError>> + Send;

    /// `UpdateAuditSuppression`: a new expiry and description for an existing one.
    fn update_suppression(
        &self,
        request: &SuppressionRequest<'_>,
    ) -> impl Future<Output = Result<(), IotError>> + Send;

    /// `ListTargetsForPolicy`, first page only (250).
    fn list_targets(&self, name: &str) -> impl Future<Output = Result<Targets, IotError>> + Send;

    /// `SetDefaultPolicyVersion`; `false` when the version does not exist.
    fn set_default_version(
        &self,
        name: &str,
        version_id: &str,
    ) -> impl Future<Output = Result<bool, IotError>> + Send;

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
