"""Fixtures shared by the three suites, and their order.

    tests/unit/         no SparkSession at all (pure Python, the package's layering)
    tests/spark/        one SparkSession (local[2], Delta, UI off) shared by the process
    tests/integration/  external services: standalone cluster, Spark Connect, S3, notebooks
    tests/drivers/      driver programs tests start as processes, and the one launcher

Tests isolate themselves by workflow id and a temporary storage root, so the suite also runs
under pytest-xdist (``-n 2 --dist loadfile``: each worker has its own session, and a module's
tests, with their module-scoped servers, stay on one worker). Subprocess tests start their own
driver JVM (``drivers.start_driver``) and kill it; they share the Ivy cache the session filled.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
# checkpoint="auto" writes nothing whose recompute puts under 5 s at risk (autockpt.MIN_REPLAY_S).
# The suite's stages cost milliseconds to seconds and its tests set the storage root's cost
# model to decide what "auto" writes: the floor is off here and in the driver processes, which
# inherit it, except in the tests of the floor itself (tests/spark/test_auto.py)
os.environ["EXOFLOW_AUTO_MIN_REPLAY_S"] = "0"

import exoflow_spark as xf

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
if str(TESTS) not in sys.path:  # `import drivers` in every test module, whatever the import mode
    sys.path.insert(0, str(TESTS))

import drivers  # noqa: E402  (tests/ on sys.path first)

#: a test's suite is its directory, added to it as a marker (``-m unit``, ``-m spark``,
#: ``-m integration``)
SUITES = ("unit", "spark", "integration")
#: the run's order: unit tests first (seconds, they fail fast), then these modules, the longest
#: first, so that two xdist workers finish together (``--dist loadfile --no-loadscope-reorder``
#: hands out whole modules in this order; without the flag xdist orders modules by their number
#: of tests, which sent the four long graph tests last); then the rest in collection order
SLOW_FIRST = (
    "test_crash.py",
    "test_notebooks.py",
    "test_graph_job.py",
    "test_pipelines.py",
    "test_streaming.py",
    "test_connect.py",
    "test_standalone_cluster.py",
    "test_executor_loss.py",
    "test_graph.py",
    "test_iterate.py",
    "test_chaos.py",
    "test_s3.py",
    "test_ml_job.py",
    "test_storage_faults.py",
    "test_runtime.py",
    "test_concurrent.py",
    "test_benchmarks.py",
    "test_auto.py",
)

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
def _stop_leftover_drivers() -> Iterator[None]:
    """Kill the driver processes a test started and left running (it failed before waiting
    for them); a stray driver would otherwise hold CPU and memory for the rest of the run."""
    yield
    drivers.stop_all()


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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its suite; run unit tests first, then the slowest modules."""

    def suite(item: pytest.Item) -> str:
        try:
            rel = item.path.resolve().relative_to(TESTS)
        except ValueError:
            return ""
        return rel.parts[0] if len(rel.parts) > 1 else ""

    for item in items:
        name = suite(item)
        if name in SUITES:
            item.add_marker(name)

    def key(pair: tuple[int, pytest.Item]) -> tuple[int, int, int]:
        index, item = pair
        name = item.path.name
        slow = SLOW_FIRST.index(name) if name in SLOW_FIRST else len(SLOW_FIRST)
        return (0 if suite(item) == "unit" else 1), slow, index

    items[:] = [item for _, item in sorted(enumerate(items), key=key)]
