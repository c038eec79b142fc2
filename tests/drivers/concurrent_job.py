"""A driver process for the concurrency and storage-fault tests.

The pipeline of ``crash_job.py`` plus a gate: with ``--gate-dir``, task ``orders`` writes
``<gate-dir>/waiting`` once it runs and then waits until ``<gate-dir>/open`` exists, so a test
can hold the driver mid-run (owning the workflow id) while it starts another driver or
kills this one. ``--enospc-after N`` makes every log write after the first N fail with
ENOSPC (a full disk, simulated for the log only). Exit codes: 0 done, 3 refused with
ConcurrentRunError, 4 StorageError.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import time

from crash_job import build

import exoflow_spark as xf
from drivers import driver_session


def fill_disk_after(n: int) -> None:
    """Fail the log's writes after the first ``n`` with ENOSPC, as a full disk would."""
    from exoflow_spark.storage import logfs as _logfs

    real_link, real_replace = _logfs.os.link, _logfs.os.replace
    count = {"n": 0}

    def link(src: str, dst: str) -> None:
        count["n"] += 1
        if count["n"] > n:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), dst)
        real_link(src, dst)

    def replace(src: str, dst: str) -> None:
        if count["n"] >= n:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), dst)
        real_replace(src, dst)

    class FullDiskOS:  # the module's `os`, with link/replace failing
        def __getattr__(self, name: str):
            return {"link": link, "replace": replace}.get(name) or getattr(os, name)

    _logfs.os = FullDiskOS()  # type: ignore[assignment]


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--storage", required=True)
    p.add_argument("--workflow-id", required=True)
    p.add_argument("--sink", required=True)
    p.add_argument("--counter-dir", required=True)
    p.add_argument("--rows", type=int, default=2000)
    p.add_argument("--gate-dir")
    p.add_argument("--enospc-after", type=int)
    a = p.parse_args()
    spark = driver_session("local[2]", "exoflow-concurrent-job")
    if a.enospc_after is not None:
        fill_disk_after(a.enospc_after)
    if a.gate_dir:
        import crash_job

        real_bump = crash_job.bump

        def gated_bump(counter_dir: str, name: str) -> None:
            real_bump(counter_dir, name)
            if name == "orders":
                open(os.path.join(a.gate_dir, "waiting"), "w").close()
                deadline = time.time() + 300
                while not os.path.exists(os.path.join(a.gate_dir, "open")):
                    if time.time() > deadline:
                        raise TimeoutError("the gate never opened")
                    time.sleep(0.05)

        crash_job.bump = gated_bump
    dag = build(a.counter_dir, a.sink, True, a.rows)
    try:
        out = xf.run(dag, workflow_id=a.workflow_id, storage=a.storage, spark=spark)
    except xf.ConcurrentRunError as exc:
        print(f"REFUSED {exc}", file=sys.stderr)
        return 3
    except xf.StorageError as exc:
        print(f"STORAGE {exc}", file=sys.stderr)
        return 4
    print(f"RESULT {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
