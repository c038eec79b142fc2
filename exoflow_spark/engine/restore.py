"""Restoring a committed task's output for a run, with a fallback when its checkpoint is
damaged: a deterministic task that wrote no sink is re-derived from its inputs instead."""

from __future__ import annotations

import logging
from typing import Any

from ..core.fmt import error_line
from ..core.records import EventKind
from ..core.redact import redact
from ..core.values import is_dataframe
from ..errors import CheckpointLostError, RecoveryError
from .ref import Ref

logger = logging.getLogger(__name__)


def restore_or_replay(runner: Any, tid: str) -> Any:
    """The ref of committed task ``tid`` for a run: its checkpoint, checked to be all there.

    If the checkpoint is damaged (Delta version unreadable or data files gone), a
    deterministic task that wrote no sink is replayed instead: its function runs again on its
    inputs (restored or replayed the same way) and nothing is committed again. The decision
    is logged and recorded as a ``recovery_fallback`` event. Anything else stops with
    :class:`CheckpointLostError`, since running it again could change what was already
    published or read downstream.

    Args:
        runner: the run's :class:`~exoflow_spark.engine.runner.TaskRunner` (its ``ctx``
            and ``state``, and its public methods to resolve inputs and call a task).
        tid: a task id with a commit record in ``runner.ctx.log``.
    """

    ctx = runner.ctx
    record = ctx.log.commits[tid]
    try:
        return Ref.from_commit(tid, record, ctx.spark, store=ctx.store, verify=True)
    except CheckpointLostError as lost:
        return _replay_lost(runner, tid, lost)


def _replay_lost(runner: Any, tid: str, lost: CheckpointLostError) -> Any:
    ctx = runner.ctx
    node = ctx.dag.node(tid)
    record = ctx.log.commits.get(tid)
    why = lost.reason
    blocker = None
    if not node.task.opts.deterministic:
        blocker = "the task is nondeterministic (deterministic=False), so a re-run could give rows "
        blocker += "other than the ones already read downstream"
    elif ctx.dag.is_sink(node) or (record is not None and record.sink):
        blocker = "the task writes to a sink, and replaying it is not allowed"
    if blocker is not None:
        ctx.store.event(ctx.run, EventKind.CHECKPOINT_LOST, task=tid, action="stop", reason=why)
        err = CheckpointLostError(
            tid,
            lost.path,
            lost.version,
            f"{why}; {blocker}. Restore the table's files from a backup and re-run the same "
            f"workflow id, or accept a new result with xf.run(..., invalidate={[tid]!r}), which "
            "re-runs it and everything downstream",
        )
        err.args = (f"workflow [{ctx.wf}] {err.args[0]}",)
        raise err from lost
    logger.warning(
        "[%s] [%s] checkpoint %s is damaged (%s): replaying the task from its inputs "
        "(deterministic, no sink) instead of restoring it",
        ctx.wf,
        tid,
        "parquet" if lost.version is None else f"v{lost.version}",
        why,
    )
    ctx.store.event(ctx.run, EventKind.RECOVERY_FALLBACK, task=tid, action="replay", reason=why)
    return _rederive(runner, tid, set())


def _rederive(runner: Any, tid: str, seen: set[str]) -> Any:
    """Run ``tid``'s function again on its inputs, committing nothing: a lazy plan ref."""

    ctx = runner.ctx
    if tid in seen:  # pragma: no cover - a DAG has no cycles
        raise RecoveryError(f"workflow [{ctx.wf}]: cycle while replaying [{tid}]")
    seen.add(tid)
    node = ctx.dag.node(tid)
    for u in ctx.dag.upstream(node):
        uid = ctx.dag.id_of(u)
        if runner.state.ref(uid) is not None or uid in ctx.log.commits:
            continue  # runner.ref restores it (or replays it, if damaged too)
        if not u.task.opts.deterministic or ctx.dag.is_sink(u):
            raise RecoveryError(
                f"workflow [{ctx.wf}] task [{tid}]: replaying it needs [{uid}], whose output "
                "was not kept and which is nondeterministic or a sink, so it cannot be "
                "recomputed safely. Restore the checkpoint of "
                f"[{tid}] from a backup, or re-run with xf.run(..., invalidate={[tid]!r})"
            )
        runner.state.add_ref(uid, _rederive(runner, uid, seen))

    args, kwargs = runner.inputs(node)
    tctx = runner.context(tid, 1, is_sink=False)
    try:
        with runner.in_task(tctx, f"replay {tid}"):
            result = node.task.fn(*args, **kwargs)
    except Exception as exc:
        raise RecoveryError(
            f"workflow [{ctx.wf}] task [{tid}]: replaying it (its checkpoint is damaged) "
            f"failed: {redact(error_line(exc))}. Fix the cause and re-run, or restore "
            "the checkpoint's files from a backup"
        ) from exc
    if not is_dataframe(result):
        ref = Ref(tid, "value", value=result)
    else:
        ref = Ref(tid, "plan", df=result)
    ref.committed.set()
    logger.info("[%s] [%s] replayed from its inputs", ctx.wf, tid)
    return ref
