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
    self as sigv4, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest,
    SignatureLocation, SigningSettings, UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use http::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use subtle::ConstantTimeEq;

/// The signing name Updraft requires in the credential scope.
pub const SERVICE: &str = "lambda";
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

/// The head of a SigV4 request, checked for everything that does not depend
/// on the key or the body: the Authorization header's form, the credential
/// scope, the date (within [`MAX_CLOCK_SKEW`]) and the signed headers.
pub(crate) struct SignedHead {
    key_id: String,
    region: String,
    signed_at: SystemTime,
    signature: String,
    signed_headers: String,
    method: String,
    target: String,
    /// Each signed header's values, in the client's order.
    pairs: Vec<(String, String)>,
    /// The `x-amz-content-sha256` value (lower-case hex) when the client sent one.
    pub(crate) content_sha256: Option<String>,
}

impl SignedHead {
    /// `params` is the Authorization header after `AWS4-HMAC-SHA256 `.
    pub(crate) fn parse(
        method: &str,
        path_and_query: &str,
        headers: &HeaderMap,
        now: SystemTime,
        params: &str,
    ) -> Result<SignedHead, AuthError> {
        let denied = |m: String| AuthError::Denied(m);
        let (mut credential, mut signed_headers, mut signature) = (None, None, None);
        for part in params.split(',') {
            let (k, v) = part.trim().split_once('=').unwrap_or((part.trim(), ""));
            match k {
                "Credential" => credential = Some(v),
                "SignedHeaders" => signed_headers = Some(v),
                "Signature" => signature = Some(v),
                _ => {}
            }
        }
        fn need<'a>(v: Option<&'a str>, name: &str) -> Result<&'a str, AuthError> {
            v.filter(|v| !v.is_empty()).ok_or_else(|| {
                AuthError::Denied(format!(
                    "Authorization header requires '{name}' parameter (Credential, SignedHeaders, Signature)"
                ))
            })
        }
        let credential = need(credential, "Credential")?;
        let signed_headers = need(signed_headers, "SignedHeaders")?;
        let signature = need(signature, "Signature")?;

        let scope: Vec<&str> = credential.split('/').collect();
        let [key_id, date, region, service, terminator] = scope[..] else {
            return Err(denied(format!(
                "malformed Credential {:?}: expected ACCESS_KEY_ID/YYYYMMDD/REGION/lambda/aws4_request",
                printable(credential)
            )));
        };
        if service != SERVICE {
            return Err(denied(format!(
                "Credential should be scoped to correct service: '{SERVICE}' (got '{}')",
                printable(service)
            )));
        }
        if terminator != "aws4_request" || region.is_empty() || key_id.is_empty() {
            return Err(denied(format!(
                "malformed Credential scope {:?}: expected ACCESS_KEY_ID/YYYYMMDD/REGION/lambda/aws4_request",
                printable(credential)
            )));
        }

        let amz_date = headers
            .get(X_AMZ_DATE)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| denied("SigV4 requests need an X-Amz-Date header".into()))?;
        let signed_at = parse_amz_date(amz_date).ok_or_else(|| {
            denied(format!(
                "X-Amz-Date {:?} is not of the form YYYYMMDDTHHMMSSZ",
                printable(amz_date)
            ))
        })?;
        if !amz_date.starts_with(date) || date.len() != 8 {
            return Err(denied(format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
                 from HTTP: '{}' != '{}', from '{amz_date}'",
                printable(date),
                &amz_date[..8]
            )));
        }
        check_skew(signed_at, now)?;

        let listed: Vec<&str> = signed_headers.split(';').collect();
        for required in ["host", X_AMZ_DATE] {
            if !listed.contains(&required) {
                return Err(denied(format!(
                    "'{required}' must be a 'SignedHeader' in the AWS Authorization"
                )));
            }
        }
        // The canonical form: lower-case, sorted, no repeats.
        let canonical = listed.windows(2).all(|w| w[0] < w[1])
            && !signed_headers.bytes().any(|b| b.is_ascii_uppercase());
        if !canonical {
            let mut ours: Vec<String> = listed.iter().map(|n| n.to_ascii_lowercase()).collect();
            ours.sort();
            ours.dedup();
            return Err(denied(format!(
                "SignedHeaders must be lower-case, sorted and ';'-separated: expected '{}', got '{}'",
                printable(&ours.join(";")),
                printable(signed_headers)
            )));
        }
        let names = listed
            .iter()
            .map(|name| {
                HeaderName::from_bytes(name.as_bytes())
                    .ok()
                    .filter(|n| headers.contains_key(n))
                    .ok_or_else(|| {
                        denied(format!(
                            "signed header '{}' is missing from the request",
                            printable(name)
                        ))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let pairs = header_pairs(headers, names.iter())
            .map_err(|name| denied(format!("signed header {name} is not valid UTF-8")))?
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();

        // The payload hash in the canonical request is this header's value
        // when the client sent one (as botocore does for S3 and the CLI does
        // always), so the signature can be checked before the body is read;
        // the body must then hash to it.
        let content_sha256 = match headers.get(X_AMZ_CONTENT_SHA256) {
            None => None,
            Some(v) => {
                let v = v.to_str().unwrap_or("");
                if v.len() != 64 || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(denied(format!(
                        "x-amz-content-sha256 must be the hex SHA-256 of the body, got {:?} \
                         (unsigned and streaming payloads are not accepted)",
                        printable(v)
                    )));
                }
                Some(v.to_ascii_lowercase())
            }
        };
        Ok(SignedHead {
            key_id: key_id.to_string(),
            region: region.to_string(),
            signed_at,
            signature: signature.to_string(),
            signed_headers: signed_headers.to_string(),
            method: method.to_string(),
            target: if path_and_query.is_empty() {
                "/".into()
            } else {
                path_and_query.to_string()
            },
            pairs,
            content_sha256,
        })
    }

    /// Whether the access key id is the server's (constant time).
    pub(crate) fn key_matches(&self, creds: &Credentials) -> bool {
        ct_eq(&self.key_id, &creds.access_key_id)
    }

    pub(crate) fn signed_at(&self) -> SystemTime {
        self.signed_at
    }

    pub(crate) fn signature(&self) -> &str {
        &self.signature
    }

    /// Checks the key id and the signature, the payload's hash being
    /// `payload_hash`; an unknown key and a wrong signature get one answer.
    pub(crate) fn check(&self, creds: &Credentials, payload_hash: &str) -> Result<(), AuthError> {
        let denied = |m: String| AuthError::Denied(m);
        let mut settings = SigningSettings::default();
        // What botocore (boto3, the AWS CLI) does for every service but S3.
        settings.percent_encoding_mode = PercentEncodingMode::Double;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Enabled;
        settings.signature_location = SignatureLocation::Headers;
        // The hash goes in through `Precomputed`; a signed x-amz-content-sha256 is
        // then just one of the listed headers.
        settings.payload_checksum_kind = PayloadChecksumKind::NoHeader;
        // Sign exactly what the client listed, whatever aws-sigv4 would skip itself
        // (user-agent, …): the list came from the client, not from us.
        settings.excluded_headers = None;

        let request = SignableRequest::new(
            &self.method,
            &self.target,
            self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Precomputed(payload_hash.to_string()),
        )
        .map_err(|e| denied(format!("cannot canonicalize the request: {e}")))?;
        let (instructions, expected) = run_signer(
            creds,
            &self.region,
            SERVICE,
            self.signed_at,
            settings,
            request,
        )
        .map_err(|e| denied(format!("cannot canonicalize the request: {e}")))?;

        // aws-sigv4 signs host and x-amz-date always; both are required and
        // the list's form is checked in `parse`, so this holds unless
        // aws-sigv4 itself left a listed header out.
        let ours = instructions
            .headers()
            .find(|(n, _)| *n == "authorization")
            .and_then(|(_, v)| v.split("SignedHeaders=").nth(1))
            .and_then(|v| v.split(',').next())
            .unwrap_or_default();
        let key_ok = self.key_matches(creds);
        let signature_ok = ct_eq(&self.signature, &expected) && ours == self.signed_headers;
        if !(key_ok & signature_ok) {
            return Err(denied(INVALID_CREDENTIALS.into()));
        }
        Ok(())
    }
}

fn run_signer(
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

fn check_skew(signed_at: SystemTime, now: SystemTime) -> Result<(), AuthError> {
    let (at, now_s) = (fmt_amz_date(signed_at), fmt_amz_date(now));
    if signed_at + MAX_CLOCK_SKEW < now {
        return Err(AuthError::Denied(format!(
            "Signature expired: {at} is now earlier than {} ({now_s} - 5 min.)",
            fmt_amz_date(now - MAX_CLOCK_SKEW)
        )));
    }
    if signed_at > now + MAX_CLOCK_SKEW {
        return Err(AuthError::Denied(format!(
            "Signature not yet current: {at} is still later than {} ({now_s} + 5 min.)",
            fmt_amz_date(now + MAX_CLOCK_SKEW)
        )));
    }
    Ok(())
}

fn ct_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// Client-supplied text for an error message: bounded and free of control characters.
pub(crate) fn printable(s: &str) -> String {
    s.chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// `YYYYMMDDTHHMMSSZ`, seconds resolution.
fn fmt_amz_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, se) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&mo) || d == 0 || d > 31 {
        return None;
    }
    if h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let days = days_from_civil(y as i64, mo as u32, d as u32);
    if civil_from_days(days) != (y as i64, mo as u32, d as u32) {
        return None; // e.g. February 30th
    }
    Some(UNIX_EPOCH + Duration::from_secs(days as u64 * 86_400 + h * 3600 + mi * 60 + se))
}

// Howard Hinnant's civil calendar algorithms (proleptic Gregorian, UTC).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh verifier each time: these tests verify one request repeatedly.
    fn verify(
        creds: &Credentials,
        method: &str,
        path_and_query: &str,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<(), AuthError> {
        crate::Verifier::new(creds.clone()).verify(method, path_and_query, headers, body, now)
    }

    fn creds() -> Credentials {
        Credentials {
            access_key_id: "AKUDEXAMPLE000000001".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
        }
    }

    fn t0() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_704_164_645) // 2024-01-02T03:04:05Z
    }

    const URL: &str =
        "http://127.0.0.1:8080/2015-03-31/functions/my-fn%3Aprod/invocations?Qualifier=%24LATEST";
    const PATH: &str = "/2015-03-31/functions/my-fn%3Aprod/invocations?Qualifier=%24LATEST";

    /// A request as the CLI sends it, with the Host header hyper would add.
    fn signed(body: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_static("application/json"));
        sign(&creds(), "us-east-1", "POST", URL, &mut h, body, t0()).unwrap();
        h.insert("host", HeaderValue::from_static("127.0.0.1:8080"));
        h.insert("user-agent", HeaderValue::from_static("updraft/0.1"));
        h
    }

    fn denied(r: Result<(), AuthError>) -> String {
        match r {
            Err(AuthError::Denied(m)) => m,
            other => panic!("expected Denied, got {other:?}"),
        }
    }

    #[test]
    fn dates_round_trip() {
        assert_eq!(fmt_amz_date(t0()), "20240102T030405Z");
        assert_eq!(parse_amz_date("20240102T030405Z"), Some(t0()));
        assert_eq!(fmt_amz_date(UNIX_EPOCH), "19700101T000000Z");
        let leap = parse_amz_date("20240229T235959Z").unwrap();
        assert_eq!(fmt_amz_date(leap), "20240229T235959Z");
        for bad in [
            "20230229T000000Z",
            "2024010T030405Z",
            "20240102 030405Z",
            "2024-1-02T0304Z",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn sign_then_verify_round_trip() {
        let body = br#"{"hello":"world"}"#;
        let h = signed(body);
        for name in ["authorization", "x-amz-date", "x-amz-content-sha256"] {
            assert!(h.contains_key(name), "{name}");
        }
        let auth = h["authorization"].to_str().unwrap();
        assert!(auth.contains("/us-east-1/lambda/aws4_request"), "{auth}");
        assert!(auth.contains("SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date"));
        verify(&creds(), "POST", PATH, &h, body, t0()).unwrap();
        // Within the allowed skew on both sides.
        let four = Duration::from_secs(240);
        verify(&creds(), "POST", PATH, &h, body, t0() + four).unwrap();
        verify(&creds(), "POST", PATH, &h, body, t0() - four).unwrap();
    }

    #[test]
    fn resigning_replaces_old_signature() {
        let mut h = signed(b"{}");
        sign(
            &creds(),
            "eu-west-1",
            "POST",
            URL,
            &mut h,
            b"{}",
            t0() + Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(h.get_all("authorization").iter().count(), 1);
        verify(&creds(), "POST", PATH, &h, b"{}", t0()).unwrap();
    }

    #[test]
    fn tampering_is_denied() {
        let body = br#"{"a":1}"#;
        let h = signed(body);
        let m = denied(verify(&creds(), "POST", PATH, &h, br#"{"a":2}"#, t0()));
        assert!(m.contains("x-amz-content-sha256"), "{m}");
        let other = "/2015-03-31/functions/other/invocations?Qualifier=%24LATEST";
        let m = denied(verify(&creds(), "POST", other, &h, body, t0()));
        assert!(m.contains("signature we calculated does not match"), "{m}");
        let m = denied(verify(&creds(), "PUT", PATH, &h, body, t0()));
        assert!(m.contains("signature we calculated"), "{m}");
        let requery = "/2015-03-31/functions/my-fn%3Aprod/invocations?Qualifier=1";
        denied(verify(&creds(), "POST", requery, &h, body, t0()));

        let mut h2 = h.clone();
        h2.insert("content-type", HeaderValue::from_static("text/plain"));
        let m = denied(verify(&creds(), "POST", PATH, &h2, body, t0()));
        assert!(m.contains("signature we calculated"), "{m}");
        // Unsigned headers may change freely (proxies add them).
        let mut h3 = h.clone();
        h3.insert("user-agent", HeaderValue::from_static("curl"));
        h3.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        verify(&creds(), "POST", PATH, &h3, body, t0()).unwrap();
        // Dropping a signed header is named.
        let mut h4 = h.clone();
        h4.remove("content-type");
        let m = denied(verify(&creds(), "POST", PATH, &h4, body, t0()));
        assert!(m.contains("'content-type' is missing"), "{m}");
    }

    #[test]
    fn wrong_secret_and_unknown_key_are_denied_without_echoing_secret() {
        let body = b"{}";
        let h = signed(body);
        let mut other = creds();
        other.secret_access_key = "not-the-secret".into();
        let m = denied(verify(&other, "POST", PATH, &h, body, t0()));
        assert_eq!(m, INVALID_CREDENTIALS);
        assert!(!m.contains(&creds().secret_access_key));

        let mut other = creds();
        other.access_key_id = "AKUDSOMEONEELSE00000".into();
        let m = denied(verify(&other, "POST", PATH, &h, body, t0()));
        assert_eq!(m, INVALID_CREDENTIALS);
    }

    #[test]
    fn stale_or_future_date_is_denied_in_aws_words() {
        let h = signed(b"");
        let six = Duration::from_secs(360);
        let m = denied(verify(&creds(), "POST", PATH, &h, b"", t0() + six));
        assert_eq!(
            m,
            "Signature expired: 20240102T030405Z is now earlier than 20240102T030505Z \
             (20240102T031005Z - 5 min.)"
        );
        let m = denied(verify(&creds(), "POST", PATH, &h, b"", t0() - six));
        assert!(
            m.starts_with("Signature not yet current: 20240102T030405Z"),
            "{m}"
        );
    }

    #[test]
    fn scope_date_must_match_x_amz_date() {
        let mut h = signed(b"");
        h.insert("x-amz-date", HeaderValue::from_static("20240103T030405Z"));
        let m = denied(verify(
            &creds(),
            "POST",
            PATH,
            &h,
            b"",
            t0() + Duration::from_secs(86_400),
        ));
        assert!(m.contains("Date in Credential scope does not match"), "{m}");
    }

    #[test]
    fn missing_credentials() {
        let h = HeaderMap::new();
        match verify(&creds(), "GET", "/2015-03-31/functions", &h, b"", t0()) {
            Err(e @ AuthError::Missing(_)) => {
                assert_eq!(e.status(), http::StatusCode::UNAUTHORIZED);
                assert!(e.to_string().contains("SigV4 (service lambda)"));
                assert!(e.to_string().contains("Bearer KEY_ID:SECRET"));
            }
            other => panic!("{other:?}"),
        }
        let mut h = HeaderMap::new();
        h.insert(
            "authorization",
            HeaderValue::from_static("Basic Zm9vOmJhcg=="),
        );
        let e = verify(&creds(), "GET", "/", &h, b"", t0()).unwrap_err();
        assert_eq!(e.status(), http::StatusCode::FORBIDDEN);
        let q = "/x?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=abc";
        let m = denied(verify(&creds(), "GET", q, &HeaderMap::new(), b"", t0()));
        assert!(m.contains("presigned"), "{m}");
    }

    #[test]
    fn bearer_good_and_bad() {
        let c = creds();
        let with = |v: String| {
            let mut h = HeaderMap::new();
            h.insert("authorization", HeaderValue::from_str(&v).unwrap());
            verify(&c, "GET", "/api/v1/functions", &h, b"", t0())
        };
        with(format!(
            "Bearer {}:{}",
            c.access_key_id, c.secret_access_key
        ))
        .unwrap();
        with(format!(
            "bearer {}:{}",
            c.access_key_id, c.secret_access_key
        ))
        .unwrap();
        let m = denied(with(format!("Bearer {}:nope", c.access_key_id)));
        assert_eq!(m, INVALID_CREDENTIALS);
        assert!(!m.contains("nope"));
        let m = denied(with(format!("Bearer AKUDWRONG:{}", c.secret_access_key)));
        assert_eq!(m, INVALID_CREDENTIALS);
        assert!(!m.contains(&c.secret_access_key));
        let m = denied(with("Bearer justatoken".into()));
        assert!(m.contains("ACCESS_KEY_ID:SECRET"), "{m}");
    }

    #[test]
    fn malformed_sigv4_headers_are_denied() {
        let mut h = signed(b"");
        let good = h["authorization"].to_str().unwrap().to_string();
        let cases = [
            (good.replace("/lambda/", "/s3/"), "correct service"),
            (good.replace("SignedHeaders=", "Signed="), "'SignedHeaders'"),
            (good.replace("host;", ""), "'host' must be a 'SignedHeader'"),
            (good.replace("aws4_request", "aws5"), "malformed Credential"),
        ];
        for (value, want) in cases {
            h.insert("authorization", HeaderValue::from_str(&value).unwrap());
            let m = denied(verify(&creds(), "POST", PATH, &h, b"", t0()));
            assert!(m.contains(want), "{value}: {m}");
        }
    }

    #[test]
    fn unsigned_payload_is_refused() {
        let mut h = signed(b"abc");
        h.insert(
            X_AMZ_CONTENT_SHA256,
            HeaderValue::from_static("UNSIGNED-PAYLOAD"),
        );
        let m = denied(verify(&creds(), "POST", PATH, &h, b"abc", t0()));
        assert!(m.contains("x-amz-content-sha256"), "{m}");
    }

    #[test]
    fn sign_rejects_relative_url() {
        let mut h = HeaderMap::new();
        let e = sign(&creds(), "us-east-1", "GET", "/x", &mut h, b"", t0()).unwrap_err();
        assert!(matches!(e, AuthError::Signing(_)), "{e}");
    }
}
