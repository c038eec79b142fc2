"""Tasks and nodes: ``@task`` wraps a function; ``Task.bind`` makes a lazy DAG node.

Example:
    >>> import exoflow_spark as xf
    >>> @xf.task(checkpoint="async")
    ... def clean(raw):
    ...     return raw.dropna()
    >>> node = clean.bind(load.bind("/data/in"))   # nothing runs yet
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any, Generic, TypeVar, overload

from ..errors import InvalidOptionError
from .options import TASK_DEFAULTS, UNDECLARED, CheckpointMode, TaskOptions

R = TypeVar("R")


class Task(Generic[R]):
    """A Python function that runs as one recoverable step of a workflow.

    Create with the :func:`task` decorator. Call :meth:`bind` to build a DAG node; call
    :attr:`fn` to run the plain function (e.g. in a unit test).
    """

    def __init__(self, fn: Callable[..., R], options: TaskOptions) -> None:
        if not callable(fn):
            raise InvalidOptionError(f"@task must decorate a function, got {fn!r}")
        self.fn = fn
        self.opts = options
        functools.update_wrapper(self, fn)

    @property
    def name(self) -> str:
        """The task's base id: ``name=`` if given, else the function's name."""
        return self.opts.name or str(getattr(self.fn, "__name__", "task"))

    def bind(self, *args: Any, **kwargs: Any) -> Node:
        """Bind inputs and return a lazy DAG node. Inputs may be nodes, DataFrames or small
        Python values, also nested in lists, tuples and dicts. Nothing runs until ``xf.run``.
        """
        return Node(self, args, kwargs)

    def options(self, **changes: Any) -> Task[R]:
        """A copy of this task with some options changed, e.g. ``t.options(checkpoint=True)``."""
        valid = set(TaskOptions.__dataclass_fields__) - {"checkpoint_declared"}
        unknown = set(changes) - valid
        if unknown:
            raise InvalidOptionError(
                f"task [{self.name}]: unknown option(s) {sorted(unknown)}; valid options are "
                f"{sorted(valid)}"
            )
        if "checkpoint" in changes:
            changes["checkpoint_declared"] = True
        return Task(self.fn, replace(self.opts, **changes))

    def finish(self, result: Any, ctx: Any) -> Any:
        """Turn what the function returned into the task's output (the engine calls this once
        per attempt, inside the task's context). A plain task's output is its return value;
        a streaming task runs its query here (:class:`~exoflow_spark.io.streaming.StreamingTask`).
        """
        return result

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"task [{self.name}] is not called directly: use {self.name}.bind(...) to add it to "
            f"a DAG and xf.run(...) to run it, or {self.name}.fn(...) to call the plain function"
        )

    def __repr__(self) -> str:
        return f"Task({self.name}, checkpoint={self.opts.checkpoint!r})"


class Node:
    """A task bound to its inputs. Nodes are immutable and compared by identity."""

    __slots__ = ("args", "kwargs", "task")

    def __init__(self, task: Task[Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.task = task
        self.args = args
        self.kwargs = kwargs

    def upstream(self) -> list[Node]:
        """The nodes this node reads, in argument order, without duplicates."""
        seen: dict[int, Node] = {}
        for value in iter_nested((self.args, self.kwargs)):
            if isinstance(value, Node):
                seen.setdefault(id(value), value)
        return list(seen.values())

    def __repr__(self) -> str:
        return f"Node({self.task.name})"


def iter_nested(value: Any) -> Iterable[Any]:
    """Yield ``value`` and every element nested in lists, tuples and dicts (values only)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, (list, tuple)):
            stack.extend(reversed(item))
        elif isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
        else:
            yield item


def map_nested(value: Any, fn: Callable[[Any], Any]) -> Any:
    """Rebuild ``value`` with ``fn`` applied to every leaf (lists, tuples, dicts preserved)."""
    if isinstance(value, list):
        return [map_nested(v, fn) for v in value]
    if isinstance(value, tuple):
        return tuple(map_nested(v, fn) for v in value)
    if isinstance(value, dict):
        return {k: map_nested(v, fn) for k, v in value.items()}
    return fn(value)


@overload
def task(fn: Callable[..., R], /) -> Task[R]: ...


@overload
def task(
    *,
    checkpoint: CheckpointMode = ...,
    deterministic: bool = ...,
    max_retries: int = ...,
    retry_exceptions: bool = ...,
    catch_exceptions: bool = ...,
    wait_until_committed: Iterable[str] = ...,
    name: str | None = ...,
    sink: bool = ...,
) -> Callable[[Callable[..., R]], Task[R]]: ...


def task(
    fn: Callable[..., R] | None = None,
    /,
    *,
    checkpoint: CheckpointMode = UNDECLARED,
    deterministic: bool = TASK_DEFAULTS.deterministic,
    max_retries: int = TASK_DEFAULTS.max_retries,
    retry_exceptions: bool = TASK_DEFAULTS.retry_exceptions,
    catch_exceptions: bool = TASK_DEFAULTS.catch_exceptions,
    wait_until_committed: Iterable[str] = TASK_DEFAULTS.wait_until_committed,
    name: str | None = TASK_DEFAULTS.name,
    sink: bool = TASK_DEFAULTS.sink,
) -> Task[R] | Callable[[Callable[..., R]], Task[R]]:
    """Declare a workflow task. Works bare (``@task``) or with options (``@task(...)``).

    Args:
        checkpoint: ``False`` keeps the output a lazy plan (replayed if lost; cached when two or
            more consumers read it); ``True`` commits it to a Delta table before any consumer
            runs; ``"auto"`` writes it only when recomputing it after a crash would cost more
            than writing it (from measured costs, see :func:`~exoflow_spark.run`; sync on a
            storage root with cheap writes, else like ``"async"``), else keeps it a lazy
            plan like ``False``; not given: the run's policy decides
            (``xf.run(checkpoint=...)``, default ``"none"``, i.e. ``False``);
            ``"async"`` lets consumers start on the cached output while a background
            writer commits it.
        deterministic: whether re-running gives the same rows (as a multiset).
        max_retries: extra attempts for retried failures.
        retry_exceptions: also retry exceptions raised by the task's own code (system errors,
            such as a lost executor or a Py4J failure, are always retried).
        catch_exceptions: deliver ``(result, None)`` or ``(None, exception)`` downstream
            instead of failing.
        wait_until_committed: task names whose checkpoints must be durable before this starts.
        name: task id (defaults to the function name).
        sink: the task writes outside the workflow (detected when it calls ``write_delta``
            directly; declare it when a helper does).

    Example:
        >>> @task(checkpoint=True)
        ... def bronze(spark_path: str): ...
    """
    opts = TaskOptions(
        checkpoint=TASK_DEFAULTS.checkpoint if checkpoint is UNDECLARED else checkpoint,
        deterministic=deterministic,
        max_retries=max_retries,
        retry_exceptions=retry_exceptions,
        catch_exceptions=catch_exceptions,
        wait_until_committed=wait_until_committed,  # type: ignore[arg-type]
        name=name,
        sink=sink,
        checkpoint_declared=checkpoint is not UNDECLARED,
    )
    if fn is not None:
        return Task(fn, opts)
    return lambda f: Task(f, opts)
