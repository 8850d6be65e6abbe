"""Section 8: the price of the process sandbox (issue 10). Three servers in the same run,
`--isolation strict`, strict with `--allow-function-loopback` (no network namespace) and
`--isolation none`; the warm echo at c=16, 64 and python3/provided cold starts after deploy,
interleaved. Needs root (skipped, saying so, otherwise)."""

import os

from ..driver import ECHO, Broken, Server, check_echo, cold_app, connect, echo_app, say
from ..figures import fmt_ms, fmt_ms2, fmt_ratio, fmt_rps, med_p99, ratio, table
from ..load import interleaved, warm_up

TITLE = "8. The price of the sandbox: `--isolation strict` vs `none`"

# (key, label, `updraft server` arguments, protections its start-up message must report OFF).
# The middle row drops only the network namespace, so its share of the price can be read apart.
SANDBOX_VARIANTS = [
    ("strict", "`--isolation strict`", ["--isolation", "strict"], []),
    ("loopback", "`--isolation strict --allow-function-loopback`",
     ["--isolation", "strict", "--allow-function-loopback"], ["network namespace"]),
    ("none", "`--isolation none`", ["--isolation", "none"], ["isolation"]),
]
SANDBOX_COLD_RUNTIMES = ["python3", "provided"]


def sandbox_servers(ctx):
    servers = {}
    try:
        for key, label, args, off in SANDBOX_VARIANTS:
            srv = Server(ctx.updraft, f"sandbox-{key}", args)
            servers[key] = srv
            seen = srv.protections_off()
            if seen is not None and sorted(seen) != sorted(off):
                raise Broken(f"updraft server {' '.join(args)} reports OFF {seen or 'nothing'}, expected "
                             f"{off or 'nothing'}; see {srv.log_path}")
    except BaseException:
        for srv in servers.values():
            srv.stop()
        raise
    return servers


def measure_warm(ctx, servers):
    """The echo behind its function URL on each server, wrk at c=16 and 64."""
    app = echo_app("bench-sandbox-warm")
    for key, srv in servers.items():
        srv.deploy(app)
        check_echo(srv, f"sandbox {key}")
    targets = {key: srv.url(ECHO, "/bench") for key, srv in servers.items()}
    warm_up(targets, 64, 1 if ctx.quick else 2)
    secs, reps = ctx.timing((5, 3))
    warm = []
    for c in (16, 64):
        s = interleaved(targets, c, secs, reps)
        errors = {k: v["errors"] for k, v in s.items() if v["errors"]}
        if errors:
            raise Broken(f"sandbox warm c={c}: errors: {errors}")
        warm.append({"c": c, **s})
        say(f"sandbox warm c={c}: " + ", ".join(
            f"{k} {fmt_rps(s[k]['rps'])} req/s p50 {fmt_ms(s[k]['p50'])} p99 {fmt_ms(s[k]['p99'])}" for k in s)
            + f"; strict/none {fmt_ratio(ratio(s['strict']['rps'], s['none']['rps']))}")
    return warm, secs, reps


def measure_cold(ctx, servers):
    """The first request to a new revision, each server in turn."""
    reps = 2 if ctx.quick else 10
    cold = []
    for rt in SANDBOX_COLD_RUNTIMES:
        times = {k: [] for k in servers}
        for i in range(reps):
            for key, srv in servers.items():
                app, fn = cold_app(rt, f"{os.getpid()}-sandbox-{i}")
                srv.deploy(app)
                conn = connect(srv.port)
                try:  # the cold request, then the same one warm: both must answer
                    times[key].append(srv.repeat(fn, conn, f"on sandbox {key} after deploy", (0, 0))[0])
                finally:
                    conn.close()
        row = {"runtime": rt, "reps": reps, **{k: med_p99(v) for k, v in times.items()}}
        cold.append(row)
        say(f"sandbox cold {rt}: " + ", ".join(f"{k} {fmt_ms2(row[k])}" for k in servers)
            + f"; strict - none {fmt_ms(row['strict'][0] - row['none'][0])}")
    return cold


def run(ctx):
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            raise Broken("not root under CI=true: the sandbox scenario needs root")
        return {"skipped": "not root: `--isolation strict` needs root (cgroups, network namespaces, a uid per function)"}
    servers = sandbox_servers(ctx)
    try:
        warm, secs, reps = measure_warm(ctx, servers)
        cold = measure_cold(ctx, servers)
        off = {key: servers[key].protections_off() for key in servers}
    finally:
        for srv in servers.values():
            srv.stop()
    return {"warm": warm, "cold": cold, "seconds": secs, "warm_reps": reps, "off": off}


def render(r):
    if "skipped" in r:
        return [f"Skipped: {r['skipped']}."]
    labels = {k: label for k, label, _, _ in SANDBOX_VARIANTS}
    out = ["Three `updraft server`s in the same run, on the same machine: "
           + "; ".join(f"{labels[k]} (protections OFF: "
                       f"{'all' if k == 'none' else ', '.join(r['off'][k] or []) or 'none'})" for k in labels)
           + ". The middle one is strict without the network namespace, so strict vs it is the network "
           "namespace's price and it vs none is the price of the rest (cgroup, PID/IPC/UTS/mount namespaces, "
           "built root with pivot_root, the function's own uid, no_new_privs, seccomp). Ratios are strict (or "
           "the middle row) / none: above 1× for latency and below 1× for req/s is what isolation costs.", "",
           f"Warm: `{ECHO}` (the `provided-rust` fixture, as in section 1) behind its function URL, "
           f"wrk -t2 -cN -d{r['seconds']}s --latency, {r['warm_reps']} run(s) per cell, the three servers interleaved; "
           "median of runs.", ""]

    def warm_row(row, k, x, n):
        return [row["c"], labels[k], fmt_rps(x["rps"]), fmt_ratio(ratio(x["rps"], n["rps"])), fmt_ms(x["p50"]),
                fmt_ratio(ratio(x["p50"], n["p50"])), fmt_ms(x["p99"]), fmt_ratio(ratio(x["p99"], n["p99"]))]

    out += table(["c", "isolation", "req/s", "ratio to none", "p50", "ratio", "p99", "ratio"], "rlrrrrrr",
                 [warm_row(row, k, row[k], row["none"]) for row in r["warm"] for k in labels])
    reps = r["cold"][0]["reps"] if r["cold"] else 0
    out += ["", f"Cold: the first request to a new revision right after `updraft deploy` (as in section 3: "
            f"idle_timeout 1s, max_instances 1, a pre-opened keep-alive connection), {reps} per runtime and server, "
            "the three servers interleaved. Median / p99 (p99 of so few is their worst); difference = strict "
            "(or the middle row) − none.", ""]

    def cold_row(row, k, x, n):
        if k == "none":
            return [row["runtime"], labels[k], fmt_ms2(x), "", ""]
        return [row["runtime"], labels[k], fmt_ms2(x), f"{fmt_ratio(ratio(x[0], n[0]))} / {fmt_ratio(ratio(x[1], n[1]))}",
                fmt_ms2((x[0] - n[0], x[1] - n[1]))]

    out += table(["runtime", "isolation", "cold start", "ratio to none (median / p99)",
                  "difference to none (median / p99)"], "llrrr",
                 [cold_row(row, k, row[k], row["none"]) for row in r["cold"] for k in labels])
    return out
