//! An in-memory fake of the [`Iot`] port for the engine's unit tests: policies with numbered,
//! dated versions and one default, IoT's 5-version limit, a default that cannot be deleted,
//! injected errors, and a hook through which "someone else" writes before a call.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};

use crate::aws::{
    FindingsPage, Iot, IotError, IotErrorKind, Listed, Operation, PolicyDefault,
    SuppressionRequest, SuppressionsPage, Targets,
};
use crate::domain::{Deleted, DescribedFinding, PolicyVersionRef, Suppression, VersionInfo};

/// IoT keeps at most this many versions of a policy.
pub const MAX_VERSIONS: usize = 5;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    pub id: u64,
    pub document: String,
    pub is_default: bool,
    pub created_ms: i64,
}

#[derive(Clone, Debug, Default)]
pub struct Policy {
    pub versions: Vec<Version>,
    /// IoT never reuses a version id.
    pub next_id: u64,
}

/// Every policy of the fake account, its targets and suppressions, and a clock for
/// `createDate`.
#[derive(Debug, Default)]
pub struct Fleet {
    pub policies: BTreeMap<String, Policy>,
    /// Targets attached, per policy.
    pub targets: HashMap<String, usize>,
    /// Suppressions of the overly permissive check: expiry (epoch seconds) and description.
    pub suppressions: HashMap<PolicyVersionRef, (i64, String)>,
    /// Audit findings by id, as `DescribeAuditFinding` answers.
    pub findings: HashMap<String, DescribedFinding>,
    clock: i64,
}

impl Fleet {
    /// Creates a version (the policy too, when new); IoT's limit applies.
    pub fn create(
        &mut self,
        name: &str,
        document: &str,
        as_default: bool,
    ) -> Result<u64, IotErrorKind> {
        self.clock += 1;
        let policy = self.policies.entry(name.to_owned()).or_insert(Policy {
            versions: Vec::new(),
            next_id: 1,
        });
        if policy.versions.len() >= MAX_VERSIONS {
            return Err(IotErrorKind::VersionsLimit);
        }
        let id = policy.next_id;
        policy.next_id += 1;
        let is_default = as_default || policy.versions.is_empty();
        if is_default {
            policy
                .versions
                .iter_mut()
                .for_each(|v| v.is_default = false);
        }
        policy.versions.push(Version {
            id,
            document: document.to_owned(),
            is_default,
            created_ms: self.clock,
        });
        Ok(id)
    }

    pub fn delete(&mut self, name: &str, id: u64) -> Deleted {
        let Some(policy) = self.policies.get_mut(name) else {
            return Deleted::AlreadyGone;
        };
        match policy.versions.iter().position(|v| v.id == id) {
            None => Deleted::AlreadyGone,
            Some(i) if policy.versions[i].is_default => Deleted::InUse,
            Some(i) => {
                policy.versions.remove(i);
                Deleted::Yes
            }
        }
    }

    pub fn set_default(&mut self, name: &str, id: u64) {
        if let Some(policy) = self.policies.get_mut(name) {
            for v in &mut policy.versions {
                v.is_default = v.id == id;
            }
        }
    }

    pub fn versions(&self, name: &str) -> Vec<Version> {
        self.policies
            .get(name)
            .map(|p| p.versions.clone())
            .unwrap_or_default()
    }
}

type Hook = Box<dyn Fn(Operation, &str, &mut Fleet) + Send + Sync>;

/// The fake port. Calls are logged as (operation, policy).
#[derive(Default)]
pub struct FakeIot {
    fleet: Mutex<Fleet>,
    failures: Mutex<HashMap<Operation, Vec<IotErrorKind>>>,
    hook: Option<Hook>,
    calls: Mutex<Vec<(Operation, String)>>,
}

impl FakeIot {
    pub fn new(fleet: Fleet) -> Self {
        Self {
            fleet: Mutex::new(fleet),
            ..Self::default()
        }
    }

    /// Runs `hook` before every call, with the fleet in hand: how another writer (or a bug)
    /// gets between two calls of the engine.
    pub fn with_hook(
        mut self,
        hook: impl Fn(Operation, &str, &mut Fleet) + Send + Sync + 'static,
    ) -> Self {
        self.hook = Some(Box::new(hook));
        self
    }

    /// The next call of `operation` fails with `kind` (several calls: call again).
    pub fn fail_next(&self, operation: Operation, kind: IotErrorKind) {
        lock(&self.failures)
            .entry(operation)
            .or_default()
            .push(kind);
    }

    pub fn fleet(&self) -> std::sync::MutexGuard<'_, Fleet> {
        lock(&self.fleet)
    }

    pub fn calls(&self) -> Vec<(Operation, String)> {
        lock(&self.calls).clone()
    }

    /// The write calls, in order.
    pub fn writes(&self) -> Vec<Operation> {
        self.calls()
            .into_iter()
            .map(|(op, _)| op)
            .filter(|op| {
                matches!(
                    op,
                    Operation::CreatePolicyVersion
                        | Operation::DeletePolicyVersion
                        | Operation::SetDefaultPolicyVersion
                        | Operation::CreateAuditSuppression
                        | Operation::UpdateAuditSuppression
                )
            })
            .collect()
    }

    /// Logs the call, runs the hook, applies an injected failure, then answers from the fleet.
    fn answer<T>(
        &self,
        operation: Operation,
        name: &str,
        f: impl FnOnce(&mut Fleet) -> Result<T, IotErrorKind>,
    ) -> Result<T, IotError> {
        lock(&self.calls).push((operation, name.to_owned()));
        let mut fleet = lock(&self.fleet);
        if let Some(hook) = &self.hook {
            hook(operation, name, &mut fleet);
        }
        let injected = lock(&self.failures).get_mut(&operation).and_then(Vec::pop);
        injected
            .map_or_else(|| f(&mut fleet), Err)
            .map_err(|kind| IotError {
                operation,
                kind,
                code: None,
                message: format!("fake {kind:?}"),
            })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn version_id(id: &str) -> u64 {
    id.parse().unwrap_or(0)
}

/// The fake's one page of targets.
const TARGETS_PAGE: usize = 250;

impl Iot for FakeIot {
    async fn list_findings(
        &self,
        _task: &str,
        _check: &str,
        _listed: Listed,
        _token: Option<String>,
    ) -> Result<FindingsPage, IotError> {
        self.answer(Operation::ListAuditFindings, "-", |_| {
            Ok(FindingsPage::default())
        })
    }

    async fn describe_finding(&self, id: &str) -> Result<Option<DescribedFinding>, IotError> {
        self.answer(Operation::DescribeAuditFinding, "-", |fleet| {
            Ok(fleet.findings.get(id).cloned())
        })
    }

    async fn list_suppressions(
        &self,
        _check: &str,
        _token: Option<String>,
    ) -> Result<SuppressionsPage, IotError> {
        self.answer(Operation::ListAuditSuppressions, "-", |fleet| {
            let suppressions = fleet
                .suppressions
                .iter()
                .map(|(policy, (expires, _))| Suppression {
                    policy: policy.clone(),
                    expires_ms: Some(expires * 1000),
                })
                .collect();
            Ok(SuppressionsPage {
                suppressions,
                next_token: None,
            })
        })
    }

    async fn suppression_exists(
        &self,
        _check: &str,
        policy: &PolicyVersionRef,
    ) -> Result<bool, IotError> {
        self.answer(
            Operation::DescribeAuditSuppression,
            &policy.policy_name,
            |fleet| Ok(fleet.suppressions.contains_key(policy)),
        )
    }

    async fn create_suppression(&self, r: &SuppressionRequest<'_>) -> Result<bool, IotError> {
        self.answer(
            Operation::CreateAuditSuppression,
            &r.policy.policy_name,
            |fleet| {
                if fleet.suppressions.contains_key(r.policy) {
                    return Ok(false);
                }
                let value = (r.expires_epoch_secs, r.description.to_owned());
                fleet.suppressions.insert(r.policy.clone(), value);
                Ok(true)
            },
        )
    }

    async fn update_suppression(&self, r: &SuppressionRequest<'_>) -> Result<(), IotError> {
        self.answer(
            Operation::UpdateAuditSuppression,
            &r.policy.policy_name,
            |fleet| {
                let found = fleet
                    .suppressions
                    .get_mut(r.policy)
                    .ok_or(IotErrorKind::NotFound)?;
                *found = (r.expires_epoch_secs, r.description.to_owned());
                Ok(())
            },
        )
    }

    async fn list_targets(&self, name: &str) -> Result<Targets, IotError> {
        self.answer(Operation::ListTargetsForPolicy, name, |fleet| {
            let attached = fleet.targets.get(name).copied().unwrap_or(0);
            Ok(Targets {
                count: attached.min(TARGETS_PAGE),
                more: attached > TARGETS_PAGE,
            })
        })
    }

    async fn set_default_version(&self, name: &str, id: &str) -> Result<bool, IotError> {
        self.answer(Operation::SetDefaultPolicyVersion, name, |fleet| {
            let exists = fleet.versions(name).iter().any(|v| v.id == version_id(id));
            if exists {
                fleet.set_default(name, version_id(id));
            }
            Ok(exists)
        })
    }

    async fn get_policy(&self, name: &str) -> Result<Option<PolicyDefault>, IotError> {
        self.answer(Operation::GetPolicy, name, |fleet| {
            Ok(fleet
                .versions(name)
                .into_iter()
                .find(|v| v.is_default)
                .map(|v| PolicyDefault {
                    default_version_id: v.id.to_string(),
                    document: v.document,
                }))
        })
    }

    async fn get_policy_version(&self, name: &str, id: &str) -> Result<Option<String>, IotError> {
        self.answer(Operation::GetPolicyVersion, name, |fleet| {
            Ok(fleet
                .versions(name)
                .into_iter()
                .find(|v| v.id == version_id(id))
                .map(|v| v.document))
        })
    }

    async fn list_policy_versions(&self, name: &str) -> Result<Vec<VersionInfo>, IotError> {
        self.answer(Operation::ListPolicyVersions, name, |fleet| {
            if !fleet.policies.contains_key(name) {
                return Err(IotErrorKind::NotFound);
            }
            // Newest first, as IoT lists them: the engine must not rely on the order.
            let mut versions: Vec<VersionInfo> = fleet
                .versions(name)
                .into_iter()
                .map(|v| VersionInfo {
                    version_id: v.id.to_string(),
                    is_default: v.is_default,
                    created_ms: Some(v.created_ms),
                })
                .collect();
            versions.reverse();
            Ok(versions)
        })
    }

    async fn create_default_version(&self, name: &str, document: &str) -> Result<String, IotError> {
        self.answer(Operation::CreatePolicyVersion, name, |fleet| {
            if !fleet.policies.contains_key(name) {
                return Err(IotErrorKind::NotFound);
            }
            fleet.create(name, document, true).map(|id| id.to_string())
        })
    }

    async fn delete_policy_version(&self, name: &str, id: &str) -> Result<Deleted, IotError> {
        self.answer(Operation::DeletePolicyVersion, name, |fleet| {
            Ok(fleet.delete(name, version_id(id)))
        })
    }
}
