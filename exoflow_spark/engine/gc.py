"""Garbage collection of checkpoint tables no workflow needs any more.

Each task's checkpoints live in a Delta table ``<root>/workflows/<wf>/refs/<task>``. Once a
workflow has finished, or once everything reading a checkpoint has committed, that table
only takes space. :func:`collect_garbage` deletes such tables and keeps, per workflow:

* **RUNNING** (a live driver holds it): everything. Its driver may be reading or writing.
* **RESUMABLE, FAILED, CANCELED**: every checkpoint the next run would read. That is planned
  from the log exactly as the run plans it (:func:`exoflow_spark.recovery.plan`), for both
  recovery strategies (``restore`` and ``cost``), so a resume, whichever strategy it uses,
  finds every table it restores. The output task's checkpoint is kept too.
* **SUCCESSFUL**: the output task's checkpoint (``get_output`` and a re-run that executes
  nothing read it), unless ``include_outputs=True``.

Everything else goes: checkpoints whose readers all committed, tables of tasks that are not
committed (a write interrupted before its commit record: the next run writes it again),
tables of tasks no longer in the workflow's DAG, and ``xf.iterate`` scratch tables of
committed tasks. Deletions are logged under ``<wf>/log/gc/``; commit records are never
touched, so the log stays the full history.

Caveat: after a table is collected, ``xf.run(..., invalidate=[...])`` of a task that reads it
cannot restore it; run under a new workflow id instead.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ..core.defaults import resolve_storage
from ..core.records import DagRecord
from ..core.redact import redact
from ..core.status import WorkflowStatus
from ..core.uris import is_local, local_path
from ..errors import RecoveryError, StorageError
from ..spark.hadoop import delete_path, tree_size
from ..storage import layout
from ..storage.checkpoints import CHECKPOINT_FORMATS
from ..storage.store import WorkflowState, WorkflowStore, list_workflow_ids
from .cost import load_throughput
from .planner import plan

logger = logging.getLogger(__name__)

ITERATIONS_SUFFIX = layout.ITERATIONS_SUFFIX

Verdict = Literal["delete", "keep"]


@dataclass(frozen=True)
class GcItem:
    """One checkpoint table and what garbage collection does with it."""

    workflow_id: str
    table: str
    path: str
    bytes: int
    verdict: Verdict
    reason: str


@dataclass
class GcReport:
    """What :func:`collect_garbage` deleted (or, in a dry run, would delete) and kept."""

    dry_run: bool
    items: list[GcItem] = field(default_factory=list)

    @property
    def deleted(self) -> list[GcItem]:
        """Tables deleted (dry run: that would be deleted)."""
        return [i for i in self.items if i.verdict == "delete"]

    @property
    def kept(self) -> list[GcItem]:
        """Tables kept, each with the reason."""
        return [i for i in self.items if i.verdict == "keep"]

    @property
    def bytes_freed(self) -> int:
        return sum(i.bytes for i in self.deleted)

    def to_records(self) -> list[dict[str, Any]]:
        """JSON-able items."""
        return [asdict(i) for i in self.items]


def needed_checkpoints(
    dag_record: DagRecord | Mapping[str, Any],
    state: WorkflowState,
    done: set[str],
    throughputs: Iterable[Any],
) -> dict[str, str]:
    """Task ids whose checkpoint the next run of a non-finished workflow reads, with why.

    The union of what the ``restore`` and the ``cost`` strategy restore (the latter under
    the cost model of every checkpoint format, as the next run may use either), plus the
    output.
    """
    dag = DagRecord.of(dag_record)
    keep: dict[str, str] = {}
    plans = [("restore", None)] + [("cost", tp) for tp in throughputs]
    for strategy, tp in plans:
        rplan = plan(dag, state, done=done, strategy=strategy, throughput=tp)
        for tid in rplan.actions("restore"):
            keep.setdefault(tid, f"restored by the next run ({strategy} strategy)")
    keep.setdefault(dag.output, "the workflow's output")
    return keep


def _size(storage: str, path: str, spark: Any | None) -> int:
    if is_local(storage):
        total = 0
        for dirpath, _dirs, files in os.walk(path):
            for f in files:
                with contextlib.suppress(OSError):  # raced with a delete
                    total += os.path.getsize(os.path.join(dirpath, f))
        return total
    try:
        return tree_size(spark, path)
    except Exception:  # pragma: no cover - size is informative only
        return 0


def _delete(storage: str, path: str, spark: Any | None) -> None:
    if not is_local(storage):
        delete_path(spark, path)
        return
    try:
        shutil.rmtree(local_path(path))
    except OSError as exc:
        raise StorageError(
            f"could not delete checkpoint table {redact(path)}: {redact(exc)}. Nothing else was "
            "deleted for this table; fix the cause and run gc again"
        ) from exc


def _plan_workflow(
    store: WorkflowStore, include_outputs: bool
) -> tuple[dict[str, str], str | None, WorkflowState]:
    """(tables to keep with why, a reason to keep everything or None, state)."""
    state = store.read_state()
    if not state.exists:
        return {}, "no workflow log: not an exoflow workflow (left alone)", state
    status = state.status
    if status is WorkflowStatus.RUNNING:
        return {}, "the workflow is RUNNING: a live driver may read or write it", state
    record = state.dag
    if not record:
        return {}, "the last run logged no DAG (left alone)", state
    if status is WorkflowStatus.SUCCESSFUL:
        if include_outputs:
            return {}, None, state
        return (
            {record.output: "the workflow's output (--include-outputs deletes it)"},
            None,
            state,
        )
    try:
        models = [load_throughput(store.fs, fmt) for fmt in CHECKPOINT_FORMATS]
        keep = needed_checkpoints(record, state, store.done_tasks(), models)
    except RecoveryError as exc:
        return {}, f"its log needs attention before recovery ({exc}); left alone", state
    return {t: f"{why}; the workflow is {status.value}" for t, why in keep.items()}, None, state


def collect_garbage(
    storage: str | None = None,
    *,
    workflow_ids: Iterable[str] | None = None,
    dry_run: bool = False,
    include_outputs: bool = False,
    spark: Any | None = None,
) -> GcReport:
    """Delete checkpoint tables that no workflow needs (see the module docstring for the rules).

    Args:
        storage: storage root.
        workflow_ids: only these workflows (default: every workflow under the root).
        dry_run: decide and report, delete nothing.
        include_outputs: also delete the output checkpoint of SUCCESSFUL workflows
            (``get_output`` then fails for them).
        spark: only for storage roots reached through Hadoop (s3a://, ...).

    Returns:
        A :class:`GcReport` naming every table, its size, and whether it was deleted and why.

    Raises:
        WorkflowNotFoundError: one of ``workflow_ids`` does not exist (nothing is deleted).

    Example:
        >>> report = xf.collect_garbage("/data/exo", dry_run=True)
        >>> [(i.workflow_id, i.table) for i in report.deleted]
    """
    root = resolve_storage(storage)
    report = GcReport(dry_run=dry_run)
    ids = list(workflow_ids) if workflow_ids is not None else list_workflow_ids(root, spark)
    stores = [WorkflowStore(root, wf, spark) for wf in ids]
    if workflow_ids is not None:
        for store in stores:  # a named workflow that does not exist is a mistake: say so
            store.require_exists()
    for store in stores:
        wf = store.workflow_id
        tables = store.tables()
        if not tables:
            continue
        keep, keep_all, state = _plan_workflow(store, include_outputs)
        dag_ids = set(state.dag.ids)
        deleted: list[GcItem] = []
        for table in tables:
            path = store.table_uri(table)
            verdict: Verdict
            if keep_all is not None:
                verdict, why = "keep", keep_all
            elif table in keep:
                verdict, why = "keep", keep[table]
            elif (owner := layout.iterations_owner(table)) is not None:
                if owner in state.commits or state.status is WorkflowStatus.SUCCESSFUL:
                    verdict, why = (
                        "delete",
                        f"xf.iterate scratch table of [{owner}], which committed",
                    )
                else:
                    verdict, why = "keep", f"xf.iterate scratch table of [{owner}] (not committed)"
            elif table not in dag_ids:
                verdict, why = "delete", "not a task of the workflow's DAG any more"
            elif table not in state.commits:
                verdict, why = (
                    "delete",
                    "not committed (an interrupted write); the next run rewrites it",
                )
            elif state.status is WorkflowStatus.SUCCESSFUL:
                verdict, why = "delete", "the workflow is SUCCESSFUL and nothing reads it again"
            else:
                verdict, why = "delete", "everything reading it has committed"
            item = GcItem(wf, table, path, _size(root, path, spark), verdict, why)
            report.items.append(item)
            if verdict == "delete" and not dry_run:
                _delete(root, path, spark)
                deleted.append(item)
                logger.info("[%s] [%s] checkpoint table deleted: %s", wf, table, why)
        if deleted:
            store.record_gc(asdict(i) for i in deleted)
    return report


def collected_tables(store: WorkflowStore) -> dict[str, float]:
    """Checkpoint tables of a workflow that garbage collection deleted, with when."""
    out: dict[str, float] = {}
    for rec in store.gc_records():
        for table in rec.tables:
            out[table] = rec.at
    return out
