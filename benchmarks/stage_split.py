"""What writing each stage of a Python UDF chain costs, per checkpoint format.

    .venv/bin/python benchmarks/stage_split.py [--rows 150000] [--reps 3]

The chain of ``benchmarks/recovery.py`` (four Python UDF stages, each scoring the previous
one's output, then an aggregation) in one SparkSession, four ways, alternated after a
warm-up:

* ``fused``: no checkpoint, the four stages in one pipeline (``checkpoint=False``);
* ``delta`` / ``parquet``: each stage written with ``write_checkpoint`` by the job that
  computes it and read back by the next (a sync checkpoint of every stage, in that format);
* ``cache``: each stage computed into Spark's cache by a job of its own, read by the next.

What a split costs over ``fused`` is what ``checkpoint="auto"`` pays per output it decides
to write: the write, the consumer reading it back, and the stage boundary. It chose its
default format from this (``storage/checkpoints.run_formats``). Medians of the
repetitions; the JSON lands in ``benchmarks/results/stage_split.json``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    SUMMARY_COLUMNS,
    command,
    machine,
    markdown,
    measure,
    save,
    spark_session,
    summarise,
)
from pyspark.sql import functions as F

from exoflow_spark.storage.checkpoints import read_checkpoint, write_checkpoint

STAGES = 4


def heavy(x: int) -> int:
    """recovery.py's UDF: compute that outweighs writing its output."""
    h = x
    for _ in range(300):
        h = (h * 1103515245 + 12345) & 0x7FFFFFFF
    return h % 1000


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=150_000)
    p.add_argument("--reps", type=int, default=3)
    a = p.parse_args(argv)
    spark, startup = spark_session("exoflow-bench-stage-split")
    work = Path(tempfile.mkdtemp(prefix="exoflow-stage-split-"))
    score = F.udf(heavy, "long")

    def source() -> Any:
        parts = 4 * spark.sparkContext.defaultParallelism
        return spark.range(0, a.rows, 1, parts).select(
            F.col("id").alias("order_id"),
            (F.col("id") % 20).alias("segment"),
            ((F.col("id") * 37) % 1000 / 10.0).alias("amount"),
        )

    def stage(df: Any, k: int) -> Any:
        prev = F.col("order_id") if k == 1 else F.col(f"score{k - 1}")
        return df.withColumn(f"score{k}", score(prev + F.lit(k)))

    def tail(df: Any) -> None:
        df.groupBy("segment", (F.col(f"score{STAGES}") % 10).alias("bucket")).agg(
            F.sum("amount")
        ).collect()

    def fused(rep: int) -> None:
        df = source()
        for k in range(1, STAGES + 1):
            df = stage(df, k)
        tail(df)

    def split(fmt: Any) -> Any:
        def run(rep: int) -> None:
            df = source()
            for k in range(1, STAGES + 1):
                dv = write_checkpoint(stage(df, k), str(work / f"{fmt}-{rep}-{k}"), fmt)
                df = read_checkpoint(spark, dv)
            tail(df)

        return run

    def cached(rep: int) -> None:
        df, before = source(), None
        for k in range(1, STAGES + 1):
            df = stage(df, k).persist()
            df.count()
            if before is not None:
                before.unpersist()
            before = df
        tail(df)
        df.unpersist()

    def clean(name: str, rep: int) -> None:
        for path in work.glob(f"{name}-{rep}-*"):
            shutil.rmtree(path, ignore_errors=True)

    candidates = {"fused": fused, "delta": split("delta"), "parquet": split("parquet")}
    candidates["cache"] = cached
    try:
        times = measure(candidates, a.reps, warmup=1, after=clean)
    finally:
        spark.stop()
        shutil.rmtree(work, ignore_errors=True)
    rows = summarise(times, "fused")
    print(markdown(rows, SUMMARY_COLUMNS))
    path = save(
        "stage_split",
        {
            "benchmark": "stage_split",
            "title": "Writing each stage of a Python UDF chain, per checkpoint format",
            "command": command(),
            "machine": machine(),
            "params": vars(a),
            "startup_s": round(startup, 1),
            "results": rows,
            "columns": SUMMARY_COLUMNS,
            "plot": {
                "kind": "barh",
                "x": "candidate",
                "ys": ["median_s"],
                "labels": {"median_s": "median s"},
                "ylabel": "seconds (median)",
            },
            "notes": [
                f"{STAGES} Python UDF stages over {a.rows:,} rows, medians of {a.reps} "
                "alternated repetitions after a warm-up, local disk. delta/parquet: every "
                "stage written by the job that computes it, read back by the next; cache: "
                "every stage computed into Spark's cache by a job of its own.",
            ],
        },
    )
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
