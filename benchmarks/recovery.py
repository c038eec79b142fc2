"""Fault-free cost and recovery time of each checkpoint strategy, driver crash at ~80%.

    .venv/bin/python benchmarks/recovery.py [--rows 600000] [--reps 1] [--strategies a,b]
        [--no-executor-loss | --no-driver-crash | --fault-free-only]
        [--checkpoint-format default|delta|parquet]

An 8-stage pipeline whose stages do real work (a join, four chained Python UDF stages whose
compute outweighs writing their output, an aggregation) ends in an exactly-once Delta sink.
Each candidate runs as its own driver process (spark-submit style), so a crash is a real
SIGKILL:

* fault-free: the whole run;
* driver crash: the same run SIGKILLed at 80% of that strategy's fault-free run time
  (counted from the moment its run is logged, so Spark start-up is excluded), then re-run
  with the same workflow id: the time of that second run is the recovery time.

Times are measured inside the driver from "session ready" to "run returned". Start-up is
reported separately, not counted: the JVM, the SparkSession and a first tiny Delta write,
Delta read and Python UDF (class loading and Python workers, ~5 s that every new driver pays
before its first task, the fault-free one as much as the restarted one); the table
also shows the ratio with start-up counted in both runs.

Each repetition runs the candidates' fault-free runs back to back, then their crashes, in
turn, starting one later than the repetition before (a machine's load drifts during a
half-hour benchmark: runs far apart, or a fixed order, would favour whichever ran in a
quieter minute). Candidates: none (checkpoint=False everywhere), async and sync (every stage),
selective (async on the four expensive UDF stages only, the paper's "selective" strategy,
chosen by hand; recovery="cost"), selective-sync (the same four stages written sync;
recovery="cost"), auto (no stage annotated, ``xf.run(checkpoint="auto")``, first run: the
storage root's cost profiles are deleted before its fault-free run and before its crashed
run; recovery="cost") and auto-profile (the same, run after auto under new workflow ids, so
every stage is decided from the profiles auto's fault-free run measured: the nightly run of
the next day, after a first run that finished; those profiles are put back before each of
its runs, so neither auto's crashed and resumed run nor auto-profile's own runs replace
them). Prints, per
candidate, the fault-free time as a ratio to `none`, and the recovery time as a ratio to a
full re-run. ``--fault-free-only`` runs only the fault-free runs (each repetition's back to
back, rotated; about a minute per candidate and repetition, a quarter of a crash
repetition's time): the repetitions a fault-free ratio on a noisy machine needs, with each
repetition's ratio to that repetition's none.

The source has 4 partitions per core (Spark's tuning guide suggests 2-4): short tasks let
a background checkpoint write take a task slot between them (exoflow's FAIR pool).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import machine, save

from exoflow_spark.core.options import UNDECLARED
from exoflow_spark.storage.store import WorkflowStore

STRATEGIES = {
    "none": {},
    "async": {"*": "async"},
    "sync": {"*": True},
    # the paper's "selective": checkpoint (async) only the stages whose compute is expensive
    # relative to their output, here the four UDF stages; chosen by hand
    "selective": {f"score{k}": "async" for k in range(1, 5)},
    # the same stages written sync: each write's encoding runs in the tasks that compute the
    # stage, with no cache, no job that reads the cache back, and a commit at the stage's end
    "selective-sync": {f"score{k}": True for k in range(1, 5)},
    # nothing annotated, xf.run(checkpoint="auto"): the engine decides every stage. "auto":
    # a first run (the root's profiles deleted before it); "auto-profile": the next run, under
    # a new workflow id, deciding from the profiles the previous one measured
    "auto": {"*": UNDECLARED},
    "auto-profile": {"*": UNDECLARED},
}


#: how the candidates store their checkpoints (``--checkpoint-format``): "default" is
#: xf.run's (Delta for declared checkpoints, Parquet for auto's)
CHECKPOINT_FORMAT = "default"


def job(args: argparse.Namespace) -> int:
    """One driver: run the pipeline under a strategy and print timings as JSON."""
    t0 = time.perf_counter()
    from pyspark.sql import functions as F

    import exoflow_spark as xf

    spark = xf.create_spark_session(
        args.master,
        app_name="exoflow-bench-recovery",
        conf={"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "4"},
    )
    spark.sparkContext.setLogLevel("ERROR")
    # start-up ends when the driver is warm: a first Delta write and read and a first Python
    # UDF (class loading, Python workers) cost a new driver ~5 s before its first real task;
    # both the fault-free run and the restarted one pay it, and it is reported as start-up
    with tempfile.TemporaryDirectory(prefix="exoflow-warmup-") as warm:
        spark.range(10).select(F.udf(lambda x: x + 1, "long")("id").alias("id")).write.format(
            "delta"
        ).save(warm + "/t")
        spark.read.format("delta").load(warm + "/t").count()
    startup = time.perf_counter() - t0
    plan = STRATEGIES[args.strategy]

    def mode(name: str):
        return plan.get(name, plan.get("*", False))

    def heavy(x: int) -> int:  # a Python UDF whose compute outweighs writing its output
        h = x
        for _ in range(300):
            h = (h * 1103515245 + 12345) & 0x7FFFFFFF
        return h % 1000

    heavy_udf = F.udf(heavy, "long")

    @xf.task(checkpoint=mode("orders"))
    def orders():
        # 4 partitions per core, as Spark's tuning guide suggests (2-4): short tasks let a
        # background checkpoint write take a free slot between them
        parts = 4 * spark.sparkContext.defaultParallelism
        return spark.range(0, args.rows, 1, parts).select(
            F.col("id").alias("order_id"),
            (F.col("id") % 5000).alias("customer"),
            ((F.col("id") * 37) % 1000 / 10.0).alias("amount"),
        )

    @xf.task(checkpoint=mode("customers"))
    def customers():
        return spark.range(5000).select(
            F.col("id").alias("customer"), (F.col("id") % 20).alias("segment")
        )

    @xf.task(checkpoint=mode("joined"))
    def joined(o, c):
        return o.join(c, "customer")

    def heavy_stage(k: int):
        def body(df):  # each stage's score depends on the previous one: a real chain
            prev = F.col("order_id") if k == 1 else F.col(f"score{k - 1}")
            return df.withColumn(f"score{k}", heavy_udf(prev + F.lit(k)))

        body.__name__ = f"score{k}"
        return xf.task(body, checkpoint=mode(f"score{k}"))

    @xf.task(checkpoint=mode("summary"))
    def summary(df):
        return df.groupBy("segment", (F.col("score4") % 10).alias("bucket")).agg(
            F.sum("amount").alias("amount"), F.count("*").alias("n")
        )

    @xf.task
    def publish(df):
        df = df.persist()  # written and counted: computed once
        xf.write_delta(df, args.sink, mode="append")
        n = df.count()
        df.unpersist()
        return n

    node = joined.bind(orders.bind(), customers.bind())
    for k in range(1, 5):
        node = heavy_stage(k).bind(node)
    dag = publish.bind(summary.bind(node))
    start = time.perf_counter()
    rows = xf.run(
        dag,
        workflow_id=args.workflow_id,
        storage=args.storage,
        spark=spark,
        recovery="cost"
        if args.strategy in ("selective", "selective-sync", "auto", "auto-profile")
        else "restore",
        checkpoint="auto" if args.strategy.startswith("auto") else "none",
        checkpoint_format=None if args.checkpoint_format == "default" else args.checkpoint_format,
    )
    print(
        "TIMING "
        + json.dumps({"startup_s": startup, "run_s": time.perf_counter() - start, "rows": rows}),
        flush=True,
    )
    spark.stop()
    return 0


def executor_pids(driver_pid: int) -> list[int]:
    """Executor JVMs of a local-cluster driver: children of its JVM (a child of ``driver_pid``)."""
    jvms = subprocess.run(["pgrep", "-P", str(driver_pid)], capture_output=True, text=True)
    pids: list[int] = []
    for jvm in jvms.stdout.split():
        out = subprocess.run(
            ["pgrep", "-P", jvm, "-f", "CoarseGrainedExecutorBackend"],
            capture_output=True,
            text=True,
        )
        pids += [int(p) for p in out.stdout.split()]
    return pids


def driver(
    strategy: str,
    work: Path,
    wf: str,
    rows: int,
    kill_after: float | None = None,
    *,
    master: str = "local[*]",
    kill_executor_after: float | None = None,
) -> dict | None:
    """Run one driver; with ``kill_after``, SIGKILL it that many seconds after its run
    started (its log's run record appeared), so Spark start-up is excluded (a run that
    finished first is left finished: the caller sees its sink committed). With
    ``kill_executor_after``, SIGKILL one executor JVM at that time instead and let the run
    finish: None when it finished before there was one to kill."""
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"}
    env.pop("EXOFLOW_CRASH_AT", None)
    cmd = [
        sys.executable,
        __file__,
        "--job",
        "--strategy",
        strategy,
        "--rows",
        str(rows),
        "--workflow-id",
        wf,
        "--storage",
        str(work / "exo"),
        "--sink",
        str(work / f"sink-{wf}"),
        "--master",
        master,
        "--checkpoint-format",
        CHECKPOINT_FORMAT,
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if kill_executor_after is not None:
        runs = work / "exo" / "workflows" / wf / "log" / "runs"
        while proc.poll() is None and not runs.exists():
            time.sleep(0.02)
        time.sleep(kill_executor_after)
        victims = executor_pids(proc.pid)
        if not victims:
            out, err = proc.communicate(timeout=1800)
            if proc.returncode == 0:  # finished first: its fault-free run was slower
                return None
            raise RuntimeError(
                f"{wf}: no executor JVM to kill {kill_executor_after:.1f} s into the run: it "
                f"had exited with {proc.returncode}: {err[-2000:]}"
            )
        os.kill(victims[0], signal.SIGKILL)
    if kill_after is not None:
        runs = work / "exo" / "workflows" / wf / "log" / "runs"
        while proc.poll() is None and not runs.exists():
            time.sleep(0.02)
        try:  # a run that ends first (a busy machine slowed its fault-free run) is not killed
            proc.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            proc.kill()
        _, err = proc.communicate()
        if proc.returncode not in (0, -signal.SIGKILL):
            raise RuntimeError(f"{wf}: the run to kill failed ({proc.returncode}): {err[-2000:]}")
        return None
    out, err = proc.communicate(timeout=1800)
    assert proc.returncode == 0, err[-2000:]
    [line] = [ln for ln in out.splitlines() if ln.startswith("TIMING ")]
    return json.loads(line[len("TIMING ") :])


def finished(work: Path, wf: str) -> bool:
    """Whether the killed run of ``wf`` had committed its output (the sink) before the kill:
    then the kill interrupted nothing a resumed run would redo."""
    return "publish" in WorkflowStore(str(work / "exo"), wf).read_state().commits


def rotated(chosen: list[str], rep: int) -> list[str]:
    """The candidates in repetition ``rep``'s order: rotated by one each repetition, so none
    always running first (on a machine whose load drifts during the benchmark) does not
    favour it or any other candidate. "auto-profile" runs after "auto" unless the rotation
    puts it first, when it starts from the profiles of the repetition before."""
    k = rep % len(chosen)
    return chosen[k:] + chosen[:k]


def _span(values: list[float]) -> str:
    """``min-max`` of the repetitions, for the tables."""
    return f"{min(values):.2f}-{max(values):.2f}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--job", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--strategy", default="none", help=argparse.SUPPRESS)  # of one --job driver
    p.add_argument(
        "--strategies",
        default=",".join(STRATEGIES),
        help="comma-separated candidates to measure (default: all); none is always included, "
        "as every ratio is to it",
    )
    p.add_argument("--rows", type=int, default=600_000)
    p.add_argument("--reps", type=int, default=1)
    p.add_argument("--workflow-id", default="bench")
    p.add_argument("--storage")
    p.add_argument("--sink")
    p.add_argument("--master", default="local[*]", help=argparse.SUPPRESS)
    p.add_argument(
        "--checkpoint-format",
        choices=("default", "delta", "parquet"),
        default="default",
        help="how every candidate stores its checkpoints (xf.run's checkpoint_format; "
        "default: xf.run's, Delta for declared checkpoints and Parquet for auto's)",
    )
    p.add_argument(
        "--driver-crash",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="measure each candidate fault-free and after a driver SIGKILL at 80%% (the "
        "default; --no-driver-crash measures only the executor loss)",
    )
    p.add_argument(
        "--executor-loss",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also kill one executor JVM of a local-cluster[2,1,1024] at 80%% of each run",
    )
    p.add_argument(
        "--fault-free-only",
        action="store_true",
        help="measure only each candidate's fault-free run (no crash, no executor loss)",
    )
    a = p.parse_args()
    if a.job:
        return job(a)
    if a.fault_free_only:
        a.driver_crash = a.executor_loss = False
    global CHECKPOINT_FORMAT
    CHECKPOINT_FORMAT = a.checkpoint_format
    chosen = ["none"] + [s for s in a.strategies.split(",") if s and s != "none"]
    unknown = sorted(set(chosen) - set(STRATEGIES))
    if unknown:
        p.error(f"unknown strategies {unknown}: choose from {', '.join(STRATEGIES)}")
    if not (a.driver_crash or a.executor_loss or a.fault_free_only):
        p.error(
            "--no-driver-crash and --no-executor-loss leave nothing to measure (for the "
            "fault-free runs alone: --fault-free-only)"
        )
    work = Path(tempfile.mkdtemp(prefix="exoflow-bench-recovery-"))
    results: dict[str, dict[str, list[float]]] = {s: {"clean": [], "recover": []} for s in chosen}
    startups = []
    print(
        f"recovery benchmark: {a.rows:,} rows, 8 stages, {a.reps} rep(s)"
        + (
            ", driver SIGKILLed at 80% of each strategy's own fault-free run time"
            if a.driver_crash
            else ""
        )
    )
    # warm-up: fills caches and measures the storage root's cost model once (cached for a
    # week) for each format the candidates write (auto's may differ), so that no timed run
    # pays for a calibration
    driver("selective", work, "warmup", max(a.rows // 10, 1000))
    driver("auto", work, "warmup-auto", max(a.rows // 10, 1000))
    profiles = work / "exo" / "_exoflow" / "profiles"
    first_run = work / "profiles-of-auto"  # what auto's fault-free run measured

    def before(strategy: str) -> None:
        """The profiles a run of ``strategy`` starts from: none for auto (a first run),
        those of the same repetition's auto fault-free run for auto-profile."""
        if strategy == "auto":
            shutil.rmtree(profiles, ignore_errors=True)
        elif strategy == "auto-profile" and first_run.exists():
            shutil.rmtree(profiles, ignore_errors=True)
            shutil.copytree(first_run, profiles)

    def fault_free(strategy: str, tag: str, master: str = "local[*]") -> dict:
        """A fault-free run of ``strategy`` from the profiles :func:`before` gives it; auto's
        profiles are kept for the same repetition's auto-profile."""
        before(strategy)
        run = driver(strategy, work, f"{strategy}-{tag}", a.rows, master=master)
        if strategy == "auto":
            shutil.rmtree(first_run, ignore_errors=True)
            shutil.copytree(profiles, first_run)
        return run

    for rep in range(a.reps if a.driver_crash else 0):
        # the fault-free runs back to back, then the crashes: the runs a ratio compares are
        # minutes apart, not a quarter of an hour (the load drifts)
        clean: dict[str, dict] = {}
        for strategy in rotated(chosen, rep):
            clean[strategy] = fault_free(strategy, f"clean-{rep}")
        for strategy in rotated(chosen, rep):
            before(strategy)
            run_s = clean[strategy]["run_s"]
            crashed = f"{strategy}-crash-{rep}"
            driver(strategy, work, crashed, a.rows, kill_after=0.8 * run_s)
            if finished(work, crashed):
                # its sink committed before the kill (the fault-free run it was timed from
                # was slower: a busy machine), and a resumed run would have nothing to do:
                # once more, timed from a fault-free run of its own
                print(f"  rep {rep + 1} {strategy:14s} finished before the kill: again")
                before(strategy)
                again = driver(strategy, work, f"{strategy}-clean-{rep}b", a.rows)["run_s"]
                before(strategy)
                crashed = f"{strategy}-crash-{rep}b"
                driver(strategy, work, crashed, a.rows, kill_after=0.8 * again)
                if finished(work, crashed):
                    raise RuntimeError(
                        f"{strategy}: the crashed run finished before its kill twice (its "
                        "fault-free runs were slower: a busy machine); run again"
                    )
            resumed = driver(strategy, work, crashed, a.rows)
            assert clean[strategy]["rows"] == resumed["rows"]
            results[strategy]["clean"].append(run_s)
            results[strategy]["recover"].append(resumed["run_s"])
            startups.append(clean[strategy]["startup_s"])
            print(
                f"  rep {rep + 1} {strategy:14s} fault-free {run_s:6.2f} s, after "
                f"crash {resumed['run_s']:6.2f} s"
            )
    for rep in range(a.reps if a.fault_free_only else 0):
        line = []
        for strategy in rotated(chosen, rep):
            run = fault_free(strategy, f"clean-{rep}")
            results[strategy]["clean"].append(run["run_s"])
            startups.append(run["startup_s"])
            line.append(f"{strategy} {run['run_s']:.2f} s")
        print(f"  rep {rep + 1}: " + ", ".join(line), flush=True)
    loss: dict[str, dict[str, list[float]]] = {s: {"clean": [], "lost": []} for s in chosen}
    if a.executor_loss:
        cluster = "local-cluster[2,1,1024]"
        print(f"\nexecutor loss: one executor JVM of {cluster} SIGKILLed at 80% of the run")

        def lose_executor(strategy: str, tag: str) -> tuple[dict, dict | None]:
            """A fault-free run on the cluster, then one with an executor killed at 80% of
            it (None when that run finished first)."""
            clean = fault_free(strategy, f"lc-{tag}", master=cluster)
            before(strategy)
            hit = driver(
                strategy,
                work,
                f"{strategy}-lost-{tag}",
                a.rows,
                master=cluster,
                kill_executor_after=0.8 * clean["run_s"],
            )
            return clean, hit

        for rep in range(a.reps):
            for strategy in rotated(chosen, rep):
                clean, hit = lose_executor(strategy, f"{rep}")
                if hit is None:
                    # it finished before its kill (the fault-free run it was timed from was
                    # slower: a busy machine): once more, with a fault-free run of its own
                    print(f"  rep {rep + 1} {strategy:14s} finished before the kill: again")
                    clean, hit = lose_executor(strategy, f"{rep}b")
                if hit is None:
                    raise RuntimeError(
                        f"{strategy}: the run with an executor killed finished before its kill "
                        "twice (its fault-free runs were slower: a busy machine); run again"
                    )
                assert clean["rows"] == hit["rows"]
                loss[strategy]["clean"].append(clean["run_s"])
                loss[strategy]["lost"].append(hit["run_s"])
                print(
                    f"  rep {rep + 1} {strategy:14s} fault-free {clean['run_s']:6.2f} s, with "
                    f"an executor killed {hit['run_s']:6.2f} s"
                )
    rows: list[dict] = [{"strategy": s} for s in chosen]
    boot = statistics.median(startups) if startups else None
    if a.driver_crash:
        base = statistics.median(results["none"]["clean"])
        print(f"\nSpark session start-up (not counted): median {boot:.1f} s")
        print(
            "| strategy | fault-free s (min-max) | vs none | recovery after crash s (min-max) | "
            "vs full re-run | counting start-up in both |"
        )
        print("|---|---:|---:|---:|---:|---:|")
        for row, (s, r) in zip(rows, results.items(), strict=True):
            clean, rec = statistics.median(r["clean"]), statistics.median(r["recover"])
            row.update(
                fault_free_s=round(clean, 3),
                fault_free_vs_none=round(clean / base, 3),
                recovery_s=round(rec, 3),
                recovery_vs_rerun=round(rec / clean, 3),
                recovery_vs_rerun_with_startup=round((boot + rec) / (boot + clean), 3),
            )
            print(
                f"| {s} | {clean:.2f} ({_span(r['clean'])}) | {clean / base:.2f}x | {rec:.2f} "
                f"({_span(r['recover'])}) | {rec / clean:.2f} | "
                f"{(boot + rec) / (boot + clean):.2f} |"
            )
    if a.fault_free_only:
        base = statistics.median(results["none"]["clean"])
        print(f"\nSpark session start-up (not counted): median {boot:.1f} s")
        print("| strategy | fault-free s (min-max) | vs none | each repetition vs its none |")
        print("|---|---:|---:|---|")
        for row, (s, r) in zip(rows, results.items(), strict=True):
            clean = statistics.median(r["clean"])
            each = [x / n for x, n in zip(r["clean"], results["none"]["clean"], strict=True)]
            row.update(
                fault_free_s=round(clean, 3),
                fault_free_vs_none=round(clean / base, 3),
                fault_free_vs_none_each=[round(x, 3) for x in each],
            )
            print(
                f"| {s} | {clean:.2f} ({_span(r['clean'])}) | {clean / base:.2f}x | "
                + ", ".join(f"{x:.2f}x" for x in each)
                + " |"
            )
    if a.executor_loss:
        print(
            "\n| strategy | local-cluster fault-free s (min-max) | executor killed at 80%: run s "
            "(min-max) | "
            "time after the kill vs fault-free run |"
        )
        print("|---|---:|---:|---:|")
        for s, r in loss.items():
            clean, lost = statistics.median(r["clean"]), statistics.median(r["lost"])
            after = (lost - 0.8 * clean) / clean
            next(x for x in rows if x["strategy"] == s).update(
                executor_clean_s=round(clean, 3),
                executor_lost_s=round(lost, 3),
                executor_after_kill_vs_run=round(after, 3),
            )
            print(
                f"| {s} | {clean:.2f} ({_span(r['clean'])}) | {lost:.2f} ({_span(r['lost'])}) "
                f"| {after:.2f} |"
            )
    # an executor-loss-only or fault-free-only run does not replace the full run's file
    save(
        "recovery"
        if a.driver_crash
        else "recovery_fault_free"
        if a.fault_free_only
        else "recovery_executor_loss",
        {
            "benchmark": "recovery",
            "rows": a.rows,
            "reps": a.reps,
            "checkpoint_format": a.checkpoint_format,
            "machine": machine(),
            "startup_s": None if boot is None else round(boot, 3),
            "results": rows,
            "raw": results,
            "raw_executor_loss": loss,
        },
    )
    # its checkpoints, sinks and logs (a failed run leaves them for a look)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
