"""Graph algorithms against an oracle no one here wrote: networkx.

PageRank is checked against ``nx.pagerank`` at the same tolerance (networkx's convergence
test, so the same iterations from the same start: equal to rounding), and against its fixed
point; a loose tolerance keeps the loops short.

PageRank and connected components on networkx's built-in graphs (karate club, les miserables,
florentine families, davis southern women, combined with ``disjoint_union_all``) and on a
generated R-MAT graph (20,000 edges); TunkRank against a direct linear solve (numpy); bad
input (self-loops, duplicate edges, ids beyond 2**31, null ends, wrong columns, an empty
graph) against networkx's answer or a clear error. Each algorithm runs both ways: as one
Spark task (what ``method="auto"`` picks for these sizes) and as the distributed loop (one
Spark job per step, in 3 partitions for the R-MAT graph), which must agree.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

import exoflow_spark as xf
from exoflow_spark import graph as xg


def builtin_union() -> nx.Graph:
    return nx.disjoint_union_all(
        [
            nx.karate_club_graph(),
            nx.les_miserables_graph(),
            nx.florentine_families_graph(),
            nx.davis_southern_women_graph(),
        ]
    )


def edges_df(spark, g: nx.Graph):
    return spark.createDataFrame([(int(u), int(v)) for u, v in g.edges()], "src LONG, dst LONG")


#: networkx's convergence test (L1 change below N * tol), loose enough for few iterations
TOL = 1e-6


def assert_networkx_pagerank(got: dict[int, float], g: nx.Graph, report: xf.IterationReport):
    """``got`` is networkx's PageRank of ``g`` at the same ``tol``: the same iterations from
    the same start, so equal to rounding (1e-9), stopped by the convergence test (not by a
    cap); and within 1e-4 of the fixed point (networkx at tol 1e-13)."""
    want = nx.pagerank(g, weight=None, tol=TOL, max_iter=1000)
    assert got.keys() == want.keys()
    worst = max(abs(got[k] - want[k]) for k in want)
    assert worst < 1e-9, f"max |rank - networkx at the same tol| = {worst:.3g}"
    exact = nx.pagerank(g, weight=None, tol=1e-13, max_iter=1000)
    assert max(abs(got[k] - exact[k]) for k in exact) < 1e-4
    assert 0 < report.iterations < 100


def components_of(df) -> set[frozenset[int]]:
    groups: dict[int, set[int]] = {}
    for r in df.collect():
        groups.setdefault(r.component, set()).add(r.node)
    return {frozenset(s) for s in groups.values()}


def ran_in_one_task(report: xf.IterationReport, cuts: Path) -> bool:
    """The function ran as one Spark task: no step of the distributed loop, no durable cut."""
    return report.steps_run == 0 and not report.cuts and not cuts.exists()


def test_pagerank_and_components_equal_networkx_on_builtin_graphs(spark, tmp_path) -> None:
    g = builtin_union()
    edges = xg.undirected(edges_df(spark, g))  # networkx treats an undirected edge as two
    want_cc = {frozenset(c) for c in nx.connected_components(g)}
    # as a user calls it: method="auto" runs a graph this small as one Spark task
    ranks, report = xg.pagerank(edges, max_iter=100, tol=TOL, path=str(tmp_path / "one"))
    assert ran_in_one_task(report, tmp_path / "one")
    one_task = {r.node: r.rank for r in ranks.collect()}
    assert_networkx_pagerank(one_task, g, report)
    comps, report = xg.connected_components(edges_df(spark, g), path=str(tmp_path / "one-cc"))
    assert ran_in_one_task(report, tmp_path / "one-cc")
    assert components_of(comps) == want_cc

    # the distributed loop: one Spark job per step, durable cuts from measured costs
    started = time.perf_counter()
    ranks, report = xg.pagerank(
        edges, max_iter=100, tol=TOL, path=str(tmp_path / "pr"), method="distributed"
    )
    loop_seconds = time.perf_counter() - started
    got = {r.node: r.rank for r in ranks.collect()}
    assert_networkx_pagerank(got, g, report)
    assert sum(got.values()) == pytest.approx(1.0, abs=1e-9)
    assert max(abs(got[k] - one_task[k]) for k in got) < 1e-12  # the two ways agree
    # each step cuts its own lineage (a local checkpoint): planning stays flat
    early = sorted(report.step_seconds[:10])[5]
    late = sorted(report.step_seconds[-10:])[5]
    print(
        f"PageRank, {report.iterations} iterations: median step build time of the first 10 "
        f"{early * 1000:.1f} ms, of the last 10 {late * 1000:.1f} ms; "
        f"{len(report.cuts)} lineage cuts, longest uncut run {report.max_depth} steps"
    )
    assert late < 10 * early + 0.05
    # the lineage is truncated by local checkpoints: durable cuts are rare, one once the steps
    # since the last took ten times a cut, so they take about a tenth of the loop's time (the
    # bound leaves room for a cut that costs more than the one before; a loaded machine
    # slows steps and cuts alike, so the bound is a share of the time, not a count)
    assert sum(report.cut_seconds) <= 0.25 * loop_seconds, (report.cuts, report.cut_seconds)
    assert len(report.cuts) <= report.iterations // 4

    comps, _ = xg.connected_components(
        edges_df(spark, g), path=str(tmp_path / "cc"), method="distributed"
    )
    assert components_of(comps) == want_cc


def test_rmat_graph_pagerank_and_components_in_partitions(spark, tmp_path) -> None:
    events = xg.rmat_edges(spark, num_edges=20_000, scale=12, seed=11, epochs=10)
    rows = events.select("src", "dst", "epoch").collect()
    assert len(rows) == 20_000
    assert sorted({r.epoch for r in rows}) == list(range(10))
    # deterministic: the same seed gives the same edges, another seed others
    again = xg.rmat_edges(spark, num_edges=1000, scale=12, seed=11, epochs=10)
    assert [(r.src, r.dst) for r in again.orderBy("event_id").collect()] == [
        (r.src, r.dst) for r in rows[:1000]
    ]
    other = xg.rmat_edges(spark, num_edges=1000, scale=12, seed=12).orderBy("event_id")
    assert [(r.src, r.dst) for r in other.collect()] != [(r.src, r.dst) for r in rows[:1000]]

    g = nx.DiGraph()
    g.add_edges_from((r.src, r.dst) for r in rows)
    degrees = sorted((d for _, d in g.in_degree()), reverse=True)
    assert degrees[0] > 20 * (sum(degrees) / len(degrees))  # power-law: heavy hubs

    want_cc = {frozenset(c) for c in nx.weakly_connected_components(g)}
    for method in ("single-task", "distributed"):
        ranks, report = xg.pagerank(
            events,
            max_iter=100,
            tol=TOL,
            path=str(tmp_path / f"pr-{method}"),
            partitions=3,
            method=method,
        )
        got = {r.node: r.rank for r in ranks.collect()}
        assert_networkx_pagerank(got, g, report)
        print(f"R-MAT 20k edges, {method}: {len(got)} nodes, {report.iterations} iterations")
        comps, _ = xg.connected_components(
            events, path=str(tmp_path / f"cc-{method}"), partitions=3, method=method
        )
        assert components_of(comps) == want_cc


def test_tunkrank_equals_the_linear_solve(spark, tmp_path) -> None:
    g = nx.gnp_random_graph(60, 0.08, seed=3, directed=True)
    g.remove_nodes_from([n for n in list(g) if g.degree(n) == 0])
    p = 0.3
    results = {}
    for method in ("single-task", "distributed"):
        infl, _ = xg.tunkrank(
            edges_df(spark, g), p=p, tol=1e-13, path=str(tmp_path / method), method=method
        )
        results[method] = {r.node: r.influence for r in infl.collect()}
    got = results["single-task"]
    assert max(abs(got[k] - results["distributed"][k]) for k in got) < 1e-12
    # I = M (1 + p I), M[x, y] = 1/outdeg(y) for y -> x  =>  (Id - p M) I = M 1
    nodes = sorted(g)
    index = {n: i for i, n in enumerate(nodes)}
    m = np.zeros((len(nodes), len(nodes)))
    for y, x in g.edges():
        m[index[x], index[y]] = 1.0 / g.out_degree(y)
    want = np.linalg.solve(np.eye(len(nodes)) - p * m, m @ np.ones(len(nodes)))
    for n in nodes:
        assert got[n] == pytest.approx(want[index[n]], abs=1e-8)


def test_bad_graph_arguments(spark, tmp_path) -> None:
    with pytest.raises(xf.InvalidOptionError, match="scale"):
        xg.rmat_edges(spark, num_edges=10, scale=0)
    with pytest.raises(xf.InvalidOptionError, match=r"seed=1\.5 must be an int"):
        xg.rmat_edges(spark, num_edges=10, scale=3, seed=1.5)
    edges = spark.createDataFrame([(1, 2)], "src LONG, dst LONG")
    with pytest.raises(xf.InvalidOptionError, match="damping"):
        xg.pagerank(edges, damping=1.5)
    with pytest.raises(xf.InvalidOptionError, match="no column 'dst'"):
        xg.pagerank(edges.select("src"), path=str(tmp_path / "a"))
    with pytest.raises(xf.InvalidOptionError, match="must be integers"):
        xg.connected_components(
            spark.createDataFrame([("a", "b")], "src STRING, dst STRING"), path=str(tmp_path / "b")
        )
    with_null = spark.createDataFrame([(1, 2), (2, None)], "src LONG, dst LONG")
    for fn in (xg.pagerank, xg.tunkrank, xg.connected_components):
        with pytest.raises(xf.InvalidOptionError, match=r"edge\(s\) have a null"):
            fn(with_null, path=str(tmp_path / "c"))
    empty = spark.createDataFrame([], "src INT, dst INT")  # any integer type is read as LONG
    ranks, report = xg.pagerank(empty, path=str(tmp_path / "d"))
    assert ranks.collect() == [] and report.iterations == 0
    comps, _ = xg.connected_components(empty, path=str(tmp_path / "e"))
    assert comps.collect() == []


def test_self_loops_duplicates_and_ids_beyond_2_pow_31_as_networkx(spark, tmp_path) -> None:
    big = 1 << 40
    pairs = [(big, big + 1), (big + 1, big + 2), (big + 2, big), (big, big + 1)]  # a duplicate
    pairs += [(big + 1, big + 1), (big + 2, 3), (-5, big)]  # a self-loop, a dangling node: 3
    pairs += [(7, 8)]  # a second component
    g = nx.DiGraph(pairs)
    edges = spark.createDataFrame(pairs, "src LONG, dst LONG")
    for method in ("single-task", "distributed"):
        ranks, report = xg.pagerank(edges, tol=TOL, path=str(tmp_path / method), method=method)
        assert_networkx_pagerank({r.node: r.rank for r in ranks.collect()}, g, report)
        comps, _ = xg.connected_components(
            edges, path=str(tmp_path / f"{method}-cc"), method=method
        )
        want = {frozenset(c) for c in nx.weakly_connected_components(g)}
        assert components_of(comps) == want
        assert {r.node: r.component for r in comps.collect()}[big + 1] == -5  # the smallest id


def test_loops_in_threads_restore_the_sessions_adaptive_setting(spark, tmp_path) -> None:
    """The loops run with adaptive query execution off; two loops at once in one session (as
    the graph job's tasks run) leave the user's setting as it was, whichever ends first."""
    from concurrent.futures import ThreadPoolExecutor

    edges = edges_df(spark, nx.convert_node_labels_to_integers(nx.florentine_families_graph()))
    key = "spark.sql.adaptive.enabled"
    before = spark.conf.get(key)
    try:
        spark.conf.set(key, "true")
        with ThreadPoolExecutor(2) as pool:
            loop = {"method": "distributed"}
            pr = pool.submit(xg.pagerank, edges, max_iter=5, path=str(tmp_path / "pr"), **loop)
            cc = pool.submit(xg.connected_components, edges, path=str(tmp_path / "cc"), **loop)
            assert pr.result()[1].iterations == 5 and cc.result()[0].count() == 15
        assert spark.conf.get(key) == "true"
    finally:
        spark.conf.set(key, before)


def test_auto_picks_one_task_by_size_and_falls_back_to_the_loop(
    spark, tmp_path, caplog, monkeypatch
) -> None:
    """``method="auto"`` runs a graph as one Spark task up to
    ``spark.exoflow.graph.singleTaskMaxEdges`` edges and the distributed loop above;
    a one-task run that fails (here its function raises inside the Python worker) is logged
    and the loop gives the answer; bad choices are refused before any Spark job."""
    g = nx.convert_node_labels_to_integers(nx.florentine_families_graph())
    edges = xg.undirected(edges_df(spark, g))  # 40 edges
    few = {"max_iter": 6, "tol": 0.0}  # six steps each way (the loop's cost is per step)
    first, _ = xg.pagerank(edges, path=str(tmp_path / "ref"), method="single-task", **few)
    want = {r.node: r.rank for r in first.collect()}

    def same(ranks) -> bool:
        return max(abs(r.rank - want[r.node]) for r in ranks.collect()) < 1e-12

    sc = spark.sparkContext
    keys = ("spark.jobGroup.id", "spark.job.description", "spark.job.interruptOnCancel")
    before = {key: sc.getLocalProperty(key) for key in keys}  # restored: the session is shared
    sc.setJobGroup("graph-refusals", "graph calls that must be refused before any job")
    try:
        with pytest.raises(xf.InvalidOptionError, match="method='gpu' is not one of 'auto'"):
            xg.pagerank(edges, method="gpu")
        spark.conf.set(xg.SINGLE_TASK_CONF, "many")
        with pytest.raises(xf.InvalidOptionError, match="singleTaskMaxEdges='many'"):
            xg.pagerank(edges, path=str(tmp_path / "bad"))
    finally:
        for key, value in before.items():
            sc.setLocalProperty(key, value)  # type: ignore[arg-type]
    assert sc.statusTracker().getJobIdsForGroup("graph-refusals") == []  # no job, no cut
    try:
        spark.conf.set(xg.SINGLE_TASK_CONF, "39")  # one edge fewer than the graph has
        with caplog.at_level(logging.INFO, logger="exoflow_spark.graph"):
            ranks, report = xg.pagerank(edges, path=str(tmp_path / "loop"), **few)
        assert "40 edges, the distributed loop" in caplog.text
        assert report.steps_run == report.iterations == 6 and same(ranks)
        spark.conf.set(xg.SINGLE_TASK_CONF, "40")
        ranks, report = xg.pagerank(edges, path=str(tmp_path / "one"), **few)
        assert ran_in_one_task(report, tmp_path / "one") and same(ranks)
    finally:
        spark.conf.unset(xg.SINGLE_TASK_CONF)

    real = xg._kernel

    def broken(*args):
        run = real(*args)

        def fail(batches):
            raise MemoryError("the task ran out of memory (injected)")
            yield from run(batches)

        return fail

    monkeypatch.setattr(xg, "_kernel", broken)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="exoflow_spark.graph"):
        ranks, report = xg.pagerank(edges, path=str(tmp_path / "fallback"), **few)
    assert "pagerank as one Spark task failed" in caplog.text
    assert "running the distributed loop instead" in caplog.text
    assert report.steps_run == report.iterations == 6 and same(ranks)
    with pytest.raises(Exception, match="injected"):  # asked for one task: no fallback
        xg.pagerank(edges, path=str(tmp_path / "forced"), method="single-task")
