//! CreateEventSourceMapping, GetEventSourceMapping, UpdateEventSourceMapping,
//! DeleteEventSourceMapping, ListEventSourceMappings for Updraft's queues
//! (`arn:aws:sqs:REGION:000000000000:NAME`), at Lambda's REST paths
//! (`/2015-03-31/event-source-mappings/…`) and shapes.

use super::{body, listing, paginate, ApiResult, Query};
use axum::body::Bytes;
use axum::extract::{Path, Query as Q, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use updraft_platform::{EventSourceMapping, MappingInput, Platform, REPORT_BATCH_ITEM_FAILURES};

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct MappingBody {
    event_source_arn: Option<String>,
    function_name: Option<String>,
    batch_size: Option<i64>,
    maximum_batching_window_in_seconds: Option<i64>,
    function_response_types: Option<Vec<String>>,
    enabled: Option<bool>,
}

impl From<MappingBody> for MappingInput {
    fn from(b: MappingBody) -> MappingInput {
        MappingInput {
            event_source_arn: b.event_source_arn,
            function_name: b.function_name,
            batch_size: b.batch_size,
            batch_window_s: b.maximum_batching_window_in_seconds,
            function_response_types: b.function_response_types,
            enabled: b.enabled,
        }
    }
}

/// Lambda's EventSourceMappingConfiguration; `state` as the operation
/// leaves it (`Creating`, `Updating`, `Deleting`, or the steady state).
fn shape(m: &EventSourceMapping, state: Option<&str>) -> serde_json::Value {
    let steady = if m.enabled { "Enabled" } else { "Disabled" };
    let types: Vec<&str> = if m.report_batch_item_failures {
        vec![REPORT_BATCH_ITEM_FAILURES]
    } else {
        vec![]
    };
    serde_json::json!({
        "UUID": m.uuid,
        "BatchSize": m.batch_size,
        "MaximumBatchingWindowInSeconds": m.batch_window_s,
        "EventSourceArn": m.event_source_arn,
        "FunctionArn": m.function_arn,
        "LastModified": m.last_modified_ms as f64 / 1000.0,
        "State": state.unwrap_or(steady),
        "StateTransitionReason": if m.origin == "manifest" { "updraft.toml" } else { "USER_INITIATED" },
        "FunctionResponseTypes": types,
    })
}

pub async fn create(State(p): State<Platform>, bytes: Bytes) -> ApiResult {
    let b: MappingBody = body(&bytes)?;
    let m = p.create_event_source_mapping(b.into()).await?;
    Ok((StatusCode::ACCEPTED, Json(shape(&m, Some("Creating")))).into_response())
}

pub async fn get(State(p): State<Platform>, Path(uuid): Path<String>) -> ApiResult {
    let m = p.get_event_source_mapping(&uuid).await?;
    Ok(Json(shape(&m, None)).into_response())
}

pub async fn update(
    State(p): State<Platform>,
    Path(uuid): Path<String>,
    bytes: Bytes,
) -> ApiResult {
    let b: MappingBody = body(&bytes)?;
    let m = p.update_event_source_mapping(&uuid, b.into()).await?;
    Ok((StatusCode::ACCEPTED, Json(shape(&m, Some("Updating")))).into_response())
}

pub async fn delete(State(p): State<Platform>, Path(uuid): Path<String>) -> ApiResult {
    let m = p.delete_event_source_mapping(&uuid).await?;
    Ok((StatusCode::ACCEPTED, Json(shape(&m, Some("Deleting")))).into_response())
}

pub async fn list(State(p): State<Platform>, Q(q): Q<Query>) -> ApiResult {
    let all = p
        .list_event_source_mappings(
            q.get("FunctionName")
                .map(String::as_str)
                .filter(|s| !s.is_empty()),
            q.get("EventSourceArn")
                .map(String::as_str)
                .filter(|s| !s.is_empty()),
        )
        .await?;
    let (page, next) = paginate(all, |m| m.uuid.clone(), &q)?;
    let items = page.iter().map(|m| shape(m, None)).collect();
    listing("EventSourceMappings", items, next)
}
