"""Updraft's python3 template process (a zygote, as in SOCK and Android).

The server starts one per Python interpreter, as `python3 zygote.py FD
BOOTSTRAP_AS_SEEN bootstrap.py` in the runtime's host directory: the interpreter starts, the modules the
bootstrap needs are imported and the bootstrap is compiled, once. Then for
each cold start the server sends, over the socket at FD, the instance's box
as data (the steps the server's own spawn path runs between fork and exec,
see `ChildSetup::program` in sandbox/jail.rs), its environment and its
descriptors. This process forks; the child builds the box around itself
(cgroup, network namespace, user/mount/PID/IPC/UTS namespaces, its own root,
its function's uid, no new privileges, the open-files limit, seccomp), drops
every descriptor of this process, and only then runs the bootstrap, which
imports the function's code. Nothing of a function ever runs here: this
process holds only the standard library and the bootstrap.

Replies, one JSON message each: {"ready": PID} once, {"seq": N, "pid": P}
or {"seq": N, "error": "..."} per request, {"exit": P, "status": S} (a
wait status) when a child ends.
"""

# Exactly what the bootstrap imports, loaded once: a forked instance starts
# with these in sys.modules as an exec'd one does after the bootstrap's
# imports, and with nothing more (a function's own module of another
# name still wins, as it would).
import http.client  # noqa: F401,E402
import importlib  # noqa: F401
import json
import logging  # noqa: F401
import os
import sys
import time
import traceback  # noqa: F401
import urllib.parse  # noqa: F401
from collections.abc import Awaitable  # noqa: F401

# What the bootstrap's first request loads: the Runtime API's host name is
# encoded with IDNA when its connection is made (socket.getaddrinfo), which
# imports these (1–2 ms of CPU a cold start when each instance does it anew).
import encodings.idna  # noqa: F401,E402

_BASELINE = frozenset(sys.modules)

# The template's own tools; dropped from sys.modules in each instance.
import ctypes  # noqa: E402
import resource  # noqa: E402
import selectors  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import struct  # noqa: E402
import types  # noqa: E402

MAX_MESSAGE = 1 << 20
MAX_FDS = 32

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_libc.sbrk.argtypes = [ctypes.c_long]
_libc.sbrk.restype = ctypes.c_void_p


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class _Failed(Exception):
    pass


def _say(what, errno):
    # The same words as the server's own spawn path (jail.rs `say`).
    os.write(2, b"updraft sandbox: could not " + what.encode() + b" (errno %d)\n" % errno)


def _check(what, result):
    if result == -1:
        _say(what, ctypes.get_errno())
        raise _Failed(what)


def _os_step(what, fn, *args):
    try:
        return fn(*args)
    except OSError as e:
        _say(what, e.errno or 0)
        raise _Failed(what) from None


def _write_file(path, data):
    fd = _os_step(path, os.open, path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        if _os_step(path, os.write, fd, data) != len(data):
            _say(path, 0)
            raise _Failed(path)
    finally:
        os.close(fd)


def _close_from(c, first):
    _libc.syscall(c["sys_close_range"], ctypes.c_uint(first), ctypes.c_uint(0xFFFFFFFF), ctypes.c_uint(0))


def _pdeathsig(c):
    _check("set the parent-death signal", _libc.prctl(c["pr_set_pdeathsig"], c["sigkill"], 0, 0, 0))


def _oom_score_adj(value):
    """Best effort, silently (as jail.rs)."""
    try:
        fd = os.open("/proc/self/oom_score_adj", os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return os.write(fd, value) == len(value)
    except OSError:
        return False
    finally:
        os.close(fd)


def _become_pid_one(c):
    """Forks; this process waits outside the new PID namespace and passes
    the instance's exit on; the child (its PID 1) returns."""
    # The waiting process is a copy of the template: never the OOM killer's pick.
    lowered = _oom_score_adj(b"-1000")
    pid = _os_step("fork into the PID namespace", os.fork)
    if pid == 0:
        if lowered:
            _oom_score_adj(b"0")
        _pdeathsig(c)
        return
    _close_from(c, 0)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
        except OSError:
            os._exit(1)
    if os.WIFEXITED(status):
        os._exit(os.WEXITSTATUS(status))
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
        os.kill(os.getpid(), sig)
        os._exit(128 + sig)
    os._exit(1)


def _run_step(s):
    if "mkdir" in s:
        try:
            os.mkdir(s["mkdir"], 0o755)
        except FileExistsError:
            pass
        except OSError as e:
            _say("make a directory in the instance root", e.errno or 0)
            raise _Failed("mkdir") from None
    elif "touch" in s:
        fd = _os_step("make a device mount point", os.open, s["touch"], os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644)
        os.close(fd)
    elif "symlink" in s:
        target, link = s["symlink"]
        _os_step("make a link in the instance root", os.symlink, target, link)
    else:
        m = s["mount"]
        enc = lambda v: None if v is None else v.encode()  # noqa: E731
        _check(m["what"], _libc.mount(enc(m["src"]), m["dst"].encode(), enc(m["fstype"]), m["flags"], enc(m["data"])))


# The instance's environment as exec would have laid it out; it must live as
# long as the process (the kernel reads /proc/PID/environ from it).
_ENVIRON_BLOCK = None


class _MmMap(ctypes.Structure):
    # struct prctl_mm_map (linux/prctl.h)
    _fields_ = [(n, ctypes.c_uint64) for n in (
        "start_code", "end_code", "start_data", "end_data", "start_brk", "brk", "start_stack",
        "arg_start", "arg_end", "env_start", "env_end")] + [
        ("auxv", ctypes.c_void_p), ("auxv_size", ctypes.c_uint32), ("exe_fd", ctypes.c_uint32)]


def _show_environ(c, env):
    """Points /proc/self/environ at the instance's environment, as exec
    would have laid it out (the kernel shows the block a process was exec'd
    with: here the template's). PR_SET_MM_MAP needs no capability when the
    executable stays; every other field is this process's own, read from
    /proc/self/stat, and the break is read again after the call in case an
    allocation moved it meanwhile. Best effort: where the kernel lacks it,
    /proc/self/environ shows the template's start-up environment, which
    holds nothing secret."""
    global _ENVIRON_BLOCK
    block = b"".join(k.encode() + b"=" + v.encode() + b"\0" for k, v in env.items())
    buf = ctypes.create_string_buffer(block, len(block) + 1)
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return
    field = lambda n: int(fields[n - 3])  # noqa: E731  (proc(5) numbers them from 1)
    m = _MmMap(start_code=field(26), end_code=field(27), start_stack=field(28),
               start_data=field(45), end_data=field(46), start_brk=field(47),
               arg_start=field(48), arg_end=field(49),
               env_start=ctypes.addressof(buf), env_end=ctypes.addressof(buf) + len(block),
               auxv=None, auxv_size=0, exe_fd=0xFFFFFFFF)
    for _ in range(3):
        m.brk = _libc.sbrk(0)
        if _libc.prctl(c["pr_set_mm"], c["pr_set_mm_map"], ctypes.addressof(m), ctypes.sizeof(m), 0) != 0:
            return
        _ENVIRON_BLOCK = buf
        if _libc.sbrk(0) == m.brk:
            return


def _jail_prefix(p, fds, parent):
    """The server's ChildSetup::apply up to the root's own part: what no
    function decides (a parked child runs it ahead of need)."""
    c = p["c"]
    os.setsid()
    _pdeathsig(c)
    if os.getppid() != parent:
        os._exit(1)  # the template process died before prctl took effect
    fds = list(fds)
    for _ in range(p["cgroup_procs"]):
        fd = fds.pop(0)
        try:
            if os.write(fd, b"0") != 1:
                raise OSError(0, "short write")
        except OSError as e:
            _say("join the instance cgroup", e.errno or 0)
            raise _Failed("cgroup") from None
        os.close(fd)
    if p["netns"]:
        fd = fds.pop(0)
        _check("enter the network namespace", _libc.setns(fd, c["clone_newnet"]))
        os.close(fd)
    if p["id_maps"]:
        uid_map, gid_map = p["id_maps"]
        _check("unshare the user namespace", _libc.unshare(c["clone_newuser"]))
        _write_file("/proc/self/setgroups", b"deny")
        _write_file("/proc/self/uid_map", uid_map.encode())
        _write_file("/proc/self/gid_map", gid_map.encode())
    if p["unshare"]:
        _check("unshare namespaces", _libc.unshare(p["unshare"]))
    if p["pid_ns"]:
        _become_pid_one(c)
    if p["uts_ns"]:
        _check("set the host name", _libc.sethostname(b"updraft", 7))
    if p["root"] is not None:
        # The root's part that names no function: a parked child has its
        # system directories, /dev and /proc mounted before it is needed.
        for s in p["root_base"]:
            _run_step(s)


def _seccomp_programs(progs):
    """The filters as the kernel takes them: (length, struct sock_filter[])."""
    programs = []
    for prog in progs:
        raw = b"".join(struct.pack("=HBBI", *ins) for ins in prog)
        programs.append((len(prog), ctypes.create_string_buffer(raw, len(raw))))
    return programs


def _jail_rest(p, env, exec_=False, parked_seccomp=None):
    """The rest of ChildSetup::apply: the function's part of the root, then
    its identity."""
    c = p["c"]
    root = p["root"]
    if root is not None:
        for s in p["steps"]:
            _run_step(s)
        _os_step("enter the instance root", os.chdir, root)
        _check("pivot_root", _libc.syscall(c["sys_pivot_root"], b".", b"."))
        _check("detach the host root", _libc.umount2(b".", c["mnt_detach"]))
        _os_step("chdir /", os.chdir, "/")
        _check("make the instance root read-only", _libc.mount(None, b"/", None, c["root_ro_flags"], None))
    if not exec_:
        _show_environ(c, env)
    uid = p["uid"]
    if uid is not None:
        _os_step("setgroups", os.setgroups, [])
        _os_step("setgid", os.setgid, uid)
        _os_step("setuid", os.setuid, uid)
    # A change of credentials makes a process undumpable, which leaves its
    # /proc/self files to root; exec would make it dumpable again (what the
    # exec path's instances are): the same here, so that the function reads
    # its own /proc/self (environ, fd, maps) as its uid, as on Lambda.
    _check("set dumpable", _libc.prctl(c["pr_set_dumpable"], 1, 0, 0, 0))
    if p["no_new_privs"]:
        _check("set no_new_privs", _libc.prctl(c["pr_set_no_new_privs"], 1, 0, 0, 0))
    # A change of credentials clears the parent-death signal: set it again.
    _pdeathsig(c)
    n = p["nofile"]
    _os_step("set the open-files limit", resource.setrlimit, resource.RLIMIT_NOFILE, (n, n))
    _os_step("chdir to the code", os.chdir, p["workdir"])
    if p["seccomp"] == "parked":
        # Sent with the park order and packed while the child waited.
        programs = parked_seccomp
        if programs is None:
            _say("install the seccomp filter (none was parked)", 0)
            raise _Failed("seccomp")
    else:
        programs = _seccomp_programs(p["seccomp"])
    for n_ins, buf in programs:
        fprog = _SockFprog(n_ins, ctypes.cast(buf, ctypes.c_void_p))
        r = _libc.syscall(c["sys_seccomp"], c["seccomp_set_mode_filter"], 0, ctypes.byref(fprog))
        _check("install the seccomp filter", r)


def _send(sock, msg):
    sock.send(json.dumps(msg).encode())


def _reap(sock):
    """Reports every child that has ended (SIGCHLD woke the loop)."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _send(sock, {"exit": pid, "status": status})


def _serve(sock, bootstrap_code):
    """Forks an instance per request; returns (in the child) what it runs.
    Nothing a request holds may end this loop: every instance is a child
    of this process and dies with it."""
    parent = os.getpid()
    # SIGCHLD wakes the loop through a pipe (no descriptor per child).
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ, "server")
    sel.register(wake_r, selectors.EVENT_READ, "children")
    _send(sock, {"ready": parent})
    while True:
        for key, _ in sel.select():
            if key.data == "children":
                try:
                    while os.read(wake_r, 512):
                        pass
                except BlockingIOError:
                    pass
                _reap(sock)
                continue
            try:
                msg, fds, flags, _ = socket.recv_fds(sock, MAX_MESSAGE, MAX_FDS)
            except InterruptedError:
                continue
            if not msg:
                os._exit(0)  # the server is gone
            try:
                req = json.loads(msg)  # {"seq", "jail", "env"} or {"seq", "park"}
                seq = req["seq"]
            except (ValueError, KeyError, TypeError):
                for fd in fds:
                    os.close(fd)
                continue
            if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
                for fd in fds:
                    os.close(fd)
                _send(sock, {"seq": seq, "error": "request truncated"})
                continue
            try:
                pid = os.fork()
            except OSError as e:
                for fd in fds:
                    os.close(fd)
                _send(sock, {"seq": seq, "error": "fork: %s" % e})
                continue
            if pid == 0:
                # Nothing of this process may reach the instance: no object
                # here may close a descriptor number the instance reuses,
                # and no handler of its stays.
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                sel.close()
                sock.detach()
                return req, fds, parent
            for fd in fds:
                os.close(fd)
            _send(sock, {"seq": seq, "pid": pid})


def _await_order(p, fds, parent):
    """A parked child: runs what no function decides (cgroup, network
    namespace, the other namespaces, PID 1), then waits on its own socket
    for the instance it becomes. The server closing that socket ends it."""
    order = socket.socket(fileno=fds[0])
    try:
        _jail_prefix(p, fds[1:], parent)
    except _Failed:
        os._exit(1)
    # Every instance's filters are the server's: packed now, installed last.
    seccomp = _seccomp_programs(p["seccomp"])
    while True:
        try:
            msg, ofds, flags, _ = socket.recv_fds(order, MAX_MESSAGE, MAX_FDS)
            break
        except InterruptedError:
            continue
        except OSError:
            os._exit(1)
    order.detach()
    if not msg or flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC) or not ofds:
        os._exit(0)
    return json.loads(msg), ofds, seccomp


def _instance(req, fds, parent, bootstrap_code, bootstrap_path):
    seccomp = None
    if "park" in req:
        req, fds, seccomp = _await_order(req["park"], fds, parent)
        prefix_done = True
    else:
        prefix_done = False
    p, env, exec_ = req["jail"], req["env"], req.get("exec")
    log = fds[0]
    # A snapshot template's order socket (`"keep"`), after the log.
    keep = fds[1] if req.get("keep") else None
    box_fds = fds[2:] if keep is not None else fds[1:]
    os.dup2(log, 1)
    os.dup2(log, 2)
    try:
        if not prefix_done:
            _jail_prefix(p, box_fds, parent)
        _jail_rest(p, env, exec_=bool(exec_), parked_seccomp=seccomp)
    except _Failed:
        os._exit(1)
    # Only stdin, stdout and stderr cross into the function (and a
    # template's order socket, as descriptor 3).
    if keep is not None:
        if keep != 3:
            os.dup2(keep, 3)
        _close_from(p["c"], 4)
    else:
        _close_from(p["c"], 3)
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    if exec_:
        # Another runtime's program, started from this box (nodejs, provided).
        # What Python ignores (SIGPIPE, SIGXFSZ) would stay ignored across
        # exec: the program starts with the defaults, as the server's own
        # spawn gives them.
        for sig in (signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        try:
            os.execve(exec_[0], exec_, env)
        except OSError as e:
            os.write(2, ("updraft sandbox: could not exec %s: %s\n" % (exec_[0], e.strerror)).encode())
            os._exit(127)
    os.environ.clear()
    os.environ.update(env)
    time.tzset()
    os.umask(0o022)
    # As `python3 bootstrap.py` would have it.
    sys.argv = [bootstrap_path]
    sys.path[0] = os.path.dirname(bootstrap_path)
    main = types.ModuleType("__main__")
    main.__file__ = bootstrap_path
    main.__builtins__ = __builtins__
    for name in [n for n in sys.modules if n not in _BASELINE]:
        del sys.modules[name]
    sys.modules["__main__"] = main
    exec(bootstrap_code, main.__dict__)


def main():
    fd, bootstrap_path, host_bootstrap = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    with open(host_bootstrap, encoding="utf-8") as f:
        code = compile(f.read(), bootstrap_path, "exec")
    sock = socket.socket(fileno=fd)
    req, fds, parent = _serve(sock, code)
    return req, fds, parent, code, bootstrap_path


if __name__ == "__main__":
    # Outside any frame of the server loop: an instance's SystemExit and
    # its atexit handlers behave as in a fresh interpreter.
    _instance(*main())
