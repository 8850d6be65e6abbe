"""Section 12: `snapshot = true` (issue 14): a python3 handler that imports a dozen heavy standard
modules at init, started from a snapshot template, against the same handler started afresh and a
hello, all cold after scale-to-zero, in the same run.

Each function goes cold fast (idle_timeout 1 s, max_instances 1). One warm-up request first: for
the snapshot function it starts the template (its init), which stays while instances come and go.
Then each rep waits for `live_instances` to reach 0 and times the next request on a pre-opened
keep-alive connection to the function URL."""

import os

from ..driver import connect, say, write_app
from ..figures import fmt_ms2, med_p99, met, table

TITLE = "12. Snapshots: a heavy init, started from a template (`snapshot = true`)"

HEAVY_IMPORTS = ("argparse", "asyncio", "concurrent.futures", "csv", "decimal", "difflib",
                 "email.mime.multipart", "fractions", "http.server", "json", "logging.handlers",
                 "multiprocessing.pool", "sqlite3", "ssl", "statistics", "tarfile", "unittest",
                 "urllib.request", "xml.etree.ElementTree", "zipfile")
HELLO = "def handler(event, context):\n    return {'statusCode': 200, 'body': 'ok'}\n"
HEAVY = "".join(f"import {m}\n" for m in HEAVY_IMPORTS) + HELLO

VARIANTS = (
    ("hello", HELLO, False),
    ("heavy imports", HEAVY, False),
    ("heavy imports, snapshot = true", HEAVY, True),
)


def app(i, text, snapshot):
    name = f"bench-snap-{i}"
    body = ('runtime = "python3"\nhandler = "app.handler"\ncode = "code"\nurl = "public"\n'
            f'env = {{ BENCH_REV = "{os.getpid()}" }}\n'
            + ("snapshot = true\n" if snapshot else "")
            + f'\n[functions.{name}.scaling]\nidle_timeout = "1s"\nmax_instances = 1\n')
    return write_app(name, {name: body}, code_files={"app.py": text}), name


def run(ctx):
    srv = ctx.server
    reps = 3 if ctx.quick else 15
    fns = []
    for i, (what, text, snapshot) in enumerate(VARIANTS):
        d, fn = app(i, text, snapshot)
        srv.deploy(d)
        fns.append((what, fn))
    times = {what: [] for what, _ in fns}
    for what, fn in fns:
        srv.invoke(fn, what=f"{what}: warm-up")
    # Interleaved, so that load hits every variant alike.
    for _ in range(reps):
        for what, fn in fns:
            srv.wait_zero(fn)
            conn = connect(srv.port)
            times[what].append(srv.repeat(fn, conn, "cold after zero", (0,))[0])
            conn.close()
    rows = [{"what": what, "cold": med_p99(times[what])} for what, _ in fns]
    hello, snap = rows[0]["cold"][0], rows[2]["cold"][0]
    ratio = snap / hello if hello > 0 else float("inf")
    say("snapshot: " + ", ".join(f"{r['what']} {fmt_ms2(r['cold'])}" for r in rows) + f"; ratio {ratio:.2f}")
    return {"rows": rows, "reps": reps, "ratio": ratio, "imports": len(HEAVY_IMPORTS)}


def render(r):
    out = [f"Each cell: median / p99 over {r['reps']} cold starts after scale-to-zero (request → response "
           f"on a pre-opened keep-alive connection to the function URL). 'heavy imports': the hello with "
           f"{r['imports']} standard modules imported at init (asyncio, email, http.server, sqlite3, ssl, "
           "unittest, xml …). The snapshot function's template ran that init once, at its first request "
           "(the warm-up, not counted); each instance is forked from it.", ""]
    out += table(["python3 function", "cold start"], "lr",
                 [[row["what"], fmt_ms2(row["cold"])] for row in r["rows"]])
    out += ["", f"- Target (issue 14): a handler importing a dozen heavy standard modules, with "
            f"`snapshot = true`, starts within 1.5× of a hello: {met(r['ratio'] <= 1.5)} "
            f"({r['ratio']:.2f}× at the median)."]
    return out
