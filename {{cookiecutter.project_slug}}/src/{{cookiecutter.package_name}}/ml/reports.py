"""Plots and documents people look at: the training plots (feature importance, ROC / PR /
confusion or residuals), the model card, the per-segment metrics chart and the PSI chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..config import ProjectConfig
from ..contract import Contract
from ..data.drift import ColumnDrift
from ..names import LABEL
from .fitting import FittedModel
from .scoring import prepare_features


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def model_plots(model: FittedModel) -> dict[str, Any]:
    from sklearn import metrics

    plt = _pyplot()
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


def psi_chart(results: list[ColumnDrift], threshold: float, title: str, path: Path) -> str:
    """A bar per column, red where PSI breaches the threshold, saved as a PNG."""
    plt = _pyplot()
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


def segment_chart(per_segment: dict[str, dict[str, float]], metric: str) -> Any:
    """Validation ``metric`` per segment, one bar each."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, max(3, 0.35 * len(per_segment))))
    ax.barh(list(per_segment), [per_segment[s][metric] for s in per_segment], color="#2ca02c")
    ax.set_title(f"Validation {metric} per segment")
    fig.tight_layout()
    return fig
