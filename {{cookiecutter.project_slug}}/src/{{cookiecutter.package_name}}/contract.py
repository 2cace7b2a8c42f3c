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

from .config import ConfigError
from .names import INGEST_COLUMNS

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
COLUMN_KEYS = {"source", "type", "required", "min", "max", "allowed", "pattern", "categorical", "format", "description",
               "true_values", "false_values",
               "decimal_separator"}
TOP_KEYS = {"name", "description", "format", "path", "options", "primary_key", "event_time", "label", "columns",
            "quality", "gold"}


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
    format: str | None = None
    decimal_separator: str = "."
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
    table: str
    keys: tuple[str, ...]
    timestamp: str
    columns: dict[str, str]

    @property
    def entity_keys(self) -> list[str]:
        """The keys without the period: what features, training and scoring join on."""
        return [k for k in self.keys if k != self.timestamp]


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
    options: dict[str, str] = field(default_factory=dict)
    quarantine_threshold: float = 0.1
    extra_expectations: tuple[Expectation, ...] = ()
    source_file: Path | None = None

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

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
        raise _fail(path, f"columns.{name}", "column names must be lowercase letters, digits and _ "
                    "(rename the source column with options or a view)")
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
        format=spec.get("format"),
        decimal_separator=str(spec.get("decimal_separator", ".")),
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


def load_contract(path: Path, root: Path) -> Contract:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such contract") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a contract is a mapping")
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
            raise _fail(path, "primary_key", f"{key!r} is not a column")
    event_time = raw.get("event_time")
    if event_time is not None and event_time not in names:
        raise _fail(path, "event_time", f"{event_time!r} is not a column (use null when the source has none: "
                    "the ingest time then stands in)")

    label = None
    if raw.get("label"):
        spec = raw["label"] if isinstance(raw["label"], dict) else {"column": raw["label"]}
        if spec.get("column") not in names:
            raise _fail(path, "label.column", f"{spec.get('column')!r} is not a column")
        label = Label(spec["column"], tuple(str(v).lower() for v in spec.get("positive", ())))

    quality = raw.get("quality") or {}
    threshold = float(quality.get("quarantine_threshold", 0.1))
    if not 0 <= threshold <= 1:
        raise _fail(path, "quality.quarantine_threshold", f"{threshold} must be between 0 and 1")
    extra = ()
    if quality.get("expectations_file"):
        extra = _expectations_file(path, root, quality["expectations_file"], names)

    gold_raw = raw["gold"]
    for key in ("table", "keys", "timestamp"):
        if key not in (gold_raw or {}):
            raise _fail(path, f"gold.{key}", "is required")
    gold = Gold(
        table=str(gold_raw["table"]),
        keys=tuple(gold_raw["keys"]),
        timestamp=str(gold_raw["timestamp"]),
        columns={str(k): str(v) for k, v in (gold_raw.get("columns") or {}).items()},
    )
    for key in gold.keys:
        if key not in names:
            raise _fail(path, "gold.keys", f"{key!r} is not a column")
    if gold.timestamp not in names | set(INGEST_COLUMNS):
        raise _fail(path, "gold.timestamp", f"{gold.timestamp!r} is not a column nor one of {INGEST_COLUMNS}")
    if not NAME.match(gold.table):
        raise _fail(path, "gold.table", f"{gold.table!r} must be lowercase letters, digits and _")

    options = {str(k): str(v) for k, v in (raw.get("options") or {}).items()}
    # The reader's dateFormat / timestampFormat are the default format of date / timestamp columns:
    # bronze keeps text on every platform, and silver parses it.
    defaults = {"date": options.get("dateFormat"), "timestamp": options.get("timestampFormat")}
    columns = tuple(replace(c, format=defaults[c.type]) if c.type in defaults and not c.format and defaults[c.type]
                    else c for c in columns)
    return Contract(
        name=name, format=raw["format"], path=str(raw["path"]), primary_key=keys, event_time=event_time,
        columns=columns, gold=gold, label=label, options=options, quarantine_threshold=threshold,
        extra_expectations=extra, source_file=path,
    )


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
