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
    with pytest.raises(ConfigError, match=r"bad.yml: format: 'xml' is not one of json, csv, parquet"):
        load_contract(path, tmp_path)
    path.write_text(path.read_text().replace("xml", "csv").replace("[id]\ncolumns", "[key]\ncolumns"))
    with pytest.raises(ConfigError, match=r"bad.yml: primary_key: 'key' is not a column"):
        load_contract(path, tmp_path)
