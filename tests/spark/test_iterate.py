"""Iterative tasks: 100 PageRank iterations with lineage cut from measured costs."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F

import exoflow_spark as xf

N = 30
EDGES = [(i, (i + 1) % N) for i in range(N)] + [(i, (i * 7 + 3) % N) for i in range(0, N, 2)]
DAMPING = 0.85


def python_pagerank(iterations: int) -> dict[int, float]:
    """The same update in plain Python: the oracle."""
    out_deg = {u: sum(1 for a, _ in EDGES if a == u) for u in range(N)}
    ranks = {v: 1.0 / N for v in range(N)}
    for _ in range(iterations):
        contrib = {v: 0.0 for v in range(N)}
        for u, v in EDGES:
            contrib[v] += ranks[u] / out_deg[u]
        ranks = {v: (1 - DAMPING) / N + DAMPING * contrib[v] for v in range(N)}
    return ranks


def test_hundred_pagerank_iterations_in_a_task(spark, storage, wf) -> None:
    @xf.task(checkpoint=True)
    def pagerank():
        edges = spark.createDataFrame(EDGES, "src LONG, dst LONG")
        deg = edges.groupBy("src").agg(F.count("*").alias("deg"))
        links = edges.join(deg, "src").cache()
        ranks0 = spark.range(N).select(F.col("id").alias("node"), F.lit(1.0 / N).alias("rank"))

        def step(ranks, _i):
            contrib = (
                links.join(ranks, links.src == ranks.node)
                .groupBy("dst")
                .agg(F.sum(F.col("rank") / F.col("deg")).alias("c"))
            )
            return contrib.select(
                F.col("dst").alias("node"),
                (F.lit((1 - DAMPING) / N) + DAMPING * F.col("c")).alias("rank"),
            )

        ranks, report = xf.iterate(step, ranks0, 100)
        reports.append(report)
        return ranks

    reports: list[xf.IterationReport] = []
    out = xf.run(pagerank.bind(), workflow_id=wf, storage=storage, spark=spark)
    got = {r.node: r.rank for r in out.collect()}
    want = python_pagerank(100)
    assert got.keys() == want.keys()
    for node, rank in want.items():
        assert got[node] == pytest.approx(rank, abs=1e-9)

    [report] = reports
    assert report.iterations == 100
    assert 2 <= len(report.cuts) <= 50  # cut from costs: neither never nor every step
    assert report.max_depth <= 25
    # the plan never grows without bound: late steps build no slower than a few early ones
    early = sorted(report.step_seconds[:10])[5]
    late = sorted(report.step_seconds[-10:])[5]
    print(
        f"median step build time: first 10 {early * 1000:.1f} ms, last 10 "
        f"{late * 1000:.1f} ms; cuts after {report.cuts}"
    )
    assert late < 10 * early + 0.05


def test_fixed_interval_and_bad_arguments(spark, tmp_path) -> None:
    df, report = xf.iterate(
        lambda d, i: d.withColumn("x", F.col("x") + 1),
        spark.range(3).withColumn("x", F.lit(0)),
        10,
        every=4,
        path=str(tmp_path / "iter"),
    )
    assert [r.x for r in df.collect()] == [10, 10, 10]
    assert report.cuts == [3, 7]
    with pytest.raises(xf.InvalidOptionError, match="needs path"):
        xf.iterate(lambda d, i: d, spark.range(1), 3)
    with pytest.raises(xf.InvalidOptionError, match="every=0"):
        xf.iterate(lambda d, i: d, spark.range(1), 3, every=0, path=str(tmp_path / "x"))
