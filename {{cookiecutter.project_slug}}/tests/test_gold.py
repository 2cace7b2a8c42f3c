"""Sail lane: an aggregating gold table (``gold.group_by``) from transaction-level rows: the
aggregates match pandas, missing periods are zero-filled, reruns change nothing, and a late
transaction recomputes its group instead of adding to it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from {{ cookiecutter.package_name }} import pipeline
from {{ cookiecutter.package_name }}.config import ConfigError
from {{ cookiecutter.package_name }}.contract import load_contracts

pytestmark = pytest.mark.sail

CONTRACT = """\
name: shop_sales
format: csv
options: {header: 'true'}
path: raw/shop_sales
primary_key: [sale_id]
event_time: sold_at
label: {column: units}
columns:
  sale_id: {type: string, required: true}
  store: {type: string, required: true}
  customer: {type: string}
  sold_at: {type: timestamp, required: true}
  quantity: {type: int, min: 0}
  price: {type: double, min: 0}
gold:
  table: store_daily
  group_by: [store, {day: to_date(sold_at)}]
  timestamp: day
  columns:
    units: sum(quantity)
    revenue: sum(quantity * price)
    sales: count(*)
    customers: count(distinct customer)
    top_price: max(price)
  fill_missing_periods: {every: day, values: {units: 0, revenue: 0, sales: 0, customers: 0}}
"""

FIRST = pd.DataFrame({
    "sale_id": ["t1", "t2", "t3", "t4", "t5", "t6"],
    "store": ["s1", "s1", "s1", "s2", "s1", "s2"],
    "customer": ["a", "a", "b", "c", None, "c"],
    "sold_at": ["2024-01-01 09:00:00", "2024-01-01 17:30:00", "2024-01-01 18:00:00", "2024-01-01 12:00:00",
                "2024-01-04 10:00:00", "2024-01-03 08:00:00"],
    "quantity": [1, 2, 3, 4, 5, 6],
    "price": [10.0, 10.0, 2.5, 1.0, 4.0, 1.0],
})


def oracle(sales: pd.DataFrame) -> pd.DataFrame:
    """The expected gold: pandas groupby, then the missing days of each store filled with zeros."""
    df = sales.drop_duplicates("sale_id", keep="last").assign(
        day=lambda d: pd.to_datetime(d.sold_at).dt.date, revenue=lambda d: d.quantity * d.price)
    rows = df.groupby(["store", "day"]).agg(units=("quantity", "sum"), revenue=("revenue", "sum"),
                                            sales=("sale_id", "count"), customers=("customer", "nunique"),
                                            top_price=("price", "max")).reset_index()
    last = rows.day.max()
    grid = [(store, day.date()) for store, first in rows.groupby("store").day.min().items()
            for day in pd.date_range(first, last)]
    full = pd.DataFrame(grid, columns=["store", "day"]).merge(rows, how="left", on=["store", "day"])
    return full.fillna({"units": 0, "revenue": 0, "sales": 0, "customers": 0}).sort_values(["store", "day"])


def gold(rt) -> pd.DataFrame:
    df = rt.read("gold_store_daily").toPandas().rename(columns={"label": "units"})
    return df[["store", "day", "units", "revenue", "sales", "customers", "top_price"]].sort_values(
        ["store", "day"]).reset_index(drop=True)


def _ingest(rt, root: Path):
    summary = pipeline.run_stages(rt, ["ingest"], log=lambda _: None, root=root)
    assert summary.ok, [s.error for s in summary.stages]
    return next(s for s in summary.stages if s.name == "gold").details["shop_sales"]


def _check(rt, sales: pd.DataFrame) -> None:
    expected = oracle(sales).reset_index(drop=True)
    pd.testing.assert_frame_equal(gold(rt), expected, check_dtype=False)


def test_transactions_become_a_zero_filled_daily_panel_and_reruns_change_nothing(local_runtime, make_root,
                                                                                 tmp_path):
    root = make_root(tmp_path / "project")
    (root / "conf" / "contracts" / "shop_sales.yml").write_text(CONTRACT)
    folder = Path(local_runtime.landing_path("raw/shop_sales"))
    folder.mkdir(parents=True)
    FIRST.to_csv(folder / "part-1.csv", index=False)
    first = _ingest(local_runtime, root)
    _check(local_runtime, FIRST)
    assert first["filled_periods"] == 4, "s1: 2 and 3 January; s2: 2 and 4 January"
    assert gold(local_runtime).query("store == 's1'").day.astype(str).tolist() == [
        "2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"]

    version = local_runtime.version("gold_store_daily")
    assert _ingest(local_runtime, root) == {"new_batches": 0}
    assert local_runtime.version("gold_store_daily") == version, "a rerun with nothing new writes nothing"
    _check(local_runtime, FIRST)

    # A late sale on a filled day, a sale on an already aggregated day, a resent sale (same id) and a
    # new latest day: each touched group is recomputed from every silver row, never added to.
    later = pd.DataFrame({
        "sale_id": ["t7", "t8", "t2", "t9"],
        "store": ["s1", "s2", "s1", "s2"],
        "customer": ["d", "e", "a", "c"],
        "sold_at": ["2024-01-02 10:00:00", "2024-01-01 13:00:00", "2024-01-01 17:30:00", "2024-01-05 09:00:00"],
        "quantity": [7, 8, 2, 9],
        "price": [1.0, 2.0, 10.0, 3.0],
    })
    FIRST_AND_LATER = pd.concat([FIRST, later], ignore_index=True)
    later.to_csv(folder / "part-2.csv", index=False)
    _ingest(local_runtime, root)
    _check(local_runtime, FIRST_AND_LATER)
    counts = local_runtime.row_count("gold_store_daily")
    assert _ingest(local_runtime, root) == {"new_batches": 0}
    assert local_runtime.row_count("gold_store_daily") == counts


@pytest.mark.parametrize(("edit", "message"), [
    (("label: {column: units}", "label: {column: quantity}"), "label.column"),
    (("  timestamp: day\n", "  timestamp: sold_at\n"), "gold.timestamp"),
    (("{every: day,", "{every: hour,"), "gold.fill_missing_periods.every"),
    (("  group_by: [store, {day: to_date(sold_at)}]", "  group_by: [shop, {day: to_date(sold_at)}]"),
     "gold.group_by"),
    (("  timestamp: day\n", "  timestamp: day\n  keys: [store]\n"), "gold.keys"),
])
def test_a_wrong_aggregating_gold_names_the_field(make_root, tmp_path, edit, message):
    root = make_root(tmp_path / "project")
    old, new = edit
    assert old in CONTRACT
    (root / "conf" / "contracts" / "shop_sales.yml").write_text(CONTRACT.replace(old, new))
    with pytest.raises(ConfigError, match=message):
        load_contracts(root)
