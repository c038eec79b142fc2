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

With ``truncate`` (a cheap, non-durable cut after every step, e.g. a local checkpoint) the
plan never grows and durable cuts only bound what a crash redoes: a cut is made once the
steps since the last one (building and running them) took ten times what a cut costs, so
cuts take at most about a tenth of a fault-free run. Cuts are Parquet files in a new folder
under the cut table (a Delta version over Spark Connect); the folder of the cut before is
deleted once the record names the new one.

Resuming after a crash
----------------------
Every cut is followed by a small JSON *cut record*, ``_exoflow_cuts/call-<k>.json`` inside
the cut table (see :mod:`exoflow_spark.storage.layout`), written atomically (temporary file
and rename; a torn record on a store without atomic overwrite does not parse and is
ignored). It names the Delta version (and its data files) of the cut, the iteration the cut
was made after, whether ``until`` stopped the loop there, and a *fingerprint* of everything
the loop's data depends on. It is written only after the Delta commit returned, so it only
ever points at a committed cut; a crash between the commit and the record leaves it pointing
at the previous cut, whose files an overwrite of the table does not delete. The scratch
table of a task that has not committed is kept by ``collect_garbage``.

A call resumes from the record when its fingerprint matches: it reads the cut back and runs
iterations ``cut + 1`` onwards (``IterationReport.resumed_from`` says from which cut, and it
is logged). The fingerprint hashes:

* inside a task run by the engine: the workflow id, task id and generation (an invalidated
  task starts over), the task's fingerprint in the DAG (its code, literal inputs and upstream
  fingerprints: a changed input or task code never resumes a stale cut), the number of this
  ``xf.iterate`` call within the attempt (a task may loop twice), and, for every call:
* the source of ``step`` and ``until`` and the schema of ``initial``; outside a task also
  the semantic hash of ``initial``'s plan (inside one the task fingerprint identifies it,
  and an upstream output restored from its checkpoint has another plan with the same data).

``iterations``, ``every``, ``max_depth`` and ``cut_last`` are not part of it: they do not
change the data at a cut (a cut at or past ``iterations`` is not used). Code that ``step``
calls is not hashed, as for the engine's own task fingerprints.

Inside a task run by the engine a call resumes by default (a retried attempt or a resumed
workflow); not when the task is nondeterministic (``deterministic=False``) or read a
nondeterministic output that was not durable yet (the re-execution may see other data), and
not from a cut made under those conditions. Outside a task (``path=`` given) a call resumes
only when asked (``resume=True``). ``resume=False`` always starts from ``initial``. With
deterministic steps a resumed call gives the result an uninterrupted one gives (the cut
holds exactly the DataFrame the step built; within floating-point summation order, 1e-9
in the tests).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..core.context import TaskContext, _current
from ..core.dag import code_fingerprint
from ..core.faults import crash_point
from ..core.values import is_dataframe
from ..errors import InvalidOptionError
from ..spark.hadoop import delete_path
from ..storage import layout
from ..storage.checkpoints import DeltaVersion, read_checkpoint, write_checkpoint
from ..storage.logfs import LogFS, open_logfs

logger = logging.getLogger(__name__)

#: Cost of one cut assumed before the first one is measured (seconds).
INITIAL_CUT_SECONDS = 1.0
#: With ``truncate``, the share of the loop's time that durable cuts may take: a cut is made
#: once the steps since the last one took ``1 / TRUNCATED_CUT_BUDGET`` times what a cut costs
#: (so a crash redoes at most about that much work, and fault-free runs pay at most ~10%).
TRUNCATED_CUT_BUDGET = 0.1
#: version of the cut record's JSON
CUT_RECORD_FORMAT = 1


@dataclass
class IterationReport:
    """What :func:`iterate` did: per-step build times and where it cut the lineage.

    ``iterations`` counts from iteration 0 even when the call resumed: a call that resumed
    after the cut of iteration 19 and ran 10 more steps reports 30 iterations, 10
    ``step_seconds`` and ``resumed_from=19``.
    """

    iterations: int = 0
    step_seconds: list[float] = field(default_factory=list)
    cuts: list[int] = field(default_factory=list)  #: iteration after which lineage was cut
    cut_seconds: list[float] = field(default_factory=list)
    #: the iteration whose durable cut this call resumed from (None: it began at ``initial``)
    resumed_from: int | None = None

    @property
    def steps_run(self) -> int:
        """How many steps this call built (fewer than ``iterations`` after a resume)."""
        return len(self.step_seconds)

    @property
    def max_depth(self) -> int:
        """The most iterations the plan ever grew without a cut."""
        start = -1 if self.resumed_from is None else self.resumed_from
        marks = [start, *self.cuts, self.iterations - 1]
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
    resume: bool | None = None,
    truncate: Callable[[Any], Any] | None = None,
) -> tuple[Any, IterationReport]:
    """Run ``df = step(df, i)`` for ``i`` in ``range(iterations)``, cutting lineage as needed.

    After a crash the call resumes from its last durable cut instead of iteration 0 (see
    the module documentation for what identifies a cut and when it is used).

    Args:
        step: builds iteration ``i`` from the previous DataFrame; must return a DataFrame.
        initial: the DataFrame before the first iteration.
        iterations: how many steps at most.
        every: cut after every ``every`` steps (default: chosen from measured costs).
        max_depth: never let the plan grow more than this many steps without a cut.
        path: the folder of the cuts (Parquet files and the cut record); inside a task it
            defaults to one next to the task's checkpoint table under the storage root.
        until: ``until(previous, current, i)`` returning True stops early (convergence);
            it runs right after a cut, on the materialised data, so it is cheap.
        cut_last: also cut after the last step, so the result depends on nothing the
            caller cached (which it may then unpersist).
        resume: resume from the last durable cut of an earlier, interrupted call with the
            same fingerprint. None (default): inside a task run by the engine yes, outside
            no; True: also outside a task (``path=`` given); False: never.
        truncate: a cheap, non-durable lineage cut applied to every step's result (e.g.
            ``lambda df: df.localCheckpoint()``, which materialises it). The plan then never
            grows: ``max_depth`` does not apply, and the durable cuts above only bound what
            recovery recomputes (one once the steps since the last took ten times a cut).
            ``until`` is then checked after every step (the data is materialised, and the
            step may have computed its convergence metric in the same job, e.g. with
            ``DataFrame.observe``).

    Returns:
        The final DataFrame and an :class:`IterationReport`.

    Raises:
        InvalidOptionError: a bad argument, or ``step`` returned something that is not a
            DataFrame.

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
    if resume not in (None, True, False):
        raise InvalidOptionError(f"resume={resume!r} must be True, False or None")
    ctx = _current.get()
    in_task = ctx is not None and ctx.store is not None
    if path is None:
        if ctx is None or ctx.store is None:
            raise InvalidOptionError(
                "xf.iterate outside a task needs path=... (a Delta table location for the "
                "lineage cuts)"
            )
        path = ctx.store.iterations_uri(ctx.task_id)
    cuts = _CutLog.open(ctx if in_task else None, path, step, until, initial, resume)
    cuts.spark = initial.sparkSession if is_dataframe(initial) else None
    report = IterationReport()
    df, start_at = initial, 0
    found = cuts.find(initial.sparkSession if is_dataframe(initial) else None, iterations)
    if found is not None:
        df, cut_at, stopped = found
        report.resumed_from, report.iterations = cut_at, cut_at + 1
        start_at = iterations if stopped else cut_at + 1
    rent, depth, cut_cost = 0.0, 0, INITIAL_CUT_SECONDS
    previous = df
    where = f"[{ctx.workflow_id}] [{ctx.task_id}] " if in_task and ctx is not None else ""
    for i in range(start_at, iterations):
        start = time.perf_counter()
        df = _checked(step, step(df, i), i)
        elapsed = time.perf_counter() - start
        crash_point(ctx.task_id if ctx is not None else "", "during-iteration")
        report.step_seconds.append(elapsed)
        report.iterations = i + 1
        depth += 1
        if truncate is None:
            rent += elapsed
            due = depth >= every if every else (rent >= cut_cost or depth >= max_depth)
        else:  # the plan never grows: the rent is the work a crash would redo
            df = truncate(df)
            rent += time.perf_counter() - start
            due = depth >= every if every else rent * TRUNCATED_CUT_BUDGET >= cut_cost
        if due and i < iterations - 1:
            start = time.perf_counter()
            written = _write_cut(df, path)
            df = read_checkpoint(df.sparkSession, written)
            cut_cost = time.perf_counter() - start
            report.cuts.append(i)
            report.cut_seconds.append(cut_cost)
            logger.debug(
                "%siteration %d: lineage cut after %d steps (%.2fs planning, cut %.2fs)",
                where,
                i,
                depth,
                rent,
                cut_cost,
            )
            rent, depth = 0.0, 0
            stop = until is not None and until(previous, df, i)
            cuts.record(written, i, stopped=stop)
            if stop:
                break
            previous = df
        elif truncate is not None and until is not None:
            if until(previous, df, i):
                break
            previous = df
    if cut_last and depth > 0:
        written = _write_cut(df, path)
        df = read_checkpoint(df.sparkSession, written)
        cuts.record(written, report.iterations - 1, stopped=False)
    logger.info(
        "%s%d iterations (%d run here%s), %d lineage cuts (longest run %d steps)",
        where,
        report.iterations,
        report.steps_run,
        "" if report.resumed_from is None else f", resumed after iteration {report.resumed_from}",
        len(report.cuts),
        report.max_depth,
    )
    return df, report


def _write_cut(df: Any, path: str) -> DeltaVersion:
    """A durable cut of ``df`` under the table ``path``: Parquet files in a new folder (one
    Spark job, no Delta commit or log replay: a tenth of a Delta overwrite's cost on small
    data), made a cut by the cut record that names them; a Delta version on Spark Connect."""
    return write_checkpoint(df, path, "parquet")


def _checked(step: Callable[..., Any], result: Any, i: int) -> Any:
    """``result`` if it is a DataFrame; else an error naming the step and what it returned."""
    if is_dataframe(result):
        return result
    name = getattr(step, "__qualname__", None) or repr(step)
    raise InvalidOptionError(
        f"xf.iterate: step {name} returned {type(result).__name__} ({result!r:.80}) in "
        f"iteration {i}; a step must return the next iteration's DataFrame "
        "(step(df, i) -> DataFrame)"
    )


def _callable_fingerprint(fn: Any) -> str | None:
    """A stable hash of a callable's code: a function's, a ``functools.partial``'s function
    (with its arguments' reprs), or a callable object's ``__call__``."""
    if fn is None:
        return None
    if hasattr(fn, "__code__"):
        return code_fingerprint(fn)
    inner = getattr(fn, "func", None)
    if inner is not None and hasattr(fn, "args"):  # functools.partial
        return _hash(
            [_callable_fingerprint(inner), repr(fn.args), repr(sorted(fn.keywords.items()))]
        )
    call = vars(type(fn)).get("__call__")  # a callable object: its class's method
    return code_fingerprint(call) if hasattr(call, "__code__") else None


def _hash(doc: Any) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32]


class _CutLog:
    """The cut record of one :func:`iterate` call: where the last durable cut is."""

    def __init__(
        self, fs: LogFS | None, rel: str, table: str, key: str | None, resume: bool
    ) -> None:
        self.fs, self.rel, self.table, self.key, self.resume = fs, rel, table, key, resume
        #: the last cut this call made or resumed from (its folder is deleted after the next)
        self.previous: DeltaVersion | None = None
        self.spark: Any = None

    @classmethod
    def open(
        cls,
        ctx: TaskContext | None,
        path: str,
        step: Any,
        until: Any,
        initial: Any,
        resume: bool | None,
    ) -> _CutLog:
        """The cut log of this call (``ctx``: the engine's task context, or None)."""
        step_fp, until_fp = _callable_fingerprint(step), _callable_fingerprint(until)
        schema = initial.schema.json() if is_dataframe(initial) else repr(type(initial))
        parts: dict[str, Any] = {"step": step_fp, "until": until_fp, "schema": schema}
        if step_fp is None or (until is not None and until_fp is None):
            parts = {}  # code we cannot hash: never resume
        if ctx is not None:
            call = ctx.iterate_seq
            ctx.iterate_seq += 1
            default = path == ctx.store.iterations_uri(ctx.task_id)
            fs = ctx.store.fs if default else _open_fs(path, initial)
            rel = (
                layout.iterations_cut_record(ctx.workflow_id, ctx.task_id, call)
                if default
                else layout.cut_record(call)
            )
            usable = bool(parts) and ctx.fingerprint is not None and ctx.deterministic
            if usable:
                parts.update(
                    workflow=ctx.workflow_id,
                    task=ctx.task_id,
                    generation=ctx.generation,
                    task_fingerprint=ctx.fingerprint,
                    call=call,
                )
            if resume and not usable:
                logger.info(
                    "[%s] [%s] xf.iterate does not resume: %s",
                    ctx.workflow_id,
                    ctx.task_id,
                    "the task is nondeterministic or read data that is not durable yet"
                    if not ctx.deterministic
                    else "its step or the task has no stable fingerprint",
                )
            key = _hash(parts) if usable else None
            logger.debug("xf.iterate cut fingerprint %s of %s", key, parts)
            return cls(fs, rel, path, key, resume is not False)
        fs = _open_fs(path, initial)
        plan_hash = None
        if parts and is_dataframe(initial):
            try:
                plan_hash = int(initial.semanticHash())
            except Exception as exc:  # a session without it: never resume
                logger.debug("xf.iterate: no semantic hash of the initial DataFrame: %s", exc)
        key = _hash({**parts, "plan": plan_hash}) if plan_hash is not None else None
        return cls(fs, layout.cut_record(0), path, key, bool(resume))

    def find(self, spark: Any, iterations: int) -> tuple[Any, int, bool] | None:
        """``(cut DataFrame, its iteration, whether until stopped there)`` to resume from,
        or None (no record, another fingerprint, not asked to resume, or past the end)."""
        if not self.resume or self.key is None or self.fs is None or spark is None:
            return None
        try:
            raw = self.fs.get(self.rel)
            doc = json.loads(raw) if raw else None
        except Exception as exc:  # an unreadable record: start over
            logger.warning("xf.iterate: ignoring unreadable cut record %s: %s", self.rel, exc)
            return None
        if not isinstance(doc, dict) or doc.get("fingerprint") != self.key:
            if doc is not None:
                logger.info("xf.iterate: the cut record of %s is another loop's", self.table)
            return None
        at, cp = int(doc["iteration"]), doc["checkpoint"]
        if at >= iterations:
            return None
        dv = DeltaVersion(
            path=self.table.rstrip("/") + cp.get("rel", ""),
            version=int(cp["version"]),
            num_bytes=0,
            num_rows=int(cp.get("rows", 0)),
            write_seconds=0.0,
            files=tuple(cp["files"]) if cp.get("files") is not None else None,
            schema=cp.get("schema"),
            format=cp.get("format", "delta"),
        )
        logger.info(
            "xf.iterate: resuming %s after iteration %d (its durable cut, version %d)%s",
            self.table,
            at,
            dv.version,
            ": until had stopped the loop there" if doc.get("stopped") else "",
        )
        self.previous = dv
        return read_checkpoint(spark, dv), at, bool(doc.get("stopped"))

    def record(self, written: DeltaVersion, iteration: int, *, stopped: bool) -> None:
        """Point the record at the cut just committed (after its write returned)."""
        if self.key is None or self.fs is None:
            self.drop_previous(written)
            return
        base = self.table.rstrip("/")
        doc = {
            "format": CUT_RECORD_FORMAT,
            "fingerprint": self.key,
            "iteration": iteration,
            "stopped": stopped,
            "at": time.time(),
            "checkpoint": {
                "rel": written.path[len(base) :] if written.path.startswith(base) else "",
                "version": written.version,
                "rows": written.num_rows,
                "files": list(written.files) if written.files is not None else None,
                "schema": written.schema,
                "format": written.format,
            },
        }
        try:
            self.fs.put(self.rel, json.dumps(doc).encode())
        except Exception as exc:  # the cut stands; only resuming is lost
            logger.warning("xf.iterate: could not write the cut record %s: %s", self.rel, exc)
            return
        self.drop_previous(written)

    def drop_previous(self, written: DeltaVersion) -> None:
        """Delete the Parquet folder of the cut before ``written``: nothing names it any more
        (the record points at ``written``, and the loop's plan reads from ``written``)."""
        previous, self.previous = self.previous, written
        if previous is None or previous.format != "parquet" or previous.path == written.path:
            return
        try:
            delete_path(self.spark, previous.path)
        except Exception as exc:  # only disk space is lost; collect_garbage removes it
            logger.warning("xf.iterate: could not delete the old cut %s: %s", previous.path, exc)


def _open_fs(path: str, initial: Any) -> LogFS | None:
    """A file API rooted at the cut table ``path`` (None if it cannot be opened)."""
    try:
        return open_logfs(path, initial.sparkSession if is_dataframe(initial) else None)
    except Exception as exc:  # no records: the loop never resumes
        logger.warning("xf.iterate: no cut records for %s: %s", path, exc)
        return None
