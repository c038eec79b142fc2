"""Making task outputs durable: checkpoint writes, commit records, cache release.

The committer owns everything between "a task produced an output" and "the output is in
the log": the sync checkpoint write (on the task's thread), the async write (on the
committer's writer pool, as Spark jobs in the FAIR pool ``CHECKPOINT_POOL`` so they do not
starve the tasks' jobs), the commit record appended to the log, and dropping the run's caches and
Delta's cached table state at the end.

The task runner (:mod:`.runner`) hands a finished attempt over as one :class:`TaskOutput`.
A commit record (:class:`~exoflow_spark.core.records.CommitRecord`) gets its run's fields
only in :func:`commit_fields` and :func:`commit_record`, at the end of this module.
"""

from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from ..core.faults import crash_point, hold_point
from ..core.fmt import error_line
from ..core.records import CommitRecord, EventKind
from ..core.status import TaskStatus
from ..core.task import Node
from ..errors import CheckpointError
from ..spark.hadoop import delete_tree
from ..spark.session import (
    CHECKPOINT_POOL,
    forget_delta_state,
    job_context,
    pool_task_sets,
    wait_for_task_set,
)
from ..storage import layout
from ..storage.checkpoints import (
    CheckpointFormat,
    DeltaSnapshot,
    as_delta_version,
    discard_table,
    read_checkpoint,
    snapshot_dataframe,
    write_checkpoint,
    write_path_warm,
)
from .ref import Ref
from .state import RunContext, RunState

logger = logging.getLogger(__name__)

#: the longest a cached output's consumers wait for its async write's tasks to be queued
#: (see :meth:`Committer._write_first`); a write usually queues them 0.1 s after it starts
WRITE_FIRST_WAIT_S = 1.0


@dataclass(frozen=True)
class TaskOutput:
    """What one successful attempt of a task produced, for :meth:`Committer.commit`.

    Attributes:
        node: the task's node.
        tid: its task id.
        generation: its generation (a new one after an invalidation).
        ref: the output (its ``write_async`` says whether an async checkpoint follows).
        record: the commit record of an output durable now (a value, none, a sync or
            streaming checkpoint); None when it is not (an async write follows, or never).
        compute_seconds: seconds the function (and ``Task.finish``) took.
        attempts: the attempt that produced it (1 = first try).
        observed: nondeterministic tasks whose non-durable output the inputs carried.
        wrote_sink: the attempt wrote to an exactly-once sink.
        started_at: wall-clock start of the attempt, inputs' restore included (timelines).
    """

    node: Node
    tid: str
    generation: int
    ref: Ref
    record: CommitRecord | None
    compute_seconds: float
    attempts: int
    observed: frozenset[str]
    wrote_sink: bool
    started_at: float | None = None


class Committer:
    """Writes checkpoints and commit records for one run."""

    def __init__(
        self,
        ctx: RunContext,
        state: RunState,
        *,
        checkpoint_format: CheckpointFormat,
        checkpoint_writers: int,
        auto_format: CheckpointFormat | None = None,
    ) -> None:
        self.ctx, self.state = ctx, state
        #: the format of the checkpoints tasks declare, and of those ``checkpoint="auto"``
        #: writes (see :func:`~exoflow_spark.storage.checkpoints.run_formats`)
        self.checkpoint_format = checkpoint_format
        self.auto_format = auto_format or checkpoint_format
        #: the async checkpoint writes (threads start on the first write)
        self.writers = ThreadPoolExecutor(checkpoint_writers, thread_name_prefix="exoflow-ckpt")
        self.writer_threads = checkpoint_writers

    def close(self) -> None:
        """Wait for the writes under way; drop the queued ones (the run is over)."""
        self.writers.shutdown(wait=True, cancel_futures=True)

    # -- checkpoint writes ----------------------------------------------------------------
    def format_of(self, tid: str) -> CheckpointFormat:
        """The format ``tid``'s checkpoints are written in: the auto format for a task under
        ``checkpoint="auto"`` (the engine decides its writes), else the declared one."""
        ctx = self.ctx
        return (
            self.auto_format
            if ctx.dag.checkpoint_of(ctx.dag.node(tid)) == "auto"
            else self.checkpoint_format
        )

    def write_sync(self, tid: str, result: Any) -> tuple[Ref, CommitRecord]:
        """Checkpoint ``result`` now (``checkpoint=True``, or ``"auto"`` deciding to): its
        ref and commit record."""
        spark, wf = self.ctx.spark, self.ctx.wf
        with job_context(spark, wf, f"checkpoint {tid}"):
            dv = write_checkpoint(result, self._table(tid), self.format_of(tid))
        crash_point(tid, "during-checkpoint")
        ref = Ref(tid, "delta", df=read_checkpoint(spark, dv), delta=dv)
        return ref, CommitRecord.of_checkpoint(dv, "sync")

    def warm_up(self) -> None:
        """Write a throwaway checkpoint, one row per task slot, unless this process has
        written one in this Spark application (:func:`write_path_warm`): before a write that
        measures a task with no profile (``checkpoint="auto"``, in its format). A JVM's first
        Delta write loads and compiles Delta's and Parquet's write path, on the driver and in
        the tasks: 5.7 s against 2.1 s warm for the same 1.6 s of Python UDF (local mode,
        2026-12-05), which the measurement would count as the task's compute. The run's
        first checkpoint pays that warm-up anyway: this one adds its own small write once
        per driver (0.7 s in ``benchmarks/recovery.py``, local disk, as Delta), which a run
        deciding from profiles does not pay (see ``TaskRunner._auto_sync``)."""
        spark = self.ctx.spark
        if write_path_warm(spark):
            return
        try:
            slots = max(1, min(int(spark.sparkContext.defaultParallelism), 64))
        except Exception:  # Spark Connect
            slots = 1
        path = self.ctx.store.fs.uri(layout.calibration_dir(uuid.uuid4().hex))
        start = time.perf_counter()
        try:
            with job_context(spark, self.ctx.wf, "warm up the checkpoint write path"):
                write_checkpoint(spark.range(0, slots, 1, slots), path, self.auto_format)
        finally:
            delete_tree(spark, path)
        logger.debug(
            "[%s] checkpoint writes warmed up in %.2fs", self.ctx.wf, time.perf_counter() - start
        )

    def _table(self, tid: str) -> str:
        """The checkpoint table to write ``tid``'s output to. In a resumed run, a task never
        committed (and never invalidated) has no record naming its table: whatever is there
        is a write an earlier run did not commit, deleted first (see
        :func:`~exoflow_spark.storage.checkpoints.discard_table`)."""
        path = self.ctx.store.ref_uri(tid)
        log = self.ctx.log
        if self.ctx.run > 1 and log.generation(tid) == 0 and tid not in log.commits:
            discard_table(self.ctx.spark, path)
            forget_delta_state(self.ctx.spark, [path])
        return path

    def durable_snapshot(self, tid: str, snap: DeltaSnapshot) -> tuple[Ref, CommitRecord]:
        """A streaming task's table version, durable already: its ref and commit record."""
        df = snapshot_dataframe(self.ctx.spark, snap)
        dv = as_delta_version(snap)
        return Ref(tid, "delta", df=df, delta=dv), CommitRecord.of_checkpoint(dv, "stream")

    def _write_async(self, out: TaskOutput, fields: dict[str, Any]) -> None:
        tid, ref = out.tid, out.ref
        try:
            crash_point(tid, "before-async-write")
            hold_point(tid, "before-async-write")
            with job_context(
                self.ctx.spark, self.ctx.wf, f"checkpoint {tid} (async)", CHECKPOINT_POOL
            ):
                dv = write_checkpoint(ref.get(), self._table(tid), self.format_of(tid))
            crash_point(tid, "during-checkpoint")
            record = CommitRecord.of_checkpoint(dv, "async")
            stamped = self.ctx.store.commit_task(tid, out.generation, commit_record(record, fields))
            # the ref reads the checkpoint before the run sees the commit: a task waiting on
            # this one (wait_until_committed) becomes ready on the commit, and must then read
            # the committed version, not the cached lineage
            ref.repoint(read_checkpoint(self.ctx.spark, dv), dv)
            self._publish(tid, stamped)
            self.state.set_status(tid, TaskStatus.COMMITTED)
            logger.info(
                "[%s] [%s] async checkpoint committed (%s, %d bytes, %.2fs)",
                self.ctx.wf,
                tid,
                record.label(),
                dv.num_bytes,
                dv.write_seconds,
            )
            crash_point(tid, "after-commit")
        except BaseException as exc:
            self.state.set_status(tid, TaskStatus.FAILED)
            self.ctx.store.event(
                self.ctx.run, EventKind.CHECKPOINT_FAILED, task=tid, error=str(exc)[:2000]
            )
            err = CheckpointError(
                f"workflow [{self.ctx.wf}] task [{tid}]: async checkpoint failed, so the task "
                f"is not durable: {error_line(exc)}. Re-run the same workflow id to retry it"
            )
            self.state.fail(err)
            raise err from exc
        finally:
            self.state.wake()

    # -- the commit --------------------------------------------------------------------------
    def commit(self, out: TaskOutput) -> None:
        """Make ``out`` visible to the tasks that read it, and durable as its mode says: commit
        its record now, start its async checkpoint write, or just record it as done."""
        tid, ref, ctx = out.tid, out.ref, self.ctx
        fields = commit_fields(out, ctx.dag.fingerprint(out.node), ctx.run)
        if out.record is not None:
            self._append(tid, out.generation, commit_record(out.record, fields))
            self.state.set_status(tid, TaskStatus.COMMITTED)
            self.state.set_ref(tid, ref)
            crash_point(tid, "after-commit")
        elif ref.write_async and ref.is_dataframe:
            self.state.set_status(tid, TaskStatus.CHECKPOINTING)
            before = self._write_first(ref)
            write = self.writers.submit(self._write_async, out, fields)
            if before is not None:
                wait_for_task_set(
                    ctx.spark,
                    CHECKPOINT_POOL,
                    before,
                    done=write.done,
                    timeout=WRITE_FIRST_WAIT_S,
                )
            self.state.add_async_write(tid, ref, write)  # the ref and its write appear together
        else:
            self.state.set_status(tid, TaskStatus.DONE)
            self.state.set_ref(tid, ref)
            ctx.store.event(ctx.run, EventKind.TASK_DONE, task=tid, backing=ref.backing, **fields)
        logger.info(
            "[%s] [%s] %s in %.2fs (%s)",
            ctx.wf,
            tid,
            self.state.statuses[tid].value.lower(),
            out.compute_seconds,
            ref.backing,
        )

    def _write_first(self, ref: Ref) -> frozenset[str] | None:
        """Whether the async write of ``ref`` goes first: the task sets in the checkpoint
        pool now (the write's own is the next one), or None to publish the ref at once.

        An output computed into the cache already is written from finished blocks: its
        write's tasks are short, and the consumers' job started before them would hold every
        task slot for a whole wave of its tasks (a Python UDF stage's run for seconds) before
        the write got one. Published once the write's tasks are queued (at most
        :data:`WRITE_FIRST_WAIT_S` later), the consumers start on the slots the write leaves,
        and the checkpoint commits in about the time of a sync write after the stage instead
        of a wave or more later: the same work, in the order that makes it durable early. An
        output not computed yet (an async output of narrow JVM operators) is computed by
        whichever job asks first, its write's or a consumer's: published at once."""
        if not ref.materialized or self.state.writes_running() >= self.writer_threads:
            return None  # every writer busy: this write waits for one, the consumers need not
        return pool_task_sets(self.ctx.spark, CHECKPOINT_POOL)

    def _append(self, tid: str, generation: int, record: CommitRecord) -> None:
        """Append the commit record to the log, then to the run's view of it."""
        self._publish(tid, self.ctx.store.commit_task(tid, generation, record))

    def _publish(self, tid: str, record: CommitRecord) -> None:
        """Add a durable commit record to the run's view of the log (tasks waiting on ``tid``
        may start from now on)."""
        with self.state.cond:
            self.ctx.log.commits[tid] = record

    # -- the end of the run ----------------------------------------------------------------------
    def release(self) -> None:
        """Drop the executor caches this run created (outputs stay readable from Delta), and
        the table state Delta cached for this workflow's checkpoint tables: a long-lived
        driver running workflow after workflow would otherwise keep one cached state per
        table it ever read."""
        for df in self.state.take_persisted():
            try:
                df.unpersist(blocking=False)
            except Exception:  # pragma: no cover - session already stopped
                logger.debug("[%s] unpersist failed", self.ctx.wf, exc_info=True)
        paths = {
            rec.checkpoint.path
            for rec in self.ctx.log.commits.values()
            if rec.checkpoint is not None
            and rec.checkpoint.path
            and rec.checkpoint.format == "delta"
        }
        forget_delta_state(self.ctx.spark, sorted(paths))


# -- commit records: the run's fields of a commit record are added only here -------------------
def commit_fields(out: TaskOutput, fingerprint: str, run: int) -> dict[str, Any]:
    """The fields every commit record carries besides its output's (also logged with a
    ``task_done`` event). ``output_at`` is now: when the output was handed over."""
    return {
        "fingerprint": fingerprint,
        "compute_seconds": out.compute_seconds + out.ref.materialize_seconds,
        "run": run,
        "attempts": out.attempts,
        "sink": out.wrote_sink,
        "observed_volatile": tuple(sorted(out.observed)),
        # wall-clock span of the attempt that produced the output (timelines)
        "started_at": out.started_at,
        "output_at": time.time(),
    }


def commit_record(output: CommitRecord, fields: dict[str, Any]) -> CommitRecord:
    """The commit record of a task: its output's record plus :func:`commit_fields`."""
    return replace(output, **fields)
