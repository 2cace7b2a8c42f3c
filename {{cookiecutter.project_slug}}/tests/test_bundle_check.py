"""bundle-check: the shipped bundle passes for every target, and each kind of mistake is caught
with a line that names the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from {{ cookiecutter.package_name }} import bundle_check

PROJECT = Path(__file__).resolve().parents[1]

JOB_FILE = "resources/bootstrap_job.yml"


def edit_yaml(root: Path, rel: str, change) -> None:
    path = root / rel
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def job(data: dict) -> dict:
    return data["resources"]["jobs"]["bootstrap"]


def problems(root: Path, **kwargs) -> list[str]:
    found, _ = bundle_check.check(root, **kwargs)
    return found


def test_shipped_bundle_passes_for_every_target():
    found, checked = bundle_check.check(PROJECT)
    assert found == []
    assert checked == ["dev", "test", "staging", "prod"]


def test_unknown_field_is_reported_with_file_and_key(project_copy):
    edit_yaml(project_copy, JOB_FILE, lambda d: job(d).update(max_concurent_runs=1))
    found = problems(project_copy, targets=["dev"])
    assert any(line.startswith(f"{JOB_FILE}: resources.jobs.bootstrap:") and "max_concurent_runs" in line
               for line in found), found


def test_bad_enum_value(project_copy):
    edit_yaml(project_copy, JOB_FILE, lambda d: job(d)["tasks"][0].update(run_if="SOMETIMES"))
    assert any("'SOMETIMES' is not a valid RunIf" in line for line in problems(project_copy, targets=["dev"]))


def test_missing_notebook(project_copy):
    (project_copy / "notebooks" / "setup" / "bootstrap.py").unlink()
    found = problems(project_copy, targets=["dev"])
    assert any(line.startswith(JOB_FILE) and "notebook_path: '../notebooks/setup/bootstrap.py' does not exist"
               in line for line in found), found


def test_notebook_without_header(project_copy):
    path = project_copy / "notebooks" / "setup" / "bootstrap.py"
    path.write_text(path.read_text().replace("# Databricks notebook source\n", ""))
    assert any("does not start with '# Databricks notebook source'" in line
               for line in problems(project_copy, targets=["dev"]))


def test_depends_on_an_unknown_task(project_copy):
    edit_yaml(project_copy, JOB_FILE, lambda d: job(d)["tasks"][0].update(depends_on=[{"task_key": "ingest"}]))
    assert any("tasks[0](bootstrap).depends_on: task 'ingest' is not a task of this job" in line
               for line in problems(project_copy, targets=["dev"]))


def test_undefined_job_cluster_and_environment(project_copy):
    edit_yaml(project_copy, JOB_FILE,
              lambda d: job(d)["tasks"][0].update(job_cluster_key="big", environment_key="py"))
    found = problems(project_copy, targets=["dev"])
    assert any("job_cluster_key: 'big' is not defined in job_clusters" in line for line in found)
    assert any("environment_key: 'py' is not defined in environments" in line for line in found)


def test_duplicate_resource_key_across_files(project_copy):
    (project_copy / "resources" / "copy.yml").write_text((project_copy / JOB_FILE).read_text())
    found = problems(project_copy, targets=["dev"])
    assert any(line.startswith("resources/copy.yml: resources.jobs.bootstrap: duplicate resource key")
               for line in found), found


def test_target_may_only_set_declared_variables(project_copy):
    edit_yaml(project_copy, "databricks.yml", lambda d: d["targets"]["prod"]["variables"].update(catalgo="x"))
    assert "databricks.yml: targets.prod.variables.catalgo: variable is not declared in the top-level variables" \
        in problems(project_copy, targets=["prod"])


def test_required_variable_needs_a_value_and_var_flag_or_env_supplies_it(project_copy, monkeypatch):
    edit_yaml(project_copy, "databricks.yml", lambda d: d["variables"]["owner"].pop("default"))
    found = problems(project_copy, targets=["dev"])
    assert any(line.startswith("databricks.yml: variables.owner: no value assigned to required variable")
               for line in found), found
    assert problems(project_copy, targets=["dev"], cli_vars={"owner": "me@example.com"}) == []
    monkeypatch.setenv("BUNDLE_VAR_owner", "me@example.com")
    assert problems(project_copy, targets=["dev"]) == []


def test_bad_mode(project_copy):
    edit_yaml(project_copy, "databricks.yml", lambda d: d["targets"]["dev"].update(mode="develop"))
    assert "databricks.yml: targets.dev.mode: 'develop' is not one of development, production" \
        in problems(project_copy, targets=["dev"])


def test_include_rules(project_copy):
    edit_yaml(project_copy, "databricks.yml", lambda d: d["include"].extend(["resources/extra.yml", "conf/*"]))
    found = problems(project_copy, targets=["dev"])
    assert "databricks.yml: include: 'resources/extra.yml': no such file" in found
    assert "databricks.yml: include: 'conf/*': only .yml, .yaml and .json files" in found


def test_include_glob_is_not_recursive(project_copy):
    nested = project_copy / "resources" / "nested"
    nested.mkdir()
    (nested / "broken.yml").write_text("resources:\n  jobs:\n    broken:\n      taks: []\n")
    edit_yaml(project_copy, "databricks.yml", lambda d: d.update(include=["resources/**.yml"]))
    assert problems(project_copy, targets=["dev"]) == []


def test_unknown_references(project_copy):
    def change(d):
        job(d)["description"] = "${var.nope}"
        job(d)["tasks"][0]["notebook_task"]["base_parameters"] = {"x": "${resources.jobs.missing.id}"}

    edit_yaml(project_copy, JOB_FILE, change)
    found = problems(project_copy, targets=["dev"])
    assert any("${var.nope}: variable 'nope' is not declared" in line for line in found), found
    assert any("${resources.jobs.missing.id}: no such resource" in line for line in found), found


def test_unknown_target_key_and_unknown_target(project_copy):
    edit_yaml(project_copy, "databricks.yml", lambda d: d["targets"]["dev"].update(worksapce={}))
    assert "databricks.yml: targets.dev.worksapce: unknown target key" in problems(project_copy, targets=["dev"])
    assert any("targets.qa: no such target" in line for line in problems(project_copy, targets=["qa"]))


@pytest.mark.parametrize("target", ["staging", "prod"])
def test_staging_and_prod_run_as_the_service_principal_with_a_fixed_root(target):
    config = yaml.safe_load((PROJECT / "databricks.yml").read_text())
    merged = bundle_check.merge_target(config, target, [])
    assert merged["mode"] == "production"
    assert merged["run_as"] == {"service_principal_name": "${var.service_principal}"}
    assert merged["workspace"]["root_path"].startswith("/Workspace/Shared/.bundle/")


def test_cli_exit_code_and_output(capsys, project_copy):
    assert bundle_check.main(PROJECT, None, []) == 0
    edit_yaml(project_copy, "databricks.yml", lambda d: d["targets"]["dev"].update(mode="develop"))
    assert bundle_check.main(project_copy, ["dev"], []) == 1
    out, err = capsys.readouterr()
    assert "targets.dev.mode" in out and "not checked offline:" in err and "1 problem(s)" in err


def test_target_merge_combines_keyed_lists_and_replaces_scalars():
    base = {"tasks": [{"task_key": "a", "timeout_seconds": 10, "max_retries": 1}, {"task_key": "b"}]}
    override = {"tasks": [{"task_key": "a", "timeout_seconds": 99}, {"task_key": "c"}]}
    merged = bundle_check.deep_merge(base, override)
    assert merged == {"tasks": [{"task_key": "a", "timeout_seconds": 99, "max_retries": 1}, {"task_key": "b"},
                                {"task_key": "c"}]}
    assert base["tasks"][0]["timeout_seconds"] == 10


@pytest.mark.parametrize("target", ["dev", "test", "staging", "prod"])
def test_every_job_and_job_cluster_carries_the_cost_tags_after_target_merging(target):
    merged = bundle_check.resolved(PROJECT, target)
    jobs = merged["resources"]["jobs"]
    assert jobs, "the bundle defines jobs"
    for key, spec in jobs.items():
        tags = bundle_check.job_tags(merged, spec)
        assert {t: tags.get(t) for t in bundle_check.REQUIRED_TAGS} == {
            "project": "{{ cookiecutter.project_slug }}", "cost_center": "{{ cookiecutter.cost_center }}",
            "env": target, "owner": "{{ cookiecutter.owner_email }}"}, key
        assert spec["timeout_seconds"] > 0 and spec["max_concurrent_runs"] >= 1, key
        for cluster in spec.get("job_clusters") or []:
            custom = cluster["new_cluster"]["custom_tags"]
            assert {t: custom[t] for t in bundle_check.REQUIRED_TAGS} == {t: tags[t] for t in bundle_check.REQUIRED_TAGS}
        assert not any("existing_cluster_id" in task for task in spec["tasks"]), "no all-purpose clusters"
    if merged.get("mode") == "production":
        assert merged["run_as"]["service_principal_name"]


def test_a_job_without_cost_tags_or_bounds_is_reported(project_copy):
    def strip(data):
        job(data).pop("timeout_seconds")
        job(data)["tags"] = {"owner": ""}

    edit_yaml(project_copy, JOB_FILE, strip)
    edit_yaml(project_copy, "databricks.yml", lambda d: d["targets"]["prod"]["presets"]["tags"].pop("cost_center"))
    found = problems(project_copy, targets=["prod"])
    assert any("resources.jobs.bootstrap.tags: missing cost tag(s) cost_center, owner in target prod" in p
               for p in found), found
    assert any("resources.jobs.bootstrap.timeout_seconds: every job needs one" in p for p in found), found


def test_the_cost_query_groups_by_every_cost_tag():
    sql = (PROJECT / "sql" / "cost_attribution.sql").read_text()
    for tag in bundle_check.REQUIRED_TAGS:
        assert f"u.custom_tags['{tag}'] AS {tag}" in sql
    assert "FROM system.billing.usage" in sql and "GROUP BY ALL" in sql
