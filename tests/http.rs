//! The gateway: function URLs (prefix stripped, payload 2.0 events, binary
//! bodies byte-exact, forwarded headers, CORS), manifest routes, and private URLs.

mod common;
use common::*;

#[test]
fn binary_bodies_round_trip_byte_exact() {
    let s = Server::start("binary");
    s.deploy(&fixture("py"));
    let body: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    let (status, headers, got) = http(
        "POST",
        &format!("{}/fn/binary/upload?x=1", s.endpoint),
        &[("content-type", "application/octet-stream")],
        body.clone(),
    );
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/octet-stream");
    assert_eq!(got, body);
    assert!(headers.contains_key("x-amzn-requestid"));
}

#[test]
fn function_urls_strip_the_prefix_and_build_a_v2_event() {
    let s = Server::start("event");
    s.deploy(&fixture("py"));
    let (status, _, body) = http(
        "POST",
        &format!("{}/fn/echo/a/b?q=1&q=2&r=x", s.endpoint),
        &[
            ("content-type", "application/json"),
            ("X-Custom", "yes"),
            ("cookie", "a=1; b=2"),
        ],
        br#"{"k": "v"}"#.to_vec(),
    );
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let e = &v["event"];
    assert_eq!(e["version"], "2.0");
    assert_eq!(e["routeKey"], "$default");
    assert_eq!(e["rawPath"], "/a/b");
    assert_eq!(e["rawQueryString"], "q=1&q=2&r=x");
    assert_eq!(e["queryStringParameters"]["q"], "1,2");
    assert_eq!(e["headers"]["x-custom"], "yes");
    assert_eq!(e["cookies"][1], "b=2");
    assert_eq!(e["requestContext"]["http"]["method"], "POST");
    assert_eq!(e["body"], r#"{"k": "v"}"#);
    assert_eq!(e["isBase64Encoded"], false);
    let (status, _, body) = http("GET", &format!("{}/fn/echo", s.endpoint), &[], vec![]);
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["event"]["rawPath"], "/");
    // A function error becomes a 502 without internals.
    let (status, body) = get(&format!("{}/fn/fail", s.endpoint));
    assert_eq!(status, 502);
    assert!(
        !body.contains("stackTrace") && body.contains("requestId"),
        "{body}"
    );
    assert_eq!(get(&format!("{}/fn/nothing-here", s.endpoint)).0, 404);
}

#[test]
fn manifest_routes_match_with_params_404_and_405() {
    let s = Server::start("routes");
    s.deploy(&repo().join("examples/hello"));
    let (status, body) = get(&format!("{}/hello/ada", s.endpoint));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("ada"), "{body}");
    let (status, _, body) = http(
        "POST",
        &format!("{}/count", s.endpoint),
        &[("content-type", "application/json")],
        br#"{"text": "one two three"}"#.to_vec(),
    );
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["words"], 3);
    assert_eq!(get(&format!("{}/nowhere", s.endpoint)).0, 404);
    let (status, headers, _) = http("DELETE", &format!("{}/hello/ada", s.endpoint), &[], vec![]);
    assert_eq!(status, 405);
    assert_eq!(headers["allow"], "GET");
}

#[test]
fn conflicting_routes_across_apps_are_refused_naming_both() {
    let s = Server::start("conflict");
    s.deploy(&repo().join("examples/hello"));
    let dir = scratch("conflict-app");
    std::fs::create_dir_all(dir.join("code")).unwrap();
    std::fs::write(
        dir.join("code/app.py"),
        "def handler(e, c):\n    return 1\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("updraft.toml"),
        "[app]\nname = \"other\"\n\n[functions.other-hello]\nruntime = \"python3\"\nhandler = \"app.handler\"\ncode = \"code\"\n\n[[functions.other-hello.triggers]]\nhttp = { route = \"ANY /hello/{who}\" }\n",
    )
    .unwrap();
    let out = s.cli(&["deploy", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("other-hello") && err.contains("greet") && err.contains("GET /hello/{name}"),
        "{err}"
    );
    assert!(
        s.function_info("other-hello").is_null(),
        "nothing was deployed"
    );
}

#[test]
fn private_function_urls_need_credentials_and_say_how_to_open_them() {
    let s = Server::start("private");
    let dir = scratch("private-app");
    std::fs::create_dir_all(dir.join("code")).unwrap();
    std::fs::write(
        dir.join("code/app.py"),
        "def handler(e, c):\n    return {'private': True, 'headers': sorted(e.get('headers', {}))}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("updraft.toml"),
        "[app]\nname = \"priv\"\n\n[functions.secret]\nruntime = \"python3\"\nhandler = \"app.handler\"\ncode = \"code\"\n",
    )
    .unwrap();
    s.deploy(&dir);
    let (status, body) = get(&format!("{}/fn/secret", s.endpoint));
    assert_eq!(status, 401);
    assert!(body.contains("url = \\\"public\\\""), "{body}");
    let (status, _, _) = http(
        "GET",
        &format!("{}/fn/secret", s.endpoint),
        &[("authorization", "Bearer AKUDWRONG:nope")],
        vec![],
    );
    assert_eq!(status, 403);
    let (status, _, body) = http(
        "GET",
        &format!("{}/fn/secret", s.endpoint),
        &[("authorization", &s.bearer())],
        vec![],
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    // The admin credentials were Updraft's: they do not reach the function.
    let seen: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(seen["private"], true, "{seen}");
    assert!(
        !seen["headers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h == "authorization"),
        "the function saw the Authorization header: {seen}"
    );
    // The control API is never open.
    assert_eq!(get(&format!("{}/api/v1/functions", s.endpoint)).0, 401);
}

/// Echoes the method and headers it got (a 2.0 function URL handler); `/nocontent` answers 204.
const HEADERS_ECHO: &str = r#"import json


def handler(event, context):
    if event["rawPath"] == "/nocontent":
        return {"statusCode": 204}
    return {
        "statusCode": 200,
        "headers": {"x-total": "3", "x-fn": "ran"},
        "body": json.dumps({"method": event["requestContext"]["http"]["method"], "headers": event["headers"]}),
    }
"#;

/// `open-cors` (public, CORS for one origin), `private-cors` (private, any
/// origin) and `no-cors` (public, no CORS settings), all [`HEADERS_ECHO`].
fn cors_app() -> std::path::PathBuf {
    let dir = scratch("cors-app");
    std::fs::create_dir_all(dir.join("code")).unwrap();
    std::fs::write(dir.join("code/app.py"), HEADERS_ECHO).unwrap();
    let function = |name: &str, extra: &str| {
        format!("[functions.{name}]\nruntime = \"python3\"\nhandler = \"app.handler\"\ncode = \"code\"\n{extra}\n")
    };
    let manifest = [
        "[app]\nname = \"cors\"\n".to_string(),
        function(
            "open-cors",
            "url = \"public\"\ncors = { allow_origins = [\"https://shop.example\"], allow_methods = [\"GET\", \"POST\"], allow_headers = [\"content-type\"], expose_headers = [\"x-total\"], max_age = \"1h\" }",
        ),
        function("private-cors", "cors = { allow_origins = [\"*\"] }"),
        function("no-cors", "url = \"public\""),
    ]
    .join("\n");
    std::fs::write(dir.join("updraft.toml"), manifest).unwrap();
    dir
}

const SHOP: &str = "https://shop.example";

fn preflight(url: &str, origin: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    http(
        "OPTIONS",
        url,
        &[
            ("origin", origin),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "content-type"),
        ],
        vec![],
    )
}

fn cors_headers(headers: &reqwest::header::HeaderMap) -> Vec<String> {
    let mut names: Vec<String> = headers
        .keys()
        .map(|k| k.as_str().to_string())
        .filter(|k| k.starts_with("access-control-"))
        .collect();
    names.sort();
    names
}

#[test]
fn function_url_cors_answers_preflights_and_adds_headers_as_lambda() {
    let s = Server::start("cors");
    s.deploy(&cors_app());
    let url = |name: &str| format!("{}/fn/{name}", s.endpoint);

    // A preflight is answered by the platform with the configured headers.
    let (status, headers, body) = preflight(&url("open-cors"), SHOP);
    assert_eq!(status, 200);
    assert!(body.is_empty(), "the function did not run");
    assert!(!headers.contains_key("x-fn"));
    assert_eq!(headers["access-control-allow-origin"], SHOP);
    assert_eq!(headers["access-control-allow-methods"], "GET, POST");
    assert_eq!(headers["access-control-allow-headers"], "content-type");
    assert_eq!(headers["access-control-max-age"], "3600");
    assert_eq!(headers["vary"], "Origin");
    assert!(!headers.contains_key("access-control-allow-credentials"));

    // The answer of an allowed origin's request gets the origin and the
    // exposed headers; the function's own headers stay.
    let (status, headers, _) = http("GET", &url("open-cors"), &[("origin", SHOP)], vec![]);
    assert_eq!(status, 200);
    assert_eq!(headers["x-fn"], "ran");
    assert_eq!(headers["access-control-allow-origin"], SHOP);
    assert_eq!(headers["access-control-expose-headers"], "x-total");
    assert_eq!(headers["vary"], "Origin");

    // Another origin gets no CORS headers, preflight or not.
    let (status, headers, _) = preflight(&url("open-cors"), "https://evil.example");
    assert_eq!(status, 200);
    assert_eq!(cors_headers(&headers), Vec::<String>::new());
    let (status, headers, _) = http(
        "GET",
        &url("open-cors"),
        &[("origin", "https://evil.example")],
        vec![],
    );
    assert_eq!(status, 200);
    assert_eq!(cors_headers(&headers), Vec::<String>::new());

    // A private URL answers preflights without credentials (browsers send
    // none with them); its calls still need them.
    let (status, headers, _) = preflight(&url("private-cors"), SHOP);
    assert_eq!(status, 200);
    assert_eq!(headers["access-control-allow-origin"], "*");
    let (status, headers, _) = http("GET", &url("private-cors"), &[("origin", SHOP)], vec![]);
    assert_eq!(status, 401);
    assert_eq!(headers["access-control-allow-origin"], "*");

    // Without CORS settings: no CORS headers, and OPTIONS reaches the function.
    let (status, headers, body) = preflight(&url("no-cors"), SHOP);
    assert_eq!(status, 200);
    assert_eq!(cors_headers(&headers), Vec::<String>::new());
    assert!(!headers.contains_key("vary"));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["method"], "OPTIONS");
    assert_eq!(v["headers"]["access-control-request-method"], "POST");
}

#[test]
fn events_carry_forwarded_headers_and_a_trace_id_and_204_has_no_type() {
    let s = Server::start("forwarded");
    s.deploy(&cors_app());
    let port = s.endpoint.rsplit(':').next().unwrap().to_string();
    let echo = |headers: &[(&str, &str)]| -> serde_json::Value {
        let (status, _, body) = http(
            "GET",
            &format!("{}/fn/no-cors", s.endpoint),
            headers,
            vec![],
        );
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        serde_json::from_slice::<serde_json::Value>(&body).unwrap()["headers"].clone()
    };
    let h = echo(&[]);
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-port"], port.as_str());
    let trace = h["x-amzn-trace-id"].as_str().unwrap().to_string();
    let root = trace.split(';').next().unwrap();
    let parts: Vec<&str> = root.trim_start_matches("Root=").split('-').collect();
    assert_eq!(parts.len(), 3, "{trace}");
    assert_eq!(
        (parts[0], parts[1].len(), parts[2].len()),
        ("1", 8, 24),
        "{trace}"
    );
    assert_ne!(
        echo(&[])["x-amzn-trace-id"],
        trace.as_str(),
        "one trace a request"
    );

    // A client's chain is extended, its proto and port replaced, its trace
    // continued (the invocation's span as the parent).
    let theirs = "Root=1-67891233-abcdef012345678912345678;Sampled=1";
    let h = echo(&[
        ("x-forwarded-for", "198.51.100.7"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-port", "443"),
        ("x-amzn-trace-id", theirs),
    ]);
    assert_eq!(h["x-forwarded-for"], "198.51.100.7, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-port"], port.as_str());
    let continued = h["x-amzn-trace-id"].as_str().unwrap();
    assert!(
        continued.starts_with("Root=1-67891233-abcdef012345678912345678;Parent="),
        "{continued}"
    );
    assert_eq!(
        h["traceparent"].as_str().unwrap()[..36],
        *"00-67891233abcdef012345678912345678-"
    );

    // A 204 answer has no body and no content type.
    let (status, headers, body) = http(
        "GET",
        &format!("{}/fn/no-cors/nocontent", s.endpoint),
        &[],
        vec![],
    );
    assert_eq!(status, 204);
    assert!(body.is_empty());
    assert!(!headers.contains_key("content-type"), "{headers:?}");
}
