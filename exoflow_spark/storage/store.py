"""The workflow log: the durable, append-only record of one workflow id.

Layout under the storage root (every name below ``<root>`` is validated first)::

    workflows/<wf>/log/runs/<n>.start.json          run n began: its DAG, owner, options
    workflows/<wf>/log/runs/<n>.heartbeat.json      owner liveness (overwritten every few s)
    workflows/<wf>/log/runs/<n>.end.json            run n ended: status, error
    workflows/<wf>/log/tasks/<task>/g<k>.commit.json    task committed (generation k)
    workflows/<wf>/log/tasks/<task>/g<k>.invalidated.json  generation k discarded
    workflows/<wf>/log/events/<n>-<seq>.<kind>.json     what happened (history, costs)
    workflows/<wf>/refs/<task>                      Delta table of the task's checkpoints
    workflows/<wf>/refs/<task>/_parquet/<random>    one checkpoint (checkpoint_format="parquet")

Every record is written once with create-if-absent, so records are never torn and never
overwritten (heartbeats excepted). A task is committed exactly when its commit record for the
current generation exists, and that record is written after its output is durable.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import psutil

from ..core.ids import validate_id, validate_storage_root
from ..core.redact import protect_loggers, redact, redact_record
from ..core.status import WorkflowStatus
from ..errors import ConcurrentRunError, InvalidIdError, StorageError, WorkflowNotFoundError
from .logfs import LogFS, open_logfs

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5.0
#: where a Parquet checkpoint lives inside its task's ref directory (see write_checkpoint)
_PARQUET_FOLDER = re.compile(r"/_parquet/[0-9a-f]{32}")
#: A run whose owner is on another host is presumed dead when its heartbeat is this old.
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


def this_owner() -> dict[str, Any]:
    """Who is running: host, pid and the pid's start time.

    ``pid_start`` keeps 0.1.0's format (ticks since boot on Linux, else None) so a 0.1.0 reader
    still recognises the owner; ``pid_created`` (seconds since the epoch) works on every platform.
    """
    pid = os.getpid()
    started = process_start_time(pid)
    return {
        "host": socket.gethostname(),
        "pid": pid,
        "pid_start": None if started is None else _boot_ticks(started),
        "pid_created": started,
    }


def _same_process(owner: dict[str, Any], started: float) -> bool | None:
    """Whether the live process that started at ``started`` is the recorded ``owner`` (the
    pid may have been recycled); None when the record holds no start time to compare."""
    ticks = owner.get("pid_start")
    if ticks is not None:
        mine = _boot_ticks(started)
        if mine is not None:
            return mine == str(ticks)
    created = owner.get("pid_created")
    if created is not None:
        return abs(float(created) - started) < _START_TIME_TOLERANCE_SECONDS
    return None


@dataclass
class RunInfo:
    """One run (one driver's attempt) of a workflow, as logged."""

    number: int
    start: dict[str, Any]
    end: dict[str, Any] | None = None
    heartbeat_at: float | None = None

    def owner_alive(self, now: float | None = None) -> bool:
        """Whether the driver that started this run still runs it."""
        if self.end is not None:
            return False
        owner = self.start.get("owner", {})
        if owner.get("host") == socket.gethostname() and owner.get("pid"):
            started = process_start_time(int(owner["pid"]))
            if started is None:
                return False
            same = _same_process(owner, started)
            if same is not None:
                return same
            # a record without a comparable start time (0.1.0 on a host without /proc): the
            # pid lives, but only a fresh heartbeat says it is still the driver
        last = self.heartbeat_at or float(self.start.get("started_at", 0))
        return ((now or time.time()) - last) < HEARTBEAT_TTL_SECONDS

    @property
    def status(self) -> WorkflowStatus:
        """This run's status: its end record, else RUNNING or RESUMABLE by liveness."""
        if self.end is not None:
            return WorkflowStatus(self.end["status"])
        return WorkflowStatus.RUNNING if self.owner_alive() else WorkflowStatus.RESUMABLE


@dataclass
class WorkflowState:
    """A snapshot of a workflow's log."""

    workflow_id: str
    runs: list[RunInfo] = field(default_factory=list)
    commits: dict[str, dict[str, Any]] = field(default_factory=dict)
    generations: dict[str, int] = field(default_factory=dict)

    @property
    def exists(self) -> bool:
        return bool(self.runs)

    @property
    def latest(self) -> RunInfo | None:
        return self.runs[-1] if self.runs else None

    @property
    def status(self) -> WorkflowStatus:
        return self.latest.status if self.latest else WorkflowStatus.PENDING

    def generation(self, task_id: str) -> int:
        return self.generations.get(task_id, 0)


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
        self._base = f"workflows/{self.workflow_id}"
        self._log = f"{self._base}/log"
        self._event_seq = 0
        self._lock = threading.Lock()

    # -- paths ---------------------------------------------------------------------------
    def ref_uri(self, task_id: str) -> str:
        """Where the Delta table of ``task_id``'s checkpoints lives."""
        return self.fs.uri(f"{self._base}/refs/{validate_id(task_id, kind='task id')}")

    def checkpoint_uri(self, task_id: str, record: dict[str, Any]) -> str:
        """The Delta table a commit record points at, for reading it back.

        Records hold the path with credentials redacted; the checkpoint table of a task under
        this storage root is rebuilt from the root instead, so restores work whatever the
        record holds. Other paths (a streaming task's own table) are used as recorded.
        """
        recorded = str(record.get("delta", {}).get("path", ""))
        own = self.ref_uri(task_id)
        if not recorded or recorded in (own, redact(own)):
            return own
        for prefix in (own, redact(own)):  # a Parquet checkpoint: a folder inside it
            rest = recorded[len(prefix) :]
            if recorded.startswith(prefix + "/") and _PARQUET_FOLDER.fullmatch(rest):
                return own + rest
        return recorded

    def stream_checkpoint_uri(self, task_id: str) -> str:
        """Where a streaming task's ``checkpointLocation`` lives."""
        return self.fs.uri(f"{self._base}/streams/{validate_id(task_id, kind='task id')}")

    # -- reading -------------------------------------------------------------------------
    def read_state(self) -> WorkflowState:
        """Read every run and commit record of this workflow."""
        state = WorkflowState(self.workflow_id)
        runs: dict[int, RunInfo] = {}
        for name in self.fs.list_files(f"{self._log}/runs"):
            number_s, kind, _ = ([*name.split("."), "", ""])[:3]
            if not number_s.isdigit():
                continue
            number = int(number_s)
            where = self.fs.uri(f"{self._log}/runs/{name}")
            if kind == "heartbeat":  # overwritten in place, not fsynced: may be torn
                rec = _loads_or_none(self.fs.get(f"{self._log}/runs/{name}"), where)
            else:
                rec = _loads(self.fs.get(f"{self._log}/runs/{name}"), where)
            if rec is None:
                continue
            if kind == "start":
                runs.setdefault(number, RunInfo(number, rec)).start = rec
            elif kind == "end":
                runs.setdefault(number, RunInfo(number, {})).end = rec
            elif kind == "heartbeat" and isinstance(rec.get("at"), (int, float)):
                runs.setdefault(number, RunInfo(number, {})).heartbeat_at = float(rec["at"])
        state.runs = [runs[k] for k in sorted(runs) if runs[k].start]
        task_files: dict[str, list[str]] = {}
        for name in self.fs.list_files(f"{self._log}/tasks"):
            task_id, _, fname = name.partition("/")
            task_files.setdefault(task_id, []).append(fname)
        for task_id, files in task_files.items():
            gen = 0
            for f in files:
                gen_s = f[1:].split(".")[0]
                if f.endswith(".invalidated.json") and f.startswith("g") and gen_s.isdigit():
                    gen = max(gen, int(gen_s) + 1)
            state.generations[task_id] = gen
            if f"g{gen}.commit.json" in files:
                rel = f"{self._log}/tasks/{task_id}/g{gen}.commit.json"
                rec = _loads(self.fs.get(rel), self.fs.uri(rel))
                if rec is not None:
                    state.commits[task_id] = rec
        return state

    def require_exists(self) -> WorkflowState:
        """Read the state, raising WorkflowNotFoundError (with no side effects) if absent."""
        state = self.read_state()
        if not state.exists:
            raise WorkflowNotFoundError(self.workflow_id, redact(self.storage))
        return state

    def events(self) -> list[dict[str, Any]]:
        """Every event record, in order."""
        out = []
        for name in self.fs.list_files(f"{self._log}/events"):
            rel = f"{self._log}/events/{name}"
            rec = _loads_or_none(self.fs.get(rel), self.fs.uri(rel))
            if rec is not None:
                out.append(rec)
        return out

    def done_tasks(self) -> set[str]:
        """Tasks that completed in some run without keeping their output (checkpoint=False):
        replayed, not run anew, when their output is needed again."""
        return {e["task"] for e in self.events() if e.get("kind") == "task_done"}

    # -- writing -------------------------------------------------------------------------

    def start_run(self, state: WorkflowState, record: dict[str, Any]) -> int:
        """Claim the next run number; refuse if a live driver holds the workflow."""
        latest = state.latest
        if latest is not None and latest.end is None and latest.owner_alive():
            owner = latest.start.get("owner", {})
            raise ConcurrentRunError(
                f"workflow [{self.workflow_id}] is being run by another live driver (host "
                f"{owner.get('host')}, pid {owner.get('pid')}, run {latest.number}); this "
                "driver will not write. Wait for it to finish, or stop it and re-run"
            )
        number = (latest.number + 1) if latest else 1
        full = {**record, "run": number, "owner": this_owner(), "started_at": time.time()}
        if not self.fs.put_if_absent(f"{self._log}/runs/{number:06d}.start.json", _dumps(full)):
            raise ConcurrentRunError(
                f"workflow [{self.workflow_id}]: another driver claimed run {number} at the "
                "same moment; this driver will not write. Check `exoflow-spark status`"
            )
        self.heartbeat(number)
        return number

    def heartbeat(self, run: int) -> None:
        self.fs.put(f"{self._log}/runs/{run:06d}.heartbeat.json", _dumps({"at": time.time()}))

    def end_run(self, run: int, status: WorkflowStatus, error: str | None = None) -> None:
        rec = {"status": status.value, "error": error, "ended_at": time.time()}
        self.fs.put_if_absent(f"{self._log}/runs/{run:06d}.end.json", _dumps(rec))

    def commit_task(self, task_id: str, generation: int, record: dict[str, Any]) -> None:
        """Write a task's commit record: the last step of committing it."""
        rec = {**record, "task": task_id, "generation": generation, "committed_at": time.time()}
        rel = f"{self._log}/tasks/{task_id}/g{generation}.commit.json"
        if not self.fs.put_if_absent(rel, _dumps(rec)):
            raise ConcurrentRunError(
                f"workflow [{self.workflow_id}] task [{task_id}] is already committed "
                f"(generation {generation}): another driver ran it concurrently; stopping"
            )

    def invalidate(self, task_ids: Iterable[str], state: WorkflowState, run: int) -> None:
        """Discard the current generation of each task (its commit, if any, no longer counts)."""
        for task_id in task_ids:
            gen = state.generation(task_id)
            self.fs.put_if_absent(
                f"{self._log}/tasks/{task_id}/g{gen}.invalidated.json",
                _dumps({"task": task_id, "generation": gen, "run": run, "at": time.time()}),
            )
            state.generations[task_id] = gen + 1
            state.commits.pop(task_id, None)

    def event(self, run: int, kind: str, /, **payload: Any) -> None:
        """Append an event (task done, failed, recovery decision, ...) to the log."""
        with self._lock:
            self._event_seq += 1
            seq = self._event_seq
        rec = {"run": run, "kind": kind, "at": time.time(), **payload}
        # events inform history and cost estimates; losing the last few to a crash is harmless,
        # so they skip the fsyncs that commit records pay for
        self.fs.put_if_absent(
            f"{self._log}/events/{run:06d}-{seq:06d}.{kind}.json", _dumps(rec), durable=False
        )


def list_workflow_ids(storage: str, spark: Any | None = None) -> list[str]:
    """Ids of every workflow under ``storage``."""
    fs = open_logfs(validate_storage_root(storage), spark)
    out = []
    for d in fs.list_dirs("workflows"):
        if d.startswith("."):
            continue
        try:
            out.append(validate_id(d, kind="workflow id"))
        except InvalidIdError:  # not made by exoflow-spark: never used as a path
            logger.warning("ignoring %r under the storage root's workflows/: not a valid id", d)
    return out


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
                self._store.heartbeat(self._run)
            except Exception:  # a missed heartbeat is not fatal; the next one may succeed
                logger.warning("[%s] heartbeat failed", self._store.workflow_id, exc_info=True)
