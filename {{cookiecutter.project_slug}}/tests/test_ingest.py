"""Sail lane: bronze -> silver -> gold on real Delta tables with the project's own contract and
sample data: exactly once, idempotent reruns, defects routed with reasons, the quality gate."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from pyspark.sql import functions as F

from {{ cookiecutter.package_name }} import names, pipeline
from {{ cookiecutter.package_name }}.config import load_project
from {{ cookiecutter.package_name }}.contract import load_contracts
from {{ cookiecutter.package_name }}.data.quality import FAILED
from {{ cookiecutter.package_name }}.names import RESCUED
from {{ cookiecutter.package_name }}.runtime import open_runtime
from {{ cookiecutter.package_name }}.tools.sample_data import generate

pytestmark = pytest.mark.sail

PROJECT = Path(__file__).resolve().parents[1]
ROWS = 2000
MEDALLION = ("bronze_table", "silver_table", "quarantine_table", "gold_table")


@pytest.fixture
def root(tmp_path: Path, make_root) -> Path:
    return make_root(tmp_path / "project")


@pytest.fixture
def contract(root: Path):
    return load_contracts(root)[load_project(root).source]


def run(rt, root: Path, *stages: str):
    return pipeline.run_stages(rt, list(stages) or ["ingest"], log=lambda _: None, root=root)


def landing(rt, contract) -> Path:
    return Path(rt.landing_path(contract.path))


def versions(rt, contract) -> dict[str, int | None]:
    return {attr: rt.version(getattr(contract, attr)) for attr in MEDALLION}


def counts(rt, contract) -> dict[str, int]:
    return {attr: rt.row_count(getattr(contract, attr)) for attr in MEDALLION}


def details(summary, stage: str, source: str) -> dict:
    return next(s for s in summary.stages if s.name == stage).details[source]


@dataclass
class Ingested:
    rt: Any
    root: Path
    contract: Any
    report: Any
    summary: Any


@pytest.fixture(scope="module")
def ingested(sail_spark, tmp_path_factory, make_root) -> Iterator[Ingested]:
    """The shipped sample data ingested once; the tests below read it, the last ones add files."""
    base = tmp_path_factory.mktemp("ingested")
    root = make_root(base / "project")
    contract = load_contracts(root)[load_project(root).source]
    with open_runtime("local", "dev", "ingest_tests", "local", local_dir=base / ".local", spark=sail_spark) as rt:
        report = generate(contract.name, landing(rt, contract), rows=ROWS)
        summary = run(rt, root)
        yield Ingested(rt, root, contract, report, summary)


def test_sample_data_is_ingested_and_the_accounting_closes(ingested):
    rt, contract, report = ingested.rt, ingested.contract, ingested.report
    assert ingested.summary.ok, [s.error for s in ingested.summary.stages]
    silver = details(ingested.summary, "silver", contract.name)
    assert silver["raw_records"] == report.records
    assert silver["malformed"] == report.malformed
    assert silver["accounting_closes"] is True
    assert silver["raw_records"] == (silver["silver_upserts"] + silver["quarantined"]
                                     + silver["duplicates_removed"] + silver["malformed"])
    assert silver["gate"] == "passed" and Path(silver["report"]).is_file()
    assert rt.row_count(contract.silver_table) == silver["silver_upserts"]
    assert rt.row_count(contract.gold_table) == silver["silver_upserts"]


def test_every_defect_lands_where_it_should_with_a_reason(ingested):
    rt, contract, report = ingested.rt, ingested.contract, ingested.report
    reasons: dict[str, int] = {}
    for row in rt.read(contract.quarantine_table).select(FAILED, "_source_file").collect():
        assert row[FAILED] and row["_source_file"], "every quarantined row names its reasons and file"
        for reason in row[FAILED]:
            reasons[reason] = reasons.get(reason, 0) + 1
    assert reasons["malformed_record"] == report.malformed
    key = contract.primary_key[0]
    bronze = rt.read(contract.bronze_table)
    blank_key = F.coalesce(F.trim(bronze[key]), F.lit("")) == ""
    null_keys = bronze.where(blank_key & bronze["_corrupt_record"].isNull()).count()
    assert reasons[f"not_null({key})"] == null_keys > 0
    out_of_range = sum(v for k, v in reasons.items() if k.startswith("between("))
    assert out_of_range >= report.out_of_range - report.malformed > 0
    silver = rt.read(contract.silver_table)
    assert silver.count() == silver.select(*contract.primary_key).distinct().count(), "one row per key"
    assert details(ingested.summary, "silver", contract.name)["duplicates_removed"] >= report.exact_duplicates
    drifted = silver.where(silver[RESCUED].isNotNull()).select(RESCUED).first()
    assert drifted is not None and set(json.loads(drifted[RESCUED])) <= {"referral_source", "loyalty_tier"}


def test_great_expectations_agrees_with_the_row_level_quarantine(ingested):
    """The silver report's counts come from one aggregation with the quarantine's conditions; Great
    Expectations' own BASIC results (a scan per expectation) must give the same counts, and its verdicts
    are the report's."""
    from {{ cookiecutter.package_name }}.data.validation import great_expectations_run

    rt, contract = ingested.rt, ingested.contract
    results = {r["expectation"]: r for r in rt.read(names.VALIDATION_RESULTS_TABLE).collect()}
    quarantine = rt.read(contract.quarantine_table).where("_status = 'quarantined'")
    batch = rt.read(contract.staging_table).where("_status != 'malformed'").select(*contract.column_names)
    oracle = great_expectations_run(batch, contract.expectations(), "oracle", result_format="BASIC").results
    for exp, checked in zip(contract.expectations(), oracle, strict=True):
        assert checked.expectation_config.type == exp.type and bool(checked.success) == results[exp.name]["success"]
        if not exp.row_level:
            assert results[exp.name]["success"], exp.name
            continue
        spark_count = quarantine.where(f"array_contains({FAILED}, '{exp.name}')").count()
        assert results[exp.name]["unexpected_count"] == spark_count == checked.result["unexpected_count"], exp.name
        assert results[exp.name]["element_count"] == checked.result["element_count"], exp.name
        assert (results[exp.name]["examples"] != "[]") == (spark_count > 0), exp.name


def test_three_reruns_change_nothing(ingested):
    rt, root, contract = ingested.rt, ingested.root, ingested.contract
    before_counts, before_versions = counts(rt, contract), versions(rt, contract)
    state_version = rt.version(names.INGEST_STATE_TABLE)
    for _ in range(3):
        summary = run(rt, root)
        assert summary.ok
        assert details(summary, "bronze", contract.name)["new_files"] == 0
    assert counts(rt, contract) == before_counts
    assert versions(rt, contract) == before_versions
    assert rt.version(names.INGEST_STATE_TABLE) == state_version


def test_a_new_file_adds_only_its_own_rows(ingested):
    rt, root, contract = ingested.rt, ingested.root, ingested.contract
    before = counts(rt, contract)
    extra = generate(contract.name, landing(rt, contract) / "more", rows=600, seed=99, drift=True)
    summary = run(rt, root)
    assert summary.ok
    silver = details(summary, "silver", contract.name)
    assert details(summary, "bronze", contract.name)["raw_records"] == extra.records
    assert rt.row_count(contract.bronze_table) == before["bronze_table"] + extra.records
    assert silver["raw_records"] == extra.records and silver["accounting_closes"]
    new_keys = rt.row_count(contract.silver_table) - before["silver_table"]
    assert 0 < new_keys <= silver["silver_upserts"]


def test_a_late_older_record_never_overwrites_a_newer_one(ingested):
    rt, root, contract = ingested.rt, ingested.root, ingested.contract
    folder = landing(rt, contract)
    newest = rt.read(contract.silver_table).orderBy(contract.event_time).collect()[-1].asDict()
    older = dict(newest)
    older[contract.event_time] = "2000-01-01T00:00:00Z"
    row = {c.source: (None if older[c.name] is None else str(older[c.name])) for c in contract.columns}
    if contract.format == "json":
        (folder / "late.jsonl").write_text(json.dumps(row) + "\n")
    else:
        values = ",".join("" if v is None else v for v in row.values())
        (folder / "late.csv").write_text(",".join(row) + "\n" + values + "\n")
    summary = run(rt, root)
    assert summary.ok and details(summary, "silver", contract.name)["silver_upserts"] == 1
    current = rt.read(contract.silver_table)
    for name in contract.primary_key:
        current = current.where(current[name] == newest[name])
    assert current.first()[contract.event_time] == newest[contract.event_time]


def test_empty_landing_folder_is_a_clean_no_op(local_runtime, root, contract):
    landing(local_runtime, contract).mkdir(parents=True)
    summary = run(local_runtime, root)
    assert summary.ok
    assert details(summary, "bronze", contract.name)["new_files"] == 0
    assert all(not local_runtime.exists(getattr(contract, attr)) for attr in MEDALLION)


def test_gate_fails_closed_above_its_threshold_and_passes_below(local_runtime, root, contract):
    path = contract.source_file
    raw = yaml.safe_load(path.read_text())
    raw["quality"]["quarantine_threshold"] = 0.001
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    generate(contract.name, landing(local_runtime, contract), rows=ROWS)
    summary = run(local_runtime, root)
    assert not summary.ok
    failed = next(s for s in summary.stages if s.status == "failed")
    assert failed.name == "silver"
    assert "exceeds the threshold 0.10%" in failed.error and "top failing expectations: " in failed.error
    assert "malformed_record" in failed.error
    assert not local_runtime.exists(contract.silver_table), "nothing reaches silver when the gate fails"
    assert local_runtime.exists(contract.quarantine_table) and local_runtime.exists(names.VALIDATION_RESULTS_TABLE)
    gate = local_runtime.read(names.INGEST_METRICS_TABLE).first()
    assert gate["gate"] == "failed" and gate["quarantine_rate"] > 0.001

    raw["quality"]["quarantine_threshold"] = 0.5
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    summary = run(local_runtime, root)
    assert summary.ok and details(summary, "silver", contract.name)["gate"] == "passed"
    assert local_runtime.read(names.INGEST_METRICS_TABLE).count() == 1, "the retried batch replaces its metrics row"


def test_a_contract_for_another_csv_with_other_column_names_needs_no_code(local_runtime, root):
    folder = Path(local_runtime.landing_path("raw/shop_orders"))
    folder.mkdir(parents=True)
    (folder / "orders.csv").write_text(
        "Order No;Customer;Amount EUR;Placed\n"
        "O-1;c1;12,50;2024-01-03\n"
        "O-2;c2;7.25;2024-01-04\n"
        "O-2;c2;7.25;2024-01-04\n"
        "O-3;;1.00;2024-01-05\n"
        "O-4;c4;-3;2024-01-06;oops\n")
    (root / "conf" / "contracts" / "shop_orders.yml").write_text(
        "name: shop_orders\nformat: csv\noptions: {header: 'true', delimiter: ';'}\npath: raw/shop_orders\n"
        "primary_key: [order_no]\nevent_time: null\n"
        "columns:\n"
        "  order_no: {source: Order No, required: true}\n"
        "  customer: {source: Customer, required: true}\n"
        "  amount: {source: Amount EUR, type: double, min: 0, decimal_separator: ','}\n"
        "  placed: {source: Placed, type: date}\n"
        "quality: {quarantine_threshold: 0.5}\n"
        "gold: {table: orders_daily, keys: [order_no], timestamp: _ingest_date}\n")
    summary = run(local_runtime, root)
    assert summary.ok, [s.error for s in summary.stages]
    silver = details(summary, "silver", "shop_orders")
    assert (silver["raw_records"], silver["silver_upserts"], silver["quarantined"], silver["duplicates_removed"],
            silver["malformed"]) == (5, 2, 1, 1, 1)
    rows = {r.order_no: r.amount for r in local_runtime.read("silver_shop_orders").collect()}
    assert rows == {"O-1": 12.5, "O-2": 725.0}
    assert local_runtime.row_count("gold_orders_daily") == 2
