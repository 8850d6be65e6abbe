"""The `wasmtime` CLI sections 2 and 3 compare against: the one on PATH, else bench/run's own
build of wasmtime-cli (the version Updraft embeds) in target/bench-wasmtime/bin/wasmtime. A full
run builds it there when it is missing, once (about 20 minutes on 2 cores); --quick and
--no-wasmtime-build never build, they use PATH or a build already there.

The build has only what the bench runs, `wasmtime serve` and `wasmtime compile` with Cranelift
at its default optimisation and the pooling allocator: the crates it compiles are most of those
of Updraft's own build (wasmtime, Cranelift, wasmtime-wasi, wasmtime-wasi-http, tokio, hyper),
without the CLI's other subcommands and proposals (wast, explore, objdump, wizer, winch, wasi-nn,
...). Its own target dir keeps it apart from Updraft's builds."""

import json
import os
import shutil
import subprocess
import sys
import time

from .driver import ROOT, WORK, say

# Updraft's wasmtime (Cargo.toml), and the newest wasmtime-cli this Rust builds.
VERSION = "48.0.8"
# `serve` needs `run` (the CLI's shared run options: -S, --allow-precompiled) and, in 48.0.8,
# `component-model-async` (serve.rs uses `futures` and the wasi-http p3 handler without a cfg; with
# it, serve also offers WASIp3 as the default CLI does); `serve` brings wasi-http and
# component-model, `compile` brings cranelift. `clap/default` (on in the default CLI) is what makes
# `--help` and clap's error messages say anything.
FEATURES = ("run", "serve", "compile", "cranelift", "component-model", "component-model-async", "wasi-http",
            "pooling-allocator", "parallel-compilation", "clap/default")
CACHE = ROOT / "target" / "bench-wasmtime"
BUILD_DIR = ROOT / "target" / "bench-wasmtime-build"
CACHED = CACHE / "bin" / "wasmtime"
LOG = WORK / "wasmtime-cli-build.log"


def install_cmd():
    return ["cargo", "install", "wasmtime-cli", "--version", VERSION, "--locked", "--no-default-features",
            "--features", ",".join(FEATURES), "--root", str(CACHE)]


# How the CLI is had, for skip messages.
HINT = f"a full `bench/run` builds it into target/bench-wasmtime; or put `wasmtime` {VERSION} on PATH"


def rel(path):
    """`path` relative to the checkout when it is in it (for messages)."""
    try:
        return path.relative_to(ROOT)
    except ValueError:
        return path


def wasmtime_path(ctx):
    """The `wasmtime` to run, or None (wasmtime_status says why)."""
    return wasmtime_status(ctx)[0]


def wasmtime_status(ctx):
    """(path of the `wasmtime` CLI or None, why not): the one on PATH, else the cached build,
    built first when missing unless the run is --quick or --no-wasmtime-build. Once a run."""
    return ctx.once("wasmtime-cli", _find)


def is_cached(path):
    return path is not None and os.path.realpath(path) == os.path.realpath(CACHED)


def describe(path):
    """Which `wasmtime` a section ran, for its text: its `--version` and where it came from."""
    try:
        r = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
        version = (r.stdout.strip().splitlines() or ["?"])[0]
    except (OSError, subprocess.SubprocessError):
        version = "?"
    if is_cached(path):
        return (f"`{version}`, bench/run's build in target/bench-wasmtime (wasmtime-cli with "
                f"`--no-default-features --features {','.join(FEATURES)}`, Cranelift at its default optimisation)")
    return f"`{version}` from PATH"


def _installed():
    """(version, features) target/bench-wasmtime holds, from cargo install's record, or None."""
    try:
        record = json.loads((CACHE / ".crates2.json").read_text())
    except (OSError, ValueError):
        return None
    for key, v in record.get("installs", {}).items():
        name, _, rest = key.partition(" ")
        if name == "wasmtime-cli" and "wasmtime" in v.get("bins", []):
            return rest.split(" ", 1)[0], set(v.get("features", []))
    return None


def _find(ctx):
    on_path = shutil.which("wasmtime")
    if on_path:
        say(f"wasmtime CLI: {on_path} (on PATH)")
        return on_path, None
    build = not ctx.quick and getattr(ctx, "wasmtime_build", True)  # cli.py sets it (--no-wasmtime-build)
    installed = _installed()
    current = CACHED.exists() and installed == (VERSION, set(FEATURES))
    if CACHED.exists() and (current or not build):
        stale = "" if current else (f" (not wasmtime-cli {VERSION} with the features wasmtime_cli.py asks for; "
                                    "a full run rebuilds it)")
        say(f"wasmtime CLI: {rel(CACHED)}, built by bench/run{stale}")
        return str(CACHED), None
    if not build:
        why = "--quick" if ctx.quick else "--no-wasmtime-build"
        return None, (f"the `wasmtime` CLI is neither on PATH nor in target/bench-wasmtime, and {why} does not "
                      f"build it ({HINT})")
    other = f"not on PATH, and {rel(CACHED)} is not wasmtime-cli {VERSION} with the features below"
    return _build(other if CACHED.exists() else "not on PATH nor built yet")


def _build(why):
    if not shutil.which("cargo"):
        return None, f"the `wasmtime` CLI is not on PATH, and there is no `cargo` to build it ({HINT})"
    cmd = install_cmd()
    env = dict(os.environ, CARGO_TARGET_DIR=str(BUILD_DIR))
    say(f"wasmtime CLI: {why}; building wasmtime-cli {VERSION} into "
        f"{rel(CACHE)} (once, about 20 min on 2 cores; its output also in {rel(LOG)})")
    say(f"$ CARGO_TARGET_DIR={rel(BUILD_DIR)} " + " ".join(cmd))
    WORK.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    last_error = None
    with open(LOG, "w") as log:
        try:
            p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, errors="replace")
        except OSError as e:
            return None, f"could not run cargo to build the `wasmtime` CLI: {e} ({HINT})"
        for line in p.stdout:
            sys.stderr.write(line)
            log.write(line)
            if line.startswith("error"):
                last_error = last_error or line.strip()
        rc = p.wait()
    took = time.monotonic() - t0
    if rc != 0 or not CACHED.exists():
        why = last_error or f"exit status {rc}"
        say(f"wasmtime CLI: the build failed after {took / 60:.1f} min: {why}; see {LOG}")
        return None, (f"building the `wasmtime` CLI failed ({why[:200]}; see {rel(LOG)}), "
                      f"and none is on PATH")
    say(f"wasmtime CLI: built {rel(CACHED)} in {took / 60:.1f} min")
    return str(CACHED), None
