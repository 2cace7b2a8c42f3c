"""The feature table of a source: per entity and time, the gold columns plus the forecasting
features its contract asks for (``features:``): lags and trailing means read strictly earlier
rows of the same entity, so no row sees its own label or a later value; changes; calendar
parts of the period.  Point-in-time lookups on it are the runtime's (``FeatureLookup`` on
Databricks, ``runtime/lookup.py`` locally)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from ..contract import Contract, Features
from ..names import BATCH, LABEL

# Calendar parts of the period and the Spark function that computes each.
CALENDAR = {
    "day_of_week": F.dayofweek,
    "day_of_month": F.dayofmonth,
    "day_of_year": F.dayofyear,
    "week_of_year": F.weekofyear,
    "month": F.month,
    "quarter": F.quarter,
    "year": F.year,
}
# Calendar features are known in advance and cycle by construction: drift monitoring skips them.
CALENDAR_FEATURES = frozenset(f"calendar_{part}" for part in CALENDAR)


@dataclass(frozen=True)
class FeatureSpec:
    """Where a contract's features live, how they join to labels and which are derived."""

    table: str
    keys: tuple[str, ...]
    timestamp: str
    lookback: timedelta | None
    features: Features = field(default_factory=Features)


def feature_spec(contract: Contract, lookback_days: int | None) -> FeatureSpec:
    keys = tuple(contract.gold.entity_keys)
    return FeatureSpec(f"features_{contract.gold.table}", keys, contract.gold.timestamp,
                       timedelta(days=lookback_days) if lookback_days else None, contract.features)


def derived_features(spec: FeatureSpec) -> list[tuple[str, SparkColumn]]:
    """(name, expression) of every feature the spec asks for, in a stable order."""
    ordered = Window.partitionBy(*spec.keys).orderBy(spec.timestamp)
    wanted = spec.features
    out: list[tuple[str, SparkColumn]] = []
    for name, lags in wanted.lags.items():
        out += [(f"{name}_lag_{k}", F.lag(F.col(name), k).over(ordered).cast("double")) for k in lags]
    for name, sizes in wanted.windows.items():
        out += [(f"{name}_mean_{n}", F.avg(F.col(name)).over(ordered.rowsBetween(-n, -1))) for n in sizes]
    for name in wanted.changes:
        out.append((f"{name}_change_1", (F.col(name) - F.lag(F.col(name)).over(ordered)).cast("double")))
    for part in wanted.calendar:
        out.append((f"calendar_{part}", CALENDAR[part](F.col(spec.timestamp))))
    return out


def feature_frame(gold: DataFrame, spec: FeatureSpec) -> DataFrame:
    """Gold columns (without the label) plus the derived features, one row per entity and time.
    The label's own lags and means are computed before it is dropped."""
    keep = [c for c in gold.columns if c not in (LABEL, BATCH)]
    derived = [expr.alias(name) for name, expr in derived_features(spec)]
    return gold.select(*keep, *derived)
