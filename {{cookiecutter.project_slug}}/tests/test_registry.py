"""Sail lane: the validation gate and the champion / challenger lifecycle in the local registry.

Four trainings, each for its own purpose: the first version (judged by the naive baselines alone),
a second one (judged against the first as @champion), a constant model that fails both checks, and
the same constant model in dry-run mode.  The version a killed training leaves behind is built
through the registry API: registered, with no drift baseline in its run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from {{ cookiecutter.package_name }} import pipeline
from {{ cookiecutter.package_name }}.config import load_project
from {{ cookiecutter.package_name }}.contract import source_contract
from {{ cookiecutter.package_name }}.ml import registry

pytestmark = pytest.mark.sail


def with_settings(root: Path, target: Path, change) -> Path:
    copy = target
    shutil.copytree(root, copy)
    path = copy / "conf" / "project.yml"
    settings = yaml.safe_load(path.read_text())
    change(settings)
    path.write_text(yaml.safe_dump(settings))
    return copy


def constant(settings) -> None:
    settings["training"]["params"]["min_data_in_leaf"] = 10_000_000  # no split is possible: a constant model


def train_and_validate(rt, root):
    return pipeline.run_stages(rt, ["train", "validate"], log=lambda _: None, root=root)


@pytest.fixture(scope="module")
def lake(sample_lake, tmp_path_factory):
    with sample_lake(tmp_path_factory.mktemp("registry"), "registry_tests", ["ingest", "features"]) as lake:
        yield lake


@pytest.fixture(scope="module")
def first(lake):
    """Version 1 of a new model: no @champion yet, so the naive baselines alone decide."""
    rt, root, _ = lake
    summary = train_and_validate(rt, root)
    assert summary.ok, [s.error for s in summary.stages]
    return summary


def test_the_gate_needs_a_margin_over_the_naive_baselines_on_the_same_holdout(lake, first):
    import mlflow

    _, root, _ = lake
    client = mlflow.MlflowClient()
    trained, validated = first.stages[0].details, first.stages[1].details
    version = client.get_model_version(trained["model"], trained["version"])
    checks = json.loads(version.tags["validation_results"])
    (gate,) = [c for c in checks if "naive baseline" in c["check"]]
    assert not any("vs @champion" in c["check"] for c in checks)
    assert gate["passed"] and gate["improvement"] >= load_project(root).validation.baseline.min_improvement
    assert f"{gate['baseline_name']} " in validated["checks"] and "better) ok" in validated["checks"]
    print(f"naive gate: {gate['check']}: {gate['value']:.4f} vs {gate['baseline_name']} {gate['baseline']:.4f}, "
          f"{gate['improvement']:.1%} better")

    # The training run logged the same baselines, on the same holdout, next to the model's metrics.
    logged = client.get_run(version.run_id).data.metrics
    metric = gate["check"].split()[0]
    for name, value in gate["baselines"].items():
        assert logged[f"baseline_{name}_{metric}"] == pytest.approx(value, rel=1e-9)
    assert logged[metric] == pytest.approx(gate["value"], rel=1e-6)
    assert "## Naive baselines (same holdout)" in version.description and gate["baseline_name"] in version.description
    recorded = mlflow.artifacts.load_dict(f"runs:/{version.run_id}/validation/results.json")
    assert {b["name"] for b in recorded["naive_baselines"]} == set(gate["baselines"])
    assert recorded["version"] == str(version.version) and recorded["status"] == "passed"


def test_champion_challenger_lifecycle_with_approval_and_rollback(lake, first):
    import mlflow

    rt, root, _ = lake
    name = load_project(root).model_name
    client = mlflow.MlflowClient()
    assert str(client.get_model_version_by_alias(name, "challenger").version) == "1"
    with pytest.raises(registry.RegistryError, match="not approved"):
        registry.promote(name, None, "ci", "first release")
    registry.approve(name, "1", "reviewer", "metrics and model card reviewed")
    assert registry.promote(name, None, "ci", "first release") == {"model": name, "champion": "1", "previous": None}

    second = train_and_validate(rt, root)
    assert second.ok, "the same data and seed reproduce the champion, within tolerance"
    checks = json.loads(client.get_model_version(name, "2").tags["validation_results"])
    assert any("vs @champion" in c["check"] and c["passed"] for c in checks)
    registry.approve(name, "2", "reviewer", "retrained weekly")
    approved = client.get_model_version(name, "2").tags
    assert approved["approved_by"] == "reviewer" and approved["approved_at"] and approved["approval_reason"]
    with pytest.raises(registry.RegistryError, match=r"on 0 labelled shadow batch.*min_shadow_batches"):
        registry.promote(name, "2", "ci", "weekly release", min_shadow_batches=1)  # monitor compared nothing yet
    assert registry.promote(name, "2", "ci", "weekly release")["previous"] == "1"
    assert registry.rollback(name, "oncall", "conversion dropped") == {"model": name, "champion": "1",
                                                                      "rolled_back": "2"}
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
    history = json.loads(client.get_registered_model(name).tags["alias_history"])
    assert [(h["alias"], h["version"], h["from"]) for h in history if h["alias"] == "champion"] == [
        ("champion", "1", None), ("champion", "2", "1"), ("champion", "1", "2")]
    assert history[-1]["who"] == "oncall" and history[-1]["why"] == "rollback: conversion dropped"

    # A second rollback does not toggle back to the version just rolled back; --to names one on purpose.
    with pytest.raises(registry.RegistryError, match="no earlier @champion to roll back to"):
        registry.rollback(name, "oncall", "again")
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
    assert registry.rollback(name, "oncall", "2 was fine after all", to="2")["champion"] == "2"
    with pytest.raises(registry.RegistryError, match="versions rolled back or not validated: 1, 2"):
        registry.rollback(name, "oncall", "1 was rolled back from in turn")
    with pytest.raises(registry.RegistryError, match="already @champion"):
        registry.rollback(name, "oncall", "no-op", to="2")
    assert registry.rollback(name, "oncall", "back to the first", to="1")["champion"] == "1"


def test_the_gate_fails_closed_on_a_worse_model_and_dry_run_only_records(lake, first, tmp_path):
    """A constant model is a naive baseline in disguise: it fails against the naive baselines and
    against the champion; tags set by hand cannot push it through; in dry-run mode it is recorded."""
    import mlflow

    rt, root, _ = lake
    name = load_project(root).model_name
    client = mlflow.MlflowClient()
    if registry.alias_version(client, name, "champion") is None:
        registry.approve(name, "1", "reviewer", "baseline")
        registry.promote(name, "1", "ci", "baseline")
    champion = str(client.get_model_version_by_alias(name, "champion").version)

    worse_root = with_settings(root, tmp_path / "worse", constant)
    failed = train_and_validate(rt, worse_root)
    assert not failed.ok and failed.stages[-1].name == "validate"
    error = failed.stages[-1].error
    assert "vs @champion" in error and "vs best naive baseline" in error and "FAILED" in error
    bad = failed.stages[0].details["version"]
    version = client.get_model_version(name, bad)
    (gate,) = [c for c in json.loads(version.tags["validation_results"]) if "naive baseline" in c["check"]]
    assert not gate["passed"] and version.tags["validation_status"] == "failed"
    assert str(client.get_model_version_by_alias(name, "champion").version) == champion
    with pytest.raises(registry.RegistryError, match="only a passed version can be approved"):
        registry.approve(name, bad, "reviewer", "let it through")

    # Tampering: tags say passed and approved; the validation recorded in the run still says failed.
    for key, value in {"validation_status": "passed", "approval": "approved"}.items():
        client.set_model_version_tag(name, bad, key, value)
    with pytest.raises(registry.RegistryError, match=r"tag validation_status says 'passed'.*did not pass"):
        registry.approve(name, bad, "reviewer", "let it through")
    with pytest.raises(registry.RegistryError, match=r"tag validation_status says 'passed'.*did not pass"):
        registry.promote(name, bad, "reviewer", "let it through")
    with pytest.raises(registry.RegistryError, match="did not pass"):
        registry.rollback(name, "oncall", "to the bad one", to=bad)
    assert str(client.get_model_version_by_alias(name, "champion").version) == champion

    dry_root = with_settings(worse_root, tmp_path / "dry", lambda s: s["validation"].update(mode="dry_run"))
    recorded = train_and_validate(rt, dry_root)
    assert recorded.ok and recorded.stages[-1].details["status"] == "failed"
    assert str(registry.alias_version(client, name, "challenger").version) != recorded.stages[0].details["version"]


def test_a_version_left_by_a_killed_training_is_abandoned_and_never_promoted(lake, first, tmp_path):
    """A train stage killed after registering but before logging the drift baseline leaves a pending
    version whose run has no complete training record.  The next validation marks it abandoned;
    nothing can approve, promote or roll back to it, whatever its tags say."""
    import mlflow

    rt, root, _ = lake
    client = mlflow.MlflowClient()
    model = first.stages[0].details
    source = client.get_model_version(model["model"], model["version"]).source
    with mlflow.start_run(run_name="train-killed") as killed:  # registered the model, then died
        pass
    client.create_registered_model("orphan_model")
    orphan = client.create_model_version("orphan_model", source, run_id=killed.info.run_id,
                                         tags={"validation_status": "pending", "pipeline_run_id": "killed"})

    orphan_root = with_settings(root, tmp_path / "orphan", lambda s: s.update(model_name="orphan_model"))
    later = pipeline.run_stages(rt, ["validate"], log=lambda _: None, root=orphan_root)
    assert not later.ok and "no model version of orphan_model is waiting for validation" in later.stages[0].error
    tags = client.get_model_version("orphan_model", orphan.version).tags
    assert tags["validation_status"] == "abandoned" and "did not finish" in tags["abandoned_reason"]
    client.set_model_version_tag("orphan_model", orphan.version, "validation_status", "passed")
    with pytest.raises(registry.RegistryError, match="no complete training record"):
        registry.approve("orphan_model", orphan.version, "reviewer", "looks fine")
    with pytest.raises(registry.RegistryError, match="no complete training record"):
        registry.promote("orphan_model", orphan.version, "reviewer", "looks fine")
    assert registry.alias_version(client, "orphan_model", "champion") is None


def test_a_candidate_over_a_declared_disparity_limit_is_never_promoted(lake, first, tmp_path):
    """The first version's fairness checks passed with the shipped limits, each with its per-group
    table; the same data under a tighter limit on one of those gaps fails closed in enabled mode,
    naming the check in the summary, in MLflow and in the validation results table."""
    import mlflow

    rt, root, _ = lake
    client = mlflow.MlflowClient()
    trained = first.stages[0].details
    limits = load_project(root).validation.fairness.max_difference
    (column,) = source_contract(root, load_project(root).source).sensitive_columns
    passed = [c for c in json.loads(client.get_model_version(trained["model"], trained["version"])
                                    .tags["validation_results"]) if c["check"].startswith("fairness")]
    assert {c["metric"] for c in passed} == set(limits) and {c["column"] for c in passed} == {column}
    assert all(c["passed"] and len(c["groups"]) >= 2 for c in passed)
    metric = next(iter(limits))
    gap = next(c for c in passed if c["metric"] == metric)["value"]
    assert gap > 0.01, "the sample's groups must differ for the tighter limit below to bite"

    def champion() -> str | None:
        version = registry.alias_version(client, trained["model"], "champion")
        return None if version is None else str(version.version)

    def tight(settings) -> None:
        settings["validation"]["fairness"]["max_difference"] = {metric: 0.01}

    before = champion()
    failed = train_and_validate(rt, with_settings(root, tmp_path / "tight", tight))
    assert not failed.ok and f"fairness {metric} gap across {column} (max 0.01)" in failed.stages[-1].error
    bad = failed.stages[0].details["version"]
    version = client.get_model_version(trained["model"], bad)
    assert version.tags["validation_status"] == "failed"
    # The model card gains the per-group table and each gap against its limit.
    card = version.description
    assert "## Fairness (validation gate, same holdout)" in card and f"- {metric} gap " in card
    assert "(max 0.01): FAILED" in card and card.index("## Fairness") < card.index("## Limitations")
    challenger = registry.alias_version(client, trained["model"], "challenger")
    assert challenger is None or str(challenger.version) != bad
    assert champion() == before != bad
    with pytest.raises(registry.RegistryError, match="only a passed version can be approved"):
        registry.approve(trained["model"], bad, "reviewer", "let it through")
    logged = client.get_run(version.run_id).data.metrics
    assert logged[f"fairness_{metric}_gap_{column}"] > 0.01 and logged["validation_passed"] == 0.0
    results = rt.read("validation_results").toPandas()
    rows = results[(results["source"] == trained["model"]) & (results["batch_from"] == int(bad))]
    (row,) = rows[rows["type"] == f"model_{metric}"].itertuples()
    assert not row.success and row.column == column and len(json.loads(row.examples)) >= 2
