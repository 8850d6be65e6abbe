//! The registry: functions, versions, settings, routes and code as deploys
//! and rollbacks change them, and the one call that drops what is cached of
//! a function after any change ([`Platform::changed`]).

use crate::{Platform, PlatformError, Routes};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use updraft_core::{function_arn, FunctionConfig, HttpRoute, Invalid, RuntimeKind};
use updraft_scheduler::InstanceSpec;

/// One function of a deploy.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployFunction {
    pub name: String,
    pub config: FunctionConfig,
    pub code_sha256: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Deployed {
    pub name: String,
    pub version: i64,
    pub url: String,
    pub changed: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeployReport {
    pub functions: Vec<Deployed>,
    pub pruned: Vec<String>,
}

/// Function and app names (Lambda's rule).
const NAME_RULE: &str = "1 to 64 letters, digits, '-' or '_'";

/// What changed of a function, for [`Platform::changed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// Settings, aliases, published versions: `$LATEST` runs the same code.
    Settings,
    /// `$LATEST`'s code or configuration.
    Revision,
    /// The function is gone.
    Deleted,
}

impl Change {
    /// `Revision` when `$LATEST` got a new revision, else `Settings`.
    pub(crate) fn of(new_revision: bool) -> Change {
        if new_revision {
            Change::Revision
        } else {
            Change::Settings
        }
    }
}

impl Platform {
    /// The manifest routes in force, with a generation that changes whenever they do.
    pub fn routes(&self) -> (u64, Routes) {
        let r = self.inner.routes.lock().unwrap_or_else(|e| e.into_inner());
        (r.0, r.1.clone())
    }

    pub(crate) async fn refresh_routes(&self) -> Result<(), PlatformError> {
        let mut routes = Vec::new();
        for row in self.inner.store.routed_latest().await? {
            for r in row.config.routes() {
                routes.push((r.clone(), row.function.clone()));
            }
        }
        let mut cur = self.inner.routes.lock().unwrap_or_else(|e| e.into_inner());
        *cur = (cur.0 + 1, Arc::new(routes));
        Ok(())
    }

    /// The one call after any change to a function: drops what is cached of
    /// it (specs, aliases), retires idle instances that no longer match, and
    /// keeps `min_instances` warm for what it is now.
    pub(crate) async fn changed(&self, name: &str, change: Change) {
        self.inner.cache.forget(name);
        match change {
            Change::Settings => {}
            Change::Revision => {
                // Idle instances of the old revision go now; busy ones finish first.
                self.inner.scheduler.retire(name).await;
            }
            Change::Deleted => {
                self.inner.scheduler.set_warm(name, None);
                self.inner.scheduler.retire(name).await;
                return;
            }
        }
        self.keep_warm(name).await;
    }

    pub(crate) async fn keep_warm(&self, name: &str) {
        match self.resolve(name, None).await {
            Ok(spec) if spec.config.scaling.min_instances > 0 => {
                self.inner.scheduler.set_warm(name, Some(spec))
            }
            _ => self.inner.scheduler.set_warm(name, None),
        }
    }

    // ---- code -------------------------------------------------------------

    pub fn put_code(&self, bytes: &[u8]) -> Result<String, PlatformError> {
        self.inner.code.put(bytes)
    }

    /// [`Platform::put_code`] of a zip whose sha256 is known (checked by the
    /// caller against the body): the server hashes an upload once.
    pub fn put_code_hashed(&self, bytes: &[u8], sha256: &str) -> Result<(), PlatformError> {
        self.inner.code.put_hashed(bytes, sha256)
    }

    pub fn has_code(&self, sha: &str) -> bool {
        self.inner.code.has(sha)
    }

    // ---- deploy -----------------------------------------------------------

    fn check_config(name: &str, config: &FunctionConfig) -> Result<(), PlatformError> {
        if !updraft_core::valid_function_name(name) {
            return Err(Invalid::new("function name", NAME_RULE, name).into());
        }
        config
            .validate()
            .map_err(|e| e.prefixed(&format!("functions.{name}.")))?;
        for (i, t) in config.triggers.iter().enumerate() {
            updraft_rules::check_trigger(t)
                .map_err(|e| e.prefixed(&format!("functions.{name}.triggers[{i}].")))?;
        }
        Ok(())
    }

    /// Readies a function's code for its runtime before it is deployed
    /// (wasm: compiles the component and checks it against the proxy world),
    /// so broken code is refused naming `field` and nothing is deployed.
    pub(crate) async fn prepare_code(
        &self,
        name: &str,
        config: &FunctionConfig,
        code_sha256: &str,
        field: &str,
    ) -> Result<(), PlatformError> {
        if config.kind() != RuntimeKind::Wasm {
            return Ok(());
        }
        let code_dir = self.inner.code.unpacked(code_sha256).map_err(|e| match e {
            PlatformError::InvalidParameter(m) => {
                PlatformError::InvalidParameter(format!("{field}: {m}"))
            }
            other => other,
        })?;
        let spec = InstanceSpec {
            function: name.to_string(),
            version: 0,
            revision: String::new(),
            config: config.clone(),
            code_sha256: code_sha256.to_string(),
            code_dir,
            uid: 0,
            invoked_arn: String::new(),
        };
        self.inner
            .scheduler
            .prepare(&spec)
            .await
            .map_err(|m| PlatformError::InvalidParameter(format!("{field}: {m}")))
    }

    /// Deploys an app's functions: validates all of them first, so a bad one
    /// deploys nothing, then publishes a version of each that changed.
    pub async fn deploy_app(
        &self,
        app: &str,
        functions: Vec<DeployFunction>,
        prune: bool,
    ) -> Result<DeployReport, PlatformError> {
        if !updraft_core::valid_function_name(app) {
            return Err(Invalid::new("app name", NAME_RULE, app).into());
        }
        let store = &self.inner.store;
        let mut names = std::collections::HashSet::new();
        for f in &functions {
            Self::check_config(&f.name, &f.config)?;
            self.check_runtime(&f.config)
                .map_err(|e| e.prefixed(&format!("functions.{}.", f.name)))?;
            if !names.insert(f.name.clone()) {
                return Err(PlatformError::InvalidParameter(format!(
                    "function {} is listed twice",
                    f.name
                )));
            }
            if !self.has_code(&f.code_sha256) {
                return Err(PlatformError::InvalidParameter(format!(
                    "functions.{}: code package {} was not uploaded (PUT /api/v1/code/SHA256 first)",
                    f.name, f.code_sha256
                )));
            }
            let field = format!("functions.{}.code", f.name);
            self.prepare_code(&f.name, &f.config, &f.code_sha256, &field)
                .await?;
            if let Some(existing) = store.get_function(&f.name).await? {
                if existing.app.as_deref() != Some(app) {
                    let owner = existing
                        .app
                        .map(|a| format!("app {a}"))
                        .unwrap_or_else(|| "no app (it was created through the Lambda API)".into());
                    return Err(PlatformError::Conflict(format!(
                        "function {} belongs to {owner}, not to app {app}; function names are global",
                        f.name
                    )));
                }
            }
        }
        // Routes: each new route against the routes of every other
        // function that has any (read from the store: another server may
        // have deployed them).
        let pruned: Vec<String> = if prune {
            store
                .app_functions(app)
                .await?
                .into_iter()
                .filter(|n| !names.contains(n))
                .collect()
        } else {
            Vec::new()
        };
        let mut others: Vec<(HttpRoute, String)> = Vec::new();
        for row in store.routed_latest().await? {
            if names.contains(&row.function) || pruned.contains(&row.function) {
                continue;
            }
            others.extend(
                row.config
                    .routes()
                    .map(|r| (r.clone(), row.function.clone())),
            );
        }
        for f in &functions {
            for r in f.config.routes() {
                if let Some((o, of)) = others
                    .iter()
                    .find(|(o, of)| *of != f.name && r.conflicts_with(o))
                {
                    return Err(PlatformError::Conflict(format!(
                        "route \"{}\" of function {} conflicts with route \"{}\" of function {of}",
                        r.key(),
                        f.name,
                        o.key()
                    )));
                }
            }
            others.extend(f.config.routes().map(|r| (r.clone(), f.name.clone())));
        }

        let mut deployed = Vec::new();
        for f in functions {
            let size = self.inner.code.size(&f.code_sha256)?;
            let outcome = store
                .deploy(&f.name, app, &f.config, &f.code_sha256, size)
                .await?;
            // The URL's auth and CORS are function-level settings the Lambda
            // API writes too: the last writer wins (SPEC §4).
            let cors = f
                .config
                .cors
                .as_ref()
                .map(|c| serde_json::to_string(c).expect("CORS settings always serialize"));
            store
                .set_url(&f.name, f.config.url, cors.as_deref())
                .await?;
            self.sync_triggers(&f.name, Some(&f.config)).await?;
            self.changed(&f.name, Change::of(outcome.changed)).await;
            // Unpack at deploy time so the first invocation does not pay for it.
            self.resolve(&f.name, None).await?;
            deployed.push(Deployed {
                url: self.function_url(&f.name),
                name: f.name,
                version: outcome.version.version,
                changed: outcome.changed,
            });
        }
        for name in &pruned {
            self.delete(name).await?;
        }
        self.refresh_routes().await?;
        Ok(DeployReport {
            functions: deployed,
            pruned,
        })
    }

    /// Makes an earlier version current again, as a new version.
    pub async fn rollback(&self, name: &str, to: Option<i64>) -> Result<Deployed, PlatformError> {
        let store = &self.inner.store;
        let function = store
            .get_function(name)
            .await?
            .ok_or_else(|| self.not_found(name))?;
        let versions = store.list_versions(name).await?;
        let latest = versions
            .iter()
            .find(|v| v.version == 0)
            .ok_or_else(|| self.not_found(name))?;
        let current = versions
            .iter()
            .filter(|v| v.version > 0 && v.revision == latest.revision)
            .map(|v| v.version)
            .max();
        let target = match to {
            Some(n) => versions
                .iter()
                .find(|v| v.version == n && n > 0)
                .ok_or_else(|| {
                    PlatformError::NotFound(format!("function {name} has no version {n}"))
                })?,
            None => versions
                .iter()
                .filter(|v| {
                    v.version > 0 && Some(v.version) < current && v.revision != latest.revision
                })
                .max_by_key(|v| v.version)
                .ok_or_else(|| {
                    PlatformError::Conflict(format!(
                        "function {name} has no earlier version to roll back to"
                    ))
                })?,
        };
        if target.revision == latest.revision {
            return Err(PlatformError::Conflict(format!(
                "function {name} already runs the code and configuration of version {}",
                target.version
            )));
        }
        let app = function.app.clone().unwrap_or_default();
        let outcome = if function.app.is_some() {
            store
                .deploy(
                    name,
                    &app,
                    &target.config,
                    &target.code_sha256,
                    target.code_size,
                )
                .await?
                .version
        } else {
            store
                .update_latest(name, &target.config, &target.code_sha256, target.code_size)
                .await?;
            store
                .publish(name, &format!("rollback to version {}", target.version))
                .await?
        };
        self.sync_triggers(name, Some(&target.config)).await?;
        self.changed(name, Change::Revision).await;
        self.refresh_routes().await?;
        Ok(Deployed {
            name: name.into(),
            version: outcome.version,
            url: self.function_url(name),
            changed: true,
        })
    }

    pub async fn delete(&self, name: &str) -> Result<(), PlatformError> {
        if !self.inner.store.delete_function(name).await? {
            return Err(self.not_found(name));
        }
        self.changed(name, Change::Deleted).await;
        self.sync_triggers(name, None).await?;
        // Lambda drops a deleted function's queued events.
        self.inner.store.drop_function_events(name).await?;
        self.inner.store.delete_function_settings(name).await?;
        self.refresh_routes().await
    }

    pub(crate) fn not_found(&self, name: &str) -> PlatformError {
        PlatformError::NotFound(format!(
            "Function not found: {}",
            function_arn(self.region(), name)
        ))
    }
}
