"""Deleting a checkpoint table no commit record names (storage.checkpoints.discard_table)."""

from __future__ import annotations

from pathlib import Path

from exoflow_spark.storage.checkpoints import discard_table


def leftover(root: Path) -> Path:
    """A table as a killed driver leaves it: files and a Delta commit, no commit record."""
    table = root / "refs" / "enriched"
    (table / "_delta_log").mkdir(parents=True)
    (table / "_delta_log" / "00000000000000000000.json").write_text("{}\n")
    (table / "part-00000.snappy.parquet").write_bytes(b"PAR1")
    return table


def test_a_leftover_table_is_deleted_whole(tmp_path: Path) -> None:
    table = leftover(tmp_path)
    discard_table(None, str(table))
    assert not table.exists() and (tmp_path / "refs").is_dir()


def test_a_leftover_table_named_by_a_file_uri_is_deleted(tmp_path: Path) -> None:
    table = leftover(tmp_path)
    discard_table(None, table.as_uri())
    assert not table.exists()


def test_no_table_is_nothing_to_do(tmp_path: Path) -> None:
    discard_table(None, str(tmp_path / "refs" / "never-written"))
    assert list(tmp_path.iterdir()) == []


def test_a_remote_table_without_a_jvm_is_left_for_the_write_to_overwrite() -> None:
    # Spark Connect (no Hadoop FileSystem on this side): a delete attempted here would raise
    # StorageError (no JVM to reach the FileSystem through); the write overwrites instead
    discard_table(object(), "s3a://bucket/exo/workflows/wf/refs/enriched")
