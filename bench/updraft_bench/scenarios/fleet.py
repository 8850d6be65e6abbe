"""The measurement sections 5 (density) and 6 (control) both read, made once a run: one fresh
server, N single-function apps (half python3, half wasm when the C fixture is there; N is
`bench/run --fleet N`, 10,000 by default as issue 14's targets say), deployed a few at a time,
then listed, then some of them invoked and left warm."""

import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor

from ..driver import HANDLERS, ROOT, WORK, Broken, Server, descendants, idle_cpu_percent, rss_kb, say, write_app
from ..figures import fmt_ms, med, med_p99

DENSITY_COMPONENT = ROOT / "tests" / "fixtures" / "wasm" / "c" / "handler.wasm"


def measure(ctx):
    return ctx.once("fleet", _measure)


def custom_section(name, payload):
    """A WebAssembly custom section (id 0): valid anywhere in a component."""
    def leb(n):
        out = bytearray()
        while True:
            b = n & 0x7F
            n >>= 7
            out.append(b | (0x80 if n else 0))
            if not n:
                return bytes(out)
    body = leb(len(name)) + name.encode() + payload
    return b"\x00" + leb(len(body)) + body


def write_apps(n):
    """(app dirs, wasm function names, python3 function names): n single-function apps."""
    code = WORK / "apps" / "density-code"
    if code.exists():
        shutil.rmtree(code)
    code.mkdir(parents=True)
    (code / "app.py").write_text(HANDLERS["python3"][2])
    # Half the functions are wasm: each its own component (the C fixture
    # with a custom section naming it), so none shares another's compiled code.
    wasm_src = DENSITY_COMPONENT.read_bytes() if DENSITY_COMPONENT.exists() else None
    dirs, wasm_names, py_names = [], [], []
    for i in range(n):
        name = f"bench-d{i:05}"
        if wasm_src is not None and i % 2 == 1:
            body, files = 'runtime = "wasm"\ncode = "code/fn.wasm"\n', {
                "fn.wasm": wasm_src + custom_section("updraft-bench", name.encode())}
            wasm_names.append(name)
        else:
            body, files = 'runtime = "python3"\nhandler = "app.handler"\ncode = "../../density-code"\n', {}
            py_names.append(name)
        dirs.append(write_app(name, {name: body + 'url = "public"'}, code_files=files, under="apps/density"))
    return dirs, wasm_names, py_names


def _measure(ctx):
    q = ctx.quick
    n = ctx.fleet
    warm_n = min(n // 4, 5 if q else 100)
    parallel = 4
    srv = Server(ctx.updraft, "data-density")
    try:
        time.sleep(1)
        rss_empty = rss_kb(srv.pid)
        dirs, wasm_names, py_names = write_apps(n)

        def deploy(d):
            t0 = time.perf_counter()
            srv.deploy(d)
            return (time.perf_counter() - t0) * 1000

        t0 = time.perf_counter()
        with ThreadPoolExecutor(parallel) as ex:
            lat = list(ex.map(deploy, dirs))
        deploy_wall = time.perf_counter() - t0
        fns = srv.functions()
        if len(fns) != n:
            raise Broken(f"control: deployed {n} functions, the server lists {len(fns)}")
        ls_cli, ls_api = [], []
        for _ in range(3 if q else 10):
            t1 = time.perf_counter()
            out = srv.cli("ls", "--json").stdout
            ls_cli.append((time.perf_counter() - t1) * 1000)
            t1 = time.perf_counter()
            srv.functions()
            ls_api.append((time.perf_counter() - t1) * 1000)
        if len(json.loads(out)) != n:
            raise Broken("control: `updraft ls --json` does not list every function")
        # one more deploy when n already exist (unchanged: reports the current version)
        redeploy = [deploy(dirs[0]) for _ in range(3)]
        time.sleep(2)
        rss_idle = rss_kb(srv.pid)
        cpu_idle = idle_cpu_percent(srv.pid, 1 if q else 3)
        names = (wasm_names or py_names)[:warm_n]
        t1 = time.perf_counter()
        with ThreadPoolExecutor(parallel) as ex:
            list(ex.map(lambda fn: srv.invoke(fn, what="density"), names))
        warm_wall = time.perf_counter() - t1
        time.sleep(2)
        live = sum(f["live_instances"] for f in srv.functions().values())
        rss_warm = rss_kb(srv.pid)
        cpu_warm = idle_cpu_percent(srv.pid, 1 if q else 3)
        kids = descendants(srv.pid)
        kids_rss = sum(rss_kb(p) for p in kids)
        r = {
            "n": n, "warm_n": warm_n, "parallel": parallel,
            "deploy_lat": med_p99(lat), "deploys_per_s": n / deploy_wall, "deploy_wall_s": deploy_wall,
            "redeploy": med(redeploy),
            "ls_cli": med_p99(ls_cli), "ls_api": med_p99(ls_api),
            "rss_empty_mb": rss_empty / 1024, "rss_idle_mb": rss_idle / 1024, "rss_warm_mb": rss_warm / 1024,
            "live": live, "instance_procs": len(kids), "instances_rss_mb": kids_rss / 1024,
            "warm_wall_s": warm_wall, "cpu_idle": cpu_idle, "cpu_warm": cpu_warm,
            "n_wasm": len(wasm_names), "n_python": len(py_names), "warm_kind": "wasm" if wasm_names else "python3",
        }
        say(f"control: {r['deploys_per_s']:.1f} deploys/s, ls {fmt_ms(r['ls_cli'][0])}; density: "
            f"{r['rss_idle_mb']:.0f} MB idle, {r['rss_warm_mb']:.0f} MB with {live} warm")
        return r
    finally:
        srv.stop()


def mix(r):
    """What the N functions were, for the sections' first line."""
    if r.get("n_wasm"):
        return f"{r['n_python']} python3 + {r['n_wasm']} wasm (each its own component)"
    return f"{r['n']} python3"


NO_GOAL = "- Goal: none fixed in the issues yet; recorded as the reference for later runs."
