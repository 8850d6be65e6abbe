//! What happens to an asynchronous event after a run: Lambda's retry,
//! backoff and age rules, and its destination invocation record.
//!
//! - success: the event is deleted, or sent on to the on-success destination;
//! - a function error (any `Outcome::Error`) is an attempt: retried after
//!   `retry_base × 2^(attempt-1)` (Lambda: about 1 then 2 minutes) up to
//!   `MaximumRetryAttempts` (default 2);
//! - a throttle, a draining server or a store hiccup is not an attempt: the
//!   event is retried after 1 s, doubling up to 5 minutes, as Lambda retries
//!   throttles;
//! - out of retries, or older than `MaximumEventAgeInSeconds` (default 6 h):
//!   the destination invocation record goes to the on-failure destination
//!   function as a new event, or, without one, to the function's dead letters.

use std::time::Duration;
use updraft_store::EventInvokeConfigRow;

/// Lambda's defaults and ranges for EventInvokeConfig.
pub const DEFAULT_MAX_RETRY_ATTEMPTS: u32 = 2;
pub const DEFAULT_MAX_EVENT_AGE_S: u32 = 6 * 60 * 60;
pub const MAX_RETRY_ATTEMPTS: i64 = 2;
pub const MIN_EVENT_AGE_S: i64 = 60;
/// The default backoff base (`updraft server --retry-base`).
pub const DEFAULT_RETRY_BASE: Duration = Duration::from_secs(60);

/// Throttle retries: 1 s doubling to 5 minutes (Lambda's documented backoff).
const THROTTLE_FIRST_MS: i64 = 1000;
const THROTTLE_MAX_MS: i64 = 5 * 60 * 1000;

/// Why an event failed for good (Lambda's `requestContext.condition`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureCondition {
    RetriesExhausted,
    EventAgeExceeded,
}

impl FailureCondition {
    pub fn as_str(&self) -> &'static str {
        match self {
            FailureCondition::RetriesExhausted => "RetriesExhausted",
            FailureCondition::EventAgeExceeded => "EventAgeExceeded",
        }
    }
}

/// The settings an event runs under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Effective {
    pub max_retries: i64,
    pub max_age_ms: i64,
    pub on_success: Option<String>,
    pub on_failure: Option<String>,
}

impl Effective {
    pub fn from_row(row: Option<&EventInvokeConfigRow>) -> Effective {
        Effective {
            max_retries: row
                .and_then(|r| r.max_retry_attempts)
                .unwrap_or(DEFAULT_MAX_RETRY_ATTEMPTS as i64),
            max_age_ms: row
                .and_then(|r| r.max_event_age_s)
                .unwrap_or(DEFAULT_MAX_EVENT_AGE_S as i64)
                * 1000,
            on_success: row.and_then(|r| r.on_success.clone()),
            on_failure: row.and_then(|r| r.on_failure.clone()),
        }
    }
}

/// What to do after a run that ended in a function error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AfterError {
    RetryAt(i64),
    Fail(FailureCondition),
}

/// `base × 2^(attempt-1)`: the wait after the `attempt`-th failed run.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let factor = 1u32 << attempt.saturating_sub(1).min(16);
    base.saturating_mul(factor)
}

pub(crate) fn after_error(
    eff: &Effective,
    base: Duration,
    enqueued_ms: i64,
    attempts: i64,
    now: i64,
) -> AfterError {
    if attempts > eff.max_retries {
        return AfterError::Fail(FailureCondition::RetriesExhausted);
    }
    let at = now.saturating_add(backoff(base, attempts as u32).as_millis() as i64);
    if at - enqueued_ms > eff.max_age_ms {
        // It would be too old by the time it could run again.
        return AfterError::Fail(FailureCondition::EventAgeExceeded);
    }
    AfterError::RetryAt(at)
}

/// The wait before re-running an event after its `n`-th run that was not an
/// attempt (throttled, server draining).
pub(crate) fn throttle_delay_ms(n: i64) -> i64 {
    let shift = n.saturating_sub(1).clamp(0, 20) as u32;
    THROTTLE_FIRST_MS
        .saturating_mul(1i64 << shift)
        .min(THROTTLE_MAX_MS)
}

fn json_or_string(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// The response half of a destination record: the version that ran, the
/// `functionError` (for failures) and the response body.
pub(crate) struct Response<'a> {
    pub version: &'a str,
    pub function_error: Option<&'a str>,
    pub body: &'a [u8],
}

/// Lambda's destination invocation record.
pub(crate) fn destination_record(
    request_id: &str,
    function_arn: &str,
    condition: &str,
    invoke_count: i64,
    timestamp_ms: i64,
    request_payload: &[u8],
    response: Option<Response<'_>>,
) -> serde_json::Value {
    let ts = humantime::format_rfc3339_millis(
        std::time::UNIX_EPOCH + Duration::from_millis(timestamp_ms.max(0) as u64),
    )
    .to_string();
    let mut record = serde_json::json!({
        "version": "1.0",
        "timestamp": ts,
        "requestContext": {
            "requestId": request_id,
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": invoke_count,
        },
        "requestPayload": json_or_string(request_payload),
    });
    if let Some(r) = response {
        let mut ctx = serde_json::json!({ "statusCode": 200, "executedVersion": r.version });
        if let Some(fe) = r.function_error {
            ctx["functionError"] = fe.into();
        }
        record["responseContext"] = ctx;
        record["responsePayload"] = json_or_string(r.body);
    }
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eff(retries: i64, age_s: i64) -> Effective {
        Effective {
            max_retries: retries,
            max_age_ms: age_s * 1000,
            on_success: None,
            on_failure: None,
        }
    }

    #[test]
    fn backoff_doubles_from_the_base() {
        let b = Duration::from_secs(60);
        assert_eq!(backoff(b, 1), Duration::from_secs(60));
        assert_eq!(backoff(b, 2), Duration::from_secs(120));
        assert_eq!(backoff(b, 3), Duration::from_secs(240));
        assert_eq!(
            backoff(Duration::from_millis(100), 0),
            Duration::from_millis(100)
        );
        // Never overflows.
        assert!(backoff(Duration::from_secs(u64::MAX / 2), 60) >= Duration::from_secs(1));
    }

    #[test]
    fn retries_then_exhausted() {
        let base = Duration::from_millis(100);
        let e = eff(2, 21600);
        assert_eq!(after_error(&e, base, 0, 1, 1000), AfterError::RetryAt(1100));
        assert_eq!(after_error(&e, base, 0, 2, 2000), AfterError::RetryAt(2200));
        assert_eq!(
            after_error(&e, base, 0, 3, 3000),
            AfterError::Fail(FailureCondition::RetriesExhausted)
        );
        let none = eff(0, 21600);
        assert_eq!(
            after_error(&none, base, 0, 1, 1000),
            AfterError::Fail(FailureCondition::RetriesExhausted)
        );
    }

    #[test]
    fn a_retry_past_the_maximum_age_fails_at_once() {
        let e = eff(2, 60);
        // One minute base: the retry would come 61 s after enqueueing.
        assert_eq!(
            after_error(&e, Duration::from_secs(60), 0, 1, 1000),
            AfterError::Fail(FailureCondition::EventAgeExceeded)
        );
        assert_eq!(
            after_error(&e, Duration::from_secs(10), 0, 1, 1000),
            AfterError::RetryAt(11_000)
        );
    }

    #[test]
    fn throttle_backoff_is_bounded() {
        assert_eq!(throttle_delay_ms(1), 1000);
        assert_eq!(throttle_delay_ms(2), 2000);
        assert_eq!(throttle_delay_ms(0), 1000);
        assert_eq!(throttle_delay_ms(100), THROTTLE_MAX_MS);
    }

    #[test]
    fn defaults_without_a_config() {
        let e = Effective::from_row(None);
        assert_eq!(e, eff(2, 6 * 3600));
    }

    #[test]
    fn destination_record_has_lambda_shape() {
        let r = destination_record(
            "rid",
            "arn:aws:lambda:us-east-1:000000000000:function:f:$LATEST",
            "RetriesExhausted",
            3,
            1_573_686_021_479,
            br#"{"a":1}"#,
            Some(Response {
                version: updraft_core::LATEST,
                function_error: Some("Unhandled"),
                body: br#"{"errorType":"ValueError"}"#,
            }),
        );
        assert_eq!(r["version"], "1.0");
        assert_eq!(r["timestamp"], "2019-11-13T23:00:21.479Z");
        assert_eq!(r["requestContext"]["requestId"], "rid");
        assert_eq!(r["requestContext"]["condition"], "RetriesExhausted");
        assert_eq!(r["requestContext"]["approximateInvokeCount"], 3);
        assert_eq!(r["requestPayload"]["a"], 1);
        assert_eq!(r["responseContext"]["statusCode"], 200);
        assert_eq!(
            r["responseContext"]["executedVersion"],
            updraft_core::LATEST
        );
        assert_eq!(r["responseContext"]["functionError"], "Unhandled");
        assert_eq!(r["responsePayload"]["errorType"], "ValueError");
        let bare = destination_record("r", "a", "EventAgeExceeded", 0, 0, b"not json", None);
        assert_eq!(bare["requestPayload"], "not json");
        assert!(bare.get("responseContext").is_none());
    }
}
