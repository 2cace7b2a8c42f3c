"""Explanations of a fitted model from the estimator's native per-feature contributions (SHAP
values: LightGBM's ``pred_contrib``), on a sample of its validation period: the mean absolute
contribution of each feature, a summary plot and the model card's table.

An estimator without native contributions gets no explanation rather than a slow model-agnostic
approximation; the card says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .fitting import FittedModel
from .scoring import prepare_features

# Rows of the validation period explained: contributions cost a tree walk per row and feature.
SAMPLE_ROWS = 2000
# Features the plot and the card show, the strongest first.
TOP_FEATURES = 12
# Rows the summary plot draws: enough to show each feature's spread, few enough to draw quickly.
PLOT_ROWS = 600
# What a contribution adds to: LightGBM explains a classifier's raw score, not its probability.
EXPLAINED_OUTPUT = {"classification": "log-odds of the positive label", "regression": "prediction"}


@dataclass
class Explanation:
    """Per-feature contributions of ``rows`` validation rows, with the features' values."""

    contributions: pd.DataFrame  # one column per feature; the bias column is dropped
    values: pd.DataFrame
    bias: float

    @property
    def importance(self) -> pd.Series:
        """Mean absolute contribution per feature, the strongest first."""
        return self.contributions.abs().mean().sort_values(ascending=False)

    def top_features(self, k: int = TOP_FEATURES) -> list[dict[str, Any]]:
        """The ``k`` strongest features: mean |SHAP|, and whether higher values push the output up."""
        rows = []
        for feature, strength in self.importance.head(k).items():
            values = pd.to_numeric(self.values[feature], errors="coerce")
            usable = values.notna()
            direction = None  # categorical, or too few distinct values to say
            if usable.sum() > 2 and values[usable].std() > 0:
                corr = float(np.corrcoef(values[usable], self.contributions.loc[usable, feature])[0, 1])
                direction = "up" if corr > 0.1 else "down" if corr < -0.1 else "mixed"
            rows.append({"feature": feature, "mean_abs_shap": round(float(strength), 6),
                         "higher_values_push": direction})
        return rows


def explain(model: FittedModel, seed: int, rows: int = SAMPLE_ROWS) -> Explanation | None:
    """Contributions on up to ``rows`` validation rows (a seeded sample), or None when the estimator
    has no native contributions."""
    frame = model.valid_frame
    if len(frame) > rows:
        frame = frame.sample(rows, random_state=seed)
    x = prepare_features(frame, model.features, model.categories)
    raw = model.estimator.contributions(x)
    if raw is None:
        return None
    contributions = pd.DataFrame(raw[:, :len(model.features)], columns=model.features, index=x.index)
    return Explanation(contributions, x, float(np.mean(raw[:, -1])))


def card_section(explanation: Explanation | None, problem_type: str) -> list[str]:
    """Model-card lines: the strongest features by mean |SHAP| on the validation period."""
    if explanation is None:
        return ["## Explanations", "- This estimator has no native per-feature contributions; none were computed."]
    lines = ["## Explanations (SHAP values on the validation period)",
             f"Mean absolute contribution to the {EXPLAINED_OUTPUT[problem_type]}, over "
             f"{len(explanation.contributions)} validation rows (average output before any feature: "
             f"{explanation.bias:.4f}).", "",
             "| feature | mean abs SHAP | higher values push the output |", "|---|---|---|"]
    for row in explanation.top_features():
        lines.append(f"| {row['feature']} | {row['mean_abs_shap']:.4f} | {row['higher_values_push'] or 'n/a'} |")
    return lines
