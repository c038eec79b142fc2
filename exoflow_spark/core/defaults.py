"""Process-wide defaults: the storage root used when ``storage=`` is not given."""

from __future__ import annotations

import logging
import os

logger = logging.getLogger(__name__)

STORAGE_ENV = "EXOFLOW_STORAGE"
_default_storage: str | None = None


def set_default_storage(storage: str | None) -> None:
    """Set the storage root used when a call passes no ``storage=`` (None: back to default).

    Example:
        >>> xf.set_default_storage("s3a://lake/exo")
    """
    global _default_storage
    _default_storage = storage


def resolve_storage(storage: str | None) -> str:
    """``storage``, else :func:`set_default_storage`'s, else ``$EXOFLOW_STORAGE``, else
    ``./exoflow-data`` (the embedded default: a local directory)."""
    if storage:
        return storage
    if _default_storage:
        return _default_storage
    env = os.environ.get(STORAGE_ENV)
    if env:
        return env
    path = os.path.abspath("exoflow-data")
    logger.info("no storage root given: using the local directory %s", path)
    return path
