"""The logged model: a LightGBM booster behind an MLflow pyfunc that fixes the feature order and
the categories seen in training (unseen categories score as missing), and returns
probabilities for classification.  Imports nothing from Spark, so serving stays light."""

from __future__ import annotations

import json
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

from .scoring import predictions, prepare_features


class LightGBMModel(mlflow.pyfunc.PythonModel):
    """Artifacts: ``booster`` (LightGBM text model) and ``meta`` (features, categories, problem type)."""

    def load_context(self, context: Any) -> None:
        import lightgbm as lgb

        self.booster = lgb.Booster(model_file=context.artifacts["booster"])
        with open(context.artifacts["meta"], encoding="utf-8") as handle:
            self.meta = json.load(handle)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        features = prepare_features(model_input, self.meta["features"], self.meta["categories"])
        raw = self.booster.predict(features, num_iteration=self.booster.best_iteration or None)
        return predictions(np.asarray(raw), self.meta["problem_type"], self.meta.get("threshold", 0.5))
