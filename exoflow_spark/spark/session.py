"""Everything that touches SparkSession and Delta APIs directly lives here."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import InvalidOptionError, SparkSessionError

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
        previous_group = sc.getLocalProperty("spark.jobGroup.id")
        sc.setLocalProperty("spark.job.description", description)
        sc.setLocalProperty("spark.jobGroup.id", tag)
        if pool:
            sc.setLocalProperty("spark.scheduler.pool", pool)
        try:
            yield
        finally:
            sc.setLocalProperty("spark.job.description", previous)
            sc.setLocalProperty("spark.jobGroup.id", previous_group)
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


def cached_size_bytes(df: Any, default: int = 64 << 20) -> int:
    """The in-memory size of a cached, materialized DataFrame (Spark's plan statistics), or
    ``default`` where Spark does not tell (Spark Connect).

    Read from a new Dataset over ``df``'s plan, whose cache lookup finds the materialized
    ``InMemoryRelation`` and its measured size: ``df`` itself may keep the plan it optimized
    before ``persist()`` (a join of unknown inputs estimated at hundreds of GB)."""
    try:
        size = df.select("*")._jdf.queryExecution().optimizedPlan().stats().sizeInBytes()
        # Py4J hands a Scala BigInt over as a Python int (a BigInteger underneath)
        return int(size) if isinstance(size, int) else int(str(size.toString()))
    except Exception as exc:  # Spark Connect has no _jdf; anything else is worth knowing
        logger.debug("plan statistics unavailable (%s); assuming %d bytes", exc, default)
        return default


#: The environment variable that sets how many copies of an output that is costly to
#: recompute Spark's cache keeps on a cluster of two or more executors (1 or 2).
CACHE_REPLICAS_ENV = "EXOFLOW_CACHE_REPLICAS"


def cache_replicas(environ: Mapping[str, str] | None = None) -> int:
    """``$EXOFLOW_CACHE_REPLICAS`` (1 or 2; default 2).

    Raises:
        InvalidOptionError: it is set to something else.
    """
    raw = (os.environ if environ is None else environ).get(CACHE_REPLICAS_ENV, "").strip()
    if not raw:
        return 2
    if raw not in ("1", "2"):
        raise InvalidOptionError(
            f"{CACHE_REPLICAS_ENV}={raw!r}: set it to 2 (an output costly to recompute is "
            "cached on two executors, so losing one does not recompute it), 1 (one copy: "
            "half the memory), or unset it"
        )
    return int(raw)


def costly_cache_level(spark: Any, replicas: int = 2) -> Any | None:
    """The storage level to cache an output that is costly to recompute with: Spark's default
    (memory, then disk) with a second copy on another executor when the application has two
    or more executors and ``replicas`` is 2, else None (Spark's default, one copy).

    An executor lost mid-run takes its cached blocks with it, and Spark rebuilds each from
    its lineage: for a chain of cached stages that is every stage above, back to the source
    (the checkpoints written meanwhile do not help: the plans running read the cache). With
    a second copy the blocks are read from the other executor. Local mode has one executor
    (the driver) and keeps one copy; so does Spark Connect (no executor list)."""
    if replicas < 2 or is_connect_session(spark):
        return None
    try:
        executors = int(spark.sparkContext._jsc.sc().getExecutorIds().size())
    except Exception as exc:  # only the copy is at stake
        logger.debug("could not count the executors (%s): one cached copy", exc)
        return None
    if executors < 2:
        return None
    from pyspark import StorageLevel

    return StorageLevel(True, True, False, True, 2)  # MEMORY_AND_DISK_DESER, two copies


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


# -- costs for checkpoint="auto" ---------------------------------------------------------------
#: logical operators that run code Catalyst cannot see into (their cost is not in the plan)
_OPAQUE_OPERATORS = (
    "BatchEvalPython",
    "ArrowEvalPython",
    "MapInPandas",
    "MapInArrow",
    "PythonMapInArrow",
    "FlatMapGroupsInPandas",
    "FlatMapGroupsInArrow",
    "FlatMapCoGroupsInPandas",
    "FlatMapCoGroupsInArrow",
    "FlatMapGroupsInPandasWithState",
    "WindowInPandas",
    "ArrowEvalPythonUDTF",
    "BatchEvalPythonUDTF",
)
#: logical operators with a wide dependency (a shuffle, unless Spark broadcasts)
_WIDE_OPERATORS = (
    "Aggregate",
    "Join",
    "Repartition",
    "RepartitionByExpression",
    "Sort",
    "Window",
    "Deduplicate",
    "Distinct",
    "Expand",
    "RebalancePartitions",
    # before optimization only (the optimizer rewrites them into joins and aggregates)
    "Intersect",
    "Except",
)


def _size_in_bytes(plan: Any) -> int:
    raw = plan.stats().sizeInBytes()
    return int(raw) if isinstance(raw, int) else int(str(raw.toString()))


_PATTERN: list[Any] = [None, None]  # (the JVM view, its TreePattern.PYTHON_UDF)


def _python_udf_pattern(jvm: Any) -> Any:
    """Spark's ``TreePattern.PYTHON_UDF`` (looked up once per JVM: each name on the way
    there is a Py4J round trip, 2-3 ms a decision)."""
    if _PATTERN[0] is not jvm:
        _PATTERN[1] = jvm.org.apache.spark.sql.catalyst.trees.TreePattern.PYTHON_UDF()
        _PATTERN[0] = jvm
    return _PATTERN[1]


class PlanRead(NamedTuple):
    """What :func:`plan_operators` read in a DataFrame's plan."""

    #: operators running code Catalyst cannot see into (Python UDFs, pandas/Arrow functions);
    #: read unoptimized, at least 1 when the plan has any Python code (a UDF in a projection
    #: is an expression there, not an operator: only the optimizer extracts it)
    opaque: int
    #: operators with a wide dependency (joins, aggregations, repartitions, sorts, windows)
    wide: int
    #: Catalyst's size estimate of the output, None when unknown or absurd
    size_bytes: int | None
    #: its leaves' sizes summed (cached relations left out), None when unknown or absurd
    input_bytes: int | None
    #: read from the optimized plan (else the analyzed one, the cache's relations substituted)
    optimized: bool
    #: the plan runs Python code somewhere (Spark's ``PYTHON_UDF`` tree pattern)
    python: bool


def plan_operators(df: Any, *, optimize: bool = False) -> PlanRead | None:
    """What a DataFrame's plan says about its cost (:class:`PlanRead`): how many operators run
    Python code (their cost is invisible to Catalyst), how many have wide dependencies,
    Catalyst's size estimate of its output and the sum of its leaves' (what it reads). Without
    column statistics Catalyst sizes a join at the product of its sides (480 GB for a 10 MB
    join): the leaves bound what recomputing it reads. A cached input shows as one
    ``InMemoryRelation``, so its operators are not counted. None on Spark Connect.

    Read as analyzed, with the cache's relations substituted (``withCachedData``), unless
    ``optimize``: optimizing the cumulative plan of each stage of a chain was most of
    ``checkpoint="auto"``'s overhead on ``benchmarks/peers.py`` (50-100 ms for the ETL's 8
    stages, 120-190 ms for the two reads of the heavy pipeline's join under a UDF), and the
    counts need no optimizer: wide operators are named as such before optimization too, and
    whether there is Python code is one tree-pattern test. Only the number of Python UDFs in
    projections needs the optimizer (it extracts them into operators), for a caller that must
    take an input's out of its consumer's when both have some."""
    try:
        qe = df._jdf.queryExecution()
        plan = qe.withCachedData()
        python = bool(plan.containsPattern(_python_udf_pattern(df.sparkSession._jvm)))
        if optimize:
            plan = qe.optimizedPlan()
        size = _size_in_bytes(plan)
        # walked node by node, not printed: a printed plan includes the physical plan of
        # each cached relation in it (30 ms each on benchmarks/peers.py's heavy pipeline)
        opaque = wide = inputs = 0
        stack = [plan]
        while stack:
            node = stack.pop()
            op = str(node.nodeName())
            if op in _OPAQUE_OPERATORS:
                opaque += 1
            elif op in _WIDE_OPERATORS:
                wide += 1
            children = node.children()
            n = children.size()
            if n == 0 and op != "InMemoryRelation":
                # a cached relation not yet computed is sized by the estimate of the plan it
                # caches (a join's product again): left out, the caller knows what it cached
                inputs += _size_in_bytes(node)
            stack.extend(children.apply(i) for i in range(n))
    except Exception as exc:  # Spark Connect has no _jdf
        logger.debug("plan statistics unavailable (%s)", exc)
        return None
    if python and not optimize:
        opaque = max(opaque, 1)  # its UDFs are expressions until the optimizer extracts them
    # Catalyst says Long.MaxValue (or a product of sizes) when it cannot tell
    return PlanRead(
        opaque,
        wide,
        size if 0 <= size < 1 << 50 else None,
        inputs if 0 <= inputs < 1 << 50 else None,
        optimize,
        python,
    )


def pool_task_sets(spark: Any, pool: str) -> frozenset[str] | None:
    """The task sets (``TaskSet_<stage>.<attempt>``) queued or running in scheduler ``pool``
    (the root pool when ``pool`` does not exist: FIFO scheduling), or None when Spark does
    not tell (Spark Connect)."""
    try:
        jsc = spark.sparkContext._jsc.sc()
        found = jsc.getPoolForName(pool)
        queue = found.get() if found.isDefined() else jsc.taskScheduler().rootPool()
        return frozenset(str(s.name()) for s in queue.schedulableQueue().toArray())
    except Exception as exc:
        logger.debug("scheduler pool %s unreadable (%s)", pool, exc)
        return None


def wait_for_task_set(
    spark: Any,
    pool: str,
    before: frozenset[str],
    *,
    done: Callable[[], bool],
    timeout: float,
    poll: float = 0.005,
) -> bool:
    """Wait until a task set not in ``before`` is queued in scheduler ``pool`` (a job started
    in it has submitted its tasks), ``done()`` is true or ``timeout`` seconds have passed.
    True when the task set appeared."""
    deadline = time.monotonic() + timeout
    while True:
        now = pool_task_sets(spark, pool)
        if now is None:
            return False
        if now - before:
            return True
        if done() or time.monotonic() >= deadline:
            return False
        time.sleep(poll)


def job_metrics(
    spark: Any, workflow_id: str, label: str, since: float | None = None
) -> dict[str, float] | None:
    """Spark's metrics of the finished jobs this session ran as ``label`` of ``workflow_id``
    (see :func:`job_context`): ``executor_s`` (executor run time, summed over tasks),
    ``cpu_s``, ``shuffle_bytes``, ``jobs``. ``since`` (epoch seconds): only jobs submitted
    from then on (a driver that ran the same workflow id before keeps those jobs' labels in
    its status store). None when Spark does not tell (Spark Connect, or the status store
    dropped them)."""
    try:
        sc = spark.sparkContext
        jsc = sc._jsc.sc()
        with contextlib.suppress(Exception):  # let the status listener catch up
            jsc.listenerBus().waitUntilEmpty(2000)
        store = jsc.statusStore()
        jobs = store.jobsList(None)
        description = f"[{workflow_id}] {label}"
        group = f"exoflow:{workflow_id}"
        stage_ids: set[int] = set()
        njobs = 0
        for i in range(jobs.size()):
            job = jobs.apply(i)
            desc, grp = job.description(), job.jobGroup()
            if not (desc.isDefined() and str(desc.get()) == description):
                continue
            if not (grp.isDefined() and str(grp.get()) == group):
                continue
            if since is not None:
                submitted = job.submissionTime()
                if submitted.isDefined() and int(submitted.get().getTime()) < since * 1000:
                    continue
            njobs += 1
            ids = job.stageIds()
            stage_ids.update(int(ids.apply(k)) for k in range(ids.size()))
        if not njobs:
            return None
        gateway = sc._gateway
        empty_tasks = gateway.jvm.java.util.ArrayList()
        no_quantiles = gateway.new_array(gateway.jvm.double, 0)
        run_ms = cpu_ns = shuffle = 0
        for sid in stage_ids:
            with contextlib.suppress(Exception):  # a skipped stage has no data
                attempts = store.stageData(sid, False, empty_tasks, False, no_quantiles)
                for k in range(attempts.size()):
                    st = attempts.apply(k)
                    run_ms += int(st.executorRunTime())
                    cpu_ns += int(st.executorCpuTime())
                    shuffle += int(st.shuffleWriteBytes())
        return {
            "executor_s": run_ms / 1000.0,
            "cpu_s": cpu_ns / 1e9,
            "shuffle_bytes": float(shuffle),
            "jobs": float(njobs),
        }
    except Exception as exc:
        logger.debug("Spark job metrics unavailable (%s)", exc)
        return None
