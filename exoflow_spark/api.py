"""The public verbs: run, resume, get_status, get_output, list_workflows."""

from __future__ import annotations

import logging
import os
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .core.dag import Dag
from .core.defaults import resolve_storage
from .core.options import DEFAULT_CHECKPOINT_POLICY, checkpoint_policy
from .core.records import DagRecord, EventKind
from .core.redact import MASK, has_secret
from .core.status import WorkflowStatus
from .core.task import Node
from .engine.autockpt import (
    ProfileStore,
    RunTail,
    decide_before,
    earliest_tail,
    min_replay_s,
    profile_key,
    walk_up,
    write_mode,
)
from .engine.cost import load_throughput
from .engine.planner import RecoveryPlan, Strategy, plan, report_missing
from .engine.ref import Ref
from .engine.runtime import RunOptions, WorkflowRun, finish_status
from .errors import (
    InvalidOptionError,
    TaskChangedError,
    TaskNotCommittedError,
    WorkflowChangedError,
    WorkflowNotFoundError,
)
from .spark.session import cache_replicas, resolve_spark
from .storage.checkpoints import CHECKPOINT_FORMATS, CheckpointFormat, run_formats
from .storage.store import Heartbeat, WorkflowState, WorkflowStore, list_workflow_ids
from .surface.progress import ProgressMode, check_progress_mode
from .surface.progress import watch as watch_progress

logger = logging.getLogger(__name__)


def _check_recovery(recovery: object) -> None:
    if recovery not in ("restore", "cost"):
        raise InvalidOptionError(
            f"recovery={recovery!r} is not a strategy: use 'restore' (read committed inputs "
            "from their checkpoints) or 'cost' (replay when that is estimated cheaper)"
        )


def run(
    dag: Node,
    *,
    workflow_id: str | None = None,
    storage: str | None = None,
    spark: Any | None = None,
    invalidate: Sequence[str] = (),
    max_parallel: int = 4,
    recovery: Strategy = "restore",
    progress: ProgressMode = False,
    checkpoint_format: CheckpointFormat | None = None,
    replace: bool = False,
    checkpoint: str = DEFAULT_CHECKPOINT_POLICY,
) -> Any:
    """Run a DAG exactly once under ``workflow_id``, resuming it if it ran before.

    Tasks already committed under this id are not executed again: their outputs are restored
    from their checkpoints. Everything else that the output needs runs.

    Args:
        dag: the output node (``task.bind(...)``); the DAG is it and all it depends on.
        workflow_id: the id to run (and resume) under; a new id is generated if omitted.
        storage: storage root (local path or any URI Spark reaches); default:
            :func:`exoflow_spark.set_default_storage` / ``$EXOFLOW_STORAGE`` / ``./exoflow-data``.
        spark: the SparkSession; defaults to the active one.
        invalidate: task ids to re-run, with everything downstream of them, even though they
            committed (for when their code or inputs changed on purpose).
        max_parallel: how many independent tasks may run at once.
        recovery: ``"restore"`` (default) reads every committed input from its checkpoint
            and never executes a committed task again; ``"cost"`` may re-derive a committed
            deterministic DataFrame from its inputs when the measured costs say that is
            cheaper than reading it (nothing is committed again).
        progress: ``"auto"`` shows live progress (tasks done, checkpoints writing, the Spark
            stage) on a terminal's stderr or in a notebook, and nothing elsewhere; ``True``
            forces it on; a callable receives each :class:`~exoflow_spark.progress.
            ProgressSnapshot`. Default False: the library prints nothing.
        checkpoint_format: how this run stores the checkpoints it writes. ``"delta"``: a
            version of a Delta table per task (``refs/<task>``), which Delta tools can open
            and time-travel. ``"parquet"``: plain Parquet files in a new folder per write
            (``refs/<task>/_parquet/<random>``), made a checkpoint by the commit record that
            lists them: no Delta commit, about half the fixed cost per checkpoint (see the
            README's figures); the same exactly-once guarantees, since the commit record is
            what makes any checkpoint count. ``None`` (default): Delta for the checkpoints
            tasks declare (``checkpoint=True`` / ``"async"``, or the run's ``"sync"`` /
            ``"async"`` policy), Parquet for those ``checkpoint="auto"`` decides to write
            (the engine's own, made for speed). Restores read each checkpoint in the format
            it was written, so a workflow may switch between runs.
        replace: a workflow id names one DAG: a run whose tasks, edges or output differ from
            the DAG logged under the id is refused (:class:`WorkflowChangedError`) before it
            writes anything. ``replace=True`` makes the id run this DAG from now on: committed
            tasks whose code and inputs are unchanged are kept, changed ones re-run with
            everything downstream (as with ``invalidate``).
        checkpoint: the checkpoint policy of every task that declares no ``checkpoint``
            option (a declared one always wins). ``"none"`` (default): replayed, as
            ``checkpoint=False``. ``"auto"``: the engine decides per task, writing only
            the outputs whose recomputation after a crash would cost more than writing
            them; cheap narrow stages keep fusing into their consumers. Costs come from the
            task's profile measured by an earlier run (any workflow id: profiles are keyed
            by task id and code fingerprint, under ``<storage>/_exoflow/profiles``), else a
            measurement now for Python code the plan cannot price, else the plan's
            statistics; each decision is logged (``exoflow-spark history``). An output
            decided from its profile, or measured with no profile, is written sync by the
            job that computes it on a root with cheap writes (local disk, HDFS: a first run
            writes each Python stage once to measure it), async on one whose writes are
            latency-bound (an object store). ``"async"`` /
            ``"sync"``: write every undeclared task's output.

    Returns:
        The output task's result: a DataFrame (read from its committed Delta version), a
        JSON value, or None.

    Raises:
        ConcurrentRunError: another live driver runs this workflow id (checked first).
        WorkflowChangedError: the DAG is not the one logged under this id (see ``replace``).
        TaskChangedError: a committed task's code or inputs changed.
        TaskFailedError: a task failed after its retries (the cause is attached).
        StorageRootError: the storage root cannot hold workflows.

    Example:
        >>> out = xf.run(gold.bind(silver.bind(bronze.bind("/raw"))),
        ...              workflow_id="sales-2026-11-24", storage="/data/exo")
    """
    return _run(
        dag,
        workflow_id=workflow_id,
        storage=storage,
        spark=spark,
        invalidate=invalidate,
        max_parallel=max_parallel,
        must_exist=False,
        recovery=recovery,
        progress=progress,
        checkpoint_format=checkpoint_format,
        replace=replace,
        checkpoint=checkpoint,
    )


def resume(
    dag: Node,
    *,
    workflow_id: str,
    storage: str | None = None,
    spark: Any | None = None,
    max_parallel: int = 4,
    recovery: Strategy = "restore",
    progress: ProgressMode = False,
    checkpoint_format: CheckpointFormat | None = None,
    checkpoint: str = DEFAULT_CHECKPOINT_POLICY,
) -> Any:
    """Continue a workflow that already ran (crashed, failed or canceled).

    Same as :func:`run`, but refuses an unknown id instead of starting a new workflow, and
    does so before writing anything. Functions are never unpickled from storage: pass the
    same DAG that the workflow was started with.

    Example:
        >>> xf.resume(dag, workflow_id="sales-2026-11-24", storage="/data/exo")
    """
    return _run(
        dag,
        workflow_id=workflow_id,
        storage=storage,
        spark=spark,
        invalidate=(),
        max_parallel=max_parallel,
        must_exist=True,
        recovery=recovery,
        progress=progress,
        checkpoint_format=checkpoint_format,
        checkpoint=checkpoint,
    )


def _run(
    dag: Node,
    *,
    workflow_id: str | None,
    storage: str | None,
    spark: Any | None,
    invalidate: Sequence[str],
    max_parallel: int,
    must_exist: bool,
    recovery: Strategy = "restore",
    progress: ProgressMode = False,
    checkpoint_format: CheckpointFormat | None = None,
    replace: bool = False,
    checkpoint: str = DEFAULT_CHECKPOINT_POLICY,
) -> Any:
    _check_recovery(recovery)
    if not isinstance(replace, bool):
        raise InvalidOptionError(f"replace={replace!r} must be True or False")
    policy = checkpoint_policy(checkpoint)  # an unknown policy fails before anything runs
    if checkpoint_format is not None and checkpoint_format not in CHECKPOINT_FORMATS:
        raise InvalidOptionError(
            f"checkpoint_format={checkpoint_format!r} is not a format: use 'delta' (a Delta "
            "table per task), 'parquet' (plain Parquet files per checkpoint) or None (the "
            "default: Delta for declared checkpoints, Parquet for checkpoint='auto' writes)"
        )
    graph = Dag(dag, checkpoint_policy=policy)
    if any(graph.mode_of(n) == "auto" for n in graph):
        min_replay_s()  # a bad $EXOFLOW_AUTO_MIN_REPLAY_S fails before anything runs
    cache_replicas()  # so does a bad $EXOFLOW_CACHE_REPLICAS
    if isinstance(invalidate, str):
        invalidate = [invalidate]
    for t in invalidate:
        graph.node(t)  # unknown task ids fail here, before anything is written
    if not isinstance(max_parallel, int) or isinstance(max_parallel, bool) or max_parallel < 1:
        raise InvalidOptionError(f"max_parallel={max_parallel!r} must be an integer >= 1")
    check_progress_mode(progress)
    storage = resolve_storage(storage)
    spark = resolve_spark(spark)
    if workflow_id is None:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        workflow_id = f"{graph.id_of(graph.output)}-{stamp}-{uuid.uuid4().hex[:6]}"
    store = WorkflowStore(storage, workflow_id, spark)
    state = store.require_exists() if must_exist else store.read_state()

    # Refusals give the real reason first, and all come before anything is written: a live
    # owner, then a different DAG, then changed committed tasks.
    store.check_not_held(state)
    record = DagRecord.from_json(graph.to_record())
    differences = state.dag.differences(record) if state.dag else []
    if differences and not replace:
        raise WorkflowChangedError(workflow_id, differences)
    if replace:
        invalidate = [*invalidate, *_changed_tasks(graph, state, skip=set())]
        if differences:
            logger.warning(
                "[%s] replacing the workflow's DAG (replace=True): %s",
                workflow_id,
                "; ".join(differences),
            )
    to_invalidate = graph.descendants(list(invalidate)) if invalidate else []
    _check_unchanged(graph, state, workflow_id, skip=set(to_invalidate))
    store.done_tasks()  # every event is read (and a newer log refused) before anything is written

    number = store.start_run(
        state,
        record,
        invalidate=to_invalidate,
        launch=launch_record(),
    )
    logger.info(
        "[%s] run %d started (%d tasks, %d committed before)",
        workflow_id,
        number,
        len(graph),
        len(state.commits),
    )
    if to_invalidate:
        # Only committed tasks get a new generation: a pending sink that wrote part of its
        # rows keeps its idempotency keys, so finishing it does not write those rows twice.
        store.invalidate([t for t in to_invalidate if t in state.commits], state, number)
    wrun: WorkflowRun | None = None
    error: BaseException | None = None
    with Heartbeat(store, number):
        try:
            wrun = WorkflowRun(
                graph,
                store,
                spark,
                state,
                number,
                RunOptions(
                    max_parallel=max_parallel,
                    recovery=recovery,
                    checkpoint_format=checkpoint_format,
                ),
            )
            with watch_progress(wrun, progress):
                return wrun.execute()
        except BaseException as exc:
            error = exc
            if isinstance(exc, KeyboardInterrupt) and wrun is not None:
                wrun.cancel_spark_jobs()
            raise
        finally:
            status = finish_status(error)
            store.end_run(
                number, status, None if error is None else f"{type(error).__name__}: {error}"[:4000]
            )
            if wrun is not None:
                wrun.release(finished=error is None)
            logger.info("[%s] run %d ended: %s", workflow_id, number, status.value)


#: Set by ``exoflow-spark run``: how to start this workflow again (``exoflow-spark resume``).
_launch: dict[str, Any] | None = None


def launch_record() -> dict[str, Any]:
    """How this driver was started, logged with each run so ``exoflow-spark resume`` can
    start the same job again: the CLI's target and arguments when launched by
    ``exoflow-spark run``, else the process's command line. The value after a secret-named
    flag (``--secret-key X``) is masked; ``key=value`` secrets are redacted by the store."""
    if _launch is not None:
        record = dict(_launch)
        record["args"] = mask_secret_args(record.get("args", []))
        return record
    return {"argv": mask_secret_args(sys.argv), "cwd": os.getcwd(), "python": sys.executable}


def mask_secret_args(argv: Sequence[Any]) -> list[str]:
    """``argv`` with the value following each secret-named flag replaced by ``***``."""
    out = [str(a) for a in argv]
    for i, arg in enumerate(out[:-1]):
        if arg.startswith("-") and "=" not in arg and has_secret(f"{arg.lstrip('-')}=x"):
            out[i + 1] = MASK
    return out


def _changed_tasks(graph: Dag, state: WorkflowState, skip: set[str]) -> list[str]:
    """Tasks of ``graph`` committed under another fingerprint (code or inputs changed)."""
    changed = []
    for tid in graph.task_ids:
        rec = state.commits.get(tid)
        if rec is None or tid in skip:
            continue
        if rec.fingerprint != graph.fingerprint(graph.node(tid)):
            changed.append(tid)
    return changed


def _check_unchanged(graph: Dag, state: WorkflowState, workflow_id: str, skip: set[str]) -> None:
    changed = _changed_tasks(graph, state, skip)
    if changed:
        # Name the roots of the change: a task changed only because an upstream one did is
        # covered by invalidating that upstream task.
        roots = [
            t
            for t in changed
            if not any(graph.id_of(u) in changed for u in graph.upstream(graph.node(t)))
        ]
        raise TaskChangedError(workflow_id, roots or changed)


def explain(
    target: str | Node,
    *,
    workflow_id: str | None = None,
    storage: str | None = None,
    spark: Any | None = None,
    recovery: Strategy = "restore",
) -> RecoveryPlan:
    """What running (or resuming) a workflow would do now, task by task, without running it.

    Each task gets an action (skip / restore / replay / run / roll back), the reason, and the
    restore and replay estimates that were compared. ``print(plan)`` shows a table; in a
    notebook the plan renders as HTML.

    Args:
        target: a workflow id (the DAG it last ran is read from its log), or a DAG node
            (then pass ``workflow_id=``; an unknown id plans a fresh run).
        workflow_id: the id, when ``target`` is a node.
        storage: storage root.
        spark: only needed for storage roots reached through Hadoop (s3a://, ...).
        recovery: the strategy to plan for (``"restore"`` or ``"cost"``).

    Example:
        >>> print(xf.explain("sales-2026-11-24", storage="s3a://lake/exo"))
    """
    _check_recovery(recovery)
    root = resolve_storage(storage)
    if isinstance(target, Node):
        if workflow_id is None:
            raise InvalidOptionError(
                "explain(dag, ...) needs workflow_id=... to know which log to read"
            )
        graph = Dag(target)
        store = WorkflowStore(root, workflow_id, spark)
        state = store.read_state()
        record = DagRecord.from_json(graph.to_record())
        differences = state.dag.differences(record) if state.dag else []
        if differences:
            raise WorkflowChangedError(workflow_id, differences)
        _check_unchanged(graph, state, workflow_id, skip=set())
    else:
        store = WorkflowStore(root, target, spark)
        state = store.require_exists()
        record = state.dag
    done = store.done_tasks()
    throughput = load_throughput(store.fs)
    rplan = plan(record, state, done=done, strategy=recovery, throughput=throughput)
    report_missing(rplan, state, logger)
    # auto's decisions are previewed as a run naming no checkpoint format makes them
    rplan.auto = _auto_preview(record, store, load_throughput(store.fs, run_formats(None)[1]))
    return rplan


def _auto_preview(record: DagRecord, store: WorkflowStore, throughput: Any) -> list[dict[str, Any]]:
    """For each ``checkpoint="auto"`` task: the decision a run would make before running it
    (from its profile; without one it is decided as it runs), and the last run's decision.
    How a write is made (sync or async) is said only when ``throughput`` is fresh: a run
    measures the root first otherwise."""
    profiles = ProfileStore(store.fs)
    last: dict[str, str] = {}
    for e in store.events(EventKind.AUTO_CHECKPOINT):
        if e.task is not None:
            last[e.task] = f"{e.data.get('action', 'write' if e.data.get('checkpoint') else '?')}"
            last[e.task] += f" [{e.data.get('source', 'measured')}]"
    out: list[dict[str, str]] = []
    own: dict[str, float] = {}  # the recompute of each task the preview fuses
    inputs = {t.id: t.upstream for t in record.tasks}

    def fused(uid: str) -> tuple[bool, bool]:
        return uid in own, uid in own

    def lost_upstream(tid: str) -> float:
        """The recompute of the fused tasks above ``tid``, each once."""
        return sum(own[u] for u in walk_up(tid, lambda t: inputs.get(t, ()), fused))

    floor = min_replay_s()
    # a run measures a root whose cost model is missing or old before its first write decided
    # ahead of computing (TaskRunner._write_mode): the preview cannot say how it will write
    stale = "measured over a week ago" if throughput.measured else "not measured yet"
    measured_first = f"as the root's write cost says (the run measures it first: {stale})"
    tails: dict[str, RunTail | None] = {}  # as the run passes them on (see RunTail)
    for t in record.tasks:
        if t.checkpoint != "auto" or t.id == record.output:
            continue
        profile = (
            profiles.load(profile_key(t.id, t.code_fingerprint)) if t.code_fingerprint else None
        )
        tail = earliest_tail(*(tails.get(u) for u in inputs.get(t.id, ())))
        tails[t.id] = earliest_tail(RunTail.of(profile, after_write=True), tail)
        upstream = lost_upstream(t.id)
        if profile is None:
            if not throughput.fresh:
                how = "by the job that writes it or as it is computed into the cache, "
                how += measured_first
            elif write_mode(throughput)[0] == "sync":
                how = "by the job that writes it (the root's writes are cheap)"
            else:
                how = "as it is computed into the cache"
            entry = {
                "task": t.id,
                "action": "at run",
                "source": "no profile",
                "reason": f"decided as it runs: if its plan runs Python code, measured {how}, "
                "else from the plan's statistics",
            }
        else:
            d = decide_before(
                t.id,
                profile=profile,
                stats=None,
                upstream_replay_s=upstream,
                throughput=throughput,
                min_replay_s=floor,
                tail=tail,
            )
            reason = d.reason
            if d.action == "fuse":
                own[t.id] = profile.compute_s
            elif throughput.fresh:
                reason += f"; {write_mode(throughput)[1]}"
            else:
                reason += f"; written sync or async {measured_first}"
            entry = {"task": t.id, "action": d.action, "source": d.source, "reason": reason}
        entry["last"] = last.get(t.id) or "-"
        out.append(entry)
    return out


def get_status(
    workflow_id: str, *, storage: str | None = None, spark: Any | None = None
) -> WorkflowStatus:
    """The status of a workflow: RUNNING, SUCCESSFUL, FAILED, RESUMABLE or CANCELED.

    A run whose driver died reads RESUMABLE, never RUNNING. Unknown ids raise
    :class:`WorkflowNotFoundError`.

    Example:
        >>> xf.get_status("sales-2026-11-24", storage="/data/exo")
        <WorkflowStatus.SUCCESSFUL: 'SUCCESSFUL'>
    """
    store = WorkflowStore(resolve_storage(storage), workflow_id, spark)
    return store.require_exists().status


def get_output(
    workflow_id: str,
    *,
    task: str | None = None,
    storage: str | None = None,
    spark: Any | None = None,
) -> Any:
    """The committed output of a task (default: the workflow's output task).

    DataFrames are read from the committed Delta version; values come from the log.

    Example:
        >>> xf.get_output("sales-2026-11-24", task="silver_orders").count()
    """
    store = WorkflowStore(resolve_storage(storage), workflow_id, spark)
    state = store.require_exists()
    if task is None:
        task = state.dag.output
    record = state.commits.get(task)
    if record is None:
        known = state.dag.ids
        raise TaskNotCommittedError(
            f"workflow [{workflow_id}] task [{task}] has no committed output"
            + ("" if task in known else f" (the workflow's tasks are {known})")
            + ": only checkpointed tasks (checkpoint=True/'async'), tasks returning values, "
            "and the output task keep their results; run or resume the workflow first"
        )
    spark_needed = record.kind == "dataframe"
    session = resolve_spark(spark) if spark_needed else spark
    return Ref.from_commit(task, record, session, store=store, verify=spark_needed).get()


@dataclass(frozen=True)
class WorkflowInfo:
    """One workflow, as listed by :func:`list_workflows`."""

    workflow_id: str
    status: WorkflowStatus
    runs: int
    started_at: float | None
    ended_at: float | None
    tasks: int
    committed: int


def list_workflows(*, storage: str | None = None, spark: Any | None = None) -> list[WorkflowInfo]:
    """Every workflow under the storage root, with its status.

    Example:
        >>> [w.workflow_id for w in xf.list_workflows(storage="/data/exo")]
    """
    root = resolve_storage(storage)
    out = []
    for wf in list_workflow_ids(root, spark):
        try:
            state = WorkflowStore(root, wf, spark).read_state()
        except WorkflowNotFoundError:  # pragma: no cover - raced with a delete
            continue
        if not state.exists:
            continue
        first, last = state.runs[0], state.runs[-1]
        out.append(
            WorkflowInfo(
                workflow_id=wf,
                status=state.status,
                runs=len(state.runs),
                started_at=first.started_at,
                ended_at=last.end.ended_at if last.end is not None else None,
                tasks=len(last.dag.tasks),
                committed=len(state.commits),
            )
        )
    return out
