"""Updraft's benchmark harness: Updraft beside its baselines, same machine, same run.

    bench/run                 # full run (about 10 minutes on 2 cores), prints the table
    bench/run --write         # ... and rewrites BENCHMARKS.md with it
                              # (with --only: just those scenarios' sections, the rest kept)
    bench/run --quick         # smoke run of every scenario (< 2 minutes once built);
                              # exits 1 if a scenario breaks (errors where 0 are required)
    bench/run --only warm,cold  # some scenarios: warm wasm cold snapshot burst control density emulators sandbox
                                #   events keepalive observability

Builds in release mode what it needs (the `updraft` binary into target/bench,
the plain hyper baseline in bench/hyper-baseline/ into target/bench-hyper, the
`provided-rust` fixture via scripts/fixtures, and, when no `wasmtime` is on PATH,
the wasmtime CLI the wasm rows compare against: wasmtime-cli 48.0.8 with only
`serve`, `compile` and the pooling allocator, into target/bench-wasmtime, once,
full runs only: see wasmtime_cli.py), starts `updraft server` on
loopback with a data dir under bench/.work/, deploys generated apps, and
drives load with `wrk` (Debian package) against loopback only, bounded in
count and time. Python 3 standard library only; the code is the package
bench/updraft_bench/ (one module per scenario under scenarios/, the shared
driver beside it), `bench/run` its command.

Scenarios (the goals are the ones of issue 5 and, for wasm, issue 4):
  warm     warm throughput/latency of a `provided` lambda_runtime function behind
           its function URL vs a plain hyper server, wrk at c=1, 16, 64
  wasm     warm throughput of each wasm fixture component vs `wasmtime serve` as it ships
           and vs `wasmtime serve` with Updraft's pooling settings, wrk at c=16, 64
           (skipped, saying why, when there is no wasmtime CLI: --quick and
           --no-wasmtime-build use only one on PATH or already in target/bench-wasmtime)
  cold     cold start after deploy and after scale-to-zero, python3/nodejs/provided
           (+wasm); the platform's share = total - the runtime's own start, and
           cold - warm = the cold request minus the same request sent again
  snapshot a python3 handler with a dozen heavy imports, cold, with and without
           `snapshot = true`, beside a hello
  burst    0 -> 200 concurrent requests to a 100 ms function, max_instances = 50
  control  deploys per second and `updraft ls` latency with 10,000 functions (--fleet N)
  density  server RSS with 10,000 functions idle and with 100 warm (--fleet N)
  emulators  the same hello through `cargo lambda watch` (1 and 4 instances) and
           serverless-offline (default and in-process) vs through Updraft, wrk at
           c=16, 64; each runs only when installed (bench/run never installs them:
           `pip install cargo-lambda`; `cd bench/emulators/serverless-hello && npm install`)
           and is skipped, saying so, otherwise
  sandbox  the price of the process sandbox (issue 10): three servers in the same run,
           `--isolation strict`, strict with `--allow-function-loopback` (no network
           namespace) and `--isolation none`; the warm echo at c=16, 64 and python3/provided
           cold starts after deploy, interleaved; req/s, p50/p99, cold median/p99 and the
           ratios (and differences) to none. Needs root (skipped, saying so, otherwise)
  events   event sources (issue 12): N messages (50,000; --quick 2,000) sent through SQS's
           SendMessageBatch into a queue without consumer, then a no-op python3 consumer
           (batch 10) timed from its first receive until the queue is empty, beside the
           store's own insert rate (Python's sqlite3, the same rows, 10 a transaction, on the
           same disk); and a `rate = "1s"` schedule's firing lateness (handler start - due
           time, p50/p99 over 60 warm ticks; --quick 5) from `updraft logs`
  keepalive  a seeded synthetic trace shaped like the Azure Functions trace (1,000 functions,
           48 hours; --quick 100, 6) replayed through the scheduler's keep-alive code against
           a fixed 10-minute keep-alive and the learned (default) policy: cold starts and idle
           instance-seconds (crates/scheduler/examples/keepalive_replay.rs, on the trace's clock)
  observability  the warm echo on three servers at once: `--no-metrics`, the default (metrics,
           no exporter) and with `--otlp-endpoint` to a collector in the harness; wrk c=16, 64;
           the cost of metrics and traces as a ratio to off
"""
