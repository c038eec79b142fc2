"""Live progress: the description (pure), the display choice and tqdm's bar, real runs."""

from __future__ import annotations

import io
import time

import pytest

import exoflow_spark as xf
from exoflow_spark.surface import progress
from exoflow_spark.surface.progress import ProgressSnapshot, StageProgress, describe


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_describe() -> None:
    snap = ProgressSnapshot(
        "etl",
        total=7,
        finished=4,
        running=("silver_join", "quarantine"),
        checkpointing=("silver_orders",),
        restored=2,
        stages=(StageProgress(12, "save at x", 8, 3, 2),),
        elapsed=4.25,
    )
    assert describe(snap) == (
        "running: silver_join, quarantine | 1 checkpoint writing (silver_orders) | "
        "stage 12: 3/8 tasks | 2 restored"
    )
    many = ProgressSnapshot("wf", 9, 0, running=tuple("abcde"), failed=("x",), final=True)
    assert describe(many) == "running: a, b, c +2 | failed: x"
    assert describe(ProgressSnapshot("wf", 1, 1)) == ""


def test_choose_display() -> None:
    assert progress.choose_display(False) is None
    assert progress.choose_display("auto", io.StringIO()) is None  # not a terminal: quiet
    assert progress.choose_display(True, io.StringIO()) is not None
    seen: list[ProgressSnapshot] = []
    assert progress.choose_display(seen.append) == seen.append
    with pytest.raises(xf.InvalidOptionError, match="progress="):
        progress.choose_display("loud")  # type: ignore[arg-type]


def test_tqdm_bar_on_a_terminal() -> None:
    tty = FakeTTY()
    display = progress.choose_display("auto", tty)
    assert display is not None
    display(ProgressSnapshot("wf", 2, 1, running=("long_task_name",)))
    display(ProgressSnapshot("wf", 2, 2, final=True))
    out = tty.getvalue()
    # tqdm's bar rewritten in place on the stream: carriage returns, one final newline
    frames = [f for f in out.split("\r") if f.strip()]
    assert frames[0].startswith("[wf]:  50%|") and "1/2" in frames[0], out
    assert "running: long_task_name" in frames[0]
    assert frames[-1].startswith("[wf]: 100%|") and "2/2" in frames[-1], out
    assert "long_task_name" not in frames[-1]
    assert out.endswith("\n") and out.count("\n") == 1


def test_real_run_sampled_live(spark, storage) -> None:
    @xf.task(checkpoint=True)
    def numbers():
        return xf.get_spark().range(8)

    @xf.task
    def slow(df):
        # a Spark job of about 1.5 s, so a 0.1 s poll sees the task and its stage running
        def nap(rows):
            for r in rows:
                time.sleep(0.35)
                yield r

        return df.rdd.mapPartitions(nap).count()

    snaps: list[ProgressSnapshot] = []
    original = progress.POLL_SECONDS
    progress.POLL_SECONDS = 0.1
    try:
        out = xf.run(
            slow.bind(numbers.bind()),
            workflow_id="progress-live",
            storage=storage,
            spark=spark,
            progress=snaps.append,
        )
    finally:
        progress.POLL_SECONDS = original
    assert out == 8
    assert snaps[-1].final and snaps[-1].finished == snaps[-1].total == 2
    assert all(not s.final for s in snaps[:-1])
    assert any(s.running == ("slow",) for s in snaps)
    staged = [st for s in snaps for st in s.stages]
    assert staged and all(st.num_tasks >= 1 for st in staged)
    assert [s.finished for s in snaps] == sorted(s.finished for s in snaps)


def test_forced_progress_writes_to_stderr_and_auto_stays_quiet(spark, storage, capsys) -> None:
    @xf.task
    def one():
        return 1

    xf.run(one.bind(), workflow_id="progress-forced", storage=storage, spark=spark, progress=True)
    err = capsys.readouterr().err
    frames = [f for f in err.split("\r") if f.startswith("[progress-forced]")]
    assert frames and "1/1" in frames[-1] and "100%" in frames[-1], err
    xf.run(one.bind(), workflow_id="progress-auto", storage=storage, spark=spark, progress="auto")
    assert "[progress-auto]" not in capsys.readouterr().err
    with pytest.raises(xf.InvalidOptionError):
        xf.run(one.bind(), workflow_id="progress-bad", storage=storage, spark=spark, progress=3)
    with pytest.raises(xf.WorkflowNotFoundError):  # refused before anything was written
        xf.get_status("progress-bad", storage=storage)
