"""Where the workflow log lives: a tiny file API with an atomic create-if-absent.

Two implementations, chosen by the storage root's scheme:

* :class:`LocalLogFS` for plain paths and ``file:`` URIs: pure Python, no JVM round trips.
  ``put_if_absent`` writes a temporary file, fsyncs it and ``os.link``s it into place, which
  is atomic and fails if the name exists: a reader sees a whole record or none.
* :class:`HadoopLogFS` for every other scheme Delta reaches (``s3a://``, ``abfss://``,
  ``gs://``, ``hdfs://``, ``dbfs:/``): Hadoop's FileSystem through the JVM. On object stores a
  record is one ``createFile(overwrite=false)`` stream (an object appears whole on close) that
  also asks for a conditional put (``fs.option.create.conditional.overwrite``: S3A sends
  ``If-None-Match: *``, so two writers racing for one name cannot both win); on file systems
  with atomic rename (hdfs, file) it is written aside and renamed into place.

Every message that names a location goes through :func:`exoflow_spark._redact.redact`.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol, TypeVar
from urllib.parse import urlparse

from ._redact import redact
from .errors import StorageError

T = TypeVar("T")
logger = logging.getLogger(__name__)

OBJECT_STORE_SCHEMES = frozenset(
    {"s3", "s3a", "s3n", "gs", "abfs", "abfss", "wasb", "wasbs", "oss", "cos", "dbfs"}
)

#: Hadoop's createFile() option for a put-if-absent on object stores (S3A: If-None-Match: *).
#: Passed with opt(), so file systems that do not know it ignore it.
CONDITIONAL_CREATE_OPTION = "fs.option.create.conditional.overwrite"

_ALREADY_EXISTS_MARKERS = ("AlreadyExists", "PreconditionFailed", "Precondition Failed", " 412")


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


def is_local(root: str) -> bool:
    """True for a plain path or a ``file:`` URI."""
    scheme = urlparse(root).scheme
    return scheme in ("", "file") or (len(scheme) == 1 and os.name == "nt")


def local_path(root: str) -> str:
    """The absolute local path of a plain path or ``file:`` URI."""
    parsed = urlparse(root)
    path = parsed.path if parsed.scheme == "file" else root
    return os.path.abspath(os.path.expanduser(path))


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
                f"storage root {redact(root)!r} needs Hadoop's FileSystem, reached through a "
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

    def _create_exclusive(self, path: Any, data: bytes) -> None:
        """One object, created only if absent: the check is the store's (a conditional put)
        where it has one, and the PUT happens on close, so a reader sees all or nothing."""
        builder = self._fs.createFile(path).overwrite(False)
        builder = builder.opt(CONDITIONAL_CREATE_OPTION, "true")
        out = builder.build()
        try:
            out.write(bytearray(data))
        finally:
            out.close()

    def exists(self, rel: str) -> bool:
        return bool(with_retries(f"checking {self.uri(rel)}", lambda: self._exists(rel)))

    def _exists(self, rel: str) -> bool:
        try:
            return bool(self._fs.exists(self._path(rel)))
        except Exception as exc:
            raise OSError(str(exc)) from exc

    def put_if_absent(self, rel: str, data: bytes, durable: bool = True) -> bool:
        def attempt() -> bool:
            dst = self._path(rel)
            if self._fs.exists(dst):
                return False
            if self._object_store:
                try:
                    self._create_exclusive(dst, data)
                except Exception as exc:  # FileAlreadyExists / 412 come through Py4J
                    if any(m in str(exc) for m in _ALREADY_EXISTS_MARKERS):
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
        # compare URI paths, not whole URIs: a file system may qualify names differently
        # (user info dropped, an authority added), but the path part is the same
        prefix = self._fs.makeQualified(base).toUri().getPath().rstrip("/") + "/"
        it = self._fs.listFiles(base, True)
        out = []
        while it.hasNext():
            full = it.next().getPath().toUri().getPath()
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
                f"storage root {redact(root)!r} is not a local path: pass spark=... (or an active "
                "SparkSession) so the log can be reached through Hadoop's FileSystem"
            )
        return HadoopLogFS(
            root if not is_local(root) or "://" in root else "file://" + local_path(root), spark
        )
    return LocalLogFS(root)


def missing_files(spark: Any, uris: list[str]) -> list[str]:
    """Which of ``uris`` (data files of a Delta version) no longer exist.

    One listing per folder rather than one probe per file, so checking a checkpoint of many
    files on an object store costs a few LIST requests.
    """
    if not uris:
        return []
    jvm = spark._jvm
    conf = spark._jsc.hadoopConfiguration()
    by_dir: dict[str, list[str]] = {}
    for u in uris:
        parent, _, _name = u.rstrip("/").rpartition("/")
        by_dir.setdefault(parent, []).append(u)
    gone: list[str] = []
    for parent, files in by_dir.items():
        path = jvm.org.apache.hadoop.fs.Path(parent)
        fs = path.getFileSystem(conf)
        try:
            present = {s.getPath().getName() for s in fs.listStatus(path)}
        except Exception as exc:
            if "FileNotFound" not in str(exc):
                raise OSError(redact(exc)) from exc
            present = set()
        gone.extend(f for f in files if jvm.org.apache.hadoop.fs.Path(f).getName() not in present)
    return gone


def data_file_sizes(spark: Any, directory: str) -> dict[str, int]:
    """Name -> size of the data files directly in ``directory`` (names starting with ``_``
    or ``.``, such as ``_SUCCESS`` and checksum files, are not data)."""

    def is_data(name: str) -> bool:
        return not name.startswith(("_", "."))

    if is_local(directory):
        with os.scandir(local_path(directory)) as it:
            return {e.name: e.stat().st_size for e in it if e.is_file() and is_data(e.name)}
    jvm = spark._jvm
    path = jvm.org.apache.hadoop.fs.Path(directory)
    fs = path.getFileSystem(spark._jsc.hadoopConfiguration())
    return {
        st.getPath().getName(): int(st.getLen())
        for st in fs.listStatus(path)
        if st.isFile() and is_data(st.getPath().getName())
    }
