"""The benchmarks run end to end and their candidates agree (correctness only, never time)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import controller
import peers

from exoflow_spark.core.dag import Dag


@pytest.mark.parametrize("shape", ["chain", "fan"])
@pytest.mark.parametrize("value", ["int", "none"])
def test_controller_short_configs_return_the_expected_output(spark, storage, shape, value):
    r = controller.run_once(spark, shape, 40, value, storage, f"ctl-{shape}-{value}")
    assert r["output"] == controller.expected(shape, 40, value)


def test_a_10000_task_chain_builds_without_recursion_and_with_unique_ids():
    dag = Dag(controller.build("chain", 10_000, "int"))
    ids = dag.task_ids
    assert len(ids) == len(set(ids)) == 10_000
    assert ids[0] == "source" and ids[1] == "step" and ids[-1] == "step_9998"


@pytest.mark.parametrize(
    ("pipeline", "chosen"),
    [
        ("etl", ["plain PySpark", "exoflow none"]),
        ("heavy", ["plain PySpark", "exoflow cost-based", "Dagster + parquet IO manager"]),
    ],
)
def test_peer_candidates_compute_the_same_summary(spark, tmp_path, pipeline, chosen):
    p = peers.etl_pipeline(3_000) if pipeline == "etl" else peers.heavy_pipeline(2_000, 5)
    if not _has_dagster():
        chosen = [c for c in chosen if not c.startswith("Dagster")]
    formats = ["parquet"] if any(c.startswith("Dagster") for c in chosen) else []
    cands = peers.candidates_for(spark, p, tmp_path, dagster_formats=formats, checkpoints=False)
    outs = {name: cands[name](0) for name in chosen}
    want = outs["plain PySpark"]
    assert want[0] > 0
    assert outs == {name: want for name in chosen}


def _has_dagster() -> bool:
    try:
        import dagster  # noqa: F401
    except ImportError:
        return False
    return True
