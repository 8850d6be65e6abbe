//! Router tests without sockets: a real platform in a temporary directory,
//! requests through `oneshot` with bearer credentials.

use super::Target;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use serde_json::{json, Value};
use tower::ServiceExt;
use updraft_platform::{Platform, PlatformConfig};

async fn platform(dir: &std::path::Path) -> Platform {
    Platform::start(PlatformConfig {
        data_dir: dir.to_path_buf(),
        lock: updraft_platform::DataDirLock::acquire(dir).unwrap(),
        database_url: format!("sqlite://{}/updraft.db", dir.display()),
        region: "us-east-1".into(),
        prices: Default::default(),
        log_retention: std::time::Duration::from_secs(7 * 24 * 3600),
        log_limits: updraft_platform::LogLimits {
            per_invocation: updraft_platform::DEFAULT_INVOCATION_LOG_LIMIT,
            per_function_lines: updraft_platform::DEFAULT_LOG_RETENTION_LINES,
        },
        public_url: "http://127.0.0.1:1".into(),
        retry_base: std::time::Duration::from_millis(10),
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

fn zip() -> String {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        z.start_file("app.py", zip::write::SimpleFileOptions::default())
            .unwrap();
        std::io::Write::write_all(&mut z, b"def handler(e, c):\n    return e\n").unwrap();
        z.finish().unwrap();
    }
    base64::engine::general_purpose::STANDARD.encode(buf.into_inner())
}

async fn call(
    app: &axum::Router,
    p: &Platform,
    method: &str,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Option<String>, Value) {
    let c = p.credentials();
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header(
            "authorization",
            format!("Bearer {}:{}", c.access_key_id, c.secret_access_key),
        )
        .body(match body {
            Some(b) => Body::from(b.to_string()),
            None => Body::empty(),
        })
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let kind = resp
        .headers()
        .get("x-amzn-errortype")
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, kind, v)
}

#[test]
fn function_names_in_paths() {
    let t = |raw: &str, q: Option<&str>| Target::parse(raw, q);
    assert_eq!(t("f", None).unwrap().name, "f");
    assert_eq!(
        t("f:live", None).unwrap().qualifier.as_deref(),
        Some("live")
    );
    let full = t("arn:aws:lambda:eu-west-1:123456789012:function:f:3", None).unwrap();
    assert_eq!(
        (full.name.as_str(), full.qualifier.as_deref()),
        ("f", Some("3"))
    );
    let partial = t("123456789012:function:f", Some("$LATEST")).unwrap();
    assert_eq!(
        (partial.name.as_str(), partial.qualifier.as_deref()),
        ("f", Some("$LATEST"))
    );
    assert!(t("f:1", Some("2")).is_err());
    assert!(t("a/b", None).is_err());
    assert!(t("a:b:c", None).is_err());
}

#[tokio::test]
async fn lifecycle_through_the_router() {
    let dir = tempfile::tempdir().unwrap();
    let p = platform(dir.path()).await;
    let app = crate::router(p.clone());

    // Unauthenticated: 401.
    let resp = app
        .clone()
        .oneshot(
            Request::get("/2015-03-31/functions")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    let create = json!({
        "FunctionName": "f", "Runtime": "python3", "Handler": "app.handler",
        "Role": "arn:aws:iam::1:role/r", "Code": {"ZipFile": zip()},
        "Environment": {"Variables": {"A": "1"}}, "Timeout": 5, "Publish": true,
    });
    let (s, _, v) = call(
        &app,
        &p,
        "POST",
        "/2015-03-31/functions",
        Some(create.clone()),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["Version"], "1");
    assert_eq!(
        v["FunctionArn"],
        "arn:aws:lambda:us-east-1:000000000000:function:f:1"
    );
    assert_eq!(v["Role"], "arn:aws:iam::1:role/r");
    assert_eq!(v["Timeout"], 5);
    assert_eq!(v["Environment"]["Variables"]["A"], "1");
    assert_eq!(v["CodeSha256"].as_str().unwrap().len(), 44);

    let (s, kind, _) = call(&app, &p, "POST", "/2015-03-31/functions", Some(create)).await;
    assert_eq!(
        (s, kind.as_deref()),
        (StatusCode::CONFLICT, Some("ResourceConflictException"))
    );

    let bad = json!({"FunctionName": "g", "Runtime": "python3.12", "Handler": "x",
        "Role": "r", "Code": {"ZipFile": zip()}});
    let (s, kind, v) = call(&app, &p, "POST", "/2015-03-31/functions", Some(bad)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(kind.as_deref(), Some("InvalidParameterValueException"));
    assert!(
        v["message"].as_str().unwrap().starts_with("Handler:"),
        "{v}"
    );

    let (s, kind, _) = call(&app, &p, "GET", "/2015-03-31/functions/nope", None).await;
    assert_eq!(
        (s, kind.as_deref()),
        (StatusCode::NOT_FOUND, Some("ResourceNotFoundException"))
    );

    // Update $LATEST; version 1 keeps its config.
    let (s, _, v) = call(
        &app,
        &p,
        "PUT",
        "/2015-03-31/functions/f/configuration",
        Some(json!({"MemorySize": 256, "Description": "d"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["MemorySize"].clone(), v["Version"].clone()),
        (json!(256), json!("$LATEST"))
    );
    let (_, _, v) = call(
        &app,
        &p,
        "GET",
        "/2015-03-31/functions/f%3A1/configuration",
        None,
    )
    .await;
    assert_eq!(v["MemorySize"], 128);
    let (s, _, v) = call(
        &app,
        &p,
        "POST",
        "/2015-03-31/functions/f/versions",
        Some(json!({})),
    )
    .await;
    assert_eq!((s, v["Version"].clone()), (StatusCode::CREATED, json!("2")));

    // A weighted alias.
    let (s, _, v) = call(
        &app,
        &p,
        "POST",
        "/2015-03-31/functions/f/aliases",
        Some(json!({"Name": "live", "FunctionVersion": "1",
            "RoutingConfig": {"AdditionalVersionWeights": {"2": 0.25}}})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["RoutingConfig"]["AdditionalVersionWeights"]["2"], 0.25);
    let (s, kind, _) = call(
        &app,
        &p,
        "POST",
        "/2015-03-31/functions/f/aliases",
        Some(json!({"Name": "bad", "FunctionVersion": "1",
            "RoutingConfig": {"AdditionalVersionWeights": {"9": 0.5}}})),
    )
    .await;
    assert_eq!(
        (s, kind.as_deref()),
        (StatusCode::NOT_FOUND, Some("ResourceNotFoundException"))
    );
    let (s, kind, _) = call(
        &app,
        &p,
        "DELETE",
        "/2015-03-31/functions/f?Qualifier=2",
        None,
    )
    .await;
    assert_eq!(
        (s, kind.as_deref()),
        (StatusCode::CONFLICT, Some("ResourceConflictException"))
    );
    let (_, _, v) = call(&app, &p, "GET", "/2015-03-31/functions/f/aliases", None).await;
    assert_eq!(v["Aliases"].as_array().unwrap().len(), 1);

    // Pagination of versions: $LATEST, 1, 2.
    let (_, _, v) = call(
        &app,
        &p,
        "GET",
        "/2015-03-31/functions/f/versions?MaxItems=2",
        None,
    )
    .await;
    assert_eq!(v["Versions"].as_array().unwrap().len(), 2);
    assert_eq!(v["NextMarker"], "1");
    let (_, _, v) = call(
        &app,
        &p,
        "GET",
        "/2015-03-31/functions/f/versions?Marker=1",
        None,
    )
    .await;
    assert_eq!(v["Versions"][0]["Version"], "2");
    assert!(v.get("NextMarker").is_none());

    // Concurrency and URL config.
    let (s, _, _) = call(
        &app,
        &p,
        "PUT",
        "/2017-10-31/functions/f/concurrency",
        Some(json!({"ReservedConcurrentExecutions": 3})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (_, _, v) = call(&app, &p, "GET", "/2019-09-30/functions/f/concurrency", None).await;
    assert_eq!(v["ReservedConcurrentExecutions"], 3);
    assert_eq!(
        p.resolve("f", None)
            .await
            .unwrap()
            .config
            .scaling
            .max_instances,
        3
    );
    let (_, _, v) = call(&app, &p, "GET", "/2021-10-31/functions/f/url", None).await;
    assert_eq!(v["AuthType"], "AWS_IAM");
    let (s, _, v) = call(
        &app,
        &p,
        "POST",
        "/2021-10-31/functions/f/url",
        Some(json!({"AuthType": "NONE"})),
    )
    .await;
    assert_eq!(
        (s, v["AuthType"].clone()),
        (StatusCode::CREATED, json!("NONE"))
    );
    assert_eq!(
        p.get("f").await.unwrap().url_auth,
        updraft_core::UrlAuth::Public
    );
    let cors =
        json!({"AllowOrigins": ["https://a.example"], "AllowMethods": ["GET"], "MaxAge": 60});
    let (s, _, v) = call(
        &app,
        &p,
        "PUT",
        "/2021-10-31/functions/f/url",
        Some(json!({"Cors": cors})),
    )
    .await;
    assert_eq!((s, v["Cors"].clone()), (StatusCode::OK, cors.clone()));
    let (_, _, v) = call(&app, &p, "GET", "/2021-10-31/functions/f/url", None).await;
    assert_eq!(v["Cors"], cors);
    let applied = p.resolve("f", None).await.unwrap().config.cors.clone();
    assert_eq!(applied.and_then(|c| c.max_age), Some(60));
    for (bad, says) in [
        (json!({"MaxAge": 86401}), "Cors.MaxAge"),
        (json!({"AllowMethods": ["FETCH"]}), "Cors.AllowMethods"),
        (json!({"AllowOrigin": ["*"]}), "AllowOrigin"),
    ] {
        let (s, _, v) = call(
            &app,
            &p,
            "PUT",
            "/2021-10-31/functions/f/url",
            Some(json!({"Cors": bad})),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert!(v.to_string().contains(says), "{v}");
    }
    let (s, _, _) = call(&app, &p, "DELETE", "/2021-10-31/functions/f/url", None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(p.resolve("f", None).await.unwrap().config.cors, None);
    assert_eq!(
        p.get("f").await.unwrap().url_auth,
        updraft_core::UrlAuth::Private
    );

    // Invoking the alias runs one of its versions (both echo the event).
    let c = p.credentials();
    let req = Request::post("/2015-03-31/functions/f/invocations?Qualifier=live")
        .header(
            "authorization",
            format!("Bearer {}:{}", c.access_key_id, c.secret_access_key),
        )
        .body(Body::from(r#"{"k":1}"#))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().get("x-amz-function-error").is_none());
    let executed = resp.headers()["x-amz-executed-version"].to_str().unwrap();
    assert!(["1", "2"].contains(&executed), "{executed}");
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&bytes).unwrap(),
        json!({"k": 1})
    );
    // The ARN an invocation reports is the function as the caller named it
    // (an alias's invocations share the spec cache with no version's).
    let arn = "arn:aws:lambda:us-east-1:000000000000:function:f";
    for (q, shown) in [
        (Some("1"), format!("{arn}:1")),
        (Some("live"), format!("{arn}:live")),
        (Some("$LATEST"), format!("{arn}:$LATEST")),
        (None, arn.to_string()),
    ] {
        assert_eq!(p.resolve("f", q).await.unwrap().invoked_arn, shown);
    }
    // Over the synchronous limit: refused before any instance.
    let big = "x".repeat(6 * 1024 * 1024 + 1);
    let (s, kind, _) = call(
        &app,
        &p,
        "POST",
        "/2015-03-31/functions/f/invocations",
        Some(json!(big)),
    )
    .await;
    assert_eq!(
        (s, kind.as_deref()),
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            Some("RequestEntityTooLargeException")
        )
    );

    let (s, _, _) = call(&app, &p, "DELETE", "/2015-03-31/functions/f", None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, _, v) = call(&app, &p, "GET", "/2015-03-31/functions", None).await;
    assert_eq!(v["Functions"], json!([]));
    p.shutdown(std::time::Duration::from_secs(1)).await;
}

/// Every operation of botocore's Lambda model is either routed or refused in
/// Lambda's shape with an error it declares; any other request in Lambda's
/// path space gets that shape too (never axum's bare 404 or 405).
#[tokio::test]
async fn every_request_in_lambdas_path_space_gets_lambdas_shape() {
    let dir = tempfile::tempdir().unwrap();
    let p = platform(dir.path()).await;
    let app = crate::router(p.clone());
    let mut refused = Vec::new();
    for op in super::operations::OPERATIONS {
        let path: Vec<&str> = op
            .path
            .split('/')
            .map(|s| if s.starts_with('{') { "x" } else { s })
            .collect();
        let mut uri = path.join("/");
        if let Some((k, v)) = op.query {
            uri = format!("{uri}?{k}={v}");
        }
        let (s, kind, v) = call(&app, &p, op.method, &uri, None).await;
        assert!(s.is_success() || kind.is_some(), "{op:?}: {s} {v}");
        let message = v["message"].as_str().unwrap_or_default();
        if message.starts_with(&format!(
            "{}: Updraft does not implement this Lambda operation yet",
            op.name
        )) {
            let expected = match op.refusal {
                super::fallback::Refusal::InvalidParameterValue => "InvalidParameterValueException",
                super::fallback::Refusal::InvalidRequestContent => "InvalidRequestContentException",
            };
            assert_eq!(
                (s, kind.as_deref()),
                (StatusCode::BAD_REQUEST, Some(expected))
            );
            assert_eq!(v["Type"], "User");
            refused.push(op.name);
        }
    }
    for routed in [
        "ListFunctions",
        "Invoke",
        "ListTags",
        "TagResource",
        "UntagResource",
        "GetAccountSettings",
        "GetFunctionEventInvokeConfig",
        "ListEventSourceMappings",
    ] {
        assert!(!refused.contains(&routed), "{routed} was refused");
    }
    for unimplemented in [
        "ListLayers",
        "GetLayerVersionByArn",
        "AddPermission",
        "GetPolicy",
        "ListFunctionUrlConfigs",
        "ListProvisionedConcurrencyConfigs",
        "GetFunctionCodeSigningConfig",
        "ListCodeSigningConfigs",
        "GetRuntimeManagementConfig",
        "GetFunctionRecursionConfig",
        "InvokeAsync",
        "InvokeWithResponseStream",
    ] {
        assert!(
            refused.contains(&unimplemented),
            "{unimplemented} was not refused"
        );
    }
    for (method, uri) in [
        ("GET", "/2018-10-31"),
        ("GET", "/2015-03-31/nothing/here"),
        ("PATCH", "/2015-03-31/functions"),
        ("GET", "/2015-03-31/functions/x/invocations"),
        ("DELETE", "/2016-08-19/account-settings/"),
        ("PUT", "/2019-09-25/functions/x/event-invoke-config/list"),
    ] {
        let (s, kind, v) = call(&app, &p, method, uri, None).await;
        assert_eq!(
            (s, kind.as_deref()),
            (
                StatusCode::BAD_REQUEST,
                Some("InvalidParameterValueException")
            ),
            "{method} {uri}: {v}"
        );
        let want = format!("{method} {uri} is not an operation of the Lambda API");
        assert!(v["message"].as_str().unwrap().starts_with(&want), "{v}");
    }
    p.shutdown(std::time::Duration::from_secs(1)).await;
}
