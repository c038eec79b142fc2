"""Scaling: data size (1x to 8x), DAG depth and DAG width, with the driver's peak memory.

    .venv/bin/python benchmarks/scaling.py [--short] [--rows 100000] [--sizes 1,2,4,8]
                                           [--depths 8,16,32,64] [--widths 2,4,8,16]

Three sweeps, each alternating its candidates ABBA in one process after a warm-up:

* **data size**: the heavy pipeline of ``peers.py`` (joins, a Python UDF, aggregations, a
  diamond) at ``--rows`` x 1, 2, 4, 8: plain PySpark, exoflow none, cost-based, sync (not in
  ``--short``);
* **depth**: a chain of d narrow DataFrame stages (each a task) over ``--rows`` x 10 rows,
  ending in a summary: plain PySpark vs exoflow none (the plan Spark analyses grows with d);
* **width**: w independent aggregations of one shared source, gathered into one value:
  plain PySpark (w separate jobs) vs exoflow none (the source cached once, branches run
  concurrently).

For every point: median/min/max seconds and the peak resident memory of the driver's Python
process and of Spark's driver JVM during that point's runs (``VmHWM`` reset before each run;
the JVM's peak mostly reflects heap it committed earlier, since a JVM rarely returns it).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import PeakMemory, command, machine, measure, save, spark_session
from peers import checked, heavy_pipeline, run_exoflow, run_plain, summary
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

import exoflow_spark as xf

# -- depth -----------------------------------------------------------------------------------


def deep_stages(depth: int, rows: int) -> list[Callable[..., DataFrame]]:
    """``depth`` narrow stages; stage 0 is the source."""
    stages: list[Callable[..., DataFrame]] = [
        lambda spark: spark.range(rows).select(F.col("id"), (F.col("id") % 97).alias("v"))
    ]
    for k in range(1, depth):
        stages.append(lambda spark, df, k=k: df.withColumn("v", (F.col("v") * 31 + k) % 1009))
    return stages


def run_deep_plain(spark: Any, depth: int, rows: int) -> list[int]:
    df = None
    for i, fn in enumerate(deep_stages(depth, rows)):
        df = fn(spark) if i == 0 else fn(spark, df)
    return summary(df)


def run_deep_exoflow(spark: Any, depth: int, rows: int, storage: str, wf: str) -> Any:
    node = None
    for i, fn in enumerate(deep_stages(depth, rows)):

        def body(*dfs: DataFrame, _fn: Callable[..., DataFrame] = fn) -> DataFrame:
            return _fn(spark, *dfs)

        body.__name__ = f"layer{i}"
        t = xf.task(body)
        node = t.bind() if node is None else t.bind(node)

    @xf.task
    def result(df: DataFrame) -> list[int]:
        return summary(df)

    return xf.run(result.bind(node), workflow_id=wf, storage=storage, spark=spark)


# -- width -----------------------------------------------------------------------------------


def wide_source(spark: Any, rows: int) -> DataFrame:
    return spark.range(rows).select(
        F.col("id"), (F.col("id") % 64).alias("g"), (F.col("id") * 7 % 1000).alias("v")
    )


def branch(df: DataFrame, i: int) -> int:
    row = df.filter(F.col("g") % 16 == i % 16).agg(F.sum(F.col("v") * (i + 1)).alias("s")).first()
    return int(row["s"] or 0)


def run_wide_plain(spark: Any, width: int, rows: int) -> list[int]:
    src = wide_source(spark, rows)
    return [branch(src, i) for i in range(width)]


def run_wide_exoflow(spark: Any, width: int, rows: int, storage: str, wf: str) -> Any:
    @xf.task
    def source() -> DataFrame:
        return wide_source(spark, rows)

    @xf.task
    def agg(df: DataFrame, i: int) -> int:
        return branch(df, i)

    @xf.task
    def gather(*xs: int) -> list[int]:
        return list(xs)

    src = source.bind()
    return xf.run(
        gather.bind(*(agg.bind(src, i) for i in range(width))),
        workflow_id=wf,
        storage=storage,
        spark=spark,
    )


# -- sweeps ----------------------------------------------------------------------------------


def sweep(
    label: str,
    points: list[int],
    make: Callable[[int], dict[str, Callable[[int], Any]]],
    want: Callable[[int], Any],
    mem: PeakMemory,
    reps: int,
    warmup: int,
    work: Path,
) -> list[dict[str, Any]]:
    """Measure every candidate at every point; one row per (point, candidate)."""
    rows = []
    for x in points:
        expected = want(x)
        peaks: dict[str, dict[str, float]] = {}

        def tracked(
            name: str, fn: Callable[[int], Any], peaks: dict[str, dict[str, float]] = peaks
        ) -> Callable[[int], Any]:
            def call(rep: int) -> Any:
                mem.reset()
                out = fn(rep)
                prev = peaks.setdefault(name, {})
                for k, v in mem.peak_mib().items():
                    prev[k] = max(prev.get(k, 0.0), v or 0.0)
                return out

            return call

        print(f"\n{label} = {x}")
        cands = make(x)
        times = measure(
            {n: checked(tracked(n, fn), f"{label}={x} {n}", expected) for n, fn in cands.items()},
            reps,
            warmup=warmup,
            after=lambda name, rep: shutil.rmtree(work, ignore_errors=True),
        )
        base = statistics.median(times["plain PySpark"])
        for name, ts in times.items():
            med = statistics.median(ts)
            rows.append(
                {
                    "sweep": label,
                    "x": x,
                    "candidate": name,
                    "median_s": round(med, 3),
                    "min_s": round(min(ts), 3),
                    "max_s": round(max(ts), 3),
                    "ratio": round(med / base, 3),
                    "python_peak_mib": round(peaks[name].get("python", 0.0)),
                    "jvm_peak_mib": round(peaks[name].get("jvm", 0.0)),
                }
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--short", action="store_true", help="fewer, smaller points (make bench)")
    p.add_argument("--rows", type=int, default=100_000, help="heavy pipeline rows at 1x")
    p.add_argument("--sizes", default="1,2,4,8")
    p.add_argument("--depths", default="8,16,32,64")
    p.add_argument("--widths", default="2,4,8,16")
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--warmup", type=int, default=1)
    a = p.parse_args(argv)
    if a.short:  # no sync candidate (peers.py measures it), two points per sweep
        a.rows, a.sizes, a.depths, a.widths = 20_000, "1,4", "8,32", "2,8"
    sizes = [int(x) for x in a.sizes.split(",")]
    depths = [int(x) for x in a.depths.split(",")]
    widths = [int(x) for x in a.widths.split(",")]
    spark, startup = spark_session("exoflow-bench-scaling")
    mem = PeakMemory(spark)
    work = Path(tempfile.mkdtemp(prefix="exoflow-bench-scaling-"))
    print(
        f"scaling benchmark: heavy pipeline {a.rows:,} rows x {sizes}, depths {depths}, widths "
        f"{widths}; {a.warmup} warm-up + {a.reps} reps (session start-up {startup:.1f} s)"
    )

    def where(tag: str, rep: int) -> str:
        return str(work / f"{tag}-{rep + 100}")

    def size_candidates(x: int) -> dict[str, Callable[[int], Any]]:
        pipe = heavy_pipeline(a.rows * x)
        c: dict[str, Callable[[int], Any]] = {"plain PySpark": lambda rep: run_plain(spark, pipe)}
        for policy in ("none", "cost-based") if a.short else ("none", "cost-based", "sync"):
            c[f"exoflow {policy}"] = lambda rep, policy=policy: run_exoflow(
                spark, pipe, policy, where(policy, rep), f"size-{x}-{policy}"
            )
        return c

    deep_rows = a.rows * 10
    rows = sweep(
        "data size (x rows)",
        sizes,
        size_candidates,
        lambda x: run_plain(spark, heavy_pipeline(a.rows * x)),
        mem,
        a.reps,
        a.warmup,
        work,
    )
    rows += sweep(
        "depth (stages)",
        depths,
        lambda d: {
            "plain PySpark": lambda rep: run_deep_plain(spark, d, deep_rows),
            "exoflow none": lambda rep: run_deep_exoflow(
                spark, d, deep_rows, where("deep", rep), f"deep-{d}"
            ),
        },
        lambda d: run_deep_plain(spark, d, deep_rows),
        mem,
        a.reps,
        a.warmup,
        work,
    )
    rows += sweep(
        "width (branches)",
        widths,
        lambda w: {
            "plain PySpark": lambda rep: run_wide_plain(spark, w, deep_rows),
            "exoflow none": lambda rep: run_wide_exoflow(
                spark, w, deep_rows, where("wide", rep), f"wide-{w}"
            ),
        },
        lambda w: run_wide_plain(spark, w, deep_rows),
        mem,
        a.reps,
        a.warmup,
        work,
    )
    print("\n| sweep | x | candidate | median s | ratio | python peak MiB | JVM peak MiB |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['sweep']} | {r['x']} | {r['candidate']} | {r['median_s']:.3f} | "
            f"{r['ratio']:.2f}x | {r['python_peak_mib']} | {r['jvm_peak_mib']} |"
        )
    path = save(
        "scaling",
        {
            "benchmark": "scaling",
            "title": "Scaling with data size, DAG depth and DAG width",
            "command": command(),
            "machine": machine(),
            "params": {
                "rows": a.rows,
                "deep_and_wide_rows": deep_rows,
                "reps": a.reps,
                "warmup": a.warmup,
            },
            "startup_s": round(startup, 1),
            "results": rows,
            "columns": [
                ["sweep", "sweep", "s"],
                ["x", "x", "d"],
                ["candidate", "candidate", "s"],
                ["median_s", "median s", ".3f"],
                ["min_s", "min s", ".3f"],
                ["max_s", "max s", ".3f"],
                ["ratio", "vs plain", ".2fx"],
                ["python_peak_mib", "Python peak MiB", "d"],
                ["jvm_peak_mib", "JVM peak MiB", "d"],
            ],
            "plot": {
                "kind": "line",
                "facet": "sweep",
                "x": "x",
                "y": "median_s",
                "group": "candidate",
                "ylabel": "seconds (median)",
                "xlabel": "size multiple, stages or branches (see the panel title)",
                "logx": True,
            },
            "notes": [
                f"Data size: the heavy pipeline of peers.py at {a.rows:,} rows per 1x. Depth "
                f"and width: {deep_rows:,} rows.",
                "Peak memory: VmHWM of the driver's Python process and JVM, reset before each "
                "run; the JVM keeps heap it committed earlier, so its figure rarely drops.",
            ],
        },
    )
    print(f"\nsaved {path}")
    spark.stop()
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
