"""Online-offline graph processing (ExoFlow section 5.3) as a series of exoflow-spark workflows.

    python jobs/graph_pipeline.py --workflow-id graph --edges 200000 --epochs 10 --every 5
    spark-submit jobs/graph_pipeline.py --strategy async --storage s3a://lake/exo

A seeded R-MAT generator delivers edge events epoch by epoch into a Delta table (the source).
Each epoch is one workflow, ``<workflow-id>-e<k>``:

* online: a streaming task continues one stream across the epochs (shared offsets) and, per
  micro-batch, appends the new edges, MERGEs the degree counts and an incremental rank
  estimate for the nodes the batch touched, each write exactly once;
* offline, every ``--every`` epochs: a snapshot of the edge table, then PageRank, TunkRank and
  connected components (plain DataFrame operations, lineage cut automatically), each
  published as a new version of its Delta table.

``--strategy`` sets the offline tasks' checkpoints: ``none``, ``async``, ``sync`` or ``cost``
(selective: the expensive iterative results async, the snapshot replayed; cost-based
recovery). Every published result appends a row to the ``availability`` table (epoch, what,
when), which with each epoch's arrival time gives the time to data availability. Kill the job
at any point and run the same command again: it resumes, and every table holds each result
once.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from pyspark.sql import functions as F

import exoflow_spark as xf
from exoflow_spark import graph as xg
from exoflow_spark.surface.entry import job_arg_parser, start

logger = logging.getLogger("jobs.graph_pipeline")

DAMPING = 0.85
STRATEGIES = {
    # strategy: checkpoint of (snapshot, pagerank, tunkrank, components), recovery
    "none": ((False, False, False, False), "restore"),
    "async": (("async", "async", "async", "async"), "restore"),
    "sync": ((True, True, True, True), "restore"),
    "cost": ((False, "async", "async", "async"), "cost"),
}


class Lake:
    """Where the graph pipeline's tables live."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.events = f"{root}/events"
        self.edges = f"{root}/edges"
        self.degrees = f"{root}/degrees"
        self.estimate = f"{root}/rank_estimate"
        self.pagerank = f"{root}/pagerank"
        self.tunkrank = f"{root}/tunkrank"
        self.components = f"{root}/components"
        self.availability = f"{root}/availability"


def is_table(spark: Any, path: str) -> bool:
    from delta.tables import DeltaTable

    return bool(DeltaTable.isDeltaTable(spark, path))


def deliver_epoch(spark: Any, lake: Lake, args: Any, epoch: int) -> None:
    """The outside world: epoch ``epoch``'s edge events arrive (appended once, one file)."""
    events = xg.rmat_edges(
        spark,
        num_edges=args.edges,
        scale=args.scale,
        seed=args.seed,
        epochs=args.epochs,
        epoch=epoch,
    ).withColumn("arrived_at", F.unix_micros(F.current_timestamp()) / 1e6)
    (
        events.coalesce(1)
        .write.format("delta")
        .mode("append")
        .option("txnAppId", f"graph-source-{args.workflow_id}")
        .option("txnVersion", str(epoch))
        .save(lake.events)
    )


# -- online: one micro-batch ----------------------------------------------------------------
def online_batch(lake: Lake) -> Any:
    """The foreach_batch function of the online stream."""

    def update(batch: xf.StreamBatch) -> None:
        spark = batch.df.sparkSession
        new = batch.df.select("event_id", "src", "dst", "epoch").cache()
        try:
            epochs = [r.epoch for r in new.select("epoch").distinct().collect()]
            if not epochs:
                return
            batch.write(new, lake.edges)
            # degrees: old + this batch's increments, MERGEd (idempotent per batch)
            inc = (
                new.select(
                    F.col("src").alias("node"), F.lit(1).alias("out_inc"), F.lit(0).alias("in_inc")
                )
                .unionByName(
                    new.select(
                        F.col("dst").alias("node"),
                        F.lit(0).alias("out_inc"),
                        F.lit(1).alias("in_inc"),
                    )
                )
                .groupBy("node")
                .agg(F.sum("out_inc").alias("out_inc"), F.sum("in_inc").alias("in_inc"))
            )
            if is_table(spark, lake.degrees):
                old = spark.read.format("delta").load(lake.degrees)
                degrees = inc.join(old, "node", "left").select(
                    "node",
                    (F.coalesce("out_degree", F.lit(0)) + F.col("out_inc")).alias("out_degree"),
                    (F.coalesce("in_degree", F.lit(0)) + F.col("in_inc")).alias("in_degree"),
                )
            else:
                degrees = inc.select(
                    "node", F.col("out_inc").alias("out_degree"), F.col("in_inc").alias("in_degree")
                )
            batch.merge(degrees.cache(), lake.degrees, keys=["node"])
            batch.merge(rank_estimate(spark, lake, new), lake.estimate, keys=["node"])
            done = spark.createDataFrame(
                [(int(e), "online", time.time()) for e in epochs],
                "epoch INT, what STRING, available_at DOUBLE",
            )
            batch.write(done, lake.availability)
        finally:
            new.unpersist()

    return update


def rank_estimate(spark: Any, lake: Lake, new: Any) -> Any:
    """One PageRank update for the nodes this batch touched, from the last published ranks
    (uniform before the first offline run) and the current degrees."""
    edges = spark.read.format("delta").load(lake.edges).select("src", "dst").distinct()
    degrees = spark.read.format("delta").load(lake.degrees)
    n = degrees.count()
    touched = new.select(F.col("dst").alias("node")).union(new.select(F.col("src").alias("node")))
    touched = touched.distinct()
    if is_table(spark, lake.pagerank):
        ranks = spark.read.format("delta").load(lake.pagerank).select("node", "rank")
    else:
        ranks = degrees.select("node", F.lit(1.0 / n).alias("rank"))
    outdeg = edges.groupBy("src").agg(F.count("*").alias("deg"))
    contrib = (
        edges.join(touched.withColumnRenamed("node", "dst"), "dst")
        .join(outdeg, "src")
        .join(ranks.withColumnRenamed("node", "src"), "src", "left")
        .groupBy("dst")
        .agg(F.sum(F.coalesce(F.col("rank"), F.lit(1.0 / n)) / F.col("deg")).alias("c"))
    )
    return touched.join(contrib.withColumnRenamed("dst", "node"), "node", "left").select(
        "node",
        (F.lit((1 - DAMPING) / n) + DAMPING * F.coalesce(F.col("c"), F.lit(0.0))).alias("estimate"),
    )


# -- the workflow of one epoch -------------------------------------------------------------
def build_epoch_dag(lake: Lake, args: Any, epoch: int) -> xf.Node:
    """The DAG of epoch ``epoch``: the online step, plus the offline part every k epochs."""

    @xf.streaming_task(
        stream_name=f"{args.workflow_id}-online",
        foreach_batch=online_batch(lake),
        name="online",
    )
    def online():
        return (
            xf.get_spark()
            .readStream.format("delta")
            .option("maxFilesPerTrigger", 1)
            .load(lake.events)
        )

    step = online.bind()
    if (epoch + 1) % args.every != 0:
        return step
    (c_snap, c_pr, c_tr, c_cc), _ = STRATEGIES[args.strategy]

    @xf.task(checkpoint=c_snap)
    def snapshot(_online: Any) -> Any:
        spark = xf.get_spark()
        version = spark.sql(f"DESCRIBE HISTORY delta.`{lake.edges}` LIMIT 1").first().version
        edges = spark.read.format("delta").option("versionAsOf", version).load(lake.edges)
        return xg.simple_graph(edges)

    @xf.task(checkpoint=c_pr)
    def pagerank(edges: Any) -> Any:
        ranks, _ = xg.pagerank(edges, max_iter=args.iterations, tol=1e-9)
        return ranks

    @xf.task(checkpoint=c_tr)
    def tunkrank(edges: Any) -> Any:
        infl, _ = xg.tunkrank(edges, max_iter=args.iterations, tol=1e-9)
        return infl

    @xf.task(checkpoint=c_cc)
    def components(edges: Any) -> Any:
        comps, _ = xg.connected_components(edges)
        return comps

    def publisher(what: str, path: str) -> xf.Task[Any]:
        @xf.task(name=f"publish_{what}")
        def publish(result: Any) -> float:
            xf.write_delta(result.withColumn("epoch", F.lit(epoch)), path, mode="overwrite")
            at = time.time()
            spark = xf.get_spark()
            row = spark.createDataFrame(
                [(epoch, what, at)], "epoch INT, what STRING, available_at DOUBLE"
            )
            xf.write_delta(row, lake.availability, mode="append")
            return at

        return publish

    @xf.task
    def done(*published: float) -> dict[str, Any]:
        return {"epoch": epoch, "published_at": max(published)}

    snap = snapshot.bind(step)
    return done.bind(
        publisher("pagerank", lake.pagerank).bind(pagerank.bind(snap)),
        publisher("tunkrank", lake.tunkrank).bind(tunkrank.bind(snap)),
        publisher("components", lake.components).bind(components.bind(snap)),
    )


def availability(spark: Any, lake: Lake) -> list[dict[str, Any]]:
    """Per epoch and result: arrival, availability and the time between (seconds)."""
    arrivals = (
        spark.read.format("delta")
        .load(lake.events)
        .groupBy("epoch")
        .agg(F.min("arrived_at").alias("arrived_at"))
    )
    avail = spark.read.format("delta").load(lake.availability)
    rows = (
        avail.join(arrivals, "epoch")
        .select("epoch", "what", (F.col("available_at") - F.col("arrived_at")).alias("seconds"))
        .orderBy("epoch", "what")
        .collect()
    )
    return [r.asDict() for r in rows]


def main(argv: Sequence[str] | None = None) -> int:
    parser = job_arg_parser(__doc__.splitlines()[0], default_workflow_id="graph-demo")
    parser.add_argument("--edges", type=int, default=200_000, help="edge events in total")
    parser.add_argument("--scale", type=int, default=15, help="node ids < 2**scale")
    parser.add_argument("--epochs", type=int, default=6, help="epochs the events arrive in")
    parser.add_argument("--every", type=int, default=3, help="offline recompute every k epochs")
    parser.add_argument("--iterations", type=int, default=30, help="PageRank/TunkRank steps")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--strategy", choices=sorted(STRATEGIES), default="cost")
    parser.add_argument("--lake", help="where the tables go (default: <storage>/graph/<id>)")
    parser.add_argument(
        "--crash-epoch", type=int, help="with --crash-at: inject the crash in this epoch only"
    )
    parser.add_argument("--crash-at", help="<task>:<phase>, as EXOFLOW_CRASH_AT (testing)")
    args = parser.parse_args(argv)
    if args.every < 1 or args.epochs < 1:
        parser.error("--every and --epochs must be >= 1")
    spark, _profile, storage = start(args, "exoflow-graph")
    lake = Lake(args.lake or f"{storage}/graph/{args.workflow_id}")
    xf.install_stop_handlers()
    _, recovery = STRATEGIES[args.strategy]
    for epoch in range(args.epochs):
        deliver_epoch(spark, lake, args, epoch)
        if args.crash_at and epoch == args.crash_epoch:
            os.environ["EXOFLOW_CRASH_AT"] = args.crash_at
        try:
            xf.run(
                build_epoch_dag(lake, args, epoch),
                workflow_id=f"{args.workflow_id}-e{epoch}",
                storage=storage,
                spark=spark,
                recovery=recovery,
            )
        except xf.ExoflowError as exc:
            logger.error("%s", exc)
            return 1
        finally:
            os.environ.pop("EXOFLOW_CRASH_AT", None)
    print(
        json.dumps(
            {
                "workflow_id": args.workflow_id,
                "strategy": args.strategy,
                "lake": lake.root,
                "availability": availability(spark, lake),
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
