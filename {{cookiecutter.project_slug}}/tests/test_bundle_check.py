"""bundle-check: the shipped bundle passes for every target, and each kind of mistake is caught
with a line that names the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from {{ cookiecutter.package_name }}.tools import bundle_check

# Reads the bundle (databricks.yml, resources/, notebooks/): runs for every rendered option set.
pytestmark = pytest.mark.bundle

PROJECT = Path(__file__).resolve().parents[1]

JOB_FILE = "resources/bootstrap_job.yml"
COST_TAGS = ["project", "cost_center", "env", "owner"]


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


TARGETS = list(yaml.safe_load((PROJECT / "databricks.yml").read_text())["targets"])


def test_shipped_bundle_passes_for_every_target():
    found, checked = bundle_check.check(PROJECT)
    assert found == []
    assert checked == TARGETS and {"dev", "test", "staging", "prod"} <= set(TARGETS)


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


def test_cost_tags_are_declared_once_in_the_root_presets():
    text = (PROJECT / "databricks.yml").read_text()
    assert text.count("cost_center") == 1, "the cost tags are declared once, in the root presets.tags"
    config = yaml.safe_load(text)
    assert bundle_check.required_tags(config) == COST_TAGS
    assert config["presets"]["tags"]["env"] == "${bundle.target}"
    assert not any("tags" in (spec.get("presets") or {}) for spec in config["targets"].values())


@pytest.mark.parametrize("target", TARGETS)
def test_every_job_and_job_cluster_carries_the_cost_tags_after_target_merging(target):
    merged = bundle_check.resolved(PROJECT, target)
    jobs = merged["resources"]["jobs"]
    assert jobs, "the bundle defines jobs"
    expected = {"project": "{{ cookiecutter.project_slug }}", "cost_center": "{{ cookiecutter.cost_center }}",
                "env": target, "owner": "{{ cookiecutter.owner_email }}"}
    for key, spec in jobs.items():
        tags = bundle_check.job_tags(spec)
        assert {t: tags.get(t) for t in COST_TAGS} == expected, key
        assert spec["timeout_seconds"] > 0 and spec["max_concurrent_runs"] >= 1, key
        for cluster in spec.get("job_clusters") or []:
            assert "custom_tags" not in cluster["new_cluster"], "job clusters get the job's tags; none of their own"
            effective = bundle_check.cluster_tags(spec, cluster)
            assert {t: effective.get(t) for t in COST_TAGS} == expected, key
        assert not any("existing_cluster_id" in task for task in spec["tasks"]), "no all-purpose clusters"
    experiment_tags = {t["key"]: t["value"] for t in merged["resources"]["experiments"]["training"]["tags"]}
    assert {t: experiment_tags.get(t) for t in COST_TAGS} == expected
    if merged.get("mode") == "production":
        assert merged["run_as"]["service_principal_name"]


def test_presets_are_merged_and_applied_as_the_databricks_cli_does():
    """The rules of databricks/cli: bundle/config/root.go (MergeTargetOverrides merges the target's
    presets into the root's, key by key), libs/dyn/merge/merge.go, and
    bundle/config/mutator/resourcemutator/apply_target_mode.go + apply_presets.go
    (https://github.com/databricks/cli/blob/main/bundle/config/mutator/resourcemutator/apply_presets.go):
    development mode adds a `dev` tag; a job keeps its own non-empty tags and gets the others; an
    experiment or model keeps a tag it has; clusters get custom_tags; job clusters, registered models
    and schemas get nothing."""
    config = {
        "bundle": {"name": "b"},
        "variables": {"owner": {"default": "me@example.com"}},
        "presets": {"tags": {"team": "ml", "cost_center": "CC-1", "env": "${bundle.target}", "owner": "${var.owner}"}},
        "resources": {
            "jobs": {"j": {"tags": {"team": "", "component": "x", "owner": "job-owner"},
                           "job_clusters": [{"job_cluster_key": "main", "new_cluster": {"num_workers": 1}}]}},
            "experiments": {"e": {"name": "/Shared/e", "tags": [{"key": "team", "value": "research"}]}},
            "models": {"m": {"name": "m"}},
            "registered_models": {"r": {"name": "r"}},
            "schemas": {"s": {"name": "s"}},
            "clusters": {"c": {"custom_tags": {"cost_center": "CC-9"}}},
        },
        "targets": {
            "dev": {"mode": "development", "presets": {"tags": {"cost_center": "CC-2"}}},
            "prod": {"mode": "production"},
        },
    }
    problems: list[str] = []
    merged = bundle_check.merge_target(config, "dev", problems)
    variables = bundle_check.resolve_variables(config, "dev", merged.pop("_target_variables"), {}, problems)
    bundle_check.interpolate(merged, variables, "dev", problems)
    bundle_check.apply_presets(merged)
    assert problems == []
    resources = merged["resources"]
    assert resources["jobs"]["j"]["tags"] == {"team": "ml", "component": "x", "owner": "job-owner",
                                              "cost_center": "CC-2", "env": "dev", "dev": "offline_user"}
    assert resources["jobs"]["j"]["job_clusters"][0]["new_cluster"] == {"num_workers": 1}
    assert resources["experiments"]["e"]["tags"] == [
        {"key": "team", "value": "research"}, {"key": "cost_center", "value": "CC-2"},
        {"key": "dev", "value": "offline_user"}, {"key": "env", "value": "dev"},
        {"key": "owner", "value": "me@example.com"}]
    assert {t["key"] for t in resources["models"]["m"]["tags"]} == {"team", "cost_center", "env", "owner", "dev"}
    assert "tags" not in resources["registered_models"]["r"] and "tags" not in resources["schemas"]["s"]
    assert resources["clusters"]["c"]["custom_tags"] == {"cost_center": "CC-9", "team": "ml", "env": "dev",
                                                         "owner": "me@example.com", "dev": "offline_user"}
    assert bundle_check.required_tags(config) == ["team", "cost_center", "env", "owner"]

    prod = bundle_check.merge_target(config, "prod", problems)
    prod.pop("_target_variables")
    bundle_check.interpolate(prod, {"owner": "me@example.com"}, "prod", problems)
    bundle_check.apply_presets(prod)
    assert prod["presets"]["tags"] == {"team": "ml", "cost_center": "CC-1", "env": "prod", "owner": "me@example.com"}


def test_target_merge_concatenates_lists_and_keeps_values_a_target_leaves_empty():
    base = {"email_notifications": {"on_failure": ["a@example.com"]}, "tags": {"x": "1"}}
    override = {"email_notifications": {"on_failure": ["b@example.com"]}, "tags": None}
    assert bundle_check.deep_merge(base, override) == {
        "email_notifications": {"on_failure": ["a@example.com", "b@example.com"]}, "tags": {"x": "1"}}


def test_a_job_without_cost_tags_or_bounds_is_reported(project_copy):
    def strip(data):
        job(data).pop("timeout_seconds")
        job(data)["tags"] = {"owner": ""}  # an empty tag of the job is filled from presets.tags

    edit_yaml(project_copy, JOB_FILE, strip)
    edit_yaml(project_copy, "databricks.yml",
              lambda d: d["targets"]["prod"].setdefault("presets", {}).update(tags={"cost_center": ""}))
    found = problems(project_copy, targets=["prod"])
    assert any("resources.jobs.bootstrap.tags: missing cost tag(s) cost_center in target prod" in p
               for p in found), found
    assert any("resources.jobs.bootstrap.timeout_seconds: every job needs one" in p for p in found), found
    assert not any("owner" in p for p in found), found


def test_the_cost_tags_must_be_declared_in_the_root_presets(project_copy):
    edit_yaml(project_copy, "databricks.yml", lambda d: d.pop("presets"))
    found = problems(project_copy, targets=["prod"])
    assert any(line.startswith("databricks.yml: presets.tags: declare the cost tags here") for line in found), found


def test_a_job_cluster_tag_that_contradicts_the_job_is_reported(project_copy):
    def add_cluster(data):
        job(data)["job_clusters"] = [{"job_cluster_key": "extra", "new_cluster": {
            "autoscale": {"min_workers": 1, "max_workers": 2}, "policy_id": "p",
            "custom_tags": {"cost_center": "CC-OTHER"}}}]

    edit_yaml(project_copy, JOB_FILE, add_cluster)
    found = problems(project_copy, targets=["test"])
    assert any("resources.jobs.bootstrap.job_clusters[0].new_cluster.custom_tags: cost_center differ(s) from the "
               "job's tag in target test" in line for line in found), found


def test_the_cost_query_groups_by_every_cost_tag():
    sql = (PROJECT / "sql" / "cost_attribution.sql").read_text()
    for tag in bundle_check.required_tags(yaml.safe_load((PROJECT / "databricks.yml").read_text())):
        assert f"u.custom_tags['{tag}'] AS {tag}" in sql
    assert "FROM system.billing.usage" in sql and "GROUP BY ALL" in sql


# --- Least privilege in production targets -------------------------------------------------------
SCHEMA_FILE = "resources/schema.yml"
MODEL_FILE = "resources/ml_artifacts.yml"


def schema_grants(data: dict) -> list:
    return data["resources"]["schemas"]["project_schema"]["grants"]


def model_grants(data: dict) -> list:
    return data["resources"]["registered_models"]["model"]["grants"]


def test_everyone_with_write_rights_is_reported_in_production_only(project_copy):
    edit_yaml(project_copy, SCHEMA_FILE,
              lambda d: schema_grants(d).append({"principal": "account users", "privileges": ["ALL_PRIVILEGES"]}))
    edit_yaml(project_copy, "databricks.yml",
              lambda d: d["permissions"].append({"level": "CAN_MANAGE", "group_name": "users"}))
    found = problems(project_copy)
    grant = [line for line in found if "'account users'" in line]
    assert [line.split(": target ")[1].split(":")[0] for line in grant] == ["staging", "prod"], found
    assert grant[-1].startswith(f"{SCHEMA_FILE}: resources.schemas.project_schema.grants[4]: target prod: ")
    assert "has ALL_PRIVILEGES, a write or manage right" in grant[-1] and "Fix: give it only" in grant[-1]
    level = [line for line in found if "'users'" in line]
    assert len(level) == 2 and level[-1].startswith("databricks.yml: permissions[4]: target prod: 'users' "
                                                    "(everyone) has CAN_MANAGE"), found
    assert not [line for line in found if "target dev" in line or "target test" in line]


@pytest.mark.parametrize("right", ["CAN_MANAGE_RUN", "CAN_EDIT", "IS_OWNER"])
def test_everyone_with_a_manage_level_on_a_job_is_reported(project_copy, right):
    edit_yaml(project_copy, JOB_FILE,
              lambda d: job(d).setdefault("permissions", []).append({"level": right, "group_name": "Account Users"}))
    found = problems(project_copy, targets=["prod"])
    assert [line for line in found if f"has {right}" in line] == [
        f"{JOB_FILE}: resources.jobs.bootstrap.permissions[0]: target prod: 'Account Users' (everyone) has "
        f"{right}, a write or manage right, in a production target. Fix: give it only CAN_READ, CAN_VIEW and "
        "grant writes to a named engineering group"]


def test_readers_get_no_modify(project_copy):
    edit_yaml(project_copy, SCHEMA_FILE, lambda d: schema_grants(d)[0]["privileges"].append("MODIFY"))
    found = problems(project_copy, targets=["prod"])
    assert len(found) == 1 and "(a reader group) has MODIFY" in found[0], found
    assert found[0].startswith(f"{SCHEMA_FILE}: resources.schemas.project_schema.grants[0]: target prod: ")


def test_read_rights_for_everyone_are_allowed(project_copy):
    edit_yaml(project_copy, SCHEMA_FILE,
              lambda d: schema_grants(d).append({"principal": "account users", "privileges": ["USE_SCHEMA", "SELECT"]}))
    assert problems(project_copy, targets=["prod"]) == []


def test_only_mlops_may_tag_or_alias_the_prod_model(project_copy):
    shipped = bundle_check.resolved(PROJECT, "prod")["resources"]["registered_models"]["model"]["grants"]
    holders = {g["principal"] for g in shipped if set(g["privileges"]) & bundle_check.MODEL_CONTROL_PRIVILEGES}
    assert holders == {"{{ cookiecutter.mlops_group }}"}
    edit_yaml(project_copy, MODEL_FILE, lambda d: model_grants(d)[2]["privileges"].append("APPLY_TAG"))
    found = problems(project_copy, targets=["prod"])
    assert len(found) == 1 and "'{{ cookiecutter.ml_engineers_group }}' has APPLY_TAG on the registered model" in found[0]
    assert found[0].startswith(f"{MODEL_FILE}: resources.registered_models.model.grants[2]: target prod: ")
    assert problems(project_copy, targets=["dev"]) == []


# --- One writer at a time ------------------------------------------------------------------------
def test_every_job_runs_once_at_a_time_and_queues():
    for target in TARGETS:
        for key, spec in bundle_check.resolved(PROJECT, target)["resources"]["jobs"].items():
            assert spec["max_concurrent_runs"] == 1 and spec["queue"] == {"enabled": True}, (target, key)


def test_concurrent_runs_or_no_queue_are_reported(project_copy):
    edit_yaml(project_copy, JOB_FILE, lambda d: (job(d).update(max_concurrent_runs=2), job(d).pop("queue")))
    found = problems(project_copy, targets=["dev"])
    assert f"{JOB_FILE}: resources.jobs.bootstrap.max_concurrent_runs: 2 in target dev; set it to 1 (one writer " \
           "at a time: overlapping runs duplicate appended rows)" in found
    assert any(line.startswith(f"{JOB_FILE}: resources.jobs.bootstrap.queue.enabled: set it to true") for line in found)
    edit_yaml(project_copy, "databricks.yml", lambda d: d["presets"].update(jobs_max_concurrent_runs=4))
    assert any("presets.jobs_max_concurrent_runs: 4 in target dev" in line
               for line in problems(project_copy, targets=["dev"]))


def test_a_stage_notebook_in_two_jobs_is_reported(project_copy):
    """Retraining starts training through run_job_task; running the train notebook itself would let
    a scheduled training and a drift-triggered one write the same tables at once."""
    shipped = bundle_check.resolved(PROJECT, "prod")["resources"]["jobs"]["retraining"]["tasks"]
    assert next(t for t in shipped if "run_job_task" in t)["run_job_task"]["job_id"] == "${resources.jobs.training.id}"
    edit_yaml(project_copy, "resources/retraining_job.yml", lambda d: d["resources"]["jobs"]["retraining"]["tasks"][2]
              .update(run_job_task=None, notebook_task={"notebook_path": "../notebooks/training/train.py"}))
    found = [line for line in problems(project_copy, targets=["prod"]) if "also runs in job" in line]
    assert len(found) == 1 and "notebook_task: '../notebooks/training/train.py' also runs in job" in found[0], found
    assert "resources.jobs.training" in found[0] and "resources.jobs.retraining" in found[0]
