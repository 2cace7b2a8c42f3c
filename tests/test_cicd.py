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
        assert set(stages) == {"ci", "staging", "prod"}
        for stage in stages.values():
            for job in stage["jobs"]:
                assert job.get("timeoutInMinutes"), f"{stage['stage']}: a job has no timeout"
        for name in ("staging", "prod"):
            (deploy,) = stages[name]["jobs"]
            assert deploy["environment"] == f"{slug}-{name}"
            assert stages[name]["variables"] == [{"group": f"{slug}-{name}"}]
        azure_cli = re.findall(r"task: AzureCLI@2", text)
        assert len(azure_cli) == 4 and text.count("DATABRICKS_AUTH_TYPE: azure-cli") == 4
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
