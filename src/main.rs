//! Wiring only: tracing, configuration, the IoT and SQS clients, the Lambda runtime.

use std::sync::Arc;

use iot_audit_remediator::apply::Remediator;
use iot_audit_remediator::config::Config;
use iot_audit_remediator::handler::{handle, Cutoff};
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
        max_concurrency = config.max_concurrency.get(),
        api_calls_per_second = config.api_calls_per_second,
        fanout_queue = config.fanout.as_ref().map_or("-", |f| f.queue_url.as_str()),
        fanout_workers = config.fanout.as_ref().map_or(0, |f| f.workers),
        "configured"
    );
    let fanout = config.fanout.is_some();
    let mut remediator = Remediator::new(
        iot_audit_remediator::iot_client(&sdk_config),
        config,
        policy,
    );
    if fanout {
        remediator = remediator.with_queue(iot_audit_remediator::sqs_client(&sdk_config));
    }
    let remediator = Arc::new(remediator);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let remediator = Arc::clone(&remediator);
        tracing::debug!(deadline_ms = event.context.deadline, "invocation");
        let cutoff =
            Cutoff::before_deadline(event.context.deadline, remediator.config().deadline_margin);
        async move { handle(&remediator, &event.payload, cutoff).await }
    }))
    .await
}
