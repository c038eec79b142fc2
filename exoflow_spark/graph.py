"""Graph algorithms in plain DataFrame operations, for online-offline graph pipelines.

* :func:`rmat_edges`: a deterministic, seeded R-MAT power-law edge generator that runs on the
  executors (any size: thousands to tens of millions of edges), split into epochs;
* :func:`pagerank`: PageRank with networkx's semantics (``nx.pagerank(G, weight=None)``:
  dangling nodes spread their rank uniformly);
* :func:`tunkrank`: the TunkRank influence score (Tunkelang's PageRank variant for followers);
* :func:`connected_components`: weakly connected components by min-label propagation.

Edges are DataFrames with ``src`` and ``dst`` integer columns (``u -> v``: u links to/follows
v; ids are read as LONG, any value a LONG holds). Parallel edges count once (like a networkx
``DiGraph``); a self-loop is an edge like any other (networkx's semantics: it counts in the
out-degree). An edge with a null end, a missing ``src``/``dst`` column or non-integer ids raise
:class:`~exoflow_spark.InvalidOptionError` (networkx rejects ``None`` as a node); an empty
graph gives an empty result after 0 iterations.

How they run: a graph of at most ``spark.exoflow.graph.singleTaskMaxEdges`` edges (2,000,000
unless set; parallel edges counted) runs as ONE Spark task (``mapInArrow`` over the edges;
numpy inside, on sorted input, so the same result every time): two Spark jobs in all (the
edges materialised and counted, then the task) instead of one per step. ``method=`` forces
either way. Larger graphs run the distributed loop.

How the distributed loop runs (the structure of GraphX's, in DataFrames): the links are
partitioned by source node and cached; each iteration is one Spark action that joins them
with the previous values (partitioned the same way: nothing but the messages is shuffled),
aggregates by destination node and materialises the result as a local checkpoint
(``localCheckpoint``: the plan and the RDD lineage stay one step deep). The iteration's
convergence metric, and PageRank's dangling mass for the next step, are collected by the
same action (``DataFrame.observe``): no extra job per iteration.
:func:`exoflow_spark.iterate` runs the loop, checks convergence after every step and makes
the durable cuts (Parquet files) that recovery needs, from measured costs. While a loop
runs, its session's adaptive query execution is off (a step is then one job of two stages;
see ``_without_adaptive``), and each step's Column expressions are built once per loop.
Every function works inside or outside a task (outside, pass ``path=`` for the durable
cuts).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Iterator
from typing import Any

from . import InvalidOptionError, IterationReport, iterate

logger = logging.getLogger(__name__)

#: R-MAT quadrant probabilities (Chakrabarti et al.; the Graph500 defaults).
RMAT_ABC = (0.57, 0.19, 0.19)


def rmat_edges(
    spark: Any,
    *,
    num_edges: int,
    scale: int,
    seed: int = 7,
    epochs: int = 1,
    abc: tuple[float, float, float] = RMAT_ABC,
    partitions: int | None = None,
    epoch: int | None = None,
) -> Any:
    """Generate ``num_edges`` R-MAT edge events over ``2**scale`` node ids.

    Each edge picks one quadrant per level from a hash of ``(seed, edge id, level)``, so the
    same arguments give the same edges on any cluster and partitioning. Edge ``i`` belongs to
    epoch ``i * epochs // num_edges``. Self-loops and repeated edges occur, as in real event
    streams; :func:`simple_graph` removes them. ``epoch=k`` generates only epoch ``k``'s
    edges (without computing the others).

    Returns:
        DataFrame ``[event_id, src, dst, epoch]``.

    Example:
        >>> events = xf.graph.rmat_edges(spark, num_edges=100_000, scale=14, epochs=10)
    """
    from pyspark.sql import functions as F

    if not isinstance(num_edges, int) or num_edges < 1:
        raise InvalidOptionError(f"rmat_edges: num_edges={num_edges!r} must be an int >= 1")
    if not isinstance(scale, int) or not 1 <= scale <= 40:
        raise InvalidOptionError(f"rmat_edges: scale={scale!r} must be an int in 1..40")
    if not isinstance(epochs, int) or not 1 <= epochs <= num_edges:
        raise InvalidOptionError(f"rmat_edges: epochs={epochs!r} must be in 1..num_edges")
    a, b, c = abc
    if min(a, b, c) < 0 or a + b + c >= 1:
        raise InvalidOptionError(f"rmat_edges: abc={abc!r} must be >= 0 and sum to < 1")
    lo, hi = 0, num_edges
    if epoch is not None:
        if not isinstance(epoch, int) or not 0 <= epoch < epochs:
            raise InvalidOptionError(f"rmat_edges: epoch={epoch!r} must be in 0..{epochs - 1}")
        lo = -(-epoch * num_edges // epochs)  # the first id i with i * epochs // n == epoch
        hi = -(-(epoch + 1) * num_edges // epochs)
    if not isinstance(seed, int):
        raise InvalidOptionError(f"rmat_edges: seed={seed!r} must be an int")
    ids = spark.range(lo, hi, 1, partitions) if partitions else spark.range(lo, hi)

    def d(x: float) -> str:  # a DOUBLE literal that parses back to exactly x
        return f"{float(x)!r}D"

    # one SQL expression per column: built from PySpark functions, the 2 * scale levels cost
    # several Py4J round trips per call (3.5 s at scale 9 on a busy driver)
    src, dst = ["CAST(0 AS BIGINT)"], ["CAST(0 AS BIGINT)"]
    for level in range(scale):
        r = f"(CAST(pmod(xxhash64({seed}, id, {level}), {1 << 31}) AS DOUBLE) / {d(1 << 31)})"
        bit = 1 << (scale - 1 - level)
        src.append(f"CASE WHEN {r} >= {d(a + b)} THEN {bit} ELSE 0 END")
        dst.append(
            f"CASE WHEN ({r} >= {d(a)} AND {r} < {d(a + b)}) OR {r} >= {d(a + b + c)} "
            f"THEN {bit} ELSE 0 END"
        )
    return ids.select(
        F.col("id").alias("event_id"),
        F.expr(" + ".join(src)).alias("src"),
        F.expr(" + ".join(dst)).alias("dst"),
        F.expr(f"cast(id * {int(epochs)} div {int(num_edges)} as int)").alias("epoch"),
    )


def simple_graph(edges: Any) -> Any:
    """Distinct ``(src, dst)`` pairs without self-loops (a simple directed graph)."""
    from pyspark.sql import functions as F

    return edges.select("src", "dst").where(F.col("src") != F.col("dst")).distinct()


def undirected(edges: Any) -> Any:
    """Both directions of every edge (how networkx's PageRank sees an undirected graph)."""
    from pyspark.sql import functions as F

    flipped = edges.select(F.col("dst").alias("src"), F.col("src").alias("dst"))
    return edges.select("src", "dst").unionByName(flipped).distinct()


def vertices(edges: Any) -> Any:
    """Every node that appears in ``edges``, as ``[node]``."""
    from pyspark.sql import functions as F

    return (
        edges.select(F.col("src").alias("node"))
        .union(edges.select(F.col("dst").alias("node")))
        .distinct()
    )


#: edges per partition of the links (at least 2 partitions; small graphs are dominated by
#: per-task overhead, not by work)
EDGES_PER_PARTITION = 250_000
_INTEGRAL = {"tinyint", "smallint", "int", "bigint"}


class _Metrics:
    """The metrics each iteration's action collects (``DataFrame.observe``), by iteration."""

    def __init__(self) -> None:
        self.pending: dict[int, Any] = {}
        self.values: dict[int, dict[str, Any]] = {}

    def observe(self, df: Any, i: int, *exprs: Any) -> Any:
        from pyspark.sql import Observation

        obs = Observation(f"exoflow-graph-{uuid.uuid4().hex[:12]}")
        self.pending[i] = obs
        return df.observe(obs, *exprs)

    def get(self, i: int) -> dict[str, Any] | None:
        """Iteration ``i``'s metrics (``None`` if its action did not run in this process)."""
        if i not in self.values and i in self.pending:
            self.values[i] = dict(self.pending.pop(i).get)
        return self.values.get(i)


_ADAPTIVE = "spark.sql.adaptive.enabled"
_adaptive_lock = threading.Lock()
#: id(session) -> [loops running in it, its adaptive setting before the first of them]
_adaptive_off: dict[int, list[Any]] = {}


@contextlib.contextmanager
def _without_adaptive(spark: Any) -> Iterator[None]:
    """Adaptive query execution off in ``spark`` while a loop runs (restored when the last
    loop running in that session ends).

    Without it a step is one Spark job of two stages: the local checkpoint of the previous
    values keeps their hash partitioning (under AQE it is unknown when the checkpoint is
    taken), so they meet the cached links without a shuffle, and no stage waits for a
    re-optimisation. PageRank on the karate club: 5.3 s instead of 8.3 s for 20 steps.
    Queries that other threads plan in the same session meanwhile run without AQE too.
    """
    key = id(spark)
    with _adaptive_lock:
        entry = _adaptive_off.get(key)
        if entry is None:
            entry = _adaptive_off[key] = [0, spark.conf.get(_ADAPTIVE)]
            spark.conf.set(_ADAPTIVE, "false")
        entry[0] += 1
    try:
        yield
    finally:
        with _adaptive_lock:
            entry[0] -= 1
            if entry[0] == 0:
                del _adaptive_off[key]
                spark.conf.set(_ADAPTIVE, entry[1])


def _local_cut(df: Any) -> Any:
    """Materialise ``df`` as a local checkpoint (executor storage): one action, lineage cut."""
    return df.localCheckpoint(eager=True)


def _edges(edges: Any, fn: str) -> Any:
    """``edges`` as distinct ``[src, dst]`` LONG pairs, after checking columns and types."""
    from pyspark.sql import functions as F

    cols = dict(edges.dtypes)
    missing = [c for c in ("src", "dst") if c not in cols]
    if missing:
        raise InvalidOptionError(
            f"{fn}: the edges DataFrame has no column {', '.join(map(repr, missing))} (it has "
            f"{sorted(cols)}); pass edges as [src, dst] integer node ids, e.g. "
            f"df.withColumnRenamed('from', 'src')"
        )
    wrong = {c: cols[c] for c in ("src", "dst") if cols[c] not in _INTEGRAL}
    if wrong:
        raise InvalidOptionError(
            f"{fn}: node ids must be integers (LONG), got {wrong}; map other ids to integers "
            f"first (e.g. a dense index from F.dense_rank over the distinct ids)"
        )
    return edges.select(F.col("src").cast("long"), F.col("dst").cast("long"))


def _partitions(spark: Any, num_edges: int, partitions: int | None) -> int:
    if partitions is not None:
        if not isinstance(partitions, int) or partitions < 1:
            raise InvalidOptionError(f"partitions={partitions!r} must be an int >= 1 (or None)")
        return partitions
    cap = int(spark.conf.get("spark.sql.shuffle.partitions") or 200)
    # at least 2: one partition is Spark's SinglePartition, which a join cannot line up with
    # the other side's hash partitioning, so the cached links would be shuffled every step
    return max(min(2, cap), min(cap, -(-num_edges // EDGES_PER_PARTITION)))


def _cut(edges: Any, fn: str) -> tuple[Any, int]:
    """``edges`` as ``[src, dst]`` LONG pairs, materialised as a local checkpoint (one
    action, without a shuffle, which also counts them, duplicates included).

    Returns ``(edges, count)``; raises on a null edge end.
    """
    from pyspark.sql import functions as F

    sizes = _Metrics()
    graph = _local_cut(
        sizes.observe(
            _edges(edges, fn),
            0,
            F.count(F.lit(1)).alias("edges"),
            F.count_if(F.col("src").isNull() | F.col("dst").isNull()).alias("nulls"),
        )
    )
    m = sizes.get(0) or {}
    bad = int(m.get("nulls") or 0)
    if bad:
        graph.unpersist()
        raise InvalidOptionError(
            f"{fn}: {bad} edge(s) have a null src or dst (networkx rejects None as a node); "
            f"drop them first, e.g. edges.dropna(subset=['src', 'dst'])"
        )
    return graph, int(m.get("edges") or 0)


def _links(
    edges: Any, num_edges: int, partitions: int | None, *, both: bool
) -> tuple[Any, int, int, int]:
    """The links of the distributed loop over the edges of :func:`_cut` (which it releases),
    partitioned by ``src`` and cached: ``[src, dst, w, own, dang]`` with ``w = 1/outdeg(src)``
    on each distinct edge, and one ``own`` row per node (``src = dst = node``, ``w = 0``)
    that carries its previous value through the join and makes every node appear in the
    aggregate (``dang = 1`` when the node has no out-edge). ``both``: both directions of
    every edge (undirected).

    Returns ``(links, partitions, nodes, dangling nodes)``.
    """
    from pyspark.sql import functions as F

    graph = edges
    if both:
        graph = graph.unionByName(
            graph.select(F.col("dst").alias("src"), F.col("src").alias("dst"))
        )
    graph = graph.distinct()
    parts = _partitions(graph.sparkSession, num_edges * (2 if both else 1), partitions)
    outdeg = graph.groupBy("src").agg(F.count(F.lit(1)).alias("deg"))
    real = graph.join(outdeg, "src").select(
        "src",
        "dst",
        (1.0 / F.col("deg")).alias("w"),
        F.lit(False).alias("own"),
        F.lit(0).alias("dang"),
    )
    nodes = vertices(graph)
    own = nodes.join(outdeg, nodes.node == outdeg.src, "left").select(
        F.col("node").alias("src"),
        F.col("node").alias("dst"),
        F.lit(0.0).alias("w"),
        F.lit(True).alias("own"),
        F.when(F.col("deg").isNull(), 1).otherwise(0).alias("dang"),
    )
    # cached, not locally checkpointed: a cached relation keeps its partitioning, so the
    # join of every step shuffles only the (small) previous values, never the links
    links = real.unionByName(own).repartition(parts, "src").cache()
    row = links.agg(
        F.count_if(F.col("own")).alias("nodes"), F.sum("dang").alias("dangling")
    ).first()
    edges.unpersist()
    m = row.asDict() if row is not None else {}
    return links, parts, int(m.get("nodes") or 0), int(m.get("dangling") or 0)


#: how a graph function runs (see :func:`_single_task`)
METHODS = ("auto", "single-task", "distributed")
#: the most edges (parallel edges counted) a graph may have for ``method="auto"`` to run it
#: as one Spark task; the session conf ``spark.exoflow.graph.singleTaskMaxEdges`` overrides it
SINGLE_TASK_MAX_EDGES = 2_000_000
SINGLE_TASK_CONF = "spark.exoflow.graph.singleTaskMaxEdges"


def _check_method(spark: Any, method: str, fn: str) -> int:
    """Refuse a bad ``method`` or a bad ``spark.exoflow.graph.singleTaskMaxEdges`` before any
    Spark job; return the most edges ``method="auto"`` runs as one Spark task."""
    if method not in METHODS:
        raise InvalidOptionError(
            f"{fn}: method={method!r} is not one of {', '.join(map(repr, METHODS))}"
        )
    raw = spark.conf.get(SINGLE_TASK_CONF, None)
    try:
        return SINGLE_TASK_MAX_EDGES if raw in (None, "") else int(raw)
    except ValueError:
        raise InvalidOptionError(
            f"{fn}: {SINGLE_TASK_CONF}={raw!r} is not an integer; set it to the most edges "
            f"a graph may have to run as one Spark task (0: always the distributed loop)"
        ) from None


def _in_one_task(num_edges: int, method: str, limit: int, fn: str) -> bool:
    """Whether ``fn`` runs as one Spark task (``method``, or for ``"auto"`` the size)."""
    if method != "auto":
        chosen = method == "single-task"
        logger.info("%s: %d edges, method=%r", fn, num_edges, method)
        return chosen
    chosen = num_edges <= limit
    logger.info(
        "%s: %d edges, %s (method='auto', one task up to %d edges)",
        fn,
        num_edges,
        "one Spark task" if chosen else "the distributed loop",
        limit,
    )
    return chosen


def _kernel(kind: str, max_iter: int, tol: float, param: float) -> Any:
    """The function that runs a whole graph algorithm inside one Spark task
    (``mapInArrow`` over all the edges; parallel edges count once): numpy over arrays
    indexed by node.

    Self-contained (it imports numpy and pyarrow where it runs and refers to nothing else in
    this module), so it is pickled by value: executors and a Spark Connect server need
    pyspark's own dependencies, not exoflow. The steps are the distributed loop's, in the
    same order (networkx's for PageRank); components label by min-label propagation with
    pointer jumping (``label = label[label]``), which reaches the same labels (the smallest
    id of each component) in fewer rounds. Edges are sorted first, so the float sums, and
    the result, do not depend on the order the rows arrive in.
    """

    def run(batches: Any) -> Any:
        import numpy as np
        import pyarrow as pa

        srcs, dsts = [], []
        for b in batches:
            srcs.append(b.column(0).to_numpy(zero_copy_only=False).astype(np.int64))
            dsts.append(b.column(1).to_numpy(zero_copy_only=False).astype(np.int64))
        if not srcs:
            return
        src, dst = np.concatenate(srcs), np.concatenate(dsts)
        del srcs, dsts
        order = np.lexsort((dst, src))
        src, dst = src[order], dst[order]
        if len(src) > 1:  # parallel edges count once
            keep = np.empty(len(src), dtype=bool)
            keep[0] = True
            np.not_equal(src[1:], src[:-1], out=keep[1:])
            keep[1:] |= dst[1:] != dst[:-1]
            src, dst = src[keep], dst[keep]
        nodes = np.unique(np.concatenate((src, dst)))
        n = len(nodes)
        si, di = np.searchsorted(nodes, src), np.searchsorted(nodes, dst)
        del src, dst, order
        rounds = 0
        if kind == "components":
            label = np.arange(n)
            while rounds < max_iter:
                new = label.copy()
                np.minimum.at(new, si, label[di])
                np.minimum.at(new, di, label[si])
                while True:  # pointer jumping: a label's label is in the same component
                    jumped = new[new]
                    if np.array_equal(jumped, new):
                        break
                    new = jumped
                rounds += 1
                changed = not np.array_equal(new, label)
                label = new
                if not changed:
                    break
            values: Any = nodes[label]
        else:
            deg = np.bincount(si, minlength=n).astype(np.float64)
            w = 1.0 / deg[si]
            threshold = n * tol
            if kind == "pagerank":
                dangling = deg == 0
                x = np.full(n, 1.0 / n)
                teleport = (1.0 - param) / n
                while rounds < max_iter:
                    spread = np.bincount(di, weights=x[si] * w, minlength=n)
                    new = teleport + param * x[dangling].sum() / n + param * spread
                    err = float(np.abs(new - x).sum())
                    x, rounds = new, rounds + 1
                    if err < threshold:
                        break
            else:  # tunkrank
                x = np.zeros(n)
                while rounds < max_iter:
                    new = np.bincount(di, weights=(1.0 + param * x[si]) * w, minlength=n)
                    err = float(np.abs(new - x).sum())
                    x, rounds = new, rounds + 1
                    if err < threshold:
                        break
            values = x
        for lo in range(0, n, 1 << 16):
            hi = min(n, lo + (1 << 16))
            yield pa.RecordBatch.from_arrays(
                [
                    pa.array(nodes[lo:hi]),
                    pa.array(values[lo:hi]),
                    pa.array(np.full(hi - lo, rounds, dtype=np.int32)),
                ],
                names=["node", "value", "rounds"],
            )

    return run


def _single_task(
    graph: Any,
    kind: str,
    column: str,
    dtype: str,
    max_iter: int,
    tol: float,
    param: float,
    *,
    fallback: bool,
) -> tuple[Any, IterationReport] | None:
    """Run ``kind`` over the edges of :func:`_cut` (which it releases) as one Spark task
    (:func:`_kernel`): one action, whose result is kept as a local checkpoint; the report
    counts its rounds.

    ``fallback`` (``method="auto"``): if the task fails (say the executors' Python has no
    numpy, or the task runs out of memory), log why and return ``None`` with ``graph`` still
    cached, for the distributed loop to run instead; otherwise the failure is raised.

    For a graph that fits one task this is what a Spark engineer would pick over a loop of
    jobs: a step of the distributed loop costs a Spark job (about 0.1-0.3 s of scheduling
    and shuffle on a small graph), a step here microseconds to milliseconds.
    """
    from pyspark.sql import functions as F

    metrics = _Metrics()
    schema = f"node LONG, value {dtype}, rounds INT"
    out = graph.coalesce(1).mapInArrow(_kernel(kind, max_iter, tol, param), schema)
    try:
        out = _local_cut(metrics.observe(out, 0, F.max("rounds").alias("rounds")))
    except Exception as exc:
        if not fallback:
            raise
        reason = next((ln for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        logger.warning(
            "%s as one Spark task failed (%s); running the distributed loop instead "
            "(method='distributed' skips the attempt)",
            kind,
            reason.strip()[:300],
        )
        return None
    graph.unpersist()
    rounds = int((metrics.get(0) or {}).get("rounds") or 0)
    return out.select("node", F.col("value").alias(column)), IterationReport(iterations=rounds)


class _Step:
    """One iteration's plan, with its Column expressions built once per loop (each PySpark
    function call costs several Py4J round trips: rebuilding them every step took about a
    third of a small graph's step time).

    The values flow along the links (``contribution`` of each link), combined per destination
    (``sum`` or ``min``) as ``c``, with each node's previous value as ``old`` and its dangling
    flag as ``dang``. The links are cached partitioned by ``src`` and the previous values come
    partitioned by node the same way (see :func:`_without_adaptive`): only the messages are
    shuffled, to their destination. The step's action observes ``metrics``
    (:class:`_Metrics`), and its result is ``[node, column]``.
    """

    def __init__(
        self,
        links: Any,
        parts: int,
        column: str,
        contribution: Any,
        combine: str,
        value: Any,
        metrics: _Metrics,
        *observed: Any,
    ) -> None:
        from pyspark.sql import functions as F

        self.links = links
        self.parts = parts
        self.key = links["src"]
        own = F.col("own")
        self.joined = [
            F.col("dst"),
            contribution.alias("c"),
            F.when(own, F.col(column)).alias("old"),
            F.when(own, F.col("dang")).alias("dang"),
        ]
        self.dst = F.col("dst")
        self.aggs = [
            getattr(F, combine)("c").alias("c"),
            F.max("old").alias("old"),
            F.max("dang").alias("dang"),
        ]
        self.node = F.col("dst").alias("node")
        self.rest = [F.col("old"), F.col("dang")]
        self.value = value
        self.out = [F.col("node"), F.col(column)]
        self.metrics = metrics
        self.observed = observed

    def __call__(self, values: Any, i: int, value: Any = None) -> Any:
        """Step ``i`` from ``values`` (``value``: this step's value column, if it is not the
        one given at construction)."""
        joined = self.links.join(values.hint("shuffle_hash"), self.key == values["node"])
        agg = (
            joined.select(*self.joined)
            .repartition(self.parts, self.dst)
            .groupBy(self.dst)
            .agg(*self.aggs)
        )
        new = agg.select(self.node, (self.value if value is None else value), *self.rest)
        return self.metrics.observe(new, i, *self.observed).select(*self.out)


def _empty(edges: Any, column: str, dtype: str) -> Any:
    from pyspark.sql import functions as F

    return edges.sparkSession.createDataFrame([], f"node LONG, {column} {dtype}").select(
        "node", F.col(column)
    )


def _begin(
    edges: Any,
    fn: str,
    method: str,
    algorithm: tuple[str, str, str],
    max_iter: int,
    tol: float,
    param: float,
) -> tuple[tuple[Any, IterationReport] | None, Any, int]:
    """What every graph function does first: check ``method``, materialise and count the
    edges (:func:`_cut`), and answer an empty graph, or a graph for one Spark task
    (``algorithm``: the kernel's kind, the result column and its type).

    Returns ``(result, None, 0)`` when answered, else ``(None, edges, count)`` for the
    distributed loop.
    """
    kind, column, dtype = algorithm
    limit = _check_method(edges.sparkSession, method, fn)
    graph, num_edges = _cut(edges, fn)
    if num_edges == 0:
        graph.unpersist()
        return (_empty(edges, column, dtype), IterationReport()), None, 0
    if _in_one_task(num_edges, method, limit, fn):
        auto = method == "auto"
        done = _single_task(graph, kind, column, dtype, max_iter, tol, param, fallback=auto)
        if done is not None:
            return done, None, 0
    return None, graph, num_edges


def pagerank(
    edges: Any,
    *,
    damping: float = 0.85,
    max_iter: int = 100,
    tol: float = 1e-10,
    path: str | None = None,
    every: int | None = None,
    partitions: int | None = None,
    method: str = "auto",
) -> tuple[Any, IterationReport]:
    """PageRank of a directed graph, as ``networkx.pagerank(G, alpha=damping, weight=None)``.

    Parallel edges count once (like a networkx ``DiGraph``), a self-loop links a node to
    itself; dangling nodes spread their rank uniformly. Iterates until the L1 change is below
    ``N * tol`` (networkx's test, checked after every step at no extra job) or ``max_iter``
    steps. Each step is one Spark action; the dangling mass it needs is collected by the
    previous step's action.

    Args:
        edges: ``[src, dst]`` integer node ids (see the module docstring for bad input:
            null ends, missing columns or non-integer ids raise InvalidOptionError).
        damping: networkx's ``alpha``, in (0, 1).
        max_iter: the most steps.
        tol: networkx's ``tol``.
        path: the folder of the distributed loop's durable cuts (needed outside a task).
        every: the distributed loop makes a durable cut every ``every`` steps (default:
            from measured costs).
        partitions: partitions of the distributed loop (default: one per 250,000 edges and
            at least 2, at most ``spark.sql.shuffle.partitions``).
        method: ``"single-task"`` runs every step inside one Spark task (numpy over the
            whole graph: no job per step); ``"distributed"`` runs one Spark job per step
            over partitioned links (any size); ``"auto"`` (the default) picks one task
            for graphs of at most ``spark.exoflow.graph.singleTaskMaxEdges`` edges
            (2,000,000 unless set; parallel edges counted) and falls back to the
            distributed loop, with a logged warning, if that task fails.

    Returns:
        ``([node, rank], report)``; ranks sum to 1; an empty graph gives no rows.
    """
    from pyspark.sql import functions as F

    if not 0 < damping < 1:
        raise InvalidOptionError(f"pagerank: damping={damping!r} must be in (0, 1)")
    done, graph, num_edges = _begin(
        edges, "pagerank", method, ("pagerank", "rank", "DOUBLE"), max_iter, tol, damping
    )
    if done is not None:
        return done
    links, parts, n, dangling = _links(graph, num_edges, partitions, both=False)
    teleport = (1.0 - damping) / n
    metrics = _Metrics()
    dangling_links = links.where(F.col("own") & (F.col("dang") == 1)).select("src")

    def dangling_mass(ranks: Any, i: int) -> float:
        if i == 0 and ranks is initial:
            return dangling / n
        m = metrics.get(i - 1)
        if m is None:  # not computed by the previous step here (e.g. resumed from a cut)
            row = (
                ranks.join(dangling_links, ranks.node == dangling_links.src)
                .agg(F.sum("rank").alias("d"))
                .first()
            )
            return float(row.d or 0.0) if row is not None else 0.0
        return float(m["dmass"] or 0.0)

    spread = damping * F.col("c")
    propagate = _Step(
        links,
        parts,
        "rank",
        F.col("rank") * F.col("w"),
        "sum",
        None,
        metrics,
        F.sum(F.abs(F.col("rank") - F.col("old"))).alias("err"),
        F.sum(F.when(F.col("dang") == 1, F.col("rank")).otherwise(0.0)).alias("dmass"),
    )

    def step(ranks: Any, i: int) -> Any:
        base = teleport + damping * dangling_mass(ranks, i) / n
        return propagate(ranks, i, (F.lit(base) + spread).alias("rank"))

    initial = _local_cut(
        links.where("own").select(F.col("src").alias("node"), F.lit(1.0 / n).alias("rank"))
    )
    return _loop(links, step, initial, max_iter, path, every, _converged(metrics, n * tol))


def tunkrank(
    edges: Any,
    *,
    p: float = 0.05,
    max_iter: int = 100,
    tol: float = 1e-10,
    path: str | None = None,
    every: int | None = None,
    partitions: int | None = None,
    method: str = "auto",
) -> tuple[Any, IterationReport]:
    """TunkRank influence: ``I(x) = sum over followers y of (1 + p * I(y)) / |following(y)|``.

    An edge ``y -> x`` means y follows x (parallel edges count once; a self-loop: y follows
    itself). ``p`` is the probability that a follower passes a message on. The fixed point
    exists for ``0 <= p < 1``; the iteration starts from 0 and stops when the L1 change is
    below ``N * tol`` (checked after every step, in the step's own action) or after
    ``max_iter`` steps. Bad input and the other arguments (``method`` too): as
    :func:`pagerank`.

    Returns:
        ``([node, influence], report)``; an empty graph gives no rows.
    """
    from pyspark.sql import functions as F

    if not 0 <= p < 1:
        raise InvalidOptionError(f"tunkrank: p={p!r} must be in [0, 1)")
    done, graph, num_edges = _begin(
        edges, "tunkrank", method, ("tunkrank", "influence", "DOUBLE"), max_iter, tol, p
    )
    if done is not None:
        return done
    links, parts, n, _ = _links(graph, num_edges, partitions, both=False)
    metrics = _Metrics()

    propagate = _Step(
        links,
        parts,
        "influence",
        (1.0 + p * F.col("influence")) * F.col("w"),
        "sum",
        F.col("c").alias("influence"),
        metrics,
        F.sum(F.abs(F.col("influence") - F.col("old"))).alias("err"),
    )

    def step(infl: Any, i: int) -> Any:  # a function: iterate fingerprints its code
        return propagate(infl, i)

    initial = _local_cut(
        links.where("own").select(F.col("src").alias("node"), F.lit(0.0).alias("influence"))
    )
    return _loop(links, step, initial, max_iter, path, every, _converged(metrics, n * tol))


def connected_components(
    edges: Any,
    *,
    max_iter: int = 200,
    path: str | None = None,
    partitions: int | None = None,
    method: str = "auto",
) -> tuple[Any, IterationReport]:
    """Weakly connected components: each node labelled with the smallest node id it reaches.

    Min-label propagation over both edge directions until no label changes (counted by each
    step's own action), as ``networkx.weakly_connected_components``. Bad input, ``path``,
    ``partitions`` and ``method``: as :func:`pagerank`; as one task, propagation is
    combined with pointer jumping (the same labels in fewer rounds, which the report
    counts).

    Returns:
        ``([node, component], report)``; an empty graph gives no rows.
    """
    from pyspark.sql import functions as F

    algorithm = ("components", "component", "LONG")
    done, graph, num_edges = _begin(
        edges, "connected_components", method, algorithm, max_iter, 0.0, 0.0
    )
    if done is not None:
        return done
    links, parts, _, _ = _links(graph, num_edges, partitions, both=True)
    metrics = _Metrics()

    propagate = _Step(
        links,
        parts,
        "component",
        F.col("component"),
        "min",
        F.col("c").alias("component"),
        metrics,
        F.count_if(F.col("component") != F.col("old")).alias("changed"),
    )

    def step(labels: Any, i: int) -> Any:  # a function: iterate fingerprints its code
        return propagate(labels, i)

    def unchanged(_previous: Any, _current: Any, i: int) -> bool:
        m = metrics.get(i)
        if m is None:
            return False
        return int(m["changed"] or 0) == 0

    initial = _local_cut(
        links.where("own").select(F.col("src").alias("node"), F.col("src").alias("component"))
    )
    return _loop(links, step, initial, max_iter, path, None, unchanged)


def _loop(
    links: Any,
    step: Any,
    initial: Any,
    max_iter: int,
    path: str | None,
    every: int | None,
    until: Any,
) -> tuple[Any, IterationReport]:
    """Run ``step`` from ``initial`` with :func:`exoflow_spark.iterate` (a local checkpoint
    after every step, durable cuts from measured costs or every ``every`` steps, the last
    step cut too) with adaptive query execution off; then drop the loop's caches."""
    with _without_adaptive(links.sparkSession):
        result, report = iterate(
            step,
            initial,
            max_iter,
            path=path,
            every=every,
            until=until,
            cut_last=True,
            truncate=_local_cut,
        )
    _release(links, initial)
    return result, report


def _release(*cached: Any) -> None:
    """Drop the caches a function made (its result no longer depends on them)."""
    for df in cached:
        df.unpersist()


def _converged(metrics: _Metrics, threshold: float) -> Any:
    """``until`` for :func:`exoflow_spark.iterate`: the L1 change that step ``i``'s own action
    observed is below ``threshold`` (no extra job)."""

    def check(_previous: Any, _current: Any, i: int) -> bool:
        m = metrics.get(i)
        if m is None:
            return False
        err = float(m["err"] or 0.0)
        logger.debug("step %d: L1 change %.3g (threshold %.3g)", i, err, threshold)
        return err < threshold

    return check
