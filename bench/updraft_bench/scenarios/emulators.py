"""Section 7: the same hello through `cargo lambda watch` (1 and 4 instances) and serverless-offline
(default and in-process) vs through Updraft, wrk at c=16, 64. Each emulator runs only when the user
installed it (bench/run never installs them) and is skipped, saying so, otherwise; an emulator that
fails is reported in its row, and the run goes on."""

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

from ..driver import BENCH, PROVIDED, ROOT, WORK, Background, Broken, descendants, free_port, say, write_app
from ..figures import fmt_ms, fmt_ratio, fmt_rps, ratio, table
from ..load import interleaved, warm_up, wrk

TITLE = "7. Local emulators: `cargo lambda watch` and serverless-offline (optional)"

EMULATORS = BENCH / "emulators"
CL_HELLO = EMULATORS / "cargo-lambda-hello"  # a lambda_http hello crate (own [workspace])
CL_BIN = "updraft-bench-hello"
CL_TARGET = Path(os.environ.get("UPDRAFT_BENCH_EMULATORS_TARGET_DIR", ROOT / "target" / "bench-emulators"))
SLS_HELLO = EMULATORS / "serverless-hello"  # serverless.yml + package.json; the user runs npm install
CARGO_LAMBDA_HINT = "pip install cargo-lambda"
SLS_HINT = "cd bench/emulators/serverless-hello && npm install"
EMU_BUILD_S = 1800  # bound on building the hello crate (a first build downloads and compiles ~110 crates)
EMU_START_S = 120  # bound on an emulator's start, until the hello route answers 200


class EmulatorBroken(Exception):
    """An emulator (not Updraft) failed: reported for that emulator; the run goes on."""


def log_tail(path, n=600):
    """The end of a log on one line (from its first `error` on, when it has one)."""
    try:
        text = Path(path).read_text(errors="replace").strip()
    except OSError:
        return ""
    m = re.search(r"^\s*error\b", text, re.M | re.I)
    text = text[m.start():][:n] if m else text[-n:]
    return " ".join(text.split())


def alive(pids):
    out = []
    for pid in pids:
        try:
            os.kill(pid, 0)
            out.append(pid)
        except (ProcessLookupError, PermissionError):
            pass
    return out


class EmulatorProcess(Background):
    """An emulator started in its own process group, on loopback; stop() ends the whole group."""

    error = EmulatorBroken

    def __init__(self, name, cmd, cwd, env):
        say("$ " + shlex.join(cmd))
        super().__init__(name, cmd, log=f"emulator-{name}.log", cwd=cwd, env=env, start_new_session=True)

    def failure(self, why):
        return f"{self.name} {why}; log: {self.log_path.relative_to(ROOT)}: {log_tail(self.log_path, 300)}"

    def wait_ready(self, port, path, timeout=EMU_START_S):
        """Seconds until GET path answers 200 "ok"; EmulatorBroken if it answers something else
        with a 200, exits, or the bound passes."""
        def ok(status, body):
            if status == 200 and body.strip() != b"ok":
                raise EmulatorBroken(f"{self.name}: GET {path} answered 200 but not \"ok\": {body[:300]!r}")
            return status == 200

        return self.wait_http(port, path, timeout=timeout, accept=ok, interval=0.2, request_timeout=10)

    def stop(self, grace=10):
        pids = descendants(self.proc.pid)
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        # Instances an emulator starts in their own sessions (cargo lambda watch does) are not in
        # the group: end any of them still there, by pid.
        for sig in (signal.SIGTERM, signal.SIGKILL):
            left = alive(pids)
            for pid in left:
                try:
                    os.kill(pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
            for _ in range(30):
                if not alive(left):
                    break
                time.sleep(0.1)
        self.log.close()


def emu_compare(ctx, label, emu_url, updraft_url):
    """The same hello through an emulator and through Updraft: wrk at c=16 and 64, interleaved."""
    secs, reps = ctx.timing((5, 3))

    def load(who, url, c, seconds):
        if who == "updraft":
            return wrk(url, c, seconds)
        try:
            return wrk(url, c, seconds)
        except (Broken, subprocess.TimeoutExpired) as e:
            raise EmulatorBroken(f"{label}: wrk failed: {e}")

    targets = {"emulator": emu_url, "updraft": updraft_url}
    warm_up(targets, 64, 1 if ctx.quick else 2, load=load)
    rows = []
    for c in (16, 64):
        s = interleaved(targets, c, secs, reps, load=load)
        e_rps, u_rps = s["emulator"]["rps"], s["updraft"]["rps"]
        r = ratio(u_rps, e_rps)
        rows.append({"c": c, "emulator": s["emulator"], "updraft": s["updraft"], "ratio": r, "above": u_rps > e_rps})
        say(f"emulators: {label} c={c}: {e_rps:.0f} req/s p50 {fmt_ms(s['emulator']['p50'])}; "
            f"updraft {u_rps:.0f} req/s p50 {fmt_ms(s['updraft']['p50'])}; ratio {fmt_ratio(r)}")
        if s["updraft"]["errors"]:
            raise Broken(f"emulators ({label}) c={c}: {s['updraft']['errors']} errors under Updraft")
    return rows


def emu_variant(ctx, label, mode, name, cmd, cwd, env, port, path, updraft_url, start_timeout):
    """Start one emulator configuration, measure it against Updraft, stop it: a variant of the table.
    An emulator failure is recorded in the variant (Updraft's own errors raise Broken)."""
    try:
        emu = EmulatorProcess(name, cmd, cwd, env)
        try:
            start_s = emu.wait_ready(port, path, timeout=start_timeout)
            rows = emu_compare(ctx, label, f"http://127.0.0.1:{port}{path}", updraft_url)
        finally:
            emu.stop()
    except EmulatorBroken as e:
        say(f"emulators: {label} BROKE: {e}")
        return {"mode": mode, "broken": str(e)}
    return {"mode": mode, "start_s": start_s, "rows": rows}


def emu_result(ctx, variants, **info):
    measured = [v for v in variants if "rows" in v]
    if not measured:
        raise EmulatorBroken("; ".join(f"{v['mode']}: {v['broken']}" for v in variants))
    secs, reps = ctx.timing((5, 3))
    return dict(info, variants=variants, seconds=secs, reps=reps)


def deploy_hello(srv, app, name):
    """Deploys `app`, whose function `name` is the hello: it must answer 200 "ok"."""
    srv.deploy(app)
    srv.invoke(name, "/", expect=b"ok", exact=True, what="emulators")


def cargo_lambda_status():
    """(version, flags of `cargo lambda watch`, None) or (None, None, why it is skipped)."""
    if not shutil.which("cargo"):
        return None, None, f"`cargo` is not on PATH, nor is `cargo lambda` (install it with `{CARGO_LAMBDA_HINT}`)"
    try:
        r = subprocess.run(["cargo", "lambda", "--version"], capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, None, f"`cargo lambda --version` failed ({e}); install it with `{CARGO_LAMBDA_HINT}`"
    if r.returncode != 0:
        return None, None, (f"`cargo lambda` is not installed (`cargo lambda --version` failed); "
                            f"install it with `{CARGO_LAMBDA_HINT}`")
    try:
        h = subprocess.run(["cargo", "lambda", "watch", "--help"], capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL).stdout
    except (OSError, subprocess.TimeoutExpired):
        h = ""
    return r.stdout.strip().splitlines()[0] if r.stdout.strip() else "cargo-lambda", h, None


def emu_cargo_lambda(ctx):
    version, helptext, why = cargo_lambda_status()
    if why:
        return {"skipped": why}
    srv = ctx.server
    say(f"emulators: {version}: building {CL_HELLO.relative_to(ROOT)} (release) into {CL_TARGET}")
    env = dict(os.environ, CARGO_TARGET_DIR=str(CL_TARGET))
    blog_path = WORK / "emulator-cargo-lambda-build.log"
    t0 = time.monotonic()
    # The build `cargo lambda watch --release` runs itself (a host build into target/release),
    # done here, bounded and before anything is timed, so watch starts on a fresh binary.
    with open(blog_path, "wb") as blog:
        try:
            r = subprocess.run(["cargo", "build", "--release", "--locked", "--bin", CL_BIN], cwd=CL_HELLO, env=env,
                               stdout=blog, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=EMU_BUILD_S)
        except subprocess.TimeoutExpired:
            raise EmulatorBroken(f"building {CL_HELLO.relative_to(ROOT)} took over {EMU_BUILD_S} s")
    if r.returncode != 0:
        raise EmulatorBroken(f"building {CL_HELLO.relative_to(ROOT)} failed ({r.returncode}): {log_tail(blog_path)}")
    build_s = time.monotonic() - t0
    # Updraft runs the very same binary as a `provided.al2023` function behind its function URL.
    name = "bench-emu-rust"
    app = write_app(name, {name: PROVIDED})
    shutil.copy2(CL_TARGET / "release" / CL_BIN, app / "code" / "bootstrap")
    deploy_hello(srv, app, name)
    has_concurrency = "--concurrency" in (helptext or "")
    variants = []
    for n in ((1, 4) if has_concurrency else (1,)):
        port = free_port()
        cmd = ["cargo", "lambda", "watch", "--release", "--locked", "--ignore-changes",
               "--invoke-address", "127.0.0.1", "--invoke-port", str(port)]
        if has_concurrency:
            cmd += ["--concurrency", str(n)]
        mode = f"`--concurrency {n}`" if has_concurrency else "default (1 instance)"
        variants.append(emu_variant(ctx, f"cargo lambda watch ({n} instance{'s' if n > 1 else ''})", mode,
                                    f"cargo-lambda-watch-{n}", cmd, CL_HELLO, env, port, f"/lambda-url/{CL_BIN}/",
                                    srv.url(name, "/"), EMU_START_S + 60))
    out = emu_result(ctx, variants, version=version, build_s=build_s, function=name)
    if not has_concurrency:
        out["note"] = "this `cargo lambda watch` has no `--concurrency` flag: measured with its single instance only"
    return out


def serverless_status():
    """(serverless command, plugin dir, None) or (None, None, why it is skipped)."""
    local = SLS_HELLO / "node_modules" / ".bin" / "serverless"
    sls = str(local) if local.exists() else (shutil.which("serverless") or shutil.which("sls"))
    plugin = SLS_HELLO / "node_modules" / "serverless-offline"
    if not sls:
        return None, None, (f"serverless-offline is not installed (no {local.relative_to(ROOT)} and no `serverless` "
                            f"or `sls` on PATH); install serverless 3 and serverless-offline 13 with `{SLS_HINT}`")
    if not shutil.which("node"):
        return None, None, "`node` is not on PATH (serverless-offline needs Node.js 18 or later)"
    if not (plugin / "package.json").exists():
        return None, None, (f"the serverless-offline plugin is not in {plugin.parent.relative_to(ROOT)} "
                            f"(install it with `{SLS_HINT}`)")
    return sls, plugin, None


def package_version(d):
    try:
        return json.loads((Path(d) / "package.json").read_text()).get("version", "?")
    except (OSError, ValueError):
        return "?"


def emu_serverless(ctx):
    sls, plugin, why = serverless_status()
    if why:
        return {"skipped": why}
    srv = ctx.server
    sls_dir = SLS_HELLO / "node_modules" / "serverless"
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    version = (f"serverless {package_version(sls_dir) if sls_dir.exists() else '(' + sls + ')'}, "
               f"serverless-offline {package_version(plugin)}, Node {node}")
    # Updraft runs the very same handler.js as a `nodejs` function.
    name = "bench-emu-node"
    app = write_app(name, {name: 'runtime = "nodejs"\nhandler = "handler.hello"\ncode = "code"\nurl = "public"'},
                    code_files={"handler.js": (SLS_HELLO / "handler.js").read_text()})
    deploy_hello(srv, app, name)
    try:
        options = (plugin / "src" / "config" / "commandOptions.js").read_text()
    except OSError:
        options = ""
    modes = [("default", [])]
    if "useInProcess" in options:
        modes.append(("`--useInProcess`", ["--useInProcess"]))
    env = dict(os.environ, SLS_TELEMETRY_DISABLED="1", SLS_TRACKING_DISABLED="1", SLS_NOTIFICATIONS_MODE="off",
               SLS_DEPRECATION_DISABLE="*", SLS_INTERACTIVE_SETUP_DISABLE="1")
    variants = []
    for mode, flags in modes:
        ports = [free_port() for _ in range(4)]
        cmd = [sls, "offline", "--host", "127.0.0.1", "--httpPort", str(ports[0]), "--lambdaPort", str(ports[1]),
               "--websocketPort", str(ports[2]), "--albPort", str(ports[3]), *flags]
        variants.append(emu_variant(ctx, f"serverless-offline ({mode})", mode,
                                    f"serverless-offline-{'in-process' if flags else 'default'}", cmd, SLS_HELLO, env,
                                    ports[0], "/", srv.url(name, "/"), EMU_START_S))
    out = emu_result(ctx, variants, version=version, function=name)
    if len(modes) == 1:
        out["note"] = "this serverless-offline has no `--useInProcess`: measured in its default mode only"
    return out


EMULATOR_KINDS = [
    ("cargo_lambda", "`cargo lambda watch --release`", emu_cargo_lambda),
    ("serverless_offline", "serverless-offline", emu_serverless),
]


def run(ctx):
    out = {}
    for key, label, fn in EMULATOR_KINDS:
        t0 = time.monotonic()
        try:
            out[key] = fn(ctx)
        except EmulatorBroken as e:
            say(f"emulators: {label} BROKE: {e}")
            out[key] = {"broken": str(e)}
        if "skipped" in out[key]:
            say(f"emulators: {label} skipped: {out[key]['skipped']}")
        out[key]["wall_s"] = time.monotonic() - t0
    rows = [row for key, _, _ in EMULATOR_KINDS for v in out[key].get("variants", []) for row in v.get("rows", [])]
    out["goal"] = all(row["above"] for row in rows) if rows else None
    return out


def render(r):
    measured = [(label, r[key]) for key, label, _ in EMULATOR_KINDS if r.get(key, {}).get("variants")]
    out = []
    if measured:
        any_r = measured[0][1]
        out += [f"The same hello handler (200 \"ok\") through each local emulator and through Updraft (the same "
                f"binary or handler file, deployed on the server with default scaling, behind its function URL), "
                f"wrk -t2 -cN -d{any_r['seconds']}s --latency, {any_r['reps']} run(s) per cell, interleaved; "
                "median of runs. Emulator output goes to a log file under bench/.work/.", ""]
        rows = []
        for label, e in measured:
            for v in e["variants"]:
                for row in v.get("rows", []):
                    m, u = row["emulator"], row["updraft"]
                    rows.append([label, v["mode"], row["c"], fmt_rps(m["rps"]), fmt_rps(u["rps"]),
                                 fmt_ratio(row["ratio"]), fmt_ms(m["p50"]), fmt_ms(m["p99"]), fmt_ms(u["p50"]),
                                 fmt_ms(u["p99"]), f"{m['errors']} / {u['errors']}"])
        out += table(["emulator", "mode", "c", "emulator req/s", "Updraft req/s", "Updraft / emulator",
                      "emulator p50", "emulator p99", "Updraft p50", "Updraft p99", "errors (emulator / Updraft)"],
                     "llrrrrrrrrr", rows)
        out.append("")
    unmeasured = []
    for key, label, _ in EMULATOR_KINDS:
        e = r.get(key, {})
        if "skipped" in e:
            out.append(f"- {label}: skipped: {e['skipped']}.")
            unmeasured.append(label)
        elif "broken" in e:
            out.append(f"- {label}: **BROKEN**: {e['broken']}")
            unmeasured.append(label)
        elif e.get("variants"):
            starts = ", ".join(f"{v['mode']} {v['start_s']:.1f} s" for v in e["variants"] if "rows" in v)
            extra = f"; hello crate built in {e['build_s']:.0f} s" if "build_s" in e else ""
            out.append(f"- {label}: {e['version']}; start until the first 200 \"ok\": {starts}{extra}."
                       + (f" Note: {e['note']}." if e.get("note") else ""))
            for v in e["variants"]:
                if "broken" in v:
                    out.append(f"- {label} {v['mode']}: **BROKEN**: {v['broken']}")
                    unmeasured.append(f"{label} {v['mode']}")
    out.append("- Issue 5's reference (2 cores, wrk -t2 -c64 -d10s): `cargo lambda watch --release` 2.0k / 4.1k "
               "req/s (1 / 4 instances), serverless-offline 13 (Node 20) 1.6k–2.0k / 4.1k req/s (default / "
               "in-process).")
    if r.get("goal") is None:
        out.append("- Goal (issue 5): Updraft above every local emulator: **not measured** (no emulator installed "
                   "and working here).")
    else:
        worst = min((row["ratio"] for _, e in measured for v in e["variants"] for row in v.get("rows", [])
                     if row["ratio"] is not None), default=None)
        met = ("met" + (" for the emulators measured" if unmeasured else "")) if r["goal"] else "NOT met"
        out.append(f"- Goal (issue 5): Updraft above every local emulator: **{met}** "
                   f"(lowest Updraft / emulator: {fmt_ratio(worst)})"
                   + (f"; not measured: {', '.join(unmeasured)}." if unmeasured else "."))
    out += issue14_targets(r)
    return out


# Issue 14: (emulator key, mode text contains, least Updraft / emulator throughput at c=16 and c=64).
ISSUE14 = (("serverless_offline", "useInProcess", 2.0), ("cargo_lambda", "concurrency 4", 1.5))


def issue14_targets(r):
    out = []
    for key, mode, least in ISSUE14:
        label = next(lbl for k, lbl, _ in EMULATOR_KINDS if k == key)
        variant = next((v for v in r.get(key, {}).get("variants", []) if mode in v["mode"] and v.get("rows")), None)
        if variant is None:
            out.append(f"- Target (issue 14): ≥ {least:g}× {label} ({mode}) at c=16 and c=64: **not measured** "
                       "(not installed or broken here).")
            continue
        ratios = [row["ratio"] for row in variant["rows"] if row["c"] in (16, 64)]
        ok = len(ratios) == 2 and all(x is not None and x >= least for x in ratios)
        out.append(f"- Target (issue 14): ≥ {least:g}× {label} ({variant['mode']}) at c=16 and c=64: "
                   f"**{'met' if ok else 'NOT met'}** ({', '.join(fmt_ratio(x) for x in ratios)}).")
        if key == "cargo_lambda":
            c16 = next((row for row in variant["rows"] if row["c"] == 16), None)
            if c16 and c16["emulator"]["p99"] and c16["updraft"]["p99"]:
                ok = c16["updraft"]["p99"] <= 2 * c16["emulator"]["p99"]
                out.append(f"- Target (issue 14): p99 at c=16 within 2× of {label} ({variant['mode']}): "
                           f"**{'met' if ok else 'NOT met'}** ({fmt_ms(c16['updraft']['p99'])} vs "
                           f"{fmt_ms(c16['emulator']['p99'])}).")
    return out
