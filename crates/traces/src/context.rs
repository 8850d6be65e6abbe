//! Trace context on the wire: W3C `traceparent` / `tracestate`, and the
//! X-Ray header (`X-Amzn-Trace-Id`) Lambda's runtimes and SDKs forward.
//! An invocation's [`InvocationTrace`] is its own span in the caller's trace.

use crate::Error;
use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;
use opentelemetry::trace::{SpanId, TraceId};

pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
pub const XRAY: HeaderName = HeaderName::from_static("x-amzn-trace-id");

/// A caller's place in a trace: the span an invocation continues.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: TraceId,
    /// None: an X-Ray header without `Parent` (the trace, no parent span).
    pub span_id: Option<SpanId>,
    pub sampled: bool,
    /// The W3C `tracestate`, passed on as it came.
    pub state: Option<String>,
}

fn hex_field<const N: usize>(field: &'static str, s: &str) -> Result<[u8; N], Error> {
    let bad = |reason: &str| Error::Header {
        field,
        reason: format!("expected {} lowercase hex digits, {reason}", N * 2),
    };
    if s.len() != N * 2 {
        return Err(bad(&format!("got {} characters", s.len())));
    }
    let mut out = [0u8; N];
    for (i, pair) in s.as_bytes().chunks(2).enumerate() {
        let digit = |b: u8| match b {
            b'0'..=b'9' => Ok(b - b'0'),
            b'a'..=b'f' => Ok(b - b'a' + 10),
            _ => Err(bad(&format!("got {s:?}"))),
        };
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    if out.iter().all(|b| *b == 0) {
        return Err(bad("got all zeros (an invalid id)"));
    }
    Ok(out)
}

impl TraceContext {
    /// A W3C `traceparent`: `00-{32 hex trace id}-{16 hex parent id}-{2 hex flags}`
    /// (a later version may carry more fields after the flags).
    pub fn from_traceparent(value: &str, state: Option<&str>) -> Result<TraceContext, Error> {
        let value = value.trim();
        let mut parts = value.split('-');
        let version = parts.next().unwrap_or_default();
        match version {
            "00" => {}
            "ff" => {
                return Err(Error::Header {
                    field: "traceparent version",
                    reason: "version ff is invalid".into(),
                })
            }
            v if v.len() == 2 && v.bytes().all(|b| b.is_ascii_hexdigit()) => {}
            v => {
                return Err(Error::Header {
                    field: "traceparent version",
                    reason: format!("expected 2 hex digits, got {v:?}"),
                })
            }
        }
        let (Some(trace), Some(span), Some(flags)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(Error::Header {
                field: "traceparent",
                reason: format!("expected version-traceid-parentid-flags, got {value:?}"),
            });
        };
        if version == "00" && parts.next().is_some() {
            return Err(Error::Header {
                field: "traceparent",
                reason: "version 00 has exactly four fields".into(),
            });
        }
        let trace = TraceId::from_bytes(hex_field::<16>("traceparent trace-id", trace)?);
        let span = SpanId::from_bytes(hex_field::<8>("traceparent parent-id", span)?);
        let flags = flags_byte(flags)?;
        Ok(TraceContext {
            trace_id: trace,
            span_id: Some(span),
            sampled: flags & 1 == 1,
            state: state
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        })
    }

    /// An X-Ray header: `Root=1-{8 hex}-{24 hex}[;Parent={16 hex}][;Sampled=0|1]`,
    /// fields in any order, others ignored.
    pub fn from_xray(value: &str) -> Result<TraceContext, Error> {
        let (mut root, mut parent, mut sampled) = (None, None, true);
        for field in value.split(';') {
            match field.trim().split_once('=') {
                Some(("Root", r)) => root = Some(r),
                Some(("Parent", p)) => parent = Some(p),
                Some(("Sampled", s)) => sampled = s != "0",
                _ => {}
            }
        }
        let root = root.ok_or_else(|| Error::Header {
            field: "X-Amzn-Trace-Id Root",
            reason: format!("expected Root=1-{{8 hex}}-{{24 hex}}, got {value:?}"),
        })?;
        let hex = match root.split('-').collect::<Vec<_>>().as_slice() {
            ["1", time, id] if time.len() == 8 && id.len() == 24 => format!("{time}{id}"),
            _ => {
                return Err(Error::Header {
                    field: "X-Amzn-Trace-Id Root",
                    reason: format!("expected 1-{{8 hex}}-{{24 hex}}, got {root:?}"),
                })
            }
        };
        let hex = hex.to_ascii_lowercase();
        let trace_id = TraceId::from_bytes(hex_field::<16>("X-Amzn-Trace-Id Root", &hex)?);
        let span_id = parent
            .map(|p| hex_field::<8>("X-Amzn-Trace-Id Parent", &p.to_ascii_lowercase()))
            .transpose()?
            .map(SpanId::from_bytes);
        Ok(TraceContext {
            trace_id,
            span_id,
            sampled,
            state: None,
        })
    }

    /// The context a request carries: `traceparent` (with `tracestate`),
    /// else `X-Amzn-Trace-Id`. A malformed header is ignored, as W3C asks
    /// (the invocation starts a trace of its own), and logged.
    pub fn from_headers(headers: &HeaderMap) -> Option<TraceContext> {
        let get = |name: &HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
        let parsed = if let Some(tp) = get(&TRACEPARENT) {
            TraceContext::from_traceparent(tp, get(&TRACESTATE))
        } else {
            TraceContext::from_xray(get(&XRAY)?)
        };
        parsed
            .inspect_err(|e| tracing::debug!(error = %e, "trace header ignored"))
            .ok()
    }

    /// As a `traceparent` value (a parentless X-Ray context has none).
    pub fn traceparent(&self) -> Option<String> {
        let span = self.span_id?;
        Some(format!(
            "00-{}-{}-{:02x}",
            self.trace_id, span, self.sampled as u8
        ))
    }
}

fn flags_byte(s: &str) -> Result<u8, Error> {
    let b = s.as_bytes();
    let ok = b.len() == 2 && b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
    if !ok {
        return Err(Error::Header {
            field: "traceparent trace-flags",
            reason: format!("expected 2 lowercase hex digits, got {s:?}"),
        });
    }
    u8::from_str_radix(s, 16).map_err(|e| Error::Header {
        field: "traceparent trace-flags",
        reason: e.to_string(),
    })
}

/// An invocation's own span: in its caller's trace when it had one, else
/// the root of a new trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvocationTrace {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// The caller's span, the invocation span's parent.
    pub parent: Option<SpanId>,
    pub sampled: bool,
    pub state: Option<String>,
}

impl InvocationTrace {
    /// A new span under `parent` (None: a new trace).
    pub fn child_of(parent: Option<&TraceContext>) -> InvocationTrace {
        let span_id = SpanId::from(fastrand::u64(1..));
        match parent {
            Some(p) => InvocationTrace {
                trace_id: p.trace_id,
                span_id,
                parent: p.span_id,
                sampled: p.sampled,
                state: p.state.clone(),
            },
            None => InvocationTrace {
                trace_id: new_trace_id(),
                span_id,
                parent: None,
                sampled: true,
                state: None,
            },
        }
    }

    /// The invocation's own context, as its callees continue it.
    pub fn context(&self) -> TraceContext {
        TraceContext {
            trace_id: self.trace_id,
            span_id: Some(self.span_id),
            sampled: self.sampled,
            state: self.state.clone(),
        }
    }

    /// `traceparent` naming the invocation's span as the parent.
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            self.trace_id, self.span_id, self.sampled as u8
        )
    }

    /// The same trace in X-Ray's form, for `Lambda-Runtime-Trace-Id`,
    /// `_X_AMZN_TRACE_ID` and `X-Amzn-Trace-Id`:
    /// `Root=1-{first 8 hex of the trace id}-{other 24};Parent={span id};Sampled=0|1`.
    pub fn xray(&self) -> String {
        let id = self.trace_id.to_string();
        format!(
            "Root=1-{}-{};Parent={};Sampled={}",
            &id[..8],
            &id[8..],
            self.span_id,
            self.sampled as u8
        )
    }

    /// Sets `traceparent`, `tracestate` and `x-amzn-trace-id` to this
    /// invocation's span, replacing the caller's.
    pub fn set_headers(&self, headers: &mut HeaderMap) {
        let value = |s: String| HeaderValue::from_str(&s).expect("hex and ASCII");
        headers.insert(TRACEPARENT, value(self.traceparent()));
        headers.insert(XRAY, value(self.xray()));
        match self.state.as_deref().map(HeaderValue::from_str) {
            Some(Ok(v)) => {
                headers.insert(TRACESTATE, v);
            }
            _ => {
                headers.remove(TRACESTATE);
            }
        }
    }
}

/// X-Ray's shape for new trace ids: the epoch second, then 12 random bytes
/// (any 16 non-zero bytes are a valid W3C trace id).
fn new_trace_id() -> TraceId {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0);
    let mut bytes = [0u8; 16];
    bytes[..4].copy_from_slice(&secs.to_be_bytes());
    bytes[4..12].copy_from_slice(&fastrand::u64(..).to_be_bytes());
    bytes[12..].copy_from_slice(&fastrand::u32(1..).to_be_bytes());
    TraceId::from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn traceparent_parses_and_round_trips() {
        let c = TraceContext::from_traceparent(TP, Some("congo=t61rcWkgMzE")).unwrap();
        assert_eq!(c.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(c.span_id.unwrap().to_string(), "00f067aa0ba902b7");
        assert!(c.sampled);
        assert_eq!(c.state.as_deref(), Some("congo=t61rcWkgMzE"));
        assert_eq!(c.traceparent().unwrap(), TP);
        let unsampled = TP.replace("-01", "-00");
        assert!(
            !TraceContext::from_traceparent(&unsampled, None)
                .unwrap()
                .sampled
        );
        // A later version may add fields; the first four are read.
        let future = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what";
        assert!(TraceContext::from_traceparent(future, None).is_ok());
    }

    #[test]
    fn bad_traceparents_are_refused_naming_the_field() {
        let cases = [
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "traceparent version",
            ),
            (
                "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "traceparent version",
            ),
            (
                "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "traceparent version",
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                "traceparent trace-id",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                "traceparent parent-id",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
                "traceparent trace-id",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e47361-00f067aa0ba902b7-01",
                "traceparent trace-id",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",
                "traceparent parent-id",
            ),
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                "traceparent trace-id",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
                "traceparent trace-flags",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
                "traceparent",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
                "traceparent",
            ),
            ("", "traceparent version"),
        ];
        for (value, field) in cases {
            match TraceContext::from_traceparent(value, None) {
                Err(Error::Header { field: f, .. }) => assert_eq!(f, field, "{value}"),
                other => panic!("{value}: {other:?}"),
            }
        }
    }

    #[test]
    fn xray_maps_to_and_from_w3c() {
        let c = TraceContext::from_xray(
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        )
        .unwrap();
        assert_eq!(c.trace_id.to_string(), "5759e988bd862e3fe1be46a994272793");
        assert_eq!(c.span_id.unwrap().to_string(), "53995c3f42cd8ad8");
        assert!(c.sampled);
        let bare = TraceContext::from_xray("Root=1-5759E988-BD862E3FE1BE46A994272793").unwrap();
        assert_eq!(bare.trace_id, c.trace_id);
        assert_eq!(bare.span_id, None);
        assert!(
            !TraceContext::from_xray("Sampled=0;Root=1-5759e988-bd862e3fe1be46a994272793")
                .unwrap()
                .sampled
        );
        for bad in [
            "Parent=53995c3f42cd8ad8",
            "Root=2-5759e988-bd862e3fe1be46a994272793",
            "Root=1-5759e98-bd862e3fe1be46a994272793",
            "Root=1-5759e988-bd862e3fe1be46a99427279",
            "Root=1-00000000-000000000000000000000000",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=xyz",
        ] {
            assert!(TraceContext::from_xray(bad).is_err(), "{bad}");
        }

        let inv = InvocationTrace::child_of(Some(&c));
        assert_eq!(inv.trace_id, c.trace_id);
        assert_eq!(inv.parent, c.span_id);
        assert_ne!(Some(inv.span_id), c.span_id);
        assert_eq!(
            inv.xray(),
            format!(
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent={};Sampled=1",
                inv.span_id
            )
        );
        // What a function forwards comes back as the invocation's own span.
        let back = TraceContext::from_xray(&inv.xray()).unwrap();
        assert_eq!(back, inv.context());
        assert_eq!(
            TraceContext::from_traceparent(&inv.traceparent(), None).unwrap(),
            inv.context()
        );
    }

    #[test]
    fn headers_prefer_traceparent_and_ignore_bad_ones() {
        let mut h = HeaderMap::new();
        h.insert(
            XRAY,
            "Root=1-5759e988-bd862e3fe1be46a994272793".parse().unwrap(),
        );
        assert_eq!(
            TraceContext::from_headers(&h).unwrap().trace_id.to_string(),
            "5759e988bd862e3fe1be46a994272793"
        );
        h.insert(TRACEPARENT, TP.parse().unwrap());
        h.insert(TRACESTATE, "a=b".parse().unwrap());
        let c = TraceContext::from_headers(&h).unwrap();
        assert_eq!(c.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(c.state.as_deref(), Some("a=b"));
        h.insert(TRACEPARENT, "00-bad".parse().unwrap());
        assert_eq!(TraceContext::from_headers(&h), None);

        let inv = InvocationTrace::child_of(Some(
            &TraceContext::from_traceparent(TP, Some("a=b")).unwrap(),
        ));
        let mut out = HeaderMap::new();
        inv.set_headers(&mut out);
        assert_eq!(out[TRACEPARENT], inv.traceparent().as_str());
        assert_eq!(out[TRACESTATE], "a=b");
        assert_eq!(out[XRAY], inv.xray().as_str());
    }

    #[test]
    fn a_new_trace_has_valid_distinct_ids() {
        let a = InvocationTrace::child_of(None);
        let b = InvocationTrace::child_of(None);
        assert_ne!(a.trace_id, b.trace_id);
        assert_eq!(a.parent, None);
        assert!(TraceContext::from_traceparent(&a.traceparent(), None).is_ok());
        assert!(TraceContext::from_xray(&a.xray()).is_ok());
    }
}
