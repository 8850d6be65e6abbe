use super::*;
use crate::test_support::{creds, denied, t0};
use std::time::Duration;

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
fn eventbridge_signatures_verify_under_their_own_service() {
    // As botocore signs PutEvents: service `events`, no x-amz-content-sha256.
    let body = br#"{"Entries":[]}"#;
    let head = [
        ("host", "127.0.0.1:8080"),
        ("content-type", "application/x-amz-json-1.1"),
        ("x-amz-target", "AWSEvents.PutEvents"),
    ];
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::NoHeader;
    let request = SignableRequest::new(
        "POST",
        "http://127.0.0.1:8080/",
        head.iter().copied(),
        SignableBody::Bytes(body),
    )
    .unwrap();
    let (out, _) = run_signer(&creds(), "us-east-1", "events", t0(), settings, request).unwrap();
    let mut h = HeaderMap::new();
    for (k, v) in head.iter().copied().chain(out.headers()) {
        h.insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let auth = h["authorization"].to_str().unwrap().to_string();
    assert!(auth.contains("/us-east-1/events/aws4_request"), "{auth}");
    verify(&creds(), "POST", "/", &h, body, t0()).unwrap();
    // The scope is signed too: the same signature under another service fails.
    h.insert(
        "authorization",
        HeaderValue::from_str(&auth.replace("/events/", "/lambda/")).unwrap(),
    );
    let m = denied(verify(&creds(), "POST", "/", &h, body, t0()));
    assert!(m.contains("signature we calculated does not match"), "{m}");
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

/// A request signed for another AWS service Updraft speaks (SQS's JSON
/// protocol, as botocore signs it) verifies; the scope's service is part of
/// the signature, so the same signature under another name does not.
#[test]
fn every_service_updraft_speaks_may_sign() {
    let body = br#"{"QueueName":"jobs"}"#;
    let pairs = [
        ("content-type", "application/x-amz-json-1.0"),
        ("host", "127.0.0.1:8080"),
        ("x-amz-date", "20240101T000000Z"),
        ("x-amz-target", "AmazonSQS.CreateQueue"),
    ];
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::NoHeader;
    let request = SignableRequest::new(
        "POST",
        "http://127.0.0.1:8080/",
        pairs.iter().copied(),
        SignableBody::Bytes(body),
    )
    .unwrap();
    let at = parse_time("20240101T000000Z");
    let (instructions, _) =
        run_signer(&creds(), "us-east-1", "sqs", at, settings, request).unwrap();
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(k, HeaderValue::from_static(v));
    }
    for (k, v) in instructions.headers() {
        h.insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    assert!(h["authorization"]
        .to_str()
        .unwrap()
        .contains("/us-east-1/sqs/aws4_request"));
    verify(&creds(), "POST", "/", &h, body, at).unwrap();
    let moved = h["authorization"]
        .to_str()
        .unwrap()
        .replace("/sqs/", "/events/");
    h.insert("authorization", HeaderValue::from_str(&moved).unwrap());
    assert_eq!(
        denied(verify(&creds(), "POST", "/", &h, body, at)),
        INVALID_CREDENTIALS
    );
}

fn parse_time(amz: &str) -> SystemTime {
    super::amz_date::parse_amz_date(amz).unwrap()
}
