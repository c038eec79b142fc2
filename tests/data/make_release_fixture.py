"""Build the storage root of tests/data/release-0.1.0 with THIS checkout's exoflow-spark.

Usage (from the repository root, with the release's code first on the path)::

    SPARK_LOCAL_IP=127.0.0.1 PYTHONPATH=$PWD python tests/data/make_release_fixture.py \
        tests/data/release-0.1.0

OUT must not exist. It gets::

    OUT/storage/        the storage root: workflows done-delta, done-parquet, crashed, nondet
    OUT/sinks/<wf>/     the Delta tables the sink tasks append to (none for crashed)
    OUT/FIXTURE.json    what was written, by which versions, and the absolute storage root
                        the logs were written under (``written_root``)

Everything is first written under a fresh temporary folder, then moved to OUT, so the
absolute paths recorded in the logs point at a folder that no longer exists: a test that
reads a recorded path instead of its own copy fails instead of passing by accident.

The DAGs come from ``release_pipelines.py`` beside this file. One SparkSession at a time: the
crashing driver runs (and is killed) before this process starts its own session.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import release_pipelines as rp  # noqa: E402

import exoflow_spark as xf  # noqa: E402

CRASH_AT = "publish:before-run"
SPARK_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.databricks.delta.snapshotPartitions": "2",
}
SPARK_LEFTOVERS = ("spark-warehouse", "metastore_db", "derby.log")


def session():
    spark = xf.create_spark_session("local[2]", app_name="exoflow-release-fixture", conf=SPARK_CONF)
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def crash_driver(storage: str, sink: str) -> int:
    """Run workflow ``crashed``; EXOFLOW_CRASH_AT kills this process before the sink runs."""
    spark = session()
    xf.run(rp.etl(sink), workflow_id="crashed", storage=storage, spark=spark)
    print("crash driver: the run finished, the crash point was not reached", file=sys.stderr)
    return 3


def log_dir(storage: Path, wf: str) -> Path:
    return storage / "workflows" / wf / "log"


def commits(storage: Path, wf: str) -> dict[str, dict]:
    tasks = log_dir(storage, wf) / "tasks"
    return {p.parent.name: json.loads(p.read_text()) for p in tasks.glob("*/g0.commit.json")}


def check(cond: bool, what: str) -> None:
    if not cond:
        raise SystemExit(f"fixture check failed: {what}")
    print(f"  ok: {what}")


def run_crashed(storage: Path, sinks: Path, cwd: Path) -> None:
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "EXOFLOW_CRASH_AT": CRASH_AT}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--crash-driver"]
    cmd += [str(storage), str(sinks / "crashed")]
    print(f"crashed: driver subprocess with EXOFLOW_CRASH_AT={CRASH_AT}")
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=900)
    if proc.returncode != -signal.SIGKILL:
        sys.stderr.write(proc.stdout + proc.stderr)
    check(proc.returncode == -signal.SIGKILL, f"driver killed by SIGKILL (rc={proc.returncode})")
    done = commits(storage, "crashed")
    check(sorted(done) == ["source", "transform"], f"committed: {sorted(done)}")
    runs = sorted(p.name for p in (log_dir(storage, "crashed") / "runs").iterdir())
    check(not any(n.endswith(".end.json") for n in runs), f"run 1 has no end record: {runs}")
    events = sorted(p.name for p in (log_dir(storage, "crashed") / "events").iterdir())
    check(not any(".sink." in e or "publish" in e for e in events), "no sink event logged")
    check(not (sinks / "crashed").exists(), "sink table not created")
    check(
        xf.get_status("crashed", storage=str(storage)) is xf.WorkflowStatus.RESUMABLE,
        "status RESUMABLE",
    )


def run_done(storage: Path, sinks: Path, spark) -> None:
    expected = rp.expected_etl_rows()
    for wf, fmt in (("done-delta", "delta"), ("done-parquet", "parquet")):
        print(f"{wf}: checkpoint_format={fmt}")
        sink = str(sinks / wf)
        out = xf.run(
            rp.etl(sink), workflow_id=wf, storage=str(storage), spark=spark, checkpoint_format=fmt
        )
        check(out == {"rows": len(expected)}, f"output {out}")
        rows = sorted(
            tuple(r)
            for r in spark.read.format("delta")
            .load(sink)
            .select("store", "big", "amount", "n")
            .collect()
        )
        check(rows == expected, "sink rows as expected")
        check(
            sorted(commits(storage, wf)) == ["publish", "source", "transform"],
            f"committed: {sorted(commits(storage, wf))}",
        )
        fmts = {
            t: c["delta"].get("format", "delta")
            for t, c in commits(storage, wf).items()
            if c.get("kind") == "dataframe"
        }
        check(set(fmts.values()) == {fmt}, f"checkpoints written as {fmts}")


def run_nondet(storage: Path, sinks: Path, spark) -> None:
    print("nondet")
    sink = str(sinks / "nondet")
    out = xf.run(rp.nondet(sink), workflow_id="nondet", storage=str(storage), spark=spark)
    sample = sorted(
        r.id
        for r in xf.get_output("nondet", task="sample", storage=str(storage), spark=spark).collect()
    )
    published = sorted(r.id for r in spark.read.format("delta").load(sink).collect())
    check(
        out == {"rows": len(sample)} and published == sample,
        f"sink holds the committed sample ({len(sample)} of 20 rows)",
    )


def tidy(root: Path) -> None:
    """Drop Spark's leftovers and Hadoop's checksum files (``.name.crc``: Hadoop's local file
    system verifies them when present and skips the check when absent). Delta's own version
    checksums (``_delta_log/<version>.crc``) are Delta data and stay."""
    for name in SPARK_LEFTOVERS:
        for p in list(root.rglob(name)):
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    for p in list(root.rglob(".*.crc")):
        p.unlink()


def build(out: Path) -> None:
    if out.exists():
        raise SystemExit(f"{out} exists: remove it first (the fixture is written whole)")
    staging = Path(tempfile.mkdtemp(prefix="exoflow-release-fixture-"))
    try:
        root = staging / out.name
        storage, sinks = root / "storage", root / "sinks"
        sinks.mkdir(parents=True)
        os.chdir(staging)  # Spark's leftovers (spark-warehouse, derby.log) land here
        run_crashed(storage, sinks, staging)
        spark = session()
        try:
            run_done(storage, sinks, spark)
            run_nondet(storage, sinks, spark)
            manifest = {
                "exoflow_spark": xf.__version__,
                "pyspark": version("pyspark"),
                "delta_spark": version("delta-spark"),
                "written_root": str(storage),
                "written_sinks": str(sinks),
                "crash_at": CRASH_AT,
                "workflows": {
                    "done-delta": "etl, checkpoint_format=delta, SUCCESSFUL",
                    "done-parquet": "etl, checkpoint_format=parquet, SUCCESSFUL",
                    "crashed": f"etl, delta, killed at {CRASH_AT}: source and transform "
                    "committed, sink not run, RESUMABLE",
                    "nondet": "nondet (deterministic=False sample + sink), SUCCESSFUL",
                },
                "pipelines": "tests/data/release_pipelines.py (do not edit the task code)",
            }
        finally:
            spark.stop()
        check(
            xf.get_status("crashed", storage=str(storage)) is xf.WorkflowStatus.RESUMABLE,
            "crashed still RESUMABLE",
        )
        (root / "FIXTURE.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        tidy(root)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(root), str(out))
        print(f"wrote {out}")
    finally:
        os.chdir(HERE)
        shutil.rmtree(staging, ignore_errors=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--crash-driver", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("out", help="the folder to create (e.g. tests/data/release-0.1.0)")
    p.add_argument("sink", nargs="?", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.crash_driver:
        return crash_driver(a.out, a.sink)
    print(f"exoflow_spark {xf.__version__} from {xf.__file__}")
    build(Path(a.out).resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
