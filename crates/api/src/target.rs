//! AWS's JSON-protocol services share one entry point: `POST /` with an
//! `X-Amz-Target: Service.Operation` header. [`wrap`] takes those requests
//! (only those: a manifest route on `POST /` still gets the rest),
//! authenticates them with [`crate::authenticate`] and routes them by the
//! target's prefix; every refusal, authentication's included, is in the
//! service's own error shape.

use crate::error::aws_json_error;
use crate::error::sqs::SqsError;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use tower::ServiceExt;
use updraft_platform::{Platform, PlatformError};

/// A service behind `X-Amz-Target`, with the operation named.
enum Target<'a> {
    /// `AmazonSQS.<Op>` (crates/api/src/sqs).
    Sqs(&'a str),
    /// `AWSEvents.<Op>` (crates/api/src/events.rs).
    Events(&'a str),
    /// Anything else: a service Updraft does not speak.
    Unknown(&'a str),
}

impl<'a> Target<'a> {
    fn of(headers: &'a HeaderMap) -> Option<Target<'a>> {
        let target = headers.get("x-amz-target")?.to_str().unwrap_or("");
        Some(match target.split_once('.') {
            Some(("AmazonSQS", op)) => Target::Sqs(op),
            Some(("AWSEvents", op)) => Target::Events(op),
            _ => Target::Unknown(target),
        })
    }

    /// `e` in the service's error shape; Err for EventBridge, whose
    /// refusals are the Lambda API's (with `__type`).
    fn refuse(&self, e: PlatformError) -> Result<Response, PlatformError> {
        match self {
            Target::Sqs(_) => Ok(SqsError::from(e).into_response()),
            Target::Events(_) => Err(e),
            Target::Unknown(_) => Ok(unknown(&e.public_message(), e.status())),
        }
    }
}

/// The JSON protocol's generic error (AWS's `UnknownOperationException`
/// for a target no service here answers).
fn unknown(message: &str, status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    aws_json_error(status, "UnknownOperationException", message)
}

/// Whether a request is for this entry point.
fn is_target(req: &Request) -> bool {
    req.method() == Method::POST
        && req.uri().path() == "/"
        && req.headers().contains_key("x-amz-target")
}

/// A refusal of a target request in its service's shape; None for other
/// requests (their surfaces answer in Lambda's shape).
pub(crate) fn refusal(
    path: &str,
    headers: &HeaderMap,
    e: PlatformError,
) -> Result<Response, PlatformError> {
    match Target::of(headers) {
        Some(t) if path == "/" => t.refuse(e),
        _ => Err(e),
    }
}

/// `app` with this entry point in front: target requests go to
/// [`dispatch`] behind authentication, all others on to `app`.
pub fn wrap(app: Router, platform: Platform) -> Router {
    let targets = Router::new()
        .route("/", post(dispatch))
        .route_layer(axum::middleware::from_fn_with_state(
            platform.clone(),
            crate::authenticate,
        ))
        .with_state(platform);
    app.layer(axum::middleware::from_fn_with_state(targets, intercept))
}

async fn intercept(State(targets): State<Router>, req: Request, next: Next) -> Response {
    if !is_target(&req) {
        return next.run(req).await;
    }
    match targets.oneshot(req).await {
        Ok(resp) => resp,
        Err(never) => match never {},
    }
}

/// Routes an authenticated target request by its service; one arm a service.
async fn dispatch(State(p): State<Platform>, headers: HeaderMap, body: Bytes) -> Response {
    match Target::of(&headers) {
        Some(Target::Sqs(op)) => crate::sqs::handle(&p, op, &headers, &body).await,
        Some(Target::Events(op)) => crate::events::handle(p, op, &headers, body).await,
        Some(Target::Unknown(target)) => unknown(
            &format!("Updraft does not implement the operation {target:?}"),
            400,
        ),
        None => unknown("an X-Amz-Target header is required", 400),
    }
}
