"""Turn ``benchmarks/results/*.json`` into tables in docs/benchmarks.md and plots.

    .venv/bin/python benchmarks/report.py [--only peers,controller]

For every result file: a PNG plot at ``docs/img/bench-<name>.png`` and a generated block in
``docs/benchmarks.md`` (the machine it ran on, the command, the table, the notes), between
``<!-- BEGIN GENERATED: <name> -->`` and ``<!-- END GENERATED: <name> -->``. Text outside
the blocks is hand-written and kept; a benchmark without a block gets a new section at the
end. Benchmarks without a result file keep their block as it is; ``recovery`` (a hand-written
section) is regenerated only when named in ``--only``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import REPO, RESULTS, SUMMARY_COLUMNS, markdown

DOC = REPO / "docs" / "benchmarks.md"
IMG = REPO / "docs" / "img"

#: Columns, plots and titles of results written before the documents described them.
LEGACY: dict[str, dict[str, Any]] = {
    "overhead": {
        "title": "Engine overhead vs plain PySpark",
        "columns": SUMMARY_COLUMNS,
        "plot": {
            "kind": "barh",
            "x": "candidate",
            "y": "median_s",
            "err": ["min_s", "max_s"],
            "ylabel": "seconds (median, min-max bars)",
        },
    },
    "log_medium": {
        "title": "Workflow log medium: cost of one record",
        "columns": [
            ["medium", "medium", "s"],
            ["median_ms", "median ms", ".2f"],
            ["p90_ms", "p90 ms", ".2f"],
            ["records_per_s", "records/s", ",.0f"],
        ],
        "plot": {
            "kind": "barh",
            "x": "medium",
            "y": "median_ms",
            "ylabel": "ms per record",
            "log": True,
        },
    },
    "recovery": {
        "title": "Recovery after a driver crash",
        "columns": [
            ["strategy", "strategy", "s"],
            ["fault_free_s", "fault-free s", ".2f"],
            ["fault_free_vs_none", "vs none", ".2fx"],
            ["recovery_s", "recovery after crash s", ".2f"],
            ["recovery_vs_rerun", "vs full re-run", ".2f"],
        ],
        "plot": {
            "kind": "barh",
            "x": "strategy",
            "ys": ["fault_free_s", "recovery_s"],
            "ylabel": "seconds",
        },
    },
}


#: Sections written by hand from their own runs: regenerated only when named in ``--only``
#: (``graph`` plots itself and has no generated section).
MANUAL = {"recovery", "graph"}


def load(only: set[str] | None = None) -> dict[str, dict[str, Any]]:
    """Every result document (but :data:`MANUAL` ones unless asked for), by benchmark name."""
    docs = {}
    for path in sorted(RESULTS.glob("*.json")):
        name = path.stem
        if (only and name not in only) or (not only and name in MANUAL):
            continue
        doc = json.loads(path.read_text())
        if "results" not in doc:
            continue
        for key, value in LEGACY.get(name, {}).items():
            doc.setdefault(key, value)
        if name == "overhead" and "command" not in doc:  # written before it recorded it
            doc["command"] = (
                f".venv/bin/python benchmarks/overhead.py --rows {doc['rows']} --reps {doc['reps']}"
            )
        docs[name] = doc
    return docs


def machine_line(m: dict[str, Any]) -> str:
    parts = [
        f"{m.get('cores')} cores" + (f" ({m['cpu']})" if m.get("cpu") else ""),
        f"{m.get('memory_gib')} GiB",
        f"Python {m.get('python')}",
        f"pyspark {m.get('pyspark')}",
        f"delta-spark {m.get('delta_spark')}",
    ]
    if m.get("dagster"):
        parts.append(f"dagster {m['dagster']}")
    if m.get("java"):
        parts.append(m["java"].replace('openjdk version "', "OpenJDK ").split('"')[0])
    if m.get("load_avg_1m_at_end") is not None:
        parts.append(f"load average {m['load_avg_1m_at_end']} at the end")
    if m.get("when"):
        parts.append(m["when"])
    return ", ".join(parts)


def block(name: str, doc: dict[str, Any]) -> str:
    """The generated markdown of one benchmark."""
    columns = doc.get("columns") or [[k, k, "s"] for k in doc["results"][0]]
    lines = [f"Machine: {machine_line(doc.get('machine', {}))}."]
    if doc.get("command"):
        lines += ["", f"`{doc['command']}`"]
    if doc.get("startup_s") is not None:
        lines += ["", f"Spark session start-up {doc['startup_s']} s (not counted)."]
    lines += ["", markdown(doc["results"], columns), ""]
    for note in doc.get("notes", []):
        lines.append(f"* {note}")
    if doc.get("notes"):
        lines.append("")
    lines.append(f"![{doc.get('title', name)}](img/bench-{name}.png)")
    return "\n".join(lines)


def update_doc(docs: dict[str, dict[str, Any]]) -> None:
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    for name, doc in docs.items():
        begin, end = f"<!-- BEGIN GENERATED: {name} -->", f"<!-- END GENERATED: {name} -->"
        body = f"{begin}\n{block(name, doc)}\n{end}"
        pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
        if pattern.search(text):
            text = pattern.sub(lambda _m, body=body: body, text)
        else:
            title = doc.get("title", name)
            text = text.rstrip("\n") + f"\n\n## {title} (`benchmarks/{name}.py`)\n\n{body}\n"
    DOC.write_text(text)


# -- plots ---------------------------------------------------------------------------------


def plot(name: str, doc: dict[str, Any]) -> Path | None:
    spec = doc.get("plot")
    if not spec:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = doc["results"]
    facet = spec.get("facet")
    groups = list(dict.fromkeys(r[facet] for r in rows)) if facet else [None]
    kind = spec["kind"]
    if kind == "barh":
        height = max(2.5, 0.45 * len([r for r in rows if not facet or r[facet] == groups[0]]) + 1)
        fig, axes = plt.subplots(1, len(groups), figsize=(6.5 * len(groups), height), squeeze=False)
    else:
        fig, axes = plt.subplots(1, len(groups), figsize=(5.5 * len(groups), 4), squeeze=False)
    for ax, g in zip(axes[0], groups, strict=True):
        sub = [r for r in rows if not facet or r[facet] == g]
        if kind == "barh":
            _barh(ax, sub, spec)
        elif kind == "bar":
            _bar(ax, sub, spec)
        elif kind == "line":
            _line(ax, sub, spec)
        if g is not None:
            ax.set_title(str(g))
    fig.suptitle(doc.get("title", name))
    fig.tight_layout()
    IMG.mkdir(parents=True, exist_ok=True)
    out = IMG / f"bench-{name}.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _barh(ax: Any, rows: list[dict[str, Any]], spec: dict[str, Any]) -> None:
    labels = [str(r[spec["x"]]) for r in rows]
    ys = spec.get("ys") or [spec["y"]]
    n = len(ys)
    width = 0.8 / n
    for k, y in enumerate(ys):
        pos = [i + (k - (n - 1) / 2) * width for i in range(len(rows))]
        vals = [r[y] for r in rows]
        err = None
        if spec.get("err") and n == 1:
            lo, hi = spec["err"]
            err = [
                [v - r[lo] for v, r in zip(vals, rows, strict=True)],
                [r[hi] - v for v, r in zip(vals, rows, strict=True)],
            ]
        label = spec.get("labels", {}).get(y, y) if n > 1 else None
        ax.barh(pos, vals, height=width, xerr=err, label=label, capsize=2)
    ax.set_yticks(range(len(rows)), labels)
    ax.invert_yaxis()
    if spec.get("log"):
        ax.set_xscale("log")
    ax.set_xlabel(spec.get("ylabel", ""))
    if n > 1:
        ax.legend()


def _bar(ax: Any, rows: list[dict[str, Any]], spec: dict[str, Any]) -> None:
    xs = list(dict.fromkeys(r[spec["x"]] for r in rows))
    series = list(dict.fromkeys(r[spec["group"]] for r in rows))
    width = 0.8 / len(series)
    for k, s in enumerate(series):
        vals = [
            next((r[spec["y"]] for r in rows if r[spec["x"]] == x and r[spec["group"]] == s), 0)
            for x in xs
        ]
        pos = [i + (k - (len(series) - 1) / 2) * width for i in range(len(xs))]
        ax.bar(pos, vals, width=width, label=str(s))
    ax.set_xticks(range(len(xs)), [f"{x:,}" if isinstance(x, int) else str(x) for x in xs])
    ax.set_xlabel(spec.get("xlabel", spec["x"]))
    ax.set_ylabel(spec.get("ylabel", spec["y"]))
    if spec.get("hline") is not None:
        ax.axhline(spec["hline"], color="red", linestyle="--", label=spec.get("hline_label"))
    ax.legend(fontsize="small")


def _line(ax: Any, rows: list[dict[str, Any]], spec: dict[str, Any]) -> None:
    for s in dict.fromkeys(r[spec["group"]] for r in rows):
        pts = sorted((r[spec["x"]], r[spec["y"]]) for r in rows if r[spec["group"]] == s)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=str(s))
    if spec.get("logx"):
        ax.set_xscale("log", base=2)
    xs = sorted({r[spec["x"]] for r in rows})
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.set_xlabel(spec.get("xlabel", spec["x"]))
    ax.set_ylabel(spec.get("ylabel", spec["y"]))
    ax.set_ylim(bottom=0)
    ax.legend(fontsize="small")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", help="benchmark names (comma-separated); default: every result")
    a = p.parse_args(argv)
    docs = load(set(a.only.split(",")) if a.only else None)
    if not docs:
        print(f"no results in {RESULTS}: run the benchmarks first (make bench)")
        return 1
    for name, doc in docs.items():
        out = plot(name, doc)
        print(f"{name}: {len(doc['results'])} rows" + (f", plot {out}" if out else ""))
    update_doc(docs)
    print(f"updated {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
