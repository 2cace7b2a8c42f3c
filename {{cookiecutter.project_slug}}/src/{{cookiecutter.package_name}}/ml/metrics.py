"""Model metrics and the checks made on them: the validation gate, the champion comparison and
the monitoring bounds all use these."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

HIGHER_IS_BETTER = {"auc": True, "pr_auc": True, "f1": True, "log_loss": False, "rmse": False, "mae": False,
                    "mape": False}
# The metric the champion comparison uses, and the one tuning minimises.
MAIN_METRIC = {"classification": "auc", "regression": "rmse"}
TUNED_METRIC = {"classification": "log_loss", "regression": "rmse"}


def best_f1_threshold(truth: np.ndarray, proba: np.ndarray) -> float:
    """The probability cut-off with the best F1 on the training period (the validation period stays
    untouched); with rare positives a fixed 0.5 would almost never predict the positive class."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(truth, proba)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(thresholds[int(np.argmax(f1[:-1]))]) if len(thresholds) else 0.5


def evaluate(problem_type: str, truth: np.ndarray, output: pd.DataFrame) -> dict[str, float]:
    from sklearn import metrics

    if problem_type == "classification":
        proba = output["probability"].to_numpy()
        return {
            "auc": float(metrics.roc_auc_score(truth, proba)),
            "pr_auc": float(metrics.average_precision_score(truth, proba)),
            "log_loss": float(metrics.log_loss(truth, np.clip(proba, 1e-15, 1 - 1e-15), labels=[0, 1])),
            "f1": float(metrics.f1_score(truth, output["prediction"].to_numpy(), zero_division=0)),
        }
    pred = output["prediction"].to_numpy()
    nonzero = truth != 0
    mape = float(np.mean(np.abs((truth[nonzero] - pred[nonzero]) / truth[nonzero]))) if nonzero.any() else float("nan")
    return {
        "rmse": float(np.sqrt(metrics.mean_squared_error(truth, pred))),
        "mae": float(metrics.mean_absolute_error(truth, pred)),
        "mape": mape,
    }


def threshold_checks(metrics: dict[str, float], thresholds: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """One result per configured bound: metric, bound, value, passed."""
    checks = []
    for metric, bounds in thresholds.items():
        value = metrics.get(metric)
        for kind, bound in bounds.items():
            if kind not in ("min", "max"):
                raise ValueError(f"validation.thresholds.{metric}: use min or max, not {kind!r}")
            passed = value is not None and (value >= bound if kind == "min" else value <= bound)
            checks.append({"check": f"{metric} {'>=' if kind == 'min' else '<='} {bound}", "value": value,
                           "passed": bool(passed)})
    return checks


def champion_check(candidate: float, champion: float, metric: str, tolerance: float) -> dict[str, Any]:
    """The candidate may be worse than the champion by at most ``tolerance`` on ``metric``."""
    higher = HIGHER_IS_BETTER[metric]
    passed = candidate >= champion - tolerance if higher else candidate <= champion + tolerance
    return {"check": f"{metric} vs @champion (tolerance {tolerance})", "value": candidate, "champion": champion,
            "passed": bool(passed)}


def relative_improvement(candidate: float, baseline: float, metric: str) -> float:
    """The share of the baseline's error the candidate removes: (baseline - candidate) / baseline for
    an error metric; a higher-is-better metric (at most 1) counts 1 - metric as its error, so AUC
    0.5 -> 0.75 removes half of it.  A perfect baseline leaves nothing to improve (0, or -inf if the
    candidate is worse)."""
    if HIGHER_IS_BETTER[metric]:
        candidate, baseline = 1 - candidate, 1 - baseline
    if baseline <= 0:
        return 0.0 if candidate <= baseline else float("-inf")
    return (baseline - candidate) / baseline


def baseline_check(candidate: float, baselines: dict[str, float], metric: str,
                   min_improvement: float) -> dict[str, Any]:
    """The candidate must improve on the best of ``baselines`` (name -> value of ``metric``, all on
    the same holdout) by at least ``min_improvement`` of its error."""
    if not baselines:
        raise ValueError("baseline_check needs at least one baseline")
    pick = max if HIGHER_IS_BETTER[metric] else min
    best = pick(baselines, key=lambda name: baselines[name])
    improvement = relative_improvement(candidate, baselines[best], metric)
    return {"check": f"{metric} vs best naive baseline (min improvement {min_improvement:g})", "value": candidate,
            "baseline": baselines[best], "baseline_name": best, "baselines": baselines,
            "improvement": improvement, "passed": bool(improvement >= min_improvement)}
