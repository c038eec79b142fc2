"""Validation of workflow and task ids before they touch a path or a SQL identifier."""

from __future__ import annotations

import re

from .errors import InvalidIdError

MAX_ID_LENGTH = 128
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def validate_id(value: object, *, kind: str = "workflow id") -> str:
    """Return ``value`` if it is a safe id, else raise :class:`InvalidIdError`.

    A safe id is 1-128 characters of letters, digits, ``_``, ``-`` and ``.``, starting with a
    letter or digit, and is not made only of dots: it can never name a parent directory, hold a
    path separator, a URI scheme or a quote.

    Example:
        >>> validate_id("sales-2026-11-24")
        'sales-2026-11-24'
    """
    if not isinstance(value, str):
        raise InvalidIdError(f"{kind} must be a string, got {type(value).__name__}: {value!r}")
    if not value:
        raise InvalidIdError(f"{kind} must not be empty")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidIdError(
            f"{kind} {value[:40]!r}... is {len(value)} characters long; the limit is "
            f"{MAX_ID_LENGTH}"
        )
    if ".." in value or not _ID_RE.match(value):
        raise InvalidIdError(
            f"{kind} {value!r} is not allowed: use letters, digits, '_', '-' and '.', starting "
            "with a letter or digit, with no '..' (ids become path components under the "
            "storage root)"
        )
    return value
