//! The port on the real IoT client: pace, call, convert. One SDK call per method.

use std::future::Future;

use aws_sdk_iot::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_iot::primitives::DateTime;
use aws_sdk_iot::types::{
    AuditFinding, AuditSuppression, PolicyVersionIdentifier, ResourceIdentifier,
};
use aws_sdk_iot::Client;

use crate::domain::{
    Deleted, DescribedFinding, Finding, PolicyVersionRef, Suppression, VersionInfo,
};

use super::error::{IotError, IotErrorKind};
use super::operation::Operation;
use super::pace::Pacer;
use super::port::{
    FindingsPage, Iot, Listed, PolicyDefault, SuppressionRequest, SuppressionsPage, Targets,
};

/// The largest page `ListAuditFindings`, `ListAuditSuppressions` and `ListTargetsForPolicy`
/// allow.
pub const MAX_PAGE_SIZE: i32 = 250;

/// The IoT client and the pacer every call of the process waits on.
#[derive(Debug)]
pub struct SdkIot {
    client: Client,
    pacer: Pacer,
}

impl SdkIot {
    pub fn new(client: Client, pacer: Pacer) -> Self {
        Self { client, pacer }
    }

    /// Waits for `operation`'s next slot, sends, and names the operation in the error.
    async fn call<T, E, R, Fut>(
        &self,
        operation: Operation,
        send: impl FnOnce() -> Fut,
    ) -> Result<T, IotError>
    where
        Fut: Future<Output = Result<T, SdkError<E, R>>>,
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        self.pacer.wait(operation).await;
        send().await.map_err(|e| IotError::from_sdk(operation, e))
    }
}

/// `Ok(None)` for an error of `kind`: an answer the caller expects, not a failure.
fn absent_when<T>(result: Result<T, IotError>, kind: IotErrorKind) -> Result<Option<T>, IotError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.kind == kind => Ok(None),
        Err(e) => Err(e),
    }
}

impl Iot for SdkIot {
    async fn list_findings(
        &self,
        task_id: &str,
        check_name: &str,
        listed: Listed,
        next_token: Option<String>,
    ) -> Result<FindingsPage, IotError> {
        // Absent: suppressed and unsuppressed alike.
        let only_unsuppressed = (listed == Listed::Unsuppressed).then_some(false);
        let out = self
            .call(Operation::ListAuditFindings, || {
                self.client
                    .list_audit_findings()
                    .task_id(task_id)
                    .check_name(check_name)
                    .set_list_suppressed_findings(only_unsuppressed)
                    .max_results(MAX_PAGE_SIZE)
                    .set_next_token(next_token)
                    .send()
            })
            .await?;
        Ok(FindingsPage {
            findings: out.findings().iter().map(finding).collect(),
            next_token: out.next_token().map(str::to_owned),
        })
    }

    async fn describe_finding(
        &self,
        finding_id: &str,
    ) -> Result<Option<DescribedFinding>, IotError> {
        let out = self
            .call(Operation::DescribeAuditFinding, || {
                self.client
                    .describe_audit_finding()
                    .finding_id(finding_id)
                    .send()
            })
            .await;
        Ok(absent_when(out, IotErrorKind::NotFound)?.map(|out| {
            let f = out.finding();
            DescribedFinding {
                check_name: f.and_then(|f| f.check_name()).map(str::to_owned),
                finding: f.map(finding).unwrap_or_default(),
            }
        }))
    }

    async fn list_suppressions(
        &self,
        check_name: &str,
        next_token: Option<String>,
    ) -> Result<SuppressionsPage, IotError> {
        let out = self
            .call(Operation::ListAuditSuppressions, || {
                self.client
                    .list_audit_suppressions()
                    .check_name(check_name)
                    .max_results(MAX_PAGE_SIZE)
                    .set_next_token(next_token)
                    .send()
            })
            .await?;
        Ok(SuppressionsPage {
            suppressions: out.suppressions().iter().filter_map(suppression).collect(),
            next_token: out.next_token().map(str::to_owned),
        })
    }

    async fn suppression_exists(
        &self,
        check_name: &str,
        policy: &PolicyVersionRef,
    ) -> Result<bool, IotError> {
        let out = self
            .call(Operation::DescribeAuditSuppression, || {
                self.client
                    .describe_audit_suppression()
                    .check_name(check_name)
                    .resource_identifier(resource(policy))
                    .send()
            })
            .await;
        Ok(absent_when(out, IotErrorKind::NotFound)?.is_some())
    }

    async fn create_suppression(&self, request: &SuppressionRequest<'_>) -> Result<bool, IotError> {
        // The SDK fills in the idempotency token (`clientRequestToken`) itself.
        let out = self
            .call(Operation::CreateAuditSuppression, || {
                self.client
                    .create_audit_suppression()
                    .check_name(request.check_name)
                    .resource_identifier(resource(request.policy))
                    .expiration_date(DateTime::from_secs(request.expires_epoch_secs))
                    .description(request.description)
                    .send()
            })
            .await;
        Ok(absent_when(out, IotErrorKind::AlreadyExists)?.is_some())
    }

    async fn update_suppression(&self, request: &SuppressionRequest<'_>) -> Result<(), IotError> {
        self.call(Operation::UpdateAuditSuppression, || {
            self.client
                .update_audit_suppression()
                .check_name(request.check_name)
                .resource_identifier(resource(request.policy))
                .expiration_date(DateTime::from_secs(request.expires_epoch_secs))
                .description(request.description)
                .send()
        })
        .await
        .map(|_| ())
    }

    async fn list_targets(&self, name: &str) -> Result<Targets, IotError> {
        let out = self
            .call(Operation::ListTargetsForPolicy, || {
                self.client
                    .list_targets_for_policy()
                    .policy_name(name)
                    .page_size(MAX_PAGE_SIZE)
                    .send()
            })
            .await?;
        Ok(Targets {
            count: out.targets().len(),
            more: out.next_marker().is_some_and(|m| !m.is_empty()),
        })
    }

    async fn set_default_version(&self, name: &str, version_id: &str) -> Result<bool, IotError> {
        let out = self
            .call(Operation::SetDefaultPolicyVersion, || {
                self.client
                    .set_default_policy_version()
                    .policy_name(name)
                    .policy_version_id(version_id)
                    .send()
            })
            .await;
        Ok(absent_when(out, IotErrorKind::NotFound)?.is_some())
    }

    async fn get_policy(&self, name: &str) -> Result<Option<PolicyDefault>, IotError> {
        const OP: Operation = Operation::GetPolicy;
        let out = self
            .call(OP, || self.client.get_policy().policy_name(name).send())
            .await;
        let Some(out) = absent_when(out, IotErrorKind::NotFound)? else {
            return Ok(None);
        };
        match (out.default_version_id(), out.policy_document()) {
            (Some(id), Some(document)) => Ok(Some(PolicyDefault {
                default_version_id: id.to_owned(),
                document: document.to_owned(),
            })),
            _ => Err(IotError::unexpected(
                OP,
                "response lacks defaultVersionId or policyDocument",
            )),
        }
    }

    async fn get_policy_version(
        &self,
        name: &str,
        version_id: &str,
    ) -> Result<Option<String>, IotError> {
        let out = self
            .call(Operation::GetPolicyVersion, || {
                self.client
                    .get_policy_version()
                    .policy_name(name)
                    .policy_version_id(version_id)
                    .send()
            })
            .await;
        Ok(absent_when(out, IotErrorKind::NotFound)?
            .map(|out| out.policy_document().unwrap_or_default().to_owned()))
    }

    async fn list_policy_versions(&self, name: &str) -> Result<Vec<VersionInfo>, IotError> {
        let out = self
            .call(Operation::ListPolicyVersions, || {
                self.client.list_policy_versions().policy_name(name).send()
            })
            .await?;
        Ok(out
            .policy_versions()
            .iter()
            .filter_map(|v| {
                Some(VersionInfo {
                    version_id: v.version_id()?.to_owned(),
                    is_default: v.is_default_version(),
                    created_ms: v.create_date().and_then(|d| d.to_millis().ok()),
                })
            })
            .collect())
    }

    async fn create_default_version(&self, name: &str, document: &str) -> Result<String, IotError> {
        const OP: Operation = Operation::CreatePolicyVersion;
        let out = self
            .call(OP, || {
                self.client
                    .create_policy_version()
                    .policy_name(name)
                    .policy_document(document)
                    .set_as_default(true)
                    .send()
            })
            .await?;
        out.policy_version_id()
            .map(str::to_owned)
            .ok_or_else(|| IotError::unexpected(OP, "response lacks policyVersionId"))
    }

    async fn delete_policy_version(
        &self,
        name: &str,
        version_id: &str,
    ) -> Result<Deleted, IotError> {
        let result = self
            .call(Operation::DeletePolicyVersion, || {
                self.client
                    .delete_policy_version()
                    .policy_name(name)
                    .policy_version_id(version_id)
                    .send()
            })
            .await;
        match result {
            Ok(_) => Ok(Deleted::Yes),
            Err(e) if e.kind == IotErrorKind::NotFound => Ok(Deleted::AlreadyGone),
            Err(e) if e.kind == IotErrorKind::InUse => Ok(Deleted::InUse),
            Err(e) => Err(e),
        }
    }
}

/// The parts of an audit finding that decisions use, as plain data.
fn finding(f: &AuditFinding) -> Finding {
    let resource = f.non_compliant_resource();
    let policy = resource
        .and_then(|r| r.resource_identifier())
        .and_then(|id| id.policy_version_identifier())
        .and_then(|p| match (p.policy_name(), p.policy_version_id()) {
            (Some(name), Some(version)) => Some(PolicyVersionRef {
                policy_name: name.to_owned(),
                version_id: version.to_owned(),
            }),
            _ => None,
        });
    Finding {
        finding_id: f.finding_id().map(str::to_owned),
        resource_type: resource
            .and_then(|r| r.resource_type())
            .map(|t| t.as_str().to_owned()),
        policy,
        is_suppressed: f.is_suppressed().unwrap_or(false),
    }
}

/// The check's resource identifier for a policy version.
fn resource(policy: &PolicyVersionRef) -> ResourceIdentifier {
    let version = PolicyVersionIdentifier::builder()
        .policy_name(&policy.policy_name)
        .policy_version_id(&policy.version_id)
        .build();
    ResourceIdentifier::builder()
        .policy_version_identifier(version)
        .build()
}

/// A suppression of a policy version; `None` for other resources. One with neither an expiry
/// nor `suppressIndefinitely` counts as indefinite: the safe reading.
fn suppression(s: &AuditSuppression) -> Option<Suppression> {
    let p = s.resource_identifier()?.policy_version_identifier()?;
    let policy = PolicyVersionRef {
        policy_name: p.policy_name()?.to_owned(),
        version_id: p.policy_version_id()?.to_owned(),
    };
    let expires_ms = match s.suppress_indefinitely() {
        Some(true) => None,
        _ => s.expiration_date().and_then(|d| d.to_millis().ok()),
    };
    Some(Suppression { policy, expires_ms })
}
