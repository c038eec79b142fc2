"""One live driver per workflow id: real driver processes race for the same id.

A second driver is refused with ConcurrentRunError before it writes anything; a SIGKILLed
owner's claim lapses at once on its host (pid liveness) and after the heartbeat TTL when the
owner is on another host, so a resume is never blocked by a dead driver.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from drivers import start_driver

import exoflow_spark as xf
from exoflow_spark.core.records import DagRecord
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

    # a second, real driver on the same id while the owner is alive: refused, writes nothing
    before = log_files(tmp_path)
    intruder = launch(tmp_path)
    _, err = intruder.communicate(timeout=240)
    assert intruder.returncode == 3, err[-3000:]
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
    resumer = launch(tmp_path, "--gate-dir", str(gate))
    out, err = resumer.communicate(timeout=240)
    assert resumer.returncode == 0, err[-3000:]
    assert "RESULT {'rows': 26}" in out

    state = WorkflowStore(str(tmp_path / "exo"), "shared-id").read_state()
    assert state.status is WorkflowStatus.SUCCESSFUL
    owners = [r.owner.pid for r in state.runs]
    assert owners == [owner.pid, resumer.pid]  # the refused driver never claimed a run
    assert {rec.run for rec in state.commits.values()} == {2}
    sink = spark.read.format("delta").load(str(tmp_path / "sink"))
    assert sink.agg({"n": "sum"}).first()[0] == ROWS  # every row once
    assert spark.sql(f"DESCRIBE HISTORY delta.`{tmp_path / 'sink'}`").count() == 1


def fake_foreign_claim(store: WorkflowStore, heartbeat_age: float) -> None:
    """Write run 1 as if a driver on another host had started it, with its last heartbeat
    ``heartbeat_age`` seconds ago (the records a real remote driver would leave)."""
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


def test_foreign_host_claim_holds_while_its_heartbeat_is_fresh(tmp_path: Path) -> None:
    store = WorkflowStore(str(tmp_path), "wf")
    fake_foreign_claim(store, heartbeat_age=1.0)
    state = store.read_state()
    assert state.status is WorkflowStatus.RUNNING
    with pytest.raises(xf.ConcurrentRunError, match=r"host other-host\.example, pid 1, run 1"):
        store.start_run(state, DagRecord("t"))
    assert len(store.read_state().runs) == 1


def test_foreign_host_claim_expires_after_the_heartbeat_ttl(tmp_path: Path) -> None:
    store = WorkflowStore(str(tmp_path), "wf")
    fake_foreign_claim(store, heartbeat_age=store_mod.HEARTBEAT_TTL_SECONDS + 5)
    state = store.read_state()
    assert state.status is WorkflowStatus.RESUMABLE
    assert store.start_run(state, DagRecord("t")) == 2
    assert store.read_state().latest.owner.host != "other-host.example"


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
