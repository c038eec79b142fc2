"""Engine overhead on a fused 10-stage ETL: plain PySpark vs exoflow-spark checkpoint modes.

    .venv/bin/python benchmarks/overhead.py [--rows 3000000] [--reps 5]

Every candidate computes the same 9 DataFrame stages and writes the result to a Delta table
(plain PySpark: ``df.write``; exoflow: ``xf.write_delta`` in the last task). Candidates run
alternately in one process on one SparkSession after a warm-up; the median, min and max of
the repetitions and the ratio to plain PySpark are printed. Target: checkpoint=False within
5% of plain PySpark (the engine must not materialize between tasks).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import command, machine, measure, save, summarise, table
from pyspark.sql import functions as F

import exoflow_spark as xf


def stages(spark, rows: int):
    """The 9 compute stages, as functions DataFrame -> DataFrame (stage 1 is the source)."""
    dim = spark.range(100).select(F.col("id").alias("store"), (F.col("id") % 7).alias("region"))
    return [
        lambda _: spark.range(rows).select(F.col("id"), (F.col("id") % 100).alias("store")),
        lambda df: df.withColumn("price", (F.col("id") * 31 % 997) / 10.0),
        lambda df: df.withColumn("qty", F.col("id") % 5 + 1),
        lambda df: df.filter(F.col("price") > 1.0),
        lambda df: df.withColumn("revenue", F.col("price") * F.col("qty")),
        lambda df: df.join(F.broadcast(dim), "store"),
        lambda df: df.groupBy("region", "store").agg(
            F.sum("revenue").alias("revenue"), F.count("*").alias("orders")
        ),
        lambda df: df.withColumn("avg_order", F.col("revenue") / F.col("orders")),
        lambda df: df.filter(F.col("orders") > 0),
    ]


def plain(spark, rows: int, out: str) -> None:
    df = None
    for stage in stages(spark, rows):
        df = stage(df)
    df.write.format("delta").mode("overwrite").save(out)


def exoflow_dag(spark, rows: int, out: str, mode) -> xf.Node:
    node = None
    for i, stage in enumerate(stages(spark, rows)):

        def body(df=None, _stage=stage):
            return _stage(df)

        body.__name__ = f"stage{i + 1}"
        t = xf.task(body, checkpoint=mode)
        node = t.bind() if node is None else t.bind(node)

    @xf.task
    def sink(df):
        xf.write_delta(df, out, mode="overwrite")

    return sink.bind(node)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=3_000_000)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument(
        "--modes",
        default="false,async,true",
        help="exoflow checkpoint modes to compare (comma-separated)",
    )
    a = p.parse_args()
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    t0 = time.perf_counter()
    spark = xf.create_spark_session(
        "local[*]",
        app_name="exoflow-bench-overhead",
        conf={
            "spark.ui.enabled": "false",
            "spark.sql.shuffle.partitions": "4",
            "spark.driver.memory": "4g",
        },
    )
    spark.sparkContext.setLogLevel("ERROR")
    startup = time.perf_counter() - t0
    work = Path(tempfile.mkdtemp(prefix="exoflow-bench-"))
    modes = {"false": False, "async": "async", "true": True}
    candidates = {"plain PySpark": lambda rep: plain(spark, a.rows, str(work / "plain"))}
    for label in (m.strip() for m in a.modes.split(",")):
        mode = modes[label]

        def run(rep, mode=mode, label=label):
            xf.run(
                exoflow_dag(spark, a.rows, str(work / f"exo-{label}"), mode),
                workflow_id=f"bench-{label}-{rep + 10}",
                storage=str(work / "exo"),
                spark=spark,
            )

        candidates[f"exoflow checkpoint={label}"] = run
    print(
        f"overhead benchmark: {a.rows:,} rows, 9 stages + Delta sink, {a.reps} reps "
        f"(session start-up {startup:.1f} s, not counted)"
    )
    times = measure(candidates, a.reps, warmup=a.warmup)
    rows = summarise(times, "plain PySpark")
    print()
    print(table(rows, "plain PySpark"))
    path = save(
        "overhead",
        {
            "benchmark": "overhead",
            "command": command(),
            "startup_s": round(startup, 1),
            "rows": a.rows,
            "reps": a.reps,
            "machine": machine(),
            "results": rows,
            "raw_seconds": times,
        },
    )
    print(f"\nsaved {path}")
    spark.stop()
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
