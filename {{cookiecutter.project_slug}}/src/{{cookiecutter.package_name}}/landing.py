"""Reading landing files locally (Databricks uses Auto Loader instead, see runtime.py).

Every reader returns the bronze shape: contract columns as strings, ``_rescued_data``,
``_corrupt_record`` and ``_source_file``.  JSON lines are parsed by Spark; CSV goes through
pyarrow, whose invalid-row handler keeps malformed lines instead of failing the file.
"""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from .contract import Contract
from .quality import CORRUPT, SOURCE_FILE, conform_table, parse_json_lines


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
