"""Refs: handles to task outputs, backed by a lazy plan, Spark's cache, a Delta version or a
small value. A ref moves to its Delta backing when its checkpoint commits, which truncates the
lineage of everything that reads it from then on.
"""

from __future__ import annotations

import threading
from typing import Any, Literal

from ._spark import DeltaVersion, read_checkpoint

Backing = Literal["plan", "cache", "delta", "value", "none", "error"]


class Ref:
    """The output of one task in one run."""

    def __init__(
        self,
        task_id: str,
        backing: Backing,
        *,
        df: Any = None,
        value: Any = None,
        delta: DeltaVersion | None = None,
        error: BaseException | None = None,
    ) -> None:
        self.task_id = task_id
        self.backing: Backing = backing
        self._df = df
        self.value = value
        self.delta = delta
        self.error = error
        #: nondeterministic tasks whose not-yet-durable output this ref's data depends on
        self.volatile: frozenset[str] = frozenset()
        self.committed = threading.Event()
        if backing in ("delta", "value", "none"):
            self.committed.set()

    @classmethod
    def from_commit(cls, task_id: str, record: dict[str, Any], spark: Any) -> Ref:
        """Rebuild a ref from a commit record (restore: a lazy read of the Delta version)."""
        kind = record.get("kind")
        if kind == "dataframe":
            d = record["delta"]
            dv = DeltaVersion(
                d["path"],
                int(d["version"]),
                int(d.get("bytes", 0)),
                int(d.get("rows", 0)),
                float(d.get("write_seconds", 0.0)),
            )
            return cls(task_id, "delta", df=read_checkpoint(spark, dv.path, dv.version), delta=dv)
        if kind == "value":
            return cls(task_id, "value", value=record.get("value"))
        return cls(task_id, "none")

    @property
    def is_dataframe(self) -> bool:
        return self._df is not None

    def get(self) -> Any:
        """The current best view of the output: a DataFrame or the value."""
        if self._df is not None:
            return self._df
        return self.value

    def visible_volatile(self) -> frozenset[str]:
        """What a consumer reading this ref now observes that is not durable."""
        return frozenset() if self.committed.is_set() else self.volatile

    def repoint(self, df: Any, delta: DeltaVersion) -> None:
        """Point the ref at its committed Delta version (after an async checkpoint commits)."""
        self._df, self.delta, self.backing = df, delta, "delta"
        self.committed.set()

    def __repr__(self) -> str:
        where = f" v{self.delta.version}" if self.delta else ""
        return f"Ref({self.task_id}, {self.backing}{where})"
