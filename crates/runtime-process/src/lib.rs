//! The process runtime: every instance is a separate, sandboxed process that
//! speaks the AWS Lambda Runtime API to an endpoint of its own. `python3` and
//! `nodejs` run a bootstrap Updraft ships; `provided` runs the code's own
//! `bootstrap` (for example a Lambda runtime interface client).

mod api;
mod output;
pub mod sandbox;
#[cfg(test)]
mod test_support;

pub use api::MAX_RESPONSE_BYTES;
pub use sandbox::{Isolation, IsolationMode};

use futures_util::future::BoxFuture;
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use updraft_core::{ErrorKind, Invocation, LogSink, Outcome, RuntimeKind};
use updraft_scheduler::{Instance, InstanceSpec, Reply, Runtime, StartFailure};

const PYTHON_BOOTSTRAP: &str = include_str!("../bootstrap/python3/bootstrap.py");
const NODE_BOOTSTRAP: &str = include_str!("../bootstrap/nodejs/bootstrap.js");

/// The `PATH` instances see: the system's, never the server's.
const INSTANCE_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Starts process instances.
pub struct ProcessRuntime {
    instances_dir: PathBuf,
    runtimes_dir: PathBuf,
    region: String,
    isolation: Isolation,
    logs: Arc<dyn LogSink>,
}

impl ProcessRuntime {
    /// Prepares `DATA_DIR/runtimes` and `DATA_DIR/instances`, and kills what
    /// an earlier run of the server left behind.
    pub fn new(
        data_dir: &Path,
        region: &str,
        isolation: Isolation,
        logs: Arc<dyn LogSink>,
    ) -> io::Result<ProcessRuntime> {
        use std::os::unix::fs::PermissionsExt;
        let instances_dir = data_dir.join("instances");
        let runtimes_dir = data_dir.join("runtimes");
        cleanup_leftovers(&instances_dir);
        if let Some(cg) = &isolation.cgroups {
            cg.cleanup_leftovers();
        }
        for (dir, file, text) in [
            ("python3", "bootstrap.py", PYTHON_BOOTSTRAP),
            ("nodejs", "bootstrap.js", NODE_BOOTSTRAP),
        ] {
            let d = runtimes_dir.join(dir);
            fs::create_dir_all(&d)?;
            fs::write(d.join(file), text)?;
            fs::set_permissions(&d, fs::Permissions::from_mode(0o755))?;
            fs::set_permissions(d.join(file), fs::Permissions::from_mode(0o644))?;
        }
        fs::set_permissions(&runtimes_dir, fs::Permissions::from_mode(0o755))?;
        fs::create_dir_all(&instances_dir)?;
        fs::set_permissions(&instances_dir, fs::Permissions::from_mode(0o700))?;
        Ok(ProcessRuntime {
            instances_dir,
            runtimes_dir,
            region: region.to_string(),
            isolation,
            logs,
        })
    }

    pub fn isolation(&self) -> &Isolation {
        &self.isolation
    }

    /// Where instances see their code and their runtime's bootstrap: the
    /// read-only mounts of their own root, or the host paths without one.
    fn task_root(&self, spec: &InstanceSpec) -> PathBuf {
        if self.isolation.root.is_some() {
            PathBuf::from("/var/task")
        } else {
            spec.code_dir.clone()
        }
    }

    fn runtime_root(&self, kind: RuntimeKind) -> PathBuf {
        if self.isolation.root.is_some() {
            PathBuf::from("/var/runtime")
        } else {
            self.runtimes_dir.join(kind.to_string())
        }
    }

    /// The program and arguments that start an instance of `spec`, as the
    /// instance sees them (the host's system directories are at the same
    /// paths inside an instance root).
    fn command(&self, spec: &InstanceSpec) -> Result<(PathBuf, Vec<PathBuf>), String> {
        let interpreter = |name: &str, script: PathBuf| {
            find_on_path(name)
                .map(|p| (p, vec![script]))
                .ok_or_else(|| {
                    format!("{name} is not installed on this server (looked in {INSTANCE_PATH})")
                })
        };
        match spec.config.kind() {
            RuntimeKind::Python3 => interpreter(
                "python3",
                self.runtime_root(RuntimeKind::Python3).join("bootstrap.py"),
            ),
            RuntimeKind::Nodejs => interpreter(
                "node",
                self.runtime_root(RuntimeKind::Nodejs).join("bootstrap.js"),
            ),
            RuntimeKind::Provided => {
                if spec.code_dir.join("bootstrap").is_file() {
                    Ok((self.task_root(spec).join("bootstrap"), vec![]))
                } else {
                    Err("Couldn't find valid bootstrap(s): [bootstrap] (a provided function's code needs an executable named bootstrap at its root)".into())
                }
            }
            RuntimeKind::Wasm => Err("the process runtime does not run wasm components".into()),
        }
    }

    fn env(&self, spec: &InstanceSpec, api: &str, id: &str) -> BTreeMap<String, String> {
        let kind = spec.config.kind();
        let version = updraft_core::version_label(spec.version);
        let mut env: BTreeMap<String, String> = spec.config.env.clone();
        let date = humantime::format_rfc3339(std::time::SystemTime::now()).to_string();
        let date = date[..10].replace('-', "/");
        let task_root = self.task_root(spec).display().to_string();
        let reserved = [
            ("AWS_LAMBDA_RUNTIME_API", api.to_string()),
            ("_HANDLER", spec.config.handler.clone()),
            ("LAMBDA_TASK_ROOT", task_root),
            (
                "LAMBDA_RUNTIME_DIR",
                self.runtime_root(kind).display().to_string(),
            ),
            ("AWS_LAMBDA_FUNCTION_NAME", spec.function.clone()),
            ("AWS_LAMBDA_FUNCTION_VERSION", version.clone()),
            (
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                spec.config.memory_mb.to_string(),
            ),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", spec.function),
            ),
            (
                "AWS_LAMBDA_LOG_STREAM_NAME",
                format!("{date}/[{version}]{id}"),
            ),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
            (
                "AWS_EXECUTION_ENV",
                format!("AWS_Lambda_{}", spec.config.runtime),
            ),
            ("AWS_REGION", self.region.clone()),
            ("AWS_DEFAULT_REGION", self.region.clone()),
            ("PATH", INSTANCE_PATH.into()),
            ("LANG", "C.UTF-8".into()),
            ("TZ", ":UTC".into()),
            ("HOME", "/tmp".into()),
            ("UPDRAFT_INSTANCE_ID", id.into()),
        ];
        for (k, v) in reserved {
            env.insert(k.into(), v);
        }
        if kind == RuntimeKind::Python3 {
            env.insert("PYTHONUNBUFFERED".into(), "1".into());
        }
        if self.isolation.root.is_none() {
            env.insert(
                "TMPDIR".into(),
                self.instances_dir
                    .join(id)
                    .join("tmp")
                    .display()
                    .to_string(),
            );
        }
        env
    }

    async fn start_instance(
        &self,
        spec: Arc<InstanceSpec>,
        request_id: &str,
    ) -> Result<Box<dyn Instance>, StartFailure> {
        let fail = |error_type: &str, message: String| StartFailure {
            outcome: Outcome::platform_error(ErrorKind::Init, error_type, message),
            max_memory_mb: 0,
        };
        let (program, args) = self
            .command(&spec)
            .map_err(|m| fail("Runtime.InvalidEntrypoint", m))?;
        let id = uuid::Uuid::new_v4().simple().to_string()[..16].to_string();
        let prepared = self
            .prepare(&spec, &id, request_id, &program, &args)
            .await
            .map_err(|e| {
                fail(
                    "Runtime.StartError",
                    format!("could not start an instance: {e}"),
                )
            })?;
        let (instance, handles) = prepared;
        let mut ready = handles.ready;
        let mut init_error = handles.init_error;
        let mut exit = instance.exit.clone();
        let deadline = Instant::now() + Duration::from_millis(spec.config.timeout_ms);
        let failure = tokio::select! {
            Ok(()) = &mut ready => return Ok(Box::new(instance)),
            Ok((error_type, body)) = &mut init_error => {
                StartFailure { outcome: Outcome::Error { kind: ErrorKind::Init, error_type, body: body.to_vec() }, max_memory_mb: 0 }
            }
            _ = exited(&mut exit) => {
                let outcome = instance.exit_outcome(request_id);
                StartFailure { outcome, max_memory_mb: 0 }
            }
            _ = tokio::time::sleep_until(deadline) => fail(
                "Sandbox.Timedout",
                format!("RequestId: {request_id} Error: init did not complete within {:.2} seconds (the runtime never asked for an invocation)", spec.config.timeout_ms as f64 / 1000.0),
            ),
        };
        instance.output.flush().await;
        let max_memory_mb = instance.max_memory_mb();
        instance.stop_now().await;
        Err(StartFailure {
            max_memory_mb,
            ..failure
        })
    }

    async fn prepare(
        &self,
        spec: &Arc<InstanceSpec>,
        id: &str,
        request_id: &str,
        program: &Path,
        args: &[PathBuf],
    ) -> io::Result<(ProcessInstance, api::ApiHandles)> {
        use std::os::unix::fs::PermissionsExt;
        let iso = &self.isolation;
        let uid = iso.per_function_uid.then_some(spec.uid);
        let dir = self.instances_dir.join(id);
        let tmp = dir.join("tmp");
        fs::create_dir_all(&dir)?;
        if iso.root.is_none() {
            // No instance root: a TMPDIR of its own in the data dir.
            fs::create_dir_all(&tmp)?;
            fs::set_permissions(&tmp, fs::Permissions::from_mode(0o700))?;
        }

        // The Runtime API: in the instance's own network namespace, or on
        // the host's loopback accepting only the function's uid.
        let (listener, netns, api_addr) = if iso.network_ns {
            let ns = tokio::task::spawn_blocking(sandbox::netns::create)
                .await
                .map_err(io::Error::other)??;
            let listener = tokio::net::TcpListener::from_std(ns.listener)?;
            (
                sandbox::UidListener::new(listener, None),
                Some(ns.fd),
                sandbox::netns::RUNTIME_API_ADDR.to_string(),
            )
        } else {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
            let addr = listener.local_addr()?.to_string();
            (sandbox::UidListener::new(listener, uid), None, addr)
        };
        let (state, handles) = api::new_state();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, api::router(state)).await;
        });

        let cgroup = match &iso.cgroups {
            Some(root) => Some(root.create(
                id,
                sandbox::cgroup::Limits {
                    memory_bytes: u64::from(spec.config.memory_mb) << 20,
                    pids: sandbox::cgroup::DEFAULT_PIDS,
                },
            )?),
            None => None,
        };
        let runtime_dir = match spec.config.kind() {
            RuntimeKind::Python3 | RuntimeKind::Nodejs => {
                Some(self.runtimes_dir.join(spec.config.kind().to_string()))
            }
            _ => None,
        };
        let setup = iso.child_setup(
            cgroup.as_ref(),
            netns,
            &spec.code_dir,
            runtime_dir.as_deref(),
            spec.config.ephemeral_storage_mb,
            spec.uid,
        )?;
        let (reader, writer) = io::pipe()?;
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .env_clear()
            .envs(self.env(spec, &api_addr, id))
            .stdin(std::process::Stdio::null())
            .stdout(writer.try_clone()?)
            .stderr(writer)
            .kill_on_drop(false);
        #[allow(unsafe_code)]
        // SAFETY: ChildSetup::apply only makes system calls, as required between fork and exec.
        unsafe {
            cmd.pre_exec(move || setup.apply());
        }
        let spawned = cmd.spawn();
        // The parent's copies of the pipe's write end must close, or the
        // reader never sees end of file.
        drop(cmd);
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                server.abort();
                if let Some(cg) = &cgroup {
                    cg.remove();
                }
                let _ = fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        let pid = child.id().unwrap_or(0) as i32;
        // With the start time: only that process is ours after a restart.
        fs::write(
            dir.join("pid"),
            format!("{pid} {}", start_time(pid).unwrap_or(0)),
        )?;

        let output = output::Output::spawn(
            OwnedFd::from(reader),
            spec.function.clone(),
            request_id,
            self.logs.clone(),
        )?;
        let (exit_tx, exit_rx) = watch::channel(None);
        tokio::spawn(async move {
            let status = child.wait().await.ok();
            let _ = exit_tx.send(Some(
                status
                    .map(describe_exit)
                    .unwrap_or_else(|| "unknown exit".into()),
            ));
        });
        let peak = Arc::new(AtomicU64::new(0));
        let oom_flag = Arc::new(AtomicBool::new(false));
        if cgroup.is_none() {
            tokio::spawn(rss_watchdog(
                pid,
                iso.features.pid_ns,
                u64::from(spec.config.memory_mb) << 20,
                peak.clone(),
                oom_flag.clone(),
                exit_rx.clone(),
            ));
        }
        let instance = ProcessInstance {
            spec: spec.clone(),
            pid,
            isolation_pid_ns: iso.features.pid_ns,
            dir,
            invocations: handles.invocations.clone(),
            exit: exit_rx,
            output,
            cgroup,
            server,
            peak,
            oom_flag,
            stopped: AtomicBool::new(false),
        };
        Ok((instance, handles))
    }
}

impl Runtime for ProcessRuntime {
    fn start<'a>(
        &'a self,
        spec: Arc<InstanceSpec>,
        request_id: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn Instance>, StartFailure>> {
        Box::pin(self.start_instance(spec, request_id))
    }
}

/// One running process instance.
struct ProcessInstance {
    spec: Arc<InstanceSpec>,
    /// The spawned process: with a PID namespace, the one that waits
    /// outside it for the instance's PID 1.
    pid: i32,
    isolation_pid_ns: bool,
    dir: PathBuf,
    invocations: mpsc::Sender<api::Pending>,
    exit: watch::Receiver<Option<String>>,
    output: output::Output,
    cgroup: Option<sandbox::Cgroup>,
    server: tokio::task::JoinHandle<()>,
    /// Peak resident memory seen by the watchdog (hosts without cgroups).
    peak: Arc<AtomicU64>,
    oom_flag: Arc<AtomicBool>,
    stopped: AtomicBool,
}

impl ProcessInstance {
    fn max_memory_mb(&self) -> u32 {
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
    fn exit_outcome(&self, request_id: &str) -> Outcome {
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

    async fn stop_now(&self) {
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
            self.output.flush().await;
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
async fn exited(exit: &mut watch::Receiver<Option<String>>) {
    let _ = exit.wait_for(|e| e.is_some()).await;
}

/// `exit status 1` or `signal: killed`, as Lambda words it.
fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(libc::SIGKILL)) => "signal: killed".into(),
        (None, Some(libc::SIGSEGV)) => "signal: segmentation fault".into(),
        (None, Some(libc::SIGABRT)) => "signal: aborted".into(),
        (None, Some(sig)) => format!("signal: {sig}"),
        (None, None) => "unknown exit".into(),
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    INSTANCE_PATH
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// Peak resident set of a process, from /proc.
fn vm_hwm(pid: i32) -> Option<u64> {
    proc_status_kb(pid, "VmHWM:").map(|kb| kb * 1024)
}

fn proc_status_kb(pid: i32, key: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Enforces `memory_mb` on hosts without a memory cgroup by polling the
/// resident set, killing the instance when it goes over.
async fn rss_watchdog(
    spawned: i32,
    pid_ns: bool,
    limit: u64,
    peak: Arc<AtomicU64>,
    oom: Arc<AtomicBool>,
    mut exit: watch::Receiver<Option<String>>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = exited(&mut exit) => return,
        }
        let pid = main_pid(spawned, pid_ns);
        if pid_ns && pid == spawned {
            // Not forked into its namespace yet; the waiter is not the instance.
            continue;
        }
        let Some(rss) = proc_status_kb(pid, "VmRSS:").map(|kb| kb * 1024) else {
            return;
        };
        peak.fetch_max(rss, Ordering::Relaxed);
        if rss > limit {
            oom.store(true, Ordering::SeqCst);
            sandbox::kill(-pid, libc::SIGKILL);
            sandbox::kill(pid, libc::SIGKILL);
            return;
        }
    }
}

/// Kills instances an earlier run left (after a SIGKILL of the server, the
/// parent-death signal should have done it already) and removes their files.
fn cleanup_leftovers(instances_dir: &Path) {
    let Ok(entries) = fs::read_dir(instances_dir) else {
        return;
    };
    for e in entries.flatten() {
        let id = e.file_name().to_string_lossy().into_owned();
        let recorded = fs::read_to_string(e.path().join("pid")).unwrap_or_default();
        let mut parts = recorded.split_whitespace();
        let pid = parts.next().and_then(|p| p.parse::<i32>().ok());
        let started = parts.next().and_then(|t| t.parse::<u64>().ok());
        if let (Some(pid), Some(started)) = (pid, started) {
            // Only the process that started then is ours: pids get reused.
            if pid > 0 && start_time(pid) == Some(started) {
                sandbox::kill(-pid, libc::SIGKILL);
                sandbox::kill(pid, libc::SIGKILL);
            }
        }
        let _ = id;
        let _ = fs::remove_dir_all(e.path());
    }
}

/// A process's start time (clock ticks since boot), from /proc.
fn start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may hold spaces: ") S ppid …".
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The instance's own first process: with a PID namespace, the child of the
/// process that was spawned (which waits outside the namespace).
fn main_pid(spawned: i32, pid_ns: bool) -> i32 {
    if !pid_ns {
        return spawned;
    }
    fs::read_to_string(format!("/proc/{spawned}/task/{spawned}/children"))
        .ok()
        .and_then(|c| c.split_whitespace().next()?.parse().ok())
        .unwrap_or(spawned)
}
