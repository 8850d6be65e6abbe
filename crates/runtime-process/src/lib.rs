//! The process runtime: every instance is a separate, sandboxed process that
//! speaks the AWS Lambda Runtime API to an endpoint of its own. `python3` and
//! `nodejs` run a bootstrap Updraft ships; `provided` runs the code's own
//! `bootstrap` (for example a Lambda runtime interface client).

mod api;
mod instance;
pub mod interpreters;
mod output;
mod proc;
pub mod sandbox;
pub mod sdk;
mod snapshot;
#[cfg(test)]
mod test_support;
mod zygote;

pub use api::MAX_RESPONSE_BYTES;
pub use interpreters::{Interpreter, RuntimeMapping, Runtimes, Unavailable};
pub use sandbox::{Isolation, IsolationMode};
pub use sdk::Sdk;

/// What preparing the process runtime fails with.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The host cannot give instances the isolation asked for (`--isolation`).
    #[error("{0}")]
    Isolation(String),
    /// A `--runtime ID=PATH` mapping that cannot be served.
    #[error("{} {mapping}: {reason}", interpreters::FLAG)]
    Mapping { mapping: String, reason: String },
    /// Preparing the runtime's directories failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Installing the AWS SDK for functions failed (`--install-sdk`).
    #[error("{0}")]
    Sdk(String),
}

use instance::{exited, ProcessInstance};
use proc::{cleanup_leftovers, rss_watchdog, start_time};

use futures_util::future::BoxFuture;
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use updraft_core::{ErrorKind, LogSink, Outcome, RuntimeKind};
use updraft_scheduler::{Instance, InstanceSpec, Runtime, StartFailure};

const PYTHON_BOOTSTRAP: &str = include_str!("../bootstrap/python3/bootstrap.py");
const NODE_BOOTSTRAP: &str = include_str!("../bootstrap/nodejs/bootstrap.js");
const PYTHON_ZYGOTE: &str = include_str!("../bootstrap/python3/zygote.py");
const PYTHON_SNAPSHOT_HOOKS: &str = include_str!("../bootstrap/python3/lib/snapshot_restore_py.py");

/// The `PATH` instances see: the system's, never the server's.
const INSTANCE_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Makes the environment variables carrying an instance's credentials.
pub type CredentialsEnv = Box<dyn Fn(&InstanceSpec) -> Vec<(String, String)> + Send + Sync>;

/// How instances call the platform's AWS APIs (Lambda, SQS, EventBridge)
/// as their function, the way a Lambda execution role and the SDK's
/// default endpoints let them on AWS.
pub struct FunctionAccess {
    /// The environment carrying an instance's credentials
    /// (`AWS_ACCESS_KEY_ID`, …), minted at each start.
    pub credentials: CredentialsEnv,
    /// How long those credentials last: an instance takes no invocation
    /// that could run past their expiry.
    pub credentials_ttl: Duration,
    /// The control API, served on each instance's Runtime API address
    /// beside the Runtime API (paths do not overlap), so that an instance
    /// in its own network namespace reaches it too; its requests are
    /// authenticated and authorized like any other.
    pub control: axum::Router,
}

/// Starts process instances.
pub struct ProcessRuntime {
    access: Arc<std::sync::OnceLock<FunctionAccess>>,
    instances_dir: PathBuf,
    runtimes_dir: PathBuf,
    region: String,
    isolation: Isolation,
    interpreters: Arc<Runtimes>,
    logs: Arc<dyn LogSink>,
    /// The AWS SDK shown to python3 and nodejs instances ([`Self::with_sdk`]).
    sdk: Option<Sdk>,
    /// python3 template processes instances are forked from.
    zygotes: Arc<zygote::Zygotes>,
    /// Templates that ran a function's init (`snapshot = true`).
    snapshots: Arc<snapshot::Snapshots>,
}

/// Parked children's boxes: a cgroup and network namespace each, and the
/// steps of `ChildSetup::apply` no function decides.
struct ParkKit {
    isolation: Isolation,
    seq: AtomicU64,
}

/// A parked child's memory limit until it becomes an instance.
const PARKED_MEMORY: u64 = 128 << 20;

impl zygote::ParkKit for ParkKit {
    fn make(&self) -> io::Result<zygote::ParkMaterials> {
        let iso = &self.isolation;
        let n = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("parked-{}-{n}", std::process::id());
        let cgroup = match &iso.cgroups {
            Some(root) => Some(root.create(
                &name,
                sandbox::cgroup::Limits {
                    memory_bytes: PARKED_MEMORY,
                    pids: sandbox::cgroup::DEFAULT_PIDS,
                },
            )?),
            None => None,
        };
        let ns = if iso.network_ns {
            Some(sandbox::prepared::take()?)
        } else {
            None
        };
        let (listener, netns) = match ns {
            Some(ns) => (Some(ns.listener), Some(ns.fd)),
            None => (None, None),
        };
        // The box's root, uid and the rest are the instance's, sent later:
        // only the prefix of this program is run.
        let setup = iso.child_setup(
            cgroup.as_ref(),
            netns,
            Path::new("/"),
            None,
            &[],
            None,
            1,
            0,
        )?;
        let Some((program, fds)) = setup.program() else {
            return Err(io::Error::other("a parked child's box is not UTF-8"));
        };
        Ok(zygote::ParkMaterials {
            program,
            fds,
            keep: Box::new(setup),
            cgroup,
            listener,
        })
    }
}

impl ProcessRuntime {
    /// Prepares `DATA_DIR/runtimes` and `DATA_DIR/instances`, and kills what
    /// an earlier run of the server left behind.
    pub fn new(
        data_dir: &Path,
        region: &str,
        isolation: Isolation,
        interpreters: Arc<Runtimes>,
        logs: Arc<dyn LogSink>,
    ) -> Result<ProcessRuntime, ProcessError> {
        use std::os::unix::fs::PermissionsExt;
        let instances_dir = data_dir.join("instances");
        let runtimes_dir = data_dir.join("runtimes");
        cleanup_leftovers(&instances_dir);
        if let Some(cg) = &isolation.cgroups {
            cg.cleanup_leftovers();
        }
        let at = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ProcessError::Io { path, source }
        };
        for (dir, file, text) in [
            ("python3", "bootstrap.py", PYTHON_BOOTSTRAP),
            ("python3", "zygote.py", PYTHON_ZYGOTE),
            (
                "python3/lib",
                "snapshot_restore_py.py",
                PYTHON_SNAPSHOT_HOOKS,
            ),
            ("nodejs", "bootstrap.js", NODE_BOOTSTRAP),
        ] {
            let d = runtimes_dir.join(dir);
            let f = d.join(file);
            fs::create_dir_all(&d).map_err(at(&d))?;
            fs::write(&f, text).map_err(at(&f))?;
            fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).map_err(at(&d))?;
            fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).map_err(at(&f))?;
        }
        fs::set_permissions(&runtimes_dir, fs::Permissions::from_mode(0o755))
            .map_err(at(&runtimes_dir))?;
        fs::create_dir_all(&instances_dir).map_err(at(&instances_dir))?;
        fs::set_permissions(&instances_dir, fs::Permissions::from_mode(0o700))
            .map_err(at(&instances_dir))?;
        let python_root = if isolation.root.is_some() {
            PathBuf::from("/var/runtime")
        } else {
            runtimes_dir.join("python3")
        };
        let park_kit: Arc<dyn zygote::ParkKit> = Arc::new(ParkKit {
            isolation: isolation.clone(),
            seq: AtomicU64::new(0),
        });
        let zygotes = Arc::new(zygote::Zygotes::new(
            &runtimes_dir.join("python3"),
            &python_root,
            park_kit,
        ));
        Ok(ProcessRuntime {
            zygotes,
            snapshots: Arc::default(),
            access: Arc::default(),
            instances_dir,
            runtimes_dir,
            region: region.to_string(),
            isolation,
            interpreters,
            logs,
            sdk: None,
        })
    }

    /// Shows `sdk` to python3 and nodejs instances, read-only inside their
    /// runtime directory (see [`sdk`]).
    pub fn with_sdk(mut self, sdk: Sdk) -> Result<ProcessRuntime, ProcessError> {
        let jailed = self.isolation.root.is_some();
        sdk::link_runtime_dirs(&sdk, &self.runtimes_dir, jailed)?;
        self.sdk = Some(sdk);
        Ok(self)
    }

    /// Whether python3 instances are forked from a template process (on
    /// by default; `--no-zygotes`).
    pub fn with_zygotes(self, on: bool) -> ProcessRuntime {
        self.zygotes.set_enabled(on);
        self
    }

    /// Starts the template process of every python3 interpreter now, off
    /// the request path, so that the first cold start is forked too.
    pub fn prestart_zygotes(&self) {
        if !self.zygotes.enabled() {
            return;
        }
        for i in self.interpreters.interpreters() {
            if i.kind == RuntimeKind::Python3 {
                let zygotes = self.zygotes.clone();
                let path = i.path.clone();
                tokio::spawn(async move { zygotes.get(&path).await });
            }
        }
    }

    /// The python3 template to fork `spec`'s instance from, if any: not
    /// for a function that sets a `PYTHON…` variable, which only an
    /// interpreter's start reads.
    async fn zygote_for(&self, spec: &InstanceSpec) -> Option<Arc<zygote::Zygote>> {
        if spec.config.kind() != RuntimeKind::Python3
            || spec.config.env.keys().any(|k| k.starts_with("PYTHON"))
        {
            return None;
        }
        let path = match self.interpreters.resolve(&spec.config.runtime) {
            Ok(Some(i)) => i.path.clone(),
            _ => return None,
        };
        self.zygotes.get(&path).await
    }

    /// The template whose parked children other runtimes' instances start
    /// from: the default python3 interpreter's.
    async fn park_host(&self) -> Option<Arc<zygote::Zygote>> {
        if !self.zygotes.enabled() {
            return None;
        }
        let path = match self.interpreters.resolve("python3") {
            Ok(Some(i)) => i.path.clone(),
            _ => return None,
        };
        self.zygotes.get(&path).await
    }

    pub fn isolation(&self) -> &Isolation {
        &self.isolation
    }

    /// Where the platform sets how instances reach its AWS APIs (once;
    /// until then instances get neither credentials nor endpoints).
    pub fn access(&self) -> Arc<std::sync::OnceLock<FunctionAccess>> {
        self.access.clone()
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
        let interpreter = |script: &str| {
            let kind = spec.config.kind();
            match self.interpreters.resolve(&spec.config.runtime) {
                Ok(Some(i)) => Ok((i.path.clone(), vec![self.runtime_root(kind).join(script)])),
                Ok(None) => Err(format!("{} needs no interpreter", spec.config.runtime)),
                Err(e) => Err(e.to_string()),
            }
        };
        match spec.config.kind() {
            RuntimeKind::Python3 => interpreter("bootstrap.py"),
            RuntimeKind::Nodejs => interpreter("bootstrap.js"),
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

    /// The system's `PATH`, after the interpreter's own directory when it
    /// is elsewhere (as Lambda's `/var/lang/bin` comes first).
    fn instance_path(&self, spec: &InstanceSpec) -> String {
        let dir = match self.interpreters.resolve(&spec.config.runtime) {
            Ok(Some(i)) => i.path.parent().map(Path::to_path_buf),
            _ => None,
        };
        match dir {
            Some(d) if !INSTANCE_PATH.split(':').any(|p| Path::new(p) == d) => {
                format!("{}:{INSTANCE_PATH}", d.display())
            }
            _ => INSTANCE_PATH.into(),
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
                spec.config
                    .logging
                    .log_group
                    .clone()
                    .unwrap_or_else(|| format!("/aws/lambda/{}", spec.function)),
            ),
            (
                "AWS_LAMBDA_LOG_STREAM_NAME",
                format!("{date}/[{version}]{id}"),
            ),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
            (
                "AWS_EXECUTION_ENV",
                format!(
                    "AWS_Lambda_{}",
                    self.interpreters.lambda_id(&spec.config.runtime)
                ),
            ),
            ("AWS_REGION", self.region.clone()),
            ("AWS_DEFAULT_REGION", self.region.clone()),
            ("PATH", self.instance_path(spec)),
            ("LANG", "C.UTF-8".into()),
            ("TZ", ":UTC".into()),
            ("HOME", "/tmp".into()),
            ("UPDRAFT_INSTANCE_ID", id.into()),
        ];
        for (k, v) in reserved {
            env.insert(k.into(), v);
        }
        // Lambda's JSON log format, honoured by the bootstraps.
        if spec.config.logging.is_json() {
            let level = spec.config.logging.application_level().as_str();
            env.insert("AWS_LAMBDA_LOG_FORMAT".into(), "JSON".into());
            env.insert("AWS_LAMBDA_LOG_LEVEL".into(), level.into());
        }
        if let Some(access) = self.access.get() {
            for (k, v) in (access.credentials)(spec) {
                env.insert(k, v);
            }
            // Reserved on Lambda, the credentials replace the function's own
            // variables; an endpoint the function sets itself wins.
            let endpoint = format!("http://{api}");
            // botocore and the JS SDK name the variable after the service id
            // (EventBridge), not the endpoint prefix (events).
            for service in ["LAMBDA", "SQS", "EVENTBRIDGE"] {
                env.entry(format!("AWS_ENDPOINT_URL_{service}"))
                    .or_insert_with(|| endpoint.clone());
            }
        }
        if kind == RuntimeKind::Python3 {
            env.insert("PYTHONUNBUFFERED".into(), "1".into());
        }
        if kind == RuntimeKind::Nodejs {
            // As Lambda's: the runtime's node_modules (the SDK) after the
            // function's own, which Node searches first.
            let rt = self.runtime_root(kind).display().to_string();
            let task = self.task_root(spec).display().to_string();
            env.insert("NODE_PATH".into(), format!("{rt}/node_modules:{rt}:{task}"));
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
        let template = match self.template_for(&spec, request_id).await {
            Ok(t) => t,
            Err(TemplateError::Start(failure)) => return Err(failure),
            Err(TemplateError::Io(e)) => {
                tracing::warn!(function = %spec.function, "no snapshot template, starting afresh: {e}");
                None
            }
        };
        let prepared = match &template {
            Some(t) => self.prepare_from(t, &spec, request_id).await,
            None => {
                self.prepare(&spec, &id, request_id, &program, &args, None)
                    .await
            }
        };
        let (instance, handles) = prepared.map_err(|e| {
            fail(
                "Runtime.StartError",
                format!("could not start an instance: {e}"),
            )
        })?;
        let mut ready = handles.ready;
        let mut init_error = handles.init_error;
        let mut exit = instance.exit.clone();
        let deadline = Instant::now() + Duration::from_millis(spec.config.timeout_ms);
        let t_ready = Instant::now();
        let failure = tokio::select! {
            Ok(()) = &mut ready => {
                tracing::debug!(function = %spec.function, ready_us = t_ready.elapsed().as_micros() as u64, "instance ready");
                return Ok(Box::new(instance));
            }
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
        instance.output.flush();
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
        keep: Option<&OwnedFd>,
    ) -> io::Result<(ProcessInstance, api::ApiHandles)> {
        use std::os::unix::fs::PermissionsExt;
        // Before the credentials are minted (in `env`): they expire no
        // earlier than this plus their lifetime.
        let minted = Instant::now();
        let iso = &self.isolation;
        let uid = iso.per_function_uid.then_some(spec.uid);
        let dir = self.instances_dir.join(id);
        let tmp = dir.join("tmp");
        fs::create_dir_all(&dir)?;
        // Undone on any error from here on.
        let mut partial = Partial {
            server: None,
            cgroup: None,
            pid: None,
            dir: dir.clone(),
            kept: false,
        };
        if iso.root.is_none() {
            // No instance root: a TMPDIR of its own in the data dir.
            fs::create_dir_all(&tmp)?;
            fs::set_permissions(&tmp, fs::Permissions::from_mode(0o700))?;
        }

        // python3: the template to fork from, and a child of it parked in a
        // cgroup and network namespace of its own, if one is ready.
        let zygote = self.zygote_for(spec).await;
        // Any other instance (nodejs, provided, python3 with a PYTHON…
        // variable) can start from a parked child of the python3 template
        // too: the child execs its program once boxed.
        let exec_argv = match &zygote {
            Some(_) => None,
            None => std::iter::once(program)
                .chain(args.iter().map(PathBuf::as_path))
                .map(|a| a.to_str().map(str::to_string))
                .collect::<Option<Vec<String>>>(),
        };
        let host = match (&zygote, &exec_argv) {
            (Some(z), _) => Some(z.clone()),
            (None, Some(_)) => self.park_host().await,
            (None, None) => None,
        };
        if keep.is_some() && zygote.is_none() {
            return Err(io::Error::other(
                "a snapshot template is forked from the python3 template process, which is off",
            ));
        }
        let mut parked = host.as_ref().and_then(|z| z.take_parked(&self.zygotes));

        // The Runtime API: in the instance's own network namespace, or on
        // the host's loopback accepting only the function's uid.
        let t_netns = Instant::now();
        let parked_listener = parked.as_mut().and_then(|p| p.listener.take());
        let (listener, netns, api_addr) = if let Some(l) = parked_listener {
            let listener = tokio::net::TcpListener::from_std(l)?;
            (
                sandbox::UidListener::new(listener, None),
                None,
                sandbox::netns::RUNTIME_API_ADDR.to_string(),
            )
        } else if iso.network_ns {
            let ns = tokio::task::spawn_blocking(sandbox::prepared::take)
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
        let (server, handles) = self.serve_api(listener);
        partial.server = Some(server.abort_handle());

        let t_cgroup = Instant::now();
        let limits = sandbox::cgroup::Limits {
            memory_bytes: u64::from(spec.config.memory_mb) << 20,
            pids: sandbox::cgroup::DEFAULT_PIDS,
        };
        match (parked.as_mut().and_then(|p| p.cgroup.take()), &iso.cgroups) {
            (Some(cg), _) => {
                let limited = cg.set_limits(limits);
                partial.cgroup = Some(cg);
                limited?;
            }
            (None, Some(root)) => partial.cgroup = Some(root.create(id, limits)?),
            (None, None) => {}
        }
        let runtime_dir = match spec.config.kind() {
            RuntimeKind::Python3 | RuntimeKind::Nodejs => {
                Some(self.runtimes_dir.join(spec.config.kind().to_string()))
            }
            _ => None,
        };
        let interpreter_dirs = match self.interpreters.resolve(&spec.config.runtime) {
            Ok(Some(i)) => i.dirs(),
            _ => Vec::new(),
        };
        let sdk = self.sdk.as_ref().and_then(|s| s.part(spec.config.kind()));
        let setup = iso.child_setup(
            partial.cgroup.as_ref(),
            netns,
            &spec.code_dir,
            runtime_dir.as_deref(),
            &interpreter_dirs,
            sdk.as_ref().map(|(dir, name)| (dir.as_path(), *name)),
            spec.config.ephemeral_storage_mb,
            spec.uid,
        )?;
        let (reader, writer) = io::pipe()?;
        let mut env = self.env(spec, &api_addr, id);
        if keep.is_some() {
            // zygote.py puts the order socket at descriptor 3.
            env.insert("_UPDRAFT_SNAPSHOT_FD".into(), "3".into());
            env.insert("AWS_LAMBDA_INITIALIZATION_TYPE".into(), "snap-start".into());
        }
        let keep = keep.map(std::os::fd::AsRawFd::as_raw_fd);
        let t_spawn = Instant::now();
        let spawned = if let Some(p) = parked.take() {
            // Its cgroup and network namespace are the ones above: this
            // instance can start no other way.
            match setup.program_for_parked() {
                Some((program, _)) => {
                    let log = OwnedFd::from(writer.try_clone()?);
                    drop(writer);
                    let ordered = p.order(program, &env, &log, exec_argv.as_deref(), keep);
                    drop(setup);
                    ordered
                }
                None => Err(io::Error::other(
                    "the instance's box names a path that is not UTF-8",
                )),
            }
        } else {
            let mut forked = None;
            if let Some(z) = &zygote {
                if let Some((program, fds)) = setup.program() {
                    let log = OwnedFd::from(writer.try_clone()?);
                    match z.fork(program, &env, &log, &fds, keep).await {
                        Ok(f) => forked = Some(f),
                        Err(e) => {
                            tracing::warn!(function = %spec.function, "forking from the python3 template failed, starting by exec: {e}")
                        }
                    }
                }
            }
            match forked {
                Some(f) => {
                    drop(writer);
                    drop(setup);
                    Ok(f)
                }
                None if keep.is_some() => Err(io::Error::other(
                    "the snapshot template could not be forked from the python3 template process",
                )),
                None => self.exec(program, args, env, setup, writer),
            }
        };
        let t_spawned = Instant::now();
        let (pid, exit_rx) = spawned?;
        partial.pid = Some(pid);
        let output = self.adopt(&dir, pid, reader, spec, request_id)?;
        let (peak, oom_flag) = watch_memory(
            partial.cgroup.is_none(),
            pid,
            iso.features.pid_ns,
            spec,
            &exit_rx,
        );
        tracing::debug!(
            function = %spec.function,
            netns_us = (t_cgroup - t_netns).as_micros() as u64,
            cgroup_us = (t_spawn - t_cgroup).as_micros() as u64,
            spawn_us = (t_spawned - t_spawn).as_micros() as u64,
            after_spawn_us = t_spawned.elapsed().as_micros() as u64,
            "instance prepared"
        );
        let cgroup = partial.keep();
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
            retire_at: self.access.get().map(|a| minted + a.credentials_ttl),
        };
        Ok((instance, handles))
    }
}

/// The peak memory and out-of-memory flags of an instance: kept by a
/// watchdog of `pid`'s resident memory when it has no cgroup (`watch`),
/// otherwise the cgroup's.
fn watch_memory(
    watch: bool,
    pid: i32,
    pid_ns: bool,
    spec: &InstanceSpec,
    exit: &watch::Receiver<Option<String>>,
) -> (Arc<AtomicU64>, Arc<AtomicBool>) {
    let peak = Arc::new(AtomicU64::new(0));
    let oom_flag = Arc::new(AtomicBool::new(false));
    if watch {
        tokio::spawn(rss_watchdog(
            pid,
            pid_ns,
            u64::from(spec.config.memory_mb) << 20,
            peak.clone(),
            oom_flag.clone(),
            exit.clone(),
        ));
    }
    (peak, oom_flag)
}

/// Why there is no snapshot template to fork from.
enum TemplateError {
    /// Its start failed as an instance's would (the function's init
    /// failed, timed out or crashed): the invocation's error.
    Start(StartFailure),
    /// The platform could not make it: instances start afresh.
    Io(io::Error),
}

impl ProcessRuntime {
    /// Records the instance process `pid` in `dir` (with its start time:
    /// only that process is ours after a restart) and reads its output
    /// from `reader` into the function's log.
    fn adopt(
        &self,
        dir: &Path,
        pid: i32,
        reader: io::PipeReader,
        spec: &InstanceSpec,
        request_id: &str,
    ) -> io::Result<output::Output> {
        fs::write(
            dir.join("pid"),
            format!("{pid} {}", start_time(pid).unwrap_or(0)),
        )?;
        output::Output::spawn(
            OwnedFd::from(reader),
            spec.function.clone(),
            request_id,
            self.logs.clone(),
        )
    }

    /// Serves an instance's Runtime API (and the control API beside it)
    /// on `listener`.
    fn serve_api(
        &self,
        listener: sandbox::UidListener,
    ) -> (tokio::task::JoinHandle<()>, api::ApiHandles) {
        let (state, handles) = api::new_state();
        let mut app = api::router(state);
        if let Some(access) = self.access.get() {
            app = app.fallback_service(access.control.clone());
        }
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (server, handles)
    }

    /// The snapshot template of `spec`'s revision, started if there is
    /// none (or it died, or its credentials grew old); `None` when the
    /// function asks for no snapshot or its instances cannot fork from the
    /// python3 template process.
    async fn template_for(
        &self,
        spec: &Arc<InstanceSpec>,
        request_id: &str,
    ) -> Result<Option<Arc<snapshot::Template>>, TemplateError> {
        if !spec.config.snapshot || self.zygote_for(spec).await.is_none() {
            return Ok(None);
        }
        let max_age = self.access.get().map(|a| a.credentials_ttl / 2);
        self.snapshots.sweep_from_now_on(max_age);
        let cell = self.snapshots.cell(&spec.revision);
        let mut slot = cell.lock().await;
        if let Some(t) = slot.as_ref() {
            let young = max_age.is_none_or(|m| t.minted.elapsed() < m);
            if t.alive() && young {
                return Ok(Some(t.clone()));
            }
        }
        if let Some(old) = slot.take() {
            self.snapshots.retire(old);
        }
        let t = self.start_template(spec, request_id).await?;
        // A child parked at once: the first instance need not wait for it.
        let limits = sandbox::cgroup::Limits {
            memory_bytes: u64::from(spec.config.memory_mb) << 20,
            pids: sandbox::cgroup::DEFAULT_PIDS,
        };
        let uid = self.isolation.per_function_uid.then_some(spec.uid);
        t.refill(self.isolation.cgroups.clone(), limits, uid);
        *slot = Some(t.clone());
        Ok(Some(t))
    }

    /// Starts a template: an instance whose bootstrap runs the init and
    /// then waits for orders on a socket of ours.
    async fn start_template(
        &self,
        spec: &Arc<InstanceSpec>,
        request_id: &str,
    ) -> Result<Arc<snapshot::Template>, TemplateError> {
        let io = TemplateError::Io;
        let (program, args) = self
            .command(spec)
            .map_err(|m| TemplateError::Io(io::Error::other(m)))?;
        let id = uuid::Uuid::new_v4().simple().to_string()[..16].to_string();
        let (ours, theirs) = zygote::seqpacket_pair().map_err(io)?;
        let minted = Instant::now();
        let (instance, handles) = self
            .prepare(spec, &id, request_id, &program, &args, Some(&theirs))
            .await
            .map_err(io)?;
        drop(theirs);
        let (orders, ready) = zygote::Zygote::attach(ours).map_err(io)?;
        let mut init_error = handles.init_error;
        let mut exit = instance.exit.clone();
        let deadline = Instant::now() + Duration::from_millis(spec.config.timeout_ms);
        let failure = tokio::select! {
            Ok(_) = ready => None,
            Ok((error_type, body)) = &mut init_error => Some(Outcome::Error { kind: ErrorKind::Init, error_type, body: body.to_vec() }),
            _ = exited(&mut exit) => Some(instance.exit_outcome(request_id)),
            _ = tokio::time::sleep_until(deadline) => Some(Outcome::platform_error(
                ErrorKind::Init,
                "Sandbox.Timedout",
                format!("RequestId: {request_id} Error: init did not complete within {:.2} seconds (the snapshot's template was not ready)", spec.config.timeout_ms as f64 / 1000.0),
            )),
        };
        instance.output.flush();
        if let Some(outcome) = failure {
            let max_memory_mb = instance.max_memory_mb();
            instance.stop_now().await;
            return Err(TemplateError::Start(StartFailure {
                outcome,
                max_memory_mb,
            }));
        }
        let netns = if self.isolation.network_ns {
            let f = fs::File::open(format!("/proc/{}/ns/net", instance.pid)).map_err(io)?;
            Some(OwnedFd::from(f))
        } else {
            None
        };
        let procs = instance
            .cgroup
            .as_ref()
            .and_then(|c| c.procs_files().next());
        tracing::info!(function = %spec.function, revision = %spec.revision, "snapshot template ready");
        Ok(Arc::new(snapshot::Template {
            orders,
            instance,
            netns,
            procs,
            minted,
            live: Arc::default(),
            last_fork: std::sync::Mutex::new(Instant::now()),
            parked: Default::default(),
            parking: Default::default(),
        }))
    }

    /// An instance forked from the template `t`: a Runtime API in the
    /// template's network namespace, a cgroup of its own, the child moved
    /// into it, then its environment and log sent.
    async fn prepare_from(
        &self,
        t: &Arc<snapshot::Template>,
        spec: &Arc<InstanceSpec>,
        request_id: &str,
    ) -> io::Result<(ProcessInstance, api::ApiHandles)> {
        let iso = &self.isolation;
        let uid = iso.per_function_uid.then_some(spec.uid);
        let limits = sandbox::cgroup::Limits {
            memory_bytes: u64::from(spec.config.memory_mb) << 20,
            pids: sandbox::cgroup::DEFAULT_PIDS,
        };
        let t_child = Instant::now();
        let mut child = t.child(iso.cgroups.clone(), limits, uid).await?;
        let t_api = Instant::now();
        // The instance is named after its child's cgroup.
        let id = child.id.clone();
        let dir = self.instances_dir.join(&id);
        fs::create_dir_all(&dir)?;
        let pid = child.pid;
        let mut partial = Partial {
            server: None,
            cgroup: child.cgroup.take(),
            pid: Some(pid),
            dir: dir.clone(),
            kept: false,
        };
        let (listener, api_addr) = match &t.netns {
            Some(ns) => {
                let ns = ns.try_clone()?;
                let l = tokio::task::spawn_blocking(move || sandbox::netns::listen_in(&ns))
                    .await
                    .map_err(io::Error::other)??;
                let addr = l.local_addr()?.to_string();
                let l = tokio::net::TcpListener::from_std(l)?;
                (sandbox::UidListener::new(l, None), addr)
            }
            None => {
                let l = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
                let addr = l.local_addr()?.to_string();
                (sandbox::UidListener::new(l, uid), addr)
            }
        };
        let (server, handles) = self.serve_api(listener);
        partial.server = Some(server.abort_handle());
        let exit_rx = child.exit.clone();
        let mut env = self.env(spec, &api_addr, &id);
        env.insert("AWS_LAMBDA_INITIALIZATION_TYPE".into(), "snap-start".into());
        let (reader, writer) = io::pipe()?;
        let order = serde_json::to_vec(&serde_json::json!({ "env": env }))?;
        snapshot::send_order(
            &child.hello,
            &order,
            std::os::fd::AsRawFd::as_raw_fd(&writer),
        )?;
        drop(writer);
        drop(child);
        tracing::debug!(
            function = %spec.function,
            child_us = (t_api - t_child).as_micros() as u64,
            after_us = t_api.elapsed().as_micros() as u64,
            "instance prepared from a snapshot"
        );
        let output = self.adopt(&dir, pid, reader, spec, request_id)?;
        let (peak, oom_flag) = watch_memory(partial.cgroup.is_none(), pid, false, spec, &exit_rx);
        let cgroup = partial.keep();
        let instance = ProcessInstance {
            spec: spec.clone(),
            pid,
            isolation_pid_ns: false,
            dir,
            invocations: handles.invocations.clone(),
            exit: exit_rx,
            output,
            cgroup,
            server,
            peak,
            oom_flag,
            stopped: AtomicBool::new(false),
            retire_at: self.access.get().map(|a| t.minted + a.credentials_ttl),
        };
        Ok((instance, handles))
    }
}

/// What a start has made so far: undone when it is dropped before
/// [`Partial::keep`] (an error part-way through `prepare`), so that a failed
/// start leaves no Runtime API task, cgroup, process or directory behind.
struct Partial {
    server: Option<tokio::task::AbortHandle>,
    cgroup: Option<sandbox::Cgroup>,
    pid: Option<i32>,
    dir: PathBuf,
    kept: bool,
}

impl Partial {
    /// The start succeeded: its cgroup, now the instance's.
    fn keep(mut self) -> Option<sandbox::Cgroup> {
        self.kept = true;
        self.cgroup.take()
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        if let Some(server) = &self.server {
            server.abort();
        }
        if let Some(pid) = self.pid.filter(|p| *p > 0) {
            sandbox::kill(-pid, libc::SIGKILL);
            sandbox::kill(pid, libc::SIGKILL);
        }
        if let Some(cg) = self.cgroup.take() {
            cg.remove();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl ProcessRuntime {
    /// Starts an instance by fork and exec, `setup` applied between them:
    /// its pid and its exit.
    fn exec(
        &self,
        program: &Path,
        args: &[PathBuf],
        env: BTreeMap<String, String>,
        setup: sandbox::jail::ChildSetup,
        writer: io::PipeWriter,
    ) -> io::Result<(i32, watch::Receiver<Option<String>>)> {
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .env_clear()
            .envs(env)
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
        let mut child = spawned?;
        let pid = child.id().unwrap_or(0) as i32;
        let (exit_tx, exit_rx) = watch::channel(None);
        tokio::spawn(async move {
            let status = child.wait().await.ok();
            let _ = exit_tx.send(Some(
                status
                    .map(describe_exit)
                    .unwrap_or_else(|| "unknown exit".into()),
            ));
        });
        Ok((pid, exit_rx))
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

#[cfg(test)]
mod partial_tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[tokio::test]
    async fn a_start_that_fails_part_way_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let instance_dir = dir.path().join("instance");
        fs::create_dir_all(instance_dir.join("tmp")).unwrap();
        let server = tokio::spawn(std::future::pending::<()>());
        let mut child = std::process::Command::new("sleep")
            .arg("600")
            .spawn()
            .unwrap();
        let partial = Partial {
            server: Some(server.abort_handle()),
            cgroup: None,
            pid: Some(child.id() as i32),
            dir: instance_dir.clone(),
            kept: false,
        };
        drop(partial);
        assert!(
            server.await.unwrap_err().is_cancelled(),
            "the Runtime API task ended"
        );
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
        assert!(!instance_dir.exists());

        // Kept: nothing is undone.
        let kept_dir = dir.path().join("kept");
        fs::create_dir_all(&kept_dir).unwrap();
        let server = tokio::spawn(std::future::pending::<()>());
        let partial = Partial {
            server: Some(server.abort_handle()),
            cgroup: None,
            pid: None,
            dir: kept_dir.clone(),
            kept: false,
        };
        assert!(partial.keep().is_none());
        assert!(kept_dir.exists());
        assert!(!server.is_finished());
        server.abort();
    }
}
