"""The command line: once as a user runs it, in a subprocess, and otherwise through the same ``main``
in this process (the ``cli`` fixture)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
PACKAGE = "{{ cookiecutter.package_name }}"


def cli_process(*args: str, cwd: Path = PROJECT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(PROJECT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("SPARK_CONNECT_MODE_ENABLED", None)
    return subprocess.run([sys.executable, "-m", PACKAGE, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.sail
def test_sample_data_then_ingest_prints_a_json_summary_whose_accounting_closes(cli, tmp_path):
    sample = cli_process("sample-data", "--rows", "2000", "--local-dir", str(tmp_path))
    assert sample.returncode == 0, sample.stderr
    written = json.loads(sample.stdout)
    result = cli("run", "ingest", "--target", "local", "--local-dir", str(tmp_path), "--json", "--run-id", "cli")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["ok"] is True and summary["run_id"] == "cli"
    assert [s["name"] for s in summary["stages"]] == ["bronze", "silver", "gold"]
    silver = summary["stages"][1]["details"][written["source"]]
    assert silver["accounting_closes"] is True and silver["raw_records"] == written["records"]
    assert silver["raw_records"] == (silver["silver_upserts"] + silver["quarantined"]
                                     + silver["duplicates_removed"] + silver["malformed"])
    tables = {t["name"].split(".")[-1]: t for t in summary["stages"][2]["tables"]}
    assert all(t["version"] == 0 and t["rows"] > 0 for t in tables.values())
    assert summary["audit"]["name"].endswith(".pipeline_runs") and summary["audit"]["version"] == 0
    assert "[1/3] bronze" in result.stderr and "[3/3] gold succeeded" in result.stderr
    assert (tmp_path / "warehouse").is_dir() and not (PROJECT / ".local" / "cli").exists()


def test_training_without_gold_says_what_to_run_first(cli, tmp_path):
    result = cli("run", "train", "--target", "local", "--local-dir", str(tmp_path))
    assert result.returncode == 1 and "does not exist. Fix: run the ingest stages first" in result.stdout


def test_unknown_stage_is_a_clear_error(cli):
    result = cli("run", "trian", "--target", "local")
    assert result.returncode == 2
    assert "unknown stage 'trian'" in result.stderr and "Known stages: bootstrap" in result.stderr


def test_unknown_flag_is_a_clear_error(cli):
    result = cli("run", "all", "--targte", "local")
    assert result.returncode == 2 and "unrecognized arguments: --targte" in result.stderr


def test_unknown_target_is_a_clear_error(cli):
    result = cli("run", "all", "--target", "qa")
    assert result.returncode == 2 and "unknown target 'qa'" in result.stderr


def test_databricks_target_refuses_to_run_off_databricks(cli):
    result = cli("run", "bootstrap", "--target", "prod")
    assert result.returncode == 2 and "runs on Databricks" in result.stderr


def test_bad_engine_is_rejected(cli):
    result = cli("run", "all", "--engine", "duckdb")
    assert result.returncode == 2 and "invalid choice: 'duckdb'" in result.stderr


def test_stages_lists_run_order(cli):
    result = cli("stages")
    assert result.returncode == 0
    serving = ["deploy_serving"] if (PROJECT / "src" / PACKAGE / "stages" / "deploy_serving.py").exists() else []
    assert result.stdout.split() == ["bootstrap", "bronze", "silver", "gold", "features", "check", "train", "validate",
                                     "promote", *serving, "score", "monitor", "inventory"]


@pytest.mark.bundle
def test_works_from_a_subfolder_of_the_project(cli):
    result = cli("bundle-check", "--target", "dev", cwd=PROJECT / "notebooks")
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_empty_landing_folder_for_your_own_source_names_the_folder_and_the_contract(cli, tmp_path, make_root):
    import yaml

    root = make_root(tmp_path / "project")
    contracts = root / "conf" / "contracts"
    own = yaml.safe_load(next(contracts.glob("*.yml")).read_text())
    own.update(name="my_orders", path="raw/my_orders")
    (contracts / "my_orders.yml").write_text(yaml.safe_dump(own))
    settings = yaml.safe_load((root / "conf" / "project.yml").read_text())
    (root / "conf" / "project.yml").write_text(yaml.safe_dump({**settings, "source": "my_orders"}))
    result = cli("run", "all", "--target", "local", cwd=root)
    assert result.returncode == 2, result.stderr
    assert "no landing files for source 'my_orders' in" in result.stderr
    assert "raw/my_orders" in result.stderr and "my_orders.yml" in result.stderr and "Fix:" in result.stderr
