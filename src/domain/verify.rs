//! Verifying a fan-out job against its audit finding (SPEC §10). A job is a claim made by
//! whoever could send to the queue; only the finding `DescribeAuditFinding` returns is a fact.

use thiserror::Error;

use super::finding::{Finding, PolicyVersionRef};
use super::message::OVERLY_PERMISSIVE_CHECK;

/// A finding as `DescribeAuditFinding` returns it: the check that reported it, and the parts
/// decisions use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DescribedFinding {
    pub check_name: Option<String>,
    pub finding: Finding,
}

/// Why a job is not acted on. Each is final: the job is done (not retried) and logged at error
/// level, since only a bug or someone writing to the queue by hand produces one.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum Unverified {
    #[error("the job has no findingId: a job must name the audit finding it comes from")]
    NoFindingId,
    #[error("no audit finding {0} exists")]
    NoSuchFinding(String),
    #[error("finding {id} is of check {check}, not {OVERLY_PERMISSIVE_CHECK}")]
    OtherCheck { id: String, check: String },
    #[error("finding {id} names {named}, not the job's {claimed}")]
    OtherPolicyVersion {
        id: String,
        named: String,
        claimed: String,
    },
    #[error("finding {0} is suppressed")]
    Suppressed(String),
}

/// Whether `described` (the answer for `finding_id`, `None`: not found) backs a job for
/// `claimed`. The current suppressions are checked by the batch's screening, before any call.
pub fn verify_job(
    claimed: &PolicyVersionRef,
    finding_id: &str,
    described: Option<&DescribedFinding>,
) -> Result<(), Unverified> {
    let id = || finding_id.to_owned();
    let Some(described) = described else {
        return Err(Unverified::NoSuchFinding(id()));
    };
    let check = described.check_name.as_deref().unwrap_or("none");
    if check != OVERLY_PERMISSIVE_CHECK {
        return Err(Unverified::OtherCheck {
            id: id(),
            check: check.to_owned(),
        });
    }
    let finding = &described.finding;
    if finding.policy.as_ref() != Some(claimed) {
        return Err(Unverified::OtherPolicyVersion {
            id: id(),
            named: finding.policy.as_ref().map_or_else(
                || "no policy version".to_owned(),
                |p| format!("{} version {}", p.policy_name, p.version_id),
            ),
            claimed: format!("{} version {}", claimed.policy_name, claimed.version_id),
        });
    }
    if finding.is_suppressed {
        return Err(Unverified::Suppressed(id()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::IOT_POLICY;

    fn policy(name: &str, version: &str) -> PolicyVersionRef {
        PolicyVersionRef {
            policy_name: name.into(),
            version_id: version.into(),
        }
    }

    fn described(check: &str, name: &str, version: &str) -> DescribedFinding {
        DescribedFinding {
            check_name: Some(check.into()),
            finding: Finding {
                finding_id: Some("f1".into()),
                resource_type: Some(IOT_POLICY.into()),
                policy: Some(policy(name, version)),
                is_suppressed: false,
            },
        }
    }

    #[test]
    fn a_finding_of_the_check_naming_the_same_version_backs_the_job() {
        let genuine = described(OVERLY_PERMISSIVE_CHECK, "WS_AUDIT_a", "3");
        assert_eq!(
            verify_job(&policy("WS_AUDIT_a", "3"), "f1", Some(&genuine)),
            Ok(())
        );
    }

    #[test]
    fn anything_else_is_unverified_and_says_why() {
        let claimed = policy("WS_AUDIT_a", "3");
        let check = |d: Option<&DescribedFinding>| verify_job(&claimed, "f1", d).unwrap_err();
        assert_eq!(check(None), Unverified::NoSuchFinding("f1".into()));
        let other = described("CA_CERTIFICATE_EXPIRING_CHECK", "WS_AUDIT_a", "3");
        assert!(
            matches!(check(Some(&other)), Unverified::OtherCheck { check, .. }
            if check == "CA_CERTIFICATE_EXPIRING_CHECK")
        );
        let unnamed = DescribedFinding {
            check_name: None,
            ..described(OVERLY_PERMISSIVE_CHECK, "WS_AUDIT_a", "3")
        };
        assert!(
            matches!(check(Some(&unnamed)), Unverified::OtherCheck { check, .. } if check == "none")
        );
        for (name, version) in [
            ("WS_AUDIT_a", "2"),
            ("WS_AUDIT_b", "3"),
            ("ws_audit_a", "3"),
        ] {
            let d = described(OVERLY_PERMISSIVE_CHECK, name, version);
            let e = check(Some(&d));
            assert!(
                matches!(&e, Unverified::OtherPolicyVersion { .. }),
                "{name} {version}"
            );
            assert!(e.to_string().contains("WS_AUDIT_a version 3"), "{e}");
        }
        let mut no_policy = described(OVERLY_PERMISSIVE_CHECK, "WS_AUDIT_a", "3");
        no_policy.finding.policy = None;
        assert!(check(Some(&no_policy))
            .to_string()
            .contains("names no policy version"));
        let mut suppressed = described(OVERLY_PERMISSIVE_CHECK, "WS_AUDIT_a", "3");
        suppressed.finding.is_suppressed = true;
        assert_eq!(
            check(Some(&suppressed)),
            Unverified::Suppressed("f1".into())
        );
    }
}
