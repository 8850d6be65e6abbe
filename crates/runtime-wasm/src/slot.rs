//! A slot: room for one request on a loaded version, and the request's run
//! in a fresh store, from the HTTP request to the reply.

use crate::guest::{Guest, GuestOutput, Limits, MemoryUse};
use crate::{outbound, Serving, WasmRuntime, MAX_RESPONSE_BYTES};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use http_body_util::{BodyExt, Full};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::time::Instant;
use updraft_core::{ErrorKind, HttpResponse, Invocation, Outcome};
use updraft_scheduler::{Instance, InstanceSpec, Reply};
use wasmtime::component::ResourceTable;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpView};

/// Room for one request on a loaded version.
pub(crate) struct Slot {
    pub(crate) runtime: WasmRuntime,
    pub(crate) spec: Arc<InstanceSpec>,
    /// The guest's environment, made once per slot rather than per request.
    pub(crate) env: Vec<(String, String)>,
    pub(crate) loaded: Arc<Serving>,
    pub(crate) cold: bool,
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
        let yield_from = std::time::Instant::now() + crate::engine::RUN_BEFORE_YIELD;
        // Each tick: stop past the deadline; past the first slice, let
        // other tasks run.
        store.epoch_deadline_callback(move |_| {
            let now = std::time::Instant::now();
            if now >= std_deadline {
                Ok(UpdateDeadline::Interrupt)
            } else if now < yield_from {
                Ok(UpdateDeadline::Continue(1))
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
            Ended::Answered(resp) if resp.status.as_u16() >= 500 && refused => (
                outcome_of_failure(format!("it answered HTTP {}", resp.status)),
                None,
            ),
            Ended::Answered(resp) if resp.status.as_u16() >= 500 => {
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
        let pre = self.loaded.pre().clone();
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
        Ended::Answered(HttpResponse {
            status: parts.status,
            headers: parts.headers,
            body: body.to_vec(),
        })
    }
}

/// What a guest sees in its environment: the function's `env` and the
/// standard `AWS_LAMBDA_*` names, nothing of the server's.
pub(crate) fn guest_env(spec: &InstanceSpec, region: &str) -> Vec<(String, String)> {
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
            builder = builder.method(h.method.clone()).uri(h.uri.clone());
            if let Some(headers) = builder.headers_mut() {
                *headers = h.headers.clone();
                if !headers.contains_key(http::header::HOST) {
                    headers.insert(
                        http::header::HOST,
                        http::HeaderValue::from_static("localhost"),
                    );
                }
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
