"""Small formatting helpers shared by the planner, the CLI and the pictures."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def human_bytes(n: int) -> str:
    """``1536`` -> ``"1.5 KB"``: a byte count in binary units, one decimal above bytes."""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"


def checkpoint_label(delta: Mapping[str, Any], *, with_format: bool = False) -> str:
    """How a committed checkpoint is named to people, from its record's ``delta`` entry:
    ``"v3"`` for a version of the task's Delta table (``"delta v3"`` with the format), and
    ``"parquet"`` for a Parquet checkpoint (a folder written once: it has no version)."""
    if delta.get("format", "delta") == "parquet":
        return "parquet"
    return f"{'delta ' if with_format else ''}v{delta.get('version')}"
