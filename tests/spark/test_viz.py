"""Pictures: the layered layout, the renderers, and states/timelines read from a real log."""

from __future__ import annotations

import io
import sys
import time
import xml.etree.ElementTree as ET

import pytest

import exoflow_spark as xf
from exoflow_spark.surface import viz
from exoflow_spark.surface.viz import DagView, TaskView

SVG = "{http://www.w3.org/2000/svg}"


def _view() -> DagView:
    """a -> b -> c -> out, a -> out (a long edge), lookup -> c, out waits for b."""
    return DagView(
        "wf",
        "FAILED",
        [
            TaskView("a", [], [], "sync", "COMMITTED", detail="v0 1.0 KB"),
            TaskView("b", ["a"], [], "async", "DONE"),
            TaskView("lookup", [], [], "none", "RUNNING"),
            TaskView("c", ["b", "lookup"], [], "none", "FAILED"),
            TaskView("out", ["c", "a"], ["b"], "none", "PENDING", sink=True, output=True),
        ],
    )


def test_layered_layout_layers_slots_and_no_overlap() -> None:
    lay = viz.layered_layout(_view())
    # layers by longest path; a source sits just before its consumer, not at the far left
    assert [sorted(layer) for layer in lay.layers] == [["a"], ["b", "lookup"], ["c"], ["out"]]
    x = {t: p[0] for t, p in lay.pos.items()}
    assert x["lookup"] == x["b"] < x["c"]
    # no two boxes overlap
    boxes = list(lay.pos.items())
    for i, (t1, (x1, y1)) in enumerate(boxes):
        for t2, (x2, y2) in boxes[i + 1 :]:
            assert abs(x1 - x2) >= lay.node_w or abs(y1 - y2) >= lay.node_h, (t1, t2)
    # the long edge a -> out is routed through a slot in each layer it crosses, clear of
    # every box
    route = lay.routes[("a", "out", "data")]
    assert len(route) == 2
    for rx, ry in route:
        for t, (bx, by) in lay.pos.items():
            inside = abs(rx - bx) < lay.node_w / 2 and abs(ry - by) < lay.node_h / 2
            assert not inside, f"route of a->out passes through {t}"
    assert ("b", "out", "wait") in lay.routes


def test_drawing_colours_outlines_and_legend() -> None:
    """SVG and PNG are one matplotlib drawing: its boxes, their fills and outlines."""
    from matplotlib.colors import to_rgba

    fig = viz.draw_dag(_view())
    ax = fig.axes[0]
    boxes = {p.get_gid().split(":", 1)[1]: p for p in ax.patches if p.get_gid().startswith("task:")}
    assert set(boxes) == {"a", "b", "lookup", "c", "out"}
    for task, state in (
        ("a", "COMMITTED"),
        ("b", "DONE"),
        ("lookup", "RUNNING"),
        ("c", "FAILED"),
        ("out", "PENDING"),
    ):
        assert boxes[task].get_facecolor() == to_rgba(viz.STATE_COLOURS[state])
    # outlines: sync thick solid, async thick dashed, none thin grey
    assert boxes["a"].get_linestyle() == "-" and boxes["a"].get_linewidth() > 2
    _, dashes = boxes["b"].get_linestyle()  # the SVG writer's "7 4" px, per line width
    assert dashes == (7 / 3, 4 / 3) and boxes["b"].get_linewidth() > 2
    assert boxes["c"].get_linestyle() == "-" and boxes["c"].get_linewidth() < 1
    assert boxes["c"].get_edgecolor() == to_rgba("#6b7280")
    edges = sorted(p.get_gid() for p in ax.patches if p.get_gid().split(":")[0] in ("edge", "wait"))
    assert edges == [
        "edge:a->b",
        "edge:a->out",
        "edge:b->c",
        "edge:c->out",
        "edge:lookup->c",
        "wait:b->out",
    ]
    texts = " ".join(t.get_text() for t in ax.texts)
    for word in ("OUTPUT", "committed (durable)", "async (written in the background)", "waits"):
        assert word in texts


def test_svg_and_png_files() -> None:
    from matplotlib.colors import to_rgb
    from matplotlib.image import imread

    svg = viz.render_svg(_view())
    root = ET.fromstring(svg)  # a standalone, well-formed document
    assert root.tag == f"{SVG}svg"
    ids = {g.get("id") for g in root.iter(f"{SVG}g")}
    assert {"task:a", "task:out", "wait:b->out", "legend:async"} <= ids
    tips = {  # a browser's tooltip on each task: id, state, mode, details
        g.get("id"): [t.text for t in g.findall(f"{SVG}title")]
        for g in root.iter(f"{SVG}g")
        if (g.get("id") or "").startswith("task:")
    }
    assert tips["task:a"] == ["a · committed · sync checkpoint · v0 1.0 KB"]
    assert tips["task:out"] == ["out · pending · no checkpoint · sink"]
    assert len(tips) == 5 and all(len(t) == 1 for t in tips.values())
    texts = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))  # text kept as text
    assert "workflow wf — FAILED" in texts and "sync (durable before readers start)" in texts
    assert viz.render_svg(_view()) == svg  # no dates or random ids: the same bytes each time
    png = viz.render_png(_view(), dpi=100)
    assert png.startswith(b"\x89PNG")
    pixels = imread(io.BytesIO(png))[:, :, :3].reshape(-1, 3)
    for state in ("COMMITTED", "DONE", "RUNNING", "FAILED", "PENDING"):  # every fill is drawn
        assert (abs(pixels - to_rgb(viz.STATE_COLOURS[state])).max(axis=1) < 0.01).any(), state


def test_pictures_without_matplotlib_say_what_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(xf.ExoflowError, match=r"pip install 'exoflow-spark\[pictures\]'"):
        viz.render_svg(_view())
    assert "flowchart" in viz.render_mermaid(_view())  # the text formats need nothing


def test_text_mermaid_and_dot() -> None:
    text = viz.render_text(_view())
    lines = text.splitlines()
    assert lines[0] == "workflow wf: FAILED"
    assert lines[1].startswith("out ") and "PENDING" in lines[1] and "waits for b" in lines[1]
    assert any("(shown above)" in line for line in lines)  # a is reached twice
    mermaid = viz.render_mermaid(_view())
    assert "t0 --> t4" in mermaid and "t1 -. waits .-> t4" in mermaid
    dot = viz.render_dot(_view())
    assert '"b" -> "out" [style=dotted' in dot and "dashed" in dot


def test_a_node_that_never_ran_is_all_pending(storage) -> None:
    @xf.task
    def one():
        return 1

    @xf.task
    def two(x):
        return x + 1

    pic = xf.show_dag(two.bind(one.bind()), format="text")
    assert "DAG (not run)" in str(pic) and str(pic).count("PENDING") == 2
    with pytest.raises(xf.ExoflowError, match="format="):
        xf.show_dag(two.bind(one.bind()), format="gif")  # type: ignore[arg-type]
    with pytest.raises(xf.WorkflowNotFoundError):
        xf.show_dag("never-ran", storage=storage)


def test_states_and_timeline_from_a_real_run(spark, storage, tmp_path) -> None:
    @xf.task(checkpoint="async")
    def base():
        return xf.get_spark().range(2000).selectExpr("id", "id % 7 AS k")

    @xf.task
    def slow_reader(df):
        time.sleep(1.0)  # still reading the cache while base's async write runs
        return df.filter("k = 1")

    @xf.task(checkpoint=True)
    def agg(df):
        return df.groupBy("k").count()

    @xf.task
    def broken(df):
        raise ValueError("bad input")

    @xf.task
    def both(a, b):
        return [a, b]

    totals = agg.bind(slow_reader.bind(base.bind()))
    dag = both.bind(totals, broken.bind(totals))
    with pytest.raises(xf.TaskFailedError):
        xf.run(dag, workflow_id="viz-real", storage=storage, spark=spark)
    view = viz.dag_view("viz-real", storage=storage)
    states = {t.id: t.state for t in view.tasks}
    assert states["base"] == "COMMITTED"
    assert states["broken"] == "FAILED"
    assert states["both"] == "PENDING"
    assert view.task("base").checkpoint == "async" and view.task("base").detail.startswith("v0")

    tl = viz.timeline("viz-real", storage=storage)
    spans = {(s.task, s.kind): s for s in tl.spans}
    write = spans[("base", "checkpoint")]
    reader = spans[("slow_reader", "task")]
    assert write.mode == "async"
    # the async write overlapped the task reading base's cache
    assert write.start < reader.end and reader.start < write.end
    assert reader.end - reader.start >= 1.0
    assert spans[("base", "task")].end <= reader.start + 0.5
    assert tl.runs[0][3] == "FAILED"
    png = xf.show_timeline("viz-real", storage=storage, output=tmp_path / "t.png")
    assert (tmp_path / "t.png").read_bytes() == png.data and png._repr_png_() == png.data
    table = str(xf.show_timeline("viz-real", storage=storage, format="text"))
    assert "slow_reader" in table and "ckpt async" in table
