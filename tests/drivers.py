"""Shared plumbing for tests that run a driver in its own process (and kill it)."""

from __future__ import annotations

import os
from typing import Any

import exoflow_spark as xf

DRIVER_CONF = {
    "spark.ui.enabled": "false",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.sql.ui.retainedExecutions": "20",
}


def driver_session(master: str, app_name: str, shuffle_partitions: int = 2) -> Any:
    """A quiet SparkSession for a driver process started by a test."""
    spark = xf.create_spark_session(
        master,
        app_name=app_name,
        conf={**DRIVER_CONF, "spark.sql.shuffle.partitions": str(shuffle_partitions)},
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def driver_env(crash_at: str | None = None) -> dict[str, str]:
    """The environment of a driver subprocess: loopback only, a crash point if asked."""
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"}
    env.pop("EXOFLOW_CRASH_AT", None)
    if crash_at:
        env["EXOFLOW_CRASH_AT"] = crash_at
    return env
