//! The head of a SigV4 request: parsed and checked before the body is read,
//! then the signature over it.

use super::amz_date::{check_skew, parse_amz_date};
use super::{
    ct_eq, header_pairs, printable, run_signer, INVALID_CREDENTIALS, SERVICES,
    X_AMZ_CONTENT_SHA256, X_AMZ_DATE,
};
use crate::{AuthError, Credentials};
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation,
    SigningSettings, UriPathNormalizationMode,
};
use http::header::{HeaderMap, HeaderName};
use std::time::SystemTime;

/// The head of a SigV4 request, checked for everything that does not depend
/// on the key or the body: the Authorization header's form, the credential
/// scope, the date (within [`MAX_CLOCK_SKEW`](super::MAX_CLOCK_SKEW)) and the signed headers.
pub(crate) struct SignedHead {
    key_id: String,
    region: String,
    /// The scope's service, one of [`SERVICES`].
    service: String,
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
        if !SERVICES.contains(&service) {
            return Err(denied(format!(
                "Credential should be scoped to correct service: one of '{}' (got '{}')",
                SERVICES.join("', '"),
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
            service: service.to_string(),
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

    pub(crate) fn key_id(&self) -> &str {
        &self.key_id
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
            &self.service,
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
