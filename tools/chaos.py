"""Randomized driver kills: `make chaos` (not part of `make test`: it takes several minutes).

    .venv/bin/python tools/chaos.py [--kills 20] [--seed 7]

Runs tests/drivers/crash_job.py workflows (the ETL-like pipeline and the nondeterministic sampling
one, alternately) as separate driver processes and SIGKILLs them at random moments, seeded,
re-launching each workflow until it completes. Every kill's phase is read from the workflow
log at the moment of the kill. At the end every workflow is checked:

* the sink holds every row exactly once and equals the fault-free result (pipeline), or holds
  exactly the one committed sample with statistics describing it (sampling);
* no task that had committed before a kill executed again afterwards;
* the workflow reads SUCCESSFUL.

Prints how many kills landed in each phase and whether every check held (exit 1 if not).
"""

from __future__ import annotations

import argparse
import collections
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"
# the test suite's driver programs and launcher (drivers), and its expected result (test_crash)
sys.path[:0] = [str(TESTS), str(TESTS / "spark")]

ROWS = 20000


def launch(root: Path, wf: str, scenario: str) -> subprocess.Popen:
    (root / wf / "counters").mkdir(parents=True, exist_ok=True)
    from drivers import start_driver

    return start_driver(
        "crash_job.py",
        "--storage",
        root / wf / "exo",
        "--workflow-id",
        wf,
        "--sink",
        root / wf / "sink",
        "--counter-dir",
        root / wf / "counters",
        "--mode",
        "async",
        "--rows",
        ROWS,
        "--scenario",
        scenario,
        capture=False,
    )


def counters(root: Path, wf: str) -> dict[str, int]:
    d = root / wf / "counters"
    return {p.name: len(p.read_text().splitlines()) for p in d.iterdir()} if d.exists() else {}


def phase(root: Path, wf: str, scenario: str) -> str:
    from exoflow_spark.storage.store import WorkflowStore

    store = WorkflowStore(str(root / wf / "exo"), wf)
    state = store.read_state()
    if not state.exists or state.runs[-1].start is None or state.runs[-1].start.run is None:
        return "start-up (nothing logged)"
    commits = set(state.commits)
    last = "publish" if "publish" in commits else None
    latest = state.runs[-1].number
    sinks = [e for e in store.events() if e.kind == "sink" and e.run == latest]

    if last:
        return "after the sink committed"
    if sinks:
        return "sink written, not committed"
    order = ["orders", "enriched", "totals"] if scenario == "pipeline" else ["sample", "stats"]
    done = [t for t in order if t in commits]
    return f"after {'+'.join(done)} committed" if done else "running, nothing committed"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--seed", type=int, default=7)
    a = p.parse_args()
    rng = random.Random(a.seed)
    root = Path(tempfile.mkdtemp(prefix="exoflow-chaos-"))
    from exoflow_spark.storage.store import WorkflowStore

    # how long a fault-free run takes, and when its engine starts (after JVM start-up), to
    # spread the kills over the part of the run where the engine works
    start = time.time()
    ref = launch(root, "reference", "pipeline")
    started_at = None
    while ref.poll() is None:
        if started_at is None and (root / "reference/exo/workflows/reference/log/runs").exists():
            started_at = time.time() - start
        time.sleep(0.05)
    assert ref.returncode == 0
    duration = time.time() - start
    startup = started_at or duration / 2
    print(
        f"chaos: seed {a.seed}, {a.kills} kills; a fault-free run takes {duration:.1f} s, "
        f"{startup:.1f} s of it starting Spark"
    )

    phases: collections.Counter[str] = collections.Counter()
    protected: dict[str, dict[str, int]] = {}  # wf -> committed task -> its count then
    workflows: list[tuple[str, str]] = []
    kills = 0
    while kills < a.kills:
        scenario = "pipeline" if len(workflows) % 2 == 0 else "sampling"
        wf = f"chaos-{len(workflows)}"
        workflows.append((wf, scenario))
        protected[wf] = {}
        while True:  # kill this workflow's driver a random number of times, then let it finish
            proc = launch(root, wf, scenario)
            if kills < a.kills and rng.random() < 0.75:
                if rng.random() < 0.1:
                    time.sleep(rng.uniform(0, startup))
                else:
                    time.sleep(startup + rng.uniform(0, 1.05) * (duration - startup))

                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    kills += 1
                    where = phase(root, wf, scenario)
                    phases[where] += 1
                    state = WorkflowStore(str(root / wf / "exo"), wf).read_state()
                    counts = counters(root, wf)
                    for t in state.commits:
                        protected[wf].setdefault(t, counts.get(t, 0))
                    print(f"  kill {kills:2d}: {wf} ({scenario}) {where}")
                    continue
            if proc.wait(timeout=600) != 0:
                print(f"  {wf}: a run without a kill failed")
                return 1
            break

    failures = verify(root, workflows, protected)
    print("\nkills per phase:")
    for where, n in sorted(phases.items(), key=lambda kv: -kv[1]):
        print(f"  {n:3d}  {where}")
    print(
        f"\n{len(workflows)} workflows, {kills} kills: "
        + ("every check held" if not failures else f"{len(failures)} check(s) FAILED")
    )
    for f in failures:
        print(f"  FAILED: {f}")
    shutil.rmtree(root, ignore_errors=True)
    return 1 if failures else 0


def verify(
    root: Path, workflows: list[tuple[str, str]], protected: dict[str, dict[str, int]]
) -> list[str]:
    from test_crash import expected

    import exoflow_spark as xf

    spark = xf.create_spark_session(
        "local[2]", app_name="exoflow-chaos-verify", conf={"spark.ui.enabled": "false"}
    )
    spark.sparkContext.setLogLevel("ERROR")
    want = sorted(tuple(r) for r in expected(spark).select("store", "big", "amount", "n").collect())
    failures = []
    for wf, scenario in workflows:
        storage = str(root / wf / "exo")
        if xf.get_status(wf, storage=storage) is not xf.WorkflowStatus.SUCCESSFUL:
            failures.append(f"{wf}: not SUCCESSFUL")
        counts = counters(root, wf)
        for task, then in protected[wf].items():
            if counts.get(task, 0) != then:
                failures.append(f"{wf}: committed task [{task}] executed again")
        sink = spark.read.format("delta").load(str(root / wf / "sink"))
        if scenario == "pipeline":
            got = sorted(tuple(r) for r in sink.select("store", "big", "amount", "n").collect())
            if got != want:
                failures.append(
                    f"{wf}: sink differs from the fault-free result "
                    f"({len(got)} rows vs {len(want)})"
                )
        else:
            ids = [r.id for r in sink.select("id").collect()]
            sample = sorted(
                r.id
                for r in xf.get_output(wf, task="sample", storage=storage, spark=spark).collect()
            )
            stats = {(r.n, r.s) for r in sink.select("n", "s").distinct().collect()}
            if sorted(ids) != sample or len(ids) != len(set(ids)):
                failures.append(f"{wf}: sink does not hold exactly the committed sample")
            if stats != {(len(ids), sum(ids))}:
                failures.append(f"{wf}: published statistics describe another sample")
    spark.stop()
    return failures


if __name__ == "__main__":
    sys.exit(main())
