//! Carrying a decision out: the IoT calls for one policy (SPEC §3.4, §5).

use aws_sdk_iot::Client;

use crate::config::Config;
use crate::fanout::Enqueuer;
use crate::findings::PolicyVersionRef;
use crate::iot_error::{IotError, IotErrorKind};
use crate::pace::{Operation, Pacer};
use crate::plan::{
    decide, duplicate_candidates, oldest_non_default, others_created_since, AfterCreate, Decision,
    PolicyState, SkipReason, VersionInfo,
};
use crate::report::{FindingReport, Outcome};
use crate::restrictive::RestrictivePolicy;

/// What a `DeletePolicyVersion` found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Deleted {
    Yes,
    /// The version was already gone.
    AlreadyGone,
    /// IoT refused: the version is the default or in use.
    InUse,
}

/// Works on one policy at a time; shared by all workers of an invocation.
#[derive(Debug)]
pub struct Remediator {
    client: Client,
    config: Config,
    policy: RestrictivePolicy,
    pacer: Pacer,
    enqueuer: Option<Enqueuer>,
}

impl Remediator {
    pub fn new(client: Client, config: Config, policy: RestrictivePolicy) -> Self {
        Self {
            pacer: Pacer::per_operation(|op| config.pace(op)),
            client,
            config,
            policy,
            enqueuer: None,
        }
    }

    /// Gives the SQS client for the fan-out queue of the configuration (`FANOUT_QUEUE_URL`);
    /// without a queue configured there is nothing to send to, and nothing changes.
    pub fn with_queue(mut self, sqs: aws_sdk_sqs::Client) -> Self {
        self.enqueuer = self
            .config
            .fanout
            .as_ref()
            .map(|f| Enqueuer::new(sqs, f.queue_url.clone()));
        self
    }

    /// The fan-out queue, when audits are fanned out.
    pub fn enqueuer(&self) -> Option<&Enqueuer> {
        self.enqueuer.as_ref()
    }

    /// Shared by every call of the invocation, listing included.
    pub fn pacer(&self) -> &Pacer {
        &self.pacer
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Reads the policy, decides, and carries the decision out. Never fails: an error becomes
    /// the `failed` outcome, with whatever was already done recorded in the report.
    pub async fn remediate(
        &self,
        finding_id: Option<String>,
        flagged: &PolicyVersionRef,
    ) -> FindingReport {
        let mut report = FindingReport::new(finding_id, Some(flagged), Outcome::Remediated);
        report.outcome = match self.carry_out(flagged, &mut report).await {
            Ok(outcome) => outcome,
            Err(e) => Outcome::Failed {
                error: e.to_string(),
            },
        };
        report
    }

    async fn carry_out(
        &self,
        flagged: &PolicyVersionRef,
        report: &mut FindingReport,
    ) -> Result<Outcome, IotError> {
        let name = flagged.policy_name.as_str();
        let current = self.get_policy(name).await?;
        let state = current.as_ref().map(|(state, _)| state);
        report.default_version_id = state.map(|s| s.default_version_id.clone());
        match decide(flagged, state, &self.config) {
            Decision::Skip(reason) => Ok(Outcome::Skipped { reason }),
            Decision::RestrictiveFlagged => Ok(Outcome::Skipped {
                reason: SkipReason::RestrictiveDocumentFlagged,
            }),
            Decision::AlreadyRemediated { leftover } => {
                // One look at the versions finishes what an interrupted or concurrent run
                // left: the flagged version, and restrictive duplicates next to the default.
                let versions = self.list_versions(name).await?;
                let leftover = leftover.filter(|id| {
                    versions
                        .iter()
                        .any(|v| v.version_id == *id && !v.is_default)
                });
                if self.config.dry_run {
                    report.would_delete_version_ids.extend(leftover);
                } else {
                    if let Some(id) = leftover {
                        if self.delete_version(name, &id).await? == Deleted::Yes {
                            report.deleted_version_ids.push(id);
                        }
                    }
                    self.tidy_duplicates(name, &versions, &flagged.version_id, report)
                        .await?;
                }
                Ok(Outcome::Skipped {
                    reason: SkipReason::AlreadyRemediated,
                })
            }
            Decision::Remediate { replaced, after } => {
                report.replaced_document = current.map(|(_, document)| document);
                if self.config.dry_run {
                    match after {
                        AfterCreate::DeleteReplaced => {
                            report.would_delete_version_ids.push(replaced)
                        }
                        AfterCreate::KeepReplaced => report.kept_version_id = Some(replaced),
                    }
                    return Ok(Outcome::WouldRemediate);
                }
                let (new_version, mut others_created) =
                    self.create_default(name, &replaced, report).await?;
                report.new_version_id = Some(new_version);
                match after {
                    AfterCreate::DeleteReplaced => match self.delete_version(name, &replaced).await? {
                        Deleted::Yes => report.deleted_version_ids.push(replaced.clone()),
                        // Only a concurrent run of the same event deletes it first; that run
                        // also created a restrictive version, and one of the two must go.
                        Deleted::AlreadyGone => others_created = true,
                        Deleted::InUse => {
                            return Err(IotError::unexpected(
                                Operation::DeletePolicyVersion.name(),
                                format!("the replaced version {replaced} is the default again: another writer changed the policy"),
                            ))
                        }
                    },
                    AfterCreate::KeepReplaced => report.kept_version_id = Some(replaced.clone()),
                }
                if others_created {
                    let versions = self.list_versions(name).await?;
                    self.tidy_duplicates(name, &versions, &replaced, report)
                        .await?;
                }
                Ok(Outcome::Remediated)
            }
        }
    }

    /// `GetPolicy`; `None` when the policy does not exist. Returns the state and the default
    /// document as IoT sent it.
    async fn get_policy(&self, name: &str) -> Result<Option<(PolicyState, String)>, IotError> {
        const OP: &str = Operation::GetPolicy.name();
        self.pacer.wait(Operation::GetPolicy).await;
        let out = match self.client.get_policy().policy_name(name).send().await {
            Ok(out) => out,
            Err(e) => {
                let e = IotError::from_sdk(OP, e);
                return match e.kind {
                    IotErrorKind::NotFound => Ok(None),
                    _ => Err(e),
                };
            }
        };
        let (Some(default_version_id), Some(document)) =
            (out.default_version_id(), out.policy_document())
        else {
            return Err(IotError::unexpected(
                OP,
                "response lacks defaultVersionId or policyDocument",
            ));
        };
        let state = PolicyState {
            default_version_id: default_version_id.to_owned(),
            default_is_restrictive: self.policy.matches(document),
        };
        Ok(Some((state, document.to_owned())))
    }

    /// Creates the restrictive document as the new default. At the 5-version limit, deletes the
    /// oldest non-default version and tries once more; a second limit error is a failure
    /// (another writer took the slot). Returns the new version id and whether some other
    /// version was created since the versions this run knew of (a concurrent run, or a timed
    /// out attempt that IoT applied after all): then duplicates may exist.
    async fn create_default(
        &self,
        name: &str,
        replaced: &str,
        report: &mut FindingReport,
    ) -> Result<(String, bool), IotError> {
        match self.create_version(name).await {
            Ok(created) => {
                let others = others_created_since(&created, [replaced]);
                Ok((created, others))
            }
            Err(e) if e.kind == IotErrorKind::VersionsLimit => {
                let versions = self.list_versions(name).await?;
                // The version this run replaces must still be the default. If it is not, the
                // policy changed since `GetPolicy` (a concurrent run, or a timed-out create that
                // IoT applied after all) and the oldest version may be the one to keep: free no
                // slot, and let Lambda's retry decide again from a fresh read.
                if !versions
                    .iter()
                    .any(|v| v.version_id == replaced && v.is_default)
                {
                    return Err(IotError::unexpected(
                        Operation::ListPolicyVersions.name(),
                        format!("at the version limit and version {replaced} is no longer the default: the policy changed during remediation"),
                    ));
                }
                let oldest = oldest_non_default(&versions).ok_or_else(|| {
                    IotError::unexpected(
                        Operation::ListPolicyVersions.name(),
                        "at the version limit but no non-default version to delete",
                    )
                })?;
                let oldest = oldest.version_id.clone();
                match self.delete_version(name, &oldest).await? {
                    Deleted::Yes => report.deleted_version_ids.push(oldest),
                    Deleted::AlreadyGone => {}
                    Deleted::InUse => {
                        return Err(IotError::unexpected(
                            Operation::DeletePolicyVersion.name(),
                            format!("version {oldest} became the default while freeing a slot"),
                        ))
                    }
                }
                let created = self.create_version(name).await?;
                let others =
                    others_created_since(&created, versions.iter().map(|v| v.version_id.as_str()));
                Ok((created, others))
            }
            Err(e) => Err(e),
        }
    }

    async fn create_version(&self, name: &str) -> Result<String, IotError> {
        const OP: &str = Operation::CreatePolicyVersion.name();
        self.pacer.wait(Operation::CreatePolicyVersion).await;
        let out = self
            .client
            .create_policy_version()
            .policy_name(name)
            .policy_document(self.policy.document())
            .set_as_default(true)
            .send()
            .await
            .map_err(|e| IotError::from_sdk(OP, e))?;
        out.policy_version_id()
            .map(str::to_owned)
            .ok_or_else(|| IotError::unexpected(OP, "response lacks policyVersionId"))
    }

    async fn delete_version(&self, name: &str, version: &str) -> Result<Deleted, IotError> {
        self.pacer.wait(Operation::DeletePolicyVersion).await;
        let result = self
            .client
            .delete_policy_version()
            .policy_name(name)
            .policy_version_id(version)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Deleted::Yes),
            Err(e) => {
                let e = IotError::from_sdk(Operation::DeletePolicyVersion.name(), e);
                match e.kind {
                    IotErrorKind::NotFound => Ok(Deleted::AlreadyGone),
                    IotErrorKind::InUse => Ok(Deleted::InUse),
                    _ => Err(e),
                }
            }
        }
    }

    async fn list_versions(&self, name: &str) -> Result<Vec<VersionInfo>, IotError> {
        self.pacer.wait(Operation::ListPolicyVersions).await;
        let out = self
            .client
            .list_policy_versions()
            .policy_name(name)
            .send()
            .await
            .map_err(|e| IotError::from_sdk(Operation::ListPolicyVersions.name(), e))?;
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

    /// Deletes restrictive versions that a concurrent run (or a retried create) left next to
    /// the default, so the policy ends with exactly one restrictive version: the default. Only
    /// non-default versions newer than `after` are read, and only those whose document is the
    /// restrictive one are deleted; IoT itself refuses to delete the default.
    async fn tidy_duplicates(
        &self,
        name: &str,
        versions: &[VersionInfo],
        after: &str,
        report: &mut FindingReport,
    ) -> Result<(), IotError> {
        for candidate in duplicate_candidates(versions, after) {
            let id = candidate.version_id.as_str();
            self.pacer.wait(Operation::GetPolicyVersion).await;
            let out = match self
                .client
                .get_policy_version()
                .policy_name(name)
                .policy_version_id(id)
                .send()
                .await
            {
                Ok(out) => out,
                Err(e) => match IotError::from_sdk(Operation::GetPolicyVersion.name(), e) {
                    e if e.kind == IotErrorKind::NotFound => continue,
                    e => return Err(e),
                },
            };
            if out
                .policy_document()
                .is_some_and(|d| self.policy.matches(d))
                && self.delete_version(name, id).await? == Deleted::Yes
            {
                tracing::info!(
                    policy = name,
                    version = id,
                    "deleted a duplicate restrictive version"
                );
                report.deleted_version_ids.push(id.to_owned());
            }
        }
        Ok(())
    }
}
