"""The recovery planner as a table: (DAG, the log a crash left, strategy, throughput) -> plan.

No Spark. Each row builds its DAG with ``@xf.task`` / ``.bind``, writes the workflow log the
crash left as JSON files under a temporary storage root, laid out and filled in as
storage/store.py and engine/runtime.py write them (run start and end records, commit records
with their checkpoint entry, invalidations, ``task_done`` events of outputs not kept), reads it
back with ``WorkflowStore.read_state()`` and plans from the logged DAG, as a resumed run,
``xf.explain`` and gc do. The rows thus describe on-disk states and do not depend on the
in-memory types of the log.

Expected actions are written ``task=action`` (``rollback`` for "roll back") for every task in
DAG order; ``runs`` is the plan's run order (runs, replays of lost outputs, roll-backs).
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import exoflow_spark as xf
from exoflow_spark.core.dag import Dag
from exoflow_spark.engine.cost import Throughput
from exoflow_spark.engine.planner import RecoveryPlan, Strategy, plan, report_missing
from exoflow_spark.errors import ExoflowError
from exoflow_spark.storage.logfs import LocalLogFS
from exoflow_spark.storage.store import WorkflowStore

WF = "wf"
MB = 1_000_000
T0 = 1_796_000_000.0  # log timestamps (never read by the planner)

# -- DAGs ------------------------------------------------------------------------------------
SYNC: dict[str, Any] = {"checkpoint": True}
ASYNC: dict[str, Any] = {"checkpoint": "async"}
LAZY: dict[str, Any] = {"checkpoint": False}
ND_SYNC: dict[str, Any] = {"checkpoint": True, "deterministic": False}
ND_ASYNC: dict[str, Any] = {"checkpoint": "async", "deterministic": False}
ND_LAZY: dict[str, Any] = {"checkpoint": False, "deterministic": False}
SINK: dict[str, Any] = {"sink": True}
STREAM: dict[str, Any] = {"streaming": True}


def _step(*inputs: Any) -> Any:  # never called: the planner only reads the DAG's record
    return inputs


def dag(shape: str, **opts: dict[str, Any]) -> dict[str, Any]:
    """The logged record of a DAG given as ``"a b<a c<a d<b,c"``: tasks upstream first, each
    with its inputs after ``<``; the last task is the output. ``opts`` are task options."""
    nodes: dict[str, xf.Node] = {}
    tid = ""
    for item in shape.split():
        tid, _, inputs = item.partition("<")
        o = dict(opts.get(tid, {}))
        if o.pop("streaming", False):
            t: xf.Task[Any] = xf.streaming_task(name=tid, **o)(_step)
        else:
            t = xf.task(name=tid, **o)(_step)
        nodes[tid] = t.bind(*(nodes[i] for i in inputs.split(",") if i))
    return Dag(nodes[tid]).to_record()


def chain(mode: dict[str, Any]) -> dict[str, Any]:
    return dag("a b<a c<b d<c", a=mode, b=mode, c=mode, d=mode)


CHAIN_SYNC, CHAIN_ASYNC, CHAIN_LAZY = chain(SYNC), chain(ASYNC), chain(LAZY)
CHAIN3 = dag("a b<a c<b", a=SYNC, b=SYNC, c=SYNC)
DIAMOND = dag("a b<a c<a d<b,c", a=SYNC, b=SYNC, c=SYNC, d=SYNC)
DIAMOND_LAZY_A = dag("a b<a c<a d<b,c", b=SYNC, c=SYNC, d=SYNC)
FORK = dag("a b<a c<b e<b d<c,e", a=SYNC, b=SYNC, c=SYNC, e=SYNC, d=SYNC)


# -- the log a crash left ---------------------------------------------------------------------
class Log:
    """Writes workflow log records where and as the store writes them."""

    def __init__(self, root: Path, graph: dict[str, Any]) -> None:
        self.fs = LocalLogFS(str(root))
        self.root = str(root)
        self.graph = graph
        self.fingerprints = {t["id"]: t["fingerprint"] for t in graph["tasks"]}
        self.events = 0
        self.clock = T0

    def put(self, rel: str, record: dict[str, Any]) -> None:
        self.clock += 1.0
        data = json.dumps(record, sort_keys=True).encode()
        assert self.fs.put_if_absent(f"workflows/{WF}/log/{rel}", data, durable=False), rel

    def start(self, run: int, invalidate: list[str]) -> None:
        self.put(
            f"runs/{run:06d}.start.json",
            {
                "dag": self.graph,
                "invalidate": invalidate,
                "launch": {"argv": ["job.py"], "cwd": "/", "python": "python"},
                "owner": {"host": "crashed-host", "pid": 4242, "pid_start": "1"},
                "run": run,
                "started_at": self.clock,
            },
        )

    def common(
        self, task: str, run: int, compute: float, observed: list[str], sink: bool
    ) -> dict[str, Any]:
        return {
            "attempts": 1,
            "compute_seconds": compute,
            "fingerprint": self.fingerprints[task],
            "observed_volatile": sorted(observed),
            "output_at": self.clock,
            "run": run,
            "sink": sink,
            "started_at": self.clock - compute,
        }

    def commit(self, task: str, gen: int, record: dict[str, Any]) -> None:
        full = {**record, "task": task, "generation": gen, "committed_at": self.clock}
        self.put(f"tasks/{task}/g{gen}.commit.json", full)


Entry = Callable[[Log], None]


def checkpointed(
    mode: str,
    task: str,
    *,
    mb: float = 1,
    compute: float = 1.0,
    write: float = 0.5,
    observed: list[str] | None = None,
    sink: bool = False,
    run: int = 1,
    gen: int = 0,
) -> Entry:
    """A committed DataFrame checkpoint (runtime's ``_delta_record``): ``mb`` megabytes,
    ``compute`` logged seconds to compute it, ``write`` seconds its write took."""

    def write_it(log: Log) -> None:
        record = {
            "kind": "dataframe",
            "mode": mode,
            "delta": {
                "path": f"{log.root}/workflows/{WF}/refs/{task}",
                "version": gen,
                "bytes": int(mb * MB),
                "rows": 1000,
                "write_seconds": write,
                "files": [f"part-00000-{task}-c000.snappy.parquet"],
                "schema": '{"fields":[{"metadata":{},"name":"id","nullable":false,'
                '"type":"long"}],"type":"struct"}',
            },
        }
        log.commit(task, gen, {**record, **log.common(task, run, compute, observed or [], sink)})

    return write_it


def sync(task: str, **kw: Any) -> Entry:
    return checkpointed("sync", task, **kw)


def asyn(task: str, **kw: Any) -> Entry:
    return checkpointed("async", task, **kw)


def stream(task: str, **kw: Any) -> Entry:
    return checkpointed("stream", task, **kw)


def value(
    task: str,
    v: Any = 42,
    *,
    compute: float = 1.0,
    sink: bool = False,
    observed: list[str] | None = None,
) -> Entry:
    """A committed JSON value (or ``None``: kind ``none``), kept in the record itself."""

    def write_it(log: Log) -> None:
        record = {"kind": "none"} if v is None else {"kind": "value", "value": v}
        log.commit(task, 0, {**record, **log.common(task, 1, compute, observed or [], sink)})

    return write_it


def lazy(task: str, observed: list[str] | None = None, run: int = 1) -> Entry:
    """A ``checkpoint=False`` task completed: a ``task_done`` event, no commit."""

    def write_it(log: Log) -> None:
        log.events += 1
        rec = {"kind": "task_done", "task": task, "backing": "plan", "at": log.clock}
        rec.update(log.common(task, run, 1.0, observed or [], False))
        log.put(f"events/{run:06d}-{log.events:06d}.task_done.json", rec)

    return write_it


def ended(status: str, run: int = 1) -> Entry:
    def write_it(log: Log) -> None:
        error = None if status == "SUCCESSFUL" else "TaskFailedError: boom"
        log.put(f"runs/{run:06d}.end.json", {"status": status, "error": error, "ended_at": 0.0})

    return write_it


def started(run: int, invalidate: list[str] | None = None) -> Entry:
    """Run ``run`` began (run 1 always begins the log), with ``xf.run(invalidate=...)``."""
    return lambda log: log.start(run, invalidate or [])


def invalidated(task: str, gen: int = 0, run: int = 2) -> Entry:
    def write_it(log: Log) -> None:
        rec = {"task": task, "generation": gen, "run": run, "at": log.clock}
        log.put(f"tasks/{task}/g{gen}.invalidated.json", rec)

    return write_it


def torn(task: str) -> Entry:
    """A commit record cut short (written by something other than the store)."""
    return lambda log: log.fs.put(f"workflows/{WF}/log/tasks/{task}/g0.commit.json", b'{"ki')


# -- rows ----------------------------------------------------------------------------------------
#: read 100 MB/s and write 100 MB/s, no fixed cost: restoring N MB costs N/100 s
TP = Throughput(read_bps=100 * MB, write_bps=100 * MB, read_fixed_s=0.0, write_fixed_s=0.0)
#: 100x faster reads: restoring N MB costs N/10000 s
FAST = Throughput(read_bps=10_000 * MB, write_bps=100 * MB, read_fixed_s=0.0, write_fixed_s=0.0)
#: an object store with 5 s per read: small checkpoints are dear to restore
SLOW_OPEN = Throughput(read_bps=100 * MB, write_bps=100 * MB, read_fixed_s=5.0, write_fixed_s=0.0)


@dataclass
class Row:
    name: str
    graph: dict[str, Any]
    log: list[Entry]
    expect: str  # "a=skip b=restore ..." for every task; "" when an error is expected
    runs: str = ""  # the run order
    strategy: Strategy = "restore"
    tp: Throughput | None = None
    missing: str = ""  # tasks whose record is missing (plan.missing)
    error: str = ""  # a substring of the ExoflowError reading the log or planning raises
    why: tuple[str, str] = ("", "")  # (task, a substring of its decision's reason)


# fmt: off
ROWS = [
    # -- a chain a -> b -> c -> d (d the output), every task with one checkpoint mode --------
    Row("sync: nothing committed", CHAIN_SYNC, [], "a=run b=run c=run d=run", "a b c d"),
    Row("sync: crash after a", CHAIN_SYNC, [sync("a")], "a=restore b=run c=run d=run", "b c d"),
    Row("sync: crash after b", CHAIN_SYNC, [sync("a"), sync("b")], "a=skip b=restore c=run d=run", "c d"),  # noqa: E501
    Row("sync: crash after c", CHAIN_SYNC, [sync("a"), sync("b"), sync("c")], "a=skip b=skip c=restore d=run", "d"),  # noqa: E501
    Row("sync: crash after d (no end record)", CHAIN_SYNC, [sync("a"), sync("b"), sync("c"), sync("d")], "a=skip b=skip c=skip d=skip"),  # noqa: E501
    Row("async committed: nothing committed", CHAIN_ASYNC, [], "a=run b=run c=run d=run", "a b c d"),  # noqa: E501
    Row("async committed: crash after a", CHAIN_ASYNC, [asyn("a")], "a=restore b=run c=run d=run", "b c d"),  # noqa: E501
    Row("async committed: crash after b", CHAIN_ASYNC, [asyn("a"), asyn("b")], "a=skip b=restore c=run d=run", "c d"),  # noqa: E501
    Row("async committed: crash after c", CHAIN_ASYNC, [asyn("a"), asyn("b"), asyn("c")], "a=skip b=skip c=restore d=run", "d"),  # noqa: E501
    Row("async committed: crash after d", CHAIN_ASYNC, [asyn("a"), asyn("b"), asyn("c"), asyn("d")], "a=skip b=skip c=skip d=skip"),  # noqa: E501
    Row("async not yet committed: crash after a", CHAIN_ASYNC, [], "a=run b=run c=run d=run", "a b c d"),  # noqa: E501
    Row("async not yet committed: crash after b (a's write done)", CHAIN_ASYNC, [asyn("a")], "a=restore b=run c=run d=run", "b c d"),  # noqa: E501
    Row("async not yet committed: crash after c (a, b done)", CHAIN_ASYNC, [asyn("a"), asyn("b")], "a=skip b=restore c=run d=run", "c d"),  # noqa: E501
    Row("async not yet committed: crash after d (a, b, c done)", CHAIN_ASYNC, [asyn("a"), asyn("b"), asyn("c")], "a=skip b=skip c=restore d=run", "d"),  # noqa: E501
    Row("async: c's write committed before b's slower one", CHAIN_ASYNC, [asyn("a"), asyn("c")], "a=skip b=skip c=restore d=run", "d"),  # noqa: E501
    Row("lazy: nothing completed", CHAIN_LAZY, [], "a=run b=run c=run d=run", "a b c d"),
    Row("lazy: crash after a", CHAIN_LAZY, [lazy("a")], "a=replay b=run c=run d=run", "a b c d"),
    Row("lazy: crash after b", CHAIN_LAZY, [lazy("a"), lazy("b")], "a=replay b=replay c=run d=run", "a b c d"),  # noqa: E501
    Row("lazy: crash after c", CHAIN_LAZY, [lazy("a"), lazy("b"), lazy("c")], "a=replay b=replay c=replay d=run", "a b c d"),  # noqa: E501
    Row("lazy: crash after d (the output commits)", CHAIN_LAZY, [lazy("a"), lazy("b"), lazy("c"), sync("d")], "a=skip b=skip c=skip d=skip"),  # noqa: E501
    # -- nondeterministic outputs that were never durable, and their observers ---------------
    Row("observer of a lost async nondeterministic output rolls back", dag("a b<a c<b", a=ND_ASYNC, b=SYNC, c=SYNC), [sync("b", observed=["a"])], "a=run b=rollback c=run", "a b c", why=("b", "observed [a] before it was durable")),  # noqa: E501
    Row("the async write committed after b read it: nothing rolls back", dag("a b<a c<b", a=ND_ASYNC, b=SYNC, c=SYNC), [sync("b", observed=["a"]), asyn("a")], "a=skip b=restore c=run", "c"),  # noqa: E501
    Row("lazy nondeterministic a: its observer and all below roll back", dag("a b<a c<b d<c", a=ND_LAZY, b=SYNC, c=SYNC, d=SYNC), [lazy("a"), sync("b", observed=["a"]), sync("c")], "a=replay b=rollback c=rollback d=run", "a b c d", why=("c", "an upstream commit was rolled back")),  # noqa: E501
    Row("rolled-back nondeterministic b takes its observer c along", dag("a b<a c<b d<c", a=ND_ASYNC, b=ND_ASYNC, c=SYNC, d=SYNC), [asyn("b", observed=["a"]), sync("c", observed=["a", "b"])], "a=run b=rollback c=rollback d=run", "a b c d"),  # noqa: E501
    Row("diamond: both observers of a lost nondeterministic a roll back", dag("a b<a c<a d<b,c", a=ND_ASYNC, b=SYNC, c=SYNC, d=SYNC), [sync("b", observed=["a"]), sync("c", observed=["a"])], "a=run b=rollback c=rollback d=run", "a b c d"),  # noqa: E501
    Row("a sink that observed a lost output cannot be rolled back", dag("a s<a", a=ND_ASYNC, s=SINK), [value("s", None, sink=True, observed=["a"])], "", error="already wrote to a sink"),  # noqa: E501
    # -- nondeterministic outputs that are durable: always restored -----------------------------
    Row("nondeterministic b restored though replay is cheaper", dag("a b<a c<b", a=SYNC, b=ND_SYNC, c=SYNC), [sync("a"), sync("b", mb=5000, compute=2)], "a=skip b=restore c=run", "c", "cost", TP, why=("b", "nondeterministic: always restored")),  # noqa: E501
    Row("nondeterministic streaming source restored", dag("s b<s", s={**STREAM, "deterministic": False}, b=SYNC), [stream("s", mb=5000, compute=0.1)], "s=restore b=run", "b", "cost", TP),  # noqa: E501
    # -- sinks: once committed, never executed again ---------------------------------------------
    Row("committed sink restored from its record, not re-run", dag("a s<a d<a,s", a=SYNC, s=SINK, d=SYNC), [sync("a"), value("s", None, sink=True)], "a=restore s=restore d=run", "d", why=("s", "none logged with its commit")),  # noqa: E501
    Row("committed sink with a big output: restored even when replay is cheaper", dag("a s<a d<s", a=SYNC, s={**SINK, **SYNC}, d=SYNC), [sync("a"), sync("s", mb=5000, compute=0.1, sink=True)], "a=skip s=restore d=run", "d", "cost", TP),  # noqa: E501
    Row("declared sink that wrote nothing yet committed: restored, not replayed", dag("a s<a d<s", a=SYNC, s={**SINK, **SYNC}, d=SYNC), [sync("a"), sync("s", mb=5000, compute=0.1, sink=False)], "a=skip s=restore d=run", "d", "cost", TP),  # noqa: E501
    Row("undeclared sink (a helper wrote) logged sink=True: restored, not replayed", dag("a s<a d<s", a=SYNC, s=SYNC, d=SYNC), [sync("a"), sync("s", mb=5000, compute=0.1, sink=True)], "a=skip s=restore d=run", "d", "cost", TP),  # noqa: E501
    Row("deterministic streaming task restored: a re-run reads newer input", dag("s b<s", s=STREAM, b=SYNC), [stream("s", mb=5000, compute=0.1)], "s=restore b=run", "b", "cost", TP),  # noqa: E501
    # -- a diamond a -> (b, c) -> d ----------------------------------------------------------------
    Row("diamond: branch b committed, c not", DIAMOND, [sync("a"), sync("b")], "a=restore b=restore c=run d=run", "c d"),  # noqa: E501
    Row("diamond: both branches committed", DIAMOND, [sync("a"), sync("b"), sync("c")], "a=skip b=restore c=restore d=run", "d"),  # noqa: E501
    Row("diamond: lazy a replayed for branch c", DIAMOND_LAZY_A, [lazy("a"), sync("b")], "a=replay b=restore c=run d=run", "a c d"),  # noqa: E501
    Row("diamond: lazy a not needed once both branches committed", DIAMOND_LAZY_A, [lazy("a"), sync("b"), sync("c")], "a=skip b=restore c=restore d=run", "d"),  # noqa: E501
    Row("diamond, cost: a 5 GB b replayed from a, which c reads anyway", DIAMOND, [sync("a"), sync("b", mb=5000, compute=2)], "a=restore b=replay c=run d=run", "c d", "cost", TP),  # noqa: E501
    # -- wait_until_committed --------------------------------------------------------------------
    Row("d waits for b, whose async write never committed: b runs", dag("a b<a c<b d<c", a=SYNC, b=ASYNC, c=SYNC, d={"wait_until_committed": ["b"]}), [sync("a"), sync("c")], "a=restore b=run c=restore d=run", "b d"),  # noqa: E501
    Row("the same crash without the wait: b is not needed", dag("a b<a c<b d<c", a=SYNC, b=ASYNC, c=SYNC, d=SYNC), [sync("a"), sync("c")], "a=skip b=skip c=restore d=run", "d"),  # noqa: E501
    # -- xf.run(invalidate=[...]) --------------------------------------------------------------
    Row("invalidate=[b]: b and below run again", CHAIN_SYNC, [sync("a"), sync("b"), sync("c"), ended("FAILED"), started(2, ["b", "c", "d"]), invalidated("b"), invalidated("c")], "a=restore b=run c=run d=run", "b c d"),  # noqa: E501
    Row("invalidate=[b]: b committed again (g1), then a crash", CHAIN_SYNC, [sync("a"), sync("b"), sync("c"), ended("FAILED"), started(2, ["b", "c", "d"]), invalidated("b"), invalidated("c"), sync("b", gen=1, run=2)], "a=skip b=restore c=run d=run", "c d"),  # noqa: E501
    Row("invalidate=[b]: crash between invalidating b and c", CHAIN_SYNC, [sync("a"), sync("b"), sync("c"), ended("FAILED"), started(2, ["b", "c", "d"]), invalidated("b")], "a=skip b=skip c=restore d=run", "d"),  # noqa: E501
    Row("invalidate=[c] after success", CHAIN_SYNC, [sync("a"), sync("b"), sync("c"), sync("d"), ended("SUCCESSFUL"), started(2, ["c", "d"]), invalidated("c"), invalidated("d")], "a=skip b=restore c=run d=run", "c d"),  # noqa: E501
    # -- the "cost" strategy: replay a committed output when that is cheaper --------------------
    Row("cost: 5 GB b, 2 s to recompute: replayed", CHAIN3, [sync("a"), sync("b", mb=5000, compute=2)], "a=restore b=replay c=run", "c", "cost", TP, why=("b", "cheaper than restore (2.01 s vs 50.00 s)")),  # noqa: E501
    Row("restore strategy: the same b is restored", CHAIN3, [sync("a"), sync("b", mb=5000, compute=2)], "a=skip b=restore c=run", "c", "restore", TP),  # noqa: E501
    Row("cost: the same b on 100x faster storage is restored", CHAIN3, [sync("a"), sync("b", mb=5000, compute=2)], "a=skip b=restore c=run", "c", "cost", FAST, why=("b", "cheaper than replay (0.50 s vs 2.00 s)")),  # noqa: E501
    Row("cost: 100 MB b, 30 s to recompute: restored", CHAIN3, [sync("a"), sync("b", mb=100, compute=30)], "a=skip b=restore c=run", "c", "cost", TP),  # noqa: E501
    Row("cost: 1 GB b whose logged time was 40 s writing 10 s: restored", CHAIN3, [sync("a"), sync("b", mb=1000, compute=0.1, write=40)], "a=skip b=restore c=run", "c", "cost", TP),  # noqa: E501
    Row("cost: 1 GB b whose logged time was 12 s writing 10 s: replayed", CHAIN3, [sync("a"), sync("b", mb=1000, compute=0.1, write=12)], "a=restore b=replay c=run", "c", "cost", TP),  # noqa: E501
    Row("cost: replays chain through b and c", CHAIN_SYNC, [sync("a"), sync("b", mb=5000, compute=2), sync("c", mb=5000, compute=3)], "a=restore b=replay c=replay d=run", "d", "cost", TP),  # noqa: E501
    Row("cost: 5 s per read makes even the source a cheaper to replay", CHAIN3, [sync("a", compute=0.5), sync("b", compute=1)], "a=replay b=replay c=run", "c", "cost", SLOW_OPEN),  # noqa: E501
    Row("cost: no replay without every input committed", dag("a b<a c<b", a=ASYNC, b=SYNC, c=SYNC), [sync("b", mb=5000, compute=2)], "a=skip b=restore c=run", "c", "cost", TP),  # noqa: E501
    Row("cost: a logged value costs nothing to restore", dag("a b<a c<b", a=SYNC, c=SYNC), [sync("a"), value("b", compute=60)], "a=skip b=restore c=run", "c", "cost", TP),  # noqa: E501
    Row("cost: c replayed from a logged value b, which costs nothing to read", dag("a b<a c<b d<c", a=SYNC, c=SYNC, d=SYNC), [sync("a"), value("b"), sync("c", mb=5000, compute=2)], "a=skip b=restore c=replay d=run", "d", "cost", TP, why=("b", "value logged with its commit")),  # noqa: E501
    Row("cost: a committed output is never replayed", CHAIN3, [sync("a"), sync("b"), sync("c", mb=5000, compute=0.1)], "a=skip b=skip c=skip", "", "cost", TP),  # noqa: E501
    # -- commit records gone from the log (a damaged log) ------------------------------------------
    Row("b's record gone though c committed after reading it (b not needed)", CHAIN_SYNC, [sync("a"), sync("c")], "a=skip b=skip c=restore d=run", "d", missing="b"),  # noqa: E501
    Row("b's record gone and branch e needs b: b runs again", FORK, [sync("a"), sync("c")], "a=restore b=run c=restore e=run d=run", "b e d", missing="b", why=("b", "[c] committed after reading it")),  # noqa: E501
    Row("a nondeterministic b's record gone: refused", dag("a b<a c<b d<c", a=SYNC, b=ND_SYNC, c=SYNC, d=SYNC), [sync("a"), sync("c")], "", error="log/tasks/b/g0.commit.json) is missing from the log"),  # noqa: E501
    Row("run ended SUCCESSFUL but the output's record is gone", CHAIN_SYNC, [sync("a"), sync("b"), sync("c"), ended("SUCCESSFUL")], "a=skip b=skip c=restore d=run", "d", missing="d", why=("d", "run 1 ended SUCCESSFUL")),  # noqa: E501
    Row("run ended FAILED without the output: nothing missing", CHAIN_SYNC, [sync("a"), sync("b"), sync("c"), ended("FAILED")], "a=skip b=skip c=restore d=run", "d"),  # noqa: E501
    Row("the output invalidated, then its g1 record gone: not flagged", CHAIN_SYNC, [sync("a"), sync("b"), sync("c"), sync("d"), ended("SUCCESSFUL"), started(2, ["d"]), invalidated("d"), ended("SUCCESSFUL", run=2)], "a=skip b=skip c=restore d=run", "d"),  # noqa: E501
    Row("a torn commit record stops the read with what to do", CHAIN_SYNC, [sync("a"), torn("b")], "", error="Move it aside"),  # noqa: E501
]
# fmt: on


def plan_from_disk(row: Row, root: Path) -> RecoveryPlan:
    """Write the row's log, read it back as a resumed run does, and plan."""
    log = Log(root, row.graph)
    log.start(1, [])
    for entry in row.log:
        entry(log)
    store = WorkflowStore(str(root), WF)
    state = store.read_state()
    graph = state.runs[-1].start.dag  # the logged DAG, as explain and gc plan from it
    return plan(graph, state, done=store.done_tasks(), strategy=row.strategy, throughput=row.tp)


def actions(p: RecoveryPlan) -> str:
    return " ".join(f"{d.task}={d.action.replace(' ', '')}" for d in p.decisions)


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_plan(row: Row, tmp_path: Path) -> None:
    if row.error:
        with pytest.raises(ExoflowError, match=re.escape(row.error)):
            plan_from_disk(row, tmp_path)
        return
    p = plan_from_disk(row, tmp_path)
    assert actions(p) == row.expect
    assert p.run_order == row.runs.split()
    assert sorted(p.missing) == row.missing.split()
    # the summary lists agree with the decisions
    assert p.rolled_back == p.actions("roll back")
    assert p.replay_committed == [
        d.task for d in p.decisions if d.action == "replay" and d.state == "committed"
    ]
    assert set(p.actions("run")) | set(p.rolled_back) <= set(p.run_order)
    task, why = row.why
    if task:
        assert why in p.decision(task).reason


def test_plan_is_a_function_of_its_arguments(tmp_path: Path) -> None:
    """Planning twice from one log gives the same plan and changes nothing it was given."""
    row = next(r for r in ROWS if r.name.startswith("lazy nondeterministic a"))
    first = plan_from_disk(row, tmp_path / "1")
    state = WorkflowStore(str(tmp_path / "1"), WF).read_state()

    def logged() -> str:
        commits = {t: c.to_json() for t, c in state.commits.items()}
        return json.dumps([commits, state.generations], sort_keys=True)

    before = logged()
    graph = state.runs[-1].start.dag
    assert graph is not None
    before_graph = json.dumps(graph.to_json(), sort_keys=True)
    again = plan(graph, state, done={"a"}, strategy="restore", throughput=None)
    assert (again.decisions, again.run_order, again.rolled_back) == (
        first.decisions,
        first.run_order,
        first.rolled_back,
    )
    assert logged() == before
    assert json.dumps(graph.to_json(), sort_keys=True) == before_graph


def test_plan_logs_nothing_and_the_caller_reports_missing_records(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    row = next(r for r in ROWS if r.name.startswith("b's record gone and branch e"))
    caplog.set_level(logging.DEBUG)
    p = plan_from_disk(row, tmp_path)
    assert caplog.records == []
    report_missing(p, WorkflowStore(str(tmp_path), WF).read_state(), logging.getLogger("caller"))
    [warning] = caplog.records
    assert (warning.name, warning.levelno) == ("caller", logging.WARNING)
    assert "[wf] [b] commit record g0 is missing from the log ([c] committed after" in (
        warning.getMessage()
    )


def test_pyspark_is_never_imported() -> None:
    """Building DAGs, reading a local log and planning need no Spark (pyspark not loaded).

    Runs after the rows. If pyspark is loaded now, another test module of the session (or a
    row) loaded it: the rows are then planned again in a fresh interpreter, which must not."""
    if "pyspark" not in sys.modules:
        return  # nothing in this session imported it, these rows included
    code = (
        "import sys, tempfile, pathlib, test_planner as t\n"
        "for i, row in enumerate(t.ROWS):\n"
        "    if not row.error:\n"
        "        t.plan_from_disk(row, pathlib.Path(tempfile.mkdtemp()) / str(i))\n"
        "assert 'pyspark' not in sys.modules, 'pyspark was imported'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
