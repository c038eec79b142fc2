"""What a task may return or take: DataFrames (classic or Spark Connect) and small JSON values.

Recognising a DataFrame needs no pyspark import: a value is one when its class is, or derives
from, a ``DataFrame`` class defined in ``pyspark.sql`` (classic) or ``pyspark.sql.connect``.
"""

from __future__ import annotations

from typing import Any

#: Largest value (as JSON) a task may return inline; larger outputs should be DataFrames.
MAX_VALUE_BYTES = 1 << 20


def is_dataframe(value: Any) -> bool:
    """True for classic and Spark Connect DataFrames."""
    return any(
        cls.__name__ == "DataFrame" and cls.__module__.startswith("pyspark.sql")
        for cls in type(value).__mro__
    )
