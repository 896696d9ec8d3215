//! Paging `ListAuditFindings` for one audit task and check, as a stream of pages.

use aws_sdk_iot::types::AuditFinding;
use aws_sdk_iot::Client;
use futures::stream::{self, Stream};

use crate::iot_error::IotError;
use crate::pace::{Operation, Pacer};

/// The largest page `ListAuditFindings` allows.
pub const MAX_PAGE_SIZE: i32 = 250;

/// The policy version a finding names.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PolicyVersionRef {
    pub policy_name: String,
    pub version_id: String,
}

/// The parts of an audit finding that decisions use, as plain data.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Finding {
    pub finding_id: Option<String>,
    /// `nonCompliantResource.resourceType`, as the API spells it (`IOT_POLICY`, ...).
    pub resource_type: Option<String>,
    pub policy: Option<PolicyVersionRef>,
    pub is_suppressed: bool,
}

pub const IOT_POLICY: &str = "IOT_POLICY";

impl From<&AuditFinding> for Finding {
    fn from(f: &AuditFinding) -> Self {
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
        Self {
            finding_id: f.finding_id().map(str::to_owned),
            resource_type: resource
                .and_then(|r| r.resource_type())
                .map(|t| t.as_str().to_owned()),
            policy,
            is_suppressed: f.is_suppressed().unwrap_or(false),
        }
    }
}

/// One page of findings, and whether another page follows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Page {
    pub findings: Vec<Finding>,
    pub more: bool,
}

/// The unsuppressed findings of one check of one audit task, page by page. Pages are fetched
/// only as the consumer pulls them, so a large audit streams instead of piling up in memory.
/// A page may be empty while more follow: paging stops only when `nextToken` is absent or empty.
/// After an error the stream ends.
pub fn pages<'a>(
    client: &'a Client,
    pacer: &'a Pacer,
    task_id: &'a str,
    check_name: &'a str,
) -> impl Stream<Item = Result<Page, IotError>> + 'a {
    // State: the token for the next page; `None` once the last page has been read.
    stream::try_unfold(Some(None::<String>), move |next| async move {
        let Some(token) = next else {
            return Ok(None);
        };
        pacer.wait(Operation::ListAuditFindings).await;
        let out = client
            .list_audit_findings()
            .task_id(task_id)
            .check_name(check_name)
            .list_suppressed_findings(false)
            .max_results(MAX_PAGE_SIZE)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| IotError::from_sdk(Operation::ListAuditFindings.name(), e))?;
        let next = out
            .next_token()
            .filter(|t| !t.is_empty())
            .map(|t| Some(t.to_owned()));
        let page = Page {
            findings: out.findings().iter().map(Finding::from).collect(),
            more: next.is_some(),
        };
        Ok(Some((page, next)))
    })
}
