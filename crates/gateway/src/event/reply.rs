//! The function's result → HTTP response mapping, by the Lambda function URL
//! rules (see the [module documentation](super)).

use base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT;
use base64::Engine as _;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE, SET_COOKIE};
use http::{HeaderMap, StatusCode};
use serde_json::{Map, Value};

use super::is_framing;

/// The HTTP response a function's result maps to.
#[derive(Clone, Debug)]
pub struct HttpReply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Maps a function's result to the HTTP reply, by the Lambda function URL rules.
/// The error says why the result is not a valid response.
pub fn reply_from_result(result: &[u8]) -> Result<HttpReply, String> {
    let value: Value = serde_json::from_slice(result).map_err(|e| {
        format!("the function's response is not valid JSON ({e}); return a JSON value or {{\"statusCode\": …, \"body\": …}}")
    })?;
    let Some(object) = value.as_object().filter(|o| o.contains_key("statusCode")) else {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return Ok(HttpReply {
            status: StatusCode::OK,
            headers,
            body: Bytes::copy_from_slice(result),
        });
    };

    let status = status_code(&object["statusCode"])?;
    let mut headers = HeaderMap::new();
    for field in ["headers", "multiValueHeaders"] {
        for (name, value) in header_entries(object, field)? {
            headers.append(name, value);
        }
    }
    match object.get("cookies") {
        None | Some(Value::Null) => {}
        Some(Value::Array(cookies)) => {
            for cookie in cookies {
                let Value::String(cookie) = cookie else {
                    return Err(format!(
                        "\"cookies\" must hold strings, got {}",
                        kind(cookie)
                    ));
                };
                headers.append(SET_COOKIE, header_value("set-cookie", cookie)?);
            }
        }
        Some(other) => {
            return Err(format!(
                "\"cookies\" must be an array of strings, got {}",
                kind(other)
            ))
        }
    }
    default_content_type(status, &mut headers);
    let base64 = is_base64(object)?;
    let body = match object.get("body") {
        Some(Value::String(_)) | None | Some(Value::Null) => body(object, base64)?,
        Some(_) if base64 => {
            return Err("\"body\" must be a base64 string when \"isBase64Encoded\" is true".into())
        }
        // A non-string body is sent as its JSON text.
        Some(other) => Bytes::from(other.to_string()),
    };
    Ok(HttpReply {
        status,
        headers,
        body,
    })
}

/// The headers of an answer's `headers` (one value a name; `null`: none) or
/// `multiValueHeaders` (an array of values or one; `null`: none), in order,
/// the [framing](super::FRAMING_HEADERS) ones left out.
pub(super) fn header_entries(
    object: &Map<String, Value>,
    field: &str,
) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    let map = match object.get(field) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(map)) => map,
        Some(other) => {
            return Err(format!(
                "\"{field}\" must be an object, got {}",
                kind(other)
            ))
        }
    };
    let multi = field == "multiValueHeaders";
    let mut out = Vec::with_capacity(map.len());
    for (name, values) in map {
        let values = match values {
            Value::Array(values) if multi => values.as_slice(),
            Value::Null if multi => continue,
            single => std::slice::from_ref(single),
        };
        let header = header_name(name)?;
        if is_framing(&header) {
            continue;
        }
        for value in values {
            if let Some(text) = scalar_text(value, field, name)? {
                out.push((header.clone(), header_value(name, &text)?));
            }
        }
    }
    Ok(out)
}

/// `application/json` unless the function chose a type, or the status has no
/// body to type (204 No Content, 304 Not Modified).
pub(super) fn default_content_type(status: StatusCode, headers: &mut HeaderMap) {
    let bodiless = matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED);
    if !bodiless && !headers.contains_key(CONTENT_TYPE) {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
}

/// The answer's `isBase64Encoded` (absent: false).
pub(super) fn is_base64(object: &Map<String, Value>) -> Result<bool, String> {
    match object.get("isBase64Encoded") {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
        Some(other) => Err(format!(
            "\"isBase64Encoded\" must be a boolean, got {other}"
        )),
    }
}

/// The answer's `body` when it is a string (base64-decoded if asked) or
/// absent; any other JSON value is an error.
pub(super) fn body(object: &Map<String, Value>, base64: bool) -> Result<Bytes, String> {
    match object.get("body") {
        None | Some(Value::Null) => Ok(Bytes::new()),
        Some(Value::String(text)) if base64 => STANDARD_PAD_INDIFFERENT
            .decode(text.as_bytes())
            .map(Bytes::from)
            .map_err(|e| {
                format!("\"body\" is not valid base64 although \"isBase64Encoded\" is true: {e}")
            }),
        Some(Value::String(text)) => Ok(Bytes::copy_from_slice(text.as_bytes())),
        Some(other) => Err(format!("\"body\" must be a string, got {}", kind(other))),
    }
}

pub(super) fn status_code(value: &Value) -> Result<StatusCode, String> {
    let code = match value {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                .map(|f| f as u64)
        }),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    code.filter(|c| (100..=599).contains(c))
        .and_then(|c| StatusCode::from_u16(c as u16).ok())
        .ok_or_else(|| {
            format!("\"statusCode\" must be an HTTP status from 100 to 599, got {value}")
        })
}

/// A header value as text: strings as they are, numbers and booleans written
/// out, `null` skipped; objects and arrays are an error.
pub(super) fn scalar_text(
    value: &Value,
    field: &str,
    name: &str,
) -> Result<Option<String>, String> {
    match value {
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Bool(b) => Ok(Some(b.to_string())),
        Value::Null => Ok(None),
        other => Err(format!(
            "\"{field}\".{name:?} must be a string, got {}",
            kind(other)
        )),
    }
}

pub(super) fn header_name(name: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("{name:?} is not a valid HTTP header name"))
}

pub(super) fn header_value(name: &str, value: &str) -> Result<HeaderValue, String> {
    HeaderValue::from_str(value)
        .map_err(|_| format!("the value of header {name:?} is not a valid HTTP header value"))
}

pub(super) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::super::FRAMING_HEADERS;
    use super::*;

    #[test]
    fn structured_reply() {
        let result = br#"{
            "statusCode": 201,
            "headers": {"Content-Type": "text/plain", "X-Count": 3, "X-Ok": true, "X-Null": null},
            "multiValueHeaders": {"x-multi": ["a", "b"]},
            "cookies": ["a=1; Path=/", "b=2; Max-Age=60"],
            "body": "created"
        }"#;
        let reply = reply_from_result(result).unwrap();
        assert_eq!(reply.status, StatusCode::CREATED);
        assert_eq!(reply.headers["content-type"], "text/plain");
        assert_eq!(reply.headers["x-count"], "3");
        assert_eq!(reply.headers["x-ok"], "true");
        assert!(!reply.headers.contains_key("x-null"));
        let multi: Vec<_> = reply.headers.get_all("x-multi").iter().collect();
        assert_eq!(multi, ["a", "b"]);
        let cookies: Vec<_> = reply.headers.get_all(SET_COOKIE).iter().collect();
        assert_eq!(cookies, ["a=1; Path=/", "b=2; Max-Age=60"]);
        assert_eq!(reply.body, "created");
    }

    #[test]
    fn framing_headers_from_a_function_are_dropped() {
        let result = br#"{
            "statusCode": 200,
            "headers": {"Content-Length": "0", "transfer-encoding": "chunked",
                        "Connection": "keep-alive", "keep-alive": "timeout=99",
                        "upgrade": "h2c", "te": "trailers", "trailer": "x-t",
                        "proxy-connection": "close", "x-kept": "1"},
            "multiValueHeaders": {"content-length": ["1", "2"], "Transfer-Encoding": ["chunked"],
                                  "connection": ["close"], "x-also": ["2"]},
            "body": "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nEVIL!"
        }"#;
        let reply = reply_from_result(result).unwrap();
        for name in FRAMING_HEADERS {
            assert!(!reply.headers.contains_key(name), "{name} was copied");
        }
        assert_eq!(reply.headers["x-kept"], "1");
        assert_eq!(reply.headers["x-also"], "2");
    }

    #[test]
    fn structured_reply_defaults() {
        let reply = reply_from_result(br#"{"statusCode": "404"}"#).unwrap();
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        assert_eq!(reply.headers[CONTENT_TYPE], "application/json");
        assert_eq!(reply.headers.len(), 1);
        assert!(reply.body.is_empty());
        let reply = reply_from_result(br#"{"statusCode": 200.0, "body": {"a": [1]}}"#).unwrap();
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body, r#"{"a":[1]}"#);
    }

    #[test]
    fn bodiless_statuses_get_no_content_type() {
        for status in ["204", "304"] {
            let reply =
                reply_from_result(format!(r#"{{"statusCode": {status}}}"#).as_bytes()).unwrap();
            assert_eq!(reply.status.as_str(), status);
            assert!(!reply.headers.contains_key(CONTENT_TYPE), "{status}");
            assert!(reply.body.is_empty());
        }
        // A type the function chose stays.
        let reply =
            reply_from_result(br#"{"statusCode": 204, "headers": {"content-type": "text/plain"}}"#)
                .unwrap();
        assert_eq!(reply.headers[CONTENT_TYPE], "text/plain");
    }

    #[test]
    fn plain_json_reply() {
        for result in [
            &br#"{"message": "hi"}"#[..],
            b"\"Hello, world!\"",
            b"[1, 2]",
            b"42",
            b"null",
        ] {
            let reply = reply_from_result(result).unwrap();
            assert_eq!(reply.status, StatusCode::OK);
            assert_eq!(reply.headers[CONTENT_TYPE], "application/json");
            assert_eq!(reply.body.as_ref(), result);
        }
    }

    #[test]
    fn malformed_replies_are_errors() {
        let err = reply_from_result(b"Hello").unwrap_err();
        assert!(err.contains("not valid JSON"), "{err}");
        assert!(reply_from_result(b"").is_err());
        for bad in [
            r#"{"statusCode": "abc"}"#,
            r#"{"statusCode": 99}"#,
            r#"{"statusCode": 600}"#,
            r#"{"statusCode": 200.5}"#,
            r#"{"statusCode": -200}"#,
            r#"{"statusCode": null}"#,
            r#"{"statusCode": true}"#,
        ] {
            let err = reply_from_result(bad.as_bytes()).unwrap_err();
            assert!(err.contains("statusCode"), "{bad}: {err}");
        }
        for bad in [
            r#"{"statusCode": 200, "headers": []}"#,
            r#"{"statusCode": 200, "headers": {"x": {"y": 1}}}"#,
            r#"{"statusCode": 200, "headers": {"bad name": "v"}}"#,
            r#"{"statusCode": 200, "headers": {"x": "line\nbreak"}}"#,
            r#"{"statusCode": 200, "cookies": "a=1"}"#,
            r#"{"statusCode": 200, "cookies": [1]}"#,
            r#"{"statusCode": 200, "body": "***", "isBase64Encoded": true}"#,
            r#"{"statusCode": 200, "body": "aGk=", "isBase64Encoded": 1}"#,
        ] {
            assert!(reply_from_result(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
