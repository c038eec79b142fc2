"""The paper's headline experiment: the ML training job under each checkpoint strategy,
fault-free and with the driver SIGKILLed in a middle epoch, time to finish.

    .venv/bin/python benchmarks/ml_training.py [--reps 3] [--epochs 8] [--kill-epoch 5]
        [--users 5000] [--events 50000] [--max-iter 2]

The job is ``jobs/ml_training.py`` (ETL, per-epoch augmentation, warm-started logistic
regression). Strategies: ``none`` / ``async`` / ``sync`` (every ETL, augmentation and model
output), ``selective`` (the job's own: ETL async, augmentation never, the model sync every
2nd epoch and at the last) and ``auto`` (see :data:`RUN_WIDE_AUTO`). Each driver is its own
process (spark-submit style), so the kill is a real SIGKILL:

* fault-free: one driver per repetition runs every strategy once, alternating the order;
* killed: per strategy and repetition, a driver is SIGKILLed as epoch ``--kill-epoch``'s
  training is about to start (``EXOFLOW_CRASH_AT=train_e<k>:before-run``, as the paper kills
  a training task at epoch 12 of 25); then one new driver resumes every killed workflow id,
  one after the other. A strategy's time to finish is its first driver's run until the kill
  plus its resumed run.

Times are measured from "driver warm" to "run returned" (or to the kill): the JVM, the
SparkSession and a one-epoch warm-up run of the job on 200 users (class loading, Python
workers) are
start-up, paid by every driver the same, reported separately and not counted. Medians, min
and max over ``--reps``; ratios to ``none`` fault-free. Saves
``benchmarks/results/ml_training.json`` and the plot ``docs/img/bench-ml_training.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import REPO, command, machine, markdown, save

STRATEGIES = ("none", "async", "sync", "selective", "auto")
#: How ``auto`` is asked for. False: ``checkpoint="auto"`` declared on every task (what this
#: branch has). True: the tasks declare nothing and the run passes ``checkpoint="auto"``
#: (the run-wide policy, applied to undeclared tasks: what the engine has now).
RUN_WIDE_AUTO = True


# -- one driver ------------------------------------------------------------------------------
def load_job() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("ml_training_job", REPO / "jobs/ml_training.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def build(job: Any, strategy: str, a: argparse.Namespace, users: int, events: int) -> Any:
    """The job's DAG under ``strategy`` (``auto``: every task ``checkpoint="auto"``, or no
    declaration when :data:`RUN_WIDE_AUTO`)."""
    size = {"n_users": users, "n_events": events, "epochs": a.epochs, "max_iter": a.max_iter}
    if strategy != "auto":
        return job.build_dag(mode=strategy, **size)
    opts: dict[str, Any] = {} if RUN_WIDE_AUTO else {"checkpoint": "auto"}
    feats = job.features.options(**opts).bind(job.users.bind(users), job.events.bind(events, users))
    model = None
    for e in range(1, a.epochs + 1):
        data = job.augment.options(name=f"augment_e{e}", **opts).bind(feats, e, 7)
        model = job.train.options(name=f"train_e{e}", **opts).bind(data, model, e, a.max_iter)
    return job.evaluate.bind(feats, model)


def driver(a: argparse.Namespace) -> int:
    """Run ``a.strategies`` in order, each on ``<a.storage>/<strategy>`` (a fresh run, or the
    resume of a killed one), and print one JSON line per run."""
    import exoflow_spark as xf

    t0 = time.perf_counter()
    spark = xf.create_spark_session(
        "local[*]",
        app_name="exoflow-bench-ml",
        conf={"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "4"},
    )
    spark.sparkContext.setLogLevel("ERROR")
    job = load_job()
    with tempfile.TemporaryDirectory(prefix="exoflow-ml-warmup-") as warm:
        tiny = argparse.Namespace(epochs=1, max_iter=a.max_iter)
        xf.run(build(job, "sync", tiny, 200, 2000), workflow_id="warmup", storage=warm, spark=spark)
    print(f"READY {json.dumps({'startup_s': time.perf_counter() - t0})}", flush=True)
    for strategy in a.strategies.split(","):
        start = time.perf_counter()
        out = xf.run(
            build(job, strategy, a, a.users, a.events),
            workflow_id=f"ml-{strategy}",
            storage=f"{a.storage}/{strategy}",
            spark=spark,
            **({"checkpoint": "auto"} if strategy == "auto" and RUN_WIDE_AUTO else {}),
        )
        took = time.perf_counter() - start
        line = {"strategy": strategy, "run_s": took, "accuracy": out["accuracy"]}
        print(f"RUN {json.dumps(line)}", flush=True)
    return 0


# -- the parent ------------------------------------------------------------------------------
def launch(a: argparse.Namespace, storage: str, strategies: list[str], crash: str | None) -> Any:
    """Start a driver; return (startup seconds, {strategy: run seconds}, killed, seconds from
    warm to the end of the process)."""
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}
    env.pop("EXOFLOW_CRASH_AT", None)
    if crash:
        env["EXOFLOW_CRASH_AT"] = crash
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--driver",
        *("--storage", storage, "--strategies", ",".join(strategies)),
        *("--users", str(a.users), "--events", str(a.events), "--epochs", str(a.epochs)),
        *("--max-iter", str(a.max_iter)),
    ]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert proc.stdout is not None
    startup, runs, warm_at = None, {}, None
    for line in proc.stdout:
        if line.startswith("READY "):
            warm_at = time.perf_counter()
            startup = json.loads(line[6:])["startup_s"]
        elif line.startswith("RUN "):
            r = json.loads(line[4:])
            runs[r["strategy"]] = r
    code = proc.wait()
    end = time.perf_counter()
    if warm_at is None or (code != 0 and not (crash and code == -9)):
        raise RuntimeError(f"driver {cmd} ended with {code} before its runs were done")
    return startup, runs, code == -9, end - warm_at


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--kill-epoch", type=int, default=5)
    p.add_argument("--users", type=int, default=5000)
    p.add_argument("--events", type=int, default=50_000)
    p.add_argument("--max-iter", type=int, default=2)
    p.add_argument("--strategies", default=",".join(STRATEGIES))
    p.add_argument("--driver", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--storage", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.driver:
        return driver(a)
    names = a.strategies.split(",")
    load_start = round(os.getloadavg()[0], 2)
    work = Path(tempfile.mkdtemp(prefix="exoflow-bench-ml-"))
    clean: dict[str, list[float]] = {s: [] for s in names}
    killed: dict[str, list[float]] = {s: [] for s in names}
    lost: dict[str, list[float]] = {s: [] for s in names}
    accuracy: dict[str, float] = {}
    startups: list[float] = []
    crash = f"train_e{a.kill_epoch}:before-run"

    def report(done: int) -> None:
        # after every repetition: a run cut short still leaves its figures
        base = statistics.median(clean["none"])
        rows = []
        for s in names:
            rows.append(
                {
                    "strategy": s,
                    "clean_s": round(statistics.median(clean[s]), 2),
                    "clean_min_s": round(min(clean[s]), 2),
                    "clean_max_s": round(max(clean[s]), 2),
                    "clean_ratio": round(statistics.median(clean[s]) / base, 2),
                    "killed_s": round(statistics.median(killed[s]), 2),
                    "killed_min_s": round(min(killed[s]), 2),
                    "killed_max_s": round(max(killed[s]), 2),
                    "killed_ratio": round(statistics.median(killed[s]) / base, 2),
                    "until_kill_s": round(statistics.median(lost[s]), 2),
                    "accuracy": accuracy[s],
                }
            )
        columns = [
            ["strategy", "strategy", "s"],
            ["clean_s", "fault-free s (median)", ".1f"],
            ["clean_min_s", "min", ".1f"],
            ["clean_max_s", "max", ".1f"],
            ["clean_ratio", "vs none", ".2fx"],
            ["killed_s", f"killed at epoch {a.kill_epoch}: s to finish", ".1f"],
            ["killed_min_s", "min", ".1f"],
            ["killed_max_s", "max", ".1f"],
            ["killed_ratio", "vs none fault-free", ".2fx"],
            ["until_kill_s", "of which before the kill", ".1f"],
        ]
        print(markdown(rows, columns))
        mach = machine()
        boot = statistics.median(startups)
        print(f"driver start-up (not counted): median {boot:.1f} s over {len(startups)} drivers")
        print(f"load average: {load_start} at the start, {mach['load_avg_1m_at_end']} at the end")
        path = save(
            "ml_training",
            {
                "benchmark": "ml_training",
                "title": (
                    "ML training job: time to finish, fault-free and driver killed mid-training"
                ),
                "command": command(),
                "machine": {**mach, "load_avg_1m_at_start": load_start},
                "params": {k: v for k, v in vars(a).items() if k not in ("driver", "storage")},
                "startup_s": round(boot, 1),
                "auto": "run-wide xf.run(checkpoint='auto')" if RUN_WIDE_AUTO else "per task",
                "results": rows,
                "columns": columns,
                "plot": {
                    "kind": "barh",
                    "x": "strategy",
                    "ys": ["clean_s", "killed_s"],
                    "labels": {
                        "clean_s": "fault-free",
                        "killed_s": f"driver SIGKILLed at epoch {a.kill_epoch} of {a.epochs}",
                    },
                    "ylabel": "seconds to finish (median, start-up excluded)",
                },
                "notes": [
                    f"{a.users:,} users, {a.events:,} events, {a.epochs} epochs, {a.max_iter} "
                    f"IRLS steps per epoch; medians of {done} repetitions. Killed: the driver "
                    f"is SIGKILLed as epoch {a.kill_epoch}'s training starts, and a new driver "
                    "resumes the workflow; time to finish = run until the kill + resumed run. "
                    "Each driver's "
                    f"start-up (JVM, session, a warm-up run; median {boot:.1f} s) is not counted. "
                    f"auto: checkpoint='auto' "
                    + ("run-wide (xf.run)." if RUN_WIDE_AUTO else "declared on every task.")
                    + f" Load average {load_start} at the start, {mach['load_avg_1m_at_end']} at "
                    "the end (2 cores shared by other jobs): compare ratios within this run.",
                ],
            },
        )
        print(f"saved {path}")

    for rep in range(a.reps):
        order = names if rep % 2 == 0 else names[::-1]
        startup, runs, _, _ = launch(a, str(work / f"clean{rep}"), order, None)
        startups.append(startup)
        for s in order:
            clean[s].append(runs[s]["run_s"])
            accuracy.setdefault(s, runs[s]["accuracy"])
            print(f"  rep {rep + 1}/{a.reps} fault-free {s}: {runs[s]['run_s']:.1f} s", flush=True)
        for s in order:  # one driver per strategy, SIGKILLed in the middle epoch
            startup, _, was_killed, until_kill = launch(a, str(work / f"kill{rep}"), [s], crash)
            if not was_killed:
                raise RuntimeError(f"{s}: the driver was not killed at {crash}")
            startups.append(startup)
            lost[s].append(until_kill)
        # one new driver resumes every killed workflow, one after the other (a resume is a run
        # of the same workflow id; its start-up is the same for every strategy)
        startup, runs, _, _ = launch(a, str(work / f"kill{rep}"), order, None)
        startups.append(startup)
        for s in order:
            total = lost[s][-1] + runs[s]["run_s"]
            killed[s].append(total)
            if runs[s]["accuracy"] != accuracy[s]:
                print(f"  {s}: resumed accuracy {runs[s]['accuracy']} vs {accuracy[s]}")
            print(
                f"  rep {rep + 1}/{a.reps} killed {s}: {lost[s][-1]:.1f} s until the kill + "
                f"{runs[s]['run_s']:.1f} s resumed = {total:.1f} s",
                flush=True,
            )
        report(rep + 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
