//! CreateFunction, GetFunction, ListFunctions, ListVersionsByFunction,
//! UpdateFunctionCode, UpdateFunctionConfiguration, PublishVersion and
//! DeleteFunction.

use super::{check_config, ConfigPatch, FunctionDetail, NewFunction};
use crate::registry::Change;
use crate::{Platform, PlatformError};
use std::collections::HashMap;
use updraft_core::{FunctionConfig, Qualifier, RuntimeKind, Scaling, UrlAuth};
use updraft_store::{FunctionSettings, StoreError};

impl Platform {
    // ---- functions ----------------------------------------------------------

    /// CreateFunction: a function of no app, `$LATEST` from the zip, published
    /// as version 1 when asked.
    pub async fn create_function(&self, f: NewFunction) -> Result<FunctionDetail, PlatformError> {
        let config = FunctionConfig {
            runtime: f.runtime,
            handler: f.handler,
            memory_mb: f.memory_mb,
            ephemeral_storage_mb: f.ephemeral_storage_mb,
            timeout_ms: f.timeout_ms,
            env: f.env,
            url: UrlAuth::Private,
            cors: None,
            scaling: Scaling::default(),
            triggers: Vec::new(),
            description: f.description,
            // The role's grants, as the server defines them (`--role`).
            permissions: self.role_permissions(f.role.as_deref()),
            logging: f.logging,
            snapshot: f.snapshot,
        };
        let mut config = config;
        if config.kind() == RuntimeKind::Wasm {
            config.scaling.per_instance = updraft_manifest::DEFAULT_WASM_PER_INSTANCE;
        }
        check_config(&f.name, &config)?;
        self.check_runtime(&config)?;
        super::tags::check_tags(&f.tags)?;
        let sha = self.put_code(&f.zip)?;
        self.prepare_code(&f.name, &config, &sha, "ZipFile").await?;
        let store = &self.inner.store;
        let mut row = store
            .create_function(&f.name, None, &config, &sha, f.zip.len() as i64)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => {
                    PlatformError::Conflict(format!("Function already exist: {}", f.name))
                }
                other => other.into(),
            })?;
        if let Some(role) = &f.role {
            store.set_role(&f.name, role).await?;
        }
        if !f.tags.is_empty() {
            store
                .tag_function(&f.name, &f.tags, super::MAX_TAGS)
                .await?;
        }
        if f.publish {
            row = store.publish(&f.name, &config.description).await?;
        }
        self.changed(&f.name, Change::Settings).await;
        // Unpack now, so the first invocation does not pay for it.
        self.resolve(&f.name, None).await?;
        self.detail(row).await
    }

    /// One version (or `$LATEST`, or the version an alias names).
    pub async fn function_detail(
        &self,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<FunctionDetail, PlatformError> {
        let store = &self.inner.store;
        let version = match Qualifier::parse(qualifier)? {
            Qualifier::Latest => 0,
            Qualifier::Version(v) => v,
            Qualifier::Alias(a) => {
                store
                    .get_alias(name, &a)
                    .await?
                    .ok_or_else(|| self.not_found_q(name, &a))?
                    .version
            }
        };
        let row = store
            .get_version(name, version)
            .await?
            .ok_or_else(|| match version {
                0 => self.not_found(name),
                v => self.not_found_q(name, &v.to_string()),
            })?;
        self.detail(row).await
    }

    /// `$LATEST` of every function (or every version with `all`), by name.
    pub async fn lambda_functions(&self, all: bool) -> Result<Vec<FunctionDetail>, PlatformError> {
        let store = &self.inner.store;
        let settings: HashMap<String, FunctionSettings> = store
            .all_function_settings()
            .await?
            .into_iter()
            .map(|s| (s.function.clone(), s))
            .collect();
        let rows = if all {
            let mut rows = Vec::new();
            for f in store.list_functions().await? {
                rows.extend(store.list_versions(&f.name).await?);
            }
            rows
        } else {
            store.all_latest().await?
        };
        Ok(rows
            .into_iter()
            .map(|row| {
                let settings =
                    settings
                        .get(&row.function)
                        .cloned()
                        .unwrap_or_else(|| FunctionSettings {
                            function: row.function.clone(),
                            ..Default::default()
                        });
                FunctionDetail { row, settings }
            })
            .collect())
    }

    /// `$LATEST`, then published versions ascending.
    pub async fn lambda_versions(&self, name: &str) -> Result<Vec<FunctionDetail>, PlatformError> {
        let store = &self.inner.store;
        let rows = store.list_versions(name).await?;
        if rows.is_empty() {
            return Err(self.not_found(name));
        }
        let settings = store.function_settings(name).await?;
        Ok(rows
            .into_iter()
            .map(|row| FunctionDetail {
                row,
                settings: settings.clone(),
            })
            .collect())
    }

    /// UpdateFunctionCode: new code for `$LATEST`, published when asked.
    pub async fn update_function_code(
        &self,
        name: &str,
        zip: &[u8],
        publish: bool,
        expected_revision: Option<&str>,
    ) -> Result<FunctionDetail, PlatformError> {
        let latest = self.latest_row(name).await?;
        self.check_revision(&latest, expected_revision)?;
        let sha = self.put_code(zip)?;
        self.prepare_code(name, &latest.config, &sha, "ZipFile")
            .await?;
        let store = &self.inner.store;
        let mut row = store
            .update_latest(name, &latest.config, &sha, zip.len() as i64)
            .await?;
        let changed = row.revision != latest.revision;
        if publish {
            row = store.publish(name, &row.config.description).await?;
        }
        self.changed(name, Change::of(changed)).await;
        self.detail(row).await
    }

    /// UpdateFunctionConfiguration: changes the given fields of `$LATEST`.
    pub async fn update_function_configuration(
        &self,
        name: &str,
        patch: ConfigPatch,
        expected_revision: Option<&str>,
    ) -> Result<FunctionDetail, PlatformError> {
        let latest = self.latest_row(name).await?;
        self.check_revision(&latest, expected_revision)?;
        let mut config = latest.config.clone();
        let new_runtime = patch.runtime.is_some();
        if let Some(v) = patch.runtime {
            config.runtime = v;
        }
        if let Some(v) = patch.handler {
            config.handler = v;
        }
        if let Some(v) = patch.memory_mb {
            config.memory_mb = v;
        }
        if let Some(v) = patch.ephemeral_storage_mb {
            config.ephemeral_storage_mb = v;
        }
        if let Some(v) = patch.snapshot {
            config.snapshot = v;
        }
        if let Some(v) = patch.timeout_ms {
            config.timeout_ms = v;
        }
        if let Some(v) = patch.env {
            config.env = v;
        }
        if let Some(v) = patch.description {
            config.description = v;
        }
        if let Some(v) = patch.logging {
            config.logging = v;
        }
        if let Some(role) = &patch.role {
            config.permissions = self.role_permissions(Some(role));
        }
        if config.kind() == RuntimeKind::Wasm && latest.config.kind() != RuntimeKind::Wasm {
            config.scaling.per_instance = updraft_manifest::DEFAULT_WASM_PER_INSTANCE;
        } else if config.kind() != RuntimeKind::Wasm {
            config.scaling.per_instance = 1;
        }
        check_config(name, &config)?;
        if new_runtime {
            self.check_runtime(&config)?;
        }
        if config.kind() != latest.config.kind() {
            self.prepare_code(name, &config, &latest.code_sha256, "Runtime")
                .await?;
        }
        let store = &self.inner.store;
        if let Some(role) = &patch.role {
            store.set_role(name, role).await?;
        }
        let row = if config != latest.config {
            store
                .update_latest(name, &config, &latest.code_sha256, latest.code_size)
                .await?
        } else {
            latest.clone()
        };
        self.changed(name, Change::of(row.revision != latest.revision))
            .await;
        self.detail(row).await
    }

    /// PublishVersion: `$LATEST` as a new version, or the last one when it is unchanged.
    pub async fn publish_version(
        &self,
        name: &str,
        description: Option<&str>,
        expected_code_sha256: Option<&str>,
        expected_revision: Option<&str>,
    ) -> Result<FunctionDetail, PlatformError> {
        let latest = self.latest_row(name).await?;
        self.check_revision(&latest, expected_revision)?;
        if let Some(sha) = expected_code_sha256 {
            if sha != latest.code_sha256 {
                return Err(PlatformError::InvalidParameter(
                    "CodeSha256: it does not match the code of $LATEST".into(),
                ));
            }
        }
        let description = description.unwrap_or(&latest.config.description);
        let row = self.inner.store.publish(name, description).await?;
        self.changed(name, Change::Settings).await;
        self.detail(row).await
    }

    /// DeleteFunction: the whole function, or one published version.
    pub async fn delete_function(
        &self,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<(), PlatformError> {
        match Qualifier::parse(qualifier)? {
            Qualifier::Latest if qualifier.is_none() => self.delete(name).await,
            Qualifier::Latest => Err(PlatformError::InvalidParameter(
                "Qualifier: $LATEST version cannot be deleted without deleting the function".into(),
            )),
            Qualifier::Alias(_) => Err(PlatformError::InvalidParameter(
                "Qualifier: expected a version number; delete an alias with DeleteAlias".into(),
            )),
            Qualifier::Version(v) => {
                let store = &self.inner.store;
                if store.get_function(name).await?.is_none() {
                    return Err(self.not_found(name));
                }
                let users: Vec<String> = store
                    .list_aliases(name)
                    .await?
                    .into_iter()
                    .filter(|a| a.version == v || a.extra.map(|e| e.0) == Some(v))
                    .map(|a| a.name)
                    .collect();
                if !users.is_empty() {
                    return Err(PlatformError::Conflict(format!(
                        "Unable to delete version because the following aliases reference it: [{}]",
                        users.join(", ")
                    )));
                }
                if !store.delete_version(name, v).await? {
                    return Err(self.not_found_q(name, &v.to_string()));
                }
                self.changed(name, Change::Settings).await;
                Ok(())
            }
        }
    }
}
