//! Function credentials: what a Lambda execution role gives an instance.
//!
//! For each instance the server mints an access key id (`ASIA…`), a secret
//! access key and a session token, as AWS STS does for a role. They are
//! stateless: the token carries the claims (the function, what it may do,
//! when it expires, the key id it goes with) and an HMAC-SHA256 over them;
//! the secret is an HMAC of the token. Both HMACs use a key derived from the
//! server's admin secret, so every server sharing the admin credentials
//! (several servers on one PostgreSQL) accepts them, and changing the admin
//! credentials revokes every function credential at once. The admin secret
//! itself never leaves the server.

use crate::{AuthError, Credentials};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

type HmacSha256 = Hmac<Sha256>;

/// Where a session token begins: names the format (version 1).
const TOKEN_PREFIX: &str = "UDS1.";
/// Function access key ids begin so, as STS's temporary ones do.
pub const SESSION_KEY_PREFIX: &str = "ASIA";
/// The longest session token accepted (a token names its permissions).
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// What a function's credentials say about their holder.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Claims {
    /// The function the credentials were minted for.
    #[serde(rename = "f")]
    pub function: String,
    /// `service:Action:resource` patterns (see [`permits`]).
    #[serde(rename = "p")]
    pub permissions: Vec<String>,
    /// When they stop working, in seconds since the Unix epoch.
    #[serde(rename = "e")]
    pub expires: u64,
    /// The access key id they were minted with.
    #[serde(rename = "k")]
    pub key_id: String,
}

/// One instance's credentials, as its environment carries them.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    pub expires: SystemTime,
}

impl std::fmt::Debug for SessionCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// Mints and opens function credentials with a key derived from the admin
/// secret.
#[derive(Clone)]
pub struct Minter {
    key: Vec<u8>,
}

impl Minter {
    pub fn new(admin: &Credentials) -> Minter {
        Minter {
            key: mac(
                admin.secret_access_key.as_bytes(),
                &[b"updraft function credentials v1"],
            ),
        }
    }

    /// Credentials for `function`, allowed `permissions`, valid for `ttl`
    /// from `now`.
    pub fn mint(
        &self,
        function: &str,
        permissions: &[String],
        ttl: Duration,
        now: SystemTime,
    ) -> Result<SessionCredentials, AuthError> {
        let expires_at = now + ttl;
        let key_id = format!(
            "{SESSION_KEY_PREFIX}{}",
            crate::credentials::random_string(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)?
        );
        let claims = Claims {
            function: function.to_string(),
            permissions: permissions.to_vec(),
            expires: unix_secs(expires_at).max(1),
            key_id: key_id.clone(),
        };
        let body = B64.encode(serde_json::to_vec(&claims).expect("claims serialize"));
        let tag = B64.encode(mac(&self.key, &[b"token\0", body.as_bytes()]));
        let token = format!("{TOKEN_PREFIX}{body}.{tag}");
        Ok(SessionCredentials {
            secret_access_key: self.secret_of(&token),
            access_key_id: key_id,
            session_token: token,
            expires: UNIX_EPOCH + Duration::from_secs(claims.expires),
        })
    }

    /// Checks a session token presented with `key_id`: made by this server
    /// (or one sharing its admin credentials), for this key id, not expired
    /// at `now`. Returns its claims and the secret the request must have
    /// been signed with.
    pub fn open(
        &self,
        key_id: &str,
        token: &str,
        now: SystemTime,
    ) -> Result<(Claims, Credentials), AuthError> {
        let invalid = || AuthError::Denied("The security token included in the request is invalid.".into());
        if token.len() > MAX_TOKEN_BYTES {
            return Err(invalid());
        }
        let rest = token.strip_prefix(TOKEN_PREFIX).ok_or_else(invalid)?;
        let (body, tag) = rest.split_once('.').ok_or_else(invalid)?;
        let tag = B64.decode(tag).map_err(|_| invalid())?;
        let mut check = HmacSha256::new_from_slice(&self.key).expect("any key length");
        check.update(b"token\0");
        check.update(body.as_bytes());
        check.verify_slice(&tag).map_err(|_| invalid())?;
        let claims: Claims = B64
            .decode(body)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(invalid)?;
        if !crate::sigv4::ct_eq(&claims.key_id, key_id) {
            return Err(invalid());
        }
        if unix_secs(now) >= claims.expires {
            return Err(AuthError::Expired(
                "The security token included in the request is expired".into(),
            ));
        }
        let creds = Credentials {
            access_key_id: claims.key_id.clone(),
            secret_access_key: self.secret_of(token),
        };
        Ok((claims, creds))
    }

    fn secret_of(&self, token: &str) -> String {
        let raw = mac(&self.key, &[b"secret\0", token.as_bytes()]);
        B64.encode(raw)[..40].to_string()
    }
}

fn mac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut m = HmacSha256::new_from_slice(key).expect("any key length");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().to_vec()
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// Whether `permissions` allow `action` (`service:Action`, such as
/// `lambda:InvokeFunction`) on `resource` (a function, queue or bus name).
/// A permission is `service:Action:resource`; `*` in the action or the
/// resource matches any run of characters (`sqs:*:jobs-*`), and a
/// permission without a resource (`events:PutEvents`) means every resource.
pub fn permits(permissions: &[String], action: &str, resource: &str) -> bool {
    permissions.iter().any(|p| {
        let mut parts = p.splitn(3, ':');
        let (Some(service), Some(name)) = (parts.next(), parts.next()) else {
            return false;
        };
        let res = parts.next().unwrap_or("*");
        let Some((want_service, want_name)) = action.split_once(':') else {
            return false;
        };
        service.eq_ignore_ascii_case(want_service)
            && glob(&name.to_ascii_lowercase(), &want_name.to_ascii_lowercase())
            && glob(res, resource)
    })
}

/// Checks the form of a permission (`service:Action[:resource]`, service
/// one of lambda, sqs, events); the error says what was expected.
pub fn check_permission(p: &str) -> Result<(), String> {
    let expected = "service:Action[:resource] with service lambda, sqs or events, such as \
                    lambda:InvokeFunction:other or sqs:SendMessage:jobs";
    let mut parts = p.splitn(3, ':');
    let service = parts.next().unwrap_or("");
    let action = parts.next().unwrap_or("");
    let resource = parts.next();
    let ok_service = matches!(service, "lambda" | "sqs" | "events");
    let ok_action = !action.is_empty()
        && action.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'*');
    let ok_resource = resource.is_none_or(|r| {
        !r.is_empty()
            && r
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.*:".contains(&b))
    });
    if ok_service && ok_action && ok_resource {
        Ok(())
    } else {
        Err(format!("expected {expected}, got {p:?}"))
    }
}

/// `*` matches any run of characters; everything else matches itself.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin() -> Credentials {
        Credentials {
            access_key_id: "AKUDTEST".into(),
            secret_access_key: "admin-secret".into(),
        }
    }

    fn perms(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn minted_credentials_open_with_their_claims_and_secret() {
        let m = Minter::new(&admin());
        let now = SystemTime::now();
        let c = m
            .mint("fn-a", &perms(&["lambda:InvokeFunction:b"]), Duration::from_secs(60), now)
            .unwrap();
        assert!(c.access_key_id.starts_with("ASIA"));
        assert_eq!(c.access_key_id.len(), 20);
        assert_eq!(c.secret_access_key.len(), 40);
        assert!(!c.session_token.contains(&admin().secret_access_key));
        let (claims, creds) = m.open(&c.access_key_id, &c.session_token, now).unwrap();
        assert_eq!(claims.function, "fn-a");
        assert_eq!(claims.permissions, perms(&["lambda:InvokeFunction:b"]));
        assert_eq!(creds.secret_access_key, c.secret_access_key);
        assert_eq!(creds.access_key_id, c.access_key_id);
    }

    #[test]
    fn expired_forged_and_foreign_credentials_are_refused() {
        let m = Minter::new(&admin());
        let now = SystemTime::now();
        let c = m.mint("fn-a", &[], Duration::from_secs(60), now).unwrap();
        // Expired.
        let later = now + Duration::from_secs(61);
        assert!(matches!(
            m.open(&c.access_key_id, &c.session_token, later),
            Err(AuthError::Expired(_))
        ));
        // Another key id.
        let other = m.mint("fn-a", &[], Duration::from_secs(60), now).unwrap();
        assert!(matches!(
            m.open(&other.access_key_id, &c.session_token, now),
            Err(AuthError::Denied(_))
        ));
        // Claims edited: more permissions, another function, a later expiry.
        let body = c.session_token.strip_prefix(TOKEN_PREFIX).unwrap();
        let (b, tag) = body.split_once('.').unwrap();
        let mut claims: Claims = serde_json::from_slice(&B64.decode(b).unwrap()).unwrap();
        claims.permissions = perms(&["lambda:*:*"]);
        claims.expires += 3600;
        let forged = format!(
            "{TOKEN_PREFIX}{}.{tag}",
            B64.encode(serde_json::to_vec(&claims).unwrap())
        );
        assert!(matches!(
            m.open(&c.access_key_id, &forged, now),
            Err(AuthError::Denied(_))
        ));
        // Minted by a server with other admin credentials.
        let stranger = Minter::new(&Credentials {
            access_key_id: "AKUDX".into(),
            secret_access_key: "another".into(),
        });
        assert!(stranger.open(&c.access_key_id, &c.session_token, now).is_err());
        for junk in ["", "UDS1.", "UDS1.a.b", "nonsense", &"x".repeat(MAX_TOKEN_BYTES + 1)] {
            assert!(m.open(&c.access_key_id, junk, now).is_err(), "{junk:.20}");
        }
    }

    #[test]
    fn permissions_match_action_and_resource_with_wildcards() {
        let p = perms(&[
            "lambda:InvokeFunction:other",
            "sqs:*:jobs-*",
            "events:PutEvents",
        ]);
        assert!(permits(&p, "lambda:InvokeFunction", "other"));
        assert!(permits(&p, "lambda:invokefunction", "other"));
        assert!(!permits(&p, "lambda:InvokeFunction", "other2"));
        assert!(!permits(&p, "lambda:CreateFunction", "other"));
        assert!(permits(&p, "sqs:SendMessage", "jobs-eu"));
        assert!(!permits(&p, "sqs:SendMessage", "jobs"));
        assert!(permits(&p, "events:PutEvents", "orders"));
        assert!(!permits(&[], "events:PutEvents", "orders"));
        assert!(glob("a*b*c", "aXXbYc"));
        assert!(!glob("a*b", "ab-c"));
    }

    #[test]
    fn permission_forms_are_checked() {
        for ok in ["lambda:InvokeFunction:other", "sqs:*:jobs-*", "events:PutEvents", "lambda:InvokeFunction:fn:prod"] {
            assert!(check_permission(ok).is_ok(), "{ok}");
        }
        for bad in ["", "lambda", "s3:GetObject:b", "lambda::x", "lambda:Invoke Function:x", "sqs:SendMessage:"] {
            let e = check_permission(bad).unwrap_err();
            assert!(e.contains("service:Action[:resource]"), "{e}");
        }
    }
}
