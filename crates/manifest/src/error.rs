use std::fmt;
use std::path::PathBuf;

/// Why a manifest was refused, a build failed or code could not be packaged.
///
/// Display reads `FILE: KEY: what was expected, what was found`, with
/// `FILE:LINE:COLUMN` when the TOML parser located the problem.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The manifest file could not be read.
    #[error("{}: cannot read the manifest: {source}", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Bad TOML syntax, an unknown key, a missing key or a value of the wrong type.
    #[error("{}{}: {}{message}", file.display(), Location(*location), KeyPrefix(key.as_deref()))]
    Parse {
        file: PathBuf,
        /// 1-based line and column, when known.
        location: Option<(usize, usize)>,
        /// The dotted key, when known (`functions.hello.memry_mb`).
        key: Option<String>,
        message: String,
    },
    /// Well-formed TOML with a value Updraft refuses.
    #[error("{}: {key}: {message}", file.display())]
    Invalid {
        file: PathBuf,
        key: String,
        message: String,
    },
    /// A function's `build` command failed.
    #[error("function {function}: build command `{command}` failed: {status}")]
    Build {
        function: String,
        command: String,
        status: String,
    },
    /// A function's code could not be read or zipped.
    #[error("function {function}: cannot package {}: {message}", path.display())]
    Package {
        function: String,
        path: PathBuf,
        message: String,
    },
}

impl ManifestError {
    /// The dotted manifest key the error is about, when there is one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ManifestError::Parse { key, .. } => key.as_deref(),
            ManifestError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }
}

struct Location(Option<(usize, usize)>);

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some((line, column)) => write!(f, ":{line}:{column}"),
            None => Ok(()),
        }
    }
}

struct KeyPrefix<'a>(Option<&'a str>);

impl fmt::Display for KeyPrefix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(key) => write!(f, "{key}: "),
            None => Ok(()),
        }
    }
}
