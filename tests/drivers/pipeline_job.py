"""Runs one update of a Spark Declarative Pipelines project with ``exoflow-spark run
spec.yml`` (the CLI, in this process): tests/spark/test_pipelines.py's crashing driver
(``EXOFLOW_CRASH_AT`` kills it)."""

from __future__ import annotations

import argparse
import sys

from drivers import driver_session
from exoflow_spark.surface import cli


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--spec", required=True)
    args = p.parse_args()
    driver_session("local[2]", "exoflow-pipeline-job")
    return cli.main(["run", args.spec, "--no-progress"])


if __name__ == "__main__":
    sys.exit(main())
