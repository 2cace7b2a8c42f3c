"""Reading landing files locally (Databricks uses Auto Loader instead, see databricks.py).

Every reader returns the bronze shape: contract columns as strings, ``_rescued_data``,
``_corrupt_record`` and ``_source_file``.  JSON lines are parsed by Spark; CSV goes through
pyarrow, whose invalid-row handler keeps malformed lines instead of failing the file.
"""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import MapType, StringType

from ..contract import Contract
from ..names import CORRUPT, RESCUED, SOURCE_FILE


def _q(name: str) -> str:
    return f"`{name}`"


def parse_json_lines(lines: DataFrame, contract: Contract) -> DataFrame:
    """``lines`` has ``value`` (one raw line) and ``_source_file``.  Every contract column comes out
    as a string; unknown fields go to ``_rescued_data`` (JSON), unparseable lines to ``_corrupt_record``.
    Blank lines are not records and are dropped."""
    sources = [c.source for c in contract.columns]
    schema = ", ".join(f"`{s}` string" for s in sources)
    # Parsing into a struct is several times faster than into a map; the map is built only for
    # the rows that carry unknown fields.  json_object_keys is null for text that is not an object.
    parsed = lines.where(F.trim("value") != "").select(
        F.from_json("value", schema).alias("_s"), F.expr("json_object_keys(value)").alias("_keys"), "value",
        SOURCE_FILE,
    )
    has_extra = F.size(F.filter("_keys", lambda k: ~k.isin(*sources))) > 0
    extra = F.map_filter(F.from_json("value", MapType(StringType(), StringType())), lambda k, _v: ~k.isin(*sources))
    return parsed.select(
        *[F.col("_s").getField(c.source).alias(c.name) for c in contract.columns],
        F.when(has_extra, F.to_json(extra)).alias(RESCUED),
        F.when(F.col("_keys").isNull(), F.col("value")).alias(CORRUPT),
        SOURCE_FILE,
    )


def conform_table(df: DataFrame, contract: Contract) -> DataFrame:
    """For sources read as tables (CSV, Parquet): contract columns as strings, unknown columns
    to ``_rescued_data``; ``_corrupt_record`` is kept if the reader filled it."""
    present = set(df.columns)
    sources = {c.source for c in contract.columns}
    extras = [c for c in df.columns if c not in sources and c not in (SOURCE_FILE, CORRUPT)]
    columns = [
        (F.col(_q(c.source)).cast("string") if c.source in present else F.lit(None).cast("string")).alias(c.name)
        for c in contract.columns
    ]
    if extras:
        packed = F.to_json(F.struct(*[F.col(_q(c)).cast("string").alias(c) for c in extras]))
        rescued = F.when(packed != "{}", packed)
    else:
        rescued = F.lit(None).cast("string")
    corrupt = F.col(CORRUPT) if CORRUPT in present else F.lit(None).cast("string")
    return df.select(*columns, rescued.alias(RESCUED), corrupt.alias(CORRUPT), SOURCE_FILE)


def list_landing_files(folder: Path) -> list[Path]:
    """Data files below ``folder`` in name order, skipping hidden and ``_``-prefixed names
    (as Spark and Auto Loader do).  A missing folder has no files."""
    if not folder.is_dir():
        return []
    return sorted(
        path for path in folder.rglob("*")
        if path.is_file() and not any(part.startswith((".", "_")) for part in path.relative_to(folder).parts)
    )


def _read_csv(spark: SparkSession, path: Path, contract: Contract) -> DataFrame:
    import pyarrow as pa
    from pyarrow import csv

    delimiter = contract.options.get("delimiter", ",")
    header = contract.options.get("header", "true").lower() == "true"
    with path.open(encoding="utf-8") as handle:
        first = handle.readline().rstrip("\r\n")
    names = first.split(delimiter) if header else [c.source for c in contract.columns]
    bad_lines: list[str] = []

    def keep_bad_line(row: csv.InvalidRow) -> str:
        bad_lines.append(row.text)
        return "skip"

    table = csv.read_csv(
        path,
        read_options=csv.ReadOptions(column_names=None if header else names),
        parse_options=csv.ParseOptions(delimiter=delimiter, invalid_row_handler=keep_bad_line),
        convert_options=csv.ConvertOptions(column_types={n: pa.string() for n in names}, strings_can_be_null=False),
    )
    frame = table.to_pandas()
    frame[CORRUPT] = None
    if bad_lines:
        import pandas as pd

        frame = pd.concat([frame, pd.DataFrame({CORRUPT: bad_lines})], ignore_index=True)
    frame = frame.astype(object).where(frame.notna(), None)
    schema = ", ".join(f"`{c}` string" for c in frame.columns)
    df = spark.createDataFrame([], schema) if frame.empty else spark.createDataFrame(frame, schema)
    return conform_table(df.withColumn(SOURCE_FILE, F.lit(str(path))), contract)


def read_landing_file(spark: SparkSession, path: Path, contract: Contract) -> DataFrame:
    if contract.format == "json":
        lines = spark.read.text(str(path)).withColumn(SOURCE_FILE, F.lit(str(path)))
        return parse_json_lines(lines, contract)
    if contract.format == "csv":
        return _read_csv(spark, path, contract)
    return conform_table(spark.read.parquet(str(path)).withColumn(SOURCE_FILE, F.lit(str(path))), contract)
