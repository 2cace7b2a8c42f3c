"""Sail lane: the validation gate and the champion / challenger lifecycle in the local registry."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

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

    dry_root = with_settings(worse_root, tmp_path / "dry", lambda s: s["validation"].update(mode="dry_run"))
    recorded = train_and_validate(rt, dry_root)
    assert recorded.ok and recorded.stages[-1].details["status"] == "failed"
    assert str(registry.alias_version(client, name, "challenger").version) != recorded.stages[0].details["version"]
