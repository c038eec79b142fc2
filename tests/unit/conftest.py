"""Unit tests run without Spark: no SparkSession, no JVM.

The suite's ``spark`` fixture is replaced by one that fails, and a test that starts a
SparkContext some other way (``xf.get_spark()``, a builder) fails too: such a test belongs in
tests/spark/.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pyspark import SparkContext


@pytest.fixture
def spark() -> None:
    pytest.fail("tests/unit runs without Spark: a test that needs a session goes in tests/spark/")


@pytest.fixture(autouse=True)
def _no_spark_started() -> Iterator[None]:
    before = SparkContext._active_spark_context
    yield
    if before is None and SparkContext._active_spark_context is not None:
        pytest.fail("this unit test started a SparkContext: move it to tests/spark/")
