"""The promote stage: the approval check and deployment of the UC deployment-job shape.

The version trained in this run becomes ``@champion`` if it passed validation and is approved.
Whether it passed is read from the validation recorded in its run, not from the mutable tag.
With ``inference.min_shadow_batches`` it must also have been no worse than ``@champion`` on that many
labelled shadow batches (``monitor`` records them); until then it stays ``@challenger``.
A target with ``auto_approve`` (local only) approves it on the pipeline's behalf; elsewhere an
unapproved version stops here with what to do.
"""

from __future__ import annotations

from ..context import RunContext, StageOutput
from ..ml.registry import RegistryError, ShadowShortfall, alias_version, approve, mlflow_client, promote
from ..names import PACKAGE
from ..runtime import Runtime

# This module's stages and their positions in `run all` (see pipeline.py).
ORDER = {"promote": 90}


def run(rt: Runtime, ctx: RunContext) -> StageOutput:
    if (nothing := ctx.retraining_declined()) is not None:
        return nothing
    rt.configure_mlflow()
    registry = mlflow_client()
    name = ctx.model_name
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
        if not ctx.auto_approve:
            raise RegistryError(
                f"{name} version {version.version} passed validation and waits for approval. Fix: a reviewer sets "
                f"the model-version tag approval=approved (python -m {PACKAGE} approve --version "
                f"{version.version} --reason ...), then repair this run", {"model": name, "version": version.version})
        approve(name, str(version.version), "pipeline", f"auto_approve on target {rt.target} (conf/targets.yml)")
    try:
        result = promote(name, str(version.version), "pipeline", f"passed validation in run {ctx.run_id}",
                         int(ctx.project.inference["min_shadow_batches"]))
    except ShadowShortfall as waiting:
        return StageOutput(details={"model": name, "version": str(version.version), "promoted": False,
                                    "reason": f"{waiting.shortfall}; it stays @challenger and score shadow-scores it. "
                                              f"Promote it once the evidence is there: python -m {PACKAGE} promote "
                                              "--reason ..."})
    return StageOutput(details={**result, "promoted": True})
