//! The application context: what every part of an invocation shares. It holds fields and no
//! behaviour; its constructors only wire (the SDK clients, paced and counted as configured).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use futures::future::BoxFuture;
use tokio::sync::Mutex;

use crate::aws::{Connector, Enqueuer, Pacer, Publisher, SdkIot, Throttles};
use crate::config::Config;
use crate::domain::{Home, Placement, RestrictivePolicy, Scope};

/// Built once per process, shared by every invocation and every policy task.
#[derive(Debug)]
pub struct App<P> {
    /// The IoT calls (the SDK client in production, an in-memory fake in tests).
    pub iot: P,
    pub config: Config,
    pub restrictive: RestrictivePolicy,
    /// The fan-out queue, when audits are fanned out (`FANOUT_QUEUE_URL`).
    pub queue: Option<Enqueuer>,
    /// The notification topic, when one is configured (`NOTIFICATION_TOPIC_ARN`).
    pub notifier: Option<Publisher>,
    /// Throttled IoT attempts, for the invocation's `Throttled` metric.
    pub throttles: Throttles,
    /// The function's own account, region and name, from the first invocation's function ARN;
    /// unset, every audit is worked with this application.
    pub home: OnceLock<Home>,
    /// The applications of other accounts and regions; `None`: none are made.
    pub scopes: Option<Scopes<P>>,
    /// The account and region of an application of another account or region; `None` for
    /// the function's own (its `home`).
    pub scope: Option<Scope>,
}

/// Makes the IoT port of a placement; the string names the member role's session.
pub type Connect<P> = Box<dyn Fn(Placement, String) -> BoxFuture<'static, P> + Send + Sync>;

/// The applications of other accounts and regions, made on first use (`App::for_audit`).
pub struct Scopes<P> {
    pub(super) connect: Connect<P>,
    pub(super) apps: Mutex<HashMap<Scope, Arc<App<P>>>>,
}

impl<P> Scopes<P> {
    pub fn new(connect: Connect<P>) -> Self {
        Self {
            connect,
            apps: Mutex::new(HashMap::new()),
        }
    }
}

impl<P> std::fmt::Debug for Scopes<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scopes").finish_non_exhaustive()
    }
}

/// The SDK clients the production wiring takes. `sqs` and `sns` are used only when the
/// configuration names a queue and a topic.
#[derive(Debug)]
pub struct SdkClients {
    /// Built with `throttles` attached (`aws::iot_client`).
    pub iot: aws_sdk_iot::Client,
    pub sqs: Option<aws_sdk_sqs::Client>,
    pub sns: Option<aws_sdk_sns::Client>,
    pub throttles: Throttles,
    /// The clients of other accounts and regions; `None`: every audit in the function's own.
    pub connector: Option<Connector>,
}

impl<P> App<P> {
    /// Without a fan-out queue or notifications.
    pub fn new(iot: P, config: Config, restrictive: RestrictivePolicy) -> Self {
        Self {
            iot,
            config,
            restrictive,
            queue: None,
            notifier: None,
            throttles: Throttles::default(),
            home: OnceLock::new(),
            scopes: None,
            scope: None,
        }
    }
}

impl App<SdkIot> {
    /// The production wiring: the IoT client paced as the configuration says, the queue and
    /// the topic when they are configured.
    pub fn on_sdk(clients: SdkClients, config: Config, restrictive: RestrictivePolicy) -> Self {
        let pacer = Pacer::per_operation(|op| config.pace(op));
        let queue = config
            .fanout
            .as_ref()
            .zip(clients.sqs)
            .map(|(fanout, sqs)| Enqueuer::new(sqs, fanout.queue_url.clone()));
        let notifier = config
            .notification_topic_arn
            .as_ref()
            .zip(clients.sns)
            .map(|(topic, sns)| Publisher::new(sns, topic.clone()));
        let scopes = clients
            .connector
            .map(|connector| scopes(connector, &config));
        Self {
            queue,
            notifier,
            throttles: clients.throttles,
            scopes,
            ..Self::new(SdkIot::new(clients.iot, pacer), config, restrictive)
        }
    }
}

/// Each account and region gets its own client and its own pacer: quotas are per account and
/// region, so two accounts' audits run side by side, each at its own.
fn scopes(connector: Connector, config: &Config) -> Scopes<SdkIot> {
    let config = config.clone();
    Scopes::new(Box::new(move |placement, session| {
        let (connector, config) = (connector.clone(), config.clone());
        Box::pin(async move {
            let client = connector.iot(&placement, &session).await;
            SdkIot::new(client, Pacer::per_operation(|op| config.pace(op)))
        })
    }))
}
