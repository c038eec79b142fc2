"""xf.run(checkpoint="auto") on a real session: no task annotated, one expensive stage among
cheap narrow ones. The expensive output is written; the cheap ones stay fused (asserted
from Spark's executed plans and jobs, not from timing); profiles carry over to another
workflow id and not across a code change; a corrupt profile is ignored."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from typing import IO

import pytest
from pyspark.sql import functions as F
from pyspark.sql.types import LongType

import exoflow_spark as xf
from exoflow_spark.core.dag import code_fingerprint
from exoflow_spark.engine.autockpt import MIN_REPLAY_ENV, MIN_REPLAY_S, profile_key
from exoflow_spark.engine.cost import THROUGHPUT_MAX_AGE_SECONDS
from exoflow_spark.storage import checkpoints, layout
from exoflow_spark.storage.store import WorkflowStore

ROWS = 8  # two partitions of four rows, 0.4 s each: 1.6 s of Python per computation


def dag_of(expensive_fn, plans: list[str]):
    def slow(x: int) -> int:  # defined here: pickled by value for the Python workers
        time.sleep(0.4)
        return x * 2

    slow_udf = F.udf(slow, LongType())

    @xf.task
    def source():
        return xf.get_spark().range(0, ROWS, 1, 2)

    @xf.task
    def cheap_a(df):
        return df.select((F.col("id") + 1).alias("a"), F.col("id"))

    @xf.task
    def cheap_b(df):
        return df.where(F.col("a") > 0).withColumn("b", F.col("a") * 10)

    expensive = xf.task(expensive_fn(slow_udf), name="expensive")

    @xf.task
    def cheap_c(df):
        return df.withColumn("c", F.col("x") + F.col("b"))

    @xf.task
    def total(df):
        plans.append(df._jdf.queryExecution().executedPlan().toString())
        return df.agg(F.sum("c").alias("s")).first().s

    return total.bind(cheap_c.bind(expensive.bind(cheap_b.bind(cheap_a.bind(source.bind())))))


def expensive_v1(slow_udf):
    def expensive(df):
        return df.withColumn("x", slow_udf(F.col("id")))

    return expensive


def expensive_v2(slow_udf):  # the same stage, its code changed
    def expensive(df):
        return df.withColumn("x", slow_udf(F.col("id")) + 0)

    return expensive


EXPECTED = sum(2 * i + (i + 1) * 10 for i in range(ROWS))


def decisions(storage: str, wf: str) -> dict:
    return {
        e.task: e.data for e in WorkflowStore(storage, wf).events() if e.kind == "auto_checkpoint"
    }


def job_labels(spark, wf: str) -> list[str]:
    """What each Spark job of ``wf`` ran as (its description less ``[wf] ``)."""
    jobs = spark.sparkContext._jsc.sc().statusStore().jobsList(None)
    texts = (jobs.apply(i).description() for i in range(jobs.size()))
    prefix = f"[{wf}] "
    return [
        str(d.get())[len(prefix) :]
        for d in texts
        if d.isDefined() and str(d.get()).startswith(prefix)
    ]


def materialized(spark, wf: str) -> set[str]:
    """Tasks whose output a job of ``wf`` computed on its own (``materialize <task>``)."""
    return {
        label.split("materialize ", 1)[1]
        for label in job_labels(spark, wf)
        if label.startswith("materialize ")
    }


def cost_model_files(storage: str) -> Iterator[IO[str]]:
    """The storage root's cost model files, open for writing one after the other: both
    formats' (a run naming no format writes auto's checkpoints as Parquet, others Delta)."""
    for name in ("throughput.json", "throughput-parquet.json"):
        with open(os.path.join(storage, "_exoflow", name), "w") as fh:
            yield fh


def jobs_named(spark, wf: str, name: str) -> int:
    """How many Spark jobs of ``wf`` ran under the description ``name``."""
    return job_labels(spark, wf).count(name)


def test_auto_writes_the_expensive_stage_and_fuses_the_cheap_ones(
    spark, storage, caplog, monkeypatch
):
    os.makedirs(os.path.join(storage, "_exoflow"), exist_ok=True)
    for fh in cost_model_files(storage):
        json.dump({"write_fixed_s": 0.3, "measured_at": time.time()}, fh)
    cheap = {"source", "cheap_a", "cheap_b", "cheap_c"}

    # day 1: no profile; the UDF stage is measured and written, the rest estimated and fused.
    # The root's writes are cheap (0.3 s fixed): the UDF stage is written sync by the job
    # that computes it, which measures it (nothing is cached to measure it). A driver that
    # has written no checkpoint yet warms its write path up first (a cold JVM's first Delta
    # write took 3.6 s more): as if this session had written none
    monkeypatch.setattr(checkpoints, "_written", set())
    plans: list[str] = []
    assert xf.run(dag_of(expensive_v1, plans), workflow_id="day-1", storage=storage,
                  checkpoint="auto") == EXPECTED  # fmt: skip
    got = decisions(storage, "day-1")
    assert got["expensive"]["action"] == "write" and got["expensive"]["source"] == "measured"
    assert "written sync" in got["expensive"]["reason"], got["expensive"]
    assert got["expensive"]["replay_s"] >= 1.0, got["expensive"]  # 1.6 s of Python
    for t in cheap:
        assert got[t]["action"] == "fuse" and got[t]["source"] == "estimate", (t, got[t])
    commits = WorkflowStore(storage, "day-1").read_state().commits
    assert commits["expensive"].mode == "sync"
    assert not cheap & set(commits), "a cheap task was written"
    for t in cheap:  # no checkpoint table, no job of their own
        assert not os.path.exists(os.path.join(storage, "workflows", "day-1", "refs", t))
    assert materialized(spark, "day-1") == set()
    assert jobs_named(spark, "day-1", "warm up the checkpoint write path") >= 1
    # the executed plan of the output's input: cheap_c fused over the checkpoint (the Python
    # UDF is not run again, nothing is cached)
    [plan] = plans
    assert "InMemoryTableScan" not in plan and plan.count("FileScan") == 1, plan
    assert "BatchEvalPython" not in plan and "ArrowEvalPython" not in plan, plan
    first = plan.splitlines()[0]
    assert first.startswith("*(") and "AS c#" in first, plan  # cheap_c in one codegen stage

    # day 1's profile knows what was left of its run when the output was ready
    key = profile_key("expensive", code_fingerprint(expensive_v1(None)))
    profile_path = os.path.join(storage, layout.profile_file(key))
    with open(profile_path) as fh:
        measured = json.load(fh)
    assert measured["workflow_id"] == "day-1"
    assert 0 < measured["tail_s"] < measured["run_s"] and measured["write_s"] > 0, measured

    # day 2, a new workflow id: decided from day 1's profile before running. Only the
    # checkpoint's write and two narrow stages followed the output on day 1: a crash could
    # hardly land after its commit, so the recompute it insures is small and it is not
    # written (on a root whose writes cost 1 s: the measurement of 1.6 s of Python runs to
    # 4 s on a loaded machine, and a tenth of it could outweigh a 0.3 s write)
    for fh in cost_model_files(storage):
        json.dump({"write_fixed_s": 1.0, "measured_at": time.time()}, fh)
    assert xf.run(dag_of(expensive_v1, []), workflow_id="day-2", storage=storage,
                  checkpoint="auto") == EXPECTED  # fmt: skip
    for fh in cost_model_files(storage):
        json.dump({"write_fixed_s": 0.3, "measured_at": time.time()}, fh)
    got = decisions(storage, "day-2")
    assert (got["expensive"]["action"], got["expensive"]["source"]) == ("fuse", "profile"), got
    assert "day-1" in got["expensive"]["reason"]
    assert "of the run after its commit" in got["expensive"]["reason"], got["expensive"]
    written = {t: got[t]["reason"] for t in cheap if got[t]["action"] != "fuse"}
    assert not written, written
    assert "expensive" not in WorkflowStore(storage, "day-2").read_state().commits
    assert materialized(spark, "day-2") == set()

    # a profile without its run's tail (as the release before wrote them): every crash is
    # assumed to land after the commit, and the expensive output is written from the profile.
    # The root's writes are cheap (0.3 s fixed): it is written sync by the job that computes
    # it, not computed into the cache first, and its consumer reads the checkpoint. In a
    # driver that has written no checkpoint yet it is not preceded by a warm-up (the profile
    # decided): its measurement bounds its compute from above, and the profile keeps its
    # own, lower (0.9 s against the 1.6 s the stage takes)
    del measured["tail_s"], measured["run_s"]
    with open(profile_path, "w") as fh:
        json.dump({**measured, "compute_s": 0.9}, fh)
    monkeypatch.setattr(checkpoints, "_written", set())
    plans = []
    assert xf.run(dag_of(expensive_v1, plans), workflow_id="day-2b", storage=storage,
                  checkpoint="auto") == EXPECTED  # fmt: skip
    got = decisions(storage, "day-2b")
    assert got["expensive"]["action"] == "write" and got["expensive"]["source"] == "profile"
    assert "written sync" in got["expensive"]["reason"], got["expensive"]
    assert all(got[t]["action"] == "fuse" for t in cheap)
    sync_commit = WorkflowStore(storage, "day-2b").read_state().commits["expensive"]
    assert sync_commit.mode == "sync"
    assert materialized(spark, "day-2b") == set()
    assert jobs_named(spark, "day-2b", "warm up the checkpoint write path") == 0
    [plan] = plans
    assert "InMemoryTableScan" not in plan and "FileScan" in plan, plan
    assert "BatchEvalPython" not in plan and "ArrowEvalPython" not in plan, plan
    # measured again from the write's job: its compute (the job less the cost model's write)
    # is over the profile's, which stays, and its write time is the cost model's write, not
    # the whole job
    with open(profile_path) as fh:
        again = json.load(fh)
    assert again["workflow_id"] == "day-2b"
    assert again["compute_s"] == 0.9 and again["bytes"] == measured["bytes"], again
    assert again["write_s"] < sync_commit.checkpoint.write_seconds, again
    # the write path warm now, the next run's write measures the task afresh
    with open(profile_path, "w") as fh:
        json.dump({**measured, "compute_s": 0.9}, fh)
    assert xf.run(dag_of(expensive_v1, []), workflow_id="day-2b-warm", storage=storage,
                  checkpoint="auto") == EXPECTED  # fmt: skip
    with open(profile_path) as fh:
        refreshed = json.load(fh)
    assert refreshed["workflow_id"] == "day-2b-warm" and refreshed["compute_s"] > 0.9, refreshed

    # a root whose writes are latency-bound (1.05 s fixed per write, over the 1 s bound):
    # written async, the output
    # computed into the cache first and its write hidden behind the consumers
    with open(profile_path, "w") as fh:
        json.dump(measured, fh)
    for fh in cost_model_files(storage):
        json.dump({"write_fixed_s": 1.05, "measured_at": time.time()}, fh)
    assert xf.run(dag_of(expensive_v1, []), workflow_id="day-2c", storage=storage,
                  checkpoint="auto") == EXPECTED  # fmt: skip
    got = decisions(storage, "day-2c")
    assert got["expensive"]["action"] == "write", got["expensive"]
    assert "written async" in got["expensive"]["reason"], got["expensive"]
    assert WorkflowStore(storage, "day-2c").read_state().commits["expensive"].mode == "async"
    assert materialized(spark, "day-2c") == {"expensive"}
    for fh in cost_model_files(storage):
        json.dump({"write_fixed_s": 0.3, "measured_at": time.time()}, fh)

    # the expensive stage's code changed: its old profile is not used, it is measured again.
    # On a root whose writes are latency-bound it is computed into the cache to measure it,
    # then written from there in the background
    for fh in cost_model_files(storage):
        json.dump({"write_fixed_s": 1.05, "measured_at": time.time()}, fh)
    plans = []
    assert xf.run(dag_of(expensive_v2, plans), workflow_id="day-3", storage=storage,
                  checkpoint="auto") == EXPECTED  # fmt: skip
    got = decisions(storage, "day-3")
    assert (got["expensive"]["action"], got["expensive"]["source"]) == ("write", "measured")
    assert WorkflowStore(storage, "day-3").read_state().commits["expensive"].mode == "async"
    assert materialized(spark, "day-3") == {"expensive"}
    # cheap_c fused over the stored output (one scan of the cache or the checkpoint), and the
    # cheap stages below it ran inside the expensive stage's job (no cache of their own)
    [plan] = plans
    top, _, cached = plan.partition("InMemoryRelation")
    assert plan.count("InMemoryTableScan") <= 1, plan  # only the expensive output is cached
    assert "BatchEvalPython" not in top and "ArrowEvalPython" not in top, plan
    assert top.count("InMemoryTableScan") + top.count("FileScan") == 1, plan
    if cached:  # still the cache (not yet re-pointed at the checkpoint): how it was computed
        assert "BatchEvalPython" in cached and "AS b#" in cached and "AS a#" in cached, plan
    for fh in cost_model_files(storage):
        json.dump({"write_fixed_s": 0.3, "measured_at": time.time()}, fh)

    # a corrupt profile: a warning, measured afresh, the right result
    with open(profile_path, "w") as fh:
        fh.write("{garbage")
    with caplog.at_level(logging.WARNING, logger="exoflow_spark"):
        assert xf.run(dag_of(expensive_v1, []), workflow_id="day-4", storage=storage,
                      checkpoint="auto") == EXPECTED  # fmt: skip
    assert "ignoring task profile" in caplog.text
    assert decisions(storage, "day-4")["expensive"]["source"] == "measured"

    # explain and history show the decisions and their sources
    plan_text = str(xf.explain("day-4", storage=storage))
    assert "checkpoint='auto'" in plan_text and "[profile]" in plan_text, plan_text
    # the preview weighs a profile's tail as the run does (day 2's profile knows it)
    assert "of the run after its commit" in str(xf.explain("day-2", storage=storage))
    from exoflow_spark.surface.cli import _history

    [run] = _history(WorkflowStore(storage, "day-2b"))["runs"]
    shown = {a["task"]: a for a in run["auto_checkpoint"]}
    assert shown["expensive"]["source"] == "profile" and shown["cheap_a"]["action"] == "fuse"


def test_a_stage_under_the_floor_is_kept_then_fused_not_written(spark, storage, monkeypatch):
    """The default floor (5 s of recompute at risk): the UDF stage costs 1.6 s, more than its
    0.3 s write but less than the floor. The first run measures it: on this root (cheap
    writes) by the job that writes it, and says it was not worth writing; on a root whose
    writes are latency-bound it is measured into the cache and not written. The next run
    decides from that profile before running and fuses it: the output's one job runs the
    Python UDF and every cheap stage, nothing is cached or written."""
    monkeypatch.delenv(MIN_REPLAY_ENV)
    os.makedirs(os.path.join(storage, "_exoflow"), exist_ok=True)
    for fh in cost_model_files(storage):
        json.dump({"write_fixed_s": 0.3, "measured_at": time.time()}, fh)

    assert xf.run(dag_of(expensive_v1, []), workflow_id="floor-1", storage=storage,
                  checkpoint="auto") == EXPECTED  # fmt: skip
    first = decisions(storage, "floor-1")["expensive"]
    assert (first["action"], first["source"]) == ("write", "measured"), first
    assert 1.0 <= first["replay_s"] < MIN_REPLAY_S and first["write_s"] < first["replay_s"]
    assert "worth insuring" in first["reason"] and "the next run fuses it" in first["reason"]
    assert WorkflowStore(storage, "floor-1").read_state().commits["expensive"].mode == "sync"

    for fh in cost_model_files(storage):
        json.dump({"write_fixed_s": 1.05, "measured_at": time.time()}, fh)
    assert xf.run(dag_of(expensive_v2, []), workflow_id="floor-1b", storage=storage,
                  checkpoint="auto") == EXPECTED  # fmt: skip
    kept = decisions(storage, "floor-1b")["expensive"]
    assert (kept["action"], kept["source"], kept["checkpoint"]) == ("keep", "measured", False)
    assert "worth insuring" in kept["reason"], kept
    assert "expensive" not in WorkflowStore(storage, "floor-1b").read_state().commits
    assert not os.path.exists(os.path.join(storage, "workflows", "floor-1b", "refs", "expensive"))

    plans: list[str] = []
    assert xf.run(dag_of(expensive_v1, plans), workflow_id="floor-2", storage=storage,
                  checkpoint="auto") == EXPECTED  # fmt: skip
    second = decisions(storage, "floor-2")["expensive"]
    assert (second["action"], second["source"]) == ("fuse", "profile"), second
    assert "floor-1" in second["reason"], second
    # under the floor, or (a profile that knows its run's tail) insuring too little of it
    assert any(why in second["reason"] for why in ("worth insuring", "after its commit"))
    assert materialized(spark, "floor-2") == set()
    [plan] = plans  # the whole chain in the output's plan: the UDF over the cheap stages
    assert "InMemoryTableScan" not in plan and "FileScan" not in plan, plan
    assert "BatchEvalPython" in plan and "AS a#" in plan and "AS b#" in plan, plan


def test_a_bad_floor_is_refused_by_auto_runs_only(spark, tmp_path, monkeypatch):
    """``$EXOFLOW_AUTO_MIN_REPLAY_S`` matters to "auto" tasks only: a run without one runs
    whatever it says; an "auto" run is refused before its run record is written."""
    monkeypatch.setenv(MIN_REPLAY_ENV, "later")
    storage = str(tmp_path / "exo")

    @xf.task
    def rows():
        return xf.get_spark().range(3)

    @xf.task
    def n(df):
        return df.count()

    assert xf.run(n.bind(rows.bind()), workflow_id="plain", storage=storage) == 3
    with pytest.raises(xf.InvalidOptionError, match=MIN_REPLAY_ENV):
        xf.run(n.bind(rows.bind()), workflow_id="auto", storage=storage, checkpoint="auto")
    assert not os.path.exists(os.path.join(storage, "workflows", "auto"))


def test_work_at_risk_counts_each_lost_task_once_and_caches_at_their_size(spark, tmp_path):
    """A diamond: a measured UDF stage read by two cheap branches that a third stage joins.
    A crash loses the UDF stage once, so the join's recompute at risk holds it once (it was
    summed per branch: twice). And a join of two ranges, cached lazily for its two readers
    before any job ran, is priced by its readers at what it reads, not at Catalyst's product
    of its sides (peers.py's heavy pipeline priced an aggregation over one at 3390 s)."""
    storage = str(tmp_path / "exo")
    os.makedirs(os.path.join(storage, "_exoflow"))
    for fh in cost_model_files(storage):
        # writes so dear nothing is written: every output stays a plan or a cache
        json.dump({"write_fixed_s": 1000.0, "measured_at": time.time()}, fh)

    def slow(x: int) -> int:
        time.sleep(0.2)
        return x

    slow_udf = F.udf(slow, LongType())
    spark_ = xf.get_spark

    @xf.task
    def orders():
        return spark_().range(0, 200_000, 1, 2).withColumn("k", F.col("id") % 5000)

    @xf.task
    def customers():
        return spark_().range(5000).withColumnRenamed("id", "k")

    @xf.task
    def joined(o, c):  # read by two tasks: cached lazily, Catalyst sizes it at ~6e10 bytes
        return o.join(c, "k").groupBy("k").agg(F.count("*").alias("n"))

    @xf.task
    def big(df):
        return df.where(F.col("n") > 0)

    @xf.task
    def small(df):
        return df.where(F.col("n") < 1000)

    @xf.task
    def scored():
        return spark_().range(0, 8, 1, 2).withColumn("s", slow_udf(F.col("id")))

    @xf.task
    def left(df):
        return df.withColumn("l", F.col("s") + 1)

    @xf.task
    def right(df):
        return df.withColumn("r", F.col("s") + 2)

    @xf.task
    def both(a, b):
        return a.join(b, ["id", "s"])

    @xf.task
    def total(d, b, s):
        return [d.count(), b.count(), s.count()]

    sc = scored.bind()
    j = joined.bind(orders.bind(), customers.bind())
    dag = total.bind(both.bind(left.bind(sc), right.bind(sc)), big.bind(j), small.bind(j))
    assert xf.run(dag, workflow_id="diamond", storage=storage, checkpoint="auto") == [
        8,
        5000,
        5000,
    ]
    got = decisions(storage, "diamond")
    assert got["scored"]["action"] == "keep" and got["scored"]["replay_s"] >= 0.4, got["scored"]
    lost = got["scored"]["replay_s"]
    assert got["left"]["replay_s"] == pytest.approx(lost, abs=0.05), got["left"]
    # scored once, left and right (cheap plans) once each: not scored twice
    assert got["both"]["replay_s"] < 1.5 * lost, (got["both"], lost)
    leaves = 200_000 * 16 + 5000 * 8
    for t in ("joined", "big", "small"):
        assert got[t]["action"] == "fuse" and got[t]["bytes"] <= 4 * leaves, got[t]
        assert got[t]["replay_s"] < 1, got[t]


def test_a_measured_output_is_priced_by_its_cached_size_not_its_plan_estimate(spark) -> None:
    """The size "auto" prices a measured output's write by is what its cache holds. The
    DataFrame a task returned keeps the plan Spark optimized before persist(): a join of
    inputs is estimated there at the product of their sizes (480 GB for
    benchmarks/recovery.py's 600k x 5,000 join, so a 12 s Python stage over it was judged not
    worth a "13,094 s" write)."""
    from exoflow_spark.spark.session import cached_size_bytes

    orders = spark.range(0, 20000, 1, 4).withColumn("k", F.col("id") % 100)
    joined = orders.join(spark.range(100).withColumnRenamed("id", "k"), "k")
    estimate = int(str(joined._jdf.queryExecution().optimizedPlan().stats().sizeInBytes()))
    joined.persist()
    try:
        assert joined.count() == 20000
        size = cached_size_bytes(joined)
        assert 0 < size < 5_000_000 < estimate, (size, estimate)
    finally:
        joined.unpersist()


def test_a_plan_is_counted_unoptimized_as_the_optimizer_would(spark) -> None:
    """A run under "auto" reads plans as analyzed (no optimization: the cumulative plan of
    every stage of a chain was optimized once per decision). That reading gives the counts of
    wide operators the optimized plan gives, cached inputs left out, and says whether there is
    Python code; only the optimizer extracts a projection's UDFs into operators to count."""
    from exoflow_spark.spark.session import plan_operators

    base = spark.range(0, 1000, 1, 2).withColumn("k", F.col("id") % 10)
    other = spark.range(10).withColumnRenamed("id", "k")
    cached = base.where(F.col("id") > 3).groupBy("k").count().persist()
    try:
        cached.count()
        jvm_only = {
            "narrow": (base.select("id", (F.col("k") * 2).alias("k2")).where("k2 > 1"), 0),
            "join + aggregate": (base.join(other, "k").groupBy("k").agg(F.sum("id")), 2),
            "distinct, sorted": (base.select("k").distinct().orderBy("k"), 2),
            "over a cached input": (cached.withColumn("c2", F.col("count") + 1), 0),
            "intersect": (base.select("k").intersect(other), 1),
        }
        for name, (df, wide) in jvm_only.items():
            fast, full = plan_operators(df), plan_operators(df, optimize=True)
            assert fast is not None and full is not None
            assert not fast.optimized and full.optimized, name
            assert fast.opaque == full.opaque == 0 and not fast.python, (name, fast, full)
            assert fast.wide >= 1 if wide else fast.wide == 0, (name, fast)
            if name != "intersect":  # the optimizer turns one Intersect into a join
                assert fast.wide == full.wide == wide, (name, fast, full)
            assert fast.size_bytes is not None and fast.input_bytes is not None, (name, fast)
        udf = F.udf(lambda x: x + 1, LongType())
        with_python = cached.withColumn("u", udf(F.col("count"))).groupBy("u").count()
        fast, full = plan_operators(with_python), plan_operators(with_python, optimize=True)
        assert fast is not None and full is not None
        assert fast.python and (fast.opaque, fast.wide) == (1, 1), fast  # not the cached plan's
        assert (full.opaque, full.wide) == (1, 1), full  # its UDF extracted: BatchEvalPython
        mapped = base.mapInPandas(lambda it: it, base.schema)  # an operator before optimizing
        assert plan_operators(mapped).opaque == 1  # type: ignore[union-attr]
    finally:
        cached.unpersist()


def test_a_task_that_runs_spark_jobs_itself_is_priced_by_them(spark, tmp_path) -> None:
    """A training-loop-like task: its function runs Spark jobs (here 0.4 s per row of Python,
    collected twice) and returns a small plan Catalyst prices at nothing. Auto writes it (its
    recompute is the function's run); a cheap task that only builds a plan still fuses, and
    so does one whose function is slow without running a job (a sleep: building a plan)."""
    storage = str(tmp_path / "exo")

    def slow(x: int) -> int:
        time.sleep(0.4)
        return x

    slow_udf = F.udf(slow, LongType())

    @xf.task
    def data():
        return xf.get_spark().range(0, 4, 1, 2)

    @xf.task
    def train(df):
        weight = 0
        for _ in range(2):  # two "epochs", each a Spark job of its own
            weight += df.select(slow_udf(F.col("id")).alias("v")).agg(F.sum("v")).first()[0]
        return xf.get_spark().range(1).select(F.lit(weight).alias("w"))

    @xf.task
    def plan_only(df):
        time.sleep(0.3)  # slow Python, no Spark job: the plan prices it
        return df.withColumn("w2", F.col("w") * 2)

    @xf.task
    def report(df):
        return df.first().w2

    out = xf.run(
        report.bind(plan_only.bind(train.bind(data.bind()))),
        workflow_id="eager",
        storage=storage,
        spark=spark,
        checkpoint="auto",
    )
    assert out == 2 * 2 * sum(range(4))
    got = decisions(storage, "eager")
    assert (got["train"]["action"], got["train"]["source"]) == ("write", "estimate"), got["train"]
    assert "its function ran" in got["train"]["reason"]
    assert got["plan_only"]["action"] == "fuse", got["plan_only"]
    assert "its function ran" not in got["plan_only"]["reason"]
    assert got["data"]["action"] == "fuse"

    # the next run, on a root with cheap writes (its profile without the run's tail: every
    # crash is assumed to land after the commit): written sync from its profile, and
    # measured again with its function's jobs (the written plan is one row: they are its cost)
    for fh in cost_model_files(storage):
        json.dump({"write_fixed_s": 0.3, "measured_at": time.time()}, fh)
    profile_path = os.path.join(
        storage, layout.profile_file(profile_key("train", code_fingerprint(train.fn)))
    )
    with open(profile_path) as fh:
        first = json.load(fh)
    first.pop("tail_s", None), first.pop("run_s", None)
    with open(profile_path, "w") as fh:
        json.dump(first, fh)
    dag = report.bind(plan_only.bind(train.bind(data.bind())))
    assert xf.run(dag, workflow_id="eager-2", storage=storage, spark=spark,
                  checkpoint="auto") == out  # fmt: skip
    got = decisions(storage, "eager-2")
    assert (got["train"]["action"], got["train"]["source"]) == ("write", "profile"), got["train"]
    assert "written sync" in got["train"]["reason"], got["train"]
    with open(profile_path) as fh:
        again = json.load(fh)
    assert again["workflow_id"] == "eager-2" and again["compute_s"] >= 1.2, again


def test_a_join_its_plan_prices_absurdly_leaves_the_stage_over_it_its_measured_cost(
    spark, tmp_path
) -> None:
    """Catalyst estimates an inner join at the product of its inputs' sizes (here 1.6 MB x
    40 KB: ~6e10 bytes, "~380 s" to recompute). Priced by what it reads instead (its leaves,
    at most twice), the join keeps fusing at a sane estimate, and the Python stage measured
    over it keeps its measured seconds in its profile: the join's absurd estimate was once
    taken out of the measurement, which left a profile of 0 s (benchmarks/recovery.py's first
    UDF stage, "compute 0.00s"), and every stage over it was later priced at 380 s more."""
    storage = str(tmp_path / "exo")
    os.makedirs(os.path.join(storage, "_exoflow"))
    for fh in cost_model_files(storage):
        json.dump({"write_fixed_s": 0.3, "write_bps": 1e8, "measured_at": time.time()}, fh)

    def slow(x: int) -> int:  # 1 s of Python in one partition, the rest free
        if x < 2:
            time.sleep(0.5)
        return x

    slow_udf = F.udf(slow, LongType())

    @xf.task
    def orders():
        return xf.get_spark().range(0, 200_000, 1, 2).withColumn("k", F.col("id") % 5000)

    @xf.task
    def customers():
        return xf.get_spark().range(5000).withColumnRenamed("id", "k")

    @xf.task
    def joined(o, c):
        return o.join(c, "k")

    @xf.task
    def scored(df):
        return df.withColumn("s", slow_udf(F.col("id")))

    @xf.task
    def total(df):
        return df.agg(F.sum("s").alias("s")).first().s

    dag = total.bind(scored.bind(joined.bind(orders.bind(), customers.bind())))
    assert xf.run(dag, workflow_id="absurd", storage=storage, checkpoint="auto") == sum(
        range(200_000)
    )
    got = decisions(storage, "absurd")
    leaves = 200_000 * 16 + 5000 * 8  # two longs per order, one per customer
    assert got["joined"]["action"] == "fuse" and got["joined"]["replay_s"] < 1, got["joined"]
    assert got["joined"]["bytes"] <= 2 * leaves, got["joined"]
    assert got["scored"]["source"] == "measured" and got["scored"]["replay_s"] >= 1.0
    profiles = [
        json.loads(p.read_text())
        for p in (tmp_path / "exo" / "_exoflow" / "profiles").glob("*.json")
    ]
    [mine] = [p for p in profiles if p["task"] == "scored"]
    assert mine["compute_s"] >= 1.0, mine  # the sleeps alone; it was 0.0


def test_a_profiles_tail_comes_from_a_run_of_the_whole_pipeline(spark, tmp_path) -> None:
    """tail_s and run_s are kept from a run that ran the whole pipeline and finished. A
    resumed run runs part of it (its length would overstate the share): a profile measured
    again there keeps the tail it had; the next whole run replaces it."""
    storage = str(tmp_path / "exo")
    os.makedirs(os.path.join(storage, "_exoflow"))
    for fh in cost_model_files(storage):
        json.dump({"write_fixed_s": 0.3, "measured_at": time.time()}, fh)
    fail = {"on": False}

    def slow(x: int) -> int:
        time.sleep(0.4)
        return x * 2

    slow_udf = F.udf(slow, LongType())

    @xf.task(checkpoint=True)
    def base():  # committed at once: a run after a failure resumes from it
        return xf.get_spark().range(0, ROWS, 1, 2)

    @xf.task
    def scored(df):
        if fail["on"]:
            raise RuntimeError("injected failure")
        return df.withColumn("x", slow_udf(F.col("id")))

    @xf.task
    def after(df):  # four seconds of the run left after the scored output (its write in them)
        time.sleep(4.0)
        return df.agg(F.sum("x")).first()[0]

    def profile_of_scored() -> dict:
        [doc] = [
            json.loads(p.read_text())
            for p in (tmp_path / "exo" / "_exoflow" / "profiles").glob("*.json")
        ]
        return doc

    expected = sum(2 * i for i in range(ROWS))

    def run(wf: str):
        dag = after.bind(scored.bind(base.bind()))
        return xf.run(dag, workflow_id=wf, storage=storage, checkpoint="auto")

    assert run("tail-a") == expected
    first = profile_of_scored()
    assert first["workflow_id"] == "tail-a" and 4.0 <= first["tail_s"] < first["run_s"], first

    fail["on"] = True
    with pytest.raises(xf.TaskFailedError, match="injected failure"):
        run("tail-b")
    assert set(WorkflowStore(storage, "tail-b").read_state().commits) == {"base"}
    fail["on"] = False
    assert run("tail-b") == expected  # resumed: base restored, scored measured again
    got = decisions(storage, "tail-b")["scored"]
    assert got["action"] == "write" and got["source"] == "profile", got
    resumed = profile_of_scored()
    assert resumed["workflow_id"] == "tail-b" and resumed["write_s"] is not None
    assert (resumed["tail_s"], resumed["run_s"]) == (first["tail_s"], first["run_s"]), resumed

    assert run("tail-c") == expected
    whole = profile_of_scored()
    assert whole["workflow_id"] == "tail-c" and 4.0 <= whole["tail_s"] < whole["run_s"]
    assert (whole["tail_s"], whole["run_s"]) != (first["tail_s"], first["run_s"]), whole


def test_a_root_with_no_cost_model_is_measured_once_by_an_auto_run(
    spark, tmp_path, monkeypatch, caplog
) -> None:
    """A run naming no recovery strategy (``"restore"``) on a root never measured: its first
    decision that needs the write path's cost (a UDF stage with no profile) measures the
    root's cost model of auto's format first, so the stage is written sync on this local
    disk, as under ``recovery="cost"``; the next run finds the model and measures nothing,
    and the first that needs it once it is a week old measures it again. A measurement that
    fails is logged and the run goes on with the assumed model (written async), its result
    right."""
    storage = str(tmp_path / "fresh")
    model = os.path.join(storage, layout.throughput_file("parquet"))
    assert xf.run(dag_of(expensive_v1, []), workflow_id="calib-1", storage=storage,
                  checkpoint="auto") == EXPECTED  # fmt: skip
    first = decisions(storage, "calib-1")["expensive"]
    assert (first["action"], first["source"]) == ("write", "measured"), first
    assert "written sync" in first["reason"], first
    assert WorkflowStore(storage, "calib-1").read_state().commits["expensive"].mode == "sync"
    with open(model) as fh:
        measured_at = json.load(fh)["measured_at"]
    # only the format auto writes was measured (the run declares no checkpoint)
    assert not os.path.exists(os.path.join(storage, "_exoflow", "throughput.json"))

    assert xf.run(dag_of(expensive_v2, []), workflow_id="calib-2", storage=storage,
                  checkpoint="auto") == EXPECTED  # fmt: skip
    with open(model) as fh:
        assert json.load(fh)["measured_at"] == measured_at  # kept, not measured again
    assert "written sync" in decisions(storage, "calib-2")["expensive"]["reason"]

    # a week later the storage's costs may have drifted: the next decision that needs the
    # model (here a stage whose profile is gone) measures it again
    week_old = measured_at - THROUGHPUT_MAX_AGE_SECONDS - 60
    with open(model) as fh:
        doc = json.load(fh)
    with open(model, "w") as fh:
        json.dump({**doc, "measured_at": week_old}, fh)
    shutil.rmtree(os.path.join(storage, "_exoflow", "profiles"))
    assert xf.run(dag_of(expensive_v1, []), workflow_id="calib-2b", storage=storage,
                  checkpoint="auto") == EXPECTED  # fmt: skip
    with open(model) as fh:
        assert json.load(fh)["measured_at"] > measured_at  # measured again
    assert "written sync" in decisions(storage, "calib-2b")["expensive"]["reason"]

    def broken(*args, **kwargs):
        raise OSError("the calibration directory is not writable")

    monkeypatch.setattr("exoflow_spark.engine.runner.measure_throughput", broken)
    other = str(tmp_path / "other")
    with caplog.at_level(logging.WARNING, logger="exoflow_spark.engine.runner"):
        assert xf.run(dag_of(expensive_v1, []), workflow_id="calib-3", storage=other,
                      checkpoint="auto") == EXPECTED  # fmt: skip
    assert "not writable" in caplog.text and "assumed cost model" in caplog.text
    third = decisions(other, "calib-3")["expensive"]
    assert "not measured yet" in third["reason"], third
    assert WorkflowStore(other, "calib-3").read_state().commits["expensive"].mode == "async"
