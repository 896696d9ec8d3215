//! Reading a `SendMessageBatch` answer: which jobs are stored, which to send again, which SQS
//! refused. A batch call can succeed while some of its entries fail.

/// What SQS said of one entry of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryResult {
    Sent,
    /// Worth sending again: SQS's side, or the whole call failed.
    Retry(String),
    /// SQS refused the entry itself (`SenderFault`): sending it again cannot help.
    Refused(String),
}

/// One entry of a batch answer, as plain data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedEntry {
    pub id: String,
    pub sender_fault: bool,
    pub code: String,
    pub message: Option<String>,
}

/// Sorts a `SendMessageBatch` answer onto the entries sent, by entry id. An entry the answer
/// does not mention is sent again: an answer missing an entry is no proof it was stored.
pub fn sort_answer(
    sent_ids: &[String],
    successful: &[String],
    failed: &[FailedEntry],
) -> Vec<EntryResult> {
    sent_ids
        .iter()
        .map(|id| {
            if let Some(f) = failed.iter().find(|f| &f.id == id) {
                let why = format!(
                    "{}: {}",
                    f.code,
                    f.message.as_deref().unwrap_or("no message")
                );
                if f.sender_fault {
                    EntryResult::Refused(why)
                } else {
                    EntryResult::Retry(why)
                }
            } else if successful.contains(id) {
                EntryResult::Sent
            } else {
                EntryResult::Retry("SendMessageBatch did not answer for this entry".into())
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(id: &str, sender_fault: bool) -> FailedEntry {
        FailedEntry {
            id: id.into(),
            sender_fault,
            code: "Code".into(),
            message: Some("msg".into()),
        }
    }

    #[test]
    fn an_answer_is_sorted_onto_the_entries() {
        let ids: Vec<String> = ["0", "1", "2", "3"].map(String::from).to_vec();
        let results = sort_answer(
            &ids,
            &["0".into()],
            &[failed("1", false), failed("2", true)],
        );
        assert_eq!(results[0], EntryResult::Sent);
        assert_eq!(results[1], EntryResult::Retry("Code: msg".into()));
        assert_eq!(results[2], EntryResult::Refused("Code: msg".into()));
        // Not in the answer at all: sent again, never taken as sent.
        assert!(matches!(results[3], EntryResult::Retry(_)));
    }

    #[test]
    fn a_failure_wins_over_a_success_for_the_same_id() {
        let ids = vec!["0".to_owned()];
        let results = sort_answer(&ids, &["0".into()], &[failed("0", false)]);
        assert!(matches!(results[0], EntryResult::Retry(_)));
    }
}
