"""Plots and documents people look at: the training plots (feature importance, ROC / PR /
confusion or residuals), the model card, the per-segment metrics chart and the PSI chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import BaselineGate, ProjectConfig
from ..contract import Contract
from ..data.drift import ColumnDrift
from ..names import LABEL
from .explanations import EXPLAINED_OUTPUT, PLOT_ROWS, TOP_FEATURES, Explanation
from .fitting import FittedModel
from .metrics import baseline_check
from .naive import FROM_HISTORY, NaiveBaseline
from .scoring import prepare_features


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (files only, no display), imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def model_plots(model: FittedModel) -> dict[str, Any]:
    from sklearn import metrics

    plt = pyplot()
    figures = {}
    truth = model.valid_frame[LABEL].to_numpy(dtype=float)
    importance = model.estimator.feature_importance(
        prepare_features(model.valid_frame, model.features, model.categories), truth)
    names = np.array(list(importance))
    values = np.array(list(importance.values()))
    order = np.argsort(values)
    fig, ax = plt.subplots(figsize=(7, max(3, 0.3 * len(order))))
    ax.barh(names[order], values[order], color="#1f77b4")
    ax.set_title(f"Feature importance ({model.estimator.importance_kind})")
    fig.tight_layout()
    figures["plots/feature_importance.png"] = fig

    if model.problem_type == "classification":
        proba = model.valid_output["probability"].to_numpy()
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
        metrics.RocCurveDisplay.from_predictions(truth, proba, ax=axes[0])
        axes[0].set_title(f"ROC (AUC {model.metrics['auc']:.3f})")
        metrics.PrecisionRecallDisplay.from_predictions(truth, proba, ax=axes[1])
        axes[1].set_title(f"Precision-recall (AP {model.metrics['pr_auc']:.3f})")
        metrics.ConfusionMatrixDisplay.from_predictions(truth.astype(int), model.valid_output["prediction"],
                                                        ax=axes[2], colorbar=False)
        axes[2].set_title(f"Confusion matrix (threshold {model.threshold:.2f})")
        fig.tight_layout()
        figures["plots/roc_pr_confusion.png"] = fig
    else:
        pred = model.valid_output["prediction"].to_numpy()
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
        axes[0].scatter(pred, truth - pred, s=4, alpha=0.3)
        axes[0].axhline(0, color="black", linewidth=1)
        axes[0].set(title="Residuals vs prediction", xlabel="prediction", ylabel="actual - prediction")
        axes[1].scatter(truth, pred, s=4, alpha=0.3)
        high = float(max(truth.max(), pred.max()))
        axes[1].plot([0, high], [0, high], color="black", linewidth=1)
        axes[1].set(title=f"Predicted vs actual (RMSE {model.metrics['rmse']:.2f})", xlabel="actual",
                    ylabel="prediction")
        fig.tight_layout()
        figures["plots/residuals.png"] = fig
    return figures


def shap_summary_chart(explanation: Explanation, problem_type: str) -> Any:
    """The SHAP summary: per strong feature, one dot per row (a sample of the explained rows) at its
    contribution, coloured by the feature's value (low blue to high red; grey where it is categorical
    or missing)."""
    plt = pyplot()
    features = list(explanation.importance.head(TOP_FEATURES).index)[::-1]
    rng = np.random.default_rng(0)
    rows = len(explanation.contributions)
    shown = np.sort(rng.choice(rows, size=min(rows, PLOT_ROWS), replace=False))  # a seeded sample of the rows
    jitter = rng.uniform(-0.3, 0.3, len(shown))
    fig, ax = plt.subplots(figsize=(8, max(3, 0.42 * len(features))))
    coloured = None
    for position, feature in enumerate(features):
        shap = explanation.contributions[feature].to_numpy()[shown]
        ranks = pd.to_numeric(explanation.values[feature].iloc[shown], errors="coerce").rank(pct=True).to_numpy()
        numeric = ~np.isnan(ranks)
        ax.scatter(shap[~numeric], position + jitter[~numeric], s=5, color="#999999", alpha=0.5)
        if numeric.any():
            coloured = ax.scatter(shap[numeric], position + jitter[numeric], s=5, c=ranks[numeric], cmap="coolwarm",
                                  vmin=0, vmax=1, alpha=0.6)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(features)), features)
    ax.set(title="SHAP summary (validation period)", xlabel=f"contribution to the {EXPLAINED_OUTPUT[problem_type]}")
    if coloured is not None:
        fig.colorbar(coloured, ax=ax, label="feature value, as a percentile of the rows shown")
    fig.tight_layout()
    return fig


def model_card(project: ProjectConfig, contract: Contract, model: FittedModel, sources: list[dict[str, Any]],
               model_name: str, commit: str) -> str:
    lines = [
        f"# Model card: {model_name}",
        "",
        "## Intended use",
        f"{project.problem_type.capitalize()} on `{contract.name}` ({contract.gold.table}): "
        + ("probability of the positive label" if project.problem_type == "classification" else
           f"predicts `{contract.label.column if contract.label else LABEL}`")
        + " per " + ", ".join(contract.gold.keys) + ". For batch scoring by this project's pipeline; not validated "
        "for other populations or for decisions without human review.",
        "",
        "## Model",
        f"- estimator: {model.estimator.name}, {int(model.metrics.get('best_iteration', 0))} rounds after early "
        "stopping on the validation period",
        "",
        "## Training data",
        *[f"- `{s['table']}` Delta version {s['version']}" for s in sources],
        f"- {model.split['train_rows']} training rows up to {model.split['train_until']}; "
        f"{model.split['valid_rows']} validation rows from {model.split['valid_from']} to "
        f"{model.split['valid_until']} ({model.split['holdout']} holdout: {model.split['holdout_reason']})",
        f"- features: {', '.join(model.features)}",
        f"- categorical: {', '.join(model.categories) or 'none'} (categories fixed at training; unseen values "
        "score as missing)",
        "",
        "## Metrics (validation period)",
        *[f"- {name}: {value:.4f}" for name, value in model.metrics.items()],
        *([f"- decision threshold: {model.threshold:.4f} (best F1 on the training period)"]
          if project.problem_type == "classification" else []),
        "",
        "## Limitations",
        "- Trained on history up to the validation cutoff; drift in the inputs degrades it (see monitoring).",
        "- Validation status is set by the validation gate before any promotion.",
        f"- Code version: {commit}",
    ]
    return "\n".join(lines) + "\n"


BASELINE_MEANING = {
    "prior": "every row gets the training rows' positive rate",
    "mean": "every row gets the training rows' mean label",
    "last_value": "the same entity's most recent label from an earlier period",
    "seasonal_naive": "the same entity's label {season} periods earlier",
}


def naive_baseline_section(candidate: dict[str, float], baselines: list[NaiveBaseline],
                           gate: BaselineGate | None) -> list[str]:
    """Model-card lines: the candidate next to each naive baseline on the same holdout, what each
    baseline predicts, and where the validation gate puts the bar."""
    if not baselines:
        return []
    names = [b.name for b in baselines]
    lines = ["## Naive baselines (same holdout)",
             "| metric | candidate | " + " | ".join(names) + " |", "|---" * (len(names) + 2) + "|"]
    for metric in baselines[0].metrics:
        value = candidate.get(metric)
        lines.append(f"| {metric} | " + (f"{value:.4f}" if value is not None else "-") + " | "
                     + " | ".join(f"{b.metrics[metric]:.4f}" for b in baselines) + " |")
    lines.append("")
    for baseline in baselines:
        meaning = BASELINE_MEANING[baseline.name].format(season=gate.season_length if gate else None)
        if baseline.name in FROM_HISTORY:
            meaning += f"; {baseline.fallback_rows} of {baseline.rows} rows had none and got the training mean"
        lines.append(f"- {baseline.name}: {meaning}")
    if "segments_trained" in candidate:
        lines.append("- candidate: per-segment metrics weighted by validation rows; the validation gate "
                     "re-scores the pooled holdout")
    if gate is not None and candidate.get(gate.metric) is not None:
        check = baseline_check(candidate[gate.metric], {b.name: b.metrics[gate.metric] for b in baselines},
                               gate.metric, gate.min_improvement)
        lines.append(f"- validation gate: {gate.metric} at least {gate.min_improvement * 100:g}% better than the best "
                     f"baseline ({check['baseline_name']}); this candidate is {check['improvement']:.1%} better"
                     + ("" if check["passed"] else ", not enough"))
    return lines


def with_section(card: str, lines: list[str], before: str = "## Limitations") -> str:
    """``card`` with ``lines`` inserted before the ``before`` heading (appended if it has none)."""
    text = "\n".join(lines) + "\n"
    at = card.find(before)
    return card[:at] + text + "\n" + card[at:] if at >= 0 else card + "\n" + text


def psi_chart(results: list[ColumnDrift], threshold: float, title: str, path: Path) -> str:
    """A bar per column, red where PSI breaches the threshold, saved as a PNG."""
    plt = pyplot()
    ordered = sorted(results, key=lambda r: r.psi)
    fig, ax = plt.subplots(figsize=(8, max(3, 0.32 * len(ordered))))
    ax.barh([r.column for r in ordered], [r.psi for r in ordered],
            color=["#d62728" if r.drifted else "#1f77b4" for r in ordered])
    ax.axvline(threshold, color="black", linestyle="--", linewidth=1, label=f"threshold {threshold}")
    ax.set(title=title, xlabel="PSI against the training baseline")
    ax.legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def release_figure(figure: Any) -> None:
    """Close a figure once it is logged: pyplot keeps every open figure until it is closed."""
    pyplot().close(figure)


def segment_chart(per_segment: dict[str, dict[str, float]], metric: str) -> Any:
    """Validation ``metric`` per segment, one bar each."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, max(3, 0.35 * len(per_segment))))
    ax.barh(list(per_segment), [per_segment[s][metric] for s in per_segment], color="#2ca02c")
    ax.set_title(f"Validation {metric} per segment")
    fig.tight_layout()
    return fig
