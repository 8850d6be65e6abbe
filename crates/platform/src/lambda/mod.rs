//! The control operations behind the AWS Lambda API subset (SPEC §4):
//! creating and updating functions outside any app, versions, aliases with
//! weighted routing, reserved concurrency and the function URL config. The
//! HTTP shapes, Lambda's field names and its error codes live in
//! `updraft-api`; this is the logic.

mod aliases;
mod functions;
mod settings;
mod tags;

pub use settings::{AccountSettings, MAX_RESERVED_CONCURRENCY, TOTAL_CODE_BYTES};
pub use tags::{MAX_TAGS, MAX_TAG_KEY_CHARS, MAX_TAG_VALUE_CHARS};

use crate::{Platform, PlatformError};
use std::collections::BTreeMap;
use updraft_core::{function_arn, FunctionConfig};
use updraft_store::{FunctionSettings, VersionRow};

/// Lambda's `RevisionId` shape (a UUID) from a content revision.
pub fn revision_id(revision: &str) -> String {
    let h: String = revision
        .chars()
        .chain(std::iter::repeat('0'))
        .take(32)
        .collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A fresh RevisionId for rows that are not content-addressed (aliases).
fn new_revision_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A function (one version of it) as the Lambda API shows it.
#[derive(Clone, Debug)]
pub struct FunctionDetail {
    pub row: VersionRow,
    pub settings: FunctionSettings,
}

/// CreateFunction's input, already decoded.
#[derive(Clone, Debug)]
pub struct NewFunction {
    pub name: String,
    pub runtime: String,
    pub handler: String,
    pub memory_mb: u32,
    /// `EphemeralStorage.Size`: the instance's `/tmp`, in MB.
    pub ephemeral_storage_mb: u32,
    /// `SnapStart.ApplyOn = PublishedVersions`.
    pub snapshot: bool,
    pub timeout_ms: u64,
    pub env: BTreeMap<String, String>,
    pub description: String,
    pub role: Option<String>,
    pub zip: Vec<u8>,
    pub publish: bool,
    /// `Tags`, checked before the function is made.
    pub tags: updraft_store::Tags,
    /// `LoggingConfig`.
    pub logging: updraft_core::LoggingConfig,
}

/// UpdateFunctionConfiguration's input: None fields stay as they are.
#[derive(Clone, Debug, Default)]
pub struct ConfigPatch {
    pub runtime: Option<String>,
    pub handler: Option<String>,
    pub memory_mb: Option<u32>,
    pub ephemeral_storage_mb: Option<u32>,
    pub snapshot: Option<bool>,
    pub timeout_ms: Option<u64>,
    pub env: Option<BTreeMap<String, String>>,
    pub description: Option<String>,
    pub role: Option<String>,
    /// `LoggingConfig`, whole.
    pub logging: Option<updraft_core::LoggingConfig>,
}

/// The additional version of an alias and its weight.
pub type Routing = Option<(i64, f64)>;

/// Checks a config made through the Lambda API (the name too).
fn check_config(name: &str, config: &FunctionConfig) -> Result<(), PlatformError> {
    if !updraft_core::valid_function_name(name) {
        return Err(PlatformError::Invalid(updraft_core::Invalid::new(
            "FunctionName",
            "1 to 64 letters, digits, '-' or '_'",
            name,
        )));
    }
    config.validate()?;
    Ok(())
}

impl Platform {
    pub(crate) fn not_found_q(&self, name: &str, q: &str) -> PlatformError {
        PlatformError::NotFound(format!(
            "Function not found: {}:{q}",
            function_arn(self.region(), name)
        ))
    }

    /// The base URL this server is reached at, e.g. `http://127.0.0.1:8080`.
    pub fn public_url(&self) -> &str {
        &self.inner.config.public_url
    }

    /// The function's ARN, qualified for published versions.
    pub fn version_arn(&self, name: &str, version: i64) -> String {
        let arn = function_arn(self.region(), name);
        if version > 0 {
            format!("{arn}:{version}")
        } else {
            arn
        }
    }

    async fn detail(&self, row: VersionRow) -> Result<FunctionDetail, PlatformError> {
        let settings = self.inner.store.function_settings(&row.function).await?;
        Ok(FunctionDetail { row, settings })
    }

    async fn latest_row(&self, name: &str) -> Result<VersionRow, PlatformError> {
        self.inner
            .store
            .get_version(name, 0)
            .await?
            .ok_or_else(|| self.not_found(name))
    }

    fn check_revision(
        &self,
        row: &VersionRow,
        expected: Option<&str>,
    ) -> Result<(), PlatformError> {
        match expected {
            Some(r) if r != revision_id(&row.revision) => Err(PlatformError::PreconditionFailed(
                "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id".into(),
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_ids_look_like_uuids() {
        let r = revision_id(&"ab".repeat(32));
        assert_eq!(r.len(), 36);
        assert_eq!(r.matches('-').count(), 4);
    }

    #[test]
    fn lambda_configs_are_checked_with_the_name() {
        let c = FunctionConfig {
            runtime: "python3.12".into(),
            handler: "a.b".into(),
            memory_mb: 64,
            ephemeral_storage_mb: updraft_core::DEFAULT_EPHEMERAL_MB,
            timeout_ms: 1000,
            env: Default::default(),
            url: updraft_core::UrlAuth::Private,
            cors: None,
            scaling: updraft_core::Scaling::default(),
            triggers: vec![],
            description: String::new(),
            permissions: Vec::new(),
            logging: Default::default(),
            snapshot: false,
        };
        match check_config("f", &c) {
            Err(PlatformError::Invalid(e)) => assert_eq!(e.field, "memory_mb"),
            other => panic!("{other:?}"),
        }
        match check_config("a/b", &c) {
            Err(PlatformError::Invalid(e)) => assert_eq!(e.field, "FunctionName"),
            other => panic!("{other:?}"),
        }
        let c = FunctionConfig {
            memory_mb: 128,
            ..c
        };
        check_config("f", &c).unwrap();
    }
}
