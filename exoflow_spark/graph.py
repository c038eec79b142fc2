"""Graph algorithms in plain DataFrame operations, for online-offline graph pipelines.

* :func:`rmat_edges`: a deterministic, seeded R-MAT power-law edge generator that runs on the
  executors (any size: thousands to tens of millions of edges), split into epochs;
* :func:`pagerank`: PageRank with networkx's semantics (``nx.pagerank(G, weight=None)``:
  dangling nodes spread their rank uniformly), lineage cut by :func:`exoflow_spark.iterate`;
* :func:`tunkrank`: the TunkRank influence score (Tunkelang's PageRank variant for followers);
* :func:`connected_components`: weakly connected components by min-label propagation.

Edges are DataFrames with ``src`` and ``dst`` LONG columns (``u -> v``: u links to/follows v).
Every function is lazy until it needs a convergence check, and works inside or outside a
task (outside, pass ``path=`` for the lineage cuts).
"""

from __future__ import annotations

import logging
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
    ids = spark.range(lo, hi, 1, partitions) if partitions else spark.range(lo, hi)
    src = F.lit(0).cast("long")
    dst = F.lit(0).cast("long")
    for level in range(scale):
        h = F.xxhash64(F.lit(seed), F.col("id"), F.lit(level))
        r = F.pmod(h, F.lit(1 << 31)).cast("double") / float(1 << 31)
        bit = 1 << (scale - 1 - level)
        src = src + F.when(r >= a + b, bit).otherwise(0)
        dst = dst + F.when(((r >= a) & (r < a + b)) | (r >= a + b + c), bit).otherwise(0)
    return ids.select(
        F.col("id").alias("event_id"),
        src.alias("src"),
        dst.alias("dst"),
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


def pagerank(
    edges: Any,
    *,
    damping: float = 0.85,
    max_iter: int = 100,
    tol: float = 1e-10,
    path: str | None = None,
    every: int | None = None,
) -> tuple[Any, IterationReport]:
    """PageRank of a directed graph, as ``networkx.pagerank(G, alpha=damping, weight=None)``.

    Parallel edges count once (like a networkx ``DiGraph``); dangling nodes spread their rank
    uniformly. Iterates until the L1 change is below ``N * tol`` (checked at lineage cuts) or
    ``max_iter`` steps.

    Returns:
        ``([node, rank], report)``; ranks sum to 1.
    """
    from pyspark.sql import functions as F

    if not 0 < damping < 1:
        raise InvalidOptionError(f"pagerank: damping={damping!r} must be in (0, 1)")
    graph = edges.select("src", "dst").distinct().cache()
    nodes = vertices(graph).cache()
    n = nodes.count()
    if n == 0:
        return nodes.withColumn("rank", F.lit(0.0)), IterationReport()
    outdeg = graph.groupBy("src").agg(F.count("*").alias("deg"))
    links = graph.join(outdeg, "src").select("src", "dst", (1.0 / F.col("deg")).alias("w")).cache()
    dangling = nodes.join(outdeg, nodes.node == outdeg.src, "left_anti").cache()
    teleport = (1.0 - damping) / n

    def step(ranks: Any, _i: int) -> Any:
        # The dangling mass is fetched as a number (one small job): referencing ``ranks``
        # twice in the plan would double the plan tree every iteration.
        row = ranks.join(dangling, "node").agg(F.sum("rank").alias("d")).first()
        dsum = float(row.d or 0.0) if row is not None else 0.0
        contrib = (
            links.join(ranks, links.src == ranks.node)
            .groupBy("dst")
            .agg(F.sum(F.col("rank") * F.col("w")).alias("c"))
        )
        base = teleport + damping * dsum / n
        return nodes.join(contrib, nodes.node == contrib.dst, "left").select(
            "node", (F.lit(base) + damping * F.coalesce(F.col("c"), F.lit(0.0))).alias("rank")
        )

    initial = nodes.select("node", F.lit(1.0 / n).alias("rank"))
    ranks, report = iterate(
        step,
        initial,
        max_iter,
        path=path,
        every=every,
        until=_converged(n * tol, "rank"),
        cut_last=True,
    )
    _release(graph, nodes, links, dangling)
    return ranks, report


def tunkrank(
    edges: Any,
    *,
    p: float = 0.05,
    max_iter: int = 100,
    tol: float = 1e-10,
    path: str | None = None,
    every: int | None = None,
) -> tuple[Any, IterationReport]:
    """TunkRank influence: ``I(x) = sum over followers y of (1 + p * I(y)) / |following(y)|``.

    An edge ``y -> x`` means y follows x. ``p`` is the probability that a follower passes a
    message on. The fixed point exists for ``0 <= p < 1``; the iteration starts from 0.

    Returns:
        ``([node, influence], report)``.
    """
    from pyspark.sql import functions as F

    if not 0 <= p < 1:
        raise InvalidOptionError(f"tunkrank: p={p!r} must be in [0, 1)")
    graph = edges.select("src", "dst").distinct().cache()
    nodes = vertices(graph).cache()
    following = graph.groupBy("src").agg(F.count("*").alias("deg"))
    links = graph.join(following, "src").cache()

    def step(infl: Any, _i: int) -> Any:
        contrib = (
            links.join(infl, links.src == infl.node)
            .groupBy("dst")
            .agg(F.sum((1.0 + p * F.col("influence")) / F.col("deg")).alias("c"))
        )
        return nodes.join(contrib, nodes.node == contrib.dst, "left").select(
            "node", F.coalesce(F.col("c"), F.lit(0.0)).alias("influence")
        )

    initial = nodes.select("node", F.lit(0.0).alias("influence"))
    n = nodes.count()
    infl, report = iterate(
        step,
        initial,
        max_iter,
        path=path,
        every=every,
        until=_converged(max(n, 1) * tol, "influence"),
        cut_last=True,
    )
    _release(graph, nodes, links)
    return infl, report


def connected_components(
    edges: Any, *, max_iter: int = 200, path: str | None = None
) -> tuple[Any, IterationReport]:
    """Weakly connected components: each node labelled with the smallest node id it reaches.

    Min-label propagation over both edge directions until no label changes (checked at
    lineage cuts, which are frequent here since each step is cheap to materialise).

    Returns:
        ``([node, component], report)``.
    """
    from pyspark.sql import functions as F

    both = undirected(edges)
    nodes = vertices(both)
    # a self-loop per node: one join then yields min(own label, neighbours' labels), so each
    # step reads the previous labels once (two reads would double the plan every step)
    reach = both.unionByName(nodes.select(F.col("node").alias("src"), F.col("node").alias("dst")))
    reach = reach.cache()
    initial = nodes.select("node", F.col("node").alias("component"))

    def step(labels: Any, _i: int) -> Any:
        return (
            reach.join(labels, reach.src == labels.node)
            .groupBy("dst")
            .agg(F.min("component").alias("component"))
            .withColumnRenamed("dst", "node")
        )

    def unchanged(previous: Any, current: Any, _i: int) -> bool:
        moved = (
            previous.alias("p")
            .join(current.alias("c"), "node")
            .where(F.col("p.component") != F.col("c.component"))
        )
        return moved.limit(1).count() == 0

    comps, report = iterate(
        step, initial, max_iter, path=path, every=4, until=unchanged, cut_last=True
    )
    _release(reach)
    return comps, report


def _release(*cached: Any) -> None:
    """Drop the caches a function made (its result no longer depends on them)."""
    for df in cached:
        df.unpersist()


def _converged(threshold: float, column: str) -> Any:
    from pyspark.sql import functions as F

    def check(previous: Any, current: Any, _i: int) -> bool:
        diff = (
            previous.alias("p")
            .join(current.alias("c"), "node")
            .agg(F.sum(F.abs(F.col(f"p.{column}") - F.col(f"c.{column}"))).alias("d"))
            .first()
        )
        err = float(diff.d or 0.0) if diff is not None else 0.0
        logger.debug("convergence check: L1 change %.3g (threshold %.3g)", err, threshold)
        return err < threshold

    return check
