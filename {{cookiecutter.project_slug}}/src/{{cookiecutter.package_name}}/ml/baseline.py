"""The drift baseline of a model version: bins of its inputs and score fitted on the scored
training set, logged as ``monitoring/baseline.json`` in the version's run, and read back by the
check and monitor stages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pyspark.sql import DataFrame

from ..context import StageFailure
from ..data.drift import fit_baseline
from ..data.features import CALENDAR_FEATURES

BASELINE_ARTIFACT = "monitoring/baseline.json"


def score_column(problem_type: str) -> str:
    """The model output whose distribution is monitored: the probability, or the regression prediction."""
    return "probability" if problem_type == "classification" else "prediction"


def monitored_columns(features: list[str], problem_type: str) -> list[str]:
    """The inputs and the score; calendar features are left out (a batch of one period always
    differs from a year of them, which is not drift)."""
    return [*(f for f in features if f not in CALENDAR_FEATURES), score_column(problem_type)]


def baseline(scored_training_set: DataFrame, features: list[str], problem_type: str, bins: int) -> dict[str, Any]:
    """The baseline of a model version: its inputs and score over the training set."""
    return {**fit_baseline(scored_training_set, monitored_columns(features, problem_type), bins),
            "score_column": score_column(problem_type), "created_at": datetime.now(UTC).isoformat()}


def load_baseline(version: Any) -> dict[str, Any]:
    import mlflow

    try:
        return mlflow.artifacts.load_dict(f"runs:/{version.run_id}/{BASELINE_ARTIFACT}")
    except Exception as exc:  # MLflow raises several types for a missing artifact
        raise StageFailure(f"model version {version.version} has no drift baseline ({BASELINE_ARTIFACT} in run "
                           f"{version.run_id}). Fix: retrain it with this version of the project") from exc
