"""The validate stage: the model validation gate.

On the candidate's own holdout (rebuilt by the training path and the same split), the candidate
must beat the best naive baseline by ``validation.baseline.min_improvement`` (see ``ml/naive.py``)
and, when a ``@champion`` exists, must not be worse than it beyond a tolerance (both models
re-scored on those rows).  Optional absolute ``validation.thresholds`` bound its training-run
metrics.  ``enabled`` fails closed, ``dry_run`` records and continues, ``disabled`` skips.  Results
are tags on the version and metrics on its run; a passing version becomes ``@challenger``.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from ..context import RunContext, StageOutput
from ..data.inputs import training_inputs
from ..ml.fairness import fairness_checks, fairness_section
from ..ml.fitting import holdout_rows
from ..ml.metrics import (
    HIGHER_IS_BETTER,
    MAIN_METRIC,
    baseline_check,
    champion_check,
    evaluate,
    threshold_checks,
)
from ..ml.naive import FROM_HISTORY, naive_baselines
from ..ml.registry import (
    VALIDATION_ARTIFACT,
    RegistryError,
    alias_version,
    candidate_version,
    mlflow_client,
    set_alias,
)
from ..ml.reports import with_section
from ..ml.scoring import predict_logged
from ..names import LABEL, VALIDATION_RESULTS_KEY, VALIDATION_RESULTS_SCHEMA, VALIDATION_RESULTS_TABLE
from ..runtime import Runtime

# This module's stages and their positions in `run all` (see pipeline.py).
ORDER = {"validate": 80}


def holdout_of(rt: Runtime, ctx: RunContext) -> tuple[pd.DataFrame, pd.DataFrame, list[str], str]:
    """The labelled training frame and the candidate's holdout within it, rebuilt by the training
    path and the same split, with the entity keys and the timestamp column."""
    inputs = training_inputs(rt, ctx.project, ctx.contract)
    frame = inputs.frame.toPandas()
    history = frame[frame[LABEL].notna()]
    return (history, holdout_rows(history, inputs.keys, inputs.timestamp, ctx.project.problem_type,
                                  ctx.project.training), inputs.keys, inputs.timestamp)


def describe(check: dict[str, Any]) -> str:
    """One check as the stage prints it."""
    if check["value"] is None:
        return f"{check['check']}: missing" + (" (fewer than two groups large enough)" if "groups" in check else "")
    text = f"{check['check']}: {check['value']:.4f}"
    if "champion" in check:
        text += f" (champion {check['champion']:.4f})"
    if "high_group" in check:
        text += f" ({check['high_group']} vs {check['low_group']})"
    if "baseline" in check:
        text += (f" ({check['baseline_name']} {check['baseline']:.4f}, "
                 f"{check['improvement']:.1%} better)")
    return text + (" ok" if check["passed"] else " FAILED")


def holdout_checks(rt: Runtime, ctx: RunContext, version: Any,
                   champion: Any) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """The checks made on the candidate's holdout: the naive-baseline gate (when configured) and the
    comparison with ``champion`` (when given).  Returns the checks, the figures the stage prints and
    what only ``validation/results.json`` records."""
    import mlflow

    project, gate = ctx.project, ctx.project.validation.baseline
    history, holdout, keys, timestamp = holdout_of(rt, ctx)
    truth = holdout[LABEL].to_numpy(dtype=float)

    def outputs(v: Any) -> pd.DataFrame:
        return predict_logged(mlflow.pyfunc.load_model(f"models:/{ctx.model_name}/{v.version}"), holdout)

    candidate_output = outputs(version)
    candidate = evaluate(project.problem_type, truth, candidate_output)
    checks, shown, recorded = [], {"holdout_rows": len(holdout)}, {}
    if fairness_applies(ctx):
        checks.extend(fairness_checks(project.problem_type, holdout, truth, candidate_output,
                                      ctx.contract.sensitive_columns, project.validation.fairness))
    if gate is not None:
        baselines = naive_baselines(history, holdout, keys, timestamp, project.problem_type, gate.season_length)
        check = baseline_check(candidate[gate.metric], {b.name: b.metrics[gate.metric] for b in baselines},
                               gate.metric, gate.min_improvement)
        check["fallback_rows"] = {b.name: b.fallback_rows for b in baselines if b.name in FROM_HISTORY}
        checks.append(check)
        shown["baselines"] = {f"{b.name}_{gate.metric}": round(b.metrics[gate.metric], 5) for b in baselines}
        recorded["naive_baselines"] = [asdict(b) for b in baselines]
        recorded["candidate_on_holdout"] = candidate
    if champion is not None:
        main = MAIN_METRIC[project.problem_type]
        checks.append(champion_check(candidate[main], evaluate(project.problem_type, truth, outputs(champion))[main], main,
                                     float(project.validation.champion_tolerance)))
    return checks, shown, recorded


def fairness_applies(ctx: RunContext) -> bool:
    """The fairness checks run when limits are set and the contract marks a column sensitive."""
    gate = ctx.project.validation.fairness
    return gate is not None and bool(gate.max_difference) and bool(ctx.contract.sensitive_columns)


def record_results(rt: Runtime, ctx: RunContext, version: str, checks: list[dict[str, Any]]) -> None:
    """The checks as rows of the validation results table, next to the data expectations: source is
    the model, the batch range is its version (a rerun replaces the version's rows)."""
    number = int(version)
    rows = [(ctx.run_id, ctx.model_name, number, number, c["check"], "model_" + (c.get("metric") or "check"),
             c.get("column"), bool(c["passed"]), None, None, json.dumps(c.get("groups") or {}, default=str),
             None if c["value"] is not None else "missing", datetime.now(UTC).replace(tzinfo=None))
            for c in checks]
    frame = rt.spark.createDataFrame(rows, VALIDATION_RESULTS_SCHEMA)
    keys = rt.spark.createDataFrame([(ctx.model_name, number, number)], VALIDATION_RESULTS_KEY)
    rt.replace_matching(frame, VALIDATION_RESULTS_TABLE, keys)


def run(rt: Runtime, ctx: RunContext) -> StageOutput:
    import mlflow

    if (nothing := ctx.retraining_declined()) is not None:
        return nothing
    settings = ctx.project.validation
    rt.configure_mlflow()
    client = mlflow_client()
    name = ctx.model_name
    version = candidate_version(client, name, ctx.run_id)
    if settings.mode == "disabled":
        client.set_model_version_tag(name, version.version, "validation_status", "skipped")
        return StageOutput(details={"model": name, "version": str(version.version), "mode": "disabled"})
    run = client.get_run(version.run_id)
    metrics = {k: v for k, v in run.data.metrics.items() if k in HIGHER_IS_BETTER}
    checks = threshold_checks(metrics, settings.thresholds)
    champion = alias_version(client, name, "champion")
    if champion is not None and str(champion.version) == str(version.version):
        champion = None
    shown: dict[str, Any] = {}
    recorded: dict[str, Any] = {}
    if settings.baseline is not None or champion is not None or fairness_applies(ctx):
        more, shown, recorded = holdout_checks(rt, ctx, version, champion)
        checks.extend(more)
    passed = all(c["passed"] for c in checks)
    status = "passed" if passed else "failed"
    client.set_model_version_tag(name, version.version, "validation_status", status)
    client.set_model_version_tag(name, version.version, "validation_mode", settings.mode)
    client.set_model_version_tag(name, version.version, "validation_results", json.dumps(checks))
    record_results(rt, ctx, str(version.version), checks)
    section = fairness_section(checks, settings.fairness.min_group_rows) if settings.fairness else []
    if section:  # the model card gains the per-group figures, once
        card = client.get_model_version(name, version.version).description or ""
        if section[0] not in card:
            client.update_model_version(name, version.version, description=with_section(card, section))
    with mlflow.start_run(run_id=version.run_id):
        mlflow.log_metric("validation_passed", float(passed))
        for check in checks:
            if "improvement" in check:
                mlflow.log_metric("validation_baseline_improvement", check["improvement"])
            if "max_difference" in check and check["value"] is not None:
                mlflow.log_metric(f"fairness_{check['metric']}_gap_{check['column']}", check["value"])
        mlflow.log_dict({"model": name, "version": str(version.version), "status": status, "mode": settings.mode,
                         "pipeline_run_id": ctx.run_id, "checks": checks, **shown, **recorded}, VALIDATION_ARTIFACT)
    details = {"model": name, "version": str(version.version), "mode": settings.mode, "status": status,
               "checks": "; ".join(describe(c) for c in checks), **shown}
    if passed:
        set_alias(client, name, "challenger", str(version.version), "passed validation", ctx.run_id)
    elif settings.mode == "enabled":
        raise RegistryError(f"validation failed for {name} version {version.version}: {details['checks']}. "
                            "It was not made @challenger", details)
    return StageOutput(details=details)
