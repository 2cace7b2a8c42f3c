"""One schema for the configuration files: ``conf/project.yml``, ``conf/targets.yml`` and every
contract in ``conf/contracts/``.  Unknown or misspelled keys, wrong types and out-of-range values
are found at every level before any stage runs, and each one is reported on its own line with the
file, the key path, the bad value and the fix (``problems``): pydantic finds them, this module
says them in the project's words.  Checks that need several files (the source names a contract,
a gold column is an aggregate) stay with the loaders in config.py and contract.py."""

from __future__ import annotations

import difflib
import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

NAME_PATTERN = r"^[a-z_][a-z0-9_]*$"
# Metrics whose values are probabilities or shares: a bound outside [0, 1] can never be met.
UNIT_INTERVAL_METRICS = ("auc", "pr_auc", "f1", "mape")
PROBLEM_METRICS = {"classification": ("auc", "pr_auc", "log_loss", "f1"), "regression": ("rmse", "mae", "mape")}
# Metrics the fairness gate compares between the groups of a sensitive column (see ml/fairness.py).
FAIRNESS_METRICS = {"classification": ("selection_rate", "true_positive_rate", "false_positive_rate", "auc"),
                    "regression": ("mae", "rmse")}


class Strict(BaseModel):
    """No unknown keys, no silent conversions ("yes" is not true, "1%" is not a number)."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)


def _scalar(value: Any) -> Any:
    if isinstance(value, dict | list):
        raise ValueError("must be a single value (text, number or true/false), not a " + type(value).__name__)
    return value


Scalar = Annotated[Any, BeforeValidator(_scalar)]
Name = Annotated[str, Field(pattern=NAME_PATTERN, description="lowercase letters, digits and _, e.g. churn_events")]


def _as_list(value: Any) -> Any:
    """``key: x`` is shorthand for ``key: [x]`` where a list of names is expected."""
    return [value] if isinstance(value, str | int) and not isinstance(value, bool) else value


def _mapping_shorthand(key: str) -> typing.Callable[[Any], Any]:
    def expand(value: Any) -> Any:
        return {key: value} if isinstance(value, str) else value
    return expand


# --- conf/project.yml ---------------------------------------------------------------------------


class Bounds(Strict):
    min: float | None = Field(None, description="a number, e.g. {min: 0.6}")
    max: float | None = Field(None, description="a number, e.g. {max: 0.5}")

    @model_validator(mode="after")
    def _ordered(self) -> Bounds:
        if self.min is None and self.max is None:
            raise ValueError("needs min and/or max, e.g. {min: 0.6}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}; swap them")
        return self


def _check_switch(value: Any) -> Any:
    """``baseline: false`` or ``fairness: false`` turns that check off; absent, empty or true means the defaults."""
    if value is False:
        return None
    return {} if value is None or value is True else value


class Baseline(Strict):
    metric: str | None = Field(None, description="a metric the naive baseline is compared on, e.g. log_loss or rmse")
    min_improvement: float = Field(0.05, ge=0, lt=1, description="a share of the baseline's error from 0 to below 1, "
                                   "e.g. 0.05 (5% better than the best baseline)")
    season_length: int | None = Field(None, ge=1, description="a whole number of periods >= 1 (52 for weekly data "
                                      "with a yearly season), or null for none")


class Fairness(Strict):
    max_difference: dict[str, Annotated[float, Field(ge=0)]] = Field(
        default_factory=dict, description="metric: the largest gap allowed between two groups, e.g. "
        "{selection_rate: 0.15, auc: 0.1}")
    min_group_rows: int = Field(30, ge=1, description="a whole number of holdout rows >= 1: smaller groups are "
                                "reported, not gated")


class Validation(Strict):
    mode: Literal["enabled", "dry_run", "disabled"] = Field("enabled", description="enabled, dry_run or disabled")
    baseline: Annotated[Baseline | None, BeforeValidator(_check_switch)] = Field(
        default_factory=Baseline, description="a mapping {metric, min_improvement, season_length}, or false")
    fairness: Annotated[Fairness | None, BeforeValidator(_check_switch)] = Field(
        default_factory=Fairness, description="a mapping {max_difference, min_group_rows}, or false")
    thresholds: dict[str, Bounds] = Field(default_factory=dict, description="metric: {min: x} or {max: x}, "
                                          "e.g. auc: {min: 0.6}")
    champion_tolerance: float = Field(0.0, ge=0, description="a number >= 0 written as a share, e.g. 0.01 (not 1%): "
                                      "how much worse than @champion the candidate may be")


class Training(Strict):
    estimator: str = Field("", description="an estimator of ml/estimators.py, e.g. lightgbm")
    seed: int = Field(42, ge=0, description="a whole number >= 0, e.g. 42")
    validation_fraction: float = Field(0.2, gt=0, lt=1, description="a share between 0 and 1, e.g. 0.2")
    holdout: Literal["auto", "time", "random", "group"] = Field("auto", description="auto, time, random or group")
    min_rows: int = Field(200, ge=1, description="a whole number >= 1, e.g. 200")
    num_boost_round: int = Field(500, ge=1, description="a whole number >= 1, e.g. 500")
    early_stopping_rounds: int = Field(30, ge=0, description="a whole number >= 0, e.g. 30")
    params: dict[str, Any] = Field(default_factory=dict, description="estimator parameters, e.g. {learning_rate: 0.05}")
    tuning_trials: int = Field(0, ge=0, description="a whole number >= 0 (0: no tuning)")
    segment_by: Annotated[list[str], BeforeValidator(_as_list)] = Field(
        default_factory=list, description="a list of columns, e.g. [region], or [] for one model")


class Inference(Strict):
    batch_periods: int = Field(1, ge=1, description="a whole number of periods >= 1")
    score_challenger: bool = Field(True, description="true or false: score @challenger on each batch too (shadow)")
    min_shadow_batches: int = Field(0, ge=0, description="a whole number >= 0 (0: promotion does not wait for "
                                    "shadow batches)")


class Serving(Strict):
    mode: Literal["off", "canary", "shadow"] = Field("shadow", description="off, canary or shadow")
    canary_share: float = Field(0.1, ge=0, le=1, description="a share from 0 to 1, e.g. 0.1 (10% of requests)")
    workload_size: Literal["Small", "Medium", "Large"] = Field("Small", description="Small, Medium or Large")
    scale_to_zero_targets: Annotated[list[str], BeforeValidator(_as_list)] = Field(
        default_factory=lambda: ["dev", "test"], description="a list of targets, e.g. [dev, test]")
    rate_limit_per_minute: int = Field(600, ge=1, description="a whole number of calls per user per minute >= 1")
    refresh_seconds: float = Field(2.0, gt=0, description="a number of seconds above 0, e.g. 2")


class Monitoring(Strict):
    psi_threshold: float = Field(0.2, gt=0, description="a number above 0 (0.1-0.25 is usual)")
    bins: int = Field(10, ge=2, le=100, description="a whole number from 2 to 100")
    min_rows: int = Field(100, ge=1, description="a whole number of rows >= 1")
    performance: dict[str, Bounds] = Field(default_factory=dict, description="metric: {min: x} or {max: x}")


class SecretRef(Strict):
    scope: str = Field(min_length=1, description="a Databricks secret scope, e.g. observability")
    key: str = Field(min_length=1, description="a key in that scope, e.g. pushgateway_url")


class Metrics(Strict):
    pushgateway_url: str = Field("", description="the Pushgateway's URL, e.g. http://pushgateway:9091, or \"\" for "
                                 "none (the textfile is written either way)")
    pushgateway_secret: SecretRef | None = Field(None, description="{scope: <secret scope>, key: <key>}: on "
                                                 "Databricks the Pushgateway URL is read from this secret, or null")

    @field_validator("pushgateway_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("is not a URL: it should start with http:// or https://")
        return value


class ProjectFile(Strict):
    problem_type: Literal["classification", "regression"] = Field(description="classification or regression")
    source: Name = Field(description="the name of a contract in conf/contracts/")
    feature_store: bool = Field(True, description="true or false (yes/no unquoted)")
    lookback_days: int | None = Field(None, ge=1, description="a whole number of days >= 1, or null for no limit")
    model_name: str = Field("model", min_length=1, description="a registered model name, e.g. customer_churn_model")
    experiment: str = Field("experiment", min_length=1, description="an MLflow experiment name")
    training: Training = Field(default_factory=Training, description="a mapping of training settings")
    validation: Validation = Field(default_factory=Validation, description="a mapping of validation settings")
    inference: Inference = Field(default_factory=Inference, description="a mapping, e.g. {batch_periods: 1}")
    monitoring: Monitoring = Field(default_factory=Monitoring, description="a mapping of monitoring settings")
    serving: Annotated[Serving | None, BeforeValidator(_check_switch)] = Field(
        None, description="a mapping {mode, canary_share, ...}, or false")
    metrics: Metrics = Field(default_factory=Metrics, description="a mapping {pushgateway_url, pushgateway_secret}")

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, raw: Any) -> Any:
        """``training:`` with nothing under it is YAML null: the defaults, like an empty mapping."""
        if isinstance(raw, dict):
            return {k: {} if v is None and k in ("training", "validation", "inference", "monitoring", "metrics") else v
                    for k, v in raw.items()}
        return raw


def project_problems(project: ProjectFile) -> list[tuple[str, Any, str, str]]:
    """What only the whole file can tell: metric names of this problem type and their ranges."""
    found = []
    allowed = PROBLEM_METRICS[project.problem_type]
    sections = {"validation.thresholds": project.validation.thresholds,
                "monitoring.performance": project.monitoring.performance}
    fairness = project.validation.fairness
    for metric in fairness.max_difference if fairness else ():
        if metric not in FAIRNESS_METRICS[project.problem_type]:
            found.append((f"validation.fairness.max_difference.{metric}", metric,
                          f"is not a group metric of {project.problem_type}",
                          f"use one of {', '.join(FAIRNESS_METRICS[project.problem_type])}"))
    for section, bounds_by_metric in sections.items():
        for metric, bounds in bounds_by_metric.items():
            if metric not in allowed:
                found.append((f"{section}.{metric}", metric, f"is not a {project.problem_type} metric",
                              f"use one of {', '.join(allowed)}"))
            elif metric in UNIT_INTERVAL_METRICS:
                for side in ("min", "max"):
                    value = getattr(bounds, side)
                    if value is not None and not 0 <= value <= 1:
                        found.append((f"{section}.{metric}.{side}", value, f"is outside 0..1, the range of {metric}",
                                      "a share such as 0.6 (not 60 or 1.5)"))
    return found


# --- conf/targets.yml ---------------------------------------------------------------------------


class LocalTarget(Strict):
    platform: Literal["local"] = Field(description="local (Databricks targets are declared in databricks.yml)")
    catalog: str = Field(min_length=1, description="a catalog name, e.g. dev")
    schema_name: str = Field(alias="schema", min_length=1, description="a schema name, e.g. customer_churn")
    auto_approve: bool = Field(False, description="true or false")


class TargetsFile(Strict):
    targets: dict[str, LocalTarget] = Field(min_length=1, description="a mapping of target name to settings, "
                                            "e.g. local: {platform: local, catalog: dev, schema: ...}")


# --- conf/contracts/*.yml -----------------------------------------------------------------------


def _regex(value: str | None) -> str | None:
    if value is not None:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"is not a valid regular expression ({exc})") from None
    return value


def _datetime_format(value: str | None) -> str | None:
    """A Spark datetime pattern; quotes inside it escape literal text ('T'), not the whole pattern."""
    if value is not None:
        if not value.strip():
            raise ValueError("is empty")
        if value.count("'") % 2:
            raise ValueError("has an unbalanced ' (quotes only wrap literal text, e.g. yyyy-MM-dd'T'HH:mm:ss)")
        if len(value) > 2 and value[0] == value[-1] and value[0] in "'\"" and value.count(value[0]) == 2:
            raise ValueError("is wrapped in quotes; write the pattern alone, e.g. yyyy-MM-dd HH:mm:ss")
    return value


class ColumnSpec(Strict):
    type: Literal["string", "int", "long", "double", "boolean", "date", "timestamp"] = Field(
        "string", description="string, int, long, double, boolean, date or timestamp")
    source: str | None = Field(None, min_length=1, description="the column's name in the file")
    description: str | None = Field(None, description="text")
    required: bool = Field(False, description="true or false")
    min: float | None = Field(None, description="a number")
    max: float | None = Field(None, description="a number")
    allowed: list[Scalar] | None = Field(None, min_length=1, description="a list, e.g. [basic, premium] (in brackets)")
    pattern: str | None = Field(None, description="a regular expression, e.g. ^C[0-9]{6}$")
    categorical: bool = Field(False, description="true or false")
    sensitive: bool = Field(False, description="true or false: the fairness gate compares the model across its "
                            "groups, and it is never a model input")
    format: str | None = Field(None, description="a Spark datetime pattern without quotes around it, e.g. yyyy-MM-dd")
    decimal_separator: Literal[".", ","] = Field(".", description="'.' or ','")
    true_values: list[Scalar] | None = Field(None, min_length=1, description="a list, e.g. [yes, y, 1]")
    false_values: list[Scalar] | None = Field(None, min_length=1, description="a list, e.g. [no, n, 0]")
    period: Literal["day", "week", "month", "quarter", "year"] | None = Field(
        None, description="the period every value starts: day, week, month, quarter or year (date or timestamp)")

    @field_validator("pattern")
    @classmethod
    def _pattern_is_regex(cls, value: str | None) -> str | None:
        return _regex(value)

    @field_validator("format")
    @classmethod
    def _format_is_pattern(cls, value: str | None) -> str | None:
        return _datetime_format(value)

    @model_validator(mode="after")
    def _ordered(self) -> ColumnSpec:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}; swap them")
        return self


class LabelSpec(Strict):
    column: str = Field(min_length=1, description="a column (or, with gold.group_by, a gold column)")
    positive: list[Scalar] = Field(default_factory=list, description='a list of the positive values, e.g. ["yes", "1"]')


class Quality(Strict):
    quarantine_threshold: float = Field(0.1, ge=0, le=1, description="a share from 0 to 1, e.g. 0.05")
    expectations_file: str | None = Field(None, min_length=1, description="a JSON file path, e.g. "
                                          "conf/expectations/<name>.json")
    max_future_days: float | None = Field(1.0, ge=0, description="days an event time may be ahead, e.g. 1 "
                                          "(null: no bound)")
    max_record_bytes: int | None = Field(1_000_000, ge=1, description="bytes of the largest raw record, e.g. "
                                         "1000000 (null: no bound)")


def _group_item(value: Any) -> Any:
    """A group is a column name, or one ``name: SQL expression``."""
    return {value: value} if isinstance(value, str) else value


GroupItem = Annotated[dict[str, str], BeforeValidator(_group_item), Field(min_length=1, max_length=1)]


class FillMissingPeriods(Strict):
    every: Literal["day", "week", "month"] = Field(description="day, week or month")
    values: dict[str, float] = Field(default_factory=dict, description="gold column: number, e.g. {units: 0}")


class GoldSpec(Strict):
    table: Name = Field(description="a table name: lowercase letters, digits and _")
    keys: Annotated[list[str], BeforeValidator(_as_list)] | None = Field(None, min_length=1,
                                                                         description="a list of columns")
    group_by: list[GroupItem] | None = Field(None, min_length=1, description="a list of columns or "
                                             "{name: SQL expression} items")
    timestamp: str = Field(min_length=1, description="the gold table's time column")
    columns: dict[str, str] | None = Field(None, description="gold column: SQL expression over silver")
    fill_missing_periods: FillMissingPeriods | None = Field(None, description="{every: week, values: {units: 0}}")


Periods = Annotated[list[Annotated[int, Field(ge=1)]], BeforeValidator(_as_list), Field(min_length=1)]
CalendarPart = Literal["day_of_week", "day_of_month", "day_of_year", "week_of_year", "month", "quarter", "year"]


class FeaturesSpec(Strict):
    lags: dict[str, Periods] = Field(default_factory=dict, description="column: [periods >= 1], e.g. {label: [1, 7]}")
    windows: dict[str, Periods] = Field(default_factory=dict, description="column: [rows >= 1], e.g. {price: [4]}")
    changes: list[str] = Field(default_factory=list, description="a list of gold columns")
    calendar: list[CalendarPart] = Field(default_factory=list, description="a list of day_of_week, day_of_month, "
                                         "day_of_year, week_of_year, month, quarter, year")


class ContractFile(Strict):
    name: Name = Field(description="the source name: lowercase letters, digits and _")
    description: str | None = Field(None, description="text")
    format: Literal["json", "csv", "parquet"] = Field(description="json, csv or parquet")
    path: str = Field(min_length=1, description="the landing folder, e.g. raw/<name>")
    options: dict[str, Scalar] = Field(default_factory=dict, description="reader options, e.g. {header: \"true\"}")
    primary_key: Annotated[list[str], BeforeValidator(_as_list)] = Field(min_length=1,
                                                                         description="a list of columns")
    event_time: str | None = Field(None, description="a timestamp column, or null")
    label: Annotated[LabelSpec | None, BeforeValidator(_mapping_shorthand("column"))] = Field(
        None, description="a column, or {column: ..., positive: [...]}")
    columns: dict[Name, Annotated[ColumnSpec, BeforeValidator(_mapping_shorthand("type"))]] = Field(
        min_length=1, description="column name: type, or column name: {type: ..., ...}")
    quality: Quality = Field(default_factory=Quality, description="{quarantine_threshold: 0.05}")
    gold: GoldSpec = Field(description="a mapping with table, keys (or group_by) and timestamp")
    features: FeaturesSpec = Field(default_factory=FeaturesSpec, description="{lags, windows, changes, calendar}")

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, raw: Any) -> Any:
        if isinstance(raw, dict):
            return {k: {} if v is None and k in ("quality", "features", "options") else v for k, v in raw.items()}
        return raw


# --- turning pydantic's errors into the project's -----------------------------------------------


def _unwrap(annotation: Any) -> list[Any]:
    """The concrete types an annotation may hold (Annotated and Optional removed)."""
    while typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (Union, types.UnionType):
        return [t for arg in typing.get_args(annotation) if arg is not type(None) for t in _unwrap(arg)]
    return [annotation]


def _locate(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[Any, type[BaseModel] | None]:
    """The field (its FieldInfo) at ``loc`` and the model that holds it."""
    candidates: list[Any] = [model]
    info, holder = None, None
    for part in loc:
        following: list[Any] = []
        for candidate in candidates:
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                for name, field in candidate.model_fields.items():
                    if part in (name, field.alias):
                        info, holder = field, candidate
                        following += _unwrap(field.annotation)
            elif typing.get_origin(candidate) is list and isinstance(part, int):
                following += _unwrap(typing.get_args(candidate)[0])
            elif typing.get_origin(candidate) is dict and isinstance(part, str):
                following += _unwrap(typing.get_args(candidate)[1])
        if not following:
            return info, holder
        candidates = following
    return info, holder


def _keys(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _parent(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model a mapping at ``loc`` is read as (for the list of keys it accepts)."""
    if not loc:
        return model
    info, _ = _locate(model, loc)
    if info is None:
        return None
    for candidate in _unwrap(info.annotation):
        if typing.get_origin(candidate) is dict:
            candidate = _unwrap(typing.get_args(candidate)[1])[0]
        if typing.get_origin(candidate) is list:
            candidate = _unwrap(typing.get_args(candidate)[0])[0]
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _line(path: Path, model: type[BaseModel], error: Any) -> str:
    loc = tuple(error["loc"])
    key = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in loc).replace(".[", "[") or "(top level)"
    kind, value = error["type"], error.get("input")
    if kind == "extra_forbidden":
        parent = _parent(model, loc[:-1])
        allowed = _keys(parent) if parent else []
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        fix = f"did you mean {close[0]}?" if close else "remove it"
        where = ".".join(str(p) for p in loc[:-1]) or "the top level"
        return f"{path}: {key}: unknown key. Fix: {fix} ({where} accepts {', '.join(allowed)})"
    if kind == "missing":
        info, _ = _locate(model, loc)
        hint = f" ({info.description})" if info is not None and info.description else ""
        return f"{path}: {key}: is required. Fix: add it{hint}"
    info, _ = _locate(model, loc)
    fix = info.description if info is not None and info.description else "see the comments in the template's file"
    message = error["msg"].removeprefix("Value error, ")
    for subject in ("Input should", "String should", "List should", "Dictionary should"):
        message = message.replace(subject, "should", 1)
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        message = f"must be a mapping, not {type(value).__name__}"
    elif kind == "list_type":
        message = f"must be a list, not {type(value).__name__}"
    return f"{path}: {key}: {_shown(value)} {message[0].lower()}{message[1:]}. Fix: {fix}"


def _without_renamed(model: type[BaseModel], errors: list[Any]) -> list[Any]:
    """A misspelled key is one mistake, not two: drop "X is required" when an unknown key beside
    it is close to X (the unknown-key line already says "did you mean X?")."""
    renamed = set()
    for error in errors:
        if error["type"] == "extra_forbidden":
            loc = tuple(error["loc"])
            parent = _parent(model, loc[:-1])
            for close in difflib.get_close_matches(str(loc[-1]), _keys(parent) if parent else [], n=1):
                renamed.add((*loc[:-1], close))
    return [e for e in errors if not (e["type"] == "missing" and tuple(e["loc"]) in renamed)]


def problems(path: Path, model: type[BaseModel], raw: Any) -> tuple[BaseModel | None, list[str]]:
    """The file read as ``model``, or None and one line per problem."""
    try:
        parsed = model.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        lines = list(dict.fromkeys(_line(path, model, error) for error in _without_renamed(model, errors)))
        return None, lines
    extra: list[tuple[str, Any, str, str]] = project_problems(parsed) if isinstance(parsed, ProjectFile) else []
    return (None if extra else parsed), [f"{path}: {key}: {_shown(value)} {what}. Fix: {fix}"
                                         for key, value, what, fix in extra]
