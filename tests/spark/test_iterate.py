"""Iterative tasks: 60 PageRank iterations with lineage cut from measured costs, and resuming
a loop from its last durable cut after an interruption (in-process, and a SIGKILLed driver)."""

from __future__ import annotations

import signal

import pytest
from drivers import iterate_job, start_driver
from drivers.iterate_job import DAMPING, EDGES, N, pagerank_loop
from pyspark.sql import functions as F

import exoflow_spark as xf


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


def test_sixty_pagerank_iterations_in_a_task(spark, storage, wf) -> None:
    @xf.task(checkpoint=True)
    def pagerank():
        step, ranks0 = pagerank_loop(spark, cache=True)
        ranks, report = xf.iterate(step, ranks0, 60)
        reports.append(report)
        return ranks

    reports: list[xf.IterationReport] = []
    out = xf.run(pagerank.bind(), workflow_id=wf, storage=storage, spark=spark)
    got = {r.node: r.rank for r in out.collect()}
    want = python_pagerank(60)
    assert got.keys() == want.keys()
    for node, rank in want.items():
        assert got[node] == pytest.approx(rank, abs=1e-9)

    [report] = reports
    assert report.iterations == 60
    assert 2 <= len(report.cuts) <= 30  # cut from costs: neither never nor every step
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
    # each cut is a Parquet folder; the cut before is deleted once the next one is recorded
    # (the result still reads the last one)
    assert len(list((tmp_path / "iter" / "_parquet").iterdir())) == 1
    with pytest.raises(xf.InvalidOptionError, match="needs path"):
        xf.iterate(lambda d, i: d, spark.range(1), 3)
    with pytest.raises(xf.InvalidOptionError, match="every=0"):
        xf.iterate(lambda d, i: d, spark.range(1), 3, every=0, path=str(tmp_path / "x"))


# -- resuming from the last durable cut ------------------------------------------------------
def assert_ranks(got: dict[int, float], want: dict[int, float]) -> None:
    assert got.keys() == want.keys()
    for node, rank in want.items():
        assert got[node] == pytest.approx(rank, abs=1e-9), node


def test_a_task_resumes_from_its_last_durable_cut(spark, storage, wf) -> None:
    """The first run fails while building iteration 13 (cuts after 3, 7, 11); running the
    workflow again re-does iterations 12 and 13 only and gives the uninterrupted result
    (the oracle computes the 20 iterations without interruption)."""
    calls: list[int] = []
    reports: list[xf.IterationReport] = []
    fail = [13]

    @xf.task(checkpoint=True)
    def pagerank():
        step, ranks0 = pagerank_loop(xf.get_spark(), calls.append, fail_at=fail[0])
        ranks, report = xf.iterate(step, ranks0, 20, every=4)
        reports.append(report)
        return ranks

    with pytest.raises(xf.TaskFailedError, match="interrupted in iteration 13"):
        xf.run(pagerank.bind(), workflow_id=wf, storage=storage, spark=spark)
    assert calls == list(range(14))
    fail[0], calls[:] = None, []
    out = xf.run(pagerank.bind(), workflow_id=wf, storage=storage, spark=spark)
    assert calls == list(range(12, 20))  # re-done: 12 and 13 (built before the failure)
    [report] = reports
    assert report.resumed_from == 11
    assert (report.iterations, report.steps_run, report.cuts) == (20, 8, [15])
    assert report.max_depth == 4
    assert_ranks({r.node: r.rank for r in out.collect()}, python_pagerank(20))


def test_a_changed_input_or_code_never_resumes_a_stale_cut(spark, storage, wf, tmp_path) -> None:
    # inside a task: the same loop under another task input (its DAG fingerprint changes)
    calls: list[int] = []
    reports: list[xf.IterationReport] = []

    @xf.task(checkpoint=True)
    def pagerank(damping, fail_at):
        step, ranks0 = pagerank_loop(xf.get_spark(), calls.append, fail_at, damping)
        ranks, report = xf.iterate(step, ranks0, 6, every=2)
        reports.append(report)
        return ranks

    with pytest.raises(xf.TaskFailedError):  # cuts after 1 and 3, fails building 4
        xf.run(pagerank.bind(0.5, 4), workflow_id=wf, storage=storage, spark=spark)
    calls.clear()
    xf.run(pagerank.bind(DAMPING, None), workflow_id=wf, storage=storage, spark=spark)
    assert calls == list(range(6)) and reports[-1].resumed_from is None

    # outside a task (path=, resume=True): another initial DataFrame, another step's code
    # (every=100: these loops make no cut, so the interrupted loop's record stays)
    path = str(tmp_path / "cuts")
    step, ranks0 = pagerank_loop(spark, calls.append, fail_at=7)
    with pytest.raises(RuntimeError):
        xf.iterate(step, ranks0, 12, every=3, path=path)  # cuts after 2 and 5
    good, _ = pagerank_loop(spark, calls.append)
    other_initial = ranks0.withColumn("rank", F.lit(2.0 / N))
    _, report = xf.iterate(good, other_initial, 12, every=100, path=path, resume=True)
    assert report.resumed_from is None and report.steps_run == 12

    def changed(ranks, i):  # the same update, other code
        return good(ranks, i).withColumn("rank", F.col("rank") * 1.0)

    _, report = xf.iterate(changed, ranks0, 12, every=100, path=path, resume=True)
    assert report.resumed_from is None and report.steps_run == 12

    # positive controls: the same step code and initial resume, when asked, and give what
    # an uninterrupted loop gives (resume=None outside a task: it does not resume)
    calls.clear()
    step2, ranks0 = pagerank_loop(spark, calls.append)  # same source, new closure, equal plan
    ranks, report = xf.iterate(step2, ranks0, 12, every=3, path=path, resume=True)
    assert report.resumed_from == 5 and calls == [6, 7, 8, 9, 10, 11]
    whole, report = xf.iterate(good, ranks0, 12, every=3, path=path)
    assert report.resumed_from is None and report.steps_run == 12
    uninterrupted = {r.node: r.rank for r in whole.collect()}
    assert_ranks({r.node: r.rank for r in ranks.collect()}, uninterrupted)
    assert_ranks(uninterrupted, python_pagerank(12))


def test_a_step_that_returns_no_dataframe_is_refused(spark, tmp_path) -> None:
    def add_one(df, i):
        return i + 1

    with pytest.raises(xf.InvalidOptionError) as err:
        xf.iterate(add_one, spark.range(3), 5, path=str(tmp_path / "x"))
    message = str(err.value)
    assert isinstance(err.value, xf.ExoflowError)
    assert "add_one" in message and "returned int" in message and "DataFrame" in message


@pytest.mark.subprocess
def test_a_driver_killed_mid_iteration_resumes_from_the_last_cut(spark, tmp_path) -> None:
    """A real SIGKILL while the driver builds iteration 8 of 12 (cuts after 2 and 5): the
    resumed run (in this process) re-does iterations 6-8 only and gives the uninterrupted ranks."""
    counter = tmp_path / "iterations"
    args = ("--storage", tmp_path / "exo", "--workflow-id", "ranks", "--counter", counter)
    args += ("--iterations", 12, "--every", 3)
    proc = start_driver("iterate_job.py", *args, crash_at="pagerank:during-iteration@9")
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == -signal.SIGKILL, err[-3000:]
    assert counter.read_text().split() == [str(i) for i in range(9)]
    counter.write_text("")

    # the resume, in this process on the suite's session
    ranks, report = iterate_job.run(
        spark,
        storage=str(tmp_path / "exo"),
        workflow_id="ranks",
        counter=str(counter),
        iterations=12,
        every=3,
    )
    assert counter.read_text().split() == [str(i) for i in range(6, 12)]  # 6-8 re-done
    assert report == {"iterations": 12, "steps_run": 6, "resumed_from": 5, "cuts": [8]}
    assert_ranks(ranks, python_pagerank(12))
