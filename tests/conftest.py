"""One SparkSession (local[2], Delta, UI off) shared by the whole suite.

Tests isolate themselves by workflow id and a temporary storage root. Subprocess tests start
their own driver JVM and kill it; they share the Ivy cache the session filled.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

import exoflow_spark as xf

REPO = Path(__file__).resolve().parent.parent

TEST_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.databricks.delta.snapshotPartitions": "2",
    "spark.sql.adaptive.coalescePartitions.initialPartitionNum": "2",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.driver.host": "127.0.0.1",
    # one session serves the whole suite: keep less history, and give it room
    "spark.driver.memory": "2g",
    "spark.sql.ui.retainedExecutions": "20",
    "spark.ui.retainedJobs": "50",
    "spark.ui.retainedStages": "50",
}


@pytest.fixture(scope="session")
def spark():
    session = xf.create_spark_session("local[2]", app_name="exoflow-tests", conf=TEST_CONF)
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture
def storage(tmp_path: Path) -> str:
    """A fresh storage root for one test."""
    return str(tmp_path / "exo")


@pytest.fixture
def wf(request: pytest.FixtureRequest) -> str:
    """A workflow id unique to the test (derived from its name)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", request.node.name)[:100].strip("-.") or "wf"


@pytest.fixture
def sink_path(tmp_path: Path) -> str:
    return str(tmp_path / "sink")


@pytest.fixture(autouse=True)
def _restore_root_logging():
    """Jobs run in-process configure logging (handlers on the stream of that test's capture);
    drop what a test added so later tests do not log to a closed stream."""
    import logging

    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in before:
            root.removeHandler(handler)
    root.setLevel(level)
