//! TagResource, UntagResource and ListTags on functions
//! (`/2017-03-31/tags/{ARN}`), and GetAccountSettings.

use super::{body, ApiResult};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use updraft_core::FunctionRef;
use updraft_platform::{Platform, PlatformError, Tags};

/// The function a tag call's `Resource` names: its unqualified ARN.
fn function_of(resource: &str) -> Result<String, PlatformError> {
    let expected = || {
        PlatformError::InvalidParameter(format!(
            "Resource: expected a function's ARN (arn:aws:lambda:REGION:ACCOUNT:function:NAME), got {resource:?}"
        ))
    };
    if !resource.starts_with("arn:") {
        return Err(expected());
    }
    let f = FunctionRef::parse("Resource", resource).map_err(|_| expected())?;
    if f.qualifier.is_some() {
        return Err(PlatformError::InvalidParameter(format!(
            "Resource: tags belong to the function as a whole; expected its unqualified ARN, got {resource:?}"
        )));
    }
    Ok(f.name)
}

/// The `tagKeys` of UntagResource's query (`?tagKeys=a&tagKeys=b`).
fn tag_keys(query: Option<&str>) -> Vec<String> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .filter(|(k, _)| k == "tagKeys")
        .map(|(_, v)| v.into_owned())
        .collect()
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct TagBody {
    tags: Option<Tags>,
}

pub async fn list(State(p): State<Platform>, Path(resource): Path<String>) -> ApiResult {
    let name = function_of(&resource)?;
    let tags = p.function_tags(&name).await?;
    Ok(Json(json!({ "Tags": tags })).into_response())
}

pub async fn tag(
    State(p): State<Platform>,
    Path(resource): Path<String>,
    bytes: Bytes,
) -> ApiResult {
    let name = function_of(&resource)?;
    let b: TagBody = body(&bytes)?;
    let tags = b
        .tags
        .ok_or_else(|| PlatformError::InvalidParameter("Tags: required".into()))?;
    p.tag_function(&name, &tags).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn untag(
    State(p): State<Platform>,
    Path(resource): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult {
    let name = function_of(&resource)?;
    p.untag_function(&name, &tag_keys(query.as_deref())).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// GetAccountSettings: this server's limits and what its functions use.
pub async fn account_settings(State(p): State<Platform>) -> ApiResult {
    let a = p.account_settings().await?;
    Ok(Json(json!({
        "AccountLimit": {
            "TotalCodeSize": a.total_code_size,
            "CodeSizeUnzipped": a.code_size_unzipped,
            "CodeSizeZipped": a.code_size_zipped,
            "ConcurrentExecutions": a.concurrent_executions,
            "UnreservedConcurrentExecutions": a.unreserved_concurrent_executions,
        },
        "AccountUsage": {
            "TotalCodeSize": a.usage.total_code_size,
            "FunctionCount": a.usage.function_count,
        },
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_resource_is_a_functions_unqualified_arn() {
        assert_eq!(
            function_of("arn:aws:lambda:us-east-1:000000000000:function:f").unwrap(),
            "f"
        );
        for bad in [
            "f",
            "000000000000:function:f",
            "arn:aws:lambda:us-east-1:000000000000:layer:l",
        ] {
            match function_of(bad) {
                Err(PlatformError::InvalidParameter(m)) => {
                    assert!(m.starts_with("Resource: expected a function's ARN"), "{m}")
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
        match function_of("arn:aws:lambda:us-east-1:000000000000:function:f:3") {
            Err(PlatformError::InvalidParameter(m)) => assert!(m.contains("unqualified"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn untag_keys_come_from_the_repeated_query_parameter() {
        assert_eq!(
            tag_keys(Some("tagKeys=a&other=x&tagKeys=b%20c")),
            ["a", "b c"]
        );
        assert!(tag_keys(None).is_empty());
    }
}
