"""Model validation gate and the champion / challenger lifecycle in the model registry.

* ``validate`` (a stage): the candidate version must meet the configured metric thresholds and,
  when a ``@champion`` exists, must not be worse than it beyond a tolerance on the same holdout
  (both models re-scored on the candidate's validation period).  ``enabled`` fails closed,
  ``dry_run`` records and continues, ``disabled`` skips.  Results are tags on the version and
  metrics on its run; a passing version becomes ``@challenger``.
* ``approve`` / ``promote`` / ``rollback`` (commands): promotion to ``@champion`` needs a passed
  validation and the ``approval`` tag set to ``approved`` (the Unity Catalog deployment-job
  shape); every alias change appends who, when, from which version and why to the model's
  ``alias_history`` tag.
"""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime
from typing import Any

from .config import load_project, target_config
from .contract import load_contracts
from .runtime import Runtime
from .stage import RunContext, StageFailure, StageOutput

MODES = ("enabled", "dry_run", "disabled")
HIGHER_IS_BETTER = {"auc": True, "pr_auc": True, "f1": True, "log_loss": False, "rmse": False, "mae": False,
                    "mape": False}
MAIN_METRIC = {"classification": "auc", "regression": "rmse"}


class RegistryError(StageFailure):
    """A registry action that is not allowed; the message says why and what to do."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def mlflow_client() -> Any:
    import mlflow

    return mlflow.MlflowClient()


def candidate_version(client: Any, name: str, run_id: str) -> Any:
    """The version registered by this pipeline run, else the newest one still pending validation."""
    versions = sorted(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version), reverse=True)
    for version in versions:
        if version.tags.get("pipeline_run_id") == run_id:
            return version
    for version in versions:
        if version.tags.get("validation_status") == "pending":
            return version
    raise RegistryError(f"no model version of {name} is waiting for validation. Fix: run the train stage first")


def alias_version(client: Any, name: str, alias: str) -> Any | None:
    try:
        return client.get_model_version_by_alias(name, alias)
    except Exception:  # MLflow raises RestException / MlflowException for a missing alias
        return None


def threshold_checks(metrics: dict[str, float], thresholds: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """One result per configured bound: metric, bound, value, passed."""
    checks = []
    for metric, bounds in thresholds.items():
        value = metrics.get(metric)
        for kind, bound in bounds.items():
            if kind not in ("min", "max"):
                raise ValueError(f"validation.thresholds.{metric}: use min or max, not {kind!r}")
            passed = value is not None and (value >= bound if kind == "min" else value <= bound)
            checks.append({"check": f"{metric} {'>=' if kind == 'min' else '<='} {bound}", "value": value,
                           "passed": bool(passed)})
    return checks


def champion_check(candidate: float, champion: float, metric: str, tolerance: float) -> dict[str, Any]:
    """The candidate may be worse than the champion by at most ``tolerance`` on ``metric``."""
    higher = HIGHER_IS_BETTER[metric]
    passed = candidate >= champion - tolerance if higher else candidate <= champion + tolerance
    return {"check": f"{metric} vs @champion (tolerance {tolerance})", "value": candidate, "champion": champion,
            "passed": bool(passed)}


def _holdout(rt: Runtime, ctx: RunContext, run: Any) -> Any:
    """The candidate's validation period, rebuilt from the same data versions it was trained on."""
    from .training import training_frame

    project = load_project(ctx.root)
    contract = load_contracts(ctx.root)[project.source]
    frame, _, _, timestamp = training_frame(rt, project, contract)
    pdf = frame.toPandas()
    valid_from = run.data.params["valid_from"]
    return pdf[pdf[timestamp].astype(str) >= valid_from]


def skipped(ctx: RunContext) -> StageOutput | None:
    """Nothing to validate or promote when the check stage decided not to retrain."""
    if ctx.state.get("retrain") is False:
        return StageOutput(details={"skipped": "the check stage found no reason to retrain in this run"})
    return None


def validate(rt: Runtime, ctx: RunContext) -> StageOutput:
    import mlflow

    from .training import LABEL, evaluate

    if (nothing := skipped(ctx)) is not None:
        return nothing
    project = load_project(ctx.root)
    settings = project.validation
    rt.configure_mlflow()
    client = mlflow_client()
    name = rt.model_name(ctx.model_name or project.model_name)
    version = candidate_version(client, name, ctx.run_id)
    if settings["mode"] == "disabled":
        client.set_model_version_tag(name, version.version, "validation_status", "skipped")
        return StageOutput(details={"model": name, "version": str(version.version), "mode": "disabled"})
    run = client.get_run(version.run_id)
    metrics = {k: v for k, v in run.data.metrics.items() if k in HIGHER_IS_BETTER}
    checks = threshold_checks(metrics, settings["thresholds"])
    champion = alias_version(client, name, "champion")
    if champion is not None and str(champion.version) != str(version.version):
        holdout = _holdout(rt, ctx, run)
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


def set_alias(client: Any, name: str, alias: str, version: str, why: str, who: str | None = None) -> None:
    """Move an alias and append the change to the model's ``alias_history`` tag."""
    previous = alias_version(client, name, alias)
    client.set_registered_model_alias(name, alias, version)
    model = client.get_registered_model(name)
    history = json.loads(model.tags.get("alias_history", "[]"))
    entry = {"alias": alias, "version": str(version), "from": str(previous.version) if previous else None,
             "who": who or getpass.getuser(), "when": _now(), "why": why}
    history.append(entry)
    client.set_registered_model_tag(name, "alias_history", json.dumps(history))
    client.set_model_version_tag(name, version, f"alias_{alias}_since", entry["when"])


def approve(name: str, version: str, who: str, why: str) -> dict[str, Any]:
    client = mlflow_client()
    current = client.get_model_version(name, version)
    if current.tags.get("validation_status") != "passed":
        raise RegistryError(f"{name} version {version} has validation_status "
                            f"{current.tags.get('validation_status')!r}; only a passed version can be approved")
    for key, value in {"approval": "approved", "approved_by": who, "approved_at": _now(),
                       "approval_reason": why}.items():
        client.set_model_version_tag(name, version, key, value)
    return {"model": name, "version": version, "approval": "approved", "by": who}


def promote(name: str, version: str | None, who: str, why: str) -> dict[str, Any]:
    """``@challenger`` (or the given version) becomes ``@champion``, if validated and approved."""
    client = mlflow_client()
    if version is None:
        challenger = alias_version(client, name, "challenger")
        if challenger is None:
            raise RegistryError(f"{name} has no @challenger. Fix: run validate, or pass --version")
        version = str(challenger.version)
    current = client.get_model_version(name, version)
    if current.tags.get("validation_status") != "passed":
        raise RegistryError(f"{name} version {version} did not pass validation; it cannot become @champion")
    if current.tags.get("approval") != "approved":
        raise RegistryError(f"{name} version {version} is not approved. Fix: approve it first "
                            f"(approve --version {version} --reason ...)")
    previous = alias_version(client, name, "champion")
    set_alias(client, name, "champion", version, why, who)
    return {"model": name, "champion": str(version), "previous": str(previous.version) if previous else None}


def rollback(name: str, who: str, why: str) -> dict[str, Any]:
    """Put the champion before the current one back."""
    client = mlflow_client()
    current = alias_version(client, name, "champion")
    if current is None:
        raise RegistryError(f"{name} has no @champion to roll back")
    history = json.loads(client.get_registered_model(name).tags.get("alias_history", "[]"))
    previous = [h for h in history if h["alias"] == "champion" and h["version"] == str(current.version)]
    before = previous[-1]["from"] if previous else None
    if before is None:
        raise RegistryError(f"{name} version {current.version} was the first @champion; there is nothing to "
                            "roll back to")
    set_alias(client, name, "champion", before, f"rollback: {why}", who)
    return {"model": name, "champion": before, "rolled_back": str(current.version)}


def promote_stage(rt: Runtime, ctx: RunContext) -> StageOutput:
    """The approval check and deployment of the UC deployment-job shape: the version trained in
    this run becomes ``@champion`` if it passed validation and is approved.  A target with
    ``auto_approve`` (local only) approves it on the pipeline's behalf; elsewhere an unapproved
    version stops here with what to do."""
    if (nothing := skipped(ctx)) is not None:
        return nothing
    project = load_project(ctx.root)
    rt.configure_mlflow()
    registry = mlflow_client()
    name = rt.model_name(ctx.model_name or project.model_name)
    mine = [v for v in registry.search_model_versions(f"name = '{name}'")
            if v.tags.get("pipeline_run_id") == ctx.run_id]
    if not mine:
        return StageOutput(details={"skipped": f"no version of {name} was registered by run {ctx.run_id}"})
    version = max(mine, key=lambda v: int(v.version))
    champion = alias_version(registry, name, "champion")
    status = version.tags.get("validation_status")
    if status != "passed":
        return StageOutput(details={"model": name, "version": str(version.version), "promoted": False,
                                    "reason": f"validation_status is {status!r}; @champion stays "
                                              f"{champion.version if champion else 'unset'}"})
    if version.tags.get("approval") != "approved":
        if not target_config(ctx.root, rt.target).auto_approve:
            raise RegistryError(
                f"{name} version {version.version} passed validation and waits for approval. Fix: a reviewer sets "
                f"the model-version tag approval=approved (python -m {__package__} approve --version "
                f"{version.version} --reason ...), then repair this run", {"model": name, "version": version.version})
        approve(name, str(version.version), "pipeline", f"auto_approve on target {rt.target} (conf/targets.yml)")
    result = promote(name, str(version.version), "pipeline", f"passed validation in run {ctx.run_id}")
    return StageOutput(details={**result, "promoted": True})
