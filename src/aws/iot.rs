//! The port on the real IoT client: pace, call, convert. One SDK call per method.

use std::future::Future;

use aws_sdk_iot::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_iot::types::AuditFinding;
use aws_sdk_iot::Client;

use crate::domain::{Deleted, Finding, PolicyVersionRef, VersionInfo};

use super::error::{IotError, IotErrorKind};
use super::operation::Operation;
use super::pace::Pacer;
use super::port::{FindingsPage, Iot, PolicyDefault};

/// The largest page `ListAuditFindings` allows.
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
        next_token: Option<String>,
    ) -> Result<FindingsPage, IotError> {
        let out = self
            .call(Operation::ListAuditFindings, || {
                self.client
                    .list_audit_findings()
                    .task_id(task_id)
                    .check_name(check_name)
                    .list_suppressed_findings(false)
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
