"""The local stand-in for ``FeatureLookup(timestamp_lookup_key=..., lookback_window=...)``: for
each label row, the latest feature row of the same entity with ``feature_ts <= label_ts``
(within an optional lookback); none -> null features."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F


def point_in_time_join(labels: DataFrame, features: DataFrame, keys: Sequence[str], label_ts: str,
                       feature_ts: str, lookback: timedelta | None = None) -> DataFrame:
    """Left join each label row to the latest feature row with the same keys and
    ``feature_ts <= label_ts`` (and ``>= label_ts - lookback``)."""
    l_ts, f_ts = "_pit_label_ts", "_pit_feature_ts"
    spine = labels.withColumn("_pit_row", F.monotonically_increasing_id()).withColumn(l_ts, F.col(label_ts))
    feature_cols = [c for c in features.columns if c not in keys and c != feature_ts]
    clashes = [c for c in feature_cols if c in labels.columns]
    if clashes:
        raise ValueError(f"feature columns {clashes} also exist in the label frame; rename one side")
    right = features.select(*[F.col(k).alias(f"_pit_key_{k}") for k in keys],
                            F.col(feature_ts).alias(f_ts), *feature_cols)
    condition = [spine[k] == right[f"_pit_key_{k}"] for k in keys]
    condition.append(right[f_ts] <= spine[l_ts])
    if lookback is not None:
        seconds = int(lookback.total_seconds())
        condition.append(right[f_ts].cast("timestamp") >= spine[l_ts].cast("timestamp") - F.expr(
            f"INTERVAL {seconds} SECONDS"))
    joined = spine.join(right, on=condition, how="left")
    window = Window.partitionBy("_pit_row").orderBy(F.col(f_ts).desc_nulls_last())
    ranked = joined.withColumn("_pit_rank", F.row_number().over(window)).where("_pit_rank = 1")
    return ranked.drop("_pit_rank", "_pit_row", l_ts, f_ts, *[f"_pit_key_{k}" for k in keys])
