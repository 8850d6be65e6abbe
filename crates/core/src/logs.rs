//! Log lines of invocations, and the sink runtimes write them to.

use serde::{Deserialize, Serialize};

/// One stored log line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub ts_ms: i64,
    pub function: String,
    pub request_id: String,
    pub text: String,
}

/// Where instance output and START/END/REPORT lines go. Implementations must
/// not block: they are called from the output readers of instances.
pub trait LogSink: Send + Sync + 'static {
    fn emit(&self, function: &str, request_id: &str, text: String);
}
