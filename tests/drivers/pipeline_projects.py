"""Spark Declarative Pipelines projects written to disk for tests/spark/test_pipelines.py and
its driver (pipeline_job.py): plain SDP projects, nothing exoflow-specific in them."""

from __future__ import annotations

import json
import textwrap
from collections import Counter
from pathlib import Path

#: customer_id, amount of the input events, file by file
EVENT_FILES = [
    [{"customer_id": (i * 7 + j) % 20, "amount": float((i * 13 + j * 5) % 11)} for j in range(10)]
    for i in range(3)
]

#: input that arrives after the first update (tests of incremental updates)
MORE_EVENTS = [[{"customer_id": 4, "amount": 9.0}, {"customer_id": 5, "amount": 1.0}]]


def _spec(root: Path, name: str, extra: str = "") -> Path:
    spec = root / "spark-pipeline.yml"
    spec.write_text(
        f"name: {name}\nstorage: file://{root}/storage\n{extra}"
        "libraries:\n  - glob:\n      include: transformations/**\n"
    )
    return spec


def events(files: list[list[dict[str, float]]] = EVENT_FILES) -> list[tuple[int, float]]:
    """The ``events`` streaming table's rows, sorted: (customer_id, amount)."""
    return sorted((int(r["customer_id"]), r["amount"]) for f in files for r in f)


def segment_totals(evs: list[tuple[int, float]]) -> list[tuple]:
    """The rich project's ``segment_totals`` rows, computed in Python (segment 0 left out)."""
    total: Counter[int] = Counter()
    n: Counter[int] = Counter()
    for cid, amount in evs:
        if cid % 3 > 0:
            total[cid % 3] += amount
            n[cid % 3] += 1
    return sorted((s, total[s], n[s]) for s in total)


def write_events(root: Path, files: list[list[dict[str, float]]] = EVENT_FILES) -> None:
    """The input the ``events`` streaming table reads (one JSON file per list)."""
    (root / "input").mkdir(parents=True, exist_ok=True)
    for i, rows in enumerate(files):
        (root / "input" / f"part-{i}.json").write_text("\n".join(json.dumps(r) for r in rows))


SOURCES = """\
import os
from pyspark import pipelines as dp
from pyspark.sql import functions as F

HERE = os.path.dirname(os.path.abspath(__file__))


@dp.materialized_view
def customers():
    return spark.range(0, 20).select(
        F.col("id").alias("customer_id"), (F.col("id") % 3).alias("segment")
    )


dp.create_streaming_table("events")


@dp.append_flow(target="events")
def events_from_files():
    return (
        spark.readStream.format("json")
        .schema("customer_id LONG, amount DOUBLE")
        .load(os.path.join(HERE, "..", "input"))
    )
"""

SINK = """\
import os
from pyspark import pipelines as dp

HERE = os.path.dirname(os.path.abspath(__file__))

dp.create_sink("audit", format="delta", options={"path": os.path.join(HERE, "..", "audit-sink")})


@dp.append_flow(target="audit")
def audit_flow():
    return spark.readStream.table("events").select("customer_id", "amount")
"""

ENRICH = """\
from pyspark import pipelines as dp


@dp.temporary_view
def segments():
    return spark.read.table("customers").where("segment > 0")


@dp.table
def enriched_events():
    return spark.readStream.table("events").join(spark.read.table("customers"), "customer_id")
"""

REPORT = """\
-- totals per segment (segment 0 is left out by the temporary view)
CREATE MATERIALIZED VIEW segment_totals AS
SELECT s.segment, SUM(e.amount) AS total, COUNT(*) AS n
FROM enriched_events e JOIN segments s ON e.customer_id = s.customer_id
GROUP BY s.segment;

CREATE STREAMING TABLE big_spends AS SELECT * FROM STREAM(events) WHERE amount > 5;
"""

SMALL_REPORT = """\
CREATE MATERIALIZED VIEW segment_totals AS
SELECT c.segment, SUM(e.amount) AS total, COUNT(*) AS n
FROM events e JOIN customers c ON e.customer_id = c.customer_id
GROUP BY c.segment;
"""


def rich_project(root: Path, name: str = "shop") -> Path:
    """Python and SQL files: a materialized view, a streaming table fed by an append flow, a
    streaming table defined in SQL, a temporary view, a SQL materialized view and a Delta sink."""
    t = root / "transformations"
    t.mkdir(parents=True)
    (t / "sources.py").write_text(SOURCES)
    (t / "sink.py").write_text(SINK)
    (t / "enrich.py").write_text(ENRICH)
    (t / "report.sql").write_text(REPORT)
    write_events(root)
    return _spec(root, name, 'configuration:\n  exoflow.checkpoint.segments: "false"\n')


def small_project(root: Path, name: str = "small") -> Path:
    """Two materialized views (Python, SQL) and a streaming table: the crash test's project."""
    t = root / "transformations"
    t.mkdir(parents=True)
    (t / "sources.py").write_text(SOURCES)
    (t / "report.sql").write_text(SMALL_REPORT)
    write_events(root)
    return _spec(root, name)


def bad_project(root: Path, files: dict[str, str]) -> Path:
    """A project made of ``files`` (name -> text) under transformations/."""
    t = root / "transformations"
    t.mkdir(parents=True)
    for name, text in files.items():
        (t / name).write_text(textwrap.dedent(text))
    return _spec(root, "bad")


CONNECT_ORDERS = """\
from pyspark import pipelines as dp
from pyspark.sql import functions as F


@dp.materialized_view
def orders():
    return spark.range(0, 200).select(
        F.col("id").alias("order_id"),
        (F.col("id") % 7).alias("store"),
        (F.col("id") * 13 % 97).alias("amount"),
    )


@dp.materialized_view
def store_report():
    counts = spark.read.table("store_totals").select("store", "n")
    return spark.sql("SELECT store, revenue FROM store_totals WHERE n > 0").join(counts, "store")
"""

CONNECT_TOTALS = """\
-- orders over 40; a temporary view read by a materialized view
CREATE TEMPORARY VIEW big_orders AS SELECT * FROM orders WHERE amount > 40;

CREATE MATERIALIZED VIEW store_totals AS
SELECT b.store, SUM(b.amount) AS revenue, COUNT(*) AS n
FROM big_orders b JOIN orders o ON b.order_id = o.order_id
GROUP BY b.store;
"""


def connect_project(root: Path, name: str = "shop_connect") -> Path:
    """Batch only (what runs over Spark Connect): a Python materialized view, a SQL temporary
    view and a SQL materialized view reading it, a Python materialized view reading the SQL
    one through ``spark.read.table`` and ``spark.sql``."""
    t = root / "transformations"
    t.mkdir(parents=True)
    (t / "orders.py").write_text(CONNECT_ORDERS)
    (t / "totals.sql").write_text(CONNECT_TOTALS)
    return _spec(root, name)
