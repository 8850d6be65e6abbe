//! The gateway: function URLs (prefix stripped, payload 2.0 events, binary
//! bodies byte-exact), manifest routes, and private URLs.

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
