"""Every combination of the matrix: exact file set, no template leftovers, valid YAML,
offline bundle validation for every target, ruff, and the project's own test suite."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from matrix import COMBINATIONS, combo_id

GOLDEN = Path(__file__).resolve().parent / "golden"
IDS = [combo_id(c) for c in COMBINATIONS]
UPDATE_GOLDEN = os.environ.get("UPDATE_GOLDEN") == "1"
SUITE_WORKERS = int(os.environ.get("SUITE_WORKERS", "2"))

# Braces that legitimately survive rendering: GitHub/Azure expressions and Databricks dynamic values.
ALLOWED_BRACES = re.compile(r"\$\{\{[^{}]*\}\}|\{\{(?:job|tasks|run|workspace|backfill)\.[A-Za-z0-9_.\[\]-]+\}\}")
# Jinja openers (an f-string's "{x:.2%}" legitimately contains "%}") and unrendered variables.
LEFTOVER = re.compile(r"\{\{|\{%|\{#|cookiecutter\.(?!json)")


SKIPPED_PARTS = ("__pycache__", ".pytest_cache", ".local", ".ruff_cache")
PROJECT_TEMPLATE = Path(__file__).resolve().parents[1] / "{{cookiecutter.project_slug}}"


def manifest(project: Path) -> list[str]:
    return sorted(
        str(p.relative_to(project)) + ("/" if p.is_dir() else "")
        for p in project.rglob("*")
        if not any(part in SKIPPED_PARTS for part in p.parts)
    )


def template_manifest(package: str) -> list[str]:
    """Every path of the project template, as it renders before pruning."""
    return sorted(line.replace("{{cookiecutter.package_name}}", package) for line in manifest(PROJECT_TEMPLATE))


def file_set_difference(project: Path) -> str:
    """How the rendered file set differs from the whole template: ``- path`` for what the options
    pruned, ``+ path`` for what rendering added.  The golden manifest holds exactly this, so a file
    added to the template changes no golden manifest unless an option prunes it."""
    package = next((project / "src").iterdir()).name
    rendered, full = set(manifest(project)), set(template_manifest(package))
    return "".join(f"- {path}\n" for path in sorted(full - rendered)) + "".join(
        f"+ {path}\n" for path in sorted(rendered - full))


def text_files(project: Path) -> list[Path]:
    # .cookiecutter.json records the answers (and cookiecutter's own settings): data, not output.
    return [p for p in project.rglob("*") if p.is_file() and p.suffix != ".pyc" and p.name != ".cookiecutter.json"]


def run_in(project: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(project / "src")}
    env.pop("SPARK_CONNECT_MODE_ENABLED", None)
    return subprocess.run([sys.executable, *args], cwd=project, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("cid", IDS)
def test_file_set_matches_golden_manifest(rendered, cid):
    actual = file_set_difference(rendered[cid])
    golden = GOLDEN / f"{cid}.txt"
    if UPDATE_GOLDEN:
        GOLDEN.mkdir(exist_ok=True)
        golden.write_text(actual)
    assert golden.is_file(), f"no golden manifest {golden.name}; run `nox -s golden` and review the diff"
    assert actual == golden.read_text(), f"file set changed for {cid}; run `nox -s golden` and review the diff"


@pytest.mark.parametrize("cid", IDS)
def test_no_template_syntax_left(rendered, cid):
    leftovers = []
    for path in text_files(rendered[cid]):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if LEFTOVER.search(ALLOWED_BRACES.sub("", line)):
                leftovers.append(f"{path.relative_to(rendered[cid])}:{number}: {line.strip()}")
    assert leftovers == []


@pytest.mark.parametrize("cid", IDS)
def test_every_yaml_file_parses(rendered, cid):
    files = [p for p in text_files(rendered[cid]) if p.suffix in (".yml", ".yaml")]
    assert files
    for path in files:
        assert isinstance(yaml.safe_load(path.read_text(encoding="utf-8")), dict), path


@pytest.mark.parametrize("cid", IDS)
def test_bundle_check_passes_for_every_target(rendered, cid):
    project = rendered[cid]
    package = next((project / "src").iterdir()).name
    result = run_in(project, "-m", package, "bundle-check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "checked targets: dev, test, staging, prod" in result.stderr


@pytest.mark.parametrize("cid", IDS)
def test_ruff_is_clean_on_the_rendered_project(rendered, cid):
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=rendered[cid],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="session")
def suite_results(rendered) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every rendered project's own test suite, two at a time: much of a suite's time is engine
    start-up and round trips, so two overlap well on two cores."""
    def run_suite(cid: str) -> subprocess.CompletedProcess[str]:
        return run_in(rendered[cid], "-m", "pytest", "-q", "-p", "no:cacheprovider", timeout=1200)

    with ThreadPoolExecutor(max_workers=SUITE_WORKERS) as pool:
        return dict(zip(IDS, pool.map(run_suite, IDS), strict=True))


@pytest.mark.parametrize("cid", IDS)
def test_generated_test_suite_passes(suite_results, cid):
    result = suite_results[cid]
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert re.search(r"\d+ passed", result.stdout) and " failed" not in result.stdout
