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
from pyspark.sql import functions as F

from .config import ProjectConfig, TrainingConfig, load_project
from .contract import Contract, load_contracts
from .features import feature_spec
from .inference import score_frame
from .runtime import Runtime
from .scoring import predictions, prepare_features
from .stage import RunContext, StageFailure, StageOutput

LABEL = "label"
# The latest training set, exactly as the train stage read it (its sources and versions are logged).
TRAINING_SET_TABLE = "training_set"


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
    threshold: float = 0.5

    @property
    def meta(self) -> dict[str, Any]:
        return {"features": self.features, "categories": self.categories, "problem_type": self.problem_type,
                "threshold": self.threshold}


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


def best_f1_threshold(truth: np.ndarray, proba: np.ndarray) -> float:
    """The probability cut-off with the best F1 on the training period (the validation period stays
    untouched); with rare positives a fixed 0.5 would almost never predict the positive class."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(truth, proba)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(thresholds[int(np.argmax(f1[:-1]))]) if len(thresholds) else 0.5


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
    threshold = 0.5
    if problem_type == "classification":
        fitted = booster.predict(x_train, num_iteration=booster.best_iteration or None)
        threshold = best_f1_threshold(train[LABEL].to_numpy(dtype=float), np.asarray(fitted))
    raw = booster.predict(x_valid, num_iteration=booster.best_iteration or None)
    output = predictions(np.asarray(raw), problem_type, threshold)
    metrics = evaluate(problem_type, valid[LABEL].to_numpy(dtype=float), output)
    metrics["best_iteration"] = float(booster.best_iteration or booster.current_iteration())
    split = {"train_rows": len(train), "valid_rows": len(valid), "train_until": str(train[timestamp].max()),
             "valid_from": str(valid[timestamp].min()), "valid_until": str(valid[timestamp].max())}
    return FittedModel(booster, features, categories, problem_type, metrics, valid, output, split, threshold)


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
        *([f"- decision threshold: {model.threshold:.4f} (best F1 on the training period)"]
          if project.problem_type == "classification" else []),
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
    keys = contract.gold.entity_keys
    return frame, sources, keys, contract.gold.timestamp


@dataclass
class Candidate:
    """Everything logged for one training run, whichever way the model was built."""

    python_model: Any
    artifacts: dict[str, str]
    metrics: dict[str, float]
    params: dict[str, Any]
    split: dict[str, Any]
    figures: dict[str, Any]
    example: pd.DataFrame
    example_output: pd.DataFrame
    card: str
    nested: list[tuple[str, dict[str, Any], dict[str, float]]] = field(default_factory=list)


def _single_model(pdf: pd.DataFrame, keys: list[str], timestamp: str, project: ProjectConfig, contract: Contract,
                  sources: list[dict[str, Any]], model_name: str, commit: str, tmp: str,
                  ctx: RunContext) -> Candidate:
    from .model import LightGBMModel

    config, trials = project.training, []
    if config.tuning_trials > 0:
        metric = TUNED_METRIC[project.problem_type]
        ctx.log(f"  train: tuning with Optuna, {config.tuning_trials} trials")
        best, trials = tune(pdf, keys, timestamp, project.problem_type, config,
                            on_trial=lambda t: ctx.log(f"    trial {t['number']}: {metric}={t['metrics'][metric]:.4f}"))
        config = replace(config, params=best)
    model = fit(pdf, keys, timestamp, project.problem_type, config, expected_features=list(contract.gold.columns))
    booster_path, meta_path = os.path.join(tmp, "booster.txt"), os.path.join(tmp, "meta.json")
    model.booster.save_model(booster_path)
    Path(meta_path).write_text(json.dumps(model.meta))
    return Candidate(
        python_model=LightGBMModel(), artifacts={"booster": booster_path, "meta": meta_path}, metrics=model.metrics,
        params={"seed": config.seed, "num_boost_round": config.num_boost_round,
                "early_stopping_rounds": config.early_stopping_rounds,
                "validation_fraction": config.validation_fraction, "tuning_trials": config.tuning_trials,
                "features": ",".join(model.features), **config.params},
        split=model.split, figures=_plots(model), example=model.valid_frame[model.features].head(5),
        example_output=model.valid_output.head(5),
        card=model_card(project, contract, model, sources, model_name, commit),
        nested=[(f"trial-{t['number']}", t["params"], t["metrics"]) for t in trials])


def _segmented_model(frame: Any, keys: list[str], timestamp: str, project: ProjectConfig,
                     contract: Contract, sources: list[dict[str, Any]], model_name: str, commit: str, tmp: str,
                     ctx: RunContext) -> Candidate:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .segments import SegmentedModel, fit_segments

    config = project.training
    segment_by = list(config.segment_by)
    absent = [c for c in segment_by if c not in frame.columns]
    if absent:
        raise TrainingDataError(f"training.segment_by names {absent}, which the training data lacks. Fix: use "
                                f"columns of the gold table ({', '.join(frame.columns)})")
    ctx.log(f"  train: one model per {' x '.join(segment_by)} segment, in parallel with applyInPandas")
    results = fit_segments(frame, keys, timestamp, project.problem_type, config, segment_by)
    trained = results[results["error"].isna()].sort_values("segment")
    skipped = results[results["error"].notna()]
    for row in skipped.itertuples():
        ctx.log(f"    segment {row.segment} skipped: {row.error}")
    if trained.empty:
        raise TrainingDataError("no segment could be trained: " + "; ".join(
            f"{r.segment}: {r.error}" for r in skipped.itertuples()))
    per_segment = {r.segment: json.loads(r.metrics) for r in trained.itertuples()}
    splits = {r.segment: json.loads(r.split) for r in trained.itertuples()}
    weights = {seg: splits[seg]["valid_rows"] for seg in per_segment}
    total = sum(weights.values())
    names = [k for k in next(iter(per_segment.values())) if k != "best_iteration"]
    metrics = {k: float(sum(per_segment[s][k] * weights[s] for s in per_segment) / total) for k in names}
    metrics["segments_trained"] = float(len(trained))
    metrics["segments_skipped"] = float(len(skipped))
    path = os.path.join(tmp, "segments.json")
    Path(path).write_text(json.dumps({
        "segment_by": segment_by, "problem_type": project.problem_type,
        "models": {r.segment: {"model": r.model, "meta": json.loads(r.meta)} for r in trained.itertuples()}}))
    main_metric = names[0]
    fig, ax = plt.subplots(figsize=(7, max(3, 0.35 * len(per_segment))))
    ax.barh(list(per_segment), [per_segment[s][main_metric] for s in per_segment], color="#2ca02c")
    ax.set_title(f"Validation {main_metric} per segment")
    fig.tight_layout()
    example = frame.limit(5).toPandas().drop(columns=[LABEL, *keys, timestamp], errors="ignore")
    python_model = SegmentedModel()
    split = {"segments": len(trained), "train_rows": sum(s["train_rows"] for s in splits.values()),
             "valid_rows": total, "train_until": max(s["train_until"] for s in splits.values()),
             "valid_from": min(s["valid_from"] for s in splits.values()),
             "valid_until": max(s["valid_until"] for s in splits.values())}
    card = "\n".join([
        f"# Model card: {model_name}", "", "## Intended use",
        f"{project.problem_type.capitalize()} on `{contract.name}`, one LightGBM model per "
        f"{' x '.join(segment_by)} segment behind one pyfunc that routes each row to its segment.", "",
        "## Training data", *[f"- `{s['table']}` Delta version {s['version']}" for s in sources],
        f"- {len(trained)} segments trained, {len(skipped)} skipped (too little data; they score as missing)", "",
        "## Metrics (validation period, weighted by validation rows)",
        *[f"- {k}: {v:.4f}" for k, v in metrics.items()], "",
        "## Limitations", "- Segments unseen in training, or skipped, get no prediction.",
        f"- Code version: {commit}"]) + "\n"
    return Candidate(
        python_model=python_model, artifacts={"segments": path}, metrics=metrics,
        params={"segment_by": ",".join(segment_by), "seed": config.seed, **config.params},
        split=split, figures={"plots/segment_metrics.png": fig}, example=example,
        example_output=pd.DataFrame({"prediction": [0.0] * len(example)}) if project.problem_type == "regression"
        else pd.DataFrame({"prediction": [0.0] * len(example), "probability": [0.0] * len(example)}),
        card=card, nested=[(f"segment {s}", {"segment": s, **splits[s]}, per_segment[s]) for s in per_segment])


def train(rt: Runtime, ctx: RunContext) -> StageOutput:
    import mlflow
    from mlflow.models import infer_signature

    from .monitoring import BASELINE_ARTIFACT, BASELINE_TABLE, baseline, monitored_columns
    from .registry import skipped
    from .validation import model_input_gate

    if (nothing := skipped(ctx)) is not None:
        return nothing
    project = load_project(ctx.root)
    contract = load_contracts(ctx.root)[project.source]
    frame, sources, keys, timestamp = training_frame(rt, project, contract)
    # Materialised once: the data gate, the fit and the drift baseline each read it, and a lazy
    # frame would redo the point-in-time join for every read (serverless has no cache()).
    rt.write(frame, TRAINING_SET_TABLE)
    frame = rt.read(TRAINING_SET_TABLE)
    gate = model_input_gate(frame, contract, "training")
    model_name = rt.model_name(ctx.model_name or project.model_name)
    commit = git_commit(ctx.root)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        if project.training.segment_by:
            candidate = _segmented_model(frame, keys, timestamp, project, contract, sources, model_name, commit,
                                         tmp, ctx)
        else:
            ctx.log(f"  train: collecting the training set from {', '.join(s['table'] for s in sources)}")
            candidate = _single_model(frame.toPandas(), keys, timestamp, project, contract, sources, model_name,
                                      commit, tmp, ctx)
        fit_seconds = time.perf_counter() - started
        ctx.log(f"  train: fitted in {fit_seconds:.1f}s on {candidate.split['train_rows']} rows; "
                + ", ".join(f"{k}={v:.4f}" for k, v in candidate.metrics.items()))

        logging_started = time.perf_counter()
        rt.configure_mlflow()
        rt.use_experiment(ctx.experiment or project.experiment)
        with mlflow.start_run(run_name=f"train-{ctx.run_id[:8]}") as run:
            mlflow.set_tags({"mlflow.source.git.commit": commit, "pipeline_run_id": ctx.run_id,
                             "problem_type": project.problem_type, "source": contract.name})
            mlflow.log_params({**candidate.params, **candidate.split})
            for run_name, params, metrics in candidate.nested:
                with mlflow.start_run(run_name=run_name, nested=True):
                    mlflow.log_params(params)
                    mlflow.log_metrics(metrics)
            mlflow.log_metrics({**candidate.metrics, "fit_seconds": fit_seconds})
            for source in sources:
                mlflow.log_input(rt.lineage_dataset(source["short"], source["version"]), context="training")
            for path, figure in candidate.figures.items():
                mlflow.log_figure(figure, path)
            mlflow.log_text(candidate.card, "model_card.md")
            # Integer columns cannot hold missing values at scoring time: declare them as doubles.
            example = candidate.example.astype(
                {c: "float64" for c in candidate.example.select_dtypes("integer").columns})
            info = mlflow.pyfunc.log_model(
                name="model", python_model=candidate.python_model, artifacts=candidate.artifacts,
                code_paths=[str(Path(__file__).resolve().parent)],
                signature=infer_signature(example, candidate.example_output), input_example=example,
                pip_requirements=pip_requirements(ctx.root))
            version = mlflow.register_model(info.model_uri, model_name)
            client = mlflow.MlflowClient()
            mlflow.log_dict(gate, "validation/data_gate_training.json")
            tags = {"git_commit": commit, "validation_status": "pending", "pipeline_run_id": ctx.run_id,
                    "data_gate_training": f"passed ({gate['expectations']} expectations)",
                    "data_versions": json.dumps({s["table"]: s["version"] for s in sources}),
                    **{f"metric_{k}": f"{v:.6g}" for k, v in candidate.metrics.items()}}
            for key, value in tags.items():
                client.set_model_version_tag(model_name, version.version, key, value)
            client.update_model_version(model_name, version.version, description=candidate.card)
            logging_seconds = time.perf_counter() - logging_started
            mlflow.log_metric("mlflow_logging_seconds", logging_seconds)
            ctx.log("  train: fitting the drift baseline on the scored training set")
            features = feature_columns(frame, keys, timestamp)
            scored = score_frame(frame.where(F.col(LABEL).isNotNull()), rt.model_location(model_name, str(version.version)),
                                 project.problem_type, *rt.mlflow_uris())
            # Written once: fitting reads the scored rows several times, and a lazy frame would rerun
            # the point-in-time join and the scoring for each read (serverless has no cache()).
            rt.write(scored.select(*monitored_columns(features, project.problem_type)), BASELINE_TABLE)
            mlflow.log_dict(baseline(rt.read(BASELINE_TABLE), features, project.problem_type,
                                     int(project.monitoring["bins"])), BASELINE_ARTIFACT)
    return StageOutput([TRAINING_SET_TABLE, BASELINE_TABLE], details={
        "model": model_name, "version": str(version.version), "run_id": run.info.run_id,
        "metrics": {k: round(v, 5) for k, v in candidate.metrics.items()}, "split": candidate.split,
        "data_versions": {s["table"]: s["version"] for s in sources},
        "fit_seconds": round(fit_seconds, 2), "mlflow_logging_seconds": round(logging_seconds, 2),
        "data_gate": gate,
    })
