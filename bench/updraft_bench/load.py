"""Load generation: wrk runs, their summaries, and targets measured side by side."""

import re
import subprocess

from .driver import Broken
from .figures import med

UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def wrk(url, conns, seconds):
    threads = 1 if conns < 2 else 2
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--timeout", "10s", "--latency", url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
    return parse_wrk(out, url, " ".join(cmd))


def parse_wrk(out, url, cmd):
    """The figures of wrk's output `out`: req/s, requests, p50..p99 (ms), errors."""
    r = {"cmd": cmd, "non2xx": 0, "socket_errors": 0}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m:
        raise Broken(f"wrk printed no Requests/sec for {url}:\n{out}")
    r["rps"] = float(m.group(1))
    m = re.search(r"(\d+) requests in", out)
    r["requests"] = int(m.group(1)) if m else 0
    for p in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
        r[f"p{p}"] = float(m.group(1)) * UNITS[m.group(2)] if m else None
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if m:
        r["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        r["socket_errors"] = sum(int(x) for x in m.groups())
    return r


def summarize_wrk(runs):
    return {
        "rps": med([r["rps"] for r in runs]),
        "rps_min": min(r["rps"] for r in runs),
        "p50": med([r["p50"] for r in runs if r["p50"] is not None]),
        "p99": med([r["p99"] for r in runs if r["p99"] is not None]),
        "p99_worst": max((r["p99"] for r in runs if r["p99"] is not None), default=None),
        "errors": sum(r["non2xx"] + r["socket_errors"] for r in runs),
        "requests": sum(r["requests"] for r in runs),
        "runs": len(runs),
    }


def by_wrk(_target, url, conns, seconds):
    return wrk(url, conns, seconds)


def warm_up(targets, conns, seconds, load=by_wrk):
    """One run against each of `targets` ({name: url}), figures thrown away: it starts the
    instances the measured runs will use, so cold starts stay out of the figures."""
    for k, url in targets.items():
        load(k, url, conns, seconds)


def interleaved(targets, conns, seconds, reps, load=by_wrk):
    """{name: wrk summary} of `reps` runs against each of `targets` ({name: url}) at `conns`
    connections, the targets taking turns so that a change in the machine's load hits all alike.
    `load(name, url, conns, seconds)` makes one run (wrk by default)."""
    runs = {k: [] for k in targets}
    for _ in range(reps):
        for k, url in targets.items():
            runs[k].append(load(k, url, conns, seconds))
    return {k: summarize_wrk(v) for k, v in runs.items()}
