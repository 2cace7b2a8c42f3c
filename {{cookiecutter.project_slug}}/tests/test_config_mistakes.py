"""Configuration mistakes a careless edit makes, each stopped before any stage runs with one line
that names the file, the key path, the bad value and the fix.  Most go through the loaders the
run calls first; a few go through the command line to prove the exit code and that nothing was
written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from {{ cookiecutter.package_name }}.config import ConfigError, load_project, load_targets
from {{ cookiecutter.package_name }}.contract import load_contracts, source_contract

PROJECT = Path(__file__).resolve().parents[1]
Edit = Callable[[dict[str, Any]], Any]


def probability_metric(project: dict[str, Any]) -> str:
    """A metric whose values are shares (0..1) for this project's problem type."""
    return "auc" if project["problem_type"] == "classification" else "mape"


def check_configuration(root: Path) -> None:
    """What a run reads before its first stage."""
    load_targets(root)
    source_contract(root, load_project(root).source)


def contract_file(root: Path) -> Path:
    return root / "conf" / "contracts" / f"{load_project(root).source}.yml"


def files(root: Path) -> dict[str, Path]:
    return {"project": root / "conf" / "project.yml", "targets": root / "conf" / "targets.yml",
            "contract": contract_file(root)}


def nested(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for key in parents:
        if not isinstance(data.get(key), dict):
            data[key] = {}
        data = data[key]
    data[last] = value


def setting(dotted: str, value: Any) -> Edit:
    return lambda data: nested(data, dotted, value)


def rename(old: str, new: str) -> Edit:
    return lambda data: data.__setitem__(new, data.pop(old))


def drop(key: str) -> Edit:
    return lambda data: data.pop(key)


def threshold(section: str, bounds: dict[str, float]) -> Edit:
    return lambda data: nested(data, f"{section}.{probability_metric(data)}", bounds)


MISTAKES: list[tuple[str, str, Edit, str]] = [
    # conf/project.yml
    ("misspelled training", "project", rename("training", "trainig"),
     r"project.yml: trainig: unknown key. Fix: did you mean training\?"),
    ("misspelled validation", "project", rename("validation", "validaton"),
     r"project.yml: validaton: unknown key. Fix: did you mean validation\?"),
    ("feature_store maybe", "project", setting("feature_store", "maybe"),
     r"project.yml: feature_store: 'maybe' should be a valid boolean. Fix: true or false"),
    ("tolerance in percent", "project", setting("validation.champion_tolerance", "1%"),
     r"project.yml: validation.champion_tolerance: '1%' should be a valid number. Fix: .*0.01 \(not 1%\)"),
    ("negative tolerance", "project", setting("validation.champion_tolerance", -0.5),
     r"validation.champion_tolerance: -0.5 should be greater than or equal to 0. Fix"),
    ("probability threshold above 1", "project", threshold("validation.thresholds", {"min": 1.5}),
     r"project.yml: validation.thresholds.(auc|mape).min: 1.5 is outside 0..1.*Fix: a share"),
    ("probability alert bound in percent", "project", threshold("monitoring.performance", {"max": 60}),
     r"monitoring.performance.(auc|mape).max: 60(\.0)? is outside 0..1"),
    ("threshold min above max", "project", threshold("validation.thresholds", {"min": 0.9, "max": 0.1}),
     r"validation.thresholds.(auc|mape): .*min 0.9 is above max 0.1; swap them"),
    ("threshold for another problem type", "project", setting("validation.thresholds", {"accuracy": {"min": 0.9}}),
     r"validation.thresholds.accuracy: 'accuracy' is not a (classification|regression) metric. Fix: use one of"),
    ("thresholds as a list", "project", setting("validation.thresholds", ["auc"]),
     r"validation.thresholds: \['auc'\] must be a mapping, not list. Fix: metric: \{min: x\}"),
    ("misspelled threshold bound", "project", threshold("validation.thresholds", {"minimum": 0.5}),
     r"validation.thresholds.(auc|mape).minimum: unknown key. Fix: did you mean min\?"),
    ("problem type typo", "project", setting("problem_type", "classifcation"),
     r"project.yml: problem_type: 'classifcation' should be 'classification' or 'regression'"),
    ("source missing", "project", drop("source"), r"project.yml: source: is required. Fix: add it"),
    ("source names no contract", "project", setting("source", "churn_event"),
     r"project.yml: source: 'churn_event' names no contract in conf/contracts/. Fix: use one of"),
    ("negative seed", "project", setting("training.seed", -1),
     r"training.seed: -1 should be greater than or equal to 0. Fix: a whole number"),
    ("holdout share above 1", "project", setting("training.validation_fraction", 1.2),
     r"training.validation_fraction: 1.2 should be less than 1. Fix: a share between 0 and 1"),
    ("holdout strategy typo", "project", setting("training.holdout", "temporal"),
     r"training.holdout: 'temporal' should be 'auto', 'time', 'random' or 'group'"),
    ("min_rows quoted", "project", setting("training.min_rows", "200"),
     r"training.min_rows: '200' should be a valid integer. Fix"),
    ("zero boosting rounds", "project", setting("training.num_boost_round", 0),
     r"training.num_boost_round: 0 should be greater than or equal to 1"),
    ("fractional tuning trials", "project", setting("training.tuning_trials", 2.5),
     r"training.tuning_trials: 2.5 should be a valid integer"),
    ("segment_by as a mapping", "project", setting("training.segment_by", {"region": 1}),
     r"training.segment_by: \{'region': 1\} must be a list, not dict. Fix: a list of columns"),
    ("params as a list", "project", setting("training.params", ["learning_rate"]),
     r"training.params: \['learning_rate'\] must be a mapping, not list"),
    ("validation mode typo", "project", setting("validation.mode", "strict"),
     r"validation.mode: 'strict' should be 'enabled', 'dry_run' or 'disabled'"),
    ("negative baseline improvement", "project", setting("validation.baseline.min_improvement", -0.1),
     r"validation.baseline.min_improvement: -0.1 should be greater than or equal to 0"),
    ("zero batch periods", "project", setting("inference.batch_periods", 0),
     r"inference.batch_periods: 0 should be greater than or equal to 1"),
    ("negative shadow batches", "project", setting("inference.min_shadow_batches", -1),
     r"inference.min_shadow_batches: -1 should be greater than or equal to 0"),
    ("serving mode typo", "project", lambda d: d.__setitem__("serving", {"mode": "blue_green"}),
     r"serving.mode: 'blue_green' should be 'off', 'canary' or 'shadow'"),
    ("canary share as a percentage", "project", lambda d: d.__setitem__("serving", {"canary_share": 10}),
     r"serving.canary_share: 10 should be less than or equal to 1. Fix: a share from 0 to 1"),
    ("zero PSI threshold", "project", setting("monitoring.psi_threshold", 0),
     r"monitoring.psi_threshold: 0 should be greater than 0"),
    ("too many bins", "project", setting("monitoring.bins", 500),
     r"monitoring.bins: 500 should be less than or equal to 100. Fix: a whole number from 2 to 100"),
    ("negative lookback", "project", setting("lookback_days", -5),
     r"lookback_days: -5 should be greater than or equal to 1. Fix"),
    ("empty model name", "project", setting("model_name", ""),
     r"model_name: '' should have at least 1 character"),
    # conf/targets.yml
    ("unknown platform", "targets", setting("targets.local.platform", "laptop"),
     r"targets.yml: targets.local.platform: 'laptop' should be 'local'. Fix: local"),
    ("misspelled schema", "targets", lambda d: d["targets"]["local"].__setitem__("shema", d["targets"]["local"].pop(
        "schema")), r"targets.yml: targets.local.shema: unknown key. Fix: did you mean schema\?"),
    ("auto_approve as text", "targets", setting("targets.local.auto_approve", "yes please"),
     r"targets.local.auto_approve: 'yes please' should be a valid boolean"),
    ("catalog missing", "targets", lambda d: d["targets"]["local"].pop("catalog"),
     r"targets.yml: targets.local.catalog: is required"),
    ("targets as a list", "targets", setting("targets", ["local"]),
     r"targets.yml: targets: \['local'\] must be a mapping, not list"),
    # conf/contracts/<source>.yml
    ("allowed as a string", "contract", setting("columns.region.allowed", "north"),
     r"columns.region.allowed: 'north' must be a list, not str. Fix: a list, e.g. \[basic, premium\]"),
    ("column type typo", "contract", setting("columns.region.type", "strin"),
     r"columns.region.type: 'strin' should be 'string', 'int'"),
    ("misspelled column key", "contract", setting("columns.region.categorial", True),
     r"columns.region.categorial: unknown key. Fix: did you mean categorical\?"),
    ("quoted timestamp format", "contract", setting("columns.event_ts.format", "'yyyy-MM-dd HH:mm:ss'"),
     r"columns.event_ts.format: \"'yyyy-MM-dd HH:mm:ss'\" is wrapped in quotes"),
    ("unbalanced quote in format", "contract", setting("columns.event_ts.format", "yyyy-MM-dd'T HH:mm"),
     r"columns.event_ts.format: .* has an unbalanced '"),
    ("bad regular expression", "contract", setting("columns.region.pattern", "[a-"),
     r"columns.region.pattern: '\[a-' is not a valid regular expression"),
    ("column min above max", "contract", lambda d: d["columns"].__setitem__("region", {"type": "double", "min": 10,
                                                                                      "max": 1}),
     r"columns.region: .*min 10.0 is above max 1.0; swap them"),
    ("quarantine share above 1", "contract", setting("quality.quarantine_threshold", 5),
     r"quality.quarantine_threshold: 5 should be less than or equal to 1. Fix: a share from 0 to 1"),
    ("unknown file format", "contract", setting("format", "xml"),
     r"format: 'xml' should be 'json', 'csv' or 'parquet'"),
    ("empty path", "contract", setting("path", ""), r"path: '' should have at least 1 character"),
    ("misspelled gold table", "contract", lambda d: d["gold"].__setitem__("tabel", d["gold"].pop("table")),
     r"gold.tabel: unknown key. Fix: did you mean table\?"),
    ("gold table with spaces", "contract", setting("gold.table", "Gold Table"),
     r"gold.table: 'Gold Table' should match pattern .*Fix: a table name"),
    ("zero lag", "contract", setting("features.lags", {"label": [0]}),
     r"features.lags.label\[0\]: 0 should be greater than or equal to 1"),
    ("calendar part typo", "contract", setting("features.calendar", ["weekday"]),
     r"features.calendar\[0\]: 'weekday' should be 'day_of_week'"),
    ("misspelled windows", "contract", setting("features.windws", {"label": [3]}),
     r"features.windws: unknown key. Fix: did you mean windows\?"),
    ("primary key not a column", "contract", setting("primary_key", ["nope"]),
     r"primary_key: 'nope' is not a column"),
    ("label key typo", "contract", lambda d: d.__setitem__("label", {"column": "x", "positve": ["1"]}),
     r"label.positve: unknown key. Fix: did you mean positive\?"),
    ("fill step typo", "contract", setting("gold.fill_missing_periods", {"every": "fortnight"}),
     r"gold.fill_missing_periods.every: 'fortnight' should be 'day', 'week' or 'month'"),
]


@pytest.mark.parametrize(("file", "edit", "message"), [m[1:] for m in MISTAKES], ids=[m[0] for m in MISTAKES])
def test_a_configuration_mistake_is_one_clear_line(make_root, tmp_path, file, edit, message):
    root = make_root(tmp_path / "project")
    path = files(root)[file]
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError, match=message) as caught:
        check_configuration(root)
    text = str(caught.value)
    assert "\n" not in text and path.name in text and "Fix:" in text, text


@pytest.mark.parametrize(("file", "text", "where"), [
    ("project", "problem_type: classification\ntraining:\n  seed: [1, 2\n", r"project.yml:4:1: not valid YAML"),
    ("targets", "targets:\n  local:\n    platform: local\n   catalog: dev\n", r"targets.yml:4:\d+: not valid YAML"),
    ("contract", "name: x\ncolumns: {a: string\ngold: {}\n", r"\.yml:3:\d+: not valid YAML"),
])
def test_a_yaml_syntax_error_names_file_line_and_column(make_root, tmp_path, file, text, where):
    root = make_root(tmp_path / "project")
    files(root)[file].write_text(text)
    with pytest.raises(ConfigError, match=where) as caught:
        check_configuration(root) if file != "contract" else load_contracts(root)
    assert "<unicode string>" not in str(caught.value) and "Fix:" in str(caught.value)


def test_several_problems_in_one_file_are_reported_together(make_root, tmp_path):
    root = make_root(tmp_path / "project")
    path = files(root)["project"]
    data = yaml.safe_load(path.read_text())
    data.update(feature_store="maybe", trainig=data.pop("training"))
    data["validation"]["champion_tolerance"] = "1%"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError) as caught:
        load_project(root)
    lines = str(caught.value).splitlines()
    assert lines[0] == f"3 problems in {path}:"
    assert sorted(line.split(": ")[1] for line in lines[1:]) == ["feature_store", "trainig",
                                                                 "validation.champion_tolerance"]


def test_the_shipped_configuration_passes_the_schema():
    check_configuration(PROJECT)
    assert load_contracts(PROJECT)


def written(root: Path) -> list[Path]:
    return [p for p in (root / ".local").rglob("*") if p.is_file()] if (root / ".local").exists() else []


@pytest.mark.sail
def test_a_misspelled_key_stops_the_run_with_exit_2_before_anything_is_written(cli, make_root, tmp_path):
    root = make_root(tmp_path / "project")
    path = files(root)["project"]
    path.write_text(path.read_text().replace("\ntraining:", "\ntrainig:"))
    result = cli("run", "all", "--target", "local", cwd=root)
    assert result.returncode == 2, result.stderr
    assert "project.yml: trainig: unknown key. Fix: did you mean training?" in result.stderr
    assert "Traceback" not in result.stderr and not list((root / ".local").rglob("*bronze*"))


@pytest.mark.sail
def test_a_typo_in_a_contract_path_writes_no_sample_data_there(cli, make_root, tmp_path):
    root = make_root(tmp_path / "project")
    path = files(root)["contract"]
    data = yaml.safe_load(path.read_text())
    data["path"] = data["path"] + "s"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    result = cli("run", "all", "--target", "local", cwd=root)
    assert result.returncode == 2, result.stderr
    assert f"no landing files for source '{data['name']}'" in result.stderr and "Fix:" in result.stderr
    assert written(root) == [] or not any(data["path"] in str(p) for p in written(root))


@pytest.mark.sail
def test_a_bad_gold_expression_stops_the_run_before_bronze(cli, make_root, tmp_path):
    root = make_root(tmp_path / "project")
    path = files(root)["contract"]
    data = yaml.safe_load(path.read_text())
    data["gold"]["columns"]["broken"] = "greatst(1, 2)"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    result = cli("run", "all", "--target", "local", cwd=root)
    assert result.returncode == 2, result.stderr
    assert "gold.columns.broken: 'greatst(1, 2)' is not a valid SQL expression" in result.stderr
    assert "Fix:" in result.stderr and not list((root / ".local").rglob("*bronze*"))
    assert "writing sample data" not in result.stderr, "the configuration is checked before sample data is written"


@pytest.mark.sail
def test_a_format_with_quoted_text_reaches_spark_as_a_literal(sail_spark):
    """``yyyy-MM-dd'T'HH:mm:ss`` used to be pasted into SQL inside quotes, which broke the statement."""
    from datetime import datetime

    from {{ cookiecutter.package_name }}.contract import Column
    from {{ cookiecutter.package_name }}.data.quality import cast_expression

    frame = sail_spark.createDataFrame([("2024-01-05T10:11:12",), ("05/01/2024",)], "stamp string")
    column = Column("stamp", "timestamp", format="yyyy-MM-dd'T'HH:mm:ss")
    values = [row.t for row in frame.select(cast_expression(column).alias("t")).collect()]
    assert values == [datetime(2024, 1, 5, 10, 11, 12), None]
