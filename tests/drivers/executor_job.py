"""Executor-loss job for tests/spark/test_executor_loss.py, run on local-cluster (real executor
JVMs).

One driver runs the workflow once per ``--run`` (``true``, ``false`` or ``async``, with
``:<replicas>`` to set ``$EXOFLOW_CACHE_REPLICAS`` for that run), one after the other in one
SparkSession: the test compares a run with its control without paying for a second driver and
cluster. Each run's signals live in ``<signal-dir>/<run>/``.

`prepared` reads a source whose rows bump an accumulator each time they are computed. Its
output feeds `enriched` (checkpoint=False, read by two consumers, so cached). `first` fills
the cache, then the job writes `<run signals>/ready` (its application id, and the executor
holding the most blocks this run cached) and waits for `<run signals>/go`: meanwhile the test
kills that executor's JVM, losing cached blocks. `second` then needs those blocks again. The
job prints how often source rows were computed, as ``RESULT <run> {...}``. Before each run
it waits until the cluster has two executors again (the standalone master replaces the one
the test killed).

With ``async`` `prepared` counts its rows deterministically (a Python UDF, so the engine
computes it into the cache in ``$EXOFLOW_CACHE_REPLICAS`` copies before `enriched` reads it)
and is written in the background; with ``--hold-write`` that write waits at its hold point
(``<run signals>/prepared.before-async-write.held``) until the test says go.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from pyspark.sql import functions as F

import exoflow_spark as xf
from drivers import driver_session, wait_for_executors

ROWS = 200_000
EXECUTORS = 2


def cached_blocks(spark: Any, since: int) -> dict[str, int]:
    """How many cached blocks of RDDs numbered ``since`` or later each executor holds, as the
    block manager master knows it (an executor reports a block before its task ends)."""
    sc = spark.sparkContext._jsc.sc()
    convert = spark._jvm.scala.jdk.javaapi.CollectionConverters
    counts = {}
    for status in sc.env().blockManager().master().getStorageStatus():
        executor = status.blockManagerId().executorId()
        if executor != "driver":
            blocks = convert.asJava(status.rddBlocks().keySet())
            counts[executor] = sum(1 for b in blocks if b.rddId() >= since)
    return counts


def run_once(spark: Any, storage: str, signals: Path, checkpoint: str) -> dict[str, Any]:
    acc = spark.sparkContext.accumulator(0)
    # RDDs this run creates are numbered from here: blocks of an earlier run's cache (its
    # unpersist does not block) are not counted when choosing the executor to kill
    first_rdd = spark.sparkContext._jsc.sc().newRddId()

    def bump(x):
        acc.add(1)
        return x

    touch = F.udf(bump, "long")
    if checkpoint != "async":  # computed once per use, never cached as a Python stage
        touch = touch.asNondeterministic()

    @xf.task(checkpoint="async" if checkpoint == "async" else checkpoint == "true")
    def prepared():
        return spark.range(0, ROWS, 1, 8).select(touch("id").alias("id"))

    @xf.task
    def enriched(df):
        return df.withColumn("g", F.col("id") % 10).withColumn("v", F.col("id") * 2)

    @xf.task
    def first(df):
        total = df.agg(F.sum("v")).first()[0]
        # the victim is chosen by the blocks it holds, not by its pid: a replaced executor
        # holds few, and pids wrap around
        blocks = cached_blocks(spark, first_rdd)
        victim = max(blocks, key=lambda executor: blocks[executor])
        ready = {"app_id": spark.sparkContext.applicationId, "victim": victim, "blocks": blocks}
        # written whole, then renamed: the test polls for the file and reads it at once
        tmp = signals / "ready.tmp"
        tmp.write_text(json.dumps(ready))
        os.replace(tmp, signals / "ready")
        deadline = time.time() + 120
        while not (signals / "go").exists():
            if time.time() > deadline:
                raise TimeoutError("the test never said go")
            time.sleep(0.1)
        return total

    @xf.task
    def second(df, first_total):
        rows = df.groupBy("g").agg(F.sum("v").alias("v")).collect()
        return {"first": first_total, "second": sum(r.v for r in rows), "groups": len(rows)}

    e = enriched.bind(prepared.bind())
    out = xf.run(
        second.bind(e, first.bind(e)),
        workflow_id=f"executor-loss-{signals.name}",
        storage=storage,
        spark=spark,
    )
    return {**out, "source_rows_computed": acc.value}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--storage", required=True)
    p.add_argument("--signal-dir", required=True)
    p.add_argument("--run", action="append", required=True, help="true|false|async[:replicas]")
    p.add_argument("--hold-write", action="store_true", help="hold prepared's async write")
    a = p.parse_args()
    spark = driver_session("local-cluster[2,1,1024]", "exoflow-executor-loss", shuffle_partitions=4)
    executors: set[str] = set()
    for run in a.run:
        checkpoint, _, replicas = run.partition(":")
        if checkpoint not in ("true", "false", "async"):
            raise SystemExit(f"--run {run!r}: expected true, false or async[:replicas]")
        signals = Path(a.signal_dir) / run.replace(":", "-")
        signals.mkdir(parents=True)
        os.environ.pop("EXOFLOW_CACHE_REPLICAS", None)
        if replicas:
            os.environ["EXOFLOW_CACHE_REPLICAS"] = replicas
        if a.hold_write:
            os.environ.update(
                EXOFLOW_HOLD_AT="prepared:before-async-write", EXOFLOW_HOLD_DIR=str(signals)
            )
        executors = wait_for_executors(spark, EXECUTORS, replaced=executors)
        result = run_once(spark, a.storage, signals, checkpoint)
        print(f"RESULT {signals.name} " + json.dumps(result), flush=True)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
