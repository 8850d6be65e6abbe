//! The one error type of the control logic. It names what went wrong in
//! the platform's terms; each surface renders it (the Lambda API gives it
//! Lambda's error type in `updraft-api`'s one table; the gateway answers a
//! plain HTTP error).

use updraft_scheduler::SchedulerError;
use updraft_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A field of the input is not what it allows (field, expected, got).
    #[error("{0}")]
    Invalid(updraft_core::Invalid),
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
    /// A queue message's receipt handle is malformed or names no message.
    #[error("{0}")]
    ReceiptHandleInvalid(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    /// Authenticated, but the caller's permissions do not allow it (a
    /// function's credentials outside what it was granted).
    #[error("{0}")]
    AccessDenied(String),
    /// Function credentials past their expiry.
    #[error("{0}")]
    ExpiredToken(String),
    #[error("{0}")]
    Unavailable(String),
    /// Details go to the server log, never to clients.
    #[error("internal error")]
    Internal(String),
}

impl PlatformError {
    /// The HTTP status the error travels with, on every surface.
    pub fn status(&self) -> u16 {
        match self {
            PlatformError::NotFound(_) => 404,
            PlatformError::Conflict(_) => 409,
            PlatformError::Invalid(_)
            | PlatformError::InvalidParameter(_)
            | PlatformError::ReceiptHandleInvalid(_)
            | PlatformError::InvalidRequestContent(_) => 400,
            PlatformError::TooLarge(_) => 413,
            PlatformError::PreconditionFailed(_) => 412,
            PlatformError::Throttled(_) => 429,
            PlatformError::Unauthorized(_) => 401,
            PlatformError::Forbidden(_)
            | PlatformError::AccessDenied(_)
            | PlatformError::ExpiredToken(_) => 403,
            PlatformError::Unavailable(_) => 503,
            PlatformError::Internal(_) => 500,
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
            updraft_auth::AuthError::Expired(m) => PlatformError::ExpiredToken(m),
            updraft_auth::AuthError::Busy(m) => PlatformError::Throttled(m),
            other => PlatformError::internal("credentials", other),
        }
    }
}

impl From<updraft_core::Invalid> for PlatformError {
    fn from(e: updraft_core::Invalid) -> Self {
        PlatformError::Invalid(e)
    }
}

impl From<updraft_core::Error> for PlatformError {
    fn from(e: updraft_core::Error) -> Self {
        match e {
            updraft_core::Error::Invalid(i) => PlatformError::Invalid(i),
            updraft_core::Error::NotFound(m) => PlatformError::NotFound(m),
            updraft_core::Error::Throttled(m) => PlatformError::Throttled(m),
            updraft_core::Error::Unavailable(m) => PlatformError::Unavailable(m),
            updraft_core::Error::Internal(m) => PlatformError::Internal(m),
        }
    }
}

/// What the [`updraft_core::Invoke`]rs' callers (the triggers) see.
impl From<PlatformError> for updraft_core::Error {
    fn from(e: PlatformError) -> Self {
        match e {
            PlatformError::Invalid(i) => updraft_core::Error::Invalid(i),
            PlatformError::NotFound(m) => updraft_core::Error::NotFound(m),
            PlatformError::Throttled(m) => updraft_core::Error::Throttled(m),
            PlatformError::Unavailable(m) => updraft_core::Error::Unavailable(m),
            other => updraft_core::Error::Internal(other.to_string()),
        }
    }
}

impl From<updraft_triggers::TriggersError> for PlatformError {
    fn from(e: updraft_triggers::TriggersError) -> Self {
        match e {
            updraft_triggers::TriggersError::TooLarge(m) => PlatformError::TooLarge(m),
            updraft_triggers::TriggersError::Invoke(e) => e.into(),
            updraft_triggers::TriggersError::Store(e) => e.into(),
            updraft_triggers::TriggersError::Invalid(e) => PlatformError::Invalid(e),
        }
    }
}
