"""Print the sizes of the engine modules and the longest functions in exoflow_spark/engine/.

Usage: python tools/engine_sizes.py [package dir, default exoflow_spark/engine] [--top N]
Sizes are source lines (the file's line count); a function's length is its line span,
decorators and docstring included, nested functions counted inside their parent too.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path


def functions(path: Path) -> list[tuple[int, str]]:
    """(line span, qualified name) of every function and method in ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    out: list[tuple[int, str]] = []

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([child.lineno] + [d.lineno for d in child.decorator_list])
                name = f"{prefix}{child.name}"
                out.append((child.end_lineno - start + 1, f"{path.name}:{name}"))
                walk(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                walk(child, f"{prefix}{child.name}.")

    walk(tree, "")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("package", nargs="?", default="exoflow_spark/engine")
    ap.add_argument("--top", type=int, default=5)
    args = ap.parse_args()
    files = sorted(Path(args.package).glob("*.py"))
    print(f"{'module':<16} {'lines':>6} {'funcs':>6} {'longest':>8}")
    every: list[tuple[int, str]] = []
    for f in files:
        fns = functions(f)
        every += fns
        longest = max((n for n, _ in fns), default=0)
        lines = len(f.read_text().splitlines())
        print(f"{f.name:<16} {lines:>6} {len(fns):>6} {longest:>8}")
    print(f"\nlongest functions in {args.package}:")
    for n, name in sorted(every, reverse=True)[: args.top]:
        print(f"  {n:>4}  {name}")


if __name__ == "__main__":
    main()
