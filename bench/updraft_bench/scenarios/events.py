"""Section 9: event sources (issue 12).

Queue throughput end to end: N messages sent through SQS's JSON API (SendMessageBatch, 10 a
request, several connections at once) into a queue no consumer reads yet; then a no-op python3
consumer (`batch_size = 10`) is deployed and timed from its first receive until the queue shows
depth 0 and nothing in flight. Baseline, same run: the store's own insert rate, Python's sqlite3
writing the same rows into a scratch copy of the store's `messages` table on the same disk.

Schedule firing lateness: a `rate = "1s"` schedule whose python3 handler logs its start time
minus the tick's due time (the event's `time`), read back with `updraft logs NAME --json`."""

import hashlib
import json
import sqlite3
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from ..driver import WORK, Broken, connect, http_request, say, write_app
from ..figures import fmt_ms, fmt_ratio, fmt_rps, met, pct, ratio, table

TITLE = "9. Event sources: queue throughput and schedule lateness"

QUEUE = "bench"
CONSUMER = "bench-events-consumer"
TICKER = "bench-events-tick"
BATCH = 10
SENDERS = 8  # connections sending at once
POLL_S = 0.02  # how often the queue's numbers are read while it drains
GOAL_MSGS_PER_S = 5000  # issue 12, on SQLite
GOAL_LATE_P99_MS = 50  # issue 12

NOOP = "def handler(event, context):\n    return {}\n"
# One JSON line a tick: the handler's start minus the tick's due time, and
# whether this instance started for it (a cold start is not the schedule's lateness).
TICK = """import json
import time
from datetime import datetime, timezone

COLD = [True]


def handler(event, context):
    now = time.time()
    due = datetime.strptime(event["time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
    cold, COLD[0] = COLD[0], False
    print(json.dumps({"bench_tick": event["time"], "late_ms": (now - due) * 1000, "cold": cold}), flush=True)
    return {}
"""


def run(ctx):
    srv = ctx.server
    n = 2000 if ctx.quick else 50000
    want = 5 if ctx.quick else 60
    queue = measure_queue(srv, n)
    queue["insert"] = store_insert_rate(srv, n)
    say(f"events: consumed {queue['consumed_per_s']:,.0f} msg/s, sent {queue['sent_per_s']:,.0f} msg/s, "
        f"store insert {queue['insert']['per_s']:,.0f} rows/s")
    schedule = measure_schedule(srv, want)
    say(f"events: schedule lateness p50 {fmt_ms(schedule['p50'])}, p99 {fmt_ms(schedule['p99'])} "
        f"over {schedule['ticks']} ticks")
    return {"queue": queue, "schedule": schedule,
            "goal_queue": queue["consumed_per_s"] >= GOAL_MSGS_PER_S,
            "goal_schedule": schedule["p99"] < GOAL_LATE_P99_MS}


# ---------------------------------------------------------------------------
# queue throughput


def sqs(srv, op, payload, conn=None):
    """One call of SQS's JSON protocol (bearer credentials, as the native API takes them)."""
    headers = {**srv.auth, "X-Amz-Target": f"AmazonSQS.{op}", "Content-Type": "application/x-amz-json-1.0"}
    status, body, _ = http_request(srv.port, "/", "POST", json.dumps(payload).encode(), headers, conn=conn)
    if status != 200:
        raise Broken(f"SQS {op}: expected 200, got {status} {body[:300]!r}")
    return json.loads(body)


def message_body(i):
    return json.dumps({"n": i})


def send_all(srv, url, n):
    """Sends messages 0..n-1 with SendMessageBatch, BATCH a request, SENDERS connections at
    once: (seconds from the first send to the last answer, this process's CPU seconds meanwhile)."""
    starts = list(range(0, n, BATCH))

    def sender(mine):
        conn = connect(srv.port)
        try:
            for start in mine:
                size = min(BATCH, n - start)
                entries = [{"Id": str(j), "MessageBody": message_body(start + j)} for j in range(size)]
                r = sqs(srv, "SendMessageBatch", {"QueueUrl": url, "Entries": entries}, conn=conn)
                if r.get("Failed") or len(r.get("Successful", [])) != size:
                    raise Broken(f"SendMessageBatch of {size}: {json.dumps(r)[:300]}")
        finally:
            conn.close()

    t0, cpu0 = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(SENDERS) as ex:
        list(ex.map(sender, [starts[k::SENDERS] for k in range(SENDERS)]))
    return time.perf_counter() - t0, time.process_time() - cpu0


def queue_stats(srv):
    """The queue's numbers from GET /api/v1/queues (what `updraft queue ls --json` prints)."""
    status, body, _ = http_request(srv.port, "/api/v1/queues", headers=srv.auth, timeout=30)
    if status != 200:
        raise Broken(f"GET /api/v1/queues: {status} {body[:200]!r}")
    for q in json.loads(body)["queues"]:
        if q["name"] == QUEUE:
            return q
    raise Broken(f"GET /api/v1/queues does not list the queue {QUEUE}")


def drained(q):
    return q["depth"] == 0 and q["in_flight"] == 0 and q.get("delayed", 0) == 0


def measure_queue(srv, n):
    url = sqs(srv, "CreateQueue", {"QueueName": QUEUE})["QueueUrl"]
    send_s, send_cpu = send_all(srv, url, n)
    q = queue_stats(srv)
    if q["depth"] != n or q["in_flight"]:
        raise Broken(f"after sending {n} messages to a queue without consumer: {q}")
    app = write_app(CONSUMER, {CONSUMER: f'''
runtime = "python3"
handler = "app.handler"
code = "code"

[[functions.{CONSUMER}.triggers]]
queue = {{ name = "{QUEUE}", batch_size = {BATCH} }}
'''}, code_files={"app.py": NOOP})
    # The consumer may receive before `updraft deploy` returns: watch the queue meanwhile.
    deploy_error = []

    def deploy():
        try:
            srv.deploy(app)
        except Broken as e:
            deploy_error.append(e)

    deployer = threading.Thread(target=deploy)
    t_deploy = time.perf_counter()
    deployer.start()
    first = None
    limit = t_deploy + 120 + n / 200  # broken, not slow: 200 messages/s would still finish
    while True:
        q = queue_stats(srv)
        now = time.perf_counter()
        if first is None and (q["in_flight"] or q["depth"] < n):
            first = now
        if first is not None and drained(q):
            done = now
            break
        if deploy_error:
            raise deploy_error[0]
        if now > limit:
            raise Broken(f"queue {QUEUE}: not drained {now - t_deploy:.0f} s after deploying its consumer: {q}")
        time.sleep(POLL_S)
    deployer.join()
    listed = {x["name"]: x for x in json.loads(srv.cli("queue", "ls", "--json").stdout)}.get(QUEUE)
    if listed is None or not drained(listed) or listed["dead_letters"]:
        raise Broken(f"`updraft queue ls --json` after draining: {listed}")
    srv.cli("rm", CONSUMER)
    return {"n": n, "senders": SENDERS, "batch": BATCH, "poll_ms": POLL_S * 1000,
            "send_s": send_s, "sent_per_s": n / send_s, "sender_cpu": send_cpu / send_s,
            "deploy_to_first_ms": (first - t_deploy) * 1000,
            "consume_s": done - first, "consumed_per_s": n / (done - first)}


def store_insert_rate(srv, n):
    """Python's sqlite3 writing n messages' rows into a scratch database beside the server's,
    with the schema of its `messages` and `queues` tables, the store's pragmas, and the store's
    transaction for a batch of BATCH (BEGIN IMMEDIATE, the queue's existence check, one INSERT)."""
    live = srv.data / "updraft.db"
    if not live.exists():
        raise Broken(f"events: no SQLite database at {live} to read the schema from")
    src = sqlite3.connect(f"file:{live}?mode=ro", uri=True)
    try:
        schema = [sql for (sql,) in src.execute(
            "SELECT sql FROM sqlite_master WHERE tbl_name IN ('messages', 'queues') AND sql IS NOT NULL "
            "ORDER BY type = 'index', name")]
    finally:
        src.close()
    if not any("messages" in s for s in schema):
        raise Broken("events: the server's database has no `messages` table")
    scratch = WORK / "events-insert.db"
    for suffix in ("", "-wal", "-shm"):
        scratch.with_name(scratch.name + suffix).unlink(missing_ok=True)
    now = int(time.time() * 1000)
    batches = []
    for start in range(0, n, BATCH):
        rows = []
        for i in range(start, min(start + BATCH, n)):
            body = message_body(i)
            rows += [QUEUE, str(uuid.uuid4()), body, hashlib.md5(body.encode()).hexdigest(), None, None, now, now]
        batches.append(rows)
    db = sqlite3.connect(scratch, isolation_level=None)
    try:
        db.executescript("PRAGMA journal_mode=WAL; PRAGMA busy_timeout=5000; PRAGMA synchronous=NORMAL; "
                         "PRAGMA foreign_keys=ON;")
        for sql in schema:
            db.execute(sql)
        db.execute("INSERT INTO queues (name, created_ms, visibility_timeout_ms, delay_ms, max_message_bytes, "
                   "origin) VALUES (?, ?, 30000, 0, 1048576, 'api')", (QUEUE, now))
        insert = {}
        t0 = time.perf_counter()
        for rows in batches:
            k = len(rows) // 8
            if k not in insert:
                insert[k] = ("INSERT INTO messages (queue, id, body, md5_of_body, attributes, md5_of_attributes, "
                             "sent_ms, visible_ms) VALUES " + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * k))
            db.execute("BEGIN IMMEDIATE")
            db.execute("SELECT 1 FROM queues WHERE name = ?", (QUEUE,)).fetchone()
            db.execute(insert[k], rows)
            db.execute("COMMIT")
        took = time.perf_counter() - t0
        stored = db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
    finally:
        db.close()
        for suffix in ("", "-wal", "-shm"):
            scratch.with_name(scratch.name + suffix).unlink(missing_ok=True)
    if stored != n:
        raise Broken(f"events: the baseline stored {stored} rows of {n}")
    return {"n": n, "seconds": took, "per_s": n / took, "sqlite": sqlite3.sqlite_version}


# ---------------------------------------------------------------------------
# schedule lateness


def ticks_logged(srv):
    """{due time: the tick's logged line} from `updraft logs TICKER --json`."""
    out = srv.cli("logs", TICKER, "--json", "--since", "1h").stdout
    ticks = {}
    for line in out.splitlines():
        text = json.loads(line).get("text", "")
        start = text.find("{")
        if start < 0 or "bench_tick" not in text:
            continue
        tick = json.loads(text[start:])
        ticks.setdefault(tick["bench_tick"], tick)  # at least once: a retried tick counts once
    return ticks


def measure_schedule(srv, want):
    app = write_app(TICKER, {TICKER: f'''
runtime = "python3"
handler = "app.handler"
code = "code"

[[functions.{TICKER}.triggers]]
schedule = {{ rate = "1s" }}
'''}, code_files={"app.py": TICK})
    srv.deploy(app)
    try:
        deadline = time.monotonic() + want + 60
        while True:
            ticks = ticks_logged(srv)
            warm = [t for t in ticks.values() if not t["cold"]]
            if len(warm) >= want:
                break
            if time.monotonic() > deadline:
                raise Broken(f"schedule: {len(ticks)} tick(s) logged by {TICKER} in {want + 60} s, "
                             f"{len(warm)} of them warm; expected {want} warm")
            time.sleep(max(1.0, want - len(warm)))  # a tick a second: look again once they can be there
    finally:
        srv.cli("rm", TICKER)
    late = [t["late_ms"] for t in sorted(warm, key=lambda t: t["bench_tick"])[:want]]
    cold = [t["late_ms"] for t in ticks.values() if t["cold"]]
    return {"ticks": len(late), "p50": pct(late, 50), "p99": pct(late, 99), "max": max(late),
            "min": min(late), "cold": cold}


def render(r):
    q, s, ins = r["queue"], r["schedule"], r["queue"]["insert"]
    return [
        f"**Queue throughput.** {q['n']:,} messages (bodies like `{{\"n\": 123}}`) sent through SQS's JSON API "
        f"(`SendMessageBatch`, {q['batch']} a request, {q['senders']} connections at once, bearer credentials) "
        f"into queue `{QUEUE}` before any consumer reads it; then a python3 function returning `{{}}` deployed "
        f"with `queue = {{ name = \"{QUEUE}\", batch_size = {q['batch']} }}` (default scaling: max_instances 10) "
        "and timed from its first receive until `GET /api/v1/queues` (what `updraft queue ls --json` prints, "
        f"checked once at the end) shows depth 0 and nothing in flight, read every {q['poll_ms']:.0f} ms. "
        f"Baseline: the store's own insert rate, Python's sqlite3 (SQLite {ins['sqlite']}) writing the same "
        f"{ins['n']:,} rows (same columns, the `messages` and `queues` schema read from the server's database) "
        f"into a scratch database on the same disk, {q['batch']} a transaction as the store sends a batch "
        "(`BEGIN IMMEDIATE`, the queue's existence check, one `INSERT`), WAL and the store's pragmas "
        "(`synchronous=NORMAL`, `busy_timeout=5000`, `foreign_keys=ON`); uuids and MD5s made before timing.",
        "",
        *table(["", "messages/s", "ratio to the store's insert rate", "took"], "lrrr", [
            ["consumed end to end (first receive → empty)", fmt_rps(q["consumed_per_s"]),
             fmt_ratio(ratio(q["consumed_per_s"], ins["per_s"])), f"{q['consume_s']:.2f} s"],
            ["sent through `SendMessageBatch` (accepted)", fmt_rps(q["sent_per_s"]),
             fmt_ratio(ratio(q["sent_per_s"], ins["per_s"])), f"{q['send_s']:.2f} s"],
            ["store insert rate (sqlite3, the baseline)", fmt_rps(ins["per_s"]), fmt_ratio(1.0),
             f"{ins['seconds']:.2f} s"],
        ]),
        "",
        f"- Goal: ≥ {GOAL_MSGS_PER_S:,} messages/s consumed on SQLite: {met(r['goal_queue'])} "
        f"({fmt_rps(q['consumed_per_s'])}/s). Deploy → first receive (not in the rate): "
        f"{fmt_ms(q['deploy_to_first_ms'])}. While sending, the harness (Python, one process) used "
        f"{q['sender_cpu']:.0%} of a core: near 100%, the send rate is the client's limit, not the server's.",
        "",
        f"**Schedule firing lateness.** A python3 function with `schedule = {{ rate = \"1s\" }}` logs, at each "
        "tick, `time.time()` at the handler's start minus the event's `time` (the tick's due time, whole "
        "seconds), read back with `updraft logs NAME --json`: the async path's claim and the invocation are in "
        f"it. The first {s['ticks']} warm ticks; the tick(s) that started an instance are left out "
        f"({', '.join(fmt_ms(x) for x in s['cold']) or 'none'}).",
        "",
        *table(["ticks", "p50", "p99", "min", "max"], "rrrrr",
               [[s["ticks"], fmt_ms(s["p50"]), fmt_ms(s["p99"]), fmt_ms(s["min"]), fmt_ms(s["max"])]]),
        "",
        f"- Goal: p99 < {GOAL_LATE_P99_MS} ms: {met(r['goal_schedule'])}"
        f"{' (p99 of so few ticks is their worst)' if s['ticks'] < 100 else ''}.",
    ]
