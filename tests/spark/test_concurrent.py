"""One live driver per workflow id: a real driver process and this one race for the same id.

A second driver is refused with ConcurrentRunError before it writes anything (and before any
other check, so it hears the real reason); a SIGKILLed owner's claim lapses at once on its host
(pid liveness) and, when the owner is on another host, once its heartbeat record has not
changed for the heartbeat TTL of the claimer's own monotonic clock: no two hosts' wall clocks
are compared, so a skewed clock neither steals a live claim nor keeps a dead one.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from drivers import crash_job, start_driver

import exoflow_spark as xf
from exoflow_spark.core.dag import Dag
from exoflow_spark.core.records import CommitRecord, DagRecord
from exoflow_spark.core.status import WorkflowStatus
from exoflow_spark.storage import store as store_mod
from exoflow_spark.storage.store import WorkflowStore

ROWS = 2000


def launch(tmp: Path, *extra: str) -> subprocess.Popen:
    (tmp / "counters").mkdir(exist_ok=True)
    return start_driver(
        "concurrent_job.py",
        "--storage",
        tmp / "exo",
        "--workflow-id",
        "shared-id",
        "--sink",
        tmp / "sink",
        "--counter-dir",
        tmp / "counters",
        "--rows",
        ROWS,
        *extra,
    )


def run_here(spark, tmp: Path) -> dict:
    """The driver's workflow, run in this process on the suite's session."""
    return crash_job.run_under(spark, tmp, "shared-id", mode="true", rows=ROWS)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(proc.communicate()[1][-3000:])
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def log_files(tmp: Path) -> dict[str, bytes]:
    log = tmp / "exo/workflows/shared-id/log"
    return {str(p.relative_to(log)): p.read_bytes() for p in log.rglob("*") if p.is_file()}


@pytest.mark.subprocess
def test_second_live_driver_is_refused_and_a_killed_owner_does_not_block_resume(
    spark, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    owner = launch(tmp_path, "--gate-dir", str(gate))
    wait_for(gate / "waiting", owner)  # the owner holds run 1, inside task [orders]
    state = WorkflowStore(str(tmp_path / "exo"), "shared-id").read_state()
    assert state.status is WorkflowStatus.RUNNING and len(state.runs) == 1

    # a second driver (this process) on the same id while the owner is alive: refused, and
    # it writes nothing
    before = log_files(tmp_path)
    with pytest.raises(xf.ConcurrentRunError) as refused:
        run_here(spark, tmp_path)
    err = str(refused.value)
    assert "another live driver" in err and "[shared-id]" in err
    assert f"pid {owner.pid}" in err and "will not write" in err
    # heartbeats are rewritten in place; every other file is exactly as it was
    hb = [k for k in before if k.endswith(".heartbeat.json")]
    after = log_files(tmp_path)
    assert {k: v for k, v in after.items() if k not in hb} == {
        k: v for k, v in before.items() if k not in hb
    }
    assert not (tmp_path / "sink").exists()
    assert owner.poll() is None  # the owner was not disturbed

    # the owner dies without a word: its claim lapses at once on this host
    owner.send_signal(signal.SIGKILL)
    owner.communicate(timeout=60)
    assert xf.get_status("shared-id", storage=str(tmp_path / "exo")) is WorkflowStatus.RESUMABLE
    (gate / "open").touch()
    assert run_here(spark, tmp_path) == {"rows": 26}  # this process resumes

    state = WorkflowStore(str(tmp_path / "exo"), "shared-id").read_state()
    assert state.status is WorkflowStatus.SUCCESSFUL
    owners = [r.owner.pid for r in state.runs]
    assert owners == [owner.pid, os.getpid()]  # the refused attempt never claimed a run
    assert {rec.run for rec in state.commits.values()} == {2}
    sink = spark.read.format("delta").load(str(tmp_path / "sink"))
    assert sink.agg({"n": "sum"}).first()[0] == ROWS  # every row once
    assert spark.sql(f"DESCRIBE HISTORY delta.`{tmp_path / 'sink'}`").count() == 1


def fake_foreign_claim(store: WorkflowStore, heartbeat_age: float) -> None:
    """Write run 1 as if a driver on another host had started it, with its last heartbeat
    stamped ``heartbeat_age`` seconds before our clock's now (the records a real remote
    driver would leave; a negative age is a remote clock running ahead of ours)."""
    now = time.time()
    start = {
        "dag": {"output": "t", "tasks": []},
        "run": 1,
        "owner": {"host": "other-host.example", "pid": 1, "pid_start": "1"},
        "started_at": now - heartbeat_age - 60,
    }
    assert store.fs.put_if_absent(
        "workflows/wf/log/runs/000001.start.json", json.dumps(start).encode()
    )
    store.fs.put(
        "workflows/wf/log/runs/000001.heartbeat.json",
        json.dumps({"at": now - heartbeat_age}).encode(),
    )


def test_a_beating_foreign_claim_holds_though_its_clock_says_hours_ago(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The remote driver's clock is two hours behind ours: every heartbeat it writes looks
    two hours old. It still beats, so the claim holds (judging by timestamps took it over)."""
    monkeypatch.setattr(store_mod, "HEARTBEAT_TTL_SECONDS", 3.0)
    store = WorkflowStore(str(tmp_path), "wf")
    fake_foreign_claim(store, heartbeat_age=7200)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(0.1):
            store.fs.put(
                "workflows/wf/log/runs/000001.heartbeat.json",
                json.dumps({"at": time.time() - 7200}).encode(),
            )

    beater = threading.Thread(target=beat, daemon=True)
    beater.start()
    try:
        state = store.read_state()
        before = log_files_of(tmp_path)
        started = time.monotonic()
        with pytest.raises(
            xf.ConcurrentRunError, match=r"host other-host\.example, pid 1, run 1, since \d{4}-"
        ):
            store.start_run(state, DagRecord("t"))
        assert time.monotonic() - started < 3.0  # refused on the first beat seen
    finally:
        stop.set()
        beater.join()
    after = log_files_of(tmp_path)
    assert {k for k in after if "heartbeat" not in k} == {k for k in before if "heartbeat" not in k}
    assert len(store.read_state().runs) == 1


def test_a_silent_foreign_claim_lapses_after_the_ttl_though_its_clock_says_now(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The remote driver's clock ran an hour ahead and it died: its last heartbeat looks
    fresh for an hour by our clock. It does not change, so the claim lapses after the TTL."""
    monkeypatch.setattr(store_mod, "HEARTBEAT_TTL_SECONDS", 1.0)
    store = WorkflowStore(str(tmp_path), "wf")
    fake_foreign_claim(store, heartbeat_age=-3600)
    state = store.read_state()
    started = time.monotonic()
    assert store.start_run(state, DagRecord("t")) == 2
    assert time.monotonic() - started >= 1.0  # watched for the whole TTL first
    assert store.read_state().latest.owner.host != "other-host.example"


def log_files_of(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_a_heartbeat_keeps_a_foreign_claim_alive_past_the_ttl(tmp_path: Path) -> None:
    """Liveness is the heartbeat, not the start time: a long run on another host that keeps
    beating is never taken over."""
    store = WorkflowStore(str(tmp_path), "wf")
    fake_foreign_claim(store, heartbeat_age=store_mod.HEARTBEAT_TTL_SECONDS + 5)
    store.fs.put(
        "workflows/wf/log/runs/000001.heartbeat.json", json.dumps({"at": time.time()}).encode()
    )
    assert store.read_state().status is WorkflowStatus.RUNNING


def test_drivers_claiming_at_the_same_instant_have_one_winner(tmp_path: Path) -> None:
    stores = [WorkflowStore(str(tmp_path), "wf") for _ in range(6)]
    states = [s.read_state() for s in stores]  # all read "no run yet" before anyone claims
    barrier = threading.Barrier(len(stores))
    outcome: list[object] = [None] * len(stores)

    def claim(i: int) -> None:
        barrier.wait()
        try:
            outcome[i] = stores[i].start_run(states[i], DagRecord("t"))
        except xf.ConcurrentRunError as exc:
            outcome[i] = exc

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(o for o in outcome if isinstance(o, int)) == [1]
    refusals = [o for o in outcome if isinstance(o, xf.ConcurrentRunError)]
    assert len(refusals) == len(stores) - 1
    assert all("claimed run 1 at the same moment" in str(e) for e in refusals)
    assert len(stores[0].read_state().runs) == 1


@pytest.mark.subprocess
def wait_stopped(pid: int, timeout: float = 10.0) -> None:
    """Return once every thread of ``pid`` is stopped. ``kill(SIGSTOP)`` returns before the
    target stops: on a loaded host its heartbeat thread can still finish a write after it, which
    a watch started at once would read as a live owner (CI saw exactly that once)."""
    deadline = time.monotonic() + timeout
    tasks = Path(f"/proc/{pid}/task")
    while True:
        states = [(t / "stat").read_text().rsplit(")", 1)[1].split()[0] for t in tasks.iterdir()]
        if states and all(s in ("T", "t") for s in states):
            return
        assert time.monotonic() < deadline, f"pid {pid} did not stop: thread states {states}"
        time.sleep(0.01)


def test_claims_stay_exclusive_across_forged_hosts_skewed_clocks_and_a_stall(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two real processes on "different hosts": the owner forges its host name and runs its
    clock two hours behind ours (its heartbeats all look two hours old). It is refused to us
    while it beats; stalled for real (SIGSTOP, as a long GC pause), its claim lapses after
    the TTL of our monotonic clock and we take over; woken up (SIGCONT), it commits nothing."""
    ttl = 3.0
    monkeypatch.setattr(store_mod, "HEARTBEAT_TTL_SECONDS", ttl)
    root = str(tmp_path / "exo")
    owner = start_driver(
        "claim_holder.py",
        "--storage", root, "--workflow-id", "wf", "--host", "host-a.example",
        "--skew", -7200, "--interval", 0.3, "--go", tmp_path / "go",
    )  # fmt: skip
    line = owner.stdout.readline()
    assert line.strip() == "CLAIMED 1", line + owner.stderr.read()[-3000:]
    store = WorkflowStore(root, "wf")
    state = store.read_state()
    assert state.latest.owner.host == "host-a.example"
    assert state.latest.started_at < time.time() - 7000  # stamped by the skewed clock

    started = time.monotonic()
    with pytest.raises(xf.ConcurrentRunError, match=rf"host host-a\.example, pid {owner.pid}"):
        store.start_run(state, DagRecord("t"))
    assert time.monotonic() - started < ttl
    assert len(store.read_state().runs) == 1

    owner.send_signal(signal.SIGSTOP)  # a stall: alive, but its heartbeat stops
    try:
        wait_stopped(owner.pid)  # a heartbeat write in flight lands before the watch begins
        taker = WorkflowStore(root, "wf")
        started = time.monotonic()
        assert taker.start_run(taker.read_state(), DagRecord("t")) == 2
        assert time.monotonic() - started >= ttl
    finally:
        owner.send_signal(signal.SIGCONT)
    (tmp_path / "go").touch()
    out, err = owner.communicate(timeout=60)
    assert owner.returncode == 3, out + err[-3000:]
    assert "FENCED" in out and "taken over by run 2" in out
    assert not (tmp_path / "exo/workflows/wf/log/tasks").exists()  # the stalled owner wrote none
    assert [r.owner.host for r in WorkflowStore(root, "wf").read_state().runs] == [
        "host-a.example",
        socket.gethostname(),
    ]


def test_a_live_owner_is_named_before_any_check_of_the_dag(spark, tmp_path: Path) -> None:
    """A second driver whose task code (or whole DAG) differs from the live owner's hears
    that the workflow is busy, and who holds it, before anything else; it writes nothing."""
    storage = str(tmp_path / "exo")

    @xf.task
    def rows(n: int) -> int:
        return n

    @xf.task
    def other() -> int:
        return 0

    owner = WorkflowStore(storage, "busy")
    owner.start_run(owner.read_state(), DagRecord.from_json(Dag(rows.bind(1)).to_record()))
    # committed by code that differs from this process's (its fingerprint is another)
    owner.commit_task("rows", 0, CommitRecord.of_value(1))
    log = tmp_path / "exo/workflows/busy/log"
    before = {p: p.read_bytes() for p in log.rglob("*") if p.is_file()}
    for dag in (rows.bind(1), other.bind()):
        with pytest.raises(xf.ConcurrentRunError) as info:
            xf.run(dag, workflow_id="busy", storage=storage, spark=spark)
        msg = str(info.value)
        assert f"host {socket.gethostname()}, pid {os.getpid()}, run 1, since " in msg
        assert "will not write" in msg
    assert {p: p.read_bytes() for p in log.rglob("*") if p.is_file()} == before
