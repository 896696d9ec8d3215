//! Remediation planning: pure decisions over plain data (SPEC §3.3–§3.4). No I/O here.

use std::cmp::Ordering;
use std::collections::HashSet;

use serde::Serialize;

use crate::config::Config;
use crate::findings::{Finding, PolicyVersionRef, IOT_POLICY};

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
}

impl Screener {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            seen: HashSet::new(),
        }
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
        if finding.is_suppressed {
            return Screen::Skip(SkipReason::Suppressed);
        }
        if !policy.policy_name.starts_with(&self.prefix) {
            return Screen::Skip(SkipReason::OutOfScope);
        }
        Screen::InScope(policy.clone())
    }
}

/// A policy as `GetPolicy` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyState {
    pub default_version_id: String,
    /// Whether the default document equals the restrictive one as a JSON value.
    pub default_is_restrictive: bool,
}

/// What to do with the replaced version once the restrictive default is in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterCreate {
    DeleteReplaced,
    KeepReplaced,
}

/// The decision for one in-scope policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Skip(SkipReason),
    /// Already remediated. When an interrupted earlier run left the flagged permissive version
    /// behind as a non-default version, `leftover` names it for deletion.
    AlreadyRemediated {
        leftover: Option<String>,
    },
    /// The audit flagged the restrictive document itself.
    RestrictiveFlagged,
    /// Install the restrictive document as the new default in place of `replaced`.
    Remediate {
        replaced: String,
        after: AfterCreate,
    },
}

/// Decides what to do with the policy a finding names, given its current state (`None`: gone).
/// Dry run does not change the decision, only whether it is carried out.
pub fn decide(
    flagged: &PolicyVersionRef,
    state: Option<&PolicyState>,
    config: &Config,
) -> Decision {
    let Some(state) = state else {
        return Decision::Skip(SkipReason::PolicyNotFound);
    };
    let flagged_is_default = same_version(&flagged.version_id, &state.default_version_id);
    match (state.default_is_restrictive, flagged_is_default) {
        (true, true) => Decision::RestrictiveFlagged,
        (true, false) => Decision::AlreadyRemediated {
            leftover: (!config.keep_replaced_version).then(|| flagged.version_id.clone()),
        },
        (false, false) => Decision::Skip(SkipReason::StaleFinding),
        (false, true) => Decision::Remediate {
            replaced: state.default_version_id.clone(),
            after: if config.keep_replaced_version {
                AfterCreate::KeepReplaced
            } else {
                AfterCreate::DeleteReplaced
            },
        },
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

/// One entry of `ListPolicyVersions`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionInfo {
    pub version_id: String,
    pub is_default: bool,
    /// `createDate` in epoch milliseconds, when IoT gave one.
    pub created_ms: Option<i64>,
}

/// The version to delete to free a slot at the 5-version limit: the oldest non-default one, by
/// `createDate` and then numeric version id, never by response order. `None` when every
/// version is the default (cannot happen at the limit, but never guess).
pub fn oldest_non_default(versions: &[VersionInfo]) -> Option<&VersionInfo> {
    versions.iter().filter(|v| !v.is_default).min_by(|a, b| {
        let by_date = match (a.created_ms, b.created_ms) {
            (Some(x), Some(y)) => x.cmp(&y),
            // A version without a date sorts after dated ones: we only delete what we can order.
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        by_date.then_with(|| compare_version_ids(&a.version_id, &b.version_id))
    })
}

/// Non-default versions created after `replaced`: the only places where a concurrent run of the
/// same event can have left a duplicate restrictive version. Their documents still have to be
/// checked before anything is deleted.
pub fn duplicate_candidates<'a>(
    versions: &'a [VersionInfo],
    replaced: &str,
) -> impl Iterator<Item = &'a VersionInfo> + 'a {
    let replaced = replaced.to_owned();
    versions.iter().filter(move |v| {
        !v.is_default && compare_version_ids(&v.version_id, &replaced) == Ordering::Greater
    })
}

/// True when `created` is not the version id IoT hands out next after every id in `known`:
/// someone created a version in between (ids are never reused). An id that is not a number
/// counts as a gap, so the caller looks rather than guesses.
pub fn others_created_since<'a>(created: &str, known: impl IntoIterator<Item = &'a str>) -> bool {
    let Ok(created) = created.parse::<u64>() else {
        return true;
    };
    let mut newest = None;
    for id in known {
        match id.parse::<u64>() {
            Ok(n) => newest = newest.max(Some(n)),
            Err(_) => return true,
        }
    }
    newest.is_none_or(|n| created != n + 1)
}

/// Version ids are decimal strings: compare them as numbers ("10" > "9"), text as a fallback.
pub fn compare_version_ids(a: &str, b: &str) -> Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    }
}

fn same_version(a: &str, b: &str) -> bool {
    compare_version_ids(a, b) == Ordering::Equal
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

    fn flagged(version: &str) -> PolicyVersionRef {
        PolicyVersionRef {
            policy_name: "WS_AUDIT_p".into(),
            version_id: version.into(),
        }
    }

    fn state(default: &str, restrictive: bool) -> PolicyState {
        PolicyState {
            default_version_id: default.into(),
            default_is_restrictive: restrictive,
        }
    }

    fn keep() -> Config {
        Config {
            keep_replaced_version: true,
            ..Config::default()
        }
    }

    fn version(id: &str, is_default: bool, created_ms: Option<i64>) -> VersionInfo {
        VersionInfo {
            version_id: id.into(),
            is_default,
            created_ms,
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

    #[test]
    fn decide_policy_gone() {
        assert_eq!(
            decide(&flagged("1"), None, &Config::default()),
            Decision::Skip(SkipReason::PolicyNotFound)
        );
    }

    #[test]
    fn decide_remediate() {
        assert_eq!(
            decide(&flagged("1"), Some(&state("1", false)), &Config::default()),
            Decision::Remediate {
                replaced: "1".into(),
                after: AfterCreate::DeleteReplaced
            }
        );
        assert_eq!(
            decide(&flagged("1"), Some(&state("1", false)), &keep()),
            Decision::Remediate {
                replaced: "1".into(),
                after: AfterCreate::KeepReplaced
            }
        );
    }

    #[test]
    fn decide_dry_run_decides_the_same() {
        let dry = Config {
            dry_run: true,
            ..Config::default()
        };
        for st in [None, Some(state("1", false)), Some(state("2", true))] {
            assert_eq!(
                decide(&flagged("1"), st.as_ref(), &dry),
                decide(&flagged("1"), st.as_ref(), &Config::default())
            );
        }
    }

    #[test]
    fn decide_stale_finding() {
        assert_eq!(
            decide(&flagged("1"), Some(&state("2", false)), &Config::default()),
            Decision::Skip(SkipReason::StaleFinding)
        );
    }

    #[test]
    fn decide_already_remediated_finishes_an_interrupted_run() {
        assert_eq!(
            decide(&flagged("1"), Some(&state("2", true)), &Config::default()),
            Decision::AlreadyRemediated {
                leftover: Some("1".into())
            }
        );
        assert_eq!(
            decide(&flagged("1"), Some(&state("2", true)), &keep()),
            Decision::AlreadyRemediated { leftover: None }
        );
    }

    #[test]
    fn decide_restrictive_document_itself_flagged() {
        assert_eq!(
            decide(&flagged("2"), Some(&state("2", true)), &Config::default()),
            Decision::RestrictiveFlagged
        );
        // Version ids compare as numbers.
        assert_eq!(
            decide(&flagged("02"), Some(&state("2", true)), &Config::default()),
            Decision::RestrictiveFlagged
        );
    }

    #[test]
    fn version_limit_picks_oldest_non_default_by_date_then_id() {
        // The permissive version is both the default and the oldest: it must not be chosen.
        let versions = [
            version("5", false, Some(5_000)),
            version("1", true, Some(1_000)),
            version("3", false, Some(3_000)),
            version("2", false, Some(2_000)),
            version("4", false, Some(4_000)),
        ];
        assert_eq!(oldest_non_default(&versions).unwrap().version_id, "2");
        // Same date: numeric id decides, "9" before "10".
        let versions = [
            version("10", false, Some(7)),
            version("9", false, Some(7)),
            version("11", true, Some(1)),
        ];
        assert_eq!(oldest_non_default(&versions).unwrap().version_id, "9");
        // Undated versions come last.
        let versions = [version("1", false, None), version("2", false, Some(9))];
        assert_eq!(oldest_non_default(&versions).unwrap().version_id, "2");
        assert_eq!(oldest_non_default(&[version("1", true, Some(1))]), None);
        assert_eq!(oldest_non_default(&[]), None);
    }

    #[test]
    fn duplicate_candidates_are_newer_non_default_versions() {
        let versions = [
            version("1", false, Some(1)),
            version("3", false, Some(3)),
            version("10", true, Some(10)),
            version("9", false, Some(9)),
        ];
        let ids: Vec<&str> = duplicate_candidates(&versions, "2")
            .map(|v| v.version_id.as_str())
            .collect();
        assert_eq!(ids, ["3", "9"]);
    }

    #[test]
    fn a_gap_in_version_ids_means_someone_else_created_one() {
        assert!(!others_created_since("2", ["1"]));
        assert!(!others_created_since("6", ["5", "3", "4"]));
        assert!(others_created_since("3", ["1"]));
        assert!(others_created_since("7", ["5", "3"]));
        assert!(others_created_since("x", ["1"]));
        assert!(others_created_since("2", ["a"]));
        assert!(others_created_since("2", []));
    }

    #[test]
    fn version_ids_compare_numerically() {
        assert_eq!(compare_version_ids("10", "9"), Ordering::Greater);
        assert_eq!(compare_version_ids("007", "7"), Ordering::Equal);
        assert_eq!(compare_version_ids("b", "a"), Ordering::Greater);
    }
}
