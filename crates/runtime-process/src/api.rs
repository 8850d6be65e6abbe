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
    set("lambda-runtime-trace-id", &trace_id(&inv.request_id));
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
