"""The exoflow-spark command line."""

from __future__ import annotations

import json
import runpy
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import exoflow_spark as xf
from exoflow_spark.surface.cli import main


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
    # the same rule as `show`: the task that raised in the last run reads FAILED
    assert main(["status", "cli-failed", "--storage", storage, "--json"]) == 1
    assert [t["state"] for t in json.loads(capsys.readouterr().out)["tasks"]] == ["FAILED"]
    assert main(["status", "missing", "--storage", storage]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["list", "--storage", storage]) == 0
    assert "cli-failed" in capsys.readouterr().out


FLOWS = """
import os

from pyspark.sql import functions as F

import exoflow_spark as xf


@xf.task(checkpoint=True)
def numbers(n):
    return xf.get_spark().range(int(n)).withColumn("sq", F.col("id") * F.col("id"))


@xf.task
def total(df, flag):
    if not os.path.exists(flag):
        raise RuntimeError("flag missing")
    return df.agg(F.sum("sq")).first()[0]


def build(flag, n):
    return total.bind(numbers.bind(n), flag)
"""


def test_run_function_target_then_resume_and_history(spark, storage, tmp_path, capsys) -> None:
    flows = tmp_path / "flows_cli.py"
    flows.write_text(FLOWS)
    flag = tmp_path / "flag"
    wf = "cli-run-fn"
    code = main(
        ["run", f"{flows}:build", "--workflow-id", wf, "--storage", storage, "--", str(flag), "5"]
    )
    assert code == 1  # total failed: the flag is missing
    assert "flag missing" in capsys.readouterr().err
    start = json.loads(
        next((Path(storage) / f"workflows/{wf}/log/runs").glob("*.start.json")).read_text()
    )
    assert start["launch"]["target"] == f"{flows}:build"
    assert start["launch"]["args"] == [str(flag), "5"]

    flag.touch()
    assert main(["resume", wf, "--storage", storage, "--json"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out[out.index("{") :]) == {
        "workflow_id": wf,
        "status": "SUCCESSFUL",
        "output": sum(i * i for i in range(5)),
    }
    assert main(["resume", wf, "--storage", storage]) == 0
    assert "already SUCCESSFUL" in capsys.readouterr().out

    assert main(["history", wf, "--storage", storage, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["status"] for r in doc["runs"]] == ["FAILED", "SUCCESSFUL"]
    assert "flag missing" in doc["runs"][0]["errors"][0]["error"]
    second = {d["task"]: d["action"] for d in doc["runs"][1]["decisions"]}
    assert second == {"numbers": "restore", "total": "run"}
    assert main(["history", wf, "--storage", storage]) == 0
    text = capsys.readouterr().out
    assert "run 2: SUCCESSFUL" in text and "numbers  restore" in text


SCRIPT = """
import argparse
import sys

from pyspark.sql import SparkSession

import exoflow_spark as xf


@xf.task(checkpoint=True)
def rows(n):
    return xf.get_spark().range(n)


@xf.task
def count(df):
    return df.count()


parser = argparse.ArgumentParser()
parser.add_argument("--workflow-id")
parser.add_argument("--storage")
parser.add_argument("--rows", type=int, default=3)
args = parser.parse_args()
out = xf.run(count.bind(rows.bind(args.rows)), workflow_id=args.workflow_id,
             storage=args.storage, spark=SparkSession.getActiveSession())
print("counted", out)
sys.exit(0 if out == args.rows else 1)
"""


def test_run_script_target_and_resume_from_its_command_line(
    spark, storage, tmp_path, capsys, monkeypatch
) -> None:
    script = tmp_path / "job_cli.py"
    script.write_text(SCRIPT)
    code = main(
        [
            "run",
            str(script),
            "--workflow-id",
            "cli-script",
            "--storage",
            storage,
            "--",
            "--rows",
            "4",
        ]
    )
    assert code == 0
    assert "counted 4" in capsys.readouterr().out
    assert xf.get_status("cli-script", storage=storage) is xf.WorkflowStatus.SUCCESSFUL

    # launched as `python job.py ...` (not through the CLI): the command line is logged and
    # `resume` starts it again; a second run of a finished workflow executes nothing
    monkeypatch.setattr(
        sys, "argv", [str(script), "--workflow-id", "cli-argv", "--storage", storage]
    )
    with pytest.raises(SystemExit):
        runpy.run_path(str(script), run_name="__main__")
    monkeypatch.undo()
    capsys.readouterr()
    assert main(["resume", "cli-argv", "--storage", storage, "--force"]) == 0
    out = capsys.readouterr().out
    assert f"resuming cli-argv: {script}" in out and "counted 3" in out
    assert xf.get_status("cli-argv", storage=storage) is xf.WorkflowStatus.SUCCESSFUL


def test_resume_refuses_what_it_cannot_start_again(spark, storage, capsys, monkeypatch) -> None:
    @xf.task
    def boom():
        raise RuntimeError("no")

    monkeypatch.setattr(sys, "argv", ["/opt/venv/lib/site-packages/ipykernel_launcher.py", "-f"])
    with pytest.raises(xf.TaskFailedError):
        xf.run(boom.bind(), workflow_id="cli-notebook", storage=storage, spark=spark)
    monkeypatch.undo()
    assert main(["resume", "cli-notebook", "--storage", storage]) == 2
    err = capsys.readouterr().err
    assert "ipykernel_launcher.py" in err and "xf.run(dag, workflow_id='cli-notebook'" in err
    # a secret on the command line is masked in the log, and such a run is not restarted
    monkeypatch.setattr(sys, "argv", ["/srv/jobs/nightly.py", "--password", "hunter2"])
    with pytest.raises(xf.TaskFailedError):
        xf.run(boom.bind(), workflow_id="cli-secret", storage=storage, spark=spark)
    monkeypatch.undo()
    logged = (Path(storage) / "workflows/cli-secret/log/runs/000001.start.json").read_text()
    assert "hunter2" not in logged and "--password" in logged
    assert main(["resume", "cli-secret", "--storage", storage]) == 2
    assert "masked" in capsys.readouterr().err
    assert main(["resume", "nope", "--storage", storage]) == 2
    assert main(["run", "not_a_target", "--storage", storage]) == 2
    assert main(["run", "no_such_module_x:build", "--storage", storage]) == 2
    assert "cannot import module" in capsys.readouterr().err


def test_show_every_format(spark, storage, tmp_path, capsys) -> None:
    @xf.task(checkpoint="async")
    def base():
        return xf.get_spark().range(10)

    @xf.task
    def lazy(df):
        return df.filter("id > 2")

    @xf.task(checkpoint=True)
    def final(df):
        return df.selectExpr("id * 10 AS x")

    xf.run(final.bind(lazy.bind(base.bind())), workflow_id="cli-show", storage=storage, spark=spark)
    capsys.readouterr()
    assert main(["show", "cli-show", "--storage", storage]) == 0
    text = capsys.readouterr().out
    assert "final" in text and "└── lazy" in text and "checkpoint=async" in text
    assert main(["show", "cli-show", "--storage", storage, "--format", "mermaid"]) == 0
    mermaid = capsys.readouterr().out
    assert mermaid.startswith("flowchart LR") and "t0 --> t1" in mermaid
    assert ":::DONE" in mermaid and "stroke-dasharray" in mermaid
    assert main(["show", "cli-show", "--storage", storage, "--format", "dot"]) == 0
    assert '"base" -> "lazy";' in capsys.readouterr().out
    svg, png, tl = tmp_path / "d.svg", tmp_path / "d.png", tmp_path / "t.png"
    for path in (svg, png):
        assert main(["show", "cli-show", "--storage", storage, "-o", str(path)]) == 0
    assert main(["show", "cli-show", "--storage", storage, "--timeline", "-o", str(tl)]) == 0
    root = ET.fromstring(svg.read_text())
    assert root.tag.endswith("svg")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and tl.read_bytes()[:4] == b"\x89PNG"
    assert capsys.readouterr().out.count("wrote ") == 3
    assert main(["show", "cli-show", "--storage", storage, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {t["id"]: t["state"] for t in doc["tasks"]} == {
        "base": "COMMITTED",
        "lazy": "DONE",
        "final": "COMMITTED",
    }
    assert main(["show", "cli-show", "--storage", storage, "--format", "png"]) == 2
    assert "pass --output" in capsys.readouterr().err


def test_usage_errors_exit_2_name_the_problem_and_write_nothing(
    spark, storage, tmp_path, capsys
) -> None:
    @xf.task
    def one():
        return 1

    xf.run(one.bind(), workflow_id="cli-one", storage=storage, spark=spark)
    capsys.readouterr()
    typo = storage + "-typo"
    afile = tmp_path / "afile"
    afile.write_text("x")
    png = str(tmp_path / "x.png")
    cases = [
        (["list", "--storage", typo], f"no exoflow-spark storage at '{typo}'"),
        (["gc", "--storage", typo, "--dry-run"], f"no exoflow-spark storage at '{typo}'"),
        (["gc", "cli-nope", "--storage", storage, "--dry-run"], "[cli-nope] not found"),
        (["list", "--storage", str(afile)], "is a file, not a directory"),
        (["list", "--storage", ""], "storage='' is empty"),
        (["list", "--storage", storage, "--profile", "nosuchprofile"], "'nosuchprofile'"),
        (["status", "cli-one", "--storage", "foo://x"], 'No FileSystem for scheme "foo"'),
        (["show", "cli-one", "--storage", storage, "-o", str(tmp_path / "x.bmp")], "'.bmp'"),
        (["show", "cli-one", "--storage", storage, "--format", "svg", "-o", png], "says png"),
    ]
    for argv, fragment in cases:
        assert main(argv) == 2, argv
        captured = capsys.readouterr()
        assert fragment in captured.err, (argv, captured.err)
        assert "Traceback" not in captured.err and "\tat " not in captured.err
    assert not Path(typo).exists() and afile.read_text() == "x"
    assert not (tmp_path / "x.bmp").exists() and not (tmp_path / "x.png").exists()


def test_help_teaches_and_profiles_apply(storage, tmp_path, capsys, monkeypatch) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "exit codes" in out
    for command in ("run", "resume", "show", "history", "gc"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "example" in capsys.readouterr().out
    assert main(["list", "--profile", "no-such-profile"]) == 2
    assert "no-such-profile" in capsys.readouterr().err
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "profiles.toml").write_text(f'[mine]\nstorage = "{storage}-profile"\n')
    monkeypatch.setenv("EXOFLOW_CONF_DIR", str(conf))
    monkeypatch.delenv("EXOFLOW_STORAGE", raising=False)
    assert main(["list", "--profile", "mine"]) == 2  # the profile's root does not exist
    assert f"no exoflow-spark storage at '{storage}-profile'" in capsys.readouterr().err
    assert main(["status", "x", "--", "extra"]) == 2


def test_profile_log_level(tmp_path, monkeypatch) -> None:
    """Jobs take exoflow_spark's log level from the profile: the shipped local one (make demo)
    logs warnings only."""
    from exoflow_spark.surface.config import conf_dir, load_profile

    monkeypatch.delenv("EXOFLOW_CONF_DIR", raising=False)
    if (conf_dir() / "profiles.toml").exists():
        assert load_profile("local").log_level == "WARNING"
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "profiles.toml").write_text('[chatty]\nlog_level = "DEBUG"\n[plain]\n')
    monkeypatch.setenv("EXOFLOW_CONF_DIR", str(conf))
    assert load_profile("chatty").log_level == "DEBUG"
    assert load_profile("plain").log_level is None
