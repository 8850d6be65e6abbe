//! Put/Get/DeleteFunctionConcurrency and Create/Get/Update/DeleteFunctionUrlConfig.
//! The URL is `/fn/{name}` and always exists (SPEC §4): AuthType NONE is
//! `url = "public"`, AWS_IAM is `"private"`; its `Cors` is the manifest's
//! `cors`. The last writer (a manifest deploy or this API) wins.

use super::shapes::{auth_type, timestamp};
use super::{body, ApiResult, Query, Target};
use axum::body::Bytes;
use axum::extract::{Path, Query as Q, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use updraft_core::{Cors, UrlAuth};
use updraft_platform::{FunctionSettings, Platform, PlatformError};

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct ConcurrencyBody {
    reserved_concurrent_executions: Option<i64>,
}

pub async fn put_concurrency(
    State(p): State<Platform>,
    Path(name): Path<String>,
    Q(q): Q<Query>,
    bytes: Bytes,
) -> ApiResult {
    let name = Target::parse_unqualified(&name, &q)?;
    let b: ConcurrencyBody = body(&bytes)?;
    let n = b.reserved_concurrent_executions.ok_or_else(|| {
        PlatformError::InvalidParameter("ReservedConcurrentExecutions: required".into())
    })?;
    p.put_concurrency(&name, n).await?;
    Ok(Json(json!({ "ReservedConcurrentExecutions": n })).into_response())
}

pub async fn get_concurrency(
    State(p): State<Platform>,
    Path(name): Path<String>,
    Q(q): Q<Query>,
) -> ApiResult {
    let name = Target::parse_unqualified(&name, &q)?;
    let v = match p.get_concurrency(&name).await? {
        Some(n) => json!({ "ReservedConcurrentExecutions": n }),
        None => json!({}),
    };
    Ok(Json(v).into_response())
}

pub async fn delete_concurrency(
    State(p): State<Platform>,
    Path(name): Path<String>,
    Q(q): Q<Query>,
) -> ApiResult {
    let name = Target::parse_unqualified(&name, &q)?;
    p.delete_concurrency(&name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct UrlBody {
    auth_type: Option<String>,
    cors: Option<Value>,
    invoke_mode: Option<String>,
}

fn parse_auth(a: Option<&str>) -> Result<Option<UrlAuth>, PlatformError> {
    match a {
        None => Ok(None),
        Some("NONE") => Ok(Some(UrlAuth::Public)),
        Some("AWS_IAM") => Ok(Some(UrlAuth::Private)),
        Some(other) => Err(PlatformError::InvalidParameter(format!(
            "AuthType: expected NONE or AWS_IAM, got {other:?}"
        ))),
    }
}

fn check_invoke_mode(m: Option<&str>) -> Result<(), PlatformError> {
    match m {
        None | Some("BUFFERED") => Ok(()),
        Some(other) => Err(PlatformError::InvalidParameter(format!(
            "InvokeMode: Updraft function URLs are BUFFERED, got {other:?}"
        ))),
    }
}

/// The `Cors` object, checked against Lambda's limits, as the JSON to store.
fn parse_cors(v: Value) -> Result<String, PlatformError> {
    let cors: Cors = serde_json::from_value(v)
        .map_err(|e| PlatformError::InvalidParameter(format!("Cors: {e}")))?;
    cors.validate().map_err(|e| {
        let field = Cors::api_field(&e.field);
        PlatformError::Invalid(e.renamed(field))
    })?;
    Ok(serde_json::to_string(&cors).expect("CORS settings always serialize"))
}

/// The function URL has no qualifier on Updraft: `/fn/{name}` runs `$LATEST`.
fn url_target(raw: &str, q: &Query) -> Result<String, PlatformError> {
    let t = Target::parse(raw, q.get("Qualifier").map(String::as_str))?;
    if let Some(q) = t.qualifier {
        return Err(PlatformError::InvalidParameter(format!(
            "Qualifier: the function URL of Updraft belongs to the unqualified function, not to {q:?}"
        )));
    }
    Ok(t.name)
}

fn url_config(p: &Platform, name: &str, s: &FunctionSettings, modified: bool) -> Value {
    let mut v = json!({
        "FunctionUrl": p.function_url(name),
        "FunctionArn": p.version_arn(name, 0),
        "AuthType": auth_type(s.url_auth.unwrap_or_default()),
        "CreationTime": timestamp(s.url_created_ms),
        "InvokeMode": "BUFFERED",
    });
    if modified {
        v["LastModifiedTime"] = json!(timestamp(s.url_updated_ms));
    }
    if let Some(cors) = s
        .url_cors
        .as_deref()
        .and_then(|c| serde_json::from_str::<Value>(c).ok())
    {
        v["Cors"] = cors;
    }
    v
}

async fn put_url(p: Platform, raw: &str, q: &Query, bytes: &[u8], create: bool) -> ApiResult {
    let name = url_target(raw, q)?;
    let b: UrlBody = body(bytes)?;
    let auth = parse_auth(b.auth_type.as_deref())?;
    if create && auth.is_none() {
        return Err(PlatformError::InvalidParameter("AuthType: required".into()).into());
    }
    check_invoke_mode(b.invoke_mode.as_deref())?;
    let cors = b.cors.map(parse_cors).transpose()?.map(Some);
    let s = p.put_url_config(&name, create, auth, cors).await?;
    let status = if create {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(url_config(&p, &name, &s, !create))).into_response())
}

pub async fn create_url(
    State(p): State<Platform>,
    Path(name): Path<String>,
    Q(q): Q<Query>,
    bytes: Bytes,
) -> ApiResult {
    put_url(p, &name, &q, &bytes, true).await
}

pub async fn update_url(
    State(p): State<Platform>,
    Path(name): Path<String>,
    Q(q): Q<Query>,
    bytes: Bytes,
) -> ApiResult {
    put_url(p, &name, &q, &bytes, false).await
}

pub async fn get_url(
    State(p): State<Platform>,
    Path(name): Path<String>,
    Q(q): Q<Query>,
) -> ApiResult {
    let name = url_target(&name, &q)?;
    let s = p.url_config(&name).await?;
    Ok(Json(url_config(&p, &name, &s, true)).into_response())
}

pub async fn delete_url(
    State(p): State<Platform>,
    Path(name): Path<String>,
    Q(q): Q<Query>,
) -> ApiResult {
    let name = url_target(&name, &q)?;
    p.delete_url_config(&name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
