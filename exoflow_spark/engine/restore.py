"""Restoring a committed task's output for a run, with a fallback when its checkpoint is
damaged: a deterministic task that wrote no sink is re-derived from its inputs instead."""

from __future__ import annotations

import logging
from typing import Any

from ..core.context import TaskContext, task_context
from ..core.records import EventKind
from ..core.redact import redact
from ..core.task import Node, map_nested
from ..core.values import is_dataframe
from ..errors import CheckpointLostError, RecoveryError
from ..spark.session import job_context
from .ref import Ref

logger = logging.getLogger(__name__)


def restore_or_replay(run: Any, tid: str) -> Any:
    """The ref of committed task ``tid`` for a run: its checkpoint, checked to be all there.

    If the checkpoint is damaged (Delta version unreadable or data files gone), a
    deterministic task that wrote no sink is replayed instead: its function runs again on its
    inputs (restored or replayed the same way) and nothing is committed again. The decision
    is logged and recorded as a ``recovery_fallback`` event. Anything else stops with
    :class:`CheckpointLostError`, since running it again could change what was already
    published or read downstream.

    Args:
        run: the :class:`~exoflow_spark.runtime.WorkflowRun` restoring it.
        tid: a task id with a commit record in ``run.state``.
    """

    record = run.state.commits[tid]
    try:
        return Ref.from_commit(tid, record, run.spark, store=run.store, verify=True)
    except CheckpointLostError as lost:
        return _replay_lost(run, tid, lost)


def _replay_lost(run: Any, tid: str, lost: CheckpointLostError) -> Any:
    node = run.dag.node(tid)
    record = run.state.commits.get(tid)
    why = lost.reason
    blocker = None
    if not node.task.opts.deterministic:
        blocker = "the task is nondeterministic (deterministic=False), so a re-run could give rows "
        blocker += "other than the ones already read downstream"
    elif run.dag.is_sink(node) or (record is not None and record.sink):
        blocker = "the task writes to a sink, and replaying it is not allowed"
    if blocker is not None:
        run.store.event(run.run, EventKind.CHECKPOINT_LOST, task=tid, action="stop", reason=why)
        err = CheckpointLostError(
            tid,
            lost.path,
            lost.version,
            f"{why}; {blocker}. Restore the table's files from a backup and re-run the same "
            f"workflow id, or accept a new result with xf.run(..., invalidate={[tid]!r}), which "
            "re-runs it and everything downstream",
        )
        err.args = (f"workflow [{run.wf}] {err.args[0]}",)
        raise err from lost
    logger.warning(
        "[%s] [%s] checkpoint %s is damaged (%s): replaying the task from its inputs "
        "(deterministic, no sink) instead of restoring it",
        run.wf,
        tid,
        "parquet" if lost.version is None else f"v{lost.version}",
        why,
    )
    run.store.event(run.run, EventKind.RECOVERY_FALLBACK, task=tid, action="replay", reason=why)
    return _rederive(run, tid, set())


def _rederive(run: Any, tid: str, seen: set[str]) -> Any:
    """Run ``tid``'s function again on its inputs, committing nothing: a lazy plan ref."""

    if tid in seen:  # pragma: no cover - a DAG has no cycles
        raise RecoveryError(f"workflow [{run.wf}]: cycle while replaying [{tid}]")
    seen.add(tid)
    node = run.dag.node(tid)
    for u in run.dag.upstream(node):
        uid = run.dag.id_of(u)
        if uid in run.refs or uid in run.state.commits:
            continue  # run._ref restores it (or replays it, if damaged too)
        if not u.task.opts.deterministic or run.dag.is_sink(u):
            raise RecoveryError(
                f"workflow [{run.wf}] task [{tid}]: replaying it needs [{uid}], whose output "
                "was not kept and which is nondeterministic or a sink, so it cannot be "
                "recomputed safely. Restore the checkpoint of "
                f"[{tid}] from a backup, or re-run with xf.run(..., invalidate={[tid]!r})"
            )
        ref = _rederive(run, uid, seen)
        with run._cond:
            run.refs.setdefault(uid, ref)

    def resolve(value: Any) -> Any:
        return run._resolve_input(value) if isinstance(value, Node) else value

    args = map_nested(node.args, resolve)
    kwargs = map_nested(node.kwargs, resolve)
    ctx = TaskContext(
        run.wf, tid, run.spark, run.state.generation(tid), 1, run.store, run.run, is_sink=False
    )
    try:
        with task_context(ctx), job_context(run.spark, run.wf, f"replay {tid}"):
            result = node.task.fn(*args, **kwargs)
    except Exception as exc:
        raise RecoveryError(
            f"workflow [{run.wf}] task [{tid}]: replaying it (its checkpoint is damaged) "
            f"failed: {type(exc).__name__}: {redact(exc)}. Fix the cause and re-run, or restore "
            "the checkpoint's files from a backup"
        ) from exc
    if not is_dataframe(result):
        ref = Ref(tid, "value", value=result)
    else:
        ref = Ref(tid, "plan", df=result)
    ref.committed.set()
    logger.info("[%s] [%s] replayed from its inputs", run.wf, tid)
    return ref
