//! Traces (issue 15): every invocation is an OpenTelemetry span in its
//! caller's trace, exported over OTLP with `--otlp-endpoint` and never
//! without it. The collector here is an HTTP server in the test that decodes
//! `ExportTraceServiceRequest`s (OTLP http/protobuf).

mod common;

use common::aws::server_with_keys_and_flags;
use common::{http, repo, wait_until, Server};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, Span};
use prost::Message;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

/// An OTLP/HTTP collector: every request's path and decoded spans.
struct Collector {
    url: String,
    requests: mpsc::Receiver<(String, Vec<Span>)>,
    /// What `wait_for` took in so far.
    seen: std::cell::RefCell<Vec<(String, Vec<Span>)>>,
}

impl Collector {
    fn start() -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for conn in listener.incoming().map_while(Result::ok) {
                let tx = tx.clone();
                std::thread::spawn(move || serve(conn, tx));
            }
        });
        Collector {
            url,
            requests: rx,
            seen: Default::default(),
        }
    }

    /// Waits until spans of each name have arrived.
    fn wait_for(&self, names: &[&str]) {
        wait_until(
            &format!("spans {names:?}"),
            Duration::from_secs(120),
            || {
                self.seen.borrow_mut().extend(self.requests.try_iter());
                let seen = self.seen.borrow();
                let mut spans = seen.iter().flat_map(|(_, s)| s);
                names.iter().all(|n| spans.clone().any(|s| s.name == *n)) && spans.next().is_some()
            },
        );
    }

    /// What arrived (call once the server has exited: its shutdown flushes
    /// the exporter, which waits for each answer).
    fn received(&self) -> Vec<(String, Vec<Span>)> {
        let mut all = std::mem::take(&mut *self.seen.borrow_mut());
        all.extend(self.requests.try_iter());
        all
    }
}

/// Answers each request on a connection after passing its spans on.
fn serve(conn: std::net::TcpStream, tx: mpsc::Sender<(String, Vec<Span>)>) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut conn = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string();
        let mut len = 0;
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).unwrap();
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap();
                }
            }
        }
        let mut body = vec![0; len];
        reader.read_exact(&mut body).unwrap();
        let req = ExportTraceServiceRequest::decode(body.as_slice()).expect("an OTLP request");
        let spans = req
            .resource_spans
            .into_iter()
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans)
            .collect();
        tx.send((path, spans)).unwrap();
        conn.write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n",
        )
        .unwrap();
    }
}

/// A server with the test keys and the AWS SDK for functions.
fn start(name: &str, env: &[(&str, &str)], flags: &[&str]) -> Server {
    let sdk = std::env::var("UPDRAFT_TEST_SDK_DIR").expect(
        "UPDRAFT_TEST_SDK_DIR: the AWS SDK for functions (scripts/setup installs it in \
         target/ci/sdk and names it in target/ci/env)",
    );
    let mut env = env.to_vec();
    env.push(("UPDRAFT_SDK_DIR", &sdk));
    let s = server_with_keys_and_flags(name, &env, flags);
    s.deploy(&repo().join("tests/traces"));
    s
}

/// Calls `caller`'s URL in the trace TRACE_ID, under span PARENT_ID.
fn call_through(s: &Server) -> serde_json::Value {
    let traceparent = format!("00-{TRACE_ID}-{PARENT_ID}-01");
    let (status, _, body) = http(
        "GET",
        &format!("{}/fn/caller", s.endpoint),
        &[("traceparent", &traceparent), ("tracestate", "test=1")],
        vec![],
    );
    let body = String::from_utf8_lossy(&body).into_owned();
    if status != 200 {
        panic!("{status}: {body}\n{}", s.ok(&["logs", "caller"]));
    }
    serde_json::from_str(&body).unwrap()
}

fn attr<'a>(span: &'a Span, key: &str) -> &'a Value {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
        .unwrap_or_else(|| panic!("span {} has no {key}", span.name))
}

fn text(v: &Value) -> &str {
    match v {
        Value::StringValue(s) => s,
        other => panic!("not a string: {other:?}"),
    }
}

#[test]
fn both_invocations_are_spans_in_the_callers_trace() {
    let collector = Collector::start();
    let mut s = start("traces", &[], &["--otlp-endpoint", &collector.url]);
    let got = call_through(&s);
    // The consumers of the event, the message and the bus event run later.
    collector.wait_for(&["later", "worker", "listener"]);
    assert!(s.terminate().success(), "the server drained cleanly");

    let requests = collector.received();
    assert!(!requests.is_empty(), "spans were exported");
    assert!(
        requests.iter().all(|(path, _)| path == "/v1/traces"),
        "{requests:?}"
    );
    let spans: Vec<Span> = requests.into_iter().flat_map(|(_, s)| s).collect();
    let find = |name: &str| -> &Span {
        let mut found = spans.iter().filter(|s| s.name == name);
        let span = found
            .next()
            .unwrap_or_else(|| panic!("no span {name}: {spans:#?}"));
        assert!(found.next().is_none(), "one span {name}");
        span
    };
    let caller = find("caller");
    let callee = find("callee");
    for span in &spans {
        assert_eq!(
            hex::encode(&span.trace_id),
            TRACE_ID,
            "{} in the trace",
            span.name
        );
    }
    assert_eq!(hex::encode(&caller.parent_span_id), PARENT_ID);
    assert_eq!(
        callee.parent_span_id, caller.span_id,
        "boto3 forwarded the caller's trace header"
    );
    assert_eq!(caller.kind, SpanKind::Server as i32);
    assert_eq!(caller.trace_state, "test=1");

    // FaaS attributes; the caller started cold.
    assert_eq!(text(attr(caller, "faas.name")), "caller");
    assert_eq!(text(attr(caller, "faas.trigger")), "http");
    assert_eq!(attr(caller, "faas.coldstart"), &Value::BoolValue(true));
    assert_eq!(text(attr(caller, "faas.version")), "1");
    assert_eq!(text(attr(caller, "cloud.region")), "us-east-1");
    assert!(!text(attr(caller, "faas.invocation_id")).is_empty());
    assert_eq!(text(attr(callee, "faas.name")), "callee");
    assert_eq!(text(attr(callee, "faas.trigger")), "other");
    assert_ne!(
        attr(callee, "faas.invocation_id"),
        attr(caller, "faas.invocation_id")
    );

    // The caller's children: its instance start (cold) and its run, and
    // every invocation it caused, through the store's queues included.
    let mut children: Vec<&str> = spans
        .iter()
        .filter(|s| s.parent_span_id == caller.span_id)
        .map(|s| s.name.as_str())
        .collect();
    children.sort();
    assert_eq!(
        children,
        [
            "callee",
            "instance start",
            "later",
            "listener",
            "run",
            "worker"
        ],
        "{spans:#?}"
    );
    for (name, trigger, kind) in [
        ("later", "other", SpanKind::Consumer),
        ("worker", "pubsub", SpanKind::Consumer),
        ("listener", "pubsub", SpanKind::Consumer),
    ] {
        let span = find(name);
        assert_eq!(text(attr(span, "faas.trigger")), trigger, "{name}");
        assert_eq!(span.kind, kind as i32, "{name}");
        let waited = spans
            .iter()
            .any(|s| s.parent_span_id == span.span_id && s.name == "queue wait");
        assert!(waited, "{name} has a queue wait span");
    }

    // What each function saw names its own span as the parent.
    let body = got;
    let caller_id = hex::encode(&caller.span_id);
    assert_eq!(body["traceparent"], format!("00-{TRACE_ID}-{caller_id}-01"));
    let root = format!("Root=1-{}-{}", &TRACE_ID[..8], &TRACE_ID[8..]);
    assert_eq!(body["xray"], format!("{root};Parent={caller_id};Sampled=1"));
    let callee_id = hex::encode(&callee.span_id);
    assert_eq!(
        body["callee"]["xray"],
        format!("{root};Parent={callee_id};Sampled=1")
    );
}

#[test]
fn without_an_otlp_endpoint_nothing_is_sent() {
    let collector = Collector::start();
    // Where an exporter built from the environment would send.
    let traces_url = format!("{}/v1/traces", collector.url);
    let mut s = start(
        "traces-off",
        &[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &traces_url),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", ""),
        ],
        &[],
    );
    let body = call_through(&s);
    assert!(
        body["traceparent"].as_str().unwrap().contains(TRACE_ID),
        "the trace is still continued: {body}"
    );
    assert!(s.terminate().success(), "the server drained cleanly");
    assert!(collector.received().is_empty(), "nothing was exported");
}

/// A collector that cannot be reached fails no invocation and no drain,
/// over either transport.
#[test]
fn an_unreachable_collector_fails_nothing() {
    // A port nothing listens on any more.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    for (name, protocol) in [("grpc", "grpc"), ("http", "http/protobuf")] {
        let mut s = start(
            &format!("traces-unreachable-{name}"),
            &[],
            &["--otlp-endpoint", &closed, "--otlp-protocol", protocol],
        );
        let body = call_through(&s);
        assert!(body["traceparent"].as_str().unwrap().contains(TRACE_ID));
        assert!(
            s.terminate().success(),
            "{protocol}: the server drained cleanly"
        );
    }
}

#[test]
fn a_bad_otlp_setting_is_refused_by_name() {
    for (flags, expected) in [
        (
            &["--otlp-endpoint", "localhost:4318"][..],
            "--otlp-endpoint: expected an http:// or https:// URL",
        ),
        (
            &[
                "--otlp-endpoint",
                "http://127.0.0.1:4318",
                "--otlp-protocol",
                "http/json",
            ][..],
            "--otlp-protocol: expected http/protobuf or grpc",
        ),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_updraft"))
            .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(common::scratch("traces-bad-flag"))
            .args(flags)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{flags:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{flags:?}: {err}");
    }
}
