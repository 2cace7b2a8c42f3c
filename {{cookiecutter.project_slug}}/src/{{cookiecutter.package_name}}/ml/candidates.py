"""A candidate model and everything logged with it, built one of two ways: one estimator on the
whole training set (with optional Optuna tuning), or one estimator per segment behind one
routing model (``training.segment_by``)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from ..config import ProjectConfig
from ..contract import Contract
from ..names import LABEL, SCORE_COLUMNS
from .estimators import estimator_class
from .explanations import card_section, explain
from .fitting import TrainingDataError, fit, tune
from .flavor import EstimatorModel, SegmentedModel, model_code
from .metrics import TUNED_METRIC
from .reports import model_card, model_plots, segment_chart, shap_summary_chart, with_section
from .segments import fit_segments


@dataclass
class Candidate:
    """Everything logged for one training run, whichever way the model was built."""

    python_model: str  # the file of the pyfunc's code (models from code)
    artifacts: dict[str, str]
    metrics: dict[str, float]
    params: dict[str, Any]
    split: dict[str, Any]
    figures: dict[str, Any]
    example: pd.DataFrame
    example_output: pd.DataFrame
    card: str
    nested: list[tuple[str, dict[str, Any], dict[str, float]]] = field(default_factory=list)
    # JSON documents logged next to the plots, by artifact path.
    documents: dict[str, Any] = field(default_factory=dict)


def single_model(pdf: pd.DataFrame, keys: list[str], timestamp: str, project: ProjectConfig, contract: Contract,
                 sources: list[dict[str, Any]], model_name: str, commit: str, folder: str,
                 log: Callable[[str], None]) -> Candidate:
    """One estimator on the whole training set; its files are written to ``folder``.  Sensitive
    columns are not model inputs: the validation gate compares the model across their groups."""
    config, trials = project.training, []
    pdf = pdf.drop(columns=contract.sensitive_columns)
    if config.tuning_trials > 0:
        metric = TUNED_METRIC[project.problem_type]
        log(f"  train: tuning with Optuna, {config.tuning_trials} trials")
        best, trials = tune(pdf, keys, timestamp, project.problem_type, config,
                            on_trial=lambda t: log(f"    trial {t['number']}: {metric}={t['metrics'][metric]:.4f}"))
        config = replace(config, params=best)
    inputs = [c for c in contract.gold.columns if c not in contract.sensitive_columns]
    model = fit(pdf, keys, timestamp, project.problem_type, config, expected_features=inputs)
    explanation = explain(model, config.seed)
    figures = model_plots(model)
    if explanation is not None:
        figures["plots/shap_summary.png"] = shap_summary_chart(explanation, project.problem_type)
    model_path, meta_path = os.path.join(folder, "model.txt"), os.path.join(folder, "meta.json")
    Path(model_path).write_text(model.estimator.dumps(), encoding="utf-8")
    Path(meta_path).write_text(json.dumps(model.meta), encoding="utf-8")
    return Candidate(
        python_model=model_code(folder, EstimatorModel), artifacts={"model": model_path, "meta": meta_path},
        metrics=model.metrics,
        params={"estimator": model.estimator.name, "seed": config.seed, "num_boost_round": config.num_boost_round,
                "early_stopping_rounds": config.early_stopping_rounds,
                "validation_fraction": config.validation_fraction, "tuning_trials": config.tuning_trials,
                "features": ",".join(model.features), **config.params},
        split=model.split, figures=figures, example=model.valid_frame[model.features].head(5),
        example_output=model.valid_output.head(5),
        card=with_section(model_card(project, contract, model, sources, model_name, commit),
                          card_section(explanation, project.problem_type)),
        nested=[(f"trial-{t['number']}", t["params"], t["metrics"]) for t in trials],
        documents={"explanations/top_features.json": {
            "rows": 0 if explanation is None else len(explanation.contributions),
            "features": [] if explanation is None else explanation.top_features()}})


def segmented_model(frame: Any, keys: list[str], timestamp: str, project: ProjectConfig, contract: Contract,
                    sources: list[dict[str, Any]], model_name: str, commit: str, folder: str,
                    log: Callable[[str], None]) -> Candidate:
    """One estimator per ``training.segment_by`` segment of a Spark frame, fitted in parallel."""
    config = project.training
    estimator = estimator_class(config.estimator).name
    segment_by = list(config.segment_by)
    frame = frame.drop(*[c for c in contract.sensitive_columns if c not in segment_by])  # not model inputs
    absent = [c for c in segment_by if c not in frame.columns]
    if absent:
        raise TrainingDataError(f"training.segment_by names {absent}, which the training data lacks. Fix: use "
                                f"columns of the gold table ({', '.join(frame.columns)})")
    log(f"  train: one model per {' x '.join(segment_by)} segment, in parallel with applyInPandas")
    results = fit_segments(frame, keys, timestamp, project.problem_type, config, segment_by)
    trained = results[results["error"].isna()].sort_values("segment")
    skipped = results[results["error"].notna()]
    for row in skipped.itertuples():
        log(f"    segment {row.segment} skipped: {row.error}")
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
    path = os.path.join(folder, "segments.json")
    Path(path).write_text(json.dumps({
        "segment_by": segment_by, "problem_type": project.problem_type,
        "models": {r.segment: {"model": r.model, "meta": json.loads(r.meta)} for r in trained.itertuples()}}))
    # The segment columns stay in the signature even when they are keys: the model routes on them.
    dropped = [c for c in [LABEL, *keys, timestamp] if c not in segment_by]
    example = frame.limit(5).toPandas().drop(columns=dropped, errors="ignore")
    split = {"segments": len(trained), "train_rows": sum(s["train_rows"] for s in splits.values()),
             "valid_rows": total, "train_until": max(s["train_until"] for s in splits.values()),
             "valid_from": min(s["valid_from"] for s in splits.values()),
             "valid_until": max(s["valid_until"] for s in splits.values())}
    card = "\n".join([
        f"# Model card: {model_name}", "", "## Intended use",
        f"{project.problem_type.capitalize()} on `{contract.name}`, one {estimator} model per "
        f"{' x '.join(segment_by)} segment behind one pyfunc that routes each row to its segment.", "",
        "## Training data", *[f"- `{s['table']}` Delta version {s['version']}" for s in sources],
        f"- {len(trained)} segments trained, {len(skipped)} skipped (too little data; they score as missing)", "",
        "## Metrics (validation period, weighted by validation rows)",
        *[f"- {k}: {v:.4f}" for k, v in metrics.items()], "",
        "## Limitations", "- Segments unseen in training, or skipped, get no prediction.",
        f"- Code version: {commit}"]) + "\n"
    outputs = SCORE_COLUMNS[project.problem_type]
    return Candidate(
        python_model=model_code(folder, SegmentedModel), artifacts={"segments": path}, metrics=metrics,
        params={"estimator": estimator, "segment_by": ",".join(segment_by), "seed": config.seed,
                **config.params},
        split=split, figures={"plots/segment_metrics.png": segment_chart(per_segment, names[0])}, example=example,
        example_output=pd.DataFrame({c: [0.0] * len(example) for c in outputs}),
        card=card, nested=[(f"segment {s}", {"segment": s, **splits[s]}, per_segment[s]) for s in per_segment])
