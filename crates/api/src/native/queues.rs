//! The native API's queue endpoints, behind `updraft queue …`:
//! `GET /api/v1/queues` (numbers of every queue), `POST
//! /api/v1/queues/{name}/messages` (send one), `GET …/{name}/dlq` (its
//! dead letters), `POST …/{name}/redrive`, `POST …/{name}/purge`.

use super::{json_body, ApiResult};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use updraft_core::now_ms;
use updraft_platform::queues::{attributes, SendMessage};
use updraft_platform::Platform;

/// Dead letters listed at most.
const DEAD_LETTERS_SHOWN: i64 = 1000;

pub fn router() -> Router<Platform> {
    Router::new()
        .route("/api/v1/queues", get(list))
        .route("/api/v1/queues/{name}/messages", post(send))
        .route("/api/v1/queues/{name}/dlq", get(dead_letters))
        .route("/api/v1/queues/{name}/redrive", post(redrive))
        .route("/api/v1/queues/{name}/purge", post(purge))
}

async fn list(State(p): State<Platform>) -> ApiResult {
    let now = now_ms();
    let queues: Vec<_> = p
        .all_queue_stats()
        .await?
        .into_iter()
        .map(|s| {
            json!({
                "name": s.name,
                "depth": s.visible,
                "in_flight": s.in_flight,
                "delayed": s.delayed,
                "oldest_age_ms": s.oldest_sent_ms.map(|t| (now - t).max(0)),
                "dead_letters": s.dead_letters,
            })
        })
        .collect();
    Ok(Json(json!({ "queues": queues })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendBody {
    body: String,
    /// String attributes (`--attr K=V`).
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    delay_seconds: Option<i64>,
}

async fn send(
    State(p): State<Platform>,
    Path(name): Path<String>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> ApiResult {
    let b: SendBody = json_body("send", &body)?;
    let sent = p
        .send_message(
            &name,
            SendMessage {
                body: b.body,
                attributes: b
                    .attributes
                    .iter()
                    .map(|(k, v)| (k.clone(), attributes::string_attribute(v)))
                    .collect(),
                delay_s: b.delay_seconds,
                trace: updraft_platform::traces::TraceContext::from_headers(&headers)
                    .and_then(|c| c.traceparent()),
            },
        )
        .await?;
    Ok(Json(sent).into_response())
}

async fn dead_letters(State(p): State<Platform>, Path(name): Path<String>) -> ApiResult {
    let msgs: Vec<_> = p
        .queue_dead_letters(&name, DEAD_LETTERS_SHOWN)
        .await?
        .into_iter()
        .map(|m| {
            json!({
                "message_id": m.id,
                "receive_count": m.receive_count,
                "sent_ms": m.sent_ms,
                "dead_letter_queue": m.queue,
                "body": m.body,
                "attributes": attributes::from_json(m.attributes.as_deref()),
            })
        })
        .collect();
    Ok(Json(json!({ "dead_letters": msgs })).into_response())
}

async fn redrive(State(p): State<Platform>, Path(name): Path<String>) -> ApiResult {
    Ok(Json(json!({ "moved": p.redrive_queue(&name).await? })).into_response())
}

async fn purge(State(p): State<Platform>, Path(name): Path<String>) -> ApiResult {
    Ok(Json(json!({ "purged": p.purge_queue(&name).await? })).into_response())
}
