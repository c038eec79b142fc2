"""Shared benchmark plumbing: alternate candidates, repeat, summarise, save."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    """Cores, memory and versions: recorded with every result."""
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(mem, 1),
        "python": platform.python_version(),
        "pyspark": version("pyspark"),
        "delta_spark": version("delta-spark"),
        "java": os.popen("java -version 2>&1 | head -1").read().strip(),
    }


def measure(
    candidates: dict[str, Callable[[int], None]],
    reps: int,
    warmup: int = 3,
    log: Callable[[str], None] = print,
) -> dict[str, list[float]]:
    """Run every candidate ``warmup`` times, then ``reps`` rounds alternating candidates.

    The order flips every round (A B C, C B A, ...) so a drift over time (JIT warm-up, page
    cache, GC) does not favour whoever runs first.
    """
    for name, fn in candidates.items():
        for i in range(warmup):
            fn(-1 - i)
        log(f"  warm-up {name} done")
    times: dict[str, list[float]] = {name: [] for name in candidates}
    names = list(candidates)
    for rep in range(reps):
        for name in names if rep % 2 == 0 else reversed(names):
            fn = candidates[name]
            start = time.perf_counter()
            fn(rep)
            times[name].append(time.perf_counter() - start)
            log(f"  rep {rep + 1}/{reps} {name}: {times[name][-1]:.3f} s")
    return times


def summarise(times: dict[str, list[float]], baseline: str) -> list[dict[str, Any]]:
    """Median, min, max and the median's ratio to the baseline's median."""
    base = statistics.median(times[baseline])
    rows = []
    for name, ts in times.items():
        med = statistics.median(ts)
        rows.append(
            {
                "candidate": name,
                "median_s": round(med, 3),
                "min_s": round(min(ts), 3),
                "max_s": round(max(ts), 3),
                "ratio": round(med / base, 3),
                "runs": len(ts),
            }
        )
    return rows


def table(rows: list[dict[str, Any]], baseline: str) -> str:
    """A markdown table of :func:`summarise`'s rows."""
    lines = [
        f"| candidate | median s | min s | max s | ratio to {baseline} |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['candidate']} | {r['median_s']:.3f} | {r['min_s']:.3f} | "
            f"{r['max_s']:.3f} | {r['ratio']:.2f}x |"
        )
    return "\n".join(lines)


def save(name: str, payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``benchmarks/results/<name>.json``."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2))
    return path
