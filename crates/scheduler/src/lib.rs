//! The scheduler: one pool of instances per function. It starts instances on
//! demand (cold starts), reuses idle ones, caps them at `max_instances`, makes
//! excess invocations wait up to `max_queue_wait`, keeps `min_instances` warm and
//! stops instances idle longer than `idle_timeout`. Runtimes plug in through the
//! [`Runtime`] and [`Instance`] traits.

pub mod keepalive;
mod pool;

pub use pool::{Scheduler, SchedulerError};

use futures_util::future::BoxFuture;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::time::Instant;
use updraft_core::{FunctionConfig, HttpResponse, Invocation, Outcome};

/// What an instance is started from: one function version's code and config.
#[derive(Clone, Debug)]
pub struct InstanceSpec {
    pub function: String,
    /// The version number (0 = `$LATEST`) reported in logs and records.
    pub version: i64,
    /// Content identity: identical config and code share warm instances.
    pub revision: String,
    pub config: FunctionConfig,
    /// The sha256 of the code package (the zip).
    pub code_sha256: String,
    /// The unpacked code directory (read-only to instances).
    pub code_dir: PathBuf,
    /// The host uid this function's instances run as, when the runtime
    /// switches users (allocated by the store, unique to the function).
    pub uid: u32,
    /// The ARN its invocations report to the function
    /// (`invoked_function_arn`): the function as the caller named it,
    /// unqualified or with its version or alias, as Lambda does.
    pub invoked_arn: String,
}

impl InstanceSpec {
    /// Invocations the function may run at once: `max_instances` instances
    /// taking `per_instance` each.
    pub fn concurrency(&self) -> u32 {
        let s = &self.config.scaling;
        s.max_instances.saturating_mul(s.per_instance.max(1))
    }
}

/// The answer of one instance to one invocation.
#[derive(Debug)]
pub struct Reply {
    pub outcome: Outcome,
    pub max_memory_mb: u32,
    /// False when the instance must not take another invocation (it crashed,
    /// timed out or ran out of memory).
    pub reusable: bool,
    /// The function's own HTTP response (runtimes that answer HTTP: wasm).
    pub http: Option<HttpResponse>,
}

/// A started instance, able to run one invocation at a time (process) or
/// several (wasm, `per_instance` > 1).
pub trait Instance: Send + Sync + 'static {
    /// Runs one invocation; must return by `deadline`, stopping the work if need be.
    fn invoke<'a>(&'a self, invocation: &'a Invocation, deadline: Instant) -> BoxFuture<'a, Reply>;
    /// Stops the instance and releases everything it held. Idempotent.
    fn stop(&self) -> BoxFuture<'_, ()>;
    /// Whether starting this instance paid the runtime's start-up (a cold
    /// start, metered with its init duration). A wasm slot started while its
    /// version is already loaded is not one.
    fn started_cold(&self) -> bool {
        true
    }
    /// When the instance stops being fit to run (the credentials it was
    /// given expire): it takes no invocation that could run past it, and is
    /// stopped once idle then.
    fn retire_at(&self) -> Option<Instant> {
        None
    }
    /// Whether it has ended by itself while idle (its process was killed,
    /// or the template it was forked from died): it takes no invocation,
    /// and the reaper removes it.
    fn gone(&self) -> bool {
        false
    }
}

/// An instance that failed to start, with Lambda's error for the caller.
#[derive(Debug)]
pub struct StartFailure {
    pub outcome: Outcome,
    pub max_memory_mb: u32,
}

/// A kind of runtime that starts instances.
pub trait Runtime: Send + Sync + 'static {
    /// Starts one instance; `request_id` is the invocation that caused the
    /// start (init output is logged under it), if any.
    fn start<'a>(
        &'a self,
        spec: Arc<InstanceSpec>,
        request_id: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn Instance>, StartFailure>>;

    /// Readies a version ahead of its first invocation (deploy time), e.g.
    /// compiles a component; the error says what is wrong with the code.
    fn prepare<'a>(&'a self, spec: &'a InstanceSpec) -> BoxFuture<'a, Result<(), String>> {
        let _ = spec;
        Box::pin(async { Ok(()) })
    }
}
