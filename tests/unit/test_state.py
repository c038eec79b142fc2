"""Run bookkeeping without Spark: RunState's locked updates, the scheduler's ready-queue
loop driven by a stand-in runner, and the committer's TaskOutput and commit records."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from types import SimpleNamespace
from typing import Any

import pytest

import exoflow_spark as xf
from exoflow_spark.core.dag import Dag
from exoflow_spark.core.records import SCHEMA_VERSION, CommitRecord
from exoflow_spark.core.status import TaskStatus
from exoflow_spark.engine.committer import (
    TaskOutput,
    commit_fields,
    commit_record,
)
from exoflow_spark.engine.ref import Ref
from exoflow_spark.engine.scheduler import Scheduler
from exoflow_spark.engine.state import RunContext, RunState
from exoflow_spark.errors import DagError
from exoflow_spark.storage.checkpoints import DeltaVersion
from exoflow_spark.storage.store import WorkflowState


@xf.task
def src(n):
    return n


@xf.task
def add(a, b):
    return a + b


# -- RunState ----------------------------------------------------------------------------------
def test_add_ref_keeps_the_first_ref_across_threads() -> None:
    state = RunState()
    refs = [Ref("t", "value", value=i) for i in range(16)]
    start = threading.Barrier(len(refs))
    kept: list[Ref] = []

    def add(ref: Ref) -> None:
        start.wait()
        kept.append(state.add_ref("t", ref))

    threads = [threading.Thread(target=add, args=(r,)) for r in refs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(r) for r in kept}) == 1  # every thread got the same ref ...
    assert state.ref("t") is kept[0]  # ... the one that stayed
    assert state.ref("other") is None


def test_set_ref_replaces_and_wakes_a_waiter() -> None:
    state = RunState()
    woke = threading.Event()

    def waiter() -> None:
        with state.cond:
            while "t" not in state.refs:
                state.cond.wait(timeout=5)
            woke.set()

    th = threading.Thread(target=waiter)
    th.start()
    time.sleep(0.05)
    first = Ref("t", "none")
    state.set_ref("t", first)
    th.join(5)
    assert woke.is_set()
    second = Ref("t", "value", value=2)
    state.set_ref("t", second)
    assert state.ref("t") is second


def test_fail_keeps_the_first_error() -> None:
    state = RunState()
    first, later = RuntimeError("first"), ValueError("later")
    state.fail(first)
    state.fail(later)
    assert state.failure is first


def test_running_changed_and_async_bookkeeping() -> None:
    state = RunState(statuses={"a": TaskStatus.PENDING, "b": TaskStatus.PENDING})
    state.running.update({"a", "b"})
    state.in_flight = 2
    state.task_ended("a")
    assert state.running == {"b"}
    state.note_changed("a")
    assert state.changed == ["a"] and state.in_flight == 1
    state.set_statuses(["a", "b"], TaskStatus.DONE)
    state.set_status("b", TaskStatus.CHECKPOINTING)
    assert state.statuses == {"a": TaskStatus.DONE, "b": TaskStatus.CHECKPOINTING}

    write: Future[None] = Future()
    ref = Ref("b", "cache", df=object())
    state.add_async_write("b", ref, write)
    assert state.ref("b") is ref and state.async_write_list() == [("b", write)]
    assert state.writes_running() == 1
    write.set_result(None)
    assert state.writes_running() == 0


def test_persisted_frames_are_taken_once() -> None:
    state = RunState()
    a, b = object(), object()
    assert state.keep_persisted(a) is a
    state.keep_persisted(b)
    assert state.take_persisted() == [a, b]
    assert state.take_persisted() == []


def test_each_run_state_has_its_own_fields() -> None:
    one, two = RunState(), RunState()
    one.set_ref("t", Ref("t", "none"))
    one.running.add("t")
    assert two.refs == {} and two.running == set() and one.cond is not two.cond


# -- the scheduler, with a stand-in runner (no Spark) ---------------------------------------------
class StandInRunner:
    """Publishes each task's ref as the real runner does; records the order tasks ran in."""

    def __init__(
        self,
        dag: Dag,
        state: RunState,
        *,
        fail: str = "",
        uncommitted: frozenset[str] = frozenset(),
    ) -> None:
        self.dag, self.state, self.fail, self.uncommitted = dag, state, fail, uncommitted
        self.started: list[str] = []
        self.lock = threading.Lock()

    def run(self, tid: str) -> None:
        try:
            with self.lock:
                self.started.append(tid)
            for u in self.dag.upstream(self.dag.node(tid)):
                if self.state.ref(self.dag.id_of(u)) is None:
                    raise AssertionError(f"{tid} started before its input {self.dag.id_of(u)}")
            if tid == self.fail:
                raise RuntimeError(f"{tid} failed")
            time.sleep(0.01)
            backing = "cache" if tid in self.uncommitted else "value"
            ref = Ref(tid, backing, value=tid) if backing == "value" else Ref(tid, "cache", df=tid)
            self.state.set_status(tid, TaskStatus.DONE)
            self.state.set_ref(tid, ref)
        except BaseException as exc:
            self.state.set_status(tid, TaskStatus.FAILED)
            self.state.fail(exc)
        finally:
            self.state.task_ended(tid)

    def ref(self, tid: str) -> Ref:
        ref = self.state.ref(tid)
        assert ref is not None
        return ref


class StandInCommitter:
    closed = False

    def close(self) -> None:
        self.closed = True


def _scheduler(dag: Dag, **runner: Any) -> tuple[Scheduler, StandInRunner, StandInCommitter]:
    store = SimpleNamespace(workflow_id="wf")
    ctx = RunContext(dag, store, None, WorkflowState("wf"), 1)  # type: ignore[arg-type]
    state = RunState(
        needed=list(dag.task_ids), statuses={t: TaskStatus.PENDING for t in dag.task_ids}
    )
    fake, committer = StandInRunner(dag, state, **runner), StandInCommitter()
    sched = Scheduler(ctx, state, fake, committer, max_parallel=3)  # type: ignore[arg-type]
    return sched, fake, committer


def test_scheduler_runs_each_task_after_its_inputs() -> None:
    a, b = src.bind(1), src.bind(2)
    dag = Dag(add.bind(add.bind(a, b), add.bind(b, src.bind(3))))
    sched, runner, committer = _scheduler(dag)
    assert sched.execute() == dag.id_of(dag.output)
    assert sorted(runner.started) == sorted(dag.task_ids)  # each exactly once
    pos = {t: i for i, t in enumerate(runner.started)}
    for node in dag:
        for u in dag.upstream(node):
            assert pos[dag.id_of(u)] < pos[dag.id_of(node)]
    assert committer.closed and not sched.state.running and not sched.state.pending


def test_scheduler_stops_at_the_first_failure_and_starts_nothing_downstream() -> None:
    a = src.bind(1)
    dag = Dag(add.bind(add.bind(a, 2), 3))
    sched, runner, committer = _scheduler(dag, fail="src")
    with pytest.raises(RuntimeError, match="src failed"):
        sched.execute()
    assert runner.started == ["src"] and committer.closed
    assert sched.state.statuses["src"] is TaskStatus.FAILED


def test_scheduler_reports_tasks_waiting_on_a_target_that_never_commits() -> None:
    target = src.options(checkpoint="async", name="target").bind(1)
    waiter = src.options(wait_until_committed=["target"], name="waiter").bind(2)
    dag = Dag(add.bind(target, waiter))
    sched, runner, _ = _scheduler(dag, uncommitted=frozenset({"target"}))
    with pytest.raises(DagError, match=r"\['add', 'waiter'\] can never start"):
        sched.execute()
    assert runner.started == ["target"]


# -- the committer's argument object and commit records -----------------------------------------
def test_commit_record_merges_the_output_record_with_the_common_fields() -> None:
    dag = Dag(src.bind(1))
    ref = Ref("src", "cache", df=object())
    ref.materialize_seconds = 0.5
    out = TaskOutput(
        dag.output,
        "src",
        generation=2,
        ref=ref,
        record=None,
        compute_seconds=1.25,
        attempts=3,
        observed=frozenset({"z", "b"}),
        wrote_sink=True,
        started_at=100.0,
    )
    before = time.time()
    fields = commit_fields(out, "fp", run=7)
    assert fields.pop("output_at") >= before
    assert fields == {
        "fingerprint": "fp",
        "compute_seconds": 1.75,  # the call plus materializing the cache
        "run": 7,
        "attempts": 3,
        "sink": True,
        "observed_volatile": ("b", "z"),
        "started_at": 100.0,
    }
    fields["output_at"] = before
    assert commit_record(CommitRecord.of_value([1, "x"]), fields).to_json() == {
        "kind": "value",
        "value": [1, "x"],
        **fields,
        "observed_volatile": ["b", "z"],
        "schema": SCHEMA_VERSION,
    }
    assert commit_record(CommitRecord.none(), fields).to_json()["kind"] == "none"
    with pytest.raises(AttributeError):
        out.attempts = 4  # type: ignore[misc]  # frozen: handed over, not changed


def test_delta_record_keeps_the_on_disk_shape() -> None:
    dv = DeltaVersion("/r/t", 3, 10, 2, 0.1, ("part-0.parquet",), "a int", "delta")
    doc = CommitRecord.of_checkpoint(dv, "async").to_json()
    assert {k: doc[k] for k in ("kind", "mode", "delta")} == {
        "kind": "dataframe",
        "mode": "async",
        "delta": {
            "path": "/r/t",
            "version": 3,
            "bytes": 10,
            "rows": 2,
            "write_seconds": 0.1,
            "files": ["part-0.parquet"],
            "schema": "a int",
        },
    }
    pq = DeltaVersion("/r/p", 0, 1, 1, 0.2, None, None, "parquet")
    assert CommitRecord.of_checkpoint(pq, "sync").to_json()["delta"] == {
        "path": "/r/p",
        "version": 0,
        "bytes": 1,
        "rows": 1,
        "write_seconds": 0.2,
        "format": "parquet",
    }
