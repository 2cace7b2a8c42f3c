"""Reading landing files locally (Databricks uses Auto Loader instead, see databricks.py).

Every reader returns the bronze shape: contract columns as strings, ``_rescued_data``,
``_corrupt_record`` and ``_source_file``.  JSON (lines, or with ``multiLine`` one document per
file) is parsed by Spark; CSV goes through pyarrow, whose invalid-row handler keeps malformed lines
instead of failing the file.  What pyarrow reads (CSV, and Parquet whose nanosecond timestamps
Spark cannot hold) is streamed into a Parquet file under the caller's ``scratch`` folder, which
the engine reads itself: a frame sent from this process would go through Spark Connect's 128 MB
message limit (a 1M-row file is ~450 MB) and through pandas.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import MapType, StringType

from ..config import ConfigError
from ..contract import Contract
from ..names import CORRUPT, RESCUED, SOURCE_FILE

BLOCK_BYTES = 16 << 20  # pyarrow reads and parses a CSV file in blocks of this size


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


def landing_key(path: Path, landing_root: Path) -> str:
    """How the ingest log names a file: its path relative to the landing volume (so a moved or
    copied project knows its files), or the absolute path of a file outside it."""
    try:
        return path.resolve().relative_to(landing_root.resolve()).as_posix()
    except ValueError:
        return str(path.resolve())


# File suffixes each format's files may have (none: any); a file named otherwise, e.g. a stray
# README.md or a spreadsheet, is reported as unreadable instead of being parsed as data.
FORMAT_SUFFIXES = {
    "csv": {".csv", ".tsv", ".txt", ".tab", ".dat", ""},
    "json": {".json", ".jsonl", ".ndjson", ".txt", ""},
    "parquet": {".parquet", ".pq", ""},
}
SNIFF_BYTES = 8192


def unreadable_reason(path: Path, file_format: str) -> str | None:
    """Why a landing file cannot be data of ``file_format`` before reading it, or None."""
    suffix = path.suffix.lower()
    if suffix not in FORMAT_SUFFIXES[file_format]:
        return f"not a {file_format} file (its name ends in {suffix})"
    if path.stat().st_size == 0:
        return "empty file (0 bytes)"
    if file_format != "parquet":
        with path.open("rb") as handle:
            head = handle.read(SNIFF_BYTES)
        if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
            return "binary content (NUL bytes), not text"
    return None


# Auto Loader's reader options that the local readers honour, per format (Spark's CSV and JSON
# option names).  Any other option is an error naming it: nothing is silently ignored.
LOCAL_OPTIONS = {
    "csv": {"header", "sep", "delimiter", "quote", "escape", "nullValue", "emptyValue", "encoding", "charset",
            "multiLine", "comment", "dateFormat", "timestampFormat"},
    "json": {"multiLine", "dateFormat", "timestampFormat"},
    "parquet": set(),
}
# Options about which files to read rather than how to parse them, honoured for every format.
FILE_OPTIONS = {"allowOverwrites"}
for _honoured in LOCAL_OPTIONS.values():
    _honoured |= FILE_OPTIONS


def check_local_options(contract: Contract) -> None:
    """Refuse options the local reader cannot honour, naming each (Auto Loader takes them as they are)."""
    unsupported = sorted(set(contract.options) - LOCAL_OPTIONS[contract.format])
    if unsupported:
        raise ConfigError(
            f"{contract.source_file}: options {unsupported} cannot be honoured by the local {contract.format} reader "
            f"(it honours {sorted(LOCAL_OPTIONS[contract.format]) or 'none'}). Fix: remove them, or run this "
            "source on Databricks only")


def _flag(contract: Contract, name: str, default: bool) -> bool:
    value = str(contract.options.get(name, str(default))).strip().lower()
    if value not in ("true", "false"):
        raise ConfigError(f"{contract.source_file}: options.{name} is {value!r}. Fix: use true or false")
    return value == "true"


def _single_char(contract: Contract, names: tuple[str, ...], default: str) -> str:
    for name in names:
        if name in contract.options:
            value = contract.options[name]
            if len(value) != 1:
                raise ConfigError(f"{contract.source_file}: options.{name} is {value!r}. Fix: use one character")
            return value
    return default


class _CsvFile:
    """A CSV file as pyarrow reads it with Spark's option semantics: quoted headers and fields, CRLF,
    a UTF-8 BOM, other encodings, ``nullValue`` (default: empty fields are null), ``emptyValue`` for
    quoted empty strings, ``multiLine`` quoted fields, ``comment`` lines.  A column with an empty
    header is named ``_c<index>``, as Spark names it (R's row-name column)."""

    def __init__(self, path: Path, contract: Contract) -> None:
        check_local_options(contract)
        self.path, self.contract = path, contract
        self.header = _flag(contract, "header", False)
        self.multiline = _flag(contract, "multiLine", False)
        self.delimiter = _single_char(contract, ("sep", "delimiter"), ",")
        self.quote = _single_char(contract, ("quote",), '"')
        self.escape = contract.options.get("escape")
        self.encoding = contract.options.get("encoding") or contract.options.get("charset") or "utf8"
        self.text: bytes | None = None  # the file without its comment lines, when options.comment is set
        comment = contract.options.get("comment")
        if comment:
            if self.multiline:
                raise ConfigError(f"{contract.source_file}: options.comment with multiLine cannot be honoured by "
                                  "the local reader (a comment character may open a line inside a quoted field). "
                                  "Fix: drop one of them")
            lines = path.read_bytes().decode(self.encoding).splitlines(keepends=True)
            self.text = "".join(line for line in lines if not line.startswith(comment)).encode("utf8")
            self.encoding = "utf8"

    def source(self) -> Path | io.BytesIO:
        return io.BytesIO(self.text) if self.text is not None else self.path

    def parse_options(self, handler: Callable[[Any], str] | None = None) -> Any:
        from pyarrow import csv

        return csv.ParseOptions(delimiter=self.delimiter, quote_char=self.quote, escape_char=self.escape or False,
                                double_quote=True, newlines_in_values=self.multiline, invalid_row_handler=handler)

    def column_names(self) -> list[str]:
        """The header's names; without a header the contract's sources, or Spark's ``_c<index>``
        names when the contract has no columns (a draft)."""
        from pyarrow import csv

        if not self.header and self.contract.columns:
            return [c.source for c in self.contract.columns]
        # The first row, parsed by the same reader (quoted names, BOM), read as text.
        options = csv.ReadOptions(encoding=self.encoding, block_size=1 << 20,
                                  autogenerate_column_names=not self.header)
        skip_bad_rows = self.parse_options(lambda _: "skip")
        with csv.open_csv(self.source(), read_options=options, parse_options=skip_bad_rows) as first:
            found = first.schema.names if self.header else [""] * len(first.schema.names)
        return [name if name.strip() else f"_c{i}" for i, name in enumerate(found)]

    def stage(self, names: list[str], target: Path) -> None:
        """Every row as text in ``names`` into the Parquet file ``target``, block by block; rows with
        too many or too few fields only in ``_corrupt_record``."""
        import pyarrow.compute as pc
        from pyarrow import csv

        bad_lines: list[str] = []

        def keep_bad_line(row: csv.InvalidRow) -> str:
            bad_lines.append(row.text)
            return "skip"

        null_value = self.contract.options.get("nullValue", "")
        empty_value = self.contract.options.get("emptyValue")
        schema = pa.schema([(n, pa.string()) for n in [*names, CORRUPT]])
        reader = csv.open_csv(
            self.source(),
            read_options=csv.ReadOptions(encoding=self.encoding, column_names=names, skip_rows=1 if self.header else 0,
                                         block_size=BLOCK_BYTES),
            parse_options=self.parse_options(keep_bad_line),
            convert_options=csv.ConvertOptions(column_types={n: pa.string() for n in names},
                                               null_values=sorted({null_value, ""}),
                                               strings_can_be_null=True, quoted_strings_can_be_null=False),
        )
        with reader, pq.ParquetWriter(target, schema) as writer:
            for batch in reader:
                columns = batch.columns
                if empty_value is not None:
                    columns = [pc.if_else(pc.equal(c, ""), empty_value, c) for c in columns]
                writer.write_batch(pa.record_batch([*columns, pa.nulls(batch.num_rows, pa.string())], schema=schema))
            if bad_lines:
                writer.write_table(pa.table({**{n: pa.nulls(len(bad_lines), pa.string()) for n in names},
                                             CORRUPT: pa.array(bad_lines, pa.string())}, schema=schema))


def _staged(scratch: Path) -> Path:
    """A new Parquet file in ``scratch`` (numbered: a landing file's own name may hold characters
    that Spark reads as a glob)."""
    scratch.mkdir(parents=True, exist_ok=True)
    return scratch / f"{len(list(scratch.iterdir())):06d}.parquet"


def _read_csv(spark: SparkSession, path: Path, contract: Contract, scratch: Path) -> DataFrame:
    """A CSV file through pyarrow (``_CsvFile``); rows with too many or too few fields go to
    ``_corrupt_record``."""
    csv_file = _CsvFile(path, contract)
    names = csv_file.column_names()
    check_columns_found(names, path, contract)
    target = _staged(scratch)
    csv_file.stage(names, target)
    df = spark.read.parquet(str(target))
    return conform_table(df.withColumn(SOURCE_FILE, F.lit(str(path))), contract)


def _json_records(spark: SparkSession, path: Path, contract: Contract) -> DataFrame:
    """One row per JSON record: ``value`` (its text) and ``_source_file``.  A record is a line, or with
    ``multiLine`` the file is one document, an array of records or one object (Auto Loader's
    semantics); a document that does not parse stays whole, to land in ``_corrupt_record``."""
    if not _flag(contract, "multiLine", False):
        return spark.read.text(str(path)).withColumn(SOURCE_FILE, F.lit(str(path)))
    document = spark.read.text(str(path), wholetext=True)
    one_object = F.when(F.expr("json_object_keys(value)").isNotNull(), F.array("value"))
    records = F.coalesce(one_object, F.from_json("value", "array<string>"), F.array("value"))
    return document.select(F.explode(records).alias("value"), F.lit(str(path)).alias(SOURCE_FILE))


def landing_columns(spark: SparkSession, path: Path, contract: Contract) -> list[str]:
    """The names a landing file's fields have for the local reader, which a column's ``source`` names:
    the CSV header (``_c<index>`` for an empty name, or for every column without a header and
    contract columns), the JSON records' keys in order of appearance, the Parquet columns."""
    check_local_options(contract)
    if contract.format == "csv":
        return _CsvFile(path, contract).column_names()
    if contract.format == "json":
        records = _json_records(spark, path, contract).withColumn("record", F.monotonically_increasing_id())
        keys = records.select("record", F.posexplode(F.expr("json_object_keys(value)")).alias("position", "key"))
        first = keys.groupBy("key").agg(F.min(F.struct("record", "position")).alias("first")).orderBy("first")
        return [row["key"] for row in first.collect()]
    return pq.read_schema(path).names


def check_columns_found(found: list[str], path: Path, contract: Contract) -> None:
    """A file that has none of the contract's columns is the wrong file or the wrong contract: say
    which columns the file has instead of quarantining every row."""
    sources = [c.source for c in contract.columns]
    data_columns = [c for c in found if c not in (SOURCE_FILE, CORRUPT)]
    if data_columns and not set(sources) & set(data_columns):
        raise ConfigError(f"{contract.source_file}: none of the contract's columns {sources} is in {path}, whose "
                          f"columns are {data_columns}. Fix: set each column's source to the file's name for it, "
                          "or point path at this source's files")


def _read_parquet(spark: SparkSession, path: Path, scratch: Path) -> DataFrame:
    """A Parquet file as the engine reads it; pandas writes timestamps in nanoseconds by default,
    which Spark's types cannot hold, so such a file is first rewritten with microseconds (what
    Spark on Databricks keeps), row group by row group."""
    source = pq.ParquetFile(path)
    schema = source.schema_arrow
    fields = [pa.field(f.name, pa.timestamp("us", f.type.tz), f.nullable)
              if pa.types.is_timestamp(f.type) and f.type.unit == "ns" else f for f in schema]
    if fields == list(schema):
        return spark.read.parquet(str(path))
    target, micros = _staged(scratch), pa.schema(fields)
    with pq.ParquetWriter(target, micros) as writer:
        for batch in source.iter_batches():
            writer.write_batch(batch.cast(micros, safe=False))
    return spark.read.parquet(str(target))


def union_all(frames: Sequence[DataFrame]) -> DataFrame:
    """The rows of every frame (by column name), unioned pairwise: a chain of unions nests one plan
    level per frame, and Spark Connect refuses plans deeper than ~100 levels."""
    level = list(frames)
    while len(level) > 1:
        level = [a.unionByName(b) for a, b in zip(level[::2], level[1::2], strict=False)] + level[len(level) // 2 * 2:]
    return level[0]


def read_landing_file(spark: SparkSession, path: Path, contract: Contract, scratch: Path) -> DataFrame:
    """One landing file in the bronze shape.  ``scratch`` is a folder the reader may write Parquet
    files into; the caller removes it once the frame has been written."""
    check_local_options(contract)
    if contract.format == "json":
        return parse_json_lines(_json_records(spark, path, contract), contract)
    if contract.format == "csv":
        return _read_csv(spark, path, contract, scratch)
    table = _read_parquet(spark, path, scratch)
    check_columns_found(table.columns, path, contract)
    return conform_table(table.withColumn(SOURCE_FILE, F.lit(str(path))), contract)
