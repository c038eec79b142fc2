"""The jobs on a real Spark standalone cluster: one master and two workers on 127.0.0.1,
started from the pip pyspark's ``bin/spark-class``, driven by ``spark-submit`` and by plain
``python``. The cluster is stopped (process groups killed) when the module's tests end."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyspark
import pytest
from drivers import REPO, run_driver
from drivers.jobs import load_job, oracle

from exoflow_spark.spark.session import delta_package
from exoflow_spark.storage.store import WorkflowStore

pytestmark = [pytest.mark.cluster, pytest.mark.subprocess, pytest.mark.integration]

SPARK_HOME = Path(pyspark.__file__).resolve().parent
ETL_ROWS = 2000

PROFILE = """
[standalone-test]
[standalone-test.spark]
"spark.ui.enabled" = "false"
"spark.ui.showConsoleProgress" = "false"
"spark.driver.host" = "127.0.0.1"
"spark.driver.bindAddress" = "127.0.0.1"
"spark.driver.memory" = "1g"
"spark.executor.memory" = "512m"
"spark.executor.cores" = "1"
"spark.cores.max" = "2"
"spark.sql.shuffle.partitions" = "4"
"spark.databricks.delta.snapshotPartitions" = "2"
"""


def _master_addresses(log: Path, master: subprocess.Popen) -> tuple[str, str]:
    """The master's ``spark://`` URL and web UI address, read from its log once it has bound."""
    deadline = time.monotonic() + 120
    while True:
        text = log.read_text(errors="replace") if log.exists() else ""
        rpc = re.search(r"Starting Spark master at (spark://\S+)", text)
        ui = re.search(r"Successfully started service 'MasterUI' on port (\d+)", text)
        if rpc and ui:
            return rpc.group(1), f"http://127.0.0.1:{ui.group(1)}"
        if master.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the standalone master did not start: {text[-2000:]}")
        time.sleep(0.25)


@dataclass
class Cluster:
    url: str
    ui: str
    conf_dir: Path
    env: dict[str, str]

    def state(self) -> dict:
        with urllib.request.urlopen(f"{self.ui}/json/", timeout=5) as resp:
            return json.loads(resp.read())


def _spawn(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [str(SPARK_HOME / "bin" / "spark-class"), *args],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,  # its own process group: the teardown kills the whole group
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("no Java runtime")
    tmp = tmp_path_factory.mktemp("standalone")
    conf_dir = tmp / "conf"
    conf_dir.mkdir()
    (conf_dir / "profiles.toml").write_text(PROFILE)
    shutil.copy(REPO / "conf" / "logging.ini", conf_dir / "logging.ini")
    env = {
        **os.environ,
        "SPARK_HOME": str(SPARK_HOME),
        "SPARK_LOCAL_IP": "127.0.0.1",  # web UIs and RPC bind to loopback only
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "EXOFLOW_CONF_DIR": str(conf_dir),
        "SPARK_NO_DAEMONIZE": "1",
        # No REST submission server: it binds a fixed port (6066) that we do not need.
        "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false",
    }
    env.pop("EXOFLOW_CRASH_AT", None)
    master_log = tmp / "master.log"
    procs = [
        _spawn(
            [
                "org.apache.spark.deploy.master.Master",
                # Port 0: the master binds free ports itself and logs them, so no other
                # process on the machine can take a port between our choosing and its binding.
                *("--host", "127.0.0.1", "--port", "0", "--webui-port", "0"),
            ],
            master_log,
            env,
        )
    ]
    try:
        url, ui = _master_addresses(master_log, procs[0])
        for i in range(2):
            work = tmp / f"worker{i}"
            work.mkdir()
            procs.append(
                _spawn(
                    [
                        "org.apache.spark.deploy.worker.Worker",
                        *("--host", "127.0.0.1", "--port", "0", "--webui-port", "0"),
                        *("--cores", "1", "--memory", "1g", "--work-dir", str(work), url),
                    ],
                    tmp / f"worker{i}.log",
                    env,
                )
            )
        c = Cluster(url, ui, conf_dir, env)
        deadline = time.monotonic() + 120
        while True:
            try:
                alive = [w for w in c.state().get("workers", []) if w.get("state") == "ALIVE"]
                if len(alive) == 2:
                    break
            except (OSError, ValueError):  # not listening yet, or not yet answering JSON
                pass
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                logs = {f.name: f.read_text()[-2000:] for f in tmp.glob("*.log")}
                pytest.fail(f"the standalone cluster did not come up: {logs}")
            time.sleep(0.5)
        yield c
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def failure(proc: subprocess.CompletedProcess) -> str:
    """The interesting part of a failed job's output: its Python traceback and errors."""
    lines = proc.stderr.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("Traceback")), None)
    keep = lines[start:] if start is not None else [x for x in lines if "ERROR" in x]
    return "\n".join(keep)[-6000:] or proc.stderr[-4000:]


def finished_apps(c: Cluster) -> list[str]:
    return [a["name"] for a in c.state().get("completedapps", [])]


def test_etl_job_by_spark_submit(cluster: Cluster, tmp_path: Path) -> None:
    storage = tmp_path / "exo"
    cmd = [
        str(SPARK_HOME / "bin" / "spark-submit"),
        *("--master", cluster.url, "--conf", "spark.ui.enabled=false"),
        # under spark-submit the JVM starts before Python: the Delta jars must be named here
        *("--packages", delta_package()),
        *("--conf", "spark.driver.host=127.0.0.1", "--conf", "spark.driver.bindAddress=127.0.0.1"),
        str(REPO / "jobs" / "etl_pipeline.py"),
        *("--workflow-id", "etl-cluster", "--storage", str(storage), "--rows", str(ETL_ROWS)),
        *("--profile", "standalone-test"),
    ]
    proc = subprocess.run(cmd, env=cluster.env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, failure(proc)
    summary = json.loads(proc.stdout[proc.stdout.index("{") :])
    gold_expected, reasons = oracle(storage / "raw" / f"rows-{ETL_ROWS}")
    assert summary["status"] == "SUCCESSFUL"
    assert summary["gold_rows"] == summary["gold_table_rows"] == len(gold_expected)
    assert summary["reasons"] == reasons
    # the job really ran on the cluster (its executors, not a local master)
    assert "exoflow-etl" in finished_apps(cluster)
    commits = WorkflowStore(str(storage), "etl-cluster").read_state().commits
    assert {"bronze_orders", "customers", "silver_orders", "report"} <= set(commits)


def test_ml_job_by_python_matches_local(
    cluster: Cluster, spark, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        *("--users", "300", "--events", "3000", "--epochs", "2", "--max-iter", "2"),
        *("--checkpoint", "selective", "--checkpoint-every", "1", "--workflow-id", "ml"),
    ]
    proc = run_driver(
        REPO / "jobs" / "ml_training.py",
        *("--master", cluster.url, "--storage", tmp_path / "cluster"),
        *("--profile", "standalone-test", *args),
        env=cluster.env,
    )
    assert proc.returncode == 0, failure(proc)
    on_cluster = json.loads(proc.stdout[proc.stdout.index("{") :])
    assert on_cluster["status"] == "SUCCESSFUL" and on_cluster["epoch"] == 2
    assert "exoflow-ml" in finished_apps(cluster)
    commits = WorkflowStore(str(tmp_path / "cluster"), "ml").read_state().commits
    assert {"features", "train_e1", "train_e2", "evaluate"} <= set(commits)

    # the same job on the suite's local session trains the same model
    assert load_job("ml_training").main([*args, "--storage", str(tmp_path / "local")]) == 0
    local = json.loads(capsys.readouterr().out)
    assert on_cluster["coefficients"] == pytest.approx(local["coefficients"], rel=1e-6)
    assert on_cluster["intercept"] == pytest.approx(local["intercept"], rel=1e-6)
    assert on_cluster["accuracy"] == local["accuracy"]
