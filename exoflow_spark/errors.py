"""The exception hierarchy: every error exoflow-spark raises derives from :class:`ExoflowError`.

Messages name the workflow id and task id involved and say what to do next. User and Spark
errors are wrapped once (``raise ... from exc``) so the original cause stays attached.
"""

from __future__ import annotations

from .core.fmt import error_line
from .core.redact import redact


class ExoflowError(Exception):
    """Base class of every exoflow-spark error."""


class InvalidOptionError(ExoflowError, ValueError):
    """A task option or API argument has a value exoflow-spark cannot accept."""


class InvalidIdError(ExoflowError, ValueError):
    """A workflow or task id would be unsafe as a path component or SQL identifier."""


class DagError(ExoflowError):
    """The DAG cannot be run as built (a cycle, an unbound input, an unsafe annotation)."""


class PipelineError(DagError):
    """A declarative pipeline (``spark-pipeline.yml`` project) cannot be run as defined."""


class WorkflowNotFoundError(ExoflowError, LookupError):
    """No workflow with this id exists under the storage root."""

    def __init__(self, workflow_id: str, storage: str) -> None:
        super().__init__(
            f"workflow [{workflow_id}] not found under storage {storage!r}: check the id and the "
            "storage root (`exoflow-spark list --storage ...` shows what exists), or start it "
            "with xf.run(...)"
        )
        self.workflow_id = workflow_id
        self.storage = storage


class TaskNotCommittedError(ExoflowError, LookupError):
    """A task's output was asked for but the task has no durable output."""


class TaskChangedError(ExoflowError):
    """A committed task's code or inputs differ from the DAG being run under the same id."""

    def __init__(self, workflow_id: str, changed: list[str]) -> None:
        names = ", ".join(f"[{t}]" for t in changed)
        super().__init__(
            f"workflow [{workflow_id}]: committed task(s) {names} changed since they committed "
            "(code or inputs differ), so their stored outputs may be stale. Either run under a "
            f"new workflow id, or re-run them and everything downstream with "
            f"xf.run(..., invalidate={changed!r})"
        )
        self.workflow_id = workflow_id
        self.changed = changed


class WorkflowChangedError(ExoflowError):
    """A run's DAG is not the one logged under its workflow id (other tasks, edges or output):
    refused before anything is written, unless the run asks to replace it (``replace=True``)."""

    def __init__(self, workflow_id: str, differences: list[str]) -> None:
        super().__init__(
            f"workflow [{workflow_id}] was run with a different DAG: "
            + "; ".join(differences)
            + ". A workflow id names one DAG (it is an idempotency key), so nothing was written. "
            "Run this DAG under a new workflow id; or, to make this id run it from now on, pass "
            "xf.run(..., replace=True) (CLI: --replace): committed tasks whose code and inputs "
            "are unchanged are kept, changed ones re-run with everything downstream"
        )
        self.workflow_id = workflow_id
        self.differences = differences


class TaskFailedError(ExoflowError):
    """A task raised (after its retries); the original exception is ``__cause__``."""

    def __init__(self, workflow_id: str, task_id: str, attempts: int, cause: BaseException):
        super().__init__(
            f"workflow [{workflow_id}] task [{task_id}] failed after {attempts} attempt(s): "
            f"{error_line(cause)}. Fix the cause and re-run the same workflow id: "
            "committed tasks will not run again"
        )
        self.workflow_id = workflow_id
        self.task_id = task_id
        self.attempts = attempts


class CheckpointError(ExoflowError):
    """Writing or reading a task's checkpoint failed; the task is not reported durable."""


class ConcurrentRunError(ExoflowError):
    """Another live driver is running this workflow id; this one refuses to write."""


class StorageRootError(InvalidOptionError, InvalidIdError):
    """The storage root cannot hold workflows (empty, not a string, a file, an unwritable
    place, a scheme no Hadoop FileSystem serves): the CLI exits 2. An
    :class:`InvalidIdError` too, as the other refusals of a storage root are."""


class StorageError(ExoflowError, OSError):
    """The workflow log could not be read or written (after retries)."""


class LogSchemaError(ExoflowError):
    """A workflow log record this exoflow-spark cannot read: written by a newer release (upgrade
    exoflow-spark), or altered by hand. Nothing is written to a log that raised it."""


class SparkSessionError(ExoflowError):
    """No usable SparkSession: none active, or Delta Lake is not configured on it."""


class SinkError(ExoflowError):
    """An exactly-once sink was used wrongly (outside a task, bad mode or path)."""


class TaskContextError(ExoflowError, RuntimeError):
    """A task-only call (``xf.current_task()``, ``xf.get_spark()`` without a session) was made
    outside a running task."""


class UsageError(ExoflowError):
    """A command cannot do what was asked (bad target, nothing to resume from): the CLI exits 2."""


class RecoveryError(ExoflowError):
    """The log describes a state that cannot be recovered exactly once."""


class CheckpointLostError(RecoveryError, CheckpointError):
    """A committed task's Delta checkpoint is missing or unreadable.

    Raised while restoring; a deterministic task without sinks is then replayed from its
    inputs instead (see :func:`exoflow_spark.engine.restore.restore_or_replay`); anything
    else stops with this error.
    """

    def __init__(self, task_id: str, path: str, version: int | None, reason: str) -> None:
        where = (
            f"Parquet files in {redact(path)}"
            if version is None
            else f"Delta table {redact(path)}, version {version}"
        )
        super().__init__(
            f"task [{task_id}]: its committed checkpoint ({where}) is damaged: {reason}"
        )
        self.task_id = task_id
        self.path = path
        self.version = version
        self.reason = reason
