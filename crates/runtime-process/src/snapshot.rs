//! Snapshots (`snapshot = true`, as Lambda's SnapStart): per function
//! revision, a template instance that has run the function's init once
//! (imports and top-level code) and then forks an instance per cold start,
//! which begins with the init already done.
//!
//! The template is an instance like any other, forked from the python3
//! zygote into a box of its own (cgroup, network namespace, user, mount,
//! PID, IPC and UTS namespaces, root, uid, no new privileges, seccomp)
//! *before* the function's code runs in it. Its children inherit that box
//! and cannot leave it; the server then moves each child into a cgroup of
//! its own (its memory and pids limits) and gives it a Runtime API, a log
//! and an environment (fresh credentials) of its own. Nothing here trusts
//! the template: it ran the function's code. The child's pid comes from the
//! kernel (`SCM_CREDENTIALS` on the child's own socket), and the server
//! moves it only if that process is in the template's cgroup (or, without
//! cgroups, runs as the function's uid): a lying template can only move its
//! own processes. Instances of one template share its namespaces (its
//! `/tmp`, its PID and network namespaces) with each other, never with
//! another function or revision: the README states it.

use crate::instance::{exited, ProcessInstance};
use crate::zygote::Zygote;
use nix::sys::socket::{
    recvmsg, sendmsg, setsockopt, sockopt, ControlMessage, ControlMessageOwned, MsgFlags,
    UnixCredentials,
};
use std::collections::HashMap;
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::sync::watch;
use tokio::time::Instant;

/// How long a template is kept with no instance forked from it and none
/// running.
pub(crate) const IDLE: Duration = Duration::from_secs(600);
/// How long a forked child may take to say hello.
const HELLO_WITHIN: Duration = Duration::from_secs(10);
/// How long after a child's exit the template's report of its status is
/// awaited (the server is not its parent and learns only that it ended).
const STATUS_WITHIN: Duration = Duration::from_millis(200);

/// A running template.
pub(crate) struct Template {
    /// Its order socket.
    pub(crate) orders: Arc<Zygote>,
    /// Its own instance: its box, its log and its exit.
    pub(crate) instance: ProcessInstance,
    /// Its network namespace, where each child's Runtime API listens.
    pub(crate) netns: Option<OwnedFd>,
    /// The `cgroup.procs` of its cgroup: its children are there until moved.
    pub(crate) procs: Option<PathBuf>,
    /// When the credentials its init saw were minted: every child may hold
    /// them, so each retires as if started then.
    pub(crate) minted: Instant,
    /// Instances forked from it and alive (not counting parked children).
    pub(crate) live: Arc<AtomicUsize>,
    pub(crate) last_fork: Mutex<Instant>,
    /// Children forked and moved into their cgroups ahead of need, and how
    /// many are being made.
    pub(crate) parked: Mutex<std::collections::VecDeque<ParkedChild>>,
    pub(crate) parking: AtomicUsize,
}

/// Children kept parked per template: a cold start takes one and skips the
/// fork, the hello and the cgroup move (on cgroup v1 the move waits out an
/// RCU grace period); a burst that takes it forks the rest on the spot.
pub(crate) const PARKED: usize = 1;

/// A child of a template, in a cgroup of its own, waiting for its order.
pub(crate) struct ParkedChild {
    /// The instance it becomes (its cgroup is named after it).
    pub(crate) id: String,
    pub(crate) pid: i32,
    pub(crate) hello: AsyncFd<OwnedFd>,
    pub(crate) exit: watch::Receiver<Option<String>>,
    pub(crate) cgroup: Option<crate::sandbox::Cgroup>,
}

impl Drop for ParkedChild {
    fn drop(&mut self) {
        // Unless ordered (then the instance owns its cgroup), it ends with
        // its socket, and its cgroup goes once it has.
        let Some(cg) = self.cgroup.take() else { return };
        crate::sandbox::kill(self.pid, libc::SIGKILL);
        let mut exit = self.exit.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                exited(&mut exit).await;
                tokio::task::spawn_blocking(move || cg.remove());
            });
        }
    }
}

/// Forks a child of `t` into a new cgroup with `limits` (none without a
/// cgroup root): its pid from the kernel, checked to be the template's
/// before it is moved. `uid`: the function's, when instances switch users.
pub(crate) async fn park(
    t: &Template,
    cgroups: Option<crate::sandbox::cgroup::CgroupRoot>,
    limits: crate::sandbox::cgroup::Limits,
    uid: Option<u32>,
) -> io::Result<ParkedChild> {
    let id = uuid::Uuid::new_v4().simple().to_string()[..16].to_string();
    let cgroup = match cgroups {
        Some(root) => {
            let name = id.clone();
            Some(
                tokio::task::spawn_blocking(move || root.create(&name, limits))
                    .await
                    .map_err(io::Error::other)??,
            )
        }
        None => None,
    };
    // Removed on any error below.
    let guard = scopeguard(cgroup);
    let (ours, theirs) = crate::zygote::seqpacket_pair()?;
    let hello = hello_socket(ours)?;
    let (_, reported) = t.orders.fork_snapshot(theirs.as_raw_fd()).await?;
    drop(theirs);
    let creds = hello_from(&hello).await?;
    let pid = creds.pid();
    let ours_to_move = match &t.procs {
        Some(procs) => in_cgroup(procs, pid),
        None => uid.is_none_or(|u| creds.uid() == u),
    };
    if pid <= 0 || !ours_to_move {
        return Err(io::Error::other(format!(
            "the snapshot template's child (pid {pid}) is not in its box"
        )));
    }
    let exit = watch_exit(pid, reported)?;
    let cgroup = guard.0.lock().unwrap_or_else(|e| e.into_inner()).take();
    let parked = ParkedChild {
        id,
        pid,
        hello,
        exit,
        cgroup,
    };
    if let Some(cg) = &parked.cgroup {
        let files: Vec<PathBuf> = cg.procs_files().collect();
        tokio::task::spawn_blocking(move || {
            files
                .iter()
                .try_for_each(|f| std::fs::write(f, pid.to_string()))
        })
        .await
        .map_err(io::Error::other)??;
    }
    Ok(parked)
}

/// A cgroup removed when dropped, unless taken.
struct CgroupGuard(Mutex<Option<crate::sandbox::Cgroup>>);

fn scopeguard(cg: Option<crate::sandbox::Cgroup>) -> CgroupGuard {
    CgroupGuard(Mutex::new(cg))
}

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        if let Some(cg) = self.0.lock().unwrap_or_else(|e| e.into_inner()).take() {
            cg.remove();
        }
    }
}

impl Template {
    /// A parked child if one is ready and alive, or one forked now; more
    /// are parked in the background.
    pub(crate) async fn child(
        self: &Arc<Self>,
        cgroups: Option<crate::sandbox::cgroup::CgroupRoot>,
        limits: crate::sandbox::cgroup::Limits,
        uid: Option<u32>,
    ) -> io::Result<ParkedChild> {
        *self.last_fork.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        let ready = loop {
            let next = self
                .parked
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop_front();
            match next {
                Some(p) if p.exit.borrow().is_none() => break Some(p),
                Some(_) => continue,
                None => break None,
            }
        };
        self.refill(cgroups.clone(), limits, uid);
        let child = match ready {
            Some(p) => p,
            None => park(self, cgroups, limits, uid).await?,
        };
        // Alive until it exits.
        self.live.fetch_add(1, Ordering::SeqCst);
        let live = self.live.clone();
        let mut exit = child.exit.clone();
        tokio::spawn(async move {
            exited(&mut exit).await;
            live.fetch_sub(1, Ordering::SeqCst);
        });
        Ok(child)
    }

    /// Parks children until [`PARKED`] wait (or are being made).
    pub(crate) fn refill(
        self: &Arc<Self>,
        cgroups: Option<crate::sandbox::cgroup::CgroupRoot>,
        limits: crate::sandbox::cgroup::Limits,
        uid: Option<u32>,
    ) {
        let have = self.parked.lock().unwrap_or_else(|e| e.into_inner()).len()
            + self.parking.load(Ordering::SeqCst);
        for _ in have..PARKED {
            self.parking.fetch_add(1, Ordering::SeqCst);
            let t = self.clone();
            let cgroups = cgroups.clone();
            tokio::spawn(async move {
                let parked = park(&t, cgroups, limits, uid).await;
                t.parking.fetch_sub(1, Ordering::SeqCst);
                match parked {
                    Ok(p) if t.alive() => t
                        .parked
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push_back(p),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(function = %t.instance.spec.function, "parking a snapshot child failed: {e}")
                    }
                }
            });
        }
    }
}

impl Template {
    pub(crate) fn alive(&self) -> bool {
        self.orders.alive() && self.instance.exit.borrow().is_none()
    }

    fn idle_since(&self) -> Instant {
        *self.last_fork.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Where one revision's template lives; its lock is held while it starts.
pub(crate) type Cell = Arc<tokio::sync::Mutex<Option<Arc<Template>>>>;

/// The templates of one server, by function revision.
#[derive(Default)]
pub(crate) struct Snapshots {
    cells: Mutex<HashMap<String, Cell>>,
    /// Replaced or idle templates, stopped once no child of theirs runs.
    retiring: Mutex<Vec<Arc<Template>>>,
    sweeping: std::sync::atomic::AtomicBool,
}

impl Snapshots {
    /// The cell of `revision`'s template: its lock is held while one starts.
    pub(crate) fn cell(&self, revision: &str) -> Cell {
        self.cells
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(revision.to_string())
            .or_default()
            .clone()
    }

    /// Sets `old` aside: it is stopped once its last child has exited.
    pub(crate) fn retire(&self, old: Arc<Template>) {
        self.retiring
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(old);
    }

    /// Starts the sweep (once): every 30 s, templates idle for [`IDLE`] or
    /// past `max_age` retire, and retired ones without children stop.
    pub(crate) fn sweep_from_now_on(self: &Arc<Self>, max_age: Option<Duration>) {
        if self.sweeping.swap(true, Ordering::SeqCst) {
            return;
        }
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(30));
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(s) = me.upgrade() else { break };
                s.sweep(Instant::now(), max_age).await;
            }
        });
    }

    async fn sweep(&self, now: Instant, max_age: Option<Duration>) {
        let cells: Vec<_> = self
            .cells
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (revision, cell) in cells {
            let Ok(mut slot) = cell.try_lock() else {
                continue; // one is starting
            };
            let retire = match slot.as_ref() {
                Some(t) => {
                    !t.alive()
                        || max_age.is_some_and(|m| now.duration_since(t.minted) >= m)
                        || (t.live.load(Ordering::SeqCst) == 0
                            && now.duration_since(t.idle_since()) >= IDLE)
                }
                None => true,
            };
            if retire {
                if let Some(t) = slot.take() {
                    self.retire(t);
                }
                drop(slot);
                let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
                if cells.get(&revision).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                    cells.remove(&revision);
                }
            }
        }
        let done: Vec<_> = {
            let mut retiring = self.retiring.lock().unwrap_or_else(|e| e.into_inner());
            let (done, keep) = std::mem::take(&mut *retiring)
                .into_iter()
                .partition(|t| t.live.load(Ordering::SeqCst) == 0 || !t.alive());
            *retiring = keep;
            done
        };
        for t in done {
            tracing::debug!(function = %t.instance.spec.function, "snapshot template stopped");
            t.instance.stop_now().await;
        }
    }
}

/// The kernel's word on who sent the hello on `socket` (set to pass
/// credentials before the child could send).
pub(crate) async fn hello_from(socket: &AsyncFd<OwnedFd>) -> io::Result<UnixCredentials> {
    let wait = async {
        loop {
            let mut guard = socket.readable().await?;
            let got = guard.try_io(|fd| {
                let mut buf = [0u8; 16];
                let mut iov = [IoSliceMut::new(&mut buf)];
                let mut space = nix::cmsg_space!(UnixCredentials);
                let msg = recvmsg::<()>(
                    fd.as_raw_fd(),
                    &mut iov,
                    Some(&mut space),
                    MsgFlags::MSG_CMSG_CLOEXEC,
                )
                .map_err(io::Error::from)?;
                if msg.bytes == 0 {
                    return Err(io::Error::other("the child closed its socket"));
                }
                for c in msg.cmsgs().map_err(io::Error::from)? {
                    if let ControlMessageOwned::ScmCredentials(creds) = c {
                        return Ok(creds);
                    }
                }
                Err(io::Error::other("a hello without credentials"))
            });
            match got {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    };
    tokio::time::timeout(HELLO_WITHIN, wait)
        .await
        .map_err(|_| io::Error::other("the forked child did not say hello"))?
}

/// Our end of a child's hello socket: non-blocking, passing credentials.
pub(crate) fn hello_socket(ours: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    setsockopt(&ours, sockopt::PassCred, &true).map_err(io::Error::from)?;
    crate::zygote::set_nonblocking(&ours)?;
    // SAFETY: an OwnedFd stays open, and the same descriptor, for as long
    // as the AsyncFd owns it.
    #[allow(unsafe_code)]
    unsafe { AsyncFd::register(ours) }.map_err(|e| io::Error::other(e.to_string()))
}

/// Sends the child its order: `msg`, with `log` as its stdout and stderr.
pub(crate) fn send_order(socket: &AsyncFd<OwnedFd>, msg: &[u8], log: RawFd) -> io::Result<()> {
    // One message on a fresh socket: it never blocks.
    let n = sendmsg::<()>(
        socket.get_ref().as_raw_fd(),
        &[IoSlice::new(msg)],
        &[ControlMessage::ScmRights(&[log])],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(io::Error::from)?;
    if n != msg.len() {
        return Err(io::Error::other("short send to a forked child"));
    }
    Ok(())
}

/// Whether `pid` is in the cgroup whose `cgroup.procs` is `procs`.
pub(crate) fn in_cgroup(procs: &std::path::Path, pid: i32) -> bool {
    std::fs::read_to_string(procs)
        .map(|s| s.lines().any(|l| l.trim().parse::<i32>() == Ok(pid)))
        .unwrap_or(false)
}

/// The exit of the child `pid` (not the server's own: it learns that it
/// ended from a pidfd, and how from the template's report, if it comes).
pub(crate) fn watch_exit(
    pid: i32,
    mut reported: watch::Receiver<Option<String>>,
) -> io::Result<watch::Receiver<Option<String>>> {
    #[allow(unsafe_code)]
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(unsafe_code)]
    // SAFETY: a descriptor just returned to us, owned from here on (and
    // by the AsyncFd for as long as it lives).
    let pidfd = unsafe { AsyncFd::register(OwnedFd::from_raw_fd(fd as RawFd)) }
        .map_err(|e| io::Error::other(e.to_string()))?;
    let (tx, rx) = watch::channel(None);
    tokio::spawn(async move {
        let mut first = reported.clone();
        tokio::select! {
            _ = exited(&mut first) => {}
            _ = pidfd.readable() => {
                let _ = tokio::time::timeout(STATUS_WITHIN, exited(&mut reported)).await;
            }
        }
        let how = reported.borrow().clone().unwrap_or_else(|| "exited".into());
        let _ = tx.send(Some(how));
    });
    Ok(rx)
}
