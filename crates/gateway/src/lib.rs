//! HTTP ingress into functions: every function's own URL (`/fn/{name}/…`,
//! the prefix stripped, with its [`cors`] settings) and the routes of
//! manifests' `http` triggers. A request becomes an API Gateway event
//! ([`event`]: payload 2.0, or 1.0 on routes that ask for it) with the
//! [`forwarded`] headers; the result becomes the HTTP response.

mod cors;
pub mod event;
mod executor;
mod forwarded;
#[cfg(test)]
mod router_tests;
pub mod routes;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use updraft_core::{new_request_id, ErrorKind, HttpResponse, Outcome, PayloadFormat, UrlAuth};
use updraft_platform::{Platform, PlatformError};

/// Largest request body a function takes (Lambda's synchronous limit).
pub const MAX_REQUEST_BYTES: usize = updraft_core::limits::SYNC_PAYLOAD_BYTES;

#[derive(Clone)]
struct Gateway {
    platform: Platform,
    routes: Arc<Mutex<(u64, Arc<routes::RouteTable>)>>,
    edge: Arc<forwarded::Edge>,
}

impl Gateway {
    /// The route table, rebuilt only when the platform's routes changed.
    fn route_table(&self) -> Arc<routes::RouteTable> {
        let (generation, list) = self.platform.routes();
        let mut cur = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        if cur.0 != generation {
            *cur = (
                generation,
                Arc::new(routes::RouteTable::new(list.as_ref().clone())),
            );
        }
        cur.1.clone()
    }
}

/// The gateway's router: function URLs, plus manifest routes as the fallback.
pub fn router(platform: Platform) -> Router {
    let gw = Gateway {
        edge: Arc::new(forwarded::Edge::of_url(platform.public_url())),
        platform,
        routes: Arc::new(Mutex::new((
            u64::MAX,
            Arc::new(routes::RouteTable::new(vec![])),
        ))),
    };
    Router::new()
        .route("/fn/{name}", any(function_url))
        .route("/fn/{name}/", any(function_url))
        .route("/fn/{name}/{*rest}", any(function_url))
        .fallback(manifest_route)
        .with_state(gw)
}

/// An error as the gateway answers it: `{"message", "requestId"}`, no internals.
fn error_response(status: StatusCode, message: &str, request_id: &str) -> Response {
    let body = serde_json::json!({ "message": message, "requestId": request_id });
    let mut resp = (status, axum::Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(request_id) {
        resp.headers_mut().insert("x-amzn-requestid", v);
    }
    resp
}

fn platform_error(e: &PlatformError, request_id: &str) -> Response {
    let status = e.status();
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    error_response(status, &e.public_message(), request_id)
}

struct Incoming {
    method: Method,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
    source_ip: String,
}

async fn read(req: Request) -> Result<Incoming, Response> {
    let source_ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "127.0.0.1".into());
    let (parts, body) = req.into_parts();
    let body = read_limited(body, MAX_REQUEST_BYTES).await.map_err(|_| {
        error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("request body is over the {MAX_REQUEST_BYTES}-byte limit of a synchronous invocation"),
            &new_request_id(),
        )
    })?;
    Ok(Incoming {
        method: parts.method,
        query: parts.uri.query().map(str::to_string),
        headers: parts.headers,
        body,
        source_ip,
    })
}

/// Reads a body up to `limit`; past it, reads and discards the rest (up to a
/// bound) so the client gets to see the 413 instead of a reset connection.
async fn read_limited(body: Body, limit: usize) -> Result<Bytes, ()> {
    use http_body_util::BodyExt;
    const DISCARD_UP_TO: usize = 64 * 1024 * 1024;
    let mut body = body;
    let mut buf = bytes::BytesMut::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { return Err(()) };
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen <= limit {
                buf.extend_from_slice(&data);
            } else if seen > DISCARD_UP_TO {
                return Err(());
            }
        }
    }
    if seen > limit {
        Err(())
    } else {
        Ok(buf.freeze())
    }
}

async fn function_url(State(gw): State<Gateway>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let rest = path.strip_prefix("/fn/").unwrap_or("");
    let (name, raw_path) = match rest.find('/') {
        Some(i) => (rest[..i].to_string(), rest[i..].to_string()),
        None => (rest.to_string(), "/".to_string()),
    };
    let spec = match gw.platform.resolve(&name, None).await {
        Ok(s) => s,
        Err(e) => return platform_error(&e, &new_request_id()),
    };
    let Some(cors) = spec.config.cors.clone() else {
        return function_url_call(&gw, spec, name, raw_path, req).await;
    };
    // A preflight is the platform's to answer, before any credentials:
    // browsers send none with it.
    if cors::is_preflight(req.method(), req.headers()) {
        let mut resp = cors::preflight(&cors, req.headers());
        if let Ok(v) = HeaderValue::from_str(&new_request_id()) {
            resp.headers_mut().insert("x-amzn-requestid", v);
        }
        return resp;
    }
    let origin = req.headers().get(header::ORIGIN).cloned();
    let mut resp = function_url_call(&gw, spec, name, raw_path, req).await;
    cors::decorate(&cors, origin.as_ref(), resp.headers_mut());
    resp
}

/// A call of a function's URL: the credentials of a private one, then the function.
async fn function_url_call(
    gw: &Gateway,
    spec: Arc<updraft_platform::InstanceSpec>,
    name: String,
    raw_path: String,
    req: Request,
) -> Response {
    let private = spec.config.url == UrlAuth::Private;
    // A private URL's credentials are checked from the head: a stranger's
    // body is never read.
    let pending = if private {
        let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let verdict = gw.platform.verifier().check_head(
            req.method().as_str(),
            pq,
            req.headers(),
            std::time::SystemTime::now(),
        );
        match verdict {
            // A function's own credentials open another function's private
            // URL only when granted, as IAM's lambda:InvokeFunctionUrl.
            Ok(pending) => match pending.caller() {
                updraft_auth::Caller::Function(claims)
                    if !updraft_auth::permits(
                        &claims.permissions,
                        "lambda:InvokeFunctionUrl",
                        &name,
                    ) =>
                {
                    return error_response(
                        StatusCode::FORBIDDEN,
                        &format!(
                            "function {} is not authorized to perform: lambda:InvokeFunctionUrl \
                             on resource: {name} (grant it with permissions = \
                             [\"lambda:InvokeFunctionUrl:{name}\"])",
                            claims.function
                        ),
                        &new_request_id(),
                    );
                }
                _ => Some(pending),
            },
            Err(e) => return refused(&name, e),
        }
    } else {
        None
    };
    let mut inc = match read(req).await {
        Ok(i) => i,
        Err(resp) => return resp,
    };
    if let Some(pending) = pending {
        if let Err(e) = pending.finish(&inc.body) {
            return refused(&name, e);
        }
        // The credentials were Updraft's, not the function's: they stop here
        // (a caller function's session token with them).
        inc.headers.remove(header::AUTHORIZATION);
        inc.headers.remove("x-amz-security-token");
    }
    executor::run(gw, spec, inc, executor::Target::function_url(&raw_path)).await
}

/// 401/403 (429 when too busy to check) for a private function URL, naming the setting.
fn refused(name: &str, e: updraft_auth::AuthError) -> Response {
    let e = PlatformError::from(e);
    let hint = format!(
        "function {name} is private: {} (or set url = \"public\" in its updraft.toml to open its URL to anyone)",
        e.public_message()
    );
    let status = match e {
        PlatformError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        PlatformError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::FORBIDDEN,
    };
    error_response(status, &hint, &new_request_id())
}

async fn manifest_route(State(gw): State<Gateway>, req: Request) -> Response {
    let table = gw.route_table();
    let path = req.uri().path().to_string();
    match table.lookup(req.method().as_str(), &path) {
        routes::RouteLookup::Found {
            function,
            route_key,
            resource,
            payload,
            path_parameters,
        } => {
            let inc = match read(req).await {
                Ok(i) => i,
                Err(resp) => return resp,
            };
            let spec = match gw.platform.resolve(&function, None).await {
                Ok(s) => s,
                Err(e) => return platform_error(&e, &new_request_id()),
            };
            let target = executor::Target {
                raw_path: &path,
                route_key: &route_key,
                resource: &resource,
                payload,
                path_parameters: Some(&path_parameters),
            };
            executor::run(&gw, spec, inc, target).await
        }
        routes::RouteLookup::MethodNotAllowed { allowed } => {
            let mut resp = error_response(
                StatusCode::METHOD_NOT_ALLOWED,
                &format!(
                    "{} is not allowed on {path}; allowed: {}",
                    req.method(),
                    allowed.join(", ")
                ),
                &new_request_id(),
            );
            if let Ok(v) = HeaderValue::from_str(&allowed.join(", ")) {
                resp.headers_mut().insert(header::ALLOW, v);
            }
            resp
        }
        routes::RouteLookup::NotFound => {
            error_response(StatusCode::NOT_FOUND, "Not Found", &new_request_id())
        }
    }
}

/// The HTTP response for a finished invocation (or one that could not run);
/// `format` says how to read a function's answer.
fn respond(
    function: &str,
    result: Result<updraft_core::InvokeResult, PlatformError>,
    request_id: &str,
    format: PayloadFormat,
) -> Response {
    let request_id = request_id.to_string();
    let result = match result {
        Ok(r) => r,
        Err(e) => return platform_error(&e, &request_id),
    };
    if let Some(http) = result.http {
        return http_response(http, &request_id);
    }
    let mut resp = match result.outcome {
        Outcome::Success(bytes) => match read_answer(format, &bytes) {
            Ok(reply) => {
                let mut resp = Response::new(Body::from(reply.body));
                *resp.status_mut() = reply.status;
                *resp.headers_mut() = reply.headers;
                resp
            }
            Err(why) => {
                tracing::warn!(%function, %why, "malformed function response");
                error_response(
                    StatusCode::BAD_GATEWAY,
                    &format!("function {function} returned a malformed response: {why}"),
                    &request_id,
                )
            }
        },
        Outcome::Error {
            kind: ErrorKind::Timeout,
            ..
        } => error_response(
            StatusCode::GATEWAY_TIMEOUT,
            &format!("function {function} timed out"),
            &request_id,
        ),
        Outcome::Error { error_type, .. } => error_response(
            StatusCode::BAD_GATEWAY,
            &format!("function {function} failed: {error_type}"),
            &request_id,
        ),
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-amzn-requestid", v);
    }
    resp
}

fn read_answer(format: PayloadFormat, bytes: &[u8]) -> Result<event::HttpReply, String> {
    match format {
        PayloadFormat::V1 => event::reply_from_rest(bytes),
        PayloadFormat::V2 => event::reply_from_result(bytes),
    }
}

/// A function's own HTTP response, passed on as it is (framing headers
/// aside: [`event::FRAMING_HEADERS`]), with the request id.
fn http_response(http: HttpResponse, request_id: &str) -> Response {
    let mut resp = Response::new(Body::from(http.body));
    *resp.status_mut() = http.status;
    let mut headers = http.headers;
    for name in event::FRAMING_HEADERS {
        headers.remove(name);
    }
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", v);
    }
    *resp.headers_mut() = headers;
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_components_framing_headers_are_dropped() {
        let mut headers = HeaderMap::new();
        for n in event::FRAMING_HEADERS {
            headers.append(n, HeaderValue::from_static("0"));
        }
        headers.insert("x-kept", HeaderValue::from_static("1"));
        let resp = http_response(
            HttpResponse {
                status: StatusCode::OK,
                headers,
                body: b"HTTP/1.1 200 OK\r\n\r\n".to_vec(),
            },
            "req-1",
        );
        for name in event::FRAMING_HEADERS {
            assert!(!resp.headers().contains_key(name), "{name} was copied");
        }
        assert_eq!(resp.headers()["x-kept"], "1");
        assert_eq!(resp.headers()["x-amzn-requestid"], "req-1");
    }
}
