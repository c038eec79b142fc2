"""DAG building where a SparkSession is involved: run's argument check, DataFrame inputs'
fingerprints (the rest of the DAG tests are unit tests, tests/unit/test_dag.py)."""

from __future__ import annotations

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
