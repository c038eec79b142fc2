"""The notebooks, executed headlessly (nbclient, a real ipykernel) and checked by their outputs.

Notebooks use the ``spark`` session they are given, as on Databricks; a hidden first cell
tagged ``injected`` plays the platform: it builds that session (Delta, local[1], UI off) and
sets the storage root. Each kernel starts its own JVM.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import nbformat
import pytest
from drivers import REPO
from nbclient import NotebookClient

pytestmark = [pytest.mark.subprocess, pytest.mark.integration]

INJECTED = """
import os
os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
os.environ["PYSPARK_PYTHON"] = {python!r}
import exoflow_spark as xf
spark = xf.create_spark_session(
    "local[1]",
    app_name="notebook-test",
    conf={{
        "spark.ui.enabled": "false",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.sql.shuffle.partitions": "1",
    }},
)
spark.sparkContext.setLogLevel("ERROR")
EXOFLOW_STORAGE = {storage!r}
"""


def execute(name: str, tmp: Path) -> dict[str, str]:
    """Run ``notebooks/<name>.ipynb`` with the injected session cell; return the text output
    of each tagged cell, by tag."""
    nb = nbformat.read(REPO / "notebooks" / f"{name}.ipynb", as_version=4)
    for cell in nb.cells:
        assert cell.cell_type != "code" or not cell.outputs, f"{name}: commit it without outputs"
    setup = nbformat.v4.new_code_cell(
        INJECTED.format(python=sys.executable, storage=str(tmp / "store"))
    )
    setup.metadata["tags"] = ["injected"]
    nb.cells.insert(0, setup)
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp)}}
    ).execute()
    out: dict[str, str] = {}
    for cell in nb.cells:
        for tag in cell.metadata.get("tags", []):
            out[tag] = "".join(
                o.get("text", "") or o.get("data", {}).get("text/plain", "")
                for o in cell.get("outputs", [])
            )
    return out


def test_quickstart_notebook(tmp_path: Path) -> None:
    out = execute("quickstart", tmp_path)
    expected: dict[int, int] = defaultdict(int)  # revenue of big orders per store, in Python
    for i in range(10_000):
        if i * 7 % 100 > 50:
            expected[i % 10] += i * 7 % 100
    assert f"stores published: {len(expected)}" in out["run"]
    assert "status: SUCCESSFUL" in out["run"]
    assert f"again: {len(expected)}" in out["rerun"]
    assert f"output: {len(expected)}" in out["rerun"]
    # the plan of the finished workflow (a table: task, state, action, ...): nothing runs
    tasks = ("orders", "big_orders", "per_store", "publish")
    actions = {
        m[0]: m[2]
        for m in (line.split() for line in out["rerun"].splitlines())
        if m[:1] in [[t] for t in tasks]
    }
    assert set(actions) == set(tasks) and "run" not in actions.values()
    assert f"revenue rows: {len(expected)}" in out["sink"]  # the re-run wrote nothing
    revenue = json.loads(out["sink"].split("REVENUE ", 1)[1])
    assert {int(k): v for k, v in revenue.items()} == dict(expected)


def test_recovery_walkthrough_notebook(tmp_path: Path) -> None:
    out = execute("recovery_walkthrough", tmp_path)
    assert "driver exit code: -9" in out["crash"]
    assert "status: RESUMABLE" in out["crash"]
    actions = json.loads(out["explain"].split("ACTIONS ", 1)[1].replace("'", '"'))
    assert actions["publish"] == "run"
    assert actions["per_user"] == "restore"  # committed before the crash: read, not re-run
    assert actions["events"] == "skip"
    assert "result: {'users': 5}" in out["resume"]
    assert "status: SUCCESSFUL" in out["resume"]
    assert "published rows: 5" in out["resume"]


def test_graph_demo_notebook(tmp_path: Path) -> None:
    out = execute("graph_demo", tmp_path)
    assert "epoch 2:" in out["online"] and "9000 in total" not in out["online"]
    totals = [int(line.rsplit(",", 1)[1].split()[0]) for line in out["online"].splitlines()]
    assert totals == [1000, 2000, 3000]  # each epoch's edges appended once
    assert "top ranks:" in out["offline"]
    diff = float(out["check"].split("top 5:", 1)[1].split()[0])
    assert diff < 1e-6
    ours = int(out["offline"].split("components:", 1)[1].split()[0])
    theirs = int(out["check"].split("networkx components:", 1)[1].split()[0])
    assert ours == theirs
    assert "flowchart" in out["dag"] or "graph" in out["dag"]


def test_declarative_pipelines_notebook(tmp_path: Path) -> None:
    out = execute("declarative_pipelines", tmp_path)
    assert (
        "example_sql_materialized_view materialized view reads ['example_python_materialized_view']"
        in out["load"]
    )
    assert "status: SUCCESSFUL" in out["run"]
    assert "even ids: [0, 2, 4, 6, 8]" in out["run"]
    assert "versions of the SQL view: 1" in out["rerun"]  # the re-run published nothing
    tasks = ("example_python_materialized_view", "example_sql_materialized_view")
    actions = {
        m[0]: m[2]
        for m in (line.split() for line in out["rerun"].splitlines())
        if m[:1] in [[t] for t in tasks]
    }
    assert set(actions) == set(tasks) and "run" not in actions.values()
