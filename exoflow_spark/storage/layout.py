"""The storage layout: every path under a storage root, built here and nowhere else.

Paths are relative to the root (the log's file API, :class:`~exoflow_spark.storage.logfs.LogFS`,
turns them into URIs)::

    workflows/<wf>/log/runs/<n>.start.json              run n began: its DAG, owner, options
    workflows/<wf>/log/runs/<n>.heartbeat.json          owner liveness (overwritten)
    workflows/<wf>/log/runs/<n>.end.json                run n ended: status, error
    workflows/<wf>/log/tasks/<task>/g<k>.commit.json    task committed (generation k)
    workflows/<wf>/log/tasks/<task>/g<k>.invalidated.json  generation k discarded
    workflows/<wf>/log/events/<n>-<seq>.<kind>.json     what happened (history, costs)
    workflows/<wf>/log/gc/<at>-<token>.json             tables garbage collection deleted
    workflows/<wf>/refs/<task>                          Delta table of the task's checkpoints
    workflows/<wf>/refs/<task>/_parquet/<random>        one checkpoint (checkpoint_format="parquet")
    workflows/<wf>/refs/<task>__iterations              xf.iterate scratch table of a task
    workflows/<wf>/refs/<task>__iterations/_exoflow_cuts/call-<k>.json
                                                        its k-th call's last durable cut
    workflows/<wf>/streams/<task>                       a streaming task's checkpointLocation
    streams/<name>/checkpoint, streams/<name>/table     a stream shared by several workflows
    _exoflow/throughput.json, throughput-<fmt>.json     the root's measured cost model
    _exoflow/calibration/<token>                        scratch tables while measuring it
    _exoflow/profiles/<key>.json                        a task's measured costs (checkpoint="auto")

Workflow and task ids are validated before they become part of a path. These names are the
on-disk format: changing one would strand every workflow stored before.
"""

from __future__ import annotations

import re

from ..core.ids import validate_id

WORKFLOWS = "workflows"
#: suffix of a task's ``xf.iterate`` scratch table, beside its checkpoint table
ITERATIONS_SUFFIX = "__iterations"
RUN_RECORD_KINDS = ("start", "heartbeat", "end")


def _wf(workflow_id: str) -> str:
    return validate_id(workflow_id, kind="workflow id")


def _task(task_id: str) -> str:
    return validate_id(task_id, kind="task id")


def workflow_dir(workflow_id: str) -> str:
    return f"{WORKFLOWS}/{_wf(workflow_id)}"


# -- the log -------------------------------------------------------------------------------
def log_dir(workflow_id: str) -> str:
    return f"{workflow_dir(workflow_id)}/log"


def runs_dir(workflow_id: str) -> str:
    return f"{log_dir(workflow_id)}/runs"


def run_record(workflow_id: str, run: int, kind: str) -> str:
    """``log/runs/<n>.<kind>.json`` (kind: start, heartbeat or end)."""
    if kind not in RUN_RECORD_KINDS:
        raise ValueError(f"run record kind {kind!r} is not one of {RUN_RECORD_KINDS}")
    return f"{runs_dir(workflow_id)}/{run:06d}.{kind}.json"


def parse_run_record(name: str) -> tuple[int, str] | None:
    """``(run, kind)`` of a file name under ``log/runs``, or None if it is not a run record."""
    number, kind, _ = [*name.split("."), "", ""][:3]
    if not number.isdigit() or kind not in RUN_RECORD_KINDS:
        return None
    return int(number), kind


def tasks_dir(workflow_id: str) -> str:
    return f"{log_dir(workflow_id)}/tasks"


def commit_record(workflow_id: str, task_id: str, generation: int) -> str:
    return f"{tasks_dir(workflow_id)}/{_task(task_id)}/{commit_name(generation)}"


def commit_name(generation: int) -> str:
    return f"g{generation}.commit.json"


def invalidation_record(workflow_id: str, task_id: str, generation: int) -> str:
    return f"{tasks_dir(workflow_id)}/{_task(task_id)}/g{generation}.invalidated.json"


def parse_invalidation(name: str) -> int | None:
    """The generation an ``g<k>.invalidated.json`` file name discards, else None."""
    gen = name[1:].split(".")[0]
    if name.startswith("g") and name.endswith(".invalidated.json") and gen.isdigit():
        return int(gen)
    return None


def events_dir(workflow_id: str) -> str:
    return f"{log_dir(workflow_id)}/events"


def event_record(workflow_id: str, run: int, seq: int, kind: str) -> str:
    return f"{events_dir(workflow_id)}/{run:06d}-{seq:06d}.{kind}.json"


def gc_dir(workflow_id: str) -> str:
    return f"{log_dir(workflow_id)}/gc"


def gc_record(workflow_id: str, at: float, token: str) -> str:
    return f"{gc_dir(workflow_id)}/{at:.6f}-{token}.json"


# -- data ----------------------------------------------------------------------------------
def refs_dir(workflow_id: str) -> str:
    return f"{workflow_dir(workflow_id)}/refs"


def ref_dir(workflow_id: str, task_id: str) -> str:
    """The Delta table of a task's checkpoints."""
    return f"{refs_dir(workflow_id)}/{_task(task_id)}"


def table_dir(workflow_id: str, table: str) -> str:
    """A table found under ``refs/`` (a task's, or an ``__iterations`` scratch table)."""
    return f"{refs_dir(workflow_id)}/{table}"


def iterations_dir(workflow_id: str, task_id: str) -> str:
    """The ``xf.iterate`` scratch table of a task."""
    return ref_dir(workflow_id, task_id) + ITERATIONS_SUFFIX


def iterations_owner(table: str) -> str | None:
    """The task whose scratch table ``table`` is, or None if it is not a scratch table."""
    return table[: -len(ITERATIONS_SUFFIX)] if table.endswith(ITERATIONS_SUFFIX) else None


#: the folder inside an ``xf.iterate`` table that holds its cut records (Delta ignores names
#: starting with ``_``, and the record is deleted with the table)
CUTS_DIR = "_exoflow_cuts"


def cut_record(call: int) -> str:
    """``_exoflow_cuts/call-<k>.json``, relative to an ``xf.iterate`` table: the last durable
    cut of the k-th ``xf.iterate`` call of a task (or of a call with an explicit path)."""
    if call < 0:
        raise ValueError(f"xf.iterate call number {call} must be >= 0")
    return f"{CUTS_DIR}/call-{call:03d}.json"


def iterations_cut_record(workflow_id: str, task_id: str, call: int) -> str:
    """The cut record of the k-th ``xf.iterate`` call of a task, under the storage root."""
    return f"{iterations_dir(workflow_id, task_id)}/{cut_record(call)}"


def stream_dir(workflow_id: str, task_id: str) -> str:
    """A streaming task's ``checkpointLocation``."""
    return f"{workflow_dir(workflow_id)}/streams/{_task(task_id)}"


def shared_stream_checkpoint(stream_name: str) -> str:
    """The ``checkpointLocation`` of a stream shared by a series of workflows."""
    return f"streams/{stream_name}/checkpoint"


def shared_stream_table(stream_name: str) -> str:
    """The default output table of a stream shared by a series of workflows."""
    return f"streams/{stream_name}/table"


#: the folder under a task's ref directory that holds its Parquet checkpoints, one per write
PARQUET_DIR = "_parquet"
#: what follows a ref directory's URI in the path of one of its Parquet checkpoints
PARQUET_CHECKPOINT = re.compile(rf"/{PARQUET_DIR}/[0-9a-f]{{32}}")


def parquet_checkpoint(ref_uri: str, token: str) -> str:
    """``<ref>/_parquet/<token>``: one Parquet checkpoint (``token``: 32 hex digits)."""
    return f"{ref_uri.rstrip('/')}/{PARQUET_DIR}/{token}"


# -- the root's cost model -----------------------------------------------------------------
def throughput_file(fmt: str) -> str:
    """Where a storage root caches the cost model of one checkpoint format."""
    return "_exoflow/throughput.json" if fmt == "delta" else f"_exoflow/throughput-{fmt}.json"


def calibration_dir(token: str) -> str:
    """Scratch tables written while measuring the root's throughput."""
    return f"_exoflow/calibration/{token}"


_PROFILE_KEY = re.compile(r"^[0-9a-f]{8,64}$")


def profile_file(key: str) -> str:
    """A task's cost profile (``checkpoint="auto"``), keyed by its id and code fingerprint."""
    if not _PROFILE_KEY.match(key):
        raise ValueError(f"profile key {key!r} is not a hex digest")
    return f"_exoflow/profiles/{key}.json"
