"""A PageRank task looping with ``xf.iterate``, run as its own driver by the iterate crash test.

Each step appends its iteration number to ``<counter>`` before building it, so the test can
count the iterations a resumed run re-did. Crash points come from EXOFLOW_CRASH_AT (e.g.
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


def build(counter: str, iterations: int, every: int, reports: list) -> xf.Node:
    @xf.task(checkpoint=True)
    def pagerank():
        spark = xf.get_spark()
        edges = spark.createDataFrame(EDGES, "src LONG, dst LONG")
        deg = edges.groupBy("src").agg(F.count("*").alias("deg"))
        links = edges.join(deg, "src").cache()
        ranks0 = spark.range(N).select(F.col("id").alias("node"), F.lit(1.0 / N).alias("rank"))

        def step(ranks, i):
            with open(counter, "a") as fh:
                fh.write(f"{i}\n")
            contrib = (
                links.join(ranks, links.src == ranks.node)
                .groupBy("dst")
                .agg(F.sum(F.col("rank") / F.col("deg")).alias("c"))
            )
            return contrib.select(
                F.col("dst").alias("node"),
                (F.lit((1 - DAMPING) / N) + DAMPING * F.col("c")).alias("rank"),
            )

        ranks, report = xf.iterate(step, ranks0, iterations, every=every)
        reports.append(report)
        return ranks

    return pagerank.bind()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--storage", required=True)
    p.add_argument("--workflow-id", required=True)
    p.add_argument("--counter", required=True)
    p.add_argument("--iterations", type=int, default=30)
    p.add_argument("--every", type=int, default=5)
    a = p.parse_args()
    spark = driver_session("local[2]", "exoflow-iterate-job")
    reports: list[xf.IterationReport] = []
    out = xf.run(
        build(a.counter, a.iterations, a.every, reports),
        workflow_id=a.workflow_id,
        storage=a.storage,
        spark=spark,
    )
    ranks = {int(r.node): float(r.rank) for r in out.collect()}
    print("RANKS " + json.dumps(ranks))
    [report] = reports
    print(
        "REPORT "
        + json.dumps(
            {
                "iterations": report.iterations,
                "steps_run": report.steps_run,
                "resumed_from": report.resumed_from,
                "cuts": report.cuts,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
