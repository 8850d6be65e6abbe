//! The AWS Lambda Runtime API (`/2018-06-01/runtime/…`) that one instance
//! talks to: `next` hands out invocations, `response` / `error` complete them,
//! `init/error` reports a failed start.

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};
use updraft_core::Invocation;

/// Lambda's synchronous response limit (6 MB, as Lambda counts it).
pub const MAX_RESPONSE_BYTES: usize = updraft_core::limits::SYNC_PAYLOAD_BYTES;

/// What the instance answered for one invocation.
#[derive(Debug)]
pub enum RuntimeReply {
    Response(Bytes),
    Error { error_type: String, body: Bytes },
    TooLarge,
}

/// An invocation waiting for the instance to ask for it.
pub struct Pending {
    pub invocation: Invocation,
    pub deadline_ms: i64,
    pub reply: oneshot::Sender<RuntimeReply>,
}

struct Current {
    request_id: String,
    reply: oneshot::Sender<RuntimeReply>,
}

/// The state shared between one instance and its Runtime API endpoint.
pub struct ApiState {
    next: tokio::sync::Mutex<mpsc::Receiver<Pending>>,
    current: Mutex<Option<Current>>,
    ready: Mutex<Option<oneshot::Sender<()>>>,
    init_error: Mutex<Option<oneshot::Sender<(String, Bytes)>>>,
}

/// The instance side of the endpoint.
pub struct ApiHandles {
    pub invocations: mpsc::Sender<Pending>,
    pub ready: oneshot::Receiver<()>,
    pub init_error: oneshot::Receiver<(String, Bytes)>,
}

pub fn new_state() -> (Arc<ApiState>, ApiHandles) {
    let (inv_tx, inv_rx) = mpsc::channel(1);
    let (ready_tx, ready_rx) = oneshot::channel();
    let (init_tx, init_rx) = oneshot::channel();
    let state = Arc::new(ApiState {
        next: tokio::sync::Mutex::new(inv_rx),
        current: Mutex::new(None),
        ready: Mutex::new(Some(ready_tx)),
        init_error: Mutex::new(Some(init_tx)),
    });
    (
        state,
        ApiHandles {
            invocations: inv_tx,
            ready: ready_rx,
            init_error: init_rx,
        },
    )
}

pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .fallback(|| async {
            runtime_error(
                StatusCode::NOT_FOUND,
                "InvalidRequest",
                "unknown Runtime API path",
            )
        })
        .with_state(state)
}

fn runtime_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    (
        status,
        Json(serde_json::json!({ "errorType": error_type, "errorMessage": message })),
    )
        .into_response()
}

fn accepted() -> Response {
    (
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "status": "OK" })),
    )
        .into_response()
}

async fn next(State(st): State<Arc<ApiState>>) -> Response {
    if let Some(ready) = st.ready.lock().unwrap_or_else(|e| e.into_inner()).take() {
        let _ = ready.send(());
    }
    let pending = st.next.lock().await.recv().await;
    let Some(p) = pending else {
        return runtime_error(
            StatusCode::GONE,
            "InstanceStopping",
            "this instance is being stopped",
        );
    };
    let inv = p.invocation;
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    set("content-type", "application/json");
    set("lambda-runtime-aws-request-id", &inv.request_id);
    set("lambda-runtime-deadline-ms", &p.deadline_ms.to_string());
    set("lambda-runtime-invoked-function-arn", &inv.invoked_arn);
    let trace = (inv.trace_id.clone()).unwrap_or_else(|| trace_id(&inv.request_id));
    set("lambda-runtime-trace-id", &trace);
    if let Some(cc) = &inv.client_context {
        // Callers send base64 JSON (`X-Amz-Client-Context`); the Runtime API
        // hands runtimes the JSON itself, as Lambda does.
        use base64::Engine;
        let json = base64::engine::general_purpose::STANDARD
            .decode(cc.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok());
        set(
            "lambda-runtime-client-context",
            json.as_deref().unwrap_or(cc),
        );
    }
    *st.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(Current {
        request_id: inv.request_id.clone(),
        reply: p.reply,
    });
    (StatusCode::OK, headers, inv.payload).into_response()
}

/// An X-Ray style trace header derived from the request id.
fn trace_id(request_id: &str) -> String {
    let hex: String = request_id
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .collect();
    let epoch = updraft_core::now_ms() / 1000;
    format!(
        "Root=1-{epoch:08x}-{};Parent={};Sampled=0",
        &hex[..24.min(hex.len())],
        &hex[hex.len().saturating_sub(16)..]
    )
}

/// Takes the current invocation if `id` names it.
fn take_current(st: &ApiState, id: &str) -> Result<oneshot::Sender<RuntimeReply>, Box<Response>> {
    let mut cur = st.current.lock().unwrap_or_else(|e| e.into_inner());
    match cur.take() {
        Some(c) if c.request_id == id => Ok(c.reply),
        other => {
            *cur = other;
            Err(Box::new(runtime_error(
                StatusCode::BAD_REQUEST,
                "InvalidRequestID",
                &format!("request id {id} is not the invocation in progress on this instance"),
            )))
        }
    }
}

async fn response(State(st): State<Arc<ApiState>>, Path(id): Path<String>, body: Body) -> Response {
    let reply = match take_current(&st, &id) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    match to_bytes(body, MAX_RESPONSE_BYTES).await {
        Ok(bytes) => {
            let _ = reply.send(RuntimeReply::Response(bytes));
            accepted()
        }
        Err(_) => {
            let _ = reply.send(RuntimeReply::TooLarge);
            runtime_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                &format!("Exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."),
            )
        }
    }
}

/// The error type a runtime reports: the body's `errorType`, else the header.
fn error_type(headers: &HeaderMap, body: &[u8], default: &str) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("errorType")
                .and_then(|t| t.as_str())
                .map(str::to_string)
        })
        .filter(|t| !t.is_empty())
        .or_else(|| {
            headers
                .get("lambda-runtime-function-error-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_else(|| default.to_string())
}

async fn error(
    State(st): State<Arc<ApiState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let reply = match take_current(&st, &id) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let body = to_bytes(body, MAX_RESPONSE_BYTES).await.unwrap_or_default();
    let error_type = error_type(&headers, &body, "Unhandled");
    let _ = reply.send(RuntimeReply::Error { error_type, body });
    accepted()
}

async fn init_error(State(st): State<Arc<ApiState>>, headers: HeaderMap, body: Body) -> Response {
    let body = to_bytes(body, MAX_RESPONSE_BYTES).await.unwrap_or_default();
    let error_type = error_type(&headers, &body, "Runtime.Unknown");
    if let Some(tx) = st
        .init_error
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
    {
        let _ = tx.send((error_type, body));
    }
    accepted()
}

#[cfg(test)]
mod tests {
    //! The handlers driven as a tower service, no sockets.
    use super::*;
    use axum::http::Request;
    use base64::Engine;
    use tower::ServiceExt;

    const RID: &str = "8476a536-e9f4-11e8-9739-2dfe598c3fcd";

    fn invocation(payload: &[u8]) -> Invocation {
        Invocation {
            request_id: RID.into(),
            payload: payload.to_vec(),
            client_context: Some(
                base64::engine::general_purpose::STANDARD.encode(r#"{"custom":{"a":"1"}}"#),
            ),
            invoked_arn: "arn:aws:lambda:us-east-1:000000000000:function:f".into(),
            trace_id: None,
            http: None,
        }
    }

    async fn call(app: &Router, method: &str, path: &str, req: Request<Body>) -> Response {
        let (mut parts, body) = req.into_parts();
        parts.method = method.parse().unwrap();
        parts.uri = path.parse().unwrap();
        app.clone()
            .oneshot(Request::from_parts(parts, body))
            .await
            .unwrap()
    }

    async fn send(app: &Router, method: &str, path: &str, body: &'static [u8]) -> Response {
        call(app, method, path, Request::new(Body::from(body))).await
    }

    async fn json(resp: Response) -> serde_json::Value {
        let bytes = to_bytes(resp.into_body(), usize::MAX).await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    /// An endpoint with one invocation waiting for `next`; the reply channel.
    async fn queued() -> (Router, ApiHandles, oneshot::Receiver<RuntimeReply>) {
        let (state, handles) = new_state();
        let (tx, rx) = oneshot::channel();
        handles
            .invocations
            .send(Pending {
                invocation: invocation(b"{\"n\":1}"),
                deadline_ms: 1_700_000_000_000,
                reply: tx,
            })
            .await
            .unwrap();
        (router(state), handles, rx)
    }

    /// An endpoint with one invocation handed out by `next`; the reply channel.
    async fn handed_out() -> (Router, ApiHandles, oneshot::Receiver<RuntimeReply>) {
        let (app, handles, rx) = queued().await;
        let resp = send(&app, "GET", "/2018-06-01/runtime/invocation/next", b"").await;
        assert_eq!(resp.status(), StatusCode::OK);
        (app, handles, rx)
    }

    #[tokio::test]
    async fn next_hands_out_the_invocation_with_lambdas_headers_and_signals_ready() {
        let (app, mut handles, _rx) = queued().await;
        assert!(handles.ready.try_recv().is_err(), "ready before any next");
        let resp = send(&app, "GET", "/2018-06-01/runtime/invocation/next", b"").await;
        assert_eq!(resp.status(), StatusCode::OK);
        handles
            .ready
            .try_recv()
            .expect("the first next signals ready");
        let h = resp.headers();
        assert_eq!(h["lambda-runtime-aws-request-id"], RID);
        assert_eq!(h["lambda-runtime-deadline-ms"], "1700000000000");
        assert_eq!(
            h["lambda-runtime-invoked-function-arn"],
            "arn:aws:lambda:us-east-1:000000000000:function:f"
        );
        // The caller's base64 client context reaches the runtime as JSON.
        assert_eq!(
            h["lambda-runtime-client-context"],
            r#"{"custom":{"a":"1"}}"#
        );
        // X-Ray style, from the request id's hex digits.
        let trace = h["lambda-runtime-trace-id"].to_str().unwrap();
        assert!(trace.starts_with("Root=1-"), "{trace}");
        assert!(
            trace.ends_with("-8476a536e9f411e897392dfe;Parent=97392dfe598c3fcd;Sampled=0"),
            "{trace}"
        );
        assert_eq!(json(resp).await, serde_json::json!({ "n": 1 }));
    }

    #[tokio::test]
    async fn next_passes_on_the_callers_trace_id() {
        let (state, handles) = new_state();
        let (tx, _rx) = oneshot::channel();
        let traced = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let mut inv = invocation(b"{}");
        inv.trace_id = Some(traced.into());
        let pending = Pending {
            invocation: inv,
            deadline_ms: 1_700_000_000_000,
            reply: tx,
        };
        handles.invocations.send(pending).await.unwrap();
        let app = router(state);
        let resp = send(&app, "GET", "/2018-06-01/runtime/invocation/next", b"").await;
        assert_eq!(resp.headers()["lambda-runtime-trace-id"], traced);
    }

    #[tokio::test]
    async fn next_on_a_stopping_instance_is_410() {
        let (state, handles) = new_state();
        drop(handles.invocations);
        let resp = send(
            &router(state),
            "GET",
            "/2018-06-01/runtime/invocation/next",
            b"",
        )
        .await;
        assert_eq!(resp.status(), StatusCode::GONE);
        assert_eq!(json(resp).await["errorType"], "InstanceStopping");
    }

    #[tokio::test]
    async fn a_response_completes_the_invocation_in_progress() {
        let (app, _handles, mut rx) = handed_out().await;
        let path = format!("/2018-06-01/runtime/invocation/{RID}/response");
        let resp = send(&app, "POST", &path, b"\"done\"").await;
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
        assert_eq!(json(resp).await, serde_json::json!({ "status": "OK" }));
        match rx.try_recv().unwrap() {
            RuntimeReply::Response(b) => assert_eq!(&b[..], b"\"done\""),
            other => panic!("{other:?}"),
        }
        // Completed: a second response for it names the request id.
        let resp = send(&app, "POST", &path, b"\"again\"").await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert_eq!(json(resp).await["errorType"], "InvalidRequestID");
    }

    #[tokio::test]
    async fn another_request_id_is_refused_and_the_invocation_stays_in_progress() {
        let (app, _handles, mut rx) = handed_out().await;
        for kind in ["response", "error"] {
            let path = format!("/2018-06-01/runtime/invocation/not-{RID}/{kind}");
            let resp = send(&app, "POST", &path, b"{}").await;
            assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{kind}");
            let v = json(resp).await;
            assert_eq!(v["errorType"], "InvalidRequestID");
            assert!(
                v["errorMessage"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("not-{RID}")),
                "{v}"
            );
        }
        assert!(rx.try_recv().is_err(), "nothing was answered");
        let path = format!("/2018-06-01/runtime/invocation/{RID}/response");
        let resp = send(&app, "POST", &path, b"1").await;
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
        assert!(matches!(rx.try_recv().unwrap(), RuntimeReply::Response(b) if &b[..] == b"1"));
    }

    #[tokio::test]
    async fn a_response_over_6_mb_is_413_and_the_invocation_fails() {
        let (app, _handles, mut rx) = handed_out().await;
        let path = format!("/2018-06-01/runtime/invocation/{RID}/response");
        let big = vec![b'x'; MAX_RESPONSE_BYTES + 1];
        let resp = call(&app, "POST", &path, Request::new(Body::from(big))).await;
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(json(resp).await["errorType"], "RequestEntityTooLarge");
        assert!(matches!(rx.try_recv().unwrap(), RuntimeReply::TooLarge));
    }

    #[tokio::test]
    async fn an_error_takes_its_type_from_the_body_then_the_header_then_unhandled() {
        let cases: [(&[u8], Option<&str>, &str); 4] = [
            (
                br#"{"errorType":"ValueError","errorMessage":"bad"}"#,
                Some("Header.Type"),
                "ValueError",
            ),
            (
                br#"{"errorMessage":"bad"}"#,
                Some("Header.Type"),
                "Header.Type",
            ),
            (b"not json", Some("Header.Type"), "Header.Type"),
            (b"not json", None, "Unhandled"),
        ];
        for (body, header, expected) in cases {
            let (app, _handles, mut rx) = handed_out().await;
            let mut req = Request::new(Body::from(body));
            if let Some(h) = header {
                req.headers_mut()
                    .insert("lambda-runtime-function-error-type", h.parse().unwrap());
            }
            let path = format!("/2018-06-01/runtime/invocation/{RID}/error");
            let resp = call(&app, "POST", &path, req).await;
            assert_eq!(resp.status(), StatusCode::ACCEPTED);
            match rx.try_recv().unwrap() {
                RuntimeReply::Error {
                    error_type,
                    body: b,
                } => {
                    assert_eq!(error_type, expected);
                    assert_eq!(&b[..], body, "the body is passed on as it came");
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn an_init_error_is_reported_with_the_type_in_its_header() {
        let (state, mut handles) = new_state();
        let app = router(state);
        let mut req = Request::new(Body::from(r#"{"errorMessage":"no module"}"#));
        req.headers_mut().insert(
            "lambda-runtime-function-error-type",
            "Runtime.ImportModuleError".parse().unwrap(),
        );
        let resp = call(&app, "POST", "/2018-06-01/runtime/init/error", req).await;
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
        let (kind, body) = handles.init_error.try_recv().unwrap();
        assert_eq!(kind, "Runtime.ImportModuleError");
        assert_eq!(&body[..], br#"{"errorMessage":"no module"}"#);
    }

    #[tokio::test]
    async fn an_init_error_without_a_type_is_runtime_unknown() {
        let (state, mut handles) = new_state();
        let resp = send(
            &router(state),
            "POST",
            "/2018-06-01/runtime/init/error",
            b"oops",
        )
        .await;
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
        let (kind, body) = handles.init_error.try_recv().unwrap();
        assert_eq!(
            (kind.as_str(), &body[..]),
            ("Runtime.Unknown", &b"oops"[..])
        );
    }

    #[tokio::test]
    async fn unknown_paths_and_methods_are_refused() {
        let (state, _handles) = new_state();
        let app = router(state);
        let resp = send(&app, "GET", "/2018-06-01/runtime/invocation", b"").await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert_eq!(json(resp).await["errorType"], "InvalidRequest");
        let resp = send(&app, "POST", "/2018-06-01/runtime/invocation/next", b"").await;
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
        let path = format!("/2018-06-01/runtime/invocation/{RID}/response");
        let resp = send(&app, "GET", &path, b"").await;
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
}
