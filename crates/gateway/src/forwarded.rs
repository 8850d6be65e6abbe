//! The headers API Gateway and function URLs add to the request a function
//! sees: `x-forwarded-for` (the client's list with the caller's address
//! appended), `x-forwarded-proto` and `x-forwarded-port` (the listener's,
//! replacing whatever the client sent), and `x-amzn-trace-id` (the client's
//! X-Ray trace header when it holds a valid `Root`, otherwise a new one).

use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;

const FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
const TRACE: HeaderName = HeaderName::from_static("x-amzn-trace-id");

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

    /// Adds the forwarded headers for a request from `source_ip`; returns the
    /// trace header the function sees (and its runtime gets).
    pub(crate) fn apply(&self, headers: &mut HeaderMap, source_ip: &str) -> String {
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
        let trace = headers
            .get(&TRACE)
            .and_then(|v| v.to_str().ok())
            .filter(|v| valid_trace_header(v))
            .map(str::to_string)
            .unwrap_or_else(new_trace_header);
        headers.insert(
            TRACE,
            HeaderValue::from_str(&trace).expect("a checked trace header is a header value"),
        );
        trace
    }
}

/// `Root=1-{8 hex digits of the epoch second}-{24 random hex digits}`, as X-Ray makes them.
pub(crate) fn new_trace_header() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let random: String = updraft_core::new_request_id()
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(24)
        .collect();
    format!("Root=1-{:08x}-{random}", secs as u32)
}

/// Whether a client's `x-amzn-trace-id` holds a well-formed `Root` (other
/// fields, such as `Parent` and `Sampled`, are kept as they are).
fn valid_trace_header(value: &str) -> bool {
    value.split(';').any(|field| {
        let Some(root) = field.trim().strip_prefix("Root=1-") else {
            return false;
        };
        let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
        matches!(root.split_once('-'), Some((time, id)) if hex(time, 8) && hex(id, 24))
    }) && HeaderValue::from_str(value).is_ok()
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
    fn trace_ids_are_kept_when_valid_and_made_otherwise() {
        let edge = Edge::of_url("http://localhost");
        let theirs = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1";
        let mut h = headers(&[("x-amzn-trace-id", theirs)]);
        assert_eq!(edge.apply(&mut h, "1.2.3.4"), theirs);
        assert_eq!(h["x-amzn-trace-id"], theirs);
        for bad in [
            "",
            "Root=1-xyz-abc",
            "Self=1-5759e988-bd862e3fe1be46a994272793",
        ] {
            let mut h = headers(&[("x-amzn-trace-id", bad)]);
            let made = edge.apply(&mut h, "1.2.3.4");
            assert_ne!(made, bad);
            assert!(valid_trace_header(&made), "{made}");
            assert_eq!(h["x-amzn-trace-id"], made.as_str());
        }
        let a = new_trace_header();
        assert!(valid_trace_header(&a), "{a}");
        assert_ne!(a, new_trace_header(), "each request gets its own");
    }
}
