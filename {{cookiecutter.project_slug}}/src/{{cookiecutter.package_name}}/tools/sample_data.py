"""Deterministic sample landing files, with the defects real sources have.

Two domains, one per problem type:

* ``churn_events`` (classification): monthly customer activity snapshots as JSON lines, with a
  ``churned`` label given as yes/no/true/false/1/0;
* ``sales_events`` (regression): weekly units sold per store x product as CSV.

Injected on purpose: malformed lines, nulls in required fields, out-of-range values, exact
duplicate lines, later corrections of the same key (newer event time), late-arriving records
(in a later file than their period), numbers stored as text (``"1,234.50"``), and a new column
that appears only in later files (schema drift).  ``drift=True`` writes a later period whose
feature distributions are shifted (used by monitoring).  Output depends only on the arguments.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

FILES = 12
DRIFT_FILES = 3


@dataclass
class SampleReport:
    source: str
    folder: str
    files: list[str] = field(default_factory=list)
    records: int = 0
    malformed: int = 0
    null_required: int = 0
    out_of_range: int = 0
    exact_duplicates: int = 0
    corrections: int = 0
    late_arriving: int = 0

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _codes(prefix: str, numbers: np.ndarray, width: int) -> np.ndarray:
    """Vectorised f"{prefix}{n:0{width}d}"."""
    return np.char.add(prefix, np.char.zfill(numbers.astype(str), width))


def _pick(rng: np.random.Generator, n: int, rate: float) -> np.ndarray:
    return rng.random(n) < rate


def _churn_frame(rng: np.random.Generator, rows: int, drift: bool) -> pd.DataFrame:
    customers = max(rows // 10, 1)
    months_per_customer = 10
    ids = np.repeat(np.arange(customers), months_per_customer)[:rows]
    start = rng.integers(0, FILES - months_per_customer + 1, size=customers)
    month_index = start[ids] + np.tile(np.arange(months_per_customer), customers)[:rows]
    base_month = 12 if drift else 0
    month_start = (np.datetime64("2024-01") + (month_index + base_month)).astype("datetime64[D]")

    plan_p = [0.3, 0.45, 0.25] if not drift else [0.6, 0.3, 0.1]
    plan = rng.choice(["basic", "standard", "premium"], size=customers, p=plan_p)[ids]
    region = rng.choice(["north", "south", "east", "west"], size=customers)[ids]
    contract = rng.choice(["monthly", "annual", "two_year"], size=customers, p=[0.55, 0.3, 0.15])[ids]
    tenure = rng.integers(1, 72, size=customers)[ids] + month_index
    price = {"basic": 25.0, "standard": 55.0, "premium": 95.0}
    charges = np.array([price[p] for p in plan]) * rng.normal(1.3 if drift else 1.0, 0.08, size=rows)
    tickets = rng.poisson(2.5 if drift else 0.8, size=rows)
    total = charges * tenure
    score = (-2.2 + 0.9 * (contract == "monthly") - 0.03 * tenure + 0.35 * tickets
             + 0.012 * (charges - 50) + rng.normal(0, 0.6, size=rows))
    churned = rng.random(rows) < 1 / (1 + np.exp(-score))
    label_words = rng.choice([("yes", "no"), ("true", "false"), ("1", "0")], size=rows, p=[0.8, 0.15, 0.05])
    label = np.where(churned, [w[0] for w in label_words], [w[1] for w in label_words])
    offset_s = rng.integers(0, 27 * 86400, size=rows)
    event_ts = pd.DatetimeIndex(month_start.astype("datetime64[s]") + offset_s.astype("timedelta64[s]"))
    # The sensitive attribute, from a generator of its own so the other columns stay as they were:
    # more seniors among long-tenured customers, so the model's outcomes differ a little by group.
    first_row = np.searchsorted(ids, np.arange(customers))
    senior_p = 0.15 + 0.2 * (tenure[np.minimum(first_row, rows - 1)] > 48)
    senior = np.where(np.random.default_rng([customers, 65]).random(customers) < senior_p, "yes", "no")[ids]

    return pd.DataFrame({
        "customer_id": _codes("C", ids, 6),
        "month": np.datetime_as_string(month_start, unit="D"),
        "event_ts": event_ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "plan": plan,
        "region": region,
        "contract_type": contract,
        "senior_citizen": senior,
        "tenure_months": tenure.astype(str),
        "monthly_charges": np.round(charges, 2).astype(str),
        "total_charges": np.round(total, 2),
        "support_tickets": tickets.astype(str),
        "churned": label,
        "_file": month_index,
    })


def _sales_frame(rng: np.random.Generator, rows: int, drift: bool) -> pd.DataFrame:
    stores, products = 20, 50
    series = stores * products
    weeks = max(rows // series, 1)
    n = min(rows, series * weeks)
    sid = np.arange(n) % series
    week = np.arange(n) // series
    store = sid // products
    product = sid % products
    base_week = weeks if drift else 0
    week_start = pd.Timestamp("2023-01-02") + pd.to_timedelta((week + base_week) * 7, unit="D")
    category = np.array(["dairy", "bakery", "beverages", "snacks", "household"])[product % 5]
    region = np.array(["north", "south", "east", "west"])[store % 4]
    # The sensitive attribute: the income band of the store's neighbourhood (forecast errors must not
    # fall unevenly on poorer areas).  Fixed per store, so the other columns stay as they were.
    income = np.array(["low", "middle", "high"])[store % 3]
    base_price = 1.5 + (product % 10) * 0.6
    promo = rng.random(n) < (0.35 if drift else 0.15)
    price = base_price * np.where(promo, 0.8, 1.0) * rng.normal(1.1 if drift else 1.0, 0.03, n)
    season = 1 + 0.25 * np.sin(2 * np.pi * ((week + base_week) % 52) / 52)
    level = 20 + 3 * (store % 7) + 2 * (product % 11)
    units = np.maximum(0, rng.poisson(level * season * np.where(promo, 1.6, 1.0) * (base_price / price) ** 1.4))
    temperature = 12 + 10 * np.sin(2 * np.pi * ((week + base_week) % 52) / 52) + rng.normal(0, 3, n)
    promo_text = np.where(promo, rng.choice(["yes", "Y", "1"], n), rng.choice(["no", "N", "0"], n))
    offset_s = rng.integers(0, 6 * 86400, size=n)
    files = np.minimum((week * FILES) // max(weeks, 1), FILES - 1)
    return pd.DataFrame({
        "store_id": _codes("S", store, 3),
        "product_id": _codes("P", product, 4),
        "category": category,
        "region": region,
        "area_income": income,
        "week_start": week_start.strftime("%Y-%m-%d"),
        "event_ts": (week_start + pd.to_timedelta(offset_s, unit="s")).strftime("%Y-%m-%d %H:%M:%S"),
        "price": np.round(price, 2).astype(str),
        "promo": promo_text,
        "temperature_c": np.round(temperature, 1).astype(str),
        "units_sold": units.astype(str),
        "_file": files,
    })


def _inject(df: pd.DataFrame, rng: np.random.Generator, key: str, numeric: str, drift_column: str,
            report: SampleReport) -> pd.DataFrame:
    """Nulls, out-of-range values, text numbers, corrections, late arrivals, duplicates, drift column."""
    n = len(df)
    df = df.copy()
    null_rows = _pick(rng, n, 0.004)
    df.loc[null_rows, key] = None
    report.null_required = int(null_rows.sum())
    bad_rows = _pick(rng, n, 0.006) & ~null_rows
    df.loc[bad_rows, numeric] = "-999"
    report.out_of_range = int(bad_rows.sum())

    corrections = df[_pick(rng, n, 0.01) & ~null_rows & ~bad_rows].copy()
    corrections["_file"] = np.minimum(corrections["_file"] + 1, FILES - 1)
    corrections["event_ts"] = (pd.to_datetime(corrections["event_ts"]) + pd.Timedelta(days=3)).dt.strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    report.corrections = len(corrections)
    late = _pick(rng, n, 0.02) & (df["_file"].to_numpy() < FILES - 2)
    df.loc[late, "_file"] = df.loc[late, "_file"] + 2
    report.late_arriving = int(late.sum())
    df = pd.concat([df, corrections], ignore_index=True)
    duplicates = df[_pick(rng, len(df), 0.01)]
    report.exact_duplicates = len(duplicates)
    df = pd.concat([df, duplicates], ignore_index=True)
    df[drift_column] = None
    later = df["_file"] >= FILES // 2
    df.loc[later, drift_column] = rng.choice(["web", "store", "partner"], int(later.sum()))
    return df.sample(frac=1.0, random_state=int(rng.integers(0, 2**31))).reset_index(drop=True)


def _write_json(df: pd.DataFrame, path: Path, rng: np.random.Generator) -> int:
    records = df.drop(columns=["_file"])
    has_drift = records["referral_source"].notna().any()
    if not has_drift:
        records = records.drop(columns=["referral_source"])
    total_as_text = rng.random(len(records)) < 0.3
    totals = records["total_charges"].map(lambda v: f"{v:,.2f}")
    records["total_charges"] = records["total_charges"].astype(object)
    records.loc[total_as_text, "total_charges"] = totals[total_as_text]
    lines = records.to_json(orient="records", lines=True).splitlines()
    broken = np.flatnonzero(rng.random(len(lines)) < 0.005)
    for i in broken:
        lines[i] = lines[i][: max(5, len(lines[i]) // 2)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(broken)


def _write_csv(df: pd.DataFrame, path: Path, rng: np.random.Generator) -> int:
    records = df.drop(columns=["_file"])
    if not records["loyalty_tier"].notna().any():
        records = records.drop(columns=["loyalty_tier"])
    lines = records.to_csv(index=False).splitlines()
    broken = np.flatnonzero(rng.random(len(lines) - 1) < 0.005) + 1
    for i in broken:
        lines[i] = lines[i] + ",unexpected,extra"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(broken)


def sample_frame(source: str, rows: int, drift: bool = False, seed: int = 7) -> pd.DataFrame:
    """Clean sample records as strings, before any defect is injected (tests and notebooks)."""
    rng = np.random.default_rng(seed + (1 if drift else 0))
    builders = {"churn_events": _churn_frame, "sales_events": _sales_frame}
    if source not in builders:
        raise ValueError(f"no sample data for source {source!r}; choose one of {sorted(builders)}")
    return builders[source](rng, rows, drift).drop(columns=["_file"])


# The sources the generator can write (their contracts ship with the template).
SOURCES = ("churn_events", "sales_events")
# The landing folder each shipped contract names: a run writes sample data only there, never into
# a folder a user's contract names (a typo in `path` must not be filled with invented data).
SHIPPED_PATHS = {source: f"raw/{source}" for source in SOURCES}


def generate(source: str, out: Path, rows: int = 100_000, drift: bool = False, seed: int = 7) -> SampleReport:
    """Write the landing files of ``source`` into ``out`` and report what was injected."""
    if rows < 100:
        raise ValueError(f"--rows {rows}: use at least 100 records")
    rng = np.random.default_rng(seed + (1 if drift else 0))
    out.mkdir(parents=True, exist_ok=True)
    report = SampleReport(source, str(out))
    if source == "churn_events":
        frame = _inject(_churn_frame(rng, rows, drift), rng, "customer_id", "tenure_months",
                        "referral_source", report)
        writer, suffix = _write_json, "jsonl"
    elif source == "sales_events":
        frame = _sales_frame(rng, rows, drift)
        frame["event_ts"] = pd.to_datetime(frame["event_ts"]).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        frame = _inject(frame, rng, "store_id", "units_sold", "loyalty_tier", report)
        writer, suffix = _write_csv, "csv"
    else:
        raise ValueError(f"no sample data for source {source!r}; sample data exists for churn_events and "
                         "sales_events. Bring your own files and describe them in conf/contracts/")
    prefix = "drift" if drift else "part"
    frame["_out"] = frame["_file"] % DRIFT_FILES if drift else frame["_file"]
    for index, part in frame.groupby("_out", sort=True):
        name = f"{source}_{prefix}{int(index):02d}.{suffix}"
        report.malformed += writer(part.drop(columns=["_out"]), out / name, rng)
        report.files.append(name)
        report.records += len(part)
    (out / f"_{source}_{prefix}_manifest.json").write_text(json.dumps(report.to_dict(), indent=2))
    return report
