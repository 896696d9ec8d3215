//! The thin AWS edge: the clients with their retry and timeout policy, the count of throttled
//! IoT attempts, the port the engine is generic over and its implementation on the IoT client
//! (one SDK call per method, no decisions), the findings pager, typed IoT errors, the pacer, and
//! the queue sender. Every SDK call of the function is in this folder.

mod clients;
mod connect;
mod error;
mod findings;
mod iot;
mod notify;
mod operation;
mod pace;
mod port;
mod queue;
mod throttles;

pub use clients::{
    iot_client, sns_client, sqs_client, with_call_policy, ATTEMPT_TIMEOUT, IOT_ACTIONS,
    MAX_ATTEMPTS, MAX_BACKOFF, OPERATION_TIMEOUT, SNS_ACTIONS, SQS_ACTIONS,
};
pub use connect::Connector;
pub use error::{IotError, IotErrorKind};
pub use findings::{pages, suppressions, Page};
pub use iot::{SdkIot, MAX_PAGE_SIZE};
pub use notify::Publisher;
pub use operation::Operation;
pub use pace::Pacer;
pub use port::{
    FindingsPage, Iot, Listed, PolicyDefault, SuppressionRequest, SuppressionsPage, Targets,
};
pub use queue::{Enqueuer, BATCH_SIZE, SEND_ROUNDS};
pub use throttles::{with_throttle_count, Throttles};
