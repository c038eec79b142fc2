"""DAG building: stable ids, cycles, fingerprints, wait validation."""

from __future__ import annotations

import pytest

import exoflow_spark as xf
from exoflow_spark.core.dag import Dag


@xf.task
def src(n):
    return n


@xf.task
def add(a, b):
    return a + b


def test_ids_are_deduplicated_deterministically() -> None:
    a, b = src.bind(1), src.bind(2)
    dag = Dag(add.bind(a, add.bind(b, a)))
    assert dag.task_ids == ["src", "src_1", "add", "add_1"]
    # building the same program again gives the same ids and fingerprints
    a2, b2 = src.bind(1), src.bind(2)
    dag2 = Dag(add.bind(a2, add.bind(b2, a2)))
    assert dag2.task_ids == dag.task_ids
    assert [dag2.fingerprint(n) for n in dag2] == [dag.fingerprint(n) for n in dag]


def test_shared_node_appears_once_and_nested_inputs_are_found() -> None:
    a = src.bind(1)
    dag = Dag(add.bind([a, {"k": a}], src.bind(3)))
    assert dag.task_ids == ["src", "src_1", "add"]
    assert [dag.id_of(u) for u in dag.upstream(dag.output)] == ["src", "src_1"]


def test_fingerprint_tracks_code_and_inputs_not_recovery_options() -> None:
    base = Dag(add.bind(src.bind(1), 2))
    other_input = Dag(add.bind(src.bind(5), 2))
    other_options = Dag(add.options(checkpoint=True, max_retries=0).bind(src.bind(1), 2))

    @xf.task(name="add")
    def add_changed(a, b):
        return a - b

    other_code = Dag(add_changed.bind(src.bind(1), 2))
    fp = base.fingerprint(base.output)
    assert other_input.fingerprint(other_input.output) != fp  # upstream input changed
    assert other_options.fingerprint(other_options.output) == fp
    assert other_code.fingerprint(other_code.output) != fp


def test_cycle_is_reported_with_its_path() -> None:
    a = src.bind(1)
    b = add.bind(a, 1)
    a.args = (b,)  # only possible by mutating a node; bind() alone cannot make cycles
    with pytest.raises(xf.DagError, match="cycle: add -> src -> add"):
        Dag(b)


def test_explicit_duplicate_names_are_refused() -> None:
    one = src.options(name="same")
    two = add.options(name="same")
    with pytest.raises(xf.DagError, match=r"both named \[same\]"):
        Dag(two.bind(one.bind(1), 2))


def test_wait_until_committed_is_validated() -> None:
    ckpt = src.options(checkpoint=True)
    with pytest.raises(xf.DagError, match=r"no task \[missing\]"):
        Dag(add.options(wait_until_committed=["missing"]).bind(ckpt.bind(1), 1))
    with pytest.raises(xf.DagError, match="checkpoint=False and never commits"):
        Dag(add.options(wait_until_committed=["src"]).bind(src.bind(1), 1))
    with pytest.raises(xf.DagError, match="that wait can never end"):
        Dag(add.bind(src.options(checkpoint=True, wait_until_committed=["add"]).bind(1), 1))
    ok = Dag(add.options(wait_until_committed=["src"]).bind(ckpt.bind(1), 1))
    assert ok.task_ids == ["src", "add"]
