"""exoflow_spark.graph against GraphX, on the same graph in the same SparkSession.

    .venv/bin/python benchmarks/graph_algorithms.py                       # small + 100k + dangling
    .venv/bin/python benchmarks/graph_algorithms.py --graphs rmat1m --reps 3

For each graph (networkx's karate club, les miserables and florentine families as both
directions of each edge; R-MAT graphs of 100k and 1M edge events; a graph with many dangling
nodes) and algorithm, it runs ours as a user gets it (``xg.pagerank`` /
``xg.connected_components`` from the edge DataFrame, ``method="auto"``: one Spark task for
graphs of up to 2M distinct edges), ours forced to the distributed loop
(``method="distributed"``, one Spark job per step, including the final durable cut) and
GraphX's (``PageRank.run`` / ``ConnectedComponents.run`` through Py4J, from
``GraphLoader.edgeListFile`` of the same edges), alternating, ``--reps`` times after a
warm-up, and prints medians, min and max side by side. PageRank: the same number of
iterations (``--iterations``; ours with ``tol=0`` so it never stops early); components: each
until no label changes. The warm-ups check that ours and GraphX rank the same number of
nodes.
"""

# ruff: noqa: B023  (the closures run inside the loop iteration that defines them)
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _harness import machine, spark_session

GRAPHS = ["karate", "lesmis", "florentine", "rmat100k", "dangling", "rmat1m"]
DEFAULT = ["karate", "lesmis", "florentine", "rmat100k", "dangling"]


def edge_frame(spark: Any, name: str) -> Any:
    """The simple directed graph ``name`` as ``[src, dst]`` (distinct, no self-loops)."""
    import networkx as nx
    from pyspark.sql import functions as F

    from exoflow_spark import graph as xg

    small = {
        "karate": nx.karate_club_graph,
        "lesmis": nx.les_miserables_graph,
        "florentine": nx.florentine_families_graph,
    }
    if name in small:
        g = nx.convert_node_labels_to_integers(small[name]())
        pairs = [(u, v) for u, v in g.edges()] + [(v, u) for u, v in g.edges()]
        return spark.createDataFrame(pairs, "src LONG, dst LONG")
    if name == "rmat100k":
        return xg.simple_graph(xg.rmat_edges(spark, num_edges=100_000, scale=16, seed=7))
    if name == "rmat1m":
        return xg.simple_graph(xg.rmat_edges(spark, num_edges=1_000_000, scale=19, seed=7))
    if name == "dangling":  # 10k sources, each linking into 40k sinks that link nowhere
        ids = spark.range(50_000)
        return xg.simple_graph(
            ids.select(
                (F.col("id") % 10_000).alias("src"),
                (F.lit(10_000) + F.pmod(F.xxhash64("id"), F.lit(40_000))).alias("dst"),
            )
        )
    raise SystemExit(f"unknown graph {name!r}; choose from {GRAPHS}")


class GraphX:
    """GraphX's PageRank and connected components, through the session's JVM."""

    def __init__(self, spark: Any, edge_file: str, partitions: int) -> None:
        self.jvm = spark.sparkContext._jvm
        self.sc = spark.sparkContext._jsc.sc()
        self.file = edge_file
        self.partitions = partitions
        ct = getattr(self.jvm.scala.reflect, "ClassTag$").__getattr__("MODULE$")
        self.tag = ct.Any()

    def load(self) -> Any:
        level = self.jvm.org.apache.spark.storage.StorageLevel.MEMORY_ONLY()
        return self.jvm.org.apache.spark.graphx.GraphLoader.edgeListFile(
            self.sc, self.file, False, self.partitions, level, level
        )

    def pagerank(self, iterations: int) -> int:
        """PageRank for ``iterations`` steps; the number of ranked nodes."""
        pr = self.jvm.org.apache.spark.graphx.lib.PageRank.run(
            self.load(), iterations, 0.15, self.tag, self.tag
        )
        return int(pr.vertices().count())

    def components(self) -> int:
        """Connected components until no label changes; the number of labelled nodes."""
        cc = self.jvm.org.apache.spark.graphx.lib.ConnectedComponents.run(
            self.load(), 2**31 - 1, self.tag, self.tag
        )
        return int(cc.vertices().count())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--graphs", nargs="+", default=DEFAULT, choices=GRAPHS)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--iterations", type=int, default=20, help="PageRank iterations (both)")
    args = p.parse_args(argv)

    from pyspark.sql import functions as F

    from exoflow_spark import graph as xg

    spark, startup = spark_session("graph-algorithms")
    spark.sparkContext.setLogLevel("ERROR")
    tmp = Path(tempfile.mkdtemp(prefix="bench-graph-"))
    print(f"machine: {machine()}; session start {startup:.1f}s", flush=True)
    rows = []
    try:
        for name in args.graphs:
            src = edge_frame(spark, name)
            parquet, text = str(tmp / f"{name}.parquet"), str(tmp / f"{name}.txt")
            src.write.mode("overwrite").parquet(parquet)
            edges = spark.read.parquet(parquet)
            n_edges = edges.count()
            edges.select(F.concat_ws(" ", "src", "dst")).coalesce(1).write.mode("overwrite").text(
                text
            )
            gx = GraphX(spark, text, max(1, spark.sparkContext.defaultParallelism))
            runs = 0

            def ours_pr(method: str) -> None:
                nonlocal runs
                runs += 1
                r, rep = xg.pagerank(
                    spark.read.parquet(parquet),
                    max_iter=args.iterations,
                    tol=0.0,
                    path=str(tmp / f"cut-{name}-{runs}"),
                    method=method,
                )
                nodes = r.count()
                if runs <= 2:  # the warm-ups: GraphX ranks the same nodes
                    assert nodes == gx.pagerank(1), name
                assert rep.iterations == args.iterations

            def ours_cc(method: str) -> None:
                nonlocal runs
                runs += 1
                c, _ = xg.connected_components(
                    spark.read.parquet(parquet), path=str(tmp / f"cut-{name}-{runs}"), method=method
                )
                c.count()

            cands = {
                ("pagerank", "auto"): lambda: ours_pr("auto"),
                ("pagerank", "distributed"): lambda: ours_pr("distributed"),
                ("pagerank", "graphx"): lambda: gx.pagerank(args.iterations),
                ("components", "auto"): lambda: ours_cc("auto"),
                ("components", "distributed"): lambda: ours_cc("distributed"),
                ("components", "graphx"): gx.components,
            }
            times: dict[tuple[str, str], list[float]] = {k: [] for k in cands}
            for fn in cands.values():  # warm-up
                fn()
            for rep in range(args.reps):
                order = list(cands) if rep % 2 == 0 else list(reversed(cands))
                for key in order:
                    t0 = time.perf_counter()
                    cands[key]()
                    times[key].append(time.perf_counter() - t0)
            for algo in ("pagerank", "components"):
                row: dict[str, Any] = {"graph": name, "edges": n_edges, "algorithm": algo}
                cells = []
                for who in ("auto", "distributed", "graphx"):
                    t = times[(algo, who)]
                    row[who] = (statistics.median(t), min(t), max(t))
                    cells.append(f"{who} {row[who][0]:.2f}s ({row[who][1]:.2f}-{row[who][2]:.2f})")
                rows.append(row)
                gxm = row["graphx"][0]
                print(
                    f"{name:>10} {n_edges:>8} edges {algo:>10}: "
                    + " | ".join(cells)
                    + f" | ours/GraphX: auto {row['auto'][0] / gxm:.2f}x, distributed "
                    f"{row['distributed'][0] / gxm:.2f}x",
                    flush=True,
                )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        spark.stop()
    print(f"load average at the end: {machine()['load_avg_1m_at_end']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
