//! The server's side: a [`Verifier`] checks a request's credentials from its
//! head before any body is read ([`Verifier::check_head`]), then the body
//! against the signature ([`Pending::finish`]), and remembers each accepted
//! SigV4 signature for as long as it could be replayed.

use crate::replay::{Refusal, ReplayCache, MAX_REPLAY_ENTRIES};
use crate::session::{Claims, Minter, SESSION_KEY_PREFIX};
use crate::sigv4::{
    printable, verify_bearer, SignedHead, ALGORITHM, INVALID_CREDENTIALS, MAX_CLOCK_SKEW, MISSING,
};
use crate::{AuthError, Credentials};
use http::header::{HeaderMap, AUTHORIZATION};
use sha2::{Digest, Sha256};
use std::time::{SystemTime, UNIX_EPOCH};

/// Verifies requests against the admin credentials. One per server: it holds
/// the replay cache.
pub struct Verifier {
    creds: Credentials,
    minter: Minter,
    replays: ReplayCache,
}

/// Who sent an authenticated request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// The admin credentials: everything.
    Admin,
    /// A function's credentials (see [`Minter`]): what its claims permit.
    Function(Claims),
}

/// A request whose head passed [`Verifier::check_head`]; its body must still
/// go through [`Pending::finish`] before the request is served.
#[must_use = "the body must be checked with Pending::finish"]
pub struct Pending<'a> {
    verifier: &'a Verifier,
    now: SystemTime,
    state: State,
    /// The key pair the request is signed with (the admin's or a function's).
    creds: Credentials,
    caller: Caller,
}

enum State {
    /// Bearer: nothing depends on the body.
    Done,
    /// SigV4 with `x-amz-content-sha256`: the signature is checked and
    /// recorded; the body must hash to this.
    BodyHash(String),
    /// SigV4 without it (botocore outside S3): the key id matched; the
    /// signature covers the body's hash, so it is checked once the body is read.
    Signature(Box<SignedHead>, u64),
}

impl Verifier {
    pub fn new(creds: Credentials) -> Verifier {
        Verifier::with_replay_capacity(creds, MAX_REPLAY_ENTRIES)
    }

    fn with_replay_capacity(creds: Credentials, capacity: usize) -> Verifier {
        Verifier {
            minter: Minter::new(&creds),
            creds,
            replays: ReplayCache::new(capacity),
        }
    }

    pub fn credentials(&self) -> &Credentials {
        &self.creds
    }

    /// Mints function credentials that this verifier (and any sharing its
    /// admin credentials) accepts.
    pub fn minter(&self) -> &Minter {
        &self.minter
    }

    /// Checks what the head of a request can tell: a bearer token whole, a
    /// SigV4 signature whole when `x-amz-content-sha256` is sent, otherwise
    /// its form, date and key id. `path_and_query` is the request target
    /// exactly as received (still percent-encoded); `headers` must include
    /// `host` (for HTTP/2, copy the `:authority` into it first).
    pub fn check_head(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &HeaderMap,
        now: SystemTime,
    ) -> Result<Pending<'_>, AuthError> {
        let auth = match headers.get(AUTHORIZATION) {
            Some(v) if !v.as_bytes().trim_ascii().is_empty() => v,
            _ => {
                let query = path_and_query.split_once('?').map_or("", |(_, q)| q);
                if query.split('&').any(|p| p.starts_with("X-Amz-Signature=")) {
                    return Err(AuthError::Denied(
                        "presigned URLs are not supported: sign with the Authorization header"
                            .into(),
                    ));
                }
                return Err(AuthError::Missing(MISSING.into()));
            }
        };
        let auth = std::str::from_utf8(auth.as_bytes())
            .map_err(|_| AuthError::Denied("the Authorization header is not valid UTF-8".into()))?
            .trim();
        let (scheme, rest) = auth.split_once(' ').unwrap_or((auth, ""));
        let mut creds = self.creds.clone();
        let mut caller = Caller::Admin;
        let state = if scheme.eq_ignore_ascii_case("bearer") {
            verify_bearer(&self.creds, rest.trim())?;
            State::Done
        } else if scheme == ALGORITHM {
            let head = SignedHead::parse(method, path_and_query, headers, now, rest)?;
            if head.key_id().starts_with(SESSION_KEY_PREFIX) {
                // A function's credentials: the token says whose, and
                // yields the secret the request must be signed with.
                let token = headers
                    .get("x-amz-security-token")
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| {
                        AuthError::Denied(
                            "The security token included in the request is invalid: \
                             temporary credentials (ASIA…) need the X-Amz-Security-Token header"
                                .into(),
                        )
                    })?;
                let (claims, session) = self.minter.open(head.key_id(), token, now)?;
                creds = session;
                caller = Caller::Function(claims);
            }
            let variant = sdk_headers(headers);
            match head.content_sha256.clone() {
                Some(hash) => {
                    head.check(&creds, &hash)?;
                    self.record(&head, variant, now)?;
                    State::BodyHash(hash)
                }
                None if head.key_matches(&creds) => State::Signature(Box::new(head), variant),
                None => return Err(AuthError::Denied(INVALID_CREDENTIALS.into())),
            }
        } else {
            return Err(AuthError::Denied(format!(
                "unsupported Authorization scheme {:?}: sign the request with SigV4 ({ALGORITHM}, \
                 service lambda) or send Authorization: Bearer KEY_ID:SECRET",
                printable(scheme)
            )));
        };
        Ok(Pending {
            verifier: self,
            now,
            state,
            creds,
            caller,
        })
    }

    /// Both steps at once, for a request whose body is already in hand.
    pub fn verify(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<(), AuthError> {
        self.check_head(method, path_and_query, headers, now)?
            .finish(body)
            .map(|_| ())
    }

    fn record(&self, head: &SignedHead, variant: u64, now: SystemTime) -> Result<(), AuthError> {
        let since_epoch = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap_or_default();
        let expires = since_epoch(head.signed_at() + MAX_CLOCK_SKEW).as_secs();
        let now_ms = since_epoch(now).as_millis() as u64;
        match self
            .replays
            .record(head.signature(), variant, expires, now_ms)
        {
            Ok(()) => Ok(()),
            Err(Refusal::Replayed) => Err(AuthError::Denied(
                "this signed request was already received (a replay): sign every request \
                 anew; identical requests within a second need distinct \
                 amz-sdk-invocation-id headers, as AWS SDKs send"
                    .into(),
            )),
            Err(Refusal::Full) => Err(AuthError::Busy(
                "too many signed requests in the last 5 minutes; retry shortly".into(),
            )),
        }
    }
}

impl Pending<'_> {
    /// Who signed the request (known from the head).
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// Whether the request is already known to come from the key's holder
    /// (bearer, or a signature over `x-amz-content-sha256`); if not, only its
    /// key id matched and the body read next must be bounded.
    pub fn is_authenticated(&self) -> bool {
        !matches!(self.state, State::Signature(..))
    }

    /// Checks the body against the signature (and records the signature).
    /// Returns the body's hex SHA-256 when checking it took one, so that the
    /// request's handler need not hash the body again.
    pub fn finish(self, body: &[u8]) -> Result<Option<String>, AuthError> {
        let body_hash = || hex::encode(Sha256::digest(body));
        match self.state {
            State::Done => Ok(None),
            State::BodyHash(expected) => {
                if body_hash() != expected {
                    return Err(AuthError::Denied(
                        "The provided 'x-amz-content-sha256' header does not match what was \
                         computed (unsigned and streaming payloads are not accepted)."
                            .into(),
                    ));
                }
                Ok(Some(expected))
            }
            State::Signature(head, variant) => {
                let hash = body_hash();
                head.check(&self.creds, &hash)?;
                self.verifier.record(&head, variant, self.now)?;
                Ok(Some(hash))
            }
        }
    }
}

/// What tells apart two uses of one botocore signature: the unsigned
/// headers botocore sends per call (`amz-sdk-invocation-id`) and per attempt
/// (`amz-sdk-request`).
fn sdk_headers(headers: &HeaderMap) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    for name in ["amz-sdk-invocation-id", "amz-sdk-request"] {
        for value in headers.get_all(name) {
            value.as_bytes().hash(&mut h);
        }
        0xffu8.hash(&mut h);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign;
    use crate::test_support::{creds, denied, t0};
    use http::HeaderValue;
    use std::time::Duration;

    const URL: &str = "http://127.0.0.1:8080/2015-03-31/functions/f/invocations";
    const PATH: &str = "/2015-03-31/functions/f/invocations";

    /// Signed as the CLI and SDKs sign: each call with its own invocation id.
    fn signed(body: &[u8], at: SystemTime) -> HeaderMap {
        use std::sync::atomic::{AtomicU64, Ordering};
        static CALLS: AtomicU64 = AtomicU64::new(0);
        let id = CALLS.fetch_add(1, Ordering::Relaxed).to_string();
        let mut h = HeaderMap::new();
        h.insert("amz-sdk-invocation-id", HeaderValue::from_str(&id).unwrap());
        sign(&creds(), "us-east-1", "POST", URL, &mut h, body, at).unwrap();
        h.insert("host", HeaderValue::from_static("127.0.0.1:8080"));
        h
    }

    /// As botocore signs for Lambda: the body's hash in the canonical
    /// request, no x-amz-content-sha256 header, and amz-sdk-invocation-id
    /// sent but not signed.
    fn botocore_style(body: &[u8], at: SystemTime, invocation_id: &str) -> HeaderMap {
        botocore_signed(&creds(), body, at, invocation_id)
    }

    fn botocore_signed(
        c: &Credentials,
        body: &[u8],
        at: SystemTime,
        invocation_id: &str,
    ) -> HeaderMap {
        use aws_sigv4::http_request::{self as s, SignableBody, SignableRequest};
        let pairs = [("host", "127.0.0.1:8080")];
        let req = SignableRequest::new("POST", URL, pairs.into_iter(), SignableBody::Bytes(body))
            .unwrap();
        let identity = aws_credential_types::Credentials::new(
            &c.access_key_id,
            &c.secret_access_key,
            None,
            None,
            "botocore",
        )
        .into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("lambda")
            .time(at)
            .settings(s::SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k, HeaderValue::from_str(v).unwrap());
        }
        for header in s::sign(req, &params).unwrap().into_parts().0.into_parts().0 {
            h.insert(
                header.name(),
                HeaderValue::from_str(header.value()).unwrap(),
            );
        }
        h.insert(
            "amz-sdk-invocation-id",
            HeaderValue::from_str(invocation_id).unwrap(),
        );
        h
    }

    #[test]
    fn a_signed_request_is_accepted_once() {
        let v = Verifier::new(creds());
        let h = signed(b"{}", t0());
        v.verify("POST", PATH, &h, b"{}", t0()).unwrap();
        let m = denied(v.verify("POST", PATH, &h, b"{}", t0() + Duration::from_secs(60)));
        assert!(m.contains("replay"), "{m}");
        // A retry signs anew, even within the same second.
        let again = signed(b"{}", t0());
        v.verify("POST", PATH, &again, b"{}", t0()).unwrap();
        // Bearer tokens are not one-shot.
        let mut b = HeaderMap::new();
        let c = creds();
        let token = format!("Bearer {}:{}", c.access_key_id, c.secret_access_key);
        b.insert("authorization", HeaderValue::from_str(&token).unwrap());
        v.verify("GET", "/", &b, b"", t0()).unwrap();
        v.verify("GET", "/", &b, b"", t0()).unwrap();
    }

    #[test]
    fn with_content_sha256_the_head_alone_decides() {
        let v = Verifier::new(creds());
        let body = vec![7u8; 1000];
        let h = signed(&body, t0());
        let pending = v.check_head("POST", PATH, &h, t0()).unwrap();
        assert!(pending.is_authenticated());
        // The body's hash, checked against the header, is handed on.
        let hash = pending.finish(&body).unwrap();
        assert_eq!(hash, Some(hex::encode(Sha256::digest(&body))));

        // A stranger is refused from the head: the body is never needed.
        let mut other = creds();
        other.secret_access_key = "not-the-secret".into();
        let mut h = HeaderMap::new();
        sign(&other, "us-east-1", "POST", URL, &mut h, &body, t0()).unwrap();
        h.insert("host", HeaderValue::from_static("127.0.0.1:8080"));
        let m = denied(v.check_head("POST", PATH, &h, t0()).map(|_| ()));
        assert_eq!(m, INVALID_CREDENTIALS);

        // A body that does not hash to the signed value is refused.
        let h = signed(&body, t0());
        let pending = v.check_head("POST", PATH, &h, t0()).unwrap();
        let m = denied(pending.finish(b"other"));
        assert!(m.contains("x-amz-content-sha256"), "{m}");
    }

    #[test]
    fn without_content_sha256_the_signature_waits_for_the_body() {
        let v = Verifier::new(creds());
        let body = br#"{"FunctionName":"f"}"#;
        let h = botocore_style(body, t0(), "1");
        assert!(!h.contains_key("x-amz-content-sha256"));
        assert!(h["authorization"]
            .to_str()
            .unwrap()
            .contains("SignedHeaders=host;x-amz-date,"));
        let pending = v.check_head("POST", PATH, &h, t0()).unwrap();
        assert!(!pending.is_authenticated());
        pending.finish(body).unwrap();
        // Replayed: refused once the body shows it is the same signature.
        let pending = v.check_head("POST", PATH, &h, t0()).unwrap();
        assert!(denied(pending.finish(body)).contains("replay"));
        // Tampered body.
        let h = botocore_style(body, t0(), "2");
        let pending = v.check_head("POST", PATH, &h, t0()).unwrap();
        assert_eq!(denied(pending.finish(b"{}")), INVALID_CREDENTIALS);
    }

    #[test]
    fn botocore_calls_alike_in_one_second_are_not_replays() {
        let v = Verifier::new(creds());
        let body = br#"{}"#;
        let first = botocore_style(body, t0(), "1");
        v.verify("POST", PATH, &first, body, t0()).unwrap();
        // botocore does not sign amz-sdk-invocation-id: same signature.
        let mut second = first.clone();
        second.insert("amz-sdk-invocation-id", HeaderValue::from_static("2"));
        assert_eq!(first["authorization"], second["authorization"]);
        v.verify("POST", PATH, &second, body, t0()).unwrap();
        let mut retry = first.clone();
        retry.insert(
            "amz-sdk-request",
            HeaderValue::from_static("attempt=2; max=3"),
        );
        v.verify("POST", PATH, &retry, body, t0()).unwrap();
        // A verbatim copy, or any copy past the grace, is a replay.
        assert!(denied(v.verify("POST", PATH, &second, body, t0())).contains("replay"));
        let mut late = first.clone();
        late.insert("amz-sdk-invocation-id", HeaderValue::from_static("3"));
        let after = t0() + crate::replay::GRACE + Duration::from_secs(1);
        assert!(denied(v.verify("POST", PATH, &late, body, after)).contains("replay"));
    }

    #[test]
    fn unknown_key_and_bad_signature_are_refused_alike() {
        let v = Verifier::new(creds());
        let body = b"{}";
        let mut wrong_secret = creds();
        wrong_secret.secret_access_key = "nope".into();
        let mut wrong_key = creds();
        wrong_key.access_key_id = "AKUDSOMEONEELSE00000".into();
        let answer = |c: &Credentials, with_hash: bool| {
            let h = if with_hash {
                let mut h = HeaderMap::new();
                sign(c, "us-east-1", "POST", URL, &mut h, body, t0()).unwrap();
                h.insert("host", HeaderValue::from_static("127.0.0.1:8080"));
                h
            } else {
                botocore_signed(c, body, t0(), "1")
            };
            let e = v.verify("POST", PATH, &h, body, t0()).unwrap_err();
            (e.status(), e.to_string())
        };
        for with_hash in [true, false] {
            let a = answer(&wrong_secret, with_hash);
            let b = answer(&wrong_key, with_hash);
            assert_eq!(a, b);
            assert_eq!(a.0, http::StatusCode::FORBIDDEN);
            assert_eq!(a.1, INVALID_CREDENTIALS);
        }
        let bearer = |token: String| {
            let mut h = HeaderMap::new();
            h.insert("authorization", HeaderValue::from_str(&token).unwrap());
            let e = v.verify("GET", "/", &h, b"", t0()).unwrap_err();
            (e.status(), e.to_string())
        };
        let c = creds();
        let a = bearer(format!("Bearer {}:nope", c.access_key_id));
        let b = bearer(format!("Bearer AKUDWRONG:{}", c.secret_access_key));
        assert_eq!(a, b);
        assert!(!a.1.contains(&c.secret_access_key));
    }

    #[test]
    fn a_full_replay_cache_answers_busy() {
        let v = Verifier::with_replay_capacity(creds(), 1);
        v.verify("POST", PATH, &signed(b"", t0()), b"", t0())
            .unwrap();
        let e = v
            .verify("POST", PATH, &signed(b"", t0()), b"", t0())
            .unwrap_err();
        assert!(matches!(e, AuthError::Busy(_)), "{e:?}");
        assert_eq!(e.status(), http::StatusCode::TOO_MANY_REQUESTS);
        // Room again once the first signature is stale.
        let later = t0() + MAX_CLOCK_SKEW + Duration::from_secs(1);
        v.verify("POST", PATH, &signed(b"", later), b"", later)
            .unwrap();
    }
}
