//! The AWS Lambda API subset (SPEC §4): Lambda's REST paths and JSON shapes,
//! so boto3, the AWS CLI and the other SDKs work against Updraft with an
//! endpoint URL. Requests are parsed here into calls on [`Platform`]; the
//! logic lives in `updraft-platform` (`lambda.rs`), errors leave through
//! [`ApiError`] (Lambda's error shape).

mod aliases;
pub(crate) mod fallback;
mod functions;
mod invoke;
mod logging;
mod mappings;
mod operations;
mod settings;
mod shapes;
mod tags;
#[cfg(test)]
mod tests;

use crate::ApiError;
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use axum::Router;
use std::collections::HashMap;
use updraft_core::{FunctionRef, Version};
use updraft_platform::{Platform, PlatformError};

type ApiResult = Result<axum::response::Response, ApiError>;

/// Every route of the subset, paths exactly as in botocore's service model
/// (`lambda/2015-03-31/service-2.json`), the EventInvokeConfig ones
/// (`lambda_events.rs`) included; every other request in Lambda's path space
/// gets Lambda's error shape ([`fallback`]).
pub fn router() -> Router<Platform> {
    let routes = Router::new()
        .route(
            "/2015-03-31/functions",
            get(functions::list).post(functions::create),
        )
        .route(
            "/2015-03-31/functions/",
            get(functions::list).post(functions::create),
        )
        .route(
            "/2015-03-31/functions/{name}",
            get(functions::get).delete(functions::delete),
        )
        .route(
            "/2015-03-31/functions/{name}/configuration",
            get(functions::get_configuration).put(functions::update_configuration),
        )
        .route(
            "/2015-03-31/functions/{name}/code",
            put(functions::update_code),
        )
        .route(
            "/2015-03-31/functions/{name}/versions",
            get(functions::list_versions).post(functions::publish_version),
        )
        .route(
            "/2015-03-31/functions/{name}/invocations",
            post(invoke::invoke),
        )
        .route(
            "/2015-03-31/functions/{name}/aliases",
            get(aliases::list).post(aliases::create),
        )
        .route(
            "/2015-03-31/functions/{name}/aliases/{alias}",
            get(aliases::get)
                .put(aliases::update)
                .delete(aliases::delete),
        )
        .route(
            "/2017-10-31/functions/{name}/concurrency",
            put(settings::put_concurrency).delete(settings::delete_concurrency),
        )
        .route(
            "/2019-09-30/functions/{name}/concurrency",
            get(settings::get_concurrency),
        )
        .route(
            "/2021-10-31/functions/{name}/url",
            post(settings::create_url)
                .get(settings::get_url)
                .put(settings::update_url)
                .delete(settings::delete_url),
        )
        .route(
            "/2015-03-31/event-source-mappings/",
            get(mappings::list).post(mappings::create),
        )
        .route(
            "/2015-03-31/event-source-mappings",
            get(mappings::list).post(mappings::create),
        )
        .route(
            "/2015-03-31/event-source-mappings/{uuid}",
            get(mappings::get)
                .put(mappings::update)
                .delete(mappings::delete),
        )
        .route(
            "/2017-03-31/tags/{resource}",
            get(tags::list).post(tags::tag).delete(tags::untag),
        )
        .route("/2016-08-19/account-settings", get(tags::account_settings))
        .route("/2016-08-19/account-settings/", get(tags::account_settings))
        .merge(crate::lambda_events::routes());
    fallback::cover(routes)
}

/// A function named in a path: a name, `name:qualifier`, a partial ARN
/// (`ACCOUNT:function:NAME[:Q]`) or a full ARN
/// (`arn:aws:lambda:REGION:ACCOUNT:function:NAME[:Q]`), with the `Qualifier`
/// query parameter merged in.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Target {
    pub name: String,
    pub qualifier: Option<String>,
}

impl Target {
    pub fn parse(raw: &str, query_qualifier: Option<&str>) -> Result<Target, PlatformError> {
        let FunctionRef { name, qualifier } = FunctionRef::parse("FunctionName", raw)?;
        let query_qualifier = query_qualifier.filter(|q| !q.is_empty());
        let qualifier = match (qualifier.as_deref(), query_qualifier) {
            (Some(a), Some(b)) if a != b => {
                return Err(PlatformError::InvalidParameter(format!(
                    "The derived qualifier from the function name ({a}) does not match the specified qualifier ({b})"
                )))
            }
            (Some(q), _) | (None, Some(q)) => Some(q.to_string()),
            (None, None) => None,
        };
        Ok(Target { name, qualifier })
    }

    /// For operations on the function as a whole (no qualifier allowed).
    pub fn parse_unqualified(raw: &str, query: &Query) -> Result<String, PlatformError> {
        let t = Target::parse(raw, query.get("Qualifier").map(String::as_str))?;
        if let Some(q) = t.qualifier {
            return Err(PlatformError::InvalidParameter(format!(
                "Qualifier: this operation applies to the whole function, not to {q:?}"
            )));
        }
        Ok(t.name)
    }
}

/// Query parameters, kept lenient: the SDKs add new ones over time.
pub(crate) type Query = HashMap<String, String>;

/// Parses a JSON request body; an empty body is `{}`.
pub(crate) fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, PlatformError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => PlatformError::InvalidParameter(e.to_string()),
        _ => PlatformError::InvalidRequestContent(format!(
            "Could not parse request body into json: {e}"
        )),
    })
}

/// `MaxItems` (1 to 10000, default 50) and `Marker` pagination over items in
/// a stable order; the marker is the key of the last item returned.
pub(crate) fn paginate<T>(
    items: Vec<T>,
    key: impl Fn(&T) -> String,
    query: &Query,
) -> Result<(Vec<T>, Option<String>), PlatformError> {
    let max = match query.get("MaxItems") {
        None => 50,
        Some(m) => m
            .parse::<usize>()
            .ok()
            .filter(|m| (1..=10_000).contains(m))
            .ok_or_else(|| {
                PlatformError::InvalidParameter(format!("MaxItems: expected 1 to 10000, got {m:?}"))
            })?,
    };
    let start = match query.get("Marker").filter(|m| !m.is_empty()) {
        None => 0,
        Some(m) => {
            items.iter().position(|i| key(i) == *m).ok_or_else(|| {
                PlatformError::InvalidParameter(format!(
                    "Marker: {m:?} is not a marker this listing returned"
                ))
            })? + 1
        }
    };
    let total = items.len();
    let page: Vec<T> = items.into_iter().skip(start).take(max).collect();
    let next = if start + page.len() < total {
        page.last().map(&key)
    } else {
        None
    };
    Ok((page, next))
}

/// A listing's page as Lambda answers it: `{KEY: [...], "NextMarker": …}`.
pub(crate) fn listing(key: &str, items: Vec<serde_json::Value>, next: Option<String>) -> ApiResult {
    let mut v = serde_json::json!({ key: items });
    if let Some(n) = next {
        v["NextMarker"] = serde_json::json!(n);
    }
    Ok(axum::Json(v).into_response())
}

/// `$LATEST` → 0, `N` → N (N ≥ 1).
pub(crate) fn parse_version(field: &str, v: &str) -> Result<i64, PlatformError> {
    Ok(Version::parse(field, v)?.number())
}
