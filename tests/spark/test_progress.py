"""Live progress: the rendering (pure), the display choice, and real runs sampled live."""

from __future__ import annotations

import io
import time

import pytest

import exoflow_spark as xf
from exoflow_spark.surface import progress
from exoflow_spark.surface.progress import ProgressSnapshot, StageProgress, render_html, render_line


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_render_line_and_html() -> None:
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
    assert render_line(snap) == (
        "[etl] 4/7 tasks (2 restored) | running: silver_join, quarantine | 1 checkpoint "
        "writing (silver_orders) | stage 12: 3/8 tasks | 4.2 s"
    )
    many = ProgressSnapshot("wf", 9, 0, running=tuple("abcde"), failed=("x",), final=True)
    assert render_line(many) == "[wf] 0/9 tasks | running: a, b, c +2 | failed: x | 0.0 s done"
    assert len(render_line(snap, width=40)) == 40 and render_line(snap, width=40).endswith("...")
    html = render_html(snap)
    assert "width:57%" in html and "[etl] 4/7 tasks" in html


def test_choose_display() -> None:
    assert progress.choose_display(False) is None
    assert progress.choose_display("auto", io.StringIO()) is None  # not a terminal: quiet
    assert progress.choose_display(True, io.StringIO()) is not None
    seen: list[ProgressSnapshot] = []
    assert progress.choose_display(seen.append) == seen.append
    with pytest.raises(xf.InvalidOptionError, match="progress="):
        progress.choose_display("loud")  # type: ignore[arg-type]
    tty = FakeTTY()
    display = progress.choose_display("auto", tty)
    assert display is not None
    display(ProgressSnapshot("wf", 2, 1, running=("long_task_name",)))
    display(ProgressSnapshot("wf", 2, 2, final=True))
    out = tty.getvalue()
    # one line rewritten in place: carriage returns, the shorter line padded, a final newline
    assert out.startswith("\r[wf] 1/2 tasks | running: long_task_name")
    second = out.split("\r")[2]
    assert second.startswith("[wf] 2/2 tasks | 0.0 s done") and second.endswith(" \n")
    assert out.count("\n") == 1


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
    lines = [ln for ln in err.splitlines() if ln.startswith("[progress-forced]")]
    assert lines and "1/1 tasks" in lines[-1] and lines[-1].rstrip().endswith("done"), err
    assert "\r" not in err  # not a terminal: whole lines, no in-place rewriting
    xf.run(one.bind(), workflow_id="progress-auto", storage=storage, spark=spark, progress="auto")
    assert "[progress-auto]" not in capsys.readouterr().err
    with pytest.raises(xf.InvalidOptionError):
        xf.run(one.bind(), workflow_id="progress-bad", storage=storage, spark=spark, progress=3)
    with pytest.raises(xf.WorkflowNotFoundError):  # refused before anything was written
        xf.get_status("progress-bad", storage=storage)
