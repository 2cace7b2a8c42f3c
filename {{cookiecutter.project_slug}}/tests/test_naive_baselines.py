"""Naive baselines and the gate built on them: hand-built panels checked against a pandas oracle,
no baseline ever reading its own row's or a later label, and the configuration's errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from {{ cookiecutter.package_name }}.config import (
    BASELINE_METRICS,
    METRICS,
    BaselineGate,
    ConfigError,
    TrainingConfig,
    load_project,
)
from {{ cookiecutter.package_name }}.ml.fitting import holdout_rows
from {{ cookiecutter.package_name }}.ml.metrics import baseline_check, evaluate, relative_improvement
from {{ cookiecutter.package_name }}.ml.naive import (
    baseline_predictions,
    last_value,
    naive_baseline_metrics,
    naive_baselines,
    seasonal_naive,
)
from {{ cookiecutter.package_name }}.ml.scoring import predictions

PROJECT = Path(__file__).resolve().parents[1]
KEYS = ["store", "product"]
TIME = "week"
TIME_HOLDOUT = TrainingConfig(validation_fraction=0.25, holdout="time")


def panel(entities: int = 4, periods: int = 12, seed: int = 0, binary: bool = False,
          gaps: float = 0.0) -> pd.DataFrame:
    """Weekly labels per store x product in shuffled order, a ``gaps`` share of entity-weeks missing;
    weeks are ``datetime.date`` values, as Spark's DateType arrives."""
    rng = np.random.default_rng(seed)
    weeks = pd.date_range("2024-01-01", periods=periods, freq="7D").date
    rows = [(f"S{e % 2}", f"P{e}", week) for e in range(entities) for week in weeks]
    frame = pd.DataFrame(rows, columns=[*KEYS, TIME]).sample(frac=1.0, random_state=seed).reset_index(drop=True)
    frame["label"] = (rng.random(len(frame)) < 0.3).astype(float) if binary else rng.integers(0, 100, len(frame))
    return frame[rng.random(len(frame)) >= gaps].astype({"label": float}).reset_index(drop=True)


def holdout_of(history: pd.DataFrame, problem_type: str = "regression") -> pd.DataFrame:
    return holdout_rows(history, KEYS, TIME, problem_type, TIME_HOLDOUT)


def oracle(history: pd.DataFrame, rows: pd.DataFrame, shift: int) -> np.ndarray:
    """The same entity's label ``shift`` rows earlier in time, by groupby-shift, for ``rows``."""
    ordered = history.sort_values([*KEYS, TIME])
    shifted = ordered.assign(expected=ordered.groupby(KEYS)["label"].shift(shift))[[*KEYS, TIME, "expected"]]
    return rows[[*KEYS, TIME]].merge(shifted, on=[*KEYS, TIME], how="left")["expected"].to_numpy()


def test_last_value_is_the_entitys_previous_label():
    history = panel()
    holdout = holdout_of(history)
    assert holdout[TIME].nunique() == 3
    np.testing.assert_array_equal(last_value(history, holdout, KEYS, TIME), oracle(history, holdout, 1))


def test_last_value_reaches_back_over_a_missing_period_and_a_new_entity_has_none():
    history = panel()
    weeks = sorted(history[TIME].unique())
    gap = (history["product"] == "P1") & (history[TIME] == weeks[-3])
    newcomer = pd.DataFrame({"store": ["S9"], "product": ["P9"], TIME: [weeks[-2]], "label": [7.0]})
    history = pd.concat([history[~gap], newcomer], ignore_index=True)
    rows = history[history[TIME] == weeks[-2]]
    got = last_value(history, rows, KEYS, TIME)
    np.testing.assert_array_equal(got, oracle(history, rows, 1))
    p1 = (rows["product"] == "P1").to_numpy()
    two_back = history[(history["product"] == "P1") & (history[TIME] == weeks[-4])]["label"].to_numpy()
    assert got[p1] == pytest.approx(two_back), "two periods back, never the nearer later one"
    assert np.isnan(got[(rows["product"] == "P9").to_numpy()]).all()


def test_seasonal_naive_is_the_label_a_season_earlier():
    history = panel(periods=16)
    holdout = holdout_of(history)
    np.testing.assert_array_equal(seasonal_naive(history, holdout, KEYS, TIME, 4), oracle(history, holdout, 4))
    far = seasonal_naive(history, holdout, KEYS, TIME, 15)
    latest = (holdout[TIME] == holdout[TIME].max()).to_numpy()
    assert not np.isnan(far[latest]).any() and np.isnan(far[~latest]).all(), "15 periods back exist for the last only"


def test_rows_without_an_earlier_label_get_the_training_mean_and_are_counted():
    history = panel(periods=16)
    holdout = holdout_of(history)
    train_mean = history[history[TIME] < holdout[TIME].min()]["label"].mean()
    predicted, fallback_rows = baseline_predictions(history, holdout, KEYS, TIME, "regression", 13)["seasonal_naive"]
    # 16 periods, the last 4 held out: 13 periods before the first held-out one there is nothing.
    earliest = (holdout[TIME] == holdout[TIME].min()).to_numpy()
    assert fallback_rows == earliest.sum() == 4
    assert predicted[earliest] == pytest.approx([train_mean] * 4)
    assert baseline_predictions(history, holdout, KEYS, TIME, "regression", 13)["last_value"][1] == 0


@pytest.mark.parametrize(("problem_type", "season_length"), [("regression", 3), ("classification", None)])
def test_no_baseline_reads_its_own_or_a_later_label(problem_type, season_length):
    history = panel(periods=16, binary=problem_type == "classification", gaps=0.2)
    holdout = holdout_of(history, problem_type)
    before = baseline_predictions(history, holdout, KEYS, TIME, problem_type, season_length)
    rng = np.random.default_rng(1)

    def perturbed(frame: pd.DataFrame, since: object) -> pd.DataFrame:
        later = frame[TIME] >= since
        noise = rng.integers(1, 1000, int(later.sum())) if problem_type == "regression" else 1
        changed = frame.copy()
        changed.loc[later, "label"] = (1 - changed.loc[later, "label"]) if problem_type == "classification" else (
            changed.loc[later, "label"] + noise)
        return changed

    for period in sorted(holdout[TIME].unique()):
        after = baseline_predictions(perturbed(history, period), perturbed(holdout, period), KEYS, TIME, problem_type,
                                     season_length)
        rows = (holdout[TIME] == period).to_numpy()
        for name, (values, _) in before.items():
            np.testing.assert_array_equal(after[name][0][rows], values[rows], err_msg=f"{name} at {period}")
    # The check can fail: changing the last training period moves the last value, and changing every
    # training label moves the prior.
    first = sorted(holdout[TIME].unique())[0]
    since = max(w for w in history[TIME].unique() if w < first) if problem_type == "regression" else min(
        history[TIME])
    moved = baseline_predictions(perturbed(history, since), holdout, KEYS, TIME, problem_type, season_length)
    name = "last_value" if problem_type == "regression" else "prior"
    assert not np.array_equal(moved[name][0], before[name][0])


def test_the_prior_is_the_training_positive_rate():
    history = panel(periods=10, binary=True, seed=3)
    holdout = holdout_of(history, "classification")
    rate = history[history[TIME] < holdout[TIME].min()]["label"].mean()
    predicted, fallback_rows = baseline_predictions(history, holdout, KEYS, TIME, "classification")["prior"]
    assert predicted == pytest.approx([rate] * len(holdout)) and fallback_rows == 0
    (prior,) = naive_baselines(history, holdout, KEYS, TIME, "classification")
    truth = holdout["label"].to_numpy()
    by_hand = -np.mean(truth * np.log(rate) + (1 - truth) * np.log(1 - rate))
    assert prior.name == "prior" and prior.metrics["log_loss"] == pytest.approx(by_hand)
    assert prior.metrics["auc"] == 0.5 and "f1" not in prior.metrics
    assert naive_baseline_metrics([prior]) == {f"baseline_prior_{k}": v for k, v in prior.metrics.items()}


def test_a_snapshot_compares_with_the_training_mean():
    snapshot = panel(periods=1, entities=40)
    holdout = holdout_rows(snapshot, KEYS, TIME, "regression", TrainingConfig(validation_fraction=0.25))
    (mean,) = naive_baselines(snapshot, holdout, KEYS, TIME, "regression", season_length=52)
    train_mean = snapshot.merge(holdout[KEYS], on=KEYS, how="left", indicator=True).query(
        "_merge == 'left_only'")["label"].mean()
    expected = evaluate("regression", holdout["label"].to_numpy(), predictions(np.full(len(holdout), train_mean),
                                                                               "regression"))
    assert mean.name == "mean" and mean.metrics == pytest.approx(expected)


def test_relative_improvement_reads_higher_is_better_metrics_as_an_error():
    assert relative_improvement(8.0, 10.0, "rmse") == pytest.approx(0.2)
    assert relative_improvement(12.0, 10.0, "rmse") == pytest.approx(-0.2)
    assert relative_improvement(0.75, 0.5, "auc") == pytest.approx(0.5)
    assert relative_improvement(0.0, 0.0, "mae") == 0.0 and relative_improvement(1.0, 0.0, "mae") == float("-inf")


def test_the_gate_needs_the_margin_over_the_best_baseline():
    baselines = {"last_value": 10.0, "seasonal_naive": 12.0}
    passing = baseline_check(9.4, baselines, "rmse", 0.05)
    assert passing["passed"] and passing["baseline_name"] == "last_value"
    assert passing["improvement"] == pytest.approx(0.06)
    assert not baseline_check(9.6, baselines, "rmse", 0.05)["passed"], "beats it, but by 4% only"
    assert not baseline_check(11.0, baselines, "rmse", 0.0)["passed"], "beats the worse baseline only"


def test_the_gate_on_a_panel_fails_the_naive_forecast_and_passes_a_better_one():
    history = panel(periods=16, seed=5)
    holdout = holdout_of(history)
    truth = holdout["label"].to_numpy()
    baselines = naive_baselines(history, holdout, KEYS, TIME, "regression", 4)
    best = {b.name: b.metrics["rmse"] for b in baselines}
    naive = baseline_predictions(history, holdout, KEYS, TIME, "regression", 4)["last_value"][0]
    candidates = {"naive": naive, "halfway": (naive + truth) / 2}
    verdicts = {name: baseline_check(evaluate("regression", truth, predictions(values, "regression"))["rmse"], best,
                                     "rmse", 0.05)["passed"] for name, values in candidates.items()}
    assert verdicts == {"naive": False, "halfway": True}


def write_validation(root: Path, validation: object) -> Path:
    path = root / "conf" / "project.yml"
    settings = yaml.safe_load(path.read_text())
    settings["validation"] = validation
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return root


@pytest.fixture
def project_root(make_root, tmp_path) -> Path:
    return make_root(tmp_path)


def test_generated_projects_gate_on_naive_baselines_by_default():
    project = load_project(PROJECT)
    gate = project.validation.baseline
    assert gate is not None and gate.metric in BASELINE_METRICS[project.problem_type] and gate.min_improvement > 0
    assert project.validation.thresholds == {}


def test_baseline_settings_default_and_turn_off(project_root):
    problem_type = load_project(project_root).problem_type
    default = load_project(write_validation(project_root, {"mode": "enabled"})).validation.baseline
    assert default == BaselineGate("log_loss" if problem_type == "classification" else "rmse", 0.05, None)
    assert load_project(write_validation(project_root, {"baseline": False})).validation.baseline is None


@pytest.mark.parametrize(("baseline", "message"), [
    ({"metric": "f1"}, r"validation.baseline.metric is 'f1'.*Fix: use one of"),
    ({"min_improvement": 1.5}, r"validation.baseline.min_improvement: 1.5 should be less than 1. Fix"),
    ({"min_improvement": "5%"}, r"validation.baseline.min_improvement: '5%' should be a valid number. Fix"),
    ({"margin": 0.05}, r"validation.baseline.margin: unknown key. Fix: .*accepts metric, min_improvement, season_length"),
    ("rmse", r"validation.baseline: 'rmse' must be a mapping, not str. Fix"),
])
def test_bad_baseline_settings_name_the_field_and_the_fix(project_root, baseline, message):
    with pytest.raises(ConfigError, match=message):
        load_project(write_validation(project_root, {"baseline": baseline}))


def test_a_season_length_is_a_whole_number_of_periods_for_regression_only(project_root):
    problem_type = load_project(project_root).problem_type
    with pytest.raises(ConfigError, match=r"season_length: 0 should be greater than or equal to 1.*whole number"):
        load_project(write_validation(project_root, {"baseline": {"season_length": 0}}))
    if problem_type == "classification":
        with pytest.raises(ConfigError, match=r"season_length only applies to regression"):
            load_project(write_validation(project_root, {"baseline": {"season_length": 4}}))


@pytest.mark.parametrize(("validation", "message"), [
    ({"thresholds": {"accuracy": {"min": 0.9}}}, r"validation.thresholds.accuracy: 'accuracy' is not a .* metric. Fix: use one of"),
    ({"thresholds": {"METRIC": {"below": 3}}}, r"validation.thresholds.METRIC.below: unknown key. Fix: remove it \(validation.thresholds.METRIC accepts min, max\)"),
    ({"thresholds": {"METRIC": {"max": 0.5}}}, None),
    ({"champion_tolerance": -1}, r"validation.champion_tolerance: -1 should be greater than or equal to 0. Fix"),
    ({"treshold": {}}, r"validation.treshold: unknown key. Fix: did you mean thresholds\?"),
])
def test_validation_settings_are_checked_naming_the_field(project_root, validation, message):
    metric = METRICS[load_project(project_root).problem_type][0]
    validation = yaml.safe_load(yaml.safe_dump(validation).replace("METRIC", metric))
    if message is None:
        assert load_project(write_validation(project_root, validation)).validation.thresholds == {metric: {"max": 0.5}}
        return
    with pytest.raises(ConfigError, match=message.replace("METRIC", metric)):
        load_project(write_validation(project_root, validation))


def test_the_metric_names_in_config_are_those_evaluate_reports():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 50).astype(float)
    for problem_type, expected in METRICS.items():
        reported = evaluate(problem_type, truth + (problem_type == "regression"),
                            predictions(rng.random(50), problem_type))
        assert set(reported) == set(expected) >= set(BASELINE_METRICS[problem_type])
