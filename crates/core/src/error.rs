//! The errors of the shared vocabulary: an input that does not hold
//! ([`Invalid`]: which field, what was expected, what came), and what an
//! invocation through [`crate::Invoke`] can fail with. Each surface (the
//! native API, the Lambda API, the manifest loader) renders them in its own
//! words; none of them is rebuilt from a message.

use std::fmt;

/// An input that is not what its field allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    /// The field as the caller wrote it (`memory_mb`, `Qualifier`, `env.KEY`).
    pub field: String,
    /// What the field allows, e.g. `128 to 10240`.
    pub expected: String,
    /// What came, as text (empty when nothing did).
    pub got: String,
}

impl Invalid {
    pub fn new(
        field: impl Into<String>,
        expected: impl Into<String>,
        got: impl ToString,
    ) -> Invalid {
        Invalid {
            field: field.into(),
            expected: expected.into(),
            got: got.to_string(),
        }
    }

    /// The same error under another field name (a surface's own spelling,
    /// or a prefix such as `functions.NAME.`).
    pub fn renamed(mut self, field: impl Into<String>) -> Invalid {
        self.field = field.into();
        self
    }

    /// The field with `prefix` in front (`functions.api.` + `memory_mb`).
    pub fn prefixed(mut self, prefix: &str) -> Invalid {
        self.field = format!("{prefix}{}", self.field);
        self
    }
}

impl fmt::Display for Invalid {
    /// `field: expected …, got …`; the value is quoted unless it is a number
    /// or a duration (`64`, `16m`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bare = self.got.starts_with(|c: char| c.is_ascii_digit())
            && self
                .got
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.');
        if bare {
            write!(
                f,
                "{}: expected {}, got {}",
                self.field, self.expected, self.got
            )
        } else {
            write!(
                f,
                "{}: expected {}, got {:?}",
                self.field, self.expected, self.got
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_field_expected_and_got() {
        let e = Invalid::new("memory_mb", "128 to 10240", 64);
        assert_eq!(e.to_string(), "memory_mb: expected 128 to 10240, got 64");
        let e = Invalid::new("runtime", "python3", "ruby").prefixed("functions.f.");
        assert_eq!(
            e.to_string(),
            "functions.f.runtime: expected python3, got \"ruby\""
        );
        assert_eq!(
            Invalid::new("t", "x", "16m").to_string(),
            "t: expected x, got 16m"
        );
        assert_eq!(
            Invalid::new("t", "x", "").renamed("T").to_string(),
            "T: expected x, got \"\""
        );
    }
}

/// What the shared vocabulary's operations fail with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// An input is not what its field allows.
    #[error("{0}")]
    Invalid(Invalid),
    /// The function, version or alias does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The function is at its concurrency limit now; try again later.
    #[error("{0}")]
    Throttled(String),
    /// The server cannot take it now (draining, store unavailable).
    #[error("{0}")]
    Unavailable(String),
    /// Anything else; details are in the server log.
    #[error("{0}")]
    Internal(String),
}

impl From<Invalid> for Error {
    fn from(e: Invalid) -> Error {
        Error::Invalid(e)
    }
}

impl std::error::Error for Invalid {}
