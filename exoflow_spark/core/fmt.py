"""Small formatting helpers shared by the planner, the CLI and the pictures (a checkpoint's
label is :meth:`exoflow_spark.core.records.CheckpointRecord.label`)."""

from __future__ import annotations


def human_bytes(n: int) -> str:
    """``1536`` -> ``"1.5 KB"``: a byte count in binary units, one decimal above bytes."""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"
