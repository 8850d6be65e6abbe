//! Invoke: `POST /2015-03-31/functions/{name}/invocations`, with Lambda's
//! invocation types, `Tail` logs and response headers.

use super::{ApiResult, Query, Target};
use axum::body::Bytes;
use axum::extract::{Path, Query as Q, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use base64::Engine;
use updraft_core::version_label;
use updraft_core::{new_request_id, now_ms, Outcome};
use updraft_platform::{Platform, PlatformError};

use updraft_core::limits::{
    ASYNC_PAYLOAD_BYTES as MAX_ASYNC_PAYLOAD_BYTES, SYNC_PAYLOAD_BYTES as MAX_SYNC_PAYLOAD_BYTES,
};

/// `X-Amz-Log-Result` carries at most the last 4 KB of the invocation's log.
const TAIL_BYTES: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum InvocationType {
    RequestResponse,
    Event,
    DryRun,
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Size first (413), then JSON (InvalidRequestContentException), as Lambda.
fn check_payload(body: &[u8], limit: usize, kind: &str) -> Result<Vec<u8>, PlatformError> {
    if body.len() > limit {
        return Err(PlatformError::TooLarge(format!(
            "Request must be smaller than {limit} bytes for the {kind} invocation type (got {} bytes)",
            body.len()
        )));
    }
    crate::native::check_payload(body)
}

/// The last `max` bytes of the log text, starting on a character boundary.
pub(crate) fn tail(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

pub async fn invoke(
    State(p): State<Platform>,
    Path(name): Path<String>,
    Q(q): Q<Query>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult {
    let t = Target::parse(&name, q.get("Qualifier").map(String::as_str))?;
    let kind = match header(&headers, "x-amz-invocation-type") {
        None | Some("RequestResponse") => InvocationType::RequestResponse,
        Some("Event") => InvocationType::Event,
        Some("DryRun") => InvocationType::DryRun,
        Some(other) => {
            return Err(PlatformError::InvalidParameter(format!(
                "InvocationType: expected RequestResponse, Event or DryRun, got {other:?}"
            ))
            .into())
        }
    };
    let tail_logs = match header(&headers, "x-amz-log-type") {
        None | Some("None") => false,
        Some("Tail") => true,
        Some(other) => {
            return Err(PlatformError::InvalidParameter(format!(
                "LogType: expected None or Tail, got {other:?}"
            ))
            .into())
        }
    };
    let qualifier = t.qualifier.as_deref();

    if kind == InvocationType::Event {
        let payload = check_payload(&bytes, MAX_ASYNC_PAYLOAD_BYTES, "Event")?;
        // Written durably to the store's queue before the 202 (SPEC §4).
        let id = p.enqueue_event(&t.name, qualifier, payload).await?;
        let mut resp = StatusCode::ACCEPTED.into_response();
        if let Ok(v) = HeaderValue::from_str(&id) {
            resp.headers_mut().insert("x-amzn-requestid", v);
        }
        return Ok(resp);
    }

    let payload = check_payload(&bytes, MAX_SYNC_PAYLOAD_BYTES, "RequestResponse")?;
    // Resolving checks the function, the version or alias, and unpacks the code.
    let spec = p.resolve(&t.name, qualifier).await?;
    if kind == InvocationType::DryRun {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let client_context = header(&headers, "x-amz-client-context").map(str::to_string);
    if let Some(cc) = &client_context {
        // Lambda: base64 of a JSON object, at most 3583 bytes once decoded.
        let ok = base64::engine::general_purpose::STANDARD
            .decode(cc.trim())
            .ok()
            .filter(|b| b.len() <= 3583)
            .is_some_and(|b| serde_json::from_slice::<serde_json::Map<_, _>>(&b).is_ok());
        if !ok {
            return Err(PlatformError::InvalidRequestContent(
                "Client context must be a valid Base64-encoded JSON object of at most 3583 bytes"
                    .into(),
            )
            .into());
        }
    }
    let request_id = new_request_id();
    let since_ms = now_ms() - 1000;
    let reserved_zero = spec.config.scaling.max_instances == 0;
    let result = p
        .invoke_spec(spec, request_id.clone(), payload, client_context)
        .await
        .map_err(|e| match e {
            PlatformError::Throttled(_) if reserved_zero => PlatformError::Throttled(format!(
                "Rate Exceeded: function {} has a reserved concurrency of 0",
                t.name
            )),
            other => other,
        })?;
    // Unqualified calls run $LATEST (Lambda reports it so, even when it equals
    // a published version); aliases report the version they picked.
    let executed = match qualifier {
        None => version_label(0),
        Some(_) => version_label(result.version),
    };
    let (body, error) = match result.outcome {
        Outcome::Success(b) => (b, None),
        Outcome::Error { body, .. } => (body, Some("Unhandled")),
    };
    let log_result = if tail_logs {
        let lines = p
            .logs(&t.name, since_ms, Some(&request_id), 0, 10_000)
            .await?;
        let mut text = String::new();
        for l in &lines {
            text.push_str(&l.text);
            text.push('\n');
        }
        Some(base64::engine::general_purpose::STANDARD.encode(tail(&text, TAIL_BYTES)))
    } else {
        None
    };
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    if let Ok(v) = HeaderValue::from_str(&executed) {
        h.insert("x-amz-executed-version", v);
    }
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        h.insert("x-amzn-requestid", v);
    }
    if let Some(e) = error {
        h.insert("x-amz-function-error", HeaderValue::from_static(e));
    }
    if let Some(l) = log_result {
        if let Ok(v) = HeaderValue::from_str(&l) {
            h.insert("x-amz-log-result", v);
        }
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_end_on_a_char_boundary() {
        assert_eq!(tail("abc", 10), "abc");
        assert_eq!(tail("abcdef", 3), "def");
        assert_eq!(tail("aé", 1), "");
        assert_eq!(tail("aéb", 2), "b");
    }
}
