//! The one error type of the control logic, and the one place where each
//! error gets its Lambda error type and HTTP status.

use updraft_scheduler::SchedulerError;
use updraft_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    InvalidParameter(String),
    #[error("{0}")]
    InvalidRequestContent(String),
    #[error("{0}")]
    TooLarge(String),
    /// A `RevisionId` (or `CodeSha256`) precondition did not hold.
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{0}")]
    Throttled(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Unavailable(String),
    /// Details go to the server log, never to clients.
    #[error("internal error")]
    Internal(String),
}

impl PlatformError {
    /// Lambda's error type and the HTTP status it travels with.
    pub fn shape(&self) -> (u16, &'static str) {
        match self {
            PlatformError::NotFound(_) => (404, "ResourceNotFoundException"),
            PlatformError::Conflict(_) => (409, "ResourceConflictException"),
            PlatformError::InvalidParameter(_) => (400, "InvalidParameterValueException"),
            PlatformError::InvalidRequestContent(_) => (400, "InvalidRequestContentException"),
            PlatformError::TooLarge(_) => (413, "RequestEntityTooLargeException"),
            PlatformError::PreconditionFailed(_) => (412, "PreconditionFailedException"),
            PlatformError::Throttled(_) => (429, "TooManyRequestsException"),
            PlatformError::Unauthorized(_) => (401, "UnrecognizedClientException"),
            PlatformError::Forbidden(_) => (403, "InvalidSignatureException"),
            PlatformError::Unavailable(_) => (503, "ServiceException"),
            PlatformError::Internal(_) => (500, "ServiceException"),
        }
    }

    /// The message a client may see.
    pub fn public_message(&self) -> String {
        match self {
            PlatformError::Internal(_) => "internal error; see the server log".into(),
            other => other.to_string(),
        }
    }

    pub fn internal(context: &str, e: impl std::fmt::Display) -> PlatformError {
        let msg = format!("{context}: {e}");
        tracing::error!("{msg}");
        PlatformError::Internal(msg)
    }
}

impl From<StoreError> for PlatformError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => PlatformError::NotFound(m),
            StoreError::Conflict(m) => PlatformError::Conflict(m),
            StoreError::Unavailable(cause) => {
                tracing::warn!(%cause, "the store is unavailable");
                PlatformError::Unavailable(format!("the store is unavailable: {cause}"))
            }
            other => PlatformError::internal("store", other),
        }
    }
}

impl From<SchedulerError> for PlatformError {
    fn from(e: SchedulerError) -> Self {
        match e {
            SchedulerError::Throttled { .. } => PlatformError::Throttled(e.to_string()),
            SchedulerError::Draining => PlatformError::Unavailable(e.to_string()),
            SchedulerError::NoRuntime(_) => PlatformError::InvalidParameter(e.to_string()),
        }
    }
}

impl From<updraft_auth::AuthError> for PlatformError {
    fn from(e: updraft_auth::AuthError) -> Self {
        match e {
            updraft_auth::AuthError::Missing(m) => PlatformError::Unauthorized(m),
            updraft_auth::AuthError::Denied(m) => PlatformError::Forbidden(m),
            updraft_auth::AuthError::Busy(m) => PlatformError::Throttled(m),
            other => PlatformError::internal("credentials", other),
        }
    }
}
