//! Host isolation for instance processes: memory cgroups (v1 or v2, detected),
//! a user id per function when running as root, a private `/tmp` in a mount
//! namespace, a process group per instance and a parent-death signal, so that
//! no instance outlives the server.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Which isolation this host supports, probed once at start-up.
#[derive(Clone, Debug)]
pub struct Isolation {
    /// Where per-instance memory cgroups are made, if a memory controller is writable.
    pub cgroups: Option<CgroupRoot>,
    /// Run each function under its own uid (only possible as root).
    pub per_function_uid: bool,
    /// Give each instance a private `/tmp` through a mount namespace.
    pub private_tmp: bool,
}

impl Isolation {
    /// Detects what this host allows. `key` separates servers sharing a host;
    /// `data_dir` holds code and bootstraps, which a private `/tmp` would hide
    /// if they lived under `/tmp`.
    pub fn detect(key: &str, data_dir: &Path) -> Isolation {
        // SAFETY: geteuid has no preconditions.
        #[allow(unsafe_code)]
        let root = unsafe { libc::geteuid() } == 0;
        let cgroups = CgroupRoot::detect(key);
        let under_tmp = data_dir.starts_with("/tmp");
        if under_tmp {
            tracing::warn!(data_dir = %data_dir.display(), "the data directory is under /tmp: instances get a TMPDIR of their own instead of a private /tmp");
        }
        let private_tmp = root && !under_tmp && probe_mount_namespace();
        let isolation = Isolation {
            cgroups,
            per_function_uid: root,
            private_tmp,
        };
        tracing::info!(
            cgroups = ?isolation.cgroups.as_ref().map(|c| c.dir.display().to_string()),
            per_function_uid = isolation.per_function_uid,
            private_tmp = isolation.private_tmp,
            "instance isolation"
        );
        isolation
    }

    /// No isolation beyond process groups (for hosts that allow nothing more).
    pub fn none() -> Isolation {
        Isolation {
            cgroups: None,
            per_function_uid: false,
            private_tmp: false,
        }
    }

    /// The uid/gid a function's instances run as, when per-function uids are on.
    pub fn function_uid(&self, function: &str) -> Option<u32> {
        self.per_function_uid.then(|| function_uid(function))
    }
}

/// A stable uid in a range no distribution hands out, derived from the name.
pub fn function_uid(function: &str) -> u32 {
    // FNV-1a: stable across releases, unlike std's hasher.
    let mut h: u32 = 0x811c9dc5;
    for b in function.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x01000193);
    }
    2_000_000 + h % 1_000_000
}

/// Gives a code directory to the function's uid, unreadable to other functions.
pub fn secure_code_dir(dir: &Path, uid: Option<u32>) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let Some(uid) = uid else { return Ok(()) };
    fn walk(p: &Path, uid: u32) -> io::Result<()> {
        std::os::unix::fs::lchown(p, Some(uid), Some(uid))?;
        if p.is_dir() && !p.is_symlink() {
            for e in fs::read_dir(p)? {
                walk(&e?.path(), uid)?;
            }
        }
        Ok(())
    }
    walk(dir, uid)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
}

fn probe_mount_namespace() -> bool {
    // A child that unshares its mount namespace and exits; success means
    // private mounts work here.
    let mut cmd = std::process::Command::new("/bin/true");
    #[allow(unsafe_code)]
    // SAFETY: only async-signal-safe syscalls run between fork and exec.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.status().map(|s| s.success()).unwrap_or(false)
}

/// The directory under which this server makes one cgroup per instance.
#[derive(Clone, Debug)]
pub struct CgroupRoot {
    pub dir: PathBuf,
    pub v2: bool,
}

impl CgroupRoot {
    fn detect(key: &str) -> Option<CgroupRoot> {
        let v1 = Path::new("/sys/fs/cgroup/memory");
        let v2 = Path::new("/sys/fs/cgroup");
        let candidates = [
            (
                v1.join("memory.limit_in_bytes").exists(),
                v1.join("updraft").join(key),
                false,
            ),
            (
                fs::read_to_string(v2.join("cgroup.controllers"))
                    .is_ok_and(|c| c.split_whitespace().any(|x| x == "memory")),
                v2.join("updraft").join(key),
                true,
            ),
        ];
        for (present, dir, is_v2) in candidates {
            if !present {
                continue;
            }
            if fs::create_dir_all(&dir).is_ok() {
                if is_v2 {
                    // Children only get a memory controller if every ancestor delegates it.
                    for p in [v2.join("updraft"), dir.clone()] {
                        let _ = fs::write(p.join("cgroup.subtree_control"), "+memory +pids");
                    }
                }
                let root = CgroupRoot { dir, v2: is_v2 };
                if root.create("probe", 128 << 20).map(|c| c.remove()).is_ok() {
                    return Some(root);
                }
            }
        }
        None
    }

    /// Creates the cgroup of one instance with a memory limit.
    pub fn create(&self, name: &str, limit_bytes: u64) -> io::Result<Cgroup> {
        let dir = self.dir.join(name);
        fs::create_dir_all(&dir)?;
        let cg = Cgroup { dir, v2: self.v2 };
        let limit = limit_bytes.to_string();
        if self.v2 {
            fs::write(cg.dir.join("memory.max"), &limit)?;
            let _ = fs::write(cg.dir.join("memory.swap.max"), "0");
            let _ = fs::write(cg.dir.join("pids.max"), "1024");
        } else {
            fs::write(cg.dir.join("memory.limit_in_bytes"), &limit)?;
            // Without this the limit only bounds RAM and the instance can swap.
            let _ = fs::write(cg.dir.join("memory.memsw.limit_in_bytes"), &limit);
            let _ = fs::write(cg.dir.join("memory.swappiness"), "0");
        }
        Ok(cg)
    }

    /// Kills and removes the cgroups left by an earlier run of this server.
    pub fn cleanup_leftovers(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.flatten() {
            if e.path().is_dir() {
                Cgroup {
                    dir: e.path(),
                    v2: self.v2,
                }
                .remove();
            }
        }
    }
}

/// One instance's cgroup.
#[derive(Debug)]
pub struct Cgroup {
    pub dir: PathBuf,
    v2: bool,
}

impl Cgroup {
    pub fn procs_file(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }

    /// Peak memory use in bytes since the cgroup was made.
    pub fn peak_bytes(&self) -> Option<u64> {
        let file = if self.v2 {
            "memory.peak"
        } else {
            "memory.max_usage_in_bytes"
        };
        fs::read_to_string(self.dir.join(file))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Whether the kernel's OOM killer has killed a process in this cgroup.
    pub fn oom_killed(&self) -> bool {
        let file = if self.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        let Ok(text) = fs::read_to_string(self.dir.join(file)) else {
            return false;
        };
        text.lines().any(|l| {
            let mut parts = l.split_whitespace();
            parts.next() == Some("oom_kill")
                && parts
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0)
                    > 0
        })
    }

    /// Kills every process in the cgroup.
    pub fn kill_all(&self) {
        if let Ok(procs) = fs::read_to_string(self.procs_file()) {
            for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                kill(pid, libc::SIGKILL);
            }
        }
    }

    /// Kills what is left and removes the cgroup.
    pub fn remove(&self) {
        for _ in 0..50 {
            self.kill_all();
            match fs::remove_dir(&self.dir) {
                Ok(()) => return,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return,
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
            }
        }
        tracing::warn!(dir = %self.dir.display(), "could not remove an instance cgroup");
    }
}

/// Sends a signal to a process (or, with a negative pid, a process group).
pub fn kill(pid: i32, signal: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pid, signal);
    }
}

/// Everything the child does between fork and exec, prepared in the parent so
/// that the child only makes system calls (no allocation after fork).
pub struct ChildSetup {
    pub cgroup_procs: Option<fs::File>,
    pub private_tmp: Option<CString>,
    pub uid: Option<u32>,
    pub parent_pid: i32,
}

impl ChildSetup {
    pub fn new(
        cgroup: Option<&Cgroup>,
        private_tmp: Option<&Path>,
        uid: Option<u32>,
    ) -> io::Result<ChildSetup> {
        let cgroup_procs = match cgroup {
            Some(cg) => Some(fs::OpenOptions::new().write(true).open(cg.procs_file())?),
            None => None,
        };
        let private_tmp = match private_tmp {
            Some(p) => Some(CString::new(p.as_os_str().as_bytes()).map_err(io::Error::other)?),
            None => None,
        };
        // SAFETY: getpid has no preconditions.
        #[allow(unsafe_code)]
        let parent_pid = unsafe { libc::getpid() };
        Ok(ChildSetup {
            cgroup_procs,
            private_tmp,
            uid,
            parent_pid,
        })
    }

    /// Runs in the forked child before exec.
    ///
    /// # Safety
    /// Must only be called between fork and exec; it makes system calls only.
    #[allow(unsafe_code)]
    pub unsafe fn apply(&self) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let check = |r: libc::c_int| {
            if r == -1 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        };
        // Own process group, so the whole tree can be signalled at once.
        check(libc::setsid())?;
        if let Some(f) = &self.cgroup_procs {
            // "0" names the writing process itself in both cgroup versions.
            let r = libc::write(f.as_raw_fd(), b"0".as_ptr().cast(), 1);
            if r != 1 {
                return Err(io::Error::last_os_error());
            }
        }
        if let Some(tmp) = &self.private_tmp {
            check(libc::unshare(libc::CLONE_NEWNS))?;
            check(libc::mount(
                c"none".as_ptr(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            check(libc::mount(
                tmp.as_ptr(),
                c"/tmp".as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            ))?;
        }
        if let Some(uid) = self.uid {
            check(libc::setgroups(0, std::ptr::null()))?;
            check(libc::setgid(uid))?;
            check(libc::setuid(uid))?;
        }
        // Die with the server, even on SIGKILL. Set last: a change of
        // credentials clears it.
        check(libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        ))?;
        if libc::getppid() != self.parent_pid {
            // The server died before prctl took effect.
            libc::_exit(1);
        }
        Ok(())
    }
}

/// A listener for an instance's Runtime API that only accepts connections
/// from sockets owned by the function's uid, so that one function cannot take
/// or answer another's invocations over loopback.
pub struct UidListener {
    inner: tokio::net::TcpListener,
    uid: Option<u32>,
}

impl UidListener {
    pub fn new(inner: tokio::net::TcpListener, uid: Option<u32>) -> UidListener {
        UidListener { inner, uid }
    }
}

impl axum::serve::Listener for UidListener {
    type Io = tokio::net::TcpStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, peer) = match self.inner.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "Runtime API accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Some(uid) = self.uid else {
                return (stream, peer);
            };
            let local = match self.inner.local_addr() {
                Ok(l) => l,
                Err(_) => continue,
            };
            match socket_uid(peer, local) {
                Some(owner) if owner == uid => return (stream, peer),
                owner => {
                    tracing::warn!(?owner, expected = uid, %peer, "refused a Runtime API connection from another user");
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// The uid owning the IPv4 TCP socket `peer` connected to `local`.
///
/// Asks the kernel for that one socket over NETLINK_SOCK_DIAG (an exact
/// lookup, microseconds) rather than reading /proc/net/tcp, whose generation
/// walks every socket on the host and took tens of milliseconds per call.
pub fn socket_uid(peer: std::net::SocketAddr, local: std::net::SocketAddr) -> Option<u32> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let (std::net::SocketAddr::V4(peer), std::net::SocketAddr::V4(local)) = (peer, local) else {
        return None;
    };
    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    const NETLINK_SOCK_DIAG: i32 = 4;
    // nlmsghdr (16 bytes) + inet_diag_req_v2 (56 bytes), native endian
    // except the socket id's ports and addresses (network order).
    let mut req = [0u8; 72];
    req[0..4].copy_from_slice(&72u32.to_ne_bytes());
    req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req[6..8].copy_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes());
    req[16] = libc::AF_INET as u8;
    req[17] = libc::IPPROTO_TCP as u8;
    req[20..24].copy_from_slice(&u32::MAX.to_ne_bytes()); // every TCP state
                                                          // The connecting socket: source = the peer, destination = our listener.
    req[24..26].copy_from_slice(&peer.port().to_be_bytes());
    req[26..28].copy_from_slice(&local.port().to_be_bytes());
    req[28..32].copy_from_slice(&peer.ip().octets());
    req[44..48].copy_from_slice(&local.ip().octets());
    req[64..72].copy_from_slice(&[0xff; 8]); // INET_DIAG_NOCOOKIE
    #[allow(unsafe_code)]
    // SAFETY: socket(2) has no memory preconditions; the fd is owned at once.
    let fd = unsafe {
        let raw = libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            NETLINK_SOCK_DIAG,
        );
        if raw < 0 {
            return None;
        }
        OwnedFd::from_raw_fd(raw)
    };
    let mut buf = [0u8; 512];
    #[allow(unsafe_code)]
    // SAFETY: the pointers and lengths describe live stack buffers; sockaddr_nl
    // is zeroed plain data with its family set.
    let got = unsafe {
        let mut addr: libc::sockaddr_nl = std::mem::zeroed();
        addr.nl_family = libc::AF_NETLINK as u16;
        let sent = libc::sendto(
            fd.as_raw_fd(),
            req.as_ptr().cast(),
            req.len(),
            0,
            (&addr as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        );
        if sent != req.len() as isize {
            return None;
        }
        libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0)
    };
    // nlmsghdr + inet_diag_msg: the uid sits 64 bytes into the message.
    if got < 16 + 72 || u16::from_ne_bytes([buf[4], buf[5]]) != SOCK_DIAG_BY_FAMILY {
        return None;
    }
    Some(u32::from_ne_bytes([buf[80], buf[81], buf[82], buf[83]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn socket_uid_finds_the_connecting_user() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let local = listener.local_addr().unwrap();
        let client = tokio::net::TcpStream::connect(local).await.unwrap();
        let (_server_side, peer) = listener.accept().await.unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        // SAFETY: getuid has no preconditions.
        #[allow(unsafe_code)]
        let me = unsafe { libc::getuid() };
        assert_eq!(socket_uid(peer, local), Some(me));
        let stranger: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert_eq!(socket_uid(stranger, local), None);
    }

    /// Runs a client as `uid` that sends one HTTP request to `addr` and
    /// prints what came back.
    fn http_get_as(uid: u32, addr: std::net::SocketAddr) -> String {
        use std::os::unix::process::CommandExt;
        let script = format!(
            "import socket\ns = socket.create_connection(('127.0.0.1', {}))\ns.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n')\nprint(s.recv(200))",
            addr.port()
        );
        let out = std::process::Command::new("/usr/bin/python3")
            .args(["-c", &script])
            .uid(uid)
            .gid(uid)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_runtime_api_listener_serves_only_its_function_uid() {
        // SAFETY: geteuid has no preconditions.
        #[allow(unsafe_code)]
        if unsafe { libc::geteuid() } != 0 || !std::path::Path::new("/usr/bin/python3").exists() {
            eprintln!("needs root and /usr/bin/python3 to run clients as other users: skipped");
            return;
        }
        let (owner, stranger) = (function_uid("owner-fn"), function_uid("stranger-fn"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "served" }));
        tokio::spawn(
            async move { axum::serve(UidListener::new(listener, Some(owner)), app).await },
        );
        let mine = tokio::task::spawn_blocking(move || http_get_as(owner, addr))
            .await
            .unwrap();
        assert!(mine.contains("served"), "{mine}");
        let theirs = tokio::task::spawn_blocking(move || http_get_as(stranger, addr))
            .await
            .unwrap();
        assert!(
            !theirs.contains("served"),
            "another uid must be refused: {theirs}"
        );
    }

    #[test]
    fn function_uids_are_stable_and_distinct() {
        assert_eq!(function_uid("hello"), function_uid("hello"));
        assert_ne!(function_uid("hello"), function_uid("world"));
        assert!(function_uid("x") >= 2_000_000);
    }
}
