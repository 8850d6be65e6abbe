//! The native control API (`/api/v1`), used by the `updraft` CLI; its
//! queue endpoints are in `native/queues.rs`.

mod queues;

use crate::invoke::{InvocationType, InvokeCall, Surface};
use crate::ApiError;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use updraft_platform::{DeployFunction, LogQuery, LogScope, Platform, PlatformError};

type ApiResult = Result<Response, ApiError>;

pub fn router() -> Router<Platform> {
    Router::new()
        .route("/api/v1/code/{sha}", put(put_code).get(get_code))
        .route("/api/v1/apps/{app}/deploy", post(deploy))
        .route("/api/v1/apps/{app}/logs", get(app_logs))
        .route("/api/v1/functions", get(list))
        .route("/api/v1/functions/{name}", get(get_function).delete(delete))
        .route("/api/v1/functions/{name}/invoke", post(invoke))
        .route("/api/v1/functions/{name}/rollback", post(rollback))
        .route("/api/v1/functions/{name}/logs", get(logs))
        .route("/api/v1/functions/{name}/dlq", get(dead_letters))
        .route("/api/v1/usage", get(usage))
        .merge(queues::router())
        .route("/api/v1/buses/{bus}/events", post(publish))
}

async fn put_code(
    State(p): State<Platform>,
    Path(sha): Path<String>,
    hashed: Option<Extension<crate::BodySha256>>,
    body: Bytes,
) -> ApiResult {
    // The body was hashed once already when its signature was checked.
    let actual = match hashed {
        Some(Extension(crate::BodySha256(h))) => h,
        None => updraft_platform::sha256_hex(&body),
    };
    if actual != sha {
        return Err(PlatformError::InvalidParameter(format!(
            "code upload: the path names sha256 {sha} but the body's sha256 is {actual}"
        ))
        .into());
    }
    p.put_code_hashed(&body, &sha)?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "sha256": sha, "size": body.len() })),
    )
        .into_response())
}

async fn get_code(State(p): State<Platform>, Path(sha): Path<String>) -> ApiResult {
    if p.has_code(&sha) {
        Ok(Json(serde_json::json!({ "sha256": sha })).into_response())
    } else {
        Err(PlatformError::NotFound(format!("code package {sha} is not on this server")).into())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeployBody {
    functions: Vec<DeployFunction>,
    #[serde(default)]
    prune: bool,
}

fn json_body<T: serde::de::DeserializeOwned>(what: &str, body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        PlatformError::InvalidParameter(format!(
            "{what}: the request body is not what was expected: {e}"
        ))
        .into()
    })
}

async fn deploy(State(p): State<Platform>, Path(app): Path<String>, body: Bytes) -> ApiResult {
    let body: DeployBody = json_body("deploy", &body)?;
    let report = p.deploy_app(&app, body.functions, body.prune).await?;
    Ok(Json(report).into_response())
}

async fn list(State(p): State<Platform>) -> ApiResult {
    /// Serialised straight from the list (no `serde_json::Value` between).
    #[derive(serde::Serialize)]
    struct Listing {
        functions: Vec<updraft_platform::FunctionInfo>,
    }
    Ok(Json(Listing {
        functions: p.list().await?,
    })
    .into_response())
}

async fn get_function(State(p): State<Platform>, Path(name): Path<String>) -> ApiResult {
    Ok(Json(p.get(&name).await?).into_response())
}

async fn delete(State(p): State<Platform>, Path(name): Path<String>) -> ApiResult {
    p.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InvokeQuery {
    qualifier: Option<String>,
    /// Queue the event (202 with its request id) instead of running it now.
    #[serde(default)]
    r#async: bool,
}

async fn invoke(
    State(p): State<Platform>,
    Path(name): Path<String>,
    Query(q): Query<InvokeQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let kind = if q.r#async {
        InvocationType::Event
    } else {
        InvocationType::RequestResponse
    };
    let call = InvokeCall::from_headers(name, q.qualifier, Some(kind), &headers)?;
    crate::invoke::run(&p, call, Surface::Native, &body).await
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    to: Option<i64>,
}

async fn rollback(State(p): State<Platform>, Path(name): Path<String>, body: Bytes) -> ApiResult {
    let body: RollbackBody = if body.is_empty() {
        RollbackBody::default()
    } else {
        json_body("rollback", &body)?
    };
    Ok(Json(p.rollback(&name, body.to).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogsQuery {
    #[serde(default)]
    since_ms: i64,
    until_ms: Option<i64>,
    request_id: Option<String>,
    version: Option<i64>,
    /// The lowest level shown (`TRACE`…`FATAL`).
    level: Option<String>,
    /// Text the line contains (case-sensitive).
    filter: Option<String>,
    #[serde(default)]
    after_id: i64,
    limit: Option<i64>,
}

impl LogsQuery {
    fn to_query<'a>(&'a self, scope: LogScope<'a>) -> Result<LogQuery<'a>, ApiError> {
        let min_level = match &self.level {
            Some(l) => Some(
                l.parse()
                    .map_err(|e: String| PlatformError::InvalidParameter(format!("level: {e}")))?,
            ),
            None => None,
        };
        Ok(LogQuery {
            scope,
            since_ms: self.since_ms,
            until_ms: self.until_ms,
            request_id: self.request_id.as_deref(),
            version: self.version,
            min_level,
            text: self.filter.as_deref().filter(|t| !t.is_empty()),
            after_id: self.after_id,
            limit: self.limit.unwrap_or(1000).clamp(1, 10_000),
        })
    }
}

async fn logs(
    State(p): State<Platform>,
    Path(name): Path<String>,
    Query(q): Query<LogsQuery>,
) -> ApiResult {
    // An unknown name is 404 like every other function endpoint, not an
    // empty page.
    p.get(&name).await?;
    let lines = p
        .query_logs(&q.to_query(LogScope::Function(&name))?)
        .await?;
    Ok(Json(serde_json::json!({ "lines": lines })).into_response())
}

/// The lines of every function of an app.
async fn app_logs(
    State(p): State<Platform>,
    Path(app): Path<String>,
    Query(q): Query<LogsQuery>,
) -> ApiResult {
    if !p.app_exists(&app).await? {
        return Err(PlatformError::NotFound(format!("no app named {app}")).into());
    }
    let lines = p.query_logs(&q.to_query(LogScope::App(&app))?).await?;
    Ok(Json(serde_json::json!({ "lines": lines })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsageQuery {
    #[serde(default)]
    since_ms: i64,
    /// `day`: per UTC day as well.
    by: Option<String>,
}

async fn usage(State(p): State<Platform>, Query(q): Query<UsageQuery>) -> ApiResult {
    let by_day = match q.by.as_deref() {
        None | Some("function") => false,
        Some("day") => true,
        Some(other) => {
            return Err(PlatformError::InvalidParameter(format!(
                "by: expected day or function, got {other:?}"
            ))
            .into())
        }
    };
    Ok(Json(p.usage(q.since_ms, by_day).await?).into_response())
}

/// The function's dead letters: Lambda destination invocation records of the
/// asynchronous events that failed for good without a destination.
async fn dead_letters(State(p): State<Platform>, Path(name): Path<String>) -> ApiResult {
    Ok(Json(serde_json::json!({ "dead_letters": p.dead_letters(&name).await? })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishBody {
    source: Option<String>,
    detail_type: Option<String>,
    /// A JSON object.
    detail: Option<serde_json::Value>,
    #[serde(default)]
    resources: Vec<String>,
    /// Epoch seconds or RFC 3339; default now.
    time: Option<serde_json::Value>,
}

/// One event onto a bus (PutEvents with one entry): `{"event_id"}`, or the
/// entry's error as 400 `InvalidParameterValueException` whose message
/// starts with EventBridge's error code.
async fn publish(State(p): State<Platform>, Path(bus): Path<String>, body: Bytes) -> ApiResult {
    let body: PublishBody = json_body("publish", &body)?;
    let time = match &body.time {
        Some(v) => Some(crate::events::timestamp("time", v)?),
        None => None,
    };
    let entry = updraft_platform::PutEntry {
        source: body.source,
        detail_type: body.detail_type,
        detail: body.detail.map(|d| d.to_string()),
        resources: body.resources,
        time,
        event_bus_name: Some(bus),
        trace: None,
    };
    match p.publish(vec![entry]).await?.pop() {
        Some(updraft_platform::PutResult::Accepted(id)) => {
            Ok(Json(serde_json::json!({ "event_id": id })).into_response())
        }
        Some(updraft_platform::PutResult::Failed { code, message }) => Err(match code {
            "InternalFailure" => PlatformError::Unavailable(message),
            _ => PlatformError::InvalidParameter(format!("{code}: {message}")),
        }
        .into()),
        None => Err(PlatformError::internal("publish", "no result for the entry").into()),
    }
}
