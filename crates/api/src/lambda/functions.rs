//! CreateFunction, GetFunction(Configuration), ListFunctions, UpdateFunctionCode,
//! UpdateFunctionConfiguration, DeleteFunction, PublishVersion,
//! ListVersionsByFunction.

use super::shapes::{architecture, function_configuration};
use super::{body, listing, paginate, ApiResult, Query, Target};
use axum::body::Bytes;
use axum::extract::{Path, Query as Q, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use base64::Engine;
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use updraft_core::version_label;
use updraft_platform::{ConfigPatch, NewFunction, Platform, PlatformError};

use updraft_core::limits::DIRECT_ZIP_BYTES as MAX_DIRECT_ZIP_BYTES;

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct Code {
    zip_file: Option<String>,
    s3_bucket: Option<String>,
    s3_key: Option<String>,
    image_uri: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct Environment {
    variables: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct EphemeralStorage {
    size: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct SnapStart {
    apply_on: Option<String>,
}

/// `SnapStart.ApplyOn`: `PublishedVersions` turns on `snapshot` (for every
/// version, `$LATEST` too: compatibility.md), `None` turns it off.
fn snap_start(v: Option<SnapStart>) -> Result<Option<bool>, PlatformError> {
    match v.and_then(|s| s.apply_on).as_deref() {
        None => Ok(None),
        Some("PublishedVersions") => Ok(Some(true)),
        Some("None") => Ok(Some(false)),
        Some(other) => Err(PlatformError::InvalidParameter(format!(
            "SnapStart.ApplyOn: expected PublishedVersions or None, got {other:?}"
        ))),
    }
}

/// `EphemeralStorage.Size` in MB (Lambda: 512 to 10240; checked with the rest
/// of the configuration).
fn ephemeral(v: Option<EphemeralStorage>) -> Result<Option<u32>, PlatformError> {
    v.and_then(|e| e.size)
        .map(|s| {
            u32::try_from(s).map_err(|_| {
                PlatformError::InvalidParameter(format!(
                    "EphemeralStorage.Size: expected a number from 512 to 10240, got {s}"
                ))
            })
        })
        .transpose()
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    function_name: Option<String>,
    runtime: Option<String>,
    role: Option<String>,
    handler: Option<String>,
    code: Option<Code>,
    description: Option<String>,
    timeout: Option<i64>,
    memory_size: Option<i64>,
    ephemeral_storage: Option<EphemeralStorage>,
    snap_start: Option<SnapStart>,
    publish: bool,
    package_type: Option<String>,
    environment: Option<Environment>,
    architectures: Option<Vec<String>>,
    layers: Option<Vec<String>>,
    tags: Option<updraft_platform::Tags>,
    logging_config: Option<super::logging::LoggingConfigBody>,
}

fn decode_zip(zip: Option<&str>) -> Result<Vec<u8>, PlatformError> {
    let zip = zip.ok_or_else(|| {
        PlatformError::InvalidParameter(
            "Code.ZipFile: expected the function's zip (base64); S3 and container images are not supported by Updraft".into(),
        )
    })?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(zip.trim())
        .map_err(|e| PlatformError::InvalidParameter(format!("ZipFile: not base64: {e}")))?;
    if bytes.len() > MAX_DIRECT_ZIP_BYTES {
        return Err(PlatformError::TooLarge(format!(
            "Zipped file size ({} bytes) exceeds the maximum of {MAX_DIRECT_ZIP_BYTES} bytes",
            bytes.len()
        )));
    }
    Ok(bytes)
}

fn check_code_source(c: &Code) -> Result<(), PlatformError> {
    if c.s3_bucket.is_some() || c.s3_key.is_some() || c.image_uri.is_some() {
        return Err(PlatformError::InvalidParameter(
            "Code: only ZipFile is supported by Updraft (no S3Bucket/S3Key/ImageUri)".into(),
        ));
    }
    Ok(())
}

fn check_architectures(a: &Option<Vec<String>>) -> Result<(), PlatformError> {
    match a.as_deref() {
        None | Some([]) => Ok(()),
        Some([one]) if one == architecture() => Ok(()),
        Some(other) => Err(PlatformError::InvalidParameter(format!(
            "Architectures: this server runs [\"{}\"], got {other:?}",
            architecture()
        ))),
    }
}

fn memory(v: Option<i64>) -> Result<Option<u32>, PlatformError> {
    v.map(|m| {
        u32::try_from(m).map_err(|_| {
            PlatformError::InvalidParameter(format!(
                "MemorySize: expected a number from 128 to 10240, got {m}"
            ))
        })
    })
    .transpose()
}

fn timeout_ms(v: Option<i64>) -> Result<Option<u64>, PlatformError> {
    v.map(|t| {
        if (1..=900).contains(&t) {
            Ok(t as u64 * 1000)
        } else {
            Err(PlatformError::InvalidParameter(format!(
                "Timeout: expected 1 to 900 seconds, got {t}"
            )))
        }
    })
    .transpose()
}

pub async fn create(State(p): State<Platform>, bytes: Bytes) -> ApiResult {
    let b: CreateBody = body(&bytes)?;
    let raw = b
        .function_name
        .as_deref()
        .ok_or_else(|| PlatformError::InvalidParameter("FunctionName: required".into()))?;
    let target = Target::parse(raw, None)?;
    if target.qualifier.is_some() {
        return Err(PlatformError::InvalidParameter(format!(
            "FunctionName: expected an unqualified name, got {raw:?}"
        ))
        .into());
    }
    if b.package_type.as_deref().is_some_and(|t| t != "Zip") {
        return Err(PlatformError::InvalidParameter(
            "PackageType: only Zip is supported by Updraft".into(),
        )
        .into());
    }
    if b.layers.as_ref().is_some_and(|l| !l.is_empty()) {
        return Err(PlatformError::InvalidParameter(
            "Layers: not supported by Updraft; put dependencies in the zip".into(),
        )
        .into());
    }
    check_architectures(&b.architectures)?;
    let code = b.code.unwrap_or_default();
    check_code_source(&code)?;
    let runtime = b.runtime.ok_or_else(|| {
        PlatformError::InvalidParameter(
            "Runtime: required for a Zip package (python3.x, nodejs*.x or provided.*)".into(),
        )
    })?;
    let f = NewFunction {
        name: target.name,
        runtime,
        handler: b.handler.unwrap_or_default(),
        memory_mb: memory(b.memory_size)?.unwrap_or(128),
        ephemeral_storage_mb: ephemeral(b.ephemeral_storage)?
            .unwrap_or(updraft_core::DEFAULT_EPHEMERAL_MB),
        snapshot: snap_start(b.snap_start)?.unwrap_or(false),
        timeout_ms: timeout_ms(b.timeout)?.unwrap_or(3000),
        env: b.environment.and_then(|e| e.variables).unwrap_or_default(),
        description: b.description.unwrap_or_default(),
        role: b.role,
        zip: decode_zip(code.zip_file.as_deref())?,
        publish: b.publish,
        tags: b.tags.unwrap_or_default(),
        logging: match b.logging_config {
            Some(l) => l.apply(&Default::default())?,
            None => Default::default(),
        },
    };
    let d = p.create_function(f).await?;
    Ok((
        StatusCode::CREATED,
        Json(function_configuration(&p, &d, false)),
    )
        .into_response())
}

pub async fn get(State(p): State<Platform>, Path(name): Path<String>, Q(q): Q<Query>) -> ApiResult {
    let t = Target::parse(&name, q.get("Qualifier").map(String::as_str))?;
    let d = p.function_detail(&t.name, t.qualifier.as_deref()).await?;
    let mut v = json!({
        "Configuration": function_configuration(&p, &d, false),
        "Code": {
            "RepositoryType": "S3",
            "Location": format!("{}/api/v1/code/{}", p.public_url(), d.row.code_sha256),
        },
    });
    if let Some(r) = d.settings.reserved_concurrency {
        v["Concurrency"] = json!({ "ReservedConcurrentExecutions": r });
    }
    // As Lambda: the function's tags, whichever version was asked for; no
    // `Tags` when it has none.
    let tags = p.function_tags(&t.name).await?;
    if !tags.is_empty() {
        v["Tags"] = json!(tags);
    }
    Ok(Json(v).into_response())
}

pub async fn get_configuration(
    State(p): State<Platform>,
    Path(name): Path<String>,
    Q(q): Q<Query>,
) -> ApiResult {
    let t = Target::parse(&name, q.get("Qualifier").map(String::as_str))?;
    let d = p.function_detail(&t.name, t.qualifier.as_deref()).await?;
    Ok(Json(function_configuration(&p, &d, false)).into_response())
}

pub async fn list(State(p): State<Platform>, Q(q): Q<Query>) -> ApiResult {
    let all = match q.get("FunctionVersion").map(String::as_str) {
        None | Some("") => false,
        Some("ALL") => true,
        Some(other) => {
            return Err(PlatformError::InvalidParameter(format!(
                "FunctionVersion: expected ALL, got {other:?}"
            ))
            .into())
        }
    };
    let items = p.lambda_functions(all).await?;
    let (page, next) = paginate(
        items,
        |d| format!("{}:{}", d.row.function, version_label(d.row.version)),
        &q,
    )?;
    let functions: Vec<_> = page
        .iter()
        .map(|d| function_configuration(&p, d, all))
        .collect();
    listing("Functions", functions, next)
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct UpdateCodeBody {
    zip_file: Option<String>,
    s3_bucket: Option<String>,
    s3_key: Option<String>,
    image_uri: Option<String>,
    publish: bool,
    dry_run: bool,
    revision_id: Option<String>,
    architectures: Option<Vec<String>>,
}

pub async fn update_code(
    State(p): State<Platform>,
    Path(name): Path<String>,
    Q(q): Q<Query>,
    bytes: Bytes,
) -> ApiResult {
    let name = Target::parse_unqualified(&name, &q)?;
    let b: UpdateCodeBody = body(&bytes)?;
    check_code_source(&Code {
        zip_file: None,
        s3_bucket: b.s3_bucket,
        s3_key: b.s3_key,
        image_uri: b.image_uri,
    })?;
    check_architectures(&b.architectures)?;
    let zip = decode_zip(b.zip_file.as_deref())?;
    if b.dry_run {
        let d = p.function_detail(&name, None).await?;
        return Ok(Json(function_configuration(&p, &d, false)).into_response());
    }
    let d = p
        .update_function_code(&name, &zip, b.publish, b.revision_id.as_deref())
        .await?;
    Ok(Json(function_configuration(&p, &d, false)).into_response())
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct UpdateConfigBody {
    role: Option<String>,
    handler: Option<String>,
    description: Option<String>,
    timeout: Option<i64>,
    memory_size: Option<i64>,
    ephemeral_storage: Option<EphemeralStorage>,
    snap_start: Option<SnapStart>,
    environment: Option<Environment>,
    runtime: Option<String>,
    revision_id: Option<String>,
    layers: Option<Vec<String>>,
    logging_config: Option<super::logging::LoggingConfigBody>,
}

pub async fn update_configuration(
    State(p): State<Platform>,
    Path(name): Path<String>,
    Q(q): Q<Query>,
    bytes: Bytes,
) -> ApiResult {
    let name = Target::parse_unqualified(&name, &q)?;
    let b: UpdateConfigBody = body(&bytes)?;
    if b.layers.as_ref().is_some_and(|l| !l.is_empty()) {
        return Err(PlatformError::InvalidParameter(
            "Layers: not supported by Updraft; put dependencies in the zip".into(),
        )
        .into());
    }
    let logging = match b.logging_config {
        Some(l) => Some(l.apply(&p.function_detail(&name, None).await?.row.config.logging)?),
        None => None,
    };
    let patch = ConfigPatch {
        runtime: b.runtime,
        handler: b.handler,
        memory_mb: memory(b.memory_size)?,
        ephemeral_storage_mb: ephemeral(b.ephemeral_storage)?,
        snapshot: snap_start(b.snap_start)?,
        timeout_ms: timeout_ms(b.timeout)?,
        env: b.environment.map(|e| e.variables.unwrap_or_default()),
        description: b.description,
        role: b.role,
        logging,
    };
    let d = p
        .update_function_configuration(&name, patch, b.revision_id.as_deref())
        .await?;
    Ok(Json(function_configuration(&p, &d, false)).into_response())
}

pub async fn delete(
    State(p): State<Platform>,
    Path(name): Path<String>,
    Q(q): Q<Query>,
) -> ApiResult {
    let t = Target::parse(&name, q.get("Qualifier").map(String::as_str))?;
    p.delete_function(&t.name, t.qualifier.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn list_versions(
    State(p): State<Platform>,
    Path(name): Path<String>,
    Q(q): Q<Query>,
) -> ApiResult {
    let name = Target::parse_unqualified(&name, &Query::new())?;
    let items = p.lambda_versions(&name).await?;
    let (page, next) = paginate(items, |d| version_label(d.row.version), &q)?;
    let versions: Vec<_> = page
        .iter()
        .map(|d| function_configuration(&p, d, true))
        .collect();
    listing("Versions", versions, next)
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct PublishBody {
    code_sha256: Option<String>,
    description: Option<String>,
    revision_id: Option<String>,
}

pub async fn publish_version(
    State(p): State<Platform>,
    Path(name): Path<String>,
    Q(q): Q<Query>,
    bytes: Bytes,
) -> ApiResult {
    let name = Target::parse_unqualified(&name, &q)?;
    let b: PublishBody = body(&bytes)?;
    let sha = b
        .code_sha256
        .as_deref()
        .map(|s| {
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map(hex::encode)
                .map_err(|_| {
                    PlatformError::InvalidParameter(format!(
                        "CodeSha256: expected the base64 sha256 GetFunction reports, got {s:?}"
                    ))
                })
        })
        .transpose()?;
    let d = p
        .publish_version(
            &name,
            b.description.as_deref(),
            sha.as_deref(),
            b.revision_id.as_deref(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(function_configuration(&p, &d, false)),
    )
        .into_response())
}
