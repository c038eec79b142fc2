"""Checkpoint files: writing and reading a task output as a Delta table version or a Parquet
folder, and reading a version's Delta log entry directly (no log replay on restore)."""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote

from ..core.fmt import error_line
from ..core.redact import redact
from ..core.uris import is_local, local_path
from ..errors import CheckpointError
from ..spark.hadoop import data_file_sizes, delete_path, has_jvm
from ..spark.session import is_connect_session
from . import layout
from .logfs import open_logfs

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeltaVersion:
    """A committed version of a checkpoint table, with what it cost to write.

    ``files`` (data file paths relative to ``path``, as the version's commit names them) and
    ``schema`` (the Spark schema as JSON) are known for versions that overwrote the whole
    table: those are read as exactly these Parquet files, without replaying the Delta log
    (which costs Spark jobs every time a new version is read). ``None``: read through Delta.
    """

    path: str
    version: int
    num_bytes: int
    num_rows: int
    write_seconds: float
    files: tuple[str, ...] | None = None
    schema: str | None = None
    #: ``"delta"`` (a version of the task's Delta table) or ``"parquet"`` (a directory of
    #: Parquet files written once, made a checkpoint by exoflow's commit record alone)
    format: str = "delta"


#: how checkpoints are stored: ``"delta"`` or ``"parquet"`` (see :func:`write_checkpoint`)
CheckpointFormat = Literal["delta", "parquet"]
CHECKPOINT_FORMATS: tuple[CheckpointFormat, ...] = ("delta", "parquet")


def run_formats(fmt: CheckpointFormat | None) -> tuple[CheckpointFormat, CheckpointFormat]:
    """The formats of a run's checkpoints: (those its tasks declare, those
    ``checkpoint="auto"`` decides to write). A run that names ``fmt`` writes every
    checkpoint in it; one that names none (``None``) writes declared checkpoints as Delta
    tables (a user asked for them: any Delta tool opens them) and auto's as Parquet files
    (the engine's own choice, made for speed: no Delta commit, about 0.3 s less per write
    on local disk, see docs/benchmarks.md)."""
    return (fmt, fmt) if fmt is not None else ("delta", "parquet")


def discard_table(spark: Any, path: str) -> None:
    """Delete the checkpoint table at ``path`` that no commit record names (a write an
    earlier run started and never committed), so the next write creates the table afresh.

    Overwriting it instead would first make Delta load the leftover table's state: Spark
    jobs in the writer's scheduler pool queued ahead of the write, which let the consumers
    of an async output take every task slot before the write's own tasks are queued (see
    :meth:`~exoflow_spark.engine.committer.Committer._write_first`). Nothing there: nothing
    to do. A table on remote storage under Spark Connect (no Hadoop FileSystem here) is left
    for the write to overwrite."""
    if is_local(path):
        local = local_path(path)
        try:
            shutil.rmtree(local)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise CheckpointError(
                f"could not delete the uncommitted checkpoint table {local}: {exc}. Nothing "
                "was written; fix the cause (permissions, a full disk) and run again"
            ) from exc
        return
    if not has_jvm(spark):
        return
    try:
        delete_path(spark, path)
    except Exception as exc:
        raise CheckpointError(
            f"could not delete the uncommitted checkpoint table {redact(path)}: "
            f"{error_line(exc)}. Nothing was written; fix the cause and run again"
        ) from exc


#: the Spark applications this process has written a checkpoint in
_written: set[str] = set()


def _app_key(spark: Any) -> str:
    """The Spark application a session belongs to (its driver JVM)."""
    try:
        return str(spark.sparkContext.applicationId)
    except Exception:  # Spark Connect: no SparkContext on the client; one key per session
        return f"session-{id(spark)}"


def write_path_warm(spark: Any) -> bool:
    """Whether this process has written a checkpoint in ``spark``'s application: a JVM's
    first write loads and compiles the write path (seconds; see
    :meth:`~exoflow_spark.engine.committer.Committer.warm_up`)."""
    return _app_key(spark) in _written


def write_checkpoint(df: Any, path: str, fmt: CheckpointFormat = "delta") -> DeltaVersion:
    """Write ``df`` as the checkpoint of the task whose ref directory is ``path``.

    ``"delta"``: overwrite the Delta table at ``path``; the caller owns the table (exactly
    one driver writes a workflow's ref tables, the run claim guarantees it), so the latest
    history entry is this write.

    ``"parquet"``: write plain Parquet files into a new directory
    ``<path>/_parquet/<random>`` (one Spark job, no Delta commit and no log replay when it is
    read). Nothing reads the directory unless the task's commit record names it, so a write
    interrupted by a crash is never mistaken for a checkpoint; the record lists the files.
    A Spark Connect session falls back to Delta (the files cannot be listed from here).

    A DataFrame whose column names a Delta table cannot hold without column mapping (a space,
    ``,;{}()=``, a tab or newline) is written as ``"parquet"`` whatever ``fmt`` says: the
    task's table is created without column mapping (so its files can be read directly), and
    Delta cannot switch that on for an existing table.
    """
    spark = df.sparkSession
    if _format_for(df, path, fmt) == "parquet":
        dv = _write_parquet(df, layout.parquet_checkpoint(path, uuid.uuid4().hex))
        _written.add(_app_key(spark))
        return dv
    start = time.perf_counter()
    try:
        (
            df.write.format("delta")
            .mode("overwrite")
            .option("overwriteSchema", "true")
            # a checkpoint is read whole: no per-file column statistics (a third of the
            # write's cost on narrow tables), they would only serve data skipping
            .option("delta.dataSkippingNumIndexedCols", "0")
            # Parquet column names are the DataFrame's (a session default of column mapping
            # would rename them, and the files could no longer be read without Delta)
            .option("delta.columnMapping.mode", "none")
            .save(path)
        )
        last = _last_commit(spark, path)
        if last is None:  # no readable log listing (e.g. Spark Connect): ask Delta
            row = (
                spark.sql(f"DESCRIBE HISTORY delta.`{path}` LIMIT 1")
                .select("version", "operationMetrics")
                .first()
            )
            last = _Commit(int(row.version), dict(row.operationMetrics or {}), None)
        if not _readable_as_files(df.schema, path):
            last = _Commit(last.version, last.metrics, None)  # read it through Delta
        schema = df.schema.json() if last.files is not None else None
    except Exception as exc:
        raise CheckpointError(f"writing checkpoint table {path} failed: {error_line(exc)}") from exc
    _written.add(_app_key(spark))
    return DeltaVersion(
        path=path,
        version=last.version,
        num_bytes=int(last.metrics.get("numOutputBytes", 0) or 0),
        num_rows=int(last.metrics.get("numOutputRows", 0) or 0),
        write_seconds=time.perf_counter() - start,
        files=last.files,
        schema=schema,
    )


def _format_for(df: Any, path: str, fmt: CheckpointFormat) -> CheckpointFormat:
    """The format this checkpoint is written in: ``fmt``, unless the data or the session
    needs the other one (each switch is logged with its reason)."""
    if is_connect_session(df.sparkSession):
        if fmt == "parquet":
            logger.info("checkpoint %s: Parquet checkpoints need a classic session: Delta", path)
        return "delta"
    if fmt == "parquet" and not _readable_as_files(df.schema, path):
        logger.info(
            "checkpoint %s: a void column or a glob character in the path cannot be read back "
            "as plain files: writing it as a Delta table instead",
            path,
        )
        return "delta"
    if fmt == "delta":
        bad = _unstorable_in_delta(df.schema)
        if bad is not None and _readable_as_files(df.schema, path):
            logger.info(
                "checkpoint %s: column %r cannot be stored in a Delta table without column "
                "mapping, writing it as Parquet files instead",
                path,
                bad,
            )
            return "parquet"
    return fmt


#: characters a path-based Spark read expands as a glob pattern (a Delta table is opened
#: by its exact path instead)
_GLOB_CHARS = frozenset("*?[]{}\\")


def _readable_as_files(schema: Any, path: str) -> bool:
    """Whether a checkpoint can be read back as its listed Parquet files: not when a column
    is of type void (Parquet cannot hold it; Delta drops it from the files) or when the
    path holds glob characters (Spark would expand them)."""
    return not _GLOB_CHARS.intersection(path) and not _has_null_type(schema)


def _has_null_type(dtype: Any) -> bool:
    from pyspark.sql.types import ArrayType, MapType, NullType, StructType

    if isinstance(dtype, NullType):
        return True
    if isinstance(dtype, StructType):
        return any(_has_null_type(f.dataType) for f in dtype.fields)
    if isinstance(dtype, ArrayType):
        return _has_null_type(dtype.elementType)
    if isinstance(dtype, MapType):
        return _has_null_type(dtype.keyType) or _has_null_type(dtype.valueType)
    return False


#: characters Delta refuses in column names unless the table uses column mapping
_DELTA_RESERVED_CHARS = frozenset(" ,;{}()\n\t=")


def _unstorable_in_delta(dtype: Any, prefix: str = "") -> str | None:
    """The first (dotted) field name of ``dtype`` that Delta refuses without column
    mapping, or None if every name, nested ones included, can be stored."""
    from pyspark.sql.types import ArrayType, MapType, StructType

    if isinstance(dtype, StructType):
        for field in dtype.fields:
            name = f"{prefix}{field.name}"
            if _DELTA_RESERVED_CHARS.intersection(field.name):
                return name
            bad = _unstorable_in_delta(field.dataType, f"{name}.")
            if bad is not None:
                return bad
    elif isinstance(dtype, ArrayType):
        return _unstorable_in_delta(dtype.elementType, prefix)
    elif isinstance(dtype, MapType):
        return _unstorable_in_delta(dtype.keyType, prefix) or _unstorable_in_delta(
            dtype.valueType, prefix
        )
    return None


def _write_parquet(df: Any, path: str) -> DeltaVersion:
    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    start = time.perf_counter()
    try:
        seen = Observation(f"exoflow-checkpoint-{uuid.uuid4().hex[:8]}")
        counted = df.observe(seen, F.count(F.lit(1)).alias("rows"))
        counted.write.mode("errorifexists").parquet(path)
        rows = int(seen.get.get("rows", 0) or 0)
        sizes = data_file_sizes(df.sparkSession, path)
    except Exception as exc:
        raise CheckpointError(f"writing checkpoint files {path} failed: {error_line(exc)}") from exc
    return DeltaVersion(
        path=path,
        version=0,
        num_bytes=sum(sizes.values()),
        num_rows=rows,
        write_seconds=time.perf_counter() - start,
        files=tuple(sorted(sizes)),
        schema=df.schema.json(),
        format="parquet",
    )


_COMMIT_FILE = re.compile(r"^(\d{20})\.json$")


@dataclass(frozen=True)
class _Commit:
    version: int
    metrics: dict[str, str]
    #: every data file of the version, if the commit overwrote the whole table (else None)
    files: tuple[str, ...] | None


def _commit_actions(raw: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in raw.decode().splitlines() if line.strip()]


def _whole_table_files(actions: list[dict[str, Any]]) -> tuple[str, ...] | None:
    """The data files of a version whose commit replaced the whole table (an unpartitioned
    overwrite with plain files), or None when the version's files cannot be told from this
    one commit."""
    info: dict[str, Any] = next((a["commitInfo"] for a in actions if "commitInfo" in a), {})
    params = info.get("operationParameters", {})
    if info.get("operation") != "WRITE" or params.get("mode") != "Overwrite":
        return None
    if params.get("partitionBy", "[]") not in ("[]", []) or any("predicate" in k for k in params):
        return None
    for a in actions:  # physical column names differ from the schema's: read through Delta
        conf = (a.get("metaData") or {}).get("configuration") or {}
        if conf.get("delta.columnMapping.mode", "none") != "none":
            return None
    files = []
    for a in actions:
        add = a.get("add")
        if add is None:
            continue
        if add.get("deletionVector") or add.get("partitionValues"):
            return None
        files.append(unquote(str(add["path"])))
    if any("/" in f or ":" in f for f in files):  # absolute or nested: not ours
        return None
    return tuple(files)


def _last_commit(spark: Any, path: str) -> _Commit | None:
    """The latest version of the Delta table at ``path``, its commit's operation metrics and
    (for a whole-table overwrite) its data files, read from the newest
    ``_delta_log/<version>.json`` (one listing and one small read, where ``DESCRIBE HISTORY``
    runs a Spark job); ``None`` if the log cannot be read so."""
    if is_connect_session(spark):  # the server's file system, not necessarily ours
        return None
    try:
        fs = open_logfs(path, None if is_local(path) else spark)
        versions = [m for m in map(_COMMIT_FILE.match, fs.list_files("_delta_log")) if m]
        if not versions:
            return None
        newest = max(versions, key=lambda m: int(m.group(1)))
        raw = fs.get(f"_delta_log/{newest.group(0)}")
        if raw is None:
            return None
        actions = _commit_actions(raw)
        info: dict[str, Any] = next((a["commitInfo"] for a in actions if "commitInfo" in a), {})
        return _Commit(
            int(newest.group(1)),
            dict(info.get("operationMetrics", {})),
            _whole_table_files(actions),
        )
    except Exception as exc:
        logger.debug("cannot read the Delta log of %s directly (%s)", path, exc)
        return None


def commit_readable(spark: Any, dv: DeltaVersion) -> str | None:
    """Why the Delta log entry of ``dv`` is unusable (gone, or not a commit that names
    ``dv.files``), or None if it is sound. One small read, no Spark job."""
    name = f"_delta_log/{dv.version:020d}.json"
    try:
        raw = open_logfs(dv.path, None if is_local(dv.path) else spark).get(name)
        if raw is None:
            return f"its Delta log entry {name} is missing"
        files = _whole_table_files(_commit_actions(raw))
    except Exception as exc:
        return f"its Delta log entry {name} cannot be read ({error_line(exc)})"
    if files is None or sorted(files) != sorted(dv.files or ()):
        return f"its Delta log entry {name} does not name the recorded data files"
    return None


def read_checkpoint(spark: Any, dv: DeltaVersion) -> Any:
    """The DataFrame of one committed checkpoint version (lazy: nothing is read yet).

    A version with known files is read as those Parquet files with the recorded schema: no
    Delta log replay (two Spark jobs per new version) and no schema inference.
    """
    if dv.files is not None and dv.schema:
        from pyspark.sql.types import StructType

        schema = StructType.fromJson(json.loads(dv.schema))
        if not dv.files:
            return spark.createDataFrame([], schema)
        base = dv.path.rstrip("/")
        return spark.read.schema(schema).parquet(*(f"{base}/{f}" for f in dv.files))
    return spark.read.format("delta").option("versionAsOf", int(dv.version)).load(dv.path)


@dataclass(frozen=True)
class DeltaSnapshot:
    """A task output that is already durable: one version of a Delta table.

    Returned by streaming tasks; the engine commits it by reference (no copy is written).
    """

    path: str
    version: int
    num_bytes: int = 0
    num_rows: int = 0


def table_snapshot(spark: Any, path: str) -> DeltaSnapshot:
    """The latest version of the Delta table at ``path`` (an empty stream: version -1)."""
    from delta.tables import DeltaTable

    if is_connect_session(spark):
        return DeltaSnapshot(path, _connect_table_version(spark, path))
    if not DeltaTable.isDeltaTable(spark, path):
        return DeltaSnapshot(path, -1)
    row = DeltaTable.forPath(spark, path).history(1).select("version").first()
    return DeltaSnapshot(path, int(row.version) if row is not None else -1)


def _connect_table_version(spark: Any, path: str) -> int:
    """Spark Connect: the table's latest version by SQL (``DeltaTable.forPath`` needs the
    Delta Connect plugin on the server; Delta's SQL extension is enough here); -1 when
    ``path`` is not a Delta table."""
    quoted = path.replace("`", "``")
    try:
        rows = spark.sql(f"DESCRIBE HISTORY delta.`{quoted}` LIMIT 1").select("version").collect()
    except Exception as exc:
        cond = getattr(exc, "getCondition", lambda: None)()
        if cond == "DELTA_TABLE_ONLY_OPERATION" or "is not a Delta table" in str(exc):
            return -1
        raise
    return int(rows[0][0]) if rows else -1


def snapshot_dataframe(spark: Any, snap: DeltaSnapshot) -> Any:
    """The rows of a snapshot (an empty stream gives an empty DataFrame)."""
    if snap.version < 0:
        return spark.createDataFrame([], "_empty STRING")
    return read_checkpoint(spark, as_delta_version(snap))


def as_delta_version(snap: DeltaSnapshot) -> DeltaVersion:
    """The snapshot as the commit record's Delta version."""
    return DeltaVersion(snap.path, snap.version, snap.num_bytes, snap.num_rows, 0.0)
