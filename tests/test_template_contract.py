"""The template's own contracts: every option is validated and in the matrix, the pruning
table names real paths, answers replay to the same project, pins match the test environment,
and the README's commands are what CI runs."""

from __future__ import annotations

import filecmp
import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from matrix import CHOICES, COMBINATIONS, INDEPENDENT, INTERACTING, OPTIONS, load_hook
from render import declared_options, render

TEMPLATE = Path(__file__).resolve().parents[1]
PROJECT_TEMPLATE = TEMPLATE / "{{cookiecutter.project_slug}}"


def defaults() -> dict[str, str]:
    return {k: (v[0] if isinstance(v, list) else v) for k, v in OPTIONS.items() if not k.startswith("_")}


def test_every_declared_option_has_a_validation_rule():
    hook = load_hook("pre_gen_project.py", defaults())
    assert set(hook["RULES"]) == set(declared_options())


def test_every_choice_option_is_in_exactly_one_matrix_group():
    grouped = [*INTERACTING, *INDEPENDENT]
    assert sorted(grouped) == sorted(CHOICES), "add new choice options to INTERACTING or INDEPENDENT"
    assert len(set(grouped)) == len(grouped)


def test_matrix_covers_every_choice_value_and_only_declared_keys():
    for key, values in CHOICES.items():
        assert {c[key] for c in COMBINATIONS} == set(values), key
    for combo in COMBINATIONS:
        assert set(combo) <= set(declared_options())


def test_pruning_table_names_paths_that_exist_in_the_template():
    hook = load_hook("post_gen_project.py", defaults())
    for rel in hook["PRUNE"]:
        template_rel = rel.replace(hook["PACKAGE"], "{{cookiecutter.package_name}}")
        assert (PROJECT_TEMPLATE / template_rel).exists(), f"PRUNE names {rel}, which the template lacks"


def test_templates_do_not_prune_with_whole_file_conditionals():
    """Optional files are removed only by the PRUNE table, never by an empty render."""
    for path in PROJECT_TEMPLATE.rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            assert not re.match(r"\s*\{%-?\s*if", text), f"{path}: starts with an if-block; use PRUNE"


def test_answers_replay_to_an_identical_project(tmp_path):
    first = render({"project_name": "Replay Check", "compute": "job_clusters", "cloud": "gcp"}, tmp_path / "a")
    replay = first / ".cookiecutter.json"
    answers = json.loads(replay.read_text())["cookiecutter"]
    assert answers["project_slug"] == "replay-check" and answers["cloud"] == "gcp"
    from cookiecutter.main import cookiecutter

    second = Path(cookiecutter(str(TEMPLATE), replay=str(replay), output_dir=str(tmp_path / "b")))
    comparison = filecmp.dircmp(first, second)
    assert not comparison.left_only and not comparison.right_only and not comparison.diff_files


def test_config_file_renders_the_same_as_extra_context(tmp_path):
    config = tmp_path / "team.yaml"
    config.write_text("default_context:\n  project_name: Demand Forecast\n  problem_type: regression\n")
    result = subprocess.run([sys.executable, str(TEMPLATE / "scripts" / "render.py"), "--config", str(config),
                             "-o", str(tmp_path / "out")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    answers = json.loads((tmp_path / "out" / "demand-forecast" / ".cookiecutter.json").read_text())["cookiecutter"]
    assert answers["problem_type"] == "regression" and answers["package_name"] == "demand_forecast"


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]+\])?==([^\s;#]+)", line.strip())
        if match:
            pins[match.group(1)] = match.group(2)
    return pins


@pytest.mark.parametrize("lock", ["{{cookiecutter.project_slug}}/requirements/lock.txt", "requirements/template.txt"])
def test_test_environment_matches_the_pins(lock):
    pins = _pins(TEMPLATE / lock)
    assert pins
    def installed(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    wrong = {name: (want, installed(name)) for name, want in pins.items() if installed(name) != want}
    assert wrong == {}, "the test environment differs from the pins: {name: (pinned, installed)}"


def test_lock_holds_every_top_level_pin():
    lock = _pins(PROJECT_TEMPLATE / "requirements" / "lock.txt")
    for name in ("base.txt", "local.txt", "dev.txt"):
        for package, version in _pins(PROJECT_TEMPLATE / "requirements" / name).items():
            assert lock.get(package) == version, f"{name}: {package}=={version} but lock.txt has {lock.get(package)}"


def test_ci_runs_the_readme_test_command():
    readme = (TEMPLATE / "README.md").read_text()
    commands = re.findall(r"^(python3 -m pip install .*&& python3 -m nox -s \w+)", readme, flags=re.M)
    test_command = [c for c in commands if c.endswith("-s tests")]
    assert len(test_command) == 1 and any(c.endswith("-s demo") for c in commands)
    assert test_command[0] in (TEMPLATE / ".ci" / "run").read_text()


def test_ruff_is_clean_on_the_template():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=TEMPLATE,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cruft_creates_a_project_that_it_can_keep_up_to_date(tmp_path):
    """cruft renders the committed template and records it, so `cruft update` can follow it."""
    created = subprocess.run([sys.executable, "-m", "cruft", "create", str(TEMPLATE), "--no-input", "--output-dir",
                              str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert created.returncode == 0, created.stdout + created.stderr
    project = tmp_path / "customer-churn"
    recorded = json.loads((project / ".cruft.json").read_text())
    assert recorded["template"] == str(TEMPLATE) and recorded["context"]["cookiecutter"]["cloud"] == "azure"
    checked = subprocess.run([sys.executable, "-m", "cruft", "check"], cwd=project, capture_output=True, text=True,
                             timeout=300)
    assert checked.returncode == 0 and "up to date" in checked.stdout, checked.stdout + checked.stderr
