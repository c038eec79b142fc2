"""The seeded chaos run in CI: tools/chaos.py with a couple of real driver SIGKILLs.

`make chaos KILLS=200` is the long run (outside CI); this keeps the tool itself working and
its checks meaningful: it must kill drivers for real, verify every workflow, and report that
every check held (exit 0).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import pytest
from drivers import REPO, driver_env

pytestmark = pytest.mark.subprocess


def test_seeded_chaos_run_holds_every_check(tmp_path) -> None:
    # two kills of a pipeline workflow (every run killed until there were two; a run may end
    # before its kill), their final runs, then the checks and a re-run of each
    cmd = [sys.executable, str(REPO / "tools" / "chaos.py"), "--kills", "2", "--seed", "5"]
    cmd += ["--shapes", "pipeline", "--faults", "0", "--kill-rate", "1", "--per-workflow", "2"]
    cmd += ["--record", str(tmp_path / "runs.jsonl")]
    # its own process group: a timeout kills the tool and every driver it started
    proc = subprocess.Popen(
        cmd,
        env=driver_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"the chaos run took over 600 s:\n{out[-4000:]}") from None
    assert proc.returncode == 0, out[-4000:] + err[-3000:]
    assert "every check held" in out, out[-4000:]
    assert json.loads(out.strip().splitlines()[-1]) == {"kills": 2, "failed": 0}
    # each kill was classified, and the checks were made (not skipped)
    assert len(re.findall(r"^  kill +\d+: chaos-\d+ \(pipeline/", out, re.M)) == 2
    made = re.findall(r"^ +(\d+) / +(\d+)  (.+)$", out, re.M)
    checks = {what: (int(held), int(total)) for held, total, what in made}
    for what in (
        "SUCCESSFUL",
        "no committed task executed again",
        "sink rows exactly once, equal to the fault-free result",
        "re-run of the finished workflow executes nothing",
        "re-run writes nothing",
    ):
        held, made = checks.get(what, (0, 0))
        assert held == made >= 1, (what, checks)

    # the run's record, reported again (a long run is taken in recorded parts), here twice
    # as if two parts: the kills and checks summed, each part listed
    record = (tmp_path / "runs.jsonl").read_text()
    (tmp_path / "runs.jsonl").write_text(record + record)
    summarize = [sys.executable, str(REPO / "tools" / "chaos.py"), "--summarize"]
    again = subprocess.run(
        [*summarize, str(tmp_path / "runs.jsonl")], capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert json.loads(again.stdout.strip().splitlines()[-1]) == {"kills": 4, "failed": 0}
    assert again.stdout.count("seed 5, shapes pipeline, commit ") == 2
    summed = {
        what: (int(held), int(total))
        for held, total, what in re.findall(r"^ +(\d+) / +(\d+)  (.+)$", again.stdout, re.M)
    }
    assert summed == {what: (2 * h, 2 * m) for what, (h, m) in checks.items()}
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    bad = subprocess.run(
        [*summarize, str(tmp_path / "bad.jsonl")], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2 and "cannot read the records in" in bad.stderr
    (tmp_path / "partial.jsonl").write_text(record + '{"seed": 6}\n')  # JSON, not a record
    partial = subprocess.run(
        [*summarize, str(tmp_path / "partial.jsonl")], capture_output=True, text=True, timeout=60
    )
    assert partial.returncode == 2 and "is not one --record writes" in partial.stderr
