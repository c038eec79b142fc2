"""A small pipeline run as a separate driver process by the crash tests.

Every task appends its name to ``<counter-dir>/<task>`` when it executes, so the test can
prove that committed tasks never execute again. Crash points come from EXOFLOW_CRASH_AT.
"""

from __future__ import annotations

import argparse
import os
import sys

from pyspark.sql import functions as F

import exoflow_spark as xf
from drivers import driver_session


def bump(counter_dir: str, name: str) -> None:
    with open(os.path.join(counter_dir, name), "a") as fh:
        fh.write("1\n")


def build(counter_dir: str, sink: str, mode: object, rows: int) -> xf.Node:
    @xf.task(checkpoint=True)
    def orders():
        bump(counter_dir, "orders")
        spark = xf.get_spark()
        return spark.range(rows).select(
            F.col("id").alias("order_id"),
            (F.col("id") % 13).alias("store"),
            (F.col("id") * 7 % 101).alias("amount"),
        )

    # mode "auto": enriched declares no checkpoint and the run's policy is "auto"; its
    # Python UDF is what the policy measures (and, the test's cost model says, writes)
    declared = {} if mode == "auto" else {"checkpoint": mode}
    is_big = F.udf(lambda a: a > 50, "boolean")

    @xf.task(**declared)
    def enriched(df):
        bump(counter_dir, "enriched")
        if mode == "auto":
            return df.withColumn("big", is_big("amount"))
        return df.withColumn("big", F.col("amount") > 50)

    @xf.task
    def totals(df):
        bump(counter_dir, "totals")
        return df.groupBy("store", "big").agg(
            F.sum("amount").alias("amount"), F.count("*").alias("n")
        )

    @xf.task
    def publish(df):
        bump(counter_dir, "publish")
        xf.write_delta(df, sink, mode="append")
        return {"rows": df.count()}

    return publish.bind(totals.bind(enriched.bind(orders.bind())))


def build_sampling(counter_dir: str, sink: str, rows: int) -> xf.Node:
    """A nondeterministic sample (no seed: each execution differs), observed by a committed
    task and published by a sink. Exactly-once means the sink holds one single sample."""

    @xf.task(deterministic=False, checkpoint="async")
    def sample():
        bump(counter_dir, "sample")
        return xf.get_spark().range(rows).sample(fraction=0.3)

    @xf.task(checkpoint=True)
    def stats(df):
        bump(counter_dir, "stats")
        return df.agg(F.count("*").alias("n"), F.sum("id").alias("s"))

    @xf.task
    def publish(df, st):
        bump(counter_dir, "publish")
        row = st.first()
        xf.write_delta(df.withColumn("n", F.lit(row["n"])).withColumn("s", F.lit(row["s"])), sink)
        return {"rows": row["n"]}

    s = sample.bind()
    return publish.bind(s, stats.bind(s))


MODES = {"true": True, "false": False, "async": "async", "auto": "auto"}


def run(
    spark,
    *,
    storage: str,
    workflow_id: str,
    sink: str,
    counter_dir: str,
    mode: str = "async",
    rows: int = 20000,
    scenario: str = "pipeline",
    checkpoint_format: str = "delta",
) -> dict:
    """Run (or resume) the scenario's workflow on ``spark``: what a driver process does, and
    what a test does in its own process to resume after killing one. ``checkpoint_format``
    ``"default"``: xf.run's (Delta for declared checkpoints, Parquet for auto's)."""
    ckpt = MODES[mode]
    dag = (
        build(counter_dir, sink, ckpt, rows)
        if scenario == "pipeline"
        else build_sampling(counter_dir, sink, rows)
    )
    return xf.run(
        dag,
        workflow_id=workflow_id,
        storage=storage,
        spark=spark,
        checkpoint_format=None if checkpoint_format == "default" else checkpoint_format,
        checkpoint="auto" if mode == "auto" else "none",
    )


def run_under(spark, root, workflow_id: str, **options) -> dict:
    """:func:`run` with the layout the tests give a driver under ``root``: ``exo/`` (the
    storage root), ``sink/`` and ``counters/``; ``options`` are :func:`run`'s others."""
    return run(
        spark,
        storage=os.path.join(root, "exo"),
        workflow_id=workflow_id,
        sink=os.path.join(root, "sink"),
        counter_dir=os.path.join(root, "counters"),
        **options,
    )


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--storage", required=True)
    p.add_argument("--workflow-id", required=True)
    p.add_argument("--sink", required=True)
    p.add_argument("--counter-dir", required=True)
    p.add_argument("--mode", default="async", choices=sorted(MODES))
    p.add_argument("--rows", type=int, default=20000)
    p.add_argument("--scenario", default="pipeline", choices=["pipeline", "sampling"])
    p.add_argument("--checkpoint-format", default="delta", choices=["default", "delta", "parquet"])
    p.add_argument("--master", default="local[2]", help="e.g. local-cluster[2,1,1024]")
    a = p.parse_args()
    out = run(
        driver_session(a.master, "exoflow-crash-job"),
        storage=a.storage,
        workflow_id=a.workflow_id,
        sink=a.sink,
        counter_dir=a.counter_dir,
        mode=a.mode,
        rows=a.rows,
        scenario=a.scenario,
        checkpoint_format=a.checkpoint_format,
    )
    print(f"RESULT {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
