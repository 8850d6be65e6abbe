//! The control logic of Updraft, apart from any HTTP: deploying functions,
//! resolving what an invocation runs, invoking through the scheduler,
//! metering, logs and usage. The API and the gateway parse requests into
//! calls on [`Platform`] and turn its results and [`PlatformError`]s into
//! responses.

mod code;
mod error;
mod events;
mod lambda;
mod lock;
mod writer;

pub use code::{sha256_hex, MAX_ZIP_BYTES};
pub use error::PlatformError;
pub use events::{
    EventInvokeConfig, EventInvokeConfigInput, FailureCondition, DEFAULT_RETRY_BASE,
    MAX_EVENT_PAYLOAD_BYTES,
};
pub use lambda::{
    is_alias_name, revision_id, version_label, ConfigPatch, FunctionDetail, NewFunction, Qualifier,
    Routing, MAX_RESERVED_CONCURRENCY,
};
pub use lock::{DataDirLock, LOCK_FILE};
pub use updraft_auth::Credentials;
pub use updraft_core::logs::DEFAULT_INVOCATION_LOG_LIMIT;
pub use updraft_scheduler::InstanceSpec;
pub use updraft_store::{AliasRow, FunctionSettings, VersionRow};
pub use writer::LogLimits;

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use updraft_core::{
    function_arn, new_request_id, now_ms, FunctionConfig, HttpRequest, HttpRoute, Invocation,
    InvokeResult, Outcome, RuntimeKind,
};
use updraft_metering::{Prices, UsageReport};
pub use updraft_runtime_process::sandbox::netns::{
    Subnet as FunctionSubnet, DEFAULT_SUBNET as DEFAULT_FUNCTION_SUBNET,
};
pub use updraft_runtime_process::IsolationMode;
use updraft_runtime_process::{Isolation, ProcessRuntime};
use updraft_runtime_wasm::WasmRuntime;
use updraft_scheduler::{Runtime, Scheduler};
use updraft_store::{InvocationRecord, Store};

/// Lines kept per function by default (`updraft server --log-retention-lines`).
pub const DEFAULT_LOG_RETENTION_LINES: u64 = 100_000;

/// How the platform is set up.
pub struct PlatformConfig {
    pub data_dir: PathBuf,
    /// The lock on `data_dir`, held for the platform's life.
    pub lock: DataDirLock,
    pub database_url: String,
    pub region: String,
    pub prices: Prices,
    /// Log lines older than this are deleted (`updraft server --log-retention`).
    pub log_retention: Duration,
    /// Bytes one invocation may log and lines kept per function
    /// (`--invocation-log-limit`, `--log-retention-lines`).
    pub log_limits: LogLimits,
    /// The base URL function URLs are shown with, e.g. `http://127.0.0.1:8080`.
    pub public_url: String,
    /// Asynchronous events wait `retry_base × 2^(attempt-1)` before a retry
    /// (`updraft server --retry-base`; Lambda-like: [`DEFAULT_RETRY_BASE`]).
    pub retry_base: Duration,
    /// Compiled wasm components (`--wasm-cache-dir`; default DATA_DIR/wasm).
    pub wasm_cache_dir: Option<PathBuf>,
    /// How much isolation instances must get (`--isolation`).
    pub isolation: IsolationMode,
    /// Functions share the host's network, loopback included
    /// (`--allow-function-loopback`).
    pub allow_function_loopback: bool,
    /// Where instances' addresses come from, a /30 each, when they have
    /// outbound network (`--function-subnet`).
    pub function_subnet: FunctionSubnet,
}

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

/// What `ls` and `get` show of a function.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FunctionInfo {
    pub name: String,
    pub app: Option<String>,
    /// The published version `$LATEST` equals, or 0 when it has unpublished changes.
    pub version: i64,
    pub runtime: String,
    pub handler: String,
    pub memory_mb: u32,
    pub timeout_ms: u64,
    pub url: String,
    pub url_auth: updraft_core::UrlAuth,
    pub routes: Vec<String>,
    pub code_sha256: String,
    pub code_size: i64,
    pub updated_ms: i64,
    pub live_instances: u32,
    /// Of those, started and waiting for work.
    pub idle_instances: u32,
}

/// Log lines as the API returns them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LogEntry {
    pub id: i64,
    pub ts_ms: i64,
    pub request_id: String,
    pub text: String,
}

/// Manifest routes and the functions they lead to.
pub type Routes = Arc<Vec<(HttpRoute, String)>>;

type SpecCache = HashMap<(String, String), Arc<InstanceSpec>>;

struct Inner {
    config: PlatformConfig,
    store: Store,
    verifier: updraft_auth::Verifier,
    code: code::CodeStore,
    scheduler: Scheduler,
    logs: Arc<writer::Logs>,
    records: writer::BatchWriter<InvocationRecord>,
    specs: Mutex<SpecCache>,
    routes: Mutex<(u64, Routes)>,
    events: events::Events,
    lambda: lambda::LambdaState,
}

/// The platform. Cheap to clone.
#[derive(Clone)]
pub struct Platform {
    inner: Arc<Inner>,
}

impl Platform {
    /// Opens the store (applying migrations), loads credentials, prepares the
    /// runtimes and cleans what an earlier run left.
    pub async fn start(config: PlatformConfig) -> Result<Platform, PlatformError> {
        use std::os::unix::fs::PermissionsExt;
        let data_dir = &config.data_dir;
        std::fs::create_dir_all(data_dir)
            .map_err(|e| PlatformError::internal("creating the data directory", e))?;
        if data_dir.canonicalize().ok().as_deref() != Some(config.lock.dir()) {
            return Err(PlatformError::InvalidParameter(format!(
                "the data directory {} is not the one locked ({})",
                data_dir.display(),
                config.lock.dir().display()
            )));
        }
        // The server's alone: instances see their code only through the
        // read-only mounts of their own root.
        std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| PlatformError::internal("securing the data directory", e))?;
        let store = Store::open(&config.database_url)
            .await
            .map_err(|e| match e {
                updraft_store::StoreError::Config(m) => PlatformError::InvalidParameter(m),
                other => PlatformError::internal("opening the store", other),
            })?;
        for f in ["updraft.db", "updraft.db-wal", "updraft.db-shm"] {
            let _ =
                std::fs::set_permissions(data_dir.join(f), std::fs::Permissions::from_mode(0o600));
        }
        let credentials = Credentials::load_or_generate(data_dir)?;
        let code = code::CodeStore::new(data_dir)
            .map_err(|e| PlatformError::internal("preparing code storage", e))?;
        let logs = writer::Logs::new(store.clone(), config.log_limits);
        let key = sha256_hex(
            data_dir
                .canonicalize()
                .unwrap_or(data_dir.clone())
                .to_string_lossy()
                .as_bytes(),
        );
        let isolation = Isolation::detect(
            config.isolation,
            config.allow_function_loopback,
            config.function_subnet,
            &key[..12],
            data_dir,
        )
        .map_err(PlatformError::InvalidParameter)?;
        eprintln!("updraft: {}", isolation.summary());
        let process = ProcessRuntime::new(data_dir, &config.region, isolation, logs.clone())
            .map_err(|e| PlatformError::internal("preparing the process runtime", e))?;
        let process: Arc<dyn Runtime> = Arc::new(process);
        let mut runtimes: HashMap<RuntimeKind, Arc<dyn Runtime>> = HashMap::new();
        for kind in [
            RuntimeKind::Python3,
            RuntimeKind::Nodejs,
            RuntimeKind::Provided,
        ] {
            runtimes.insert(kind, process.clone());
        }
        let wasm_cache = config
            .wasm_cache_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("wasm"));
        let wasm = WasmRuntime::new(&wasm_cache, &config.region, logs.clone())
            .map_err(|e| PlatformError::internal("preparing the wasm runtime", e))?;
        wasm.set_allow_loopback(config.allow_function_loopback);
        runtimes.insert(RuntimeKind::Wasm, Arc::new(wasm));
        let scheduler = Scheduler::new(runtimes, logs.clone());
        let records = writer::records(store.clone());
        // Stable across restarts of this server: it takes back what it held.
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let events = events::Events::new(
            store.clone(),
            format!("{}:{}", host.trim(), &key[..12]),
            config.retry_base,
        );
        let platform = Platform {
            inner: Arc::new(Inner {
                config,
                store,
                verifier: updraft_auth::Verifier::new(credentials),
                code,
                scheduler,
                logs,
                records,
                specs: Mutex::new(HashMap::new()),
                routes: Mutex::new((0, Arc::new(Vec::new()))),
                events,
                lambda: lambda::LambdaState::default(),
            }),
        };
        platform.refresh_routes().await?;
        for row in platform.inner.store.all_latest().await? {
            if row.config.scaling.min_instances > 0 {
                platform.keep_warm(&row.function).await;
            }
        }
        platform.start_event_worker().await?;
        platform.start_log_pruner();
        Ok(platform)
    }

    /// Deletes log lines past the retention period, and each function's
    /// lines past its cap, hourly (and once now). The log writer also
    /// prunes a function as it writes, so a loud one is held to its cap in
    /// between.
    fn start_log_pruner(&self) {
        let weak = Arc::downgrade(&self.inner);
        let retention = self.inner.config.log_retention.as_millis() as i64;
        let keep = self.inner.config.log_limits.per_function_lines;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(3600));
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                match inner.store.prune_logs(now_ms() - retention).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, "pruned old log lines"),
                    Err(e) => tracing::warn!(error = %e, "could not prune old log lines"),
                }
                if keep == 0 {
                    continue;
                }
                let functions = match inner.store.log_functions().await {
                    Ok(f) => f,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not list the functions with logs");
                        continue;
                    }
                };
                for f in functions {
                    match inner.store.prune_function_logs(&f, keep).await {
                        Ok(0) => {}
                        Ok(n) => {
                            tracing::info!(function = %f, deleted = n, "pruned log lines past the cap")
                        }
                        Err(e) => {
                            tracing::warn!(function = %f, error = %e, "could not prune log lines")
                        }
                    }
                }
            }
        });
    }

    pub fn credentials(&self) -> &Credentials {
        self.inner.verifier.credentials()
    }

    /// Checks requests' credentials (and refuses replayed signatures).
    pub fn verifier(&self) -> &updraft_auth::Verifier {
        &self.inner.verifier
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn region(&self) -> &str {
        &self.inner.config.region
    }

    pub fn function_url(&self, name: &str) -> String {
        format!("{}/fn/{name}", self.inner.config.public_url)
    }

    /// The manifest routes in force, with a generation that changes whenever they do.
    pub fn routes(&self) -> (u64, Routes) {
        let r = self.inner.routes.lock().unwrap_or_else(|e| e.into_inner());
        (r.0, r.1.clone())
    }

    async fn refresh_routes(&self) -> Result<(), PlatformError> {
        let mut routes = Vec::new();
        for row in self.inner.store.all_latest().await? {
            for r in row.config.routes() {
                routes.push((r.clone(), row.function.clone()));
            }
        }
        let mut cur = self.inner.routes.lock().unwrap_or_else(|e| e.into_inner());
        *cur = (cur.0 + 1, Arc::new(routes));
        Ok(())
    }

    fn forget(&self, name: &str) {
        self.inner.lambda.forget(name);
        self.inner
            .specs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(n, _), _| n != name);
    }

    async fn keep_warm(&self, name: &str) {
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

    pub fn has_code(&self, sha: &str) -> bool {
        self.inner.code.has(sha)
    }

    // ---- deploy -----------------------------------------------------------

    fn check_config(name: &str, config: &FunctionConfig) -> Result<(), PlatformError> {
        if !updraft_core::valid_function_name(name) {
            return Err(PlatformError::InvalidParameter(format!(
                "function name {name:?}: expected 1 to 64 letters, digits, '-' or '_'"
            )));
        }
        config
            .validate()
            .map_err(|m| PlatformError::InvalidParameter(format!("functions.{name}.{m}")))?;
        Ok(())
    }

    /// Readies a function's code for its runtime before it is deployed
    /// (wasm: compiles the component and checks it against the proxy world),
    /// so broken code is refused naming `field` and nothing is deployed.
    async fn prepare_code(
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
            return Err(PlatformError::InvalidParameter(format!(
                "app name {app:?}: expected 1 to 64 letters, digits, '-' or '_'"
            )));
        }
        let store = &self.inner.store;
        let mut names = std::collections::HashSet::new();
        for f in &functions {
            Self::check_config(&f.name, &f.config)?;
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
        // Routes: each new route against every other function's routes.
        let all = store.all_latest().await?;
        let mut pruned = Vec::new();
        let mut others: Vec<(HttpRoute, String)> = Vec::new();
        for row in &all {
            if names.contains(&row.function) {
                continue;
            }
            let fun = store.get_function(&row.function).await?;
            if prune && fun.as_ref().and_then(|f| f.app.as_deref()) == Some(app) {
                pruned.push(row.function.clone());
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
            // The URL's auth is a function-level setting the Lambda API writes
            // too: the last writer wins (SPEC §4).
            store.set_url_auth(&f.name, f.config.url).await?;
            self.forget(&f.name);
            if outcome.changed {
                // Idle instances of the old version go now; busy ones finish first.
                self.inner.scheduler.retire(&f.name).await;
            }
            // Unpack at deploy time so the first invocation does not pay for it.
            self.resolve(&f.name, None).await?;
            self.keep_warm(&f.name).await;
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
        self.forget(name);
        self.inner.scheduler.retire(name).await;
        self.keep_warm(name).await;
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
        self.forget(name);
        self.inner.scheduler.set_warm(name, None);
        self.inner.scheduler.retire(name).await;
        // Lambda drops a deleted function's queued events.
        self.inner.store.drop_function_events(name).await?;
        self.inner.store.delete_function_settings(name).await?;
        self.refresh_routes().await
    }

    fn not_found(&self, name: &str) -> PlatformError {
        PlatformError::NotFound(format!(
            "Function not found: {}",
            function_arn(self.region(), name)
        ))
    }

    async fn info(
        &self,
        name: &str,
        latest: &VersionRow,
        app: Option<String>,
        updated_ms: i64,
        last_published: i64,
    ) -> Result<FunctionInfo, PlatformError> {
        let version = if last_published > 0 {
            match self.inner.store.get_version(name, last_published).await? {
                Some(v) if v.revision == latest.revision => last_published,
                _ => 0,
            }
        } else {
            0
        };
        Ok(FunctionInfo {
            name: name.into(),
            app,
            version,
            runtime: latest.config.runtime.clone(),
            handler: latest.config.handler.clone(),
            memory_mb: latest.config.memory_mb,
            timeout_ms: latest.config.timeout_ms,
            url: self.function_url(name),
            url_auth: self.effective_url_auth(name, &latest.config).await?,
            routes: latest.config.routes().map(|r| r.key()).collect(),
            code_sha256: latest.code_sha256.clone(),
            code_size: latest.code_size,
            updated_ms,
            live_instances: self.inner.scheduler.live_instances(name),
            idle_instances: self.inner.scheduler.idle_instances(name),
        })
    }

    pub async fn list(&self) -> Result<Vec<FunctionInfo>, PlatformError> {
        let store = &self.inner.store;
        let latest: HashMap<String, VersionRow> = store
            .all_latest()
            .await?
            .into_iter()
            .map(|v| (v.function.clone(), v))
            .collect();
        let mut out = Vec::new();
        for f in store.list_functions().await? {
            if let Some(l) = latest.get(&f.name) {
                out.push(
                    self.info(&f.name, l, f.app.clone(), f.updated_ms, f.last_published)
                        .await?,
                );
            }
        }
        Ok(out)
    }

    pub async fn get(&self, name: &str) -> Result<FunctionInfo, PlatformError> {
        let store = &self.inner.store;
        let f = store
            .get_function(name)
            .await?
            .ok_or_else(|| self.not_found(name))?;
        let latest = store
            .get_version(name, 0)
            .await?
            .ok_or_else(|| self.not_found(name))?;
        self.info(name, &latest, f.app, f.updated_ms, f.last_published)
            .await
    }

    // ---- invoke -----------------------------------------------------------

    /// What an invocation of `name` (optionally qualified) runs.
    pub async fn resolve(
        &self,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<Arc<InstanceSpec>, PlatformError> {
        // An alias picks its version per invocation (weighted); the pick is
        // then resolved like a version qualifier.
        let picked;
        let qualifier = match qualifier {
            Some(q) if lambda::is_alias_name(q) => {
                picked = self.pick_alias(name, q).await?;
                Some(picked.as_str())
            }
            other => other,
        };
        let q = qualifier.unwrap_or("").to_string();
        let key = (name.to_string(), q.clone());
        if let Some(spec) = self
            .inner
            .specs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(spec.clone());
        }
        let store = &self.inner.store;
        let version = match q.as_str() {
            "" | "$LATEST" => 0,
            v => v.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                PlatformError::InvalidParameter(format!(
                    "Qualifier {v:?}: expected $LATEST, a version number or an alias name"
                ))
            })?,
        };
        let row = store
            .get_version(name, version)
            .await?
            .ok_or_else(|| match version {
                0 => self.not_found(name),
                v => PlatformError::NotFound(format!(
                    "Function not found: {}:{v}",
                    function_arn(self.region(), name)
                )),
            })?;
        // An unqualified call runs $LATEST; it reports the published version it equals.
        let mut reported = row.version;
        if q.is_empty() {
            if let Some(f) = store.get_function(name).await? {
                if f.last_published > 0 {
                    if let Some(p) = store.get_version(name, f.last_published).await? {
                        if p.revision == row.revision {
                            reported = p.version;
                        }
                    }
                }
            }
        }
        let uid = self.inner.store.function_uid(name).await?;
        let code_dir = self.inner.code.unpacked(&row.code_sha256)?;
        let mut config = row.config;
        self.apply_function_settings(name, &mut config).await?;
        let spec = Arc::new(InstanceSpec {
            function: name.to_string(),
            version: reported,
            revision: row.revision,
            config,
            code_sha256: row.code_sha256,
            code_dir,
            uid,
        });
        self.inner
            .specs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, spec.clone());
        Ok(spec)
    }

    /// Runs a function once and records the invocation.
    pub async fn invoke(
        &self,
        name: &str,
        qualifier: Option<&str>,
        payload: Vec<u8>,
        client_context: Option<String>,
    ) -> Result<InvokeResult, PlatformError> {
        let spec = self.resolve(name, qualifier).await?;
        self.invoke_spec(spec, new_request_id(), payload, client_context)
            .await
    }

    /// Runs a resolved function once with a given request id.
    pub async fn invoke_spec(
        &self,
        spec: Arc<InstanceSpec>,
        request_id: String,
        payload: Vec<u8>,
        client_context: Option<String>,
    ) -> Result<InvokeResult, PlatformError> {
        let record_id = request_id.clone();
        self.invoke_spec_as(spec, request_id, record_id, payload, client_context, None)
            .await
    }

    /// Runs a resolved function on an HTTP request (the gateway's path into
    /// runtimes that take HTTP itself: wasm); `body` is the request body.
    pub async fn invoke_http(
        &self,
        spec: Arc<InstanceSpec>,
        request_id: String,
        http: HttpRequest,
        body: Vec<u8>,
    ) -> Result<InvokeResult, PlatformError> {
        let record_id = request_id.clone();
        self.invoke_spec_as(spec, request_id, record_id, body, None, Some(http))
            .await
    }

    /// [`Platform::invoke_spec`], metered under `record_id` (retries of an
    /// asynchronous event share its request id, yet each is an invocation).
    pub(crate) async fn invoke_spec_as(
        &self,
        spec: Arc<InstanceSpec>,
        request_id: String,
        record_id: String,
        payload: Vec<u8>,
        client_context: Option<String>,
        http: Option<HttpRequest>,
    ) -> Result<InvokeResult, PlatformError> {
        let mut arn = function_arn(self.region(), &spec.function);
        if spec.version > 0 {
            arn = format!("{arn}:{}", spec.version);
        }
        let inv = Invocation {
            request_id: request_id.clone(),
            payload,
            client_context,
            invoked_arn: arn,
            http,
        };
        // The invocation and its record run in a task of their own: a caller
        // that goes away (a closed connection) must not cancel them half-way,
        // which would lose the instance, the scheduler's count of it and the
        // metering.
        let platform = self.clone();
        let run = tokio::spawn(async move {
            let outcome = platform.inner.scheduler.invoke(spec.clone(), inv).await;
            match &outcome {
                Ok(result) => platform.record(&spec, record_id, result),
                Err(updraft_scheduler::SchedulerError::Throttled { .. }) => {
                    platform.record_throttle(&spec, record_id)
                }
                Err(_) => {}
            }
            outcome
        });
        let outcome = run
            .await
            .map_err(|e| PlatformError::internal("invocation task", e))?;
        outcome.map_err(PlatformError::from)
    }

    fn record_throttle(&self, spec: &InstanceSpec, record_id: String) {
        self.inner.records.push(InvocationRecord {
            request_id: record_id,
            function: spec.function.clone(),
            version: spec.version,
            start_ms: now_ms(),
            duration_us: 0,
            billed_ms: 0,
            memory_mb: spec.config.memory_mb as i64,
            max_memory_mb: 0,
            init_us: None,
            cold: false,
            outcome: "throttled".into(),
            error_type: Some("TooManyRequestsException".into()),
        });
    }

    fn record(&self, spec: &InstanceSpec, record_id: String, r: &InvokeResult) {
        let (outcome, error_type) = match &r.outcome {
            Outcome::Success(_) => ("success".to_string(), None),
            Outcome::Error {
                kind, error_type, ..
            } => (kind.as_str().to_string(), Some(error_type.clone())),
        };
        self.inner.records.push(InvocationRecord {
            request_id: record_id,
            function: spec.function.clone(),
            version: r.version,
            start_ms: r.stats.start_ms,
            duration_us: r.stats.duration_us as i64,
            billed_ms: if r.stats.duration_us == 0 {
                0
            } else {
                r.stats.billed_ms() as i64
            },
            memory_mb: r.stats.memory_mb as i64,
            max_memory_mb: r.stats.max_memory_mb as i64,
            init_us: r.stats.init_us.map(|v| v as i64),
            cold: r.stats.init_us.is_some(),
            outcome,
            error_type,
        });
    }

    /// Instances that exist for a function now.
    pub fn live_instances(&self, name: &str) -> u32 {
        self.inner.scheduler.live_instances(name)
    }

    // ---- logs and usage ---------------------------------------------------

    pub async fn logs(
        &self,
        name: &str,
        since_ms: i64,
        request_id: Option<&str>,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<LogEntry>, PlatformError> {
        self.inner.logs.flush().await;
        let lines = self
            .inner
            .store
            .logs(name, since_ms, request_id, after_id, limit)
            .await?;
        Ok(lines
            .into_iter()
            .map(|(id, l)| LogEntry {
                id,
                ts_ms: l.ts_ms,
                request_id: l.request_id,
                text: l.text,
            })
            .collect())
    }

    pub async fn usage(&self, since_ms: i64) -> Result<UsageReport, PlatformError> {
        self.inner.records.flush().await;
        let until_ms = now_ms() + 1;
        let records = self
            .inner
            .store
            .invocations_since(since_ms, until_ms)
            .await?;
        let fmt = |ms: i64| {
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64),
            )
            .to_string()
        };
        Ok(updraft_metering::usage(
            &records,
            fmt(since_ms),
            fmt(until_ms),
            &self.inner.config.prices,
        ))
    }

    /// Drains: no new invocations, in-flight ones finish (up to `grace`),
    /// instances stop, pending records and logs are written.
    pub async fn shutdown(&self, grace: Duration) {
        self.stop_event_worker();
        self.inner.scheduler.shutdown(grace).await;
        self.flush_events().await;
        self.inner.records.flush().await;
        self.inner.logs.flush().await;
    }
}
