//! How a request reaches a function, one executor per runtime kind (as
//! Spin's executors): a function that takes HTTP itself (wasm) gets the
//! request as it came, in `http`'s own types, and its response goes back as
//! it is; a function that takes events (python3, nodejs, provided) gets API
//! Gateway's payload 2.0 event and answers in that event's response shape.

use crate::{error_response, event, respond, Gateway, Incoming};
use axum::http::{header, StatusCode};
use axum::response::Response;
use std::collections::BTreeMap;
use std::sync::Arc;
use updraft_core::{new_request_id, now_ms, HttpRequest, RuntimeKind, TriggerKind};

/// The executor of a runtime kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Executor {
    /// The request as it came (wasm components, `wasi:http/proxy`).
    Http,
    /// API Gateway's payload 2.0 event (process runtimes).
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

pub(crate) async fn run(
    gw: &Gateway,
    spec: Arc<updraft_platform::InstanceSpec>,
    inc: Incoming,
    raw_path: &str,
    route_key: &str,
    path_parameters: Option<&BTreeMap<String, String>>,
) -> Response {
    let request_id = new_request_id();
    match Executor::of(spec.config.kind()) {
        Executor::Http => run_http(gw, spec, inc, raw_path, request_id).await,
        Executor::Event => {
            let route = Route {
                raw_path,
                route_key,
                path_parameters,
            };
            run_event(gw, spec, inc, route, request_id).await
        }
    }
}

/// Where a request was routed: the path the function sees and the route.
struct Route<'a> {
    raw_path: &'a str,
    route_key: &'a str,
    path_parameters: Option<&'a BTreeMap<String, String>>,
}

/// A request into a function that takes events (process runtimes): API
/// Gateway's payload 2.0 event, answered in its response shape.
async fn run_event(
    gw: &Gateway,
    spec: Arc<updraft_platform::InstanceSpec>,
    inc: Incoming,
    route: Route<'_>,
    request_id: String,
) -> Response {
    let Route {
        raw_path,
        route_key,
        path_parameters,
    } = route;
    let host = inc
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_string();
    let ctx = event::EventContext {
        request_id: &request_id,
        route_key,
        path_parameters,
        source_ip: &inc.source_ip,
        domain_name: &host,
        time_ms: now_ms(),
    };
    let payload = event::request_event(
        &inc.method,
        raw_path,
        inc.query.as_deref(),
        &inc.headers,
        &inc.body,
        &ctx,
    );
    let function = spec.function.clone();
    let result = gw
        .platform
        .invoke_spec(spec, TriggerKind::Http, request_id.clone(), payload, None)
        .await;
    respond(&function, result, &request_id)
}

/// A request into a function that takes HTTP itself (wasm): the request goes
/// as it came, the prefix stripped; the function's response comes back as it is.
async fn run_http(
    gw: &Gateway,
    spec: Arc<updraft_platform::InstanceSpec>,
    inc: Incoming,
    raw_path: &str,
    request_id: String,
) -> Response {
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
        .invoke_http(spec, request_id.clone(), http, inc.body.to_vec())
        .await;
    respond(&function, result, &request_id)
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
