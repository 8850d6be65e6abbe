//! Invocation spans and their export over OTLP. Spans are made after an
//! invocation ends, from its measurements, with the ids the invocation
//! already handed its function (see [`InvocationTrace`]); they go to the
//! SDK's batch processor, which exports on a thread of its own. With no
//! exporter configured nothing is built and [`Tracer::record`] returns at once.

use crate::{Error, InvocationTrace};
use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SpanData, SpanProcessor};
use opentelemetry_sdk::Resource;
use std::borrow::Cow;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use updraft_core::TriggerKind;

/// The OTLP transport (`--otlp-protocol`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocol {
    /// Protobuf over HTTP, to `{endpoint}/v1/traces`.
    #[default]
    HttpProtobuf,
    /// gRPC (`TraceService/Export`) to the endpoint.
    Grpc,
}

impl FromStr for Protocol {
    type Err = Error;
    fn from_str(s: &str) -> Result<Protocol, Error> {
        match s {
            "http/protobuf" => Ok(Protocol::HttpProtobuf),
            "grpc" => Ok(Protocol::Grpc),
            other => Err(Error::Protocol(other.to_string())),
        }
    }
}

/// Where spans go: nowhere (off), or an OTLP collector.
#[derive(Clone, Debug, Default)]
pub struct Tracer {
    processor: Option<Arc<BatchSpanProcessor>>,
}

/// One finished invocation, as its span is made.
#[derive(Debug)]
pub struct InvocationSpan<'a> {
    pub trace: &'a InvocationTrace,
    pub function: &'a str,
    pub version: i64,
    pub region: &'a str,
    pub request_id: &'a str,
    pub trigger: TriggerKind,
    /// When the platform accepted the work (an async event or a message
    /// stored): the queue wait runs from here to `started`.
    pub accepted: Option<SystemTime>,
    /// When the platform began the run (scheduling included).
    pub started: SystemTime,
    pub ended: SystemTime,
    /// The handler's run and, on a cold start, the instance start before it.
    pub run_start: SystemTime,
    pub run: Duration,
    pub init: Option<Duration>,
    /// The function's error type, when it failed.
    pub error: Option<&'a str>,
}

/// OpenTelemetry's `faas.trigger` of a trigger kind.
pub fn faas_trigger(kind: TriggerKind) -> &'static str {
    match kind {
        TriggerKind::Http => "http",
        TriggerKind::Queue | TriggerKind::Bus => "pubsub",
        TriggerKind::Schedule => "timer",
        TriggerKind::Invoke | TriggerKind::Event => "other",
    }
}

fn span_kind(kind: TriggerKind) -> SpanKind {
    match kind {
        TriggerKind::Http | TriggerKind::Invoke => SpanKind::Server,
        TriggerKind::Event | TriggerKind::Queue | TriggerKind::Bus => SpanKind::Consumer,
        TriggerKind::Schedule => SpanKind::Internal,
    }
}

impl Tracer {
    /// No export: spans are never made.
    pub fn off() -> Tracer {
        Tracer::default()
    }

    /// Exports to an OTLP collector at `endpoint` (a base URL such as
    /// `http://127.0.0.1:4318`; HTTP posts to its `/v1/traces`). Call from
    /// within a Tokio runtime (gRPC's channel lives on it).
    pub fn otlp(endpoint: &str, protocol: Protocol) -> Result<Tracer, Error> {
        let base = endpoint.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::Endpoint(endpoint.to_string()));
        }
        let exporter = match protocol {
            Protocol::HttpProtobuf => {
                let url = if base.ends_with("/v1/traces") {
                    base.to_string()
                } else {
                    format!("{base}/v1/traces")
                };
                opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .with_endpoint(url)
                    .build()
            }
            Protocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(base)
                .build(),
        }
        .map_err(|e| Error::Exporter(e.to_string()))?;
        let mut processor = BatchSpanProcessor::builder(exporter).build();
        processor.set_resource(&Resource::builder().with_service_name("updraft").build());
        Ok(Tracer {
            processor: Some(Arc::new(processor)),
        })
    }

    pub fn is_on(&self) -> bool {
        self.processor.is_some()
    }

    /// Queues the invocation's span and its children for export, unless
    /// the caller's trace is not sampled (its decision is kept, as
    /// OpenTelemetry's parent-based sampler keeps it).
    pub fn record(&self, s: &InvocationSpan<'_>) {
        let Some(processor) = &self.processor else {
            return;
        };
        if !s.trace.sampled {
            return;
        }
        for span in spans(s) {
            processor.on_end(span);
        }
    }

    /// Exports what is queued and stops the exporter (blocking: call
    /// outside async code, e.g. in `spawn_blocking`).
    pub fn shutdown(&self) {
        if let Some(p) = &self.processor {
            if let Err(e) = p.shutdown() {
                tracing::warn!(error = %e, "trace export did not finish");
            }
        }
    }
}

/// The invocation's span, then its children: queue wait, instance start, run.
fn spans(s: &InvocationSpan<'_>) -> Vec<SpanData> {
    let t = s.trace;
    let flags = if t.sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    let state = t
        .state
        .as_deref()
        .and_then(|st| TraceState::from_str(st).ok())
        .unwrap_or_default();
    let context = |id: SpanId| SpanContext::new(t.trace_id, id, flags, false, state.clone());
    let scope = InstrumentationScope::builder("updraft").build();
    let status = match s.error {
        Some(e) => Status::error(e.to_string()),
        None => Status::Unset,
    };
    let mut attributes = vec![
        KeyValue::new("faas.invocation_id", s.request_id.to_string()),
        KeyValue::new("faas.trigger", faas_trigger(s.trigger)),
        KeyValue::new("faas.coldstart", s.init.is_some()),
        KeyValue::new("faas.name", s.function.to_string()),
        KeyValue::new("faas.version", s.version.to_string()),
        KeyValue::new("cloud.region", s.region.to_string()),
        KeyValue::new("updraft.trigger", s.trigger.as_str()),
    ];
    if let Some(e) = s.error {
        attributes.push(KeyValue::new("error.type", e.to_string()));
    }
    let start = s.accepted.unwrap_or(s.started).min(s.started);
    let span = |id, parent, kind, name, start, end, attributes, status| SpanData {
        span_context: context(id),
        parent_span_id: parent,
        parent_span_is_remote: false,
        span_kind: kind,
        name: Cow::Owned(name),
        start_time: start,
        end_time: end,
        attributes,
        dropped_attributes_count: 0,
        events: Default::default(),
        links: Default::default(),
        status,
        instrumentation_scope: scope.clone(),
    };
    let mut out = vec![span(
        t.span_id,
        t.parent.unwrap_or(SpanId::INVALID),
        span_kind(s.trigger),
        s.function.to_string(),
        start,
        s.ended.max(start),
        attributes,
        status.clone(),
    )];
    out[0].parent_span_is_remote = t.parent.is_some();
    let child = |name: &str, from: SystemTime, to: SystemTime, status: Status| {
        span(
            SpanId::from(fastrand::u64(1..)),
            t.span_id,
            SpanKind::Internal,
            name.to_string(),
            from,
            to.max(from),
            Vec::new(),
            status,
        )
    };
    if let Some(accepted) = s.accepted {
        out.push(child("queue wait", accepted, s.started, Status::Unset));
    }
    if let Some(init) = s.init {
        let from = s.run_start.checked_sub(init).unwrap_or(s.run_start);
        out.push(child("instance start", from, s.run_start, Status::Unset));
    }
    out.push(child("run", s.run_start, s.run_start + s.run, status));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::Value;

    fn attr<'a>(span: &'a SpanData, key: &str) -> &'a Value {
        &span
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .unwrap_or_else(|| panic!("no {key}"))
            .value
    }

    #[test]
    fn an_invocation_is_a_span_with_faas_attributes_and_children() {
        let parent = crate::TraceContext::from_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            None,
        )
        .unwrap();
        let trace = InvocationTrace::child_of(Some(&parent));
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let s = InvocationSpan {
            trace: &trace,
            function: "hello",
            version: 3,
            region: "local",
            request_id: "r-1",
            trigger: TriggerKind::Queue,
            accepted: Some(t0),
            started: t0 + Duration::from_millis(5),
            ended: t0 + Duration::from_millis(40),
            run_start: t0 + Duration::from_millis(30),
            run: Duration::from_millis(9),
            init: Some(Duration::from_millis(20)),
            error: Some("Handled"),
        };
        let spans = spans(&s);
        let names: Vec<&str> = spans.iter().map(|s| s.name.as_ref()).collect();
        assert_eq!(names, ["hello", "queue wait", "instance start", "run"]);
        let inv = &spans[0];
        assert_eq!(inv.span_context.span_id(), trace.span_id);
        assert_eq!(inv.span_context.trace_id(), parent.trace_id);
        assert_eq!(Some(inv.parent_span_id), parent.span_id);
        assert_eq!(inv.span_kind, SpanKind::Consumer);
        assert_eq!(inv.start_time, t0);
        assert_eq!(attr(inv, "faas.trigger"), &Value::from("pubsub"));
        assert_eq!(attr(inv, "faas.coldstart"), &Value::from(true));
        assert_eq!(attr(inv, "faas.version"), &Value::from("3"));
        assert_eq!(attr(inv, "faas.invocation_id"), &Value::from("r-1"));
        assert!(matches!(inv.status, Status::Error { .. }));
        for child in &spans[1..] {
            assert_eq!(child.parent_span_id, trace.span_id);
            assert_eq!(child.span_context.trace_id(), parent.trace_id);
        }
        assert_eq!(spans[2].start_time, t0 + Duration::from_millis(10));
        assert_eq!(spans[3].end_time, t0 + Duration::from_millis(39));
    }

    #[test]
    fn triggers_map_to_faas_triggers_and_protocols_parse() {
        assert_eq!(faas_trigger(TriggerKind::Http), "http");
        assert_eq!(faas_trigger(TriggerKind::Bus), "pubsub");
        assert_eq!(faas_trigger(TriggerKind::Schedule), "timer");
        assert_eq!(faas_trigger(TriggerKind::Invoke), "other");
        assert_eq!("grpc".parse::<Protocol>().unwrap(), Protocol::Grpc);
        assert_eq!(
            "http/protobuf".parse::<Protocol>().unwrap(),
            Protocol::HttpProtobuf
        );
        let e = "http/json".parse::<Protocol>().unwrap_err().to_string();
        assert!(
            e.contains("http/protobuf") && e.contains("http/json"),
            "{e}"
        );
        assert!(!Tracer::off().is_on());
        assert!(matches!(
            Tracer::otlp("localhost:4318", Protocol::HttpProtobuf),
            Err(Error::Endpoint(_))
        ));
    }
}
