"""Iterative stages (PageRank, connected components, ALS-style loops) without runaway lineage.

A loop that derives a DataFrame from the previous one grows its plan every iteration: after
30-50 iterations analysis takes seconds and deep plans overflow the stack. :func:`iterate`
runs the loop and cuts the lineage now and then by writing the current DataFrame to a Delta
version and reading it back.

When to cut is chosen from measured costs, online (the ski-rental rule): the time spent
building each step (classic PySpark analyses eagerly, so it grows with the plan) is added
up since the last cut; when it reaches what the last cut cost, cut again. The total overhead
is then at most twice the best fixed interval in hindsight. ``max_depth`` caps the plan depth
regardless, and ``every=k`` fixes the interval instead.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..core.context import _current
from ..errors import InvalidOptionError
from ..storage.checkpoints import read_checkpoint, write_checkpoint

logger = logging.getLogger(__name__)

#: Cost of one cut assumed before the first one is measured (seconds).
INITIAL_CUT_SECONDS = 1.0


@dataclass
class IterationReport:
    """What :func:`iterate` did: per-step build times and where it cut the lineage."""

    iterations: int = 0
    step_seconds: list[float] = field(default_factory=list)
    cuts: list[int] = field(default_factory=list)  #: iteration after which lineage was cut
    cut_seconds: list[float] = field(default_factory=list)

    @property
    def max_depth(self) -> int:
        """The most iterations the plan ever grew without a cut."""
        marks = [-1, *self.cuts, self.iterations - 1]
        return max(b - a for a, b in itertools.pairwise(marks))


def iterate(
    step: Callable[[Any, int], Any],
    initial: Any,
    iterations: int,
    *,
    every: int | None = None,
    max_depth: int = 25,
    path: str | None = None,
    until: Callable[[Any, Any, int], bool] | None = None,
    cut_last: bool = False,
    truncate: Callable[[Any], Any] | None = None,
) -> tuple[Any, IterationReport]:
    """Run ``df = step(df, i)`` for ``i`` in ``range(iterations)``, cutting lineage as needed.

    Args:
        step: builds iteration ``i`` from the previous DataFrame.
        initial: the DataFrame before the first iteration.
        iterations: how many steps at most.
        every: cut after every ``every`` steps (default: chosen from measured costs).
        max_depth: never let the plan grow more than this many steps without a cut.
        path: the Delta table used for cuts; inside a task it defaults to one next to the
            task's checkpoint table under the workflow's storage root.
        until: ``until(previous, current, i)`` returning True stops early (convergence);
            it runs right after a cut, on the materialised data, so it is cheap.
        cut_last: also cut after the last step, so the result depends on nothing the
            caller cached (which it may then unpersist).
        truncate: a cheap, non-durable lineage cut applied to every step's result (e.g.
            ``lambda df: df.localCheckpoint()``, which materialises it). The plan then never
            grows: its time is not counted as rent, ``max_depth`` does not apply, and the
            durable cuts above only bound what recovery recomputes. ``until`` is then checked
            after every step (the data is materialised, and the step may have computed its
            convergence metric in the same job, e.g. with ``DataFrame.observe``).

    Returns:
        The final DataFrame and an :class:`IterationReport`.

    Example:
        >>> @xf.task(checkpoint=True)
        ... def pagerank(edges):
        ...     ranks, report = xf.iterate(lambda r, i: update(r, edges), init(edges), 100)
        ...     return ranks
    """
    if not isinstance(iterations, int) or iterations < 0:
        raise InvalidOptionError(f"iterations={iterations!r} must be an integer >= 0")
    if every is not None and (not isinstance(every, int) or every < 1):
        raise InvalidOptionError(f"every={every!r} must be an integer >= 1 (or None)")
    if max_depth < 1:
        raise InvalidOptionError(f"max_depth={max_depth!r} must be >= 1")
    ctx = _current.get()
    if path is None:
        if ctx is None or ctx.store is None:
            raise InvalidOptionError(
                "xf.iterate outside a task needs path=... (a Delta table location for the "
                "lineage cuts)"
            )
        path = ctx.store.iterations_uri(ctx.task_id)
    report = IterationReport()
    df, rent, depth, cut_cost = initial, 0.0, 0, INITIAL_CUT_SECONDS
    previous = initial
    for i in range(iterations):
        start = time.perf_counter()
        df = step(df, i)
        elapsed = time.perf_counter() - start
        report.step_seconds.append(elapsed)
        report.iterations = i + 1
        rent += elapsed
        depth += 1
        if truncate is not None:
            df = truncate(df)
        deep = depth >= max_depth and truncate is None
        due = depth >= every if every else (rent >= cut_cost or deep)
        if due and i < iterations - 1:
            start = time.perf_counter()
            written = write_checkpoint(df, path)
            df = read_checkpoint(df.sparkSession, written)
            cut_cost = time.perf_counter() - start
            report.cuts.append(i)
            report.cut_seconds.append(cut_cost)
            logger.debug(
                "iteration %d: lineage cut after %d steps (%.2fs planning, cut %.2fs)",
                i,
                depth,
                rent,
                cut_cost,
            )
            rent, depth = 0.0, 0
            if until is not None and until(previous, df, i):
                break
            previous = df
        elif truncate is not None and until is not None:
            if until(previous, df, i):
                break
            previous = df
    if cut_last and depth > 0:
        written = write_checkpoint(df, path)
        df = read_checkpoint(df.sparkSession, written)
    logger.info(
        "%d iterations, %d lineage cuts (longest run %d steps)",
        report.iterations,
        len(report.cuts),
        report.max_depth,
    )
    return df, report
