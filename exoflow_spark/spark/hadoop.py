"""Hadoop's FileSystem through Py4J: the workflow log on any scheme Spark reaches, and the
listing, sizing and deletion of checkpoint files. The only module that calls Hadoop.

On object stores a log record is one ``createFile(overwrite=false)`` stream (an object appears
whole on close) that also asks for a conditional put (``fs.option.create.conditional.overwrite``:
S3A sends ``If-None-Match: *``, so two writers racing for one name cannot both win); on file
systems with atomic rename (hdfs, file) it is written aside and renamed into place.
"""

from __future__ import annotations

import logging
import os
import uuid
from typing import Any
from urllib.parse import urlparse

from ..core.fmt import error_line
from ..core.redact import redact
from ..core.retry import with_retries
from ..core.uris import OBJECT_STORE_SCHEMES, is_local, local_path
from ..errors import StorageError, StorageRootError

logger = logging.getLogger(__name__)

#: Hadoop's createFile() option for a put-if-absent on object stores (S3A: If-None-Match: *).
#: Passed with opt(), so file systems that do not know it ignore it.
CONDITIONAL_CREATE_OPTION = "fs.option.create.conditional.overwrite"

_ALREADY_EXISTS_MARKERS = ("AlreadyExists", "PreconditionFailed", "Precondition Failed", " 412")


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
        try:
            path = jvm.org.apache.hadoop.fs.Path(self.root)
            self._fs = path.getFileSystem(self._conf)
        except Exception as exc:  # Py4JJavaError: no FileSystem for the scheme, bad URI
            scheme = urlparse(root).scheme or "(none)"
            raise StorageRootError(
                f"storage root {redact(root)!r} cannot be reached: {redact(error_line(exc))}. "
                f"Use a local path, or a URI whose scheme ({scheme}:) a Hadoop FileSystem on "
                "the Spark classpath serves (s3a://, abfss://, gs://, hdfs://, with their "
                "connector jars and credentials configured)"
            ) from exc

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
            raise OSError(error_line(exc)) from exc

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
                    raise OSError(error_line(exc)) from exc
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


def delete_tree(spark: Any, path: str) -> None:
    """Delete ``path`` and everything under it (any scheme Spark reaches)."""
    try:
        jvm = spark._jvm
        p = jvm.org.apache.hadoop.fs.Path(path)
        p.getFileSystem(spark._jsc.hadoopConfiguration()).delete(p, True)
    except Exception:  # pragma: no cover - Spark Connect
        import shutil

        shutil.rmtree(path, ignore_errors=True)


def _filesystem(spark: Any | None, path: str) -> tuple[Any, Any]:
    """Hadoop's FileSystem for ``path`` and the path as a Hadoop Path."""
    if spark is None or getattr(spark, "_jvm", None) is None:
        raise StorageError(
            f"{redact(path)} needs Hadoop's FileSystem: pass spark=... (or have an active "
            "classic SparkSession)"
        )
    p = spark._jvm.org.apache.hadoop.fs.Path(path)
    return p.getFileSystem(spark._jsc.hadoopConfiguration()), p


def tree_size(spark: Any | None, path: str) -> int:
    """Bytes under ``path`` (one content-summary call)."""
    fs, p = _filesystem(spark, path)
    return int(fs.getContentSummary(p).getLength())


def delete_path(spark: Any | None, path: str) -> None:
    """Delete ``path`` recursively; raise StorageError if it is still there."""
    fs, p = _filesystem(spark, path)
    if not fs.delete(p, True) and fs.exists(p):
        raise StorageError(f"could not delete {redact(path)}")


def has_jvm(spark: Any) -> bool:
    """True for a classic session (Py4J reaches the JVM); False on Spark Connect."""
    return getattr(spark, "_jvm", None) is not None
