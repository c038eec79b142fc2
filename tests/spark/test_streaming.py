"""Streaming tasks: Structured Streaming queries as exactly-once workflow steps.

In-process tests cover bounded (availableNow) and long-running (processing-time) queries,
MERGE sinks, a stream continued across a series of workflows, batch consumers of a pinned
version and static batch inputs. Subprocess tests kill the driver in the middle of a
micro-batch and stop a long-running job with SIGTERM.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from drivers import start_driver, stream_job
from pyspark.sql import functions as F

import exoflow_spark as xf
from exoflow_spark.io.streaming import clear_stop
from exoflow_spark.storage.store import WorkflowStore


def append_epoch(spark, path: str, epoch: int, n: int = 50) -> None:
    """One commit (one file) of events for ``epoch`` to the Delta source table."""
    (
        spark.range(epoch * 1000, epoch * 1000 + n)
        .select(
            F.col("id").alias("event_id"),
            (F.col("id") % 5).alias("customer_id"),
            F.lit(epoch).alias("epoch"),
        )
        .coalesce(1)
        .write.format("delta")
        .mode("append")
        .save(path)
    )


def events_stream(path: str):
    return xf.get_spark().readStream.format("delta").option("maxFilesPerTrigger", 1).load(path)


def test_bounded_stream_with_static_input_and_batch_consumer(spark, storage, wf, tmp_path):
    src = str(tmp_path / "events")
    for epoch in range(3):
        append_epoch(spark, src, epoch)
    runs = {"enrich": 0, "totals": 0}

    @xf.task
    def customers():
        return (
            xf.get_spark()
            .range(5)
            .select(F.col("id").alias("customer_id"), (F.col("id") * 10).alias("region"))
        )

    @xf.streaming_task(trigger="available_now")
    def enrich(custs):
        runs["enrich"] += 1
        return events_stream(src).join(custs, "customer_id")

    @xf.task(checkpoint=True)
    def totals(enriched):
        runs["totals"] += 1
        return enriched.groupBy("region").agg(F.count("*").alias("n"))

    out = xf.run(totals.bind(enrich.bind(customers.bind())), workflow_id=wf, storage=storage)
    assert sorted((r.region, r.n) for r in out.collect()) == [(r * 10, 30) for r in range(5)]

    store = WorkflowStore(storage, wf)
    state = store.read_state()
    rec = state.commits["enrich"]
    assert rec.mode == "stream"
    # three source commits -> three micro-batches (maxFilesPerTrigger=1), appended once each
    stopped = [e for e in store.events() if e.kind == "stream_stopped"]
    assert [len(e.data["batches"]) for e in stopped] == [3]
    table = spark.read.format("delta").option("versionAsOf", rec.checkpoint.version)
    assert table.load(rec.checkpoint.path).count() == 150

    # a finished workflow re-run executes nothing, the stream included
    xf.run(totals.bind(enrich.bind(customers.bind())), workflow_id=wf, storage=storage)
    assert runs == {"enrich": 1, "totals": 1}


def test_stream_continued_across_workflows_with_pinned_versions(spark, storage, tmp_path):
    """A series of workflows shares one stream: each processes only what is new, and the
    batch task of each reads the version its own stream step committed."""
    src = str(tmp_path / "events")
    seen = []

    @xf.streaming_task(stream_name="events-online")
    def online():
        return events_stream(src)

    @xf.task
    def count(snapshot):
        n = snapshot.count()
        seen.append(n)
        return n

    append_epoch(spark, src, 0)
    assert xf.run(count.bind(online.bind()), workflow_id="epoch-0", storage=storage) == 50
    append_epoch(spark, src, 1)
    append_epoch(spark, src, 2)
    assert xf.run(count.bind(online.bind()), workflow_id="epoch-1", storage=storage) == 150
    # the first workflow's output stays pinned to its version although the table moved on
    assert xf.get_output("epoch-0", storage=storage) == 50
    v0 = WorkflowStore(storage, "epoch-0").read_state().commits["online"].checkpoint.version
    v1 = WorkflowStore(storage, "epoch-1").read_state().commits["online"].checkpoint.version
    assert v1 > v0
    table = WorkflowStore(storage, "epoch-0").read_state().commits["online"].checkpoint.path
    rows = spark.read.format("delta").load(table)
    assert rows.count() == rows.select("event_id").distinct().count() == 150


def test_update_mode_merges_a_streaming_aggregation(spark, storage, wf, tmp_path):
    src = str(tmp_path / "events")
    for epoch in range(3):
        append_epoch(spark, src, epoch, n=10 * (epoch + 1))

    @xf.streaming_task(output_mode="update", merge_keys=["customer_id"])
    def per_customer():
        return events_stream(src).groupBy("customer_id").agg(F.count("*").alias("n"))

    out = xf.run(per_customer.bind(), workflow_id=wf, storage=storage)
    got = sorted((r.customer_id, r.n) for r in out.collect())
    assert got == [(c, 12) for c in range(5)]  # 60 events over 5 customers, merged per batch
    history = spark.sql(
        f"DESCRIBE HISTORY delta.`{WorkflowStore(storage, wf).ref_uri('per_customer')}`"
    )
    assert "MERGE" in {r.operation for r in history.collect()}


def idempotency_keys(table: str) -> list[tuple[str, tuple[str, int] | None]]:
    """(operation, (txnAppId, txnVersion) or None) of each commit of a Delta table, in order."""
    out = []
    for entry in sorted(Path(table, "_delta_log").glob("*.json")):
        op, txn = None, None
        for line in entry.read_text().splitlines():
            action = json.loads(line)
            if "commitInfo" in action:
                op = action["commitInfo"]["operation"]
            if "txn" in action:
                txn = (action["txn"]["appId"], int(action["txn"]["version"]))
        out.append((op, txn))
    return out


def test_concurrent_merges_sinks_and_checkpoints_never_share_keys(spark, storage, wf, tmp_path):
    """Streaming MERGEs pass their idempotency key as session confs (MERGE takes no option
    for it). Four streaming tasks merge at once, two of them DataFrames built with the
    driver's shared session, while a batch sink and checkpoint writes run on that shared
    session: every commit carries its own command's key (no key on a checkpoint), and each
    table gains every batch once."""
    batches = 3
    merged = threading.Event()  # a MERGE of the shared-session kind is running

    def source(name: str) -> str:
        path = str(tmp_path / f"src-{name}")
        for epoch in range(batches):
            append_epoch(spark, path, epoch)  # 50 events, 10 per customer
        return path

    def merging_stream(name: str) -> xf.StreamingTask:
        src = source(name)

        @xf.streaming_task(name=name, output_mode="update", merge_keys=["event_id"])
        def stream():
            return events_stream(src)

        return stream

    def counting_stream(name: str, table: str) -> xf.StreamingTask:
        src = source(name)

        def count_batch(batch: xf.StreamBatch) -> None:
            # a read-modify-write MERGE of a DataFrame built with the shared session
            counts = {r[0]: r[1] for r in batch.df.groupBy("customer_id").count().collect()}
            if Path(table).exists():
                for r in spark.read.format("delta").load(table).collect():
                    counts[r.customer_id] += r.n
            rows = spark.createDataFrame(sorted(counts.items()), "customer_id long, n long")
            if batch.batch_id > 0:
                merged.set()
            batch.merge(rows, table, keys=["customer_id"])

        @xf.streaming_task(name=name, foreach_batch=count_batch)
        def stream():
            return events_stream(src)

        return stream

    sink = str(tmp_path / "sink")

    @xf.task
    def publish():
        merged.wait(120)
        for i in range(batches):
            xf.write_delta(spark.range(i * 10, i * 10 + 10), sink)

    def checkpointed(name: str, mode: object) -> xf.Task:
        @xf.task(name=name, checkpoint=mode)
        def table():
            merged.wait(120)  # written while MERGEs run
            return spark.range(2000).withColumn("sq", F.col("id") * F.col("id"))

        return table

    @xf.task
    def done(*inputs):
        return len(inputs)

    counted = {name: str(tmp_path / f"counts-{name}") for name in ("cc", "cd")}
    nodes = [merging_stream(n).bind() for n in ("ma", "mb")]
    nodes += [counting_stream(n, t).bind() for n, t in counted.items()]
    nodes += [publish.bind()]
    nodes += [checkpointed(n, m).bind() for n, m in (("k1", True), ("k2", True), ("k3", "async"))]
    assert xf.run(done.bind(*nodes), workflow_id=wf, storage=storage, max_parallel=10) == 8

    store = WorkflowStore(storage, wf)
    every_batch = {b * 1000 for b in range(batches)}
    for name in ("ma", "mb"):
        table = store.ref_uri(name)
        keys = idempotency_keys(table)
        assert keys[0] == ("WRITE", None)  # the empty table the query starts with
        assert [op for op, _ in keys[1:]] == ["MERGE"] * batches
        assert {txn for _, txn in keys[1:]} == {(f"exoflow-{wf}-{name}", v) for v in every_batch}
        ids = sorted(r.event_id for r in spark.read.format("delta").load(table).collect())
        assert ids == [e * 1000 + i for e in range(batches) for i in range(50)]
    for name, table in counted.items():
        keys = idempotency_keys(table)
        assert [op for op, _ in keys] == ["WRITE"] + ["MERGE"] * (batches - 1)
        assert {txn for _, txn in keys} == {(f"exoflow-{wf}-{name}", v) for v in every_batch}
        got = sorted((r.customer_id, r.n) for r in spark.read.format("delta").load(table).collect())
        assert got == [(c, 10 * batches) for c in range(5)]  # every batch counted once
    assert [txn for _, txn in idempotency_keys(sink)] == [
        (f"exoflow-{wf}-publish", k) for k in range(batches)
    ]
    assert spark.read.format("delta").load(sink).count() == 10 * batches
    for name in ("k1", "k2", "k3"):
        assert [txn for _, txn in idempotency_keys(store.ref_uri(name))] == [None]


def test_long_running_stream_stops_after_max_batches_and_on_request(spark, storage, wf):
    clear_stop()

    @xf.streaming_task(trigger="200 milliseconds", max_batches=3)
    def ticks():
        return xf.get_spark().readStream.format("rate").option("rowsPerSecond", 20).load()

    out = xf.run(ticks.bind(), workflow_id=wf, storage=storage)
    events = [e for e in WorkflowStore(storage, wf).events() if e.kind == "stream_stopped"]
    assert events[-1].reason == "3 batches"
    values = [r.value for r in out.collect()]
    assert len(values) == len(set(values))  # every rate row once

    @xf.streaming_task(trigger="200 milliseconds", name="forever")
    def forever():
        return xf.get_spark().readStream.format("rate").option("rowsPerSecond", 5).load()

    timer = threading.Timer(4.0, xf.request_stop)
    timer.start()
    start = time.monotonic()
    try:
        xf.run(forever.bind(), workflow_id=wf + "-2", storage=storage)
    finally:
        timer.cancel()
        clear_stop()
    assert time.monotonic() - start < 60
    events = [e for e in WorkflowStore(storage, wf + "-2").events() if e.kind == "stream_stopped"]
    assert events[-1].reason == "stop requested"
    assert xf.get_status(wf + "-2", storage=storage) == xf.WorkflowStatus.SUCCESSFUL


def test_bad_streaming_tasks_fail_early(spark, storage, wf):
    with pytest.raises(xf.InvalidOptionError, match="trigger="):
        xf.streaming_task(trigger="sometimes")(lambda: None)
    with pytest.raises(xf.InvalidOptionError, match="merge_keys"):
        xf.streaming_task(output_mode="update")(lambda: None)

    @xf.streaming_task
    def not_a_stream():
        return xf.get_spark().range(3)

    with pytest.raises(xf.DagError, match="not a streaming DataFrame"):
        xf.run(not_a_stream.bind(), workflow_id=wf, storage=storage)


def _launch(tmp: Path, crash_at: str | None, *extra: str) -> subprocess.Popen:
    return start_driver(
        "stream_job.py",
        "--storage",
        tmp / "exo",
        "--source",
        tmp / "events",
        "--out",
        tmp / "out",
        *extra,
        crash_at=crash_at,
        merge_stderr=True,
    )


@pytest.mark.subprocess
def test_driver_killed_mid_batch_resumes_exactly_once(spark, tmp_path):
    """foreach_batch appends the events and MERGEs a per-epoch count per micro-batch; the
    driver is SIGKILLed after both writes of the second batch, before the batch committed.
    The re-run replays that batch (same offsets); the idempotent append and the MERGE (its
    keys on the batch's session) are skipped, so both tables hold every event exactly once:
    a re-applied MERGE would count epoch 1 twice."""
    for epoch in range(4):
        append_epoch(spark, str(tmp_path / "events"), epoch)
    crashed = _launch(tmp_path, "online:during-batch@4")  # after batch 1's MERGE
    out, _ = crashed.communicate(timeout=300)
    assert crashed.returncode == -signal.SIGKILL, out[-3000:]
    partial = spark.read.format("delta").load(str(tmp_path / "out" / "events"))
    assert partial.count() == 100  # the crash really landed mid-stream, after batch 1's writes
    landed = spark.read.format("delta").load(str(tmp_path / "out" / "per_epoch")).collect()
    assert sorted((r.epoch, r.n) for r in landed) == [(0, 50), (1, 50)]  # the MERGE committed

    # the resume, in this process on the suite's session
    stream_job.run(
        spark,
        storage=str(tmp_path / "exo"),
        source=str(tmp_path / "events"),
        out=str(tmp_path / "out"),
        workflow_id="stream",
        trigger="available_now",
    )
    assert xf.get_status("stream", storage=str(tmp_path / "exo")) is xf.WorkflowStatus.SUCCESSFUL
    events = spark.read.format("delta").load(str(tmp_path / "out" / "events"))
    assert events.count() == events.select("event_id").distinct().count() == 200
    counts = spark.read.format("delta").load(str(tmp_path / "out" / "per_epoch"))
    assert sorted((r.epoch, r.n) for r in counts.collect()) == [(e, 50) for e in range(4)]


@pytest.mark.subprocess
def test_sigterm_stops_a_long_running_stream_cleanly(spark, tmp_path):
    append_epoch(spark, str(tmp_path / "events"), 0)
    proc = _launch(tmp_path, None, "--trigger", "300 milliseconds", "--workflow-id", "live")
    storage = str(tmp_path / "exo")
    deadline = time.monotonic() + 300
    out_table = tmp_path / "out" / "events" / "_delta_log" / ("0" * 20 + ".json")
    while time.monotonic() < deadline and not out_table.exists():
        time.sleep(0.5)
    assert out_table.exists(), "the stream never wrote its first batch"
    append_epoch(spark, str(tmp_path / "events"), 1)  # arrives while the query runs
    table = str(tmp_path / "out" / "events")
    while time.monotonic() < deadline and spark.read.format("delta").load(table).count() < 100:
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out[-3000:]
    assert xf.get_status("live", storage=storage) == xf.WorkflowStatus.SUCCESSFUL
    events = spark.read.format("delta").load(str(tmp_path / "out" / "events"))
    assert events.count() == events.select("event_id").distinct().count() == 100
