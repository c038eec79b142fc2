"""Validation of workflow and task ids before they touch a path or a SQL identifier."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from ..errors import InvalidIdError

MAX_ID_LENGTH = 128
#: ASCII only (no look-alike letters, no separators, no quotes); matched with ``fullmatch``
#: because ``$`` would also accept a trailing newline.
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")


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
    if ".." in value or not _ID_RE.fullmatch(value):
        raise InvalidIdError(
            f"{kind} {value!r} is not allowed: use letters, digits, '_', '-' and '.', starting "
            "with a letter or digit, with no '..' (ids become path components under the "
            "storage root)"
        )
    return value


#: Characters a storage root may not hold: it is embedded in Delta SQL as a quoted
#: identifier (``delta.`<path>```) and written into log records and log lines.
_UNSAFE_ROOT_CHARS = frozenset("`\x00\n\r")


def validate_storage_root(value: object) -> str:
    """Return ``value`` if it can be used as a storage root, else raise :class:`InvalidIdError`.

    A storage root is a local path or a URI chosen by whoever runs the job, so it is not
    limited like ids are; it must be a non-empty string without backticks, NUL or line
    breaks (which would end the quoted identifier of a ``delta.`<path>``` SQL reference or
    forge a log line), and without a password in its URI (credentials belong in the
    Spark/Hadoop configuration, never in a path that is logged and recorded).

    Example:
        >>> validate_storage_root("s3a://lake/exo")
        's3a://lake/exo'
    """
    if not isinstance(value, str) or not value.strip():
        raise InvalidIdError(f"storage root must be a non-empty string, got {value!r}")
    bad = sorted(_UNSAFE_ROOT_CHARS & set(value))
    if bad:
        from .redact import redact

        raise InvalidIdError(
            f"storage root {redact(value)!r} contains {bad!r}, which is not allowed in a "
            "storage root (it would break out of a quoted SQL identifier or a log line): "
            "choose a path without backticks, NUL or line breaks"
        )
    try:
        password = urlsplit(value).password
    except ValueError:  # e.g. an unbalanced '[' in the host: not a URI with credentials
        password = None
    if password is not None:
        from .redact import redact

        raise InvalidIdError(
            f"storage root {redact(value)!r} carries a password in its URI (user:password@). "
            "Credentials in URIs end up in logs and in Delta's table paths (Hadoop's S3A "
            "ignores them, and Delta then refuses the table): set them in the Spark/Hadoop "
            "configuration instead (e.g. spark.hadoop.fs.s3a.access.key / secret.key, or a "
            "credentials provider) and use the plain URI"
        )
    return value
