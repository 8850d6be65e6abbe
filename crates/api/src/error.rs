//! Errors in Lambda's shape: the status, `x-amzn-ErrorType` and a JSON body
//! `{"Type": "User", "message": …}`, so AWS SDKs raise their usual exceptions.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use updraft_platform::PlatformError;

pub struct ApiError(pub PlatformError);

impl From<PlatformError> for ApiError {
    fn from(e: PlatformError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, error_type) = self.0.shape();
        let kind = if status >= 500 { "Service" } else { "User" };
        let body = serde_json::json!({ "Type": kind, "message": self.0.public_message() });
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
