"""Section 6: deploys per second and `updraft ls` latency with 10,000 functions (see fleet)."""

from ..figures import fmt_ms, fmt_ms2, table
from .fleet import NO_GOAL, measure, mix

TITLE = "6. Control plane"


def run(ctx):
    return measure(ctx)


def render(r):
    return [f"{mix(r)} single-function apps deployed with `updraft deploy DIR`, {r['parallel']} at a time "
            "(each one a CLI process: load the manifest, zip, sha256, skip the upload when the server has the "
            "code, sign, deploy; a wasm deploy includes compiling its component in the compile helper: the "
            "components differ only in a custom section, so after the first one their functions come from the "
            "compiled-function cache, as most functions of components built with one toolchain do).", "",
            *table(["functions", "deploys/s", "one deploy (median / p99)", "redeploy, unchanged",
                    "`updraft ls --json` (median / p99)", "`GET /api/v1/functions` (median / p99)"], "rrrrrr",
                   [[r["n"], f"{r['deploys_per_s']:.1f}", fmt_ms2(r["deploy_lat"]), fmt_ms(r["redeploy"]),
                     fmt_ms2(r["ls_cli"]), fmt_ms2(r["ls_api"])]]),
            "", NO_GOAL, *targets(r)]


def targets(r):
    scale = "" if r["n"] >= 10_000 else f" (measured with {r['n']:,} functions, not the target's 10,000)"
    ls_ok = r["ls_cli"][0] < 200
    dep_ok = r["deploys_per_s"] >= 50
    return [f"- Target (issue 14): `updraft ls` under 200 ms: **{'met' if ls_ok else 'NOT met'}** "
            f"(median {fmt_ms(r['ls_cli'][0])}){scale}.",
            f"- Target (issue 14): ≥ 50 deploys/s with 4 clients: **{'met' if dep_ok else 'NOT met'}** "
            f"({r['deploys_per_s']:.1f}/s with {r['parallel']}){scale}."]
