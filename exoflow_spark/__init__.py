"""exoflow-spark: recoverable, exactly-once DAGs of Spark DataFrame tasks."""

from __future__ import annotations

from ._config import set_default_storage
from ._spark import create_spark_session
from .api import WorkflowInfo, explain, get_output, get_status, list_workflows, resume, run
from .context import TaskContext, current_task, get_spark
from .errors import (
    CheckpointError,
    ConcurrentRunError,
    DagError,
    ExoflowError,
    InvalidIdError,
    InvalidOptionError,
    SinkError,
    SparkSessionError,
    StorageError,
    TaskChangedError,
    TaskFailedError,
    TaskNotCommittedError,
    WorkflowNotFoundError,
)
from .iterate import IterationReport, iterate
from .options import CheckpointMode, TaskOptions
from .recovery import Decision, RecoveryError, RecoveryPlan, Throughput
from .sink import write_delta
from .status import TaskStatus, WorkflowStatus
from .task import Node, Task, task

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "CheckpointMode",
    "ConcurrentRunError",
    "DagError",
    "Decision",
    "ExoflowError",
    "InvalidIdError",
    "InvalidOptionError",
    "IterationReport",
    "Node",
    "RecoveryError",
    "RecoveryPlan",
    "SinkError",
    "SparkSessionError",
    "StorageError",
    "Task",
    "TaskChangedError",
    "TaskContext",
    "TaskFailedError",
    "TaskNotCommittedError",
    "TaskOptions",
    "TaskStatus",
    "Throughput",
    "WorkflowInfo",
    "WorkflowNotFoundError",
    "WorkflowStatus",
    "__version__",
    "create_spark_session",
    "current_task",
    "explain",
    "get_output",
    "get_spark",
    "get_status",
    "iterate",
    "list_workflows",
    "resume",
    "run",
    "set_default_storage",
    "task",
    "write_delta",
]
