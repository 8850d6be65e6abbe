//! Template processes ("zygotes", as in SOCK): one python3 interpreter per
//! interpreter path, started once with the bootstrap's modules imported,
//! from which instances are forked instead of started afresh. The child
//! builds its own box from the same steps the exec path runs between fork
//! and exec ([`ChildSetup::program`](crate::sandbox::jail::ChildSetup::program)),
//! so an instance forked from a template has the same cgroup, namespaces,
//! root, uid, no-new-privileges and seccomp filter as one started by exec;
//! nothing is shared but the template's copy-on-write memory, which holds
//! only the standard library and the bootstrap (`bootstrap/python3/zygote.py`).
//!
//! The server and a template speak JSON messages over a `SOCK_SEQPACKET`
//! socket pair, the instance's descriptors passed with `SCM_RIGHTS`; the
//! template reports each child's wait status, as it is their parent.

use nix::sys::socket::{
    recv, sendmsg, socketpair, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType,
};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::unix::AsyncFd;
use tokio::sync::{oneshot, watch, OnceCell};

/// How long a template may take to start, or to answer a fork.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

/// The descriptor number the template finds its socket at.
const SOCKET_FD: RawFd = 3;

type Exit = watch::Sender<Option<String>>;
type Forked = Result<(i32, watch::Receiver<Option<String>>), String>;
/// Per interpreter: its template, started once (`None`: it cannot start).
type Cell = Arc<OnceCell<Option<Arc<Zygote>>>>;

/// The python3 templates of one server, started on first need.
pub(crate) struct Zygotes {
    enabled: AtomicBool,
    /// The host directory holding `zygote.py` and `bootstrap.py` (the
    /// template's working directory: its command line, which instances
    /// inherit, names no host path).
    runtime_dir: PathBuf,
    /// `bootstrap.py` as instances see it.
    bootstrap_as_seen: PathBuf,
    cells: Mutex<HashMap<PathBuf, Cell>>,
    /// Makes the boxes of parked children.
    kit: Arc<dyn ParkKit>,
}

impl Zygotes {
    pub(crate) fn new(runtime_dir: &Path, runtime_root: &Path, kit: Arc<dyn ParkKit>) -> Zygotes {
        Zygotes {
            kit,
            enabled: AtomicBool::new(true),
            runtime_dir: runtime_dir.to_path_buf(),
            bootstrap_as_seen: runtime_root.join("bootstrap.py"),
            cells: Mutex::default(),
        }
    }

    pub(crate) fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
    }

    pub(crate) fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// The running template for `interpreter`, started if there is none
    /// (or the last one died); `None` when templates are off or this
    /// interpreter's cannot start (instances are then started by exec).
    pub(crate) async fn get(&self, interpreter: &Path) -> Option<Arc<Zygote>> {
        if !self.enabled() {
            return None;
        }
        for _ in 0..2 {
            let cell = self
                .cells
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(interpreter.to_path_buf())
                .or_default()
                .clone();
            let zygote = cell
                .get_or_init(|| async {
                    match Zygote::start(interpreter, self).await {
                        Ok(z) => {
                            tracing::info!(interpreter = %interpreter.display(), pid = z.pid, "python3 template process started");
                            z.refill(&self.kit);
                            Some(z)
                        }
                        Err(e) => {
                            tracing::warn!(interpreter = %interpreter.display(), "no python3 template process (instances start by exec): {e}");
                            None
                        }
                    }
                })
                .await
                .clone();
            match zygote {
                Some(z) if z.alive() => return Some(z),
                Some(_) => {
                    // It died: the next caller starts another.
                    let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
                    if cells
                        .get(interpreter)
                        .is_some_and(|c| Arc::ptr_eq(c, &cell))
                    {
                        cells.remove(interpreter);
                    }
                }
                None => return None,
            }
        }
        None
    }
}

/// One running template process.
pub(crate) struct Zygote {
    pub(crate) pid: i32,
    socket: AsyncFd<OwnedFd>,
    seq: AtomicU64,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    alive: bool,
    ready: Option<oneshot::Sender<i32>>,
    pending: HashMap<u64, oneshot::Sender<Forked>>,
    exits: HashMap<i32, Exit>,
    /// Children parked ahead of need, and how many are being parked.
    parked: std::collections::VecDeque<Parked>,
    parking: usize,
    /// How many to keep parked, from the cold starts lately.
    demand: Demand,
    /// Whether a task will trim the parked children once the demand falls.
    trim_due: bool,
    /// Whether a task will park past the floor once the burst is over.
    refill_due: bool,
}

/// Most children kept parked per template, however wide the bursts.
const MAX_PARKED: usize = 32;
/// Cold starts that come within this long of each other are one burst.
const BURST_WINDOW: Duration = Duration::from_secs(1);
/// How long the widest burst seen sets the number kept parked.
const DEMAND_MEMORY: Duration = Duration::from_secs(600);

/// How many children to keep parked: as many as the widest burst of cold
/// starts (starts within [`BURST_WINDOW`] of each other) in the last
/// [`DEMAND_MEMORY`], between [`PARKED`] and [`MAX_PARKED`]. A function
/// that scaled out once is likely to again; one that did not costs only
/// the floor.
#[derive(Default)]
struct Demand {
    /// Cold starts in the last [`BURST_WINDOW`].
    recent: std::collections::VecDeque<Instant>,
    /// The widest burst lately, and when it was last that wide.
    peak: usize,
    peak_at: Option<Instant>,
}

impl Demand {
    /// A cold start at `now`.
    fn start(&mut self, now: Instant) {
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= BURST_WINDOW)
        {
            self.recent.pop_front();
        }
        self.recent.push_back(now);
        let width = self.recent.len();
        if width >= self.peak || self.expired(now) {
            self.peak = width;
            self.peak_at = Some(now);
        }
    }

    fn expired(&self, now: Instant) -> bool {
        self.peak_at
            .is_none_or(|t| now.duration_since(t) >= DEMAND_MEMORY)
    }

    /// How many to keep parked now.
    fn target(&self, now: Instant) -> usize {
        let peak = if self.expired(now) { 0 } else { self.peak };
        peak.clamp(PARKED, MAX_PARKED)
    }

    /// Whether no cold start came in the last [`BURST_WINDOW`].
    fn quiet(&self, now: Instant) -> bool {
        self.recent
            .back()
            .is_none_or(|t| now.duration_since(*t) >= BURST_WINDOW)
    }

    /// When the target falls back to the floor, unless bursts come again.
    fn falls_at(&self) -> Option<Instant> {
        self.peak_at.map(|t| t + DEMAND_MEMORY)
    }
}

/// Children kept parked per template: a cold start takes one and skips
/// their part of the box (above all the cgroup migration, which on cgroup
/// v1 waits out an RCU grace period); a burst that takes them all forks
/// the rest on the spot.
const PARKED: usize = 2;

/// What a parked child needs, made by the process runtime.
pub(crate) struct ParkMaterials {
    /// `ChildSetup::program` of a box that names no function, and the
    /// descriptors it takes.
    pub(crate) program: Value,
    pub(crate) fds: Vec<RawFd>,
    /// What owns those descriptors, until they are sent.
    pub(crate) keep: Box<dyn Send>,
    pub(crate) cgroup: Option<crate::sandbox::Cgroup>,
    /// The Runtime API listener inside the child's network namespace.
    pub(crate) listener: Option<std::net::TcpListener>,
}

/// Makes [`ParkMaterials`] (a cgroup and a network namespace of their own).
pub(crate) trait ParkKit: Send + Sync {
    fn make(&self) -> io::Result<ParkMaterials>;
}

struct ParkedChild {
    pid: i32,
    exit: watch::Receiver<Option<String>>,
    /// Where its order goes; closing it ends the child.
    order: OwnedFd,
}

/// A child parked in its cgroup and namespaces, waiting to become an
/// instance.
pub(crate) struct Parked {
    child: ParkedChild,
    pub(crate) cgroup: Option<crate::sandbox::Cgroup>,
    pub(crate) listener: Option<std::net::TcpListener>,
}

impl Parked {
    /// Makes it the instance `program` boxes (the rest of the box: root,
    /// uid, seccomp …), with `env`, its output on `log`: its pid and exit.
    /// The instance runs the python3 bootstrap, or with `exec` that
    /// program (argv, as the instance sees it). Take its `cgroup` and
    /// `listener` first: what is left goes with it.
    pub(crate) fn order(
        self,
        program: Value,
        env: &BTreeMap<String, String>,
        log: &OwnedFd,
        exec: Option<&[String]>,
        keep: Option<RawFd>,
    ) -> io::Result<(i32, watch::Receiver<Option<String>>)> {
        let msg = serde_json::to_vec(
            &json!({ "jail": program, "env": env, "exec": exec, "keep": keep.is_some() }),
        )?;
        let mut fds = vec![log.as_raw_fd()];
        fds.extend(keep);
        // A fresh socket with one message on it: this never blocks.
        let n = sendmsg::<()>(
            self.child.order.as_raw_fd(),
            &[IoSlice::new(&msg)],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .map_err(io::Error::from)?;
        if n != msg.len() {
            return Err(io::Error::other("short send to a parked child"));
        }
        Ok((self.child.pid, self.child.exit.clone()))
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        // Unless ordered (then the instance owns it), a parked child's
        // cgroup goes with it: its socket closing ends it.
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if let Some(cg) = self.cgroup.take() {
            let mut exit = self.child.exit.clone();
            rt.spawn(async move {
                let _ = exit.wait_for(Option::is_some).await;
                tokio::task::spawn_blocking(move || cg.remove());
            });
        }
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl Zygote {
    async fn start(interpreter: &Path, zygotes: &Zygotes) -> io::Result<Arc<Zygote>> {
        let (ours, theirs) = seqpacket_pair()?;
        set_nonblocking(&ours)?;
        let mut cmd = tokio::process::Command::new(interpreter);
        cmd.arg("zygote.py")
            .arg(SOCKET_FD.to_string())
            .arg(&zygotes.bootstrap_as_seen)
            .arg("bootstrap.py")
            .env_clear()
            // What every instance's interpreter starts with (the rest of an
            // instance's environment is set in the child).
            .env("PATH", crate::INSTANCE_PATH)
            .env("LANG", "C.UTF-8")
            .env("HOME", "/tmp")
            .env("TZ", ":UTC")
            .env("PYTHONUNBUFFERED", "1")
            .current_dir(&zygotes.runtime_dir)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let fd = theirs.as_raw_fd();
        // SAFETY: between fork and exec only system calls are made.
        #[allow(unsafe_code)]
        unsafe {
            let parent = libc::getpid();
            cmd.pre_exec(move || {
                if fd == SOCKET_FD {
                    if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                        return Err(io::Error::last_os_error());
                    }
                } else if libc::dup2(fd, SOCKET_FD) == -1 {
                    return Err(io::Error::last_os_error());
                }
                // Its own session (a terminal's ^C is the server's to
                // handle), and it dies with the server.
                libc::setsid();
                if libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                ) == -1
                {
                    return Err(io::Error::last_os_error());
                }
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn()?;
        drop(theirs);
        let pid = child.id().unwrap_or(0) as i32;
        let (zygote, ready_rx) = Zygote::on(ours, pid)?;
        let state = zygote.state.clone();
        tokio::spawn(async move {
            let status = child.wait().await;
            tracing::debug!(pid, ?status, "python3 template process exited");
            lock(&state).alive = false;
        });
        match tokio::time::timeout(ANSWER_WITHIN, ready_rx).await {
            Ok(Ok(_)) => Ok(zygote),
            Ok(Err(_)) => Err(io::Error::other("it exited before it was ready")),
            Err(_) => Err(io::Error::other(format!(
                "it was not ready within {}s",
                ANSWER_WITHIN.as_secs()
            ))),
        }
    }

    pub(crate) fn alive(&self) -> bool {
        lock(&self.state).alive
    }

    /// Forks an instance boxed by `program` (with `fds`, in its order),
    /// its stdout and stderr on `log`, and `keep` (a snapshot template's
    /// order socket) at descriptor 3: its pid and its exit, as a wait of a
    /// child spawned by the server would give them.
    pub(crate) async fn fork(
        &self,
        program: Value,
        env: &BTreeMap<String, String>,
        log: &OwnedFd,
        fds: &[RawFd],
        keep: Option<RawFd>,
    ) -> io::Result<(i32, watch::Receiver<Option<String>>)> {
        let mut all = vec![log.as_raw_fd()];
        all.extend(keep);
        all.extend_from_slice(fds);
        self.request(
            json!({ "jail": program, "env": env, "keep": keep.is_some() }),
            &all,
        )
        .await
    }

    /// The same conversation with a snapshot template (bootstrap.py
    /// `_snapshot`) on `socket`, already started: it answers `{"ready"}`
    /// (the receiver), then a pid per order and each child's exit.
    pub(crate) fn attach(socket: OwnedFd) -> io::Result<(Arc<Zygote>, oneshot::Receiver<i32>)> {
        set_nonblocking(&socket)?;
        Zygote::on(socket, 0)
    }

    /// The conversation on `socket` (non-blocking) with the process `pid`
    /// (0: not the server's child), its replies read from now on.
    fn on(socket: OwnedFd, pid: i32) -> io::Result<(Arc<Zygote>, oneshot::Receiver<i32>)> {
        let (ready_tx, ready_rx) = oneshot::channel();
        let state = Arc::new(Mutex::new(State {
            alive: true,
            ready: Some(ready_tx),
            ..State::default()
        }));
        // SAFETY: an OwnedFd stays open, and the same descriptor, for as
        // long as the AsyncFd owns it.
        #[allow(unsafe_code)]
        let socket =
            unsafe { AsyncFd::register(socket) }.map_err(|e| io::Error::other(e.to_string()))?;
        let zygote = Arc::new(Zygote {
            pid,
            socket,
            seq: AtomicU64::new(0),
            state: state.clone(),
        });
        tokio::spawn(read_replies(Arc::downgrade(&zygote), state));
        Ok((zygote, ready_rx))
    }

    /// Orders a snapshot template to fork: the child says hello on
    /// `hello` and waits there for its environment. Its pid as the
    /// template sees it, and its exit as the template reports it.
    pub(crate) async fn fork_snapshot(
        &self,
        hello: RawFd,
    ) -> io::Result<(i32, watch::Receiver<Option<String>>)> {
        self.request(json!({}), &[hello]).await
    }

    /// Forks a child that runs what no function decides (cgroup, network
    /// namespace, the other namespaces, PID 1) and then waits for the
    /// instance it becomes ([`Parked::order`]).
    async fn park(&self, program: Value, fds: &[RawFd]) -> io::Result<ParkedChild> {
        let (ours, theirs) = seqpacket_pair()?;
        let mut all = vec![theirs.as_raw_fd()];
        all.extend_from_slice(fds);
        let (pid, exit) = self.request(json!({ "park": program }), &all).await?;
        Ok(ParkedChild {
            pid,
            exit,
            order: ours,
        })
    }

    async fn request(
        &self,
        mut body: Value,
        fds: &[RawFd],
    ) -> io::Result<(i32, watch::Receiver<Option<String>>)> {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        body["seq"] = json!(seq);
        let (tx, rx) = oneshot::channel();
        {
            let mut state = lock(&self.state);
            if !state.alive {
                return Err(io::Error::other("the template process has exited"));
            }
            state.pending.insert(seq, tx);
        }
        let msg = serde_json::to_vec(&body)?;
        if let Err(e) = self.send(&msg, fds).await {
            lock(&self.state).pending.remove(&seq);
            return Err(e);
        }
        match tokio::time::timeout(ANSWER_WITHIN, rx).await {
            Ok(Ok(Ok(forked))) => Ok(forked),
            Ok(Ok(Err(e))) => Err(io::Error::other(e)),
            Ok(Err(_)) => Err(io::Error::other("the template process exited")),
            Err(_) => {
                lock(&self.state).pending.remove(&seq);
                Err(io::Error::other("the template process did not answer"))
            }
        }
    }

    /// A parked child, if one is ready (and alive); more are parked in the
    /// background.
    pub(crate) fn take_parked(self: &Arc<Self>, zygotes: &Zygotes) -> Option<Parked> {
        let kit = &zygotes.kit;
        lock(&self.state).demand.start(Instant::now());
        let taken = loop {
            let next = lock(&self.state).parked.pop_front();
            match next {
                Some(p) if p.child.exit.borrow().is_none() => break Some(p),
                Some(_) => continue,
                None => break None,
            }
        };
        self.refill(kit);
        taken
    }

    /// Parks children until as many as the demand asks for wait (or are
    /// being made); past it, once the demand has fallen, drops the extra.
    pub(crate) fn refill(self: &Arc<Self>, kit: &Arc<dyn ParkKit>) {
        let (wanted, trim_at, refill_at) = {
            let mut s = lock(&self.state);
            let now = Instant::now();
            let target = s.demand.target(now);
            while s.parked.len() > target {
                s.parked.pop_back();
            }
            // Past the floor, only once the burst is over: parking while it
            // lasts competes with its own starts for the CPU.
            let fill_to = if s.demand.quiet(now) {
                target
            } else {
                PARKED.min(target)
            };
            let have = s.parked.len() + s.parking;
            let wanted = fill_to.saturating_sub(have);
            s.parking += wanted;
            let refill_at = (fill_to < target && !s.refill_due).then(|| {
                s.refill_due = true;
                now + BURST_WINDOW
            });
            let trim_at = match s.demand.falls_at() {
                Some(at) if target > PARKED && !s.trim_due => {
                    s.trim_due = true;
                    Some(at)
                }
                _ => None,
            };
            (wanted, trim_at, refill_at)
        };
        for _ in 0..wanted {
            let zygote = self.clone();
            let kit = kit.clone();
            tokio::spawn(async move {
                let parked = zygote.park_one(kit).await;
                let mut s = lock(&zygote.state);
                s.parking -= 1;
                match parked {
                    Ok(p) if s.alive => s.parked.push_back(p),
                    Ok(_) => {}
                    Err(e) => tracing::warn!("parking a python3 child failed: {e}"),
                }
            });
        }
        if let Some(at) = trim_at {
            self.refill_at(at, kit, |s| &mut s.trim_due);
        }
        if let Some(at) = refill_at {
            self.refill_at(at, kit, |s| &mut s.refill_due);
        }
    }

    /// Refills again at `at`, clearing the flag `due` that says one is set.
    fn refill_at(
        self: &Arc<Self>,
        at: Instant,
        kit: &Arc<dyn ParkKit>,
        due: fn(&mut State) -> &mut bool,
    ) {
        // The timer holds no reference that would keep a dead template.
        let zygote = Arc::downgrade(self);
        let kit = kit.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            if let Some(z) = zygote.upgrade() {
                let alive = {
                    let mut s = lock(&z.state);
                    *due(&mut s) = false;
                    s.alive
                };
                if alive {
                    z.refill(&kit);
                }
            }
        });
    }

    async fn park_one(&self, kit: Arc<dyn ParkKit>) -> io::Result<Parked> {
        // A namespace may be made on the spot, a cgroup is: off the runtime.
        let made = tokio::task::spawn_blocking(move || kit.make())
            .await
            .map_err(io::Error::other)??;
        let child = self.park(made.program, &made.fds).await?;
        drop(made.keep);
        Ok(Parked {
            child,
            cgroup: made.cgroup,
            listener: made.listener,
        })
    }

    async fn send(&self, msg: &[u8], fds: &[RawFd]) -> io::Result<()> {
        loop {
            let mut guard = self.socket.writable().await?;
            let sent = guard.try_io(|fd| {
                sendmsg::<()>(
                    fd.as_raw_fd(),
                    &[IoSlice::new(msg)],
                    &[ControlMessage::ScmRights(fds)],
                    MsgFlags::MSG_NOSIGNAL,
                    None,
                )
                .map_err(io::Error::from)
            });
            match sent {
                Ok(Ok(n)) if n == msg.len() => return Ok(()),
                Ok(Ok(n)) => {
                    return Err(io::Error::other(format!(
                        "short send to the template process ({n} of {} bytes)",
                        msg.len()
                    )))
                }
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }
}

/// Dispatches the template's messages until its socket closes; then every
/// instance it forked is gone too (they die with it).
async fn read_replies(zygote: std::sync::Weak<Zygote>, state: Arc<Mutex<State>>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let Some(z) = zygote.upgrade() else { break };
        let n = async {
            loop {
                let mut guard = z.socket.readable().await?;
                match guard.try_io(|fd| {
                    recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()).map_err(io::Error::from)
                }) {
                    Ok(r) => return r,
                    Err(_would_block) => continue,
                }
            }
        }
        .await;
        drop(z);
        let n = match n {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let Ok(msg) = serde_json::from_slice::<Value>(&buf[..n]) else {
            tracing::warn!("an unreadable message from the python3 template process");
            continue;
        };
        let mut s = lock(&state);
        if let Some(pid) = msg.get("ready").and_then(Value::as_i64) {
            if let Some(tx) = s.ready.take() {
                let _ = tx.send(pid as i32);
            }
        } else if let Some(pid) = msg.get("exit").and_then(Value::as_i64) {
            let status = msg.get("status").and_then(Value::as_i64).unwrap_or(1 << 8);
            if let Some(tx) = s.exits.remove(&(pid as i32)) {
                use std::os::unix::process::ExitStatusExt;
                let status = std::process::ExitStatus::from_raw(status as i32);
                let _ = tx.send(Some(crate::describe_exit(status)));
            }
        } else if let Some(seq) = msg.get("seq").and_then(Value::as_u64) {
            let Some(tx) = s.pending.remove(&seq) else {
                continue;
            };
            let reply = match (msg.get("pid").and_then(Value::as_i64), msg.get("error")) {
                (Some(pid), _) => {
                    // Before the reply: the template reports this child's
                    // exit only after it.
                    let (exit_tx, exit_rx) = watch::channel(None);
                    s.exits.insert(pid as i32, exit_tx);
                    Ok((pid as i32, exit_rx))
                }
                (None, Some(e)) => Err(e.as_str().unwrap_or("fork failed").to_string()),
                (None, None) => Err("an unreadable answer".to_string()),
            };
            let _ = tx.send(reply);
        }
    }
    let mut s = lock(&state);
    s.alive = false;
    s.ready = None;
    s.pending.clear();
    let parked = std::mem::take(&mut s.parked);
    for (_, tx) in s.exits.drain() {
        // Its children have the parent-death signal.
        let _ = tx.send(Some("signal: killed (its template process exited)".into()));
    }
    drop(s);
    drop(parked);
}

/// A connected pair of message sockets, both close-on-exec.
pub(crate) fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?)
}

pub(crate) fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own.
    #[allow(unsafe_code)]
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if flags == -1 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) == -1
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parked_pool_follows_the_widest_recent_burst_within_bounds() {
        let t0 = Instant::now();
        let mut d = Demand::default();
        assert_eq!(d.target(t0), PARKED, "no start yet: the floor");
        // Starts a second or more apart are bursts of one.
        for i in 0..5 {
            d.start(t0 + BURST_WINDOW * i);
        }
        assert_eq!(d.target(t0 + BURST_WINDOW * 5), PARKED);
        // Twelve starts within the window: twelve kept parked.
        let burst = t0 + BURST_WINDOW * 10;
        for i in 0..12 {
            d.start(burst + Duration::from_millis(i * 10));
        }
        assert_eq!(d.target(burst + BURST_WINDOW), 12);
        assert!(
            !d.quiet(burst + Duration::from_millis(500)),
            "within the burst"
        );
        assert!(d.quiet(burst + Duration::from_millis(110) + BURST_WINDOW));
        // A narrower burst later does not lower it while it is remembered.
        let later = burst + DEMAND_MEMORY / 2;
        for i in 0..3 {
            d.start(later + Duration::from_millis(i));
        }
        assert_eq!(d.target(later + BURST_WINDOW), 12);
        assert_eq!(
            d.falls_at(),
            Some(burst + Duration::from_millis(110) + DEMAND_MEMORY)
        );
        // Forgotten after DEMAND_MEMORY without a burst as wide.
        assert_eq!(d.target(burst + DEMAND_MEMORY * 2), PARKED);
        // However wide, at most MAX_PARKED.
        let wide = burst + DEMAND_MEMORY * 3;
        for i in 0..200 {
            d.start(wide + Duration::from_millis(i));
        }
        assert_eq!(d.target(wide + Duration::from_millis(200)), MAX_PARKED);
    }
}
