"""Section 11: the warm-path price of observability (issue 15). Three servers in the same run:
`--no-metrics` (nothing counted, no spans: the baseline), the default (Prometheus metrics counted,
no trace exporter, so no span is made) and the default with `--otlp-endpoint` to a collector in
the harness (every invocation's spans exported over OTLP/HTTP; the collector answers 200 and
counts what it gets). The warm echo at c=64 (and c=16), interleaved; ratios to the baseline."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ..driver import ECHO, Broken, Server, check_echo, echo_app, say
from ..figures import fmt_ms, fmt_ratio, fmt_rps, met, ratio, table
from ..load import interleaved, warm_up

TITLE = "11. The price of observability: metrics and traces vs off"

GOAL_COST = 0.05  # issue 15: under 5% at c=64


class Collector:
    """The least an OTLP/HTTP traces endpoint can be: 200 to every POST, counted."""

    def __init__(self):
        self.requests = 0
        self.bytes = 0
        lock = threading.Lock()
        col = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(n)
                with lock:
                    col.requests += 1
                    col.bytes += n
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()


def run(ctx):
    collector = Collector()
    variants = [
        ("off", "`--no-metrics`", ["--no-metrics"]),
        ("metrics", "default: metrics, no exporter", []),
        ("otlp", "metrics + `--otlp-endpoint` (OTLP/HTTP)", ["--otlp-endpoint", f"http://127.0.0.1:{collector.port}"]),
    ]
    servers = {}
    try:
        for key, _, args in variants:
            servers[key] = Server(ctx.updraft, f"observability-{key}", args)
        app = echo_app("bench-observability")
        for key, srv in servers.items():
            srv.deploy(app)
            check_echo(srv, f"observability {key}")
        targets = {key: srv.url(ECHO, "/bench") for key, srv in servers.items()}
        warm_up(targets, 64, 1 if ctx.quick else 2)
        secs, reps = ctx.timing((5, 3))
        rows = []
        for c in (16, 64):
            s = interleaved(targets, c, secs, reps)
            errors = {k: v["errors"] for k, v in s.items() if v["errors"]}
            if errors:
                raise Broken(f"observability c={c}: errors: {errors}")
            rows.append({"c": c, **s})
            say(f"observability c={c}: " + ", ".join(f"{k} {fmt_rps(s[k]['rps'])} req/s" for k in s))
    finally:
        for srv in servers.values():
            srv.stop()  # a graceful stop flushes the exporter
        collector.stop()
    if collector.requests == 0:
        raise Broken("the OTLP collector received nothing from the server with --otlp-endpoint")
    c64 = rows[-1]
    cost = {k: 1 - (ratio(c64[k]["rps"], c64["off"]["rps"]) or 0) for k in ("metrics", "otlp")}
    return {"rows": rows, "seconds": secs, "reps": reps,
            "labels": {k: label for k, label, _ in variants},
            "exported": {"requests": collector.requests, "bytes": collector.bytes},
            "cost": cost, "goal": all(v < GOAL_COST for v in cost.values())}


def render(r):
    labels = r["labels"]
    rows = []
    for row in r["rows"]:
        for k in ("off", "metrics", "otlp"):
            x = row[k]
            rows.append([row["c"], labels[k], fmt_rps(x["rps"]), fmt_ratio(ratio(x["rps"], row["off"]["rps"])),
                         fmt_ms(x["p50"]), fmt_ms(x["p99"])])
    cost = r["cost"]
    return [f"The `provided` echo behind its function URL on three servers at once (`{ECHO}`, default scaling), "
            f"wrk -t2 -cN -d{r['seconds']}s, {r['reps']} run(s) per cell, interleaved; median of runs. The "
            f"collector got {r['exported']['requests']:,} export requests ({r['exported']['bytes'] / 1e6:.1f} MB).",
            "",
            *table(["c", "server", "req/s", "ratio to off", "p50", "p99"], "rlrrrr", rows),
            "",
            f"- Goal (issue 15): metrics and tracing cost under 5% of warm throughput at c=64: {met(r['goal'])} "
            f"(metrics, no exporter: {cost['metrics']:.1%}; with the OTLP exporter: {cost['otlp']:.1%}; "
            "a negative cost is below this run's noise)."]
