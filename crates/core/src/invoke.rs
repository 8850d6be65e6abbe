//! One invocation and what came of it.

use crate::{Error, Qualifier};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::time::Instant;

/// What runs functions, as the producers of work see it (the asynchronous
/// event worker and the queue consumers in `updraft-triggers`).
/// `updraft-platform` implements it; the producers depend on this
/// trait, never on the platform.
pub trait Invoke: Send + Sync + 'static {
    /// Checks that the function (and the version or alias) exists now, and
    /// says how many invocations of it can run at once (its instances ×
    /// invocations per instance; 0 under a reserved concurrency of 0):
    /// producers that pull work (queue consumers) take no more than that.
    fn check(
        &self,
        function: &str,
        qualifier: Option<&Qualifier>,
    ) -> impl Future<Output = Result<u32, Error>> + Send;

    /// Runs the function once and records the invocation. A throttle or a
    /// draining server is an `Err`; a function's own failure is an `Ok`
    /// whose outcome is an error.
    fn invoke(
        &self,
        req: InvokeRequest,
    ) -> impl Future<Output = Result<InvokeResult, Error>> + Send;
}

/// What started an invocation: its record and `updraft usage` name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TriggerKind {
    /// A request to the function's URL or a manifest route.
    Http,
    /// A synchronous invoke (the Lambda API, `updraft invoke`).
    Invoke,
    /// An asynchronous invoke (`Event`), its retries and destinations.
    Event,
    Schedule,
    Queue,
    Bus,
}

impl TriggerKind {
    pub const ALL: [TriggerKind; 6] = [
        TriggerKind::Http,
        TriggerKind::Invoke,
        TriggerKind::Event,
        TriggerKind::Schedule,
        TriggerKind::Queue,
        TriggerKind::Bus,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TriggerKind::Http => "http",
            TriggerKind::Invoke => "invoke",
            TriggerKind::Event => "event",
            TriggerKind::Schedule => "schedule",
            TriggerKind::Queue => "queue",
            TriggerKind::Bus => "bus",
        }
    }

    pub fn parse(s: &str) -> Option<TriggerKind> {
        TriggerKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for TriggerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One run asked of an [`Invoke`]r.
#[derive(Clone, Debug)]
pub struct InvokeRequest {
    pub function: String,
    /// None: unqualified (runs `$LATEST`, reports the version it equals).
    pub qualifier: Option<Qualifier>,
    /// The request id the function sees.
    pub request_id: String,
    /// The id the run is metered under: retries of an event share its
    /// request id, yet each run is an invocation record of its own.
    pub record_id: String,
    pub payload: Vec<u8>,
    pub client_context: Option<String>,
    /// What started it, for its record.
    pub trigger: TriggerKind,
    /// The producer's trace context (a W3C `traceparent`, or an X-Ray
    /// header) the invocation continues; None: a trace of its own.
    pub trace: Option<String>,
    /// When the work was accepted (stored), for the trace's queue wait.
    pub accepted_ms: Option<i64>,
}

/// A request to run a function once.
#[derive(Clone, Debug)]
pub struct Invocation {
    pub request_id: String,
    pub payload: Vec<u8>,
    /// Base64 JSON passed by the caller as `X-Amz-Client-Context`.
    pub client_context: Option<String>,
    /// The ARN the caller used (with its qualifier, if any).
    pub invoked_arn: String,
    /// The X-Ray trace header (`Root=1-…`) the gateway received or made for
    /// this request, for the runtime's `Lambda-Runtime-Trace-Id`; None when
    /// the caller brought none (the runtime makes one).
    pub trace_id: Option<String>,
    /// The HTTP request itself (its body is `payload`), when the invocation
    /// came through the gateway to a runtime that takes HTTP (wasm).
    pub http: Option<HttpRequest>,
}

/// An HTTP request as the gateway received it, the `/fn/{name}` prefix
/// stripped: `http`'s own types, carried from the gateway to a runtime that
/// takes HTTP (wasm) without a conversion on the way.
#[derive(Clone, Debug)]
pub struct HttpRequest {
    pub method: http::Method,
    /// Path and query, e.g. `/a/b?q=1`.
    pub uri: http::Uri,
    /// Header names and values as received, in order.
    pub headers: http::HeaderMap,
}

/// An HTTP response of a runtime that answers HTTP itself (wasm), passed
/// back to the gateway as the runtime made it.
#[derive(Clone, Debug)]
pub struct HttpResponse {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

/// How an invocation failed, when it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The handler raised or returned an error.
    Function,
    /// The invocation ran past its timeout (`Sandbox.Timedout`).
    Timeout,
    /// The instance went over `memory_mb` (`Runtime.OutOfMemory`).
    OutOfMemory,
    /// The instance exited or crashed (`Runtime.ExitError`).
    Crash,
    /// The instance failed during init (the type it posted to `/init/error`).
    Init,
}

impl ErrorKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorKind::Function => "function",
            ErrorKind::Timeout => "timeout",
            ErrorKind::OutOfMemory => "out_of_memory",
            ErrorKind::Crash => "crash",
            ErrorKind::Init => "init",
        }
    }
}

/// The result bytes of a run, or Lambda's error document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success(Vec<u8>),
    Error {
        kind: ErrorKind,
        error_type: String,
        /// Lambda's `{errorMessage, errorType, stackTrace}` JSON.
        body: Vec<u8>,
    },
}

impl Outcome {
    /// A platform-made error document (timeouts, crashes, out of memory).
    pub fn platform_error(kind: ErrorKind, error_type: &str, message: String) -> Outcome {
        let body = serde_json::json!({ "errorMessage": message, "errorType": error_type });
        Outcome::Error {
            kind,
            error_type: error_type.to_string(),
            body: serde_json::to_vec(&body).unwrap_or_default(),
        }
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Outcome::Error { .. })
    }

    pub fn error_type(&self) -> Option<&str> {
        match self {
            Outcome::Success(_) => None,
            Outcome::Error { error_type, .. } => Some(error_type),
        }
    }
}

/// The measurements metering and REPORT lines are made of.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub start_ms: i64,
    pub duration_us: u64,
    pub init_us: Option<u64>,
    pub memory_mb: u32,
    pub max_memory_mb: u32,
}

impl Stats {
    /// Lambda bills whole milliseconds, rounded up; init is not billed.
    pub fn billed_ms(&self) -> u64 {
        self.duration_us.div_ceil(1000).max(1)
    }
}

/// A finished invocation.
#[derive(Clone, Debug)]
pub struct InvokeResult {
    pub request_id: String,
    pub version: i64,
    pub outcome: Outcome,
    pub stats: Stats,
    /// The function's own HTTP response, for runtimes that answer HTTP (the
    /// gateway passes it on as it is; `outcome` holds its body, or a function
    /// error for a status of 500 and above).
    pub http: Option<HttpResponse>,
}

/// Microseconds since `start`, for durations.
pub fn elapsed_us(start: Instant) -> u64 {
    start.elapsed().as_micros() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn billing_rounds_up() {
        let s = Stats {
            duration_us: 1001,
            ..Default::default()
        };
        assert_eq!(s.billed_ms(), 2);
        let s = Stats {
            duration_us: 1000,
            ..Default::default()
        };
        assert_eq!(s.billed_ms(), 1);
        let s = Stats {
            duration_us: 10,
            ..Default::default()
        };
        assert_eq!(s.billed_ms(), 1);
    }

    #[test]
    fn platform_errors_have_lambda_shape() {
        let o = Outcome::platform_error(
            ErrorKind::Timeout,
            "Sandbox.Timedout",
            "Task timed out".into(),
        );
        let Outcome::Error { body, .. } = o else {
            panic!()
        };
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["errorType"], "Sandbox.Timedout");
        assert_eq!(v["errorMessage"], "Task timed out");
    }
}
