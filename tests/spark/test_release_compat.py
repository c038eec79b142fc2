"""Workflows stored by exoflow-spark 0.1.0 still resume, re-run and read back.

``tests/data/release-0.1.0`` was written by the 0.1.0 release with
``tests/data/make_release_fixture.py`` (see its ``FIXTURE.json``); the task code is
``tests/data/release_pipelines.py``, which must stay byte-for-byte the same in its task
functions (their source is fingerprinted; a change is refused with TaskChangedError).

Each test works on a plain copy in ``tmp_path``. 0.1.0 records absolute paths in its log
(checkpoint paths in commit records, the sink path in sink events, argv/cwd in run records),
all under the folder the fixture was written in, which no longer exists. Today's code
rebuilds a task's checkpoint path from the storage root it is given, so a copied (or moved)
root resumes as it is; 0.1.0 itself read the recorded path and, on a copy, silently replayed
deterministic tasks and failed on the others with CheckpointLostError.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from chispa import assert_df_equality

import exoflow_spark as xf

DATA = Path(__file__).resolve().parents[1] / "data"
FIXTURE = DATA / "release-0.1.0"
sys.path.insert(0, str(DATA))

import release_pipelines as rp  # noqa: E402

ETL_SCHEMA = "store long, big boolean, amount long, n long"
DONE = ("done-delta", "done-parquet")


class Release:
    """A plain copy of the fixture."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.storage = str(root / "storage")
        self.counters = root / "counters"
        self.counters.mkdir()

    def sink(self, wf: str) -> str:
        return str(self.root / "sinks" / wf)

    def executed(self) -> dict[str, int]:
        """How many times each task's function ran since the copy was made."""
        return {p.name: len(p.read_text().splitlines()) for p in self.counters.iterdir()}

    def log(self, wf: str) -> Path:
        return self.root / "storage" / "workflows" / wf / "log"

    def events(self, wf: str, run: int, kind: str) -> list[dict]:
        found = sorted((self.log(wf) / "events").glob(f"{run:06d}-*.{kind}.json"))
        return [json.loads(p.read_text()) for p in found]

    def commit(self, wf: str, task: str) -> dict:
        return json.loads((self.log(wf) / "tasks" / task / "g0.commit.json").read_text())


def written_root_is_gone(copy: Path) -> None:
    """The root the fixture was written under must not exist: reads must go to the copy."""
    manifest = json.loads((copy / "FIXTURE.json").read_text())
    for key in ("written_root", "written_sinks"):
        assert not Path(manifest[key]).exists(), f"{manifest[key]} exists: a test could read it"
    recorded = [p for p in copy.rglob("*.json") if manifest["written_root"] in p.read_text()]
    assert len(recorded) > 1, "the log should name the root it was written under"


@pytest.fixture
def release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Release:
    # The crashed run was written on host "vm": on any other host a resume first watches its
    # (silent) heartbeat for the TTL, as it would a driver that died on another machine
    # (tests/spark/test_concurrent.py). Keep that watch short here.
    from exoflow_spark.storage import store as store_mod

    monkeypatch.setattr(store_mod, "HEARTBEAT_TTL_SECONDS", 1.0)
    copy = tmp_path / "release-0.1.0"
    shutil.copytree(FIXTURE, copy)
    written_root_is_gone(copy)
    return Release(copy)


def expected_etl(spark):
    return spark.createDataFrame(rp.expected_etl_rows(), ETL_SCHEMA)


def sorted_rows(df, *cols):
    return sorted(tuple(r) for r in df.select(*cols).collect())


def assert_sink_exactly_once(spark, path: str, expected) -> None:
    sink = spark.read.format("delta").load(path)
    assert sink.count() == expected.count()
    assert_df_equality(
        sink, expected, ignore_row_order=True, ignore_nullable=True, ignore_column_order=True
    )
    versions = spark.sql(f"DESCRIBE HISTORY delta.`{path}`").count()
    assert versions == 1, f"the sink was written {versions} times"


def test_fixture_was_written_by_release_0_1_0():
    manifest = json.loads((FIXTURE / "FIXTURE.json").read_text())
    assert manifest["exoflow_spark"] == "0.1.0"
    assert sorted(p.name for p in (FIXTURE / "storage" / "workflows").iterdir()) == [
        "crashed",
        "done-delta",
        "done-parquet",
        "nondet",
    ]


def test_list_workflows_reads_every_stored_workflow(release):
    found = {w.workflow_id: w for w in xf.list_workflows(storage=release.storage)}
    assert {k: (w.status, w.runs, w.tasks, w.committed) for k, w in found.items()} == {
        "crashed": (xf.WorkflowStatus.RESUMABLE, 1, 4, 2),
        "done-delta": (xf.WorkflowStatus.SUCCESSFUL, 1, 4, 3),
        "done-parquet": (xf.WorkflowStatus.SUCCESSFUL, 1, 4, 3),
        "nondet": (xf.WorkflowStatus.SUCCESSFUL, 1, 2, 2),
    }


def test_crashed_workflow_resumes_running_only_the_sink_part(spark, release):
    wf, sink = "crashed", release.sink("crashed")
    assert xf.get_status(wf, storage=release.storage) is xf.WorkflowStatus.RESUMABLE
    with pytest.raises(xf.TaskNotCommittedError):
        xf.get_output(wf, task="publish", storage=release.storage, spark=spark)
    assert not Path(sink).exists()
    dag = rp.etl(sink, str(release.counters))
    plan = xf.explain(dag, workflow_id=wf, storage=release.storage)  # TaskChangedError if edited
    assert plan.actions("restore") == ["transform"]
    assert plan.actions("skip") == ["source"]
    assert plan.run_order == ["aggregate", "publish"]

    out = xf.resume(dag, workflow_id=wf, storage=release.storage, spark=spark)

    assert out == {"rows": len(rp.expected_etl_rows())}
    # source and transform were restored, not executed; aggregate (checkpoint=False, never
    # kept) is recomputed inside publish's plan
    assert release.executed() == {"aggregate": 1, "publish": 1}
    [run2_plan] = release.events(wf, 2, "plan")
    assert (run2_plan["restore"], run2_plan["skip"]) == (["transform"], ["source"])
    assert run2_plan["run_tasks"] == ["aggregate", "publish"]
    assert release.events(wf, 2, "recovery_fallback") == []
    assert [release.commit(wf, t)["run"] for t in ("source", "transform", "publish")] == [1, 1, 2]
    assert xf.get_status(wf, storage=release.storage) is xf.WorkflowStatus.SUCCESSFUL
    assert_sink_exactly_once(spark, sink, expected_etl(spark))

    # running it again executes nothing and writes nothing
    again = xf.run(
        rp.etl(sink, str(release.counters)), workflow_id=wf, storage=release.storage, spark=spark
    )
    assert again == out
    assert release.executed() == {"aggregate": 1, "publish": 1}
    assert_sink_exactly_once(spark, sink, expected_etl(spark))


@pytest.mark.parametrize("wf", DONE)
def test_finished_workflow_reads_back_and_reruns_as_a_no_op(spark, release, wf):
    sink = release.sink(wf)
    assert xf.get_status(wf, storage=release.storage) is xf.WorkflowStatus.SUCCESSFUL
    assert xf.get_output(wf, storage=release.storage, spark=spark) == {"rows": 6}
    source = xf.get_output(wf, task="source", storage=release.storage, spark=spark)
    transform = xf.get_output(wf, task="transform", storage=release.storage, spark=spark)
    assert sorted_rows(source, "order_id", "store", "amount") == [
        (i, i % 3, i * 7 % 11) for i in range(rp.ROWS)
    ]
    assert sorted_rows(transform, "order_id", "big") == [
        (i, i * 7 % 11 > 5) for i in range(rp.ROWS)
    ]
    fmt = "parquet" if wf == "done-parquet" else "delta"
    assert release.commit(wf, "source")["delta"].get("format", "delta") == fmt
    with pytest.raises(xf.TaskNotCommittedError):
        xf.get_output(wf, task="aggregate", storage=release.storage, spark=spark)
    assert_sink_exactly_once(spark, sink, expected_etl(spark))

    out = xf.run(
        rp.etl(sink, str(release.counters)),
        workflow_id=wf,
        storage=release.storage,
        spark=spark,
        checkpoint_format=fmt,
    )

    assert out == {"rows": 6}
    assert release.executed() == {}
    assert release.events(wf, 2, "recovery_fallback") == []
    assert_sink_exactly_once(spark, sink, expected_etl(spark))


def test_nondeterministic_workflow_published_its_committed_sample(spark, release):
    wf, sink = "nondet", release.sink("nondet")
    assert xf.get_status(wf, storage=release.storage) is xf.WorkflowStatus.SUCCESSFUL
    sample = sorted_rows(
        xf.get_output(wf, task="sample", storage=release.storage, spark=spark), "id"
    )
    assert 0 < len(sample) < rp.ROWS
    assert xf.get_output(wf, storage=release.storage, spark=spark) == {"rows": len(sample)}
    published = spark.read.format("delta").load(sink)
    assert sorted_rows(published, "id") == sample

    out = xf.run(
        rp.nondet(sink, str(release.counters)), workflow_id=wf, storage=release.storage, spark=spark
    )

    assert out == {"rows": len(sample)}
    assert release.executed() == {}  # the sample is never drawn again
    assert sorted_rows(spark.read.format("delta").load(sink), "id") == sample
    assert spark.sql(f"DESCRIBE HISTORY delta.`{sink}`").count() == 1
