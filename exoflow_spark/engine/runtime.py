"""The runtime: runs the needed part of a DAG, as fast as Spark allows, and commits outputs.

Scheduling: a task is ready when its inputs have refs and every task it waits on has
committed; ready tasks run on a thread pool (Spark runs jobs from several threads at once).
Async checkpoints run on a separate writer pool. Planning: a backward walk from the output
(and from every ``wait_until_committed`` target) that stops at committed tasks; committed
tasks are restored from their Delta versions (lazily), never executed again.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from ..core.context import TaskContext, task_context
from ..core.dag import Dag
from ..core.faults import crash_point
from ..core.records import CommitRecord, EventKind
from ..core.status import TaskStatus, WorkflowStatus
from ..core.task import Node, map_nested
from ..core.values import MAX_VALUE_BYTES, is_dataframe
from ..errors import CheckpointError, DagError, ExoflowError, TaskFailedError
from ..spark.session import (
    CHECKPOINT_POOL,
    cached_size_bytes,
    forget_delta_state,
    is_system_error,
    job_context,
)
from ..storage.checkpoints import (
    CheckpointFormat,
    DeltaSnapshot,
    as_delta_version,
    read_checkpoint,
    snapshot_dataframe,
    write_checkpoint,
)
from ..storage.store import WorkflowState, WorkflowStore
from .cost import load_throughput, measure_throughput
from .planner import RecoveryPlan, Strategy, plan, report_missing
from .ref import Ref
from .restore import restore_or_replay

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    """Knobs of one run.

    Attributes:
        max_parallel: tasks running at once (independent branches run concurrently).
        checkpoint_writers: async checkpoint writes running at once.
        retry_backoff: seconds before the first retry; doubles each time (capped at 30 s).
        recovery: ``"restore"`` reads every committed input from its checkpoint;
            ``"cost"`` may re-derive a committed deterministic output from its inputs when
            that is estimated cheaper (see :mod:`exoflow_spark.recovery`).
        checkpoint_format: how this run writes checkpoints, ``"delta"`` or ``"parquet"``
            (see :func:`exoflow_spark.run`); restores read each as it was written.
    """

    max_parallel: int = 4
    checkpoint_writers: int = 2
    retry_backoff: float = 0.5
    recovery: Strategy = "restore"
    checkpoint_format: CheckpointFormat = "delta"


class WorkflowRun:
    """One driver's run of a workflow id (create, then :meth:`execute`)."""

    def __init__(
        self,
        dag: Dag,
        store: WorkflowStore,
        spark: Any,
        state: WorkflowState,
        run: int,
        options: RunOptions,
    ) -> None:
        self.dag, self.store, self.spark, self.state, self.run = dag, store, spark, state, run
        self.options = options
        self.wf = store.workflow_id
        self.refs: dict[str, Ref] = {}
        self.statuses: dict[str, TaskStatus] = {}
        self._cond = threading.Condition()
        self._failure: BaseException | None = None
        self._async: dict[str, Future[None]] = {}
        self._persisted: list[Any] = []
        self._running: set[str] = set()
        self.needed: list[str] = self._plan()
        needed = set(self.needed)
        self._consumers = {
            t: sum(1 for d in dag.downstream(dag.node(t)) if dag.id_of(d) in needed)
            for t in self.needed
        }

    # -- planning ------------------------------------------------------------------------
    def _plan(self) -> list[str]:
        done = self.store.done_tasks()
        fmt = self.options.checkpoint_format  # costs of the write path this run uses
        throughput = (
            measure_throughput(self.spark, self.store.fs, fmt=fmt)  # once per root and format
            if self.options.recovery == "cost"
            else load_throughput(self.store.fs, fmt)
        )
        self.throughput = throughput
        self._replay_cost: dict[str, float] = {}  # est. seconds to recompute a lost output
        rplan: RecoveryPlan = plan(
            self.dag.to_record(),
            self.state,
            done=done,
            strategy=self.options.recovery,
            throughput=throughput,
        )
        self.recovery_plan = rplan
        report_missing(rplan, self.state, logger)
        if rplan.rolled_back:
            logger.warning(
                "[%s] rolling back %s: they observed nondeterministic outputs that "
                "were never made durable",
                self.wf,
                rplan.rolled_back,
            )
            self.store.invalidate(rplan.rolled_back, self.state, self.run)
        self._replay_committed = set(rplan.replay_committed)
        for tid in self.dag.task_ids:
            self.statuses[tid] = (
                TaskStatus.COMMITTED if tid in self.state.commits else TaskStatus.PENDING
            )
        self.store.event(
            self.run,
            EventKind.PLAN,
            strategy=rplan.strategy,
            decisions=rplan.to_records(),
            run_tasks=rplan.run_order,
            restore=rplan.actions("restore"),
            skip=rplan.actions("skip"),
            rolled_back=rplan.rolled_back,
        )
        logger.info(
            "[%s] run %d: %d task(s) to run, %d to restore, %d to replay, %d skipped, "
            "%d rolled back",
            self.wf,
            self.run,
            len(rplan.run_order),
            len(rplan.actions("restore")),
            len(rplan.replay_committed),
            len(rplan.actions("skip")),
            len(rplan.rolled_back),
        )
        return rplan.run_order + rplan.replay_committed

    def _ref(self, tid: str) -> Ref:
        ref = self.refs.get(tid)
        if ref is None:  # committed in an earlier run: restore lazily from its record
            # (checked to be all there; a damaged deterministic checkpoint is replayed)
            ref = restore_or_replay(self, tid)
            self.refs[tid] = ref
        return ref

    # -- scheduling ----------------------------------------------------------------------
    def execute(self) -> Any:
        """Run every needed task; wait for async checkpoints; return the output's value.

        Scheduling is event-driven: when a task finishes, or its async checkpoint commits,
        only the tasks that read it or wait on it are re-checked, so a run costs O(edges)
        scheduling work rather than a scan of every pending task per wake-up. A full scan
        runs at the start, after a quiet second, and before declaring tasks stuck.
        """
        order = {t: i for i, t in enumerate(self.needed)}
        pending = set(self.needed)
        self._ready_from: dict[str, int] = {}  # see _ready
        watchers: dict[str, list[str]] = {}  # task -> pending tasks that read or wait on it
        for t in self.needed:
            node = self.dag.node(t)
            for u in self.dag.upstream(node):
                watchers.setdefault(self.dag.id_of(u), []).append(t)
            for w in self.dag.waits(node):
                watchers.setdefault(w, []).append(t)
        changed: list[str] = []  # tasks that finished or committed since the last look
        watched: set[str] = set()  # tasks whose async checkpoint we are told about
        in_flight = 0  # submitted tasks and watched checkpoints not yet in ``changed``

        def on_done(tid: str) -> Callable[[Future[Any]], None]:
            def note(_: Future[Any]) -> None:
                nonlocal in_flight
                with self._cond:
                    changed.append(tid)
                    in_flight -= 1
                    self._cond.notify_all()

            return note

        pool = ThreadPoolExecutor(self.options.max_parallel, thread_name_prefix="exoflow-task")
        self._writers = ThreadPoolExecutor(
            self.options.checkpoint_writers, thread_name_prefix="exoflow-ckpt"
        )
        try:
            full_scan = True
            while True:
                watch: list[tuple[str, Future[None]]] = []
                with self._cond:
                    if self._failure is not None:
                        ready = []
                    elif full_scan:
                        ready = [t for t in pending if self._ready(t)]
                    else:
                        candidates = {
                            c for t in changed for c in watchers.get(t, ()) if c in pending
                        }
                        ready = [t for t in candidates if self._ready(t)]
                    for t in changed:
                        fut = self._async.get(t)
                        if fut is not None and t not in watched:
                            watched.add(t)
                            in_flight += 1
                            watch.append((t, fut))
                    changed.clear()
                    scanned, full_scan = full_scan, False
                    if not ready and not watch:
                        if not self._running and (self._failure is not None or not pending):
                            break
                        if not self._running and not in_flight and not self._writes_in_flight():
                            if not scanned and self._failure is None:
                                full_scan = True  # look at everything once before giving up
                                continue
                            self._failure = DagError(
                                f"workflow [{self.wf}]: tasks {sorted(pending)} can never start "
                                "(a wait_until_committed target did not commit)"
                            )
                            continue
                        if not self._cond.wait(timeout=1.0):
                            full_scan = True  # nothing said for a second: re-check everything
                        continue
                    ready.sort(key=order.__getitem__)
                    self._running.update(ready)
                    pending.difference_update(ready)
                    in_flight += len(ready)
                for t, fut in watch:  # outside the lock: a done future calls back at once
                    fut.add_done_callback(on_done(t))
                for t in ready:
                    self.statuses[t] = TaskStatus.RUNNING
                    pool.submit(self._run_task, t).add_done_callback(on_done(t))
            self._wait_async()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            self._writers.shutdown(wait=True, cancel_futures=True)
        if self._failure is not None:
            raise self._failure
        return self._output_value()

    def _ready(self, tid: str) -> bool:
        """Whether every input of ``tid`` has a ref and every task it waits on committed.

        Refs and commits only appear during a run, never vanish, so the input check resumes
        at the first input that was missing last time: a task reading 10,000 inputs costs
        O(inputs) over the whole run, not per check.
        """
        node = self.dag.node(tid)
        upstream = self.dag.upstream(node)
        i = self._ready_from.get(tid, 0)
        while i < len(upstream):
            uid = self.dag.id_of(upstream[i])
            restorable = uid in self.state.commits and uid not in self._replay_committed
            if not restorable and uid not in self.refs:
                self._ready_from[tid] = i
                return False
            i += 1
        self._ready_from[tid] = i
        for w in self.dag.waits(node):
            ref = self.refs.get(w)
            if w not in self.state.commits and not (ref is not None and ref.committed.is_set()):
                return False
        return True

    def _writes_in_flight(self) -> bool:
        return any(not f.done() for f in self._async.values())

    def _fail(self, exc: BaseException) -> None:
        with self._cond:
            if self._failure is None:
                self._failure = exc
            self._cond.notify_all()

    def _wait_async(self) -> None:
        for tid, fut in list(self._async.items()):
            try:
                fut.result()
            except BaseException as exc:
                self._fail(
                    exc
                    if isinstance(exc, ExoflowError)
                    else CheckpointError(
                        f"workflow [{self.wf}] task [{tid}]: async checkpoint failed: {exc}"
                    )
                )

    def cancel_spark_jobs(self) -> None:
        """Cancel this workflow's running Spark jobs (used on interrupt)."""
        try:
            self.spark.sparkContext.cancelJobGroup(f"exoflow:{self.wf}")
        except Exception:
            try:
                self.spark.interruptTag(f"exoflow:{self.wf}")
            except Exception:
                logger.debug("[%s] could not cancel Spark jobs", self.wf, exc_info=True)

    # -- one task ------------------------------------------------------------------------
    def _run_task(self, tid: str) -> None:
        try:
            self._run_task_inner(tid)
        except BaseException as exc:
            self.statuses[tid] = TaskStatus.FAILED
            self._fail(exc)
        finally:
            with self._cond:
                self._running.discard(tid)
                self._cond.notify_all()

    def _resolve_input(self, node: Node) -> Any:
        uid = self.dag.id_of(node)
        ref = self._ref(uid)
        if node.task.opts.catch_exceptions:
            return (None, ref.error) if ref.error is not None else (ref.get(), None)
        return ref.get()

    def _run_task_inner(self, tid: str) -> None:
        node = self.dag.node(tid)
        opts = node.task.opts
        generation = self.state.generation(tid)

        def resolve(value: Any) -> Any:
            return self._resolve_input(value) if isinstance(value, Node) else value

        replay = tid in self._replay_committed
        attempt = 0
        while True:
            attempt += 1
            if not replay:
                crash_point(tid, "before-run")
            # wall clock, for timelines (exoflow-spark show): includes restoring the inputs
            started_at = time.time()
            args = map_nested(node.args, resolve)
            kwargs = map_nested(node.kwargs, resolve)
            observed = frozenset().union(
                *(self._ref(self.dag.id_of(u)).visible_volatile() for u in self.dag.upstream(node))
            )
            ctx = TaskContext(
                self.wf,
                tid,
                self.spark,
                generation,
                attempt,
                self.store,
                self.run,
                is_sink=self.dag.is_sink(node),
            )
            start = time.perf_counter()
            try:
                with task_context(ctx), job_context(self.spark, self.wf, tid):
                    result = node.task.fn(*args, **kwargs)
                    if not replay:
                        result = node.task.finish(result, ctx)
                    compute_seconds = time.perf_counter() - start
                    if replay:  # a committed output re-derived from its inputs: no new commit
                        ref = Ref(tid, "plan", df=result)
                        ref.committed.set()
                        with self._cond:
                            self.refs[tid] = ref
                        logger.info(
                            "[%s] [%s] replayed from its inputs (committed; cheaper than restore)",
                            self.wf,
                            tid,
                        )
                        return
                    crash_point(tid, "after-output")
                    ref, record = self._materialize(node, tid, result)
                break
            except ExoflowError:
                raise
            except Exception as exc:
                system = is_system_error(exc)
                retry = (system or opts.retry_exceptions) and attempt <= opts.max_retries
                logger.warning(
                    "[%s] [%s] attempt %d failed (%s error%s): %s",
                    self.wf,
                    tid,
                    attempt,
                    "system" if system else "task",
                    ", retrying" if retry else "",
                    exc,
                )
                self.store.event(
                    self.run,
                    EventKind.TASK_ERROR,
                    task=tid,
                    attempt=attempt,
                    system=system,
                    error=f"{type(exc).__name__}: {exc}"[:2000],
                )
                if retry:
                    time.sleep(min(self.options.retry_backoff * 2 ** (attempt - 1), 30.0))
                    continue
                if opts.catch_exceptions:
                    self.refs[tid] = Ref(tid, "error", error=exc)
                    self.statuses[tid] = TaskStatus.FAILED
                    return
                raise TaskFailedError(self.wf, tid, attempt, exc) from exc
        ref.volatile = observed | ({tid} if not node.task.opts.deterministic else frozenset())
        self._commit(
            node,
            tid,
            generation,
            ref,
            record,
            compute_seconds,
            attempt,
            observed,
            ctx.sink_seq > 0,
            started_at=started_at,
        )

    def _materialize(self, node: Node, tid: str, result: Any) -> tuple[Ref, CommitRecord | None]:
        """Turn a task's return value into a ref, writing a sync checkpoint if asked.

        Returns the ref and the commit record to write now (None: not committed now).
        """
        mode = node.task.opts.checkpoint
        if result is None:
            return Ref(tid, "none"), CommitRecord.none()
        if isinstance(result, DeltaSnapshot):  # durable already (a streaming task's table)
            df = snapshot_dataframe(self.spark, result)
            dv = as_delta_version(result)
            return Ref(tid, "delta", df=df, delta=dv), CommitRecord.of_checkpoint(dv, "stream")
        if not is_dataframe(result):
            try:
                blob = json.dumps(result)
            except (TypeError, ValueError) as exc:
                raise DagError(
                    f"workflow [{self.wf}] task [{tid}] returned a {type(result).__name__}, "
                    "which is neither a DataFrame nor a JSON-able value (None, bool, number, "
                    "str, list, dict): return a DataFrame for data, or a small JSON value"
                ) from exc
            if len(blob) > MAX_VALUE_BYTES:
                raise DagError(
                    f"workflow [{self.wf}] task [{tid}] returned a {len(blob)}-byte value; "
                    f"values are logged inline and limited to {MAX_VALUE_BYTES} bytes: return "
                    "a DataFrame instead"
                )
            value = json.loads(blob)
            return Ref(tid, "value", value=value), CommitRecord.of_value(value)
        if node is self.dag.output and mode is False:
            mode = True  # the workflow's output is always durable: get_output and re-runs
        if node is self.dag.output and mode == "auto":
            mode = "async"
        if mode is False:
            df = result
            if self._consumers.get(tid, 0) >= 2:
                df = df.persist()
                self._persisted.append(df)
                return Ref(tid, "cache", df=df), None
            return Ref(tid, "plan", df=df), None
        if mode is True:
            with job_context(self.spark, self.wf, f"checkpoint {tid}"):
                dv = write_checkpoint(
                    result, self.store.ref_uri(tid), self.options.checkpoint_format
                )
            crash_point(tid, "during-checkpoint")
            ref = Ref(tid, "delta", df=read_checkpoint(self.spark, dv), delta=dv)
            return ref, CommitRecord.of_checkpoint(dv, "sync")
        # async / auto: the output is computed into executor memory now, before consumers
        # and the background writer read it (both then read the cached blocks: computed once,
        # and the checkpoint commits as soon as its stage is done, not when the DAG ends)
        df = result.persist()
        self._persisted.append(df)
        start = time.perf_counter()
        with job_context(self.spark, self.wf, f"materialize {tid}"):
            df.count()
        ref = Ref(tid, "cache", df=df)
        ref.materialize_seconds = time.perf_counter() - start
        replay = self._note_replay_cost(node, tid, ref.materialize_seconds)
        ref.write_async = mode == "async" or self._worth_checkpointing(node, tid, df, replay)
        return ref, None

    def _note_replay_cost(self, node: Node, tid: str, own_seconds: float) -> float:
        """Estimated seconds to recompute ``tid`` after a crash: its own measured compute
        plus that of every input that is not durable (a crash loses caches too)."""
        replay = own_seconds + sum(
            self._replay_cost.get(u, 0.0)
            for u in (self.dag.id_of(n) for n in self.dag.upstream(node))
            if u not in self.state.commits and not self._ref(u).committed.is_set()
        )
        self._replay_cost[tid] = replay
        return replay

    def _worth_checkpointing(self, node: Node, tid: str, df: Any, replay: float) -> bool:
        """``checkpoint="auto"``: write the output (async) when recomputing it after a crash
        would cost more than writing it.

        Recomputing costs this task's measured materialization plus the recomputation of
        every input that is not durable (a crash loses caches too); writing costs the
        storage's fixed cost plus the output's in-memory size over the measured write
        throughput. Nondeterministic outputs and wait targets are always written.
        """
        size = cached_size_bytes(df)
        tp = self.throughput
        write = tp.write_fixed_s + size / tp.write_bps
        waited_on = any(tid in self.dag.waits(n) for n in self.dag)
        decide = replay >= write or not node.task.opts.deterministic or waited_on
        self.store.event(
            self.run,
            EventKind.AUTO_CHECKPOINT,
            task=tid,
            checkpoint=decide,
            replay_s=round(replay, 4),
            write_s=round(write, 4),
            bytes=size,
        )
        logger.info(
            "[%s] [%s] checkpoint='auto': %s (replay ~%.2fs, write ~%.2fs for %d bytes)",
            self.wf,
            tid,
            "writing it (async)" if decide else "not worth writing",
            replay,
            write,
            size,
        )
        return decide

    def _commit(
        self,
        node: Node,
        tid: str,
        generation: int,
        ref: Ref,
        record: CommitRecord | None,
        compute_seconds: float,
        attempt: int,
        observed: frozenset[str],
        wrote_sink: bool,
        started_at: float | None = None,
    ) -> None:
        fingerprint = self.dag.fingerprint(node)
        common: dict[str, Any] = {
            "fingerprint": fingerprint,
            "compute_seconds": compute_seconds + ref.materialize_seconds,
            "run": self.run,
            "attempts": attempt,
            "sink": wrote_sink,
            "observed_volatile": tuple(sorted(observed)),
            # wall-clock span of the attempt that produced the output (timelines)
            "started_at": started_at,
            "output_at": time.time(),
        }
        if record is not None:
            record = replace(record, **common)
            self.state.commits[tid] = self.store.commit_task(tid, generation, record)
            self.statuses[tid] = TaskStatus.COMMITTED
            with self._cond:
                self.refs[tid] = ref
            crash_point(tid, "after-commit")
        elif ref.write_async and ref.is_dataframe:
            self.statuses[tid] = TaskStatus.CHECKPOINTING
            with self._cond:
                self.refs[tid] = ref
                self._async[tid] = self._writers.submit(
                    self._write_async, node, tid, generation, ref, common
                )
        else:
            self.statuses[tid] = TaskStatus.DONE
            with self._cond:
                self.refs[tid] = ref
            self.store.event(self.run, EventKind.TASK_DONE, task=tid, backing=ref.backing, **common)
        logger.info(
            "[%s] [%s] %s in %.2fs (%s)",
            self.wf,
            tid,
            self.statuses[tid].value.lower(),
            compute_seconds,
            ref.backing,
        )

    def _write_async(
        self, node: Node, tid: str, generation: int, ref: Ref, common: dict[str, Any]
    ) -> None:
        try:
            with job_context(self.spark, self.wf, f"checkpoint {tid} (async)", CHECKPOINT_POOL):
                dv = write_checkpoint(
                    ref.get(), self.store.ref_uri(tid), self.options.checkpoint_format
                )
            crash_point(tid, "during-checkpoint")
            record = replace(CommitRecord.of_checkpoint(dv, "async"), **common)
            self.state.commits[tid] = self.store.commit_task(tid, generation, record)
            ref.repoint(read_checkpoint(self.spark, dv), dv)
            self.statuses[tid] = TaskStatus.COMMITTED
            logger.info(
                "[%s] [%s] async checkpoint committed (%s, %d bytes, %.2fs)",
                self.wf,
                tid,
                record.label(),
                dv.num_bytes,
                dv.write_seconds,
            )
            crash_point(tid, "after-commit")
        except BaseException as exc:
            self.statuses[tid] = TaskStatus.FAILED
            self.store.event(self.run, EventKind.CHECKPOINT_FAILED, task=tid, error=str(exc)[:2000])
            err = CheckpointError(
                f"workflow [{self.wf}] task [{tid}]: async checkpoint failed, so the task is "
                f"not durable: {exc}. Re-run the same workflow id to retry it"
            )
            self._fail(err)
            raise err from exc
        finally:
            with self._cond:
                self._cond.notify_all()

    def _output_value(self) -> Any:
        ref = self._ref(self.dag.id_of(self.dag.output))
        return ref.get()

    def release(self) -> None:
        """Drop the executor caches this run created (outputs stay readable from Delta), and
        the table state Delta cached for this workflow's checkpoint tables: a long-lived
        driver running workflow after workflow would otherwise keep one cached state per
        table it ever read."""
        for df in self._persisted:
            try:
                df.unpersist(blocking=False)
            except Exception:  # pragma: no cover - session already stopped
                logger.debug("[%s] unpersist failed", self.wf, exc_info=True)
        self._persisted.clear()
        paths = {
            rec.checkpoint.path
            for rec in self.state.commits.values()
            if rec.checkpoint is not None
            and rec.checkpoint.path
            and rec.checkpoint.format == "delta"
        }
        forget_delta_state(self.spark, sorted(paths))


def finish_status(exc: BaseException | None) -> WorkflowStatus:
    """The workflow status a run ends with, given what stopped it."""
    if exc is None:
        return WorkflowStatus.SUCCESSFUL
    if isinstance(exc, KeyboardInterrupt):
        return WorkflowStatus.CANCELED
    return WorkflowStatus.FAILED
