//! The control logic of Updraft, apart from any HTTP: deploying functions,
//! resolving what an invocation runs, invoking through the scheduler,
//! metering, logs and usage. The API and the gateway parse requests into
//! calls on [`Platform`] and turn its results and [`PlatformError`]s into
//! responses.

mod access;
mod bus;
mod code;
mod error;
mod event_config;
mod invoker;
mod lambda;
mod lock;
mod logs;
mod mappings;
mod metrics;
mod queries;
pub mod queues;
mod registry;
mod sources;

pub use bus::{PutEntry, PutResult, DEFAULT_BUS, MAX_ENTRIES, MAX_ENTRY_BYTES};
pub use code::sha256_hex;
pub use error::PlatformError;
pub use event_config::{EventInvokeConfig, EventInvokeConfigInput};
pub use lambda::{
    revision_id, AccountSettings, ConfigPatch, FunctionDetail, NewFunction, Routing,
    MAX_RESERVED_CONCURRENCY, MAX_TAGS, MAX_TAG_KEY_CHARS, MAX_TAG_VALUE_CHARS, TOTAL_CODE_BYTES,
};
pub use lock::{DataDirLock, LOCK_FILE};
pub use logs::LogLimits;
pub use mappings::{EventSourceMapping, MappingInput, REPORT_BATCH_ITEM_FAILURES};
pub use queries::{FunctionInfo, LogEntry};
pub use registry::{DeployFunction, DeployReport, Deployed};
pub use updraft_auth::Credentials;
pub use updraft_core::logs::DEFAULT_INVOCATION_LOG_LIMIT;
pub use updraft_scheduler::InstanceSpec;
pub use updraft_store::{AccountUsage, AliasRow, FunctionSettings, Tags, VersionRow};
pub use updraft_store::{LogQuery, LogScope};
pub use updraft_traces as traces;
pub use updraft_triggers::{FailureCondition, DEFAULT_RETRY_BASE};

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use updraft_core::{now_ms, HttpRoute, RuntimeKind};
use updraft_metering::Prices;
pub use updraft_runtime_process::sandbox::netns::{
    Subnet as FunctionSubnet, DEFAULT_SUBNET as DEFAULT_FUNCTION_SUBNET,
};
use updraft_runtime_process::{Isolation, ProcessRuntime};
pub use updraft_runtime_process::{IsolationMode, RuntimeMapping, Runtimes, Sdk};
use updraft_runtime_wasm::WasmRuntime;
use updraft_scheduler::{Runtime, Scheduler};
use updraft_store::{BatchWriter, InvocationRecord, Store};
use updraft_triggers::{AsyncEvents, QueueConsumers, Schedules};

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
    /// The helper process that compiles wasm components (`updraft server`:
    /// its own binary, `updraft compile-wasm`); `None` compiles in process.
    pub wasm_compiler: Option<updraft_runtime_wasm::Compiler>,
    /// How much isolation instances must get (`--isolation`).
    pub isolation: IsolationMode,
    /// Functions share the host's network, loopback included
    /// (`--allow-function-loopback`).
    pub allow_function_loopback: bool,
    /// Where instances' addresses come from, a /30 each, when they have
    /// outbound network (`--function-subnet`).
    pub function_subnet: FunctionSubnet,
    /// Roles a CreateFunction `Role` may name, with their permissions
    /// (`--role NAME=PERMISSION,…`).
    pub roles: std::collections::BTreeMap<String, Vec<String>>,
    /// How long the credentials minted for an instance last
    /// (`--function-credentials-ttl`); an instance takes no invocation that could outlive them.
    pub function_credentials_ttl: Duration,
    /// Interpreters for Lambda runtime ids besides those on the instance
    /// `PATH` (`--runtime nodejs22.x=/path/to/node`).
    pub runtimes: Vec<RuntimeMapping>,
    /// Where invocation spans go (`--otlp-endpoint`; off: none are made).
    pub tracer: updraft_traces::Tracer,
    /// Whether invocations are counted for `/metrics` (`--no-metrics`: not).
    pub metrics: bool,
    /// Whether python3 instances are forked from a template process
    /// (`--no-zygotes`: not).
    pub zygotes: bool,
}

/// Where in the data directory `updraft server` keeps the AWS SDK for
/// functions unless given `--sdk-dir`.
pub const SDK_DIR: &str = "runtimes/sdk";

/// Manifest routes and the functions they lead to.
pub type Routes = Arc<Vec<(HttpRoute, String)>>;

struct Inner {
    config: PlatformConfig,
    store: Store,
    verifier: updraft_auth::Verifier,
    access: Arc<std::sync::OnceLock<updraft_runtime_process::FunctionAccess>>,
    code: code::CodeStore,
    scheduler: Scheduler,
    interpreters: Arc<Runtimes>,
    logs: Arc<logs::Logs>,
    records: BatchWriter<InvocationRecord>,
    cache: invoker::ResolveCache,
    routes: Mutex<(u64, Routes)>,
    events: AsyncEvents,
    schedules: Schedules,
    queues: QueueConsumers,
    buses: bus::BusCache,
    waiters: queues::Waiters,
    metrics: Arc<updraft_metrics::Metrics>,
}

/// The platform. Cheap to clone.
#[derive(Clone)]
pub struct Platform {
    inner: Arc<Inner>,
}

impl Platform {
    /// Opens the store (applying migrations), loads credentials, prepares the
    /// runtimes and cleans what an earlier run left. Functions get the AWS
    /// SDK found in `DATA_DIR/`[`SDK_DIR`], if any.
    pub async fn start(config: PlatformConfig) -> Result<Platform, PlatformError> {
        let sdk = Sdk::find(&config.data_dir.join(SDK_DIR));
        Platform::start_with_sdk(config, sdk).await
    }

    /// [`Platform::start`] with the AWS SDK that python3 and nodejs
    /// functions import (`updraft server --sdk-dir`, `--install-sdk`).
    pub async fn start_with_sdk(
        mut config: PlatformConfig,
        sdk: Sdk,
    ) -> Result<Platform, PlatformError> {
        use std::os::unix::fs::PermissionsExt;
        let wasm_compiler = config.wasm_compiler.take();
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
        let logs = logs::Logs::new(store.clone(), config.log_limits);
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
        .map_err(|e| PlatformError::InvalidParameter(e.to_string()))?;
        eprintln!("updraft: {}", isolation.summary());
        let interpreters = Arc::new(
            Runtimes::discover(&config.runtimes)
                .await
                .map_err(|e| PlatformError::InvalidParameter(e.to_string()))?,
        );
        eprintln!("updraft: runtimes: {}", interpreters.summary());
        let process = ProcessRuntime::new(
            data_dir,
            &config.region,
            isolation,
            interpreters.clone(),
            logs.clone(),
        )
        .map_err(|e| PlatformError::internal("preparing the process runtime", e))?;
        eprintln!("updraft: {}", sdk.summary());
        let process = process
            .with_sdk(sdk)
            .map_err(|e| PlatformError::internal("showing the AWS SDK to functions", e))?
            .with_zygotes(config.zygotes);
        process.prestart_zygotes();
        eprintln!(
            "updraft: python3 instances: {}",
            if config.zygotes {
                "forked from a template process per interpreter (--no-zygotes: started by exec)"
            } else {
                "started by exec (--no-zygotes)"
            }
        );
        let access = process.access();
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
        let wasm = WasmRuntime::new(&wasm_cache, wasm_compiler, &config.region, logs.clone())
            .map_err(|e| PlatformError::internal("preparing the wasm runtime", e))?;
        wasm.set_allow_loopback(config.allow_function_loopback);
        runtimes.insert(RuntimeKind::Wasm, Arc::new(wasm));
        let scheduler = Scheduler::new(runtimes, logs.clone());
        let records = logs::records(store.clone());
        // Stable across restarts of this server: it takes back what it held.
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let events = AsyncEvents::new(
            store.clone(),
            &config.region,
            format!("{}:{}", host.trim(), &key[..12]),
            config.retry_base,
        );
        let schedules = Schedules::new(store.clone(), &config.region, events.clone());
        let queues = QueueConsumers::new(store.clone(), &config.region);
        let platform = Platform {
            inner: Arc::new(Inner {
                config,
                store,
                verifier: updraft_auth::Verifier::new(credentials),
                access,
                code,
                scheduler,
                interpreters,
                logs,
                records,
                cache: invoker::ResolveCache::default(),
                routes: Mutex::new((0, Arc::new(Vec::new()))),
                schedules,
                queues,
                events,
                buses: bus::BusCache::default(),
                waiters: queues::Waiters::default(),
                metrics: Arc::new(updraft_metrics::Metrics::new()),
            }),
        };
        platform.refresh_routes().await?;
        for row in platform.inner.store.all_latest().await? {
            if row.config.scaling.min_instances > 0 {
                platform.keep_warm(&row.function).await;
            }
        }
        platform.inner.events.start(platform.clone()).await?;
        platform.inner.schedules.start();
        platform.inner.queues.start(platform.clone());
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

    /// The interpreters this server runs functions on.
    pub fn runtimes(&self) -> &Runtimes {
        &self.inner.interpreters
    }

    /// The Lambda runtime id a function reports (`python3` → the version it
    /// runs on here, `provided` → `provided.al2023`).
    pub fn runtime_id(&self, runtime: &str) -> String {
        self.inner.interpreters.lambda_id(runtime)
    }

    /// Refuses a runtime id this server has no interpreter for, naming
    /// what it has and the flag that maps one.
    pub(crate) fn check_runtime(
        &self,
        config: &updraft_core::FunctionConfig,
    ) -> Result<(), updraft_core::Invalid> {
        self.inner
            .interpreters
            .resolve(&config.runtime)
            .map(|_| ())
            .map_err(|e| updraft_core::Invalid::new("runtime", e.expected(), &config.runtime))
    }

    pub fn function_url(&self, name: &str) -> String {
        format!("{}/fn/{name}", self.inner.config.public_url)
    }

    /// Drains: no new invocations, in-flight ones finish (up to `grace`),
    /// instances stop, pending records and logs are written.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.schedules.stop();
        self.inner.queues.stop();
        self.inner.events.stop();
        self.inner.scheduler.shutdown(grace).await;
        self.inner.events.flush().await;
        self.inner.records.flush().await;
        self.inner.logs.flush().await;
        let tracer = self.inner.config.tracer.clone();
        let _ = tokio::task::spawn_blocking(move || tracer.shutdown()).await;
    }
}
