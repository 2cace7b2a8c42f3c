"""The train stage: the training set (materialised once), the data gate, a candidate model,
MLflow tracking and registration, and the drift baseline of the new version."""

from __future__ import annotations

import tempfile
import time

import pandas as pd
from pyspark.sql import functions as F

from ..config import ProjectConfig
from ..context import RunContext, StageOutput
from ..data.inputs import training_inputs
from ..data.validation import model_input_gate
from ..ml.baseline import BASELINE_ARTIFACT, baseline, monitored_columns
from ..ml.candidates import segmented_model, single_model
from ..ml.fitting import feature_columns, holdout_rows
from ..ml.naive import NaiveBaseline, naive_baseline_metrics, naive_baselines
from ..ml.reports import naive_baseline_section, with_section
from ..ml.scoring import score_frame
from ..ml.tracking import git_commit, log_and_register
from ..names import BASELINE_TABLE, LABEL, TRAINING_SET_TABLE
from ..runtime import Runtime

# This module's stages and their positions in `run all` (see pipeline.py).
ORDER = {"train": 70}


def holdout_baselines(frame: pd.DataFrame, keys: list[str], timestamp: str,
                      project: ProjectConfig) -> list[NaiveBaseline]:
    """The naive baselines on the holdout the candidate is validated on, logged next to its metrics
    (the validation gate recomputes them on the same rows)."""
    history = frame[frame[LABEL].notna()]
    holdout = holdout_rows(history, keys, timestamp, project.problem_type, project.training)
    gate = project.validation.baseline
    return naive_baselines(history, holdout, keys, timestamp, project.problem_type,
                           gate.season_length if gate else None)


def run(rt: Runtime, ctx: RunContext) -> StageOutput:
    import mlflow

    if (nothing := ctx.retraining_declined()) is not None:
        return nothing
    project, contract, model_name = ctx.project, ctx.contract, ctx.model_name
    inputs = training_inputs(rt, project, contract)
    # Materialised once: the data gate, the fit and the drift baseline each read it, and a lazy
    # frame would redo the point-in-time join for every read (serverless has no cache()).
    rt.write(inputs.frame, TRAINING_SET_TABLE)
    frame, keys, timestamp, sources = rt.read(TRAINING_SET_TABLE), inputs.keys, inputs.timestamp, inputs.sources
    gate = model_input_gate(frame, contract, "training")
    commit = git_commit(ctx.root)
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        if project.training.segment_by:
            candidate = segmented_model(frame, keys, timestamp, project, contract, sources, model_name, commit,
                                        folder, ctx.log)
            # A segment column may also be a key (a panel per segment): select it once.
            history = frame.select(*dict.fromkeys([*keys, timestamp, LABEL, *project.training.segment_by])).toPandas()
        else:
            ctx.log(f"  train: collecting the training set from {', '.join(s['table'] for s in sources)}")
            history = frame.toPandas()
            candidate = single_model(history, keys, timestamp, project, contract, sources, model_name,
                                     commit, folder, ctx.log)
        fit_seconds = time.perf_counter() - started
        ctx.log(f"  train: fitted in {fit_seconds:.1f}s on {candidate.split['train_rows']} rows; "
                + ", ".join(f"{k}={v:.4f}" for k, v in candidate.metrics.items()))
        baselines = holdout_baselines(history, keys, timestamp, project)
        figures = naive_baseline_metrics(baselines)
        ctx.log("  train: naive baselines on the same holdout: " + ", ".join(
            f"{k.removeprefix('baseline_')}={v:.4f}" for k, v in figures.items() if not k.endswith("_rows")))
        candidate.card = with_section(
            candidate.card, naive_baseline_section(candidate.metrics, baselines, project.validation.baseline))
        registered = log_and_register(
            rt, candidate, root=ctx.root, commit=commit, experiment=ctx.experiment, model_name=model_name,
            pipeline_run_id=ctx.run_id, tags={"problem_type": project.problem_type, "source": contract.name},
            sources=sources, data_gate=gate, fit_seconds=fit_seconds, naive_baseline_metrics=figures)

    ctx.log("  train: fitting the drift baseline on the scored training set")
    features = feature_columns(frame, keys, timestamp)
    scored = score_frame(frame.where(F.col(LABEL).isNotNull()), rt.model_location(model_name, registered.version),
                         project.problem_type, *rt.mlflow_uris())
    # Written once: fitting reads the scored rows several times, and a lazy frame would rerun
    # the point-in-time join and the scoring for each read (serverless has no cache()).
    rt.write(scored.select(*monitored_columns(features, project.problem_type)), BASELINE_TABLE)
    mlflow.MlflowClient().log_dict(registered.run_id, baseline(rt.read(BASELINE_TABLE), features,
                                                               project.problem_type, int(project.monitoring["bins"])),
                                   BASELINE_ARTIFACT)
    return StageOutput([TRAINING_SET_TABLE, BASELINE_TABLE], details={
        "model": model_name, "version": registered.version, "run_id": registered.run_id,
        "metrics": {k: round(v, 5) for k, v in candidate.metrics.items()},
        "baselines": {k: round(v, 5) for k, v in figures.items()}, "split": candidate.split,
        "data_versions": {s["table"]: s["version"] for s in sources},
        "fit_seconds": round(fit_seconds, 2), "mlflow_logging_seconds": round(registered.logging_seconds, 2),
        "data_gate": gate,
    })
