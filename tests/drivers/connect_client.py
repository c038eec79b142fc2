"""A workflow driven through Spark Connect, run as its own client process by test_connect.py.

The client has no JVM: every DataFrame operation goes to the server over gRPC, while the
workflow log is written by this process. Each task appends its name to
``<counter-dir>/<workflow>.<task>`` when it executes; crash points come from EXOFLOW_CRASH_AT.
Prints one JSON line with what the test checks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from pyspark.sql import functions as F

import exoflow_spark as xf
from exoflow_spark.spark.session import is_connect_session

ROWS = 5000


def bump(counter_dir: str, name: str) -> None:
    wf = xf.current_task().workflow_id
    with open(os.path.join(counter_dir, f"{wf}.{name}"), "a") as fh:
        fh.write("1\n")


def build(counter_dir: str, sink: str, labels) -> tuple[xf.Node, xf.Node]:
    """The sinked pipeline (a value output) and a DAG with a DataFrame output that also takes
    a DataFrame literal (fingerprinted by its semantic hash)."""

    @xf.task(checkpoint=True)
    def orders(n: int):
        bump(counter_dir, "orders")
        return (
            xf.get_spark()
            .range(n)
            .select(
                F.col("id").alias("order_id"),
                (F.col("id") % 7).alias("store"),
                (F.col("id") * 13 % 97).alias("amount"),
            )
        )

    @xf.task(checkpoint="async")
    def big(df):
        bump(counter_dir, "big")
        return df.filter(F.col("amount") > 40)

    @xf.task
    def per_store(df):
        bump(counter_dir, "per_store")
        return df.groupBy("store").agg(F.sum("amount").alias("revenue"), F.count("*").alias("n"))

    @xf.task(wait_until_committed=["big"])
    def publish(totals, path: str):
        bump(counter_dir, "publish")
        xf.write_delta(totals, path, mode="append")
        return {"stores": totals.count()}

    @xf.task
    def top_stores(totals, literal_df):
        bump(counter_dir, "top_stores")
        return totals.join(literal_df, "store").orderBy("store")

    totals = per_store.bind(big.bind(orders.bind(ROWS)))
    return publish.bind(totals, sink), top_stores.bind(totals, labels)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--remote", required=True)
    p.add_argument("--storage", required=True)
    p.add_argument("--sink", required=True)
    p.add_argument("--counter-dir", required=True)
    p.add_argument("--workflow-id", default="connect-wf")
    args = p.parse_args()
    spark = xf.create_spark_session(remote=args.remote)
    labels = spark.createDataFrame([(s, f"store-{s}") for s in range(7)], "store LONG, name STRING")
    pipeline, top = build(args.counter_dir, args.sink, labels)
    result = xf.run(pipeline, workflow_id=args.workflow_id, storage=args.storage, spark=spark)
    output = xf.get_output(args.workflow_id, storage=args.storage)  # the active session
    df_wf = f"{args.workflow_id}-df"
    top_df = xf.run(top, workflow_id=df_wf, storage=args.storage, spark=spark)
    top_out = xf.get_output(df_wf, storage=args.storage, spark=spark)
    print(
        json.dumps(
            {
                "connect": is_connect_session(spark),
                "result": result,
                "output": output,
                "status": xf.get_status(args.workflow_id, storage=args.storage).value,
                "top": [r.asDict() for r in top_df.collect()],
                "top_output_rows": top_out.count(),
                "top_output_type": type(top_out).__module__,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
