"""Pictures of a workflow: its DAG (SVG, PNG, Mermaid, DOT, text) and a run timeline.

Everything is drawn from the workflow log (or from a DAG node before it ever ran):

* **DAG**: nodes coloured by state (COMMITTED, DONE, RUNNING, FAILED, PENDING) and outlined
  by checkpoint mode (thin grey: none; thick solid: sync; thick dashed: async); data edges
  are arrows, ``wait_until_committed`` edges dotted. The layout is a pure-Python layered
  (Sugiyama-style) layout: layers by longest path, order by barycentre sweeps.
* **Timeline**: one row per task, the task function's span and its checkpoint write as two
  overlapping bars (an async write overlaps the tasks that read the cache meanwhile), with
  every run of the workflow shaded (a killed run has no end record and is marked so).

``xf.show_dag(...)`` and ``xf.show_timeline(...)`` return a :class:`Picture` that renders
itself in notebooks and saves to a file; ``exoflow-spark show`` is the command-line form.
SVG and PNG are one drawing made with matplotlib (the ``pictures`` extra:
``pip install 'exoflow-spark[pictures]'``); Mermaid, DOT and text are pure Python.
"""

from __future__ import annotations

import html
import io
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..core.defaults import resolve_storage
from ..core.fmt import human_bytes as _human
from ..core.records import CommitRecord, DagRecord, EventKind, EventRecord
from ..core.task import Node
from ..errors import ExoflowError, InvalidOptionError
from ..storage.store import WorkflowState, WorkflowStore

DagFormat = Literal["svg", "png", "mermaid", "dot", "text"]
TimelineFormat = Literal["png", "svg", "text"]

#: Fill (and text) colours per task state.
STATE_COLOURS: dict[str, str] = {
    "COMMITTED": "#86efac",
    "DONE": "#bfdbfe",
    "RUNNING": "#fde68a",
    "CHECKPOINTING": "#ddd6fe",
    "FAILED": "#fca5a5",
    "PENDING": "#e5e7eb",
}
STATE_MEANING: dict[str, str] = {
    "COMMITTED": "committed (durable)",
    "DONE": "ran, output not kept",
    "RUNNING": "running",
    "FAILED": "failed",
    "PENDING": "not run yet",
}
_EDGE = "#4b5563"
_WAIT_EDGE = "#9ca3af"


# -- the model ------------------------------------------------------------------------------
@dataclass
class TaskView:
    """One task as drawn: its logged options, state and, if committed, its checkpoint."""

    id: str
    upstream: list[str]
    waits: list[str]
    checkpoint: str  # "none" | "sync" | "async"
    state: str = "PENDING"
    sink: bool = False
    output: bool = False
    detail: str = ""  # e.g. "v0 3.5 MB" or "value"


@dataclass
class DagView:
    """A DAG with per-task states: what every picture is drawn from."""

    workflow_id: str | None
    status: str | None
    tasks: list[TaskView]

    def task(self, task_id: str) -> TaskView:
        for t in self.tasks:
            if t.id == task_id:
                return t
        raise KeyError(task_id)


def dag_view(
    target: str | Node,
    *,
    workflow_id: str | None = None,
    storage: str | None = None,
    spark: Any | None = None,
) -> DagView:
    """Build the :class:`DagView` of a workflow id (from its log) or of a DAG node.

    With a node and a ``workflow_id`` whose log exists, the states come from that log;
    with a node alone, every task is PENDING.
    """
    state: WorkflowState | None = None
    events: list[EventRecord] = []
    if isinstance(target, Node):
        from ..core.dag import Dag

        record = DagRecord.from_json(Dag(target).to_record())
        if workflow_id is not None:
            store = WorkflowStore(resolve_storage(storage), workflow_id, spark)
            state = store.read_state()
            events = store.events() if state.exists else []
    elif isinstance(target, str):
        workflow_id = target
        store = WorkflowStore(resolve_storage(storage), target, spark)
        state = store.require_exists()
        record = state.dag
        events = store.events()
    else:
        raise InvalidOptionError(
            f"show_dag expects a workflow id or a DAG node (task.bind(...)), got "
            f"{type(target).__name__}"
        )
    states = state.task_states(events, dag=record) if state is not None and state.exists else {}
    tasks = []
    for t in record.tasks:
        rec = state.commits.get(t.id) if state is not None else None
        detail = ""
        if rec is not None:
            if rec.checkpoint is not None:
                detail = f"{rec.checkpoint.label()} {_human(rec.checkpoint.bytes)}"
            else:
                detail = rec.kind
        st = states.get(t.id)
        tasks.append(
            TaskView(
                id=t.id,
                upstream=list(t.upstream),
                waits=[w for w in t.wait_until_committed if w != t.id],
                checkpoint=t.checkpoint_mode,
                state=st.value if st is not None else "PENDING",
                sink=t.sink,
                output=t.id == record.output,
                detail=detail,
            )
        )
    status = state.status.value if state is not None and state.exists else None
    return DagView(workflow_id, status, tasks)


# -- layout ---------------------------------------------------------------------------------
@dataclass
class Layout:
    """Node centres and sizes of a left-to-right layered layout, in pixels.

    ``routes`` maps each drawn edge ``(source, target, kind)`` (kind ``"data"`` or
    ``"wait"``) to the points it passes through between the two nodes: an edge spanning
    several layers is routed through a slot of its own in each layer it crosses, so it
    never runs under a node.
    """

    pos: dict[str, tuple[float, float]]
    width: float
    height: float
    node_w: float
    node_h: float
    layers: list[list[str]] = field(default_factory=list)
    routes: dict[tuple[str, str, str], list[tuple[float, float]]] = field(default_factory=dict)


def _lines(t: TaskView) -> tuple[str, str]:
    """The two small lines under a task's name: state and mode, then details."""
    mode = "no checkpoint" if t.checkpoint == "none" else f"{t.checkpoint} checkpoint"
    extra = [x for x in (t.detail, "sink" if t.sink else "") if x]
    return f"{t.state.lower()} · {mode}", " · ".join(extra)


def _edges(view: DagView) -> list[tuple[str, str, str]]:
    ids = {t.id for t in view.tasks}
    out = []
    for t in view.tasks:
        out += [(u, t.id, "data") for u in t.upstream if u in ids]
        out += [(w, t.id, "wait") for w in t.waits if w in ids and w not in t.upstream]
    return out


def layered_layout(view: DagView, *, gap_x: float = 56, gap_y: float = 22) -> Layout:
    """Lay the DAG out left to right (a Sugiyama-style layered layout).

    A task's layer is its longest path from a source, sources are pulled right next to
    their first consumer, long edges get a dummy slot in every layer they cross, and the
    order within each layer comes from alternating barycentre sweeps (fewer crossings).
    """
    ids = [t.id for t in view.tasks]
    ups = {t.id: [u for u in t.upstream if u in ids] for t in view.tasks}
    layer: dict[str, int] = {}
    for t in ids:  # the record is in topological order
        layer[t] = 1 + max((layer[u] for u in ups[t]), default=-1)
    for t in reversed(ids):  # a source sits just before its first consumer
        if not ups[t]:
            consumers = [layer[d] for d in ids if t in ups[d]]
            if consumers:
                layer[t] = max(min(consumers) - 1, 0)
    n_layers = max(layer.values(), default=-1) + 1
    layers: list[list[str]] = [[] for _ in range(n_layers)]
    for t in ids:
        layers[layer[t]].append(t)

    # dummy slots for edges that span more than one layer
    nbr_up: dict[str, list[str]] = {t: list(ups[t]) for t in ids}
    nbr_down: dict[str, list[str]] = {t: [] for t in ids}
    chains: dict[tuple[str, str, str], list[str]] = {}
    for u, v, kind in _edges(view):
        if layer[v] <= layer[u]:
            chains[(u, v, kind)] = []
            continue
        chain, prev = [], u
        for li in range(layer[u] + 1, layer[v]):
            d = f"\0{u}>{v}>{kind}>{li}"
            layers[li].append(d)
            nbr_up[d], nbr_down[d] = [prev], []
            nbr_down[prev].append(d)
            chain.append(d)
            prev = d
        if kind == "data" or chain:
            nbr_down[prev].append(v)
            if prev != u:
                nbr_up[v].append(prev)
        chains[(u, v, kind)] = chain

    def rank() -> dict[str, float]:
        return {t: i - (len(lay) - 1) / 2 for lay in layers for i, t in enumerate(lay)}

    for sweep in range(8):
        forward = sweep % 2 == 0
        order = range(1, n_layers) if forward else range(n_layers - 2, -1, -1)
        for li in order:
            r = rank()
            nbrs = nbr_up if forward else nbr_down

            def bary(t: str, r: dict[str, float] = r, nbrs: dict[str, list[str]] = nbrs) -> float:
                ns = [n for n in nbrs.get(t, []) if n in r]
                return sum(r[n] for n in ns) / len(ns) if ns else r[t]

            layers[li].sort(key=bary)

    longest = max(
        [len(t.id) * 8.0 for t in view.tasks]
        + [max(len(a), len(b)) * 6.1 for a, b in map(_lines, view.tasks)]
        + [100.0]
    )
    node_w = max(130.0, longest + 24)
    node_h = 56.0
    dummy_h = 14.0

    def slot(t: str) -> float:
        return dummy_h if t.startswith("\0") else node_h

    heights = [sum(slot(t) for t in lay) + gap_y * max(len(lay) - 1, 0) for lay in layers]
    height = max(heights, default=node_h)
    pos: dict[str, tuple[float, float]] = {}
    for li, lay in enumerate(layers):
        x = li * (node_w + gap_x) + node_w / 2
        y = (height - heights[li]) / 2
        for t in lay:
            pos[t] = (x, y + slot(t) / 2)
            y += slot(t) + gap_y
    width = n_layers * node_w + max(n_layers - 1, 0) * gap_x
    routes = {e: [pos[d] for d in chain] for e, chain in chains.items()}
    task_pos = {t: p for t, p in pos.items() if not t.startswith("\0")}
    real_layers = [[t for t in lay if not t.startswith("\0")] for lay in layers]
    return Layout(task_pos, width, height, node_w, node_h, real_layers, routes)


def _path_points(lay: Layout, edge: tuple[str, str, str]) -> list[tuple[float, float]]:
    """Where an edge goes: out of the source's right side, through its slots, into the
    target's left side (``dx`` of horizontal lead-in at both ends)."""
    u, v, _ = edge
    (x1, y1), (x2, y2) = lay.pos[u], lay.pos[v]
    return [(x1 + lay.node_w / 2, y1), *lay.routes.get(edge, []), (x2 - lay.node_w / 2 - 2, y2)]


def _subtitle(t: TaskView) -> str:
    a, b = _lines(t)
    return f"{a} · {b}" if b else a


# -- SVG and PNG (one drawing, matplotlib) ---------------------------------------------------
def _stroke(mode: str) -> tuple[str, float, str]:
    """(colour, width in px, dash pattern in px) of a node outline for a checkpoint mode."""
    if mode == "sync":
        return "#111827", 3.0, ""
    if mode == "async":
        return "#111827", 3.0, "7 4"
    return "#6b7280", 1.2, ""


#: The drawing is laid out in pixels at 100 dpi; matplotlib sizes fonts and lines in points.
_PT = 0.72

PICTURES_EXTRA = "pip install 'exoflow-spark[pictures]'"


def _matplotlib() -> Any:
    """matplotlib's ``Figure`` class and its patch/path modules, or a clear error without it."""
    try:
        from matplotlib import patches
        from matplotlib import path as mpath
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ExoflowError(
            f"SVG and PNG pictures are drawn with matplotlib, which is not installed: "
            f"{PICTURES_EXTRA} (or ask for format='mermaid', 'dot' or 'text')"
        ) from exc
    return Figure, patches, mpath


def _linestyle(dash: str, width_px: float) -> Any:
    """An SVG-style dash pattern (px) as a matplotlib linestyle (matplotlib scales dashes by
    the line width)."""
    if not dash:
        return "-"
    return (0, tuple(float(d) / width_px for d in dash.split()))


#: no creation date or tool version in the files, so one DAG always gives the same bytes
_METADATA: dict[str, dict[str, Any]] = {"svg": {"Date": None}, "png": {"Software": None}}


def _save(fig: Any, fmt: str, dpi: int, **kw: Any) -> bytes:
    """``fig`` as an SVG or PNG file's bytes."""
    import matplotlib

    buf = io.BytesIO()
    # text stays text in an SVG (selectable, searchable, smaller) instead of glyph paths
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "exoflow"}):
        fig.savefig(buf, format=fmt, dpi=dpi, facecolor="white", metadata=_METADATA[fmt], **kw)
    return buf.getvalue()


def draw_dag(view: DagView) -> Any:
    """The DAG as a matplotlib ``Figure``: the one drawing behind the SVG and PNG formats.

    Nodes are filled by state and outlined by checkpoint mode, each node's box carries the
    ``gid`` ``task:<id>`` (an ``id`` in the SVG), data edges are arrows and
    ``wait_until_committed`` edges dotted; a legend explains states, outlines and edges.
    """
    Figure, patches, mpath = _matplotlib()
    lay = layered_layout(view)
    pad, title_h, legend_h = 24.0, 34.0, 66.0
    w = max(lay.width + 2 * pad, 760.0)
    h = lay.height + 2 * pad + title_h + legend_h
    ox = pad + (w - 2 * pad - lay.width) / 2
    oy = pad + title_h
    nw, nh = lay.node_w, lay.node_h
    fig = Figure(figsize=(w / 100, h / 100), dpi=100)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)  # y down, as in the layout
    ax.axis("off")

    def text(x: float, y: float, s: str, size: float, **kw: Any) -> None:
        kw.setdefault("color", "#111827")
        ax.text(x, y, s, fontsize=size * _PT, va="baseline", **kw)

    title = f"workflow {view.workflow_id}" if view.workflow_id else "DAG (not run)"
    if view.status:
        title += f" — {view.status}"
    text(pad, pad + 8, title, 16, weight="bold")

    for edge in _edges(view):
        pts = [(x + ox, y + oy) for x, y in _path_points(lay, edge)]
        verts, codes = [pts[0]], [mpath.Path.MOVETO]
        for (px, py), (x, y) in itertools.pairwise(pts):
            dx = (x - px) / 2  # horizontal tangents: cubic segments
            verts += [(px + dx, py), (x - dx, y), (x, y)]
            codes += [mpath.Path.CURVE4] * 3
        wait = edge[2] == "wait"
        ax.add_patch(
            patches.FancyArrowPatch(
                path=mpath.Path(verts, codes),
                arrowstyle="-|>",
                mutation_scale=12,
                color=_WAIT_EDGE if wait else _EDGE,
                linestyle=_linestyle("2 4", 1.5) if wait else "-",
                linewidth=1.5 * _PT,
                gid=f"{'wait' if wait else 'edge'}:{edge[0]}->{edge[1]}",
                zorder=1,
            )
        )
    for t in view.tasks:
        x, y = lay.pos[t.id]
        cx, cy = x + ox, y + oy
        colour, sw, dash = _stroke(t.checkpoint)
        ax.add_patch(
            patches.FancyBboxPatch(
                (cx - nw / 2, cy - nh / 2),
                nw,
                nh,
                boxstyle="round,pad=0,rounding_size=9",
                facecolor=STATE_COLOURS.get(t.state, STATE_COLOURS["PENDING"]),
                edgecolor=colour,
                linewidth=sw * _PT,
                linestyle=_linestyle(dash, sw),
                gid=f"task:{t.id}",
                zorder=2,
            )
        )
        first, second = _lines(t)
        text(cx, cy - 8, t.id, 13, ha="center", weight="bold", zorder=3)
        text(cx, cy + 8, first, 10.5, ha="center", color="#374151", zorder=3)
        text(cx, cy + 21, second, 10.5, ha="center", color="#374151", zorder=3)
        if t.output:
            text(
                cx + nw / 2 - 4,
                cy - nh / 2 - 4,
                "OUTPUT",
                10,
                ha="right",
                weight="bold",
                color="#1d4ed8",
            )

    # legend: states, then outlines, then edges (two rows, as wide as the labels)
    def sample(x: float, y: float, width: float, fill: str, mode: str, gid: str) -> None:
        colour, sw, dash = _stroke(mode)
        ax.add_patch(
            patches.FancyBboxPatch(
                (x, y - 11),
                width,
                14,
                boxstyle="round,pad=0,rounding_size=3",
                facecolor=fill,
                edgecolor=colour,
                linewidth=sw * _PT,
                linestyle=_linestyle(dash, sw),
                gid=gid,
            )
        )

    ly = oy + lay.height + pad + 10
    x = pad
    text(x, ly, "state", 11, weight="bold")
    x += 42
    for st in ("COMMITTED", "DONE", "RUNNING", "FAILED", "PENDING"):
        sample(x, ly, 16, STATE_COLOURS[st], "none", f"legend:{st}")
        text(x + 21, ly, STATE_MEANING[st], 11)
        x += 30 + len(STATE_MEANING[st]) * 6.1
    ly += 26
    x = pad
    text(x, ly, "checkpoint", 11, weight="bold")
    x += 80
    for mode, label in (
        ("none", "none (lazy plan)"),
        ("sync", "sync (durable before readers start)"),
        ("async", "async (written in the background)"),
    ):
        sample(x, ly, 26, "white", mode, f"legend:{mode}")
        text(x + 32, ly, label, 11)
        x += 44 + len(label) * 6.1
    ax.add_patch(
        patches.FancyArrowPatch(
            (x, ly - 4),
            (x + 28, ly - 4),
            arrowstyle="-|>",
            mutation_scale=12,
            color=_WAIT_EDGE,
            linestyle=_linestyle("2 4", 1.5),
            linewidth=1.5 * _PT,
            gid="legend:wait",
        )
    )
    text(x + 36, ly, "waits until committed", 11)
    return fig


def render_svg(view: DagView) -> str:
    """The DAG as a standalone SVG document (matplotlib; text kept as text). Hovering a task
    in a browser shows its tooltip: the task id, state, checkpoint mode and details."""
    return _with_tooltips(_save(draw_dag(view), "svg", 100).decode(), view)


def _with_tooltips(svg: str, view: DagView) -> str:
    """``svg`` with a ``<title>`` (a browser's tooltip) first in each task's ``<g>`` element
    (matplotlib writes the gid as the group's XML-escaped id)."""
    tasks = {t.id: t for t in view.tasks}

    def titled(m: re.Match[str]) -> str:
        t = tasks.get(html.unescape(m.group(1)))
        if t is None:
            return m.group(0)
        tip = " · ".join(x for x in (t.id, *_lines(t)) if x)
        return f"{m.group(0)}\n   <title>{html.escape(tip, quote=False)}</title>"

    return re.sub(r'<g id="task:([^"]*)">', titled, svg)


def render_png(view: DagView, dpi: int = 150) -> bytes:
    """The DAG as a PNG image: the same drawing as :func:`render_svg`."""
    return _save(draw_dag(view), "png", dpi)


# -- Mermaid, DOT, text ---------------------------------------------------------------------
def render_mermaid(view: DagView) -> str:
    """Mermaid ``flowchart`` text (renders in Jupyter, GitHub and most Markdown viewers)."""
    key = {t.id: f"t{i}" for i, t in enumerate(view.tasks)}
    lines = ["flowchart LR"]
    for t in view.tasks:
        label = f"<b>{html.escape(t.id)}</b><br/><small>{html.escape(_subtitle(t))}</small>"
        if t.output:
            label = "OUTPUT<br/>" + label
        lines.append(f'  {key[t.id]}["{label}"]:::{t.state}')
    for t in view.tasks:
        for u in t.upstream:
            if u in key:
                lines.append(f"  {key[u]} --> {key[t.id]}")
        for wt in t.waits:
            if wt in key and wt not in t.upstream:
                lines.append(f"  {key[wt]} -. waits .-> {key[t.id]}")
    for st, colour in STATE_COLOURS.items():
        lines.append(f"  classDef {st} fill:{colour},stroke:#6b7280,color:#111827")
    for t in view.tasks:
        colour, sw, dash = _stroke(t.checkpoint)
        if t.checkpoint != "none":
            style = f"stroke:{colour},stroke-width:{sw:.0f}px"
            if dash:
                style += ",stroke-dasharray:6 3"
            lines.append(f"  style {key[t.id]} {style}")
    return "\n".join(lines) + "\n"


def render_dot(view: DagView) -> str:
    """Graphviz DOT text (``dot -Tsvg``)."""

    def q(s: str) -> str:
        return '"' + s.replace('"', "'") + '"'

    name = view.workflow_id or "dag"
    lines = [
        f"digraph {q(name)} {{",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11];',
    ]
    for t in view.tasks:
        colour, sw, dash = _stroke(t.checkpoint)
        style = "rounded,filled" + (",dashed" if dash else "")
        label = "\\n".join([t.id, _subtitle(t)] + (["(output)"] if t.output else []))
        lines.append(
            f"  {q(t.id)} [label={q(label)}, "
            f'fillcolor="{STATE_COLOURS.get(t.state, "#e5e7eb")}", color="{colour}", '
            f'penwidth={sw:.1f}, style="{style}"];'
        )
    for t in view.tasks:
        for u in t.upstream:
            lines.append(f"  {q(u)} -> {q(t.id)};")
        for wt in t.waits:
            if wt not in t.upstream:
                lines.append(
                    f'  {q(wt)} -> {q(t.id)} [style=dotted, color="{_WAIT_EDGE}", label="waits"];'
                )
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_text(view: DagView) -> str:
    """A tree from the output back to the sources; a task reached twice is shown once."""
    by_id = {t.id: t for t in view.tasks}
    out_id = next((t.id for t in view.tasks if t.output), view.tasks[-1].id if view.tasks else "")
    head = f"workflow {view.workflow_id}" if view.workflow_id else "DAG (not run)"
    if view.status:
        head += f": {view.status}"
    lines = [head]
    seen: set[str] = set()
    width = max((len(t.id) for t in view.tasks), default=4) + 4

    def describe(t: TaskView) -> str:
        extra = [f"checkpoint={t.checkpoint}"]
        if t.detail:
            extra.append(t.detail)
        if t.sink:
            extra.append("sink")
        waits = [w for w in t.waits if w not in t.upstream]
        if waits:
            extra.append("waits for " + ", ".join(waits))
        return f"{t.state:10} {'  '.join(extra)}"

    def walk(tid: str, prefix: str, last: bool, depth: int) -> None:
        t = by_id[tid]
        branch = "" if depth == 0 else ("└── " if last else "├── ")
        name = prefix + branch + tid
        if tid in seen:
            lines.append(f"{name}  (shown above)")
            return
        seen.add(tid)
        lines.append(f"{name:{width + 4 * depth}}  {describe(t)}")
        child_prefix = prefix + ("" if depth == 0 else ("    " if last else "│   "))
        ups = [u for u in t.upstream if u in by_id]
        for i, u in enumerate(ups):
            walk(u, child_prefix, i == len(ups) - 1, depth + 1)

    if out_id:
        walk(out_id, "", True, 0)
    for t in view.tasks:  # tasks the output does not reach (only waited on, say)
        if t.id not in seen:
            walk(t.id, "", True, 0)
    return "\n".join(lines) + "\n"


# -- timeline -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Span:
    """One bar of the timeline (seconds since the epoch)."""

    task: str
    kind: Literal["task", "checkpoint"]
    start: float
    end: float
    run: int
    mode: str = "none"


@dataclass
class Timeline:
    """Task spans and run spans of a workflow, from its commit records and events."""

    workflow_id: str
    spans: list[Span]
    runs: list[tuple[int, float, float | None, str]]  # (number, start, end or None, status)
    tasks: list[str]

    @property
    def origin(self) -> float:
        starts = [r[1] for r in self.runs] + [s.start for s in self.spans]
        return min(starts) if starts else 0.0


def timeline(
    workflow_id: str,
    *,
    storage: str | None = None,
    spark: Any | None = None,
    run: int | None = None,
) -> Timeline:
    """Collect the timeline of a workflow from its log.

    Each task that produced output contributes a ``task`` span (from the start of the
    attempt that produced it until its output was handed to consumers; for a sync
    checkpoint, until the write began) and, for a checkpoint, a ``checkpoint`` span (the
    Delta write: ``committed_at - write_seconds`` to ``committed_at``). A DataFrame task's
    function only builds a plan, so its Spark work shows up in its checkpoint write or in
    the tasks that read it.

    Args:
        workflow_id: the workflow.
        storage: storage root.
        spark: only for storage roots reached through Hadoop.
        run: only this run's spans (default: every run).
    """
    store = WorkflowStore(resolve_storage(storage), workflow_id, spark)
    state = store.require_exists()
    dag = state.dag
    modes = {t.id: t.checkpoint_mode for t in dag.tasks}
    records: list[tuple[str, CommitRecord | EventRecord]] = list(state.commits.items())
    records += [(e.task, e) for e in store.events(EventKind.TASK_DONE) if e.task is not None]
    spans: list[Span] = []
    for tid, rec in records:
        rnum = rec.run or 0
        if run is not None and rnum != run:
            continue
        compute = rec.compute_seconds
        if isinstance(rec, CommitRecord):
            delta, committed, mode = rec.checkpoint, rec.committed_at, rec.mode
            handed = rec.output_at or committed
        else:  # a task_done event: nothing was written
            delta, committed, mode = None, None, None
            handed = rec.output_at or rec.at
        write_start = committed - delta.write_seconds if delta and committed else None
        sync = write_start is not None and mode == "sync"
        if rec.started_at is not None:
            start = rec.started_at
            end = float(handed) if handed else start + compute
            if sync and write_start is not None:
                end = min(end, write_start)
        elif handed is not None:  # records written before start times were logged
            end = write_start if sync and write_start is not None else float(handed)
            start = end - compute
        else:
            continue
        spans.append(Span(tid, "task", start, max(end, start), rnum, modes.get(tid, "none")))
        if write_start is not None and committed is not None:
            spans.append(
                Span(
                    tid,
                    "checkpoint",
                    write_start,
                    float(committed),
                    rnum,
                    str(mode or modes.get(tid, "sync")),
                )
            )
    runs = []
    for r in state.runs:
        if run is not None and r.number != run:
            continue
        ended = r.end.ended_at if r.end is not None else None
        runs.append(
            (
                r.number,
                r.started_at or 0.0,
                float(ended) if ended else None,
                r.status.value if r.end else ("RUNNING" if r.owner_alive() else "KILLED"),
            )
        )
    order = dag.ids
    have = {s.task for s in spans}
    tasks = [t for t in order if t in have] + sorted(have - set(order))
    return Timeline(workflow_id, sorted(spans, key=lambda s: s.start), runs, tasks)


def render_timeline_text(tl: Timeline) -> str:
    """The timeline as a table: one line per span, seconds relative to the first run."""
    o = tl.origin
    lines = [
        f"workflow {tl.workflow_id}: timeline (seconds since run "
        f"{tl.runs[0][0] if tl.runs else '?'} started)"
    ]
    for number, start, end, status in tl.runs:
        e = f"{end - o:8.2f}" if end else "       -"
        lines.append(f"run {number:<4} {start - o:8.2f} {e}  {status}")
    width = max((len(t) for t in tl.tasks), default=4)
    lines.append(f"{'task':{width}}  {'span':10} {'start':>8} {'end':>8} {'seconds':>8}  run")
    for s in sorted(tl.spans, key=lambda s: (tl.tasks.index(s.task), s.kind)):
        label = s.kind if s.kind == "task" else f"ckpt {s.mode}"
        lines.append(
            f"{s.task:{width}}  {label:10} {s.start - o:8.2f} {s.end - o:8.2f} "
            f"{s.end - s.start:8.2f}  {s.run}"
        )
    return "\n".join(lines) + "\n"


def render_timeline(tl: Timeline, fmt: Literal["png", "svg"] = "png", dpi: int = 150) -> bytes:
    """A Gantt chart of the timeline (matplotlib): one row per task, the function's span
    and the checkpoint write as overlapping bars, runs shaded in the background."""
    Figure, patches, _ = _matplotlib()
    Patch = patches.Patch

    o = tl.origin
    rows = {t: i for i, t in enumerate(tl.tasks)}
    fig_h = max(2.6, 0.42 * len(rows) + 1.7)
    fig = Figure(figsize=(10, fig_h))
    ax = fig.subplots()
    shade = ("#f3f4f6", "#e0f2fe")
    horizon = max([s.end for s in tl.spans] + [r[2] or r[1] for r in tl.runs] + [o]) - o
    for i, (number, start, end, status) in enumerate(tl.runs):
        x0, x1 = start - o, (end - o) if end else None
        if x1 is None:  # killed or running: until its last logged span
            mine = [s.end for s in tl.spans if s.run == number]
            x1 = (max(mine) - o) if mine else x0 + 0.05 * max(horizon, 1)
        ax.axvspan(x0, x1, color=shade[i % 2], zorder=0)
        ax.text(
            x0 + 0.005 * max(horizon, 1),
            -0.62,
            f"run {number}: {status}",
            fontsize=8,
            va="center",
            color="#b91c1c" if status in ("KILLED", "FAILED", "CANCELED") else "#374151",
        )
        if end is None and status == "KILLED":
            ax.axvline(x1, color="#b91c1c", linestyle="--", linewidth=1.2, zorder=1)
    for s in tl.spans:
        y = rows[s.task]
        width = max(s.end - s.start, 0.004 * max(horizon, 1))  # keep instant spans visible
        if s.kind == "task":
            ax.barh(y - 0.14, width, left=s.start - o, height=0.34, color="#2563eb", zorder=2)
        else:
            ax.barh(
                y + 0.17,
                width,
                left=s.start - o,
                height=0.3,
                color="#f59e0b" if s.mode == "async" else "#d97706",
                hatch="//" if s.mode == "async" else None,
                edgecolor="#92400e",
                linewidth=0.5,
                zorder=2,
            )
    ax.set_yticks(range(len(rows)), list(rows))
    ax.set_ylim(len(rows) - 0.4, -1.0)
    ax.set_xlim(0, horizon * 1.02 if horizon > 0 else 1)
    ax.set_xlabel("seconds since the first run started")
    ax.set_title(f"workflow {tl.workflow_id}: timeline", loc="left", fontsize=11, weight="bold")
    ax.grid(axis="x", color="#d1d5db", linewidth=0.6, zorder=0)
    ax.legend(
        handles=[
            Patch(color="#2563eb", label="task: start until its output is handed on"),
            Patch(facecolor="#d97706", edgecolor="#92400e", label="sync checkpoint write"),
            Patch(
                facecolor="#f59e0b", edgecolor="#92400e", hatch="//", label="async checkpoint write"
            ),
        ],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.7 / fig_h),
        ncol=3,
        fontsize=8,
        frameon=False,
    )
    fig.tight_layout()
    return _save(fig, fmt, dpi, bbox_inches="tight")


# -- the public objects ---------------------------------------------------------------------
@dataclass
class Picture:
    """A rendered picture: ``data`` is text (svg, mermaid, dot, text) or PNG bytes.

    Renders itself in notebooks (SVG and PNG inline; Mermaid as a fenced block) and
    ``print(picture)`` shows the text formats.
    """

    format: str
    data: str | bytes

    def save(self, path: str | Path) -> Path:
        """Write the picture to ``path`` and return it."""
        p = Path(path)
        if isinstance(self.data, bytes):
            p.write_bytes(self.data)
        else:
            p.write_text(self.data, encoding="utf-8")
        return p

    def __str__(self) -> str:
        if isinstance(self.data, bytes):
            return f"<{self.format} picture, {len(self.data)} bytes>"
        return self.data

    def _repr_svg_(self) -> str | None:
        return self.data if self.format == "svg" and isinstance(self.data, str) else None

    def _repr_png_(self) -> bytes | None:
        return self.data if self.format == "png" and isinstance(self.data, bytes) else None

    def _repr_markdown_(self) -> str | None:
        if isinstance(self.data, bytes):
            return None
        if self.format == "mermaid":
            return f"```mermaid\n{self.data}```"
        if self.format in ("text", "dot"):
            return f"```\n{self.data}```"
        return None


_DAG_RENDERERS = {
    "svg": render_svg,
    "mermaid": render_mermaid,
    "dot": render_dot,
    "text": render_text,
}


def show_dag(
    target: str | Node,
    *,
    workflow_id: str | None = None,
    storage: str | None = None,
    spark: Any | None = None,
    format: DagFormat = "svg",
    output: str | Path | None = None,
) -> Picture:
    """Draw a workflow's DAG, coloured by task state and outlined by checkpoint mode.

    Args:
        target: a workflow id (its last logged DAG and states), or a DAG node (states from
            ``workflow_id``'s log if given, else all PENDING).
        workflow_id: with a node: whose log gives the states.
        storage: storage root.
        spark: only for storage roots reached through Hadoop.
        format: ``"svg"`` (default) or ``"png"`` (drawn with matplotlib: the ``pictures``
            extra), ``"mermaid"``, ``"dot"``, ``"text"``.
        output: also write the picture to this file.

    Example:
        >>> xf.show_dag("sales-2026-11-24", storage="/data/exo")          # inline in Jupyter
        >>> xf.show_dag(dag, format="mermaid").save("dag.mmd")
    """
    if format not in (*_DAG_RENDERERS, "png"):
        raise InvalidOptionError(f"format={format!r}: use one of svg, png, mermaid, dot, text")
    view = dag_view(target, workflow_id=workflow_id, storage=storage, spark=spark)
    data: str | bytes = render_png(view) if format == "png" else _DAG_RENDERERS[format](view)
    pic = Picture(format, data)
    if output is not None:
        pic.save(output)
    return pic


def show_timeline(
    workflow_id: str,
    *,
    storage: str | None = None,
    spark: Any | None = None,
    format: TimelineFormat = "png",
    run: int | None = None,
    output: str | Path | None = None,
) -> Picture:
    """Draw the run timeline of a workflow: a Gantt chart of task spans and checkpoint writes.

    Args:
        workflow_id: the workflow.
        storage: storage root.
        spark: only for storage roots reached through Hadoop.
        format: ``"png"`` (default) or ``"svg"`` (matplotlib: the ``pictures`` extra), or
            ``"text"`` (a table).
        run: only this run (default: every run, each shaded).
        output: also write the picture to this file.

    Example:
        >>> xf.show_timeline("sales-2026-11-24", storage="/data/exo").save("timeline.png")
    """
    if format not in ("png", "svg", "text"):
        raise InvalidOptionError(f"format={format!r}: timelines are png, svg or text")
    tl = timeline(workflow_id, storage=storage, spark=spark, run=run)
    if not tl.spans:
        raise InvalidOptionError(
            f"workflow [{workflow_id}] has no timed task records"
            + (f" in run {run}" if run is not None else "")
            + ": nothing ran yet (or the log predates timestamps)"
        )
    if format == "text":
        pic = Picture("text", render_timeline_text(tl))
    else:
        raw = render_timeline(tl, format)
        pic = Picture(format, raw.decode() if format == "svg" else raw)
    if output is not None:
        pic.save(output)
    return pic
