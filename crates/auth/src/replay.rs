//! The SigV4 replay cache: a signature accepted once is refused again for as
//! long as its `X-Amz-Date` would still pass the clock-skew check.
//!
//! One exception keeps SDKs working: botocore (boto3, the AWS CLI) signs only
//! `host`, `x-amz-date` and the body, so two identical calls (or a retry)
//! within one second carry the same signature; they differ in the unsigned
//! `amz-sdk-invocation-id` / `amz-sdk-request` headers. A repeated signature
//! is therefore accepted when those headers differ from every earlier use and
//! it arrives within [`GRACE`] of the first; a verbatim copy, or any copy
//! later than that, is refused. (Someone who can both capture a request and
//! resend it with other SDK headers within the grace gets one more use: TLS
//! is the defence against that.)
//!
//! Entries leave by time (swept at most once a second); the cache never holds
//! more than its capacity, and when full it refuses new signatures (the
//! caller answers 429, which SDKs retry with a fresh signature) rather than
//! forget one that could still be replayed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Uses of signatures remembered at most (about 100 bytes each with the
/// maps' spare room, so 25 MB at worst): 830 signed requests a second
/// sustained over the 5-minute window.
pub const MAX_REPLAY_ENTRIES: usize = 250_000;
/// How long after its first use a signature may come again with other SDK
/// headers (an identical call or a retry signed in the same second).
pub const GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// This signature was accepted before and may not be used again.
    Replayed,
    /// The cache is at capacity with live signatures.
    Full,
}

pub(crate) struct ReplayCache {
    capacity: usize,
    seen: Mutex<Seen>,
}

struct Seen {
    /// The first 128 bits of each signature → (the Unix second after which
    /// the signed request is stale anyway, Unix milliseconds of its first use).
    signatures: HashMap<[u64; 2], (u64, u64)>,
    /// Each use: the signature's key mixed with its unsigned SDK headers →
    /// the same expiry.
    uses: HashMap<[u64; 2], u64>,
    last_sweep: u64,
}

impl ReplayCache {
    pub(crate) fn new(capacity: usize) -> ReplayCache {
        ReplayCache {
            capacity,
            seen: Mutex::new(Seen {
                signatures: HashMap::new(),
                uses: HashMap::new(),
                last_sweep: 0,
            }),
        }
    }

    /// Records a use of `signature` (lower-case hex, at least 32 digits)
    /// valid until `expires` (Unix seconds); `variant` tells apart uses that
    /// differ in unsigned SDK headers; `now_ms` is Unix milliseconds.
    pub(crate) fn record(
        &self,
        signature: &str,
        variant: u64,
        expires: u64,
        now_ms: u64,
    ) -> Result<(), Refusal> {
        let now = now_ms / 1000;
        // A signature that is not hex never matched an expected one; keying
        // on its bytes keeps this total anyway.
        let half = |r: std::ops::Range<usize>| {
            signature
                .get(r)
                .and_then(|h| u64::from_str_radix(h, 16).ok())
        };
        let key = match (half(0..16), half(16..32)) {
            (Some(a), Some(b)) => [a, b],
            _ => fold(signature.as_bytes()),
        };
        let use_key = [key[0] ^ variant, key[1] ^ variant.rotate_left(29)];
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.last_sweep != now {
            seen.last_sweep = now;
            seen.signatures.retain(|_, (expires, _)| *expires >= now);
            seen.uses.retain(|_, expires| *expires >= now);
        }
        let first_ms = match seen.signatures.get(&key) {
            Some(&(expires, first_ms)) if expires >= now => Some(first_ms),
            _ => None,
        };
        if let Some(first_ms) = first_ms {
            let late = now_ms.saturating_sub(first_ms) > GRACE.as_millis() as u64;
            if late || seen.uses.contains_key(&use_key) {
                return Err(Refusal::Replayed);
            }
        }
        if seen.uses.len() >= self.capacity {
            return Err(Refusal::Full);
        }
        if first_ms.is_none() {
            seen.signatures.insert(key, (expires, now_ms));
        }
        seen.uses.insert(use_key, expires);
        Ok(())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.seen.lock().unwrap().uses.len()
    }
}

fn fold(bytes: &[u8]) -> [u64; 2] {
    bytes.iter().enumerate().fold([0, 0], |mut acc, (i, b)| {
        acc[i % 2] = acc[i % 2].rotate_left(8) ^ u64::from(*b);
        acc
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const B: &str = "f123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const C: &str = "e123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const T: u64 = 1_000_000;

    #[test]
    fn a_signature_is_refused_until_it_expires() {
        let c = ReplayCache::new(10);
        c.record(A, 1, 1_300, T).unwrap();
        assert_eq!(c.record(A, 1, 1_300, T), Err(Refusal::Replayed));
        assert_eq!(c.record(A, 1, 1_300, 1_300_000), Err(Refusal::Replayed));
        c.record(B, 1, 1_300, T).unwrap();
        // Past its expiry the skew check refuses the request; the entry goes.
        c.record(A, 1, 1_700, 1_301_000).unwrap();
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn other_sdk_headers_pass_only_within_the_grace() {
        let c = ReplayCache::new(2_000);
        c.record(A, 1, 1_300, T).unwrap();
        // An identical call or a retry in the same second: other headers.
        c.record(A, 2, 1_300, T + 300).unwrap();
        c.record(A, 3, 1_300, T + GRACE.as_millis() as u64).unwrap();
        // Each of them only once.
        assert_eq!(c.record(A, 2, 1_300, T + 400), Err(Refusal::Replayed));
        // Later, whatever the headers.
        let late = T + GRACE.as_millis() as u64 + 1;
        assert_eq!(c.record(A, 9, 1_300, late), Err(Refusal::Replayed));
        // Many identical calls in one second (a loop of invokes) all pass.
        for v in 10..1_000 {
            c.record(B, v, 1_300, T + v).unwrap();
        }
    }

    #[test]
    fn full_cache_refuses_rather_than_forgets() {
        let c = ReplayCache::new(2);
        c.record(A, 1, 1_300, T).unwrap();
        c.record(B, 1, 1_300, T).unwrap();
        assert_eq!(c.record(C, 1, 1_300, T), Err(Refusal::Full));
        assert_eq!(c.record(A, 1, 1_300, T + 1_000), Err(Refusal::Replayed));
        // Room again once entries expire.
        c.record(C, 1, 1_700, 1_301_000).unwrap();
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn non_hex_signatures_are_keyed_too() {
        let c = ReplayCache::new(10);
        c.record("zz", 1, 1_300, T).unwrap();
        assert_eq!(c.record("zz", 1, 1_300, T), Err(Refusal::Replayed));
    }
}
