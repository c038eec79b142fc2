"""Graph algorithms against an oracle no one here wrote: networkx.

PageRank and connected components on networkx's built-in graphs (karate club, les miserables,
florentine families, davis southern women, combined with ``disjoint_union_all``) and on a
generated R-MAT graph of 100,000 edges; TunkRank against a direct linear solve (numpy).
"""

from __future__ import annotations

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


def components_of(df) -> set[frozenset[int]]:
    groups: dict[int, set[int]] = {}
    for r in df.collect():
        groups.setdefault(r.component, set()).add(r.node)
    return {frozenset(s) for s in groups.values()}


def test_pagerank_and_components_equal_networkx_on_builtin_graphs(spark, tmp_path) -> None:
    g = builtin_union()
    edges = xg.undirected(edges_df(spark, g))  # networkx treats an undirected edge as two
    ranks, report = xg.pagerank(edges, max_iter=200, tol=1e-12, path=str(tmp_path / "pr"))
    got = {r.node: r.rank for r in ranks.collect()}
    want = nx.pagerank(g, weight=None, tol=1e-13, max_iter=1000)
    assert got.keys() == want.keys()
    worst = max(abs(got[k] - want[k]) for k in want)
    assert worst < 1e-6, f"max |rank - networkx| = {worst:.3g}"
    assert sum(got.values()) == pytest.approx(1.0, abs=1e-9)
    assert 100 <= report.iterations < 200  # stopped by convergence, not by the cap
    # 100+ iterations: no StackOverflowError, and planning stays flat (lineage cut)
    early = sorted(report.step_seconds[:10])[5]
    late = sorted(report.step_seconds[-10:])[5]
    print(
        f"PageRank, {report.iterations} iterations: median step build time of the first 10 "
        f"{early * 1000:.1f} ms, of the last 10 {late * 1000:.1f} ms; "
        f"{len(report.cuts)} lineage cuts, longest uncut run {report.max_depth} steps"
    )
    assert late < 10 * early + 0.05
    # each step truncates its own lineage (a local checkpoint): durable cuts are rare
    assert len(report.cuts) <= 3

    comps, _ = xg.connected_components(edges_df(spark, g), path=str(tmp_path / "cc"))
    assert components_of(comps) == {frozenset(c) for c in nx.connected_components(g)}


def test_rmat_graph_of_100k_edges_pagerank_and_components(spark, tmp_path) -> None:
    events = xg.rmat_edges(spark, num_edges=100_000, scale=14, seed=11, epochs=10)
    rows = events.select("src", "dst", "epoch").collect()
    assert len(rows) == 100_000
    assert sorted({r.epoch for r in rows}) == list(range(10))
    # deterministic: the same seed gives the same edges, another seed others
    again = xg.rmat_edges(spark, num_edges=1000, scale=14, seed=11, epochs=10)
    assert [(r.src, r.dst) for r in again.orderBy("event_id").collect()] == [
        (r.src, r.dst) for r in rows[:1000]
    ]
    other = xg.rmat_edges(spark, num_edges=1000, scale=14, seed=12).orderBy("event_id")
    assert [(r.src, r.dst) for r in other.collect()] != [(r.src, r.dst) for r in rows[:1000]]

    g = nx.DiGraph()
    g.add_edges_from((r.src, r.dst) for r in rows)
    degrees = sorted((d for _, d in g.in_degree()), reverse=True)
    assert degrees[0] > 20 * (sum(degrees) / len(degrees))  # power-law: heavy hubs

    ranks, report = xg.pagerank(events, max_iter=150, tol=1e-12, path=str(tmp_path / "pr"))
    got = {r.node: r.rank for r in ranks.collect()}
    want = nx.pagerank(g, weight=None, tol=1e-13, max_iter=1000)
    assert got.keys() == want.keys()
    worst = max(abs(got[k] - want[k]) for k in want)
    assert worst < 1e-6, f"max |rank - networkx| = {worst:.3g}"
    print(f"R-MAT 100k edges: {len(want)} nodes, PageRank {report.iterations} iterations")

    comps, _ = xg.connected_components(events, path=str(tmp_path / "cc"))
    want_cc = {frozenset(c) for c in nx.weakly_connected_components(g)}
    assert components_of(comps) == want_cc


def test_tunkrank_equals_the_linear_solve(spark, tmp_path) -> None:
    g = nx.gnp_random_graph(60, 0.08, seed=3, directed=True)
    g.remove_nodes_from([n for n in list(g) if g.degree(n) == 0])
    p = 0.3
    infl, _ = xg.tunkrank(edges_df(spark, g), p=p, tol=1e-13, path=str(tmp_path / "tr"))
    got = {r.node: r.influence for r in infl.collect()}
    # I = M (1 + p I), M[x, y] = 1/outdeg(y) for y -> x  =>  (Id - p M) I = M 1
    nodes = sorted(g)
    index = {n: i for i, n in enumerate(nodes)}
    m = np.zeros((len(nodes), len(nodes)))
    for y, x in g.edges():
        m[index[x], index[y]] = 1.0 / g.out_degree(y)
    want = np.linalg.solve(np.eye(len(nodes)) - p * m, m @ np.ones(len(nodes)))
    for n in nodes:
        assert got[n] == pytest.approx(want[index[n]], abs=1e-8)


def test_bad_graph_arguments(spark) -> None:
    with pytest.raises(xf.InvalidOptionError, match="scale"):
        xg.rmat_edges(spark, num_edges=10, scale=0)
    with pytest.raises(xf.InvalidOptionError, match="damping"):
        xg.pagerank(spark.createDataFrame([(1, 2)], "src LONG, dst LONG"), damping=1.5)
