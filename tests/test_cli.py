"""The exoflow-spark command line."""

from __future__ import annotations

import json

import pytest

import exoflow_spark as xf
from exoflow_spark.cli import main


def test_list_and_status(spark, storage, capsys) -> None:
    @xf.task(checkpoint=True)
    def numbers():
        return spark.range(3)

    @xf.task
    def total(df):
        return df.count()

    xf.run(total.bind(numbers.bind()), workflow_id="cli-wf", storage=storage, spark=spark)
    capsys.readouterr()
    assert main(["list", "--storage", storage]) == 0
    out = capsys.readouterr().out
    assert "cli-wf" in out and "SUCCESSFUL" in out

    assert main(["status", "cli-wf", "--storage", storage, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["status"] == "SUCCESSFUL"
    assert {t["task"]: t["state"] for t in doc["tasks"]} == {
        "numbers": "COMMITTED",
        "total": "COMMITTED",
    }
    assert doc["tasks"][0]["output"] == "delta v0"

    assert main(["explain", "cli-wf", "--storage", storage]) == 0
    text = capsys.readouterr().out
    assert "numbers" in text and "skip" in text and "strategy: restore" in text
    assert main(["explain", "cli-wf", "--storage", storage, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [d["action"] for d in doc["decisions"]] == ["skip", "skip"]


def test_status_exit_codes(spark, storage, capsys) -> None:
    @xf.task
    def boom():
        raise RuntimeError("no")

    with pytest.raises(xf.TaskFailedError):
        xf.run(boom.bind(), workflow_id="cli-failed", storage=storage, spark=spark)
    assert main(["status", "cli-failed", "--storage", storage]) == 1
    assert "RuntimeError: no" in capsys.readouterr().out
    assert main(["status", "missing", "--storage", storage]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["list", "--storage", storage + "-empty"]) == 0
    assert "no workflows" in capsys.readouterr().out
