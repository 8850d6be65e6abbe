//! The headers API Gateway and function URLs add to the request a function
//! sees: `x-forwarded-for` (the client's list with the caller's address
//! appended), `x-forwarded-proto` and `x-forwarded-port` (the listener's,
//! replacing whatever the client sent), and the trace headers `traceparent`,
//! `tracestate` and `x-amzn-trace-id`: the invocation's span, in the client's
//! trace when it sent a valid `traceparent` (else `x-amzn-trace-id`), else in a new one.

use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;
use updraft_platform::traces::{InvocationTrace, TraceContext};

const FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const PORT: HeaderName = HeaderName::from_static("x-forwarded-port");

/// The scheme and port clients reach the platform on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Edge {
    proto: HeaderValue,
    port: HeaderValue,
}

impl Edge {
    /// From the platform's public URL (`https://host:8443`); the port
    /// defaults to the scheme's.
    pub(crate) fn of_url(url: &str) -> Edge {
        let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
        let https = scheme.eq_ignore_ascii_case("https");
        let authority = rest.split('/').next().unwrap_or_default();
        let port = authority
            .rsplit_once(':')
            .map(|(_, p)| p)
            .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            .unwrap_or(if https { "443" } else { "80" });
        Edge {
            proto: HeaderValue::from_static(if https { "https" } else { "http" }),
            port: HeaderValue::from_str(port).expect("digits are a header value"),
        }
    }

    /// Adds the forwarded headers for a request from `source_ip`, and the
    /// trace headers naming the invocation's span (returned) as the parent.
    pub(crate) fn apply(&self, headers: &mut HeaderMap, source_ip: &str) -> InvocationTrace {
        let mut chain: Vec<String> = headers
            .get_all(&FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .collect();
        chain.push(source_ip.to_string());
        if let Ok(v) = HeaderValue::from_str(&chain.join(", ")) {
            headers.insert(FOR, v);
        }
        headers.insert(PROTO, self.proto.clone());
        headers.insert(PORT, self.port.clone());
        traced(headers)
    }
}

/// The invocation's span for a request: a child of the client's trace
/// context, if any; the request's trace headers are replaced by its own.
pub(crate) fn traced(headers: &mut HeaderMap) -> InvocationTrace {
    let trace = InvocationTrace::child_of(TraceContext::from_headers(headers).as_ref());
    trace.set_headers(headers);
    trace
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::event::header_map as headers;

    #[test]
    fn the_edge_comes_from_the_public_url() {
        let e = Edge::of_url("https://api.example.com:8443");
        assert_eq!(
            (e.proto.to_str().unwrap(), e.port.to_str().unwrap()),
            ("https", "8443")
        );
        let e = Edge::of_url("https://api.example.com/");
        assert_eq!(e.port, "443");
        let e = Edge::of_url("http://127.0.0.1:8080");
        assert_eq!(
            (e.proto.to_str().unwrap(), e.port.to_str().unwrap()),
            ("http", "8080")
        );
        assert_eq!(Edge::of_url("http://[::1]").port, "80");
    }

    #[test]
    fn forwarded_for_appends_and_proto_port_replace() {
        let edge = Edge::of_url("http://127.0.0.1:8080");
        let mut h = headers(&[
            ("x-forwarded-for", "198.51.100.1"),
            ("x-forwarded-for", "10.0.0.2"),
            ("x-forwarded-proto", "gopher"),
            ("x-forwarded-port", "1"),
        ]);
        edge.apply(&mut h, "203.0.113.9");
        assert_eq!(h["x-forwarded-for"], "198.51.100.1, 10.0.0.2, 203.0.113.9");
        assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-port"], "8080");
        let mut h = HeaderMap::new();
        edge.apply(&mut h, "127.0.0.1");
        assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    }

    #[test]
    fn the_invocation_span_continues_the_clients_trace_or_starts_one() {
        let edge = Edge::of_url("http://localhost");
        let xray = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let mut h = headers(&[("x-amzn-trace-id", xray)]);
        let t = edge.apply(&mut h, "1.2.3.4");
        assert_eq!(t.trace_id.to_string(), "5759e988bd862e3fe1be46a994272793");
        assert_eq!(
            t.parent.map(|p| p.to_string()).as_deref(),
            Some("53995c3f42cd8ad8")
        );
        assert_eq!(h["x-amzn-trace-id"], t.xray().as_str());
        assert_eq!(h["traceparent"], t.traceparent().as_str());

        // traceparent wins over X-Ray; its tracestate is passed on.
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut h = headers(&[
            ("x-amzn-trace-id", xray),
            ("traceparent", tp),
            ("tracestate", "k=v"),
        ]);
        let t = edge.apply(&mut h, "1.2.3.4");
        assert_eq!(t.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            t.parent.map(|p| p.to_string()).as_deref(),
            Some("00f067aa0ba902b7")
        );
        assert_eq!(h["tracestate"], "k=v");
        assert!(h["x-amzn-trace-id"]
            .to_str()
            .unwrap()
            .starts_with("Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent="));

        for bad in [
            "",
            "Root=1-xyz-abc",
            "Self=1-5759e988-bd862e3fe1be46a994272793",
        ] {
            let mut h = headers(&[("x-amzn-trace-id", bad)]);
            let t = edge.apply(&mut h, "1.2.3.4");
            assert_eq!(t.parent, None, "{bad:?}: a new trace");
            assert_eq!(h["x-amzn-trace-id"], t.xray().as_str());
        }
        let mut a = HeaderMap::new();
        let mut b = HeaderMap::new();
        assert_ne!(
            edge.apply(&mut a, "1.2.3.4").trace_id,
            edge.apply(&mut b, "1.2.3.4").trace_id,
            "each request gets its own"
        );
    }
}
