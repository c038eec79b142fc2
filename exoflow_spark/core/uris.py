"""Storage URIs: which roots are local paths, and the schemes that are object stores."""

from __future__ import annotations

import os
from urllib.parse import urlparse

#: schemes with no atomic rename: the log commits there with a conditional put
OBJECT_STORE_SCHEMES = frozenset(
    {"s3", "s3a", "s3n", "gs", "abfs", "abfss", "wasb", "wasbs", "oss", "cos", "dbfs"}
)


def is_local(root: str) -> bool:
    """True for a plain path or a ``file:`` URI."""
    scheme = urlparse(root).scheme
    return scheme in ("", "file") or (len(scheme) == 1 and os.name == "nt")


def local_path(root: str) -> str:
    """The absolute local path of a plain path or ``file:`` URI."""
    parsed = urlparse(root)
    path = parsed.path if parsed.scheme == "file" else root
    return os.path.abspath(os.path.expanduser(path))
