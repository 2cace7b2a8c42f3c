"""Hostile answers for every free-text option: each is either refused by the pre_gen hook with an
error line naming the option, or the project renders, every YAML/TOML file parses and the answer
appears unchanged where it is used (no YAML comment, list, mapping or type coercion changes it).

Per hostile value, all free-text options get it at once; options the hook names are dropped and
the render is retried, so each value costs two or three renders."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from cookiecutter.exceptions import FailedHookException
from matrix import OPTIONS
from render import TemplateSyntaxInAnswerError, render

TEMPLATE = Path(__file__).resolve().parents[1]
FREE_TEXT = [k for k, v in OPTIONS.items() if not k.startswith("_") and isinstance(v, str)]
HOSTILE = [
    "account users # ml-readers", "[admins, users]", "x'||'1'=='1", "a: b", '"quoted"', "trailing ",
    "Données équipe", "line\nbreak", "null", "yes", "007", "{a: 1}", "&anchor *alias", "- item",
    "${var.catalog}", "release+1", "ml\u202eadmins", "team-ops",
]
SAFE = {"project_slug": "hostile-case", "package_name": "hostile_case", "schema_name": "hostile_case",
        "owner_email": "owner@example.com", "staging_workspace_host": "https://adb-3.3.azuredatabricks.net"}
GROUPS = ("readers_group", "data_scientists_group", "ml_engineers_group", "mlops_group")


def _workflow(project: Path, name: str) -> dict[str, Any]:
    data = yaml.safe_load((project / ".github" / "workflows" / name).read_text(encoding="utf-8"))
    return data.get("on", data.get(True))


def used_values(project: Path, option: str) -> list[Any]:
    """The parsed values at the places where ``option`` is used."""
    bundle = yaml.safe_load((project / "databricks.yml").read_text(encoding="utf-8"))
    pyproject = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    azure = yaml.safe_load((project / ".azure" / "pipelines" / "ci-cd.yml").read_text(encoding="utf-8"))
    targets = bundle["targets"]
    if option in GROUPS:
        return [bundle["variables"][option]["default"]]
    return {
        "project_name": [(project / "README.md").read_text(encoding="utf-8").splitlines()[0][2:]],
        "project_slug": [bundle["bundle"]["name"], pyproject["name"]],
        "description": [pyproject["description"]],
        "author_name": [pyproject["authors"][0]["name"]],
        "author_email": [pyproject["authors"][0]["email"]],
        "default_branch": [_workflow(project, "ci.yml")["pull_request"]["branches"][0],
                           _workflow(project, "deploy-staging.yml")["push"]["branches"][0],
                           azure["trigger"]["branches"]["include"][0], azure["pr"]["branches"]["include"][0]],
        "release_branch": [_workflow(project, "deploy-prod.yml")["push"]["branches"][0],
                           azure["trigger"]["branches"]["include"][1]],
        "dev_workspace_host": [targets["dev"]["workspace"]["host"]],
        "staging_workspace_host": [targets["staging"]["workspace"]["host"]],
        "prod_workspace_host": [targets["prod"]["workspace"]["host"]],
        "dev_catalog": [bundle["variables"]["catalog"]["default"]],
        "staging_catalog": [targets["staging"]["variables"]["catalog"]],
        "prod_catalog": [targets["prod"]["variables"]["catalog"]],
        "schema_name": [bundle["variables"]["schema"]["default"]],
        "staging_service_principal": [targets["staging"]["variables"]["service_principal"]],
        "prod_service_principal": [targets["prod"]["variables"]["service_principal"]],
        "cost_center": [bundle["presets"]["tags"]["cost_center"]],
        "owner_email": [bundle["variables"]["owner"]["default"]],
    }[option]


def test_every_free_text_option_has_a_known_location():
    assert len(FREE_TEXT) >= 20
    assert set(FREE_TEXT) == {*GROUPS, "project_name", "project_slug", "package_name", "description", "author_name",
                              "author_email", "default_branch", "release_branch", "dev_workspace_host",
                              "staging_workspace_host", "prod_workspace_host", "dev_catalog", "staging_catalog",
                              "prod_catalog", "schema_name", "staging_service_principal", "prod_service_principal",
                              "cost_center", "owner_email"}


@pytest.mark.parametrize("value", HOSTILE, ids=[repr(v) for v in HOSTILE])
def test_hostile_answer_is_refused_by_name_or_kept_whole(tmp_path, capfd, value):
    pending = list(FREE_TEXT)
    refused: dict[str, str] = {}
    derived: dict[str, str] = {}  # a derived default the hook refused (e.g. the slug of a name): set it plainly
    for attempt in range(6):
        out = tmp_path / str(attempt)
        try:
            project = render({**derived, **{k: value for k in pending}, "cicd_platform": "both"}, out)
        except FailedHookException:
            errors = [line for line in capfd.readouterr().err.splitlines() if line.startswith("ERROR ")]
            named = {line.split()[1].rstrip(":"): line for line in errors}
            assert named and set(named) <= set(FREE_TEXT), errors
            assert all("Fix:" in line for line in errors), errors
            assert list(out.iterdir()) == [] if out.exists() else True
            derived.update({k: SAFE[k] for k in named if k not in pending})
            refused.update({k: line for k, line in named.items() if k in pending})
            pending = [k for k in pending if k not in named]
            continue
        break
    else:
        pytest.fail(f"still refused after 6 attempts: {pending}")
    for path in [*project.rglob("*.yml"), *project.rglob("*.yaml")]:
        assert isinstance(yaml.safe_load(path.read_text(encoding="utf-8")), dict), path
    for option in pending:
        if option == "package_name":
            assert (project / "src" / value).is_dir()
            continue
        for used in used_values(project, option):
            assert used == value, f"{option}={value!r} became {used!r}"
    assert set(refused) | set(pending) == set(FREE_TEXT)


# What each notable case must get: refused (option -> message part) or accepted.
EXPECTED = [
    ("readers_group", "account users # ml-readers", "is not a plain group name"),
    ("mlops_group", "[admins, users]", "is not a plain group name"),
    ("release_branch", "x'||'1'=='1", "could end a quoted literal in a CI expression"),
    ("default_branch", "dev$(id)", "could end a quoted literal"),
    ("default_branch", "feature/x.lock/y", "ending in '.lock'"),
    ("release_branch", "rel@{1}", "which git refuses"),
    ("data_scientists_group", "ds\nadmins", "is not a plain group name"),
    ("ml_engineers_group", "ml ", "has leading or trailing spaces"),
    ("project_name", "Churn\u202e", "invisible or control character U+202E"),
    ("description", "trailing ", "has leading or trailing spaces"),
]


@pytest.mark.parametrize(("option", "value", "message"), EXPECTED, ids=[f"{o}={v!r}" for o, v, _ in EXPECTED])
def test_notable_hostile_answers_get_the_expected_error(tmp_path, capfd, option, value, message):
    with pytest.raises(FailedHookException):
        render({option: value}, tmp_path)
    errors = [line for line in capfd.readouterr().err.splitlines() if line.startswith("ERROR ")]
    assert len(errors) == 1 and errors[0].startswith(f"ERROR {option}: ") and message in errors[0], errors


@pytest.mark.parametrize("name", ["develop", "release/v1.2", "feature/ünïcode", "hotfix-1_2", "a.b"])
def test_valid_git_branch_names_are_accepted_and_agree_with_git(tmp_path, name):
    git = subprocess.run(["git", "check-ref-format", "--branch", name], capture_output=True, text=True)
    assert git.returncode == 0, git.stderr
    project = render({"release_branch": name, "cicd_platform": "github_actions"}, tmp_path)
    assert _workflow(project, "deploy-prod.yml")["push"]["branches"] == [name]
    assert _workflow(project, "deploy-staging.yml")["push"]["branches"] == ["main"]


def test_render_refuses_template_syntax_naming_the_key(tmp_path):
    with pytest.raises(TemplateSyntaxInAnswerError, match=r"readers_group='\{\{ 7\*7 \}\}' contain template syntax"):
        render({"readers_group": "{{ 7*7 }}"}, tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("answer", ["mlops_group={{ 7*7 }}", "description={% if true %}x{% endif %}"])
def test_plain_cookiecutter_refuses_template_syntax_in_the_hook(tmp_path, answer):
    result = subprocess.run([sys.executable, "-m", "cookiecutter", "--no-input", str(TEMPLATE), "-o", str(tmp_path),
                             answer], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode != 0
    key = answer.split("=")[0]
    assert re.search(rf"ERROR {key}: .* contains template syntax .* Fix: give plain text", result.stderr), result.stderr
    assert list(tmp_path.iterdir()) == []


def test_post_gen_names_the_file_and_line_of_unparsable_yaml(tmp_path):
    from test_template_contract import defaults, load_hook

    hook = load_hook("post_gen_project.py", defaults())
    (tmp_path / "resources").mkdir()
    (tmp_path / "resources" / "job.yml").write_text("a: 1\nb: [x\nc: 2\n")
    (tmp_path / "ok.yml").write_text("a: '1'\n")
    (tmp_path / "pyproject.toml").write_text('name = "x\n')
    problems = hook["unparsable_files"](tmp_path)
    assert len(problems) == 2 and problems[1].startswith("resources/job.yml:3:"), problems
    assert problems[0].startswith("pyproject.toml:"), problems
