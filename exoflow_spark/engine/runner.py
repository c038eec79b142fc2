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
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ..core.context import TaskContext, task_context
from ..core.dag import code_fingerprint
from ..core.faults import crash_point
from ..core.options import TaskOptions
from ..core.records import CommitRecord, EventKind
from ..core.status import TaskStatus
from ..core.task import Node, map_nested
from ..core.values import MAX_VALUE_BYTES, is_dataframe
from ..errors import DagError, ExoflowError, TaskFailedError
from ..spark.session import (
    cache_replicas,
    cached_size_bytes,
    costly_cache_level,
    is_system_error,
    job_context,
    job_metrics,
    plan_operators,
)
from ..storage.checkpoints import DeltaSnapshot, write_path_warm
from .autockpt import (
    AutoDecision,
    PlanStats,
    ProfileStore,
    RunTail,
    TaskProfile,
    decide_before,
    decide_measured,
    earliest_tail,
    min_replay_s,
    new_profile,
    profile_key,
    walk_up,
    write_cost,
    write_mode,
)
from .committer import Committer, TaskOutput
from .cost import measure_throughput
from .ref import Ref
from .restore import restore_or_replay
from .state import RunContext, RunState

logger = logging.getLogger(__name__)

#: a task function shorter than this ran no eager work worth pricing for ``"auto"``
EAGER_MIN_S = 0.1

#: the longest wait between two attempts, in seconds
MAX_BACKOFF = 30.0


@dataclass
class FnRun:
    """One run of a task's function: when it started (epoch seconds, to select the Spark
    jobs it ran) and how long it took (``stop``); ``FnRun()``: nothing known."""

    started_at: float | None = None
    seconds: float = 0.0
    _t0: float = field(default=0.0, repr=False)

    @classmethod
    def starting(cls) -> FnRun:
        return cls(started_at=time.time(), _t0=time.perf_counter())

    def stop(self) -> float:
        """Record the run's end; its seconds."""
        self.seconds = time.perf_counter() - self._t0
        return self.seconds


class TaskRunner:
    """Runs tasks of one run, one call of :meth:`run` per task."""

    def __init__(
        self, ctx: RunContext, state: RunState, committer: Committer, *, retry_backoff: float
    ) -> None:
        self.ctx, self.state, self.committer = ctx, state, committer
        #: the storage root's task cost profiles (checkpoint="auto")
        self.profiles = ProfileStore(ctx.store.fs)
        #: the least recompute at risk that checkpoint="auto" insures with a write (read when
        #: a task first needs it: a run with no "auto" task ignores the variable)
        self._min_replay_s: float | None = None
        self._cache_replicas: int | None = None
        #: held while the root's cost model of auto's format is measured (once per run)
        self._calibrating = threading.Lock()
        self._calibrated = False
        #: seconds before the first retry; doubles each time (capped at MAX_BACKOFF)
        self.retry_backoff = retry_backoff

    @property
    def cache_replicas(self) -> int:
        """Copies of a costly output in Spark's cache (``$EXOFLOW_CACHE_REPLICAS``)."""
        if self._cache_replicas is None:
            self._cache_replicas = cache_replicas()
        return self._cache_replicas

    @property
    def min_replay_s(self) -> float:
        """The floor of recompute worth a write (``$EXOFLOW_AUTO_MIN_REPLAY_S``, checked
        before an "auto" run starts)."""
        if self._min_replay_s is None:
            self._min_replay_s = min_replay_s()
        return self._min_replay_s

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
        node = ctx.dag.node(tid)
        return TaskContext(
            ctx.wf,
            tid,
            ctx.spark,
            generation,
            attempt,
            ctx.store,
            ctx.run,
            is_sink=is_sink,
            fingerprint=ctx.dag.fingerprint(node),
            deterministic=node.task.opts.deterministic,
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
            tctx.deterministic = tctx.deterministic and not observed
            fn_run = FnRun.starting()
            try:
                with self.in_task(tctx, tid):
                    result = node.task.fn(*args, **kwargs)
                    if replay:  # a committed output re-derived from its inputs: no new commit
                        self._keep_replayed(tid, result)
                        return
                    result = node.task.finish(result, tctx)
                    compute_seconds = fn_run.stop()
                    crash_point(tid, "after-output")
                    ref, record = self._materialize(node, tid, result, fn_run)
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
    def _materialize(
        self,
        node: Node,
        tid: str,
        result: Any,
        fn_run: FnRun | None = None,
    ) -> tuple[Ref, CommitRecord | None]:
        """Turn a task's return value into a ref, writing a sync checkpoint if asked.

        ``fn_run``: when the task's function started and how long it ran (its eager
        actions), for ``"auto"``.
        Returns the ref and the commit record to write now (None: not committed now).
        """
        if result is None:
            return Ref(tid, "none"), CommitRecord.none()
        if isinstance(result, DeltaSnapshot):  # durable already (a streaming task's table)
            return self.committer.durable_snapshot(tid, result)
        if not is_dataframe(result):
            value = self._small_value(tid, result)
            return Ref(tid, "value", value=value), CommitRecord.of_value(value)
        mode = self.ctx.dag.mode_of(node)
        if node is self.ctx.dag.output and mode in (False, "auto"):
            mode = True  # the workflow's output is always durable: get_output and re-runs
        if mode == "auto":
            return self._auto(node, tid, result, fn_run or FnRun())
        if mode is False:
            return self._lazy(tid, result), None
        if mode is True:
            return self.committer.write_sync(tid, result)
        # async: the output goes into Spark's cache and its write runs in the background
        # (the committer's writer pool) while the consumers read the cache. See _async.
        return self._async(node, tid, result), None

    def _async(self, node: Node, tid: str, result: Any) -> Ref:
        """The ref of an async output: cached, its checkpoint written in the background.

        Where its own plan is narrow JVM operators only (cheap per partition), no job of its
        own computes it: the background write's job computes it into the cache while the
        consumers start at once (Spark computes each cached block once, whichever job asks
        first), so no job is added to the critical path. Where its plan runs Python code or
        shuffles (or cannot be read: Spark Connect), it is computed into the cache first, as
        ``checkpoint="auto"`` does, and then written. Racing the consumers for such blocks
        cost more than the job it saves: in ``benchmarks/recovery.py`` ("selective": four
        chained Python UDF stages async, 2 cores) the run took 1.3-1.5x as long as with the
        output computed first, though each UDF still ran once per row (counted): the racing
        jobs' tasks hold slots while they wait for blocks another job is computing.
        """
        stats = self._own_plan_stats(node, result)
        if stats is not None and stats.opaque == 0 and stats.shuffles == 0:
            ref = Ref(tid, "cache", df=self.state.keep_persisted(result.persist()))
        else:
            ref, _ = self._cache(tid, result)
        ref.write_async = True
        return ref

    def _lazy(self, tid: str, result: Any) -> Ref:
        """A replayable output: a lazy plan that fuses into its consumers (cached when two or
        more read it, so it is computed once)."""
        if self.state.consumers.get(tid, 0) >= 2:
            return Ref(tid, "cache", df=self.state.keep_persisted(result.persist()))
        return Ref(tid, "plan", df=result)

    def _cache(self, tid: str, result: Any) -> tuple[Ref, Any]:
        """Compute the output into executor memory now (timed): its ref and the DataFrame.

        Only outputs costly to recompute come here (Python code or shuffles in their plan, or
        judged worth measuring): on a cluster of two or more executors they are cached in two
        copies (see :func:`~exoflow_spark.spark.session.costly_cache_level`)."""
        level = costly_cache_level(self.ctx.spark, self.cache_replicas)
        df = self.state.keep_persisted(result.persist() if level is None else result.persist(level))
        start = time.perf_counter()
        with job_context(self.ctx.spark, self.ctx.wf, f"materialize {tid}"):
            rows = df.count()
        ref = Ref(tid, "cache", df=df)
        ref.materialize_seconds = time.perf_counter() - start
        ref.materialized = True
        return ref, rows

    # -- checkpoint="auto" (see .autockpt) -----------------------------------------------------
    def _auto(
        self,
        node: Node,
        tid: str,
        result: Any,
        fn_run: FnRun,
    ) -> tuple[Ref, CommitRecord | None]:
        """Decide whether the output is worth writing, from its profile, else a measurement
        now (Python code the plan cannot price), else the plan's statistics; only outputs
        worth writing (or measured) are computed (into the cache, or by a sync write: see
        :func:`~.autockpt.write_mode`), the rest keep fusing. Returns the ref and the
        commit record to write now (a sync write's), else None.

        ``fn_run`` (the function's own run) counts in the estimate and in the
        measurement (the profile's compute) when the function ran Spark jobs itself (eager
        actions such as a training loop, which its output's plan does not show and a replay
        redoes); a function that only built a plan is priced by the plan."""
        ctx, state = self.ctx, self.state
        upstream = self._upstream_replay(node)
        must = self._must_write(node, tid)
        code_fp = code_fingerprint(node.task.fn)
        key = profile_key(tid, code_fp)
        profile = None if must else self.profiles.load(key)
        tail = earliest_tail(*(state.tails.get(u) for u in self._input_ids(tid)))
        state.tails[tid] = earliest_tail(RunTail.of(profile, after_write=True), tail)
        stats = self._own_plan_stats(node, result) if profile is None and not must else None
        # a profile or a rule decides without it (Spark's status store is read when needed)
        eager = profile is None and not must
        eager_s = self._eager_seconds(tid, fn_run) if eager else 0.0
        decision = decide_before(
            tid,
            profile=profile,
            stats=stats,
            upstream_replay_s=upstream,
            throughput=state.auto_throughput,
            must_write=must,
            eager_s=eager_s,
            min_replay_s=self.min_replay_s,
            tail=tail,
        )
        if decision.action == "fuse":
            state.own_cost[tid] = max((decision.replay_s or 0.0) - upstream, 0.0)
            if decision.bytes is not None:
                state.work_bytes[tid] = decision.bytes
            self._log_auto(decision)
            return self._lazy(tid, result), None
        if not eager:  # measured now: the profile keeps the eager work
            eager_s = self._eager_seconds(tid, fn_run)
        if decision.action == "measure" or (decision.action == "write" and profile is not None):
            # how a write decided before computing the output is made; one measuring it
            # (no profile) is written, or cached and decided from the measurement
            mode, why = self._write_mode()
            decision = replace(decision, reason=f"{decision.reason}; {why}")
            if mode == "sync":
                return self._auto_sync(node, tid, result, decision, eager_s, profile, code_fp, tail)
        measured_from = time.time()
        ref, rows = self._cache(tid, result)
        seconds = ref.materialize_seconds + eager_s
        size = cached_size_bytes(ref.get())
        metrics = job_metrics(ctx.spark, ctx.wf, f"materialize {tid}", since=measured_from)
        executor_s = None if metrics is None else metrics["executor_s"]
        own_s = self._own_share(node, tid, seconds)
        state.own_cost[tid] = own_s
        state.work_bytes[tid] = size
        if decision.action == "measure":  # why it was measured, how, and what that says
            worth = self._decide_measured(node, tid, seconds, own_s, size, executor_s, tail)
            decision = replace(worth, reason=f"{decision.reason}; {worth.reason}")
        measured = new_profile(
            key=key,
            task=tid,
            code_fingerprint=code_fp,
            own_s=own_s,
            executor_s=executor_s,
            rows=int(rows),
            size=size,
            workflow_id=ctx.wf,
        )
        if profile is not None:  # its run's tail until this run, if whole, measures its own
            measured = replace(measured, tail_s=profile.tail_s, run_s=profile.run_s)
        state.auto_profiles[tid] = measured
        state.auto_ready_at[tid] = time.monotonic()
        self.profiles.save(measured)
        ref.write_async = decision.checkpoint
        self._log_auto(decision)
        return ref, None

    def _write_mode(self) -> tuple[Literal["sync", "async"], str]:
        """How ``"auto"`` writes an output decided before it is computed
        (:func:`~.autockpt.write_mode`), from the root's cost model of the format it writes.
        A root that has none yet, or one measured over a week ago, is measured first, as a
        ``recovery="cost"`` run measures it (once per root and format and week: a one-row
        and a 64 MB checkpoint written and read back): without it every such output would
        be written async, whatever the storage, in any run that names no recovery strategy.
        A measurement that fails is logged and the run goes on with the model it had (the
        assumed one writes async)."""
        state = self.state
        with self._calibrating:
            if not state.auto_throughput.fresh and not self._calibrated:
                self._calibrated = True
                fmt = self.committer.auto_format
                try:
                    state.auto_throughput = measure_throughput(
                        self.ctx.spark, self.ctx.store.fs, fmt=fmt
                    )
                except Exception as exc:
                    logger.warning(
                        "[%s] measuring the storage root's %s checkpoint cost failed (%s): "
                        "checkpoint='auto' goes on with the %s cost model",
                        self.ctx.wf,
                        fmt,
                        exc,
                        "stale (over a week old)" if state.auto_throughput.measured else "assumed",
                    )
        return write_mode(state.auto_throughput)

    def _auto_sync(
        self,
        node: Node,
        tid: str,
        result: Any,
        decision: AutoDecision,
        eager_s: float,
        profile: TaskProfile | None,
        code_fp: str,
        tail: RunTail | None,
    ) -> tuple[Ref, CommitRecord]:
        """Write an output by the job that computes it (see :func:`~.autockpt.write_mode`)
        and measure it from that job: its wall time less what the root's cost model gives
        the write is its compute, plus ``eager_s``, the function's own Spark jobs (see
        :meth:`_auto`).

        ``decision``: from its profile (worth writing), or ``"measure"`` (no profile, Python
        code its plan cannot price): a first run writes it to measure it, the write costing
        about what computing it into the cache and writing it from there would; whether it
        was worth writing is decided from the measurement and logged, and the next run
        decides from the profile (``tail``: as in :func:`~.autockpt.decide_measured`).

        A JVM's first checkpoint write also loads and compiles the write path (seconds). A
        measurement with no profile is preceded by a throwaway write that warms it up
        (:meth:`~.committer.Committer.warm_up`); one with a profile is not (its decision is
        made): measured cold, its compute is an upper bound, and the profile keeps its own
        unless the measurement is lower."""
        ctx, state = self.ctx, self.state
        cold = profile is not None and not write_path_warm(ctx.spark)
        if profile is not None:
            self._log_auto(decision)
        else:
            self.committer.warm_up()
        measured_from = time.time()
        start = time.perf_counter()
        ref, record = self.committer.write_sync(tid, result)
        seconds = time.perf_counter() - start
        ckpt = record.checkpoint
        # a profile's size is what the run it was measured in priced the write by; measured
        # now, the checkpoint's own size (the root's cost model is calibrated in file bytes)
        size = profile.bytes if profile is not None else ckpt.bytes if ckpt is not None else 0
        write = write_cost(state.auto_throughput, size)
        compute = max(seconds - write, 0.0) + eager_s
        own_s = self._own_share(node, tid, compute)
        metrics = job_metrics(ctx.spark, ctx.wf, f"checkpoint {tid}", since=measured_from)
        executor_s = None if metrics is None else metrics["executor_s"]
        if cold and profile is not None:  # the profile's costs, unless lower now
            logger.debug(
                "[%s] %s measured %.2fs by the process's first checkpoint write (the write "
                "path cold): its profile keeps %.2fs unless higher",
                ctx.wf,
                tid,
                own_s,
                profile.compute_s,
            )
            own_s = min(own_s, profile.compute_s)
            if executor_s is not None and profile.executor_s is not None:
                executor_s = min(executor_s, profile.executor_s)
        state.own_cost[tid] = own_s
        state.work_bytes[tid] = size
        if profile is None:
            worth = self._decide_measured(node, tid, compute, own_s, size, executor_s, tail)
            self._log_auto(
                replace(
                    worth,
                    action="write",
                    reason=f"{decision.reason}; {worth.reason}"
                    + ("" if worth.checkpoint else ": the next run fuses it"),
                )
            )
        rows = ckpt.rows if ckpt is not None and ckpt.rows else None
        if rows is None and profile is not None:  # the checkpoint did not count them
            rows = profile.rows
        measured = new_profile(
            key=profile_key(tid, code_fp),
            task=tid,
            code_fingerprint=code_fp,
            own_s=own_s,
            executor_s=executor_s,
            rows=rows,
            size=size,
            workflow_id=ctx.wf,
        )
        # its write time is the cost model's (the commit record's is the whole job's, its
        # compute included); a profile's run's tail until this run, if whole, measures its own
        measured = replace(measured, write_s=write)
        if profile is not None:
            measured = replace(measured, tail_s=profile.tail_s, run_s=profile.run_s)
        state.auto_profiles[tid] = measured
        state.auto_ready_at[tid] = time.monotonic() - write
        self.profiles.save(measured)
        return ref, record

    def _decide_measured(
        self,
        node: Node,
        tid: str,
        seconds: float,
        own_s: float,
        size: int,
        executor_s: float | None,
        tail: RunTail | None,
    ) -> AutoDecision:
        """Whether an output measured now (``seconds``: it and its fused inputs; ``own_s``:
        its own share) was worth writing. Computing it redid its fused inputs: a crash
        would redo them as well, and its cached ones (a crash loses caches)."""
        return decide_measured(
            tid,
            measured_s=seconds,
            size=size,
            throughput=self.state.auto_throughput,
            executor_s=executor_s,
            replay_s=own_s + self._upstream_replay(node),
            min_replay_s=self.min_replay_s,
            tail=tail,
        )

    def _own_share(self, node: Node, tid: str, seconds: float) -> float:
        """The seconds of a measurement of ``tid`` that are its own: ``seconds`` computed it
        and its fused inputs (lazy plans, not durable), whose estimated or measured recompute
        is taken out. A cached input was read, not computed: nothing of it is in ``seconds``.

        Fused inputs priced above the whole measurement were mispriced by a plan estimate
        (Catalyst sizes a join at the product of its inputs' sizes: 480 GB, "2880 s", for
        benchmarks/recovery.py's 600k x 5,000 join, which left the Python stage over it a
        profile of 0 s): the measurement bounds them, so their recompute is capped there and
        nothing is taken out (their real share is unknown; the task's profile then overstates
        it, which errs towards writing it)."""
        state = self.state
        fused = self._lost_ancestors(node, plans_only=True)
        inputs_s = sum(state.own_cost.get(uid, 0.0) for uid in fused)
        if inputs_s <= seconds:
            return seconds - inputs_s
        for uid in fused:
            if state.own_cost.get(uid, 0.0) > seconds:
                logger.debug(
                    "[%s] [%s] input %s's recompute estimate %.2fs exceeds the measured %.2fs "
                    "of both: capped",
                    self.ctx.wf,
                    tid,
                    uid,
                    state.own_cost[uid],
                    seconds,
                )
                state.own_cost[uid] = seconds
        return seconds

    def _eager_seconds(self, tid: str, fn_run: FnRun) -> float:
        """How long the task's function ran if it ran Spark jobs of its own (Spark's status
        store has jobs labelled with the task), else 0 (building a plan is not priced)."""
        if fn_run.seconds < EAGER_MIN_S:
            return 0.0
        # this attempt's jobs only: a driver that ran this workflow id before still lists
        # those runs' jobs under the same label
        since = None if fn_run.started_at is None else fn_run.started_at - 0.01
        metrics = job_metrics(self.ctx.spark, self.ctx.wf, tid, since=since)
        return fn_run.seconds if metrics is not None and metrics["jobs"] > 0 else 0.0

    def _upstream_replay(self, node: Node) -> float:
        """Seconds to recompute the inputs of ``node`` that are not durable and not being
        written (an input whose checkpoint write is under way is priced as durable: writing
        its consumer too would not shorten a recovery that replays from that checkpoint)."""
        return sum(self.state.own_cost.get(uid, 0.0) for uid in self._lost_ancestors(node))

    def _lost_ancestors(self, node: Node, *, plans_only: bool = False) -> list[str]:
        """Every task whose output a crash would make ``node``'s inputs recompute, each once
        (inputs in a diamond share ancestors): its inputs that are not durable (not
        committed, not being written), theirs, and so on up to durable outputs.
        ``plans_only``: only through lazy plans (what computing ``node`` now recomputes; a
        cache is read)."""
        commits, refs = self.ctx.log.commits, self.state.refs

        def lost(uid: str) -> tuple[bool, bool]:
            ref = refs.get(uid)
            durable = uid in commits or (
                ref is not None and (ref.committed.is_set() or ref.write_async)
            )
            take = not durable and (not plans_only or (ref is not None and ref.backing == "plan"))
            return take, take

        return walk_up(self.ctx.dag.id_of(node), self._input_ids, lost)

    def _cached_below(self, node: Node) -> list[str]:
        """The cached outputs ``node``'s plan reads: its cached inputs, and those of its
        inputs read as lazy plans (their plans are part of ``node``'s)."""
        refs = self.state.refs

        def cached(uid: str) -> tuple[bool, bool]:
            ref = refs.get(uid)
            if ref is None or not ref.is_dataframe:
                return False, False
            return ref.backing == "cache", ref.backing == "plan"

        return walk_up(self.ctx.dag.id_of(node), self._input_ids, cached)

    def _input_ids(self, tid: str) -> list[str]:
        dag = self.ctx.dag
        return [dag.id_of(u) for u in dag.upstream(dag.node(tid))]

    def _must_write(self, node: Node, tid: str) -> str | None:
        """Why ``tid``'s output is written whatever it costs, or None."""
        if not node.task.opts.deterministic:
            return "nondeterministic: its output is always written (a replay could differ)"
        if any(tid in self.ctx.dag.waits(n) for n in self.ctx.dag):
            return "a task waits until it is committed (wait_until_committed)"
        return None

    def _own_plan_stats(self, node: Node, result: Any) -> PlanStats | None:
        """The statistics of ``result``'s plan, its inputs' operators taken out. Only an
        input read lazily (a ``plan`` ref) shows its operators in ``result``'s plan; a cached
        or checkpointed one shows as one relation there, so nothing of it is taken out (its
        own DataFrame may still print its whole plan: Spark keeps the plan it optimized
        before ``persist()``).

        Plans are read unoptimized (:func:`plan_operators`), each fused input's as its own
        decision read it. Only when both this plan and a fused input run Python code are
        both read optimized: the count of Python operators must then subtract."""
        mine = plan_operators(result)
        if mine is None:
            return None
        lazy: list[tuple[str, Ref]] = []
        for u in self.ctx.dag.upstream(node):
            uid = self.ctx.dag.id_of(u)
            ref = self.state.refs.get(uid)
            if ref is not None and ref.is_dataframe and ref.backing == "plan":
                lazy.append((uid, ref))
        theirs = [self.state.plan_reads.get(uid) or plan_operators(ref.get()) for uid, ref in lazy]
        if mine.python and any(t is not None and t.python for t in theirs):
            mine = plan_operators(result, optimize=True) or mine
            theirs = [plan_operators(ref.get(), optimize=True) for _, ref in lazy]
        self.state.plan_reads[self.ctx.dag.id_of(node)] = mine
        opaque, wide = mine.opaque, mine.wide
        for t in theirs:
            if t is not None:
                opaque, wide = opaque - t.opaque, wide - t.wide
        inputs = mine.input_bytes
        if inputs is not None:  # the plan's cached relations: their outputs' known sizes
            inputs += sum(self.state.work_bytes.get(uid, 0) for uid in self._cached_below(node))
        return PlanStats(max(opaque, 0), max(wide, 0), mine.size_bytes, inputs)

    def _log_auto(self, decision: AutoDecision) -> None:
        ctx = self.ctx
        ctx.store.event(
            ctx.run, EventKind.AUTO_CHECKPOINT, task=decision.task, **decision.to_event()
        )
        logger.info(
            "[%s] [%s] checkpoint='auto': %s (%s: %s)",
            ctx.wf,
            decision.task,
            {"write": "writing it", "fuse": "fused into its consumers"}.get(
                decision.action, "kept in memory, not worth writing"
            ),
            decision.source,
            decision.reason,
        )

    def _small_value(self, tid: str, result: Any) -> Any:
        """``result`` as a JSON value small enough to log inline (a copy)."""
        try:
            blob = json.dumps(result)
        except (TypeError, ValueError) as exc:
            kind = type(result)
            module = (getattr(kind, "__module__", "") or "").split(".")[0]
            what = f"{module}.{kind.__name__}" if module and module != "builtins" else kind.__name__
            if module == "pandas" and kind.__name__ in ("DataFrame", "Series"):
                hint = (
                    "a pandas object is not a Spark DataFrame: return "
                    "xf.get_spark().createDataFrame(pdf) (or spark.createDataFrame(pdf)) for "
                    "data, or a small JSON value such as pdf.to_dict('records')"
                )
            else:
                hint = "return a Spark DataFrame for data, or a small JSON value"
            raise DagError(
                f"workflow [{self.ctx.wf}] task [{tid}] returned a {what}, which is neither a "
                "Spark DataFrame nor a JSON-able value (None, bool, number, str, list, dict): "
                f"{hint}"
            ) from exc
        if len(blob) > MAX_VALUE_BYTES:
            raise DagError(
                f"workflow [{self.ctx.wf}] task [{tid}] returned a {len(blob)}-byte value; "
                f"values are logged inline and limited to {MAX_VALUE_BYTES} bytes: return "
                "a DataFrame instead"
            )
        return json.loads(blob)
