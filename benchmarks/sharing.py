"""Data sharing: one expensive output read by 1, 2, 4 and 8 consumers.

    .venv/bin/python benchmarks/sharing.py [--short] [--rows 200000] [--consumers 1,2,4,8]

The expensive output is a Python-UDF score over ``--rows`` rows; consumer ``i`` counts and
sums the scores of bucket ``i``. Candidates, alternated ABBA in one process per consumer
count:

* ``exoflow shared cache``: the expensive task with ``checkpoint=False``; with two or more
  consumers the engine caches it once and the consumer tasks (independent, run concurrently)
  read the cache;
* ``exoflow shared cache + async checkpoint``: the same, made durable in the background;
* ``separate jobs sharing parquet``: one job computes the output and writes parquet, then
  each consumer is a separate job reading that parquet (how separately scheduled jobs of an
  orchestrator share data);
* ``recompute per consumer``: each consumer is a separate plain PySpark job on the lazy plan,
  recomputing the expensive output (no sharing at all, for scale).

Every candidate must return the same per-consumer results.
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

from _harness import command, machine, measure, save, spark_session
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

import exoflow_spark as xf


def expensive(spark: Any, rows: int, rounds: int) -> DataFrame:
    """A Python UDF over every row: dear to recompute, cheap to keep."""

    def score(x):  # no hints: pyspark 4 would try to read a pandas UDF type from them
        h = x
        for _ in range(rounds):
            h = (h * 1103515245 + 12345) & 0x7FFFFFFF
        return h % 1000

    udf = F.udf(score, "long")
    return spark.range(rows).select(
        F.col("id"), (F.col("id") % 8).alias("bucket"), udf(F.col("id")).alias("score")
    )


def consume(df: DataFrame, i: int) -> list[int]:
    """Consumer ``i``: rows and score total of bucket ``i``."""
    row = df.filter(F.col("bucket") == i).agg(F.count("*").alias("n"), F.sum("score").alias("s"))
    r = row.first()
    return [int(r["n"]), int(r["s"] or 0)]


def run_exoflow(
    spark: Any, rows: int, rounds: int, k: int, mode: Any, storage: str, wf: str
) -> list[list[int]]:
    @xf.task(checkpoint=mode)
    def scored() -> DataFrame:
        return expensive(spark, rows, rounds)

    @xf.task
    def consumer(df: DataFrame, i: int) -> list[int]:
        return consume(df, i)

    @xf.task
    def results(*outs: list[int]) -> list[list[int]]:
        return list(outs)

    src = scored.bind()
    return xf.run(
        results.bind(*(consumer.bind(src, i) for i in range(k))),
        workflow_id=wf,
        storage=storage,
        spark=spark,
    )


def run_parquet(spark: Any, rows: int, rounds: int, k: int, path: str) -> list[list[int]]:
    expensive(spark, rows, rounds).write.mode("overwrite").parquet(path)
    return [consume(spark.read.parquet(path), i) for i in range(k)]


def run_recompute(spark: Any, rows: int, rounds: int, k: int) -> list[list[int]]:
    return [consume(expensive(spark, rows, rounds), i) for i in range(k)]


def candidates_for(
    spark: Any, rows: int, rounds: int, k: int, work: Path
) -> dict[str, Callable[[int], list[list[int]]]]:
    """Every candidate for ``k`` consumers, as ``fn(rep) -> per-consumer results``."""
    return {
        "exoflow shared cache": lambda rep: run_exoflow(
            spark, rows, rounds, k, False, str(work / f"exo-{rep + 100}"), f"share-{k}"
        ),
        "exoflow shared cache + async checkpoint": lambda rep: run_exoflow(
            spark, rows, rounds, k, "async", str(work / f"exo-async-{rep + 100}"), f"share-{k}"
        ),
        "separate jobs sharing parquet": lambda rep: run_parquet(
            spark, rows, rounds, k, str(work / f"parquet-{rep + 100}")
        ),
        "recompute per consumer": lambda rep: run_recompute(spark, rows, rounds, k),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--short", action="store_true", help="1, 4, 8 consumers, small, 2 reps")
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--rounds", type=int, default=100, help="UDF loop length per row")
    p.add_argument("--consumers", default="1,2,4,8")
    p.add_argument("--reps", type=int, default=4)
    p.add_argument("--warmup", type=int, default=1)
    a = p.parse_args(argv)
    if a.short:
        a.rows, a.consumers, a.reps = 50_000, "1,4,8", 2
    ks = [int(x) for x in a.consumers.split(",")]
    spark, startup = spark_session("exoflow-bench-sharing")
    work = Path(tempfile.mkdtemp(prefix="exoflow-bench-sharing-"))
    print(
        f"sharing benchmark: {a.rows:,} rows x UDF {a.rounds} rounds, consumers {ks}, "
        f"{a.warmup} warm-up + {a.reps} reps (session start-up {startup:.1f} s)"
    )
    rows = []
    for k in ks:
        want = run_recompute(spark, a.rows, a.rounds, k)
        cands = candidates_for(spark, a.rows, a.rounds, k, work)

        def checked(
            fn: Callable[[int], Any], label: str, want: Any = want
        ) -> Callable[[int], None]:
            def call(rep: int) -> None:
                got = fn(rep)
                if got != want:
                    raise AssertionError(f"{label}: {got} != {want}")

            return call

        print(f"\n{k} consumer(s)")
        times = measure(
            {n: checked(fn, f"{n} k={k}") for n, fn in cands.items()},
            a.reps,
            warmup=a.warmup,
            after=lambda name, rep: shutil.rmtree(work, ignore_errors=True),
        )
        base = statistics.median(times["separate jobs sharing parquet"])
        for name, ts in times.items():
            med = statistics.median(ts)
            rows.append(
                {
                    "consumers": k,
                    "candidate": name,
                    "median_s": round(med, 3),
                    "min_s": round(min(ts), 3),
                    "max_s": round(max(ts), 3),
                    "vs_parquet": round(med / base, 3),
                }
            )
    print("\n| consumers | candidate | median s | min s | max s | vs parquet |")
    print("|---:|---|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['consumers']} | {r['candidate']} | {r['median_s']:.3f} | {r['min_s']:.3f} | "
            f"{r['max_s']:.3f} | {r['vs_parquet']:.2f}x |"
        )
    path = save(
        "sharing",
        {
            "benchmark": "sharing",
            "title": "Data sharing: one expensive output, 1 to 8 consumers",
            "command": command(),
            "machine": machine(),
            "params": {"rows": a.rows, "rounds": a.rounds, "reps": a.reps, "warmup": a.warmup},
            "startup_s": round(startup, 1),
            "results": rows,
            "columns": [
                ["consumers", "consumers", "d"],
                ["candidate", "candidate", "s"],
                ["median_s", "median s", ".3f"],
                ["min_s", "min s", ".3f"],
                ["max_s", "max s", ".3f"],
                ["vs_parquet", "vs parquet hand-off", ".2fx"],
            ],
            "plot": {
                "kind": "line",
                "x": "consumers",
                "y": "median_s",
                "group": "candidate",
                "xlabel": "consumers of the expensive output",
                "ylabel": "seconds (median; lower is better)",
            },
            "notes": [
                "Consumers of the exoflow candidates are independent tasks, run concurrently "
                "(max_parallel=4); the parquet and recompute candidates run their consumer "
                "jobs one after another, as separately scheduled jobs would on 2 cores."
            ],
        },
    )
    print(f"\nsaved {path}")
    spark.stop()
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
