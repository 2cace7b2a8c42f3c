"""Registry operations on the champion / challenger lifecycle: find versions and aliases, and
approve, promote and roll back.  Promotion to ``@champion`` needs a passed validation and the
``approval`` tag set to ``approved`` (the Unity Catalog deployment-job shape); every alias change
appends who, when, from which version and why to the model's ``alias_history`` tag."""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime
from typing import Any

from ..context import StageFailure
from ..names import PACKAGE
from ..runtime import Runtime


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


def champion(rt: Runtime, name: str) -> Any:
    """The ``@champion`` version; fails with what to do when there is none yet."""
    rt.configure_mlflow()
    version = alias_version(mlflow_client(), name, "champion")
    if version is None:
        raise RegistryError(f"{name} has no @champion yet. Fix: validate, approve and promote a version "
                            f"(python -m {PACKAGE} approve/promote), or run `run all` locally")
    return version
