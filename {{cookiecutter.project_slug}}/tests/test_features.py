"""JVM lane: feature engineering and the point-in-time join, checked against pandas.merge_asof."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.contract import Features
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


SPEC = FeatureSpec("features_x", ("store", "item"), "ts", None,
                   Features(lags={"label": (1, 3), "price": (2,)}, windows={"label": (2, 4), "price": (3,)},
                            changes=("price",), calendar=("day_of_week", "month")))


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    """A seeded panel of weekly rows for four series with gaps, labels and prices."""
    rng = np.random.default_rng(3)
    rows = []
    for store, item in [("s1", "a"), ("s1", "b"), ("s2", "a"), ("s3", "c")]:
        weeks = sorted(rng.choice(40, size=int(rng.integers(8, 30)), replace=False))
        rows += [(store, item, D(2024, 1, 1) + dt.timedelta(weeks=int(w)), float(rng.poisson(20)),
                  round(float(rng.uniform(1, 5)), 2), 7) for w in weeks]
    return pd.DataFrame(rows, columns=["store", "item", "ts", "label", "price", "_batch_id"])


def feature_oracle(gold: pd.DataFrame) -> pd.DataFrame:
    """The features of SPEC computed by pandas: shift and rolling over the earlier rows of each series."""
    df = gold.sort_values(["store", "item", "ts"]).reset_index(drop=True)
    by = df.groupby(["store", "item"])
    out = df[["store", "item", "ts", "price"]].copy()
    out["label_lag_1"], out["label_lag_3"] = by.label.shift(1), by.label.shift(3)
    out["price_lag_2"] = by.price.shift(2)
    for name, n in (("label", 2), ("label", 4), ("price", 3)):
        out[f"{name}_mean_{n}"] = by[name].transform(lambda s, n=n: s.shift(1).rolling(n, min_periods=1).mean())
    out["price_change_1"] = df.price - by.price.shift(1)
    out["calendar_day_of_week"] = df.ts.dt.dayofweek.map(lambda d: (d + 1) % 7 + 1)  # Spark: Sunday = 1
    out["calendar_month"] = df.ts.dt.month
    return out


def _features(spark, gold: pd.DataFrame) -> pd.DataFrame:
    frame = feature_frame(spark.createDataFrame(gold), SPEC).toPandas()
    return frame.sort_values(["store", "item", "ts"]).reset_index(drop=True)


def test_lag_window_change_and_calendar_features_match_pandas(jvm_spark, panel):
    actual = _features(jvm_spark, panel)
    expected = feature_oracle(panel)
    assert "label" not in actual and "_batch_id" not in actual
    assert list(actual.columns) == list(expected.columns), "only the features asked for, nothing else"
    pd.testing.assert_frame_equal(actual, expected, check_dtype=False)


def test_no_feature_sees_its_own_label_or_a_later_value(jvm_spark, panel):
    """Change a row's label and every later row: the features of that row and all earlier rows
    must not move (only strictly earlier rows feed them)."""
    base = _features(jvm_spark, panel)
    cut = panel.ts.sort_values().iloc[len(panel) // 2]
    changed = panel.copy()
    later = changed.ts >= cut
    changed.loc[later, "label"] += 1000.0
    changed.loc[changed.ts > cut, "price"] += 1000.0  # later prices too; the row's own price is a covariate
    after = _features(jvm_spark, changed)
    upto = base.ts <= cut
    label_features = [c for c in base.columns if c.startswith("label_")]
    pd.testing.assert_frame_equal(after.loc[upto, label_features], base.loc[upto, label_features])
    price_features = [c for c in base.columns if c.startswith("price_")]
    pd.testing.assert_frame_equal(after.loc[upto, price_features], base.loc[upto, price_features])
    assert (after.loc[~upto, "label_lag_1"] != base.loc[~upto, "label_lag_1"]).any(), "the change is visible later"


def test_point_in_time_training_rows_see_only_earlier_labels(jvm_spark, panel):
    """Labels joined to the feature table (the training and scoring path): each row's label
    lags equal the series' strictly earlier labels, never its own."""
    features = feature_frame(jvm_spark.createDataFrame(panel), SPEC)
    labels = jvm_spark.createDataFrame(panel[["store", "item", "ts", "label"]])
    joined = point_in_time_join(labels, features, ["store", "item"], "ts", "ts", None).toPandas()
    joined = joined.sort_values(["store", "item", "ts"]).reset_index(drop=True)
    expected = feature_oracle(panel)
    pd.testing.assert_series_equal(joined["label_lag_1"], expected["label_lag_1"], check_dtype=False)
    pd.testing.assert_series_equal(joined["label_mean_4"], expected["label_mean_4"], check_dtype=False)
    own = joined.dropna(subset=["label_lag_1"])
    previous = panel.sort_values(["store", "item", "ts"]).groupby(["store", "item"]).label.shift(1).dropna()
    assert len(own) == len(previous) and (own.label_lag_1.to_numpy() == previous.to_numpy()).all()


def test_nothing_is_generated_for_a_column_that_did_not_ask(jvm_spark, panel):
    plain = FeatureSpec("features_x", ("store", "item"), "ts", None)
    assert feature_frame(jvm_spark.createDataFrame(panel), plain).columns == ["store", "item", "ts", "price"]
