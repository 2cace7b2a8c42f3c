"""Many models: one LightGBM model per segment (e.g. category x region), trained in parallel with
``applyInPandas`` and served through one pyfunc that routes each row to its segment's model.

Trade-off: per-segment models fit local patterns and retrain independently, and one registered
model keeps inference a single call; but small segments get less data (a segment below
``training.min_rows`` is skipped and scores as missing), there are N models to monitor, and
cross-segment patterns are not shared.  Prefer one global model with the segment columns as
categorical features until the segments really behave differently.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import asdict
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

from .config import TrainingConfig
from .scoring import predictions, prepare_features

SEGMENT_SCHEMA = "segment string, model string, meta string, metrics string, split string, error string"
SEPARATOR = " | "


def segment_key(frame: pd.DataFrame, segment_by: list[str]) -> pd.Series:
    return frame[segment_by].astype("string").fillna("<null>").agg(SEPARATOR.join, axis=1)


def fit_segments(frame: Any, keys: list[str], timestamp: str, problem_type: str, config: TrainingConfig,
                 segment_by: list[str]) -> pd.DataFrame:
    """Fit every segment of a Spark frame in parallel; one result row per segment."""
    settings = json.dumps({"keys": keys, "timestamp": timestamp, "problem_type": problem_type,
                           "config": asdict(config), "segment_by": segment_by})
    package = str(__package__)

    def fit_group(group: pd.DataFrame) -> pd.DataFrame:
        training = importlib.import_module(f"{package}.training")
        TrainingDataError, fit = training.TrainingDataError, training.fit

        opts = json.loads(settings)
        segment = segment_key(group.head(1), opts["segment_by"]).iloc[0]
        try:
            model = fit(group.drop(columns=opts["segment_by"]), opts["keys"], opts["timestamp"],
                        opts["problem_type"], TrainingConfig(**opts["config"]))
        except TrainingDataError as exc:
            return pd.DataFrame([{"segment": segment, "model": None, "meta": None, "metrics": None,
                                  "split": None, "error": str(exc)}])
        return pd.DataFrame([{"segment": segment, "model": model.booster.model_to_string(),
                              "meta": json.dumps(model.meta), "metrics": json.dumps(model.metrics),
                              "split": json.dumps(model.split), "error": None}])

    return frame.groupBy(*segment_by).applyInPandas(fit_group, schema=SEGMENT_SCHEMA).toPandas()


class SegmentedModel(mlflow.pyfunc.PythonModel):
    """Artifact ``segments``: {"segment_by": [...], "problem_type": ..., "models": {key: {model, meta}}}."""

    def load_context(self, context: Any) -> None:
        import lightgbm as lgb

        with open(context.artifacts["segments"], encoding="utf-8") as handle:
            spec = json.load(handle)
        self.segment_by = spec["segment_by"]
        self.problem_type = spec["problem_type"]
        self.models = {key: (lgb.Booster(model_str=item["model"]), item["meta"])
                       for key, item in spec["models"].items()}

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        frame = model_input.reset_index(drop=True)
        keys = segment_key(frame, self.segment_by)
        columns = ["prediction", "probability"] if self.problem_type == "classification" else ["prediction"]
        out = pd.DataFrame(np.nan, index=frame.index, columns=columns)
        for key, rows in frame.groupby(keys, sort=False):
            if key not in self.models:
                continue  # a segment without a model scores as missing
            booster, meta = self.models[key]
            raw = booster.predict(prepare_features(rows, meta["features"], meta["categories"]),
                                  num_iteration=booster.best_iteration or None)
            scored = predictions(np.asarray(raw), self.problem_type, meta.get("threshold", 0.5))
            out.loc[rows.index, columns] = scored[columns].to_numpy()
        return out
