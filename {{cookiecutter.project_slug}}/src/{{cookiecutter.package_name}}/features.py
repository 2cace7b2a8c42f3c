"""Feature tables from gold, and point-in-time training sets.

* ``feature_frame``: per entity and time, the gold columns plus rolling features (mean of the
  last 3 periods and change from the previous period of every numeric column).
* ``point_in_time_join``: for each label row, the latest feature row of the same entity with
  ``feature_ts <= label_ts`` (within an optional lookback); none -> null features.  These are
  the semantics of ``FeatureLookup(timestamp_lookup_key=..., lookback_window=...)``, which the
  Databricks runtime uses instead (see runtime.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import NumericType

from .config import load_project
from .contract import Contract, load_contracts
from .runtime import Runtime
from .stage import RunContext, StageFailure, StageOutput

ROLLING = 3


@dataclass(frozen=True)
class FeatureSpec:
    """Where a contract's features live and how they join to labels."""

    table: str
    keys: tuple[str, ...]
    timestamp: str
    lookback: timedelta | None


def feature_spec(contract: Contract, lookback_days: int | None) -> FeatureSpec:
    keys = tuple(contract.gold.entity_keys)
    return FeatureSpec(f"features_{contract.gold.table}", keys, contract.gold.timestamp,
                       timedelta(days=lookback_days) if lookback_days else None)


def feature_frame(gold: DataFrame, spec: FeatureSpec) -> DataFrame:
    """Gold columns (without the label) plus rolling features, one row per entity and time."""
    keep = [c for c in gold.columns if c not in ("label", "_batch_id")]
    base = gold.select(*keep)
    numeric = [f.name for f in base.schema.fields
               if isinstance(f.dataType, NumericType) and f.name not in (*spec.keys, spec.timestamp)]
    ordered = Window.partitionBy(*spec.keys).orderBy(spec.timestamp)
    recent = ordered.rowsBetween(-(ROLLING - 1), 0)
    extra = []
    for name in numeric:
        extra.append(F.avg(name).over(recent).alias(f"{name}_avg_{ROLLING}"))
        extra.append((F.col(name) - F.lag(name).over(ordered)).cast("double").alias(f"{name}_delta_1"))
    return base.select("*", *extra)


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


def build_features(rt: Runtime, ctx: RunContext) -> StageOutput:
    """Compute the feature table of the training source from its gold table."""
    project = load_project(ctx.root)
    if not project.feature_store:
        return StageOutput(details={"skipped": "include_feature_store is no: training reads gold directly"})
    contract = load_contracts(ctx.root)[project.source]
    spec = feature_spec(contract, project.lookback_days)
    if not rt.exists(contract.gold_table):
        raise StageFailure(f"{rt.table(contract.gold_table)} does not exist yet. Fix: run the ingest stages first")
    gold_version = rt.version(contract.gold_table)
    features = feature_frame(rt.read(contract.gold_table), spec)
    rt.write_feature_table(features, spec.table, list(spec.keys), spec.timestamp,
                           description=f"Features of {contract.name} from {rt.table(contract.gold_table)} "
                                       f"version {gold_version}")
    return StageOutput([spec.table], {contract.name: {"feature_table": rt.table(spec.table),
                                                      "gold_version": gold_version}})
