"""The demo ETL job, in-process on the suite's session, against a pure-Python oracle."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from drivers.jobs import load_job, oracle

ROWS = 3000


def test_etl_demo_matches_oracle_and_is_exactly_once(spark, tmp_path, capsys) -> None:
    job = load_job("etl_pipeline")
    storage = tmp_path / "exo"
    argv = ["--workflow-id", "etl-test", "--storage", str(storage), "--rows", str(ROWS)]
    assert job.main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    gold_expected, reasons = oracle(storage / "raw" / f"rows-{ROWS}")
    assert summary["status"] == "SUCCESSFUL"
    assert summary["reasons"] == reasons and set(reasons) == {
        "malformed JSON",
        "missing order_id",
        "amount is not a number",
    }
    assert summary["quarantined"] == sum(reasons.values())

    gold = {
        (str(r.day), r.country): (r.revenue, r.orders)
        for r in spark.read.format("delta").load(str(storage / "lake" / "gold_daily")).collect()
    }
    assert gold.keys() == gold_expected.keys()
    for key, (revenue, n) in gold_expected.items():
        assert gold[key][1] == n
        assert gold[key][0] == pytest.approx(revenue, abs=1e-6)

    # the scheduler runs the same command again: nothing is executed, nothing written
    assert job.main(argv) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["gold_table_rows"] == len(gold_expected)
    quarantine = spark.read.format("delta").load(str(storage / "lake" / "quarantine"))
    assert quarantine.count() == sum(reasons.values())


def write_raw(root: Path, lines: list[str]) -> Path:
    (root / "orders").mkdir(parents=True)
    (root / "customers").mkdir()
    (root / "orders" / "part-0.txt").write_text("".join(f"{line}\n" for line in lines))
    (root / "customers" / "c.json").write_text(
        json.dumps({"customer_id": 1, "country": "DE", "name": "a"}) + "\n"
    )
    return root


GOOD = json.dumps({"order_id": 1, "customer_id": 1, "amount": 2.5, "ts": "2026-11-24T10:00:00"})


def test_bad_input_is_quarantined_with_reason_and_source(spark, tmp_path, capsys) -> None:
    job = load_job("etl_pipeline")
    raw = write_raw(
        tmp_path / "raw",
        [
            GOOD,
            '{"order_id": 2, "amount": ',  # broken JSON
            json.dumps({"order_id": 3, "customer_id": 1, "amount": "lots", "ts": "2026-11-24"}),
            json.dumps({"customer_id": 1, "amount": 1.0, "ts": "2026-11-24"}),  # no order_id
            json.dumps({"order_id": 5, "customer_id": 1, "amount": "1" + "0" * 70_000}),
        ],
    )
    storage = tmp_path / "exo"
    argv = ["--workflow-id", "bad", "--storage", str(storage), "--raw", str(raw)]
    assert job.main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["reasons"] == {
        "malformed JSON": 1,
        "amount is not a number": 1,
        "missing order_id": 1,
        f"oversized record (> {job.MAX_RECORD_BYTES} bytes)": 1,
    }
    assert summary["quarantined"] == 4 and summary["gold_table_rows"] == 1
    q = spark.read.format("delta").load(str(storage / "lake" / "quarantine")).collect()
    assert {r.source.rsplit("/", 1)[-1] for r in q} == {"part-0.txt"}


def test_schema_drift_is_rejected_naming_the_field_or_evolved(spark, tmp_path, capsys) -> None:
    job = load_job("etl_pipeline")
    drifted = json.dumps({**json.loads(GOOD), "order_id": 2, "coupon": "XMAS"})
    raw = write_raw(tmp_path / "raw", [GOOD, drifted])
    storage = tmp_path / "exo"
    argv = ["--workflow-id", "drift", "--storage", str(storage), "--raw", str(raw)]
    with pytest.raises(job.SchemaDriftError, match=r"\['coupon'\]") as info:
        _run_bronze(job, spark, raw, "reject")
    assert "--schema-drift evolve" in str(info.value)
    assert job.main(argv) == 1  # the job stops, nothing published
    assert not (storage / "lake" / "gold_daily").exists()
    capsys.readouterr()
    assert job.main([*argv, "--schema-drift", "evolve"]) == 0
    assert json.loads(capsys.readouterr().out)["gold_table_rows"] == 1
    bronze = spark.read.format("delta").load(
        str(storage / "workflows" / "drift" / "refs" / "bronze_orders")
    )
    assert "coupon" in bronze.columns
    assert {r.coupon for r in bronze.collect()} == {None, "XMAS"}


def _run_bronze(job, spark, raw: Path, drift: str):
    import exoflow_spark as xf

    node = job.bronze_orders.bind(job.raw_orders.bind(str(raw / "orders")), drift)
    return xf.run(node, workflow_id=f"bronze-{drift}", storage=str(raw.parent / "b"), spark=spark)


def test_empty_input_completes_with_empty_tables(spark, tmp_path, capsys) -> None:
    job = load_job("etl_pipeline")
    raw = write_raw(tmp_path / "raw", [])
    storage = tmp_path / "exo"
    argv = ["--workflow-id", "empty", "--storage", str(storage), "--raw", str(raw)]
    assert job.main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["gold_table_rows"] == 0 and summary["quarantined"] == 0
