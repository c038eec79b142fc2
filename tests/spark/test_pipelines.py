"""Spark Declarative Pipelines projects run by exoflow-spark (surface/pipelines.py).

The projects are plain SDP projects (``spark-pipelines init``'s, and richer ones written by
tests/drivers/pipeline_projects.py); every table is compared with values computed here from
the input, in Python.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import pytest
from drivers import run_driver
from drivers.pipeline_projects import (
    EVENT_FILES,
    MORE_EVENTS,
    bad_project,
    events,
    rich_project,
    segment_totals,
    small_project,
    write_events,
)
from pyspark.pipelines.init_cli import init

import exoflow_spark as xf
from exoflow_spark.surface import cli


def rows(spark, path: str) -> list[tuple]:
    return sorted(tuple(r) for r in spark.read.format("delta").load(path).collect())


def version(spark, path: str) -> int:
    from delta.tables import DeltaTable

    return int(DeltaTable.forPath(spark, path).history(1).first().version)


def test_the_init_project_runs_unchanged(spark, tmp_path, monkeypatch, capsys) -> None:
    """`spark-pipelines init`'s project: dry run (the plan, nothing written), run, status,
    history and show on its workflow."""
    monkeypatch.chdir(tmp_path)
    init("demo")
    spec = tmp_path / "demo" / "spark-pipeline.yml"
    tables = tmp_path / "demo" / "pipeline-storage" / "tables"
    capsys.readouterr()

    assert cli.main(["run", str(spec), "--dry-run"]) == 0
    plan = capsys.readouterr().out
    assert "workflow [demo-1]" in plan
    assert (
        "example_sql_materialized_view" in plan
        and "reads: example_python_materialized_view" in plan
    )
    assert "not completed yet" in plan
    assert not tables.exists()  # a dry run writes nothing

    assert cli.main(["run", str(spec), "--no-progress"]) == 0
    assert "workflow demo-1 SUCCESSFUL" in capsys.readouterr().out
    assert rows(spark, str(tables / "example_python_materialized_view")) == [
        (i,) for i in range(10)
    ]
    assert rows(spark, str(tables / "example_sql_materialized_view")) == [
        (i,) for i in range(0, 10, 2)
    ]

    storage = str(tmp_path / "demo" / "pipeline-storage" / "exoflow")
    assert cli.main(["status", "demo-1", "--storage", storage, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["status"] == "SUCCESSFUL"
    assert cli.main(["history", "demo-1", "--storage", storage]) == 0
    assert cli.main(["show", "demo-1", "--storage", storage]) == 0
    assert "example_sql_materialized_view" in capsys.readouterr().out
    # the next update is a new workflow: the materialized views are published again
    assert cli.main(["run", str(spec), "--no-progress"]) == 0
    assert "workflow demo-2 SUCCESSFUL" in capsys.readouterr().out
    assert version(spark, str(tables / "example_sql_materialized_view")) == 1


def test_a_richer_project_updates_exactly_once(spark, tmp_path, capsys) -> None:
    """Python and SQL, a streaming table fed by an append flow, a SQL streaming table, a
    temporary view, a Delta sink; then a re-run of the same workflow id, --refresh, and an
    update with new input."""
    spec = rich_project(tmp_path / "shop")
    tables = tmp_path / "shop" / "storage" / "tables"
    sink = str(tmp_path / "shop" / "audit-sink")
    graph = xf.load_pipeline(spec, spark)
    assert {d["dataset"]: (d["kind"], d["reads"]) for d in graph.describe()} == {
        "customers": ("materialized view", []),
        "events": ("streaming table", []),
        "segments": ("temporary view", ["customers"]),
        "enriched_events": ("streaming table", ["customers", "events"]),
        "segment_totals": ("materialized view", ["enriched_events", "segments"]),
        "big_spends": ("streaming table", ["events"]),
        "audit": ("sink", ["events"]),
    }

    out = xf.run_pipeline(spec, spark)
    assert out["workflow_id"] == "shop-1"
    evs = events()
    assert rows(spark, str(tables / "customers")) == [(i, i % 3) for i in range(20)]
    assert rows(spark, str(tables / "events")) == evs
    assert rows(spark, str(tables / "enriched_events")) == sorted((c, a, c % 3) for c, a in evs)
    assert rows(spark, str(tables / "segment_totals")) == segment_totals(evs)
    assert rows(spark, str(tables / "big_spends")) == [e for e in evs if e[1] > 5]
    assert rows(spark, sink) == evs
    names = ["customers", "events", "enriched_events", "segment_totals", "big_spends"]
    before = {n: version(spark, str(tables / n)) for n in names}

    # the same workflow id again: everything is restored, nothing is published twice
    xf.run(xf.pipeline_dag(spec, spark), workflow_id="shop-1", storage=out["storage"])
    assert {n: version(spark, str(tables / n)) for n in names} == before
    assert version(spark, sink) == 0

    # --refresh one dataset: only it is published again
    assert cli.main(["run", str(spec), "--refresh", "segment_totals", "--no-progress"]) == 0
    assert "workflow shop-2 SUCCESSFUL" in capsys.readouterr().out
    after = {n: version(spark, str(tables / n)) for n in names}
    assert after == {**before, "segment_totals": before["segment_totals"] + 1}
    assert rows(spark, str(tables / "segment_totals")) == segment_totals(evs)

    # new input: the streaming tables and the sink take only the new rows
    write_events(tmp_path / "shop", [*EVENT_FILES, *MORE_EVENTS])
    assert xf.run_pipeline(spec, spark)["workflow_id"] == "shop-3"
    evs = events([*EVENT_FILES, *MORE_EVENTS])
    assert rows(spark, str(tables / "events")) == evs
    assert rows(spark, sink) == evs
    assert rows(spark, str(tables / "big_spends")) == [e for e in evs if e[1] > 5]
    assert rows(spark, str(tables / "segment_totals")) == segment_totals(evs)

    # --full-refresh a streaming table: emptied, then all of its input processed again, once
    published = version(spark, str(tables / "customers"))
    assert cli.main(["run", str(spec), "--full-refresh", "big_spends", "--no-progress"]) == 0
    assert "workflow shop-4 SUCCESSFUL" in capsys.readouterr().out
    assert rows(spark, str(tables / "big_spends")) == [e for e in evs if e[1] > 5]
    assert version(spark, str(tables / "customers")) == published


BAD = {
    "cycle": (
        {
            "a.py": """\
            from pyspark import pipelines as dp

            @dp.materialized_view
            def a():
                return spark.read.table("b")

            @dp.materialized_view
            def b():
                return spark.read.table("a")
            """
        },
        ["cycle", "[a] (transformations/a.py:3)", "[b] (transformations/a.py:7)"],
    ),
    "unknown input": (
        {"q.sql": "CREATE MATERIALIZED VIEW q AS SELECT * FROM no_such_dataset;\n"},
        ["flow [q] (transformations/q.sql:1) reads [no_such_dataset]"],
    ),
    "two flows into a materialized view": (
        {
            "m.py": """\
            from pyspark import pipelines as dp

            @dp.materialized_view
            def m():
                return spark.range(3)

            @dp.append_flow(target="m")
            def more():
                return spark.range(3)
            """
        },
        ["materialized view [m] (transformations/m.py:3) is written by 2 flows", "[more]"],
    ),
    "AutoCDC": (
        {
            "cdc.py": """\
            from pyspark import pipelines as dp

            dp.create_streaming_table("target")
            dp.create_auto_cdc_flow(
                target="target", source="changes", keys=["id"], sequence_by="ts"
            )
            """
        },
        ["AutoCDC flow [target]", "transformations/cdc.py:4", "not supported"],
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_project_is_refused_before_anything_runs(spark, tmp_path, case) -> None:
    files, expected = BAD[case]
    spec = bad_project(tmp_path / "p", files)
    with pytest.raises(xf.PipelineError) as err:
        xf.run_pipeline(spec, spark)
    for text in expected:
        assert text in str(err.value)
    assert not (tmp_path / "p" / "storage").exists()  # nothing ran, nothing was logged


def test_a_killed_update_resumes_without_recomputing_what_committed(
    spark, tmp_path, capsys
) -> None:
    """Update 1 runs (here); update 2 runs in a driver SIGKILLed right after segment_totals'
    Delta commit (before exoflow logged it); `exoflow-spark run spec.yml` then resumes update
    2 (here: `exoflow-spark run spec.yml --dry-run` names update 2 as the one a run would
    continue; `exoflow-spark resume small-2` starts it again from its logged launch): every
    table equals the expected one, no committed table gets another version, and a reader
    polling the published tables throughout never sees one empty."""
    spec = small_project(tmp_path / "small")
    tables = tmp_path / "small" / "storage" / "tables"
    storage = str(tmp_path / "small" / "storage" / "exoflow")
    names = ["customers", "events", "segment_totals"]
    assert xf.run_pipeline(spec, spark)["workflow_id"] == "small-1"
    seen: dict[str, list[int]] = {n: [] for n in names}
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            for n in names:
                seen[n].append(spark.read.format("delta").load(str(tables / n)).count())
            time.sleep(0.2)

    reader = threading.Thread(target=poll, daemon=True)
    reader.start()
    try:
        crashed = run_driver(
            "pipeline_job.py", "--spec", spec, crash_at="segment_totals:during-sink", timeout=900
        )
        assert crashed.returncode == -9, crashed.stderr[-3000:]
        assert xf.get_status("small-1", storage=storage) is xf.WorkflowStatus.SUCCESSFUL
        assert xf.get_status("small-2", storage=storage) is xf.WorkflowStatus.RESUMABLE
        at_crash = {n: version(spark, str(tables / n)) for n in names}
        assert at_crash["segment_totals"] == 1  # update 2's overwrite committed in Delta
        capsys.readouterr()
        assert cli.main(["run", str(spec), "--dry-run"]) == 0
        assert "-> workflow [small-2]" in capsys.readouterr().out
        assert cli.main(["resume", "small-2", "--storage", storage, "--no-progress"]) == 0
        out = capsys.readouterr().out
        assert f"resuming small-2: {spec}" in out and "workflow small-2 SUCCESSFUL" in out, out
    finally:
        stop.set()
        reader.join()
    assert xf.get_status("small-2", storage=storage) is xf.WorkflowStatus.SUCCESSFUL
    # nothing committed is published again, segment_totals' commit is not repeated
    assert {n: version(spark, str(tables / n)) for n in names} == at_crash
    evs = events()
    assert rows(spark, str(tables / "customers")) == [(i, i % 3) for i in range(20)]
    assert rows(spark, str(tables / "events")) == evs
    all_segments: Counter[int] = Counter()
    count: Counter[int] = Counter()
    for cid, amount in evs:
        all_segments[cid % 3] += amount
        count[cid % 3] += 1
    assert rows(spark, str(tables / "segment_totals")) == sorted(
        (s, all_segments[s], count[s]) for s in all_segments
    )
    assert all(seen[n] for n in names) and 0 not in seen["customers"] + seen["segment_totals"], seen
