"""The cost model of a storage root: what a checkpoint read and write cost (a fixed cost per
read or write plus bytes over throughput), measured once per root and checkpoint format and
kept in ``<root>/_exoflow/throughput.json`` (``throughput-parquet.json`` for Parquet)."""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from ..spark.hadoop import delete_tree
from ..storage import layout
from ..storage.checkpoints import CheckpointFormat, read_checkpoint, write_checkpoint
from ..storage.logfs import LogFS

logger = logging.getLogger(__name__)

#: Used until the storage root's throughput has been measured.
ASSUMED_READ_BPS = 200e6
ASSUMED_WRITE_BPS = 100e6
ASSUMED_READ_FIXED_S = 0.15
ASSUMED_WRITE_FIXED_S = 0.4
THROUGHPUT_MAX_AGE_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class Throughput:
    """Measured (or assumed) cost model of a storage root: a fixed cost per Delta read or
    write (snapshot, listing, commit) plus bytes over throughput (bytes/s)."""

    read_bps: float = ASSUMED_READ_BPS
    write_bps: float = ASSUMED_WRITE_BPS
    read_fixed_s: float = ASSUMED_READ_FIXED_S
    write_fixed_s: float = ASSUMED_WRITE_FIXED_S
    measured_at: float | None = None

    @property
    def measured(self) -> bool:
        return self.measured_at is not None

    @property
    def fresh(self) -> bool:
        """Measured less than :data:`THROUGHPUT_MAX_AGE_SECONDS` ago (a storage's costs
        drift: a model older than that is measured again by the next run that needs it)."""
        return (
            self.measured_at is not None
            and time.time() - self.measured_at < THROUGHPUT_MAX_AGE_SECONDS
        )


def _throughput_rel(fmt: CheckpointFormat) -> str:
    """Where a storage root caches the cost model of one checkpoint format."""
    return layout.throughput_file(fmt)


def load_throughput(fs: LogFS, fmt: CheckpointFormat = "delta") -> Throughput:
    """The storage root's measured throughput for checkpoints written as ``fmt``, or the
    assumed defaults."""
    rel = _throughput_rel(fmt)
    raw = fs.get(rel)
    if raw is None:
        return Throughput()
    try:
        doc = json.loads(raw)
        return Throughput(
            **{k: float(doc[k]) for k in Throughput.__dataclass_fields__ if doc.get(k) is not None}
        )
    except (ValueError, KeyError, TypeError):
        logger.warning("ignoring unreadable %s", fs.uri(rel))
        return Throughput()


def measure_throughput(
    spark: Any,
    fs: LogFS,
    *,
    megabytes: int = 64,
    force: bool = False,
    fmt: CheckpointFormat = "delta",
) -> Throughput:
    """Measure checkpoint write and read throughput of the storage root (cached for a week,
    per checkpoint format: a Parquet checkpoint skips Delta's commit, so its fixed write cost
    is lower).

    Writes a one-row and a ``megabytes``-sized checkpoint of incompressible data under
    ``<root>/_exoflow/calibration`` in format ``fmt``, reads each back with Spark's ``noop``
    sink, deletes them: the one-row checkpoint gives the fixed cost per read and write, the
    difference gives bytes per second.
    """
    current = load_throughput(fs, fmt)
    if current.fresh and not force:
        return current
    from pyspark.sql import functions as F

    base = fs.uri(layout.calibration_dir(uuid.uuid4().hex))

    def sample(rows: int, name: str) -> tuple[int, float, float]:
        path = f"{base}/{name}"
        df = spark.range(rows).select(
            F.col("id"), F.sha2(F.col("id").cast("string"), 256).alias("h")
        )
        # the same write and read paths as checkpoints and restores
        dv = write_checkpoint(df, path, fmt)
        start = time.perf_counter()
        read_checkpoint(spark, dv).write.format("noop").mode("overwrite").save()
        return dv.num_bytes or rows * 40, dv.write_seconds, time.perf_counter() - start

    try:
        sample(1, "warmup")
        small = sample(1, "small")
        big = sample(max(megabytes, 1) * 1024 * 1024 // 40, "big")
    finally:
        delete_tree(spark, base)
    extra = max(big[0] - small[0], 1)
    tp = Throughput(
        read_bps=extra / max(big[2] - small[2], 1e-3),
        write_bps=extra / max(big[1] - small[1], 1e-3),
        read_fixed_s=small[2],
        write_fixed_s=small[1],
        measured_at=time.time(),
    )
    fs.put(_throughput_rel(fmt), json.dumps(asdict(tp)).encode())
    logger.info(
        "storage measured (%s checkpoints): read %.2f s + %.0f MB/s, write %.2f s + %.0f MB/s",
        fmt,
        tp.read_fixed_s,
        tp.read_bps / 1e6,
        tp.write_fixed_s,
        tp.write_bps / 1e6,
    )
    return tp
