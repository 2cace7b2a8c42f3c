"""The feature table of a source: per entity and time, the gold columns plus rolling features
(mean of the last 3 periods and change from the previous period of every numeric column).
Point-in-time lookups on it are the runtime's (``FeatureLookup`` on Databricks,
``runtime/lookup.py`` locally)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import NumericType

from ..contract import Contract
from ..names import BATCH, LABEL

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
    keep = [c for c in gold.columns if c not in (LABEL, BATCH)]
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
