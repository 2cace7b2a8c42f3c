"""The estimator seam: every estimator fits, predicts and survives a save/load round trip, and
the second one trains, validates, is promoted and scores through the same stages."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_training import CONFIG, frame

from {{ cookiecutter.package_name }} import pipeline
from {{ cookiecutter.package_name }}.config import ConfigError
from {{ cookiecutter.package_name }}.ml.estimators import ESTIMATORS, estimator_class
from {{ cookiecutter.package_name }}.ml.fitting import fit
from {{ cookiecutter.package_name }}.ml.flavor import load_estimator, predict_with
from {{ cookiecutter.package_name }}.ml.scoring import prepare_features

SECOND = "sklearn_hist_gradient_boosting"
# Parameters in each library's own names, as conf/project.yml passes them.
PARAMS = {"lightgbm": {"num_leaves": 7, "min_data_in_leaf": 5}, SECOND: {"max_leaf_nodes": 7, "min_samples_leaf": 5}}


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
@pytest.mark.parametrize("problem", ["classification", "regression"])
def test_every_estimator_learns_and_round_trips_as_text(name, problem):
    config = replace(CONFIG, estimator=name, params=PARAMS[name])
    model = fit(frame(problem), ["customer"], "month", problem, config)
    assert model.estimator.name == name and model.meta["estimator"] == name
    assert 1 <= model.estimator.iterations <= config.num_boost_round
    main = "auc" if problem == "classification" else "rmse"
    baseline = {"auc": 0.5, "rmse": float(frame(problem)["label"].std())}[main]
    assert model.metrics[main] > baseline if main == "auc" else model.metrics[main] < baseline

    scoring = frame(problem, rows=50, seed=4).assign(plan=["enterprise"] * 25 + ["pro"] * 25)  # one unseen category
    loaded = load_estimator(model.estimator.dumps(), model.meta)
    before = predict_with(model.estimator, model.meta, scoring)
    after = predict_with(loaded, model.meta, scoring)
    assert np.allclose(before.to_numpy(dtype=float), after.to_numpy(dtype=float))
    importance = model.estimator.feature_importance(
        prepare_features(model.valid_frame, model.features, model.categories), model.valid_frame["label"].to_numpy())
    assert set(importance) == set(model.features)


def test_an_unknown_estimator_names_the_setting_and_the_choices():
    with pytest.raises(ConfigError, match=r"training.estimator is 'xgboost'.*lightgbm.*sklearn"):
        estimator_class("xgboost")


def test_training_params_override_lightgbm_s_thread_count_but_not_its_objective_or_seed():
    params = {**PARAMS["lightgbm"], "num_threads": 1, "objective": "huber", "seed": 99}
    model = fit(frame("classification"), ["customer"], "month", "classification", replace(CONFIG, params=params))
    used = model.estimator.booster.params
    assert used["num_threads"] == 1 and used["num_leaves"] == 7
    assert used["objective"] == "binary" and used["seed"] == CONFIG.seed


def test_lightgbm_gives_native_contributions_that_sum_to_the_raw_score():
    model = fit(frame("regression"), ["customer"], "month", "regression",
                replace(CONFIG, params=PARAMS["lightgbm"]))
    x = prepare_features(frame("regression", rows=30, seed=2), model.features, model.categories)
    contributions = model.estimator.contributions(x)
    assert contributions.shape == (30, len(model.features) + 1)
    assert np.allclose(contributions.sum(axis=1), model.estimator.predict(x))


@pytest.mark.sail
def test_the_second_estimator_trains_validates_and_scores_through_the_stages(sample_lake, tmp_path_factory):
    import mlflow

    base = tmp_path_factory.mktemp("second_estimator")
    with sample_lake(base, "second_estimator", ["ingest", "features"]) as (rt, root, _):
        path = root / "conf" / "project.yml"
        settings = yaml.safe_load(path.read_text())
        settings["training"].update(estimator=SECOND, params={"max_leaf_nodes": 15, "min_samples_leaf": 20})
        path.write_text(yaml.safe_dump(settings, sort_keys=False))
        summary = pipeline.run_stages(rt, ["train", "validate", "promote", "score", "monitor"], log=lambda _: None,
                                      root=root)
        assert summary.ok, [s.error for s in summary.stages]
        details = {s.name: s.details for s in summary.stages}
        assert details["validate"]["status"] == "passed"
        assert details["promote"]["champion"] == details["train"]["version"]
        assert details["score"]["inserted"] > 0 and details["score"]["version"] == details["train"]["version"]
        run = mlflow.MlflowClient().get_run(details["train"]["run_id"])
        assert run.data.params["estimator"] == SECOND
        uri = f"models:/{details['train']['model']}/{details['train']['version']}"
        files = {p.name: p for p in Path(mlflow.artifacts.download_artifacts(uri)).rglob("*")}
        assert {"model.txt", "meta.json"} <= set(files)
        assert json.loads(files["meta.json"].read_text())["estimator"] == SECOND
    shutil.rmtree(base, ignore_errors=True)


def test_versions_registered_before_the_layers_still_load(tmp_path):
    """Their pickles name ``<package>.model.<Library>Model`` or ``<package>.segments.SegmentedModel``,
    and the single model's artifact was called ``booster``: a rollback to one must still work."""
    import importlib

    import mlflow

    from {{ cookiecutter.package_name }}.ml.flavor import EstimatorModel, SegmentedModel

    assert importlib.import_module("{{ cookiecutter.package_name }}.model").LightGBMModel is EstimatorModel
    assert importlib.import_module("{{ cookiecutter.package_name }}.segments").SegmentedModel is SegmentedModel
    config = replace(CONFIG, params=PARAMS["lightgbm"])
    model = fit(frame(), ["customer"], "month", "classification", config)
    old_meta = {k: v for k, v in model.meta.items() if k != "estimator"}
    (tmp_path / "booster.txt").write_text(model.estimator.dumps())
    (tmp_path / "meta.json").write_text(json.dumps(old_meta))
    mlflow.pyfunc.save_model(tmp_path / "old", python_model=EstimatorModel(),
                             artifacts={"booster": str(tmp_path / "booster.txt"), "meta": str(tmp_path / "meta.json")},
                             pip_requirements=["mlflow"])
    scoring = frame(rows=40, seed=8)
    loaded = mlflow.pyfunc.load_model(str(tmp_path / "old")).predict(scoring)
    assert np.allclose(loaded.to_numpy(dtype=float), predict_with(model.estimator, model.meta, scoring).to_numpy(dtype=float))
