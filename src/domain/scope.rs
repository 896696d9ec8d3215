//! Whose audit it is (SPEC §11): the account and region an audit's calls belong in, and the
//! credentials they need. Pure: ARNs and names in, a decision out.

use thiserror::Error;

/// An account and region: where IoT calls land, and what a quota, a client and a pacer are per.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope {
    pub account: String,
    pub region: String,
}

/// The function's own account, region and name, read off the invocation's function ARN
/// (`arn:<partition>:lambda:<region>:<account>:function:<name>[:<qualifier>]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Home {
    pub partition: String,
    pub scope: Scope,
    pub function_name: String,
}

/// How the calls of an audit are made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credentials {
    /// The function's own: its own account, in the audit's region.
    Own,
    /// Those of the member role, assumed in the audit's account.
    Member { role_arn: String },
}

/// Where one audit is worked on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub scope: Scope,
    pub credentials: Credentials,
}

/// Why an audit is not worked on.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum Foreign {
    #[error("the audit is of account {0}, not this function's, and MEMBER_ROLE_NAME is not set")]
    NoMemberRole(String),
    #[error("accountId {0:?} is not a 12-digit account id")]
    BadAccount(String),
}

impl Home {
    /// `None` for anything that is not a Lambda function ARN.
    pub fn from_function_arn(arn: &str) -> Option<Home> {
        let mut parts = arn.split(':');
        let (Some("arn"), Some(partition), Some("lambda"), Some(region), Some(account)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let (Some("function"), Some(name)) = (parts.next(), parts.next()) else {
            return None;
        };
        let filled = [partition, region, account, name];
        if filled.iter().any(|p| p.is_empty()) || !is_account_id(account) {
            return None;
        }
        Some(Home {
            partition: partition.to_owned(),
            scope: Scope {
                account: account.to_owned(),
                region: region.to_owned(),
            },
            function_name: name.to_owned(),
        })
    }
}

/// The region of an SNS topic ARN (`arn:<partition>:sns:<region>:<account>:<name>`).
pub fn topic_region(topic_arn: &str) -> Option<&str> {
    let mut parts = topic_arn.split(':');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("arn"), Some(_), Some("sns"), Some(region)) if !region.is_empty() => Some(region),
        _ => None,
    }
}

/// An audit message that names another account than its topic's: a topic of one account
/// carries only that account's audits (Device Defender publishes to a topic of the audited
/// account), so such a message is forged or misrouted. This is what makes it safe to let any
/// member topic of an organization invoke the function.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("the audit names account {account_id} but came from topic {topic_arn}")]
pub struct AccountMismatch {
    pub account_id: String,
    pub topic_arn: String,
}

/// The account an audit belongs to: its `accountId`, which must be the account of the topic it
/// came from; without one, the topic's account (so that leaving `accountId` out cannot move an
/// audit into the function's own account). `None` when neither names one: the function's own.
pub fn audit_account<'a>(
    account_id: Option<&'a str>,
    topic_arn: Option<&'a str>,
) -> Result<Option<&'a str>, AccountMismatch> {
    let topic_account = topic_arn
        .and_then(|arn| arn.split(':').nth(4))
        .filter(|a| !a.is_empty());
    match (account_id, topic_account) {
        (Some(named), Some(topic)) if named != topic => Err(AccountMismatch {
            account_id: named.to_owned(),
            topic_arn: topic_arn.unwrap_or_default().to_owned(),
        }),
        (Some(named), _) => Ok(Some(named)),
        (None, topic) => Ok(topic),
    }
}

fn is_account_id(account: &str) -> bool {
    account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())
}

/// Places an audit: its account (`accountId`, the function's own when the message names none)
/// and region (`region`, from the record; the function's own when unknown). Another account
/// needs the member role; the function's own account in another region does not.
pub fn place(
    home: &Home,
    account_id: Option<&str>,
    region: Option<&str>,
    member_role_name: Option<&str>,
) -> Result<Placement, Foreign> {
    let account = account_id.unwrap_or(&home.scope.account);
    if !is_account_id(account) {
        return Err(Foreign::BadAccount(account.to_owned()));
    }
    let scope = Scope {
        account: account.to_owned(),
        region: region.unwrap_or(&home.scope.region).to_owned(),
    };
    let credentials = if account == home.scope.account {
        Credentials::Own
    } else {
        let name = member_role_name.ok_or_else(|| Foreign::NoMemberRole(account.to_owned()))?;
        Credentials::Member {
            role_arn: format!("arn:{}:iam::{account}:role/{name}", home.partition),
        }
    };
    Ok(Placement { scope, credentials })
}

/// The `RoleSessionName` of an assumed member role: the function and the task, so that the
/// member account's CloudTrail says who acted and for which audit. STS allows 2 to 64 of
/// `[\w+=,.@-]`; anything else becomes `-`, and the end is cut.
pub fn session_name(function_name: &str, task_id: &str) -> String {
    let raw = format!("{function_name}@{task_id}");
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c);
    let name: String = raw
        .chars()
        .map(|c| if allowed(c) { c } else { '-' })
        .take(64)
        .collect();
    if name.len() < 2 {
        format!("{name}--")
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWN: &str = "123456789012";
    const MEMBER: &str = "111111111111";

    fn home() -> Home {
        Home::from_function_arn("arn:aws:lambda:us-east-1:123456789012:function:remediator")
            .unwrap()
    }

    #[test]
    fn the_function_arn_names_home() {
        let h = home();
        assert_eq!(
            (h.partition.as_str(), h.function_name.as_str()),
            ("aws", "remediator")
        );
        assert_eq!(h.scope.account, OWN);
        assert_eq!(h.scope.region, "us-east-1");
        let qualified = "arn:aws-cn:lambda:cn-north-1:123456789012:function:f:live";
        let h = Home::from_function_arn(qualified).unwrap();
        assert_eq!(
            (h.partition.as_str(), h.scope.region.as_str()),
            ("aws-cn", "cn-north-1")
        );
        for bad in [
            "",
            "arn:aws:sns:us-east-1:123456789012:topic",
            "arn:aws:lambda:us-east-1:123456789012:layer:x",
            "arn:aws:lambda::123456789012:function:f",
            "arn:aws:lambda:us-east-1:12345:function:f",
            "arn:aws:lambda:us-east-1:123456789012:function:",
        ] {
            assert_eq!(Home::from_function_arn(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_topic_arn_names_its_region() {
        assert_eq!(
            topic_region("arn:aws:sns:eu-west-1:111111111111:DDA"),
            Some("eu-west-1")
        );
        for bad in [
            "",
            "arn:aws:sqs:eu-west-1:1:q",
            "arn:aws:sns::1:t",
            "not an arn",
        ] {
            assert_eq!(topic_region(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_audit_comes_from_a_topic_of_its_own_account() {
        let topic = "arn:aws:sns:eu-west-1:111111111111:DDA";
        assert_eq!(audit_account(Some(MEMBER), Some(topic)), Ok(Some(MEMBER)));
        assert_eq!(
            audit_account(Some(OWN), Some(topic)),
            Err(AccountMismatch {
                account_id: OWN.into(),
                topic_arn: topic.into()
            })
        );
        // Without accountId the topic's account, never the function's own by default.
        assert_eq!(audit_account(None, Some(topic)), Ok(Some(MEMBER)));
        assert_eq!(audit_account(Some(OWN), None), Ok(Some(OWN)));
        assert_eq!(audit_account(None, None), Ok(None));
        // A topic ARN that names no account decides nothing.
        for odd in ["not an arn", "arn:aws:sns:eu-west-1::DDA"] {
            assert_eq!(audit_account(Some(OWN), Some(odd)), Ok(Some(OWN)), "{odd}");
            assert_eq!(audit_account(None, Some(odd)), Ok(None), "{odd}");
        }
    }

    #[test]
    fn own_audits_use_own_credentials_in_their_region() {
        let placed = place(&home(), Some(OWN), Some("eu-west-1"), None).unwrap();
        assert_eq!(placed.credentials, Credentials::Own);
        assert_eq!(placed.scope.region, "eu-west-1");
        let unnamed = place(&home(), None, None, Some("member")).unwrap();
        assert_eq!(unnamed.scope, home().scope);
        assert_eq!(unnamed.credentials, Credentials::Own);
    }

    #[test]
    fn member_audits_need_the_member_role() {
        assert_eq!(
            place(&home(), Some(MEMBER), Some("eu-west-1"), None),
            Err(Foreign::NoMemberRole(MEMBER.into()))
        );
        let placed = place(&home(), Some(MEMBER), Some("eu-west-1"), Some("Remediate")).unwrap();
        assert_eq!(
            placed.credentials,
            Credentials::Member {
                role_arn: "arn:aws:iam::111111111111:role/Remediate".into()
            }
        );
        assert_eq!(placed.scope.account, MEMBER);
        for bad in ["", "1111", "11111111111a", "1111111111111"] {
            assert!(matches!(
                place(&home(), Some(bad), None, Some("r")),
                Err(Foreign::BadAccount(_))
            ));
        }
    }

    #[test]
    fn session_names_are_what_sts_accepts() {
        assert_eq!(session_name("remediator", "7aa5"), "remediator@7aa5");
        let odd = session_name("f", "task id/with:odd*chars");
        assert_eq!(odd, "f@task-id-with-odd-chars");
        let long = session_name(&"f".repeat(100), "t");
        assert_eq!(long.len(), 64);
        let ok = |s: &str| {
            (2..=64).contains(&s.len())
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
        };
        for (f, t) in [("", ""), ("é", "ü"), ("a", "")] {
            assert!(ok(&session_name(f, t)), "{f:?} {t:?}");
        }
    }
}
