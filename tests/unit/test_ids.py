"""Ids are validated before they touch a path."""

from __future__ import annotations

import os

import pytest

import exoflow_spark as xf
from exoflow_spark.core.ids import validate_id


@pytest.mark.parametrize("good", ["a", "sales-2026-11-24", "A_b.c-9", "x" * 128])
def test_valid_ids(good: str) -> None:
    assert validate_id(good) == good


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "..",
        "../x",
        "a/../b",
        "a/b",
        "a\\b",
        "/abs",
        ".hidden",
        "x" * 129,
        "s3a://b/k",
        "a b",
        "a;drop",
        "a`b",
        "a'b",
        "é",
        None,
        5,
    ],
)
def test_invalid_ids_are_refused(bad: object) -> None:
    with pytest.raises(xf.InvalidIdError):
        validate_id(bad)


def test_a_storage_root_that_is_a_file_is_named(tmp_path) -> None:
    from exoflow_spark.storage.store import WorkflowStore

    f = tmp_path / "notes.txt"
    f.write_text("x")
    with pytest.raises(xf.StorageRootError, match=r"notes\.txt' is a file, not a directory"):
        WorkflowStore(str(f), "wf")
    with pytest.raises(xf.StorageRootError, match=r"lies under the file .*notes\.txt"):
        WorkflowStore(str(f / "exo"), "wf")
    assert f.read_text() == "x"


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_a_storage_root_where_no_folder_can_be_made_is_named() -> None:
    from exoflow_spark.core.records import DagRecord
    from exoflow_spark.storage.store import WorkflowStore

    store = WorkflowStore("/proc/exoflow-test-root", "wf")
    assert not store.read_state().exists  # reading an absent root is fine: nothing there
    with pytest.raises(xf.StorageRootError) as info:
        store.start_run(store.read_state(), DagRecord("t"))
    assert "'/proc/exoflow-test-root' cannot hold the workflow log" in str(info.value)
    assert "Choose a directory you can write" in str(info.value)
    assert isinstance(info.value.__cause__, OSError)
