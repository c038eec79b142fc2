"""The workflow log: the durable, append-only record of one workflow id.

The files and where they live are described in :mod:`exoflow_spark.storage.layout` (which
builds every path); what each holds, in :mod:`exoflow_spark.core.records`. This module reads
them into typed records and appends them.

Every record is written once with create-if-absent, so records are never torn and never
overwritten (heartbeats excepted). A task is committed exactly when its commit record for the
current generation exists, and that record is written after its output is durable.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import psutil

from ..core.ids import validate_id, validate_storage_root
from ..core.records import (
    CommitRecord,
    DagRecord,
    EventKind,
    EventRecord,
    GcRecord,
    Invalidation,
    Owner,
    RunEnd,
    RunStart,
    event_kind,
    task_states,
)
from ..core.records import Heartbeat as HeartbeatRecord
from ..core.redact import protect_loggers, redact, redact_record
from ..core.status import TaskStatus, WorkflowStatus
from ..errors import ConcurrentRunError, InvalidIdError, StorageError, WorkflowNotFoundError
from . import layout
from .logfs import LogFS, open_logfs

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5.0
#: A run whose owner is on another host is presumed dead when its heartbeat record has not
#: changed for this long, as timed by the claiming driver's own monotonic clock (no two hosts'
#: wall clocks are ever compared to take a claim over; see :meth:`WorkflowStore.check_not_held`).
HEARTBEAT_TTL_SECONDS = 30.0


#: Record fields copied as they are: a task's returned value, a checkpoint's schema and its
#: data file names are data (redacting a column named ``password:hash`` in the schema would
#: make a restore read a column that does not exist: nulls).
_VERBATIM_FIELDS = frozenset({"value", "schema", "files"})


def _dumps(record: dict[str, Any]) -> bytes:
    """A log record as JSON, with credentials in URIs and messages redacted.

    The log is JSON only: nothing in it is ever unpickled or evaluated when read back.
    """
    clean = redact_record(record, keep=_VERBATIM_FIELDS)
    return json.dumps(clean, sort_keys=True, default=lambda o: redact(o)).encode()


def _loads(data: bytes | None, where: str) -> dict[str, Any] | None:
    if data is None:
        return None
    try:
        value = json.loads(data)
    except ValueError as exc:
        raise StorageError(
            f"log record {redact(where)} is corrupt ({exc}); it was not written whole by "
            "exoflow-spark or the storage lost data. Move it aside (or restore it from a "
            "backup) and re-run: that step is redone"
        ) from exc
    if not isinstance(value, dict):
        raise StorageError(
            f"log record {redact(where)} is not a JSON object; move it aside and re-run"
        )
    return value


def _loads_or_none(data: bytes | None, where: str) -> dict[str, Any] | None:
    """Like :func:`_loads` for records that are not fsynced (events, heartbeats): a torn one
    is what a machine crash can leave, so it is skipped with a warning instead of failing."""
    try:
        return _loads(data, where)
    except StorageError as exc:
        logger.warning("skipping unreadable log record: %s", exc)
        return None


#: Two readings of one process's start time (seconds since the epoch) further apart than this
#: are two processes: a recycled pid. Readings of one process agree to the clock tick, except
#: that Linux derives them from the boot time, which a clock adjustment can move by a second.
_START_TIME_TOLERANCE_SECONDS = 2.0
#: 0.1.0 recorded ``pid_start`` as the start time in clock ticks since boot, read from
#: ``/proc/<pid>/stat``; it is still written (and compared exactly) where that measure exists.
_BOOT_TICKS = sys.platform.startswith("linux")


def process_start_time(pid: int) -> float | None:
    """When ``pid`` started (seconds since the epoch, from psutil), or None if no such process.

    Works wherever psutil does (Linux, macOS, Windows), with or without ``/proc``.
    """
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return float(proc.create_time())
    except (psutil.Error, OSError, ValueError):
        return None


def _boot_ticks(started: float) -> str | None:
    """``started`` as 0.1.0 recorded it: clock ticks since boot (Linux only), else None."""
    if not _BOOT_TICKS:
        return None
    try:
        return str(round((started - psutil.boot_time()) * os.sysconf("SC_CLK_TCK")))
    except (psutil.Error, OSError, ValueError):
        return None


def this_owner() -> Owner:
    """Who is running: host, pid and the pid's start time.

    ``pid_start`` keeps 0.1.0's format (ticks since boot on Linux, else None) so a 0.1.0 reader
    still recognises the owner; ``pid_created`` (seconds since the epoch) works on every platform.
    """
    pid = os.getpid()
    started = process_start_time(pid)
    return Owner(
        socket.gethostname(),
        pid,
        pid_start=None if started is None else _boot_ticks(started),
        pid_created=started,
    )


def _same_process(owner: Owner, started: float) -> bool | None:
    """Whether the live process that started at ``started`` is the recorded ``owner`` (the
    pid may have been recycled); None when the record holds no start time to compare."""
    if owner.pid_start is not None:
        mine = _boot_ticks(started)
        if mine is not None:
            return mine == owner.pid_start
    if owner.pid_created is not None:
        return abs(owner.pid_created - started) < _START_TIME_TOLERANCE_SECONDS
    return None


@dataclass
class RunInfo:
    """One run (one driver's attempt) of a workflow, as logged."""

    number: int
    start: RunStart | None = None
    end: RunEnd | None = None
    heartbeat_at: float | None = None

    @property
    def dag(self) -> DagRecord:
        """The DAG this run ran (empty if its start record logged none)."""
        return self.start.dag if self.start is not None and self.start.dag else _NO_DAG

    @property
    def owner(self) -> Owner:
        return self.start.owner if self.start is not None else Owner()

    @property
    def started_at(self) -> float | None:
        return self.start.started_at if self.start is not None else None

    def local_owner_alive(self) -> bool | None:
        """Whether the owner lives, if this host can tell: the owner ran here and its record
        holds a start time to compare (so a recycled pid is not taken for it); else None."""
        if self.end is not None:
            return False
        owner = self.owner
        if owner.host != socket.gethostname() or not owner.pid:
            return None
        started = process_start_time(owner.pid)
        if started is None:
            return False
        return _same_process(owner, started)

    def owner_alive(self, now: float | None = None) -> bool:
        """Whether the driver that started this run still runs it (for display).

        On the owner's host this is exact (its pid and the pid's start time). For an owner on
        another host it is an estimate from the heartbeat's timestamp and this host's clock,
        which a skewed clock makes wrong: taking a claim over never relies on it (see
        :meth:`WorkflowStore.check_not_held`).
        """
        if self.end is not None:
            return False
        owner = self.owner
        if owner.host == socket.gethostname() and owner.pid:
            started = process_start_time(owner.pid)
            if started is None:
                return False
            same = _same_process(owner, started)
            if same is not None:
                return same
            # a record without a comparable start time (0.1.0 on a host without /proc): the
            # pid lives, but only a fresh heartbeat says it is still the driver
        last = self.heartbeat_at or self.started_at or 0.0
        return ((now or time.time()) - last) < HEARTBEAT_TTL_SECONDS

    @property
    def status(self) -> WorkflowStatus:
        """This run's status: its end record, else RUNNING or RESUMABLE by liveness."""
        if self.end is not None:
            return self.end.status
        return WorkflowStatus.RUNNING if self.owner_alive() else WorkflowStatus.RESUMABLE


_NO_DAG = DagRecord("")


@dataclass
class WorkflowState:
    """A snapshot of a workflow's log."""

    workflow_id: str
    runs: list[RunInfo] = field(default_factory=list)
    commits: dict[str, CommitRecord] = field(default_factory=dict)
    generations: dict[str, int] = field(default_factory=dict)

    @property
    def exists(self) -> bool:
        return bool(self.runs)

    @property
    def latest(self) -> RunInfo | None:
        return self.runs[-1] if self.runs else None

    @property
    def dag(self) -> DagRecord:
        """The DAG the latest run logged (empty if none)."""
        return self.latest.dag if self.latest else _NO_DAG

    @property
    def status(self) -> WorkflowStatus:
        return self.latest.status if self.latest else WorkflowStatus.PENDING

    def generation(self, task_id: str) -> int:
        return self.generations.get(task_id, 0)

    def task_states(
        self,
        events: Iterable[EventRecord] = (),
        *,
        dag: DagRecord | None = None,
        live: Mapping[str, TaskStatus] | None = None,
    ) -> dict[str, TaskStatus]:
        """Each task's display state (see :func:`exoflow_spark.core.records.task_states`),
        for ``dag`` (default: the latest run's)."""
        latest = self.latest
        return task_states(
            dag if dag is not None else self.dag,
            self.commits,
            events,
            latest_run=latest.number if latest else None,
            running=self.status is WorkflowStatus.RUNNING,
            live=live,
        )


class WorkflowStore:
    """Reads and appends the log of one workflow id under one storage root."""

    def __init__(
        self,
        storage: str,
        workflow_id: str,
        spark: Any | None = None,
        *,
        backend: str | None = None,
        fs: LogFS | None = None,
    ) -> None:
        self.workflow_id = validate_id(workflow_id, kind="workflow id")
        self.storage = validate_storage_root(storage)
        protect_loggers()
        self.fs: LogFS = fs or open_logfs(storage, spark, backend)
        self._event_seq = 0
        self._lock = threading.Lock()
        self._done: set[str] | None = None  # see done_tasks
        #: the run this store claimed (set by start_run): its commits are fenced against a
        #: takeover (see commit_task)
        self._run: int | None = None
        #: runs check_not_held found abandoned (a foreign claim is observed only once)
        self._lapsed: set[int] = set()

    # -- paths ---------------------------------------------------------------------------
    def ref_uri(self, task_id: str) -> str:
        """Where the Delta table of ``task_id``'s checkpoints lives."""
        return self.fs.uri(layout.ref_dir(self.workflow_id, task_id))

    def table_uri(self, table: str) -> str:
        """A table listed by :meth:`tables` (a task's, or an iterate scratch table)."""
        return self.fs.uri(layout.table_dir(self.workflow_id, table))

    def tables(self) -> list[str]:
        """Names of the tables under this workflow's ``refs/``."""
        return self.fs.list_dirs(layout.refs_dir(self.workflow_id))

    def iterations_uri(self, task_id: str) -> str:
        """Where ``xf.iterate`` keeps the scratch table of ``task_id``."""
        return self.fs.uri(layout.iterations_dir(self.workflow_id, task_id))

    def checkpoint_uri(self, task_id: str, record: CommitRecord) -> str:
        """The Delta table a commit record points at, for reading it back.

        The checkpoint of a task of this workflow is rebuilt from this store's root, whatever
        root the record names: records hold paths with credentials redacted, and a storage
        root copied or moved elsewhere (another bucket, a restored backup) still resumes.
        Other paths (a streaming task's own table) are used as recorded.
        """
        recorded = record.checkpoint.path if record.checkpoint is not None else ""
        own = self.ref_uri(task_id)
        if not recorded or recorded in (own, redact(own)):
            return own
        tail = "/" + layout.ref_dir(self.workflow_id, task_id)
        if recorded.endswith(tail):  # the same checkpoint under another (or redacted) root
            return own
        head, sep, rest = recorded.rpartition(tail + "/")
        if sep and head and layout.PARQUET_CHECKPOINT.fullmatch("/" + rest):
            return f"{own}/{rest}"  # a Parquet checkpoint: a folder inside it
        return recorded

    def stream_checkpoint_uri(self, task_id: str) -> str:
        """Where a streaming task's ``checkpointLocation`` lives."""
        return self.fs.uri(layout.stream_dir(self.workflow_id, task_id))

    def shared_stream_uris(self, stream_name: str) -> tuple[str, str]:
        """``(checkpointLocation, default table)`` of a stream shared by several workflows."""
        return (
            self.fs.uri(layout.shared_stream_checkpoint(stream_name)),
            self.fs.uri(layout.shared_stream_table(stream_name)),
        )

    # -- reading -------------------------------------------------------------------------
    def read_state(self) -> WorkflowState:
        """Read every run and commit record of this workflow.

        Raises:
            StorageError: a record is corrupt.
            LogSchemaError: a record was written by a newer exoflow-spark.
        """
        wf = self.workflow_id
        state = WorkflowState(wf)
        runs: dict[int, RunInfo] = {}
        runs_dir = layout.runs_dir(wf)
        for name in self.fs.list_files(runs_dir):
            parsed = layout.parse_run_record(name)
            if parsed is None:
                continue
            number, kind = parsed
            rel = layout.run_record(wf, number, kind)
            where = self.fs.uri(rel)
            if kind == "heartbeat":  # overwritten in place, not fsynced: may be torn
                rec = _loads_or_none(self.fs.get(rel), where)
            else:
                rec = _loads(self.fs.get(rel), where)
            if rec is None:
                continue
            run = runs.setdefault(number, RunInfo(number))
            if kind == "start":
                run.start = RunStart.from_json(rec)
            elif kind == "end":
                run.end = RunEnd.from_json(rec)
            else:
                run.heartbeat_at = HeartbeatRecord.from_json(rec).at
        state.runs = [runs[k] for k in sorted(runs) if runs[k].start is not None]
        task_files: dict[str, list[str]] = {}
        tasks_dir = layout.tasks_dir(wf)
        for name in self.fs.list_files(tasks_dir):
            task_id, _, fname = name.partition("/")
            task_files.setdefault(task_id, []).append(fname)
        for task_id, files in task_files.items():
            gen = 0
            for f in files:
                discarded = layout.parse_invalidation(f)
                if discarded is not None:
                    gen = max(gen, discarded + 1)
            state.generations[task_id] = gen
            if layout.commit_name(gen) in files:
                rel = f"{tasks_dir}/{task_id}/{layout.commit_name(gen)}"
                rec = _loads(self.fs.get(rel), self.fs.uri(rel))
                if rec is not None:
                    state.commits[task_id] = CommitRecord.from_json(rec)
        return state

    def require_exists(self) -> WorkflowState:
        """Read the state, raising WorkflowNotFoundError (with no side effects) if absent."""
        state = self.read_state()
        if not state.exists:
            raise WorkflowNotFoundError(self.workflow_id, redact(self.storage))
        return state

    def events(self, *kinds: EventKind) -> list[EventRecord]:
        """Every event record (only those of ``kinds``, if given), in order.

        Events of kinds this release does not know are included (unless ``kinds`` is given).

        Raises:
            LogSchemaError: an event was written by a newer exoflow-spark.
        """
        out = []
        base = layout.events_dir(self.workflow_id)
        for name in self.fs.list_files(base):
            rel = f"{base}/{name}"
            rec = _loads_or_none(self.fs.get(rel), self.fs.uri(rel))
            if rec is None:
                continue
            event = EventRecord.from_json(rec)
            if not kinds or event.kind in kinds:
                out.append(event)
        return out

    def done_tasks(self) -> set[str]:
        """Tasks that completed in some run without keeping their output (checkpoint=False):
        replayed, not run anew, when their output is needed again.

        Read once per store (every event is read, so a log written by a newer exoflow-spark
        is refused here), then kept up to date by :meth:`event`.
        """
        with self._lock:
            if self._done is not None:
                return set(self._done)
        done = {e.task for e in self.events(EventKind.TASK_DONE) if e.task is not None}
        with self._lock:
            self._done = done
            return set(done)

    def gc_records(self) -> list[GcRecord]:
        """What garbage collection deleted from this workflow, oldest first."""
        out = []
        base = layout.gc_dir(self.workflow_id)
        for name in self.fs.list_files(base):
            rel = f"{base}/{name}"
            rec = _loads_or_none(self.fs.get(rel), self.fs.uri(rel))
            if rec is not None:
                out.append(GcRecord.from_json(rec))
        return out

    # -- writing -------------------------------------------------------------------------

    def check_not_held(self, state: WorkflowState) -> None:
        """Refuse, writing nothing, if a live driver holds the workflow (its latest run has no
        end record and its owner lives). Called before any other check of a run, so a second
        driver hears first that the workflow is busy.

        The owner's liveness is decided without comparing wall clocks of two hosts:

        * owner on this host: its pid runs and started when the record says (exact);
        * owner on another host (or a record without a start time to compare): its heartbeat
          record is watched for up to :data:`HEARTBEAT_TTL_SECONDS` of this process's
          monotonic clock. A live owner rewrites it every :data:`HEARTBEAT_SECONDS`, so a
          change means alive; no change for the whole window means the claim lapsed. The
          timestamps inside the record are never compared with this host's clock.

        Raises:
            ConcurrentRunError: naming the owner (host, pid, run, since when).
        """
        latest = state.latest
        if latest is None or latest.end is not None or latest.number in self._lapsed:
            return
        alive = latest.local_owner_alive()
        if alive is None:
            alive = self._heartbeat_changes(latest)
        if alive:
            raise ConcurrentRunError(self._held_message(latest))
        self._lapsed.add(latest.number)

    def _held_message(self, run: RunInfo) -> str:
        owner = run.owner
        since = (
            time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(run.started_at))
            if run.started_at
            else "an unknown time"
        )
        return (
            f"workflow [{self.workflow_id}] is being run by another live driver (host "
            f"{owner.host}, pid {owner.pid}, run {run.number}, since {since} by its clock); "
            "this driver will not write. Wait for it to finish (`exoflow-spark status "
            f"{self.workflow_id}`), or stop it and re-run"
        )

    def _heartbeat_changes(self, run: RunInfo) -> bool:
        """Watch run ``run``'s heartbeat record (see :meth:`check_not_held`): True as soon as
        it changes (or another driver claims a later run), False if it ends or stays the same
        for :data:`HEARTBEAT_TTL_SECONDS` of this process's monotonic clock."""
        wf = self.workflow_id
        beat = layout.run_record(wf, run.number, "heartbeat")
        end = layout.run_record(wf, run.number, "end")
        after = layout.run_record(wf, run.number + 1, "start")
        first = self.fs.get(beat)
        ttl = HEARTBEAT_TTL_SECONDS
        logger.info(
            "[%s] run %d is held by a driver on host %s: watching its heartbeat for up to "
            "%.0f s to see whether it is still alive",
            wf,
            run.number,
            run.owner.host,
            ttl,
        )
        deadline = time.monotonic() + ttl
        while True:
            time.sleep(min(1.0, ttl / 10))
            if self.fs.exists(end):
                return False
            if self.fs.exists(after) or self.fs.get(beat) != first:
                return True
            if time.monotonic() >= deadline:
                logger.warning(
                    "[%s] run %d (host %s, pid %s): its heartbeat has not changed for %.0f s; "
                    "its driver is taken to be dead",
                    wf,
                    run.number,
                    run.owner.host,
                    run.owner.pid,
                    ttl,
                )
                return False

    def start_run(
        self,
        state: WorkflowState,
        dag: DagRecord,
        *,
        invalidate: Iterable[str] = (),
        launch: Mapping[str, Any] | None = None,
    ) -> int:
        """Claim the next run number; refuse if a live driver holds the workflow (see
        :meth:`check_not_held`) or another driver claims the same number at once."""
        self.check_not_held(state)
        latest = state.latest
        number = (latest.number + 1) if latest else 1
        record = RunStart(
            run=number,
            dag=dag,
            invalidate=tuple(invalidate),
            launch=launch,
            owner=this_owner(),
            started_at=time.time(),
        )
        rel = layout.run_record(self.workflow_id, number, "start")
        if not self.fs.put_if_absent(rel, _dumps(record.to_json())):
            raise ConcurrentRunError(
                f"workflow [{self.workflow_id}]: another driver claimed run {number} at the "
                "same moment; this driver will not write. Check `exoflow-spark status`"
            )
        self._run = number
        self.heartbeat(number)
        return number

    def taken_over(self, run: int) -> RunInfo | None:
        """The later run that took this workflow over from run ``run``, if one started (a
        driver whose heartbeat stalled past the TTL, e.g. a long GC pause, and lost its
        claim), else None."""
        rel = layout.run_record(self.workflow_id, run + 1, "start")
        rec = _loads_or_none(self.fs.get(rel), self.fs.uri(rel))
        return None if rec is None else RunInfo(run + 1, RunStart.from_json(rec))

    def heartbeat(self, run: int) -> None:
        rel = layout.run_record(self.workflow_id, run, "heartbeat")
        self.fs.put(rel, _dumps(HeartbeatRecord(time.time()).to_json()))

    def end_run(self, run: int, status: WorkflowStatus, error: str | None = None) -> None:
        rec = RunEnd(status, error, time.time())
        rel = layout.run_record(self.workflow_id, run, "end")
        self.fs.put_if_absent(rel, _dumps(rec.to_json()))

    def commit_task(self, task_id: str, generation: int, record: CommitRecord) -> CommitRecord:
        """Write a task's commit record: the last step of committing it.

        Returns the record as written (stamped with the task, generation and time).
        """
        if self._run is not None:
            # fencing: a driver that lost its claim (its heartbeat stalled past the TTL and
            # another driver started a later run) commits nothing more
            later = self.taken_over(self._run)
            if later is not None:
                owner = later.owner
                raise ConcurrentRunError(
                    f"workflow [{self.workflow_id}] task [{task_id}]: this driver's run "
                    f"{self._run} was taken over by run {later.number} (host {owner.host}, "
                    f"pid {owner.pid}) while its heartbeat was stalled; this driver stops "
                    "without committing. The other driver finishes the workflow"
                )
        rec = replace(record, task=task_id, generation=generation, committed_at=time.time())
        rel = layout.commit_record(self.workflow_id, task_id, generation)
        if not self.fs.put_if_absent(rel, _dumps(rec.to_json())):
            raise ConcurrentRunError(
                f"workflow [{self.workflow_id}] task [{task_id}] is already committed "
                f"(generation {generation}): another driver ran it concurrently; stopping"
            )
        return rec

    def invalidate(self, task_ids: Iterable[str], state: WorkflowState, run: int) -> None:
        """Discard the current generation of each task (its commit, if any, no longer counts).

        ``task_ids`` come in DAG (topological) order and are written in reverse, downstream
        first: a driver killed part-way leaves only downstream tasks invalidated, which the
        next run recomputes from their still-committed inputs. Upstream first would leave a
        commit built from an input that no longer counts, restored as if still valid.
        """
        for task_id in reversed(list(task_ids)):
            gen = state.generation(task_id)
            rec = Invalidation(task_id, gen, run, time.time())
            self.fs.put_if_absent(
                layout.invalidation_record(self.workflow_id, task_id, gen),
                _dumps(rec.to_json()),
            )
            state.generations[task_id] = gen + 1
            state.commits.pop(task_id, None)

    def event(self, run: int, kind: EventKind, /, **payload: Any) -> None:
        """Append an event (task done, failed, recovery decision, ...) to the log.

        Raises:
            LogSchemaError: ``kind`` is not an :class:`EventKind`.
        """
        known = event_kind(kind)
        task = payload.pop("task", None)
        with self._lock:
            self._event_seq += 1
            seq = self._event_seq
            if known is EventKind.TASK_DONE and self._done is not None and task is not None:
                self._done.add(str(task))
        data = {k: v for k, v in payload.items() if k not in ("run", "kind", "at")}
        rec = EventRecord(run, known, time.time(), task, data)
        # events inform history and cost estimates; losing the last few to a crash is harmless,
        # so they skip the fsyncs that commit records pay for
        self.fs.put_if_absent(
            layout.event_record(self.workflow_id, run, seq, known.value),
            _dumps(rec.to_json()),
            durable=False,
        )

    def record_gc(self, deleted: Iterable[Mapping[str, Any]]) -> None:
        """Log the checkpoint tables garbage collection deleted (credentials redacted)."""
        rec = GcRecord(time.time(), tuple(dict(i) for i in deleted))
        rel = layout.gc_record(self.workflow_id, time.time(), uuid.uuid4().hex[:8])
        self.fs.put_if_absent(rel, _dumps(rec.to_json()))


def list_workflow_ids(storage: str, spark: Any | None = None) -> list[str]:
    """Ids of every workflow under ``storage``."""
    fs = open_logfs(validate_storage_root(storage), spark)
    out = []
    for d in fs.list_dirs(layout.WORKFLOWS):
        if d.startswith("."):
            continue
        try:
            out.append(validate_id(d, kind="workflow id"))
        except InvalidIdError:  # not made by exoflow-spark: never used as a path
            logger.warning("ignoring %r under the storage root's workflows/: not a valid id", d)
    return out


def storage_exists(storage: str, spark: Any | None = None) -> bool:
    """Whether ``storage`` holds exoflow-spark data (its ``workflows/`` folder exists)."""
    return open_logfs(validate_storage_root(storage), spark).exists(layout.WORKFLOWS)


class Heartbeat:
    """Refreshes a run's heartbeat record from a daemon thread until stopped."""

    def __init__(self, store: WorkflowStore, run: int, interval: float = HEARTBEAT_SECONDS) -> None:
        self._store, self._run, self._interval = store, run, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name=f"exoflow-heartbeat-{run}", daemon=True
        )

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                later = self._store.taken_over(self._run)
                if later is not None:
                    logger.error(
                        "[%s] run %d was taken over by run %d (host %s, pid %s): this driver's "
                        "heartbeat stalled past the TTL; it will commit nothing more",
                        self._store.workflow_id,
                        self._run,
                        later.number,
                        later.owner.host,
                        later.owner.pid,
                    )
                    return
                self._store.heartbeat(self._run)
            except Exception:  # a missed heartbeat is not fatal; the next one may succeed
                logger.warning("[%s] heartbeat failed", self._store.workflow_id, exc_info=True)
