"""Per-target settings: the Databricks targets and their catalog and schema from ``databricks.yml``
(the bundle), local targets from ``conf/targets.yml``, both in the project root."""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import schema as file_schema

BUNDLE_FILE = "databricks.yml"
REFERENCE = re.compile(r"\$\{([A-Za-z0-9_.\-]+)\}")
PROJECT_DIR_VARIABLE = f"{str(__package__).upper()}_PROJECT_DIR"


class ConfigError(ValueError):
    """A configuration file or value is wrong; the message names the file, key and fix."""


@dataclass(frozen=True)
class TargetConfig:
    name: str
    platform: str
    catalog: str
    schema: str
    # Let the pipeline approve its own validated versions (local only: on Databricks a person or CI approves).
    auto_approve: bool = False


def project_root(start: Path | None = None) -> Path:
    """The directory holding ``databricks.yml``: searched upward from ``start`` (default: the
    working directory), then from this package's own location (editable installs, workspace files)."""
    env = os.environ.get(PROJECT_DIR_VARIABLE)
    if env:
        return Path(env).resolve()
    for origin in (start or Path.cwd(), Path(__file__).resolve()):
        for candidate in (origin, *origin.parents):
            if (candidate / "databricks.yml").is_file() and (candidate / "conf").is_dir():
                return candidate
    raise ConfigError(
        "cannot find the project directory (a folder with databricks.yml and conf/). "
        f"Fix: run from inside the project or set {PROJECT_DIR_VARIABLE}"
    )


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` through libyaml when PyYAML has it: the pure-Python parser took seconds
    per run over the configuration, the contracts and the bundle."""
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _read_mapping(path: Path, restore: str) -> dict[str, Any]:
    try:
        raw = load_yaml(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: missing. Fix: restore {restore} from the template") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(yaml_error(path, exc)) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping (key: value lines), not "
                          f"{type(raw).__name__}. Fix: restore the layout of {restore} from the template")
    return raw


def yaml_error(path: Path, exc: yaml.YAMLError) -> str:
    """One line naming the file, line and column of a YAML syntax error (PyYAML counts from 0)."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
    what = " ".join(str(part) for part in (getattr(exc, "context", None), getattr(exc, "problem", None)) if part)
    return (f"{where}: not valid YAML: {what or exc}. Fix: check the indentation and quoting on that line "
            "(quote values containing ': ', '#', '{' or a leading '*', '&', '%', '@')")


def check_schema(path: Path, model: type[file_schema.BaseModel], raw: object) -> None:
    """Every problem of the file against its schema, reported together, one line each."""
    _, found = file_schema.problems(path, model, raw)
    if found:
        raise ConfigError("\n".join(found) if len(found) == 1 else
                          f"{len(found)} problems in {path}:\n" + "\n".join(found))


def read_conf(root: Path, name: str) -> tuple[Path, dict[str, object]]:
    """A mapping from ``conf/<name>``, with errors that name the file."""
    path = root / "conf" / name
    return path, _read_mapping(path, f"conf/{name}")


def read_bundle(root: Path) -> tuple[Path, dict[str, Any]]:
    """``databricks.yml`` with the ``targets`` and ``variables`` of its included files merged in
    (includes are Go globs from the bundle root, as the Databricks CLI reads them: no recursive ``**``)."""
    path = root / BUNDLE_FILE
    bundle = _read_mapping(path, BUNDLE_FILE)
    for pattern in bundle.get("include") or []:
        for name in sorted(glob.glob(re.sub(r"\*\*+", "*", str(pattern)), root_dir=root)):
            if not name.endswith((".yml", ".yaml")):
                continue
            included = _read_mapping(root / name, name)
            for section in ("targets", "variables"):
                for key, value in (included.get(section) or {}).items():
                    merged = bundle.setdefault(section, {}) or {}
                    bundle[section] = merged
                    base = merged.get(key)
                    merged[key] = {**base, **value} if isinstance(base, dict) and isinstance(value, dict) else value
    return path, bundle


def bundle_variable(path: Path, bundle: dict[str, Any], target: str, name: str, depth: int = 0) -> str:
    """Variable ``name`` as the bundle sets it for ``target``: the target's ``variables`` override
    the default in the top-level ``variables``; ``${var.x}`` and ``${bundle.target}`` resolve."""
    overrides = ((bundle["targets"].get(target) or {}).get("variables")) or {}
    declared = (bundle.get("variables") or {}).get(name)
    if name in overrides:
        key, value = f"targets.{target}.variables.{name}", overrides[name]
        if isinstance(value, dict):  # the full form {default: ...}; a lookup has no value offline
            if "default" not in value:
                raise ConfigError(f"{path}: {key} has no default (a lookup cannot be read here). Fix: set "
                                  f"the {name} itself, e.g. `{name}: <name>`")
            value = value["default"]
    elif declared is not None:
        key, value = f"variables.{name}.default", declared.get("default") if isinstance(declared, dict) else declared
    else:
        raise ConfigError(f"{path}: variables.{name} is not declared. Fix: declare it in the top-level variables "
                          f"with a default, or set targets.{target}.variables.{name}")
    if value is None or value == "":
        raise ConfigError(f"{path}: targets.{target} has no {name}: neither targets.{target}.variables.{name} nor "
                          f"variables.{name}.default is set. Fix: set one of them")
    if isinstance(value, dict | list):
        raise ConfigError(f"{path}: {key} must be a name, not a {type(value).__name__}")
    return resolve_references(path, bundle, target, key, value, depth)


def resolve_references(path: Path, bundle: dict[str, Any], target: str, key: str, value: object,
                       depth: int = 0) -> str:
    """``value`` (found at ``key``) with ``${bundle.target}``, ``${bundle.name}`` and ``${var.x}`` resolved
    for ``target``, as ``databricks bundle`` would; any other reference only exists in a deployment."""

    def resolve(match: re.Match[str]) -> str:
        ref = match.group(1)
        if ref == "bundle.target":
            return target
        if ref == "bundle.name":
            return str((bundle.get("bundle") or {}).get("name", ""))
        if ref.startswith("var.") and depth < 10:
            return bundle_variable(path, bundle, target, ref[4:], depth + 1)
        shown = "${" + ref + "}"
        raise ConfigError(f"{path}: {key}: {shown} cannot be resolved outside a deployment. Fix: use a value, "
                          "${var.<name>} or ${bundle.target}")

    return REFERENCE.sub(resolve, str(value))


def bundle_tags(root: Path, target: str) -> dict[str, str]:
    """The cost tags as declared once, in ``databricks.yml`` ``presets.tags`` (a target's own
    ``presets.tags`` override a value), with ``${bundle.target}`` and ``${var.<name>}`` resolved for
    ``target``: the endpoint is billed like the jobs.  Not seen here: a ``--var`` given to ``bundle
    deploy`` and development mode's ``dev`` tag (set a target variable instead)."""
    path, bundle = read_bundle(root)
    declared = (bundle.get("presets") or {}).get("tags")
    if not isinstance(declared, dict) or not declared:
        raise ConfigError(f"{path}: presets.tags must map each cost tag to its value (project, cost_center, env, "
                          "owner). Fix: restore presets.tags from the template")
    own = ((((bundle.get("targets") or {}).get(target) or {}).get("presets") or {}).get("tags")) or {}
    return {str(key): resolve_references(path, bundle, target, f"presets.tags.{key}", value)
            for key, value in {**declared, **own}.items()}


def load_targets(root: Path) -> dict[str, TargetConfig]:
    """Every target: the local ones of ``conf/targets.yml``, then each target of ``databricks.yml``
    (platform databricks) with its ``catalog`` and ``schema`` variables.  On Databricks the jobs
    still pass the final names as parameters: development mode prefixes the schema (dev_<user>_)."""
    bundle_path, bundle = read_bundle(root)
    declared = bundle.get("targets")
    if not isinstance(declared, dict) or not declared:
        raise ConfigError(f"{bundle_path}: 'targets' must be a mapping of target name to settings. Fix: restore "
                          f"the targets of {BUNDLE_FILE} from the template")
    path, raw = read_conf(root, "targets.yml")
    for name in set(raw.get("targets") or {}) & set(declared) if isinstance(raw.get("targets"), dict) else ():
        raise ConfigError(f"{path}: targets.{name} is a Databricks target of {BUNDLE_FILE}. Fix: remove it "
                          f"here; set its catalog and schema in {BUNDLE_FILE} targets.{name}.variables")
    check_schema(path, file_schema.TargetsFile, raw)
    targets = raw.get("targets")
    if not isinstance(targets, dict) or not targets:
        raise ConfigError(f"{path}: 'targets' must be a mapping of target name to settings (the local target)")
    result = {}
    for name, settings in targets.items():
        if not isinstance(settings, dict):
            raise ConfigError(f"{path}: targets.{name} must be a mapping")
        if name in declared:
            raise ConfigError(f"{path}: targets.{name} is a Databricks target of {BUNDLE_FILE}. Fix: remove it "
                              f"here; set its catalog and schema in {BUNDLE_FILE} targets.{name}.variables")
        missing = [key for key in ("platform", "catalog", "schema") if not settings.get(key)]
        if missing:
            raise ConfigError(f"{path}: targets.{name} lacks {', '.join(missing)}")
        if settings["platform"] != "local":
            raise ConfigError(
                f"{path}: targets.{name}.platform is {settings['platform']!r}. Fix: use 'local'; Databricks "
                f"targets are declared in {BUNDLE_FILE}"
            )
        auto_approve = settings.get("auto_approve", False)
        if not isinstance(auto_approve, bool):
            raise ConfigError(f"{path}: targets.{name}.auto_approve must be true or false")
        result[name] = TargetConfig(name, "local", str(settings["catalog"]), str(settings["schema"]), auto_approve)
    for name, settings in declared.items():
        if settings is not None and not isinstance(settings, dict):
            raise ConfigError(f"{bundle_path}: targets.{name} must be a mapping")
        catalog = bundle_variable(bundle_path, bundle, name, "catalog")
        schema = bundle_variable(bundle_path, bundle, name, "schema")
        result[name] = TargetConfig(name, "databricks", catalog, schema)
    return result


def target_config(root: Path, name: str) -> TargetConfig:
    targets = load_targets(root)
    if name not in targets:
        raise ConfigError(f"unknown target {name!r}. Fix: use one of {', '.join(targets)} (local targets in "
                          f"conf/targets.yml, Databricks targets in {BUNDLE_FILE})")
    return targets[name]


@dataclass(frozen=True)
class TrainingConfig:
    # Which estimator of ml/estimators.py fits the model (ESTIMATORS there lists the choices;
    # empty: its DEFAULT_ESTIMATOR).
    estimator: str = ""
    seed: int = 42
    validation_fraction: float = 0.2
    # How the holdout is chosen: auto, time, random (stratified for classification) or group (by entity).
    holdout: str = "auto"
    min_rows: int = 200
    num_boost_round: int = 500
    early_stopping_rounds: int = 30
    params: dict[str, object] = field(default_factory=dict)
    tuning_trials: int = 0
    segment_by: list[str] = field(default_factory=list)


# The metrics ml/metrics.py's ``evaluate`` reports, per problem type (the gate checks these names).
METRICS = {"classification": ("auc", "pr_auc", "log_loss", "f1"), "regression": ("rmse", "mae", "mape")}
# F1 is left out of the baseline gate: a constant predictor's F1 depends only on an arbitrary cut-off.
BASELINE_METRICS = {"classification": ("log_loss", "auc", "pr_auc"), "regression": ("rmse", "mae", "mape")}
DEFAULT_BASELINE_METRIC = {"classification": "log_loss", "regression": "rmse"}
VALIDATION_MODES = ("enabled", "dry_run", "disabled")


@dataclass(frozen=True)
class BaselineGate:
    """The candidate must beat the best naive baseline on the same holdout by ``min_improvement``
    (a share of the baseline's error): a model that loses to "same as last week" is not worth serving."""

    metric: str
    min_improvement: float = 0.05
    # Regression: the seasonal-naive baseline uses the label this many periods earlier; None: no seasonal baseline.
    season_length: int | None = None


@dataclass(frozen=True)
class FairnessGate:
    """``validation.fairness``: per sensitive column, the largest gap allowed between two groups' metrics."""

    max_difference: dict[str, float] = field(default_factory=dict)
    # Groups with fewer holdout rows are reported but not gated (their metrics are noise).
    min_group_rows: int = 30


@dataclass(frozen=True)
class ValidationConfig:
    mode: str = "enabled"
    # Absolute bounds, e.g. {"auc": {"min": 0.6}}; empty: none.
    thresholds: dict[str, dict[str, float]] = field(default_factory=dict)
    champion_tolerance: float = 0.0
    # None: no baseline check (``baseline: false`` in conf/project.yml).
    baseline: BaselineGate | None = None
    # None: no fairness check (``fairness: false``).
    fairness: FairnessGate | None = field(default_factory=FairnessGate)


SERVING_MODES = ("off", "canary", "shadow")


@dataclass(frozen=True)
class ServingConfig:
    """``serving:``: what the real-time endpoint (Databricks) and the local router serve, and how."""

    # off: only @champion answers; canary: ``canary_share`` of requests are answered by @challenger;
    # shadow: @challenger answers a copy of every request, logged and never returned.
    mode: str = "shadow"
    canary_share: float = 0.1
    workload_size: str = "Small"
    # Targets whose endpoint scales to zero when idle (cheap, with a cold start on the first request).
    scale_to_zero_targets: tuple[str, ...] = ("dev", "test")
    # AI gateway rate limit: calls per user per minute.
    rate_limit_per_minute: int = 600
    # How often the local router re-reads the aliases: a promotion or rollback is served within this.
    refresh_seconds: float = 2.0


@dataclass(frozen=True)
class MetricsConfig:
    """``metrics:``: where a run's figures go besides its textfile, which is always written (see
    ``ml/observability.py``)."""

    # A Prometheus Pushgateway that receives every run's figures; empty: none.
    pushgateway_url: str = ""
    # (scope, key) of a Databricks secret holding the URL instead: read where secret scopes exist, so
    # staging and prod read the same name from their own workspace; locally the URL above is used.
    pushgateway_secret: tuple[str, str] | None = None


@dataclass(frozen=True)
class ProjectConfig:
    problem_type: str
    source: str
    feature_store: bool = True
    lookback_days: int | None = None
    model_name: str = "model"
    experiment: str = "experiment"
    training: TrainingConfig = field(default_factory=TrainingConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    inference: dict[str, Any] = field(default_factory=dict)
    monitoring: dict[str, Any] = field(default_factory=dict)
    # None: no real-time serving (``serving: false``, or no ``serving`` section).
    serving: ServingConfig | None = None
    metrics: MetricsConfig = field(default_factory=MetricsConfig)


PROBLEM_TYPES = ("classification", "regression")
HOLDOUTS = ("auto", "time", "random", "group")


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def load_baseline_gate(path: Path, raw: object, problem_type: str) -> BaselineGate | None:
    """``validation.baseline``: absent or empty means the defaults, ``false`` turns the check off."""
    if raw is False:
        return None
    if raw is None or raw is True:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: validation.baseline must be a mapping (metric, min_improvement, season_length) "
                          "or false. Fix: e.g. `baseline: {metric: rmse, min_improvement: 0.05}`")
    unknown = sorted(set(raw) - set(BaselineGate.__dataclass_fields__))
    if unknown:
        raise ConfigError(f"{path}: validation.baseline has unknown key(s) {unknown}. Fix: use metric, "
                          "min_improvement and season_length")
    allowed = BASELINE_METRICS[problem_type]
    metric = raw.get("metric") or DEFAULT_BASELINE_METRIC[problem_type]
    if metric not in allowed:
        raise ConfigError(f"{path}: validation.baseline.metric is {metric!r}, which {problem_type} cannot compare "
                          f"with a naive baseline. Fix: use one of {', '.join(allowed)}")
    improvement = raw.get("min_improvement", BaselineGate.min_improvement)
    if not _number(improvement) or not 0 <= improvement < 1:
        raise ConfigError(f"{path}: validation.baseline.min_improvement is {improvement!r}. Fix: a share of the "
                          "baseline's error from 0 to below 1, e.g. 0.05 (5% better than the best baseline)")
    season = raw.get("season_length")
    if season is not None:
        if problem_type != "regression":
            raise ConfigError(f"{path}: validation.baseline.season_length only applies to regression (the "
                              "seasonal-naive baseline); classification compares with the prior. Fix: remove it")
        if not isinstance(season, int) or isinstance(season, bool) or season < 1:
            raise ConfigError(f"{path}: validation.baseline.season_length is {season!r}. Fix: a whole number of "
                              "periods >= 1 (52 for weekly data with a yearly season), or null for none")
    return BaselineGate(str(metric), float(improvement), season)


def load_validation(path: Path, raw: object, problem_type: str) -> ValidationConfig:
    """``validation:`` of conf/project.yml, every field checked, with the fix in each error."""
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: validation must be a mapping (mode, baseline, thresholds, champion_tolerance)")
    unknown = sorted(set(raw) - set(ValidationConfig.__dataclass_fields__))
    if unknown:
        raise ConfigError(f"{path}: validation has unknown key(s) {unknown}. Fix: use "
                          f"{', '.join(ValidationConfig.__dataclass_fields__)}")
    mode = raw.get("mode", "enabled")
    if mode not in VALIDATION_MODES:
        raise ConfigError(f"{path}: validation.mode is {mode!r}. Fix: use enabled, dry_run or disabled")
    thresholds = raw.get("thresholds") or {}
    if not isinstance(thresholds, dict):
        raise ConfigError(f"{path}: validation.thresholds must map a metric to bounds, e.g. "
                          "`auc: {min: 0.6}`")
    for metric, bounds in thresholds.items():
        if metric not in METRICS[problem_type]:
            raise ConfigError(f"{path}: validation.thresholds.{metric} is not a {problem_type} metric. Fix: use one "
                              f"of {', '.join(METRICS[problem_type])}")
        if not isinstance(bounds, dict) or not bounds or set(bounds) - {"min", "max"} or not all(
                _number(v) for v in bounds.values()):
            raise ConfigError(f"{path}: validation.thresholds.{metric} is {bounds!r}. Fix: give min and/or max as "
                              f"numbers, e.g. `{metric}: " + "{max: 0.5}`")
    tolerance = raw.get("champion_tolerance", 0.0)
    if not _number(tolerance) or tolerance < 0:
        raise ConfigError(f"{path}: validation.champion_tolerance is {tolerance!r}. Fix: a number >= 0 (how much "
                          "worse than @champion the candidate may be on the same holdout)")
    return ValidationConfig(str(mode), {m: {k: float(v) for k, v in b.items()} for m, b in thresholds.items()},
                            float(tolerance), load_baseline_gate(path, raw.get("baseline"), problem_type),
                            load_fairness_gate(raw.get("fairness")))


def load_fairness_gate(raw: object) -> FairnessGate | None:
    """``validation.fairness`` (its fields were checked against the schema): ``false`` turns it off."""
    if raw is False:
        return None
    raw = raw if isinstance(raw, dict) else {}
    return FairnessGate({str(m): float(v) for m, v in (raw.get("max_difference") or {}).items()},
                        int(raw.get("min_group_rows", FairnessGate.min_group_rows)))


def load_project(root: Path) -> ProjectConfig:
    """``conf/project.yml``: problem type, training source, feature store, model and training settings."""
    path, raw = read_conf(root, "project.yml")
    check_schema(path, file_schema.ProjectFile, raw)
    problem_type = raw.get("problem_type")
    if problem_type not in PROBLEM_TYPES:
        raise ConfigError(f"{path}: problem_type is {problem_type!r}. Fix: use one of {PROBLEM_TYPES}")
    if not raw.get("source"):
        raise ConfigError(f"{path}: source is missing. Fix: name a contract in conf/contracts/")
    training_raw = raw.get("training") or {}
    known = set(TrainingConfig.__dataclass_fields__)
    unknown = set(training_raw) - known
    if unknown:
        raise ConfigError(f"{path}: training has unknown key(s) {sorted(unknown)}; allowed: {sorted(known)}")
    training = TrainingConfig(**training_raw)
    if not 0 < training.validation_fraction < 1:
        raise ConfigError(f"{path}: training.validation_fraction must be between 0 and 1")
    if training.holdout not in HOLDOUTS:
        raise ConfigError(f"{path}: training.holdout is {training.holdout!r}. Fix: use one of {', '.join(HOLDOUTS)}")
    feature_store = raw.get("feature_store", True)
    if isinstance(feature_store, str):
        feature_store = feature_store.lower() in ("yes", "true", "1")
    validation = load_validation(path, raw.get("validation"), problem_type)
    inference = {"batch_periods": 1, "score_challenger": True, "min_shadow_batches": 0, **(raw.get("inference") or {})}
    if not isinstance(inference["batch_periods"], int) or inference["batch_periods"] < 1:
        raise ConfigError(f"{path}: inference.batch_periods must be a whole number >= 1")
    monitoring = {"psi_threshold": 0.2, "bins": 10, "min_rows": 100, "performance": {}, **(raw.get("monitoring") or {})}
    if float(monitoring["psi_threshold"]) <= 0:
        raise ConfigError(f"{path}: monitoring.psi_threshold must be above 0 (0.1-0.25 is usual)")
    if not isinstance(monitoring["bins"], int) or not 2 <= monitoring["bins"] <= 100:
        raise ConfigError(f"{path}: monitoring.bins must be a whole number from 2 to 100")
    lookback = raw.get("lookback_days")
    return ProjectConfig(
        problem_type=problem_type,
        source=str(raw["source"]),
        feature_store=bool(feature_store),
        lookback_days=int(lookback) if lookback else None,
        model_name=str(raw.get("model_name", "model")),
        experiment=str(raw.get("experiment", "experiment")),
        training=training,
        validation=validation,
        inference=inference,
        monitoring=monitoring,
        serving=load_serving(raw.get("serving", False)),
        metrics=load_metrics(raw.get("metrics")),
    )


def load_metrics(raw: object) -> MetricsConfig:
    """``metrics:`` (its fields were checked against the schema): absent or empty means no Pushgateway."""
    raw = raw if isinstance(raw, dict) else {}
    secret = raw.get("pushgateway_secret")
    return MetricsConfig(str(raw.get("pushgateway_url") or ""),
                         (str(secret["scope"]), str(secret["key"])) if isinstance(secret, dict) else None)


def load_serving(raw: object) -> ServingConfig | None:
    """``serving:`` (its fields were checked against the schema): ``false`` means none, empty the defaults."""
    if raw is False:
        return None
    raw = raw if isinstance(raw, dict) else {}
    targets = raw.get("scale_to_zero_targets", ServingConfig.scale_to_zero_targets)
    return ServingConfig(**{**raw, "scale_to_zero_targets": tuple([targets] if isinstance(targets, str) else targets)})
