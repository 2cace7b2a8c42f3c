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
from .baseline import BASELINE_ARTIFACT

# The validate stage's record in the version's run; gates read it, never a tag alone.
VALIDATION_ARTIFACT = "validation/results.json"
ABANDONED = "abandoned"
# Logged to a challenger's run by monitor, one step per labelled shadow batch: 1 when it was no worse than
# @champion on the same rows.  Metric history is append-only: the promotion gate reads it, not a tag.
SHADOW_METRIC = "shadow_no_worse"


class RegistryError(StageFailure):
    """A registry action that is not allowed; the message says why and what to do."""


class ShadowShortfall(RegistryError):
    """The version has not yet been no worse than @champion on enough shadow batches: ``shortfall`` says
    how far it is (``shadow_shortfall``), the message adds the fix."""

    def __init__(self, shortfall: str, message: str) -> None:
        super().__init__(message, {"shortfall": shortfall})
        self.shortfall = shortfall


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def mlflow_client() -> Any:
    import mlflow

    return mlflow.MlflowClient()


def training_complete(client: Any, version: Any) -> bool:
    """Whether the version's run holds everything training writes last: the drift baseline."""
    folder = BASELINE_ARTIFACT.rsplit("/", 1)[0]
    return any(a.path == BASELINE_ARTIFACT for a in client.list_artifacts(version.run_id, folder))


def abandon(client: Any, name: str, version: Any, why: str) -> None:
    """Mark a version that can never be validated or promoted (``validation_status=abandoned``)."""
    client.set_model_version_tag(name, version.version, "validation_status", ABANDONED)
    client.set_model_version_tag(name, version.version, "abandoned_reason", why)


def abandon_incomplete(client: Any, name: str, keep_run_id: str | None = None) -> list[str]:
    """Versions still pending whose training never finished (a killed or failed train stage left
    them without a drift baseline) become abandoned; the version of ``keep_run_id`` is left alone."""
    abandoned = []
    for version in client.search_model_versions(f"name = '{name}'"):
        if version.tags.get("validation_status") != "pending" or version.tags.get("pipeline_run_id") == keep_run_id:
            continue
        if not training_complete(client, version):
            abandon(client, name, version, f"training of run {version.tags.get('pipeline_run_id')} did not finish: "
                                           f"no {BASELINE_ARTIFACT}")
            abandoned.append(str(version.version))
    return abandoned


def candidate_version(client: Any, name: str, run_id: str) -> Any:
    """The version registered by this pipeline run, else the newest one still pending validation
    with a complete training record (incomplete ones are marked abandoned on the way)."""
    abandon_incomplete(client, name, keep_run_id=run_id)
    versions = sorted(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version), reverse=True)
    for version in versions:
        if version.tags.get("pipeline_run_id") == run_id:
            if not training_complete(client, version):
                abandon(client, name, version, f"training of run {run_id} did not finish: no {BASELINE_ARTIFACT}")
                raise RegistryError(f"{name} version {version.version} has no complete training record (no "
                                    f"{BASELINE_ARTIFACT}); it is marked abandoned. Fix: run the train stage again")
            return version
    for version in versions:
        if version.tags.get("validation_status") == "pending":
            return version
    raise RegistryError(f"no model version of {name} is waiting for validation. Fix: run the train stage first")


def recorded_validation(client: Any, version: Any) -> dict[str, Any]:
    """What the validate stage recorded in the version's run: every ``validation_passed`` value ever
    logged (metric history is append-only) and ``validation/results.json``.  A tag can be edited by
    anyone allowed to tag the model; gates read this record instead."""
    history = [m.value for m in client.get_metric_history(version.run_id, "validation_passed")]
    try:
        import mlflow

        results = mlflow.artifacts.load_dict(f"runs:/{version.run_id}/{VALIDATION_ARTIFACT}")
    except Exception:  # MLflow raises several types for a missing artifact
        results = None
    passed = bool(history) and all(v == 1.0 for v in history) and results is not None and all(
        c.get("passed") for c in results.get("checks", [])) and results.get("version", str(version.version)) == str(
        version.version)
    return {"passed": passed, "history": history, "results": results}


def require_validated(client: Any, name: str, version: Any, action: str) -> None:
    """Refuse ``action`` unless the version finished training and its recorded validation passed;
    a ``validation_status`` tag that disagrees with the record is named as such."""
    tag = version.tags.get("validation_status")
    if tag == ABANDONED:
        raise RegistryError(f"{name} version {version.version} is abandoned ({version.tags.get('abandoned_reason')}); "
                            f"it cannot be {action}")
    if not training_complete(client, version):
        raise RegistryError(f"{name} version {version.version} has no complete training record (no "
                            f"{BASELINE_ARTIFACT} in run {version.run_id}); it cannot be {action}. Fix: retrain")
    record = recorded_validation(client, version)
    if record["passed"]:
        return
    where = f"run {version.run_id} ({VALIDATION_ARTIFACT}, metric validation_passed {record['history'] or 'never logged'})"
    if tag == "passed":
        raise RegistryError(f"{name} version {version.version}: the tag validation_status says 'passed' but the "
                            f"validation recorded in {where} did not pass; tags can be edited, the record is what "
                            f"counts, so it cannot be {action}. Fix: train and validate a new version")
    raise RegistryError(f"{name} version {version.version} did not pass validation ({where}); only a passed version "
                        f"can be {action}")


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


def shadow_shortfall(client: Any, name: str, version: Any, min_batches: int) -> str | None:
    """Why ``version`` may not replace @champion yet under ``inference.min_shadow_batches``, or None:
    the latest ``min_batches`` labelled shadow batches (the last verdict per batch) must all be no worse."""
    if min_batches <= 0:
        return None
    verdicts: dict[int, float] = {}
    for entry in sorted(client.get_metric_history(version.run_id, SHADOW_METRIC), key=lambda m: m.timestamp):
        verdicts[entry.step] = entry.value
    recent = [verdicts[step] for step in sorted(verdicts)][-min_batches:]
    if len(recent) == min_batches and all(v == 1.0 for v in recent):
        return None
    worse = sum(v != 1.0 for v in recent)
    return (f"{name} version {version.version} was compared with @champion on {len(verdicts)} labelled shadow "
            f"batch(es), {worse} of the latest {len(recent)} worse; inference.min_shadow_batches asks for the latest "
            f"{min_batches} to be no worse (metric {SHADOW_METRIC} in run {version.run_id})")


def approve(name: str, version: str, who: str, why: str) -> dict[str, Any]:
    client = mlflow_client()
    current = client.get_model_version(name, version)
    require_validated(client, name, current, "approved")
    for key, value in {"approval": "approved", "approved_by": who, "approved_at": _now(),
                       "approval_reason": why}.items():
        client.set_model_version_tag(name, version, key, value)
    return {"model": name, "version": version, "approval": "approved", "by": who}


def promote(name: str, version: str | None, who: str, why: str, min_shadow_batches: int = 0) -> dict[str, Any]:
    """``@challenger`` (or the given version) becomes ``@champion``, if validated and approved, and, when
    there is a champion to compare with, no worse than it on ``min_shadow_batches`` shadow batches."""
    client = mlflow_client()
    if version is None:
        challenger = alias_version(client, name, "challenger")
        if challenger is None:
            raise RegistryError(f"{name} has no @challenger. Fix: run validate, or pass --version")
        version = str(challenger.version)
    current = client.get_model_version(name, version)
    require_validated(client, name, current, "made @champion")
    if current.tags.get("approval") != "approved":
        raise RegistryError(f"{name} version {version} is not approved. Fix: approve it first "
                            f"(approve --version {version} --reason ...)")
    previous = alias_version(client, name, "champion")
    if previous is not None and str(previous.version) != str(version):
        shortfall = shadow_shortfall(client, name, current, min_shadow_batches)
        if shortfall:
            raise ShadowShortfall(shortfall, f"{shortfall}. Fix: let score and monitor compare it on more labelled "
                                  "batches, or lower inference.min_shadow_batches in conf/project.yml")
    set_alias(client, name, "champion", version, why, who)
    return {"model": name, "champion": str(version), "previous": str(previous.version) if previous else None}


def rolled_back_versions(history: list[dict[str, Any]]) -> set[str]:
    """Versions whose latest event in the champion trail is being rolled back from."""
    last: dict[str, str] = {}
    for entry in history:
        if entry["alias"] != "champion":
            continue
        last[entry["version"]] = "champion"
        if entry["from"] and entry["why"].startswith("rollback:"):
            last[entry["from"]] = "rolled_back"
    return {v for v, state in last.items() if state == "rolled_back"}


def rollback(name: str, who: str, why: str, to: str | None = None) -> dict[str, Any]:
    """Put the previous champion back: the latest earlier ``@champion`` in the audit trail that was not
    itself rolled back and whose recorded validation passed, or ``to``.  A second rollback goes one
    further back instead of returning to the version just rolled back."""
    client = mlflow_client()
    current = alias_version(client, name, "champion")
    if current is None:
        raise RegistryError(f"{name} has no @champion to roll back")
    history = json.loads(client.get_registered_model(name).tags.get("alias_history", "[]"))
    if to is not None:
        if str(to) == str(current.version):
            raise RegistryError(f"{name} version {to} is already @champion")
        target = client.get_model_version(name, str(to))
        require_validated(client, name, target, "rolled back to")
        was_champion = any(h["alias"] == "champion" and h["version"] == str(to) for h in history)
        if not was_champion and target.tags.get("approval") != "approved":
            raise RegistryError(f"{name} version {to} was never @champion and is not approved. Fix: approve it "
                                f"first (approve --version {to} --reason ...)")
    else:
        skipped = rolled_back_versions(history) | {str(current.version)}
        earlier = [h["version"] for h in reversed(history) if h["alias"] == "champion"]
        target = None
        for version in dict.fromkeys(earlier):
            if version in skipped:
                continue
            candidate = client.get_model_version(name, version)
            try:
                require_validated(client, name, candidate, "rolled back to")
            except RegistryError:
                continue
            target = candidate
            break
        if target is None:
            raise RegistryError(f"{name} has no earlier @champion to roll back to (versions rolled back or not "
                                f"validated: {', '.join(sorted(skipped, key=int))}). Fix: pass --to VERSION")
    set_alias(client, name, "champion", str(target.version), f"rollback: {why}", who)
    return {"model": name, "champion": str(target.version), "rolled_back": str(current.version)}


def served_versions(client: Any, name: str) -> tuple[str | None, str | None]:
    """(@champion's version, the @challenger to serve or shadow-score beside it), from one registry read.
    A challenger that is the champion (promoted, the alias not moved yet) or that was rolled back from
    @champion is not served: None.  A model not registered yet has neither; other registry errors
    propagate, so a caller keeps what it serves instead of mistaking an outage for "no challenger"."""
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None, None
        raise
    aliases = {alias: str(version) for alias, version in (model.aliases or {}).items()}
    champion_version, challenger = aliases.get("champion"), aliases.get("challenger")
    history = json.loads((model.tags or {}).get("alias_history", "[]"))
    if challenger is not None and (challenger == champion_version or challenger in rolled_back_versions(history)):
        challenger = None
    return champion_version, challenger


def champion(rt: Runtime, name: str) -> Any:
    """The ``@champion`` version; fails with what to do when there is none yet."""
    rt.configure_mlflow()
    version = alias_version(mlflow_client(), name, "champion")
    if version is None:
        raise RegistryError(f"{name} has no @champion yet. Fix: validate, approve and promote a version "
                            f"(python -m {PACKAGE} approve/promote), or run `run all` locally")
    return version
