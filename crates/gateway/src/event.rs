//! The HTTP request → event → HTTP response mapping for process runtimes: the
//! Amazon API Gateway HTTP API payload format version 2.0 event going in, and
//! the Lambda function URL response rules coming out.
//!
//! API Gateway REST's payload format 1.0 (routes with `payload = "1.0"`) is
//! in [`rest`].
//!
//! Request event, as API Gateway and function URLs build it:
//! * header names are lower-case; repeated headers are joined with `,`; `cookie`
//!   headers are not in `headers` but split into `cookies`;
//! * `queryStringParameters` are decoded (`+` is a space) and repeated keys are
//!   joined with `,`; `rawQueryString` is the query as received (`""` when none);
//! * the body is UTF-8 text when the content type is text (`text/*`, JSON, XML,
//!   form data, JavaScript) and the bytes are valid UTF-8, otherwise base64 with
//!   `isBase64Encoded: true`; an empty body is omitted;
//! * `requestContext.accountId` is `"anonymous"` on function URLs (as Lambda sends
//!   for public URLs) and `"000000000000"` on manifest routes.
//!
//! Response, as a function URL reads it:
//! * a JSON object with `statusCode` gives that status, `headers`,
//!   `multiValueHeaders`, one `set-cookie` per `cookies` entry, and `body` (base64
//!   decoded when `isBase64Encoded` is true); without a `content-type` header the
//!   reply is `application/json`, as Lambda does; headers that frame the
//!   message or the connection ([`FRAMING_HEADERS`]) are dropped: the gateway
//!   frames its own responses, so a function cannot smuggle a second response
//!   onto the client's connection;
//! * any other valid JSON is the body of a 200 `application/json` reply, byte for
//!   byte;
//! * anything else is an error naming what is wrong.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::header::{HeaderName, CONTENT_TYPE, COOKIE, USER_AGENT};
use http::{HeaderMap, Method};
use serde::Serialize;
use time::macros::format_description;
use time::OffsetDateTime;

mod reply;
mod rest;

pub use reply::{reply_from_result, HttpReply};
pub use rest::{reply_from_rest, rest_event};

/// Response headers a function never sets: they frame the message or the
/// connection, which is the gateway's to do.
pub const FRAMING_HEADERS: [&str; 8] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-connection",
];

/// Whether `name` is one of [`FRAMING_HEADERS`].
pub fn is_framing(name: &HeaderName) -> bool {
    FRAMING_HEADERS.contains(&name.as_str())
}

/// What the gateway knows about a request besides the request itself.
#[derive(Clone, Copy, Debug)]
pub struct EventContext<'a> {
    pub request_id: &'a str,
    /// `"GET /hello/{name}"` on manifest routes, `"$default"` on function URLs.
    pub route_key: &'a str,
    /// The route's path template, `/hello/{name}` (payload 1.0's `resource`).
    pub resource: &'a str,
    pub path_parameters: Option<&'a BTreeMap<String, String>>,
    pub source_ip: &'a str,
    /// The `Host` the request came to, e.g. `"localhost:8080"`.
    pub domain_name: &'a str,
    /// When the request arrived, in milliseconds since the Unix epoch.
    pub time_ms: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Event<'a> {
    version: &'static str,
    route_key: &'a str,
    raw_path: &'a str,
    raw_query_string: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    cookies: Vec<&'a str>,
    headers: BTreeMap<&'a str, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    query_string_parameters: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path_parameters: Option<&'a BTreeMap<String, String>>,
    request_context: RequestContext<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    is_base64_encoded: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RequestContext<'a> {
    account_id: &'static str,
    api_id: &'static str,
    domain_name: &'a str,
    domain_prefix: &'a str,
    http: HttpContext<'a>,
    request_id: &'a str,
    route_key: &'a str,
    stage: &'static str,
    time: String,
    time_epoch: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HttpContext<'a> {
    method: &'a str,
    path: &'a str,
    protocol: &'static str,
    source_ip: &'a str,
    user_agent: String,
}

/// The function URL route key.
const DEFAULT_ROUTE: &str = "$default";

/// Builds the payload format 2.0 event for a request, as JSON bytes.
pub fn request_event(
    method: &Method,
    raw_path: &str,
    raw_query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
    ctx: &EventContext,
) -> Vec<u8> {
    let mut cookies = Vec::new();
    for value in headers.get_all(COOKIE) {
        if let Ok(value) = value.to_str() {
            cookies.extend(value.split(';').map(str::trim).filter(|c| !c.is_empty()));
        }
    }

    let mut header_map = BTreeMap::new();
    for name in headers.keys() {
        if name == COOKIE {
            continue;
        }
        let mut joined = String::new();
        for (i, value) in headers.get_all(name).iter().enumerate() {
            if i > 0 {
                joined.push(',');
            }
            joined.push_str(&String::from_utf8_lossy(value.as_bytes()));
        }
        header_map.insert(name.as_str(), joined);
    }

    let raw_query = raw_query.unwrap_or("");
    let query_string_parameters = query_parameters(raw_query);

    let (body, is_base64_encoded) = encode_body(headers, body);
    let user_agent = user_agent(headers);
    let domain_prefix = ctx.domain_name.split('.').next().unwrap_or_default();
    let event = Event {
        version: "2.0",
        route_key: ctx.route_key,
        raw_path,
        raw_query_string: raw_query,
        cookies,
        headers: header_map,
        query_string_parameters,
        path_parameters: ctx.path_parameters.filter(|p| !p.is_empty()),
        request_context: RequestContext {
            account_id: if ctx.route_key == DEFAULT_ROUTE {
                "anonymous"
            } else {
                "000000000000"
            },
            api_id: "updraft",
            domain_name: ctx.domain_name,
            domain_prefix,
            http: HttpContext {
                method: method.as_str(),
                path: raw_path,
                protocol: "HTTP/1.1",
                source_ip: ctx.source_ip,
                user_agent,
            },
            request_id: ctx.request_id,
            route_key: ctx.route_key,
            stage: DEFAULT_ROUTE,
            time: clf_time(ctx.time_ms),
            time_epoch: ctx.time_ms,
        },
        body,
        is_base64_encoded,
    };
    serde_json::to_vec(&event).expect("an event of strings always serializes")
}

/// The body as an event carries it: text when the content type is text and
/// the bytes are UTF-8, otherwise base64 (the flag says which); None when empty.
fn encode_body(headers: &HeaderMap, body: &[u8]) -> (Option<String>, bool) {
    if body.is_empty() {
        return (None, false);
    }
    let text = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(is_text_content_type);
    match std::str::from_utf8(body) {
        Ok(text_body) if text => (Some(text_body.to_string()), false),
        _ => (Some(STANDARD.encode(body)), true),
    }
}

fn user_agent(headers: &HeaderMap) -> String {
    headers
        .get(USER_AGENT)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default()
}

/// Decoded query parameters (`application/x-www-form-urlencoded`: `+` is a
/// space), repeated keys joined with `,` in order of appearance.
fn query_parameters(raw: &str) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
        match out.get_mut(key.as_ref()) {
            Some(existing) => {
                existing.push(',');
                existing.push_str(&value);
            }
            None => {
                out.insert(key.into_owned(), value.into_owned());
            }
        }
    }
    out
}

/// Whether a body of this content type travels as text rather than base64.
fn is_text_content_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    match kind {
        "text" => true,
        "application" => {
            matches!(
                subtype,
                "json" | "xml" | "x-www-form-urlencoded" | "javascript"
            ) || subtype.ends_with("+json")
                || subtype.ends_with("+xml")
        }
        _ => false,
    }
}

/// `23/Nov/2026:18:16:49 +0000`, the format of `requestContext.time`. A time
/// outside the years -9999..=9999 (never a request's arrival) is written as
/// the epoch.
fn clf_time(time_ms: i64) -> String {
    let time = OffsetDateTime::from_unix_timestamp_nanos(i128::from(time_ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    time.format(format_description!(
        "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
    ))
    .expect("a UTC time of the supported years always formats")
}

/// A header map of `(name, value)` pairs, repeated names appended.
#[cfg(test)]
pub(crate) fn header_map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;
    use serde_json::Value;

    fn ctx<'a>(
        route_key: &'a str,
        params: Option<&'a BTreeMap<String, String>>,
    ) -> EventContext<'a> {
        EventContext {
            request_id: "req-1",
            route_key,
            resource: route_key.split_once(' ').map_or(route_key, |(_, p)| p),
            path_parameters: params,
            source_ip: "203.0.113.9",
            domain_name: "localhost:8080",
            time_ms: 1_795_457_809_123,
        }
    }

    fn event(
        method: Method,
        path: &str,
        query: Option<&str>,
        headers: &[(&str, &str)],
        body: &[u8],
        ctx: &EventContext,
    ) -> Value {
        let map = header_map(headers);
        serde_json::from_slice(&request_event(&method, path, query, &map, body, ctx)).unwrap()
    }

    fn all_bytes() -> Vec<u8> {
        let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
        bytes.extend((0..=255u8).rev());
        bytes.extend(0..=255u8);
        bytes
    }

    #[test]
    fn time_format() {
        assert_eq!(clf_time(0), "01/Jan/1970:00:00:00 +0000");
        assert_eq!(clf_time(1_583_348_638_390), "04/Mar/2020:19:03:58 +0000");
        assert_eq!(clf_time(1_795_457_809_123), "23/Nov/2026:18:16:49 +0000");
        assert_eq!(clf_time(951_782_400_000), "29/Feb/2000:00:00:00 +0000");
        assert_eq!(clf_time(-1_000), "31/Dec/1969:23:59:59 +0000");
    }

    #[test]
    fn function_url_event_shape() {
        let e = event(
            Method::GET,
            "/a/b",
            None,
            &[
                ("host", "localhost:8080"),
                ("user-agent", "curl/8"),
                ("x-multi", "1"),
                ("x-multi", "2"),
            ],
            b"",
            &ctx("$default", None),
        );
        let expected = serde_json::json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": "/a/b",
            "rawQueryString": "",
            "headers": {"host": "localhost:8080", "user-agent": "curl/8", "x-multi": "1,2"},
            "requestContext": {
                "accountId": "anonymous",
                "apiId": "updraft",
                "domainName": "localhost:8080",
                "domainPrefix": "localhost:8080",
                "http": {
                    "method": "GET",
                    "path": "/a/b",
                    "protocol": "HTTP/1.1",
                    "sourceIp": "203.0.113.9",
                    "userAgent": "curl/8"
                },
                "requestId": "req-1",
                "routeKey": "$default",
                "stage": "$default",
                "time": "23/Nov/2026:18:16:49 +0000",
                "timeEpoch": 1_795_457_809_123i64
            },
            "isBase64Encoded": false
        });
        assert_eq!(e, expected);
    }

    #[test]
    fn route_event_has_path_parameters() {
        let mut params = BTreeMap::new();
        params.insert("name".to_string(), "J\u{fc}rgen".to_string());
        let c = EventContext {
            domain_name: "api.example.com",
            ..ctx("GET /hello/{name}", Some(&params))
        };
        let e = event(Method::GET, "/hello/J%C3%BCrgen", None, &[], b"", &c);
        assert_eq!(e["routeKey"], "GET /hello/{name}");
        assert_eq!(e["requestContext"]["routeKey"], "GET /hello/{name}");
        assert_eq!(e["requestContext"]["accountId"], "000000000000");
        assert_eq!(e["requestContext"]["domainPrefix"], "api");
        assert_eq!(
            e["pathParameters"],
            serde_json::json!({"name": "J\u{fc}rgen"})
        );
        assert_eq!(e["rawPath"], "/hello/J%C3%BCrgen");
        assert_eq!(e["requestContext"]["http"]["userAgent"], "");
        // An empty map is omitted like a missing one.
        let empty = BTreeMap::new();
        let e = event(
            Method::GET,
            "/",
            None,
            &[],
            b"",
            &ctx("GET /", Some(&empty)),
        );
        assert!(e.get("pathParameters").is_none());
    }

    #[test]
    fn cookies_are_split_and_not_headers() {
        let e = event(
            Method::GET,
            "/",
            None,
            &[
                ("cookie", "a=1; b=2"),
                ("cookie", "c=3;d=4"),
                ("accept", "*/*"),
            ],
            b"",
            &ctx("$default", None),
        );
        assert_eq!(
            e["cookies"],
            serde_json::json!(["a=1", "b=2", "c=3", "d=4"])
        );
        assert!(e["headers"].get("cookie").is_none());
        assert_eq!(e["headers"]["accept"], "*/*");
        let e = event(Method::GET, "/", None, &[], b"", &ctx("$default", None));
        assert!(e.get("cookies").is_none());
    }

    #[test]
    fn query_parameters_decoded_and_joined() {
        let raw = "a=1&b=x%20y&a=2&c&d=p+q%2B&&e=%E2%9C%93";
        let e = event(
            Method::GET,
            "/",
            Some(raw),
            &[],
            b"",
            &ctx("$default", None),
        );
        assert_eq!(e["rawQueryString"], raw);
        assert_eq!(
            e["queryStringParameters"],
            serde_json::json!({"a": "1,2", "b": "x y", "c": "", "d": "p q+", "e": "\u{2713}"})
        );
        let e = event(Method::GET, "/", Some(""), &[], b"", &ctx("$default", None));
        assert_eq!(e["rawQueryString"], "");
        assert!(e.get("queryStringParameters").is_none());
    }

    #[test]
    fn text_bodies_stay_text() {
        for content_type in [
            "text/plain",
            "text/html; charset=utf-8",
            "application/json",
            "Application/JSON; charset=UTF-8",
            "application/vnd.api+json",
            "application/xml",
            "application/atom+xml",
            "application/x-www-form-urlencoded",
            "application/javascript",
        ] {
            let e = event(
                Method::POST,
                "/",
                None,
                &[("content-type", content_type)],
                "{\"h\u{e9}\": 1}".as_bytes(),
                &ctx("$default", None),
            );
            assert_eq!(e["body"], "{\"h\u{e9}\": 1}", "{content_type}");
            assert_eq!(e["isBase64Encoded"], false, "{content_type}");
        }
    }

    #[test]
    fn other_bodies_are_base64() {
        for headers in [
            &[("content-type", "application/octet-stream")][..],
            &[("content-type", "image/png")][..],
            &[("content-type", "application/jsonx")][..],
            &[][..],
        ] {
            let e = event(
                Method::POST,
                "/",
                None,
                headers,
                b"hello",
                &ctx("$default", None),
            );
            assert_eq!(e["body"], "aGVsbG8=");
            assert_eq!(e["isBase64Encoded"], true);
        }
        // Not UTF-8: base64 whatever the content type says.
        let e = event(
            Method::POST,
            "/",
            None,
            &[("content-type", "text/plain")],
            b"\xff\xfe",
            &ctx("$default", None),
        );
        assert_eq!(e["body"], "//4=");
        assert_eq!(e["isBase64Encoded"], true);
    }

    #[test]
    fn binary_round_trip_is_byte_exact() {
        let png = all_bytes();
        let e = event(
            Method::PUT,
            "/upload",
            None,
            &[("content-type", "image/png")],
            &png,
            &ctx("$default", None),
        );
        assert_eq!(e["isBase64Encoded"], true);
        let encoded = e["body"].as_str().unwrap();
        assert_eq!(STANDARD.decode(encoded).unwrap(), png);

        // The function echoes it back.
        let result = serde_json::json!({
            "statusCode": 200,
            "headers": {"content-type": "image/png"},
            "body": encoded,
            "isBase64Encoded": true
        });
        let reply = reply_from_result(result.to_string().as_bytes()).unwrap();
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.headers[CONTENT_TYPE], "image/png");
        assert_eq!(reply.body.as_ref(), png.as_slice());
    }
}
