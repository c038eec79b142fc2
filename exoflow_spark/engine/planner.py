"""The recovery planner: what the remaining work needs, and how each piece is obtained.

It works on the logged form of a DAG (``Dag.to_record()``), so the same code plans a run and
explains a workflow from its log alone. For every task it decides one action:

* ``skip``: committed and nothing that still has to run reads it;
* ``restore``: committed; a task that runs reads its Delta version (or logged value);
* ``replay``: its output is not kept (``checkpoint=False``) or, with the ``"cost"`` strategy,
  recomputing it from its inputs is estimated cheaper than reading its checkpoint;
* ``run``: never completed (or failed): runs now;
* ``roll back``: committed, but it observed a nondeterministic output that was never made
  durable and will be recomputed; its commit is discarded and it runs again.

Estimates: restoring costs the checkpoint's bytes over the measured read throughput of the
storage; replaying a checkpointed task costs its logged materialisation time minus the time
its bytes took to write, plus obtaining its inputs. Throughput is measured once per storage
root (:func:`measure_throughput`) and kept in ``<root>/_exoflow/throughput.json``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ..core.fmt import human_bytes as _human
from ..core.records import CommitRecord, DagRecord
from ..errors import RecoveryError
from ..storage.store import WorkflowState
from .cost import Throughput

Action = Literal["skip", "restore", "replay", "run", "roll back"]
Strategy = Literal["restore", "cost"]


@dataclass(frozen=True)
class Decision:
    """What recovery does with one task, why, and the estimates it compared."""

    task: str
    state: str
    action: Action
    reason: str
    restore_s: float | None = None
    replay_s: float | None = None


@dataclass
class RecoveryPlan:
    """The plan for one workflow: a decision per task, in DAG order."""

    workflow_id: str
    decisions: list[Decision]
    strategy: Strategy
    throughput: Throughput = field(default_factory=Throughput)
    #: tasks to execute now, upstream first (runs, replays of lost outputs, roll-backs)
    run_order: list[str] = field(default_factory=list)
    #: committed tasks re-derived from their inputs instead of read (no new commit)
    replay_committed: list[str] = field(default_factory=list)
    #: committed tasks whose commits are discarded before running
    rolled_back: list[str] = field(default_factory=list)
    #: deterministic tasks whose commit record is gone from the log, with the evidence (see
    #: :func:`missing_commits`); they run again if needed. The caller reports them: planning
    #: itself logs nothing
    missing: dict[str, str] = field(default_factory=dict)
    #: ``checkpoint="auto"`` tasks: what the next run would decide for each before running it
    #: (``task``, ``action``, ``source``, ``reason``) and what the last run decided
    #: (``last``); filled by :func:`exoflow_spark.explain`, empty from :func:`plan`
    auto: list[dict[str, Any]] = field(default_factory=list)

    def actions(self, action: Action) -> list[str]:
        """Task ids given ``action``."""
        return [d.task for d in self.decisions if d.action == action]

    def decision(self, task: str) -> Decision:
        """The decision for ``task``."""
        for d in self.decisions:
            if d.task == task:
                return d
        raise KeyError(task)

    def to_records(self) -> list[dict[str, Any]]:
        """JSON-able decisions (as logged in the workflow log)."""
        return [asdict(d) for d in self.decisions]

    def __str__(self) -> str:
        def est(v: float | None) -> str:
            return "-" if v is None else f"{v:.2f} s"

        width = max([len(d.task) for d in self.decisions] + [4])
        lines = [
            f"workflow {self.workflow_id} (strategy: {self.strategy}; throughput "
            f"{'measured' if self.throughput.measured else 'assumed'}: read "
            f"{self.throughput.read_bps / 1e6:.0f} MB/s)",
            f"{'task':{width}}  {'state':11} {'action':9} {'restore':>9} {'replay':>9}  why",
        ]
        for d in self.decisions:
            lines.append(
                f"{d.task:{width}}  {d.state:11} {d.action:9} {est(d.restore_s):>9} "
                f"{est(d.replay_s):>9}  {d.reason}"
            )
        if self.auto:
            lines.append("")
            lines.append("checkpoint='auto' (next run, decided before running / last run):")
            for a in self.auto:
                last = a.get("last")
                lines.append(
                    f"{a['task']:{width}}  {a['action']:8} [{a['source']}] {a['reason']}"
                    + (f"; last run: {last}" if last else "")
                )
        return "\n".join(lines)

    def _repr_html_(self) -> str:  # notebooks
        rows = "".join(
            f"<tr><td>{d.task}</td><td>{d.state}</td><td><b>{d.action}</b></td>"
            f"<td>{'' if d.restore_s is None else f'{d.restore_s:.2f} s'}</td>"
            f"<td>{'' if d.replay_s is None else f'{d.replay_s:.2f} s'}</td>"
            f"<td>{d.reason}</td></tr>"
            for d in self.decisions
        )
        return (
            "<table><tr><th>task</th><th>state</th><th>action</th><th>restore</th>"
            f"<th>replay</th><th>why</th></tr>{rows}</table>"
        )


def _restore_estimate(rec: CommitRecord, tp: Throughput) -> float:
    if rec.checkpoint is None:
        return 0.0  # values and None live in the commit record itself
    return tp.read_fixed_s + rec.checkpoint.bytes / tp.read_bps


def _own_compute_estimate(rec: CommitRecord, tp: Throughput) -> float:
    """Seconds to recompute a task's output from its inputs, from its logged commit."""
    d = rec.checkpoint
    if d is None:
        return rec.compute_seconds
    written = d.write_seconds - tp.write_fixed_s - d.bytes / tp.write_bps
    return max(written, rec.compute_seconds, 0.0)


def rollbacks(
    graph: DagRecord | Mapping[str, Any], commits: Mapping[str, CommitRecord]
) -> list[str]:
    """Committed tasks that must be rolled back, in DAG order.

    A commit that observed a nondeterministic output which is not durable now (its async
    checkpoint never committed) is stale: the output will be recomputed and may differ. So
    is every commit downstream of a rolled-back task. Sinks never appear: they wait until
    every nondeterministic input is durable before they start.
    """
    dag = DagRecord.of(graph)
    order = dag.ids
    upstream = {t.id: t.upstream for t in dag.tasks}
    rolled: set[str] = set()
    changed = True
    while changed:
        changed = False
        for tid in order:
            rec = commits.get(tid)
            if rec is None or tid in rolled:
                continue
            stale_input = any(v not in commits or v in rolled for v in rec.observed_volatile)
            stale_upstream = any(u in rolled for u in upstream.get(tid, ()))
            if stale_input or stale_upstream:
                rolled.add(tid)
                changed = True
    for tid in rolled:
        if commits[tid].sink:
            raise RecoveryError(
                f"task [{tid}] already wrote to a sink but observed an output that was "
                "never made durable; exactly-once cannot be kept for it. This should not "
                "happen (sinks wait for nondeterministic inputs): please report it, and "
                "check the sink's table by hand"
            )
    return [t for t in order if t in rolled]


def missing_commits(graph: DagRecord | Mapping[str, Any], state: WorkflowState) -> dict[str, str]:
    """Tasks whose commit record must have existed but is gone from the log, with the evidence.

    Two facts of the commit protocol make a missing record visible:

    * a task reading a ``checkpoint=True`` input starts only after that input committed, so
      a committed task's synchronously checkpointed inputs (never invalidated) are committed;
    * a run that ended SUCCESSFUL committed the workflow's output (never invalidated).

    A checkpoint whose record is gone with no such evidence looks like the orphan a crash
    between the Delta write and the record leaves, and the task simply runs again.
    """
    tasks = DagRecord.of(graph).by_id
    out: dict[str, str] = {}
    for tid in state.commits:
        t = tasks.get(tid)
        for u in t.upstream if t is not None else ():
            ut = tasks.get(u)
            if (
                ut is not None
                and u not in state.commits
                and ut.checkpoint is True
                and state.generation(u) == 0
            ):
                out.setdefault(
                    u,
                    f"[{tid}] committed after reading it, and a checkpoint=True task commits "
                    "before anything reads it",
                )
    latest = state.latest
    if latest is not None and latest.end is not None and latest.end.status.value == "SUCCESSFUL":
        output = latest.dag.output
        # (generation 0 only: an output invalidated since, in this very run too, is simply
        # not committed yet)
        if output in tasks and output not in state.commits and state.generation(output) == 0:
            out.setdefault(
                output, f"run {latest.number} ended SUCCESSFUL, which commits the output"
            )
    return out


def plan(
    graph: DagRecord | Mapping[str, Any],
    state: WorkflowState,
    *,
    done: set[str] | None = None,
    strategy: Strategy = "restore",
    throughput: Throughput | None = None,
    replayable: set[str] | None = None,
) -> RecoveryPlan:
    """Plan the remaining work of a workflow.

    A pure function of its arguments: it reads no file, clock or Spark session and logs
    nothing, so the same log plans the same way in a run, in ``explain`` and in gc.

    Args:
        graph: the DAG record (the logged one, or ``Dag.to_record()``).
        state: the workflow's log state.
        done: tasks that completed earlier with outputs not kept (``checkpoint=False``).
        strategy: ``"restore"`` never re-executes a committed task; ``"cost"`` replays a
            committed deterministic task when that is estimated cheaper than reading it.
        throughput: the storage's throughput (assumed if not given).
        replayable: tasks the ``"cost"`` strategy may replay (deterministic, returning a
            DataFrame, no sink); default: derived from the graph and commit records.
    """
    tp = throughput or Throughput()
    done = done or set()
    dag = DagRecord.of(graph)
    tasks = dag.by_id
    order = dag.ids
    missing = missing_commits(dag, state)
    for tid, evidence in missing.items():
        gen = state.generation(tid)
        if not tasks[tid].deterministic:
            raise RecoveryError(
                f"workflow [{state.workflow_id}] task [{tid}]: its commit record "
                f"(log/tasks/{tid}/g{gen}.commit.json) is missing from the log: {evidence}. "
                "The task is nondeterministic, so running it again could give rows other than "
                "the ones already read downstream. Restore that file from a backup and re-run; "
                f"or accept a new result with xf.run(..., invalidate={[tid]!r}), which re-runs "
                "it and everything downstream"
            )
    rolled = rollbacks(dag, state.commits)
    available = {t: r for t, r in state.commits.items() if t in tasks and t not in rolled}

    if replayable is None:
        replayable = {
            t
            for t, r in available.items()
            if tasks[t].deterministic
            and not tasks[t].sink
            and not tasks[t].streaming  # a query re-run would read newer input
            and r.kind == "dataframe"
            and not r.sink
        }

    # cheapest way to obtain each available output: restore, or (cost strategy) replay
    memo: dict[str, tuple[float, float | None]] = {}

    def obtain(tid: str) -> float:
        restore_s, replay_s = estimates(tid)
        return min(restore_s, replay_s) if replay_s is not None else restore_s

    def estimates(tid: str) -> tuple[float, float | None]:
        if tid not in memo:
            rec = available[tid]
            restore_s = _restore_estimate(rec, tp)
            replay_s = None
            ups = tasks[tid].upstream
            if tid in replayable and all(u in available for u in ups):
                replay_s = _own_compute_estimate(rec, tp) + sum(obtain(u) for u in ups)
            memo[tid] = (restore_s, replay_s)
        return memo[tid]

    # backward walk from the output and from every wait target
    needed: set[str] = set()
    replay_committed: set[str] = set()
    stack = [dag.output]
    while stack:
        tid = stack.pop()
        if tid in needed or tid in replay_committed:
            continue
        if tid in available:
            restore_s, replay_s = estimates(tid)
            if (
                strategy == "cost"
                and replay_s is not None
                and replay_s < restore_s
                and tid != dag.output
            ):
                replay_committed.add(tid)
                stack.extend(tasks[tid].upstream)
            continue
        needed.add(tid)
        stack.extend(tasks[tid].upstream)
        stack.extend(tasks[tid].waits)

    readers = needed | replay_committed
    decisions = []
    for tid in order:
        t = tasks[tid]
        if tid in rolled:
            seen = ", ".join(f"[{v}]" for v in state.commits[tid].observed_volatile)
            why = (
                f"observed {seen} before it was durable; it is recomputed, so this commit "
                "is discarded and re-run"
                if seen
                else "an upstream commit was rolled back"
            )
            decisions.append(Decision(tid, "committed", "roll back", why))
        elif tid in available:
            rec = available[tid]
            restore_s, replay_s = estimates(tid)
            read = any(tid in tasks[n].upstream for n in readers)
            if tid in replay_committed:
                why = f"cheaper than restore ({replay_s:.2f} s vs {restore_s:.2f} s)"
                decisions.append(Decision(tid, "committed", "replay", why, restore_s, replay_s))
            elif read:
                if rec.checkpoint is not None:
                    d = rec.checkpoint
                    why = f"checkpoint {d.label()}, {_human(d.bytes)}"
                    if replay_s is not None:
                        why += f"; cheaper than replay ({restore_s:.2f} s vs {replay_s:.2f} s)"
                    elif not t.deterministic:
                        why += "; nondeterministic: always restored"
                else:
                    why = f"{rec.kind} logged with its commit"
                decisions.append(Decision(tid, "committed", "restore", why, restore_s, replay_s))
            else:
                decisions.append(
                    Decision(
                        tid,
                        "committed",
                        "skip",
                        "not needed: everything reading it is committed",
                        restore_s,
                        replay_s,
                    )
                )
        elif tid in needed:
            if tid in done:
                decisions.append(
                    Decision(
                        tid,
                        "lost",
                        "replay",
                        "output not kept (checkpoint=False): recomputed "
                        "from its inputs, fused into its consumers",
                    )
                )
            elif tid in missing:
                decisions.append(
                    Decision(
                        tid,
                        "missing",
                        "run",
                        f"commit record missing from the log ({missing[tid]}); deterministic: "
                        "runs again",
                    )
                )
            else:
                decisions.append(Decision(tid, "pending", "run", "not completed yet"))
        else:
            decisions.append(
                Decision(
                    tid,
                    "done" if tid in done else "pending",
                    "skip",
                    "not needed: everything reading it is committed",
                )
            )
    return RecoveryPlan(
        state.workflow_id,
        decisions,
        strategy,
        tp,
        run_order=[t for t in order if t in needed],
        replay_committed=[t for t in order if t in replay_committed],
        rolled_back=rolled,
        missing=missing,
    )


def report_missing(rplan: RecoveryPlan, state: WorkflowState, log: logging.Logger) -> None:
    """Warn on the caller's logger about each commit record :func:`plan` found missing from
    the log (deterministic tasks: they run again if needed). :func:`plan` logs nothing."""
    for tid, evidence in rplan.missing.items():
        log.warning(
            "[%s] [%s] commit record g%d is missing from the log (%s); the task is "
            "deterministic, so it runs again if needed",
            state.workflow_id,
            tid,
            state.generation(tid),
            evidence,
        )
