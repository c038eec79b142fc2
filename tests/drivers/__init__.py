"""Driver programs the tests start as their own processes, and the one way to start them.

Every test that runs a driver in a separate process (its own JVM, often SIGKILLed) goes through
:func:`start_driver` (a running process) or :func:`run_driver` (run to the end, with a timeout).
They fix what a driver process gets: this interpreter, loopback networking, a crash point if
asked (``EXOFLOW_CRASH_AT``), a ``PYTHONPATH`` that finds the same ``exoflow_spark`` the tests
import and this package (the driver programs do ``from drivers import driver_session``), the
working directory, and captured text output.

The driver programs live next to this file (``crash_job.py``, ``concurrent_job.py``, ...); a
program may also be any script path (``REPO / "jobs" / "etl_pipeline.py"``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import exoflow_spark as xf

DRIVERS = Path(__file__).resolve().parent
TESTS = DRIVERS.parent
REPO = TESTS.parent
#: the directory holding the ``exoflow_spark`` the tests import (the checkout under test)
PACKAGE_ROOT = Path(xf.__file__).resolve().parent.parent

#: seconds a driver may run before :func:`run_driver` kills it
DEFAULT_TIMEOUT = 300
#: every driver started in this process; tests/conftest.py kills those a test left running
STARTED: list[subprocess.Popen[str]] = []

DRIVER_CONF = {
    "spark.ui.enabled": "false",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.sql.ui.retainedExecutions": "20",
}


def driver_session(master: str, app_name: str, shuffle_partitions: int = 2) -> Any:
    """A quiet SparkSession for a driver process started by a test."""
    spark = xf.create_spark_session(
        master,
        app_name=app_name,
        conf={**DRIVER_CONF, "spark.sql.shuffle.partitions": str(shuffle_partitions)},
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def executor_ids(spark: Any) -> set[str]:
    """The executors the driver's scheduler has registered now."""
    ids = spark.sparkContext._jsc.sc().getExecutorIds()
    return {ids.apply(i) for i in range(ids.size())}


def wait_for_executors(
    spark: Any, count: int, replaced: Collection[str] = (), timeout: float = 120.0
) -> set[str]:
    """Block until ``count`` executors are registered (on a standalone master or
    local-cluster the first job does not wait for them), and, if ``replaced`` is given, not
    exactly those (one of them was killed and must have been replaced); return them."""
    deadline = time.time() + timeout
    while True:
        ids = executor_ids(spark)
        if len(ids) == count and (not replaced or ids != set(replaced)):
            return ids
        if time.time() > deadline:
            raise TimeoutError(f"no {count} fresh executors (have {ids}, had {replaced})")
        time.sleep(0.2)


def driver_env(
    crash_at: str | None = None, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of a driver subprocess: loopback only, a crash point if asked, and a
    ``PYTHONPATH`` that finds the package under test and this package first."""
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}
    env.pop("EXOFLOW_CRASH_AT", None)
    if crash_at:
        env["EXOFLOW_CRASH_AT"] = crash_at
    paths = [str(PACKAGE_ROOT), str(TESTS)]
    paths += [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p not in paths]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    if extra:
        env.update(extra)
    return env


def driver_command(program: str | Path, *args: object) -> list[str]:
    """``python <program> <args>``: a bare name is a driver program of this package."""
    path = Path(program)
    if not path.is_absolute():
        path = DRIVERS / path
    if not path.is_file():
        raise FileNotFoundError(f"no driver program {path}")
    return [sys.executable, str(path), *(str(a) for a in args)]


def start_driver(
    program: str | Path,
    *args: object,
    crash_at: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    merge_stderr: bool = False,
    capture: bool = True,
    log: Path | None = None,
) -> subprocess.Popen[str]:
    """Start ``program`` as a driver process and return it running.

    Its stdout and stderr are captured as text (stderr into stdout with ``merge_stderr``);
    read them with ``proc.communicate(timeout=...)``. Without ``capture`` both go to the file
    ``log`` (appended to), or are discarded without one (for a driver nobody reads, which a
    full pipe would otherwise block). ``env`` adds to :func:`driver_env`.
    """
    sink: Any = subprocess.DEVNULL
    if not capture and log is not None:
        sink = open(log, "a")  # noqa: SIM115 - the child holds it; closed below
    if capture:
        out, err = subprocess.PIPE, subprocess.STDOUT if merge_stderr else subprocess.PIPE
    else:  # both into the log, or both discarded
        out, err = sink, subprocess.STDOUT
    try:
        proc = subprocess.Popen(
            driver_command(program, *args),
            env=driver_env(crash_at, env),
            cwd=None if cwd is None else str(cwd),
            stdout=out,
            stderr=err,
            text=True,
        )
    finally:
        if sink is not subprocess.DEVNULL:
            sink.close()  # the child has its own descriptor
    STARTED.append(proc)
    return proc


def run_driver(
    program: str | Path,
    *args: object,
    crash_at: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """Run ``program`` to its end (killed after ``timeout`` seconds, which fails the test with
    the output so far); return its exit code and captured text output."""
    proc = start_driver(program, *args, crash_at=crash_at, env=env, cwd=cwd)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(
            f"driver {program} ran longer than {timeout} s and was killed:\n{err[-3000:]}"
        ) from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def stop(proc: subprocess.Popen[str]) -> None:
    """Kill a driver still running (a test's cleanup); a finished one is left alone."""
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


def stop_all() -> list[str]:
    """Kill every driver started here that still runs (a test that failed before it waited
    for its driver leaves it running otherwise: a stream runs forever); their commands."""
    left = []
    while STARTED:
        proc = STARTED.pop()
        if proc.poll() is None:
            left.append(" ".join(map(str, proc.args)))
            stop(proc)
    return left
