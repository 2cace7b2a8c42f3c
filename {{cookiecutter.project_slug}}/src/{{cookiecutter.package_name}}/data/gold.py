"""Gold rows from silver: one row per key with row-level columns, or, when the contract's gold
has ``group_by``, one row per group with aggregate columns, optionally with missing periods
filled.  Pure DataFrame functions; the gold stage reads and MERGEs."""

from __future__ import annotations

from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from ..config import ConfigError
from ..contract import Contract, Gold
from ..names import BATCH, INGEST_DATE, INGESTED_AT, LABEL, RESCUED, SOURCE_FILE

# Spark interval of one step of the filled period grid.
STEP = {"day": "interval 1 day", "week": "interval 1 week", "month": "interval 1 month"}


def _q(name: str) -> str:
    return f"`{name}`"


def label_expression(contract: Contract) -> SparkColumn:
    """The label as a number: 1/0 for classification (values listed as ``positive`` are 1),
    the value itself for regression."""
    assert contract.label is not None
    raw = F.col(_q(contract.label.column))
    if contract.label.positive:
        text = F.lower(F.trim(raw.cast("string")))
        return F.when(raw.isNull(), F.lit(None).cast("int")).when(
            text.isin(*contract.label.positive), F.lit(1)).otherwise(F.lit(0))
    return raw.cast("double")


def gold_rows(silver: DataFrame, contract: Contract) -> DataFrame:
    """Business-level entity x time rows: keys, the as-of time, the contract's gold columns
    and ``label``.  Row-level columns are SQL expressions over silver; with ``group_by`` they
    are aggregates over each group, and the label is the aggregate the contract names."""
    gold = contract.gold
    if gold.aggregated:
        return aggregate_rows(with_groups(silver, gold), contract)
    selected = [F.col(_q(k)) for k in gold.keys]
    if gold.timestamp not in gold.keys:
        selected.append(F.col(_q(gold.timestamp)))
    if gold.columns:
        selected += [F.expr(expr).alias(name) for name, expr in gold.columns.items()]
    else:
        skip = {*gold.keys, gold.timestamp, contract.event_time, contract.label.column if contract.label else None}
        selected += [F.col(_q(c)) for c in contract.column_names if c not in skip]
    if contract.label:
        selected.append(label_expression(contract).alias(LABEL))
    selected.append(F.col(BATCH))
    return silver.select(*selected)


SPARK_TYPES = {"string": T.StringType(), "int": T.IntegerType(), "long": T.LongType(), "double": T.DoubleType(),
               "boolean": T.BooleanType(), "date": T.DateType(), "timestamp": T.TimestampType()}


def empty_silver(spark: SparkSession, contract: Contract) -> DataFrame:
    """A silver frame with no rows: the contract's typed columns and the bookkeeping ones."""
    fields = [T.StructField(c.name, SPARK_TYPES[c.type]) for c in contract.columns]
    fields += [T.StructField(RESCUED, T.StringType()), T.StructField(SOURCE_FILE, T.StringType()),
               T.StructField(INGESTED_AT, T.TimestampType()), T.StructField(BATCH, T.LongType()),
               T.StructField(INGEST_DATE, T.DateType())]
    return spark.createDataFrame([], T.StructType(fields))


def check_gold_expressions(spark: SparkSession, contract: Contract) -> None:
    """Parse and resolve every ``gold.group_by`` and ``gold.columns`` expression against an empty
    silver frame, so a typo stops the run before bronze or silver write anything.  Each is
    analysed alone (no rows are read) so the error names the key that is wrong."""
    gold, silver = contract.gold, empty_silver(spark, contract)
    where = contract.source_file or contract.name

    def analyse(key: str, expression: str, frame: DataFrame) -> None:
        try:
            frame.schema  # noqa: B018 - asking for the schema makes the engine analyse the plan
        except Exception as exc:  # the engines raise different classes; all mean the same here
            reason = " ".join(str(exc).split())[:300]
            raise ConfigError(f"{where}: {key}: {expression!r} is not a valid SQL expression over the silver "
                              f"columns ({reason}). Fix: correct it; the columns are "
                              f"{', '.join(contract.column_names)}") from None

    derived = {name: expr for name, expr in gold.group_by.items() if expr != name}
    for name, expr in derived.items():
        analyse(f"gold.group_by.{name}", expr, silver.select(F.expr(expr).alias(name)))
    grouped = with_groups(silver, gold)
    for name, expr in gold.columns.items():
        frame = (grouped.groupBy(*[F.col(_q(k)) for k in gold.keys]).agg(F.expr(expr).alias(name))
                 if gold.aggregated else grouped.select(F.expr(expr).alias(name)))
        analyse(f"gold.columns.{name}", expr, frame)


def with_groups(silver: DataFrame, gold: Gold) -> DataFrame:
    """Silver with every ``group_by`` value as a column (derived ones computed)."""
    derived = [F.expr(expr).alias(name) for name, expr in gold.group_by.items() if expr != name]
    return silver.select("*", *derived) if derived else silver


def aggregate_rows(grouped: DataFrame, contract: Contract) -> DataFrame:
    """One row per group of ``grouped`` (silver rows ``with_groups``): the aggregate columns,
    the label and the latest batch.

    Pass every silver row of a group (not only the new ones): aggregates are recomputed whole,
    so a rerun or a late row MERGEs the same values again instead of adding to them."""
    gold = contract.gold
    label = contract.label.column if contract.label else None
    aggregates = [F.expr(expr).alias(LABEL if name == label else name) for name, expr in gold.columns.items()]
    rows = grouped.groupBy(*[F.col(_q(k)) for k in gold.keys]).agg(
        *aggregates, F.max(BATCH).alias(BATCH))
    return rows.withColumn(LABEL, F.col(LABEL).cast("double")) if label else rows


def missing_period_rows(existing: DataFrame, contract: Contract, batch: int) -> DataFrame:
    """Rows for the periods an entity has no gold row for, from its first period to the latest
    period of the table, with the configured fill values (other columns null)."""
    gold = contract.gold
    assert gold.fill_every is not None
    entities = gold.entity_keys
    ts = gold.timestamp
    latest = existing.agg(F.max(ts).alias("_last"))
    spans = existing.groupBy(*entities).agg(F.min(ts).alias("_first")).crossJoin(latest)
    grid = spans.select(*entities, F.explode(F.sequence(F.col("_first"), F.col("_last"),
                                                        F.expr(STEP[gold.fill_every]))).alias(ts))
    missing = grid.join(existing.select(*entities, ts), on=[*entities, ts], how="left_anti")
    label = contract.label.column if contract.label else None
    types = dict(existing.dtypes)
    filled = []
    for name in existing.columns:
        if name in (*entities, ts):
            filled.append(F.col(name))
            continue
        source = label if name == LABEL else name
        value = gold.fill_values.get(source) if source else None
        if name == BATCH:
            value = batch
        filled.append(F.lit(value).cast(types[name]).alias(name))
    return missing.select(*filled)
