//! The wasm runtime: functions are `wasi:http/proxy` components (plus the
//! `wasi:cli` interfaces, as `wasmtime serve -S cli` provides) run by
//! wasmtime. One `Engine` with the pooling allocator; each component compiled
//! once at deploy into a cache keyed by its content hash (the most recent
//! ones also kept in memory); one `ProxyPre` per loaded version, dropped when
//! its last slot idles out; a fresh `Store` per request, limited to
//! `memory_mb` and stopped at its deadline by epochs.
//!
//! In the scheduler's terms an instance of a wasm function is a *slot*: room
//! for one concurrent request on a loaded version (`max_instances ×
//! per_instance` of them). Starting the first slot of a version loads it (the
//! cold start); further slots share it.

mod cache;
mod engine;
mod guest;
pub mod outbound;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http_body_util::{BodyExt, Full};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use tokio::time::Instant;
use updraft_core::{ErrorKind, HttpResponse, Invocation, LogSink, Outcome};
use updraft_scheduler::{Instance, InstanceSpec, Reply, Runtime, StartFailure};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpView};

use guest::{Guest, GuestOutput, Limits, MemoryUse};

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

/// A version loaded for serving: its pre-linked component.
struct Loaded {
    pre: ProxyPre<Guest>,
}

struct Inner {
    /// Guests may reach loopback and link-local addresses (`--allow-function-loopback`).
    allow_loopback: std::sync::atomic::AtomicBool,
    engine: Engine,
    linker: Linker<Guest>,
    artifacts: cache::Artifacts,
    /// Loaded versions by code package; alive while a slot holds them.
    loaded: Mutex<HashMap<String, Weak<Loaded>>>,
    /// One load at a time, so concurrent cold starts of a version load it once.
    loading: tokio::sync::Mutex<()>,
    /// The most recently loaded compiled components, kept after their
    /// versions scaled to zero (no `ProxyPre`, store or instance is left): a
    /// start from zero then links in memory instead of loading from disk.
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
    /// Builds the engine and the linker (wasi:http plus every WASI p2
    /// interface; no preopened directories, no network sockets), and opens the
    /// artifact cache `cache_dir` (the server's `DATA_DIR/wasm` by default).
    /// Lets guests' outgoing requests reach loopback and link-local
    /// addresses (refused by default: outbound.rs).
    pub fn set_allow_loopback(&self, allow: bool) {
        self.inner
            .allow_loopback
            .store(allow, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn new(
        cache_dir: &Path,
        region: &str,
        logs: Arc<dyn LogSink>,
    ) -> Result<WasmRuntime, WasmError> {
        let (engine, pooling) = engine::build().map_err(|e| WasmError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .and_then(|()| wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker))
            .map_err(|e| WasmError::Engine(format!("{e:#}")))?;
        let artifacts = cache::Artifacts::new(cache_dir, &engine)
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
    /// links against the proxy world; the compiled component stays in memory
    /// for the first request.
    async fn prepare_spec(&self, spec: &InstanceSpec) -> Result<(), WasmError> {
        let component = self.component(spec).await?;
        link(&self.inner.linker, &component).map(|_| ())
    }

    /// The compiled component of `spec`: from memory if a recent version used
    /// it, else from the artifact cache (compiling if need be).
    async fn component(&self, spec: &InstanceSpec) -> Result<Component, WasmError> {
        if let Some(c) = self.inner.recent.get(&spec.code_sha256) {
            return Ok(c);
        }
        let inner = self.inner.clone();
        let code_sha = spec.code_sha256.clone();
        let code_dir = spec.code_dir.clone();
        let component = tokio::task::spawn_blocking(move || {
            inner.artifacts.load(&inner.engine, &code_sha, &code_dir)
        })
        .await
        .map_err(|e| WasmError::Engine(format!("load task: {e}")))??;
        self.inner.recent.put(&spec.code_sha256, component.clone());
        Ok(component)
    }

    /// The loaded version of `spec`, loading it if no slot holds it; true when
    /// this call loaded it.
    async fn load(&self, spec: &InstanceSpec) -> Result<(Arc<Loaded>, bool), WasmError> {
        if let Some(l) = self.cached(&spec.code_sha256) {
            return Ok((l, false));
        }
        let _one = self.inner.loading.lock().await;
        if let Some(l) = self.cached(&spec.code_sha256) {
            return Ok((l, false));
        }
        let component = self.component(spec).await?;
        let loaded = Arc::new(Loaded {
            pre: link(&self.inner.linker, &component)?,
        });
        let mut map = self.inner.loaded.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, w| w.strong_count() > 0);
        map.insert(spec.code_sha256.clone(), Arc::downgrade(&loaded));
        Ok((loaded, true))
    }

    fn cached(&self, code_sha: &str) -> Option<Arc<Loaded>> {
        let map = self.inner.loaded.lock().unwrap_or_else(|e| e.into_inner());
        map.get(code_sha).and_then(Weak::upgrade)
    }
}

/// How many compiled components [`Recent`] keeps (their code is mapped from
/// the artifact files; pages not in use can be reclaimed by the kernel).
const RECENT_COMPONENTS: usize = 32;

/// A small most-recently-used list of compiled components by code package.
#[derive(Default)]
struct Recent(Mutex<Vec<(String, Component)>>);

impl Recent {
    fn get(&self, code_sha: &str) -> Option<Component> {
        let mut list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let pos = list.iter().position(|(k, _)| k == code_sha)?;
        let entry = list.remove(pos);
        let component = entry.1.clone();
        list.push(entry);
        Some(component)
    }

    fn put(&self, code_sha: &str, component: Component) {
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

/// Room for one request on a loaded version.
struct Slot {
    runtime: WasmRuntime,
    spec: Arc<InstanceSpec>,
    /// The guest's environment, made once per slot rather than per request.
    env: Vec<(String, String)>,
    loaded: Arc<Loaded>,
    cold: bool,
}

impl Instance for Slot {
    fn invoke<'a>(&'a self, invocation: &'a Invocation, deadline: Instant) -> BoxFuture<'a, Reply> {
        Box::pin(self.run(invocation, deadline))
    }

    fn stop(&self) -> BoxFuture<'_, ()> {
        // Dropping the slot releases its hold on the loaded version.
        Box::pin(async {})
    }

    fn started_cold(&self) -> bool {
        self.cold
    }
}

/// How a request ended, before it becomes an [`Outcome`].
enum Ended {
    Answered(HttpResponse),
    /// The guest trapped, or failed, before or while answering.
    Failed(String),
    TimedOut,
}

impl Slot {
    fn store(&self, request_id: &str) -> (Store<Guest>, GuestOutput, Arc<MemoryUse>) {
        let spec = &self.spec;
        let output = GuestOutput::new(&spec.function, request_id, self.runtime.inner.logs.clone());
        let mut wasi = WasiCtx::builder();
        wasi.stdout(output.stdout.clone())
            .stderr(output.stderr.clone())
            .args(&[spec.function.as_str()])
            .envs(&self.env);
        let stats = Arc::new(MemoryUse::default());
        let guest = Guest {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            outbound: outbound::Outbound {
                allow_loopback: self
                    .runtime
                    .inner
                    .allow_loopback
                    .load(std::sync::atomic::Ordering::Relaxed),
            },
            table: ResourceTable::new(),
            limits: Limits {
                max_bytes: spec.config.memory_mb as usize * 1024 * 1024,
                used: 0,
                stats: stats.clone(),
            },
        };
        let mut store = Store::new(&self.runtime.inner.engine, guest);
        store.limiter(|g| &mut g.limits);
        (store, output, stats)
    }

    async fn run(&self, inv: &Invocation, deadline: Instant) -> Reply {
        let _running = self.runtime.inner.ticker.running();
        let (mut store, output, stats) = self.store(&inv.request_id);
        let std_deadline = deadline.into_std();
        // Each tick: stop past the deadline, otherwise let other tasks run.
        store.epoch_deadline_callback(move |_| {
            if std::time::Instant::now() >= std_deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store.set_epoch_deadline(1);

        let ended = self.serve(store, inv, deadline).await;
        output.finish();
        let peak = stats.peak.load(Ordering::SeqCst);
        let max_memory_mb = peak.div_ceil(1024 * 1024) as u32;
        let memory_mb = self.spec.config.memory_mb;
        let outcome_of_failure = |why: String| {
            if stats.refused.load(Ordering::SeqCst) {
                Outcome::platform_error(
                    ErrorKind::OutOfMemory,
                    "Runtime.OutOfMemory",
                    format!("the component needed more than its memory_mb ({memory_mb} MB) of linear memory: {why}"),
                )
            } else {
                Outcome::platform_error(ErrorKind::Crash, "Runtime.ExitError", why)
            }
        };
        let refused = stats.refused.load(Ordering::SeqCst);
        let (outcome, http) = match ended {
            // A guest that caught its own allocation failure and answered 5xx
            // still ran out of memory.
            Ended::Answered(resp) if resp.status >= 500 && refused => (
                outcome_of_failure(format!("it answered HTTP {}", resp.status)),
                None,
            ),
            Ended::Answered(resp) if resp.status >= 500 => {
                let message = format!(
                    "the component answered HTTP {}: {}",
                    resp.status,
                    String::from_utf8_lossy(&resp.body[..resp.body.len().min(512)])
                );
                (
                    Outcome::platform_error(
                        ErrorKind::Function,
                        "Function.HttpServerError",
                        message,
                    ),
                    Some(resp),
                )
            }
            Ended::Answered(resp) => (Outcome::Success(resp.body.clone()), Some(resp)),
            Ended::Failed(why) => (outcome_of_failure(why), None),
            Ended::TimedOut => {
                let secs = self.spec.config.timeout_ms as f64 / 1000.0;
                (
                    Outcome::platform_error(
                        ErrorKind::Timeout,
                        "Sandbox.Timedout",
                        format!("Task timed out after {secs:.2} seconds"),
                    ),
                    None,
                )
            }
        };
        if let Outcome::Error {
            error_type,
            body,
            kind,
        } = &outcome
        {
            if *kind != ErrorKind::Function {
                let text = String::from_utf8_lossy(body);
                self.runtime.inner.logs.emit(
                    &self.spec.function,
                    &inv.request_id,
                    format!("{error_type}: {text}"),
                );
            }
        }
        Reply {
            outcome,
            max_memory_mb,
            reusable: true,
            http,
        }
    }

    /// Instantiates the component in `store` and hands it the request; the
    /// response body is read to its end (the guest may keep writing after
    /// it sent the head).
    async fn serve(&self, mut store: Store<Guest>, inv: &Invocation, deadline: Instant) -> Ended {
        let request = match build_request(inv) {
            Ok(r) => r,
            Err(why) => return Ended::Failed(why),
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let resources = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, request)
            .and_then(|req| {
                let out = store.data_mut().http().new_response_outparam(tx)?;
                Ok((req, out))
            });
        let (req, out) = match resources {
            Ok(r) => r,
            Err(e) => return Ended::Failed(format!("passing the request to the component: {e:#}")),
        };
        let pre = self.loaded.pre.clone();
        let task = tokio::spawn(async move {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, req, out)
                .await
        });
        let task = AbortOnDrop(task);

        let head = match tokio::time::timeout_at(deadline, rx).await {
            Err(_) => return Ended::TimedOut,
            Ok(Ok(Ok(resp))) => resp,
            Ok(Ok(Err(code))) => return Ended::Failed(describe_error_code(&code)),
            // The guest returned (or trapped) without answering.
            Ok(Err(_)) => {
                return match tokio::time::timeout_at(deadline, task.join()).await {
                    Err(_) => Ended::TimedOut,
                    Ok(Ok(())) => {
                        Ended::Failed("the component returned without sending a response".into())
                    }
                    Ok(Err(why)) => failure(why),
                }
            }
        };
        let (parts, body) = head.into_parts();
        let limited = http_body_util::Limited::new(body, MAX_RESPONSE_BYTES);
        let body = match tokio::time::timeout_at(deadline, limited.collect()).await {
            Err(_) => return Ended::TimedOut,
            Ok(Ok(collected)) => collected.to_bytes(),
            Ok(Err(e)) => {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    return Ended::Failed(format!(
                        "the response body is over the {MAX_RESPONSE_BYTES}-byte limit"
                    ));
                }
                // The body broke off: the guest trapped while writing it.
                return match tokio::time::timeout_at(deadline, task.join()).await {
                    Ok(Err(why)) => failure(why),
                    Err(_) => Ended::TimedOut,
                    Ok(Ok(())) => Ended::Failed(format!("the response body broke off: {e}")),
                };
            }
        };
        // The guest may still be running after its last byte; it gets until
        // the deadline to return, and its answer stands either way.
        let _ = tokio::time::timeout_at(deadline, task.join()).await;
        let headers = parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.as_bytes().to_vec()))
            .collect();
        Ended::Answered(HttpResponse {
            status: parts.status.as_u16(),
            headers,
            body: body.to_vec(),
        })
    }
}

/// What a guest sees in its environment: the function's `env` and the
/// standard `AWS_LAMBDA_*` names, nothing of the server's.
fn guest_env(spec: &InstanceSpec, region: &str) -> Vec<(String, String)> {
    let version = updraft_core::version_label(spec.version);
    let mut env: Vec<(String, String)> = spec
        .config
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    env.extend([
        (
            "AWS_LAMBDA_FUNCTION_NAME".to_string(),
            spec.function.clone(),
        ),
        ("AWS_LAMBDA_FUNCTION_VERSION".to_string(), version),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE".to_string(),
            spec.config.memory_mb.to_string(),
        ),
        ("AWS_REGION".to_string(), region.to_string()),
    ]);
    env
}

/// The task running the guest; aborted (its store dropped) if not awaited to the end.
struct AbortOnDrop(tokio::task::JoinHandle<wasmtime::Result<()>>);

impl AbortOnDrop {
    /// The guest's result: `Err` holds why it failed.
    async fn join(mut self) -> Result<(), Why> {
        let r = (&mut self.0).await;
        match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Why::Wasm(e)),
            Err(e) => Err(Why::Text(format!("the component's task failed: {e}"))),
        }
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

enum Why {
    Wasm(wasmtime::Error),
    Text(String),
}

fn failure(why: Why) -> Ended {
    match why {
        Why::Text(t) => Ended::Failed(t),
        Why::Wasm(e) => {
            if matches!(
                e.downcast_ref::<wasmtime::Trap>(),
                Some(wasmtime::Trap::Interrupt)
            ) {
                return Ended::TimedOut;
            }
            if let Some(exit) = e.downcast_ref::<wasmtime_wasi::I32Exit>() {
                return Ended::Failed(format!("the component exited with status {}", exit.0));
            }
            Ended::Failed(format!("wasm trap: {e:#}"))
        }
    }
}

fn describe_error_code(code: &ErrorCode) -> String {
    format!("the component answered with an error instead of a response: {code:?}")
}

/// The request the guest sees: the gateway's, or `POST /` with the payload
/// for other invocations (the Lambda Invoke API, `updraft invoke`, events).
fn build_request(
    inv: &Invocation,
) -> Result<
    hyper::Request<impl hyper::body::Body<Data = Bytes, Error = hyper::Error> + Send + 'static>,
    String,
> {
    let body = Full::new(Bytes::copy_from_slice(&inv.payload))
        .map_err(|never: std::convert::Infallible| -> hyper::Error { match never {} });
    let mut builder = hyper::Request::builder();
    match &inv.http {
        Some(h) => {
            builder = builder
                .method(h.method.as_str())
                .uri(h.path_and_query.as_str());
            let mut has_host = false;
            for (k, v) in &h.headers {
                has_host |= k.eq_ignore_ascii_case("host");
                builder = builder.header(k.as_str(), v.as_slice());
            }
            if !has_host {
                builder = builder.header("host", "localhost");
            }
        }
        None => {
            builder = builder
                .method("POST")
                .uri("/")
                .header("host", "localhost")
                .header("content-type", "application/json")
                .header("x-amzn-requestid", inv.request_id.as_str());
        }
    }
    builder
        .body(body)
        .map_err(|e| format!("the request cannot be passed to the component: {e}"))
}
