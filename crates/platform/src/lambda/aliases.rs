//! Aliases: CreateAlias, GetAlias, ListAliases, UpdateAlias, DeleteAlias.

use super::{new_revision_id, Routing};
use crate::registry::Change;
use crate::{Platform, PlatformError};
use updraft_core::{function_arn, is_alias_name, now_ms};
use updraft_store::{AliasRow, AliasUpdate};

impl Platform {
    // ---- aliases ------------------------------------------------------------

    async fn check_alias_target(
        &self,
        name: &str,
        version: i64,
        routing: Routing,
    ) -> Result<(), PlatformError> {
        let store = &self.inner.store;
        if store.get_version(name, version).await?.is_none() {
            return Err(if version == 0 {
                self.not_found(name)
            } else {
                self.not_found_q(name, &version.to_string())
            });
        }
        if let Some((extra, weight)) = routing {
            if !(0.0..=1.0).contains(&weight) || weight.is_nan() {
                return Err(PlatformError::InvalidParameter(format!(
                    "RoutingConfig.AdditionalVersionWeights: expected a weight from 0.0 to 1.0, got {weight}"
                )));
            }
            if version == 0 || extra == 0 {
                return Err(PlatformError::InvalidParameter(
                    "RoutingConfig: $LATEST is not supported for an alias pointing to more than 1 version; use published versions".into(),
                ));
            }
            if extra == version {
                return Err(PlatformError::InvalidParameter(format!(
                    "RoutingConfig.AdditionalVersionWeights: version {extra} is already the alias's primary version"
                )));
            }
            if store.get_version(name, extra).await?.is_none() {
                return Err(self.not_found_q(name, &extra.to_string()));
            }
        }
        Ok(())
    }

    pub async fn create_alias(
        &self,
        name: &str,
        alias: &str,
        version: i64,
        routing: Routing,
        description: &str,
    ) -> Result<AliasRow, PlatformError> {
        if !is_alias_name(alias) {
            return Err(PlatformError::InvalidParameter(format!(
                "Name: expected letters, digits, '-' or '_' (not only digits, at most 128), got {alias:?}"
            )));
        }
        if self.inner.store.get_function(name).await?.is_none() {
            return Err(self.not_found(name));
        }
        self.check_alias_target(name, version, routing).await?;
        let now = now_ms();
        let row = self
            .inner
            .store
            .create_alias(&AliasRow {
                function: name.into(),
                name: alias.into(),
                version,
                extra: routing,
                description: description.into(),
                revision_id: new_revision_id(),
                created_ms: now,
                updated_ms: now,
            })
            .await?;
        self.changed(name, Change::Settings).await;
        Ok(row)
    }

    pub async fn get_alias(&self, name: &str, alias: &str) -> Result<AliasRow, PlatformError> {
        if self.inner.store.get_function(name).await?.is_none() {
            return Err(self.not_found(name));
        }
        self.inner
            .store
            .get_alias(name, alias)
            .await?
            .ok_or_else(|| {
                PlatformError::NotFound(format!(
                    "Alias not found: {}:{alias}",
                    function_arn(self.region(), name)
                ))
            })
    }

    /// A function's aliases, optionally only those naming `version`.
    pub async fn list_aliases(
        &self,
        name: &str,
        version: Option<i64>,
    ) -> Result<Vec<AliasRow>, PlatformError> {
        if self.inner.store.get_function(name).await?.is_none() {
            return Err(self.not_found(name));
        }
        Ok(self
            .inner
            .store
            .list_aliases(name)
            .await?
            .into_iter()
            .filter(|a| version.is_none_or(|v| a.version == v || a.extra.map(|e| e.0) == Some(v)))
            .collect())
    }

    /// UpdateAlias: None fields stay; `routing` Some(None) removes the split.
    pub async fn update_alias(
        &self,
        name: &str,
        alias: &str,
        version: Option<i64>,
        routing: Option<Routing>,
        description: Option<String>,
        expected_revision: Option<&str>,
    ) -> Result<AliasRow, PlatformError> {
        let cur = self.get_alias(name, alias).await?;
        if let Some(r) = expected_revision {
            if r != cur.revision_id {
                return Err(PlatformError::PreconditionFailed(
                    "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id".into(),
                ));
            }
        }
        let target = version.unwrap_or(cur.version);
        let split = routing.unwrap_or(cur.extra);
        self.check_alias_target(name, target, split).await?;
        let row = self
            .inner
            .store
            .update_alias(
                name,
                alias,
                AliasUpdate {
                    version,
                    extra: routing,
                    description,
                    revision_id: new_revision_id(),
                },
                expected_revision,
            )
            .await?;
        self.changed(name, Change::Settings).await;
        Ok(row)
    }

    pub async fn delete_alias(&self, name: &str, alias: &str) -> Result<(), PlatformError> {
        if self.inner.store.get_function(name).await?.is_none() {
            return Err(self.not_found(name));
        }
        // Lambda answers 204 for an alias that does not exist.
        self.inner.store.delete_alias(name, alias).await?;
        self.changed(name, Change::Settings).await;
        Ok(())
    }
}
