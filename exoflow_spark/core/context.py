"""The task context: which workflow, task and SparkSession the running task belongs to."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import TaskContextError


@dataclass
class TaskContext:
    """What a running task may ask about itself (see :func:`current_task`)."""

    workflow_id: str
    task_id: str
    spark: Any
    generation: int
    attempt: int
    store: Any = None
    run: int = 0
    is_sink: bool = True
    sink_seq: int = field(default=0)
    #: the task's fingerprint in the DAG (code, literal inputs, upstream fingerprints); None
    #: when the engine did not say (a context built by hand)
    fingerprint: str | None = None
    #: False when the task is nondeterministic or reads a nondeterministic output that is not
    #: durable yet: a re-execution may then see other data (``xf.iterate`` does not resume)
    deterministic: bool = True
    #: how many ``xf.iterate`` calls this attempt made so far (each call's cuts are its own)
    iterate_seq: int = field(default=0)

    def next_sink_version(self) -> int:
        """The attempt-free sequence number of the next sink write in this task."""
        version = self.generation * 1_000_000 + self.sink_seq
        self.sink_seq += 1
        return version


_current: contextvars.ContextVar[TaskContext | None] = contextvars.ContextVar(
    "exoflow_task_context", default=None
)


def current_task() -> TaskContext:
    """The context of the task running in this thread.

    Example:
        >>> @xf.task
        ... def load(path):
        ...     return xf.current_task().spark.read.json(path)
    """
    ctx = _current.get()
    if ctx is None:
        raise TaskContextError(
            "no exoflow task is running in this thread: current_task() and write_delta() "
            "work only inside a function decorated with @xf.task while xf.run executes it"
        )
    return ctx


def get_spark() -> Any:
    """The SparkSession of the running task (shortcut for ``current_task().spark``)."""
    return current_task().spark


@contextlib.contextmanager
def task_context(ctx: TaskContext) -> Iterator[TaskContext]:
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)
