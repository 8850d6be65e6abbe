//! Builds an instance's box between fork and exec, one named step at a time
//! in the order of Firecracker's jailer: cgroups, namespaces, a root of its
//! own (pivot_root), the new identity, no new privileges, seccomp, exec.
//!
//! Everything the child needs is prepared in the parent ([`ChildSetup`]),
//! so the child only makes system calls (no allocation after fork). A step
//! that fails writes its name and the error to the instance's stderr (its
//! log) and fails the spawn with the OS error.

use super::seccomp::Filters;
use rootfs::{cs, cstr, run_step, Step};
use std::ffi::{CStr, CString};
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod rootfs;

pub use rootfs::{InstanceRoot, RootLayout};

/// Open files per instance process (Lambda's limit).
const NOFILE: libc::rlim_t = 1024;

/// How the instance root is remounted once it is `/`.
const ROOT_RO_FLAGS: libc::c_ulong =
    libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV;

/// The namespaces and protections an instance gets.
#[derive(Clone, Copy, Debug, Default)]
pub struct Features {
    /// A user namespace mapping the server's uid (servers without root).
    pub user_ns: bool,
    pub mount_ns: bool,
    pub pid_ns: bool,
    pub ipc_ns: bool,
    pub uts_ns: bool,
    pub no_new_privs: bool,
}

impl Features {
    /// The `unshare` flags of the namespaces after the user one (no
    /// allocation: the child computes them).
    fn unshare_flags(&self) -> libc::c_int {
        let mut flags = 0;
        for (on, flag) in [
            (self.mount_ns, libc::CLONE_NEWNS),
            (self.pid_ns, libc::CLONE_NEWPID),
            (self.ipc_ns, libc::CLONE_NEWIPC),
            (self.uts_ns, libc::CLONE_NEWUTS),
        ] {
            if on {
                flags |= flag;
            }
        }
        flags
    }
}

/// Everything the child does between fork and exec, prepared in the parent.
pub struct ChildSetup {
    cgroup_procs: Vec<fs::File>,
    netns: Option<OwnedFd>,
    features: Features,
    /// `/proc/self/uid_map` and `gid_map` lines for a user namespace.
    id_maps: Option<(CString, CString)>,
    root_dir: Option<CString>,
    /// The root's part that names no function ([`RootLayout::base_steps`]),
    /// then the function's ([`InstanceRoot::own_steps`]).
    base_steps: Vec<Step>,
    steps: Vec<Step>,
    uid: Option<u32>,
    workdir: CString,
    seccomp: Option<Arc<Filters>>,
    parent_pid: i32,
}

/// The uid an instance has inside a user namespace (servers without root):
/// not 0, so that its exec drops the capabilities the namespace gave.
pub const USERNS_INNER_UID: u32 = 1000;

impl ChildSetup {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cgroup_procs: Vec<PathBuf>,
        netns: Option<OwnedFd>,
        features: Features,
        root: Option<InstanceRoot<'_>>,
        uid: Option<u32>,
        workdir: &Path,
        seccomp: Option<Arc<Filters>>,
    ) -> io::Result<ChildSetup> {
        let cgroup_procs = cgroup_procs
            .iter()
            .map(|p| fs::OpenOptions::new().write(true).open(p))
            .collect::<io::Result<Vec<_>>>()?;
        // SAFETY: these calls have no preconditions.
        #[allow(unsafe_code)]
        let (parent_pid, outer_uid, outer_gid) =
            unsafe { (libc::getpid(), libc::geteuid(), libc::getegid()) };
        let id_maps = if features.user_ns {
            Some((
                cstr(&format!("{USERNS_INNER_UID} {outer_uid} 1"))?,
                cstr(&format!("{USERNS_INNER_UID} {outer_gid} 1"))?,
            ))
        } else {
            None
        };
        let (root_dir, base_steps, steps) = match &root {
            Some(r) => (
                Some(cs(&r.layout.mount_point)?),
                r.layout.base_steps(true)?,
                r.own_steps()?,
            ),
            None => (None, Vec::new(), Vec::new()),
        };
        Ok(ChildSetup {
            cgroup_procs,
            netns,
            features,
            id_maps,
            root_dir,
            base_steps,
            steps,
            uid,
            workdir: cs(workdir)?,
            seccomp,
            parent_pid,
        })
    }

    /// The same steps as [`ChildSetup::apply`], as data for a template
    /// process (zygote.py) to run on a child it forks, and the descriptors
    /// they use, in the order it takes them: the cgroups' `cgroup.procs`,
    /// then the network namespace. The root comes in two lists: `root_base`
    /// (no function's: a parked child runs it with the rest of the prefix,
    /// while it waits) and `steps` (the function's). `None` for a path that
    /// is not UTF-8 (the instance is then started by exec, as without a
    /// template).
    pub fn program(&self) -> Option<(serde_json::Value, Vec<std::os::fd::RawFd>)> {
        self.program_with(false)
    }

    /// [`ChildSetup::program`] for a child parked with this server's
    /// seccomp filters (every box has the same): they are not sent again,
    /// the child installs the ones it packed while it waited.
    pub fn program_for_parked(&self) -> Option<(serde_json::Value, Vec<std::os::fd::RawFd>)> {
        self.program_with(true)
    }

    fn program_with(
        &self,
        seccomp_parked: bool,
    ) -> Option<(serde_json::Value, Vec<std::os::fd::RawFd>)> {
        use serde_json::json;
        let text = |c: &CStr| c.to_str().ok().map(str::to_string);
        let opt = |c: &Option<CString>| -> Option<Option<String>> {
            match c {
                Some(c) => text(c).map(Some),
                None => Some(None),
            }
        };
        let as_data = |list: &[Step]| -> Option<Vec<serde_json::Value>> {
            list.iter()
                .map(|s| {
                    Some(match s {
                        Step::Mkdir(p) => json!({ "mkdir": text(p)? }),
                        Step::Touch(p) => json!({ "touch": text(p)? }),
                        Step::Symlink { target, link } => {
                            json!({ "symlink": [text(target)?, text(link)?] })
                        }
                        Step::Mount {
                            src,
                            dst,
                            fstype,
                            flags,
                            data,
                            what,
                        } => json!({ "mount": {
                            "src": opt(src)?, "dst": text(dst)?, "fstype": opt(fstype)?,
                            "flags": flags, "data": opt(data)?, "what": text(what)?,
                        }}),
                    })
                })
                .collect()
        };
        let root_base = as_data(&self.base_steps)?;
        let steps = as_data(&self.steps)?;
        let f = self.features;
        let unshare = f.unshare_flags();
        let id_maps = match &self.id_maps {
            Some((u, g)) => Some([text(u)?, text(g)?]),
            None => None,
        };
        let root = match &self.root_dir {
            Some(r) => Some(text(r)?),
            None => None,
        };
        let seccomp = if seccomp_parked {
            json!("parked")
        } else {
            let programs: Vec<Vec<[u32; 4]>> = self
                .seccomp
                .iter()
                .flat_map(|f| f.programs.iter())
                .map(|prog| {
                    prog.iter()
                        .map(|i| [u32::from(i.code), u32::from(i.jt), u32::from(i.jf), i.k])
                        .collect()
                })
                .collect();
            json!(programs)
        };
        let program = json!({
            "cgroup_procs": self.cgroup_procs.len(),
            "netns": self.netns.is_some(),
            "id_maps": id_maps,
            "unshare": unshare,
            "pid_ns": f.pid_ns,
            "uts_ns": f.uts_ns,
            "root": root,
            "root_base": root_base,
            "steps": steps,
            "uid": self.uid,
            "no_new_privs": f.no_new_privs,
            "nofile": NOFILE,
            "workdir": text(&self.workdir)?,
            "seccomp": seccomp,
            // This machine's numbers, so that the template names none itself.
            "c": {
                "clone_newnet": libc::CLONE_NEWNET,
                "clone_newuser": libc::CLONE_NEWUSER,
                "pr_set_pdeathsig": libc::PR_SET_PDEATHSIG,
                "pr_set_no_new_privs": libc::PR_SET_NO_NEW_PRIVS,
                "sigkill": libc::SIGKILL,
                "mnt_detach": libc::MNT_DETACH,
                "root_ro_flags": ROOT_RO_FLAGS,
                "sys_pivot_root": libc::SYS_pivot_root,
                "sys_seccomp": libc::SYS_seccomp,
                "sys_close_range": libc::SYS_close_range,
                "seccomp_set_mode_filter": libc::SECCOMP_SET_MODE_FILTER,
                "pr_set_mm": libc::PR_SET_MM,
                "pr_set_mm_map": libc::PR_SET_MM_MAP,
                "pr_set_dumpable": libc::PR_SET_DUMPABLE,
            },
        });
        let mut fds: Vec<std::os::fd::RawFd> =
            self.cgroup_procs.iter().map(AsRawFd::as_raw_fd).collect();
        fds.extend(self.netns.as_ref().map(AsRawFd::as_raw_fd));
        Some((program, fds))
    }

    /// Runs in the forked child before exec.
    ///
    /// # Safety
    /// Must only be called between fork and exec; it makes system calls only.
    #[allow(unsafe_code)]
    pub unsafe fn apply(&self) -> io::Result<()> {
        // Own session and process group, so the whole tree can be signalled.
        step(c"setsid", libc::setsid())?;
        // Die with the server, even on SIGKILL.
        die_with_parent(self.parent_pid)?;
        for f in &self.cgroup_procs {
            // "0" names the writing process itself in both cgroup versions.
            if libc::write(f.as_raw_fd(), b"0".as_ptr().cast(), 1) != 1 {
                return fail(c"join the instance cgroup");
            }
        }
        if let Some(ns) = &self.netns {
            step(
                c"enter the network namespace",
                libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET),
            )?;
        }
        if let Some((uid_map, gid_map)) = &self.id_maps {
            step(
                c"unshare the user namespace",
                libc::unshare(libc::CLONE_NEWUSER),
            )?;
            write_file(c"/proc/self/setgroups", c"deny")?;
            write_file(c"/proc/self/uid_map", uid_map)?;
            write_file(c"/proc/self/gid_map", gid_map)?;
        }
        let f = self.features;
        let flags = f.unshare_flags();
        if flags != 0 {
            step(c"unshare namespaces", libc::unshare(flags))?;
        }
        if f.pid_ns {
            // The process that execs must be the new namespace's first
            // (PID 1); this one stays outside, waits, and passes its exit on.
            become_pid_one()?;
        }
        if f.uts_ns {
            step(
                c"set the host name",
                libc::sethostname(c"updraft".as_ptr(), 7),
            )?;
        }
        if let Some(root) = &self.root_dir {
            for s in self.base_steps.iter().chain(&self.steps) {
                run_step(s)?;
            }
            step(c"enter the instance root", libc::chdir(root.as_ptr()))?;
            step(
                c"pivot_root",
                libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) as libc::c_int,
            )?;
            step(
                c"detach the host root",
                libc::umount2(c".".as_ptr(), libc::MNT_DETACH),
            )?;
            step(c"chdir /", libc::chdir(c"/".as_ptr()))?;
            step(
                c"make the instance root read-only",
                libc::mount(
                    std::ptr::null(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    ROOT_RO_FLAGS,
                    std::ptr::null(),
                ),
            )?;
        }
        if let Some(uid) = self.uid {
            step(c"setgroups", libc::setgroups(0, std::ptr::null()))?;
            step(c"setgid", libc::setgid(uid))?;
            step(c"setuid", libc::setuid(uid))?;
        }
        if f.no_new_privs {
            step(
                c"set no_new_privs",
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0),
            )?;
        }
        // A change of credentials clears the parent-death signal: set it again.
        set_pdeathsig()?;
        // Lambda's descriptor limit, not the server's raised one.
        let nofile = libc::rlimit {
            rlim_cur: NOFILE,
            rlim_max: NOFILE,
        };
        step(
            c"set the open-files limit",
            libc::setrlimit(libc::RLIMIT_NOFILE, &nofile),
        )?;
        step(c"chdir to the code", libc::chdir(self.workdir.as_ptr()))?;
        if let Some(filters) = &self.seccomp {
            if let Err(e) = super::seccomp::install(filters) {
                say(c"install the seccomp filter");
                return Err(e);
            }
        }
        Ok(())
    }
}

/// Forks; the parent waits for the child and exits as it did, the child
/// returns (it is PID 1 of the new PID namespace and goes on to exec).
#[allow(unsafe_code)]
unsafe fn become_pid_one() -> io::Result<()> {
    // The waiting process is a copy of the server: never the OOM killer's
    // pick, where the host lets us say so (best effort, silently).
    let lowered = set_oom_score_adj(c"-1000");
    let pid = libc::fork();
    if pid < 0 {
        return fail(c"fork into the PID namespace");
    }
    if pid == 0 {
        if lowered {
            set_oom_score_adj(c"0");
        }
        // Dies with the waiting process (which dies with the server).
        set_pdeathsig()?;
        return Ok(());
    }
    // The waiter keeps no descriptor: the log pipe and spawn's error pipe
    // must close when the instance execs or exits, not when this one does.
    libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32);
    let mut status = 0;
    loop {
        let r = libc::waitpid(pid, &mut status, 0);
        if r == pid {
            break;
        }
        if r == -1 && *libc::__errno_location() != libc::EINTR {
            libc::_exit(1);
        }
    }
    if libc::WIFEXITED(status) {
        libc::_exit(libc::WEXITSTATUS(status));
    }
    if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        libc::signal(sig, libc::SIG_DFL);
        libc::kill(libc::getpid(), sig);
        libc::_exit(128 + sig);
    }
    libc::_exit(1)
}

#[allow(unsafe_code)]
unsafe fn set_oom_score_adj(value: &CStr) -> bool {
    let fd = libc::open(
        c"/proc/self/oom_score_adj".as_ptr(),
        libc::O_WRONLY | libc::O_CLOEXEC,
    );
    if fd < 0 {
        return false;
    }
    let bytes = value.to_bytes();
    let ok = libc::write(fd, bytes.as_ptr().cast(), bytes.len()) == bytes.len() as isize;
    libc::close(fd);
    ok
}

#[allow(unsafe_code)]
unsafe fn die_with_parent(parent: i32) -> io::Result<()> {
    set_pdeathsig()?;
    if libc::getppid() != parent {
        // The server died before prctl took effect.
        libc::_exit(1);
    }
    Ok(())
}

/// Kills this process when its parent dies (a change of credentials clears it).
#[allow(unsafe_code)]
unsafe fn set_pdeathsig() -> io::Result<()> {
    step(
        c"set the parent-death signal",
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        ),
    )
}

#[allow(unsafe_code)]
unsafe fn write_file(path: &CStr, text: &CStr) -> io::Result<()> {
    let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
    if fd < 0 {
        return fail(path);
    }
    let bytes = text.to_bytes();
    let n = libc::write(fd, bytes.as_ptr().cast(), bytes.len());
    let err = io::Error::last_os_error();
    libc::close(fd);
    if n != bytes.len() as isize {
        say(path);
        return Err(err);
    }
    Ok(())
}

/// Writes "updraft sandbox: could not WHAT: " to stderr (the instance's log).
#[allow(unsafe_code)]
unsafe fn say(what: &CStr) {
    let err = io::Error::last_os_error();
    let parts: [&[u8]; 3] = [b"updraft sandbox: could not ", what.to_bytes(), b" (errno "];
    for p in parts {
        libc::write(2, p.as_ptr().cast(), p.len());
    }
    // The errno in decimal, without allocating.
    let mut buf = [0u8; 12];
    let mut n = err.raw_os_error().unwrap_or(0).unsigned_abs();
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    libc::write(2, buf[i..].as_ptr().cast(), buf.len() - i);
    libc::write(2, b")\n".as_ptr().cast(), 2);
}

#[allow(unsafe_code)]
unsafe fn fail<T>(what: &CStr) -> io::Result<T> {
    let err = io::Error::last_os_error();
    say(what);
    Err(err)
}

#[allow(unsafe_code)]
unsafe fn step(what: &CStr, r: libc::c_int) -> io::Result<()> {
    if r == -1 {
        fail(what)
    } else {
        Ok(())
    }
}
