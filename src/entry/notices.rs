//! The notifications of one invocation (SPEC §8): built from each record's or batch's report
//! once its policies are done, published in the background, and counted at the end. A
//! notification that cannot be sent is logged and counted; it never fails the remediation.

use tokio::task::JoinSet;

use crate::aws::Publisher;
use crate::config::Config;
use crate::report::{
    notification, AuditReport, Entry, NotificationInput, NotificationKind, RecordOutcome,
};

pub struct Notices<'a> {
    publisher: Option<&'a Publisher>,
    config: &'a Config,
    sending: JoinSet<Result<(), String>>,
}

impl<'a> Notices<'a> {
    pub fn new(publisher: Option<&'a Publisher>, config: &'a Config) -> Self {
        Self {
            publisher,
            config,
            sending: JoinSet::new(),
        }
    }

    /// The notification of an audit record, when it was acted on.
    pub fn record(&mut self, outcome: &RecordOutcome) {
        if let RecordOutcome::Processed(report) = outcome {
            self.audit(NotificationKind::Audit, report, None);
        }
    }

    /// The notification of one audit record or rollback, naming its account and region.
    pub fn audit(&mut self, kind: NotificationKind, report: &AuditReport, reason: Option<&str>) {
        let entries: Vec<Entry> = report
            .findings
            .iter()
            .map(|finding| Entry {
                task_id: &report.task_id,
                finding,
            })
            .collect();
        self.send(&NotificationInput {
            kind,
            account: report.account_id.as_deref(),
            region: report.region.as_deref(),
            task_id: Some(&report.task_id),
            entries: &entries,
            totals: &report.totals,
            log_group: self.config.log_group.as_deref(),
            metrics_namespace: Some(&self.config.metrics_namespace),
            reason,
        });
    }

    /// Builds the message (nothing when nothing changed and nothing failed) and publishes it
    /// without holding up the policies still to do.
    pub fn send(&mut self, input: &NotificationInput<'_>) {
        let Some(publisher) = self.publisher else {
            return;
        };
        let Some(message) = notification(input) else {
            return;
        };
        let publisher = publisher.clone();
        self.sending.spawn(async move {
            publisher
                .publish(&message.subject, &message.message, &message.attributes)
                .await
        });
    }

    /// Waits for every publish; the number that failed (each logged at error level).
    pub async fn finish(mut self) -> u64 {
        let mut errors = 0;
        while let Some(sent) = self.sending.join_next().await {
            let error = match sent {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => e,
                Err(e) => format!("internal error: the publish task ended early: {e}"),
            };
            errors += 1;
            tracing::error!(error = %error, "notification not sent; the remediation is unaffected");
        }
        errors
    }
}
