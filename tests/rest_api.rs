//! Routes with `payload = "1.0"`: a handler written for an API Gateway REST
//! API (in the shape of the public Lambda proxy samples: the event's
//! `queryStringParameters`, `multiValueHeaders`, `pathParameters`, and an
//! answer with `multiValueHeaders`) runs unchanged behind `ANY /api/{proxy+}`.

mod common;
use common::*;
use serde_json::Value;

/// A REST API proxy handler: greets from the query or the body, reports what
/// it read from the event, and sets two cookies through `multiValueHeaders`.
const HANDLER: &str = r#"import json


def lambda_handler(event, context):
    proxy = (event.get("pathParameters") or {}).get("proxy", "")
    if proxy == "bare":
        return "a bare string is a malformed proxy response"
    if proxy == "empty":
        return {"statusCode": 204}

    greeting = "Hello"
    name = "World"
    query = event["queryStringParameters"]
    if query and query.get("name"):
        name = query["name"]
    if event["body"]:
        body = json.loads(event["body"])
        greeting = body.get("greeting", greeting)

    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json", "X-Handler": "rest"},
        "multiValueHeaders": {"Set-Cookie": ["visited=yes; Path=/", "lang=en; Path=/"]},
        "body": json.dumps({
            "message": f"{greeting}, {name}!",
            "resource": event["resource"],
            "path": event["path"],
            "httpMethod": event["httpMethod"],
            "proxy": proxy,
            "tags": (event["multiValueQueryStringParameters"] or {}).get("tag"),
            "lastTag": (query or {}).get("tag"),
            "accept": event["multiValueHeaders"].get("x-multi"),
            "stageVariables": event["stageVariables"],
            "resourcePath": event["requestContext"]["resourcePath"],
            "contextMethod": event["requestContext"]["httpMethod"],
            "sourceIp": event["requestContext"]["identity"]["sourceIp"],
            "stage": event["requestContext"]["stage"],
            "requestId": event["requestContext"]["requestId"],
            "epoch": event["requestContext"]["requestTimeEpoch"],
            "forwardedFor": event["headers"].get("x-forwarded-for"),
            "trace": event["headers"].get("x-amzn-trace-id"),
            "isBase64Encoded": event["isBase64Encoded"],
        }),
        "isBase64Encoded": False,
    }
"#;

fn rest_app() -> std::path::PathBuf {
    let dir = scratch("rest-app");
    std::fs::create_dir_all(dir.join("code")).unwrap();
    std::fs::write(dir.join("code/app.py"), HANDLER).unwrap();
    std::fs::write(
        dir.join("updraft.toml"),
        "[app]\nname = \"rest\"\n\n[functions.pets]\nruntime = \"python3\"\nhandler = \"app.lambda_handler\"\ncode = \"code\"\n\n[[functions.pets.triggers]]\nhttp = { route = \"ANY /api/{proxy+}\", payload = \"1.0\" }\n",
    )
    .unwrap();
    dir
}

#[test]
fn a_rest_api_handler_runs_unchanged_behind_a_payload_1_route() {
    let s = Server::start("rest-api");
    s.deploy(&rest_app());
    let (status, headers, body) = http(
        "POST",
        &format!("{}/api/pets/7?name=Ada&tag=a&tag=b", s.endpoint),
        &[
            ("content-type", "application/json"),
            ("x-multi", "1"),
            ("x-multi", "2"),
        ],
        br#"{"greeting": "Howdy"}"#.to_vec(),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["message"], "Howdy, Ada!");
    assert_eq!(v["resource"], "/api/{proxy+}");
    assert_eq!(v["path"], "/api/pets/7");
    assert_eq!(v["httpMethod"], "POST");
    assert_eq!(v["proxy"], "pets/7");
    assert_eq!(v["tags"], serde_json::json!(["a", "b"]));
    assert_eq!(
        v["lastTag"], "b",
        "queryStringParameters holds the last value"
    );
    assert_eq!(v["accept"], serde_json::json!(["1", "2"]));
    assert!(v["stageVariables"].is_null());
    assert_eq!(v["resourcePath"], "/api/{proxy+}");
    assert_eq!(v["contextMethod"], "POST");
    assert_eq!(v["sourceIp"], "127.0.0.1");
    assert_eq!(v["stage"], "$default");
    assert_eq!(
        v["requestId"].as_str(),
        headers["x-amzn-requestid"].to_str().ok()
    );
    assert!(v["epoch"].as_i64().unwrap() > 1_700_000_000_000);
    assert_eq!(v["forwardedFor"], "127.0.0.1");
    assert!(v["trace"].as_str().unwrap().starts_with("Root=1-"), "{v}");
    assert_eq!(v["isBase64Encoded"], false);
    // The answer's multiValueHeaders arrive: both cookies, and the headers.
    let cookies: Vec<_> = headers
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap())
        .collect();
    assert_eq!(cookies, ["visited=yes; Path=/", "lang=en; Path=/"]);
    assert_eq!(headers["x-handler"], "rest");
    assert_eq!(headers["content-type"], "application/json");

    // No query, no body: the event's maps are null, and the handler copes.
    let (status, body) = get(&format!("{}/api/hello", s.endpoint));
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["message"], "Hello, World!");

    // A bare answer is a malformed proxy response (no 2.0 inference): 502.
    let (status, body) = get(&format!("{}/api/bare", s.endpoint));
    assert_eq!(status, 502, "{body}");
    assert!(
        body.contains("statusCode") && body.contains("requestId"),
        "{body}"
    );

    // 204 has no body and no content type.
    let (status, headers, body) = http("GET", &format!("{}/api/empty", s.endpoint), &[], vec![]);
    assert_eq!(status, 204);
    assert!(body.is_empty());
    assert!(!headers.contains_key("content-type"), "{headers:?}");
}
