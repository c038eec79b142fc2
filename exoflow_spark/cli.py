"""The ``exoflow-spark`` command line: see what ran and how it stands.

    exoflow-spark list   --storage ./exoflow-data
    exoflow-spark status sales-2026-11-24 --storage s3a://lake/exo [--json]
    exoflow-spark explain sales-2026-11-24 --storage ./exoflow-data [--recovery cost]


Exit codes: 0 success, 1 the workflow is not SUCCESSFUL (status), 2 usage or not found.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from . import api
from .errors import ExoflowError, WorkflowNotFoundError
from .status import WorkflowStatus
from .store import WorkflowStore


def _fmt_time(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def _cmd_list(args: argparse.Namespace) -> int:
    infos = api.list_workflows(storage=args.storage)
    if args.json:
        print(json.dumps([{**i.__dict__, "status": i.status.value} for i in infos], indent=2))
        return 0
    if not infos:
        print(f"no workflows under {args.storage or 'the default storage root'}")
        return 0
    print(f"{'workflow':32} {'status':11} {'runs':>4} {'committed':>9}  last started")
    for i in infos:
        print(
            f"{i.workflow_id:32} {i.status.value:11} {i.runs:>4} "
            f"{i.committed:>4}/{i.tasks:<4}  {_fmt_time(i.started_at)}"
        )
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from ._config import resolve_storage

    store = WorkflowStore(resolve_storage(args.storage), args.workflow_id)
    state = store.require_exists()
    last = state.runs[-1]
    done = store.done_tasks()
    tasks: list[dict[str, Any]] = []
    for t in last.start.get("dag", {}).get("tasks", []):
        rec = state.commits.get(t["id"])
        tasks.append(
            {
                "task": t["id"],
                "state": "COMMITTED" if rec else ("DONE" if t["id"] in done else "PENDING"),
                "checkpoint": t["checkpoint"],
                "output": (
                    f"delta v{rec['delta']['version']}"
                    if rec and rec.get("kind") == "dataframe"
                    else (rec or {}).get("kind", "-")
                ),
            }
        )
    doc = {
        "workflow_id": args.workflow_id,
        "status": state.status.value,
        "runs": len(state.runs),
        "error": (last.end or {}).get("error"),
        "tasks": tasks,
    }
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(f"workflow {args.workflow_id}: {doc['status']} ({doc['runs']} run(s))")
        if doc["error"]:
            print(f"last error: {doc['error']}")
        print(
            f"{'task':28} {'state':10} {'checkpoint':10} output   (DONE: ran, output not "
            "kept; replayed if needed)"
        )
        for t in tasks:
            print(f"{t['task']:28} {t['state']:10} {t['checkpoint']!s:10} {t['output']}")
    return 0 if state.status is WorkflowStatus.SUCCESSFUL else 1


def _cmd_explain(args: argparse.Namespace) -> int:
    plan = api.explain(args.workflow_id, storage=args.storage, recovery=args.recovery)
    if args.json:
        print(
            json.dumps(
                {
                    "workflow_id": args.workflow_id,
                    "strategy": plan.strategy,
                    "decisions": plan.to_records(),
                },
                indent=2,
            )
        )
    else:
        print(plan)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="exoflow-spark",
        description="Inspect exoflow-spark workflows (runs are started by jobs or xf.run).",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--storage", help="storage root (default: $EXOFLOW_STORAGE or ./exoflow-data)"
    )
    common.add_argument("--json", action="store_true", help="print JSON")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", parents=[common], help="every workflow and its status")
    p.set_defaults(fn=_cmd_list)
    p = sub.add_parser(
        "status", parents=[common], help="one workflow, task by task (exit 1 unless SUCCESSFUL)"
    )
    p.add_argument("workflow_id")
    p.set_defaults(fn=_cmd_status)
    p = sub.add_parser(
        "explain",
        parents=[common],
        help="what resuming would do, task by task "
        "(skip / restore / replay / run / roll back), with cost estimates",
    )
    p.add_argument("workflow_id")
    p.add_argument(
        "--recovery",
        choices=["restore", "cost"],
        default="restore",
        help="plan for this strategy (default: restore)",
    )
    p.set_defaults(fn=_cmd_explain)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``exoflow-spark`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except WorkflowNotFoundError as exc:
        print(f"exoflow-spark: {exc}", file=sys.stderr)
        return 2
    except ExoflowError as exc:
        print(f"exoflow-spark: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
