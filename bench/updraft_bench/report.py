"""The report: the lines that say where, when and how a run was made, each scenario's section,
and BENCHMARKS.md (rewritten by a full run, section by section by an --only run)."""

import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .driver import ROOT, say
from .scenarios import REPORT_ORDER, SCENARIOS

BENCHMARKS = ROOT / "BENCHMARKS.md"

BENCHMARKS_HEAD = """# Benchmarks

Produced by `bench/run --write` (issue 5): Updraft and its baselines measured side
by side on the same machine in the same run; ratios are taken against the
baseline of the same run. Timing never goes into tests; it goes here.

## How to reproduce

```sh
apt-get install -y wrk          # load generator (Debian); hyperfine not needed
# the wasm baseline (`wasmtime serve`, `wasmtime compile`): the `wasmtime` on PATH, else a full
# bench/run builds wasmtime-cli 48.0.8 into target/bench-wasmtime when it is missing (once, ~20 min)
bench/run                       # full run, prints the tables (under 15 min on 2 cores)
bench/run --write --note "..."  # ... and rewrites this file
bench/run --quick               # smoke run of every scenario (scripts/test runs it)
bench/run --only warm,cold      # some scenarios
bench/run --only sandbox --write  # rewrites only those sections here, saying which run made them
bench/run --quick --updraft target/debug/updraft  # with a binary already built
```

`bench/run` measures the `release` profile, which keeps line tables for
profilers; what ships is the `dist` profile (`cargo build --profile dist`:
release without debug info, stripped), the same code. It builds in release
mode what it needs (`updraft` into target/bench, the plain hyper baseline
bench/hyper-baseline/ into target/bench-hyper, the `provided-rust` fixture), runs `updraft server` on loopback with its data under
bench/.work/, and drives load with wrk, loopback only. When no `wasmtime` is on
PATH, a full run also builds the one sections 2 and 3 compare against, once, into
target/bench-wasmtime: wasmtime-cli 48.0.8 with only what they run (`serve`,
`compile`, the pooling allocator), in its own target dir
target/bench-wasmtime-build; `--quick` and `--no-wasmtime-build` never build it,
and skip the wasm rows when there is none. Run it on a quiet machine:
every other process competes for the same cores as the server, its instances and
wrk.

`bench/run` is the command of the Python package bench/updraft_bench/ (standard
library only): one module per scenario in `scenarios/` (`run` measures, `render`
writes its section), and the driver they share: `driver.py` (building, the server
under test, processes, the apps deployed), `load.py` (wrk, and targets measured
side by side, taking turns), `figures.py` (statistics, number formats, tables) and
`report.py` (which writes this file).

## Latest full run

"""


def machine():
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    tools = []
    for tool, flag in (("wrk", "-v"), ("python3", "--version"), ("node", "--version"), ("rustc", "--version")):
        if shutil.which(tool):
            r = subprocess.run([tool, flag], capture_output=True, text=True)
            tools.append((r.stdout + r.stderr).strip().splitlines()[0][:60] if (r.stdout + r.stderr).strip() else tool)
    return (f"{os.cpu_count()} CPUs (`nproc`: {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()}), "
            f"{model}{mem}; Linux {platform.release()}; " + "; ".join(tools))


def cpu_times():
    """(steal, total) jiffies of all CPUs from /proc/stat, or None."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal [guest guest_nice: already in user/nice]
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


class Run:
    """What the report says of a run: its options, start, duration and CPU steal."""

    def __init__(self, args):
        self.args = args
        self.started = time.time()
        self.t0 = time.monotonic()
        self.cpu_before = cpu_times()
        self.took = None

    def finish(self):
        self.took = time.monotonic() - self.t0
        return self.took

    def lines(self):
        """Where, when and how the run was made: the lines above its tables."""
        args = self.args
        when = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(self.started))
        lines = [f"Run: {when}, took {self.took / 60:.1f} min"
                 f"{' (--quick: smoke figures, not for comparison)' if args.quick else ''}.",
                 f"Machine: {machine()}.", f"Command: `{shlex.join(['bench/run'] + sys.argv[1:])}`"]
        after = cpu_times()
        if self.cpu_before and after and after[1] > self.cpu_before[1]:
            steal = (after[0] - self.cpu_before[0]) / (after[1] - self.cpu_before[1])
            lines.append(f"CPU time stolen by the hypervisor during the run: {steal:.1%} (from /proc/stat; on a "
                         "shared host, figures from runs with much steal are noisier and slower).")
        try:
            rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                 text=True).stdout.strip()
            dirty = subprocess.run(["git", "status", "--porcelain", "--", "src", "crates"], cwd=ROOT,
                                   capture_output=True, text=True).stdout.strip()
            lines.append(f"Updraft: commit {rev}{' + uncommitted changes in src/ crates/' if dirty else ''}.")
        except OSError:
            pass
        if args.note:
            lines += ["", f"**Note:** {args.note}"]
        return lines


def section(key, r):
    """A scenario's section: its heading, then its tables (or why it broke)."""
    lines = [f"## {SCENARIOS[key].TITLE}", ""]
    if isinstance(r, dict) and "error" in r:
        lines.append(f"**BROKEN**: {r['error']}")
    else:
        lines += SCENARIOS[key].render(r)
    return lines


def report(results, run_lines):
    lines = list(run_lines)
    for key in REPORT_ORDER:
        if key in results:
            lines += [""] + section(key, results[key])
    return "\n".join(lines) + "\n"


def merge_sections(old, results, run_lines):
    """BENCHMARKS.md text `old` with the sections of `results` replaced (or, when new, added
    after the last numbered section), each saying which run produced it; the rest is kept."""
    blocks, cur = [], []
    for line in old.splitlines():
        if line.startswith("## ") and cur:
            blocks.append(cur)
            cur = []
        cur.append(line)
    blocks.append(cur)
    provenance = ["Measured on its own, not in the full run above:", ""] + [f"- {line}" for line in run_lines if line]
    for key in REPORT_ORDER:
        if key not in results:
            continue
        sec = section(key, results[key])
        new = sec[:2] + provenance + [""] + sec[2:] + [""]
        at = next((i for i, b in enumerate(blocks) if b[0] == sec[0]), None)
        if at is not None:
            blocks[at] = new
            continue
        numbered = [i for i, b in enumerate(blocks) if re.match(r"## \d+\. ", b[0])]
        if numbered:
            blocks.insert(numbered[-1] + 1, new)
        else:
            blocks.append([""] + new)
    return "\n".join(line for b in blocks for line in b).rstrip("\n") + "\n"


def write_benchmarks(results, text, run_lines, only):
    """BENCHMARKS.md from this run: rewritten whole (`text` under BENCHMARKS_HEAD), or with
    --only, just the sections of `results`."""
    if only and BENCHMARKS.exists():
        BENCHMARKS.write_text(merge_sections(BENCHMARKS.read_text(), results, run_lines))
        say(f"updated the section(s) {', '.join(results)} of BENCHMARKS.md")
    else:
        BENCHMARKS.write_text(BENCHMARKS_HEAD + text)
        say("wrote BENCHMARKS.md")
