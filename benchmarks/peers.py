"""Checkpoint strategies against real peers: exoflow modes, Spark's own checkpoints, Dagster.

    .venv/bin/python benchmarks/peers.py [--short] [--etl-rows 3000000] [--heavy-rows 300000]
                                         [--reps 4] [--warmup 1] [--pipelines etl,heavy]

Two pipelines, each a DAG of 8 DataFrame stages ending in the same summary (row count and a
checksum of every row, which must be equal across candidates, or the run fails):

* ``etl``: the cheap fused ETL, 8 narrow stages (``select``/``withColumn``/``filter``) over
  ``--etl-rows`` generated rows: a plain PySpark run is one Spark job.
* ``heavy``: compute-heavy: a join of orders with customers, a Python UDF scoring every
  order, an aggregation per customer, an aggregation per segment joined back to the
  customers (a diamond: the per-customer table has two consumers) and a filter.

Candidates (all in one process, one SparkSession, alternated ABBA after a warm-up):

* ``plain PySpark``: the stages composed as one lazy plan (the baseline);
* ``exoflow none``: every stage a task with ``checkpoint=False`` (fused; a stage read by two
  tasks is cached once);
* ``exoflow async`` / ``exoflow sync``: every stage ``checkpoint="async"`` / ``True``;
* ``exoflow auto``: no stage annotated, ``xf.run(checkpoint="auto")``, on a fresh storage
  root (no profile) given the cost model its first (warm-up) run measured on this storage
  (a root is measured once, not every run): a stage running Python code is measured
  by the job that writes it (sync: this local disk's writes are cheap), and whether it was
  worth writing is decided from the measurement; the others are priced from their plan and
  keep fusing; ``exoflow auto (profile)``: the same on a root an earlier run (under another
  workflow id) left its cost profiles in, so every stage is decided before it runs;
* ``exoflow cost-based``: ``checkpoint="async"`` only on the stages a cost model would
  choose, and ``False`` elsewhere. Here the choice is made by hand with one rule: *save a
  stage's output when recomputing it would re-run a Python UDF, or an aggregation over a
  Python UDF's output* (recomputation is much dearer than writing and reading the output
  back). The heavy pipeline has two such stages (``scored``: the UDF; ``per_customer``:
  the aggregation of its output); the cheap ETL has none, so cost-based runs it exactly
  like ``none`` (nothing there is worth saving);
* ``Spark checkpoint() per stage``: ``df.checkpoint(eager=True)`` after every stage
  (reliable checkpoints into ``setCheckpointDir``), what Spark offers for truncating lineage;
* ``Spark cache()+count() per stage``: materialise each stage in executor memory;
* ``Dagster + parquet IO manager`` (and ``+ Delta IO manager`` unless ``--short``): each
  stage a Dagster asset, materialised in-process by ``dagster.materialize``; an IO manager
  writes every asset's DataFrame to parquet (Delta) and the next asset reads it back, as
  orchestrators make users hand data between steps. One ephemeral Dagster instance and the
  same SparkSession serve every run.

Targets (reported, not asserted): exoflow all-checkpointed no slower than Dagster;
cost-based within 1.3x of none and at most half of Dagster, on both pipelines.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    SUMMARY_COLUMNS,
    command,
    machine,
    measure,
    save,
    spark_session,
    summarise,
    table,
)
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

import exoflow_spark as xf
from exoflow_spark.core.options import UNDECLARED

# -- pipelines -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    """One step of a pipeline: ``fn(spark, *input DataFrames) -> DataFrame``."""

    name: str
    fn: Callable[..., DataFrame]
    inputs: tuple[str, ...] = ()
    #: recomputing it re-runs a Python UDF (or aggregates a UDF's output): the stages the
    #: cost-based policy checkpoints
    expensive: bool = False


@dataclass(frozen=True)
class Pipeline:
    name: str
    stages: tuple[Stage, ...]

    @property
    def output(self) -> str:
        return self.stages[-1].name


def etl_pipeline(rows: int) -> Pipeline:
    """8 narrow stages: Spark fuses them into one stage of one job."""
    return Pipeline(
        "etl",
        (
            Stage(
                "orders",
                lambda spark: spark.range(rows).select(
                    F.col("id"),
                    (F.col("id") % 100).alias("store"),
                    (F.col("id") * 7919 % 50000).alias("customer"),
                ),
            ),
            Stage(
                "priced",
                lambda s, df: df.withColumn("price", F.col("id") * 31 % 997 / 10.0),
                ("orders",),
            ),
            Stage("quantity", lambda s, df: df.withColumn("qty", F.col("id") % 5 + 1), ("priced",)),
            Stage("valid", lambda s, df: df.filter(F.col("price") > 1.0), ("quantity",)),
            Stage(
                "revenue",
                lambda s, df: df.withColumn("revenue", F.col("price") * F.col("qty")),
                ("valid",),
            ),
            Stage(
                "discounted",
                lambda s, df: df.withColumn(
                    "net",
                    F.when(F.col("qty") > 3, F.col("revenue") * 0.9).otherwise(F.col("revenue")),
                ),
                ("revenue",),
            ),
            Stage(
                "taxed",
                lambda s, df: df.withColumn("gross", F.round(F.col("net") * 1.08, 2)),
                ("discounted",),
            ),
            Stage(
                "final",
                lambda s, df: df.select("id", "store", "customer", "gross").filter(
                    F.col("gross") < 500
                ),
                ("taxed",),
            ),
        ),
    )


def heavy_pipeline(rows: int, udf_rounds: int = 100) -> Pipeline:
    """Joins, aggregations and a Python UDF whose compute outweighs writing its output."""
    customers_n = max(rows // 20, 100)

    def score_of(x):  # nested: pickled by value, so workers need no import; no hints:
        # pyspark 4 would try to read a pandas UDF type from them
        h = x
        for _ in range(udf_rounds):
            h = (h * 1103515245 + 12345) & 0x7FFFFFFF
        return h % 1000

    score = F.udf(score_of, "long")
    return Pipeline(
        "heavy",
        (
            Stage(
                "orders",
                lambda spark: spark.range(rows).select(
                    F.col("id").alias("order_id"),
                    (F.col("id") * 7919 % customers_n).alias("customer"),
                    (F.col("id") * 37 % 1000).alias("cents"),
                ),
            ),
            Stage(
                "customers",
                lambda spark: spark.range(customers_n).select(
                    F.col("id").alias("customer"),
                    (F.col("id") % 20).alias("segment"),
                    (F.col("id") % 7).alias("region"),
                ),
            ),
            Stage("enriched", lambda s, o, c: o.join(c, "customer"), ("orders", "customers")),
            Stage(
                "scored",
                lambda s, df: df.withColumn("score", score(F.col("order_id"))),
                ("enriched",),
                expensive=True,
            ),
            Stage(  # integer sums only: the checksum must not depend on summation order
                "per_customer",
                lambda s, df: df.groupBy("customer", "segment", "region").agg(
                    F.sum("cents").alias("cents"),
                    F.sum("score").alias("score"),
                    F.count("*").alias("orders"),
                ),
                ("scored",),
                expensive=True,
            ),
            Stage(
                "per_segment",
                lambda s, df: df.groupBy("segment").agg(
                    F.sum("cents").alias("segment_cents"), F.sum("orders").alias("segment_orders")
                ),
                ("per_customer",),
            ),
            Stage(  # per-mille of the segment's average order value
                "vs_segment",
                lambda s, c, g: c.join(g, "segment").withColumn(
                    "lift",
                    F.expr("(cents * segment_orders * 1000) div (segment_cents * orders)"),
                ),
                ("per_customer", "per_segment"),
            ),
            Stage(
                "flagged",
                lambda s, df: df.filter(F.col("lift") > 1000).select(
                    "customer", "segment", "region", "lift", "score"
                ),
                ("vs_segment",),
            ),
        ),
    )


def summary(df: DataFrame) -> list[int]:
    """Row count and an order-independent checksum of every row (equal outputs, equal sums)."""
    row = df.agg(
        F.count("*").alias("n"),
        F.sum(F.pmod(F.xxhash64(*df.columns), F.lit(1_000_003))).alias("h"),
    ).first()
    return [int(row["n"]), int(row["h"] or 0)]


# -- candidates ------------------------------------------------------------------------------


def run_plain(spark: Any, p: Pipeline) -> list[int]:
    """The stages composed as one lazy plan; one job computes the summary."""
    dfs: dict[str, DataFrame] = {}
    for st in p.stages:
        dfs[st.name] = st.fn(spark, *(dfs[i] for i in st.inputs))
    return summary(dfs[p.output])


def run_spark_materialized(spark: Any, p: Pipeline, how: str) -> list[int]:
    """Materialise every stage: ``checkpoint`` (reliable, to the checkpoint dir) or ``cache``."""
    dfs: dict[str, DataFrame] = {}
    cached = []
    try:
        for st in p.stages:
            df = st.fn(spark, *(dfs[i] for i in st.inputs))
            if how == "checkpoint":
                df = df.checkpoint(eager=True)
            else:
                df = df.cache()
                df.count()
                cached.append(df)
            dfs[st.name] = df
        return summary(dfs[p.output])
    finally:
        for df in cached:
            df.unpersist()


def exoflow_policy(p: Pipeline, policy: str) -> dict[str, Any]:
    """The checkpoint mode of every stage under ``policy`` (none/async/sync/cost-based)."""
    if policy == "none":
        return {st.name: False for st in p.stages}
    if policy == "async":
        return {st.name: "async" for st in p.stages}
    if policy == "sync":
        return {st.name: True for st in p.stages}
    if policy == "cost-based":
        return {st.name: ("async" if st.expensive else False) for st in p.stages}
    if policy == "auto":  # nothing annotated: xf.run(checkpoint="auto") decides every stage
        return {st.name: UNDECLARED for st in p.stages}
    raise ValueError(f"unknown policy {policy!r}")


def exoflow_dag(spark: Any, p: Pipeline, modes: dict[str, Any]) -> xf.Node:
    """Every stage a task (its checkpoint mode from ``modes``), then a summary task."""
    nodes: dict[str, xf.Node] = {}
    for st in p.stages:

        def body(*dfs: DataFrame, _st: Stage = st) -> DataFrame:
            return _st.fn(spark, *dfs)

        body.__name__ = st.name
        body.__qualname__ = f"{p.name}.{st.name}"
        t = xf.task(body, checkpoint=modes[st.name])
        nodes[st.name] = t.bind(*(nodes[i] for i in st.inputs))

    @xf.task
    def result(df: DataFrame) -> list[int]:
        return summary(df)

    return result.bind(nodes[p.output])


def run_exoflow(
    spark: Any, p: Pipeline, policy: str, storage: str, workflow_id: str, fmt: str | None = None
) -> Any:
    return xf.run(
        exoflow_dag(spark, p, exoflow_policy(p, policy)),
        workflow_id=workflow_id,
        storage=storage,
        spark=spark,
        checkpoint_format=fmt,  # type: ignore[arg-type]
        checkpoint="auto" if policy == "auto" else "none",
    )


class DagsterRunner:
    """A pipeline as Dagster assets, handed between steps by a Spark IO manager."""

    def __init__(self, p: Pipeline, fmt: str) -> None:
        import dagster as dg

        self.dg, self.p, self.fmt = dg, p, fmt
        self.instance = dg.DagsterInstance.ephemeral()
        self.assets = [self._asset(st) for st in p.stages]

        @dg.asset(name="summary", ins={"df": dg.AssetIn(key=p.output)})
        def summary_asset(df):  # untyped: Dagster would turn hints into runtime type checks
            return summary(df)

        self.assets.append(summary_asset)

    def _asset(self, st: Stage) -> Any:
        dg = self.dg
        ins = {f"in{k}": dg.AssetIn(key=dep) for k, dep in enumerate(st.inputs)}

        def spark() -> Any:
            from pyspark.sql import SparkSession

            return SparkSession.builder.getOrCreate()

        # Dagster maps inputs to parameters by name, so each arity gets its own signature
        if len(ins) == 0:

            def fn():
                return st.fn(spark())

        elif len(ins) == 1:

            def fn(in0):
                return st.fn(spark(), in0)

        else:

            def fn(in0, in1):
                return st.fn(spark(), in0, in1)

        return dg.asset(name=st.name, ins=ins)(fn)

    def run(self, base: str) -> list[int]:
        io = spark_io_manager(self.dg)(base=base, fmt=self.fmt)
        result = self.dg.materialize(
            self.assets,
            instance=self.instance,
            resources={"io_manager": io},
            run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
        )
        if not result.success:
            raise RuntimeError(f"Dagster run of {self.p.name} failed")
        with open(os.path.join(base, "summary.json")) as fh:
            return list(json.load(fh))


_IO_MANAGER: Any = None


def spark_io_manager(dg: Any) -> Any:
    """The IO manager class (defined once, lazily: dagster is an optional dependency)."""
    global _IO_MANAGER
    if _IO_MANAGER is not None:
        return _IO_MANAGER

    class SparkFileIOManager(dg.ConfigurableIOManager):
        """Writes each asset's DataFrame as parquet/Delta under ``base``; reads it back."""

        base: str
        fmt: str = "parquet"

        def _path(self, key: Any) -> str:
            return os.path.join(self.base, *key.path)

        def handle_output(self, context: Any, obj: Any) -> None:
            path = self._path(context.asset_key)
            if isinstance(obj, DataFrame):
                obj.write.format(self.fmt).mode("overwrite").save(path)
            else:
                os.makedirs(self.base, exist_ok=True)
                with open(f"{path}.json", "w") as fh:
                    json.dump(obj, fh)

        def load_input(self, context: Any) -> Any:
            from pyspark.sql import SparkSession

            path = self._path(context.asset_key)
            if os.path.exists(f"{path}.json"):
                with open(f"{path}.json") as fh:
                    return json.load(fh)
            return SparkSession.builder.getOrCreate().read.format(self.fmt).load(path)

    _IO_MANAGER = SparkFileIOManager
    return _IO_MANAGER


def candidates_for(
    spark: Any, p: Pipeline, work: Path, *, dagster_formats: list[str], checkpoints: bool = True
) -> dict[str, Callable[[int], list[int]]]:
    """Every candidate as ``fn(rep) -> summary``, writing under ``work/<slug>/<rep>``."""

    def where(slug: str, rep: int) -> str:
        return str(work / slug / f"r{rep + 100}")

    c: dict[str, Callable[[int], list[int]]] = {"plain PySpark": lambda rep: run_plain(spark, p)}
    for policy in ("none", "async", "sync", "cost-based"):
        c[f"exoflow {policy}"] = lambda rep, policy=policy: run_exoflow(
            spark, p, policy, where(f"exo-{policy}", rep), f"{p.name}-{policy}"
        )
    # auto's first run: a fresh root (no profile) holding the cost model of the storage that
    # the first (warm-up) run measured there: a root is measured once, not every run
    cost_model = work.parent / f"{work.name}-auto-cost-model"

    def auto_first_run(rep: int) -> list[int]:
        root = Path(where("exo-auto", rep))
        (root / "_exoflow").mkdir(parents=True, exist_ok=True)
        for f in cost_model.glob("throughput*.json"):
            shutil.copy(f, root / "_exoflow" / f.name)
        got = run_exoflow(spark, p, "auto", str(root), f"{p.name}-auto")
        if not cost_model.exists():
            cost_model.mkdir(parents=True)
            for f in (root / "_exoflow").glob("throughput*.json"):
                shutil.copy(f, cost_model / f.name)
        return got

    c["exoflow auto"] = auto_first_run
    # auto on a root whose profiles an earlier run (the warm-up, then the previous rep) left,
    # under a new workflow id each time: decided from those profiles before running
    c["exoflow auto (profile)"] = lambda rep: run_exoflow(
        spark, p, "auto", str(work.parent / f"{work.name}-auto-profiles"), f"{p.name}-ap-{rep}"
    )
    for policy in ("async", "sync", "cost-based"):  # checkpoint_format="parquet"
        c[f"exoflow {policy} (parquet)"] = lambda rep, policy=policy: run_exoflow(
            spark, p, policy, where(f"exo-{policy}-pq", rep), f"{p.name}-{policy}-pq", "parquet"
        )
    if checkpoints:
        c["Spark checkpoint() per stage"] = lambda rep: run_spark_materialized(
            spark, p, "checkpoint"
        )
        c["Spark cache()+count() per stage"] = lambda rep: run_spark_materialized(spark, p, "cache")
    for fmt in dagster_formats:
        runner = DagsterRunner(p, fmt)
        c[f"Dagster + {fmt} IO manager"] = lambda rep, r=runner, fmt=fmt: r.run(
            where(f"dagster-{fmt}", rep)
        )
    return c


def checked(fn: Callable[[int], list[int]], label: str, want: list[int]) -> Callable[[int], None]:
    """``fn`` that fails unless it returns the baseline's summary ``want``."""

    def call(rep: int) -> None:
        got = fn(rep)
        if got != want:
            raise AssertionError(f"{label}: summary {got} != plain PySpark's {want}")

    return call


# -- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--short", action="store_true", help="small sizes, 2 reps (make bench)")
    p.add_argument("--etl-rows", type=int, default=3_000_000)
    p.add_argument("--heavy-rows", type=int, default=300_000)
    p.add_argument("--udf-rounds", type=int, default=100)
    p.add_argument("--reps", type=int, default=4)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--pipelines", default="etl,heavy")
    p.add_argument("--dagster", default="parquet,delta", help="Dagster IO manager formats")
    p.add_argument(
        "--only",
        default="",
        help="comma-separated substrings: measure only the candidates whose name has one "
        "(plain PySpark, the baseline, always runs)",
    )
    a = p.parse_args(argv)
    if a.short:
        a.etl_rows, a.heavy_rows, a.reps, a.dagster = 1_000_000, 30_000, 2, "parquet"
    try:
        import dagster  # noqa: F401

        dagster_formats = [f for f in a.dagster.split(",") if f]
    except ImportError:
        print("dagster is not installed (pip install -e '.[bench]'): Dagster candidates skipped")
        dagster_formats = []
    spark, startup = spark_session("exoflow-bench-peers")
    work = Path(tempfile.mkdtemp(prefix="exoflow-bench-peers-"))
    spark.sparkContext.setCheckpointDir(str(work / "spark-checkpoints"))
    pipelines = {
        "etl": etl_pipeline(a.etl_rows),
        "heavy": heavy_pipeline(a.heavy_rows, a.udf_rounds),
    }
    print(
        f"peers benchmark: etl {a.etl_rows:,} rows, heavy {a.heavy_rows:,} rows "
        f"(UDF {a.udf_rounds} rounds), {a.warmup} warm-up + {a.reps} reps "
        f"(session start-up {startup:.1f} s, not counted)"
    )
    results: dict[str, Any] = {}
    all_rows = []
    for name in a.pipelines.split(","):
        pipe = pipelines[name]
        want = run_plain(spark, pipe)
        print(f"\n{name}: expected summary {want}")
        cands = candidates_for(spark, pipe, work / name, dagster_formats=dagster_formats)
        if a.only:
            keep = [k for k in a.only.split(",") if k]
            cands = {
                k: v for k, v in cands.items() if k == "plain PySpark" or any(x in k for x in keep)
            }

        def clean(label: str, rep: int, _name: str = name) -> None:
            shutil.rmtree(work / _name, ignore_errors=True)
            shutil.rmtree(work / "spark-checkpoints", ignore_errors=True)

        t0 = time.perf_counter()
        times = measure(
            {k: checked(v, f"{name}/{k}", want) for k, v in cands.items()},
            a.reps,
            warmup=a.warmup,
            after=clean,
        )
        rows = summarise(times, "plain PySpark")
        print(f"\n{name} ({time.perf_counter() - t0:.0f} s)")
        print(table(rows, "plain PySpark"))
        targets = targets_for(rows)
        for line in targets:
            print(f"  {line}")
        results[name] = {"rows": rows, "raw_seconds": times, "summary": want, "targets": targets}
        for r in rows:
            all_rows.append({"pipeline": name, **r})
    if a.only:
        print("\nnot saved: --only measures a subset")
        spark.stop()
        shutil.rmtree(work, ignore_errors=True)
        return 0
    path = save(
        "peers",
        {
            "benchmark": "peers",
            "title": "Checkpoint strategies against real peers",
            "command": command(),
            "machine": machine(),
            "params": {
                "etl_rows": a.etl_rows,
                "heavy_rows": a.heavy_rows,
                "udf_rounds": a.udf_rounds,
                "reps": a.reps,
                "warmup": a.warmup,
            },
            "startup_s": round(startup, 1),
            "results": all_rows,
            "columns": [["pipeline", "pipeline", "s"], *SUMMARY_COLUMNS],
            "plot": {
                "kind": "barh",
                "facet": "pipeline",
                "x": "candidate",
                "y": "median_s",
                "err": ["min_s", "max_s"],
                "ylabel": "seconds (median, min-max bars; lower is better)",
                "log": True,
            },
            "notes": [t for n in results for t in (f"{n}: " + x for x in results[n]["targets"])],
            "pipelines": results,
        },
    )
    print(f"\nsaved {path}")
    spark.stop()
    shutil.rmtree(work, ignore_errors=True)
    return 0


def targets_for(rows: list[dict[str, Any]]) -> list[str]:
    """The issue's targets, evaluated on one pipeline's rows for each checkpoint format
    (reported, never asserted); a target whose candidates were not measured (``--only``) is
    left out."""
    med = {r["candidate"]: r["median_s"] for r in rows}
    best_dagster = min((v for k, v in med.items() if k.startswith("Dagster")), default=None)
    none = med.get("exoflow none")
    out = []
    for fmt in ("", " (parquet)"):
        cb = med.get(f"exoflow cost-based{fmt}")
        if best_dagster is not None:
            for mode in ("async", "sync"):
                v = med.get(f"exoflow {mode}{fmt}")
                if v is not None:
                    out.append(
                        f"exoflow {mode}{fmt} (every stage checkpointed) {v:.2f} s vs fastest "
                        f"Dagster {best_dagster:.2f} s: "
                        f"{'met' if v <= best_dagster else 'NOT met'} (no slower)"
                    )
            if cb is not None:
                out.append(
                    f"cost-based{fmt} {cb / best_dagster:.2f}x of fastest Dagster: "
                    f"{'met' if cb <= 0.5 * best_dagster else 'NOT met'} (at most 0.5x)"
                )
        if cb is not None and none is not None:
            out.append(
                f"cost-based{fmt} {cb / none:.2f}x of none: "
                f"{'met' if cb <= 1.3 * none else 'NOT met'} (within 1.3x)"
            )
    return out


if __name__ == "__main__":
    sys.exit(main())
