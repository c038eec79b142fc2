"""Spark's own SQL parser, reached through the JVM: what a statement declares and reads.

Used by the declarative-pipelines front end to find, without running anything and without
the referenced tables existing, which tables a SQL definition reads. Spark's parser knows the
pipeline statements (``CREATE MATERIALIZED VIEW``, ``CREATE STREAMING TABLE``, ``CREATE
FLOW ... AS INSERT INTO``) and returns an *unresolved* plan, whose ``UnresolvedRelation``
leaves are exactly the table references (with a flag for ``STREAM(...)`` reads).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import SparkSessionError

_RELATION = re.compile(r"'UnresolvedRelation \[([^\]]*)\], \[[^\]]*\], (true|false)")
_CTE = re.compile(r"\bCTE \[([^\]]*)\]")


@dataclass(frozen=True)
class ParsedStatement:
    """One SQL statement as Spark's parser sees it.

    Attributes:
        kind: the logical plan's class name (``CreateMaterializedViewAsSelect``, ...).
        name: the object it creates (``None`` for ``SET`` and other commands).
        query: the defining query's text, when the statement has one.
        reads: ``(table name, streaming)`` for each table the query reads (CTE names dropped).
        insert_target: the target of ``CREATE FLOW ... AS INSERT INTO target``.
        conf: ``(key, value)`` of a ``SET key = value`` statement.
    """

    kind: str
    name: str | None
    query: str | None
    reads: tuple[tuple[str, bool], ...] = field(default=())
    insert_target: str | None = None
    conf: tuple[str, str] | None = None


def parse_statement(spark: Any, text: str) -> ParsedStatement:
    """Parse one statement with the session's SQL parser (classic sessions only)."""
    jss = getattr(spark, "_jsparkSession", None)
    if jss is None:
        raise SparkSessionError(
            "parsing pipeline SQL needs a classic SparkSession (Spark's parser is reached "
            "through the JVM); over Spark Connect the table references are found by "
            "exoflow_spark's lexical scan instead"
        )
    plan = jss.sessionState().sqlParser().parsePlan(text)
    kind = str(plan.getClass().getSimpleName())
    tree = str(plan.treeString())
    name: str | None = None
    query: str | None = None
    insert_target: str | None = None
    conf: tuple[str, str] | None = None
    lines = tree.splitlines()
    ident = re.search(r"'UnresolvedIdentifier \[([^\]]*)\]", tree)
    if ident:
        name = ".".join(p.strip() for p in ident.group(1).split(","))
    if kind in ("CreateMaterializedViewAsSelect", "CreateStreamingTableAsSelect"):
        query = str(plan.originalText())
    elif kind == "CreateViewCommand":
        name = str(plan.name().table())
        text_opt = plan.originalText()
        query = str(text_opt.get()) if text_opt.isDefined() else None
    elif kind == "SetCommand":
        kv = plan.kv()
        if kv.isDefined():
            pair = kv.get()
            value = pair._2()
            conf = (str(pair._1()), str(value.get()) if value.isDefined() else "")
    if kind == "CreateFlowCommand":
        for i, line in enumerate(lines):
            if "'InsertIntoStatement" in line:
                m = _RELATION.search(line)
                if m:
                    insert_target = ".".join(p.strip() for p in m.group(1).split(","))
                lines[i] = ""
                break
        m = re.search(r"(?is)\bAS\s+INSERT\s+INTO\s+[`\w.]+\s+(?:BY\s+NAME\s+)?(.*)$", text.strip())
        query = m.group(1) if m else None
    ctes = {n.strip() for m in _CTE.finditer(tree) for n in m.group(1).split(",")}
    reads: list[tuple[str, bool]] = []
    for line in lines:
        for m in _RELATION.finditer(line):
            ref = ".".join(p.strip() for p in m.group(1).split(","))
            if ref in ctes:
                continue
            item = (ref, m.group(2) == "true")
            if item not in reads:
                reads.append(item)
    return ParsedStatement(kind, name, query, tuple(reads), insert_target, conf)
