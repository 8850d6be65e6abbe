//! Updraft's admin credentials and request authentication: AWS Signature
//! Version 4 (services `lambda` and `events`, as boto3 and the AWS CLI sign) and
//! `Authorization: Bearer ACCESS_KEY_ID:SECRET`, checked by the server (from
//! the request head before any body is read, each signature accepted once)
//! and produced by the CLI.

mod credentials;
mod replay;
mod session;
mod sigv4;
#[cfg(test)]
mod test_support;
mod verify;

pub use credentials::{Credentials, CREDENTIALS_FILE, ENV_ACCESS_KEY_ID, ENV_SECRET_ACCESS_KEY};
pub use replay::MAX_REPLAY_ENTRIES;
pub use session::{check_permission, permits, Claims, Minter, SessionCredentials, SESSION_KEY_PREFIX};
pub use sigv4::{sign, MAX_CLOCK_SKEW, SERVICE, SERVICES};
pub use verify::{Caller, Pending, Verifier};

use std::path::PathBuf;

/// Why credentials could not be found or a request was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No credentials at all (HTTP 401).
    #[error("{0}")]
    Missing(String),
    /// Credentials present but wrong, tampered with, stale or replayed (HTTP 403).
    #[error("{0}")]
    Denied(String),
    /// Function credentials past their expiry (HTTP 403, `ExpiredTokenException`).
    #[error("{0}")]
    Expired(String),
    /// Too many signed requests to remember for replay checks (HTTP 429).
    #[error("{0}")]
    Busy(String),
    /// Reading or writing the credentials file (or the OS random source) failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The credentials file is not valid; the message names the file and line.
    #[error("{0}")]
    Malformed(String),
    /// The client could not sign a request (bad URL, non-UTF-8 header value).
    #[error("cannot sign request: {0}")]
    Signing(String),
}

impl AuthError {
    /// The HTTP status a server answers with for this error.
    pub fn status(&self) -> http::StatusCode {
        match self {
            AuthError::Missing(_) => http::StatusCode::UNAUTHORIZED,
            AuthError::Denied(_) | AuthError::Expired(_) => http::StatusCode::FORBIDDEN,
            AuthError::Busy(_) => http::StatusCode::TOO_MANY_REQUESTS,
            AuthError::Io { .. } | AuthError::Malformed(_) | AuthError::Signing(_) => {
                http::StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }
}
