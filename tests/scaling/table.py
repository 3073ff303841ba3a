#!/usr/bin/env python3
"""Assembles the scaling table of issue 18 from the per-size bench outputs of tests/scaling/run.sh.

Usage: table.py RUNS_DIR NS OUT_JSON. RUNS_DIR holds store_<n>.json, bootstrap_two_cores.json and
bootstrap_one_core.json in the benches' own format ({"<figure>": {"value", "unit", "goal",
"lower_is_better"}}). The growth of each figure is the exponent k of value ~ n^k between the
smallest and the largest size, named from k (it is computed, never written by hand).
"""

import json
import math
import sys
from pathlib import Path

# (row label, source file, figure name with {n}, unit, goal by size)
ROWS = [
    ("durable save, p50", "store", "save_p50_ms", "ms", {"*": 0.4}),
    ("open store + first page", "store", "open_first_page_ms", "ms", {10000: 100.0}),
    ("filter by topic + 3 months", "store", "filter_topic_date_ms", "ms", {10000: 30.0}),
    ("full-text search", "store", "fulltext_ms", "ms", {10000: 50.0}),
    ("statistics of a year", "store", "statistics_year_ms", "ms", {10000: 50.0}),
    ("peak RSS while saving", "store", "peak_rss_saving_mb", "MB", {10000: 80.0}),
    ("store bytes per contact", "store", "store_bytes_per_contact", "B", {"*": 1500.0}),
    ("bootstrap, two cores", "two", "streetsync_{n}_bootstrap_ms", "ms", {10000: 1500.0, 100000: 10000.0}),
    ("bootstrap, device B on one core", "one", "streetsync_{n}_bootstrap_ms", "ms", {}),
    ("device B peak RSS after bootstrap", "two", "streetsync_{n}_b_peak_rss_mb", "MB", {100000: 150.0}),
    ("live edit to B, median", "two", "streetsync_{n}_live_median_ms", "ms", {"*": 5.0}),
]


def slug(label):
    """The JSON figure name of a row: its label in lower case, words joined by underscores."""
    return "_".join("".join(c if c.isalnum() else " " for c in label.lower()).split())


def growth(k):
    if k is None:
        return "-"
    if k < 0.1:
        return "flat"
    if k < 0.5:
        return "log-like"
    if k < 0.8:
        return "sub-linear"
    if k <= 1.25:
        return "linear"
    return "super-linear"


def main():
    runs, ns, out = Path(sys.argv[1]), [int(n) for n in sys.argv[2].split(",")], Path(sys.argv[3])
    def load(name):
        """A run's figures, or none when that run was not made (its cells stay empty)."""
        path = runs / name
        return json.loads(path.read_text()) if path.exists() else {}

    sources = {"two": load("bootstrap_two_cores.json"), "one": load("bootstrap_one_core.json")}
    figures = {}
    lines = [
        "| figure | " + " | ".join(f"{n:,}" for n in ns) + " | growth (exponent k, value ~ n^k) |",
        "|---|" + "---|" * len(ns) + "---|",
    ]
    for label, src, name, unit, goals in ROWS:
        values = []
        for n in ns:
            data = load(f"store_{n}.json") if src == "store" else sources[src]
            entry = data.get(name.format(n=n)) or {}
            v = entry.get("value")
            values.append(v)
            goal = goals.get(n, goals.get("*"))
            figures[f"{slug(label)}_{n}"] = {"value": v, "unit": unit, "goal": goal, "lower_is_better": True}
        first, last = values[0], values[-1]
        k = None
        if isinstance(first, (int, float)) and isinstance(last, (int, float)) and first > 0 and last > 0:
            k = math.log(last / first) / math.log(ns[-1] / ns[0])
        figures[f"{slug(label)}_growth_exponent"] = {
            "value": None if k is None else round(k, 3),
            "unit": "exponent",
            "goal": None,
            "lower_is_better": True,
        }
        cells = []
        for n, v in zip(ns, values):
            goal = goals.get(n, goals.get("*"))
            if v is None:
                cells.append("-")
                continue
            mark = "" if goal is None else (" (goal <= %g: %s)" % (goal, "met" if v <= goal else "missed"))
            cells.append(f"{v:,.2f} {unit}{mark}" if v < 100 else f"{v:,.0f} {unit}{mark}")
        kk = "-" if k is None else f"{growth(k)} ({k:.2f})"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {kk} |")
    out.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    print("\n".join(lines))
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    main()
