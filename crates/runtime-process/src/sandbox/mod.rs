//! Host isolation for instance processes. Each instance runs in a box of its
//! own (jail.rs): its cgroup (memory, pids, CPU weight), PID, IPC, UTS and
//! mount namespaces with a root built for it (its code read-only at
//! `/var/task`, the host's system directories read-only, a private
//! size-limited `/tmp` and `/dev/shm`), a network namespace holding only its
//! Runtime API, its function's own uid, no new privileges and a seccomp
//! filter. What this host allows is found once at start-up and reported.

pub mod cgroup;
pub mod firewall;
pub mod jail;
pub mod listener;
pub mod netns;
pub mod prepared;
pub mod seccomp;

pub use cgroup::{Cgroup, CgroupRoot};
pub use listener::{socket_uid, UidListener};

use jail::{ChildSetup, Features, InstanceRoot, RootLayout};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How much isolation the server insists on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IsolationMode {
    /// Every protection, or the server does not start.
    Strict,
    /// What this host allows (for `updraft dev` without root); the rest is
    /// reported as off.
    Auto,
    /// None: functions run as the server's user, on its network, with its
    /// files in reach. Only for code as trusted as the server itself.
    None,
}

impl std::str::FromStr for IsolationMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "strict" => Ok(IsolationMode::Strict),
            "auto" => Ok(IsolationMode::Auto),
            "none" => Ok(IsolationMode::None),
            other => Err(format!("expected strict, auto or none, got {other:?}")),
        }
    }
}

impl std::fmt::Display for IsolationMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IsolationMode::Strict => "strict",
            IsolationMode::Auto => "auto",
            IsolationMode::None => "none",
        })
    }
}

/// One protection and whether it is on (with what) or off (and why).
#[derive(Clone, Debug)]
pub struct Protection {
    pub name: &'static str,
    pub state: Result<String, String>,
}

/// Which isolation this host gives instances, decided once at start-up.
#[derive(Clone)]
pub struct Isolation {
    pub mode: IsolationMode,
    pub cgroups: Option<CgroupRoot>,
    /// Run each function under its own uid (root only).
    pub per_function_uid: bool,
    pub features: Features,
    /// The instance root (mount namespace); `None`: instances see the host.
    pub root: Option<RootLayout>,
    /// A network namespace per instance (the Runtime API inside it).
    pub network_ns: bool,
    pub seccomp: Option<Arc<seccomp::Filters>>,
    pub report: Vec<Protection>,
}

impl std::fmt::Debug for Isolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Isolation")
            .field("mode", &self.mode)
            .field("report", &self.report)
            .finish()
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    #[allow(unsafe_code)]
    unsafe {
        libc::geteuid() == 0
    }
}

impl Isolation {
    /// Finds what this host allows. `key` separates servers sharing a host
    /// (their cgroups); `data_dir` holds the instance root's mount point.
    /// In strict mode a missing protection is an error naming it and how to
    /// proceed.
    pub fn detect(
        mode: IsolationMode,
        allow_function_loopback: bool,
        subnet: netns::Subnet,
        key: &str,
        data_dir: &Path,
    ) -> Result<Isolation, crate::ProcessError> {
        netns::set_outbound(None);
        if mode == IsolationMode::None {
            return Ok(Isolation::none());
        }
        let root = is_root();
        let mut report = Vec::new();
        let mut on = |name: &'static str, state: Result<String, String>| {
            report.push(Protection {
                name,
                state: state.clone(),
            });
            state.is_ok()
        };
        let cgroups = CgroupRoot::detect(key);
        let cgroups_ok = on(
            "cgroup memory limit",
            cgroups
                .as_ref()
                .map(|c| format!("{} ({})", c.dir.display(), if c.v2 { "v2" } else { "v1" }))
                .map_err(Clone::clone),
        );
        let cgroups = cgroups.ok();
        let pids_ok = on(
            "cgroup pids limit",
            match &cgroups {
                Some(c) if c.pids => Ok(format!("{} per instance", cgroup::DEFAULT_PIDS)),
                Some(_) => Err("no writable pids controller".into()),
                None => Err("no cgroups".into()),
            },
        );
        let cpu_ok = on(
            "cgroup CPU weight",
            match &cgroups {
                Some(c) if c.cpu => Ok("proportional to memory_mb".into()),
                Some(_) => Err("no writable cpu controller".into()),
                None => Err("no cgroups".into()),
            },
        );
        let user_ns = !root;
        let mut features = Features {
            user_ns,
            mount_ns: true,
            pid_ns: true,
            ipc_ns: true,
            uts_ns: true,
            no_new_privs: true,
        };
        let mount_point = data_dir.join("sandbox").join("root");
        let layout =
            RootLayout::new(mount_point.clone()).map_err(|source| crate::ProcessError::Io {
                path: mount_point,
                source,
            })?;
        let filters = seccomp::filters();
        let seccomp_ok = on(
            "seccomp filter",
            filters
                .as_ref()
                .map(|_| "denies ptrace, mount, bpf, keyrings, new user namespaces, …".to_string())
                .map_err(Clone::clone),
        );
        let filters = filters.ok().map(Arc::new);
        let network_ns = if allow_function_loopback {
            on(
                "network namespace",
                Err("--allow-function-loopback: functions share the host's network".into()),
            );
            false
        } else if !root {
            on(
                "network namespace",
                Err("needs root: functions share the host's network".into()),
            );
            false
        } else {
            let ns_ok = on(
                "network namespace",
                netns::create()
                    .map(|_| "per instance: its own loopback with its Runtime API".into())
                    .map_err(|e| format!("cannot make one ({e})")),
            );
            if ns_ok {
                // Outbound: the firewall first, then a probe namespace
                // leading out through it (what is reported on works).
                let outbound = firewall::install(&subnet).and_then(|how| {
                    netns::set_outbound(Some(subnet));
                    netns::create().map(|_| how).map_err(|e| {
                        netns::set_outbound(None);
                        format!("cannot lead a namespace out ({e})")
                    })
                });
                on(
                    "outbound network",
                    outbound.map_err(|why| format!("{why}; functions have no network")),
                );
            }
            ns_ok
        };
        // Everything together, on a real child: what is reported on works.
        let probe = probe_jail(&layout, features, filters.clone(), cgroups.as_ref());
        let jail_ok = on(
            "namespaces and instance root",
            probe.clone().map(|()| {
                format!(
                    "{}PID, IPC, UTS, mount; /var/task read-only, private /tmp and /dev/shm",
                    if user_ns { "user (rootless), " } else { "" }
                )
            }),
        );
        if !jail_ok {
            features = Features::default();
        }
        let uid_ok = on(
            "uid per function",
            if root && jail_ok {
                Ok("allocated by the store, never shared".into())
            } else if root {
                Err("needs the instance root".into())
            } else {
                Err(
                    "needs root: functions run as the server's user (mapped in a user namespace)"
                        .into(),
                )
            },
        );
        on(
            "no new privileges",
            if jail_ok {
                Ok("setuid binaries do not elevate".into())
            } else {
                Err("off with the namespaces".into())
            },
        );
        let isolation = Isolation {
            mode,
            cgroups,
            per_function_uid: uid_ok,
            features,
            root: jail_ok.then_some(layout),
            network_ns,
            seccomp: if jail_ok && seccomp_ok { filters } else { None },
            report,
        };
        if root && !jail_ok {
            // Without an instance root a function could not be given a uid of
            // its own (it could not reach its code), and running it as root
            // is never "what the host allows".
            return Err(crate::ProcessError::Isolation(format!(
                "--isolation {mode}: running as root, but instances cannot be boxed here ({}). Fix the host, or pass --isolation none for trusted code only",
                probe.err().unwrap_or_default()
            )));
        }
        if mode == IsolationMode::Strict {
            let missing: Vec<String> = isolation
                .report
                .iter()
                .filter_map(|p| match &p.state {
                    Err(_) if p.name == "outbound network" => None,
                    Err(why) if !(p.name == "network namespace" && allow_function_loopback) => {
                        Some(format!("{}: {why}", p.name))
                    }
                    _ => None,
                })
                .collect();
            let _ = (pids_ok, cpu_ok, cgroups_ok);
            if !missing.is_empty() {
                return Err(crate::ProcessError::Isolation(format!(
                    "--isolation strict: this host cannot isolate functions ({}). Run as root on a host with cgroups, namespaces and seccomp, or pass --isolation auto to run with what is available, or --isolation none for trusted code only",
                    missing.join("; ")
                )));
            }
        }
        Ok(isolation)
    }

    /// No isolation beyond process groups.
    pub fn none() -> Isolation {
        Isolation {
            mode: IsolationMode::None,
            cgroups: None,
            per_function_uid: false,
            features: Features::default(),
            root: None,
            network_ns: false,
            seccomp: None,
            report: vec![Protection {
                name: "isolation",
                state: Err("--isolation none: functions run as the server's user, on its network, with its files and each other in reach; for trusted code only".into()),
            }],
        }
    }

    /// A line per protection, for the server's start-up message.
    pub fn summary(&self) -> String {
        let mut out = format!("isolation {}:", self.mode);
        for p in &self.report {
            match &p.state {
                Ok(how) => out.push_str(&format!("\n  on   {}: {how}", p.name)),
                Err(why) => out.push_str(&format!("\n  OFF  {}: {why}", p.name)),
            }
        }
        out
    }

    /// The ChildSetup of one instance.
    #[allow(clippy::too_many_arguments)]
    pub fn child_setup(
        &self,
        cgroup: Option<&Cgroup>,
        netns: Option<std::os::fd::OwnedFd>,
        code_dir: &Path,
        runtime_dir: Option<&Path>,
        interpreter_dirs: &[PathBuf],
        sdk: Option<(&Path, &'static str)>,
        tmp_mb: u32,
        uid: u32,
    ) -> std::io::Result<ChildSetup> {
        let procs = cgroup
            .map(|c| c.procs_files().collect())
            .unwrap_or_default();
        let root = self.root.as_ref().map(|layout| InstanceRoot {
            layout,
            code_dir,
            runtime_dir,
            interpreter_dirs,
            sdk,
            tmp_mb,
        });
        let workdir = if self.root.is_some() {
            Path::new("/var/task")
        } else {
            code_dir
        };
        ChildSetup::new(
            procs,
            netns,
            self.features,
            root,
            self.per_function_uid.then_some(uid),
            workdir,
            self.seccomp.clone(),
        )
    }
}

/// Starts `/bin/true` in a full box, as an instance would start.
fn probe_jail(
    layout: &RootLayout,
    features: Features,
    filters: Option<Arc<seccomp::Filters>>,
    cgroups: Option<&CgroupRoot>,
) -> Result<(), String> {
    let code = tempfile_dir(layout)?;
    let cg = cgroups.and_then(|c| {
        c.create(
            &format!("probe-jail-{}", std::process::id()),
            cgroup::Limits {
                memory_bytes: 64 << 20,
                pids: 16,
            },
        )
        .ok()
    });
    let setup = ChildSetup::new(
        cg.as_ref()
            .map(|c| c.procs_files().collect())
            .unwrap_or_default(),
        None,
        features,
        Some(InstanceRoot {
            layout,
            code_dir: &code,
            runtime_dir: None,
            interpreter_dirs: &[],
            sdk: None,
            tmp_mb: 1,
        }),
        is_root().then_some(crate::sandbox::PROBE_UID),
        Path::new("/var/task"),
        filters,
    )
    .map_err(|e| e.to_string())?;
    let mut cmd = std::process::Command::new("/bin/true");
    cmd.env_clear()
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    #[allow(unsafe_code)]
    // SAFETY: ChildSetup::apply only makes system calls.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(move || setup.apply());
    }
    let out = cmd.output();
    if let Some(cg) = cg {
        cg.remove();
    }
    let _ = std::fs::remove_dir(&code);
    match out {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "a probe instance failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("a probe instance failed: {e}")),
    }
}

fn tempfile_dir(layout: &RootLayout) -> Result<std::path::PathBuf, String> {
    let dir = layout
        .mount_point
        .with_file_name(format!("probe-code-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

/// The uid the start-up probe runs as (below every function's).
pub const PROBE_UID: u32 = 1_999_999;

/// Sends a signal to a process (or, with a negative pid, a process group).
pub fn kill(pid: i32, signal: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pid, signal);
    }
}
