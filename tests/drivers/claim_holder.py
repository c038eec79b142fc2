"""A driver process that holds a workflow's claim as if it ran on another host with a skewed
clock: no Spark, only the log (the claim, the heartbeat, a commit), so it starts in a second.

It forges its host name (``--host``) and shifts its wall clock (``--skew`` seconds) before
anything reads them, so its start record names another host and every timestamp it writes
(start, heartbeats) is off by ``--skew``. It claims a run, prints ``CLAIMED <run>``, heartbeats
every ``--interval`` seconds, and waits until the file ``--go`` exists; it then tries to commit task
``t`` and prints ``COMMITTED`` (exit 0) or ``FENCED <message>`` (exit 3, ConcurrentRunError).
A test stalls it for real with SIGSTOP (as a long GC pause would) and resumes it with SIGCONT.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--storage", required=True)
    p.add_argument("--workflow-id", required=True)
    p.add_argument("--host", required=True)
    p.add_argument("--skew", type=float, default=0.0)
    p.add_argument("--interval", type=float, default=0.5)
    p.add_argument("--go", required=True)
    a = p.parse_args()

    real_time = time.time
    time.time = lambda: real_time() + a.skew  # this process's clock only
    socket.gethostname = lambda: a.host

    import exoflow_spark as xf
    from exoflow_spark.core.records import CommitRecord, DagRecord
    from exoflow_spark.storage.store import Heartbeat, WorkflowStore

    store = WorkflowStore(a.storage, a.workflow_id)
    run = store.start_run(store.read_state(), DagRecord.from_json({"output": "t", "tasks": []}))
    with Heartbeat(store, run, interval=a.interval):
        print(f"CLAIMED {run}", flush=True)
        while not os.path.exists(a.go):
            time.sleep(0.05)
        try:
            store.commit_task("t", 0, CommitRecord.of_value(run))
        except xf.ConcurrentRunError as exc:
            print(f"FENCED {exc}", flush=True)
            return 3
    print("COMMITTED", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
