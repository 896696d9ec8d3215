//! Wiring only: tracing, configuration, the IoT and SQS clients, the Lambda runtime.

// The handler future nests the doors, the engine and the SDK calls deeper than the default
// layout query depth allows.
#![recursion_limit = "256"]

use std::sync::Arc;

use iot_audit_remediator::aws::{iot_client, sns_client, sqs_client, Connector, Throttles};
use iot_audit_remediator::config::Config;
use iot_audit_remediator::domain::{Home, RestrictivePolicy};
use iot_audit_remediator::engine::{App, Cutoff, SdkClients};
use iot_audit_remediator::entry::handle;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    // A bad setting or a broken built-in document fails the init, naming the cause.
    let config =
        Config::from_env().inspect_err(|e| tracing::error!(error = %e, "bad configuration"))?;
    let partition = config.partition();
    if config.region.is_none() {
        tracing::warn!(%partition, "AWS_REGION is not set: the restrictive document names the aws partition");
    }
    let policy = RestrictivePolicy::for_partition(partition)
        .inspect_err(|e| tracing::error!(error = %e, "bad built-in policy document"))?;
    let sdk_config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    tracing::info!(
        prefix = %config.target_policy_prefix, dry_run = config.dry_run,
        keep_replaced_version = config.keep_replaced_version,
        max_concurrency = config.max_concurrency.get(),
        api_calls_per_second = config.api_calls_per_second,
        fanout_queue = config.fanout.as_ref().map_or("-", |f| f.queue_url.as_str()),
        fanout_workers = config.fanout.as_ref().map_or(0, |f| f.workers),
        region = config.region.as_deref().unwrap_or("-"), %partition,
        "configured"
    );
    // Throttled IoT attempts, for the invocation's `Throttled` metric (SPEC §8); the SQS and
    // SNS clients only when a queue and a topic are configured.
    let throttles = Throttles::default();
    let clients = SdkClients {
        iot: iot_client(&sdk_config, &throttles),
        sqs: config.fanout.as_ref().map(|_| sqs_client(&sdk_config)),
        sns: config
            .notification_topic_arn
            .as_ref()
            .map(|_| sns_client(&sdk_config)),
        // Other accounts' audits and other regions (SPEC §11), with the same throttle count.
        connector: Some(Connector::new(
            sdk_config.clone(),
            throttles.clone(),
            config.member.as_ref().and_then(|m| m.external_id.clone()),
        )),
        throttles,
    };
    let app = Arc::new(App::on_sdk(clients, config, policy));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let app = Arc::clone(&app);
        tracing::debug!(deadline_ms = event.context.deadline, "invocation");
        // The function's own account and region, from its ARN (no call); the same for every
        // invocation of the process.
        if app.home.get().is_none() {
            match Home::from_function_arn(&event.context.invoked_function_arn) {
                Some(home) => {
                    let _ = app.home.set(home);
                }
                None => tracing::warn!(arn = %event.context.invoked_function_arn,
                    "not a function ARN: every audit is worked in this account and region"),
            }
        }
        let cutoff = Cutoff::before_deadline(event.context.deadline, app.config.deadline_margin);
        async move { handle(&app, &event.payload, cutoff).await }
    }))
    .await
}
