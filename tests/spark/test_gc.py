"""Garbage collection of checkpoint tables: never what a resumable workflow needs."""

from __future__ import annotations

import os
import threading
from collections import Counter
from pathlib import Path

from chispa import assert_df_equality
from pyspark.sql import functions as F

import exoflow_spark as xf
from exoflow_spark.engine.gc import collect_garbage
from exoflow_spark.surface.cli import main


def _refs(storage: str, wf: str) -> set[str]:
    d = Path(storage) / "workflows" / wf / "refs"
    return {p.name for p in d.iterdir()} if d.exists() else set()


def _build(tmp_path: Path):
    """src -> mid -> out <- side; out fails until the flag file exists. Every task appends
    its name to a counter file when it executes."""
    flag, counts = str(tmp_path / "flag"), str(tmp_path / "counts")

    def bump(name: str) -> None:
        with open(counts, "a") as fh:
            fh.write(name + "\n")

    @xf.task(checkpoint=True)
    def src():
        bump("src")
        return xf.get_spark().range(20).withColumn("k", F.col("id") % 4)

    @xf.task(checkpoint=True)
    def mid(df):
        bump("mid")
        return df.filter("id % 2 = 0")

    @xf.task(checkpoint=True)
    def side():
        bump("side")
        return xf.get_spark().range(4).withColumnRenamed("id", "k")

    @xf.task
    def out(df, keys):
        bump("out")
        if not os.path.exists(flag):
            raise RuntimeError("input not ready yet")
        return df.join(keys, "k").groupBy("k").agg(F.count("*").alias("n"))

    return out.bind(mid.bind(src.bind()), side.bind()), flag, counts


def test_gc_keeps_what_resume_needs_and_the_workflow_still_resumes(
    spark, storage, tmp_path, capsys
) -> None:
    dag, flag, counts = _build(tmp_path)
    wf = "gc-resumable"
    try:
        xf.run(dag, workflow_id=wf, storage=storage, spark=spark)
        raise AssertionError("out should fail while the flag is missing")
    except xf.TaskFailedError:
        pass
    assert xf.get_status(wf, storage=storage) is xf.WorkflowStatus.FAILED
    # a stray table of a task no longer in the DAG: nobody can ever read it
    spark.range(3).write.format("delta").save(f"{storage}/workflows/{wf}/refs/renamed_task")
    before = _refs(storage, wf)
    assert before == {"src", "mid", "side", "renamed_task"}

    dry = collect_garbage(storage, dry_run=True)
    assert {i.table for i in dry.deleted} == {"src", "renamed_task"}
    assert _refs(storage, wf) == before, "a dry run deletes nothing"
    assert dry.bytes_freed > 0

    report = collect_garbage(storage)
    assert {i.table for i in report.deleted} == {"src", "renamed_task"}
    assert {i.table for i in report.kept} == {"mid", "side"}
    # the proof: every checkpoint either strategy's next run restores is still there
    for strategy in ("restore", "cost"):
        plan = xf.explain(wf, storage=storage, recovery=strategy)
        for task in plan.actions("restore"):
            assert task in _refs(storage, wf), (strategy, task)
    assert main(["status", wf, "--storage", storage]) == 1
    assert "table deleted by gc" in capsys.readouterr().out

    # ... and the workflow resumes correctly: src is not executed again, out sees the data
    Path(flag).touch()
    result = xf.run(dag, workflow_id=wf, storage=storage, spark=spark)
    expected = (
        spark.range(20)
        .withColumn("k", F.col("id") % 4)
        .filter("id % 2 = 0")
        .groupBy("k")
        .agg(F.count("*").alias("n"))
    )
    assert_df_equality(result, expected, ignore_row_order=True, ignore_nullable=True)
    # executed once each, except out (failed, then ran again): nothing re-ran after gc
    assert Counter(Path(counts).read_text().split()) == {"src": 1, "side": 1, "mid": 1, "out": 2}
    assert xf.get_status(wf, storage=storage) is xf.WorkflowStatus.SUCCESSFUL

    # once SUCCESSFUL only the output's checkpoint is kept, until --include-outputs
    assert main(["gc", "--storage", storage, "--json"]) == 0
    capsys.readouterr()
    assert _refs(storage, wf) == {"out"}
    assert xf.get_output(wf, storage=storage, spark=spark).count() == 2
    assert main(["gc", wf, "--storage", storage, "--include-outputs", "--dry-run"]) == 0
    assert "would delete" in capsys.readouterr().out and _refs(storage, wf) == {"out"}
    assert main(["gc", wf, "--storage", storage, "--include-outputs"]) == 0
    assert _refs(storage, wf) == set()
    assert main(["history", wf, "--storage", storage]) == 0
    assert "deleted by gc: mid, out, renamed_task, side, src" in capsys.readouterr().out


def test_gc_leaves_a_running_workflow_alone(spark, storage) -> None:
    started, release = threading.Event(), threading.Event()

    @xf.task(checkpoint=True)
    def first():
        return xf.get_spark().range(5)

    @xf.task(checkpoint=True)
    def second(df):
        return df.selectExpr("id * 2 AS id")

    @xf.task
    def blocked(df):
        started.set()
        assert release.wait(60)
        return df.count()

    box: dict[str, object] = {}
    thread = threading.Thread(
        target=lambda: box.setdefault(
            "out",
            xf.run(
                blocked.bind(second.bind(first.bind())),
                workflow_id="gc-running",
                storage=storage,
                spark=spark,
            ),
        )
    )
    thread.start()
    try:
        assert started.wait(120)
        assert xf.get_status("gc-running", storage=storage) is xf.WorkflowStatus.RUNNING
        report = collect_garbage(storage)
        assert report.deleted == []
        assert {i.table for i in report.kept} == {"first", "second"}
        assert all("RUNNING" in i.reason for i in report.kept)
        assert _refs(storage, "gc-running") == {"first", "second"}
    finally:
        release.set()
        thread.join(120)
    assert box["out"] == 5
