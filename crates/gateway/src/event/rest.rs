//! Payload format 1.0: the Lambda proxy event of an Amazon API Gateway REST
//! API, and the answer it reads (routes with `payload = "1.0"`).
//!
//! Request event, as REST APIs build it:
//! * `resource` is the route's path template (`/api/{proxy+}`), `path` the
//!   request's path, `httpMethod` its method;
//! * `headers` and `queryStringParameters` hold the *last* value of a repeated
//!   name, `multiValueHeaders` and `multiValueQueryStringParameters` all of
//!   them in order; `cookie` stays a header; query values are decoded;
//! * an absent map (no query, no path parameters, `stageVariables` always)
//!   is `null`, not omitted;
//! * the body travels as in payload 2.0 (text, or base64 with
//!   `isBase64Encoded`), `null` when empty.
//!
//! Answer, as REST APIs read it: a JSON object of only `statusCode`, `headers`,
//! `multiValueHeaders`, `body` (a string) and `isBase64Encoded`. Anything else
//! (a bare string, another key, a non-string body, no `statusCode`) is a
//! malformed proxy response, which API Gateway answers with 502: there is no
//! payload 2.0 inference. `headers` and `multiValueHeaders` merge, a name and
//! value given in both counting once; without a `content-type` the reply is
//! `application/json`.

use std::collections::BTreeMap;

use bytes::Bytes;
use http::{HeaderMap, Method};
use serde::Serialize;
use serde_json::Value;

use super::reply::{body, default_content_type, header_entries, is_base64, kind, status_code};
use super::{clf_time, encode_body, user_agent, EventContext, HttpReply};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RestEvent<'a> {
    resource: &'a str,
    path: &'a str,
    http_method: &'a str,
    headers: Option<BTreeMap<&'a str, String>>,
    multi_value_headers: Option<BTreeMap<&'a str, Vec<String>>>,
    query_string_parameters: Option<BTreeMap<String, String>>,
    multi_value_query_string_parameters: Option<BTreeMap<String, Vec<String>>>,
    path_parameters: Option<&'a BTreeMap<String, String>>,
    stage_variables: Option<()>,
    request_context: RestContext<'a>,
    body: Option<String>,
    is_base64_encoded: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RestContext<'a> {
    account_id: &'static str,
    api_id: &'static str,
    domain_name: &'a str,
    domain_prefix: &'a str,
    extended_request_id: &'a str,
    http_method: &'a str,
    identity: Identity<'a>,
    path: &'a str,
    protocol: &'static str,
    request_id: &'a str,
    request_time: String,
    request_time_epoch: i64,
    resource_id: Option<()>,
    resource_path: &'a str,
    stage: &'static str,
}

/// The caller as REST APIs describe it; only the address and the user agent
/// are known without an authorizer.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Identity<'a> {
    access_key: Option<()>,
    account_id: Option<()>,
    caller: Option<()>,
    cognito_authentication_provider: Option<()>,
    cognito_authentication_type: Option<()>,
    cognito_identity_id: Option<()>,
    cognito_identity_pool_id: Option<()>,
    principal_org_id: Option<()>,
    source_ip: &'a str,
    user: Option<()>,
    user_agent: String,
    user_arn: Option<()>,
}

/// Builds the payload format 1.0 (REST API) event for a request, as JSON bytes.
pub fn rest_event(
    method: &Method,
    path: &str,
    raw_query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
    ctx: &EventContext,
) -> Vec<u8> {
    let mut single = BTreeMap::new();
    let mut multi = BTreeMap::new();
    for name in headers.keys() {
        let values: Vec<String> = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        if let Some(last) = values.last() {
            single.insert(name.as_str(), last.clone());
        }
        multi.insert(name.as_str(), values);
    }
    let mut query_single = BTreeMap::new();
    let mut query_multi: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, value) in form_urlencoded::parse(raw_query.unwrap_or("").as_bytes()) {
        query_single.insert(key.to_string(), value.to_string());
        query_multi
            .entry(key.into_owned())
            .or_default()
            .push(value.into_owned());
    }
    let (body, is_base64_encoded) = encode_body(headers, body);
    let event = RestEvent {
        resource: ctx.resource,
        path,
        http_method: method.as_str(),
        headers: (!single.is_empty()).then_some(single),
        multi_value_headers: (!multi.is_empty()).then_some(multi),
        query_string_parameters: (!query_single.is_empty()).then_some(query_single),
        multi_value_query_string_parameters: (!query_multi.is_empty()).then_some(query_multi),
        path_parameters: ctx.path_parameters.filter(|p| !p.is_empty()),
        stage_variables: None,
        request_context: RestContext {
            account_id: "000000000000",
            api_id: "updraft",
            domain_name: ctx.domain_name,
            domain_prefix: ctx.domain_name.split('.').next().unwrap_or_default(),
            extended_request_id: ctx.request_id,
            http_method: method.as_str(),
            identity: Identity {
                access_key: None,
                account_id: None,
                caller: None,
                cognito_authentication_provider: None,
                cognito_authentication_type: None,
                cognito_identity_id: None,
                cognito_identity_pool_id: None,
                principal_org_id: None,
                source_ip: ctx.source_ip,
                user: None,
                user_agent: user_agent(headers),
                user_arn: None,
            },
            path,
            protocol: "HTTP/1.1",
            request_id: ctx.request_id,
            request_time: clf_time(ctx.time_ms),
            request_time_epoch: ctx.time_ms,
            resource_id: None,
            resource_path: ctx.resource,
            stage: "$default",
        },
        body,
        is_base64_encoded,
    };
    serde_json::to_vec(&event).expect("an event of strings always serializes")
}

/// The keys a REST API's proxy answer may have.
const ANSWER_KEYS: [&str; 5] = [
    "statusCode",
    "headers",
    "multiValueHeaders",
    "body",
    "isBase64Encoded",
];

/// Maps a function's payload 1.0 answer to the HTTP reply, as a REST API
/// does; the error says why the answer is a malformed proxy response.
pub fn reply_from_rest(result: &[u8]) -> Result<HttpReply, String> {
    let value: Value = serde_json::from_slice(result).map_err(|e| {
        format!("the function's response is not valid JSON ({e}); a payload 1.0 route needs {{\"statusCode\": …, \"body\": \"…\"}}")
    })?;
    let Value::Object(object) = &value else {
        return Err(format!(
            "a payload 1.0 route needs an object with \"statusCode\", got {}",
            kind(&value)
        ));
    };
    if let Some(other) = object.keys().find(|k| !ANSWER_KEYS.contains(&k.as_str())) {
        return Err(format!(
            "{other:?} is not a key of a payload 1.0 response; expected only {}",
            ANSWER_KEYS.join(", ")
        ));
    }
    let Some(code) = object.get("statusCode") else {
        return Err("a payload 1.0 response needs \"statusCode\"".into());
    };
    let status = status_code(code)?;
    let mut headers = HeaderMap::new();
    let multi = header_entries(object, "multiValueHeaders")?;
    for (name, value) in header_entries(object, "headers")? {
        let repeated = multi.iter().any(|(n, v)| *n == name && *v == value);
        if !repeated {
            headers.append(name, value);
        }
    }
    for (name, value) in multi {
        headers.append(name, value);
    }
    default_content_type(status, &mut headers);
    let base64 = is_base64(object)?;
    let body: Bytes = body(object, base64)?;
    Ok(HttpReply {
        status,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{CONTENT_TYPE, SET_COOKIE};
    use http::StatusCode;
    use serde_json::json;

    fn ctx<'a>(params: Option<&'a BTreeMap<String, String>>) -> EventContext<'a> {
        EventContext {
            request_id: "req-1",
            route_key: "ANY /api/{proxy+}",
            resource: "/api/{proxy+}",
            path_parameters: params,
            source_ip: "203.0.113.9",
            domain_name: "api.example.com",
            time_ms: 1_795_457_809_123,
        }
    }

    fn event(
        path: &str,
        query: Option<&str>,
        headers: &[(&str, &str)],
        body: &[u8],
        ctx: &EventContext,
    ) -> Value {
        let map = super::super::header_map(headers);
        serde_json::from_slice(&rest_event(&Method::POST, path, query, &map, body, ctx)).unwrap()
    }

    #[test]
    fn rest_event_shape() {
        let params = BTreeMap::from([("proxy".to_string(), "pets/7".to_string())]);
        let e = event(
            "/api/pets/7",
            Some("a=1&b=x%20y&a=2"),
            &[
                ("user-agent", "curl/8"),
                ("x-multi", "1"),
                ("x-multi", "2"),
                ("cookie", "s=1"),
                ("content-type", "application/json"),
            ],
            br#"{"k":1}"#,
            &ctx(Some(&params)),
        );
        let expected = json!({
            "resource": "/api/{proxy+}",
            "path": "/api/pets/7",
            "httpMethod": "POST",
            "headers": {"user-agent": "curl/8", "x-multi": "2", "cookie": "s=1", "content-type": "application/json"},
            "multiValueHeaders": {"user-agent": ["curl/8"], "x-multi": ["1", "2"], "cookie": ["s=1"], "content-type": ["application/json"]},
            "queryStringParameters": {"a": "2", "b": "x y"},
            "multiValueQueryStringParameters": {"a": ["1", "2"], "b": ["x y"]},
            "pathParameters": {"proxy": "pets/7"},
            "stageVariables": null,
            "requestContext": {
                "accountId": "000000000000",
                "apiId": "updraft",
                "domainName": "api.example.com",
                "domainPrefix": "api",
                "extendedRequestId": "req-1",
                "httpMethod": "POST",
                "identity": {
                    "accessKey": null, "accountId": null, "caller": null,
                    "cognitoAuthenticationProvider": null, "cognitoAuthenticationType": null,
                    "cognitoIdentityId": null, "cognitoIdentityPoolId": null,
                    "principalOrgId": null, "sourceIp": "203.0.113.9", "user": null,
                    "userAgent": "curl/8", "userArn": null
                },
                "path": "/api/pets/7",
                "protocol": "HTTP/1.1",
                "requestId": "req-1",
                "requestTime": "23/Nov/2026:18:16:49 +0000",
                "requestTimeEpoch": 1_795_457_809_123i64,
                "resourceId": null,
                "resourcePath": "/api/{proxy+}",
                "stage": "$default"
            },
            "body": "{\"k\":1}",
            "isBase64Encoded": false
        });
        assert_eq!(e, expected);
    }

    #[test]
    fn absent_maps_are_null_and_binary_is_base64() {
        let e = event("/api/x", None, &[], b"\xff\x00", &ctx(None));
        for key in [
            "headers",
            "multiValueHeaders",
            "queryStringParameters",
            "multiValueQueryStringParameters",
            "pathParameters",
            "stageVariables",
        ] {
            assert!(e[key].is_null(), "{key}: {}", e[key]);
            assert!(e.as_object().unwrap().contains_key(key), "{key} is omitted");
        }
        assert_eq!(e["body"], "/wA=");
        assert_eq!(e["isBase64Encoded"], true);
        let e = event("/api/x", Some(""), &[], b"", &ctx(None));
        assert!(e["body"].is_null());
        assert_eq!(e["isBase64Encoded"], false);
    }

    #[test]
    fn answer_headers_merge_and_multi_values_survive() {
        let reply = reply_from_rest(
            br#"{
                "statusCode": 201,
                "headers": {"X-One": "1", "Set-Cookie": "a=1"},
                "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"], "x-n": [3]},
                "body": "made",
                "isBase64Encoded": false
            }"#,
        )
        .unwrap();
        assert_eq!(reply.status, StatusCode::CREATED);
        let cookies: Vec<_> = reply.headers.get_all(SET_COOKIE).iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert_eq!(reply.headers["x-one"], "1");
        assert_eq!(reply.headers["x-n"], "3");
        assert_eq!(reply.headers[CONTENT_TYPE], "application/json");
        assert_eq!(reply.body, "made");
        let reply =
            reply_from_rest(br#"{"statusCode": 200, "body": "aGk=", "isBase64Encoded": true}"#)
                .unwrap();
        assert_eq!(reply.body, "hi");
        let reply = reply_from_rest(br#"{"statusCode": 204}"#).unwrap();
        assert!(!reply.headers.contains_key(CONTENT_TYPE));
        assert!(reply.body.is_empty());
    }

    #[test]
    fn no_payload_2_inference_in_a_rest_answer() {
        for (bad, says) in [
            (r#""Hello""#, "an object"),
            (r#"{"message": "hi"}"#, "\"message\""),
            (r#"{"body": "hi"}"#, "statusCode"),
            (r#"{"statusCode": 200, "cookies": ["a=1"]}"#, "\"cookies\""),
            (
                r#"{"statusCode": 200, "body": {"a": 1}}"#,
                "\"body\" must be a string",
            ),
            (
                r#"{"statusCode": 200, "headers": {"x": ["a"]}}"#,
                "must be a string",
            ),
            (r#"{"statusCode": 700}"#, "statusCode"),
            ("not json", "not valid JSON"),
        ] {
            let err = reply_from_rest(bad.as_bytes()).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
