"""The recovery manager: nondeterminism rules, roll-back, explain, replay-or-restore."""

from __future__ import annotations

import os
import time
from collections import Counter

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

import exoflow_spark as xf
from exoflow_spark.storage.store import WorkflowStore


def publish_to(path: str):
    @xf.task
    def publish(df):
        xf.write_delta(df, path)
        return df.count()

    return publish


def test_validator_rejects_replayed_nondeterminism_reaching_a_sink(
    spark, storage, sink_path
) -> None:
    @xf.task(deterministic=False)
    def sample(n):
        return spark.range(n).sample(fraction=0.5)

    @xf.task
    def enrich(df):
        return df.withColumn("x", F.col("id") * 2)

    dag = publish_to(sink_path).bind(enrich.bind(sample.bind(100)))
    with pytest.raises(xf.DagError) as info:
        xf.run(dag, workflow_id="nd-1", storage=storage, spark=spark)
    msg = str(info.value)
    assert "[sample] is nondeterministic" in msg and "[publish]" in msg
    assert "checkpoint=True or 'async'" in msg and "deterministic=True" in msg
    assert xf.list_workflows(storage=storage) == []  # rejected before anything was written

    ok = publish_to(sink_path).bind(enrich.bind(sample.options(checkpoint="async").bind(100)))
    assert xf.run(ok, workflow_id="nd-2", storage=storage, spark=spark) >= 0


def test_sink_through_a_helper_must_be_declared(spark, storage, sink_path) -> None:
    def helper(df):
        xf.write_delta(df, sink_path)

    @xf.task
    def hidden_sink():
        helper(spark.range(3))

    with pytest.raises(xf.SinkError) as info:
        xf.run(hidden_sink.bind(), workflow_id="hs-1", storage=storage, spark=spark)
    assert "[hidden_sink] calls write_delta" in str(info.value)
    assert "declare @xf.task(sink=True)" in str(info.value)
    assert "Nothing was written" in str(info.value)
    from pathlib import Path

    assert not Path(sink_path).exists()

    declared = hidden_sink.options(sink=True)
    xf.run(declared.bind(), workflow_id="hs-2", storage=storage, spark=spark)
    assert spark.read.format("delta").load(sink_path).count() == 3


def test_sink_waits_for_nondeterministic_inputs_to_be_durable(
    spark, storage, wf, sink_path
) -> None:
    marks: dict[str, float] = {}

    @xf.task(deterministic=False, checkpoint="async")
    def sample():
        return spark.range(30000).sample(fraction=0.5).withColumn("r", F.rand())

    @xf.task
    def enrich(df):
        return df.withColumn("y", F.col("id") + 1)

    @xf.task
    def publish(df):
        marks["sink_start"] = time.time()
        xf.write_delta(df, sink_path)
        return df.count()

    n = xf.run(
        publish.bind(enrich.bind(sample.bind())), workflow_id=wf, storage=storage, spark=spark
    )
    rec = WorkflowStore(storage, wf).read_state().commits["sample"]
    assert rec.committed_at <= marks["sink_start"]  # implicit wait_until_committed
    published = spark.read.format("delta").load(sink_path)
    committed = xf.get_output(wf, task="sample", storage=storage, spark=spark)
    assert published.count() == n == committed.count()
    assert_df_equality(
        published.select("id", "r"),
        committed.select("id", "r"),
        ignore_row_order=True,
        ignore_nullable=True,
    )


def test_observer_of_a_lost_nondeterministic_output_is_rolled_back(spark, storage, wf) -> None:
    """`stats` commits having read `sample` (nondeterministic, never checkpointed: a cache
    shared by two consumers); the run then fails. On resume `sample` is recomputed (a
    different sample), so `stats` must be rolled back."""
    calls: Counter[str] = Counter()
    broken = {"on": True}

    @xf.task(deterministic=False)
    def sample():
        calls["sample"] += 1
        return spark.range(5000).sample(fraction=0.5).withColumn("ok", F.lit(1))

    @xf.task(checkpoint=True)
    def stats(df):
        calls["stats"] += 1
        return df.groupBy().agg(F.count("*").alias("n"), F.sum("id").alias("s"))

    @xf.task
    def combine(st, df):
        if broken["on"]:
            raise RuntimeError("downstream outage")
        row = st.first()
        return {
            "stats_n": row["n"],
            "stats_s": row["s"],
            "n": df.count(),
            "s": df.agg(F.sum("id")).first()[0],
        }

    s = sample.bind()
    dag = combine.bind(stats.bind(s), s)
    with pytest.raises(xf.TaskFailedError):
        xf.run(dag, workflow_id=wf, storage=storage, spark=spark)
    state = WorkflowStore(storage, wf).read_state()
    assert "stats" in state.commits and "sample" not in state.commits
    assert state.commits["stats"].observed_volatile == ("sample",)

    broken["on"] = False  # the outage is over
    plan = xf.explain(dag, workflow_id=wf, storage=storage)
    assert plan.decision("stats").action == "roll back"
    assert "observed [sample] before it was durable" in plan.decision("stats").reason
    assert plan.decision("sample").action == "replay"  # never durable: recomputed

    out = xf.run(dag, workflow_id=wf, storage=storage, spark=spark)
    assert calls == Counter(sample=2, stats=2)
    assert out["stats_n"] == out["n"] and out["stats_s"] == out["s"]  # one single sample


def test_nondeterministic_async_output_is_read_only_from_its_checkpoint(spark, storage, wf) -> None:
    """A nondeterministic output with an async checkpoint is held back until the write
    commits (its cached blocks could be recomputed differently): `stats` reads the
    checkpoint, never the cache. When the write fails, `stats` never ran."""
    calls: Counter[str] = Counter()
    # while this file stands where sample's checkpoint table must go, its write fails
    blocker = os.path.join(storage, "workflows", wf, "refs", "sample")
    os.makedirs(os.path.dirname(blocker))
    with open(blocker, "w") as fh:
        fh.write("not a table")

    @xf.task(deterministic=False, checkpoint="async")
    def sample():
        calls["sample"] += 1
        return spark.range(5000).sample(fraction=0.5).withColumn("ok", F.lit(1))

    @xf.task(checkpoint=True)
    def stats(df):
        calls["stats"] += 1
        return df.groupBy().agg(F.count("*").alias("n"), F.sum("id").alias("s"))

    @xf.task
    def other():  # independent of sample: runs while its write is pending
        calls["other"] += 1
        return 1

    s = sample.bind()
    dag = combine_values.bind(stats.bind(s), other.bind())
    with pytest.raises(xf.CheckpointError):
        xf.run(dag, workflow_id=wf, storage=storage, spark=spark)
    state = WorkflowStore(storage, wf).read_state()
    assert "sample" not in state.commits and "stats" not in state.commits
    assert calls == Counter(sample=1, other=1)  # stats never read the cached sample

    os.remove(blocker)  # the storage is fixed
    out = xf.run(dag, workflow_id=wf, storage=storage, spark=spark)
    state = WorkflowStore(storage, wf).read_state()
    assert state.commits["stats"].observed_volatile == ()  # it read the checkpoint
    assert state.commits["sample"].committed_at <= state.commits["stats"].started_at
    committed = xf.get_output(wf, task="sample", storage=storage, spark=spark)
    assert out == [committed.count(), committed.agg(F.sum("id")).first()[0]]


@xf.task
def combine_values(st, _other):
    row = st.first()
    return [row["n"], row["s"]]


def test_explain_names_each_action(spark, storage, wf) -> None:
    broken = {"on": True}

    @xf.task(checkpoint=True)
    def raw():
        return spark.range(1000)

    @xf.task
    def cleaned(df):  # checkpoint=False: a lazy plan, lost with the driver
        return df.filter("id % 2 = 0")

    @xf.task(checkpoint=True)
    def summary(df):
        return df.groupBy().count()

    @xf.task
    def final(df, s):
        if broken["on"]:
            raise RuntimeError("downstream outage")
        return {"n": df.count(), "s": s.first()[0]}

    c = cleaned.bind(raw.bind())
    dag = final.bind(c, summary.bind(c))
    with pytest.raises(xf.TaskFailedError):
        xf.run(dag, workflow_id=wf, storage=storage, spark=spark)

    plan = xf.explain(wf, storage=storage)
    actions = {d.task: d.action for d in plan.decisions}
    assert actions == {"raw": "restore", "cleaned": "replay", "summary": "restore", "final": "run"}
    assert plan.decision("raw").restore_s is not None
    assert "checkpoint v0" in plan.decision("raw").reason
    text = str(plan)
    assert "restore" in text and "replay" in text and "final" in text
    assert "<table>" in plan._repr_html_()
    # the plan is logged with every run, and the run follows it
    broken["on"] = False
    assert xf.run(dag, workflow_id=wf, storage=storage, spark=spark) == {"n": 500, "s": 500}
    events = [e for e in WorkflowStore(storage, wf).events() if e.kind == "plan"]
    assert events[-1].data["run_tasks"] == ["cleaned", "final"]
    assert {d["task"]: d["action"] for d in events[-1].decisions} == actions
    assert xf.explain(wf, storage=storage).actions("skip") == ["raw", "cleaned", "summary", "final"]


def test_throughput_is_measured_once_and_cached(spark, storage) -> None:
    from exoflow_spark.engine.cost import load_throughput, measure_throughput
    from exoflow_spark.storage.logfs import LocalLogFS

    fs = LocalLogFS(storage)
    assert not load_throughput(fs).measured
    tp = measure_throughput(spark, fs, megabytes=16)
    assert tp.measured and tp.read_bps > 1e6 and tp.write_bps > 1e6
    assert 0 < tp.read_fixed_s < 30 and 0 < tp.write_fixed_s < 30
    assert load_throughput(fs) == tp
    assert measure_throughput(spark, fs) == tp  # cached: not measured again

    assert os.listdir(os.path.join(storage, "_exoflow", "calibration")) == []
    # Parquet checkpoints have their own write path, so their own cost model and cache file
    assert not load_throughput(fs, "parquet").measured
    pq = measure_throughput(spark, fs, megabytes=16, fmt="parquet")
    assert pq.measured and pq.write_bps > 1e6 and 0 < pq.write_fixed_s < 30
    assert pq != tp and load_throughput(fs, "parquet") == pq and load_throughput(fs) == tp
    assert sorted(os.listdir(os.path.join(storage, "_exoflow"))) == [
        "calibration",
        "throughput-parquet.json",
        "throughput.json",
    ]
    assert os.listdir(os.path.join(storage, "_exoflow", "calibration")) == []


def test_cost_strategy_replays_or_restores_for_a_reason(spark, storage, wf) -> None:
    """On a slow store (1 MB/s reads and 3 s per read, a remote object store at its worst),
    `wide` is cheap to recompute from a tiny input but slow to read back: replay wins. `slow`
    is expensive to compute (a sleeping UDF) and tiny: restore wins. The store is slow enough
    that a loaded machine (logged compute times inflated several-fold, as on 2 cores running
    two test workers) cannot flip either decision."""
    import json

    from exoflow_spark.engine.cost import Throughput

    os.makedirs(os.path.join(storage, "_exoflow"))
    # a fixed write cost of 3 s: a tiny table's write time (0.25-0.8 s on a quiet machine, up
    # to 4 s on a loaded one) is then read as what it is, the store's fixed cost, not as
    # compute that a replay would repeat
    slow_store = Throughput(
        read_bps=1e6, write_bps=20e6, read_fixed_s=3.0, write_fixed_s=3.0, measured_at=time.time()
    )
    with open(os.path.join(storage, "_exoflow", "throughput.json"), "w") as fh:
        json.dump(slow_store.__dict__, fh)

    calls: Counter[str] = Counter()
    broken = {"on": True}

    @xf.task(checkpoint=True)
    def seeds():
        calls["seeds"] += 1
        return spark.range(20)

    @xf.task(checkpoint=True)
    def wide(df):
        calls["wide"] += 1
        spread = spark.range(200000).withColumnRenamed("id", "j")
        return df.crossJoin(spread).select((F.col("id") * 1000003 + F.col("j")).alias("k"))

    @F.udf("long")
    def slow_square(x):
        time.sleep(1.0)
        return x * x

    @xf.task(checkpoint=True)
    def slow(df):
        calls["slow"] += 1
        return df.select(slow_square("id").alias("sq"))

    @xf.task
    def final(w, s):
        calls["final"] += 1
        if broken["on"]:
            raise RuntimeError("outage")
        return {"wide": w.count(), "sq": s.agg(F.sum("sq")).first()[0]}

    # a JVM's first Delta write spends seconds loading classes, which seeds' logged write time
    # would otherwise count as compute (when this test runs first in its session)
    spark.range(1).write.format("delta").save(os.path.join(storage, "warm-up"))
    sd = seeds.bind()
    dag = final.bind(wide.bind(sd), slow.bind(sd))
    with pytest.raises(xf.TaskFailedError):
        # one task at a time: logged costs are wall-clock, and on 2 cores two concurrent
        # writes would each absorb the other's time
        xf.run(dag, workflow_id=wf, storage=storage, spark=spark, recovery="cost", max_parallel=1)
    plan = xf.explain(dag, workflow_id=wf, storage=storage, recovery="cost")
    assert plan.throughput == slow_store
    wide_d, slow_d = plan.decision("wide"), plan.decision("slow")
    assert wide_d.action == "replay" and wide_d.replay_s < wide_d.restore_s, str(plan)
    assert slow_d.action == "restore" and slow_d.restore_s < slow_d.replay_s, str(plan)
    # the UDF's 20 s of sleeps (over at most 2 cores) less the store's fixed write cost
    assert slow_d.replay_s > 20 * 1.0 / 2 - 3.0
    # wide's input is then needed too: range(20) is cheaper to regenerate than to open
    assert plan.decision("seeds").action == "replay", str(plan)

    broken["on"] = False
    out = xf.run(dag, workflow_id=wf, storage=storage, spark=spark, recovery="cost")
    assert out == {"wide": 20 * 200000, "sq": sum(i * i for i in range(20))}
    # wide's (and seeds') function ran again to rebuild the plan; slow was read from its
    # checkpoint, and nothing was committed twice
    assert calls == Counter(seeds=2, wide=2, slow=1, final=2)
    assert WorkflowStore(storage, wf).read_state().commits["wide"].run == 1
    # the default strategy never executes a committed task again
    assert xf.explain(dag, workflow_id=wf, storage=storage).actions("replay") == []
