"""Notebooks are widgets -> one package call; this is that call, with a stand-in dbutils."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }} import notebook

# Reads the bundle (databricks.yml, resources/, notebooks/): runs for every rendered option set.
pytestmark = pytest.mark.bundle


class FakeWidgets:
    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.declared: list[str] = []

    def text(self, name: str, default: str) -> None:
        self.declared.append(name)
        self.values.setdefault(name, default)

    def get(self, name: str) -> str:
        return self.values[name]


class FakeDbutils:
    def __init__(self, values: dict[str, str]) -> None:
        self.widgets = FakeWidgets(values)


def test_widgets_become_cli_arguments():
    args = notebook.notebook_args({"target": "staging", "catalog": "c", "schema": "dev_me_s", "run_id": "42"},
                                  ("bootstrap",))
    assert args == ["run", "bootstrap", "--target", "staging", "--catalog", "c", "--schema", "dev_me_s",
                    "--run-id", "42"]
    assert notebook.notebook_args({"target": "", "catalog": "", "schema": "", "run_id": ""}, ("a", "b")) == [
        "run", "a", "b", "--target", "dev"]


class FakeTaskValues:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def set(self, key: str, value: str) -> None:
        self.values[key] = value


class FakeJobs:
    def __init__(self) -> None:
        self.taskValues = FakeTaskValues()


def test_run_stage_passes_widgets_publishes_task_values_and_fails_the_task_on_error(monkeypatch):
    from {{ cookiecutter.package_name }}.pipeline import RunSummary, StageResult

    calls = []

    def fake_run(args, root):
        calls.append((args.stages, args.target, args.catalog))
        summary = RunSummary("r", args.target, "databricks", args.catalog, "s")
        summary.stages.append(StageResult("check", "succeeded", 0.1, details={"task_values": {"retrain": "true"}}))
        return summary

    monkeypatch.setattr(notebook, "run_summary", fake_run)
    monkeypatch.setattr(notebook, "project_root", lambda: None)
    dbutils = FakeDbutils({"target": "prod", "catalog": "prod"})
    dbutils.jobs = FakeJobs()
    notebook.run_stage(dbutils, "check")
    assert dbutils.widgets.declared == list(notebook.WIDGETS)
    assert calls == [(["check"], "prod", "prod")]
    assert dbutils.jobs.taskValues.values == {"retrain": "true"}

    def failing(args, root):
        summary = RunSummary("r", args.target, "databricks", args.catalog, "s")
        summary.stages.append(StageResult("bootstrap", "failed", 0.1, error="StageFailure: no schema"))
        return summary

    monkeypatch.setattr(notebook, "run_summary", failing)
    with pytest.raises(RuntimeError, match="bootstrap failed"):
        notebook.run_stage(dbutils, "bootstrap")


def test_the_generic_notebook_runs_the_stages_its_task_names(monkeypatch):
    from {{ cookiecutter.package_name }}.pipeline import RunSummary

    calls = []

    def fake_run(args, root):
        calls.append(args.stages)
        return RunSummary("r", args.target, "databricks", "c", "s")

    monkeypatch.setattr(notebook, "run_summary", fake_run)
    monkeypatch.setattr(notebook, "project_root", lambda: None)
    dbutils = FakeDbutils({"stages": "score, monitor"})
    dbutils.jobs = FakeJobs()
    notebook.run_stage(dbutils)
    assert calls == [["score", "monitor"]] and dbutils.widgets.declared[-1] == "stages"
    with pytest.raises(ValueError, match="stages parameter is empty"):
        notebook.run_stage(FakeDbutils({"stages": " "}))


PROJECT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^[A-Za-z0-9_.\[\],-]+==[\w.]+$")


def requirement_lines(path: Path) -> list[str]:
    """Requirement lines of a requirements file, following ``-r`` includes."""
    lines = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith("-r "):
            lines += requirement_lines(path.parent / line[3:].strip())
        elif line:
            lines.append(line)
    return lines


def test_notebooks_install_only_pinned_requirement_files():
    """Supply chain: a notebook's %pip install names a requirements file and no package of its own,
    and every package those files install is pinned exactly."""
    notebooks = sorted((PROJECT / "notebooks").rglob("*.py"))
    installs = 0
    for path in notebooks:
        for line in path.read_text().splitlines():
            if "%pip install" not in line:
                continue
            installs += 1
            args = line.split("%pip install", 1)[1].split()
            assert args[:2] == ["-q", "-r"] and len(args) == 3, f"{path.relative_to(PROJECT)}: {line.strip()}"
            requirements = (path.parent / args[2]).resolve()
            assert requirements.is_file(), f"{path.relative_to(PROJECT)}: {args[2]} does not exist"
            unpinned = [r for r in requirement_lines(requirements) if not PIN.match(r)]
            assert unpinned == [], f"{requirements.relative_to(PROJECT)}: pin {unpinned} with =="
    assert installs >= len(notebooks) // 2
    databricks = requirement_lines(PROJECT / "requirements" / "databricks.txt")
    assert any(r.startswith("databricks-feature-engineering==") for r in databricks)
