"""Bounded retries with backoff for storage calls: transient errors are retried, permanent
ones (a full or read-only disk) fail at once, and either way the error says how to resume."""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Callable
from typing import TypeVar

from ..errors import StorageError
from .redact import redact

T = TypeVar("T")
logger = logging.getLogger(__name__)

#: errno values that retrying cannot fix: fail at once (and say why).
_PERMANENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.ENAMETOOLONG})


def with_retries(what: str, fn: Callable[[], T], attempts: int = 4, first_delay: float = 0.1) -> T:
    """Run ``fn``; on ``OSError`` retry with exponential backoff, then raise StorageError.

    Transient errors (a permission flap, a lost connection, a throttled request) are retried
    ``attempts`` times, waiting ``first_delay`` then 4x longer each time (0.1, 0.4, 1.6 s).
    A full disk, a read-only file system and a too-long name are not retried. Either way the
    error says the workflow can be resumed: nothing half-written is ever taken for a record.
    """
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except (FileExistsError, FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise
        except OSError as exc:
            permanent = exc.errno in _PERMANENT_ERRNOS
            if attempt == attempts or permanent:
                hint = (
                    "the storage is full or read-only: free space (or fix its permissions), "
                    "then re-run the same workflow id to resume"
                    if permanent
                    else "check that the storage root is reachable and has free space, then "
                    "re-run the same workflow id to resume"
                )
                raise StorageError(
                    f"{redact(what)} failed after {attempt} attempt(s): {redact(exc)}. {hint}"
                ) from exc
            logger.warning(
                "%s failed (attempt %d of %d, retrying in %.1fs): %s",
                what,
                attempt,
                attempts,
                delay,
                exc,
            )
            time.sleep(delay)
            delay *= 4
    raise AssertionError("unreachable")  # pragma: no cover
