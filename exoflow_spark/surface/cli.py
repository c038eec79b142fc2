"""The ``exoflow-spark`` command line: run, resume, inspect, draw and clean up workflows.

    exoflow-spark run jobs/etl_pipeline.py --workflow-id sales-2026-11-24 -- --rows 100000
    exoflow-spark run my_pkg.pipelines:build_dag --workflow-id sales -- /raw/2026-11-24
    exoflow-spark resume sales-2026-11-24
    exoflow-spark list | status ID | explain ID | history ID
    exoflow-spark show ID --format svg --output dag.svg
    exoflow-spark gc --dry-run

Every command takes ``--storage`` (default: the profile's, ``$EXOFLOW_STORAGE`` or
``./exoflow-data``) and ``--profile`` (a section of ``conf/profiles.toml``); most take
``--json``. Exit codes: 0 success, 1 the workflow is not SUCCESSFUL (or the run failed),
2 usage error or not found.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import os
import runpy
import sys
import textwrap
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

from .. import api
from ..core.fmt import human_bytes as _human
from ..core.options import CHECKPOINT_POLICIES, DEFAULT_CHECKPOINT_POLICY
from ..core.records import FAILURE_EVENTS, EventKind
from ..core.redact import MASK
from ..core.status import WorkflowStatus
from ..core.uris import is_local
from ..errors import (
    CheckpointError,
    ConcurrentRunError,
    ExoflowError,
    StorageError,
    TaskFailedError,
    UsageError,
    WorkflowNotFoundError,
)
from ..storage.store import WorkflowStore
from . import pipelines
from .config import load_profile

#: Errors meaning "the workflow ran (or is running) and did not succeed": exit code 1.
_RUN_FAILURES = (TaskFailedError, CheckpointError, ConcurrentRunError, StorageError)


def _fmt_time(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def _dumps(doc: Any) -> str:
    return json.dumps(doc, indent=2, default=str)


# -- storage, profile, session ---------------------------------------------------------------
def _storage(args: argparse.Namespace) -> str:
    """``--storage``, else the profile's (``$EXOFLOW_STORAGE`` wins over the file), else the
    library default."""
    from ..core.defaults import resolve_storage

    if getattr(args, "profile_given", False):
        load_profile(args.profile)  # an unknown --profile is an error even beside --storage
    if args.storage is not None:
        return resolve_storage(str(args.storage))
    profile = load_profile(args.profile)
    return resolve_storage(profile.storage or None)


def _require_root(args: argparse.Namespace, storage: str) -> Any | None:
    """The session for ``storage`` (if it needs one), after checking that the root holds
    exoflow-spark data: a mistyped root is a usage error, not an empty listing."""
    from ..storage.store import storage_exists

    spark = _spark_if_needed(args, storage)
    if not storage_exists(storage, spark):
        raise UsageError(
            f"no exoflow-spark storage at {storage!r} (it has no workflows/ folder): check "
            "--storage and --profile (a run creates it)"
        )
    return spark


def _session(args: argparse.Namespace, app_name: str = "exoflow-spark-cli") -> Any:
    """The process's active session if it has one (the CLI called from a notebook or a
    test), else a new one built from the profile."""
    from pyspark.sql import SparkSession

    from ..spark.session import create_spark_session
    from .entry import under_spark_submit

    active = SparkSession.getActiveSession()
    if active is not None:
        return active

    profile = load_profile(args.profile)
    master = getattr(args, "master", None) or (
        None if under_spark_submit() else profile.master or "local[*]"
    )
    return create_spark_session(master, app_name=app_name, conf=profile.spark)


def _spark_if_needed(args: argparse.Namespace, storage: str) -> Any | None:
    """A session only for storage roots reached through Hadoop (s3a://, abfss://, ...)."""
    return None if is_local(storage) else _session(args)


def _store(args: argparse.Namespace) -> WorkflowStore:
    storage = _storage(args)
    return WorkflowStore(storage, args.workflow_id, _spark_if_needed(args, storage))


# -- list / status / explain -----------------------------------------------------------------
def _cmd_list(args: argparse.Namespace) -> int:
    storage = _storage(args)
    infos = api.list_workflows(storage=storage, spark=_require_root(args, storage))
    if args.json:
        print(_dumps([{**i.__dict__, "status": i.status.value} for i in infos]))
        return 0
    if not infos:
        print(f"no workflows under {storage}")
        return 0
    print(f"{'workflow':32} {'status':11} {'runs':>4} {'committed':>9}  last started")
    for i in infos:
        print(
            f"{i.workflow_id:32} {i.status.value:11} {i.runs:>4} "
            f"{i.committed:>4}/{i.tasks:<4}  {_fmt_time(i.started_at)}"
        )
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from ..engine.gc import collected_tables

    store = _store(args)
    state = store.require_exists()
    last = state.runs[-1]
    states = state.task_states(store.events())
    collected = collected_tables(store)
    tasks: list[dict[str, Any]] = []
    for task in last.dag.tasks:
        rec = state.commits.get(task.id)
        output = rec.label(with_format=True) if rec is not None else "-"
        if rec and task.id in collected and collected[task.id] > (rec.committed_at or 0):
            output += " (table deleted by gc)"
        tasks.append(
            {
                "task": task.id,
                "state": states[task.id].value,
                "checkpoint": task.checkpoint,
                "output": output,
            }
        )
    doc = {
        "workflow_id": args.workflow_id,
        "status": state.status.value,
        "runs": len(state.runs),
        "error": last.end.error if last.end is not None else None,
        "tasks": tasks,
    }
    if args.json:
        print(_dumps(doc))
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
    storage = _storage(args)
    plan = api.explain(
        args.workflow_id,
        storage=storage,
        spark=_spark_if_needed(args, storage),
        recovery=args.recovery,
    )
    if args.json:
        print(
            _dumps(
                {
                    "workflow_id": args.workflow_id,
                    "strategy": plan.strategy,
                    "decisions": plan.to_records(),
                }
            )
        )
    else:
        print(plan)
    return 0


# -- run / resume ----------------------------------------------------------------------------
@contextlib.contextmanager
def _launched_as(record: dict[str, Any]) -> Iterator[None]:
    """Log ``record`` as the launch of every run started in the block (for ``resume``)."""
    previous = api._launch
    api._launch = record
    try:
        yield
    finally:
        api._launch = previous


@contextlib.contextmanager
def _cwd(path: str | None) -> Iterator[None]:
    before = os.getcwd()
    if path:
        os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def _is_script(target: str) -> bool:
    return target.endswith(".py") and ":" not in Path(target).name


def _load_function(target: str) -> Any:
    """``module:function`` or ``path/to/file.py:function``."""
    where, _, name = target.rpartition(":")
    if not where or not name.isidentifier():
        raise UsageError(
            f"target {target!r} is neither a job script (path/to/job.py) nor module:function"
        )
    if where.endswith(".py") or os.sep in where:
        path = Path(where).resolve()
        if not path.is_file():
            raise UsageError(f"target {target!r}: no file {path}")
        sys.path.insert(0, str(path.parent))
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:  # pragma: no cover
            raise UsageError(f"target {target!r}: cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        spec.loader.exec_module(module)
    else:
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(where)
        except ImportError as exc:
            raise UsageError(f"target {target!r}: cannot import module {where!r}: {exc}") from exc
    fn = getattr(module, name, None)
    if not callable(fn):
        raise UsageError(f"target {target!r}: {where!r} has no function {name!r}")
    return fn


def _run_script(script: str, argv: list[str]) -> int:
    """Run a job script in this process as ``__main__``; its exit status is returned."""
    if not Path(script).is_file():
        raise UsageError(f"job script {script!r} not found (cwd {os.getcwd()})")
    saved = sys.argv[:]
    sys.argv = [script, *argv]
    try:
        runpy.run_path(script, run_name="__main__")
        return 0
    except SystemExit as exc:
        code = exc.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        print(code, file=sys.stderr)
        return 1
    finally:
        sys.argv = saved


def _restartable_script(argv: Sequence[Any]) -> bool:
    """Whether a logged command line is a job script worth starting again: a ``.py`` file,
    not an installed tool's entry point (``python -m pytest``, ``ipykernel_launcher``)."""
    if not argv or not str(argv[0]).endswith(".py"):
        return False
    path = Path(str(argv[0]))
    installed = any(part in ("site-packages", "dist-packages") for part in path.parts)
    return not installed and path.name != "__main__.py"


def _output_summary(store: WorkflowStore, value: Any) -> Any:
    from ..core.values import is_dataframe

    if is_dataframe(value):
        state = store.read_state()
        rec = state.commits.get(state.dag.output)
        d = rec.checkpoint if rec is not None else None
        if d is None:
            return {"dataframe": None, "version": None, "rows": None}
        return {"dataframe": d.path, "version": d.version, "rows": d.rows}
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)


def _launch_function(
    args: argparse.Namespace,
    target: str,
    job_args: list[str],
    workflow_id: str | None,
    storage: str,
) -> int:
    fn = _load_function(target)
    node = fn(*job_args)
    from ..core.task import Node

    if not isinstance(node, Node):
        raise UsageError(
            f"{target}({', '.join(map(repr, job_args))}) returned {type(node).__name__}, not a "
            "DAG node: the function must return task.bind(...)"
        )
    spark = _session(args, app_name=f"exoflow-{workflow_id or target}")
    record = {
        "via": "exoflow-spark run",
        "target": target,
        "args": job_args,
        "cwd": os.getcwd(),
        "profile": args.profile,
        "master": getattr(args, "master", None),
        "python": sys.executable,
    }
    with _launched_as(record):
        value = api.run(
            node,
            workflow_id=workflow_id,
            storage=storage,
            spark=spark,
            invalidate=getattr(args, "invalidate", None) or (),
            replace=bool(getattr(args, "replace", False)),
            max_parallel=args.max_parallel,
            recovery=args.recovery,
            progress=False if args.no_progress else "auto",
            checkpoint=args.checkpoint or DEFAULT_CHECKPOINT_POLICY,
        )
    # the id of a generated workflow: the newest run started by this process
    wf = workflow_id or _newest_workflow(storage, spark)
    store = WorkflowStore(storage, wf, spark)
    status = store.read_state().status
    doc = {"workflow_id": wf, "status": status.value, "output": _output_summary(store, value)}
    print(_dumps(doc) if args.json else f"workflow {wf}: {status.value}\noutput: {doc['output']}")
    return 0 if status is WorkflowStatus.SUCCESSFUL else 1


def _newest_workflow(storage: str, spark: Any) -> str:
    infos = api.list_workflows(storage=storage, spark=spark)
    return max(infos, key=lambda i: i.started_at or 0).workflow_id


def _launch_script(
    args: argparse.Namespace, script: str, job_args: list[str], cwd: str | None = None
) -> int:
    record = {
        "via": "exoflow-spark run",
        "target": script,
        "args": job_args,
        "cwd": cwd or os.getcwd(),
        "python": sys.executable,
    }
    with _cwd(cwd), _launched_as(record):
        return _run_script(script, job_args)


def _is_spec(target: str) -> bool:
    return target.endswith((".yml", ".yaml"))


def _launch_spec(args: argparse.Namespace, cwd: str | None = None) -> int:
    """One update of a Spark Declarative Pipelines project; the spec and the refresh options
    are logged with the run, so ``resume`` starts the same update again."""
    record = {
        "via": "exoflow-spark run",
        "target": args.target,
        "args": [],
        "pipeline": {
            "refresh": list(args.refresh),
            "full_refresh": list(args.full_refresh),
            "full_refresh_all": bool(args.full_refresh_all),
        },
        "cwd": cwd or os.getcwd(),
        "profile": args.profile,
        "master": getattr(args, "master", None),
        "python": sys.executable,
    }
    with _cwd(cwd), _launched_as(record):
        code, text = pipelines.cli_run(args, _session(args, app_name="exoflow-pipeline"))
    print(text)
    return code


def _cmd_run(args: argparse.Namespace) -> int:
    if _is_spec(args.target):  # a Spark Declarative Pipelines project
        return _launch_spec(args)
    job_args = list(args.job_args)
    if _is_script(args.target):
        # a job script parses its own arguments: hand it the standard job options we got
        for flag, value in (
            ("--workflow-id", args.workflow_id),
            ("--storage", args.storage),
            ("--profile", args.profile if args.profile_given else None),
            ("--master", args.master),
            ("--checkpoint-policy", getattr(args, "checkpoint", None)),
        ):
            if value:
                job_args += [flag, value]
        return _launch_script(args, args.target, job_args)
    storage = _storage(args)
    if is_local(storage) and "://" not in storage:
        storage = os.path.abspath(storage)
    return _launch_function(args, args.target, job_args, args.workflow_id, storage)


def _cmd_resume(args: argparse.Namespace) -> int:
    store = _store(args)
    state = store.require_exists()
    status = state.status
    if status is WorkflowStatus.SUCCESSFUL and not args.force:
        print(f"workflow {args.workflow_id} is already SUCCESSFUL: nothing to resume")
        return 0
    if status is WorkflowStatus.RUNNING:
        owner = state.runs[-1].owner
        print(
            f"exoflow-spark: workflow {args.workflow_id} is RUNNING (host {owner.host}, "
            f"pid {owner.pid}): wait for it, or stop that driver and resume",
            file=sys.stderr,
        )
        return 1
    launch = next(
        (r.start.launch for r in reversed(state.runs) if r.start is not None and r.start.launch),
        None,
    )
    logged = [str(a) for a in (launch or {}).get("args", (launch or {}).get("argv", []))]
    if any(MASK in a for a in logged):
        raise UsageError(
            f"workflow [{args.workflow_id}]: its logged command line had credentials, which "
            f"were masked ({' '.join(logged)}); start the job yourself with the same arguments "
            "and workflow id (better: pass credentials through the environment)"
        )
    runs_before = len(state.runs)
    if launch and "target" in launch:
        target, job_args = str(launch["target"]), [str(a) for a in launch.get("args", [])]
        print(f"resuming {args.workflow_id}: {target} {' '.join(job_args)}".rstrip())
        if _is_spec(target):
            chosen = launch.get("pipeline") or {}
            args.target = target
            args.refresh = list(chosen.get("refresh", []))
            args.full_refresh = list(chosen.get("full_refresh", []))
            args.full_refresh_all = bool(chosen.get("full_refresh_all", False))
            args.dry_run = False
            args.storage = store.storage
            args.profile = args.profile if args.profile_given else launch.get("profile", "local")
            args.master = args.master or launch.get("master")
            code = _launch_spec(args, cwd=launch.get("cwd"))
        elif _is_script(target):
            with _cwd(launch.get("cwd")):
                code = _launch_script(args, target, job_args)
        else:
            args.profile = args.profile if args.profile_given else launch.get("profile", "local")
            args.master = args.master or launch.get("master")
            with _cwd(launch.get("cwd")):
                code = _launch_function(args, target, job_args, args.workflow_id, store.storage)
    elif launch and _restartable_script(launch.get("argv") or []):
        argv = [str(a) for a in launch["argv"]]
        cwd = launch.get("cwd")
        script = argv[0] if os.path.isabs(argv[0]) else os.path.join(cwd or ".", argv[0])
        if not Path(script).is_file():
            raise UsageError(
                f"workflow [{args.workflow_id}] was started by {script}, which no longer exists: "
                "resume it by running the same DAG with xf.run(dag, workflow_id=...)"
            )
        print(f"resuming {args.workflow_id}: {' '.join(argv)}")
        code = _launch_script(args, argv[0], argv[1:], cwd=cwd)
    else:
        how = " ".join(map(str, (launch or {}).get("argv", []))) or "an unknown program"
        raise UsageError(
            f"workflow [{args.workflow_id}] was started from `{how}`, which exoflow-spark cannot "
            "start again (not a job script or `exoflow-spark run` target): functions are never "
            "unpickled from storage, so resume it by running the same DAG under the same id, "
            f"xf.run(dag, workflow_id={args.workflow_id!r}, storage=...)"
        )
    after = store.read_state()
    if len(after.runs) == runs_before:
        print(
            f"exoflow-spark: the job exited ({code}) without running workflow "
            f"{args.workflow_id}: did its arguments or storage change?",
            file=sys.stderr,
        )
        return 1 if code == 0 else code
    if code != 0:
        return code
    return 0 if after.status is WorkflowStatus.SUCCESSFUL else 1


# -- show / history / gc ---------------------------------------------------------------------
_EXT_FORMATS = {
    ".svg": "svg",
    ".png": "png",
    ".mmd": "mermaid",
    ".mermaid": "mermaid",
    ".dot": "dot",
    ".gv": "dot",
    ".txt": "text",
}


def _cmd_show(args: argparse.Namespace) -> int:
    from . import viz

    storage = _storage(args)
    spark = _spark_if_needed(args, storage)
    fmt = args.format or (
        _EXT_FORMATS.get(Path(args.output).suffix.lower()) if args.output else None
    )
    if args.output and not args.json:
        ext = Path(args.output).suffix.lower()
        known = ", ".join(sorted(_EXT_FORMATS))
        if fmt is None:
            raise UsageError(
                f"cannot tell what to draw into {args.output!r} from its extension "
                f"{ext or '(none)'!r}: name the file with one of {known}, or pass --format"
            )
        if ext in _EXT_FORMATS and _EXT_FORMATS[ext] != fmt:
            raise UsageError(
                f"--format {fmt} would write {fmt} into {args.output!r}, whose extension says "
                f"{_EXT_FORMATS[ext]}: rename the file or change --format"
            )
    if args.timeline:
        fmt = fmt or "text"
        if fmt not in ("png", "svg", "text"):
            raise UsageError(f"--timeline draws png, svg or text, not {fmt}")
        if args.json:
            tl = viz.timeline(args.workflow_id, storage=storage, spark=spark, run=args.run)
            print(_dumps({"workflow_id": tl.workflow_id, "runs": tl.runs, "spans": tl.spans}))
            return 0
        pic = viz.show_timeline(
            args.workflow_id, storage=storage, spark=spark, format=cast(Any, fmt), run=args.run
        )
    else:
        fmt = fmt or "text"
        if args.json:
            view = viz.dag_view(args.workflow_id, storage=storage, spark=spark)
            print(_dumps({"workflow_id": view.workflow_id, "status": view.status,
                          "tasks": [t.__dict__ for t in view.tasks]}))  # fmt: skip
            return 0
        pic = viz.show_dag(args.workflow_id, storage=storage, spark=spark, format=cast(Any, fmt))
    if args.output:
        pic.save(args.output)
        print(f"wrote {args.output} ({pic.format})")
    elif isinstance(pic.data, bytes):
        raise UsageError(f"{pic.format} is binary: pass --output FILE")
    else:
        sys.stdout.write(pic.data)
    return 0


def _history(store: WorkflowStore) -> dict[str, Any]:
    from ..engine.gc import collected_tables

    state = store.require_exists()
    events = store.events()
    runs = []
    for r in state.runs:
        mine = [e for e in events if e.run == r.number]
        plan = next((e for e in mine if e.kind is EventKind.PLAN), None)
        started = r.started_at
        ended = r.end.ended_at if r.end is not None else None
        start = r.start
        runs.append(
            {
                "run": r.number,
                "status": r.status.value,
                "killed": r.end is None and r.status is WorkflowStatus.RESUMABLE,
                "started_at": started,
                "ended_at": ended,
                "seconds": (ended - started) if ended and started else None,
                "owner": start.owner.to_json() if start is not None else None,
                "error": r.end.error if r.end is not None else None,
                "invalidated": list(start.invalidate) if start is not None else [],
                "launch": start.launch if start is not None else None,
                "strategy": plan.strategy if plan else None,
                "decisions": plan.decisions if plan else [],
                "rolled_back": plan.rolled_back if plan else [],
                "errors": [
                    {
                        "kind": e.kind_name,
                        "task": e.task,
                        "attempt": e.attempt,
                        "system": e.system if e.kind is EventKind.TASK_ERROR else None,
                        "error": e.error,
                    }
                    for e in mine
                    if e.kind in FAILURE_EVENTS
                ],
                "committed": sorted(t for t, c in state.commits.items() if c.run == r.number),
                "auto_checkpoint": [
                    {"task": e.task, **e.data} for e in mine if e.kind is EventKind.AUTO_CHECKPOINT
                ],
            }
        )
    return {
        "workflow_id": store.workflow_id,
        "status": state.status.value,
        "runs": runs,
        "gc": collected_tables(store),
    }


def _cmd_history(args: argparse.Namespace) -> int:
    doc = _history(_store(args))
    if args.json:
        print(_dumps(doc))
        return 0
    print(f"workflow {doc['workflow_id']}: {doc['status']}, {len(doc['runs'])} run(s)")
    for r in doc["runs"]:
        owner = r["owner"] or {}
        took = f"{r['seconds']:.1f} s" if r["seconds"] is not None else "no end record"
        state = "killed (no end record: driver died)" if r["killed"] else r["status"]
        print(
            f"\nrun {r['run']}: {state}  started {_fmt_time(r['started_at'])}, {took}, "
            f"host {owner.get('host')} pid {owner.get('pid')}"
        )
        if r["invalidated"]:
            print(f"  invalidated by request: {', '.join(r['invalidated'])}")
        if r["rolled_back"]:
            print(f"  rolled back: {', '.join(r['rolled_back'])}")
        if r["decisions"]:
            print(f"  recovery plan ({r['strategy']}):")
            width = max(len(d["task"]) for d in r["decisions"])
            for d in r["decisions"]:
                print(f"    {d['task']:{width}}  {d['action']:9} {d['reason']}")
        if r["auto_checkpoint"]:
            print("  checkpoint='auto' decisions:")
            width = max(len(str(a["task"])) for a in r["auto_checkpoint"])
            for a in r["auto_checkpoint"]:
                action = a.get("action") or ("write" if a.get("checkpoint") else "keep")
                why = a.get("reason") or (
                    f"replay ~{a.get('replay_s')}s, write ~{a.get('write_s')}s"
                )  # an event of a release that logged no reason
                print(f"    {a['task']:{width}}  {action:6} [{a.get('source', 'measured')}] {why}")
        for e in r["errors"]:
            what = "async checkpoint failed" if e["kind"] == EventKind.CHECKPOINT_FAILED else (
                f"attempt {e['attempt']} failed ({'system' if e['system'] else 'task'} error)"
            )  # fmt: skip
            print(f"  ! {e['task']}: {what}: {e['error']}")
        if r["committed"]:
            print(f"  committed: {', '.join(r['committed'])}")
        if r["error"]:
            print(f"  error: {r['error']}")
    if doc["gc"]:
        print(f"\ncheckpoint tables deleted by gc: {', '.join(sorted(doc['gc']))}")
    return 0


def _cmd_gc(args: argparse.Namespace) -> int:
    from ..engine.gc import collect_garbage

    storage = _storage(args)
    report = collect_garbage(
        storage,
        workflow_ids=args.workflow_ids or None,
        dry_run=args.dry_run,
        include_outputs=args.include_outputs,
        spark=_require_root(args, storage),
    )
    if args.json:
        print(
            _dumps(
                {
                    "dry_run": report.dry_run,
                    "bytes_freed": report.bytes_freed,
                    "items": report.to_records(),
                }
            )
        )
        return 0
    if not report.items:
        print(f"no checkpoint tables under {storage}")
        return 0
    verb = "would delete" if args.dry_run else "deleted"
    wf_w = max(len(i.workflow_id) for i in report.items)
    t_w = max(len(i.table) for i in report.items)
    for i in report.items:
        action = verb if i.verdict == "delete" else "keep"
        print(
            f"{action:12} {i.workflow_id:{wf_w}}  {i.table:{t_w}}  {_human(i.bytes):>9}  {i.reason}"
        )
    print(
        f"{verb} {len(report.deleted)} table(s), {_human(report.bytes_freed)}; "
        f"kept {len(report.kept)}"
    )
    return 0


# -- the parser ------------------------------------------------------------------------------
EPILOG = """\
examples:
  # run a job script (its own arguments after --), then again: it resumes
  exoflow-spark run jobs/etl_pipeline.py --workflow-id sales-2026-11-24 -- --rows 100000
  # run a function that returns a DAG node (arguments after -- are passed to it)
  exoflow-spark run my_pkg.pipelines:build_dag --workflow-id sales -- /raw/2026-11-24
  exoflow-spark status sales-2026-11-24          # exit 1 unless SUCCESSFUL
  exoflow-spark explain sales-2026-11-24         # what resuming would do, and why
  exoflow-spark resume sales-2026-11-24          # start the same job again, same id
  exoflow-spark history sales-2026-11-24         # runs, crashes, every recovery decision
  exoflow-spark show sales-2026-11-24 --output dag.svg
  exoflow-spark show sales-2026-11-24 --timeline --output timeline.png
  exoflow-spark gc --dry-run                     # checkpoints nobody needs any more

storage: --storage, else the profile's (conf/profiles.toml, --profile, default "local"),
else $EXOFLOW_STORAGE, else ./exoflow-data. s3a://, abfss://, dbfs:/ ... roots start a
Spark session from the profile to reach the log.
exit codes: 0 success; 1 the workflow is not SUCCESSFUL (or the run failed); 2 usage
error or workflow not found.
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(
        prog="exoflow-spark",
        description="Run, resume, inspect, draw and clean up exoflow-spark workflows.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    default_profile = os.environ.get("EXOFLOW_PROFILE", "local")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--storage",
        help="storage root (default: the profile's, $EXOFLOW_STORAGE, or ./exoflow-data)",
    )
    common.add_argument(
        "--profile",
        default=None,
        help=f"profile in conf/profiles.toml (default: $EXOFLOW_PROFILE or {default_profile!r})",
    )
    common.add_argument("--json", action="store_true", help="print JSON")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help: str, description: str, epilog: str = "") -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            parents=[common],
            help=help,
            description=description if "\n" in description else textwrap.fill(description, 88),
            epilog=epilog or None,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    p = add("list", "every workflow and its status", "List every workflow under the root.")
    p.set_defaults(fn=_cmd_list)

    p = add(
        "status",
        "one workflow, task by task (exit 1 unless SUCCESSFUL)",
        "One workflow's status and each task's state. Exit 0 if SUCCESSFUL, 1 if not, "
        "2 if not found.",
        "example:\n  exoflow-spark status sales-2026-11-24 --json",
    )
    p.add_argument("workflow_id")
    p.set_defaults(fn=_cmd_status)

    p = add(
        "explain",
        "what resuming would do, task by task, with cost estimates",
        "What running the workflow again would do, task by task (skip / restore / replay / "
        "run / roll back), why, and the restore and replay estimates compared.",
        "example:\n  exoflow-spark explain sales-2026-11-24 --recovery cost",
    )
    p.add_argument("workflow_id")
    p.add_argument(
        "--recovery",
        choices=["restore", "cost"],
        default="restore",
        help="plan for this strategy (default: restore)",
    )
    p.set_defaults(fn=_cmd_explain)

    def run_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--master", help="Spark master (default: the profile's)")
        p.add_argument(
            "--recovery",
            choices=["restore", "cost"],
            default="restore",
            help="recovery strategy for a module:function target (default: restore)",
        )
        p.add_argument("--max-parallel", type=int, default=4, help="tasks running at once")
        p.add_argument(
            "--checkpoint",
            choices=sorted(CHECKPOINT_POLICIES),
            default=None,
            help="checkpoint policy of every task that declares no checkpoint option: auto "
            "(write only what is dearer to recompute than to write, from measured costs), "
            "none (default), async, sync; passed to a job script as --checkpoint-policy",
        )
        p.add_argument(
            "--no-progress",
            action="store_true",
            help="no live progress line (it is shown only on a terminal anyway)",
        )

    p = add(
        "run",
        "run a job script or a module:function DAG under a workflow id",
        "Run a workflow. TARGET is either\n"
        "  * a job script (path/to/job.py): run in this process as __main__ with the\n"
        "    arguments after --; --workflow-id, --storage, --profile and --master are passed\n"
        "    on to it (jobs built on exoflow_spark.entry.job_arg_parser accept them); or\n"
        "  * module:function or path/to/file.py:function: called with the arguments after\n"
        "    -- (as strings); it returns the DAG's output node (task.bind(...)), which runs\n"
        "    on a session built from the profile, with live progress on a terminal; or\n"
        "  * a Spark Declarative Pipelines spec (path/to/spark-pipeline.yml): one update of\n"
        "    the project as workflow <pipeline>-<n> (docs/declarative-pipelines.md).\n"
        "Running the same workflow id again resumes it. The target and its arguments are\n"
        "logged with the run, so `exoflow-spark resume ID` can start it again.",
        "examples:\n"
        "  exoflow-spark run jobs/etl_pipeline.py --workflow-id demo -- --rows 100000\n"
        "  exoflow-spark run my_pkg.pipelines:build_dag --workflow-id d1 -- /raw /lake\n"
        "  exoflow-spark run flows.py:nightly --workflow-id n1 --invalidate gold\n"
        "  exoflow-spark run my_pipeline/spark-pipeline.yml --refresh gold --dry-run",
    )
    p.add_argument(
        "target",
        help="path/to/job.py, module:function or file.py:function; the job's own arguments "
        "follow a --",
    )
    p.add_argument("--workflow-id", help="run (or resume) under this id")
    p.add_argument(
        "--invalidate",
        action="append",
        metavar="TASK",
        help="re-run this committed task and everything downstream (repeatable; "
        "module:function targets)",
    )
    p.add_argument(
        "--replace",
        action="store_true",
        help="let this workflow id run a DAG other than the one it logged (other tasks, "
        "edges or output): unchanged committed tasks are kept (module:function targets)",
    )
    pipelines.add_run_arguments(p)
    run_options(p)
    p.set_defaults(fn=_cmd_run)

    p = add(
        "resume",
        "start a crashed / failed workflow's job again under the same id",
        "Resume a workflow: committed tasks are restored, the rest runs. Functions are never "
        "unpickled from storage, so the DAG is rebuilt by starting the same job again, as "
        "the log recorded it: the `exoflow-spark run` target and arguments, or the job "
        "script's command line (python path/to/job.py ...). A workflow started any other way "
        "(a notebook, a test) is resumed by running its DAG again with the same workflow id.",
        "examples:\n  exoflow-spark resume sales-2026-11-24\n"
        "  exoflow-spark resume sales-2026-11-24 --storage s3a://lake/exo --profile cluster",
    )
    p.add_argument("workflow_id")
    p.add_argument(
        "--force", action="store_true", help="start the job even if the workflow is SUCCESSFUL"
    )
    run_options(p)
    p.set_defaults(fn=_cmd_resume)

    p = add(
        "show",
        "draw the DAG (text, svg, png, mermaid, dot) or the run timeline",
        "Draw the workflow's DAG: tasks coloured by state (COMMITTED, DONE, RUNNING, "
        "FAILED, PENDING), outlined by checkpoint mode (thin: none, thick: sync, dashed: "
        "async). With --timeline: a Gantt chart of every run (task function spans and "
        "checkpoint writes).",
        "examples:\n"
        "  exoflow-spark show sales-2026-11-24                       # text tree\n"
        "  exoflow-spark show sales-2026-11-24 --format mermaid      # paste into Markdown\n"
        "  exoflow-spark show sales-2026-11-24 --output dag.png\n"
        "  exoflow-spark show sales-2026-11-24 --timeline --output timeline.png",
    )
    p.add_argument("workflow_id")
    p.add_argument(
        "--format",
        choices=["text", "svg", "png", "mermaid", "dot"],
        help="default: from --output's extension, else text",
    )
    p.add_argument("--output", "-o", help="write to this file")
    p.add_argument("--timeline", action="store_true", help="the run timeline instead of the DAG")
    p.add_argument("--run", type=int, help="timeline of this run only")
    p.set_defaults(fn=_cmd_show)

    p = add(
        "history",
        "every run, crash and recovery decision of a workflow",
        "Every run of a workflow: when, who, how it ended (a killed driver leaves no end "
        "record), the recovery plan it logged (each task's action and why), task errors, "
        "roll-backs, what it committed, and checkpoint tables deleted by gc.",
        "example:\n  exoflow-spark history sales-2026-11-24 --json",
    )
    p.add_argument("workflow_id")
    p.set_defaults(fn=_cmd_history)

    p = add(
        "gc",
        "delete checkpoint tables no workflow needs any more",
        "Delete checkpoint tables (<root>/workflows/<id>/refs/<task>) that no workflow "
        "needs. Kept: everything of a RUNNING workflow; every checkpoint the next run of a "
        "RESUMABLE / FAILED / CANCELED workflow restores (planned from its log, for both "
        "recovery strategies); the output of a SUCCESSFUL workflow (unless "
        "--include-outputs). Commit records stay in the log; deletions are logged.",
        "examples:\n  exoflow-spark gc --dry-run\n  exoflow-spark gc sales-2026-11-24 "
        "--include-outputs",
    )
    p.add_argument("workflow_ids", nargs="*", help="only these workflows (default: all)")
    p.add_argument("--dry-run", action="store_true", help="list what would go; delete nothing")
    p.add_argument(
        "--include-outputs",
        action="store_true",
        help="also delete SUCCESSFUL workflows' output checkpoints (get_output then fails)",
    )
    p.set_defaults(fn=_cmd_gc)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``exoflow-spark`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # everything after the first "--" belongs to the job (`run TARGET [options] -- ARGS`)
    job_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, job_args = argv[:cut], argv[cut + 1 :]
    args = build_parser().parse_args(argv)
    if job_args and args.command != "run":
        print(f"exoflow-spark {args.command}: takes no job arguments after --", file=sys.stderr)
        return 2
    args.job_args = job_args
    args.profile_given = args.profile is not None
    if args.profile is None:
        args.profile = os.environ.get("EXOFLOW_PROFILE", "local")
    try:
        return int(args.fn(args))
    except WorkflowNotFoundError as exc:
        print(f"exoflow-spark: {exc}", file=sys.stderr)
        return 2
    except _RUN_FAILURES as exc:
        print(f"exoflow-spark: {exc}", file=sys.stderr)
        return 1
    except ExoflowError as exc:
        print(f"exoflow-spark: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
