"""JVM lane: the pure transformations behind bronze, silver and gold."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.contract import load_contract
from {{ cookiecutter.package_name }}.data.gold import gold_rows
from {{ cookiecutter.package_name }}.data.quality import FAILED, STATUS, quarantine_rows, silver_rows, typed_with_failures
from {{ cookiecutter.package_name }}.runtime.landing import conform_table, parse_json_lines

pytestmark = pytest.mark.jvm

CONTRACT = """
name: accounts
format: json
path: raw/accounts
primary_key: [account_id]
event_time: updated
label: {column: status, positive: [closed, "1"]}
columns:
  account_id: {source: "AccountId", required: true, pattern: "^A[0-9]+$"}
  updated: {type: timestamp, required: true}
  balance: {type: double, min: 0}
  visits: {type: int, min: 0, max: 10}
  vip: {type: boolean}
  tier: {type: string, allowed: [gold, silver]}
  status: {type: string}
gold:
  table: accounts_daily
  keys: [account_id]
  timestamp: updated
  columns:
    balance_per_visit: balance / greatest(visits, 1)
    tier: tier
"""


@pytest.fixture
def contract(tmp_path: Path):
    path = tmp_path / "accounts.yml"
    path.write_text(textwrap.dedent(CONTRACT))
    return load_contract(path, tmp_path)


def _bronze(spark, rows):
    schema = ("account_id string, updated string, balance string, visits string, vip string, tier string, "
              "status string, _rescued_data string, _corrupt_record string, _source_file string, "
              "_ingested_at timestamp, _batch_id bigint")
    now = dt.datetime(2024, 5, 1)
    full = [(*r, None, None, "f1.json", now, 1) for r in rows]
    return spark.createDataFrame(full, schema)


def test_json_lines_keep_unknown_fields_and_malformed_lines(jvm_spark, contract):
    lines = jvm_spark.createDataFrame(
        [('{"AccountId": "A1", "balance": 3.5, "new_col": "x"}', "f"), ('{"AccountId": "A2", "bal', "f"),
         ("   ", "f")],
        "value string, _source_file string")
    rows = parse_json_lines(lines, contract).orderBy("account_id").collect()
    assert len(rows) == 2, "blank lines are not records"
    broken, good = rows
    assert broken.account_id is None and broken._corrupt_record == '{"AccountId": "A2", "bal'
    assert good.account_id == "A1" and good.balance == "3.5" and good._rescued_data == '{"new_col":"x"}'
    assert good._corrupt_record is None


def test_table_sources_map_renamed_columns_and_rescue_extras(jvm_spark, contract):
    df = jvm_spark.createDataFrame([("A9", "1", "extra")], "AccountId string, visits string, surprise string")
    row = conform_table(df.withColumn("_source_file", df.AccountId), contract).first()
    assert row.account_id == "A9" and row.visits == "1" and row.balance is None
    assert row._rescued_data == '{"surprise":"extra"}'


def test_casts_accept_text_numbers_and_flag_bad_values(jvm_spark, contract):
    bronze = _bronze(jvm_spark, [
        ("A1", "2024-01-02T03:04:05Z", "1,234.50", "3.0", "yes", "gold", "open"),
        ("A2", "2024-01-02", "abc", "2.5", "maybe", "silver", "closed"),
    ])
    rows = {r.account_id: r for r in typed_with_failures(bronze, contract).collect()}
    assert rows["A1"].balance == 1234.5 and rows["A1"].visits == 3 and rows["A1"].vip is True
    assert rows["A1"].updated == dt.datetime(2024, 1, 2, 3, 4, 5)
    assert rows["A1"][STATUS] == "valid" and rows["A1"][FAILED] == []
    assert rows["A2"][STATUS] == "quarantined"
    assert set(rows["A2"][FAILED]) == {"type(balance as double)", "type(visits as int)", "type(vip as boolean)"}


def test_each_expectation_names_the_failing_rows(jvm_spark, contract):
    bronze = _bronze(jvm_spark, [
        (None, "2024-01-01", "1", "1", "no", "gold", "open"),
        ("B7", "2024-01-01", "1", "1", "no", "gold", "open"),
        ("A3", "2024-01-01", "-5", "11", "no", "bronze", "open"),
    ])
    failed = {r.account_id: set(r[FAILED]) for r in typed_with_failures(bronze, contract).collect()}
    assert failed[None] == {"not_null(account_id)"}
    assert failed["B7"] == {"match_regex(account_id)"}
    assert failed["A3"] == {"between(balance)", "between(visits)", "in_set(tier)"}


def test_malformed_rows_are_quarantined_with_a_reason(jvm_spark, contract):
    schema = ("account_id string, updated string, balance string, visits string, vip string, tier string, "
              "status string, _rescued_data string, _corrupt_record string, _source_file string, "
              "_ingested_at timestamp, _batch_id bigint")
    bronze = jvm_spark.createDataFrame(
        [(None, None, None, None, None, None, None, None, "{broken", "f2.json", dt.datetime(2024, 1, 1), 1)], schema)
    checked = typed_with_failures(bronze, contract)
    row = quarantine_rows(checked).first()
    assert row[STATUS] == "malformed" and row[FAILED] == ["malformed_record"] and row._source_file == "f2.json"


def test_silver_keeps_the_latest_event_per_key(jvm_spark, contract):
    bronze = _bronze(jvm_spark, [
        ("A1", "2024-01-01", "1", "1", "no", "gold", "open"),
        ("A1", "2024-03-01", "3", "1", "no", "gold", "open"),
        ("A1", "2024-02-01", "2", "1", "no", "gold", "open"),
        ("A2", "2024-01-01", "9", "1", "no", "gold", "open"),
        ("A2", "2024-01-01", "9", "1", "no", "gold", "open"),
    ])
    rows = {r.account_id: r.balance for r in silver_rows(typed_with_failures(bronze, contract), contract).collect()}
    assert rows == {"A1": 3.0, "A2": 9.0}


def test_gold_rows_compute_columns_and_map_the_label(jvm_spark, contract):
    bronze = _bronze(jvm_spark, [
        ("A1", "2024-01-01", "10", "4", "no", "gold", "Closed "),
        ("A2", "2024-01-01", "9", "0", "no", "silver", "open"),
        ("A3", "2024-01-01", "9", "0", "no", "silver", None),
    ])
    silver = silver_rows(typed_with_failures(bronze, contract), contract)
    gold = {r.account_id: r for r in gold_rows(silver, contract).collect()}
    assert gold["A1"].balance_per_visit == 2.5 and gold["A1"].label == 1
    assert gold["A2"].balance_per_visit == 9.0 and gold["A2"].label == 0
    assert gold["A3"].label is None
    assert set(gold["A1"].asDict()) == {"account_id", "updated", "balance_per_visit", "tier", "label", "_batch_id"}
