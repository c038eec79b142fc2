"""Shared benchmark plumbing: alternate candidates, repeat, summarise, measure memory, save.

Every benchmark in this folder runs its candidates in one process on one SparkSession,
alternating them (A B C, C B A, ...) after a warm-up, and saves a JSON document to
``benchmarks/results/<name>.json`` that ``benchmarks/report.py`` turns into a table in
``docs/benchmarks.md`` and a plot in ``docs/img/bench-<name>.png``.

The JSON document (what :func:`save` writes) has, besides free-form keys:

* ``benchmark``, ``title``, ``command`` (how to reproduce), ``machine`` (:func:`machine`);
* ``results``: a list of flat dicts, one table row each;
* ``columns``: ``[[key, header, format], ...]`` choosing and formatting the table's columns;
* ``plot``: how report.py draws it (see ``report.py``);
* ``notes``: sentences printed under the table.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parent.parent


def _version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    """Cores, memory, load and versions: recorded with every result."""
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cpu = ""
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(
                (ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), ""
            )
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem, 1),
        "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "pyspark": _version("pyspark"),
        "delta_spark": _version("delta-spark"),
        "dagster": _version("dagster"),
        "java": os.popen("java -version 2>&1 | head -1").read().strip(),
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def spark_session(app: str, conf: dict[str, str] | None = None) -> tuple[Any, float]:
    """The benchmarks' SparkSession (``local[*]``, Delta, UI off) and its start-up seconds."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    import exoflow_spark as xf

    t0 = time.perf_counter()
    spark = xf.create_spark_session(
        "local[*]",
        app_name=app,
        conf={
            "spark.ui.enabled": "false",
            "spark.sql.shuffle.partitions": "4",
            "spark.driver.memory": "4g",
            **(conf or {}),
        },
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark, time.perf_counter() - t0


def measure(
    candidates: dict[str, Callable[[int], Any]],
    reps: int,
    warmup: int = 3,
    log: Callable[[str], None] = print,
    after: Callable[[str, int], None] | None = None,
) -> dict[str, list[float]]:
    """Run every candidate ``warmup`` times, then ``reps`` rounds alternating candidates.

    The order flips every round (A B C, C B A, ...) so a drift over time (JIT warm-up, page
    cache, GC) does not favour whoever runs first. Each call gets the repetition number
    (negative during warm-up), to name its outputs uniquely; ``after(name, rep)`` runs after
    each call, untimed (e.g. to delete what the call wrote).
    """
    for name, fn in candidates.items():
        for i in range(warmup):
            fn(-1 - i)
            if after is not None:
                after(name, -1 - i)
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
            if after is not None:
                after(name, rep)
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


#: The columns of :func:`summarise`'s rows, for ``save(..., columns=...)``.
SUMMARY_COLUMNS = [
    ["candidate", "candidate", "s"],
    ["median_s", "median s", ".3f"],
    ["min_s", "min s", ".3f"],
    ["max_s", "max s", ".3f"],
    ["ratio", "ratio", ".2fx"],
]


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


def fmt(value: Any, spec: str) -> str:
    """Format one table cell: ``spec`` is a format spec, optionally ending in ``x``
    (a ratio, printed ``1.23x``); None prints as ``-``."""
    if value is None:
        return "-"
    if spec == "s" or isinstance(value, str):
        return str(value)
    if spec.endswith("x"):
        return f"{value:{spec[:-1]}}x"
    return f"{value:{spec}}"


def markdown(rows: list[dict[str, Any]], columns: list[list[str]]) -> str:
    """A markdown table of ``rows`` with ``columns`` (``[key, header, format]`` each)."""
    head = "| " + " | ".join(c[1] for c in columns) + " |"
    align = "|" + "|".join("---" if c[2] == "s" else "---:" for c in columns) + "|"
    body = ["| " + " | ".join(fmt(r.get(c[0]), c[2]) for c in columns) + " |" for r in rows]
    return "\n".join([head, align, *body])


class PeakMemory:
    """Peak resident memory of the driver: this Python process and Spark's driver JVM.

    Linux keeps a per-process high-water mark (``VmHWM``) that writing ``5`` to
    ``/proc/<pid>/clear_refs`` resets, so each measured run gets its own peak. Elsewhere,
    the Python peak falls back to ``resource.getrusage`` (never reset) and the JVM's is None.
    """

    def __init__(self, spark: Any) -> None:
        self.pids = {"python": os.getpid()}
        with contextlib.suppress(Exception):  # Spark Connect or no JVM access
            self.pids["jvm"] = int(spark._jvm.java.lang.ProcessHandle.current().pid())

    def reset(self) -> None:
        for pid in self.pids.values():
            try:
                with open(f"/proc/{pid}/clear_refs", "w") as fh:
                    fh.write("5")
            except OSError:
                pass

    def peak_mib(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for name, pid in self.pids.items():
            out[name] = _vm_hwm_mib(pid)
        if out.get("python") is None:
            import resource

            scale = 1 if sys.platform == "darwin" else 1024  # bytes vs KiB
            out["python"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20
        out.setdefault("jvm", None)
        return out


def _vm_hwm_mib(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def save(name: str, payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``benchmarks/results/<name>.json``."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=str))
    return path


def command() -> str:
    """The command line that produced this result (repo-relative)."""
    script = Path(sys.argv[0]).resolve()
    with contextlib.suppress(ValueError):
        script = script.relative_to(REPO)
    return " ".join([".venv/bin/python", str(script), *sys.argv[1:]])
