//! Wiring only: tracing, configuration, the IoT client, the Lambda runtime.

use std::sync::Arc;

use iot_audit_remediator::apply::Remediator;
use iot_audit_remediator::config::Config;
use iot_audit_remediator::handler::{handle_event, Cutoff};
use iot_audit_remediator::restrictive::RestrictivePolicy;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    // A bad setting or a broken built-in document fails the init, naming the cause.
    let config =
        Config::from_env().inspect_err(|e| tracing::error!(error = %e, "bad configuration"))?;
    let policy = RestrictivePolicy::builtin()
        .inspect_err(|e| tracing::error!(error = %e, "bad built-in policy document"))?;
    let sdk_config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    tracing::info!(
        prefix = %config.target_policy_prefix, dry_run = config.dry_run,
        keep_replaced_version = config.keep_replaced_version,
        max_concurrency = config.max_concurrency.get(), "configured"
    );
    let remediator = Arc::new(Remediator::new(
        iot_audit_remediator::iot_client(&sdk_config),
        config,
        policy,
    ));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let remediator = Arc::clone(&remediator);
        tracing::debug!(deadline_ms = event.context.deadline, "invocation");
        let cutoff =
            Cutoff::before_deadline(event.context.deadline, remediator.config().deadline_margin);
        async move { handle_event(&remediator, &event.payload, cutoff).await }
    }))
    .await
}
