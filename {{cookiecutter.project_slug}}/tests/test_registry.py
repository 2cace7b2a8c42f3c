"""Sail lane: the validation gate and the champion / challenger lifecycle in the local registry."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from {{ cookiecutter.package_name }} import pipeline
from {{ cookiecutter.package_name }}.config import load_project
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


@pytest.fixture(scope="module")
def lake(sample_lake, tmp_path_factory):
    with sample_lake(tmp_path_factory.mktemp("registry"), "registry_tests", ["ingest", "features"]) as lake:
        yield lake


def train_and_validate(rt, root):
    return pipeline.run_stages(rt, ["train", "validate"], log=lambda _: None, root=root)


def test_champion_challenger_lifecycle_with_approval_and_rollback(lake):
    import mlflow

    rt, root, _ = lake
    name = load_project(root).model_name
    first = train_and_validate(rt, root)
    assert first.ok, [s.error for s in first.stages]
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
    assert registry.promote(name, "2", "ci", "weekly release")["previous"] == "1"
    assert registry.rollback(name, "oncall", "conversion dropped") == {"model": name, "champion": "1",
                                                                      "rolled_back": "2"}
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
    history = json.loads(client.get_registered_model(name).tags["alias_history"])
    assert [(h["alias"], h["version"], h["from"]) for h in history if h["alias"] == "champion"] == [
        ("champion", "1", None), ("champion", "2", "1"), ("champion", "1", "2")]
    assert history[-1]["who"] == "oncall" and history[-1]["why"] == "rollback: conversion dropped"
    approved = client.get_model_version(name, "2").tags
    assert approved["approved_by"] == "reviewer" and approved["approved_at"] and approved["approval_reason"]

    # Rolling back twice goes further back through the trail; it never returns to the version just rolled back.
    assert train_and_validate(rt, root).ok
    registry.approve(name, "3", "reviewer", "retrained")
    registry.promote(name, "3", "ci", "release 3")
    assert registry.rollback(name, "oncall", "latency")["champion"] == "1", "2 was rolled back already"
    with pytest.raises(registry.RegistryError, match="no earlier @champion to roll back to"):
        registry.rollback(name, "oncall", "again")
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
    assert registry.rollback(name, "oncall", "2 was fine after all", to="2")["champion"] == "2"


def test_the_gate_fails_closed_on_a_worse_model_and_dry_run_only_records(lake, tmp_path):
    import mlflow

    rt, root, _ = lake
    name = load_project(root).model_name
    client = mlflow.MlflowClient()
    if registry.alias_version(client, name, "champion") is None:
        assert train_and_validate(rt, root).ok
        version = str(client.get_model_version_by_alias(name, "challenger").version)
        registry.approve(name, version, "reviewer", "baseline")
        registry.promote(name, version, "ci", "baseline")
    champion = str(client.get_model_version_by_alias(name, "champion").version)

    def worse(settings):
        settings["training"]["params"]["min_data_in_leaf"] = 10_000_000  # no split is possible: a constant model

    worse_root = with_settings(root, tmp_path / "worse", worse)
    failed = train_and_validate(rt, worse_root)
    assert not failed.ok and failed.stages[-1].name == "validate"
    assert "vs @champion" in failed.stages[-1].error and "FAILED" in failed.stages[-1].error
    bad = failed.stages[0].details["version"]
    assert client.get_model_version(name, bad).tags["validation_status"] == "failed"
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


def test_the_gate_needs_a_margin_over_the_naive_baselines_on_the_same_holdout(lake, tmp_path):
    """A model name without a @champion: the naive baselines alone decide.  The real model passes;
    a constant model (no split possible) is a naive baseline in disguise and fails."""
    import mlflow

    rt, root, _ = lake
    fresh_root = with_settings(root, tmp_path / "fresh", lambda s: s.update(model_name="naive_gate_model"))
    passed = train_and_validate(rt, fresh_root)
    assert passed.ok, [s.error for s in passed.stages]
    client = mlflow.MlflowClient()  # after a run: the run points MLflow at the project's local store
    trained, validated = passed.stages[0].details, passed.stages[1].details
    version = client.get_model_version("naive_gate_model", trained["version"])
    (gate,) = [c for c in json.loads(version.tags["validation_results"]) if "naive baseline" in c["check"]]
    assert gate["passed"] and gate["improvement"] >= load_project(root).validation.baseline.min_improvement
    assert f"{gate['baseline_name']} " in validated["checks"] and "better) ok" in validated["checks"]
    print(f"naive gate: {gate['check']}: {gate['value']:.4f} vs {gate['baseline_name']} {gate['baseline']:.4f}, "
          f"{gate['improvement']:.1%} better")

    # The training run logged the same baselines, on the same holdout, next to the model's metrics.
    logged = client.get_run(version.run_id).data.metrics
    for name, value in gate["baselines"].items():
        metric = gate["check"].split()[0]
        assert logged[f"baseline_{name}_{metric}"] == pytest.approx(value, rel=1e-9)
    assert logged[gate["check"].split()[0]] == pytest.approx(gate["value"], rel=1e-6)
    assert "## Naive baselines (same holdout)" in version.description and gate["baseline_name"] in version.description
    recorded = mlflow.artifacts.load_dict(f"runs:/{version.run_id}/validation/results.json")
    assert {b["name"] for b in recorded["naive_baselines"]} == set(gate["baselines"])

    def constant(settings):
        settings["training"]["params"]["min_data_in_leaf"] = 10_000_000

    failed = train_and_validate(rt, with_settings(fresh_root, tmp_path / "constant", constant))
    assert not failed.ok and failed.stages[-1].name == "validate"
    assert "vs best naive baseline" in failed.stages[-1].error and "FAILED" in failed.stages[-1].error
    bad = client.get_model_version("naive_gate_model", failed.stages[0].details["version"])
    (gate,) = [c for c in json.loads(bad.tags["validation_results"]) if "naive baseline" in c["check"]]
    assert not gate["passed"] and bad.tags["validation_status"] == "failed"


def test_a_version_left_by_a_killed_training_is_abandoned_and_never_promoted(lake, tmp_path):
    """A train stage killed after registering but before logging the drift baseline leaves a pending
    version with no complete training record (simulated by removing the baseline from the local
    artifact store).  The next validation marks it abandoned; nothing can approve or promote it."""
    import mlflow

    rt, root, _ = lake
    orphan_root = with_settings(root, tmp_path / "orphan", lambda s: s.update(model_name="orphan_model"))
    trained = pipeline.run_stages(rt, ["train"], log=lambda _: None, root=orphan_root)
    assert trained.ok, [s.error for s in trained.stages]
    client = mlflow.MlflowClient()
    version = client.get_model_version("orphan_model", trained.stages[0].details["version"])
    artifacts = Path(urlparse(client.get_run(version.run_id).info.artifact_uri).path)
    (artifacts / "monitoring" / "baseline.json").unlink()

    later = pipeline.run_stages(rt, ["validate"], log=lambda _: None, root=orphan_root)
    assert not later.ok and "no model version of orphan_model is waiting for validation" in later.stages[0].error
    tags = client.get_model_version("orphan_model", version.version).tags
    assert tags["validation_status"] == "abandoned" and "did not finish" in tags["abandoned_reason"]
    client.set_model_version_tag("orphan_model", version.version, "validation_status", "passed")
    with pytest.raises(registry.RegistryError, match="no complete training record"):
        registry.approve("orphan_model", version.version, "reviewer", "looks fine")
    with pytest.raises(registry.RegistryError, match="no complete training record"):
        registry.promote("orphan_model", version.version, "reviewer", "looks fine")
    assert registry.alias_version(client, "orphan_model", "champion") is None
