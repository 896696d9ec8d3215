//! The application context: what every part of an invocation shares. It holds fields and no
//! behaviour; its constructors only wire (the SDK client paced as configured, the queue).

use crate::aws::{Enqueuer, Pacer, SdkIot};
use crate::config::Config;
use crate::domain::RestrictivePolicy;

/// Built once per process, shared by every invocation and every policy task.
#[derive(Debug)]
pub struct App<P> {
    /// The IoT calls (the SDK client in production, an in-memory fake in tests).
    pub iot: P,
    pub config: Config,
    pub restrictive: RestrictivePolicy,
    /// The fan-out queue, when audits are fanned out (`FANOUT_QUEUE_URL`).
    pub queue: Option<Enqueuer>,
}

impl<P> App<P> {
    /// Without a fan-out queue.
    pub fn new(iot: P, config: Config, restrictive: RestrictivePolicy) -> Self {
        Self {
            iot,
            config,
            restrictive,
            queue: None,
        }
    }
}

impl App<SdkIot> {
    /// The production wiring: the IoT client paced as the configuration says, and the queue
    /// when one is configured (without a queue URL there is nothing to send to, and `sqs` is
    /// not used).
    pub fn on_sdk(
        iot: aws_sdk_iot::Client,
        sqs: Option<aws_sdk_sqs::Client>,
        config: Config,
        restrictive: RestrictivePolicy,
    ) -> Self {
        let pacer = Pacer::per_operation(|op| config.pace(op));
        let queue = config
            .fanout
            .as_ref()
            .zip(sqs)
            .map(|(fanout, sqs)| Enqueuer::new(sqs, fanout.queue_url.clone()));
        Self {
            queue,
            ..Self::new(SdkIot::new(iot, pacer), config, restrictive)
        }
    }
}
