"""The state of one run, apart from the code that drives it (as Ray's ``workflow_state.py``
is apart from ``workflow_executor.py``).

:class:`RunContext` is what a run works on and never changes: the DAG, the store, the
session, the workflow's logged state and the run number. :class:`RunState` is everything that
changes while the run executes, each field declared and commented here, grouped by who
writes it. The scheduler (:mod:`.scheduler`), the task runner (:mod:`.runner`) and the
committer (:mod:`.committer`) share one ``RunState``; :class:`~.runtime.WorkflowRun` wires
them together.

Lock discipline: ``cond`` (a :class:`threading.Condition`) guards ``refs``, ``statuses``,
``running``, ``failure``, ``async_writes``, ``persisted`` and the scheduler's queue fields.
They are changed only through the methods below, which take the lock and wake the scheduler
where it waits for a change; the scheduler reads them holding the lock. A few reads happen
without it, safely under the GIL: a single ``dict.get``/``in`` on a dict whose entries are
only ever added (``refs``), or a whole-dict copy (the progress display copies ``statuses``,
whose keys are all set before the run starts, so only values change). The plan fields are
set before any thread starts and only read afterwards. ``own_cost`` (and the other
fields under "written by the thread running a task") is written once per
task by the thread that ran it, before that task's ref is published under the lock, and read
only by tasks that start after it (the lock orders the two).

This module holds bookkeeping only: it runs no Spark job and can be tested without Spark.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..core.dag import Dag
from ..core.status import TaskStatus
from ..storage.store import WorkflowState, WorkflowStore
from .autockpt import RunTail, TaskProfile
from .cost import Throughput
from .planner import RecoveryPlan
from .ref import Ref

if TYPE_CHECKING:
    from ..spark.session import PlanRead


@dataclass(frozen=True)
class RunContext:
    """What one run works on: fixed for the run's life.

    ``log`` is the workflow's logged state (commits, generations). It is not frozen: the
    committer adds each commit record to ``log.commits`` (under :attr:`RunState.cond`) right
    after appending it to the log, so the run sees what the log holds.
    """

    dag: Dag
    store: WorkflowStore
    spark: Any
    log: WorkflowState
    run: int

    @property
    def wf(self) -> str:
        """The workflow id (for messages and job groups)."""
        return self.store.workflow_id


@dataclass(eq=False)
class RunState:
    """Everything about one run that changes while it executes (see the module docstring for
    the lock discipline)."""

    # -- the plan: set once before the run starts, read-only afterwards ------------------
    #: tasks this run executes (run order, then committed tasks replayed from their inputs)
    needed: list[str] = field(default_factory=list)
    #: needed task -> number of needed tasks reading it (an uncheckpointed output read twice
    #: or more is cached)
    consumers: dict[str, int] = field(default_factory=dict)
    #: committed tasks re-derived from their inputs instead of restored (recovery="cost")
    replay_committed: frozenset[str] = frozenset()
    #: the recovery planner's decision for this run (None until planned)
    recovery_plan: RecoveryPlan | None = None
    #: the storage root's cost model of the checkpoints tasks declare, for the plan
    throughput: Throughput = field(default_factory=Throughput)
    #: its cost model of the checkpoints ``checkpoint="auto"`` writes (their format may
    #: differ, see :func:`~exoflow_spark.storage.checkpoints.run_formats`), for its decisions
    auto_throughput: Throughput = field(default_factory=Throughput)

    # -- guarded by ``cond`` ----------------------------------------------------------------
    #: the one lock of the run; waited on by the scheduler, notified on every change below
    cond: threading.Condition = field(default_factory=threading.Condition)
    #: task -> its output in this run (computed, cached, checkpointed, restored or an error);
    #: entries are only added (a ref moves to its checkpoint in place, see Ref.repoint)
    refs: dict[str, Ref] = field(default_factory=dict)
    #: task -> status, for every task of the DAG (read by the progress display)
    statuses: dict[str, TaskStatus] = field(default_factory=dict)
    #: tasks submitted to the task pool and not finished
    running: set[str] = field(default_factory=set)
    #: the first error that stops the run (later ones are dropped); None while all is well
    failure: BaseException | None = None
    #: task -> its async checkpoint write on the writer pool
    async_writes: dict[str, Future[None]] = field(default_factory=dict)
    #: DataFrames this run persisted in executor memory (unpersisted on release)
    persisted: list[Any] = field(default_factory=list)

    # -- the scheduler's queue: guarded by ``cond`` -----------------------------------------
    #: needed tasks not yet submitted
    pending: set[str] = field(default_factory=set)
    #: tasks that finished or whose async checkpoint ended since the scheduler last looked
    changed: list[str] = field(default_factory=list)
    #: tasks whose async checkpoint the scheduler asked to be told about
    watched: set[str] = field(default_factory=set)
    #: submitted tasks and watched checkpoints whose end is not yet in ``changed``
    in_flight: int = 0
    #: task -> index of the first input that had no ref at the last readiness check
    ready_from: dict[str, int] = field(default_factory=dict)

    # -- written by the thread running a task (see the module docstring) ---------------------
    #: task -> estimated seconds to recompute its own output from its inputs, theirs not
    #: included (checkpoint="auto"; a crash's cost sums it over what the crash loses)
    own_cost: dict[str, float] = field(default_factory=dict)
    #: task -> bytes its output is priced by (checkpoint="auto": measured, or the estimate)
    work_bytes: dict[str, int] = field(default_factory=dict)
    #: task -> its output's whole plan as read for its decision (checkpoint="auto"): a
    #: consumer whose plan fuses the output takes its operators out of its own without
    #: reading the plan again
    plan_reads: dict[str, PlanRead] = field(default_factory=dict)
    #: task -> the cost profile measured in this run (checkpoint="auto"; saved when measured,
    #: saved again with the checkpoint's write time at the end of the run)
    auto_profiles: dict[str, TaskProfile] = field(default_factory=dict)
    #: task -> when (``time.monotonic()``) its profiled output was ready: the run's remaining
    #: time from there is the profile's ``tail_s``
    auto_ready_at: dict[str, float] = field(default_factory=dict)
    #: task -> the shortest run tail its profile or its inputs' profiles know (``"auto"``)
    tails: dict[str, RunTail | None] = field(default_factory=dict)
    #: when (``time.monotonic()``) the run started
    started_at: float = field(default_factory=time.monotonic)

    # -- refs ---------------------------------------------------------------------------------
    def ref(self, tid: str) -> Ref | None:
        """The ref of ``tid`` in this run, or None if it has none yet."""
        with self.cond:
            return self.refs.get(tid)

    def set_ref(self, tid: str, ref: Ref) -> None:
        """Publish the output of ``tid`` and wake the scheduler."""
        with self.cond:
            self.refs[tid] = ref
            self.cond.notify_all()

    def add_ref(self, tid: str, ref: Ref) -> Ref:
        """Publish ``ref`` unless ``tid`` has a ref already; return the one that stays (two
        threads restoring the same input both get the first one's ref)."""
        with self.cond:
            return self.refs.setdefault(tid, ref)

    # -- statuses and failure -----------------------------------------------------------------
    def set_status(self, tid: str, status: TaskStatus) -> None:
        with self.cond:
            self.statuses[tid] = status

    def set_statuses(self, tids: Iterable[str], status: TaskStatus) -> None:
        with self.cond:
            for tid in tids:
                self.statuses[tid] = status

    def fail(self, exc: BaseException) -> None:
        """Record what stops the run (the first error only) and wake the scheduler."""
        with self.cond:
            if self.failure is None:
                self.failure = exc
            self.cond.notify_all()

    # -- running tasks and async writes ---------------------------------------------------------
    def task_ended(self, tid: str) -> None:
        """``tid``'s thread is done with it (whatever the outcome)."""
        with self.cond:
            self.running.discard(tid)
            self.cond.notify_all()

    def note_changed(self, tid: str) -> None:
        """A submitted task or a watched checkpoint of ``tid`` ended (a future's callback)."""
        with self.cond:
            self.changed.append(tid)
            self.in_flight -= 1
            self.cond.notify_all()

    def add_async_write(self, tid: str, ref: Ref, write: Future[None]) -> None:
        """Publish ``ref`` together with the async checkpoint write that will commit it."""
        with self.cond:
            self.refs[tid] = ref
            self.async_writes[tid] = write
            self.cond.notify_all()

    def async_write_list(self) -> list[tuple[str, Future[None]]]:
        with self.cond:
            return list(self.async_writes.items())

    def writes_running(self) -> int:
        """How many async checkpoint writes have not finished."""
        with self.cond:
            return sum(not f.done() for f in self.async_writes.values())

    def wake(self) -> None:
        """Wake the scheduler (something it cannot see changed, e.g. a ref committed)."""
        with self.cond:
            self.cond.notify_all()

    # -- caches -----------------------------------------------------------------------------------
    def keep_persisted(self, df: Any) -> Any:
        """Remember a DataFrame this run persisted, so :meth:`take_persisted` can drop it."""
        with self.cond:
            self.persisted.append(df)
        return df

    def take_persisted(self) -> list[Any]:
        """The DataFrames this run persisted; forgets them."""
        with self.cond:
            out, self.persisted = self.persisted, []
        return out
