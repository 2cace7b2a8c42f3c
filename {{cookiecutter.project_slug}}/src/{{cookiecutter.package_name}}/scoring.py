"""Turning a frame into model inputs and raw scores into predictions; pandas and numpy only,
shared by training, the logged pyfunc model and batch scoring."""

from __future__ import annotations

import numpy as np
import pandas as pd


def prepare_features(frame: pd.DataFrame, features: list[str], categories: dict[str, list[str]]) -> pd.DataFrame:
    """Columns in training order; categorical columns with the training categories; numbers as float."""
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise ValueError(f"the input lacks feature columns {missing}")
    out = pd.DataFrame(index=frame.index)
    for name in features:
        if name in categories:
            out[name] = pd.Categorical(frame[name].astype("string"), categories=categories[name])
        else:
            out[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    return out


def predictions(raw: np.ndarray, problem_type: str, threshold: float = 0.5) -> pd.DataFrame:
    if problem_type == "classification":
        return pd.DataFrame({"prediction": (raw >= threshold).astype("int64"), "probability": raw.astype("float64")})
    return pd.DataFrame({"prediction": raw.astype("float64")})
