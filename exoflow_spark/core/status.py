"""Workflow and task statuses, as string enums so they serialise cleanly to JSON and logs."""

from __future__ import annotations

from enum import Enum


class WorkflowStatus(str, Enum):
    """The state of one workflow id, as read from its log."""

    RUNNING = "RUNNING"  #: a live driver holds the workflow
    SUCCESSFUL = "SUCCESSFUL"  #: the last run finished and every checkpoint committed
    FAILED = "FAILED"  #: the last run stopped on an error; re-running the same id resumes
    RESUMABLE = "RESUMABLE"  #: the driver died mid-run; re-running the same id resumes
    CANCELED = "CANCELED"  #: the last run was interrupted (KeyboardInterrupt / cancel)
    PENDING = "PENDING"  #: the DAG is logged but no run has started


class TaskStatus(str, Enum):
    """The state of one task within a workflow."""

    PENDING = "PENDING"  #: not run (or rolled back / invalidated)
    RUNNING = "RUNNING"  #: running in a live driver
    DONE = "DONE"  #: ran, output not durable (checkpoint=False): replayed if needed again
    CHECKPOINTING = "CHECKPOINTING"  #: ran; its async checkpoint is being written
    COMMITTED = "COMMITTED"  #: output (or effect) durable; never runs again for this id
    FAILED = "FAILED"  #: raised after its retries
