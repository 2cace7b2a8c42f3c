"""``contract draft``: a contract drafted from files written the way R's ``write.csv``, pandas'
``to_csv`` and JSON exporters write them loads with the project's contract loader, and silver
accepts every row of those files.  Profiling rules are pure functions, tested without Spark."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
from test_ingest import details, run
from test_landing_readers import write_like_r

from {{ cookiecutter.package_name }}.config import ConfigError
from {{ cookiecutter.package_name }}.contract import load_contracts
from {{ cookiecutter.package_name }}.tools import contract_draft
from {{ cookiecutter.package_name }}.tools.contract_draft import ColumnProfile, candidate_key, column_names, infer_type

ROWS = 40


def customers() -> pd.DataFrame:
    """A snapshot: a repeated customer id (not a key), a category, charges with missing values, a
    whole number, a date and a Yes/No label."""
    return pd.DataFrame({
        "customerId": [f"C{i % 25:03d}" for i in range(ROWS)],
        "plan": ["basic" if i % 3 else "pro" for i in range(ROWS)],
        "monthly charges": [None if i % 7 == 3 else 10.0 + i / 4 for i in range(ROWS)],
        "tenure": [i % 13 for i in range(ROWS)],
        "signed up": [str(date(2024, 1, 1) + timedelta(days=3 * i)) for i in range(ROWS)],
        "churn": ["Yes" if i % 4 == 0 else "No" for i in range(ROWS)],
    })


def weekly_sales() -> pd.DataFrame:
    """Store x week rows: the key is a pair; an update time, a flag, prices with gaps, a count label."""
    weeks = [date(2024, 1, 1) + timedelta(weeks=i // 5) for i in range(ROWS)]
    return pd.DataFrame({
        "store_id": [f"S{i % 5}" for i in range(ROWS)],
        "week": [str(w) for w in weeks],
        "updated_at": [f"{w + timedelta(days=1)} 08:30:00" for w in weeks],
        "price": [None if i % 9 == 0 else 1.5 + i % 4 for i in range(ROWS)],
        "promo": [i % 2 == 0 for i in range(ROWS)],
        "units": [i % 7 for i in range(ROWS)],
    })


def churn_records() -> list[dict]:
    return [{"customer_id": f"C{c:06d}", "month": f"2024-{m:02d}-01", "event_ts": f"2024-{m:02d}-28T10:00:00Z",
             "plan": ["basic", "standard"][c % 2], "monthly_charges": 20 + c + m / 10,
             "churned": "yes" if c == m else "no"}
            for c in range(12) for m in range(1, 4)]


def draft(root: Path, path: Path, name: str, spark, capsys, **kwargs) -> tuple[str, object]:
    """Run the command's function in-process on the test session; return its output and the contract."""
    assert contract_draft.main(root, path, name, spark=spark, **kwargs) == 0
    return capsys.readouterr().out, load_contracts(root)[name]


def ingest_accepts_every_row(rt, root: Path, name: str, rows: int) -> None:
    summary = run(rt, root)
    assert summary.ok, [s.error for s in summary.stages]
    silver = details(summary, "silver", name)
    assert (silver["raw_records"], silver["silver_upserts"], silver["quarantined"], silver["malformed"]) == (
        rows, rows, 0, 0), silver


@pytest.mark.sail
def test_an_r_write_csv_export_drafts_a_contract_whose_ingest_accepts_every_row(
        sail_spark, local_runtime, make_root, tmp_path, capsys):
    root = make_root(tmp_path / "project")
    folder = Path(local_runtime.landing_path("raw/customers"))
    folder.mkdir(parents=True)
    write_like_r(customers(), folder / "customers.csv")
    out, contract = draft(root, folder, "customers", sail_spark, capsys, label="churn",
                          landing_root=Path(local_runtime.landing_path("")))

    assert "wrote conf/contracts/customers.yml" in out and "wrote conf/expectations/customers.json" in out
    assert f"profiled {ROWS} rows" in out and "primary key: row_name (source '_c0')" in out
    assert contract.options == {"header": "true", "delimiter": ",", "nullValue": "NA"}
    assert contract.path == "raw/customers" and contract.primary_key == ("row_name",)
    assert (contract.column("row_name").source, contract.column("row_name").type) == ("_c0", "int")
    assert contract.column("customer_id").source == "customerId" and not contract.column("customer_id").categorical
    plan = contract.column("plan")
    assert plan.categorical and plan.allowed == ("basic", "pro") and plan.required
    charges = contract.column("monthly_charges")
    assert (charges.type, charges.required, charges.min, charges.max) == ("double", False, 10.0, 19.75)
    assert contract.column("tenure").type == "int" and contract.column("signed_up").type == "date"
    assert contract.label.column == "churn" and contract.label.positive == ("yes",)
    assert contract.column("churn").allowed == ("No", "Yes") and contract.event_time is None
    gold = contract.gold
    assert (gold.table, gold.keys, gold.timestamp) == ("customers", ("row_name",), "signed_up")
    assert list(contract.gold.columns) == ["customer_id", "plan", "monthly_charges", "tenure"]
    text = (root / "conf" / "contracts" / "customers.yml").read_text()
    assert text.startswith("# DRAFT data contract") and "# REVIEW: the value that means 1" in text
    ingest_accepts_every_row(local_runtime, root, "customers", ROWS)


@pytest.mark.sail
def test_a_pandas_to_csv_export_drafts_a_pair_key_an_event_time_and_the_delimiter(
        sail_spark, local_runtime, make_root, tmp_path, capsys):
    root = make_root(tmp_path / "project")
    folder = Path(local_runtime.landing_path("raw/weekly_sales"))
    folder.mkdir(parents=True)
    weekly_sales().to_csv(folder / "sales.csv", index=False, sep=";")
    out, contract = draft(root, folder, "weekly_sales", sail_spark, capsys, label="units",
                          landing_root=Path(local_runtime.landing_path("")))

    assert contract.options == {"header": "true", "delimiter": ";"}
    assert contract.primary_key == ("store_id", "week") and "primary key: store_id, week" in out
    assert contract.event_time == "updated_at" and contract.gold.timestamp == "week"
    assert [contract.column(c).type for c in ("week", "updated_at", "price", "promo", "units")] == [
        "date", "timestamp", "double", "boolean", "int"]
    assert not contract.column("price").required and contract.label.positive == ()
    ingest_accepts_every_row(local_runtime, root, "weekly_sales", ROWS)


@pytest.mark.sail
@pytest.mark.parametrize("layout", ["lines", "document"])
def test_json_lines_or_one_document_draft_a_contract_whose_ingest_accepts_every_row(
        sail_spark, local_runtime, make_root, tmp_path, capsys, layout):
    root = make_root(tmp_path / "project")
    folder = Path(local_runtime.landing_path("raw/churn_json"))
    folder.mkdir(parents=True)
    records = churn_records()
    if layout == "lines":
        (folder / "part-1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    else:
        (folder / "part-1.json").write_text(json.dumps(records, indent=2))
    _, contract = draft(root, folder, "churn_json", sail_spark, capsys, label="churned",
                        landing_root=Path(local_runtime.landing_path("")))

    assert contract.format == "json" and contract.options == ({} if layout == "lines" else {"multiLine": "true"})
    assert contract.primary_key == ("customer_id", "month") and contract.event_time == "event_ts"
    assert contract.column("event_ts").type == "timestamp" and contract.column("monthly_charges").type == "double"
    assert contract.label.positive == ("yes",) and contract.gold.timestamp == "month"
    ingest_accepts_every_row(local_runtime, root, "churn_json", len(records))


@pytest.mark.sail
def test_existing_files_are_kept_unless_force(sail_spark, make_root, tmp_path, capsys):
    root = make_root(tmp_path / "project")
    source = tmp_path / "orders.csv"
    source.write_text("order_no,amount\nO-1,3\nO-2,4.5\n")
    draft(root, source, "orders", sail_spark, capsys)
    contract_file = root / "conf" / "contracts" / "orders.yml"
    contract_file.write_text(contract_file.read_text() + "# reviewed\n")

    with pytest.raises(ConfigError, match=r"conf/contracts/orders.yml and .*conf/expectations/orders.json already "
                                          r"exist\. Fix: pass --force to overwrite"):
        contract_draft.main(root, source, "orders", spark=sail_spark)
    assert contract_file.read_text().endswith("# reviewed\n")
    _, contract = draft(root, source, "orders", sail_spark, capsys, force=True)
    assert "# reviewed" not in contract_file.read_text() and contract.primary_key == ("order_no",)
    assert contract.path == str(tmp_path) and "only orders.csv was profiled" in contract_file.read_text()


def test_an_empty_or_missing_folder_and_a_bad_name_are_named_before_any_reading(cli, make_root, tmp_path):
    root = make_root(tmp_path / "project")
    empty = tmp_path / "landing" / "empty"
    (empty / "_checkpoints").mkdir(parents=True)
    (empty / ".hidden.csv").write_text("a\n1\n")
    result = cli("contract", "draft", str(empty), "--name", "orders", cwd=root)
    assert result.returncode == 2 and f"error: {empty} has no data files" in result.stderr
    shipped = next((root / "conf" / "contracts").glob("*.yml")).stem
    result = cli("contract", "draft", str(empty), "--name", shipped, cwd=root)
    assert result.returncode == 2 and f"conf/contracts/{shipped}.yml" in result.stderr and "--force" in result.stderr
    with pytest.raises(ConfigError, match=r"nowhere does not exist\. Fix: pass a landing folder or a file"):
        contract_draft.main(root, tmp_path / "nowhere", "orders")
    with pytest.raises(ConfigError, match=r"--name 'Shop Orders' must be lowercase.* Fix: e\.g\. --name shop_orders"):
        contract_draft.main(root, empty, "Shop Orders")
    with pytest.raises(ConfigError, match="--option 'sep' is not KEY=VALUE"):
        contract_draft.main(root, empty, "orders", option_pairs=["sep"])


def profile(name: str, kind: str, distinct: int, rows: int = 6, nulls: int = 0) -> ColumnProfile:
    return ColumnProfile(name, name, kind, rows, nulls, distinct)


def test_types_are_what_silver_casts_every_value_to():
    def kind(*values: str) -> str:
        return infer_type(pd.Series(values, dtype="string"))

    assert kind("1", "-2", "+3") == "int" and kind("1", "3000000000") == "long" and kind("007", "12") == "string"
    assert kind("1.5", "2", "1e3") == "double" and kind("True", "false") == "boolean" and kind("yes", "no") == "string"
    assert kind("2024-01-31", "2024-2-1") == "date" and kind("2024-02-30") == "string"
    assert kind("2024-01-31 10:00:00", "2024-01-31T10:00:00.5Z", "2024-01-31T10:00+02:00") == "timestamp"


def test_the_key_is_the_smallest_unique_never_null_set_preferring_ids_and_times():
    frame = pd.DataFrame({"shop": ["a", "a", "b", "b"], "day": ["1", "2", "1", "2"], "amount": ["1", "1", "2", "3"],
                          "ref": ["x", None, "y", "z"]})
    profiles = [profile("shop", "string", 2, 4), profile("day", "date", 2, 4), profile("amount", "double", 3, 4),
                profile("ref", "string", 3, 4, nulls=1)]
    assert candidate_key(frame, profiles) == ["shop", "day"], "doubles and columns with nulls are never keys"
    assert candidate_key(frame, profiles, exclude=["day"]) == []
    assert column_names(["", "_c0", "customerId", "Monthly Charges", "2nd", "label", "a-b", "a_b"], header=True) == [
        "column_0", "row_name", "customer_id", "monthly_charges", "column_2nd", "label_value", "a_b", "a_b_2"]
