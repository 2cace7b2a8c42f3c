"""Pure transformations (JVM lane; the oracle test of ``latest_per_key`` runs on both engines)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.data.transforms import latest_per_key


@pytest.mark.jvm
def test_latest_per_key_keeps_latest_event(jvm_spark):
    rows = [
        ("c1", dt.datetime(2024, 1, 1), 1.0),
        ("c1", dt.datetime(2024, 3, 1), 3.0),
        ("c1", dt.datetime(2024, 2, 1), 2.0),
        ("c2", dt.datetime(2024, 1, 5), 5.0),
    ]
    df = jvm_spark.createDataFrame(rows, "id string, ts timestamp, value double")
    result = {r.id: r.value for r in latest_per_key(df, ["id"], ["ts"]).collect()}
    assert result == {"c1": 3.0, "c2": 5.0}


@pytest.mark.jvm
def test_latest_per_key_collapses_exact_duplicates_and_breaks_ties_deterministically(jvm_spark):
    rows = [("k", 1, "a"), ("k", 1, "a"), ("k", 1, "b"), ("j", 2, "z"), ("j", 2, "z")]
    df = jvm_spark.createDataFrame(rows, "id string, ts int, payload string")
    result = sorted(tuple(r) for r in latest_per_key(df, ["id"], ["ts"]).collect())
    assert result == [("j", 2, "z"), ("k", 1, "b")]


@pytest.mark.jvm
def test_latest_per_key_sorts_null_times_last(jvm_spark):
    df = jvm_spark.createDataFrame([("k", None), ("k", 7)], "id string, ts int")
    assert [tuple(r) for r in latest_per_key(df, ["id"], ["ts"]).collect()] == [("k", 7)]


@pytest.mark.jvm
def test_latest_per_key_names_missing_columns(jvm_spark):
    df = jvm_spark.createDataFrame([("k", 1)], "id string, ts int")
    with pytest.raises(ValueError, match="event_time"):
        latest_per_key(df, ["id"], ["event_time"])


def latest_by_pandas(frame: pd.DataFrame, keys: list[str], order_by: list[str]) -> pd.DataFrame:
    """The oracle: every column but the keys sorted descending with nulls last, the first row per key."""
    ranked = [c for c in frame.columns if c not in keys]
    ordered = frame.sort_values(ranked, ascending=False, na_position="last", kind="mergesort")
    return ordered.groupby(keys, dropna=False, sort=False).head(1)


def as_rows(frame: pd.DataFrame) -> list[tuple]:
    return sorted((tuple(None if pd.isna(v) else v for v in row) for row in frame.itertuples(index=False)), key=repr)


@pytest.mark.parametrize("lane", [pytest.param("jvm_spark", marks=pytest.mark.jvm),
                                  pytest.param("sail_spark", marks=pytest.mark.sail)])
def test_latest_per_key_matches_a_pandas_oracle_with_nulls_ties_and_duplicates(lane, request):
    """Both engines: null keys are one key, null times lose, ties fall to the other columns, and
    exact duplicates collapse."""
    rng = np.random.default_rng(7)
    rows = 3000
    frame = pd.DataFrame({
        "id": pd.array(rng.choice(["a", "b", "c", None], rows, p=[.4, .3, .2, .1]), dtype=object),
        "part": rng.integers(0, 40, rows),
        "ts": pd.array(np.where(rng.random(rows) < 0.15, None, rng.integers(0, 5, rows)), dtype="Int64"),
        "batch": rng.integers(0, 3, rows),
        "payload": pd.array(rng.choice(["x", "y", "z", None], rows), dtype=object),
        "amount": np.where(rng.random(rows) < 0.1, np.nan, rng.integers(0, 4, rows).astype(float)),
    })
    spark = request.getfixturevalue(lane)
    df = spark.createDataFrame(frame.astype(object).where(frame.notna(), None),
                               "id string, part long, ts long, batch long, payload string, amount double")
    got = latest_per_key(df, ["id", "part"], ["ts", "batch"]).toPandas()
    expected = latest_by_pandas(frame, ["id", "part"], ["ts", "batch"])
    assert len(got) == len(expected) == frame.groupby(["id", "part"], dropna=False).ngroups
    assert as_rows(got) == as_rows(expected[got.columns])
