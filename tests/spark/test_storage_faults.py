"""Storage faults: damaged checkpoints, damaged or missing log records, flaky and full disks.

Each fault is made for real on the storage root (files deleted or truncated, a folder made
immutable with ``chattr +i`` so even root gets EPERM); only the full disk is simulated (see
``concurrent_job.py --enospc-after``), since mounting a tiny file system needs privileges CI
may not have.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from drivers import crash_job, run_driver

import exoflow_spark as xf
from exoflow_spark.core.status import WorkflowStatus
from exoflow_spark.errors import CheckpointLostError
from exoflow_spark.storage.store import WorkflowStore


def pipeline(spark, calls: Counter, fail: dict[str, bool], *, deterministic: bool = True):
    """src -> mid (both checkpointed) -> final (a value; fails while fail['final'])."""

    @xf.task(checkpoint=True)
    def src():
        calls["src"] += 1
        return spark.range(100)

    @xf.task(checkpoint=True, deterministic=deterministic)
    def mid(df):
        calls["mid"] += 1
        return df.selectExpr("id", "id * 2 AS twice")

    @xf.task
    def final(df):
        calls["final"] += 1
        if fail["final"]:
            raise RuntimeError("downstream outage")
        return {"rows": df.count(), "sum": df.agg({"twice": "sum"}).first()[0]}

    return final.bind(mid.bind(src.bind()))


EXPECTED = {"rows": 100, "sum": 2 * sum(range(100))}


def first_run_fails_after_mid(
    spark, storage: str, wf: str, calls: Counter, checkpoint_format: str = "delta", **kw
):
    fail = {"final": True}
    dag = pipeline(spark, calls, fail, **kw)
    with pytest.raises(xf.TaskFailedError):
        xf.run(
            dag, workflow_id=wf, storage=storage, spark=spark, checkpoint_format=checkpoint_format
        )
    fail["final"] = False
    assert calls == Counter(src=1, mid=1, final=1)
    return dag


def damage(table: Path, how: str) -> None:
    if how == "data-files":
        parquet = list(table.rglob("*.parquet"))
        assert parquet
        for p in parquet:
            p.unlink()
    elif how == "delta-log-entry":
        for p in (table / "_delta_log").glob("00000000000000000000.*"):
            p.unlink()
    elif how == "corrupt-delta-log":
        (table / "_delta_log/00000000000000000000.json").write_text('{"add": {"path": "x.par')
    else:  # pragma: no cover
        raise AssertionError(how)


# (deleting the version's _delta_log entry fails the same way as corrupting it:
# damage(..., "delta-log-entry") is kept for trying it by hand)
@pytest.mark.parametrize(
    ("how", "fmt"),
    [("data-files", "delta"), ("corrupt-delta-log", "delta"), ("data-files", "parquet")],
)
def test_damaged_checkpoint_of_a_deterministic_task_is_replayed_from_its_inputs(
    spark, storage: str, wf: str, how: str, fmt: str, caplog: pytest.LogCaptureFixture
) -> None:
    calls: Counter[str] = Counter()
    dag = first_run_fails_after_mid(spark, storage, wf, calls, checkpoint_format=fmt)
    damage(Path(storage) / f"workflows/{wf}/refs/mid", how)

    caplog.set_level(logging.WARNING, logger="exoflow_spark")
    assert xf.run(dag, workflow_id=wf, storage=storage, spark=spark) == EXPECTED
    # mid ran again on src's restored checkpoint; src was not executed again
    assert calls == Counter(src=1, mid=2, final=2)
    store = WorkflowStore(storage, wf)
    fallback = [e for e in store.events() if e.kind == "recovery_fallback"]
    assert [(e.task, e.data["action"]) for e in fallback] == [("mid", "replay")]
    expected_reason = "data file(s) are missing" if how == "data-files" else "cannot be read"
    assert expected_reason in fallback[0].reason, fallback[0].reason
    label = "v0" if fmt == "delta" else "parquet"  # a Parquet folder has no version
    assert any(
        f"[mid] checkpoint {label} is damaged" in r.getMessage() and "replaying" in r.getMessage()
        for r in caplog.records
    )
    state = store.read_state()
    assert state.commits["mid"].run == 1  # replay commits nothing again
    assert state.status is WorkflowStatus.SUCCESSFUL


def test_damaged_checkpoint_of_a_nondeterministic_task_stops_the_run(
    spark, storage: str, wf: str
) -> None:
    calls: Counter[str] = Counter()
    dag = first_run_fails_after_mid(spark, storage, wf, calls, deterministic=False)
    damage(Path(storage) / f"workflows/{wf}/refs/mid", "data-files")

    with pytest.raises(CheckpointLostError) as err:
        xf.run(dag, workflow_id=wf, storage=storage, spark=spark)
    assert isinstance(err.value, xf.ExoflowError) and isinstance(err.value, xf.CheckpointError)
    msg = str(err.value)
    assert f"workflow [{wf}] task [mid]" in msg
    assert "nondeterministic" in msg and "data file(s) are missing" in msg
    assert "from a backup" in msg and "invalidate=['mid']" in msg
    assert calls == Counter(src=1, mid=1, final=1)  # nothing ran on a made-up sample
    store = WorkflowStore(storage, wf)
    assert [e.task for e in store.events() if e.kind == "checkpoint_lost"] == ["mid"]
    assert store.read_state().status is WorkflowStatus.FAILED
    # the advice works: invalidating it re-runs mid and what follows
    assert xf.run(dag, workflow_id=wf, storage=storage, spark=spark, invalidate=["mid"]) == (
        EXPECTED
    )
    assert calls == Counter(src=1, mid=2, final=2)


def test_get_output_reports_a_damaged_checkpoint(spark, storage: str, wf: str) -> None:
    calls: Counter[str] = Counter()
    first_run_fails_after_mid(spark, storage, wf, calls)
    damage(Path(storage) / f"workflows/{wf}/refs/mid", "data-files")
    with pytest.raises(CheckpointLostError, match=r"task \[mid\].*data file"):
        xf.get_output(wf, task="mid", storage=storage, spark=spark)


# -- the log ---------------------------------------------------------------------------------
def test_truncated_commit_and_run_records_are_reported_with_what_to_do(
    spark, storage: str, wf: str
) -> None:
    calls: Counter[str] = Counter()
    dag = first_run_fails_after_mid(spark, storage, wf, calls)
    log = Path(storage) / f"workflows/{wf}/log"
    commit = log / "tasks/mid/g0.commit.json"
    good = commit.read_bytes()
    commit.write_bytes(good[: len(good) // 2])  # a torn write
    with pytest.raises(xf.StorageError, match=r"mid/g0\.commit\.json is corrupt.*Move it aside"):
        xf.run(dag, workflow_id=wf, storage=storage, spark=spark)
    with pytest.raises(xf.StorageError, match="corrupt"):
        xf.get_status(wf, storage=storage)
    commit.write_bytes(good)

    start = log / "runs/000001.start.json"
    good = start.read_bytes()
    start.write_bytes(b"")
    with pytest.raises(xf.StorageError, match=r"000001\.start\.json is corrupt"):
        xf.get_status(wf, storage=storage)
    start.write_bytes(good)
    assert xf.run(dag, workflow_id=wf, storage=storage, spark=spark) == EXPECTED
    assert calls == Counter(src=1, mid=1, final=2)  # nothing ran twice


def test_torn_events_and_heartbeats_are_skipped(
    spark, storage: str, wf: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Events and heartbeats are not fsynced, so a machine crash may leave them torn: they are
    history, not state, and reading the log goes on without them."""
    calls: Counter[str] = Counter()
    dag = first_run_fails_after_mid(spark, storage, wf, calls)
    log = Path(storage) / f"workflows/{wf}/log"
    events = sorted((log / "events").iterdir())
    events[-1].write_text('{"kind": "task_er')
    (log / "runs/000001.heartbeat.json").write_text("")
    caplog.set_level(logging.WARNING, logger="exoflow_spark")
    assert xf.get_status(wf, storage=storage) is WorkflowStatus.FAILED
    assert xf.run(dag, workflow_id=wf, storage=storage, spark=spark) == EXPECTED
    assert any("skipping unreadable log record" in r.getMessage() for r in caplog.records)


def test_missing_commit_record_of_a_deterministic_task_is_detected_and_it_runs_again(
    spark, storage: str, wf: str, caplog: pytest.LogCaptureFixture
) -> None:
    calls: Counter[str] = Counter()
    dag = pipeline(spark, calls, {"final": False})
    assert xf.run(dag, workflow_id=wf, storage=storage, spark=spark) == EXPECTED
    (Path(storage) / f"workflows/{wf}/log/tasks/final/g0.commit.json").unlink()

    plan = xf.explain(wf, storage=storage)
    d = plan.decision("final")
    assert (d.state, d.action) == ("missing", "run")
    assert "ended SUCCESSFUL, which commits the output" in d.reason
    caplog.set_level(logging.WARNING, logger="exoflow_spark")
    assert xf.run(dag, workflow_id=wf, storage=storage, spark=spark) == EXPECTED
    assert calls == Counter(src=1, mid=1, final=2)
    assert any("commit record g0 is missing" in r.getMessage() for r in caplog.records)
    assert "final" in WorkflowStore(storage, wf).read_state().commits


def test_missing_commit_record_of_a_nondeterministic_task_stops_the_run(
    spark, storage: str, wf: str
) -> None:
    calls: Counter[str] = Counter()
    dag = pipeline(spark, calls, {"final": False}, deterministic=False)
    assert xf.run(dag, workflow_id=wf, storage=storage, spark=spark) == EXPECTED
    # [final] committed after reading [mid] (checkpoint=True), so mid's record must exist
    (Path(storage) / f"workflows/{wf}/log/tasks/mid/g0.commit.json").unlink()
    with pytest.raises(xf.RecoveryError) as err:
        xf.run(dag, workflow_id=wf, storage=storage, spark=spark)
    msg = str(err.value)
    assert f"workflow [{wf}] task [mid]: its commit record" in msg
    assert "[final] committed after reading it" in msg and "nondeterministic" in msg
    assert "from a backup" in msg and "invalidate=['mid']" in msg
    assert calls == Counter(src=1, mid=1, final=1)  # nothing ran on a new sample
    with pytest.raises(xf.RecoveryError):
        xf.explain(wf, storage=storage)


# -- transient and permanent I/O errors on the log --------------------------------------------
@contextlib.contextmanager
def immutable(path: Path) -> Iterator[None]:
    """``chattr +i``: creating files in ``path`` fails with EPERM, for root too."""
    path.mkdir(parents=True, exist_ok=True)
    probe = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"chattr +i is not available here ({probe.stderr.strip()})")
    try:
        try:
            (path / "probe").touch()
        except PermissionError:
            pass
        else:  # pragma: no cover - a file system that ignores the flag
            (path / "probe").unlink()
            pytest.skip("this file system ignores chattr +i")
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=False)


def test_transient_log_write_errors_are_retried_with_backoff(
    spark, storage: str, wf: str, caplog: pytest.LogCaptureFixture
) -> None:
    calls: Counter[str] = Counter()
    dag = pipeline(spark, calls, {"final": False})
    runs = Path(storage) / f"workflows/{wf}/log/runs"
    caplog.set_level(logging.WARNING, logger="exoflow_spark")
    with immutable(runs):
        release = threading.Timer(0.3, lambda: subprocess.run(["chattr", "-i", str(runs)]))
        release.start()
        started = time.perf_counter()
        assert xf.run(dag, workflow_id=wf, storage=storage, spark=spark) == EXPECTED
        release.join()
    retries = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert retries and "Operation not permitted" in retries[0], retries
    assert "attempt 1 of 4" in retries[0]
    assert time.perf_counter() - started >= 0.3
    assert WorkflowStore(storage, wf).read_state().status is WorkflowStatus.SUCCESSFUL


def test_a_log_that_stays_unwritable_fails_cleanly_and_the_workflow_can_start_later(
    spark, storage: str, wf: str
) -> None:
    calls: Counter[str] = Counter()
    dag = pipeline(spark, calls, {"final": False})
    runs = Path(storage) / f"workflows/{wf}/log/runs"
    with immutable(runs):
        started = time.perf_counter()
        with pytest.raises(xf.StorageError, match=r"failed after 4 attempt\(s\).*resume"):
            xf.run(dag, workflow_id=wf, storage=storage, spark=spark)
        assert time.perf_counter() - started >= 0.1 + 0.4 + 1.6  # the backoff was waited
    assert calls == Counter()  # no run was claimed, so nothing ran
    assert not list(runs.iterdir())
    assert xf.run(dag, workflow_id=wf, storage=storage, spark=spark) == EXPECTED


@pytest.mark.subprocess
def test_full_disk_fails_cleanly_and_the_workflow_resumes(spark, tmp_path: Path) -> None:
    def launch(*extra: str) -> subprocess.CompletedProcess:
        (tmp_path / "counters").mkdir(exist_ok=True)
        args = ["--storage", tmp_path / "exo", "--workflow-id", "disk", "--sink", tmp_path / "sink"]
        args += ["--counter-dir", tmp_path / "counters", *extra]
        return run_driver("concurrent_job.py", *args)

    # the start record and the plan event fit; [orders]' commit record hits a full disk
    full = launch("--enospc-after", "2")
    assert full.returncode == 4, full.stderr[-3000:]
    assert "No space left on device" in full.stderr and "free space" in full.stderr
    assert "Traceback" not in full.stderr.split("STORAGE", 1)[-1]
    state = WorkflowStore(str(tmp_path / "exo"), "disk").read_state()
    assert state.commits == {} and len(state.runs) == 1
    assert state.status is WorkflowStatus.RESUMABLE  # no end record could be written either
    assert not (tmp_path / "sink").exists()

    # the resume, in this process on the suite's session (its log writes succeed)
    done = crash_job.run_under(spark, tmp_path, "disk", mode="true", rows=2000)
    assert done == {"rows": 26}
    sink = spark.read.format("delta").load(str(tmp_path / "sink"))
    assert sink.agg({"n": "sum"}).first()[0] == 2000
    assert xf.get_status("disk", storage=str(tmp_path / "exo")) is WorkflowStatus.SUCCESSFUL
    shutil.rmtree(tmp_path / "exo", ignore_errors=True)
