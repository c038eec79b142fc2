"""Runs updates of a Spark Declarative Pipelines project with ``exoflow-spark run spec.yml``
(the CLI, in this process), as tests/spark/test_pipelines.py's crashing driver.

``--updates N`` runs N updates one after the other; ``EXOFLOW_CRASH_AT`` may kill it."""

from __future__ import annotations

import argparse
import sys

from drivers import driver_session
from exoflow_spark.surface import cli


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--spec", required=True)
    p.add_argument("--updates", type=int, default=1)
    args = p.parse_args()
    driver_session("local[2]", "exoflow-pipeline-job")
    for _ in range(args.updates):
        code = cli.main(["run", args.spec, "--no-progress"])
        if code != 0:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
