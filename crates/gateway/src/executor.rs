//! How a request reaches a function, one executor per runtime kind (as
//! Spin's executors): a function that takes HTTP itself (wasm) gets the
//! request as it came, in `http`'s own types, and its response goes back as
//! it is; a function that takes events (python3, nodejs, provided) gets API
//! Gateway's event (payload 2.0, or 1.0 on a route that asks for it) and
//! answers in that event's response shape.

use crate::{error_response, event, respond, Gateway, Incoming};
use axum::http::{header, StatusCode};
use axum::response::Response;
use std::collections::BTreeMap;
use std::sync::Arc;
use updraft_core::{new_request_id, now_ms, HttpRequest, PayloadFormat, RuntimeKind};

/// The executor of a runtime kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Executor {
    /// The request as it came (wasm components, `wasi:http/proxy`).
    Http,
    /// API Gateway's payload 2.0 or 1.0 event (process runtimes).
    Event,
}

impl Executor {
    pub(crate) fn of(kind: RuntimeKind) -> Executor {
        match kind {
            RuntimeKind::Wasm => Executor::Http,
            RuntimeKind::Python3 | RuntimeKind::Nodejs | RuntimeKind::Provided => Executor::Event,
        }
    }
}

/// Where a request was routed: the path the function sees, the route, and
/// the payload format of its event.
pub(crate) struct Target<'a> {
    pub(crate) raw_path: &'a str,
    pub(crate) route_key: &'a str,
    /// The route's path template (payload 1.0's `resource`).
    pub(crate) resource: &'a str,
    pub(crate) payload: PayloadFormat,
    pub(crate) path_parameters: Option<&'a BTreeMap<String, String>>,
}

impl<'a> Target<'a> {
    /// A function URL: `$default`, payload 2.0, always.
    pub(crate) fn function_url(raw_path: &'a str) -> Target<'a> {
        Target {
            raw_path,
            route_key: "$default",
            resource: "/{proxy+}",
            payload: PayloadFormat::V2,
            path_parameters: None,
        }
    }
}

pub(crate) async fn run(
    gw: &Gateway,
    spec: Arc<updraft_platform::InstanceSpec>,
    inc: Incoming,
    target: Target<'_>,
) -> Response {
    let request_id = new_request_id();
    match Executor::of(spec.config.kind()) {
        Executor::Http => run_http(gw, spec, inc, target.raw_path, request_id).await,
        Executor::Event => run_event(gw, spec, inc, target, request_id).await,
    }
}

/// A request into a function that takes events (process runtimes): API
/// Gateway's event of the route's payload format, with the forwarded
/// headers, answered in that format's response shape.
async fn run_event(
    gw: &Gateway,
    spec: Arc<updraft_platform::InstanceSpec>,
    mut inc: Incoming,
    target: Target<'_>,
    request_id: String,
) -> Response {
    let trace = gw.edge.apply(&mut inc.headers, &inc.source_ip);
    let host = inc
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_string();
    let ctx = event::EventContext {
        request_id: &request_id,
        route_key: target.route_key,
        resource: target.resource,
        path_parameters: target.path_parameters,
        source_ip: &inc.source_ip,
        domain_name: &host,
        time_ms: now_ms(),
    };
    let build = match target.payload {
        PayloadFormat::V1 => event::rest_event,
        PayloadFormat::V2 => event::request_event,
    };
    let payload = build(
        &inc.method,
        target.raw_path,
        inc.query.as_deref(),
        &inc.headers,
        &inc.body,
        &ctx,
    );
    let function = spec.function.clone();
    let result = gw
        .platform
        .invoke_event(spec, request_id.clone(), payload, trace)
        .await;
    respond(&function, result, &request_id, target.payload)
}

/// A request into a function that takes HTTP itself (wasm): the request goes
/// as it came, the prefix stripped; the function's response comes back as it is.
async fn run_http(
    gw: &Gateway,
    spec: Arc<updraft_platform::InstanceSpec>,
    mut inc: Incoming,
    raw_path: &str,
    request_id: String,
) -> Response {
    let trace = crate::forwarded::traced(&mut inc.headers);
    let path_and_query = match &inc.query {
        Some(q) => format!("{raw_path}?{q}"),
        None => raw_path.to_string(),
    };
    let uri = match path_and_query.parse::<http::Uri>() {
        Ok(uri) => uri,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                &format!("the request path {path_and_query:?} is not a valid URI: {e}"),
                &request_id,
            )
        }
    };
    let http = HttpRequest {
        method: inc.method,
        uri,
        headers: inc.headers,
    };
    let function = spec.function.clone();
    let result = gw
        .platform
        .invoke_http(spec, request_id.clone(), http, inc.body.to_vec(), trace)
        .await;
    respond(&function, result, &request_id, PayloadFormat::V2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wasm_takes_http_and_process_runtimes_take_events() {
        assert_eq!(Executor::of(RuntimeKind::Wasm), Executor::Http);
        for kind in [
            RuntimeKind::Python3,
            RuntimeKind::Nodejs,
            RuntimeKind::Provided,
        ] {
            assert_eq!(Executor::of(kind), Executor::Event);
        }
    }
}
