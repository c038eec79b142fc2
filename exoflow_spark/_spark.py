"""Everything that touches SparkSession and Delta APIs directly lives here."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import re
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote

from .errors import CheckpointError, SparkSessionError

logger = logging.getLogger(__name__)

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"

#: pyspark 4.2.0 runs Python UDFs through Arrow by default, and its columnar Arrow UDF runner
#: hangs forever on a vectorized Parquet input such as a Delta checkpoint (SPARK-58241, fixed
#: after 4.2.0; delta-spark 4.4.0 caps pyspark at 4.2.0). Sessions built here opt out.
ARROW_UDF_CONF = "spark.sql.execution.pythonUDF.arrow.enabled"
_ARROW_UDF_HANG_VERSIONS = ("4.2.0",)

#: Settings that make small local runs fast; a cluster profile overrides them.
LOCAL_DEFAULTS: dict[str, str] = {
    "spark.sql.shuffle.partitions": "8",
    "spark.databricks.delta.snapshotPartitions": "2",
    "spark.ui.showConsoleProgress": "false",
}

#: the scheduler pool of background checkpoint writes (see ``fairscheduler.xml``)
CHECKPOINT_POOL = "exoflow-checkpoints"
#: FAIR scheduling with exoflow's pools: your jobs stay FIFO in the default pool; async
#: checkpoint writes get a task slot of their own as soon as one frees up. Set
#: ``spark.scheduler.mode`` yourself to opt out.
SCHEDULER_DEFAULTS: dict[str, str] = {
    "spark.scheduler.mode": "FAIR",
    "spark.scheduler.allocation.file": Path(__file__).with_name("fairscheduler.xml").as_uri(),
}


def create_spark_session(
    master: str | None = "local[*]",
    app_name: str = "exoflow-spark",
    conf: Mapping[str, str] | None = None,
    *,
    remote: str | None = None,
) -> Any:
    """Build (or get) a SparkSession with Delta Lake configured.

    The Delta jars matching the installed ``delta-spark`` are added with
    ``configure_spark_with_delta_pip`` and fetched from Maven Central on first use.

    Args:
        master: Spark master URL; ``None`` leaves it to ``spark-submit``.
        app_name: the application name shown in the Spark UI.
        conf: extra Spark settings (they win over the defaults).
        remote: a Spark Connect URL (``sc://host:port``): connect to that server instead of
            starting a driver JVM. The server must already have Delta Lake configured (it
            owns the static settings); ``master`` is ignored and ``conf`` may hold runtime
            SQL settings only. See ``docs/spark-connect.md``.

    Example:
        >>> spark = create_spark_session("local[2]", conf={"spark.ui.enabled": "false"})
        >>> spark = create_spark_session(remote="sc://127.0.0.1:15002")
    """
    import pyspark
    from delta import configure_spark_with_delta_pip
    from pyspark.sql import SparkSession

    if remote:
        return _connect_session(remote, conf or {})
    os.environ.setdefault("PYSPARK_PIN_THREAD", "true")
    if (master or "").startswith("local"):
        # Python workers of a local session use the driver's interpreter (and its packages)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    settings = {
        "spark.sql.extensions": DELTA_EXTENSION,
        "spark.sql.catalog.spark_catalog": DELTA_CATALOG,
        **(LOCAL_DEFAULTS if (master or "").startswith("local") else {}),
        **(SCHEDULER_DEFAULTS if "spark.scheduler.mode" not in (conf or {}) else {}),
        **({ARROW_UDF_CONF: "false"} if pyspark.__version__ in _ARROW_UDF_HANG_VERSIONS else {}),
        **dict(conf or {}),
    }
    for key, value in settings.items():
        builder = builder.config(key, value)
    extra = [p for p in settings.get("spark.jars.packages", "").split(",") if p]
    return configure_spark_with_delta_pip(builder, extra_packages=extra).getOrCreate()


def delta_package() -> str:
    """The Maven coordinate of the Delta jars matching the installed pyspark and delta-spark,
    e.g. ``io.delta:delta-spark_4.2_2.13:4.4.0``: what ``spark-submit --packages`` and a Spark
    Connect server need (a session built in Python adds it by itself)."""
    from importlib.metadata import version

    import pyspark

    spark_major_minor = ".".join(pyspark.__version__.split(".")[:2])
    return f"io.delta:delta-spark_{spark_major_minor}_2.13:{version('delta-spark')}"


def _connect_session(url: str, conf: Mapping[str, str]) -> Any:
    """A Spark Connect session to ``url`` with exoflow's runtime settings applied."""
    import pyspark
    from pyspark.sql import SparkSession

    try:
        spark = SparkSession.builder.remote(url).getOrCreate()
    except Exception as exc:
        raise SparkSessionError(
            f"cannot connect to the Spark Connect server at {url}: {exc}. Check that the "
            "server runs and that the pyspark[connect] client packages are installed"
        ) from exc
    settings = {
        **({ARROW_UDF_CONF: "false"} if pyspark.__version__ in _ARROW_UDF_HANG_VERSIONS else {}),
        **dict(conf),
    }
    for key, value in settings.items():
        try:
            spark.conf.set(key, value)
        except Exception as exc:
            raise SparkSessionError(
                f"Spark Connect server {url} refused the setting {key}={value}: {exc}. Static "
                "settings (extensions, catalogs, jars, memory) belong to the server's start "
                "command, not to the client"
            ) from exc
    return spark


def is_connect_session(spark: Any) -> bool:
    """True for a Spark Connect (client-side) session: no JVM, no SparkContext."""
    try:
        from pyspark.sql.connect.session import SparkSession as ConnectSession
    except Exception:
        return False
    return isinstance(spark, ConnectSession)


def resolve_spark(spark: Any | None) -> Any:
    """``spark`` if given, else the active session; checks that Delta is configured."""
    if spark is None:
        from pyspark.sql import SparkSession

        spark = SparkSession.getActiveSession()
        if spark is None:
            raise SparkSessionError(
                "no active SparkSession: pass spark=... or create one with "
                "xf.create_spark_session() (it configures Delta Lake)"
            )
    try:
        extensions = spark.conf.get("spark.sql.extensions", "") or ""
    except Exception:  # pragma: no cover - some managed runtimes hide the conf
        extensions = DELTA_EXTENSION
    _warn_arrow_udf_hang(spark)
    if DELTA_EXTENSION not in extensions and not _is_databricks(spark):
        raise SparkSessionError(
            "this SparkSession has no Delta Lake extension, which exoflow-spark's checkpoints "
            "and sinks need: build it with xf.create_spark_session(), or set "
            f"spark.sql.extensions={DELTA_EXTENSION} and spark.sql.catalog.spark_catalog="
            f"{DELTA_CATALOG} with the delta-spark jars on the classpath"
        )
    return spark


_warned_arrow = False


def _warn_arrow_udf_hang(spark: Any) -> None:
    global _warned_arrow
    if _warned_arrow:
        return
    try:
        import pyspark

        enabled = str(spark.conf.get(ARROW_UDF_CONF, "true")).lower() == "true"
    except Exception:  # pragma: no cover
        return
    if pyspark.__version__ in _ARROW_UDF_HANG_VERSIONS and enabled:
        _warned_arrow = True
        logger.warning(
            "pyspark %s with %s=true: a Python UDF reading a Delta checkpoint can hang forever "
            "(SPARK-58241). Set %s=false on the session (xf.create_spark_session does)",
            pyspark.__version__,
            ARROW_UDF_CONF,
            ARROW_UDF_CONF,
        )


def _is_databricks(spark: Any) -> bool:
    try:
        return bool(spark.conf.get("spark.databricks.clusterUsageTags.clusterId", None))
    except Exception:  # pragma: no cover
        return False


@functools.lru_cache(maxsize=1)
def _dataframe_types() -> tuple[type, ...]:
    """The classic DataFrame class, plus Spark Connect's when it imports. Cached: without
    grpc, every attempt to import ``pyspark.sql.connect`` fails after about 1 ms of import
    machinery, and :func:`is_dataframe` runs for every task output and literal input."""
    types: list[type] = []
    try:
        from pyspark.sql import DataFrame

        types.append(DataFrame)
    except ImportError:  # pragma: no cover
        pass
    try:
        from pyspark.sql.connect.dataframe import DataFrame as ConnectDataFrame

        types.append(ConnectDataFrame)
    except Exception:
        pass
    return tuple(types)


def is_dataframe(value: Any) -> bool:
    """True for classic and Spark Connect DataFrames."""
    return isinstance(value, _dataframe_types())


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


#: how checkpoints are stored: ``"delta"`` (default) or ``"parquet"`` (see :func:`write_checkpoint`)
CheckpointFormat = Literal["delta", "parquet"]
CHECKPOINT_FORMATS: tuple[CheckpointFormat, ...] = ("delta", "parquet")
#: the folder under a task's ref directory that holds its Parquet checkpoints, one per write
PARQUET_DIR = "_parquet"


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
    if _format_for(df, path, fmt) == "parquet":
        return _write_parquet(df, f"{path.rstrip('/')}/{PARQUET_DIR}/{uuid.uuid4().hex}")
    spark = df.sparkSession
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
        raise CheckpointError(f"writing checkpoint table {path} failed: {exc}") from exc
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

    from ._logfs import data_file_sizes

    start = time.perf_counter()
    try:
        seen = Observation(f"exoflow-checkpoint-{uuid.uuid4().hex[:8]}")
        counted = df.observe(seen, F.count(F.lit(1)).alias("rows"))
        counted.write.mode("errorifexists").parquet(path)
        rows = int(seen.get.get("rows", 0) or 0)
        sizes = data_file_sizes(df.sparkSession, path)
    except Exception as exc:
        raise CheckpointError(f"writing checkpoint files {path} failed: {exc}") from exc
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
    from ._logfs import is_local, open_logfs

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
    from ._logfs import is_local, open_logfs

    name = f"_delta_log/{dv.version:020d}.json"
    try:
        raw = open_logfs(dv.path, None if is_local(dv.path) else spark).get(name)
        if raw is None:
            return f"its Delta log entry {name} is missing"
        files = _whole_table_files(_commit_actions(raw))
    except Exception as exc:
        return f"its Delta log entry {name} cannot be read ({exc})"
    if files is None or sorted(files) != sorted(dv.files or ()):
        return f"its Delta log entry {name} does not name the recorded data files"
    return None


def cached_size_bytes(df: Any, default: int = 64 << 20) -> int:
    """The in-memory size of a cached, materialized DataFrame (Spark's plan statistics), or
    ``default`` where Spark does not tell (Spark Connect)."""
    try:
        size = df._jdf.queryExecution().optimizedPlan().stats().sizeInBytes()
        # Py4J hands a Scala BigInt over as a Python int (a BigInteger underneath)
        return int(size) if isinstance(size, int) else int(str(size.toString()))
    except Exception as exc:  # Spark Connect has no _jdf; anything else is worth knowing
        logger.debug("plan statistics unavailable (%s); assuming %d bytes", exc, default)
        return default


def forget_delta_state(spark: Any, paths: list[str]) -> None:
    """Drop Delta's cached state (snapshot and its persisted blocks) of the tables at
    ``paths``; the next read rebuilds it from the log. Classic sessions only (a Spark
    Connect server manages its own cache)."""
    if not paths or is_connect_session(spark):
        return
    try:
        jvm = spark.sparkContext._jvm
        delta_log = jvm.org.apache.spark.sql.delta.DeltaLog
        for path in paths:
            delta_log.invalidateCache(spark._jsparkSession, jvm.org.apache.hadoop.fs.Path(path))
    except Exception as exc:  # only memory is at stake
        logger.debug("could not drop Delta's cached table state (%s)", exc)


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


@contextlib.contextmanager
def job_context(
    spark: Any, workflow_id: str, label: str, pool: str | None = None
) -> Iterator[None]:
    """Name the Spark jobs started in this thread after the workflow and task (Spark UI),
    and submit them to scheduler ``pool`` if given (it takes effect in FAIR mode)."""
    description = f"[{workflow_id}] {label}"
    sc = None
    try:
        sc = spark.sparkContext
    except Exception:  # Spark Connect: no SparkContext
        sc = None
    tag = f"exoflow:{workflow_id}"
    if sc is not None:
        previous = sc.getLocalProperty("spark.job.description")
        sc.setLocalProperty("spark.job.description", description)
        sc.setLocalProperty("spark.jobGroup.id", tag)
        if pool:
            sc.setLocalProperty("spark.scheduler.pool", pool)
        try:
            yield
        finally:
            sc.setLocalProperty("spark.job.description", previous)
            sc.setLocalProperty("spark.jobGroup.id", None)
            if pool:
                sc.setLocalProperty("spark.scheduler.pool", None)
        return
    added = False
    with contextlib.suppress(Exception):
        spark.addTag(tag)
        added = True
    try:
        yield
    finally:
        if added:
            with contextlib.suppress(Exception):
                spark.removeTag(tag)


_SYSTEM_ERROR_MARKERS = (
    "ExecutorLostFailure",
    "executor lost",
    "Executor heartbeat timed out",
    "SparkContext was shut down",
    "FetchFailed",
    "Connection reset",
    "Connection refused",
    "Py4JNetworkError",
    "Answer from Java side is empty",
    "BlockMissingException",
    "StatusCode.UNAVAILABLE",  # Spark Connect: the server could not be reached
)


def is_system_error(exc: BaseException) -> bool:
    """Whether ``exc`` comes from the platform (lost executor, JVM link) rather than user code.

    System errors are always retried within ``max_retries``; user errors only when the task
    says ``retry_exceptions=True``.
    """
    from py4j.protocol import Py4JNetworkError

    if isinstance(exc, (Py4JNetworkError, ConnectionError)):
        return True
    if _is_grpc_unavailable(exc):  # Spark Connect: the server or the channel went away
        return True
    text = f"{type(exc).__name__}: {exc}"
    return any(marker in text for marker in _SYSTEM_ERROR_MARKERS)


def _is_grpc_unavailable(exc: BaseException) -> bool:
    """A Spark Connect call that failed because the server could not be reached."""
    try:
        import grpc
    except ImportError:
        return False
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, grpc.RpcError):
            code = getattr(cur, "code", None)
            if callable(code) and code() in (
                grpc.StatusCode.UNAVAILABLE,
                grpc.StatusCode.DEADLINE_EXCEEDED,
            ):
                return True
        cur = cur.__cause__ or cur.__context__
    return False
