//! Paging `ListAuditFindings` for one audit task and check, as a stream of pages, and
//! `ListAuditSuppressions` for one check, to the end.

use futures::stream::{self, Stream};

use crate::domain::{Finding, Suppression};

use super::error::IotError;
use super::port::{Iot, Listed};

/// One page of findings, and whether another page follows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Page {
    pub findings: Vec<Finding>,
    pub more: bool,
}

/// The findings of one check of one audit task (`listed` says which), page by page. Pages are fetched
/// only as the consumer pulls them, so a large audit streams instead of piling up in memory.
/// A page may be empty while more follow: paging stops only when `nextToken` is absent or empty.
/// After an error the stream ends.
pub fn pages<'a, P: Iot>(
    iot: &'a P,
    task_id: &'a str,
    check_name: &'a str,
    listed: Listed,
) -> impl Stream<Item = Result<Page, IotError>> + 'a {
    // State: the token for the next page; `None` once the last page has been read.
    stream::try_unfold(Some(None::<String>), move |next| async move {
        let Some(token) = next else {
            return Ok(None);
        };
        let out = iot
            .list_findings(task_id, check_name, listed, token)
            .await?;
        let next = out.next_token.filter(|t| !t.is_empty()).map(Some);
        let page = Page {
            findings: out.findings,
            more: next.is_some(),
        };
        Ok(Some((page, next)))
    })
}

/// Every suppression of one check, all pages (an account has few; they are read once per
/// audit). Paging stops only when `nextToken` is absent or empty.
pub async fn suppressions<P: Iot>(iot: &P, check_name: &str) -> Result<Vec<Suppression>, IotError> {
    let mut all = Vec::new();
    let mut token = None;
    loop {
        let page = iot.list_suppressions(check_name, token).await?;
        all.extend(page.suppressions);
        token = page.next_token.filter(|t| !t.is_empty());
        if token.is_none() {
            return Ok(all);
        }
    }
}
