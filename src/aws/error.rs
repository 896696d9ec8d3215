//! IoT call errors, classified by what the caller does about them.

use aws_sdk_iot::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use thiserror::Error;

use super::operation::Operation;

/// What an error from IoT means for the remediation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IotErrorKind {
    /// `ResourceNotFoundException`: the policy or version is gone.
    NotFound,
    /// `VersionsLimitExceededException`: the policy already has 5 versions.
    VersionsLimit,
    /// `ResourceAlreadyExistsException`: e.g. a suppression of that finding exists.
    AlreadyExists,
    /// A delete refused because the version is the default or in use. The model lists
    /// `DeleteConflictException`; moto answers `InvalidRequestException`; the live code is not
    /// documented, so both mean this.
    InUse,
    /// Anything else, after the SDK's retries: throttling that outlasted them, 5xx, timeouts,
    /// permissions.
    Other,
}

#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("{operation}: {message}")]
pub struct IotError {
    pub operation: Operation,
    pub kind: IotErrorKind,
    pub code: Option<String>,
    pub message: String,
}

impl IotError {
    pub fn from_sdk<E, R>(operation: Operation, err: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let code = err.code().map(str::to_owned);
        let kind = match code.as_deref() {
            Some("ResourceNotFoundException") => IotErrorKind::NotFound,
            Some("VersionsLimitExceededException") => IotErrorKind::VersionsLimit,
            Some("ResourceAlreadyExistsException") => IotErrorKind::AlreadyExists,
            Some("DeleteConflictException" | "InvalidRequestException") => IotErrorKind::InUse,
            _ => IotErrorKind::Other,
        };
        let message = match (&code, err.message()) {
            (Some(code), Some(msg)) => format!("{code}: {msg}"),
            (Some(code), None) => code.clone(),
            _ => DisplayErrorContext(&err).to_string(),
        };
        Self {
            operation,
            kind,
            code,
            message,
        }
    }

    /// A response that breaks the API's contract (a missing field, an impossible state).
    pub fn unexpected(operation: Operation, message: impl Into<String>) -> Self {
        Self {
            operation,
            kind: IotErrorKind::Other,
            code: None,
            message: message.into(),
        }
    }
}
