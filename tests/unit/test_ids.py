"""Ids are validated before they touch a path."""

from __future__ import annotations

import pytest

import exoflow_spark as xf
from exoflow_spark.core.ids import validate_id


@pytest.mark.parametrize("good", ["a", "sales-2026-11-24", "A_b.c-9", "x" * 128])
def test_valid_ids(good: str) -> None:
    assert validate_id(good) == good


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "..",
        "../x",
        "a/../b",
        "a/b",
        "a\\b",
        "/abs",
        ".hidden",
        "x" * 129,
        "s3a://b/k",
        "a b",
        "a;drop",
        "a`b",
        "a'b",
        "é",
        None,
        5,
    ],
)
def test_invalid_ids_are_refused(bad: object) -> None:
    with pytest.raises(xf.InvalidIdError):
        validate_id(bad)
