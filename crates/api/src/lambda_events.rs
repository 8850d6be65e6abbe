//! Lambda's asynchronous invocation settings (FunctionEventInvokeConfig):
//! Put / Get / Update / Delete / List at Lambda's REST paths and JSON shapes
//! (botocore `lambda/2015-03-31/service-2.json`: PUT, GET, POST, DELETE
//! `/2019-09-25/functions/{FunctionName}/event-invoke-config`, GET
//! `…/event-invoke-config/list`). The logic lives in
//! `updraft-platform` (`events.rs`); errors leave through [`ApiError`].

use crate::ApiError;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use std::collections::HashMap;
use updraft_platform::{EventInvokeConfig, EventInvokeConfigInput, Platform, PlatformError};

type ApiResult = Result<Response, ApiError>;
type Params = HashMap<String, String>;

/// The EventInvokeConfig routes; merge them behind authentication.
pub fn routes() -> Router<Platform> {
    Router::new()
        .route(
            "/2019-09-25/functions/{name}/event-invoke-config",
            get(get_config)
                .put(put_config)
                .post(update_config)
                .delete(delete_config),
        )
        .route(
            "/2019-09-25/functions/{name}/event-invoke-config/list",
            get(list_configs),
        )
}

/// `NAME`, `NAME:Q`, `ACCOUNT:function:NAME[:Q]` or
/// `arn:aws:lambda:REGION:ACCOUNT:function:NAME[:Q]`, plus `?Qualifier=`.
fn target(raw: &str, params: &Params) -> Result<(String, Option<String>), PlatformError> {
    let t = crate::lambda::Target::parse(raw, params.get("Qualifier").map(String::as_str))?;
    Ok((t.name, t.qualifier))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct Destination {
    destination: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct DestinationConfig {
    on_success: Option<Destination>,
    on_failure: Option<Destination>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct ConfigBody {
    maximum_retry_attempts: Option<i64>,
    maximum_event_age_in_seconds: Option<i64>,
    destination_config: Option<DestinationConfig>,
}

fn parse_body(bytes: &[u8]) -> Result<EventInvokeConfigInput, PlatformError> {
    let body: ConfigBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        ConfigBody::default()
    } else {
        serde_json::from_slice(bytes).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => PlatformError::InvalidParameter(e.to_string()),
            _ => PlatformError::InvalidRequestContent(format!(
                "Could not parse request body into json: {e}"
            )),
        })?
    };
    // A destination object without an ARN removes that destination.
    let dest = |d: Option<Destination>| d.map(|d| d.destination.unwrap_or_default());
    let dc = body.destination_config.unwrap_or_default();
    Ok(EventInvokeConfigInput {
        maximum_retry_attempts: body.maximum_retry_attempts,
        maximum_event_age_s: body.maximum_event_age_in_seconds,
        on_success: dest(dc.on_success),
        on_failure: dest(dc.on_failure),
    })
}

/// Lambda's FunctionEventInvokeConfig shape (`LastModified` in epoch seconds,
/// as rest-json timestamps travel).
fn shape(c: &EventInvokeConfig) -> serde_json::Value {
    let dest = |d: &Option<String>| match d {
        Some(arn) => serde_json::json!({ "Destination": arn }),
        None => serde_json::json!({}),
    };
    let mut v = serde_json::json!({
        "LastModified": c.last_modified_ms as f64 / 1000.0,
        "FunctionArn": c.function_arn,
        "DestinationConfig": {
            "OnSuccess": dest(&c.on_success),
            "OnFailure": dest(&c.on_failure),
        },
    });
    if let Some(n) = c.maximum_retry_attempts {
        v["MaximumRetryAttempts"] = n.into();
    }
    if let Some(n) = c.maximum_event_age_s {
        v["MaximumEventAgeInSeconds"] = n.into();
    }
    v
}

async fn put_config(
    State(p): State<Platform>,
    Path(raw): Path<String>,
    Query(params): Query<Params>,
    body: Bytes,
) -> ApiResult {
    write_config(&p, &raw, &params, &body, false).await
}

async fn update_config(
    State(p): State<Platform>,
    Path(raw): Path<String>,
    Query(params): Query<Params>,
    body: Bytes,
) -> ApiResult {
    write_config(&p, &raw, &params, &body, true).await
}

/// Put (`merge` false: replaces every setting) or Update (`merge` true).
async fn write_config(
    p: &Platform,
    raw: &str,
    params: &Params,
    body: &[u8],
    merge: bool,
) -> ApiResult {
    let (name, q) = target(raw, params)?;
    let input = parse_body(body)?;
    let c = p
        .put_event_invoke_config(&name, q.as_deref(), input, merge)
        .await?;
    Ok(Json(shape(&c)).into_response())
}

async fn get_config(
    State(p): State<Platform>,
    Path(raw): Path<String>,
    Query(params): Query<Params>,
) -> ApiResult {
    let (name, q) = target(&raw, &params)?;
    let c = p.get_event_invoke_config(&name, q.as_deref()).await?;
    Ok(Json(shape(&c)).into_response())
}

async fn delete_config(
    State(p): State<Platform>,
    Path(raw): Path<String>,
    Query(params): Query<Params>,
) -> ApiResult {
    let (name, q) = target(&raw, &params)?;
    p.delete_event_invoke_config(&name, q.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_configs(
    State(p): State<Platform>,
    Path(raw): Path<String>,
    Query(params): Query<Params>,
) -> ApiResult {
    let (name, q) = target(&raw, &params)?;
    if let Some(q) = q {
        return Err(PlatformError::InvalidParameter(format!(
            "Qualifier: ListFunctionEventInvokeConfigs lists every qualifier of the function, not {q:?}"
        ))
        .into());
    }
    let max = match params.get("MaxItems") {
        None => 50,
        Some(m) => m
            .parse::<usize>()
            .ok()
            .filter(|m| (1..=50).contains(m))
            .ok_or_else(|| {
                PlatformError::InvalidParameter(format!("MaxItems: expected 1 to 50, got {m:?}"))
            })?,
    };
    let all = p.list_event_invoke_configs(&name).await?;
    let start = match params.get("Marker").filter(|m| !m.is_empty()) {
        None => 0,
        Some(m) => {
            all.iter().position(|c| c.qualifier == *m).ok_or_else(|| {
                PlatformError::InvalidParameter(format!(
                    "Marker: {m:?} is not a marker this listing returned"
                ))
            })? + 1
        }
    };
    let page: Vec<&EventInvokeConfig> = all.iter().skip(start).take(max).collect();
    let mut v = serde_json::json!({
        "FunctionEventInvokeConfigs": page.iter().map(|c| shape(c)).collect::<Vec<_>>(),
    });
    if start + page.len() < all.len() {
        if let Some(last) = page.last() {
            v["NextMarker"] = last.qualifier.clone().into();
        }
    }
    Ok(Json(v).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let none = Params::new();
        assert_eq!(target("f", &none).unwrap(), ("f".into(), None));
        assert_eq!(
            target("arn:aws:lambda:us-east-1:000000000000:function:f:3", &none).unwrap(),
            ("f".into(), Some("3".into()))
        );
        let q: Params = [("Qualifier".to_string(), "live".to_string())].into();
        assert_eq!(target("f", &q).unwrap(), ("f".into(), Some("live".into())));
        assert!(target("f:1", &q).is_err());
        assert!(target("a/b", &none).is_err());
    }

    #[test]
    fn bodies() {
        let i = parse_body(
            br#"{"MaximumRetryAttempts":1,"DestinationConfig":{"OnFailure":{"Destination":"arn:x"},"OnSuccess":{}}}"#,
        )
        .unwrap();
        assert_eq!(i.maximum_retry_attempts, Some(1));
        assert_eq!(i.maximum_event_age_s, None);
        assert_eq!(i.on_failure.as_deref(), Some("arn:x"));
        assert_eq!(i.on_success.as_deref(), Some(""));
        assert_eq!(parse_body(b"").unwrap(), EventInvokeConfigInput::default());
        assert!(matches!(
            parse_body(br#"{"MaximumRetryAttempts":"x"}"#),
            Err(PlatformError::InvalidParameter(_))
        ));
        assert!(matches!(
            parse_body(b"{"),
            Err(PlatformError::InvalidRequestContent(_))
        ));
    }

    #[test]
    fn shapes() {
        let c = EventInvokeConfig {
            function: "f".into(),
            qualifier: updraft_core::LATEST.into(),
            function_arn: "arn:aws:lambda:us-east-1:000000000000:function:f:$LATEST".into(),
            maximum_retry_attempts: Some(0),
            maximum_event_age_s: None,
            on_success: None,
            on_failure: Some("arn:aws:lambda:us-east-1:000000000000:function:d".into()),
            last_modified_ms: 1_573_686_021_479,
        };
        let v = shape(&c);
        assert_eq!(v["MaximumRetryAttempts"], 0);
        assert!(v.get("MaximumEventAgeInSeconds").is_none());
        assert_eq!(v["DestinationConfig"]["OnSuccess"], serde_json::json!({}));
        assert_eq!(
            v["DestinationConfig"]["OnFailure"]["Destination"],
            "arn:aws:lambda:us-east-1:000000000000:function:d"
        );
        assert_eq!(v["LastModified"], 1_573_686_021.479);
    }
}
