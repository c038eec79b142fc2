"""Where the workflow log lives: a tiny file API with an atomic create-if-absent.

Two implementations, chosen by the storage root's scheme:

* :class:`LocalLogFS` for plain paths and ``file:`` URIs: pure Python, no JVM round trips.
  ``put_if_absent`` writes a temporary file, fsyncs it and ``os.link``s it into place, which
  is atomic and fails if the name exists: a reader sees a whole record or none.
* :class:`~exoflow_spark.spark.hadoop.HadoopLogFS` for every other scheme Delta reaches
  (``s3a://``, ``abfss://``, ``gs://``, ``hdfs://``, ``dbfs:/``): Hadoop's FileSystem through
  the JVM, with a conditional put on object stores (see :mod:`exoflow_spark.spark.hadoop`).

Every message that names a location goes through :func:`exoflow_spark._redact.redact`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from typing import Any, Protocol

from ..core.redact import redact
from ..core.retry import with_retries
from ..core.uris import is_local, local_path
from ..errors import StorageError, StorageRootError
from ..spark.hadoop import HadoopLogFS

logger = logging.getLogger(__name__)


class LogFS(Protocol):
    """The operations the workflow log needs; paths are relative to the storage root."""

    root: str

    def put_if_absent(self, rel: str, data: bytes, durable: bool = True) -> bool: ...
    def put(self, rel: str, data: bytes) -> None: ...
    def exists(self, rel: str) -> bool: ...
    def get(self, rel: str) -> bytes | None: ...
    def list_files(self, rel_dir: str) -> list[str]: ...
    def list_dirs(self, rel_dir: str) -> list[str]: ...
    def uri(self, rel: str) -> str: ...


class LocalLogFS:
    """The workflow log on a local (or locally mounted) file system."""

    def __init__(self, root: str) -> None:
        self.root = local_path(root)
        _check_local_root(self.root)

    def _makedirs(self, directory: str) -> None:
        """Create ``directory`` (under the root); a root that cannot hold folders is named."""
        try:
            os.makedirs(directory, exist_ok=True)
        except (FileNotFoundError, FileExistsError, NotADirectoryError) as exc:
            _check_local_root(self.root)
            raise StorageRootError(
                f"storage root {redact(self.root)!r} cannot hold the workflow log: creating "
                f"{redact(directory)} failed ({exc.strerror or exc}). Choose a directory you "
                "can write (it is created if missing) with storage=... or --storage"
            ) from exc

    def _abs(self, rel: str) -> str:
        return os.path.join(self.root, *rel.split("/"))

    def uri(self, rel: str) -> str:
        return self._abs(rel)

    def put_if_absent(self, rel: str, data: bytes, durable: bool = True) -> bool:
        """Create ``rel`` with ``data`` unless it exists; ``durable`` fsyncs file and folder."""
        final = self._abs(rel)

        def attempt() -> bool:
            directory = os.path.dirname(final)
            self._makedirs(directory)
            tmp = os.path.join(directory, f".tmp-{uuid.uuid4().hex}")
            try:
                with open(tmp, "wb") as fh:
                    fh.write(data)
                    if durable:
                        fh.flush()
                        os.fsync(fh.fileno())
                try:
                    os.link(tmp, final)
                except FileExistsError:
                    return False
                if durable:
                    _fsync_dir(directory)
                return True
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)

        return with_retries(f"writing log record {final}", attempt)

    def put(self, rel: str, data: bytes) -> None:
        final = self._abs(rel)

        def attempt() -> None:
            self._makedirs(os.path.dirname(final))
            tmp = f"{final}.tmp-{uuid.uuid4().hex}"
            with open(tmp, "wb") as fh:
                fh.write(data)
            os.replace(tmp, final)

        with_retries(f"writing {final}", attempt)

    def exists(self, rel: str) -> bool:
        return os.path.exists(self._abs(rel))

    def get(self, rel: str) -> bytes | None:
        path = self._abs(rel)

        def attempt() -> bytes | None:
            try:
                with open(path, "rb") as fh:
                    return fh.read()
            except FileNotFoundError:
                return None

        return with_retries(f"reading {path}", attempt)

    def list_files(self, rel_dir: str) -> list[str]:
        base = self._abs(rel_dir)
        out: list[str] = []
        for dirpath, _dirs, files in os.walk(base):
            rel = os.path.relpath(dirpath, base)
            for f in files:
                if not f.startswith(".tmp-") and ".tmp-" not in f:
                    out.append(f if rel == "." else f"{rel.replace(os.sep, '/')}/{f}")
        return sorted(out)

    def list_dirs(self, rel_dir: str) -> list[str]:
        base = self._abs(rel_dir)
        try:
            return sorted(e.name for e in os.scandir(base) if e.is_dir())
        except FileNotFoundError:
            return []


def _check_local_root(root: str) -> None:
    """Refuse a local storage root that is a file, or lies under one (so no folder can be
    made there), naming it; a root that does not exist yet is fine (it is created on the
    first write)."""
    path = os.path.abspath(root)
    while True:
        if os.path.isdir(path):
            return
        if os.path.lexists(path):
            what = "is a file" if path == os.path.abspath(root) else f"lies under the file {path}"
            raise StorageRootError(
                f"storage root {redact(root)!r} {what}, not a directory: pass a directory "
                "(it is created if missing) with storage=... or --storage"
            )
        parent = os.path.dirname(path)
        if parent == path:
            return
        path = parent


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_logfs(root: str, spark: Any | None, backend: str | None = None) -> LogFS:
    """The log file system for ``root``: local unless the scheme (or ``backend``) says Hadoop."""
    if backend not in (None, "local", "hadoop"):
        raise StorageError(f"unknown log backend {backend!r}: use 'local' or 'hadoop'")
    if backend == "hadoop" or (backend is None and not is_local(root)):
        if spark is None:
            raise StorageError(
                f"storage root {redact(root)!r} is not a local path: pass spark=... (or an active "
                "SparkSession) so the log can be reached through Hadoop's FileSystem"
            )
        return HadoopLogFS(
            root if not is_local(root) or "://" in root else "file://" + local_path(root), spark
        )
    return LocalLogFS(root)
