"""Hardening: ids never escape the storage root, nothing is unpickled from storage, and
credentials never reach log lines, log records or the errors exoflow-spark raises."""

from __future__ import annotations

import ast
import json
import logging
import os
import pickle
from pathlib import Path

import pytest

import exoflow_spark as xf
from exoflow_spark.core.records import DagRecord
from exoflow_spark.core.redact import RedactingFilter, redact, redact_record
from exoflow_spark.storage.store import WorkflowStore

PACKAGE = Path(xf.__file__).resolve().parent

HOSTILE_IDS = [
    "",
    ".",
    "..",
    "../x",
    "../../etc/passwd",
    "a/b",
    "a\\b",
    "/abs/path",
    "C:\\evil",
    "x/..",
    "a\x00b",
    "abc\n",  # a trailing newline: `^...$` would accept it, fullmatch does not
    "line\nbreak",
    "\u0430dmin",  # Cyrillic 'a'
    "\uff0e\uff0e",  # fullwidth dots
    "\u2024\u2024",  # one-dot leaders: look like '..'
    "caf\u00e9",
    "x" * 129,
    "x" * 10_000,
    "a'b",
    'a"b',
    "a`b",
    "a;b",
    "t; DROP TABLE x",
    "t`; DROP TABLE x; --",
    "$(rm -rf ~)",
    "s3a://bucket/k",
    "file:///etc",
    " leading",
    "-rf",
    ".hidden",
]


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


@pytest.mark.parametrize("bad", HOSTILE_IDS, ids=lambda s: repr(s)[:30])
def test_hostile_workflow_ids_are_refused_before_anything_is_written(
    spark, tmp_path: Path, bad: str
) -> None:
    @xf.task
    def f():
        return 1

    root = tmp_path / "exo"
    before = tree(tmp_path)
    with pytest.raises(xf.InvalidIdError):
        xf.run(f.bind(), workflow_id=bad, storage=str(root), spark=spark)
    with pytest.raises(xf.InvalidIdError):
        xf.get_status(bad, storage=str(root))
    with pytest.raises(xf.InvalidIdError):
        xf.get_output(bad, storage=str(root))
    assert tree(tmp_path) == before  # not even the storage root was created


@pytest.mark.parametrize("bad", HOSTILE_IDS, ids=lambda s: repr(s)[:30])
def test_hostile_task_names_and_ref_paths_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(xf.InvalidOptionError):
        xf.task(name=bad)(lambda: 1)
    store = WorkflowStore(str(tmp_path / "exo"), "wf")
    with pytest.raises(xf.InvalidIdError):
        store.ref_uri(bad)
    with pytest.raises(xf.InvalidIdError):
        store.stream_checkpoint_uri(bad)
    assert not (tmp_path / "exo").exists()


def test_task_ids_derived_from_function_names_are_validated_too(spark, tmp_path: Path) -> None:
    def café():  # a legal Python identifier, not a safe path component
        return 1

    with pytest.raises(xf.InvalidIdError, match="task id"):
        xf.run(xf.task(café).bind(), workflow_id="w", storage=str(tmp_path), spark=spark)
    assert tree(tmp_path) == []


@pytest.mark.parametrize(
    "root",
    ["{tmp}/a`b", "{tmp}/x`; DROP TABLE t; --", "{tmp}/nul\x00byte", "{tmp}/line\nbreak", "  "],
)
def test_storage_roots_that_could_break_out_of_sql_or_log_lines_are_refused(
    spark, tmp_path: Path, root: str
) -> None:
    @xf.task(checkpoint=True)  # its checkpoint would be named in `DESCRIBE HISTORY delta.`...``
    def f():
        return xf.get_spark().range(3)

    with pytest.raises(xf.InvalidIdError, match="storage root"):
        xf.run(f.bind(), workflow_id="w", storage=root.format(tmp=tmp_path), spark=spark)
    assert tree(tmp_path) == []


def test_directories_planted_under_workflows_are_never_used_as_ids(tmp_path: Path) -> None:
    root = tmp_path / "exo"
    (root / "workflows" / "good" / "log" / "runs").mkdir(parents=True)
    (root / "workflows" / "bad name;`x`").mkdir()
    (root / "workflows" / "\u0430dmin").mkdir()
    store = WorkflowStore(str(root), "good")
    store.start_run(store.read_state(), DagRecord("t"))
    assert [w.workflow_id for w in xf.list_workflows(storage=str(root))] == ["good"]


# -- nothing is unpickled or evaluated from storage ------------------------------------------
UNSAFE_MODULES = {"pickle", "cPickle", "cloudpickle", "dill", "marshal", "shelve", "joblib"}
UNSAFE_CALLS = {"eval", "exec", "__import__"}


def test_the_package_never_deserialises_code_or_objects() -> None:
    """Static check of every module: no pickle-like imports, no eval/exec, YAML only safe."""
    offenders = []
    for path in sorted(PACKAGE.glob("*.py")):
        tree_ = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree_):
            if isinstance(node, ast.Import):
                names = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                names = {(node.module or "").split(".")[0]}
            else:
                names = set()
            if names & UNSAFE_MODULES:
                offenders.append(f"{path.name}:{node.lineno} imports {names & UNSAFE_MODULES}")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in UNSAFE_CALLS
            ):
                offenders.append(f"{path.name}:{node.lineno} calls {node.func.id}()")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in {"load", "loads", "unsafe_load", "full_load"}
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id in {"yaml", "pickle", "marshal", "dill", "cloudpickle"}
            ):
                offenders.append(f"{path.name}:{node.lineno} calls {ast.unparse(node.func)}")
    assert offenders == []


def test_every_log_record_is_plain_json(spark, tmp_path: Path) -> None:
    @xf.task(checkpoint=True)
    def data():
        return xf.get_spark().range(5)

    @xf.task
    def total(df):
        return {"n": df.count()}

    storage = tmp_path / "exo"
    assert xf.run(total.bind(data.bind()), workflow_id="w", storage=str(storage)) == {"n": 5}
    records = [p for p in (storage / "workflows/w/log").rglob("*") if p.is_file()]
    assert len(records) >= 5
    for p in records:
        assert isinstance(json.loads(p.read_bytes()), dict), p


def test_a_planted_pickle_is_rejected_as_corrupt_and_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (Path.touch, (marker,))

    store = WorkflowStore(str(tmp_path / "exo"), "wf")
    store.start_run(store.read_state(), DagRecord("t"))
    rec = tmp_path / "exo/workflows/wf/log/tasks/t/g0.commit.json"
    rec.parent.mkdir(parents=True)
    rec.write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(xf.StorageError, match=r"g0\.commit\.json is corrupt"):
        store.read_state()
    assert not marker.exists()


@pytest.mark.parametrize("fmt", ["delta", "parquet"])
def test_a_commit_record_naming_files_outside_its_checkpoint_is_refused(
    spark, tmp_path: Path, fmt: str
) -> None:
    """A restore reads exactly the files a commit record lists, inside the checkpoint's
    folder: an altered record that names a path (here a real Parquet file planted outside
    the workflow) is refused with CheckpointLostError, and nothing outside is read."""

    @xf.task(checkpoint=True, deterministic=False)
    def data():
        return xf.get_spark().range(5)

    @xf.task
    def total(df):
        return df.count()

    storage = str(tmp_path / "exo")
    xf.run(total.bind(data.bind()), workflow_id="w", storage=storage, checkpoint_format=fmt)
    planted = tmp_path / "planted"
    spark.range(1000).write.parquet(str(planted))
    outside = next(planted.glob("*.parquet"))
    rec_path = tmp_path / "exo/workflows/w/log/tasks/data/g0.commit.json"
    rec = json.loads(rec_path.read_bytes())
    folder = Path(rec["delta"]["path"])
    rec["delta"]["files"] = [os.path.relpath(outside, folder)]  # ../../../planted/part-...
    assert (folder / rec["delta"]["files"][0]).resolve() == outside.resolve()
    rec_path.chmod(0o644)
    rec_path.write_text(json.dumps(rec))
    with pytest.raises(xf.CheckpointLostError, match=r"not a file name inside the checkpoint"):
        xf.get_output("w", task="data", storage=storage, spark=spark)


# -- credentials -----------------------------------------------------------------------------
SECRET = "s3cr3t-VALUE-do-not-leak"


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        (f"s3a://AKIAEXAMPLE:{SECRET}@lake/exo/workflows/w", "s3a://AKIAEXAMPLE:***@lake/exo"),
        (f"failed: fs.s3a.secret.key={SECRET} (from conf)", "fs.s3a.secret.key=***"),
        (f"spark.hadoop.fs.s3a.secret.key: '{SECRET}'", "spark.hadoop.fs.s3a.secret.key"),
        (f"AWS_SECRET_ACCESS_KEY={SECRET}", "AWS_SECRET_ACCESS_KEY=***"),
        (f"wasbs://c@acct.blob.core.windows.net/p?sv=2022&sig={SECRET}", "wasbs://c@acct.blob"),
        (f"AccountName=a;AccountKey={SECRET};", "AccountName=a;AccountKey=***"),
        (f"fs.azure.account.key.acct.dfs.core.windows.net={SECRET}", "fs.azure.account.key"),
        (f"https://u:{SECRET}@host:8443/x", "https://u:***@host:8443/x"),
    ],
)
def test_redact_removes_the_secret_and_keeps_the_location(text: str, kept: str) -> None:
    out = redact(text)
    assert SECRET not in out
    assert kept in out


@pytest.mark.parametrize(
    "text",
    [
        "/tmp/exo/workflows/w/refs/t",
        "abfss://container@acct.dfs.core.windows.net/exo",  # the container is not a secret
        "http://127.0.0.1:5000/bucket/key",
        "workflow [w] task [t] failed after 1 attempt(s)",
    ],
)
def test_redact_leaves_text_without_secrets_alone(text: str) -> None:
    assert redact(text) == text


def test_redact_record_masks_secret_keys_and_keeps_returned_values() -> None:
    rec = {
        "delta": {"path": f"s3a://k:{SECRET}@b/p"},
        "conf": {"fs.s3a.secret.key": SECRET, "fs.s3a.endpoint": "http://127.0.0.1:9"},
        "errors": [f"password={SECRET}"],
        "value": {"note": f"s3a://k:{SECRET}@b/p"},  # data a task returned: untouched
        "n": 3,
    }
    out = redact_record(rec, keep=frozenset({"value"}))
    assert SECRET not in json.dumps({k: v for k, v in out.items() if k != "value"})
    assert out["value"] == rec["value"]
    assert out["conf"]["fs.s3a.endpoint"] == "http://127.0.0.1:9"
    assert out["n"] == 3


def test_redacting_filter_cleans_messages_arguments_and_tracebacks() -> None:
    try:
        raise OSError(f"cannot open s3a://k:{SECRET}@b/x")
    except OSError as exc:
        import sys

        record = logging.LogRecord(
            "exoflow_spark.t",
            logging.WARNING,
            __file__,
            1,
            "at %s: %s (%d tries)",
            (f"s3a://k:{SECRET}@b", exc, 3),
            sys.exc_info(),
        )
    assert RedactingFilter().filter(record)
    text = logging.Formatter().format(record)
    assert SECRET not in text
    assert "(3 tries)" in text and "s3a://k:***@b" in text


def test_credentials_never_reach_log_lines_log_records_or_errors(
    spark, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A real run whose storage root, Spark conf and task errors all carry a secret."""
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    conf.set("fs.s3a.secret.key", SECRET)
    spark.conf.set("spark.hadoop.fs.s3a.secret.key", SECRET)
    # a root with credentials in its URI is refused, and the refusal does not repeat them
    with pytest.raises(xf.InvalidIdError, match="password in its URI") as refused:
        xf.get_status("w", storage=f"s3a://AKIAEXAMPLE:{SECRET}@lake/exo", spark=spark)
    assert SECRET not in str(refused.value) and "s3a://AKIAEXAMPLE:***@lake/exo" in str(
        refused.value
    )
    storage = f"file://{tmp_path / 'exo'}"
    attempts = {"n": 0}

    @xf.task(checkpoint=True)
    def data():
        return xf.get_spark().range(4)

    @xf.task(max_retries=1, retry_exceptions=True)
    def flaky(df):
        attempts["n"] += 1
        if attempts["n"] == 1:
            raise ConnectionError(f"reset talking to s3a://AK:{SECRET}@lake (secret.key={SECRET})")
        raise RuntimeError(f"fs.s3a.secret.key={SECRET} rejected")

    caplog.set_level(logging.DEBUG, logger="exoflow_spark")
    try:
        with pytest.raises(xf.TaskFailedError):
            xf.run(flaky.bind(data.bind()), workflow_id="leak", storage=storage, spark=spark)
    finally:
        conf.unset("fs.s3a.secret.key")
        spark.conf.unset("spark.hadoop.fs.s3a.secret.key")

    records = [p for p in (tmp_path / "exo/workflows/leak/log").rglob("*") if p.is_file()]
    kinds = {p.name.split(".")[-2] for p in records}
    assert {"start", "end", "commit", "task_error", "plan"} <= kinds
    for p in records:
        assert SECRET not in p.read_text(), p
    end = json.loads(next(p for p in records if p.name.endswith(".end.json")).read_text())
    assert "fs.s3a.secret.key=***" in end["error"]

    assert attempts["n"] == 2  # both failures were logged (and retried once)
    lines = [r.getMessage() + (r.exc_text or "") for r in caplog.records]
    assert any("attempt 1 failed" in line for line in lines)
    assert all(SECRET not in line for line in lines), [ln for ln in lines if SECRET in ln]
    assert SECRET not in caplog.text
