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


def test_the_lexical_header_parser_finds_kind_name_and_query() -> None:
    from exoflow_spark.spark.sqlparse import lexical_statement as parse

    mv = parse(
        "CREATE OR REFRESH MATERIALIZED VIEW `my mv` (a INT COMMENT 'as in AS') "
        "TBLPROPERTIES ('k' = 'v') -- AS in a comment\nAS SELECT 1 AS a FROM b"
    )
    assert (mv.kind, mv.name, mv.query) == (
        "CreateMaterializedViewAsSelect",
        "my mv",
        "SELECT 1 AS a FROM b",
    )
    st = parse("create streaming table if not exists s as select * from stream(e)")
    assert (st.kind, st.name, st.query) == (
        "CreateStreamingTableAsSelect",
        "s",
        "select * from stream(e)",
    )
    assert parse("CREATE STREAMING TABLE db.s").kind == "CreateStreamingTable"
    assert parse("CREATE STREAMING TABLE db.s").name == "db.s"
    view = parse("CREATE OR REPLACE TEMPORARY VIEW v AS /* AS */ SELECT 2")
    assert (view.kind, view.name, view.query) == ("CreateViewCommand", "v", "SELECT 2")
    flow = parse("CREATE FLOW f COMMENT 'x AS y' AS INSERT INTO t BY NAME SELECT * FROM STREAM(s)")
    assert (flow.kind, flow.name, flow.insert_target, flow.query) == (
        "CreateFlowCommand",
        "f",
        "t",
        "SELECT * FROM STREAM(s)",
    )
    assert parse("SET spark.x.y = 'a b'").conf == ("spark.x.y", "'a b'")
    assert parse("CREATE TABLE t AS SELECT 1").kind == "Unsupported"
    assert parse("INSERT INTO t SELECT 1").kind == "Unsupported"


def test_the_lexical_header_parser_refuses_a_definition_without_its_query() -> None:
    import pytest

    from exoflow_spark.errors import PipelineError
    from exoflow_spark.spark.sqlparse import lexical_statement as parse

    with pytest.raises(PipelineError, match=r"no AS <query> after \[m\]"):
        parse("CREATE MATERIALIZED VIEW m (a INT)")
    with pytest.raises(PipelineError, match="expected a name"):
        parse("CREATE TEMPORARY VIEW AS SELECT 1")
    with pytest.raises(PipelineError, match="INSERT INTO"):
        parse("CREATE FLOW f AS SELECT 1")


def test_connect_binds_each_dataset_under_a_cte_and_a_view_used_once() -> None:
    from exoflow_spark.surface.pipelines import _with_inputs

    class FakeDf:
        def __init__(self) -> None:
            self.views: list[str] = []

        def createOrReplaceTempView(self, name: str) -> None:
            self.views.append(name)

    a, b = FakeDf(), FakeDf()
    sql = _with_inputs("SELECT a.x FROM a JOIN b ON a.k = b.k", {"a": a, "b": b})
    assert len(a.views) == len(b.views) == 1 and a.views[0] != b.views[0]
    assert sql == (
        f"WITH `a` AS (SELECT * FROM `{a.views[0]}`), `b` AS (SELECT * FROM `{b.views[0]}`)\n"
        "(SELECT a.x FROM a JOIN b ON a.k = b.k\n)"
    )
    again = FakeDf()
    _with_inputs("SELECT * FROM a", {"a": again})
    assert again.views[0] not in (a.views[0], b.views[0])  # never reused
    assert _with_inputs("SELECT 1", {}) == "SELECT 1"


EXPLAINED = """== Parsed Logical Plan ==
CTE [c]
:  +- 'SubqueryAlias c
:     +- 'Project [*]
:        +- 'UnresolvedRelation [base], [], false
+- 'Project [*]
   +- 'Join Inner
      :- 'UnresolvedRelation [c], [], false
      +- 'NamedStreamingRelation name=<Unassigned>
         +- 'UnresolvedRelation [db, ev], [], true

== Analyzed Logical Plan ==
org.apache.spark.sql.AnalysisException: [TABLE_OR_VIEW_NOT_FOUND] The table or view `base` ...
'Project [*]
+- 'UnresolvedRelation [other], [], false
"""


def test_query_reads_come_from_the_parsed_plan_section_of_explain() -> None:
    from exoflow_spark.spark.sqlparse import query_reads

    class FakeSpark:
        def __init__(self, text: str) -> None:
            self.text = text
            self.asked: list[str] = []

        def sql(self, query: str) -> FakeSpark:
            self.asked.append(query)
            return self

        def collect(self) -> list[tuple[str]]:
            return [(self.text,)]

    spark = FakeSpark(EXPLAINED)
    # CTE names dropped, qualified names joined, STREAM flagged; the analyzed section ignored
    assert query_reads(spark, "SELECT ...") == [("base", False), ("db.ev", True)]
    assert spark.asked == ["EXPLAIN EXTENDED SELECT ..."]
    assert query_reads(FakeSpark("Error occurred during query planning: "), "x") is None
