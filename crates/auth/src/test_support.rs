//! Helpers the unit tests share.

use crate::{AuthError, Credentials};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The server's credentials in these tests.
pub(crate) fn creds() -> Credentials {
    Credentials {
        access_key_id: "AKUDEXAMPLE000000001".into(),
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
    }
}

/// 2024-01-02T03:04:05Z.
pub(crate) fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_704_164_645)
}

/// The message of a refusal; panics on anything else.
pub(crate) fn denied<T: std::fmt::Debug>(r: Result<T, AuthError>) -> String {
    match r {
        Err(AuthError::Denied(m)) => m,
        other => panic!("expected Denied, got {other:?}"),
    }
}
