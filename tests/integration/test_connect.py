"""exoflow-spark through Spark Connect: a local Spark Connect server (the pip pyspark's
``spark-connect`` jar, Delta configured) on 127.0.0.1, and client processes without a JVM.

The clients run in their own processes: a Connect session switches pyspark into Connect mode
for the whole process, which the suite's classic session must not see. The checks read the
tables with the suite's classic session (the storage is a local path both can reach).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pyspark
import pytest
from drivers import DRIVERS, REPO, run_driver
from drivers.jobs import oracle
from drivers.pipeline_projects import (
    EVENT_FILES,
    MORE_EVENTS,
    connect_project,
    events,
    rich_project,
    segment_totals,
)

import exoflow_spark as xf
from exoflow_spark.core.status import WorkflowStatus
from exoflow_spark.spark.session import DELTA_CATALOG, DELTA_EXTENSION, delta_package
from exoflow_spark.storage.store import WorkflowStore

pytestmark = [pytest.mark.connect, pytest.mark.subprocess, pytest.mark.integration]

SPARK_HOME = Path(pyspark.__file__).resolve().parent
ROWS = 5000  # connect_client.ROWS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def connect_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Spark Connect server on 127.0.0.1, stopped (process group killed) afterwards."""
    tmp = tmp_path_factory.mktemp("connect-server")
    port = free_port()
    confs = {
        "spark.sql.extensions": DELTA_EXTENSION,
        "spark.sql.catalog.spark_catalog": DELTA_CATALOG,
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.connect.grpc.binding.port": str(port),
        "spark.ui.enabled": "false",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.sql.shuffle.partitions": "2",
        # Delta's state reconstruction in 2 tasks, not 50 (as the test session and local ones)
        "spark.databricks.delta.snapshotPartitions": "2",
        "spark.sql.execution.pythonUDF.arrow.enabled": "false",
    }
    cmd = [
        str(SPARK_HOME / "bin" / "spark-submit"),
        *("--class", "org.apache.spark.sql.connect.service.SparkConnectServer"),
        *("--name", "exoflow-connect-test", "--master", "local[2]", "--driver-memory", "1g"),
        *("--packages", delta_package()),
        *(arg for key, value in confs.items() for arg in ("--conf", f"{key}={value}")),
        "spark-internal",
    ]
    log = tmp / "server.log"
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_HOME": str(SPARK_HOME)}
    server = subprocess.Popen(
        cmd,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=env,
        cwd=tmp,
        start_new_session=True,  # its own process group, killed whole at the end
    )
    try:
        deadline = time.monotonic() + 180
        while "Spark Connect server started" not in log.read_text(errors="replace"):
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the Spark Connect server did not start:\n{log.read_text()[-4000:]}")
            time.sleep(0.5)
        yield f"sc://127.0.0.1:{port}"
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()


def client(
    url: str, tmp: Path, crash_at: str | None = None, wf: str = "connect-wf"
) -> subprocess.CompletedProcess:
    (tmp / "counters").mkdir(exist_ok=True)
    return run_driver(
        "connect_client.py",
        *("--remote", url, "--storage", tmp / "exo", "--sink", tmp / "sink"),
        *("--counter-dir", tmp / "counters", "--workflow-id", wf),
        crash_at=crash_at,
        cwd=DRIVERS,
    )


def executions(tmp: Path) -> dict[str, int]:
    return {p.name: len(p.read_text().splitlines()) for p in (tmp / "counters").iterdir()}


def expected_sink() -> dict[int, tuple[int, int]]:
    """publish's rows, computed in plain Python."""
    acc: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for i in range(ROWS):
        amount = i * 13 % 97
        if amount > 40:
            acc[i % 7][0] += amount
            acc[i % 7][1] += 1
    return {k: (v[0], v[1]) for k, v in acc.items()}


def sink_rows(spark, tmp: Path) -> dict[int, tuple[int, int]]:
    rows = spark.read.format("delta").load(str(tmp / "sink")).collect()
    assert len(rows) == len({r.store for r in rows}), "a sink row was written twice"
    return {r.store: (r.revenue, r.n) for r in rows}


def table_rows(spark, path: Path) -> list[tuple]:
    return sorted(tuple(r) for r in spark.read.format("delta").load(str(path)).collect())


def last_json(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_run_checkpoints_sink_and_outputs_over_connect(spark, connect_url, tmp_path) -> None:
    out = last_json(client(connect_url, tmp_path))
    assert out["connect"] is True  # the client really was a Spark Connect session
    assert out["status"] == "SUCCESSFUL"
    assert out["result"] == out["output"] == {"stores": 7}
    assert sink_rows(spark, tmp_path) == expected_sink()
    # the DataFrame-output workflow: returned and restored by get_output as Connect DataFrames
    assert out["top_output_type"] == "pyspark.sql.connect.dataframe"
    assert out["top_output_rows"] == 7
    assert {r["store"]: (r["revenue"], r["n"]) for r in out["top"]} == expected_sink()
    assert [r["name"] for r in out["top"]] == [f"store-{s}" for s in range(7)]
    # the sync and async checkpoints are Delta tables written by the server, logged here
    commits = WorkflowStore(str(tmp_path / "exo"), "connect-wf").read_state().commits
    assert commits["orders"].mode == "sync" and commits["big"].mode == "async"
    big = commits["big"].checkpoint
    assert (
        spark.read.format("delta").option("versionAsOf", big.version).load(big.path).count()
        == big.rows
        > 0
    )

    # a second run of both workflows executes nothing and writes nothing
    before = executions(tmp_path)
    assert before["connect-wf.orders"] == before["connect-wf-df.top_stores"] == 1
    again = last_json(client(connect_url, tmp_path))
    assert again["result"] == {"stores": 7}
    assert executions(tmp_path) == before
    assert sink_rows(spark, tmp_path) == expected_sink()


def test_killed_client_resumes_exactly_once_over_connect(spark, connect_url, tmp_path) -> None:
    crashed = client(connect_url, tmp_path, crash_at="publish:during-sink")
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-3000:]
    storage = str(tmp_path / "exo")
    assert xf.get_status("connect-wf", storage=storage) == WorkflowStatus.RESUMABLE
    assert sink_rows(spark, tmp_path) == expected_sink()  # the sink committed, then the kill
    before = executions(tmp_path)
    assert before["connect-wf.orders"] == 1 and before["connect-wf.publish"] == 1

    out = last_json(client(connect_url, tmp_path))
    assert out["status"] == "SUCCESSFUL" and out["result"] == {"stores": 7}
    after = executions(tmp_path)
    assert after["connect-wf.orders"] == after["connect-wf.big"] == 1, "committed task re-ran"
    # publish re-ran (it had not committed): its sink write was skipped by its txn version
    assert after["connect-wf.publish"] == 2
    assert sink_rows(spark, tmp_path) == expected_sink()


def test_etl_job_with_remote_flag(spark, connect_url, tmp_path) -> None:
    rows = 2000
    storage = tmp_path / "exo"
    proc = run_driver(
        REPO / "jobs" / "etl_pipeline.py",
        *("--remote", connect_url, "--storage", storage, "--rows", rows),
        *("--workflow-id", "etl-connect"),
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads(proc.stdout[proc.stdout.index("{") :])
    gold_expected, reasons = oracle(storage / "raw" / f"rows-{rows}")
    assert summary["status"] == "SUCCESSFUL"
    assert summary["reasons"] == reasons
    assert summary["gold_rows"] == summary["gold_table_rows"] == len(gold_expected)


def test_a_declarative_pipeline_runs_over_connect_and_publishes_once(
    spark, connect_url, tmp_path
) -> None:
    """SDP projects through xf.run_pipeline on a Connect session: materialized views (Python
    and SQL, a temporary view) twice under one workflow id; then streaming tables fed by append
    flows, a SQL streaming table and a Delta sink, twice under one id and once more after new
    input arrived."""
    from delta.tables import DeltaTable

    spec = connect_project(tmp_path / "shop")
    streaming_spec = rich_project(tmp_path / "small")
    out = last_json(
        run_driver(
            "pipeline_connect.py",
            *("--remote", connect_url, "--spec", spec, "--streaming-spec", streaming_spec),
            *("--workflow-id", "shop-connect-1"),
            cwd=DRIVERS,
            timeout=600,
        )
    )
    assert out["connect"] is True and out["status"] == "SUCCESSFUL"
    # the update's task read every published dataset (the temporary view is not one)
    assert out["runs"][0]["output"] == {
        "pipeline": "shop_connect",
        "datasets": ["orders", "store_report", "store_totals"],
    }
    orders = [(i, i % 7, i * 13 % 97) for i in range(200)]
    acc: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for _, store, amount in orders:
        if amount > 40:
            acc[store][0] += amount
            acc[store][1] += 1
    totals = sorted((s, r, n) for s, (r, n) in acc.items())

    def table(name: str) -> list[tuple]:
        path = str(spec.parent / "storage" / "tables" / name)
        return sorted(tuple(r) for r in spark.read.format("delta").load(path).collect())

    assert table("orders") == orders
    assert table("store_totals") == totals
    assert table("store_report") == totals
    # the second run of the same update published nothing: one commit per table
    first, second = out["runs"]
    assert (
        first["versions"]
        == second["versions"]
        == {
            "orders": 0,
            "store_totals": 0,
            "store_report": 0,
        }
    )
    assert first["output"] == second["output"]
    for name in ("orders", "store_totals", "store_report"):
        path = str(spec.parent / "storage" / "tables" / name)
        assert DeltaTable.forPath(spark, path).history().count() == 1
    # streaming tables (append flows, a SQL streaming table) and a Delta sink over Connect:
    # each micro-batch is written by the server; every table equals what Python computes
    sroot = tmp_path / "small"
    stables = sroot / "storage" / "tables"
    first, again, later = out["streaming"]
    assert [first["workflow_id"], again["workflow_id"], later["workflow_id"]] == [
        "shop-1",
        "shop-1",
        "shop-2",
    ]
    # the same update again publishes nothing; new input adds one commit to each streaming
    # table and the sink (and the materialized views are published again)
    assert again["versions"] == first["versions"]
    for name in ("events", "enriched_events", "big_spends", "audit-sink"):
        assert later["versions"][name] == first["versions"][name] + 1, name
    evs = events([*EVENT_FILES, *MORE_EVENTS])
    assert table_rows(spark, stables / "events") == evs
    assert table_rows(spark, sroot / "audit-sink") == evs
    assert table_rows(spark, stables / "big_spends") == [e for e in evs if e[1] > 5]
    assert table_rows(spark, stables / "enriched_events") == sorted((c, a, c % 3) for c, a in evs)
    assert table_rows(spark, stables / "segment_totals") == segment_totals(evs)
