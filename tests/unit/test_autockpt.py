"""checkpoint="auto" without Spark: the decision rule, the profile store, the run policy."""

from __future__ import annotations

import json
import logging
import time

import pytest

import exoflow_spark as xf
from exoflow_spark.core.dag import Dag
from exoflow_spark.core.options import checkpoint_policy
from exoflow_spark.engine import autockpt
from exoflow_spark.engine.autockpt import (
    MIN_REPLAY_ENV,
    MIN_REPLAY_S,
    PlanStats,
    ProfileStore,
    TaskProfile,
    min_replay_s,
    new_profile,
    profile_key,
)
from exoflow_spark.engine.cost import THROUGHPUT_MAX_AGE_SECONDS, Throughput
from exoflow_spark.storage import layout
from exoflow_spark.storage.logfs import LocalLogFS

TP = Throughput(write_bps=100e6, write_fixed_s=0.5)


def decide_before(*args, **kwargs):
    """The rule without the floor (tested on its own below)."""
    kwargs.setdefault("min_replay_s", 0.0)
    return autockpt.decide_before(*args, **kwargs)


def decide_measured(*args, **kwargs):
    kwargs.setdefault("min_replay_s", 0.0)
    return autockpt.decide_measured(*args, **kwargs)


def profile(compute_s: float, size: int = 1000, write_s: float | None = None) -> TaskProfile:
    return new_profile(
        key=profile_key("t", "c0de"),
        task="t",
        code_fingerprint="c0de",
        own_s=compute_s,
        executor_s=2 * compute_s,
        rows=10,
        size=size,
        workflow_id="day-1",
        write_s=write_s,
    )


def test_a_profile_decides_before_running() -> None:
    dear = decide_before("t", profile=profile(3.0), stats=None, upstream_replay_s=0, throughput=TP)
    assert (dear.action, dear.source, dear.checkpoint) == ("write", "profile", True)
    assert "day-1" in dear.reason
    cheap = decide_before("t", profile=profile(0.1), stats=None, upstream_replay_s=0, throughput=TP)
    assert (cheap.action, cheap.source, cheap.checkpoint) == ("fuse", "profile", False)
    # inputs that would be lost too count: a cheap task on an expensive lazy chain is written
    chained = decide_before(
        "t", profile=profile(0.1), stats=None, upstream_replay_s=5.0, throughput=TP
    )
    assert chained.action == "write" and chained.replay_s == pytest.approx(5.1)
    # the wall time of an async write (shared with the run's jobs) is not the write's cost:
    # the root's cost model prices it, and the consumers' reading it back (a fused output is
    # never read: 0.15 s + 1000 bytes at 200 MB/s, the assumed read costs)
    shared = decide_before(
        "t", profile=profile(3.0, write_s=40.0), stats=None, upstream_replay_s=0, throughput=TP
    )
    assert shared.action == "write"
    assert shared.write_s == pytest.approx(0.5 + 1000 / 100e6 + 0.15 + 1000 / 200e6)
    assert "write and read back 0.65s" in shared.reason
    big = decide_before(
        "t", profile=profile(3.0, size=10**9), stats=None, upstream_replay_s=0, throughput=TP
    )
    assert big.action == "fuse"  # 10.5 s to write 1 GB > 3 s to recompute it


def test_a_profile_weighs_the_recompute_by_the_run_left_after_the_commit() -> None:
    """A checkpoint only helps a crash that lands after it commits: a profile of a finished
    run knows what was left of it when the output was ready, and the recompute it insures is
    weighted by that share of the run (the tail less the write's own wall time)."""
    from dataclasses import replace

    def timed(tail_s: float | None, run_s: float | None = 30.0, write_s: float | None = 1.0):
        return replace(profile(8.0, write_s=write_s), tail_s=tail_s, run_s=run_s)

    def decide(p: TaskProfile, upstream: float = 0.0):
        return autockpt.decide_before(
            "t", profile=p, stats=None, upstream_replay_s=upstream, throughput=TP
        )

    # an early or middle stage: most of the run is left, the write pays
    early = decide(timed(tail_s=16.0))
    assert early.action == "write"
    assert "x 0.50 of the run after its commit = 4.00s" in early.reason
    # the last expensive stage before a 2 s tail: 8 s x (2 - 1) / 30 = 0.27 s < 0.5 s write
    # and 0.15 s reading it back
    last = decide(timed(tail_s=2.0))
    assert last.action == "fuse" and "= 0.27s < write and read back 0.65s" in last.reason
    # a tail shorter than the write: no crash could find the checkpoint committed
    assert decide(timed(tail_s=0.5)).action == "fuse"
    # the write's latency is the cost model's when the profile has no write time
    assert "x 0.05 of" in decide(timed(tail_s=2.0, write_s=None)).reason
    # with its lost inputs at stake too, the same tail can pay
    assert decide(timed(tail_s=2.0), upstream=40.0).action == "write"
    # the weight never lifts a recompute under the floor
    assert (
        "under the 5s worth insuring" in decide(replace(timed(tail_s=29.0), compute_s=3.0)).reason
    )
    # a profile of a run that did not finish (no tail): every crash counts, as before
    unknown = decide(timed(tail_s=None, run_s=None))
    assert unknown.action == "write" and "of the run" not in unknown.reason

    # an output computed after a profiled one is ready later: a cheap stage over the fused
    # expensive one (its recompute the stage's too) is weighted by the input's tail
    tail = autockpt.RunTail.of(timed(tail_s=2.0))
    cheap = PlanStats(opaque=0, shuffles=0, size_bytes=1000)
    over = autockpt.decide_before(
        "u", profile=None, stats=cheap, upstream_replay_s=8.0, throughput=TP, tail=tail
    )
    assert over.action == "fuse" and "x 0.05 of the run" in over.reason, over.reason
    alone = autockpt.decide_before(
        "u", profile=None, stats=cheap, upstream_replay_s=8.0, throughput=TP
    )
    assert alone.action == "write"
    # what an output computed after it inherits: the tail less the write (the run went on
    # for the write; a run that does not write it does not)
    after = autockpt.RunTail.of(timed(tail_s=2.0), after_write=True)
    assert (after.tail_s, after.run_s) == (1.0, 30.0) and tail.tail_s == 2.0
    # and a measurement made now likewise; the shortest tail known wins
    later = autockpt.RunTail.of(timed(tail_s=1.0))
    assert autockpt.earliest_tail(tail, None, later) == later
    assert autockpt.earliest_tail(None, None) is None
    measured = autockpt.decide_measured(
        "u", measured_s=8.0, size=1000, throughput=TP, executor_s=None, tail=tail
    )
    assert measured.action == "keep" and "of the run after its commit" in measured.reason


def test_a_profiles_tail_round_trips_and_is_dropped_without_its_run(tmp_path) -> None:
    from dataclasses import replace

    store = ProfileStore(LocalLogFS(str(tmp_path)))
    p = replace(profile(2.0), tail_s=3.5, run_s=20.0)
    store.save(p)
    assert store.load(p.key) == p
    # a profile of the release before (no tail fields) still reads, with no tail
    path = tmp_path / layout.profile_file(p.key)
    doc = json.loads(path.read_text())
    del doc["tail_s"], doc["run_s"]
    path.write_text(json.dumps(doc))
    assert store.load(p.key) == replace(p, tail_s=None, run_s=None)
    # a tail without the run's length cannot be weighed: both dropped
    doc["tail_s"] = 3.5
    path.write_text(json.dumps(doc))
    assert store.load(p.key) == replace(p, tail_s=None, run_s=None)


def test_without_a_profile_python_code_is_measured_and_jvm_plans_estimated() -> None:
    udf = decide_before(
        "t", profile=None, stats=PlanStats(1, 0, 100), upstream_replay_s=0, throughput=TP
    )
    assert (udf.action, udf.source) == ("measure", "measured")
    narrow = decide_before(
        "t", profile=None, stats=PlanStats(0, 0, 50_000_000), upstream_replay_s=0, throughput=TP
    )
    assert (narrow.action, narrow.source) == ("fuse", "estimate")
    shuffled = decide_before(
        "t",
        profile=None,
        stats=PlanStats(0, 3, 40_000_000_000),
        upstream_replay_s=0,
        throughput=Throughput(write_bps=1e9, write_fixed_s=0.5),
    )
    assert (shuffled.action, shuffled.source) == ("write", "estimate")
    unknown = decide_before("t", profile=None, stats=None, upstream_replay_s=0, throughput=TP)
    assert unknown.action == "measure"
    rule = decide_before(
        "t", profile=profile(0.0), stats=None, upstream_replay_s=0, throughput=TP, must_write="x"
    )
    assert (rule.action, rule.source) == ("write", "rule")


def test_a_joins_product_estimate_is_bounded_by_what_it_reads() -> None:
    """Catalyst sizes a 10 MB join without column statistics at 480 GB: priced by that, its
    recompute was 2880 s, and every stage over it was written whatever it cost. What the plan
    reads bounds it (twice its leaves: a stage that adds columns grows its input)."""
    join = PlanStats(0, 1, 480_000_000_000, input_bytes=10_000_000)
    assert join.work_bytes == 20_000_000
    d = decide_before("t", profile=None, stats=join, upstream_replay_s=0, throughput=TP)
    assert d.action == "fuse" and d.replay_s == pytest.approx(0.02 + 0.1)
    assert d.bytes == 20_000_000 and "over ~20000000 bytes" in d.reason
    assert PlanStats(0, 0, 30, input_bytes=1000).work_bytes == 30  # smaller than its input
    assert PlanStats(0, 0, None, input_bytes=1000).work_bytes == 1000
    assert PlanStats(0, 0, 500).work_bytes == 500  # leaves unknown: Catalyst's size


def test_the_functions_own_run_counts_in_the_estimate() -> None:
    """A task whose function runs Spark actions itself (a training loop) and returns a small
    plan: the plan alone says it is free to recompute, its 3 s of running say otherwise."""
    small = PlanStats(0, 0, 1000)
    plan_only = decide_before("t", profile=None, stats=small, upstream_replay_s=0, throughput=TP)
    assert plan_only.action == "fuse"
    trained = decide_before(
        "t", profile=None, stats=small, upstream_replay_s=0, throughput=TP, eager_s=3.0
    )
    assert (trained.action, trained.source) == ("write", "estimate")
    assert trained.replay_s == pytest.approx(3.0, abs=0.01)
    assert "plus 3.00s its function ran" in trained.reason


def test_a_measurement_decides_write_or_keep() -> None:
    yes = decide_measured("t", measured_s=2.0, size=1000, throughput=TP, executor_s=3.5)
    assert (yes.action, yes.source, yes.checkpoint) == ("write", "measured", True)
    assert "executor 3.50s" in yes.reason
    no = decide_measured("t", measured_s=0.2, size=1000, throughput=TP, executor_s=None)
    assert (no.action, no.checkpoint) == ("keep", False)
    event = no.to_event()
    assert set(event) >= {"checkpoint", "action", "source", "replay_s", "write_s", "bytes"}


def test_recompute_under_the_floor_is_replayed_not_insured() -> None:
    """3 s of recompute against a 0.5 s write: the ratio says write, the floor (5 s at risk)
    says a crash may redo it; with 3 s of lost inputs on top it is worth insuring."""
    assert MIN_REPLAY_S == 5.0
    rule = autockpt.decide_before
    alone = rule("t", profile=profile(3.0), stats=None, upstream_replay_s=0, throughput=TP)
    assert (alone.action, alone.checkpoint) == ("fuse", False)
    assert "under the 5s worth insuring" in alone.reason
    chained = rule("t", profile=profile(3.0), stats=None, upstream_replay_s=3.0, throughput=TP)
    assert chained.action == "write" and chained.replay_s == pytest.approx(6.0)
    trained = rule(
        "t",
        profile=None,
        stats=PlanStats(0, 0, 1000),
        upstream_replay_s=0,
        throughput=TP,
        eager_s=3.0,
    )
    assert trained.action == "fuse"
    assert (
        rule(
            "t",
            profile=None,
            stats=PlanStats(0, 0, 1000),
            upstream_replay_s=2.5,
            throughput=TP,
            eager_s=3.0,
        ).action
        == "write"
    )
    # measured now: the cached inputs a crash loses count (replay_s), not only the job's time
    kept = autockpt.decide_measured("t", measured_s=2.0, size=1000, throughput=TP, executor_s=None)
    assert (kept.action, kept.replay_s) == ("keep", 2.0)
    over = autockpt.decide_measured(
        "t", measured_s=2.0, size=1000, throughput=TP, executor_s=None, replay_s=6.0
    )
    assert (over.action, over.replay_s) == ("write", 6.0)
    assert "6.00s with its cached inputs" in over.reason
    # the floor never overrides a write that costs more than the recompute
    big = autockpt.decide_measured("t", measured_s=9.0, size=10**10, throughput=TP, executor_s=None)
    assert big.action == "keep"


def test_the_floor_from_the_environment_is_checked() -> None:
    assert min_replay_s({}) == MIN_REPLAY_S
    assert min_replay_s({MIN_REPLAY_ENV: " "}) == MIN_REPLAY_S
    assert min_replay_s({MIN_REPLAY_ENV: "0"}) == 0.0
    assert min_replay_s({MIN_REPLAY_ENV: "12.5"}) == 12.5
    for bad in ("fast", "-1", "nan", "inf"):
        with pytest.raises(xf.InvalidOptionError, match=MIN_REPLAY_ENV) as err:
            min_replay_s({MIN_REPLAY_ENV: bad})
        assert repr(bad) in str(err.value) and "unset it" in str(err.value)


def test_a_bad_floor_fails_an_auto_run_before_anything_is_written(tmp_path, monkeypatch) -> None:
    @xf.task
    def one():
        return 1

    monkeypatch.setenv(MIN_REPLAY_ENV, "soon")
    with pytest.raises(xf.InvalidOptionError, match=MIN_REPLAY_ENV):
        xf.run(one.bind(), workflow_id="w", storage=str(tmp_path / "root"), checkpoint="auto")
    assert not (tmp_path / "root").exists()


def test_the_cache_copies_from_the_environment_are_checked(tmp_path, monkeypatch) -> None:
    from exoflow_spark.spark.session import CACHE_REPLICAS_ENV, cache_replicas

    assert cache_replicas({}) == 2
    assert cache_replicas({CACHE_REPLICAS_ENV: " 1 "}) == 1
    assert cache_replicas({CACHE_REPLICAS_ENV: "2"}) == 2
    for bad in ("3", "0", "two"):
        with pytest.raises(xf.InvalidOptionError, match=CACHE_REPLICAS_ENV) as err:
            cache_replicas({CACHE_REPLICAS_ENV: bad})
        assert repr(bad) in str(err.value) and "unset it" in str(err.value)

    @xf.task
    def one():
        return 1

    monkeypatch.setenv(CACHE_REPLICAS_ENV, "many")  # any run, before anything is written
    with pytest.raises(xf.InvalidOptionError, match=CACHE_REPLICAS_ENV):
        xf.run(one.bind(), workflow_id="w", storage=str(tmp_path / "root"))
    assert not (tmp_path / "root").exists()


def test_explain_prices_a_diamonds_shared_ancestor_once(tmp_path, monkeypatch) -> None:
    """``explain`` previews each "auto" task's decision from its profile; a task below a
    diamond of fused tasks counts the shared ancestor's recompute once, as a run does."""
    monkeypatch.setenv(MIN_REPLAY_ENV, "0")
    auto = {"checkpoint": "auto"}

    @xf.task(**auto)
    def source():
        return 0

    @xf.task(**auto)
    def left(x):
        return x

    @xf.task(**auto)
    def right(x):
        return x

    @xf.task(**auto)
    def both(x, y):
        return x

    @xf.task
    def out(x):
        return x

    shared = source.bind()
    dag = out.bind(both.bind(left.bind(shared), right.bind(shared)))
    record = Dag(dag).to_record()
    root = str(tmp_path / "root")
    profiles = ProfileStore(LocalLogFS(root))
    compute = {"source": 3.0, "left": 1.0, "right": 1.0, "both": 0.5}
    for t in record["tasks"]:
        if t["id"] in compute:  # outputs far dearer to write than to recompute: all fused
            key = profile_key(t["id"], t["code_fingerprint"])
            profiles.save(
                new_profile(
                    key=key,
                    task=t["id"],
                    code_fingerprint=t["code_fingerprint"],
                    own_s=compute[t["id"]],
                    executor_s=None,
                    rows=1,
                    size=10**13,
                    workflow_id="day-1",
                )
            )
    preview = {e["task"]: e for e in xf.explain(dag, workflow_id="w", storage=root).auto}
    assert {t: e["action"] for t, e in preview.items()} == dict.fromkeys(compute, "fuse")
    assert "inputs' recompute 3.00s" in preview["left"]["reason"]
    # source once, left and right: 5 s (the branches' sum, 8 s, counted source twice)
    assert "compute 0.50s + inputs' recompute 5.00s" in preview["both"]["reason"]


def test_profile_store_round_trip_and_keys(tmp_path) -> None:
    store = ProfileStore(LocalLogFS(str(tmp_path)))
    p = profile(1.5)
    assert store.load(p.key) is None
    store.save(p)
    assert store.load(p.key) == p
    # keyed by task id and code: another task or another code version has no profile
    assert profile_key("t", "c0de") != profile_key("u", "c0de")
    assert profile_key("t", "c0de") != profile_key("t", "c0df")
    assert (tmp_path / layout.profile_file(p.key)).is_file()


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"\xff\xfe",
        json.dumps({"kind": "something-else", "schema": 1}).encode(),
        json.dumps({"kind": "exoflow-task-profile", "schema": 99, "key": "k"}).encode(),
        None,  # a valid profile of another key: foreign
        json.dumps({"kind": "exoflow-task-profile", "schema": 1, "compute_s": "fast"}).encode(),
    ],
)
def test_corrupt_or_foreign_profiles_are_ignored_with_a_warning(tmp_path, caplog, content) -> None:
    store = ProfileStore(LocalLogFS(str(tmp_path)))
    p = profile(1.0)
    path = tmp_path / layout.profile_file(p.key)
    path.parent.mkdir(parents=True)
    if content is None:
        other = profile(1.0).__class__(**{**p.__dict__, "key": profile_key("x", "y")})
        content = json.dumps(other.to_json()).encode()
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING):
        assert store.load(p.key) is None
    assert "ignoring task profile" in caplog.text


def test_the_run_policy_applies_to_undeclared_tasks_only() -> None:
    @xf.task
    def a():
        return 1

    @xf.task(checkpoint=False)
    def b(x):
        return x

    @xf.task(checkpoint=True)
    def c(x):
        return x

    @xf.task
    def d(x):
        return x

    out = d.bind(c.bind(b.options(name="b2").bind(a.options(max_retries=1).bind())))
    dag = Dag(out, checkpoint_policy=checkpoint_policy("auto"))
    modes = {dag.id_of(n): dag.mode_of(n) for n in dag}
    assert modes == {"a": "auto", "b2": False, "c": True, "d": "auto"}
    assert {t["id"]: t["checkpoint"] for t in dag.to_record()["tasks"]}["a"] == "auto"
    plain = Dag(out)
    assert {plain.id_of(n): plain.mode_of(n) for n in plain}["a"] is False
    # .options(checkpoint=...) declares it too
    n = a.options(checkpoint="async").bind()
    assert Dag(n, checkpoint_policy="auto").mode_of(n) == "async"


def test_an_unknown_policy_is_refused_before_anything_runs(tmp_path) -> None:
    @xf.task
    def a():
        return 1

    with pytest.raises(xf.InvalidOptionError) as info:
        xf.run(a.bind(), workflow_id="w", storage=str(tmp_path), checkpoint="smart")
    msg = str(info.value)
    assert "checkpoint='smart'" in msg and "'auto'" in msg and "'none'" in msg
    assert not list(tmp_path.iterdir())  # nothing written, no session needed
    with pytest.raises(xf.InvalidOptionError):
        checkpoint_policy(True)


def test_profiles_carry_a_timestamp() -> None:
    assert profile(1.0).measured_at <= time.time()


def test_cli_and_job_flags_name_the_policies(capsys) -> None:
    import argparse

    from exoflow_spark.surface.cli import build_parser
    from exoflow_spark.surface.entry import add_checkpoint_policy

    args = build_parser().parse_args(["run", "flows.py:nightly", "--checkpoint", "auto"])
    assert args.checkpoint == "auto"
    assert build_parser().parse_args(["run", "flows.py:nightly"]).checkpoint is None
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "flows.py:nightly", "--checkpoint", "smart"])
    assert "'auto'" in capsys.readouterr().err  # argparse names the choices
    job = argparse.ArgumentParser()
    add_checkpoint_policy(job)
    assert job.parse_args([]).checkpoint_policy == "none"
    assert job.parse_args(["--checkpoint-policy", "auto"]).checkpoint_policy == "auto"


@pytest.mark.parametrize(
    ("tp", "mode", "said"),
    [
        # calibrated cheap writes (local disk, HDFS): by the job that computes the output
        (Throughput(write_fixed_s=0.44, measured_at=1.0), "sync", "0.44s, at most 1s"),
        (Throughput(write_fixed_s=1.0, measured_at=1.0), "sync", "1.00s, at most 1s"),
        # latency-bound writes (an object store): in the background
        (Throughput(write_fixed_s=3.2, measured_at=1.0), "async", "3.20s, over 1s"),
        # not calibrated: the assumed model says nothing of this root
        (Throughput(write_fixed_s=0.4), "async", "not measured yet"),
    ],
)
def test_a_profiled_write_is_sync_only_where_the_root_writes_cheaply(tp, mode, said) -> None:
    got, why = autockpt.write_mode(tp)
    assert got == mode and said in why, why


def test_a_cost_model_is_fresh_for_a_week() -> None:
    now = time.time()
    assert not Throughput().fresh  # assumed, never measured
    assert Throughput(measured_at=now - 60).fresh
    assert Throughput(measured_at=now - THROUGHPUT_MAX_AGE_SECONDS + 60).fresh
    assert not Throughput(measured_at=now - THROUGHPUT_MAX_AGE_SECONDS - 60).fresh


@pytest.mark.parametrize(
    ("age_s", "said"),
    [
        (None, "the run measures it first: not measured yet"),
        (THROUGHPUT_MAX_AGE_SECONDS + 60, "first: measured over a week ago"),
        (60, "written sync by the job that computes it: the root's fixed cost"),
    ],
    ids=["never-measured", "week-old", "fresh"],  # the same on every xdist worker
)
def test_explain_says_how_a_write_is_made_only_from_a_fresh_cost_model(
    tmp_path, monkeypatch, age_s, said
) -> None:
    """A run measures a root whose cost model is missing or over a week old before its first
    write (sync on cheap storage, async on latency-bound): ``explain`` says which only when
    the model it has is the one the run will use."""
    monkeypatch.setenv(MIN_REPLAY_ENV, "0")

    @xf.task(checkpoint="auto")
    def heavy():
        return 0

    @xf.task(checkpoint="auto")
    def new():
        return 0

    @xf.task
    def out(x, y):
        return x

    dag = out.bind(heavy.bind(), new.bind())
    [fp] = [t["code_fingerprint"] for t in Dag(dag).to_record()["tasks"] if t["id"] == "heavy"]
    root = tmp_path / "root"
    fs = LocalLogFS(str(root))
    ProfileStore(fs).save(  # far dearer to recompute than to write: written
        new_profile(
            key=profile_key("heavy", fp),
            task="heavy",
            code_fingerprint=fp,
            own_s=60.0,
            executor_s=None,
            rows=1,
            size=1000,
            workflow_id="day-1",
        )
    )
    if age_s is not None:  # this format's model: auto writes Parquet
        measured_at = time.time() - age_s
        (root / layout.throughput_file("parquet")).write_text(
            json.dumps({"write_fixed_s": 0.3, "write_bps": 2e8, "measured_at": measured_at})
        )
    preview = {e["task"]: e for e in xf.explain(dag, workflow_id="w", storage=str(root)).auto}
    assert preview["heavy"]["action"] == "write", preview
    assert said in preview["heavy"]["reason"], preview["heavy"]
    if age_s is None or "week" in said:
        assert "written async" not in preview["heavy"]["reason"]
        assert (
            "measured by the job that writes it or as it is computed into the cache"
            in (preview["new"]["reason"])
        )
    else:
        assert (
            "measured by the job that writes it (the root's writes are cheap)"
            in (preview["new"]["reason"])
        )
