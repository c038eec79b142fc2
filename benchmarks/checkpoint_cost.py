"""What one checkpoint costs in each format: Delta table version vs plain Parquet files.

    .venv/bin/python benchmarks/checkpoint_cost.py [--reps 5] [--rows 1000000] [--megabytes 64]

Per format, alternated (delta, parquet, parquet, delta, ...) after a warm-up, in one
SparkSession on a local storage root:

* the storage calibration the cost model uses (``recovery.measure_throughput``, forced): a
  one-row checkpoint gives the fixed cost of a write and of a read, a ``--megabytes``
  checkpoint of incompressible data the bytes per second;
* the wall time of one realistic checkpoint: ``--rows`` rows of the cheap ETL's first stage
  (three long columns), written with ``write_checkpoint`` as a sync checkpoint is, then read
  back whole (``read_checkpoint`` into Spark's ``noop`` sink) as a restore is.

Medians over the repetitions; the JSON lands in ``benchmarks/results/checkpoint_cost.json``.
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

from _harness import command, machine, markdown, save, spark_session
from pyspark.sql import functions as F

from exoflow_spark.engine.cost import measure_throughput
from exoflow_spark.storage.checkpoints import read_checkpoint, write_checkpoint
from exoflow_spark.storage.logfs import LocalLogFS

FORMATS = ("delta", "parquet")


def one_checkpoint(spark: Any, path: str, rows: int, fmt: Any) -> tuple[float, float]:
    """Seconds to write ``rows`` rows as one checkpoint, and to read it back whole."""
    df = spark.range(rows).select(
        F.col("id"),
        (F.col("id") % 100).alias("store"),
        (F.col("id") * 7919 % 50000).alias("customer"),
    )
    start = time.perf_counter()
    dv = write_checkpoint(df, path, fmt)
    written = time.perf_counter() - start
    start = time.perf_counter()
    read_checkpoint(spark, dv).write.format("noop").mode("overwrite").save()
    return written, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--megabytes", type=int, default=64)
    a = p.parse_args(argv)
    spark, startup = spark_session("exoflow-bench-checkpoint-cost")
    work = Path(tempfile.mkdtemp(prefix="exoflow-ckpt-cost-"))
    samples: dict[str, dict[str, list[float]]] = {f: {} for f in FORMATS}
    try:
        for rep in range(-1, a.reps):  # rep -1: warm-up (class loading, JIT), not counted
            for fmt in FORMATS if rep % 2 == 0 else reversed(FORMATS):
                root = work / f"{fmt}-{rep}"
                tp = measure_throughput(
                    spark, LocalLogFS(str(root)), megabytes=a.megabytes, force=True, fmt=fmt
                )
                write_s, read_s = one_checkpoint(spark, str(root / "ckpt"), a.rows, fmt)
                shutil.rmtree(root, ignore_errors=True)
                if rep < 0:
                    continue
                got = {
                    "write_fixed_s": tp.write_fixed_s,
                    "write_mb_s": tp.write_bps / 1e6,
                    "read_fixed_s": tp.read_fixed_s,
                    "read_mb_s": tp.read_bps / 1e6,
                    "checkpoint_write_s": write_s,
                    "checkpoint_read_s": read_s,
                }
                for k, v in got.items():
                    samples[fmt].setdefault(k, []).append(v)
                print(
                    f"  rep {rep + 1}/{a.reps} {fmt}: "
                    + ", ".join(f"{k} {v:.3f}" for k, v in got.items())
                )
        rows = [
            {"format": fmt, **{k: round(statistics.median(v), 3) for k, v in samples[fmt].items()}}
            for fmt in FORMATS
        ]
    finally:
        spark.stop()
        shutil.rmtree(work, ignore_errors=True)
    columns = [
        ["format", "format", "s"],
        ["write_fixed_s", "fixed write s", ".3f"],
        ["write_mb_s", "write MB/s", ".0f"],
        ["read_fixed_s", "fixed read s", ".3f"],
        ["read_mb_s", "read MB/s", ".0f"],
        ["checkpoint_write_s", f"{a.rows:,}-row checkpoint: write s", ".3f"],
        ["checkpoint_read_s", "read back s", ".3f"],
    ]
    print(markdown(rows, columns))
    path = save(
        "checkpoint_cost",
        {
            "benchmark": "checkpoint_cost",
            "title": "What one checkpoint costs, per format",
            "command": command(),
            "machine": machine(),
            "params": vars(a),
            "startup_s": round(startup, 1),
            "results": rows,
            "columns": columns,
            "plot": {
                "kind": "barh",
                "x": "format",
                "ys": ["write_fixed_s", "checkpoint_write_s", "checkpoint_read_s"],
                "labels": {
                    "write_fixed_s": "fixed cost of a write",
                    "checkpoint_write_s": f"{a.rows:,}-row checkpoint: write",
                    "checkpoint_read_s": f"{a.rows:,}-row checkpoint: read back",
                },
                "ylabel": "seconds (median)",
            },
            "notes": [
                f"Medians of {a.reps} alternated repetitions after a warm-up, local disk. "
                "Fixed costs and MB/s come from the cost model's own calibration "
                f"(a one-row and a {a.megabytes} MB checkpoint of incompressible data).",
            ],
        },
    )
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
