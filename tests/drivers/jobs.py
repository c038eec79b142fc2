"""The repository's jobs (``jobs/*.py``) loaded as modules, and the ETL job's oracle: shared
by the in-process job tests and the integration tests that run the same jobs elsewhere."""

from __future__ import annotations

import importlib.util
import json
from collections import defaultdict
from pathlib import Path
from types import ModuleType

from drivers import REPO


def load_job(name: str) -> ModuleType:
    """``jobs/<name>.py`` imported as a module (its ``main(argv)`` runs in this process)."""
    spec = importlib.util.spec_from_file_location(f"job_{name}", REPO / "jobs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def oracle(raw_dir: Path) -> tuple[dict[tuple[str, str], tuple[float, int]], dict[str, int]]:
    """Gold rows and quarantine reasons computed with plain Python from the raw files."""
    customers = {}
    for f in (raw_dir / "customers").glob("*.json"):
        for line in f.read_text().splitlines():
            c = json.loads(line)
            customers[c["customer_id"]] = c["country"]
    reasons: dict[str, int] = defaultdict(int)
    orders = {}
    for f in sorted((raw_dir / "orders").glob("*.txt")):
        for line in f.read_text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                reasons["malformed JSON"] += 1
                continue
            if "order_id" not in rec:
                reasons["missing order_id"] += 1
            elif "customer_id" not in rec:
                reasons["missing customer_id"] += 1
            elif not isinstance(rec.get("amount"), (int, float)):
                reasons["amount is not a number"] += 1
            else:
                orders[rec["order_id"]] = rec  # duplicates collapse on order_id
    gold: dict[tuple[str, str], list] = defaultdict(lambda: [0.0, 0])
    for rec in orders.values():
        key = (rec["ts"][:10], customers.get(rec["customer_id"], "unknown"))
        gold[key][0] += rec["amount"]
        gold[key][1] += 1
    return {k: (round(v[0], 2), v[1]) for k, v in gold.items()}, dict(reasons)
