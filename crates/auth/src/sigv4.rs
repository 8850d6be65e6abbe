//! Verifying (server) and producing (CLI) `Authorization` headers.
//!
//! Verification re-signs the received request with `aws-sigv4`, restricted to
//! the headers the client listed in `SignedHeaders`, at the client's own
//! `X-Amz-Date` and credential scope, and compares signatures in constant time.
//! It runs in two steps so that a body is never read for a stranger: the head
//! ([`SignedHead::parse`]: form, scope, date) and then the key and signature
//! ([`SignedHead::check`]), over the `x-amz-content-sha256` value when the
//! client sent one, else over the body's hash once it has been read.

use crate::{AuthError, Credentials};
use aws_sigv4::http_request::{
    self as sigv4, PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings,
};
use aws_sigv4::sign::v4;
use http::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};
use std::time::{Duration, SystemTime};
use subtle::ConstantTimeEq;

mod amz_date;
mod head;

pub(crate) use head::SignedHead;

/// The signing name Updraft signs with (the CLI).
pub const SERVICE: &str = "lambda";
/// The signing names a credential scope may carry: one per AWS API the
/// server speaks (the Lambda API and the native one; SQS; EventBridge).
pub const SERVICES: &[&str] = &[SERVICE, "sqs", "events"];
/// Largest accepted distance between `X-Amz-Date` and the server's clock.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

pub(crate) const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const X_AMZ_DATE: &str = "x-amz-date";
pub(crate) const X_AMZ_CONTENT_SHA256: &str = "x-amz-content-sha256";
pub(crate) const MISSING: &str =
    "this endpoint needs credentials: sign the request with SigV4 (service lambda) \
                       or send Authorization: Bearer KEY_ID:SECRET";
/// The one answer to an unknown access key id and to a wrong signature or
/// secret, so that a refusal never tells whether a key exists.
pub(crate) const INVALID_CREDENTIALS: &str =
    "The request signature we calculated does not match the signature you provided, \
     or the access key id is not this server's. Check your access key id, secret \
     access key and signing method.";

/// Signs a request for the Updraft server (service `lambda`): adds
/// `authorization`, `x-amz-date` and `x-amz-content-sha256` to `headers`.
/// `url` must be absolute and written exactly as it will be sent (path already
/// percent-encoded); every header already in `headers` is signed except
/// `user-agent`, `x-amzn-trace-id` and `transfer-encoding`, so sign last.
/// The server accepts a signature once: to send the same request twice within
/// a second, make it differ, as AWS SDKs do with a fresh
/// `amz-sdk-invocation-id` header per call.
pub fn sign(
    creds: &Credentials,
    region: &str,
    method: &str,
    url: &str,
    headers: &mut HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> Result<(), AuthError> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| AuthError::Signing(format!("{url}: {e}")))?;
    if uri.authority().is_none() && !headers.contains_key(http::header::HOST) {
        return Err(AuthError::Signing(format!(
            "{url}: an absolute URL (or a Host header) is needed to sign"
        )));
    }
    // Re-signing (a retry) must not sign the previous attempt's signature.
    for name in [AUTHORIZATION.as_str(), X_AMZ_DATE, X_AMZ_CONTENT_SHA256] {
        headers.remove(name);
    }
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let out = {
        let pairs = header_pairs(headers, headers.keys())
            .map_err(|name| AuthError::Signing(format!("header {name} is not valid UTF-8")))?;
        let request =
            SignableRequest::new(method, url, pairs.into_iter(), SignableBody::Bytes(body))
                .map_err(|e| AuthError::Signing(e.to_string()))?;
        run_signer(creds, region, SERVICE, now, settings, request)
            .map_err(|e| AuthError::Signing(e.to_string()))?
    };
    for header in out.0.into_parts().0 {
        let value = HeaderValue::from_str(header.value())
            .map_err(|e| AuthError::Signing(format!("header {}: {e}", header.name())))?;
        headers.insert(HeaderName::from_static(header.name()), value);
    }
    Ok(())
}

/// `Authorization: Bearer KEY_ID:SECRET`; a wrong key id and a wrong secret
/// are refused alike.
pub(crate) fn verify_bearer(creds: &Credentials, token: &str) -> Result<(), AuthError> {
    let (key_id, secret) = token.split_once(':').ok_or_else(|| {
        AuthError::Denied("a bearer token has the form ACCESS_KEY_ID:SECRET".into())
    })?;
    let key_ok = ct_eq(key_id, &creds.access_key_id);
    let secret_ok = ct_eq(secret, &creds.secret_access_key);
    if !(key_ok & secret_ok) {
        return Err(AuthError::Denied(INVALID_CREDENTIALS.into()));
    }
    Ok(())
}

pub(crate) fn run_signer(
    creds: &Credentials,
    region: &str,
    service: &str,
    time: SystemTime,
    settings: SigningSettings,
    request: SignableRequest<'_>,
) -> Result<(sigv4::SigningInstructions, String), Box<dyn std::error::Error + Send + Sync>> {
    let identity = aws_credential_types::Credentials::new(
        &creds.access_key_id,
        &creds.secret_access_key,
        None,
        None,
        "updraft",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(settings)
        .build()?
        .into();
    Ok(sigv4::sign(request, &params)?.into_parts())
}

/// Every value of each named header, in order, as `&str` pairs; `Err` names a
/// header whose value is not UTF-8.
fn header_pairs<'a>(
    headers: &'a HeaderMap,
    names: impl Iterator<Item = &'a HeaderName>,
) -> Result<Vec<(&'a str, &'a str)>, String> {
    let mut out = Vec::new();
    for name in names {
        for value in headers.get_all(name) {
            let value = std::str::from_utf8(value.as_bytes()).map_err(|_| name.to_string())?;
            out.push((name.as_str(), value));
        }
    }
    Ok(out)
}

pub(crate) fn ct_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// Client-supplied text for an error message: bounded and free of control characters.
pub(crate) fn printable(s: &str) -> String {
    s.chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests;
