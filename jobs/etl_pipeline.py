"""Nightly bronze/silver/gold ETL as an exactly-once exoflow-spark workflow.

    spark-submit jobs/etl_pipeline.py --workflow-id sales-2026-11-24 --storage s3a://lake/exo
    python jobs/etl_pipeline.py --workflow-id demo --storage ./exoflow-data

Raw orders arrive as JSON lines, some of them malformed. Bronze parses them and is checkpointed
(sync); malformed records go to a quarantine table with the reason; silver cleans and
de-duplicates (async checkpoint: downstream starts at once); gold aggregates revenue per day
and country and is appended to the gold Delta table exactly once. Kill the driver at any point
and run the same command again: committed stages are not executed again and the gold table
gains its rows once.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

import exoflow_spark as xf
from exoflow_spark.surface.entry import add_checkpoint_policy, job_arg_parser, start

logger = logging.getLogger("jobs.etl_pipeline")

COUNTRIES = ["DE", "FR", "US", "JP", "BR", "IN", "NG", "AU"]


# -- raw data (generated, deterministic) -----------------------------------------------------
def generate_raw(spark: Any, raw_dir: str, rows: int) -> None:
    """Write ``rows`` order events as JSON lines (about 1% malformed) plus a customer table.

    Deterministic: the same ``rows`` always gives the same files, so re-runs see the same input.
    """
    orders_dir, customers_dir = f"{raw_dir}/orders", f"{raw_dir}/customers"
    if os.path.exists(os.path.join(orders_dir, "_SUCCESS")):
        return
    ids = spark.range(rows)
    good = F.to_json(
        F.struct(
            F.col("id").alias("order_id"),
            (F.col("id") * 7919 % 5000).alias("customer_id"),
            F.round((F.col("id") * 37 % 10000) / 100.0 + 1.0, 2).alias("amount"),
            F.date_format(
                F.timestamp_seconds(F.lit(1795046400) + F.col("id") * 86400 * 7 / rows),
                "yyyy-MM-dd'T'HH:mm:ss",
            ).alias("ts"),
        )
    )
    kind = F.col("id") % 100
    value = (
        F.when(kind == 13, F.lit('{"order_id": 1, "amount": '))  # truncated JSON
        .when(
            kind == 42,
            F.to_json(
                F.struct(
                    F.col("id").alias("order_id"),
                    F.lit(1).alias("customer_id"),
                    F.lit("twelve").alias("amount"),
                )
            ),
        )
        .when(kind == 77, F.to_json(F.struct(F.lit(5.0).alias("amount"))))
        .otherwise(good)
    )
    # every 500th order is sent twice (at-least-once upstream): silver de-duplicates
    dupes = ids.filter(F.col("id") % 500 == 0)
    ids.unionByName(dupes).select(value.alias("value")).coalesce(4).write.mode("overwrite").text(
        orders_dir
    )
    spark.range(5000).select(
        F.col("id").alias("customer_id"),
        F.element_at(
            F.array(*[F.lit(c) for c in COUNTRIES]), (F.col("id") % 8 + 1).cast("int")
        ).alias("country"),
        F.concat(F.lit("customer-"), F.col("id")).alias("name"),
    ).coalesce(1).write.mode("overwrite").json(customers_dir)


# -- tasks ---------------------------------------------------------------------------------
#: the fields an order record has; anything else is schema drift
ORDER_FIELDS = ("order_id", "customer_id", "amount", "ts")
#: a raw record longer than this is quarantined unparsed
MAX_RECORD_BYTES = 64 * 1024


class SchemaDriftError(xf.ExoflowError):
    """The raw orders' fields differ from :data:`ORDER_FIELDS`."""


@xf.task
def raw_orders(path: str) -> DataFrame:
    return (
        xf.get_spark().read.text(path).select("value", F.col("_metadata.file_path").alias("source"))
    )


@xf.task(checkpoint=True)
def bronze_orders(raw: DataFrame, schema_drift: str = "reject") -> DataFrame:
    """Parse each line; keep every record, with the reason it is invalid (or null).

    Fields outside :data:`ORDER_FIELDS` (schema drift) stop the run with a message naming
    them (``schema_drift="reject"``), or are carried into bronze as extra string columns
    (``"evolve"``).
    """
    oversized = F.length("value") > MAX_RECORD_BYTES
    m = F.when(oversized, F.lit(None)).otherwise(F.from_json("value", "MAP<STRING,STRING>"))
    parsed = raw.select(F.col("value").alias("raw"), "source", m.alias("m"), oversized.alias("big"))
    seen = {r.k for r in parsed.select(F.explode(F.map_keys("m")).alias("k")).distinct().collect()}
    new = sorted(seen - set(ORDER_FIELDS))
    if new and schema_drift != "evolve":
        ctx = xf.current_task()
        raise SchemaDriftError(
            f"workflow [{ctx.workflow_id}] task [{ctx.task_id}]: the raw orders have field(s) "
            f"{new} that are not in the expected schema {list(ORDER_FIELDS)}. Nothing was "
            "published. Fix the producer, or re-run with --schema-drift evolve to carry them "
            "into bronze as string columns"
        )
    amount = F.expr("try_cast(m['amount'] AS DOUBLE)")
    reason = (
        F.when(F.col("big"), f"oversized record (> {MAX_RECORD_BYTES} bytes)")
        .when(F.col("m").isNull(), "malformed JSON")
        .when(F.col("m")["order_id"].isNull(), "missing order_id")
        .when(F.col("m")["customer_id"].isNull(), "missing customer_id")
        .when(amount.isNull(), "amount is not a number")
        .when(F.expr("try_to_timestamp(m['ts'])").isNull(), "bad or missing ts")
    )
    return parsed.select(
        "raw",
        "source",
        F.col("m")["order_id"].cast("long").alias("order_id"),
        F.col("m")["customer_id"].cast("long").alias("customer_id"),
        amount.alias("amount"),
        F.expr("try_to_timestamp(m['ts'])").alias("ts"),
        *[F.col("m")[k].alias(k) for k in new],
        reason.alias("error"),
    )


@xf.task(checkpoint=True)
def customers(path: str) -> DataFrame:
    return xf.get_spark().read.schema("customer_id LONG, country STRING, name STRING").json(path)


@xf.task(checkpoint="async")
def silver_orders(bronze: DataFrame) -> DataFrame:
    return (
        bronze.filter(F.col("error").isNull())
        .drop("raw", "source", "error")
        .dropDuplicates(["order_id"])
    )


@xf.task
def silver_join(orders: DataFrame, custs: DataFrame) -> DataFrame:
    return orders.join(custs, "customer_id", "left").fillna({"country": "unknown"})


@xf.task
def gold_daily(joined: DataFrame) -> DataFrame:
    return joined.groupBy(F.to_date("ts").alias("day"), "country").agg(
        F.round(F.sum("amount"), 2).alias("revenue"),
        F.count("*").alias("orders"),
    )


@xf.task(wait_until_committed=["silver_orders"])
def publish_gold(gold: DataFrame, lake: str) -> dict[str, int]:
    xf.write_delta(gold, f"{lake}/gold_daily", mode="append")
    return {"gold_rows": gold.count()}


@xf.task
def quarantine(bronze: DataFrame, lake: str) -> dict[str, Any]:
    bad = bronze.filter(F.col("error").isNotNull()).select(
        "raw", "error", "source", F.lit(xf.current_task().workflow_id).alias("workflow_id")
    )
    xf.write_delta(bad, f"{lake}/quarantine", mode="append")
    by_reason = {
        r["error"]: r["n"] for r in bad.groupBy("error").agg(F.count("*").alias("n")).collect()
    }
    return {"quarantined": sum(by_reason.values()), "reasons": by_reason}


@xf.task
def report(published: dict[str, int], quarantined: dict[str, Any]) -> dict[str, Any]:
    return {**published, **quarantined}


def build_dag(raw_dir: str, lake: str, schema_drift: str = "reject") -> xf.Node:
    """The ETL DAG: raw -> bronze -> silver -> join -> gold -> publish, plus quarantine."""
    bronze = bronze_orders.bind(raw_orders.bind(f"{raw_dir}/orders"), schema_drift)
    joined = silver_join.bind(silver_orders.bind(bronze), customers.bind(f"{raw_dir}/customers"))
    return report.bind(
        publish_gold.bind(gold_daily.bind(joined), lake), quarantine.bind(bronze, lake)
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = job_arg_parser(__doc__.splitlines()[0], default_workflow_id="etl-demo")
    add_checkpoint_policy(parser)
    parser.add_argument("--rows", type=int, default=200_000, help="raw orders to generate")
    parser.add_argument(
        "--lake", help="where gold and quarantine tables go (default: <storage>/lake)"
    )
    parser.add_argument(
        "--raw",
        help="read raw data from this directory (orders/ and customers/) instead of generating it",
    )
    parser.add_argument(
        "--schema-drift",
        choices=["reject", "evolve"],
        default="reject",
        help="fields the orders should not have: stop the run (reject, default) or carry "
        "them into bronze (evolve)",
    )
    args = parser.parse_args(argv)
    spark, _profile, storage = start(args, "exoflow-etl")
    lake = args.lake or f"{storage}/lake"
    raw_dir = args.raw or f"{storage}/raw/rows-{args.rows}"
    if not args.raw:
        generate_raw(spark, raw_dir, args.rows)
    try:
        summary = xf.run(
            build_dag(raw_dir, lake, args.schema_drift),
            workflow_id=args.workflow_id,
            storage=storage,
            spark=spark,
            checkpoint=args.checkpoint_policy,
        )
    except xf.ExoflowError as exc:
        logger.error("%s", exc)
        return 1
    gold = spark.read.format("delta").load(f"{lake}/gold_daily")
    print(
        json.dumps(
            {
                "workflow_id": args.workflow_id,
                "status": xf.get_status(args.workflow_id, storage=storage).value,
                **summary,
                "gold_table_rows": gold.count(),
                "gold_table": f"{lake}/gold_daily",
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
