"""Executor loss for real: one executor JVM of a local-cluster is SIGKILLed mid-run.

Cached blocks on it are lost; the run still finishes with the right result. With the source
stage checkpointed, the lost blocks are rebuilt from the Delta version (the source is not
computed again); without a checkpoint they are rebuilt from the whole lineage (the control).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from drivers import start_driver

ROWS = 200_000
EXPECTED = 2 * sum(range(ROWS))
pytestmark = pytest.mark.subprocess


def executor_pids(app_id: str) -> list[int]:
    out = subprocess.run(
        ["pgrep", "-f", f"CoarseGrainedExecutorBackend.*{app_id}"], capture_output=True, text=True
    ).stdout.split()
    return [int(p) for p in out]


def run_with_executor_kill(tmp: Path, checkpoint: str) -> dict:
    signals = tmp / f"signals-{checkpoint}"
    signals.mkdir()
    proc = start_driver(
        "executor_job.py",
        "--storage",
        tmp / f"exo-{checkpoint}",
        "--signal-dir",
        signals,
        "--checkpoint",
        checkpoint,
    )
    try:
        deadline = time.time() + 240
        while not (signals / "ready").exists():
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.time() < deadline, "the job never filled its cache"
            time.sleep(0.1)
        app_id = json.loads((signals / "ready").read_text())["app_id"]
        pids = executor_pids(app_id)
        assert len(pids) == 2, f"expected 2 executor JVMs of {app_id}, found {pids}"
        os.kill(pids[0], signal.SIGKILL)
        (signals / "go").write_text("")
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    [line] = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
    return json.loads(line[len("RESULT ") :])


def test_executor_loss_rebuilds_from_the_checkpoint_not_the_source(tmp_path: Path) -> None:
    with_ckpt = run_with_executor_kill(tmp_path, "true")
    assert with_ckpt["first"] == with_ckpt["second"] == EXPECTED
    assert with_ckpt["groups"] == 10
    assert with_ckpt["source_rows_computed"] == ROWS  # once, for the checkpoint

    control = run_with_executor_kill(tmp_path, "false")
    assert control["first"] == control["second"] == EXPECTED
    assert control["source_rows_computed"] > ROWS  # lost blocks came from the source again
