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


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--storage", required=True)
    p.add_argument("--source", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--workflow-id", default="stream")
    p.add_argument("--trigger", default="available_now")
    args = p.parse_args()
    spark = driver_session("local[2]", "exoflow-stream-job")
    events_out = os.path.join(args.out, "events")
    counts_out = os.path.join(args.out, "per_epoch")

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

    @xf.streaming_task(trigger=args.trigger, foreach_batch=write_batch)
    def online():
        return (
            xf.get_spark()
            .readStream.format("delta")
            .option("maxFilesPerTrigger", 1)
            .load(args.source)
        )

    xf.install_stop_handlers()
    xf.run(online.bind(), workflow_id=args.workflow_id, storage=args.storage, spark=spark)
    spark.stop()


if __name__ == "__main__":
    main()
