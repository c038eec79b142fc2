"""Shared plumbing for entry points (``jobs/`` and the CLI): arguments, profile, session."""

from __future__ import annotations

import argparse
import os
from typing import Any

from ..core.options import CHECKPOINT_POLICIES, DEFAULT_CHECKPOINT_POLICY
from ..spark.session import create_spark_session
from .config import Profile, configure_logging, load_profile


def job_arg_parser(description: str, default_workflow_id: str) -> argparse.ArgumentParser:
    """An argument parser with the options every job takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--workflow-id",
        default=default_workflow_id,
        help="run (or resume) under this id; re-running the same id resumes "
        f"(default: {default_workflow_id})",
    )
    parser.add_argument(
        "--storage",
        help="storage root for the workflow log and checkpoints "
        "(local path or s3a://, abfss://, dbfs:/ ...; default: the profile's)",
    )
    parser.add_argument(
        "--master", help="Spark master (default: the profile's; under spark-submit, spark-submit's)"
    )
    parser.add_argument(
        "--remote",
        default=os.environ.get("SPARK_REMOTE"),
        help="Spark Connect URL (sc://host:port): run through that server instead of a local "
        "driver JVM (default: $SPARK_REMOTE; see docs/spark-connect.md)",
    )
    parser.add_argument(
        "--profile",
        default=os.environ.get("EXOFLOW_PROFILE", "local"),
        help="profile in conf/profiles.toml (default: local)",
    )
    parser.add_argument(
        "--log-level",
        default=None,
        help="exoflow_spark log level (INFO, ...; default: the profile's log_level)",
    )
    return parser


def add_checkpoint_policy(parser: argparse.ArgumentParser) -> None:
    """Add ``--checkpoint-policy`` (``xf.run(checkpoint=...)``) to a job's parser: the policy
    of every task that declares no checkpoint option (``exoflow-spark run --checkpoint``
    passes it on)."""
    parser.add_argument(
        "--checkpoint-policy",
        choices=sorted(CHECKPOINT_POLICIES),
        default=DEFAULT_CHECKPOINT_POLICY,
        help="checkpoint policy of tasks that declare none: auto (write only outputs dearer "
        f"to recompute than to write), none, async, sync (default: {DEFAULT_CHECKPOINT_POLICY})",
    )


def under_spark_submit() -> bool:
    """True when launched by spark-submit (it sets the master itself)."""
    return "SPARK_SUBMIT_OPTS" in os.environ or os.environ.get("SPARK_ENV_LOADED") == "1"


def start(args: argparse.Namespace, app_name: str) -> tuple[Any, Profile, str]:
    """Configure logging, load the profile and build the session; returns (spark, profile,
    storage root). With ``--remote`` the session is a Spark Connect client."""
    profile = load_profile(args.profile)
    configure_logging(args.log_level or profile.log_level)
    remote = getattr(args, "remote", None)
    if remote:
        # the server owns the static settings (Delta, memory, jars); none from the profile
        spark = create_spark_session(None, app_name=app_name, remote=remote)
    else:
        master = args.master or (None if under_spark_submit() else profile.master or "local[*]")
        spark = create_spark_session(master, app_name=app_name, conf=profile.spark)
    storage = args.storage or profile.storage or "./exoflow-data"
    if "://" not in storage and not storage.startswith("dbfs:"):
        storage = os.path.abspath(storage)
    return spark, profile, storage
