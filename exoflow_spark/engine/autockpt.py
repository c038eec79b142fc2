"""``checkpoint="auto"``: which task outputs are worth writing, decided from measured costs.

A task under ``"auto"`` (declared, or given by the run's policy ``xf.run(checkpoint="auto")``)
runs lazily by default, like ``checkpoint=False``: its output is a plan that fuses into its
consumers (Catalyst keeps narrow stages in one pipeline). It is written only when recomputing
it after a crash is expected to cost more than writing it and reading it back (its consumers
read the checkpoint instead of fusing it, :func:`checkpoint_cost`), the cost model of
:mod:`.cost`.
The inputs of that comparison come from, in order:

1. ``profile``: the task's costs measured by an earlier run, kept under the storage root in
   ``_exoflow/profiles/<key>.json`` keyed by the task id and its code fingerprint (not the
   workflow id: the nightly run of day N+1 decides from day N's measurements; a changed
   function has a new key, so no profile). Decided before the task's output is computed: a
   cheap task keeps fusing, an expensive one is computed into the cache and written. A
   profile whose run finished also knows how much of that run was left when the output
   was ready: a checkpoint only helps a crash that lands after it commits, so the recompute
   it insures is weighted by that share of the run (:func:`crash_share`). The output of the
   last expensive stage before a short tail (an aggregate and a sink) is then not written:
   its commit would land just before the run ends. Outputs computed after a written one
   inherit its tail less its write (:meth:`RunTail.of`): a run that does not write it ends
   sooner. Only a run of the whole pipeline records tails; a resumed or failed run that
   measures a task again keeps its profile's earlier tail.
2. ``measured``: a task with no profile whose own plan runs code Catalyst cannot see into
   (Python UDFs, pandas/Arrow functions) has no cost the plan can bound: it is measured as
   it is computed, its Spark executor metrics read, and the measurement becomes its profile.
   On a root with cheap writes (see below) the job that measures it writes it: the write
   costs about what the other way of measuring does (computing it into the cache, then a
   second pass writing it from there), and a crash in this first run finds it durable;
   whether it was worth writing is decided from the measurement and logged, and the next
   run fuses it if not. Elsewhere it is computed into the cache (as ``"async"`` does),
   timed, and written from there only if the measurement says so.
3. ``estimate``: otherwise the plan's statistics (Catalyst's size estimate, its shuffles)
   give the recompute estimate; a plan of JVM operators only is cheap to recompute next to a
   write, so it keeps fusing. When the task's function ran Spark jobs itself (a training
   loop that returns a small model), the function's run time is added: the plan does not
   show that work and a replay redoes it.

Nondeterministic outputs and outputs some task waits on are always written (``rule``).

A written output is stored as Parquet files unless the run names a checkpoint format
(:func:`~exoflow_spark.storage.checkpoints.run_formats`): a checkpoint the engine chose to
write is its own, and a Delta commit adds about 0.3 s to each write on local disk (in one
session, four chained Python UDF stages each written and read back cost 1.20x-1.34x of the
fused chain as Delta tables, 1.06x-1.08x as Parquet files, at 150k rows, two runs of
``benchmarks/stage_split.py``). Its decisions price writes with the cost model of that
format.

How a written output is written (:func:`write_mode`): one decided from its profile before it
is computed, or measured by its write (above), is written by the job that computes it (as
``checkpoint=True``) when the storage root's calibrated fixed cost per write is at most
:data:`INLINE_WRITE_MAX_FIXED_S` (local disk, HDFS; a root with no cost model of the format
is measured first, once, whatever the run's recovery strategy): the write's encoding
runs in the tasks that compute the output, with no cache, no second job reading the cache
back, and a commit at the stage's end. Its compute is the job's wall time less the cost
model's write (a driver's first write warms the write path up first: a cold JVM's first
Delta write takes seconds more, which would count as compute). Otherwise the output is
computed into Spark's cache and written from there in the background (as ``"async"``). Async
costs that second pass over the output, and on a cluster the stages keep busy it takes task
slots from the next stage: in ``benchmarks/recovery.py`` (four Python UDF stages, local
disk, 2 cores) its four UDF stages written async cost the run 1.15x, 1.19x and 1.27x of no
checkpoints against 1.09x, 1.18x and 1.19x written sync in the same three runs (medians of
3), and the next run of ``"auto"`` 1.22x against 1.14x. On a root whose writes are
latency-bound (an object store: a Delta commit is tens of requests) async hides the commit
behind the consumers, and stays.

An output is written only if its recompute also puts at least :data:`MIN_REPLAY_S` seconds
at risk (its own compute plus that of its inputs a crash would lose). Less is replayed after a
crash, never insured: every write costs each fault-free run (its write, and the cache that
breaks Catalyst's fusion of the output into its consumers), a recovery starts a new driver
anyway (its JVM and session alone take 5-15 s), and a stage of a few seconds is rarely the
one a crash interrupts. A chain of cheap stages adds up: the first output whose recompute,
inputs included, reaches the floor is written. ``$EXOFLOW_AUTO_MIN_REPLAY_S`` sets the floor
(0: every output that costs more to recompute than to write is written).

Every decision is logged as an ``auto_checkpoint`` event with its inputs and their source,
and shown by ``exoflow-spark history`` and ``explain``. This module is pure (no Spark): the
task runner (:mod:`.runner`) gathers the inputs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from ..errors import InvalidOptionError
from ..storage import layout
from ..storage.logfs import LogFS
from .cost import Throughput

logger = logging.getLogger(__name__)

#: version of the profile file format; a file with another version is ignored (re-measured)
PROFILE_SCHEMA = 1
PROFILE_KIND = "exoflow-task-profile"

#: Recompute estimate of a plan of JVM operators only (no profile, no Python code): bytes
#: read/produced per second per pass, and per shuffle (written, fetched, read again).
ESTIMATE_SCAN_BPS = 1e9
ESTIMATE_SHUFFLE_BPS = 200e6

#: Seconds of recompute at risk below which ``"auto"`` never writes an output (see above).
MIN_REPLAY_S = 5.0
#: The environment variable that overrides :data:`MIN_REPLAY_S` (seconds, a number >= 0).
MIN_REPLAY_ENV = "EXOFLOW_AUTO_MIN_REPLAY_S"

#: The storage root's calibrated fixed cost per checkpoint write (seconds) up to which an
#: output decided from its profile is written sync, by the job that computes it (see above)
INLINE_WRITE_MAX_FIXED_S = 1.0

Action = Literal["write", "fuse", "measure"]
Source = Literal["profile", "measured", "estimate", "rule"]


def profile_key(task_id: str, code_fingerprint: str) -> str:
    """The profile key of a task: its id and the fingerprint of its function's code."""
    return hashlib.sha256(f"{task_id}\0{code_fingerprint}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class TaskProfile:
    """A task's costs as measured in one run (``_exoflow/profiles/<key>.json``).

    Attributes:
        key: :func:`profile_key` of the task.
        task: the task id (for people reading the file).
        code_fingerprint: the fingerprint of the task's function when measured.
        compute_s: seconds to compute the task's own output (its fused inputs' share taken
            out, unless their estimates exceed the measurement: then it is the whole
            measurement), measured as wall time of the job that computed it into the cache.
        executor_s: Spark's executor run time of that job (all cores), or None.
        rows: output rows, or None.
        bytes: output size in memory (Spark's statistics of the cached data).
        write_s: wall seconds its checkpoint write took (an async write shares the cluster
            with the run's jobs, so this is for people; decisions price writes with the
            root's cost model), or None when it was not written.
        workflow_id: the workflow that measured it.
        measured_at: when (epoch seconds).
        tail_s: seconds its run went on after the output was ready (computed, decided),
            None when that run did not finish or was measured before this was kept.
        run_s: seconds that run took (with ``tail_s``: the share of the run a crash could
            land in after the output, see :func:`decide_before`).
    """

    key: str
    task: str
    code_fingerprint: str
    compute_s: float
    executor_s: float | None
    rows: int | None
    bytes: int
    write_s: float | None
    workflow_id: str
    measured_at: float
    tail_s: float | None = None
    run_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": PROFILE_KIND, "schema": PROFILE_SCHEMA, **asdict(self)}

    @classmethod
    def from_json(cls, doc: Any, key: str) -> TaskProfile:
        """Parse a profile file; ValueError when it is not a profile of ``key``."""
        if not isinstance(doc, dict) or doc.get("kind") != PROFILE_KIND:
            raise ValueError("not an exoflow task profile")
        if doc.get("schema") != PROFILE_SCHEMA:
            raise ValueError(f"profile schema {doc.get('schema')!r}, expected {PROFILE_SCHEMA}")
        if doc.get("key") != key:
            raise ValueError(f"profile of key {doc.get('key')!r}, expected {key!r}")

        def num(name: str, *, optional: bool = False) -> float | None:
            v = doc.get(name)
            if v is None and optional:
                return None
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or v != v:
                raise ValueError(f"field {name!r} is {v!r}, not a number >= 0")
            return float(v)

        rows = num("rows", optional=True)
        executor = num("executor_s", optional=True)
        write = num("write_s", optional=True)
        tail = num("tail_s", optional=True)
        run = num("run_s", optional=True)
        return cls(
            key=key,
            task=str(doc.get("task", "")),
            code_fingerprint=str(doc.get("code_fingerprint", "")),
            compute_s=float(num("compute_s") or 0.0),
            executor_s=executor,
            rows=None if rows is None else int(rows),
            bytes=int(num("bytes") or 0),
            write_s=write,
            workflow_id=str(doc.get("workflow_id", "")),
            measured_at=float(num("measured_at") or 0.0),
            tail_s=tail if run else None,
            run_s=run if tail is not None else None,
        )


class ProfileStore:
    """The task profiles of a storage root. A missing, corrupt or foreign profile file reads
    as no profile (with a warning for the latter two): the task is measured afresh."""

    def __init__(self, fs: LogFS) -> None:
        self.fs = fs

    def load(self, key: str) -> TaskProfile | None:
        rel = layout.profile_file(key)
        try:
            raw = self.fs.get(rel)
        except Exception as exc:  # an unreadable file is no profile, never a failed run
            logger.warning("ignoring task profile %s: cannot read it (%s)", self.fs.uri(rel), exc)
            return None
        if raw is None:
            return None
        try:
            return TaskProfile.from_json(json.loads(raw), key)
        except (ValueError, TypeError, UnicodeDecodeError) as exc:
            logger.warning(
                "ignoring task profile %s (%s): the task is measured afresh", self.fs.uri(rel), exc
            )
            return None

    def save(self, profile: TaskProfile) -> None:
        """Write (replace) a profile; a failure is logged, never raised (profiles are hints)."""
        rel = layout.profile_file(profile.key)
        try:
            self.fs.put(rel, json.dumps(profile.to_json(), sort_keys=True).encode())
        except Exception as exc:
            logger.warning("could not save task profile %s: %s", self.fs.uri(rel), exc)


@dataclass(frozen=True)
class PlanStats:
    """What a task's optimized plan says about its cost (:func:`~exoflow_spark.spark.session.
    plan_stats`). Counts are of the task's own operators: its inputs' are taken out."""

    #: operators running code Catalyst cannot see into (Python UDFs, pandas/Arrow functions)
    opaque: int
    #: operators with a wide dependency (joins, aggregations, repartitions, sorts, windows)
    shuffles: int
    #: Catalyst's estimate of the output size in bytes, None when unknown or absurd
    size_bytes: int | None
    #: what the plan reads: its leaves' sizes summed (a bound on a join's recompute, which
    #: Catalyst without column statistics sizes at the product of its sides), None if unknown
    input_bytes: int | None = None

    @property
    def work_bytes(self) -> int:
        """The bytes a recompute is priced by: the output estimate, bounded by twice what
        the plan reads (a stage that adds columns may grow its input; a product is absurd)."""
        size = self.size_bytes or 0
        if self.input_bytes is None:
            return size
        return min(size, 2 * self.input_bytes) if self.size_bytes is not None else self.input_bytes


@dataclass(frozen=True)
class AutoDecision:
    """One ``checkpoint="auto"`` decision and what it was made from.

    ``action``: ``write`` (see :func:`write_mode`), ``fuse`` (a lazy plan that
    fuses into its consumers) or ``measure`` (compute into the cache, time it, then decide:
    :func:`decide_measured` turns it into ``write`` or ``keep``).
    """

    task: str
    action: Action | Literal["keep"]
    source: Source
    replay_s: float | None
    write_s: float | None
    bytes: int | None
    reason: str

    @property
    def checkpoint(self) -> bool:
        return self.action == "write"

    def to_event(self) -> dict[str, Any]:
        """The ``auto_checkpoint`` event's fields (``checkpoint``, ``replay_s``, ``write_s``
        and ``bytes`` as before; ``action``, ``source`` and ``reason`` added)."""
        return {
            "checkpoint": self.checkpoint,
            "action": self.action,
            "source": self.source,
            "replay_s": None if self.replay_s is None else round(self.replay_s, 4),
            "write_s": None if self.write_s is None else round(self.write_s, 4),
            "bytes": self.bytes,
            "reason": self.reason,
        }


def walk_up(
    task: str,
    inputs: Callable[[str], Iterable[str]],
    visit: Callable[[str], tuple[bool, bool]],
) -> list[str]:
    """The tasks above ``task`` (``inputs(t)``: the ids of t's inputs) that ``visit(t)``
    collects, in the order reached; ``visit`` also says whether the walk goes on through t
    to its inputs. Each task is visited once: a diamond's shared ancestor counts once in a
    crash's recompute (the run prices it so, and ``explain`` previews it so)."""
    visited: set[str] = set()
    out: list[str] = []
    stack = [task]
    while stack:
        for uid in inputs(stack.pop()):
            if uid in visited:
                continue
            visited.add(uid)
            take, through = visit(uid)
            if take:
                out.append(uid)
            if through:
                stack.append(uid)
    return out


def min_replay_s(environ: Any = None) -> float:
    """The floor of recompute worth insuring: ``$EXOFLOW_AUTO_MIN_REPLAY_S`` or
    :data:`MIN_REPLAY_S`.

    Raises:
        InvalidOptionError: the variable is set to something other than a number >= 0.
    """
    import os

    raw = (os.environ if environ is None else environ).get(MIN_REPLAY_ENV)
    if raw is None or not str(raw).strip():
        return MIN_REPLAY_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise InvalidOptionError(
            f"{MIN_REPLAY_ENV}={raw!r} is not a number of seconds >= 0: set it to the least "
            f"recompute checkpoint='auto' insures with a write (default {MIN_REPLAY_S:g}; 0 "
            "writes every output that costs more to recompute than to write), or unset it"
        )
    return value


def _worth(
    replay: float,
    write: float,
    floor: float,
    share: float | None = None,
    *,
    what: str = "write",
) -> tuple[bool, str]:
    """Whether ``replay`` seconds at risk are worth a checkpoint costing ``write`` seconds
    (``what`` it is, in words), and the comparison in words. ``share``: the share of the run
    in which a crash lands after the checkpoint commits (known from a profile, see
    :func:`crash_share`); the recompute it insures is weighted by it. None: unknown, every
    crash is assumed to land after it."""
    insured = replay if share is None else replay * share
    said = (
        f"recompute {replay:.2f}s"
        if share is None
        else f"recompute {replay:.2f}s x {share:.2f} of the run after its commit = {insured:.2f}s"
    )
    if insured < write:
        return False, f"{said} < {what} {write:.2f}s"
    if replay < floor:
        return False, f"{said} >= {what} {write:.2f}s, but under the {floor:g}s worth insuring"
    return True, f"{said} >= {what} {write:.2f}s"


@dataclass(frozen=True)
class RunTail:
    """What was left of a run when an output was ready (``tail_s`` of ``run_s``), from a
    profile of a run that finished the whole pipeline."""

    tail_s: float
    run_s: float

    @property
    def share(self) -> float:
        """The part of the run still ahead when the output was ready."""
        return self.tail_s / self.run_s

    @classmethod
    def of(cls, profile: TaskProfile | None, *, after_write: bool = False) -> RunTail | None:
        """The profile's tail; ``after_write``: less its checkpoint's write time, what the
        outputs computed after it inherit (that run went on for the write, which a run
        that does not write it does not)."""
        if profile is None or profile.tail_s is None or not profile.run_s:
            return None
        tail = profile.tail_s
        if after_write and profile.write_s is not None:
            tail = max(tail - profile.write_s, 0.0)
        return cls(tail, profile.run_s)


def earliest_tail(*tails: RunTail | None) -> RunTail | None:
    """The shortest of the known tails (an output is ready after its inputs: its tail is at
    most theirs), None when none is known."""
    known = [t for t in tails if t is not None]
    return min(known, key=lambda t: t.share) if known else None


def crash_share(tail: RunTail | None, latency_s: float) -> float | None:
    """The share of its run in which a crash would land after the output's checkpoint
    committed: what was left of the run when the output was ready, less the write's own
    time (``latency_s``), over the run's length. None when unknown."""
    if tail is None:
        return None
    return min(max(tail.tail_s - latency_s, 0.0) / tail.run_s, 1.0)


def write_mode(tp: Throughput) -> tuple[Literal["sync", "async"], str]:
    """How ``"auto"`` writes an output it decides to write before computing it (from its
    profile, or to measure it: no profile, Python code), and why: ``"sync"`` (by the job
    that computes it) on a root whose calibrated fixed cost per write is at most
    :data:`INLINE_WRITE_MAX_FIXED_S`, else ``"async"`` (computed into the cache, measured
    there, written in the background if worth it). A root not calibrated (its cost model
    assumed, see :mod:`.cost`) is written async: the task runner measures the root first
    (``TaskRunner._write_mode``), so that happens only when measuring it failed."""
    if not tp.measured:
        return "async", "written async: the root's write cost is not measured yet"
    if tp.write_fixed_s <= INLINE_WRITE_MAX_FIXED_S:
        return "sync", (
            f"written sync by the job that computes it: the root's fixed cost per write is "
            f"{tp.write_fixed_s:.2f}s, at most {INLINE_WRITE_MAX_FIXED_S:g}s"
        )
    return "async", (
        f"written async: the root's fixed cost per write is {tp.write_fixed_s:.2f}s, over "
        f"{INLINE_WRITE_MAX_FIXED_S:g}s (the background write hides it)"
    )


def write_cost(tp: Throughput, size: int) -> float:
    """Seconds to write a checkpoint of ``size`` bytes (the root's cost model)."""
    return tp.write_fixed_s + size / tp.write_bps


#: how :func:`decide_before` names what a checkpoint of an output that would fuse costs
CHECKPOINT_COST = "write and read back"


def checkpoint_cost(tp: Throughput, size: int) -> float:
    """Seconds a checkpoint of ``size`` bytes adds to a run that would otherwise fuse the
    output into its consumers' plans: its write, and their reading it back (a fused output
    is never read). The alternative to writing an output computed into the cache is keeping
    it there, read either way: that choice is priced by :func:`write_cost` alone."""
    return write_cost(tp, size) + tp.read_fixed_s + size / tp.read_bps


def estimate_compute(stats: PlanStats) -> float:
    """Seconds to recompute a plan of JVM operators from its statistics (a rough bound)."""
    size = stats.work_bytes
    return size / ESTIMATE_SCAN_BPS + stats.shuffles * size / ESTIMATE_SHUFFLE_BPS


def decide_before(
    task: str,
    *,
    profile: TaskProfile | None,
    stats: PlanStats | None,
    upstream_replay_s: float,
    throughput: Throughput,
    must_write: str | None = None,
    eager_s: float = 0.0,
    min_replay_s: float = MIN_REPLAY_S,
    tail: RunTail | None = None,
) -> AutoDecision:
    """Decide before the output is computed (nothing is materialized to decide).

    Args:
        task: the task id.
        profile: its profile from an earlier run, if any.
        stats: its plan's statistics (None: unknown, e.g. Spark Connect).
        upstream_replay_s: seconds to recompute its inputs that are not durable (a crash
            loses caches too).
        throughput: the storage root's cost model.
        must_write: why the output is written whatever it costs (nondeterministic, waited
            on), or None.
        eager_s: seconds the task's function itself ran (its eager Spark actions: a
            training loop, a collect): its output's plan does not show them, a replay redoes
            them. Added to the plan's estimate.
        min_replay_s: the least recompute at risk worth a write (:data:`MIN_REPLAY_S`).
        tail: the shortest tail its inputs' profiles know (:func:`earliest_tail`): its own
            is no longer. With its own profile's, the insured recompute is weighted by the
            share of the run a crash could land in after the commit (:func:`crash_share`).
    """
    if must_write:
        return AutoDecision(task, "write", "rule", None, None, None, must_write)
    if profile is not None:
        replay = profile.compute_s + upstream_replay_s
        # the root's cost model prices the write (the profile's write_s is the wall time of
        # an async write sharing the cluster with the run's jobs: shown, not compared)
        write = checkpoint_cost(throughput, profile.bytes)
        latency = (
            profile.write_s
            if profile.write_s is not None
            else write_cost(throughput, profile.bytes)
        )
        share = crash_share(earliest_tail(RunTail.of(profile), tail), latency)
        worth, why = _worth(replay, write, min_replay_s, share, what=CHECKPOINT_COST)
        return AutoDecision(
            task,
            "write" if worth else "fuse",
            "profile",
            replay,
            write,
            profile.bytes,
            f"profile of {profile.workflow_id}: compute {profile.compute_s:.2f}s"
            + (f" (executor {profile.executor_s:.2f}s)" if profile.executor_s is not None else "")
            + f" + inputs' recompute {upstream_replay_s:.2f}s: {why}",
        )
    if stats is None or stats.opaque > 0:
        why = (
            "no profile, and the plan runs Python code whose cost it cannot bound"
            if stats is not None
            else "no profile and no plan statistics"
        )
        return AutoDecision(task, "measure", "measured", None, None, None, why + ": measuring")
    compute = estimate_compute(stats)
    replay = compute + eager_s + upstream_replay_s
    size = stats.work_bytes
    write = checkpoint_cost(throughput, size)
    share = crash_share(tail, write_cost(throughput, size))
    worth, why = _worth(replay, write, min_replay_s, share, what=CHECKPOINT_COST)
    return AutoDecision(
        task,
        "write" if worth else "fuse",
        "estimate",
        replay,
        write,
        size if stats.size_bytes is not None or stats.input_bytes is not None else None,
        f"no profile; plan estimate: {stats.shuffles} shuffle(s) over ~{size} bytes"
        + (f", plus {eager_s:.2f}s its function ran" if eager_s >= 0.005 else "")
        + (
            f", plus inputs' recompute {upstream_replay_s:.2f}s"
            if upstream_replay_s >= 0.005
            else ""
        )
        + f": {why}",
    )


def decide_measured(
    task: str,
    *,
    measured_s: float,
    size: int,
    throughput: Throughput,
    executor_s: float | None,
    replay_s: float | None = None,
    min_replay_s: float = MIN_REPLAY_S,
    tail: RunTail | None = None,
) -> AutoDecision:
    """Decide from a measurement made now: ``measured_s`` is the wall time of computing the
    output (and its fused inputs) into the cache; ``replay_s`` what a crash would redo, when
    more (inputs it read from the cache that a crash loses too; default ``measured_s``);
    ``tail`` as in :func:`decide_before`."""
    replay = measured_s if replay_s is None else max(replay_s, measured_s)
    write = write_cost(throughput, size)
    worth, why = _worth(replay, write, min_replay_s, crash_share(tail, write))
    return AutoDecision(
        task,
        "write" if worth else "keep",
        "measured",
        replay,
        write,
        size,
        f"measured now: compute {measured_s:.2f}s"
        + (f" (executor {executor_s:.2f}s)" if executor_s is not None else "")
        + (f", {replay:.2f}s with its cached inputs" if replay > measured_s + 0.005 else "")
        + f": {why}",
    )


def new_profile(
    *,
    key: str,
    task: str,
    code_fingerprint: str,
    own_s: float,
    executor_s: float | None,
    rows: int | None,
    size: int,
    workflow_id: str,
    write_s: float | None = None,
) -> TaskProfile:
    """A profile of a measurement made now."""
    return TaskProfile(
        key=key,
        task=task,
        code_fingerprint=code_fingerprint,
        compute_s=max(own_s, 0.0),
        executor_s=executor_s,
        rows=rows,
        bytes=max(int(size), 0),
        write_s=write_s,
        workflow_id=workflow_id,
        measured_at=time.time(),
    )
