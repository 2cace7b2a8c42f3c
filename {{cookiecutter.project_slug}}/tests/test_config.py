"""Per-target configuration."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from {{ cookiecutter.package_name }}.config import ConfigError, load_targets, target_config

# Reads the bundle (databricks.yml, resources/, notebooks/): runs for every rendered option set.
pytestmark = pytest.mark.bundle

PROJECT = Path(__file__).resolve().parents[1]


def edit_yaml(path: Path, change) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_every_bundle_target_has_settings_and_local_exists():
    bundle_targets = set(yaml.safe_load((PROJECT / "databricks.yml").read_text())["targets"])
    targets = load_targets(PROJECT)
    assert bundle_targets | {"local"} == set(targets)
    assert targets["local"].platform == "local" and targets["local"].auto_approve
    assert all(targets[t].platform == "databricks" and not targets[t].auto_approve for t in bundle_targets)


def test_databricks_targets_read_their_catalog_and_schema_from_databricks_yml():
    targets = load_targets(PROJECT)
    assert {name: (t.catalog, t.schema) for name, t in targets.items() if t.platform == "databricks"} == {
        "dev": ("{{ cookiecutter.dev_catalog }}", "{{ cookiecutter.schema_name }}"),
        "test": ("{{ cookiecutter.staging_catalog }}", "{{ cookiecutter.schema_name }}_test"),
        "staging": ("{{ cookiecutter.staging_catalog }}", "{{ cookiecutter.schema_name }}"),
        "prod": ("{{ cookiecutter.prod_catalog }}", "{{ cookiecutter.schema_name }}"),
    }
    local_only = yaml.safe_load((PROJECT / "conf" / "targets.yml").read_text())["targets"]
    assert set(local_only) == {"local"}, "conf/targets.yml holds only local targets"


def test_a_target_variable_overrides_the_default_and_references_resolve(project_copy):
    def change(data):
        data["variables"]["schema"]["default"] = "${bundle.target}_${var.landing_volume}"
        data["targets"]["prod"]["variables"]["catalog"] = {"default": "prod_main"}
        data["targets"]["qa"] = {"variables": {"schema": "qa_schema"}}

    edit_yaml(project_copy / "databricks.yml", change)
    targets = load_targets(project_copy)
    assert (targets["prod"].catalog, targets["prod"].schema) == ("prod_main", "prod_landing")
    assert (targets["qa"].catalog, targets["qa"].schema) == ("{{ cookiecutter.dev_catalog }}", "qa_schema")


def test_unknown_target_lists_known_ones():
    with pytest.raises(ConfigError, match=r"unknown target 'qa'.*local"):
        target_config(PROJECT, "qa")


def test_bad_platform_names_file_and_key(project_copy):
    path = project_copy / "conf" / "targets.yml"
    path.write_text(path.read_text().replace("platform: local", "platform: laptop"))
    with pytest.raises(ConfigError, match=r"targets.yml: targets.local.platform: 'laptop' should be 'local'. Fix: local"):
        load_targets(project_copy)


def test_a_databricks_target_declared_twice_is_refused(project_copy):
    path = project_copy / "conf" / "targets.yml"
    path.write_text(path.read_text() + "  prod:\n    platform: databricks\n    catalog: other\n    schema: s\n")
    with pytest.raises(ConfigError, match=r"targets.yml: targets.prod is a Databricks target of databricks.yml. "
                                          r"Fix: remove it here"):
        load_targets(project_copy)


def test_a_target_without_a_catalog_names_file_key_and_fix(project_copy):
    def change(data):
        data["variables"]["catalog"].pop("default")
        data["targets"]["dev"]["variables"].pop("catalog")

    edit_yaml(project_copy / "databricks.yml", change)
    with pytest.raises(ConfigError, match=r"databricks.yml: targets.dev has no catalog: neither "
                                          r"targets.dev.variables.catalog nor variables.catalog.default is set. "
                                          r"Fix: set one of them"):
        load_targets(project_copy)


def test_the_readme_contract_example_is_a_valid_contract(tmp_path):
    import re

    from {{ cookiecutter.package_name }}.contract import load_contract

    readme = (PROJECT / "README.md").read_text()
    example = re.search(r"```yaml\n(name: shop_orders.*?)```", readme, flags=re.S).group(1)
    (tmp_path / "conf" / "expectations").mkdir(parents=True)
    (tmp_path / "conf" / "expectations" / "shop_orders.json").write_text('{"expectations": []}')
    path = tmp_path / "shop_orders.yml"
    path.write_text(example)
    contract = load_contract(path, tmp_path)
    assert contract.column("amount").source == "Amount EUR" and contract.column("amount").decimal_separator == ","
    assert contract.event_time is None and contract.label.positive == ("yes", "y", "1")
    assert [e.name for e in contract.expectations()][:2] == ["not_null(order_no)", "not_null(customer)"]


def test_contract_errors_name_the_file_and_key(tmp_path):
    from {{ cookiecutter.package_name }}.contract import load_contract

    path = tmp_path / "bad.yml"
    path.write_text("name: bad\nformat: xml\npath: x\nprimary_key: [id]\ncolumns: {id: string}\n"
                    "gold: {table: t, keys: [id], timestamp: _ingest_date}\n")
    with pytest.raises(ConfigError, match=r"bad.yml: format: 'xml' should be 'json', 'csv' or 'parquet'. Fix: json, csv or parquet"):
        load_contract(path, tmp_path)
    path.write_text(path.read_text().replace("xml", "csv").replace("[id]\ncolumns", "[key]\ncolumns"))
    with pytest.raises(ConfigError, match=r"bad.yml: primary_key: 'key' is not a column"):
        load_contract(path, tmp_path)
