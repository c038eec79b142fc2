"""Streaming queries started over Spark Connect: the sink they write through, and the marker
that keeps a stream from switching its writer (classic ``foreachBatch`` keyed by
``txnAppId``, or Delta's sink keyed by the query id) while a batch is in flight.
(tests/integration/test_connect.py runs them on a real server.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from exoflow_spark.errors import InvalidOptionError, SinkError
from exoflow_spark.io.streaming import (
    SinkTarget,
    StreamBatch,
    StreamOptions,
    _connect_sink,
    switch_writer,
)
from exoflow_spark.storage.logfs import LocalLogFS


class Recorder:
    """A DataStreamWriter that records the calls made to it."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def __getattr__(self, name: str):
        def call(*args):
            self.calls.append((name, *args))
            return self

        return call


def test_connect_queries_write_through_the_formats_own_sink() -> None:
    w = _connect_sink(
        Recorder(), StreamOptions(), SinkTarget("delta", "/t", {"mergeSchema": "true"}), "t"
    )
    assert w.calls == [
        ("format", "delta"),
        ("outputMode", "append"),
        ("option", "mergeSchema", "true"),
    ]
    w = _connect_sink(Recorder(), StreamOptions(output_mode="complete"), SinkTarget(), "t")
    assert w.calls == [("format", "delta"), ("outputMode", "complete")]


def test_what_needs_this_driver_is_refused_over_connect() -> None:
    def custom(batch: StreamBatch) -> None:  # pragma: no cover - never called
        pass

    with pytest.raises(InvalidOptionError, match="foreach_batch function does not run over"):
        _connect_sink(None, StreamOptions(foreach_batch=custom), SinkTarget(), "t")
    with pytest.raises(InvalidOptionError, match="output_mode='update'"):
        _connect_sink(
            None, StreamOptions(output_mode="update", merge_keys=("k",)), SinkTarget(), "t"
        )


def batches(root: Path, offsets: list[int], commits: list[int]) -> None:
    for sub, ids in (("offsets", offsets), ("commits", commits)):
        (root / "ck" / sub).mkdir(parents=True, exist_ok=True)
        for i in ids:
            (root / "ck" / sub / str(i)).write_text("v1")
            (root / "ck" / sub / f".{i}.crc").write_text("")


def test_a_stream_switches_writer_only_between_batches(tmp_path: Path) -> None:
    fs = LocalLogFS(str(tmp_path))
    marker = tmp_path / "ck" / "exoflow-writer"
    switch_writer(fs, "ck", "foreach-batch", "t")  # a new classic stream: nothing written
    assert not marker.exists()
    batches(tmp_path, [0, 1], [0])  # classic batch 1 in flight
    with pytest.raises(SinkError, match="micro-batch 1 was started by a classic SparkSession"):
        switch_writer(fs, "ck", "sink", "t")
    assert not marker.exists()
    switch_writer(fs, "ck", "foreach-batch", "t")  # the classic resume is allowed
    batches(tmp_path, [], [1])  # ... and finished batch 1
    switch_writer(fs, "ck", "sink", "t")
    assert marker.read_text() == "sink"
    batches(tmp_path, [2], [])  # a Connect batch in flight
    with pytest.raises(SinkError, match="micro-batch 2 was started by a Spark Connect session"):
        switch_writer(fs, "ck", "foreach-batch", "t")
    switch_writer(fs, "ck", "sink", "t")
    batches(tmp_path, [], [2])
    switch_writer(fs, "ck", "foreach-batch", "t")
    assert marker.read_text() == "foreach-batch"


def test_a_new_connect_stream_records_its_writer(tmp_path: Path) -> None:
    switch_writer(LocalLogFS(str(tmp_path)), "ck", "sink", "t")
    assert (tmp_path / "ck" / "exoflow-writer").read_text() == "sink"
