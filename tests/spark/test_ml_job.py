"""The ML training job: every checkpoint mode trains the same model, and a driver killed in
mid-training resumes from the latest committed model without re-running committed epochs."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
from drivers import REPO, run_driver
from drivers.jobs import load_job

import exoflow_spark as xf
from exoflow_spark.core.status import WorkflowStatus
from exoflow_spark.storage.store import WorkflowStore

EPOCHS = 3
SIZE = [
    *("--users", "400", "--events", "4000", "--epochs", str(EPOCHS)),
    *("--checkpoint-every", "2", "--max-iter", "2"),
]


def run_job(job, capsys, storage: str, wf: str, mode: str) -> dict:
    argv = ["--workflow-id", wf, "--storage", storage, "--checkpoint", mode, *SIZE]
    assert job.main(argv) == 0
    return json.loads(capsys.readouterr().out)


def executed(storage: str, wf: str, run: int) -> set[str]:
    """Tasks that executed in run ``run``, read from the workflow log: commit records made by
    that run plus the completion events of tasks that kept no checkpoint."""
    store = WorkflowStore(storage, wf)
    state = store.read_state()
    committed = {t for t, rec in state.commits.items() if rec.run == run}
    done = {e.task for e in store.events() if e.kind == "task_done" and e.run == run}
    return committed | done


def assert_same_model(a: dict, b: dict) -> None:
    assert a["epoch"] == b["epoch"] == EPOCHS
    assert a["intercept"] == pytest.approx(b["intercept"], rel=1e-6, abs=1e-9)
    assert a["coefficients"] == pytest.approx(b["coefficients"], rel=1e-6, abs=1e-9)


@pytest.fixture(scope="module")
def ml_job():
    return load_job("ml_training")


@pytest.fixture(scope="module")
def mode_runs(spark, tmp_path_factory, ml_job) -> tuple[str, dict[str, dict]]:
    """One fault-free run per checkpoint mode (on the suite's session): storage, results."""
    storage = str(tmp_path_factory.mktemp("ml") / "exo")
    results = {}
    for mode in ml_job.MODES:
        argv = ["--workflow-id", f"ml-{mode}", "--storage", storage, "--checkpoint", mode, *SIZE]
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert ml_job.main(argv) == 0
        results[mode] = json.loads(out.getvalue())
    return storage, results


def test_every_checkpoint_mode_trains_the_same_model(spark, capsys, ml_job, mode_runs) -> None:
    storage, results = mode_runs
    for mode, out in results.items():
        assert out["status"] == "SUCCESSFUL", mode
        assert_same_model(out, results["none"])
    # the model learned the label (about 0.85 on this data; chance is about 0.5)
    assert results["none"]["accuracy"] > 0.75 and results["none"]["rows"] == 400

    # what each mode made durable, read back from the log
    def commits(mode: str) -> set[str]:
        return set(WorkflowStore(storage, f"ml-{mode}").read_state().commits)

    assert commits("none") == {"evaluate"}
    assert {"train_e2", "train_e3", "features", "evaluate"} <= commits("selective")
    assert not {"train_e1", "augment_e1", "augment_e3"} & commits("selective")
    assert {"train_e1", "train_e3", "augment_e2", "features"} <= commits("sync")
    # the sync checkpoint of epoch 2's model is a Delta table under the workflow storage
    state = WorkflowStore(storage, "ml-sync").read_state()
    delta = state.commits["train_e2"].checkpoint
    model = spark.read.format("delta").option("versionAsOf", delta.version).load(delta.path)
    assert model.first()["epoch"] == 2

    # running a finished workflow again executes nothing and returns the same model
    again = run_job(ml_job, capsys, storage, "ml-selective", "selective")
    assert_same_model(again, results["selective"])
    assert executed(storage, "ml-selective", 2) == set()


@pytest.mark.subprocess
def test_crash_mid_training_resumes_from_the_committed_model(
    spark, tmp_path, capsys, ml_job, mode_runs
) -> None:
    storage, wf = str(tmp_path / "exo"), "ml-crash"
    argv = ["--workflow-id", wf, "--storage", storage, "--checkpoint", "selective", *SIZE]
    proc = run_driver(
        REPO / "jobs" / "ml_training.py",
        "--master",
        "local[2]",
        *argv,
        crash_at="train_e3:before-run",
    )
    assert proc.returncode == -9, proc.stderr[-3000:]  # SIGKILLed at the crash point
    assert xf.get_status(wf, storage=storage) == WorkflowStatus.RESUMABLE
    before = executed(storage, wf, 1)
    # epochs 1 and 2 ran; the model of epoch 2 is committed (sync), epoch 3 never started
    assert {"train_e1", "train_e2", "augment_e1", "augment_e2"} <= before
    assert "train_e3" not in before
    committed_before = set(WorkflowStore(storage, wf).read_state().commits)
    assert "train_e2" in committed_before and "train_e1" not in committed_before

    resumed = run_job(ml_job, capsys, storage, wf, "selective")
    assert resumed["status"] == "SUCCESSFUL"
    after = executed(storage, wf, 2)
    assert not committed_before & after, "a committed task executed again"
    # epochs before the committed model are not needed: they do not run again either
    assert not {"train_e1", "augment_e1", "augment_e2"} & after
    assert {"train_e3", "augment_e3", "evaluate"} <= after

    assert_same_model(resumed, mode_runs[1]["none"])  # the fault-free model
