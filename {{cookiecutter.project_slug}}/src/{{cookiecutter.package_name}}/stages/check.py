"""The check stage: does a new, not yet scored batch drift from the champion's baseline?

Locally it decides whether ``run all`` retrains (train, validate and promote skip otherwise); on
Databricks the retraining job's ``condition_task`` reads its ``retrain`` task value.
"""

from __future__ import annotations

from pyspark.sql import functions as F

from ..context import RunContext, StageFailure, StageOutput
from ..data.drift import drift
from ..data.inputs import scoring_inputs
from ..ml.baseline import load_baseline
from ..ml.registry import champion
from ..ml.scoring import score_frame
from ..names import INFERENCE_TABLE
from ..runtime import Runtime

# This module's stages and their positions in `run all` (see pipeline.py).
ORDER = {"check": 60}


def run(rt: Runtime, ctx: RunContext) -> StageOutput:
    """Decide whether to retrain: no champion yet, or a new batch that drifts from its baseline."""
    project, contract, name = ctx.project, ctx.contract, ctx.model_name
    threshold = float(project.monitoring["psi_threshold"])
    try:
        version = champion(rt, name)
    except StageFailure:
        return decide(ctx, True, f"{name} has no @champion yet")
    batch, periods = scoring_inputs(rt, project, contract)
    timestamp = contract.gold.timestamp
    if rt.exists(INFERENCE_TABLE):
        seen = (rt.read(INFERENCE_TABLE).where(F.col(timestamp).isin(periods)
                                               & (F.col("model_version") == str(version.version))).limit(1).count())
        if seen:
            return decide(ctx, False, f"{timestamp} {', '.join(map(str, periods))} was already scored by @champion "
                                      f"version {version.version}: no new batch")
    scored = score_frame(batch, rt.model_location(name, str(version.version)), project.problem_type,
                         *rt.mlflow_uris())
    min_rows = int(project.monitoring["min_rows"])
    results = drift(scored, load_baseline(version), threshold, min_rows)
    rows = results[0].rows if results else 0
    if rows < min_rows:
        return decide(ctx, False, f"the new batch ({', '.join(map(str, periods))}) has {rows} rows, fewer than "
                                  f"monitoring.min_rows ({min_rows}) needed to tell drift from noise: drift not "
                                  "judged (more periods per batch: inference.batch_periods)")
    drifted = sorted((r for r in results if r.drifted), key=lambda r: -r.psi)
    if drifted:
        listed = ", ".join(f"{r.column} (PSI {r.psi:.3f})" for r in drifted[:5])
        return decide(ctx, True, f"the new batch ({', '.join(map(str, periods))}) drifts from version "
                                 f"{version.version}'s baseline: {listed}")
    top = max(results, key=lambda r: r.psi)
    return decide(ctx, False, f"the new batch is stable against version {version.version}'s baseline (highest PSI "
                              f"{top.column} {top.psi:.3f} < {threshold})")


def decide(ctx: RunContext, retrain: bool, reason: str) -> StageOutput:
    ctx.state["retrain"] = retrain
    ctx.log(f"  check: {'retrain' if retrain else 'no retraining'}: {reason}")
    return StageOutput(details={"retrain": retrain, "reason": reason,
                                "task_values": {"retrain": "true" if retrain else "false"}})
