"""Statistics of measurements and how the report writes them."""

import statistics


def pct(values, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(round(p / 100 * len(v) + 0.5)) - 1))
    return v[k]


def med(values):
    return statistics.median(values) if values else None


def med_p99(values):
    """(median, p99) of a non-empty list."""
    return med(values), pct(values, 99)


def ratio(a, b):
    return a / b if a is not None and b else None


def fmt_ms(x):
    if x is None:
        return "-"
    if abs(x) < 1:
        return f"{x:.2f} ms"
    if abs(x) < 100:
        return f"{x:.1f} ms"
    return f"{x:.0f} ms"


def fmt_ms2(pair):
    """A (median, p99) pair of milliseconds: "median / p99"."""
    return f"{fmt_ms(pair[0])} / {fmt_ms(pair[1])}"


def fmt_rps(x):
    return "-" if x is None else f"{x:,.0f}"


def fmt_ratio(x):
    return "-" if x is None else f"{x:.2f}×"


def met(goal, yes="met", no="NOT met"):
    return f"**{yes if goal else no}**"


def table(heads, align, rows):
    """A Markdown table: `align` has one letter per column, l (text) or r (figures)."""
    sep = {"l": "---", "r": "---:"}
    return [row(heads), row(sep[a] for a in align)] + [row(r) for r in rows]


def row(cells):
    return "|" + "".join(f" {c} |" if c != "" else " |" for c in cells)
