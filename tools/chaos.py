"""Randomized driver kills over every pipeline shape: `make chaos` (not in `make test`).

    .venv/bin/python tools/chaos.py [--kills 20] [--seed 7] [--shapes pipeline,stream,...]
                                    [--faults 0.3] [--kill-rate 0.75] [--per-workflow 3]

`make chaos KILLS=200 SEED=7` is the long run; tests/spark/test_chaos.py a two-kill one in CI.
A long run may be taken in parts, each with a seed of its own, and reported as one:

    .venv/bin/python tools/chaos.py --kills 50 --seed 8 --record results.jsonl   # (each part)
    .venv/bin/python tools/chaos.py --summarize results.jsonl

``--record`` appends the run's results (seed, commit, kills per phase and shape, every check)
as one JSON line; ``--summarize`` reports the recorded runs, each and summed, without running.

Runs workflows as separate driver processes and SIGKILLs them at random moments, seeded,
re-launching each workflow until it completes. The shapes, rotated per workflow (seeded):

* ``pipeline``: tests/drivers/crash_job.py, the ETL-like pipeline with a Delta sink, with a
  random ``--mode`` (true, async, auto) and ``--checkpoint-format`` (delta, parquet);
* ``sampling``: crash_job.py's nondeterministic sample, published by a sink;
* ``stream``: tests/drivers/stream_job.py, a stream over a Delta source of three epochs whose
  micro-batches append (``batch.write``) and MERGE (``batch.merge``);
* ``graph``: jobs/graph_pipeline.py, tiny (two epochs, the second with the offline part);
* ``iterate``: tests/drivers/iterate_job.py, a PageRank loop with ``xf.iterate``.

Some workflows (``--faults``, the share of pipeline and sampling workflows) get a combined
fault in their first run:

* ``executor+driver``: the driver runs on ``local-cluster[2,1,1024]``; one executor JVM is
  SIGKILLed, then the driver;
* ``storage error``: the async checkpoint write is held (``EXOFLOW_HOLD_AT``), its directory
  made immutable (``chattr +i``: EPERM even for root), then released: the write fails for
  real and the run fails; later runs resume;
* ``sink in flight``: the driver is SIGKILLed at a random moment after the sink's Delta write
  started (its first file appeared; 0-1 s later), before or after its commit: the driver
  cannot know.

Every kill's phase is read from the workflow log (or the tables) at the moment of the kill.
At the end every workflow is checked: its rows are exactly once and equal a fault-free
oracle (or the sink holds exactly the one committed sample), no task that had committed
before a kill executed again, it reads SUCCESSFUL, and running it once more (in this
process) executes nothing and writes nothing. Prints kills per phase and per shape, and
each check held or FAILED; exit 1 if any failed.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"
# the package under test, the driver programs and launcher (drivers), the oracles (tests/spark)
sys.path[:0] = [str(REPO), str(TESTS), str(TESTS / "spark")]

SHAPES = ("pipeline", "sampling", "stream", "graph", "iterate")
FAULTS = ("executor+driver", "storage error", "sink in flight")
ROWS = 20000
STREAM_EPOCHS, STREAM_ROWS = 3, 50
GRAPH_EDGES, GRAPH_EPOCHS = 500, 2
GRAPH_ARGS = ["--edges", GRAPH_EDGES, "--scale", 7, "--epochs", GRAPH_EPOCHS, "--every", 2]
GRAPH_ARGS += ["--iterations", 5, "--seed", 3, "--master", "local[2]"]
ITERATIONS, EVERY = 15, 3
CLUSTER = "local-cluster[2,1,1024]"
#: seconds of engine work a first run of each shape is assumed to take, until one is measured
GUESS = {"pipeline": 15.0, "sampling": 10.0, "stream": 20.0, "graph": 60.0, "iterate": 20.0}


@dataclass
class Workflow:
    name: str
    shape: str
    dir: Path
    mode: str = "async"
    fmt: str = "delta"
    fault: str | None = None
    kills: int = 0
    protected: dict[str, int] = field(default_factory=dict)  # committed task -> its count
    checks: list[tuple[str, bool]] = field(default_factory=list)

    @property
    def storage(self) -> str:
        return str(self.dir / "exo")

    @property
    def log(self) -> Path:
        """Every run's driver output (stdout and stderr), appended run after run."""
        return self.dir / "drivers.log"

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError as exc:
            return f"(no driver log: {exc})"

    @property
    def ids(self) -> list[str]:
        """The workflow ids this workflow stores (the graph job: one per epoch)."""
        if self.shape == "graph":
            return [f"{self.name}-e{e}" for e in range(GRAPH_EPOCHS)]
        return [self.name]

    @property
    def label(self) -> str:
        if self.shape == "pipeline":
            return f"pipeline/{self.mode}/{self.fmt}"
        return f"sampling/{self.fmt}" if self.shape == "sampling" else self.shape

    def check(self, what: str, held: bool) -> None:
        self.checks.append((what, bool(held)))


# -- driver processes ----------------------------------------------------------------------
def launch(w: Workflow, master: str | None = None, env: dict[str, str] | None = None) -> Any:
    from drivers import REPO as DRIVERS_REPO
    from drivers import start_driver

    d = w.dir
    if w.shape in ("pipeline", "sampling"):
        (d / "counters").mkdir(parents=True, exist_ok=True)
        args: list[object] = ["--storage", d / "exo", "--workflow-id", w.name, "--sink", d / "sink"]
        args += ["--counter-dir", d / "counters", "--mode", w.mode, "--rows", ROWS]
        args += ["--scenario", w.shape, "--checkpoint-format", w.fmt]
        if master:
            args += ["--master", master]
        return start_driver("crash_job.py", *args, env=env, capture=False, log=w.log)
    if w.shape == "stream":
        args = ["--storage", d / "exo", "--source", d / "source", "--out", d / "out"]
        return start_driver(
            "stream_job.py", *args, "--workflow-id", w.name, capture=False, log=w.log
        )
    if w.shape == "graph":
        args = ["--workflow-id", w.name, "--storage", d / "exo", *GRAPH_ARGS]
        return start_driver(
            DRIVERS_REPO / "jobs" / "graph_pipeline.py", *args, capture=False, log=w.log
        )
    args = ["--storage", d / "exo", "--workflow-id", w.name, "--counter", d / "counter"]
    args += ["--iterations", ITERATIONS, "--every", EVERY]
    return start_driver("iterate_job.py", *args, capture=False, log=w.log)


def runs_started(w: Workflow) -> int:
    """How many runs the workflow's log records (the engine writes one start record each)."""
    return len(list(Path(w.storage).glob("workflows/*/log/runs/*.start.json")))


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = collections.defaultdict(list)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children[int(fields[1])].append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def executor_pids(driver: int) -> list[int]:
    """The executor JVMs a local-cluster driver started (its descendant processes)."""
    out = []
    for pid in descendants(driver):
        with contextlib.suppress(OSError):
            if b"CoarseGrainedExecutorBackend" in Path(f"/proc/{pid}/cmdline").read_bytes():
                out.append(pid)
    return out


def kill_executor(pid: int) -> None:
    """SIGKILL an executor JVM found earlier, if that pid is still one."""
    with contextlib.suppress(OSError):
        if b"CoarseGrainedExecutorBackend" in Path(f"/proc/{pid}/cmdline").read_bytes():
            os.kill(pid, signal.SIGKILL)


def delta_versions(table: Path) -> int:
    return len(list((table / "_delta_log").glob("*.json"))) if table.exists() else 0


def files_under(path: Path) -> set[str]:
    return {str(p) for p in path.rglob("*")} if path.exists() else set()


def chattr(paths: list[Path], flag: str) -> None:
    for p in paths:
        subprocess.run(["chattr", flag, str(p)], check=False, capture_output=True)


# -- phases ----------------------------------------------------------------------------------
def phase(w: Workflow, counter_at_launch: int) -> str:
    from exoflow_spark.storage.store import WorkflowStore

    if w.shape == "graph":
        started = [i for i in w.ids if (Path(w.storage) / "workflows" / i).exists()]
        if not started:
            return "start-up (nothing logged)"
        epoch = len(started) - 1
        state = WorkflowStore(w.storage, started[-1]).read_state()
        if not state.exists or not state.runs:
            return f"epoch {epoch}: start-up"
        commits = set(state.commits)
        if state.status.value == "SUCCESSFUL":
            return f"epoch {epoch}: finished, next epoch not started"
        if "online" not in commits:
            return f"epoch {epoch}: streaming"
        published = sum(1 for t in commits if t.startswith("publish_"))
        return f"epoch {epoch}: offline, {published}/3 results published"

    store = WorkflowStore(w.storage, w.name)
    state = store.read_state()
    if not state.exists or state.runs[-1].start is None or state.runs[-1].start.run is None:
        return "start-up (nothing logged)"
    commits = set(state.commits)
    if w.shape == "stream":
        if "online" in commits:
            return "after the stream committed"
        batches = delta_versions(w.dir / "out" / "events")
        return f"streaming, {batches} micro-batch(es) written in all"
    if w.shape == "iterate":
        if "pagerank" in commits:
            return "after the loop committed"
        built = len(counter_lines(w)) - counter_at_launch
        return f"iterating, {built} step(s) built by this run" if built else "loop not started"
    latest = state.runs[-1].number
    if "publish" in commits:
        return "after the sink committed"
    if [e for e in store.events() if e.kind == "sink" and e.run == latest]:
        return "sink written, not committed"
    order = ["orders", "enriched", "totals"] if w.shape == "pipeline" else ["sample", "stats"]
    done = [t for t in order if t in commits]
    return f"after {'+'.join(done)} committed" if done else "running, nothing committed"


def counter_lines(w: Workflow) -> list[str]:
    path = w.dir / "counter"
    return path.read_text().split() if path.exists() else []


def counters(w: Workflow) -> dict[str, int]:
    d = w.dir / "counters"
    if w.shape == "iterate":
        return {"steps": len(counter_lines(w))}
    return {p.name: len(p.read_text().splitlines()) for p in d.iterdir()} if d.exists() else {}


def protect(w: Workflow) -> None:
    """After a run that did not finish: its committed tasks must never execute again."""
    from exoflow_spark.storage.store import WorkflowStore

    if w.shape in ("pipeline", "sampling"):
        counts = counters(w)
        for t in WorkflowStore(w.storage, w.name).read_state().commits:
            w.protected.setdefault(t, counts.get(t, 0))


# -- the run ---------------------------------------------------------------------------------
class Chaos:
    def __init__(
        self, rng: random.Random, root: Path, kills: int, kill_rate: float, per_workflow: int
    ) -> None:
        self.rng, self.root, self.target, self.kill_rate = rng, root, kills, kill_rate
        self.per_workflow = per_workflow
        self.kills = 0
        self.phases: collections.Counter[tuple[str, str]] = collections.Counter()
        self.faults: collections.Counter[str] = collections.Counter()
        self.work: dict[str, float] = dict(GUESS)  # seconds of engine work, measured
        self.startup = 15.0  # seconds from launch to the engine's first record, measured

    def record_kill(self, w: Workflow, where: str, counter_at_launch: int) -> None:
        self.kills += 1
        w.kills += 1
        self.phases[(w.shape, where)] += 1
        protect(w)
        print(f"  kill {self.kills:3d}: {w.name} ({w.label}) {where}", flush=True)

    def wait_engine(self, w: Workflow, proc: Any, before: int, limit: float) -> float | None:
        """Seconds until the engine logged a new run (None: the driver ended or limit hit)."""
        t0 = time.time()
        while proc.poll() is None and time.time() - t0 < limit:
            if runs_started(w) > before:
                return time.time() - t0
            time.sleep(0.05)
        return None

    def one_run(self, w: Workflow, first: bool) -> bool:
        """Launch ``w`` once, maybe kill it (or inject its fault); True when it completed."""
        fault = w.fault if first else None
        counter_at_launch = len(counter_lines(w))
        before = runs_started(w)
        t0 = time.time()
        if fault == "executor+driver":
            return self.executor_then_driver(w, before, counter_at_launch)
        if fault == "storage error":
            return self.storage_error(w, before)
        if fault == "sink in flight":
            return self.sink_in_flight(w, counter_at_launch)
        proc = launch(w)
        if (
            self.kills < self.target
            and w.kills < self.per_workflow
            and self.rng.random() < self.kill_rate
        ):
            if self.rng.random() < 0.1:  # in start-up, before the engine logs anything
                time.sleep(self.rng.uniform(0, self.startup))
            else:
                up = self.wait_engine(w, proc, before, 600)
                if up is not None:
                    self.startup = up
                    time.sleep(self.rng.uniform(0, 1.05) * self.work[w.shape])
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                self.record_kill(w, phase(w, counter_at_launch), counter_at_launch)
                return False
        self.wait_clean(w, proc)
        total = time.time() - t0
        # how long the engine works in this shape: a whole first run measures it; a resumed
        # run (less to do) that took longer than the estimate raises it (a loaded machine)
        took = max(1.0, total - self.startup)
        if first or took > self.work[w.shape]:
            self.work[w.shape] = took
        return True

    def executor_then_driver(self, w: Workflow, before: int, counter_at_launch: int) -> bool:
        proc = launch(w, master=CLUSTER)
        executors: list[int] = []
        try:
            if self.wait_engine(w, proc, before, 600) is None:
                return self.finish(w, proc)
            time.sleep(self.rng.uniform(0, 0.5) * self.work[w.shape])
            executors = executor_pids(proc.pid)
            if proc.poll() is not None or not executors:
                return self.finish(w, proc)
            kill_executor(executors[0])
            self.faults["executor JVM killed"] += 1
            time.sleep(self.rng.uniform(0, 0.8) * self.work[w.shape])
            if proc.poll() is not None:
                self.faults["executor killed, the run then finished"] += 1
                return self.finish(w, proc)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            self.faults["executor then driver killed"] += 1
            self.record_kill(w, phase(w, counter_at_launch), counter_at_launch)
            return False
        finally:
            time.sleep(1)
            for pid in executors:  # executors of a killed driver exit by themselves; if not
                kill_executor(pid)

    def storage_error(self, w: Workflow, before: int) -> bool:
        from exoflow_spark.storage.store import WorkflowStore

        task = "enriched" if w.shape == "pipeline" else "sample"
        hold = w.dir / "hold"
        hold.mkdir(exist_ok=True)
        proc = launch(
            w,
            env={
                "EXOFLOW_HOLD_AT": f"{task}:before-async-write",
                "EXOFLOW_HOLD_DIR": str(hold),
                "EXOFLOW_HOLD_SECONDS": "120",
            },
        )
        held = hold / f"{task}.before-async-write.held"
        while not held.exists() and proc.poll() is None:
            time.sleep(0.05)
        if proc.poll() is not None:
            return self.finish(w, proc)
        # the write will create files in the task's table (or create the table): forbid both
        ref = Path(WorkflowStore(w.storage, w.name).ref_uri(task))
        target = ref
        while not target.exists():
            target = target.parent
        frozen = [target] + ([p for p in ref.rglob("*") if p.is_dir()] if target == ref else [])
        chattr(frozen, "+i")
        try:
            (hold / f"{task}.before-async-write.go").write_text("")
            rc = proc.wait(timeout=600)
        finally:
            chattr(frozen, "-i")
        state = WorkflowStore(w.storage, w.name).read_state()
        failed = [
            e
            for e in WorkflowStore(w.storage, w.name).events()
            if e.kind == "checkpoint_failed" and e.run == state.runs[-1].number
        ]
        if rc == 0:
            self.faults["storage error: the run finished (write not hit)"] += 1
            return True
        protect(w)
        how = "failed the async write" if failed else "failed the run (a log write)"
        self.faults[f"storage error {how}"] += 1
        print(f"  fault   : {w.name} ({w.label}) storage error in [{task}]'s async write: {how}")
        return False

    def sink_in_flight(self, w: Workflow, counter_at_launch: int) -> bool:
        sink = w.dir / "sink"
        seen, versions = files_under(sink), delta_versions(sink)
        proc = launch(w)
        while proc.poll() is None:
            new = files_under(sink) - seen
            if new:
                time.sleep(self.rng.uniform(0, 1.0))
                break
            time.sleep(0.01)
        if proc.poll() is not None:
            return self.finish(w, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        outcome = "committed" if delta_versions(sink) > versions else "not committed"
        self.faults[f"sink in flight, killed: commit {outcome}"] += 1
        self.record_kill(w, f"sink commit in flight ({outcome})", counter_at_launch)
        return False

    @staticmethod
    def wait_clean(w: Workflow, proc: Any, limit: float = 900) -> None:
        """Wait for a run that was not killed; RuntimeError (with the end of its driver log)
        when it exits non-zero or is still running after ``limit`` seconds (then killed)."""
        try:
            rc = proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            rc = None
        if rc != 0:
            how = f"exited with {rc}" if rc is not None else f"still ran after {limit:.0f} s"
            raise RuntimeError(
                f"{w.name} ({w.label}): a run without a kill {how}; the end of its "
                f"driver log {w.log}:\n{w.log_tail()}"
            )

    def finish(self, w: Workflow, proc: Any) -> bool:
        self.wait_clean(w, proc)
        self.faults[f"{w.fault}: the run ended before the fault"] += 1
        return True


def prepare(spark: Any, w: Workflow) -> None:
    """The outside world a workflow reads: the stream's Delta source (one commit per epoch)."""
    if w.shape == "stream":
        from test_streaming import append_epoch

        for epoch in range(STREAM_EPOCHS):
            append_epoch(spark, str(w.dir / "source"), epoch, n=STREAM_ROWS)


# -- the checks ------------------------------------------------------------------------------
def executed_since(w: Workflow, runs_before: dict[str, int]) -> set[str]:
    """Tasks that executed in runs after ``runs_before`` (commit records and done events)."""
    from exoflow_spark.storage.store import WorkflowStore

    out = set()
    for wid in w.ids:
        store = WorkflowStore(w.storage, wid)
        n = runs_before.get(wid, 0)
        out |= {f"{wid}:{t}" for t, rec in store.read_state().commits.items() if rec.run > n}
        out |= {
            f"{wid}:{e.task}"
            for e in store.events()
            if e.kind == "task_done" and e.run is not None and e.run > n
        }
    return out


def tables(w: Workflow) -> dict[str, int]:
    """Delta versions of every table the workflow writes outside its storage."""
    if w.shape in ("pipeline", "sampling"):
        paths = [w.dir / "sink"]
    elif w.shape == "stream":
        paths = [w.dir / "out" / "events", w.dir / "out" / "per_epoch"]
    elif w.shape == "graph":
        paths = [p for p in (w.dir / "exo" / "graph" / w.name).iterdir() if p.is_dir()]
    else:
        paths = []
    return {p.name: delta_versions(p) for p in paths}


def rerun(spark: Any, w: Workflow) -> None:
    """Run the finished workflow once more, in this process: what a scheduler's retry does."""
    from drivers import crash_job, iterate_job, stream_job

    import exoflow_spark as xf

    if w.shape in ("pipeline", "sampling"):
        crash_job.run(
            spark,
            storage=w.storage,
            workflow_id=w.name,
            sink=str(w.dir / "sink"),
            counter_dir=str(w.dir / "counters"),
            mode=w.mode,
            rows=ROWS,
            scenario=w.shape,
            checkpoint_format=w.fmt,
        )
    elif w.shape == "stream":
        stream_job.run(
            spark,
            storage=w.storage,
            source=str(w.dir / "source"),
            out=str(w.dir / "out"),
            workflow_id=w.name,
            trigger="available_now",
        )
    elif w.shape == "graph":
        from drivers.jobs import load_job

        argv = ["--workflow-id", w.name, "--storage", w.storage, *map(str, GRAPH_ARGS)]
        with contextlib.redirect_stdout(io.StringIO()):
            rc = load_job("graph_pipeline").main(argv)
        if rc != 0:
            raise RuntimeError(f"{w.name}: the re-run exited {rc}")
    else:  # iterate_job.run wants the loop's report: a finished workflow runs no loop
        dag = iterate_job.build(str(w.dir / "counter"), ITERATIONS, EVERY, [])
        xf.run(dag, workflow_id=w.name, storage=w.storage, spark=spark)


def verify(spark: Any, w: Workflow, oracle: dict[str, Any]) -> None:
    import exoflow_spark as xf
    from exoflow_spark.storage.store import WorkflowStore

    def delta(path: Path) -> Any:
        return spark.read.format("delta").load(str(path))

    w.check(
        "SUCCESSFUL",
        all(xf.get_status(i, storage=w.storage) is xf.WorkflowStatus.SUCCESSFUL for i in w.ids),
    )
    if w.shape in ("pipeline", "sampling"):
        counts = counters(w)
        again = [t for t, n in w.protected.items() if counts.get(t, 0) != n]
        w.check("no committed task executed again", not again)
    if w.shape == "pipeline":
        got = sorted(tuple(r) for r in delta(w.dir / "sink").select(*PIPE_COLS).collect())
        w.check("sink rows exactly once, equal to the fault-free result", got == oracle["pipeline"])
    elif w.shape == "sampling":
        sink = delta(w.dir / "sink")
        ids = [r.id for r in sink.select("id").collect()]
        sample = sorted(
            r.id
            for r in xf.get_output(w.name, task="sample", storage=w.storage, spark=spark).collect()
        )
        once = sorted(ids) == sample and len(ids) == len(set(ids))
        w.check("sink holds exactly the committed sample, once", once)
        stats = {(r.n, r.s) for r in sink.select("n", "s").distinct().collect()}
        w.check("published statistics describe that sample", stats == {(len(ids), sum(ids))})
    elif w.shape == "stream":
        events = [r.event_id for r in delta(w.dir / "out" / "events").collect()]
        w.check(
            "every source event appended exactly once",
            sorted(events) == oracle["stream"],
        )
        per_epoch = {r.epoch: r.n for r in delta(w.dir / "out" / "per_epoch").collect()}
        w.check(
            "MERGEd per-epoch counts exact",
            per_epoch == dict.fromkeys(range(STREAM_EPOCHS), STREAM_ROWS),
        )
    elif w.shape == "graph":
        lake = w.dir / "exo" / "graph" / w.name
        events = sorted(tuple(r) for r in delta(lake / "events").select(*EDGE_COLS).collect())
        w.check("source events delivered exactly once", events == oracle["graph"])
        edges = sorted(tuple(r) for r in delta(lake / "edges").select(*EDGE_COLS).collect())
        w.check("edge table: every event exactly once", edges == oracle["graph"])
        deg: collections.Counter[tuple[int, str]] = collections.Counter()
        for _, src, dst in oracle["graph"]:
            deg[(src, "out")] += 1
            deg[(dst, "in")] += 1
        got = {r.node: (r.out_degree, r.in_degree) for r in delta(lake / "degrees").collect()}
        nodes = {n for n, _ in deg}
        want = {n: (deg[(n, "out")], deg[(n, "in")]) for n in nodes}
        w.check("MERGEd degrees exact", got == want)
        keys = [(r.epoch, r.what) for r in delta(lake / "availability").collect()]
        expect = {(e, "online") for e in range(GRAPH_EPOCHS)}
        expect |= {(GRAPH_EPOCHS - 1, x) for x in ("pagerank", "tunkrank", "components")}
        w.check("each result published exactly once", sorted(keys) == sorted(expect))
    else:
        out = xf.get_output(w.name, storage=w.storage, spark=spark)
        ranks = {int(r.node): float(r.rank) for r in out.collect()}
        want = oracle["iterate"]
        close = ranks.keys() == want.keys() and all(abs(ranks[k] - want[k]) <= 1e-9 for k in want)
        w.check("ranks equal the uninterrupted ones (1e-9)", close)
        built = {int(i) for i in counter_lines(w)}
        w.check("every iteration built", built == set(range(ITERATIONS)))

    # once more: a finished workflow executes nothing and writes nothing
    runs_before = {i: len(WorkflowStore(w.storage, i).read_state().runs) for i in w.ids}
    counts, versions = counters(w), tables(w)
    rerun(spark, w)
    w.check(
        "re-run of the finished workflow executes nothing",
        not executed_since(w, runs_before) and counters(w) == counts,
    )
    w.check("re-run writes nothing", tables(w) == versions)


PIPE_COLS = ("store", "big", "amount", "n")
EDGE_COLS = ("event_id", "src", "dst")


def oracles(spark: Any, shapes: set[str]) -> dict[str, Any]:
    """The fault-free results, computed in this process without exoflow."""
    out: dict[str, Any] = {}
    if "pipeline" in shapes:
        from test_crash import expected

        out["pipeline"] = sorted(tuple(r) for r in expected(spark).select(*PIPE_COLS).collect())
    if "stream" in shapes:
        out["stream"] = sorted(
            e * 1000 + i for e in range(STREAM_EPOCHS) for i in range(STREAM_ROWS)
        )
    if "graph" in shapes:
        from exoflow_spark import graph as xg

        events = xg.rmat_edges(
            spark, num_edges=GRAPH_EDGES, scale=7, seed=3, epochs=GRAPH_EPOCHS
        ).select(*EDGE_COLS)
        out["graph"] = sorted(tuple(r) for r in events.collect())
    if "iterate" in shapes:
        from test_iterate import python_pagerank

        out["iterate"] = python_pagerank(ITERATIONS)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated, of " + str(SHAPES))
    p.add_argument(
        "--faults",
        type=float,
        default=0.3,
        help="share of pipeline/sampling workflows whose first run gets a combined fault",
    )
    p.add_argument(
        "--fault-kinds",
        default=",".join(FAULTS),
        help="comma-separated, of " + str(FAULTS),
    )
    p.add_argument(
        "--kill-rate", type=float, default=0.75, help="chance that a run is killed (until --kills)"
    )
    p.add_argument(
        "--per-workflow",
        type=int,
        default=3,
        help="at most this many kills of one workflow (spreads the kills over the shapes)",
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument("--record", help="append this run's results, as one JSON line, to this file")
    p.add_argument(
        "--summarize",
        nargs="+",
        metavar="FILE",
        help="report the runs recorded in these files as one (no run)",
    )
    a = p.parse_args()
    if a.summarize:
        return summarize(a.summarize)
    shapes = [s for s in a.shapes.split(",") if s]
    unknown = set(shapes) - set(SHAPES)
    if unknown or not shapes:
        p.error(f"unknown shapes {sorted(unknown)}; choose from {SHAPES}")
    fault_kinds = [f for f in a.fault_kinds.split(",") if f]
    if set(fault_kinds) - set(FAULTS):
        p.error(f"unknown fault kinds {sorted(set(fault_kinds) - set(FAULTS))}; see {FAULTS}")
    started = time.time()
    rng = random.Random(a.seed)
    root = Path(tempfile.mkdtemp(prefix="exoflow-chaos-"))
    import exoflow_spark as xf

    spark = xf.create_spark_session(
        "local[2]",
        app_name="exoflow-chaos-verify",
        conf={"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "2"},
    )
    spark.sparkContext.setLogLevel("ERROR")
    print(f"chaos: seed {a.seed}, {a.kills} kills, shapes {','.join(shapes)}", flush=True)

    chaos = Chaos(rng, root, a.kills, a.kill_rate, a.per_workflow)
    order = shapes[:]
    rng.shuffle(order)
    workflows: list[Workflow] = []
    broken: Workflow | None = None
    try:
        while chaos.kills < a.kills:
            shape = order[len(workflows) % len(order)]
            w = Workflow(f"chaos-{len(workflows)}", shape, root / f"chaos-{len(workflows)}")
            w.dir.mkdir(parents=True)
            if shape == "pipeline":
                w.mode = rng.choice(["true", "async", "auto"])
            if shape in ("pipeline", "sampling"):
                w.fmt = rng.choice(["delta", "parquet"])
                if rng.random() < a.faults:
                    # the storage error needs an async write: pipeline/true has none
                    kinds = [
                        f for f in fault_kinds if not (f == "storage error" and w.mode == "true")
                    ]
                    w.fault = rng.choice(kinds) if kinds else None
            workflows.append(w)
            prepare(spark, w)
            first = True
            try:
                while not chaos.one_run(w, first):
                    first = False
            except RuntimeError as exc:  # a driver failed on its own: stop, keep the evidence
                print(f"\nFAILED: {exc}", flush=True)
                w.check("every run that was not killed exited 0", False)
                broken, a.keep = w, True
                break
        print(f"\nverifying {len(workflows)} workflows ...", flush=True)
        want = oracles(spark, {w.shape for w in workflows})
        for w in workflows:
            if w is broken:
                continue
            try:
                verify(spark, w, want)
            except Exception as exc:  # a check that cannot even run has failed
                w.check(f"verification ran ({type(exc).__name__}: {str(exc)[:300]})", False)
    finally:
        from drivers import stop_all

        stop_all()  # a driver left running by an error here
        spark.stop()
        if not a.keep:
            shutil.rmtree(root, ignore_errors=True)
    rec = summary(chaos, workflows, time.time() - started, a.seed, shapes)
    if a.record:
        with open(a.record, "a") as out:
            out.write(json.dumps(rec) + "\n")
    return report(rec, root if a.keep else None)


def summary(
    chaos: Chaos, workflows: list[Workflow], seconds: float, seed: int, shapes: list[str]
) -> dict[str, Any]:
    """One run's results as a JSON-able record (what ``--record`` appends)."""
    per_shape: collections.Counter[str] = collections.Counter()
    runs: collections.Counter[str] = collections.Counter()
    for w in workflows:
        per_shape[w.label] += w.kills
        runs[w.label] += 1
    held: collections.Counter[str] = collections.Counter()
    made: collections.Counter[str] = collections.Counter()
    failed = []
    for w in workflows:
        for what, ok in w.checks:
            held[what] += ok
            made[what] += 1
            if not ok:
                failed.append(f"{w.name} ({w.label}): {what}")
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "seed": seed,
        "shapes": shapes,
        "commit": commit or "unknown",
        "finished_at": time.strftime("%Y-%m-%d %H:%M"),
        "seconds": round(seconds),
        "kills": chaos.kills,
        "workflows": len(workflows),
        "phases": [[shape, where, n] for (shape, where), n in sorted(chaos.phases.items())],
        "kills_per_shape": {label: [per_shape[label], runs[label]] for label in sorted(runs)},
        "faults": dict(sorted(chaos.faults.items())),
        "checks": {what: [held[what], made[what]] for what in sorted(made)},
        "failed": failed,
    }


def merge(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Several runs' records as one (the kills, workflows, checks and seconds summed)."""
    phases: collections.Counter[tuple[str, str]] = collections.Counter()
    shapes: dict[str, list[int]] = {}
    faults: collections.Counter[str] = collections.Counter()
    checks: dict[str, list[int]] = {}
    for r in records:
        for shape, where, n in r["phases"]:
            phases[(shape, where)] += n
        for label, (kills, runs) in r["kills_per_shape"].items():
            k, n = shapes.get(label, [0, 0])
            shapes[label] = [k + kills, n + runs]
        faults.update(r["faults"])
        for what, (held, made) in r["checks"].items():
            h, m = checks.get(what, [0, 0])
            checks[what] = [h + held, m + made]
    return {
        "seed": ",".join(str(r["seed"]) for r in records),
        "shapes": sorted({s for r in records for s in r.get("shapes", SHAPES)}),
        "commit": ",".join(sorted({r["commit"] for r in records})),
        "finished_at": max(r["finished_at"] for r in records),
        "seconds": sum(r["seconds"] for r in records),
        "kills": sum(r["kills"] for r in records),
        "workflows": sum(r["workflows"] for r in records),
        "phases": [[shape, where, n] for (shape, where), n in sorted(phases.items())],
        "kills_per_shape": dict(sorted(shapes.items())),
        "faults": dict(sorted(faults.items())),
        "checks": dict(sorted(checks.items())),
        "failed": [f for r in records for f in r["failed"]],
    }


def report(rec: dict[str, Any], kept: Path | None = None) -> int:
    """Print a record: kills per phase and per shape, combined faults, every check."""
    print("\nkills per phase (shape: phase):")
    for shape, where, n in sorted(rec["phases"], key=lambda p: (p[0], -p[2])):
        print(f"  {n:3d}  {shape}: {where}")
    print("\nkills per shape:")
    for label, (kills, runs) in rec["kills_per_shape"].items():
        print(f"  {kills:3d}  {label} ({runs} workflow(s))")
    if rec["faults"]:
        print("\ncombined faults:")
        for what, n in rec["faults"].items():
            print(f"  {n:3d}  {what}")
    print("\nchecks (held / made):")
    for what, (held, made) in rec["checks"].items():
        print(f"  {held:3d} / {made:3d}  {what}")
    kills, seconds, failed = rec["kills"], rec["seconds"], rec["failed"]
    print(
        f"\n{rec['workflows']} workflows, {kills} driver kills, "
        f"{sum(made for _, made in rec['checks'].values())} checks in {seconds:.0f} s "
        f"({seconds / max(kills, 1):.1f} s per kill; seed {rec['seed']}, commit "
        f"{rec['commit']}): "
        + ("every check held" if not failed else f"{len(failed)} check(s) FAILED")
    )
    for f in failed:
        print(f"  FAILED: {f}")
    if kept:
        print(f"kept: {kept}")
    print(json.dumps({"kills": kills, "failed": len(failed)}))
    return 1 if failed else 0


def summarize(paths: list[str]) -> int:
    """``--summarize``: the runs recorded in ``paths`` (JSON lines) as one report."""
    records = []
    for path in paths:
        try:
            lines = Path(path).read_text().splitlines()
            records += [json.loads(line) for line in lines if line.strip()]
        except (OSError, ValueError) as exc:
            print(f"chaos: cannot read the records in {path}: {exc}", file=sys.stderr)
            return 2
    if not records:
        print(f"chaos: no records in {', '.join(paths)}", file=sys.stderr)
        return 2
    try:
        lines = [
            f"  seed {r['seed']}, shapes {','.join(r.get('shapes', SHAPES))}, commit "
            f"{r['commit']}, {r['finished_at']}: {r['kills']} kills, "
            f"{r['workflows']} workflows, {r['seconds']} s, {len(r['failed'])} failed"
            for r in records
        ]
        merged = merge(records)
    except (KeyError, TypeError, ValueError) as exc:
        print(
            f"chaos: a record in {', '.join(paths)} is not one --record writes "
            f"({type(exc).__name__}: {exc}); remove or mend that line",
            file=sys.stderr,
        )
        return 2
    print(f"chaos: {len(records)} recorded run(s)", *lines, sep="\n")
    return report(merged)


if __name__ == "__main__":
    sys.exit(main())
