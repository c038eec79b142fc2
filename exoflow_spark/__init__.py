"""exoflow-spark: recoverable, exactly-once DAGs of Spark DataFrame tasks."""

from __future__ import annotations

from ._config import set_default_storage
from ._spark import CheckpointFormat, create_spark_session
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
from .gc import GcReport, collect_garbage
from .iterate import IterationReport, iterate
from .options import CheckpointMode, TaskOptions
from .progress import ProgressSnapshot
from .recovery import CheckpointLostError, Decision, RecoveryError, RecoveryPlan, Throughput
from .sink import write_delta
from .status import TaskStatus, WorkflowStatus
from .streaming import (
    DeltaSnapshot,
    StreamBatch,
    StreamingTask,
    StreamOptions,
    install_stop_handlers,
    request_stop,
    streaming_task,
)
from .task import Node, Task, task
from .viz import Picture, show_dag, show_timeline

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "CheckpointFormat",
    "CheckpointLostError",
    "CheckpointMode",
    "ConcurrentRunError",
    "DagError",
    "Decision",
    "DeltaSnapshot",
    "ExoflowError",
    "GcReport",
    "InvalidIdError",
    "InvalidOptionError",
    "IterationReport",
    "Node",
    "Picture",
    "ProgressSnapshot",
    "RecoveryError",
    "RecoveryPlan",
    "SinkError",
    "SparkSessionError",
    "StorageError",
    "StreamBatch",
    "StreamOptions",
    "StreamingTask",
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
    "collect_garbage",
    "create_spark_session",
    "current_task",
    "explain",
    "get_output",
    "get_spark",
    "get_status",
    "install_stop_handlers",
    "iterate",
    "list_workflows",
    "request_stop",
    "resume",
    "run",
    "set_default_storage",
    "show_dag",
    "show_timeline",
    "streaming_task",
    "task",
    "write_delta",
]
