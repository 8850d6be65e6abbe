//! Errors in SQS's shape (the JSON protocol, query-compatible): status 400
//! for the sender's faults, a body `{"__type": "com.amazonaws.sqs#SHAPE",
//! "message": …}` and the `x-amzn-query-error: CODE;Sender` header from
//! which botocore takes the error code (`AWS.SimpleQueueService.NonExistentQueue`)
//! while the shape picks its exception class (`QueueDoesNotExist`). The
//! one table of SQS's errors.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use updraft_platform::PlatformError;

/// SQS's errors, by shape name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SqsCode {
    QueueDoesNotExist,
    QueueNameExists,
    InvalidParameterValue,
    InvalidAttributeName,
    InvalidAttributeValue,
    MissingParameter,
    ReceiptHandleIsInvalid,
    EmptyBatchRequest,
    TooManyEntriesInBatchRequest,
    BatchEntryIdsNotDistinct,
    InvalidBatchEntryId,
    BatchRequestTooLong,
    UnsupportedOperation,
    AccessDenied,
    RequestThrottled,
    ServiceUnavailable,
    InternalError,
}

impl SqsCode {
    /// The shape name (`__type`'s part after `#`).
    pub fn shape(self) -> &'static str {
        use SqsCode::*;
        match self {
            QueueDoesNotExist => "QueueDoesNotExist",
            QueueNameExists => "QueueNameExists",
            InvalidParameterValue => "InvalidParameterValue",
            InvalidAttributeName => "InvalidAttributeName",
            InvalidAttributeValue => "InvalidAttributeValue",
            MissingParameter => "MissingParameter",
            ReceiptHandleIsInvalid => "ReceiptHandleIsInvalid",
            EmptyBatchRequest => "EmptyBatchRequest",
            TooManyEntriesInBatchRequest => "TooManyEntriesInBatchRequest",
            BatchEntryIdsNotDistinct => "BatchEntryIdsNotDistinct",
            InvalidBatchEntryId => "InvalidBatchEntryId",
            BatchRequestTooLong => "BatchRequestTooLong",
            UnsupportedOperation => "UnsupportedOperation",
            AccessDenied => "AccessDenied",
            RequestThrottled => "RequestThrottled",
            ServiceUnavailable => "ServiceUnavailable",
            InternalError => "InternalError",
        }
    }

    /// The query-protocol code SQS names the error with (what botocore
    /// shows as `Error.Code`, and batch results carry).
    pub fn query_code(self) -> &'static str {
        use SqsCode::*;
        match self {
            QueueDoesNotExist => "AWS.SimpleQueueService.NonExistentQueue",
            QueueNameExists => "QueueAlreadyExists",
            EmptyBatchRequest => "AWS.SimpleQueueService.EmptyBatchRequest",
            TooManyEntriesInBatchRequest => "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
            BatchEntryIdsNotDistinct => "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
            InvalidBatchEntryId => "AWS.SimpleQueueService.InvalidBatchEntryId",
            BatchRequestTooLong => "AWS.SimpleQueueService.BatchRequestTooLong",
            UnsupportedOperation => "AWS.SimpleQueueService.UnsupportedOperation",
            other => other.shape(),
        }
    }

    fn status(self) -> StatusCode {
        match self {
            SqsCode::AccessDenied => StatusCode::FORBIDDEN,
            SqsCode::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            SqsCode::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// Whether the sender is at fault (`Sender`) or the service (`Receiver`).
    pub fn sender_fault(self) -> bool {
        !matches!(self, SqsCode::ServiceUnavailable | SqsCode::InternalError)
    }
}

/// An error on the SQS surface.
#[derive(Debug)]
pub struct SqsError {
    pub code: SqsCode,
    pub message: String,
}

impl SqsError {
    pub fn new(code: SqsCode, message: impl Into<String>) -> SqsError {
        SqsError {
            code,
            message: message.into(),
        }
    }

    /// A required parameter that did not come.
    pub fn missing(name: &str) -> SqsError {
        SqsError::new(
            SqsCode::MissingParameter,
            format!("The request must contain the parameter {name}."),
        )
    }

    /// A parameter whose value is not what SQS allows.
    pub fn invalid(message: impl Into<String>) -> SqsError {
        SqsError::new(SqsCode::InvalidParameterValue, message)
    }

    /// An operation of SQS's API that Updraft does not implement.
    pub fn unsupported(operation: &str) -> SqsError {
        SqsError::new(
            SqsCode::UnsupportedOperation,
            format!("Updraft does not support the SQS operation {operation}"),
        )
    }
}

impl From<PlatformError> for SqsError {
    fn from(e: PlatformError) -> Self {
        let code = match &e {
            // The only things SQS operations look up are queues.
            PlatformError::NotFound(_) => SqsCode::QueueDoesNotExist,
            PlatformError::Conflict(_) => SqsCode::QueueNameExists,
            PlatformError::ReceiptHandleInvalid(_) => SqsCode::ReceiptHandleIsInvalid,
            PlatformError::Invalid(i) if i.field.starts_with("RedrivePolicy") => {
                SqsCode::InvalidAttributeValue
            }
            PlatformError::Invalid(i)
                if ["VisibilityTimeout", "DelaySeconds", "MaximumMessageSize"]
                    .contains(&i.field.as_str()) =>
            {
                SqsCode::InvalidParameterValue
            }
            PlatformError::Invalid(_)
            | PlatformError::InvalidParameter(_)
            | PlatformError::InvalidRequestContent(_)
            | PlatformError::TooLarge(_)
            | PlatformError::PreconditionFailed(_) => SqsCode::InvalidParameterValue,
            PlatformError::Throttled(_) => SqsCode::RequestThrottled,
            PlatformError::Unauthorized(_)
            | PlatformError::Forbidden(_)
            | PlatformError::AccessDenied(_)
            | PlatformError::ExpiredToken(_) => SqsCode::AccessDenied,
            PlatformError::Unavailable(_) => SqsCode::ServiceUnavailable,
            PlatformError::Internal(_) => SqsCode::InternalError,
        };
        SqsError::new(code, e.public_message())
    }
}

impl IntoResponse for SqsError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "__type": format!("com.amazonaws.sqs#{}", self.code.shape()),
            "message": self.message,
        });
        let mut resp = (self.code.status(), axum::Json(body)).into_response();
        let fault = if self.code.sender_fault() {
            "Sender"
        } else {
            "Receiver"
        };
        let headers = resp.headers_mut();
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/x-amz-json-1.0"),
        );
        if let Ok(v) = HeaderValue::from_str(&format!("{};{fault}", self.code.query_code())) {
            headers.insert("x-amzn-query-error", v);
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_queue_answers_as_sqs_does() {
        let e: SqsError = PlatformError::NotFound("no queue named q".into()).into();
        let resp = e.into_response();
        assert_eq!(resp.status(), 400);
        assert_eq!(
            resp.headers()["x-amzn-query-error"],
            "AWS.SimpleQueueService.NonExistentQueue;Sender"
        );
        assert_eq!(resp.headers()["content-type"], "application/x-amz-json-1.0");
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["__type"], "com.amazonaws.sqs#QueueDoesNotExist");
        assert_eq!(v["message"], "no queue named q");
    }

    #[test]
    fn internal_details_stay_in_the_server() {
        let e: SqsError = PlatformError::Internal("secret path".into()).into();
        assert_eq!(e.code, SqsCode::InternalError);
        assert!(!e.message.contains("secret"));
        assert!(!e.code.sender_fault());
        assert_eq!(
            SqsError::unsupported("TagQueue").code.query_code(),
            "AWS.SimpleQueueService.UnsupportedOperation"
        );
    }
}
