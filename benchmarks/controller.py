"""Controller throughput: how many no-op tasks per second the engine schedules and logs.

    .venv/bin/python benchmarks/controller.py [--short] [--tasks 1000,10000] [--reps 3]

Every task returns a small JSON value (an int) or None, so no Spark job runs: what is
measured is the engine itself (DAG build and validation, planning, scheduling, one durable
commit record per task on local disk, fsync'd). Shapes:

* ``chain``: task k reads task k-1 (no parallelism at all);
* ``fan``: one source, n-2 independent tasks reading it, one task gathering all of them.

One task object is bound n times, so ids are de-duplicated (``step``, ``step_1``, ...), as a
DAG built in a loop would be. Reported per configuration: DAG build (bind + validation +
fingerprints), the whole ``xf.run`` and tasks per second of the run, and the driver's peak
memory. Target: at least 500 tasks/s.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import PeakMemory, command, machine, save, spark_session

import exoflow_spark as xf
from exoflow_spark.core.dag import Dag


@xf.task
def source() -> int:
    return 0


@xf.task
def step(x: int | None) -> int | None:
    return None if x is None else x + 1


@xf.task
def leaf(x: int | None, i: int) -> int | None:
    return None if x is None else i


@xf.task
def gather(xs: list[Any]) -> int:
    return len(xs) if xs[0] is None else sum(xs)


@xf.task
def none_source() -> None:
    return None


def build(shape: str, n: int, value: str) -> xf.Node:
    """The DAG of ``n`` no-op tasks of ``shape`` (chain or fan) returning ints or None."""
    first = (source if value == "int" else none_source).bind()
    if shape == "chain":
        node = first
        for _ in range(n - 1):
            node = step.bind(node)
        return node
    if shape == "fan":
        return gather.bind([leaf.bind(first, i) for i in range(n - 2)])
    raise ValueError(f"unknown shape {shape!r}: use chain or fan")


def expected(shape: str, n: int, value: str) -> Any:
    """What the output task returns for this configuration."""
    if shape == "chain":
        return n - 1 if value == "int" else None
    return (n - 2) * (n - 3) // 2 if value == "int" else n - 2


def run_once(
    spark: Any, shape: str, n: int, value: str, storage: str, workflow_id: str
) -> dict[str, Any]:
    """Build and run one configuration; returns its timings and its output."""
    t0 = time.perf_counter()
    node = build(shape, n, value)
    Dag(node)  # validation + fingerprints, as xf.run does first (timed apart here)
    build_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    out = xf.run(node, workflow_id=workflow_id, storage=storage, spark=spark)
    run_s = time.perf_counter() - t1
    return {"build_s": build_s, "run_s": run_s, "output": out}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--short", action="store_true", help="1,000 tasks, 2 reps (make bench)")
    p.add_argument("--tasks", default="1000,10000", help="task counts (comma-separated)")
    p.add_argument("--shapes", default="chain,fan")
    p.add_argument("--values", default="int,none", help="what tasks return: int and/or none")
    p.add_argument("--reps", type=int, default=3)
    a = p.parse_args(argv)
    if a.short:
        a.tasks, a.reps = "1000", 2
    counts = [int(x) for x in a.tasks.split(",")]
    shapes = a.shapes.split(",")
    values = a.values.split(",")
    spark, startup = spark_session("exoflow-bench-controller")
    mem = PeakMemory(spark)
    work = Path(tempfile.mkdtemp(prefix="exoflow-bench-controller-"))
    print(
        f"controller benchmark: no-op tasks {counts}, shapes {shapes}, values {values}, "
        f"{a.reps} reps, log on local disk {work} (session start-up {startup:.1f} s)"
    )
    # warm-up: imports, code fingerprints, the first fsyncs
    run_once(spark, "chain", 50, "int", str(work / "warm"), "warm")
    configs = [(s, n, v) for n in counts for s in shapes for v in values]
    samples: dict[tuple[str, int, str], list[dict[str, Any]]] = {c: [] for c in configs}
    peaks: dict[tuple[str, int, str], dict[str, float | None]] = {}
    for rep in range(a.reps):
        for shape, n, value in configs if rep % 2 == 0 else list(reversed(configs)):
            mem.reset()
            r = run_once(
                spark, shape, n, value, str(work / f"r{rep}"), f"{shape}-{n}-{value}-{rep}"
            )
            if r["output"] != expected(shape, n, value):
                raise AssertionError(f"{shape}/{n}/{value}: got {r['output']!r}")
            peak, prev = mem.peak_mib(), peaks.get((shape, n, value), {})
            peaks[(shape, n, value)] = {k: max(v or 0, prev.get(k) or 0) for k, v in peak.items()}
            samples[(shape, n, value)].append(r)
            print(
                f"  rep {rep + 1}/{a.reps} {shape:5s} n={n:<6} {value:4s}: build "
                f"{r['build_s']:.2f} s, run {r['run_s']:.2f} s = {n / r['run_s']:,.0f} tasks/s"
            )
        shutil.rmtree(work / f"r{rep}", ignore_errors=True)
    rows = []
    for shape, n, value in configs:
        runs = [r["run_s"] for r in samples[(shape, n, value)]]
        med = statistics.median(runs)
        rows.append(
            {
                "shape": shape,
                "tasks": n,
                "returns": value,
                "build_s": round(
                    statistics.median(r["build_s"] for r in samples[(shape, n, value)]), 3
                ),
                "run_median_s": round(med, 3),
                "run_min_s": round(min(runs), 3),
                "run_max_s": round(max(runs), 3),
                "tasks_per_s": round(n / med, 1),
                "python_peak_mib": peaks[(shape, n, value)].get("python"),
                "jvm_peak_mib": peaks[(shape, n, value)].get("jvm"),
                "label": f"{shape}/{value}",
            }
        )
    print("\n| shape | tasks | returns | build s | run s (median) | tasks/s | python peak MiB |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['shape']} | {r['tasks']:,} | {r['returns']} | {r['build_s']:.2f} | "
            f"{r['run_median_s']:.2f} | {r['tasks_per_s']:,.0f} | {r['python_peak_mib']} |"
        )
    path = save(
        "controller",
        {
            "benchmark": "controller",
            "title": "Controller throughput (no-op tasks, durable log on local disk)",
            "command": command(),
            "machine": machine(),
            "reps": a.reps,
            "results": rows,
            "columns": [
                ["shape", "shape", "s"],
                ["tasks", "tasks", ",d"],
                ["returns", "tasks return", "s"],
                ["build_s", "DAG build s", ".2f"],
                ["run_median_s", "run s (median)", ".2f"],
                ["run_min_s", "min s", ".2f"],
                ["run_max_s", "max s", ".2f"],
                ["tasks_per_s", "tasks/s", ",.0f"],
                ["python_peak_mib", "driver Python peak MiB", ".0f"],
            ],
            "plot": {
                "kind": "bar",
                "x": "tasks",
                "group": "label",
                "y": "tasks_per_s",
                "ylabel": "tasks per second (higher is better)",
                "hline": 500,
                "hline_label": "target 500 tasks/s",
            },
            "notes": [
                "Every task writes one fsync'd commit record (a create-if-absent file) before "
                "its consumers start; no Spark job runs.",
                "Target: at least 500 tasks/s.",
            ],
        },
    )
    print(f"\nsaved {path}")
    spark.stop()
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
