//! A fan-out job's path: its audit finding first (SPEC §10), then the same remediation as an
//! inline finding. The job only says which policy version to look at; the finding decides.

use crate::aws::Iot;
use crate::domain::{verify_job, SkipReason, Target, Unverified};
use crate::report::{FindingReport, Outcome};

use super::context::App;
use super::remediate::remediate;

/// Reads the job's finding and remediates only when it backs the job. An unverified job is
/// `skipped` `unverified_job` (final: a retry would read the same finding); a failed read is
/// `failed`, so the job comes back.
pub async fn remediate_job<P: Iot>(app: &App<P>, target: Target) -> FindingReport {
    let verified = match target.finding_id.as_deref() {
        None => Err(Unverified::NoFindingId),
        Some(id) => match app.iot.describe_finding(id).await {
            Ok(described) => verify_job(&target.policy, id, described.as_ref()),
            Err(e) => {
                let outcome = Outcome::Failed {
                    error: e.to_string(),
                };
                return FindingReport::for_target(&target, outcome);
            }
        },
    };
    match verified {
        Ok(()) => remediate(app, target).await,
        Err(why) => {
            tracing::error!(finding = target.finding_id.as_deref().unwrap_or("-"),
                policy = %target.policy.policy_name, flagged_version = %target.policy.version_id,
                why = %why, "unverified job: not acting on it (was it put on the queue by hand?)");
            let outcome = Outcome::Skipped {
                reason: SkipReason::UnverifiedJob,
            };
            FindingReport::for_target(&target, outcome)
        }
    }
}
