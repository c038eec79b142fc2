"""DAG building where a SparkSession is involved: run's argument check, DataFrame inputs'
fingerprints (the rest of the DAG tests are unit tests, tests/unit/test_dag.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

import exoflow_spark as xf
from exoflow_spark.core.dag import Dag


@xf.task
def src(n):
    return n


def test_run_needs_a_node(spark, storage) -> None:
    with pytest.raises(xf.InvalidOptionError, match=r"expects a DAG node built with task\.bind"):
        xf.run(src, workflow_id="x", storage=storage, spark=spark)  # type: ignore[arg-type]


def test_dataframe_inputs_are_fingerprinted_by_plan(spark) -> None:
    @xf.task
    def count(df):
        return df.count()

    same_a = Dag(count.bind(spark.range(10).filter("id > 2")))
    same_b = Dag(count.bind(spark.range(10).filter("id > 2")))
    other = Dag(count.bind(spark.range(10).filter("id > 3")))
    fp = same_a.fingerprint(same_a.output)
    assert same_b.fingerprint(same_b.output) == fp
    assert other.fingerprint(other.output) != fp


def log_of(storage: str, wf: str) -> dict[str, bytes]:
    log = Path(storage) / "workflows" / wf / "log"
    return {str(p.relative_to(log)): p.read_bytes() for p in log.rglob("*") if p.is_file()}


def test_a_different_dag_under_a_used_id_is_refused_unless_replaced(spark, storage) -> None:
    """A workflow id is an idempotency key: another DAG under it is refused before anything
    is written, naming what differs; replace=True makes the id run the new DAG."""

    @xf.task
    def chg():
        return 1

    @xf.task
    def num(x):
        return x

    assert xf.run(chg.bind(), workflow_id="chg", storage=storage, spark=spark) == 1
    before = log_of(storage, "chg")
    with pytest.raises(xf.WorkflowChangedError) as info:
        xf.run(num.bind(99), workflow_id="chg", storage=storage, spark=spark)
    msg = str(info.value)
    assert "workflow [chg] was run with a different DAG: output [chg] is now [num]" in msg
    assert "[chg] of the logged DAG are not in this one" in msg and "[num] are new" in msg
    assert "nothing was written" in msg and "replace=True" in msg
    assert log_of(storage, "chg") == before
    assert xf.get_output("chg", storage=storage, spark=spark) == 1
    with pytest.raises(xf.WorkflowChangedError):  # explain says what run would say
        xf.explain(num.bind(99), workflow_id="chg", storage=storage)

    assert xf.run(num.bind(99), workflow_id="chg", storage=storage, spark=spark, replace=True) == 99
    assert xf.get_output("chg", storage=storage, spark=spark) == 99
    # from now on the id names the new DAG: running it again is a plain resume
    assert xf.run(num.bind(99), workflow_id="chg", storage=storage, spark=spark) == 99


def test_replace_keeps_unchanged_commits_and_reruns_changed_ones(spark, storage, wf) -> None:
    calls: list[str] = []

    @xf.task(checkpoint=True)
    def base(n):
        calls.append("base")
        return n

    @xf.task
    def double(x):
        calls.append("double")
        return 2 * x

    @xf.task
    def triple(x):
        calls.append("triple")
        return 3 * x

    at = {"workflow_id": wf, "storage": storage, "spark": spark}
    assert xf.run(double.bind(base.bind(5)), **at) == 10
    assert calls == ["base", "double"]
    with pytest.raises(xf.WorkflowChangedError, match=r"output \[double\] is now \[triple\]"):
        xf.run(triple.bind(base.bind(5)), **at)
    assert xf.run(triple.bind(base.bind(5)), **at, replace=True) == 15
    assert calls == ["base", "double", "triple"]  # [base] is unchanged: restored, not re-run
    # a changed committed task under replace=True re-runs (instead of TaskChangedError)
    assert xf.run(triple.bind(base.bind(7)), **at, replace=True) == 21
    assert calls == ["base", "double", "triple", "base", "triple"]
