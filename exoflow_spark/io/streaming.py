"""Streaming tasks: a Structured Streaming query as one recoverable, exactly-once workflow step.

A streaming task's function returns a streaming DataFrame (``spark.readStream...``); the
engine runs the query with:

* a ``checkpointLocation`` under the storage root (``workflows/<wf>/streams/<task>``, or
  ``streams/<stream_name>`` for a stream shared by a series of workflows), so Spark records
  each micro-batch's offsets before running it and replays an unfinished batch with the same
  offsets after a crash;
* a Delta sink made idempotent per micro-batch in ``foreachBatch``: every write carries
  ``txnAppId``/``txnVersion`` derived from the stream and the batch id (and for MERGE the
  session confs ``spark.databricks.delta.write.txnAppId``/``txnVersion``), so a replayed batch
  writes nothing twice;
* a bounded trigger (``trigger="available_now"``: everything available now, then stop) or a
  processing-time trigger (``trigger="5 seconds"``) that runs until a stop condition holds
  (``max_batches``, ``stop_when``, ``timeout``) or :func:`request_stop` is called (jobs call it
  from a SIGTERM/SIGINT handler): the current micro-batch finishes, then the query stops.

The task's output is its Delta table at the version the query ended with, so batch tasks
downstream read one fixed snapshot (a pinned version, not a moving table). With a custom
``foreach_batch`` that writes its own tables, the output is a small summary value.

Example:
    >>> @xf.streaming_task(trigger="available_now")
    ... def clean_events(customers):           # customers: a batch ref, a static input
    ...     events = xf.get_spark().readStream.format("delta").load("/lake/events")
    ...     return events.join(customers, "customer_id")
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..core.context import TaskContext
from ..core.faults import crash_point
from ..core.ids import validate_id
from ..core.options import TASK_DEFAULTS, TaskOptions
from ..core.records import EventKind
from ..core.task import Task
from ..errors import DagError, InvalidOptionError, SinkError
from ..spark.session import is_connect_session
from ..storage import layout
from ..storage.checkpoints import DeltaSnapshot, table_snapshot

logger = logging.getLogger(__name__)

OutputMode = Literal["append", "complete", "update"]
_PROCESSING_TIME = re.compile(r"^\d+(\.\d+)?\s*(ms|milliseconds?|s|seconds?|minutes?)$")
#: Writes a single micro-batch may make (txnVersion = batch_id * this + k).
WRITES_PER_BATCH = 1000

_stop_requested = threading.Event()
_STOP_MARKER = "exoflow: streaming task stopping;"


def request_stop() -> None:
    """Ask every running streaming task to stop after its current micro-batch.

    Safe to call from a signal handler. Long-running streaming tasks then end normally (their
    output commits) and the workflow finishes. The request stays in force (later streaming
    tasks of this process stop after one batch) until :func:`clear_stop`.
    """
    _stop_requested.set()


def clear_stop() -> None:
    """Forget an earlier :func:`request_stop` (called at the start of each run)."""
    _stop_requested.clear()


@dataclass(frozen=True)
class StreamOptions:
    """How a streaming task's query runs and stops.

    Attributes:
        trigger: ``"available_now"`` (process what is there, then stop) or a processing-time
            interval such as ``"5 seconds"`` (run until a stop condition holds).
        output_mode: ``"append"`` (new rows appended), ``"complete"`` (the table is replaced
            by each batch, for aggregations) or ``"update"`` (rows MERGEd on ``merge_keys``).
        merge_keys: key columns for ``output_mode="update"``.
        foreach_batch: ``fn(batch: StreamBatch)`` writing its own tables through
            ``batch.write`` / ``batch.merge`` (idempotent per batch); replaces the default
            sink.
        table: where the default sink writes; defaults to the task's table under the
            workflow's storage root. An external table makes the task a sink.
        stream_name: share the query's checkpoint (offsets) and idempotency keys across
            workflows: each workflow of a series continues the stream where the last ended.
        max_batches: stop after this many micro-batches in one run.
        stop_when: ``fn(progress: dict) -> bool`` checked after every micro-batch with the
            query's last progress; True stops.
        timeout: stop after this many seconds in one run.
    """

    trigger: str = "available_now"
    output_mode: OutputMode = "append"
    merge_keys: tuple[str, ...] = ()
    foreach_batch: Callable[[StreamBatch], Any] | None = None
    table: str | None = None
    stream_name: str | None = None
    max_batches: int | None = None
    stop_when: Callable[[dict[str, Any]], bool] | None = None
    timeout: float | None = None

    def __post_init__(self) -> None:
        if self.trigger != "available_now" and not _PROCESSING_TIME.match(str(self.trigger)):
            raise InvalidOptionError(
                f"streaming task: trigger={self.trigger!r} is not valid; use 'available_now' "
                "(bounded) or an interval such as '5 seconds' or '500 ms' (long-running)"
            )
        if self.output_mode not in ("append", "complete", "update"):
            raise InvalidOptionError(
                f"streaming task: output_mode={self.output_mode!r} is not valid; use 'append', "
                "'complete' or 'update' (with merge_keys)"
            )
        keys = self.merge_keys
        if isinstance(keys, str):
            keys = (keys,)
        object.__setattr__(self, "merge_keys", tuple(keys))
        if self.output_mode == "update" and not self.merge_keys and self.foreach_batch is None:
            raise InvalidOptionError(
                "streaming task: output_mode='update' needs merge_keys=[...] (the columns that "
                "identify a row), so each batch is MERGEd into the table"
            )
        for name in ("max_batches",):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise InvalidOptionError(f"streaming task: {name}={value!r} must be an int >= 1")
        if self.timeout is not None and not (
            isinstance(self.timeout, (int, float)) and self.timeout > 0
        ):
            raise InvalidOptionError(f"streaming task: timeout={self.timeout!r} must be > 0")
        if self.stream_name is not None:
            validate_id(self.stream_name, kind="stream name")
        if self.foreach_batch is not None and not callable(self.foreach_batch):
            raise InvalidOptionError("streaming task: foreach_batch must be a function")
        if self.stop_when is not None and not callable(self.stop_when):
            raise InvalidOptionError("streaming task: stop_when must be a function")
        if self.table is not None and (not isinstance(self.table, str) or not self.table.strip()):
            raise InvalidOptionError(f"streaming task: table={self.table!r} must be a path")
        if self.trigger == "available_now" and self.max_batches is not None:
            # availableNow stops by itself; max_batches would cut it short (allowed, but odd)
            logger.debug("available_now trigger with max_batches=%s", self.max_batches)

    @property
    def bounded(self) -> bool:
        """Whether the query stops by itself once the available input is processed."""
        return self.trigger == "available_now"


class StreamingTask(Task[Any]):
    """A task whose function returns a streaming DataFrame (see :func:`streaming_task`)."""

    def __init__(self, fn: Callable[..., Any], options: TaskOptions, stream: StreamOptions):
        super().__init__(fn, options)
        self.stream = stream

    def options(self, **changes: Any) -> StreamingTask:
        """A copy with some task or stream options changed."""
        from dataclasses import replace

        stream_fields = set(StreamOptions.__dataclass_fields__)
        stream_changes = {k: v for k, v in changes.items() if k in stream_fields}
        task_changes = {k: v for k, v in changes.items() if k not in stream_fields}
        base = super().options(**task_changes)
        return StreamingTask(base.fn, base.opts, replace(self.stream, **stream_changes))

    def finish(self, result: Any, ctx: Any) -> DeltaSnapshot | dict[str, Any]:
        """Run the streaming query the function returned until its trigger says stop."""
        return run_stream(result, self.stream, ctx)

    def __repr__(self) -> str:
        return f"StreamingTask({self.name}, trigger={self.stream.trigger!r})"


def streaming_task(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    trigger: str = "available_now",
    output_mode: OutputMode = "append",
    merge_keys: Iterable[str] = (),
    foreach_batch: Callable[[StreamBatch], Any] | None = None,
    table: str | None = None,
    stream_name: str | None = None,
    max_batches: int | None = None,
    stop_when: Callable[[dict[str, Any]], bool] | None = None,
    timeout: float | None = None,
    deterministic: bool = TASK_DEFAULTS.deterministic,
    max_retries: int = TASK_DEFAULTS.max_retries,
    retry_exceptions: bool = TASK_DEFAULTS.retry_exceptions,
    wait_until_committed: Iterable[str] = TASK_DEFAULTS.wait_until_committed,
    name: str | None = TASK_DEFAULTS.name,
) -> Any:
    """Declare a streaming task: its function returns a streaming DataFrame.

    The query's progress is durable in its ``checkpointLocation`` and every micro-batch is
    written exactly once, so a driver killed mid-batch resumes where it stopped. The task
    commits when the query stops; its output is its Delta table at that version.

    Args:
        trigger: ``"available_now"`` (bounded) or an interval like ``"5 seconds"``.
        output_mode: ``"append"``, ``"complete"`` or ``"update"`` (MERGE on ``merge_keys``).
        merge_keys: key columns for ``"update"``.
        foreach_batch: ``fn(batch)`` that writes its own tables via ``batch.write`` and
            ``batch.merge`` (each idempotent per micro-batch).
        table: the default sink's Delta path (default: the task's table in the workflow).
        stream_name: continue one stream across a series of workflows (shared offsets).
        max_batches: stop after this many micro-batches in one run.
        stop_when: ``fn(last_progress) -> bool``; True stops the query.
        timeout: stop after this many seconds.
        deterministic: whether replaying the same offsets gives the same rows.
        max_retries: retries after system errors (the query restarts from its checkpoint).
        retry_exceptions: also retry errors raised by the task's own code.
        wait_until_committed: task names that must be durable before the query starts.
        name: the task id (defaults to the function name).

    Example:
        >>> @xf.streaming_task(trigger="5 seconds", max_batches=10)
        ... def counts():
        ...     return xf.get_spark().readStream.format("rate").load()
    """
    stream = StreamOptions(
        trigger=trigger,
        output_mode=output_mode,
        merge_keys=tuple(merge_keys),
        foreach_batch=foreach_batch,
        table=table,
        stream_name=stream_name,
        max_batches=max_batches,
        stop_when=stop_when,
        timeout=timeout,
    )
    opts = TaskOptions(
        checkpoint=False,  # the query's own table is durable: nothing more to write
        checkpoint_declared=True,  # so no run-wide checkpoint policy applies
        deterministic=deterministic,
        max_retries=max_retries,
        retry_exceptions=retry_exceptions,
        wait_until_committed=wait_until_committed,  # type: ignore[arg-type]
        name=name,
        sink=table is not None or foreach_batch is not None,
    )
    if fn is not None:
        return StreamingTask(fn, opts, stream)
    return lambda f: StreamingTask(f, opts, stream)


@dataclass
class StreamBatch:
    """One micro-batch inside ``foreach_batch``: its rows, its id and idempotent writers."""

    df: Any
    batch_id: int
    app_id: str
    task_id: str
    default_table: str
    _seq: int = field(default=0)

    def _next_version(self) -> int:
        if self._seq >= WRITES_PER_BATCH:
            raise SinkError(
                f"task [{self.task_id}] batch {self.batch_id}: more than {WRITES_PER_BATCH} "
                "writes in one micro-batch; write fewer, larger DataFrames"
            )
        version = self.batch_id * WRITES_PER_BATCH + self._seq
        self._seq += 1
        return version

    def write(
        self,
        df: Any,
        path: str | None = None,
        *,
        mode: Literal["append", "overwrite"] = "append",
        options: Mapping[str, str] | None = None,
    ) -> None:
        """Append (or overwrite) ``df`` to the Delta table at ``path``, once per batch."""
        if mode not in ("append", "overwrite"):
            raise SinkError(
                f"task [{self.task_id}]: batch.write mode={mode!r}: use 'append' or 'overwrite'"
            )
        version = self._next_version()
        writer = df.write.format("delta").mode(mode)
        writer = writer.option("txnAppId", self.app_id).option("txnVersion", str(version))
        for key, value in (options or {}).items():
            writer = writer.option(key, value)
        writer.save(path or self.default_table)
        crash_point(self.task_id, "during-batch")

    def merge(self, df: Any, path: str | None, keys: Iterable[str]) -> None:
        """MERGE ``df`` into the table at ``path`` on ``keys`` (update + insert), once per batch.

        Creates the table from ``df`` on the first batch. ``df`` may come from any session of
        this driver (the batch's rows, or a DataFrame read with ``xf.get_spark()``).

        Delta's MERGE takes no per-command ``txnAppId``/``txnVersion`` option (delta-spark
        4.4: ``DeltaMergeBuilder`` has no ``option``; ``MergeIntoCommand`` reads the keys
        only from its session's confs ``spark.databricks.delta.write.txnAppId/txnVersion``),
        so the keys are set on the micro-batch's own session and the MERGE runs there. Spark
        gives every streaming query a session of its own (``StreamExecution`` clones it) and
        runs one batch of a query at a time, so no other command of the driver can read
        them: not another query's MERGE, not a batch task's write, not a checkpoint write on
        the shared session (a write without ``txnAppId`` options takes the session's keys).
        """
        from delta.tables import DeltaTable

        keys = list(keys)
        if not keys:
            raise SinkError(f"task [{self.task_id}]: batch.merge needs key columns")
        path = path or self.default_table
        # the micro-batch's session, private to this query (never df.sparkSession: a
        # DataFrame built with the driver's shared session would put the keys there)
        session = self.df.sparkSession
        if not DeltaTable.isDeltaTable(session, path):
            self.write(df, path)
            return
        version = self._next_version()
        cond = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
        conf = session.conf
        conf.set("spark.databricks.delta.write.txnAppId", self.app_id)
        conf.set("spark.databricks.delta.write.txnVersion", str(version))
        try:
            (
                DeltaTable.forPath(session, path)
                .alias("t")
                .merge(df.alias("s"), cond)
                .whenMatchedUpdateAll()
                .whenNotMatchedInsertAll()
                .execute()
            )
        finally:
            conf.unset("spark.databricks.delta.write.txnAppId")
            conf.unset("spark.databricks.delta.write.txnVersion")
        crash_point(self.task_id, "during-batch")


@dataclass(frozen=True)
class SinkTarget:
    """Where a streaming task writes each micro-batch when it is not its own Delta table: a
    sink (``dp.create_sink``). Delta sinks are written once per micro-batch (``txnAppId`` /
    ``txnVersion``); other formats have no idempotent commit and are written at least once.

    Attributes:
        format: the writer's format (``"delta"``, ``"parquet"``, ...).
        path: the sink's path (``None``: the format finds its target in ``options``).
        options: the writer's options.
    """

    format: str = "delta"
    path: str | None = None
    options: Mapping[str, str] = field(default_factory=dict)


def run_stream(
    sdf: Any, stream: StreamOptions, ctx: TaskContext, *, sink: SinkTarget | None = None
) -> DeltaSnapshot | dict[str, Any]:
    """Run a streaming task's query to its stop condition; return its durable output.

    ``sink`` replaces the default sink (the task's Delta table). In a classic session each
    micro-batch is written by ``foreachBatch`` with ``txnAppId``/``txnVersion``. Over Spark
    Connect the query writes through the sink format's own streaming sink instead (see
    :func:`_connect_sink`): Delta's records each batch id in the table's log with the query's
    id, so a replayed batch is skipped, and no Python runs on the server.
    """
    if not getattr(sdf, "isStreaming", False):
        raise DagError(
            f"workflow [{ctx.workflow_id}] streaming task [{ctx.task_id}] returned "
            f"{type(sdf).__name__}, not a streaming DataFrame: build it from spark.readStream "
            "(or declare the task with @xf.task if it is a batch step)"
        )
    store = ctx.store
    if stream.stream_name:
        checkpoint_rel = layout.shared_stream_checkpoint(stream.stream_name)
        checkpoint, shared_table = store.shared_stream_uris(stream.stream_name)
        app_id = f"exoflow-stream-{stream.stream_name}"
        default_table = stream.table or shared_table
    else:
        checkpoint_rel = layout.stream_dir(ctx.workflow_id, ctx.task_id)
        checkpoint = store.stream_checkpoint_uri(ctx.task_id)
        app_id = f"exoflow-{ctx.workflow_id}-{ctx.task_id}"
        default_table = stream.table or store.ref_uri(ctx.task_id)
    connect = is_connect_session(ctx.spark)
    owns_table = stream.foreach_batch is None and sink is None
    target = sink or SinkTarget("delta", default_table)
    if connect:
        _connect_sink(None, stream, target, ctx.task_id)  # refuses what cannot run there
    switch_writer(store.fs, checkpoint_rel, "sink" if connect else "foreach-batch", ctx.task_id)
    if owns_table:
        _ensure_table(ctx.spark, default_table, sdf.schema, connect)
    batches: list[int] = []
    stopping = threading.Event()

    def process(batch_df: Any, batch_id: int) -> None:
        if stopping.is_set():  # stop before this batch writes anything: it replays next run
            raise RuntimeError(f"{_STOP_MARKER} batch {batch_id} left for the next run")
        batch = StreamBatch(batch_df, int(batch_id), app_id, ctx.task_id, default_table)
        if stream.foreach_batch is not None:
            stream.foreach_batch(batch)
        elif sink is not None:
            if sink.format == "delta":
                batch.write(batch_df, sink.path, options=sink.options)
            else:  # at least once: the format has no idempotent commit
                writer = batch_df.write.format(sink.format).options(**sink.options)
                writer.mode("append").save(*([sink.path] if sink.path else []))
        elif stream.output_mode == "update":
            batch.merge(batch_df, default_table, stream.merge_keys)
        else:
            mode: Literal["append", "overwrite"] = (
                "overwrite" if stream.output_mode == "complete" else "append"
            )
            batch.write(batch_df, default_table, mode=mode)
        batches.append(int(batch_id))
        crash_point(ctx.task_id, "after-batch")

    if connect:
        writer = _connect_sink(sdf.writeStream, stream, target, ctx.task_id)
    else:
        writer = sdf.writeStream.foreachBatch(process).outputMode(
            "append" if stream.output_mode == "append" else stream.output_mode
        )
    writer = writer.option("checkpointLocation", checkpoint).queryName(
        f"exoflow_{ctx.workflow_id}_{ctx.task_id}".replace("-", "_")
    )
    if stream.bounded:
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=stream.trigger)
    started = time.monotonic()
    query = writer.start(target.path) if connect and target.path else writer.start()
    logger.info(
        "[%s] [%s] streaming query started (%s, checkpoint %s%s)",
        ctx.workflow_id,
        ctx.task_id,
        stream.trigger,
        checkpoint,
        f", Spark Connect: {target.format} streaming sink" if connect else "",
    )
    # over Connect the driver learns of the batches from the query's progress (and reaches
    # its "after-batch" crash point when it does)
    observe = (lambda: _observe_batches(query, batches, ctx.task_id)) if connect else None
    try:
        reason = _await(query, stream, batches, started, stopping, observe)
    except BaseException:
        stopping.set()
        _stop_quietly(query)
        raise
    exc = query.exception()
    if exc is not None and not (stopping.is_set() and _STOP_MARKER in str(exc)):
        raise exc
    if observe is not None:
        observe()
    last = query.lastProgress or {}
    rows = sum(int(p.get("numInputRows", 0) or 0) for p in query.recentProgress or [])
    logger.info(
        "[%s] [%s] streaming query stopped (%s): %d batch(es) this run, last batch id %s",
        ctx.workflow_id,
        ctx.task_id,
        reason,
        len(batches),
        last.get("batchId", "-"),
    )
    if store is not None:
        store.event(
            ctx.run,
            EventKind.STREAM_STOPPED,
            task=ctx.task_id,
            reason=reason,
            batches=batches,
            input_rows=rows,
            seconds=time.monotonic() - started,
        )
    if not owns_table:
        return {"batches": len(batches), "batch_ids": batches, "input_rows": rows}
    return table_snapshot(ctx.spark, default_table)


def _connect_sink(writer: Any, stream: StreamOptions, target: SinkTarget, task_id: str) -> Any:
    """A Spark Connect query's writer, set to the sink format's own streaming sink.

    A ``foreachBatch`` function would run in a Python worker the server starts for each
    query (exoflow-spark installed there, seconds to start, and Spark gives it 10 s to connect
    back), so over Connect the sink is Spark's: Delta's streaming sink writes each batch in one
    commit that records the query's id and the batch id (a replayed batch is skipped), and
    other formats write as their streaming sink does. What needs this driver in the loop (a
    custom ``foreach_batch``; ``output_mode="update"``, a MERGE per batch) is refused.
    ``writer`` None only checks.
    """
    if stream.foreach_batch is not None:
        raise InvalidOptionError(
            f"streaming task [{task_id}]: a foreach_batch function does not run over Spark "
            "Connect (the server would run it, without this driver); write the stream to its "
            "table (the default sink), or run this workflow with a classic SparkSession"
        )
    if stream.output_mode == "update":
        raise InvalidOptionError(
            f"streaming task [{task_id}]: output_mode='update' (a MERGE per micro-batch) does "
            "not run over Spark Connect yet; use 'append' or 'complete', or run this workflow "
            "with a classic SparkSession"
        )
    if writer is None:
        return None
    writer = writer.format(target.format).outputMode(stream.output_mode)
    for key, value in target.options.items():
        writer = writer.option(key, value)
    return writer


_WRITER_MARKER = "exoflow-writer"


def switch_writer(fs: Any, checkpoint_rel: str, writer: str, task_id: str) -> None:
    """Record how a stream's batches are written (``"foreach-batch"``, a classic session:
    keyed by ``txnAppId``; ``"sink"``, Spark Connect: Delta's sink, keyed by the query id),
    refusing a switch while a batch is in flight.

    A batch whose offsets are logged but not its commit is replayed by the next run; written
    the other way, Delta would not recognise it as already written. A checkpoint without the
    marker was written by a classic session (Connect streams record it from their start).
    """

    def batch_ids(sub: str) -> set[int]:
        return {int(f) for f in fs.list_files(f"{checkpoint_rel}/{sub}") if f.isdigit()}

    offsets = batch_ids("offsets")
    raw = fs.get(f"{checkpoint_rel}/{_WRITER_MARKER}")
    before = raw.decode().strip() if raw else ("foreach-batch" if offsets else None)
    if before == writer:
        return
    if before is None and writer == "foreach-batch":
        return  # a new classic stream: no marker (as before markers existed)
    pending = sorted(offsets - batch_ids("commits"))
    if before is not None and pending:
        how = {"sink": "a Spark Connect session", "foreach-batch": "a classic SparkSession"}
        raise SinkError(
            f"streaming task [{task_id}]: micro-batch {pending[-1]} was started by "
            f"{how.get(before, before)} and not finished; finish it there once (re-run this "
            f"workflow with {how.get(before, before)}), then continue with {how[writer]}: "
            "written the other way, the replayed batch could be written twice"
        )
    fs.put(f"{checkpoint_rel}/{_WRITER_MARKER}", writer.encode())
    logger.info("[%s] stream %s: batches now written by %s", task_id, checkpoint_rel, writer)


def _observe_batches(query: Any, batches: list[int], task_id: str) -> None:
    """Spark Connect: add to ``batches`` the micro-batches the query's progress shows as run
    (a progress with an ``addBatch`` duration wrote its batch)."""
    for progress in query.recentProgress or []:
        batch_id = progress.get("batchId")
        if batch_id is None or int(batch_id) in batches:
            continue
        if "addBatch" in (progress.get("durationMs") or {}):
            batches.append(int(batch_id))
            crash_point(task_id, "after-batch")


def _await(
    query: Any,
    stream: StreamOptions,
    batches: list[int],
    started: float,
    stopping: threading.Event,
    observe: Callable[[], None] | None = None,
) -> str:
    """Block until the query ends by itself or a stop condition holds; stop it cleanly.

    ``observe`` (Spark Connect) refreshes ``batches`` from the query's progress."""
    seen = 0
    while True:
        if _terminated(query, 0.2):
            return "input exhausted" if stream.bounded else "query ended"
        if observe is not None:
            observe()
        reason = None
        if _stop_requested.is_set():
            reason = "stop requested"
        elif stream.timeout is not None and time.monotonic() - started >= stream.timeout:
            reason = f"timeout {stream.timeout}s"
        elif stream.max_batches is not None and len(batches) >= stream.max_batches:
            reason = f"{len(batches)} batches"
        elif stream.stop_when is not None and len(batches) > seen:
            seen = len(batches)
            if stream.stop_when(query.lastProgress or {}):
                reason = "stop_when"
        if reason is not None:
            _stop_cleanly(query, stopping)
            return reason


def _stop_cleanly(query: Any, stopping: threading.Event, grace: float = 300.0) -> None:
    """Stop between micro-batches, never inside one.

    From now on a micro-batch that starts fails before writing (its offsets are logged, so
    the next run replays it); a batch already running finishes. The query is stopped as
    soon as no trigger is active, or ends by itself when the next batch refuses to run.
    """
    stopping.set()
    deadline = time.monotonic() + grace
    while query.isActive and time.monotonic() < deadline:
        status = query.status or {}
        if not status.get("isTriggerActive", False):
            break
        _terminated(query, 0.05)
    if query.isActive:
        query.stop()


def _terminated(query: Any, timeout: float) -> bool:
    """Wait up to ``timeout`` s; whether the query ended (its error is read by the caller)."""
    try:
        return bool(query.awaitTermination(timeout)) or not query.isActive
    except Exception:  # it failed: query.exception() holds the error
        return True


def _stop_quietly(query: Any) -> None:
    try:
        query.stop()
    except Exception:  # pragma: no cover - the session may be gone
        logger.debug("stopping streaming query failed", exc_info=True)


def _ensure_table(spark: Any, path: str, schema: Any, connect: bool = False) -> None:
    """Create the sink table empty, so a stream that saw no input still has a version."""
    from delta.tables import DeltaTable

    exists = (
        table_snapshot(spark, path).version >= 0  # Connect: without the Delta Connect plugin
        if connect
        else DeltaTable.isDeltaTable(spark, path)
    )
    if not exists:
        spark.createDataFrame([], schema).write.format("delta").mode("append").save(path)


def install_stop_handlers() -> None:
    """Make SIGTERM and SIGINT stop streaming tasks cleanly (call from a job's main thread).

    The first signal asks running queries to stop after their current micro-batch (their
    outputs commit and the run ends normally); a second SIGINT interrupts as usual.
    """
    import signal

    previous_int = signal.getsignal(signal.SIGINT)

    def on_signal(signum: int, frame: Any) -> None:
        if signum == signal.SIGINT and _stop_requested.is_set() and callable(previous_int):
            previous_int(signum, frame)
            return
        logger.warning("signal %d: stopping streaming tasks after their current batch", signum)
        request_stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
