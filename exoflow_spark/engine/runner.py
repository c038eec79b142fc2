"""One task's execution: its attempts, from resolved inputs to an output ref.

The scheduler (:mod:`.scheduler`) calls :meth:`TaskRunner.run` on a pool thread for each
ready task. An attempt resolves the task's inputs (restoring committed ones lazily, see
:mod:`.restore`), calls the function and then ``Task.finish`` (streaming tasks drain there)
under the task's context and Spark job group, and turns the result into a :class:`Ref`
(a value, a lazy plan, a cached DataFrame or a sync checkpoint). A failed attempt is retried
with exponential backoff if it was a system error (executor or driver trouble, see
:func:`~exoflow_spark.spark.session.is_system_error`) or the task allows retrying its own
errors; an :class:`~exoflow_spark.errors.ExoflowError` is never retried. The successful
attempt is handed to the committer (:mod:`.committer`) as a
:class:`~.committer.TaskOutput`.

A committed task the recovery plan chose to replay (cheaper than restoring it) runs its
function again on its inputs and commits nothing. :mod:`.restore` re-derives a task whose
checkpoint is damaged through the same public methods: :meth:`TaskRunner.ref`,
:meth:`TaskRunner.inputs`, :meth:`TaskRunner.context` and :meth:`TaskRunner.in_task`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..core.context import TaskContext, task_context
from ..core.faults import crash_point
from ..core.options import TaskOptions
from ..core.records import CommitRecord, EventKind
from ..core.status import TaskStatus
from ..core.task import Node, map_nested
from ..core.values import MAX_VALUE_BYTES, is_dataframe
from ..errors import DagError, ExoflowError, TaskFailedError
from ..spark.session import is_system_error, job_context
from ..storage.checkpoints import DeltaSnapshot
from .committer import Committer, TaskOutput
from .ref import Ref
from .restore import restore_or_replay
from .state import RunContext, RunState

logger = logging.getLogger(__name__)

#: the longest wait between two attempts, in seconds
MAX_BACKOFF = 30.0


class TaskRunner:
    """Runs tasks of one run, one call of :meth:`run` per task."""

    def __init__(
        self, ctx: RunContext, state: RunState, committer: Committer, *, retry_backoff: float
    ) -> None:
        self.ctx, self.state, self.committer = ctx, state, committer
        #: seconds before the first retry; doubles each time (capped at MAX_BACKOFF)
        self.retry_backoff = retry_backoff

    # -- inputs --------------------------------------------------------------------------------
    def ref(self, tid: str) -> Ref:
        """The ref of ``tid``: this run's, or restored from its commit record (lazily, checked
        to be all there; a damaged deterministic checkpoint is replayed)."""
        ref = self.state.ref(tid)
        if ref is None:  # committed in an earlier run
            ref = self.state.add_ref(tid, restore_or_replay(self, tid))
        return ref

    def resolve_input(self, node: Node) -> Any:
        """What a task receives for input ``node``: its value (a DataFrame or a small value),
        or ``(value, error)`` when ``node``'s task catches exceptions."""
        ref = self.ref(self.ctx.dag.id_of(node))
        if node.task.opts.catch_exceptions:
            return (None, ref.error) if ref.error is not None else (ref.get(), None)
        return ref.get()

    def inputs(self, node: Node) -> tuple[Any, Any]:
        """``node``'s positional and keyword arguments, every input node resolved."""

        def resolve(value: Any) -> Any:
            return self.resolve_input(value) if isinstance(value, Node) else value

        return map_nested(node.args, resolve), map_nested(node.kwargs, resolve)

    def context(self, tid: str, attempt: int, *, is_sink: bool) -> TaskContext:
        """The :class:`TaskContext` of an attempt of ``tid``."""
        ctx = self.ctx
        generation = ctx.log.generation(tid)
        return TaskContext(
            ctx.wf, tid, ctx.spark, generation, attempt, ctx.store, ctx.run, is_sink=is_sink
        )

    @contextmanager
    def in_task(self, tctx: TaskContext, job: str) -> Iterator[None]:
        """Run the block as the task of ``tctx``, its Spark jobs tagged ``job``."""
        with task_context(tctx), job_context(self.ctx.spark, self.ctx.wf, job):
            yield

    # -- attempts ------------------------------------------------------------------------------
    def run(self, tid: str) -> None:
        """Run ``tid`` to its end (the scheduler's pool calls this): a failure that is not
        caught stops the run."""
        try:
            self._attempts(tid)
        except BaseException as exc:
            self.state.set_status(tid, TaskStatus.FAILED)
            self.state.fail(exc)
        finally:
            self.state.task_ended(tid)

    def _attempts(self, tid: str) -> None:
        """Attempt ``tid`` until one succeeds or no retry is left; hand its output over."""
        node = self.ctx.dag.node(tid)
        generation = self.ctx.log.generation(tid)
        replay = tid in self.state.replay_committed
        attempt = 0
        while True:
            attempt += 1
            if not replay:
                crash_point(tid, "before-run")
            # wall clock, for timelines (exoflow-spark show): includes restoring the inputs
            started_at = time.time()
            args, kwargs = self.inputs(node)
            observed = self._observed(node)
            tctx = self.context(tid, attempt, is_sink=self.ctx.dag.is_sink(node))
            start = time.perf_counter()
            try:
                with self.in_task(tctx, tid):
                    result = node.task.fn(*args, **kwargs)
                    if replay:  # a committed output re-derived from its inputs: no new commit
                        self._keep_replayed(tid, result)
                        return
                    result = node.task.finish(result, tctx)
                    compute_seconds = time.perf_counter() - start
                    crash_point(tid, "after-output")
                    ref, record = self._materialize(node, tid, result)
                break
            except ExoflowError:
                raise
            except Exception as exc:
                if self._retrying(tid, node.task.opts, attempt, exc):
                    continue
                if node.task.opts.catch_exceptions:
                    self.state.set_ref(tid, Ref(tid, "error", error=exc))
                    self.state.set_status(tid, TaskStatus.FAILED)
                    return
                raise TaskFailedError(self.ctx.wf, tid, attempt, exc) from exc
        ref.volatile = observed | ({tid} if not node.task.opts.deterministic else frozenset())
        self.committer.commit(
            TaskOutput(
                node,
                tid,
                generation,
                ref,
                record,
                compute_seconds,
                attempt,
                observed,
                wrote_sink=tctx.sink_seq > 0,
                started_at=started_at,
            )
        )

    def _observed(self, node: Node) -> frozenset[str]:
        """Nondeterministic tasks whose non-durable output ``node``'s inputs carry now."""
        dag = self.ctx.dag
        return frozenset().union(
            *(self.ref(dag.id_of(u)).visible_volatile() for u in dag.upstream(node))
        )

    def _retrying(self, tid: str, opts: TaskOptions, attempt: int, exc: Exception) -> bool:
        """Log and record a failed attempt; if it gets another one, wait the backoff first."""
        system = is_system_error(exc)
        retry = (system or opts.retry_exceptions) and attempt <= opts.max_retries
        logger.warning(
            "[%s] [%s] attempt %d failed (%s error%s): %s",
            self.ctx.wf,
            tid,
            attempt,
            "system" if system else "task",
            ", retrying" if retry else "",
            exc,
        )
        self.ctx.store.event(
            self.ctx.run,
            EventKind.TASK_ERROR,
            task=tid,
            attempt=attempt,
            system=system,
            error=f"{type(exc).__name__}: {exc}"[:2000],
        )
        if retry:
            time.sleep(min(self.retry_backoff * 2 ** (attempt - 1), MAX_BACKOFF))
        return retry

    def _keep_replayed(self, tid: str, result: Any) -> None:
        ref = Ref(tid, "plan", df=result)
        ref.committed.set()
        self.state.set_ref(tid, ref)
        logger.info(
            "[%s] [%s] replayed from its inputs (committed; cheaper than restore)", self.ctx.wf, tid
        )

    # -- the output ----------------------------------------------------------------------------
    def _materialize(self, node: Node, tid: str, result: Any) -> tuple[Ref, CommitRecord | None]:
        """Turn a task's return value into a ref, writing a sync checkpoint if asked.

        Returns the ref and the commit record to write now (None: not committed now).
        """
        if result is None:
            return Ref(tid, "none"), CommitRecord.none()
        if isinstance(result, DeltaSnapshot):  # durable already (a streaming task's table)
            return self.committer.durable_snapshot(tid, result)
        if not is_dataframe(result):
            value = self._small_value(tid, result)
            return Ref(tid, "value", value=value), CommitRecord.of_value(value)
        mode = node.task.opts.checkpoint
        if node is self.ctx.dag.output and mode is False:
            mode = True  # the workflow's output is always durable: get_output and re-runs
        if node is self.ctx.dag.output and mode == "auto":
            mode = "async"
        if mode is False:
            if self.state.consumers.get(tid, 0) >= 2:
                return Ref(tid, "cache", df=self.state.keep_persisted(result.persist())), None
            return Ref(tid, "plan", df=result), None
        if mode is True:
            return self.committer.write_sync(tid, result)
        df = self.state.keep_persisted(result.persist())
        if mode == "async":
            # no materialization job of its own: the background write's job computes the
            # output into the cache while the consumers start at once. Spark's block manager
            # computes each cached partition once, whichever job asks first (the other waits
            # for the block), so the output is still computed once; a job (a full Spark job's
            # overhead, per stage) leaves the critical path, and the write starts now instead
            # of after a count. The write's seconds include the compute, as a sync write's do.
            ref = Ref(tid, "cache", df=df)
            ref.write_async = True
            return ref, None
        # auto: the output is computed into executor memory now, before consumers and the
        # background writer read it (both then read the cached blocks: computed once, and
        # the checkpoint commits as soon as its stage is done, not when the DAG ends); the
        # measured time prices the decision
        start = time.perf_counter()
        with job_context(self.ctx.spark, self.ctx.wf, f"materialize {tid}"):
            df.count()
        ref = Ref(tid, "cache", df=df)
        ref.materialize_seconds = time.perf_counter() - start
        replay = self.committer.note_replay_cost(node, tid, ref.materialize_seconds)
        ref.write_async = self.committer.worth_checkpointing(node, tid, df, replay)
        return ref, None

    def _small_value(self, tid: str, result: Any) -> Any:
        """``result`` as a JSON value small enough to log inline (a copy)."""
        try:
            blob = json.dumps(result)
        except (TypeError, ValueError) as exc:
            raise DagError(
                f"workflow [{self.ctx.wf}] task [{tid}] returned a {type(result).__name__}, "
                "which is neither a DataFrame nor a JSON-able value (None, bool, number, "
                "str, list, dict): return a DataFrame for data, or a small JSON value"
            ) from exc
        if len(blob) > MAX_VALUE_BYTES:
            raise DagError(
                f"workflow [{self.ctx.wf}] task [{tid}] returned a {len(blob)}-byte value; "
                f"values are logged inline and limited to {MAX_VALUE_BYTES} bytes: return "
                "a DataFrame instead"
            )
        return json.loads(blob)
