"""Spark Declarative Pipelines (``pyspark.pipelines``) run as exactly-once exoflow workflows.

An unchanged SDP project (a ``spark-pipeline.yml`` spec, Python files using ``@dp.table``,
``@dp.materialized_view``, ``@dp.temporary_view``, ``@dp.append_flow``, ``dp.create_sink``,
and SQL files with ``CREATE MATERIALIZED VIEW`` / ``CREATE STREAMING TABLE`` / ``CREATE FLOW``)
is loaded through SDP's public registry interface: the project's files are imported inside
``graph_element_registration_context`` with a :class:`GraphElementRegistry` of ours, so the
decorators run as written and hand their definitions to us.

Dependencies are found without the inputs existing (classic PySpark analyses
``spark.read.table`` eagerly): Python files get a ``spark`` that records every
``spark.read.table`` / ``spark.readStream.table`` / ``spark.table`` / ``spark.sql`` and
answers a read of a pipeline dataset with that dataset's *lazy* plan, analysed on demand
(depth first, so a cycle is found as a repeat on the stack). SQL definitions are parsed by
Spark's own parser (its unresolved plan lists every table a query reads; over Spark Connect
the statement's header is read lexically and the query is parsed on the server through
``EXPLAIN EXTENDED``). Nothing executes during the analysis: it only builds and analyses
plans.

Mapping (see docs/declarative-pipelines.md):

* materialized view -> a task publishing its rows with one Delta ``overwrite`` commit
  carrying ``txnAppId``/``txnVersion`` (:func:`~exoflow_spark.write_delta`): readers see the
  old or the new table, never an empty one, and a retry or resume never commits it twice;
  the task's output is that table version (committed by reference, no copy);
* streaming table -> one streaming task per flow (``available_now``), checkpoint under the
  storage root shared by the pipeline's workflows, every micro-batch appended once;
* temporary view -> a lazy task (``checkpoint=False`` unless the spec's configuration says
  ``exoflow.checkpoint.<view> = true|auto|async``);
* sink -> streaming tasks writing each micro-batch once (Delta) or at least once (others).
"""

from __future__ import annotations

import contextvars
import importlib.util
import itertools
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .. import api
from ..core.context import current_task
from ..core.ids import validate_id
from ..core.options import TaskOptions
from ..core.status import WorkflowStatus
from ..core.task import Node, Task
from ..core.values import is_dataframe
from ..errors import ExoflowError, PipelineError
from ..io.sink import write_delta
from ..io.streaming import SinkTarget, StreamingTask, StreamOptions, run_stream
from ..spark.hadoop import has_jvm
from ..spark.sqlparse import parse_statement, query_reads
from ..storage.checkpoints import DeltaSnapshot, table_snapshot

logger = logging.getLogger(__name__)

MATERIALIZED_VIEW = "materialized view"
STREAMING_TABLE = "streaming table"
TEMPORARY_VIEW = "temporary view"
SINK = "sink"
CHECKPOINT_CONF = "exoflow.checkpoint."
_SQL_LOCK = threading.RLock()
_resolver: contextvars.ContextVar[Any] = contextvars.ContextVar("sdp_resolver", default=None)


# -- definitions -----------------------------------------------------------------------------
@dataclass
class FlowDef:
    """One flow: a query (a Python function or SQL text) writing into a target dataset."""

    name: str
    target: str
    file: str
    line: int | None
    func: Callable[[], Any] | None = None
    sql: str | None = None
    spark_conf: Mapping[str, str] = field(default_factory=dict)
    reads: list[tuple[str, bool]] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass
class Dataset:
    """One output of the pipeline and the flows that write it."""

    name: str
    kind: str
    file: str
    line: int | None
    element: Any = None
    flows: list[FlowDef] = field(default_factory=list)
    path: str = ""

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


def _rel(root: Path, filename: str) -> str:
    try:
        return str(Path(filename).resolve().relative_to(root))
    except ValueError:
        return filename


_KINDS = {
    "MaterializedView": MATERIALIZED_VIEW,
    "StreamingTable": STREAMING_TABLE,
    "TemporaryView": TEMPORARY_VIEW,
    "Sink": SINK,
}


class _Registry:
    """Collects what the project's decorators and SQL files define; with SDP's
    ``GraphElementRegistry`` as a second base (:func:`_registry`) it is what the decorators
    call (pyspark is imported only when a pipeline is loaded: ``import exoflow_spark`` stays
    free of it)."""

    def __init__(self, spark: Any, root: Path) -> None:
        self.spark = spark
        self.root = root
        self.datasets: list[Dataset] = []
        self.flows: list[FlowDef] = []
        self.unsupported: list[str] = []

    def register_output(self, output: Any) -> None:
        loc = output.source_code_location
        kind = _KINDS.get(type(output).__name__)
        file = _rel(self.root, loc.filename)
        if kind is None:
            self.unsupported.append(
                f"{type(output).__name__} [{output.name}] ({file}:{loc.line_number})"
            )
            return
        self.datasets.append(Dataset(output.name, kind, file, loc.line_number, output))

    def register_flow(self, flow: Any) -> None:
        loc = flow.source_code_location
        self.flows.append(
            FlowDef(
                flow.name,
                flow.target,
                _rel(self.root, loc.filename),
                loc.line_number,
                func=flow.func,
                spark_conf=dict(flow.spark_conf),
            )
        )

    def register_auto_cdc_flow(self, flow: Any) -> None:
        loc = flow.source_code_location
        self.unsupported.append(
            f"AutoCDC flow [{flow.name or flow.target}] into [{flow.target}] "
            f"({_rel(self.root, loc.filename)}:{loc.line_number}): create_auto_cdc_flow is not "
            "supported by exoflow-spark yet"
        )

    def register_sql(self, sql_text: str, file_path: Path) -> None:
        file = str(file_path)
        conf: dict[str, str] = {}
        for line, statement in split_sql(sql_text):
            try:
                parsed = parse_statement(self.spark, statement)
            except ExoflowError as exc:
                raise PipelineError(f"{file}:{line}: {exc}. Nothing ran") from exc
            except Exception as exc:
                raise PipelineError(
                    f"{file}:{line}: Spark cannot parse this statement: {_first_line(exc)}"
                ) from exc
            kind = parsed.kind
            if kind == "SetCommand" and parsed.conf:
                conf[parsed.conf[0]] = parsed.conf[1]
                continue
            name = parsed.name or ""
            if kind in ("CreateMaterializedViewAsSelect", "CreateStreamingTableAsSelect"):
                ds_kind = MATERIALIZED_VIEW if "Materialized" in kind else STREAMING_TABLE
                self.datasets.append(Dataset(name, ds_kind, file, line))
                self.flows.append(
                    FlowDef(name, name, file, line, sql=parsed.query, spark_conf=dict(conf))
                )
            elif kind == "CreateStreamingTable":
                self.datasets.append(Dataset(name, STREAMING_TABLE, file, line))
            elif kind == "CreateViewCommand" and re.match(
                r"(?is)\s*CREATE\s+(OR\s+REPLACE\s+)?TEMP(ORARY)?\s+VIEW", statement
            ):
                self.datasets.append(Dataset(name, TEMPORARY_VIEW, file, line))
                self.flows.append(
                    FlowDef(name, name, file, line, sql=parsed.query, spark_conf=dict(conf))
                )
            elif kind == "CreateFlowCommand" and parsed.insert_target:
                self.flows.append(
                    FlowDef(
                        name,
                        parsed.insert_target,
                        file,
                        line,
                        sql=parsed.query,
                        spark_conf=dict(conf),
                    )
                )
            else:
                words = " ".join(statement.split()[:4])
                self.unsupported.append(
                    f"SQL statement `{words} ...` ({file}:{line}): not a pipeline definition "
                    "exoflow-spark supports (CREATE MATERIALIZED VIEW, CREATE STREAMING TABLE, "
                    "CREATE TEMPORARY VIEW, CREATE FLOW ... AS INSERT INTO, SET)"
                )


def _registry(spark: Any, root: Path) -> _Registry:
    from pyspark.pipelines.graph_element_registry import GraphElementRegistry

    class SdpRegistry(_Registry, GraphElementRegistry):
        pass

    return SdpRegistry(spark, root)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def split_sql(text: str) -> list[tuple[int, str]]:
    """Split a SQL file into ``(first line, statement)`` at top-level ``;`` (quotes, backticks
    and comments respected); comments are kept inside statements, empty statements dropped."""
    out: list[tuple[int, str]] = []
    buf: list[str] = []
    i, n, line, start = 0, len(text), 1, None
    quote: str | None = None
    while i < n:
        c = text[i]
        nxt = text[i + 1] if i + 1 < n else ""
        if quote:
            buf.append(c)
            if c == "\\" and quote != "`" and i + 1 < n:
                buf.append(nxt)
                i += 1
            elif c == quote:
                quote = None
        elif c == "-" and nxt == "-":
            j = text.find("\n", i)
            j = n if j < 0 else j
            i = j
            continue
        elif c == "/" and nxt == "*":
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            line += text.count("\n", i, j)
            buf.append(" ")
            i = j
            continue
        elif c in "'\"`":
            quote = c
            buf.append(c)
        elif c == ";":
            stmt = "".join(buf).strip()
            if stmt:
                out.append((start or line, stmt))
            buf, start = [], None
            i += 1
            continue
        else:
            buf.append(c)
        if start is None and not c.isspace():
            start = line
        if c == "\n":
            line += 1
        i += 1
    stmt = "".join(buf).strip()
    if stmt:
        out.append((start or line, stmt))
    return out


# -- the session the project's files see ----------------------------------------------------
class _Reader:
    """``spark.read`` / ``spark.readStream`` with ``.table(name)`` routed to the resolver."""

    def __init__(self, reader: Any, streaming: bool) -> None:
        self._reader = reader
        self._streaming = streaming

    def table(self, name: str) -> Any:
        return _resolve(name, self._streaming, lambda: self._reader.table(name))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reader, name)


class PipelineSession:
    """The ``spark`` global of the project's Python files: the real session, except that reads
    of tables go through the pipeline (recorded during analysis, answered by the upstream
    task's output during the run)."""

    def __init__(self, spark: Any) -> None:
        object.__setattr__(self, "_spark", spark)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._spark, name)

    @property
    def read(self) -> _Reader:
        return _Reader(self._spark.read, False)

    @property
    def readStream(self) -> _Reader:
        return _Reader(self._spark.readStream, True)

    def table(self, name: str) -> Any:
        return _resolve(name, False, lambda: self._spark.table(name))

    def sql(self, sqlQuery: str, args: Any = None, **kwargs: Any) -> Any:
        resolver = _resolver.get()
        if resolver is None or args is not None or kwargs:
            return self._spark.sql(sqlQuery, args, **kwargs)
        return resolver.sql(sqlQuery)


def _resolve(name: str, streaming: bool, fallback: Callable[[], Any]) -> Any:
    resolver = _resolver.get()
    if resolver is None:
        return fallback()
    return resolver.resolve(name, streaming, fallback)


_STREAM_CALL = re.compile(r"(?i)\bSTREAM\s*\(\s*([`\w.]+)\s*\)")
_STREAM_WORD = re.compile(r"(?i)\bSTREAM\s+(?=[`A-Za-z_])")
_LEXICAL_REF = re.compile(r"(?i)\b(?:FROM|JOIN)\s+(STREAM\s*\(?\s*|STREAM\s+)?([`A-Za-z_][`\w.]*)")


def _without_stream(sql: str) -> str:
    return _STREAM_WORD.sub("", _STREAM_CALL.sub(r"\1", sql))


_VIEW_IDS = itertools.count(1)


def _with_inputs(sql: str, views: Mapping[str, Any]) -> str:
    """Spark Connect: ``sql`` with each dataset it reads bound to its DataFrame.

    Over Connect ``spark.sql`` is lazy: a table name in the query is resolved when the
    DataFrame *runs*, not when it is built, so a temporary view named after the dataset could
    be replaced meanwhile (by the analysis of another flow, or by a concurrent task). Each
    DataFrame is registered under a name used once (``__exoflow_sdp_<pid>_<n>``), and the query
    is wrapped in CTEs named after the datasets: ``WITH `a` AS (SELECT * FROM __exoflow_...)
    (<query>)``; a CTE shadows a table or view of the same name, qualifiers such as ``a.col``
    keep working, and the query's own ``WITH`` nests inside.
    """
    if not views:
        return sql
    ctes = []
    for ref, df in views.items():
        if df is None:
            continue
        if "." in ref:
            raise PipelineError(
                f"a SQL query reads pipeline dataset [{ref}] by a qualified name, which exoflow-"
                "spark cannot bind over Spark Connect: read it by its simple name "
                f"[{ref.rpartition('.')[2]}]. Nothing ran"
            )
        unique = f"__exoflow_sdp_{os.getpid()}_{next(_VIEW_IDS)}"
        df.createOrReplaceTempView(unique)
        ctes.append(f"`{ref.replace('`', '``')}` AS (SELECT * FROM `{unique}`)")
    return f"WITH {', '.join(ctes)}\n({sql}\n)"


class _Resolver:
    """Answers table reads from the project's code (base: the analysis and the run share it)."""

    def __init__(self, graph: PipelineGraph) -> None:
        self.graph = graph
        self.spark = graph.spark

    def reads_of_sql(self, sql: str) -> list[tuple[str, bool]]:
        known = self.graph.sql_reads.get(sql)  # a query's text gives the same reads each time
        if known is None:
            known = self.graph.sql_reads[sql] = self._parse_reads(sql)
        return list(known)

    def _parse_reads(self, sql: str) -> list[tuple[str, bool]]:
        if has_jvm(self.spark):
            return list(parse_statement(self.spark, sql).reads)
        reads = query_reads(self.spark, sql)  # Connect: the server's parser, via EXPLAIN
        if reads is not None:
            return reads
        logger.warning("no parsed plan for a flow's SQL; finding its reads lexically: %s", sql)
        found: list[tuple[str, bool]] = []
        for m in _LEXICAL_REF.finditer(sql):
            item = (m.group(2).replace("`", ""), bool(m.group(1)))
            if item not in found:
                found.append(item)
        return found

    def sql(self, sql: str) -> Any:
        views = {}
        for ref, streaming in self.reads_of_sql(sql):
            ds = self.graph.lookup(ref)
            if ds is not None:
                views[ref] = self.resolve(ref, streaming, lambda: None)
            else:
                self.external(ref, streaming)
        if not has_jvm(self.spark):
            return self.fallback_sql(_with_inputs(_without_stream(sql), views))
        with _SQL_LOCK:  # temp views are session-wide: register and analyse as one step
            for ref, df in views.items():
                if df is not None:
                    df.createOrReplaceTempView(ref)
            return self.fallback_sql(_without_stream(sql))

    def fallback_sql(self, sql: str) -> Any:
        return self.spark.sql(sql)

    def note(self, name: str, streaming: bool) -> None:
        """Record a read of a table."""

    def external(self, name: str, streaming: bool) -> None:
        """A SQL query reads ``name``, which is not a dataset of the pipeline."""

    def resolve(self, name: str, streaming: bool, fallback: Callable[[], Any]) -> Any:
        raise NotImplementedError


class _Analysis(_Resolver):
    """Builds every flow's lazy plan depth first, recording which datasets it reads."""

    def __init__(self, graph: PipelineGraph) -> None:
        super().__init__(graph)
        self.memo: dict[str, Any] = {}
        self.flow_memo: dict[int, Any] = {}
        self.stack: list[Dataset] = []
        self.flows: list[FlowDef] = []

    def note(self, name: str, streaming: bool) -> None:
        if self.flows and (name, streaming) not in self.flows[-1].reads:
            self.flows[-1].reads.append((name, streaming))

    def _unknown(self, name: str, why: str) -> PipelineError:
        flow = self.flows[-1] if self.flows else None
        who = f"flow [{flow.name}] ({flow.where})" if flow else "the pipeline"
        return PipelineError(
            f"{who} reads [{name}], which is neither a dataset of this pipeline nor an "
            f"existing table ({why}); define it in the pipeline or create it before the run. "
            "Nothing ran"
        )

    def external(self, name: str, streaming: bool) -> None:
        self.note(name, streaming)
        try:
            exists = bool(self.spark.catalog.tableExists(name))
        except Exception as exc:
            raise self._unknown(name, _first_line(exc)) from exc
        if not exists:
            raise self._unknown(name, "not in the catalog")

    def resolve(self, name: str, streaming: bool, fallback: Callable[[], Any]) -> Any:
        ds = self.graph.lookup(name)
        self.note(ds.name if ds else name, streaming)
        if ds is None:
            try:
                return fallback()
            except Exception as exc:
                raise self._unknown(name, _first_line(exc)) from exc
        if ds.kind == SINK:
            flow = self.flows[-1]
            raise PipelineError(
                f"flow [{flow.name}] ({flow.where}) reads sink [{ds.name}] ({ds.where}): a sink "
                "can only be written. Nothing ran"
            )
        df = self.dataset_df(ds)
        if not streaming and df.isStreaming:
            # a batch read of a streaming dataset reads its table: same columns, a batch plan
            return self.spark.createDataFrame([], df.schema)
        if streaming and not df.isStreaming:
            flow = self.flows[-1]
            raise PipelineError(
                f"flow [{flow.name}] ({flow.where}) reads {ds.kind} [{ds.name}] ({ds.where}) "
                "as a stream: only streaming tables can be read with spark.readStream / "
                "STREAM(...); read it with spark.read.table. Nothing ran"
            )
        return df

    def dataset_df(self, ds: Dataset) -> Any:
        if ds.name in self.memo:
            return self.memo[ds.name]
        if ds in self.stack:
            loop = [*self.stack[self.stack.index(ds) :], ds]
            raise PipelineError(
                "the pipeline has a cycle: "
                + " -> ".join(f"[{d.name}] ({d.where})" for d in loop)
                + "; a dataset cannot read itself through other datasets. Nothing ran"
            )
        self.stack.append(ds)
        try:
            dfs = [self.flow_df(f) for f in ds.flows]
        finally:
            self.stack.pop()
        self.memo[ds.name] = dfs[0]
        return dfs[0]

    def flow_df(self, flow: FlowDef) -> Any:
        if id(flow) in self.flow_memo:
            return self.flow_memo[id(flow)]
        self.flows.append(flow)
        try:
            df = evaluate_flow(flow, self)
        finally:
            self.flows.pop()
        target = self.graph.datasets[flow.target]
        streaming = bool(df.isStreaming)
        if target.kind in (STREAMING_TABLE, SINK) and not streaming:
            raise PipelineError(
                f"flow [{flow.name}] ({flow.where}) writes {target.kind} [{target.name}] but "
                "returns a batch DataFrame: read its inputs with spark.readStream (SQL: "
                "STREAM(table)), or make the target a materialized view. Nothing ran"
            )
        if target.kind == MATERIALIZED_VIEW and streaming:
            raise PipelineError(
                f"flow [{flow.name}] ({flow.where}) defines materialized view [{target.name}] "
                "with a streaming query: use @dp.table (a streaming table) for streaming "
                "queries. Nothing ran"
            )
        self.flow_memo[id(flow)] = df
        return df


class _Runtime(_Resolver):
    """Answers reads inside a running task from the task's inputs (upstream outputs)."""

    def __init__(self, graph: PipelineGraph, spark: Any, inputs: Mapping[str, Any]) -> None:
        super().__init__(graph)
        self.spark = spark
        self.inputs = inputs

    def resolve(self, name: str, streaming: bool, fallback: Callable[[], Any]) -> Any:
        ds = self.graph.lookup(name)
        if ds is None:
            return fallback()
        if streaming and ds.kind in (STREAMING_TABLE, MATERIALIZED_VIEW):
            return self.spark.readStream.format("delta").load(ds.path)
        if ds.name not in self.inputs:
            raise PipelineError(
                f"[{name}] was read during the run but not during the analysis (the flow reads "
                "tables conditionally?): every read must happen each time the flow is evaluated"
            )
        return self.inputs[ds.name]


def evaluate_flow(flow: FlowDef, resolver: _Resolver) -> Any:
    """The flow's DataFrame (a lazy plan), with table reads answered by ``resolver``."""
    token = _resolver.set(resolver)
    try:
        df = flow.func() if flow.func is not None else resolver.sql(flow.sql or "")
    except ExoflowError:
        raise
    except Exception as exc:
        raise PipelineError(
            f"flow [{flow.name}] ({flow.where}) failed to build its query: {_first_line(exc)}"
        ) from exc
    finally:
        _resolver.reset(token)
    if not is_dataframe(df):
        raise PipelineError(
            f"flow [{flow.name}] ({flow.where}) returned {type(df).__name__}, not a DataFrame"
        )
    return df


# -- the graph -------------------------------------------------------------------------------
@dataclass
class PipelineGraph:
    """A loaded, validated pipeline: its datasets in dependency order and their inputs."""

    name: str
    spec_path: Path
    storage: str
    exoflow_storage: str
    configuration: Mapping[str, str]
    spark: Any
    datasets: dict[str, Dataset]
    order: list[str] = field(default_factory=list)
    deps: dict[str, list[str]] = field(default_factory=dict)
    database: str | None = None
    sql_reads: dict[str, list[tuple[str, bool]]] = field(default_factory=dict, repr=False)

    def lookup(self, name: str) -> Dataset | None:
        """The dataset a table name means (bare, or qualified with the spec's database)."""
        ds = self.datasets.get(name)
        if ds is None and self.database and "." in name:
            qualifier, _, bare = name.rpartition(".")
            if qualifier.split(".")[-1] == self.database:
                ds = self.datasets.get(bare)
        return ds

    def checkpoint_mode(self, name: str) -> Any:
        value = self.configuration.get(CHECKPOINT_CONF + name)
        if value is None:
            return False
        return {"true": True, "false": False}.get(value.lower(), value.lower())

    def stream_name(self, flow: FlowDef) -> str:
        return validate_id(f"{_id(self.name)}.{_id(flow.name)}", kind="stream name")

    def describe(self) -> list[dict[str, Any]]:
        """One row per dataset: name, kind, where it is defined, what it reads."""
        return [
            {
                "dataset": n,
                "kind": self.datasets[n].kind,
                "defined_at": self.datasets[n].where,
                "reads": self.deps[n],
                "flows": [f.name for f in self.datasets[n].flows],
                "table": self.datasets[n].path or None,
            }
            for n in self.order
        ]


def _id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text).strip("._-") or "pipeline"


def _local(uri: str) -> str:
    return uri[len("file://") :] if uri.startswith("file://") else uri


def load_pipeline(
    spec_path: str | os.PathLike[str], spark: Any | None = None, *, storage: str | None = None
) -> PipelineGraph:
    """Load an SDP project and analyse it, running nothing.

    Imports the project's Python files (with the global ``spark`` SDP gives them) and parses
    its SQL files, through ``pyspark.pipelines``' registry interface; then builds every flow's
    lazy plan to find what it reads, and refuses a bad graph (a cycle, an unknown input, two
    flows writing a materialized view, an unsupported element) naming the element and its file.

    Args:
        spec_path: the ``spark-pipeline.yml`` (or ``.yaml``) file.
        spark: the session (default: the active one).
        storage: exoflow's storage root (default: ``<spec storage>/exoflow``).

    Raises:
        PipelineError: the spec or a definition is invalid.
    """
    from pyspark.errors import PySparkException
    from pyspark.pipelines.cli import load_pipeline_spec
    from pyspark.pipelines.graph_element_registry import graph_element_registration_context
    from pyspark.sql import SparkSession

    path = Path(spec_path).resolve()
    if not path.is_file():
        raise PipelineError(f"pipeline spec {str(spec_path)!r} not found")
    try:
        spec = load_pipeline_spec(path)
    except (PySparkException, KeyError, TypeError) as exc:
        raise PipelineError(f"pipeline spec {path}: {_first_line(exc)}") from exc
    spark = spark or SparkSession.getActiveSession()
    if spark is None:
        raise PipelineError("load_pipeline needs a SparkSession: pass spark=...")
    root = path.parent
    registry = _registry(spark, root)
    proxy = PipelineSession(spark)
    before = os.getcwd()
    os.chdir(root)
    try:
        with graph_element_registration_context(registry):  # type: ignore[arg-type]
            for lib in spec.libraries:
                files = sorted(
                    p
                    for p in root.glob(lib.include)
                    if p.is_file() and "__pycache__" not in p.parts
                )
                for file in files:
                    if file.suffix == ".py":
                        _import(file, proxy, root)
                    elif file.suffix == ".sql":
                        registry.register_sql(file.read_text(), file.relative_to(root))
                    else:
                        raise PipelineError(
                            f"{file.relative_to(root)}: pipeline libraries must be .py or .sql "
                            "files"
                        )
    finally:
        os.chdir(before)
    store_root = _local(spec.storage).rstrip("/")
    graph = PipelineGraph(
        name=spec.name,
        spec_path=path,
        storage=store_root,
        exoflow_storage=storage or f"{store_root}/exoflow",
        configuration=dict(spec.configuration),
        spark=spark,
        datasets={},
        database=spec.database,
    )
    _validate(graph, registry)
    _analyse(graph)
    return graph


def _import(file: Path, proxy: PipelineSession, root: Path) -> None:
    module_spec = importlib.util.spec_from_file_location(file.stem, str(file))
    if module_spec is None or module_spec.loader is None:  # pragma: no cover
        raise PipelineError(f"{file.relative_to(root)}: cannot be imported")
    module = importlib.util.module_from_spec(module_spec)
    module.__dict__["spark"] = proxy
    try:
        module_spec.loader.exec_module(module)
    except ExoflowError:
        raise
    except Exception as exc:
        raise PipelineError(
            f"{file.relative_to(root)}: importing it failed: {_first_line(exc)}"
        ) from exc


def _validate(graph: PipelineGraph, registry: _Registry) -> None:
    problems: list[str] = list(registry.unsupported)
    for ds in registry.datasets:
        if ds.name in graph.datasets:
            other = graph.datasets[ds.name]
            problems.append(f"dataset [{ds.name}] is defined twice: {other.where} and {ds.where}")
            continue
        if "." in ds.name or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", ds.name):
            problems.append(
                f"{ds.kind} [{ds.name}] ({ds.where}): exoflow-spark needs a simple name "
                "(letters, digits, '_', '-'; the spec's catalog/database qualify it)"
            )
            continue
        fmt = getattr(ds.element, "format", None)
        if ds.kind in (MATERIALIZED_VIEW, STREAMING_TABLE) and fmt not in (None, "delta"):
            problems.append(
                f"{ds.kind} [{ds.name}] ({ds.where}): format={fmt!r} is not supported; "
                "exoflow-spark publishes Delta tables (that is what makes them atomic)"
            )
        if ds.kind in (MATERIALIZED_VIEW, STREAMING_TABLE):
            ds.path = f"{graph.storage}/tables/{ds.name}"
        graph.datasets[ds.name] = ds
    for flow in registry.flows:
        target = graph.datasets.get(flow.target)
        if target is None:
            problems.append(
                f"flow [{flow.name}] ({flow.where}) writes [{flow.target}], which no "
                "@dp.materialized_view / @dp.table / create_streaming_table / create_sink "
                "defines"
            )
            continue
        target.flows.append(flow)
    for ds in graph.datasets.values():
        if ds.kind in (MATERIALIZED_VIEW, TEMPORARY_VIEW) and len(ds.flows) > 1:
            problems.append(
                f"{ds.kind} [{ds.name}] ({ds.where}) is written by {len(ds.flows)} flows ("
                + ", ".join(f"[{f.name}] at {f.where}" for f in ds.flows)
                + f"): a {ds.kind} has exactly one query; use a streaming table with "
                "@dp.append_flow to combine several"
            )
        if not ds.flows:
            problems.append(
                f"{ds.kind} [{ds.name}] ({ds.where}) has no flow: add @dp.append_flow("
                f"target={ds.name!r}) (or CREATE FLOW ... INSERT INTO {ds.name})"
            )
    if problems:
        raise PipelineError(
            f"pipeline {graph.spec_path} is refused, nothing ran:\n  - " + "\n  - ".join(problems)
        )


def _analyse(graph: PipelineGraph) -> None:
    analysis = _Analysis(graph)
    for ds in graph.datasets.values():
        if ds.kind == SINK:
            for flow in ds.flows:
                analysis.stack.append(ds)
                try:
                    analysis.flow_df(flow)
                finally:
                    analysis.stack.pop()
        else:
            analysis.dataset_df(ds)
    graph.deps = {
        name: sorted({r for f in ds.flows for r, _ in f.reads if r in graph.datasets and r != name})
        for name, ds in graph.datasets.items()
    }
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        for dep in graph.deps[name]:
            visit(dep)
        order.append(name)

    for name in graph.datasets:
        visit(name)
    graph.order = order


# -- the exoflow DAG -------------------------------------------------------------------------
def _selection(
    graph: PipelineGraph,
    refresh: Sequence[str],
    full_refresh: Sequence[str],
    full_refresh_all: bool,
) -> tuple[set[str], set[str]]:
    """(datasets to update, streaming datasets to reset) for SDP's refresh options."""
    if full_refresh_all and (refresh or full_refresh):
        raise PipelineError("--full-refresh-all cannot be combined with --refresh/--full-refresh")
    for name in [*refresh, *full_refresh]:
        if name not in graph.datasets:
            raise PipelineError(
                f"--refresh/--full-refresh names [{name}], which is not a dataset of pipeline "
                f"[{graph.name}] (datasets: {', '.join(graph.order)})"
            )
    if full_refresh_all:
        return set(graph.datasets), set(graph.datasets)
    if refresh or full_refresh:
        return set(refresh) | set(full_refresh), set(full_refresh)
    return set(graph.datasets), set()


def build_dag(
    graph: PipelineGraph,
    *,
    refresh: Sequence[str] = (),
    full_refresh: Sequence[str] = (),
    full_refresh_all: bool = False,
) -> Node:
    """The exoflow DAG that runs one update of the pipeline (see the module doc)."""
    selected, reset = _selection(graph, refresh, full_refresh, full_refresh_all)
    nodes: dict[str, Node] = {}
    for name in graph.order:
        ds = graph.datasets[name]
        inputs = {d: nodes[d] for d in graph.deps[name] if d in nodes}
        if ds.kind == TEMPORARY_VIEW:
            nodes[name] = _view_task(graph, ds).bind(**inputs)
        elif name not in selected:
            if ds.kind != SINK:
                nodes[name] = _published_task(ds).bind()
        elif ds.kind == MATERIALIZED_VIEW:
            nodes[name] = _mv_task(graph, ds).bind(**inputs)
        else:
            pre = {}
            if name in reset and ds.kind == STREAMING_TABLE:
                pre["_reset"] = _reset_task(graph, ds).bind()
            flows = [
                _flow_task(graph, ds, f, single=len(ds.flows) == 1).bind(**inputs, **pre)
                for f in ds.flows
            ]
            if len(flows) == 1:
                nodes[name] = flows[0]
            else:
                nodes[name] = _union_task(ds).bind(*flows)
    outputs = {
        n: nodes[n] for n in graph.order if n in nodes and graph.datasets[n].kind != TEMPORARY_VIEW
    }
    return _summary_task(graph).bind(**outputs)


def _view_task(graph: PipelineGraph, ds: Dataset) -> Task[Any]:
    flow = ds.flows[0]

    def temporary_view(**inputs: Any) -> Any:
        return evaluate_flow(flow, _Runtime(graph, current_task().spark, inputs))

    return Task(
        temporary_view, TaskOptions(name=ds.name, checkpoint=graph.checkpoint_mode(ds.name))
    )


def _published_task(ds: Dataset) -> Task[Any]:
    def published_table() -> DeltaSnapshot:
        spark = current_task().spark
        snap = table_snapshot(spark, ds.path)
        if snap.version < 0:
            raise PipelineError(
                f"{ds.kind} [{ds.name}] was not selected for refresh but has never been "
                f"published ({ds.path}): refresh it too"
            )
        return snap

    return Task(published_table, TaskOptions(name=ds.name))


def _mv_task(graph: PipelineGraph, ds: Dataset) -> Task[Any]:
    flow = ds.flows[0]
    partition_by = list(getattr(ds.element, "partition_cols", None) or []) or None

    def materialized_view(**inputs: Any) -> DeltaSnapshot:
        spark = current_task().spark
        df = evaluate_flow(flow, _Runtime(graph, spark, inputs))
        # one Delta commit replaces the table; txnAppId/txnVersion make it once per workflow id
        write_delta(
            df,
            ds.path,
            mode="overwrite",
            partition_by=partition_by,
            options={"overwriteSchema": "true"},
        )
        return table_snapshot(spark, ds.path)

    return Task(materialized_view, TaskOptions(name=ds.name, sink=True))


GENERATION_PROPERTY = "exoflow.pipelines.generation"


def _generation(spark: Any, path: str) -> int:
    """How many times the streaming table at ``path`` was fully refreshed (a table property:
    each reset starts its flows' streams under new names, so new checkpoints and new
    ``txnAppId`` values: Delta would otherwise skip the replayed batches as already written)."""
    if table_snapshot(spark, path).version < 0:
        return 0
    rows = spark.sql(f"SHOW TBLPROPERTIES delta.`{path}`").collect()
    props = {r[0]: r[1] for r in rows}
    return int(props.get(GENERATION_PROPERTY, "0"))


def _reset_task(graph: PipelineGraph, ds: Dataset) -> Task[Any]:
    def full_refresh() -> dict[str, Any]:
        spark = current_task().spark
        if table_snapshot(spark, ds.path).version < 0:
            return {"reset": ds.name, "generation": 0}
        generation = _generation(spark, ds.path) + 1
        empty = spark.read.format("delta").load(ds.path).limit(0)
        empty.write.format("delta").mode("overwrite").save(ds.path)
        spark.sql(
            f"ALTER TABLE delta.`{ds.path}` SET TBLPROPERTIES "
            f"('{GENERATION_PROPERTY}' = '{generation}')"
        )
        return {"reset": ds.name, "generation": generation}

    return Task(full_refresh, TaskOptions(name=f"{ds.name}.full-refresh", sink=True))


class _FlowTask(StreamingTask):
    """A streaming table's flow: its stream name (checkpoint, ``txnAppId``) carries the
    table's full-refresh generation, read when the query starts."""

    def __init__(
        self, fn: Callable[..., Any], opts: TaskOptions, stream: StreamOptions, base: str, path: str
    ) -> None:
        super().__init__(fn, opts, stream)
        self.base = base
        self.path = path

    def finish(self, result: Any, ctx: Any) -> Any:
        generation = _generation(ctx.spark, self.path)
        name = f"{self.base}.g{generation}" if generation else self.base
        return run_stream(result, replace(self.stream, stream_name=name), ctx)


class _SinkFlowTask(StreamingTask):
    """A flow into a sink (``dp.create_sink``): each micro-batch goes to the sink's target."""

    def __init__(
        self, fn: Callable[..., Any], opts: TaskOptions, stream: StreamOptions, sink: SinkTarget
    ) -> None:
        super().__init__(fn, opts, stream)
        self.sink = sink

    def finish(self, result: Any, ctx: Any) -> Any:
        return run_stream(result, self.stream, ctx, sink=self.sink)


def _flow_task(graph: PipelineGraph, ds: Dataset, flow: FlowDef, *, single: bool) -> Task[Any]:
    def streaming_flow(**inputs: Any) -> Any:
        inputs = {k: v for k, v in inputs.items() if k != "_reset"}
        return evaluate_flow(flow, _Runtime(graph, current_task().spark, inputs))

    task_id = ds.name if single else validate_id(f"{ds.name}.{flow.name}", kind="task id")
    opts = TaskOptions(checkpoint=False, name=task_id, sink=True)
    if ds.kind == SINK:
        fmt = str(ds.element.format)
        options = dict(ds.element.options)
        if fmt == "delta":  # written once per micro-batch (txnAppId/txnVersion)
            target = SinkTarget(fmt, options.pop("path", None), options)
        else:  # at least once: the format has no idempotent commit
            target = SinkTarget(fmt, None, options)
        stream = StreamOptions(stream_name=graph.stream_name(flow))
        return _SinkFlowTask(streaming_flow, opts, stream, target)
    base = graph.stream_name(flow)
    stream = StreamOptions(table=ds.path, stream_name=base)
    return _FlowTask(streaming_flow, opts, stream, base, ds.path)


def _union_task(ds: Dataset) -> Task[Any]:
    def streaming_table(*flows: Any) -> Any:
        if ds.kind == SINK:
            return {"sink": ds.name, "flows": [f.name for f in ds.flows]}
        return table_snapshot(current_task().spark, ds.path)

    return Task(streaming_table, TaskOptions(name=ds.name))


def _summary_task(graph: PipelineGraph) -> Task[Any]:
    tables = [
        (n, graph.datasets[n].path)
        for n in graph.order
        if graph.datasets[n].kind in (MATERIALIZED_VIEW, STREAMING_TABLE)
    ]

    def pipeline_update(**outputs: Any) -> dict[str, Any]:
        spark = current_task().spark
        _register_tables(spark, graph, tables)
        return {"pipeline": graph.name, "datasets": sorted(outputs)}

    return Task(pipeline_update, TaskOptions(name=validate_id(f"{_id(graph.name)}.update")))


def _register_tables(spark: Any, graph: PipelineGraph, tables: Iterable[tuple[str, str]]) -> None:
    """Name the published tables in the session's catalog (best effort: the Delta paths are
    the tables; a catalog that refuses an external table only loses the name)."""
    prefix = f"`{graph.database}`." if graph.database else ""
    for name, path in tables:
        try:
            spark.sql(f"CREATE TABLE IF NOT EXISTS {prefix}`{name}` USING DELTA LOCATION '{path}'")
        except Exception as exc:
            logger.warning("could not name table %s in the catalog: %s", name, _first_line(exc))


# -- runs ------------------------------------------------------------------------------------
def next_workflow_id(graph: PipelineGraph) -> str:
    """The workflow id of the next update: the newest unfinished one (a killed or failed
    update resumes), else a new ``<pipeline>-<n>``."""
    prefix = _id(graph.name)
    pattern = re.compile(rf"{re.escape(prefix)}-(\d+)")
    mine = []
    for info in api.list_workflows(storage=graph.exoflow_storage, spark=graph.spark):
        m = pattern.fullmatch(info.workflow_id)
        if m:
            mine.append((int(m.group(1)), info))
    if not mine:
        return f"{prefix}-1"
    n, newest = max(mine, key=lambda t: t[0])
    if newest.status is not WorkflowStatus.SUCCESSFUL:
        return newest.workflow_id
    return f"{prefix}-{n + 1}"


def plan_text(graph: PipelineGraph, dag: Node, workflow_id: str) -> str:
    """What running ``dag`` under ``workflow_id`` would do: per task, the action and why."""
    plan = api.explain(
        dag, workflow_id=workflow_id, storage=graph.exoflow_storage, spark=graph.spark
    )
    lines = [f"pipeline [{graph.name}] -> workflow [{workflow_id}] under {graph.exoflow_storage}"]
    lines.append("datasets (dependency order):")
    for row in graph.describe():
        reads = ", ".join(row["reads"]) or "-"
        lines.append(
            f"  {row['dataset']:<32} {row['kind']:<18} {row['defined_at']:<40} reads: {reads}"
        )
    lines.append("plan:")
    lines.append(str(plan))
    return "\n".join(lines)


def run_pipeline(
    spec_path: str | os.PathLike[str],
    spark: Any | None = None,
    *,
    workflow_id: str | None = None,
    storage: str | None = None,
    refresh: Sequence[str] = (),
    full_refresh: Sequence[str] = (),
    full_refresh_all: bool = False,
    max_parallel: int = 4,
    progress: Any = False,
) -> dict[str, Any]:
    """Run one update of an SDP project as an exoflow workflow (resuming an unfinished one).

    Returns ``{"workflow_id": ..., "output": ...}``. The DAG alone: :func:`pipeline_dag`.

    Example:
        >>> xf.run_pipeline("my_pipeline/spark-pipeline.yml", spark)
    """
    graph = load_pipeline(spec_path, spark, storage=storage)
    dag = build_dag(
        graph, refresh=refresh, full_refresh=full_refresh, full_refresh_all=full_refresh_all
    )
    wf = workflow_id or next_workflow_id(graph)
    out = api.run(
        dag,
        workflow_id=wf,
        storage=graph.exoflow_storage,
        spark=graph.spark,
        max_parallel=max_parallel,
        progress=progress,
    )
    return {"workflow_id": wf, "storage": graph.exoflow_storage, "output": out}


def pipeline_dag(
    spec_path: str | os.PathLike[str],
    spark: Any | None = None,
    *,
    refresh: Sequence[str] = (),
    full_refresh: Sequence[str] = (),
    full_refresh_all: bool = False,
) -> Node:
    """The DAG of one update of an SDP project, for ``xf.run(dag, workflow_id=...,
    storage=...)`` (use the spec's ``<storage>/exoflow`` as storage so streaming checkpoints
    carry over between updates).

    Example:
        >>> dag = xf.pipeline_dag("my_pipeline/spark-pipeline.yml", spark)
        >>> xf.run(dag, workflow_id="nightly-1", storage="my_pipeline/pipeline-storage/exoflow")
    """
    graph = load_pipeline(spec_path, spark)
    return build_dag(
        graph, refresh=refresh, full_refresh=full_refresh, full_refresh_all=full_refresh_all
    )


# -- the command line (``exoflow-spark run path/to/spark-pipeline.yml``) --------------------
def _names(value: str) -> list[str]:
    return [n.strip() for n in value.split(",") if n.strip()]


def add_run_arguments(parser: Any) -> None:
    """The ``spark-pipelines run`` options, for ``exoflow-spark run spec.yml``."""
    group = parser.add_argument_group("Spark Declarative Pipelines (TARGET is spark-pipeline.yml)")
    group.add_argument(
        "--refresh",
        type=_names,
        action="extend",
        default=[],
        metavar="A,B",
        help="update only these datasets (the others are read as published)",
    )
    group.add_argument(
        "--full-refresh",
        type=_names,
        action="extend",
        default=[],
        metavar="A,B",
        help="reset these datasets (streaming checkpoints too) and recompute them",
    )
    group.add_argument(
        "--full-refresh-all", action="store_true", help="reset and recompute every dataset"
    )
    group.add_argument(
        "--dry-run",
        action="store_true",
        help="validate the graph and print the plan (what runs, what restores, why); run nothing",
    )


def cli_run(args: Any, spark: Any) -> tuple[int, str]:
    """``exoflow-spark run spec.yml``: the exit code and the text to print."""
    import json

    graph = load_pipeline(args.target, spark, storage=args.storage)
    dag = build_dag(
        graph,
        refresh=args.refresh,
        full_refresh=args.full_refresh,
        full_refresh_all=args.full_refresh_all,
    )
    wf = args.workflow_id or next_workflow_id(graph)
    if args.dry_run:
        return 0, plan_text(graph, dag, wf)
    api.run(
        dag,
        workflow_id=wf,
        storage=graph.exoflow_storage,
        spark=spark,
        max_parallel=args.max_parallel,
        progress=False if args.no_progress else "auto",
    )
    status = api.get_status(wf, storage=graph.exoflow_storage, spark=spark)
    doc = {
        "pipeline": graph.name,
        "workflow_id": wf,
        "storage": graph.exoflow_storage,
        "status": status.value,
        "tables": {n: graph.datasets[n].path for n in graph.order if graph.datasets[n].path},
    }
    text = (
        json.dumps(doc, indent=2)
        if args.json
        else (
            f"pipeline {graph.name}: workflow {wf} {status.value} (storage {graph.exoflow_storage})"
        )
    )
    return (0 if status is WorkflowStatus.SUCCESSFUL else 1), text
