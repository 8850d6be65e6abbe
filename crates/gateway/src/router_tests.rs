//! The router driven as a tower service (`oneshot`, no sockets) over a real
//! platform in a temporary directory: function URLs, manifest routes and
//! their path parameters, and the shapes of 401, 404, 405 and 413.

use super::*;
use axum::http::Request;
use serde_json::{json, Value};
use tower::ServiceExt;
use updraft_core::config::{HttpRoute, Trigger};
use updraft_core::FunctionConfig;
use updraft_platform::{DeployFunction, PlatformConfig};

/// The function answers with the event it got.
const ECHO: &str = "import json\n\ndef handler(event, context):\n    return {\"statusCode\": 200, \"headers\": {\"x-fn\": \"echo\"}, \"body\": json.dumps(event)}\n";

async fn platform(dir: &std::path::Path) -> Platform {
    Platform::start(PlatformConfig {
        data_dir: dir.to_path_buf(),
        lock: updraft_platform::DataDirLock::acquire(dir).unwrap(),
        database_url: format!("sqlite://{}/updraft.db", dir.display()),
        region: "us-east-1".into(),
        prices: Default::default(),
        log_retention: std::time::Duration::from_secs(3600),
        log_limits: updraft_platform::LogLimits {
            per_invocation: updraft_platform::DEFAULT_INVOCATION_LOG_LIMIT,
            per_function_lines: updraft_platform::DEFAULT_LOG_RETENTION_LINES,
        },
        public_url: "http://gateway.test".into(),
        retry_base: std::time::Duration::from_secs(1),
        wasm_cache_dir: None,
        wasm_compiler: None,
        isolation: updraft_platform::IsolationMode::Auto,
        allow_function_loopback: false,
        function_subnet: updraft_platform::DEFAULT_FUNCTION_SUBNET.parse().unwrap(),
        roles: Default::default(),
        function_credentials_ttl: std::time::Duration::from_secs(3600),
        runtimes: Vec::new(),
        tracer: Default::default(),
        metrics: true,
        zygotes: true,
    })
    .await
    .unwrap()
}

fn code_zip() -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    let mut z = zip::ZipWriter::new(&mut buf);
    z.start_file("app.py", zip::write::SimpleFileOptions::default())
        .unwrap();
    std::io::Write::write_all(&mut z, ECHO.as_bytes()).unwrap();
    z.finish().unwrap();
    buf.into_inner()
}

fn function(name: &str, url: UrlAuth, routes: &[&str], sha: &str) -> DeployFunction {
    DeployFunction {
        name: name.into(),
        config: FunctionConfig {
            runtime: "python3".into(),
            handler: "app.handler".into(),
            memory_mb: 128,
            ephemeral_storage_mb: 512,
            timeout_ms: 30_000,
            env: Default::default(),
            url,
            cors: None,
            scaling: Default::default(),
            triggers: routes
                .iter()
                .map(|r| Trigger::Http(HttpRoute::parse(r).unwrap()))
                .collect(),
            description: String::new(),
            permissions: Vec::new(),
            logging: Default::default(),
            snapshot: false,
        },
        code_sha256: sha.into(),
    }
}

/// A platform with `echo` (public URL, routes) and `secret` (private URL).
async fn gateway(dir: &std::path::Path) -> (Platform, Router) {
    let p = platform(dir).await;
    let sha = p.put_code(&code_zip()).unwrap();
    p.deploy_app(
        "gw",
        vec![
            function(
                "echo",
                UrlAuth::Public,
                &["GET /items/{id}", "POST /items/{id}", "ANY /files/{path+}"],
                &sha,
            ),
            function("secret", UrlAuth::Private, &[], &sha),
        ],
        false,
    )
    .await
    .unwrap();
    let app = router(p.clone());
    (p, app)
}

async fn send(
    app: &Router,
    method: &str,
    uri: &str,
    body: Vec<u8>,
) -> (StatusCode, HeaderMap, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "gateway.test")
        .body(Body::from(body))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (parts.status, parts.headers, v)
}

/// An error as the gateway shapes it: `{message, requestId}`, the id also a header.
fn assert_error(headers: &HeaderMap, v: &Value, message_part: &str) {
    let message = v["message"].as_str().unwrap_or_else(|| panic!("{v}"));
    assert!(message.contains(message_part), "{v}");
    assert_eq!(v.as_object().unwrap().len(), 2, "{v}");
    assert_eq!(
        headers["x-amzn-requestid"],
        v["requestId"].as_str().unwrap()
    );
}

#[tokio::test]
async fn requests_reach_functions_by_url_and_by_route() {
    let dir = tempfile::tempdir().unwrap();
    let (p, app) = gateway(dir.path()).await;

    // The function URL: the prefix stripped, the query as sent.
    let (status, headers, e) = send(&app, "GET", "/fn/echo/a/b?x=1&y=%20", vec![]).await;
    assert_eq!(status, StatusCode::OK, "{e}");
    assert_eq!(headers["x-fn"], "echo");
    assert_eq!(
        headers["x-amzn-requestid"],
        e["requestContext"]["requestId"].as_str().unwrap()
    );
    assert_eq!(e["routeKey"], "$default");
    assert_eq!(e["rawPath"], "/a/b");
    assert_eq!(e["rawQueryString"], "x=1&y=%20");
    assert_eq!(e["queryStringParameters"], json!({ "x": "1", "y": " " }));
    assert_eq!(e["requestContext"]["http"]["method"], "GET");
    assert_eq!(e["requestContext"]["domainName"], "gateway.test");
    assert!(e.get("pathParameters").is_none(), "{e}");
    for (uri, path) in [("/fn/echo", "/"), ("/fn/echo/", "/")] {
        let (status, _, e) = send(&app, "GET", uri, vec![]).await;
        assert_eq!(
            (status, e["rawPath"].as_str()),
            (StatusCode::OK, Some(path)),
            "{uri}"
        );
    }

    // A manifest route: the whole path, the route key, decoded parameters.
    let (status, _, e) = send(&app, "POST", "/items/J%C3%BCrgen", b"hi".to_vec()).await;
    assert_eq!(status, StatusCode::OK, "{e}");
    assert_eq!(e["routeKey"], "POST /items/{id}");
    assert_eq!(e["rawPath"], "/items/J%C3%BCrgen");
    assert_eq!(e["pathParameters"], json!({ "id": "Jürgen" }));
    // No text content type: the body travels base64-encoded.
    assert_eq!(
        (&e["body"], &e["isBase64Encoded"]),
        (&json!("aGk="), &json!(true))
    );
    let (status, _, e) = send(&app, "DELETE", "/files/a/b.txt", vec![]).await;
    assert_eq!(status, StatusCode::OK, "{e}");
    assert_eq!(e["routeKey"], "ANY /files/{path+}");
    assert_eq!(e["pathParameters"], json!({ "path": "a/b.txt" }));
    p.shutdown(std::time::Duration::from_secs(5)).await;
}

#[tokio::test]
async fn what_no_function_answers_is_refused_with_the_gateways_error_shape() {
    let dir = tempfile::tempdir().unwrap();
    let (p, app) = gateway(dir.path()).await;

    // No route matches: 404.
    let (status, headers, v) = send(&app, "GET", "/nothing/here", vec![]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&headers, &v, "Not Found");
    // A route's path with another method: 405 listing the methods.
    let (status, headers, v) = send(&app, "PUT", "/items/1", vec![]).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers["allow"], "GET, POST");
    assert_error(
        &headers,
        &v,
        "PUT is not allowed on /items/1; allowed: GET, POST",
    );
    // `{id}` is one non-empty segment: neither /items/ nor /items/1/2 is the route.
    for uri in ["/items/", "/items/1/2"] {
        let (status, _, v) = send(&app, "GET", uri, vec![]).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}: {v}");
    }
    // An unknown function's URL: 404 naming it.
    let (status, headers, v) = send(&app, "GET", "/fn/nope/x", vec![]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&headers, &v, "nope");
    // A private function's URL without credentials: 401 naming the setting.
    let (status, headers, v) = send(&app, "GET", "/fn/secret", vec![]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&headers, &v, "function secret is private");
    assert_error(&headers, &v, "url = \"public\"");
    // Over the synchronous payload limit: 413, by URL and by route.
    for uri in ["/fn/echo", "/items/1"] {
        let big = vec![b'x'; MAX_REQUEST_BYTES + 1];
        let (status, headers, v) = send(&app, "POST", uri, big).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{uri}");
        assert_error(&headers, &v, "limit of a synchronous invocation");
    }
    // Nothing above reached an instance.
    assert_eq!(p.live_instances("echo"), 0);
    p.shutdown(std::time::Duration::from_secs(5)).await;
}
