"""Runs a Spark Declarative Pipelines project through a Spark Connect session (no JVM in this
process), for tests/integration/test_connect.py: the same update twice under one workflow id
(the second must publish nothing), then a project with streaming tables and a Delta sink: its
update twice under one id, then an update after new input arrived. Prints one JSON line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipeline_projects import EVENT_FILES, MORE_EVENTS, write_events
from pyspark.sql import SparkSession

import exoflow_spark as xf
from exoflow_spark.spark.session import is_connect_session
from exoflow_spark.storage.checkpoints import table_snapshot


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--remote", required=True)
    p.add_argument("--spec", required=True)
    p.add_argument("--streaming-spec", required=True)
    p.add_argument("--workflow-id", required=True)
    args = p.parse_args()
    spark = SparkSession.builder.remote(args.remote).getOrCreate()
    runs = []
    for _ in range(2):
        out = xf.run_pipeline(args.spec, spark, workflow_id=args.workflow_id)
        versions = {
            p.name: table_snapshot(spark, str(p)).version
            for p in sorted((Path(args.spec).parent / "storage" / "tables").iterdir())
        }
        runs.append({"output": out["output"], "versions": versions})
    streaming_spec = Path(args.streaming_spec)
    tables = streaming_spec.parent / "storage" / "tables"
    sink = str(streaming_spec.parent / "audit-sink")
    streaming = []
    for step in ("first", "again", "new input"):
        if step == "new input":
            write_events(streaming_spec.parent, [*EVENT_FILES, *MORE_EVENTS])
        wf = "shop-1" if step != "new input" else None
        out_s = xf.run_pipeline(streaming_spec, spark, workflow_id=wf)
        versions = {p.name: table_snapshot(spark, str(p)).version for p in sorted(tables.iterdir())}
        versions["audit-sink"] = table_snapshot(spark, sink).version
        streaming.append({"workflow_id": out_s["workflow_id"], "versions": versions})
    doc = {
        "connect": is_connect_session(spark),
        "status": xf.get_status(args.workflow_id, storage=out["storage"]).value,
        "runs": runs,
        "streaming": streaming,
    }
    print(json.dumps(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
