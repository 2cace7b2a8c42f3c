"""The estimator seam: the only module that names a modelling library.

Training, tuning, the logged model and the many-models path talk to ``Estimator``: fit with
early stopping on the validation period, predict (the positive-class probability, or the
value), feature importance, native per-feature contributions where the library has them, and
save/load as text.  ``training.estimator`` in ``conf/project.yml`` picks one of ``ESTIMATORS``;
adding a library is one class here plus its pin in ``requirements/base.txt``.
"""

from __future__ import annotations

import base64
import pickle
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ..config import ConfigError, TrainingConfig


class Estimator(ABC):
    """One fitted model of a library.  Inputs are pandas frames whose categorical columns have
    the pandas ``category`` dtype with the training categories, and numbers as float."""

    name: ClassVar[str]
    # What ``feature_importance`` measures, for plot titles and the model card.
    importance_kind: ClassVar[str]

    def __init__(self, problem_type: str, config: TrainingConfig) -> None:
        self.problem_type = problem_type
        self.config = config

    @abstractmethod
    def fit(self, x_train: pd.DataFrame, y_train: np.ndarray, x_valid: pd.DataFrame, y_valid: np.ndarray) -> None:
        """Fit on the training period, stopping early on the validation period."""

    @abstractmethod
    def predict(self, x: pd.DataFrame) -> np.ndarray:
        """The positive-class probability (classification) or the predicted value (regression)."""

    @property
    @abstractmethod
    def iterations(self) -> int:
        """Boosting rounds kept after early stopping."""

    @abstractmethod
    def feature_importance(self, x: pd.DataFrame, y: np.ndarray) -> dict[str, float]:
        """Importance of each feature (``x``, ``y``: a held-out sample, for libraries that measure it)."""

    def contributions(self, x: pd.DataFrame) -> np.ndarray | None:
        """Per-row, per-feature contributions plus a bias column (SHAP values), if the library has them."""
        return None

    @abstractmethod
    def dumps(self) -> str:
        """The fitted model as text (an MLflow artifact, or a cell of a Spark frame)."""

    @classmethod
    @abstractmethod
    def loads(cls, text: str, problem_type: str) -> Estimator:
        """The model saved by ``dumps``, ready to predict."""

    @staticmethod
    def search_space(trial: Any) -> dict[str, object]:
        """Parameters Optuna tunes (``trial.suggest_*``); empty: nothing to tune."""
        return {}


# What ``training.params`` may override: OpenMP's thread count (every core, or OMP_NUM_THREADS), and
# row-wise histograms, which spare LightGBM timing both layouts on every training.
LIGHTGBM_DEFAULTS = {"num_threads": 0, "force_row_wise": True}


class LightGBMEstimator(Estimator):
    """Gradient-boosted trees with LightGBM's native categorical handling (the default)."""

    name = "lightgbm"
    importance_kind = "total gain"

    def __init__(self, problem_type: str, config: TrainingConfig, booster: Any = None) -> None:
        super().__init__(problem_type, config)
        self.booster = booster

    def fit(self, x_train: pd.DataFrame, y_train: np.ndarray, x_valid: pd.DataFrame, y_valid: np.ndarray) -> None:
        import lightgbm as lgb

        config = self.config
        objective = ({"objective": "binary", "metric": "binary_logloss"} if self.problem_type == "classification"
                     else {"objective": "regression", "metric": "rmse"})
        params = {**LIGHTGBM_DEFAULTS, **config.params, **objective, "seed": config.seed, "deterministic": True,
                  "verbosity": -1}
        categorical = [c for c in x_train.columns if isinstance(x_train[c].dtype, pd.CategoricalDtype)]
        train_set = lgb.Dataset(x_train, label=y_train, categorical_feature=categorical or "auto", free_raw_data=False)
        valid_set = lgb.Dataset(x_valid, label=y_valid, reference=train_set)
        self.booster = lgb.train(params, train_set, num_boost_round=config.num_boost_round, valid_sets=[valid_set],
                                 callbacks=[lgb.early_stopping(config.early_stopping_rounds, verbose=False)])

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.booster.predict(x, num_iteration=self.booster.best_iteration or None))

    @property
    def iterations(self) -> int:
        return int(self.booster.best_iteration or self.booster.current_iteration())

    def feature_importance(self, x: pd.DataFrame, y: np.ndarray) -> dict[str, float]:
        gains = self.booster.feature_importance(importance_type="gain")
        return {name: float(g) for name, g in zip(self.booster.feature_name(), gains, strict=True)}

    def contributions(self, x: pd.DataFrame) -> np.ndarray | None:
        return np.asarray(self.booster.predict(x, num_iteration=self.booster.best_iteration or None,
                                               pred_contrib=True))

    def dumps(self) -> str:
        return str(self.booster.model_to_string())

    @classmethod
    def loads(cls, text: str, problem_type: str) -> Estimator:
        import lightgbm as lgb

        return cls(problem_type, TrainingConfig(), lgb.Booster(model_str=text))

    @staticmethod
    def search_space(trial: Any) -> dict[str, object]:
        return {
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
            "num_leaves": trial.suggest_int("num_leaves", 8, 128, log=True),
            "min_data_in_leaf": trial.suggest_int("min_data_in_leaf", 10, 200, log=True),
            "feature_fraction": trial.suggest_float("feature_fraction", 0.5, 1.0),
        }


class HistGradientBoostingEstimator(Estimator):
    """scikit-learn's ``HistGradientBoostingClassifier`` / ``Regressor``: no extra dependency,
    categorical columns from their dtype, early stopping on the validation period."""

    name = "sklearn_hist_gradient_boosting"
    importance_kind = "permutation importance on the validation period"

    def __init__(self, problem_type: str, config: TrainingConfig, model: Any = None) -> None:
        super().__init__(problem_type, config)
        self.model = model

    def fit(self, x_train: pd.DataFrame, y_train: np.ndarray, x_valid: pd.DataFrame, y_valid: np.ndarray) -> None:
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        config = self.config
        kind = HistGradientBoostingClassifier if self.problem_type == "classification" else HistGradientBoostingRegressor
        self.model = kind(max_iter=config.num_boost_round, early_stopping=True,
                          n_iter_no_change=config.early_stopping_rounds, categorical_features="from_dtype",
                          random_state=config.seed, **config.params)
        labels = y_train.astype(int) if self.problem_type == "classification" else y_train
        valid = y_valid.astype(int) if self.problem_type == "classification" else y_valid
        self.model.fit(x_train, labels, X_val=x_valid, y_val=valid)

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        if self.problem_type == "classification":
            return np.asarray(self.model.predict_proba(x)[:, 1])
        return np.asarray(self.model.predict(x), dtype="float64")

    @property
    def iterations(self) -> int:
        return int(self.model.n_iter_)

    def feature_importance(self, x: pd.DataFrame, y: np.ndarray) -> dict[str, float]:
        from sklearn.inspection import permutation_importance

        sample = x.sample(n=min(len(x), 5000), random_state=self.config.seed)
        truth = pd.Series(y, index=x.index).loc[sample.index].to_numpy()
        if self.problem_type == "classification":
            truth = truth.astype(int)
        result = permutation_importance(self.model, sample, truth, n_repeats=3, random_state=self.config.seed)
        return {name: float(v) for name, v in zip(x.columns, result.importances_mean, strict=True)}

    def dumps(self) -> str:
        return base64.b64encode(pickle.dumps(self.model)).decode("ascii")

    @classmethod
    def loads(cls, text: str, problem_type: str) -> Estimator:
        # The text is this project's own artifact, written by ``dumps`` in the training run.
        return cls(problem_type, TrainingConfig(), pickle.loads(base64.b64decode(text)))

    @staticmethod
    def search_space(trial: Any) -> dict[str, object]:
        return {
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
            "max_leaf_nodes": trial.suggest_int("max_leaf_nodes", 8, 128, log=True),
            "min_samples_leaf": trial.suggest_int("min_samples_leaf", 10, 200, log=True),
            "l2_regularization": trial.suggest_float("l2_regularization", 1e-6, 1.0, log=True),
        }


ESTIMATORS: dict[str, type[Estimator]] = {cls.name: cls for cls in (LightGBMEstimator, HistGradientBoostingEstimator)}
DEFAULT_ESTIMATOR = LightGBMEstimator.name


def estimator_class(name: str) -> type[Estimator]:
    """The estimator named by ``training.estimator`` (empty: the default)."""
    name = name or DEFAULT_ESTIMATOR
    if name not in ESTIMATORS:
        raise ConfigError(f"conf/project.yml: training.estimator is {name!r}. Fix: use one of {', '.join(ESTIMATORS)}")
    return ESTIMATORS[name]
