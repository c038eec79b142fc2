"""An invalid workflow id given to run is refused before anything is written (the id
validation itself is unit-tested in tests/unit/test_ids.py)."""

from __future__ import annotations

import pytest

import exoflow_spark as xf


def test_invalid_workflow_id_writes_nothing(tmp_path, spark) -> None:
    @xf.task
    def f():
        return 1

    root = tmp_path / "exo"
    with pytest.raises(xf.InvalidIdError, match="not allowed"):
        xf.run(f.bind(), workflow_id="../escape", storage=str(root), spark=spark)
    assert not root.exists()
    assert not (tmp_path / "escape").exists()
