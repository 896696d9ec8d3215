//! The check's current audit suppressions (SPEC §3.3). A finding's `isSuppressed` tells only
//! what held when its audit ran; a suppression made since (by a person, or by a rollback)
//! counts too, so the audit path reads the current ones once per audit.

use std::collections::HashSet;

use super::finding::PolicyVersionRef;

/// One suppression of the overly permissive check, as `ListAuditSuppressions` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suppression {
    pub policy: PolicyVersionRef,
    /// When it expires (epoch milliseconds); `None`: indefinitely.
    pub expires_ms: Option<i64>,
}

/// The policy versions whose findings are suppressed now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Suppressions {
    current: HashSet<PolicyVersionRef>,
}

impl Suppressions {
    /// The suppressions of `listed` still in force at `now_ms`.
    pub fn current(listed: impl IntoIterator<Item = Suppression>, now_ms: i64) -> Self {
        let current = listed
            .into_iter()
            .filter(|s| s.expires_ms.is_none_or(|at| at > now_ms))
            .map(|s| s.policy)
            .collect();
        Self { current }
    }

    pub fn covers(&self, policy: &PolicyVersionRef) -> bool {
        self.current.contains(policy)
    }

    pub fn len(&self) -> usize {
        self.current.len()
    }

    pub fn is_empty(&self) -> bool {
        self.current.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(name: &str, version: &str) -> PolicyVersionRef {
        PolicyVersionRef {
            policy_name: name.into(),
            version_id: version.into(),
        }
    }

    fn suppression(name: &str, version: &str, expires_ms: Option<i64>) -> Suppression {
        Suppression {
            policy: policy(name, version),
            expires_ms,
        }
    }

    #[test]
    fn only_unexpired_suppressions_of_that_very_version_count() {
        let now = 1_000;
        let s = Suppressions::current(
            [
                suppression("WS_AUDIT_a", "1", Some(now + 1)),
                suppression("WS_AUDIT_b", "1", Some(now)),
                suppression("WS_AUDIT_c", "2", None),
            ],
            now,
        );
        assert!(s.covers(&policy("WS_AUDIT_a", "1")));
        assert!(!s.covers(&policy("WS_AUDIT_a", "2")), "another version");
        assert!(!s.covers(&policy("WS_AUDIT_b", "1")), "expired");
        assert!(s.covers(&policy("WS_AUDIT_c", "2")), "indefinitely");
        assert_eq!(s.len(), 2);
        assert!(Suppressions::default().is_empty());
    }
}
