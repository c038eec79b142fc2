"""Where the workflow log lives: a tiny file API with an atomic create-if-absent.

Two implementations, chosen by the storage root's scheme:

* :class:`LocalLogFS` for plain paths and ``file:`` URIs: pure Python, no JVM round trips.
  ``put_if_absent`` writes a temporary file, fsyncs it and ``os.link``s it into place, which
  is atomic and fails if the name exists: a reader sees a whole record or none.
* :class:`HadoopLogFS` for every other scheme Delta reaches (``s3a://``, ``abfss://``,
  ``gs://``, ``hdfs://``, ``dbfs:/``): Hadoop's FileSystem through the JVM. On object stores a
  record is one ``create(overwrite=false)`` stream (an object appears whole on close); on
  file systems with atomic rename (hdfs, file) it is written aside and renamed into place.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol, TypeVar
from urllib.parse import urlparse

from .errors import StorageError

T = TypeVar("T")

OBJECT_STORE_SCHEMES = frozenset(
    {"s3", "s3a", "s3n", "gs", "abfs", "abfss", "wasb", "wasbs", "oss", "cos", "dbfs"}
)


class LogFS(Protocol):
    """The operations the workflow log needs; paths are relative to the storage root."""

    root: str

    def put_if_absent(self, rel: str, data: bytes, durable: bool = True) -> bool: ...
    def put(self, rel: str, data: bytes) -> None: ...
    def get(self, rel: str) -> bytes | None: ...
    def list_files(self, rel_dir: str) -> list[str]: ...
    def list_dirs(self, rel_dir: str) -> list[str]: ...
    def uri(self, rel: str) -> str: ...


def is_local(root: str) -> bool:
    """True for a plain path or a ``file:`` URI."""
    scheme = urlparse(root).scheme
    return scheme in ("", "file") or (len(scheme) == 1 and os.name == "nt")


def local_path(root: str) -> str:
    """The absolute local path of a plain path or ``file:`` URI."""
    parsed = urlparse(root)
    path = parsed.path if parsed.scheme == "file" else root
    return os.path.abspath(os.path.expanduser(path))


def with_retries(what: str, fn: Callable[[], T], attempts: int = 4, first_delay: float = 0.1) -> T:
    """Run ``fn``; on ``OSError`` retry with exponential backoff, then raise StorageError."""
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except (FileExistsError, FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise
        except OSError as exc:
            if attempt == attempts:
                raise StorageError(
                    f"{what} failed after {attempts} attempts: {exc}. Check that the storage "
                    "root is reachable and has free space; the workflow can be resumed"
                ) from exc
            time.sleep(delay)
            delay *= 4
    raise AssertionError("unreachable")  # pragma: no cover


class LocalLogFS:
    """The workflow log on a local (or locally mounted) file system."""

    def __init__(self, root: str) -> None:
        self.root = local_path(root)

    def _abs(self, rel: str) -> str:
        return os.path.join(self.root, *rel.split("/"))

    def uri(self, rel: str) -> str:
        return self._abs(rel)

    def put_if_absent(self, rel: str, data: bytes, durable: bool = True) -> bool:
        """Create ``rel`` with ``data`` unless it exists; ``durable`` fsyncs file and folder."""
        final = self._abs(rel)

        def attempt() -> bool:
            directory = os.path.dirname(final)
            os.makedirs(directory, exist_ok=True)
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
            os.makedirs(os.path.dirname(final), exist_ok=True)
            tmp = f"{final}.tmp-{uuid.uuid4().hex}"
            with open(tmp, "wb") as fh:
                fh.write(data)
            os.replace(tmp, final)

        with_retries(f"writing {final}", attempt)

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


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class HadoopLogFS:
    """The workflow log through Hadoop's FileSystem API (any scheme Spark can reach).

    Needs a classic SparkSession (Py4J); Spark Connect sessions have no JVM on the client.
    """

    def __init__(self, root: str, spark: Any) -> None:
        jvm = getattr(spark, "_jvm", None)
        if jvm is None:
            sc = getattr(spark, "sparkContext", None)
            jvm = getattr(sc, "_jvm", None) if sc is not None else None
        if jvm is None:
            raise StorageError(
                f"storage root {root!r} needs Hadoop's FileSystem, which is reached through a "
                "classic SparkSession; on Spark Connect use a local or mounted path for the log"
            )
        self.root = root.rstrip("/")
        self._jvm = jvm
        self._conf = spark._jsc.hadoopConfiguration()
        self._object_store = urlparse(root).scheme.lower() in OBJECT_STORE_SCHEMES
        path = jvm.org.apache.hadoop.fs.Path(self.root)
        self._fs = path.getFileSystem(self._conf)

    def uri(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def _path(self, rel: str) -> Any:
        return self._jvm.org.apache.hadoop.fs.Path(self.uri(rel))

    def _write(self, path: Any, data: bytes, overwrite: bool) -> None:
        out = self._fs.create(path, overwrite)
        try:
            out.write(bytearray(data))
            out.hflush()
        finally:
            out.close()

    def put_if_absent(self, rel: str, data: bytes, durable: bool = True) -> bool:
        def attempt() -> bool:
            dst = self._path(rel)
            if self._fs.exists(dst):
                return False
            if self._object_store:
                try:
                    self._write(dst, data, False)
                except Exception as exc:  # FileAlreadyExistsException comes through Py4J
                    if "AlreadyExists" in str(exc):
                        return False
                    raise OSError(str(exc)) from exc
                return True
            tmp = self._path(f"{rel}.tmp-{uuid.uuid4().hex}")
            self._write(tmp, data, True)
            ok = bool(self._fs.rename(tmp, dst))
            if not ok:
                self._fs.delete(tmp, False)
            return ok

        return with_retries(f"writing log record {self.uri(rel)}", attempt)

    def put(self, rel: str, data: bytes) -> None:
        with_retries(f"writing {self.uri(rel)}", lambda: self._write(self._path(rel), data, True))

    def get(self, rel: str) -> bytes | None:
        def attempt() -> bytes | None:
            path = self._path(rel)
            if not self._fs.exists(path):
                return None
            stream = self._fs.open(path)
            try:
                return bytes(self._jvm.org.apache.commons.io.IOUtils.toByteArray(stream))
            finally:
                stream.close()

        return with_retries(f"reading {self.uri(rel)}", attempt)

    def list_files(self, rel_dir: str) -> list[str]:
        base = self._path(rel_dir)
        if not self._fs.exists(base):
            return []
        prefix = self._fs.makeQualified(base).toString().rstrip("/") + "/"
        it = self._fs.listFiles(base, True)
        out = []
        while it.hasNext():
            full = it.next().getPath().toString()
            rel = full[len(prefix) :] if full.startswith(prefix) else full.rsplit("/", 1)[-1]
            if ".tmp-" not in rel:
                out.append(rel)
        return sorted(out)

    def list_dirs(self, rel_dir: str) -> list[str]:
        base = self._path(rel_dir)
        if not self._fs.exists(base):
            return []
        return sorted(s.getPath().getName() for s in self._fs.listStatus(base) if s.isDirectory())


def open_logfs(root: str, spark: Any | None, backend: str | None = None) -> LogFS:
    """The log file system for ``root``: local unless the scheme (or ``backend``) says Hadoop."""
    if backend not in (None, "local", "hadoop"):
        raise StorageError(f"unknown log backend {backend!r}: use 'local' or 'hadoop'")
    if backend == "hadoop" or (backend is None and not is_local(root)):
        if spark is None:
            raise StorageError(
                f"storage root {root!r} is not a local path: pass spark=... (or have an active "
                "SparkSession) so the log can be reached through Hadoop's FileSystem"
            )
        return HadoopLogFS(
            root if not is_local(root) or "://" in root else "file://" + local_path(root), spark
        )
    return LocalLogFS(root)
