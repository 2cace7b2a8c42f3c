"""``contract draft``: profile landing files and write a draft data contract to review.

The files are read by the local landing readers (``runtime/landing.py``) exactly as bronze reads
them, so the draft's column names, nulls and values are the ones ingestion will see.  Profiling is
a handful of pure functions over that text (pandas); silver's casts decide what a type means here.
The YAML is written line by line so that it can carry the comments a reviewer needs.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from itertools import combinations
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ..config import ConfigError
from ..contract import FORMATS, NAME, Column, Contract, Gold, load_contract
from ..names import CORRUPT, INGEST_DATE, LABEL, PACKAGE
from ..runtime import start_sail, stop_engine
from ..runtime.landing import landing_columns, list_landing_files, read_landing_file, union_all

SUFFIX_FORMATS = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".json": "json", ".jsonl": "json",
                  ".ndjson": "json", ".parquet": "parquet", ".pq": "parquet"}
DELIMITERS = (",", ";", "\t", "|")
SNIFF_BYTES = 64 * 1024
MAX_FILES = 50
MAX_ROWS = 1_000_000
# A string column with at most this many distinct values (and each seen twice on average) is categorical.
MAX_CATEGORIES = 20
# Key columns are searched in sets of up to this many columns, among this many candidates for triples.
MAX_KEY_COLUMNS, MAX_TRIPLE_CANDIDATES = 3, 12
# Which value of a two-valued string label means 1, in order of preference.
POSITIVE_WORDS = ("yes", "true", "1", "y", "t", "positive", "pos")
ID_NAME = re.compile(r"(^|_)(id|key|uuid|guid|code|no|number)$|^row_?names?$")
TIME_NAME = re.compile(r"(^|_)(ts|time|timestamp|updated|modified|created|event)(_|$)")
INT_TEXT = re.compile(r"[+-]?\d+")
LEADING_ZERO = re.compile(r"[+-]?0\d+")
DOUBLE_TEXT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
DATE_TEXT = re.compile(r"\d{4}-\d{1,2}-\d{1,2}")
TIMESTAMP_TEXT = re.compile(r"\d{4}-\d{1,2}-\d{1,2}[ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?")
INT_RANGE = (-(2**31), 2**31 - 1)
# Where errors about reader options point: the options given on the command line or detected.
OPTIONS_ORIGIN = Path("contract draft --option")
# The one text column of a JSON file whose records have no keys at all (everything is malformed).
NO_FIELDS = "_no_fields"


# --- profiling: pure functions over the text the reader produced -------------------------------


@dataclass(frozen=True)
class ColumnProfile:
    """What the profiled rows show about one column (values as silver sees them: trimmed, blank = null)."""

    source: str
    name: str
    type: str
    rows: int
    nulls: int
    distinct: int
    values: tuple[str, ...] = ()  # the distinct values, most frequent first, when there are few
    minimum: int | float | None = None
    maximum: int | float | None = None

    @property
    def required(self) -> bool:
        return self.rows > 0 and self.nulls == 0

    @property
    def categorical(self) -> bool:
        present = self.rows - self.nulls
        return self.type == "string" and 0 < self.distinct <= MAX_CATEGORIES and self.distinct * 2 <= present


def as_silver_sees_it(raw: pd.Series) -> pd.Series:
    """Silver trims text and treats a blank value as null; profile the same values."""
    text = raw.astype("string").str.strip()
    return text.mask(text == "")


def infer_type(values: pd.Series) -> str:
    """The narrowest contract type every (non-null) value casts to in silver; ``string`` otherwise.
    Whole numbers with a leading zero stay text (postcodes, codes)."""
    if values.empty:
        return "string"
    if values.str.fullmatch(INT_TEXT).all():
        if values.str.fullmatch(LEADING_ZERO).any():
            return "string"
        numbers = values.map(int)
        return "int" if INT_RANGE[0] <= numbers.min() and numbers.max() <= INT_RANGE[1] else "long"
    if values.str.fullmatch(DOUBLE_TEXT).all():
        return "double"
    if set(values.str.lower().unique()) <= {"true", "false"}:
        return "boolean"
    for kind, pattern in (("date", DATE_TEXT), ("timestamp", TIMESTAMP_TEXT)):
        if values.str.fullmatch(pattern).all() and valid_times(values):
            return kind
    return "string"


def valid_times(values: pd.Series) -> bool:
    """Whether every ISO text is a real date or time (not 2024-02-30)."""
    return bool(pd.to_datetime(values, format="ISO8601", utc=True, errors="coerce").notna().all())


def profile_column(source: str, name: str, raw: pd.Series) -> ColumnProfile:
    values = as_silver_sees_it(raw).dropna()
    kind = infer_type(values)
    counts = values.value_counts()
    profile = ColumnProfile(source, name, kind, rows=len(raw), nulls=len(raw) - len(values), distinct=len(counts),
                            values=tuple(counts.index) if len(counts) <= MAX_CATEGORIES else ())
    if kind in ("int", "long", "double") and not values.empty:
        number = float if kind == "double" else int
        numbers = values.map(number)
        profile = replace(profile, minimum=number(numbers.min()), maximum=number(numbers.max()))
    return profile


def column_name(source: str, position: int, header: bool) -> str:
    """A contract column name for a source name: snake case, lowercase letters, digits and ``_``.
    R's row names (an empty first header, ``_c0``) become ``row_name``."""
    if re.fullmatch(r"_c\d+", source):
        return "row_name" if header and source == "_c0" else f"column_{source[2:]}"
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", source).lower()
    name = re.sub(r"[^a-z0-9]+", "_", snake).strip("_") or f"column_{position}"
    name = f"column_{name}" if name[0].isdigit() else name
    return "label_value" if name == LABEL else name  # gold adds its own ``label`` column


def column_names(sources: Sequence[str], header: bool) -> list[str]:
    """Contract names for every source, made unique with ``_2``, ``_3``..."""
    names: list[str] = []
    for position, source in enumerate(sources):
        name, suffix = column_name(source, position, header), 2
        while name in names:
            name, suffix = f"{column_name(source, position, header)}_{suffix}", suffix + 1
        names.append(name)
    return names


def key_rank(profile: ColumnProfile, position: int) -> tuple[int, int]:
    """Which columns make a natural key first: named like ids (R's row names after a real id), then
    dates and times (entity x time), then text, then categories, then numbers and flags (more often
    measures than keys)."""
    if ID_NAME.search(profile.name):
        group = 1 if profile.name == "row_name" else 0
    elif profile.type in ("date", "timestamp"):
        group = 2
    elif profile.type == "string":
        group = 4 if profile.categorical else 3
    else:
        group = 5
    return group, position


def candidate_key(frame: pd.DataFrame, profiles: Sequence[ColumnProfile], exclude: Sequence[str] = ()) -> list[str]:
    """The smallest set of columns (one, two, then three) that is never null and unique in ``frame``
    (named by the profiles' ``source``); ``[]`` when none is.  Doubles and ``exclude`` (the label)
    are never key columns."""
    rows = len(frame)
    usable = [(key_rank(p, i), p) for i, p in enumerate(profiles)
              if p.required and p.type != "double" and p.name not in exclude]
    candidates = [p for _, p in sorted(usable, key=lambda item: item[0])]
    text = {p.source: as_silver_sees_it(frame[p.source]) for p in candidates}
    for size in range(1, MAX_KEY_COLUMNS + 1):
        pool = candidates if size < 3 else candidates[:MAX_TRIPLE_CANDIDATES]
        for combo in combinations(pool, size):
            product = 1
            for p in combo:
                product *= p.distinct
            if product < rows:
                continue  # too few value combinations to be unique
            if not pd.DataFrame({p.source: text[p.source] for p in combo}).duplicated().any():
                chosen = {p.name for p in combo}
                return [p.name for p in profiles if p.name in chosen]  # in the file's order
    return []


def guess_event_time(profiles: Sequence[ColumnProfile], exclude: Sequence[str] = ()) -> str | None:
    """A timestamp column, preferring names that say event / updated / time."""
    stamps = [p for p in profiles if p.type == "timestamp" and p.name not in exclude]
    chosen = [p for p in stamps if TIME_NAME.search(p.name)] or stamps
    return chosen[0].name if chosen else None


def guess_gold_timestamp(profiles: Sequence[ColumnProfile], key: Sequence[str], event_time: str | None) -> str:
    """The period of a gold row: a date or timestamp in the key, else a date column with no nulls,
    else the event time, else the ingest date."""
    by_name = {p.name: p for p in profiles}
    for name in key:
        if by_name[name].type in ("date", "timestamp"):
            return name
    dates = [p.name for p in profiles if p.type == "date" and p.required]
    return dates[0] if dates else event_time or INGEST_DATE


def positive_value(values: Sequence[str]) -> str:
    """Which of a label's two values means 1: yes / true / 1 ... when present, else the rarer one
    (``values`` are most frequent first)."""
    lowered = {v.lower(): v for v in values}
    for word in POSITIVE_WORDS:
        if word in lowered:
            return lowered[word]
    return values[-1]


# --- reading: the landing readers, with the options detected on the first file -------------------


def landing_files(path: Path) -> list[Path]:
    """The data files to profile: ``path`` itself, or the files below it as bronze lists them."""
    if path.is_file():
        return [path]
    if not path.exists():
        raise ConfigError(f"{path} does not exist. Fix: pass a landing folder or a file of the source")
    files = list_landing_files(path)
    if not files:
        raise ConfigError(f"{path} has no data files (names starting with . or _ are skipped, as bronze skips "
                          "them). Fix: put the source's files there, or pass another folder")
    return files


def format_of(files: Sequence[Path]) -> str:
    formats = {SUFFIX_FORMATS.get(f.suffix.lower()) for f in files}
    if len(formats) != 1 or None in formats:
        suffixes = sorted({f.suffix or "(none)" for f in files})
        raise ConfigError(f"cannot tell the format from the file suffixes {suffixes}. Fix: pass --format "
                          f"{'|'.join(FORMATS)}")
    return formats.pop()


def parse_options(pairs: Sequence[str]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--option {pair!r} is not KEY=VALUE. Fix: e.g. --option sep=';'")
        options[key.strip()] = value
    return options


def sniff_encoding(sample: bytes) -> str | None:
    """``ISO-8859-1`` for text that is not UTF-8 (every byte is a Latin-1 character), else None (UTF-8)."""
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
    except UnicodeDecodeError:
        return "ISO-8859-1"
    return None


def sniff_delimiter(text: str) -> str:
    """The delimiter that splits the sample's records into the same number (> 1) of fields, the most
    fields winning; ``,`` when none does."""
    best, best_fields = ",", 1
    for delimiter in DELIMITERS:
        records = list(csv.reader(io.StringIO(text), delimiter=delimiter))[:-1] or [[]]  # the last may be cut
        widths = {len(r) for r in records if r}
        if len(widths) == 1 and (width := widths.pop()) > best_fields:
            best, best_fields = delimiter, width
    return best


def reading_contract(name: str, file_format: str, folder: Path, options: dict[str, str]) -> Contract:
    """An in-memory contract with the reader options and no columns yet (see ``with_every_field``)."""
    return Contract(name=name, format=file_format, path=str(folder), primary_key=(), event_time=None, columns=(),
                    gold=Gold(name, (), INGEST_DATE, {}), options=options, source_file=OPTIONS_ORIGIN)


def with_every_field(spark: SparkSession, files: Sequence[Path], contract: Contract) -> Contract:
    """``contract`` with every field of ``files`` as a text column named by its source, in the order
    the reader finds them: what the draft profiles."""
    sources = list(dict.fromkeys(s for f in files for s in landing_columns(spark, f, contract)))
    return replace(contract, columns=tuple(Column(name=s, type="string", source=s) for s in sources or [NO_FIELDS]))


@dataclass
class DraftReader:
    """Landing files through the project's readers, as bronze reads them (every column as text);
    the files a reader stages go to ``scratch``, one folder for the whole draft."""

    spark: SparkSession
    scratch: Path

    def text(self, files: Sequence[Path], contract: Contract) -> DataFrame:
        return union_all([read_landing_file(self.spark, f, contract, self.scratch) for f in files])

    def malformed_count(self, path: Path, contract: Contract) -> int:
        every_field = with_every_field(self.spark, [path], contract)
        return self.text([path], every_field).where(F.col(CORRUPT).isNotNull()).count()

    def writes_na(self, path: Path, contract: Contract) -> bool:
        """Whether a field of the file is the bare text NA (R's ``write.csv`` missing value)."""
        contract = with_every_field(self.spark, [path], contract)
        # One flat array, not a chain of ORs: a chain nests a level per column (Spark Connect's plan depth).
        is_na = F.array_contains(F.array(*[F.col(f"`{c.name}`") for c in contract.columns]), "NA")
        return self.text([path], contract).where(is_na).limit(1).count() > 0


def sniffed_text(path: Path, encoding: str | None, comment: str | None) -> str:
    with path.open("rb") as handle:
        sample = handle.read(SNIFF_BYTES)
    text = sample.decode(encoding or "utf-8", errors="replace").removeprefix("\ufeff")
    return "".join(line for line in text.splitlines(keepends=True) if not (comment and line.startswith(comment)))


def detect_options(reader: DraftReader, first: Path, file_format: str, given: dict[str, str]) -> dict[str, str]:
    """Reader options for the files, detected on the first one; ``given`` options always win.
    CSV: a header (assumed), the delimiter, the encoding when it is not UTF-8, ``nullValue: NA``
    when the file writes NA, ``multiLine`` when quoted fields span lines.  JSON: ``multiLine`` when
    the file is one document rather than JSON lines."""
    options = dict(given)
    if file_format == "parquet":
        return options
    if file_format == "csv":
        options.setdefault("header", "true")
        if "encoding" not in options and "charset" not in options:
            with first.open("rb") as handle:
                encoding = sniff_encoding(handle.read(SNIFF_BYTES))
            if encoding:
                options["encoding"] = encoding
        if "sep" not in options and "delimiter" not in options:
            encoding = options.get("encoding") or options.get("charset")
            options["delimiter"] = sniff_delimiter(sniffed_text(first, encoding, options.get("comment")))
    if "multiLine" not in options:
        malformed = reader.malformed_count(first, reading_contract("draft", file_format, first.parent, options))
        multiline = {**options, "multiLine": "true"}
        if malformed and reader.malformed_count(
                first, reading_contract("draft", file_format, first.parent, multiline)) < malformed:
            options = multiline
    if file_format == "csv" and "nullValue" not in options and reader.writes_na(
            first, reading_contract("draft", file_format, first.parent, options)):
        options["nullValue"] = "NA"
    return options


# --- the draft ----------------------------------------------------------------------------------


@dataclass
class Draft:
    name: str
    file_format: str
    files: list[Path]
    path: str
    options: dict[str, str]
    profiles: list[ColumnProfile]
    rows: int
    malformed: int
    primary_key: list[str]
    event_time: str | None
    gold_timestamp: str
    label: ColumnProfile | None = None
    positive: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def gold_columns(self) -> list[ColumnProfile]:
        """Every column but the keys and the label; the period and the event time are in each gold row
        already (or are no feature)."""
        skip = {*self.primary_key, self.gold_timestamp, self.event_time, self.label.name if self.label else None}
        return [p for p in self.profiles if p.name not in skip]


def contract_path(folder: Path, landing_root: Path | None) -> str:
    """The contract's ``path``: relative to the landing volume when the files are in it, else absolute."""
    folder = folder.resolve()
    if landing_root is not None and folder.is_relative_to(landing_root.resolve()):
        return folder.relative_to(landing_root.resolve()).as_posix()
    return folder.as_posix()


def draft(spark: SparkSession, path: Path, name: str, *, file_format: str | None = None,
          options: dict[str, str] | None = None, label: str | None = None,
          landing_root: Path | None = None) -> Draft:
    """Profile the landing files at ``path`` (a folder or one file) and draft the contract ``name``."""
    files = landing_files(path)
    notes = [f"profiled the first {MAX_FILES} of {len(files)} files"] if len(files) > MAX_FILES else []
    files = files[:MAX_FILES]
    file_format = file_format or format_of(files)
    with tempfile.TemporaryDirectory(prefix="contract-draft-") as scratch:
        reader = DraftReader(spark, Path(scratch))
        options = detect_options(reader, files[0], file_format, options or {})
        contract = with_every_field(spark, files, reading_contract(name, file_format, path, options))
        sources = [c.source for c in contract.columns]
        if sources == [NO_FIELDS]:
            raise ConfigError(f"found no fields in {path} read as {file_format}. Fix: pass --format, or reader "
                              "options (--option KEY=VALUE) that match the files")
        frame = reader.text(files, contract).limit(MAX_ROWS + 1).toPandas()
    if len(frame) > MAX_ROWS:
        frame = frame.iloc[:MAX_ROWS]
        notes.append(f"profiled the first {MAX_ROWS} rows")
    malformed = int(frame[CORRUPT].notna().sum())
    frame = frame[frame[CORRUPT].isna()]
    if frame.empty:
        raise ConfigError(f"{path}: no well-formed {file_format} records to profile ({malformed} malformed). Fix: "
                          "pass --format, or reader options (--option KEY=VALUE) that match the files")
    header = options.get("header", "false").lower() == "true"
    names = column_names(sources, header)
    label_name = _label_name(sources, names, label, path)
    profiles = [profile_column(s, n, frame[s]) for s, n in zip(sources, names, strict=True)]
    profiles = [_as_label(p) if p.name == label_name else p for p in profiles]
    label_profile = next((p for p in profiles if p.name == label_name), None)
    exclude = [label_name] if label_name else []
    key = candidate_key(frame, profiles, exclude)
    if not key:
        key = [p.name for p in profiles if p.required and p.name not in exclude][:MAX_KEY_COLUMNS] or [names[0]]
        notes.append(f"no set of up to {MAX_KEY_COLUMNS} columns is unique and never null; review primary_key")
    event_time = guess_event_time(profiles, exclude)
    positive = None
    if label_profile and label_profile.type == "string" and label_profile.distinct == 2:
        positive = positive_value(label_profile.values)
    folder = path if path.is_dir() else path.parent
    if path.is_file():
        notes.append(f"only {path.name} was profiled; bronze reads every file in {folder}")
    return Draft(name, file_format, files, contract_path(folder, landing_root), options, profiles, len(frame),
                 malformed, key, event_time, guess_gold_timestamp(profiles, key, event_time), label_profile,
                 positive, notes)


def _label_name(sources: Sequence[str], names: Sequence[str], label: str | None, path: Path) -> str | None:
    """The contract name of the ``--label`` column, given by its name in the file or in the draft."""
    if label is None:
        return None
    for source, name in zip(sources, names, strict=True):
        if label in (source, name):
            return name
    raise ConfigError(f"--label {label!r} is not a column of {path}; its columns are {list(sources)}. "
                      "Fix: pass one of them")


def _as_label(profile: ColumnProfile) -> ColumnProfile:
    """A true/false label stays text so that ``positive`` maps it to 1/0 like any two-valued label."""
    return replace(profile, type="string") if profile.type == "boolean" else profile


# --- writing ------------------------------------------------------------------------------------


def _flow(value: Any) -> str:
    """One YAML value on one line (strings such as yes, no or 1 are quoted)."""
    return yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=1 << 20).strip().removesuffix(
        "\n...").removesuffix("...").strip()


def column_spec(profile: ColumnProfile, draft: Draft) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if profile.source != profile.name:
        spec["source"] = profile.source
    spec["type"] = profile.type
    if profile.required:
        spec["required"] = True
    in_key = profile.name in draft.primary_key
    if profile.minimum is not None and not in_key:
        spec["min"], spec["max"] = profile.minimum, profile.maximum
    if profile.categorical and not in_key and (draft.label is None or profile.name != draft.label.name):
        spec["categorical"] = True
    if profile.type == "string" and profile.values and not in_key and (
            profile.categorical or (draft.label is not None and profile.name == draft.label.name)):
        spec["allowed"] = sorted(profile.values)
    return spec


def _many_values(profile: ColumnProfile) -> bool:
    """Text with many distinct values: an identifier or free text rather than a category."""
    return profile.type == "string" and profile.distinct > MAX_CATEGORIES


def contract_yaml(draft: Draft) -> str:
    """The draft contract as YAML, with the comments that say what to review."""
    files = f"{len(draft.files)} file" + ("s" if len(draft.files) != 1 else "")
    lines = [
        f"# DRAFT data contract of the {draft.name} source: review every line before relying on it.",
        f"# Written by `python -m {PACKAGE} contract draft` on {date.today().isoformat()} from {draft.rows} rows of "
        f"{files} ({draft.file_format}).",
        "# Types, required, allowed values and min/max describe those rows only: widen or tighten them to what",
        "# the source promises. The primary key is the smallest column set that is unique and never null there.",
        *[f"# Note: {note}." for note in draft.notes],
        f"name: {draft.name}",
        "description: " + _flow(f"Drafted from {', '.join(f.name for f in draft.files[:3])}; describe the source."),
        f"format: {draft.file_format}",
    ]
    if draft.options:
        lines.append("options:")
        lines += [f"  {key}: {_flow(str(value))}" for key, value in draft.options.items()]
    lines += [
        "# Relative paths are inside the landing volume (local: .local/volumes/...; Databricks:",
        "# /Volumes/<catalog>/<schema>/landing/). Absolute paths and cloud URIs are used as they are.",
        *(["# On Databricks: copy the files into the landing volume and make this relative, e.g. raw/"
           + draft.name + "."] if draft.path.startswith("/") else []),
        f"path: {_flow(draft.path)}",
        f"primary_key: {_flow(draft.primary_key)}",
        f"event_time: {draft.event_time or 'null'}" + (
            "" if draft.event_time else "  # no timestamp column: the ingest time decides which row is latest"),
    ]
    if draft.label:
        lines += ["label:", f"  column: {draft.label.name}"]
        if draft.positive is not None:
            lines.append(f"  positive: {_flow([draft.positive.lower()])}  # REVIEW: the value that means 1 (of "
                         f"{', '.join(draft.label.values)}); the other is 0")
        elif draft.label.type == "string":
            lines.append(f"  # REVIEW: {draft.label.distinct} values; a classification label needs positive: "
                         "[the values that mean 1]")
    lines.append("columns:")
    lines += [f"  {p.name}: {_flow(column_spec(p, draft))}" + (f"  # {p.distinct} distinct values" * _many_values(p))
              for p in draft.profiles]
    lines += [
        "quality:",
        "  # The silver stage fails when more than this share of a batch is quarantined or malformed.",
        "  quarantine_threshold: 0.05",
        f"  expectations_file: conf/expectations/{draft.name}.json",
        "gold:",
        f"  table: {draft.name}",
        f"  keys: {_flow(draft.primary_key)}",
        f"  timestamp: {draft.gold_timestamp}",
    ]
    if draft.gold_columns:
        lines.append("  columns:")
        lines += [f"    {p.name}: {p.name}" + ("  # REVIEW: many distinct values; a feature?" * _many_values(p))
                  for p in draft.gold_columns]
    return "\n".join(lines) + "\n"


def expectations_json(draft: Draft) -> str:
    """Versioned Great Expectations beyond the column checks; add table-level ones here."""
    return json.dumps({"expectations": [
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},
    ]}, indent=2) + "\n"


def output_files(root: Path, name: str) -> list[Path]:
    return [root / "conf" / "contracts" / f"{name}.yml", root / "conf" / "expectations" / f"{name}.json"]


def check_writable(root: Path, name: str, force: bool) -> None:
    if not NAME.match(name):
        raise ConfigError(f"--name {name!r} must be lowercase letters, digits and _ (it names the source's tables). "
                          "Fix: e.g. --name " + (re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "my_source"))
    existing = [p for p in output_files(root, name) if p.exists()]
    if existing and not force:
        verb = "exists" if len(existing) == 1 else "exist"
        raise ConfigError(f"{' and '.join(str(p) for p in existing)} already {verb}. Fix: pass --force to overwrite, "
                          "or choose another --name")


def write_draft(draft: Draft, root: Path) -> list[Path]:
    """Write both files after checking that the project's contract loader accepts them."""
    texts = [contract_yaml(draft), expectations_json(draft)]
    with tempfile.TemporaryDirectory() as scratch:
        for target, text in zip(output_files(Path(scratch), draft.name), texts, strict=True):
            target.parent.mkdir(parents=True)
            target.write_text(text, encoding="utf-8")
        load_contract(output_files(Path(scratch), draft.name)[0], Path(scratch))
    written = output_files(root, draft.name)
    for target, text in zip(written, texts, strict=True):
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return written


def summary(draft: Draft, written: Sequence[Path], root: Path) -> list[str]:
    def shown(path: Path) -> str:
        return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)

    by_name = {p.name: p for p in draft.profiles}
    options = ", ".join(f"{k}={v!r}" for k, v in draft.options.items()) or "none"
    lines = [*(f"wrote {shown(p)}" for p in written),
             f"profiled {draft.rows} rows of {len(draft.files)} file(s) as {draft.file_format} (options: {options})"
             + (f"; {draft.malformed} malformed records skipped" if draft.malformed else ""),
             "primary key: " + ", ".join(k + (f" (source {by_name[k].source!r})" if by_name[k].source != k else "")
                                         for k in draft.primary_key),
             f"event time: {draft.event_time or 'none'}; gold timestamp: {draft.gold_timestamp}",
             f"columns: {len(draft.profiles)} ({sum(p.required for p in draft.profiles)} required, "
             f"{sum(p.categorical for p in draft.profiles)} categorical)"]
    if draft.label:
        lines.append(f"label: {draft.label.name} (" + (
            f"positive: {draft.positive.lower()!r}: review it" if draft.positive is not None
            else f"{draft.label.distinct} values: set label.positive" if draft.label.type == "string"
            else f"{draft.label.type}: a regression target, or 1/0") + ")")
    lines += [f"note: {note}" for note in draft.notes]
    lines.append(f"next: review {shown(written[0])}, then run: python -m {PACKAGE} run ingest --target local")
    return lines


def main(root: Path, path: Path, name: str, *, label: str | None = None, file_format: str | None = None,
         option_pairs: Sequence[str] = (), force: bool = False, landing_root: Path | None = None,
         spark: SparkSession | None = None) -> int:
    """The ``contract draft`` command: checks that cost nothing come before the engine starts."""
    check_writable(root, name, force)
    options = parse_options(option_pairs)
    files = landing_files(path)
    server = None
    if spark is None:
        spark, server = start_sail()
    try:
        result = draft(spark, path, name, file_format=file_format or format_of(files), options=options,
                       label=label, landing_root=landing_root)
    finally:
        if server is not None:
            stop_engine(spark, server)
    print("\n".join(summary(result, write_draft(result, root), root)))
    return 0
