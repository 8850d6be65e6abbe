"""The scenarios, one module each. A scenario module has TITLE (its section heading in
BENCHMARKS.md, numbered in the report's order), run(ctx) -> a JSON-able result (it raises
driver.Broken when the scenario breaks) and render(result) -> the section's Markdown lines.
To add one: write the module, list it in SCENARIOS below, describe it in the package docstring."""

from . import (burst, cold, control, density, emulators, events, keepalive, observability, sandbox,
               snapshot, warm, wasm)

# In the order a run measures them (`--only` keeps this order too).
SCENARIOS = {m.__name__.rsplit(".", 1)[1]: m
             for m in (warm, wasm, cold, snapshot, burst, control, density, emulators, sandbox, events,
                       keepalive, observability)}
# In the order of their section numbers.
REPORT_ORDER = sorted(SCENARIOS, key=lambda k: int(SCENARIOS[k].TITLE.split(".", 1)[0]))
