"""A PageRank task looping with ``xf.iterate``, run as its own driver by the iterate crash test.

Each step appends its iteration number to ``<counter>`` before building it, so the test can
count the iterations a resumed run re-did. The PageRank loop (:func:`pagerank_loop`) is the
one tests/spark/test_iterate.py runs in-process too. Crash points come from EXOFLOW_CRASH_AT (e.g.
``pagerank:during-iteration@23`` kills the driver after it built iteration 22). Prints
``RANKS <json>`` (node -> rank) and ``REPORT <json>`` at the end.
"""

from __future__ import annotations

import argparse
import json
import sys

from pyspark.sql import functions as F

import exoflow_spark as xf
from drivers import driver_session

N = 30
EDGES = [(i, (i + 1) % N) for i in range(N)] + [(i, (i * 7 + 3) % N) for i in range(0, N, 2)]
DAMPING = 0.85


def pagerank_loop(
    spark,
    on_step=None,
    fail_at: int | None = None,
    damping: float = DAMPING,
    cache: bool = False,
):
    """``(step, initial)`` of the PageRank loop over :data:`EDGES`: ``on_step(i)`` is called
    as each iteration is built, and the step raises when it builds iteration ``fail_at`` (an
    interruption, in-process). ``cache`` keeps the link table in Spark's cache."""
    edges = spark.createDataFrame(EDGES, "src LONG, dst LONG")
    deg = edges.groupBy("src").agg(F.count("*").alias("deg"))
    links = edges.join(deg, "src")
    if cache:
        links = links.cache()
    ranks0 = spark.range(N).select(F.col("id").alias("node"), F.lit(1.0 / N).alias("rank"))

    def step(ranks, i):
        if on_step is not None:
            on_step(i)
        if i == fail_at:
            raise RuntimeError(f"interrupted in iteration {i}")
        contrib = (
            links.join(ranks, links.src == ranks.node)
            .groupBy("dst")
            .agg(F.sum(F.col("rank") / F.col("deg")).alias("c"))
        )
        return contrib.select(
            F.col("dst").alias("node"),
            (F.lit((1 - damping) / N) + damping * F.col("c")).alias("rank"),
        )

    return step, ranks0


def build(counter: str, iterations: int, every: int, reports: list) -> xf.Node:
    def count(i: int) -> None:
        with open(counter, "a") as fh:
            fh.write(f"{i}\n")

    @xf.task(checkpoint=True)
    def pagerank():
        step, ranks0 = pagerank_loop(xf.get_spark(), count, cache=True)
        ranks, report = xf.iterate(step, ranks0, iterations, every=every)
        reports.append(report)
        return ranks

    return pagerank.bind()


def run(
    spark, *, storage: str, workflow_id: str, counter: str, iterations: int, every: int
) -> tuple[dict[int, float], dict]:
    """Run (or resume) the workflow on ``spark``: its ranks and its loop's report. What the
    driver process does, and what a test does in its own process after killing one."""
    reports: list[xf.IterationReport] = []
    out = xf.run(
        build(counter, iterations, every, reports),
        workflow_id=workflow_id,
        storage=storage,
        spark=spark,
    )
    ranks = {int(r.node): float(r.rank) for r in out.collect()}
    [report] = reports
    return ranks, {
        "iterations": report.iterations,
        "steps_run": report.steps_run,
        "resumed_from": report.resumed_from,
        "cuts": report.cuts,
    }


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--storage", required=True)
    p.add_argument("--workflow-id", required=True)
    p.add_argument("--counter", required=True)
    p.add_argument("--iterations", type=int, default=30)
    p.add_argument("--every", type=int, default=5)
    a = p.parse_args()
    ranks, report = run(
        driver_session("local[2]", "exoflow-iterate-job"),
        storage=a.storage,
        workflow_id=a.workflow_id,
        counter=a.counter,
        iterations=a.iterations,
        every=a.every,
    )
    print("RANKS " + json.dumps(ranks))
    print("REPORT " + json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
