"""The logged models: MLflow pyfuncs around fitted estimators that fix the feature order and the
categories seen in training (unseen categories score as missing) and return the prediction, plus
the probability for classification.  Imports nothing from Spark, so serving stays light.

* ``EstimatorModel``: one estimator; artifacts ``model`` (``Estimator.dumps``) and ``meta``.
* ``SegmentedModel``: one estimator per segment behind one model that routes each row to its
  segment's estimator; artifact ``segments``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

from ..names import PACKAGE, SCORE_COLUMNS
from .estimators import Estimator, estimator_class
from .scoring import predictions, prepare_features

SEPARATOR = " | "


def model_code(folder: str, model_class: type[mlflow.pyfunc.PythonModel]) -> str:
    """The file MLflow logs as the model's code (models from code): it imports ``model_class`` from
    this package and sets an instance, where a pickled object would run arbitrary code on loading."""
    path = Path(folder) / "model_code.py"
    path.write_text(f"from mlflow.models import set_model\n\nfrom {PACKAGE}.ml.flavor import {model_class.__name__}\n\n"
                    f"set_model({model_class.__name__}())\n", encoding="utf-8")
    return str(path)


def segment_key(frame: pd.DataFrame, segment_by: list[str]) -> pd.Series:
    """The segment of every row: its ``segment_by`` values joined (``<null>`` for missing)."""
    return frame[segment_by].astype("string").fillna("<null>").agg(SEPARATOR.join, axis=1)


def load_estimator(text: str, meta: dict[str, Any]) -> Estimator:
    return estimator_class(meta.get("estimator", "")).loads(text, meta["problem_type"])


def predict_with(estimator: Estimator, meta: dict[str, Any], frame: pd.DataFrame) -> pd.DataFrame:
    features = prepare_features(frame, meta["features"], meta["categories"])
    return predictions(estimator.predict(features), meta["problem_type"], meta.get("threshold", 0.5))


class EstimatorModel(mlflow.pyfunc.PythonModel):
    """Artifacts: ``model`` (the estimator as text) and ``meta`` (estimator, features, categories,
    problem type, threshold)."""

    def load_context(self, context: Any) -> None:
        with open(context.artifacts["meta"], encoding="utf-8") as handle:
            self.meta = json.load(handle)
        # Versions registered before the estimator seam name the artifact "booster" (LightGBM text).
        model = context.artifacts.get("model") or context.artifacts["booster"]
        with open(model, encoding="utf-8") as handle:
            self.estimator = load_estimator(handle.read(), self.meta)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        return predict_with(self.estimator, self.meta, model_input)


class SegmentedModel(mlflow.pyfunc.PythonModel):
    """Artifact ``segments``: {"segment_by": [...], "problem_type": ..., "models": {key: {model, meta}}}."""

    def load_context(self, context: Any) -> None:
        with open(context.artifacts["segments"], encoding="utf-8") as handle:
            spec = json.load(handle)
        self.segment_by = spec["segment_by"]
        self.problem_type = spec["problem_type"]
        self.models = {key: (load_estimator(item["model"], item["meta"]), item["meta"])
                       for key, item in spec["models"].items()}

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        frame = model_input.reset_index(drop=True)
        keys = segment_key(frame, self.segment_by)
        columns = SCORE_COLUMNS[self.problem_type]
        out = pd.DataFrame(np.nan, index=frame.index, columns=columns)
        for key, rows in frame.groupby(keys, sort=False):
            if key not in self.models:
                continue  # a segment without a model scores as missing
            estimator, meta = self.models[key]
            scored = predict_with(estimator, meta, rows)
            out.loc[rows.index, columns] = scored[columns].to_numpy()
        return out
