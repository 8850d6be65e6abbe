//! Requests signed by botocore (boto3, the AWS CLI) must verify. The vectors
//! come from `gen_vectors.py` beside this file.

use http::{HeaderMap, HeaderName, HeaderValue};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use updraft_auth::{AuthError, Credentials, Verifier};

/// A fresh verifier per call: these tests verify each vector many times.
fn verify(
    creds: &Credentials,
    method: &str,
    path_and_query: &str,
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> Result<(), AuthError> {
    Verifier::new(creds.clone()).verify(method, path_and_query, headers, body, now)
}

#[derive(serde::Deserialize)]
struct Doc {
    generator: String,
    access_key_id: String,
    secret_access_key: String,
    now_unix: u64,
    vectors: Vec<Vector>,
}

#[derive(serde::Deserialize)]
struct Vector {
    name: String,
    method: String,
    path_and_query: String,
    headers: Vec<(String, String)>,
    body_b64: String,
}

struct Case {
    name: String,
    method: String,
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

fn load() -> (Credentials, SystemTime, Vec<Case>) {
    let text = include_str!("sigv4_vectors.json");
    let doc: Doc = serde_json::from_str(text).unwrap();
    assert!(doc.generator.starts_with("botocore"), "{}", doc.generator);
    let creds = Credentials {
        access_key_id: doc.access_key_id,
        secret_access_key: doc.secret_access_key,
    };
    let cases = doc
        .vectors
        .into_iter()
        .map(|v| {
            let mut headers = HeaderMap::new();
            for (k, val) in &v.headers {
                headers.append(
                    HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()).unwrap(),
                    HeaderValue::from_str(val).unwrap(),
                );
            }
            Case {
                name: v.name,
                method: v.method,
                path: v.path_and_query,
                headers,
                body: b64(&v.body_b64),
            }
        })
        .collect();
    (creds, UNIX_EPOCH + Duration::from_secs(doc.now_unix), cases)
}

// Standard base64 decoding, enough for test data (avoids a dev-dependency).
fn b64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("bad base64 {c}"),
    };
    let mut out = Vec::new();
    for chunk in s.trim_end_matches('=').as_bytes().chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &c)| n | (val(c) as u32) << (18 - 6 * i));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

#[test]
fn botocore_signed_requests_verify() {
    let (creds, now, cases) = load();
    assert!(cases.len() >= 10);
    for c in &cases {
        if let Err(e) = verify(&creds, &c.method, &c.path, &c.headers, &c.body, now) {
            panic!("{}: {e}", c.name);
        }
    }
}

#[test]
fn botocore_vectors_cover_the_subtle_cases() {
    let (_, _, cases) = load();
    let auth = |c: &Case| c.headers["authorization"].to_str().unwrap().to_string();
    assert!(cases.iter().any(|c| c.path.contains("%3A")));
    assert!(cases.iter().any(|c| c.path.contains("Qualifier=%24LATEST")));
    assert!(cases.iter().any(|c| auth(c).contains("/eu-west-1/")));
    assert!(cases
        .iter()
        .any(|c| auth(c).contains("x-amz-security-token")));
    assert!(cases
        .iter()
        .any(|c| auth(c).contains("x-amz-content-sha256")));
    assert!(cases.iter().any(|c| c.method == "GET" && c.body.is_empty()));
    assert!(cases.iter().any(|c| c.headers.contains_key("user-agent")));
}

#[test]
fn botocore_signed_requests_fail_when_altered() {
    let (creds, now, cases) = load();
    let denied = |r: Result<(), AuthError>, what: &str, name: &str| match r {
        Err(AuthError::Denied(_)) => {}
        other => panic!("{name}, {what}: expected Denied, got {other:?}"),
    };
    for c in &cases {
        let n = &c.name;
        let mut body = c.body.clone();
        body.push(b' ');
        denied(
            verify(&creds, &c.method, &c.path, &c.headers, &body, now),
            "body",
            n,
        );
        let path = c.path.replacen("/functions", "/functionz", 1);
        denied(
            verify(&creds, &c.method, &path, &c.headers, &c.body, now),
            "path",
            n,
        );
        let late = now + Duration::from_secs(6 * 60);
        denied(
            verify(&creds, &c.method, &c.path, &c.headers, &c.body, late),
            "stale",
            n,
        );
        let mut wrong = creds.clone();
        wrong.secret_access_key.push('x');
        denied(
            verify(&wrong, &c.method, &c.path, &c.headers, &c.body, now),
            "secret",
            n,
        );
        let mut headers = c.headers.clone();
        headers.insert("host", HeaderValue::from_static("evil.example:8080"));
        denied(
            verify(&creds, &c.method, &c.path, &headers, &c.body, now),
            "host",
            n,
        );
    }
}

#[test]
fn cli_signature_matches_botocore_byte_for_byte() {
    // The vector that signs the same headers `sign` adds (host, x-amz-content-sha256,
    // x-amz-date) must get botocore's exact Authorization header from `sign`.
    let (creds, now, cases) = load();
    let c = cases
        .iter()
        .find(|c| c.name == "x-amz-content-sha256 present")
        .unwrap();
    let mut headers = HeaderMap::new();
    let url = format!("http://127.0.0.1:8080{}", c.path);
    updraft_auth::sign(
        &creds,
        "us-east-1",
        &c.method,
        &url,
        &mut headers,
        &c.body,
        now,
    )
    .unwrap();
    assert_eq!(headers["authorization"], c.headers["authorization"]);
    assert_eq!(headers["x-amz-date"], c.headers["x-amz-date"]);
}
