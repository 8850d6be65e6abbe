//! Distributed tracing of invocations: the W3C / X-Ray trace context an
//! invocation continues and passes on ([`context`]), and its OpenTelemetry
//! span with FaaS attributes, exported over OTLP when configured ([`export`]).

pub mod context;
pub mod export;

pub use context::{InvocationTrace, TraceContext};
pub use export::{InvocationSpan, Protocol, Tracer};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A trace header that does not parse.
    #[error("{field}: {reason}")]
    Header { field: &'static str, reason: String },
    #[error("--otlp-protocol: expected http/protobuf or grpc, got {0:?}")]
    Protocol(String),
    #[error("--otlp-endpoint: expected an http:// or https:// URL, got {0:?}")]
    Endpoint(String),
    #[error("the OTLP exporter: {0}")]
    Exporter(String),
}
