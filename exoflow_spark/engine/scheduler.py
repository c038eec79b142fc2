"""Which tasks a run executes, and when: the plan and the ready-queue loop.

:func:`plan_run` asks the recovery planner (:mod:`.planner`) which tasks to run, restore,
replay or skip, logs the decision and returns a fresh :class:`~.state.RunState` holding it.

:class:`Scheduler` runs the plan: a task is ready when its inputs have refs it may read (a
nondeterministic output with an async checkpoint is read only once that commits, see
:meth:`~.ref.Ref.held_back`) and every task it waits on has committed; ready tasks run on a
thread pool (Spark runs jobs from several threads at once) through
:meth:`~.runner.TaskRunner.run`, while async checkpoints run on the committer's writer pool.
The loop is event-driven: when a task finishes, or its async checkpoint ends, only the tasks
that read it or wait on it are re-checked, so a run costs O(edges) scheduling work rather
than a scan of every pending task per wake-up. A full scan
runs at the start, after a quiet second, and before declaring tasks stuck. When nothing is
left to start, the scheduler waits for the async writes, then returns the output's value or
raises what stopped the run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ..core.fmt import error_line
from ..core.records import EventKind
from ..core.status import TaskStatus
from ..errors import CheckpointError, DagError, ExoflowError
from ..storage.checkpoints import CheckpointFormat
from .committer import Committer
from .cost import Throughput, load_throughput, measure_throughput
from .planner import Strategy, plan
from .runner import TaskRunner
from .state import RunContext, RunState

logger = logging.getLogger(__name__)


def plan_run(
    ctx: RunContext,
    *,
    recovery: Strategy,
    checkpoint_format: CheckpointFormat,
    auto_format: CheckpointFormat | None = None,
) -> RunState:
    """Plan the run: the tasks to execute, in order, and every task's starting status.

    ``checkpoint_format``: the format of the checkpoints tasks declare; ``auto_format``: of
    those ``checkpoint="auto"`` writes (default: the same). Rolls back (invalidates)
    committed tasks that observed nondeterministic outputs never made durable, and logs the
    plan as a ``plan`` event.
    """
    store, dag, log = ctx.store, ctx.dag, ctx.log
    done = store.done_tasks()

    def cost_model(fmt: CheckpointFormat) -> Throughput:
        # measured once per root and format (kept a week): the write path this run uses
        if recovery == "cost":
            return measure_throughput(ctx.spark, store.fs, fmt=fmt)
        return load_throughput(store.fs, fmt)

    throughput = cost_model(checkpoint_format)
    # checkpoint="auto" prices its writes with the model of the format it writes
    auto_format = auto_format or checkpoint_format
    auto = auto_format != checkpoint_format and any(dag.checkpoint_of(n) == "auto" for n in dag)
    auto_throughput = cost_model(auto_format) if auto else throughput
    rplan = plan(dag.to_record(), log, done=done, strategy=recovery, throughput=throughput)
    if rplan.rolled_back:
        logger.warning(
            "[%s] rolling back %s: they observed nondeterministic outputs that "
            "were never made durable",
            ctx.wf,
            rplan.rolled_back,
        )
        store.invalidate(rplan.rolled_back, log, ctx.run)
    needed = rplan.run_order + rplan.replay_committed
    needed_set = set(needed)
    state = RunState(
        needed=needed,
        consumers={
            t: sum(1 for d in dag.downstream(dag.node(t)) if dag.id_of(d) in needed_set)
            for t in needed
        },
        replay_committed=frozenset(rplan.replay_committed),
        recovery_plan=rplan,
        throughput=throughput,
        auto_throughput=auto_throughput,
        statuses={
            t: TaskStatus.COMMITTED if t in log.commits else TaskStatus.PENDING
            for t in dag.task_ids
        },
    )
    store.event(
        ctx.run,
        EventKind.PLAN,
        strategy=rplan.strategy,
        decisions=rplan.to_records(),
        run_tasks=rplan.run_order,
        restore=rplan.actions("restore"),
        skip=rplan.actions("skip"),
        rolled_back=rplan.rolled_back,
    )
    logger.info(
        "[%s] run %d: %d task(s) to run, %d to restore, %d to replay, %d skipped, %d rolled back",
        ctx.wf,
        ctx.run,
        len(rplan.run_order),
        len(rplan.actions("restore")),
        len(rplan.replay_committed),
        len(rplan.actions("skip")),
        len(rplan.rolled_back),
    )
    return state


class Scheduler:
    """Drives one run's plan to its end (see the module docstring)."""

    def __init__(
        self,
        ctx: RunContext,
        state: RunState,
        runner: TaskRunner,
        committer: Committer,
        *,
        max_parallel: int,
    ) -> None:
        self.ctx, self.state, self.runner, self.committer = ctx, state, runner, committer
        #: tasks running at once
        self.max_parallel = max_parallel
        dag = ctx.dag
        #: needed task -> its position in the plan (ready tasks start in plan order)
        self._order = {t: i for i, t in enumerate(state.needed)}
        #: task -> needed tasks that read it or wait on it (re-checked when it changes)
        self._watchers: dict[str, list[str]] = {}
        for t in state.needed:
            node = dag.node(t)
            for u in dag.upstream(node):
                self._watchers.setdefault(dag.id_of(u), []).append(t)
            for w in dag.waits(node):
                self._watchers.setdefault(w, []).append(t)

    def execute(self) -> Any:
        """Run every needed task; wait for async checkpoints; return the output's value.

        Raises:
            BaseException: the first error that stopped the run (a task's, a checkpoint's,
                or :class:`DagError` for tasks that can never start).
        """
        state = self.state
        with state.cond:
            state.pending = set(state.needed)
        pool = ThreadPoolExecutor(self.max_parallel, thread_name_prefix="exoflow-task")
        try:
            self._loop(pool)
            self._wait_async()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            self.committer.close()
        if state.failure is not None:
            raise state.failure
        return self.runner.ref(self.ctx.dag.id_of(self.ctx.dag.output)).get()

    def _loop(self, pool: ThreadPoolExecutor) -> None:
        state = self.state
        full_scan = True
        while True:
            with state.cond:
                ready, watch = self._collect(full_scan)
                scanned, full_scan = full_scan, False
                if not ready and not watch:
                    if not state.running and (state.failure is not None or not state.pending):
                        return
                    full_scan = self._idle(scanned)
                    continue
                ready.sort(key=self._order.__getitem__)
                state.running.update(ready)
                state.pending.difference_update(ready)
                state.in_flight += len(ready)
            for t, fut in watch:  # outside the lock: a done future calls back at once
                fut.add_done_callback(self._on_done(t))
            for t in ready:
                state.set_status(t, TaskStatus.RUNNING)
                pool.submit(self.runner.run, t).add_done_callback(self._on_done(t))

    def _collect(self, full_scan: bool) -> tuple[list[str], list[tuple[str, Future[None]]]]:
        """(Under the lock.) The tasks ready to start, and the async checkpoints of tasks that
        just finished, which the loop will be told about when they end."""
        state = self.state
        if state.failure is not None:
            ready = []
        elif full_scan:
            ready = [t for t in state.pending if self._ready(t)]
        else:
            candidates = {
                c for t in state.changed for c in self._watchers.get(t, ()) if c in state.pending
            }
            ready = [t for t in candidates if self._ready(t)]
        watch: list[tuple[str, Future[None]]] = []
        for t in state.changed:
            fut = state.async_writes.get(t)
            if fut is not None and t not in state.watched:
                state.watched.add(t)
                state.in_flight += 1
                watch.append((t, fut))
        state.changed.clear()
        return ready, watch

    def _idle(self, scanned: bool) -> bool:
        """(Under the lock.) Nothing to start: declare the pending tasks stuck if nothing can
        change any more, else wait for a change. Whether the next look is a full scan."""
        state = self.state
        if not state.running and not state.in_flight and not state.writes_running():
            if not scanned and state.failure is None:
                return True  # look at everything once before giving up
            state.failure = DagError(
                f"workflow [{self.ctx.wf}]: tasks {sorted(state.pending)} can never start "
                "(a wait_until_committed target did not commit)"
            )
            return False
        # nothing said for a second: re-check everything
        return not state.cond.wait(timeout=1.0)

    def _on_done(self, tid: str) -> Callable[[Future[Any]], None]:
        def note(_: Future[Any]) -> None:
            self.state.note_changed(tid)

        return note

    def _ready(self, tid: str) -> bool:
        """(Under the lock.) Whether every input of ``tid`` has a ref it may read (not held
        back, see :meth:`~.ref.Ref.held_back`) and every task it waits on committed.

        Refs and commits only appear during a run, never vanish (a held-back ref only becomes
        readable), so the input check resumes
        at the first input that was missing last time: a task reading 10,000 inputs costs
        O(inputs) over the whole run, not per check.
        """
        dag, state, commits = self.ctx.dag, self.state, self.ctx.log.commits
        node = dag.node(tid)
        upstream = dag.upstream(node)
        i = state.ready_from.get(tid, 0)
        while i < len(upstream):
            uid = dag.id_of(upstream[i])
            restorable = uid in commits and uid not in state.replay_committed
            ref = state.refs.get(uid)
            # an output held back (nondeterministic data whose async checkpoint has not
            # committed) is read only from its checkpoint: see Ref.held_back
            if not restorable and (ref is None or ref.held_back()):
                state.ready_from[tid] = i
                return False
            i += 1
        state.ready_from[tid] = i
        for w in dag.waits(node):
            ref = state.refs.get(w)
            if w not in commits and not (ref is not None and ref.committed.is_set()):
                return False
        return True

    def _wait_async(self) -> None:
        """Wait for every async checkpoint write; a failed one stops the run."""
        for tid, fut in self.state.async_write_list():
            try:
                fut.result()
            except BaseException as exc:
                if isinstance(exc, ExoflowError):
                    self.state.fail(exc)
                else:
                    err = CheckpointError(
                        f"workflow [{self.ctx.wf}] task [{tid}]: async checkpoint failed: "
                        f"{error_line(exc)}"
                    )
                    err.__cause__ = exc
                    self.state.fail(err)
