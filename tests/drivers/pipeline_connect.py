"""Runs a Spark Declarative Pipelines project through a Spark Connect session (no JVM in this
process), for tests/integration/test_connect.py: the same update twice under one workflow id
(the second must publish nothing), then tries to load a project with a streaming table (which
Connect refuses). Prints one JSON line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pyspark.sql import SparkSession

import exoflow_spark as xf
from exoflow_spark.errors import PipelineError
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
    try:
        xf.load_pipeline(args.streaming_spec, spark)
        refused = ""
    except PipelineError as exc:
        refused = str(exc)
    doc = {
        "connect": is_connect_session(spark),
        "status": xf.get_status(args.workflow_id, storage=out["storage"]).value,
        "runs": runs,
        "refused": refused,
    }
    print(json.dumps(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
