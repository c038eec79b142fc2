"""A driver process for the object-store test: the crash-test pipeline on ``s3a://``.

The storage root and the sink live in a bucket of a local S3 endpoint (moto, started by the
test on 127.0.0.1); the log goes through HadoopLogFS and the checkpoints and sink through
Delta's S3 log store, with hadoop-aws jars matching pyspark's Hadoop. Prints:

* ``PROBE {...}`` (with ``--probe``): create-if-absent semantics of the log on S3A;
* ``RESULT ...`` and ``CHECK {...}``: the workflow's output, then what the sink holds.

Crash points come from EXOFLOW_CRASH_AT, as in ``crash_job.py``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from crash_job import build

import exoflow_spark as xf
from drivers import DRIVER_CONF

#: pyspark 4.2.0 ships hadoop-client-api 3.5.0; hadoop-aws must match it exactly, and brings
#: the AWS SDK v2 bundle it was built with.
HADOOP_AWS = "org.apache.hadoop:hadoop-aws:3.5.0"


def session(endpoint: str, access_key: str, secret_key: str):
    conf = {
        **DRIVER_CONF,
        "spark.sql.shuffle.partitions": "2",
        "spark.jars.packages": HADOOP_AWS,
        "spark.hadoop.fs.s3a.endpoint": endpoint,
        "spark.hadoop.fs.s3a.endpoint.region": "us-east-1",
        "spark.hadoop.fs.s3a.path.style.access": "true",
        "spark.hadoop.fs.s3a.connection.ssl.enabled": "false",
        "spark.hadoop.fs.s3a.access.key": access_key,
        "spark.hadoop.fs.s3a.secret.key": secret_key,
        "spark.hadoop.fs.s3a.aws.credentials.provider": (
            "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
        ),
        "spark.hadoop.fs.s3a.attempts.maximum": "2",
        "spark.hadoop.fs.s3a.retry.limit": "2",
    }
    spark = xf.create_spark_session("local[2]", app_name="exoflow-s3-job", conf=conf)
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def probe(spark, root: str) -> dict:
    """Create-if-absent on S3A: a second create of a name loses, and so does a create that
    races another writer between its existence check and its upload (If-None-Match)."""
    from exoflow_spark.spark.hadoop import CONDITIONAL_CREATE_OPTION, HadoopLogFS

    fs = HadoopLogFS(root, spark)
    out: dict = {
        "first": fs.put_if_absent("probe/a.json", b'{"v": 1}'),
        "second": fs.put_if_absent("probe/a.json", b'{"v": 2}'),
    }
    out["kept"] = json.loads(fs.get("probe/a.json") or b"{}")
    path = fs._path("probe/race.json")
    stream = fs._fs.createFile(path).overwrite(False).opt(CONDITIONAL_CREATE_OPTION, "true").build()
    stream.write(bytearray(b'{"v": "slow"}'))
    racer = fs._fs.create(path, True)  # another writer lands first
    racer.write(bytearray(b'{"v": "racer"}'))
    racer.close()
    try:
        stream.close()
        out["race"] = "both won"
    except Exception as exc:  # the conditional PUT is refused by the store
        text = str(exc)
        out["race"] = "refused" if ("412" in text or "Precondition" in text) else text[:300]
    out["race_kept"] = json.loads(fs.get("probe/race.json") or b"{}")
    return out


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", required=True)
    p.add_argument("--storage", required=True)
    p.add_argument("--sink", required=True)
    p.add_argument("--counter-dir", required=True)
    p.add_argument("--access-key", required=True)
    p.add_argument("--secret-key", required=True)
    p.add_argument("--rows", type=int, default=2000)
    p.add_argument("--probe", action="store_true")
    a = p.parse_args()
    # the library logs; this job shows its INFO lines on stderr (the test reads them)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s %(message)s")
    spark = session(a.endpoint, a.access_key, a.secret_key)
    if a.probe:
        print(f"PROBE {json.dumps(probe(spark, a.storage))}", flush=True)
    out = xf.run(
        build(a.counter_dir, a.sink, "async", a.rows),
        workflow_id="on-s3",
        storage=a.storage,
        spark=spark,
    )
    print(f"RESULT {out}", flush=True)
    sink = spark.read.format("delta").load(a.sink)
    check = {
        "rows": sink.agg({"n": "sum"}).first()[0],
        "sink_commits": spark.sql(f"DESCRIBE HISTORY delta.`{a.sink}`").count(),
        "status": xf.get_status("on-s3", storage=a.storage, spark=spark).value,
        "output_rows": xf.get_output(
            "on-s3", task="orders", storage=a.storage, spark=spark
        ).count(),
    }
    print(f"CHECK {json.dumps(check)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
