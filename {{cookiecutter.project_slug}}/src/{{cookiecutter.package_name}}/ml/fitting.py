"""Fitting one model on a pandas frame: data checks, the time split, categories, early stopping
on the validation period, the F1 decision threshold, metrics, and Optuna tuning.  Which library
fits is the estimator seam's business (``estimators.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from ..config import TrainingConfig
from ..context import StageFailure
from ..names import LABEL
from .estimators import Estimator, estimator_class
from .metrics import TUNED_METRIC, best_f1_threshold, evaluate
from .scoring import predictions, prepare_features


class TrainingDataError(StageFailure):
    """The training data cannot produce a sound model; the message says why and what to fix."""


@dataclass
class FittedModel:
    estimator: Estimator
    features: list[str]
    categories: dict[str, list[str]]
    problem_type: str
    metrics: dict[str, float]
    valid_frame: pd.DataFrame
    valid_output: pd.DataFrame
    split: dict[str, Any] = field(default_factory=dict)
    threshold: float = 0.5

    @property
    def meta(self) -> dict[str, Any]:
        """What the logged model needs besides the fitted estimator."""
        return {"estimator": self.estimator.name, "features": self.features, "categories": self.categories,
                "problem_type": self.problem_type, "threshold": self.threshold}


def feature_columns(frame: pd.DataFrame, keys: list[str], timestamp: str) -> list[str]:
    skip = {*keys, timestamp, LABEL}
    return [c for c in frame.columns if c not in skip and not c.startswith("_")]


def check_training_data(frame: pd.DataFrame, problem_type: str, features: list[str], min_rows: int,
                        expected_features: list[str] | None = None) -> pd.DataFrame:
    """Fail fast, with the fix, on data no model should be trained on; returns labelled rows."""
    if LABEL not in frame.columns:
        raise TrainingDataError("the training data has no 'label' column. Fix: set label.column in the data "
                                "contract and rerun the ingest stages")
    absent = [c for c in (expected_features or []) if c not in frame.columns]
    if absent:
        raise TrainingDataError(f"feature columns {absent} are missing from the training data. Fix: rerun the "
                                "features stage, or remove them from gold.columns in the data contract")
    if not features:
        raise TrainingDataError("there are no feature columns. Fix: list feature columns in gold.columns")
    labelled = frame[frame[LABEL].notna()]
    if len(labelled) < min_rows:
        raise TrainingDataError(f"only {len(labelled)} labelled rows (need at least {min_rows}, "
                                "training.min_rows in conf/project.yml). Fix: ingest more data")
    if problem_type == "classification":
        classes = sorted(labelled[LABEL].unique().tolist())
        if len(classes) < 2:
            raise TrainingDataError(f"the label has a single class {classes}. Fix: check label.positive in the "
                                    "data contract (which values mean the positive class)")
    return labelled


def time_split(frame: pd.DataFrame, timestamp: str, fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out the latest ``fraction`` of distinct timestamps: every training row is earlier than
    every validation row."""
    times = np.sort(frame[timestamp].dropna().unique())
    if len(times) < 2:
        raise TrainingDataError(f"a time-based split needs at least two distinct values of {timestamp!r}; "
                                f"found {len(times)}. Fix: ingest more periods, or set training.holdout to auto, "
                                "random or group in conf/project.yml")
    n_valid = min(max(1, round(len(times) * fraction)), len(times) - 1)
    cutoff = times[-n_valid]
    return frame[frame[timestamp] < cutoff], frame[frame[timestamp] >= cutoff]


def random_split(frame: pd.DataFrame, problem_type: str, fraction: float,
                 seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A seeded random holdout of ``fraction`` of the rows, stratified by the label for classification."""
    from sklearn.model_selection import train_test_split

    stratify = frame[LABEL] if problem_type == "classification" and frame[LABEL].value_counts().min() >= 2 else None
    train, valid = train_test_split(frame, test_size=fraction, random_state=seed, stratify=stratify)
    return train.sort_index(), valid.sort_index()


def group_split(frame: pd.DataFrame, keys: list[str], fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out the entities whose key hash falls in the last ``fraction``: every row of an entity
    is on one side, and an entity keeps its side as data grows."""
    buckets = pd.util.hash_pandas_object(frame[keys].astype("string"), index=False).to_numpy() % 10_000
    held = buckets >= round((1 - fraction) * 10_000)
    if held.all() or not held.any():
        raise TrainingDataError(f"a group holdout by {keys} needs more entities (found "
                                f"{frame[keys].drop_duplicates().shape[0]}). Fix: ingest more entities, or set "
                                "training.holdout to random")
    return frame[~held], frame[held]


def split(frame: pd.DataFrame, keys: list[str], timestamp: str, problem_type: str,
          config: TrainingConfig) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Training and holdout rows by ``training.holdout``, and what was chosen and why.  ``auto`` takes
    the time split when there are at least two periods, else a group split when entities repeat,
    else a stratified random split (a snapshot table: one row per entity, one period)."""
    strategy, reason = config.holdout, "set in conf/project.yml (training.holdout)"
    if strategy == "auto":
        periods = frame[timestamp].nunique()
        repeated = bool(keys) and frame.duplicated(keys).any()  # no keys: one series
        if periods >= 2:
            strategy, reason = "time", f"{periods} distinct {timestamp} values"
        elif repeated:
            strategy, reason = "group", f"one {timestamp} value and entities with several rows"
        else:
            strategy, reason = "random", f"one {timestamp} value and one row per entity (a snapshot)"
    if strategy == "time":
        train, valid = time_split(frame, timestamp, config.validation_fraction)
    elif strategy == "group":
        train, valid = group_split(frame, keys, config.validation_fraction)
    else:
        train, valid = random_split(frame, problem_type, config.validation_fraction, config.seed)
    return train, valid, {"holdout": strategy, "holdout_reason": reason}


def categories_of(train: pd.DataFrame, features: list[str]) -> dict[str, list[str]]:
    """Categories fixed at training time: every non-numeric feature column."""
    return {
        c: sorted(train[c].dropna().astype(str).unique().tolist())
        for c in features
        if not (pd.api.types.is_numeric_dtype(train[c]) or pd.api.types.is_bool_dtype(train[c]))
    }


def fit(frame: pd.DataFrame, keys: list[str], timestamp: str, problem_type: str, config: TrainingConfig,
        expected_features: list[str] | None = None) -> FittedModel:
    """Check, split by time, fit with early stopping on the validation period, evaluate."""
    ordered = ordered_rows(frame, keys, timestamp)
    features = feature_columns(ordered, keys, timestamp)
    labelled = check_training_data(ordered, problem_type, features, config.min_rows, expected_features)
    train, valid, chosen = split(labelled, keys, timestamp, problem_type, config)
    if problem_type == "classification" and min(train[LABEL].nunique(), valid[LABEL].nunique()) < 2:
        raise TrainingDataError("the training or the validation period has a single class. Fix: change "
                                "training.validation_fraction or ingest more history")
    # A feature with no value in the training rows (a 52-period lag on a shorter history) teaches
    # nothing and some estimators cannot bin it: it is left out and named in the split summary.
    empty = [c for c in features if train[c].isna().all()]
    features = [c for c in features if c not in empty]
    categories = categories_of(train, features)
    x_train, x_valid = (prepare_features(part, features, categories) for part in (train, valid))
    estimator = estimator_class(config.estimator)(problem_type, config)
    estimator.fit(x_train, train[LABEL].to_numpy(dtype=float), x_valid, valid[LABEL].to_numpy(dtype=float))
    threshold = 0.5
    if problem_type == "classification":
        threshold = best_f1_threshold(train[LABEL].to_numpy(dtype=float), estimator.predict(x_train))
    output = predictions(estimator.predict(x_valid), problem_type, threshold)
    metrics = evaluate(problem_type, valid[LABEL].to_numpy(dtype=float), output)
    metrics["best_iteration"] = float(estimator.iterations)
    summary = {**chosen, "train_rows": len(train), "valid_rows": len(valid),
               "train_until": str(train[timestamp].max()), "valid_from": str(valid[timestamp].min()),
               "valid_until": str(valid[timestamp].max()), **({"empty_features": ",".join(empty)} if empty else {})}
    return FittedModel(estimator, features, categories, problem_type, metrics, valid, output, summary, threshold)


def holdout_rows(frame: pd.DataFrame, keys: list[str], timestamp: str, problem_type: str,
                 config: TrainingConfig) -> pd.DataFrame:
    """The holdout ``fit`` uses for the same frame and settings (the validation gate re-scores it);
    with ``training.segment_by``, each segment's own holdout, as each segment was fitted."""
    if config.segment_by:
        parts = []
        for _, group in frame.groupby(list(config.segment_by), dropna=False):
            try:
                parts.append(holdout_rows(group, keys, timestamp, problem_type, replace(config, segment_by=[])))
            except TrainingDataError:
                continue  # a segment too small to train has no model and no holdout
        return pd.concat(parts) if parts else frame.head(0)
    return split(ordered_rows(frame, keys, timestamp), keys, timestamp, problem_type, config)[1]


def ordered_rows(frame: pd.DataFrame, keys: list[str], timestamp: str) -> pd.DataFrame:
    """Rows in a fixed order (time, then keys), so that the same data always splits the same way."""
    return frame.sort_values([timestamp, *keys], kind="mergesort").reset_index(drop=True)


def tune(frame: pd.DataFrame, keys: list[str], timestamp: str, problem_type: str, config: TrainingConfig,
         on_trial: Any = None) -> tuple[dict[str, object], list[dict[str, Any]]]:
    """Optuna (seeded TPE) over the estimator's search space, ``config.tuning_trials`` trials, each
    scored on the validation period; returns the best parameters and every trial."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=config.seed))
    trials: list[dict[str, Any]] = []

    def objective(trial: Any) -> float:
        params = {**config.params, **estimator_class(config.estimator).search_space(trial)}
        model = fit(frame, keys, timestamp, problem_type, replace(config, params=params))
        value = model.metrics[TUNED_METRIC[problem_type]]
        trials.append({"number": trial.number, "params": params, "metrics": model.metrics})
        if on_trial:
            on_trial(trials[-1])
        return value

    study.optimize(objective, n_trials=config.tuning_trials)
    return {**config.params, **study.best_params}, trials
