//! CreateAlias, GetAlias, UpdateAlias, DeleteAlias, ListAliases, with
//! `RoutingConfig.AdditionalVersionWeights` (one additional version).

use super::shapes::alias_configuration;
use super::{body, listing, paginate, parse_version, ApiResult, Query, Target};
use axum::body::Bytes;
use axum::extract::{Path, Query as Q, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use std::collections::BTreeMap;
use updraft_platform::{Platform, PlatformError, Routing};

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct RoutingConfig {
    additional_version_weights: Option<BTreeMap<String, f64>>,
}

/// None = no change; Some(None) = no split.
fn routing(r: Option<RoutingConfig>) -> Result<Option<Routing>, PlatformError> {
    let Some(weights) = r.map(|r| r.additional_version_weights.unwrap_or_default()) else {
        return Ok(None);
    };
    let mut it = weights.into_iter();
    let split =
        match (it.next(), it.next()) {
            (None, _) => None,
            (Some((v, w)), None) => Some((
                parse_version("RoutingConfig.AdditionalVersionWeights", &v)?,
                w,
            )),
            (Some(_), Some(_)) => return Err(PlatformError::InvalidParameter(
                "RoutingConfig.AdditionalVersionWeights: expected at most one additional version"
                    .into(),
            )),
        };
    Ok(Some(split))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    name: Option<String>,
    function_version: Option<String>,
    description: Option<String>,
    routing_config: Option<RoutingConfig>,
}

pub async fn create(
    State(p): State<Platform>,
    Path(name): Path<String>,
    Q(q): Q<Query>,
    bytes: Bytes,
) -> ApiResult {
    let name = Target::parse_unqualified(&name, &q)?;
    let b: CreateBody = body(&bytes)?;
    let alias = b
        .name
        .ok_or_else(|| PlatformError::InvalidParameter("Name: required".into()))?;
    let version = b
        .function_version
        .ok_or_else(|| PlatformError::InvalidParameter("FunctionVersion: required".into()))?;
    let version = parse_version("FunctionVersion", &version)?;
    let split = routing(b.routing_config)?.flatten();
    let a = p
        .create_alias(
            &name,
            &alias,
            version,
            split,
            b.description.as_deref().unwrap_or(""),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(alias_configuration(&p, &a))).into_response())
}

pub async fn get(
    State(p): State<Platform>,
    Path((name, alias)): Path<(String, String)>,
) -> ApiResult {
    let name = Target::parse_unqualified(&name, &Query::new())?;
    let a = p.get_alias(&name, &alias).await?;
    Ok(Json(alias_configuration(&p, &a)).into_response())
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct UpdateBody {
    function_version: Option<String>,
    description: Option<String>,
    routing_config: Option<RoutingConfig>,
    revision_id: Option<String>,
}

pub async fn update(
    State(p): State<Platform>,
    Path((name, alias)): Path<(String, String)>,
    bytes: Bytes,
) -> ApiResult {
    let name = Target::parse_unqualified(&name, &Query::new())?;
    let b: UpdateBody = body(&bytes)?;
    let version = b
        .function_version
        .as_deref()
        .map(|v| parse_version("FunctionVersion", v))
        .transpose()?;
    let a = p
        .update_alias(
            &name,
            &alias,
            version,
            routing(b.routing_config)?,
            b.description,
            b.revision_id.as_deref(),
        )
        .await?;
    Ok(Json(alias_configuration(&p, &a)).into_response())
}

pub async fn delete(
    State(p): State<Platform>,
    Path((name, alias)): Path<(String, String)>,
) -> ApiResult {
    let name = Target::parse_unqualified(&name, &Query::new())?;
    p.delete_alias(&name, &alias).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn list(
    State(p): State<Platform>,
    Path(name): Path<String>,
    Q(q): Q<Query>,
) -> ApiResult {
    let name = Target::parse_unqualified(&name, &Query::new())?;
    let version = q
        .get("FunctionVersion")
        .filter(|v| !v.is_empty())
        .map(|v| parse_version("FunctionVersion", v))
        .transpose()?;
    let items = p.list_aliases(&name, version).await?;
    let (page, next) = paginate(items, |a| a.name.clone(), &q)?;
    let aliases: Vec<_> = page.iter().map(|a| alias_configuration(&p, a)).collect();
    listing("Aliases", aliases, next)
}
