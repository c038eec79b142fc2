"""Driver liveness (storage/store.py): pid plus start time through psutil, no /proc needed.

No Spark: a run record's owner is checked against real processes of this machine.
"""

from __future__ import annotations

import builtins
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from exoflow_spark.core.records import RunStart
from exoflow_spark.storage import store
from exoflow_spark.storage.store import RunInfo, process_start_time, this_owner

#: long enough ago that the heartbeat alone would call the run dead
_STALE = time.time() - 3600


def _run(owner: dict[str, Any]) -> RunInfo:
    """A run whose start record (as read from the log) names ``owner``."""
    return RunInfo(
        number=1, start=RunStart.from_json({"run": 1, "owner": owner, "started_at": _STALE})
    )


def _owner() -> dict[str, Any]:
    """This process as a start record's owner field."""
    return this_owner().to_json()


def test_this_process_is_alive() -> None:
    owner = _owner()
    assert owner["pid"] == os.getpid()
    assert abs(owner["pid_created"] - process_start_time(os.getpid())) < 1e-6
    assert _run(owner).owner_alive()


def test_a_dead_pid_is_not_alive() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    started = process_start_time(child.pid)
    child.wait()
    assert process_start_time(child.pid) is None
    owner = {"host": socket.gethostname(), "pid": child.pid, "pid_created": started}
    assert not _run(owner).owner_alive()


def test_a_live_pid_with_another_start_time_is_not_the_driver() -> None:
    """A recycled pid: the process lives, but it started at another time."""
    owner = _owner()
    later = dict(owner, pid_created=owner["pid_created"] + 60)
    assert not _run(dict(later, pid_start=None)).owner_alive()
    if owner["pid_start"] is not None:  # Linux: the 0.1.0 field decides, exactly
        ticks = dict(owner, pid_start=str(int(owner["pid_start"]) + 1))
        assert not _run(ticks).owner_alive()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
def test_an_owner_recorded_by_0_1_0_is_recognised() -> None:
    """0.1.0 recorded only pid_start, read from /proc/<pid>/stat (ticks since boot)."""
    pid = os.getpid()
    with open(f"/proc/{pid}/stat") as fh:
        ticks = fh.read().rsplit(")", 1)[1].split()[19]
    owner = {"host": socket.gethostname(), "pid": pid, "pid_start": ticks}
    assert this_owner().pid_start == ticks  # still written in 0.1.0's format
    assert _run(owner).owner_alive()
    assert not _run(dict(owner, pid_start=str(int(ticks) - 5))).owner_alive()


def test_live_driver_is_alive_without_proc(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host without /proc (macOS): exoflow-spark never reads it; only psutil's platform
    layer may (on Linux it has to, the way it reads kinfo_proc on macOS)."""
    real_open = builtins.open

    def no_proc(file: Any, *args: Any, **kwargs: Any) -> Any:
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if str(file).startswith("/proc") and not caller.startswith("psutil"):
            raise FileNotFoundError(2, "No such file or directory", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", no_proc)
    monkeypatch.setattr(store, "_BOOT_TICKS", False)  # no ticks-since-boot measure either
    owner = _owner()
    assert owner["pid_start"] is None
    assert _run(owner).owner_alive()
    assert not _run(dict(owner, pid_created=owner["pid_created"] - 60)).owner_alive()


def test_an_owner_without_start_time_falls_back_to_the_heartbeat() -> None:
    """0.1.0 on a host without /proc recorded pid_start None: the heartbeat decides."""
    owner = {"host": socket.gethostname(), "pid": os.getpid(), "pid_start": None}
    assert not _run(owner).owner_alive()
    fresh = _run(owner)
    fresh.heartbeat_at = time.time()
    assert fresh.owner_alive()
