"""CI/CD files of every combination: schema-valid, only for the chosen platforms, hardened (actions
pinned to commit SHAs, least permissions, timeouts, concurrency, no stored-token auth), and every
GitHub/Azure ``${{ }}`` expression and Databricks ``{{ }}`` dynamic value survives rendering."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cookiecutter.environment import StrictEnvironment
from matrix import COMBINATIONS, combo_id

TEMPLATE = Path(__file__).resolve().parents[1] / "{{cookiecutter.project_slug}}"
CONTEXTS = {combo_id(c): c for c in COMBINATIONS}
IDS = list(CONTEXTS)
SCHEMAS = {".github/workflows": ["vendor.github-workflows"],
           ".azure/pipelines": ["vendor.azure-pipelines", "--regex-variant", "python"]}
RAW = re.compile(r"\{% raw %\}(.*?)\{% endraw %\}", re.S)
STORED_TOKEN = re.compile(r"DATABRICKS_TOKEN|DATABRICKS_CLIENT_SECRET|secrets\.", re.I)


def ci_files(project: Path, folder: str) -> list[Path]:
    return sorted((project / folder).glob("*.yml"))


def platforms(cid: str) -> dict[str, bool]:
    choice = CONTEXTS[cid]["cicd_platform"]
    return {".github/workflows": choice in ("github_actions", "both"),
            ".azure/pipelines": choice in ("azure_devops", "both")}


@pytest.mark.parametrize("cid", IDS)
def test_only_the_chosen_platforms_have_files(rendered, cid):
    for folder, wanted in platforms(cid).items():
        assert bool(ci_files(rendered[cid], folder)) == wanted, folder
        assert (rendered[cid] / folder.split("/")[0]).exists() == wanted, folder


@pytest.mark.parametrize("cid", IDS)
def test_ci_files_validate_against_their_schemas(rendered, cid):
    for folder, wanted in platforms(cid).items():
        if not wanted:
            continue
        files = [str(p) for p in ci_files(rendered[cid], folder)]
        result = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", *SCHEMAS[folder],
                                 *files], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


@pytest.mark.parametrize("cid", [c for c in IDS if platforms(c)[".github/workflows"]])
def test_github_workflows_are_hardened_and_keyless(rendered, cid):
    for path in ci_files(rendered[cid], ".github/workflows"):
        text = path.read_text()
        workflow = yaml.safe_load(text)
        assert workflow["permissions"] == {"contents": "read"}, path.name
        assert "concurrency" in workflow, path.name
        assert not STORED_TOKEN.search(text), f"{path.name} uses stored-token auth"
        for uses in re.findall(r"uses:\s*(\S+)", text):
            assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", uses), f"{path.name}: {uses} is not pinned to a SHA"
        for name, job in workflow["jobs"].items():
            assert job.get("timeout-minutes"), f"{path.name}: job {name} has no timeout"
            if "databricks bundle" in json.dumps(job):
                assert job["env"]["DATABRICKS_AUTH_TYPE"] == "github-oidc", f"{path.name}: {name}"
                assert job["permissions"] == {"contents": "read", "id-token": "write"}, f"{path.name}: {name}"
            else:
                assert "permissions" not in job, f"{path.name}: {name} needs no extra permission"


@pytest.mark.parametrize("cid", [c for c in IDS if platforms(c)[".azure/pipelines"]])
def test_azure_pipelines_use_federated_service_connections_and_gated_environments(rendered, cid):
    slug = CONTEXTS[cid].get("project_slug", "customer-churn")
    for path in ci_files(rendered[cid], ".azure/pipelines"):
        text = path.read_text()
        pipeline = yaml.safe_load(text)
        assert not STORED_TOKEN.search(text), f"{path.name} uses stored-token auth"
        stages = {s["stage"]: s for s in pipeline["stages"]}
        assert set(stages) == {"ci", "integration", "staging", "prod"}
        for stage in stages.values():
            for job in stage["jobs"]:
                assert job.get("timeoutInMinutes"), f"{stage['stage']}: a job has no timeout"
        for name in ("staging", "prod"):
            (deploy,) = stages[name]["jobs"]
            assert deploy["environment"] == f"{slug}-{name}"
            assert stages[name]["variables"] == [{"group": f"{slug}-{name}"}]
        azure_cli = re.findall(r"task: AzureCLI@2", text)
        assert len(azure_cli) == 3 and text.count("DATABRICKS_AUTH_TYPE: azure-cli") == 3
        assert "PublishTestResults@2" in text and "--junitxml" in text


@pytest.mark.parametrize("cid", IDS)
def test_expressions_and_dynamic_values_survive_rendering_exactly(rendered, cid):
    """Every ``{% raw %}`` block of the template appears verbatim in the rendered file."""
    checked = 0
    for source in TEMPLATE.rglob("*"):
        if not source.is_file() or source.suffix not in (".yml", ".yaml", ".py", ".md"):
            continue
        blocks = RAW.findall(source.read_text(encoding="utf-8"))
        target = rendered[cid] / source.relative_to(TEMPLATE)
        if not blocks or not target.exists():
            continue
        text = target.read_text(encoding="utf-8")
        for block in blocks:
            assert block in text, f"{target.relative_to(rendered[cid])}: {block!r} did not survive rendering"
            checked += 1
    assert checked >= 3
    resources = "".join(p.read_text() for p in (rendered[cid] / "resources").glob("*.yml"))
    assert '"{{job.run_id}}"' in resources and '"{{tasks.check.values.retrain}}"' in resources


# --- Trust boundaries: which job, on which event, can reach which identity -------------------------
# Events whose runs execute code a pull request's author controls.
UNTRUSTED_EVENTS = {"pull_request", "pull_request_target", "issue_comment", "workflow_run"}
PRIVILEGED = ("staging", "prod")
# (workflow file, job) -> (trigger events, can get an OIDC token, GitHub environment): the table in
# docs/deployment.md.
GITHUB_BOUNDARIES = {
    ("ci.yml", "test"): ({"pull_request"}, False, None),
    ("ci.yml", "integration"): ({"pull_request"}, True, "test"),
    ("deploy-staging.yml", "staging"): ({"push"}, True, "staging"),
    ("deploy-prod.yml", "prod"): ({"push"}, True, "prod"),
}
PR_GUARD = "ne(variables['Build.Reason'], 'PullRequest')"


def workflow_events(workflow: dict) -> set[str]:
    on = workflow.get("on", workflow.get(True))  # PyYAML reads the bare key `on` as True
    return {on} if isinstance(on, str) else set(on)


def github_boundaries(project: Path) -> dict[tuple[str, str], tuple[set[str], bool, str | None]]:
    """Per job: the events that start it, whether it may request an OIDC token, its environment."""
    found = {}
    for path in ci_files(project, ".github/workflows"):
        workflow = yaml.safe_load(path.read_text())
        events = workflow_events(workflow)
        top_oidc = (workflow.get("permissions") or {}).get("id-token") == "write"
        for name, job in workflow["jobs"].items():
            permissions = job.get("permissions", workflow.get("permissions")) or {}
            oidc = top_oidc or (isinstance(permissions, dict) and permissions.get("id-token") == "write") \
                or permissions == "write-all"
            found[(path.name, name)] = (events, oidc, job.get("environment"))
    return found


def github_pr_violations(project: Path) -> list[str]:
    """Jobs that pull-request code starts and that can reach a staging or prod identity."""
    violations = []
    for (file, name), (events, oidc, environment) in github_boundaries(project).items():
        if not events & UNTRUSTED_EVENTS:
            continue
        env_name = str(environment or "")
        if any(p in env_name for p in PRIVILEGED):
            violations.append(f"{file}: job {name} runs on {sorted(events)} in environment {env_name!r}")
        if oidc and environment != "test":
            violations.append(f"{file}: job {name} runs on {sorted(events)} with id-token: write outside "
                              "the test environment")
    return violations


def azure_stage_identities(pipeline: dict) -> dict[str, tuple[set[str], set[str], str]]:
    """Per stage: the service connections its tasks use, its environments, its condition."""
    found = {}
    for stage in pipeline["stages"]:
        text = json.dumps(stage)
        connections = set(re.findall(r'"azureSubscription": "([^"]+)"', text))
        environments = {job["environment"] for job in stage["jobs"] if job.get("environment")}
        found[stage["stage"]] = (connections, environments, stage.get("condition", "succeeded()"))
    return found


def azure_pr_violations(project: Path, slug: str) -> list[str]:
    """Stages that a pull-request build can run and that use a staging or prod identity."""
    violations = []
    for path in ci_files(project, ".azure/pipelines"):
        pipeline = yaml.safe_load(path.read_text())
        for stage, (connections, environments, condition) in azure_stage_identities(pipeline).items():
            privileged = {c for c in connections | environments if c in {f"{slug}-{p}" for p in PRIVILEGED}}
            if privileged and PR_GUARD not in condition:
                violations.append(f"{path.name}: stage {stage} can run on a pull request and uses {sorted(privileged)}")
    return violations


@pytest.mark.parametrize("cid", [c for c in IDS if platforms(c)[".github/workflows"]])
def test_github_jobs_reach_only_their_identity(rendered, cid):
    assert github_boundaries(rendered[cid]) == GITHUB_BOUNDARIES
    assert github_pr_violations(rendered[cid]) == []


@pytest.mark.parametrize("cid", [c for c in IDS if platforms(c)[".github/workflows"]])
def test_github_integration_on_pull_requests_is_opt_in_and_same_repository(rendered, cid):
    job = yaml.safe_load((rendered[cid] / ".github/workflows/ci.yml").read_text())["jobs"]["integration"]
    assert "'run-integration'" in job["if"] and "head.repo.full_name == github.repository" in job["if"]
    assert "labeled" in workflow_events_types(rendered[cid])


def workflow_events_types(project: Path) -> list[str]:
    workflow = yaml.safe_load((project / ".github/workflows/ci.yml").read_text())
    return workflow.get("on", workflow.get(True))["pull_request"]["types"]


@pytest.mark.parametrize("cid", [c for c in IDS if platforms(c)[".azure/pipelines"]])
def test_azure_stages_reach_only_their_identity(rendered, cid):
    slug = CONTEXTS[cid].get("project_slug", "customer-churn")
    pipeline = yaml.safe_load((rendered[cid] / ".azure/pipelines/ci-cd.yml").read_text())
    stages = azure_stage_identities(pipeline)
    assert stages["ci"][:2] == (set(), set())
    assert stages["integration"][:2] == ({f"{slug}-test"}, {f"{slug}-test"})
    assert stages["staging"][:2] == ({f"{slug}-staging"}, {f"{slug}-staging"})
    assert stages["prod"][:2] == ({f"{slug}-prod"}, {f"{slug}-prod"})
    assert "parameters.runIntegrationTests }}', 'yes')" in stages["integration"][2]
    assert pipeline["parameters"][0]["default"] == "no"
    assert azure_pr_violations(rendered[cid], slug) == []


@pytest.mark.parametrize("cid", [c for c in IDS if platforms(c)[".azure/pipelines"]])
def test_azure_installs_the_cli_pinned_and_checksum_verified(rendered, cid):
    text = (rendered[cid] / ".azure/pipelines/ci-cd.yml").read_text()
    pipeline = yaml.safe_load(text)
    variables = {v["name"]: v["value"] for v in pipeline["variables"]}
    assert re.fullmatch(r"\d+\.\d+\.\d+", variables["databricksCliVersion"])
    assert re.fullmatch(r"[0-9a-f]{64}", variables["databricksCliSha256"])
    assert not re.search(r"\| *(sudo +)?(ba)?sh\b", text) and "install.sh" not in text
    assert text.count("sha256sum --check --strict") == text.count("databricks_cli_$(databricksCliVersion)") == 3


def test_the_boundary_checks_fail_on_a_mutated_workflow(rendered, tmp_path):
    """The checks above can fail: a pull-request job given the prod environment, and an Azure stage
    that uses the prod connection without the pull-request guard, are both reported."""
    import shutil

    cid = next(c for c in IDS if CONTEXTS[c]["cicd_platform"] == "both")
    project = tmp_path / "p"
    shutil.copytree(rendered[cid], project)
    ci = project / ".github/workflows/ci.yml"
    ci.write_text(ci.read_text().replace("environment: test", "environment: prod"))
    assert any("environment 'prod'" in v for v in github_pr_violations(project))
    ci.write_text(ci.read_text().replace("environment: prod", "environment: test")
                  .replace("  test:\n    name: lint, tests, bundle-check\n",
                           "  test:\n    name: lint, tests, bundle-check\n    permissions:\n      id-token: write\n"))
    assert any("job test" in v and "id-token" in v for v in github_pr_violations(project))
    slug = CONTEXTS[cid].get("project_slug", "customer-churn")
    pipeline = project / ".azure/pipelines/ci-cd.yml"
    pipeline.write_text(pipeline.read_text().replace(f"{PR_GUARD}, or(", "or("))
    assert azure_pr_violations(project, slug) == [
        f"ci-cd.yml: stage prod can run on a pull request and uses ['{slug}-prod']"]


HOSTILE_BRANCHES = ["x'||'1'=='1", "a' }} ${{ true", "rel # comment", "feat: x", "x\" || true || \"y", "main, prod"]


def render_ci_template(rel: str, **answers: str) -> str:
    """One CI file rendered with cookiecutter's Jinja environment and the given answers, without the
    hooks' answer validation: the file must be safe on its own."""
    context = {"default_branch": "main", "release_branch": "release", "project_slug": "customer-churn",
               "python_version": "3.11", **answers}
    env = StrictEnvironment(context={"cookiecutter": context})
    return env.from_string((TEMPLATE / rel).read_text()).render(cookiecutter=context)


@pytest.mark.parametrize("branch", HOSTILE_BRANCHES)
def test_branch_names_reach_ci_only_as_quoted_literals(branch):
    staging = yaml.safe_load(render_ci_template(".github/workflows/deploy-staging.yml", default_branch=branch))
    prod = yaml.safe_load(render_ci_template(".github/workflows/deploy-prod.yml", release_branch=branch))
    ci = yaml.safe_load(render_ci_template(".github/workflows/ci.yml", default_branch=branch))
    assert workflow_events(staging) == workflow_events(prod) == {"push"}
    assert (staging.get("on") or staging[True])["push"] == {"branches": [branch]}
    assert (prod.get("on") or prod[True])["push"] == {"branches": [branch], "tags": ["v*"]}
    assert (ci.get("on") or ci[True])["pull_request"]["branches"] == [branch]
    for workflow in (staging, prod, ci):
        for job in workflow["jobs"].values():
            assert branch not in json.dumps(job.get("if", "")), "a branch name is pasted into an expression"
    azure = yaml.safe_load(render_ci_template(".azure/pipelines/ci-cd.yml", default_branch=branch,
                                              release_branch=branch + "-r"))
    assert azure["trigger"]["branches"]["include"] == [branch, branch + "-r"]
    assert azure["pr"]["branches"]["include"] == [branch]
    variables = {v["name"]: v["value"] for v in azure["variables"]}
    assert variables["stagingSourceBranch"] == f"refs/heads/{branch}"
    assert variables["prodSourceBranch"] == f"refs/heads/{branch}-r"
    for stage in azure["stages"]:
        assert branch not in stage.get("condition", ""), f"stage {stage['stage']}: branch pasted into the condition"
