"""Data contracts: one YAML file per source in ``conf/contracts/`` describes where the raw
files are, their columns and types, keys, event time, label, row-level expectations and
the gold table.  Pointing a contract at another dataset retargets ingestion with no code edits.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from . import schema as file_schema
from .config import ConfigError, check_schema, load_yaml, yaml_error
from .names import INGEST_COLUMNS, LABEL

FORMATS = ("json", "csv", "parquet")
TYPES = ("string", "int", "long", "double", "boolean", "date", "timestamp")
NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
# Versioned expectation files may use these row-level Great Expectations types; each is
# also applied row by row so that failing rows can be quarantined with its name.
ROW_LEVEL = {
    "expect_column_values_to_not_be_null",
    "expect_column_values_to_be_between",
    "expect_column_values_to_be_in_set",
    "expect_column_values_to_not_be_in_set",
    "expect_column_values_to_match_regex",
}
COLUMN_KEYS = {"source", "type", "required", "min", "max", "allowed", "pattern", "categorical", "sensitive", "format",
               "description",
               "period",
               "true_values", "false_values",
               "decimal_separator"}
TOP_KEYS = {"name", "description", "format", "path", "options", "primary_key", "event_time", "label", "columns",
            "quality", "gold", "features"}
GOLD_KEYS = {"table", "keys", "group_by", "timestamp", "columns", "fill_missing_periods"}
FEATURE_KEYS = {"lags", "windows", "changes", "calendar"}
# Step of the zero-filled period grid of an aggregating gold table.
FILL_STEPS = ("day", "week", "month")
# Periods a date or timestamp column's values may be required to start (``period: month``).
PERIODS = ("day", "week", "month", "quarter", "year")
# Value sanity defaults: event times at most this many days ahead; records of at most this many bytes.
MAX_FUTURE_DAYS = 1.0
MAX_RECORD_BYTES = 1_000_000
# Parts of the gold timestamp the features stage can add as calendar features.
CALENDAR_PARTS = ("day_of_week", "day_of_month", "day_of_year", "week_of_year", "month", "quarter", "year")


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    source: str = ""
    required: bool = False
    min: float | None = None
    max: float | None = None
    allowed: tuple[str, ...] | None = None
    pattern: str | None = None
    categorical: bool = False
    # A protected attribute: the fairness gate compares the model across its groups; never a model input.
    sensitive: bool = False
    format: str | None = None
    decimal_separator: str = "."
    # The period every value must start (a date column of monthly snapshots: month); None: any value.
    period: str | None = None
    true_values: tuple[str, ...] = ("true", "yes", "y", "1", "t")
    false_values: tuple[str, ...] = ("false", "no", "n", "0", "f")


@dataclass(frozen=True)
class Expectation:
    """A Great Expectations expectation (type + kwargs) with a short readable name."""

    type: str
    kwargs: dict[str, Any]

    @property
    def column(self) -> str | None:
        return self.kwargs.get("column")

    @property
    def name(self) -> str:
        short = self.type.removeprefix("expect_column_values_to_").removeprefix("expect_")
        short = short.replace("not_be_", "not_").removeprefix("be_")
        return f"{short}({self.column})" if self.column else short

    @property
    def row_level(self) -> bool:
        return self.type in ROW_LEVEL


@dataclass(frozen=True)
class Label:
    column: str
    positive: tuple[str, ...] = ()


@dataclass(frozen=True)
class Gold:
    """The gold table: one row per key of silver (row-level columns), or, with ``group_by``, one
    row per group with aggregate columns (e.g. units per product per day)."""

    table: str
    keys: tuple[str, ...]
    timestamp: str
    columns: dict[str, str]
    # Group name -> SQL expression over silver (a column name when it is the column itself).
    group_by: dict[str, str] = field(default_factory=dict)
    # Zero-filling of missing periods of an aggregated table: the grid step and the filled values.
    fill_every: str | None = None
    fill_values: dict[str, float] = field(default_factory=dict)

    @property
    def aggregated(self) -> bool:
        return bool(self.group_by)

    @property
    def entity_keys(self) -> list[str]:
        """The keys without the period: what features, training and scoring join on."""
        return [k for k in self.keys if k != self.timestamp]


@dataclass(frozen=True)
class Features:
    """Forecasting features of the gold table, each asked for by name: nothing is generated for
    a column that is not named.  Lags and windows read strictly earlier rows of the same entity
    (``label`` is the label's own history); ``changes`` is a column minus its previous value."""

    lags: dict[str, tuple[int, ...]] = field(default_factory=dict)
    windows: dict[str, tuple[int, ...]] = field(default_factory=dict)
    changes: tuple[str, ...] = ()
    calendar: tuple[str, ...] = ()


@dataclass(frozen=True)
class Contract:
    name: str
    format: str
    path: str
    primary_key: tuple[str, ...]
    event_time: str | None
    columns: tuple[Column, ...]
    gold: Gold
    label: Label | None = None
    features: Features = field(default_factory=Features)
    options: dict[str, str] = field(default_factory=dict)
    quarantine_threshold: float = 0.1
    # Value sanity: rows with an event time more than this many days ahead (None: no bound), or
    # whose raw record exceeds this many bytes, are quarantined with the reason.
    max_future_days: float | None = MAX_FUTURE_DAYS
    max_record_bytes: int | None = MAX_RECORD_BYTES
    extra_expectations: tuple[Expectation, ...] = ()
    source_file: Path | None = None

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def sensitive_columns(self) -> list[str]:
        """Gold columns that carry a ``sensitive: true`` column as it is (checked when the contract loads)."""
        return [c.name for c in self.columns if c.sensitive]

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    @property
    def bronze_table(self) -> str:
        return f"bronze_{self.name}"

    @property
    def silver_table(self) -> str:
        return f"silver_{self.name}"

    @property
    def staging_table(self) -> str:
        return f"silver_staging_{self.name}"

    @property
    def quarantine_table(self) -> str:
        return f"quarantine_{self.name}"

    @property
    def gold_table(self) -> str:
        return f"gold_{self.gold.table}"

    def expectations(self) -> list[Expectation]:
        """The suite: expectations derived from the columns, then the versioned extra ones."""
        derived = []
        for col in self.columns:
            if col.required or col.name in self.primary_key:
                derived.append(Expectation("expect_column_values_to_not_be_null", {"column": col.name}))
            if col.min is not None or col.max is not None:
                derived.append(Expectation("expect_column_values_to_be_between",
                                           {"column": col.name, "min_value": col.min, "max_value": col.max}))
            if col.allowed:
                derived.append(Expectation("expect_column_values_to_be_in_set",
                                           {"column": col.name, "value_set": list(col.allowed)}))
            if col.pattern:
                derived.append(Expectation("expect_column_values_to_match_regex",
                                           {"column": col.name, "regex": col.pattern}))
        return derived + list(self.extra_expectations)


def _fail(path: Path, key: str, message: str) -> ConfigError:
    return ConfigError(f"{path}: {key}: {message}")


def _column(path: Path, name: str, spec: Any) -> Column:
    if not NAME.match(str(name)):
        suggestion = re.sub(r"[^a-z0-9_]+", "_", str(name).lower()).strip("_") or "column"
        raise _fail(path, f"columns.{name}", "column names must be lowercase letters, digits and _. Fix: "
                    f"columns.{suggestion} with source: {name} reads the file's column under that name")
    if isinstance(spec, str):
        spec = {"type": spec}
    if not isinstance(spec, dict):
        raise _fail(path, f"columns.{name}", "must be a type name or a mapping with 'type'")
    unknown = set(spec) - COLUMN_KEYS
    if unknown:
        raise _fail(path, f"columns.{name}", f"unknown key(s) {sorted(unknown)}; allowed: {sorted(COLUMN_KEYS)}")
    ctype = spec.get("type", "string")
    if ctype not in TYPES:
        raise _fail(path, f"columns.{name}.type", f"{ctype!r} is not one of {', '.join(TYPES)}")
    period = spec.get("period")
    if period is not None and (ctype not in ("date", "timestamp") or period not in PERIODS):
        raise _fail(path, f"columns.{name}.period", f"{period!r}: a date or timestamp column's period is one of "
                    f"{', '.join(PERIODS)}")
    allowed = spec.get("allowed")
    return Column(
        name=name,
        type=ctype,
        source=str(spec.get("source", name)),
        required=bool(spec.get("required", False)),
        min=spec.get("min"),
        max=spec.get("max"),
        allowed=tuple(str(v) for v in allowed) if allowed else None,
        pattern=spec.get("pattern"),
        categorical=bool(spec.get("categorical", False)),
        sensitive=bool(spec.get("sensitive", False)),
        format=spec.get("format"),
        decimal_separator=str(spec.get("decimal_separator", ".")),
        period=period,
        true_values=tuple(str(v).lower() for v in spec.get("true_values", Column.true_values)),
        false_values=tuple(str(v).lower() for v in spec.get("false_values", Column.false_values)),
    )


def _expectations_file(path: Path, root: Path, rel: str, columns: set[str]) -> tuple[Expectation, ...]:
    file = root / rel
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise _fail(path, "quality.expectations_file", f"{rel} does not exist") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{file}: not valid JSON: {exc}") from exc
    items = raw.get("expectations") if isinstance(raw, dict) else None
    if not isinstance(items, list):
        shape = '{"expectations": [ {"type": "expect_...", "kwargs": {...} }, ... ]}'
        raise ConfigError(f"{file}: expected {shape}")
    result = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not str(item.get("type", "")).startswith("expect_"):
            raise ConfigError(f"{file}: expectations[{i}]: needs a 'type' starting with expect_")
        kwargs = dict(item.get("kwargs") or {})
        column = kwargs.get("column")
        if column is not None and column not in columns:
            raise ConfigError(f"{file}: expectations[{i}]: column {column!r} is not in the contract")
        result.append(Expectation(item["type"], kwargs))
    return tuple(result)


def _group_by(path: Path, raw: Any, names: set[str]) -> dict[str, str]:
    """``group_by`` items are silver columns or ``{name: SQL expression}`` (e.g. ``day: to_date(sold_at)``)."""
    if not isinstance(raw, list) or not raw:
        raise _fail(path, "gold.group_by", "must be a list of columns or {name: expression} items")
    groups: dict[str, str] = {}
    for item in raw:
        if isinstance(item, str):
            if item not in names | set(INGEST_COLUMNS):
                raise _fail(path, "gold.group_by", f"{item!r} is not a column. Fix: name a column or write "
                            "one item as name: <SQL expression>")
            groups[item] = item
        elif isinstance(item, dict) and len(item) == 1:
            (name, expr), = item.items()
            groups[str(name)] = str(expr)
        else:
            raise _fail(path, "gold.group_by", f"{item!r} is neither a column nor one name: expression item")
    return groups


def _gold(path: Path, raw: Any, names: set[str], label: Label | None) -> Gold:
    if not isinstance(raw, dict):
        raise _fail(path, "gold", "must be a mapping with table, keys (or group_by) and timestamp")
    unknown = set(raw) - GOLD_KEYS
    if unknown:
        raise _fail(path, "gold", f"unknown key(s) {sorted(unknown)}; allowed: {sorted(GOLD_KEYS)}")
    for key in ("table", "timestamp"):
        if key not in raw:
            raise _fail(path, f"gold.{key}", "is required")
    columns = {str(k): str(v) for k, v in (raw.get("columns") or {}).items()}
    group_by = _group_by(path, raw["group_by"], names) if raw.get("group_by") is not None else {}
    if group_by:
        keys = tuple(group_by)
        if raw.get("keys") not in (None, list(keys)):
            raise _fail(path, "gold.keys", f"an aggregating gold table is keyed by its group_by {list(keys)}. "
                        "Fix: drop gold.keys")
        if not columns:
            raise _fail(path, "gold.columns", "an aggregating gold table needs aggregate columns, e.g. "
                        "units: sum(quantity)")
        if label and label.column not in columns:
            raise _fail(path, "label.column", f"{label.column!r}: with gold.group_by the label is an aggregate. "
                        f"Fix: name one of gold.columns {sorted(columns)}")
    else:
        if "keys" not in raw:
            raise _fail(path, "gold.keys", "is required (or gold.group_by for an aggregating table)")
        keys = tuple(raw["keys"])
        for key in keys:
            if key not in names:
                raise _fail(path, "gold.keys", f"{key!r} is not a column")
    timestamp = str(raw["timestamp"])
    if group_by and timestamp not in group_by:
        raise _fail(path, "gold.timestamp", f"{timestamp!r} must be one of gold.group_by {list(group_by)}")
    if not group_by and timestamp not in names | set(INGEST_COLUMNS):
        raise _fail(path, "gold.timestamp", f"{timestamp!r} is not a column nor one of {INGEST_COLUMNS}")
    if not NAME.match(str(raw["table"])):
        raise _fail(path, "gold.table", f"{raw['table']!r} must be lowercase letters, digits and _")
    fill = raw.get("fill_missing_periods")
    every, values = None, {}
    if fill is not None:
        if not group_by:
            raise _fail(path, "gold.fill_missing_periods", "fills the periods of an aggregating table. "
                        "Fix: add gold.group_by or remove it")
        if not isinstance(fill, dict) or fill.get("every") not in FILL_STEPS:
            raise _fail(path, "gold.fill_missing_periods.every", f"must be one of {', '.join(FILL_STEPS)}")
        values = {str(k): float(v) for k, v in (fill.get("values") or {}).items()}
        for name in values:
            if name not in columns:
                raise _fail(path, "gold.fill_missing_periods.values", f"{name!r} is not one of gold.columns")
        every = fill["every"]
    return Gold(table=str(raw["table"]), keys=keys, timestamp=timestamp, columns=columns, group_by=group_by,
                fill_every=every, fill_values=values)


def _gold_feature_columns(gold: Gold, columns: tuple[Column, ...], keys: tuple[str, ...], event_time: str | None,
                          label: Label | None) -> set[str]:
    """The gold columns features can be asked for: the gold columns (or the silver columns gold
    copies when it lists none), and ``label``."""
    if gold.columns:
        names = set(gold.columns)
    else:
        names = {c.name for c in columns} - {*keys, *gold.keys, gold.timestamp, event_time}
    if label:
        names.discard(label.column)
    return names | {LABEL}


def _periods(path: Path, key: str, raw: Any, allowed: set[str]) -> dict[str, tuple[int, ...]]:
    if not isinstance(raw, dict):
        raise _fail(path, key, "maps gold columns (or label) to lists of periods, e.g. {label: [1, 7]}")
    out = {}
    for name, periods in raw.items():
        if name not in allowed:
            raise _fail(path, f"{key}.{name}", f"is not a gold column; choose from {sorted(allowed)}")
        values = periods if isinstance(periods, list) else [periods]
        if not values or any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in values):
            raise _fail(path, f"{key}.{name}", f"{periods!r}: periods are whole numbers >= 1")
        out[str(name)] = tuple(values)
    return out


def _features(path: Path, raw: Any, allowed: set[str]) -> Features:
    if not raw:
        return Features()
    if not isinstance(raw, dict) or set(raw) - FEATURE_KEYS:
        raise _fail(path, "features", f"allowed keys are {sorted(FEATURE_KEYS)}")
    changes = tuple(raw.get("changes") or ())
    for name in changes:
        if name not in allowed - {LABEL}:
            raise _fail(path, "features.changes", f"{name!r} is not a gold column (the label's change would "
                        "include its own value: use lags of label instead)")
    calendar = tuple(raw.get("calendar") or ())
    for part in calendar:
        if part not in CALENDAR_PARTS:
            raise _fail(path, "features.calendar", f"{part!r} is not one of {', '.join(CALENDAR_PARTS)}")
    return Features(lags=_periods(path, "features.lags", raw.get("lags") or {}, allowed),
                    windows=_periods(path, "features.windows", raw.get("windows") or {}, allowed),
                    changes=changes, calendar=calendar)


def load_contract(path: Path, root: Path) -> Contract:
    try:
        raw = load_yaml(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such contract") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(yaml_error(path, exc)) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a contract is a mapping (key: value lines), not {type(raw).__name__}. Fix: "
                          "start from a shipped contract or `contract draft`")
    check_schema(path, file_schema.ContractFile, raw)
    unknown = set(raw) - TOP_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {sorted(unknown)}; allowed: {sorted(TOP_KEYS)}")
    for key in ("name", "format", "path", "primary_key", "columns", "gold"):
        if key not in raw:
            raise _fail(path, key, "is required")
    name = str(raw["name"])
    if not NAME.match(name):
        raise _fail(path, "name", f"{name!r} must be lowercase letters, digits and _")
    if raw["format"] not in FORMATS:
        raise _fail(path, "format", f"{raw['format']!r} is not one of {', '.join(FORMATS)}")
    if not isinstance(raw["columns"], dict) or not raw["columns"]:
        raise _fail(path, "columns", "must map column names to types")
    columns = tuple(_column(path, n, s) for n, s in raw["columns"].items())
    names = {c.name for c in columns}

    keys = tuple(raw["primary_key"]) if isinstance(raw["primary_key"], list) else (raw["primary_key"],)
    for key in keys:
        if key not in names:
            raise _fail(path, "primary_key", f"{key!r} is not a column. Fix: use columns of this contract "
                        f"({', '.join(sorted(names))})")
    event_time = raw.get("event_time")
    if event_time is not None and event_time not in names:
        raise _fail(path, "event_time", f"{event_time!r} is not a column (use null when the source has none: "
                    "the ingest time then stands in)")

    label = None
    if raw.get("label"):
        spec = raw["label"] if isinstance(raw["label"], dict) else {"column": raw["label"]}
        aggregated = isinstance(raw.get("gold"), dict) and raw["gold"].get("group_by") is not None
        if spec.get("column") not in names and not aggregated:  # an aggregate label is checked with gold
            raise _fail(path, "label.column", f"{spec.get('column')!r} is not a column")
        label = Label(spec["column"], tuple(str(v).lower() for v in spec.get("positive", ())))

    quality = raw.get("quality") or {}
    threshold = float(quality.get("quarantine_threshold", 0.1))
    if not 0 <= threshold <= 1:
        raise _fail(path, "quality.quarantine_threshold", f"{threshold} must be between 0 and 1")
    future = quality.get("max_future_days", MAX_FUTURE_DAYS)
    record_bytes = quality.get("max_record_bytes", MAX_RECORD_BYTES)
    for key, value in (("max_future_days", future), ("max_record_bytes", record_bytes)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value < 0):
            raise _fail(path, f"quality.{key}", f"{value!r} must be a number >= 0 (null: no bound)")
    extra = ()
    if quality.get("expectations_file"):
        extra = _expectations_file(path, root, quality["expectations_file"], names)

    gold = _gold(path, raw.get("gold"), names, label)
    for column in (c for c in columns if c.sensitive):
        if {**gold.columns, **gold.group_by}.get(column.name) != column.name:
            raise _fail(path, f"columns.{column.name}.sensitive", "the fairness gate groups the holdout by this "
                        f"column, so gold must carry it as it is. Fix: add `{column.name}: {column.name}` to "
                        "gold.columns (it is never a model input), or remove `sensitive: true`")
    features = _features(path, raw.get("features"), _gold_feature_columns(gold, columns, keys, event_time, label))

    options = {str(k): str(v) for k, v in (raw.get("options") or {}).items()}
    # The reader's dateFormat / timestampFormat are the default format of date / timestamp columns:
    # bronze keeps text on every platform, and silver parses it.
    defaults = {"date": options.get("dateFormat"), "timestamp": options.get("timestampFormat")}
    columns = tuple(replace(c, format=defaults[c.type]) if c.type in defaults and not c.format and defaults[c.type]
                    else c for c in columns)
    return Contract(
        name=name, format=raw["format"], path=str(raw["path"]), primary_key=keys, event_time=event_time,
        columns=columns, gold=gold, label=label, features=features, options=options, quarantine_threshold=threshold,
        max_future_days=None if future is None else float(future),
        max_record_bytes=None if record_bytes is None else int(record_bytes),
        extra_expectations=extra, source_file=path,
    )


def source_contract(root: Path, source: str) -> Contract:
    """The contract conf/project.yml's ``source`` names, or an error listing the contracts there are."""
    contracts = load_contracts(root)
    if source not in contracts:
        raise ConfigError(f"{root / 'conf' / 'project.yml'}: source: {source!r} names no contract in conf/contracts/. "
                          f"Fix: use one of {', '.join(contracts)}")
    return contracts[source]


def load_contracts(root: Path) -> dict[str, Contract]:
    folder = root / "conf" / "contracts"
    contracts = {}
    for path in sorted(folder.glob("*.yml")):
        contract = load_contract(path, root)
        if contract.name in contracts:
            raise ConfigError(f"{path}: name {contract.name!r} is also used by another contract")
        contracts[contract.name] = contract
    if not contracts:
        raise ConfigError(f"{folder}: no contracts (*.yml). Fix: describe at least one source")
    return contracts
