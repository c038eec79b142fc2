"""Executor loss while a nondeterministic output's async checkpoint is pending, for
tests/spark/test_executor_loss.py, run on local-cluster (real executor JVMs).

`sample` (nondeterministic: every row gets fresh random bytes, so a recomputed partition
differs) is checkpointed with ``checkpoint="auto"``, which always writes a nondeterministic
output in the background and first computes it into Spark's cache (to measure it), so cached
blocks exist before the write; `stats` (a committed observer) summarises it and `publish` (a
sink) writes it with those statistics. The test holds the background writer at
``sample:before-async-write`` (``EXOFLOW_HOLD_AT``), gives `stats` time to read, SIGKILLs one
executor JVM (losing cached blocks of `sample`) and lets the write go. The job prints how
often `sample`'s rows were computed (more than ROWS: lost partitions were recomputed).
(``checkpoint="async"`` leaves nothing cached before its write: the write's own job computes
the output, so that mode has no such window to test.)
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from pyspark.sql import functions as F

import exoflow_spark as xf
from drivers import driver_session, wait_for_executors

ROWS = 20_000


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--storage", required=True)
    p.add_argument("--sink", required=True)
    p.add_argument("--signal-dir", required=True)
    a = p.parse_args()
    spark = driver_session("local-cluster[2,1,1024]", "exoflow-volatile-loss", shuffle_partitions=4)
    # both executors up before the first job: each then computes (and caches) a partition of
    # sample, so whichever one the test kills held cached blocks
    wait_for_executors(spark, 2)
    with open(os.path.join(a.signal_dir, "app"), "w") as fh:
        json.dump({"app_id": spark.sparkContext.applicationId}, fh)
    acc = spark.sparkContext.accumulator(0)

    def draw(_: int) -> int:
        acc.add(1)
        return int.from_bytes(os.urandom(4), "little")

    noise = F.udf(draw, "long").asNondeterministic()

    @xf.task(deterministic=False, checkpoint="auto")
    def sample():
        return spark.range(0, ROWS, 1, 8).select("id", noise("id").alias("r"))

    @xf.task(checkpoint=True)
    def stats(df):
        with open(os.path.join(a.signal_dir, "stats-started"), "w"):
            pass  # it is about to read sample (the test then waits for its commit)
        return df.agg(F.count("*").alias("n"), F.sum("r").alias("s"))

    @xf.task
    def publish(df, st):
        row = st.first()
        xf.write_delta(df.withColumn("n", F.lit(row["n"])).withColumn("s", F.lit(row["s"])), a.sink)
        return {"n": row["n"], "s": row["s"]}

    s = sample.bind()
    out = xf.run(
        publish.bind(s, stats.bind(s)), workflow_id="volatile-loss", storage=a.storage, spark=spark
    )
    print("RESULT " + json.dumps({**out, "rows_computed": acc.value}), flush=True)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
