"""A streaming workflow run as its own driver process by tests/spark/test_streaming.py.

The streaming task reads a Delta table of events one commit per micro-batch and writes two
tables per batch with ``foreach_batch`` (the events, and a per-epoch count MERGEd in), so a
crash between the two writes is a crash in the middle of a micro-batch.
"""

from __future__ import annotations

import argparse
import os

from pyspark.sql import functions as F

import exoflow_spark as xf
from drivers import driver_session


def run(spark, *, storage: str, source: str, out: str, workflow_id: str, trigger: str) -> None:
    """Run (or resume) the streaming workflow on ``spark``: what the driver process does, and
    what a test does in its own process to resume after killing one."""
    events_out = os.path.join(out, "events")
    counts_out = os.path.join(out, "per_epoch")

    def write_batch(batch: xf.StreamBatch) -> None:
        batch.write(batch.df, events_out)
        counts = batch.df.groupBy("epoch").agg(F.count("*").alias("n"))
        merged = counts.alias("c")
        if batch.batch_id > 0 or os.path.exists(counts_out):
            # add this batch's counts to what the table holds (an epoch may span batches)
            old = (
                spark.read.format("delta").load(counts_out) if os.path.exists(counts_out) else None
            )
            if old is not None:
                merged = counts.join(old.withColumnRenamed("n", "old"), "epoch", "left").select(
                    "epoch", (F.col("n") + F.coalesce(F.col("old"), F.lit(0))).alias("n")
                )
        batch.merge(merged, counts_out, keys=["epoch"])

    @xf.streaming_task(trigger=trigger, foreach_batch=write_batch)
    def online():
        reader = xf.get_spark().readStream.format("delta")
        return reader.option("maxFilesPerTrigger", 1).load(source)

    xf.run(online.bind(), workflow_id=workflow_id, storage=storage, spark=spark)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--storage", required=True)
    p.add_argument("--source", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--workflow-id", default="stream")
    p.add_argument("--trigger", default="available_now")
    args = p.parse_args()
    spark = driver_session("local[2]", "exoflow-stream-job")
    xf.install_stop_handlers()
    run(
        spark,
        storage=args.storage,
        source=args.source,
        out=args.out,
        workflow_id=args.workflow_id,
        trigger=args.trigger,
    )
    spark.stop()


if __name__ == "__main__":
    main()
