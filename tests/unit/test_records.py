"""The log's typed records (no Spark): round trips, version 1 (release 0.1.0) records read as
0.1.0 wrote them, unknown event kinds, newer schemas refused, and the storage layout's paths."""

from __future__ import annotations

import copy
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from exoflow_spark.core.records import (
    SCHEMA_VERSION,
    CheckpointRecord,
    CommitRecord,
    DagRecord,
    EventKind,
    EventRecord,
    GcRecord,
    Heartbeat,
    Invalidation,
    Owner,
    RunEnd,
    RunStart,
    TaskRecord,
    schema_of,
    task_states,
)
from exoflow_spark.core.status import TaskStatus, WorkflowStatus
from exoflow_spark.errors import ExoflowError, LogSchemaError
from exoflow_spark.storage import layout
from exoflow_spark.storage.logfs import LocalLogFS
from exoflow_spark.storage.store import WorkflowStore

# -- records exactly as release 0.1.0 wrote them (schema 1: no "schema" field) -------------
# (exoflow_spark/dag.py Dag.to_record, store.py start_run/end_run/heartbeat/commit_task/
# invalidate/event, runtime.py _delta_record and _commit, recovery.py, streaming.py, sink.py,
# gc.py of commit 32ced00)
V1_TASK = {
    "id": "silver",
    "function": "jobs.etl.silver",
    "upstream": ["bronze"],
    "checkpoint": "async",
    "deterministic": True,
    "max_retries": 3,
    "retry_exceptions": False,
    "catch_exceptions": False,
    "wait_until_committed": [],
    "waits": [],
    "sink": False,
    "streaming": False,
    "code_fingerprint": "c0ffee",
    "fingerprint": "f00d",
}
V1_DAG = {
    "output": "silver",
    "tasks": [
        {
            **V1_TASK,
            "id": "bronze",
            "function": "jobs.etl.bronze",
            "upstream": [],
            "checkpoint": True,
            "deterministic": False,
        },
        V1_TASK,
    ],
}
V1_START = {
    "dag": V1_DAG,
    "invalidate": ["silver"],
    "launch": {"argv": ["jobs/etl.py", "--day", "2026-11-24"], "cwd": "/srv", "python": "py"},
    "run": 2,
    "owner": {"host": "node-1", "pid": 4242, "pid_start": "123456"},
    "started_at": 1764500000.25,
}
V1_END = {"status": "FAILED", "error": "TaskFailedError: boom", "ended_at": 1764500100.5}
V1_HEARTBEAT = {"at": 1764500050.0}
_COMMON = {
    "fingerprint": "f00d",
    "compute_seconds": 1.5,
    "run": 2,
    "attempts": 1,
    "sink": False,
    "observed_volatile": [],
    "started_at": 1764500001.0,
    "output_at": 1764500002.5,
}
V1_COMMIT_SYNC = {
    "kind": "dataframe",
    "mode": "sync",
    "delta": {
        "path": "/data/exo/workflows/wf/refs/bronze",
        "version": 0,
        "bytes": 2048,
        "rows": 100,
        "write_seconds": 0.8,
        "files": ["part-00000-abc.snappy.parquet"],
        "schema": '{"type":"struct","fields":[]}',
    },
    **_COMMON,
    "observed_volatile": ["sample"],
    "task": "bronze",
    "generation": 0,
    "committed_at": 1764500003.0,
}
V1_COMMIT_PARQUET = {
    "kind": "dataframe",
    "mode": "async",
    "delta": {
        "path": "/data/exo/workflows/wf/refs/silver/_parquet/" + "a" * 32,
        "version": 0,
        "bytes": 4096,
        "rows": 200,
        "write_seconds": 1.25,
        "files": ["part-00000.parquet", "part-00001.parquet"],
        "schema": None,
        "format": "parquet",
    },
    **_COMMON,
    "task": "silver",
    "generation": 1,
    "committed_at": 1764500004.0,
}
V1_COMMIT_STREAM = {  # a streaming task's own table: no file list recorded
    "kind": "dataframe",
    "mode": "stream",
    "delta": {
        "path": "/data/lake/online",
        "version": 7,
        "bytes": 0,
        "rows": 150,
        "write_seconds": 0.0,
    },
    **_COMMON,
    "task": "online",
    "generation": 0,
    "committed_at": 1764500005.0,
}
V1_COMMIT_VALUE = {
    "kind": "value",
    "value": {"rows": 26, "note": "s3a://user:pw@bucket/x"},
    **_COMMON,
    "task": "total",
    "generation": 0,
    "committed_at": 1764500006.0,
}
V1_COMMIT_NONE = {
    "kind": "none",
    **_COMMON,
    "task": "publish",
    "generation": 0,
    "committed_at": 7.0,
}
V1_INVALIDATION = {"task": "silver", "generation": 0, "run": 2, "at": 1764500000.5}
V1_EVENTS: dict[str, dict[str, Any]] = {
    "plan": {
        "run": 2,
        "kind": "plan",
        "at": 1.0,
        "strategy": "restore",
        "decisions": [
            {
                "task": "bronze",
                "state": "committed",
                "action": "restore",
                "reason": "checkpoint v0, 2.0 KB",
                "restore_s": 0.16,
                "replay_s": None,
            }
        ],
        "run_tasks": ["silver"],
        "restore": ["bronze"],
        "skip": [],
        "rolled_back": [],
    },
    "task_error": {
        "run": 2,
        "kind": "task_error",
        "at": 2.0,
        "task": "silver",
        "attempt": 1,
        "system": False,
        "error": "ValueError: boom",
    },
    "task_done": {"run": 2, "kind": "task_done", "at": 3.0, "task": "bronze", "backing": "plan"}
    | _COMMON,
    "auto_checkpoint": {
        "run": 2,
        "kind": "auto_checkpoint",
        "at": 4.0,
        "task": "silver",
        "checkpoint": True,
        "replay_s": 2.5,
        "write_s": 0.5,
        "bytes": 1024,
    },
    "checkpoint_failed": {
        "run": 2,
        "kind": "checkpoint_failed",
        "at": 5.0,
        "task": "silver",
        "error": "disk full",
    },
    "checkpoint_lost": {
        "run": 2,
        "kind": "checkpoint_lost",
        "at": 6.0,
        "task": "bronze",
        "action": "stop",
        "reason": "1 of its 1 data file(s) are missing",
    },
    "recovery_fallback": {
        "run": 2,
        "kind": "recovery_fallback",
        "at": 7.0,
        "task": "silver",
        "action": "replay",
        "reason": "the Delta version cannot be read",
    },
    "sink": {
        "run": 2,
        "kind": "sink",
        "at": 8.0,
        "task": "publish",
        "path": "/data/gold",
        "app_id": "exoflow-wf-publish",
        "txn_version": 3,
        "mode": "append",
    },
    "stream_stopped": {
        "run": 2,
        "kind": "stream_stopped",
        "at": 9.0,
        "task": "online",
        "reason": "3 batches",
        "batches": [0, 1, 2],
        "input_rows": 150,
        "seconds": 4.5,
    },
}
V1_GC = {
    "at": 1764600000.0,
    "deleted": [
        {
            "workflow_id": "wf",
            "table": "bronze",
            "path": "/data/exo/workflows/wf/refs/bronze",
            "bytes": 2048,
            "verdict": "delete",
            "reason": "everything reading it has committed",
        }
    ],
}

V1_COMMITS = [V1_COMMIT_SYNC, V1_COMMIT_PARQUET, V1_COMMIT_STREAM, V1_COMMIT_VALUE, V1_COMMIT_NONE]
RECORD_TYPES: list[tuple[Any, dict[str, Any]]] = [
    (RunStart, V1_START),
    (RunEnd, V1_END),
    (Heartbeat, V1_HEARTBEAT),
    (Invalidation, V1_INVALIDATION),
    (GcRecord, V1_GC),
    *[(CommitRecord, c) for c in V1_COMMITS],
    *[(EventRecord, e) for e in V1_EVENTS.values()],
]


def test_every_event_kind_written_is_listed() -> None:
    """Every kind passed to ``.event(`` anywhere in the package is an EventKind member."""
    root = Path(__file__).resolve().parents[2] / "exoflow_spark"
    used = set()
    for path in root.rglob("*.py"):
        if path.name == "records.py":  # where they are defined, not written
            continue
        text = path.read_text()
        for member in EventKind:
            if f"EventKind.{member.name}" in text:
                used.add(member)
        assert '.event(self.run, "' not in text and '.event(run.run, "' not in text, path
    assert used == set(EventKind)
    assert set(V1_EVENTS) == {k.value for k in EventKind}


@pytest.mark.parametrize(("cls", "doc"), RECORD_TYPES, ids=lambda v: getattr(v, "__name__", ""))
def test_v1_records_read_and_write_back_unchanged_but_for_the_schema(cls: Any, doc: dict) -> None:
    """A 0.1.0 record reads as version 1 and is written back byte-for-byte the same JSON, plus
    ``"schema": 2``: the on-disk shape did not change."""
    original = copy.deepcopy(doc)
    assert schema_of(doc) == 1
    rec = cls.from_json(doc)
    assert doc == original  # reading never mutates
    out = rec.to_json()
    assert out == {**original, "schema": SCHEMA_VERSION}
    assert cls.from_json(json.loads(json.dumps(out))) == rec  # round trip of a v2 record


def test_v1_start_record_fields() -> None:
    start = RunStart.from_json(V1_START)
    assert start.run == 2 and start.started_at == 1764500000.25
    assert start.owner == Owner("node-1", 4242, "123456")
    assert start.invalidate == ("silver",)
    assert start.launch is not None and start.launch["cwd"] == "/srv"
    dag = start.dag
    assert dag is not None and dag.output == "silver" and dag.ids == ["bronze", "silver"]
    bronze = dag.task("bronze")
    assert bronze.checkpoint is True and bronze.checkpoint_mode == "sync"
    assert not bronze.deterministic and dag.task("silver").upstream == ("bronze",)
    assert dag.task("silver").checkpoint_mode == "async" and dag.task("silver").max_retries == 3


def test_v1_commit_record_fields() -> None:
    sync = CommitRecord.from_json(V1_COMMIT_SYNC)
    assert sync.kind == "dataframe" and sync.mode == "sync" and sync.task == "bronze"
    assert sync.checkpoint == CheckpointRecord(
        "/data/exo/workflows/wf/refs/bronze",
        0,
        2048,
        100,
        0.8,
        ("part-00000-abc.snappy.parquet",),
        '{"type":"struct","fields":[]}',
    )
    assert sync.observed_volatile == ("sample",) and sync.compute_seconds == 1.5
    assert sync.label() == "v0" and sync.label(with_format=True) == "delta v0"
    parquet = CommitRecord.from_json(V1_COMMIT_PARQUET)
    assert parquet.checkpoint is not None and parquet.checkpoint.format == "parquet"
    assert parquet.checkpoint.schema is None and parquet.generation == 1
    assert parquet.label() == "parquet"
    stream = CommitRecord.from_json(V1_COMMIT_STREAM)
    assert stream.checkpoint is not None and stream.checkpoint.files is None
    assert stream.mode == "stream" and stream.label() == "v7"
    value = CommitRecord.from_json(V1_COMMIT_VALUE)
    assert value.kind == "value" and value.value["rows"] == 26 and value.checkpoint is None
    assert value.label() == "value"
    none = CommitRecord.from_json(V1_COMMIT_NONE)
    assert none.kind == "none" and none.value is None and none.label() == "none"


def test_older_shapes_are_read_with_their_fallbacks() -> None:
    """Shapes older than 0.1.0's full records (hand-written logs, early development) read with
    the defaults every reader used to apply on its own."""
    task = {k: v for k, v in V1_TASK.items() if k != "waits"}
    task["wait_until_committed"] = ["bronze"]
    assert TaskRecord.from_json(task).waits == ("bronze",)  # own waits only
    bare = CommitRecord.from_json({"delta": {"path": "/t", "version": 2}})  # no kind, no timings
    assert bare.kind == "dataframe" and bare.checkpoint == CheckpointRecord("/t", 2)
    assert bare.compute_seconds == 0.0 and bare.observed_volatile == () and not bare.sink
    assert CommitRecord.from_json({"value": 3}).kind == "value"
    start = RunStart.from_json({"run": 1})  # no DAG logged
    assert start.dag is None and start.owner == Owner() and start.launch is None


def test_building_commit_records() -> None:
    class FakeVersion:  # the attributes of storage.checkpoints.DeltaVersion
        path, version, num_bytes, num_rows, write_seconds = "/t", 3, 10, 2, 0.5
        files: tuple[str, ...] | None = ("a.parquet",)
        schema, format = "s", "delta"

    rec = CommitRecord.of_checkpoint(FakeVersion(), "sync")
    assert rec.to_json()["delta"] == {
        "path": "/t",
        "version": 3,
        "bytes": 10,
        "rows": 2,
        "write_seconds": 0.5,
        "files": ["a.parquet"],
        "schema": "s",
    }
    FakeVersion.files, FakeVersion.format = None, "parquet"
    assert CommitRecord.of_checkpoint(FakeVersion(), "async").to_json()["delta"] == {
        "path": "/t",
        "version": 3,
        "bytes": 10,
        "rows": 2,
        "write_seconds": 0.5,
        "format": "parquet",
    }
    assert CommitRecord.none().to_json()["kind"] == "none"
    assert CommitRecord.of_value([1, 2]).to_json()["value"] == [1, 2]


def test_unknown_keys_survive_a_round_trip() -> None:
    doc = {**V1_COMMIT_SYNC, "schema": 2, "lineage": {"from": "x"}}
    doc["delta"] = {**doc["delta"], "zorder": ["a"]}
    assert CommitRecord.from_json(doc).to_json() == doc


def test_unknown_event_kind_is_kept_not_interpreted() -> None:
    doc = {"run": 3, "kind": "quota_warning", "at": 1.0, "task": "t", "used": 0.9, "schema": 2}
    event = EventRecord.from_json(doc)
    assert not event.known and event.kind == "quota_warning" and event.kind_name == "quota_warning"
    assert event.task == "t" and event.data == {"used": 0.9}
    assert event.to_json() == doc
    # it never counts as a failure or a completion
    on_silver = EventRecord.from_json({**doc, "task": "silver"})
    dag = DagRecord.from_json(V1_DAG)
    assert task_states(dag, {}, [on_silver], latest_run=3)["silver"] is TaskStatus.PENDING


def test_known_event_kinds_are_typed() -> None:
    events = {k: EventRecord.from_json(e) for k, e in V1_EVENTS.items()}
    assert all(e.known for e in events.values())
    assert events["plan"].kind is EventKind.PLAN and events["plan"].strategy == "restore"
    assert events["plan"].decisions[0]["action"] == "restore" and events["plan"].task is None
    err = events["task_error"]
    assert (err.task, err.attempt, err.system, err.error) == (
        "silver",
        1,
        False,
        "ValueError: boom",
    )
    assert events["recovery_fallback"].reason == "the Delta version cannot be read"
    done = events["task_done"]
    assert done.compute_seconds == 1.5 and done.started_at == 1764500001.0
    assert done.output_at == 1764500002.5 and done.data["backing"] == "plan"


@pytest.mark.parametrize(("cls", "doc"), RECORD_TYPES, ids=lambda v: getattr(v, "__name__", ""))
def test_a_newer_schema_is_refused_with_upgrade_advice(cls: Any, doc: dict) -> None:
    with pytest.raises(LogSchemaError, match=r"schema 3.*upgrade exoflow-spark") as info:
        cls.from_json({**doc, "schema": SCHEMA_VERSION + 1})
    assert isinstance(info.value, ExoflowError)


@pytest.mark.parametrize("bad", ["2", 0, -1, 1.5, True, None])
def test_a_schema_that_is_not_a_version_is_refused(bad: Any) -> None:
    with pytest.raises(LogSchemaError, match="not a schema version"):
        CommitRecord.from_json({**V1_COMMIT_NONE, "schema": bad})


def test_a_dataframe_commit_without_its_checkpoint_is_refused() -> None:
    with pytest.raises(LogSchemaError, match=r"task \[t\].*without a checkpoint entry"):
        CommitRecord.from_json({"kind": "dataframe", "task": "t"})


def test_a_run_end_with_an_unknown_status_is_refused() -> None:
    with pytest.raises(LogSchemaError, match="not a workflow status"):
        RunEnd.from_json({**V1_END, "status": "EXPLODED"})


# -- the display state of tasks ------------------------------------------------------------
CHAIN = DagRecord(
    "c",
    (
        TaskRecord("a"),
        TaskRecord("b", upstream=("a",)),
        TaskRecord("c", upstream=("b",)),
        TaskRecord("d"),
    ),
)


def _event(kind: str, task: str, run: int) -> EventRecord:
    return EventRecord.from_json({"run": run, "kind": kind, "at": 0.0, "task": task})


@pytest.mark.parametrize(
    ("events", "running", "live", "expected"),
    [
        ([], False, None, "CPPP"),
        ([_event("task_done", "b", 1)], False, None, "CDPP"),
        ([_event("task_error", "b", 2)], False, None, "CFPP"),
        ([_event("task_error", "b", 1)], False, None, "CPPP"),  # an earlier run's failure
        ([_event("checkpoint_failed", "d", 2)], False, None, "CPPF"),
        ([_event("task_error", "b", 2)], True, None, "CRPR"),  # running: retried now
        ([_event("task_done", "b", 1)], True, None, "CDRR"),
        ([], False, {"b": TaskStatus.CHECKPOINTING, "x": TaskStatus.RUNNING}, "CKPP"),
    ],
)
def test_task_states(events: list, running: bool, live: Any, expected: str) -> None:
    commits = {"a": CommitRecord.none()}
    states = task_states(CHAIN, commits, events, latest_run=2, running=running, live=live)
    letter = {
        TaskStatus.COMMITTED: "C",
        TaskStatus.PENDING: "P",
        TaskStatus.DONE: "D",
        TaskStatus.FAILED: "F",
        TaskStatus.RUNNING: "R",
        TaskStatus.CHECKPOINTING: "K",
    }
    assert "".join(letter[states[t]] for t in "abcd") == expected
    if live:
        assert states["x"] is TaskStatus.RUNNING  # live tasks the DAG lacks are added


# -- the store writes schema 2, reads v1, refuses newer logs -----------------------------
def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(".tmp-")
    }


def test_store_writes_schema_2_records(tmp_path: Path) -> None:
    store = WorkflowStore(str(tmp_path), "wf", fs=LocalLogFS(str(tmp_path)))
    state = store.read_state()
    run = store.start_run(state, DagRecord.from_json(V1_DAG), invalidate=["silver"])
    committed = store.commit_task("bronze", 0, CommitRecord.of_value(1))
    assert committed.task == "bronze" and committed.committed_at is not None
    store.invalidate(["bronze"], store.read_state(), run)
    store.event(run, EventKind.TASK_DONE, task="silver", backing="plan")
    store.record_gc([{"table": "bronze", "path": "s3a://k:secret@b/p"}])
    store.end_run(run, WorkflowStatus.SUCCESSFUL)
    files = _files(tmp_path)
    assert len(files) == 7  # start, heartbeat, end, commit, invalidation, event, gc
    for name, raw in files.items():
        assert json.loads(raw)["schema"] == SCHEMA_VERSION, name
    gc = next(raw for name, raw in files.items() if "/log/gc/" in name)
    assert b"secret" not in gc  # written through the store: credentials redacted
    state = store.read_state()
    assert state.dag.output == "silver" and state.runs[0].start is not None
    assert state.runs[0].start.invalidate == ("silver",)
    assert state.status is WorkflowStatus.SUCCESSFUL and state.generation("bronze") == 1
    assert store.done_tasks() == {"silver"}
    assert store.gc_records()[0].tables == ["bronze"]


def test_store_refuses_unknown_event_kinds_when_writing(tmp_path: Path) -> None:
    store = WorkflowStore(str(tmp_path), "wf", fs=LocalLogFS(str(tmp_path)))
    with pytest.raises(LogSchemaError, match="'quota_warning' is not an event kind"):
        store.event(1, "quota_warning", task="t")  # type: ignore[arg-type]
    assert _files(tmp_path) == {}


def _write_v1_log(root: Path) -> None:
    """The log 0.1.0 leaves: a run that committed bronze, then failed in silver."""
    log = root / "workflows/wf/log"
    docs = {
        "runs/000002.start.json": V1_START,
        "runs/000002.heartbeat.json": V1_HEARTBEAT,
        "runs/000002.end.json": V1_END,
        "tasks/bronze/g0.commit.json": V1_COMMIT_SYNC,
        "tasks/silver/g0.invalidated.json": V1_INVALIDATION,
        "tasks/silver/g1.commit.json": V1_COMMIT_PARQUET,
        "events/000002-000001.task_error.json": V1_EVENTS["task_error"],
        "events/000002-000002.task_done.json": V1_EVENTS["task_done"],
        "gc/1764600000.000000-abcd1234.json": V1_GC,
    }
    for rel, doc in docs.items():
        path = log / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, sort_keys=True))


def test_store_reads_a_v1_log(tmp_path: Path) -> None:
    _write_v1_log(tmp_path)
    store = WorkflowStore(str(tmp_path), "wf", fs=LocalLogFS(str(tmp_path)))
    state = store.read_state()
    assert [r.number for r in state.runs] == [2] and state.status is WorkflowStatus.FAILED
    assert state.runs[0].heartbeat_at == 1764500050.0
    assert state.runs[0].end == RunEnd.from_json(V1_END)
    assert state.dag.ids == ["bronze", "silver"]
    assert set(state.commits) == {"bronze", "silver"} and state.generation("silver") == 1
    assert state.commits["bronze"].checkpoint is not None
    assert store.done_tasks() == {"bronze"}
    assert [e.kind for e in store.events()] == [EventKind.TASK_ERROR, EventKind.TASK_DONE]
    assert store.gc_records()[0].at == 1764600000.0
    # the log was copied from another root: the task's own checkpoint is read under this one
    assert V1_COMMIT_SYNC["delta"]["path"] != store.ref_uri("bronze")
    assert store.checkpoint_uri("bronze", state.commits["bronze"]) == store.ref_uri("bronze")
    # a table that is not the task's checkpoint (a streaming task's own table) stays as recorded
    elsewhere = replace(
        state.commits["bronze"],
        checkpoint=replace(state.commits["bronze"].checkpoint, path="/lake/events"),
    )
    assert store.checkpoint_uri("bronze", elsewhere) == "/lake/events"
    assert state.task_states(store.events()) == {
        "bronze": TaskStatus.COMMITTED,
        "silver": TaskStatus.COMMITTED,
    }


@pytest.mark.parametrize(
    "newer",
    [
        "runs/000002.start.json",
        "runs/000002.end.json",
        "tasks/bronze/g0.commit.json",
        "events/000002-000002.task_done.json",
    ],
)
def test_store_refuses_a_log_with_a_newer_schema_and_writes_nothing(
    tmp_path: Path, newer: str
) -> None:
    _write_v1_log(tmp_path)
    path = tmp_path / "workflows/wf/log" / newer
    path.write_text(json.dumps({**json.loads(path.read_text()), "schema": SCHEMA_VERSION + 1}))
    before = _files(tmp_path)
    store = WorkflowStore(str(tmp_path), "wf", fs=LocalLogFS(str(tmp_path)))
    with pytest.raises(LogSchemaError, match="upgrade exoflow-spark"):
        # what xf.run does before its first write (api._run)
        state = store.read_state()
        store.done_tasks()
        store.start_run(state, DagRecord.from_json(V1_DAG))
    assert _files(tmp_path) == before


# -- the storage layout: byte-identical to 0.1.0's paths ------------------------------------
def test_layout_paths_are_those_of_release_0_1_0() -> None:
    assert layout.run_record("wf", 3, "start") == "workflows/wf/log/runs/000003.start.json"
    assert layout.run_record("wf", 3, "heartbeat") == "workflows/wf/log/runs/000003.heartbeat.json"
    assert layout.run_record("wf", 12, "end") == "workflows/wf/log/runs/000012.end.json"
    assert layout.parse_run_record("000012.end.json") == (12, "end")
    assert layout.parse_run_record("000012.other.json") is None
    assert layout.parse_run_record("notes.txt") is None
    assert layout.commit_record("wf", "t", 2) == "workflows/wf/log/tasks/t/g2.commit.json"
    assert (
        layout.invalidation_record("wf", "t", 0) == "workflows/wf/log/tasks/t/g0.invalidated.json"
    )
    assert layout.parse_invalidation("g4.invalidated.json") == 4
    assert layout.parse_invalidation("g4.commit.json") is None
    assert (
        layout.event_record("wf", 2, 7, "plan") == "workflows/wf/log/events/000002-000007.plan.json"
    )
    assert layout.gc_record("wf", 12.5, "abcd1234") == "workflows/wf/log/gc/12.500000-abcd1234.json"
    assert layout.ref_dir("wf", "t") == "workflows/wf/refs/t"
    assert layout.iterations_dir("wf", "t") == "workflows/wf/refs/t__iterations"
    assert layout.iterations_owner("t__iterations") == "t"
    assert layout.iterations_owner("t") is None
    assert layout.stream_dir("wf", "t") == "workflows/wf/streams/t"
    assert layout.shared_stream_checkpoint("clicks") == "streams/clicks/checkpoint"
    assert layout.shared_stream_table("clicks") == "streams/clicks/table"
    assert layout.throughput_file("delta") == "_exoflow/throughput.json"
    assert layout.throughput_file("parquet") == "_exoflow/throughput-parquet.json"
    assert layout.calibration_dir("ff") == "_exoflow/calibration/ff"
    token = "0123456789abcdef" * 2
    parquet = layout.parquet_checkpoint("/r/workflows/wf/refs/t/", token)
    assert parquet == f"/r/workflows/wf/refs/t/_parquet/{token}"
    assert layout.PARQUET_CHECKPOINT.fullmatch(parquet[len("/r/workflows/wf/refs/t") :])


def test_layout_validates_ids() -> None:
    with pytest.raises(ExoflowError):
        layout.ref_dir("wf", "../other")
    with pytest.raises(ExoflowError):
        layout.commit_record("../wf", "t", 0)


def test_store_uris_use_the_layout(tmp_path: Path) -> None:
    store = WorkflowStore(str(tmp_path), "wf", fs=LocalLogFS(str(tmp_path)))
    root = str(tmp_path)
    assert store.ref_uri("t") == os.path.join(root, "workflows/wf/refs/t")
    assert store.iterations_uri("t") == store.ref_uri("t") + "__iterations"
    assert store.stream_checkpoint_uri("t") == os.path.join(root, "workflows/wf/streams/t")
    assert store.shared_stream_uris("s") == (
        os.path.join(root, "streams/s/checkpoint"),
        os.path.join(root, "streams/s/table"),
    )


def test_invalidation_cut_short_leaves_a_consistent_log(tmp_path: Path) -> None:
    """A driver killed while invalidating b -> c (descendants of b) must never leave b
    invalidated with c's old commit, built from the old b, still counting."""

    class DiesAfter(LocalLogFS):
        def __init__(self, root: str, writes: int) -> None:
            super().__init__(root)
            self.left = writes

        def put_if_absent(self, rel: str, data: bytes, durable: bool = True) -> bool:
            if "invalidated" in rel:
                if self.left == 0:
                    raise KeyboardInterrupt("driver killed")
                self.left -= 1
            return super().put_if_absent(rel, data, durable)

    store = WorkflowStore(str(tmp_path), "wf", fs=LocalLogFS(str(tmp_path)))
    run = store.start_run(store.read_state(), DagRecord.from_json(V1_DAG))
    for tid in ("a", "b", "c"):
        store.commit_task(tid, 0, CommitRecord.of_value(1))
    dying = WorkflowStore(str(tmp_path), "wf", fs=DiesAfter(str(tmp_path), writes=1))
    with pytest.raises(KeyboardInterrupt):
        dying.invalidate(["b", "c"], dying.read_state(), run)
    state = store.read_state()
    assert set(state.commits) == {"a", "b"}  # only c (downstream) lost its commit
    assert state.generation("c") == 1 and state.generation("b") == 0
    store.invalidate(["b", "c"], store.read_state(), run)  # the same request, run again
    state = store.read_state()
    assert set(state.commits) == {"a"} and state.generation("b") == 1


def test_dag_differences_name_what_changed_in_shape() -> None:
    logged = DagRecord.from_json(V1_DAG)  # bronze -> silver (output)
    assert logged.differences(DagRecord.from_json(copy.deepcopy(V1_DAG))) == []
    # code, arguments and options are not shape: committed fingerprints judge those
    tweaked = copy.deepcopy(V1_DAG)
    tweaked["tasks"][1].update(fingerprint="other", code_fingerprint="other", max_retries=3)
    assert logged.differences(DagRecord.from_json(tweaked)) == []

    other = {"output": "num", "tasks": [{**V1_TASK, "id": "num", "upstream": []}]}
    assert logged.differences(DagRecord.from_json(other)) == [
        "output [silver] is now [num]",
        "task(s) [bronze], [silver] of the logged DAG are not in this one",
        "task(s) [num] are new",
    ]
    rewired = copy.deepcopy(V1_DAG)
    rewired["tasks"].insert(0, {**V1_TASK, "id": "extra", "upstream": []})
    rewired["tasks"][2]["upstream"] = ["bronze", "extra"]
    assert logged.differences(DagRecord.from_json(rewired)) == [
        "task(s) [extra] are new",
        "task [silver] reads [bronze], [extra] instead of [bronze]",
    ]
