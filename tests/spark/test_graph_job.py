"""The online-offline graph job: a killed driver, resumed, checked against networkx.

One run, as a user would meet it: the job is started in a subprocess and its driver is
SIGKILLed in the middle of the online micro-batch (the edges and the degree table written,
the rank estimate not); the same command then resumes in this process on the suite's session
and runs to the end (the online batch replayed, then the offline recompute). Every edge event
lands once, the degree counts are exact (the replayed writes were skipped), the published
PageRank and components equal networkx's on the same edges, each result is announced once and
published as one version of its table, and a run of the finished job writes nothing.

One epoch: what a second one adds is tested where it costs less. A MERGE replayed after a kill
(tests/spark/test_streaming.py kills a driver after a batch's MERGE), and a stream continued
across workflows (test_stream_continued_across_workflows_with_pinned_versions); the suite ran
four epochs until 2026-12-03, two until 2026-12-04 (an epoch costs 10-15 s of streaming and
Delta commits, more in a driver of its own).
"""

from __future__ import annotations

import json
import signal
import time

import networkx as nx
import pytest
from delta.tables import DeltaTable
from drivers import REPO, run_driver
from drivers.jobs import load_job

EDGES = 2000
#: one epoch, with the offline recompute after it
ARGS = ["--edges", str(EDGES), "--scale", "9", "--epochs", "1", "--every", "1", "--seed", "3"]


def is_table(spark, path: str) -> bool:
    return bool(DeltaTable.isDeltaTable(spark, path))


def events_graph(spark, lake: str) -> tuple[nx.MultiDiGraph, int]:
    events = spark.read.format("delta").load(f"{lake}/events").collect()
    g = nx.MultiDiGraph()
    g.add_edges_from((r.src, r.dst) for r in events)
    return g, len(events)


def check_online_tables(spark, lake: str) -> nx.MultiDiGraph:
    g, n_events = events_graph(spark, lake)
    assert n_events == EDGES
    edges = spark.read.format("delta").load(f"{lake}/edges")
    assert edges.count() == edges.select("event_id").distinct().count() == EDGES
    degrees = {
        r.node: (r.out_degree, r.in_degree)
        for r in spark.read.format("delta").load(f"{lake}/degrees").collect()
    }
    assert degrees == {n: (g.out_degree(n), g.in_degree(n)) for n in g.nodes}
    return g


@pytest.mark.subprocess
def test_graph_job_killed_mid_batch_resumes_exactly_once_and_matches_networkx(
    spark, tmp_path, capsys
) -> None:
    cmd = ["--workflow-id", "g", "--storage", str(tmp_path / "exo"), "--iterations", "100"]
    cmd += ARGS
    # the storage root's cost model as this disk measures it (benchmarks/checkpoint_cost.py),
    # so the job's first run does not spend 6-12 s measuring it (test_recovery tests that)
    (tmp_path / "exo" / "_exoflow").mkdir(parents=True)
    (tmp_path / "exo" / "_exoflow" / "throughput.json").write_text(
        json.dumps(
            {
                "write_fixed_s": 0.32,
                "write_bps": 2e8,
                "read_fixed_s": 0.11,
                "read_bps": 4e8,
                "measured_at": time.time(),
            }
        )
    )
    crash = [*cmd, "--master", "local[2]", "--crash-epoch", "0"]
    first = run_driver(
        REPO / "jobs" / "graph_pipeline.py", *crash, "--crash-at", "online:during-batch@2"
    )
    assert first.returncode == -signal.SIGKILL, first.stderr[-3000:]
    lake = str(tmp_path / "exo" / "graph" / "g")
    # killed mid-batch: the edges and degrees written, the rank estimate and the announcement not
    assert is_table(spark, f"{lake}/edges") and is_table(spark, f"{lake}/degrees")
    assert not is_table(spark, f"{lake}/rank_estimate")
    assert not is_table(spark, f"{lake}/availability")

    # the resume, in this process on the suite's session, to the end of the job
    job = load_job("graph_pipeline")
    assert job.main(cmd) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["lake"] == lake
    g = check_online_tables(spark, lake)

    simple = nx.DiGraph()
    simple.add_edges_from((u, v) for u, v in g.edges() if u != v)
    want = nx.pagerank(simple, weight=None, tol=1e-13, max_iter=1000)
    pr = spark.read.format("delta").load(f"{lake}/pagerank").collect()
    assert {r.epoch for r in pr} == {0}  # the offline recompute
    got = {r.node: r.rank for r in pr}
    assert got.keys() == want.keys()
    assert max(abs(got[k] - want[k]) for k in want) < 1e-5

    comps: dict[int, set[int]] = {}
    for r in spark.read.format("delta").load(f"{lake}/components").collect():
        comps.setdefault(r.component, set()).add(r.node)
    assert {frozenset(c) for c in comps.values()} == {
        frozenset(c) for c in nx.weakly_connected_components(simple)
    }

    # each result announced once: the online estimate, then the offline results
    announced = [(a["epoch"], a["what"]) for a in summary["availability"]]
    assert sorted(announced) == [(0, w) for w in ("components", "online", "pagerank", "tunkrank")]
    assert len(spark.read.format("delta").load(f"{lake}/rank_estimate").collect()) > 0
    assert all(a["seconds"] > 0 for a in summary["availability"])

    # each result table was written once (one Delta version): no publish ran twice
    for what in ("pagerank", "tunkrank", "components"):
        history = spark.sql(f"DESCRIBE HISTORY delta.`{lake}/{what}`").collect()
        assert len(history) == 1, (what, [(r.version, r.operation) for r in history])

    # run again: every epoch's workflow is finished, nothing is written twice
    assert job.main(cmd) == 0
    again = json.loads(capsys.readouterr().out)
    assert len(again["availability"]) == len(summary["availability"])
