"""The validate stage: the model validation gate.

The candidate version must meet the configured metric thresholds and, when a ``@champion``
exists, must not be worse than it beyond a tolerance on the same holdout (both models re-scored
on the candidate's validation period).  ``enabled`` fails closed, ``dry_run`` records and
continues, ``disabled`` skips.  Results are tags on the version and metrics on its run; a
passing version becomes ``@challenger``.
"""

from __future__ import annotations

import json
from typing import Any

from ..context import RunContext, StageOutput
from ..data.inputs import training_inputs
from ..ml.fitting import holdout_rows
from ..ml.metrics import HIGHER_IS_BETTER, MAIN_METRIC, champion_check, evaluate, threshold_checks
from ..ml.registry import RegistryError, alias_version, candidate_version, mlflow_client, set_alias
from ..names import LABEL
from ..runtime import Runtime

# This module's stages and their positions in `run all` (see pipeline.py).
ORDER = {"validate": 80}


def holdout_of(rt: Runtime, ctx: RunContext) -> Any:
    """The candidate's holdout, rebuilt by the training path and the same split."""
    inputs = training_inputs(rt, ctx.project, ctx.contract)
    return holdout_rows(inputs.frame.toPandas(), inputs.keys, inputs.timestamp, ctx.project.problem_type,
                        ctx.project.training)


def run(rt: Runtime, ctx: RunContext) -> StageOutput:
    import mlflow

    if (nothing := ctx.retraining_declined()) is not None:
        return nothing
    project = ctx.project
    settings = project.validation
    rt.configure_mlflow()
    client = mlflow_client()
    name = ctx.model_name
    version = candidate_version(client, name, ctx.run_id)
    if settings["mode"] == "disabled":
        client.set_model_version_tag(name, version.version, "validation_status", "skipped")
        return StageOutput(details={"model": name, "version": str(version.version), "mode": "disabled"})
    run = client.get_run(version.run_id)
    metrics = {k: v for k, v in run.data.metrics.items() if k in HIGHER_IS_BETTER}
    checks = threshold_checks(metrics, settings["thresholds"])
    champion = alias_version(client, name, "champion")
    if champion is not None and str(champion.version) != str(version.version):
        holdout = holdout_of(rt, ctx)
        main = MAIN_METRIC[project.problem_type]
        truth = holdout[LABEL].to_numpy(dtype=float)
        scores = {}
        for label, v in (("candidate", version), ("champion", champion)):
            model = mlflow.pyfunc.load_model(f"models:/{name}/{v.version}")
            scores[label] = evaluate(project.problem_type, truth, model.predict(holdout))[main]
        checks.append(champion_check(scores["candidate"], scores["champion"], main,
                                     float(settings["champion_tolerance"])))
    passed = all(c["passed"] for c in checks)
    status = "passed" if passed else "failed"
    client.set_model_version_tag(name, version.version, "validation_status", status)
    client.set_model_version_tag(name, version.version, "validation_mode", settings["mode"])
    client.set_model_version_tag(name, version.version, "validation_results", json.dumps(checks))
    with mlflow.start_run(run_id=version.run_id):
        mlflow.log_metric("validation_passed", float(passed))
        mlflow.log_dict({"mode": settings["mode"], "checks": checks}, "validation/results.json")
    details = {"model": name, "version": str(version.version), "mode": settings["mode"], "status": status,
               "checks": "; ".join(f"{c['check']}: {c['value']:.4f}"
                                   + (f" (champion {c['champion']:.4f})" if "champion" in c else "")
                                   + f" {'ok' if c['passed'] else 'FAILED'}"
                                   if c["value"] is not None else f"{c['check']}: missing" for c in checks)}
    if passed:
        set_alias(client, name, "challenger", str(version.version), "passed validation", ctx.run_id)
    elif settings["mode"] == "enabled":
        raise RegistryError(f"validation failed for {name} version {version.version}: {details['checks']}. "
                            "It was not made @challenger", details)
    return StageOutput(details=details)
