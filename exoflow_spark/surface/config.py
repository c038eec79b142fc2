"""Profiles (``conf/profiles.toml``) and logging set-up for jobs and the command line.

The library never configures logging by itself: entry points call :func:`configure_logging`.
"""

from __future__ import annotations

import logging
import logging.config
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InvalidOptionError

CONF_DIR_ENV = "EXOFLOW_CONF_DIR"


def conf_dir() -> Path:
    """``$EXOFLOW_CONF_DIR``, else the ``conf/`` folder of a source checkout, else ``./conf``."""
    env = os.environ.get(CONF_DIR_ENV)
    if env:
        return Path(env)
    checkout = Path(__file__).resolve().parent.parent / "conf"
    return checkout if checkout.is_dir() else Path("conf")


@dataclass(frozen=True)
class Profile:
    """A named set of defaults: Spark master, storage root, Spark settings, and the
    ``exoflow_spark`` log level of jobs (``--log-level`` wins; None: ``logging.ini``'s)."""

    name: str
    master: str | None = None
    storage: str | None = None
    spark: dict[str, str] = field(default_factory=dict)
    log_level: str | None = None


def load_profile(name: str = "local", path: str | os.PathLike[str] | None = None) -> Profile:
    """Read one profile from ``profiles.toml``; environment variables override the file.

    Example:
        >>> load_profile("local").master
        'local[*]'
    """
    file = Path(path) if path else conf_dir() / "profiles.toml"
    data: dict[str, Any] = {}
    if file.exists():
        with open(file, "rb") as fh:
            data = tomllib.load(fh)
    if name not in data:
        if name == "local" and not data:
            data = {"local": {"master": "local[*]"}}
        else:
            raise InvalidOptionError(
                f"profile {name!r} is not defined in {file}; defined profiles: "
                f"{sorted(data) or 'none'}"
            )
    section = data[name]
    return Profile(
        name=name,
        master=os.environ.get("EXOFLOW_MASTER") or section.get("master"),
        storage=os.environ.get("EXOFLOW_STORAGE") or section.get("storage"),
        spark={str(k): str(v) for k, v in section.get("spark", {}).items()},
        log_level=section.get("log_level"),
    )


def configure_logging(level: str | None = None) -> None:
    """Configure logging from ``conf/logging.ini`` (or a plain format if it is missing)."""
    ini = conf_dir() / "logging.ini"
    if ini.exists():
        logging.config.fileConfig(ini, disable_existing_loggers=False)
    else:
        logging.basicConfig(format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    if level:
        logging.getLogger("exoflow_spark").setLevel(level.upper())
