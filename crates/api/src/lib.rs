//! The control surfaces: the native API (`/api/v1/…`) the CLI uses, the
//! AWS APIs (Lambda's subset; SQS and EventBridge's PutEvents on `POST /`
//! by `X-Amz-Target`, [`target`]), and `/healthz`.
//! Every request is authenticated (SigV4 or bearer) before it reaches a
//! handler; every error leaves through [`ApiError`] (or, on the AWS JSON
//! protocols, `error::aws_json_error`). `/metrics` ([`metrics_router`])
//! is authenticated the same way unless the server makes it public.

mod authorize;
mod error;
mod events;
mod invoke;
pub mod lambda;
pub mod lambda_events;
mod native;
mod sqs;
pub mod target;

pub use error::ApiError;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use updraft_platform::{Platform, PlatformError};

/// The whole control router (without the gateway).
pub fn router(platform: Platform) -> Router {
    let authed = native::router()
        // The AWS Lambda API subset (lambda/): functions, versions, aliases,
        // concurrency, URL config, Invoke, tags, account settings, and
        // Lambda's EventInvokeConfig operations (lambda_events.rs, merged
        // there, once); Lambda's error shape for the rest of its paths.
        .merge(lambda::router())
        // `authenticate` buffers and bounds every body; axum's 2 MB default must not cut code uploads.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .route_layer(axum::middleware::from_fn_with_state(
            platform.clone(),
            authenticate,
        ))
        .with_state(platform.clone());
    Router::new()
        .route("/healthz", get(healthz))
        .with_state(platform)
        .merge(authed)
}

/// `GET /metrics`: the Prometheus text exposition, behind the control
/// API's authentication (admin credentials; a function's are refused)
/// unless `public` (`updraft server --metrics-public`).
pub fn metrics_router(platform: Platform, public: bool) -> Router {
    let route = Router::new().route("/metrics", get(metrics));
    let route = if public {
        route
    } else {
        route.route_layer(axum::middleware::from_fn_with_state(
            platform.clone(),
            authenticate,
        ))
    };
    route.with_state(platform)
}

async fn metrics(State(p): State<Platform>) -> Response {
    match p.metrics_text().await {
        Ok(text) => (
            [(
                axum::http::header::CONTENT_TYPE,
                updraft_metrics::CONTENT_TYPE,
            )],
            text,
        )
            .into_response(),
        Err(e) => ApiError(e).into_response(),
    }
}

/// 200 while the store can commit a write; 503 naming the cause (a full
/// disk, say) while it cannot. The write probe's answer is cached briefly.
async fn healthz(State(p): State<Platform>) -> Response {
    match p.store().check_writable().await {
        Ok(()) => "ok\n".into_response(),
        Err(cause) => ApiError(PlatformError::Unavailable(format!(
            "the store cannot write: {cause}"
        )))
        .into_response(),
    }
}

/// The largest body a control call may carry (code uploads).
const MAX_CONTROL_BODY: usize = limits::UPLOAD_ZIP_BYTES + 1024;

use updraft_core::limits::{self, UNVERIFIED_BODY_BYTES as MAX_UNVERIFIED_BODY};

/// Checks credentials from the request head (bearer, or SigV4), refusing a
/// stranger before reading a byte of the body; then reads the body (bounded),
/// checks it against the signature, and passes the buffered request on.
pub async fn authenticate(State(p): State<Platform>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let pq = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let pending = match p.verifier().check_head(
        parts.method.as_str(),
        pq,
        &parts.headers,
        std::time::SystemTime::now(),
    ) {
        Ok(pending) => pending,
        Err(e) => return refuse(&parts, e.into()),
    };
    let limit = if pending.is_authenticated() {
        MAX_CONTROL_BODY
    } else {
        MAX_UNVERIFIED_BODY
    };
    let too_large = || {
        let hint = if pending.is_authenticated() {
            String::new()
        } else {
            " unless signed with x-amz-content-sha256 (the hex SHA-256 of the body)".into()
        };
        refuse(
            &parts,
            PlatformError::TooLarge(format!("request body is over {limit} bytes{hint}")),
        )
    };
    if declared_length(&parts.headers).is_some_and(|n| n > limit as u64) {
        return too_large();
    }
    let body = match to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => return too_large(),
    };
    let mut parts = parts;
    let caller = pending.caller().clone();
    match pending.finish(&body) {
        Ok(Some(sha256)) => {
            parts.extensions.insert(BodySha256(sha256));
        }
        Ok(None) => {}
        Err(e) => return refuse(&parts, e.into()),
    }
    if let updraft_auth::Caller::Function(claims) = &caller {
        let query = parts.uri.query().unwrap_or("");
        if let Err(e) = authorize::check(
            claims,
            parts.method.as_str(),
            parts.uri.path(),
            query,
            &parts.headers,
            &body,
        ) {
            return refuse(&parts, e);
        }
    }
    parts.extensions.insert(caller);
    next.run(Request::from_parts(parts, Body::from(body))).await
}

/// A refused request, in the shape of the surface it was for.
fn refuse(parts: &axum::http::request::Parts, e: PlatformError) -> Response {
    target::refusal(parts.uri.path(), &parts.headers, e)
        .unwrap_or_else(|e| ApiError(e).into_response())
}

/// The hex SHA-256 of a request's body, when checking its signature took
/// one: handlers use it instead of hashing the body again.
#[derive(Clone, Debug)]
pub struct BodySha256(pub String);

/// The request's `Content-Length`, when it has a valid one.
fn declared_length(headers: &axum::http::HeaderMap) -> Option<u64> {
    headers
        .get(axum::http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}
