"""Refs: handles to task outputs, backed by a lazy plan, Spark's cache, a Delta version or a
small value. A ref moves to its Delta backing when its checkpoint commits, which truncates the
lineage of everything that reads it from then on.
"""

from __future__ import annotations

import threading
from typing import Any, Literal

from ..core.fmt import error_line
from ..core.records import CheckpointRecord, CommitRecord
from ..core.redact import redact
from ..errors import CheckpointLostError
from ..spark.hadoop import has_jvm, missing_files
from ..storage.checkpoints import DeltaVersion, commit_readable, read_checkpoint

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
        #: seconds spent computing the output into the cache (async and auto checkpoints)
        self.materialize_seconds = 0.0
        #: computed into the cache already (its checkpoint write reads finished blocks)
        self.materialized = False
        #: an async checkpoint write follows (``"async"``, or ``"auto"`` judged worth it)
        self.write_async = False
        if backing in ("delta", "value", "none"):
            self.committed.set()

    @classmethod
    def from_commit(
        cls,
        task_id: str,
        record: CommitRecord,
        spark: Any,
        *,
        store: Any = None,
        verify: bool = False,
    ) -> Ref:
        """Rebuild a ref from a commit record (restore: a lazy read of the Delta version).

        Args:
            task_id: the task whose output this is.
            record: its commit record.
            spark: the session that reads the checkpoint.
            store: the workflow's :class:`~exoflow_spark.store.WorkflowStore`; when given, the
                table location comes from the storage root rather than the (redacted) record.
            verify: check that the Delta version is readable and every data file it names
                exists; raises :class:`~exoflow_spark.recovery.CheckpointLostError` if not.
        """
        d = record.checkpoint
        if record.kind == "dataframe" and d is not None:
            dv = DeltaVersion(
                store.checkpoint_uri(task_id, record) if store is not None else d.path,
                d.version,
                d.bytes,
                d.rows,
                d.write_seconds,
                _recorded_files(task_id, d),
                d.schema,
                d.format,
            )
            df = verified_checkpoint(spark, task_id, dv) if verify else None
            if df is None:
                df = read_checkpoint(spark, dv)
            return cls(task_id, "delta", df=df, delta=dv)
        if record.kind == "value":
            return cls(task_id, "value", value=record.value)
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

    def held_back(self) -> bool:
        """Whether no task may read this output yet: its async checkpoint has not committed
        and its data depends on a nondeterministic output that is not durable (its own, or
        one its inputs carried). Its cached blocks could be recomputed differently (a lost
        executor, an evicted block), so consumers read the checkpoint once it commits."""
        return self.write_async and bool(self.volatile) and not self.committed.is_set()

    def repoint(self, df: Any, delta: DeltaVersion) -> None:
        """Point the ref at its committed Delta version (after an async checkpoint commits)."""
        self._df, self.delta, self.backing = df, delta, "delta"
        self.committed.set()

    def __repr__(self) -> str:
        where = ""
        if self.delta is not None:
            where = " parquet" if self.delta.format == "parquet" else f" v{self.delta.version}"
        return f"Ref({self.task_id}, {self.backing}{where})"


def verified_checkpoint(spark: Any, task_id: str, dv: DeltaVersion) -> Any:
    """The DataFrame of a committed checkpoint version, after checking it is all there.

    A version with recorded files: its Delta log entry must still name exactly those files,
    and each must exist (one LIST per folder). Otherwise reading the version resolves its
    snapshot (a missing or corrupt ``_delta_log`` entry fails here) and its data files are
    listed. A Parquet file that exists but is damaged is not detected here: reading it fails
    later, as a task error.

    Raises:
        CheckpointLostError: the version cannot be read or some of its files are gone.
    """
    if not has_jvm(spark):  # Spark Connect: nothing to probe with
        return read_checkpoint(spark, dv)
    try:
        if dv.files is not None:
            broken = None if dv.format == "parquet" else commit_readable(spark, dv)
            if broken is not None:
                raise CheckpointLostError(
                    task_id,
                    dv.path,
                    _version_of(dv),
                    f"the Delta version cannot be read ({broken})",
                )
            base = dv.path.rstrip("/")
            files = [f"{base}/{f}" for f in dv.files]
            gone = missing_files(spark, files)
            df = None if gone else read_checkpoint(spark, dv)  # the read probes every file
        else:
            df = read_checkpoint(spark, dv)
            files = list(df.inputFiles())
            gone = missing_files(spark, files)
    except CheckpointLostError:
        raise
    except Exception as exc:
        first = error_line(exc)
        raise CheckpointLostError(
            task_id, dv.path, _version_of(dv), f"the Delta version cannot be read ({redact(first)})"
        ) from exc
    if gone:
        raise CheckpointLostError(
            task_id,
            dv.path,
            _version_of(dv),
            f"{len(gone)} of its {len(files)} data file(s) are missing, e.g. "
            f"{redact(gone[0].rsplit('/', 1)[-1])}",
        )
    if dv.num_rows > 0 and not files:
        raise CheckpointLostError(
            task_id, dv.path, _version_of(dv), f"it should hold {dv.num_rows} rows but has no files"
        )
    return df


def _version_of(dv: DeltaVersion) -> int | None:
    """The Delta version a damaged checkpoint is reported as (None: a Parquet folder)."""
    return None if dv.format == "parquet" else dv.version


def _recorded_files(task_id: str, d: CheckpointRecord) -> tuple[str, ...] | None:
    """The data files a commit record lists, each a plain name inside the checkpoint's folder
    (as the writer recorded them); None when the record lists none (read through Delta).

    Raises:
        CheckpointLostError: a name that is not a plain file name (a path, ``..``): the
            record was altered, and reading it could reach files outside the checkpoint.
    """
    names = d.files
    if names is None:
        return None
    for name in names:
        if not name or name in (".", "..") or any(c in name for c in "/\\:\x00"):
            version = None if d.format == "parquet" else d.version
            raise CheckpointLostError(
                task_id,
                d.path,
                version,
                f"its commit record lists {name!r}, which is not a file name inside the "
                "checkpoint (the log was altered); restore the log from a backup, or re-run "
                f"the task with xf.run(..., invalidate={[task_id]!r})",
            )
    return names
