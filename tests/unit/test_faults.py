"""The hold point: a thread waits at a named phase until the test lets it go."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from exoflow_spark.core.faults import hold_point


def test_hold_point_waits_for_go_and_ignores_other_tasks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXOFLOW_HOLD_AT", "sample:before-async-write")
    monkeypatch.setenv("EXOFLOW_HOLD_DIR", str(tmp_path))
    hold_point("other", "before-async-write")  # another task: returns at once
    hold_point("sample", "after-commit")  # another phase: returns at once
    assert list(tmp_path.iterdir()) == []

    thread = threading.Thread(target=hold_point, args=("sample", "before-async-write"))
    thread.start()
    held = tmp_path / "sample.before-async-write.held"
    deadline = time.monotonic() + 10
    while not held.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert held.exists()
    time.sleep(0.2)
    assert thread.is_alive()  # still waiting
    (tmp_path / "sample.before-async-write.go").write_text("")
    thread.join(5)
    assert not thread.is_alive()
