"""Explanations from the estimator's native SHAP values: they add up to the model's output, rank an
informative feature above noise, read its direction, and reach the card and the summary plot."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from test_training import CONFIG, frame

from {{ cookiecutter.package_name }}.ml.explanations import card_section, explain
from {{ cookiecutter.package_name }}.ml.fitting import fit
from {{ cookiecutter.package_name }}.ml.reports import release_figure, shap_summary_chart
from {{ cookiecutter.package_name }}.ml.scoring import prepare_features


def noisy(problem: str):
    data = frame(problem, rows=800)
    return data.assign(noise=np.random.default_rng(9).normal(size=len(data)))


def test_contributions_add_up_to_the_output_and_rank_signal_above_noise():
    model = fit(noisy("regression"), ["customer"], "month", "regression", CONFIG)
    explanation = explain(model, seed=1, rows=100)
    assert len(explanation.contributions) == 100 and list(explanation.contributions.columns) == model.features
    x = prepare_features(model.valid_frame.loc[explanation.contributions.index], model.features, model.categories)
    total = explanation.contributions.sum(axis=1).to_numpy() + explanation.bias
    assert np.allclose(total, model.estimator.predict(x))
    importance = explanation.importance
    assert importance["noise"] < importance["spend"] and importance["noise"] < importance["plan"]
    top = {row["feature"]: row for row in explanation.top_features()}
    assert top["spend"]["higher_values_push"] == "up"  # the label grows with spend
    assert top["plan"]["higher_values_push"] is None  # categorical: no order to read


def test_the_card_and_the_plot_show_the_strongest_features_first():
    model = fit(noisy("classification"), ["customer"], "month", "classification", CONFIG)
    explanation = explain(model, seed=1)
    lines = card_section(explanation, "classification")
    assert lines[0] == "## Explanations (SHAP values on the validation period)" and "log-odds" in lines[1]
    rows = [line.split("|")[1].strip() for line in lines[4:] if line.startswith("| ")]
    assert rows == list(explanation.importance.index)
    figure = shap_summary_chart(explanation, "classification")
    labels = [t.get_text() for t in figure.axes[0].get_yticklabels()]
    assert labels[-1] == explanation.importance.index[0] and len(figure.axes) == 2  # the colour bar
    release_figure(figure)


def test_an_estimator_without_native_contributions_says_so():
    config = replace(CONFIG, estimator="sklearn_hist_gradient_boosting", params={"max_leaf_nodes": 7})
    model = fit(frame("classification"), ["customer"], "month", "classification", config)
    assert explain(model, seed=1) is None
    assert "no native per-feature contributions" in card_section(None, "classification")[1]
