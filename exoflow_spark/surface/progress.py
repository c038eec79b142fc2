"""Live progress of a run: tasks done, checkpoints in flight, the Spark stage running.

``xf.run(dag, ..., progress="auto")`` starts a daemon thread that samples the run twice a
second and shows it as a tqdm bar:

    [etl-demo]:  57%|█████▋    | 4/7 [00:04<00:03, running: silver_join, quarantine |
    1 checkpoint writing (silver_orders) | stage 12: 3/8 tasks | 2 restored]

* in a terminal (stderr is a TTY): tqdm's bar on stderr, rewritten in place;
* in a Jupyter kernel: tqdm's notebook widget (``tqdm.auto``; text if ipywidgets is absent);
* anywhere else: nothing (``"auto"`` never writes to a pipe or a log file).

``progress=True`` forces it on (the bar goes to stderr even when it is not a terminal);
``progress=callable`` receives every :class:`ProgressSnapshot` instead, for custom displays.
:func:`describe` (the text after the bar) is a pure function.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, TextIO

from ..core.status import TaskStatus
from ..errors import InvalidOptionError

logger = logging.getLogger(__name__)

ProgressMode = bool | Literal["auto"] | Callable[["ProgressSnapshot"], None]

#: Seconds between two samples of the run.
POLL_SECONDS = 0.5


@dataclass(frozen=True)
class StageProgress:
    """One active Spark stage (from ``SparkContext.statusTracker()``)."""

    stage_id: int
    name: str
    num_tasks: int
    completed_tasks: int
    active_tasks: int
    failed_tasks: int = 0


@dataclass(frozen=True)
class ProgressSnapshot:
    """What a run is doing at one instant.

    Attributes:
        workflow_id: the workflow id.
        total: tasks this run executes (the rest are restored or skipped).
        finished: of those, how many produced their output (done, checkpointing or committed).
        running: task ids computing now.
        checkpointing: task ids whose async checkpoint write is in flight.
        failed: task ids that failed.
        restored: committed tasks from earlier runs (not executed again).
        stages: active Spark stages of this workflow's jobs.
        elapsed: seconds since the run started.
        final: True for the last snapshot (the run ended).
    """

    workflow_id: str
    total: int
    finished: int
    running: tuple[str, ...] = ()
    checkpointing: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    restored: int = 0
    stages: tuple[StageProgress, ...] = field(default_factory=tuple)
    elapsed: float = 0.0
    final: bool = False


def _names(ids: tuple[str, ...], limit: int = 3) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f" +{len(ids) - limit}" if len(ids) > limit else "")


def describe(snap: ProgressSnapshot) -> str:
    """What the bar does not show: tasks running, checkpoints writing, Spark stages, restores.

    Example:
        >>> describe(ProgressSnapshot("wf", total=4, finished=1, running=("b",), restored=2))
        'running: b | 2 restored'
    """
    parts = []
    if snap.running:
        parts.append(f"running: {_names(snap.running)}")
    if snap.checkpointing:
        n = len(snap.checkpointing)
        parts.append(f"{n} checkpoint{'s' if n > 1 else ''} writing ({_names(snap.checkpointing)})")
    if snap.failed:
        parts.append(f"failed: {_names(snap.failed)}")
    for st in snap.stages[:2]:
        parts.append(f"stage {st.stage_id}: {st.completed_tasks}/{st.num_tasks} tasks")
    if snap.restored:
        parts.append(f"{snap.restored} restored")
    return " | ".join(parts)


# -- sampling ------------------------------------------------------------------------------
def active_stages(spark: Any, job_group: str | None = None) -> tuple[StageProgress, ...]:
    """Active Spark stages, restricted to ``job_group``'s jobs when that finds any.

    Returns an empty tuple on Spark Connect (no status tracker on the client) or on errors:
    progress must never break a run.
    """
    try:
        tracker = spark.sparkContext.statusTracker()
        active = set(tracker.getActiveStageIds())
        if job_group is not None:
            mine: set[int] = set()
            running_jobs = set(tracker.getActiveJobsIds())
            for job in tracker.getJobIdsForGroup(job_group):
                if job in running_jobs:
                    info = tracker.getJobInfo(job)
                    if info is not None:
                        mine.update(int(s) for s in info.stageIds)
            active &= mine
        out = []
        for sid in sorted(active):
            info = tracker.getStageInfo(sid)
            if info is not None:
                out.append(
                    StageProgress(
                        int(info.stageId),
                        str(info.name),
                        int(info.numTasks),
                        int(info.numCompletedTasks),
                        int(info.numActiveTasks),
                        int(info.numFailedTasks),
                    )
                )
        return tuple(out)
    except Exception:  # Spark Connect, a stopped context, a Py4J hiccup
        return ()


def snapshot(wrun: Any, started: float, *, final: bool = False) -> ProgressSnapshot:
    """Sample a :class:`~exoflow_spark.runtime.WorkflowRun` (read-only)."""
    # the log's states (restored tasks: COMMITTED), overridden by what the driver knows now
    statuses = wrun.state.task_states(live=dict(wrun.statuses))
    needed = list(wrun.needed)
    finished = {TaskStatus.DONE, TaskStatus.CHECKPOINTING, TaskStatus.COMMITTED}
    return ProgressSnapshot(
        workflow_id=wrun.wf,
        total=len(needed),
        finished=sum(1 for t in needed if statuses.get(t) in finished),
        running=tuple(t for t in needed if statuses.get(t) is TaskStatus.RUNNING),
        checkpointing=tuple(t for t in needed if statuses.get(t) is TaskStatus.CHECKPOINTING),
        failed=tuple(t for t in needed if statuses.get(t) is TaskStatus.FAILED),
        restored=sum(
            1 for t, s in statuses.items() if s is TaskStatus.COMMITTED and t not in needed
        ),
        stages=() if final else active_stages(wrun.spark, f"exoflow:{wrun.wf}"),
        elapsed=time.monotonic() - started,
        final=final,
    )


# -- displays ------------------------------------------------------------------------------
def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class _TqdmDisplay:
    """A tqdm bar: ``tqdm.auto`` picks the notebook widget in a Jupyter kernel, else the text
    bar on ``stream``. Created at the first snapshot (when the total is known), closed at the
    final one."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._bar: Any = None

    def __call__(self, snap: ProgressSnapshot) -> None:
        if self._bar is None:
            # imported when a bar is shown, not with the package: tqdm.auto decides between the
            # notebook widget and the terminal at import (and warns in a notebook without
            # ipywidgets, which only a user who asked for progress should see)
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=snap.total,
                initial=snap.finished,
                postfix=describe(snap),
                desc=f"[{snap.workflow_id}]",
                unit="task",
                file=self.stream,
                leave=True,
                dynamic_ncols=True,
                # elapsed time, no rate or estimate: tasks take too unequal times for them
                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]",
            )
        bar = self._bar
        bar.total = snap.total
        bar.n = snap.finished
        if snap.failed:
            bar.colour = "red"
        bar.set_postfix_str(describe(snap), refresh=False)
        if snap.final:
            bar.close()  # draws the last state
        else:
            bar.refresh()


def check_progress_mode(mode: object) -> None:
    """Raise :class:`~exoflow_spark.errors.InvalidOptionError` unless ``mode`` is a valid
    ``progress=`` value (checked before a run starts, so a typo writes nothing)."""
    if mode is None or isinstance(mode, bool) or mode == "auto":
        return
    if callable(mode):
        return
    raise InvalidOptionError(
        f"progress={mode!r} is not valid: use True, False, 'auto' or a callable taking a "
        "ProgressSnapshot"
    )


def choose_display(
    mode: ProgressMode, stream: TextIO | None = None
) -> Callable[[ProgressSnapshot], None] | None:
    """The display for a ``progress=`` value, or None when nothing should be shown.

    ``"auto"``: a tqdm bar in a Jupyter kernel (the widget) or when ``stream`` (default
    stderr) is a TTY, else None. ``True``: the bar, on a non-TTY stream too. ``False``: None.
    A callable is returned as is.
    """
    check_progress_mode(mode)
    if mode is False or mode is None:
        return None
    if callable(mode) and not isinstance(mode, bool):
        return mode
    stream = stream if stream is not None else sys.stderr
    is_tty = bool(getattr(stream, "isatty", lambda: False)())
    if mode == "auto" and not is_tty and not _in_notebook():
        return None
    return _TqdmDisplay(stream)


class ProgressReporter:
    """Samples a run from a daemon thread and hands snapshots to a display."""

    def __init__(
        self,
        wrun: Any,
        display: Callable[[ProgressSnapshot], None],
        interval: float | None = None,
    ) -> None:
        self.wrun, self.display = wrun, display
        self.interval = POLL_SECONDS if interval is None else interval
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name=f"exoflow-progress-{wrun.wf}", daemon=True
        )

    def start(self) -> ProgressReporter:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sampling and show the final state once."""
        self._stop.set()
        self._thread.join(timeout=5)
        self._show(final=True)

    def _show(self, final: bool = False) -> None:
        try:
            self.display(snapshot(self.wrun, self._started, final=final))
        except Exception:  # a display must never break the run
            logger.debug("[%s] progress display failed", self.wrun.wf, exc_info=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._show()


@contextlib.contextmanager
def watch(wrun: Any, mode: ProgressMode) -> Iterator[ProgressReporter | None]:
    """Show the progress of ``wrun`` while the block runs (nothing if ``mode`` says so)."""
    display = choose_display(mode)
    if display is None:
        yield None
        return
    reporter = ProgressReporter(wrun, display).start()
    try:
        yield reporter
    finally:
        reporter.stop()
