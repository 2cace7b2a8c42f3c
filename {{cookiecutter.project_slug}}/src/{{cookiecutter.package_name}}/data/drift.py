"""Population stability index (PSI) over Spark frames: pure functions, no I/O.

A baseline is fitted once on the training set and stored with the model version: numeric
columns get quantile bin edges, other columns their most frequent categories (the rest fall
into one "other" bin); every column also has a bin for nulls.  Any later batch is counted
into the same bins in a single aggregation pass, and PSI compares the two distributions::

    PSI = sum((actual - expected) * ln(actual / expected))   over the bins

PSI is taken over the rows that have a value: the share of nulls differs between a training set
(every entity's first period has no lagged features) and a later batch without any change in
the data, so it is reported next to the PSI rather than inside it.  Rules of thumb: below 0.1
stable, 0.1-0.25 moderate shift, above 0.25 major shift.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType, NumericType

BINS = 10
MAX_CATEGORIES = 20
EPSILON = 1e-4


@dataclass
class ColumnBins:
    """The bins of one column and the baseline share of rows in each.

    Numeric: ``len(edges) + 1`` value bins ``(-inf, e0], (e0, e1], ... (e_last, inf)`` then nulls.
    Categorical: one bin per category, then "other", then nulls.
    """

    name: str
    kind: str
    edges: list[float] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    proportions: list[float] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        if self.kind == "numeric":
            bounds = ["-inf", *(f"{e:.4g}" for e in self.edges), "inf"]
            return [f"({lo}, {hi}]" for lo, hi in pairwise(bounds)] + ["null"]
        return [*self.categories, "other", "null"]


def psi(expected: Sequence[float], actual: Sequence[float], epsilon: float = EPSILON) -> float:
    """PSI of two distributions over the same bins (shares are floored at ``epsilon`` so an
    empty bin does not make the index infinite)."""
    e = np.clip(np.asarray(expected, dtype=float), epsilon, None)
    a = np.clip(np.asarray(actual, dtype=float), epsilon, None)
    if e.shape != a.shape:
        raise ValueError(f"PSI needs the same bins on both sides ({e.shape} vs {a.shape})")
    return float(np.sum((a - e) * np.log(a / e)))


def column_kinds(df: DataFrame, columns: Sequence[str]) -> dict[str, str]:
    """``numeric`` for number columns, ``categorical`` for strings and booleans; other types are skipped."""
    types = {f.name: f.dataType for f in df.schema.fields}
    kinds = {}
    for name in columns:
        dtype = types[name]
        if isinstance(dtype, NumericType):
            kinds[name] = "numeric"
        elif isinstance(dtype, BooleanType) or dtype.simpleString() == "string":
            kinds[name] = "categorical"
    return kinds


def _bin_index(spec: ColumnBins) -> Column:
    """The position of each row's bin in ``spec.labels``: computed once per row, then counted."""
    col = F.col(f"`{spec.name}`")
    if spec.kind == "numeric":
        index = sum(((col > F.lit(edge)).cast("int") for edge in spec.edges), F.lit(0))
        return F.when(col.isNull(), len(spec.edges) + 1).otherwise(index)
    text = col.cast("string")
    other, null = len(spec.categories), len(spec.categories) + 1
    position = F.array_position(F.array(*[F.lit(v) for v in spec.categories]), text).cast("int") - 1
    index = F.when(position >= 0, position).otherwise(other) if spec.categories else F.lit(other)
    return F.when(text.isNull(), null).otherwise(index)


def bin_counts(df: DataFrame, specs: Sequence[ColumnBins]) -> dict[str, list[int]]:
    """Rows per bin of every column, in one aggregation pass over ``df``: a projection gives each row
    its bin per column, and one count per bin reads that index (not the column's comparisons again)."""
    if not specs:
        return {}
    indexed = df.select(*[_bin_index(spec).alias(f"_b{i}") for i, spec in enumerate(specs)])
    row = indexed.agg(*[F.count(F.when(F.col(f"_b{i}") == k, 1)).alias(f"_b{i}_{k}")
                        for i, spec in enumerate(specs) for k in range(len(spec.labels))]).collect()[0]
    return {spec.name: [int(row[f"_b{i}_{k}"]) for k in range(len(spec.labels))] for i, spec in enumerate(specs)}


def top_categories(df: DataFrame, columns: Sequence[str], limit: int = MAX_CATEGORIES) -> dict[str, list[str]]:
    """The ``limit`` most frequent non-null values of each column (ties by value), in one query:
    the columns are stacked as (column, value) pairs and counted together."""
    if not columns:
        return {}
    pairs = F.explode(F.array(*[F.struct(F.lit(i).alias("c"), F.col(f"`{name}`").cast("string").alias("v"))
                                for i, name in enumerate(columns)]))
    counted = (df.select(pairs.alias("p")).select("p.c", "p.v").where(F.col("v").isNotNull())
               .groupBy("c", "v").count())
    rank = F.row_number().over(Window.partitionBy("c").orderBy(F.desc("count"), "v"))
    rows = counted.withColumn("r", rank).where(F.col("r") <= limit).orderBy("c", "r").collect()
    top: dict[str, list[str]] = {name: [] for name in columns}
    for row in rows:
        top[columns[row["c"]]].append(row["v"])
    return top


def _shares(counts: Sequence[float]) -> list[float]:
    total = sum(counts)
    return [c / total for c in counts] if total else [0.0] * len(counts)


def fit_baseline(df: DataFrame, columns: Sequence[str], bins: int = BINS) -> dict[str, Any]:
    """Fit the bins of ``columns`` on ``df`` (the training set) and record the baseline shares."""
    kinds = column_kinds(df, columns)
    numeric = [c for c, k in kinds.items() if k == "numeric"]
    quantiles = [k / bins for k in range(1, bins)]
    edges: dict[str, list[float]] = {c: [] for c in numeric}
    if numeric:  # one quantile per aggregate: Sail takes no array of percentages
        row = df.agg(*[F.percentile_approx(F.col(f"`{c}`").cast("double"), q).alias(f"_q{i}_{j}")
                       for i, c in enumerate(numeric) for j, q in enumerate(quantiles)]).collect()[0]
        for i, c in enumerate(numeric):
            values = [row[f"_q{i}_{j}"] for j in range(len(quantiles))]
            edges[c] = sorted({float(v) for v in values if v is not None})
    categories = top_categories(df, [c for c, k in kinds.items() if k == "categorical"])
    specs = [ColumnBins(name, kind, edges=edges[name]) if kind == "numeric"
             else ColumnBins(name, kind, categories=categories[name]) for name, kind in kinds.items()]
    rows = 0
    for spec, counts in zip(specs, bin_counts(df, specs).values(), strict=True):
        spec.proportions = _shares(counts)
        rows = sum(counts)
    return {"bins": bins, "rows": rows, "columns": [asdict(s) for s in specs]}


def baseline_specs(baseline: dict[str, Any]) -> list[ColumnBins]:
    return [ColumnBins(**c) for c in baseline["columns"]]


@dataclass
class ColumnDrift:
    column: str
    psi: float
    rows: int
    drifted: bool
    expected: list[float]
    actual: list[float]
    labels: list[str]
    expected_nulls: float
    actual_nulls: float


def value_shares(shares_or_counts: Sequence[float]) -> list[float]:
    """Shares of the value bins (the last bin, nulls, left out)."""
    return _shares(list(shares_or_counts[:-1]))


def drift(df: DataFrame, baseline: dict[str, Any], threshold: float, min_rows: int = 1) -> list[ColumnDrift]:
    """PSI of every baseline column present in ``df``; ``drifted`` when PSI >= ``threshold`` on at
    least ``min_rows`` rows.  On few rows PSI measures sampling noise (about (bins - 1) / rows
    with no drift at all): a one-row batch drifts in every column."""
    specs = [s for s in baseline_specs(baseline) if s.name in df.columns]
    results = []
    for spec, counts in zip(specs, bin_counts(df, specs).values(), strict=True):
        expected, actual = value_shares(spec.proportions), value_shares(counts)
        value = psi(expected, actual)
        total = sum(counts)
        results.append(ColumnDrift(spec.name, value, total, value >= threshold and total >= min_rows, expected,
                                   actual, spec.labels[:-1],
                                   spec.proportions[-1], counts[-1] / total if total else 0.0))
    return results
