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

``<task_id>:<phase>@<n>`` kills at the n-th time that point is reached in this process
(e.g. in the second micro-batch), not the first.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
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
