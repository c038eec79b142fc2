"""The workflow log: create-if-absent records, run claims, liveness, both log backends."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

import exoflow_spark as xf
from exoflow_spark.core.records import CommitRecord, DagRecord
from exoflow_spark.core.status import WorkflowStatus
from exoflow_spark.spark.hadoop import HadoopLogFS
from exoflow_spark.storage.logfs import LocalLogFS, open_logfs
from exoflow_spark.storage.store import WorkflowStore


@pytest.fixture(params=["local", "hadoop"])
def logfs(request, tmp_path, spark):
    if request.param == "local":
        return LocalLogFS(str(tmp_path / "root"))
    return HadoopLogFS(f"file://{tmp_path}/root", spark)


def test_put_if_absent_writes_once(logfs) -> None:
    assert logfs.put_if_absent("a/b/rec.json", b'{"v": 1}') is True
    assert logfs.put_if_absent("a/b/rec.json", b'{"v": 2}') is False
    assert logfs.get("a/b/rec.json") == b'{"v": 1}'
    assert logfs.get("a/b/missing.json") is None
    logfs.put("a/hb.json", b"1")
    logfs.put("a/hb.json", b"2")
    assert logfs.get("a/hb.json") == b"2"
    assert logfs.list_files("a") == ["b/rec.json", "hb.json"]
    assert logfs.list_dirs("a") == ["b"]
    assert logfs.list_files("nothing-here") == []


def test_concurrent_put_if_absent_has_one_winner(tmp_path) -> None:
    fs = LocalLogFS(str(tmp_path))
    wins: list[int] = []
    barrier = threading.Barrier(8)

    def racer(i: int) -> None:
        barrier.wait()
        if fs.put_if_absent("race/rec.json", str(i).encode()):
            wins.append(i)

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    assert fs.get("race/rec.json") == str(wins[0]).encode()
    assert not [p for p in (tmp_path / "race").iterdir() if p.name.startswith(".tmp-")]


def test_open_logfs_chooses_by_scheme(tmp_path, spark) -> None:
    assert isinstance(open_logfs(str(tmp_path), None), LocalLogFS)
    assert isinstance(open_logfs(f"file://{tmp_path}", None), LocalLogFS)
    assert isinstance(open_logfs(str(tmp_path), spark, backend="hadoop"), HadoopLogFS)
    with pytest.raises(xf.StorageError, match="pass spark"):
        open_logfs("s3a://bucket/exo", None)


def test_run_claim_refuses_a_live_owner_and_resumes_a_dead_one(tmp_path, logfs) -> None:
    store = WorkflowStore("unused", "wf1", fs=logfs)
    state = store.read_state()
    assert not state.exists and state.status is WorkflowStatus.PENDING
    n = store.start_run(state, DagRecord("t"))
    assert n == 1
    # this process is alive: a second claim is refused and writes nothing
    with pytest.raises(xf.ConcurrentRunError, match=r"another live driver"):
        store.start_run(store.read_state(), DagRecord("t"))
    assert store.read_state().status is WorkflowStatus.RUNNING
    assert len(store.read_state().runs) == 1

    # a run whose owner process is dead reads RESUMABLE and may be taken over
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    other = WorkflowStore("unused", "wf2", fs=logfs)
    n2 = other.start_run(other.read_state(), DagRecord("t"))
    rec = logfs.get(f"workflows/wf2/log/runs/{n2:06d}.start.json")
    import json

    doc = json.loads(rec)
    doc["owner"]["pid"] = int(dead.stdout)
    logfs_path = f"workflows/wf2/log/runs/{n2:06d}.start.json"
    if isinstance(logfs, LocalLogFS):
        (tmp_path / "root" / logfs_path).write_text(json.dumps(doc))
    else:
        logfs.put(logfs_path, json.dumps(doc).encode())
    assert other.read_state().status is WorkflowStatus.RESUMABLE
    assert other.start_run(other.read_state(), DagRecord("t")) == n2 + 1


def test_commit_records_and_generations(logfs) -> None:
    store = WorkflowStore("unused", "wf", fs=logfs)
    state = store.read_state()
    run = store.start_run(state, DagRecord("t"))
    store.commit_task("t", 0, CommitRecord.of_value(1))
    with pytest.raises(xf.ConcurrentRunError, match=r"task \[t\] is already committed"):
        store.commit_task("t", 0, CommitRecord.of_value(2))
    state = store.read_state()
    assert state.commits["t"].value == 1
    store.invalidate(["t"], state, run)
    state = store.read_state()
    assert "t" not in state.commits and state.generation("t") == 1
    store.commit_task("t", 1, CommitRecord.of_value(3))
    assert store.read_state().commits["t"].value == 3
    store.end_run(run, WorkflowStatus.SUCCESSFUL)
    assert store.read_state().status is WorkflowStatus.SUCCESSFUL


def test_corrupt_record_is_reported(tmp_path) -> None:
    fs = LocalLogFS(str(tmp_path))
    store = WorkflowStore("unused", "wf", fs=fs)
    store.start_run(store.read_state(), DagRecord("t"))
    store.commit_task("t", 0, CommitRecord.none())
    path = tmp_path / "workflows/wf/log/tasks/t/g0.commit.json"
    path.write_text('{"kind": "no')
    with pytest.raises(xf.StorageError, match=r"g0\.commit\.json is corrupt"):
        store.read_state()


def test_a_log_written_by_a_newer_release_is_refused_before_any_write(spark, storage) -> None:
    """A run record with a schema newer than this release reads: xf.run stops with advice to
    upgrade, and the log and checkpoints are left exactly as they were."""
    import json
    from pathlib import Path

    from exoflow_spark.core.records import SCHEMA_VERSION

    @xf.task(checkpoint=True)
    def numbers():
        return xf.get_spark().range(3)

    @xf.task
    def total(df):
        return df.count()

    dag = total.bind(numbers.bind())
    assert xf.run(dag, workflow_id="newer", storage=storage, spark=spark) == 3
    root = Path(storage)
    start = root / "workflows/newer/log/runs/000001.start.json"
    doc = json.loads(start.read_text())
    assert doc["schema"] == SCHEMA_VERSION  # this release writes its version
    start.chmod(0o644)
    start.write_text(json.dumps({**doc, "schema": SCHEMA_VERSION + 1}))
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    with pytest.raises(xf.LogSchemaError, match="upgrade exoflow-spark"):
        xf.run(dag, workflow_id="newer", storage=storage, spark=spark, invalidate=["total"])
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
