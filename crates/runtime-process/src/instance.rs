//! A running process instance: invocations handed to its Runtime API, the
//! outcome of each, and stopping it.

use crate::api::{self, MAX_RESPONSE_BYTES};
use crate::proc::{main_pid, vm_hwm};
use crate::{output, sandbox};
use futures_util::future::BoxFuture;
use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use updraft_core::{ErrorKind, Invocation, Outcome};
use updraft_scheduler::{Instance, InstanceSpec, Reply};

/// One running process instance.
pub(crate) struct ProcessInstance {
    pub(crate) spec: Arc<InstanceSpec>,
    /// The spawned process: with a PID namespace, the one that waits
    /// outside it for the instance's PID 1.
    pub(crate) pid: i32,
    pub(crate) isolation_pid_ns: bool,
    pub(crate) dir: PathBuf,
    pub(crate) invocations: mpsc::Sender<api::Pending>,
    pub(crate) exit: watch::Receiver<Option<String>>,
    pub(crate) output: output::Output,
    pub(crate) cgroup: Option<sandbox::Cgroup>,
    pub(crate) server: tokio::task::JoinHandle<()>,
    /// Peak resident memory seen by the watchdog (hosts without cgroups).
    pub(crate) peak: Arc<AtomicU64>,
    pub(crate) oom_flag: Arc<AtomicBool>,
    pub(crate) stopped: AtomicBool,
    /// When the credentials it was started with expire (see `FunctionAccess`).
    pub(crate) retire_at: Option<Instant>,
}

impl ProcessInstance {
    pub(crate) fn max_memory_mb(&self) -> u32 {
        let bytes = self
            .cgroup
            .as_ref()
            .and_then(|c| c.peak_bytes())
            .or_else(|| vm_hwm(main_pid(self.pid, self.isolation_pid_ns)))
            .unwrap_or(0)
            .max(self.peak.load(Ordering::Relaxed));
        bytes.div_ceil(1 << 20) as u32
    }

    fn out_of_memory(&self) -> bool {
        self.oom_flag.load(Ordering::SeqCst) || self.cgroup.as_ref().is_some_and(|c| c.oom_killed())
    }

    /// The error for a process that has exited.
    pub(crate) fn exit_outcome(&self, request_id: &str) -> Outcome {
        let how = self.exit.borrow().clone().unwrap_or_default();
        if self.out_of_memory() {
            Outcome::platform_error(
                ErrorKind::OutOfMemory,
                "Runtime.OutOfMemory",
                format!("RequestId: {request_id} Error: Runtime exited with error: {how} (over memory_mb = {} MB)", self.spec.config.memory_mb),
            )
        } else {
            Outcome::platform_error(
                ErrorKind::Crash,
                "Runtime.ExitError",
                format!("RequestId: {request_id} Error: Runtime exited with error: {how}"),
            )
        }
    }

    async fn run(&self, inv: &Invocation, deadline: Instant) -> (Outcome, bool) {
        self.output.set_request(&inv.request_id);
        let (tx, rx) = oneshot::channel();
        let remaining = deadline
            .saturating_duration_since(Instant::now())
            .as_millis() as i64;
        let pending = api::Pending {
            invocation: inv.clone(),
            deadline_ms: updraft_core::now_ms() + remaining,
            reply: tx,
        };
        let mut exit = self.exit.clone();
        let has_exited = self.exit.borrow().is_some();
        if has_exited || self.invocations.send(pending).await.is_err() {
            return (self.exit_outcome(&inv.request_id), false);
        }
        tokio::select! {
            reply = rx => match reply {
                Ok(api::RuntimeReply::Response(body)) => (Outcome::Success(body.to_vec()), true),
                Ok(api::RuntimeReply::Error { error_type, body }) => {
                    (Outcome::Error { kind: ErrorKind::Function, error_type, body: body.to_vec() }, true)
                }
                Ok(api::RuntimeReply::TooLarge) => (
                    Outcome::platform_error(
                        ErrorKind::Function,
                        "Function.ResponseSizeTooLarge",
                        format!("Response payload size exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."),
                    ),
                    true,
                ),
                Err(_) => {
                    exited(&mut self.exit.clone()).await;
                    (self.exit_outcome(&inv.request_id), false)
                }
            },
            _ = exited(&mut exit) => (self.exit_outcome(&inv.request_id), false),
            _ = tokio::time::sleep_until(deadline) => {
                self.kill();
                let secs = self.spec.config.timeout_ms as f64 / 1000.0;
                let outcome = Outcome::platform_error(
                    ErrorKind::Timeout,
                    "Sandbox.Timedout",
                    format!("RequestId: {} Error: Task timed out after {secs:.2} seconds", inv.request_id),
                );
                (outcome, false)
            }
        }
    }

    fn kill(&self) {
        if self.pid > 0 {
            sandbox::kill(-self.pid, libc::SIGKILL);
            sandbox::kill(self.pid, libc::SIGKILL);
        }
        if let Some(cg) = &self.cgroup {
            cg.kill_all();
        }
    }

    pub(crate) async fn stop_now(&self) {
        if self.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        self.kill();
        let mut exit = self.exit.clone();
        let _ = tokio::time::timeout(Duration::from_secs(5), exited(&mut exit)).await;
        self.server.abort();
        if let Some(cg) = &self.cgroup {
            cg.remove();
        }
        let dir = self.dir.clone();
        let _ = tokio::task::spawn_blocking(move || fs::remove_dir_all(dir)).await;
    }
}

impl Instance for ProcessInstance {
    fn invoke<'a>(&'a self, invocation: &'a Invocation, deadline: Instant) -> BoxFuture<'a, Reply> {
        Box::pin(async move {
            let (outcome, alive) = self.run(invocation, deadline).await;
            self.output.flush();
            let max_memory_mb = self.max_memory_mb();
            let has_exited = self.exit.borrow().is_some();
            Reply {
                outcome,
                max_memory_mb,
                reusable: alive && !has_exited,
                http: None,
            }
        })
    }

    fn stop(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.stop_now())
    }

    fn gone(&self) -> bool {
        self.exit.borrow().is_some()
    }

    fn retire_at(&self) -> Option<Instant> {
        self.retire_at
    }
}

impl Drop for ProcessInstance {
    fn drop(&mut self) {
        if !self.stopped.load(Ordering::SeqCst) {
            self.kill();
            self.server.abort();
        }
    }
}

/// Resolves once the process has exited (the guard `wait_for` returns is not
/// `Send`, so it must not live in a `select!`).
pub(crate) async fn exited(exit: &mut watch::Receiver<Option<String>>) {
    let _ = exit.wait_for(|e| e.is_some()).await;
}
