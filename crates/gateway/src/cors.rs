//! CORS on function URLs, as Lambda applies a URL's `Cors` settings: the
//! platform answers preflights itself (the function never sees them, and a
//! private URL needs no credentials for them, as browsers send none), and adds
//! `Access-Control-Allow-Origin`, `-Expose-Headers` and `-Allow-Credentials`
//! to the answers of allowed origins. Every answer of a URL with settings
//! carries `Vary: Origin`. Headers a function sets itself are kept beside
//! them (Lambda does the same; configure CORS in one place).
//!
//! * An origin is allowed when `allow_origins` lists it (ASCII
//!   case-insensitive) or holds `*`. `*` is answered as `*`, except with
//!   `allow_credentials`, where browsers refuse `*` and the origin is echoed.
//! * A preflight from an origin not allowed gets 200 without any
//!   `Access-Control-*` header, so the browser stops there.
//! * The preflight answer lists the configured methods and headers (or `*`;
//!   with credentials, `*` echoes what the preflight asked for) and
//!   `Access-Control-Max-Age` when `max_age` is above 0; the browser compares
//!   them with its request.

use axum::body::Body;
use axum::response::Response;
use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use updraft_core::Cors;

/// Whether a request is a CORS preflight: `OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`.
pub(crate) fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS
        && headers.contains_key(ORIGIN)
        && headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD)
}

/// The platform's answer to a preflight.
pub(crate) fn preflight(cors: &Cors, request: &HeaderMap) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::OK;
    let out = resp.headers_mut();
    out.append(VARY, HeaderValue::from_static("Origin"));
    let Some(origin) = allowed_origin(cors, request.get(ORIGIN)) else {
        return resp;
    };
    out.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    let credentials = cors.allow_credentials == Some(true);
    let asked = |name| request.get(name).cloned();
    if let Some(v) = listed(
        &cors.allow_methods,
        credentials,
        asked(ACCESS_CONTROL_REQUEST_METHOD),
        true,
    ) {
        out.insert(ACCESS_CONTROL_ALLOW_METHODS, v);
    }
    if let Some(v) = listed(
        &cors.allow_headers,
        credentials,
        asked(ACCESS_CONTROL_REQUEST_HEADERS),
        false,
    ) {
        out.insert(ACCESS_CONTROL_ALLOW_HEADERS, v);
    }
    if let Some(age) = cors.max_age.filter(|a| *a > 0) {
        out.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from(age));
    }
    if credentials {
        out.insert(
            ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    resp
}

/// Adds the CORS headers to the answer of an actual (not preflight) request
/// that came with `origin`.
pub(crate) fn decorate(cors: &Cors, origin: Option<&HeaderValue>, answer: &mut HeaderMap) {
    answer.append(VARY, HeaderValue::from_static("Origin"));
    let Some(origin) = allowed_origin(cors, origin) else {
        return;
    };
    answer.append(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    if let Some(v) = listed(&cors.expose_headers, false, None, false) {
        answer.append(ACCESS_CONTROL_EXPOSE_HEADERS, v);
    }
    if cors.allow_credentials == Some(true) {
        answer.append(
            ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
}

/// The `Access-Control-Allow-Origin` value for the request's `Origin`, or
/// None when it has none or it is not allowed.
fn allowed_origin(cors: &Cors, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
    let origin = origin?;
    let text = origin.to_str().ok()?;
    let origins = cors.allow_origins.as_deref().unwrap_or_default();
    if origins.iter().any(|o| o == "*") {
        if cors.allow_credentials == Some(true) {
            return Some(origin.clone());
        }
        return Some(HeaderValue::from_static("*"));
    }
    origins
        .iter()
        .any(|o| o.eq_ignore_ascii_case(text))
        .then(|| origin.clone())
}

/// A configured list as one header value (None when empty). `*` stays `*`,
/// except with credentials, where it stands for what the preflight asked.
fn listed(
    items: &Option<Vec<String>>,
    credentials: bool,
    asked: Option<HeaderValue>,
    upper: bool,
) -> Option<HeaderValue> {
    let items = items.as_deref().unwrap_or_default();
    if items.iter().any(|i| i == "*") {
        return match (credentials, asked) {
            (true, asked) => asked,
            (false, _) => Some(HeaderValue::from_static("*")),
        };
    }
    if items.is_empty() {
        return None;
    }
    let joined = items
        .iter()
        .map(|i| {
            if upper {
                i.to_ascii_uppercase()
            } else {
                i.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    HeaderValue::from_str(&joined).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(origins: &[&str]) -> Cors {
        Cors {
            allow_origins: Some(origins.iter().map(|s| s.to_string()).collect()),
            allow_methods: Some(vec!["get".into(), "POST".into()]),
            allow_headers: Some(vec!["content-type".into(), "x-api-key".into()]),
            expose_headers: Some(vec!["x-total".into()]),
            max_age: Some(3600),
            allow_credentials: None,
        }
    }

    use crate::event::header_map as request;

    const ASKING: [(&str, &str); 3] = [
        ("origin", "https://shop.example"),
        ("access-control-request-method", "POST"),
        ("access-control-request-headers", "content-type"),
    ];

    #[test]
    fn preflight_is_options_with_origin_and_method() {
        assert!(is_preflight(&Method::OPTIONS, &request(&ASKING)));
        assert!(!is_preflight(&Method::OPTIONS, &request(&ASKING[..1])));
        assert!(!is_preflight(&Method::OPTIONS, &request(&ASKING[1..])));
        assert!(!is_preflight(&Method::POST, &request(&ASKING)));
    }

    #[test]
    fn allowed_origin_gets_the_configured_preflight() {
        let resp = preflight(&cors(&["https://SHOP.example"]), &request(&ASKING));
        assert_eq!(resp.status(), StatusCode::OK);
        let h = resp.headers();
        assert_eq!(h[ACCESS_CONTROL_ALLOW_ORIGIN], "https://shop.example");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_METHODS], "GET, POST");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_HEADERS], "content-type, x-api-key");
        assert_eq!(h[ACCESS_CONTROL_MAX_AGE], "3600");
        assert_eq!(h[VARY], "Origin");
        assert!(!h.contains_key(ACCESS_CONTROL_ALLOW_CREDENTIALS));
        assert!(!h.contains_key(ACCESS_CONTROL_EXPOSE_HEADERS));
    }

    #[test]
    fn other_origins_get_no_cors_headers() {
        let resp = preflight(&cors(&["https://other.example"]), &request(&ASKING));
        assert_eq!(resp.status(), StatusCode::OK);
        let names: Vec<_> = resp.headers().keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["vary"]);
        let mut answer = HeaderMap::new();
        let origin = HeaderValue::from_static("https://shop.example");
        decorate(
            &cors(&["https://other.example"]),
            Some(&origin),
            &mut answer,
        );
        assert_eq!(
            answer.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
            ["vary"]
        );
        // No Origin at all: not a CORS request.
        let mut answer = HeaderMap::new();
        decorate(&cors(&["*"]), None, &mut answer);
        assert!(!answer.contains_key(ACCESS_CONTROL_ALLOW_ORIGIN));
    }

    #[test]
    fn wildcards_and_credentials() {
        let mut c = Cors {
            allow_origins: Some(vec!["*".into()]),
            allow_methods: Some(vec!["*".into()]),
            allow_headers: Some(vec!["*".into()]),
            max_age: Some(0),
            ..Cors::default()
        };
        let resp = preflight(&c, &request(&ASKING));
        let h = resp.headers();
        assert_eq!(h[ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_METHODS], "*");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_HEADERS], "*");
        assert!(
            !h.contains_key(ACCESS_CONTROL_MAX_AGE),
            "max_age 0 is not sent"
        );
        c.allow_credentials = Some(true);
        let resp = preflight(&c, &request(&ASKING));
        let h = resp.headers();
        assert_eq!(h[ACCESS_CONTROL_ALLOW_ORIGIN], "https://shop.example");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_METHODS], "POST");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_HEADERS], "content-type");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
    }

    #[test]
    fn answers_get_origin_expose_and_credentials_beside_the_functions_own() {
        let mut c = cors(&["https://shop.example"]);
        c.allow_credentials = Some(true);
        let mut answer = HeaderMap::new();
        answer.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
        decorate(
            &c,
            Some(&HeaderValue::from_static("https://shop.example")),
            &mut answer,
        );
        assert_eq!(answer[ACCESS_CONTROL_ALLOW_ORIGIN], "https://shop.example");
        assert_eq!(answer[ACCESS_CONTROL_EXPOSE_HEADERS], "x-total");
        assert_eq!(answer[ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        let vary: Vec<_> = answer.get_all(VARY).iter().collect();
        assert_eq!(vary, ["Accept-Encoding", "Origin"]);
        assert!(!answer.contains_key(ACCESS_CONTROL_ALLOW_METHODS));
    }
}
