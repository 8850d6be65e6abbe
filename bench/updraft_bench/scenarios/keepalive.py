"""Section 10: keep-alive that learns (issue 14) vs a fixed 10-minute keep-alive.

A synthetic trace shaped like the Azure Functions trace (azure_trace.py: many rarely called
functions, some on timers, a few hot, the rest bursty; generated from a fixed seed) is replayed
against both policies by crates/scheduler/examples/keepalive_replay.rs, which drives the
scheduler's own keep-alive code (`updraft_scheduler::keepalive::History`) on the trace's clock:
a day of invocations takes seconds, and the result does not depend on this machine's speed.
Reported: cold starts (rate per invocation) and idle instance-seconds (instances alive and
waiting: the memory the policy holds)."""

import json
import os
import subprocess

from ..driver import ROOT, TARGET, WORK, Broken, run as run_cmd, say
from ..figures import table
from .. import azure_trace

TITLE = "10. Keep-alive: learned per function vs fixed 10 minutes"

SEED = 20
FIXED_MIN = 10


def replay_binary():
    env = dict(os.environ, CARGO_TARGET_DIR=str(TARGET))
    run_cmd(["cargo", "build", "--release", "-p", "updraft-scheduler", "--example", "keepalive_replay"],
            cwd=ROOT, env=env)
    return TARGET / "release" / "examples" / "keepalive_replay"


def run(ctx):
    functions, hours = (100, 6) if ctx.quick else (1000, 48)
    trace = WORK / f"azure-like-trace-{SEED}-{functions}-{hours}.txt"
    n = azure_trace.write(trace, SEED, functions, hours)
    replay = replay_binary()
    r = subprocess.run([str(replay), str(trace), str(FIXED_MIN)], capture_output=True, text=True)
    if r.returncode != 0:
        raise Broken(f"keepalive_replay failed ({r.returncode}): {r.stderr.strip()[-500:]}")
    out = json.loads(r.stdout)
    fixed, learned, paper = out["fixed"], out["learned"], out["percentiles"]
    for p in (fixed, learned, paper):
        if p["invocations"] != n:
            raise Broken(f"the replay counted {p['invocations']} of {n} invocations")
        p["cold_rate"] = p["cold_starts"] / n
    say(f"keepalive: cold starts fixed {fixed['cold_starts']:,} / learned {learned['cold_starts']:,}; idle "
        f"instance-hours {fixed['idle_instance_seconds'] / 3600:,.0f} / {learned['idle_instance_seconds'] / 3600:,.0f}")
    goal = (learned["cold_starts"] < fixed["cold_starts"]
            and learned["idle_instance_seconds"] <= fixed["idle_instance_seconds"])
    return {"seed": SEED, "functions": functions, "hours": hours, "invocations": n,
            "fixed": fixed, "learned": learned, "percentiles": paper, "goal": goal}


def render(r):
    f, a, q = r["fixed"], r["learned"], r["percentiles"]

    def row(name, p):
        return [name, f"{p['cold_starts']:,}", f"{p['cold_rate']:.2%}", f"{p['prewarms']:,}",
                f"{p['idle_instance_seconds'] / 3600:,.1f}"]

    return [
        f"A synthetic trace of {r['functions']:,} functions over {r['hours']} hours ({r['invocations']:,} "
        f"invocations; `bench/updraft_bench/azure_trace.py`, seed {r['seed']}: 45% rarely called, 30% bursty, "
        "20% on timers, 5% hot, log-normal run times, median ~1 s) replayed against three policies through the "
        "scheduler's keep-alive code (`crates/scheduler/examples/keepalive_replay.rs`, on the trace's clock). "
        f"Fixed: every idle instance kept {FIXED_MIN} minutes. Learned: what a function without `idle_timeout` "
        f"gets ({a['fallback_minutes']:.0f} minutes until ten idle times are known, then the pre-warm and "
        "keep-alive windows with the fewest cold starts on the function's idle-time histogram that hold no more "
        "idle time than the fixed keep-alive; docs/reference/manifest.md#keep-alive). Percentiles: the hybrid "
        "histogram policy of \"Serverless in the Wild\" as published (pre-warm at the 5th percentile of idle "
        "times less 10%, keep to the 99th plus 10%), for comparison; not used by the scheduler.",
        "",
        *table(["policy", "cold starts", "per invocation", "pre-warms", "idle instance-hours"], "lrrrr", [
            row(f"fixed {FIXED_MIN} minutes", f), row("learned (the default)", a),
            row("percentiles (the paper's)", q)]),
        "",
        f"- Goal (issue 14): fewer cold starts at no more idle instance-time than a fixed {FIXED_MIN}-minute "
        f"keep-alive: **{'met' if r['goal'] else 'NOT met'}** (cold starts "
        f"{a['cold_starts'] / max(f['cold_starts'], 1):.2f}×, idle instance-time "
        f"{a['idle_instance_seconds'] / max(f['idle_instance_seconds'], 1e-9):.2f}× the fixed policy's).",
    ]
