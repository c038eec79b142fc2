"""A run of a workflow: :class:`WorkflowRun`, the facade the verbs in :mod:`exoflow_spark.api`
drive, and :class:`RunOptions`, its knobs.

A run is split by responsibility; this module only wires the parts together:

* :mod:`.state`: what the run works on (:class:`~.state.RunContext`) and every field that
  changes while it runs (:class:`~.state.RunState`), with the lock discipline;
* :mod:`.scheduler`: the plan (:func:`~.scheduler.plan_run`) and the event-driven
  ready-queue loop that runs it and waits for the async writes;
* :mod:`.runner`: one task's attempts (retries, inputs, the call, replay, the output ref);
* :mod:`.committer`: checkpoint writes, commit records, ``checkpoint="auto"`` pricing and
  the release of the run's caches.

Planning is a backward walk from the output (and from every ``wait_until_committed``
target) that stops at committed tasks; committed tasks are restored from their Delta
versions (lazily), never executed again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Any

from ..core.dag import Dag
from ..core.status import TaskStatus, WorkflowStatus
from ..storage.checkpoints import CheckpointFormat, run_formats
from ..storage.store import WorkflowState, WorkflowStore
from .autockpt import ProfileStore
from .committer import Committer
from .cost import Throughput
from .planner import RecoveryPlan, Strategy
from .ref import Ref
from .runner import TaskRunner
from .scheduler import Scheduler, plan_run
from .state import RunContext, RunState

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
        checkpoint_format: how this run writes checkpoints, ``"delta"`` or ``"parquet"``,
            or None: Delta for the ones tasks declare, Parquet for auto's
            (:func:`~exoflow_spark.storage.checkpoints.run_formats`, see
            :func:`exoflow_spark.run`); restores read each as it was written.
    """

    max_parallel: int = 4
    checkpoint_writers: int = 2
    retry_backoff: float = 0.5
    recovery: Strategy = "restore"
    checkpoint_format: CheckpointFormat | None = None


class WorkflowRun:
    """One driver's run of a workflow id (create, then :meth:`execute`).

    Creating it plans the run (and logs the plan); :meth:`execute` runs it; :meth:`release`
    drops its caches afterwards, whatever the outcome.
    """

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
        self.ctx = RunContext(dag, store, spark, state, run)
        declared, auto = run_formats(options.checkpoint_format)
        #: everything that changes while the run executes
        self.run_state: RunState = plan_run(
            self.ctx, recovery=options.recovery, checkpoint_format=declared, auto_format=auto
        )
        self.committer = Committer(
            self.ctx,
            self.run_state,
            checkpoint_format=declared,
            auto_format=auto,
            checkpoint_writers=options.checkpoint_writers,
        )
        self.runner = TaskRunner(
            self.ctx, self.run_state, self.committer, retry_backoff=options.retry_backoff
        )
        self.scheduler = Scheduler(
            self.ctx,
            self.run_state,
            self.runner,
            self.committer,
            max_parallel=options.max_parallel,
        )

    # -- what the verbs and the progress display read --------------------------------------
    @property
    def needed(self) -> list[str]:
        """The tasks this run executes, in plan order."""
        return self.run_state.needed

    @property
    def refs(self) -> dict[str, Ref]:
        """Task -> its output in this run (read-only: write through the run state)."""
        return self.run_state.refs

    @property
    def statuses(self) -> dict[str, TaskStatus]:
        return self.run_state.statuses

    @property
    def recovery_plan(self) -> RecoveryPlan | None:
        return self.run_state.recovery_plan

    @property
    def throughput(self) -> Throughput:
        return self.run_state.throughput

    def ref(self, tid: str) -> Ref:
        """The ref of ``tid`` (restored lazily if it committed in an earlier run)."""
        return self.runner.ref(tid)

    # -- running ------------------------------------------------------------------------------
    def execute(self) -> Any:
        """Run every needed task; wait for async checkpoints; return the output's value."""
        return self.scheduler.execute()

    def cancel_spark_jobs(self) -> None:
        """Cancel this workflow's running Spark jobs (used on interrupt)."""
        try:
            self.spark.sparkContext.cancelJobGroup(f"exoflow:{self.wf}")
        except Exception:
            try:
                self.spark.interruptTag(f"exoflow:{self.wf}")
            except Exception:
                logger.debug("[%s] could not cancel Spark jobs", self.wf, exc_info=True)

    def release(self, finished: bool = False) -> None:
        """Drop the executor caches this run created and Delta's cached state of this
        workflow's checkpoint tables (see :meth:`~.committer.Committer.release`); complete
        the cost profiles measured in this run with their checkpoints' write times and, if
        the run ``finished``, with how much of it was left after each profiled output."""
        self._complete_profiles(finished)
        self.committer.release()

    def _complete_profiles(self, finished: bool) -> None:
        """checkpoint="auto": a profile measured in this run learns what its checkpoint
        write took, and (a run that finished the whole pipeline) the run's length and what
        was left of it when the output was ready: the next run weighs the recompute a write
        insures by it. A resumed run ran only part of the pipeline: its tails would overstate
        the share, so its profiles keep the tail of the run they were measured in before."""
        state = self.run_state
        end = time.monotonic()
        whole = finished and all(rec.run == self.run for rec in self.state.commits.values())
        profiles = ProfileStore(self.store.fs)
        for tid, profile in list(state.auto_profiles.items()):
            done = profile
            rec = self.state.commits.get(tid)
            # a profile measured into the cache learns its write's time from the commit
            # record; one written sync has the cost model's already (the record's is the job's)
            if (
                done.write_s is None
                and rec is not None
                and rec.checkpoint is not None
                and rec.run == self.run
            ):
                done = replace(done, write_s=rec.checkpoint.write_seconds)
            ready = state.auto_ready_at.get(tid)
            if whole and ready is not None:
                done = replace(
                    done, tail_s=round(end - ready, 3), run_s=round(end - state.started_at, 3)
                )
            if done != profile:
                profiles.save(done)


def finish_status(exc: BaseException | None) -> WorkflowStatus:
    """The workflow status a run ends with, given what stopped it."""
    if exc is None:
        return WorkflowStatus.SUCCESSFUL
    if isinstance(exc, KeyboardInterrupt):
        return WorkflowStatus.CANCELED
    return WorkflowStatus.FAILED
