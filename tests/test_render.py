"""Every combination of the matrix: exact file set, no template leftovers, valid YAML,
offline bundle validation for every target, ruff, and the project's own test suite."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from matrix import COMBINATIONS, combo_id, load_hook

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


ENGINE_INPUTS = ("src", "tests", "conf", "requirements", "pyproject.toml")
TARGETS_AS_RESOLVED = ("import dataclasses, json; from {package}.config import load_targets; "
                       "print(json.dumps({{k: dataclasses.asdict(v) for k, v in load_targets(__import__('pathlib')"
                       ".Path('.')).items()}}, sort_keys=True))")


def serving_only(project: Path) -> set[str]:
    """Paths that only ``include_serving`` decides, read from the PRUNE table for this project's answers."""
    answers = json.loads((project / ".cookiecutter.json").read_text(encoding="utf-8"))["cookiecutter"]
    on, off = (load_hook("post_gen_project.py", {**answers, "include_serving": value})["PRUNE"]
               for value in ("yes", "no"))
    return {rel for rel in on if on[rel] != off[rel]}


def engine_inputs(project: Path, without_serving: bool = False) -> str:
    """A digest of everything the generated suite's tests not marked ``bundle`` can read: the package,
    the tests, conf/, requirements/, pyproject.toml, and the targets as the project's own config
    resolves them from databricks.yml (the only part of the bundle a run reads).  The generated
    tests/test_markers.py holds every test that reads more of the bundle to the marker.
    ``without_serving`` leaves out what the ``include_serving`` option alone adds: its PRUNE paths
    and the ``serving`` section of conf/project.yml."""
    digest = hashlib.sha256()
    left_out = serving_only(project) if without_serving else set()
    for name in ENGINE_INPUTS:
        paths = [project / name] if (project / name).is_file() else sorted((project / name).rglob("*"))
        for path in paths:
            rel = path.relative_to(project)
            if not path.is_file() or any(part in SKIPPED_PARTS for part in path.parts) or any(
                    rel.as_posix() == out or rel.as_posix().startswith(out + "/") for out in left_out):
                continue
            content = path.read_bytes()
            if without_serving and rel.as_posix() == "conf/project.yml":
                settings = yaml.safe_load(content)
                settings.pop("serving", None)
                content = json.dumps(settings, sort_keys=True).encode()
            digest.update(str(rel).encode() + b"\0" + content)
    package = next((project / "src").iterdir()).name
    targets = run_in(project, "-c", TARGETS_AS_RESOLVED.format(package=package))
    assert targets.returncode == 0, targets.stderr
    digest.update(targets.stdout.encode())
    return digest.hexdigest()


def suite_plan(projects: dict[str, Path]) -> dict[str, list[str]]:
    """Per combination, the pytest arguments of its run: the whole suite for the first combination
    with given engine inputs, and only the ``bundle`` tests for the others, whose every other test
    would read the very same files and targets again.  ``include_serving`` only adds files (its PRUNE
    paths) and a section of conf/project.yml: each of its values runs the whole suite once, and a
    combination that differs from a whole run only in it runs the bundle tests."""
    plan, seen, serving_seen = {}, set(), set()
    for cid, project in projects.items():
        inputs = engine_inputs(project, without_serving=True)
        serving = json.loads((project / ".cookiecutter.json").read_text())["cookiecutter"]["include_serving"]
        # Only the modules with bundle tests are collected: importing the others costs seconds.
        marked = sorted(str(p.relative_to(project)) for p in (project / "tests").glob("test_*.py")
                        if "pytest.mark.bundle" in p.read_text(encoding="utf-8"))
        plan[cid] = [] if inputs not in seen or serving not in serving_seen else ["-m", "bundle", *marked]
        seen.add(inputs)
        serving_seen.add(serving)
    return plan


@pytest.fixture(scope="session")
def suite_plan_of(rendered) -> dict[str, list[str]]:
    return suite_plan(rendered)


@pytest.fixture(scope="session")
def suite_results(rendered, suite_plan_of) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every rendered project's own test suite, two at a time: much of a suite's time is engine
    start-up and round trips, so two overlap well on two cores."""
    def run_suite(cid: str) -> subprocess.CompletedProcess[str]:
        return run_in(rendered[cid], "-m", "pytest", "-q", "-p", "no:cacheprovider", *suite_plan_of[cid],
                      timeout=1200)

    with ThreadPoolExecutor(max_workers=SUITE_WORKERS) as pool:
        return dict(zip(IDS, pool.map(run_suite, IDS), strict=True))


@pytest.mark.parametrize("cid", IDS)
def test_generated_test_suite_passes(suite_results, cid):
    result = suite_results[cid]
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert re.search(r"\d+ passed", result.stdout) and " failed" not in result.stdout


def test_every_distinct_package_and_configuration_runs_the_whole_suite(rendered, suite_plan_of, suite_results):
    """Each problem type with and without the feature store runs everything, and so does each value of
    include_serving; the combinations that differ from those only in the bundle or in include_serving
    run the bundle tests against their own bundle."""
    whole = [cid for cid in IDS if not suite_plan_of[cid]]
    cores = {(c["problem_type"], c["include_feature_store"]) for c in COMBINATIONS}
    assert {(c["problem_type"], c["include_feature_store"]) for c, cid in zip(COMBINATIONS, IDS, strict=True)
            if cid in whole} == cores, whole
    assert {c["include_serving"] for c, cid in zip(COMBINATIONS, IDS, strict=True) if cid in whole} == {"yes", "no"}
    assert len(whole) == len(cores) + 1, whole
    for cid in IDS:
        deselected = re.search(r"(\d+) deselected", suite_results[cid].stdout)
        assert bool(deselected) == bool(suite_plan_of[cid]), suite_results[cid].stdout[-500:]


def test_engine_inputs_change_with_the_package_configuration_and_targets(rendered, tmp_path):
    project = shutil.copytree(rendered[IDS[0]], tmp_path / "copy", ignore=shutil.ignore_patterns(".local"))
    before = engine_inputs(project)
    (project / "resources" / "extra.yml").write_text("resources: {}\n")
    assert engine_inputs(project) == before, "resources are input of the bundle tests only"
    settings = project / "conf" / "project.yml"
    settings.write_text(settings.read_text() + "\n# changed\n")
    assert engine_inputs(project) != before
    before = engine_inputs(project)
    bundle = project / "databricks.yml"
    schema = yaml.safe_load(bundle.read_text())["variables"]["schema"]["default"]
    bundle.write_text(bundle.read_text().replace(f'default: "{schema}"', 'default: "another_schema"', 1))
    assert engine_inputs(project) != before, "a target's schema is what runs read of the bundle"


def test_include_serving_alone_leaves_the_rest_of_the_engine_inputs_alone(rendered):
    """What lets one whole run per include_serving value stand for the others (see suite_plan)."""
    serving, plain = rendered[IDS[0]], rendered[IDS[1]]
    assert (serving / "conf" / "project.yml").read_text() != (plain / "conf" / "project.yml").read_text()
    assert engine_inputs(serving) != engine_inputs(plain)
    assert engine_inputs(serving, without_serving=True) == engine_inputs(plain, without_serving=True)
    assert serving_only(serving) == serving_only(plain) and not any((plain / p).exists() for p in serving_only(plain))
