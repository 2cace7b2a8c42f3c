"""Train a LightGBM model on the point-in-time training set (or gold), track it in MLflow and
register it.  The pure parts (checks, time split, fitting, metrics) take pandas frames; the
stage function at the bottom is the I/O edge."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .config import ProjectConfig, TrainingConfig, load_project
from .contract import Contract, load_contracts
from .features import feature_spec
from .runtime import Runtime
from .scoring import predictions, prepare_features
from .stage import RunContext, StageFailure, StageOutput

LABEL = "label"


class TrainingDataError(StageFailure):
    """The training data cannot produce a sound model; the message says why and what to fix."""


@dataclass
class FittedModel:
    booster: Any
    features: list[str]
    categories: dict[str, list[str]]
    problem_type: str
    metrics: dict[str, float]
    valid_frame: pd.DataFrame
    valid_output: pd.DataFrame
    split: dict[str, Any] = field(default_factory=dict)

    @property
    def meta(self) -> dict[str, Any]:
        return {"features": self.features, "categories": self.categories, "problem_type": self.problem_type}


# --- pure parts ----------------------------------------------------------------------------------


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
                                f"found {len(times)}. Fix: ingest more periods")
    n_valid = min(max(1, round(len(times) * fraction)), len(times) - 1)
    cutoff = times[-n_valid]
    return frame[frame[timestamp] < cutoff], frame[frame[timestamp] >= cutoff]


def categories_of(train: pd.DataFrame, features: list[str]) -> dict[str, list[str]]:
    """Categories fixed at training time: every non-numeric feature column."""
    return {
        c: sorted(train[c].dropna().astype(str).unique().tolist())
        for c in features
        if not (pd.api.types.is_numeric_dtype(train[c]) or pd.api.types.is_bool_dtype(train[c]))
    }


def evaluate(problem_type: str, truth: np.ndarray, output: pd.DataFrame) -> dict[str, float]:
    from sklearn import metrics

    if problem_type == "classification":
        proba = output["probability"].to_numpy()
        return {
            "auc": float(metrics.roc_auc_score(truth, proba)),
            "pr_auc": float(metrics.average_precision_score(truth, proba)),
            "log_loss": float(metrics.log_loss(truth, np.clip(proba, 1e-15, 1 - 1e-15), labels=[0, 1])),
            "f1": float(metrics.f1_score(truth, output["prediction"].to_numpy(), zero_division=0)),
        }
    pred = output["prediction"].to_numpy()
    nonzero = truth != 0
    mape = float(np.mean(np.abs((truth[nonzero] - pred[nonzero]) / truth[nonzero]))) if nonzero.any() else float("nan")
    return {
        "rmse": float(np.sqrt(metrics.mean_squared_error(truth, pred))),
        "mae": float(metrics.mean_absolute_error(truth, pred)),
        "mape": mape,
    }


def fit(frame: pd.DataFrame, keys: list[str], timestamp: str, problem_type: str, config: TrainingConfig,
        expected_features: list[str] | None = None) -> FittedModel:
    """Check, split by time, fit with early stopping on the validation period, evaluate."""
    import lightgbm as lgb

    ordered = frame.sort_values([timestamp, *keys], kind="mergesort").reset_index(drop=True)
    features = feature_columns(ordered, keys, timestamp)
    labelled = check_training_data(ordered, problem_type, features, config.min_rows, expected_features)
    train, valid = time_split(labelled, timestamp, config.validation_fraction)
    if problem_type == "classification" and min(train[LABEL].nunique(), valid[LABEL].nunique()) < 2:
        raise TrainingDataError("the training or the validation period has a single class. Fix: change "
                                "training.validation_fraction or ingest more history")
    categories = categories_of(train, features)
    x_train, x_valid = (prepare_features(part, features, categories) for part in (train, valid))
    objective = {"objective": "binary", "metric": "binary_logloss"} if problem_type == "classification" else {
        "objective": "regression", "metric": "rmse"}
    params = {**config.params, **objective, "seed": config.seed, "deterministic": True, "num_threads": 2,
              "force_row_wise": True, "verbosity": -1}
    train_set = lgb.Dataset(x_train, label=train[LABEL].astype(float), categorical_feature=list(categories) or "auto",
                            free_raw_data=False)
    valid_set = lgb.Dataset(x_valid, label=valid[LABEL].astype(float), reference=train_set)
    booster = lgb.train(params, train_set, num_boost_round=config.num_boost_round, valid_sets=[valid_set],
                        callbacks=[lgb.early_stopping(config.early_stopping_rounds, verbose=False)])
    raw = booster.predict(x_valid, num_iteration=booster.best_iteration or None)
    output = predictions(np.asarray(raw), problem_type)
    metrics = evaluate(problem_type, valid[LABEL].to_numpy(dtype=float), output)
    metrics["best_iteration"] = float(booster.best_iteration or booster.current_iteration())
    split = {"train_rows": len(train), "valid_rows": len(valid), "train_until": str(train[timestamp].max()),
             "valid_from": str(valid[timestamp].min()), "valid_until": str(valid[timestamp].max())}
    return FittedModel(booster, features, categories, problem_type, metrics, valid, output, split)


TUNED_METRIC = {"classification": "log_loss", "regression": "rmse"}


def tune(frame: pd.DataFrame, keys: list[str], timestamp: str, problem_type: str, config: TrainingConfig,
         on_trial: Any = None) -> tuple[dict[str, object], list[dict[str, Any]]]:
    """Optuna (seeded TPE) over the main LightGBM parameters, ``config.tuning_trials`` trials, each
    scored on the validation period; returns the best parameters and every trial."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=config.seed))
    trials: list[dict[str, Any]] = []

    def objective(trial: Any) -> float:
        params = {
            **config.params,
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
            "num_leaves": trial.suggest_int("num_leaves", 8, 128, log=True),
            "min_data_in_leaf": trial.suggest_int("min_data_in_leaf", 10, 200, log=True),
            "feature_fraction": trial.suggest_float("feature_fraction", 0.5, 1.0),
        }
        model = fit(frame, keys, timestamp, problem_type, replace(config, params=params))
        value = model.metrics[TUNED_METRIC[problem_type]]
        trials.append({"number": trial.number, "params": params, "metrics": model.metrics})
        if on_trial:
            on_trial(trials[-1])
        return value

    study.optimize(objective, n_trials=config.tuning_trials)
    return {**config.params, **study.best_params}, trials


# --- plots and documents ---------------------------------------------------------------------------


def _plots(model: FittedModel) -> dict[str, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn import metrics

    figures = {}
    gains = model.booster.feature_importance(importance_type="gain")
    order = np.argsort(gains)
    fig, ax = plt.subplots(figsize=(7, max(3, 0.3 * len(order))))
    ax.barh(np.array(model.features)[order], gains[order], color="#1f77b4")
    ax.set_title("Feature importance (total gain)")
    fig.tight_layout()
    figures["plots/feature_importance.png"] = fig

    truth = model.valid_frame[LABEL].to_numpy(dtype=float)
    if model.problem_type == "classification":
        proba = model.valid_output["probability"].to_numpy()
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
        metrics.RocCurveDisplay.from_predictions(truth, proba, ax=axes[0])
        axes[0].set_title(f"ROC (AUC {model.metrics['auc']:.3f})")
        metrics.PrecisionRecallDisplay.from_predictions(truth, proba, ax=axes[1])
        axes[1].set_title(f"Precision-recall (AP {model.metrics['pr_auc']:.3f})")
        metrics.ConfusionMatrixDisplay.from_predictions(truth.astype(int), model.valid_output["prediction"],
                                                        ax=axes[2], colorbar=False)
        axes[2].set_title("Confusion matrix (threshold 0.5)")
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
        "## Training data",
        *[f"- `{s['table']}` Delta version {s['version']}" for s in sources],
        f"- {model.split['train_rows']} training rows up to {model.split['train_until']}; "
        f"{model.split['valid_rows']} validation rows from {model.split['valid_from']} to "
        f"{model.split['valid_until']} (time-based split, no overlap)",
        f"- features: {', '.join(model.features)}",
        f"- categorical: {', '.join(model.categories) or 'none'} (categories fixed at training; unseen values "
        "score as missing)",
        "",
        "## Metrics (validation period)",
        *[f"- {name}: {value:.4f}" for name, value in model.metrics.items()],
        "",
        "## Limitations",
        "- Trained on history up to the validation cutoff; drift in the inputs degrades it (see monitoring).",
        "- Validation status is set by the validation gate before any promotion.",
        f"- Code version: {commit}",
    ]
    return "\n".join(lines) + "\n"


def git_commit(root: Path) -> str:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
    except OSError:
        return "unknown"
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def pip_requirements(root: Path) -> list[str]:
    """The runtime pins of requirements/base.txt: explicit, so logging skips the slow inference."""
    lines = (root / "requirements" / "base.txt").read_text(encoding="utf-8").splitlines()
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


# --- the stage -----------------------------------------------------------------------------------


def training_frame(rt: Runtime, project: ProjectConfig, contract: Contract) -> tuple[Any, list[dict[str, Any]],
                                                                                   list[str], str]:
    """The Spark training frame, its input tables with Delta versions, the keys and the time column."""
    if not rt.exists(contract.gold_table):
        raise TrainingDataError(f"{rt.table(contract.gold_table)} does not exist. Fix: run the ingest stages first")
    sources = [{"table": rt.table(contract.gold_table), "version": rt.version(contract.gold_table),
                "short": contract.gold_table}]
    if project.feature_store:
        spec = feature_spec(contract, project.lookback_days)
        if not rt.exists(spec.table):
            raise TrainingDataError(f"{rt.table(spec.table)} does not exist. Fix: run the features stage first")
        labels = rt.read(contract.gold_table, version=sources[0]["version"]).select(*spec.keys, spec.timestamp, LABEL)
        frame = rt.training_set(labels, spec.table, list(spec.keys), spec.timestamp, spec.lookback)
        sources.append({"table": rt.table(spec.table), "version": rt.version(spec.table), "short": spec.table})
        return frame, sources, list(spec.keys), spec.timestamp
    frame = rt.read(contract.gold_table, version=sources[0]["version"]).drop("_batch_id")
    keys = [k for k in contract.gold.keys if k != contract.gold.timestamp]
    return frame, sources, keys, contract.gold.timestamp


def train(rt: Runtime, ctx: RunContext) -> StageOutput:
    import mlflow
    from mlflow.models import infer_signature

    from .model import LightGBMModel

    project = load_project(ctx.root)
    contract = load_contracts(ctx.root)[project.source]
    frame, sources, keys, timestamp = training_frame(rt, project, contract)
    ctx.log(f"  train: collecting the training set from {', '.join(s['table'] for s in sources)}")
    pdf = frame.toPandas()
    started = time.perf_counter()
    config, trials = project.training, []
    if config.tuning_trials > 0:
        ctx.log(f"  train: tuning with Optuna, {config.tuning_trials} trials")
        best, trials = tune(pdf, keys, timestamp, project.problem_type, config,
                            on_trial=lambda t: ctx.log(f"    trial {t['number']}: "
                                                       f"{TUNED_METRIC[project.problem_type]}="
                                                       f"{t['metrics'][TUNED_METRIC[project.problem_type]]:.4f}"))
        config = replace(config, params=best)
    model = fit(pdf, keys, timestamp, project.problem_type, config, expected_features=list(contract.gold.columns))
    fit_seconds = time.perf_counter() - started
    ctx.log(f"  train: fitted in {fit_seconds:.1f}s on {model.split['train_rows']} rows; "
            + ", ".join(f"{k}={v:.4f}" for k, v in model.metrics.items()))

    logging_started = time.perf_counter()
    rt.configure_mlflow()
    rt.use_experiment(ctx.experiment or project.experiment)
    model_name = rt.model_name(ctx.model_name or project.model_name)
    commit = git_commit(ctx.root)
    with mlflow.start_run(run_name=f"train-{ctx.run_id[:8]}") as run:
        mlflow.set_tags({"mlflow.source.git.commit": commit, "pipeline_run_id": ctx.run_id,
                         "problem_type": project.problem_type, "source": contract.name})
        mlflow.log_params({"seed": config.seed, "num_boost_round": config.num_boost_round,
                           "early_stopping_rounds": config.early_stopping_rounds,
                           "validation_fraction": config.validation_fraction, "tuning_trials": config.tuning_trials,
                           "features": ",".join(model.features), **config.params, **model.split})
        for trial in trials:
            with mlflow.start_run(run_name=f"trial-{trial['number']}", nested=True):
                mlflow.log_params(trial["params"])
                mlflow.log_metrics(trial["metrics"])
        mlflow.log_metrics({**model.metrics, "fit_seconds": fit_seconds})
        for source in sources:
            mlflow.log_input(rt.lineage_dataset(source["short"], source["version"]), context="training")
        for path, figure in _plots(model).items():
            mlflow.log_figure(figure, path)
        card = model_card(project, contract, model, sources, model_name, commit)
        mlflow.log_text(card, "model_card.md")
        with tempfile.TemporaryDirectory() as tmp:
            booster_path = os.path.join(tmp, "booster.txt")
            meta_path = os.path.join(tmp, "meta.json")
            model.booster.save_model(booster_path)
            Path(meta_path).write_text(json.dumps(model.meta))
            example = model.valid_frame[model.features].head(5)
            # Integer columns cannot hold missing values at scoring time: declare them as doubles.
            example = example.astype({c: "float64" for c in example.select_dtypes("integer").columns})
            signature = infer_signature(example, model.valid_output.head(5))
            info = mlflow.pyfunc.log_model(
                name="model", python_model=LightGBMModel(), artifacts={"booster": booster_path, "meta": meta_path},
                code_paths=[str(Path(__file__).resolve().parent)], signature=signature, input_example=example,
                pip_requirements=pip_requirements(ctx.root))
        version = mlflow.register_model(info.model_uri, model_name)
        client = mlflow.MlflowClient()
        tags = {"git_commit": commit, "validation_status": "pending", "pipeline_run_id": ctx.run_id,
                "data_versions": json.dumps({s["table"]: s["version"] for s in sources}),
                **{f"metric_{k}": f"{v:.6g}" for k, v in model.metrics.items()}}
        for key, value in tags.items():
            client.set_model_version_tag(model_name, version.version, key, value)
        client.update_model_version(model_name, version.version, description=card)
        logging_seconds = time.perf_counter() - logging_started
        mlflow.log_metric("mlflow_logging_seconds", logging_seconds)
    return StageOutput(details={
        "model": model_name, "version": str(version.version), "run_id": run.info.run_id,
        "metrics": {k: round(v, 5) for k, v in model.metrics.items()}, "split": model.split,
        "data_versions": {s["table"]: s["version"] for s in sources},
        "fit_seconds": round(fit_seconds, 2), "mlflow_logging_seconds": round(logging_seconds, 2),
    })
