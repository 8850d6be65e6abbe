"""Section 2: warm throughput of each wasm fixture component under Updraft vs `wasmtime serve`
as it ships and vs `wasmtime serve` with Updraft's pooling settings, wrk at c=16, 64. The
`wasmtime` CLI is the one on PATH, else bench/run's own build (wasmtime_cli.py: a full run
builds it when missing); without either the section is skipped, saying why. Also the wasm
helpers section 3 uses."""

import hashlib
import os
import subprocess
import tomllib
from pathlib import Path

from ..driver import ROOT, WORK, Background, Broken, free_port, run as run_cmd, say
from ..figures import fmt_ms, fmt_ratio, fmt_rps, met, ratio, table
from ..load import interleaved, warm_up
from ..wasmtime_cli import describe, wasmtime_status

TITLE = "2. Warm throughput, wasm runtime vs `wasmtime serve`"

# `wasmtime serve` told to reset linear memories and tables as Updraft's engine
# does (crates/runtime-wasm/src/engine.rs: PAGEMAP_SCAN, 8 MiB / 1 MiB kept
# resident): shown beside the stock baseline, so the platform's own cost per
# request can be read apart from that engine setting.
WASMTIME_TUNED = ["-O", "pooling-memory-keep-resident=8388608", "-O", "pooling-table-keep-resident=1048576",
                  "-O", "pooling-pagemap-scan=auto"]


def wasm_manifests():
    manifests = []
    for top in (ROOT / "tests" / "fixtures", ROOT / "examples"):
        for d, subdirs, files in os.walk(top):
            subdirs[:] = sorted(x for x in subdirs if x not in ("node_modules", "target", ".git"))
            if "updraft.toml" in files:
                manifests.append(Path(d) / "updraft.toml")
    return manifests


def find_wasm_functions():
    """(app dir, [(function name, component path), ...]) of the first app in the
    fixtures/examples with wasm functions, the JavaScript one first."""
    for m in wasm_manifests():
        try:
            spec = tomllib.loads(m.read_text())
        except (OSError, ValueError):
            continue
        found = []
        for fn, f in sorted(spec.get("functions", {}).items(), key=lambda kv: ("js" not in kv[0], kv[0])):
            if f.get("runtime") == "wasm":
                code = m.parent / f.get("code", "")
                if code.is_dir():
                    wasm = sorted(code.glob("*.wasm"))
                    code = wasm[0] if wasm else code
                found.append((fn, code))
        if found:
            return m.parent, found
    return None


def wasm_status(ctx):
    """(available, why-not, (app dir, function name, component path)) for the wasm runtime under
    test: the first wasm function of the fixtures/examples, deployed on ctx.server once a run."""
    return ctx.once("wasm", _deploy_wasm)


def _deploy_wasm(ctx):
    found = find_wasm_functions()
    if not found:
        return (False, "no `runtime = \"wasm\"` function in tests/fixtures or examples "
                       "(the wasm runtime is being built on branch `wasm`, issue 4)", None)
    app, fns = found
    fn, comp = fns[0]
    if not comp.exists():
        subprocess.run([str(ROOT / "scripts" / "fixtures"), app.name], cwd=ROOT)
    r = ctx.server.cli("deploy", app, check=False)
    if r.returncode != 0:
        return False, f"deploying the wasm fixture {app.relative_to(ROOT)} failed: {r.stderr.strip()[-300:]}", None
    return True, None, (app, fn, comp)


def wasmtime_precompiled(wasmtime, component):
    """`wasmtime compile` of a component, once per content and `wasmtime` binary: `wasmtime
    serve` then starts from compiled code, as Updraft does from the artifact it compiled at deploy."""
    exe = os.stat(wasmtime)  # a cwasm loads only into the wasmtime (and settings) that compiled it
    binary = f"{os.path.realpath(wasmtime)} {exe.st_size} {exe.st_mtime_ns}".encode()
    sha = hashlib.sha256(Path(component).read_bytes() + binary).hexdigest()[:16]
    out = WORK / "wasmtime-cwasm" / f"{sha}.cwasm"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".tmp{os.getpid()}")
        run_cmd([wasmtime, "compile", str(component), "-o", str(tmp)])
        tmp.rename(out)
    return out


def wasmtime_serve_cmd(wasmtime, component, port, options=()):
    """`wasmtime serve` (the CLI at path `wasmtime`) on `component`, compiled first, at loopback `port`."""
    return [wasmtime, "serve", "-S", "cli", "--allow-precompiled", *options,
            "--addr", f"127.0.0.1:{port}", str(wasmtime_precompiled(wasmtime, component))]


def wasmtime_serve(wasmtime, component, tuned):
    """A running `wasmtime serve` on `component`: (process, port)."""
    port = free_port()
    name = f"wasmtime-serve-{component.stem}{'-tuned' if tuned else ''}"
    p = Background(name, wasmtime_serve_cmd(wasmtime, component, port, WASMTIME_TUNED if tuned else []))
    try:
        p.wait_http(port, "/", timeout=60)
    except Broken:
        p.stop()
        raise
    return p, port


def run(ctx):
    wasmtime, why = wasmtime_status(ctx)
    if not wasmtime:
        return {"skipped": why}
    ok, why, _ = wasm_status(ctx)
    if not ok:
        return {"skipped": why}
    _, fns = find_wasm_functions()
    srv = ctx.server
    secs, reps = ctx.timing((5, 5))
    rows = []
    for fn, comp in fns:
        servers = {}
        try:
            for key in ("wasmtime", "tuned"):
                servers[key] = wasmtime_serve(wasmtime, comp, tuned=key == "tuned")
            targets = {k: f"http://127.0.0.1:{port}/" for k, (_, port) in servers.items()}
            targets["updraft"] = srv.url(fn, "/")
            warm_up(targets, 16, 1)
            for c in (16, 64):
                s = interleaved(targets, c, secs, reps)
                to = {k: ratio(s["updraft"]["rps"], s[k]["rps"]) for k in ("wasmtime", "tuned")}
                rows.append({"function": fn, "component": str(comp.relative_to(ROOT)), "c": c, **s,
                             "ratio": to["wasmtime"], "ratio_tuned": to["tuned"]})
                say(f"wasm {fn} c={c}: updraft {fmt_rps(s['updraft']['rps'])}, wasmtime serve "
                    f"{fmt_rps(s['wasmtime']['rps'])} ({fmt_ratio(to['wasmtime'])}), tuned "
                    f"{fmt_rps(s['tuned']['rps'])} ({fmt_ratio(to['tuned'])})")
                if s["updraft"]["errors"]:
                    raise Broken(f"wasm {fn} c={c}: {s['updraft']['errors']} errors under Updraft")
        finally:
            for p, _ in servers.values():
                p.stop()
    return {"rows": rows, "seconds": secs, "reps": reps, "wasmtime": describe(wasmtime),
            "goal": all((r["ratio"] or 0) >= 1.0 for r in rows)}


def render(r):
    if "skipped" in r:
        return [f"Skipped: {r['skipped']}.", "",
                "- Goal (issue 4): warm throughput ≥ 1.0× `wasmtime serve -S cli` on the same component: not measured yet.",
                tuned_target([])]
    out = ["Each fixture component under Updraft, under `wasmtime serve -S cli` as it ships (the baseline of the "
           "goal), and under `wasmtime serve` with its pooling allocator set as Updraft's engine is ("
           f"`{' '.join(WASMTIME_TUNED)}`: dirtied pages copied back from the memory image when a store ends, "
           "instead of `madvise`d away and faulted in again by the next request). Both `wasmtime serve`s run the "
           "`wasmtime compile`d component with `--allow-precompiled`. wrk -d"
           f"{r['seconds']}s, {r['reps']} run(s) per cell, the three interleaved."
           + (f" The `wasmtime` CLI: {r['wasmtime']}." if r.get("wasmtime") else ""), ""]

    def lat(x):
        return f"{fmt_ms(x['p50'])} / {fmt_ms(x['p99'])}"

    rows = [[f"`{row['function']}`", row["c"], fmt_rps(row["updraft"]["rps"]), fmt_rps(row["wasmtime"]["rps"]),
             fmt_ratio(row["ratio"]), fmt_rps(row["tuned"]["rps"]), fmt_ratio(row["ratio_tuned"]),
             lat(row["updraft"]), lat(row["wasmtime"]), lat(row["tuned"])] for row in r["rows"]]
    out += table(["function", "c", "Updraft req/s", "wasmtime serve req/s", "ratio", "tuned wasmtime serve req/s",
                  "ratio", "Updraft p50 / p99", "wasmtime serve p50 / p99", "tuned p50 / p99"], "lrrrrrrrrr", rows)
    out += ["", f"- Goal (issue 4): ratio to `wasmtime serve` ≥ 1.0 in every row: {met(r['goal'])}. "
            "The ratio to the tuned `wasmtime serve` is what the rest of Updraft's request path (gateway, "
            "scheduler, logs, metering) costs on top of the same engine setting.",
            tuned_target(rows_of(r))]
    return out


def rows_of(r):
    return r.get("rows", [])


def tuned_target(rows):
    """Issue 14: ≥ 1.0× the tuned `wasmtime serve` at c=16 and c=64."""
    ratios = [row.get("ratio_tuned") for row in rows]
    if not ratios or any(x is None for x in ratios):
        return "- Target (issue 14): ≥ 1.0× the tuned `wasmtime serve` in every row: **not measured**."
    ok = all(x >= 1.0 for x in ratios)
    return (f"- Target (issue 14): ≥ 1.0× the tuned `wasmtime serve` in every row: **{'met' if ok else 'NOT met'}** "
            f"(lowest {fmt_ratio(min(ratios))}). The Init Duration target (≤ 50 µs) is judged in section 3, on the cold starts.")
