"""Per-target configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.config import ConfigError, load_targets, target_config

PROJECT = Path(__file__).resolve().parents[1]


def test_every_bundle_target_has_settings_and_local_exists():
    import yaml

    bundle_targets = set(yaml.safe_load((PROJECT / "databricks.yml").read_text())["targets"])
    targets = load_targets(PROJECT)
    assert bundle_targets | {"local"} == set(targets)
    assert targets["local"].platform == "local"
    assert all(targets[t].platform == "databricks" for t in bundle_targets)
    assert targets["prod"].catalog == "{{ cookiecutter.prod_catalog }}"


def test_unknown_target_lists_known_ones():
    with pytest.raises(ConfigError, match=r"unknown target 'qa'.*local"):
        target_config(PROJECT, "qa")


def test_bad_platform_names_file_and_key(project_copy):
    path = project_copy / "conf" / "targets.yml"
    path.write_text(path.read_text().replace("platform: local", "platform: laptop"))
    with pytest.raises(ConfigError, match=r"targets.yml: targets.local.platform is 'laptop'"):
        load_targets(project_copy)
