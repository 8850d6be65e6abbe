//! The control operations behind the AWS Lambda API subset (SPEC §4):
//! creating and updating functions outside any app, versions, aliases with
//! weighted routing, reserved concurrency and the function URL config. The
//! HTTP shapes live in `updraft-api`; this is the logic.

use crate::{Platform, PlatformError};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use updraft_core::{function_arn, now_ms, FunctionConfig, RuntimeKind, Scaling, UrlAuth};
use updraft_store::{AliasRow, AliasUpdate, FunctionSettings, StoreError, VersionRow};

/// The most reserved concurrency a function may get (as `scaling.max_instances`).
pub const MAX_RESERVED_CONCURRENCY: i64 = 1000;

/// Alias rows by (function, alias), so an alias invocation costs no store query.
#[derive(Default)]
pub(crate) struct LambdaState {
    aliases: Mutex<HashMap<(String, String), Arc<AliasRow>>>,
    /// Bumped by every invalidation, so a fill racing with a write is dropped.
    generation: AtomicU64,
}

impl LambdaState {
    pub(crate) fn forget(&self, name: &str) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.aliases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(n, _), _| n != name);
    }
}

/// What a qualifier (`Qualifier=`, or `name:qualifier`) names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Qualifier<'a> {
    Latest,
    Version(i64),
    Alias(&'a str),
}

impl<'a> Qualifier<'a> {
    /// `$LATEST`, a version number (1 and up) or an alias name (Lambda's
    /// pattern: letters, digits, `-`, `_`, not all digits, at most 128).
    pub fn parse(q: Option<&'a str>) -> Result<Qualifier<'a>, PlatformError> {
        let q = match q {
            None | Some("") | Some("$LATEST") => return Ok(Qualifier::Latest),
            Some(q) => q,
        };
        if q.bytes().all(|b| b.is_ascii_digit()) {
            return match q.parse::<i64>() {
                Ok(n) if n > 0 => Ok(Qualifier::Version(n)),
                _ => Err(PlatformError::InvalidParameter(format!(
                    "Qualifier: expected $LATEST, a version number from 1 or an alias name, got {q:?}"
                ))),
            };
        }
        if is_alias_name(q) {
            return Ok(Qualifier::Alias(q));
        }
        Err(PlatformError::InvalidParameter(format!(
            "Qualifier: expected $LATEST, a version number or an alias name (letters, digits, '-', '_'), got {q:?}"
        )))
    }
}

/// Lambda's alias pattern `(?!^[0-9]+$)([a-zA-Z0-9-_]+)`, 1 to 128 characters.
pub fn is_alias_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !s.bytes().all(|b| b.is_ascii_digit())
}

/// `$LATEST` for 0, the number otherwise.
pub fn version_label(version: i64) -> String {
    if version == 0 {
        "$LATEST".into()
    } else {
        version.to_string()
    }
}

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

/// A uniform number in [0, 1) for the weighted alias pick.
fn uniform() -> f64 {
    let b = uuid::Uuid::new_v4().into_bytes();
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[..8]);
    (u64::from_le_bytes(x) >> 11) as f64 / (1u64 << 53) as f64
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
    pub timeout_ms: u64,
    pub env: BTreeMap<String, String>,
    pub description: String,
    pub role: Option<String>,
    pub zip: Vec<u8>,
    pub publish: bool,
}

/// UpdateFunctionConfiguration's input: None fields stay as they are.
#[derive(Clone, Debug, Default)]
pub struct ConfigPatch {
    pub runtime: Option<String>,
    pub handler: Option<String>,
    pub memory_mb: Option<u32>,
    pub ephemeral_storage_mb: Option<u32>,
    pub timeout_ms: Option<u64>,
    pub env: Option<BTreeMap<String, String>>,
    pub description: Option<String>,
    pub role: Option<String>,
}

/// The additional version of an alias and its weight.
pub type Routing = Option<(i64, f64)>;

/// Checks a config as the Lambda API reports it: the error names Lambda's field.
fn check_lambda_config(name: &str, config: &FunctionConfig) -> Result<(), PlatformError> {
    if !updraft_core::valid_function_name(name) {
        return Err(PlatformError::InvalidParameter(format!(
            "FunctionName: expected 1 to 64 letters, digits, '-' or '_', got {name:?}"
        )));
    }
    if let Err(m) = config.validate() {
        let (field, rest) = m.split_once(':').unwrap_or(("", m.as_str()));
        let field = match field {
            "runtime" => "Runtime",
            "handler" => "Handler",
            "memory_mb" => "MemorySize",
            "ephemeral_storage_mb" => "EphemeralStorage.Size",
            "timeout" => "Timeout",
            "env" => "Environment.Variables",
            other => other,
        };
        let rest = rest.replace("a duration from 1ms to 15m", "1 to 900 seconds");
        return Err(PlatformError::InvalidParameter(format!("{field}:{rest}")));
    }
    Ok(())
}

/// Makes an invocation honour function-level settings: the URL's auth and the
/// reserved concurrency (which caps `max_instances`; 0 throttles at once).
pub(crate) fn apply_settings(settings: &FunctionSettings, config: &mut FunctionConfig) {
    if let Some(auth) = settings.url_auth {
        config.url = auth;
    }
    if let Some(r) = settings.reserved_concurrency {
        let r = r.clamp(0, MAX_RESERVED_CONCURRENCY) as u32;
        let s = &mut config.scaling;
        // Reserved concurrency counts invocations; a wasm instance takes
        // `per_instance` of them, so the cap is taken in single slots.
        if s.per_instance > 1 && s.max_instances.saturating_mul(s.per_instance) > r {
            s.per_instance = 1;
            s.max_instances = r;
        } else {
            s.max_instances = s.max_instances.min(r);
        }
        s.min_instances = s.min_instances.min(s.max_instances);
        if r == 0 {
            s.max_queue_wait_ms = 0;
        }
    }
}

impl Platform {
    fn not_found_q(&self, name: &str, q: &str) -> PlatformError {
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

    /// Picks the version an alias invocation runs: the alias's version, or
    /// its additional one with the routing weight. The alias row is cached;
    /// the pick is made anew for every invocation.
    pub(crate) async fn pick_alias(
        &self,
        name: &str,
        alias: &str,
    ) -> Result<String, PlatformError> {
        let row = self.cached_alias(name, alias).await?;
        let version = match row.extra {
            Some((v, w)) if uniform() < w => v,
            _ => row.version,
        };
        Ok(version_label(version))
    }

    async fn cached_alias(&self, name: &str, alias: &str) -> Result<Arc<AliasRow>, PlatformError> {
        let state = &self.inner.lambda;
        let key = (name.to_string(), alias.to_string());
        if let Some(a) = state
            .aliases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(a.clone());
        }
        let generation = state.generation.load(Ordering::SeqCst);
        let row = self
            .inner
            .store
            .get_alias(name, alias)
            .await?
            .ok_or_else(|| self.not_found_q(name, alias))?;
        let row = Arc::new(row);
        let mut cache = state.aliases.lock().unwrap_or_else(|e| e.into_inner());
        if state.generation.load(Ordering::SeqCst) == generation {
            cache.insert(key, row.clone());
        }
        Ok(row)
    }

    /// Function-level settings applied to a version's config (resolve's miss path).
    pub(crate) async fn apply_function_settings(
        &self,
        name: &str,
        config: &mut FunctionConfig,
    ) -> Result<(), PlatformError> {
        let settings = self.inner.store.function_settings(name).await?;
        apply_settings(&settings, config);
        Ok(())
    }

    /// Who may call the function's URL now (the last writer wins).
    pub async fn effective_url_auth(
        &self,
        name: &str,
        latest: &FunctionConfig,
    ) -> Result<UrlAuth, PlatformError> {
        let s = self.inner.store.function_settings(name).await?;
        Ok(s.url_auth.unwrap_or(latest.url))
    }

    /// Invalidates what is cached of a function after a Lambda API write.
    async fn changed(&self, name: &str, new_revision: bool) {
        self.forget(name);
        if new_revision {
            // Idle instances of the old $LATEST go now; busy ones finish first.
            self.inner.scheduler.retire(name).await;
        }
        self.keep_warm(name).await;
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
            scaling: Scaling::default(),
            triggers: Vec::new(),
            description: f.description,
        };
        let mut config = config;
        if config.kind() == RuntimeKind::Wasm {
            config.scaling.per_instance = updraft_manifest::DEFAULT_WASM_PER_INSTANCE;
        }
        check_lambda_config(&f.name, &config)?;
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
        if f.publish {
            row = store.publish(&f.name, &config.description).await?;
        }
        self.changed(&f.name, false).await;
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
                    .get_alias(name, a)
                    .await?
                    .ok_or_else(|| self.not_found_q(name, a))?
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
        self.changed(name, changed).await;
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
        if let Some(v) = patch.timeout_ms {
            config.timeout_ms = v;
        }
        if let Some(v) = patch.env {
            config.env = v;
        }
        if let Some(v) = patch.description {
            config.description = v;
        }
        if config.kind() == RuntimeKind::Wasm && latest.config.kind() != RuntimeKind::Wasm {
            config.scaling.per_instance = updraft_manifest::DEFAULT_WASM_PER_INSTANCE;
        } else if config.kind() != RuntimeKind::Wasm {
            config.scaling.per_instance = 1;
        }
        check_lambda_config(name, &config)?;
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
        self.changed(name, row.revision != latest.revision).await;
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
        self.changed(name, false).await;
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
                self.changed(name, false).await;
                Ok(())
            }
        }
    }

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
        self.inner.lambda.forget(name);
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
        self.inner.lambda.forget(name);
        Ok(row)
    }

    pub async fn delete_alias(&self, name: &str, alias: &str) -> Result<(), PlatformError> {
        if self.inner.store.get_function(name).await?.is_none() {
            return Err(self.not_found(name));
        }
        // Lambda answers 204 for an alias that does not exist.
        self.inner.store.delete_alias(name, alias).await?;
        self.inner.lambda.forget(name);
        self.forget(name);
        Ok(())
    }

    // ---- concurrency ----------------------------------------------------------

    /// PutFunctionConcurrency: caps the function's concurrent invocations.
    pub async fn put_concurrency(&self, name: &str, reserved: i64) -> Result<(), PlatformError> {
        if !(0..=MAX_RESERVED_CONCURRENCY).contains(&reserved) {
            return Err(PlatformError::InvalidParameter(format!(
                "ReservedConcurrentExecutions: expected 0 to {MAX_RESERVED_CONCURRENCY}, got {reserved}"
            )));
        }
        self.set_concurrency(name, Some(reserved)).await
    }

    pub async fn delete_concurrency(&self, name: &str) -> Result<(), PlatformError> {
        self.set_concurrency(name, None).await
    }

    async fn set_concurrency(
        &self,
        name: &str,
        reserved: Option<i64>,
    ) -> Result<(), PlatformError> {
        self.inner
            .store
            .set_reserved_concurrency(name, reserved)
            .await
            .map_err(|e| match e {
                StoreError::NotFound(_) => self.not_found(name),
                other => other.into(),
            })?;
        self.changed(name, false).await;
        Ok(())
    }

    pub async fn get_concurrency(&self, name: &str) -> Result<Option<i64>, PlatformError> {
        if self.inner.store.get_function(name).await?.is_none() {
            return Err(self.not_found(name));
        }
        Ok(self
            .inner
            .store
            .function_settings(name)
            .await?
            .reserved_concurrency)
    }

    // ---- function URL ---------------------------------------------------------

    /// The URL config: the URL always exists (SPEC §4), so this never fails
    /// for an existing function; `url_auth` is the effective one.
    pub async fn url_config(&self, name: &str) -> Result<FunctionSettings, PlatformError> {
        let latest = self.latest_row(name).await?;
        let mut s = self.inner.store.function_settings(name).await?;
        s.url_auth = Some(s.url_auth.unwrap_or(latest.config.url));
        if s.url_created_ms == 0 {
            s.url_created_ms = latest.created_ms;
            s.url_updated_ms = latest.created_ms;
        }
        Ok(s)
    }

    /// Create (Conflict when one was created already) or Update the URL config.
    pub async fn put_url_config(
        &self,
        name: &str,
        create: bool,
        auth: Option<UrlAuth>,
        cors: Option<Option<String>>,
    ) -> Result<FunctionSettings, PlatformError> {
        self.latest_row(name).await?;
        self.inner
            .store
            .put_url_config(name, create, auth, cors)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => PlatformError::Conflict(format!(
                    "Failed to create function url config for [functionArn = {}]. Error message:  FunctionUrlConfig exists for this Lambda function",
                    function_arn(self.region(), name)
                )),
                other => other.into(),
            })?;
        self.changed(name, false).await;
        self.url_config(name).await
    }

    /// DeleteFunctionUrlConfig: the URL stays, and becomes private (AWS_IAM).
    pub async fn delete_url_config(&self, name: &str) -> Result<(), PlatformError> {
        self.latest_row(name).await?;
        self.inner.store.delete_url_config(name).await?;
        self.changed(name, false).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualifiers() {
        assert_eq!(Qualifier::parse(None).unwrap(), Qualifier::Latest);
        assert_eq!(
            Qualifier::parse(Some("$LATEST")).unwrap(),
            Qualifier::Latest
        );
        assert_eq!(
            Qualifier::parse(Some("12")).unwrap(),
            Qualifier::Version(12)
        );
        assert_eq!(
            Qualifier::parse(Some("live")).unwrap(),
            Qualifier::Alias("live")
        );
        assert!(Qualifier::parse(Some("0")).is_err());
        assert!(Qualifier::parse(Some("a b")).is_err());
        assert!(!is_alias_name("123"));
        assert!(is_alias_name("v-1_b"));
    }

    #[test]
    fn revision_ids_look_like_uuids() {
        let r = revision_id(&"ab".repeat(32));
        assert_eq!(r.len(), 36);
        assert_eq!(r.matches('-').count(), 4);
    }

    #[test]
    fn reserved_concurrency_caps_and_zero_throttles() {
        let mut c = FunctionConfig {
            runtime: "python3".into(),
            handler: "a.b".into(),
            memory_mb: 128,
            ephemeral_storage_mb: updraft_core::DEFAULT_EPHEMERAL_MB,
            timeout_ms: 1000,
            env: Default::default(),
            url: UrlAuth::Private,
            scaling: Scaling {
                min_instances: 3,
                ..Scaling::default()
            },
            triggers: vec![],
            description: String::new(),
        };
        let mut s = FunctionSettings {
            reserved_concurrency: Some(2),
            url_auth: Some(UrlAuth::Public),
            ..Default::default()
        };
        apply_settings(&s, &mut c);
        assert_eq!(c.scaling.max_instances, 2);
        assert_eq!(c.scaling.min_instances, 2);
        assert_eq!(c.url, UrlAuth::Public);
        s.reserved_concurrency = Some(0);
        apply_settings(&s, &mut c);
        assert_eq!(c.scaling.max_instances, 0);
        assert_eq!(c.scaling.max_queue_wait_ms, 0);
        // wasm: the cap counts invocations, not instances of 16.
        let wasm = FunctionConfig {
            runtime: "wasm".into(),
            scaling: Scaling {
                max_instances: 10,
                per_instance: 16,
                ..Scaling::default()
            },
            ..c.clone()
        };
        for (reserved, cap) in [(50, 50), (500, 160)] {
            let mut w = wasm.clone();
            s.reserved_concurrency = Some(reserved);
            apply_settings(&s, &mut w);
            assert_eq!(w.scaling.max_instances * w.scaling.per_instance, cap);
        }
    }

    #[test]
    fn lambda_field_names_in_errors() {
        let c = FunctionConfig {
            runtime: "python3.12".into(),
            handler: "a.b".into(),
            memory_mb: 64,
            ephemeral_storage_mb: updraft_core::DEFAULT_EPHEMERAL_MB,
            timeout_ms: 1000,
            env: Default::default(),
            url: UrlAuth::Private,
            scaling: Scaling::default(),
            triggers: vec![],
            description: String::new(),
        };
        let e = check_lambda_config("f", &c).unwrap_err().to_string();
        assert!(e.starts_with("MemorySize:"), "{e}");
        let c = FunctionConfig {
            runtime: "wasm".into(),
            memory_mb: 128,
            ephemeral_storage_mb: updraft_core::DEFAULT_EPHEMERAL_MB,
            ..c
        };
        check_lambda_config("f", &c).unwrap();
    }
}
