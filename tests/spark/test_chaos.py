"""The seeded chaos run in CI: tools/chaos.py with a couple of real driver SIGKILLs.

`make chaos KILLS=200` is the long run (outside CI); this keeps the tool itself working and
its checks meaningful: it must kill drivers for real, verify every workflow, and report that
every check held (exit 0).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from drivers import REPO, driver_env

pytestmark = pytest.mark.subprocess


def test_seeded_chaos_run_holds_every_check() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "tools" / "chaos.py"),
            "--kills",
            "2",
            "--seed",
            "5",
            "--shapes",
            "pipeline",
            "--faults",
            "0",
        ],
        env=driver_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = proc.stdout
    assert proc.returncode == 0, out[-4000:] + proc.stderr[-3000:]
    assert "every check held" in out, out[-4000:]
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary == {"kills": 2, "failed": 0}
    # each kill was classified, and the checks were made (not skipped)
    assert len(re.findall(r"^  kill +\d+: ", out, re.M)) == 2
    made = re.findall(r"^ +(\d+) / +(\d+)  (.+)$", out, re.M)
    checks = {what: (int(held), int(total)) for held, total, what in made}
    assert checks["re-run of the finished workflow executes nothing"][1] >= 1
    assert checks["sink rows exactly once, equal to the fault-free result"][1] >= 1
    assert all(held == total for held, total in checks.values()), checks
