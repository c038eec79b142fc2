"""Crash points for recovery tests: ``EXOFLOW_CRASH_AT=<task_id>:<phase>`` kills the driver.

The kill is real: the process sends itself SIGKILL, so nothing (no ``finally``, no atexit, no
JVM shutdown hook) runs, exactly as when a node dies. ``*`` matches any task. Phases:

* ``before-run``: the task is about to call its function;
* ``after-output``: the function returned, nothing durable yet;
* ``during-checkpoint``: the Delta checkpoint is written, its commit record is not;
* ``after-commit``: the commit record is durable;
* ``during-sink``: an exactly-once sink wrote its Delta commit and has not returned;
* ``during-batch``: a streaming task's micro-batch made one of its writes, not all;
* ``after-batch``: a micro-batch's writes are done, Spark has not recorded it as committed;
* ``during-iteration``: ``xf.iterate`` built a step and has not cut after it
  (``@n``: in the n-th step this process builds).
* ``before-async-write``: an async checkpoint's writer is about to write the cached output.

``<task_id>:<phase>@<n>`` kills at the n-th time that point is reached in this process
(e.g. in the second micro-batch), not the first.

``before-async-write`` is also a *hold point*: with ``EXOFLOW_HOLD_AT=<task_id>:<phase>``
and ``EXOFLOW_HOLD_DIR=<dir>``, the thread reaching it creates ``<dir>/<task_id>.<phase>.held``
and waits (up to ``EXOFLOW_HOLD_SECONDS``, default 300) until ``<dir>/<task_id>.<phase>.go``
exists: a test acts from outside at that exact moment (SIGKILLs an executor JVM), then lets
it go.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import Counter

logger = logging.getLogger(__name__)

PHASES = (
    "before-run",
    "after-output",
    "during-checkpoint",
    "after-commit",
    "during-sink",
    "during-batch",
    "after-batch",
    "during-iteration",
    "before-async-write",
)
_hits: Counter[str] = Counter()
_lock = threading.Lock()


def crash_point(task_id: str, phase: str) -> None:
    """SIGKILL this process if ``EXOFLOW_CRASH_AT`` names this task and phase."""
    spec = os.environ.get("EXOFLOW_CRASH_AT")
    if not spec:
        return
    spec, _, nth = spec.partition("@")
    want_task, _, want_phase = spec.rpartition(":")
    if want_phase == phase and want_task in (task_id, "*"):
        with _lock:
            _hits[phase] += 1
            if nth and _hits[phase] < int(nth):
                return
        logger.warning("[%s] crash point %s reached: killing the driver (SIGKILL)", task_id, phase)
        for handler in logging.getLogger().handlers:
            handler.flush()
        os.kill(os.getpid(), signal.SIGKILL)


def hold_point(task_id: str, phase: str) -> None:
    """Wait here for a test's go-ahead if ``EXOFLOW_HOLD_AT`` names this task and phase."""
    spec = os.environ.get("EXOFLOW_HOLD_AT")
    folder = os.environ.get("EXOFLOW_HOLD_DIR")
    if not spec or not folder:
        return
    want_task, _, want_phase = spec.rpartition(":")
    if want_phase != phase or want_task not in (task_id, "*"):
        return
    stem = os.path.join(folder, f"{task_id}.{phase}")
    with open(f"{stem}.held", "w"):
        pass
    logger.warning("[%s] hold point %s reached: waiting for %s.go", task_id, phase, stem)
    deadline = time.monotonic() + float(os.environ.get("EXOFLOW_HOLD_SECONDS", "300"))
    while not os.path.exists(f"{stem}.go") and time.monotonic() < deadline:
        time.sleep(0.05)
