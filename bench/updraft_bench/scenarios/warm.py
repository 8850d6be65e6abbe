"""Section 1: warm throughput and latency of a `provided` lambda_runtime function behind its
function URL vs a plain hyper server (bench/hyper-baseline/), wrk at c=1, 16, 64."""

import json
import selectors
import socket
import subprocess
import time

from ..driver import (ECHO, RUST_FIXTURE, Background, Broken, check_echo, descendants, echo_app, free_port, say,
                      status_200)
from ..figures import fmt_ms, fmt_ratio, fmt_rps, med, met, ratio, table
from ..load import interleaved, warm_up

TITLE = "1. Warm throughput and latency, process runtime (`provided`, lambda_runtime) vs plain hyper"

# Issue 5's table of local emulators (req/s at wrk -t2 -c64 on this class of machine).
EMULATOR_BEST_RPS = 4100  # cargo lambda watch (4 instances) / serverless-offline in-process


# The event the bootstrap alone is handed: a function URL's GET, as Updraft builds it (trimmed).
ALONE_EVENT = json.dumps({"version": "2.0", "routeKey": "$default", "rawPath": "/bench", "rawQueryString": "",
                          "headers": {"host": "127.0.0.1", "user-agent": "wrk"},
                          "requestContext": {"http": {"method": "GET", "path": "/bench"}},
                          "isBase64Encoded": False}).encode()
ACCEPTED = b"HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: 15\r\n\r\n" \
           b'{"status":"OK"}'


class Wire:
    """The least a Runtime API server can be, for timing: raw sockets, requests parsed as they
    arrive on any of the runtime's connections, nothing else."""

    def __init__(self):
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.port = self.srv.getsockname()[1]
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.srv, selectors.EVENT_READ)
        self.bufs = {}

    def close(self):
        for c in list(self.bufs):
            c.close()
        self.srv.close()
        self.sel.close()

    def request(self, timeout=30):
        """(connection, method, path) of the next complete request (its body is read and dropped)."""
        deadline = time.monotonic() + timeout
        while True:
            for conn, buf in self.bufs.items():
                head_end = buf.find(b"\r\n\r\n")
                if head_end < 0:
                    continue
                head = buf[:head_end].decode("latin-1").split("\r\n")
                length = 0
                for line in head[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value.strip())
                if len(buf) < head_end + 4 + length:
                    continue
                self.bufs[conn] = buf[head_end + 4 + length:]
                method, path = head[0].split(" ")[:2]
                return conn, method, path
            left = deadline - time.monotonic()
            events = self.sel.select(left) if left > 0 else []
            if not events:
                raise Broken("warm: the bootstrap alone stopped talking to its Runtime API")
            for key, _ in events:
                if key.fileobj is self.srv:
                    c, _ = self.srv.accept()
                    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    self.sel.register(c, selectors.EVENT_READ)
                    self.bufs[c] = b""
                else:
                    data = key.fileobj.recv(65536)
                    if data:
                        self.bufs[key.fileobj] += data
                    else:
                        self.sel.unregister(key.fileobj)
                        del self.bufs[key.fileobj]
                        key.fileobj.close()


def bootstrap_alone(n):
    """The echo bootstrap's own invocation round trip without Updraft (ms, the median of `n`):
    from the event written on its pending GET /next to its POST /response read, against `Wire`."""
    wire = Wire()
    env = {"AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{wire.port}", "AWS_LAMBDA_FUNCTION_NAME": "bench-alone",
           "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
           "AWS_REGION": "us-east-1", "_HANDLER": "bootstrap", "PATH": "/usr/local/bin:/usr/bin:/bin"}
    p = subprocess.Popen([str(RUST_FIXTURE / "build" / "bootstrap")], env=env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    times = []
    try:
        def next_poll():
            while True:
                conn, method, path = wire.request()
                if method == "GET" and path.endswith("/invocation/next"):
                    return conn
        poll = next_poll()
        for i in range(n + n // 10):  # the first tenth warms up, untimed
            rid = f"00000000-0000-4000-8000-{i:012d}"
            head = (f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(ALONE_EVENT)}\r\n"
                    f"lambda-runtime-aws-request-id: {rid}\r\n"
                    f"lambda-runtime-deadline-ms: {int(time.time() * 1000) + 30000}\r\n"
                    "lambda-runtime-invoked-function-arn: arn:aws:lambda:us-east-1:000000000000:function:bench\r\n"
                    "lambda-runtime-trace-id: Root=1-00000000-000000000000000000000000\r\n\r\n").encode()
            t0 = time.perf_counter()
            poll.sendall(head + ALONE_EVENT)
            while True:
                conn, method, path = wire.request()
                if method == "POST" and path.endswith(f"/invocation/{rid}/response"):
                    t1 = time.perf_counter()
                    conn.sendall(ACCEPTED)
                    break
                if method == "POST":
                    raise Broken(f"warm: the bootstrap alone posted {path} instead of its response")
            if i >= n // 10:
                times.append((t1 - t0) * 1000)
            poll = next_poll()
    finally:
        p.kill()
        p.wait()
        wire.close()
    return med(times)


def run(ctx):
    srv = ctx.server
    srv.deploy(echo_app("bench-warm"))
    port = free_port()
    hyper = Background("hyper baseline", [ctx.hyper, f"127.0.0.1:{port}"], log="hyper-baseline.log")
    try:
        hyper.wait_http(port, "/", timeout=10, accept=status_200)
        check_echo(srv, "warm")
        targets = {"hyper": f"http://127.0.0.1:{port}/fn/{ECHO}/bench", "updraft": srv.url(ECHO, "/bench")}
        warm_up(targets, 64, 1 if ctx.quick else 2)
        secs, reps = ctx.timing((5, 3))
        rows = []
        for c in (1, 16, 64):
            s = interleaved(targets, c, secs, reps)
            r = ratio(s["updraft"]["rps"], s["hyper"]["rps"])
            time.sleep(0.3)
            live, procs = srv.functions()[ECHO]["live_instances"], len(descendants(srv.pid))
            rows.append({"c": c, "updraft": s["updraft"], "hyper": s["hyper"], "ratio": r,
                         "live": live, "procs": procs})
            if c == 1:
                # Taken right after the c=1 cell, on the same machine state.
                alone_n = 500 if ctx.quick else 5000
                alone = bootstrap_alone(alone_n)
                say(f"warm: the bootstrap alone against a minimal Runtime API: p50 {fmt_ms(alone)}")
            say(f"warm c={c}: updraft {s['updraft']['rps']:.0f} req/s p50 {fmt_ms(s['updraft']['p50'])}, "
                f"hyper {s['hyper']['rps']:.0f} req/s, ratio {fmt_ratio(r)}")
            if s["updraft"]["errors"] or s["hyper"]["errors"]:
                raise Broken(f"warm c={c}: errors: updraft {s['updraft']['errors']}, hyper {s['hyper']['errors']}")
    finally:
        hyper.stop()
    c64 = rows[-1]
    return {
        "rows": rows, "seconds": secs, "reps": reps, "max_instances": 10,
        "goal_emulators": c64["updraft"]["rps"] > EMULATOR_BEST_RPS,
        "goal_half_hyper": (c64["ratio"] or 0) >= 0.5,
        "alone_p50": alone,
        "alone_n": alone_n,
    }


def render(r):
    out = [f"wrk -t2 -cN -d{r['seconds']}s --latency (c=1: -t1), {r['reps']} run(s) per cell, interleaved; "
           f"median of runs (p99 worst: the worst run's p99). `{ECHO}` = the `provided-rust` "
           f"fixture's `lambda_runtime` bootstrap, default scaling (max_instances {r['max_instances']}).", ""]
    rows = []
    for row in r["rows"]:
        u, h = row["updraft"], row["hyper"]
        rows.append([row["c"], fmt_rps(u["rps"]), fmt_rps(h["rps"]), fmt_ratio(row["ratio"]), fmt_ms(u["p50"]),
                     f"{fmt_ms(u['p99'])} ({fmt_ms(u['p99_worst'])})", fmt_ms(h["p50"]), fmt_ms(h["p99"]),
                     u["errors"] + h["errors"], f"{row['procs']} / {row['live']}"])
    out += table(["c", "Updraft req/s", "hyper req/s", "ratio", "Updraft p50", "Updraft p99 (worst)", "hyper p50",
                  "hyper p99", "errors", "after: processes / `live_instances`"], "rrrrrrrrrr", rows)
    c64 = r["rows"][-1]
    out += ["", f"- Goal: above every local emulator in issue 5's table (best: {EMULATOR_BEST_RPS:,} req/s at c=64): "
            f"{met(r['goal_emulators'])} ({fmt_rps(c64['updraft']['rps'])} req/s, "
            f"{c64['updraft']['rps'] / EMULATOR_BEST_RPS:.1f}× the best emulator).",
            f"- Aim: 0.5× plain hyper at c=64: {met(r['goal_half_hyper'], no='not met')} ({fmt_ratio(c64['ratio'])}).",
            f"- Target (issue 14): ≥ 0.25× plain hyper at c=64: {met((c64['ratio'] or 0) >= 0.25)} "
            f"({fmt_ratio(c64['ratio'])}). The targets against `cargo lambda watch` and serverless-offline are "
            "in section 7."]
    c1, alone = r["rows"][0], r.get("alone_p50")
    if alone is not None and c1["updraft"]["p50"] is not None:
        added = c1["updraft"]["p50"] - alone
        out.append(f"- Target (issue 14): Updraft's added latency at c=1 under 100 µs: {met(added < 0.1)} "
                   f"({added * 1000:.0f} µs: Updraft's p50 {fmt_ms(c1['updraft']['p50'])} minus {fmt_ms(alone)}, the "
                   "same bootstrap's p50 alone, measured right after against the harness's minimal Runtime API: "
                   f"raw sockets in Python, the event written on its pending `GET /next` to its `POST` of the "
                   f"response read, the median of {r['alone_n']:,}; the harness's own Python time is in that "
                   "baseline).")
    leaked = [row for row in r["rows"] if row["live"] > row["procs"]]
    if leaked:
        out.append(f"- **Warning:** after wrk closed its connections, `live_instances` read {leaked[-1]['live']} "
                   f"while {leaked[-1]['procs']} instance processes "
                   "existed: invocations cancelled by a client disconnect lose their instance and leak the count, "
                   "so each wrk run starts from cold instances.")
    return out
