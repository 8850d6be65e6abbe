//! Amazon EventBridge's API subset: `POST /` with `X-Amz-Target:
//! AWSEvents.OPERATION` in the JSON 1.1 protocol, authenticated like every
//! control call (SigV4 service `events`). PutEvents publishes through
//! [`Platform::publish`]; any other operation answers EventBridge's error
//! shape naming it.

use crate::error::{aws_json_error, AWS_JSON_1_1};
use axum::body::Bytes;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use updraft_platform::{Platform, PlatformError, PutEntry, PutResult};

/// The `X-Amz-Target` prefix of EventBridge's operations.
pub(crate) const TARGET_PREFIX: &str = "AWSEvents.";

/// Runs one EventBridge operation (the part of `X-Amz-Target` after
/// [`TARGET_PREFIX`]) on a body already authenticated.
pub(crate) async fn handle(
    platform: Platform,
    operation: &str,
    headers: &axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    match operation {
        "PutEvents" => match put_events(&platform, headers, &body).await {
            Ok(r) => r,
            Err(e) => platform_error(&e),
        },
        other => aws_json_error(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            &format!(
                "Updraft's EventBridge API implements PutEvents only; \
                 {TARGET_PREFIX}{other} is not supported"
            ),
        ),
    }
}

/// A platform error in EventBridge's words.
fn platform_error(e: &PlatformError) -> Response {
    let (status, error_type) = match e {
        PlatformError::Invalid(_)
        | PlatformError::InvalidParameter(_)
        | PlatformError::InvalidRequestContent(_) => {
            (StatusCode::BAD_REQUEST, "ValidationException")
        }
        PlatformError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "ValidationException"),
        PlatformError::Throttled(_) => (StatusCode::BAD_REQUEST, "ThrottlingException"),
        PlatformError::NotFound(_) => (StatusCode::BAD_REQUEST, "ResourceNotFoundException"),
        PlatformError::Unauthorized(_)
        | PlatformError::Forbidden(_)
        | PlatformError::AccessDenied(_) => (StatusCode::FORBIDDEN, "AccessDeniedException"),
        PlatformError::ExpiredToken(_) => (StatusCode::FORBIDDEN, "ExpiredTokenException"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "InternalException"),
    };
    aws_json_error(status, error_type, &e.public_message())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutEventsRequest {
    entries: Option<Vec<RequestEntry>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RequestEntry {
    time: Option<Value>,
    source: Option<String>,
    resources: Option<Vec<String>>,
    detail_type: Option<String>,
    detail: Option<String>,
    event_bus_name: Option<String>,
    /// An X-Ray trace header for this entry (EventBridge's `TraceHeader`).
    trace_header: Option<String>,
}

/// A timestamp as the JSON protocol sends it (epoch seconds, perhaps with a
/// fraction) or as RFC 3339 text.
pub(crate) fn timestamp(field: &str, v: &Value) -> Result<SystemTime, PlatformError> {
    let parsed = match v {
        Value::Number(n) => n
            .as_f64()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .and_then(|s| UNIX_EPOCH.checked_add(Duration::try_from_secs_f64(s).ok()?)),
        Value::String(s) => humantime::parse_rfc3339_weak(s).ok(),
        _ => None,
    };
    parsed.ok_or_else(|| {
        updraft_core::Invalid::new(field, "epoch seconds or an RFC 3339 time", v.to_string()).into()
    })
}

async fn put_events(
    platform: &Platform,
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Result<Response, PlatformError> {
    use updraft_platform::traces::TraceContext;
    // The call's trace; an entry's own TraceHeader wins for that entry.
    let call_trace = TraceContext::from_headers(headers);
    let de = &mut serde_json::Deserializer::from_slice(body);
    let request: PutEventsRequest = serde_path_to_error::deserialize(de).map_err(|e| {
        PlatformError::InvalidParameter(format!(
            "the PutEvents request is not what was expected at {}: {}",
            e.path(),
            e.inner()
        ))
    })?;
    let entries = request.entries.ok_or_else(|| {
        PlatformError::InvalidParameter("Entries: a required member is missing".into())
    })?;
    let mut put = Vec::with_capacity(entries.len());
    for (i, e) in entries.into_iter().enumerate() {
        let time = match &e.time {
            Some(v) => Some(timestamp(&format!("Entries[{i}].Time"), v)?),
            None => None,
        };
        put.push(PutEntry {
            source: e.source,
            detail_type: e.detail_type,
            detail: e.detail,
            resources: e.resources.unwrap_or_default(),
            time,
            event_bus_name: e.event_bus_name,
            trace: e
                .trace_header
                .as_deref()
                .and_then(|h| TraceContext::from_xray(h).ok())
                .or_else(|| call_trace.clone())
                .and_then(|c| c.traceparent()),
        });
    }
    let results = platform.publish(put).await?;
    let failed = results
        .iter()
        .filter(|r| matches!(r, PutResult::Failed { .. }))
        .count();
    let entries: Vec<Value> = results
        .into_iter()
        .map(|r| match r {
            PutResult::Accepted(id) => json!({ "EventId": id }),
            PutResult::Failed { code, message } => {
                json!({ "ErrorCode": code, "ErrorMessage": message })
            }
        })
        .collect();
    let body = json!({ "FailedEntryCount": failed, "Entries": entries });
    Ok((
        StatusCode::OK,
        [(CONTENT_TYPE, AWS_JSON_1_1)],
        body.to_string(),
    )
        .into_response())
}
