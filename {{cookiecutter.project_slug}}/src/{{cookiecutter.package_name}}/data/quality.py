"""Pure transformations of the medallion stages: cast raw records to contract types, tag
failed expectations, split valid / quarantined / malformed, and project gold rows.

Nothing here reads or writes storage, so every function runs on any Spark engine and is
unit-tested on the JVM lane.
"""

from __future__ import annotations

from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ..contract import Column, Contract, Expectation
from ..names import BRONZE_META, CORRUPT, INGEST_DATE, INGESTED_AT, RESCUED
from .transforms import latest_per_key

FAILED = "_failed_expectations"
STATUS = "_status"


def _q(name: str) -> str:
    return f"`{name}`"


def _blank_to_null(raw: SparkColumn) -> SparkColumn:
    trimmed = F.trim(raw)
    return F.when(trimmed != "", trimmed)


def cast_expression(column: Column) -> SparkColumn:
    """The typed value of a raw string column; null where the text is not a valid value.
    Thousands separators in numbers are accepted ("1,234.50"; with ``decimal_separator: ","``
    the column reads "1.234,50")."""
    raw = _blank_to_null(F.col(_q(column.name)))
    if column.type == "string":
        return raw
    if column.type in ("int", "long", "double"):
        text = F.regexp_replace(F.trim(F.col(_q(column.name))), "[_ ]", "")
        if column.decimal_separator == ",":
            text = F.regexp_replace(F.regexp_replace(text, r"\.", ""), ",", ".")
        else:
            text = F.regexp_replace(text, ",", "")
        number = text.try_cast("double")
        if column.type == "double":
            return number
        target = "int" if column.type == "int" else "bigint"
        return F.when(number == F.floor(number), number.cast(target))
    if column.type == "boolean":
        lowered = F.lower(raw)
        return (F.when(lowered.isin(*column.true_values), F.lit(True))
                .when(lowered.isin(*column.false_values), F.lit(False)))
    if column.type in ("timestamp", "date"):
        # The format is a literal value, never pasted into SQL: quotes in it ('T') stay pattern text.
        text = F.trim(F.col(_q(column.name)))
        stamp = F.try_to_timestamp(text, F.lit(column.format)) if column.format else F.try_to_timestamp(text)
        return stamp.cast("date") if column.type == "date" else stamp
    raise ValueError(f"unsupported type {column.type!r}")


def expectation_failed(exp: Expectation) -> SparkColumn:
    """True where a row fails a row-level expectation (nulls pass all but not_null, as in GE)."""
    col = F.col(_q(exp.column)) if exp.column else None
    kwargs = exp.kwargs
    if exp.type == "expect_column_values_to_not_be_null":
        return col.isNull()
    if exp.type == "expect_column_values_to_be_between":
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        out = F.lit(False)
        if low is not None:
            out = out | (col < F.lit(low))
        if high is not None:
            out = out | (col > F.lit(high))
        return col.isNotNull() & out
    if exp.type == "expect_column_values_to_be_in_set":
        return col.isNotNull() & ~col.cast("string").isin(*[str(v) for v in kwargs["value_set"]])
    if exp.type == "expect_column_values_to_not_be_in_set":
        return col.isNotNull() & col.cast("string").isin(*[str(v) for v in kwargs["value_set"]])
    if exp.type == "expect_column_values_to_match_regex":
        return col.isNotNull() & ~col.cast("string").rlike(kwargs["regex"])
    raise ValueError(f"{exp.type} is not a row-level expectation")


def type_check_name(column: Column) -> str:
    return f"type({column.name} as {column.type})"


def sanity_failures(typed: DataFrame, bronze_size: SparkColumn, contract: Contract) -> list[SparkColumn]:
    """Values that parse but cannot be right, each named: non-finite numbers, event times beyond
    the future bound, dates that do not start their declared period, oversized records."""
    checks = []
    for col in contract.columns:
        value = F.col(_q(col.name))
        if col.type == "double":
            infinite = value.isin(float("inf"), float("-inf"))
            checks.append(F.when(F.isnan(value) | infinite, F.lit(f"finite({col.name})")))
        if col.period:
            start = F.date_trunc(col.period, value.cast("timestamp"))
            checks.append(F.when(value.isNotNull() & (value.cast("timestamp") != start),
                                 F.lit(f"period_start({col.name}, {col.period})")))
    if contract.event_time and contract.max_future_days is not None:
        seconds = int(contract.max_future_days * 86400)
        bound = F.current_timestamp() + F.expr(f"INTERVAL {seconds} SECONDS")
        checks.append(F.when(F.col(_q(contract.event_time)).cast("timestamp") > bound,
                             F.lit(f"not_future({contract.event_time}, {contract.max_future_days:g} days)")))
    if contract.max_record_bytes is not None:
        checks.append(F.when(bronze_size > F.lit(contract.max_record_bytes),
                             F.lit(f"record_size(<= {contract.max_record_bytes} bytes)")))
    return checks


def raw_size(bronze: DataFrame, contract: Contract) -> SparkColumn:
    """Bytes of a raw record as bronze holds it: its contract columns, unknown fields and any
    malformed text.  One flat call (``concat_ws`` skips nulls): a chain of additions nests one
    level per column and wide sources exceed Spark Connect's plan depth."""
    parts = [F.col(_q(c.name)) for c in contract.columns]
    parts += [F.col(c) for c in (RESCUED, CORRUPT) if c in bronze.columns]
    return F.octet_length(F.concat_ws("", *parts))


def typed_with_failures(bronze: DataFrame, contract: Contract) -> DataFrame:
    """Cast every contract column and add ``_failed_expectations`` (names of failed row-level
    expectations and type checks) and ``_status``: malformed, quarantined or valid."""
    casts = {c.name: cast_expression(c) for c in contract.columns}
    type_errors = [
        F.when(_blank_to_null(F.col(_q(c.name))).isNotNull() & casts[c.name].isNull(), F.lit(type_check_name(c)))
        for c in contract.columns if c.type != "string"
    ]
    meta = [c for c in BRONZE_META if c in bronze.columns]
    typed = bronze.select(
        *[casts[c.name].alias(c.name) for c in contract.columns],
        raw_size(bronze, contract).alias("_raw_bytes"),
        F.array(*type_errors).alias("_type_errors") if type_errors else F.array().cast("array<string>").alias(
            "_type_errors"),
        *meta,
    )
    checks = [F.when(expectation_failed(e), F.lit(e.name)) for e in contract.expectations() if e.row_level]
    checks += sanity_failures(typed, F.col("_raw_bytes"), contract)
    failed = F.array_compact(F.concat(F.col("_type_errors"), F.array(*checks) if checks else F.array()))
    status = (F.when(F.col(CORRUPT).isNotNull(), F.lit("malformed"))
              .when(F.size(FAILED) > 0, F.lit("quarantined"))
              .otherwise(F.lit("valid")))
    return typed.withColumn(FAILED, failed).drop("_type_errors", "_raw_bytes").withColumn(STATUS, status)


def order_columns(contract: Contract) -> list[str]:
    """Which version of a key wins: latest event time, then latest ingest."""
    return [contract.event_time, INGESTED_AT] if contract.event_time else [INGESTED_AT]


def silver_rows(checked: DataFrame, contract: Contract) -> DataFrame:
    """Valid rows, one per primary key (latest event time wins), without bronze bookkeeping."""
    valid = checked.where(F.col(STATUS) == "valid").drop(FAILED, STATUS, CORRUPT)
    latest = latest_per_key(valid, list(contract.primary_key), order_columns(contract))
    return latest.withColumn(INGEST_DATE, F.to_date(INGESTED_AT))


def quarantine_rows(checked: DataFrame) -> DataFrame:
    """Rows that do not go to silver, with the reason: failed expectations, or malformed."""
    rejected = checked.where(F.col(STATUS) != "valid")
    reasons = F.when(F.col(STATUS) == "malformed", F.array(F.lit("malformed_record"))).otherwise(F.col(FAILED))
    return rejected.withColumn(FAILED, reasons)
