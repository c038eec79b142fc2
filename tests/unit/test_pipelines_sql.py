"""Splitting a pipeline's SQL file into statements (no Spark needed)."""

from __future__ import annotations

from exoflow_spark.surface.pipelines import _without_stream, split_sql


def test_split_sql_keeps_quoted_semicolons_and_drops_comments() -> None:
    text = (
        "-- a comment; with a semicolon\n"
        "CREATE MATERIALIZED VIEW a AS SELECT ';' AS s, `x;y` FROM b;\n"
        "\n"
        "/* block; comment */ CREATE STREAMING TABLE c\n"
        "AS SELECT * FROM STREAM(d) -- trailing; comment\n"
        ";\n"
        ";\n"
        "SET k = 'v;w'"
    )
    assert split_sql(text) == [
        (2, "CREATE MATERIALIZED VIEW a AS SELECT ';' AS s, `x;y` FROM b"),
        (4, "CREATE STREAMING TABLE c\nAS SELECT * FROM STREAM(d)"),
        (8, "SET k = 'v;w'"),
    ]


def test_stream_reads_become_plain_reads() -> None:
    assert _without_stream("SELECT * FROM STREAM(events) JOIN stream  db.t") == (
        "SELECT * FROM events JOIN db.t"
    )
