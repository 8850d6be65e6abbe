//! The wasm runtime: functions are `wasi:http/proxy` components (plus the
//! `wasi:cli` interfaces, as `wasmtime serve -S cli` provides) run by
//! wasmtime. One `Engine` with the pooling allocator; each component compiled
//! once at deploy into a cache keyed by its content hash (the most recent
//! ones also kept in memory, linked: a `ProxyPre` each); a fresh `Store` per
//! request, limited to `memory_mb` and stopped at its deadline by epochs.
//!
//! In the scheduler's terms an instance of a wasm function is a *slot*: room
//! for one concurrent request on a loaded version (`max_instances ×
//! per_instance` of them). Starting the first slot of a version loads it (the
//! cold start); further slots share it.

mod cache;
pub mod compile;
mod engine;
mod guest;
pub mod outbound;
mod slot;

use futures_util::future::BoxFuture;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};
use updraft_core::{ErrorKind, LogSink, Outcome};
use updraft_scheduler::{Instance, InstanceSpec, Runtime, StartFailure};
use wasmtime::component::{Component, Linker};
use wasmtime::Engine;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

pub use compile::Compiler;
use guest::Guest;
use slot::{guest_env, Slot};

/// Largest response body passed on (Lambda's synchronous limit).
pub const MAX_RESPONSE_BYTES: usize = updraft_core::limits::SYNC_PAYLOAD_BYTES;

#[derive(Debug, thiserror::Error)]
pub enum WasmError {
    /// The code is not a component this runtime can run; the text says why.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}: {1}")]
    Io(&'static str, #[source] std::io::Error),
    #[error("wasm engine: {0}")]
    Engine(String),
}

/// A component loaded for serving: pre-linked.
struct Loaded {
    pre: ProxyPre<Guest>,
}

/// A version being served: held by its slots (the first one's start was
/// the cold start), found by further slots while any lives.
pub(crate) struct Serving {
    loaded: Arc<Loaded>,
}

impl Serving {
    pub(crate) fn pre(&self) -> &ProxyPre<Guest> {
        &self.loaded.pre
    }
}

struct Inner {
    /// Guests may reach loopback and link-local addresses (`--allow-function-loopback`).
    allow_loopback: std::sync::atomic::AtomicBool,
    engine: Engine,
    linker: Linker<Guest>,
    artifacts: cache::Artifacts,
    /// Loaded versions by code package; alive while a slot holds them.
    loaded: Mutex<HashMap<String, Weak<Serving>>>,
    /// One load at a time, so concurrent cold starts of a version load it once.
    loading: tokio::sync::Mutex<()>,
    /// The most recently loaded components, compiled and linked, kept after
    /// their versions scaled to zero (no store or instance is left): a start
    /// from zero then takes one from memory, neither loading nor linking.
    recent: Recent,
    ticker: engine::Ticker,
    logs: Arc<dyn LogSink>,
    region: String,
}

/// Runs wasm functions. Cheap to clone.
#[derive(Clone)]
pub struct WasmRuntime {
    inner: Arc<Inner>,
}

impl WasmRuntime {
    /// Lets guests' outgoing requests reach loopback and link-local
    /// addresses (refused by default: outbound.rs).
    pub fn set_allow_loopback(&self, allow: bool) {
        self.inner
            .allow_loopback
            .store(allow, std::sync::atomic::Ordering::Relaxed);
    }

    /// Builds the engine and the linker (wasi:http plus every WASI p2
    /// interface; no preopened directories, no network sockets), and opens the
    /// artifact cache `cache_dir` (the server's `DATA_DIR/wasm` by default).
    /// Components are compiled by `compiler`'s helper process, or in this
    /// process when it is `None`.
    pub fn new(
        cache_dir: &Path,
        compiler: Option<Compiler>,
        region: &str,
        logs: Arc<dyn LogSink>,
    ) -> Result<WasmRuntime, WasmError> {
        let (engine, pooling) = engine::build().map_err(|e| WasmError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .and_then(|()| wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker))
            .map_err(|e| WasmError::Engine(format!("{e:#}")))?;
        let artifacts = cache::Artifacts::new(cache_dir, &engine, compiler)
            .map_err(|e| WasmError::Io("preparing the wasm cache directory", e))?;
        let ticker = engine::Ticker::start(engine.clone())
            .map_err(|e| WasmError::Io("starting the epoch ticker", e))?;
        tracing::debug!(pooling, "wasm runtime ready");
        Ok(WasmRuntime {
            inner: Arc::new(Inner {
                allow_loopback: std::sync::atomic::AtomicBool::new(false),
                engine,
                linker,
                artifacts,
                loaded: Mutex::new(HashMap::new()),
                loading: tokio::sync::Mutex::new(()),
                recent: Recent::default(),
                ticker,
                logs,
                region: region.to_string(),
            }),
        })
    }

    /// Compiles a version's component unless it is cached, and checks that it
    /// links against the proxy world; the linked component stays in memory
    /// for the first request.
    async fn prepare_spec(&self, spec: &InstanceSpec) -> Result<(), WasmError> {
        self.linked(spec).await.map(|_| ())
    }

    /// The component of `spec`, compiled and linked: from memory if a recent
    /// version used it, else loaded from the artifact cache (compiled if need
    /// be) and linked.
    async fn linked(&self, spec: &InstanceSpec) -> Result<Arc<Loaded>, WasmError> {
        if let Some(l) = self.inner.recent.get(&spec.code_sha256) {
            return Ok(l);
        }
        let inner = self.inner.clone();
        let code_sha = spec.code_sha256.clone();
        let code_dir = spec.code_dir.clone();
        let component = tokio::task::spawn_blocking(move || {
            inner.artifacts.load(&inner.engine, &code_sha, &code_dir)
        })
        .await
        .map_err(|e| WasmError::Engine(format!("load task: {e}")))??;
        let loaded = Arc::new(Loaded {
            pre: link(&self.inner.linker, &component)?,
        });
        self.inner.recent.put(&spec.code_sha256, loaded.clone());
        Ok(loaded)
    }

    /// The loaded version of `spec`, loading it if no slot holds it; true when
    /// this call loaded it.
    async fn load(&self, spec: &InstanceSpec) -> Result<(Arc<Serving>, bool), WasmError> {
        if let Some(l) = self.cached(&spec.code_sha256) {
            return Ok((l, false));
        }
        let _one = self.inner.loading.lock().await;
        if let Some(l) = self.cached(&spec.code_sha256) {
            return Ok((l, false));
        }
        let loaded = Arc::new(Serving {
            loaded: self.linked(spec).await?,
        });
        let mut map = self.inner.loaded.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, w| w.strong_count() > 0);
        map.insert(spec.code_sha256.clone(), Arc::downgrade(&loaded));
        Ok((loaded, true))
    }

    fn cached(&self, code_sha: &str) -> Option<Arc<Serving>> {
        let map = self.inner.loaded.lock().unwrap_or_else(|e| e.into_inner());
        map.get(code_sha).and_then(Weak::upgrade)
    }
}

/// How many linked components [`Recent`] keeps (their code is mapped from
/// the artifact files; pages not in use can be reclaimed by the kernel).
const RECENT_COMPONENTS: usize = 32;

/// A small most-recently-used list of linked components by code package.
#[derive(Default)]
struct Recent(Mutex<Vec<(String, Arc<Loaded>)>>);

impl Recent {
    fn get(&self, code_sha: &str) -> Option<Arc<Loaded>> {
        let mut list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let pos = list.iter().position(|(k, _)| k == code_sha)?;
        let entry = list.remove(pos);
        let component = entry.1.clone();
        list.push(entry);
        Some(component)
    }

    fn put(&self, code_sha: &str, component: Arc<Loaded>) {
        let mut list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        list.retain(|(k, _)| k != code_sha);
        list.push((code_sha.to_string(), component));
        if list.len() > RECENT_COMPONENTS {
            list.remove(0);
        }
    }
}

fn link(linker: &Linker<Guest>, component: &Component) -> Result<ProxyPre<Guest>, WasmError> {
    let pre = linker.instantiate_pre(component).map_err(|e| {
        WasmError::Invalid(format!(
            "the component imports what the wasi:http/proxy world (with wasi:cli) does not provide: {e:#}"
        ))
    })?;
    ProxyPre::new(pre).map_err(|e| {
        WasmError::Invalid(format!(
            "the component does not export wasi:http/incoming-handler (the wasi:http/proxy world): {e:#}"
        ))
    })
}

impl Runtime for WasmRuntime {
    fn start<'a>(
        &'a self,
        spec: Arc<InstanceSpec>,
        _request_id: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn Instance>, StartFailure>> {
        Box::pin(async move {
            match self.load(&spec).await {
                Ok((loaded, cold)) => Ok(Box::new(Slot {
                    runtime: self.clone(),
                    env: guest_env(&spec, &self.inner.region),
                    spec,
                    loaded,
                    cold,
                }) as Box<dyn Instance>),
                Err(e) => Err(StartFailure {
                    outcome: Outcome::platform_error(
                        ErrorKind::Init,
                        "Runtime.InvalidEntrypoint",
                        e.to_string(),
                    ),
                    max_memory_mb: 0,
                }),
            }
        })
    }

    fn prepare<'a>(&'a self, spec: &'a InstanceSpec) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move { self.prepare_spec(spec).await.map_err(|e| e.to_string()) })
    }
}
