//! Errors in Lambda's shape: the status, `x-amzn-ErrorType` and a JSON body
//! `{"Type": "User", "message": …}`, so AWS SDKs raise their usual exceptions;
//! and in the shape of AWS's JSON protocols ([`aws_json_error`]).
//! This is the one table of Lambda's error types, and the one place where a
//! field named in the platform's words (the manifest's `memory_mb`) gets
//! Lambda's name for it (`MemorySize`).

pub mod sqs;

use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use updraft_core::Invalid;
use updraft_platform::PlatformError;

pub struct ApiError(pub PlatformError);

impl From<PlatformError> for ApiError {
    fn from(e: PlatformError) -> Self {
        ApiError(e)
    }
}

/// Lambda's error type for each error.
pub fn lambda_error_type(e: &PlatformError) -> &'static str {
    match e {
        PlatformError::NotFound(_) => "ResourceNotFoundException",
        PlatformError::Conflict(_) => "ResourceConflictException",
        PlatformError::Invalid(_)
        | PlatformError::InvalidParameter(_)
        | PlatformError::ReceiptHandleInvalid(_) => "InvalidParameterValueException",
        PlatformError::InvalidRequestContent(_) => "InvalidRequestContentException",
        PlatformError::TooLarge(_) => "RequestEntityTooLargeException",
        PlatformError::PreconditionFailed(_) => "PreconditionFailedException",
        PlatformError::Throttled(_) => "TooManyRequestsException",
        PlatformError::Unauthorized(_) => "UnrecognizedClientException",
        PlatformError::Forbidden(_) => "InvalidSignatureException",
        PlatformError::AccessDenied(_) => "AccessDeniedException",
        PlatformError::ExpiredToken(_) => "ExpiredTokenException",
        PlatformError::Unavailable(_) | PlatformError::Internal(_) => "ServiceException",
    }
}

/// A configuration field as the Lambda API names it.
fn lambda_field(field: &str) -> Option<&'static str> {
    Some(match field {
        "runtime" => "Runtime",
        "handler" => "Handler",
        "memory_mb" => "MemorySize",
        "ephemeral_storage_mb" => "EphemeralStorage.Size",
        "snapshot" => "SnapStart.ApplyOn",
        "timeout" => "Timeout",
        "env" => "Environment.Variables",
        "logging.format" => "LoggingConfig.LogFormat",
        "logging.system_level" => "LoggingConfig.SystemLogLevel",
        _ => return None,
    })
}

/// An invalid field in Lambda's words (`Timeout: expected 1 to 900 seconds`).
fn lambda_invalid(e: &Invalid) -> Invalid {
    let mut out = e.clone();
    if let Some(name) = lambda_field(&e.field) {
        out.field = name.to_string();
    }
    if e.field == "timeout" {
        out.expected = "1 to 900 seconds".into();
    }
    out
}

/// The message a Lambda API client sees.
pub fn lambda_message(e: &PlatformError) -> String {
    match e {
        PlatformError::Invalid(i) => lambda_invalid(i).to_string(),
        other => other.public_message(),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let error_type = lambda_error_type(&self.0);
        let kind = if status >= 500 { "Service" } else { "User" };
        // `__type` too: clients of AWS's JSON protocols (EventBridge, SQS)
        // read the error type from it when credentials are refused.
        let body = serde_json::json!({
            "Type": kind,
            "__type": error_type,
            "message": lambda_message(&self.0),
        });
        let mut resp = (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            axum::Json(body),
        )
            .into_response();
        resp.headers_mut()
            .insert("x-amzn-errortype", HeaderValue::from_static(error_type));
        resp
    }
}

/// An error of an AWS JSON-protocol service (EventBridge): the status,
/// `x-amzn-ErrorType` and `{"__type": …, "message": …}`, as botocore and the
/// AWS SDKs read them. The one place these errors are shaped.
pub fn aws_json_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    let body = serde_json::json!({ "__type": error_type, "message": message });
    let mut resp = (status, [(CONTENT_TYPE, AWS_JSON_1_1)], body.to_string()).into_response();
    if let Ok(v) = HeaderValue::from_str(error_type) {
        resp.headers_mut().insert("x-amzn-errortype", v);
    }
    resp
}

/// The content type of AWS's JSON 1.1 protocol.
pub const AWS_JSON_1_1: &str = "application/x-amz-json-1.1";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_names_fields_in_its_own_words() {
        let e = PlatformError::Invalid(Invalid::new("memory_mb", "a number from 128 to 10240", 64));
        assert_eq!(
            lambda_message(&e),
            "MemorySize: expected a number from 128 to 10240, got 64"
        );
        assert_eq!(lambda_error_type(&e), "InvalidParameterValueException");
        let e =
            PlatformError::Invalid(Invalid::new("timeout", "a duration from 1ms to 15m", "16m"));
        assert_eq!(
            lambda_message(&e),
            "Timeout: expected 1 to 900 seconds, got 16m"
        );
        // A field with no Lambda name keeps its own.
        let e = PlatformError::Invalid(Invalid::new("Qualifier", "x", "y"));
        assert_eq!(lambda_message(&e), "Qualifier: expected x, got \"y\"");
    }

    #[test]
    fn every_error_has_a_type_and_status() {
        for (e, status, ty) in [
            (
                PlatformError::NotFound("x".into()),
                404,
                "ResourceNotFoundException",
            ),
            (
                PlatformError::Throttled("x".into()),
                429,
                "TooManyRequestsException",
            ),
            (
                PlatformError::TooLarge("x".into()),
                413,
                "RequestEntityTooLargeException",
            ),
            (PlatformError::Internal("x".into()), 500, "ServiceException"),
        ] {
            assert_eq!((e.status(), lambda_error_type(&e)), (status, ty));
        }
        assert_eq!(
            PlatformError::Internal("secret".into()).public_message(),
            "internal error; see the server log"
        );
    }
}
