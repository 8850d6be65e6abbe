"""Section 4: 0 -> 200 concurrent requests to a python3 function sleeping 100 ms, max_instances = 50."""

import threading
import time

from ..driver import Broken, connect, http_request, say, write_app
from ..figures import fmt_ms, fmt_ms2, med, med_p99, met, pct, table

TITLE = "4. Burst scale-out 0 → 200"

SLEEPY = "import time\n\ndef handler(event, context):\n    time.sleep(0.1)\n    return {'statusCode': 200, 'body': 'slept'}\n"
FN = "bench-burst"


def peak_poller(srv, fn):
    """(peak, stop): a thread polling fn's live instances every 20 ms into peak[0] until stop is set."""
    peak, stop = [0], threading.Event()

    def poll():
        while not stop.is_set():
            try:
                peak[0] = max(peak[0], srv.live(fn))
            except Exception:
                pass
            time.sleep(0.02)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    return peak, stop, poller


def one_burst(srv, total):
    """`total` requests, one connection each, released together: (wall seconds, [(status, seconds)])."""
    barrier = threading.Barrier(total + 1)
    results = [None] * total

    def one(i):
        # Connect once released: a connection opened early and left without
        # a request head is closed by the server's --header-read-timeout
        # when starting 200 threads takes long (a loaded machine).
        barrier.wait()
        conn = None
        try:
            conn = connect(srv.port, timeout=120)
            status, _, t = http_request(srv.port, f"/fn/{FN}", conn=conn)
            results[i] = (status, t)
        except Exception as e:
            results[i] = (repr(e), None)
        finally:
            if conn is not None:
                conn.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(total)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join(180)
    return time.perf_counter() - t0, results


def run(ctx):
    srv = ctx.server
    total, cap = 200, 50
    reps = 1 if ctx.quick else 3
    app = write_app(FN, {FN: f'''
runtime = "python3"
handler = "app.handler"
code = "code"
url = "public"
timeout = "30s"

[functions.{FN}.scaling]
max_instances = {cap}
max_queue_wait = "60s"
idle_timeout = "1s"
'''}, code_files={"app.py": SLEEPY})
    srv.deploy(app)
    runs = []
    for _ in range(reps):
        srv.wait_zero(FN)
        peak, stop, poller = peak_poller(srv, FN)
        wall, results = one_burst(srv, total)
        time.sleep(0.05)
        stop.set()
        poller.join()
        statuses = {}
        for s, _ in results:
            statuses[s] = statuses.get(s, 0) + 1
        lat = [t * 1000 for s, t in results if s == 200]
        runs.append({"wall_ms": wall * 1000, "peak": peak[0], "errors": total - statuses.get(200, 0),
                     "statuses": statuses, "p50": med(lat), "p99": pct(lat, 99) if lat else None})
        say(f"burst: {wall * 1000:.0f} ms, peak {peak[0]} instances, statuses {statuses}")
        if statuses.get(200, 0) != total:
            raise Broken(f"burst: expected {total} × 200, got {statuses}")
    return {"runs": runs, "total": total, "cap": cap, "reps": reps,
            "wall": med_p99([r["wall_ms"] for r in runs]), "peak": max(r["peak"] for r in runs),
            "errors": sum(r["errors"] for r in runs),
            "ideal_ms": total / cap * 100, "goal": all(r["errors"] == 0 for r in runs)}


def render(r):
    last = r["runs"][-1]
    return [f"{r['total']} concurrent requests (one connection each, released together) to a python3 function "
            f"sleeping 100 ms, max_instances = {r['cap']}, max_queue_wait = 60s, from 0 instances; {r['reps']} run(s).",
            "",
            *table(["all complete (median / p99 of runs)", "ideal (no start cost)", "ratio to ideal", "peak instances",
                    "request p50 / p99 (last run)", "errors"], "rrrrrr",
                   [[fmt_ms2(r["wall"]), fmt_ms(r["ideal_ms"]), f"{r['wall'][0] / r['ideal_ms']:.1f}×", r["peak"],
                     fmt_ms2((last["p50"], last["p99"])), r["errors"]]]),
            "",
            f"- Goal: 0 errors, no 429 (with max_queue_wait large enough none are expected): "
            f"{met(r['goal'])}. Peak instances polled every 20 ms from `GET /api/v1/functions` "
            "(what `updraft ls` reads).",
            f"- Target (issue 14): all complete within 1.5× the ideal, no 429, no error: "
            f"{met(r['goal'] and r['wall'][0] <= 1.5 * r['ideal_ms'])} ({r['wall'][0] / r['ideal_ms']:.1f}×)."]
