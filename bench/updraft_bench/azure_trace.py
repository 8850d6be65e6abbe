"""A synthetic invocation trace shaped like the Azure Functions trace that "Serverless in the Wild"
(Shahrad et al., USENIX ATC '20) characterised, generated from a seed so every run replays the
same one. The shape, from that paper's figures: most functions are rarely called (about 45% of
applications less than once an hour, 81% less than once a minute), a sizeable minority run on
timers (periodic, with little jitter), a few are hot (several calls a second to one every few
seconds), and inter-arrival times of the rest are bursty (coefficient of variation above 1).
Execution times are log-normal with a median near one second.

`generate(seed, functions, hours)` returns a list of (function index, arrival ms, duration ms),
sorted by arrival; `write(path, ...)` writes it as the replay reads it: one line per invocation,
`FUNCTION ARRIVAL_MS DURATION_MS`, after a first line `# functions N hours H seed S`.
"""

import math
import random

# Share of functions of each kind (sums to 1).
KINDS = (
    ("rare", 0.45),      # Poisson, mean gap 1 h .. 2 days (log-uniform)
    ("bursty", 0.30),    # bursts of calls seconds apart, bursts minutes .. hours apart
    ("periodic", 0.20),  # timers: every 1, 2, 5, 10, 15, 30 or 60 minutes, a few seconds' jitter
    ("hot", 0.05),       # Poisson, mean gap 2 .. 60 s
)
PERIODS_MIN = (1, 2, 5, 10, 15, 30, 60)


def _kinds(rng, functions):
    out = []
    for kind, share in KINDS:
        out += [kind] * round(share * functions)
    while len(out) < functions:
        out.append("rare")
    out = out[:functions]
    rng.shuffle(out)
    return out


def _duration_ms(rng):
    # Log-normal, median ~1 s, capped at 60 s.
    return min(60_000, max(1, int(rng.lognormvariate(math.log(1000), 1.2))))


def _arrivals(rng, kind, end_ms):
    t = 0.0
    if kind == "rare":
        mean = math.exp(rng.uniform(math.log(3600e3), math.log(48 * 3600e3)))
        t = rng.uniform(0, mean)
        while t < end_ms:
            yield t
            t += rng.expovariate(1 / mean)
    elif kind == "hot":
        mean = math.exp(rng.uniform(math.log(2e3), math.log(60e3)))
        while t < end_ms:
            yield t
            t += rng.expovariate(1 / mean)
    elif kind == "periodic":
        period = rng.choice(PERIODS_MIN) * 60e3
        t = rng.uniform(0, period)
        while t < end_ms:
            yield t + rng.uniform(0, 3e3)
            t += period
    else:  # bursty
        between = math.exp(rng.uniform(math.log(5 * 60e3), math.log(6 * 3600e3)))
        t = rng.uniform(0, between)
        while t < end_ms:
            for _ in range(rng.randint(1, 20)):
                yield t
                t += rng.expovariate(1 / 3e3)
            t += rng.expovariate(1 / between)


def generate(seed=20, functions=400, hours=24):
    rng = random.Random(seed)
    end_ms = hours * 3600e3
    trace = []
    for f, kind in enumerate(_kinds(rng, functions)):
        for t in _arrivals(rng, kind, end_ms):
            if t < end_ms:
                trace.append((f, int(t), _duration_ms(rng)))
    trace.sort(key=lambda x: (x[1], x[0]))
    return trace


def write(path, seed=20, functions=400, hours=24):
    trace = generate(seed, functions, hours)
    with open(path, "w") as out:
        out.write(f"# functions {functions} hours {hours} seed {seed}\n")
        for f, t, d in trace:
            out.write(f"{f} {t} {d}\n")
    return len(trace)


if __name__ == "__main__":
    import sys
    n = write(sys.argv[1], *map(int, sys.argv[2:]))
    print(f"{n} invocations")
