"""The workflow log's records, typed and versioned: what each log file holds.

Every record is a frozen dataclass with one reader, ``from_json(dict)``, which accepts every
shape exoflow-spark has written (old-shape fallbacks live here and nowhere else), and one
writer, ``to_json()``, which writes today's shape plus ``"schema": SCHEMA_VERSION``.

Versions:

* **1** (no ``"schema"`` field): what release 0.1.0 wrote.
* **2**: the same fields, plus ``"schema": 2`` in every record.

A record with a schema newer than :data:`SCHEMA_VERSION` was written by a newer
exoflow-spark; reading it raises :class:`~exoflow_spark.errors.LogSchemaError` (so nothing is
planned or written on a log this version does not understand).

Keys a reader does not know are kept in ``extra`` and written back unchanged.

Pure Python: no pyspark.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal, TypeVar, cast

from ..errors import LogSchemaError
from .status import TaskStatus, WorkflowStatus

#: The schema version of every record this release writes.
SCHEMA_VERSION = 2

CommitKind = Literal["none", "value", "dataframe"]
CommitMode = Literal["sync", "async", "stream"]

_R = TypeVar("_R")


def schema_of(doc: Mapping[str, Any], what: str = "log record") -> int:
    """The schema version of a record read from the log (1 when it has none).

    Raises:
        LogSchemaError: the record was written by a newer exoflow-spark, or its schema field
            is not a version number.
    """
    raw = doc.get("schema", 1)
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        raise LogSchemaError(
            f"{what} has schema {raw!r}, which is not a schema version; the log was altered. "
            "Restore the file from a backup, or move it aside and re-run"
        )
    if raw > SCHEMA_VERSION:
        raise LogSchemaError(
            f"{what} was written with log schema {raw}, but this exoflow-spark reads schemas up "
            f"to {SCHEMA_VERSION}: upgrade exoflow-spark (pip install -U exoflow-spark) to read "
            "or resume this workflow. Nothing was written"
        )
    return raw


def _extra(doc: Mapping[str, Any], known: Iterable[str]) -> dict[str, Any]:
    names = set(known) | {"schema"}
    return {k: v for k, v in doc.items() if k not in names}


def _known(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)} - {"extra", "schema"}


def _tuple(value: Any) -> tuple[str, ...]:
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value)
    return ()


def _float(value: Any, default: float | None = None) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    return float(value)


def _int(value: Any, default: int | None = None) -> int | None:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return default


def _versioned(body: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    return {**extra, **body, "schema": SCHEMA_VERSION}


# -- the logged DAG ------------------------------------------------------------------------
@dataclass(frozen=True)
class TaskRecord:
    """One task of a logged DAG (``Dag.to_record()``)."""

    id: str
    upstream: tuple[str, ...] = ()
    function: str = "?"
    #: the task's ``checkpoint`` option as given: True, False, ``"async"`` or ``"auto"``
    checkpoint: Any = False
    deterministic: bool = True
    max_retries: int = 0
    retry_exceptions: bool = False
    catch_exceptions: bool = False
    wait_until_committed: tuple[str, ...] = ()
    #: tasks that must be committed before this one starts (its own and inherited waits)
    waits: tuple[str, ...] = ()
    sink: bool = False
    streaming: bool = False
    code_fingerprint: str | None = None
    fingerprint: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> TaskRecord:
        wait_until = _tuple(doc.get("wait_until_committed"))
        return cls(
            id=str(doc["id"]),
            upstream=_tuple(doc.get("upstream")),
            function=str(doc.get("function", "?")),
            checkpoint=doc.get("checkpoint", False),
            deterministic=bool(doc.get("deterministic", True)),
            max_retries=_int(doc.get("max_retries"), 0) or 0,
            retry_exceptions=bool(doc.get("retry_exceptions", False)),
            catch_exceptions=bool(doc.get("catch_exceptions", False)),
            wait_until_committed=wait_until,
            # records older than inherited waits listed only the task's own
            waits=_tuple(doc["waits"]) if "waits" in doc else wait_until,
            sink=bool(doc.get("sink", False)),
            streaming=bool(doc.get("streaming", False)),
            code_fingerprint=doc.get("code_fingerprint"),
            fingerprint=doc.get("fingerprint"),
            extra=_extra(doc, _known(cls)),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            **self.extra,
            "id": self.id,
            "function": self.function,
            "upstream": list(self.upstream),
            "checkpoint": self.checkpoint,
            "deterministic": self.deterministic,
            "max_retries": self.max_retries,
            "retry_exceptions": self.retry_exceptions,
            "catch_exceptions": self.catch_exceptions,
            "wait_until_committed": list(self.wait_until_committed),
            "waits": list(self.waits),
            "sink": self.sink,
            "streaming": self.streaming,
            "code_fingerprint": self.code_fingerprint,
            "fingerprint": self.fingerprint,
        }

    @property
    def checkpoint_mode(self) -> str:
        """How the task's output is written: ``"sync"``, ``"async"`` or ``"none"``."""
        if self.checkpoint is True:
            return "sync"
        return "async" if self.checkpoint in ("async", "auto") else "none"


@dataclass(frozen=True)
class DagRecord:
    """A DAG as logged with each run: its output task and its tasks, upstream first."""

    output: str
    tasks: tuple[TaskRecord, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> DagRecord:
        return cls(
            output=str(doc.get("output", "")),
            tasks=tuple(TaskRecord.from_json(t) for t in doc.get("tasks") or ()),
            extra=_extra(doc, _known(cls)),
        )

    @classmethod
    def of(cls, graph: DagRecord | Mapping[str, Any]) -> DagRecord:
        """``graph`` as a DagRecord (``Dag.to_record()`` gives a JSON dict)."""
        return graph if isinstance(graph, DagRecord) else cls.from_json(graph)

    def to_json(self) -> dict[str, Any]:
        return {**self.extra, "output": self.output, "tasks": [t.to_json() for t in self.tasks]}

    @property
    def ids(self) -> list[str]:
        """Task ids, upstream first."""
        return [t.id for t in self.tasks]

    @property
    def by_id(self) -> dict[str, TaskRecord]:
        return {t.id: t for t in self.tasks}

    def task(self, task_id: str) -> TaskRecord:
        for t in self.tasks:
            if t.id == task_id:
                return t
        raise KeyError(task_id)

    def __bool__(self) -> bool:
        return bool(self.tasks)

    def differences(self, other: DagRecord) -> list[str]:
        """How ``other`` differs from this DAG in shape: its output, its task ids and each
        task's inputs (code, arguments and options are not compared here: committed tasks'
        fingerprints cover those). Empty when the shapes are the same.

        Example:
            >>> DagRecord("a").differences(DagRecord("b"))
            ['output [a] is now [b]']
        """
        out = []
        if self.output != other.output:
            out.append(f"output [{self.output}] is now [{other.output}]")
        mine, theirs = self.by_id, other.by_id
        gone = [t for t in mine if t not in theirs]
        new = [t for t in theirs if t not in mine]
        if gone:
            out.append(f"task(s) {_names(gone)} of the logged DAG are not in this one")
        if new:
            out.append(f"task(s) {_names(new)} are new")
        for tid, task in theirs.items():
            if tid in mine and mine[tid].upstream != task.upstream:
                out.append(
                    f"task [{tid}] reads {_names(task.upstream) or 'nothing'} instead of "
                    f"{_names(mine[tid].upstream) or 'nothing'}"
                )
        return out


def _names(ids: Iterable[str]) -> str:
    return ", ".join(f"[{t}]" for t in ids)


# -- runs ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Owner:
    """The driver process that started a run."""

    host: str | None = None
    pid: int | None = None
    #: ``pid``'s start in clock ticks since boot, as 0.1.0 read it from ``/proc`` (Linux
    #: only; guards against pid reuse)
    pid_start: str | None = None
    #: ``pid``'s start in seconds since the epoch (any platform; absent in 0.1.0's records)
    pid_created: float | None = None

    @classmethod
    def from_json(cls, doc: Any) -> Owner:
        if not isinstance(doc, Mapping):
            return cls()
        ps = doc.get("pid_start")
        created = doc.get("pid_created")
        return cls(
            host=None if doc.get("host") is None else str(doc["host"]),
            pid=_int(doc.get("pid")),
            pid_start=None if ps is None else str(ps),
            pid_created=float(created) if isinstance(created, (int, float)) else None,
        )

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"host": self.host, "pid": self.pid, "pid_start": self.pid_start}
        if self.pid_created is not None:
            doc["pid_created"] = self.pid_created
        return doc


@dataclass(frozen=True)
class RunStart:
    """``log/runs/<n>.start.json``: run n began, with the DAG it runs."""

    run: int | None
    dag: DagRecord | None = None
    #: tasks invalidated by request when the run started (with their descendants)
    invalidate: tuple[str, ...] = ()
    #: how the driver was started (for ``exoflow-spark resume``)
    launch: Mapping[str, Any] | None = None
    owner: Owner = field(default_factory=Owner)
    started_at: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> RunStart:
        schema_of(doc, "a run start record")
        dag = doc.get("dag")
        launch = doc.get("launch")
        return cls(
            run=_int(doc.get("run")),
            dag=DagRecord.from_json(dag) if isinstance(dag, Mapping) and dag else None,
            invalidate=_tuple(doc.get("invalidate")),
            launch=dict(launch) if isinstance(launch, Mapping) else None,
            owner=Owner.from_json(doc.get("owner")),
            started_at=_float(doc.get("started_at")),
            extra=_extra(doc, _known(cls)),
        )

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "dag": None if self.dag is None else self.dag.to_json(),
            "invalidate": list(self.invalidate),
            "launch": None if self.launch is None else dict(self.launch),
            "run": self.run,
            "owner": self.owner.to_json(),
            "started_at": self.started_at,
        }
        return _versioned(body, self.extra)


@dataclass(frozen=True)
class RunEnd:
    """``log/runs/<n>.end.json``: run n ended."""

    status: WorkflowStatus
    error: str | None = None
    ended_at: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> RunEnd:
        schema_of(doc, "a run end record")
        try:
            status = WorkflowStatus(doc.get("status"))
        except ValueError as exc:
            raise LogSchemaError(
                f"a run end record has status {doc.get('status')!r}, which is not a workflow "
                "status; the log was altered. Restore it from a backup, or move it aside "
                "(the run then reads as RESUMABLE)"
            ) from exc
        err = doc.get("error")
        return cls(
            status=status,
            error=None if err is None else str(err),
            ended_at=_float(doc.get("ended_at")),
            extra=_extra(doc, _known(cls)),
        )

    def to_json(self) -> dict[str, Any]:
        body = {"status": self.status.value, "error": self.error, "ended_at": self.ended_at}
        return _versioned(body, self.extra)


@dataclass(frozen=True)
class Heartbeat:
    """``log/runs/<n>.heartbeat.json``: the run's owner was alive at ``at``."""

    at: float | None

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Heartbeat:
        schema_of(doc, "a heartbeat record")
        return cls(_float(doc.get("at")))

    def to_json(self) -> dict[str, Any]:
        return _versioned({"at": self.at}, {})


# -- task commits --------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckpointRecord:
    """Where a committed DataFrame output lives (the commit record's ``"delta"`` entry)."""

    path: str
    #: the Delta table version (a Parquet checkpoint, written once, records 0)
    version: int = 0
    bytes: int = 0
    rows: int = 0
    write_seconds: float = 0.0
    #: the data files of the version, plain names inside ``path`` (None: not recorded)
    files: tuple[str, ...] | None = None
    #: the DataFrame's schema as a DDL/JSON string (recorded with ``files``)
    schema: str | None = None
    format: str = "delta"
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> CheckpointRecord:
        files = doc.get("files")
        schema = doc.get("schema")
        return cls(
            path=str(doc.get("path", "")),
            version=_int(doc.get("version"), 0) or 0,
            bytes=_int(doc.get("bytes"), 0) or 0,
            rows=_int(doc.get("rows"), 0) or 0,
            write_seconds=_float(doc.get("write_seconds"), 0.0) or 0.0,
            files=tuple(str(f) for f in files) if isinstance(files, list) else None,
            schema=str(schema) if schema else None,
            format=str(doc.get("format") or "delta"),
            extra=_extra(doc, _known(cls)),
        )

    @classmethod
    def from_version(cls, dv: Any) -> CheckpointRecord:
        """The record of a written checkpoint (a ``storage.checkpoints.DeltaVersion``)."""
        return cls(
            path=str(dv.path),
            version=int(dv.version),
            bytes=int(dv.num_bytes),
            rows=int(dv.num_rows),
            write_seconds=float(dv.write_seconds),
            files=None if dv.files is None else tuple(dv.files),
            schema=dv.schema if dv.files is not None else None,
            format=str(dv.format),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            **self.extra,
            "path": self.path,
            "version": self.version,
            "bytes": self.bytes,
            "rows": self.rows,
            "write_seconds": self.write_seconds,
        }
        if self.files is not None:
            out["files"] = list(self.files)
            out["schema"] = self.schema
        if self.format != "delta":
            out["format"] = self.format
        return out

    def label(self, *, with_format: bool = False) -> str:
        """How the checkpoint is named to people: ``"v3"`` for a version of the task's Delta
        table (``"delta v3"`` with the format), ``"parquet"`` for a Parquet checkpoint (a
        folder written once: it has no version)."""
        if self.format == "parquet":
            return "parquet"
        return f"{'delta ' if with_format else ''}v{self.version}"


@dataclass(frozen=True)
class CommitRecord:
    """``log/tasks/<task>/g<k>.commit.json``: the task's output is durable (generation k).

    ``kind`` says what the output is: ``"dataframe"`` (in ``checkpoint``, written ``mode``
    sync, async or by a stream), ``"value"`` (a small JSON value, inline in ``value``) or
    ``"none"``. The other fields say how it was produced.
    """

    kind: CommitKind
    mode: CommitMode | None = None
    checkpoint: CheckpointRecord | None = None
    value: Any = None
    task: str | None = None
    generation: int = 0
    fingerprint: str | None = None
    compute_seconds: float = 0.0
    run: int | None = None
    attempts: int = 1
    #: the task wrote to a sink (write_delta) before committing
    sink: bool = False
    #: nondeterministic outputs, not durable yet, that the task read
    observed_volatile: tuple[str, ...] = ()
    #: wall clock: the producing attempt's start, its output handed on, the commit
    started_at: float | None = None
    output_at: float | None = None
    committed_at: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def none(cls) -> CommitRecord:
        """The commit of a task that returned None."""
        return cls("none")

    @classmethod
    def of_value(cls, value: Any) -> CommitRecord:
        """The commit of a task that returned a small JSON value."""
        return cls("value", value=value)

    @classmethod
    def of_checkpoint(cls, dv: Any, mode: CommitMode) -> CommitRecord:
        """The commit of a DataFrame written as ``dv`` (a ``DeltaVersion``)."""
        return cls("dataframe", mode=mode, checkpoint=CheckpointRecord.from_version(dv))

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> CommitRecord:
        task = doc.get("task")
        where = "a commit record" if task is None else f"the commit record of task [{task}]"
        schema_of(doc, where)
        kind = doc.get("kind")
        delta = doc.get("delta")
        if kind not in ("none", "value", "dataframe"):
            # the oldest records had no kind: a checkpoint entry means a DataFrame
            kind = (
                "dataframe" if isinstance(delta, Mapping) else "value" if "value" in doc else "none"
            )
        if kind == "dataframe" and not isinstance(delta, Mapping):
            raise LogSchemaError(
                f"{where} is a DataFrame commit without a checkpoint entry; the log was "
                "altered. Restore it from a backup, or re-run the task with "
                "xf.run(..., invalidate=[...])"
            )
        mode = doc.get("mode")
        return cls(
            kind=cast(CommitKind, kind),
            mode=mode if mode in ("sync", "async", "stream") else None,
            checkpoint=CheckpointRecord.from_json(delta) if isinstance(delta, Mapping) else None,
            value=doc.get("value"),
            task=None if task is None else str(task),
            generation=_int(doc.get("generation"), 0) or 0,
            fingerprint=doc.get("fingerprint"),
            compute_seconds=_float(doc.get("compute_seconds"), 0.0) or 0.0,
            run=_int(doc.get("run")),
            attempts=_int(doc.get("attempts"), 1) or 1,
            sink=bool(doc.get("sink", False)),
            observed_volatile=_tuple(doc.get("observed_volatile")),
            started_at=_float(doc.get("started_at")),
            output_at=_float(doc.get("output_at")),
            committed_at=_float(doc.get("committed_at")),
            extra=_extra(doc, _known(cls) - {"checkpoint"} | {"delta"}),
        )

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": self.kind}
        if self.kind == "value":
            body["value"] = self.value
        if self.kind == "dataframe":
            body["mode"] = self.mode
            body["delta"] = None if self.checkpoint is None else self.checkpoint.to_json()
        if self.task is not None:  # stamped by the store when written
            body.update(task=self.task, generation=self.generation)
        body.update(
            fingerprint=self.fingerprint,
            compute_seconds=self.compute_seconds,
            run=self.run,
            attempts=self.attempts,
            sink=self.sink,
            observed_volatile=list(self.observed_volatile),
            started_at=self.started_at,
            output_at=self.output_at,
        )
        if self.committed_at is not None:
            body["committed_at"] = self.committed_at
        return _versioned(body, self.extra)

    def label(self, *, with_format: bool = False) -> str:
        """The output as named to people: the checkpoint's label, or the kind."""
        if self.checkpoint is not None:
            return self.checkpoint.label(with_format=with_format)
        return self.kind


@dataclass(frozen=True)
class Invalidation:
    """``log/tasks/<task>/g<k>.invalidated.json``: generation k of the task is discarded."""

    task: str
    generation: int
    run: int | None = None
    at: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Invalidation:
        schema_of(doc, "an invalidation record")
        return cls(
            task=str(doc.get("task", "")),
            generation=_int(doc.get("generation"), 0) or 0,
            run=_int(doc.get("run")),
            at=_float(doc.get("at")),
            extra=_extra(doc, _known(cls)),
        )

    def to_json(self) -> dict[str, Any]:
        body = {"task": self.task, "generation": self.generation, "run": self.run, "at": self.at}
        return _versioned(body, self.extra)


# -- events --------------------------------------------------------------------------------
class EventKind(str, Enum):
    """Every kind of event the log holds (``log/events/<run>-<seq>.<kind>.json``)."""

    PLAN = "plan"  #: the recovery plan of a run (strategy, decisions, rolled back)
    TASK_ERROR = "task_error"  #: an attempt of a task raised (task, attempt, system, error)
    TASK_DONE = "task_done"  #: a task ran and its output was not kept (replayed if needed)
    AUTO_CHECKPOINT = "auto_checkpoint"  #: checkpoint="auto" decided (checkpoint, estimates)
    CHECKPOINT_FAILED = "checkpoint_failed"  #: an async checkpoint write failed (error)
    CHECKPOINT_LOST = "checkpoint_lost"  #: a damaged checkpoint stops the run (reason)
    RECOVERY_FALLBACK = "recovery_fallback"  #: a damaged checkpoint is replayed (reason)
    SINK = "sink"  #: write_delta committed rows (path, app_id, txn_version, mode)
    STREAM_STOPPED = "stream_stopped"  #: a streaming task's query stopped (reason, batches)


#: Event kinds that mean a task failed in the run that logged them.
FAILURE_EVENTS = frozenset({EventKind.TASK_ERROR, EventKind.CHECKPOINT_FAILED})


@dataclass(frozen=True)
class EventRecord:
    """One event: what happened in a run (history, costs, failures).

    ``kind`` is an :class:`EventKind`, or the bare string of a kind this release does not
    know (written by a newer release of the same schema): such events are kept and shown,
    never interpreted. The kind's own fields are in ``data``; the common ones are typed
    properties.
    """

    run: int | None
    kind: EventKind | str
    at: float | None = None
    task: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> EventRecord:
        schema_of(doc, f"an event record ({doc.get('kind')!s})")
        raw = str(doc.get("kind", ""))
        try:
            kind: EventKind | str = EventKind(raw)
        except ValueError:
            kind = raw
        task = doc.get("task")
        return cls(
            run=_int(doc.get("run")),
            kind=kind,
            at=_float(doc.get("at")),
            task=None if task is None else str(task),
            data={k: v for k, v in doc.items() if k not in ("run", "kind", "at", "task", "schema")},
        )

    def to_json(self) -> dict[str, Any]:
        kind = self.kind.value if isinstance(self.kind, EventKind) else self.kind
        body: dict[str, Any] = {"run": self.run, "kind": kind, "at": self.at}
        if self.task is not None:
            body["task"] = self.task
        return _versioned(body, self.data)

    @property
    def known(self) -> bool:
        """Whether this release knows the event's kind."""
        return isinstance(self.kind, EventKind)

    @property
    def kind_name(self) -> str:
        return self.kind.value if isinstance(self.kind, EventKind) else self.kind

    def _get(self, key: str, kind: type[_R], default: _R) -> _R:
        value = self.data.get(key, default)
        return value if isinstance(value, kind) else default

    # common fields of several kinds
    @property
    def error(self) -> str | None:
        err = self.data.get("error")
        return None if err is None else str(err)

    @property
    def reason(self) -> str | None:
        why = self.data.get("reason")
        return None if why is None else str(why)

    @property
    def attempt(self) -> int | None:
        return _int(self.data.get("attempt"))

    @property
    def system(self) -> bool:
        return bool(self.data.get("system", False))

    # plan
    @property
    def strategy(self) -> str | None:
        s = self.data.get("strategy")
        return None if s is None else str(s)

    @property
    def decisions(self) -> list[dict[str, Any]]:
        return [d for d in self._get("decisions", list, []) if isinstance(d, dict)]

    @property
    def rolled_back(self) -> list[str]:
        return list(_tuple(self.data.get("rolled_back")))

    # task_done (the same timings as a commit record)
    @property
    def compute_seconds(self) -> float:
        return _float(self.data.get("compute_seconds"), 0.0) or 0.0

    @property
    def started_at(self) -> float | None:
        return _float(self.data.get("started_at"))

    @property
    def output_at(self) -> float | None:
        return _float(self.data.get("output_at"))


def event_kind(kind: EventKind | str) -> EventKind:
    """``kind`` as an :class:`EventKind` (for writing: only known kinds are written).

    Raises:
        LogSchemaError: ``kind`` is not an event kind.
    """
    try:
        return EventKind(kind)
    except ValueError as exc:
        raise LogSchemaError(
            f"{kind!r} is not an event kind; use one of {[k.value for k in EventKind]} "
            "(exoflow_spark.core.records.EventKind)"
        ) from exc


# -- garbage collection --------------------------------------------------------------------
@dataclass(frozen=True)
class GcRecord:
    """``log/gc/<at>-<token>.json``: checkpoint tables garbage collection deleted."""

    at: float
    #: one entry per deleted table (``GcItem`` fields: workflow_id, table, path, bytes, ...)
    deleted: tuple[Mapping[str, Any], ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> GcRecord:
        schema_of(doc, "a gc record")
        items = doc.get("deleted")
        return cls(
            at=_float(doc.get("at"), 0.0) or 0.0,
            deleted=tuple(dict(i) for i in items if isinstance(i, Mapping))
            if isinstance(items, list)
            else (),
            extra=_extra(doc, _known(cls)),
        )

    def to_json(self) -> dict[str, Any]:
        return _versioned({"at": self.at, "deleted": [dict(i) for i in self.deleted]}, self.extra)

    @property
    def tables(self) -> list[str]:
        """Names of the deleted tables."""
        return [str(i.get("table")) for i in self.deleted]


# -- a task's state, as the log tells it ---------------------------------------------------
def task_states(
    dag: DagRecord,
    commits: Mapping[str, CommitRecord],
    events: Iterable[EventRecord] = (),
    *,
    latest_run: int | None = None,
    running: bool = False,
    live: Mapping[str, TaskStatus] | None = None,
) -> dict[str, TaskStatus]:
    """Each task's display state (the one rule used by ``show``, ``status`` and progress).

    COMMITTED: its current generation has a commit record. FAILED: the latest run logged an
    error (or a failed async checkpoint) for it, it has not committed since, and no driver
    runs the workflow. DONE: it completed in some run without keeping its output. RUNNING:
    the workflow is running and every input of the task is available (its driver is running
    it, or about to). PENDING: everything else. ``live`` (the statuses a driver in this
    process keeps) overrides the log for the tasks it names, and adds those ``dag`` lacks.
    """
    done: set[str] = set()
    failed: set[str] = set()
    for e in events:
        if e.task is None:
            continue
        if e.kind is EventKind.TASK_DONE:
            done.add(e.task)
        elif e.kind in FAILURE_EVENTS and e.run == latest_run:
            failed.add(e.task)
    out: dict[str, TaskStatus] = {}
    for t in dag.tasks:
        if t.id in commits:
            out[t.id] = TaskStatus.COMMITTED
        elif t.id in failed and not running:
            out[t.id] = TaskStatus.FAILED
        elif t.id in done:
            out[t.id] = TaskStatus.DONE
        else:
            out[t.id] = TaskStatus.PENDING
    if running:
        available = (TaskStatus.COMMITTED, TaskStatus.DONE)
        for t in dag.tasks:
            if out[t.id] is TaskStatus.PENDING and all(out.get(u) in available for u in t.upstream):
                out[t.id] = TaskStatus.RUNNING
    if live is not None:
        out.update(live)
    return out
