"""Exactly-once sinks: writes whose effect is visible outside the workflow.

A sink write inside a task carries an idempotency key derived from the workflow id, the task
id and an attempt-free sequence number (the k-th sink write of that task). Delta records the
key in the same atomic commit as the rows (``txnAppId`` / ``txnVersion``) and skips a write
whose key it has seen, so a retry, a resume after a crash or a second run of a finished
workflow never adds the rows twice.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from ..core.context import current_task
from ..core.faults import crash_point
from ..core.records import EventKind
from ..core.values import is_dataframe
from ..errors import SinkError, TaskContextError

logger = logging.getLogger(__name__)


def sink_app_id(workflow_id: str, task_id: str) -> str:
    """The Delta ``txnAppId`` used by a task's sink writes."""
    return f"exoflow-{workflow_id}-{task_id}"


def write_delta(
    df: Any,
    path: str,
    *,
    mode: Literal["append", "overwrite"] = "append",
    partition_by: Sequence[str] | None = None,
    options: Mapping[str, str] | None = None,
) -> None:
    """Write ``df`` to the Delta table at ``path``, exactly once per workflow id and task.

    Call it inside a task. Re-executions of the same task in the same workflow id (retries,
    resumes, re-runs) are no-ops for writes that already committed.

    Args:
        df: the rows to write.
        path: the Delta table's location (any URI Spark reaches).
        mode: ``"append"`` or ``"overwrite"``.
        partition_by: partition columns.
        options: extra Delta writer options (``mergeSchema``, ...).

    Example:
        >>> @xf.task
        ... def publish(gold):
        ...     xf.write_delta(gold, "/lake/gold/daily", mode="append")
    """
    try:
        ctx = current_task()
    except TaskContextError as exc:  # a sink used outside a task is a sink misuse
        raise SinkError(str(exc)) from exc
    if not ctx.is_sink:
        raise SinkError(
            f"workflow [{ctx.workflow_id}] task [{ctx.task_id}] calls write_delta but is not "
            "known as a sink (it calls it through a helper): declare @xf.task(sink=True) so "
            "the engine makes it wait for nondeterministic inputs to be durable. Nothing was "
            "written"
        )
    if not is_dataframe(df):
        raise SinkError(
            f"workflow [{ctx.workflow_id}] task [{ctx.task_id}]: write_delta needs a DataFrame, "
            f"got {type(df).__name__}"
        )
    if mode not in ("append", "overwrite"):
        raise SinkError(
            f"workflow [{ctx.workflow_id}] task [{ctx.task_id}]: write_delta mode={mode!r} is "
            "not supported; use 'append' or 'overwrite' (for upserts, merge inside a task "
            "with the session confs spark.databricks.delta.write.txnAppId/txnVersion)"
        )
    if not isinstance(path, str) or not path.strip():
        raise SinkError(
            f"workflow [{ctx.workflow_id}] task [{ctx.task_id}]: write_delta needs a table "
            f"path, got {path!r}"
        )
    options = dict(options or {})
    reserved = {"txnAppId", "txnVersion"} & set(options)
    if reserved:
        raise SinkError(
            f"workflow [{ctx.workflow_id}] task [{ctx.task_id}]: write_delta sets "
            f"{sorted(reserved)} itself (that is what makes it exactly-once); remove them"
        )
    app_id = sink_app_id(ctx.workflow_id, ctx.task_id)
    version = ctx.next_sink_version()
    writer = df.write.format("delta").mode(mode).option("txnAppId", app_id)
    writer = writer.option("txnVersion", str(version))
    for key, value in options.items():
        writer = writer.option(key, value)
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    writer.save(path)
    logger.info(
        "[%s] [%s] sink write to %s (txnAppId=%s, txnVersion=%d)",
        ctx.workflow_id,
        ctx.task_id,
        path,
        app_id,
        version,
    )
    if ctx.store is not None:
        ctx.store.event(
            ctx.run,
            EventKind.SINK,
            task=ctx.task_id,
            path=path,
            app_id=app_id,
            txn_version=version,
            mode=mode,
        )
    crash_point(ctx.task_id, "during-sink")
