"""Online-offline graph pipeline: time to data availability per checkpoint strategy.

    .venv/bin/python benchmarks/graph.py     # 100k edges, 4 epochs, offline every 2, 3 reps
    .venv/bin/python benchmarks/graph.py --edges 2000000 --scale 18 --epochs 8 --every 4

For each strategy (none / async / sync / cost) the job ``jobs/graph_pipeline.py`` runs as its
own driver process, once fault-free and once SIGKILLed mid-epoch (at ``--crash-at`` in the
last offline epoch) and then run again, which resumes. The job records, for every epoch and
result (the online update, PageRank, TunkRank, components), when it became queryable; the
time to data availability is that minus the epoch's arrival time. Printed as a table, saved
to ``benchmarks/results/graph.json`` and plotted to ``docs/img/bench-graph.png``.

A crashed run's figure includes restarting the driver (a new JVM and SparkSession, printed
separately as ``restart``), as it would in production. Every cell is run ``--reps`` times
(default 3; strategies and fault-free/crashed interleaved in each repetition) and reported as
the median with min-max; the plot shows the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
JOB = REPO / "jobs" / "graph_pipeline.py"
STRATEGIES = ["none", "async", "sync", "cost"]


def run_job(args: argparse.Namespace, storage: str, strategy: str, crash: bool) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(JOB),
        "--workflow-id",
        f"bench-{strategy}",
        "--storage",
        storage,
        "--master",
        args.master,
        "--strategy",
        strategy,
        "--edges",
        str(args.edges),
        "--scale",
        str(args.scale),
        "--epochs",
        str(args.epochs),
        "--every",
        str(args.every),
        "--iterations",
        str(args.iterations),
    ]
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"}
    env.pop("EXOFLOW_CRASH_AT", None)
    out: dict[str, Any] = {"strategy": strategy, "crash": crash}
    start = time.monotonic()
    if crash:
        last_offline = (args.epochs // args.every) * args.every - 1
        killed = subprocess.run(
            [*cmd, "--crash-epoch", str(last_offline), "--crash-at", args.crash_at],
            env=env,
            capture_output=True,
            text=True,
        )
        if killed.returncode != -signal.SIGKILL:
            raise SystemExit(f"{strategy}: the crash did not happen:\n{killed.stderr[-3000:]}")
        out["killed_after_s"] = time.monotonic() - start
    restart = time.monotonic()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{strategy}: the job failed:\n{done.stderr[-3000:]}")
    out["wall_s"] = time.monotonic() - start
    out["restart_s"] = time.monotonic() - restart if crash else None
    summary = json.loads(done.stdout[done.stdout.index("{") :])
    out["availability"] = summary["availability"]
    return out


def summarize(result: dict[str, Any], args: argparse.Namespace) -> dict[str, float]:
    """Median time to availability of the online results and of the offline results, and
    the offline figure of the last offline epoch (the crashed one in a crash run)."""
    avail = result["availability"]
    online = [a["seconds"] for a in avail if a["what"] == "online"]
    offline = [a["seconds"] for a in avail if a["what"] != "online"]
    last_offline = (args.epochs // args.every) * args.every - 1
    last = [a["seconds"] for a in avail if a["what"] != "online" and a["epoch"] == last_offline]
    return {
        "online_median_s": statistics.median(online),
        "offline_median_s": statistics.median(offline),
        "last_offline_epoch_s": max(last),
    }


def cell(rows: list[dict[str, Any]], strategy: str, crash: bool, key: str) -> list[float]:
    """The figure ``key`` (a summary key or a top-level one) of every repetition of a cell."""
    out = []
    for r in rows:
        if r["strategy"] == strategy and r["crash"] == crash:
            out.append(r["summary"][key] if key in r["summary"] else r[key])
    return out


def med(values: list[float]) -> str:
    """``median (min-max)``."""
    return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.2))
    width = 0.2
    for i, strategy in enumerate(STRATEGIES):
        values = [
            statistics.median(cell(rows, strategy, False, "online_median_s")),
            statistics.median(cell(rows, strategy, False, "last_offline_epoch_s")),
            statistics.median(cell(rows, strategy, True, "last_offline_epoch_s")),
        ]
        xs = [x + (i - 1.5) * width for x in range(3)]
        bars = ax.bar(xs, values, width, label=strategy)
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks(
        range(3),
        [
            "online update\n(median epoch)",
            "offline results\n(last offline epoch)",
            "offline results, driver\nkilled in that epoch",
        ],
    )
    ax.set_ylabel("seconds from arrival to queryable")
    ax.set_title(title, fontsize=10)
    ax.legend(title="checkpoints")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--edges", type=int, default=100_000)
    p.add_argument("--scale", type=int, default=15)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--every", type=int, default=2)
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--master", default="local[2]")
    p.add_argument("--crash-at", default="components:after-output")
    p.add_argument("--strategies", default=",".join(STRATEGIES))
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "graph.json"))
    p.add_argument("--png", default=str(REPO / "docs" / "img" / "bench-graph.png"))
    args = p.parse_args()
    chosen = args.strategies.split(",")
    rows: list[dict[str, Any]] = []
    root = tempfile.mkdtemp(prefix="exoflow-graph-bench-")
    try:
        # per repetition one fault-free and one crashed run per strategy, interleaved
        for rep in range(args.reps):
            for crash in (False, True):
                for strategy in chosen:
                    kind = "crash" if crash else "free"
                    storage = os.path.join(root, f"{strategy}-{kind}-{rep}")
                    r = run_job(args, storage, strategy, crash)
                    r["summary"] = summarize(r, args)
                    r["rep"] = rep
                    rows.append(r)
                    shutil.rmtree(storage, ignore_errors=True)
                    print(
                        f"rep {rep + 1} {strategy:6} {kind:5} wall {r['wall_s']:6.1f}s  "
                        + "  ".join(f"{k} {v:.2f}" for k, v in r["summary"].items()),
                        flush=True,
                    )
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print(
        f"\ntime to data availability, {args.edges:,} edges, {args.epochs} epochs, offline "
        f"every {args.every} (seconds from an epoch's arrival to its results being queryable); "
        f"median (min-max) of {args.reps}"
    )
    heads = ["online", "offline", "offline, crash", "restart", "job wall", "crashed wall"]
    print(f"{'strategy':9} " + " ".join(f"{h:>19}" for h in heads))
    for strategy in chosen:
        cells = [
            cell(rows, strategy, False, "online_median_s"),
            cell(rows, strategy, False, "last_offline_epoch_s"),
            cell(rows, strategy, True, "last_offline_epoch_s"),
            cell(rows, strategy, True, "restart_s"),
            cell(rows, strategy, False, "wall_s"),
            cell(rows, strategy, True, "wall_s"),
        ]
        print(f"{strategy:9} " + " ".join(f"{med(c):>19}" for c in cells))
    doc = {
        "benchmark": "graph",
        "args": vars(args),
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=1))
    if set(chosen) == set(STRATEGIES):
        plot(
            rows,
            Path(args.png),
            f"Online-offline graph: {args.edges:,} R-MAT edges, {args.epochs} epochs, "
            f"offline every {args.every} (medians of {args.reps})",
        )
    print(f"\nwrote {args.out}" + (f" and {args.png}" if set(chosen) == set(STRATEGIES) else ""))


if __name__ == "__main__":
    main()
