"""Driver crashes for real: the job runs in its own process and is SIGKILLed, then re-run.

Checks after each crash-and-resume: the sink holds every row exactly once and equals the
fault-free result; tasks committed before the crash never executed again; the status read
RESUMABLE (not RUNNING) between the crash and the resume.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from chispa import assert_df_equality
from drivers import crash_job, start_driver
from pyspark.sql import functions as F

import exoflow_spark as xf
from exoflow_spark.storage.store import WorkflowStore

ROWS = 20000
pytestmark = pytest.mark.subprocess


def expected(spark):
    df = spark.range(ROWS).select(
        F.col("id").alias("order_id"),
        (F.col("id") % 13).alias("store"),
        (F.col("id") * 7 % 101).alias("amount"),
    )
    df = df.withColumn("big", F.col("amount") > 50)
    return df.groupBy("store", "big").agg(F.sum("amount").alias("amount"), F.count("*").alias("n"))


def launch(
    tmp: Path,
    mode: str,
    crash_at: str | None,
    scenario: str = "pipeline",
    checkpoint_format: str = "delta",
) -> subprocess.Popen:
    (tmp / "counters").mkdir(exist_ok=True)
    return start_driver(
        "crash_job.py",
        "--storage",
        tmp / "exo",
        "--workflow-id",
        "crashy",
        "--sink",
        tmp / "sink",
        "--counter-dir",
        tmp / "counters",
        "--mode",
        mode,
        "--rows",
        ROWS,
        "--scenario",
        scenario,
        "--checkpoint-format",
        checkpoint_format,
        crash_at=crash_at,
    )


def resume_here(
    spark, tmp: Path, mode: str, scenario: str = "pipeline", checkpoint_format: str = "delta"
) -> dict:
    """Resume the killed driver's workflow in this process, on the suite's session: the same
    DAG and arguments as :func:`launch`, without a second driver JVM."""
    return crash_job.run_under(
        spark,
        tmp,
        "crashy",
        mode=mode,
        rows=ROWS,
        scenario=scenario,
        checkpoint_format=checkpoint_format,
    )


def counts(tmp: Path) -> dict[str, int]:
    return {p.name: len(p.read_text().splitlines()) for p in (tmp / "counters").iterdir()}


def check_recovered(spark, tmp: Path, committed_before: set[str], runs_before: dict[str, int]):
    after = counts(tmp)
    for task in committed_before:
        assert after[task] == runs_before[task], f"committed task [{task}] executed again"
    sink = spark.read.format("delta").load(str(tmp / "sink"))
    assert_df_equality(
        sink, expected(spark), ignore_row_order=True, ignore_nullable=True, ignore_column_order=True
    )
    assert xf.get_status("crashy", storage=str(tmp / "exo")) is xf.WorkflowStatus.SUCCESSFUL


DEFAULT_CASES = {
    ("true", "orders:after-commit"),
    ("async", "enriched:during-checkpoint"),
    ("false", "publish:during-sink"),
    ("auto", "enriched:during-checkpoint"),
}


def fault_matrix() -> list:
    """Every crash phase x the checkpoint mode of `enriched` x the checkpoint format; three
    Delta cells run in `make test`, the whole matrix (30 cells) in `make faults` (about 14
    minutes)."""
    cases = []
    for fmt in ("delta", "parquet"):
        for mode in ("false", "true", "async"):
            durable = "orders" if mode == "false" else "enriched"  # a task that checkpoints
            for crash_at in (
                "enriched:before-run",
                "enriched:after-output",
                f"{durable}:during-checkpoint",
                f"{durable}:after-commit",
                "publish:during-sink",
            ):
                default = fmt == "delta" and (mode, crash_at) in DEFAULT_CASES
                marks = [] if default else [pytest.mark.matrix]
                name = f"{mode}-{crash_at}" if fmt == "delta" else f"parquet-{mode}-{crash_at}"
                cases.append(pytest.param(mode, crash_at, fmt, marks=marks, id=name))
    # checkpoint="auto" as the run's policy, in the run's default format (auto's writes are
    # Parquet): enriched, a Python UDF, is measured and written (the test's cost model makes
    # any write worth it); the resume decides from the profile the crashed run saved, or
    # measures again when it crashed before saving one
    for crash_at in (
        "enriched:before-run",
        "enriched:after-output",
        "enriched:during-checkpoint",
        "enriched:after-commit",
        "publish:during-sink",
    ):
        default = ("auto", crash_at) in DEFAULT_CASES
        marks = [] if default else [pytest.mark.matrix]
        cases.append(pytest.param("auto", crash_at, "default", marks=marks, id=f"auto-{crash_at}"))
    for mode, crash_at in sorted(DEFAULT_CASES):
        if not any(c.values[:2] == (mode, crash_at) for c in cases):
            cases.append(pytest.param(mode, crash_at, "delta", id=f"{mode}-{crash_at}"))
    return cases


@pytest.mark.parametrize(("mode", "crash_at", "fmt"), fault_matrix())
def test_crash_point_then_resume(spark, tmp_path: Path, mode: str, crash_at: str, fmt: str) -> None:
    if mode == "auto":  # writes cost nothing: "auto" writes what it measures
        (tmp_path / "exo" / "_exoflow").mkdir(parents=True)
        for name in ("throughput.json", "throughput-parquet.json"):
            (tmp_path / "exo" / "_exoflow" / name).write_text(
                json.dumps({"write_fixed_s": 0.0, "write_bps": 1e15, "measured_at": time.time()})
            )
    proc = launch(tmp_path, mode, crash_at, checkpoint_format=fmt)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, err[-3000:]
    store = WorkflowStore(str(tmp_path / "exo"), "crashy")
    state = store.read_state()
    assert state.status is xf.WorkflowStatus.RESUMABLE
    committed, before = set(state.commits), counts(tmp_path)

    assert resume_here(spark, tmp_path, mode, checkpoint_format=fmt) == {"rows": 26}
    check_recovered(spark, tmp_path, committed, before)
    formats = {
        t: c.checkpoint.format
        for t, c in store.read_state().commits.items()
        if c.checkpoint is not None and c.mode != "stream"
    }
    # every checkpoint of both runs in the format asked; by default, auto's are Parquet and
    # the declared ones (orders, checkpoint=True) Delta
    assert formats == {
        t: fmt if fmt != "default" else "delta" if t == "orders" else "parquet" for t in formats
    }, formats
    if crash_at.endswith("during-checkpoint") and fmt == "delta":
        # the table the killed run wrote and never committed was deleted, not overwritten:
        # the resumed run created it afresh (version 0) without Delta loading it first
        rec = store.read_state().commits[crash_at.split(":")[0]]
        assert rec.checkpoint.version == 0, rec.checkpoint
    if crash_at.startswith("publish"):
        # the sink ran twice (it had not committed) yet its rows landed once
        assert counts(tmp_path)["publish"] == 2


def test_parquet_checkpoint_files_written_before_the_crash_are_never_read(
    spark, tmp_path: Path
) -> None:
    """checkpoint_format="parquet": the driver is killed after `enriched`'s files are written
    but before its commit record. The resumed run writes a new folder and commits that one;
    the orphaned folder is never read, and the sink holds every row once."""
    proc = launch(tmp_path, "async", "enriched:during-checkpoint", checkpoint_format="parquet")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, err[-3000:]
    folders = tmp_path / "exo/workflows/crashy/refs/enriched/_parquet"
    orphans = {p.name for p in folders.iterdir()}
    assert len(orphans) == 1 and list((folders / next(iter(orphans))).glob("*.parquet"))
    state = WorkflowStore(str(tmp_path / "exo"), "crashy").read_state()
    assert "enriched" not in state.commits and "orders" in state.commits
    committed, before = set(state.commits), counts(tmp_path)

    assert resume_here(spark, tmp_path, "async", checkpoint_format="parquet") == {"rows": 26}
    check_recovered(spark, tmp_path, committed, before)
    rec = WorkflowStore(str(tmp_path / "exo"), "crashy").read_state().commits["enriched"]
    assert rec.checkpoint.format == "parquet"
    used = rec.checkpoint.path.rsplit("/", 1)[-1]
    assert used not in orphans and (folders / used).is_dir()
    assert not (tmp_path / "exo/workflows/crashy/refs/enriched/_delta_log").exists()


@pytest.mark.parametrize(
    "crash_at",
    [
        # in `make test`: the sample seen but not committed (a new one is drawn and every
        # observer rolled back), its observer committed, the sink half-written
        "sample:after-output",
        "stats:after-commit",
        "publish:during-sink",
        # in `make faults` too
        pytest.param("sample:during-checkpoint", marks=pytest.mark.matrix),
        pytest.param("sample:after-commit", marks=pytest.mark.matrix),
    ],
)
def test_nondeterministic_sample_is_published_once_whatever_the_crash(
    spark, tmp_path: Path, crash_at: str
) -> None:
    proc = launch(tmp_path, "async", crash_at, scenario="sampling")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, err[-3000:]
    resume_here(spark, tmp_path, "async", scenario="sampling")

    storage = str(tmp_path / "exo")
    sink = spark.read.format("delta").load(str(tmp_path / "sink"))
    committed = xf.get_output("crashy", task="sample", storage=storage, spark=spark)
    stats = xf.get_output("crashy", task="stats", storage=storage, spark=spark).first()
    # the sink holds exactly the committed sample, each row once ...
    ids = [r.id for r in sink.select("id").collect()]
    assert len(ids) == len(set(ids))
    assert sorted(ids) == sorted(r.id for r in committed.collect())
    # ... and the statistics published with it, and committed, describe that same sample
    assert {(r.n, r.s) for r in sink.select("n", "s").distinct().collect()} == {
        (len(ids), sum(ids))
    }
    assert (stats.n, stats.s) == (len(ids), sum(ids))
