"""What one workflow-log record costs on each candidate medium.

    .venv/bin/python benchmarks/log_medium.py [--records 200]

Candidates: a local file written with create-if-absent and fsync (LocalLogFS, what local
paths use); the same through Hadoop's FileSystem in the JVM (HadoopLogFS, what s3a/abfss/...
use, measured here on file://); and one Delta commit of a one-row record (the "Delta table as
the log" option). Prints the median and p90 per record and records per second.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import command, machine, save

import exoflow_spark as xf
from exoflow_spark.spark.hadoop import HadoopLogFS
from exoflow_spark.storage.logfs import LocalLogFS


def timed(fn, n: int) -> list[float]:
    out = []
    for i in range(n):
        start = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - start)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=200)
    a = p.parse_args()
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    spark = xf.create_spark_session(
        "local[2]",
        app_name="exoflow-bench-log",
        conf={"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "2"},
    )
    spark.sparkContext.setLogLevel("ERROR")
    work = Path(tempfile.mkdtemp(prefix="exoflow-logbench-"))
    record = json.dumps({"task": "t", "kind": "value", "value": 1, "fingerprint": "x" * 32})
    local = LocalLogFS(str(work / "local"))
    hadoop = HadoopLogFS(f"file://{work}/hadoop", spark)
    delta_path = str(work / "delta")
    spark.createDataFrame([(0, record)], "seq INT, record STRING").write.format("delta").save(
        delta_path
    )

    def delta_commit(i: int) -> None:
        spark.createDataFrame([(i, record)], "seq INT, record STRING").write.format("delta").mode(
            "append"
        ).save(delta_path)

    n_delta = max(10, a.records // 10)
    results = {
        "local file (create-if-absent + fsync)": timed(
            lambda i: local.put_if_absent(f"r/{i}.json", record.encode()), a.records
        ),
        "Hadoop FileSystem via JVM (file://)": timed(
            lambda i: hadoop.put_if_absent(f"r/{i}.json", record.encode()), a.records
        ),
        "Delta commit of one record": timed(delta_commit, n_delta),
    }
    rows = []
    print(f"log medium: cost of one record ({a.records} records; Delta: {n_delta} commits)")
    print("| medium | median ms | p90 ms | records/s |\n|---|---:|---:|---:|")
    for name, ts in results.items():
        med = statistics.median(ts)
        p90 = sorted(ts)[int(0.9 * (len(ts) - 1))]
        rows.append(
            {
                "medium": name,
                "median_ms": round(med * 1000, 2),
                "p90_ms": round(p90 * 1000, 2),
                "records_per_s": round(1 / med, 1),
            }
        )
        print(f"| {name} | {med * 1000:.2f} | {p90 * 1000:.2f} | {1 / med:,.0f} |")
    save(
        "log_medium",
        {"benchmark": "log_medium", "command": command(), "machine": machine(), "results": rows},
    )
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
