"""Soak: hundreds of consecutive runs in one driver, then random driver kills (`make soak`).

    .venv/bin/python tools/soak.py [--runs 300] [--kills 40] [--seed 11]

Part 1, leaks: one driver runs ``--runs`` workflows back to back (sync, async and auto
checkpoints, a shared cache, an exactly-once sink, every third workflow run a second time,
every fifth failing once in a task and resumed). After a warm-up it samples, every 25 runs:
Python threads, open file descriptors, temporary files, Spark's persisted RDDs (cached
blocks), the driver's Python RSS and the JVM's used heap after a GC. It fails if threads,
fds, temp files or cached RDDs grow, or if RSS / JVM heap grow by more than a bound that
scales with nothing (a fixed allowance, not per run), and checks that the sink holds every
workflow's rows exactly once.

Part 2, kills: ``tools/chaos.py`` with ``--kills`` random SIGKILLs of separate drivers,
seeded, with its exactly-once checks.

Prints the counts and every check; exits 1 if any failed.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the test suite's drivers package

ROWS = 2000


def sample(spark) -> dict[str, float]:
    gc.collect()
    jvm = spark.sparkContext._jvm
    jvm.java.lang.System.gc()
    rt = jvm.java.lang.Runtime.getRuntime()
    tmp = Path(tempfile.gettempdir())
    return {
        "threads": threading.active_count(),
        "fds": len(os.listdir("/proc/self/fd")),
        "tmp_files": sum(1 for p in tmp.iterdir() if p.name.startswith(("tmp", "exoflow"))),
        "cached_rdds": spark.sparkContext._jsc.getPersistentRDDs().size(),
        "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "jvm_heap_mib": (rt.totalMemory() - rt.freeMemory()) / 2**20,
    }


def leaks(runs: int, root: Path) -> list[str]:
    from drivers import driver_session
    from pyspark.sql import functions as F

    import exoflow_spark as xf

    spark = driver_session("local[2]", "exoflow-soak")
    sink = str(root / "sink")
    failures: list[str] = []
    fail_once: set[str] = set()

    def dag(i: int) -> xf.Node:
        @xf.task(checkpoint=True)
        def source(n: int):
            return (
                xf.get_spark()
                .range(n)
                .select(F.col("id").alias("k"), (F.col("id") % 7).alias("g"), F.lit(i).alias("wf"))
            )

        @xf.task(checkpoint="async")
        def shaped(df):
            return df.withColumn("v", F.col("k") * 3)

        @xf.task(checkpoint="auto")
        def by_group(df):
            if i % 5 == 0 and f"wf-{i}" not in fail_once:
                fail_once.add(f"wf-{i}")
                raise RuntimeError("injected task failure (the soak resumes it)")
            return df.groupBy("g", "wf").agg(F.sum("v").alias("v"))

        @xf.task
        def count(df):
            return df.count()

        @xf.task
        def publish(groups, rows):
            xf.write_delta(groups, sink, mode="append")
            return rows

        s = shaped.bind(source.bind(ROWS))
        return publish.bind(by_group.bind(s), count.bind(s))

    storage = str(root / "exo")
    samples: list[tuple[int, dict[str, float]]] = []
    start = time.monotonic()
    for i in range(runs):
        wf = f"soak-{i}"
        try:
            xf.run(dag(i), workflow_id=wf, storage=storage, spark=spark)
        except xf.TaskFailedError:
            xf.run(dag(i), workflow_id=wf, storage=storage, spark=spark)  # resume
        if i % 3 == 0:
            xf.run(dag(i), workflow_id=wf, storage=storage, spark=spark)  # a no-op re-run
        if i == 10 or (i > 10 and i % 25 == 0) or i == runs - 1:
            samples.append((i, sample(spark)))
            s = samples[-1][1]
            print(
                f"  run {i + 1:4d}: threads {s['threads']}, fds {s['fds']}, tmp {s['tmp_files']}, "
                f"cached RDDs {s['cached_rdds']}, RSS {s['rss_mib']:.0f} MiB, "
                f"JVM heap {s['jvm_heap_mib']:.0f} MiB ({time.monotonic() - start:.0f} s)",
                flush=True,
            )
    if len(samples) < 2:
        return ["too few runs to compare (use --runs 30 or more)"]
    (_, first), (_, last) = samples[0], samples[-1]
    for key, allowance in (("threads", 0), ("fds", 4), ("tmp_files", 0), ("cached_rdds", 0)):
        if last[key] > first[key] + allowance:
            failures.append(f"{key} grew from {first[key]:.0f} to {last[key]:.0f}")
    if last["rss_mib"] > first["rss_mib"] + 150:
        failures.append(f"driver RSS grew {first['rss_mib']:.0f} -> {last['rss_mib']:.0f} MiB")
    if last["jvm_heap_mib"] > first["jvm_heap_mib"] + 300:
        failures.append(
            f"JVM heap grew {first['jvm_heap_mib']:.0f} -> {last['jvm_heap_mib']:.0f} MiB"
        )
    rows = spark.read.format("delta").load(sink)
    per_wf = {r.wf: r.n for r in rows.groupBy("wf").agg(F.count("*").alias("n")).collect()}
    if per_wf != {i: 7 for i in range(runs)}:
        bad = {k: v for k, v in per_wf.items() if v != 7}
        failures.append(f"sink not exactly once: {len(per_wf)} workflows, wrong counts {bad}")
    spark.stop()
    return failures


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=300)
    p.add_argument("--kills", type=int, default=40)
    p.add_argument("--seed", type=int, default=11)
    args = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="exoflow-soak-"))
    print(f"soak part 1: {args.runs} consecutive workflows in one driver")
    failures = leaks(args.runs, root)
    for f in failures:
        print(f"  FAILED: {f}")
    if not failures:
        print("  every leak check held; the sink holds each workflow's rows exactly once")
    print(f"\nsoak part 2: {args.kills} random driver kills (tools/chaos.py, seed {args.seed})")
    chaos = subprocess.run(
        [
            sys.executable,
            str(HERE / "chaos.py"),
            "--kills",
            str(args.kills),
            "--seed",
            str(args.seed),
        ]
    )
    ok = not failures and chaos.returncode == 0
    print("\nsoak:", "every check held" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
