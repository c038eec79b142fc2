"""The DAG: built from the node you ask for, validated, given stable ids and fingerprints.

Task ids are the task names, de-duplicated in a deterministic order (``name``, ``name_1``,
...), so the same program builds the same ids in every run. A node's fingerprint hashes its
code, its literal inputs and its upstream fingerprints: when a committed task's fingerprint
changes, its stored output may be stale and the run is refused (see ``TaskChangedError``).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import logging
import re
import textwrap
from collections.abc import Iterator
from typing import Any

from ..errors import DagError, InvalidOptionError
from .ids import validate_id
from .task import Node, map_nested
from .values import is_dataframe

logger = logging.getLogger(__name__)

_ADDRESS_RE = re.compile(r" at 0x[0-9a-fA-F]+")


class Dag:
    """A validated DAG: nodes in topological order with stable ids.

    Attributes:
        output: the node whose value ``run`` returns.
        nodes: every node, upstream before downstream.
    """

    def __init__(self, output: Node, *, checkpoint_policy: Any = False) -> None:
        """Build and validate the DAG of ``output``.

        Args:
            output: the output node.
            checkpoint_policy: the checkpoint mode of every task that declares none
                (``xf.run(checkpoint=...)``, see
                :func:`~exoflow_spark.core.options.checkpoint_policy`); default ``False``.
        """
        if not isinstance(output, Node):
            raise InvalidOptionError(
                f"xf.run expects a DAG node built with task.bind(...), got "
                f"{type(output).__name__}: {output!r}"
            )
        self.output = output
        self.checkpoint_policy = checkpoint_policy
        self.nodes: list[Node] = _toposort(output)
        self._ids: dict[int, str] = _assign_ids(self.nodes)
        self._by_id: dict[str, Node] = {self._ids[id(n)]: n for n in self.nodes}
        self._upstream: dict[int, list[Node]] = {id(n): n.upstream() for n in self.nodes}
        self._downstream: dict[int, list[Node]] = {id(n): [] for n in self.nodes}
        for n in self.nodes:
            for u in self._upstream[id(n)]:
                self._downstream[id(u)].append(n)
        self._fingerprints: dict[int, str] = {}
        for n in self.nodes:
            self._fingerprints[id(n)] = self._fingerprint(n)
        self._validate_waits()
        self._sinks = {
            id(n) for n in self.nodes if n.task.opts.sink or calls_write_delta(n.task.fn)
        }
        self._validate_nondeterminism()
        self._waits: dict[int, tuple[str, ...]] = {
            id(n): self._effective_waits(n) for n in self.nodes
        }

    # -- lookups -------------------------------------------------------------------------
    def id_of(self, node: Node) -> str:
        """The stable task id of ``node``."""
        return self._ids[id(node)]

    def node(self, task_id: str) -> Node:
        """The node with this task id."""
        try:
            return self._by_id[task_id]
        except KeyError:
            raise DagError(
                f"no task [{task_id}] in this DAG; its tasks are {sorted(self._by_id)}"
            ) from None

    @property
    def task_ids(self) -> list[str]:
        """All task ids, upstream first."""
        return [self._ids[id(n)] for n in self.nodes]

    def upstream(self, node: Node) -> list[Node]:
        """Direct inputs of ``node``."""
        return self._upstream[id(node)]

    def downstream(self, node: Node) -> list[Node]:
        """Direct consumers of ``node``."""
        return self._downstream[id(node)]

    def descendants(self, task_ids: list[str]) -> list[str]:
        """The given tasks and everything downstream of them, in topological order."""
        marked = {id(self.node(t)) for t in task_ids}
        for n in self.nodes:
            if any(id(u) in marked for u in self._upstream[id(n)]):
                marked.add(id(n))
        return [self.id_of(n) for n in self.nodes if id(n) in marked]

    def is_sink(self, node: Node) -> bool:
        """Whether the task has effects outside the workflow (declared or detected)."""
        return id(node) in self._sinks

    def mode_of(self, node: Node) -> Any:
        """The task's checkpoint mode: its declared option, else the run's policy."""
        opts = node.task.opts
        return opts.checkpoint if opts.checkpoint_declared else self.checkpoint_policy

    def checkpoint_of(self, node: Node) -> Any:
        """The effective checkpoint mode (the workflow's output is always made durable)."""
        mode = self.mode_of(node)
        return True if (mode is False and node is self.output) else mode

    def waits(self, node: Node) -> tuple[str, ...]:
        """Tasks that must be committed before ``node`` starts: its ``wait_until_committed``
        plus, for a sink, every nondeterministic checkpointed ancestor (implicit)."""
        return self._waits[id(node)]

    def ancestors(self, node: Node) -> list[Node]:
        """Every node ``node`` depends on, directly or not (excluding itself)."""
        return [a for a in self._ancestors_inclusive(node) if a is not node]

    def fingerprint(self, node: Node) -> str:
        """Hash of the node's code, literal inputs and upstream fingerprints."""
        return self._fingerprints[id(node)]

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    # -- records -------------------------------------------------------------------------
    def to_record(self) -> dict[str, Any]:
        """A JSON-able description of the DAG, logged before anything runs."""
        tasks = []
        for n in self.nodes:
            o = n.task.opts
            tasks.append(
                {
                    "id": self.id_of(n),
                    "function": f"{getattr(n.task.fn, '__module__', '?')}."
                    f"{getattr(n.task.fn, '__qualname__', n.task.name)}",
                    "upstream": [self.id_of(u) for u in self.upstream(n)],
                    "checkpoint": self.mode_of(n),
                    "deterministic": o.deterministic,
                    "max_retries": o.max_retries,
                    "retry_exceptions": o.retry_exceptions,
                    "catch_exceptions": o.catch_exceptions,
                    "wait_until_committed": list(o.wait_until_committed),
                    "waits": list(self.waits(n)),
                    "sink": self.is_sink(n),
                    "streaming": hasattr(n.task, "stream"),
                    "code_fingerprint": code_fingerprint(n.task.fn),
                    "fingerprint": self.fingerprint(n),
                }
            )
        return {"output": self.id_of(self.output), "tasks": tasks}

    # -- internals -----------------------------------------------------------------------
    def _fingerprint(self, node: Node) -> str:
        def canon(value: Any) -> Any:
            if isinstance(value, Node):
                return {"$node": self._fingerprints[id(value)]}
            return canonical_value(value)

        payload = {
            "code": code_fingerprint(node.task.fn),
            "args": map_nested(list(node.args), canon),
            "kwargs": map_nested(dict(sorted(node.kwargs.items())), canon),
            "deterministic": node.task.opts.deterministic,
        }
        blob = json.dumps(payload, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:32]

    def _validate_waits(self) -> None:
        names = set(self._by_id)
        for n in self.nodes:
            for w in n.task.opts.wait_until_committed:
                if w not in names:
                    raise DagError(
                        f"task [{self.id_of(n)}] waits until [{w}] is committed, but the DAG has "
                        f"no task [{w}]; its tasks are {sorted(names)}"
                    )
                target = self._by_id[w]
                if self.mode_of(target) is False and target is not self.output:
                    raise DagError(
                        f"task [{self.id_of(n)}] waits until [{w}] is committed, but [{w}] has "
                        "checkpoint=False and never commits an output: give it "
                        "checkpoint=True or 'async', or drop it from wait_until_committed"
                    )
                if target is n or id(n) in {id(x) for x in self._ancestors_inclusive(target)}:
                    raise DagError(
                        f"task [{self.id_of(n)}] waits until [{w}] is committed, but [{w}] "
                        f"depends on [{self.id_of(n)}]: that wait can never end; remove it"
                    )

    def _validate_nondeterminism(self) -> None:
        """Reject a DAG whose sinks could publish two versions of a nondeterministic output."""
        for n in self.nodes:
            if n.task.opts.deterministic or self.checkpoint_of(n) is not False:
                continue
            tid = self.id_of(n)
            sinks = [
                d for d in self.descendants([tid]) if d != tid and id(self._by_id[d]) in self._sinks
            ]
            if sinks:
                raise DagError(
                    f"task [{self.id_of(n)}] is nondeterministic (deterministic=False) with "
                    f"checkpoint=False, and its output reaches sink(s) "
                    f"{', '.join(f'[{t}]' for t in sinks)}: after a failure it would be "
                    "recomputed and could differ from what was already published. Fix: give "
                    f"[{self.id_of(n)}] checkpoint=True or 'async' (sinks then read one durable "
                    "version), or mark it deterministic=True if re-running gives the same rows"
                )

    def _effective_waits(self, node: Node) -> tuple[str, ...]:
        waits = list(node.task.opts.wait_until_committed)
        if id(node) in self._sinks:
            for a in self.ancestors(node):
                tid = self.id_of(a)
                if not a.task.opts.deterministic and tid not in waits:
                    waits.append(tid)
        return tuple(waits)

    def _ancestors_inclusive(self, node: Node) -> list[Node]:
        seen: dict[int, Node] = {}
        stack = [node]
        while stack:
            cur = stack.pop()
            if id(cur) not in seen:
                seen[id(cur)] = cur
                stack.extend(self._upstream[id(cur)])
        return list(seen.values())


def _toposort(output: Node) -> list[Node]:
    """Post-order DFS from the output; raises DagError on a cycle. Iterative (deep DAGs)."""
    order: list[Node] = []
    state: dict[int, int] = {}  # 1 = on the stack, 2 = done
    stack: list[tuple[Node, Iterator[Node]]] = [(output, iter(output.upstream()))]
    state[id(output)] = 1
    while stack:
        node, children = stack[-1]
        child = next(children, None)
        if child is None:
            stack.pop()
            state[id(node)] = 2
            order.append(node)
        elif state.get(id(child)) == 1:
            path = " -> ".join(n.task.name for n, _ in stack) + f" -> {child.task.name}"
            raise DagError(f"the DAG has a cycle: {path}; a task cannot depend on itself")
        elif id(child) not in state:
            state[id(child)] = 1
            stack.append((child, iter(child.upstream())))
    return order


def _assign_ids(nodes: list[Node]) -> dict[int, str]:
    ids: dict[int, str] = {}
    used: set[str] = set()
    explicit = {n.task.opts.name for n in nodes if n.task.opts.name}
    # the next suffix to try per base name: ``used`` only grows, so the first free suffix
    # never moves backwards, and a task bound 10,000 times costs O(n), not O(n^2)
    next_k: dict[str, int] = {}
    for n in nodes:
        base = n.task.name
        candidate, k = base, 0
        if candidate in used:
            k = next_k.get(base, 1)
            candidate = f"{base}_{k}"
        while candidate in used or (candidate != base and candidate in explicit):
            k += 1
            candidate = f"{base}_{k}"
        if k:
            next_k[base] = k + 1
        if base in used and n.task.opts.name:
            raise DagError(
                f"two different nodes are both named [{base}] explicitly (name=...); task ids "
                "must be unique: give one of them another name"
            )
        used.add(candidate)
        ids[id(n)] = validate_id(candidate, kind="task id")
    return ids


@functools.lru_cache(maxsize=4096)
def calls_write_delta(fn: Any) -> bool:
    """Whether ``fn``'s code (or code nested in it) refers to ``write_delta``."""
    stack = [getattr(fn, "__code__", None)]
    while stack:
        code = stack.pop()
        if code is None:
            continue
        if "write_delta" in code.co_names:
            return True
        stack.extend(c for c in code.co_consts if hasattr(c, "co_names"))
    return False


@functools.lru_cache(maxsize=4096)
def code_fingerprint(fn: Any) -> str:
    """Hash of a function's source (or, without source, of its bytecode and constants)."""
    try:
        src = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        code = getattr(fn, "__code__", None)
        src = repr((code.co_code, code.co_consts, code.co_names)) if code else repr(fn)
    return hashlib.sha256(src.encode()).hexdigest()[:32]


def canonical_value(value: Any) -> Any:
    """A stable, JSON-able stand-in for a literal input, used in fingerprints."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if is_dataframe(value):
        return {"$dataframe": int(value.semanticHash())}
    if isinstance(value, (bytes, bytearray)):
        return {"$bytes": hashlib.sha256(bytes(value)).hexdigest()}
    return {"$repr": f"{type(value).__qualname__}:{_ADDRESS_RE.sub('', repr(value))}"}
