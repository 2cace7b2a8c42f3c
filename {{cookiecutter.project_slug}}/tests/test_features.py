"""JVM lane: feature engineering and the point-in-time join, checked against pandas.merge_asof."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.data.features import FeatureSpec, feature_frame
from {{ cookiecutter.package_name }}.runtime.lookup import point_in_time_join

pytestmark = pytest.mark.jvm

D = dt.datetime


def oracle(labels: pd.DataFrame, features: pd.DataFrame, keys: list[str], lookback: pd.Timedelta | None):
    left = labels.sort_values("ts").reset_index(drop=True)
    right = features.sort_values("ts").reset_index(drop=True)
    merged = pd.merge_asof(left, right, on="ts", by=keys, direction="backward", allow_exact_matches=True,
                           tolerance=lookback)
    return merged.sort_values([*keys, "ts"]).reset_index(drop=True)


@pytest.fixture
def frames():
    labels = pd.DataFrame({
        "store": ["s1", "s1", "s1", "s2", "s2", "s1"],
        "item": ["a", "a", "a", "a", "b", "b"],
        "ts": [D(2024, 1, 1), D(2024, 1, 10), D(2024, 3, 1), D(2024, 1, 5), D(2024, 1, 5), D(2024, 2, 1)],
        "label": [0, 1, 0, 1, 0, 1],
    })
    features = pd.DataFrame({
        "store": ["s1", "s1", "s1", "s2", "s1"],
        "item": ["a", "a", "a", "b", "b"],
        "ts": [D(2023, 12, 31), D(2024, 1, 10), D(2024, 1, 20), D(2024, 1, 6), D(2023, 6, 1)],
        "price": [1.0, 2.0, 3.0, 4.0, 5.0],
    })
    return labels, features


def _run(spark, labels, features, lookback=None):
    result = point_in_time_join(spark.createDataFrame(labels), spark.createDataFrame(features), ["store", "item"],
                                "ts", "ts", lookback)
    return result.toPandas().sort_values(["store", "item", "ts"]).reset_index(drop=True)[
        ["store", "item", "ts", "label", "price"]]


def test_point_in_time_join_matches_merge_asof(jvm_spark, frames):
    labels, features = frames
    actual = _run(jvm_spark, labels, features)
    expected = oracle(labels, features, ["store", "item"], None)[["store", "item", "ts", "label", "price"]]
    pd.testing.assert_frame_equal(actual, expected, check_dtype=False)
    by_time = actual.set_index(["store", "item", "ts"])["price"]
    assert by_time[("s1", "a", D(2024, 1, 10))] == 2.0, "a feature row at the label time is used"
    assert pd.isna(by_time[("s2", "a", D(2024, 1, 5))]), "no feature row for the keys: null"
    assert pd.isna(by_time[("s2", "b", D(2024, 1, 5))]), "only later feature rows: null"


def test_lookback_window_matches_merge_asof_tolerance(jvm_spark, frames):
    labels, features = frames
    window = dt.timedelta(days=30)
    actual = _run(jvm_spark, labels, features, window)
    expected = oracle(labels, features, ["store", "item"], pd.Timedelta(window))[
        ["store", "item", "ts", "label", "price"]]
    pd.testing.assert_frame_equal(actual, expected, check_dtype=False)
    by_time = actual.set_index(["store", "item", "ts"])["price"]
    assert pd.isna(by_time[("s1", "b", D(2024, 2, 1))]), "feature row older than the lookback is ignored"
    assert pd.isna(by_time[("s1", "a", D(2024, 3, 1))]), "the latest row (41 days before) is outside 30 days"


def test_every_label_row_is_kept_once(jvm_spark, frames):
    labels, features = frames
    doubled = pd.concat([features, features])
    assert len(_run(jvm_spark, labels, doubled)) == len(labels)


def test_feature_frame_adds_rolling_mean_and_change(jvm_spark):
    gold = jvm_spark.createDataFrame(
        [("c1", D(2024, m, 1), float(m), m % 2, 1) for m in range(1, 5)] + [("c2", D(2024, 1, 1), 10.0, 0, 1)],
        "customer string, month timestamp, spend double, label int, _batch_id bigint")
    spec = FeatureSpec("features_x", ("customer",), "month", None)
    rows = feature_frame(gold, spec).orderBy("customer", "month").toPandas()
    assert "label" not in rows and "_batch_id" not in rows
    c1 = rows[rows.customer == "c1"]
    assert c1["spend_avg_3"].tolist() == [1.0, 1.5, 2.0, 3.0]
    assert c1["spend_delta_1"].tolist()[1:] == [1.0, 1.0, 1.0] and pd.isna(c1["spend_delta_1"].iloc[0])
    assert rows[rows.customer == "c2"]["spend_avg_3"].tolist() == [10.0]
