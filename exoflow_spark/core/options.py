"""Task options: one frozen dataclass, validated when the task is declared.

Its field defaults are the only place option defaults are written (:data:`TASK_DEFAULTS`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Union

from ..errors import InvalidOptionError

#: ``False``: never durable, replayed from lineage; ``True``: durable before any consumer runs;
#: ``"async"``: consumers start on the cached output while a background write commits it;
#: ``"auto"``: written when recomputing the output after a crash would cost more than writing
#: it (from measured costs; sync on a storage root with cheap writes, else like ``"async"``),
#: else a lazy plan that fuses into its consumers (see ``engine/autockpt.py``).
CheckpointMode = Union[bool, Literal["async", "auto"]]  # noqa: UP007 - a runtime alias

_VALID_CHECKPOINT = (True, False, "async", "auto")


class _Undeclared:
    """The default of ``@task(checkpoint=...)``: not declared, the run's policy decides."""

    def __repr__(self) -> str:
        return "<the run's checkpoint policy>"


#: ``@task``'s default ``checkpoint``: the task declares none, so the run's policy applies
#: (``xf.run(checkpoint=...)``; with the default policy ``"none"`` that is
#: ``TASK_DEFAULTS.checkpoint``, i.e. False).
UNDECLARED: Any = _Undeclared()

#: The run-wide checkpoint policies (``xf.run(checkpoint=...)``, ``exoflow-spark run
#: --checkpoint``): each applies to every task that declares no ``checkpoint`` option of its
#: own. ``"none"`` is today's default (undeclared tasks are replayed, ``checkpoint=False``).
CHECKPOINT_POLICIES: dict[str, CheckpointMode] = {
    "none": False,
    "sync": True,
    "async": "async",
    "auto": "auto",
}

#: The policy a run uses when none is given (see the README: ``"auto"`` is opt-in).
DEFAULT_CHECKPOINT_POLICY = "none"


def checkpoint_policy(policy: object) -> CheckpointMode:
    """The checkpoint mode a run-wide ``policy`` name gives undeclared tasks.

    Raises:
        InvalidOptionError: ``policy`` is not one of :data:`CHECKPOINT_POLICIES`.
    """
    if isinstance(policy, str) and policy in CHECKPOINT_POLICIES:
        return CHECKPOINT_POLICIES[policy]
    raise InvalidOptionError(
        f"checkpoint={policy!r} is not a checkpoint policy; use one of "
        f"{sorted(CHECKPOINT_POLICIES)}: 'auto' (the engine writes the outputs whose "
        "recomputation after a crash would cost more than writing them, from measured costs), "
        "'none' (replay, the default), 'async' or 'sync' (write every output); a task's own "
        "checkpoint= option always wins"
    )


@dataclass(frozen=True)
class TaskOptions:
    """How a task runs and how its output is made recoverable.

    Attributes:
        checkpoint: ``False`` (replay), ``True`` (sync Delta checkpoint), ``"async"`` or
            ``"auto"`` (async when recomputing is estimated dearer than writing).
        deterministic: re-running gives the same rows (as a multiset) / the same value.
        max_retries: extra attempts after a failure that is retried (system errors always,
            application errors only with ``retry_exceptions``).
        retry_exceptions: also retry exceptions raised by the task's own code.
        catch_exceptions: hand ``(result, None)`` or ``(None, exception)`` to consumers instead
            of failing the workflow.
        wait_until_committed: names of tasks whose checkpoints must be durable before this
            task starts (for externally visible effects).
        name: the task id; defaults to the function name (de-duplicated within a DAG).
        sink: the task has effects outside the workflow (``xf.write_delta``). Detected
            automatically when the function calls ``write_delta`` itself; declare it when a
            helper does. Sinks wait until every nondeterministic input they read is durable.
    """

    checkpoint: CheckpointMode = False
    deterministic: bool = True
    max_retries: int = 3
    retry_exceptions: bool = False
    catch_exceptions: bool = False
    wait_until_committed: tuple[str, ...] = field(default_factory=tuple)
    name: str | None = None
    sink: bool = False
    #: whether ``checkpoint`` was declared (``@task(checkpoint=...)``, ``.options(...)``):
    #: a run-wide policy (``xf.run(checkpoint="auto")``) applies only to undeclared tasks
    checkpoint_declared: bool = field(default=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        where = f"task [{self.name}]" if self.name else "task"
        if not any(self.checkpoint is v or self.checkpoint == v for v in _VALID_CHECKPOINT) or (
            isinstance(self.checkpoint, int) and not isinstance(self.checkpoint, bool)
        ):
            raise InvalidOptionError(
                f"{where}: checkpoint={self.checkpoint!r} is not valid; use False (replay), "
                "True (sync Delta checkpoint), 'async' (background Delta checkpoint) or 'auto' "
                "(async when recomputing would cost more than writing)"
            )
        for flag in (
            "deterministic",
            "retry_exceptions",
            "catch_exceptions",
            "sink",
            "checkpoint_declared",
        ):
            if not isinstance(getattr(self, flag), bool):
                raise InvalidOptionError(
                    f"{where}: {flag}={getattr(self, flag)!r} must be True or False"
                )
        if (
            not isinstance(self.max_retries, int)
            or isinstance(self.max_retries, bool)
            or self.max_retries < 0
        ):
            raise InvalidOptionError(
                f"{where}: max_retries={self.max_retries!r} must be an integer >= 0"
            )
        wuc = self.wait_until_committed
        if isinstance(wuc, str) or not isinstance(wuc, Iterable):
            raise InvalidOptionError(
                f"{where}: wait_until_committed={wuc!r} must be a list or tuple of task names, "
                f"e.g. wait_until_committed=[{wuc!r}]"
            )
        names = tuple(wuc)
        if not all(isinstance(n, str) and n for n in names):
            raise InvalidOptionError(
                f"{where}: wait_until_committed={wuc!r} must contain task names (strings)"
            )
        object.__setattr__(self, "wait_until_committed", names)
        if self.name is not None:
            from ..errors import InvalidIdError
            from .ids import validate_id

            try:
                validate_id(self.name, kind="task name")
            except InvalidIdError as exc:
                raise InvalidOptionError(str(exc)) from exc

    @property
    def checkpoint_label(self) -> str:
        """``"none"``, ``"sync"`` or ``"async"``: the mode as a word for logs and tables."""
        if self.checkpoint in ("async", "auto"):
            return str(self.checkpoint)
        return "sync" if self.checkpoint is True else "none"


#: Every option at its default: the one place defaults are written is the fields above;
#: ``@task``, ``@streaming_task`` and the docs read them from here.
TASK_DEFAULTS = TaskOptions()
