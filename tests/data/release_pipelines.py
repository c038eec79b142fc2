"""The DAGs stored in tests/data/release-0.1.0 (written by exoflow-spark 0.1.0).

DO NOT EDIT the task functions below. Each task's code fingerprint is the SHA-256 of its
source text (``inspect.getsource``: decorator line and body, dedented), and it is part of the
logged DAG: a resume with a changed task source is refused with TaskChangedError. The
fingerprint does not depend on this file's path or module name, nor on the values of the
closure variables (``sink``, ``counter_dir``), so a test may import this module from anywhere
and pass its own sink path. Keep the literal inputs (none are bound) and the
``deterministic`` flags unchanged too: they are hashed as well.

Each task appends its name to ``<counter_dir>/<task>`` when its function runs (when a
counter_dir is given), so a test can tell the tasks that ran from those restored from their
checkpoints without reading the log.
"""

from __future__ import annotations

import os

from pyspark.sql import functions as F

import exoflow_spark as xf

#: rows of the source (``spark.range(20)``, written literally in the task's source)
ROWS = 20


def executed(counter_dir: str | None, task: str) -> None:
    """Note that ``task``'s function ran (one line per execution)."""
    if counter_dir:
        with open(os.path.join(counter_dir, task), "a") as fh:
            fh.write("1\n")


# fmt: off
# (the task functions' source is fingerprinted: no formatter may touch etl and nondet)
def etl(sink: str, counter_dir: str | None = None) -> xf.Node:
    """source (sync checkpoint) -> transform (async) -> aggregate (not kept) -> publish (sink).

    ``publish`` waits until ``transform`` committed, so a crash at ``publish:before-run``
    always leaves ``source`` and ``transform`` committed and nothing written to the sink.
    """

    @xf.task(checkpoint=True)
    def source():
        executed(counter_dir, "source")
        return (
            xf.get_spark()
            .range(20)
            .select(
                F.col("id").alias("order_id"),
                (F.col("id") % 3).alias("store"),
                (F.col("id") * 7 % 11).alias("amount"),
            )
        )

    @xf.task(checkpoint="async")
    def transform(df):
        executed(counter_dir, "transform")
        return df.withColumn("big", F.col("amount") > 5)

    @xf.task(checkpoint=False)
    def aggregate(df):
        executed(counter_dir, "aggregate")
        return df.groupBy("store", "big").agg(
            F.sum("amount").alias("amount"), F.count("*").alias("n")
        )

    @xf.task(wait_until_committed=("transform",))
    def publish(df):
        executed(counter_dir, "publish")
        xf.write_delta(df, sink, mode="append")
        return {"rows": df.count()}

    return publish.bind(aggregate.bind(transform.bind(source.bind())))


def nondet(sink: str, counter_dir: str | None = None) -> xf.Node:
    """A random (unseeded) sample, committed, published by a sink: exactly-once means the sink
    holds exactly the committed sample."""

    @xf.task(deterministic=False, checkpoint=True)
    def sample():
        executed(counter_dir, "sample")
        return xf.get_spark().range(20).sample(fraction=0.5)

    @xf.task
    def publish_sample(df):
        executed(counter_dir, "publish_sample")
        xf.write_delta(df, sink, mode="append")
        return {"rows": df.count()}

    return publish_sample.bind(sample.bind())


# fmt: on
def expected_etl_rows() -> list[tuple[int, bool, int, int]]:
    """The ``etl`` sink's rows, (store, big, amount, n) sorted, computed in plain Python."""
    groups: dict[tuple[int, bool], list[int]] = {}
    for i in range(ROWS):
        amount = i * 7 % 11
        groups.setdefault((i % 3, amount > 5), []).append(amount)
    return sorted((s, b, sum(v), len(v)) for (s, b), v in groups.items())
