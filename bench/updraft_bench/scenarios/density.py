"""Section 5: server RSS with 10,000 functions idle and with 100 warm (see fleet)."""

from ..figures import table
from .fleet import NO_GOAL, measure, mix

TITLE = "5. Density"


def run(ctx):
    return measure(ctx)


def render(r):
    return [f"Server RSS (VmRSS of `updraft server`) with {mix(r)} functions deployed; then "
            f"{r['warm_n']} {r.get('warm_kind', 'python3')} functions invoked once each and left warm "
            "(wasm versions stay loaded in the server; process instances are separate processes: their "
            "RSS is shown apart).", "",
            *table(["server, empty", "server, functions idle", "per idle function", "server, with warm",
                    "live instances", "instances' RSS (total / each)", "server CPU at rest: idle / with warm"],
                   "rrrrrrr",
                   [[f"{r['rss_empty_mb']:.1f} MB", f"{r['rss_idle_mb']:.1f} MB",
                     f"{(r['rss_idle_mb'] - r['rss_empty_mb']) * 1024 / r['n']:.1f} KB", f"{r['rss_warm_mb']:.1f} MB",
                     r["live"], f"{r['instances_rss_mb']:.0f} MB / {r['instances_rss_mb'] / max(1, r['live']):.1f} MB",
                     f"{r.get('cpu_idle', 0):.1f} % / {r.get('cpu_warm', 0):.1f} %"]]),
            "", NO_GOAL, target(r)]


def target(r):
    per_kb = (r['rss_idle_mb'] - r['rss_empty_mb']) * 1024 / r['n']
    scale = "" if r["n"] >= 10_000 else f" (measured with {r['n']:,} functions, not the target's 10,000)"
    return (f"- Target (issue 14): server RSS per idle function ≤ 20 KB: **{'met' if per_kb <= 20 else 'NOT met'}** "
            f"({per_kb:.1f} KB){scale}.")
