"""Training logic on pandas frames: no leakage, clear failures on bad data, reproducibility."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.config import TrainingConfig
from {{ cookiecutter.package_name }}.ml.fitting import TrainingDataError, fit, holdout_rows, time_split

CONFIG = TrainingConfig(seed=3, validation_fraction=0.25, min_rows=50, num_boost_round=60,
                        early_stopping_rounds=10, params={"num_leaves": 7, "min_data_in_leaf": 5})


def frame(problem: str = "classification", rows: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    month = pd.to_datetime("2024-01-01") + pd.to_timedelta(rng.integers(0, 8, rows) * 30, unit="D")
    spend = rng.normal(50, 10, rows)
    plan = rng.choice(["basic", "pro"], rows)
    signal = 0.08 * (spend - 50) + (plan == "pro") * 1.0 + rng.normal(0, 0.5, rows)
    label = (signal > 0.5).astype(int) if problem == "classification" else 100 + 5 * signal
    return pd.DataFrame({"customer": [f"c{i}" for i in range(rows)], "month": month, "spend": spend,
                         "plan": plan, "label": label})


def test_time_split_never_leaks_the_future():
    data = frame()
    train, valid = time_split(data, "month", 0.25)
    assert len(train) + len(valid) == len(data)
    assert train["month"].max() < valid["month"].min()


@pytest.mark.parametrize("problem", ["classification", "regression"])
def test_same_data_and_seed_give_the_same_metrics(problem):
    first = fit(frame(problem), ["customer"], "month", problem, CONFIG)
    second = fit(frame(problem).sample(frac=1.0, random_state=5), ["customer"], "month", problem, CONFIG)
    assert first.metrics == second.metrics
    assert first.categories == {"plan": ["basic", "pro"]}
    key = "auc" if problem == "classification" else "rmse"
    assert key in first.metrics and first.split["train_until"] < first.split["valid_from"]


def test_classification_returns_probabilities_and_handles_unseen_categories():
    from {{ cookiecutter.package_name }}.ml.scoring import predictions, prepare_features

    model = fit(frame(), ["customer"], "month", "classification", CONFIG)
    scoring = frame(rows=20, seed=9).assign(plan=["enterprise"] * 20)
    raw = model.estimator.predict(prepare_features(scoring, model.features, model.categories))
    out = predictions(np.asarray(raw), "classification")
    assert out["probability"].between(0, 1).all() and set(out["prediction"]) <= {0, 1}


@pytest.mark.parametrize(("change", "message"), [
    (lambda f: f.drop(columns=["label"]), "no 'label' column"),
    (lambda f: f.assign(label=1), "single class"),
    (lambda f: f.head(20), "only 20 labelled rows"),
    (lambda f: f.assign(month=pd.Timestamp("2024-01-01")), "at least two distinct values of 'month'"),
])
def test_bad_training_data_fails_fast_with_the_fix(change, message):
    with pytest.raises(TrainingDataError, match=message):
        fit(change(frame()), ["customer"], "month", "classification", replace(CONFIG, holdout="time"))


def snapshot(rows: int = 600) -> pd.DataFrame:
    """One row per customer and a single period, as an exported table is."""
    return frame(rows=rows).assign(month=pd.Timestamp("2024-06-01"))


@pytest.mark.parametrize(("data", "holdout", "chosen"), [
    (frame, "auto", "time"),
    (snapshot, "auto", "random"),
    (lambda: pd.concat([snapshot(300), snapshot(300).assign(spend=lambda f: f["spend"] + 1)]), "auto", "group"),
    (frame, "random", "random"),
    (frame, "group", "group"),
])
def test_holdout_strategies_and_the_automatic_choice(data, holdout, chosen):
    rows = data()
    model = fit(rows, ["customer"], "month", "classification", replace(CONFIG, holdout=holdout))
    assert model.split["holdout"] == chosen and model.split["holdout_reason"]
    train_rows, valid_rows = model.split["train_rows"], model.split["valid_rows"]
    assert train_rows + valid_rows == len(rows) and abs(valid_rows / len(rows) - CONFIG.validation_fraction) < 0.06
    holdout_frame = holdout_rows(rows, ["customer"], "month", "classification", replace(CONFIG, holdout=holdout))
    assert holdout_frame[["customer", "spend"]].sort_values(["customer", "spend"]).reset_index(drop=True).equals(
        model.valid_frame[["customer", "spend"]].sort_values(["customer", "spend"]).reset_index(drop=True)), \
        "the validation gate re-scores exactly the holdout the model was evaluated on"
    if chosen == "group":
        trained = set(rows["customer"]) - set(model.valid_frame["customer"])
        assert trained.isdisjoint(model.valid_frame["customer"]), "an entity is never on both sides"
    if chosen == "random":
        share = model.valid_frame["label"].mean()
        assert abs(share - rows["label"].mean()) < 0.02, "stratified by the label"


def test_missing_feature_columns_are_named():
    with pytest.raises(TrainingDataError, match=r"feature columns \['tenure'\] are missing"):
        fit(frame(), ["customer"], "month", "classification", CONFIG, expected_features=["spend", "tenure"])


def test_tuning_runs_its_trial_budget_and_returns_the_best_parameters():
    from {{ cookiecutter.package_name }}.ml.fitting import tune

    seen = []
    best, trials = tune(frame(), ["customer"], "month", "classification", replace(CONFIG, tuning_trials=3),
                        on_trial=seen.append)
    assert len(trials) == len(seen) == 3
    scores = [t["metrics"]["log_loss"] for t in trials]
    winner = trials[scores.index(min(scores))]["params"]
    assert {k: best[k] for k in ("learning_rate", "num_leaves")} == {
        k: winner[k] for k in ("learning_rate", "num_leaves")}
    again, _ = tune(frame(), ["customer"], "month", "classification", replace(CONFIG, tuning_trials=3))
    assert again == best, "a seeded study is reproducible"
