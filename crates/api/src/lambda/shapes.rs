//! Lambda's JSON shapes of functions, aliases and URL configs.

use base64::Engine;
use serde_json::{json, Map, Value};
use updraft_core::version_label;
use updraft_core::UrlAuth;
use updraft_platform::{revision_id, AliasRow, FunctionDetail, Platform};

/// The Role shown when none was given (SPEC §4: accepted and ignored).
const DEFAULT_ROLE: &str = "arn:aws:iam::000000000000:role/updraft";

/// Lambda's timestamp format: `2026-11-23T18:16:49.000+0000`.
pub fn timestamp(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    let s = humantime::format_rfc3339_millis(t).to_string();
    match s.strip_suffix('Z') {
        Some(s) => format!("{s}+0000"),
        None => s,
    }
}

/// Lambda's `CodeSha256`: the base64 of the sha256 bytes.
pub fn code_sha256_b64(hex_sha: &str) -> String {
    match hex::decode(hex_sha) {
        Ok(bytes) => base64::engine::general_purpose::STANDARD.encode(bytes),
        Err(_) => hex_sha.to_string(),
    }
}

/// The architecture this server runs functions on, in Lambda's words.
pub fn architecture() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "x86_64",
    }
}

/// `FunctionConfiguration`. `qualify_latest` writes `$LATEST`'s ARN with its
/// qualifier, as ListVersionsByFunction does.
pub fn function_configuration(p: &Platform, d: &FunctionDetail, qualify_latest: bool) -> Value {
    let row = &d.row;
    let c = &row.config;
    let name = &row.function;
    let arn = if row.version == 0 && qualify_latest {
        format!("{}:$LATEST", p.version_arn(name, 0))
    } else {
        p.version_arn(name, row.version)
    };
    let mut v = json!({
        "FunctionName": name,
        "FunctionArn": arn,
        "Runtime": p.runtime_id(&c.runtime),
        "Role": d.settings.role.as_deref().unwrap_or(DEFAULT_ROLE),
        "Handler": c.handler,
        "CodeSize": row.code_size,
        "Description": if row.version == 0 { &c.description } else { &row.description },
        "Timeout": c.timeout_ms.div_ceil(1000),
        "MemorySize": c.memory_mb,
        "LastModified": timestamp(row.created_ms),
        "CodeSha256": code_sha256_b64(&row.code_sha256),
        "Version": version_label(row.version),
        "TracingConfig": {"Mode": "PassThrough"},
        "RevisionId": revision_id(&row.revision),
        "State": "Active",
        "LastUpdateStatus": "Successful",
        "PackageType": "Zip",
        "Architectures": [architecture()],
        "EphemeralStorage": {"Size": c.ephemeral_storage_mb},
        "SnapStart": if c.snapshot {
            json!({"ApplyOn": "PublishedVersions", "OptimizationStatus": "On"})
        } else {
            json!({"ApplyOn": "None", "OptimizationStatus": "Off"})
        },
        "LoggingConfig": super::logging::shape(&c.logging, name),
    });
    if !c.env.is_empty() {
        v["Environment"] = json!({ "Variables": c.env });
    }
    v
}

/// `AliasConfiguration`.
pub fn alias_configuration(p: &Platform, a: &AliasRow) -> Value {
    let mut v = json!({
        "AliasArn": format!("{}:{}", p.version_arn(&a.function, 0), a.name),
        "Name": a.name,
        "FunctionVersion": version_label(a.version),
        "Description": a.description,
        "RevisionId": a.revision_id,
    });
    if let Some((extra, weight)) = a.extra {
        let mut weights = Map::new();
        weights.insert(extra.to_string(), json!(weight));
        v["RoutingConfig"] = json!({ "AdditionalVersionWeights": weights });
    }
    v
}

/// Lambda's `AuthType` for an Updraft URL setting.
pub fn auth_type(a: UrlAuth) -> &'static str {
    match a {
        UrlAuth::Public => "NONE",
        UrlAuth::Private => "AWS_IAM",
    }
}
