//! Screening: the checks of a finding that cost no call (SPEC §3.3), and where an audit's
//! in-scope findings are worked on.

use std::collections::HashSet;

use serde::Serialize;

use super::finding::{Finding, PolicyVersionRef, IOT_POLICY};
use super::suppression::Suppressions;

/// Why a finding or policy was left alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The finding is suppressed.
    Suppressed,
    /// The finding's resource is not an IoT policy.
    NotIotPolicy,
    /// An `IOT_POLICY` finding without a policy name and version.
    NoPolicyVersion,
    /// The policy name does not start with the configured prefix.
    OutOfScope,
    /// Another finding of the same audit already named this policy.
    DuplicateFinding,
    /// The policy no longer exists.
    PolicyNotFound,
    /// The default version already is the restrictive document.
    AlreadyRemediated,
    /// The audit flagged the restrictive document itself: reported at error level, not retried.
    RestrictiveDocumentFlagged,
    /// The flagged version is no longer the default: someone changed the policy after the audit.
    StaleFinding,
    /// Rollback: the event named other policies.
    NotNamed,
    /// Rollback: the default is not the restrictive document (nothing to undo, or someone
    /// changed it since): nothing is done.
    NotRemediated,
    /// A fan-out job that its audit finding does not back (SPEC §10): no such finding, another
    /// check, another policy version, suppressed, or no `findingId` at all.
    UnverifiedJob,
    /// Rollback: the flagged version is gone (it was deleted); the replaced document is in the
    /// remediation's log line and notification.
    RollbackUnavailable,
}

/// The result of looking at a finding before any IoT call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Screen {
    InScope(PolicyVersionRef),
    Skip(SkipReason),
}

/// Screens the findings of one audit check: cheap filters that cost no call, and at most one
/// in-scope finding per policy.
#[derive(Debug)]
pub struct Screener {
    prefix: String,
    seen: HashSet<String>,
    suppressions: Suppressions,
    /// Rollback: suppressed findings are undone like the others.
    include_suppressed: bool,
    /// Rollback: only these policies, when the event names some.
    only: Option<HashSet<String>>,
}

impl Screener {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            seen: HashSet::new(),
            suppressions: Suppressions::default(),
            include_suppressed: false,
            only: None,
        }
    }

    /// For a rollback: suppressed findings count (a rollback itself suppresses what it
    /// restores), and only the policies the event names, when it names some.
    pub fn for_rollback(mut self, only: Option<&[String]>) -> Self {
        self.include_suppressed = true;
        self.only = only.map(|names| names.iter().cloned().collect());
        self
    }

    /// Also skips, as suppressed, findings whose policy version has a current suppression
    /// (made after their audit ran, so their `isSuppressed` does not show it).
    pub fn with_suppressions(mut self, suppressions: Suppressions) -> Self {
        self.suppressions = suppressions;
        self
    }

    /// The checks of one finding, and at most one in-scope finding per policy.
    pub fn screen(&mut self, finding: &Finding) -> Screen {
        match self.check(finding) {
            Screen::InScope(policy) if !self.seen.insert(policy.policy_name.clone()) => {
                Screen::Skip(SkipReason::DuplicateFinding)
            }
            screen => screen,
        }
    }

    /// The checks of one finding on its own, without looking at the others.
    pub fn check(&self, finding: &Finding) -> Screen {
        if finding.resource_type.as_deref() != Some(IOT_POLICY) {
            return Screen::Skip(SkipReason::NotIotPolicy);
        }
        let Some(policy) = &finding.policy else {
            return Screen::Skip(SkipReason::NoPolicyVersion);
        };
        let suppressed = finding.is_suppressed || self.suppressions.covers(policy);
        if suppressed && !self.include_suppressed {
            return Screen::Skip(SkipReason::Suppressed);
        }
        self.check_policy(policy)
    }

    /// The checks left for a policy version that comes without a finding around it (a fan-out
    /// job: the queue is an input like any other, so the prefix is checked again, and the
    /// current suppressions).
    pub fn check_policy(&self, policy: &PolicyVersionRef) -> Screen {
        if !policy.policy_name.starts_with(&self.prefix) {
            return Screen::Skip(SkipReason::OutOfScope);
        }
        if !self.include_suppressed && self.suppressions.covers(policy) {
            return Screen::Skip(SkipReason::Suppressed);
        }
        if self
            .only
            .as_ref()
            .is_some_and(|only| !only.contains(&policy.policy_name))
        {
            return Screen::Skip(SkipReason::NotNamed);
        }
        Screen::InScope(policy.clone())
    }
}

/// Where the in-scope findings of a check are worked on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// In this invocation.
    Inline,
    /// One job per policy on the fan-out queue.
    FanOut,
}

/// Fan out unless fan-out is off (`inline_max` is `None`) or the audit says the check has at
/// most `inline_max` non-compliant resources. An audit that does not say is fanned out: its
/// size is unknown, and a queue handles any size.
pub fn route(non_compliant: Option<u64>, inline_max: Option<u64>) -> Route {
    match (inline_max, non_compliant) {
        (None, _) => Route::Inline,
        (Some(max), Some(n)) if n <= max => Route::Inline,
        (Some(_), _) => Route::FanOut,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_fan_out_setting_and_audit_size() {
        assert_eq!(route(Some(50_000), None), Route::Inline);
        assert_eq!(route(None, None), Route::Inline);
        assert_eq!(route(Some(1), Some(0)), Route::FanOut);
        assert_eq!(route(Some(0), Some(0)), Route::Inline);
        assert_eq!(route(Some(100), Some(100)), Route::Inline);
        assert_eq!(route(Some(101), Some(100)), Route::FanOut);
        assert_eq!(route(None, Some(100)), Route::FanOut);
    }

    fn finding(name: &str, version: &str) -> Finding {
        Finding {
            finding_id: Some(format!("f-{name}-{version}")),
            resource_type: Some(IOT_POLICY.into()),
            policy: Some(PolicyVersionRef {
                policy_name: name.into(),
                version_id: version.into(),
            }),
            is_suppressed: false,
        }
    }

    #[test]
    fn screen_in_scope() {
        let mut s = Screener::new("WS_AUDIT_");
        assert_eq!(
            s.screen(&finding("WS_AUDIT_a", "3")),
            Screen::InScope(PolicyVersionRef {
                policy_name: "WS_AUDIT_a".into(),
                version_id: "3".into()
            })
        );
    }

    #[test]
    fn screen_out_of_prefix() {
        let mut s = Screener::new("WS_AUDIT_");
        for name in ["Other", "ws_audit_lower", "XWS_AUDIT_a", "WS_AUDIT"] {
            assert_eq!(
                s.screen(&finding(name, "1")),
                Screen::Skip(SkipReason::OutOfScope),
                "{name}"
            );
        }
    }

    #[test]
    fn screen_suppressed() {
        let mut s = Screener::new("WS_AUDIT_");
        let f = Finding {
            is_suppressed: true,
            ..finding("WS_AUDIT_a", "1")
        };
        assert_eq!(s.screen(&f), Screen::Skip(SkipReason::Suppressed));
        // A suppressed finding does not claim the policy: an unsuppressed one still counts.
        assert!(matches!(
            s.screen(&finding("WS_AUDIT_a", "1")),
            Screen::InScope(_)
        ));
    }

    #[test]
    fn a_suppression_made_since_the_audit_counts() {
        let current = Suppressions::current(
            [crate::domain::Suppression {
                policy: PolicyVersionRef {
                    policy_name: "WS_AUDIT_a".into(),
                    version_id: "1".into(),
                },
                expires_ms: None,
            }],
            0,
        );
        let mut s = Screener::new("WS_AUDIT_").with_suppressions(current);
        assert_eq!(
            s.screen(&finding("WS_AUDIT_a", "1")),
            Screen::Skip(SkipReason::Suppressed)
        );
        // Another version of the same policy is not covered.
        assert!(matches!(
            s.screen(&finding("WS_AUDIT_a", "2")),
            Screen::InScope(_)
        ));
    }

    #[test]
    fn a_rollback_screens_suppressed_findings_in_and_unnamed_policies_out() {
        let named = ["WS_AUDIT_a".to_owned()];
        let mut s = Screener::new("WS_AUDIT_").for_rollback(Some(&named));
        let suppressed = Finding {
            is_suppressed: true,
            ..finding("WS_AUDIT_a", "1")
        };
        assert!(matches!(s.screen(&suppressed), Screen::InScope(_)));
        assert_eq!(
            s.screen(&finding("WS_AUDIT_b", "1")),
            Screen::Skip(SkipReason::NotNamed)
        );
        // The prefix still holds, whatever the event names.
        let outside = ["Fleet".to_owned()];
        let mut s = Screener::new("WS_AUDIT_").for_rollback(Some(&outside));
        assert_eq!(
            s.screen(&finding("Fleet", "1")),
            Screen::Skip(SkipReason::OutOfScope)
        );
        let mut all = Screener::new("WS_AUDIT_").for_rollback(None);
        assert!(matches!(
            all.screen(&finding("WS_AUDIT_b", "1")),
            Screen::InScope(_)
        ));
    }

    #[test]
    fn screen_not_an_iot_policy() {
        let mut s = Screener::new("WS_AUDIT_");
        for resource_type in [Some("DEVICE_CERTIFICATE"), Some("iot_policy"), None] {
            let f = Finding {
                resource_type: resource_type.map(str::to_owned),
                ..finding("WS_AUDIT_a", "1")
            };
            assert_eq!(s.screen(&f), Screen::Skip(SkipReason::NotIotPolicy));
        }
        let f = Finding {
            policy: None,
            ..finding("WS_AUDIT_a", "1")
        };
        assert_eq!(s.screen(&f), Screen::Skip(SkipReason::NoPolicyVersion));
    }

    #[test]
    fn screen_same_policy_in_several_findings_is_handled_once() {
        let mut s = Screener::new("WS_AUDIT_");
        assert!(matches!(
            s.screen(&finding("WS_AUDIT_a", "1")),
            Screen::InScope(_)
        ));
        assert_eq!(
            s.screen(&finding("WS_AUDIT_a", "1")),
            Screen::Skip(SkipReason::DuplicateFinding)
        );
        assert_eq!(
            s.screen(&finding("WS_AUDIT_a", "2")),
            Screen::Skip(SkipReason::DuplicateFinding)
        );
        assert!(matches!(
            s.screen(&finding("WS_AUDIT_b", "1")),
            Screen::InScope(_)
        ));
    }
}
