"""The engine's semantics on a real SparkSession with real Delta tables.

Each workflow's result is compared (chispa) with the same pipeline in plain PySpark.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

import exoflow_spark as xf


def counting_source(spark, n: int):
    """A source DataFrame whose rows bump an accumulator each time they are computed."""
    acc = spark.sparkContext.accumulator(0)

    def bump(x):
        acc.add(1)
        return x

    # nondeterministic: the optimizer must not duplicate it into pushed-down filters, so the
    # accumulator counts passes over the source, not expression copies
    touch = F.udf(bump, "long").asNondeterministic()
    return spark.range(n).select(touch("id").alias("id")), acc


def plain_pipeline(df):
    """The reference: four fused narrow/wide stages in plain PySpark."""
    df = df.withColumn("k", F.col("id") % 7).withColumn("v", F.col("id") * 3)
    df = df.filter(F.col("v") % 2 == 0)
    df = df.groupBy("k").agg(F.sum("v").alias("total"), F.count("*").alias("n"))
    return df.withColumn("avg", F.col("total") / F.col("n"))


@xf.task
def with_keys(df):
    return df.withColumn("k", F.col("id") % 7).withColumn("v", F.col("id") * 3)


@xf.task
def evens(df):
    return df.filter(F.col("v") % 2 == 0)


@xf.task
def per_key(df):
    return df.groupBy("k").agg(F.sum("v").alias("total"), F.count("*").alias("n"))


@xf.task
def averages(df):
    return df.withColumn("avg", F.col("total") / F.col("n"))


def pipeline(source, mode=False):
    stages = [with_keys, evens, per_key, averages]
    node = source
    for stage in stages:
        node = stage.options(checkpoint=mode).bind(node)
    return node


@pytest.mark.parametrize("mode", [False, True, "async"])
def test_result_equals_plain_pyspark(spark, storage, wf, mode) -> None:
    df = spark.range(5000)
    out = xf.run(pipeline(df, mode), workflow_id=wf, storage=storage, spark=spark)
    assert_df_equality(out, plain_pipeline(df), ignore_row_order=True, ignore_nullable=True)
    assert xf.get_status(wf, storage=storage) is xf.WorkflowStatus.SUCCESSFUL


def test_checkpoint_false_fuses_without_materializing(spark, storage, wf) -> None:
    src, acc = counting_source(spark, 2000)
    out = xf.run(pipeline(src, False), workflow_id=wf, storage=storage, spark=spark)
    # one pass over the source: the four tasks fused into the output's single write
    assert acc.value == 2000
    assert out.count() == 7
    assert acc.value == 2000  # the returned output is read back from Delta, not recomputed
    refs = os.listdir(os.path.join(storage, "workflows", wf, "refs"))
    assert refs == ["averages"]  # only the workflow's output is made durable


def test_two_consumers_share_one_cached_computation(spark, storage, wf) -> None:
    @xf.task
    def source():
        return src

    @xf.task
    def low(df):
        return df.filter("id < 500")

    @xf.task
    def high(df):
        return df.filter("id >= 500")

    @xf.task
    def both(a, b):
        return a.unionByName(b)

    src, acc = counting_source(spark, 1000)
    s = source.bind()
    out = xf.run(both.bind(low.bind(s), high.bind(s)), workflow_id=wf, storage=storage, spark=spark)
    assert out.count() == 1000
    assert acc.value == 1000  # computed once, shared through the cache

    # control: the same plan without the cache computes the source twice
    src2, acc2 = counting_source(spark, 1000)
    src2.filter("id < 500").unionByName(src2.filter("id >= 500")).count()
    assert acc2.value == 2000


def test_sync_checkpoint_is_durable_before_consumers_run(spark, storage, wf) -> None:
    seen: dict[str, object] = {}

    @xf.task(checkpoint=True)
    def bronze():
        return spark.range(100).withColumn("sq", F.col("id") * F.col("id"))

    @xf.task
    def consumer(df):
        log = os.path.join(storage, "workflows", wf, "log", "tasks", "bronze", "g0.commit.json")
        seen["committed_before_consumer"] = os.path.exists(log)
        seen["files"] = df.inputFiles()
        return df.agg(F.sum("sq").alias("s")).first()["s"]

    out = xf.run(consumer.bind(bronze.bind()), workflow_id=wf, storage=storage, spark=spark)
    assert out == sum(i * i for i in range(100))
    assert seen["committed_before_consumer"] is True
    ref_dir = os.path.join(storage, "workflows", wf, "refs", "bronze")
    assert seen["files"] and all(ref_dir in f for f in seen["files"])  # reads the checkpoint
    table = spark.read.format("delta").option("versionAsOf", 0).load(ref_dir)
    assert_df_equality(
        table,
        spark.range(100).withColumn("sq", F.col("id") * F.col("id")),
        ignore_row_order=True,
        ignore_nullable=True,
    )  # Delta stores nullable
    assert_df_equality(
        xf.get_output(wf, task="bronze", storage=storage, spark=spark), table, ignore_row_order=True
    )


def test_async_checkpoint_overlaps_consumers_then_repoints(spark, storage, wf) -> None:
    marks: dict[str, float | list[str]] = {}

    @xf.task(checkpoint="async")
    def silver():
        return spark.range(20000).withColumn("x", F.rand(seed=1))

    @xf.task
    def eager(df):  # starts at once on the cached output
        marks["eager_start"] = time.time()
        return df.count()

    @xf.task(wait_until_committed=["silver"])
    def after_commit(df, n):
        marks["after_start"] = time.time()
        marks["files"] = df.inputFiles()
        return {"n": n, "m": df.count()}

    s = silver.bind()
    out = xf.run(after_commit.bind(s, eager.bind(s)), workflow_id=wf, storage=storage, spark=spark)
    assert out == {"n": 20000, "m": 20000}
    commit = xf.get_output(wf, task="silver", storage=storage, spark=spark)
    assert commit.count() == 20000
    from exoflow_spark.storage.store import WorkflowStore

    rec = WorkflowStore(storage, wf).read_state().commits["silver"]
    assert rec.mode == "async" and rec.checkpoint.rows == 20000
    # the version and sizes read from the Delta log are what Delta itself reports
    ref_dir = os.path.join(storage, "workflows", wf, "refs", "silver")
    hist = spark.sql(f"DESCRIBE HISTORY delta.`{ref_dir}` LIMIT 1").first()
    assert rec.checkpoint.version == hist.version
    assert rec.checkpoint.bytes == int(hist.operationMetrics["numOutputBytes"]) > 0
    assert marks["eager_start"] < rec.committed_at <= marks["after_start"]
    assert marks["files"] and all(ref_dir in f for f in marks["files"])  # lineage truncated


def test_async_computes_python_stages_before_writing_and_lets_jvm_stages_race(
    spark, storage, wf
) -> None:
    """An async output whose own plan runs a Python UDF is computed into the cache by a job of
    its own before its background write (racing the consumers for such blocks was 1.3-1.5x
    slower in benchmarks/recovery.py); one of narrow JVM operators only gets no such job: its
    write's job computes it while the consumers start. Both commit and give the same rows."""
    from exoflow_spark.spark.session import job_metrics

    @F.udf("long")
    def plus_one(x):
        return x + 1

    @xf.task(checkpoint="async")
    def narrow():
        return spark.range(0, 2000, 1, 4).withColumn("y", F.col("id") * 3)

    @xf.task(checkpoint="async")
    def scored(df):
        return df.withColumn("z", plus_one("y"))

    @xf.task(checkpoint="async")
    def rescored(df):  # its input is cached: its own plan is its UDF over that cache
        return df.withColumn("w", plus_one("z"))

    @xf.task
    def total(df):
        return df.agg(F.sum("w")).first()[0]

    out = xf.run(
        total.bind(rescored.bind(scored.bind(narrow.bind()))),
        workflow_id=wf,
        storage=storage,
        spark=spark,
    )
    assert out == sum(3 * i + 2 for i in range(2000))
    for python_stage in ("scored", "rescored"):
        materialized = job_metrics(spark, wf, f"materialize {python_stage}")
        assert materialized is not None and materialized["jobs"] >= 1, python_stage
    assert job_metrics(spark, wf, "materialize narrow") is None
    assert job_metrics(spark, wf, "checkpoint narrow (async)") is not None  # it ran the compute
    from exoflow_spark.storage.store import WorkflowStore

    commits = WorkflowStore(storage, wf).read_state().commits
    assert {commits[t].mode for t in ("narrow", "scored", "rescored")} == {"async"}


def _first_job_submitted(spark, wf: str, label: str) -> int:
    """When (epoch ms) the first job with tasks that ``wf`` ran as ``label`` was submitted."""
    jsc = spark.sparkContext._jsc.sc()
    jsc.listenerBus().waitUntilEmpty(2000)
    jobs = jsc.statusStore().jobsList(None)
    times = []
    for i in range(jobs.size()):
        job = jobs.apply(i)
        desc = job.description()
        if desc.isDefined() and str(desc.get()) == f"[{wf}] {label}" and job.numTasks() > 0:
            times.append(int(job.submissionTime().get().getTime()))
    assert times, f"no job ran as {label!r}"
    return min(times)


@pytest.mark.parametrize("write_first", [True, False])
def test_the_write_of_a_cached_output_is_queued_before_its_consumers_start(
    spark, storage, wf, monkeypatch, write_first
) -> None:
    """An async output computed into the cache first (a Python UDF stage) has its write's
    tasks queued before its consumers are handed the output: the write takes the first free
    task slots and commits right after the stage, instead of a wave of the consumer's tasks
    later. With the ordering switched off (the control) the consumer's job, which starts
    without Delta's commit preparation, comes first."""
    from exoflow_spark.engine.committer import Committer

    if not write_first:
        monkeypatch.setattr(Committer, "_write_first", lambda self, ref: None)

    @F.udf("long")
    def plus_one(x):
        return x + 1

    @xf.task(checkpoint="async")
    def scored():
        return spark.range(0, 20000, 1, 4).withColumn("z", plus_one("id"))

    @xf.task(checkpoint="async")
    def rescored(df):
        return df.withColumn("w", plus_one("z"))

    @xf.task
    def total(df):
        return df.agg(F.sum("w")).first()[0]

    out = xf.run(
        total.bind(rescored.bind(scored.bind())), workflow_id=wf, storage=storage, spark=spark
    )
    assert out == sum(i + 2 for i in range(20000))
    write = _first_job_submitted(spark, wf, "checkpoint scored (async)")
    consumer = _first_job_submitted(spark, wf, "materialize rescored")
    assert (write < consumer) is write_first, (write, consumer)


def test_job_metrics_since_counts_only_the_jobs_submitted_from_then_on(spark, wf) -> None:
    """A driver that runs the same workflow id twice keeps the first run's jobs under the
    same label; ``since`` leaves them out (auto's measurement and its eager-work test read
    this run's jobs only)."""
    from exoflow_spark.spark.session import job_context, job_metrics

    with job_context(spark, wf, "materialize t"):
        spark.range(100).count()
    first = job_metrics(spark, wf, "materialize t")
    time.sleep(0.05)
    second = time.time()
    with job_context(spark, wf, "materialize t"):
        spark.range(100).count()
        spark.range(50).count()
    both = job_metrics(spark, wf, "materialize t")
    later = job_metrics(spark, wf, "materialize t", since=second)
    assert first is not None and both is not None and later is not None
    assert first["jobs"] >= 1
    assert later["jobs"] == both["jobs"] - first["jobs"] == 2 * first["jobs"]
    assert job_metrics(spark, wf, "materialize t", since=time.time() + 60) is None


def test_checkpoints_are_read_as_their_versions_files_not_through_the_delta_log(
    spark, storage, wf
) -> None:
    """A checkpoint version is read as exactly the Parquet files its commit added (no Delta
    log replay on the critical path), and that is the same data Delta reads at that version,
    for a first write, an overwrite (re-run after invalidation) and an empty output."""
    from exoflow_spark.storage.store import WorkflowStore

    rows = {"n": 50}

    @xf.task(checkpoint=True)
    def part():
        return spark.range(rows["n"]).withColumn("half", F.col("id") / 2)

    @xf.task
    def total(df):
        return df.count()

    ref_dir = os.path.join(storage, "workflows", wf, "refs", "part")
    for n, invalidate in ((50, []), (7, ["part"]), (0, ["part"])):
        rows["n"] = n
        dag = total.bind(part.bind())
        assert xf.run(dag, workflow_id=wf, storage=storage, spark=spark, invalidate=invalidate) == n
        d = WorkflowStore(storage, wf).read_state().commits["part"].checkpoint
        # the recorded files are the version's files as Delta resolves them
        by_delta = spark.read.format("delta").option("versionAsOf", d.version).load(ref_dir)
        assert sorted(f.rsplit("/", 1)[-1] for f in by_delta.inputFiles()) == sorted(d.files)
        restored = xf.get_output(wf, task="part", storage=storage, spark=spark)
        # a plain file listing, not Delta's log-backed file index (TahoeLogFileIndex); an
        # empty version has no files and is an empty DataFrame of the recorded schema
        scanned = restored._jdf.queryExecution().executedPlan().toString()
        assert "Tahoe" not in scanned, scanned
        assert ("InMemoryFileIndex" in scanned) == bool(d.files), scanned
        assert_df_equality(restored, by_delta, ignore_row_order=True, ignore_nullable=True)
        assert restored.count() == n == d.rows
    assert d.version == 2

    # a session that turns on Delta column mapping by default (Parquet columns renamed) must
    # not make the direct read return nulls: checkpoint tables keep their column names
    from exoflow_spark.storage.checkpoints import read_checkpoint, write_checkpoint

    key = "spark.databricks.delta.properties.defaults.columnMapping.mode"
    spark.conf.set(key, "name")
    try:
        df = spark.range(5).withColumn("tag", F.lit("x"))
        dv = write_checkpoint(df, os.path.join(storage, "mapped"))
    finally:
        spark.conf.unset(key)
    assert dv.files
    assert_df_equality(read_checkpoint(spark, dv), df, ignore_row_order=True, ignore_nullable=True)

    # a column name that looks like a secret setting is data: the recorded schema is not
    # redacted (it was, and a restore then read a column that does not exist: nulls)
    @xf.task(checkpoint=True)
    def odd_names():
        return spark.range(3).select(F.col("id").alias("password:hash"))

    @xf.task
    def passthrough(df):
        return df.count()

    xf.run(passthrough.bind(odd_names.bind()), workflow_id=f"{wf}-names", storage=storage)
    back = xf.get_output(f"{wf}-names", task="odd_names", storage=storage, spark=spark)
    assert sorted(r[0] for r in back.collect()) == [0, 1, 2]

    # a void column (Parquet cannot hold it, Delta drops it from the files) and a storage
    # path with glob characters (a path-based read would expand them) are read back
    # through Delta, in either format
    voided = spark.range(3).withColumn("nothing", F.lit(None))
    globby = os.path.join(storage, "gl[o]b{1}")
    for df, path in ((voided, os.path.join(storage, "void")), (spark.range(3), globby)):
        for fmt in ("delta", "parquet"):
            dv = write_checkpoint(df, f"{path}-{fmt}", fmt)
            assert dv.format == "delta" and dv.files is None, (path, fmt, dv)
            assert sorted(r.id for r in read_checkpoint(spark, dv).collect()) == [0, 1, 2]

    # column names a Delta table refuses without column mapping (a space, a nested "a=b")
    # used to fail the checkpoint: such an output is written as Parquet files instead
    odd = spark.sql("SELECT id AS `order id`, named_struct('a=b', id) AS s FROM range(4)")
    dv = write_checkpoint(odd, os.path.join(storage, "odd"))
    assert dv.format == "parquet" and dv.num_rows == 4
    assert "/odd/_parquet/" in dv.path and not os.path.exists(
        os.path.join(storage, "odd/_delta_log")
    )
    assert_df_equality(read_checkpoint(spark, dv), odd, ignore_row_order=True, ignore_nullable=True)


def test_parquet_checkpoint_format_commits_listed_files_and_restores_them(
    spark, storage, wf, capsys
) -> None:
    """checkpoint_format="parquet": sync and async checkpoints are plain Parquet folders
    named by their commit records (no Delta table); a re-run restores them, executing only
    what it must, and reads exactly the recorded files; a wrong format is refused up
    front."""
    from pathlib import Path

    from exoflow_spark.storage.store import WorkflowStore

    calls: Counter[str] = Counter()

    @xf.task(checkpoint=True)
    def base():
        calls["base"] += 1
        return spark.range(3000).withColumn("x", F.col("id") % 7)

    @xf.task(checkpoint="async")
    def grouped(df):
        calls["grouped"] += 1
        return df.groupBy("x").agg(F.count("*").alias("n"))

    @xf.task
    def total(df):
        calls["total"] += 1
        return sorted([r.x, r.n] for r in df.collect())

    want = sorted([x, len(range(x, 3000, 7))] for x in range(7))
    dag = total.bind(grouped.bind(base.bind()))
    with pytest.raises(xf.InvalidOptionError, match=r"checkpoint_format='orc'.*'parquet'"):
        xf.run(dag, workflow_id=wf, storage=storage, spark=spark, checkpoint_format="orc")
    assert not (Path(storage) / "workflows" / wf).exists()  # refused before writing

    first = xf.run(dag, workflow_id=wf, storage=storage, spark=spark, checkpoint_format="parquet")
    assert first == want
    commits = WorkflowStore(storage, wf).read_state().commits
    refs = Path(storage) / "workflows" / wf / "refs"
    for tid, rows in (("base", 3000), ("grouped", 7)):
        d = commits[tid].checkpoint
        assert d.format == "parquet" and d.rows == rows and d.bytes > 0
        folder = Path(d.path)
        assert folder.parent == refs / tid / "_parquet"
        assert sorted(p.name for p in folder.glob("*.parquet")) == sorted(d.files)
        assert d.bytes == sum((folder / f).stat().st_size for f in d.files)
        assert not (refs / tid / "_delta_log").exists()
    # people are shown "parquet" for such a checkpoint, not a Delta version it does not have
    from exoflow_spark.surface.cli import main

    capsys.readouterr()
    assert main(["status", wf, "--storage", storage, "--json"]) == 0
    shown = {t["task"]: t["output"] for t in json.loads(capsys.readouterr().out)["tasks"]}
    assert shown == {"base": "parquet", "grouped": "parquet", "total": "value"}, shown

    calls.clear()  # total runs again, on grouped restored from its files
    assert xf.run(dag, workflow_id=wf, storage=storage, spark=spark, invalidate=["total"]) == want
    assert calls == Counter(total=1)
    restored = xf.get_output(wf, task="grouped", storage=storage, spark=spark)
    d = commits["grouped"].checkpoint
    assert sorted(f.rsplit("/", 1)[-1] for f in restored.inputFiles()) == sorted(d.files)
    assert sorted([r.x, r.n] for r in restored.collect()) == want


def test_failed_async_checkpoint_fails_the_run(spark, storage, wf) -> None:
    # a plain file where the task's checkpoint table must go: the background write fails
    # (the data itself is fine, consumers read it from the cache)
    blocker = os.path.join(storage, "workflows", wf, "refs", "bad_columns")
    os.makedirs(os.path.dirname(blocker))
    with open(blocker, "w") as fh:
        fh.write("not a table")

    @xf.task(checkpoint="async")
    def bad_columns():
        return spark.range(10).withColumn("x", F.col("id"))

    @xf.task
    def count(df):
        return df.count()

    with pytest.raises(xf.CheckpointError, match=r"\[bad_columns\].*async checkpoint failed"):
        xf.run(count.bind(bad_columns.bind()), workflow_id=wf, storage=storage, spark=spark)
    assert xf.get_status(wf, storage=storage) is xf.WorkflowStatus.FAILED
    with pytest.raises(xf.TaskNotCommittedError, match=r"\[bad_columns\]"):
        xf.get_output(wf, task="bad_columns", storage=storage, spark=spark)


def test_rerun_of_finished_workflow_executes_and_writes_nothing(
    spark, storage, wf, sink_path
) -> None:
    calls: Counter[str] = Counter()

    @xf.task(checkpoint=True)
    def orders():
        calls["orders"] += 1
        return spark.range(50).withColumn("amount", F.col("id") * 10)

    @xf.task
    def publish(df):
        calls["publish"] += 1
        xf.write_delta(df, sink_path)
        return df.count()

    dag = publish.bind(orders.bind())
    assert xf.run(dag, workflow_id=wf, storage=storage, spark=spark) == 50
    history = spark.sql(f"DESCRIBE HISTORY delta.`{sink_path}`").count()
    assert xf.run(dag, workflow_id=wf, storage=storage, spark=spark) == 50
    assert calls == Counter({"orders": 1, "publish": 1})
    assert spark.sql(f"DESCRIBE HISTORY delta.`{sink_path}`").count() == history
    assert spark.read.format("delta").load(sink_path).count() == 50


def test_resume_after_failure_reruns_only_what_did_not_commit(spark, storage, wf) -> None:
    calls: Counter[str] = Counter()
    broken = {"on": True}

    @xf.task(checkpoint=True)
    def a():
        calls["a"] += 1
        return spark.range(10)

    @xf.task
    def b():
        calls["b"] += 1
        return 5

    @xf.task(max_retries=2)
    def c(df, k):
        calls["c"] += 1
        if broken["on"]:
            raise ValueError("bad record in batch 3")
        return df.count() + k

    dag = c.bind(a.bind(), b.bind())
    with pytest.raises(xf.TaskFailedError) as info:
        xf.run(dag, workflow_id=wf, storage=storage, spark=spark)
    err = info.value
    assert err.workflow_id == wf and err.task_id == "c" and err.attempts == 1
    assert isinstance(err.__cause__, ValueError)
    assert f"workflow [{wf}] task [c]" in str(err) and "bad record in batch 3" in str(err)
    assert xf.get_status(wf, storage=storage) is xf.WorkflowStatus.FAILED
    assert calls == Counter({"a": 1, "b": 1, "c": 1})  # app errors are not retried by default

    broken["on"] = False
    assert xf.resume(dag, workflow_id=wf, storage=storage, spark=spark) == 15
    assert calls == Counter({"a": 1, "b": 1, "c": 2})
    assert xf.get_status(wf, storage=storage) is xf.WorkflowStatus.SUCCESSFUL


def test_retry_policy(spark, storage) -> None:
    attempts: Counter[str] = Counter()

    def flaky(name: str, exc: Exception, failures: int):
        def body():
            attempts[name] += 1
            if attempts[name] <= failures:
                raise exc
            return attempts[name]

        body.__name__ = name
        return body

    app_retry = xf.task(
        flaky("app_retry", ValueError("boom"), 2), retry_exceptions=True, max_retries=3
    )
    assert xf.run(app_retry.bind(), workflow_id="r1", storage=storage, spark=spark) == 3

    sys_retry = xf.task(flaky("sys_retry", ConnectionError("Connection reset by peer"), 1))
    assert xf.run(sys_retry.bind(), workflow_id="r2", storage=storage, spark=spark) == 2

    no_retry = xf.task(flaky("no_retry", ConnectionError("reset"), 1), max_retries=0)
    with pytest.raises(xf.TaskFailedError, match="after 1 attempt"):
        xf.run(no_retry.bind(), workflow_id="r3", storage=storage, spark=spark)

    exhausted = xf.task(
        flaky("exhausted", ValueError("always"), 99), retry_exceptions=True, max_retries=2
    )
    with pytest.raises(xf.TaskFailedError, match="after 3 attempt"):
        xf.run(exhausted.bind(), workflow_id="r4", storage=storage, spark=spark)
    assert attempts == Counter(app_retry=3, sys_retry=2, no_retry=1, exhausted=3)


def test_catch_exceptions_hands_the_error_downstream(spark, storage, wf) -> None:
    @xf.task(catch_exceptions=True)
    def risky(fail):
        if fail:
            raise KeyError("missing-field")
        return 7

    @xf.task
    def report(ok, bad):
        return {"ok": list(ok), "bad_error": type(bad[1]).__name__, "bad_value": bad[0]}

    out = xf.run(
        report.bind(risky.bind(False), risky.bind(True)),
        workflow_id=wf,
        storage=storage,
        spark=spark,
    )
    assert out == {"ok": [7, None], "bad_error": "KeyError", "bad_value": None}


def test_sink_is_exactly_once_across_retries(spark, storage, wf, sink_path) -> None:
    attempts: Counter[str] = Counter()

    @xf.task(retry_exceptions=True, max_retries=2)
    def publish():
        attempts["publish"] += 1
        xf.write_delta(spark.range(5), sink_path)
        xf.write_delta(spark.range(5, 8), sink_path)
        if attempts["publish"] < 3:
            raise RuntimeError("lost the connection after writing")
        return None

    assert xf.run(publish.bind(), workflow_id=wf, storage=storage, spark=spark) is None
    assert attempts["publish"] == 3
    rows = sorted(r.id for r in spark.read.format("delta").load(sink_path).collect())
    assert rows == list(range(8))


def test_changed_task_is_refused_then_invalidated(spark, storage, wf, sink_path) -> None:
    calls: Counter[str] = Counter()

    @xf.task(checkpoint=True)
    def base():
        calls["base"] += 1
        return spark.range(10)

    def make_scale(factor: int):
        @xf.task(checkpoint=True, name="scale")
        def scale(df):
            calls["scale"] += 1
            return df.select((F.col("id") * factor).alias("id"))

        return scale

    @xf.task
    def publish(df):
        calls["publish"] += 1
        xf.write_delta(df, sink_path)
        return df.agg(F.sum("id")).first()[0]

    b = base.bind()
    assert (
        xf.run(publish.bind(make_scale(2).bind(b)), workflow_id=wf, storage=storage, spark=spark)
        == 90
    )

    # same code, different literal input to scale: factor is a closure variable, so change
    # the code itself the way a user editing the job would
    @xf.task(checkpoint=True, name="scale")
    def scale_v2(df):
        calls["scale"] += 1
        return df.select((F.col("id") * 3).alias("id"))

    changed = publish.bind(scale_v2.bind(b))
    with pytest.raises(xf.TaskChangedError) as info:
        xf.run(changed, workflow_id=wf, storage=storage, spark=spark)
    assert info.value.changed == ["scale"]
    assert "invalidate=['scale']" in str(info.value)
    assert calls == Counter(base=1, scale=1, publish=1)

    assert (
        xf.run(changed, workflow_id=wf, storage=storage, spark=spark, invalidate=["scale"]) == 135
    )
    assert calls == Counter(base=1, scale=2, publish=2)
    # the invalidated sink wrote its new rows (a new generation of its idempotency key)
    assert spark.read.format("delta").load(sink_path).count() == 20


def test_unknown_workflow_has_no_side_effects(spark, tmp_path) -> None:
    root = tmp_path / "exo"

    @xf.task
    def f():
        return 1

    with pytest.raises(xf.WorkflowNotFoundError, match=r"workflow \[nope\] not found"):
        xf.get_status("nope", storage=str(root))
    with pytest.raises(xf.WorkflowNotFoundError):
        xf.get_output("nope", storage=str(root), spark=spark)
    with pytest.raises(xf.WorkflowNotFoundError):
        xf.resume(f.bind(), workflow_id="nope", storage=str(root), spark=spark)
    assert not root.exists()
    assert xf.list_workflows(storage=str(root)) == []


def test_list_workflows_and_default_output(spark, storage) -> None:
    @xf.task
    def answer():
        return {"value": 42}

    xf.run(answer.bind(), workflow_id="w-one", storage=storage, spark=spark)
    xf.run(answer.bind(), workflow_id="w-two", storage=storage, spark=spark)
    infos = {w.workflow_id: w for w in xf.list_workflows(storage=storage)}
    assert set(infos) == {"w-one", "w-two"}
    assert infos["w-one"].status is xf.WorkflowStatus.SUCCESSFUL
    assert infos["w-one"].tasks == 1 and infos["w-one"].committed == 1
    assert xf.get_output("w-two", storage=storage) == {"value": 42}


def test_default_storage_and_generated_id(spark, tmp_path, monkeypatch) -> None:
    @xf.task
    def answer():
        return 1

    monkeypatch.setenv("EXOFLOW_STORAGE", str(tmp_path / "env-root"))
    assert xf.run(answer.bind(), spark=spark) == 1
    [info] = xf.list_workflows()
    assert info.workflow_id.startswith("answer-")
    xf.set_default_storage(str(tmp_path / "set-root"))
    try:
        xf.run(answer.bind(), workflow_id="explicit", spark=spark)
        assert [w.workflow_id for w in xf.list_workflows()] == ["explicit"]
    finally:
        xf.set_default_storage(None)


def test_bad_outputs_and_sink_misuse(spark, storage, wf, sink_path) -> None:
    @xf.task
    def not_json():
        return object()

    with pytest.raises(xf.DagError, match=r"\[not_json\] returned a object.*JSON-able"):
        xf.run(not_json.bind(), workflow_id=wf, storage=storage, spark=spark)

    @xf.task
    def pandas_frame():
        import pandas as pd

        return pd.DataFrame({"a": [1]})

    with pytest.raises(xf.DagError) as info:
        xf.run(pandas_frame.bind(), workflow_id=wf + "-pd", storage=storage, spark=spark)
    msg = str(info.value)
    assert "returned a pandas.DataFrame, which is neither a Spark DataFrame" in msg
    assert "createDataFrame(pdf)" in msg

    with pytest.raises(xf.SinkError, match=r"only inside a function decorated with @xf\.task"):
        xf.write_delta(spark.range(1), sink_path)

    @xf.task
    def bad_mode():
        xf.write_delta(spark.range(1), sink_path, mode="merge")  # type: ignore[arg-type]

    with pytest.raises(xf.SinkError, match="mode='merge' is not supported"):
        xf.run(bad_mode.bind(), workflow_id=wf + "-2", storage=storage, spark=spark)

    @xf.task
    def own_txn():
        xf.write_delta(spark.range(1), sink_path, options={"txnVersion": "1"})

    with pytest.raises(xf.SinkError, match="sets \\['txnVersion'\\] itself"):
        xf.run(own_txn.bind(), workflow_id=wf + "-3", storage=storage, spark=spark)


def test_independent_branches_run_concurrently(spark, storage, wf) -> None:
    spans: dict[str, tuple[float, float]] = {}
    lock = threading.Lock()

    def sleeper(name: str):
        def body():
            start = time.time()
            time.sleep(1.0)
            with lock:
                spans[name] = (start, time.time())
            return name

        body.__name__ = name
        return xf.task(body)

    @xf.task
    def join(a, b):
        return [a, b]

    assert xf.run(
        join.bind(sleeper("left").bind(), sleeper("right").bind()),
        workflow_id=wf,
        storage=storage,
        spark=spark,
    ) == ["left", "right"]
    (a0, a1), (b0, b1) = spans["left"], spans["right"]
    assert a0 < b1 and b0 < a1  # the two sleeps overlapped


def test_spark_jobs_are_named_after_workflow_and_task(spark, storage, wf) -> None:
    @xf.task(checkpoint=True)
    def tagged_source():
        return spark.range(10)

    @xf.task
    def tagged_count(df):
        return df.count()

    sc = spark.sparkContext
    keys = ("spark.jobGroup.id", "spark.job.description", "spark.scheduler.pool")
    before = {key: sc.getLocalProperty(key) for key in keys}  # restored: the session is shared
    sc.setLocalProperty("spark.jobGroup.id", "callers-group")  # the caller's own naming
    sc.setLocalProperty("spark.job.description", "the caller's jobs")
    try:
        xf.run(
            tagged_count.bind(tagged_source.bind()), workflow_id=wf, storage=storage, spark=spark
        )
        job_ids = sc.statusTracker().getJobIdsForGroup(f"exoflow:{wf}")
        assert job_ids, "the workflow's Spark jobs carry its job group"
        # the thread's group and description are the caller's again (no leak either way)
        assert sc.getLocalProperty("spark.jobGroup.id") == "callers-group"
        assert sc.getLocalProperty("spark.job.description") == "the caller's jobs"
        assert sc.getLocalProperty("spark.scheduler.pool") is None
    finally:
        for key, value in before.items():
            sc.setLocalProperty(key, value)  # type: ignore[arg-type]


def test_python_udf_over_a_checkpoint_completes(spark, storage, wf) -> None:
    """Regression guard for SPARK-58241 (pyspark 4.2.0 hangs an Arrow Python UDF reading a
    vectorized Parquet/Delta scan); create_spark_session opts out of Arrow UDFs there."""

    @F.udf("long")
    def square(x):
        return x * x

    @xf.task(checkpoint=True)
    def numbers():
        return spark.range(10)

    @xf.task
    def squares(df):
        return df.select(square("id").alias("sq")).agg(F.sum("sq")).first()[0]

    assert xf.run(
        squares.bind(numbers.bind()), workflow_id=wf, storage=storage, spark=spark
    ) == sum(i * i for i in range(10))


def test_auto_checkpoint_writes_only_what_is_dearer_to_recompute(spark, storage, wf) -> None:
    """checkpoint="auto": measured at run time, the slow stage (a Python UDF) is written in
    the background; the cheap one, cheaper to recompute than the storage's fixed write cost,
    stays in memory only."""
    import json
    import time as _time

    from pyspark.sql.types import LongType

    from exoflow_spark.storage.store import WorkflowStore

    os.makedirs(os.path.join(storage, "_exoflow"), exist_ok=True)
    for name in ("throughput.json", "throughput-parquet.json"):  # both formats' models
        with open(os.path.join(storage, "_exoflow", name), "w") as fh:
            json.dump({"write_fixed_s": 2.0, "measured_at": _time.time()}, fh)

    def slow(x: int) -> int:
        _time.sleep(0.5)
        return x * 2

    slow_udf = F.udf(slow, LongType())

    @xf.task(checkpoint="auto")
    def cheap():
        return xf.get_spark().range(10)

    @xf.task(checkpoint="auto")
    def expensive(df):
        return df.repartition(1).select(slow_udf(F.col("id")).alias("x"))  # >= 5 s

    @xf.task
    def total(df):
        return df.agg(F.sum("x").alias("s")).first().s

    assert xf.run(total.bind(expensive.bind(cheap.bind())), workflow_id=wf, storage=storage) == 90
    store = WorkflowStore(storage, wf)
    decisions = {e.task: e for e in store.events() if e.kind == "auto_checkpoint"}
    assert decisions["cheap"].data["checkpoint"] is False, decisions
    assert decisions["expensive"].data["checkpoint"] is True, decisions
    assert decisions["expensive"].data["replay_s"] >= 2.0
    # sizes are Spark's statistics of the cached data (10 longs), not a fallback guess
    assert 0 < decisions["cheap"].data["bytes"] < 1 << 16, decisions
    commits = store.read_state().commits
    assert "cheap" not in commits
    assert commits["expensive"].mode == "async"
    # a run naming no format writes auto's checkpoints as Parquet files
    assert commits["expensive"].checkpoint.format == "parquet"
    restored = xf.get_output(wf, task="expensive", storage=storage, spark=spark)
    assert sorted(r.x for r in restored.collect()) == [2 * i for i in range(10)]
