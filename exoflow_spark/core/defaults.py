"""Process-wide defaults: the storage root used when ``storage=`` is not given."""

from __future__ import annotations

import logging
import os

from ..errors import StorageRootError
from .ids import validate_storage_root

logger = logging.getLogger(__name__)

STORAGE_ENV = "EXOFLOW_STORAGE"
_default_storage: str | None = None


def _checked(storage: object, where: str) -> str:
    """``storage`` if it is usable as a storage root, else a StorageRootError saying so."""
    if isinstance(storage, str) and not storage.strip():
        raise StorageRootError(
            f"{where} is empty, which names no storage root: pass a local path or a "
            "URI (s3a://bucket/exo, ...), or leave it out (None) to use the default "
            f"(set_default_storage, ${STORAGE_ENV}, else ./exoflow-data)"
        )
    if not isinstance(storage, str):
        raise StorageRootError(
            f"{where} must be a local path or a URI given as a string, not "
            f"{type(storage).__name__} {storage!r}"
        )
    return validate_storage_root(storage)


def set_default_storage(storage: str | None) -> None:
    """Set the storage root used when a call passes no ``storage=`` (None: back to default).

    Raises:
        StorageRootError: ``storage`` is not a string (or None), or is empty.

    Example:
        >>> xf.set_default_storage("s3a://lake/exo")
    """
    global _default_storage
    _default_storage = None if storage is None else _checked(storage, "set_default_storage(...)")


def resolve_storage(storage: str | None) -> str:
    """``storage``, else :func:`set_default_storage`'s, else ``$EXOFLOW_STORAGE``, else
    ``./exoflow-data`` (the embedded default: a local directory).

    Raises:
        StorageRootError: ``storage`` is given but is not a string, or is empty (``""`` does
            not mean "the default": pass None for that).
    """
    if storage is not None:
        return _checked(storage, f"storage={storage!r}")
    if _default_storage:
        return _default_storage
    env = os.environ.get(STORAGE_ENV)
    if env and env.strip():  # an empty variable counts as unset, as shells treat it
        return env
    path = os.path.abspath("exoflow-data")
    logger.info("no storage root given: using the local directory %s", path)
    return path
