"""JVM lane: pure transformations."""

from __future__ import annotations

import datetime as dt

import pytest

from {{ cookiecutter.package_name }}.data.transforms import latest_per_key

pytestmark = pytest.mark.jvm


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


def test_latest_per_key_collapses_exact_duplicates_and_breaks_ties_deterministically(jvm_spark):
    rows = [("k", 1, "a"), ("k", 1, "a"), ("k", 1, "b"), ("j", 2, "z"), ("j", 2, "z")]
    df = jvm_spark.createDataFrame(rows, "id string, ts int, payload string")
    result = sorted(tuple(r) for r in latest_per_key(df, ["id"], ["ts"]).collect())
    assert result == [("j", 2, "z"), ("k", 1, "b")]


def test_latest_per_key_sorts_null_times_last(jvm_spark):
    df = jvm_spark.createDataFrame([("k", None), ("k", 7)], "id string, ts int")
    assert [tuple(r) for r in latest_per_key(df, ["id"], ["ts"]).collect()] == [("k", 7)]


def test_latest_per_key_names_missing_columns(jvm_spark):
    df = jvm_spark.createDataFrame([("k", 1)], "id string, ts int")
    with pytest.raises(ValueError, match="event_time"):
        latest_per_key(df, ["id"], ["event_time"])
