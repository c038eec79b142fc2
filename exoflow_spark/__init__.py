"""exoflow-spark: recoverable, exactly-once DAGs of Spark DataFrame tasks."""

from __future__ import annotations

from .api import WorkflowInfo, explain, get_output, get_status, list_workflows, resume, run
from .core.context import TaskContext, current_task, get_spark
from .core.defaults import set_default_storage
from .core.options import CheckpointMode, TaskOptions
from .core.status import TaskStatus, WorkflowStatus
from .core.task import Node, Task, task
from .engine.cost import Throughput
from .engine.gc import GcReport, collect_garbage
from .engine.planner import Decision, RecoveryPlan
from .errors import (
    CheckpointError,
    CheckpointLostError,
    ConcurrentRunError,
    DagError,
    ExoflowError,
    InvalidIdError,
    InvalidOptionError,
    LogSchemaError,
    PipelineError,
    RecoveryError,
    SinkError,
    SparkSessionError,
    StorageError,
    StorageRootError,
    TaskChangedError,
    TaskFailedError,
    TaskNotCommittedError,
    WorkflowChangedError,
    WorkflowNotFoundError,
)
from .io.iterate import IterationReport, iterate
from .io.sink import write_delta
from .io.streaming import (
    StreamBatch,
    StreamingTask,
    StreamOptions,
    install_stop_handlers,
    request_stop,
    streaming_task,
)
from .spark.session import create_spark_session
from .storage.checkpoints import CheckpointFormat, DeltaSnapshot
from .surface.pipelines import load_pipeline, pipeline_dag, run_pipeline
from .surface.progress import ProgressSnapshot
from .surface.viz import Picture, show_dag, show_timeline

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
    "LogSchemaError",
    "Node",
    "Picture",
    "PipelineError",
    "ProgressSnapshot",
    "RecoveryError",
    "RecoveryPlan",
    "SinkError",
    "SparkSessionError",
    "StorageError",
    "StorageRootError",
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
    "WorkflowChangedError",
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
    "load_pipeline",
    "pipeline_dag",
    "request_stop",
    "resume",
    "run",
    "run_pipeline",
    "set_default_storage",
    "show_dag",
    "show_timeline",
    "streaming_task",
    "task",
    "write_delta",
]
