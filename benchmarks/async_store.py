"""Async vs sync checkpoints on local disk and on a latency-bound object store, side by side.

    .venv/bin/python benchmarks/async_store.py [--reps 3] [--latency-ms 50] [--stages 4]
        [--rows 200000] [--warmup 1]

Two storage roots in one run, one SparkSession (``local[*]``, hadoop-aws 3.5.0 for ``s3a://``):

* ``disk``: a local directory;
* ``s3+<N>ms``: a bucket of moto's S3 server on 127.0.0.1, reached through
  ``tools/latency_proxy.py``, which adds N ms to every request (a round trip to a real
  object store; a Delta checkpoint write on s3a is about 75 requests: existence checks,
  listings, PUTs of the Parquet files and of the commit JSON, the reads that verify it).

On each root, the same pipeline runs under three checkpoint modes: ``none`` (nothing
durable but the output), ``sync`` (every stage written before its consumers start) and
``async`` (every stage written in the background while the next stages compute). The
pipeline is a chain of ``--stages`` stages, each a few hash columns over ``--rows`` rows
(four partitions), so every stage has compute for the previous stage's write to hide
behind. The log (start, commit and end records) is on the same root in every mode.

Candidates alternate (A B C ..., ... C B A) after ``--warmup`` rounds; each time is the wall
time of one ``xf.run``. Prints medians, min and max, and each mode's ratio to ``none`` and
``async``'s ratio to ``sync`` on the same root, measured in the same run; saves
``benchmarks/results/async_store.json`` (report.py renders it into docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))

from _harness import command, machine, markdown, measure, save, spark_session
from latency_proxy import LatencyProxy
from pyspark.sql import functions as F

import exoflow_spark as xf

MODES: dict[str, Any] = {"none": False, "async": "async", "sync": True}
BUCKET = "exo-bench"
ACCESS_KEY, SECRET = "AKIAEXOFLOWBENCH", "bench-secret"
#: pyspark 4.2.0 ships Hadoop 3.5.0: hadoop-aws must match it (tests/drivers/s3_job.py)
HADOOP_AWS = "org.apache.hadoop:hadoop-aws:3.5.0"


def s3a_conf(endpoint: str) -> dict[str, str]:
    """The Spark conf of a session that reaches the local S3 endpoint (through the proxy)."""
    return {
        "spark.jars.packages": HADOOP_AWS,
        "spark.hadoop.fs.s3a.endpoint": endpoint,
        "spark.hadoop.fs.s3a.endpoint.region": "us-east-1",
        "spark.hadoop.fs.s3a.path.style.access": "true",
        "spark.hadoop.fs.s3a.connection.ssl.enabled": "false",
        "spark.hadoop.fs.s3a.access.key": ACCESS_KEY,
        "spark.hadoop.fs.s3a.secret.key": SECRET,
        "spark.hadoop.fs.s3a.aws.credentials.provider": (
            "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
        ),
    }


def start_s3() -> tuple[Any, tuple[str, int]]:
    """moto's S3 server on 127.0.0.1 with the benchmark's bucket: the server, its address."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    boto3.client(
        "s3",
        endpoint_url=f"http://{host}:{port}",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
    ).create_bucket(Bucket=BUCKET)
    return server, (host, port)


def pipeline(spark: Any, rows: int, stages: int, mode: Any) -> xf.Node:
    """A chain source -> stage 1 -> ... -> stage N -> a small summary (the output)."""

    @xf.task(checkpoint=mode)
    def source() -> Any:
        return spark.range(0, rows, 1, 4).select(
            F.col("id"), F.xxhash64("id").alias("h0"), (F.col("id") % 997).alias("k")
        )

    def stage(k: int) -> Any:
        @xf.task(name=f"stage{k}", checkpoint=mode)
        def body(df: Any) -> Any:
            h = F.col(f"h{k - 1}")
            for i in range(8):  # compute for the previous stage's write to hide behind
                h = F.xxhash64(h, F.lit(k * 100 + i), F.col("k"))
            return df.select("id", "k", h.alias(f"h{k}"))

        return body

    @xf.task
    def summary(df: Any) -> dict[str, Any]:
        row = df.agg(F.count("*").alias("n"), F.sum(F.col(f"h{stages}") % 1000).alias("s")).first()
        return {"rows": int(row["n"]), "checksum": int(row["s"])}

    node = source.bind()
    for k in range(1, stages + 1):
        node = stage(k).bind(node)
    return summary.bind(node)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--latency-ms", type=float, default=50.0)
    p.add_argument("--stages", type=int, default=4)
    p.add_argument("--rows", type=int, default=200_000)
    a = p.parse_args(argv)
    load_before = round(os.getloadavg()[0], 2)
    server, target = start_s3()
    proxy = LatencyProxy(target, a.latency_ms / 1000).start()
    work = Path(tempfile.mkdtemp(prefix="exoflow-async-store-"))
    s3_name = f"s3+{a.latency_ms:g}ms"
    roots = {"disk": str(work), s3_name: f"s3a://{BUCKET}/exo"}
    requests: dict[str, list[int]] = {}
    try:
        spark, startup = spark_session(
            "exoflow-bench-async-store",
            s3a_conf(proxy.endpoint),
        )
        expected: dict[str, Any] = {}

        def candidate(store: str, mode: str) -> Any:
            def fn(rep: int) -> None:
                before = proxy.requests
                out = xf.run(
                    pipeline(spark, a.rows, a.stages, MODES[mode]),
                    workflow_id=f"{mode}-{rep + 10}",  # warm-ups are negative
                    storage=roots[store],
                    spark=spark,
                )
                if expected.setdefault("out", out) != out:
                    raise AssertionError(f"{store}/{mode} computed {out}, not {expected['out']}")
                if store != "disk" and rep >= 0:
                    requests.setdefault(mode, []).append(proxy.requests - before)

            return fn

        candidates = {
            f"{store} {mode}": candidate(store, mode) for store in roots for mode in MODES
        }
        times = measure(candidates, a.reps, warmup=a.warmup)
        spark.stop()
    finally:
        proxy.stop()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    rows = []
    for store in roots:
        med = {m: statistics.median(times[f"{store} {m}"]) for m in MODES}
        for mode in MODES:
            ts = times[f"{store} {mode}"]
            rows.append(
                {
                    "store": store,
                    "mode": mode,
                    "median_s": round(med[mode], 3),
                    "min_s": round(min(ts), 3),
                    "max_s": round(max(ts), 3),
                    "vs_none": round(med[mode] / med["none"], 3),
                    "vs_sync": round(med[mode] / med["sync"], 3),
                    "requests": (
                        round(statistics.median(requests[mode])) if store != "disk" else None
                    ),
                    "runs": len(ts),
                }
            )
    columns = [
        ["store", "store", "s"],
        ["mode", "checkpoint", "s"],
        ["median_s", "median s", ".2f"],
        ["min_s", "min s", ".2f"],
        ["max_s", "max s", ".2f"],
        ["vs_none", "ratio to none", ".2fx"],
        ["vs_sync", "ratio to sync", ".2fx"],
        ["requests", "S3 requests", ".0f"],
    ]
    print(markdown(rows, columns))
    mach = machine()
    gain = {
        store: next(r["vs_sync"] for r in rows if r["store"] == store and r["mode"] == "async")
        for store in roots
    }
    print(
        f"async / sync: disk {gain['disk']:.2f}x, {s3_name} {gain[s3_name]:.2f}x "
        f"(load {load_before} at the start, {mach['load_avg_1m_at_end']} at the end)"
    )
    path = save(
        "async_store",
        {
            "benchmark": "async_store",
            "title": "Async vs sync checkpoints: local disk and a latency-bound object store",
            "command": command(),
            "machine": {**mach, "load_avg_1m_at_start": load_before},
            "params": vars(a),
            "startup_s": round(startup, 1),
            "results": rows,
            "columns": columns,
            "plot": {
                "kind": "bar",
                "x": "store",
                "group": "mode",
                "y": "median_s",
                "xlabel": "storage root",
                "ylabel": "seconds per run (median)",
            },
            "notes": [
                f"A chain of {a.stages} stages over {a.rows:,} rows, every stage checkpointed "
                f"in the mode shown; medians of {a.reps} alternated repetitions after "
                f"{a.warmup} warm-up round(s), one SparkSession (local[*], 2 cores), one run. "
                f"{s3_name}: moto's S3 server on loopback behind tools/latency_proxy.py "
                f"({a.latency_ms:g} ms per request); 'S3 requests' counts the requests of one "
                "run (log records included). Ratios are between medians of the same run; the "
                f"1-minute load average was {load_before} at the start and "
                f"{mach['load_avg_1m_at_end']} at the end (2 cores, shared).",
            ],
        },
    )
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
