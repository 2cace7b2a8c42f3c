"""Many models: one model per segment (e.g. category x region), trained in parallel with
``applyInPandas`` and served through one pyfunc that routes each row to its segment's model.

Trade-off: per-segment models fit local patterns and retrain independently, and one registered
model keeps inference a single call; but small segments get less data (a segment below
``training.min_rows`` is skipped and scores as missing), there are N models to monitor, and
cross-segment patterns are not shared.  Prefer one global model with the segment columns as
categorical features until the segments really behave differently.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import pandas as pd

from ..config import TrainingConfig
from .fitting import TrainingDataError, fit
from .flavor import segment_key

SEGMENT_SCHEMA = "segment string, model string, meta string, metrics string, split string, error string"


def fit_segments(frame: Any, keys: list[str], timestamp: str, problem_type: str, config: TrainingConfig,
                 segment_by: list[str]) -> pd.DataFrame:
    """Fit every segment of a Spark frame in parallel; one result row per segment."""
    settings = json.dumps({"keys": keys, "timestamp": timestamp, "problem_type": problem_type,
                           "config": asdict(config), "segment_by": segment_by})

    def fit_group(group: pd.DataFrame) -> pd.DataFrame:
        opts = json.loads(settings)
        segment = segment_key(group.head(1), opts["segment_by"]).iloc[0]
        try:
            constant = [c for c in opts["segment_by"] if c not in opts["keys"]]  # keys are never features
            model = fit(group.drop(columns=constant), opts["keys"], opts["timestamp"],
                        opts["problem_type"], TrainingConfig(**opts["config"]))
        except TrainingDataError as exc:
            return pd.DataFrame([{"segment": segment, "model": None, "meta": None, "metrics": None,
                                  "split": None, "error": str(exc)}])
        return pd.DataFrame([{"segment": segment, "model": model.estimator.dumps(),
                              "meta": json.dumps(model.meta), "metrics": json.dumps(model.metrics),
                              "split": json.dumps(model.split), "error": None}])

    return frame.groupBy(*segment_by).applyInPandas(fit_group, schema=SEGMENT_SCHEMA).toPandas()
