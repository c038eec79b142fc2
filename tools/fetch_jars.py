"""Fill the Ivy cache with every jar the test suite resolves from Maven Central (`make deps`).

    .venv/bin/python tools/fetch_jars.py

The Delta jars matching the installed delta-spark (every session, the Spark Connect server and
spark-submit) and hadoop-aws matching pyspark's Hadoop (the s3a:// test) are resolved once by
one local session, before the suite starts: test processes then only read the cache, and the
downloads are not charged to a test's timeout.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path[:0] = [str(TESTS), str(TESTS / "drivers")]


def main() -> int:
    from s3_job import HADOOP_AWS

    import exoflow_spark as xf
    from exoflow_spark.spark.session import delta_package

    started = time.monotonic()
    spark = xf.create_spark_session(
        "local[1]",
        app_name="exoflow-fetch-jars",
        conf={
            "spark.ui.enabled": "false",
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.jars.packages": HADOOP_AWS,
        },
    )
    spark.stop()
    took = time.monotonic() - started
    print(f"jars in the Ivy cache: {delta_package()}, {HADOOP_AWS} ({took:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
