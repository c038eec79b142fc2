"""The package's dependency rule, checked by walking every import (function-level ones too).

Layers, lowest first; a module may import its own layer and the layers below it, never above:

    core     (core/, errors.py)   pure Python: never imports pyspark, delta or py4j
    spark    (spark/)             SparkSession, Py4J, Hadoop, Spark's SQL parser (sqlparse.py):
                                  the only place that reaches the JVM
    storage  (storage/)           the workflow log, checkpoint files, the storage layout
    engine   (engine/)            planner, cost model, refs, runner, committer, gc
    io       (io/)                sinks, streaming tasks, iterate
    surface  (api.py, surface/)   the verbs users call, CLI, progress, pictures, config,
                                  Spark Declarative Pipelines (surface/pipelines.py)
    public   (__init__.py, graph.py)  graph.py uses only ``exoflow_spark``'s public names

No module may import another in a loop, and only spark/ may touch Py4J's private handles.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "exoflow_spark"
LAYERS = ["core", "spark", "storage", "engine", "io", "surface", "public"]
JVM_HANDLES = {"_jvm", "_jsc", "_jdf", "_jsparkSession", "_gateway"}


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "public"
    head = parts[1]
    if head in ("core", "errors"):
        return "core"
    if head in ("spark", "storage", "engine", "io", "surface"):
        return head
    if head == "api":
        return "surface"
    if head == "graph":
        return "public"
    raise AssertionError(f"{module}: no layer; add it to LAYERS in {__file__}")


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(module: str, path: Path) -> list[tuple[str, int]]:
    """(imported module, line) for every import in the file, at any depth."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            # ``from . import api`` imports a module, not a name
            submodules = [f"{target}.{a.name}" for a in node.names]
            if all(m in MODULES for m in submodules):
                found.extend((m, node.lineno) for m in submodules)
            else:
                found.append((target, node.lineno))
    return found


MODULES = modules()


def internal_target(name: str) -> str | None:
    """The package module an import resolves to (a package's __init__ for a package)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        assert layer_of(module) in LAYERS


def test_imports_point_down() -> None:
    broken = []
    for module, path in MODULES.items():
        mine = LAYERS.index(layer_of(module))
        for target, line in imports_of(module, path):
            if not target.startswith("exoflow_spark"):
                continue
            resolved = internal_target(target)
            if resolved is None or resolved == "exoflow_spark":
                if layer_of(module) != "public" and target == "exoflow_spark":
                    broken.append(f"{path.name}:{line} imports the public package from inside")
                continue
            theirs = LAYERS.index(layer_of(resolved))
            if theirs > mine:
                up = f"{resolved} ({layer_of(resolved)})"
                broken.append(f"{module}:{line} ({layer_of(module)}) imports {up}")
    assert not broken, "imports that point up a layer:\n" + "\n".join(broken)


def test_graph_uses_only_the_public_api() -> None:
    path = MODULES["exoflow_spark.graph"]
    internal = [
        (t, line)
        for t, line in imports_of("exoflow_spark.graph", path)
        if t.startswith("exoflow_spark") and t != "exoflow_spark"
    ]
    assert not internal, f"graph.py imports internals: {internal}"


def test_core_never_imports_spark() -> None:
    offenders = [
        f"{module}:{line} imports {target}"
        for module, path in MODULES.items()
        if layer_of(module) == "core"
        for target, line in imports_of(module, path)
        if target.split(".")[0] in ("pyspark", "delta", "py4j")
    ]
    assert not offenders, "\n".join(offenders)


def test_only_spark_layer_touches_the_jvm() -> None:
    offenders = []
    for module, path in MODULES.items():
        if layer_of(module) == "spark":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in JVM_HANDLES:
                offenders.append(f"{module}:{node.lineno} uses .{node.attr}")
            if isinstance(node, ast.Constant) and node.value in JVM_HANDLES:
                offenders.append(f"{module}:{node.lineno} names {node.value!r}")
    assert not offenders, "Py4J handles outside spark/:\n" + "\n".join(offenders)


def test_no_import_cycles() -> None:
    graph = {
        module: {
            t
            for t in (internal_target(name) for name, _ in imports_of(module, path))
            if t is not None and t != module and t != "exoflow_spark"
        }
        for module, path in MODULES.items()
    }
    # a package's __init__ re-exports its children; edges into it are edges into the child
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycles.append([*stack[stack.index(n) :], n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize(
    ("module", "target", "expect_up"),
    [
        ("exoflow_spark.core.dag", "exoflow_spark.engine.ref", True),
        ("exoflow_spark.engine.ref", "exoflow_spark.core.dag", False),
        ("exoflow_spark.storage.store", "exoflow_spark.io.sink", True),
    ],
)
def test_the_rule_itself_can_fail(module: str, target: str, expect_up: bool) -> None:
    up = LAYERS.index(layer_of(target)) > LAYERS.index(layer_of(module))
    assert up is expect_up
