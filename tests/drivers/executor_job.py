"""Executor-loss job for tests/spark/test_executor_loss.py, run on local-cluster (real executor
JVMs).

`prepared` reads a source whose rows bump an accumulator each time they are computed. Its
output feeds `enriched` (checkpoint=False, read by two consumers, so cached). `first` fills
the cache, then the job writes `<signal-dir>/ready` (with its application id) and waits for
`<signal-dir>/go`: meanwhile the test kills one executor JVM, losing cached blocks. `second`
then needs those blocks again. The job prints how often source rows were computed.

With ``--checkpoint async`` `prepared` counts its rows deterministically (a Python UDF, so
the engine computes it into the cache in ``$EXOFLOW_CACHE_REPLICAS`` copies before `enriched`
reads it) and is written in the background; the test holds that write until after the kill.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from pyspark.sql import functions as F

import exoflow_spark as xf
from drivers import driver_session

ROWS = 200_000


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--storage", required=True)
    p.add_argument("--signal-dir", required=True)
    p.add_argument("--checkpoint", choices=["true", "false", "async"], required=True)
    a = p.parse_args()
    spark = driver_session("local-cluster[2,1,1024]", "exoflow-executor-loss", shuffle_partitions=4)

    acc = spark.sparkContext.accumulator(0)

    def bump(x):
        acc.add(1)
        return x

    touch = F.udf(bump, "long")
    if a.checkpoint != "async":  # computed once per use, never cached as a Python stage
        touch = touch.asNondeterministic()

    @xf.task(checkpoint="async" if a.checkpoint == "async" else a.checkpoint == "true")
    def prepared():
        return spark.range(0, ROWS, 1, 8).select(touch("id").alias("id"))

    @xf.task
    def enriched(df):
        return df.withColumn("g", F.col("id") % 10).withColumn("v", F.col("id") * 2)

    @xf.task
    def first(df):
        total = df.agg(F.sum("v")).first()[0]
        # written whole, then renamed: the test polls for the file and reads it at once
        ready = os.path.join(a.signal_dir, "ready")
        with open(ready + ".tmp", "w") as fh:
            json.dump({"app_id": spark.sparkContext.applicationId}, fh)
        os.replace(ready + ".tmp", ready)
        deadline = time.time() + 120
        while not os.path.exists(os.path.join(a.signal_dir, "go")):
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
        second.bind(e, first.bind(e)), workflow_id="executor-loss", storage=a.storage, spark=spark
    )
    print("RESULT " + json.dumps({**out, "source_rows_computed": acc.value}), flush=True)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
