"""`bench/run`: parse the options, build, run the chosen scenarios against one server, report."""

import argparse
import json
import shutil
import sys
import time

from . import __doc__ as USAGE
from .driver import WORK, Broken, Context, Server, build, say
from .report import Run, report, write_benchmarks
from .scenarios import SCENARIOS
from .wasmtime_cli import wasmtime_status


def main():
    ap = argparse.ArgumentParser(description=USAGE, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: short, small; exit 1 if a scenario breaks")
    ap.add_argument("--write", action="store_true",
                    help="rewrite BENCHMARKS.md with this run's tables (with --only: just those sections)")
    ap.add_argument("--only", help="comma-separated scenarios: " + ",".join(SCENARIOS))
    ap.add_argument("--note", help="a sentence written above the tables (e.g. about the machine's load)")
    ap.add_argument("--updraft", help="use this updraft binary instead of building one")
    ap.add_argument("--no-fixture-build", action="store_true", help="use tests/fixtures/provided-rust/build as it is")
    ap.add_argument("--no-wasmtime-build", action="store_true",
                    help="do not build the `wasmtime` CLI of sections 2 and 3 when it is missing: use the one on "
                         "PATH or in target/bench-wasmtime, else skip their wasm rows (--quick never builds it)")
    ap.add_argument("--fleet", type=int, metavar="N",
                    help="functions the density and control scenarios deploy (default 10,000; 20 with --quick)")
    args = ap.parse_args()
    chosen = list(SCENARIOS) if not args.only else [s.strip() for s in args.only.split(",")]
    for s in chosen:
        if s not in SCENARIOS:
            ap.error(f"unknown scenario {s!r}; expected some of {', '.join(SCENARIOS)}")
    if not shutil.which("wrk"):
        sys.exit("bench: `wrk` is not installed: apt-get install -y wrk")
    if args.write and args.quick:
        ap.error("--write records a full run; drop --quick")

    WORK.mkdir(parents=True, exist_ok=True)
    updraft, hyper = build(args)
    ctx = Context(args.quick, updraft, hyper)
    ctx.fleet = args.fleet or (20 if args.quick else 10_000)
    ctx.wasmtime_build = not (args.quick or args.no_wasmtime_build)
    if {"wasm", "cold"} & set(chosen):
        wasmtime_status(ctx)  # found (or built, when missing) now, before anything is measured
    run = Run(args)
    results, broken = {}, []
    ctx.server = Server(updraft, "data")
    try:
        for s in chosen:
            say(f"scenario {s}")
            s0 = time.monotonic()
            try:
                results[s] = SCENARIOS[s].run(ctx)
            except Broken as e:
                say(f"scenario {s} BROKE: {e}")
                results[s] = {"error": str(e)}
                broken.append(s)
            say(f"scenario {s}: {time.monotonic() - s0:.1f} s")
    finally:
        ctx.server.stop()
    took = run.finish()
    run_lines = run.lines()
    text = report(results, run_lines)
    print(text)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(run.started)) + ("-quick" if args.quick else "")
    (WORK / f"results-{stamp}.md").write_text(text)
    (WORK / f"results-{stamp}.json").write_text(json.dumps(results, indent=1, default=str))
    if args.write:
        if broken:
            say("not writing BENCHMARKS.md: scenarios broke: " + ", ".join(broken))
        else:
            write_benchmarks(results, text, run_lines, args.only)
    say(f"done in {took:.0f} s" + (f"; BROKEN: {', '.join(broken)}" if broken else ""))
    return 1 if broken else 0
