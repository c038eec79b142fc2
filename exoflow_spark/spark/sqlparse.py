"""Spark's own SQL parser, reached through the JVM: what a statement declares and reads.

Used by the declarative-pipelines front end to find, without running anything and without
the referenced tables existing, which tables a SQL definition reads. Spark's parser knows the
pipeline statements (``CREATE MATERIALIZED VIEW``, ``CREATE STREAMING TABLE``, ``CREATE
FLOW ... AS INSERT INTO``) and returns an *unresolved* plan, whose ``UnresolvedRelation``
leaves are exactly the table references (with a flag for ``STREAM(...)`` reads).

A classic session reaches the parser through Py4J (``sessionState.sqlParser.parsePlan``). A
Spark Connect session has no JVM in the client: there the statement's header (``CREATE
MATERIALIZED VIEW name ... AS``, ``SET k = v``, ...) is read by a small lexical parser
(:func:`lexical_statement`) and the defining query goes to the server as ``EXPLAIN EXTENDED
<query>``, whose "Parsed Logical Plan" section is the same unresolved plan (printed even when
the analysis fails because a table does not exist yet).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import PipelineError, SparkSessionError

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
    """Parse one statement with the session's SQL parser.

    Classic sessions: Spark's parser through the JVM. Spark Connect: the header lexically
    (:func:`lexical_statement`), the query's reads from the server's parsed plan
    (:func:`query_reads`).

    Raises:
        PipelineError: (Connect) the statement's header is not one this parser knows.
        Exception: Spark's ``ParseException`` for a query it cannot parse.
    """
    jss = getattr(spark, "_jsparkSession", None)
    if jss is None:
        parsed = lexical_statement(text)
        if parsed.query is None:
            return parsed
        reads = query_reads(spark, parsed.query)
        if reads is None:
            raise SparkSessionError(
                "the Spark Connect server printed no parsed plan for this query (EXPLAIN "
                "EXTENDED failed before parsing)"
            )
        return replace(parsed, reads=tuple(reads))
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
    reads = _tree_reads(tree, lines)
    return ParsedStatement(kind, name, query, tuple(reads), insert_target, conf)


def _tree_reads(tree: str, lines: list[str]) -> list[tuple[str, bool]]:
    """``(table, streaming)`` of every ``UnresolvedRelation`` of a plan's tree string."""
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
    return reads


_PARSED = "== Parsed Logical Plan =="
_ANALYZED = "== Analyzed Logical Plan =="


def query_reads(spark: Any, query: str) -> list[tuple[str, bool]] | None:
    """The tables ``query`` reads, from Spark's parser, on any session (Connect too).

    Runs ``EXPLAIN EXTENDED <query>`` (nothing is executed) and reads the "Parsed Logical
    Plan" section, which Spark prints even when the analysis fails (the tables need not
    exist). ``None`` when the server printed no parsed plan.

    Raises:
        Exception: Spark's ``ParseException`` when the query does not parse.
    """
    rows = spark.sql(f"EXPLAIN EXTENDED {query}").collect()
    text = str(rows[0][0]) if rows else ""
    if _PARSED not in text:
        return None
    tree = text.split(_PARSED, 1)[1].split(_ANALYZED, 1)[0].strip("\n")
    return _tree_reads(tree, tree.splitlines())


# -- the lexical header parser (Spark Connect: no parser in the client) --------------------
_TOKEN = re.compile(
    r"""\s+|--[^\n]*|/\*.*?(?:\*/|$)|'(?:\\.|[^'\\])*'?|"(?:\\.|[^"\\])*"?"""
    r"""|`(?:``|[^`])*`?|[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d*)?|.""",
    re.S,
)


@dataclass(frozen=True)
class _Tok:
    text: str
    start: int
    end: int
    depth: int

    @property
    def word(self) -> str:
        return self.text.upper() if self.text[:1].isalpha() or self.text[:1] == "_" else ""


def _tokens(text: str) -> list[_Tok]:
    """Tokens outside comments, each with its parenthesis depth (strings and quoted
    identifiers are one token)."""
    out: list[_Tok] = []
    depth = 0
    for m in _TOKEN.finditer(text):
        t = m.group()
        if t.isspace() or t.startswith("--") or t.startswith("/*"):
            continue
        if t == ")":
            depth -= 1
        out.append(_Tok(t, m.start(), m.end(), depth))
        if t == "(":
            depth += 1
    return out


def _name(toks: list[_Tok], i: int) -> tuple[str, int]:
    """A possibly qualified, possibly back-quoted name starting at ``toks[i]``: (name, next)."""
    parts: list[str] = []
    while i < len(toks):
        t = toks[i].text
        if t.startswith("`") and t.endswith("`") and len(t) >= 2:
            parts.append(t[1:-1].replace("``", "`"))
        elif toks[i].word and toks[i].word != "AS":
            parts.append(t)
        else:
            break
        i += 1
        if i < len(toks) and toks[i].text == ".":
            i += 1
            continue
        break
    if not parts:
        got = toks[i].text if i < len(toks) else "the end of the statement"
        raise PipelineError(f"expected a name, found {got!r}")
    return ".".join(parts), i


def _words(toks: list[_Tok], i: int, *words: str) -> int:
    """The index after ``words`` if they follow at ``i``, else ``i``."""
    j = i
    for w in words:
        if j >= len(toks) or toks[j].word != w:
            return i
        j += 1
    return j


def _top_level_as(toks: list[_Tok], i: int) -> int | None:
    for j in range(i, len(toks)):
        if toks[j].depth == 0 and toks[j].word == "AS":
            return j
    return None


def lexical_statement(text: str) -> ParsedStatement:
    """A pipeline statement's kind, name, query text and insert target (or ``SET``'s key and
    value), read lexically; ``reads`` is left empty (see :func:`query_reads`).

    The kinds are the names Spark's parser gives (``CreateMaterializedViewAsSelect``,
    ``CreateStreamingTableAsSelect``, ``CreateStreamingTable``, ``CreateViewCommand`` for a
    temporary view, ``CreateFlowCommand``, ``SetCommand``); anything else is ``Unsupported``.
    The query is everything after the first ``AS`` outside parentheses (column lists,
    ``TBLPROPERTIES (...)``, ``COMMENT '...'`` come before it).

    Raises:
        PipelineError: a known statement whose header is malformed (no name, no ``AS``).
    """
    toks = _tokens(text)
    unsupported = ParsedStatement("Unsupported", None, None)
    if not toks:
        return unsupported
    if toks[0].word == "SET":
        eq = next((j for j, t in enumerate(toks) if t.text == "=" and t.depth == 0), None)
        if eq is None or eq == 1:
            return ParsedStatement("SetCommand", None, None)
        key = text[toks[1].start : toks[eq].start].strip()
        value = text[toks[eq].end :].strip()
        return ParsedStatement("SetCommand", None, None, conf=(key, value))
    if toks[0].word != "CREATE":
        return unsupported
    i = 1
    i = _words(toks, i, "OR", "REFRESH")
    i = _words(toks, i, "OR", "REPLACE")
    if _words(toks, i, "MATERIALIZED", "VIEW") != i:
        kind, i = "CreateMaterializedViewAsSelect", i + 2
    elif _words(toks, i, "STREAMING", "TABLE") != i:
        kind, i = "CreateStreamingTableAsSelect", i + 2
    elif _words(toks, i, "TEMPORARY", "VIEW") != i or _words(toks, i, "TEMP", "VIEW") != i:
        kind, i = "CreateViewCommand", i + 2
    elif _words(toks, i, "FLOW") != i:
        kind, i = "CreateFlowCommand", i + 1
    else:
        return unsupported
    i = _words(toks, i, "IF", "NOT", "EXISTS")
    name, i = _name(toks, i)
    as_at = _top_level_as(toks, i)
    if as_at is None:
        if kind == "CreateStreamingTableAsSelect":
            return ParsedStatement("CreateStreamingTable", name, None)
        raise PipelineError(f"no AS <query> after [{name}]")
    if kind == "CreateFlowCommand":
        j = _words(toks, as_at + 1, "INSERT", "INTO")
        if j == as_at + 1:
            raise PipelineError(f"flow [{name}]: expected AS INSERT INTO <table> <query>")
        target, j = _name(toks, j)
        j = _words(toks, j, "BY", "NAME")
        if j >= len(toks):
            raise PipelineError(f"flow [{name}]: no query after INSERT INTO {target}")
        return ParsedStatement(kind, name, text[toks[j].start :].strip(), insert_target=target)
    if as_at + 1 >= len(toks):
        raise PipelineError(f"no query after AS in the definition of [{name}]")
    return ParsedStatement(kind, name, text[toks[as_at + 1].start :].strip())
