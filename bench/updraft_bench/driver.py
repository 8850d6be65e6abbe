"""What every scenario shares: where things are, building, background processes, HTTP, the
server under test and the apps deployed on it."""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
WORK = BENCH / ".work"
TARGET = Path(os.environ.get("UPDRAFT_BENCH_TARGET_DIR", ROOT / "target" / "bench"))
HYPER_TARGET = ROOT / "target" / "bench-hyper"
RUST_FIXTURE = ROOT / "tests" / "fixtures" / "provided-rust"


def say(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


class Broken(Exception):
    """A scenario broke (not merely slow): --quick exits non-zero."""


class Context:
    """What a scenario is given: the run's options, the binaries, the shared server (`server`)
    and the measurements more than one scenario reads (`once`)."""

    def __init__(self, quick, updraft, hyper):
        self.quick, self.updraft, self.hyper = quick, updraft, hyper
        self.server = None
        # functions the density and control scenarios deploy (--fleet)
        self.fleet = 20 if quick else 10_000
        self._once = {}

    def timing(self, full):
        """(seconds per wrk run, runs per cell): `full` in a full run, (1, 1) with --quick."""
        return (1, 1) if self.quick else full

    def once(self, key, compute):
        """compute(self), the first time `key` is asked for in this run (again if it raised)."""
        if key not in self._once:
            self._once[key] = compute(self)
        return self._once[key]


# ---------------------------------------------------------------------------
# processes


def run(cmd, **kw):
    say("$ " + " ".join(str(c) for c in cmd))
    subprocess.run(cmd, check=True, **kw)


def build(args):
    """(updraft binary, hyper baseline binary or None), built in release mode unless given."""
    if args.updraft:
        updraft = Path(args.updraft).resolve()
    else:
        env = dict(os.environ, CARGO_TARGET_DIR=str(TARGET))
        run(["cargo", "build", "--release", "--bin", "updraft"], cwd=ROOT, env=env)
        updraft = TARGET / "release" / "updraft"
    only = {s.strip() for s in args.only.split(",")} if args.only else None
    if only and only <= {"emulators", "events", "keepalive"}:
        # `emulators` builds what it needs itself, `events` needs nothing: no hyper baseline, no fixture
        return updraft, None
    hyper = None
    if not only or "warm" in only:  # the plain hyper baseline is section 1's alone
        env = dict(os.environ, CARGO_TARGET_DIR=str(HYPER_TARGET))
        run(["cargo", "build", "--release", "--manifest-path", str(BENCH / "hyper-baseline" / "Cargo.toml")], env=env)
        hyper = HYPER_TARGET / "release" / "updraft-bench-hyper-baseline"
    if not (RUST_FIXTURE / "build" / "bootstrap").exists() or not args.no_fixture_build:
        run([str(ROOT / "scripts" / "fixtures"), "provided-rust"], cwd=ROOT)
    return updraft, hyper


def rss_kb(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid):
    """utime + stime of a process, in seconds."""
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def idle_cpu_percent(pid, seconds):
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - c0) / (time.monotonic() - t0) * 100


def descendants(pid):
    """Pids of every process below pid."""
    children = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


class Background:
    """A process run beside the harness, its output in a log under bench/.work/. Its failures
    raise `error` (Broken: a scenario broke), naming its log."""

    error = Broken

    def __init__(self, name, cmd, log=None, **popen):
        self.name = name
        self.log_path = WORK / (log or f"{name}.log")
        self.log = open(self.log_path, "wb")
        try:
            self.proc = subprocess.Popen([str(c) for c in cmd], stdout=self.log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, **popen)
        except OSError as e:
            self.log.close()
            raise self.error(f"{name}: could not start {cmd[0]}: {e}")

    @property
    def pid(self):
        return self.proc.pid

    def failure(self, why):
        return f"{self.name} {why}; see {self.log_path}"

    def wait_http(self, port, path="/", timeout=30, **kw):
        """Seconds until GET path answers (as `accept` wants, given one): see wait_http."""
        try:
            return wait_http(port, path, timeout, proc=self.proc, **kw)
        except NotReady as e:
            raise self.error(self.failure(str(e)))

    def stop(self, grace=30):
        """SIGTERM, then SIGKILL if it is still there after `grace` seconds."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# ---------------------------------------------------------------------------
# HTTP


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_request(port, path, method="GET", body=None, headers=None, timeout=60, conn=None):
    """One request; returns (status, body bytes, seconds from send to full response)."""
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        conn.connect()
    try:
        t0 = time.perf_counter()
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, data, time.perf_counter() - t0
    finally:
        if own:
            conn.close()


def connect(port, timeout=60):
    """A keep-alive connection to loopback `port`, opened."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.connect()
    return conn


class NotReady(Exception):
    """wait_http gave up: the message says why."""


def wait_http(port, path, timeout, proc=None, accept=None, interval=0.05, request_timeout=2):
    """Polls GET path on loopback `port` until it answers, and `accept(status, body)` is true
    when given (it may raise to give up at once): the seconds it took. NotReady when `proc`
    exits first or `timeout` seconds pass."""
    t0, last = time.monotonic(), "no answer"
    while True:
        if proc is not None and proc.poll() is not None:
            raise NotReady(f"exited ({proc.returncode}) before answering")
        try:
            status, body, _ = http_request(port, path, timeout=request_timeout)
            if accept is None or accept(status, body):
                return time.monotonic() - t0
            last = f"{status} {body[:120]!r}"
        except (OSError, http.client.HTTPException) as e:
            last = str(e) or type(e).__name__
        if time.monotonic() - t0 > timeout:
            raise NotReady(f"did not answer GET {path}{' as expected' if accept else ''} within {timeout} s "
                           f"(last: {last})")
        time.sleep(interval)


def status_200(status, _body):
    return status == 200


# ---------------------------------------------------------------------------
# the server under test


class Server:
    def __init__(self, updraft, name, args=()):
        """`args`: extra `updraft server` arguments (e.g. `--isolation none`); given any, the
        UPDRAFT_ISOLATION / UPDRAFT_ALLOW_FUNCTION_LOOPBACK of the environment are dropped, so
        the arguments alone say how the server isolates functions."""
        self.updraft = updraft
        self.data = WORK / name
        if self.data.exists():
            shutil.rmtree(self.data)
        self.data.mkdir(parents=True)
        self.port = free_port()
        self.key = "BENCH" + uuid.uuid4().hex[:15].upper()
        self.secret = uuid.uuid4().hex + uuid.uuid4().hex[:8]
        self.env = dict(
            os.environ,
            UPDRAFT_ENDPOINT=f"http://127.0.0.1:{self.port}",
            UPDRAFT_ACCESS_KEY_ID=self.key,
            UPDRAFT_SECRET_ACCESS_KEY=self.secret,
            UPDRAFT_DATA_DIR=str(self.data),
        )
        if args:
            for k in ("UPDRAFT_ISOLATION", "UPDRAFT_ALLOW_FUNCTION_LOOPBACK"):
                self.env.pop(k, None)
        self.process = Background(
            "updraft server",
            [updraft, "server", "--data-dir", self.data, "--listen", f"127.0.0.1:{self.port}", *args],
            log=f"{name}.log", env=self.env,
        )
        try:
            self.process.wait_http(self.port, "/healthz", timeout=30, accept=status_200)
        except Broken:
            self.stop()
            raise
        self.auth = {"Authorization": f"Bearer {self.key}:{self.secret}"}

    @property
    def log_path(self):
        return self.process.log_path

    def protections_off(self):
        """Names of the protections the server's start-up message reports OFF (None if it printed none)."""
        text = self.log_path.read_text(errors="replace")
        if not re.search(r"^(updraft: )?isolation \S+:", text, re.M):
            return None
        return re.findall(r"^  OFF  ([^:]+):", text, re.M)

    @property
    def pid(self):
        return self.process.pid

    def url(self, fn, path=""):
        return f"http://127.0.0.1:{self.port}/fn/{fn}{path}"

    def cli(self, *args, check=True):
        r = subprocess.run([str(self.updraft), *map(str, args)], env=self.env, capture_output=True, text=True)
        if check and r.returncode != 0:
            raise Broken(f"updraft {' '.join(map(str, args))} failed ({r.returncode}): {r.stderr.strip()[-800:]}")
        return r

    def deploy(self, app_dir):
        return self.cli("deploy", app_dir)

    def invoke(self, fn, path="", expect=None, exact=False, what=None, conn=None, timeout=60):
        """GET a function's URL (on `conn`, a keep-alive connection, when given); Broken unless it
        answers 200 with a body holding `expect` (bytes; with `exact`, the whole body but for
        white space). Returns the seconds from send to full response."""
        status, body, t = http_request(self.port, f"/fn/{fn}{path}", timeout=timeout, conn=conn)
        if status != 200 or (expect is not None and (body.strip() != expect if exact else expect not in body)):
            wanted = "" if expect is None else f" {'and the body' if exact else 'from a body holding'} {expect!r}"
            raise Broken(f"{what or fn}: GET /fn/{fn}{path}: expected 200{wanted}, got {status} {body[:300]!r}")
        return t

    def repeat(self, fn, conn, what, pauses):
        """The same GET of a function's URL on `conn`, once per entry of `pauses` (the seconds
        to wait before it), each answering 200: their times in ms."""
        times = []
        for k, pause in enumerate(pauses):
            if pause:
                time.sleep(pause)
            times.append(self.invoke(fn, conn=conn, what=f"{fn} {what}, request {k + 1}") * 1000)
        return times

    def functions(self):
        """GET /api/v1/functions (what `updraft ls` calls), without a process spawn."""
        status, body, _ = http_request(self.port, "/api/v1/functions", headers=self.auth, timeout=30)
        if status != 200:
            raise Broken(f"GET /api/v1/functions: {status} {body[:200]!r}")
        return {f["name"]: f for f in json.loads(body)["functions"]}

    def live(self, fn):
        f = self.functions().get(fn)
        return f["live_instances"] if f else 0

    def wait_zero(self, fn, timeout=30):
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.live(fn) == 0:
                return time.monotonic() - t0
            time.sleep(0.05)
        raise Broken(f"{fn}: still has live instances {timeout} s after its last request")

    def stop(self):
        self.process.stop()


# ---------------------------------------------------------------------------
# generated apps

HANDLERS = {
    "python3": ("app.handler", "app.py",
                "def handler(event, context):\n    return {'statusCode': 200, 'body': 'ok'}\n"),
    "nodejs": ("app.handler", "app.js",
               "exports.handler = async (event) => ({ statusCode: 200, body: 'ok' });\n"),
}
# A `provided` function whose code is the directory `code`, behind a public URL.
PROVIDED = 'runtime = "provided.al2023"\ncode = "code"\nurl = "public"\ntimeout = "10s"'
# The `provided-rust` fixture's `lambda_runtime` echo, as sections 1 and 8 deploy it.
ECHO = "bench-rust-echo"


def write_app(name, functions, code_files=None, code_from=None, under="apps"):
    """An app dir under .work/`under`: functions = {fn: toml body}, one shared code dir `code`."""
    d = WORK / under / name
    if d.exists():
        shutil.rmtree(d)
    (d / "code").mkdir(parents=True)
    if code_from:
        for f in Path(code_from).iterdir():
            shutil.copy2(f, d / "code" / f.name)
    for fname, content in (code_files or {}).items():
        if isinstance(content, bytes):
            (d / "code" / fname).write_bytes(content)
        else:
            (d / "code" / fname).write_text(content)
    toml = [f'[app]\nname = "{name}"\n']
    for fn, body in functions.items():
        toml.append(f"[functions.{fn}]\n{body.strip()}\n")
    (d / "updraft.toml").write_text("\n".join(toml))
    return d


def echo_app(name):
    """An app `name` with the echo function ECHO."""
    return write_app(name, {ECHO: PROVIDED}, code_from=RUST_FIXTURE / "build")


def check_echo(srv, what):
    """The echo answers through `srv`, from lambda_runtime."""
    srv.invoke(ECHO, "/bench", expect=b"lambda_runtime", what=what)


def cold_app(runtime, rev, component=None):
    """(app dir, function name): a hello function of `runtime` that goes cold fast (idle_timeout
    1s, max_instances 1); `rev` makes each deploy a new revision."""
    name = f"bench-cold-{runtime}"
    scaling = '\n[functions.{0}.scaling]\nidle_timeout = "1s"\nmax_instances = 1\n'.format(name)
    env = f'env = {{ BENCH_REV = "{rev}" }}\n'
    if runtime == "wasm":
        body = f'runtime = "wasm"\ncode = "code/component.wasm"\nurl = "public"\n{env}{scaling}'
        return write_app(name, {name: body}, code_files={"component.wasm": Path(component).read_bytes()}), name
    if runtime == "provided":
        body = f'runtime = "provided"\ncode = "code"\nurl = "public"\n{env}{scaling}'
        return write_app(name, {name: body}, code_from=RUST_FIXTURE / "build"), name
    handler, fname, text = HANDLERS[runtime]
    body = f'runtime = "{runtime}"\nhandler = "{handler}"\ncode = "code"\nurl = "public"\n{env}{scaling}'
    return write_app(name, {name: body}, code_files={fname: text}), name
