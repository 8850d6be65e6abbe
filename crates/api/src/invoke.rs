//! One invoke request and one response writer for both surfaces that run a
//! function on demand: the native `POST /api/v1/functions/{name}/invoke` and
//! Lambda's `POST /2015-03-31/functions/{name}/invocations`. Each surface
//! parses its own request shape into an [`InvokeCall`]; [`run`] checks it,
//! runs or queues it and writes the response both answer with.

use crate::ApiError;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use updraft_core::limits::{ASYNC_PAYLOAD_BYTES, SYNC_PAYLOAD_BYTES};
use updraft_core::{new_request_id, now_ms, version_label, Outcome, TriggerKind};
use updraft_platform::{Platform, PlatformError};

/// `X-Amz-Log-Result` carries at most the last 4 KB of the invocation's log.
const TAIL_BYTES: usize = 4096;

/// Lambda's invocation types (`X-Amz-Invocation-Type`; the native API's `?async=true` is `Event`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InvocationType {
    RequestResponse,
    Event,
    DryRun,
}

/// Which API the call came through: they differ only in what they report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Surface {
    /// Reports the version that ran, and answers an `Event` with `{"request_id"}`.
    Native,
    /// As Lambda: an unqualified call reports `$LATEST`; an `Event` gets an empty 202.
    Lambda,
}

/// One invocation asked for, as either surface parses it.
#[derive(Debug)]
pub(crate) struct InvokeCall {
    pub name: String,
    pub qualifier: Option<String>,
    pub kind: InvocationType,
    /// `X-Amz-Log-Type: Tail`: the last 4 KB of the log in `X-Amz-Log-Result`.
    pub tail_logs: bool,
    /// `X-Amz-Client-Context`: base64 of a JSON object.
    pub client_context: Option<String>,
    /// The caller's trace (`traceparent`, else `X-Amzn-Trace-Id`), continued.
    pub trace: Option<updraft_platform::traces::TraceContext>,
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

impl InvokeCall {
    /// The headers both surfaces take: `X-Amz-Invocation-Type` (when
    /// `kind` is not already decided), `X-Amz-Log-Type`, `X-Amz-Client-Context`.
    pub fn from_headers(
        name: String,
        qualifier: Option<String>,
        kind: Option<InvocationType>,
        headers: &HeaderMap,
    ) -> Result<InvokeCall, PlatformError> {
        let kind = match kind {
            Some(k) => k,
            None => match header(headers, "x-amz-invocation-type") {
                None | Some("RequestResponse") => InvocationType::RequestResponse,
                Some("Event") => InvocationType::Event,
                Some("DryRun") => InvocationType::DryRun,
                Some(other) => {
                    return Err(PlatformError::InvalidParameter(format!(
                        "InvocationType: expected RequestResponse, Event or DryRun, got {other:?}"
                    )))
                }
            },
        };
        let tail_logs = match header(headers, "x-amz-log-type") {
            None | Some("None") => false,
            Some("Tail") => true,
            Some(other) => {
                return Err(PlatformError::InvalidParameter(format!(
                    "LogType: expected None or Tail, got {other:?}"
                )))
            }
        };
        let client_context = header(headers, "x-amz-client-context").map(str::to_string);
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
                ));
            }
        }
        Ok(InvokeCall {
            name,
            qualifier: qualifier.filter(|q| !q.is_empty()),
            kind,
            tail_logs,
            client_context,
            trace: updraft_platform::traces::TraceContext::from_headers(headers),
        })
    }
}

/// Checks a payload as Lambda does: size first (413), then JSON
/// (InvalidRequestContentException); an empty payload is `{}`.
pub(crate) fn check_payload(body: &[u8], kind: InvocationType) -> Result<Vec<u8>, PlatformError> {
    let (limit, label) = match kind {
        InvocationType::Event => (ASYNC_PAYLOAD_BYTES, "Event"),
        _ => (SYNC_PAYLOAD_BYTES, "RequestResponse"),
    };
    if body.len() > limit {
        return Err(PlatformError::TooLarge(format!(
            "Request must be smaller than {limit} bytes for the {label} invocation type (got {} bytes)",
            body.len()
        )));
    }
    if body.is_empty() {
        return Ok(b"{}".to_vec());
    }
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(body) {
        return Err(PlatformError::InvalidRequestContent(format!(
            "Could not parse request body into json: {e}"
        )));
    }
    Ok(body.to_vec())
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

fn set(resp: &mut Response, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, v);
    }
}

/// Runs (or queues) the call and writes the response.
pub(crate) async fn run(
    p: &Platform,
    call: InvokeCall,
    surface: Surface,
    body: &[u8],
) -> Result<Response, ApiError> {
    let payload = check_payload(body, call.kind)?;
    let qualifier = call.qualifier.as_deref();
    if call.kind == InvocationType::Event {
        // Written durably to the store's queue before the 202 (SPEC §4).
        let id = p
            .enqueue_event(&call.name, qualifier, payload, call.trace.as_ref())
            .await?;
        let mut resp = match surface {
            Surface::Native => (
                StatusCode::ACCEPTED,
                Json(serde_json::json!({ "request_id": id })),
            )
                .into_response(),
            Surface::Lambda => StatusCode::ACCEPTED.into_response(),
        };
        set(&mut resp, "x-amzn-requestid", &id);
        return Ok(resp);
    }
    // Resolving checks the function, the version or alias, and unpacks the code.
    let spec = p.resolve(&call.name, qualifier).await?;
    if call.kind == InvocationType::DryRun {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let request_id = new_request_id();
    let since_ms = now_ms() - 1000;
    let reserved_zero = spec.config.scaling.max_instances == 0;
    let result = p
        .invoke_spec(
            spec,
            TriggerKind::Invoke,
            request_id.clone(),
            payload,
            call.client_context,
            call.trace,
        )
        .await
        .map_err(|e| match e {
            PlatformError::Throttled(_) if reserved_zero => PlatformError::Throttled(format!(
                "Rate Exceeded: function {} has a reserved concurrency of 0",
                call.name
            )),
            other => other,
        })?;
    // Lambda reports an unqualified call as $LATEST, even when it equals a
    // published version; aliases report the version they picked.
    let executed = match (surface, qualifier) {
        (Surface::Lambda, None) => version_label(0),
        _ => version_label(result.version),
    };
    let (out, error) = match result.outcome {
        Outcome::Success(b) => (b, None),
        Outcome::Error { body, .. } => (body, Some("Unhandled")),
    };
    let mut resp = (StatusCode::OK, out).into_response();
    set(&mut resp, "content-type", "application/json");
    set(&mut resp, "x-amz-executed-version", &executed);
    set(&mut resp, "x-amzn-requestid", &request_id);
    if let Some(e) = error {
        set(&mut resp, "x-amz-function-error", e);
    }
    if call.tail_logs {
        let lines = p
            .logs(&call.name, since_ms, Some(&request_id), 0, 10_000)
            .await?;
        let text: String = lines.iter().map(|l| format!("{}\n", l.text)).collect();
        let encoded = base64::engine::general_purpose::STANDARD.encode(tail(&text, TAIL_BYTES));
        set(&mut resp, "x-amz-log-result", &encoded);
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

    #[test]
    fn payloads_are_checked_for_size_then_json() {
        assert_eq!(
            check_payload(b"", InvocationType::RequestResponse).unwrap(),
            b"{}"
        );
        let big = vec![b' '; ASYNC_PAYLOAD_BYTES + 1];
        assert!(matches!(
            check_payload(&big, InvocationType::Event),
            Err(PlatformError::TooLarge(_))
        ));
        assert!(matches!(
            check_payload(&big, InvocationType::RequestResponse),
            Err(PlatformError::InvalidRequestContent(_))
        ));
        assert!(matches!(
            check_payload(b"{", InvocationType::Event),
            Err(PlatformError::InvalidRequestContent(_))
        ));
    }

    #[test]
    fn headers_parse_into_one_call() {
        let mut h = HeaderMap::new();
        h.insert("x-amz-invocation-type", HeaderValue::from_static("DryRun"));
        h.insert("x-amz-log-type", HeaderValue::from_static("Tail"));
        let c = InvokeCall::from_headers("f".into(), Some(String::new()), None, &h).unwrap();
        assert_eq!(
            (c.kind, c.tail_logs, c.qualifier),
            (InvocationType::DryRun, true, None)
        );
        // A decided kind (the native ?async=true) wins over the header.
        let c =
            InvokeCall::from_headers("f".into(), None, Some(InvocationType::Event), &h).unwrap();
        assert_eq!(c.kind, InvocationType::Event);
        h.insert("x-amz-log-type", HeaderValue::from_static("All"));
        assert!(InvokeCall::from_headers("f".into(), None, None, &h).is_err());
        let mut h = HeaderMap::new();
        h.insert(
            "x-amz-client-context",
            HeaderValue::from_static("not base64!"),
        );
        assert!(matches!(
            InvokeCall::from_headers("f".into(), None, None, &h),
            Err(PlatformError::InvalidRequestContent(_))
        ));
    }
}
